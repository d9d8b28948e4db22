//! Per-tenant protection limits: open subscriptions and publish rate.
//!
//! Owns: the counters and token buckets, one set per tenant, so a tenant
//! that hits its limit never slows or refuses another. A tenant is its
//! canonical org id ([`TenantId`]): the 15- and 18-character forms of one
//! org share one set. Must not: know about gRPC statuses (the service maps
//! a refusal to `RESOURCE_EXHAUSTED`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::types::TenantId;

/// The limits, each 0 for "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimitsConfig {
    /// Most Subscribe streams open at once per tenant.
    pub max_subscriptions_per_tenant: usize,
    /// Sustained publish rate per tenant, events per second.
    pub publish_events_per_sec: f64,
    /// Sustained publish rate per tenant, payload bytes per second.
    pub publish_bytes_per_sec: f64,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available; may go below zero when one request takes more
    /// than a second's worth, which then delays the next requests instead of
    /// refusing large requests forever.
    level: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: f64) -> Self {
        Self {
            level: rate,
            last: Instant::now(),
        }
    }

    /// Refills at `rate` per second up to one second's worth (the burst).
    fn refill(&mut self, rate: f64, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * rate).min(rate);
        self.last = now;
    }
}

#[derive(Debug)]
struct Tenant {
    subscriptions: AtomicUsize,
    buckets: Mutex<(Bucket, Bucket)>,
}

/// Per-tenant limits shared by every call of a server.
#[derive(Debug, Default)]
pub struct Limits {
    cfg: LimitsConfig,
    tenants: Mutex<HashMap<TenantId, Arc<Tenant>>>,
}

/// Which limit refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// The tenant has its maximum of open subscriptions.
    #[error(
        "this tenant already has {0} open subscriptions, the most allowed (EVENTBUS_MAX_SUBSCRIPTIONS_PER_TENANT); close one or retry later"
    )]
    Subscriptions(usize),
    /// The tenant publishes faster than allowed.
    #[error("this tenant publishes faster than allowed ({0}); retry with backoff")]
    PublishRate(String),
}

