//! Leases with an expiry: the names of a lease and its holder, and the
//! leases held in process memory that the single-process backends give
//! [`super::LeaseStore`]. A backend shared by several processes keeps its
//! leases in shared storage instead.
//!
//! Owns: [`LeaseKey`], [`LeaseHolder`] and who holds which key until when
//! in memory ([`LeaseTable`]). Must not: do IO.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a lease guards, for example one managed subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey(String);

/// Who holds a lease: a name each holder keeps to itself (the holder that
/// asks again gets its own lease back; any other name is kept out).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseHolder(String);

impl LeaseKey {
    /// The key `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl LeaseHolder {
    /// The holder `holder`.
    pub fn new(holder: impl Into<String>) -> Self {
        Self(holder.into())
    }

    /// The holder as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    pub fn acquire(&self, key: &LeaseKey, holder: &LeaseHolder, ttl: Duration) -> bool {
        let (key, holder) = (key.as_str(), holder.as_str());
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
    pub fn renew(&self, key: &LeaseKey, holder: &LeaseHolder, ttl: Duration) -> bool {
        let (key, holder) = (key.as_str(), holder.as_str());
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
    pub fn release(&self, key: &LeaseKey, holder: &LeaseHolder) {
        let (key, holder) = (key.as_str(), holder.as_str());
        self.with(|held| {
            if held.get(key).is_some_and(|(h, _)| h == holder) {
                held.remove(key);
            }
        });
    }
}
