//! Errors only the protocol layer detects.
//!
//! Owns: [`ProtocolError`], what is wrong with a client's requests as gRPC
//! streams and messages carry them (a first request that never comes, a
//! message over the size limit, a later request that contradicts the first)
//! and the texts the client reads for each.
//! Must not: hold engine errors (the broker's `BrokerError` does) or pick
//! gRPC codes and error codes ([`super::status`] maps both kinds).

use std::time::Duration;

use crate::types::Echo;

/// What a client did wrong that the protocol layer, not the engine, finds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A Subscribe stream sent no FetchRequest within the first-request
    /// timeout (`EVENTBUS_FIRST_REQUEST_TIMEOUT`).
    #[error(
        "No FetchRequest arrived within {} of opening the subscription. Send the first request (topic name and num_requested) right after opening the stream.",
        humantime::format_duration(*.0)
    )]
    FetchRequestTimeout(Duration),
    /// A Subscribe stream ended before its first FetchRequest.
    #[error(
        "The subscription ended before its first FetchRequest. Send a FetchRequest with a topic name and num_requested."
    )]
    EndedBeforeFetchRequest,
    /// A ManagedSubscribe stream sent no ManagedFetchRequest within the
    /// first-request timeout.
    #[error(
        "No ManagedFetchRequest arrived within {} of opening the stream. Send the first request (subscription_id or developer_name, and num_requested) right after opening it.",
        humantime::format_duration(*.0)
    )]
    ManagedFetchRequestTimeout(Duration),
    /// A ManagedSubscribe stream ended before its first ManagedFetchRequest.
    #[error(
        "The stream ended before its first ManagedFetchRequest. Send one with subscription_id or developer_name, and num_requested."
    )]
    EndedBeforeManagedFetchRequest,
    /// A PublishStream sent no PublishRequest within the first-request
    /// timeout. (One that ends before its first request ends with OK.)
    #[error(
        "No PublishRequest arrived within {} of opening the stream. Send the first request right after opening it.",
        humantime::format_duration(*.0)
    )]
    PublishRequestTimeout(Duration),
    /// A request of a stream was over the server's message size limit
    /// (`Some(bytes)` when known).
    #[error("{}", request_too_large_message(*.0))]
    RequestTooLarge(Option<usize>),
    /// A later PublishStream request named another topic.
    #[error(
        "This publish stream is for topic {}, but a request named {}. Open a new stream to publish to another topic.",
        Echo(.first),
        Echo(.got)
    )]
    PublishTopicMismatch {
        /// The stream's topic.
        first: String,
        /// The topic in the offending request.
        got: String,
    },
    /// A later FetchRequest named another topic.
    #[error(
        "This subscription is for topic {}, but a request named {}. Open a new subscription to read another topic.",
        Echo(.first),
        Echo(.got)
    )]
    SubscribeTopicMismatch {
        /// The stream's topic.
        first: String,
        /// The topic in the offending request.
        got: String,
    },
    /// `num_requested` out of range.
    #[error(
        "num_requested must be greater than 0 in the first request and not negative after it; got {0}."
    )]
    CreditInvalid(i32),
    /// ManagedSubscribe (or an Admin call) named no subscription.
    #[error(
        "The first ManagedFetchRequest names no managed subscription. Set either subscription_id or developer_name."
    )]
    ManagedUnnamed,
    /// ManagedSubscribe (or an Admin call) named the subscription twice.
    #[error(
        "The first ManagedFetchRequest sets both subscription_id and developer_name. Set only one of them."
    )]
    ManagedNamedTwice,
    /// A commit in the first request.
    #[error(
        "The first ManagedFetchRequest may not carry a commit_replay_id_request. Commit in a later request, after events were delivered."
    )]
    ManagedCommitInFirst,
    /// `auth_refresh` in the first request.
    #[error("The first ManagedFetchRequest may not carry auth_refresh.")]
    ManagedAuthRefreshInFirst,
    /// `num_requested` negative on ManagedSubscribe.
    #[error("num_requested must not be negative; got {0}.")]
    ManagedCreditInvalid(i32),
    /// A later ManagedFetchRequest named another subscription.
    #[error(
        "This stream is for managed subscription {}, but a request named {}. Later requests may repeat the subscription or leave it out, not change it.",
        Echo(.first),
        Echo(.got)
    )]
    ManagedMismatch {
        /// The stream's subscription as the first request named it.
        first: String,
        /// What the offending request named.
        got: String,
    },
}

/// What a client is told about a request over the size limit.
fn request_too_large_message(limit: Option<usize>) -> String {
    match limit {
        Some(n) => format!(
            "The request is larger than the {n} bytes this server accepts per message. Send fewer or smaller events per request."
        ),
        None => "The request is larger than this server accepts per message. Send fewer or smaller events per request.".to_owned(),
    }
}
