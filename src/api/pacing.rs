//! Calls and streams paced by their connection's response budget, so a
//! client that stops reading stops getting more.
//!
//! Owns: [`PacingLayer`] (every call on the gRPC port waits for room before
//! its handler runs, a unary request is charged while it is handled, and
//! every response frame is charged until the connection writes it),
//! [`StreamPace`] (a subscription's reads, admitted one by one) and
//! [`PublishPace`] (a PublishStream's reads and answers), and how each ends
//! when its client stays stuck: `RESOURCE_EXHAUSTED` with
//! `service.client.too.slow` (or `service.response.budget.exhausted` when
//! the whole server is full).
//! Must not: count or release bytes itself beyond what it charges; the
//! transport's IO releases what it writes ([`crate::transport::budget`]).
//!
//! What is charged, and until when:
//! - a unary call: its request's length (from the gRPC message prefix,
//!   read before the handler runs) plus [`UNARY_ALLOWANCE`] (a Publish:
//!   [`PUBLISH_ALLOWANCE`]) for the work and the response, from admission
//!   until its handler returns;
//! - every response frame (all calls): from when hyper takes it until the
//!   connection writes it;
//! - a subscription read: [`crate::broker::BrokerConfig`]'s
//!   `max_response_bytes` reserved before the read, shrunk to what was read,
//!   until the response is handed to tonic;
//! - a PublishStream request: its length plus an estimate of the memory
//!   its events take while handled and answered, from when it is read
//!   until its answer is handed to tonic.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::{Code, Status};

use super::status;
use crate::broker::{Held, Hold, Pace, PaceAdmission};
use crate::telemetry::metrics::Metrics;
use crate::transport::{BudgetError, ConnBudget, ConnInfo, Reservation};
use crate::types::RpcId;

/// Charged for a unary call besides its request, while its handler runs:
/// the handler's working memory and its response until tonic encodes it
/// (then the response is charged frame by frame instead).
pub const UNARY_ALLOWANCE: usize = 16 * 1024;

/// [`UNARY_ALLOWANCE`] of a Publish, the one unary call whose handler
/// grows with its request: each event is decoded, converted, validated and
/// answered, about 550 bytes of memory per event besides its payload, so a
/// request of 10,000 small events (260 KiB on the wire) takes about 6 MiB
/// while it is handled and answers with about 1 MiB. It also caps the
/// Publish calls handled at once per connection (fewer than 8 with the
/// default 8 MiB budget; a client that wants more in flight opens more
/// connections), which bounds what a client that does not read can make
/// the server build before its budget closes.
pub const PUBLISH_ALLOWANCE: usize = 1024 * 1024;

/// The unary Publish method.
const PUBLISH_METHOD: &str = "/eventbus.v1.PubSub/Publish";

/// Length of the gRPC message prefix: a compression flag and a 4-byte
/// big-endian length.
const GRPC_PREFIX: usize = 5;

/// Methods whose request is a stream: admitted without waiting for their
/// first message (their handlers bound that wait themselves) and charged
/// nothing until they produce.
const STREAMING_METHODS: [&str; 6] = [
    "/eventbus.v1.PubSub/Subscribe",
    "/eventbus.v1.PubSub/PublishStream",
    "/eventbus.v1.PubSub/ManagedSubscribe",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Settings of the pacing.
#[derive(Clone, Copy, Debug)]
pub struct PacingConfig {
    /// How long a call or stream waits for room before it ends.
    pub stuck_client_timeout: Duration,
    /// The gRPC decoding limit: a unary request is charged at most this
    /// (tonic refuses larger ones before buffering them).
    pub max_request_bytes: usize,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            stuck_client_timeout: Duration::from_secs(30),
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The budget of the connection a call came in on, if it has one.
pub fn budget_of<T>(request: &tonic::Request<T>) -> Option<Arc<ConnBudget>> {
    request
        .extensions()
        .get::<ConnInfo>()
        .and_then(|info| info.budget.clone())
}

/// `RESOURCE_EXHAUSTED` for a call that got no room in time, counted.
fn refused(metrics: &Metrics, err: &BudgetError, rpc: RpcId) -> Status {
    tracing::info!(rpc_id = %rpc, reason = %err, "call refused: response budget full");
    status::budget(metrics, err, rpc)
}

/// Wraps the gRPC services of the main port in [`Pacing`].
#[derive(Clone, Debug)]
pub struct PacingLayer {
    cfg: PacingConfig,
    metrics: Arc<Metrics>,
}

impl PacingLayer {
    /// The layer with `cfg`, counting refusals in `metrics`.
    pub fn new(cfg: PacingConfig, metrics: Arc<Metrics>) -> Self {
        Self { cfg, metrics }
    }
}

impl<S> tower_layer::Layer<S> for PacingLayer {
    type Service = Pacing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Pacing {
            inner,
            cfg: self.cfg,
            metrics: self.metrics.clone(),
        }
    }
}

/// Admission and response metering around the gRPC services (see the
/// module docs). Calls on connections without a budget pass unchanged.
#[derive(Clone, Debug)]
pub struct Pacing<S> {
    inner: S,
    cfg: PacingConfig,
    metrics: Arc<Metrics>,
}

impl<S> Service<http::Request<Body>> for Pacing<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let Some(budget) = req
            .extensions()
            .get::<ConnInfo>()
            .and_then(|i| i.budget.clone())
        else {
            return Box::pin(self.inner.call(req));
        };
        // The ready service goes with this call; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (cfg, metrics) = (self.cfg, self.metrics.clone());
        Box::pin(async move {
            let path = req.uri().path();
            let streaming = STREAMING_METHODS.contains(&path);
            let allowance = if path == PUBLISH_METHOD {
                PUBLISH_ALLOWANCE
            } else {
                UNARY_ALLOWANCE
            };
            let (req, charge) = if streaming {
                (req, 0)
            } else {
                let (parts, body) = req.into_parts();
                let (declared, body) = peek_length(body).await;
                let request = declared.filter(|n| *n <= cfg.max_request_bytes);
                (
                    http::Request::from_parts(parts, body),
                    request.unwrap_or(0) + allowance,
                )
            };
            let admitted = match budget.reserve(charge, cfg.stuck_client_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    let st = refused(&metrics, &e, RpcId::generate());
                    return Ok(st.into_http());
                }
            };
            let response = inner.call(req).await?;
            // The handler is done with the request; its response is charged
            // frame by frame from here.
            drop(admitted);
            Ok(response.map(|body| {
                Body::new(Metered {
                    inner: body,
                    budget,
                })
            }))
        })
    }
}

