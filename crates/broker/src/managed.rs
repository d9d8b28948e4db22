//! Managed subscriptions: server-side committed positions, one active
//! stream at a time, RUN/STOP.
//!
//! Owns: the definitions (per tenant, unique developer names, a limit per
//! tenant), their committed replay ids, the start position of a new stream
//! and the lease that keeps a second stream out. A tenant is its canonical
//! org id ([`TenantId`]): definitions stored with the 15-character form (as
//! older versions did) are read as the 18-character one, so both forms of
//! an org share one set of names and one limit.
//! Must not: know the wire; the API layer turns requests into
//! [`ManagedRef`]s and [`CommitRequest`]s. Must not: deliver events; the
//! subscription module runs a managed stream and hands its commits to the
//! [`ManagedSession`] (it depends on this module, never the reverse).
//!
//! Lock order: `Registry::lock` (async, held across storage writes that
//! create or delete definitions) before an entry's `write` (async, held
//! across storage writes of that definition, so a commit cannot land after
//! a STOP deleted the commit) before the entry's `state` and `lease`
//! (std mutexes, never held across an `.await`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerError, Topic};
use crate::log::{CommitRecord, LogBounds, ManagedRecord, now_ms};
use crate::types::{
    ManagedId, ManagedReplay, ManagedState, Offset, ReplayId, TenantId, TopicId,
    check_developer_name,
};
// A shared value type (the client commands parse one too); re-exported so
// the engine's users keep naming it here.
pub use crate::types::ManagedRef;

/// How long a new stream waits for the previous holder of the subscription
/// to go before it is refused: a client that crashed and restarts at once
/// may reconnect before the server has read the end of its old connection.
const TAKEOVER_WAIT: Duration = Duration::from_millis(1500);

/// A new definition.
#[derive(Clone, Debug)]
pub struct NewManaged {
    /// The developer name.
    pub developer_name: String,
    /// The stored name of the topic.
    pub topic: String,
    /// Start without a commit.
    pub default_replay: ManagedReplay,
    /// Start when the commit is no longer retained.
    pub error_recovery_replay: ManagedReplay,
    /// RUN or STOP.
    pub state: ManagedState,
}

/// A change to a definition; `None` leaves a field as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManagedChange {
    /// New state.
    pub state: Option<ManagedState>,
    /// New default replay.
    pub default_replay: Option<ManagedReplay>,
    /// New error-recovery replay.
    pub error_recovery_replay: Option<ManagedReplay>,
}

/// Where [`Broker::move_managed_commit`] puts a committed position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitTarget {
    /// Before every retained event: the next stream delivers them all.
    Earliest,
    /// After the newest event: the next stream delivers new events only.
    Latest,
    /// After this (retained) replay id.
    Replay(ReplayId),
}

/// A definition with what the server knows about it now.
#[derive(Clone, Debug)]
pub struct ManagedView {
    /// The stored definition and commit.
    pub record: ManagedRecord,
    /// Whether a stream holds it now.
    pub active: bool,
    /// The committed offset, when it applies to the topic as it is now.
    pub committed: Option<Offset>,
    /// The newest offset of the topic (`None` when the topic is gone).
    pub latest: Option<Offset>,
    /// Where the next stream would start after: the commit, or without a
    /// usable one the default or error-recovery replay (`None` when the
    /// topic is gone).
    pub next_start: Option<Offset>,
}

impl ManagedView {
    /// Events the next stream would deliver: those after the commit, or
    /// without one those its replay starts at (EARLIEST: every retained
    /// event; LATEST: none). `None` when the topic is gone.
    pub fn lag(&self) -> Option<u64> {
        Some(self.latest?.0.saturating_sub(self.next_start?.0))
    }
}

/// Where a stream of `rec` on topic `topic` (as its log holds `bounds`)
/// starts after, and why: after the commit; without one, at the default
/// replay; when the commit is no longer retained or belongs to an earlier
/// topic of the same name, at the error-recovery replay.
fn start_of(rec: &ManagedRecord, topic: TopicId, bounds: LogBounds) -> (Offset, &'static str) {
    let at = |replay| match replay {
        ManagedReplay::Latest => bounds.latest,
        ManagedReplay::Earliest => bounds.trimmed,
    };
    match rec.commit {
        None => (at(rec.default_replay), "default replay"),
        Some(c)
            if c.topic_id == topic.0
                && c.offset >= bounds.trimmed.0
                && c.offset <= bounds.latest.0 =>
        {
            (Offset(c.offset), "commit")
        }
        Some(_) => (at(rec.error_recovery_replay), "error-recovery replay"),
    }
}

