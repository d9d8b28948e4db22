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
//! An [`WriterMsg::AppendMany`] puts all its parts into the same batch as the
//! rest of its group, or none of them when one part's topic is unknown: its
//! parts are committed (and survive a crash) together.
//!
//! Disk full: a failed write assigns no offsets and moves no tail, so the
//! next group reuses the same offsets and nothing acknowledged changes.
//! RocksDB stops taking writes after a failed WAL append (it cannot trust
//! the WAL's tail) and resumes by itself once space is free (see `store`);
//! until then every group fails fast with [`LogError::StorageFull`], which
//! clients see as UNAVAILABLE with the `storage.full` code. The writer only
//! reports the transitions, once each, instead of one error per group.
//!
//! Inline commits ([`Shared::try_inline`]): with [`Durability::Buffered`]
//! a small append that finds the writer idle and nothing queued commits on
//! the caller's own thread, under the same lock the writer thread commits
//! with. That saves the two thread hand-offs (wake the writer, wake the
//! caller) that dominate a lone publish's latency; a write without fsync
//! takes microseconds, so the caller's runtime thread is not held long.
//! Order is kept: an append goes inline only when no append is queued for
//! the thread ([`Shared::queued`], counted before sending and uncounted
//! under the lock after its commit), so a later request of a stream can
//! never be committed ahead of an earlier one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
/// Most events of an append committed inline.
pub(crate) const MAX_INLINE_EVENTS: usize = 16;
/// Most payload bytes of an append committed inline (approximate).
pub(crate) const MAX_INLINE_BYTES: usize = 64 << 10;

/// What the writer thread and inline committers share.
pub(crate) struct Shared {
    /// Held for each commit, by the thread and by inline committers alike.
    state: Mutex<CommitState>,
    /// Appends sent to the writer thread and not committed yet.
    queued: AtomicUsize,
    /// Whether appends may commit inline (buffered durability only: an
    /// fsync must not hold a runtime thread).
    inline: bool,
}

/// The state of commits, behind [`Shared::state`].
struct CommitState {
    wo: WriteOptions,
    /// Reused encoding buffer.
    value: Vec<u8>,
    /// Whether the last commit failed for lack of space (log transitions
    /// only).
    full: bool,
    /// The writer closed: nothing commits any more.
    closed: bool,
}

impl Shared {
    /// The shared state for `durability`.
    pub(crate) fn new(durability: Durability) -> Self {
        let mut wo = WriteOptions::default();
        wo.set_sync(durability == Durability::Sync);
        Self {
            state: Mutex::new(CommitState {
                wo,
                value: Vec::new(),
                full: false,
                closed: false,
            }),
            queued: AtomicUsize::new(0),
            inline: durability == Durability::Buffered,
        }
    }

    /// Counts an append about to be sent to the writer thread. The count
    /// is taken back when the returned guard drops before
    /// [`Enqueued::sent`] (the send failed, or the caller went away while
    /// waiting for room in the queue).
    pub(crate) fn enqueue(&self) -> Enqueued<'_> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        Enqueued {
            shared: self,
            sent: false,
        }
    }

    /// Commits `events` to `topic` on this thread when that keeps order
    /// and is cheap: buffered durability, a small append, the writer not
    /// committing and nothing queued for it. Gives the events back
    /// otherwise.
    pub(crate) fn try_inline(
        &self,
        db: &DB,
        tails: &Tails,
        metrics: &Metrics,
        topic: TopicId,
        events: Vec<NewEvent>,
    ) -> Result<Result<Vec<Offset>, LogError>, Vec<NewEvent>> {
        if !self.inline
            || events.len() > MAX_INLINE_EVENTS
            || events.iter().map(NewEvent::approx_size).sum::<usize>() > MAX_INLINE_BYTES
            || self.queued.load(Ordering::Acquire) != 0
        {
            return Err(events);
        }
        let Ok(mut state) = self.state.try_lock() else {
            return Err(events);
        };
        // Checked again under the lock: the writer uncounts under it.
        if self.queued.load(Ordering::Acquire) != 0 {
            return Err(events);
        }
        if state.closed {
            return Ok(Err(LogError::Closed));
        }
        let n_events = events.len();
        let (reply, mut rx) = oneshot::channel();
        let mut group = vec![PendingAppend::One(topic, events, reply)];
        state.commit(db, tails, &mut group, metrics, n_events);
        drop(state);
        // The commit answered before it returned.
        Ok(rx.try_recv().unwrap_or(Err(LogError::Closed)))
    }
}

