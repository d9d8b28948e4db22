//! eventbus-broker, the engine: topics, the publish pipeline,
//! subscriptions, retention.
//!
//! Depends on `eventbus-core` (types, errors, metrics, the log contract) and
//! `eventbus-schema`; the protocol layer (the root `eventbus` crate) sits
//! above it and is the only way a client reaches it.
//!
//! Owns: the topic table (name → id, schema versions, retention), publish
//! validation and acknowledgement, per-subscription cursors and credit,
//! keepalives and tail wake-ups, the retention task.
//! Must not: import tonic, prost or rocksdb (they are not its dependencies,
//! so the compiler refuses); it speaks domain types only, over any
//! [`log::TopicLog`] backend.
//!
//! Lock order: `provision_lock` (async, held across log writes so two
//! provisioning calls of this process cannot both create a topic) is taken
//! before `topics`; `topics` is never held across an `.await`. Topic ids come
//! from the log, so processes sharing a log never hand out the same one.

pub mod activity;
pub mod admin;
pub mod browse;
pub mod credits;
mod follow;
pub mod managed;
pub mod metadata;
pub mod provision;
pub mod publisher;
pub mod routing;
pub mod schemas;
pub mod streams;
pub mod subscription;
#[cfg(test)]
mod testing;
pub mod usage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use eventbus_core::{error, log, metrics, types};
use eventbus_schema as schema;

use crate::error::ErrorCode;
use crate::log::{LogError, SharedLog, TopicRecord, now_ms};
use crate::metrics::Metrics;
use crate::schema::{ParsedSchema, SchemaRegistry};
use crate::types::{Echo, SchemaId, TopicId, TopicName};

pub use activity::TopicActivity;
pub use admin::TopicSummary;
pub use schemas::{owner_of_topic, owner_prefix};

pub use managed::{
    CommitAnswer, CommitRequest, CommitTarget, ManagedChange, ManagedRef, ManagedSession,
    ManagedView, NewManaged,
};
pub use publisher::{PublishEvent, PublishOutcome, PublishReceipt};
pub use routing::{Route, Router};
pub use streams::{StreamKind, StreamOrigin, StreamSnapshot};
pub use subscription::{
    Control, Controls, Delivery, Held, Hold, ManagedOpen, Pace, PaceAdmission, Start, Subscription,
};

pub use crate::types::DEFAULT_TENANT_GUID;

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Cap on a subscription's outstanding credit (the Pub/Sub API uses 100).
    pub max_credit: u32,
    /// Most events in one response.
    pub max_batch_events: usize,
    /// Most event bytes in one response; keeps responses under the 4 MiB
    /// default gRPC inbound limit of every client.
    pub max_response_bytes: usize,
    /// Keepalive interval of a subscription with credit and nothing new.
    pub keepalive: Duration,
    /// Largest accepted event payload.
    pub max_event_bytes: usize,
    /// Retention by age for new topics.
    pub default_retention: Duration,
    /// How often the retention task looks for expired events.
    pub retention_check_interval: Duration,
    /// Most managed subscriptions one tenant may define.
    pub max_managed_per_tenant: usize,
    /// Caps on each schema registered (Admin API, topics folder).
    pub schema_limits: crate::schema::SchemaLimits,
    /// Most distinct schemas (by id) one tenant's topics may use.
    pub max_schemas_per_tenant: usize,
    /// Most bytes of schema JSON one tenant's schemas may add up to.
    pub max_schema_bytes_per_tenant: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_credit: 100,
            max_batch_events: 100,
            max_response_bytes: 3 * 1024 * 1024,
            keepalive: Duration::from_secs(60),
            max_event_bytes: 1024 * 1024,
            default_retention: Duration::from_secs(72 * 3600),
            retention_check_interval: Duration::from_secs(60),
            max_managed_per_tenant: 200,
            schema_limits: crate::schema::SchemaLimits::default(),
            max_schemas_per_tenant: 1_000,
            max_schema_bytes_per_tenant: 16 * 1024 * 1024,
        }
    }
}

