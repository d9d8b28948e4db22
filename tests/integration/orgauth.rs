//! The org login side over real HTTP on loopback: OAuth token, userinfo,
//! identity URL, revoke, SOAP login; the sessions they issue accepted by
//! gRPC; the HTTP listener's routing.

use std::net::SocketAddr;
use std::time::Duration;

use eventbus::api::pb::{self, pub_sub_client::PubSubClient};
use eventbus::auth::AuthMode;
use eventbus::auth::org::hash_secret;
use serde_json::Value;
use tonic::metadata::MetadataValue;

use crate::common::*;
use crate::http_client::{exchange as http, form};

/// The default tenant: the one the topics folder provisions.
const ORG: &str = "00D000000000000EAA";
const USER_ID: &str = "005000000000001AAA";

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// POSTs a token request; the status and JSON answer.
async fn token(addr: SocketAddr, pairs: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = http(
        addr,
        "POST",
        "/services/oauth2/token",
        &[FORM],
        &form(pairs),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn get_bearer(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let (status, _, body) = http(addr, "GET", path, &[("Authorization", &auth)], b"").await;
    (status, body)
}

/// A server with `--auth static`, an org users file and the HTTP
/// listener on.
async fn org_server(adjust: impl FnOnce(&mut eventbus::config::ServeArgs)) -> TestServer {
    start_with(|a| {
        let dir = a.data_dir.parent().expect("temp root").to_path_buf();
        let tokens = dir.join("tokens.toml");
        std::fs::write(&tokens, "tokens = []\n").expect("tokens file");
        let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt-rs256-test-pub.pem");
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

[[users]]
username = "reader@acme.example"
password = "{pw}"
org_id = "{ORG}"
grants = ["subscribe:/event/*"]

[[apps]]
client_id = "app1"
client_secret = "{cs}"
run_as = "reader@acme.example"

[[apps]]
client_id = "jwtapp"
jwt_public_key_file = "{key}"
"#,
                pw = hash_secret("pw+token"),
                cs = hash_secret("cs"),
                key = key.display()
            ),
        )
        .expect("users file");
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(tokens);
        a.org_users_file = Some(users);
        a.http_listen = "127.0.0.1:0".into();
        adjust(a);
    })
    .await
}

fn http_addr(server: &TestServer) -> SocketAddr {
    server.tooling.expect("http listener on")
}

/// GetTopic with a session token as `accesstoken`.
async fn get_topic(server: &TestServer, token: &str) -> Result<pb::TopicInfo, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let token = token.to_owned();
    let mut client = PubSubClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
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
    });
    client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn password_grant(password: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "app1"),
        ("client_secret", "cs"),
        ("username", "ops@acme.example"),
        ("password", password),
    ]
}

