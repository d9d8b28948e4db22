//! Reading a topic's retained events for people (the console's browse,
//! live tail and export), outside any subscription.
//!
//! Owns: bounded page reads ([`Broker::read_page`]) and finding where a
//! moment starts in a topic ([`Broker::offset_at_time`], a binary search
//! on commit times, which the log keeps in offset order). Must not: keep
//! anything between calls, count as a subscriber, or decode events (the
//! caller does, with the schemas it may see).

use crate::log::StoredEvent;
use crate::types::Offset;
use crate::{Broker, BrokerError, Topic};

/// The most events one page read returns.
pub const MAX_PAGE_EVENTS: usize = 1_000;

/// The most bytes (approximately) one page read returns.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

impl Broker {
    /// Up to `max` events of `topic` (capped at [`MAX_PAGE_EVENTS`] and
    /// about [`MAX_PAGE_BYTES`]) after offset `after`, oldest first. Events
    /// that retention removed are skipped: the page starts at the oldest
    /// retained one.
    ///
    /// # Errors
    /// The log's.
    pub async fn read_page(
        &self,
        topic: &Topic,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, BrokerError> {
        let max = max.clamp(1, MAX_PAGE_EVENTS);
        let bounds = self.log().bounds(topic.id)?;
        let after = after.max(bounds.trimmed.0);
        if after >= bounds.latest.0 {
            return Ok(Vec::new());
        }
        let mut events = self
            .log()
            .read(topic.id, Offset(after), max, MAX_PAGE_BYTES)
            .await?;
        events.truncate(max);
        Ok(events)
    }

    /// The offset to read after so that the first event returned is the
    /// oldest retained event of `topic` committed at or after `time_ms`
    /// (epoch milliseconds): the latest offset when every event is older.
    /// Reads one event per step of a binary search over the retained
    /// offsets (about 20 reads for a million events).
    ///
    /// # Errors
    /// The log's.
    pub async fn offset_at_time(&self, topic: &Topic, time_ms: u64) -> Result<u64, BrokerError> {
        let bounds = self.log().bounds(topic.id)?;
        // The answer `after` is in [trimmed, latest]: events with offsets in
        // (trimmed, after] are older than `time_ms`, the rest are not.
        let (mut lo, mut hi) = (bounds.trimmed.0, bounds.latest.0);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The first retained event after `mid`.
            let first = self.log().read(topic.id, Offset(mid), 1, 1).await?;
            (lo, hi) = narrow(
                (lo, hi),
                mid,
                first.first().map(|e| (e.offset.0, e.time_ms)),
                time_ms,
            );
        }
        Ok(lo)
    }
}

/// One step of [`Broker::offset_at_time`]'s search: `first` is the first
/// retained event (offset, time) after `mid`, if any.
fn narrow((lo, hi): (u64, u64), mid: u64, first: Option<(u64, u64)>, time_ms: u64) -> (u64, u64) {
    match first {
        // Everything up to that event is older: the answer is at or past it.
        Some((offset, at)) if at < time_ms => (offset.max(mid + 1).min(hi), hi),
        _ => (lo, mid),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{open, publish, topic};

    const TOPIC: &str = "/event/A__e";

    async fn broker_with(n: usize) -> (std::sync::Arc<Broker>, std::sync::Arc<Topic>) {
        let log: crate::log::SharedLog =
            std::sync::Arc::new(crate::log::memory::MemoryTopicLog::new());
        let broker = open(log, crate::BrokerConfig::default()).await;
        topic(&broker, TOPIC).await;
        publish(&broker, TOPIC, n).await;
        let t = broker.topic(TOPIC).expect("topic");
        (broker, t)
    }

    #[tokio::test]
    async fn pages_follow_the_log_and_stop_at_its_end() {
        let (broker, topic) = broker_with(25).await;
        let first = broker.read_page(&topic, 0, 10).await.expect("page");
        assert_eq!(first.len(), 10);
        assert_eq!(first[0].offset.0, 1);
        let next = broker
            .read_page(&topic, first[9].offset.0, 100)
            .await
            .expect("page");
        assert_eq!(next.len(), 15);
        assert_eq!(next.last().map(|e| e.offset.0), Some(25));
        assert!(
            broker
                .read_page(&topic, 25, 10)
                .await
                .expect("page")
                .is_empty()
        );
        assert!(
            broker
                .read_page(&topic, 99, 10)
                .await
                .expect("page")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_moment_is_found_by_commit_time() {
        let (broker, topic) = broker_with(40).await;
        let all = broker.read_page(&topic, 0, 100).await.expect("page");
        for e in &all {
            let after = broker
                .offset_at_time(&topic, e.time_ms)
                .await
                .expect("search");
            let first = all.iter().find(|x| x.time_ms >= e.time_ms).expect("itself");
            assert_eq!(after + 1, first.offset.0);
        }
        assert_eq!(broker.offset_at_time(&topic, 0).await.expect("search"), 0);
        let end = broker
            .offset_at_time(&topic, u64::MAX)
            .await
            .expect("search");
        assert_eq!(end, 40);
    }

    proptest! {
        /// Against a model log: retained offsets with gaps (trimmed below
        /// `trimmed`), times non-decreasing; the search answers the offset
        /// before the first event at or after the moment.
        #[test]
        fn the_search_finds_the_first_event_at_or_after_a_moment(
            steps in proptest::collection::vec((1u64..4, 0u64..3), 0..60),
            trimmed_skip in 0usize..10,
            moment in 0u64..200,
        ) {
            let mut events = Vec::new();
            let (mut offset, mut time) = (0u64, 0u64);
            for (gap, dt) in steps {
                offset += gap;
                time += dt;
                events.push((offset, time));
            }
            let trimmed_at = trimmed_skip.min(events.len());
            let trimmed = if trimmed_at == 0 { 0 } else { events[trimmed_at - 1].0 };
            let retained = &events[trimmed_at..];
            let latest = events.last().map_or(0, |e| e.0);
            let (mut lo, mut hi) = (trimmed, latest);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let first = retained.iter().copied().find(|e| e.0 > mid);
                (lo, hi) = narrow((lo, hi), mid, first, moment);
            }
            let want = retained.iter().find(|e| e.1 >= moment);
            match want {
                // The first event after `lo` is the one wanted.
                Some(w) => prop_assert_eq!(retained.iter().find(|e| e.0 > lo), Some(w)),
                None => prop_assert!(retained.iter().all(|e| e.0 <= lo)),
            }
        }
    }
}
