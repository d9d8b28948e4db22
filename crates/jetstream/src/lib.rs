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
//!   (key: base64url of the lease key, value: holder and expiry, JSON),
//!   `EB_records` (key: `<tenant>.<record key>`, value: the record, revision:
//!   the KV revision) and `EB_counters` (key: `<tenant>.<counter name>`,
//!   value: decimal); record keys and counter names keep their `.`s as
//!   token separators, an empty token is written `=`;
//! - stream `EB_outbox`, subject `eb.outbox`: one message per unfinished
//!   `append_many` call (see below), deleted once the call is complete.
//!
//! An event is one message: the payload is the body; headers carry the
//! schema id (`Eb-Schema`), the event id (`Nats-Msg-Id`, so JetStream drops a
//! retried publish within the duplicate window and acknowledges it with the
//! original sequence; an id the server generated travels in `Eb-Id` instead,
//! as nobody can retry with it and deduplicating costs nats-server a table
//! entry per event), and every event header as one `Eb-H` value
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
//!   with its headers; larger ones fail with [`LogError::TooLarge`], which
//!   is not retryable. [`JetStreamTopicLog::max_event_bytes`] tells the
//!   server what fits, so it refuses larger events one by one. Set
//!   `max_payload` above the broker's `max_event_bytes` plus
//!   [`HEADER_ALLOWANCE`] (2 MiB for the default 1 MiB events).
//! - Durability is JetStream's: an acknowledged event is written on a
//!   majority of the stream's replicas, but nats-server fsyncs in the
//!   background (`sync_interval`, 2 minutes by default), so with one replica
//!   a power loss can lose acknowledged events, as with
//!   [`Durability::Buffered`](eventbus_core::log::Durability::Buffered). Use 3 replicas (or `sync_interval:
//!   always` on servers that have it) for [`Durability::Sync`](eventbus_core::log::Durability::Sync)
//!   guarantees; the broker's durability setting does not apply here.
//! - `bounds` and `watch_tail` come from a cache: this process's appends
//!   move it at once; other processes' appends move it when their tail
//!   announcement arrives (a core NATS message `<prefix>.tail.<topic>` per
//!   append call, normally within a round trip), or, should one be lost
//!   (core NATS delivers at most once: a process that dies between the
//!   ack and the announcement, a reconnect), at the topic's next refresh,
//!   every [`REFRESH_INTERVAL`]; the trim point follows retention at the
//!   same refresh. `read` returns nothing past the cached latest
//!   offset, so a subscriber that waits on the tail watch never misses an
//!   event, it may only see it a moment later.
//! - Retention runs in JetStream (`max_age`); `trim_older_than` also purges
//!   explicitly (for the retention task and the contract), counting what it
//!   purged itself only.
//! - A topic deleted by another process closes this process's watches when
//!   JetStream's stream-deleted advisory arrives (milliseconds), or at the
//!   latest when the topic's refresh finds its stream gone (every
//!   [`REFRESH_INTERVAL`]); advisories are best effort,
//!   one was seen to go missing. [`JetStreamTopicLog::forget_topic`], called
//!   on [`CatalogChange::TopicDeleted`], makes it deterministic.
//!   `register_topic` of a deleted id would create an empty stream again
//!   (ids are never reused, so only a stale caller can do that).
//! - `append_many` has no transaction across streams: the call's parts are
//!   first stored as one outbox message, then each part is published with
//!   message ids `ob<outbox sequence>-<part>-<index>` (instead of the event
//!   ids: an event retried by a client is not deduplicated across calls
//!   here), then the outbox message is deleted. A call interrupted after
//!   the outbox message (a crash, a failed publish) is completed by any
//!   process once the message is 60 s old (a running call is done by then,
//!   and the default 2-minute duplicate window still covers it; each
//!   process checks at connect and every 10 s): for each part it reads the stream
//!   after the sequence recorded in the message and publishes only the
//!   events not there, so nothing is doubled even after the duplicate
//!   window passed. Until then a reader may see one part without the
//!   others; offsets of a completed part are whatever the stream assigns.
//!   A failure before the outbox message is stored stores nothing; one after
//!   it fails the call but the parts are still stored later (the caller
//!   cannot tell: like a publish whose ack was lost). All of one call's
//!   events must fit one NATS message (`max_payload`), or it fails with
//!   [`LogError::TooLarge`]. A part whose topic was deleted is dropped.
//! - A record must fit the NATS servers' `max_payload` with its subject
//!   (the default 1 MiB is a few hundred bytes short of the largest record
//!   the contract allows); a larger one fails with [`LogError::TooLarge`].
//!   Listing records reads every key of the tenant under the prefix's whole
//!   `.`-separated tokens (an ordered consumer), keeping the first `limit`.
//! - The lease expiry compares wall clocks of the processes involved: keep
//!   their clocks in sync (NTP) well within the lease TTL.
//!
//! Cost on the servers: per process, one subscription to the tail
//! announcements and one announcement per append call, one pull consumer
//! per subscriber position being read
//! (reused while the subscriber reads on, dropped by the server after
//! [`READER_IDLE`] unused), one stream-info request per topic every
//! [`REFRESH_INTERVAL`], and three key-value watches; one short-lived
//! ordered consumer per record listing; one outbox stream-info request every
//! 10 s, and per `append_many` call one more message published and deleted.
//!
//! Modules, one concern each: `config` (where and how to connect), `error`
//! (client errors as log errors), `codec` (an event as NATS headers and
//! body), `keys` (key-value key escaping), `state` (what one connection's
//! handles and tasks share), `events` (the [`EventLog`] methods and the
//! append path), `readers` (the reader cache), `follow` (tail
//! announcements, the periodic refresh and the stream-deleted advisories), `catalog` (the [`CatalogStore`] methods
//! and the topic id counter), `outbox` (`append_many` across streams and
//! completing interrupted calls), `watch` (the catalog change feed) and `lease`
//! (the [`LeaseStore`] methods on the leases bucket) and `records` (the
//! [`RecordStore`] methods on the records and counters buckets).
//!
//! Locks: the topic map, the reader cache and the size map are std locks
//! held without `.await` and never two at once; a topic's append lock (tokio)
//! is held across the publishes and acks of one call, so calls of this
//! process to one topic do not interleave.

