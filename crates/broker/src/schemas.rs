//! Schema texts per tenant: who owns a topic, which text of a schema a
//! tenant gets back, and what becomes of texts stored before texts were
//! kept per tenant.
//!
//! Owns: the owner of a stored topic name, storing a tenant's text, the
//! text a tenant reads, loading another process's texts, and the migration
//! of older records. Must not: know the wire or check grants (the protocol
//! layer decides who may ask for which id).
//!
//! Schema ids are Salesforce's (MD5 of the Parsing Canonical Form), so two
//! tenants whose schemas differ only in `doc`, `aliases` or `default` share
//! an id. Each tenant's text is stored under (tenant, id) and a tenant only
//! ever reads its own. Versions before this one stored one text per id (the
//! first registered); such a record is given, once and durably, to the one
//! tenant whose topics use the id. When several tenants' topics use it, the
//! text cannot be attributed: each of them reads the Parsing Canonical Form
//! (what they all registered, nothing private) until it registers its
//! schema again, which stores its own text (the topics folder does so for
//! the default tenant at every start).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Broker, BrokerError, DEFAULT_TENANT_GUID, Topic};
use crate::schema::ParsedSchema;
use crate::types::{SchemaId, TENANT_MARK, TenantId};

/// The tenant a stored topic name belongs to: the org id after
/// [`TENANT_MARK`], or the default tenant for names without it.
pub fn owner_of_topic(stored: &str) -> TenantId {
    match stored.strip_prefix(TENANT_MARK) {
        Some(rest) => TenantId::from_stored(rest.split('/').next().unwrap_or(rest)),
        None => TenantId::from_stored(DEFAULT_TENANT_GUID),
    }
}

/// The part of a stored topic name that names its tenant: `/~<org>` for
/// another tenant's topic, empty for the default tenant's. Two stored names
/// belong to one tenant exactly when these are equal; unlike
/// [`owner_of_topic`] it allocates nothing, for scans over every topic.
pub fn owner_prefix(stored: &str) -> &str {
    match stored.strip_prefix(TENANT_MARK) {
        Some(rest) => &stored[..TENANT_MARK.len() + rest.find('/').unwrap_or(rest.len())],
        None => "",
    }
}

impl Topic {
    /// The tenant the topic belongs to.
    pub fn owner(&self) -> TenantId {
        owner_of_topic(self.name.as_str())
    }
}

fn parse_stored(id: &SchemaId, json: &str) -> Result<ParsedSchema, BrokerError> {
    ParsedSchema::parse(json)
        .map_err(|e| BrokerError::Provision(format!("stored schema {id} does not parse: {e}")))
}

impl Broker {
    /// `tenant`'s JSON text of schema `id`: the text it registered; for a
    /// schema of its topics whose text was stored before texts were kept per
    /// tenant and could not be attributed, the Parsing Canonical Form.
    ///
    /// # Errors
    /// [`BrokerError::SchemaIdBlank`], or [`BrokerError::SchemaNotFound`]
    /// for an id the tenant has no text of (other tenants' texts are never
    /// returned).
    pub fn schema_text(&self, tenant: &TenantId, id: &str) -> Result<Arc<str>, BrokerError> {
        if id.trim().is_empty() {
            return Err(BrokerError::SchemaIdBlank);
        }
        let sid = SchemaId::new(id);
        if let Some(text) = self.schemas.text(tenant, &sid) {
            return Ok(text);
        }
        let used = self
            .topics()
            .iter()
            .any(|t| t.schema_ids.contains(&sid) && t.owner() == *tenant);
        match self.schemas.get(&sid) {
            Some(parsed) if used => Ok(Arc::from(parsed.canonical_form())),
            _ => Err(BrokerError::SchemaNotFound(id.to_owned())),
        }
    }

    /// Stores `owner`'s text of `schema` unless it has one, and makes the
    /// schema known.
    ///
    /// # Errors
    /// [`BrokerError::Log`] when the text cannot be stored.
    pub(super) async fn store_schema(
        &self,
        owner: &TenantId,
        schema: ParsedSchema,
    ) -> Result<(), BrokerError> {
        if self.schemas.text(owner, schema.id()).is_none() {
            self.log
                .put_schema(owner, schema.id().clone(), schema.json().to_owned())
                .await?;
        }
        self.schemas.insert(Some(owner), schema);
        Ok(())
    }

