//! Credit arithmetic for pull flow control.
//!
//! Owns: the outstanding-credit counter of one subscription.
//! Must not: do IO.

/// Outstanding credit: events the client said it can take and has not yet
/// received. Grants add (saturating) and are clamped at the cap, as the
/// Pub/Sub API does (asking for more than the cap is not an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits {
    available: u32,
    cap: u32,
}

impl Credits {
    /// No credit yet, with the given cap (at least 1).
    pub fn new(cap: u32) -> Self {
        Self {
            available: 0,
            cap: cap.max(1),
        }
    }

    /// Adds `n`, clamped to the cap.
    pub fn grant(&mut self, n: u32) {
        self.available = self.available.saturating_add(n).min(self.cap);
    }

    /// Credit not yet used.
    pub fn available(self) -> u32 {
        self.available
    }

    /// Uses `n` events' worth of credit. Callers never take more than is
    /// available; extra is ignored rather than wrapping.
    pub fn take(&mut self, n: u32) {
        self.available = self.available.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grants_are_clamped_not_rejected() {
        let mut c = Credits::new(100);
        c.grant(60);
        c.grant(60);
        assert_eq!(c.available(), 100);
        c.take(30);
        assert_eq!(c.available(), 70);
        c.grant(u32::MAX);
        assert_eq!(c.available(), 100);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Grant(u32),
        Take(u32),
    }

    proptest! {
        /// Matches a simple model: min(cap, sum) with saturating takes.
        #[test]
        fn credits_follow_the_model(cap in 1u32..500, ops in proptest::collection::vec(
            prop_oneof![(0u32..300).prop_map(Op::Grant), (0u32..300).prop_map(Op::Take)], 0..50)) {
            let mut c = Credits::new(cap);
            let mut model: i64 = 0;
            for op in ops {
                match op {
                    Op::Grant(n) => { c.grant(n); model = (model + i64::from(n)).min(i64::from(cap)); }
                    Op::Take(n) => { c.take(n); model = (model - i64::from(n)).max(0); }
                }
                prop_assert_eq!(i64::from(c.available()), model);
                prop_assert!(c.available() <= cap);
            }
        }
    }
}
