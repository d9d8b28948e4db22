//! Seeing what a server does: live streams in the Admin API, topic
//! activity, `eventbus top`, managed lag before the first commit, and the
//! per-topic and process metrics.

use std::time::Duration;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb::{self, ReplayPreset};
use eventbus::auth::{AuthMode, hash_token};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::common::*;

const WITHIN: Duration = Duration::from_secs(20);

async fn admin_client(server: &TestServer) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect admin")
}

async fn streams(server: &TestServer) -> Vec<admin::StreamDescription> {
    admin_client(server)
        .await
        .list_streams(admin::ListStreamsRequest::default())
        .await
        .expect("list streams")
        .into_inner()
        .streams
}

async fn create_managed(server: &TestServer, name: &str, replay: admin::ManagedReplay) {
    admin_client(server)
        .await
        .create_managed_subscription(admin::CreateManagedSubscriptionRequest {
            developer_name: name.into(),
            topic_name: ORDER_TOPIC.into(),
            default_replay: replay as i32,
            error_recovery_replay: replay as i32,
            state: admin::ManagedState::Run as i32,
        })
        .await
        .expect("create managed subscription");
}

async fn managed_lag(server: &TestServer, name: &str) -> Option<u64> {
    admin_client(server)
        .await
        .describe_managed_subscription(admin::ManagedSubscriptionRef {
            developer_name: name.into(),
            ..Default::default()
        })
        .await
        .expect("describe")
        .into_inner()
        .lag
}

/// Runs `eventbus ARGS --server ADDR` with stdout piped (not a terminal);
/// its output, once it succeeded.
async fn eventbus(server: &TestServer, args: &[&str]) -> String {
    crate::cli::ok(&crate::cli::eventbus(server, args, None).await)
}

