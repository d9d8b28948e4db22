//! The PublishStream RPC: pipelined publish requests, one response each.
//!
//! Owns: the per-stream topic rule, the in-flight window, the admission
//! budget shared by all streams, the first-request timeout and response
//! order. With its connection's response budget ([`super::pacing`]), a
//! request is read only while the connection has room, and is charged with
//! its answer until the answer is handed to tonic: a client that stops
//! reading answers stops the stream from reading requests.
//! Must not: validate events (the broker does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesOrdered;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::stream::{FirstDeadline, ReadError, Requests};
use super::{ProtocolError, PubSubService, convert, pb, status};
use crate::auth::Caller;
use crate::broker::{Broker, BrokerError, PublishReceipt};
use crate::types::RpcId;

/// The response stream of PublishStream.
pub type PublishResponseStream =
    Pin<Box<dyn Stream<Item = Result<pb::PublishResponse, Status>> + Send>>;

/// A request's charge to its connection's response budget, held until its
/// answer is handed to tonic.
type Charge = Option<crate::transport::Reservation>;

type InFlight = Pin<Box<dyn Future<Output = (Result<PublishReceipt, BrokerError>, Charge)> + Send>>;

/// An answer or the stream's end, with the charge of the request it answers.
type Outbound = (Result<pb::PublishResponse, Status>, Charge);

/// What the reading arm of the loop got.
enum Read {
    /// The next request, the end of the requests, or why there is none.
    Message(Result<Option<pb::PublishRequest>, ReadError>),
    /// No room in the connection's response budget in time.
    NoRoom(crate::transport::BudgetError),
}

type Admission = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// KiB of PublishStream requests admitted towards the log at once, across
/// all streams. The log writer commits in arrival order, so whatever is
/// queued ahead of a publish is latency it pays: without a shared budget a
/// few streams pipelining big requests (16 per stream) kept ~32 MiB and
/// 120-230 ms ahead of every other publisher; with it, ~40 ms (found by
/// the hostile client tests). A stream waits for its turn with one request, in order, reading
/// nothing more meanwhile; 8 MiB still fills the writer's group commits.
pub(super) const BUDGET_KIB: usize = 8 * 1024;

/// Starts the stream's task and returns its response stream.
pub(super) fn start(
    svc: &PubSubService,
    caller: Caller,
    inbound: Streaming<pb::PublishRequest>,
    pace: Option<super::pacing::PublishPace>,
    rpc: RpcId,
    span: tracing::Span,
    ctx: super::faults::CallCtx,
) -> PublishResponseStream {
    let window = svc.cfg.publish_stream_window.max(1);
    let (out_tx, out_rx) = mpsc::channel(window);
    // The fault rules' plan needs the topic, which the first request names.
    let (plan_tx, plan_rx) = tokio::sync::oneshot::channel();
    let faults = svc.faults.clone().map(|f| (f, ctx, plan_tx));
    svc.tasks.spawn(
        run(
            svc.broker.clone(),
            caller,
            svc.limits.clone(),
            svc.publish_budget.clone(),
            inbound,
            pace,
            out_tx,
            svc.stop.clone(),
            window,
            svc.cfg.first_request_timeout,
            rpc,
            span.clone(),
            faults,
        )
        .instrument(span),
    );
    // The charge is dropped here, as tonic takes the answer.
    let answers: PublishResponseStream =
        Box::pin(ReceiverStream::new(out_rx).map(|(answer, _charge)| answer));
    if svc.faults.is_none() {
        return answers;
    }
    let keepalive = svc.broker.config().keepalive;
    Box::pin(futures_util::StreamExt::flatten(
        futures_util::stream::once(async move {
            match plan_rx.await {
                Ok(plan) => plan.wrap(answers, rpc, keepalive),
                Err(_) => answers,
            }
        }),
    ))
}

/// Fault injection of one stream: the rules, the call's context and where
/// its plan goes once the first request names the topic.
type StreamFaults = (
    super::faults::Faults,
    super::faults::CallCtx,
    tokio::sync::oneshot::Sender<super::faults::Plan>,
);

