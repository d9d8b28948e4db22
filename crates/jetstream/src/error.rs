//! How the client's errors become [`LogError`]s.
//!
//! Owns: the request timeout, the stream-not-found test, and the mapping of
//! a failed call onto [`LogError::Storage`] or [`LogError::UnknownTopic`],
//! keeping the client's error as the source. Must not: retry or hold state.

use std::fmt;
use std::time::Duration;

use eventbus_core::log::{BoxError, LogError};
use eventbus_core::types::TopicId;

/// Upper bound of one JetStream request (fetch, info, purge).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's code for "stream not found"; every error type of the
/// client shows it in its text, whichever call failed.
pub(crate) const STREAM_NOT_FOUND: &str = "error code 10059";

pub(crate) fn storage(e: impl Into<BoxError>) -> LogError {
    LogError::Storage(e.into())
}

/// Whether a failed call found its stream missing.
pub(crate) fn stream_gone(e: &impl fmt::Display) -> bool {
    e.to_string().contains(STREAM_NOT_FOUND)
}

/// Maps an error of a call on topic `topic`'s stream.
pub(crate) fn topic_err(topic: TopicId, e: impl Into<BoxError> + fmt::Display) -> LogError {
    if stream_gone(&e) {
        LogError::UnknownTopic(topic.0)
    } else {
        storage(e)
    }
}

/// A JetStream request that failed or took longer than [`REQUEST_TIMEOUT`]:
/// shows as `<what>: <error>`, with the client's error as its source.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The client returned an error.
    Failed {
        /// The request.
        what: &'static str,
        /// The client's error.
        source: BoxError,
    },
    /// No answer within [`REQUEST_TIMEOUT`].
    TimedOut {
        /// The request.
        what: &'static str,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { what, source } => write!(f, "{what}: {source}"),
            Self::TimedOut { what } => write!(f, "{what}: timed out after {REQUEST_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed { source, .. } => Some(source.as_ref()),
            Self::TimedOut { .. } => None,
        }
    }
}

/// Runs one request with the [`REQUEST_TIMEOUT`].
pub(crate) async fn timed<T, E: Into<BoxError>>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, RequestError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| RequestError::Failed {
            what,
            source: e.into(),
        }),
        Err(_) => Err(RequestError::TimedOut { what }),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[tokio::test]
    async fn a_failed_request_keeps_its_error_and_its_text() {
        let failed = timed("stream info", async {
            Err::<(), _>(std::io::Error::other("error code 10059: stream not found"))
        })
        .await
        .expect_err("fails");
        assert_eq!(
            failed.to_string(),
            "stream info: error code 10059: stream not found"
        );
        assert!(failed.source().is_some());
        assert!(matches!(
            topic_err(TopicId(3), failed),
            LogError::UnknownTopic(3)
        ));
    }
}