/// A client's request to commit a position of a managed subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRequest {
    /// The client's correlation id.
    pub request_id: String,
    /// The replay id to commit, as the client sent it.
    pub replay_id: Vec<u8>,
    /// When the server received it, epoch milliseconds.
    pub received_ms: u64,
}

/// The answer to one or more commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitAnswer {
    /// The correlation id of the (newest) commit answered.
    pub request_id: String,
    /// The replay id it named.
    pub replay_id: Vec<u8>,
    /// Why it was not committed; `None` once it is durable.
    pub error: Option<String>,
    /// When the server received the request, epoch milliseconds.
    pub process_time_ms: u64,
}

/// Why a stream was ended from the server side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndReason {
    Stopped,
    Deleted,
    // The shared lease could not be renewed: another process may take the
    // subscription, so this stream must stop delivering.
    LeaseLost,
}

struct Lease {
    generation: u64,
    end: CancellationToken,
}

/// One definition in memory.
struct Entry {
    record: Mutex<ManagedRecord>,
    // Held across storage writes of this definition.
    write: tokio::sync::Mutex<()>,
    lease: Mutex<Option<Lease>>,
    // Why the current lease was ended.
    ended: Mutex<Option<EndReason>>,
    released: Notify,
}

impl Entry {
    /// The entry of a record, its tenant in canonical form (every record
    /// enters the registry here: loaded, created, or changed by another
    /// process).
    fn new(mut record: ManagedRecord) -> Self {
        record.tenant = TenantId::from_stored(&record.tenant).to_string();
        Entry {
            record: Mutex::new(record),
            write: tokio::sync::Mutex::new(()),
            lease: Mutex::new(None),
            ended: Mutex::new(None),
            released: Notify::new(),
        }
    }

    fn snapshot(&self) -> ManagedRecord {
        lock(&self.record).clone()
    }

    fn active(&self) -> bool {
        lock(&self.lease).is_some()
    }

    /// Ends the stream holding the subscription, if any.
    fn end_stream(&self, why: EndReason) {
        if let Some(lease) = lock(&self.lease).as_ref() {
            *lock(&self.ended) = Some(why);
            lease.end.cancel();
        }
    }
}

/// Every managed subscription of every tenant.
#[derive(Default)]
pub(crate) struct Registry {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    // Held across the storage write that creates or deletes a definition,
    // so two creations cannot both take a developer name or the last slot.
    lock: tokio::sync::Mutex<()>,
    next_generation: AtomicU64,
}

impl Registry {
    /// The registry of the definitions loaded from the catalog.
    pub(crate) fn load(records: Vec<ManagedRecord>) -> Self {
        let entries = records
            .into_iter()
            .map(|r| (r.id.clone(), Arc::new(Entry::new(r))))
            .collect();
        Self {
            entries: RwLock::new(entries),
            ..Self::default()
        }
    }

    fn of_tenant(&self, tenant: &TenantId) -> Vec<Arc<Entry>> {
        read(&self.entries)
            .values()
            .filter(|e| *tenant == lock(&e.record).tenant.as_str())
            .cloned()
            .collect()
    }
}

/// The stream side of a managed subscription: holds the lease until it is
/// dropped, and validates and stores commits.
pub struct ManagedSession {
    broker: Arc<Broker>,
    entry: Arc<Entry>,
    generation: u64,
    end: CancellationToken,
    // The subscription's id and this stream's name in the shared lease.
    id: String,
    holder: crate::log::LeaseHolder,
    renewer: Option<tokio::task::JoinHandle<()>>,
    topic: TopicId,
    // Positions this stream may commit: from where it started to what it
    // has delivered.
    start: Offset,
    committed: Option<Offset>,
    name: String,
}

impl ManagedSession {
    /// A token cancelled when the subscription is stopped or deleted.
    pub(crate) fn ending(&self) -> CancellationToken {
        self.end.clone()
    }

    /// The error a stream ended by [`ManagedSession::ending`] gets.
    pub(crate) fn end_reason(&self) -> BrokerError {
        match *lock(&self.entry.ended) {
            Some(EndReason::Deleted) => BrokerError::ManagedDeleted(self.name.clone()),
            Some(EndReason::LeaseLost) => BrokerError::Log(crate::log::LogError::Storage(
                "the managed subscription's lease could not be renewed".into(),
            )),
            _ => BrokerError::ManagedStopped(self.name.clone()),
        }
    }

    /// The developer name.
    pub fn developer_name(&self) -> &str {
        &self.name
    }

