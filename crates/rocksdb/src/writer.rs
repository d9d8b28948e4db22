//! The single writer of the RocksDB backend.
//!
//! Owns: offset assignment and group commit. Must not: read events.
//!
//! One dedicated OS thread drains whatever appends are queued (up to
//! [`MAX_GROUP_EVENTS`] events or [`MAX_GROUP_BYTES`]), writes them as one
//! `WriteBatch` and, with [`Durability::Sync`], fsyncs the WAL once for the
//! whole group. Only then does it move each topic's tail and answer every
//! caller. Concurrent publishers therefore share fsyncs, and nothing else in
//! the process assigns offsets.
//!
//! Disk full: a failed write assigns no offsets and moves no tail, so the
//! next group reuses the same offsets and nothing acknowledged changes.
//! RocksDB stops taking writes after a failed WAL append (it cannot trust
//! the WAL's tail) and resumes by itself once space is free (see `store`);
//! until then every group fails fast with [`LogError::StorageFull`], which
//! clients see as UNAVAILABLE with the `storage.full` code. The writer only
//! reports the transitions, once each, instead of one error per group.

use std::collections::HashMap;
use std::sync::Arc;

use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use crate::store::{CF_EVENTS, is_no_space};
use crate::types::{Offset, TopicId};
use crate::{codec, keys};
use eventbus_core::log::tail::Tails;
use eventbus_core::log::{Durability, LogError, NewEvent, now_ms};
use eventbus_core::metrics::Metrics;

/// Most events in one group commit: large enough that 50 concurrent callers
/// with 100-event batches share one fsync, small enough that one WriteBatch
/// stays a few MiB.
pub(crate) const MAX_GROUP_EVENTS: usize = 8192;
/// Most payload bytes in one group commit (approximate).
pub(crate) const MAX_GROUP_BYTES: usize = 16 << 20;
/// Queue depth between callers and the writer. Callers wait (async) when it
/// is full, which is the backpressure publishers feel.
pub(crate) const QUEUE_DEPTH: usize = 1024;

/// One queued append: topic, events, and where to send the offsets.
type PendingAppend = (
    TopicId,
    Vec<NewEvent>,
    oneshot::Sender<Result<Vec<Offset>, LogError>>,
);

/// A request to the writer.
pub(crate) enum WriterMsg {
    /// Append these events to this topic.
    Append {
        topic: TopicId,
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Offset>, LogError>>,
    },
    /// Sync the WAL and stop.
    Close {
        reply: oneshot::Sender<Result<(), LogError>>,
    },
}

/// Runs the writer loop on the current (dedicated) thread until the queue
/// closes or a `Close` arrives.
pub(crate) fn run(
    db: Arc<DB>,
    tails: Arc<Tails>,
    durability: Durability,
    mut rx: mpsc::Receiver<WriterMsg>,
    metrics: &Metrics,
) {
    let mut wo = WriteOptions::default();
    wo.set_sync(durability == Durability::Sync);
    let mut group: Vec<PendingAppend> = Vec::new();
    let mut value = Vec::new();
    // Whether the last commit failed for lack of space (log transitions only).
    let mut full = false;
    while let Some(first) = rx.blocking_recv() {
        let mut close = None;
        let mut n_events = 0usize;
        let mut n_bytes = 0usize;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Append {
                    topic,
                    events,
                    reply,
                } => {
                    n_events += events.len();
                    n_bytes += events.iter().map(NewEvent::approx_size).sum::<usize>();
                    group.push((topic, events, reply));
                }
                WriterMsg::Close { reply } => {
                    close = Some(reply);
                    break;
                }
            }
            if n_events >= MAX_GROUP_EVENTS || n_bytes >= MAX_GROUP_BYTES {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !group.is_empty() {
            let started = std::time::Instant::now();
            let outcome = commit(&db, &tails, &wo, &mut group, &mut value);
            match (full, outcome) {
                (false, Commit::Full(error)) => {
                    full = true;
                    tracing::error!(
                        %error,
                        "storage full: publishing fails with UNAVAILABLE (storage.full) until \
                         disk space is freed; writes resume by themselves once 64 MiB are free"
                    );
                }
                (true, Commit::Written) => {
                    full = false;
                    tracing::info!("storage writable again: publishing resumed");
                }
                _ => {}
            }
            metrics
                .commit_latency
                .observe(started.elapsed().as_secs_f64());
            metrics.commit_batch_events.observe(n_events as f64);
        }
        if let Some(reply) = close {
            let res = db.flush_wal(true).map_err(|e| LogError::Storage(e.into()));
            let _ = reply.send(res);
            rx.close();
            // Fail whatever raced in behind the close.
            while let Ok(msg) = rx.try_recv() {
                if let WriterMsg::Append { reply, .. } = msg {
                    let _ = reply.send(Err(LogError::Closed));
                }
            }
            return;
        }
    }
}

/// How one group commit ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Commit {
    /// The batch is durable and the tails moved.
    Written,
    /// The disk is full; nothing was written. Holds RocksDB's message.
    Full(String),
    /// Another storage failure; nothing was written.
    Failed,
}

fn commit(
    db: &DB,
    tails: &Tails,
    wo: &WriteOptions,
    group: &mut Vec<PendingAppend>,
    value: &mut Vec<u8>,
) -> Commit {
    let Some(cf) = db.cf_handle(CF_EVENTS) else {
        for (_, _, reply) in group.drain(..) {
            let _ = reply.send(Err(LogError::Storage(
                "events column family missing".into(),
            )));
        }
        return Commit::Failed;
    };
    let time_ms = now_ms();
    let mut batch = WriteBatch::default();
    // Next offset per topic inside this group; starts from the published tail.
    let mut latest: HashMap<TopicId, Offset> = HashMap::new();
    let mut outcomes: Vec<Result<Vec<Offset>, LogError>> = Vec::with_capacity(group.len());
    for (topic, events, _) in group.iter() {
        let tail = match tails.get(*topic) {
            Ok(t) => t,
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
        };
        let cur = latest.entry(*topic).or_insert_with(|| tail.latest());
        let mut offsets = Vec::with_capacity(events.len());
        for ev in events {
            *cur = cur.next();
            value.clear();
            codec::encode(time_ms, ev, value);
            batch.put_cf(&cf, keys::event_key(*topic, *cur), &value[..]);
            offsets.push(*cur);
        }
        outcomes.push(Ok(offsets));
    }
    match db.write_opt(batch, wo) {
        Ok(()) => {
            for (topic, off) in &latest {
                if let Ok(t) = tails.get(*topic) {
                    t.publish(*off);
                }
            }
            for ((_, _, reply), outcome) in group.drain(..).zip(outcomes) {
                let _ = reply.send(outcome);
            }
            Commit::Written
        }
        Err(e) if is_no_space(&e) => {
            // Logged once per episode by the caller; each failed group only
            // at debug level, or a full disk would also flood the log.
            tracing::debug!(error = %e, "group commit failed: storage full");
            for (_, _, reply) in group.drain(..) {
                let _ = reply.send(Err(LogError::StorageFull(e.clone().into())));
            }
            Commit::Full(e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; no offsets were assigned");
            for (_, _, reply) in group.drain(..) {
                let _ = reply.send(Err(LogError::Storage(e.clone().into())));
            }
            Commit::Failed
        }
    }
}
