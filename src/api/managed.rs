//! The ManagedSubscribe RPC: first request, credit and commit reader,
//! delivery stream.
//!
//! Owns: turning a `Streaming<ManagedFetchRequest>` into broker controls
//! and broker deliveries into `ManagedFetchResponse`s.
//! Must not: decide where a stream starts or what may be committed (the
//! broker's managed subscriptions do).

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::stream::Requests;
use super::{Namespace, ProtocolError, PubSubService, convert, pb, status};
use crate::auth::Caller;
use crate::broker::{CommitRequest, Control, ManagedRef};
use crate::error::ErrorCode;
use crate::log::now_ms;
use crate::types::{ManagedId, RpcId};

/// The response stream of ManagedSubscribe.
pub type ManagedStream =
    Pin<Box<dyn Stream<Item = Result<pb::ManagedFetchResponse, Status>> + Send>>;

/// Responses buffered towards tonic (as Subscribe).
const OUTBOUND_QUEUE: usize = 2;

/// The subscription a first request names.
///
/// # Errors
/// A commit or `auth_refresh` in the first request, negative credit, no
/// name or both names.
fn named(first: &pb::ManagedFetchRequest) -> Result<ManagedRef, ProtocolError> {
    if first.commit_replay_id_request.is_some() {
        return Err(ProtocolError::ManagedCommitInFirst);
    }
    if !first.auth_refresh.is_empty() {
        return Err(ProtocolError::ManagedAuthRefreshInFirst);
    }
    if first.num_requested < 0 {
        return Err(ProtocolError::ManagedCreditInvalid(first.num_requested));
    }
    match (
        first.subscription_id.trim().is_empty(),
        first.developer_name.trim().is_empty(),
    ) {
        (true, true) => Err(ProtocolError::ManagedUnnamed),
        (false, false) => Err(ProtocolError::ManagedNamedTwice),
        (false, true) => Ok(ManagedRef::Id(first.subscription_id.clone())),
        (true, false) => Ok(ManagedRef::Name(first.developer_name.clone())),
    }
}

/// Whether a later request names another subscription than the first did.
fn renamed(first: &ManagedRef, id: &str, req: &pb::ManagedFetchRequest) -> Option<String> {
    if !req.subscription_id.is_empty() {
        let same = ManagedId::parse(&req.subscription_id).is_ok_and(|got| got.as_str() == id);
        if !same {
            return Some(req.subscription_id.clone());
        }
    }
    if !req.developer_name.is_empty()
        && matches!(first, ManagedRef::Name(n) if *n != req.developer_name)
    {
        return Some(req.developer_name.clone());
    }
    None
}

