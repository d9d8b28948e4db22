//! Leases with an expiry, held in process memory: what the single-process
//! backends give [`super::TopicLog::acquire_lease`]. A backend shared by
//! several processes keeps its leases in shared storage instead.
//!
//! Owns: who holds which key until when. Must not: do IO.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys held by holders until a deadline.
#[derive(Debug, Default)]
pub struct LeaseTable {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl LeaseTable {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T) -> T {
        f(&mut self.held.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes `key` for `holder` unless another holder's lease is still
    /// running; true when `holder` holds it now.
    pub fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        self.with(|held| match held.get(key) {
            Some((other, until)) if other != holder && *until > now => false,
            _ => {
                held.insert(key.to_owned(), (holder.to_owned(), now + ttl));
                true
            }
        })
    }

    /// Extends `holder`'s lease; false when it no longer holds the key.
    pub fn renew(&self, key: &str, holder: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        self.with(|held| match held.get_mut(key) {
            Some((h, until)) if h == holder && *until > now => {
                *until = now + ttl;
                true
            }
            _ => false,
        })
    }

    /// Gives the key up if `holder` holds it.
    pub fn release(&self, key: &str, holder: &str) {
        self.with(|held| {
            if held.get(key).is_some_and(|(h, _)| h == holder) {
                held.remove(key);
            }
        });
    }
}
