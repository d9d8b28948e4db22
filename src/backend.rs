//! Opens the configured topic log backend: embedded RocksDB in the data
//! folder, or a NATS JetStream cluster, waiting a while for NATS to come up.
//!
//! Owns: choosing the backend from the settings, opening it, and how long
//! startup keeps trying to reach NATS.
//! Must not: build the engine or serve anything (`server.rs` does), or hold
//! log logic (the backend crates).

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Backend, ServeArgs};
use crate::log::{LogError, SharedLog};
use crate::telemetry::metrics::Metrics;
use eventbus_jetstream::{JetStreamConfig, JetStreamTopicLog};
use eventbus_rocksdb::RocksTopicLog;
use eventbus_rocksdb::{Store, StoreError};

/// How long startup keeps trying to reach NATS JetStream.
const NATS_CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data folder could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log could not start.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Opens the log `args.backend` names.
///
/// # Errors
/// [`OpenError::Store`] for a data folder that cannot be opened (locked,
/// unreadable, a damaged write-ahead log); [`OpenError::Log`] when the log
/// cannot start or NATS stays unreachable for [`NATS_CONNECT_PATIENCE`].
pub async fn open(args: &ServeArgs, metrics: Arc<Metrics>) -> Result<SharedLog, OpenError> {
    Ok(match args.backend {
        Backend::Rocksdb => {
            let store = Store::open_with(&args.data_dir, args.wal_recovery)?;
            Arc::new(RocksTopicLog::open(
                &store,
                args.durability,
                args.wal_sync_interval,
                metrics,
            )?)
        }
        Backend::Jetstream => Arc::new(connect_jetstream(args.jetstream()).await?),
    })
}

/// Connects to NATS JetStream, retrying every second for
/// [`NATS_CONNECT_PATIENCE`]: NATS may still be starting (a cluster and its
/// clients rolled out together).
///
/// # Errors
/// The last connection error once the patience is spent.
pub async fn connect_jetstream(cfg: JetStreamConfig) -> Result<JetStreamTopicLog, LogError> {
    tracing::info!(urls = ?cfg.urls, replicas = cfg.replicas, prefix = %cfg.prefix, "connecting to NATS JetStream");
    let deadline = tokio::time::Instant::now() + NATS_CONNECT_PATIENCE;
    loop {
        match JetStreamTopicLog::connect(cfg.clone()).await {
            Ok(log) => return Ok(log),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "NATS JetStream not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
