//! The web console (issue 23) over real HTTP on 127.0.0.1: `/` redirecting,
//! the login form (good and bad), the session cookie's attributes, the
//! overview (the caller's org's topics only), CSRF refusals on logout, the
//! live overview's Server-Sent Events, the assets, and `--auth none`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use eventbus::auth::AuthMode;
use eventbus::auth::org::hash_secret;
use serde_json::Value;

use crate::common::*;
use crate::http_client::{exchange as http, form};

pub const ORG: &str = "00D000000000000EAA";
/// A topic of another org, stored under its namespace.
const OTHER_ORG_TOPIC: &str = "/~00D000000000002/event/Secret_Event__e";

pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// A server with `--auth static`, an org users file (ops: publish and
/// subscribe on /event/*, password `pw`) and the HTTP listener on; a
/// topic of another org besides the default org's order topic.
pub async fn console_server() -> (TestServer, SocketAddr) {
    console_server_with("", "tokens = []\n").await
}

/// [`console_server`] with more users (TOML `[[users]]` entries) and the
/// tokens file's text.
pub async fn console_server_with(more_users: &str, tokens_toml: &str) -> (TestServer, SocketAddr) {
    let more_users = more_users.to_owned();
    let tokens_toml = tokens_toml.to_owned();
    let server = start_with(move |a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let tokens = dir.join("tokens.toml");
        std::fs::write(&tokens, &tokens_toml).expect("tokens file");
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
name = "Olga Ops"
grants = ["publish:/event/*", "subscribe:/event/*"]
{more_users}"#,
                pw = hash_secret("pw")
            ),
        )
        .expect("users file");
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(tokens);
        a.org_users_file = Some(users);
        a.http_listen = "127.0.0.1:0".into();
    })
    .await;
    let schema = eventbus::schema::ParsedSchema::parse(ORDER_SCHEMA).expect("schema");
    server
        .broker
        .create_topic(OTHER_ORG_TOPIC, schema, None)
        .await
        .expect("other org's topic");
    let addr = server.tooling.expect("http listener on");
    (server, addr)
}

/// The `name=value` of the `Set-Cookie` named `name`.
pub fn set_cookie<'a>(h: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    h.get("set-cookie")?
        .lines()
        .find(|l| l.starts_with(&format!("{name}=")))
}