/// Errors of the engine. Each maps to one [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The request named no topic.
    #[error("The topic name is blank. Provide a topic name such as /event/Order_Event__e.")]
    TopicNameBlank,
    /// Publish named no topic.
    #[error(
        "The publish request has no topic name. Provide a topic name such as /event/Order_Event__e."
    )]
    PublishTopicBlank,
    /// The topic name is malformed.
    #[error("The topic name is not valid: {0}.")]
    TopicNameInvalid(String),
    /// The topic does not exist.
    #[error("The topic {} was not found.", Echo(.0))]
    TopicNotFound(String),
    /// GetSchema without an id.
    #[error("The schema ID is blank. Provide the schema_id of a topic or event.")]
    SchemaIdBlank,
    /// The schema id is unknown.
    #[error("The schema {} was not found.", Echo(.0))]
    SchemaNotFound(String),
    /// Publish with no events.
    #[error("The publish request contains no events. Send at least one event.")]
    EmptyBatch,
    /// Publish with more events than one request may carry.
    #[error(
        "The publish request contains {got} events; at most {max} are allowed per request. Split it into smaller requests (200 or fewer events each is recommended)."
    )]
    TooManyEvents {
        /// Events in the request.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// CUSTOM without a replay id.
    #[error(
        "The replay preset is CUSTOM but no replay ID was given. Provide the replay ID to resume after."
    )]
    ReplayIdMissing,
    /// The replay id cannot be used.
    #[error("The Replay ID validation failed: {0}. Ensure that the Replay ID is valid.")]
    ReplayIdCorrupted(String),
    /// The server is shutting down.
    #[error("The server is shutting down. Reconnect and resume from your last replay ID.")]
    ShuttingDown,
    /// CreateTopic for a name that exists.
    #[error("The topic {} already exists.", Echo(.0))]
    TopicExists(String),
    /// A schema given through the admin API does not parse.
    #[error("The schema is not a valid Avro record schema: {0}")]
    SchemaInvalid(String),
    /// A schema breaks a registration cap of its own (size, types, nesting, zero-byte
    /// fields).
    #[error("The schema cannot be registered: {0}.")]
    SchemaOverLimit(String),
    /// The tenant has its maximum of schemas, or of schema bytes.
    #[error("{0}")]
    SchemaLimit(String),
    /// A new schema version cannot read events written with the current one.
    #[error("The schema is not backward compatible with the current version {current}: {reason}")]
    SchemaIncompatible {
        /// The topic's current schema id.
        current: String,
        /// Which field and why.
        reason: String,
    },
    /// A retention value out of range.
    #[error("The retention must be greater than 0 ms; got {0} ms.")]
    RetentionInvalid(u64),
    /// The topic was deleted while a subscription read it.
    #[error("The topic {} was deleted.", Echo(.0))]
    TopicDeleted(String),
    /// A topics-folder or schema problem at provisioning time.
    #[error("{0}")]
    Provision(String),
    /// A malformed managed subscription id.
    #[error("The managed subscription ID is not valid: {0}.")]
    ManagedIdInvalid(String),
    /// No managed subscription with this id.
    #[error("No managed subscription with ID {} exists.", Echo(.0))]
    ManagedIdNotFound(String),
    /// No managed subscription with this developer name.
    #[error("No managed subscription with developer name {} exists.", Echo(.0))]
    ManagedNameNotFound(String),
    /// Another stream holds the subscription.
    #[error(
        "An active managed subscription with the same ID already exists. If a previous subscription with the same ID was stopped, there can be a delay before it expires. Try subscribing again later."
    )]
    ManagedAlreadyActive,
    /// The subscription is in state STOP.
    #[error(
        "The managed subscription {} is stopped (state STOP). Set its state to RUN to consume it again; it then starts from its default replay.",
        Echo(.0)
    )]
    ManagedStopped(String),
    /// The subscription was deleted.
    #[error("The managed subscription {} was deleted.", Echo(.0))]
    ManagedDeleted(String),
    /// A definition that cannot be stored.
    #[error("The managed subscription is not valid: {0}.")]
    ManagedInvalid(String),
    /// CreateManagedSubscription for a developer name in use.
    #[error("A managed subscription with developer name {} already exists.", Echo(.0))]
    ManagedExists(String),
    /// The tenant has its maximum of managed subscriptions.
    #[error(
        "The org has {0} managed subscriptions, the most allowed. Delete one before creating another."
    )]
    ManagedLimit(usize),
    /// The log failed.
    #[error("storage failure")]
    Log(#[from] LogError),
}

