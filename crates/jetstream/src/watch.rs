//! The catalog watch: every process's catalog changes as one feed.
//!
//! Owns: watching the topics, schemas and managed buckets, re-watching from
//! the last revision after an error, and turning entries into
//! [`CatalogChange`]s. Must not: write a bucket.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use eventbus_core::log::{CatalogChange, LogError};

use crate::catalog::schema_record;
use crate::keys::unkey;
use crate::state::{Inner, MAX_BACKOFF};

/// Starts the watches of the topics, schemas and managed buckets, feeding
/// `inner.catalog_tx` until shutdown.
pub(crate) async fn start(inner: &Inner) -> Result<(), LogError> {
    for kind in [WatchKind::Topics, WatchKind::Schemas, WatchKind::Managed] {
        let store = inner.bucket_of(kind).clone();
        let first = store
            .watch_all()
            .await
            .map_err(|e| LogError::storage_in(format!("watch {}", store.name), e))?;
        let (tx, stop) = (inner.catalog_tx.clone(), inner.shutdown.clone());
        inner
            .tasks
            .spawn(watch_bucket(store, kind, first, tx, stop));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum WatchKind {
    Topics,
    Schemas,
    Managed,
}

/// Feeds one bucket's changes into the catalog channel until shutdown,
/// re-watching from the last revision seen after an error.
pub(crate) async fn watch_bucket(
    store: kv::Store,
    kind: WatchKind,
    first: kv::Watch,
    tx: broadcast::Sender<CatalogChange>,
    stop: CancellationToken,
) {
    let mut watch = Some(first);
    let mut last_revision = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut w = match watch.take() {
            Some(w) => w,
            None => {
                let again = if last_revision == 0 {
                    store.watch_all().await
                } else {
                    store.watch_all_from_revision(last_revision + 1).await
                };
                match again {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(bucket = %store.name, error = %e, "catalog watch failed");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = w.next() => next,
            };
            match next {
                Some(Ok(entry)) => {
                    backoff = Duration::from_millis(100);
                    last_revision = entry.revision;
                    match change_of(kind, &entry) {
                        // No receivers is fine: nobody asked yet.
                        Ok(Some(change)) => drop(tx.send(change)),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(bucket = %store.name, key = %entry.key, error = %e, "skipping a bad catalog entry")
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(bucket = %store.name, error = %e, "catalog watch broke; re-watching");
                    break;
                }
                None => break,
            }
        }
    }
}

pub(crate) fn change_of(
    kind: WatchKind,
    entry: &kv::Entry,
) -> Result<Option<CatalogChange>, LogError> {
    let put = entry.operation == Operation::Put;
    Ok(match (kind, put) {
        (WatchKind::Topics, true) => Some(CatalogChange::Topic(
            serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::corrupt_in("topic record", e))?,
        )),
        (WatchKind::Topics, false) => Some(CatalogChange::TopicDeleted(unkey(&entry.key)?)),
        (WatchKind::Schemas, true) => Some(CatalogChange::Schema(schema_record(
            &entry.key,
            &entry.value,
        )?)),
        (WatchKind::Schemas, false) => None,
        (WatchKind::Managed, true) => Some(CatalogChange::Managed(
            serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::corrupt_in("managed subscription record", e))?,
        )),
        (WatchKind::Managed, false) => Some(CatalogChange::ManagedDeleted(unkey(&entry.key)?)),
    })
}

impl Inner {
    pub(crate) fn bucket_of(&self, kind: WatchKind) -> &kv::Store {
        match kind {
            WatchKind::Topics => &self.topics_kv,
            WatchKind::Schemas => &self.schemas_kv,
            WatchKind::Managed => &self.managed_kv,
        }
    }
}
