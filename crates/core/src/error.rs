//! The registry of `error-code` trailer strings.
//!
//! Owns: [`ErrorCode`], the wire string of every code we have ever shipped.
//! Must not: name tonic types; the mapping to gRPC statuses lives in `api/status.rs`.
//!
//! The list is append-only: a shipped string is never renamed or reused, and
//! a retired one stays here, marked, so nobody gives it a new meaning.

/// The prefix Salesforce puts before every Pub/Sub API error code.
pub const SFDC_PREFIX: &str = "sfdc.platform.eventbus.grpc.";

/// Every error code eventbus can put in the `error-code` trailer.
///
/// Codes that Salesforce defines keep Salesforce's exact string, because real
/// clients match on it (the Java example looks for `fetch.replayid.corrupted`
/// and `service.unavailable`). Codes of our own use the same prefix and style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The service cannot take the request now; retry later.
    ServiceUnavailable,
    /// Something broke inside the server.
    ServiceInternal,
    /// Topic name blank on GetTopic or Subscribe.
    TopicValidationEmpty,
    /// The topic does not exist.
    TopicNotFound,
    /// The topic name is not well formed.
    TopicValidationInvalid,
    /// Schema id blank on GetSchema.
    SchemaValidationFailed,
    /// The schema id is unknown.
    SchemaMetaPermission,
    /// A PublishRequest carried no events.
    PublishEventCountInvalid,
    /// The topic changed between requests of one PublishStream.
    PublishTopicMismatch,
    /// Publish topic blank.
    PublishTopicValidationEmpty,
    /// `num_requested` is not positive.
    SubscriptionFetchRequestedEventsInvalid,
    /// The topic changed between requests of one Subscribe stream.
    SubscriptionFetchTopicMismatch,
    /// CUSTOM preset without a replay id.
    SubscriptionFetchReplayIdValidationFailed,
    /// Replay id malformed, unknown, or outside retention.
    SubscriptionFetchReplayIdCorrupted,
    /// The request is larger than the server accepts.
    RequestTooLarge,
    /// The RPC exists on the wire but this server does not offer it yet.
    MethodUnimplemented,
    /// The subscription's first request was not understood.
    SubscriptionFetchRequestInvalid,
    /// CreateTopic for a topic that exists.
    TopicAlreadyExists,
    /// A schema given through the admin API is not valid Avro.
    SchemaInvalid,
    /// A new schema version cannot read the current version's events.
    SchemaIncompatible,
    /// A retention value out of range.
    TopicRetentionInvalid,
    /// A PublishStream sent no publish request in time (so far: its first
    /// request within the first-request timeout). Salesforce's string.
    PublishStreamSweeperTimeout,
    /// The server's disk is full: the events were not stored. Retryable;
    /// publishing resumes once the operator frees space.
    StorageFull,
    /// Credentials missing or not accepted. Salesforce's string.
    ServiceAuthError,
    /// An authentication header is malformed, or `tenantid` does not match
    /// the token's tenant. Salesforce's string.
    ServiceAuthHeadersInvalid,
    /// The caller may not publish to the topic (or it does not exist for
    /// the caller). Salesforce's string.
    TopicMetaPermission,
    /// The caller may not subscribe to the topic. Salesforce's string.
    SubscriptionTopicCannotSubscribe,
    /// The caller lacks the admin grant the Admin service needs.
    AdminPermission,
    /// The tenant publishes faster than its limit. Salesforce's string.
    ServiceProtectionTriggered,
    /// The tenant has its maximum of open subscriptions. Salesforce's string.
    ConcurrentClientLimitExceeded,
    /// ManagedSubscribe named neither an id nor a developer name, or both.
    /// Salesforce's string.
    ManagedIdOrDeveloperNameEmpty,
    /// No managed subscription has this id. Salesforce's string.
    ManagedIdNotFound,
    /// No managed subscription has this developer name. Salesforce's string.
    ManagedDeveloperNameNotFound,
    /// The managed subscription id is malformed. Salesforce's string.
    ManagedIdInvalid,
    /// A commit in the first ManagedFetchRequest. Salesforce's string.
    ManagedCommitRestricted,
    /// `auth_refresh` in the first ManagedFetchRequest. Salesforce's string.
    ManagedAuthRefreshRestricted,
    /// Another stream holds the managed subscription. Salesforce's string.
    ManagedAlreadyActive,
    /// The managed subscription is in state STOP. Salesforce's string.
    ManagedStopped,
    /// The managed subscription was deleted. Salesforce's string.
    ManagedDeleted,
    /// `num_requested` negative on ManagedSubscribe. Salesforce's string.
    ManagedEventsInvalid,
    /// A managed subscription definition is not valid (admin API, topics
    /// folder).
    ManagedConfigInvalid,
    /// A managed subscription with this developer name exists already.
    ManagedAlreadyExists,
    /// The tenant has its maximum of managed subscriptions.
    ManagedLimitExceeded,
    /// A ManagedFetchRequest is not understood (none in time, or a later
    /// one names another subscription). Salesforce's string.
    ManagedFetchRequestInvalid,
    /// The tenant has its maximum of schemas, or of schema bytes.
    SchemaLimitExceeded,
    /// The client has not read the responses already sent on its
    /// connection, which holds its whole response budget.
    ClientTooSlow,
    /// Clients across the server hold the server-wide response budget.
    ResponseBudgetExhausted,
    /// Change Data Capture: the object is not one the server knows.
    CdcObjectNotFound,
    /// Change Data Capture: no record has this id, or it is deleted.
    CdcRecordNotFound,
    /// Change Data Capture: the request is not valid (a change type that is
    /// no gap or overflow, fields that are not a JSON object, ...).
    CdcRequestInvalid,
    /// Custom channels: the channel or member definition is not valid (a
    /// bad name, a duplicate, a filter that does not parse or bind, ...).
    ChannelInvalid,
    /// Custom channels: no channel (or member) of that name.
    ChannelNotFound,
    /// Fault injection: the server was not started with `--fault-injection`.
    FaultInjectionDisabled,
    /// Fault injection: a rule, or a time travel request (an offset, a
    /// cutoff), is not valid.
    FaultRequestInvalid,
    /// Fault injection: no rule has that id.
    FaultRuleNotFound,
}

