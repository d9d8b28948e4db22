//! Fault injection in the protocol layer: carrying out what the fault
//! rules ([`crate::faults`]) say a call gets.
//!
//! Owns: [`Faults`] (the table and where injected failures are counted),
//! `Plan` (one call's fired rules, and how each is carried out: a
//! status with Salesforce's trailers, an RST_STREAM through
//! [`ResetLayer`], a dropped connection through the transport's
//! [`KillSwitch`], a stall, latency, refused events) and `Delivered`
//! (what a stream wrapper needs to know of a response). Every injected
//! failure is logged at WARN with its rule and counted in
//! `pubsub_faults_injected_total{fault,rule}`, never in
//! `pubsub_errors_total`, so nobody mistakes it for a real one.
//! Must not: decide which calls match (the rules do) or be reachable when
//! fault injection is off (the server then builds no [`Faults`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
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
use crate::transport::{ConnBudget, ConnInfo, KillSwitch};
use crate::types::RpcId;

/// How long a reset or dropped connection waits for what was sent before
/// it to be written.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

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
            budget: ctx.budget.clone(),
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
    budget: Option<Arc<ConnBudget>>,
}

impl CallCtx {
    /// The context of `request`.
    pub(super) fn of<T>(request: &tonic::Request<T>) -> Self {
        let info = request.extensions().get::<ConnInfo>();
        Self {
            peer: info.and_then(|i| i.remote),
            reset: request.extensions().get::<ResetHandle>().cloned(),
            kill: info.map(|i| i.kill.clone()),
            budget: info.and_then(|i| i.budget.clone()),
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
    budget: Option<Arc<ConnBudget>>,
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
                    r.trip(Ending::Reset);
                }
                Some(Status::cancelled("stream reset by a fault rule"))
            }
            Action::Drop { .. } => {
                self.note(rule, "drop", "connection closed");
                // Once what the call sent before is written (the body's
                // end), or at once without the reset layer.
                match &self.reset {
                    Some(r) => r.trip(Ending::Drop),
                    None => {
                        if let Some(k) = &self.kill {
                            k.trip();
                        }
                    }
                }
                Some(Status::unavailable("connection dropped by a fault rule"))
            }
            _ => None,
        }
    }

    /// The first failure of a unary call (fail or drop), carried out now.
    /// A dropped connection never answers: the call waits for the
    /// connection to take it down.
    pub(super) async fn unary_failure(&self, rpc_id: RpcId) -> Option<Status> {
        let f = self
            .fired
            .iter()
            .find(|f| matches!(f.action, Action::Fail { .. } | Action::Drop { .. }))?;
        if matches!(f.action, Action::Drop { .. })
            && let Some(k) = &self.kill
        {
            self.note(&f.rule, "drop", "connection closed");
            k.trip();
            // The closing connection drops this call; it never answers.
            std::future::pending::<()>().await;
        }
        // Without a connection to close (no transport under the call), a
        // drop ends the call as UNAVAILABLE instead of hanging.
        self.strike(&f.rule, &f.action, rpc_id)
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
            held: None,
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

/// The receipt of a PublishStream request whose events a rule refuses:
/// each event's outcome carries `msg`, nothing is stored.
pub(super) fn refused_receipt(
    broker: &crate::broker::Broker,
    stored: &str,
    events: &[crate::broker::PublishEvent],
    msg: &str,
) -> crate::broker::PublishReceipt {
    crate::broker::PublishReceipt {
        schema_id: broker
            .topic(stored)
            .map(|t| t.current_schema().clone())
            .unwrap_or_else(|_| crate::types::SchemaId::new(String::new())),
        outcomes: events
            .iter()
            .map(|e| crate::broker::PublishOutcome {
                correlation_key: e.id.clone(),
                result: Err(msg.to_owned()),
            })
            .collect(),
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
    /// Keeps the first `k` events (`0 < k < event_count`) and returns a
    /// response with the rest.
    fn split_off(&mut self, k: usize) -> Self;
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

    fn split_off(&mut self, k: usize) -> Self {
        let rest = Self {
            events: self.events.split_off(k),
            ..self.clone()
        };
        if let Some(last) = self.events.last() {
            self.latest_replay_id = last.replay_id.clone();
        }
        rest
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

    fn split_off(&mut self, k: usize) -> Self {
        let rest = Self {
            events: self.events.split_off(k),
            commit_response: self.commit_response.take(),
            ..self.clone()
        };
        if let Some(last) = self.events.last() {
            self.latest_replay_id = last.replay_id.clone();
        }
        rest
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

    fn split_off(&mut self, k: usize) -> Self {
        Self {
            results: self.results.split_off(k),
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
    /// The part of a response past an action's event count, sent after it.
    held: Option<T>,
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
                    if matches!(action, Action::Reset { .. } | Action::Drop { .. }) {
                        // What was sent goes out first: HTTP/2 discards a
                        // reset stream's queued data, and a closed socket
                        // all of it. One yield lets the encoder hand over
                        // what it holds.
                        tokio::task::yield_now().await;
                        if let Some(b) = &self.plan.budget {
                            b.flushed(FLUSH_PATIENCE).await;
                        }
                    }
                    if let Some(st) = self.plan.strike(&f.rule, &action, self.rpc_id) {
                        // A reset or drop replaces the end this status
                        // would make (see `ResetBody`).
                        self.done = true;
                        return Some((Err(st), self));
                    }
                }
            }
        }
        let mut item = match self.held.take() {
            Some(held) => Ok(held),
            None => self.inner.next().await?,
        };
        // An action due within this response: the events up to it now, the
        // rest after it.
        if let Ok(r) = &mut item {
            let n = r.event_count() as u64;
            if let Some(due) = self
                .pending
                .iter()
                .map(|f| after(&f.action))
                .filter(|&a| a > self.sent && a < self.sent + n)
                .min()
            {
                let k = usize::try_from(due - self.sent).unwrap_or(0);
                self.held = Some(r.split_off(k));
            }
        }
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

/// How a tripped call's response ends instead of its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// RST_STREAM.
    Reset = 1,
    /// The whole connection closes.
    Drop = 2,
}

/// Ends its call's response differently when tripped: what the call sent
/// before still goes out, and in place of its end (the trailers with the
/// status) the HTTP/2 stream is reset (an error the HTTP/2 server turns
/// into RST_STREAM) or the connection is closed.
#[derive(Clone, Debug, Default)]
pub struct ResetHandle(Arc<AtomicU8>);

impl ResetHandle {
    /// Ends the call's response with `how`.
    pub fn trip(&self, how: Ending) {
        self.0.store(how as u8, Ordering::Release);
    }

    fn tripped(&self) -> Option<Ending> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(Ending::Reset),
            2 => Some(Ending::Drop),
            _ => None,
        }
    }
}

/// Gives every gRPC call a [`ResetHandle`] (request extension) and wraps
/// its response body to honour it, when on (with fault injection);
/// passes calls through untouched when off.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetLayer {
    on: bool,
}