/// The length a unary request declares in its gRPC prefix, and its body
/// with what was read to learn it put back. `u32::MAX` for a compressed
/// message: its decoded size is only bounded by the decoding limit.
async fn peek_length(mut body: Body) -> (Option<usize>, Body) {
    use http_body::Body as _;
    let mut seen = Vec::new();
    let mut prefix = [0u8; GRPC_PREFIX];
    let mut have = 0;
    while have < GRPC_PREFIX {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let take = (GRPC_PREFIX - have).min(data.len());
                    prefix[have..have + take].copy_from_slice(&data[..take]);
                    have += take;
                }
                seen.push(Ok(frame));
            }
            Some(Err(e)) => {
                seen.push(Err(e));
                break;
            }
            None => break,
        }
    }
    let declared = (have == GRPC_PREFIX).then(|| {
        if prefix[0] != 0 {
            usize::MAX
        } else {
            let n = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
            usize::try_from(n).unwrap_or(usize::MAX)
        }
    });
    let replay = Replay {
        seen: seen.into(),
        rest: body,
    };
    (declared, Body::new(replay))
}

/// A request body whose first frames were read already.
struct Replay {
    seen: std::collections::VecDeque<Result<Frame<Bytes>, Status>>,
    rest: Body,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Some(frame) = self.seen.pop_front() {
            return Poll::Ready(Some(frame));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.seen.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let seen: u64 = self
            .seen
            .iter()
            .filter_map(|f| f.as_ref().ok()?.data_ref().map(|d| d.remaining() as u64))
            .sum();
        let rest = self.rest.size_hint();
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(rest.lower() + seen);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + seen);
        }
        hint
    }
}

/// A response body whose data frames are charged to the connection as
/// hyper takes them; the connection releases them as it writes them.
struct Metered {
    inner: Body,
    budget: Arc<ConnBudget>,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.budget.charge_unsent(data.remaining());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A [`Reservation`] as a subscription's [`Hold`].
struct Reserved(Reservation);

impl Held for Reserved {
    fn shrink_to(&mut self, bytes: usize) {
        self.0.shrink_to(bytes);
    }
}

/// Why a paced stream ended, once it did: the status its response stream
/// ends with.
#[derive(Clone, Debug, Default)]
pub struct Ending(Arc<OnceLock<BudgetError>>);

impl Ending {
    /// The status to end the stream with, when the pace ended it.
    pub fn status(&self, metrics: &Metrics, rpc: RpcId) -> Option<Status> {
        self.0.get().map(|e| refused(metrics, e, rpc))
    }
}

/// Admits a subscription's reads against its connection's budget.
#[derive(Debug)]
pub struct StreamPace {
    budget: Arc<ConnBudget>,
    patience: Duration,
    ending: Ending,
}

impl StreamPace {
    /// A pace on `budget`, waiting at most `patience` for room; a read that
    /// gets none ends the stream and records why in the returned [`Ending`].
    pub fn new(budget: Arc<ConnBudget>, patience: Duration) -> (Arc<Self>, Ending) {
        let ending = Ending::default();
        (
            Arc::new(Self {
                budget,
                patience,
                ending: ending.clone(),
            }),
            ending,
        )
    }
}

impl Pace for StreamPace {
    fn admit(&self, bytes: usize) -> PaceAdmission<'_> {
        Box::pin(async move {
            match self.budget.reserve(bytes, self.patience).await {
                Ok(r) => Some(Hold::new(Reserved(r))),
                Err(e) => {
                    let _ = self.ending.0.set(e);
                    None
                }
            }
        })
    }
}

