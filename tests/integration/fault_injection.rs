//! Fault injection (issue 25) over real gRPC on 127.0.0.1: rules from a
//! `--faults-file`, each fault kind observed by a real tonic client exactly
//! as asked (the status and Salesforce's trailers, an RST_STREAM, a dropped
//! connection, a stall with or without keepalives, latency, refused
//! events) and nothing else affected: other topics, other clients, later
//! calls once a rule is spent. Injected failures are counted with a
//! `fault` label, never as real errors. Without `--fault-injection` a
//! faults file is refused at startup.

use std::time::{Duration, Instant};

use eventbus::api::pb::{self, pub_sub_client::PubSubClient};
use eventbus::auth::{AuthMode, hash_token};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::*;

/// The default tenant (the topics folder's).
const ORG: &str = "00D000000000000EAA";
/// A second topic of the org, which no rule names.
const OTHER_TOPIC: &str = "/event/Other_Event__e";

#[derive(Clone)]
struct Token(&'static str);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert(
            "accesstoken",
            MetadataValue::try_from(self.0).expect("ascii"),
        );
        md.insert(
            "instanceurl",
            MetadataValue::from_static("https://acme.my.salesforce.com"),
        );
        Ok(req)
    }
}

type Client = PubSubClient<InterceptedService<Channel, Token>>;

/// A server with fault injection on and `rules` (TOML `[[fault]]`) as its
/// faults file; static tokens `alice-token` (principal alice) and
/// `bob-token` (bob), both allowed everything on /event/*; the metrics
/// listener on; and a second topic.
async fn faulty_server(rules: &str) -> TestServer {
    let rules = rules.to_owned();
    let server = start_with(move |a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let faults = dir.join("faults.toml");
        std::fs::write(&faults, &rules).expect("faults file");
        let tokens = dir.join("tokens.toml");
        let entry = |token: &str, principal: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"{principal}\"\ngrants = [\"publish:/event/*\", \"subscribe:/event/*\"]\n",
                hash_token(token)
            )
        };
        std::fs::write(
            &tokens,
            [entry("alice-token", "alice"), entry("bob-token", "bob")].join("\n"),
        )
        .expect("tokens file");
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(tokens);
        a.topics_tenants = vec![ORG.into()];
        a.fault_injection = true;
        a.faults_file = Some(faults);
        a.metrics_listen = "127.0.0.1:0".into();
    })
    .await;
    let schema = eventbus::schema::ParsedSchema::parse(
        &ORDER_SCHEMA.replace("Order_Event__e", "Other_Event__e"),
    )
    .expect("schema");
    server
        .broker
        .create_topic(OTHER_TOPIC, schema, None)
        .await
        .expect("second topic");
    server
}

async fn client(server: &TestServer, token: &'static str) -> Client {
    let ch = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    PubSubClient::with_interceptor(ch, Token(token))
}

/// Publishes orders `from..from + n` to `topic` as alice (a rule-free
/// path: only Publish calls that rules name are touched); their replay ids.
async fn publish_to(server: &TestServer, topic: &str, from: i64, n: i64) -> Vec<Vec<u8>> {
    let schema = server
        .broker
        .topic(topic)
        .expect("topic")
        .current_schema()
        .to_string();
    let events = (from..from + n)
        .map(|i| eventbus::broker::PublishEvent {
            id: String::new(),
            schema_id: schema.clone(),
            payload: order_payload(i).into(),
            headers: Vec::new(),
        })
        .collect();
    let receipt = server.broker.publish(topic, events).await.expect("publish");
    receipt
        .outcomes
        .into_iter()
        .map(|o| o.result.expect("published").to_bytes().to_vec())
        .collect()
}

/// Subscribes from EARLIEST with `credit` to `topic`.
async fn subscribe_as(
    c: &mut Client,
    topic: &str,
    credit: i32,
) -> (
    tokio::sync::mpsc::Sender<pb::FetchRequest>,
    tonic::Streaming<pb::FetchResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(pb::FetchRequest {
        topic_name: topic.into(),
        replay_preset: pb::ReplayPreset::Earliest as i32,
        num_requested: credit,
        ..Default::default()
    })
    .await
    .expect("first request");
    let stream = c
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    (tx, stream)
}