/// Shows the login form: its cookie (`name=value`) and CSRF token.
pub async fn login_form(addr: SocketAddr) -> (String, String) {
    let (status, h, page) = http(addr, "GET", "/console/login", &[], b"").await;
    assert_eq!(status, 200, "{page}");
    let set = set_cookie(&h, "eventbus_console_login").expect("the login form's cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("name=value").to_owned();
    (cookie, csrf_of(&page))
}

/// Posts the login form as a browser would.
pub async fn post_login(
    addr: SocketAddr,
    user: &str,
    pw: &str,
) -> (u16, HashMap<String, String>, String) {
    let (cookie, token) = login_form(addr).await;
    http(
        addr,
        "POST",
        "/console/login",
        &[FORM, ("Cookie", &cookie)],
        &form(&[("csrf", &token), ("username", user), ("password", pw)]),
    )
    .await
}

/// Logs in as ops; the `Cookie` header value to send from then on.
pub async fn log_in(addr: SocketAddr) -> String {
    log_in_as(addr, "ops@acme.example").await
}

/// Logs in as `user` (password `pw`); the `Cookie` header value.
pub async fn log_in_as(addr: SocketAddr, user: &str) -> String {
    let (status, h, body) = post_login(addr, user, "pw").await;
    assert_eq!(status, 303, "{body}");
    let cookie = set_cookie(&h, "eventbus_console").expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

/// The CSRF token of the overview's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().expect("token").to_owned()
}

#[tokio::test]
async fn the_root_redirects_to_the_console_and_the_console_to_the_login() {
    let (_server, addr) = console_server().await;
    let (status, h, _) = http(addr, "GET", "/", &[], b"").await;
    assert_eq!(
        (status, h.get("location").map(String::as_str)),
        (303, Some("/console"))
    );
    let (status, h, _) = http(addr, "GET", "/console", &[], b"").await;
    assert_eq!(
        (status, h.get("location").map(String::as_str)),
        (303, Some("/console/login"))
    );
    let (status, h, body) = http(addr, "GET", "/console/login", &[], b"").await;
    assert_eq!(status, 200);
    assert!(h["content-type"].starts_with("text/html"), "{h:?}");
    assert!(h["content-security-policy"].contains("frame-ancestors 'none'"));
    assert!(body.contains(r#"name="password""#), "{body}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_sets_no_cookie() {
    let (_server, addr) = console_server().await;
    for (user, pw) in [
        ("ops@acme.example", "nope"),
        ("nobody@acme.example", "pw"),
        ("", ""),
    ] {
        let (status, h, body) = post_login(addr, user, pw).await;
        assert_eq!(status, 401, "{user}: {body}");
        assert!(set_cookie(&h, "eventbus_console").is_none(), "{h:?}");
        assert!(body.contains("Wrong username or password."), "{body}");
    }
    // The login form's CSRF token is needed too, with its own cookie.
    let good = form(&[("username", "ops@acme.example"), ("password", "pw")]);
    let (status, _, _) = http(addr, "POST", "/console/login", &[FORM], &good).await;
    assert_eq!(status, 403, "no token");
    let (cookie, token) = login_form(addr).await;
    let (_, other_token) = login_form(addr).await;
    let with = |t: &str| {
        form(&[
            ("csrf", t),
            ("username", "ops@acme.example"),
            ("password", "pw"),
        ])
    };
    let (status, _, _) = http(addr, "POST", "/console/login", &[FORM], &with(&token)).await;
    assert_eq!(status, 403, "a token without its cookie");
    let (status, _, _) = http(
        addr,
        "POST",
        "/console/login",
        &[FORM, ("Cookie", &cookie)],
        &with(&other_token),
    )
    .await;
    assert_eq!(status, 403, "another form's token");
    let (status, _, _) = http(
        addr,
        "POST",
        "/console/login",
        &[FORM, ("Cookie", &cookie)],
        &with(&token),
    )
    .await;
    assert_eq!(status, 303, "the form's own token");
    // A cookie that names no session is no login.
    let (status, _, _) = http(
        addr,
        "GET",
        "/console",
        &[("Cookie", "eventbus_console=00D000000000000!forged")],
        b"",
    )
    .await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_the_overview_shows_the_orgs_topics_only() {
    let (server, addr) = console_server().await;
    let (status, h, _) = post_login(addr, "ops@acme.example", "pw").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console"));
    let set = set_cookie(&h, "eventbus_console").expect("the session cookie");
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(
        attrs[0].starts_with("eventbus_console=") && attrs[0].len() > 30,
        "{set}"
    );
    for want in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(attrs.contains(&want), "{want} missing: {set}");
    }
    assert!(!attrs.contains(&"Secure"), "no TLS, no Secure: {set}");
    let cookie = attrs[0].to_owned();

    let (status, h, page) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        page.contains(&format!(r#"data-topic="{ORDER_TOPIC}""#)),
        "{page}"
    );
    assert!(
        !page.contains("Secret_Event__e"),
        "another org's topic shown: {page}"
    );
    assert!(page.contains("ops@acme.example"), "{page}");
    assert!(page.contains("<svg class=\"spark\""), "{page}");
    let schema = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .to_string();
    assert!(page.contains(&schema), "the current schema id: {page}");
    assert!(
        page.contains("rocksdb") || page.contains("jetstream"),
        "{page}"
    );
    // The login form sends a logged-in viewer on.
    let (status, h, _) = http(addr, "GET", "/console/login", &[("Cookie", &cookie)], b"").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console"));
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let (_server, addr) = console_server().await;
    let cookie = log_in(addr).await;
    let (_, _, page) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    let token = csrf_of(&page);

    let other = log_in(addr).await;
    let (_, _, other_page) = http(addr, "GET", "/console", &[("Cookie", &other)], b"").await;
    let others_token = csrf_of(&other_page);
    assert_ne!(token, others_token, "tokens are per session");

    for body in [
        form(&[]),
        form(&[("csrf", "")]),
        form(&[("csrf", "AAAA")]),
        form(&[("csrf", &others_token)]),
    ] {
        let (status, _, text) = http(
            addr,
            "POST",
            "/console/logout",
            &[FORM, ("Cookie", &cookie)],
            &body,
        )
        .await;
        assert_eq!(status, 403, "{text}");
    }
    // Still logged in.
    let (status, _, _) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200);

    let (status, h, _) = http(
        addr,
        "POST",
        "/console/logout",
        &[FORM, ("Cookie", &cookie)],
        &form(&[("csrf", &token)]),
    )
    .await;
    assert_eq!((status, h["location"].as_str()), (303, "/console/login"));
    let cleared = set_cookie(&h, "eventbus_console").expect("the cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{h:?}");
    let (status, h, _) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    assert_eq!(
        (status, h["location"].as_str()),
        (303, "/console/login"),
        "the session ended"
    );
    // The other session lives on.
    let (status, _, _) = http(addr, "GET", "/console", &[("Cookie", &other)], b"").await;
    assert_eq!(status, 200);
}

/// Opens the live overview and returns the first event's JSON.
async fn first_overview_event(
    addr: SocketAddr,
    cookie: Option<&str>,
) -> (HashMap<String, String>, Value) {
    let (headers, snap, _conn) = open_overview_stream(addr, cookie).await;
    (headers, snap)
}

/// Opens the live overview: the response headers, the first event's JSON
/// and the connection, still open.
async fn open_overview_stream(
    addr: SocketAddr,
    cookie: Option<&str>,
) -> (HashMap<String, String>, Value, tokio::net::TcpStream) {
    open_sse(addr, "/console/events/overview", "overview", cookie).await
}

/// Opens the Server-Sent Events stream at `path`: the response headers,
/// the first `event`'s JSON and the connection, still open.
pub async fn open_sse(
    addr: SocketAddr,
    path: &str,
    event: &str,
    cookie: Option<&str>,
) -> (HashMap<String, String>, Value, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{cookie}\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let text = read_until_event(&mut conn, &mut raw, event).await;
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let data = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    (headers, serde_json::from_str(data).expect("JSON"), conn)
}

/// Reads from `conn` into `raw` until the body holds a complete `event`
/// (within 20 s); the text read so far.
async fn read_until_event(
    conn: &mut tokio::net::TcpStream,
    raw: &mut Vec<u8>,
    event: &str,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let marker = format!("event: {event}");
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "the stream ended early: {}",
                String::from_utf8_lossy(raw)
            );
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(raw).into_owned();
            if let Some((_, body)) = text.split_once("\r\n\r\n")
                && body.contains(&marker)
                && body.contains("\n\n")
            {
                return text;
            }
        }
    })
    .await
    .expect("an event within 20 s")
}

