//! The Subscribe RPC: first request, credit reader, delivery stream.
//!
//! Owns: turning a `Streaming<FetchRequest>` into broker controls and a
//! broker delivery channel into a `FetchResponse` stream.
//! Must not: decide what to deliver (the broker's subscription does).

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::stream::Requests;
use super::{ProtocolError, PubSubService, convert, pb, status};
use crate::auth::Caller;
use crate::broker::Control;
use crate::error::ErrorCode;
use crate::types::RpcId;

/// The response stream of Subscribe.
pub type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>>;

/// Responses buffered towards tonic: one being written and one ready, so a
/// slow client stalls the delivery loop instead of growing memory.
const OUTBOUND_QUEUE: usize = 2;

/// Reads the first request, opens the subscription and starts its tasks.
/// With its connection's `budget`, reads are paced by it (see
/// [`super::pacing`]); the stream is listed with `origin`.
pub(super) async fn start(
    svc: &PubSubService,
    caller: &Caller,
    inbound: Streaming<pb::FetchRequest>,
    (budget, origin): (
        Option<std::sync::Arc<crate::transport::ConnBudget>>,
        crate::broker::StreamOrigin,
    ),
    rpc: RpcId,
    span: tracing::Span,
    ctx: &super::faults::CallCtx,
) -> Result<FetchStream, Status> {
    let refuse = |e: ProtocolError| status::refuse(svc.broker.metrics(), &e, rpc);
    let mut requests = Requests::new(inbound);
    let first = requests
        .first(svc.cfg.first_request_timeout)
        .await
        .map_err(|no| no.status(svc.broker.metrics(), rpc))?;
    span.record("topic", first.topic_name.as_str());
    if !first.topic_name.trim().is_empty() && !caller.grants.can_subscribe(&first.topic_name) {
        return Err(status::denied(
            svc.broker.metrics(),
            ErrorCode::SubscriptionTopicCannotSubscribe,
            &format!(
                "Subscribing to {} is not permitted for this caller, or the topic does not exist.",
                crate::types::Echo(&first.topic_name)
            ),
            rpc,
        ));
    }
    if first.num_requested <= 0 {
        return Err(refuse(ProtocolError::CreditInvalid(first.num_requested)));
    }
    // What the fault rules do to this stream (nothing unless they are on).
    let plan = svc.plan(
        caller,
        crate::faults::Rpc::Subscribe,
        &first.topic_name,
        ctx,
    );
    // Held by the subscription's task: the tenant's count drops when it ends.
    let slot = svc
        .limits
        .open_subscription(&caller.tenant)
        .map_err(|hit| status::limited(svc.broker.metrics(), &hit, rpc))?;
    let ns = super::Namespace::of(&caller.tenant);
    let fail = |e| ns.scrub(status::fail(svc.broker.metrics(), &e, rpc));
    let stored = ns.inward(&first.topic_name).map_err(fail)?;
    let sub = svc
        .broker
        .subscribe(&stored, convert::start(&first))
        .map_err(fail)?
        .with_origin(origin);
    tracing::debug!(start_after = %sub.cursor(), "subscription opened");
    let (sub, ending) = match budget {
        Some(budget) => {
            let (pace, ending) =
                super::pacing::StreamPace::new(budget, svc.cfg.stuck_client_timeout);
            (sub.paced(pace), Some(ending))
        }
        None => (sub, None),
    };
    // Later requests repeat the name the client used.
    let topic = first.topic_name.clone();

    // Later requests become credit or a failure, read by the subscription's
    // own loop: no extra task or queue per subscription, and a request the
    // loop has not read yet stays in HTTP/2 flow control.
    let (controls, refusal) = requests.controls(move |req: pb::FetchRequest| {
        if !req.topic_name.is_empty() && req.topic_name != topic {
            return Err(ProtocolError::SubscribeTopicMismatch {
                first: topic.clone(),
                got: req.topic_name,
            });
        }
        if req.num_requested < 0 {
            return Err(ProtocolError::CreditInvalid(req.num_requested));
        }
        Ok((req.num_requested > 0).then(|| Control::Grant(req.num_requested.unsigned_abs())))
    });
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let stop = svc.stop.clone();
    let initial = first.num_requested.unsigned_abs();
    svc.tasks.spawn(
        async move {
            let _slot = slot;
            sub.run(initial, controls, out_tx, stop, None).await
        }
        .instrument(span),
    );

    let metrics = svc.broker.metrics().clone();
    // A failure mid-stream quotes the stored name too (`The topic … was
    // deleted.`): the caller sees its own.
    let stream = ReceiverStream::new(out_rx).map({
        let (metrics, ns) = (metrics.clone(), ns.clone());
        move |item| {
            item.map(|d| convert::fetch_response(d, rpc))
                .map_err(|e| ns.scrub(status::fail(&metrics, &e, rpc)))
        }
    });
    // A request that failed the subscription: why, after its deliveries.
    let refused = refusal.ending(metrics.clone(), ns, rpc);
    // A stream its client stopped reading ends with why, once its loop gave
    // up waiting for room.
    let why =
        futures_util::stream::once(async move { ending.and_then(|e| e.status(&metrics, rpc)) })
            .filter_map(|st| st.map(Err));
    Ok(plan.wrap(
        Box::pin(stream.chain(refused).chain(why)),
        rpc,
        svc.broker.config().keepalive,
    ))
}