/// Reads until the stream ends; the events before the end and how it ended.
async fn read_to_end(
    stream: &mut tonic::Streaming<pb::FetchResponse>,
) -> (Vec<pb::ConsumerEvent>, Result<(), tonic::Status>) {
    let mut events = Vec::new();
    loop {
        match next(stream).await {
            Ok(Some(r)) => events.extend(r.events),
            Ok(None) => return (events, Ok(())),
            Err(st) => return (events, Err(st)),
        }
    }
}

async fn scrape(server: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.metrics.expect("metrics on");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text))
        .await
        .expect("metrics within 10 s")
        .expect("read");
    text
}

#[tokio::test]
async fn fail_ends_a_subscription_after_n_events_with_salesforces_status_once() {
    let server = faulty_server(
        r#"
[[fault]]
action = "fail"
rpc = "Subscribe"
topic = "/event/Order_Event__e"
after_events = 3
times = 1
"#,
    )
    .await;
    publish_to(&server, ORDER_TOPIC, 1, 10).await;
    publish_to(&server, OTHER_TOPIC, 1, 4).await;
    let mut c = client(&server, "alice-token").await;
    let (_tx, mut stream) = subscribe_as(&mut c, ORDER_TOPIC, 10).await;
    let (events, end) = read_to_end(&mut stream).await;
    assert_eq!(events.len(), 3, "exactly the events before the fault");
    let st = end.expect_err("ended by the rule");
    assert_status(&st, Code::Internal, "service.unavailable");
    assert!(
        st.message()
            .starts_with("The service is unavailable. Try again later. rpcId: "),
        "{}",
        st.message()
    );
    // Spent: the next stream gets everything; the other topic never was hit.
    let (_tx, mut again) = subscribe_as(&mut c, ORDER_TOPIC, 10).await;
    let (events, _) = collect_events(&mut again, 10).await;
    assert_eq!(replay_num(&events[9].replay_id), 10);
    let (_tx, mut other) = subscribe_as(&mut c, OTHER_TOPIC, 4).await;
    collect_events(&mut other, 4).await;
    // Counted as a fault, not as an error.
    let metrics = scrape(&server).await;
    assert!(
        metrics.contains(r#"pubsub_faults_injected_total{fault="fail",rule="f1"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"code="sfdc.platform.eventbus.grpc.service.unavailable""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unary_faults_match_by_rpc_and_client_and_add_latency() {
    let server = faulty_server(
        r#"
[[fault]]
action = "fail"
rpc = "GetTopic"
client = "bob"
status = "UNAVAILABLE"
error_code = "service.unavailable"
message = "Planned maintenance."

[[fault]]
action = "latency"
rpc = "GetSchema"
duration = "400ms"
"#,
    )
    .await;
    let topic = || pb::TopicRequest {
        topic_name: ORDER_TOPIC.into(),
    };
    let mut alice = client(&server, "alice-token").await;
    let mut bob = client(&server, "bob-token").await;
    let info = alice
        .get_topic(topic())
        .await
        .expect("alice is not named")
        .into_inner();
    let st = bob.get_topic(topic()).await.expect_err("bob is");
    assert_status(&st, Code::Unavailable, "service.unavailable");
    assert!(
        st.message().starts_with("Planned maintenance. rpcId: "),
        "{st:?}"
    );
    // Every time (no limit), and only GetTopic.
    bob.get_topic(topic()).await.expect_err("still bob");
    let started = Instant::now();
    bob.get_schema(pb::SchemaRequest {
        schema_id: info.schema_id.clone(),
    })
    .await
    .expect("GetSchema answers, late");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the latency rule delays the answer"
    );
}

#[tokio::test]
async fn reset_sends_rst_stream_after_n_events() {
    let server = faulty_server(
        r#"
[[fault]]
action = "reset"
rpc = "Subscribe"
after_events = 2
times = 1
"#,
    )
    .await;
    publish_to(&server, ORDER_TOPIC, 1, 5).await;
    let mut c = client(&server, "alice-token").await;
    let (_tx, mut stream) = subscribe_as(&mut c, ORDER_TOPIC, 5).await;
    let (events, end) = read_to_end(&mut stream).await;
    assert_eq!(events.len(), 2);
    let st = end.expect_err("reset");
    // No gRPC status from the server: the HTTP/2 stream was reset.
    assert!(error_code(&st).is_empty(), "{st:?}");
    let text = format!("{st:?}").to_ascii_lowercase();
    assert!(
        text.contains("reset") || text.contains("stream error"),
        "an RST_STREAM, not a status: {st:?}"
    );
    // The connection itself is fine: the same client goes on.
    let (_tx, mut again) = subscribe_as(&mut c, ORDER_TOPIC, 5).await;
    collect_events(&mut again, 5).await;
}

#[tokio::test]
async fn drop_closes_the_clients_connection_and_no_other() {
    let server = faulty_server(
        r#"
[[fault]]
action = "drop"
rpc = "Subscribe"
client = "alice"
after_events = 2
times = 1
"#,
    )
    .await;
    publish_to(&server, ORDER_TOPIC, 1, 5).await;
    let mut bob = client(&server, "bob-token").await;
    let (_btx, mut bob_stream) = subscribe_as(&mut bob, ORDER_TOPIC, 100).await;
    collect_events(&mut bob_stream, 5).await;
    let mut alice = client(&server, "alice-token").await;
    let (_tx, mut stream) = subscribe_as(&mut alice, ORDER_TOPIC, 5).await;
    let (events, end) = read_to_end(&mut stream).await;
    assert_eq!(events.len(), 2);
    let st = end.expect_err("the connection went");
    assert!(
        error_code(&st).is_empty(),
        "no status from the server: {st:?}"
    );
    // Bob's stream, on its own connection, still delivers.
    publish_to(&server, ORDER_TOPIC, 6, 1).await;
    let (events, _) = collect_events(&mut bob_stream, 1).await;
    assert_eq!(replay_num(&events[0].replay_id), 6);
    // Alice reconnects (tonic dials again) and resumes.
    let (_tx, mut again) = subscribe_as(&mut alice, ORDER_TOPIC, 6).await;
    collect_events(&mut again, 6).await;
}

#[tokio::test]
async fn a_stall_withholds_events_but_keeps_keepalives_unless_asked() {
    let server = faulty_server(
        r#"
[[fault]]
action = "stall"
rpc = "Subscribe"
client = "alice"
after_events = 2
duration = "2500ms"
times = 1

[[fault]]
action = "stall"
rpc = "Subscribe"
client = "bob"
after_events = 2
duration = "1500ms"
keepalives = true
times = 1
"#,
    )
    .await;
    publish_to(&server, ORDER_TOPIC, 1, 4).await;
    // Events alone: keepalives (the server's --keepalive is 1 s in tests?
    // whatever it is, they carry the last delivered replay id) may come,
    // events only after the stall.
    let mut alice = client(&server, "alice-token").await;
    let (_tx, mut stream) = subscribe_as(&mut alice, ORDER_TOPIC, 4).await;
    let started = Instant::now();
    let (events, _) = collect_events(&mut stream, 2).await;
    assert_eq!(replay_num(&events[1].replay_id), 2);
    let mut rest = Vec::new();
    while rest.len() < 2 {
        let r = next_within(&mut stream, Duration::from_secs(20))
            .await
            .expect("healthy")
            .expect("open");
        if r.events.is_empty() {
            assert_eq!(
                replay_num(&r.latest_replay_id),
                2,
                "a keepalive during the stall names the last delivered event"
            );
            assert!(rest.is_empty());
        }
        rest.extend(r.events);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "events after the stall"
    );
    assert_eq!(replay_num(&rest[1].replay_id), 4);

    // Events and keepalives: nothing at all for the stall's length.
    let mut bob = client(&server, "bob-token").await;
    let (_tx, mut stream) = subscribe_as(&mut bob, ORDER_TOPIC, 4).await;
    collect_events(&mut stream, 2).await;
    let stalled = Instant::now();
    let r = next_within(&mut stream, Duration::from_secs(20))
        .await
        .expect("healthy")
        .expect("open");
    assert!(
        stalled.elapsed() >= Duration::from_millis(1400),
        "nothing during the stall"
    );
    assert!(!r.events.is_empty() || replay_num(&r.latest_replay_id) >= 2);
}

#[tokio::test]
async fn refused_publishes_get_per_event_errors_and_store_nothing() {
    let server = faulty_server(
        r#"
[[fault]]
action = "refuse"
topic = "/event/Order_Event__e"
message = "Publishing is paused."
"#,
    )
    .await;
    let mut c = client(&server, "alice-token").await;
    let schema = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .to_string();
    let events = vec![order_event(&schema, 1), order_event(&schema, 2)];
    let resp = c
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: events.clone(),
            auth_refresh: String::new(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(resp.results.len(), 2);
    for (r, e) in resp.results.iter().zip(&events) {
        let err = r.error.as_ref().expect("a per-event error");
        assert_eq!(err.code, pb::ErrorCode::Publish as i32);
        assert!(err.msg.starts_with("Publishing is paused."), "{}", err.msg);
        assert_eq!(r.correlation_key, e.id);
        assert!(r.replay_id.is_empty());
    }
    // PublishStream too.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events: vec![order_event(&schema, 3)],
        auth_refresh: String::new(),
    })
    .await
    .expect("queue");
    let mut answers = c
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let r = next(&mut answers)
        .await
        .expect("healthy")
        .expect("an answer");
    assert!(r.results[0].error.is_some(), "{r:?}");
    drop(tx);
    let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
    assert_eq!(
        server.broker.bounds(topic.id).expect("bounds").latest.0,
        0,
        "nothing stored"
    );
    // Another topic is not refused.
    let other = server.broker.topic(OTHER_TOPIC).expect("topic");
    let resp = c
        .publish(pb::PublishRequest {
            topic_name: OTHER_TOPIC.into(),
            events: vec![order_event(other.current_schema().as_str(), 1)],
            auth_refresh: String::new(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(resp.results[0].error.is_none(), "{resp:?}");
}

#[tokio::test]
async fn a_publish_stream_fails_after_n_acknowledged_events() {
    let server = faulty_server(
        r#"
[[fault]]
action = "fail"
rpc = "PublishStream"
after_events = 2
"#,
    )
    .await;
    let mut c = client(&server, "alice-token").await;
    let schema = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .to_string();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for i in 1..=3 {
        tx.send(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema, i)],
            auth_refresh: String::new(),
        })
        .await
        .expect("queue");
    }
    let mut answers = c
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let mut acked = 0;
    let st = loop {
        match next(&mut answers).await {
            Ok(Some(r)) => acked += r.results.len(),
            Ok(None) => panic!("ended without the fault"),
            Err(st) => break st,
        }
    };
    assert_eq!(acked, 2, "two acknowledgements before the fault");
    assert_status(&st, Code::Internal, "service.unavailable");
}