    /// The subscription's id.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// Checks `batch` in order against what this stream delivered (up to
    /// `delivered`) and the current commit, makes the newest valid one
    /// durable, and answers: one answer per invalid commit, then one for the
    /// newest valid commit (which answers every valid one before it).
    pub(crate) async fn commit(
        &mut self,
        batch: Vec<CommitRequest>,
        delivered: Offset,
    ) -> Vec<CommitAnswer> {
        let mut answers = Vec::new();
        let mut newest: Option<(CommitRequest, Offset)> = None;
        for req in batch {
            let floor = newest.as_ref().map(|(_, o)| *o).or(self.committed);
            match self.check(&req.replay_id, delivered, floor) {
                Ok(at) => newest = Some((req, at)),
                Err(why) => answers.push(CommitAnswer {
                    request_id: req.request_id,
                    replay_id: req.replay_id,
                    error: Some(why),
                    process_time_ms: req.received_ms,
                }),
            }
        }
        if let Some((req, at)) = newest {
            let error = match self.store(at).await {
                Ok(()) => {
                    self.committed = Some(at);
                    None
                }
                Err(why) => Some(why),
            };
            answers.push(CommitAnswer {
                request_id: req.request_id,
                replay_id: req.replay_id,
                error,
                process_time_ms: req.received_ms,
            });
        }
        answers
    }

    fn check(
        &self,
        bytes: &[u8],
        delivered: Offset,
        floor: Option<Offset>,
    ) -> Result<Offset, String> {
        let id =
            ReplayId::decode(bytes).map_err(|e| format!("The replay ID is not valid: {e}."))?;
        let at = id.offset();
        if at > delivered || at < self.start {
            return Err(format!(
                "Replay ID {id} was not delivered on this stream (it delivered {} to {}), so it cannot be committed.",
                ReplayId::from(self.start),
                ReplayId::from(delivered)
            ));
        }
        if let Some(c) = floor
            && at < c
        {
            return Err(format!(
                "Replay ID {id} is older than the committed replay ID {}; commits only move forward.",
                ReplayId::from(c)
            ));
        }
        Ok(at)
    }

    /// Stores the commit unless the subscription was stopped or deleted
    /// (or taken over) meanwhile.
    async fn store(&self, at: Offset) -> Result<(), String> {
        let _w = self.entry.write.lock().await;
        let held = lock(&self.entry.lease)
            .as_ref()
            .is_some_and(|l| l.generation == self.generation && !l.end.is_cancelled());
        if !held {
            return Err(
                "The managed subscription was stopped or deleted; the commit was not stored."
                    .to_owned(),
            );
        }
        let commit = CommitRecord {
            topic_id: self.topic.0,
            offset: at.0,
            time_ms: now_ms(),
        };
        let id = ManagedId::from_stored(self.entry.snapshot().id);
        // Only the commit: a definition changed meanwhile by another
        // process stays as that process stored it.
        match self.broker.log().put_commit(&id, Some(commit)).await {
            Ok(true) => {
                lock(&self.entry.record).commit = Some(commit);
                Ok(())
            }
            Ok(false) => {
                Err("The managed subscription was deleted; the commit was not stored.".to_owned())
            }
            Err(e) => {
                tracing::warn!(subscription = %id, error = %e, "commit not stored");
                Err("The commit could not be stored; commit again later.".to_owned())
            }
        }
    }
}

impl Drop for ManagedSession {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        // The shared lease first, so another process may take over as soon
        // as this one lets go.
        let (log, key, holder) = (
            self.broker.log().clone(),
            lease_key(&self.id),
            self.holder.clone(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = log.release_lease(&key, &holder).await {
                    tracing::debug!(error = %e, "lease not released; it expires");
                }
            });
        }
        let mut lease = lock(&self.entry.lease);
        if lease
            .as_ref()
            .is_some_and(|l| l.generation == self.generation)
        {
            *lease = None;
            drop(lease);
            self.entry.released.notify_waiters();
        }
    }
}

/// How long a process holds a managed subscription's shared lease without
/// renewing it: a process that dies frees its subscriptions after this.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a stream renews its lease (a third of the TTL, so two renewals
/// may fail before it lapses).
const LEASE_RENEW: Duration = Duration::from_millis(3300);

fn lease_key(id: &str) -> crate::log::LeaseKey {
    crate::log::LeaseKey::new(format!("managed.{id}"))
}

