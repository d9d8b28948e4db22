//! Why a channel or member call failed, with Salesforce's error codes and
//! HTTP statuses.
//!
//! Owns: [`ChannelError`]. Must not: decide what is valid.

use eventbus_broker::BrokerError;
use eventbus_core::log::LogError;

/// Why a channel or member definition was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The definition is not valid; the message says why (with the filter's
    /// position for a filter error). `code` is Salesforce's error code.
    #[error("{message}")]
    Invalid {
        /// `FIELD_INTEGRITY_EXCEPTION`, `INVALID_INPUT`, `DUPLICATE_VALUE`...
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No channel or member of that name or id.
    #[error("{0}")]
    NotFound(String),
    /// The topic side failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The record store failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ChannelError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ChannelError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Salesforce's error code for it.
    pub fn error_code(&self) -> &'static str {
        match self {
            ChannelError::Invalid { code, .. } => code,
            ChannelError::NotFound(_) => "NOT_FOUND",
            ChannelError::Broker(_) | ChannelError::Log(_) => "UNKNOWN_EXCEPTION",
        }
    }

    /// The HTTP status of a Tooling call failing this way.
    pub fn http_status(&self) -> u16 {
        match self {
            ChannelError::Invalid { .. } => 400,
            ChannelError::NotFound(_) => 404,
            ChannelError::Broker(e) if e.retryable() => 503,
            ChannelError::Log(e) if e.retryable() => 503,
            ChannelError::Broker(_) | ChannelError::Log(_) => 500,
        }
    }
}
