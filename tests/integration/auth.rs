//! Authentication and grants over the wire: `static` tokens and `jwt`.

use eventbus::api::admin::pb::{self as admin_pb, admin_client::AdminClient};
use eventbus::api::pb::{self, ReplayPreset, pub_sub_client::PubSubClient};
use eventbus::auth::{AuthMode, hash_token};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::*;

/// The default tenant: the one the topics folder provisions.
const ORG: &str = "00D000000000000EAA";
/// A tenant of its own.
const ORG_A: &str = "00D5e000000AbcdEAC";
const INSTANCE: &str = "https://acme.my.salesforce.com";

/// The three headers every Salesforce client sends.
#[derive(Clone)]
struct Creds {
    token: String,
    tenant: String,
}

impl tonic::service::Interceptor for Creds {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        for (k, v) in [
            ("accesstoken", self.token.as_str()),
            ("instanceurl", INSTANCE),
            ("tenantid", self.tenant.as_str()),
        ] {
            if !v.is_empty() {
                md.insert(k, MetadataValue::try_from(v).expect("ascii header"));
            }
        }
        Ok(req)
    }
}

type Client = PubSubClient<InterceptedService<Channel, Creds>>;
type Admin = AdminClient<InterceptedService<Channel, Creds>>;

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

fn creds(token: &str, tenant: &str) -> Creds {
    Creds {
        token: token.into(),
        tenant: tenant.into(),
    }
}

async fn client(server: &TestServer, token: &str, tenant: &str) -> Client {
    PubSubClient::with_interceptor(channel(server).await, creds(token, tenant))
}

async fn admin(server: &TestServer, token: &str, tenant: &str) -> Admin {
    AdminClient::with_interceptor(channel(server).await, creds(token, tenant))
}

/// GetTopic of the example topic, expected to fail; the status.
async fn refused(server: &TestServer, token: &str, tenant: &str) -> tonic::Status {
    client(server, token, tenant)
        .await
        .get_topic(topic_request())
        .await
        .expect_err("the call must be refused")
}

async fn static_server() -> TestServer {
    start_with(|a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let file = dir.join("tokens.toml");
        let entry = |token: &str, principal: &str, grants: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"{principal}\"\ngrants = [{grants}]\n",
                hash_token(token)
            )
        };
        let body = [
            entry("writer-token", "writer", "\"publish:/event/*\""),
            entry("reader-token", "reader", "\"subscribe:/event/Order_Event__e\""),
            entry("ops-token", "ops", "\"admin\""),
            entry("other-token", "other", "\"subscribe:/event/Other__e\""),
        ]
        .join("\n");
        std::fs::write(&file, body).expect("tokens file");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
    })
    .await
}

fn topic_request() -> pb::TopicRequest {
    pb::TopicRequest {
        topic_name: ORDER_TOPIC.into(),
    }
}

