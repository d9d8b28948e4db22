//! The `eventbus.admin.v1.Faults` service (issue 25) over real gRPC on
//! 127.0.0.1: fault rules added, listed, removed and cleared, loaded from
//! `--faults-file`; every call refused without `--fault-injection`
//! (FAILED_PRECONDITION) or without the `admin` grant; time travel: a
//! topic's events expired now (an older replay id is then
//! `replayid.corrupted`, managed subscriptions restart at their
//! error-recovery replay), sessions expired now (their tokens refused as
//! expired ones are), and the commit clock offset (in a child process: the
//! offset is process-wide and the other tests of this binary share the
//! process); and the `eventbus fault` commands.
//!
//! The injection of the rules into Pub/Sub calls is tested in the lead's
//! tests of the protocol layer, not here.

use std::time::{Duration, SystemTime};

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::admin::pb::faults_client::FaultsClient;
use eventbus::api::pb;
use eventbus::auth::{AuthMode, hash_token};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::common::*;
use crate::http_client::{exchange, form};

/// The default tenant of the test server.
const ORG: &str = "00D000000000000EAA";

async fn faults_at(addr: std::net::SocketAddr) -> FaultsClient<Channel> {
    FaultsClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

async fn faults(server: &TestServer) -> FaultsClient<Channel> {
    faults_at(server.addr).await
}

async fn injecting() -> TestServer {
    start_with(|a| a.fault_injection = true).await
}

fn rule(action: &str) -> admin::FaultRule {
    admin::FaultRule {
        action: action.into(),
        ..Default::default()
    }
}

async fn list(c: &mut FaultsClient<Channel>) -> Vec<admin::FaultRuleView> {
    c.list_faults(admin::ListFaultsRequest {})
        .await
        .expect("list")
        .into_inner()
        .rules
}

/// An RFC 3339 instant (milliseconds) strictly after every event committed
/// so far and strictly before every event committed after it returns.
async fn instant_between() -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

async fn expire_before(
    c: &mut FaultsClient<Channel>,
    topic: &str,
    before: &str,
) -> admin::ExpireEventsResponse {
    c.expire_events(admin::ExpireEventsRequest {
        topic_name: topic.into(),
        cutoff: Some(admin::expire_events_request::Cutoff::Before(before.into())),
    })
    .await
    .expect("expire events")
    .into_inner()
}

#[tokio::test]
async fn rules_are_added_listed_removed_and_cleared() {
    let server = injecting().await;
    let mut c = faults(&server).await;
    let first = c
        .add_fault(admin::FaultRule {
            rpc: "Subscribe".into(),
            topic: "/event/*".into(),
            error_code: "service.unavailable".into(),
            after_events: Some(3),
            times: Some(1),
            ..rule("fail")
        })
        .await
        .expect("add")
        .into_inner()
        .id;
    let second = c
        .add_fault(admin::FaultRule {
            duration: "250ms".into(),
            r#for: "10m".into(),
            ..rule("latency")
        })
        .await
        .expect("add")
        .into_inner()
        .id;
    assert_eq!((first.as_str(), second.as_str()), ("f1", "f2"));
    let rules = list(&mut c).await;
    assert_eq!(rules.len(), 2);
    let f1 = rules[0].rule.clone().expect("rule");
    assert_eq!(
        (f1.action.as_str(), f1.rpc.as_str(), f1.topic.as_str()),
        ("fail", "Subscribe", "/event/*")
    );
    assert_eq!((f1.after_events, f1.times), (Some(3), Some(1)));
    assert_eq!(f1.duration, "", "unset fields are blank");
    assert_eq!((rules[0].fired, rules[0].active), (0, true));
    assert_eq!(rules[0].remaining_ms, None);
    let left = rules[1].remaining_ms.expect("a rule with a period");
    assert!(left > 590_000 && left <= 600_000, "{left}");

    // Refused rules name what is wrong and add nothing.
    for (bad, says) in [
        (rule("explode"), "no fault action"),
        (rule("stall"), "needs a duration"),
        (
            admin::FaultRule {
                rpc: "Fetch".into(),
                ..rule("fail")
            },
            "is no RPC",
        ),
    ] {
        let st = c.add_fault(bad).await.expect_err(says);
        assert_status(&st, Code::InvalidArgument, "fault.request.invalid");
        assert!(st.message().contains(says), "{}", st.message());
    }
    assert_eq!(list(&mut c).await.len(), 2);

    c.remove_fault(admin::RemoveFaultRequest { id: "f1".into() })
        .await
        .expect("remove");
    let st = c
        .remove_fault(admin::RemoveFaultRequest { id: "f1".into() })
        .await
        .expect_err("gone");
    assert_status(&st, Code::NotFound, "fault.rule.not.found");
    let ids: Vec<String> = list(&mut c).await.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["f2"]);
    let removed = c
        .clear_faults(admin::ClearFaultsRequest {})
        .await
        .expect("clear")
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    assert!(list(&mut c).await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn without_fault_injection_every_call_is_failed_precondition() {
    let server = start().await;
    let mut c = faults(&server).await;
    let st = c.add_fault(rule("fail")).await.expect_err("off");
    assert_status(&st, Code::FailedPrecondition, "fault.injection.disabled");
    assert!(
        st.message().contains("--fault-injection"),
        "{}",
        st.message()
    );
    let st = c
        .get_clock(admin::GetClockRequest {})
        .await
        .expect_err("off");
    assert_eq!(st.code(), Code::FailedPrecondition);
    let st = c
        .expire_events(admin::ExpireEventsRequest {
            topic_name: ORDER_TOPIC.into(),
            cutoff: Some(admin::expire_events_request::Cutoff::OlderThan("1s".into())),
        })
        .await
        .expect_err("off");
    assert_eq!(st.code(), Code::FailedPrecondition);
    let st = c
        .expire_sessions(admin::ExpireSessionsRequest::default())
        .await
        .expect_err("off");
    assert_eq!(st.code(), Code::FailedPrecondition);
    server.shutdown().await;
}

/// Sends a token as the caller's credentials.
#[derive(Clone)]
struct Token(String);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert(
            "accesstoken",
            MetadataValue::try_from(self.0.as_str()).expect("ascii"),
        );
        md.insert(
            "instanceurl",
            MetadataValue::from_static("https://acme.my.salesforce.com"),
        );
        md.insert("tenantid", MetadataValue::from_static(ORG));
        Ok(req)
    }
}

