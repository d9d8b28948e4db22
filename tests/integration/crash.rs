//! Crash durability: publishers at full speed, SIGKILL at a pseudo-random
//! moment, restart on the same data folder, and check every acknowledged
//! event. `CRASH_CYCLES` sets the number of cycles (default 20, what CI
//! runs; set 500 for a long run).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventbus::api::pb::{self, ReplayPreset};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::common::*;

type Acked = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

fn request(schema: &str, from: i64, n: i64) -> pb::PublishRequest {
    pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events: (from..from + n).map(|i| order_event(schema, i)).collect(),
        auth_refresh: String::new(),
    }
}

fn record(acked: &Acked, req: &pb::PublishRequest, resp: &pb::PublishResponse) {
    let mut map = acked.lock().expect("acked map");
    for (ev, r) in req.events.iter().zip(&resp.results) {
        assert!(r.error.is_none(), "a valid event failed: {:?}", r.error);
        let id = replay_num(&r.replay_id);
        let prev = map.insert(id, ev.payload.to_vec());
        assert!(prev.is_none(), "replay id {id} acknowledged twice");
    }
}

/// Publishes through PublishStream until the server dies; records acks.
async fn stream_loader(server: &ServerProcess, schema: String, acked: Acked, base: i64) {
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(4);
    let Ok(resp) = client.publish_stream(ReceiverStream::new(rx)).await else {
        return;
    };
    let mut responses = resp.into_inner();
    let mut seq = base;
    loop {
        let req = request(&schema, seq, 10);
        seq += 10;
        if tx.send(req.clone()).await.is_err() {
            return;
        }
        match responses.message().await {
            Ok(Some(resp)) => record(&acked, &req, &resp),
            _ => return, // the server died: this request's fate is unknown
        }
    }
}

/// Publishes with unary calls until the server dies; records acks.
async fn unary_loader(server: &ServerProcess, schema: String, acked: Acked, base: i64) {
    let mut client = server.client().await;
    let mut seq = base;
    loop {
        let req = request(&schema, seq, 5);
        seq += 5;
        match client.publish(req.clone()).await {
            Ok(resp) => record(&acked, &req, resp.get_ref()),
            Err(_) => return,
        }
    }
}

/// Reads the whole topic from EARLIEST and checks it against `acked`:
/// replay ids dense from 1, every acknowledged event present exactly once
/// with the same bytes, no payload twice. Returns the log (id -> payload).
async fn verify(server: &ServerProcess, acked: &BTreeMap<u64, Vec<u8>>) -> BTreeMap<u64, Vec<u8>> {
    let want = acked.keys().next_back().copied().unwrap_or(0);
    let mut log = BTreeMap::new();
    if want == 0 {
        return log;
    }
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 100))
        .await
        .expect("subscribe");
    let mut last = 0u64;
    let mut seen_payloads = HashSet::new();
    while last < want {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!("acknowledged events up to {want} missing; log ends at {last}")
            })
            .expect("stream healthy")
            .expect("stream open");
        for e in &resp.events {
            let id = replay_num(&e.replay_id);
            assert_eq!(id, last + 1, "replay ids must be dense and increasing");
            last = id;
            let payload = e.event.as_ref().expect("event").payload.to_vec();
            assert!(
                seen_payloads.insert(payload.clone()),
                "event at {id} stored twice"
            );
            log.insert(id, payload);
        }
        if resp.pending_num_requested == 0 {
            tx.send(more(100)).await;
        }
    }
    for (id, payload) in acked {
        assert_eq!(
            log.get(id),
            Some(payload),
            "acknowledged event {id} lost or changed"
        );
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_event() {
    let cycles: u64 = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    let data = dir.path().join("data");
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    for cycle in 0..cycles {
        let server = ServerProcess::spawn(&data, &topics, &[]).await;
        let snapshot = acked.lock().expect("acked").clone();
        verify(&server, &snapshot).await;
        let schema = {
            let mut c = server.client().await;
            c.get_topic(pb::TopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .expect("topic")
            .into_inner()
            .schema_id
        };
        // xorshift: a kill moment between 20 and 200 ms into the load.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = Duration::from_millis(20 + rng % 180);
        let base = (cycle as i64) * 10_000_000;
        let server = Arc::new(server);
        let loaders = vec![
            tokio::spawn({
                let (s, sc, a) = (server.clone(), schema.clone(), acked.clone());
                async move { stream_loader(&s, sc, a, base).await }
            }),
            tokio::spawn({
                let (s, sc, a) = (server.clone(), schema.clone(), acked.clone());
                async move { stream_loader(&s, sc, a, base + 3_000_000).await }
            }),
            tokio::spawn({
                let (s, sc, a) = (server.clone(), schema, acked.clone());
                async move { unary_loader(&s, sc, a, base + 6_000_000).await }
            }),
        ];
        // The crash moment is chosen, not awaited on: this sleep is the
        // fault injection, not synchronisation.
        tokio::time::sleep(kill_after).await;
        let pid = server.child.id();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        for l in loaders {
            l.await.expect("loader task");
        }
        let mut server =
            Arc::try_unwrap(server).unwrap_or_else(|_| panic!("loaders hold no server"));
        let _ = tokio::task::spawn_blocking(move || server.child.wait()).await;
    }
    // Final check, plus resuming with CUSTOM from acknowledged ids.
    let server = ServerProcess::spawn(&data, &topics, &[]).await;
    let acked = acked.lock().expect("acked").clone();
    let log = verify(&server, &acked).await;
    assert!(
        acked.len() > 100,
        "the load acknowledged only {} events",
        acked.len()
    );
    let mut client = server.client().await;
    for id in acked.keys().step_by((acked.len() / 5).max(1)).take(5) {
        let (_tx, mut stream) = subscribe(
            &mut client,
            fetch(ReplayPreset::Custom, id.to_be_bytes().to_vec(), 3),
        )
        .await
        .expect("CUSTOM from an acknowledged id");
        let want: Vec<u64> = log.range(id + 1..).take(3).map(|(k, _)| *k).collect();
        let (events, _) = collect_events(&mut stream, want.len()).await;
        let got: Vec<u64> = events
            .iter()
            .take(want.len())
            .map(|e| replay_num(&e.replay_id))
            .collect();
        assert_eq!(
            got, want,
            "resuming after {id} must continue with no gap or repeat"
        );
    }
    eprintln!(
        "crash harness: {cycles} SIGKILL cycles, {} acknowledged events checked, {} in the log, 0 lost",
        acked.len(),
        log.len()
    );
    let mut child = match Arc::try_unwrap(Arc::new(server)) {
        Ok(s) => s.child,
        Err(_) => unreachable!("single owner"),
    };
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
