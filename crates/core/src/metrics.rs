//! Prometheus metrics of the server.
//!
//! Owns: every metric name, its help text and labels (low cardinality: topic
//! and error code, never replay ids or clients), which topic names a label
//! may show ([`TopicLabels`]), and the text encoding.
//! Must not: compute anything; components update the handles they are given.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Which topic names the `topic` label shows. `/metrics` is served without
/// authentication, so by default it names no tenant but the default one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TopicLabels {
    /// The default tenant's topics by name (the topics folder's, and every
    /// topic in `--auth none`); every other tenant's topics together as
    /// [`OTHER_TENANTS_LABEL`].
    #[default]
    DefaultTenant,
    /// Every topic by its stored name, `/~<org id>/event/X__e` for other
    /// tenants: names the tenants and their topics, so only where nobody
    /// but the operator can reach `/metrics`.
    All,
    /// No topic names: every topic counted as [`ALL_TOPICS_LABEL`].
    None,
}

/// The `topic` label of other tenants' topics under
/// [`TopicLabels::DefaultTenant`]. No topic name looks like it: names start
/// with `/`.
pub const OTHER_TENANTS_LABEL: &str = "other-tenants";

/// The `topic` label of every topic under [`TopicLabels::None`].
pub const ALL_TOPICS_LABEL: &str = "*";

/// Label set naming a topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    /// The topic name.
    pub topic: String,
}

/// Label set naming an `error-code` trailer value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The error code.
    pub code: String,
}

/// Label set naming why the server closed a connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `handshake`, `idle` or `stuck`.
    pub reason: &'static str,
}

