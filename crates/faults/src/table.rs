//! The rules in force and how often each fired.
//!
//! Owns: [`FaultTable`]: adding, listing, removing and clearing rules, and
//! [`FaultTable::check`], which finds the rules a call matches and claims
//! one firing of each (within its times, probability and active period).
//! A table without rules costs a call one atomic load. Must not: carry
//! out actions (the protocol layer does) or read the clock itself (callers
//! pass `now`, so tests choose it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::rule::{Action, Call, Rule, RuleError, RuleSpec};

/// The most rules a table holds: every call is checked against each, and
/// the Admin API, the console and the startup file can all add them.
pub const MAX_RULES: usize = 1_000;

/// A rule in the table.
#[derive(Debug)]
struct Entry {
    id: String,
    rule: Rule,
    added: Instant,
    fired: AtomicU64,
}

impl Entry {
    /// Whether the rule can still fire at `now`.
    fn active(&self, now: Instant) -> bool {
        let within = self
            .rule
            .limit
            .active_for
            .is_none_or(|d| now.saturating_duration_since(self.added) < d);
        let left = self
            .rule
            .limit
            .times
            .is_none_or(|t| self.fired.load(Ordering::Relaxed) < t);
        within && left
    }

    /// Claims one firing within the rule's times; false when none is left.
    fn claim(&self) -> bool {
        let max = self.rule.limit.times.unwrap_or(u64::MAX);
        self.fired
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// A rule as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleView {
    /// Its id (`f1`, `f2`, …).
    pub id: String,
    /// As written.
    pub spec: RuleSpec,
    /// How often it fired.
    pub fired: u64,
    /// Whether it can still fire (not spent, not past its period).
    pub active: bool,
    /// Time left in its active period, if it has one.
    pub remaining: Option<Duration>,
}

/// What a call gets: one rule's action.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    /// The rule's id.
    pub rule: String,
    /// What to do.
    pub action: Action,
}

/// The rules in force.
#[derive(Debug)]
pub struct FaultTable {
    rules: RwLock<Vec<Arc<Entry>>>,
    any: AtomicBool,
    next_id: AtomicU64,
    /// splitmix64 state, for probabilities.
    rng: AtomicU64,
}

impl FaultTable {
    /// An empty table; `seed` drives the probabilities (tests pass a fixed
    /// one, the server the clock).
    pub fn new(seed: u64) -> Self {
        Self {
            rules: RwLock::new(Vec::new()),
            any: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            rng: AtomicU64::new(seed),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Entry>>> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Entry>>> {
        self.rules.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `rule` at `now`; its id.
    ///
    /// # Errors
    /// A [`RuleError`] when the table already holds [`MAX_RULES`].
    pub fn add(&self, rule: Rule, now: Instant) -> Result<String, RuleError> {
        let mut rules = self.write();
        if rules.len() >= MAX_RULES {
            return Err(RuleError(format!(
                "there are already {MAX_RULES} fault rules: remove some first"
            )));
        }
        let id = format!("f{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        rules.push(Arc::new(Entry {
            id: id.clone(),
            rule,
            added: now,
            fired: AtomicU64::new(0),
        }));
        self.any.store(true, Ordering::Release);
        Ok(id)
    }

    /// Removes rule `id`; whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        let mut rules = self.write();
        let before = rules.len();
        rules.retain(|e| e.id != id);
        self.any.store(!rules.is_empty(), Ordering::Release);
        rules.len() != before
    }

    /// Removes every rule; how many there were.
    pub fn clear(&self) -> usize {
        let mut rules = self.write();
        let n = rules.len();
        rules.clear();
        self.any.store(false, Ordering::Release);
        n
    }

    /// Every rule, oldest first, as of `now`.
    pub fn list(&self, now: Instant) -> Vec<RuleView> {
        self.read()
            .iter()
            .map(|e| RuleView {
                id: e.id.clone(),
                spec: e.rule.spec.clone(),
                fired: e.fired.load(Ordering::Relaxed),
                active: e.active(now),
                remaining: e
                    .rule
                    .limit
                    .active_for
                    .map(|d| d.saturating_sub(now.saturating_duration_since(e.added))),
            })
            .collect()
    }

