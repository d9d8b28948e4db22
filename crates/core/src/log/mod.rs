//! The per-topic append-only event log, its small metadata catalog and the
//! per-tenant record store beside it.
//!
//! Owns: the [`TopicLog`] trait and its parts by concern ([`EventLog`],
//! [`CatalogStore`], [`LeaseStore`], [`RecordStore`]), the event and catalog
//! record types, the in-memory backend ([`memory::MemoryTopicLog`]), the
//! pieces every backend shares (tail watches, in-process leases) and the
//! contract tests all backends must pass. The RocksDB backend is the `eventbus-rocksdb` crate,
//! the NATS JetStream backend the `eventbus-jetstream` crate.
//! Must not: know about Avro, authentication or the wire format, or name a
//! storage engine: a backend lives in its own crate behind this trait.
//!
//! Ordering and durability, for every backend:
//! - offsets of one topic start at 1, are assigned by one writer, increase by
//!   one per event and are never reused, not after a restart and not after
//!   retention deleted events;
//! - `append` returns only once its events are durable as configured
//!   ([`Durability`]); readers never see an event before its append returned
//!   to at least the writer (the tail watch moves after the commit).

mod error;
pub mod lease;
pub mod memory;
pub mod records;
pub mod tail;

#[cfg(any(test, feature = "test-util"))]
pub mod contract;
#[cfg(any(test, feature = "test-util"))]
pub mod model;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::types::{
    EventId, ManagedId, ManagedReplay, ManagedState, Offset, SchemaId, TenantId, TopicId,
};

pub use error::{BoxError, LogError, WithContext};
pub use lease::{LeaseHolder, LeaseKey};
pub use records::{RecordStore, StoredRecord};

/// How hard `append` works before it acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after the write-ahead log is fsynced: an acknowledged event
    /// survives a crash of the process and of the machine.
    #[default]
    Sync,
    /// Acknowledge after the write reaches the operating system; the WAL is
    /// fsynced in the background. Survives a crash of the process, but a
    /// power loss or kernel crash can lose the last moments of acknowledged
    /// events.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Self::Sync),
            "buffered" => Ok(Self::Buffered),
            other => Err(format!(
                "unknown durability `{other}`: use `sync` (default) or `buffered`"
            )),
        }
    }
}

/// A key/value header carried with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// Header key.
    pub key: String,
    /// Header value.
    pub value: Bytes,
}

/// An event as the broker hands it to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The event id (client-supplied or generated).
    pub id: EventId,
    /// The writer schema of `payload`.
    pub schema_id: SchemaId,
    /// The Avro datum, stored and delivered unmodified.
    pub payload: Bytes,
    /// Reserved headers, stored as given.
    pub headers: Vec<EventHeader>,
    /// The server made `id` up (the publisher sent none). Nobody can
    /// retry a publish with it, so a backend need not deduplicate by it
    /// (JetStream's `Nats-Msg-Id` table costs its server a lookup and an
    /// entry per event). Not stored: read back, it is `false`.
    pub generated_id: bool,
}

impl NewEvent {
    /// Approximate encoded size, used to bound read batches.
    pub fn approx_size(&self) -> usize {
        self.payload.len()
            + self.id.as_str().len()
            + self.schema_id.as_str().len()
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len() + 8)
                .sum::<usize>()
            + 32
    }
}

/// An event read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the topic.
    pub offset: Offset,
    /// When the writer committed it, epoch milliseconds (drives retention).
    pub time_ms: u64,
    /// The event itself.
    pub event: NewEvent,
}

/// Storage-wide figures for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Bytes of live data files.
    pub size_bytes: u64,
    /// Bytes compaction estimates it still has to rewrite.
    pub pending_compaction_bytes: u64,
}

/// What a topic's log currently holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// The highest offset that retention deleted (0 when none was): events
    /// after it are still readable.
    pub trimmed: Offset,
    /// The highest offset ever assigned (0 when the topic is empty).
    pub latest: Offset,
}

/// A topic as the catalog stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Interned id used in event keys.
    pub id: u32,
    /// The topic name.
    pub name: String,
    /// Every schema id the topic ever had, oldest first; the last is current.
    pub schema_ids: Vec<String>,
    /// Retention by age, milliseconds.
    pub retention_ms: u64,
    /// Creation time, epoch milliseconds.
    pub created_ms: u64,
}

