//! Restart durability, retention, and the binary's signal handling.

use std::process::Command;
use std::time::Duration;

use eventbus::api::pb::{self, ReplayPreset};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn acknowledged_events_survive_a_restart_with_the_same_ids_and_bytes() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let mut acked = publish_orders(&server, 0, 10).await;
    // And through PublishStream.
    let (tx, rx) = mpsc::channel(8);
    for i in 10..15 {
        tx.send(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema, i)],
            auth_refresh: String::new(),
        })
        .await
        .expect("queue");
    }
    drop(tx);
    let mut responses = server
        .client()
        .await
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("open")
        .into_inner();
    while let Some(r) = next(&mut responses).await.expect("ok") {
        acked.push(r.results[0].replay_id.to_vec());
    }
    assert_eq!(acked.len(), 15);

    let server = server.restart().await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 100))
        .await
        .expect("subscribe");
    let (events, _) = collect_events(&mut stream, 15).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.replay_id.to_vec(), acked[i]);
        assert_eq!(
            e.event.as_ref().expect("event").payload.to_vec(),
            order_payload(i as i64)
        );
    }
    let next_ids = publish_orders(&server, 15, 1).await;
    assert_eq!(
        replay_num(&next_ids[0]),
        replay_num(&acked[14]) + 1,
        "ids continue, never reused"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_events_and_ids_are_never_reused() {
    let server = start_with(|a| {
        a.retention = Duration::from_millis(50);
        a.retention_check_interval = Duration::from_millis(20);
    })
    .await;
    let ids = publish_orders(&server, 0, 3).await;
    // Poll until the retention task has trimmed all three.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
        let trimmed = server.broker.enforce_retention().await.is_ok()
            && eventbus_bounds_trimmed(&server, topic.id) >= 3;
        if trimmed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never trimmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling with a deadline
    }
    let mut client = server.client().await;
    let st = subscribe(&mut client, fetch(ReplayPreset::Custom, ids[0].clone(), 1))
        .await
        .map(|_| ())
        .expect_err("expired id");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.replayid.corrupted",
    );
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 5))
        .await
        .expect("earliest");
    let fresh = publish_orders(&server, 3, 1).await;
    assert_eq!(replay_num(&fresh[0]), 4, "never reused after retention");
    let (events, _) = collect_events(&mut stream, 1).await;
    assert_eq!(
        events[0].replay_id.to_vec(),
        fresh[0],
        "EARLIEST starts at the oldest retained"
    );
    server.shutdown().await;
}

fn eventbus_bounds_trimmed(server: &TestServer, topic: eventbus::types::TopicId) -> u64 {
    server.broker.bounds(topic).expect("bounds").trimmed.0
}

#[tokio::test]
async fn sigterm_finishes_streams_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let server = ServerProcess::spawn(&dir.path().join("data"), &topics, &[]).await;
    let mut client = server.client().await;
    let schema = client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("topic")
        .into_inner()
        .schema_id;
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema, 1)],
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert!(resp.results[0].error.is_none());
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 5))
        .await
        .expect("subscribe");
    collect_events(&mut stream, 1).await;
    // SIGTERM to the child we started, by its pid.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let st = next(&mut stream)
        .await
        .expect_err("stream ends with a status");
    assert_status(&st, Code::Unavailable, "service.unavailable");
    let ServerProcess {
        mut child,
        log_reader,
        ..
    } = server;
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let not_json = log_reader.join().expect("log reader");
    assert!(
        not_json.is_empty(),
        "--log-format json printed non-JSON lines: {not_json:?}"
    );
}