/// An append counted in [`Shared::queued`] on its way to the writer.
pub(crate) struct Enqueued<'a> {
    shared: &'a Shared,
    sent: bool,
}

impl Enqueued<'_> {
    /// The append is in the queue: the writer uncounts it.
    pub(crate) fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for Enqueued<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl CommitState {
    /// Commits a group and logs a change between full and writable.
    fn commit(
        &mut self,
        db: &DB,
        tails: &Tails,
        group: &mut Vec<PendingAppend>,
        metrics: &Metrics,
        n_events: usize,
    ) {
        let started = std::time::Instant::now();
        // Observed before the callers are answered: a caller that reads
        // the metrics right after its append sees its commit counted.
        let observe = || {
            metrics
                .commit_latency
                .observe(started.elapsed().as_secs_f64());
            metrics.commit_batch_events.observe(n_events as f64);
        };
        let outcome = commit(db, tails, &self.wo, group, &mut self.value, observe);
        match (self.full, outcome) {
            (false, Commit::Full(error)) => {
                self.full = true;
                tracing::error!(
                    %error,
                    "storage full: publishing fails with UNAVAILABLE (storage.full) until \
                     disk space is freed; writes resume by themselves once 64 MiB are free"
                );
            }
            (true, Commit::Written) => {
                self.full = false;
                tracing::info!("storage writable again: publishing resumed");
            }
            _ => {}
        }
    }
}

/// Where an [`WriterMsg::Append`] gets its offsets.
pub(crate) type AppendReply = oneshot::Sender<Result<Vec<Offset>, LogError>>;
/// Where an [`WriterMsg::AppendMany`] gets its offsets, one `Vec` per part.
pub(crate) type AppendManyReply = oneshot::Sender<Result<Vec<Vec<Offset>>, LogError>>;

/// One queued append of a group.
enum PendingAppend {
    /// One topic's events.
    One(TopicId, Vec<NewEvent>, AppendReply),
    /// Several topics' events, committed together.
    Many(Vec<(TopicId, Vec<NewEvent>)>, AppendManyReply),
}

