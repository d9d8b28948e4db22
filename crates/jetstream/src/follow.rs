//! Tail followers: what other processes append, seen by this one.
//!
//! Owns: the tail announcements (a process that appended publishes the
//! acknowledged offset on the core NATS subject `<prefix>.tail.<topic>`;
//! every process subscribes to them and moves its tails), the periodic
//! refresh of each registered topic's trim point, size and tail (which
//! also catches up on announcements that were lost: core NATS delivers at
//! most once), and closing a topic whose stream was deleted (by the refresh
//! or the stream-deleted advisories). Must not: read events.
//!
//! An announcement per append call rather than a consumer per topic that
//! delivers every appended message: the consumer cost nats-server and this
//! process a delivery per event (about half of nats-server's work per
//! published event in `eventbus bench publish`, and more for one-event
//! calls), though only the last offset matters.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use eventbus_core::log::LogError;
use eventbus_core::types::{Offset, TopicId};

use crate::error::{stream_gone, timed};
use crate::state::{Inner, TopicHandle, bounds_of, lock};

/// How often a tail follower re-reads its stream's state (first sequence
/// after retention, size, last sequence). One stream-info request per topic
/// and process each time: cheap for hundreds of topics; the trim point it
/// refreshes may lag by this much, and so may the tail when an
/// announcement of another process's append was lost.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Subscribes to JetStream's stream-deleted advisories and forgets this
/// process's topics as their streams go.
pub(crate) async fn watch_deletions(inner: &Arc<Inner>) -> Result<(), LogError> {
    // Stream deletions by any process, from JetStream's advisories: the
    // prompt way to close this process's watches of a deleted topic (its
    // follower notices only at its next refresh).
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

/// Moves tails for the announcements of other processes (`<prefix>.tail.<topic>`,
/// body: the acknowledged offset in decimal), for every topic registered
/// here; announcements of other topics are ignored.
pub(crate) async fn watch_announcements(inner: &Arc<Inner>) -> Result<(), LogError> {
    let announced = inner
        .client
        .subscribe(format!("{}.tail.*", inner.prefix))
        .await
        .map_err(|e| LogError::storage_in("subscribe to tail announcements", e))?;
    inner.tasks.spawn(follow_announcements(
        Arc::downgrade(inner),
        announced,
        inner.shutdown.clone(),
    ));
    Ok(())
}

/// The announcement subject's last token and body, as a topic and offset.
pub(crate) fn parse_announcement(subject: &str, body: &[u8]) -> Option<(TopicId, Offset)> {
    let topic = subject.rsplit('.').next()?.parse::<u32>().ok()?;
    let offset = std::str::from_utf8(body).ok()?.parse::<u64>().ok()?;
    Some((TopicId(topic), Offset(offset)))
}

async fn follow_announcements(
    inner: Weak<Inner>,
    mut announced: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            m = announced.next() => m,
        };
        // The subscription ends only when the client does.
        let Some(m) = m else { return };
        let Some(inner) = inner.upgrade() else { return };
        if let Some((topic, offset)) = parse_announcement(m.subject.as_str(), &m.payload)
            && let Ok(h) = inner.handle(topic)
        {
            h.tail.advance(offset);
        }
    }
}

/// Refreshes one topic's state every [`REFRESH_INTERVAL`] (the first time
/// at once): the trim point, the size, and the tail for appends whose
/// announcement this process missed (also those acknowledged between the
/// topic's stream info and its registration here). Ends when the topic is
/// forgotten or its stream is gone (the topic is then closed).
pub(crate) async fn follow(
    inner: Weak<Inner>,
    js: jetstream::Context,
    topic: TopicId,
    handle: Weak<TopicHandle>,
    stream_name: String,
    stop: CancellationToken,
) {
    let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = refresh.tick() => {
                if !refresh_state(&inner, &js, topic, &handle, &stream_name).await {
                    return;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_its_topic_and_offset() {
        assert_eq!(
            parse_announcement("eb.tail.17", b"42"),
            Some((TopicId(17), Offset(42)))
        );
        for (subject, body) in [
            ("eb.tail.x", &b"42"[..]),
            ("eb.tail.17", b"-1"),
            ("eb.tail.17", b"4 2"),
            ("eb.tail.17", b"\xff"),
            ("eb.tail.99999999999", b"1"),
        ] {
            assert_eq!(
                parse_announcement(subject, body),
                None,
                "{subject} {body:?}"
            );
        }
    }
}