#[tokio::test]
async fn static_tokens_authenticate_every_call() {
    let server = static_server().await;

    // No headers at all, an unknown token, a tenant that is not the token's.
    let mut anonymous = PubSubClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect");
    let st = anonymous
        .get_topic(topic_request())
        .await
        .expect_err("no credentials");
    assert_status(&st, Code::Unauthenticated, "service.auth.error");
    let st = refused(&server, "guess", ORG).await;
    assert_status(&st, Code::Unauthenticated, "service.auth.error");
    let st = refused(&server, "writer-token", "00D5e000000ZZZZEAC").await;
    assert_status(&st, Code::Unauthenticated, "service.auth.headers.invalid");
    // Without tenantid the call is the token's tenant (unlike Salesforce,
    // which requires the header).
    client(&server, "writer-token", "")
        .await
        .get_topic(topic_request())
        .await
        .expect("the token names its tenant");

    // Both tenantid forms are understood.
    for tenant in [
        ORG.to_owned(),
        format!("core/acme/{ORG}"),
        ORG[..15].to_owned(),
    ] {
        client(&server, "writer-token", &tenant)
            .await
            .get_topic(topic_request())
            .await
            .unwrap_or_else(|e| panic!("tenantid {tenant}: {e:?}"));
    }
    // A subscription stream is refused at its start too.
    let (tx, rx) = mpsc::channel(1);
    tx.send(fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .expect("send");
    let st = client(&server, "guess", ORG)
        .await
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect_err("unknown token on Subscribe");
    assert_status(&st, Code::Unauthenticated, "service.auth.error");
}

#[tokio::test]
async fn grants_decide_publish_subscribe_and_admin() {
    let server = static_server().await;
    let mut writer = client(&server, "writer-token", ORG).await;
    let mut reader = client(&server, "reader-token", ORG).await;

    let info = writer
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner();
    assert!(info.can_publish && !info.can_subscribe, "{info:?}");
    let info = reader
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner();
    assert!(!info.can_publish && info.can_subscribe, "{info:?}");
    let schema_id = info.schema_id;

    // Publish: allowed for the writer, refused for the reader (unary and stream).
    let req = pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events: vec![order_event(&schema_id, 1)],
        auth_refresh: String::new(),
    };
    let ok = writer.publish(req.clone()).await.expect("writer publishes");
    assert!(ok.get_ref().results[0].error.is_none());
    let st = reader
        .publish(req.clone())
        .await
        .expect_err("reader publishes");
    assert_status(&st, Code::PermissionDenied, "topic.meta.permission");
    let (tx, rx) = mpsc::channel(1);
    tx.send(req.clone()).await.expect("send");
    let mut responses = reader
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let st = responses
        .message()
        .await
        .expect_err("refused on the stream");
    assert_status(&st, Code::PermissionDenied, "topic.meta.permission");

    // Subscribe: allowed for the reader (who sees the writer's event),
    // refused for the writer.
    let (tx, rx) = mpsc::channel(1);
    tx.send(fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .expect("send");
    let mut stream = reader
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect("reader subscribes")
        .into_inner();
    let got = loop {
        let resp = stream.message().await.expect("stream").expect("open");
        if let Some(ev) = resp.events.into_iter().next() {
            break ev;
        }
    };
    assert_eq!(
        got.event.expect("event").payload.to_vec(),
        order_payload(1),
        "the reader reads what the writer wrote"
    );
    let (tx, rx) = mpsc::channel(1);
    tx.send(fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .expect("send");
    let st = writer
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect_err("writer subscribes");
    assert_status(
        &st,
        Code::PermissionDenied,
        "subscription.topic.cannot.subscribe",
    );

    // Admin needs the admin grant.
    let st = admin(&server, "writer-token", ORG)
        .await
        .list_topics(admin_pb::ListTopicsRequest {})
        .await
        .expect_err("writer uses admin");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let topics = admin(&server, "ops-token", ORG)
        .await
        .list_topics(admin_pb::ListTopicsRequest {})
        .await
        .expect("ops uses admin")
        .into_inner();
    assert!(!topics.topics.is_empty());
}

/// The HS256 secret of [`jwt_server`].
const JWT_SECRET: &str = "a test secret of at least 32 bytes!!";

/// A server with `--auth jwt`: HS256 with [`JWT_SECRET`], issuer
/// `https://login.test`, audience `eventbus`.
async fn jwt_server() -> TestServer {
    start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("jwt-secret");
        std::fs::write(&file, JWT_SECRET).expect("secret");
        a.auth = AuthMode::Jwt;
        a.jwt_secret_file = Some(file);
        a.jwt_issuer = Some("https://login.test".into());
        a.jwt_audience = Some("eventbus".into());
    })
    .await
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token signed with [`JWT_SECRET`] for the default tenant: valid claims
/// expiring in 10 minutes, with `extra` claims added or replaced.
fn jwt(extra: serde_json::Value) -> String {
    let mut claims = serde_json::json!({
        "iss": "https://login.test", "aud": "eventbus", "exp": unix_now() + 600, "sub": "svc",
        "tenant": ORG, "grants": ["publish:/event/*", "subscribe:/event/*"],
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test]
async fn jwt_tokens_are_checked_for_signature_expiry_and_audience() {
    let server = jwt_server().await;
    let now = unix_now();
    let info = client(&server, &jwt(serde_json::json!({})), ORG)
        .await
        .get_topic(topic_request())
        .await
        .expect("valid JWT")
        .into_inner();
    assert!(info.can_publish && info.can_subscribe);
    for (what, bad) in [
        ("expired", jwt(serde_json::json!({"exp": now - 3600}))),
        ("wrong audience", jwt(serde_json::json!({"aud": "billing"}))),
    ] {
        let st = client(&server, &bad, ORG)
            .await
            .get_topic(topic_request())
            .await
            .expect_err(what);
        assert_status(&st, Code::Unauthenticated, "service.auth.error");
    }
}

#[tokio::test]
async fn jwt_nbf_iat_and_lifetime_are_checked() {
    // Found by the outside probe (issue 17, finding 8): a token valid from
    // tomorrow worked today, and a future `iat` or `exp` = 2^62 passed.
    let server = jwt_server().await;
    let now = unix_now();
    for (what, token) in [
        (
            "nbf and iat now",
            jwt(serde_json::json!({"nbf": now, "iat": now})),
        ),
        (
            "nbf 30 s ahead, within the clock skew",
            jwt(serde_json::json!({"nbf": now + 30})),
        ),
        (
            "iat 30 s ahead, within the clock skew",
            jwt(serde_json::json!({"iat": now + 30})),
        ),
        (
            "a lifetime of exactly 24 h",
            jwt(serde_json::json!({"iat": now, "exp": now + 86_400})),
        ),
    ] {
        client(&server, &token, ORG)
            .await
            .get_topic(topic_request())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    }
    for (what, token) in [
        (
            "valid from tomorrow",
            jwt(serde_json::json!({"nbf": now + 86_400})),
        ),
        (
            "issued in an hour",
            jwt(serde_json::json!({"iat": now + 3_600})),
        ),
        ("exp = 2^62", jwt(serde_json::json!({"exp": 1u64 << 62}))),
        (
            "a lifetime of 25 h",
            jwt(serde_json::json!({"iat": now, "exp": now + 25 * 3_600})),
        ),
        (
            "no iat and 30 days left",
            jwt(serde_json::json!({"exp": now + 30 * 86_400})),
        ),
    ] {
        let st = client(&server, &token, ORG)
            .await
            .get_topic(topic_request())
            .await
            .expect_err(what);
        assert_status(&st, Code::Unauthenticated, "service.auth.error");
    }
}

#[tokio::test]
async fn the_cli_makes_tokens_and_hashes_them() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let out = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .args(["token", "new"])
        .output()
        .expect("token new");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (token, sha) = (field("token:"), field("sha256:"));
    assert_eq!(token.len(), 64);
    assert_eq!(sha, hash_token(&token));
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("token hash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sha);
}

#[tokio::test]
async fn limits_hold_per_tenant() {
    const OTHER: &str = "00D5e000000OtheEAC";
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, tenant: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"{token}\"\ngrants = [\"publish:*\", \"subscribe:*\", \"admin\"]\n",
                hash_token(token)
            )
        };
        std::fs::write(&file, [entry("a", ORG), entry("b", OTHER)].join("\n")).expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
        a.max_subscriptions_per_tenant = 2;
        // 2 events/s: the 20-event request below leaves 9 s of debt, so the
        // refusal that follows cannot depend on how fast this test runs.
        a.publish_events_per_tenant = 2.0;
    })
    .await;
    // B works in its own namespace: its topic first.
    admin(&server, "b", OTHER)
        .await
        .create_topic(admin_pb::CreateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            schema_json: ORDER_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("B creates its topic");
    let open = |token: &'static str, tenant: &'static str| {
        let server = &server;
        async move {
            let (tx, rx) = mpsc::channel(1);
            tx.send(fetch(ReplayPreset::Latest, vec![], 1))
                .await
                .expect("send");
            let resp = client(server, token, tenant)
                .await
                .subscribe(ReceiverStream::new(rx))
                .await;
            (tx, resp)
        }
    };
    let (_t1, s1) = open("a", ORG).await;
    let s1 = s1.expect("first subscription");
    let (_t2, s2) = open("a", ORG).await;
    s2.expect("second subscription");
    let (_t3, s3) = open("a", ORG).await;
    let st = s3.expect_err("third subscription of the tenant");
    assert_status(
        &st,
        Code::ResourceExhausted,
        "concurrent.client.limit.exceeded",
    );
    let (_tb, sb) = open("b", OTHER).await;
    sb.expect("the other tenant is not affected");

    // Ending one subscription gives its slot back (once the server has
    // seen the stream end: a bounded poll, not a sleep).
    drop((s1, _t1));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_t, s) = open("a", ORG).await;
        match s {
            Ok(_) => break,
            Err(st) if tokio::time::Instant::now() < deadline => {
                assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(st) => panic!("the slot never came back: {st:?}"),
        }
    }

    // Publish rate.
    let mut a = client(&server, "a", ORG).await;
    let schema_id = a
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner()
        .schema_id;
    let request = |n: i64| pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events: (0..n).map(|i| order_event(&schema_id, i)).collect(),
        auth_refresh: String::new(),
    };
    a.publish(request(20))
        .await
        .expect("the first second's burst");
    let st = a.publish(request(1)).await.expect_err("over the rate");
    assert_status(&st, Code::ResourceExhausted, "service.protection.triggered");
    client(&server, "b", OTHER)
        .await
        .publish(request(2))
        .await
        .expect("the other tenant publishes");
}

