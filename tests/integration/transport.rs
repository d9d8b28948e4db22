//! The transport against hostile connections: silent and half-open
//! connections beyond the connection cap, a half-sent TLS ClientHello,
//! stalled TLS handshakes on the Tooling port and an exhausted descriptor
//! table (the real binary, its CPU read from /proc/<pid>/stat).
//!
//! Each test states its bounds next to the constants that hold them and
//! prints what it measured
//! (`cargo test --test integration transport:: -- --nocapture`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventbus::api::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::common::*;

// ---------------------------------------------------------------- harness

/// The server binary in its own process, with metrics on, so its memory is
/// its own.
struct Proc {
    child: Option<std::process::Child>,
    pid: u32,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Proc {
    /// Starts `eventbus serve` with `extra` flags and `envs`, with at most
    /// `fd_limit` open files, and waits until it serves.
    async fn spawn(
        data: &Path,
        topics: &Path,
        extra: &[&str],
        fd_limit: Option<u32>,
        envs: &[(&str, &str)],
    ) -> Proc {
        use std::io::{BufRead, BufReader};
        let bin = env!("CARGO_BIN_EXE_eventbus");
        let mut cmd = match fd_limit {
            // prlimit sets the limit on the exec'd server only.
            Some(n) => {
                let mut c = std::process::Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin);
                c
            }
            None => std::process::Command::new(bin),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--topics")
            .arg(topics)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn,eventbus=info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn eventbus");
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        // Bounded by the child's log lines.
        let (tx, mut rx) = mpsc::unbounded_channel::<(bool, String)>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("server: {line}");
                    continue;
                };
                let msg = v["fields"]["message"].as_str().unwrap_or("");
                if let Some(rest) = msg.strip_prefix("eventbus listening on ") {
                    let _ = tx.send((false, rest.trim().to_owned()));
                } else if let Some(rest) = msg.strip_prefix("metrics listening on ") {
                    let _ = tx.send((true, rest.trim().to_owned()));
                } else if v["level"].as_str() == Some("WARN") {
                    eprintln!("server: {msg} {}", v["fields"]);
                }
            }
        });
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let (is_metrics, a) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("server logs its addresses within 60 s")
                .expect("the server exited before logging its addresses");
            let a: SocketAddr = a.parse().expect("socket address");
            if is_metrics {
                metrics = Some(a);
            } else {
                addr = Some(a);
            }
        }
        let addr = addr.expect("set above");
        wait_until_serving(addr).await;
        Proc {
            child: Some(child),
            pid,
            addr,
            metrics: metrics.expect("set above"),
        }
    }

    async fn client(&self) -> pb::pub_sub_client::PubSubClient<tonic::transport::Channel> {
        pb::pub_sub_client::PubSubClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
            .max_decoding_message_size(8 * 1024 * 1024)
    }

    /// User plus system CPU seconds of the server so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime, in USER_HZ (100 on Linux).
        (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / 100.0
    }

    /// The sum of every sample of `name` on /metrics.
    async fn metric(&self, name: &str) -> f64 {
        let fetch = async {
            let mut s = TcpStream::connect(self.metrics).await?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await?;
            let mut text = String::new();
            s.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        };
        let text = tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .expect("metrics within 10 s")
            .expect("metrics readable");
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls `name` until `ok` holds; fails after `limit` with the last value.
    async fn wait_metric(&self, name: &str, limit: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.metric(name).await;
            if ok(seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not as expected within {limit:?}; last seen {seen}"
            );
            // Polling interval, not synchronisation.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The child we started, by its pid.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The connection cap of the cap test.
const CAP: usize = 8;
/// Its handshake timeout.
const HANDSHAKE: Duration = Duration::from_secs(1);

/// Reads until the server closes `s`; how long after `since` that was.
async fn closed_after(mut s: TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {limit:?}"
    );
    since.elapsed()
}

#[tokio::test]
async fn silent_connections_beyond_the_cap_time_out_and_do_not_lock_out_a_new_client() {
    let server = start_with(|a| {
        a.max_connections = CAP;
        a.handshake_timeout = HANDSHAKE;
    })
    .await;
    // wait_until_serving's connections are gone once the count is 0.
    let metrics = server.broker.metrics().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.connections_open.get() > 0 {
        assert!(Instant::now() < deadline, "probe connections never closed");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }

    // Twice the cap of connections that never send a byte.
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..2 * CAP {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let open = metrics.connections_open.get();
    assert!(
        open <= CAP as i64,
        "at most the cap is accepted ({open} open)"
    );
    // Each watched for its close from now on.
    let silent: Vec<_> = silent
        .into_iter()
        .map(|s| tokio::spawn(closed_after(s, started, HANDSHAKE * 6)))
        .collect();
    // A real client waits in the backlog behind them and is served once
    // they time out: two rounds of the handshake timeout.
    let mut client = server.client().await;
    let served = tokio::time::timeout(
        HANDSHAKE * 6,
        client.get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        }),
    )
    .await
    .expect("a new client is served once the silent ones timed out")
    .expect("get topic");
    assert_eq!(served.into_inner().topic_name, ORDER_TOPIC);
    let waited = started.elapsed();
    let mut closes = Vec::new();
    for s in silent {
        closes.push(s.await.expect("watcher"));
    }
    closes.sort();
    eprintln!(
        "transport: {} silent connections on a cap of {CAP}: closed after {:?} .. {:?}; the new client was served after {waited:?}",
        2 * CAP,
        closes[0],
        closes[closes.len() - 1]
    );
    assert!(
        closes[0] >= HANDSHAKE * 9 / 10,
        "closed before the handshake timeout: {:?}",
        closes[0]
    );
    let timeouts = metrics
        .connections_closed
        .get_or_create(&eventbus::telemetry::metrics::ReasonLabel {
            reason: "handshake",
        })
        .get();
    assert!(
        timeouts >= 2 * CAP as u64,
        "{timeouts} handshake timeouts counted"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_on_the_grpc_and_tooling_ports() {
    let idle = Duration::from_secs(2);
    let server = start_with(|a| {
        a.idle_timeout = idle;
        a.keepalive = Duration::from_secs(1);
        // No HTTP/2 pings: they would keep the connection busy.
        a.http2_keepalive = Duration::ZERO;
        a.tooling_listen = "127.0.0.1:0".into();
    })
    .await;
    // HTTP/2: the preface and SETTINGS, then nothing (a client that went
    // away without closing looks the same from here).
    let mut h2c = TcpStream::connect(server.addr).await.expect("connect");
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let sent = Instant::now();
    // HTTP/1.1 on the tooling port: half a request line, then nothing.
    let mut http1 = TcpStream::connect(server.tooling.expect("tooling on"))
        .await
        .expect("connect tooling");
    http1
        .write_all(b"GET /services/da")
        .await
        .expect("half a request");
    let took_h2 = closed_after(h2c, sent, idle * 4).await;
    let took_h1 = closed_after(http1, sent, idle * 4).await;
    eprintln!("transport: idle connections closed after {took_h2:?} (gRPC), {took_h1:?} (tooling)");
    for took in [took_h2, took_h1] {
        assert!(
            took >= idle * 9 / 10,
            "closed before the idle timeout: {took:?}"
        );
    }
    server.shutdown().await;
}

/// A server with development TLS (`wait_until_serving` speaks plaintext,
/// so this one is not polled: its listeners are bound before it serves).
struct TlsServer {
    addr: SocketAddr,
    tooling: Option<SocketAddr>,
    certs: std::path::PathBuf,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), eventbus::server::ServerError>>,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    async fn start(adjust: impl FnOnce(&mut eventbus::config::ServeArgs)) -> TlsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("tls");
        let mut args = eventbus::config::ServeArgs::for_tests(dir.path().join("data"));
        args.topics = Some(write_topics(dir.path(), ORDER_SCHEMA));
        args.tls_self_signed = Some(certs.clone());
        adjust(&mut args);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = eventbus::server::Server::build(args)
            .await
            .expect("server builds");
        let tooling = server.tooling_addr();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(server.serve(listener, stop.clone()));
        TlsServer {
            addr,
            tooling,
            certs,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("clean shutdown");
    }
}

#[tokio::test]
async fn a_tls_connection_that_sends_half_a_client_hello_is_closed_after_the_handshake_timeout() {
    let server = TlsServer::start(|a| a.handshake_timeout = HANDSHAKE).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    // A TLS record header announcing 512 bytes of ClientHello, and the
    // first few of them.
    s.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .await
    .expect("half a hello");
    let took = closed_after(s, Instant::now(), HANDSHAKE * 5).await;
    eprintln!("transport: half a ClientHello closed after {took:?}");
    assert!(took >= HANDSHAKE * 9 / 10, "closed too early: {took:?}");
    server.shutdown().await;
}

/// Stalled handshakes on the Tooling port while a real client queries.
const STALLED: usize = 3;

#[tokio::test]
async fn stalled_tls_handshakes_on_the_tooling_port_do_not_delay_another_client() {
    use tokio_rustls::rustls;
    // The default 10 s handshake timeout: a stall must cost others nothing.
    let server = TlsServer::start(|a| a.tooling_listen = "127.0.0.1:0".into()).await;
    let certs = server.certs.clone();
    let tooling = server.tooling.expect("tooling on");
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(tooling).await.expect("connect");
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .expect("a record header");
        stalled.push(s);
    }
    let ca = std::fs::read(eventbus::tls::DevCa::paths(&certs).ca_cert).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.expect("ca pem")).expect("trust the dev CA");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let started = Instant::now();
    let tcp = TcpStream::connect(tooling).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake beside the stalled ones");
    tls.write_all(
        b"GET /services/data/v62.0/tooling/query/?q=SELECT+Id+FROM+ManagedEventSubscription HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("request");
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.expect("answer");
    let took = started.elapsed();
    eprintln!("transport: a tooling query beside {STALLED} stalled handshakes took {took:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took < Duration::from_secs(2),
        "a stalled handshake delayed another client: {took:?}"
    );
    drop(stalled);
    server.shutdown().await;
}

