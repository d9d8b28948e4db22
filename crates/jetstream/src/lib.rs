//! eventbus-jetstream: the NATS JetStream backend of [`TopicLog`]: several
//! eventbus processes share one replicated log and one catalog.
//!
//! Depends on `eventbus-core` only (the log contract); the server picks this
//! backend with `--backend jetstream`.
//!
//! Owns: the mapping of topics onto JetStream streams (one stream per topic,
//! offset = stream sequence), of events onto NATS messages, of the catalog
//! onto key-value buckets, the per-process caches that keep `bounds` and
//! `watch_tail` synchronous (tail followers), the reader cache of pull
//! consumers, the catalog change feed and the lease primitive for managed
//! subscriptions. Must not: configure the NATS servers (replication, storage
//! and fsync policy belong to the cluster), know about Avro or the wire.
//!
//! Layout, for a prefix `eb` (names are the upper-cased prefix):
//! - topic `n`: stream `EB_T_n`, subject `eb.t.n`, file storage, `replicas`
//!   from the config, `max_age` = the topic's retention, `deny_delete` (only
//!   prefix purges happen, so sequences between the first and the last are
//!   all present);
//! - buckets `EB_topics` (key: base64url of the topic name), `EB_schemas`
//!   (key: base64url of `<tenant>/<schema id>`, one text per tenant; keys of
//!   the schema id alone are texts stored before texts were kept per tenant,
//!   read but never written), `EB_managed` (key: base64url of the
//!   subscription id), `EB_meta` (`next_topic_id`, decimal), `EB_leases`
//!   (key: base64url of the lease key, value: holder and expiry, JSON).
//!
//! An event is one message: the payload is the body; headers carry the
//! schema id (`Eb-Schema`), the event id (`Nats-Msg-Id`, so JetStream drops a
//! retried publish within the duplicate window and acknowledges it with the
//! original sequence), and every event header as one `Eb-H` value
//! `base64url(key):base64url(value)`. Texts that are not plain visible ASCII
//! (or start with `~`) are stored as `~` + base64url so no client-chosen byte
//! can break the NATS header framing. `time_ms` is the server's timestamp.
//!
//! Where the [`TopicLog`] contract bends on JetStream:
//! - Offsets of one topic are unique and increasing, but "one writer" holds
//!   per process only: appends of one call are contiguous when no other
//!   process appends to the same topic at the same time; across processes
//!   the calls' events may interleave (each event still gets one sequence).
//! - A duplicate (an event id seen within the duplicate window, which is
//!   capped at the topic's retention) returns the ORIGINAL offset, so a
//!   call that repeats earlier events gets non-contiguous offsets. Within one
//!   call, the k-th repetition of an id is published with message id
//!   `<id> k` (the id itself travels in `Eb-Id`), so a batch that names one
//!   id twice stores both events, and retrying that batch stores neither.
//! - An event must fit the NATS servers' `max_payload` (1 MiB by default)
//!   with its headers; larger ones fail with a [`LogError::Storage`] that
//!   says so. Set `max_payload` above the broker's `max_event_bytes` plus a
//!   few KiB (2 MiB for the default 1 MiB events).
//! - Durability is JetStream's: an acknowledged event is written on a
//!   majority of the stream's replicas, but nats-server fsyncs in the
//!   background (`sync_interval`, 2 minutes by default), so with one replica
//!   a power loss can lose acknowledged events, as with
//!   [`Durability::Buffered`](eventbus_core::log::Durability::Buffered). Use 3 replicas (or `sync_interval:
//!   always` on servers that have it) for [`Durability::Sync`](eventbus_core::log::Durability::Sync)
//!   guarantees; the broker's durability setting does not apply here.
//! - `bounds` and `watch_tail` come from a cache: this process's appends
//!   move it at once; other processes' appends move it when the topic's tail
//!   follower (an ordered, headers-only consumer) sees them, normally within
//!   a round trip; the trim point follows retention every
//!   [`REFRESH_INTERVAL`]. `read` returns nothing past the cached latest
//!   offset, so a subscriber that waits on the tail watch never misses an
//!   event, it may only see it a moment later.
//! - Retention runs in JetStream (`max_age`); `trim_older_than` also purges
//!   explicitly (for the retention task and the contract), counting what it
//!   purged itself only.
//! - A topic deleted by another process closes this process's watches when
//!   JetStream's stream-deleted advisory arrives (milliseconds), or at the
//!   latest when the follower finds its stream gone (its consumer fails, or
//!   the next refresh: [`REFRESH_INTERVAL`]); advisories are best effort,
//!   one was seen to go missing. [`JetStreamTopicLog::forget_topic`], called
//!   on [`CatalogChange::TopicDeleted`], makes it deterministic.
//!   `register_topic` of a deleted id would create an empty stream again
//!   (ids are never reused, so only a stale caller can do that).
//! - The lease expiry compares wall clocks of the processes involved: keep
//!   their clocks in sync (NTP) well within the lease TTL.
//!
//! Cost on the servers: per process, one ordered consumer per registered
//! topic (the follower), one pull consumer per subscriber position being read
//! (reused while the subscriber reads on, dropped by the server after
//! [`READER_IDLE`] unused), one stream-info request per topic every
//! [`REFRESH_INTERVAL`], and three key-value watches.//!
//! Locks: the topic map, the reader cache and the size map are std locks
//! held without `.await` and never two at once; a topic's append lock (tokio)
//! is held across the publishes and acks of one call, so calls of this
//! process to one topic do not interleave.

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::{self, stream};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use eventbus_core::log::tail::{TailState, Tails};
use eventbus_core::log::{
    Catalog, CatalogChange, CommitRecord, EventHeader, LogBounds, LogError, ManagedRecord,
    NewEvent, SchemaRecord, StorageStats, StoredEvent, TopicLog, TopicRecord, now_ms,
};
use eventbus_core::types::{EventId, Offset, SchemaId, TenantId, TopicId};

/// How often a tail follower re-reads its stream's state (first sequence
/// after retention, size). One stream-info request per topic and process each time: cheap for
/// hundreds of topics; the trim point it refreshes may lag by this much.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// The server drops a cached reader consumer unused this long; the cache
/// forgets entries after half of it so it never fetches from a dropped one.
pub const READER_IDLE: Duration = Duration::from_secs(60);
/// Cached reader consumers (one per subscriber position), process-wide.
const READER_CACHE: usize = 512;
/// Upper bound of one JetStream request (fetch, info, purge).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Acks one append call keeps outstanding before it waits for the oldest.
const ACK_WINDOW: usize = 1024;
/// Acks outstanding in the whole process (see `connect`).
const ACKS_IN_FLIGHT: usize = 1 << 20;
/// Queued catalog changes per receiver before it lags.
const CATALOG_FEED: usize = 1024;
/// Longest wait between retries of a follower or watcher.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

