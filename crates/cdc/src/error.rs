//! Errors of Change Data Capture, each with the REST status and error code
//! Salesforce answers with.
//!
//! Owns: the wording and the codes. Must not: know HTTP types (the status is
//! a number the REST layer turns into its own).

use eventbus_broker::BrokerError;
use eventbus_core::log::LogError;
use eventbus_objects::record::FieldError;

/// Why a record call or a change of CDC settings failed.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    /// The object is not one the server knows.
    #[error("The requested resource does not exist")]
    UnknownObject(String),
    /// The object is known but not selected on the `ChangeEvents` channel.
    #[error(
        "Change Data Capture is not enabled for {0}: enable it with `eventbus cdc enable {0}` or a PlatformEventChannelMember on ChangeEvents, then change its records."
    )]
    NotEnabled(String),
    /// A field of the input is unknown, not writable, of the wrong form or
    /// missing.
    #[error("{}", .0.message)]
    Field(FieldError),
    /// No record has this id (or it is not of the object named).
    #[error("Provided external ID field does not exist or is not accessible: {0}")]
    RecordNotFound(String),
    /// The record is in the recycle bin.
    #[error("entity is deleted")]
    EntityDeleted(String),
    /// Undelete of a record that is not deleted.
    #[error("Entity is not in the recycle bin")]
    NotDeleted(String),
    /// Another process changed the record at the same moment.
    #[error("unable to obtain exclusive access to this record or 1 records: {0}")]
    Locked(String),
    /// The request is malformed in a way no field explains.
    #[error("{0}")]
    Invalid(String),
    /// Not stored because another record of the same all-or-none call failed.
    #[error(
        "Record rolled back because not all records were valid and the request was using AllOrNone header"
    )]
    RolledBack,
    /// The topic side failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The record store failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A custom channel's definitions could not be read.
    #[error(transparent)]
    Channel(#[from] eventbus_channels::ChannelError),
    /// A bug: something the engine built is not valid.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CdcError {
    /// Salesforce's error code for it (`errorCode` of a REST error body).
    pub fn error_code(&self) -> &'static str {
        match self {
            CdcError::UnknownObject(_) | CdcError::RecordNotFound(_) => "NOT_FOUND",
            CdcError::NotEnabled(_) => "INVALID_TYPE",
            CdcError::Field(f) => f.status_code,
            CdcError::EntityDeleted(_) => "ENTITY_IS_DELETED",
            CdcError::NotDeleted(_) => "UNDELETE_FAILED",
            CdcError::Locked(_) => "UNABLE_TO_LOCK_ROW",
            CdcError::Invalid(_) => "INVALID_FIELD",
            CdcError::RolledBack => "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            CdcError::Broker(_)
            | CdcError::Log(_)
            | CdcError::Channel(_)
            | CdcError::Internal(_) => "UNKNOWN_EXCEPTION",
        }
    }

    /// The HTTP status of a single-record REST call failing this way.
    pub fn http_status(&self) -> u16 {
        match self {
            CdcError::UnknownObject(_)
            | CdcError::RecordNotFound(_)
            | CdcError::EntityDeleted(_) => 404,
            CdcError::Locked(_) => 409,
            CdcError::Broker(e) if e.retryable() => 503,
            CdcError::Log(e) if e.retryable() => 503,
            CdcError::Broker(_)
            | CdcError::Log(_)
            | CdcError::Channel(_)
            | CdcError::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The fields the error is about (`fields` of a REST error body).
    pub fn fields(&self) -> Vec<String> {
        match self {
            CdcError::Field(f) => f.fields.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether nothing about the request is wrong: the server failed.
    pub fn is_server_error(&self) -> bool {
        self.http_status() >= 500
    }
}
