//! The development set-up as a newcomer follows it (issue 19): static
//! tokens of a tenant other than the default one see the topics folder, the
//! CLI needs only the token, and `eventbus token jwt` mints tokens a JWT
//! server accepts.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use eventbus::auth::AuthMode;

use crate::common::*;

/// The tenant of the README's static-token example.
const README_TENANT: &str = "00D5e000000AbcdEAC";

/// Runs the `eventbus` binary with `envs` and nothing of the caller's
/// `EVENTBUS_*` environment; returns its output.
async fn eventbus(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    for (key, _) in std::env::vars() {
        if key.starts_with("EVENTBUS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || cmd.output().expect("run eventbus"))
        .await
        .expect("join")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn examples_topics() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/topics")
}

/// Publishes one order with only a token and the server address, then
/// reads it back and lists the topics: what the README's steps do.
async fn publish_subscribe_and_list(server: &TestServer, token: &str) {
    let addr = server.addr.to_string();
    let envs = [
        ("EVENTBUS_ACCESS_TOKEN", token),
        ("EVENTBUS_SERVER", addr.as_str()),
    ];
    let out = stdout_of(
        &eventbus(
            &[
                "publish",
                ORDER_TOPIC,
                r#"{"OrderNumber__c": "A-1", "Amount__c": 12.5}"#,
            ],
            &envs,
        )
        .await,
    );
    let replay_id = out.trim();
    assert_eq!(replay_id.len(), 16, "one replay id in hex: {out}");
    let out = stdout_of(
        &eventbus(
            &[
                "subscribe",
                ORDER_TOPIC,
                "--from",
                "earliest",
                "--count",
                "1",
            ],
            &envs,
        )
        .await,
    );
    let event: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(event["replay_id"], replay_id);
    assert_eq!(event["payload"]["OrderNumber__c"], "A-1");
    let out = stdout_of(&eventbus(&["topic", "list"], &envs).await);
    let row = out
        .lines()
        .find(|l| l.starts_with(ORDER_TOPIC))
        .unwrap_or_else(|| panic!("{ORDER_TOPIC} listed:\n{out}"));
    assert!(row.split_whitespace().nth(1) == Some("1"), "{row}");
}

#[tokio::test]
async fn static_tokens_of_another_tenant_see_the_topics_folder_with_only_the_token() {
    // The README's steps: a token from `eventbus token new`, its hash in a
    // tokens file naming tenant 00D5e000000AbcdEAC, `--topics examples/topics`.
    let out = stdout_of(&eventbus(&["token", "new"], &[]).await);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("`{name}` in: {out}"))
    };
    let (token, sha) = (field("token:"), field("sha256:"));
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\nsha256 = \"{sha}\"\ntenant = \"{README_TENANT}\"\nprincipal = \"ops\"\ngrants = [\"admin\", \"publish:/event/*\", \"subscribe:/event/*\"]\n"
        ),
    )
    .expect("write tokens file");
    let server = start_with(|a| {
        a.topics = Some(examples_topics());
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(tokens);
    })
    .await;
    publish_subscribe_and_list(&server, &token).await;
    // The default tenant got the folder too, and still has no events.
    let stored = server
        .broker
        .topics()
        .iter()
        .map(|t| t.name.as_str().to_owned())
        .collect::<Vec<_>>();
    assert!(stored.contains(&ORDER_TOPIC.to_owned()), "{stored:?}");
    assert!(
        stored.contains(&format!("/~{}{ORDER_TOPIC}", &README_TENANT[..15])),
        "{stored:?}"
    );
}

#[tokio::test]
async fn topics_tenants_provision_jwt_tenants_and_token_jwt_mints_what_the_server_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("dev/jwt-secret");
    let secret_arg = secret.to_str().expect("utf-8 path");
    let mint = |issued_at: Option<&'static str>| {
        let mut args = vec![
            "token",
            "jwt",
            "--secret-file",
            secret_arg,
            "--tenant",
            README_TENANT,
            "--grants",
            "admin,publish:/event/*,subscribe:/event/*",
        ];
        if let Some(at) = issued_at {
            args.extend(["--issued-at", at]);
        }
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            eventbus(
                &args,
                &[
                    ("EVENTBUS_JWT_ISSUER", "eventbus-dev"),
                    ("EVENTBUS_JWT_AUDIENCE", "eventbus"),
                ],
            )
            .await
        }
    };
    // The first mint makes the secret file and says so on stderr only.
    let out = mint(None).await;
    let token = stdout_of(&out).trim().to_owned();
    assert_eq!(
        token.split('.').count(),
        3,
        "only the JWT on stdout: {token}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote a new HS256 secret"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expired = stdout_of(&mint(Some("2020-01-01T00:00:00Z")).await)
        .trim()
        .to_owned();
    let server = start_with(|a| {
        a.topics = Some(examples_topics());
        a.topics_tenants = vec![README_TENANT.to_owned()];
        a.auth = AuthMode::Jwt;
        a.jwt_secret_file = Some(secret.clone());
        a.jwt_issuer = Some("eventbus-dev".into());
        a.jwt_audience = Some("eventbus".into());
    })
    .await;
    publish_subscribe_and_list(&server, &token).await;
    let addr = server.addr.to_string();
    let out = eventbus(
        &["publish", ORDER_TOPIC, r#"{"OrderNumber__c": "A-2"}"#],
        &[
            ("EVENTBUS_ACCESS_TOKEN", expired.as_str()),
            ("EVENTBUS_SERVER", addr.as_str()),
        ],
    )
    .await;
    assert!(!out.status.success(), "an expired token publishes nothing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth"), "{err}");
}
