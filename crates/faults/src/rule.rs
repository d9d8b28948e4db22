//! One fault rule: which calls it matches, what it does to them, and how
//! often.
//!
//! Owns: [`RuleSpec`], the flat form people write (the Admin API's fields,
//! the CLI's flags, a `[[fault]]` table of the startup file), and its
//! checked form [`Rule`] ([`Matcher`], [`Action`], [`Limit`]), with the
//! defaults a Salesforce client expects (`service.unavailable` ends a call
//! with `INTERNAL` and "The service is unavailable. Try again later.", as
//! Salesforce's servers do). Must not: know gRPC types or the server; the
//! protocol layer turns an [`Action`] into what goes on the wire.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use eventbus_core::error::{ErrorCode, SFDC_PREFIX};

/// Why a rule is not valid, in words for the person who wrote it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RuleError(pub String);

fn bad(msg: impl Into<String>) -> RuleError {
    RuleError(msg.into())
}

/// The RPCs a rule can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rpc {
    /// Unary publish.
    Publish,
    /// Bidirectional publish stream.
    PublishStream,
    /// Bidirectional subscription.
    Subscribe,
    /// Bidirectional managed subscription.
    ManagedSubscribe,
    /// Unary topic lookup.
    GetTopic,
    /// Unary schema lookup.
    GetSchema,
}

impl Rpc {
    /// Every RPC, in proto order.
    pub const ALL: [Rpc; 6] = [
        Rpc::GetTopic,
        Rpc::GetSchema,
        Rpc::Subscribe,
        Rpc::Publish,
        Rpc::PublishStream,
        Rpc::ManagedSubscribe,
    ];

    /// The RPC's name in the proto.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::Publish => "Publish",
            Rpc::PublishStream => "PublishStream",
            Rpc::Subscribe => "Subscribe",
            Rpc::ManagedSubscribe => "ManagedSubscribe",
            Rpc::GetTopic => "GetTopic",
            Rpc::GetSchema => "GetSchema",
        }
    }

    /// The RPC named `s` (any case).
    ///
    /// # Errors
    /// A sentence listing the names.
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        Rpc::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                bad(format!(
                    "\"{s}\" is no RPC: use {}",
                    Rpc::ALL.map(Rpc::as_str).join(", ")
                ))
            })
    }

    /// Whether this RPC streams events to its client.
    pub fn delivers(self) -> bool {
        matches!(self, Rpc::Subscribe | Rpc::ManagedSubscribe)
    }

    /// Whether this RPC is a stream.
    pub fn streams(self) -> bool {
        matches!(
            self,
            Rpc::Subscribe | Rpc::ManagedSubscribe | Rpc::PublishStream
        )
    }

    /// Whether this RPC publishes events.
    pub fn publishes(self) -> bool {
        matches!(self, Rpc::Publish | Rpc::PublishStream)
    }
}

/// gRPC status codes by their names (no gRPC library here).
pub const STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status code's number from its name (any case); `OK` is refused:
/// a fault ends a call with an error.
///
/// # Errors
/// A sentence naming the valid names.
pub fn status_code(name: &str) -> Result<i32, RuleError> {
    let name = name.trim().to_ascii_uppercase();
    match STATUS_NAMES.iter().position(|n| *n == name) {
        Some(0) => Err(bad("a fault's status cannot be OK")),
        Some(i) => Ok(i32::try_from(i).unwrap_or(13)),
        None => Err(bad(format!(
            "\"{name}\" is no gRPC status: use one of {}",
            STATUS_NAMES[1..].join(", ")
        ))),
    }
}

/// The error code named `s`: the whole trailer string or the part after
/// `sfdc.platform.eventbus.grpc.`.
///
/// # Errors
/// A sentence when it is no code of the registry.
pub fn error_code(s: &str) -> Result<ErrorCode, RuleError> {
    let s = s.trim();
    let full = if s.starts_with(SFDC_PREFIX) {
        s.to_owned()
    } else {
        format!("{SFDC_PREFIX}{s}")
    };
    ErrorCode::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == full)
        .ok_or_else(|| bad(format!("\"{s}\" is no error code eventbus knows")))
}

