//! `--backend jetstream`: two eventbus servers on one NATS JetStream log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb::{self, ReplayPreset};
use eventbus::config::Backend;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common::*;

/// A JetStream cluster of nats-servers on loopback ports, each with its own
/// store; every node is killed on drop.
pub struct NatsCluster {
    nodes: Vec<Option<Child>>,
    _dirs: Vec<tempfile::TempDir>,
    pub urls: Vec<String>,
}

/// Free loopback ports: bound, read, released (another process could take
/// one in between; the cluster then fails to start, loudly).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

pub fn nats_bin() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .unwrap_or("nats-server")
}

impl NatsCluster {
    /// Starts `n` nodes routed to each other and waits (reading their logs)
    /// until every node knows the JetStream metadata leader.
    pub fn start(n: usize) -> NatsCluster {
        let ports = free_ports(2 * n);
        let (client, route) = ports.split_at(n);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().expect("temp dir");
            let routes: Vec<String> = (0..n)
                .filter(|j| *j != i)
                .map(|j| format!("nats://127.0.0.1:{}", route[j]))
                .collect();
            let mut child = Command::new(nats_bin())
                .arg("--jetstream")
                .arg("--store_dir")
                .arg(dir.path())
                .args(["--addr", "127.0.0.1", "--port", &client[i].to_string()])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", route[i])])
                .args(["--routes", &routes.join(",")])
                .args([
                    "--cluster_name",
                    "eventbus-test",
                    "--server_name",
                    &format!("n{i}"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start nats-server ({e}): apt-get install nats-server")
                });
            let stderr = child.stderr.take().expect("piped");
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut told = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !told && line.contains("metadata leader") {
                        told = true;
                        let _ = tx.send(i);
                    }
                }
            });
            nodes.push(Some(child));
            dirs.push(dir);
        }
        for _ in 0..n {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("every node knows the JetStream leader within 30 s");
        }
        NatsCluster {
            nodes,
            _dirs: dirs,
            urls: client
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect(),
        }
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

async fn admin_client(addr: std::net::SocketAddr) -> AdminClient<tonic::transport::Channel> {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .expect("connect admin")
}