/// A schema's JSON text as the catalog stores it.
///
/// Schema ids are Salesforce's (MD5 of the Parsing Canonical Form), so two
/// tenants' schemas that differ only in `doc`, `aliases` or `default` share
/// an id; each tenant's text is a record of its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaRecord {
    /// The tenant that registered the text; `None` for a record stored
    /// before texts were kept per tenant (one text per id, whichever tenant
    /// registered it first).
    pub tenant: Option<TenantId>,
    /// The schema id.
    pub id: SchemaId,
    /// The JSON text as registered.
    pub json: String,
}

/// A managed subscription as the catalog stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedRecord {
    /// The 18-character id.
    pub id: String,
    /// The tenant (org id) the subscription belongs to: the canonical
    /// 18-character form; older versions stored the form the token named
    /// (read it through [`TenantId::from_stored`]).
    pub tenant: String,
    /// Unique per tenant.
    pub developer_name: String,
    /// The stored name of the topic it reads (fixed at creation).
    pub topic: String,
    /// Start without a commit.
    pub default_replay: ManagedReplay,
    /// Start when the commit is no longer retained.
    pub error_recovery_replay: ManagedReplay,
    /// RUN or STOP.
    pub state: ManagedState,
    /// Creation time, epoch milliseconds.
    pub created_ms: u64,
    /// Last change of the definition, epoch milliseconds.
    pub updated_ms: u64,
    /// The last committed position, if any.
    pub commit: Option<CommitRecord>,
}

impl ManagedRecord {
    /// Whether `other` belongs to the same tenant. Tenants are compared in
    /// canonical form: records written by older versions may name the
    /// tenant by its 15-character org id.
    pub fn same_tenant(&self, other: &ManagedRecord) -> bool {
        TenantId::from_stored(&self.tenant) == TenantId::from_stored(&other.tenant)
    }
}

/// A committed position of a managed subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The topic id the offset belongs to: a commit made before the topic
    /// was deleted and created again does not apply to the new topic.
    pub topic_id: u32,
    /// Processed up to and including this offset.
    pub offset: u64,
    /// When it was committed, epoch milliseconds.
    pub time_ms: u64,
}

/// Everything the catalog holds, as loaded at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// All topics.
    pub topics: Vec<TopicRecord>,
    /// All schema texts, each tenant's and those stored before texts were
    /// kept per tenant.
    pub schemas: Vec<SchemaRecord>,
    /// The smallest topic id never used: ids of deleted topics are not
    /// handed out again.
    pub next_topic_id: u32,
    /// All managed subscriptions of every tenant.
    pub managed: Vec<ManagedRecord>,
}

/// A change to the catalog, as every handle on a shared log sees it
/// (changes made through this handle included): how several eventbus
/// processes on one shared log learn of each other's topics, schemas and
/// managed subscriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    /// A topic was created or changed.
    Topic(TopicRecord),
    /// A topic was deleted: its name.
    TopicDeleted(String),
    /// A schema text was stored.
    Schema(SchemaRecord),
    /// A managed subscription was created or changed (its commit included).
    Managed(ManagedRecord),
    /// A managed subscription was deleted.
    ManagedDeleted(String),
}

/// Epoch milliseconds: a point in time as the log stores it (an event's
/// `time_ms`, a retention cutoff).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochMillis(pub u64);

