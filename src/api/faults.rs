//! Fault injection in the protocol layer: carrying out what the fault
//! rules ([`crate::faults`]) say a call gets.
//!
//! Owns: [`Faults`] (the table and where injected failures are counted),
//! [`Plan`] (one call's fired rules, and how each is carried out: a
//! status with Salesforce's trailers, an RST_STREAM through
//! [`ResetLayer`], a dropped connection through the transport's
//! [`KillSwitch`], a stall, latency, refused events) and [`Delivered`]
//! (what a stream wrapper needs to know of a response). Every injected
//! failure is logged at WARN with its rule and counted in
//! `pubsub_faults_injected_total{fault,rule}`, never in
//! `pubsub_errors_total`, so nobody mistakes it for a real one.
//! Must not: decide which calls match (the rules do) or be reachable when
//! fault injection is off (the server then builds no [`Faults`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::{Code, Status};

use super::{pb, status};
use crate::auth::Caller;
use crate::faults::{Action, Call, FaultTable, Fired, Rpc};
use crate::telemetry::metrics::{FaultLabel, Metrics};
use crate::transport::{ConnInfo, KillSwitch};
use crate::types::RpcId;

/// The fault rules in force and where their firings are counted.
#[derive(Clone, Debug)]
pub struct Faults {
    table: Arc<FaultTable>,
    metrics: Arc<Metrics>,
}

impl Faults {
    /// Faults from `table`, counted in `metrics`.
    pub fn new(table: Arc<FaultTable>, metrics: Arc<Metrics>) -> Self {
        Self { table, metrics }
    }

    /// The table.
    pub fn table(&self) -> &Arc<FaultTable> {
        &self.table
    }

    /// What a call of `caller` to `rpc` on `topic` gets; `ctx` has the
    /// means to reset its stream or drop its connection.
    pub(super) fn plan(&self, caller: &Caller, rpc: Rpc, topic: &str, ctx: &CallCtx) -> Plan {
        let call = Call {
            tenant: &caller.tenant,
            rpc,
            topic,
            user: &caller.principal,
            peer: ctx.peer,
        };
        Plan {
            fired: self.table.check(&call, Instant::now()),
            metrics: Some(self.metrics.clone()),
            rpc: Some(rpc),
            topic: topic.to_owned(),
            reset: ctx.reset.clone(),
            kill: ctx.kill.clone(),
        }
    }
}

/// What a call's request says of its connection, taken before the request
/// is consumed: the client's address and the means to reset the call's
/// stream or drop its connection.
#[derive(Clone, Debug, Default)]
pub(super) struct CallCtx {
    peer: Option<SocketAddr>,
    reset: Option<ResetHandle>,
    kill: Option<Arc<KillSwitch>>,
}

impl CallCtx {
    /// The context of `request`.
    pub(super) fn of<T>(request: &tonic::Request<T>) -> Self {
        let info = request.extensions().get::<ConnInfo>();
        Self {
            peer: info.and_then(|i| i.remote),
            reset: request.extensions().get::<ResetHandle>().cloned(),
            kill: info.map(|i| i.kill.clone()),
        }
    }
}

/// One call's fired rules and the means to carry them out.
#[derive(Debug, Default)]
pub(super) struct Plan {
    fired: Vec<Fired>,
    metrics: Option<Arc<Metrics>>,
    rpc: Option<Rpc>,
    topic: String,
    reset: Option<ResetHandle>,
    kill: Option<Arc<KillSwitch>>,
}

impl Plan {
    /// A plan with nothing in it (fault injection off).
    pub(super) fn none() -> Self {
        Self::default()
    }

    /// Whether no rule fired for the call.
    pub(super) fn is_empty(&self) -> bool {
        self.fired.is_empty()
    }

    /// Logs and counts that `rule` did `what` now.
    fn note(&self, rule: &str, kind: &'static str, what: &str) {
        tracing::warn!(
            fault = kind,
            rule,
            rpc = self.rpc.map_or("", Rpc::as_str),
            topic = %self.topic,
            "injected fault: {what}"
        );
        if let Some(m) = &self.metrics {
            m.faults_injected
                .get_or_create(&FaultLabel {
                    fault: kind,
                    rule: rule.to_owned(),
                })
                .inc();
        }
    }

    /// The delay of the latency rules that fired (noted once each).
    pub(super) fn latency(&self) -> Duration {
        self.fired
            .iter()
            .filter_map(|f| match f.action {
                Action::Latency { delay } => {
                    self.note(&f.rule, "latency", &format!("{delay:?} added"));
                    Some(delay)
                }
                _ => None,
            })
            .sum()
    }

