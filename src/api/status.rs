//! Maps errors to gRPC statuses with `error-code` and `rpc-id` trailers:
//! the engine's ([`BrokerError`]) and the protocol layer's own
//! ([`ProtocolError`]).
//!
//! Owns: the only mapping from errors to gRPC codes.
//! Must not: leak internals into messages; `INTERNAL` details go to the log.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use super::ProtocolError;
use crate::auth::{AuthError, Caller, Headers};
use crate::broker::BrokerError;
use crate::error::ErrorCode;
use crate::telemetry::metrics::Metrics;
use crate::types::RpcId;

/// Trailer carrying the error code.
pub const ERROR_CODE_KEY: &str = "error-code";
/// Trailer carrying the RPC id.
pub const RPC_ID_KEY: &str = "rpc-id";

/// Builds a status whose message ends with `rpcId: <id>` and whose trailers
/// carry the error code and RPC id. The message before the rpc id is cut at
/// [`crate::types::MAX_MESSAGE_BYTES`]: it travels in the `grpc-message`
/// trailer, and a client refuses trailers over its header-list limit (tonic's
/// client closed the whole connection on a 100 KB one, GOAWAY
/// `header_list_way_too_large`), losing the status and every other call.
pub fn status(code: Code, error_code: ErrorCode, message: &str, rpc: RpcId) -> Status {
    let message = crate::types::clip_message(message);
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

/// [`protocol_status`], counted in `pubsub_errors_total`.
pub fn refuse(metrics: &Metrics, err: &ProtocolError, rpc: RpcId) -> Status {
    counted(metrics, protocol_status(err, rpc))
}

/// Whether `st` is tonic's own refusal of a request message over the
/// decoding limit: `OUT_OF_RANGE` for the length prefix, or
/// `RESOURCE_EXHAUSTED` when decompressing passed it. Neither carries our
/// trailers; our handlers never produce `OUT_OF_RANGE` and always attach an
/// error code.
pub fn is_tonic_too_large(code: Code, has_error_code: bool) -> bool {
    !has_error_code && matches!(code, Code::OutOfRange | Code::ResourceExhausted)
}

/// The byte limit named in tonic's too-large message, when it names one.
pub fn tonic_limit(st: &Status) -> Option<usize> {
    // tonic says "... the limit is: N bytes"; without it the message names no number.
    st.message()
        .split("limit is: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .or_else(|| {
            st.message()
                .split("limit, of ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
        })
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
        | BrokerError::TooManyEvents { .. }
        | BrokerError::ReplayIdMissing
        | BrokerError::ReplayIdCorrupted(_)
        | BrokerError::SchemaInvalid(_)
        | BrokerError::SchemaOverLimit(_)
        | BrokerError::RetentionInvalid(_)
        | BrokerError::ManagedIdInvalid(_)
        | BrokerError::ManagedInvalid(_) => Code::InvalidArgument,
        BrokerError::SchemaIncompatible { .. }
        | BrokerError::ManagedAlreadyActive
        | BrokerError::ManagedStopped(_) => Code::FailedPrecondition,
        BrokerError::ManagedLimit(_) | BrokerError::SchemaLimit(_) => Code::ResourceExhausted,
        BrokerError::TopicExists(_) | BrokerError::ManagedExists(_) => Code::AlreadyExists,
        BrokerError::TopicNotFound(_)
        | BrokerError::SchemaNotFound(_)
        | BrokerError::TopicDeleted(_)
        | BrokerError::ManagedIdNotFound(_)
        | BrokerError::ManagedNameNotFound(_)
        | BrokerError::ManagedDeleted(_) => Code::NotFound,
        BrokerError::ShuttingDown => Code::Unavailable,
        BrokerError::Provision(_) => Code::Internal,
        BrokerError::Log(crate::log::LogError::TooLarge(_)) => Code::ResourceExhausted,
        BrokerError::Log(e) if e.retryable() => Code::Unavailable,
        BrokerError::Log(_) => Code::Internal,
    };
    let message = match code {
        Code::Internal => {
            tracing::error!(rpc_id = %rpc, error = ?err, "internal error");
            "An internal error occurred. Retry the call; if it keeps failing, contact the operator."
                .to_owned()
        }
        Code::Unavailable if err.code() == ErrorCode::StorageFull => {
            // The log writer reports the full disk once; one line per
            // refused call would flood the log while clients retry.
            tracing::debug!(rpc_id = %rpc, error = ?err, "storage full");
            "The server's storage is full, so the events were not stored. Retry later: publishing resumes once the operator frees disk space."
                .to_owned()
        }
        Code::Unavailable if matches!(err, BrokerError::Log(_)) => {
            tracing::warn!(rpc_id = %rpc, error = ?err, "storage unavailable");
            "The service is temporarily unavailable. Retry the call later.".to_owned()
        }
        // The storage's own limit, worded for clients (no internals).
        _ => match err {
            BrokerError::Log(crate::log::LogError::TooLarge(why)) => why.clone(),
            other => other.to_string(),
        },
    };
    status(code, err.code(), &message, rpc)
}