/// The next `event`'s JSON on an open stream (events are sent whole in one
/// chunk each; chunk framing lines are skipped).
pub async fn next_sse(conn: &mut tokio::net::TcpStream, event: &str) -> Value {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16384];
    let marker = format!("event: {event}");
    let text = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "the stream ended early");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some(at) = text.find(&marker)
                && text[at..].contains("\n\n")
            {
                return text[at..].to_owned();
            }
        }
    })
    .await
    .expect("an event within 20 s");
    let data: String = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .collect();
    serde_json::from_str(&data).expect("JSON")
}

#[tokio::test]
async fn an_open_live_overview_does_not_hold_up_shutdown() {
    use tokio::io::AsyncReadExt;
    let (server, addr) = console_server().await;
    let cookie = log_in(addr).await;
    let (_, _, mut conn) = open_overview_stream(addr, Some(&cookie)).await;
    tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .expect("the server stops with a live overview open");
    // The stream ended: the connection reaches its end.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .expect("the stream ends")
        .expect("read");
}

#[tokio::test]
async fn the_live_overview_sends_the_current_numbers() {
    let (server, addr) = console_server().await;
    let (status, _, _) = http(addr, "GET", "/console/events/overview", &[], b"").await;
    assert_eq!(status, 401, "no session, no stream");
    let cookie = log_in(addr).await;
    let (headers, snap) = first_overview_event(addr, Some(&cookie)).await;
    assert!(
        headers["content-type"].starts_with("text/event-stream"),
        "{headers:?}"
    );
    let topics = snap["topics"].as_array().expect("topics");
    assert!(
        topics
            .iter()
            .all(|t| !t["name"].as_str().unwrap_or("").contains("Secret")),
        "{snap}"
    );
    let order = topics
        .iter()
        .find(|t| t["name"] == ORDER_TOPIC)
        .expect("the order topic");
    let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
    let stored = server.broker.bounds(topic.id).expect("bounds");
    assert_eq!(
        order["events"],
        stored.latest.0 - stored.trimmed.0,
        "{snap}"
    );
    assert!(
        order["path"].as_str().expect("path").starts_with("M0"),
        "{snap}"
    );
    assert!(
        order["rate"].as_str().expect("rate").ends_with("/s"),
        "{snap}"
    );
    assert!(snap["uptime"].is_string(), "{snap}");
}

