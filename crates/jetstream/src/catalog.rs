//! The catalog in key-value buckets: the [`CatalogStore`] methods.
//!
//! Owns: topic, schema and managed-subscription records (a topic's stream
//! is created with its record and deleted with it), the developer-name
//! claims, the topic id counter in the meta bucket (compare-and-set, so two
//! processes never take one id), decoding schema entries, listing a bucket
//! and handing out the catalog feed. Must not: append or read events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::broadcast;

use eventbus_core::log::{
    BoxError, Catalog, CatalogChange, CatalogStore, CommitRecord, LogError, ManagedRecord,
    SchemaRecord, TopicRecord,
};
use eventbus_core::types::{ManagedId, SchemaId, TenantId, TopicId};

use crate::JetStreamTopicLog;
use crate::error::{storage, stream_gone, timed};
use crate::keys::{key_of, schema_key, unkey};
use crate::state::Inner;

const NEXT_TOPIC_ID: &str = "next_topic_id";

/// A schemas bucket entry as a record.
pub(crate) fn schema_record(key: &str, value: &[u8]) -> Result<SchemaRecord, LogError> {
    let name = unkey(key)?;
    let json = String::from_utf8(value.to_vec())
        .map_err(|_| LogError::Corrupt(format!("schema {name} is not UTF-8").into()))?;
    let (tenant, id) = match name.split_once('/') {
        Some((tenant, id)) => (Some(TenantId::from_stored(tenant)), id.to_owned()),
        None => (None, name),
    };
    Ok(SchemaRecord {
        tenant,
        id: SchemaId::new(id),
        json,
    })
}

impl JetStreamTopicLog {
    /// A feed of catalog changes made by any process, this one included.
    /// Take it before [`CatalogStore::load_catalog`] so nothing falls between
    /// the two; a receiver that lags (`RecvError::Lagged`) should load the
    /// catalog again.
    pub(crate) fn catalog_feed(&self) -> broadcast::Receiver<CatalogChange> {
        self.inner.catalog_tx.subscribe()
    }

    /// Atomically takes the next topic id (compare-and-set on the meta
    /// bucket), so two processes never get the same one.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails, [`LogError::Corrupt`]
    /// when the stored counter is not a number.
    pub(crate) async fn take_topic_id(&self) -> Result<u32, LogError> {
        loop {
            let (current, revision) = self.inner.next_topic_id().await?;
            let next = current
                .checked_add(1)
                .ok_or_else(|| storage("topic ids exhausted"))?;
            if self.inner.set_next_topic_id(next, revision).await? {
                return Ok(current);
            }
        }
    }
}

impl Inner {
    pub(crate) async fn next_topic_id(&self) -> Result<(u32, Option<u64>), LogError> {
        let entry = self
            .meta_kv
            .entry(NEXT_TOPIC_ID)
            .await
            .map_err(|e| LogError::storage_in("next topic id", e))?;
        match entry {
            Some(e) if e.operation == Operation::Put => {
                let v = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| LogError::Corrupt("next topic id is not a number".into()))?;
                Ok((v.max(1), Some(e.revision)))
            }
            _ => Ok((1, None)),
        }
    }

    /// Compare-and-set of the counter; false when another process won.
    pub(crate) async fn set_next_topic_id(
        &self,
        next: u32,
        revision: Option<u64>,
    ) -> Result<bool, LogError> {
        let value = Bytes::from(next.to_string());
        match revision {
            None => match self.meta_kv.create(NEXT_TOPIC_ID, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(LogError::storage_in("next topic id", e)),
            },
            Some(rev) => match self.meta_kv.update(NEXT_TOPIC_ID, value, rev).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(LogError::storage_in("next topic id", e)),
            },
        }
    }

    /// Raises the counter to at least `min`; never lowers it.
    pub(crate) async fn raise_next_topic_id(&self, min: u32) -> Result<(), LogError> {
        loop {
            let (current, revision) = self.next_topic_id().await?;
            if current >= min && revision.is_some() {
                return Ok(());
            }
            if self.set_next_topic_id(current.max(min), revision).await? {
                return Ok(());
            }
        }
    }
}

/// Every live key and value of a bucket (deleted keys skipped).
/// A managed subscription as its bucket holds it now, with the revision to
/// update it at; `None` when absent or deleted.
async fn stored_managed(
    store: &kv::Store,
    id: &str,
) -> Result<Option<(ManagedRecord, u64)>, LogError> {
    let entry = store
        .entry(key_of(id))
        .await
        .map_err(|e| LogError::storage_in(format!("managed subscription {id}"), e))?;
    let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
        return Ok(None);
    };
    let rec = serde_json::from_slice(&entry.value)
        .map_err(|e| LogError::corrupt_in(format!("managed subscription {id}"), e))?;
    Ok(Some((rec, entry.revision)))
}