#[tokio::test]
async fn rules_need_fault_injection_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = eventbus::config::ServeArgs::for_tests(dir.path().join("data"));
    let faults = dir.path().join("faults.toml");
    std::fs::write(&faults, "[[fault]]\naction = \"fail\"\n").expect("file");
    args.faults_file = Some(faults);
    let err = eventbus::server::Server::build(args)
        .await
        .err()
        .expect("refused at startup");
    assert!(err.to_string().contains("--fault-injection"), "{err}");
}

#[tokio::test]
async fn managed_streams_and_tenants_are_matched_too() {
    let server = faulty_server(
        r#"
[[fault]]
action = "fail"
rpc = "ManagedSubscribe"
after_events = 1
error_code = "service.internal.error"

[[fault]]
action = "fail"
tenant = "00D5e000000ZzzzEAC"
"#,
    )
    .await;
    publish_to(&server, ORDER_TOPIC, 1, 3).await;
    server
        .broker
        .create_managed(
            ORG,
            eventbus::broker::NewManaged {
                developer_name: "Order_Processor".into(),
                topic: ORDER_TOPIC.into(),
                default_replay: eventbus::types::ManagedReplay::Earliest,
                error_recovery_replay: eventbus::types::ManagedReplay::Earliest,
                state: eventbus::types::ManagedState::Run,
            },
        )
        .await
        .expect("managed subscription");
    let mut c = client(&server, "alice-token").await;
    // The second rule names another org: this org's calls pass.
    c.get_topic(pb::TopicRequest {
        topic_name: ORDER_TOPIC.into(),
    })
    .await
    .expect("another tenant's rule");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ManagedFetchRequest {
        developer_name: "Order_Processor".into(),
        num_requested: 3,
        ..Default::default()
    })
    .await
    .expect("first request");
    let mut stream = c
        .managed_subscribe(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let mut events = 0;
    let st = loop {
        match next(&mut stream).await {
            Ok(Some(r)) => events += r.events.len(),
            Ok(None) => panic!("ended without the fault"),
            Err(st) => break st,
        }
    };
    assert_eq!(events, 1);
    assert_status(&st, Code::Internal, "service.internal.error");
    drop(tx);
}