const H_SCHEMA: &str = "Eb-Schema";
const H_ID: &str = "Eb-Id";
const H_HEADER: &str = "Eb-H";
const H_MSG_ID: &str = "Nats-Msg-Id";
const NEXT_TOPIC_ID: &str = "next_topic_id";
/// The server's code for "stream not found"; every error type of the
/// client shows it in its text, whichever call failed.
const STREAM_NOT_FOUND: &str = "error code 10059";

/// Where and how to reach JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// Server URLs (`nats://host:port`); the client fails over among them.
    pub urls: Vec<String>,
    /// Replicas of every stream and bucket: 1, or 3 for a cluster.
    pub replicas: usize,
    /// Names every stream, subject and bucket, so several deployments (or
    /// tests) share one cluster: letters, digits, `-` and `_`.
    pub prefix: String,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for TLS to NATS.
    pub tls_ca: Option<PathBuf>,
    /// How long JetStream remembers event ids to drop duplicates; capped
    /// at each topic's retention.
    pub duplicate_window: Duration,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            replicas: 1,
            prefix: "eventbus".into(),
            credentials_file: None,
            tls_ca: None,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The shortest `max_age` JetStream accepts.
const MIN_MAX_AGE: Duration = Duration::from_millis(100);

/// The JetStream-backed topic log. Cheap to share behind an `Arc`.
pub struct JetStreamTopicLog {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The prefix as given: the first token of every subject.
    prefix: String,
    /// The prefix upper-cased: the start of stream and bucket names.
    names: String,
    replicas: usize,
    duplicate_window: Duration,
    topics_kv: kv::Store,
    schemas_kv: kv::Store,
    managed_kv: kv::Store,
    // Tenant and developer name -> id: the name a managed subscription
    // takes, claimed with a KV create so two processes cannot both take it.
    names_kv: kv::Store,
    meta_kv: kv::Store,
    leases_kv: kv::Store,
    tails: Tails,
    topics: RwLock<HashMap<TopicId, Arc<TopicHandle>>>,
    readers: Mutex<HashMap<(TopicId, u64), Reader>>,
    sizes: Mutex<HashMap<TopicId, u64>>,
    catalog_tx: broadcast::Sender<CatalogChange>,
    closed: AtomicBool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Followers and watchers hold only weak references; stop them when
        // the log goes away without `close`.
        self.shutdown.cancel();
    }
}

/// One registered topic of this process.
struct TopicHandle {
    tail: Arc<TailState>,
    /// Held across one call's publishes and acks: a tokio lock because it
    /// spans `.await`s.
    append: tokio::sync::Mutex<()>,
    /// Stops the topic's follower.
    stop: CancellationToken,
}

/// A pull consumer positioned at a subscriber's next offset, and what it
/// fetched beyond the last read's byte budget.
struct Reader {
    consumer: consumer::PullConsumer,
    buffered: VecDeque<StoredEvent>,
    used: Instant,
}

/// A lease as stored in the leases bucket.
#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    expires_ms: u64,
}

fn storage(e: impl std::fmt::Display) -> LogError {
    LogError::Storage(e.to_string())
}

fn stream_gone(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains(STREAM_NOT_FOUND)
}

/// Maps an error of a call on topic `topic`'s stream.
fn topic_err(topic: TopicId, e: impl std::fmt::Display) -> LogError {
    if stream_gone(&e) {
        LogError::UnknownTopic(topic.0)
    } else {
        storage(e)
    }
}

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out after {REQUEST_TIMEOUT:?}")),
    }
}

/// A KV key (or header text) for any string: base64url has only allowed
/// characters and never starts or ends with `.`.
fn key_of(s: &str) -> String {
    if s.is_empty() {
        // The bucket refuses empty keys; `=` is no base64url character.
        return "=".into();
    }
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn unkey(k: &str) -> Result<String, LogError> {
    if k == "=" {
        return Ok(String::new());
    }
    URL_SAFE_NO_PAD
        .decode(k)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LogError::Corrupt(format!("key {k:?} is not base64url of UTF-8")))
}

/// The schemas bucket's key of a tenant's text (`<tenant>/<id>`; tenant ids
/// have no `/`), or with `None` of a text stored before texts were kept per
/// tenant (the id alone; schema ids have no `/` either).
fn schema_key(tenant: Option<&TenantId>, id: &SchemaId) -> String {
    match tenant {
        Some(t) => key_of(&format!("{t}/{id}")),
        None => key_of(id.as_str()),
    }
}

/// A schemas bucket entry as a record.
fn schema_record(key: &str, value: &[u8]) -> Result<SchemaRecord, LogError> {
    let name = unkey(key)?;
    let json = String::from_utf8(value.to_vec())
        .map_err(|_| LogError::Corrupt(format!("schema {name} is not UTF-8")))?;
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

/// Header text for a client-chosen string: itself when plain visible ASCII,
/// else `~` + base64url.
fn header_text(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty() && !s.starts_with('~') && s.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("~{}", URL_SAFE_NO_PAD.encode(s.as_bytes())))
    }
}

fn from_header_text(s: &str) -> Result<String, LogError> {
    match s.strip_prefix('~') {
        None => Ok(s.to_owned()),
        Some(b64) => URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| LogError::Corrupt(format!("header text {s:?} is not ~base64url"))),
    }
}

/// The NATS headers of one event; `repeat` counts earlier events of the
/// same call with the same id.
fn encode_headers(event: &NewEvent, repeat: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(H_SCHEMA, header_text(event.schema_id.as_str()).as_ref());
    let id = event.id.as_str();
    if !id.is_empty() {
        let text = header_text(id);
        if repeat == 0 {
            h.insert(H_MSG_ID, text.as_ref());
        } else {
            // A space never occurs in header text, so this id cannot
            // collide with any event's own id.
            h.insert(H_MSG_ID, format!("{text} {repeat}"));
            h.insert(H_ID, text.as_ref());
        }
    }
    for header in &event.headers {
        h.append(
            H_HEADER,
            format!(
                "{}:{}",
                URL_SAFE_NO_PAD.encode(header.key.as_bytes()),
                URL_SAFE_NO_PAD.encode(&header.value)
            ),
        );
    }
    h
}