    /// Whether there are no rules (the fast path of every call).
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// A uniform draw in [0, 1).
    fn draw(&self) -> f64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The actions `call` gets at `now`: each active rule that matches it
    /// and whose action can happen to its RPC, when its probability draw
    /// says so, with one firing of the rule claimed.
    pub fn check(&self, call: &Call<'_>, now: Instant) -> Vec<Fired> {
        if self.is_empty() {
            return Vec::new();
        }
        let candidates: Vec<Arc<Entry>> = self
            .read()
            .iter()
            .filter(|e| {
                e.active(now) && e.rule.action.applies_to(call.rpc) && e.rule.matcher.matches(call)
            })
            .cloned()
            .collect();
        candidates
            .into_iter()
            .filter(|e| e.rule.limit.probability >= 1.0 || self.draw() < e.rule.limit.probability)
            .filter(|e| e.claim())
            .map(|e| Fired {
                rule: e.id.clone(),
                action: e.rule.action.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rule::Rpc;

    fn rule(spec: RuleSpec) -> Rule {
        Rule::from_spec(spec).expect("valid")
    }

    fn fail() -> RuleSpec {
        RuleSpec {
            action: "fail".into(),
            ..RuleSpec::default()
        }
    }

    fn call(rpc: Rpc) -> Call<'static> {
        Call {
            tenant: "00D5e000000AbcdEAC",
            rpc,
            topic: "/event/Order_Event__e",
            user: "ops",
            peer: None,
        }
    }

    #[test]
    fn once_fires_once_and_stays_listed_as_spent() {
        let t = FaultTable::new(1);
        let now = Instant::now();
        assert!(t.is_empty());
        let id = t
            .add(
                rule(RuleSpec {
                    times: Some(1),
                    ..fail()
                }),
                now,
            )
            .expect("room");
        assert_eq!(t.check(&call(Rpc::Subscribe), now).len(), 1);
        assert!(t.check(&call(Rpc::Subscribe), now).is_empty());
        let listed = t.list(now);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].fired, listed[0].active),
            (id.as_str(), 1, false)
        );
        assert!(t.remove(&id));
        assert!(!t.remove(&id));
        assert!(t.is_empty());
    }

    #[test]
    fn a_period_ends_and_actions_only_reach_rpcs_they_fit() {
        let t = FaultTable::new(1);
        let now = Instant::now();
        t.add(
            rule(RuleSpec {
                action: "stall".into(),
                duration: Some("5s".into()),
                active_for: Some("1m".into()),
                ..RuleSpec::default()
            }),
            now,
        )
        .expect("room");
        assert!(
            t.check(&call(Rpc::Publish), now).is_empty(),
            "no stalls for Publish"
        );
        assert_eq!(t.check(&call(Rpc::ManagedSubscribe), now).len(), 1);
        let later = now + Duration::from_secs(61);
        assert!(t.check(&call(Rpc::Subscribe), later).is_empty());
        assert_eq!(t.list(later)[0].remaining, Some(Duration::ZERO));
        assert_eq!(t.clear(), 1);
    }

    #[test]
    fn a_probability_fires_about_that_often() {
        let t = FaultTable::new(42);
        let now = Instant::now();
        t.add(
            rule(RuleSpec {
                probability: Some(0.25),
                ..fail()
            }),
            now,
        )
        .expect("room");
        let fired: usize = (0..4000)
            .map(|_| t.check(&call(Rpc::GetTopic), now).len())
            .sum();
        assert!((800..1200).contains(&fired), "{fired} of 4000 at p = 0.25");
        assert_eq!(t.list(now)[0].fired, fired as u64);
    }

    #[test]
    fn the_table_holds_at_most_max_rules() {
        let t = FaultTable::new(1);
        let now = Instant::now();
        for _ in 0..MAX_RULES {
            t.add(rule(fail()), now).expect("room");
        }
        let err = t.add(rule(fail()), now).expect_err("full");
        assert!(err.0.contains("remove some first"), "{err}");
        assert!(t.remove("f1"));
        t.add(rule(fail()), now).expect("room again");
    }

    proptest! {
        /// However many callers race, a rule of `times` n fires n times.
        #[test]
        fn times_is_never_exceeded(times in 1u64..20, calls in 0usize..60) {
            let t = FaultTable::new(7);
            let now = Instant::now();
            t.add(rule(RuleSpec { times: Some(times), ..fail() }), now).expect("room");
            let fired: usize = (0..calls).map(|_| t.check(&call(Rpc::Publish), now).len()).sum();
            prop_assert_eq!(fired as u64, times.min(calls as u64));
        }
    }
}