#[tokio::test]
async fn oauth_password_login_issues_a_session_that_grpc_and_userinfo_accept() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let (status, body) = token(addr, &password_grant("pw+token")).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "signature",
            "instance_url",
            "id",
            "token_type",
            "issued_at"
        ]
    );
    let base = format!("http://{addr}");
    assert_eq!(body["instance_url"], base.as_str());
    assert_eq!(body["id"], format!("{base}/id/{ORG}/{USER_ID}").as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["issued_at"]
            .as_str()
            .is_some_and(|t| t.len() == 13 && t.bytes().all(|b| b.is_ascii_digit()))
    );
    let access = body["access_token"].as_str().expect("token").to_owned();
    assert!(access.starts_with("00D000000000000!"), "{access}");

    let topic = get_topic(&server, &access)
        .await
        .expect("gRPC accepts the session");
    assert!(topic.can_publish && topic.can_subscribe);

    let (status, info) = get_bearer(addr, "/services/oauth2/userinfo", &access).await;
    assert_eq!(status, 200, "{info}");
    let info: Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["organization_id"], ORG);
    assert_eq!(info["preferred_username"], "ops@acme.example");
    assert_eq!(info["user_id"], USER_ID);
    assert_eq!(info["name"], "Olga Ops");
    let (status, id) = get_bearer(addr, &format!("/id/{ORG}/{USER_ID}"), &access).await;
    assert_eq!(status, 200, "{id}");
    let id: Value = serde_json::from_str(&id).expect("json");
    assert_eq!(
        (id["username"].as_str(), id["organization_id"].as_str()),
        (Some("ops@acme.example"), Some(ORG))
    );
    let (status, _) = get_bearer(addr, &format!("/id/{ORG}/005000000000002AAA"), &access).await;
    assert_eq!(status, 403, "another user's identity URL");
    let (status, body) =
        get_bearer(addr, "/services/oauth2/userinfo", "00D000000000000!forged").await;
    assert_eq!((status, body.as_str()), (401, "Bad_OAuth_Token"));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_token_requests_get_salesforces_error_json() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let mut unknown_client = password_grant("pw+token");
    unknown_client[1].1 = "nobody";
    let mut bad_secret = password_grant("pw+token");
    bad_secret[2].1 = "wrong";
    let mut missing = password_grant("pw+token");
    missing.retain(|(k, _)| *k != "username");
    for (pairs, want) in [
        (
            password_grant("pw"),
            ("invalid_grant", "authentication failure"),
        ),
        (
            unknown_client,
            ("invalid_client_id", "client identifier invalid"),
        ),
        (bad_secret, ("invalid_client", "invalid client credentials")),
        (missing, ("invalid_request", "username is missing")),
        (
            vec![("grant_type", "authorization_code")],
            ("unsupported_grant_type", "grant type not supported"),
        ),
        (
            vec![("username", "x")],
            ("invalid_request", "grant type is missing"),
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "app1"),
                ("client_secret", "no"),
            ],
            ("invalid_client", "invalid client credentials"),
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", "app1"),
                ("client_secret", "cs"),
                ("refresh_token", "nope"),
            ],
            ("invalid_grant", "expired access/refresh token"),
        ),
    ] {
        let (status, body) = token(addr, &pairs).await;
        assert_eq!(status, 400, "{pairs:?}: {body}");
        assert_eq!(
            (body["error"].as_str(), body["error_description"].as_str()),
            (Some(want.0), Some(want.1)),
            "{pairs:?}"
        );
    }
    let (status, _, body) = http(
        addr,
        "POST",
        "/services/oauth2/token",
        &[("Content-Type", "application/json")],
        b"{\"grant_type\":\"password\"}",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"invalid_request\""), "{body}");
    let huge = vec![b'a'; 1024 * 1024];
    let (status, _, body) = http(addr, "POST", "/services/oauth2/token", &[FORM], &huge).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("larger than"), "{body}");
    let (status, _, body) = http(addr, "GET", "/services/nothing/here", &[], b"").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"NOT_FOUND\""), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn client_credentials_run_as_the_apps_user_with_its_grants() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "app1:cs")
    );
    let (status, _, body) = http(
        addr,
        "POST",
        "/services/oauth2/token/",
        &[FORM, ("Authorization", &basic)],
        &form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["scope"], "api");
    let access = body["access_token"].as_str().expect("token");
    let topic = get_topic(&server, access).await.expect("accepted");
    assert!(
        !topic.can_publish && topic.can_subscribe,
        "the reader's grants"
    );
    let (_, info) = get_bearer(addr, "/services/oauth2/userinfo/", access).await;
    assert!(
        info.contains("\"preferred_username\":\"reader@acme.example\""),
        "{info}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn revoked_and_expired_sessions_are_refused_everywhere() {
    let server = org_server(|a| a.session_lifetime = Duration::from_secs(1)).await;
    let addr = http_addr(&server);
    let mut grant = password_grant("pw+token");
    grant.push(("scope", "api refresh_token"));
    let (status, body) = token(addr, &grant).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh token asked for")
        .to_owned();
    let access = body["access_token"].as_str().expect("token").to_owned();
    // Expiry: the one-second session stops working on every API.
    eventually("the session expires", Duration::from_secs(10), || {
        let access = access.clone();
        let server = &server;
        async move {
            let http_refused = get_bearer(addr, "/services/oauth2/userinfo", &access)
                .await
                .0
                == 401;
            let grpc_refused = get_topic(server, &access)
                .await
                .is_err_and(|s| s.code() == tonic::Code::Unauthenticated);
            (http_refused && grpc_refused).then_some(())
        }
    })
    .await;
    // The refresh token still makes new sessions until it is revoked.
    let refresh_grant = [
        ("grant_type", "refresh_token"),
        ("client_id", "app1"),
        ("client_secret", "cs"),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, body) = token(addr, &refresh_grant).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    let (status, _, _) = http(
        addr,
        "POST",
        "/services/oauth2/revoke",
        &[FORM],
        &form(&[("token", &refresh)]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = token(addr, &refresh_grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _, body) = http(
        addr,
        "POST",
        "/services/oauth2/revoke",
        &[FORM],
        &form(&[("token", &refresh)]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("\"invalid_token\""), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_access_token_is_refused_by_grpc_and_http() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let (_, body) = token(addr, &password_grant("pw+token")).await;
    let access = body["access_token"].as_str().expect("token").to_owned();
    get_topic(&server, &access)
        .await
        .expect("accepted before revoke");
    let (status, _, _) = http(
        addr,
        "POST",
        "/services/oauth2/revoke",
        &[FORM],
        &form(&[("token", &access)]),
    )
    .await;
    assert_eq!(status, 200);
    let status = get_topic(&server, &access)
        .await
        .expect_err("refused after revoke");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        get_bearer(addr, "/services/oauth2/userinfo", &access)
            .await
            .0,
        401
    );
    server.shutdown().await;
}

fn soap_login(username: &str, password: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
  <env:Body>
    <n1:login xmlns:n1="urn:partner.soap.sforce.com">
      <n1:username>{username}</n1:username>
      <n1:password><![CDATA[{password}]]></n1:password>
    </n1:login>
  </env:Body>
</env:Envelope>"#
    )
    .into_bytes()
}

async fn soap(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    let (status, headers, body) = http(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "text/xml; charset=UTF-8"),
            ("SOAPAction", "login"),
        ],
        body,
    )
    .await;
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/xml; charset=utf-8")
    );
    (status, body)
}