fn decode_event(
    offset: u64,
    time_ms: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<StoredEvent, LogError> {
    let corrupt = |what: &str| LogError::Corrupt(format!("event {offset}: {what}"));
    let headers = headers.ok_or_else(|| corrupt("no headers"))?;
    let schema = headers
        .get(H_SCHEMA)
        .ok_or_else(|| corrupt("no schema id header"))?;
    let schema_id = SchemaId::new(from_header_text(schema.as_str())?);
    let id = match headers.get(H_ID).or_else(|| headers.get(H_MSG_ID)) {
        Some(v) => from_header_text(v.as_str())?,
        None => String::new(),
    };
    let mut out = Vec::new();
    for v in headers.get_all(H_HEADER) {
        let (k, val) = v
            .as_str()
            .split_once(':')
            .ok_or_else(|| corrupt("event header without `:`"))?;
        let key = URL_SAFE_NO_PAD
            .decode(k)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| corrupt("event header key is not base64url of UTF-8"))?;
        let value = URL_SAFE_NO_PAD
            .decode(val)
            .map_err(|_| corrupt("event header value is not base64url"))?;
        out.push(EventHeader {
            key,
            value: Bytes::from(value),
        });
    }
    Ok(StoredEvent {
        offset: Offset(offset),
        time_ms,
        event: NewEvent {
            id: EventId::new(id),
            schema_id,
            payload,
            headers: out,
        },
    })
}