impl BrokerError {
    /// The `error-code` trailer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::TopicNameBlank => ErrorCode::TopicValidationEmpty,
            BrokerError::PublishTopicBlank => ErrorCode::PublishTopicValidationEmpty,
            BrokerError::TopicNameInvalid(_) => ErrorCode::TopicValidationInvalid,
            BrokerError::TopicNotFound(_) => ErrorCode::TopicNotFound,
            BrokerError::SchemaIdBlank => ErrorCode::SchemaValidationFailed,
            BrokerError::SchemaNotFound(_) => ErrorCode::SchemaMetaPermission,
            BrokerError::EmptyBatch | BrokerError::TooManyEvents { .. } => {
                ErrorCode::PublishEventCountInvalid
            }
            BrokerError::ReplayIdMissing => ErrorCode::SubscriptionFetchReplayIdValidationFailed,
            BrokerError::ReplayIdCorrupted(_) => ErrorCode::SubscriptionFetchReplayIdCorrupted,
            BrokerError::ShuttingDown => ErrorCode::ServiceUnavailable,
            BrokerError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            BrokerError::SchemaInvalid(_) | BrokerError::SchemaOverLimit(_) => {
                ErrorCode::SchemaInvalid
            }
            BrokerError::SchemaLimit(_) => ErrorCode::SchemaLimitExceeded,
            BrokerError::SchemaIncompatible { .. } => ErrorCode::SchemaIncompatible,
            BrokerError::RetentionInvalid(_) => ErrorCode::TopicRetentionInvalid,
            BrokerError::TopicDeleted(_) => ErrorCode::TopicNotFound,
            BrokerError::Provision(_) => ErrorCode::ServiceInternal,
            BrokerError::ManagedIdInvalid(_) => ErrorCode::ManagedIdInvalid,
            BrokerError::ManagedIdNotFound(_) => ErrorCode::ManagedIdNotFound,
            BrokerError::ManagedNameNotFound(_) => ErrorCode::ManagedDeveloperNameNotFound,
            BrokerError::ManagedAlreadyActive => ErrorCode::ManagedAlreadyActive,
            BrokerError::ManagedStopped(_) => ErrorCode::ManagedStopped,
            BrokerError::ManagedDeleted(_) => ErrorCode::ManagedDeleted,
            BrokerError::ManagedInvalid(_) => ErrorCode::ManagedConfigInvalid,
            BrokerError::ManagedExists(_) => ErrorCode::ManagedAlreadyExists,
            BrokerError::ManagedLimit(_) => ErrorCode::ManagedLimitExceeded,
            BrokerError::Log(LogError::StorageFull(_)) => ErrorCode::StorageFull,
            BrokerError::Log(LogError::TooLarge(_)) => ErrorCode::RequestTooLarge,
            BrokerError::Log(e) if e.retryable() => ErrorCode::ServiceUnavailable,
            BrokerError::Log(_) => ErrorCode::ServiceInternal,
        }
    }

    /// Whether retrying the same call later could succeed.
    pub fn retryable(&self) -> bool {
        match self {
            BrokerError::ShuttingDown => true,
            BrokerError::Log(e) => e.retryable(),
            _ => false,
        }
    }
}

/// One topic as the engine knows it.
#[derive(Clone, Debug)]
pub struct Topic {
    /// Interned id.
    pub id: TopicId,
    /// Name.
    pub name: TopicName,
    /// Every schema id the topic ever had, oldest first; the last is current.
    pub schema_ids: Vec<SchemaId>,
    /// Retention by age.
    pub retention: Duration,
    /// Creation time, epoch ms.
    pub created_ms: u64,
}

impl Topic {
    /// The current schema id.
    pub fn current_schema(&self) -> &SchemaId {
        // Every topic is created with a schema and versions are only added.
        self.schema_ids
            .last()
            .expect("a topic always has at least one schema")
    }

    /// The topic a catalog record describes.
    ///
    /// # Errors
    /// [`BrokerError::Provision`] for a stored name that is not valid.
    fn from_record(rec: TopicRecord) -> Result<Self, BrokerError> {
        let name = TopicName::parse_stored(&rec.name).map_err(|e| {
            BrokerError::Provision(format!("stored topic {:?} is invalid: {e}", rec.name))
        })?;
        Ok(Topic {
            id: TopicId(rec.id),
            name,
            schema_ids: rec.schema_ids.into_iter().map(SchemaId::new).collect(),
            retention: Duration::from_millis(rec.retention_ms),
            created_ms: rec.created_ms,
        })
    }

