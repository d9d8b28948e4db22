//! How the client's errors become [`LogError`]s.
//!
//! Owns: the request timeout, the stream-not-found test, and the mapping of
//! a failed call onto [`LogError::Storage`] or [`LogError::UnknownTopic`].
//! Must not: retry or hold state.

use std::time::Duration;

use eventbus_core::log::LogError;
use eventbus_core::types::TopicId;

/// Upper bound of one JetStream request (fetch, info, purge).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's code for "stream not found"; every error type of the
/// client shows it in its text, whichever call failed.
pub(crate) const STREAM_NOT_FOUND: &str = "error code 10059";

pub(crate) fn storage(e: impl std::fmt::Display) -> LogError {
    LogError::Storage(e.to_string())
}

fn stream_gone(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains(STREAM_NOT_FOUND)
}

/// Maps an error of a call on topic `topic`'s stream.
pub(crate) fn topic_err(topic: TopicId, e: impl std::fmt::Display) -> LogError {
    if stream_gone(&e) {
        LogError::UnknownTopic(topic.0)
    } else {
        storage(e)
    }
}

pub(crate) async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out after {REQUEST_TIMEOUT:?}")),
    }
}