const SHIPMENT_SCHEMA: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Carrier__c","type":["null","string"],"default":null}]}"#;

#[tokio::test]
async fn tenants_see_only_their_own_topics_events_and_schemas() {
    const ORG_B: &str = "00D5e000000BbbbEAC";
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, tenant: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"{token}\"\ngrants = [\"publish:*\", \"subscribe:*\", \"admin\"]\n",
                hash_token(token)
            )
        };
        std::fs::write(
            &file,
            [
                entry("a", ORG_A),
                entry("b", ORG_B),
                entry("home", eventbus::auth::DEFAULT_TENANT),
            ]
            .join("\n"),
        )
        .expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
    })
    .await;
    let with_tenant = |token: &'static str, tenant: &'static str| {
        let server = &server;
        async move {
            let ch = channel(server).await;
            (
                PubSubClient::with_interceptor(ch.clone(), creds(token, tenant)),
                AdminClient::with_interceptor(ch, creds(token, tenant)),
            )
        }
    };
    let (mut a, mut a_admin) = with_tenant("a", ORG_A).await;
    let (mut b, mut b_admin) = with_tenant("b", ORG_B).await;

    // The topics folder provisioned the default tenant only.
    let st = a.get_topic(topic_request()).await.expect_err("not A's");
    assert_status(&st, Code::NotFound, "topic.not.found");
    let (mut home, _) = with_tenant("home", eventbus::auth::DEFAULT_TENANT).await;
    home.get_topic(topic_request())
        .await
        .expect("the default tenant's topic");

    // Both tenants create the same name; each gets its own topic.
    for admin in [&mut a_admin, &mut b_admin] {
        admin
            .create_topic(admin_pb::CreateTopicRequest {
                topic_name: ORDER_TOPIC.into(),
                schema_json: ORDER_SCHEMA.into(),
                retention_ms: 0,
            })
            .await
            .expect("create in own namespace");
    }
    b_admin
        .create_topic(admin_pb::CreateTopicRequest {
            topic_name: "/event/Shipment__e".into(),
            schema_json: SHIPMENT_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("B's own topic");

    let info_a = a
        .get_topic(topic_request())
        .await
        .expect("A's")
        .into_inner();
    assert_eq!(info_a.topic_name, ORDER_TOPIC);
    assert_eq!(info_a.tenant_guid, ORG_A);
    let info_b = b
        .get_topic(topic_request())
        .await
        .expect("B's")
        .into_inner();
    assert_eq!(info_b.tenant_guid, ORG_B);

    for (client, n) in [(&mut a, 100), (&mut b, 200)] {
        let schema_id = client
            .get_topic(topic_request())
            .await
            .expect("topic")
            .into_inner()
            .schema_id;
        client
            .publish(pb::PublishRequest {
                topic_name: ORDER_TOPIC.into(),
                events: vec![order_event(&schema_id, n)],
                auth_refresh: String::new(),
            })
            .await
            .expect("publish");
    }
    for (client, n) in [(&mut a, 100), (&mut b, 200)] {
        let (tx, rx) = mpsc::channel(2);
        tx.send(fetch(ReplayPreset::Earliest, vec![], 10))
            .await
            .expect("send");
        let mut stream = client
            .subscribe(ReceiverStream::new(rx))
            .await
            .expect("subscribe")
            .into_inner();
        let resp = loop {
            let r = stream.message().await.expect("stream").expect("open");
            if !r.events.is_empty() {
                break r;
            }
        };
        assert_eq!(resp.events.len(), 1, "exactly the tenant's own event");
        let ev = resp.events[0].event.as_ref().expect("event");
        assert_eq!(ev.payload.to_vec(), order_payload(n));
        assert_eq!(replay_num(&resp.events[0].replay_id), 1, "own replay ids");
    }

    // A foreign topic answers exactly like an unknown one.
    let foreign = a
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Shipment__e".into(),
        })
        .await
        .expect_err("B's topic");
    let unknown = a
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Nothing__e".into(),
        })
        .await
        .expect_err("no topic");
    assert_eq!(foreign.code(), unknown.code());
    assert_eq!(error_code(&foreign), error_code(&unknown));
    assert!(!foreign.message().contains(ORG_B) && !foreign.message().contains("~"));
    // Nor can the stored form be named directly.
    let st = a
        .get_topic(pb::TopicRequest {
            topic_name: format!("/~{}/event/Shipment__e", &ORG_B[..15]),
        })
        .await
        .expect_err("stored form");
    assert_eq!(st.code(), unknown.code());
    // Publishing into it fails the same way.
    let st = a
        .publish(pb::PublishRequest {
            topic_name: "/event/Shipment__e".into(),
            events: vec![order_event(&info_a.schema_id, 1)],
            auth_refresh: String::new(),
        })
        .await
        .expect_err("publish to B's topic");
    assert_status(&st, Code::NotFound, "topic.not.found");

    // Schemas of B's topics are unknown to A.
    let shipment_schema = b
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Shipment__e".into(),
        })
        .await
        .expect("B's topic")
        .into_inner()
        .schema_id;
    let st = a
        .get_schema(pb::SchemaRequest {
            schema_id: shipment_schema.clone(),
        })
        .await
        .expect_err("B's schema");
    assert_status(&st, Code::NotFound, "schema.meta.permission");
    b.get_schema(pb::SchemaRequest {
        schema_id: shipment_schema,
    })
    .await
    .expect("own schema");

    // Listing shows only the tenant's own topics, by their client names.
    let names = |list: admin_pb::ListTopicsResponse| {
        let mut v: Vec<String> = list.topics.into_iter().map(|t| t.topic_name).collect();
        v.sort();
        v
    };
    let listed_a = names(
        a_admin
            .list_topics(admin_pb::ListTopicsRequest {})
            .await
            .expect("list")
            .into_inner(),
    );
    assert_eq!(listed_a, vec![ORDER_TOPIC.to_owned()]);
    let listed_b = names(
        b_admin
            .list_topics(admin_pb::ListTopicsRequest {})
            .await
            .expect("list")
            .into_inner(),
    );
    assert_eq!(
        listed_b,
        vec![
            "/event/Order_Event__e".to_owned(),
            "/event/Shipment__e".to_owned()
        ]
    );

    // Topics and namespaces survive a restart.
    let server = server.restart().await;
    let mut a = client(&server, "a", ORG_A).await;
    let info = a
        .get_topic(topic_request())
        .await
        .expect("after restart")
        .into_inner();
    assert_eq!(info.schema_id, info_a.schema_id);
}