#[tokio::test]
async fn live_streams_are_listed_with_their_figures_and_leave_with_their_client() {
    let server = start().await;
    publish_orders(&server, 0, 5).await;
    let mut client = server.client().await;
    let (sub_tx, mut sub_rx) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 3))
        .await
        .expect("subscribe");
    collect_events(&mut sub_rx, 3).await;

    create_managed(&server, "Top_Watcher", admin::ManagedReplay::Earliest).await;
    let (managed_tx, rx) = mpsc::channel(8);
    managed_tx
        .send(pb::ManagedFetchRequest {
            developer_name: "Top_Watcher".into(),
            num_requested: 4,
            ..Default::default()
        })
        .await
        .expect("first request");
    let mut managed_rx = server
        .client()
        .await
        .managed_subscribe(ReceiverStream::new(rx))
        .await
        .expect("managed subscribe")
        .into_inner();
    let mut got = 0;
    while got < 4 {
        let r = next_within(&mut managed_rx, Duration::from_secs(10))
            .await
            .expect("response")
            .expect("open");
        got += r.events.len();
    }

    // Both streams, with what they delivered, their credit and lag.
    let listed = eventually("both streams to show their deliveries", WITHIN, || {
        let server = &server;
        async move {
            let all = streams(server).await;
            (all.len() == 2 && all.iter().map(|s| s.delivered_events).sum::<u64>() == 7)
                .then_some(all)
        }
    })
    .await;
    let sub = listed
        .iter()
        .find(|s| s.kind == admin::StreamKind::Subscribe as i32)
        .expect("the Subscribe stream");
    assert_eq!(sub.topic_name, ORDER_TOPIC);
    assert_eq!((sub.delivered_events, sub.credit, sub.lag), (3, 0, 2));
    assert!(sub.delivered_bytes > 0);
    assert_eq!(replay_num(&sub.replay_id), 3);
    assert!(sub.last_delivery_ms > 0 && sub.opened_ms > 0);
    let peer: std::net::SocketAddr = sub.peer.parse().expect("peer is host:port");
    assert!(peer.ip().is_loopback(), "{peer}");
    assert_eq!(sub.user, "", "--auth none has no user");
    let managed = listed
        .iter()
        .find(|s| s.kind == admin::StreamKind::ManagedSubscribe as i32)
        .expect("the ManagedSubscribe stream");
    assert_eq!(managed.developer_name, "Top_Watcher");
    assert!(managed.managed_subscription_id.starts_with("18x"));
    assert_eq!(
        (managed.delivered_events, managed.credit, managed.lag),
        (4, 0, 1)
    );

    // The topic's activity: two subscribers, a newest event, a rate.
    let topics = admin_client(&server)
        .await
        .list_topics(admin::ListTopicsRequest {})
        .await
        .expect("list topics")
        .into_inner()
        .topics;
    let order = topics
        .iter()
        .find(|t| t.topic_name == ORDER_TOPIC)
        .expect("the order topic");
    assert_eq!(order.subscribers, 2);
    assert!(order.last_event_ms > 0);
    assert!(order.publish_rate >= 0.0);

    // The same through the binary.
    let doc: Value = serde_json::from_str(&eventbus(&server, &["top", "--once", "--json"]).await)
        .expect("one JSON document");
    let shown = doc["streams"].as_array().expect("streams");
    assert_eq!(shown.len(), 2, "{doc}");
    let sub_json = shown
        .iter()
        .find(|s| s["kind"] == "subscribe")
        .expect("subscribe stream");
    assert_eq!(sub_json["topic"], ORDER_TOPIC);
    assert_eq!(sub_json["delivered_events"], 3);
    assert_eq!(sub_json["credit"], 0);
    assert_eq!(sub_json["lag"], 2);
    assert_eq!(sub_json["peer"], sub.peer.as_str());
    assert_eq!(doc["topics"][0]["subscribers"], 2);
    let text = eventbus(&server, &["top", "--once"]).await;
    for cell in [
        "RATE/s",
        "LAST EVENT",
        "DELIVERED",
        "Top_Watcher",
        "managed",
    ] {
        assert!(text.contains(cell), "{cell} in:\n{text}");
    }
    let list = eventbus(&server, &["topic", "list"]).await;
    let row = list
        .lines()
        .find(|l| l.starts_with(ORDER_TOPIC))
        .expect("the order topic");
    assert!(list.starts_with("TOPIC") && list.contains("SUBS"), "{list}");
    assert!(row.split_whitespace().nth(3) == Some("2"), "SUBS 2: {list}");
    let line: Value = serde_json::from_str(
        eventbus(&server, &["topic", "list", "--json"])
            .await
            .lines()
            .next()
            .expect("a topic"),
    )
    .expect("JSON line");
    assert_eq!(line["subscribers"], 2);
    assert!(line["last_event_ms"].as_u64().is_some_and(|t| t > 0));

    // The Subscribe client goes away: its stream leaves the listing.
    drop(sub_tx);
    drop(sub_rx);
    drop(client);
    eventually("the Subscribe stream to be gone", WITHIN, || {
        let server = &server;
        async move {
            let all = streams(server).await;
            (all.len() == 1 && all[0].kind == admin::StreamKind::ManagedSubscribe as i32)
                .then_some(())
        }
    })
    .await;
    drop(managed_tx);
    drop(managed_rx);
    eventually("no stream left", WITHIN, || {
        let server = &server;
        async move { streams(server).await.is_empty().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn managed_lag_before_the_first_commit_counts_what_the_next_stream_would_deliver() {
    let server = start().await;
    publish_orders(&server, 0, 5).await;
    create_managed(&server, "From_Earliest", admin::ManagedReplay::Earliest).await;
    create_managed(&server, "From_Latest", admin::ManagedReplay::Latest).await;
    assert_eq!(managed_lag(&server, "From_Earliest").await, Some(5));
    assert_eq!(managed_lag(&server, "From_Latest").await, Some(0));
    publish_orders(&server, 5, 2).await;
    assert_eq!(managed_lag(&server, "From_Earliest").await, Some(7));
    // LATEST starts at the newest event when a stream opens, so what was
    // published before still would not be delivered.
    assert_eq!(managed_lag(&server, "From_Latest").await, Some(0));
    // The CLI shows the number, not `-`.
    let list = eventbus(&server, &["managed", "list"]).await;
    let row = list
        .lines()
        .find(|l| l.contains("From_Earliest"))
        .expect("listed");
    assert!(row.split_whitespace().any(|c| c == "7"), "{list}");
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_streams() {
    const ORG_A: &str = "00D5e000000AbcdEAC";
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
            [entry("home", eventbus::auth::DEFAULT_TENANT), entry("a", ORG_A)].join("\n"),
        )
        .expect("tokens");
        a.auth = AuthMode::Static;
        a.auth_tokens_file = Some(file);
    })
    .await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let with = |token: &'static str, tenant: &'static str| {
        move |mut req: tonic::Request<()>| {
            let md = req.metadata_mut();
            md.insert("accesstoken", MetadataValue::from_static(token));
            md.insert(
                "instanceurl",
                MetadataValue::from_static("https://localhost"),
            );
            md.insert("tenantid", MetadataValue::from_static(tenant));
            Ok(req)
        }
    };
    let mut home = pb::pub_sub_client::PubSubClient::with_interceptor(
        channel.clone(),
        with("home", eventbus::auth::DEFAULT_TENANT),
    );
    let (tx, rx) = mpsc::channel(4);
    tx.send(fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("first request");
    let _stream = home
        .subscribe(ReceiverStream::new(rx))
        .await
        .expect("subscribe")
        .into_inner();
    let list = |token: &'static str, tenant: &'static str| {
        let mut admin = AdminClient::with_interceptor(channel.clone(), with(token, tenant));
        async move {
            admin
                .list_streams(admin::ListStreamsRequest::default())
                .await
                .expect("list streams")
                .into_inner()
                .streams
        }
    };
    let mine = eventually("the home tenant's stream", WITHIN, || async {
        let all = list("home", eventbus::auth::DEFAULT_TENANT).await;
        (!all.is_empty()).then_some(all)
    })
    .await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].user, "home");
    assert_eq!(mine[0].topic_name, ORDER_TOPIC);
    assert!(
        list("a", ORG_A).await.is_empty(),
        "another tenant sees nothing"
    );
}

#[tokio::test]
async fn metrics_label_open_streams_by_topic_and_show_the_process() {
    let server = start_with(|a| a.metrics_listen = "127.0.0.1:0".into()).await;
    let addr = server.metrics.expect("metrics endpoint on");
    let mut client = server.client().await;
    let (_tx, _rx) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("subscribe");
    let series = format!("pubsub_subscriptions_open{{topic=\"{ORDER_TOPIC}\"}} 1");
    let body = eventually("the stream in the metrics", WITHIN, || {
        let series = series.clone();
        async move {
            let body = scrape(addr).await;
            body.lines().any(|l| l == series).then_some(body)
        }
    })
    .await;
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{body}"
        );
    }
}

/// The body of `GET /metrics`.
async fn scrape(addr: std::net::SocketAddr) -> String {
    crate::admin::http_get(addr, "/metrics").await.1
}
