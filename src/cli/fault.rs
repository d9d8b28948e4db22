//! `eventbus fault …`: fault rules (add, list, remove, clear) and time
//! travel (expire a topic's events, expire sessions and tokens, offset the
//! server clock) through the Faults service of a server started with
//! `--fault-injection`.
//!
//! Owns: these commands' arguments and output, and checking a rule with
//! the faults crate before it is sent, so a mistake is named without a
//! round trip. Must not: reach the fault table, the broker or the sessions
//! other than over gRPC (the server checks every rule again).

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::ConnArgs;
use super::wire::{channel, hex, unary};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::faults_client::FaultsClient;
use crate::api::faults_admin::{rule_pb, spec_of};
use crate::client::rpc_error;
use crate::faults::{Rule, RuleSpec};

/// `eventbus fault …`
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Add a fault rule; prints its id (`f1`).
    // Boxed: the rule's flags outweigh every other subcommand's.
    Add(Box<AddArgs>),
    /// List the rules with how often each fired.
    List {
        /// `table` (default) or `json` (one object per line).
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: ListFormat,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove one rule.
    Remove {
        /// The rule's id (`f1`).
        id: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove every rule.
    Clear {
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Time travel: delete a topic's events committed before a cutoff now,
    /// as retention would once they passed its age.
    #[command(group(clap::ArgGroup::new("cutoff").required(true).args(["older_than", "before"])))]
    ExpireEvents {
        /// The topic (`/event/Order_Event__e`).
        topic: String,
        /// Events committed more than this long ago (`72h`, `10m`).
        #[arg(long)]
        older_than: Option<String>,
        /// Events committed before this instant (RFC 3339, UTC:
        /// `2026-01-31T12:00:00Z`).
        #[arg(long)]
        before: Option<String>,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Time travel: end login sessions now and refuse JWTs issued until
    /// now (static tokens cannot expire).
    ExpireSessions {
        /// Only this org's (15 or 18 characters); every org's by default.
        #[arg(long)]
        tenant: Option<String>,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Time travel: show the server clock, or offset it (commit times and
    /// retention follow it).
    Clock {
        /// A signed duration: `+72h`, `-5m`.
        #[arg(long, allow_hyphen_values = true, conflicts_with = "reset")]
        offset: Option<String>,
        /// Put the clock back (offset 0).
        #[arg(long)]
        reset: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// How `fault list` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A table.
    Table,
    /// One JSON object per line.
    Json,
}

/// `eventbus fault add`: the fields of a rule.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// fail, reset, drop, stall, latency or refuse.
    #[arg(long)]
    action: String,
    /// Only this RPC (Publish, PublishStream, Subscribe, ManagedSubscribe,
    /// GetTopic, GetSchema).
    #[arg(long)]
    rpc: Option<String>,
    /// Only this topic; a trailing `*` matches a prefix (`/event/*`).
    #[arg(long)]
    topic: Option<String>,
    /// Only this org (15 or 18 characters).
    #[arg(long)]
    tenant: Option<String>,
    /// Only this client: its user, or its address (IP or IP:port).
    #[arg(long)]
    client: Option<String>,
    /// fail: the gRPC status (INTERNAL, UNAVAILABLE, …); by default the
    /// error code's.
    #[arg(long)]
    status: Option<String>,
    /// fail and refuse: the error code (`service.unavailable`, the
    /// default, or the whole `sfdc.platform.eventbus.grpc.…` string).
    #[arg(long)]
    error_code: Option<String>,
    /// fail and refuse: the message; by default Salesforce's for the code.
    #[arg(long)]
    message: Option<String>,
    /// fail, reset, drop, stall on streams: after this many events.
    #[arg(long)]
    after_events: Option<u64>,
    /// stall: for how long; latency: how much (`500ms`, `30s`).
    #[arg(long)]
    duration: Option<String>,
    /// stall: withhold keepalives too.
    #[arg(long)]
    keepalives: bool,
    /// Fire at most this many times (`1`: once).
    #[arg(long)]
    times: Option<u64>,
    /// Fire for a matching call with this probability (0 < p <= 1).
    #[arg(long)]
    probability: Option<f64>,
    /// Active for this long after it is added (`10m`).
    #[arg(long = "for")]
    active_for: Option<String>,
    /// Connection settings.
    #[command(flatten)]
    conn: ConnArgs,
}

impl AddArgs {
    /// The rule these flags write.
    fn spec(&self) -> RuleSpec {
        RuleSpec {
            action: self.action.clone(),
            tenant: self.tenant.clone(),
            rpc: self.rpc.clone(),
            topic: self.topic.clone(),
            client: self.client.clone(),
            status: self.status.clone(),
            error_code: self.error_code.clone(),
            message: self.message.clone(),
            after_events: self.after_events,
            duration: self.duration.clone(),
            keepalives: self.keepalives.then_some(true),
            times: self.times,
            probability: self.probability,
            active_for: self.active_for.clone(),
        }
    }
}

/// The calls a rule matches, in words: `rpc=Subscribe topic=/event/*`,
/// or `*` for every call.
fn matcher(s: &RuleSpec) -> String {
    let parts: Vec<String> = [
        ("tenant", &s.tenant),
        ("rpc", &s.rpc),
        ("topic", &s.topic),
        ("client", &s.client),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "*".to_owned()
    } else {
        parts.join(" ")
    }
}

/// The action with what it does: `fail INTERNAL service.unavailable after 3`.
fn action(s: &RuleSpec) -> String {
    let mut out = vec![s.action.clone()];
    out.extend(s.status.clone());
    out.extend(s.error_code.clone());
    out.extend(s.duration.clone());
    if s.keepalives == Some(true) {
        out.push("+keepalives".into());
    }
    if let Some(n) = s.after_events {
        out.push(format!("after {n}"));
    }
    out.join(" ")
}

/// How often: `once`, `3 times`, `p=0.5`, `for 10m`, or `always`.
fn limit(s: &RuleSpec) -> String {
    let mut out = Vec::new();
    match s.times {
        Some(1) => out.push("once".to_owned()),
        Some(n) => out.push(format!("{n} times")),
        None => {}
    }
    if let Some(p) = s.probability {
        out.push(format!("p={p}"));
    }
    if let Some(d) = &s.active_for {
        out.push(format!("for {d}"));
    }
    if out.is_empty() {
        "always".to_owned()
    } else {
        out.join(", ")
    }
}

/// Epoch milliseconds as an RFC 3339 time.
fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(t).to_string()
}

fn show_clock(c: &admin::Clock) {
    println!(
        "server clock {} (offset {}; wall clock {})",
        time(c.now_ms),
        c.offset,
        time(c.wall_ms)
    );
}

/// Runs one `fault` subcommand.
///
/// # Errors
/// A rule that is not valid (checked before it is sent), connection
/// failures and server errors (FAILED_PRECONDITION from a server without
/// `--fault-injection`).
pub async fn run(cmd: FaultCommand) -> Result<()> {
    match cmd {
        FaultCommand::Add(args) => {
            let spec = args.spec();
            if let Err(e) = Rule::from_spec(spec.clone()) {
                bail!("the fault rule is not valid: {e}");
            }
            let mut c = FaultsClient::new(channel(&args.conn).await?);
            let id = c
                .add_fault(unary(&args.conn, rule_pb(spec)))
                .await
                .map_err(|e| rpc_error("AddFault", e))?
                .into_inner()
                .id;
            println!("{id}");
        }
        FaultCommand::List { output, conn } => {
            let mut c = FaultsClient::new(channel(&conn).await?);
            let rules = c
                .list_faults(unary(&conn, admin::ListFaultsRequest {}))
                .await
                .map_err(|e| rpc_error("ListFaults", e))?
                .into_inner()
                .rules;
            let rows = rules.into_iter().map(|r| {
                let spec = spec_of(r.rule.clone().unwrap_or_default());
                (r, spec)
            });
            match output {
                ListFormat::Json => {
                    for (r, spec) in rows {
                        println!(
                            "{}",
                            json!({
                                "id": r.id,
                                "rule": spec,
                                "fired": r.fired,
                                "active": r.active,
                                "remaining_ms": r.remaining_ms,
                            })
                        );
                    }
                }
                ListFormat::Table => {
                    println!(
                        "{:<6} {:<40} {:<48} {:<16} {:>6} ACTIVE",
                        "ID", "ACTION", "MATCHER", "LIMIT", "FIRED"
                    );
                    for (r, spec) in rows {
                        let active = match (r.active, r.remaining_ms) {
                            (true, Some(ms)) => format!(
                                "yes ({} left)",
                                humantime::format_duration(Duration::from_secs(ms / 1000))
                            ),
                            (true, None) => "yes".to_owned(),
                            (false, _) => "no".to_owned(),
                        };
                        println!(
                            "{:<6} {:<40} {:<48} {:<16} {:>6} {active}",
                            r.id,
                            action(&spec),
                            matcher(&spec),
                            limit(&spec),
                            r.fired
                        );
                    }
                }
            }
        }
        FaultCommand::Remove { id, conn } => {
            let mut c = FaultsClient::new(channel(&conn).await?);
            c.remove_fault(unary(&conn, admin::RemoveFaultRequest { id: id.clone() }))
                .await
                .map_err(|e| rpc_error("RemoveFault", e))?;
            println!("removed fault rule {id}");
        }
        FaultCommand::Clear { conn } => {
            let mut c = FaultsClient::new(channel(&conn).await?);
            let removed = c
                .clear_faults(unary(&conn, admin::ClearFaultsRequest {}))
                .await
                .map_err(|e| rpc_error("ClearFaults", e))?
                .into_inner()
                .removed;
            println!("removed {removed} fault rules");
        }
        FaultCommand::ExpireEvents {
            topic,
            older_than,
            before,
            conn,
        } => {
            use admin::expire_events_request::Cutoff;
            let cutoff = match (older_than, before) {
                (Some(d), None) => Cutoff::OlderThan(d),
                (None, Some(t)) => Cutoff::Before(t),
                _ => bail!("give one of --older-than and --before"),
            };
            let mut c = FaultsClient::new(channel(&conn).await?);
            let r = c
                .expire_events(unary(
                    &conn,
                    admin::ExpireEventsRequest {
                        topic_name: topic.clone(),
                        cutoff: Some(cutoff),
                    },
                ))
                .await
                .map_err(|e| rpc_error("ExpireEvents", e))?
                .into_inner();
            let left = if r.first_replay_id.is_empty() {
                "none left".to_owned()
            } else {
                format!("oldest left {}", hex(&r.first_replay_id))
            };
            println!(
                "expired {} events of {topic} committed before {} ({left})",
                r.expired,
                time(r.cutoff_ms)
            );
        }
        FaultCommand::ExpireSessions { tenant, conn } => {
            let mut c = FaultsClient::new(channel(&conn).await?);
            let r = c
                .expire_sessions(unary(
                    &conn,
                    admin::ExpireSessionsRequest {
                        tenant: tenant.unwrap_or_default(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("ExpireSessions", e))?
                .into_inner();
            println!(
                "ended {} login sessions; JWTs issued at or before {} are refused",
                r.sessions_ended,
                time(r.tokens_issued_before.saturating_mul(1000))
            );
            if !r.note.is_empty() {
                println!("{}", r.note);
            }
        }
        FaultCommand::Clock {
            offset,
            reset,
            conn,
        } => {
            let mut c = FaultsClient::new(channel(&conn).await?);
            let offset = if reset { Some("0s".to_owned()) } else { offset };
            let clock = match offset {
                Some(offset) => {
                    // Checked here for a clear message; the server again.
                    crate::api::faults_admin::parse_offset(&offset)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    c.set_clock_offset(unary(&conn, admin::SetClockOffsetRequest { offset }))
                        .await
                        .map_err(|e| rpc_error("SetClockOffset", e))?
                }
                None => c
                    .get_clock(unary(&conn, admin::GetClockRequest {}))
                    .await
                    .map_err(|e| rpc_error("GetClock", e))?,
            }
            .into_inner();
            show_clock(&clock);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_say_what_which_and_how_often() {
        let spec = RuleSpec {
            action: "fail".into(),
            rpc: Some("Subscribe".into()),
            topic: Some("/event/*".into()),
            error_code: Some("service.unavailable".into()),
            after_events: Some(3),
            times: Some(1),
            ..RuleSpec::default()
        };
        assert_eq!(matcher(&spec), "rpc=Subscribe topic=/event/*");
        assert_eq!(action(&spec), "fail service.unavailable after 3");
        assert_eq!(limit(&spec), "once");
        let any = RuleSpec {
            action: "stall".into(),
            duration: Some("5s".into()),
            keepalives: Some(true),
            probability: Some(0.5),
            active_for: Some("10m".into()),
            ..RuleSpec::default()
        };
        assert_eq!(matcher(&any), "*");
        assert_eq!(action(&any), "stall 5s +keepalives");
        assert_eq!(limit(&any), "p=0.5, for 10m");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(86_400_123), "1970-01-02T00:00:00.123Z");
        assert_eq!(time(-5), "1970-01-01T00:00:00.000Z");
    }
}