/// A session that holds the lease, with where its stream starts: what
/// [`Broker::open_managed`] (the subscription module) turns into a stream.
pub(crate) struct ManagedStart {
    /// The commit side and the lease.
    pub(crate) session: ManagedSession,
    /// The subscribed topic.
    pub(crate) topic: Arc<Topic>,
    /// The position the stream starts after.
    pub(crate) cursor: Offset,
    /// The stored name of the topic.
    pub(crate) topic_name: String,
}

impl Broker {
    fn managed_entry(&self, tenant: &str, r: &ManagedRef) -> Result<Arc<Entry>, BrokerError> {
        let tenant = TenantId::from_stored(tenant);
        match r {
            ManagedRef::Id(raw) => {
                let id = ManagedId::parse(raw).map_err(BrokerError::ManagedIdInvalid)?;
                read(&self.managed.entries)
                    .get(id.as_str())
                    .filter(|e| tenant == lock(&e.record).tenant.as_str())
                    .cloned()
                    .ok_or_else(|| BrokerError::ManagedIdNotFound(raw.clone()))
            }
            ManagedRef::Name(name) => self
                .managed
                .of_tenant(&tenant)
                .into_iter()
                .find(|e| lock(&e.record).developer_name == *name)
                .ok_or_else(|| BrokerError::ManagedNameNotFound(name.clone())),
        }
    }

    fn view(&self, entry: &Entry) -> ManagedView {
        let record = entry.snapshot();
        let topic = self.topic(&record.topic).ok();
        let bounds = topic
            .as_ref()
            .and_then(|t| Some((t.id, self.log().bounds(t.id).ok()?)));
        let committed = match (&topic, record.commit) {
            (Some(t), Some(c)) if c.topic_id == t.id.0 => Some(Offset(c.offset)),
            _ => None,
        };
        ManagedView {
            active: entry.active(),
            committed,
            latest: bounds.map(|(_, b)| b.latest),
            next_start: bounds.map(|(id, b)| start_of(&record, id, b).0),
            record,
        }
    }

    /// Creates a managed subscription for `tenant`.
    ///
    /// # Errors
    /// A bad developer name, an unknown topic, a developer name in use, the
    /// tenant's limit, storage.
    pub async fn create_managed(
        &self,
        tenant: &str,
        def: NewManaged,
    ) -> Result<ManagedView, BrokerError> {
        check_developer_name(&def.developer_name).map_err(BrokerError::ManagedInvalid)?;
        self.topic(&def.topic)?;
        let tenant = TenantId::from_stored(tenant);
        let _g = self.managed.lock.lock().await;
        let mine = self.managed.of_tenant(&tenant);
        if mine
            .iter()
            .any(|e| lock(&e.record).developer_name == def.developer_name)
        {
            return Err(BrokerError::ManagedExists(def.developer_name));
        }
        let max = self.cfg.max_managed_per_tenant;
        if mine.len() >= max {
            return Err(BrokerError::ManagedLimit(max));
        }
        let id = loop {
            let id = ManagedId::generate();
            if !read(&self.managed.entries).contains_key(id.as_str()) {
                break id;
            }
        };
        let now = now_ms();
        let record = ManagedRecord {
            id: id.to_string(),
            tenant: tenant.to_string(),
            developer_name: def.developer_name,
            topic: def.topic,
            default_replay: def.default_replay,
            error_recovery_replay: def.error_recovery_replay,
            state: def.state,
            created_ms: now,
            updated_ms: now,
            commit: None,
        };
        // The log has the last word: another process on a shared log may
        // have taken the name since this one looked.
        if !self.log().create_managed(record.clone()).await? {
            return Err(BrokerError::ManagedExists(record.developer_name));
        }
        let entry = Arc::new(Entry::new(record));
        write(&self.managed.entries).insert(id.to_string(), entry.clone());
        Ok(self.view(&entry))
    }

    /// The tenant's managed subscriptions, by developer name.
    pub fn list_managed(&self, tenant: &str) -> Vec<ManagedView> {
        let mut v: Vec<_> = self
            .managed
            .of_tenant(&TenantId::from_stored(tenant))
            .iter()
            .map(|e| self.view(e))
            .collect();
        v.sort_by(|a, b| a.record.developer_name.cmp(&b.record.developer_name));
        v
    }

    /// One managed subscription.
    ///
    /// # Errors
    /// A malformed or unknown reference.
    pub fn describe_managed(
        &self,
        tenant: &str,
        r: &ManagedRef,
    ) -> Result<ManagedView, BrokerError> {
        let entry = self.managed_entry(tenant, r)?;
        Ok(self.view(&entry))
    }