    fn to_record(&self) -> TopicRecord {
        TopicRecord {
            id: self.id.0,
            name: self.name.as_str().to_owned(),
            schema_ids: self
                .schema_ids
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            retention_ms: Broker::retention_ms(self),
            created_ms: self.created_ms,
        }
    }
}

/// Counters the engine keeps about itself (exported as metrics later).
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Subscriptions currently running.
    pub open_subscriptions: AtomicI64,
    /// Events read from the log on behalf of subscriptions.
    pub events_read_for_subscribers: AtomicU64,
    /// Events handed to subscribers' outbound streams.
    pub events_delivered: AtomicU64,
    /// Events acknowledged to publishers.
    pub events_published: AtomicU64,
}

/// The engine.
pub struct Broker {
    log: SharedLog,
    schemas: SchemaRegistry,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    // Held across log writes while topics are created, changed or deleted
    // (see the module docs).
    provision_lock: tokio::sync::Mutex<()>,
    cfg: BrokerConfig,
    stats: BrokerStats,
    metrics: Arc<Metrics>,
    // Running subscriptions, read when metrics are scraped and streams
    // listed (see `streams`).
    live: streams::LiveStreams,
    // Recent samples of each topic's newest offset, for publish rates (see
    // `activity`). Short critical sections, never held across `.await`.
    rates: std::sync::Mutex<HashMap<TopicId, activity::RateWindow>>,
    managed: managed::Registry,
    // Names this process in leases on a log several processes share.
    instance: String,
    // Each tenant's recent publishes and deliveries (REST `limits`).
    usage: usage::Usage,
    // Where a published event goes besides its topic (custom channels);
    // set once at startup, read on every publish. Weak: the router holds the
    // broker, and the cycle would keep the log open after shutdown.
    router: RwLock<Option<std::sync::Weak<dyn routing::Router>>>,
}

impl Broker {
    /// Loads the catalog from `log` and builds the engine.
    ///
    /// # Errors
    /// [`BrokerError::Log`] when the catalog cannot be read, or
    /// [`BrokerError::Provision`] when a stored schema no longer parses.
    pub async fn open(
        log: SharedLog,
        cfg: BrokerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, BrokerError> {
        // Watch first, then load: a change made meanwhile by another
        // process is seen twice at worst, never missed.
        let changes = log.watch_catalog();
        let catalog = log.load_catalog().await?;
        let schemas = SchemaRegistry::new();
        // Texts stored before texts were kept per tenant: given to their
        // tenant once the topics are known (see `schemas`).
        let mut legacy = Vec::new();
        for rec in catalog.schemas {
            let parsed = ParsedSchema::parse(&rec.json).map_err(|e| {
                BrokerError::Provision(format!("stored schema {} does not parse: {e}", rec.id))
            })?;
            schemas.insert(rec.tenant.as_ref(), parsed);
            if rec.tenant.is_none() {
                legacy.push((rec.id, rec.json));
            }
        }
        let mut topics = HashMap::new();
        for rec in catalog.topics {
            let topic = Topic::from_record(rec)?;
            log.register_topic(topic.id).await?;
            topics.insert(topic.name.as_str().to_owned(), Arc::new(topic));
        }
        let broker = Arc::new(Self {
            log,
            schemas,
            topics: RwLock::new(topics),
            provision_lock: tokio::sync::Mutex::new(()),
            cfg,
            stats: BrokerStats::default(),
            metrics,
            live: streams::LiveStreams::default(),
            rates: std::sync::Mutex::new(HashMap::new()),
            managed: managed::Registry::load(catalog.managed),
            instance: uuid::Uuid::new_v4().to_string(),
            usage: usage::Usage::default(),
            router: RwLock::new(None),
        });
        broker.adopt_legacy_schemas(legacy).await?;
        if let Some(changes) = changes {
            tokio::spawn(follow::follow(Arc::downgrade(&broker), changes));
        }
        Ok(broker)
    }

    /// `tenant`'s events published and delivered lately.
    pub fn usage(&self, tenant: &crate::types::TenantId) -> usage::UsageReport {
        self.usage.report(tenant)
    }

    /// The engine's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.cfg
    }

