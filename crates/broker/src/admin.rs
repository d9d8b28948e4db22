//! Topic administration: create, register schema versions, retention,
//! delete, describe. The topics folder and the Admin API share this code.
//!
//! Owns: the rules for changing topics (names, compatibility of new schema
//! versions, id assignment). Must not: know the wire types.

use std::sync::Arc;
use std::time::Duration;

use super::provision::Outcome;
use super::schemas::{owner_of_topic, owner_prefix};
use super::{Broker, BrokerError, Topic};
use crate::log::{LogBounds, now_ms};
use crate::schema::{ParsedSchema, SchemaError, SchemaLimits, compat};
use crate::types::TopicName;

/// A topic with what its log holds now.
#[derive(Clone, Debug)]
pub struct TopicSummary {
    /// The topic.
    pub topic: Arc<Topic>,
    /// Trim point and newest offset.
    pub bounds: LogBounds,
    /// Approximate bytes its events take in storage.
    pub disk_bytes: u64,
    /// Publish rate, open streams, newest event.
    pub activity: super::TopicActivity,
}

impl TopicSummary {
    /// Events currently retained (offsets are dense).
    pub fn event_count(&self) -> u64 {
        self.bounds.latest.0.saturating_sub(self.bounds.trimmed.0)
    }
}