    /// Changes state and replays. RUN→STOP ends the active stream and
    /// deletes the commit, so the next start after RUN uses the default
    /// replay.
    ///
    /// # Errors
    /// A malformed or unknown reference, storage.
    pub async fn update_managed(
        &self,
        tenant: &str,
        r: &ManagedRef,
        change: ManagedChange,
    ) -> Result<ManagedView, BrokerError> {
        let entry = self.managed_entry(tenant, r)?;
        let guard = entry.write.lock().await;
        let mut rec = entry.snapshot();
        let stopping = change.state == Some(ManagedState::Stop);
        if let Some(s) = change.state {
            rec.state = s;
        }
        if let Some(d) = change.default_replay {
            rec.default_replay = d;
        }
        if let Some(e) = change.error_recovery_replay {
            rec.error_recovery_replay = e;
        }
        if stopping {
            rec.commit = None;
        }
        if rec != entry.snapshot() {
            rec.updated_ms = now_ms();
            self.log().put_managed(rec.clone()).await?;
            tracing::info!(subscription = %rec.id, name = %rec.developer_name, state = %rec.state, "managed subscription changed");
            *lock(&entry.record) = rec;
        }
        if stopping {
            entry.end_stream(EndReason::Stopped);
        }
        drop(guard);
        Ok(self.view(&entry))
    }

    /// Moves the committed position (an operator's act, not a stream's:
    /// it may move backwards). The stream holding the subscription, if
    /// any, ends as on STOP, so the next stream starts after the new
    /// position and no commit of the old stream lands after it.
    ///
    /// # Errors
    /// A malformed or unknown reference, the topic gone, a replay id not
    /// retained (or beyond the newest event), storage.
    pub async fn move_managed_commit(
        &self,
        tenant: &str,
        r: &ManagedRef,
        to: CommitTarget,
    ) -> Result<ManagedView, BrokerError> {
        let entry = self.managed_entry(tenant, r)?;
        let guard = entry.write.lock().await;
        let rec = entry.snapshot();
        let topic = self.topic(&rec.topic)?;
        let bounds = self.bounds(topic.id)?;
        let at = match to {
            CommitTarget::Earliest => bounds.trimmed,
            CommitTarget::Latest => bounds.latest,
            CommitTarget::Replay(id) => {
                let at = id.offset();
                if at < bounds.trimmed || at > bounds.latest {
                    return Err(BrokerError::ManagedInvalid(format!(
                        "replay id {id} is not retained (retained: after {} to {})",
                        ReplayId::from(bounds.trimmed),
                        ReplayId::from(bounds.latest)
                    )));
                }
                at
            }
        };
        let commit = CommitRecord {
            topic_id: topic.id.0,
            offset: at.0,
            time_ms: now_ms(),
        };
        let id = ManagedId::from_stored(rec.id.clone());
        if !self.log().put_commit(&id, Some(commit)).await? {
            return Err(BrokerError::ManagedIdNotFound(rec.id));
        }
        lock(&entry.record).commit = Some(commit);
        tracing::info!(subscription = %rec.id, name = %rec.developer_name, offset = at.0, "managed subscription's commit moved");
        entry.end_stream(EndReason::Stopped);
        drop(guard);
        Ok(self.view(&entry))
    }

    /// Deletes a managed subscription; its stream ends.
    ///
    /// # Errors
    /// A malformed or unknown reference, storage.
    pub async fn delete_managed(
        &self,
        tenant: &str,
        r: &ManagedRef,
    ) -> Result<ManagedView, BrokerError> {
        let _g = self.managed.lock.lock().await;
        let entry = self.managed_entry(tenant, r)?;
        let _w = entry.write.lock().await;
        let view = self.view(&entry);
        self.log()
            .delete_managed(&ManagedId::from_stored(view.record.id.clone()))
            .await?;
        write(&self.managed.entries).remove(&view.record.id);
        entry.end_stream(EndReason::Deleted);
        tracing::info!(subscription = %view.record.id, name = %view.record.developer_name, "managed subscription deleted");
        Ok(view)
    }

