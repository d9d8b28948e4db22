//! Test harness: a real server on 127.0.0.1:0 with a temporary data folder,
//! plus helpers to encode events and read streams.

#![allow(dead_code)] // each test module uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventbus::api::pb::{self, pub_sub_client::PubSubClient};
use eventbus::broker::Broker;
use eventbus::config::ServeArgs;
use eventbus::server::{Server, ServerError};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// The example topic every test server provisions.
pub const ORDER_TOPIC: &str = "/event/Order_Event__e";

/// A Salesforce-style platform event schema.
pub const ORDER_SCHEMA: &str = r#"{
  "type": "record", "name": "Order_Event__e", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
    {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
    {"name": "OrderNumber__c", "type": ["null", "string"], "default": null},
    {"name": "Amount__c", "type": ["null", "double"], "default": null}
  ]
}"#;

/// Version 2 of the schema: one more nullable field.
pub const ORDER_SCHEMA_V2: &str = r#"{
  "type": "record", "name": "Order_Event__e", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "CreatedDate", "type": "long"},
    {"name": "CreatedById", "type": "string"},
    {"name": "OrderNumber__c", "type": ["null", "string"], "default": null},
    {"name": "Amount__c", "type": ["null", "double"], "default": null},
    {"name": "Status__c", "type": ["null", "string"], "default": null}
  ]
}"#;

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub tooling: Option<SocketAddr>,
    pub broker: Arc<Broker>,
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), ServerError>>,
    pub data: PathBuf,
    pub topics: PathBuf,
    _dir: Arc<TempDir>,
    args: ServeArgs,
}

/// Writes the default topics folder into `root/topics`.
pub fn write_topics(root: &Path, schema: &str) -> PathBuf {
    let topics = root.join("topics");
    std::fs::create_dir_all(topics.join("event")).expect("mkdir topics");
    std::fs::write(topics.join("event/Order_Event__e.avsc"), schema).expect("write schema");
    topics
}

/// Starts a server with default test settings.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server after letting the caller adjust settings.
pub async fn start_with(adjust: impl FnOnce(&mut ServeArgs)) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let mut args = ServeArgs::for_tests(dir.path().join("data"));
    args.topics = Some(topics);
    on_test_backend(&mut args);
    adjust(&mut args);
    launch(args, dir).await
}

/// The backend the suite runs on: RocksDB, or with
/// `EVENTBUS_TEST_BACKEND=jetstream` the JetStream cluster named by
/// `EVENTBUS_TEST_NATS_URL` (scripts/test.sh starts one with
/// scripts/nats-cluster.sh), every server under a prefix of its own and
/// with `EVENTBUS_TEST_NATS_REPLICAS` replicas (default 3).
pub fn on_test_backend(args: &mut ServeArgs) {
    if std::env::var("EVENTBUS_TEST_BACKEND").as_deref() != Ok("jetstream") {
        return;
    }
    let urls = std::env::var("EVENTBUS_TEST_NATS_URL")
        .expect("EVENTBUS_TEST_BACKEND=jetstream needs EVENTBUS_TEST_NATS_URL");
    args.backend = eventbus::config::Backend::Jetstream;
    args.nats_url = urls.split(',').map(str::to_owned).collect();
    args.nats_replicas = std::env::var("EVENTBUS_TEST_NATS_REPLICAS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    args.nats_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
}

/// Whether the suite runs on the JetStream backend.
pub fn on_jetstream() -> bool {
    std::env::var("EVENTBUS_TEST_BACKEND").as_deref() == Ok("jetstream")
}

async fn launch(args: ServeArgs, dir: Arc<TempDir>) -> TestServer {
    launch_on(args, dir, "127.0.0.1:0".parse().expect("loopback address")).await
}

async fn launch_on(args: ServeArgs, dir: Arc<TempDir>, at: SocketAddr) -> TestServer {
    // Bind first so the port is known before the server runs: no race.
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = Server::build(args.clone()).await.expect("server builds");
    let broker = server.broker().clone();
    let metrics = server.metrics_addr();
    let tooling = server.tooling_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, stop.clone()));
    wait_until_serving(addr).await;
    TestServer {
        addr,
        metrics,
        tooling,
        broker,
        stop,
        task,
        data: args.data_dir.clone(),
        topics: args.topics.clone().unwrap_or_default(),
        _dir: dir,
        args,
    }
}

