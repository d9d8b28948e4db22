//! Where and how to reach JetStream.
//!
//! Owns: [`JetStreamConfig`], its defaults and the checks of the prefix and
//! replica count made before connecting. Must not: connect or hold state.

use std::path::PathBuf;
use std::time::Duration;

use eventbus_core::log::LogError;

use crate::error::storage;

/// Where and how to reach JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// Server URLs (`nats://host:port`); the client fails over among them.
    pub urls: Vec<String>,
    /// Replicas of every stream and bucket: 1, or 3 for a cluster.
    pub replicas: usize,
    /// Names every stream, subject and bucket, so several deployments (or
    /// tests) share one cluster: letters, digits, `-` and `_`.
    pub prefix: String,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for TLS to NATS.
    pub tls_ca: Option<PathBuf>,
    /// How long JetStream remembers event ids to drop duplicates; capped
    /// at each topic's retention.
    pub duplicate_window: Duration,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            replicas: 1,
            prefix: "eventbus".into(),
            credentials_file: None,
            tls_ca: None,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl JetStreamConfig {
    /// Refuses a prefix that could not name streams, subjects and buckets,
    /// and a replica count JetStream does not take.
    pub(crate) fn check(&self) -> Result<(), LogError> {
        let valid_prefix = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_prefix {
            return Err(storage(format!(
                "JetStream prefix {:?} must be letters, digits, `-` and `_`",
                self.prefix
            )));
        }
        if self.replicas == 0 || self.replicas > 5 {
            return Err(storage(format!(
                "JetStream replicas must be 1 to 5, not {}",
                self.replicas
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JetStreamTopicLog;

    #[tokio::test]
    async fn a_bad_prefix_is_refused() {
        let cfg = JetStreamConfig {
            prefix: "a.b".into(),
            ..JetStreamConfig::default()
        };
        assert!(matches!(
            JetStreamTopicLog::connect(cfg).await,
            Err(LogError::Storage(_))
        ));
    }
}