#[tokio::test]
async fn the_cli_sends_the_token_and_tenant() {
    let server = static_server().await;
    let run = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"));
        cmd.args([
            "topic",
            "list",
            "--server",
            &server.addr.to_string(),
            "--tenant-id",
            ORG,
        ])
        .env_remove("EVENTBUS_ACCESS_TOKEN");
        if let Some(t) = token {
            cmd.env("EVENTBUS_ACCESS_TOKEN", t);
        }
        // Off the runtime thread: the server answers on this test's runtime.
        tokio::task::spawn_blocking(move || cmd.output().expect("run the CLI"))
    };
    let ok = run(Some("ops-token")).await.expect("join");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && stdout.contains(ORDER_TOPIC),
        "{stdout}"
    );
    let refused = run(None).await.expect("join");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("service.auth.error"),
        "{stderr}"
    );
}

#[tokio::test]
async fn managed_subscriptions_live_in_the_tenant_namespace_and_need_the_subscribe_grant() {
    const OTHER: &str = "00D5e000000OtheEAC";
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, tenant: &str, grants: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"{token}\"\ngrants = [{grants}]\n",
                hash_token(token)
            )
        };
        let body = [
            entry("a", ORG, "\"subscribe:*\", \"admin\""),
            entry("writer", ORG, "\"publish:*\""),
            entry("b", OTHER, "\"subscribe:*\", \"admin\""),
        ]
        .join("\n");
        std::fs::write(&file, body).expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
    })
    .await;
    let create = admin_pb::CreateManagedSubscriptionRequest {
        developer_name: "Shared_Name".into(),
        topic_name: ORDER_TOPIC.into(),
        ..Default::default()
    };
    let mine = admin(&server, "a", ORG)
        .await
        .create_managed_subscription(create.clone())
        .await
        .expect("A creates")
        .into_inner();
    // B sees nothing of A's: not in its list, not by id; it may use the
    // same developer name on its own topic.
    let mut b = admin(&server, "b", OTHER).await;
    let list = b
        .list_managed_subscriptions(admin_pb::ListManagedSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.subscriptions.is_empty(), "{list:?}");
    let st = b
        .describe_managed_subscription(admin_pb::ManagedSubscriptionRef {
            id: mine.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("A's id is unknown to B");
    assert_status(
        &st,
        Code::NotFound,
        "managed.subscription.subscription.id.not.found",
    );
    b.create_topic(admin_pb::CreateTopicRequest {
        topic_name: ORDER_TOPIC.into(),
        schema_json: ORDER_SCHEMA.into(),
        retention_ms: 0,
    })
    .await
    .expect("B's topic");
    let theirs = b
        .create_managed_subscription(create)
        .await
        .expect("the same developer name in another tenant")
        .into_inner();
    assert_eq!(
        theirs.topic_name, ORDER_TOPIC,
        "names are shown as the tenant sent them"
    );
    assert_ne!(theirs.id, mine.id);

    // Opening by id from another tenant: unknown. Without the subscribe
    // grant on the topic: refused.
    let managed = |token: &'static str, tenant: &'static str, req: pb::ManagedFetchRequest| {
        let server = &server;
        async move {
            let (tx, rx) = mpsc::channel(1);
            tx.send(req).await.expect("send");
            let resp = client(server, token, tenant)
                .await
                .managed_subscribe(ReceiverStream::new(rx))
                .await;
            (tx, resp)
        }
    };
    let by_id = |id: &str| pb::ManagedFetchRequest {
        subscription_id: id.into(),
        num_requested: 1,
        ..Default::default()
    };
    let (_t, r) = managed("b", OTHER, by_id(&mine.id)).await;
    assert_status(
        &r.expect_err("refused"),
        Code::NotFound,
        "managed.subscription.subscription.id.not.found",
    );
    let (_t, r) = managed("writer", ORG, by_id(&mine.id)).await;
    assert_status(
        &r.expect_err("refused"),
        Code::PermissionDenied,
        "subscription.topic.cannot.subscribe",
    );
    let (_t, r) = managed("a", ORG, by_id(&mine.id)).await;
    r.expect("A opens its own");
    let (_t, r) = managed("b", OTHER, by_id(&theirs.id)).await;
    r.expect("B opens its own at the same time: another subscription");
    server.shutdown().await;
}

/// A server whose tokens name one org by both of its ids: token `long`
/// by the 18-character id, token `short` by the 15-character one, each
/// with every grant.
async fn two_forms_server(adjust: impl FnOnce(&mut eventbus::config::ServeArgs)) -> TestServer {
    start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, tenant: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"{token}\"\ngrants = [\"publish:*\", \"subscribe:*\", \"admin\"]\n",
                hash_token(token)
            )
        };
        std::fs::write(
            &file,
            [entry("long", ORG_A), entry("short", &ORG_A[..15])].join("\n"),
        )
        .expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
        adjust(a);
    })
    .await
}

