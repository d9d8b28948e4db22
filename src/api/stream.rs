//! The request side of the streaming RPCs (Subscribe, ManagedSubscribe,
//! PublishStream).
//!
//! Owns: [`Refusal`], how a request that ends a subscription reaches the
//! client: the broker ends the subscription on [`Control::Fail`] without
//! knowing why, and the response stream ends with the remembered error once
//! the deliveries before it are sent.
//! Must not: interpret requests (each RPC does) or build statuses
//! ([`super::status`] does).

use std::sync::{Arc, OnceLock};

use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::ProtocolError;
use super::namespace::Namespace;
use super::status;
use crate::broker::Control;
use crate::telemetry::metrics::Metrics;
use crate::types::RpcId;

/// Why a subscription's controls ended it, shared between the controls
/// (which fail it) and the response stream (which tells the client).
#[derive(Clone, Default)]
pub(super) struct Refusal(Arc<OnceLock<ProtocolError>>);

impl Refusal {
    /// [`Control::Fail`], remembering `why`. The subscription ends at the
    /// first one, so there is no second.
    pub(super) fn fail(&self, why: ProtocolError) -> Control {
        let _ = self.0.set(why);
        Control::Fail
    }

    /// Appended to a subscription's response stream: ends it with the
    /// remembered error (counted, stored names scrubbed), if a control
    /// failed the subscription. Looked at only once the deliveries before
    /// it have all been taken.
    pub(super) fn ending<R>(
        self,
        metrics: Arc<Metrics>,
        ns: Namespace,
        rpc: RpcId,
    ) -> impl Stream<Item = Result<R, Status>> + Send {
        futures_util::stream::once(async move {
            self.0
                .get()
                .map(|why| Err(ns.scrub(status::refuse(&metrics, why, rpc))))
        })
        .filter_map(|end| end)
    }
}