    /// The per-event refusal of a publish, if a rule refuses its events:
    /// the message each event's result carries.
    pub(super) fn refusal(&self) -> Option<String> {
        self.fired.iter().find_map(|f| match &f.action {
            Action::Refuse {
                error_code,
                message,
            } => {
                self.note(&f.rule, "refuse", "events refused");
                Some(format!("{message} ({})", error_code.as_str()))
            }
            _ => None,
        })
    }

    /// Carries out `action` of `rule` now: the status to end the call
    /// with (a reset or a dropped connection also return one, which the
    /// client never sees).
    fn strike(&self, rule: &str, action: &Action, rpc_id: RpcId) -> Option<Status> {
        match action {
            Action::Fail {
                status: code,
                error_code,
                message,
                ..
            } => {
                self.note(rule, "fail", &format!("{} {}", code, error_code.as_str()));
                Some(status::status(
                    Code::from_i32(*code),
                    *error_code,
                    message,
                    rpc_id,
                ))
            }
            Action::Reset { .. } => {
                self.note(rule, "reset", "RST_STREAM");
                if let Some(r) = &self.reset {
                    r.trip();
                }
                Some(Status::cancelled("stream reset by a fault rule"))
            }
            Action::Drop { .. } => {
                self.note(rule, "drop", "connection closed");
                if let Some(k) = &self.kill {
                    k.trip();
                }
                Some(Status::unavailable("connection dropped by a fault rule"))
            }
            _ => None,
        }
    }

    /// The first failure of a unary call (fail, reset or drop), carried
    /// out now.
    pub(super) fn unary_failure(&self, rpc_id: RpcId) -> Option<Status> {
        self.fired
            .iter()
            .find_map(|f| self.strike(&f.rule, &f.action, rpc_id))
    }

    /// The stream `inner` with this plan's stream faults: latency before
    /// each response with events; a fail, reset, drop or stall once
    /// `after_events` events went out; `keepalive` paces the keepalives a
    /// stall of events alone still sends.
    pub(super) fn wrap<T: Delivered>(
        self,
        inner: Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>,
        rpc_id: RpcId,
        keepalive: Duration,
    ) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
        if self.is_empty() {
            return inner;
        }
        let delay = self.latency();
        let pending: Vec<Fired> = self
            .fired
            .iter()
            .filter(|f| {
                matches!(
                    f.action,
                    Action::Fail { .. }
                        | Action::Reset { .. }
                        | Action::Drop { .. }
                        | Action::Stall { .. }
                )
            })
            .cloned()
            .collect();
        let state = Wrapped {
            inner,
            plan: self,
            pending,
            sent: 0,
            delay,
            rpc_id,
            keepalive,
            last: None,
            done: false,
        };
        Box::pin(futures_util::stream::unfold(state, Wrapped::step))
    }
}

/// The answer to a publish whose events a rule refuses: each event's
/// result carries `msg`, nothing is stored.
pub(super) fn refused(
    broker: &crate::broker::Broker,
    req: &pb::PublishRequest,
    msg: &str,
    rpc: RpcId,
) -> pb::PublishResponse {
    pb::PublishResponse {
        results: req
            .events
            .iter()
            .map(|e| pb::PublishResult {
                replay_id: Bytes::new(),
                error: Some(pb::Error {
                    code: pb::ErrorCode::Publish as i32,
                    msg: msg.to_owned(),
                }),
                correlation_key: e.id.clone(),
            })
            .collect(),
        schema_id: broker
            .topics()
            .iter()
            .find(|t| t.name.as_str() == req.topic_name)
            .map(|t| t.current_schema().to_string())
            .unwrap_or_default(),
        rpc_id: rpc.to_string(),
    }
}

/// `after_events` of a stream action.
fn after(action: &Action) -> u64 {
    match action {
        Action::Fail { after_events, .. }
        | Action::Reset { after_events }
        | Action::Drop { after_events }
        | Action::Stall { after_events, .. } => *after_events,
        _ => 0,
    }
}

/// A response a fault can hold back or count.
pub(super) trait Delivered: Send + Sized + 'static {
    /// Events it carries.
    fn event_count(&self) -> usize;
    /// A keepalive made from it: no events, its latest replay id and
    /// credit kept.
    fn keepalive(&self) -> Self;
}

impl Delivered for pb::FetchResponse {
    fn event_count(&self) -> usize {
        self.events.len()
    }

    fn keepalive(&self) -> Self {
        Self {
            events: Vec::new(),
            ..self.clone()
        }
    }
}

impl Delivered for pb::ManagedFetchResponse {
    fn event_count(&self) -> usize {
        self.events.len()
    }