#[tokio::test]
async fn both_forms_of_an_org_id_are_one_tenant_for_managed_subscriptions_and_limits() {
    let server = two_forms_server(|a| {
        a.max_subscriptions_per_tenant = 1;
        a.max_managed_subscriptions_per_tenant = 1;
    })
    .await;
    let short = &ORG_A[..15];
    admin(&server, "long", ORG_A)
        .await
        .create_topic(admin_pb::CreateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            schema_json: ORDER_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("the tenant's topic");
    let create = |name: &str| admin_pb::CreateManagedSubscriptionRequest {
        developer_name: name.into(),
        topic_name: ORDER_TOPIC.into(),
        ..Default::default()
    };
    admin(&server, "long", ORG_A)
        .await
        .create_managed_subscription(create("Dup"))
        .await
        .expect("the first definition");
    let mut by_short = admin(&server, "short", short).await;
    let st = by_short
        .create_managed_subscription(create("Dup"))
        .await
        .expect_err("the same developer name for the same org");
    assert_status(
        &st,
        Code::AlreadyExists,
        "managed.subscription.already.exists",
    );
    let st = by_short
        .create_managed_subscription(create("Other"))
        .await
        .expect_err("the org is at its limit of one");
    assert_status(
        &st,
        Code::ResourceExhausted,
        "managed.subscription.limit.exceeded",
    );
    let listed = by_short
        .list_managed_subscriptions(admin_pb::ListManagedSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.subscriptions.len(), 1, "{listed:?}");
    assert_eq!(listed.subscriptions[0].developer_name, "Dup");

    // One subscription slot for the org, whichever id its token names.
    let (tx, rx) = mpsc::channel(1);
    tx.send(fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("send");
    let _held = client(&server, "long", ORG_A)
        .await
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect("the org's one subscription");
    let (tx2, rx2) = mpsc::channel(1);
    tx2.send(fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("send");
    let st = client(&server, "short", short)
        .await
        .subscribe(ReceiverStream::new(rx2))
        .await
        .expect_err("a second subscription of the same org");
    assert_status(
        &st,
        Code::ResourceExhausted,
        "concurrent.client.limit.exceeded",
    );
    // TopicInfo names the tenant by its canonical id either way.
    let info = client(&server, "short", short)
        .await
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner();
    assert_eq!(info.tenant_guid, ORG_A);
    drop((tx, tx2));
}

/// ORDER_SCHEMA with a doc string only tenant A may read.
fn a_private_text() -> String {
    ORDER_SCHEMA.replace("CreatedDate:DateTime", "A-private: margin is 40%")
}

/// ORDER_SCHEMA without its doc strings: the same canonical form, so the
/// same schema id.
fn plain_text() -> String {
    ORDER_SCHEMA
        .replace(r#", "doc": "CreatedDate:DateTime""#, "")
        .replace(r#", "doc": "CreatedBy:EntityId""#, "")
}

/// Tokens: `long` and `short` name tenant A by its 18- and 15-character
/// ids, `b` tenant B, `c` a tenant with no topics, `home` the default
/// tenant; each with every grant.
async fn schema_tenants_server() -> TestServer {
    const ORG_B: &str = "00D5e000000BbbbEAC";
    start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, tenant: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"{token}\"\ngrants = [\"publish:*\", \"subscribe:*\", \"admin\"]\n",
                hash_token(token)
            )
        };
        let body = [
            entry("long", ORG_A),
            entry("short", &ORG_A[..15]),
            entry("b", ORG_B),
            entry("c", "00D5e000000CcccEAC"),
            entry("home", ORG),
        ]
        .join("\n");
        std::fs::write(&file, body).expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
    })
    .await
}

/// The schema text GetSchema gives `token`, or the status.
async fn schema_text_of(
    server: &TestServer,
    token: &str,
    tenant: &str,
    id: &str,
) -> Result<String, tonic::Status> {
    client(server, token, tenant)
        .await
        .get_schema(pb::SchemaRequest {
            schema_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().schema_json)
}

/// The schema texts ListSchemas gives `token` for the order topic.
async fn listed_texts(server: &TestServer, token: &str, tenant: &str) -> Vec<String> {
    admin(server, token, tenant)
        .await
        .list_schemas(admin_pb::ListSchemasRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("list schemas")
        .into_inner()
        .versions
        .into_iter()
        .map(|v| v.schema_json)
        .collect()
}

#[tokio::test]
async fn each_tenant_reads_its_own_schema_text_under_either_form_of_its_id() {
    const ORG_B: &str = "00D5e000000BbbbEAC";
    let server = schema_tenants_server().await;
    let short = &ORG_A[..15];
    let (a_text, b_text) = (a_private_text(), plain_text());
    // A registers first, by its short id; B registers the same schema
    // without the doc strings.
    for (token, tenant, text) in [("short", short, &a_text), ("b", ORG_B, &b_text)] {
        admin(&server, token, tenant)
            .await
            .create_topic(admin_pb::CreateTopicRequest {
                topic_name: ORDER_TOPIC.into(),
                schema_json: text.clone(),
                retention_ms: 0,
            })
            .await
            .expect("create");
    }
    let id_of = |token: &'static str, tenant: &'static str| {
        let server = &server;
        async move {
            client(server, token, tenant)
                .await
                .get_topic(topic_request())
                .await
                .expect("topic")
                .into_inner()
                .schema_id
        }
    };
    let id = id_of("home", ORG).await;
    assert_eq!(id_of("long", ORG_A).await, id, "one canonical form, one id");
    assert_eq!(id_of("b", ORG_B).await, id);

    check_own_schema_texts(&server, &id).await;
    // Texts are stored per tenant: the same after a restart.
    let server = server.restart().await;
    check_own_schema_texts(&server, &id).await;
    server.shutdown().await;
}

/// What `each_tenant_reads_its_own_schema_text_under_either_form_of_its_id`
/// expects of schema `id`, before and after a restart.
async fn check_own_schema_texts(server: &TestServer, id: &str) {
    const ORG_B: &str = "00D5e000000BbbbEAC";
    let (a_text, b_text) = (a_private_text(), plain_text());
    // B reads its own text, never A's doc strings.
    let b_read = schema_text_of(server, "b", ORG_B, id).await.expect("B");
    assert_eq!(b_read, b_text);
    assert!(!b_read.contains("A-private"));
    assert_eq!(listed_texts(server, "b", ORG_B).await, vec![b_text.clone()]);
    // A reads its own text under either form of its id.
    for (token, tenant) in [("long", ORG_A), ("short", &ORG_A[..15])] {
        assert_eq!(
            schema_text_of(server, token, tenant, id).await.expect("A"),
            a_text,
            "{token}"
        );
        assert_eq!(
            listed_texts(server, token, tenant).await,
            vec![a_text.clone()]
        );
    }
    // The default tenant reads the topics folder's text.
    assert_eq!(
        schema_text_of(server, "home", ORG, id).await.expect("home"),
        ORDER_SCHEMA
    );
    // A tenant that never registered the schema does not get it.
    let st = schema_text_of(server, "c", "00D5e000000CcccEAC", id)
        .await
        .expect_err("C has no topic with it");
    assert_status(&st, Code::NotFound, "schema.meta.permission");
}

#[tokio::test]
async fn get_schema_needs_a_grant_on_a_topic_of_the_schema() {
    let server = static_server().await;
    let id = client(&server, "writer-token", ORG)
        .await
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner()
        .schema_id;
    // A grant to publish or to subscribe to the topic reads its schema, and
    // so does the admin grant (ListSchemas shows an admin every text).
    for token in ["writer-token", "reader-token", "ops-token"] {
        assert_eq!(
            schema_text_of(&server, token, ORG, &id).await.expect(token),
            ORDER_SCHEMA
        );
    }
    assert_eq!(
        listed_texts(&server, "ops-token", ORG).await,
        vec![ORDER_SCHEMA.to_owned()]
    );
    // A grant on another topic only does not: answered like an unknown id.
    let st = schema_text_of(&server, "other-token", ORG, &id)
        .await
        .expect_err("no grant on the order topic");
    assert_status(&st, Code::NotFound, "schema.meta.permission");
    let unknown = schema_text_of(&server, "other-token", ORG, "AAAAAAAAAAAAAAAAAAAAAA")
        .await
        .expect_err("unknown id");
    assert_eq!(st.code(), unknown.code());
    assert_eq!(error_code(&st), error_code(&unknown));
}

/// A schema only tenant B uses.
const SHIPMENT_DOC_SCHEMA: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long","doc":"B's shipment note"}]}"#;

/// Rewrites the schema texts of a stopped server's RocksDB store the way
/// versions before per-tenant texts stored them: no tenant texts, one text
/// per id (`texts`).
async fn store_schemas_the_old_way(data: &std::path::Path, texts: &[(&str, &str)]) {
    use eventbus::log::{CatalogStore, Durability, EventLog};
    use eventbus_rocksdb::store::{CF_META, Store};
    use eventbus_rocksdb::{RocksTopicLog, keys};
    let store = Store::open(data).expect("open the store");
    let log = RocksTopicLog::open(
        &store,
        Durability::Sync,
        std::time::Duration::from_millis(50),
        std::sync::Arc::new(eventbus::telemetry::metrics::Metrics::new()),
    )
    .expect("open the log");
    let schemas = log.load_catalog().await.expect("catalog").schemas;
    let db = store.db();
    let meta = db.cf_handle(CF_META).expect("meta column family");
    for rec in &schemas {
        let tenant = rec.tenant.as_ref().expect("this version stores per tenant");
        db.delete_cf(meta, keys::tenant_schema_key(tenant, rec.id.as_str()))
            .expect("delete");
    }
    for (id, json) in texts {
        db.put_cf(meta, keys::schema_key(id), json).expect("put");
    }
    log.close().await.expect("close");
}

#[tokio::test]
async fn schema_texts_stored_by_older_versions_go_to_their_tenant_only() {
    if on_jetstream() {
        // This test edits a RocksDB store; the JetStream layout is checked
        // in crates/jetstream/src/tests.rs.
        return;
    }
    const ORG_B: &str = "00D5e000000BbbbEAC";
    let server = schema_tenants_server().await;
    for (token, tenant, topic, text) in [
        ("long", ORG_A, ORDER_TOPIC, a_private_text()),
        ("b", ORG_B, ORDER_TOPIC, plain_text()),
        (
            "b",
            ORG_B,
            "/event/Shipment__e",
            SHIPMENT_DOC_SCHEMA.to_owned(),
        ),
    ] {
        admin(&server, token, tenant)
            .await
            .create_topic(admin_pb::CreateTopicRequest {
                topic_name: topic.into(),
                schema_json: text,
                retention_ms: 0,
            })
            .await
            .expect("create");
    }
    let id_of = |token: &'static str, tenant: &'static str, topic: &'static str| {
        let server = &server;
        async move {
            client(server, token, tenant)
                .await
                .get_topic(pb::TopicRequest {
                    topic_name: topic.into(),
                })
                .await
                .expect("topic")
                .into_inner()
                .schema_id
        }
    };
    let order = id_of("b", ORG_B, ORDER_TOPIC).await;
    let shipment = id_of("b", ORG_B, "/event/Shipment__e").await;

    // What an older version would have left: one text per id, the order
    // schema's being A's (with its private doc).
    let (args, dir) = server.shutdown().await;
    let a_text = a_private_text();
    store_schemas_the_old_way(
        &args.data_dir,
        &[
            (order.as_str(), a_text.as_str()),
            (shipment.as_str(), SHIPMENT_DOC_SCHEMA),
        ],
    )
    .await;
    let server = TestServer::start_again(args, dir).await;

    // Only B's topics use the shipment schema: its text is B's.
    assert_eq!(
        schema_text_of(&server, "b", ORG_B, &shipment)
            .await
            .expect("B"),
        SHIPMENT_DOC_SCHEMA
    );
    // Three tenants use the order schema: B does not get A's text, nor
    // does A get a text it cannot be told is its own; both read the
    // canonical form, with no doc strings at all.
    let b_read = schema_text_of(&server, "b", ORG_B, &order)
        .await
        .expect("B");
    assert!(
        !b_read.contains("A-private") && !b_read.contains("doc"),
        "{b_read}"
    );
    let a_read = schema_text_of(&server, "long", ORG_A, &order)
        .await
        .expect("A");
    assert_eq!(a_read, b_read);
    // The default tenant's topics folder registered its text again at start.
    assert_eq!(
        schema_text_of(&server, "home", ORG, &order)
            .await
            .expect("home"),
        ORDER_SCHEMA
    );
    // A registers its schema again and reads its own text; B still not.
    admin(&server, "short", &ORG_A[..15])
        .await
        .register_schema(admin_pb::RegisterSchemaRequest {
            topic_name: ORDER_TOPIC.into(),
            schema_json: a_text.clone(),
        })
        .await
        .expect("register again");
    assert_eq!(
        schema_text_of(&server, "long", ORG_A, &order)
            .await
            .expect("A"),
        a_text
    );
    assert_eq!(
        schema_text_of(&server, "b", ORG_B, &order)
            .await
            .expect("B"),
        b_read
    );

    // The shipment text was given to B for good: a topic of A with the same
    // schema (A's own text) changes nothing after a restart.
    admin(&server, "long", ORG_A)
        .await
        .create_topic(admin_pb::CreateTopicRequest {
            topic_name: "/event/Shipment__e".into(),
            schema_json: SHIPMENT_DOC_SCHEMA.replace("B's shipment note", "A's"),
            retention_ms: 0,
        })
        .await
        .expect("A's shipment topic");
    let server = server.restart().await;
    assert_eq!(
        schema_text_of(&server, "b", ORG_B, &shipment)
            .await
            .expect("B"),
        SHIPMENT_DOC_SCHEMA
    );
    assert!(
        schema_text_of(&server, "long", ORG_A, &shipment)
            .await
            .expect("A")
            .contains("\"A's\"")
    );
    assert_eq!(
        schema_text_of(&server, "long", ORG_A, &order)
            .await
            .expect("A"),
        a_text
    );
    server.shutdown().await;
}

/// `/metrics` over plain HTTP/1.0; the whole answer.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), fetch)
        .await
        .expect("metrics within 10 s")
        .expect("metrics readable")
}

/// A server where token `a` is tenant [`ORG_A`] with every grant, with
/// metrics on, and A's own `/event/Order_Event__e`; and A's current schema id.
async fn tenant_a_server() -> (TestServer, String) {
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        std::fs::write(
            &file,
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG_A}\"\nprincipal = \"a\"\ngrants = [\"publish:*\", \"subscribe:*\", \"admin\"]\n",
                hash_token("a")
            ),
        )
        .expect("tokens");
        a.auth = AuthMode::Static;
        // The topics folder for the default tenant only: the other tenants
        // here make their own topics.
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
        a.metrics_listen = "127.0.0.1:0".into();
    })
    .await;
    admin(&server, "a", ORG_A)
        .await
        .create_topic(admin_pb::CreateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            schema_json: ORDER_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("A creates its topic");
    let schema_id = client(&server, "a", ORG_A)
        .await
        .get_topic(topic_request())
        .await
        .expect("topic")
        .into_inner()
        .schema_id;
    (server, schema_id)
}