    /// Loads `owner`'s text of a schema another process stored, unless it
    /// is known; for a schema stored before texts were kept per tenant, the
    /// old record.
    ///
    /// # Errors
    /// [`BrokerError::SchemaNotFound`] when the log has neither,
    /// [`BrokerError::Provision`] when the text does not parse,
    /// [`BrokerError::Log`].
    pub(super) async fn learn_schema(
        &self,
        owner: &TenantId,
        id: &SchemaId,
    ) -> Result<(), BrokerError> {
        if self.schemas.text(owner, id).is_some() {
            return Ok(());
        }
        if let Some(json) = self.log.get_schema(Some(owner), id).await? {
            self.schemas.insert(Some(owner), parse_stored(id, &json)?);
            return Ok(());
        }
        if self.schemas.get(id).is_some() {
            return Ok(());
        }
        let Some(json) = self.log.get_schema(None, id).await? else {
            return Err(BrokerError::SchemaNotFound(id.to_string()));
        };
        self.schemas.insert(None, parse_stored(id, &json)?);
        Ok(())
    }

    /// Gives each text stored before texts were kept per tenant to the one
    /// tenant whose topics use its id, durably (so later topics of other
    /// tenants do not change whose it is). Ids several tenants' topics use
    /// stay unattributed (see the module docs). Called once the catalog is
    /// loaded.
    ///
    /// # Errors
    /// [`BrokerError::Log`] when a text cannot be stored,
    /// [`BrokerError::Provision`] when one does not parse.
    pub(super) async fn adopt_legacy_schemas(
        &self,
        legacy: Vec<(SchemaId, String)>,
    ) -> Result<(), BrokerError> {
        if legacy.is_empty() {
            return Ok(());
        }
        let topics = self.topics();
        for (id, json) in legacy {
            let users: BTreeSet<TenantId> = topics
                .iter()
                .filter(|t| t.schema_ids.contains(&id))
                .map(|t| t.owner())
                .collect();
            let mut users = users.into_iter();
            match (users.next(), users.next()) {
                (Some(owner), None) => {
                    if self.schemas.text(&owner, &id).is_some() {
                        continue;
                    }
                    let parsed = parse_stored(&id, &json)?;
                    self.log.put_schema(&owner, id.clone(), json).await?;
                    self.schemas.insert(Some(&owner), parsed);
                    tracing::info!(schema = %id, "schema text stored before texts were kept per tenant given to the one tenant whose topics use it");
                }
                (Some(first), Some(second)) => {
                    let without_text = [first, second]
                        .into_iter()
                        .chain(users)
                        .filter(|t| self.schemas.text(t, &id).is_none())
                        .count();
                    if without_text > 0 {
                        tracing::warn!(schema = %id, tenants = without_text, "schema text stored before texts were kept per tenant is used by several tenants' topics: those without a text of their own read the Parsing Canonical Form until they register the schema again");
                    }
                }
                (None, _) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerConfig;
    use crate::log::SharedLog;
    use crate::log::memory::MemoryTopicLog;
    use crate::metrics::Metrics;
    use crate::types::TopicName;

    const A: &str = "00D5e000000AaaaEAC";
    const B: &str = "00D5e000000BbbbEAC";
    const SCHEMA: &str = r#"{"type":"record","name":"A__e","fields":[{"name":"CreatedDate","type":"long","doc":"A's private note"}]}"#;
    const PLAIN: &str =
        r#"{"type":"record","name":"A__e","fields":[{"name":"CreatedDate","type":"long"}]}"#;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).expect("org id")
    }

    fn stored(tenant: &str, name: &str) -> String {
        format!("{TENANT_MARK}{}{name}", &tenant[..15])
    }

    async fn open(log: &SharedLog) -> Arc<Broker> {
        Broker::open(
            log.clone(),
            BrokerConfig::default(),
            Arc::new(Metrics::new()),
        )
        .await
        .expect("broker")
    }

    async fn provision(broker: &Broker, name: &str, json: &str) {
        let name = TopicName::parse(name).expect("name");
        broker
            .provision(&name, ParsedSchema::parse(json).expect("schema"))
            .await
            .expect("provision");
    }

    #[test]
    fn stored_names_belong_to_the_tenant_in_their_prefix() {
        assert_eq!(owner_of_topic("/event/X__e"), DEFAULT_TENANT_GUID);
        assert_eq!(owner_of_topic(&stored(A, "/event/X__e")), A);
        assert_eq!(owner_of_topic("/~00D5e000000Aaaa"), A);
    }

    #[tokio::test]
    async fn each_tenant_reads_its_own_text_of_a_shared_id() {
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        let broker = open(&log).await;
        provision(&broker, &stored(A, "/event/X__e"), SCHEMA).await;
        provision(&broker, &stored(B, "/event/X__e"), PLAIN).await;
        let id = broker
            .topic(&stored(A, "/event/X__e"))
            .expect("topic")
            .current_schema()
            .clone();
        let text = |t: &str| {
            broker
                .schema_text(&tenant(t), id.as_str())
                .map(|s| s.to_string())
        };
        assert_eq!(text(A).expect("A's"), SCHEMA);
        assert_eq!(text(B).expect("B's"), PLAIN, "not A's private note");
        assert!(matches!(
            text("00D5e000000CcccEAC"),
            Err(BrokerError::SchemaNotFound(_))
        ));
        // After a restart too.
        drop(broker);
        let broker = open(&log).await;
        let text = |t: &str| {
            broker
                .schema_text(&tenant(t), id.as_str())
                .map(|s| s.to_string())
        };
        assert_eq!(text(A).expect("A's"), SCHEMA);
        assert_eq!(text(B).expect("B's"), PLAIN);
    }

    #[tokio::test]
    async fn old_records_go_to_their_one_tenant_or_show_the_canonical_form() {
        // What an older version left: topics of A and B, one text per id
        // (the first registered, A's with its private note).
        let memory = Arc::new(MemoryTopicLog::new());
        let log: SharedLog = memory.clone();
        let shared = ParsedSchema::parse(SCHEMA).expect("schema");
        let only_b = ParsedSchema::parse(
            r#"{"type":"record","name":"B__e","fields":[{"name":"N","type":"int","doc":"B's"}]}"#,
        )
        .expect("schema");
        memory.put_legacy_schema(shared.id().clone(), SCHEMA.into());
        memory.put_legacy_schema(only_b.id().clone(), only_b.json().into());
        for (i, (tenant, name, id)) in [
            (A, "/event/X__e", shared.id()),
            (B, "/event/X__e", shared.id()),
            (B, "/event/Y__e", only_b.id()),
        ]
        .into_iter()
        .enumerate()
        {
            log.put_topic(crate::log::TopicRecord {
                id: u32::try_from(i + 1).expect("small"),
                name: stored(tenant, name),
                schema_ids: vec![id.to_string()],
                retention_ms: 60_000,
                created_ms: 1,
            })
            .await
            .expect("topic");
        }

        let broker = open(&log).await;
        let text = |t: &str, id: &SchemaId| {
            broker
                .schema_text(&tenant(t), id.as_str())
                .map(|s| s.to_string())
        };
        // Used by B's topics only: B's text, stored as B's.
        assert_eq!(text(B, only_b.id()).expect("B's"), only_b.json());
        assert_eq!(
            log.get_schema(Some(&tenant(B)), only_b.id())
                .await
                .expect("get")
                .as_deref(),
            Some(only_b.json()),
            "given to B durably"
        );
        assert!(text(A, only_b.id()).is_err(), "A has no topic using it");
        // Used by both: whose text it is cannot be known, so neither gets it.
        let canonical = shared.canonical_form().to_owned();
        assert_eq!(text(B, shared.id()).expect("B"), canonical);
        assert_eq!(text(A, shared.id()).expect("A"), canonical);
        // Registering the schema again brings a tenant's own text back.
        let again = broker
            .register_schema(
                &stored(A, "/event/X__e"),
                ParsedSchema::parse(SCHEMA).expect("schema"),
            )
            .await
            .expect("register");
        assert!(!again, "the same version: nothing new");
        assert_eq!(text(A, shared.id()).expect("A"), SCHEMA);
        assert_eq!(text(B, shared.id()).expect("B"), canonical);
        // Publishing still validates against the shared id.
        assert!(broker.schema(shared.id().as_str()).is_ok());
    }
}
