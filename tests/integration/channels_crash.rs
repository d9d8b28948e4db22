//! A crash between a source topic and its channel (issue 22): publishers at
//! full speed on a topic that a filtered channel follows, SIGKILL at a
//! random moment, restart on the same folder. After every restart the
//! channel holds exactly the source's events that pass the filter, in
//! order, none lost and none twice (RocksDB writes both in one batch).

use std::time::Duration;

use eventbus::api::pb::{self, ReplayPreset};

use crate::common::*;

/// The channel's filter keeps orders whose amount (n * 1.5) is over 100.
fn passes(payload: &[u8]) -> bool {
    // The amount is the payload's last 8 bytes (order_payload).
    let Some(tail) = payload.get(payload.len().saturating_sub(8)..) else {
        return false;
    };
    let amount = f64::from_le_bytes(tail.try_into().expect("8 bytes"));
    amount > 100.0
}

/// A DX project defining `Big__chn` on Order_Event__e.
fn write_project(root: &std::path::Path) -> std::path::PathBuf {
    let dx = root.join("dx");
    std::fs::create_dir_all(dx.join("platformEventChannels")).expect("mkdir");
    std::fs::create_dir_all(dx.join("platformEventChannelMembers")).expect("mkdir");
    std::fs::create_dir_all(dx.join("objects")).expect("mkdir");
    std::fs::write(
        dx.join("platformEventChannels/Big__chn.platformEventChannel-meta.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannel xmlns="http://soap.sforce.com/2006/04/metadata">
    <channelType>event</channelType>
    <label>Big orders</label>
</PlatformEventChannel>
"#,
    )
    .expect("channel");
    std::fs::write(
        dx.join(
            "platformEventChannelMembers/Big_chn_Order_Event_e.platformEventChannelMember-meta.xml",
        ),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<PlatformEventChannelMember xmlns="http://soap.sforce.com/2006/04/metadata">
    <eventChannel>Big__chn</eventChannel>
    <selectedEntity>Order_Event__e</selectedEntity>
    <filterExpression>Amount__c &gt; 100</filterExpression>
</PlatformEventChannelMember>
"#,
    )
    .expect("member");
    dx
}

/// Every payload of `topic` up to and including `marker`, in order.
async fn payloads_until(server: &ServerProcess, topic: &str, marker: &[u8]) -> Vec<Vec<u8>> {
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(
        &mut client,
        pb::FetchRequest {
            topic_name: topic.into(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: 100,
            ..Default::default()
        },
    )
    .await
    .expect("subscribe");
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| panic!("{topic}: the marker never came; {} events read", out.len()))
            .expect("stream healthy")
            .expect("stream open");
        for e in &resp.events {
            out.push(e.event.as_ref().expect("event").payload.to_vec());
        }
        if out.last().is_some_and(|p| p == marker) {
            return out;
        }
        if resp.pending_num_requested == 0 {
            let _ = tx.send(more(100)).await;
        }
    }
}

async fn publish_until_dead(server: &ServerProcess, schema: String, base: i64) {
    let mut client = server.client().await;
    let mut seq = base;
    loop {
        let req = pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: (seq..seq + 5).map(|i| order_event(&schema, i)).collect(),
            auth_refresh: String::new(),
        };
        seq += 5;
        if client.publish(req).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_crash_between_source_and_channel_loses_and_doubles_nothing() {
    if on_jetstream() {
        return; // RocksDB processes only (the SIGKILL harness of crash.rs)
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let dx = write_project(dir.path());
    let data = dir.path().join("data");
    let flags = ["--metadata", dx.to_str().expect("utf-8 path")];
    let cycles = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4u64);
    let mut server = ServerProcess::spawn(&data, &topics, &flags).await;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut checked = 0usize;
    for cycle in 0..=cycles {
        let schema = server
            .client()
            .await
            .get_topic(pb::TopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .expect("topic")
            .into_inner()
            .schema_id;
        // A marker that passes the filter ends both logs.
        let base = (cycle as i64 + 1) * 1_000_000;
        let marker = order_event(&schema, base - 1);
        server
            .client()
            .await
            .publish(pb::PublishRequest {
                topic_name: ORDER_TOPIC.into(),
                events: vec![marker.clone()],
                auth_refresh: String::new(),
            })
            .await
            .expect("marker published");
        let source = payloads_until(&server, ORDER_TOPIC, &marker.payload).await;
        let channel = payloads_until(&server, "/event/Big__chn", &marker.payload).await;
        let expected: Vec<Vec<u8>> = source.iter().filter(|p| passes(p)).cloned().collect();
        assert_eq!(
            channel.len(),
            expected.len(),
            "cycle {cycle}: the channel holds {} events, the source {} that pass",
            channel.len(),
            expected.len()
        );
        assert!(
            channel == expected,
            "cycle {cycle}: the channel differs from the filtered source"
        );
        checked = source.len();
        if cycle == cycles {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = Duration::from_millis(20 + rng % 180);
        let running = std::sync::Arc::new(server);
        let loaders: Vec<_> = (0..3)
            .map(|k| {
                let (s, sc) = (running.clone(), schema.clone());
                tokio::spawn(async move { publish_until_dead(&s, sc, base + k * 100_000).await })
            })
            .collect();
        // The crash moment is chosen, not awaited on: fault injection.
        tokio::time::sleep(kill_after).await;
        let pid = running.child.id();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        for l in loaders {
            l.await.expect("loader task");
        }
        let mut killed = std::sync::Arc::try_unwrap(running)
            .unwrap_or_else(|_| panic!("loaders hold no server"));
        let _ = tokio::task::spawn_blocking(move || killed.child.wait()).await;
        server = ServerProcess::spawn(&data, &topics, &flags).await;
    }
    eprintln!(
        "channel crash harness: {cycles} SIGKILL cycles, {checked} source events checked against the channel"
    );
}