    /// The session of a new stream on a managed subscription: checks its
    /// state, takes the lease (waiting briefly for a previous holder to go)
    /// and finds the start: after the commit; without one, the default
    /// replay; when the commit is no longer retained, the error-recovery
    /// replay.
    ///
    /// # Errors
    /// A malformed or unknown reference, STOP, another active stream, the
    /// topic gone.
    pub(crate) async fn open_managed_session(
        self: &Arc<Self>,
        tenant: &str,
        r: &ManagedRef,
    ) -> Result<ManagedStart, BrokerError> {
        let entry = self.managed_entry(tenant, r)?;
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        let (generation, end) = loop {
            let released = entry.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                // Under the definition's write lock, so a STOP or delete
                // cannot slip between the state check and the lease.
                let _w = entry.write.lock().await;
                let (id, name, state) = {
                    let rec = lock(&entry.record);
                    (rec.id.clone(), rec.developer_name.clone(), rec.state)
                };
                if !read(&self.managed.entries).contains_key(&id) {
                    return Err(BrokerError::ManagedDeleted(name));
                }
                if state == ManagedState::Stop {
                    return Err(BrokerError::ManagedStopped(name));
                }
                let mut lease = lock(&entry.lease);
                if lease.is_none() {
                    let generation = self.managed.next_generation.fetch_add(1, Ordering::Relaxed);
                    let end = CancellationToken::new();
                    *lease = Some(Lease {
                        generation,
                        end: end.clone(),
                    });
                    *lock(&entry.ended) = None;
                    break (generation, end);
                }
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(BrokerError::ManagedAlreadyActive);
            }
        };
        let rec = entry.snapshot();
        // From here the session owns the lease: an error drops it.
        let mut session = ManagedSession {
            broker: self.clone(),
            entry,
            generation,
            end,
            id: rec.id.clone(),
            holder: crate::log::LeaseHolder::new(format!("{}/{generation}", self.instance)),
            renewer: None,
            topic: TopicId(0),
            start: Offset(0),
            committed: None,
            name: rec.developer_name.clone(),
        };
        // Then the lease every process on the log respects; another process
        // whose stream is ending gets until the deadline to let go.
        let key = lease_key(&rec.id);
        loop {
            if self
                .log()
                .acquire_lease(&key, &session.holder, LEASE_TTL)
                .await?
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::ManagedAlreadyActive);
            }
            // Polling another process's lease: it sends no wake-up.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        session.renewer = Some(tokio::spawn(renew(
            self.log().clone(),
            key,
            session.holder.clone(),
            Arc::downgrade(&session.entry),
            session.end.clone(),
        )));
        // The record as stored now, not as this process's catalog feed has
        // it so far: another process may have committed, stopped or deleted
        // it just before letting go of the lease, and its feed may lag.
        let stored_id = ManagedId::from_stored(rec.id.clone());
        let rec = match self.log().get_managed(&stored_id).await? {
            Some(stored) => stored,
            None => return Err(BrokerError::ManagedDeleted(rec.developer_name)),
        };
        if rec.state == ManagedState::Stop {
            return Err(BrokerError::ManagedStopped(rec.developer_name));
        }
        let topic = self.topic(&rec.topic)?;
        let bounds = self.log().bounds(topic.id)?;
        let commit = rec.commit.filter(|c| c.topic_id == topic.id.0);
        let (cursor, from) = start_of(&rec, topic.id, bounds);
        tracing::debug!(subscription = %rec.id, start_after = %ReplayId::from(cursor), from, "managed subscription opened");
        session.topic = topic.id;
        session.start = cursor;
        session.committed = commit.map(|c| Offset(c.offset));
        Ok(ManagedStart {
            session,
            topic,
            cursor,
            topic_name: rec.topic,
        })
    }
}

/// Renews a stream's shared lease until the stream ends; when renewing
/// fails, ends the stream (another process may take the subscription).
async fn renew(
    log: crate::log::SharedLog,
    key: crate::log::LeaseKey,
    holder: crate::log::LeaseHolder,
    entry: std::sync::Weak<Entry>,
    end: CancellationToken,
) {
    let mut tick = tokio::time::interval(LEASE_RENEW);
    tick.tick().await; // the first tick is immediate; the lease is fresh
    loop {
        tokio::select! {
            () = end.cancelled() => return,
            _ = tick.tick() => {}
        }
        match log.renew_lease(&key, &holder, LEASE_TTL).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                tracing::warn!(lease = %key, "lost a managed subscription's lease; ending its stream");
                if let Some(entry) = entry.upgrade() {
                    *lock(&entry.ended) = Some(EndReason::LeaseLost);
                }
                end.cancel();
                return;
            }
        }
    }
}

