//! The leases' part of the contract ([`LeaseStore`]).
//!
//! Owns: one async fn per behaviour. Must not: depend on a particular
//! backend.

use std::time::Duration;

use crate::log::{LeaseHolder, LeaseKey, LeaseStore};

/// A lease keeps other holders out until it is released or expires.
pub async fn leases_exclude_other_holders(log: &dyn LeaseStore) {
    let long = Duration::from_secs(60);
    let (k, a, b) = (
        LeaseKey::new("k"),
        LeaseHolder::new("a"),
        LeaseHolder::new("b"),
    );
    assert!(log.acquire_lease(&k, &a, long).await.expect("acquire"));
    assert!(
        log.acquire_lease(&k, &a, long)
            .await
            .expect("again by the holder")
    );
    assert!(!log.acquire_lease(&k, &b, long).await.expect("refused"));
    assert!(log.renew_lease(&k, &a, long).await.expect("renew"));
    assert!(!log.renew_lease(&k, &b, long).await.expect("not b's"));
    log.release_lease(&k, &b).await.expect("not b's to release");
    assert!(!log.acquire_lease(&k, &b, long).await.expect("still a's"));
    log.release_lease(&k, &a).await.expect("release");
    assert!(
        log.acquire_lease(&k, &b, Duration::from_millis(1))
            .await
            .expect("free")
    );
    // An expired lease goes to whoever asks, and its old holder has lost it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(log.acquire_lease(&k, &a, long).await.expect("taken over"));
    assert!(!log.renew_lease(&k, &b, long).await.expect("lost"));
}