#[tokio::test]
async fn the_assets_are_served_with_their_types_and_cache_headers() {
    let (_server, addr) = console_server().await;
    for (path, kind, has) in [
        ("/console/assets/console.css", "text/css", ".spark"),
        (
            "/console/assets/console.js",
            "text/javascript",
            "EventSource",
        ),
    ] {
        let (status, h, body) = http(addr, "GET", path, &[], b"").await;
        assert_eq!(status, 200, "{path}");
        assert!(h["content-type"].starts_with(kind), "{path}: {h:?}");
        assert!(h["cache-control"].contains("max-age="), "{path}: {h:?}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(body.contains(has), "{path}");
    }
    let (status, _, _) = http(addr, "GET", "/console/assets/../Cargo.toml", &[], b"").await;
    assert_ne!(status, 200);
    let (status, _, _) = http(addr, "GET", "/console/assets/nope.js", &[], b"").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn with_auth_none_the_console_is_open() {
    let server = start_with(|a| a.http_listen = "127.0.0.1:0".into()).await;
    let addr = server.tooling.expect("http listener on");
    publish_orders(&server, 1, 3).await;
    let (status, _, page) = http(addr, "GET", "/console", &[], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(ORDER_TOPIC), "{page}");
    assert!(!page.contains("Log out"), "nothing to log out of: {page}");
    let (status, h, _) = http(addr, "GET", "/console/login", &[], b"").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console"));
    let (_, snap) = first_overview_event(addr, None).await;
    let order = snap["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["name"] == ORDER_TOPIC)
        .cloned()
        .expect("the order topic");
    assert_eq!(order["events"], 3, "{snap}");
    // Actions still need the token.
    let (status, _, _) = http(addr, "POST", "/console/logout", &[FORM], &form(&[])).await;
    assert_eq!(status, 403);
}

/// The admin user of the Consumers tests (password `pw`).
const ADMIN_USER: &str = "admin@acme.example";

/// A server whose org has an admin user besides ops, and a static token
/// (`reader-token`) of the org to open a Subscribe stream with.
async fn consumers_server() -> (TestServer, SocketAddr) {
    let admin = format!(
        r#"
[[users]]
username = "{ADMIN_USER}"
password = "{pw}"
org_id = "{ORG}"
user_id = "005000000000002"
name = "Ada Admin"
grants = ["publish:/event/*", "subscribe:/event/*", "admin"]
"#,
        pw = hash_secret("pw")
    );
    let tokens = format!(
        "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"reader\"\ngrants = [\"subscribe:/event/*\", \"publish:/event/*\"]\n",
        eventbus::auth::hash_token("reader-token")
    );
    console_server_with(&admin, &tokens).await
}

/// A managed subscription of `tenant` on `topic` (stored name), RUN.
async fn managed_of(server: &TestServer, tenant: &str, topic: &str, name: &str) -> String {
    use eventbus::types::{ManagedReplay, ManagedState};
    server
        .broker
        .create_managed(
            tenant,
            eventbus::broker::NewManaged {
                developer_name: name.into(),
                topic: topic.into(),
                default_replay: ManagedReplay::Earliest,
                error_recovery_replay: ManagedReplay::Earliest,
                state: ManagedState::Run,
            },
        )
        .await
        .expect("managed subscription")
        .record
        .id
}

/// The state of managed subscription `id` of the default org, as the
/// broker has it.
fn managed_state(server: &TestServer, id: &str) -> Option<String> {
    server
        .broker
        .describe_managed(ORG, &eventbus::broker::ManagedRef::Id(id.into()))
        .ok()
        .map(|v| v.record.state.to_string())
}

/// Sends the static token `reader-token` of the default org with every call.
#[derive(Clone)]
struct ReaderToken;

impl tonic::service::Interceptor for ReaderToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert("accesstoken", "reader-token".parse().expect("ascii"));
        md.insert(
            "instanceurl",
            "https://acme.example".parse().expect("ascii"),
        );
        md.insert("tenantid", ORG.parse().expect("ascii"));
        Ok(req)
    }
}

type ReaderClient = eventbus::api::pb::pub_sub_client::PubSubClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ReaderToken>,
>;

/// A Pub/Sub client of the default org with `reader-token`.
async fn reader_client(server: &TestServer) -> ReaderClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    eventbus::api::pb::pub_sub_client::PubSubClient::with_interceptor(channel, ReaderToken)
}