type Authed = FaultsClient<tonic::service::interceptor::InterceptedService<Channel, Token>>;

/// A Faults client on `channel` that sends `token`.
fn as_caller(channel: Channel, token: &str) -> Authed {
    FaultsClient::with_interceptor(channel, Token(token.to_owned()))
}

/// The tokens file of [`static_server`]: `ops-token` with the admin grant,
/// `writer-token` without.
fn tokens_file(a: &eventbus::config::ServeArgs) -> std::path::PathBuf {
    let file = a.data_dir.parent().expect("root").join("tokens.toml");
    let entry = |token: &str, grants: &str| {
        format!(
            "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"{token}\"\ngrants = [{grants}]\n",
            hash_token(token)
        )
    };
    let body = [
        entry("ops-token", "\"admin\", \"subscribe:*\""),
        entry("writer-token", "\"publish:*\", \"subscribe:*\""),
    ]
    .join("\n");
    std::fs::write(&file, body).expect("tokens file");
    file
}

#[tokio::test]
async fn the_admin_grant_is_required() {
    let server = start_with(|a| {
        a.fault_injection = true;
        a.auth = AuthMode::Static;
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(tokens_file(a));
    })
    .await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut writer = as_caller(channel.clone(), "writer-token");
    let st = writer.add_fault(rule("fail")).await.expect_err("no admin");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let st = writer
        .list_faults(admin::ListFaultsRequest {})
        .await
        .expect_err("listing needs admin too");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let st = writer
        .set_clock_offset(admin::SetClockOffsetRequest {
            offset: "+1h".into(),
        })
        .await
        .expect_err("the clock needs admin too");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let st = FaultsClient::new(channel.clone())
        .list_faults(admin::ListFaultsRequest {})
        .await
        .expect_err("no token");
    assert_eq!(st.code(), Code::Unauthenticated);
    let mut ops = as_caller(channel, "ops-token");
    assert_eq!(
        ops.add_fault(rule("fail"))
            .await
            .expect("admin")
            .into_inner()
            .id,
        "f1"
    );
    // Static tokens cannot expire, and the answer says so.
    let r = ops
        .expire_sessions(admin::ExpireSessionsRequest::default())
        .await
        .expect("expire sessions")
        .into_inner();
    assert_eq!(r.sessions_ended, 0);
    assert!(r.note.contains("static tokens"), "{}", r.note);
    ops.list_faults(admin::ListFaultsRequest {})
        .await
        .expect("the static token still works");
    server.shutdown().await;
}