impl Broker {
    /// A definition another process (or this one) stored: the in-memory
    /// entry follows it. A STOP ends the stream here; while this process
    /// streams the subscription, its own commit is the newer one.
    pub(super) fn managed_changed(&self, rec: ManagedRecord) {
        let existing = read(&self.managed.entries).get(&rec.id).cloned();
        let Some(entry) = existing else {
            let id = rec.id.clone();
            write(&self.managed.entries).insert(id, Arc::new(Entry::new(rec)));
            return;
        };
        let stopping = {
            let mut current = lock(&entry.record);
            let stopping = current.state == ManagedState::Run && rec.state == ManagedState::Stop;
            let keep_commit = entry.active() && rec.state == ManagedState::Run;
            let commit = if keep_commit {
                current.commit
            } else {
                rec.commit
            };
            let tenant = TenantId::from_stored(&rec.tenant).to_string();
            *current = ManagedRecord {
                commit,
                tenant,
                ..rec
            };
            stopping
        };
        if stopping {
            entry.end_stream(EndReason::Stopped);
        }
    }

    /// A definition another process deleted: its stream here ends.
    pub(super) fn managed_deleted(&self, id: &str) {
        if let Some(entry) = write(&self.managed.entries).remove(id) {
            entry.end_stream(EndReason::Deleted);
        }
    }