/// The broker error for a schema that does not parse or breaks a cap.
fn schema_error(e: SchemaError) -> BrokerError {
    match e {
        SchemaError::OverLimit { reason } => BrokerError::SchemaOverLimit(reason),
        other => BrokerError::SchemaInvalid(other.to_string()),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Broker {
    /// Parses a schema given as text, checking the registration caps (size before
    /// parsing, the rest after).
    ///
    /// # Errors
    /// [`BrokerError::SchemaInvalid`] saying what is wrong, [`BrokerError::SchemaOverLimit`]
    /// naming the cap.
    pub fn parse_schema_with(
        json: &str,
        limits: &SchemaLimits,
    ) -> Result<ParsedSchema, BrokerError> {
        ParsedSchema::parse_limited(json, limits).map_err(schema_error)
    }

    /// [`Broker::parse_schema_with`] this broker's caps, on a blocking thread: a schema of
    /// a megabyte takes tens of milliseconds to parse, which must not hold up the calls
    /// that share a runtime worker with it.
    ///
    /// # Errors
    /// As [`Broker::parse_schema_with`]; [`BrokerError::ShuttingDown`] if the blocking
    /// pool is gone.
    pub async fn parse_schema(&self, json: String) -> Result<ParsedSchema, BrokerError> {
        let limits = self.cfg.schema_limits;
        // Checked here too, so an oversize text is refused without a thread hop.
        limits.check_text(&json).map_err(schema_error)?;
        tokio::task::spawn_blocking(move || Self::parse_schema_with(&json, &limits))
            .await
            .map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Checks a schema against the per-schema caps and its tenant's schema count and
    /// bytes before it is stored for topic `name` (a stored name: the tenant is its
    /// namespace). A schema the tenant already uses costs nothing more.
    ///
    /// # Errors
    /// [`BrokerError::SchemaOverLimit`], [`BrokerError::SchemaLimit`].
    fn admit_schema(&self, name: &TopicName, schema: &ParsedSchema) -> Result<(), BrokerError> {
        schema
            .check_limits(&self.cfg.schema_limits)
            .map_err(schema_error)?;
        // One pass over the topic map without copying it or its ids: this runs
        // for every topic created, and a server may have tens of thousands. A
        // schema the tenant already uses (the common case) ends the pass early.
        let prefix = owner_prefix(name.as_str());
        let ids: std::collections::HashSet<crate::types::SchemaId> = {
            let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
            let mut ids = std::collections::HashSet::new();
            for topic in topics.values() {
                if owner_prefix(topic.name.as_str()) != prefix {
                    continue;
                }
                for id in &topic.schema_ids {
                    if id == schema.id() {
                        return Ok(());
                    }
                    ids.insert(id);
                }
            }
            ids.into_iter().cloned().collect()
        };
        let owner = owner_of_topic(name.as_str());
        let max = self.cfg.max_schemas_per_tenant;
        if ids.len() >= max {
            return Err(BrokerError::SchemaLimit(format!(
                "This org's topics use {} schemas, the most allowed (EVENTBUS_MAX_SCHEMAS_PER_TENANT). Delete a topic before registering another schema.",
                ids.len()
            )));
        }
        let bytes: usize = ids
            .iter()
            .map(|id| match self.schemas.text(&owner, id) {
                Some(text) => text.len(),
                None => self.schemas.get(id).map_or(0, |s| s.json().len()),
            })
            .sum();
        let max = self.cfg.max_schema_bytes_per_tenant;
        if bytes.saturating_add(schema.json().len()) > max {
            return Err(BrokerError::SchemaLimit(format!(
                "This org's schemas take {bytes} bytes; {} more would pass the most allowed, {max} (EVENTBUS_MAX_SCHEMA_BYTES_PER_TENANT). Delete a topic before registering another schema.",
                schema.json().len()
            )));
        }
        Ok(())
    }

    /// Creates a topic with its first schema.
    ///
    /// # Errors
    /// Malformed name, existing topic, zero retention, storage failure.
    pub async fn create_topic(
        &self,
        name: &str,
        schema: ParsedSchema,
        retention: Option<Duration>,
    ) -> Result<Arc<Topic>, BrokerError> {
        if name.trim().is_empty() {
            return Err(BrokerError::TopicNameBlank);
        }
        let name = TopicName::parse(name).map_err(BrokerError::TopicNameInvalid)?;
        let retention = retention.unwrap_or(self.cfg.default_retention);
        if retention.is_zero() {
            return Err(BrokerError::RetentionInvalid(0));
        }
        let _guard = self.provision_lock.lock().await;
        if self.lookup(name.as_str()).is_some() {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        self.admit_schema(&name, &schema)?;
        let schema_id = schema.id().clone();
        let owner = super::owner_of_topic(name.as_str());
        self.store_schema(&owner, schema).await?;
        let topic = Topic {
            id: self.log.allocate_topic_id().await?,
            name,
            schema_ids: vec![schema_id],
            retention,
            created_ms: now_ms(),
        };
        // Registered before the record is visible to other processes, so
        // they never see a topic this process cannot serve yet.
        self.log.register_topic(topic.id).await?;
        if !self.log.create_topic(topic.to_record()).await? {
            // Another process on the shared log created it first: take its
            // record (the id reserved here stays unused).
            let catalog = self.log.load_catalog().await?;
            if let Some(rec) = catalog
                .topics
                .into_iter()
                .find(|t| t.name == topic.name.as_str())
            {
                for id in &rec.schema_ids {
                    // A text not stored or not parsing is that topic's
                    // problem; only a failing log fails this call.
                    if let Err(e @ BrokerError::Log(_)) = self
                        .learn_schema(&owner, &crate::types::SchemaId::new(id.as_str()))
                        .await
                    {
                        return Err(e);
                    }
                }
                let theirs = Topic::from_record(rec)?;
                self.log.register_topic(theirs.id).await?;
                self.install(theirs);
            }
            return Err(BrokerError::TopicExists(topic.name.to_string()));
        }
        Ok(self.install(topic))
    }

    /// Makes `schema` the topic's current version. It must be able to read
    /// events written with the current version (Avro backward compatibility).
    /// Returns whether a new version was added (false when `schema` already
    /// is the current version).
    ///
    /// # Errors
    /// Unknown topic, incompatible schema, storage failure.
    pub async fn register_schema(
        &self,
        name: &str,
        schema: ParsedSchema,
    ) -> Result<bool, BrokerError> {
        let _guard = self.provision_lock.lock().await;
        let topic = self.topic(name)?;
        let current_id = topic.current_schema().clone();
        let owner = topic.owner();
        if schema.id() == &current_id {
            // No new version, but the tenant's own text when it has none:
            // a text stored before texts were kept per tenant that several
            // tenants use comes back this way (see `schemas`).
            if self.schemas.text(&owner, &current_id).is_none() {
                self.store_schema(&owner, schema).await?;
            }
            return Ok(false);
        }
        let current = self
            .schemas
            .get(&current_id)
            .ok_or_else(|| BrokerError::SchemaNotFound(current_id.to_string()))?;
        compat::check_backward(&schema, &current).map_err(|e| BrokerError::SchemaIncompatible {
            current: current_id.to_string(),
            reason: e.to_string(),
        })?;
        self.admit_schema(&topic.name, &schema)?;
        let id = schema.id().clone();
        self.store_schema(&owner, schema).await?;
        let mut t = (*topic).clone();
        t.schema_ids.retain(|s| s != &id);
        t.schema_ids.push(id);
        self.log.put_topic(t.to_record()).await?;
        self.install(t);
        Ok(true)
    }

    /// Creates the topic with `schema`, or adds `schema` to its schemas
    /// without the backward-compatibility check of
    /// [`Broker::register_schema`]: for a multi-entity stream such as
    /// `/data/ChangeEvents`, whose events each carry their own entity's
    /// schema, so its schemas are independent of each other. The schema
    /// added last is the one GetTopic names.
    ///
    /// # Errors
    /// As [`Broker::create_topic`]; schema caps; storage failure.
    pub async fn add_schema(
        &self,
        name: &TopicName,
        schema: ParsedSchema,
    ) -> Result<Outcome, BrokerError> {
        let mut schema = schema;
        if self.lookup(name.as_str()).is_none() {
            let json = schema.json().to_owned();
            match self.create_topic(name.as_str(), schema, None).await {
                Ok(_) => return Ok(Outcome::Created),
                Err(BrokerError::TopicExists(_)) => {
                    schema = ParsedSchema::parse(&json)
                        .map_err(|e| BrokerError::SchemaInvalid(e.to_string()))?;
                }
                Err(e) => return Err(e),
            }
        }
        let _guard = self.provision_lock.lock().await;
        let topic = self.topic(name.as_str())?;
        let owner = topic.owner();
        let id = schema.id().clone();
        if topic.schema_ids.contains(&id) {
            if self.schemas.text(&owner, &id).is_none() {
                self.store_schema(&owner, schema).await?;
            }
            return Ok(Outcome::Unchanged);
        }
        self.admit_schema(&topic.name, &schema)?;
        self.store_schema(&owner, schema).await?;
        let mut t = (*topic).clone();
        t.schema_ids.push(id);
        self.log.put_topic(t.to_record()).await?;
        self.install(t);
        Ok(Outcome::NewVersion)
    }

    /// Creates the topic, or registers `schema` as its new current version.
    /// The topics folder provisions through this.
    ///
    /// # Errors
    /// As [`Broker::create_topic`] and [`Broker::register_schema`].
    pub async fn provision(
        &self,
        name: &TopicName,
        schema: ParsedSchema,
    ) -> Result<Outcome, BrokerError> {
        let mut schema = schema;
        if self.lookup(name.as_str()).is_none() {
            let json = schema.json().to_owned();
            match self.create_topic(name.as_str(), schema, None).await {
                Ok(_) => return Ok(Outcome::Created),
                // Another process on a shared log created it meanwhile: go
                // on as for an existing topic.
                Err(BrokerError::TopicExists(_)) => {
                    schema = ParsedSchema::parse(&json)
                        .map_err(|e| BrokerError::SchemaInvalid(e.to_string()))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(if self.register_schema(name.as_str(), schema).await? {
            Outcome::NewVersion
        } else {
            Outcome::Unchanged
        })
    }

    /// Changes a topic's retention; the retention task applies it on its
    /// next pass.
    ///
    /// # Errors
    /// Unknown topic, zero retention, storage failure.
    pub async fn update_retention(
        &self,
        name: &str,
        retention: Duration,
    ) -> Result<Arc<Topic>, BrokerError> {
        if retention.is_zero() {
            return Err(BrokerError::RetentionInvalid(0));
        }
        let _guard = self.provision_lock.lock().await;
        let mut t = (*self.topic(name)?).clone();
        t.retention = retention;
        self.log.put_topic(t.to_record()).await?;
        Ok(self.install(t))
    }

    /// Moves a topic's retention horizon now: deletes at once every event
    /// committed before `cutoff_ms` (epoch milliseconds of the commit
    /// clock), as retention would once they passed its age. A stored
    /// replay id older than what is left is then refused as corrupted, and
    /// a managed subscription whose commit is gone starts at its
    /// error-recovery replay. Returns the number of events deleted. The
    /// topic's retention setting is unchanged.
    ///
    /// # Errors
    /// Unknown topic, storage failure.
    pub async fn expire_before(&self, name: &str, cutoff_ms: u64) -> Result<u64, BrokerError> {
        let topic = self.topic(name)?;
        let deleted = self
            .log
            .trim_older_than(topic.id, crate::log::EpochMillis(cutoff_ms))
            .await?;
        tracing::warn!(topic = %topic.name, cutoff_ms, deleted, "events expired on request (time travel)");
        Ok(deleted)
    }

    /// Deletes a topic and its events; its subscriptions end with NOT_FOUND.
    /// Its schemas stay resolvable by id. Returns the number of events
    /// deleted.
    ///
    /// # Errors
    /// Unknown topic, storage failure.
    pub async fn delete_topic(&self, name: &str) -> Result<u64, BrokerError> {
        let _guard = self.provision_lock.lock().await;
        let topic = self.topic(name)?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic.name.as_str());
        let deleted = self.log.delete_topic(topic.id, topic.name.as_str()).await?;
        tracing::info!(topic = %topic.name, deleted, "topic deleted");
        Ok(deleted)
    }

    /// Describes a topic.
    ///
    /// # Errors
    /// Unknown topic, storage failure.
    pub async fn describe(&self, name: &str) -> Result<TopicSummary, BrokerError> {
        let topic = self.topic(name)?;
        self.summarize(topic, &self.open_streams_by_topic()).await
    }

    /// Describes every topic, sorted by name.
    ///
    /// # Errors
    /// Storage failure.
    pub async fn describe_all(&self) -> Result<Vec<TopicSummary>, BrokerError> {
        let open = self.open_streams_by_topic();
        let mut out = Vec::new();
        for t in self.topics() {
            out.push(self.summarize(t, &open).await?);
        }
        Ok(out)
    }

    async fn summarize(
        &self,
        topic: Arc<Topic>,
        open: &std::collections::HashMap<crate::types::TopicId, u32>,
    ) -> Result<TopicSummary, BrokerError> {
        let bounds = self.log.bounds(topic.id)?;
        let disk_bytes = self.log.disk_size(topic.id).await?;
        let activity = self.activity(&topic, bounds, open).await?;
        Ok(TopicSummary {
            topic,
            bounds,
            disk_bytes,
            activity,
        })
    }

    /// The retention of a topic in milliseconds (for the wire).
    pub fn retention_ms(topic: &Topic) -> u64 {
        duration_ms(topic.retention)
    }

    pub(super) fn lookup(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(super) fn install(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.name.as_str().to_owned(), topic.clone());
        topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::SharedLog;
    use crate::testing::{open, publish, topic};

    const TOPIC: &str = "/event/A__e";

    #[tokio::test]
    async fn expiring_before_a_cutoff_trims_only_the_older_events() {
        let log: SharedLog = Arc::new(crate::log::memory::MemoryTopicLog::new());
        let broker = open(log, crate::BrokerConfig::default()).await;
        topic(&broker, TOPIC).await;
        let old = publish(&broker, TOPIC, 3).await;
        // The commit clock must move past the old events' time.
        let committed = now_ms();
        let mut cutoff = now_ms();
        while cutoff <= committed {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            cutoff = now_ms();
        }
        let kept = publish(&broker, TOPIC, 2).await;
        assert_eq!(
            broker.expire_before(TOPIC, cutoff).await.expect("expire"),
            3
        );
        let bounds = broker
            .log()
            .bounds(broker.topic(TOPIC).expect("topic").id)
            .expect("bounds");
        assert_eq!(bounds.trimmed, old[2]);
        assert_eq!(bounds.latest, kept[1]);
        assert_eq!(broker.expire_before(TOPIC, cutoff).await.expect("again"), 0);
        assert!(matches!(
            broker.expire_before("/event/None__e", cutoff).await,
            Err(BrokerError::TopicNotFound(_))
        ));
    }
}
