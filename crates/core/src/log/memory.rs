//! The in-memory twin of the RocksDB backend.
//!
//! Owns: a [`super::TopicLog`] that keeps everything in process memory, for tests
//! and for the contract suite; its record store is the `records` submodule.
//! Must not: be used where durability matters.

mod records;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::lease::LeaseTable;
use super::tail::Tails;
use super::{
    Catalog, CatalogChange, CatalogStore, CommitRecord, EpochMillis, EventLog, LeaseHolder,
    LeaseKey, LeaseStore, LogBounds, LogError, ManagedRecord, NewEvent, SchemaRecord, StoredEvent,
    TopicRecord, now_ms,
};
use crate::types::{ManagedId, Offset, SchemaId, TenantId, TopicId};

/// An in-memory topic log. Shared by several brokers in one process, it
/// stands in for a log several eventbus processes share: every handle sees
/// every catalog change and the same leases.
pub struct MemoryTopicLog {
    tails: Tails,
    // One lock for all topics: appends are serialised as with the RocksDB
    // writer, which is what the contract expects. No `.await` inside.
    events: Mutex<HashMap<TopicId, VecDeque<StoredEvent>>>,
    topics: Mutex<HashMap<String, TopicRecord>>,
    // By owner (`None`: a text stored before texts were kept per tenant).
    schemas: Mutex<HashMap<(Option<TenantId>, SchemaId), String>>,
    next_topic_id: Mutex<u32>,
    managed: Mutex<HashMap<String, ManagedRecord>>,
    closed: AtomicBool,
    changes: broadcast::Sender<CatalogChange>,
    leases: LeaseTable,
    records: records::MemoryRecords,
}

impl Default for MemoryTopicLog {
    fn default() -> Self {
        Self {
            tails: Tails::default(),
            events: Mutex::default(),
            topics: Mutex::default(),
            schemas: Mutex::default(),
            next_topic_id: Mutex::new(1),
            managed: Mutex::default(),
            closed: AtomicBool::new(false),
            changes: broadcast::channel(CHANGES_BUFFERED).0,
            leases: LeaseTable::default(),
            records: records::MemoryRecords::default(),
        }
    }
}

/// Catalog changes a slow watcher may fall behind by before it must reload.
const CHANGES_BUFFERED: usize = 1024;