/// The per-topic append-only event log: offsets, reads, the tail and
/// retention. One part of [`TopicLog`].
///
/// Every method is required: there is no sensible default for storage.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Makes `topic` known to the log so it can take appends and be watched.
    /// Idempotent. Called for every catalog topic at startup and for every
    /// new topic before its first append.
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError>;

    /// Appends `events` in order and returns their offsets once durable.
    /// Concurrent appends to one topic are serialised by one writer; their
    /// offsets never interleave within one call.
    ///
    /// # Cancel safety
    /// Dropping the future after the events were queued does not withdraw
    /// them: they are still written, only the acknowledgement is lost.
    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError>;

    /// Appends each part's events to its topic, all or nothing: every part is
    /// durable, with offsets assigned as `append` would (each part's offsets
    /// contiguous and in order), or none is stored and the call fails.
    /// Parts name distinct topics; the first part is the source, the others
    /// derived from it. Returns one `Vec` of offsets per part, in the order
    /// of `parts`; an empty part stores nothing and gets an empty `Vec`.
    ///
    /// # Errors
    /// [`LogError::DuplicateTopic`] when two parts name the same topic, and
    /// [`LogError::UnknownTopic`] when any part (an empty one too) names a
    /// topic that is not registered: nothing of the call is stored either
    /// way. A call without any event stores nothing and succeeds like an
    /// empty `append` (only the duplicate check applies). Other errors as
    /// for `append`.
    ///
    /// # Crash safety
    /// Backends with one transaction (memory, RocksDB) store every part in
    /// one commit: readers see all parts or none, also after a crash.
    /// Backends without one (JetStream) record the call before storing any
    /// part and complete an interrupted call later (after a crash, by any
    /// process on the same log): until then a reader may see one part
    /// without another; once it is complete every part is stored, each
    /// event once. There, a call that failed after the record was written
    /// is completed too, like a publish whose acknowledgement was lost.
    ///
    /// # Cancel safety
    /// As for `append`: once queued, the call is carried out whether or not
    /// its future is still polled.
    async fn append_many(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
    ) -> Result<Vec<Vec<Offset>>, LogError>;

    /// Reads events with offsets after `after`, in order, stopping at
    /// `max_events` or once `max_bytes` (approximate) is reached; at least
    /// one event is returned when any exists.
    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError>;

    /// The current bounds of the topic's log.
    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError>;

    /// A watch on the latest committed offset; it changes after every commit.
    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError>;

    /// Deletes the events committed before `cutoff` and returns how many
    /// were deleted. Never blocks appends.
    async fn trim_older_than(&self, topic: TopicId, cutoff: EpochMillis) -> Result<u64, LogError>;

    /// Approximate bytes the topic's events take in storage.
    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError>;

    /// Storage-wide figures; cheap (reads in-memory counters).
    fn storage_stats(&self) -> StorageStats;

    /// Makes everything acknowledged so far durable and stops the writer;
    /// later appends fail with [`LogError::Closed`].
    async fn close(&self) -> Result<(), LogError>;
}

/// Checks that the parts of one [`EventLog::append_many`] call name
/// distinct topics: [`LogError::DuplicateTopic`] otherwise. For backends;
/// quadratic in the number of parts, which is small, and allocation-free.
pub fn check_distinct_topics(parts: &[(TopicId, Vec<NewEvent>)]) -> Result<(), LogError> {
    for (i, (topic, _)) in parts.iter().enumerate() {
        if parts[..i].iter().any(|(t, _)| t == topic) {
            return Err(LogError::DuplicateTopic(topic.0));
        }
    }
    Ok(())
}

/// The catalog: topic, schema and managed-subscription records, topic ids
/// and the change feed. One part of [`TopicLog`].
///
/// Every method is required: there is no sensible default for storage.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Loads the catalog.
    async fn load_catalog(&self) -> Result<Catalog, LogError>;

    /// Durably stores a topic record (insert or replace) and raises the
    /// catalog's `next_topic_id` above its id.
    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError>;

    /// Stores a new topic's record unless a topic of that name exists
    /// (created by this handle or another on the same log); false, and
    /// nothing stored, when one does. Raises `next_topic_id` like
    /// [`CatalogStore::put_topic`].
    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError>;

    /// Deletes a topic: its events, trim point and catalog record, in one
    /// durable write. Watchers of its tail see the watch close. Returns the
    /// number of events that were retained.
    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError>;

    /// Takes a topic id never handed out before, by this handle or any
    /// other on the same log.
    async fn allocate_topic_id(&self) -> Result<TopicId, LogError>;

    /// Durably stores `tenant`'s JSON text of a schema (insert or
    /// replace). Texts of other tenants with the same id are kept apart.
    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError>;

    /// `tenant`'s JSON text of a schema, `None` when it stored none; with
    /// `tenant` `None`, the text stored for the id before texts were kept
    /// per tenant. Never another tenant's text.
    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError>;

    /// Durably stores a managed subscription (insert or replace, by id).
    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError>;

    /// Durably stores a new managed subscription unless its tenant has one
    /// of the same developer name (created through any handle on the log);
    /// false, and nothing stored, when it has.
    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError>;

    /// Durably replaces only the commit of a managed subscription (`None`
    /// removes it), leaving its definition as stored: a commit made on one
    /// process cannot undo a state change made on another. Returns false
    /// when no subscription has this id.
    async fn put_commit(
        &self,
        id: &ManagedId,
        commit: Option<CommitRecord>,
    ) -> Result<bool, LogError>;

    /// Durably deletes a managed subscription by id (no error when absent).
    async fn delete_managed(&self, id: &ManagedId) -> Result<(), LogError>;

    /// The managed subscription as stored now, commit included (`None` when
    /// no subscription has this id). Read from the store, not from what
    /// [`CatalogStore::watch_catalog`] has delivered so far: a stream that
    /// opens right after another process committed must start after that
    /// commit, however late the change feed is.
    async fn get_managed(&self, id: &ManagedId) -> Result<Option<ManagedRecord>, LogError>;

    /// Every catalog change from now on, or `None` for a log that only this
    /// handle writes (nothing changes behind its back).
    fn watch_catalog(&self) -> Option<tokio::sync::broadcast::Receiver<CatalogChange>>;
}

