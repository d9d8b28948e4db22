//! Live streams: the registry of running Subscribe and ManagedSubscribe
//! delivery loops, what `ListStreams`, `eventbus top` and the per-topic
//! gauges read.
//!
//! Owns: one `LiveSubscription` per running loop (registered when the
//! loop starts, removed by a drop guard however it ends) and the snapshots
//! taken of them ([`StreamSnapshot`]). The delivery path only stores into
//! atomics; the registry's lock is taken once when a stream opens, once
//! when it ends and once per listing or scrape, never per event.
//! Must not: know the wire or tenants' namespaces: it reports stored topic
//! names and the origin the protocol layer gave; filtering by tenant is the
//! caller's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Broker;
use crate::log::now_ms;
use crate::types::{Offset, ReplayId, TopicId};

/// Who opened a stream, as the protocol layer saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOrigin {
    /// The caller's tenant (org id).
    pub tenant: String,
    /// The client's address, when the transport knows it.
    pub peer: Option<std::net::SocketAddr>,
    /// The authenticated principal; empty without authentication.
    pub user: String,
    /// The RPC id of the call that opened the stream (it is in the logs).
    pub rpc_id: String,
}

/// Which RPC a stream serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Subscribe: the client keeps its position.
    Subscribe,
    /// ManagedSubscribe: the server keeps the committed position.
    Managed {
        /// The managed subscription's id (`18x…`).
        id: String,
        /// Its developer name.
        developer_name: String,
    },
}

/// What a running subscription publishes about itself. The loop that owns
/// it stores into the atomics; readers only load.
#[derive(Debug)]
pub(crate) struct LiveSubscription {
    pub(crate) topic: TopicId,
    pub(crate) topic_name: String,
    pub(crate) kind: StreamKind,
    pub(crate) origin: StreamOrigin,
    pub(crate) opened_ms: u64,
    /// The last delivered position (the start position before any).
    pub(crate) cursor: AtomicU64,
    /// Credit not yet used (`num_requested` not yet served).
    pub(crate) credit: AtomicU64,
    pub(crate) delivered_events: AtomicU64,
    pub(crate) delivered_bytes: AtomicU64,
    /// Epoch ms of the last response carrying events; 0 before the first.
    pub(crate) last_delivery_ms: AtomicU64,
}

impl LiveSubscription {
    /// A loop on `topic` starting after `cursor` with `credit`.
    pub(crate) fn new(
        topic: (TopicId, String),
        kind: StreamKind,
        origin: StreamOrigin,
        cursor: Offset,
        credit: u32,
    ) -> Self {
        Self {
            topic: topic.0,
            topic_name: topic.1,
            kind,
            origin,
            opened_ms: now_ms(),
            cursor: AtomicU64::new(cursor.0),
            credit: AtomicU64::new(u64::from(credit)),
            delivered_events: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            last_delivery_ms: AtomicU64::new(0),
        }
    }

    /// Records a response of `events` events and `bytes` payload bytes that
    /// left the loop, ending at `cursor` with `credit` left.
    pub(crate) fn delivered(&self, events: usize, bytes: usize, cursor: Offset, credit: u32) {
        self.delivered_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.delivered_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_delivery_ms.store(now_ms(), Ordering::Relaxed);
        self.cursor.store(cursor.0, Ordering::Relaxed);
        self.set_credit(credit);
    }

    /// Records the credit after a grant.
    pub(crate) fn set_credit(&self, credit: u32) {
        self.credit.store(u64::from(credit), Ordering::Relaxed);
    }
}

/// One running stream as it was when listed.
#[derive(Clone, Debug)]
pub struct StreamSnapshot {
    /// This process's number for the stream (unique while it runs).
    pub id: u64,
    /// The stored topic name.
    pub topic: String,
    /// Subscribe or ManagedSubscribe.
    pub kind: StreamKind,
    /// Who opened it.
    pub origin: StreamOrigin,
    /// Credit outstanding: events asked for and not yet delivered.
    pub credit: u64,
    /// Events delivered so far.
    pub delivered_events: u64,
    /// Payload bytes delivered so far.
    pub delivered_bytes: u64,
    /// The last delivered position (the start position before any).
    pub position: ReplayId,
    /// Events between [`StreamSnapshot::position`] and the topic's newest.
    pub lag: u64,
    /// When it opened, epoch ms.
    pub opened_ms: u64,
    /// When it last delivered events, epoch ms; `None` before the first.
    pub last_delivery_ms: Option<u64>,
}

/// The running loops, by registry id.
#[derive(Debug, Default)]
pub(crate) struct LiveStreams {
    // Short critical sections, never held across `.await`.
    by_id: std::sync::Mutex<HashMap<u64, Arc<LiveSubscription>>>,
    next_id: AtomicU64,
}

impl LiveStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveSubscription>>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every running loop with its registry id.
    pub(crate) fn all(&self) -> Vec<(u64, Arc<LiveSubscription>)> {
        self.lock().iter().map(|(id, s)| (*id, s.clone())).collect()
    }
}

/// Removes a stream from the registry however its loop ends.
pub(crate) struct LiveGuard<'a> {
    streams: &'a LiveStreams,
    id: u64,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.streams.lock().remove(&self.id);
    }
}

impl Broker {
    /// Registers a running loop until the returned guard is dropped.
    pub(crate) fn register_live(&self, sub: Arc<LiveSubscription>) -> LiveGuard<'_> {
        let streams = &self.live;
        let id = streams.next_id.fetch_add(1, Ordering::Relaxed);
        streams.lock().insert(id, sub);
        LiveGuard { streams, id }
    }

    /// Every running Subscribe and ManagedSubscribe stream of this
    /// process, oldest first, with its lag against the topic as it is now.
    pub fn live_streams(&self) -> Vec<StreamSnapshot> {
        let mut out: Vec<StreamSnapshot> = self
            .live
            .all()
            .into_iter()
            .map(|(id, s)| {
                let cursor = s.cursor.load(Ordering::Relaxed);
                let latest = self.log().bounds(s.topic).map_or(cursor, |b| b.latest.0);
                let last = s.last_delivery_ms.load(Ordering::Relaxed);
                StreamSnapshot {
                    id,
                    topic: s.topic_name.clone(),
                    kind: s.kind.clone(),
                    origin: s.origin.clone(),
                    credit: s.credit.load(Ordering::Relaxed),
                    delivered_events: s.delivered_events.load(Ordering::Relaxed),
                    delivered_bytes: s.delivered_bytes.load(Ordering::Relaxed),
                    position: ReplayId::from(Offset(cursor)),
                    lag: latest.saturating_sub(cursor),
                    opened_ms: s.opened_ms,
                    last_delivery_ms: (last > 0).then_some(last),
                }
            })
            .collect();
        out.sort_by_key(|s| (s.opened_ms, s.id));
        out
    }

    /// Running streams per topic.
    pub fn open_streams_by_topic(&self) -> HashMap<TopicId, u32> {
        let mut by_topic = HashMap::new();
        for (_, s) in self.live.all() {
            *by_topic.entry(s.topic).or_insert(0u32) += 1;
        }
        by_topic
    }
}