/// The status and message a fault with `code` and no status or message of
/// its own ends a call with: Salesforce's for the codes its clients meet
/// in production, else `INTERNAL` and a sentence naming the code.
pub fn defaults_for(code: ErrorCode) -> (i32, String) {
    match code {
        // Salesforce's servers end calls with code 13 and this wording.
        ErrorCode::ServiceUnavailable => (13, "The service is unavailable. Try again later.".into()),
        ErrorCode::ServiceInternal => (13, "An internal error occurred. Try again later.".into()),
        // INVALID_ARGUMENT, as the server answers a replay id no longer
        // retained.
        ErrorCode::SubscriptionFetchReplayIdCorrupted => (
            3,
            "The Replay ID validation failed. Ensure that the Replay ID is valid.".into(),
        ),
        ErrorCode::ServiceAuthError => (
            16,
            "An authentication exception occurred. Provide valid authentication via metadata headers."
                .into(),
        ),
        ErrorCode::ServiceProtectionTriggered | ErrorCode::ConcurrentClientLimitExceeded => (
            8,
            "The request was throttled. Try again later.".into(),
        ),
        other => (
            13,
            format!(
                "The request failed ({}).",
                other.as_str().trim_start_matches(SFDC_PREFIX)
            ),
        ),
    }
}

/// A rule as people write it: every field optional but `action`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `fail`, `reset`, `drop`, `stall`, `latency` or `refuse`.
    pub action: String,
    /// Only calls of this tenant (org id, 15 or 18 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only this RPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<String>,
    /// Only this topic (the caller's name for it); a trailing `*` matches
    /// a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Only this client: its user (principal) or its address (an IP, or
    /// IP:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `fail`: the gRPC status (default from the error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `fail` and `refuse`: the `error-code` (default `service.unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `fail` and `refuse`: the message (default from the error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `fail`, `reset`, `drop`, `stall` on streams: after this many events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<u64>,
    /// `stall`: for how long; `latency`: how much (`500ms`, `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// `stall`: withhold keepalives too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalives: Option<bool>,
    /// Fire at most this many times (`1`: once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Fire for a matching call with this probability (0 < p <= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Active for this long after it is added (`10m`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub active_for: Option<String>,
}

/// Which calls a rule matches; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    /// Tenant, in its 15-character form.
    pub tenant: Option<String>,
    /// RPC.
    pub rpc: Option<Rpc>,
    /// Topic, or a prefix when it ends with `*`.
    pub topic: Option<String>,
    /// User or address.
    pub client: Option<String>,
}

/// One call, as a rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The caller's tenant.
    pub tenant: &'a str,
    /// The RPC.
    pub rpc: Rpc,
    /// The topic (the caller's name), or `""` for calls without one.
    pub topic: &'a str,
    /// The caller's principal.
    pub user: &'a str,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

/// The first 15 characters of an org id (both forms name one org).
fn org15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

impl Matcher {
    /// Whether `call` is one of the calls this matcher names.
    pub fn matches(&self, call: &Call<'_>) -> bool {
        let tenant = self
            .tenant
            .as_deref()
            .is_none_or(|t| org15(t) == org15(call.tenant));
        let rpc = self.rpc.is_none_or(|r| r == call.rpc);
        let topic = self
            .topic
            .as_deref()
            .is_none_or(|t| match t.strip_suffix('*') {
                Some(prefix) => call.topic.starts_with(prefix),
                None => call.topic == t,
            });
        let client = self.client.as_deref().is_none_or(|c| {
            c == call.user
                || call
                    .peer
                    .is_some_and(|p| c == p.ip().to_string() || c == p.to_string())
        });
        tenant && rpc && topic && client
    }
}

/// What a rule does to a call it matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// End the call or stream with this status, `error-code` and message;
    /// streams after `after_events` events.
    Fail {
        /// gRPC status code.
        status: i32,
        /// The trailer.
        error_code: ErrorCode,
        /// The message (the server adds ` rpcId: …`).
        message: String,
        /// Streams: events delivered (or published) first.
        after_events: u64,
    },
    /// Reset the HTTP/2 stream (RST_STREAM) after `after_events` events.
    Reset {
        /// Events first.
        after_events: u64,
    },
    /// Close the client's connection after `after_events` events.
    Drop {
        /// Events first.
        after_events: u64,
    },
    /// Withhold deliveries (and keepalives, when `keepalives`) for
    /// `duration`, after `after_events` events.
    Stall {
        /// How long.
        duration: Duration,
        /// Keepalives withheld too.
        keepalives: bool,
        /// Events first.
        after_events: u64,
    },
    /// Delay the response (unary) or each acknowledgement (PublishStream)
    /// or each delivery (subscriptions).
    Latency {
        /// How long.
        delay: Duration,
    },
    /// Refuse the call's events, each with this error in its publish result.
    Refuse {
        /// The code.
        error_code: ErrorCode,
        /// The message.
        message: String,
    },
}

impl Action {
    /// The action's name (the `fault` label of the metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Fail { .. } => "fail",
            Action::Reset { .. } => "reset",
            Action::Drop { .. } => "drop",
            Action::Stall { .. } => "stall",
            Action::Latency { .. } => "latency",
            Action::Refuse { .. } => "refuse",
        }
    }

    /// Whether this action can happen to a call of `rpc`.
    pub fn applies_to(&self, rpc: Rpc) -> bool {
        match self {
            Action::Stall { .. } => rpc.delivers(),
            Action::Refuse { .. } => rpc.publishes(),
            Action::Reset { .. } => rpc.streams(),
            _ => true,
        }
    }
}