pub(crate) async fn all_entries(store: &kv::Store) -> Result<Vec<(String, Bytes)>, LogError> {
    let keys: Vec<String> = timed("list keys", async {
        let keys = store.keys().await.map_err(BoxError::from)?;
        keys.try_collect::<Vec<String>>()
            .await
            .map_err(BoxError::from)
    })
    .await
    .map_err(storage)?;
    // A few gets at a time: the catalog is small, but not one round trip
    // after another.
    let entries: Vec<Option<(String, Bytes)>> = futures_util::stream::iter(keys)
        .map(|k| async move {
            let v = store
                .get(k.as_str())
                .await
                .map_err(|e| LogError::storage_in(format!("{}: {k}", store.name), e))?;
            Ok::<_, LogError>(v.map(|v| (k, v)))
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(entries.into_iter().flatten().collect())
}

#[async_trait::async_trait]
impl CatalogStore for JetStreamTopicLog {
    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let inner = &self.inner;
        let topics: Vec<(String, Bytes)> = all_entries(&inner.topics_kv).await?;
        let mut cat = Catalog::default();
        for (_, v) in topics {
            let rec: TopicRecord =
                serde_json::from_slice(&v).map_err(|e| LogError::corrupt_in("topic record", e))?;
            cat.topics.push(rec);
        }
        cat.topics.sort_by_key(|t| t.id);
        for (k, v) in all_entries(&inner.schemas_kv).await? {
            cat.schemas.push(schema_record(&k, &v)?);
        }
        cat.schemas.sort();
        for (_, v) in all_entries(&inner.managed_kv).await? {
            let rec: ManagedRecord = serde_json::from_slice(&v)
                .map_err(|e| LogError::corrupt_in("managed subscription record", e))?;
            cat.managed.push(rec);
        }
        cat.managed.sort_by(|a, b| a.id.cmp(&b.id));
        let (next, _) = inner.next_topic_id().await?;
        let max_used = cat.topics.iter().map(|t| t.id).max().unwrap_or(0);
        cat.next_topic_id = next.max(max_used.saturating_add(1)).max(1);
        Ok(cat)
    }

    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError> {
        let inner = &self.inner;
        // The counter first: after a crash midway an id is skipped, never
        // handed out twice.
        inner
            .raise_next_topic_id(record.id.saturating_add(1))
            .await?;
        let topic = TopicId(record.id);
        inner
            .ensure_stream(topic, Some(Duration::from_millis(record.retention_ms)))
            .await?;
        let value = serde_json::to_vec(&record).map_err(storage)?;
        inner
            .topics_kv
            .put(key_of(&record.name), value.into())
            .await
            .map_err(|e| LogError::storage_in(format!("topic record {}", record.name), e))?;
        Ok(())
    }

    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError> {
        let inner = &self.inner;
        inner
            .raise_next_topic_id(record.id.saturating_add(1))
            .await?;
        inner
            .ensure_stream(
                TopicId(record.id),
                Some(Duration::from_millis(record.retention_ms)),
            )
            .await?;
        let value = serde_json::to_vec(&record).map_err(storage)?;
        // Create, not put: of several processes creating the same topic at
        // once (replicas provisioning one topics folder), one wins.
        match inner
            .topics_kv
            .create(key_of(&record.name), value.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LogError::storage_in(
                format!("topic record {}", record.name),
                e,
            )),
        }
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let inner = &self.inner;
        let stream_name = inner.stream_name(topic);
        let held = match timed("stream info", inner.js.get_stream(&stream_name)).await {
            Ok(s) => s.cached_info().state.messages,
            Err(e) if stream_gone(&e) => 0,
            Err(e) => return Err(storage(e)),
        };
        match timed("stream delete", inner.js.delete_stream(&stream_name)).await {
            Ok(_) => {}
            Err(e) if stream_gone(&e) => {}
            Err(e) => return Err(storage(e)),
        }
        // Only a live record is deleted: every deletion reaches every
        // process's catalog feed, and a second one for the same topic would
        // only make them all act on it again.
        let key = key_of(name);
        let live = inner
            .topics_kv
            .entry(key.as_str())
            .await
            .map_err(|e| LogError::storage_in(format!("topic record {name}"), e))?
            .is_some_and(|e| e.operation == Operation::Put);
        if live {
            inner
                .topics_kv
                .delete(&key)
                .await
                .map_err(|e| LogError::storage_in(format!("topic record {name}"), e))?;
        }
        inner.forget(topic, None);
        Ok(held)
    }

    async fn allocate_topic_id(&self) -> Result<TopicId, LogError> {
        self.take_topic_id().await.map(TopicId)
    }

    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError> {
        self.inner
            .schemas_kv
            .put(schema_key(Some(tenant), &id), json.into())
            .await
            .map_err(|e| LogError::storage_in(format!("schema {id}"), e))?;
        Ok(())
    }

    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError> {
        let value = self
            .inner
            .schemas_kv
            .get(schema_key(tenant, id))
            .await
            .map_err(|e| LogError::storage_in(format!("schema {id}"), e))?;
        value
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| LogError::Corrupt(format!("schema {id} is not UTF-8").into()))
            })
            .transpose()
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let value = serde_json::to_vec(&record).map_err(storage)?;
        self.inner
            .managed_kv
            .put(key_of(&record.id), value.into())
            .await
            .map_err(|e| LogError::storage_in(format!("managed subscription {}", record.id), e))?;
        Ok(())
    }

    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let names = &self.inner.names_kv;
        // Claimed under the canonical tenant id, so both forms of an org id
        // take one name.
        let tenant = TenantId::from_stored(&record.tenant);
        let name = key_of(&format!("{tenant}/{}", record.developer_name));
        let fail = |e: BoxError| {
            LogError::storage_in(
                format!("managed subscription name {}", record.developer_name),
                e,
            )
        };
        // Older versions claimed under the form the token named: a live
        // claim under the 15-character form takes the name too.
        let legacy = key_of(&format!("{}/{}", tenant.short(), record.developer_name));
        if let Some(claim) = names.entry(&legacy).await.map_err(|e| fail(e.into()))?
            && claim.operation == Operation::Put
        {
            let holder = String::from_utf8_lossy(&claim.value).into_owned();
            let alive = self
                .inner
                .managed_kv
                .get(key_of(&holder))
                .await
                .map_err(|e| fail(e.into()))?
                .is_some();
            if alive {
                return Ok(false);
            }
        }
        loop {
            match names.create(&name, record.id.clone().into()).await {
                Ok(_) => break,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    // Taken, unless the claim outlived its subscription (a
                    // process died between the claim and the record):
                    // then it is taken over.
                    let Some(claim) = names.entry(&name).await.map_err(|e| fail(e.into()))? else {
                        continue;
                    };
                    let holder = String::from_utf8_lossy(&claim.value).into_owned();
                    let alive = claim.operation == Operation::Put
                        && self
                            .inner
                            .managed_kv
                            .get(key_of(&holder))
                            .await
                            .map_err(|e| fail(e.into()))?
                            .is_some();
                    if alive {
                        return Ok(false);
                    }
                    match names
                        .update(&name, record.id.clone().into(), claim.revision)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(fail(e.into())),
                    }
                }
                Err(e) => return Err(fail(e.into())),
            }
        }
        self.put_managed(record).await?;
        Ok(true)
    }

    async fn put_commit(
        &self,
        id: &ManagedId,
        commit: Option<CommitRecord>,
    ) -> Result<bool, LogError> {
        let id = id.as_str();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let store = &self.inner.managed_kv;
        let k = key_of(id);
        // Read, change the commit, write back if nobody wrote in between: a
        // definition changed by another process keeps that change.
        loop {
            let Some((mut rec, revision)) = stored_managed(store, id).await? else {
                return Ok(false);
            };
            rec.commit = commit;
            let value = serde_json::to_vec(&rec).map_err(storage)?;
            match store.update(&k, value.into(), revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => {
                    return Err(LogError::storage_in(
                        format!("managed subscription {id}"),
                        e,
                    ));
                }
            }
        }
    }

    async fn get_managed(&self, id: &ManagedId) -> Result<Option<ManagedRecord>, LogError> {
        let id = id.as_str();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        // A KV get reads the bucket's stream itself (its leader), not this
        // process's watch of it, which may lag behind another process's write.
        Ok(stored_managed(&self.inner.managed_kv, id)
            .await?
            .map(|(rec, _)| rec))
    }

    async fn delete_managed(&self, id: &ManagedId) -> Result<(), LogError> {
        let id = id.as_str();
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let record = self
            .inner
            .managed_kv
            .get(key_of(id))
            .await
            .map_err(|e| LogError::storage_in(format!("managed subscription {id}"), e))?
            .and_then(|v| serde_json::from_slice::<ManagedRecord>(&v).ok());
        self.inner
            .managed_kv
            .delete(key_of(id))
            .await
            .map_err(|e| LogError::storage_in(format!("managed subscription {id}"), e))?;
        // The name is free again; a claim another subscription took over
        // meanwhile stays (it names another id).
        // The claim is under the canonical tenant id, or, made by an older
        // version, under the form the record names.
        if let Some(rec) = record {
            let canonical = TenantId::from_stored(&rec.tenant).to_string();
            let mut tenants = vec![canonical];
            if tenants[0] != rec.tenant {
                tenants.push(rec.tenant.clone());
            }
            for tenant in tenants {
                let name = key_of(&format!("{tenant}/{}", rec.developer_name));
                if let Ok(Some(claim)) = self.inner.names_kv.entry(&name).await
                    && claim.operation == Operation::Put
                    && claim.value.as_ref() == id.as_bytes()
                {
                    let _ = self
                        .inner
                        .names_kv
                        .delete_expect_revision(&name, Some(claim.revision))
                        .await;
                }
            }
        }
        Ok(())
    }

    fn watch_catalog(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        Some(self.catalog_feed())
    }
}