/// The element children of a node, by local name.
fn children<'a>(node: roxmltree::Node<'a, 'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    node.children().filter(|n| n.is_element()).collect()
}

#[tokio::test]
async fn soap_login_answers_the_full_login_result_read_by_position() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let (status, body) = soap(
        addr,
        "/services/Soap/u/59.0/",
        &soap_login("ops@acme.example", "pw+token"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let doc = roxmltree::Document::parse(&body).expect("xml");
    // The official Python example: root[0][0][0] is the result.
    let result = children(children(children(doc.root_element())[0])[0])[0];
    let names: Vec<&str> = children(result)
        .iter()
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        names,
        [
            "metadataServerUrl",
            "passwordExpired",
            "sandbox",
            "serverUrl",
            "sessionId",
            "userId",
            "userInfo"
        ]
    );
    let text = |i: usize| children(result)[i].text().unwrap_or_default().to_owned();
    let base = format!("http://{addr}");
    assert_eq!(text(0), format!("{base}/services/Soap/m/59.0/{ORG}"));
    assert_eq!(text(3), format!("{base}/services/Soap/u/59.0/{ORG}"));
    assert_eq!(text(5), USER_ID);
    let info = children(children(result)[6]);
    let names: Vec<&str> = info.iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(
        names,
        [
            "accessibilityMode",
            "chatterExternal",
            "currencySymbol",
            "orgAttachmentFileSizeLimit",
            "orgDefaultCurrencyIsoCode",
            "orgDefaultCurrencyLocale",
            "orgDisallowHtmlAttachments",
            "orgHasPersonAccounts",
            "organizationId",
            "organizationMultiCurrency",
            "organizationName",
            "profileId",
            "roleId",
            "sessionSecondsValid",
            "userDefaultCurrencyIsoCode",
            "userEmail",
            "userFullName",
            "userId",
            "userLanguage",
            "userLocale",
            "userName",
            "userTimeZone",
            "userType",
            "userUiSkin",
        ]
    );
    assert_eq!(info[8].text(), Some(ORG));
    assert_eq!(info[13].text(), Some("7200"));
    assert_eq!(info[20].text(), Some("ops@acme.example"));
    let session = text(4);
    get_topic(&server, &session)
        .await
        .expect("the sessionId works over gRPC");
    let (status, _) = get_bearer(addr, "/services/oauth2/userinfo", &session).await;
    assert_eq!(status, 200, "and as a bearer token");
    server.shutdown().await;
}