/// Descriptor limit of the exhausted-descriptors test's server.
const FD_LIMIT: u32 = 128;
/// Connections opened against it: well past the limit.
const FD_FLOOD: usize = 300;

#[tokio::test]
async fn out_of_descriptors_the_server_pauses_accepting_instead_of_spinning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let handshake = format!("{}s", HANDSHAKE.as_secs());
    // A cap above the descriptor limit, as on a host whose LimitNOFILE
    // was not raised.
    let server = Proc::spawn(
        &dir.path().join("data"),
        &topics,
        &[
            "--max-connections",
            "1000",
            "--handshake-timeout",
            &handshake,
        ],
        Some(FD_LIMIT),
        &[],
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..FD_FLOOD {
        // The kernel completes these into the backlog whether or not the
        // server can accept them.
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.addr)).await
        {
            flood.push(s);
        }
    }
    // Out of descriptors for a while: the accept loop must not spin.
    let cpu_before = server.cpu_seconds();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await; // a measurement window, not synchronisation
    let cpu = server.cpu_seconds() - cpu_before;
    let share = cpu / window.elapsed().as_secs_f64();
    drop(flood);
    // Scraped once descriptors are free again: the errors happened.
    let errors = server
        .wait_metric("pubsub_accept_errors_total", Duration::from_secs(20), |v| {
            v > 0.0
        })
        .await;
    eprintln!(
        "transport: {FD_FLOOD} connections against {FD_LIMIT} descriptors: {errors} accept errors, server CPU {:.0}% of a core while out of descriptors",
        100.0 * share
    );
    assert!(
        share < 0.3,
        "the accept loop spins: {:.0}% of a core",
        100.0 * share
    );
    // A new client is served.
    let mut client = server.client().await;
    tokio::time::timeout(
        Duration::from_secs(20),
        client.get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        }),
    )
    .await
    .expect("served within 20 s once descriptors are free")
    .expect("get topic");
}