impl PendingAppend {
    fn fail(self, e: LogError) {
        // A caller that went away does not need the answer.
        match self {
            PendingAppend::One(_, _, reply) => {
                let _ = reply.send(Err(e));
            }
            PendingAppend::Many(_, reply) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A queued append whose events are in the batch (or refused), with what
/// its caller gets once the batch is written.
enum Answer {
    One(AppendReply, Result<Vec<Offset>, LogError>),
    Many(AppendManyReply, Result<Vec<Vec<Offset>>, LogError>),
}

impl Answer {
    /// Sends the outcome: the batch is written.
    fn send(self) {
        // A caller that went away does not need the answer.
        match self {
            Answer::One(reply, outcome) => {
                let _ = reply.send(outcome);
            }
            Answer::Many(reply, outcome) => {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Sends `e` instead: the batch was not written.
    fn fail(self, e: LogError) {
        match self {
            Answer::One(reply, _) => {
                let _ = reply.send(Err(e));
            }
            Answer::Many(reply, _) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A request to the writer.
pub(crate) enum WriterMsg {
    /// Append these events to this topic.
    Append {
        topic: TopicId,
        events: Vec<NewEvent>,
        reply: AppendReply,
    },
    /// Append each part's events to its topic, all parts in one batch. The
    /// parts name distinct topics (the caller checked).
    AppendMany {
        parts: Vec<(TopicId, Vec<NewEvent>)>,
        reply: AppendManyReply,
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
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<WriterMsg>,
    metrics: &Metrics,
) {
    let mut group: Vec<PendingAppend> = Vec::new();
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
                    group.push(PendingAppend::One(topic, events, reply));
                }
                WriterMsg::AppendMany { parts, reply } => {
                    for (_, events) in &parts {
                        n_events += events.len();
                        n_bytes += events.iter().map(NewEvent::approx_size).sum::<usize>();
                    }
                    group.push(PendingAppend::Many(parts, reply));
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
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            let appends = group.len();
            if appends > 0 {
                state.commit(&db, &tails, &mut group, metrics, n_events);
            }
            if close.is_some() {
                state.closed = true;
            }
            // Under the lock, after the commit: an inline append that sees
            // nothing queued comes after every one of these.
            shared.queued.fetch_sub(appends, Ordering::AcqRel);
        }
        if let Some(reply) = close {
            let res = db.flush_wal(true).map_err(|e| LogError::Storage(e.into()));
            let _ = reply.send(res);
            rx.close();
            // Fail whatever raced in behind the close.
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    WriterMsg::Append { reply, .. } => {
                        let _ = reply.send(Err(LogError::Closed));
                    }
                    WriterMsg::AppendMany { reply, .. } => {
                        let _ = reply.send(Err(LogError::Closed));
                    }
                    WriterMsg::Close { .. } => {}
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
    observe: impl FnOnce(),
) -> Commit {
    let Some(cf) = db.cf_handle(CF_EVENTS) else {
        for pending in group.drain(..) {
            pending.fail(LogError::Storage("events column family missing".into()));
        }
        return Commit::Failed;
    };
    let time_ms = now_ms();
    let mut batch = WriteBatch::default();
    // Next offset per topic inside this group; starts from the published tail.
    let mut latest: HashMap<TopicId, Offset> = HashMap::new();
    let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
    let mut put = |topic: TopicId,
                   events: &[NewEvent],
                   latest: &mut HashMap<TopicId, Offset>,
                   tail: Offset| {
        let cur: &mut Offset = latest.entry(topic).or_insert_with(|| tail);
        let mut offsets = Vec::with_capacity(events.len());
        for ev in events {
            *cur = cur.next();
            value.clear();
            codec::encode(time_ms, ev, value);
            batch.put_cf(&cf, keys::event_key(topic, *cur), &value[..]);
            offsets.push(*cur);
        }
        offsets
    };
    for pending in group.drain(..) {
        answers.push(match pending {
            PendingAppend::One(topic, events, reply) => {
                let outcome = tails
                    .get(topic)
                    .map(|t| put(topic, &events, &mut latest, t.latest()));
                Answer::One(reply, outcome)
            }
            PendingAppend::Many(parts, reply) => {
                // Every topic is checked before any part goes into the
                // batch: a call with an unknown topic stores nothing.
                let known = parts
                    .iter()
                    .map(|(topic, _)| tails.get(*topic).map(|t| t.latest()))
                    .collect::<Result<Vec<_>, _>>();
                let outcome = known.map(|starts| {
                    parts
                        .iter()
                        .zip(starts)
                        .map(|((topic, events), start)| put(*topic, events, &mut latest, start))
                        .collect()
                });
                Answer::Many(reply, outcome)
            }
        });
    }
    let written = db.write_opt(batch, wo);
    observe();
    match written {
        Ok(()) => {
            for (topic, off) in &latest {
                if let Ok(t) = tails.get(*topic) {
                    t.publish(*off);
                }
            }
            for answer in answers {
                answer.send();
            }
            Commit::Written
        }
        Err(e) if is_no_space(&e) => {
            // Logged once per episode by the caller; each failed group only
            // at debug level, or a full disk would also flood the log.
            tracing::debug!(error = %e, "group commit failed: storage full");
            for answer in answers {
                answer.fail(LogError::StorageFull(e.clone().into()));
            }
            Commit::Full(e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; no offsets were assigned");
            for answer in answers {
                answer.fail(LogError::Storage(e.clone().into()));
            }
            Commit::Failed
        }
    }
}
