//! The state one connection shares among its tasks.
//!
//! Owns: [`Inner`] (the client, the buckets, the registered topics and the
//! caches), opening it (the connection and the buckets), the stream of a
//! topic (name, subject, config, creation) and
//! forgetting a topic. Must not: hold a std lock across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use eventbus_core::log::tail::{TailState, Tails};
use eventbus_core::log::{CatalogChange, LogBounds, LogError};
use eventbus_core::types::{Offset, TopicId};

use crate::config::JetStreamConfig;
use crate::error::{REQUEST_TIMEOUT, storage, stream_gone, timed, topic_err};
use crate::readers::Readers;

/// Acks outstanding in the whole process (see `connect`).
pub(crate) const ACKS_IN_FLIGHT: usize = 1 << 20;
/// Queued catalog changes per receiver before it lags.
const CATALOG_FEED: usize = 1024;
/// Longest wait between retries of a watcher.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The shortest `max_age` JetStream accepts.
pub(crate) const MIN_MAX_AGE: Duration = Duration::from_millis(100);

/// What every handle and task of one connection shares.
pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    /// The prefix as given: the first token of every subject.
    pub(crate) prefix: String,
    /// The prefix upper-cased: the start of stream and bucket names.
    pub(crate) names: String,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) topics_kv: kv::Store,
    pub(crate) schemas_kv: kv::Store,
    pub(crate) managed_kv: kv::Store,
    // Tenant and developer name -> id: the name a managed subscription
    // takes, claimed with a KV create so two processes cannot both take it.
    pub(crate) names_kv: kv::Store,
    pub(crate) meta_kv: kv::Store,
    pub(crate) leases_kv: kv::Store,
    /// Per-tenant records (see `records`).
    pub(crate) records_kv: kv::Store,
    /// Per-tenant counters, apart from the records so names never collide.
    pub(crate) counters_kv: kv::Store,
    pub(crate) tails: Tails,
    pub(crate) topics: RwLock<HashMap<TopicId, Arc<TopicHandle>>>,
    pub(crate) readers: Readers,
    pub(crate) sizes: Mutex<HashMap<TopicId, u64>>,
    pub(crate) catalog_tx: broadcast::Sender<CatalogChange>,
    pub(crate) closed: AtomicBool,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Followers and watchers hold only weak references; stop them when
        // the log goes away without `close`.
        self.shutdown.cancel();
    }
}

/// One registered topic of this process.
pub(crate) struct TopicHandle {
    pub(crate) tail: Arc<TailState>,
    /// Held across one call's publishes and acks: a tokio lock because it
    /// spans `.await`s.
    pub(crate) append: tokio::sync::Mutex<()>,
    /// Stops the topic's follower.
    pub(crate) stop: CancellationToken,
}

/// Bounds from a stream's state: a new stream reports first = last = 0, a
/// purged one first = last + 1.
pub(crate) fn bounds_of(state: &stream::State) -> LogBounds {
    LogBounds {
        trimmed: Offset(state.first_sequence.saturating_sub(1)),
        latest: Offset(state.last_sequence),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Connects to NATS and creates (or opens) the catalog buckets.
    pub(crate) async fn open(cfg: JetStreamConfig) -> Result<Arc<Self>, LogError> {
        cfg.check()?;
        // No echo: this process's tail announcements (see `follow`) are for
        // the other processes; its own appends moved its tails already.
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("eventbus-{}", cfg.prefix))
            .connection_timeout(REQUEST_TIMEOUT)
            .no_echo();
        if let Some(path) = &cfg.credentials_file {
            opts = opts.credentials_file(path).await.map_err(|e| {
                LogError::storage_in(format!("NATS credentials {}", path.display()), e)
            })?;
        }
        if let Some(ca) = &cfg.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = opts.connect(cfg.urls.as_slice()).await.map_err(|e| {
            LogError::storage_in(format!("cannot connect to NATS {:?}", cfg.urls), e)
        })?;
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
                    (Ok(_), Err(open)) => {
                        Err(LogError::storage_in(format!("bucket {name}: open"), open))
                    }
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
            records_kv: bucket("records").await?,
            counters_kv: bucket("counters").await?,
            client,
            js,
            prefix: cfg.prefix,
            names,
            replicas: cfg.replicas,
            duplicate_window: cfg.duplicate_window,
            tails: Tails::default(),
            topics: RwLock::new(HashMap::new()),
            readers: Readers::default(),
            sizes: Mutex::new(HashMap::new()),
            catalog_tx: broadcast::channel(CATALOG_FEED).0,
            closed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Ok(inner)
    }

    pub(crate) fn stream_name(&self, topic: TopicId) -> String {
        format!("{}_T_{}", self.names, topic.0)
    }

    pub(crate) fn subject(&self, topic: TopicId) -> String {
        format!("{}.t.{}", self.prefix, topic.0)
    }

    /// The core NATS subject on which processes announce a topic's new
    /// tail (see `follow`).
    pub(crate) fn tail_subject(&self, topic: TopicId) -> String {
        format!("{}.tail.{}", self.prefix, topic.0)
    }

    /// Moves this process's tail of `topic` (when registered here) to
    /// `latest`, an offset JetStream acknowledged, and tells the other
    /// processes (best effort: one that misses it catches up at its next
    /// refresh, see `follow`).
    pub(crate) async fn moved(&self, topic: TopicId, handle: Option<&TopicHandle>, latest: Offset) {
        if let Some(h) = handle {
            h.tail.advance(latest);
        }
        let said = self
            .client
            .publish(
                self.tail_subject(topic),
                bytes::Bytes::from(latest.0.to_string()),
            )
            .await;
        if let Err(error) = said {
            tracing::debug!(%error, topic = topic.0, "tail announcement not sent");
        }
    }

    pub(crate) fn handle(&self, topic: TopicId) -> Result<Arc<TopicHandle>, LogError> {
        let map = self.topics.read().unwrap_or_else(|p| p.into_inner());
        map.get(&topic)
            .cloned()
            .ok_or(LogError::UnknownTopic(topic.0))
    }

    pub(crate) fn stream_config(&self, topic: TopicId, max_age: Duration) -> stream::Config {
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
    pub(crate) async fn ensure_stream(
        &self,
        topic: TopicId,
        max_age: Option<Duration>,
    ) -> Result<stream::State, LogError> {
        let name = self.stream_name(topic);
        let existing = match timed("stream info", self.js.get_stream(&name)).await {
            Ok(s) => Some(s.cached_info().clone()),
            Err(e) if stream_gone(&e) => None,
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
    pub(crate) fn forget(&self, topic: TopicId, only: Option<&Arc<TopicHandle>>) {
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
        self.readers.forget(topic);
        lock(&self.sizes).remove(&topic);
    }
}