impl ErrorCode {
    /// Every code, in the order they were added. Append only.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::ServiceUnavailable,
        ErrorCode::ServiceInternal,
        ErrorCode::TopicValidationEmpty,
        ErrorCode::TopicNotFound,
        ErrorCode::TopicValidationInvalid,
        ErrorCode::SchemaValidationFailed,
        ErrorCode::SchemaMetaPermission,
        ErrorCode::PublishEventCountInvalid,
        ErrorCode::PublishTopicMismatch,
        ErrorCode::PublishTopicValidationEmpty,
        ErrorCode::SubscriptionFetchRequestedEventsInvalid,
        ErrorCode::SubscriptionFetchTopicMismatch,
        ErrorCode::SubscriptionFetchReplayIdValidationFailed,
        ErrorCode::SubscriptionFetchReplayIdCorrupted,
        ErrorCode::RequestTooLarge,
        ErrorCode::MethodUnimplemented,
        ErrorCode::SubscriptionFetchRequestInvalid,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::SchemaInvalid,
        ErrorCode::SchemaIncompatible,
        ErrorCode::TopicRetentionInvalid,
        ErrorCode::PublishStreamSweeperTimeout,
        ErrorCode::StorageFull,
        ErrorCode::ServiceAuthError,
        ErrorCode::ServiceAuthHeadersInvalid,
        ErrorCode::TopicMetaPermission,
        ErrorCode::SubscriptionTopicCannotSubscribe,
        ErrorCode::AdminPermission,
        ErrorCode::ServiceProtectionTriggered,
        ErrorCode::ConcurrentClientLimitExceeded,
        ErrorCode::ManagedIdOrDeveloperNameEmpty,
        ErrorCode::ManagedIdNotFound,
        ErrorCode::ManagedDeveloperNameNotFound,
        ErrorCode::ManagedIdInvalid,
        ErrorCode::ManagedCommitRestricted,
        ErrorCode::ManagedAuthRefreshRestricted,
        ErrorCode::ManagedAlreadyActive,
        ErrorCode::ManagedStopped,
        ErrorCode::ManagedDeleted,
        ErrorCode::ManagedEventsInvalid,
        ErrorCode::ManagedConfigInvalid,
        ErrorCode::ManagedAlreadyExists,
        ErrorCode::ManagedLimitExceeded,
        ErrorCode::ManagedFetchRequestInvalid,
        ErrorCode::SchemaLimitExceeded,
        ErrorCode::ClientTooSlow,
        ErrorCode::ResponseBudgetExhausted,
        ErrorCode::CdcObjectNotFound,
        ErrorCode::CdcRecordNotFound,
        ErrorCode::CdcRequestInvalid,
        ErrorCode::ChannelInvalid,
        ErrorCode::ChannelNotFound,
        ErrorCode::FaultInjectionDisabled,
        ErrorCode::FaultRequestInvalid,
        ErrorCode::FaultRuleNotFound,
    ];

    /// The exact trailer string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ServiceUnavailable => "sfdc.platform.eventbus.grpc.service.unavailable",
            ErrorCode::ServiceInternal => "sfdc.platform.eventbus.grpc.service.internal.error",
            ErrorCode::TopicValidationEmpty => "sfdc.platform.eventbus.grpc.topic.validation.empty",
            ErrorCode::TopicNotFound => "sfdc.platform.eventbus.grpc.topic.not.found",
            ErrorCode::TopicValidationInvalid => {
                "sfdc.platform.eventbus.grpc.topic.validation.invalid"
            }
            ErrorCode::SchemaValidationFailed => {
                "sfdc.platform.eventbus.grpc.schema.validation.failed"
            }
            ErrorCode::SchemaMetaPermission => "sfdc.platform.eventbus.grpc.schema.meta.permission",
            ErrorCode::PublishEventCountInvalid => {
                "sfdc.platform.eventbus.grpc.publish.event.count.invalid"
            }
            ErrorCode::PublishTopicMismatch => "sfdc.platform.eventbus.grpc.publish.topic.mismatch",
            ErrorCode::PublishTopicValidationEmpty => {
                "sfdc.platform.eventbus.grpc.publish.topic.validation.empty"
            }
            ErrorCode::SubscriptionFetchRequestedEventsInvalid => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
            }
            ErrorCode::SubscriptionFetchTopicMismatch => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
            }
            ErrorCode::SubscriptionFetchReplayIdValidationFailed => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
            }
            ErrorCode::SubscriptionFetchReplayIdCorrupted => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
            }
            ErrorCode::RequestTooLarge => "sfdc.platform.eventbus.grpc.service.request.too.large",
            ErrorCode::MethodUnimplemented => {
                "sfdc.platform.eventbus.grpc.service.method.unimplemented"
            }
            ErrorCode::SubscriptionFetchRequestInvalid => {
                "sfdc.platform.eventbus.grpc.subscription.fetch.request.invalid"
            }
            ErrorCode::TopicAlreadyExists => "sfdc.platform.eventbus.grpc.topic.already.exists",
            ErrorCode::SchemaInvalid => "sfdc.platform.eventbus.grpc.schema.invalid",
            ErrorCode::SchemaIncompatible => "sfdc.platform.eventbus.grpc.schema.incompatible",
            ErrorCode::TopicRetentionInvalid => {
                "sfdc.platform.eventbus.grpc.topic.retention.invalid"
            }
            ErrorCode::PublishStreamSweeperTimeout => {
                "sfdc.platform.eventbus.grpc.publish.stream.sweeper.timeout"
            }
            ErrorCode::StorageFull => "sfdc.platform.eventbus.grpc.storage.full",
            ErrorCode::ServiceAuthError => "sfdc.platform.eventbus.grpc.service.auth.error",
            ErrorCode::ServiceAuthHeadersInvalid => {
                "sfdc.platform.eventbus.grpc.service.auth.headers.invalid"
            }
            ErrorCode::TopicMetaPermission => "sfdc.platform.eventbus.grpc.topic.meta.permission",
            ErrorCode::SubscriptionTopicCannotSubscribe => {
                "sfdc.platform.eventbus.grpc.subscription.topic.cannot.subscribe"
            }
            ErrorCode::AdminPermission => "sfdc.platform.eventbus.grpc.admin.permission",
            ErrorCode::ServiceProtectionTriggered => {
                "sfdc.platform.eventbus.grpc.service.protection.triggered"
            }
            ErrorCode::ConcurrentClientLimitExceeded => {
                "sfdc.platform.eventbus.grpc.concurrent.client.limit.exceeded"
            }
            ErrorCode::ManagedIdOrDeveloperNameEmpty => {
                "sfdc.platform.eventbus.grpc.managed.subscription.id.or.developer.name.empty"
            }
            ErrorCode::ManagedIdNotFound => {
                "sfdc.platform.eventbus.grpc.managed.subscription.subscription.id.not.found"
            }
            ErrorCode::ManagedDeveloperNameNotFound => {
                "sfdc.platform.eventbus.grpc.managed.subscription.developer.name.not.found"
            }
            ErrorCode::ManagedIdInvalid => {
                "sfdc.platform.eventbus.grpc.managed.subscription.subscription.id.invalid"
            }
            ErrorCode::ManagedCommitRestricted => {
                "sfdc.platform.eventbus.grpc.managed.subscription.fetch.request.commit.request.restricted"
            }
            ErrorCode::ManagedAuthRefreshRestricted => {
                "sfdc.platform.eventbus.grpc.managed.subscription.fetch.request.auth.request.restricted"
            }
            ErrorCode::ManagedAlreadyActive => {
                "sfdc.platform.eventbus.grpc.managed.subscription.already.active"
            }
            ErrorCode::ManagedStopped => {
                "sfdc.platform.eventbus.grpc.managed.subscription.config.stopped"
            }
            ErrorCode::ManagedDeleted => {
                "sfdc.platform.eventbus.grpc.managed.subscription.config.deleted"
            }
            ErrorCode::ManagedEventsInvalid => {
                "sfdc.platform.eventbus.grpc.managed.subscription.fetch.request.events.invalid"
            }
            ErrorCode::ManagedConfigInvalid => {
                "sfdc.platform.eventbus.grpc.managed.subscription.config.invalid"
            }
            ErrorCode::ManagedAlreadyExists => {
                "sfdc.platform.eventbus.grpc.managed.subscription.already.exists"
            }
            ErrorCode::ManagedLimitExceeded => {
                "sfdc.platform.eventbus.grpc.managed.subscription.limit.exceeded"
            }
            ErrorCode::ManagedFetchRequestInvalid => {
                "sfdc.platform.eventbus.grpc.managed.subscription.fetch.request.invalid"
            }
            ErrorCode::SchemaLimitExceeded => "sfdc.platform.eventbus.grpc.schema.limit.exceeded",
            ErrorCode::ClientTooSlow => "sfdc.platform.eventbus.grpc.service.client.too.slow",
            ErrorCode::ResponseBudgetExhausted => {
                "sfdc.platform.eventbus.grpc.service.response.budget.exhausted"
            }
            ErrorCode::CdcObjectNotFound => "sfdc.platform.eventbus.grpc.cdc.object.not.found",
            ErrorCode::CdcRecordNotFound => "sfdc.platform.eventbus.grpc.cdc.record.not.found",
            ErrorCode::CdcRequestInvalid => "sfdc.platform.eventbus.grpc.cdc.request.invalid",
            ErrorCode::ChannelInvalid => "sfdc.platform.eventbus.grpc.channel.invalid",
            ErrorCode::ChannelNotFound => "sfdc.platform.eventbus.grpc.channel.not.found",
            ErrorCode::FaultInjectionDisabled => {
                "sfdc.platform.eventbus.grpc.fault.injection.disabled"
            }
            ErrorCode::FaultRequestInvalid => "sfdc.platform.eventbus.grpc.fault.request.invalid",
            ErrorCode::FaultRuleNotFound => "sfdc.platform.eventbus.grpc.fault.rule.not.found",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_prefixed() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(code.as_str().starts_with(SFDC_PREFIX));
            assert!(code.as_str().is_ascii());
        }
    }

    /// The shipped list. Changing or removing a line breaks clients: append only.
    #[test]
    fn codes_match_the_shipped_snapshot() {
        let snapshot = "\
service.unavailable
service.internal.error
topic.validation.empty
topic.not.found
topic.validation.invalid
schema.validation.failed
schema.meta.permission
publish.event.count.invalid
publish.topic.mismatch
publish.topic.validation.empty
subscription.fetch.requested.events.invalid
subscription.fetch.topic.mismatch
subscription.fetch.replayid.validation.failed
subscription.fetch.replayid.corrupted
service.request.too.large
service.method.unimplemented
subscription.fetch.request.invalid
topic.already.exists
schema.invalid
schema.incompatible
topic.retention.invalid
publish.stream.sweeper.timeout
storage.full
service.auth.error
service.auth.headers.invalid
topic.meta.permission
subscription.topic.cannot.subscribe
admin.permission
service.protection.triggered
concurrent.client.limit.exceeded
managed.subscription.id.or.developer.name.empty
managed.subscription.subscription.id.not.found
managed.subscription.developer.name.not.found
managed.subscription.subscription.id.invalid
managed.subscription.fetch.request.commit.request.restricted
managed.subscription.fetch.request.auth.request.restricted
managed.subscription.already.active
managed.subscription.config.stopped
managed.subscription.config.deleted
managed.subscription.fetch.request.events.invalid
managed.subscription.config.invalid
managed.subscription.already.exists
managed.subscription.limit.exceeded
managed.subscription.fetch.request.invalid
schema.limit.exceeded
service.client.too.slow
service.response.budget.exhausted
cdc.object.not.found
cdc.record.not.found
cdc.request.invalid
channel.invalid
channel.not.found
fault.injection.disabled
fault.request.invalid
fault.rule.not.found";
        let now: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().trim_start_matches(SFDC_PREFIX))
            .collect();
        assert_eq!(now.join("\n"), snapshot);
    }
}
