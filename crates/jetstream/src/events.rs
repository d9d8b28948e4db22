//! The event log on JetStream streams: the [`EventLog`] methods.
//!
//! Owns: registering a topic (its stream and follower), publishing one
//! call's events (pipelined acks under the topic's append lock), reads
//! through the reader cache, the explicit trim, sizes and closing. Must
//! not: touch the catalog buckets, or cache anything of its own (the state
//! lives in [`Inner`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use futures_util::StreamExt;
use tokio::sync::watch;

use eventbus_core::log::{
    EpochMillis, EventLog, LogBounds, LogError, NewEvent, StorageStats, StoredEvent,
    check_distinct_topics,
};
use eventbus_core::types::{Offset, TopicId};

use crate::JetStreamTopicLog;
use crate::codec::encode_headers;
use crate::error::{REQUEST_TIMEOUT, storage, stream_gone, timed, topic_err};
use crate::follow::follow;
use crate::state::{Inner, TopicHandle, bounds_of, lock};

/// Acks one append call keeps outstanding before it waits for the oldest.
pub(crate) const ACK_WINDOW: usize = 1024;

impl Inner {
    /// Publishes one call's events under the topic's append lock.
    pub(crate) async fn append_locked(
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
        let sent = async {
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
            Ok(())
        }
        .await;
        // Also after a failure: what JetStream acknowledged is stored.
        if let Some(max) = offsets.iter().max() {
            self.moved(topic, Some(handle), *max).await;
        }
        sent.map(|()| offsets)
    }

    /// The first sequence stored at or after `cutoff_ms`, if any.
    pub(crate) async fn first_at_or_after(
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

pub(crate) async fn acked(
    topic: TopicId,
    ack: jetstream::context::PublishAckFuture,
) -> Result<Offset, LogError> {
    let ack = ack.await.map_err(|e| publish_err(topic, e))?;
    Ok(Offset(ack.sequence))
}

pub(crate) fn publish_err(
    topic: TopicId,
    e: async_nats::jetstream::context::PublishError,
) -> LogError {
    match e.kind() {
        PublishErrorKind::StreamNotFound => LogError::UnknownTopic(topic.0),
        // The client checks the size before sending: no retry can pass.
        PublishErrorKind::MaxPayloadExceeded => LogError::TooLarge(format!(
            "An event with its headers is larger than the NATS server accepts ({e}); raise max_payload in nats-server's configuration or publish smaller events."
        )),
        _ => LogError::storage_in(format!("publish to topic {}", topic.0), e),
    }
}

#[async_trait::async_trait]
impl EventLog for JetStreamTopicLog {
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
            .map_err(|e| LogError::storage_in("append task failed", e))?
    }

    async fn append_many(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
    ) -> Result<Vec<Vec<Offset>>, LogError> {
        check_distinct_topics(&parts)?;
        if parts.iter().all(|(_, events)| events.is_empty()) {
            return Ok(vec![Vec::new(); parts.len()]);
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let handles = parts
            .iter()
            .map(|(topic, _)| self.inner.handle(*topic))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = self.inner.clone();
        // A task of its own, as for `append`: once the outbox entry is
        // stored the call goes on whether or not its caller waits.
        let task = self
            .inner
            .tasks
            .spawn(async move { inner.append_many_locked(parts, handles).await });
        task.await
            .map_err(|e| LogError::storage_in("append_many task failed", e))?
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
        // Wait for nothing when retention took everything up to the tail:
        // the caller moves on to the trim point.
        let b = handle.tail.bounds();
        let latest = if after.max(b.trimmed) < b.latest {
            b.latest
        } else {
            after
        };
        let inner = &self.inner;
        inner
            .readers
            .read(
                &inner.js,
                &inner.stream_name(topic),
                topic,
                after,
                max_events,
                max_bytes,
                latest,
            )
            .await
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        Ok(self.inner.tails.get(topic)?.bounds())
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.inner.tails.watch(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff: EpochMillis) -> Result<u64, LogError> {
        let cutoff_ms = cutoff.0;
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
            Err(e) if stream_gone(&e) => Ok(0),
            Err(e) => Err(storage(e)),
        }
    }

    fn storage_stats(&self) -> StorageStats {
        StorageStats {
            size_bytes: lock(&self.inner.sizes).values().sum(),
            pending_compaction_bytes: 0,
        }
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
