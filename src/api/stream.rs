//! The request side of the streaming RPCs (Subscribe, ManagedSubscribe,
//! PublishStream).
//!
//! Owns: reading a client's request stream, the same way for all three:
//! the first request within the first-request timeout
//! (`EVENTBUS_FIRST_REQUEST_TIMEOUT`, [`Requests::first`] and
//! [`FirstDeadline`]), and every read told apart as a request, the client's
//! half-close, a request over the size limit ([`ReadError::TooLarge`], which
//! tonic reports as a read error) or a broken transport
//! ([`ReadError::Broken`]). And [`Refusal`], how a later request that ends
//! a subscription reaches the client: the broker ends the subscription on
//! [`Control::Fail`] without knowing why, and the response stream ends with
//! the remembered error once the deliveries before it are sent.
//! Must not: interpret requests (each RPC does) or build statuses
//! ([`super::status`] does).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Sleep;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::namespace::Namespace;
use super::{ProtocolError, pb, status};
use crate::broker::{Control, Controls};
use crate::telemetry::metrics::Metrics;
use crate::types::RpcId;

/// A read of a request stream that got no request.
#[derive(Debug)]
pub(super) enum ReadError {
    /// A request over the size limit (`Some(bytes)` when tonic names the
    /// limit). The client is still there and can be told.
    TooLarge(Option<usize>),
    /// The transport broke, with tonic's status: the client is gone.
    Broken(Status),
}

impl ReadError {
    /// What tonic's error `st` on a request stream means.
    fn of(st: Status) -> Self {
        if status::is_tonic_too_large(
            st.code(),
            st.metadata().get(status::ERROR_CODE_KEY).is_some(),
        ) {
            ReadError::TooLarge(status::tonic_limit(&st))
        } else {
            ReadError::Broken(st)
        }
    }
}

/// Why a stream has no first request.
#[derive(Debug)]
pub(super) enum NoFirst {
    /// None in time, the stream ended, or it was over the size limit.
    Refused(ProtocolError),
    /// The transport broke, with tonic's status.
    Broken(Status),
}

impl From<ReadError> for NoFirst {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge(limit) => NoFirst::Refused(ProtocolError::RequestTooLarge(limit)),
            ReadError::Broken(st) => NoFirst::Broken(st),
        }
    }
}

impl NoFirst {
    /// The status the RPC answers with: a refusal's, counted; tonic's own
    /// for a broken transport, unchanged.
    pub(super) fn status(self, metrics: &Metrics, rpc: RpcId) -> Status {
        match self {
            NoFirst::Refused(e) => status::refuse(metrics, &e, rpc),
            NoFirst::Broken(st) => st,
        }
    }
}

/// A request a stream must open with (Subscribe, ManagedSubscribe): the
/// errors for when it does not arrive.
pub(super) trait Opening {
    /// None arrived within `waited` of opening the stream.
    fn overdue(waited: Duration) -> ProtocolError;
    /// The client half-closed the stream before sending one.
    fn missing() -> ProtocolError;
}

impl Opening for pb::FetchRequest {
    fn overdue(waited: Duration) -> ProtocolError {
        ProtocolError::FetchRequestTimeout(waited)
    }

    fn missing() -> ProtocolError {
        ProtocolError::EndedBeforeFetchRequest
    }
}

impl Opening for pb::ManagedFetchRequest {
    fn overdue(waited: Duration) -> ProtocolError {
        ProtocolError::ManagedFetchRequestTimeout(waited)
    }

    fn missing() -> ProtocolError {
        ProtocolError::EndedBeforeManagedFetchRequest
    }
}