/// The gRPC status for a protocol error.
pub fn protocol_status(err: &ProtocolError, rpc: RpcId) -> Status {
    let (code, error_code) = protocol_codes(err);
    status(code, error_code, &err.to_string(), rpc)
}

/// The gRPC code and `error-code` of a protocol error.
fn protocol_codes(err: &ProtocolError) -> (Code, ErrorCode) {
    // Exhaustive on purpose, as `to_status`.
    match err {
        ProtocolError::FetchRequestTimeout(_) | ProtocolError::EndedBeforeFetchRequest => (
            Code::InvalidArgument,
            ErrorCode::SubscriptionFetchRequestInvalid,
        ),
        ProtocolError::ManagedFetchRequestTimeout(_)
        | ProtocolError::EndedBeforeManagedFetchRequest => {
            (Code::InvalidArgument, ErrorCode::ManagedFetchRequestInvalid)
        }
        ProtocolError::PublishRequestTimeout(_) => (
            Code::InvalidArgument,
            ErrorCode::PublishStreamSweeperTimeout,
        ),
        ProtocolError::RequestTooLarge(_) => (Code::ResourceExhausted, ErrorCode::RequestTooLarge),
        ProtocolError::PublishTopicMismatch { .. } => {
            (Code::InvalidArgument, ErrorCode::PublishTopicMismatch)
        }
        ProtocolError::SubscribeTopicMismatch { .. } => (
            Code::InvalidArgument,
            ErrorCode::SubscriptionFetchTopicMismatch,
        ),
        ProtocolError::CreditInvalid(_) => (
            Code::InvalidArgument,
            ErrorCode::SubscriptionFetchRequestedEventsInvalid,
        ),
        ProtocolError::ManagedUnnamed | ProtocolError::ManagedNamedTwice => (
            Code::InvalidArgument,
            ErrorCode::ManagedIdOrDeveloperNameEmpty,
        ),
        ProtocolError::ManagedCommitInFirst => {
            (Code::InvalidArgument, ErrorCode::ManagedCommitRestricted)
        }
        ProtocolError::ManagedAuthRefreshInFirst => (
            Code::InvalidArgument,
            ErrorCode::ManagedAuthRefreshRestricted,
        ),
        ProtocolError::ManagedCreditInvalid(_) => {
            (Code::InvalidArgument, ErrorCode::ManagedEventsInvalid)
        }
        ProtocolError::ManagedMismatch { .. } => {
            (Code::InvalidArgument, ErrorCode::ManagedFetchRequestInvalid)
        }
    }
}

/// Authenticates a call from its metadata (`accesstoken`, `instanceurl`,
/// `tenantid`), or answers `UNAUTHENTICATED` with `service.auth.error` (bad
/// or missing credentials) or `service.auth.headers.invalid` (a malformed
/// header, or a `tenantid` of another tenant than the token's).
///
/// # Errors
/// The counted status to return.
pub fn authenticate(
    auth: &crate::auth::Authenticator,
    metadata: &tonic::metadata::MetadataMap,
    metrics: &Metrics,
    rpc: RpcId,
) -> Result<Caller, Status> {
    let get = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok());
    let headers = Headers {
        access_token: get("accesstoken"),
        instance_url: get("instanceurl"),
        tenant_id: get("tenantid"),
    };
    auth.authenticate(headers).map_err(|e| {
        tracing::info!(reason = %e, "call not authenticated");
        let code = if e.is_header_problem() {
            ErrorCode::ServiceAuthHeadersInvalid
        } else {
            ErrorCode::ServiceAuthError
        };
        let detail = match &e {
            // Which check failed on a token is for the server log; the
            // client learns that the token was not accepted.
            AuthError::BadToken(_) => String::new(),
            other => format!(" {}.", capitalise(&other.to_string())),
        };
        counted(
            metrics,
            status(
                Code::Unauthenticated,
                code,
                &format!(
                    "An authentication exception occurred. Provide valid authentication via metadata headers.{detail}"
                ),
                rpc,
            ),
        )
    })
}