    /// Applies a freshly loaded list of definitions whole.
    pub(super) fn managed_resync(&self, records: Vec<ManagedRecord>) {
        let ids: std::collections::HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        for rec in records {
            self.managed_changed(rec);
        }
        let gone: Vec<String> = read(&self.managed.entries)
            .keys()
            .filter(|id| !ids.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.managed_deleted(&id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::BrokerConfig;
    use crate::log::memory::MemoryTopicLog;
    use crate::log::{LogError, SharedLog};
    use crate::testing::{TokioLeaseLog, open, topic};

    const LONG: &str = "00D5e000000AbcdEAC";
    const SHORT: &str = "00D5e000000Abcd";
    const TOPIC: &str = "/~00D5e000000Abcd/event/A__e";

    fn def(name: &str) -> NewManaged {
        NewManaged {
            developer_name: name.into(),
            topic: TOPIC.into(),
            default_replay: ManagedReplay::Latest,
            error_recovery_replay: ManagedReplay::Latest,
            state: ManagedState::Run,
        }
    }

    #[tokio::test]
    async fn both_forms_of_an_org_id_share_developer_names_and_the_limit() {
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        // A definition an older version stored for a token that named the
        // tenant by its 15-character id.
        log.put_managed(ManagedRecord {
            id: ManagedId::generate().to_string(),
            tenant: SHORT.into(),
            developer_name: "Old".into(),
            topic: TOPIC.into(),
            default_replay: ManagedReplay::Latest,
            error_recovery_replay: ManagedReplay::Latest,
            state: ManagedState::Run,
            created_ms: 1,
            updated_ms: 1,
            commit: None,
        })
        .await
        .expect("old record");
        let cfg = BrokerConfig {
            max_managed_per_tenant: 2,
            ..BrokerConfig::default()
        };
        let broker = open(log, cfg).await;
        topic(&broker, TOPIC).await;

        assert_eq!(broker.list_managed(LONG).len(), 1, "the old definition");
        broker
            .describe_managed(LONG, &ManagedRef::Name("Old".into()))
            .expect("found by the 18-character form");
        assert!(matches!(
            broker.create_managed(LONG, def("Old")).await,
            Err(BrokerError::ManagedExists(_))
        ));
        let second = broker
            .create_managed(SHORT, def("New"))
            .await
            .expect("a second name");
        assert_eq!(second.record.tenant, LONG, "stored in canonical form");
        assert!(matches!(
            broker.create_managed(LONG, def("New")).await,
            Err(BrokerError::ManagedExists(_))
        ));
        assert!(matches!(
            broker.create_managed(LONG, def("Third")).await,
            Err(BrokerError::ManagedLimit(2))
        ));
        assert_eq!(broker.list_managed(SHORT).len(), 2);
    }

    // Leases, on tokio's paused clock: waits of seconds cost no real time.

    /// A broker on `log` with [`TOPIC`] and the managed subscription
    /// "Leased" on it (created unless `log` has it already).
    async fn leased(log: Arc<TokioLeaseLog>) -> Arc<Broker> {
        let broker = open(log, BrokerConfig::default()).await;
        if broker.topic(TOPIC).is_err() {
            topic(&broker, TOPIC).await;
            broker
                .create_managed(LONG, def("Leased"))
                .await
                .expect("create");
        }
        broker
    }

    async fn take(broker: &Arc<Broker>) -> Result<ManagedSession, BrokerError> {
        broker
            .open_managed_session(LONG, &ManagedRef::Name("Leased".into()))
            .await
            .map(|start| start.session)
    }

    #[tokio::test(start_paused = true)]
    async fn moving_the_commit_ends_the_holding_stream_and_sets_the_next_start() {
        let broker = leased(Arc::default()).await;
        let mut first = take(&broker).await.expect("first");
        let r = ManagedRef::Name("Leased".into());
        // Beyond the newest event (the topic is empty): refused, no change.
        assert!(matches!(
            broker
                .move_managed_commit(LONG, &r, CommitTarget::Replay(ReplayId::from(Offset(5))))
                .await,
            Err(BrokerError::ManagedInvalid(_))
        ));
        assert!(
            !first.ending().is_cancelled(),
            "a refused move ends nothing"
        );
        let v = broker
            .move_managed_commit(LONG, &r, CommitTarget::Earliest)
            .await
            .expect("moved");
        assert_eq!(v.committed, Some(Offset(0)));
        assert!(first.ending().is_cancelled(), "the holding stream ends");
        // The old stream's commits no longer land.
        let answers = first
            .commit(
                vec![CommitRequest {
                    request_id: "c".into(),
                    replay_id: ReplayId::from(Offset(0)).to_bytes().to_vec(),
                    received_ms: 1,
                }],
                Offset(0),
            )
            .await;
        assert!(answers.iter().all(|a| a.error.is_some()), "{answers:?}");
        drop(first);
        let next = broker
            .open_managed_session(LONG, &r)
            .await
            .expect("a new stream");
        assert_eq!(next.cursor, Offset(0), "starts after the moved commit");
        // Another tenant cannot move it.
        assert!(
            broker
                .move_managed_commit("00D5e000000ZZZZEAC", &r, CommitTarget::Latest)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_stream_waits_for_the_first_to_let_go_then_is_refused() {
        let broker = leased(Arc::default()).await;
        let first = take(&broker).await.expect("first");
        let asked = Instant::now();
        assert!(matches!(
            take(&broker).await,
            Err(BrokerError::ManagedAlreadyActive)
        ));
        let waited = asked.elapsed();
        assert!(
            waited >= TAKEOVER_WAIT && waited < TAKEOVER_WAIT + Duration::from_millis(100),
            "refused after {waited:?}"
        );
        assert!(!first.ending().is_cancelled(), "the first stream goes on");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_let_go_of_during_the_wait_is_taken_over() {
        let broker = leased(Arc::default()).await;
        let first = take(&broker).await.expect("first");
        let asked = Instant::now();
        let second = tokio::spawn({
            let broker = broker.clone();
            async move { take(&broker).await.map(|s| s.id()) }
        });
        tokio::time::sleep(TAKEOVER_WAIT / 2).await;
        drop(first);
        second.await.expect("task").expect("taken over");
        assert!(asked.elapsed() < TAKEOVER_WAIT, "not refused first");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_keeps_its_lease_across_processes_by_renewing_it() {
        let log = Arc::new(TokioLeaseLog::default());
        let (a, b) = (leased(log.clone()).await, leased(log).await);
        let on_a = take(&a).await.expect("a");
        // Many times the lease's lifetime.
        tokio::time::sleep(LEASE_TTL * 6).await;
        assert!(!on_a.ending().is_cancelled());
        assert!(
            matches!(take(&b).await, Err(BrokerError::ManagedAlreadyActive)),
            "b may not take a lease a renews"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_cannot_renew_ends_and_its_lease_is_taken_once_it_expired() {
        let log = Arc::new(TokioLeaseLog::default());
        let (a, b) = (leased(log.clone()).await, leased(log.clone()).await);
        let on_a = take(&a).await.expect("a");
        let taken = Instant::now();
        log.cut_off(&a.instance);
        // A stops delivering at its first failed renewal...
        tokio::time::timeout(
            LEASE_RENEW + Duration::from_millis(10),
            on_a.ending().cancelled(),
        )
        .await
        .expect("a's stream ends when it cannot renew");
        assert!(matches!(
            on_a.end_reason(),
            BrokerError::Log(LogError::Storage(_))
        ));
        // ...but its lease runs until it expires: until then B waits and
        // is refused...
        assert!(matches!(
            take(&b).await,
            Err(BrokerError::ManagedAlreadyActive)
        ));
        assert!(taken.elapsed() < LEASE_TTL);
        // ...and once it has, B takes the subscription over.
        tokio::time::sleep_until(taken + LEASE_TTL).await;
        let on_b = take(&b).await.expect("b takes over the expired lease");
        assert!(taken.elapsed() < LEASE_TTL + TAKEOVER_WAIT);
        assert!(!on_b.ending().is_cancelled());
        drop(on_a);
    }
}