#[tokio::test]
async fn the_console_lists_adds_and_removes_rules_for_admins_only() {
    use crate::http_client::{exchange as http, form};
    const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
    // With --auth none every caller is an admin; the console is open.
    let server = start_with(|a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let faults = dir.join("faults.toml");
        std::fs::write(
            &faults,
            "[[fault]]\naction = \"fail\"\nrpc = \"GetTopic\"\ntimes = 1\n",
        )
        .expect("faults file");
        a.fault_injection = true;
        a.faults_file = Some(faults);
        a.http_listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = server.tooling.expect("http listener on");
    let (status, _, page) = http(addr, "GET", "/console/faults", &[], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"data-rule="f1""#) && page.contains("rpc GetTopic"),
        "{page}"
    );
    let (_, _, overview) = http(addr, "GET", "/console", &[], b"").await;
    assert!(overview.contains(r#"href="/console/faults""#), "{overview}");
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let csrf = page[at..].split('"').next().expect("token").to_owned();

    // Add one: it fires on the next Subscribe... here a GetSchema, counted.
    let (status, h, body) = http(
        addr,
        "POST",
        "/console/faults",
        &[FORM],
        &form(&[
            ("csrf", &csrf),
            ("op", "add"),
            ("action", "fail"),
            ("rpc", "GetSchema"),
            ("error_code", "service.unavailable"),
            ("times", "1"),
        ]),
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(h["location"].contains("Rule+f2+added"), "{h:?}");
    let st = server
        .client()
        .await
        .get_schema(pb::SchemaRequest {
            schema_id: "x".into(),
        })
        .await
        .expect_err("the new rule");
    assert_status(&st, Code::Internal, "service.unavailable");
    let (_, _, page) = http(addr, "GET", "/console/faults", &[], b"").await;
    let row = page.split(r#"data-rule="f2""#).nth(1).expect("f2 listed");
    assert!(
        row.contains(r#"<td class="num" data-field="fired">1</td>"#),
        "{row}"
    );

    // A rule that is not valid: the page again with the error.
    let (status, _, page) = http(
        addr,
        "POST",
        "/console/faults",
        &[FORM],
        &form(&[("csrf", &csrf), ("op", "add"), ("action", "stall")]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("needs a duration"), "{page}");
    // No token: refused; remove and clear work.
    let (status, _, _) = http(
        addr,
        "POST",
        "/console/faults",
        &[FORM],
        &form(&[("op", "clear")]),
    )
    .await;
    assert_eq!(status, 403);
    let (status, h, _) = http(
        addr,
        "POST",
        "/console/faults",
        &[FORM],
        &form(&[("csrf", &csrf), ("op", "remove"), ("id", "f1")]),
    )
    .await;
    assert_eq!(
        (status, h["location"].contains("Rule+f1+removed")),
        (303, true)
    );
    let (_, h, _) = http(
        addr,
        "POST",
        "/console/faults",
        &[FORM],
        &form(&[("csrf", &csrf), ("op", "clear")]),
    )
    .await;
    assert!(h["location"].contains("1+rules+removed"), "{h:?}");

    // Without fault injection the page is not there.
    let plain = start_with(|a| a.http_listen = "127.0.0.1:0".into()).await;
    let (status, _, body) = http(
        plain.tooling.expect("http"),
        "GET",
        "/console/faults",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("--fault-injection"), "{body}");
}

#[tokio::test]
async fn a_dropped_unary_call_never_answers_and_the_next_one_reconnects() {
    let server = faulty_server(
        r#"
[[fault]]
action = "drop"
rpc = "GetTopic"
times = 1
"#,
    )
    .await;
    let mut c = client(&server, "alice-token").await;
    let topic = || pb::TopicRequest {
        topic_name: ORDER_TOPIC.into(),
    };
    let st = tokio::time::timeout(Duration::from_secs(10), c.get_topic(topic()))
        .await
        .expect("the call ends with its connection")
        .expect_err("the connection dropped");
    // No status from the server: the client reports the lost connection
    // itself (tonic: a transport error; grpcio and grpc-js: UNAVAILABLE).
    assert!(error_code(&st).is_empty(), "{st:?}");
    assert!(!st.message().contains("rpcId"), "{st:?}");
    assert!(
        matches!(st.code(), Code::Unavailable | Code::Unknown),
        "{st:?}"
    );
    // Spent: the same client dials again and gets its answer.
    c.get_topic(topic()).await.expect("a new connection");
}
