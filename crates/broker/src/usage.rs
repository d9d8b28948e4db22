//! How many events each tenant published and was delivered lately: the
//! counts behind the REST API's `limits` (`HourlyPublishedPlatformEvents`,
//! `DailyDeliveredPlatformEvents`).
//!
//! Owns: sliding windows of counts per tenant, in wall-clock buckets.
//! Must not: refuse anything (the counts are reported, not enforced), or
//! keep more than a bounded number of buckets per tenant.
//!
//! The counts live in this process only: they start at zero on restart,
//! and with several servers on one JetStream log each reports its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::TenantId;

/// Counts of the last `buckets` buckets of `width_ms` each; the newest
/// bucket is the one now falls in, so the window covers between
/// `(buckets - 1) * width_ms` and `buckets * width_ms` of history.
#[derive(Debug, Clone)]
pub struct Window {
    width_ms: u64,
    buckets: usize,
    /// (bucket number, count), oldest first.
    counts: VecDeque<(u64, u64)>,
}

impl Window {
    /// An empty window of `buckets` buckets of `width_ms` milliseconds.
    pub fn new(width_ms: u64, buckets: usize) -> Self {
        Self {
            width_ms: width_ms.max(1),
            buckets: buckets.max(1),
            counts: VecDeque::new(),
        }
    }

    fn expire(&mut self, bucket: u64) {
        let oldest = bucket.saturating_sub(self.buckets as u64 - 1);
        while self.counts.front().is_some_and(|(b, _)| *b < oldest) {
            self.counts.pop_front();
        }
    }

    /// Adds `n` at `now_ms`.
    pub fn add(&mut self, now_ms: u64, n: u64) {
        let bucket = now_ms / self.width_ms;
        self.expire(bucket);
        match self.counts.back_mut() {
            Some((b, count)) if *b >= bucket => *count += n,
            _ => self.counts.push_back((bucket, n)),
        }
    }

    /// The count within the window ending at `now_ms`.
    pub fn total(&mut self, now_ms: u64) -> u64 {
        self.expire(now_ms / self.width_ms);
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

#[derive(Debug)]
struct Meters {
    published_hour: Window,
    published_day: Window,
    delivered_day: Window,
}

impl Default for Meters {
    fn default() -> Self {
        Self {
            published_hour: Window::new(MINUTE_MS, 60),
            published_day: Window::new(HOUR_MS, 24),
            delivered_day: Window::new(HOUR_MS, 24),
        }
    }
}

/// A tenant's recent use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageReport {
    /// Events published in the last hour.
    pub published_last_hour: u64,
    /// Events published in the last 24 hours.
    pub published_last_day: u64,
    /// Events delivered to subscribers in the last 24 hours.
    pub delivered_last_day: u64,
}

/// Every tenant's recent use.
#[derive(Debug, Default)]
pub struct Usage {
    // Short critical sections, never held across `.await`. One entry per
    // tenant that published or was delivered events, each of fixed size.
    tenants: Mutex<HashMap<TenantId, Meters>>,
}

/// Milliseconds since the Unix epoch, by the wall clock the windows use.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Usage {
    fn with(&self, tenant: &TenantId, f: impl FnOnce(&mut Meters)) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(tenants.entry(tenant.clone()).or_default());
    }

    /// Counts `n` events published by `tenant`.
    pub fn published(&self, tenant: &TenantId, n: usize) {
        let now = now_ms();
        self.with(tenant, |m| {
            m.published_hour.add(now, n as u64);
            m.published_day.add(now, n as u64);
        });
    }

    /// Counts `n` events delivered to a subscriber of `tenant`.
    pub fn delivered(&self, tenant: &TenantId, n: usize) {
        let now = now_ms();
        self.with(tenant, |m| m.delivered_day.add(now, n as u64));
    }

    /// `tenant`'s use so far.
    pub fn report(&self, tenant: &TenantId) -> UsageReport {
        let now = now_ms();
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants
            .get_mut(tenant)
            .map_or_else(UsageReport::default, |m| UsageReport {
                published_last_hour: m.published_hour.total(now),
                published_last_day: m.published_day.total(now),
                delivered_last_day: m.delivered_day.total(now),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_what_slid_out() {
        let mut w = Window::new(MINUTE_MS, 60);
        w.add(0, 5);
        w.add(30_000, 2);
        w.add(59 * MINUTE_MS, 1);
        assert_eq!(w.total(59 * MINUTE_MS), 8);
        // The first minute's bucket leaves once the 61st minute starts.
        assert_eq!(w.total(60 * MINUTE_MS), 1);
        assert_eq!(w.total(120 * MINUTE_MS), 0);
        w.add(120 * MINUTE_MS, 3);
        assert_eq!(w.total(120 * MINUTE_MS), 3);
        assert!(w.counts.len() <= 60);
    }

    #[test]
    fn tenants_are_counted_apart() {
        let usage = Usage::default();
        let a = TenantId::parse("00D000000000001AAA").expect("org id");
        let b = TenantId::parse("00D000000000002AAA").expect("org id");
        usage.published(&a, 3);
        usage.published(&a, 2);
        usage.delivered(&a, 4);
        usage.published(&b, 1);
        assert_eq!(
            usage.report(&a),
            UsageReport {
                published_last_hour: 5,
                published_last_day: 5,
                delivered_last_day: 4
            }
        );
        assert_eq!(usage.report(&b).published_last_hour, 1);
        let c = TenantId::parse("00D000000000003AAA").expect("org id");
        assert_eq!(usage.report(&c), UsageReport::default());
    }
}