#[tokio::test]
async fn rules_of_the_faults_file_are_listed() {
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("faults.toml");
        std::fs::write(
            &file,
            "[[fault]]\naction = \"fail\"\nrpc = \"Subscribe\"\nafter_events = 2\ntimes = 1\n\n\
             [[fault]]\naction = \"stall\"\nduration = \"5s\"\nkeepalives = true\nprobability = 0.5\n",
        )
        .expect("faults file");
        a.fault_injection = true;
        a.faults_file = Some(file);
    })
    .await;
    let rules = list(&mut faults(&server).await).await;
    assert_eq!(rules.len(), 2);
    let (a, b) = (
        rules[0].rule.clone().expect("rule"),
        rules[1].rule.clone().expect("rule"),
    );
    assert_eq!(rules[0].id, "f1");
    assert_eq!(
        (a.action.as_str(), a.rpc.as_str(), a.after_events, a.times),
        ("fail", "Subscribe", Some(2), Some(1))
    );
    assert_eq!(rules[1].id, "f2");
    assert_eq!(
        (
            b.action.as_str(),
            b.duration.as_str(),
            b.keepalives,
            b.probability
        ),
        ("stall", "5s", Some(true), Some(0.5))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expired_events_make_an_older_replay_id_corrupted() {
    let server = injecting().await;
    let old = publish_orders(&server, 0, 5).await;
    let cutoff = instant_between().await;
    let kept = publish_orders(&server, 5, 2).await;
    let mut c = faults(&server).await;
    let r = expire_before(&mut c, ORDER_TOPIC, &cutoff).await;
    assert_eq!(r.expired, 5);
    assert_eq!(r.first_replay_id.to_vec(), kept[0]);
    assert_eq!(
        expire_before(&mut c, ORDER_TOPIC, &cutoff).await.expired,
        0,
        "nothing older is left"
    );

    // As after 72 hours of retention: the stored replay id is refused with
    // Salesforce's error, and EARLIEST gives what is left.
    let mut client = server.client().await;
    let st = subscribe(
        &mut client,
        fetch(pb::ReplayPreset::Custom, old[1].clone(), 10),
    )
    .await
    .map(|_| ())
    .expect_err("an expired replay id");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.replayid.corrupted",
    );
    assert_eq!(
        error_code(&st),
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    );
    let (_tx, mut stream) = subscribe(&mut client, fetch(pb::ReplayPreset::Earliest, vec![], 10))
        .await
        .expect("earliest");
    let (events, _) = collect_events(&mut stream, 2).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.replay_id.to_vec()).collect();
    assert_eq!(got, kept);

    // Other topics and unknown topics.
    let st = c
        .expire_events(admin::ExpireEventsRequest {
            topic_name: "/event/Missing__e".into(),
            cutoff: Some(admin::expire_events_request::Cutoff::OlderThan("1s".into())),
        })
        .await
        .expect_err("unknown topic");
    assert_eq!(st.code(), Code::NotFound);
    for cutoff in [
        None,
        Some(admin::expire_events_request::Cutoff::OlderThan(
            "a while".into(),
        )),
        Some(admin::expire_events_request::Cutoff::Before(
            "yesterday".into(),
        )),
    ] {
        let st = c
            .expire_events(admin::ExpireEventsRequest {
                topic_name: ORDER_TOPIC.into(),
                cutoff,
            })
            .await
            .expect_err("bad cutoff");
        assert_status(&st, Code::InvalidArgument, "fault.request.invalid");
    }
    server.shutdown().await;
}

/// One ManagedSubscribe stream.
struct Managed {
    tx: Option<mpsc::Sender<pb::ManagedFetchRequest>>,
    rx: tonic::Streaming<pb::ManagedFetchResponse>,
}