/// Memory a PublishStream request of `events` events takes while it is
/// handled and answered, besides its encoded bytes: each event decoded,
/// converted, validated, its outcome and its answer (about 550 bytes per
/// event measured for events that all fail; see [`PUBLISH_ALLOWANCE`]).
fn publish_work_bytes(events: usize) -> usize {
    1024 + 512 * events
}

/// Paces a PublishStream: a request is read only while the connection has
/// room, and it is charged, with its answer, until the answer is handed to
/// tonic.
#[derive(Clone, Debug)]
pub struct PublishPace {
    budget: Arc<ConnBudget>,
    patience: Duration,
}

impl PublishPace {
    /// A pace on `budget` waiting at most `patience` for room.
    pub fn new(budget: Arc<ConnBudget>, patience: Duration) -> Self {
        Self { budget, patience }
    }

    /// Waits until the connection has room for another request.
    ///
    /// # Errors
    /// The reason when there was none within the patience.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn room(&self) -> Result<(), BudgetError> {
        self.budget.reserve(0, self.patience).await.map(drop)
    }

    /// Charges a request just read of `bytes` bytes and `events` events.
    pub fn charge(&self, bytes: usize, events: usize) -> Reservation {
        self.budget
            .force_reserve(bytes + publish_work_bytes(events))
    }
}

/// `RESOURCE_EXHAUSTED` ending a PublishStream that got no room in time.
pub fn publish_refused(metrics: &Metrics, err: &BudgetError, rpc: RpcId) -> Status {
    refused(metrics, err, rpc)
}

/// Whether `st` is a pacing refusal (tests and logs).
pub fn is_refusal(st: &Status) -> bool {
    st.code() == Code::ResourceExhausted
        && st
            .metadata()
            .get(status::ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| {
                c == crate::error::ErrorCode::ClientTooSlow.as_str()
                    || c == crate::error::ErrorCode::ResponseBudgetExhausted.as_str()
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Budget;

    fn body_of(chunks: &[&[u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, Status>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Body::new(Replay {
            seen: frames.into(),
            rest: Body::empty(),
        })
    }

    async fn collect(mut body: Body) -> Vec<u8> {
        use http_body::Body as _;
        let mut out = Vec::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Some(d) = frame.expect("frame").data_ref() {
                out.extend_from_slice(d);
            }
        }
        out
    }

    #[tokio::test]
    async fn the_declared_length_is_read_and_the_body_kept_whole() {
        // A prefix cut over two frames, as a client may send it.
        let (n, body) = peek_length(body_of(&[&[0, 0, 0], &[1, 2, 9, 9], &[7]])).await;
        assert_eq!(n, Some(0x0102));
        assert_eq!(collect(body).await, [0, 0, 0, 1, 2, 9, 9, 7]);
        let (n, _) = peek_length(body_of(&[&[1, 0, 0, 0, 5]])).await;
        assert_eq!(n, Some(usize::MAX), "compressed: only the limit bounds it");
        let (n, body) = peek_length(body_of(&[&[0, 0]])).await;
        assert_eq!(n, None, "a body shorter than a prefix");
        assert_eq!(collect(body).await, [0, 0]);
    }

    #[tokio::test]
    async fn response_frames_are_charged_until_written() {
        let conn = ConnBudget::new(Budget::new(1 << 20), 1 << 20);
        let body = Body::new(Metered {
            inner: body_of(&[b"hello", b"world!"]),
            budget: conn.clone(),
        });
        assert_eq!(collect(body).await.len(), 11);
        assert_eq!(conn.unsent(), 11);
        conn.release_unsent(11);
        assert_eq!(conn.unsent(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_pace_that_gets_no_room_records_why() {
        let conn = ConnBudget::new(Budget::new(1 << 20), 1024);
        let (pace, ending) = StreamPace::new(conn.clone(), Duration::from_secs(5));
        let hold = pace.admit(3000).await.expect("room at first");
        assert_eq!(conn.held(), 3000);
        assert!(pace.admit(10).await.is_none(), "full: the stream ends");
        let metrics = Metrics::new();
        let st = ending
            .status(&metrics, RpcId::generate())
            .expect("a status");
        assert!(is_refusal(&st), "{st:?}");
        drop(hold);
        assert_eq!(conn.held(), 0);
    }
}