/// How often a rule fires.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// At most this many times.
    pub times: Option<u64>,
    /// With this probability per matching call.
    pub probability: f64,
    /// For this long after it was added.
    pub active_for: Option<Duration>,
}

/// A checked rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Which calls.
    pub matcher: Matcher,
    /// What happens.
    pub action: Action,
    /// How often.
    pub limit: Limit,
    /// What it was made from (listed back as written).
    pub spec: RuleSpec,
}

fn duration(field: &str, s: &str) -> Result<Duration, RuleError> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        bad(format!(
            "{field} \"{s}\" is no duration (500ms, 30s, 10m): {e}"
        ))
    })
}

impl Rule {
    /// Checks `spec`.
    ///
    /// # Errors
    /// The first thing wrong with it, in words.
    pub fn from_spec(spec: RuleSpec) -> Result<Rule, RuleError> {
        let rpc = spec.rpc.as_deref().map(Rpc::parse).transpose()?;
        let after_events = spec.after_events.unwrap_or(0);
        let code = spec
            .error_code
            .as_deref()
            .map(error_code)
            .transpose()?
            .unwrap_or(ErrorCode::ServiceUnavailable);
        let (default_status, default_message) = defaults_for(code);
        let message = spec.message.clone().unwrap_or(default_message);
        let needs_duration = |what: &str| {
            spec.duration
                .as_deref()
                .ok_or_else(|| bad(format!("a {what} rule needs a duration")))
                .and_then(|d| duration("duration", d))
        };
        let action = match spec.action.trim().to_ascii_lowercase().as_str() {
            "fail" => Action::Fail {
                status: spec
                    .status
                    .as_deref()
                    .map(status_code)
                    .transpose()?
                    .unwrap_or(default_status),
                error_code: code,
                message,
                after_events,
            },
            "reset" => Action::Reset { after_events },
            "drop" => Action::Drop { after_events },
            "stall" => Action::Stall {
                duration: needs_duration("stall")?,
                keepalives: spec.keepalives.unwrap_or(false),
                after_events,
            },
            "latency" => Action::Latency {
                delay: needs_duration("latency")?,
            },
            "refuse" => Action::Refuse {
                error_code: code,
                message,
            },
            other => {
                return Err(bad(format!(
                    "\"{other}\" is no fault action: use fail, reset, drop, stall, latency or refuse"
                )));
            }
        };
        if let Some(rpc) = rpc
            && !action.applies_to(rpc)
        {
            return Err(bad(format!(
                "a {} fault cannot happen to {}: {}",
                action.kind(),
                rpc.as_str(),
                match action {
                    Action::Stall { .. } => "stalls are for Subscribe and ManagedSubscribe",
                    Action::Reset { .. } =>
                        "resets are for the streams (Subscribe, ManagedSubscribe, PublishStream)",
                    _ => "refusals are for Publish and PublishStream",
                }
            )));
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(probability > 0.0 && probability <= 1.0) {
            return Err(bad(format!("probability {probability} is not in (0, 1]")));
        }
        if spec.times == Some(0) {
            return Err(bad("times 0 would never fire"));
        }
        let active_for = spec
            .active_for
            .as_deref()
            .map(|d| duration("for", d))
            .transpose()?;
        let matcher = Matcher {
            tenant: spec.tenant.clone().filter(|t| !t.trim().is_empty()),
            rpc,
            topic: spec.topic.clone().filter(|t| !t.trim().is_empty()),
            client: spec.client.clone().filter(|c| !c.trim().is_empty()),
        };
        Ok(Rule {
            matcher,
            action,
            limit: Limit {
                times: spec.times,
                probability,
                active_for,
            },
            spec,
        })
    }
}

/// The rules of a startup file: `[[fault]]` tables of [`RuleSpec`] fields.
///
/// # Errors
/// The file's TOML error or the first rule that is not valid (numbered
/// from 1).
pub fn parse_file(text: &str) -> Result<Vec<Rule>, RuleError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        fault: Vec<RuleSpec>,
    }
    let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    file.fault
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Rule::from_spec(spec).map_err(|e| bad(format!("fault {}: {e}", i + 1))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(action: &str) -> RuleSpec {
        RuleSpec {
            action: action.into(),
            ..RuleSpec::default()
        }
    }

    fn call(rpc: Rpc, topic: &'static str) -> Call<'static> {
        Call {
            tenant: "00D5e000000AbcdEAC",
            rpc,
            topic,
            user: "ops@acme.example",
            peer: "127.0.0.1:5555".parse().ok(),
        }
    }

    #[test]
    fn service_unavailable_is_salesforces_by_default() {
        let r = Rule::from_spec(spec("fail")).expect("valid");
        assert_eq!(
            r.action,
            Action::Fail {
                status: 13,
                error_code: ErrorCode::ServiceUnavailable,
                message: "The service is unavailable. Try again later.".into(),
                after_events: 0,
            }
        );
        let r = Rule::from_spec(RuleSpec {
            status: Some("unavailable".into()),
            error_code: Some(
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted".into(),
            ),
            message: Some("gone".into()),
            after_events: Some(3),
            ..spec("fail")
        })
        .expect("valid");
        assert_eq!(
            r.action,
            Action::Fail {
                status: 14,
                error_code: ErrorCode::SubscriptionFetchReplayIdCorrupted,
                message: "gone".into(),
                after_events: 3,
            }
        );
    }

    #[test]
    fn every_registry_code_can_be_named_short_or_long() {
        for code in ErrorCode::ALL {
            let short = code.as_str().trim_start_matches(SFDC_PREFIX);
            assert_eq!(error_code(short), Ok(*code));
            assert_eq!(error_code(code.as_str()), Ok(*code));
            let (status, message) = defaults_for(*code);
            assert!(status > 0 && !message.is_empty());
        }
        assert!(error_code("no.such.code").is_err());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (s, says) in [
            (spec("explode"), "no fault action"),
            (spec("stall"), "needs a duration"),
            (
                RuleSpec {
                    rpc: Some("Publish".into()),
                    duration: Some("1s".into()),
                    ..spec("stall")
                },
                "stalls are for Subscribe",
            ),
            (
                RuleSpec {
                    rpc: Some("Subscribe".into()),
                    ..spec("refuse")
                },
                "refusals are for Publish",
            ),
            (
                RuleSpec {
                    rpc: Some("Fetch".into()),
                    ..spec("fail")
                },
                "is no RPC",
            ),
            (
                RuleSpec {
                    status: Some("OK".into()),
                    ..spec("fail")
                },
                "cannot be OK",
            ),
            (
                RuleSpec {
                    probability: Some(1.5),
                    ..spec("fail")
                },
                "not in (0, 1]",
            ),
            (
                RuleSpec {
                    times: Some(0),
                    ..spec("fail")
                },
                "never fire",
            ),
            (
                RuleSpec {
                    duration: Some("soon".into()),
                    ..spec("latency")
                },
                "no duration",
            ),
        ] {
            let err = Rule::from_spec(s).expect_err(says);
            assert!(err.0.contains(says), "{err} should say {says}");
        }
    }

    #[test]
    fn matchers_narrow_by_tenant_rpc_topic_and_client() {
        let m = |f: fn(&mut Matcher)| {
            let mut m = Matcher::default();
            f(&mut m);
            m
        };
        let sub = call(Rpc::Subscribe, "/event/Order_Event__e");
        assert!(Matcher::default().matches(&sub));
        assert!(m(|m| m.tenant = Some("00D5e000000Abcd".into())).matches(&sub));
        assert!(!m(|m| m.tenant = Some("00D5e000000Zzzz".into())).matches(&sub));
        assert!(m(|m| m.rpc = Some(Rpc::Subscribe)).matches(&sub));
        assert!(!m(|m| m.rpc = Some(Rpc::Publish)).matches(&sub));
        assert!(m(|m| m.topic = Some("/event/*".into())).matches(&sub));
        assert!(!m(|m| m.topic = Some("/data/*".into())).matches(&sub));
        assert!(!m(|m| m.topic = Some("/event/Order".into())).matches(&sub));
        assert!(m(|m| m.client = Some("ops@acme.example".into())).matches(&sub));
        assert!(m(|m| m.client = Some("127.0.0.1".into())).matches(&sub));
        assert!(m(|m| m.client = Some("127.0.0.1:5555".into())).matches(&sub));
        assert!(!m(|m| m.client = Some("127.0.0.2".into())).matches(&sub));
    }

    #[test]
    fn a_startup_file_is_fault_tables() {
        let rules = parse_file(
            r#"
[[fault]]
action = "fail"
rpc = "Subscribe"
after_events = 2
times = 1

[[fault]]
action = "latency"
duration = "250ms"
for = "10m"
"#,
        )
        .expect("valid file");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].limit.active_for, Some(Duration::from_secs(600)));
        let err = parse_file("[[fault]]\naction = \"stall\"\n").expect_err("no duration");
        assert!(err.0.starts_with("fault 1: "), "{err}");
        assert!(parse_file("[[fault]]\naction = \"fail\"\ncolour = 1\n").is_err());
    }
}