    fn keepalive(&self) -> Self {
        Self {
            events: Vec::new(),
            commit_response: None,
            ..self.clone()
        }
    }
}

impl Delivered for pb::PublishResponse {
    fn event_count(&self) -> usize {
        self.results.len()
    }

    fn keepalive(&self) -> Self {
        Self {
            results: Vec::new(),
            ..self.clone()
        }
    }
}

/// A wrapped response stream's state.
struct Wrapped<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>,
    plan: Plan,
    /// Stream actions not yet carried out.
    pending: Vec<Fired>,
    /// Events sent so far.
    sent: u64,
    /// Added before each response with events.
    delay: Duration,
    rpc_id: RpcId,
    keepalive: Duration,
    /// The last response sent (for keepalives during a stall).
    last: Option<T>,
    done: bool,
}

impl<T: Delivered> Wrapped<T> {
    /// The next response, after carrying out any action that is due.
    async fn step(mut self) -> Option<(Result<T, Status>, Self)> {
        if self.done {
            return None;
        }
        // Actions due now (in the order the rules were added).
        while let Some(i) = self
            .pending
            .iter()
            .position(|f| after(&f.action) <= self.sent)
        {
            let f = self.pending.remove(i);
            match f.action {
                Action::Stall {
                    duration,
                    keepalives,
                    ..
                } => {
                    self.plan.note(
                        &f.rule,
                        "stall",
                        &format!(
                            "{} withheld for {duration:?}",
                            if keepalives {
                                "events and keepalives"
                            } else {
                                "events"
                            }
                        ),
                    );
                    let until = tokio::time::Instant::now() + duration;
                    if !keepalives {
                        // Keepalives go on (made from the last response)
                        // while nothing else is read.
                        loop {
                            let next = (tokio::time::Instant::now() + self.keepalive).min(until);
                            tokio::time::sleep_until(next).await;
                            if next >= until {
                                break;
                            }
                            if let Some(last) = &self.last {
                                let k = last.keepalive();
                                return Some((Ok(k), self.pushing_back(f.rule, until)));
                            }
                        }
                    } else {
                        tokio::time::sleep_until(until).await;
                    }
                }
                action => {
                    if let Some(st) = self.plan.strike(&f.rule, &action, self.rpc_id) {
                        if matches!(action, Action::Drop { .. }) {
                            // The connection is going; nothing more is sent.
                            std::future::pending::<()>().await;
                        }
                        self.done = true;
                        return Some((Err(st), self));
                    }
                }
            }
        }
        let item = self.inner.next().await?;
        let n = item.as_ref().map_or(0, Delivered::event_count);
        if let Ok(r) = &item {
            self.last = Some(r.keepalive());
        }
        if n > 0 && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.sent += n as u64;
        Some((item, self))
    }

    /// Puts a stall that sent a keepalive back, to go on until `until`.
    fn pushing_back(mut self, rule: String, until: tokio::time::Instant) -> Self {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        self.pending.insert(
            0,
            Fired {
                rule,
                action: Action::Stall {
                    duration: left,
                    keepalives: false,
                    after_events: 0,
                },
            },
        );
        self
    }
}

/// Resets its call's HTTP/2 stream (RST_STREAM) when tripped: every frame
/// the call's response would send after that is replaced by an error,
/// which the HTTP/2 server turns into a reset.
#[derive(Clone, Debug, Default)]
pub struct ResetHandle(Arc<AtomicBool>);

impl ResetHandle {
    /// Resets the stream.
    pub fn trip(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn tripped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Gives every gRPC call a [`ResetHandle`] (request extension) and wraps
/// its response body to honour it. Added only with fault injection on.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetLayer;

impl<S> tower_layer::Layer<S> for ResetLayer {
    type Service = Resettable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Resettable { inner }
    }
}

/// See [`ResetLayer`].
#[derive(Clone, Debug)]
pub struct Resettable<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for Resettable<S>
where
    S: Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let handle = ResetHandle::default();
        req.extensions_mut().insert(handle.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            Ok(response.map(|inner| Body::new(ResetBody { inner, handle })))
        })
    }
}

/// A response body that fails once its [`ResetHandle`] is tripped.
struct ResetBody {
    inner: Body,
    handle: ResetHandle,
}

impl http_body::Body for ResetBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.handle.tripped() {
            return Poll::Ready(Some(Err(Status::cancelled("stream reset by a fault rule"))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(_)) && self.handle.tripped() {
            // Tripped while producing this frame (the call ended because
            // of it): the frame is not sent.
            return Poll::Ready(Some(Err(Status::cancelled("stream reset by a fault rule"))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        !self.handle.tripped() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