/// How long another server may take to learn of a change through the
/// log's change feed (in the background).
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_servers_on_one_jetstream_log_share_topics_events_and_managed_subscriptions() {
    // Two eventbus processes (this test's and a child) on a three-node
    // cluster, replicas 3.
    let cluster = NatsCluster::start(3);
    let urls = cluster.urls.join(",");
    let nats_args = [
        "--backend",
        "jetstream",
        "--nats-url",
        urls.as_str(),
        "--nats-replicas",
        "3",
        "--nats-prefix",
        "two",
    ];
    let a = {
        let urls = cluster.urls.clone();
        start_with(move |args| {
            args.backend = Backend::Jetstream;
            args.nats_url = urls;
            args.nats_replicas = 3;
            args.nats_prefix = "two".into();
        })
        .await
    };
    let b_dir = tempfile::tempdir().expect("temp dir");
    let mut b = ServerProcess::spawn(&b_dir.path().join("data"), &a.topics, &nats_args).await;

    // Published through A, replayed through B: same replay ids, same bytes.
    let published = publish_orders(&a, 0, 5).await;
    let mut client = b.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .expect("subscribe on b");
    let (events, _) = collect_events(&mut stream, 5).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.replay_id.to_vec()).collect();
    assert_eq!(got, published);
    assert_eq!(
        events[3].event.as_ref().expect("event").payload.to_vec(),
        order_payload(3)
    );
    // Live: B's subscriber sees A's next publish, through B's follower of
    // the JetStream stream. The deadline is a minute, not the usual 10 s:
    // with the whole suite running in parallel on two cores beside a
    // three-node cluster, the follow-up once took longer than 10 s (twice
    // in five full runs); alone it takes milliseconds.
    let more = publish_orders(&a, 5, 1).await;
    let (live, _) = collect_events_within(&mut stream, 1, Duration::from_secs(60)).await;
    assert_eq!(live[0].replay_id.to_vec(), more[0]);

    // A topic created through A is usable through B without a restart.
    admin_client(a.addr)
        .await
        .create_topic(admin::CreateTopicRequest {
            topic_name: "/event/Shipment__e".into(),
            schema_json: ORDER_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("create on a");
    let info = eventually("b knows the new topic", WAIT, || {
        let b = &b;
        async move {
            b.client()
                .await
                .get_topic(pb::TopicRequest {
                    topic_name: "/event/Shipment__e".into(),
                })
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(info.into_inner().topic_name, "/event/Shipment__e");

    // A managed subscription made on A is exclusive across A and B.
    admin_client(a.addr)
        .await
        .create_managed_subscription(admin::CreateManagedSubscriptionRequest {
            developer_name: "Across".into(),
            topic_name: ORDER_TOPIC.into(),
            default_replay: admin::ManagedReplay::Earliest as i32,
            ..Default::default()
        })
        .await
        .expect("create managed");
    let open = |addr: std::net::SocketAddr| async move {
        let (tx, rx) = mpsc::channel(8);
        tx.send(pb::ManagedFetchRequest {
            developer_name: "Across".into(),
            num_requested: 10,
            ..Default::default()
        })
        .await
        .expect("queue");
        let resp = pb::pub_sub_client::PubSubClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .managed_subscribe(ReceiverStream::new(rx))
            .await;
        (tx, resp)
    };
    eventually("b knows the managed subscription", WAIT, || {
        let b = &b;
        async move {
            admin_client(b.addr)
                .await
                .describe_managed_subscription(admin::ManagedSubscriptionRef {
                    developer_name: "Across".into(),
                    ..Default::default()
                })
                .await
                .ok()
        }
    })
    .await;
    let (tx_a, on_a) = open(a.addr).await;
    let mut on_a = on_a.expect("a opens").into_inner();
    let first = next(&mut on_a).await.expect("healthy").expect("open");
    assert_eq!(first.events.len(), 6);
    let (_tx_b, on_b) = open(b.addr).await;
    let st = on_b.expect_err("b is refused while a streams");
    assert_status(
        &st,
        Code::FailedPrecondition,
        "managed.subscription.already.active",
    );
    // A commits the third event and lets go; B resumes right after it.
    tx_a.send(pb::ManagedFetchRequest {
        commit_replay_id_request: Some(pb::CommitReplayRequest {
            commit_request_id: "c".into(),
            replay_id: published[2].clone().into(),
        }),
        ..Default::default()
    })
    .await
    .expect("commit");
    loop {
        let r = next(&mut on_a).await.expect("healthy").expect("open");
        if let Some(c) = r.commit_response {
            assert!(c.error.is_none(), "{c:?}");
            break;
        }
    }
    drop(tx_a);
    assert!(next(&mut on_a).await.expect("ends with OK").is_none());
    let (_tx_b, on_b) = open(b.addr).await;
    let mut on_b = on_b.expect("b opens once a let go").into_inner();
    let resumed = next(&mut on_b).await.expect("healthy").expect("open");
    let ids: Vec<Vec<u8>> = resumed
        .events
        .iter()
        .map(|e| e.replay_id.to_vec())
        .collect();
    assert_eq!(ids[0], published[3], "resumes right after a's commit");

    a.shutdown().await;
    let _ = b.child.kill();
    let _ = b.child.wait();
}

/// Publishes events `from..from+n` with fixed event ids, retrying a failed
/// request as is (JetStream drops the duplicates of a retried publish), and
/// returns the acknowledged (replay id, event number) pairs.
async fn publish_retrying(server: &TestServer, schema: &str, from: i64, n: i64) -> Vec<(u64, i64)> {
    let events: Vec<pb::ProducerEvent> = (from..from + n)
        .map(|i| pb::ProducerEvent {
            id: format!("order-{i}"),
            ..order_event(schema, i)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            server
                .client()
                .await
                .publish(pb::PublishRequest {
                    topic_name: ORDER_TOPIC.into(),
                    events: events.clone(),
                    auth_refresh: String::new(),
                })
                .await
        };
        match tokio::time::timeout(Duration::from_secs(15), attempt).await {
            Ok(Ok(resp)) => {
                let results = resp.into_inner().results;
                if results.iter().all(|r| r.error.is_none()) {
                    return results
                        .iter()
                        .zip(from..)
                        .map(|(r, i)| (replay_num(&r.replay_id), i))
                        .collect();
                }
            }
            Ok(Err(st)) => assert!(
                matches!(
                    st.code(),
                    Code::Unavailable | Code::Internal | Code::DeadlineExceeded
                ),
                "only transient failures while a node is down: {st:?}"
            ),
            Err(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing never resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // retry backoff
    }
}

/// Reads `n` events from EARLIEST as a Pub/Sub client does: on a failed
/// stream it subscribes again after the last replay id it received.
async fn read_resuming(addr: std::net::SocketAddr, n: usize) -> Vec<pb::ConsumerEvent> {
    let mut seen: Vec<pb::ConsumerEvent> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriber stalled at {}",
            seen.len()
        );
        let first = match seen.last() {
            None => fetch(ReplayPreset::Earliest, vec![], 100),
            Some(last) => fetch(ReplayPreset::Custom, last.replay_id.to_vec(), 100),
        };
        let subscribed = async {
            let mut client = pb::pub_sub_client::PubSubClient::connect(format!("http://{addr}"))
                .await
                .ok()?;
            subscribe(&mut client, first).await.ok()
        };
        let Some((tx, mut stream)) = subscribed.await else {
            tokio::time::sleep(Duration::from_millis(100)).await; // reconnect backoff
            continue;
        };
        while let Ok(Ok(Some(r))) =
            tokio::time::timeout(Duration::from_secs(20), stream.message()).await
        {
            seen.extend(r.events);
            if seen.len() >= n {
                break;
            }
            if r.pending_num_requested == 0 {
                tx.send(more(100)).await;
            }
        }
    }
    seen
}

#[tokio::test]
async fn killing_a_nats_node_loses_no_acknowledged_event() {
    let mut cluster = NatsCluster::start(3);
    let urls = cluster.urls.clone();
    let server = start_with(move |a| {
        a.backend = Backend::Jetstream;
        a.nats_url = urls;
        a.nats_replicas = 3;
        a.nats_prefix = "kill".into();
    })
    .await;
    let schema = server.order_schema_id().await;
    // A live subscriber from the start, resuming from its last replay id
    // whenever its stream fails (UNAVAILABLE while JetStream moves a
    // leader): it must see every event once, in order.
    let reader = tokio::spawn(read_resuming(server.addr, 300));
    let mut acked = Vec::new();
    for batch in 0..10 {
        acked.extend(publish_retrying(&server, &schema, batch * 10, 10).await);
    }
    cluster.kill(0);
    for batch in 10..30 {
        acked.extend(publish_retrying(&server, &schema, batch * 10, 10).await);
    }

    // Every acknowledged event once, with dense replay ids, in order.
    let ids: Vec<u64> = acked.iter().map(|(r, _)| *r).collect();
    assert_eq!(ids, (1..=300).collect::<Vec<u64>>(), "dense, no duplicates");
    let seen: Vec<u64> = reader
        .await
        .expect("subscriber")
        .iter()
        .map(|e| replay_num(&e.replay_id))
        .collect();
    assert_eq!(
        seen, ids,
        "the live subscriber saw every event once, in order"
    );
    // And a fresh replay from EARLIEST returns them all with their bytes.
    let replayed = read_resuming(server.addr, 300).await;
    assert_eq!(replayed.len(), acked.len());
    for (e, (r, n)) in replayed.iter().zip(&acked) {
        assert_eq!(replay_num(&e.replay_id), *r);
        assert_eq!(
            e.event.as_ref().expect("event").payload.to_vec(),
            order_payload(*n)
        );
    }
    server.shutdown().await;
}