impl Managed {
    async fn open(server: &TestServer, name: &str) -> Managed {
        let (tx, rx) = mpsc::channel(16);
        tx.send(pb::ManagedFetchRequest {
            developer_name: name.into(),
            num_requested: 10,
            ..Default::default()
        })
        .await
        .expect("queue");
        let rx = server
            .client()
            .await
            .managed_subscribe(ReceiverStream::new(rx))
            .await
            .expect("open managed")
            .into_inner();
        Managed { tx: Some(tx), rx }
    }

    /// The next `n` events; commit answers and keepalives in between are
    /// skipped.
    async fn events(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < n {
            let r = next(&mut self.rx)
                .await
                .expect("stream healthy")
                .expect("stream open");
            out.extend(r.events.iter().map(|e| e.replay_id.to_vec()));
        }
        out
    }

    async fn commit(&mut self, replay_id: &[u8]) {
        self.tx
            .as_ref()
            .expect("open")
            .send(pb::ManagedFetchRequest {
                commit_replay_id_request: Some(pb::CommitReplayRequest {
                    commit_request_id: "c".into(),
                    replay_id: replay_id.to_vec().into(),
                }),
                ..Default::default()
            })
            .await
            .expect("send commit");
        loop {
            let r = next(&mut self.rx)
                .await
                .expect("stream healthy")
                .expect("stream open");
            if let Some(c) = r.commit_response {
                assert!(c.error.is_none(), "commit refused: {c:?}");
                return;
            }
        }
    }

    /// Half-closes and reads to the end.
    async fn close(mut self) {
        self.tx = None;
        while let Ok(Some(_)) = next(&mut self.rx).await {}
    }
}

async fn create_managed(
    admin: &mut AdminClient<Channel>,
    name: &str,
    default: admin::ManagedReplay,
    recovery: admin::ManagedReplay,
) {
    admin
        .create_managed_subscription(admin::CreateManagedSubscriptionRequest {
            developer_name: name.into(),
            topic_name: ORDER_TOPIC.into(),
            default_replay: default as i32,
            error_recovery_replay: recovery as i32,
            state: admin::ManagedState::Run as i32,
        })
        .await
        .expect("create managed subscription");
}

#[tokio::test]
async fn managed_subscriptions_whose_commit_expired_follow_their_error_recovery_replay() {
    let server = injecting().await;
    let mut adm = AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect admin");
    // The default replays are the opposite of the recovery replays, so the
    // start says which one was taken.
    create_managed(
        &mut adm,
        "Recover_Earliest",
        admin::ManagedReplay::Latest,
        admin::ManagedReplay::Earliest,
    )
    .await;
    create_managed(
        &mut adm,
        "Recover_Latest",
        admin::ManagedReplay::Earliest,
        admin::ManagedReplay::Latest,
    )
    .await;
    // LATEST by default: the stream must be open before the events are
    // published to see them; EARLIEST by default: every event.
    let mut a = Managed::open(&server, "Recover_Earliest").await;
    let published = publish_orders(&server, 0, 5).await;
    assert_eq!(a.events(5).await, published);
    a.commit(&published[1]).await;
    a.close().await;
    let mut b = Managed::open(&server, "Recover_Latest").await;
    assert_eq!(b.events(5).await, published);
    b.commit(&published[1]).await;
    b.close().await;
    let cutoff = instant_between().await;
    let later = publish_orders(&server, 5, 2).await;
    let mut c = faults(&server).await;
    assert_eq!(expire_before(&mut c, ORDER_TOPIC, &cutoff).await.expired, 5);

    // EARLIEST recovery: the two retained events (the commit would have
    // given events 3 to 7; the default replay LATEST none).
    let mut s = Managed::open(&server, "Recover_Earliest").await;
    assert_eq!(s.events(2).await, later);
    s.close().await;
    // LATEST recovery: only what is published from now on (the default
    // replay EARLIEST would give the two retained events first).
    let mut s = Managed::open(&server, "Recover_Latest").await;
    let fresh = publish_orders(&server, 7, 1).await;
    assert_eq!(s.events(1).await, fresh);
    s.close().await;
    server.shutdown().await;
}

