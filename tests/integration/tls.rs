//! TLS on the gRPC listener: the development CA (`--tls-self-signed`),
//! files given by path, mutual TLS, and the CLI over TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use eventbus::api::pb::{self, pub_sub_client::PubSubClient};
use eventbus::config::ServeArgs;
use eventbus::server::Server;
use eventbus::tls::{ClientTls, DevCa};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::common::*;

/// A TLS server on 127.0.0.1:0 with its folders.
struct TlsServer {
    addr: std::net::SocketAddr,
    health: Option<std::net::SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), eventbus::server::ServerError>>,
    args: ServeArgs,
}

impl TlsServer {
    async fn start(dir: &Path, adjust: impl FnOnce(&mut ServeArgs)) -> TlsServer {
        let mut args = ServeArgs::for_tests(dir.join("data"));
        args.topics = Some(write_topics(dir, ORDER_SCHEMA));
        adjust(&mut args);
        Self::launch(args).await
    }

    async fn launch(args: ServeArgs) -> TlsServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let server = Server::build(args.clone()).await.expect("server builds");
        let health = server.health_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone()));
        TlsServer {
            addr,
            health,
            stop,
            task,
            args,
        }
    }

    async fn stop(self) -> ServeArgs {
        self.stop.cancel();
        self.task.await.expect("join").expect("clean shutdown");
        self.args
    }
}

/// A TLS channel to `addr` reached as `host` (the name checked against the
/// certificate).
async fn tls_channel(
    host: &str,
    addr: std::net::SocketAddr,
    tls: &ClientTls,
) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("https://{host}:{}", addr.port()))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls.config(host).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// Polls health over TLS until SERVING (10 s deadline); the first call
/// that works proves the handshake.
async fn wait_tls_serving(addr: std::net::SocketAddr, tls: &ClientTls) -> Channel {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match tls_channel("127.0.0.1", addr, tls).await {
            Ok(ch) => match HealthClient::new(ch.clone())
                .check(HealthCheckRequest {
                    service: "eventbus.v1.PubSub".into(),
                })
                .await
            {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return ch,
                Ok(r) => last = format!("status {}", r.get_ref().status),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e,
        }
        // Polling interval of a readiness probe, not synchronisation.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("TLS server at {addr} never became SERVING: {last}");
}

async fn publish_one(ch: Channel, n: i64) -> Result<pb::PublishResponse, tonic::Status> {
    let mut client = PubSubClient::new(ch);
    let schema_id = client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await?
        .into_inner()
        .schema_id;
    client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema_id, n)],
            auth_refresh: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

fn trust(ca: PathBuf) -> ClientTls {
    ClientTls {
        ca: Some(ca),
        ..ClientTls::default()
    }
}

