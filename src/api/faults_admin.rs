//! The `eventbus.admin.v1.Faults` service: fault rules added, listed and
//! removed at run time, and time travel (events expired now, sessions and
//! tokens expired now, an offset of the commit clock). The `eventbus fault`
//! commands use it.
//!
//! Owns: these RPCs' conversions (wire rule ⇄ [`RuleSpec`], signed
//! durations, cutoffs) and status mapping: every call needs the `admin`
//! grant, and a server started with `--fault-injection` (else
//! `FAILED_PRECONDITION` with `…fault.injection.disabled`); a rule or
//! request that is not valid is `INVALID_ARGUMENT` with
//! `…fault.request.invalid`; an unknown rule id is `NOT_FOUND` with
//! `…fault.rule.not.found`. Must not: carry out faults (the Pub/Sub
//! handlers do, through [`crate::api::faults`]), or hold rule semantics
//! (the faults crate does) or retention and session rules (broker, auth).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tonic::{Code, Request, Response, Status};

use super::admin::pb;
use super::namespace::Namespace;
use super::status;
use crate::auth::org::Sessions;
use crate::auth::{AuthMode, Authenticator};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::faults::{FaultTable, Rule, RuleSpec, RuleView};
use crate::types::{Echo, ReplayId, RpcId, TenantId};

/// The message of every call to a server without fault injection.
pub const DISABLED: &str = "Fault injection is off on this server: start it with --fault-injection (EVENTBUS_FAULT_INJECTION=true) to add fault rules or travel in time. Never on a server with real traffic.";

/// The Faults service.
#[derive(Clone)]
pub struct FaultsService {
    faults: Option<Arc<FaultTable>>,
    broker: Arc<Broker>,
    auth: Arc<Authenticator>,
    sessions: Arc<Sessions>,
}

/// One call in progress: its rpc id, the caller's org and the table.
struct Call<'a> {
    rpc: RpcId,
    tenant: TenantId,
    table: &'a FaultTable,
    metrics: &'a crate::telemetry::metrics::Metrics,
}

impl Call<'_> {
    fn refuse(&self, code: Code, error_code: ErrorCode, message: &str) -> Status {
        status::counted(
            self.metrics,
            status::status(code, error_code, message, self.rpc),
        )
    }

    fn invalid(&self, message: &str) -> Status {
        self.refuse(
            Code::InvalidArgument,
            ErrorCode::FaultRequestInvalid,
            message,
        )
    }
}

impl FaultsService {
    /// The service: `faults` is the table of a server with
    /// `--fault-injection`, `None` without (every call is refused then);
    /// callers need the `admin` grant, checked with `auth`; `sessions` are
    /// the login sessions ExpireSessions ends.
    pub fn new(
        faults: Option<Arc<FaultTable>>,
        broker: Arc<Broker>,
        auth: Arc<Authenticator>,
        sessions: Arc<Sessions>,
    ) -> Self {
        Self {
            faults,
            broker,
            auth,
            sessions,
        }
    }

    /// Authenticates an admin, then requires fault injection.
    fn call<T>(&self, request: &Request<T>) -> Result<Call<'_>, Status> {
        let rpc = RpcId::generate();
        let metrics = self.broker.metrics();
        let caller =
            status::authenticate_admin(&self.auth, request.metadata(), metrics, rpc, "Faults")?;
        let Some(table) = self.faults.as_deref() else {
            return Err(status::counted(
                metrics,
                status::status(
                    Code::FailedPrecondition,
                    ErrorCode::FaultInjectionDisabled,
                    DISABLED,
                    rpc,
                ),
            ));
        };
        Ok(Call {
            rpc,
            tenant: caller.tenant,
            table,
            metrics,
        })
    }
}

