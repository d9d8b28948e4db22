//! `--backend jetstream` against a stock nats-server (issue 19, item 9): a
//! server without JetStream is refused at once with a hint, and events too
//! large for the server's `max_payload` fail one by one, never as
//! "temporarily unavailable".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventbus::api::pb;
use eventbus::config::{Backend, ServeArgs};
use eventbus::server::Server;
use tonic::Code;

use crate::common::*;
use crate::jetstream::{free_ports, nats_bin};

/// One nats-server on a loopback port of its own, configured by `config`
/// (the `listen` line is added), killed on drop.
struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    fn start(config: &str) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_ports(1)[0];
        let conf = dir.path().join("nats.conf");
        let store = dir.path().join("js");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\n{}\n",
                config.replace("STORE", &store.display().to_string())
            ),
        )
        .expect("write nats.conf");
        let mut child = Command::new(nats_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server ({e}): apt-get install nats-server")
            });
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !told && line.contains("Server is ready") {
                    told = true;
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("nats-server is ready within 30 s");
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn on(&self, args: &mut ServeArgs) {
        args.backend = Backend::Jetstream;
        args.nats_url = vec![self.url.clone()];
        args.nats_replicas = 1;
        args.nats_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_nats_server_without_jetstream_is_refused_at_once_with_a_hint() {
    let nats = NatsServer::start("");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = ServeArgs::for_tests(dir.path().join("data"));
    nats.on(&mut args);
    // Well before the 30 s startup keeps trying an unreachable NATS: no
    // waiting for a JetStream that is not there.
    let built = tokio::time::timeout(Duration::from_secs(15), Server::build(args))
        .await
        .expect("refused before the connect patience runs out");
    let err = match built {
        Ok(_) => panic!("a server without JetStream cannot hold the log"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("JetStream is not enabled"), "{err}");
    assert!(err.contains("-js"), "{err}");
}

#[tokio::test]
async fn events_over_nats_max_payload_fail_one_by_one_and_never_as_retryable() {
    let nats = NatsServer::start("max_payload: 65536\njetstream { store_dir: \"STORE\" }");
    let server = start_with(|a| nats.on(a)).await;
    let schema = server.order_schema_id().await;
    let mut client = server.client().await;
    let event = |payload: Vec<u8>, headers: Vec<pb::EventHeader>| pb::ProducerEvent {
        id: String::new(),
        schema_id: schema.clone(),
        payload: payload.into(),
        headers,
    };
    // 60,000 bytes fit the server's 1 MiB setting but not NATS: refused on
    // their own, with the limit that applies; the small event is stored.
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![
                event(big_order_payload(60_000), vec![]),
                event(order_payload(1), vec![]),
            ],
            auth_refresh: String::new(),
        })
        .await
        .expect("the call succeeds")
        .into_inner();
    let too_big = resp.results[0].error.as_ref().expect("the big event fails");
    assert!(
        too_big.msg.contains("the limit is 57344 bytes"),
        "{}",
        too_big.msg
    );
    assert!(resp.results[1].error.is_none(), "{:?}", resp.results[1]);
    // Under the limit, but its own headers take it past max_payload: the
    // call fails for good, not as "temporarily unavailable".
    let st = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![event(
                big_order_payload(56_000),
                vec![pb::EventHeader {
                    key: "trace".into(),
                    value: vec![b'h'; 12_000].into(),
                }],
            )],
            auth_refresh: String::new(),
        })
        .await
        .expect_err("too large with its headers");
    assert_status(&st, Code::ResourceExhausted, "service.request.too.large");
    assert!(st.message().contains("max_payload"), "{}", st.message());
}