/// Authenticates a call to one of the administration services (`service`
/// names it in the refusal) and requires the `admin` grant.
///
/// # Errors
/// As [`authenticate`]; `PERMISSION_DENIED` with `…admin.permission` for a
/// caller without the grant.
pub fn authenticate_admin(
    auth: &crate::auth::Authenticator,
    metadata: &tonic::metadata::MetadataMap,
    metrics: &Metrics,
    rpc: RpcId,
    service: &str,
) -> Result<Caller, Status> {
    let caller = authenticate(auth, metadata, metrics, rpc)?;
    if !caller.grants.is_admin() {
        return Err(denied(
            metrics,
            ErrorCode::AdminPermission,
            &format!(
                "{} may not use the {service} service: it needs the `admin` grant.",
                crate::types::Echo(&caller.principal)
            ),
            rpc,
        ));
    }
    Ok(caller)
}

/// `PERMISSION_DENIED` for a call whose caller lacks the grant it needs.
pub fn denied(metrics: &Metrics, code: ErrorCode, message: &str, rpc: RpcId) -> Status {
    counted(metrics, status(Code::PermissionDenied, code, message, rpc))
}

/// `RESOURCE_EXHAUSTED` for a call refused by a per-tenant limit:
/// `concurrent.client.limit.exceeded` for subscriptions,
/// `service.protection.triggered` for the publish rate.
pub fn limited(metrics: &Metrics, hit: &crate::api::limits::LimitHit, rpc: RpcId) -> Status {
    use crate::api::limits::LimitHit;
    let code = match hit {
        LimitHit::Subscriptions(_) => ErrorCode::ConcurrentClientLimitExceeded,
        LimitHit::PublishRate(_) => ErrorCode::ServiceProtectionTriggered,
    };
    counted(
        metrics,
        status(
            Code::ResourceExhausted,
            code,
            &format!("{}.", capitalise(&hit.to_string())),
            rpc,
        ),
    )
}

/// `RESOURCE_EXHAUSTED` for a call or stream that got no room in its
/// connection's or the server's response budget in time, counted:
/// `service.client.too.slow` when its own connection is full (its client
/// does not read), `service.response.budget.exhausted` when the server is.
pub fn budget(metrics: &Metrics, err: &crate::transport::BudgetError, rpc: RpcId) -> Status {
    use crate::transport::BudgetError;
    // Exhaustive on purpose, as `to_status`.
    let code = match err {
        BudgetError::ClientStuck { .. } | BudgetError::ServerFull { .. } => Code::ResourceExhausted,
    };
    counted(
        metrics,
        status(
            code,
            err.code(),
            &format!("{}.", capitalise(&err.to_string())),
            rpc,
        ),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
    fn status_messages_are_cut_and_still_end_with_the_rpc_id() {
        let rpc = RpcId::generate();
        let st = status(
            Code::InvalidArgument,
            ErrorCode::SchemaInvalid,
            &"y".repeat(200 * 1024),
            rpc,
        );
        let tail = format!("… rpcId: {rpc}");
        assert!(st.message().ends_with(&tail), "{}", st.message());
        assert!(st.message().len() <= crate::types::MAX_MESSAGE_BYTES + tail.len());
        // An echoed field is cut much sooner, so the text after it survives.
        let st = to_status(&BrokerError::SchemaNotFound("z".repeat(100 * 1024)), rpc);
        assert!(
            st.message().contains("(102400 bytes) was not found."),
            "{}",
            st.message()
        );
        assert!(st.message().len() < 300, "{}", st.message().len());
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
    fn a_full_disk_is_unavailable_with_its_own_code_and_no_path() {
        let st = to_status(
            &BrokerError::Log(LogError::StorageFull(
                "IO error: No space left on device: While appending to file: /var/x/000004.log"
                    .into(),
            )),
            RpcId::generate(),
        );
        assert_eq!(st.code(), Code::Unavailable);
        assert_eq!(
            st.metadata()
                .get(ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("sfdc.platform.eventbus.grpc.storage.full")
        );
        assert!(st.message().contains("storage is full"), "{}", st.message());
        assert!(!st.message().contains("/var/x"));
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

    #[test]
    fn a_full_budget_is_resource_exhausted_with_its_code() {
        use crate::transport::BudgetError;
        let metrics = Metrics::new();
        let rpc = RpcId::generate();
        let st = budget(
            &metrics,
            &BudgetError::ClientStuck {
                waited: std::time::Duration::from_secs(30),
            },
            rpc,
        );
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert_eq!(
            st.metadata()
                .get(ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("sfdc.platform.eventbus.grpc.service.client.too.slow")
        );
        assert!(
            st.message().starts_with("The client has not read"),
            "{}",
            st.message()
        );
        assert!(st.message().ends_with(&format!("rpcId: {rpc}")));
        let st = budget(
            &metrics,
            &BudgetError::ServerFull {
                waited: std::time::Duration::from_secs(30),
            },
            rpc,
        );
        assert_eq!(
            st.metadata()
                .get(ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("sfdc.platform.eventbus.grpc.service.response.budget.exhausted")
        );
    }
}