/// An open subscription's place in its tenant's count; gives it back when
/// dropped (the stream ended, however it ended).
#[derive(Debug)]
pub struct SubscriptionSlot(Option<Arc<Tenant>>);

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.subscriptions.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Limits {
    /// Limits as configured.
    pub fn new(cfg: LimitsConfig) -> Self {
        Self {
            cfg,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    fn tenant(&self, tenant: &str) -> Arc<Tenant> {
        let mut map = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(TenantId::from_stored(tenant))
            .or_insert_with(|| {
                Arc::new(Tenant {
                    subscriptions: AtomicUsize::new(0),
                    buckets: Mutex::new((
                        Bucket::full(self.cfg.publish_events_per_sec),
                        Bucket::full(self.cfg.publish_bytes_per_sec),
                    )),
                })
            })
            .clone()
    }

    /// Takes a subscription slot for `tenant`.
    ///
    /// # Errors
    /// [`LimitHit::Subscriptions`] when the tenant is at its maximum.
    pub fn open_subscription(&self, tenant: &str) -> Result<SubscriptionSlot, LimitHit> {
        let max = self.cfg.max_subscriptions_per_tenant;
        if max == 0 {
            return Ok(SubscriptionSlot(None));
        }
        let t = self.tenant(tenant);
        let taken = t
            .subscriptions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(SubscriptionSlot(Some(t))),
            Err(_) => Err(LimitHit::Subscriptions(max)),
        }
    }

    /// Charges a publish of `events` events and `bytes` payload bytes to
    /// `tenant`. A request is admitted while both buckets hold tokens, and
    /// the whole request is charged; a refused request costs nothing.
    ///
    /// # Errors
    /// [`LimitHit::PublishRate`] naming the rate that was exceeded.
    pub fn charge_publish(
        &self,
        tenant: &str,
        events: usize,
        bytes: usize,
    ) -> Result<(), LimitHit> {
        self.charge_publish_at(tenant, events, bytes, Instant::now())
    }

    /// [`Limits::charge_publish`] at a given time (tests drive the clock).
    fn charge_publish_at(
        &self,
        tenant: &str,
        events: usize,
        bytes: usize,
        now: Instant,
    ) -> Result<(), LimitHit> {
        let (ev_rate, byte_rate) = (
            self.cfg.publish_events_per_sec,
            self.cfg.publish_bytes_per_sec,
        );
        if ev_rate <= 0.0 && byte_rate <= 0.0 {
            return Ok(());
        }
        let t = self.tenant(tenant);
        let mut buckets = t
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ev, by) = &mut *buckets;
        if ev_rate > 0.0 {
            ev.refill(ev_rate, now);
            if ev.level <= 0.0 {
                return Err(LimitHit::PublishRate(format!("{ev_rate} events/s")));
            }
        }
        if byte_rate > 0.0 {
            by.refill(byte_rate, now);
            if by.level <= 0.0 {
                return Err(LimitHit::PublishRate(format!("{byte_rate} bytes/s")));
            }
        }
        if ev_rate > 0.0 {
            ev.level -= events as f64;
        }
        if byte_rate > 0.0 {
            by.level -= bytes as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_counted_per_tenant_and_given_back() {
        let limits = Limits::new(LimitsConfig {
            max_subscriptions_per_tenant: 2,
            ..Default::default()
        });
        let a1 = limits.open_subscription("A").expect("first");
        let _a2 = limits.open_subscription("A").expect("second");
        assert_eq!(
            limits.open_subscription("A").expect_err("third"),
            LimitHit::Subscriptions(2)
        );
        // Another tenant is not affected.
        let _b = limits.open_subscription("B").expect("other tenant");
        drop(a1);
        limits
            .open_subscription("A")
            .expect("a slot was given back");
    }

    #[test]
    fn both_forms_of_an_org_id_count_as_one_tenant() {
        let limits = Limits::new(LimitsConfig {
            max_subscriptions_per_tenant: 1,
            publish_events_per_sec: 10.0,
            ..Default::default()
        });
        let _slot = limits
            .open_subscription("00D5e000000AbcdEAC")
            .expect("first");
        assert_eq!(
            limits
                .open_subscription("00D5e000000Abcd")
                .expect_err("the same org by its 15-character id"),
            LimitHit::Subscriptions(1)
        );
        let t0 = Instant::now();
        limits
            .charge_publish_at("00D5e000000Abcd", 10, 0, t0)
            .expect("the burst");
        assert!(
            limits
                .charge_publish_at("00D5e000000AbcdEAC", 1, 0, t0)
                .is_err(),
            "one bucket for both forms"
        );
    }

    #[test]
    fn publish_rate_is_a_token_bucket_per_tenant() {
        let limits = Limits::new(LimitsConfig {
            publish_events_per_sec: 100.0,
            ..Default::default()
        });
        // A clock that stands still, then moves: no dependence on how fast
        // the test runs. (Buckets start full when a tenant is first seen; an
        // earlier `now` refills nothing.)
        let t0 = Instant::now();
        limits
            .charge_publish_at("A", 100, 0, t0)
            .expect("one second's burst");
        assert!(matches!(
            limits.charge_publish_at("A", 1, 0, t0),
            Err(LimitHit::PublishRate(_))
        ));
        limits
            .charge_publish_at("B", 100, 0, t0)
            .expect("B has its own bucket");
        // A request larger than the burst is admitted once, and the debt
        // refuses what follows until it is paid off.
        let big = Limits::new(LimitsConfig {
            publish_bytes_per_sec: 1000.0,
            ..Default::default()
        });
        let t0 = Instant::now();
        big.charge_publish_at("A", 1, 5000, t0)
            .expect("admitted into debt");
        let t3 = t0 + std::time::Duration::from_secs(3);
        assert!(
            big.charge_publish_at("A", 1, 1, t3).is_err(),
            "still in debt"
        );
        let t5 = t0 + std::time::Duration::from_millis(5100);
        big.charge_publish_at("A", 1, 1, t5).expect("debt paid");
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = Limits::new(LimitsConfig::default());
        let slots: Vec<_> = (0..1000)
            .map(|_| limits.open_subscription("A").expect("slot"))
            .collect();
        assert_eq!(slots.len(), 1000);
        for _ in 0..1000 {
            limits.charge_publish("A", 1000, 1 << 20).expect("no rate");
        }
    }
}
