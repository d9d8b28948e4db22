//! The in-memory twin of the RocksDB backend.
//!
//! Owns: a [`TopicLog`] that keeps everything in process memory, for tests
//! and for the contract suite. Must not: be used where durability matters.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::tail::Tails;
use super::{
    Catalog, LogBounds, LogError, ManagedRecord, NewEvent, StoredEvent, TopicLog, TopicRecord,
    now_ms,
};
use crate::types::{Offset, SchemaId, TopicId};

/// An in-memory topic log.
#[derive(Default)]
pub struct MemoryTopicLog {
    tails: Tails,
    // One lock for all topics: appends are serialised as with the RocksDB
    // writer, which is what the contract expects. No `.await` inside.
    events: Mutex<HashMap<TopicId, VecDeque<StoredEvent>>>,
    topics: Mutex<HashMap<String, TopicRecord>>,
    schemas: Mutex<HashMap<SchemaId, String>>,
    next_topic_id: Mutex<u32>,
    managed: Mutex<HashMap<String, ManagedRecord>>,
    closed: AtomicBool,
}

impl MemoryTopicLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl TopicLog for MemoryTopicLog {
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

    async fn trim_older_than(&self, topic: TopicId, cutoff_ms: u64) -> Result<u64, LogError> {
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

    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let mut topics: Vec<_> = lock(&self.topics).values().cloned().collect();
        topics.sort_by_key(|t| t.id);
        let schemas = lock(&self.schemas)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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
        lock(&self.topics).insert(record.name.clone(), record);
        Ok(())
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let removed = lock(&self.events)
            .remove(&topic)
            .map_or(0, |l| l.len() as u64);
        lock(&self.topics).remove(name);
        self.tails.remove(topic);
        Ok(removed)
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        let all = lock(&self.events);
        Ok(all
            .get(&topic)
            .map_or(0, |l| l.iter().map(|e| e.event.approx_size() as u64).sum()))
    }

    async fn put_schema(&self, id: SchemaId, json: String) -> Result<(), LogError> {
        lock(&self.schemas).insert(id, json);
        Ok(())
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        lock(&self.managed).insert(record.id.clone(), record);
        Ok(())
    }

    async fn delete_managed(&self, id: &str) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        lock(&self.managed).remove(id);
        Ok(())
    }

    async fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::contract;

    contract::contract_tests!({ (MemoryTopicLog::new(), ()) });
}