    /// The metrics handles.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Brings the gauges that are computed rather than counted up to date:
    /// subscriber lag per topic, outstanding credit, storage figures. Called
    /// before each scrape.
    pub fn refresh_gauges(&self) {
        let live = self.live.all();
        // Keyed by label: topics that share one (other tenants') report the
        // furthest-behind subscriber of them all, and their streams together.
        let mut lag: HashMap<metrics::TopicLabel, i64> = HashMap::new();
        let mut open: HashMap<metrics::TopicLabel, i64> = HashMap::new();
        let mut credit = 0i64;
        for (_, sub) in &live {
            credit += i64::try_from(sub.credit.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
            let latest = self.log.bounds(sub.topic).map(|b| b.latest.0).unwrap_or(0);
            let behind = latest.saturating_sub(sub.cursor.load(Ordering::Relaxed));
            let label = self.metrics.topic_label(&sub.topic_name);
            *open.entry(label.clone()).or_insert(0) += 1;
            let e = lag.entry(label).or_insert(0);
            *e = (*e).max(i64::try_from(behind).unwrap_or(i64::MAX));
        }
        self.metrics.subscriber_lag.clear();
        for (label, behind) in lag {
            self.metrics
                .subscriber_lag
                .get_or_create(&label)
                .set(behind);
        }
        self.metrics.credit_outstanding.set(credit);
        // Topics without a stream have no series (as the lag): a topic
        // label per topic ever subscribed would only grow.
        self.metrics.subscriptions_open.clear();
        for (label, n) in open {
            self.metrics.subscriptions_open.get_or_create(&label).set(n);
        }
        let st = self.log.storage_stats();
        self.metrics
            .storage_size
            .set(i64::try_from(st.size_bytes).unwrap_or(i64::MAX));
        self.metrics
            .storage_pending_compaction
            .set(i64::try_from(st.pending_compaction_bytes).unwrap_or(i64::MAX));
    }

    /// The engine's counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Looks a topic up by the name a client sent.
    ///
    /// # Errors
    /// Blank, malformed or unknown names.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        if name.trim().is_empty() {
            return Err(BrokerError::TopicNameBlank);
        }
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        drop(topics);
        TopicName::parse(name).map_err(BrokerError::TopicNameInvalid)?;
        Err(BrokerError::TopicNotFound(name.to_owned()))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = topics.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Resolves a schema id to the parsed schema every tenant's payloads of
    /// that id validate against. Its JSON text is whichever tenant's came
    /// first: callers get theirs from [`Broker::schema_text`].
    ///
    /// # Errors
    /// Blank or unknown ids.
    pub fn schema(&self, id: &str) -> Result<Arc<ParsedSchema>, BrokerError> {
        if id.trim().is_empty() {
            return Err(BrokerError::SchemaIdBlank);
        }
        self.schemas
            .get(&SchemaId::new(id))
            .ok_or_else(|| BrokerError::SchemaNotFound(id.to_owned()))
    }

    /// Deletes expired events of every topic once.
    ///
    /// # Errors
    /// The first log error; other topics are still tried.
    pub async fn enforce_retention(&self) -> Result<u64, BrokerError> {
        let mut deleted = 0;
        let mut first_err = None;
        for t in self.topics() {
            let age = u64::try_from(t.retention.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now_ms().saturating_sub(age);
            match self
                .log
                .trim_older_than(t.id, crate::log::EpochMillis(cutoff))
                .await
            {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(topic = %t.name, deleted = n, "retention deleted expired events");
                    }
                    deleted += n;
                }
                Err(e) => {
                    tracing::warn!(topic = %t.name, error = %e, "retention pass failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(deleted),
        }
    }

    /// Runs [`Broker::enforce_retention`] every `retention_check_interval`
    /// until `stop` is cancelled. Retention runs on its own task and deletes
    /// with range deletes, so publishers are never stalled by it.
    pub async fn run_retention(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.retention_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let _ = self.enforce_retention().await;
                }
            }
        }
    }

    /// Flushes and closes the log.
    ///
    /// # Errors
    /// The log's error when the final sync fails.
    pub async fn close(&self) -> Result<(), BrokerError> {
        self.log.close().await.map_err(BrokerError::from)
    }

    /// What a topic's log holds now.
    ///
    /// # Errors
    /// [`BrokerError::Log`] for a topic the log does not know.
    pub fn bounds(&self, topic: TopicId) -> Result<crate::log::LogBounds, BrokerError> {
        Ok(self.log.bounds(topic)?)
    }

    pub(crate) fn log(&self) -> &SharedLog {
        &self.log
    }

    pub(crate) fn count(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
