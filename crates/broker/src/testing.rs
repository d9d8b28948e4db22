//! Set-up shared by the engine's unit tests (compiled for tests only).
//!
//! Owns: brokers on the in-memory log with a topic and events, polling with
//! a deadline, and [`TokioLeaseLog`]: the in-memory log with its leases on
//! tokio's clock, so lease expiry can run on a paused clock.
//! Must not: be named by anything but tests, or sleep in real time where a
//! paused clock can stand in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::log::lease::{LeaseHolder, LeaseKey};
use crate::log::memory::MemoryTopicLog;
use crate::log::{
    Catalog, CatalogChange, CatalogStore, CommitRecord, EpochMillis, EventLog, LeaseStore,
    LogBounds, LogError, ManagedRecord, NewEvent, RecordStore, SharedLog, StorageStats,
    StoredEvent, StoredRecord, TopicRecord,
};
use crate::metrics::Metrics;
use crate::schema::ParsedSchema;
use crate::types::{ManagedId, Offset, SchemaId, TenantId, TopicId, TopicName};
use crate::{Broker, BrokerConfig, PublishEvent};

/// A schema every test topic can use (its events are one zig-zag long).
pub(crate) const SCHEMA: &str =
    r#"{"type":"record","name":"A__e","fields":[{"name":"CreatedDate","type":"long"}]}"#;

/// A broker on `log` with `cfg`.
pub(crate) async fn open(log: SharedLog, cfg: BrokerConfig) -> Arc<Broker> {
    Broker::open(log, cfg, Arc::new(Metrics::new()))
        .await
        .expect("broker")
}

/// Creates `name` with [`SCHEMA`].
pub(crate) async fn topic(broker: &Broker, name: &str) {
    let name = TopicName::parse(name).expect("name");
    broker
        .provision(&name, ParsedSchema::parse(SCHEMA).expect("schema"))
        .await
        .expect("provision");
}

/// Publishes `n` events to `topic` and returns their offsets.
pub(crate) async fn publish(broker: &Broker, topic: &str, n: usize) -> Vec<Offset> {
    let schema = broker
        .topic(topic)
        .expect("topic")
        .current_schema()
        .to_string();
    let events = (0..n)
        .map(|_| PublishEvent {
            id: String::new(),
            schema_id: schema.clone(),
            payload: bytes::Bytes::from_static(&[2]),
            headers: Vec::new(),
        })
        .collect();
    let receipt = broker.publish(topic, events).await.expect("publish");
    receipt
        .outcomes
        .iter()
        .map(|o| o.result.as_ref().expect("published").offset())
        .collect()
}

/// Polls `done` until it holds, failing the test after 10 s (of tokio's
/// clock: under a paused clock the wait costs no real time).
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The in-memory log, but its leases expire on tokio's clock (the memory
/// log's own lease table reads `std::time::Instant`, which a paused clock
/// does not move). Shared by several brokers it stands for one log shared
/// by several processes; [`TokioLeaseLog::cut_off`] makes one of them lose
/// touch with the lease store.
#[derive(Default)]
pub(crate) struct TokioLeaseLog {
    inner: MemoryTopicLog,
    // key -> (holder, expiry)
    leases: Mutex<HashMap<String, (String, Instant)>>,
    // Holders with this prefix get errors from every lease call.
    cut_off: Mutex<Option<String>>,
}

impl TokioLeaseLog {
    /// From now on, every lease call of a holder whose name starts with
    /// `prefix` (a broker's instance name) fails.
    pub(crate) fn cut_off(&self, prefix: &str) {
        *lock(&self.cut_off) = Some(prefix.to_owned());
    }

    fn reachable(&self, holder: &str) -> Result<(), LogError> {
        match lock(&self.cut_off).as_deref() {
            Some(prefix) if holder.starts_with(prefix) => {
                Err(LogError::Storage("the lease store is unreachable".into()))
            }
            _ => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl EventLog for TokioLeaseLog {
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError> {
        self.inner.register_topic(topic).await
    }

    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError> {
        self.inner.append(topic, events).await
    }

    async fn append_many(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
    ) -> Result<Vec<Vec<Offset>>, LogError> {
        self.inner.append_many(parts).await
    }

    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        self.inner.read(topic, after, max_events, max_bytes).await
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        self.inner.bounds(topic)
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.inner.watch_tail(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff: EpochMillis) -> Result<u64, LogError> {
        self.inner.trim_older_than(topic, cutoff).await
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        self.inner.disk_size(topic).await
    }

    fn storage_stats(&self) -> StorageStats {
        self.inner.storage_stats()
    }

    async fn close(&self) -> Result<(), LogError> {
        self.inner.close().await
    }
}

#[async_trait::async_trait]
impl CatalogStore for TokioLeaseLog {
    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        self.inner.load_catalog().await
    }

    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError> {
        self.inner.put_topic(record).await
    }

    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError> {
        self.inner.create_topic(record).await
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        self.inner.delete_topic(topic, name).await
    }

    async fn allocate_topic_id(&self) -> Result<TopicId, LogError> {
        self.inner.allocate_topic_id().await
    }

    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError> {
        self.inner.put_schema(tenant, id, json).await
    }

    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError> {
        self.inner.get_schema(tenant, id).await
    }

    async fn get_managed(&self, id: &ManagedId) -> Result<Option<ManagedRecord>, LogError> {
        self.inner.get_managed(id).await
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        self.inner.put_managed(record).await
    }

    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError> {
        self.inner.create_managed(record).await
    }

    async fn put_commit(
        &self,
        id: &ManagedId,
        commit: Option<CommitRecord>,
    ) -> Result<bool, LogError> {
        self.inner.put_commit(id, commit).await
    }

    async fn delete_managed(&self, id: &ManagedId) -> Result<(), LogError> {
        self.inner.delete_managed(id).await
    }

    fn watch_catalog(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        self.inner.watch_catalog()
    }
}

#[async_trait::async_trait]
impl LeaseStore for TokioLeaseLog {
    async fn acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        let (key, holder) = (key.as_str(), holder.as_str());
        self.reachable(holder)?;
        let now = Instant::now();
        let mut leases = lock(&self.leases);
        match leases.get(key) {
            Some((other, until)) if other != holder && *until > now => Ok(false),
            _ => {
                leases.insert(key.to_owned(), (holder.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        let (key, holder) = (key.as_str(), holder.as_str());
        self.reachable(holder)?;
        let now = Instant::now();
        match lock(&self.leases).get_mut(key) {
            Some((h, until)) if h == holder && *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, key: &LeaseKey, holder: &LeaseHolder) -> Result<(), LogError> {
        let (key, holder) = (key.as_str(), holder.as_str());
        self.reachable(holder)?;
        let mut leases = lock(&self.leases);
        if leases.get(key).is_some_and(|(h, _)| h == holder) {
            leases.remove(key);
        }
        Ok(())
    }
}

// Records are not what this wrapper changes: the memory log's, as they are.
#[async_trait::async_trait]
impl RecordStore for TokioLeaseLog {
    async fn get_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError> {
        self.inner.get_record(tenant, key).await
    }

    async fn put_record(
        &self,
        tenant: &TenantId,
        key: &str,
        value: bytes::Bytes,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        self.inner.put_record(tenant, key, value, expected).await
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError> {
        self.inner.delete_record(tenant, key, expected).await
    }

    async fn list_records(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError> {
        self.inner.list_records(tenant, prefix, after, limit).await
    }

    async fn next_in_sequence(
        &self,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError> {
        self.inner.next_in_sequence(tenant, name, n).await
    }
}
