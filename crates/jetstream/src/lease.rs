//! Leases in the leases bucket.
//!
//! Owns: the stored lease (holder and expiry), taking, renewing and giving
//! up a lease with compare-and-set on the bucket, and the [`LeaseStore`]
//! methods. Must not: decide what a lease guards.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use eventbus_core::log::{LeaseHolder, LeaseKey, LeaseStore, LogError, now_ms};

use crate::JetStreamTopicLog;
use crate::error::storage;
use crate::keys::key_of;

/// A lease as stored in the leases bucket.
#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    expires_ms: u64,
}

impl JetStreamTopicLog {
    /// Takes the lease `key` for `holder` for `ttl` when it is free, expired
    /// or already `holder`'s. Returns whether `holder` now has it.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    pub(crate) async fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let value = lease_value(holder, ttl)?;
        // Loops only when another process changed the lease between our
        // read and our write; the next read decides again.
        loop {
            match current_lease(store, &k).await? {
                None => match store.create(&k, value.clone()).await {
                    Ok(_) => return Ok(true),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(LogError::storage_in(format!("lease {key}"), e)),
                },
                Some((lease, revision)) => {
                    if lease.holder != holder && lease.expires_ms > now_ms() {
                        return Ok(false);
                    }
                    match store.update(&k, value.clone(), revision).await {
                        Ok(_) => return Ok(true),
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(LogError::storage_in(format!("lease {key}"), e)),
                    }
                }
            }
        }
    }

    /// Extends `holder`'s lease `key` to `ttl` from now. Returns false when
    /// the lease is gone or someone else holds it (then stop working on
    /// what it guards).
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    pub(crate) async fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let Some((lease, revision)) = current_lease(store, &k).await? else {
            return Ok(false);
        };
        if lease.holder != holder {
            return Ok(false);
        }
        match store.update(&k, lease_value(holder, ttl)?, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(LogError::storage_in(format!("lease {key}"), e)),
        }
    }

    /// Gives up `holder`'s lease `key`; nothing happens when someone else
    /// holds it.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails.
    pub(crate) async fn lease_release(&self, key: &str, holder: &str) -> Result<(), LogError> {
        let store = &self.inner.leases_kv;
        let k = key_of(key);
        let Some((lease, revision)) = current_lease(store, &k).await? else {
            return Ok(());
        };
        if lease.holder != holder {
            return Ok(());
        }
        // A failed revision check means someone took an expired lease over:
        // it is no longer ours to delete.
        match store.delete_expect_revision(&k, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(LogError::storage_in(format!("lease {key}"), e)),
        }
    }
}

fn lease_value(holder: &str, ttl: Duration) -> Result<Bytes, LogError> {
    let lease = Lease {
        holder: holder.to_owned(),
        expires_ms: now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    serde_json::to_vec(&lease).map(Bytes::from).map_err(storage)
}

/// The live lease under `k` and its revision; `None` when absent or deleted.
async fn current_lease(store: &kv::Store, k: &str) -> Result<Option<(Lease, u64)>, LogError> {
    let entry = store
        .entry(k)
        .await
        .map_err(|e| LogError::storage_in("lease", e))?;
    match entry {
        Some(e) if e.operation == Operation::Put => {
            let lease: Lease = serde_json::from_slice(&e.value)
                .map_err(|err| LogError::corrupt_in("lease record", err))?;
            Ok(Some((lease, e.revision)))
        }
        _ => Ok(None),
    }
}

#[async_trait::async_trait]
impl LeaseStore for JetStreamTopicLog {
    async fn acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.lease_acquire(key.as_str(), holder.as_str(), ttl).await
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.lease_renew(key.as_str(), holder.as_str(), ttl).await
    }

    async fn release_lease(&self, key: &LeaseKey, holder: &LeaseHolder) -> Result<(), LogError> {
        self.lease_release(key.as_str(), holder.as_str()).await
    }
}
