//! `GET limits`: the org's allocations with what was used of them, counted
//! from real use: platform events the org published in the last hour and
//! was delivered in the last 24 hours (the broker counts both), and REST
//! calls it made in the last 24 hours (counted here).
//!
//! Owns: the limit names and maximums Salesforce reports for platform
//! events and API requests, and the per-org count of REST calls.
//! Must not: refuse calls over a limit (eventbus reports, it does not
//! enforce these; its own protection limits are `--publish-rate` and
//! friends).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::broker::usage::{UsageReport, Window, now_ms};
use crate::types::TenantId;

/// Maximums as a Developer Edition org reports them (the event ones from
/// Salesforce's published allocations).
const DAILY_API_REQUESTS: u64 = 15_000;
const HOURLY_PUBLISHED_EVENTS: u64 = 100_000;
const HOURLY_PUBLISHED_STANDARD_EVENTS: u64 = 1_000;
const DAILY_DELIVERED_EVENTS: u64 = 50_000;
const DAILY_STANDARD_EVENTS: u64 = 10_000;

const HOUR_MS: u64 = 3_600_000;

/// REST calls per org over the last 24 hours.
#[derive(Debug, Default)]
pub(super) struct ApiCalls {
    // Short critical sections, never held across `.await`; one fixed-size
    // window per org that called.
    orgs: Mutex<HashMap<TenantId, Window>>,
}

impl ApiCalls {
    fn window(&self, org: &TenantId, f: impl FnOnce(&mut Window, u64) -> u64) -> u64 {
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        let w = orgs
            .entry(org.clone())
            .or_insert_with(|| Window::new(HOUR_MS, 24));
        f(w, now_ms())
    }

    /// Counts one call of `org`.
    pub(super) fn count(&self, org: &TenantId) {
        self.window(org, |w, now| {
            w.add(now, 1);
            0
        });
    }

    /// `org`'s calls in the last 24 hours.
    pub(super) fn last_day(&self, org: &TenantId) -> u64 {
        self.window(org, Window::total)
    }
}

fn limit(max: u64, used: u64) -> Value {
    json!({ "Max": max, "Remaining": max.saturating_sub(used) })
}

/// The `limits` body for an org's use.
pub(super) fn report(api_calls: u64, events: UsageReport) -> Value {
    let mut out = Map::new();
    for (name, max, used) in [
        ("DailyApiRequests", DAILY_API_REQUESTS, api_calls),
        (
            "DailyDeliveredPlatformEvents",
            DAILY_DELIVERED_EVENTS,
            events.delivered_last_day,
        ),
        // eventbus's events are all high volume: the standard-volume
        // allocations are never used.
        (
            "DailyStandardVolumePlatformEvents",
            DAILY_STANDARD_EVENTS,
            0,
        ),
        (
            "HourlyPublishedPlatformEvents",
            HOURLY_PUBLISHED_EVENTS,
            events.published_last_hour,
        ),
        (
            "HourlyPublishedStandardVolumePlatformEvents",
            HOURLY_PUBLISHED_STANDARD_EVENTS,
            0,
        ),
    ] {
        out.insert(name.into(), limit(max, used));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_is_the_maximum_less_what_was_used() {
        let body = report(
            3,
            UsageReport {
                published_last_hour: 7,
                published_last_day: 9,
                delivered_last_day: 60_000,
            },
        );
        assert_eq!(
            body["DailyApiRequests"],
            json!({"Max": 15_000, "Remaining": 14_997})
        );
        assert_eq!(body["HourlyPublishedPlatformEvents"]["Remaining"], 99_993);
        assert_eq!(body["DailyDeliveredPlatformEvents"]["Remaining"], 0);
        assert_eq!(
            body["DailyStandardVolumePlatformEvents"]["Remaining"],
            10_000
        );
    }

    #[test]
    fn api_calls_are_counted_per_org() {
        let calls = ApiCalls::default();
        let a = TenantId::parse("00D000000000001AAA").expect("org id");
        let b = TenantId::parse("00D000000000002AAA").expect("org id");
        calls.count(&a);
        calls.count(&a);
        calls.count(&b);
        assert_eq!((calls.last_day(&a), calls.last_day(&b)), (2, 1));
    }
}