/// Reads the first request, opens the managed subscription and starts its
/// delivery loop, listed with `origin`.
pub(super) async fn start(
    svc: &PubSubService,
    caller: &Caller,
    inbound: Streaming<pb::ManagedFetchRequest>,
    (budget, origin): (
        Option<std::sync::Arc<crate::transport::ConnBudget>>,
        crate::broker::StreamOrigin,
    ),
    rpc: RpcId,
    span: tracing::Span,
    ctx: &super::faults::CallCtx,
) -> Result<ManagedStream, Status> {
    let metrics = svc.broker.metrics();
    let mut requests = Requests::new(inbound);
    let first = requests
        .first(svc.cfg.first_request_timeout)
        .await
        .map_err(|no| no.status(metrics, rpc))?;
    let ns = Namespace::of(&caller.tenant);
    let fail = |e| ns.scrub(status::fail(metrics, &e, rpc));
    let reference = named(&first).map_err(|e| ns.scrub(status::refuse(metrics, &e, rpc)))?;
    let view = svc
        .broker
        .describe_managed(&caller.tenant, &reference)
        .map_err(fail)?;
    let topic_name = ns
        .outward(&view.record.topic)
        .unwrap_or(&view.record.topic)
        .to_owned();
    span.record("topic", topic_name.as_str());
    if !caller.grants.can_subscribe(&topic_name) {
        return Err(status::denied(
            metrics,
            ErrorCode::SubscriptionTopicCannotSubscribe,
            &format!(
                "Subscribing to {topic_name} (managed subscription {}) is not permitted for this caller.",
                view.record.developer_name
            ),
            rpc,
        ));
    }
    // What the fault rules do to this stream (nothing unless they are on).
    let plan = svc.plan(
        caller,
        crate::faults::Rpc::ManagedSubscribe,
        &topic_name,
        ctx,
    );
    let slot = svc
        .limits
        .open_subscription(&caller.tenant)
        .map_err(|hit| status::limited(metrics, &hit, rpc))?;
    let open = svc
        .broker
        .open_managed(&caller.tenant, &reference)
        .await
        .map_err(fail)?;
    let id = open.session.id();
    tracing::info!(subscription = %id, name = %open.session.developer_name(), start_after = %open.subscription.cursor(), "managed subscription stream opened");

    // Later requests: credit, commits, or a request that ends the stream.
    let (controls, refusal) = requests.controls(move |req: pb::ManagedFetchRequest| {
        if let Some(got) = renamed(&reference, &id, &req) {
            return Err(ProtocolError::ManagedMismatch {
                first: match &reference {
                    ManagedRef::Id(s) | ManagedRef::Name(s) => s.clone(),
                },
                got,
            });
        }
        if req.num_requested < 0 {
            return Err(ProtocolError::ManagedCreditInvalid(req.num_requested));
        }
        let mut out = Vec::with_capacity(2);
        if let Some(c) = req.commit_replay_id_request {
            out.push(Control::Commit(CommitRequest {
                request_id: c.commit_request_id,
                replay_id: c.replay_id.to_vec(),
                received_ms: now_ms(),
            }));
        }
        if req.num_requested > 0 {
            out.push(Control::Grant(req.num_requested.unsigned_abs()));
        }
        Ok(out)
    });
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let stop = svc.stop.clone();
    let initial = first.num_requested.unsigned_abs();
    let subscription = open.subscription.with_origin(origin);
    // Reads paced by the connection's response budget (see super::pacing).
    let (subscription, ending) = match budget {
        Some(budget) => {
            let (pace, ending) =
                super::pacing::StreamPace::new(budget, svc.cfg.stuck_client_timeout);
            (subscription.paced(pace), Some(ending))
        }
        None => (subscription, None),
    };
    svc.tasks.spawn(
        async move {
            let _slot = slot;
            subscription
                .run(initial, controls, out_tx, stop, Some(open.session))
                .await;
        }
        .instrument(span),
    );

    let metrics = metrics.clone();
    let stream = ReceiverStream::new(out_rx).map({
        let (metrics, ns) = (metrics.clone(), ns.clone());
        move |item| {
            item.map(|d| convert::managed_response(d, rpc))
                .map_err(|e| ns.scrub(status::fail(&metrics, &e, rpc)))
        }
    });
    // A request that failed the subscription: why, after its deliveries.
    let refused = refusal.ending(metrics.clone(), ns, rpc);
    // A stream its client stopped reading ends with why.
    let why =
        futures_util::stream::once(async move { ending.and_then(|e| e.status(&metrics, rpc)) })
            .filter_map(|st| st.map(Err));
    Ok(plan.wrap(
        Box::pin(stream.chain(refused).chain(why)),
        rpc,
        svc.broker.config().keepalive,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, name: &str) -> pb::ManagedFetchRequest {
        pb::ManagedFetchRequest {
            subscription_id: id.into(),
            developer_name: name.into(),
            num_requested: 10,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_request_names_exactly_one_subscription() {
        assert!(matches!(
            named(&req("", "")),
            Err(ProtocolError::ManagedUnnamed)
        ));
        assert!(matches!(
            named(&req("18xAAAAAAAAAAAAAAA", "A")),
            Err(ProtocolError::ManagedNamedTwice)
        ));
        assert_eq!(
            named(&req("", "A")).ok(),
            Some(ManagedRef::Name("A".into()))
        );
        let mut with_commit = req("", "A");
        with_commit.commit_replay_id_request = Some(pb::CommitReplayRequest::default());
        assert!(matches!(
            named(&with_commit),
            Err(ProtocolError::ManagedCommitInFirst)
        ));
        let mut with_refresh = req("", "A");
        with_refresh.auth_refresh = "x".into();
        assert!(matches!(
            named(&with_refresh),
            Err(ProtocolError::ManagedAuthRefreshInFirst)
        ));
        let mut negative = req("", "A");
        negative.num_requested = -1;
        assert!(matches!(
            named(&negative),
            Err(ProtocolError::ManagedCreditInvalid(-1))
        ));
    }

    #[test]
    fn later_requests_may_repeat_or_omit_the_name_but_not_change_it() {
        let id = ManagedId::generate();
        let by_id = ManagedRef::Id(id.to_string());
        assert_eq!(renamed(&by_id, id.as_str(), &req("", "")), None);
        assert_eq!(renamed(&by_id, id.as_str(), &req(id.as_str(), "")), None);
        assert_eq!(
            renamed(&by_id, id.as_str(), &req(&id.as_str()[..15], "")),
            None
        );
        assert!(renamed(&by_id, id.as_str(), &req("18xBBBBBBBBBBBBBBB", "")).is_some());
        let by_name = ManagedRef::Name("A".into());
        assert_eq!(renamed(&by_name, id.as_str(), &req("", "A")), None);
        assert!(renamed(&by_name, id.as_str(), &req("", "B")).is_some());
    }
}