fn millis(t: async_nats::jetstream::message::Info<'_>) -> u64 {
    u64::try_from(t.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Bounds from a stream's state: a new stream reports first = last = 0, a
/// purged one first = last + 1.
fn bounds_of(state: &stream::State) -> LogBounds {
    LogBounds {
        trimmed: Offset(state.first_sequence.saturating_sub(1)),
        latest: Offset(state.last_sequence),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JetStreamTopicLog {
    /// Connects to NATS and creates (or opens) the catalog buckets.
    ///
    /// # Errors
    /// [`LogError::Storage`] for a bad prefix or replica count, an
    /// unreachable server, bad credentials or a JetStream failure.
    pub async fn connect(cfg: JetStreamConfig) -> Result<Self, LogError> {
        // Boxed: the connect and bucket futures are large (clippy's
        // large_futures), and callers should not carry them inline.
        Box::pin(Self::connect_inner(cfg)).await
    }

    async fn connect_inner(cfg: JetStreamConfig) -> Result<Self, LogError> {
        let valid_prefix = !cfg.prefix.is_empty()
            && cfg
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_prefix {
            return Err(storage(format!(
                "JetStream prefix {:?} must be letters, digits, `-` and `_`",
                cfg.prefix
            )));
        }
        if cfg.replicas == 0 || cfg.replicas > 5 {
            return Err(storage(format!(
                "JetStream replicas must be 1 to 5, not {}",
                cfg.replicas
            )));
        }
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("eventbus-{}", cfg.prefix))
            .connection_timeout(REQUEST_TIMEOUT);
        if let Some(path) = &cfg.credentials_file {
            opts = opts
                .credentials_file(path)
                .await
                .map_err(|e| storage(format!("NATS credentials {}: {e}", path.display())))?;
        }
        if let Some(ca) = &cfg.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = opts
            .connect(cfg.urls.as_slice())
            .await
            .map_err(|e| storage(format!("cannot connect to NATS {:?}: {e}", cfg.urls)))?;
        // Each call holds its acks until it has sent everything: with the
        // client's default (5000 in flight, waiting for a free slot) a few
        // dozen concurrent batches could each wait for a slot another one
        // holds. A pool no load reaches, and an error rather than a wait
        // should it ever run dry, rule that deadlock out.
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_ack_inflight(ACKS_IN_FLIGHT)
            .backpressure_on_inflight(false)
            .build(client.clone());
        let names = cfg.prefix.to_ascii_uppercase();
        let bucket = |suffix: &'static str| {
            let (js, name, replicas) = (js.clone(), format!("{names}_{suffix}"), cfg.replicas);
            async move {
                // The bucket's stream is made here rather than with
                // `create_key_value`, whose account query cannot parse the
                // replies of nats-server 2.9 (Debian's). Same settings as a
                // KV bucket with history 1.
                let created = js
                    .create_stream(stream::Config {
                        name: format!("KV_{name}"),
                        subjects: vec![format!("$KV.{name}.>")],
                        max_messages_per_subject: 1,
                        storage: stream::StorageType::File,
                        num_replicas: replicas,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await;
                // Another process may have made it with other settings (an
                // older version, another replica count): use it as it is.
                let open = js.get_key_value(&name).await;
                match (created, open) {
                    (_, Ok(store)) => Ok(store),
                    (Err(create), Err(open)) => Err(storage(format!(
                        "bucket {name}: create: {create}; open: {open}"
                    ))),
                    (Ok(_), Err(open)) => Err(storage(format!("bucket {name}: open: {open}"))),
                }
            }
        };
        let inner = Arc::new(Inner {
            topics_kv: bucket("topics").await?,
            schemas_kv: bucket("schemas").await?,
            managed_kv: bucket("managed").await?,
            names_kv: bucket("names").await?,
            meta_kv: bucket("meta").await?,
            leases_kv: bucket("leases").await?,
            client,
            js,
            prefix: cfg.prefix,
            names,
            replicas: cfg.replicas,
            duplicate_window: cfg.duplicate_window,
            tails: Tails::default(),
            topics: RwLock::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            sizes: Mutex::new(HashMap::new()),
            catalog_tx: broadcast::channel(CATALOG_FEED).0,
            closed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        // The watches exist before `connect` returns, so every change made
        // after it reaches `watch_catalog` receivers taken before
        // `load_catalog`.
        for kind in [WatchKind::Topics, WatchKind::Schemas, WatchKind::Managed] {
            let store = inner.bucket_of(kind).clone();
            let first = store
                .watch_all()
                .await
                .map_err(|e| storage(format!("watch {}: {e}", store.name)))?;
            let (tx, stop) = (inner.catalog_tx.clone(), inner.shutdown.clone());
            inner
                .tasks
                .spawn(watch_bucket(store, kind, first, tx, stop));
        }
        // Stream deletions by any process, from JetStream's advisories: the
        // prompt way to close this process's watches of a deleted topic (a
        // follower's consumer may notice only at its next refresh).
        let deleted = inner
            .client
            // Wildcards match whole tokens only: all streams, filtered below.
            .subscribe("$JS.EVENT.ADVISORY.STREAM.DELETED.*")
            .await
            .map_err(|e| storage(format!("subscribe to stream advisories: {e}")))?;
        inner.tasks.spawn(forget_deleted(
            Arc::downgrade(&inner),
            deleted,
            inner.shutdown.clone(),
        ));
        Ok(Self { inner })
    }

    /// Closes this process's view of a topic (its tail watches, follower
    /// and readers) without touching storage: for a topic another process
    /// deleted, learned from [`Self::watch_catalog`]
    /// ([`TopicLog::delete_topic`] would work too, with a few needless
    /// requests). The stream-deleted advisory does the same by itself; this
    /// makes the timing deterministic.
    pub fn forget_topic(&self, topic: TopicId) {
        self.inner.forget(topic, None);
    }

    /// Atomically takes the next topic id (compare-and-set on the meta
    /// bucket), so two processes never get the same one.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails, [`LogError::Corrupt`]
    /// when the stored counter is not a number.
    async fn take_topic_id(&self) -> Result<u32, LogError> {
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

    /// A feed of catalog changes made by any process, this one included.
    /// Take it before [`TopicLog::load_catalog`] so nothing falls between
    /// the two; a receiver that lags (`RecvError::Lagged`) should load the
    /// catalog again.
    fn catalog_feed(&self) -> broadcast::Receiver<CatalogChange> {
        self.inner.catalog_tx.subscribe()
    }

    /// Takes the lease `key` for `holder` for `ttl` when it is free, expired
    /// or already `holder`'s. Returns whether `holder` now has it.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    async fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let value = lease_value(holder, ttl)?;
        // Loops only when another process changed the lease between our
        // read and our write; the next read decides again.
        loop {
            match current_lease(store, &k).await? {
                None => match store.create(&k, value.clone()).await {
                    Ok(_) => return Ok(true),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(storage(format!("lease {key}: {e}"))),
                },
                Some((lease, revision)) => {
                    if lease.holder != holder && lease.expires_ms > now_ms() {
                        return Ok(false);
                    }
                    match store.update(&k, value.clone(), revision).await {
                        Ok(_) => return Ok(true),
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(storage(format!("lease {key}: {e}"))),
                    }
                }
            }
        }
    }

    /// Extends `holder`'s lease `key` to `ttl` from now. Returns false when
    /// the lease is gone or someone else holds it (then stop working on
    /// what it guards).
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    async fn lease_renew(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let Some((lease, revision)) = current_lease(store, &k).await? else {
            return Ok(false);
        };
        if lease.holder != holder {
            return Ok(false);
        }
        match store.update(&k, lease_value(holder, ttl)?, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(storage(format!("lease {key}: {e}"))),
        }
    }

    /// Gives up `holder`'s lease `key`; nothing happens when someone else
    /// holds it.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    async fn lease_release(&self, key: &str, holder: &str) -> Result<(), LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let Some((lease, revision)) = current_lease(store, &k).await? else {
            return Ok(());
        };
        if lease.holder != holder {
            return Ok(());
        }
        // A failed revision check means someone took an expired lease over:
        // it is no longer ours to delete.
        match store.delete_expect_revision(&k, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(storage(format!("lease {key}: {e}"))),
        }
    }
}

/// Forgets topics whose streams were deleted, as the advisories come.
async fn forget_deleted(
    inner: Weak<Inner>,
    mut advisories: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let advisory = tokio::select! {
            _ = stop.cancelled() => return,
            a = advisories.next() => a,
        };
        // The subscription ends only when the client does.
        let Some(advisory) = advisory else { return };
        let Some(inner) = inner.upgrade() else { return };
        let ours = format!("$JS.EVENT.ADVISORY.STREAM.DELETED.{}_T_", inner.names);
        let topic = advisory
            .subject
            .strip_prefix(ours.as_str())
            .and_then(|id| id.parse::<u32>().ok());
        if let Some(topic) = topic {
            inner.forget(TopicId(topic), None);
        }
    }
}

fn lease_value(holder: &str, ttl: Duration) -> Result<Bytes, LogError> {
    let lease = Lease {
        holder: holder.to_owned(),
        expires_ms: now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    serde_json::to_vec(&lease).map(Bytes::from).map_err(storage)
}

/// The live lease under `k` and its revision; `None` when absent or deleted.
async fn current_lease(store: &kv::Store, k: &str) -> Result<Option<(Lease, u64)>, LogError> {
    let entry = store
        .entry(k)
        .await
        .map_err(|e| storage(format!("lease: {e}")))?;
    match entry {
        Some(e) if e.operation == Operation::Put => {
            let lease: Lease = serde_json::from_slice(&e.value)
                .map_err(|err| LogError::Corrupt(format!("lease record: {err}")))?;
            Ok(Some((lease, e.revision)))
        }
        _ => Ok(None),
    }
}

#[derive(Clone, Copy, Debug)]
enum WatchKind {
    Topics,
    Schemas,
    Managed,
}

/// Feeds one bucket's changes into the catalog channel until shutdown,
/// re-watching from the last revision seen after an error.
async fn watch_bucket(
    store: kv::Store,
    kind: WatchKind,
    first: kv::Watch,
    tx: broadcast::Sender<CatalogChange>,
    stop: CancellationToken,
) {
    let mut watch = Some(first);
    let mut last_revision = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut w = match watch.take() {
            Some(w) => w,
            None => {
                let again = if last_revision == 0 {
                    store.watch_all().await
                } else {
                    store.watch_all_from_revision(last_revision + 1).await
                };
                match again {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(bucket = %store.name, error = %e, "catalog watch failed");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = w.next() => next,
            };
            match next {
                Some(Ok(entry)) => {
                    backoff = Duration::from_millis(100);
                    last_revision = entry.revision;
                    match change_of(kind, &entry) {
                        // No receivers is fine: nobody asked yet.
                        Ok(Some(change)) => drop(tx.send(change)),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(bucket = %store.name, key = %entry.key, error = %e, "skipping a bad catalog entry")
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(bucket = %store.name, error = %e, "catalog watch broke; re-watching");
                    break;
                }
                None => break,
            }
        }
    }
}

fn change_of(kind: WatchKind, entry: &kv::Entry) -> Result<Option<CatalogChange>, LogError> {
    let put = entry.operation == Operation::Put;
    Ok(match (kind, put) {
        (WatchKind::Topics, true) => Some(CatalogChange::Topic(
            serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::Corrupt(format!("topic record: {e}")))?,
        )),
        (WatchKind::Topics, false) => Some(CatalogChange::TopicDeleted(unkey(&entry.key)?)),
        (WatchKind::Schemas, true) => Some(CatalogChange::Schema(schema_record(
            &entry.key,
            &entry.value,
        )?)),
        (WatchKind::Schemas, false) => None,
        (WatchKind::Managed, true) => Some(CatalogChange::Managed(
            serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::Corrupt(format!("managed subscription record: {e}")))?,
        )),
        (WatchKind::Managed, false) => Some(CatalogChange::ManagedDeleted(unkey(&entry.key)?)),
    })
}

impl Inner {
    fn bucket_of(&self, kind: WatchKind) -> &kv::Store {
        match kind {
            WatchKind::Topics => &self.topics_kv,
            WatchKind::Schemas => &self.schemas_kv,
            WatchKind::Managed => &self.managed_kv,
        }
    }

    fn stream_name(&self, topic: TopicId) -> String {
        format!("{}_T_{}", self.names, topic.0)
    }

    fn subject(&self, topic: TopicId) -> String {
        format!("{}.t.{}", self.prefix, topic.0)
    }

    fn handle(&self, topic: TopicId) -> Result<Arc<TopicHandle>, LogError> {
        let map = self.topics.read().unwrap_or_else(|p| p.into_inner());
        map.get(&topic)
            .cloned()
            .ok_or(LogError::UnknownTopic(topic.0))
    }

    fn stream_config(&self, topic: TopicId, max_age: Duration) -> stream::Config {
        // JetStream refuses a max_age under 100 ms; a shorter retention is
        // still kept, by the broker's retention pass (`trim_older_than`).
        let max_age = if max_age.is_zero() {
            max_age
        } else {
            max_age.max(MIN_MAX_AGE)
        };
        // JetStream refuses a duplicate window longer than the retention.
        let duplicate_window = if max_age.is_zero() {
            self.duplicate_window
        } else {
            self.duplicate_window.min(max_age)
        };
        stream::Config {
            name: self.stream_name(topic),
            subjects: vec![self.subject(topic)],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age,
            duplicate_window,
            // Only prefix purges: no holes between the first and last
            // sequence, which keeps "after N" reads simple.
            deny_delete: true,
            ..Default::default()
        }
    }

    /// The stream's state, creating the stream (with `max_age`) when it is
    /// missing; with `Some(max_age)` an existing stream is updated to it.
    async fn ensure_stream(
        &self,
        topic: TopicId,
        max_age: Option<Duration>,
    ) -> Result<stream::State, LogError> {
        let name = self.stream_name(topic);
        let existing = match timed("stream info", self.js.get_stream(&name)).await {
            Ok(s) => Some(s.cached_info().clone()),
            Err(e) if e.contains(STREAM_NOT_FOUND) => None,
            Err(e) => return Err(storage(e)),
        };
        match existing {
            Some(info) => match max_age.map(|age| self.stream_config(topic, age)) {
                Some(want) if info.config.max_age != want.max_age => {
                    let cfg = stream::Config {
                        max_age: want.max_age,
                        duplicate_window: want.duplicate_window,
                        ..info.config
                    };
                    let updated = timed("stream update", self.js.update_stream(cfg))
                        .await
                        .map_err(|e| topic_err(topic, e))?;
                    Ok(updated.state)
                }
                _ => Ok(info.state),
            },
            None => {
                let cfg = self.stream_config(topic, max_age.unwrap_or_default());
                match timed("stream create", self.js.create_stream(cfg)).await {
                    Ok(s) => Ok(s.cached_info().state.clone()),
                    // Another process created it first (maybe with another
                    // max_age): use it, and apply ours if we have one.
                    Err(create) => match timed("stream info", self.js.get_stream(&name)).await {
                        Ok(s) if max_age.is_none() => Ok(s.cached_info().state.clone()),
                        Ok(_) => Box::pin(self.ensure_stream(topic, max_age)).await,
                        Err(open) => Err(storage(format!("{create}; {open}"))),
                    },
                }
            }
        }
    }

    /// Forgets a topic: closes its watches, stops its follower, drops its
    /// readers. With `only`, only when that handle is still the registered
    /// one (a follower must not remove a newer registration).
    fn forget(&self, topic: TopicId, only: Option<&Arc<TopicHandle>>) {
        let removed = {
            let mut map = self.topics.write().unwrap_or_else(|p| p.into_inner());
            match (map.get(&topic), only) {
                (Some(current), Some(h)) if !Arc::ptr_eq(current, h) => return,
                _ => map.remove(&topic),
            }
        };
        if let Some(h) = removed {
            h.stop.cancel();
            self.tails.remove(topic);
        }
        lock(&self.readers).retain(|(t, _), _| *t != topic);
        lock(&self.sizes).remove(&topic);
    }

    async fn next_topic_id(&self) -> Result<(u32, Option<u64>), LogError> {
        let entry = self
            .meta_kv
            .entry(NEXT_TOPIC_ID)
            .await
            .map_err(|e| storage(format!("next topic id: {e}")))?;
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
    async fn set_next_topic_id(&self, next: u32, revision: Option<u64>) -> Result<bool, LogError> {
        let value = Bytes::from(next.to_string());
        match revision {
            None => match self.meta_kv.create(NEXT_TOPIC_ID, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(storage(format!("next topic id: {e}"))),
            },
            Some(rev) => match self.meta_kv.update(NEXT_TOPIC_ID, value, rev).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(storage(format!("next topic id: {e}"))),
            },
        }
    }

    /// Raises the counter to at least `min`; never lowers it.
    async fn raise_next_topic_id(&self, min: u32) -> Result<(), LogError> {
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

    /// Publishes one call's events under the topic's append lock.
    async fn append_locked(
        &self,
        topic: TopicId,
        handle: &TopicHandle,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Offset>, LogError> {
        let subject = self.subject(topic);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let messages: Vec<Publish> = events
            .iter()
            .map(|e| {
                let n = seen.entry(e.id.as_str()).or_default();
                let headers = encode_headers(e, *n);
                *n += 1;
                Publish::build().headers(headers).payload(e.payload.clone())
            })
            .collect();
        // Pipelined: up to ACK_WINDOW publishes go out before the first ack
        // is awaited; acks are taken in order, so offsets match events.
        let mut pending = VecDeque::with_capacity(messages.len().min(ACK_WINDOW));
        let mut offsets = Vec::with_capacity(messages.len());
        {
            // Held while this call's messages go out, not while their acks
            // come back: the sends of one call stay contiguous on the
            // connection (so are their sequences), and concurrent calls
            // overlap their round trips instead of queueing behind them.
            let _one_call_sends_at_a_time = handle.append.lock().await;
            if self.closed.load(Ordering::Acquire) {
                return Err(LogError::Closed);
            }
            for m in messages {
                if pending.len() >= ACK_WINDOW
                    && let Some(ack) = pending.pop_front()
                {
                    offsets.push(acked(topic, ack).await?);
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), m)
                    .await
                    .map_err(|e| publish_err(topic, e))?;
                pending.push_back(ack);
            }
        }
        for ack in pending {
            offsets.push(acked(topic, ack).await?);
        }
        if let Some(max) = offsets.iter().max() {
            handle.tail.advance(*max);
        }
        Ok(offsets)
    }

    /// Reads after `after`, reusing the reader a previous read left there.
    async fn read_from(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let start = after.0 + 1;
        let cached = {
            let mut readers = lock(&self.readers);
            readers
                .remove(&(topic, start))
                .filter(|r| r.used.elapsed() < READER_IDLE / 2)
        };
        let (mut reader, fresh) = match cached {
            Some(r) => (r, false),
            None => (self.new_reader(topic, start).await?, true),
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let take = |e: StoredEvent, out: &mut Vec<StoredEvent>, bytes: &mut usize| {
            let size = e.event.approx_size();
            if out.len() >= max_events || (!out.is_empty() && *bytes + size > max_bytes) {
                Err(e)
            } else {
                *bytes += size;
                out.push(e);
                Ok(())
            }
        };
        while let Some(e) = reader.buffered.pop_front() {
            if let Err(e) = take(e, &mut out, &mut bytes) {
                reader.buffered.push_front(e);
                break;
            }
        }
        if reader.buffered.is_empty() && out.len() < max_events && bytes < max_bytes {
            let fetched = match fetch(&reader.consumer, max_events - out.len()).await {
                Ok(f) => f,
                // The server may have dropped an idle consumer: one more
                // try on a fresh one before giving up.
                Err(_) if !fresh => {
                    reader = self.new_reader(topic, start).await?;
                    fetch(&reader.consumer, max_events - out.len())
                        .await
                        .map_err(|e| topic_err(topic, e))?
                }
                Err(e) => return Err(topic_err(topic, e)),
            };
            for e in fetched {
                if !reader.buffered.is_empty() {
                    reader.buffered.push_back(e);
                } else if let Err(e) = take(e, &mut out, &mut bytes) {
                    reader.buffered.push_back(e);
                }
            }
        }
        let next = out.last().map_or(start, |e| e.offset.0 + 1);
        reader.used = Instant::now();
        let mut readers = lock(&self.readers);
        if readers.len() >= READER_CACHE {
            // Least recently used goes; the server drops its consumer after
            // READER_IDLE.
            if let Some(oldest) = readers.iter().min_by_key(|(_, r)| r.used).map(|(k, _)| *k) {
                readers.remove(&oldest);
            }
        }
        readers.insert((topic, next), reader);
        Ok(out)
    }

    async fn new_reader(&self, topic: TopicId, start: u64) -> Result<Reader, LogError> {
        let consumer = timed(
            "create reader",
            self.js.create_consumer_on_stream(
                pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    ack_policy: AckPolicy::None,
                    inactive_threshold: READER_IDLE,
                    memory_storage: true,
                    ..Default::default()
                },
                self.stream_name(topic),
            ),
        )
        .await
        .map_err(|e| topic_err(topic, e))?;
        Ok(Reader {
            consumer,
            buffered: VecDeque::new(),
            used: Instant::now(),
        })
    }

    /// The first sequence stored at or after `cutoff_ms`, if any.
    async fn first_at_or_after(
        &self,
        topic: TopicId,
        cutoff_ms: u64,
    ) -> Result<Option<u64>, LogError> {
        let start_time =
            async_nats::datetime::from_nanos(i128::from(cutoff_ms) * 1_000_000).map_err(storage)?;
        let name = self.stream_name(topic);
        let consumer: consumer::PullConsumer = timed(
            "create trim probe",
            self.js.create_consumer_on_stream(
                pull::Config {
                    deliver_policy: DeliverPolicy::ByStartTime { start_time },
                    ack_policy: AckPolicy::None,
                    headers_only: true,
                    inactive_threshold: REQUEST_TIMEOUT,
                    memory_storage: true,
                    ..Default::default()
                },
                &name,
            ),
        )
        .await
        .map_err(|e| topic_err(topic, e))?;
        let first = async {
            let mut batch = consumer.fetch().max_messages(1).messages().await?;
            match batch.next().await {
                Some(m) => Ok(Some(m?.info()?.stream_sequence)),
                None => Ok::<_, async_nats::Error>(None),
            }
        };
        let first = timed("trim probe", first)
            .await
            .map_err(|e| topic_err(topic, e));
        // The probe is done either way; the server would drop it later.
        let _ = self
            .js
            .delete_consumer_from_stream(&consumer.cached_info().name, &name)
            .await;
        first
    }
}

/// Up to `n` stored messages from the reader's position, without waiting
/// for new ones.
async fn fetch(consumer: &consumer::PullConsumer, n: usize) -> Result<Vec<StoredEvent>, String> {
    let run = async {
        let batch = consumer.fetch().max_messages(n).messages().await?;
        let messages: Vec<jetstream::Message> = batch.try_collect().await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let info = m.info()?;
            let (seq, time) = (info.stream_sequence, millis(info));
            let m = m.split().0;
            out.push(decode_event(seq, time, m.headers.as_ref(), m.payload)?);
        }
        Ok::<_, async_nats::Error>(out)
    };
    timed("fetch", run).await
}

async fn acked(
    topic: TopicId,
    ack: jetstream::context::PublishAckFuture,
) -> Result<Offset, LogError> {
    let ack = ack.await.map_err(|e| publish_err(topic, e))?;
    Ok(Offset(ack.sequence))
}

fn publish_err(topic: TopicId, e: async_nats::jetstream::context::PublishError) -> LogError {
    match e.kind() {
        PublishErrorKind::StreamNotFound => LogError::UnknownTopic(topic.0),
        _ => storage(format!("publish to topic {}: {e}", topic.0)),
    }
}

/// Follows one topic's stream: moves the tail for messages appended by any
/// process, refreshes the trim point and size, and closes the topic when
/// the stream is deleted.
async fn follow(
    inner: Weak<Inner>,
    js: jetstream::Context,
    topic: TopicId,
    handle: Weak<TopicHandle>,
    stream_name: String,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(start) = handle.upgrade().map(|h| h.tail.latest().0 + 1) else {
            return;
        };
        let created = js
            .create_consumer_on_stream(
                pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    headers_only: true,
                    ..Default::default()
                },
                &stream_name,
            )
            .await;
        let messages = match created {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    m = messages.next() => match m {
                        Some(Ok(m)) => {
                            backoff = Duration::from_millis(100);
                            let (Some(h), Ok(info)) = (handle.upgrade(), m.info()) else {
                                continue;
                            };
                            h.tail.advance(Offset(info.stream_sequence));
                        }
                        Some(Err(e)) => {
                            tracing::debug!(stream = %stream_name, error = %e, "tail follower restarts");
                            break;
                        }
                        None => break,
                    },
                    _ = refresh.tick() => {
                        if !refresh_state(&inner, &js, topic, &handle, &stream_name).await {
                            return;
                        }
                    }
                }
            },
            Err(e) if e.contains(STREAM_NOT_FOUND) => {
                if !refresh_state(&inner, &js, topic, &handle, &stream_name).await {
                    return;
                }
            }
            Err(e) => tracing::warn!(stream = %stream_name, error = %e, "tail follower failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Re-reads the stream state into the cache; false when the stream or the
/// topic is gone (the follower then ends).
async fn refresh_state(
    inner: &Weak<Inner>,
    js: &jetstream::Context,
    topic: TopicId,
    handle: &Weak<TopicHandle>,
    stream_name: &str,
) -> bool {
    let Ok(stream) = js.get_stream_no_info(stream_name).await else {
        return false;
    };
    match timed("stream info", stream.get_info()).await {
        Ok(info) => {
            let (Some(h), Some(inner)) = (handle.upgrade(), inner.upgrade()) else {
                return false;
            };
            let b = bounds_of(&info.state);
            h.tail.set_trimmed(b.trimmed);
            h.tail.advance(b.latest);
            lock(&inner.sizes).insert(topic, info.state.bytes);
            true
        }
        Err(e) if e.contains(STREAM_NOT_FOUND) => {
            // Deleted by another process: close this process's watches.
            if let (Some(h), Some(inner)) = (handle.upgrade(), inner.upgrade()) {
                tracing::info!(stream = %stream_name, "stream deleted elsewhere; closing the topic");
                inner.forget(topic, Some(&h));
            }
            false
        }
        Err(e) => {
            tracing::debug!(stream = %stream_name, error = %e, "stream refresh failed");
            true
        }
    }
}

#[async_trait::async_trait]
impl TopicLog for JetStreamTopicLog {
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError> {
        let inner = &self.inner;
        if inner.handle(topic).is_ok() {
            return Ok(());
        }
        let state = inner.ensure_stream(topic, None).await?;
        let (handle, fresh) = {
            let mut map = inner.topics.write().unwrap_or_else(|p| p.into_inner());
            match map.get(&topic) {
                // A concurrent registration won; it runs the follower.
                Some(h) => (h.clone(), false),
                None => {
                    let h = Arc::new(TopicHandle {
                        tail: inner.tails.register(topic, bounds_of(&state)),
                        append: tokio::sync::Mutex::new(()),
                        stop: inner.shutdown.child_token(),
                    });
                    map.insert(topic, h.clone());
                    (h, true)
                }
            }
        };
        lock(&inner.sizes).insert(topic, state.bytes);
        if fresh {
            inner.tasks.spawn(follow(
                Arc::downgrade(inner),
                inner.js.clone(),
                topic,
                Arc::downgrade(&handle),
                inner.stream_name(topic),
                handle.stop.clone(),
            ));
        }
        Ok(())
    }

    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let handle = self.inner.handle(topic)?;
        let inner = self.inner.clone();
        // A task of its own: dropping this future (a client gone away) must
        // not stop a half-sent batch, so every event of the call is sent.
        let task = self
            .inner
            .tasks
            .spawn(async move { inner.append_locked(topic, &handle, events).await });
        task.await
            .map_err(|e| storage(format!("append task failed: {e}")))?
    }

    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let handle = self.inner.handle(topic)?;
        if after >= handle.tail.latest() || max_events == 0 {
            return Ok(Vec::new());
        }
        self.inner
            .read_from(topic, after, max_events, max_bytes)
            .await
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        Ok(self.inner.tails.get(topic)?.bounds())
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.inner.tails.watch(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff_ms: u64) -> Result<u64, LogError> {
        let inner = &self.inner;
        let handle = inner.handle(topic)?;
        let stream = inner
            .js
            .get_stream_no_info(inner.stream_name(topic))
            .await
            .map_err(storage)?;
        let info = timed("stream info", stream.get_info())
            .await
            .map_err(|e| topic_err(topic, e))?;
        let bounds = bounds_of(&info.state);
        handle.tail.set_trimmed(bounds.trimmed);
        if info.state.messages == 0 {
            return Ok(0);
        }
        // Keep everything from the first event at or after the cutoff; the
        // state snapshot bounds the purge so later appends are never touched.
        // The common cases (nothing or everything expired) need no probe.
        let ts_ms = |t: async_nats::datetime::DateTime| {
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        };
        let keep_from = if cutoff_ms <= ts_ms(info.state.first_timestamp) {
            return Ok(0);
        } else if cutoff_ms > ts_ms(info.state.last_timestamp) {
            bounds.latest.0 + 1
        } else {
            inner
                .first_at_or_after(topic, cutoff_ms)
                .await?
                .unwrap_or(u64::MAX)
                .min(bounds.latest.0 + 1)
        };
        if keep_from <= bounds.trimmed.0 + 1 {
            return Ok(0);
        }
        let purged = timed("purge", stream.purge().sequence(keep_from).into_future())
            .await
            .map_err(|e| topic_err(topic, e))?;
        handle.tail.set_trimmed(Offset(keep_from - 1));
        Ok(purged.purged)
    }

    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let inner = &self.inner;
        let topics: Vec<(String, Bytes)> = all_entries(&inner.topics_kv).await?;
        let mut cat = Catalog::default();
        for (_, v) in topics {
            let rec: TopicRecord = serde_json::from_slice(&v)
                .map_err(|e| LogError::Corrupt(format!("topic record: {e}")))?;
            cat.topics.push(rec);
        }
        cat.topics.sort_by_key(|t| t.id);
        for (k, v) in all_entries(&inner.schemas_kv).await? {
            cat.schemas.push(schema_record(&k, &v)?);
        }
        cat.schemas.sort();
        for (_, v) in all_entries(&inner.managed_kv).await? {
            let rec: ManagedRecord = serde_json::from_slice(&v)
                .map_err(|e| LogError::Corrupt(format!("managed subscription record: {e}")))?;
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
            .map_err(|e| storage(format!("topic record {}: {e}", record.name)))?;
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
            Err(e) => Err(storage(format!("topic record {}: {e}", record.name))),
        }
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let inner = &self.inner;
        let stream_name = inner.stream_name(topic);
        let held = match timed("stream info", inner.js.get_stream(&stream_name)).await {
            Ok(s) => s.cached_info().state.messages,
            Err(e) if e.contains(STREAM_NOT_FOUND) => 0,
            Err(e) => return Err(storage(e)),
        };
        match timed("stream delete", inner.js.delete_stream(&stream_name)).await {
            Ok(_) => {}
            Err(e) if e.contains(STREAM_NOT_FOUND) => {}
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
            .map_err(|e| storage(format!("topic record {name}: {e}")))?
            .is_some_and(|e| e.operation == Operation::Put);
        if live {
            inner
                .topics_kv
                .delete(&key)
                .await
                .map_err(|e| storage(format!("topic record {name}: {e}")))?;
        }
        inner.forget(topic, None);
        Ok(held)
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        let inner = &self.inner;
        match timed("stream info", inner.js.get_stream(inner.stream_name(topic))).await {
            Ok(s) => {
                let bytes = s.cached_info().state.bytes;
                if inner.handle(topic).is_ok() {
                    lock(&inner.sizes).insert(topic, bytes);
                }
                Ok(bytes)
            }
            Err(e) if e.contains(STREAM_NOT_FOUND) => Ok(0),
            Err(e) => Err(storage(e)),
        }
    }

    fn storage_stats(&self) -> StorageStats {
        StorageStats {
            size_bytes: lock(&self.inner.sizes).values().sum(),
            pending_compaction_bytes: 0,
        }
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
            .map_err(|e| storage(format!("schema {id}: {e}")))?;
        Ok(())
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
            .map_err(|e| storage(format!("managed subscription {}: {e}", record.id)))?;
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
        let fail = |e: &dyn std::fmt::Display| {
            storage(format!(
                "managed subscription name {}: {e}",
                record.developer_name
            ))
        };
        // Older versions claimed under the form the token named: a live
        // claim under the 15-character form takes the name too.
        let legacy = key_of(&format!("{}/{}", tenant.short(), record.developer_name));
        if let Some(claim) = names.entry(&legacy).await.map_err(|e| fail(&e))?
            && claim.operation == Operation::Put
        {
            let holder = String::from_utf8_lossy(&claim.value).into_owned();
            let alive = self
                .inner
                .managed_kv
                .get(key_of(&holder))
                .await
                .map_err(|e| fail(&e))?
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
                    let Some(claim) = names.entry(&name).await.map_err(|e| fail(&e))? else {
                        continue;
                    };
                    let holder = String::from_utf8_lossy(&claim.value).into_owned();
                    let alive = claim.operation == Operation::Put
                        && self
                            .inner
                            .managed_kv
                            .get(key_of(&holder))
                            .await
                            .map_err(|e| fail(&e))?
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
                        Err(e) => return Err(fail(&e)),
                    }
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        self.put_managed(record).await?;
        Ok(true)
    }

    async fn delete_managed(&self, id: &str) -> Result<(), LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let record = self
            .inner
            .managed_kv
            .get(key_of(id))
            .await
            .map_err(|e| storage(format!("managed subscription {id}: {e}")))?
            .and_then(|v| serde_json::from_slice::<ManagedRecord>(&v).ok());
        self.inner
            .managed_kv
            .delete(key_of(id))
            .await
            .map_err(|e| storage(format!("managed subscription {id}: {e}")))?;
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

    async fn put_commit(&self, id: &str, commit: Option<CommitRecord>) -> Result<bool, LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let store = &self.inner.managed_kv;
        let k = key_of(id);
        // Read, change the commit, write back if nobody wrote in between: a
        // definition changed by another process keeps that change.
        loop {
            let entry = store
                .entry(&k)
                .await
                .map_err(|e| storage(format!("managed subscription {id}: {e}")))?;
            let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                return Ok(false);
            };
            let mut rec: ManagedRecord = serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::Corrupt(format!("managed subscription {id}: {e}")))?;
            rec.commit = commit;
            let value = serde_json::to_vec(&rec).map_err(storage)?;
            match store.update(&k, value.into(), entry.revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(storage(format!("managed subscription {id}: {e}"))),
            }
        }
    }

    async fn allocate_topic_id(&self) -> Result<u32, LogError> {
        self.take_topic_id().await
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
            .map_err(|e| storage(format!("schema {id}: {e}")))?;
        value
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| LogError::Corrupt(format!("schema {id} is not UTF-8")))
            })
            .transpose()
    }

    fn watch_catalog(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        Some(self.catalog_feed())
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.lease_acquire(key, holder, ttl).await
    }

    async fn renew_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, LogError> {
        self.lease_renew(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), LogError> {
        self.lease_release(key, holder).await
    }

    async fn close(&self) -> Result<(), LogError> {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.shutdown.cancel();
        inner.tasks.close();
        // Appends in flight finish (their acks come within the ack timeout);
        // followers and watchers stop at once.
        if tokio::time::timeout(REQUEST_TIMEOUT, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("JetStream log closed with appends still waiting for acks");
        }
        inner.client.flush().await.map_err(storage)
    }
}

/// Every live key and value of a bucket (deleted keys skipped).
async fn all_entries(store: &kv::Store) -> Result<Vec<(String, Bytes)>, LogError> {
    let keys: Vec<String> = timed("list keys", async {
        let keys = store.keys().await.map_err(|e| e.to_string())?;
        keys.try_collect::<Vec<String>>()
            .await
            .map_err(|e| e.to_string())
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
                .map_err(|e| storage(format!("{}: {k}: {e}", store.name)))?;
            Ok::<_, LogError>(v.map(|v| (k, v)))
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(entries.into_iter().flatten().collect())
}