/// Reads requests while fewer than `window` are in flight, publishes each,
/// and answers in request order as each becomes durable. A bad request ends
/// the stream with its status after the requests before it are answered, and
/// a stream whose first request does not arrive within
/// `first_request_timeout` ends with `INVALID_ARGUMENT`.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn run(
    broker: Arc<Broker>,
    caller: Caller,
    limits: Arc<super::limits::Limits>,
    budget: Arc<Semaphore>,
    inbound: Streaming<pb::PublishRequest>,
    pace: Option<super::pacing::PublishPace>,
    out: mpsc::Sender<Outbound>,
    stop: CancellationToken,
    window: usize,
    first_request_timeout: std::time::Duration,
    rpc: RpcId,
    span: tracing::Span,
    mut faults: Option<StreamFaults>,
) {
    let streams_open = broker.metrics().publish_streams_open.clone();
    streams_open.inc();
    // Decrements the gauge however this function returns.
    struct Open(prometheus_client::metrics::gauge::Gauge);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    let _open = Open(streams_open);
    let ns = super::Namespace::of(&caller.tenant);
    let mut topic: Option<String> = None;
    let mut inflight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut reading = true;
    let mut end: Option<Status> = None;
    // A stream that never sends its first request would otherwise hold this
    // task and its HTTP/2 stream until the client goes away.
    let mut first_deadline = FirstDeadline::start(first_request_timeout);
    let mut requests = Requests::new(inbound);
    // The request waiting for its share of the budget, and its admission.
    let mut waiting: Option<(String, Vec<crate::broker::PublishEvent>, Charge)> = None;
    // A fault rule's refusal of this stream's events.
    let mut refusal: Option<String> = None;
    let mut admission: Option<Admission> = None;
    loop {
        tokio::select! {
            // Answer finished requests before reading more: keeps memory
            // bounded by the window and responses prompt.
            biased;
            Some((res, charge)) = inflight.next(), if !inflight.is_empty() => match res {
                Ok(receipt) => {
                    if out.send((Ok(convert::publish_response(ns.scrub_receipt(receipt), rpc)), charge)).await.is_err() {
                        // The client is gone. Appends already queued still
                        // commit; there is nobody left to tell.
                        return;
                    }
                }
                Err(e) => {
                    end.get_or_insert_with(|| ns.scrub(status::fail(broker.metrics(), &e, rpc)));
                    reading = false;
                }
            },
            _ = stop.cancelled(), if reading => {
                reading = false;
                end.get_or_insert_with(|| status::fail(broker.metrics(), &BrokerError::ShuttingDown, rpc));
            }
            permit = async { admission.as_mut()?.await }, if admission.is_some() => {
                admission = None;
                let (Some(permit), Some((name, events, charge))) = (permit, waiting.take()) else {
                    // The budget never closes; treat it like shutdown.
                    end.get_or_insert_with(|| status::fail(broker.metrics(), &BrokerError::ShuttingDown, rpc));
                    reading = false;
                    continue;
                };
                let broker = broker.clone();
                if let Some(msg) = &refusal {
                    let receipt = super::faults::refused_receipt(&broker, &name, &events, msg);
                    drop(permit);
                    inflight.push_back(Box::pin(async move { (Ok(receipt), charge) }));
                    continue;
                }
                inflight.push_back(Box::pin(async move {
                    let receipt = broker.publish(&name, events).await;
                    drop(permit);
                    (receipt, charge)
                }));
            }
            waited = first_deadline.passed(), if reading && topic.is_none() => {
                reading = false;
                end = Some(status::refuse(broker.metrics(), &ProtocolError::PublishRequestTimeout(waited), rpc));
            }
            read = async {
                // Room first: a client that does not read its answers makes
                // the stream stop reading requests.
                if let Some(pace) = &pace
                    && let Err(e) = pace.room().await
                {
                    return Read::NoRoom(e);
                }
                Read::Message(requests.next().await)
            }, if reading && admission.is_none() && inflight.len() < window => match read {
                Read::NoRoom(e) => {
                    end = Some(super::pacing::publish_refused(broker.metrics(), &e, rpc));
                    reading = false;
                }
                Read::Message(Ok(Some(req))) => {
                    // Its share of the budget: at least 1 KiB, at most the
                    // whole budget (a request bigger than it goes alone).
                    let kib = u32::try_from((req.encoded_len() / 1024).clamp(1, BUDGET_KIB))
                        .unwrap_or(1);
                    let (n_events, n_bytes) = (req.events.len(), super::payload_bytes(&req));
                    // Counted from now: the request is in memory, and its
                    // answer will be until tonic takes it.
                    let charge = pace.as_ref().map(|p| p.charge(req.encoded_len(), n_events));
                    let name = match &topic {
                        None => {
                            if req.topic_name.trim().is_empty() {
                                end = Some(status::fail(broker.metrics(), &BrokerError::PublishTopicBlank, rpc));
                                reading = false;
                                continue;
                            }
                            span.record("topic", req.topic_name.as_str());
                            if !caller.grants.can_publish(&req.topic_name) {
                                end = Some(super::publish_denied(&broker, &req.topic_name, rpc));
                                reading = false;
                                continue;
                            }
                            topic = Some(req.topic_name.clone());
                            if let Some((f, ctx, plan_tx)) = faults.take() {
                                let plan = f.plan(&caller, crate::faults::Rpc::PublishStream, &req.topic_name, &ctx);
                                refusal = plan.refusal();
                                // The answers stream waits for it.
                                let _ = plan_tx.send(plan);
                            }
                            req.topic_name
                        }
                        Some(t) if !req.topic_name.is_empty() && &req.topic_name != t => {
                            end = Some(status::refuse(broker.metrics(),
                                &ProtocolError::PublishTopicMismatch { first: t.clone(), got: req.topic_name },
                                rpc,
                            ));
                            reading = false;
                            continue;
                        }
                        Some(t) => t.clone(),
                    };
                    if let Err(hit) = limits.charge_publish(&caller.tenant, n_events, n_bytes) {
                        end = Some(status::limited(broker.metrics(), &hit, rpc));
                        reading = false;
                        continue;
                    }
                    let budget = budget.clone();
                    admission = Some(Box::pin(async move { budget.acquire_many_owned(kib).await.ok() }));
                    let stored = match ns.inward(&name) {
                        Ok(stored) => stored,
                        Err(e) => {
                            end = Some(status::fail(broker.metrics(), &e, rpc));
                            reading = false;
                            continue;
                        }
                    };
                    waiting = Some((stored, convert::publish_events(req.events), charge));
                }
                // Half-close: answer what is in flight, then end with OK.
                Read::Message(Ok(None)) => reading = false,
                // A request over the size limit: the client is still there,
                // so it learns why after the requests before it are answered.
                Read::Message(Err(ReadError::TooLarge(limit))) => {
                    end = Some(status::refuse(broker.metrics(), &ProtocolError::RequestTooLarge(limit), rpc));
                    reading = false;
                }
                Read::Message(Err(ReadError::Broken(st))) => {
                    tracing::debug!(status = %st, "publish stream transport error");
                    reading = false;
                }
            },
            else => break,
        }
    }
    if let Some(st) = end {
        let _ = out.send((Err(st), None)).await;
    }
}
