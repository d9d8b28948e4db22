//! Tail followers: what other processes append, seen by this one.
//!
//! Owns: one ordered, headers-only consumer per registered topic that moves
//! the topic's tail, the periodic refresh of its trim point and size, and
//! closing a topic whose stream was deleted (by the follower or the
//! stream-deleted advisories). Must not: read event bodies.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use eventbus_core::log::LogError;
use eventbus_core::types::{Offset, TopicId};

use crate::error::{STREAM_NOT_FOUND, stream_gone, timed};
use crate::state::{Inner, MAX_BACKOFF, TopicHandle, bounds_of, lock};

/// How often a tail follower re-reads its stream's state (first sequence
/// after retention, size). One stream-info request per topic and process each time: cheap for
/// hundreds of topics; the trim point it refreshes may lag by this much.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Subscribes to JetStream's stream-deleted advisories and forgets this
/// process's topics as their streams go.
pub(crate) async fn watch_deletions(inner: &Arc<Inner>) -> Result<(), LogError> {
    // Stream deletions by any process, from JetStream's advisories: the
    // prompt way to close this process's watches of a deleted topic (a
    // follower's consumer may notice only at its next refresh).
    let deleted = inner
        .client
        // Wildcards match whole tokens only: all streams, filtered below.
        .subscribe("$JS.EVENT.ADVISORY.STREAM.DELETED.*")
        .await
        .map_err(|e| LogError::storage_in("subscribe to stream advisories", e))?;
    inner.tasks.spawn(forget_deleted(
        Arc::downgrade(inner),
        deleted,
        inner.shutdown.clone(),
    ));
    Ok(())
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

/// Follows one topic's stream: moves the tail for messages appended by any
/// process, refreshes the trim point and size, and closes the topic when
/// the stream is deleted.
pub(crate) async fn follow(
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
pub(crate) async fn refresh_state(
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
        Err(e) if stream_gone(&e) => {
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
