//! Per-topic tail state shared by a backend's writer and its readers.
//!
//! Owns: the latest-offset watch and the trim point of every registered topic.
//! Must not: do IO.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::{LogBounds, LogError};
use crate::types::{Offset, TopicId};

/// One topic's tail.
#[derive(Debug)]
pub struct TailState {
    latest: watch::Sender<Offset>,
    trimmed: AtomicU64,
}

impl TailState {
    /// The latest committed offset.
    pub fn latest(&self) -> Offset {
        *self.latest.borrow()
    }

    /// Moves the tail after a commit and wakes every watcher.
    pub fn publish(&self, latest: Offset) {
        self.latest.send_replace(latest);
    }

    /// Moves the tail forward to `latest` unless it is already there or
    /// beyond; wakes watchers only on a move. For backends where several
    /// sources (this process's appends, a follower of other processes')
    /// report the same tail out of order.
    pub fn advance(&self, latest: Offset) {
        self.latest.send_if_modified(|cur| {
            let moved = latest > *cur;
            if moved {
                *cur = latest;
            }
            moved
        });
    }

    /// Records a new trim point.
    pub fn set_trimmed(&self, trimmed: Offset) {
        self.trimmed.fetch_max(trimmed.0, Ordering::AcqRel);
    }

    /// Current bounds.
    pub fn bounds(&self) -> LogBounds {
        LogBounds {
            trimmed: Offset(self.trimmed.load(Ordering::Acquire)),
            latest: self.latest(),
        }
    }
}

/// All registered topics' tails.
#[derive(Debug, Default)]
pub struct Tails {
    map: RwLock<HashMap<TopicId, Arc<TailState>>>,
}

impl Tails {
    /// Registers a topic with its recovered bounds; keeps an existing entry.
    pub fn register(&self, topic: TopicId, bounds: LogBounds) -> Arc<TailState> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.entry(topic)
            .or_insert_with(|| {
                Arc::new(TailState {
                    latest: watch::Sender::new(bounds.latest),
                    trimmed: AtomicU64::new(bounds.trimmed.0),
                })
            })
            .clone()
    }

    /// Forgets a topic; its watchers see the watch close.
    pub fn remove(&self, topic: TopicId) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.remove(&topic);
    }

    /// Whether the topic is registered.
    pub fn contains(&self, topic: TopicId) -> bool {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(&topic)
    }

    /// The topic's tail, or [`LogError::UnknownTopic`].
    pub fn get(&self, topic: TopicId) -> Result<Arc<TailState>, LogError> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&topic)
            .cloned()
            .ok_or(LogError::UnknownTopic(topic.0))
    }

    /// A watch on the topic's latest offset.
    pub fn watch(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        Ok(self.get(topic)?.latest.subscribe())
    }
}