#[tokio::test]
async fn soap_login_faults_are_salesforces() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let (status, body) = soap(
        addr,
        "/services/Soap/u/62.0",
        &soap_login("ops@acme.example", "wrong"),
    )
    .await;
    assert_eq!(status, 500);
    for part in [
        "<faultcode>sf:INVALID_LOGIN</faultcode>",
        "<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>",
        "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>",
        "xmlns:sf=\"urn:fault.partner.soap.sforce.com\"",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    for (path, request, want) in [
        (
            "/services/Soap/u/62.0",
            b"<env:Envelope".to_vec(),
            "not well-formed XML",
        ),
        (
            "/services/Soap/u/62.0",
            b"{\"username\":\"x\"}".to_vec(),
            "not well-formed XML",
        ),
        (
            "/services/Soap/u/latest",
            soap_login("a", "b"),
            "UNSUPPORTED_API_VERSION",
        ),
        (
            "/services/Soap/u/62.0",
            vec![b' '; 1024 * 1024],
            "larger than",
        ),
    ] {
        let (status, body) = soap(addr, path, &request).await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("<soapenv:Fault>") && body.contains(want),
            "{want} in {body}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn with_auth_none_any_credentials_log_in_to_the_default_org() {
    let server = start_with(|a| a.http_listen = "127.0.0.1:0".into()).await;
    let addr = http_addr(&server);
    let (status, body) = soap(
        addr,
        "/services/Soap/u/62.0",
        &soap_login("dev@local", "anything"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("<organizationId>{ORG}</organizationId>")),
        "{body}"
    );
    let (status, body) = token(
        addr,
        &[
            ("grant_type", "password"),
            ("username", "dev@local"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, info) = get_bearer(
        addr,
        "/services/oauth2/userinfo",
        body["access_token"].as_str().expect("token"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        info.contains(&format!("\"organization_id\":\"{ORG}\"")),
        "{info}"
    );
    server.shutdown().await;
}

/// A JWT bearer assertion signed with the test key whose public half the
/// `jwtapp` app holds.
fn assertion(claims: Value) -> String {
    let pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt-rs256-test-key.pem"),
    )
    .expect("test key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("rsa key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}

#[tokio::test]
async fn jwt_bearer_assertions_are_checked_against_the_apps_key() {
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let own = format!("http://{addr}");
    let grant = |jwt: &str| {
        vec![
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion".to_owned(), jwt.to_owned()),
        ]
    };
    let post = |pairs: Vec<(String, String)>| async move {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        token(addr, &pairs).await
    };
    // pozil's claims (exp a number) and simple-salesforce's (exp a string,
    // aud the standard login host).
    for claims in [
        serde_json::json!({"iss": "jwtapp", "sub": "ops@acme.example", "aud": own, "exp": now + 300}),
        serde_json::json!({"iss": "jwtapp", "sub": "ops@acme.example", "aud": "https://login.salesforce.com", "exp": (now + 180).to_string()}),
    ] {
        let (status, body) = post(grant(&assertion(claims.clone()))).await;
        assert_eq!(status, 200, "{claims}: {body}");
        assert_eq!(body["scope"], "api");
        let access = body["access_token"].as_str().expect("token");
        get_topic(&server, access)
            .await
            .expect("the session works over gRPC");
    }
    for (claims, want) in [
        (
            serde_json::json!({"iss": "jwtapp", "sub": "ops@acme.example", "aud": own, "exp": now - 3600}),
            "invalid_grant",
        ),
        (
            serde_json::json!({"iss": "jwtapp", "sub": "ops@acme.example", "aud": "https://evil.example", "exp": now + 300}),
            "invalid_grant",
        ),
        (
            serde_json::json!({"iss": "jwtapp", "sub": "ghost@acme.example", "aud": own, "exp": now + 300}),
            "invalid_grant",
        ),
        (
            serde_json::json!({"iss": "nobody", "sub": "ops@acme.example", "aud": own, "exp": now + 300}),
            "invalid_client_id",
        ),
        (
            serde_json::json!({"iss": "app1", "sub": "ops@acme.example", "aud": own, "exp": now + 300}),
            "invalid_grant",
        ),
    ] {
        let (status, body) = post(grant(&assertion(claims.clone()))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(want)),
            "{claims}: {body}"
        );
    }
    // Signed with another key (HS256 with a secret): refused.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"iss": "jwtapp", "sub": "ops@acme.example", "aud": own, "exp": now + 300}),
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .expect("sign");
    let (status, body) = post(grant(&forged)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = post(grant("not-a-jwt")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    server.shutdown().await;
}

/// Runs `eventbus org ARGS` (no server) with `stdin`.
fn org_cli(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .arg("org")
        .args(args)
        .env_remove("EVENTBUS_ORG_USERS_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn eventbus");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn org_users_made_by_the_cli_log_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("org.toml");
    let f = file.to_str().expect("utf-8 path");
    let out = org_cli(
        &[
            "users",
            "add",
            "--file",
            f,
            "ann@acme.example",
            "--name",
            "Ann Smith",
            "--grants",
            "subscribe:/event/*",
        ],
        "secret+TOKEN\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("file");
    assert!(
        !text.contains("secret+TOKEN") && text.contains("pbkdf2-sha256$"),
        "{text}"
    );
    let again = org_cli(&["users", "add", "--file", f, "ANN@acme.example"], "x");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in"));
    let bad = org_cli(
        &[
            "users",
            "add",
            "--file",
            f,
            "bob@acme.example",
            "--grants",
            "write:*",
        ],
        "x",
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("grant `write:*`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let none = org_cli(&["users", "add", "--file", f, "bob@acme.example"], "");
    assert!(String::from_utf8_lossy(&none.stderr).contains("no password on stdin"));
    assert!(
        org_cli(&["users", "add", "--file", f, "bob@acme.example"], "pw")
            .status
            .success()
    );
    assert!(
        org_cli(
            &[
                "apps",
                "add",
                "--file",
                f,
                "cli-app",
                "--run-as",
                "ann@acme.example"
            ],
            "cs"
        )
        .status
        .success()
    );
    let list = org_cli(&["users", "list", "--file", f], "");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("ann@acme.example")
            && listed.contains(ORG)
            && listed.contains("subscribe:/event/*"),
        "{listed}"
    );
    assert!(
        org_cli(&["users", "remove", "--file", f, "bob@acme.example"], "")
            .status
            .success()
    );
    let listed =
        String::from_utf8_lossy(&org_cli(&["users", "list", "--file", f], "").stdout).into_owned();
    assert!(!listed.contains("bob@"), "{listed}");

    let server = start_with(|a| {
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, "tokens = []\n").expect("tokens");
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(tokens);
        a.org_users_file = Some(file.clone());
        a.http_listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = http_addr(&server);
    let (status, body) = soap(
        addr,
        "/services/Soap/u/62.0",
        &soap_login("ann@acme.example", "secret+TOKEN"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<userFullName>Ann Smith</userFullName>"),
        "{body}"
    );
    let (status, body) = token(
        addr,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "cli-app"),
            ("client_secret", "cs"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let topic = get_topic(&server, body["access_token"].as_str().expect("token"))
        .await
        .expect("accepted");
    assert!(topic.can_subscribe && !topic.can_publish);
    server.shutdown().await;
}

#[tokio::test]
async fn eventbus_login_prints_a_session_for_scripts() {
    let server = org_server(|_| {}).await;
    let url = format!("http://{}", http_addr(&server));
    let run = |args: Vec<String>, stdin: &'static str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"))
            .arg("login")
            .args(args)
            .env_remove("EVENTBUS_CLIENT_SECRET")
            .env_remove("EVENTBUS_CLIENT_ID")
            .env("EVENTBUS_LOGIN_URL", &url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn eventbus");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin");
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let out = run(
        args(&[
            "--username",
            "ops@acme.example",
            "--client-id",
            "app1",
            "--client-secret",
            "cs",
        ]),
        "pw+token\n",
    )
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance URL http://"));
    get_topic(&server, &token)
        .await
        .expect("the printed token works over gRPC");
    let out = run(
        args(&["--client-id", "app1", "--client-secret-stdin", "--json"]),
        "cs",
    )
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["token_type"], "Bearer");
    let out = run(
        args(&[
            "--username",
            "ops@acme.example",
            "--client-id",
            "app1",
            "--client-secret",
            "cs",
        ]),
        "wrong",
    )
    .await
    .expect("join");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("login refused (400): invalid_grant: authentication failure"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn with_tls_the_http_listener_speaks_https_and_login_answers_name_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("tls");
    let mut args = eventbus::config::ServeArgs::for_tests(dir.path().join("data"));
    on_test_backend(&mut args);
    args.tls_self_signed = Some(certs.clone());
    args.http_listen = "127.0.0.1:0".into();
    let server = eventbus::server::Server::build(args)
        .await
        .expect("server builds");
    let port = server.http_addr().expect("http listener on").port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, stop.clone()));
    let url = format!("https://localhost:{port}");
    let login = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"));
        cmd.args(["login", "--url", &url, "--username", "dev@local", "--json"])
            .args(extra)
            .env_remove("EVENTBUS_TLS_CA")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn eventbus");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"any")
            .expect("stdin");
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
    };
    let ca = certs.join("ca.pem");
    let out = login(&["--tls-ca", ca.to_str().expect("utf-8")])
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["instance_url"], url.as_str());
    let out = login(&[]).await.expect("join");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --tls-ca"));
    stop.cancel();
    task.await.expect("join").expect("clean shutdown");
}

#[tokio::test]
async fn chunked_login_bodies_without_a_length_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    // jsforce's SOAP login: Transfer-Encoding: chunked, no Content-Length.
    let body = soap_login("ops@acme.example", "pw+token");
    let (first, second) = body.split_at(body.len() / 2);
    let mut req = format!(
        "POST /services/Soap/u/62.0 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nSOAPAction: \"\"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in [first, second] {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(&req).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut raw))
        .await
        .expect("answer within 20 s")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("<sessionId>00D000000000000!"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_rest_publish_with_a_session_is_created_by_the_logged_in_user() {
    // Found in review: REST publishes with a session filled CreatedById
    // with an id derived from the username, not the user's own id.
    let server = org_server(|_| {}).await;
    let addr = http_addr(&server);
    let (status, body) = token(addr, &password_grant("pw+token")).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().expect("token").to_owned();
    let auth = format!("Bearer {access}");
    let (status, _, created) = http(
        addr,
        "POST",
        "/services/data/v62.0/sobjects/Order_Event__e/",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"OrderNumber__c": "U-1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // Read back over gRPC by the CLI, with the same session.
    let out = tokio::task::spawn_blocking({
        let server_addr = server.addr.to_string();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_eventbus"))
                .args([
                    "subscribe",
                    ORDER_TOPIC,
                    "--from",
                    "earliest",
                    "--count",
                    "1",
                ])
                .args(["-o", "payload", "-q", "--server", &server_addr])
                .env("EVENTBUS_ACCESS_TOKEN", &access)
                .env_remove("EVENTBUS_TENANT_ID")
                .output()
        }
    })
    .await
    .expect("join")
    .expect("run the CLI");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let payload: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(payload["OrderNumber__c"], "U-1");
    assert_eq!(payload["CreatedById"], USER_ID, "the logged-in user");
    server.shutdown().await;
}
