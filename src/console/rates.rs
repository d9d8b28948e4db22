//! The console's publish-rate history: a small ring of samples of each
//! topic's newest offset, taken every [`SAMPLE_EVERY`] by one task, and the
//! SVG sparkline drawn from it.
//!
//! Owns: the rings (bounded: [`SAMPLES`] per topic, topics that are gone
//! forgotten at the next sample) and the sparkline geometry. Offsets are
//! dense, so the difference of two samples is the events published between
//! them. Must not: read events or know who is looking.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// How often the sampler reads every topic's newest offset.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples kept per topic: five minutes at [`SAMPLE_EVERY`], so the
/// sparkline has 60 points.
pub const SAMPLES: usize = 61;

/// Width and height of a sparkline's view box.
const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 24.0;

/// Each topic's recent samples (stored name → (when, newest offset)),
/// oldest first.
#[derive(Debug, Default)]
pub struct Rates {
    rings: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
}

impl Rates {
    /// Records one sample of every topic `broker` has, at `now`; forgets
    /// topics that are gone.
    pub fn sample(&self, broker: &Broker, now: Instant) {
        let topics = broker.topics();
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        rings.retain(|name, _| topics.iter().any(|t| t.name.as_str() == name));
        for t in topics {
            let Ok(bounds) = broker.bounds(t.id) else {
                continue;
            };
            let ring = rings.entry(t.name.as_str().to_owned()).or_default();
            if ring.len() == SAMPLES {
                ring.pop_front();
            }
            ring.push_back((now, bounds.latest.0));
        }
    }

    /// The events per second between consecutive samples of the stored
    /// topic `name`, oldest first (at most `SAMPLES - 1`).
    pub fn points(&self, name: &str) -> Vec<f64> {
        let rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ring) = rings.get(name) else {
            return Vec::new();
        };
        ring.iter()
            .zip(ring.iter().skip(1))
            .map(|((t0, o0), (t1, o1))| {
                let secs = t1.duration_since(*t0).as_secs_f64();
                if secs > 0.0 {
                    o1.saturating_sub(*o0) as f64 / secs
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Topics with samples (tests).
    pub fn len(&self) -> usize {
        self.rings.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no topic has samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Samples every [`SAMPLE_EVERY`] until `stop` is cancelled or the console
/// holding `rates` is gone. Holds neither strongly between ticks.
pub async fn run_sampler(rates: Weak<Rates>, broker: Weak<Broker>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            now = tick.tick() => {
                let (Some(rates), Some(broker)) = (rates.upgrade(), broker.upgrade()) else {
                    return;
                };
                rates.sample(&broker, now);
            }
        }
    }
}

/// The `d` of a sparkline's path for `points` (oldest first), scaled so
/// the largest fills the height; a flat line along the bottom when there
/// is nothing to draw. Non-finite or negative points count as 0.
pub fn spark_path(points: &[f64]) -> String {
    let clean: Vec<f64> = points
        .iter()
        .map(|p| if p.is_finite() && *p > 0.0 { *p } else { 0.0 })
        .collect();
    if clean.len() < 2 {
        return format!("M0,{SPARK_H} L{SPARK_W},{SPARK_H}");
    }
    let max = clean.iter().copied().fold(0.0_f64, f64::max);
    let step = SPARK_W / (clean.len() - 1) as f64;
    let mut d = String::with_capacity(clean.len() * 12);
    for (i, p) in clean.iter().enumerate() {
        let x = step * i as f64;
        let y = if max > 0.0 {
            SPARK_H - p / max * (SPARK_H - 1.0)
        } else {
            SPARK_H
        };
        let cmd = if i == 0 { 'M' } else { 'L' };
        d.push_str(&format!("{cmd}{x:.1},{y:.1} "));
    }
    d.truncate(d.trim_end().len());
    d
}

/// A whole sparkline: an inline SVG with one path (numbers only, nothing a
/// client sent, so it is safe to embed unescaped).
pub fn sparkline(points: &[f64]) -> String {
    format!(
        r#"<svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" height="{SPARK_H}" role="img" aria-label="publish rate, last minutes"><path d="{}"/></svg>"#,
        spark_path(points)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coords(d: &str) -> Vec<(f64, f64)> {
        d.split_whitespace()
            .map(|c| {
                let (x, y) = c[1..].split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    #[test]
    fn nothing_to_draw_is_a_flat_line_at_the_bottom() {
        assert_eq!(spark_path(&[]), "M0,24 L120,24");
        assert_eq!(spark_path(&[5.0]), "M0,24 L120,24");
        for (_, y) in coords(&spark_path(&[0.0, 0.0, 0.0])) {
            assert_eq!(y, 24.0);
        }
    }

    #[test]
    fn the_largest_point_reaches_the_top_and_x_spans_the_width() {
        let c = coords(&spark_path(&[0.0, 10.0, 5.0]));
        assert_eq!(c, vec![(0.0, 24.0), (60.0, 1.0), (120.0, 12.5)]);
    }

    #[test]
    fn bad_points_count_as_zero() {
        let c = coords(&spark_path(&[f64::NAN, -3.0, f64::INFINITY, 2.0]));
        assert_eq!(c.len(), 4);
        assert!(c[..3].iter().all(|(_, y)| *y == 24.0), "{c:?}");
        assert_eq!(c[3].1, 1.0);
    }

    #[test]
    fn the_svg_holds_the_path_and_nothing_else() {
        let svg = sparkline(&[1.0, 2.0]);
        assert!(svg.starts_with("<svg class=\"spark\""), "{svg}");
        assert!(svg.contains(r#"<path d="M0.0,12.5 L120.0,1.0"/>"#), "{svg}");
        assert!(svg.ends_with("</svg>"));
    }

    #[tokio::test]
    async fn rates_are_differences_of_samples_and_the_ring_is_bounded() {
        use crate::log::SharedLog;
        use crate::log::memory::MemoryTopicLog;
        use crate::schema::ParsedSchema;
        use crate::types::TopicName;
        use std::sync::Arc;
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        let broker = Broker::open(
            log,
            crate::broker::BrokerConfig::default(),
            Arc::new(crate::telemetry::metrics::Metrics::new()),
        )
        .await
        .expect("broker");
        let schema = ParsedSchema::parse(
            r#"{"type":"record","name":"E","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"}]}"#,
        )
        .expect("schema");
        let name = TopicName::parse("/event/Spark__e").expect("name");
        broker.provision(&name, schema).await.expect("provision");
        let rates = Rates::default();
        let t0 = Instant::now();
        for i in 0..(SAMPLES as u32 + 10) {
            rates.sample(&broker, t0 + SAMPLE_EVERY * i);
        }
        assert_eq!(rates.len(), 1);
        let p = rates.points("/event/Spark__e");
        assert_eq!(p.len(), SAMPLES - 1);
        assert!(p.iter().all(|r| *r == 0.0), "{p:?}");
        assert!(rates.points("/event/Nope__e").is_empty());
    }
}