mod catalog;
mod codec;
mod config;
mod error;
mod events;
mod follow;
mod keys;
mod lease;
mod outbox;
mod readers;
mod records;
mod state;
mod watch;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use eventbus_core::log::LogError;
#[cfg(doc)]
use eventbus_core::log::{
    CatalogChange, CatalogStore, EventLog, LeaseStore, RecordStore, TopicLog,
};
use eventbus_core::types::TopicId;

pub use config::JetStreamConfig;
pub use follow::REFRESH_INTERVAL;
pub use readers::READER_IDLE;

use state::Inner;

/// Bytes of a NATS message set aside for an event's headers when sizing
/// events against `max_payload`: the schema id and message ids take about
/// 150 bytes; the rest is room for the event's own headers. An event whose
/// headers need more still fails, with [`LogError::TooLarge`].
pub const HEADER_ALLOWANCE: usize = 8 * 1024;

/// The JetStream-backed topic log. Cheap to share behind an `Arc`.
pub struct JetStreamTopicLog {
    inner: Arc<Inner>,
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
        let inner = Box::pin(Inner::open(cfg)).await?;
        // The watches exist before `connect` returns, so every change made
        // after it reaches `watch_catalog` receivers taken before
        // `load_catalog`.
        watch::start(&inner).await?;
        follow::watch_deletions(&inner).await?;
        follow::watch_announcements(&inner).await?;
        // Boxed like `Inner::open`: the stream request future is large.
        Box::pin(outbox::start(&inner)).await?;
        Ok(Self { inner })
    }

    /// The NATS server's `max_payload` (from its INFO): the largest
    /// message, headers included, it accepts.
    pub fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// The largest event payload that fits [`Self::max_payload`] with the
    /// headers an event carries (schema id, event ids, a few event headers:
    /// [`HEADER_ALLOWANCE`]).
    pub fn max_event_bytes(&self) -> usize {
        self.max_payload().saturating_sub(HEADER_ALLOWANCE)
    }

    /// Closes this process's view of a topic (its tail watches, follower
    /// and readers) without touching storage: for a topic another process
    /// deleted, learned from [`Self::watch_catalog`]
    /// ([`CatalogStore::delete_topic`] would work too, with a few needless
    /// requests). The stream-deleted advisory does the same by itself; this
    /// makes the timing deterministic.
    pub fn forget_topic(&self, topic: TopicId) {
        self.inner.forget(topic, None);
    }
}