/// A server with `--auth static`, the admin token of [`tokens_file`], an
/// org users file (password login) and the HTTP listener.
async fn org_server() -> TestServer {
    start_with(|a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let users = dir.join("org.toml");
        std::fs::write(
            &users,
            format!(
                r#"
[[users]]
username = "ops@acme.example"
password = "{pw}"
org_id = "{ORG}"
user_id = "005000000000001"
grants = ["subscribe:/event/*"]

[[apps]]
client_id = "app1"
client_secret = "{cs}"
run_as = "ops@acme.example"
"#,
                pw = eventbus::auth::org::hash_secret("pw+token"),
                cs = eventbus::auth::org::hash_secret("cs"),
            ),
        )
        .expect("users file");
        a.fault_injection = true;
        a.auth = AuthMode::Static;
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(tokens_file(a));
        a.org_users_file = Some(users);
        a.http_listen = "127.0.0.1:0".into();
    })
    .await
}

/// GetTopic with `token` as `accesstoken`.
async fn get_topic(server: &TestServer, token: &str) -> Result<pb::TopicInfo, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let token = token.to_owned();
    let mut client = pb::pub_sub_client::PubSubClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            let md = req.metadata_mut();
            md.insert(
                "accesstoken",
                MetadataValue::try_from(token.as_str()).expect("ascii"),
            );
            md.insert(
                "instanceurl",
                MetadataValue::from_static("http://127.0.0.1"),
            );
            md.insert("tenantid", MetadataValue::from_static(ORG));
            Ok(req)
        },
    );
    client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn expired_sessions_are_refused_like_expired_ones() {
    let server = org_server().await;
    let addr = server.tooling.expect("http listener");
    let (status, _, body) = exchange(
        addr,
        "POST",
        "/services/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form(&[
            ("grant_type", "password"),
            ("client_id", "app1"),
            ("client_secret", "cs"),
            ("username", "ops@acme.example"),
            ("password", "pw+token"),
            ("scope", "api refresh_token"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    let session = body["access_token"].as_str().expect("token").to_owned();
    get_topic(&server, &session)
        .await
        .expect("the session works");
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut ops = as_caller(channel, "ops-token");
    // Another org's sessions: this one stays.
    let r = ops
        .expire_sessions(admin::ExpireSessionsRequest {
            tenant: "00D5e000000Zzzz".into(),
        })
        .await
        .expect("expire another org")
        .into_inner();
    assert_eq!(r.sessions_ended, 0);
    get_topic(&server, &session)
        .await
        .expect("another org's expiry leaves it");
    let r = ops
        .expire_sessions(admin::ExpireSessionsRequest { tenant: ORG.into() })
        .await
        .expect("expire")
        .into_inner();
    assert_eq!(r.sessions_ended, 1);
    let st = get_topic(&server, &session).await.expect_err("expired");
    // What a client sees once a session times out.
    assert_status(&st, Code::Unauthenticated, "service.auth.error");
    // The refresh token still makes a new session.
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    let (status, _, body) = exchange(
        addr,
        "POST",
        "/services/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "app1"),
            ("client_secret", "cs"),
            ("refresh_token", refresh),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    get_topic(&server, body["access_token"].as_str().expect("token"))
        .await
        .expect("the refreshed session works");
    let st = ops
        .expire_sessions(admin::ExpireSessionsRequest {
            tenant: "not-an-org".into(),
        })
        .await
        .expect_err("bad tenant");
    assert_status(&st, Code::InvalidArgument, "fault.request.invalid");
    server.shutdown().await;
}

/// The newest event's commit time on `addr`, epoch ms.
async fn last_event_ms(addr: std::net::SocketAddr) -> i64 {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .expect("connect admin")
        .describe_topic(admin::DescribeTopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("describe")
        .into_inner()
        .last_event_ms
}

async fn publish_one(proc: &ServerProcess, n: i64) {
    let mut client = proc.client().await;
    let schema = client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("topic")
        .into_inner()
        .schema_id;
    let r = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema, n)],
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert!(r.results.iter().all(|r| r.error.is_none()), "{r:?}");
}

fn wall_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "eventbus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The clock offset is process-wide, so this runs the server as a child
/// process; the CLI drives it.
#[tokio::test]
async fn the_clock_offset_moves_commit_times_and_the_cli_drives_it_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let proc =
        ServerProcess::spawn(&dir.path().join("data"), &topics, &["--fault-injection"]).await;
    let addr = proc.addr.to_string();
    let cli = |args: &'static [&'static str]| run_eventbus(&addr, args, None);

    // Rules through the CLI.
    let out = cli(&[
        "fault",
        "add",
        "--action",
        "fail",
        "--rpc",
        "Subscribe",
        "--topic",
        "/event/*",
        "--error-code",
        "service.unavailable",
        "--after-events",
        "3",
        "--times",
        "1",
    ])
    .await;
    assert_eq!(stdout(&out), "f1\n");
    let out = cli(&[
        "fault",
        "add",
        "--action",
        "stall",
        "--duration",
        "5s",
        "--keepalives",
    ])
    .await;
    assert_eq!(stdout(&out), "f2\n");
    // Checked before it is sent.
    let out = cli(&["fault", "add", "--action", "stall"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a duration"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = stdout(&cli(&["fault", "list"]).await);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("rpc=Subscribe topic=/event/*") && table.contains("once"),
        "{table}"
    );
    let json = stdout(&cli(&["fault", "list", "-o", "json"]).await);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "f1");
    assert_eq!(rows[0]["rule"]["after_events"], 3);
    assert_eq!(rows[1]["rule"]["keepalives"], true);
    assert_eq!(rows[1]["fired"], 0);
    assert_eq!(rows[1]["active"], true);
    assert!(stdout(&cli(&["fault", "remove", "f1"]).await).contains("f1"));
    let out = cli(&["fault", "remove", "f1"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fault.rule.not.found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&cli(&["fault", "clear"]).await).contains("removed 1 fault rules"));

    // The clock: commit times follow the offset.
    publish_one(&proc, 1).await;
    let before = last_event_ms(proc.addr).await;
    assert!((before - wall_ms()).abs() < 60_000, "{before}");
    // 48 h, not 72: retention (72 h by default) must not delete the first
    // event before ExpireEvents below does.
    let shown = stdout(&cli(&["fault", "clock", "--offset", "+48h"]).await);
    assert!(shown.contains("offset +2days"), "{shown}");
    publish_one(&proc, 2).await;
    let after = last_event_ms(proc.addr).await;
    let ahead = after - wall_ms();
    assert!(
        (48 * 3_600_000 - 60_000..48 * 3_600_000 + 1_000).contains(&ahead),
        "the commit time is 48 h ahead: {ahead} ms"
    );
    let mut c = faults_at(proc.addr).await;
    let clock = c
        .get_clock(admin::GetClockRequest {})
        .await
        .expect("clock")
        .into_inner();
    assert_eq!(clock.offset_ms, 48 * 3_600_000);
    assert!(clock.now_ms - clock.wall_ms >= 48 * 3_600_000 - 1_000);
    // Retention and ExpireEvents read the same clock: the first event is
    // 48 h old now, the second is not.
    let out = stdout(
        &cli(&[
            "fault",
            "expire-events",
            "/event/Order_Event__e",
            "--older-than",
            "47h",
        ])
        .await,
    );
    assert!(out.starts_with("expired 1 events"), "{out}");
    let shown = stdout(&cli(&["fault", "clock", "--offset", "-5m"]).await);
    assert!(shown.contains("offset -5m"), "{shown}");
    let shown = stdout(&cli(&["fault", "clock", "--reset"]).await);
    assert!(shown.contains("offset 0s"), "{shown}");
    assert!(stdout(&cli(&["fault", "clock"]).await).contains("offset 0s"));
    let out = cli(&["fault", "clock", "--offset", "soon"]).await;
    assert!(!out.status.success());
    let out = stdout(&cli(&["fault", "expire-sessions"]).await);
    assert!(out.starts_with("ended 0 login sessions"), "{out}");
    let out = stdout(
        &cli(&[
            "fault",
            "expire-events",
            "/event/Order_Event__e",
            "--before",
            "2000-01-01T00:00:00Z",
        ])
        .await,
    );
    assert!(out.starts_with("expired 0 events"), "{out}");
    let out = cli(&["fault", "expire-events", "/event/Order_Event__e"]).await;
    assert!(!out.status.success(), "a cutoff is required");

    let mut child = proc.child;
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[tokio::test]
async fn the_cli_names_the_setting_on_a_server_without_fault_injection() {
    let server = start().await;
    let out = run_eventbus(&server.addr.to_string(), &["fault", "list"], None).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fault-injection"), "{err}");
    server.shutdown().await;
}