/// `None` for a blank field.
fn given(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The rule a request writes: blank fields are unset.
pub fn spec_of(r: pb::FaultRule) -> RuleSpec {
    RuleSpec {
        action: r.action.trim().to_owned(),
        tenant: given(r.tenant),
        rpc: given(r.rpc),
        topic: given(r.topic),
        client: given(r.client),
        status: given(r.status),
        error_code: given(r.error_code),
        message: (!r.message.is_empty()).then_some(r.message),
        after_events: r.after_events,
        duration: given(r.duration),
        keepalives: r.keepalives,
        times: r.times,
        probability: r.probability,
        active_for: given(r.r#for),
    }
}

/// A rule on the wire: unset fields are blank.
pub fn rule_pb(s: RuleSpec) -> pb::FaultRule {
    pb::FaultRule {
        action: s.action,
        tenant: s.tenant.unwrap_or_default(),
        rpc: s.rpc.unwrap_or_default(),
        topic: s.topic.unwrap_or_default(),
        client: s.client.unwrap_or_default(),
        status: s.status.unwrap_or_default(),
        error_code: s.error_code.unwrap_or_default(),
        message: s.message.unwrap_or_default(),
        after_events: s.after_events,
        duration: s.duration.unwrap_or_default(),
        keepalives: s.keepalives,
        times: s.times,
        probability: s.probability,
        r#for: s.active_for.unwrap_or_default(),
    }
}

fn view_pb(v: RuleView) -> pb::FaultRuleView {
    pb::FaultRuleView {
        id: v.id,
        rule: Some(rule_pb(v.spec)),
        fired: v.fired,
        active: v.active,
        remaining_ms: v
            .remaining
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// A signed duration (`+72h`, `-5m`, `0s`; no sign: ahead) in
/// milliseconds.
///
/// # Errors
/// A sentence naming the value and the form.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let d = humantime::parse_duration(rest.trim()).map_err(|e| {
        format!(
            "offset \"{}\" is no signed duration like +72h, -5m or 0s: {e}",
            Echo(s)
        )
    })?;
    let ms =
        i64::try_from(d.as_millis()).map_err(|_| format!("offset \"{}\" is too large", Echo(s)))?;
    Ok(sign * ms)
}

/// An offset in the form [`parse_offset`] reads (`+3d`, `-5m`, `0s`).
pub fn format_offset(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let sign = if ms < 0 { '-' } else { '+' };
    format!(
        "{sign}{}",
        humantime::format_duration(Duration::from_millis(ms.unsigned_abs()))
    )
}

/// The cutoff of an ExpireEvents request, epoch milliseconds of the commit
/// clock whose time is `now_ms`.
///
/// # Errors
/// A sentence when neither or a malformed value is given.
pub fn cutoff_of(
    cutoff: Option<pb::expire_events_request::Cutoff>,
    now_ms: u64,
) -> Result<u64, String> {
    use pb::expire_events_request::Cutoff;
    match cutoff {
        Some(Cutoff::OlderThan(s)) => {
            let d = humantime::parse_duration(s.trim()).map_err(|e| {
                format!(
                    "older_than \"{}\" is no duration like 72h or 10m: {e}",
                    Echo(&s)
                )
            })?;
            Ok(now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        }
        Some(Cutoff::Before(s)) => {
            let t = humantime::parse_rfc3339_weak(s.trim()).map_err(|e| {
                format!(
                    "before \"{}\" is no RFC 3339 time like 2026-01-31T12:00:00Z: {e}",
                    Echo(&s)
                )
            })?;
            let ms = t
                .duration_since(UNIX_EPOCH)
                .map_err(|_| format!("before \"{}\" is earlier than 1970", Echo(&s)))?;
            Ok(u64::try_from(ms.as_millis()).unwrap_or(u64::MAX))
        }
        None => Err("name the cutoff: older_than (a duration) or before (an RFC 3339 time)".into()),
    }
}

/// What ExpireSessions cannot expire under `mode`.
fn sessions_note(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::None => {
            "--auth none accepts every call: a call with an ended session's token is then the anonymous caller, as after the session expired. Refresh tokens stay valid."
        }
        AuthMode::Static => {
            "The static tokens of --auth-tokens-file cannot expire: remove them from the file and restart. Refresh tokens stay valid."
        }
        AuthMode::Jwt => {
            "JWTs with neither iat nor nbf cannot be judged and stay valid until their exp. Refresh tokens stay valid."
        }
    }
}

fn clock() -> pb::Clock {
    let offset = crate::log::clock_offset_ms();
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    pb::Clock {
        offset_ms: offset,
        offset: format_offset(offset),
        now_ms: ms(crate::log::now_ms()),
        wall_ms: ms(crate::log::wall_ms()),
    }
}

#[tonic::async_trait]
impl pb::faults_server::Faults for FaultsService {
    async fn add_fault(
        &self,
        request: Request<pb::FaultRule>,
    ) -> Result<Response<pb::AddFaultResponse>, Status> {
        let call = self.call(&request)?;
        let rule = Rule::from_spec(spec_of(request.into_inner()))
            .map_err(|e| call.invalid(&format!("The fault rule is not valid: {e}.")))?;
        let action = rule.action.kind();
        let id = call
            .table
            .add(rule, Instant::now())
            .map_err(|e| call.invalid(&format!("The fault rule was not added: {e}.")))?;
        tracing::warn!(rule = %id, action, tenant = %call.tenant, rpc_id = %call.rpc, "fault rule added");
        Ok(Response::new(pb::AddFaultResponse { id }))
    }

    async fn list_faults(
        &self,
        request: Request<pb::ListFaultsRequest>,
    ) -> Result<Response<pb::ListFaultsResponse>, Status> {
        let call = self.call(&request)?;
        Ok(Response::new(pb::ListFaultsResponse {
            rules: call
                .table
                .list(Instant::now())
                .into_iter()
                .map(view_pb)
                .collect(),
        }))
    }

    async fn remove_fault(
        &self,
        request: Request<pb::RemoveFaultRequest>,
    ) -> Result<Response<pb::RemoveFaultResponse>, Status> {
        let call = self.call(&request)?;
        let id = request.into_inner().id;
        if !call.table.remove(id.trim()) {
            return Err(call.refuse(
                Code::NotFound,
                ErrorCode::FaultRuleNotFound,
                &format!(
                    "No fault rule has the id {}: eventbus fault list shows them.",
                    Echo(id.trim())
                ),
            ));
        }
        tracing::warn!(rule = %id.trim(), rpc_id = %call.rpc, "fault rule removed");
        Ok(Response::new(pb::RemoveFaultResponse {}))
    }

    async fn clear_faults(
        &self,
        request: Request<pb::ClearFaultsRequest>,
    ) -> Result<Response<pb::ClearFaultsResponse>, Status> {
        let call = self.call(&request)?;
        let removed = call.table.clear();
        tracing::warn!(removed, rpc_id = %call.rpc, "fault rules cleared");
        Ok(Response::new(pb::ClearFaultsResponse {
            removed: removed as u64,
        }))
    }

    async fn expire_events(
        &self,
        request: Request<pb::ExpireEventsRequest>,
    ) -> Result<Response<pb::ExpireEventsResponse>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let ns = Namespace::of(&call.tenant);
        let fail = |e| ns.scrub(status::fail(call.metrics, &e, call.rpc));
        let cutoff = cutoff_of(req.cutoff, crate::log::now_ms()).map_err(|e| call.invalid(&e))?;
        let stored = ns.inward(&req.topic_name).map_err(fail)?;
        let expired = self
            .broker
            .expire_before(&stored, cutoff)
            .await
            .map_err(fail)?;
        let s = self.broker.describe(&stored).await.map_err(fail)?;
        let first_replay_id = if s.event_count() > 0 {
            ReplayId::from(s.bounds.trimmed.next()).to_bytes().to_vec()
        } else {
            Vec::new()
        };
        tracing::warn!(topic = %req.topic_name, expired, cutoff_ms = cutoff, rpc_id = %call.rpc, "events expired (time travel)");
        Ok(Response::new(pb::ExpireEventsResponse {
            expired,
            cutoff_ms: i64::try_from(cutoff).unwrap_or(i64::MAX),
            first_replay_id: first_replay_id.into(),
        }))
    }

    async fn expire_sessions(
        &self,
        request: Request<pb::ExpireSessionsRequest>,
    ) -> Result<Response<pb::ExpireSessionsResponse>, Status> {
        let call = self.call(&request)?;
        let tenant = given(request.into_inner().tenant);
        // JWT times are seconds of the wall clock (the issuer's), never the
        // commit clock's offset.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.auth
            .expire_tokens(tenant.as_deref(), now)
            .map_err(|e| call.invalid(&format!("tenant: {e}")))?;
        let ended = self.sessions.expire(tenant.as_deref());
        tracing::warn!(tenant = tenant.as_deref().unwrap_or("*"), sessions = ended, rpc_id = %call.rpc, "sessions and tokens expired (time travel)");
        Ok(Response::new(pb::ExpireSessionsResponse {
            sessions_ended: ended as u64,
            tokens_issued_before: i64::try_from(now).unwrap_or(i64::MAX),
            note: sessions_note(self.auth.mode()).to_owned(),
        }))
    }

    async fn set_clock_offset(
        &self,
        request: Request<pb::SetClockOffsetRequest>,
    ) -> Result<Response<pb::Clock>, Status> {
        let call = self.call(&request)?;
        let offset = parse_offset(&request.into_inner().offset).map_err(|e| call.invalid(&e))?;
        let before = crate::log::set_clock_offset_ms(offset);
        tracing::warn!(
            offset = %format_offset(offset),
            before = %format_offset(before),
            rpc_id = %call.rpc,
            "server clock offset set (time travel): commit times and retention follow it"
        );
        Ok(Response::new(clock()))
    }

    async fn get_clock(
        &self,
        request: Request<pb::GetClockRequest>,
    ) -> Result<Response<pb::Clock>, Status> {
        self.call(&request)?;
        Ok(Response::new(clock()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::expire_events_request::Cutoff;

    #[test]
    fn offsets_are_signed_durations_both_ways() {
        assert_eq!(parse_offset("+72h"), Ok(72 * 3_600_000));
        assert_eq!(parse_offset("72h"), Ok(72 * 3_600_000));
        assert_eq!(parse_offset("-5m"), Ok(-300_000));
        assert_eq!(parse_offset(" 0s "), Ok(0));
        assert!(parse_offset("soon").is_err());
        assert!(parse_offset("+-5m").is_err());
        assert!(parse_offset("").is_err());
        for ms in [0, 72 * 3_600_000, -300_000, 1_500] {
            assert_eq!(parse_offset(&format_offset(ms)), Ok(ms));
        }
        assert_eq!(format_offset(-300_000), "-5m");
        assert_eq!(format_offset(0), "0s");
    }

    #[test]
    fn cutoffs_are_an_age_or_an_instant() {
        let now = 10 * 86_400_000;
        assert_eq!(
            cutoff_of(Some(Cutoff::OlderThan("72h".into())), now),
            Ok(now - 72 * 3_600_000)
        );
        assert_eq!(
            cutoff_of(Some(Cutoff::OlderThan("1000d".into())), now),
            Ok(0),
            "an age before the epoch expires nothing"
        );
        assert_eq!(
            cutoff_of(Some(Cutoff::Before("1970-01-02T00:00:00Z".into())), now),
            Ok(86_400_000)
        );
        for bad in [
            Some(Cutoff::OlderThan("a while".into())),
            Some(Cutoff::Before("yesterday".into())),
            None,
        ] {
            assert!(cutoff_of(bad, now).is_err());
        }
    }

    #[test]
    fn rules_cross_the_wire_unchanged() {
        let spec = RuleSpec {
            action: "fail".into(),
            tenant: Some("00D5e000000Abcd".into()),
            rpc: Some("Subscribe".into()),
            topic: Some("/event/*".into()),
            client: Some("127.0.0.1".into()),
            status: Some("UNAVAILABLE".into()),
            error_code: Some("service.unavailable".into()),
            message: Some("gone".into()),
            after_events: Some(3),
            duration: None,
            keepalives: Some(false),
            times: Some(1),
            probability: Some(0.5),
            active_for: Some("10m".into()),
        };
        assert_eq!(spec_of(rule_pb(spec.clone())), spec);
        let minimal = RuleSpec {
            action: "reset".into(),
            ..RuleSpec::default()
        };
        assert_eq!(spec_of(rule_pb(minimal.clone())), minimal);
        let blank = spec_of(pb::FaultRule {
            action: " drop ".into(),
            topic: "  ".into(),
            ..Default::default()
        });
        assert_eq!(blank.action, "drop");
        assert_eq!(blank.topic, None);
    }
}