/// Label set of an injected fault: what it did and which rule did it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabel {
    /// `fail`, `reset`, `drop`, `stall`, `latency` or `refuse`.
    pub fault: &'static str,
    /// The rule's id (`f1`, …).
    pub rule: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    /// `pubsub_publish_events_total{topic}`: events acknowledged.
    pub publish_events: Family<TopicLabel, Counter>,
    /// `pubsub_publish_bytes_total{topic}`: payload bytes acknowledged.
    pub publish_bytes: Family<TopicLabel, Counter>,
    /// `pubsub_publish_rejected_events_total{topic}`: events that failed validation.
    pub publish_rejected: Family<TopicLabel, Counter>,
    /// `pubsub_publish_latency_seconds`: publish request to acknowledgement.
    pub publish_latency: Histogram,
    /// `pubsub_log_commit_latency_seconds`: one group commit (write + fsync).
    pub commit_latency: Histogram,
    /// `pubsub_log_commit_batch_events`: events per group commit.
    pub commit_batch_events: Histogram,
    /// `pubsub_subscriptions_open{topic}`: Subscribe and ManagedSubscribe
    /// streams running; topics without one have no series.
    pub subscriptions_open: Family<TopicLabel, Gauge>,
    /// `pubsub_publish_streams_open`: PublishStream streams running.
    pub publish_streams_open: Gauge,
    /// `pubsub_subscribe_delivered_events_total{topic}`.
    pub delivered_events: Family<TopicLabel, Counter>,
    /// `pubsub_subscribe_credit_outstanding`: credit of all subscriptions.
    pub credit_outstanding: Gauge,
    /// `pubsub_subscribe_lag_events{topic}`: the most any subscriber of the
    /// topic is behind its latest event.
    pub subscriber_lag: Family<TopicLabel, Gauge>,
    /// `pubsub_errors_total{code}`: errors returned to clients.
    pub errors: Family<CodeLabel, Counter>,
    /// `pubsub_storage_size_bytes`: live SST bytes of the store.
    pub storage_size: Gauge,
    /// `pubsub_storage_pending_compaction_bytes`: compaction debt.
    pub storage_pending_compaction: Gauge,
    topic_labels: TopicLabels,
    /// `pubsub_connections_open`: accepted connections, handshakes included.
    pub connections_open: Gauge,
    /// `pubsub_accept_errors_total`: failed accepts (descriptors or memory
    /// exhausted, aborted connections).
    pub accept_errors: Counter,
    /// `pubsub_connections_closed_total{reason}`: connections the server
    /// closed on its own (handshake timeout, idle, stuck client).
    pub connections_closed: Family<ReasonLabel, Counter>,
    /// `pubsub_response_budget_held_bytes`: response bytes produced for
    /// clients and not yet written, with reservations, all connections.
    pub response_budget_held: Gauge,
    /// `pubsub_faults_injected_total{fault,rule}`: failures made on
    /// purpose by fault rules (never counted in `pubsub_errors_total`).
    pub faults_injected: Family<FaultLabel, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric, with the default
    /// [`TopicLabels`].
    pub fn new() -> Self {
        Self::with_topic_labels(TopicLabels::default())
    }

    /// Creates and registers every metric; `topic_labels` decides what the
    /// `topic` label shows.
    pub fn with_topic_labels(topic_labels: TopicLabels) -> Self {
        // 50 µs to ~3 s: loopback publishes are sub-millisecond, fsyncs a few ms.
        let latency = || Histogram::new(exponential_buckets(0.000_05, 2.0, 17));
        let m = Self {
            publish_events: Family::default(),
            publish_bytes: Family::default(),
            publish_rejected: Family::default(),
            publish_latency: latency(),
            commit_latency: latency(),
            commit_batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            subscriptions_open: Family::default(),
            publish_streams_open: Gauge::default(),
            delivered_events: Family::default(),
            credit_outstanding: Gauge::default(),
            subscriber_lag: Family::default(),
            errors: Family::default(),
            storage_size: Gauge::default(),
            storage_pending_compaction: Gauge::default(),
            topic_labels,
            connections_open: Gauge::default(),
            accept_errors: Counter::default(),
            connections_closed: Family::default(),
            response_budget_held: Gauge::default(),
            faults_injected: Family::default(),
            registry: Registry::default(),
        };
        let mut r = Registry::default();
        r.register(
            "pubsub_faults_injected",
            "Failures injected on purpose by fault rules, by fault and rule",
            m.faults_injected.clone(),
        );
        r.register(
            "pubsub_publish_events",
            "Events acknowledged to publishers",
            m.publish_events.clone(),
        );
        r.register_with_unit(
            "pubsub_publish",
            "Payload bytes acknowledged to publishers",
            Unit::Bytes,
            m.publish_bytes.clone(),
        );
        r.register(
            "pubsub_publish_rejected_events",
            "Events that failed validation",
            m.publish_rejected.clone(),
        );
        r.register_with_unit(
            "pubsub_publish_latency",
            "Publish request to acknowledgement",
            Unit::Seconds,
            m.publish_latency.clone(),
        );
        r.register_with_unit(
            "pubsub_log_commit_latency",
            "One group commit: write batch and fsync",
            Unit::Seconds,
            m.commit_latency.clone(),
        );
        r.register(
            "pubsub_log_commit_batch_events",
            "Events per group commit",
            m.commit_batch_events.clone(),
        );
        r.register(
            "pubsub_subscriptions_open",
            "Subscribe and ManagedSubscribe streams running, by topic",
            m.subscriptions_open.clone(),
        );
        r.register(
            "pubsub_publish_streams_open",
            "PublishStream streams running",
            m.publish_streams_open.clone(),
        );
        r.register(
            "pubsub_subscribe_delivered_events",
            "Events delivered to subscribers",
            m.delivered_events.clone(),
        );
        r.register(
            "pubsub_subscribe_credit_outstanding",
            "Outstanding credit of all subscriptions",
            m.credit_outstanding.clone(),
        );
        r.register(
            "pubsub_subscribe_lag_events",
            "Largest distance of a subscriber behind the topic's latest event",
            m.subscriber_lag.clone(),
        );
        r.register(
            "pubsub_errors",
            "Errors returned to clients, by error code",
            m.errors.clone(),
        );
        r.register_with_unit(
            "pubsub_storage_size",
            "Live SST bytes of the store",
            Unit::Bytes,
            m.storage_size.clone(),
        );
        r.register_with_unit(
            "pubsub_storage_pending_compaction",
            "Estimated bytes compaction still has to rewrite",
            Unit::Bytes,
            m.storage_pending_compaction.clone(),
        );
        r.register(
            "pubsub_connections_open",
            "Accepted connections, TLS handshakes included",
            m.connections_open.clone(),
        );
        r.register(
            "pubsub_accept_errors",
            "Failed accepts: descriptors or memory exhausted, aborted connections",
            m.accept_errors.clone(),
        );
        r.register(
            "pubsub_connections_closed",
            "Connections the server closed on its own, by reason",
            m.connections_closed.clone(),
        );
        r.register_with_unit(
            "pubsub_response_budget_held",
            "Response bytes produced for clients and not yet written, with reservations",
            Unit::Bytes,
            m.response_budget_held.clone(),
        );
        Self { registry: r, ..m }
    }

    /// Adds metrics that are read when scraped rather than updated by a
    /// component (the process's CPU, memory and descriptors): `collector`
    /// encodes them on every [`Metrics::encode`].
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// Counts an error returned to a client.
    pub fn count_error(&self, code: &str) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    /// The `topic` label for the topic stored as `stored`, as
    /// [`TopicLabels`] allows.
    pub fn topic_label(&self, stored: &str) -> TopicLabel {
        let shown = match self.topic_labels {
            TopicLabels::All => stored,
            TopicLabels::DefaultTenant if stored.starts_with(crate::types::TENANT_MARK) => {
                OTHER_TENANTS_LABEL
            }
            TopicLabels::DefaultTenant => stored,
            TopicLabels::None => ALL_TOPICS_LABEL,
        };
        TopicLabel {
            topic: shown.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported_under_its_documented_name() {
        let m = Metrics::new();
        m.publish_events
            .get_or_create(&m.topic_label("/event/A__e"))
            .inc();
        m.count_error("sfdc.platform.eventbus.grpc.topic.not.found");
        m.publish_latency.observe(0.001);
        m.subscriptions_open
            .get_or_create(&m.topic_label("/event/A__e"))
            .set(2);
        let text = m.encode();
        for name in [
            "pubsub_publish_events_total{topic=\"/event/A__e\"} 1",
            "pubsub_errors_total{code=\"sfdc.platform.eventbus.grpc.topic.not.found\"} 1",
            "pubsub_publish_latency_seconds_bucket",
            "pubsub_log_commit_latency_seconds_count",
            "pubsub_log_commit_batch_events_count",
            "pubsub_subscriptions_open{topic=\"/event/A__e\"} 2",
            "pubsub_storage_size_bytes",
            "pubsub_connections_open",
            "pubsub_accept_errors_total",
            "pubsub_response_budget_held_bytes",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn topic_labels_name_other_tenants_only_when_asked() {
        let default_topic = "/event/A__e";
        let tenant_topic = "/~00D5e000000Abcd/event/A__e";
        let shown = |labels: TopicLabels, stored: &str| {
            Metrics::with_topic_labels(labels).topic_label(stored).topic
        };
        assert_eq!(shown(TopicLabels::default(), default_topic), default_topic);
        assert_eq!(
            shown(TopicLabels::default(), tenant_topic),
            OTHER_TENANTS_LABEL
        );
        assert_eq!(shown(TopicLabels::All, tenant_topic), tenant_topic);
        assert_eq!(shown(TopicLabels::None, default_topic), ALL_TOPICS_LABEL);
        assert_eq!(shown(TopicLabels::None, tenant_topic), ALL_TOPICS_LABEL);
        // Two tenants' topics count together.
        let m = Metrics::new();
        for stored in [tenant_topic, "/~00D5e000000Zzzz/event/B__e"] {
            m.publish_events.get_or_create(&m.topic_label(stored)).inc();
        }
        let text = m.encode();
        assert!(
            text.contains("pubsub_publish_events_total{topic=\"other-tenants\"} 2"),
            "{text}"
        );
        assert!(!text.contains("/~"), "{text}");
    }
}
