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

/// An open log and what it can store.
pub struct Opened {
    /// The log.
    pub log: SharedLog,
    /// The largest event payload the server should accept: the
    /// `max_event_bytes` setting, capped by what the backend can store.
    pub max_event_bytes: usize,
}

/// Opens the log `args.backend` names and logs the settings that apply to
/// it (only those: RocksDB's data folder and durability mean nothing to
/// JetStream).
///
/// # Errors
/// [`OpenError::Store`] for a data folder that cannot be opened (locked,
/// unreadable, a damaged write-ahead log); [`OpenError::Log`] when the log
/// cannot start, NATS has no JetStream, or NATS stays unreachable for
/// 30 s (`NATS_CONNECT_PATIENCE`).
pub async fn open(args: &ServeArgs, metrics: Arc<Metrics>) -> Result<Opened, OpenError> {
    Ok(match args.backend {
        Backend::Rocksdb => {
            let store = Store::open_with(&args.data_dir, args.wal_recovery)?;
            let log = Arc::new(RocksTopicLog::open(
                &store,
                args.durability,
                args.wal_sync_interval,
                metrics,
            )?);
            tracing::info!(
                backend = "rocksdb",
                data_dir = %args.data_dir.display(),
                durability = ?args.durability,
                max_event_bytes = args.max_event_bytes,
                "storage open"
            );
            Opened {
                log,
                max_event_bytes: args.max_event_bytes,
            }
        }
        Backend::Jetstream => {
            let cfg = args.jetstream();
            let log = connect_jetstream(cfg.clone()).await?;
            let max_event_bytes = fit_nats(args.max_event_bytes, &log);
            tracing::info!(
                backend = "jetstream",
                urls = ?cfg.urls,
                replicas = cfg.replicas,
                prefix = %cfg.prefix,
                max_payload = log.max_payload(),
                max_event_bytes,
                "storage open"
            );
            Opened {
                log: Arc::new(log),
                max_event_bytes,
            }
        }
    })
}

/// The event size the server can accept on `log`: `configured`, or less
/// when the NATS server's `max_payload` cannot carry such events, with a
/// warning that says what to change.
fn fit_nats(configured: usize, log: &JetStreamTopicLog) -> usize {
    let fits = log.max_event_bytes();
    if configured <= fits {
        return configured;
    }
    let needed = configured + eventbus_jetstream::HEADER_ALLOWANCE;
    tracing::warn!(
        "NATS max_payload is {} bytes, too small for events of EVENTBUS_MAX_EVENT_BYTES ({configured} bytes) with their headers; \
         events over {fits} bytes will be refused, each with its own error. To accept {configured}-byte events, set \
         `max_payload: {needed}` (or more, e.g. 2MB) in nats-server's configuration and restart it",
        log.max_payload()
    );
    fits
}

/// Connects to NATS JetStream, retrying every second for
/// `NATS_CONNECT_PATIENCE` (30 s): NATS may still be starting (a cluster and its
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
            // A NATS server without JetStream will not grow it by waiting.
            Err(e) if jetstream_disabled(&e) => {
                return Err(LogError::Storage(
                    format!(
                        "NATS at {} answers, but JetStream is not enabled there: start nats-server with -js \
                         (or add `jetstream {{}}` to its configuration)",
                        cfg.urls.join(",")
                    )
                    .into(),
                ));
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "NATS JetStream not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a connect error says the NATS server runs without JetStream: its
/// API subjects have no responders (the client's "jetstream unavailable" and
/// "requested JetStream resource does not exist"), or the server says it is
/// not enabled. A JetStream that is enabled but not ready (a cluster still
/// electing its leader) answers with an error instead, and is waited for.
fn jetstream_disabled(e: &LogError) -> bool {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    let text = text.to_ascii_lowercase();
    [
        "no responders",
        "jetstream unavailable",
        "requested jetstream resource does not exist",
        "jetstream not enabled",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_jetstream_is_told_from_a_nats_that_is_not_ready() {
        for text in [
            "bucket EVENTBUS_topics: create: jetstream unavailable",
            "request error: requested JetStream resource does not exist",
            "no responders",
        ] {
            assert!(
                jetstream_disabled(&LogError::storage_in("connect", text.to_owned())),
                "{text}"
            );
        }
        for text in [
            "cannot connect to NATS: connection refused",
            "jetstream error: JetStream system temporarily unavailable (code 503, error code 10008)",
        ] {
            assert!(
                !jetstream_disabled(&LogError::storage_in("connect", text.to_owned())),
                "{text}"
            );
        }
    }
}