/// The moment a stream's first request is overdue, counted from when the
/// stream was opened.
pub(super) struct FirstDeadline {
    at: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl FirstDeadline {
    /// Starts the clock: the first request is due within `timeout`.
    pub(super) fn start(timeout: Duration) -> Self {
        Self {
            at: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }

    /// Resolves once the first request is overdue, with the timeout.
    pub(super) async fn passed(&mut self) -> Duration {
        self.at.as_mut().await;
        self.timeout
    }
}

/// A client's request stream (tonic's `Streaming`, or any stream of the
/// same items).
pub(super) struct Requests<S> {
    inner: S,
}

impl<S, T> Requests<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    /// Reads `inner`.
    pub(super) fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The next request; `Ok(None)` once the client half-closed.
    pub(super) async fn next(&mut self) -> Result<Option<T>, ReadError> {
        self.inner.next().await.transpose().map_err(ReadError::of)
    }

    /// The first request, if it arrives within `timeout` (a request ready
    /// when the time is up still counts).
    pub(super) async fn first(&mut self, timeout: Duration) -> Result<T, NoFirst>
    where
        T: Opening,
    {
        let mut deadline = FirstDeadline::start(timeout);
        tokio::select! {
            biased;
            read = self.next() => match read {
                Ok(Some(req)) => Ok(req),
                Ok(None) => Err(NoFirst::Refused(T::missing())),
                Err(e) => Err(e.into()),
            },
            waited = deadline.passed() => Err(NoFirst::Refused(T::overdue(waited))),
        }
    }

    /// The later requests as a subscription's controls: `each` turns a
    /// request into controls, or into the protocol error that ends the
    /// stream. A request over the size limit ends it with
    /// [`ProtocolError::RequestTooLarge`], a broken transport with
    /// [`Control::Disconnected`] (nobody is listening); the half-close ends
    /// the controls. The [`Refusal`] holds the error that failed the
    /// subscription, if one did.
    pub(super) fn controls<F, I>(self, mut each: F) -> (Controls, Refusal)
    where
        S: Send + 'static,
        F: FnMut(T) -> Result<I, ProtocolError> + Send + 'static,
        I: IntoIterator<Item = Control>,
        I::IntoIter: Send + 'static,
    {
        let refusal = Refusal::default();
        let fails = refusal.clone();
        let controls = futures_util::StreamExt::flat_map(self.inner, move |read| {
            let (ok, failed) = match read.map_err(ReadError::of) {
                Ok(req) => match each(req) {
                    Ok(controls) => (Some(controls.into_iter()), None),
                    Err(e) => (None, Some(fails.fail(e))),
                },
                // The client is still there and learns why its stream ends.
                Err(ReadError::TooLarge(limit)) => (
                    None,
                    Some(fails.fail(ProtocolError::RequestTooLarge(limit))),
                ),
                // A broken transport: the client is gone.
                Err(ReadError::Broken(_)) => (None, Some(Control::Disconnected)),
            };
            futures_util::stream::iter(ok.into_iter().flatten().chain(failed))
        });
        (Box::pin(controls), refusal)
    }
}

/// Why a subscription's controls ended it, shared between the controls
/// (which fail it) and the response stream (which tells the client).
#[derive(Clone, Default)]
pub(super) struct Refusal(Arc<OnceLock<ProtocolError>>);

impl Refusal {
    /// [`Control::Fail`], remembering `why`. The subscription ends at the
    /// first one, so there is no second.
    fn fail(&self, why: ProtocolError) -> Control {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, Bytes, BytesMut};
    use http_body::Frame;
    use prost::Message as _;
    use tonic::Code;
    use tonic::codec::{Codec, Streaming};

    use crate::broker::BrokerError;

    const LIMIT: usize = 64;

    /// `messages` as gRPC length-prefixed frames, as a client sends them.
    fn frames(messages: &[Vec<u8>]) -> Bytes {
        let mut out = BytesMut::new();
        for m in messages {
            out.put_u8(0); // not compressed
            out.put_u32(u32::try_from(m.len()).unwrap_or(u32::MAX));
            out.put_slice(m);
        }
        out.freeze()
    }

