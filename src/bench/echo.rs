//! `eventbus bench-echo`: a bare tonic server speaking `eventbus.v1.PubSub`,
//! the gRPC ceiling that `bench/compare.sh` measures the real server against.
//!
//! Owns: an in-memory echo of the Pub/Sub service (Publish, PublishStream,
//! Subscribe, GetTopic, GetSchema) with tonic's default server settings, and
//! the bounded list of published events that Subscribe streams back (one
//! list for every topic name: the load generator uses one topic at a time).
//! Must not: authenticate, validate, store to disk, keep metrics, trace per
//! call or use the real server's modules beyond the generated `pb` types:
//! whatever it does
//! per call is the floor under "tonic + prost + HTTP/2 + the load
//! generator", so every line here is a cost the real server also pays.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use clap::Args;
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use super::payload;
use crate::api::pb;
use crate::api::pb::pub_sub_server::{PubSub, PubSubServer};

/// The schema id the echo server reports for every topic; `eventbus bench
/// --target echo` publishes with it instead of creating a topic.
pub(crate) const SCHEMA_ID: &str = "BenchEchoSchema0";

/// HTTP/2 flow-control windows: the same as the real server's, so the
/// ceiling is not held back by a smaller window than the server it bounds
/// (with tonic's 64 KiB default, 8 requests of 100 KiB in flight stall).
const STREAM_WINDOW: u32 = 512 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Responses buffered per Subscribe stream before the sender waits.
const SUBSCRIBE_BUFFER: usize = 4;

/// Settings of `eventbus bench-echo`.
#[derive(Clone, Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Published events kept in memory for Subscribe (the oldest go first).
    #[arg(long, default_value_t = 250_000)]
    pub keep_events: usize,
}

/// The published events still kept: `events[0]` has offset `base`.
#[derive(Default)]
struct Kept {
    base: u64,
    events: VecDeque<pb::ConsumerEvent>,
}

impl Kept {
    fn next(&self) -> u64 {
        self.base + self.events.len() as u64
    }
}

/// The service: published events in memory, and a watch of their count
/// that wakes subscribers waiting for new ones.
struct Echo {
    kept: Mutex<Kept>,
    keep: usize,
    tail: watch::Sender<u64>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// A replay id: the event's offset, 8 bytes big-endian.
fn replay_id(offset: u64) -> Bytes {
    Bytes::copy_from_slice(&offset.to_be_bytes())
}

fn offset_of(replay_id: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(replay_id.try_into().ok()?))
}

impl Echo {
    fn new(keep: usize, stop: CancellationToken, tasks: TaskTracker) -> Self {
        Echo {
            kept: Mutex::new(Kept::default()),
            keep: keep.max(1),
            tail: watch::Sender::new(0),
            stop,
            tasks,
        }
    }

    /// Appends the request's events and answers one result per event.
    fn publish(&self, req: pb::PublishRequest) -> pb::PublishResponse {
        let schema_id = req
            .events
            .first()
            .map(|e| e.schema_id.clone())
            .unwrap_or_default();
        let mut results = Vec::with_capacity(req.events.len());
        let next = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            for event in req.events {
                let id = replay_id(kept.next());
                results.push(pb::PublishResult {
                    replay_id: id.clone(),
                    error: None,
                    correlation_key: event.id.clone(),
                });
                kept.events.push_back(pb::ConsumerEvent {
                    event: Some(event),
                    replay_id: id,
                });
            }
            let excess = kept.events.len().saturating_sub(self.keep);
            if excess > 0 {
                kept.events.drain(..excess);
                kept.base += excess as u64;
            }
            kept.next()
        };
        self.tail.send_replace(next);
        pb::PublishResponse {
            results,
            schema_id,
            rpc_id: String::new(),
        }
    }

    /// Up to `max` events from `from` (moved up to the oldest kept), and
    /// the offset after them.
    fn read(&self, from: u64, max: usize) -> (Vec<pb::ConsumerEvent>, u64) {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let from = from.max(kept.base);
        let skip = usize::try_from(from - kept.base).unwrap_or(usize::MAX);
        let events: Vec<_> = kept.events.iter().skip(skip).take(max).cloned().collect();
        let after = from + events.len() as u64;
        (events, after)
    }

    /// Where a subscription starts.
    fn start(&self, first: &pb::FetchRequest) -> u64 {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        match pb::ReplayPreset::try_from(first.replay_preset) {
            Ok(pb::ReplayPreset::Earliest) => kept.base,
            Ok(pb::ReplayPreset::Custom) => {
                offset_of(&first.replay_id).map_or(kept.next(), |o| o.saturating_add(1))
            }
            _ => kept.next(),
        }
    }
}