impl MemoryTopicLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a schema text the way versions before per-tenant texts did:
    /// one text per id, no tenant. For tests of how such records load.
    #[cfg(any(test, feature = "test-util"))]
    pub fn put_legacy_schema(&self, id: SchemaId, json: String) {
        lock(&self.schemas).insert((None, id), json);
    }

    fn changed(&self, change: CatalogChange) {
        // No watcher is fine: nobody needs to know.
        let _ = self.changes.send(change);
    }

    fn open(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl EventLog for MemoryTopicLog {
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError> {
        self.tails.register(topic, LogBounds::default());
        lock(&self.events).entry(topic).or_default();
        Ok(())
    }

    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError> {
        // Like the RocksDB backend: an empty batch assigns nothing, so it
        // succeeds whatever the topic or state (found by the model test).
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let tail = self.tails.get(topic)?;
        let mut all = lock(&self.events);
        let log = all.entry(topic).or_default();
        let mut cur = tail.latest();
        let time_ms = now_ms();
        let mut offsets = Vec::with_capacity(events.len());
        for event in events {
            cur = cur.next();
            log.push_back(StoredEvent {
                offset: cur,
                time_ms,
                event,
            });
            offsets.push(cur);
        }
        tail.publish(cur);
        Ok(offsets)
    }

    async fn append_many(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
    ) -> Result<Vec<Vec<Offset>>, LogError> {
        super::check_distinct_topics(&parts)?;
        if parts.iter().all(|(_, events)| events.is_empty()) {
            return Ok(vec![Vec::new(); parts.len()]);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        // Every topic is checked before anything is stored.
        let tails = parts
            .iter()
            .map(|(topic, _)| self.tails.get(*topic))
            .collect::<Result<Vec<_>, _>>()?;
        // One lock for the whole call: no other append lands in between.
        let mut all = lock(&self.events);
        let time_ms = now_ms();
        let mut out = Vec::with_capacity(parts.len());
        for ((topic, events), tail) in parts.into_iter().zip(&tails) {
            let log = all.entry(topic).or_default();
            let mut cur = tail.latest();
            let mut offsets = Vec::with_capacity(events.len());
            for event in events {
                cur = cur.next();
                log.push_back(StoredEvent {
                    offset: cur,
                    time_ms,
                    event,
                });
                offsets.push(cur);
            }
            // Under the lock, as `append` does: the next call reads the
            // tail to number its events.
            if !offsets.is_empty() {
                tail.publish(cur);
            }
            out.push(offsets);
        }
        Ok(out)
    }

    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        self.tails.get(topic)?;
        let all = lock(&self.events);
        let Some(log) = all.get(&topic) else {
            return Ok(Vec::new());
        };
        let start = log.partition_point(|e| e.offset <= after);
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in log.range(start..) {
            let size = e.event.approx_size();
            if out.len() >= max_events || (!out.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        Ok(out)
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        Ok(self.tails.get(topic)?.bounds())
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.tails.watch(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff: EpochMillis) -> Result<u64, LogError> {
        let cutoff_ms = cutoff.0;
        let tail = self.tails.get(topic)?;
        let mut all = lock(&self.events);
        let Some(log) = all.get_mut(&topic) else {
            return Ok(0);
        };
        let mut deleted = 0;
        while log.front().is_some_and(|e| e.time_ms < cutoff_ms) {
            if let Some(e) = log.pop_front() {
                tail.set_trimmed(e.offset);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    fn storage_stats(&self) -> super::StorageStats {
        let all = lock(&self.events);
        let size_bytes = all
            .values()
            .flat_map(|l| l.iter())
            .map(|e| e.event.approx_size() as u64)
            .sum();
        super::StorageStats {
            size_bytes,
            pending_compaction_bytes: 0,
        }
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        let all = lock(&self.events);
        Ok(all
            .get(&topic)
            .map_or(0, |l| l.iter().map(|e| e.event.approx_size() as u64).sum()))
    }

    async fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[async_trait::async_trait]
impl CatalogStore for MemoryTopicLog {
    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let mut topics: Vec<_> = lock(&self.topics).values().cloned().collect();
        topics.sort_by_key(|t| t.id);
        let mut schemas: Vec<SchemaRecord> = lock(&self.schemas)
            .iter()
            .map(|((tenant, id), json)| SchemaRecord {
                tenant: tenant.clone(),
                id: id.clone(),
                json: json.clone(),
            })
            .collect();
        schemas.sort();
        Ok(Catalog {
            topics,
            schemas,
            next_topic_id: (*lock(&self.next_topic_id)).max(1),
            managed: {
                let mut m: Vec<_> = lock(&self.managed).values().cloned().collect();
                m.sort_by(|a, b| a.id.cmp(&b.id));
                m
            },
        })
    }

    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError> {
        {
            let mut next = lock(&self.next_topic_id);
            *next = (*next).max(record.id.saturating_add(1));
        }
        lock(&self.topics).insert(record.name.clone(), record.clone());
        self.changed(CatalogChange::Topic(record));
        Ok(())
    }

    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError> {
        {
            let mut topics = lock(&self.topics);
            if topics.contains_key(&record.name) {
                return Ok(false);
            }
            let mut next = lock(&self.next_topic_id);
            *next = (*next).max(record.id.saturating_add(1));
            topics.insert(record.name.clone(), record.clone());
        }
        self.changed(CatalogChange::Topic(record));
        Ok(true)
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let removed = lock(&self.events)
            .remove(&topic)
            .map_or(0, |l| l.len() as u64);
        lock(&self.topics).remove(name);
        self.tails.remove(topic);
        self.changed(CatalogChange::TopicDeleted(name.to_owned()));
        Ok(removed)
    }

    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError> {
        lock(&self.schemas).insert((Some(tenant.clone()), id.clone()), json.clone());
        self.changed(CatalogChange::Schema(SchemaRecord {
            tenant: Some(tenant.clone()),
            id,
            json,
        }));
        Ok(())
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        self.open()?;
        lock(&self.managed).insert(record.id.clone(), record.clone());
        self.changed(CatalogChange::Managed(record));
        Ok(())
    }

    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError> {
        self.open()?;
        {
            let mut all = lock(&self.managed);
            if all
                .values()
                .any(|r| r.same_tenant(&record) && r.developer_name == record.developer_name)
            {
                return Ok(false);
            }
            all.insert(record.id.clone(), record.clone());
        }
        self.changed(CatalogChange::Managed(record));
        Ok(true)
    }

    async fn delete_managed(&self, id: &ManagedId) -> Result<(), LogError> {
        self.open()?;
        lock(&self.managed).remove(id.as_str());
        self.changed(CatalogChange::ManagedDeleted(id.to_string()));
        Ok(())
    }

    async fn put_commit(
        &self,
        id: &ManagedId,
        commit: Option<CommitRecord>,
    ) -> Result<bool, LogError> {
        self.open()?;
        let updated = lock(&self.managed).get_mut(id.as_str()).map(|r| {
            r.commit = commit;
            r.clone()
        });
        Ok(match updated {
            Some(rec) => {
                self.changed(CatalogChange::Managed(rec));
                true
            }
            None => false,
        })
    }

    async fn get_managed(&self, id: &ManagedId) -> Result<Option<ManagedRecord>, LogError> {
        self.open()?;
        Ok(lock(&self.managed).get(id.as_str()).cloned())
    }

    async fn allocate_topic_id(&self) -> Result<TopicId, LogError> {
        self.open()?;
        let mut next = lock(&self.next_topic_id);
        let id = (*next).max(1);
        *next = id.saturating_add(1);
        Ok(TopicId(id))
    }

    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError> {
        Ok(lock(&self.schemas)
            .get(&(tenant.cloned(), id.clone()))
            .cloned())
    }

    fn watch_catalog(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        Some(self.changes.subscribe())
    }
}

#[async_trait::async_trait]
impl LeaseStore for MemoryTopicLog {
    async fn acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.open()?;
        Ok(self.leases.acquire(key, holder, ttl))
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.open()?;
        Ok(self.leases.renew(key, holder, ttl))
    }

    async fn release_lease(&self, key: &LeaseKey, holder: &LeaseHolder) -> Result<(), LogError> {
        self.leases.release(key, holder);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::contract;

    contract::contract_tests!({ (MemoryTopicLog::new(), ()) });
}