/// Polls `check` until it returns `Some` and returns what it found,
/// failing the test with `what` once `within` has passed: for state that
/// changes in the background (another server, another task).
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        // The polling interval of a bounded check, not synchronisation.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the health service until it reports SERVING (10 s deadline).
pub async fn wait_until_serving(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(ch) => {
                let mut health = HealthClient::new(ch);
                match health
                    .check(HealthCheckRequest {
                        service: "eventbus.v1.PubSub".into(),
                    })
                    .await
                {
                    Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return,
                    Ok(r) => last = format!("status {}", r.get_ref().status),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        // Polling interval of a readiness probe, not synchronisation.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {addr} never became SERVING: {last}");
}

impl TestServer {
    /// A fresh client over its own connection.
    pub async fn client(&self) -> PubSubClient<Channel> {
        PubSubClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
            .max_decoding_message_size(4 * 1024 * 1024)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(self) -> (ServeArgs, Arc<TempDir>) {
        self.stop.cancel();
        self.task
            .await
            .expect("server task joins")
            .expect("server shuts down cleanly");
        (self.args, self._dir)
    }

    /// Stops and starts again on the same data folder (and topics folder).
    pub async fn restart(self) -> TestServer {
        let (args, dir) = self.shutdown().await;
        launch(args, dir).await
    }

    /// Stops and starts again on the same data folder and the same port,
    /// as clients that keep the address find a restarted server.
    pub async fn restart_on_same_port(self) -> TestServer {
        let addr = self.addr;
        let (args, dir) = self.shutdown().await;
        launch_on(args, dir, addr).await
    }

    /// Starts a server again with what [`TestServer::shutdown`] returned,
    /// after the test changed its data folder meanwhile.
    pub async fn start_again(args: ServeArgs, dir: Arc<TempDir>) -> TestServer {
        launch(args, dir).await
    }

    /// The current schema id of the order topic.
    pub async fn order_schema_id(&self) -> String {
        self.client()
            .await
            .get_topic(pb::TopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .expect("get topic")
            .into_inner()
            .schema_id
    }
}

pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Avro binary of an Order_Event__e record (schema v1 field order).
pub fn order_payload(n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_long(&mut out, 1_700_000_000_000 + n);
    put_str(&mut out, "005000000000001AAA");
    put_long(&mut out, 1);
    put_str(&mut out, &format!("ORD-{n:06}"));
    put_long(&mut out, 1);
    out.extend_from_slice(&(n as f64 * 1.5).to_le_bytes());
    out
}

/// An order payload whose OrderNumber__c holds `filler` bytes of text.
pub fn big_order_payload(filler: usize) -> Vec<u8> {
    let mut out = Vec::new();
    put_long(&mut out, 1);
    put_str(&mut out, "005000000000001AAA");
    put_long(&mut out, 1);
    put_str(&mut out, &"x".repeat(filler));
    put_long(&mut out, 0);
    out
}

/// Avro binary of a v2 record.
pub fn order_payload_v2(n: i64) -> Vec<u8> {
    let mut out = order_payload(n);
    put_long(&mut out, 1);
    put_str(&mut out, "Shipped");
    out
}

/// A ProducerEvent for the order topic.
pub fn order_event(schema_id: &str, n: i64) -> pb::ProducerEvent {
    pb::ProducerEvent {
        id: String::new(),
        schema_id: schema_id.into(),
        payload: order_payload(n).into(),
        headers: vec![],
    }
}

/// Publishes `n` events (unary, one request) and returns their replay ids.
pub async fn publish_orders(server: &TestServer, from: i64, n: i64) -> Vec<Vec<u8>> {
    let schema = server.order_schema_id().await;
    let resp = server
        .client()
        .await
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: (from..from + n).map(|i| order_event(&schema, i)).collect(),
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    resp.results
        .into_iter()
        .map(|r| {
            assert!(r.error.is_none(), "publish failed: {:?}", r.error);
            r.replay_id.to_vec()
        })
        .collect()
}

/// A bidirectional call's client side: a sender for requests.
pub struct Requests<T>(pub mpsc::Sender<T>);

impl<T> Requests<T> {
    pub async fn send(&self, msg: T) {
        self.0.send(msg).await.expect("request stream open");
    }
}

/// Opens Subscribe with `first` and returns the request sender and responses.
pub async fn subscribe(
    client: &mut PubSubClient<Channel>,
    first: pb::FetchRequest,
) -> Result<
    (
        Requests<pb::FetchRequest>,
        tonic::Streaming<pb::FetchResponse>,
    ),
    tonic::Status,
> {
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.expect("queue first request");
    let resp = client.subscribe(ReceiverStream::new(rx)).await?;
    Ok((Requests(tx), resp.into_inner()))
}

/// A first FetchRequest.
pub fn fetch(preset: pb::ReplayPreset, replay_id: Vec<u8>, n: i32) -> pb::FetchRequest {
    pb::FetchRequest {
        topic_name: ORDER_TOPIC.into(),
        replay_preset: preset as i32,
        replay_id: replay_id.into(),
        num_requested: n,
        auth_refresh: String::new(),
    }
}

/// A later FetchRequest that only adds credit.
pub fn more(n: i32) -> pb::FetchRequest {
    pb::FetchRequest {
        num_requested: n,
        ..Default::default()
    }
}

/// Next response, failing the test after 10 s.
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> Result<Option<T>, tonic::Status> {
    next_within(stream, Duration::from_secs(10)).await
}

/// Next response, failing the test after `deadline`.
pub async fn next_within<T>(
    stream: &mut tonic::Streaming<T>,
    deadline: Duration,
) -> Result<Option<T>, tonic::Status> {
    tokio::time::timeout(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("a response within {deadline:?}"))
}

/// Reads responses until `n` events arrived; returns (events, responses).
pub async fn collect_events(
    stream: &mut tonic::Streaming<pb::FetchResponse>,
    n: usize,
) -> (Vec<pb::ConsumerEvent>, Vec<pb::FetchResponse>) {
    collect_events_within(stream, n, Duration::from_secs(10)).await
}

/// [`collect_events`] waiting up to `deadline` for each response.
pub async fn collect_events_within(
    stream: &mut tonic::Streaming<pb::FetchResponse>,
    n: usize,
    deadline: Duration,
) -> (Vec<pb::ConsumerEvent>, Vec<pb::FetchResponse>) {
    let mut events = Vec::new();
    let mut responses = Vec::new();
    while events.len() < n {
        let r = next_within(stream, deadline)
            .await
            .expect("stream healthy")
            .expect("stream open");
        events.extend(r.events.iter().cloned());
        responses.push(r);
    }
    (events, responses)
}

/// The `error-code` trailer of a status.
pub fn error_code(st: &tonic::Status) -> String {
    st.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Asserts a status's code, error-code suffix, rpc-id trailer and message shape.
pub fn assert_status(st: &tonic::Status, code: tonic::Code, error_code_suffix: &str) {
    assert_eq!(st.code(), code, "status: {st:?}");
    let ec = error_code(st);
    assert_eq!(
        ec,
        format!("sfdc.platform.eventbus.grpc.{error_code_suffix}"),
        "status: {st:?}"
    );
    let rpc = st
        .metadata()
        .get("rpc-id")
        .and_then(|v| v.to_str().ok())
        .expect("rpc-id trailer");
    assert!(
        st.message().ends_with(&format!("rpcId: {rpc}")),
        "message must end with the rpc id: {}",
        st.message()
    );
}

/// Replay id bytes as a number.
pub fn replay_num(id: &[u8]) -> u64 {
    u64::from_be_bytes(id.try_into().expect("8-byte replay id"))
}

/// The `eventbus` binary running as a child process on a free loopback port.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Joins to the log lines that were not JSON.
    pub log_reader: std::thread::JoinHandle<Vec<String>>,
}

impl ServerProcess {
    /// Starts `eventbus serve` on `data` with `topics`, JSON logs, and waits
    /// until it serves (the address comes from its log line).
    pub async fn spawn(data: &Path, topics: &Path, extra: &[&str]) -> ServerProcess {
        Self::spawn_env(data, topics, extra, &[]).await
    }

    /// [`ServerProcess::spawn`] with extra environment variables.
    pub async fn spawn_env(
        data: &Path,
        topics: &Path,
        extra: &[&str],
        envs: &[(&str, &std::ffi::OsStr)],
    ) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--topics")
            .arg(topics)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn eventbus");
        let stderr = child.stderr.take().expect("stderr");
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel(); // bounded by the child's log lines
        let log_reader = std::thread::spawn(move || {
            let mut not_json = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        let msg = v["fields"]["message"].as_str().unwrap_or("");
                        if let Some(rest) = msg.split("listening on ").nth(1) {
                            let _ = addr_tx.send(rest.trim().to_owned());
                        }
                    }
                    Err(_) => not_json.push(line),
                }
            }
            not_json
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx.recv())
            .await
            .expect("server logs its address within 30 s")
            .expect("address line");
        let addr: SocketAddr = addr.parse().expect("socket address");
        wait_until_serving(addr).await;
        ServerProcess {
            child,
            addr,
            log_reader,
        }
    }

    /// A client on a fresh connection.
    pub async fn client(&self) -> PubSubClient<Channel> {
        PubSubClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }
}

/// Runs `eventbus ARGS --server ADDR` to the end with optional stdin (off
/// the runtime thread: the server answers on the test's runtime).
pub async fn run_eventbus(addr: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    cmd.args(args)
        .arg("--server")
        .arg(addr)
        .env_remove("EVENTBUS_SERVER")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn eventbus");
        if let Some(text) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join")
}
