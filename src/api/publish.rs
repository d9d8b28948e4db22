//! The PublishStream RPC: pipelined publish requests, one response each.
//!
//! Owns: the per-stream topic rule, the in-flight window and response order.
//! Must not: validate events (the broker does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::{PubSubService, convert, pb, status};
use crate::broker::{Broker, BrokerError, PublishReceipt};
use crate::types::RpcId;

/// The response stream of PublishStream.
pub type PublishResponseStream =
    Pin<Box<dyn Stream<Item = Result<pb::PublishResponse, Status>> + Send>>;

type InFlight = Pin<Box<dyn Future<Output = Result<PublishReceipt, BrokerError>> + Send>>;

/// Starts the stream's task and returns its response stream.
pub(super) fn start(
    svc: &PubSubService,
    inbound: Streaming<pb::PublishRequest>,
    rpc: RpcId,
    span: tracing::Span,
) -> PublishResponseStream {
    let window = svc.cfg.publish_stream_window.max(1);
    let (out_tx, out_rx) = mpsc::channel(window);
    svc.tasks.spawn(
        run(
            svc.broker.clone(),
            inbound,
            out_tx,
            svc.stop.clone(),
            window,
            rpc,
            span.clone(),
        )
        .instrument(span),
    );
    Box::pin(ReceiverStream::new(out_rx))
}

/// Reads requests while fewer than `window` are in flight, publishes each,
/// and answers in request order as each becomes durable. A bad request ends
/// the stream with its status after the requests before it are answered.
async fn run(
    broker: Arc<Broker>,
    mut inbound: Streaming<pb::PublishRequest>,
    out: mpsc::Sender<Result<pb::PublishResponse, Status>>,
    stop: CancellationToken,
    window: usize,
    rpc: RpcId,
    span: tracing::Span,
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
    let mut topic: Option<String> = None;
    let mut inflight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut reading = true;
    let mut end: Option<Status> = None;
    loop {
        tokio::select! {
            // Answer finished requests before reading more: keeps memory
            // bounded by the window and responses prompt.
            biased;
            Some(res) = inflight.next(), if !inflight.is_empty() => match res {
                Ok(receipt) => {
                    if out.send(Ok(convert::publish_response(receipt, rpc))).await.is_err() {
                        // The client is gone. Appends already queued still
                        // commit; there is nobody left to tell.
                        return;
                    }
                }
                Err(e) => {
                    end.get_or_insert_with(|| status::fail(broker.metrics(), &e, rpc));
                    reading = false;
                }
            },
            _ = stop.cancelled(), if reading => {
                reading = false;
                end.get_or_insert_with(|| status::fail(broker.metrics(), &BrokerError::ShuttingDown, rpc));
            }
            msg = inbound.message(), if reading && inflight.len() < window => match msg {
                Ok(Some(req)) => {
                    let name = match &topic {
                        None => {
                            if req.topic_name.trim().is_empty() {
                                end = Some(status::fail(broker.metrics(), &BrokerError::PublishTopicBlank, rpc));
                                reading = false;
                                continue;
                            }
                            span.record("topic", req.topic_name.as_str());
                            topic = Some(req.topic_name.clone());
                            req.topic_name
                        }
                        Some(t) if !req.topic_name.is_empty() && &req.topic_name != t => {
                            end = Some(status::fail(broker.metrics(),
                                &BrokerError::PublishTopicMismatch { first: t.clone(), got: req.topic_name },
                                rpc,
                            ));
                            reading = false;
                            continue;
                        }
                        Some(t) => t.clone(),
                    };
                    let broker = broker.clone();
                    let events = convert::publish_events(req.events);
                    inflight.push_back(Box::pin(async move { broker.publish(&name, events).await }));
                }
                // Half-close: answer what is in flight, then end with OK.
                Ok(None) => reading = false,
                Err(st) => {
                    tracing::debug!(status = %st, "publish stream transport error");
                    reading = false;
                }
            },
            else => break,
        }
    }
    if let Some(st) = end {
        let _ = out.send(Err(st)).await;
    }
}