/// Publishes `n` order events with `reader-token`; their replay ids.
async fn publish_as_reader(server: &TestServer, n: i64) -> Vec<Vec<u8>> {
    let schema = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .to_string();
    reader_client(server)
        .await
        .publish(eventbus::api::pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: (0..n).map(|i| order_event(&schema, i)).collect(),
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.replay_id.to_vec())
        .collect()
}

/// The committed offset of managed subscription `id` of the default org.
fn committed(server: &TestServer, id: &str) -> Option<u64> {
    server
        .broker
        .describe_managed(ORG, &eventbus::broker::ManagedRef::Id(id.into()))
        .expect("managed subscription")
        .committed
        .map(|o| o.0)
}

/// Posts the Consumers action form.
async fn act(addr: SocketAddr, cookie: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let (status, h, body) = http(
        addr,
        "POST",
        "/console/consumers/managed",
        &[FORM, ("Cookie", cookie)],
        &form(fields),
    )
    .await;
    (status, h.get("location").cloned().unwrap_or_default(), body)
}

#[tokio::test]
async fn the_consumers_page_lists_the_orgs_streams_and_managed_subscriptions_only() {
    let (server, addr) = consumers_server().await;
    let mine = managed_of(&server, ORG, ORDER_TOPIC, "Order_Watcher").await;
    let theirs = managed_of(&server, "00D000000000002", OTHER_ORG_TOPIC, "Their_Watcher").await;

    let mut client = reader_client(&server).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(fetch(eventbus::api::pb::ReplayPreset::Earliest, vec![], 2))
        .await
        .expect("first request");
    let events = client
        .subscribe(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("subscribe")
        .into_inner();

    let cookie = log_in_as(addr, ADMIN_USER).await;
    let page = eventually(
        "the stream to show its deliveries",
        Duration::from_secs(10),
        || {
            let cookie = cookie.clone();
            async move {
                let (status, _, page) = http(
                    addr,
                    "GET",
                    "/console/consumers",
                    &[("Cookie", &cookie)],
                    b"",
                )
                .await;
                assert_eq!(status, 200, "{page}");
                page.contains("Subscribe</td>").then_some(page)
            }
        },
    )
    .await;
    assert!(
        page.contains(&format!(r#"data-stream="{ORDER_TOPIC}""#)),
        "{page}"
    );
    assert!(page.contains(">reader</td>"), "the stream's user: {page}");
    assert!(page.contains("127.0.0.1:"), "the client's address: {page}");
    assert!(
        page.contains(&format!(r#"data-managed="{mine}""#)),
        "{page}"
    );
    assert!(page.contains("Order_Watcher"), "{page}");
    assert!(
        !page.contains(&theirs),
        "another org's subscription: {page}"
    );
    assert!(
        !page.contains("Their_Watcher") && !page.contains("Secret_Event"),
        "{page}"
    );
    assert!(
        page.contains(r#"action="/console/consumers/managed""#),
        "admin sees forms"
    );
    assert!(page.contains("I am sure"), "{page}");
    // The overview links to it.
    let (_, _, overview) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    assert!(
        overview.contains(r#"href="/console/consumers""#),
        "{overview}"
    );
    // Without a session: the login form.
    let (status, h, _) = http(addr, "GET", "/console/consumers", &[], b"").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console/login"));
    drop((tx, events));
}

#[tokio::test]
async fn an_admin_stops_runs_and_deletes_a_managed_subscription_through_the_forms() {
    let (server, addr) = consumers_server().await;
    let id = managed_of(&server, ORG, ORDER_TOPIC, "Order_Watcher").await;
    let cookie = log_in_as(addr, ADMIN_USER).await;
    let (_, _, page) = http(
        addr,
        "GET",
        "/console/consumers",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    let token = csrf_of(&page);

    let (status, location, body) = act(
        addr,
        &cookie,
        &[("csrf", &token), ("id", &id), ("action", "stop")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(
        location.starts_with("/console/consumers?msg="),
        "{location}"
    );
    assert_eq!(managed_state(&server, &id).as_deref(), Some("STOP"));
    let (_, _, page) = http(addr, "GET", &location, &[("Cookie", &cookie)], b"").await;
    assert!(page.contains("Order_Watcher is now STOP."), "{page}");
    assert!(page.contains(r#"value="run""#), "{page}");

    let (status, _, body) = act(
        addr,
        &cookie,
        &[("csrf", &token), ("id", &id), ("action", "run")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(managed_state(&server, &id).as_deref(), Some("RUN"));

    // Delete needs the box ticked.
    let (status, _, body) = act(
        addr,
        &cookie,
        &[("csrf", &token), ("id", &id), ("action", "delete")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(managed_state(&server, &id).is_some(), "not deleted");
    let (status, location, body) = act(
        addr,
        &cookie,
        &[
            ("csrf", &token),
            ("id", &id),
            ("action", "delete"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(managed_state(&server, &id).is_none(), "deleted");
    let (_, _, page) = http(addr, "GET", &location, &[("Cookie", &cookie)], b"").await;
    assert!(page.contains("Order_Watcher deleted."), "{page}");

    // An unknown one is a result line, not a crash.
    let (status, location, _) = act(
        addr,
        &cookie,
        &[("csrf", &token), ("id", &id), ("action", "run")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.contains("Failed"), "{location}");
}

#[tokio::test]
async fn consumers_actions_need_the_csrf_token_and_the_admin_grant() {
    let (server, addr) = consumers_server().await;
    let id = managed_of(&server, ORG, ORDER_TOPIC, "Order_Watcher").await;
    let admin = log_in_as(addr, ADMIN_USER).await;
    let (_, _, page) = http(
        addr,
        "GET",
        "/console/consumers",
        &[("Cookie", &admin)],
        b"",
    )
    .await;
    let admin_token = csrf_of(&page);

    let ops = log_in(addr).await;
    let (status, _, page) = http(addr, "GET", "/console/consumers", &[("Cookie", &ops)], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Order_Watcher"), "ops sees the list: {page}");
    assert!(
        !page.contains("/console/consumers/managed") && !page.contains("I am sure"),
        "no forms without the admin grant: {page}"
    );
    let ops_token = csrf_of(&page);

    for fields in [
        vec![("id", id.as_str()), ("action", "stop")],
        vec![("csrf", ""), ("id", &id), ("action", "stop")],
        vec![("csrf", "AAAA"), ("id", &id), ("action", "stop")],
        vec![
            ("csrf", ops_token.as_str()),
            ("id", &id),
            ("action", "stop"),
        ],
    ] {
        let (status, _, body) = act(addr, &admin, &fields).await;
        assert_eq!(status, 403, "{fields:?}: {body}");
    }
    // ops with its own good token: no admin grant.
    let (status, _, body) = act(
        addr,
        &ops,
        &[("csrf", &ops_token), ("id", &id), ("action", "stop")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = act(
        addr,
        &ops,
        &[
            ("csrf", &ops_token),
            ("id", &id),
            ("action", "delete"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        managed_state(&server, &id).as_deref(),
        Some("RUN"),
        "unchanged"
    );
    // The admin's own token works.
    let (status, _, _) = act(
        addr,
        &admin,
        &[("csrf", &admin_token), ("id", &id), ("action", "stop")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(managed_state(&server, &id).as_deref(), Some("STOP"));
}

#[tokio::test]
async fn an_admin_moves_a_managed_subscriptions_commit_with_confirmation() {
    let (server, addr) = consumers_server().await;
    let ids = publish_as_reader(&server, 5).await;
    assert_eq!(ids.len(), 5);
    let id = managed_of(&server, ORG, ORDER_TOPIC, "Order_Watcher").await;
    assert_eq!(committed(&server, &id), None);
    let cookie = log_in_as(addr, ADMIN_USER).await;
    let (_, _, page) = http(
        addr,
        "GET",
        "/console/consumers",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert!(page.contains(r#"name="position""#), "{page}");
    let token = csrf_of(&page);
    let third: String = ids[2].iter().map(|b| format!("{b:02x}")).collect();
    let mv = |position: &str, confirm: bool| {
        let mut f = vec![
            ("csrf".to_owned(), token.clone()),
            ("id".to_owned(), id.clone()),
            ("action".to_owned(), "move".to_owned()),
            ("position".to_owned(), position.to_owned()),
        ];
        if confirm {
            f.push(("confirm".to_owned(), "yes".to_owned()));
        }
        f
    };
    let post = |fields: Vec<(String, String)>| {
        let cookie = cookie.clone();
        async move {
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            act(addr, &cookie, &pairs).await
        }
    };

    // Without the box ticked, or with a bad position: refused, unchanged.
    let (status, _, body) = post(mv(&third, false)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = post(mv("yesterday", true)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(committed(&server, &id), None);

    let (status, location, body) = post(mv(&third, true)).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(committed(&server, &id), Some(replay_num(&ids[2])));
    let (_, _, page) = http(addr, "GET", &location, &[("Cookie", &cookie)], b"").await;
    assert!(
        page.contains(&format!("committed position is now {third}")),
        "{page}"
    );

    let (status, _, _) = post(mv("LATEST", true)).await;
    assert_eq!(status, 303);
    assert_eq!(committed(&server, &id), Some(replay_num(&ids[4])));
    let (status, _, _) = post(mv("earliest", true)).await;
    assert_eq!(status, 303);
    let bounds = server
        .broker
        .bounds(server.broker.topic(ORDER_TOPIC).expect("topic").id)
        .expect("bounds");
    assert_eq!(committed(&server, &id), Some(bounds.trimmed.0));

    // A replay id beyond the newest event: a result line, no change.
    let (status, location, _) = post(mv("00000000000f4240", true)).await;
    assert_eq!(status, 303);
    assert!(location.contains("Failed"), "{location}");
    assert_eq!(committed(&server, &id), Some(bounds.trimmed.0));

    // Not without the admin grant.
    let ops = log_in(addr).await;
    let (_, _, page) = http(addr, "GET", "/console/consumers", &[("Cookie", &ops)], b"").await;
    let ops_token = csrf_of(&page);
    let (status, _, _) = act(
        addr,
        &ops,
        &[
            ("csrf", &ops_token),
            ("id", &id),
            ("action", "move"),
            ("position", "LATEST"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(committed(&server, &id), Some(bounds.trimmed.0));
}

#[tokio::test]
async fn with_auth_jwt_the_orgs_users_log_in_to_the_console_too() {
    let server = start_with(|a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let secret = dir.join("jwt-secret");
        std::fs::write(&secret, "a console test secret of at least 32 bytes").expect("secret");
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
grants = ["publish:/event/*", "subscribe:/event/*"]
"#,
                pw = hash_secret("pw")
            ),
        )
        .expect("users file");
        a.auth = AuthMode::Jwt;
        a.jwt_secret_file = Some(secret);
        a.jwt_issuer = Some("https://login.test".into());
        a.jwt_audience = Some("eventbus".into());
        a.org_users_file = Some(users);
        a.topics_tenants = vec![ORG.into()];
        a.http_listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = server.tooling.expect("http listener on");
    let (status, h, _) = http(addr, "GET", "/console", &[], b"").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console/login"));
    let (status, _, _) = post_login(addr, "ops@acme.example", "wrong").await;
    assert_eq!(status, 401);
    let cookie = log_in(addr).await;
    let (status, _, page) = http(addr, "GET", "/console", &[("Cookie", &cookie)], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(ORDER_TOPIC), "{page}");
    assert!(page.contains("ops@acme.example"), "{page}");
}