impl ResetLayer {
    /// The layer, on or off.
    pub fn new(on: bool) -> Self {
        Self { on }
    }
}

impl<S> tower_layer::Layer<S> for ResetLayer {
    type Service = Resettable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Resettable { inner, on: self.on }
    }
}

/// See [`ResetLayer`].
#[derive(Clone, Debug)]
pub struct Resettable<S> {
    inner: S,
    on: bool,
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
        if !self.on {
            return Box::pin(self.inner.call(req));
        }
        let handle = ResetHandle::default();
        req.extensions_mut().insert(handle.clone());
        let kill = req.extensions().get::<ConnInfo>().map(|i| i.kill.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            Ok(response.map(|inner| {
                Body::new(ResetBody {
                    inner,
                    handle,
                    kill,
                })
            }))
        })
    }
}

/// A response body whose end is replaced once its [`ResetHandle`] is
/// tripped.
struct ResetBody {
    inner: Body,
    handle: ResetHandle,
    kill: Option<Arc<KillSwitch>>,
}

impl http_body::Body for ResetBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let Some(how) = self.handle.tripped() else {
            return polled;
        };
        let end = match &polled {
            Poll::Pending => false,
            // Data written before the end still goes out.
            Poll::Ready(Some(Ok(frame))) => !frame.is_data(),
            Poll::Ready(_) => true,
        };
        if !end {
            return polled;
        }
        match how {
            Ending::Reset => {
                Poll::Ready(Some(Err(Status::cancelled("stream reset by a fault rule"))))
            }
            Ending::Drop => {
                if let Some(k) = &self.kill {
                    k.trip();
                }
                // The connection takes the call down.
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.handle.tripped().is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn response(first: u64, n: u64) -> pb::FetchResponse {
        let events: Vec<pb::ConsumerEvent> = (first..first + n)
            .map(|i| pb::ConsumerEvent {
                event: None,
                replay_id: Bytes::copy_from_slice(&i.to_be_bytes()),
            })
            .collect();
        pb::FetchResponse {
            latest_replay_id: events
                .last()
                .map(|e| e.replay_id.clone())
                .unwrap_or_default(),
            events,
            rpc_id: "r".into(),
            pending_num_requested: 0,
        }
    }

    fn plan(action: Action) -> Plan {
        Plan {
            fired: vec![Fired {
                rule: "f1".into(),
                action,
            }],
            ..Plan::default()
        }
    }

    fn source(
        items: Vec<pb::FetchResponse>,
    ) -> Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>> {
        Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
    }

    fn last_id(r: &pb::FetchResponse) -> u64 {
        u64::from_be_bytes(r.latest_replay_id.as_ref().try_into().expect("8 bytes"))
    }

    #[tokio::test]
    async fn a_fail_splits_the_response_it_falls_in() {
        let p = plan(Action::Fail {
            status: 13,
            error_code: ErrorCode::ServiceUnavailable,
            message: "The service is unavailable. Try again later.".into(),
            after_events: 3,
        });
        let out: Vec<_> = p
            .wrap(
                source(vec![response(1, 5), response(6, 1)]),
                RpcId::generate(),
                Duration::from_secs(60),
            )
            .collect()
            .await;
        assert_eq!(out.len(), 2, "{out:?}");
        let first = out[0].as_ref().expect("events");
        assert_eq!((first.events.len(), last_id(first)), (3, 3));
        let st = out[1].as_ref().expect_err("the fault");
        assert_eq!(st.code(), Code::Internal);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_of_events_sends_keepalives_naming_the_last_event() {
        let p = plan(Action::Stall {
            duration: Duration::from_secs(10),
            keepalives: false,
            after_events: 2,
        });
        let started = tokio::time::Instant::now();
        let mut s = p.wrap(
            source(vec![response(1, 4)]),
            RpcId::generate(),
            Duration::from_secs(4),
        );
        let mut seen = Vec::new();
        while let Some(r) = s.next().await {
            let r = r.expect("no error");
            seen.push((started.elapsed().as_secs(), r.events.len(), last_id(&r)));
        }
        assert_eq!(seen, vec![(0, 2, 2), (4, 0, 2), (8, 0, 2), (10, 2, 4)]);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_response_with_events() {
        let p = plan(Action::Latency {
            delay: Duration::from_millis(300),
        });
        let started = tokio::time::Instant::now();
        let out: Vec<_> = p
            .wrap(
                source(vec![response(1, 1), response(2, 1)]),
                RpcId::generate(),
                Duration::from_secs(60),
            )
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }
}
