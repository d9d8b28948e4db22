//! The errors of the log layer.
//!
//! Owns: [`LogError`] and the wrapper that keeps an underlying error as the
//! source of a storage or decoding failure. Must not: name a storage engine
//! or its error types (backends box theirs).

/// An underlying error of any backend, kept as the source of a [`LogError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An underlying error and what was being done when it happened: shows as
/// `<context>: <error>`, with the error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct WithContext {
    context: String,
    source: BoxError,
}

impl WithContext {
    /// `source`, which happened while doing `context`.
    pub fn new(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Errors of the log layer.
///
/// The storage and decoding variants keep the underlying error as their
/// source; their text is the same as the source's (with its context, see
/// [`WithContext`]), after the variant's own words.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The storage engine failed; the message is for logs, not clients.
    #[error("storage error: {0}")]
    Storage(#[source] BoxError),
    /// The disk holding the log is full: nothing of the failed write was
    /// stored. The backend resumes writing by itself once space is freed;
    /// the message is for logs, not clients.
    #[error("storage full: {0}")]
    StorageFull(#[source] BoxError),
    /// A stored record could not be decoded (corruption or a bug).
    #[error("corrupt record: {0}")]
    Corrupt(#[source] BoxError),
    /// The log is closing; the call may be retried against a new server.
    #[error("the log is shutting down")]
    Closed,
    /// The topic id is not known to this log.
    #[error("unknown topic id {0}")]
    UnknownTopic(u32),
    /// An event is larger than the storage can ever hold (NATS
    /// `max_payload`): not retryable. The message says which limit, for
    /// clients too.
    #[error("{0}")]
    TooLarge(String),
    /// A record key, counter name, prefix or tenant the record store does
    /// not accept (see [`super::RecordStore`]): a bug of the caller, not
    /// retryable. The message says which rule was broken.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// An [`EventLog::append_many`](super::EventLog::append_many) call named
    /// this topic id in two parts: a bug of the caller, not retryable;
    /// nothing of the call was stored.
    #[error("topic id {0} named twice in one append")]
    DuplicateTopic(u32),
}

impl LogError {
    /// Whether the same call might succeed later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            LogError::Storage(_) | LogError::StorageFull(_) | LogError::Closed
        )
    }

    /// [`LogError::Storage`] of `source`, which happened while doing
    /// `context`: shows as `storage error: <context>: <source>`.
    pub fn storage_in(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Storage(WithContext::new(context, source).into())
    }

    /// [`LogError::Corrupt`] of `source`, found while decoding `context`:
    /// shows as `corrupt record: <context>: <source>`.
    pub fn corrupt_in(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Corrupt(WithContext::new(context, source).into())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_source_is_kept_and_the_text_is_unchanged() {
        let io = std::io::Error::other("disk on fire");
        let e = LogError::storage_in("topic record /event/A__e", io);
        assert_eq!(
            e.to_string(),
            "storage error: topic record /event/A__e: disk on fire"
        );
        let context = e.source().expect("the context");
        assert_eq!(
            context.to_string(),
            "topic record /event/A__e: disk on fire"
        );
        assert_eq!(
            context.source().expect("the io error").to_string(),
            "disk on fire"
        );
        let plain = LogError::Corrupt("next topic id is not a number".into());
        assert_eq!(
            plain.to_string(),
            "corrupt record: next topic id is not a number"
        );
    }
}