/// Leases with an expiry: what keeps a managed subscription to one stream
/// across every process on the log. One part of [`TopicLog`].
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease `key` for `holder` for `ttl`, unless another holder's
    /// lease is still running; true when `holder` holds it now. A process
    /// that dies without releasing loses its leases after `ttl`.
    async fn acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError>;

    /// Extends `holder`'s lease by `ttl`; false when it lost the lease.
    async fn renew_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError>;

    /// Gives up `holder`'s lease (no error when it does not hold it).
    async fn release_lease(&self, key: &LeaseKey, holder: &LeaseHolder) -> Result<(), LogError>;
}

/// The whole log a broker runs on: the event log, the catalog, the leases
/// and the per-tenant records. Implemented for every type that implements
/// the four parts; a backend implements those.
pub trait TopicLog: EventLog + CatalogStore + LeaseStore + RecordStore {}

impl<T: EventLog + CatalogStore + LeaseStore + RecordStore + ?Sized> TopicLog for T {}

/// A shared, type-erased log.
pub type SharedLog = Arc<dyn TopicLog>;

/// The process-wide offset of the server clock from the wall clock, in
/// milliseconds (fault injection's time travel; 0 unless an admin set one).
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The wall clock, epoch milliseconds, without the server clock offset.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `wall` moved by `offset` milliseconds, clamped to the epoch and `u64::MAX`.
pub fn offset_ms(wall: u64, offset: i64) -> u64 {
    wall.saturating_add_signed(offset)
}

/// The server clock, epoch milliseconds: the wall clock plus the offset
/// of [`set_clock_offset_ms`]. Commit times (`time_ms` of every backend
/// that stamps its own) and retention read this clock.
pub fn now_ms() -> u64 {
    offset_ms(
        wall_ms(),
        CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// The server clock's offset from the wall clock, milliseconds.
pub fn clock_offset_ms() -> i64 {
    CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Moves the server clock to the wall clock plus `offset` milliseconds
/// (0 puts it back) for the whole process; returns the previous offset.
/// Only the Admin API's fault injection calls this (`SetClockOffset`):
/// it exists to test how clients and retention react to time passing.
pub fn set_clock_offset_ms(offset: i64) -> i64 {
    CLOCK_OFFSET_MS.swap(offset, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn an_offset_moves_the_clock_both_ways_and_clamps() {
        assert_eq!(offset_ms(1_000, 0), 1_000);
        assert_eq!(offset_ms(1_000, 72 * 3_600_000), 1_000 + 259_200_000);
        assert_eq!(offset_ms(1_000, -500), 500);
        assert_eq!(offset_ms(1_000, -5_000), 0, "never before the epoch");
        assert_eq!(offset_ms(u64::MAX - 1, 10), u64::MAX);
        // No test here moves the process-wide offset: other tests of this
        // crate read `now_ms` concurrently.
        assert_eq!(clock_offset_ms(), 0);
        let (wall, now) = (wall_ms(), now_ms());
        assert!(now >= wall && now - wall < 60_000);
    }
}