/// Whether `text` shows A's stored names or its org id.
fn shows_stored_names(text: &str) -> bool {
    text.contains("/~") || text.contains(&ORG_A[..15])
}

/// A request with a good event and one whose schema id is not the topic's.
fn good_and_bad(schema_id: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events: vec![
            order_event(schema_id, 1),
            order_event("NotASchemaOfTheTopic00", 2),
        ],
        auth_refresh: String::new(),
    }
}

#[tokio::test]
async fn a_tenant_sees_its_own_topic_names_in_errors() {
    // Found by the outside probe (issue 17, finding 9): per-event errors
    // quoted the stored name `/~<org>/event/...`.
    let (server, schema_id) = tenant_a_server().await;
    let mut a = client(&server, "a", ORG_A).await;
    let unary = a
        .publish(good_and_bad(&schema_id))
        .await
        .expect("publish")
        .into_inner();
    let (tx, rx) = mpsc::channel(1);
    tx.send(good_and_bad(&schema_id)).await.expect("send");
    drop(tx);
    let mut responses = a
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let streamed = responses
        .message()
        .await
        .expect("stream answers")
        .expect("one response");
    for (how, resp) in [("Publish", unary), ("PublishStream", streamed)] {
        assert!(resp.results[0].error.is_none(), "{how}: {resp:?}");
        let msg = &resp.results[1]
            .error
            .as_ref()
            .expect("the bad event fails")
            .msg;
        assert!(
            msg.contains(&format!("topic {ORDER_TOPIC}")) && !shows_stored_names(msg),
            "{how}: the caller's name, not the stored one: {msg}"
        );
    }

    // A subscription whose topic is deleted under it.
    // `tx` stays open: a half-closed subscription would end with OK.
    let (tx, rx) = mpsc::channel(1);
    tx.send(fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .expect("send");
    let mut stream = a
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect("subscribe")
        .into_inner();
    collect_events(&mut stream, 2).await;
    admin(&server, "a", ORG_A)
        .await
        .delete_topic(admin_pb::DeleteTopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("delete");
    let st = loop {
        match next(&mut stream).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(st) => break st,
        }
    };
    assert_status(&st, Code::NotFound, "topic.not.found");
    assert!(
        st.message().contains(ORDER_TOPIC) && !shows_stored_names(st.message()),
        "{}",
        st.message()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_name_no_other_tenant_by_default() {
    // Found by the outside probe (issue 17, finding 9): the unauthenticated
    // /metrics labelled counters with every tenant's stored topic name.
    let (server, schema_id) = tenant_a_server().await;
    client(&server, "a", ORG_A)
        .await
        .publish(good_and_bad(&schema_id))
        .await
        .expect("publish");
    let body = scrape(server.metrics.expect("metrics on")).await;
    assert!(!shows_stored_names(&body), "{body}");
    for series in [
        "pubsub_publish_events_total{topic=\"other-tenants\"} 1",
        "pubsub_publish_rejected_events_total{topic=\"other-tenants\"} 1",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    server.shutdown().await;
}
