//! Topic activity: publish rates from periodic samples of each topic's
//! newest offset, and the time of its newest event.
//!
//! Owns: the sample windows ([`RateWindow`]), the sampling task
//! ([`Broker::run_activity`]) and the figures `ListTopics` shows. Offsets are
//! dense, so the newest offset counts every event ever published to the
//! topic, by any process sharing the log: the rate needs no counter on the
//! publish path. Must not: know the wire.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Broker, Topic};
use crate::log::LogBounds;
use crate::types::{Offset, TopicId};

/// How often every topic's newest offset is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The span a publish rate is averaged over ("the last minute").
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Samples kept per topic: enough to reach back [`RATE_WINDOW`].
const SAMPLES: usize = (RATE_WINDOW.as_secs() / SAMPLE_INTERVAL.as_secs()) as usize + 1;

/// One topic's recent samples of its newest offset, oldest first.
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// Records that the topic's newest offset was `latest` at `at`.
    pub fn record(&mut self, at: Instant, latest: u64) {
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, latest));
    }

    /// Events per second published between the oldest sample within
    /// [`RATE_WINDOW`] and `now`, when the newest offset is `latest` (since
    /// the newest sample when even that is older: the sampler stalled). 0
    /// without a sample, when no time passed, or when the offset went
    /// backwards (the topic was deleted and made again).
    pub fn rate(&self, now: Instant, latest: u64) -> f64 {
        let Some(&(at, then)) = self
            .samples
            .iter()
            .find(|(at, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
            .or(self.samples.back())
        else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        if elapsed <= 0.0 {
            return 0.0;
        }
        latest.saturating_sub(then) as f64 / elapsed
    }
}

/// What `ListTopics` shows about a topic's activity.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TopicActivity {
    /// Events per second over about the last minute.
    pub publish_rate: f64,
    /// Subscribe and ManagedSubscribe streams reading it in this process.
    pub open_streams: u32,
    /// When its newest retained event was written, epoch ms; `None` when it
    /// retains none.
    pub last_event_ms: Option<u64>,
}

impl Broker {
    /// Samples every topic's newest offset once, at `now`; forgets topics
    /// that are gone. Linear in the topics: it runs every
    /// [`SAMPLE_INTERVAL`] on a runtime thread, holding the rates' lock.
    pub fn sample_activity(&self, now: Instant) {
        let topics = self.topics();
        let live: HashSet<TopicId> = topics.iter().map(|t| t.id).collect();
        let mut windows = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        windows.retain(|id, _| live.contains(id));
        for t in &topics {
            if let Ok(b) = self.log().bounds(t.id) {
                windows.entry(t.id).or_default().record(now, b.latest.0);
            }
        }
    }

    /// Runs [`Broker::sample_activity`] every [`SAMPLE_INTERVAL`] until
    /// `stop` is cancelled (the first sample is taken at once).
    pub async fn run_activity(self: std::sync::Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                at = tick.tick() => self.sample_activity(at),
            }
        }
    }

    /// The publish rate of `topic` whose log holds `bounds` now.
    fn publish_rate(&self, topic: TopicId, bounds: LogBounds) -> f64 {
        self.rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&topic)
            .map_or(0.0, |w| w.rate(Instant::now(), bounds.latest.0))
    }

    /// Rate, open streams and newest event time of `topic`, whose log holds
    /// `bounds`; `open_streams` as [`Broker::open_streams_by_topic`] counts.
    ///
    /// # Errors
    /// The log's, reading the newest event.
    pub(crate) async fn activity(
        &self,
        topic: &Topic,
        bounds: LogBounds,
        open_streams: &HashMap<TopicId, u32>,
    ) -> Result<TopicActivity, crate::BrokerError> {
        let last_event_ms = if bounds.latest > bounds.trimmed {
            // The newest event alone: one read of one event per topic.
            self.log()
                .read(topic.id, Offset(bounds.latest.0 - 1), 1, 1)
                .await?
                .last()
                .map(|e| e.time_ms)
        } else {
            None
        };
        Ok(TopicActivity {
            publish_rate: self.publish_rate(topic.id, bounds),
            open_streams: open_streams.get(&topic.id).copied().unwrap_or(0),
            last_event_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn no_sample_no_time_or_a_reset_offset_is_no_rate() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rate(t0, 100), 0.0);
        w.record(t0, 100);
        assert_eq!(w.rate(t0, 150), 0.0, "no time passed");
        assert_eq!(w.rate(t0 + secs(5), 10), 0.0, "deleted and made again");
    }

    #[test]
    fn a_young_window_averages_over_the_time_it_has() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        w.record(t0, 0);
        w.record(t0 + secs(5), 50);
        assert_eq!(w.rate(t0 + secs(10), 200), 20.0);
    }

    #[test]
    fn the_rate_reaches_back_about_a_minute() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        // 10 events/s for two minutes, then silence.
        for i in 0..=24 {
            w.record(t0 + SAMPLE_INTERVAL * i, u64::from(i) * 50);
        }
        let now = t0 + secs(120);
        assert!((w.rate(now, 1200) - 10.0).abs() < 1e-9);
        // Samples older than the window are forgotten: a minute of silence
        // after the burst counts only the silence.
        for i in 25..=36 {
            w.record(t0 + SAMPLE_INTERVAL * i, 1200);
        }
        assert_eq!(w.rate(t0 + secs(180), 1200), 0.0);
        // Half a minute of 4 events/s within the last minute: 2 on average.
        let now = t0 + secs(210);
        for i in 37..=42 {
            w.record(t0 + SAMPLE_INTERVAL * i, 1200 + u64::from(i - 36) * 20);
        }
        assert!(
            (w.rate(now, 1320) - 2.0).abs() < 1e-9,
            "{}",
            w.rate(now, 1320)
        );
    }

    #[tokio::test]
    async fn sampling_keeps_a_window_per_live_topic_and_forgets_deleted_ones() {
        use crate::testing::{open, publish, topic};
        let log: crate::log::SharedLog =
            std::sync::Arc::new(crate::log::memory::MemoryTopicLog::new());
        let broker = open(log, crate::BrokerConfig::default()).await;
        for i in 0..300 {
            topic(&broker, &format!("/event/A{i}__e")).await;
        }
        publish(&broker, "/event/A7__e", 3).await;
        let t0 = Instant::now();
        broker.sample_activity(t0);
        assert_eq!(broker.rates.lock().expect("rates").len(), 300);
        broker.delete_topic("/event/A7__e").await.expect("delete");
        broker.delete_topic("/event/A299__e").await.expect("delete");
        broker.sample_activity(t0 + secs(5));
        let rates = broker.rates.lock().expect("rates");
        assert_eq!(rates.len(), 298);
        let live: HashSet<TopicId> = broker.topics().iter().map(|t| t.id).collect();
        assert!(rates.keys().all(|id| live.contains(id)));
    }

    #[test]
    fn a_stalled_sampler_still_gives_the_rate_since_its_last_sample() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        w.record(t0, 0);
        assert_eq!(w.rate(t0 + secs(600), 600), 1.0);
    }
}
