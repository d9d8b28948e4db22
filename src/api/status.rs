//! Maps domain errors to gRPC statuses with `error-code` and `rpc-id` trailers.
//!
//! Owns: the only mapping from errors to gRPC codes.
//! Must not: leak internals into messages; `INTERNAL` details go to the log.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::broker::BrokerError;
use crate::error::ErrorCode;
use crate::telemetry::metrics::Metrics;
use crate::types::RpcId;

/// Trailer carrying the error code.
pub const ERROR_CODE_KEY: &str = "error-code";
/// Trailer carrying the RPC id.
pub const RPC_ID_KEY: &str = "rpc-id";

/// Builds a status whose message ends with `rpcId: <id>` and whose trailers
/// carry the error code and RPC id.
pub fn status(code: Code, error_code: ErrorCode, message: &str, rpc: RpcId) -> Status {
    let mut st = Status::new(code, format!("{message} rpcId: {rpc}"));
    let md = st.metadata_mut();
    md.insert(
        ERROR_CODE_KEY,
        MetadataValue::from_static(error_code.as_str()),
    );
    if let Ok(v) = MetadataValue::try_from(rpc.to_string()) {
        md.insert(RPC_ID_KEY, v);
    }
    st
}

/// [`to_status`], counted in `pubsub_errors_total`.
pub fn fail(metrics: &Metrics, err: &BrokerError, rpc: RpcId) -> Status {
    metrics.count_error(err.code().as_str());
    to_status(err, rpc)
}

/// Counts a status built with [`status`] and returns it.
pub fn counted(metrics: &Metrics, st: Status) -> Status {
    if let Some(code) = st
        .metadata()
        .get(ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
    {
        metrics.count_error(code);
    }
    st
}

/// The gRPC status for an engine error.
pub fn to_status(err: &BrokerError, rpc: RpcId) -> Status {
    // Exhaustive on purpose: a new variant must not compile until someone
    // decides how it maps.
    let code = match err {
        BrokerError::TopicNameBlank
        | BrokerError::PublishTopicBlank
        | BrokerError::TopicNameInvalid(_)
        | BrokerError::SchemaIdBlank
        | BrokerError::EmptyBatch
        | BrokerError::PublishTopicMismatch { .. }
        | BrokerError::SubscribeTopicMismatch { .. }
        | BrokerError::CreditInvalid(_)
        | BrokerError::ReplayIdMissing
        | BrokerError::ReplayIdCorrupted(_)
        | BrokerError::SchemaInvalid(_)
        | BrokerError::RetentionInvalid(_) => Code::InvalidArgument,
        BrokerError::SchemaIncompatible { .. } => Code::FailedPrecondition,
        BrokerError::TopicExists(_) => Code::AlreadyExists,
        BrokerError::TopicNotFound(_)
        | BrokerError::SchemaNotFound(_)
        | BrokerError::TopicDeleted(_) => Code::NotFound,
        BrokerError::ShuttingDown => Code::Unavailable,
        BrokerError::Provision(_) => Code::Internal,
        BrokerError::Log(e) if e.retryable() => Code::Unavailable,
        BrokerError::Log(_) => Code::Internal,
    };
    let message = match code {
        Code::Internal => {
            tracing::error!(rpc_id = %rpc, error = ?err, "internal error");
            "An internal error occurred. Retry the call; if it keeps failing, contact the operator."
                .to_owned()
        }
        Code::Unavailable if matches!(err, BrokerError::Log(_)) => {
            tracing::warn!(rpc_id = %rpc, error = ?err, "storage unavailable");
            "The service is temporarily unavailable. Retry the call later.".to_owned()
        }
        _ => err.to_string(),
    };
    status(code, err.code(), &message, rpc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogError;

    #[test]
    fn statuses_carry_code_rpc_id_and_trailers() {
        let rpc = RpcId::generate();
        let st = to_status(&BrokerError::TopicNotFound("/event/X".into()), rpc);
        assert_eq!(st.code(), Code::NotFound);
        assert!(st.message().ends_with(&format!("rpcId: {rpc}")));
        assert_eq!(
            st.metadata()
                .get(ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("sfdc.platform.eventbus.grpc.topic.not.found")
        );
        assert_eq!(
            st.metadata().get(RPC_ID_KEY).and_then(|v| v.to_str().ok()),
            Some(rpc.to_string().as_str())
        );
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let st = to_status(
            &BrokerError::Log(LogError::Corrupt("secret path /var/x".into())),
            RpcId::generate(),
        );
        assert_eq!(st.code(), Code::Internal);
        assert!(!st.message().contains("/var/x"));
        let st = to_status(&BrokerError::Log(LogError::Closed), RpcId::generate());
        assert_eq!(st.code(), Code::Unavailable);
    }

    #[test]
    fn replay_errors_use_the_codes_clients_match() {
        let st = to_status(
            &BrokerError::ReplayIdCorrupted("x".into()),
            RpcId::generate(),
        );
        assert_eq!(st.code(), Code::InvalidArgument);
        let code = st
            .metadata()
            .get(ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(code.contains("fetch.replayid.corrupted"));
    }
}