    /// How tonic hands the server a request stream whose body is `body`,
    /// with a decoding limit of [`LIMIT`] bytes.
    fn streaming<T, B>(body: B) -> Streaming<T>
    where
        T: prost::Message + Default + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        let mut codec = tonic_prost::ProstCodec::<T, T>::default();
        Streaming::new_request(codec.decoder(), body, None, Some(LIMIT))
    }

    /// A client that sent `messages` and half-closed.
    fn sent<T>(messages: &[Vec<u8>]) -> Requests<Streaming<T>>
    where
        T: prost::Message + Default + Send + 'static,
    {
        Requests::new(streaming(http_body_util::Full::new(frames(messages))))
    }

    /// A client whose body breaks after `messages`.
    fn broken<T>(messages: &[Vec<u8>]) -> Requests<Streaming<T>>
    where
        T: prost::Message + Default + Send + 'static,
    {
        let items: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(frames(messages))),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            )),
        ];
        Requests::new(streaming(http_body_util::StreamBody::new(
            tokio_stream::iter(items),
        )))
    }

    /// A client that opened the stream and sends nothing, ever.
    fn silent<T>() -> Requests<Streaming<T>>
    where
        T: prost::Message + Default + Send + 'static,
    {
        Requests::new(streaming(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, std::io::Error>>(),
        )))
    }

    fn fetch(topic: &str, n: i32) -> pb::FetchRequest {
        pb::FetchRequest {
            topic_name: topic.into(),
            num_requested: n,
            ..Default::default()
        }
    }

    fn oversize() -> Vec<u8> {
        fetch(&"x".repeat(LIMIT * 2), 1).encode_to_vec()
    }

    fn code(st: &Status) -> &str {
        st.metadata()
            .get(status::ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// The controls as the subscription loop reads them: up to the first
    /// that ends the subscription, where the loop stops reading.
    async fn read(mut controls: Controls) -> Vec<Control> {
        let mut seen = Vec::new();
        while let Some(control) = controls.next().await {
            let end = matches!(control, Control::Fail | Control::Disconnected);
            seen.push(control);
            if end {
                break;
            }
        }
        seen
    }

    #[tokio::test]
    async fn the_first_request_is_read() {
        let mut requests = sent::<pb::FetchRequest>(&[fetch("/event/A__e", 5).encode_to_vec()]);
        let first = requests.first(TIMEOUT).await.expect("first request");
        assert_eq!(first, fetch("/event/A__e", 5));
        assert!(matches!(requests.next().await, Ok(None)));
    }

    #[tokio::test]
    async fn a_stream_that_ends_before_its_first_request_is_refused() {
        let metrics = Metrics::new();
        let rpc = RpcId::generate();
        let no = sent::<pb::FetchRequest>(&[]).first(TIMEOUT).await;
        let Err(no) = no else {
            panic!("no request was sent")
        };
        assert!(matches!(
            no,
            NoFirst::Refused(ProtocolError::EndedBeforeFetchRequest)
        ));
        let st = no.status(&metrics, rpc);
        assert_eq!(st.code(), Code::InvalidArgument);
        assert_eq!(
            code(&st),
            "sfdc.platform.eventbus.grpc.subscription.fetch.request.invalid"
        );
        assert!(
            st.message()
                .starts_with("The subscription ended before its first FetchRequest."),
            "{}",
            st.message()
        );
        let no = sent::<pb::ManagedFetchRequest>(&[]).first(TIMEOUT).await;
        assert!(matches!(
            no,
            Err(NoFirst::Refused(
                ProtocolError::EndedBeforeManagedFetchRequest
            ))
        ));
    }

    #[tokio::test]
    async fn a_broken_transport_passes_tonics_status_on() {
        let metrics = Metrics::new();
        let no = broken::<pb::FetchRequest>(&[]).first(TIMEOUT).await;
        let Err(NoFirst::Broken(st)) = no else {
            panic!("expected a broken transport, got {no:?}")
        };
        let passed = NoFirst::Broken(st.clone()).status(&metrics, RpcId::generate());
        assert_eq!(passed.code(), st.code());
        assert_eq!(passed.message(), st.message());
        assert_eq!(code(&passed), "", "tonic's status gets no error code");
        // Later reads tell it apart the same way.
        let mut requests = broken::<pb::FetchRequest>(&[fetch("/event/A__e", 1).encode_to_vec()]);
        assert!(requests.first(TIMEOUT).await.is_ok());
        assert!(matches!(requests.next().await, Err(ReadError::Broken(_))));
    }

    #[tokio::test]
    async fn a_request_over_the_limit_is_refused_with_the_limit() {
        let metrics = Metrics::new();
        let rpc = RpcId::generate();
        let no = sent::<pb::FetchRequest>(&[oversize()]).first(TIMEOUT).await;
        let Err(no) = no else {
            panic!("the request is over the limit")
        };
        assert!(
            matches!(
                no,
                NoFirst::Refused(ProtocolError::RequestTooLarge(Some(LIMIT)))
            ),
            "{no:?}"
        );
        let st = no.status(&metrics, rpc);
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert_eq!(
            code(&st),
            "sfdc.platform.eventbus.grpc.service.request.too.large"
        );
        assert!(st.message().contains("64 bytes"), "{}", st.message());
        // A later one: the requests before it are read first.
        let mut requests =
            sent::<pb::FetchRequest>(&[fetch("/event/A__e", 1).encode_to_vec(), oversize()]);
        assert!(requests.first(TIMEOUT).await.is_ok());
        assert!(matches!(
            requests.next().await,
            Err(ReadError::TooLarge(Some(LIMIT)))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn no_first_request_in_time_is_refused_when_the_timeout_passes() {
        let metrics = Metrics::new();
        let rpc = RpcId::generate();
        let opened = tokio::time::Instant::now();
        let no = silent::<pb::FetchRequest>().first(TIMEOUT).await;
        assert_eq!(opened.elapsed(), TIMEOUT);
        let Err(no) = no else {
            panic!("nothing was sent")
        };
        assert!(matches!(
            no,
            NoFirst::Refused(ProtocolError::FetchRequestTimeout(TIMEOUT))
        ));
        let st = no.status(&metrics, rpc);
        assert_eq!(st.code(), Code::InvalidArgument);
        assert_eq!(
            code(&st),
            "sfdc.platform.eventbus.grpc.subscription.fetch.request.invalid"
        );
        assert!(
            st.message()
                .starts_with("No FetchRequest arrived within 1m "),
            "{}",
            st.message()
        );
        let no = silent::<pb::ManagedFetchRequest>().first(TIMEOUT).await;
        assert!(matches!(
            no,
            Err(NoFirst::Refused(ProtocolError::ManagedFetchRequestTimeout(
                TIMEOUT
            )))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_request_just_in_time_is_read() {
        let late = futures_util::stream::once(async {
            tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
            Ok::<_, Status>(fetch("/event/A__e", 1))
        });
        let mut requests = Requests::new(Box::pin(late));
        assert!(requests.first(TIMEOUT).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_deadline_passes_after_its_timeout() {
        let opened = tokio::time::Instant::now();
        let mut deadline = FirstDeadline::start(TIMEOUT);
        assert_eq!(deadline.passed().await, TIMEOUT);
        assert_eq!(opened.elapsed(), TIMEOUT);
    }

    #[tokio::test]
    async fn later_requests_become_controls_and_a_refusal_ends_the_stream_with_why() {
        let metrics = Arc::new(Metrics::new());
        let rpc = RpcId::generate();
        let requests = sent::<pb::FetchRequest>(&[
            fetch("", 3).encode_to_vec(),
            fetch("", 0).encode_to_vec(),
            oversize(),
        ]);
        let (controls, refusal) = requests.controls(|req| {
            Ok((req.num_requested > 0).then(|| Control::Grant(req.num_requested.unsigned_abs())))
        });
        let seen = read(controls).await;
        assert!(
            matches!(seen.as_slice(), [Control::Grant(3), Control::Fail]),
            "{seen:?}"
        );
        let ending: Vec<Result<(), Status>> = refusal
            .ending(
                metrics,
                Namespace::of(crate::types::DEFAULT_TENANT_GUID),
                rpc,
            )
            .collect()
            .await;
        let [Err(st)] = ending.as_slice() else {
            panic!("one status, got {ending:?}")
        };
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert_eq!(
            code(st),
            "sfdc.platform.eventbus.grpc.service.request.too.large"
        );
    }

    #[tokio::test]
    async fn a_request_the_rpc_refuses_fails_the_subscription() {
        let requests = sent::<pb::FetchRequest>(&[fetch("/event/B__e", 1).encode_to_vec()]);
        let (controls, refusal) = requests.controls(|req| {
            Err::<Option<Control>, _>(ProtocolError::SubscribeTopicMismatch {
                first: "/event/A__e".into(),
                got: req.topic_name,
            })
        });
        let seen = read(controls).await;
        assert!(matches!(seen.as_slice(), [Control::Fail]), "{seen:?}");
        let ending: Vec<Result<(), Status>> = refusal
            .ending(
                Arc::new(Metrics::new()),
                Namespace::of(crate::types::DEFAULT_TENANT_GUID),
                RpcId::generate(),
            )
            .collect()
            .await;
        let [Err(st)] = ending.as_slice() else {
            panic!("one status, got {ending:?}")
        };
        assert_eq!(st.code(), Code::InvalidArgument);
        assert_eq!(
            code(st),
            "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"
        );
    }

    #[tokio::test]
    async fn a_broken_transport_disconnects_and_a_half_close_ends_with_nothing_to_tell() {
        let (controls, refusal) = broken::<pb::FetchRequest>(&[]).controls(|_| Ok(None::<Control>));
        let seen = read(controls).await;
        assert!(
            matches!(seen.as_slice(), [Control::Disconnected]),
            "{seen:?}"
        );
        let ns = Namespace::of(crate::types::DEFAULT_TENANT_GUID);
        let ending: Vec<Result<(), Status>> = refusal
            .ending(Arc::new(Metrics::new()), ns.clone(), RpcId::generate())
            .collect()
            .await;
        assert!(ending.is_empty());
        let (controls, refusal) = sent::<pb::FetchRequest>(&[]).controls(|_| Ok(None::<Control>));
        let seen = read(controls).await;
        assert!(seen.is_empty(), "{seen:?}");
        let ending: Vec<Result<(), Status>> = refusal
            .ending(Arc::new(Metrics::new()), ns, RpcId::generate())
            .collect()
            .await;
        assert!(ending.is_empty());
    }

    /// Moved from `status` with the mapping of a first read's error.
    #[test]
    fn tonic_oversize_refusals_get_our_status_and_others_pass() {
        let metrics = Metrics::new();
        let rpc = RpcId::generate();
        let inbound = |metrics: &Metrics, st: Status, rpc| {
            NoFirst::from(ReadError::of(st)).status(metrics, rpc)
        };
        let tonic_st = Status::out_of_range(
            "Error, decoded message length too large: found 4194305 bytes, the limit is: 4194304 bytes",
        );
        let st = inbound(&metrics, tonic_st, rpc);
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert!(st.message().contains("4194304 bytes"), "{}", st.message());
        assert_eq!(
            st.metadata()
                .get(status::ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("sfdc.platform.eventbus.grpc.service.request.too.large")
        );
        let ours = status::to_status(&BrokerError::EmptyBatch, rpc);
        assert_eq!(inbound(&metrics, ours, rpc).code(), Code::InvalidArgument);
        let gone = Status::cancelled("client went away");
        assert_eq!(inbound(&metrics, gone, rpc).code(), Code::Cancelled);
    }
}