/// The service handle tonic holds.
#[derive(Clone)]
struct EchoService(Arc<Echo>);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Streams events to one subscriber as its credit allows, until the
/// subscriber or the server goes away.
async fn deliver(
    echo: Arc<Echo>,
    first: pb::FetchRequest,
    mut requests: Streaming<pb::FetchRequest>,
    out: mpsc::Sender<Result<pb::FetchResponse, Status>>,
) {
    let mut position = echo.start(&first);
    let mut credit = i64::from(first.num_requested.max(0));
    let mut tail = echo.tail.subscribe();
    let mut requests_open = true;
    loop {
        if credit > 0 {
            let want = usize::try_from(credit).unwrap_or(usize::MAX);
            let (events, after) = echo.read(position, want);
            if !events.is_empty() {
                credit -= events.len() as i64;
                position = after;
                let resp = pb::FetchResponse {
                    latest_replay_id: replay_id(after - 1),
                    events,
                    rpc_id: String::new(),
                    pending_num_requested: i32::try_from(credit).unwrap_or(i32::MAX),
                };
                if out.send(Ok(resp)).await.is_err() {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = echo.stop.cancelled() => return,
            r = requests.message(), if requests_open => match r {
                Ok(Some(req)) => credit = credit.saturating_add(i64::from(req.num_requested.max(0))),
                // A half-closed request stream keeps the subscription
                // going on the credit it has.
                Ok(None) => requests_open = false,
                Err(_) => return,
            },
            changed = tail.changed(), if credit > 0 => {
                if changed.is_err() {
                    return;
                }
            }
            _ = out.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl PubSub for EchoService {
    type SubscribeStream = BoxStream<pb::FetchResponse>;
    type PublishStreamStream = BoxStream<pb::PublishResponse>;
    type ManagedSubscribeStream = BoxStream<pb::ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<pb::FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("Subscribe needs a first FetchRequest"))?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_BUFFER);
        self.0
            .tasks
            .spawn(deliver(self.0.clone(), first, requests, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_schema(
        &self,
        request: Request<pb::SchemaRequest>,
    ) -> Result<Response<pb::SchemaInfo>, Status> {
        Ok(Response::new(pb::SchemaInfo {
            schema_json: payload::SCHEMA.to_owned(),
            schema_id: request.into_inner().schema_id,
            rpc_id: String::new(),
        }))
    }

    async fn get_topic(
        &self,
        request: Request<pb::TopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        Ok(Response::new(pb::TopicInfo {
            topic_name: request.into_inner().topic_name,
            tenant_guid: "00Dechoechoecho".to_owned(),
            can_publish: true,
            can_subscribe: true,
            schema_id: SCHEMA_ID.to_owned(),
            rpc_id: String::new(),
        }))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        Ok(Response::new(self.0.publish(request.into_inner())))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<pb::PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let echo = self.0.clone();
        let answers = request
            .into_inner()
            .map(move |r| r.map(|req| echo.publish(req)));
        Ok(Response::new(Box::pin(answers)))
    }

    async fn managed_subscribe(
        &self,
        _request: Request<Streaming<pb::ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        Err(Status::unimplemented(
            "the echo server has no managed subscriptions",
        ))
    }
}

/// Serves the echo service on `listener` until `stop` is cancelled.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    keep_events: usize,
    stop: CancellationToken,
) -> Result<()> {
    let tasks = TaskTracker::new();
    let echo = Arc::new(Echo::new(keep_events, stop.clone(), tasks.clone()));
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let svc = PubSubServer::new(EchoService(echo))
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20);
    let served = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned())
        .await;
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    served.map_err(|e| anyhow!("echo server: {e}"))
}

/// `eventbus bench-echo`: binds, prints `listening on ADDR`, serves until
/// SIGINT or SIGTERM.
///
/// # Errors
/// The address cannot be bound, or the server failed.
pub async fn run(args: EchoArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr()?;
    // Scripts read the port from this line when started on :0.
    println!("eventbus bench-echo listening on {local}");
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                    _ = on_signal.cancelled() => {}
                }
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = on_signal.cancelled() => {}
                }
            }
        }
        on_signal.cancel();
    });
    let served = serve(listener, args.keep_events, stop.clone()).await;
    stop.cancel();
    let _ = signals.await;
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> pb::ProducerEvent {
        pb::ProducerEvent {
            id: id.to_owned(),
            schema_id: SCHEMA_ID.to_owned(),
            payload: payload::encode(1, 64).into(),
            headers: vec![],
        }
    }

    fn echo(keep: usize) -> Echo {
        Echo::new(keep, CancellationToken::new(), TaskTracker::new())
    }

    #[test]
    fn publish_answers_one_result_per_event_with_ids_in_order() {
        let e = echo(10);
        let resp = e.publish(pb::PublishRequest {
            topic_name: "/event/X__e".into(),
            events: vec![event("a"), event("b")],
            auth_refresh: String::new(),
        });
        assert_eq!(resp.results.len(), 2);
        assert_eq!(resp.results[0].correlation_key, "a");
        assert_eq!(resp.results[1].correlation_key, "b");
        assert_eq!(offset_of(&resp.results[0].replay_id), Some(0));
        assert_eq!(offset_of(&resp.results[1].replay_id), Some(1));
        assert_eq!(resp.schema_id, SCHEMA_ID);
        assert_eq!(*e.tail.borrow(), 2);
    }

    #[test]
    fn only_the_newest_events_are_kept_and_reads_start_at_the_oldest() {
        let e = echo(3);
        for id in ["a", "b", "c", "d", "e"] {
            e.publish(pb::PublishRequest {
                events: vec![event(id)],
                ..Default::default()
            });
        }
        let (events, after) = e.read(0, 10);
        let ids: Vec<_> = events
            .iter()
            .filter_map(|c| c.event.as_ref().map(|p| p.id.as_str()))
            .collect();
        assert_eq!(ids, ["c", "d", "e"]);
        assert_eq!(after, 5);
        let (events, after) = e.read(3, 1);
        assert_eq!(events.len(), 1);
        assert_eq!(after, 4);
        assert!(e.read(5, 10).0.is_empty());
    }

    #[test]
    fn subscriptions_start_where_their_preset_says() {
        let e = echo(10);
        e.publish(pb::PublishRequest {
            events: vec![event("a"), event("b")],
            ..Default::default()
        });
        let at = |preset: pb::ReplayPreset, id: &[u8]| {
            e.start(&pb::FetchRequest {
                replay_preset: preset as i32,
                replay_id: Bytes::copy_from_slice(id),
                ..Default::default()
            })
        };
        assert_eq!(at(pb::ReplayPreset::Earliest, b""), 0);
        assert_eq!(at(pb::ReplayPreset::Latest, b""), 2);
        assert_eq!(at(pb::ReplayPreset::Custom, &0u64.to_be_bytes()), 1);
        assert_eq!(at(pb::ReplayPreset::Custom, b"bad"), 2);
    }
}