#[tokio::test]
async fn self_signed_tls_serves_clients_that_trust_its_ca_and_is_reused() {
    let dir = TempDir::new().expect("tempdir");
    let certs = dir.path().join("tls");
    let server = TlsServer::start(dir.path(), |a| a.tls_self_signed = Some(certs.clone())).await;
    let dev = DevCa::paths(&certs);
    let ch = wait_tls_serving(server.addr, &trust(dev.ca_cert.clone())).await;
    let resp = publish_one(ch, 1).await.expect("publish over TLS");
    assert_eq!(resp.results.len(), 1);
    assert!(resp.results[0].error.is_none());

    // The certificate names localhost too.
    let by_name = tls_channel("localhost", server.addr, &trust(dev.ca_cert.clone()))
        .await
        .expect("localhost is a name of the certificate");
    publish_one(by_name, 2)
        .await
        .expect("publish via localhost");

    // A client that does not trust the CA, and a plaintext client, get nowhere.
    let untrusting = match tls_channel("127.0.0.1", server.addr, &ClientTls::default()).await {
        Ok(ch) => publish_one(ch, 3)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    assert!(untrusting.is_err(), "an unknown CA must be refused");
    let plain = match PubSubClient::connect(format!("http://{}", server.addr)).await {
        Ok(mut c) => c
            .get_topic(pb::TopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(plain.is_err(), "plaintext must not reach a TLS listener");

    // A restart reuses the CA, so clients keep trusting the same file.
    let ca_before = std::fs::read(&dev.ca_cert).expect("ca");
    let args = server.stop().await;
    let server = TlsServer::launch(args).await;
    assert_eq!(std::fs::read(&dev.ca_cert).expect("ca"), ca_before);
    let ch = wait_tls_serving(server.addr, &trust(dev.ca_cert.clone())).await;
    publish_one(ch, 4).await.expect("publish after restart");
    server.stop().await;
}

#[tokio::test]
async fn certificate_files_by_path_and_mutual_tls() {
    let dir = TempDir::new().expect("tempdir");
    // A CA and server certificate made elsewhere (here: by the dev CA code),
    // given to the server as plain files.
    let dev = DevCa::ensure(&dir.path().join("pki")).expect("pki");
    let server = TlsServer::start(dir.path(), |a| {
        a.tls_cert = Some(dev.server_cert.clone());
        a.tls_key = Some(dev.server_key.clone());
        a.tls_client_ca = Some(dev.ca_cert.clone());
    })
    .await;

    // Without a client certificate the handshake or the first call fails.
    let anonymous = match tls_channel("127.0.0.1", server.addr, &trust(dev.ca_cert.clone())).await {
        Ok(ch) => publish_one(ch, 1)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    assert!(
        anonymous.is_err(),
        "mutual TLS must refuse a client without a certificate"
    );

    // With a certificate signed by the client CA it works.
    let (cert, key) = dev.issue_client("orders-service").expect("client cert");
    let cert_path = dir.path().join("client.pem");
    let key_path = dir.path().join("client-key.pem");
    std::fs::write(&cert_path, cert).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let client_tls = ClientTls {
        ca: Some(dev.ca_cert.clone()),
        cert: Some(cert_path.clone()),
        key: Some(key_path.clone()),
    };
    let ch = wait_tls_serving(server.addr, &client_tls).await;
    publish_one(ch, 2)
        .await
        .expect("publish with a client certificate");

    // A certificate from another CA is refused.
    let other = DevCa::ensure(&dir.path().join("other")).expect("other pki");
    let (cert, key) = other.issue_client("intruder").expect("client cert");
    std::fs::write(dir.path().join("x.pem"), cert).expect("write");
    std::fs::write(dir.path().join("x-key.pem"), key).expect("write");
    let foreign = ClientTls {
        ca: Some(dev.ca_cert.clone()),
        cert: Some(dir.path().join("x.pem")),
        key: Some(dir.path().join("x-key.pem")),
    };
    let refused = match tls_channel("127.0.0.1", server.addr, &foreign).await {
        Ok(ch) => publish_one(ch, 3)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    assert!(
        refused.is_err(),
        "a client certificate from another CA must be refused"
    );

    // The CLI speaks TLS with the same files.
    let addr = format!("https://127.0.0.1:{}", server.addr.port());
    let mut cli = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    cli.args(["topic", "list", "--server", &addr, "--tls-ca"])
        .arg(&dev.ca_cert)
        .arg("--tls-client-cert")
        .arg(&cert_path)
        .arg("--tls-client-key")
        .arg(&key_path);
    // Off the runtime thread: the server answers on this test's runtime.
    let out = tokio::task::spawn_blocking(move || cli.output())
        .await
        .expect("join")
        .expect("run the CLI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(ORDER_TOPIC),
        "CLI over mutual TLS: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_missing_certificate_stops_startup_by_name() {
    let dir = TempDir::new().expect("tempdir");
    let mut args = ServeArgs::for_tests(dir.path().join("data"));
    args.tls_cert = Some(dir.path().join("nope.pem"));
    args.tls_key = Some(dir.path().join("nope-key.pem"));
    let err = match Server::build(args).await {
        Ok(_) => panic!("a missing certificate must stop startup"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("nope.pem"), "{err}");
    // Nothing was opened: the data folder was not created.
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn a_plaintext_health_listener_serves_health_only_for_probes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls_dir = dir.path().join("tls");
    let server = TlsServer::start(dir.path(), |a| {
        a.tls_self_signed = Some(tls_dir.clone());
        a.health_listen = "127.0.0.1:0".into();
    })
    .await;
    let health_addr = server.health.expect("health listener on");
    // Plaintext, as the kubelet's gRPC probe connects.
    let channel = Endpoint::from_shared(format!("http://{health_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("plaintext connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: "eventbus.v1.PubSub".into(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status
            .as_ref()
            .is_ok_and(|s| *s == ServingStatus::Serving as i32)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never SERVING: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // readiness poll
    }
    // Only health: the Pub/Sub API is not reachable without TLS.
    let st = PubSubClient::new(channel)
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect_err("no Pub/Sub API on the health port");
    assert_eq!(st.code(), tonic::Code::Unimplemented, "{st:?}");
    server.stop().await;
}

/// Runs the CLI with `args`, which must fail; its standard error.
async fn failing_cli(args: Vec<String>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    cmd.args(&args)
        .env_remove("EVENTBUS_TLS_CA")
        .env_remove("EVENTBUS_SERVER");
    // Off the runtime thread: the server answers on this test's runtime.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the CLI");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_explains_a_tls_mismatch_and_an_untrusted_certificate() {
    let dir = TempDir::new().expect("tempdir");
    let certs = dir.path().join("tls");
    let server = TlsServer::start(dir.path(), |a| a.tls_self_signed = Some(certs.clone())).await;
    let dev = DevCa::paths(&certs);
    wait_tls_serving(server.addr, &trust(dev.ca_cert.clone())).await;
    let run_cli = |args: Vec<&str>| {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        failing_cli(args)
    };
    let cli = |server_arg: String| async move {
        run_cli(vec!["topic", "list", "--server", &server_arg]).await
    };
    // Plaintext to a TLS listener.
    let err = cli(server.addr.to_string()).await;
    assert!(
        err.contains(&format!("the server at {} seems to speak TLS", server.addr))
            && err.contains(&format!("https://{}", server.addr))
            && err.contains("--tls-ca"),
        "{err}"
    );
    assert!(!err.contains("operation was canceled"), "{err}");
    // subscribe does not retry a server it never reached.
    let addr = server.addr.to_string();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        run_cli(vec!["subscribe", ORDER_TOPIC, "--server", &addr]),
    )
    .await
    .expect("subscribe gives up at once");
    assert!(
        err.contains("seems to speak TLS") && !err.contains("connection lost"),
        "{err}"
    );
    // TLS without the CA.
    let err = cli(format!("https://{}", server.addr)).await;
    assert!(
        err.contains("certificate is not trusted") && err.contains("--tls-ca DIR/ca.pem"),
        "{err}"
    );
    assert_eq!(err.matches("UnknownIssuer").count(), 1, "said once: {err}");
    server.stop().await;
}

#[tokio::test]
async fn the_cli_explains_tls_spoken_to_a_plaintext_server() {
    let server = start().await;
    let addr = format!("https://{}", server.addr);
    let err = failing_cli(vec!["topic".into(), "list".into(), "--server".into(), addr]).await;
    assert!(
        err.contains("the server answered in plaintext and this client spoke TLS")
            && !err.contains("InvalidContentType"),
        "{err}"
    );
    server.shutdown().await;
}
