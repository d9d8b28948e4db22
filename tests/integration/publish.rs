//! Publish and PublishStream.

use std::collections::HashSet;

use eventbus::api::pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common::*;

fn request(events: Vec<pb::ProducerEvent>) -> pb::PublishRequest {
    pb::PublishRequest {
        topic_name: ORDER_TOPIC.into(),
        events,
        auth_refresh: String::new(),
    }
}

#[tokio::test]
async fn publish_returns_one_result_per_event_in_order() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let resp = server
        .client()
        .await
        .publish(request((0..5).map(|i| order_event(&schema, i)).collect()))
        .await
        .expect("publish")
        .into_inner();
    assert_eq!(resp.results.len(), 5);
    assert_eq!(resp.schema_id, schema);
    assert!(!resp.rpc_id.is_empty());
    let ids: Vec<u64> = resp
        .results
        .iter()
        .map(|r| {
            assert!(r.error.is_none());
            assert_eq!(r.replay_id.len(), 8);
            replay_num(&r.replay_id)
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_events_fail_alone_and_the_rest_publish() {
    let server = start_with(|a| a.max_event_bytes = 4096).await;
    let schema = server.order_schema_id().await;
    let good = order_event(&schema, 1);
    let events = vec![
        good.clone(),
        pb::ProducerEvent {
            payload: vec![0xff, 0xff, 0xff].into(),
            ..good.clone()
        },
        pb::ProducerEvent {
            schema_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            ..good.clone()
        },
        pb::ProducerEvent {
            id: "x".repeat(37),
            ..good.clone()
        },
        pb::ProducerEvent {
            payload: big_order_payload(5000).into(),
            ..good.clone()
        },
        pb::ProducerEvent {
            payload: [order_payload(1), vec![0]].concat().into(),
            ..good.clone()
        },
        good.clone(),
    ];
    let resp = server
        .client()
        .await
        .publish(request(events))
        .await
        .expect("the call succeeds even with bad events")
        .into_inner();
    let r = &resp.results;
    assert_eq!(r.len(), 7);
    assert!(r[0].error.is_none() && r[6].error.is_none());
    assert_eq!(replay_num(&r[6].replay_id), replay_num(&r[0].replay_id) + 1);
    for (i, needle) in [
        (1, "not a valid Avro record"),
        (2, "not a schema of topic"),
        (3, "37 characters"),
        (4, "limit is 4096 bytes"),
        (5, "left over"),
    ] {
        let err = r[i]
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("event {i} must fail"));
        assert_eq!(err.code, pb::ErrorCode::Publish as i32);
        assert!(err.msg.contains(needle), "event {i}: {}", err.msg);
        assert!(r[i].replay_id.is_empty());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn correlation_keys_follow_the_spec() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let mut client = server.client().await;
    let custom = "b3f1c1a0-0000-4000-8000-000000000001";
    let events = vec![
        order_event(&schema, 1), // no id, success: generated UUID
        pb::ProducerEvent {
            payload: vec![1].into(),
            ..order_event(&schema, 2)
        }, // no id, failure: empty
        pb::ProducerEvent {
            id: custom.into(),
            ..order_event(&schema, 3)
        }, // custom, success
        pb::ProducerEvent {
            id: "my-id".into(),
            payload: vec![1].into(),
            ..order_event(&schema, 4)
        }, // custom, failure
    ];
    let resp = client
        .publish(request(events))
        .await
        .expect("publish")
        .into_inner();
    let keys: Vec<&str> = resp
        .results
        .iter()
        .map(|r| r.correlation_key.as_str())
        .collect();
    assert_eq!(keys[0].len(), 36, "generated UUID: {}", keys[0]);
    assert_eq!(keys[1], "");
    assert_eq!(keys[2], custom);
    assert_eq!(keys[3], "my-id");
    // The stored events carry the generated and the custom id.
    let (_tx, mut stream) = subscribe(&mut client, fetch(pb::ReplayPreset::Earliest, vec![], 5))
        .await
        .expect("subscribe");
    let (events, _) = collect_events(&mut stream, 2).await;
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.event.as_ref().expect("event").id.clone())
        .collect();
    assert_eq!(ids, vec![keys[0].to_owned(), custom.to_owned()]);
    server.shutdown().await;
}

#[tokio::test]
async fn request_level_errors_are_statuses() {
    let server = start().await;
    let mut client = server.client().await;
    let st = client
        .publish(request(vec![]))
        .await
        .expect_err("empty batch");
    assert_status(&st, Code::InvalidArgument, "publish.event.count.invalid");
    let st = client
        .publish(pb::PublishRequest {
            topic_name: String::new(),
            events: vec![order_event("x", 1)],
            auth_refresh: String::new(),
        })
        .await
        .expect_err("blank topic");
    assert_status(&st, Code::InvalidArgument, "publish.topic.validation.empty");
    let st = client
        .publish(pb::PublishRequest {
            topic_name: "/event/Missing__e".into(),
            events: vec![order_event("x", 1)],
            auth_refresh: String::new(),
        })
        .await
        .expect_err("unknown topic");
    assert_status(&st, Code::NotFound, "topic.not.found");
    server.shutdown().await;
}

#[tokio::test]
async fn publish_stream_answers_pipelined_requests_in_order() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let (tx, rx) = mpsc::channel(64);
    for i in 0..20 {
        let mut req = request(vec![
            order_event(&schema, i * 2),
            order_event(&schema, i * 2 + 1),
        ]);
        if i > 0 && i % 2 == 0 {
            req.topic_name = String::new(); // later requests may omit the topic
        }
        tx.send(req).await.expect("queue");
    }
    let mut responses = server
        .client()
        .await
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("open stream")
        .into_inner();
    let mut last = 0;
    for _ in 0..20 {
        let resp = next(&mut responses)
            .await
            .expect("ok")
            .expect("a response per request");
        assert_eq!(
            resp.results.len(),
            2,
            "never an empty keepalive while publishing"
        );
        for r in &resp.results {
            assert!(r.error.is_none());
            let n = replay_num(&r.replay_id);
            assert_eq!(n, last + 1, "responses arrive in request order");
            last = n;
        }
    }
    drop(tx); // half-close: the stream ends with OK
    assert!(next(&mut responses).await.expect("ends with OK").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn publish_stream_topic_mismatch_ends_the_stream_after_earlier_answers() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(request(vec![order_event(&schema, 1)]))
        .await
        .expect("queue");
    let mut responses = server
        .client()
        .await
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("open")
        .into_inner();
    let first = next(&mut responses)
        .await
        .expect("ok")
        .expect("first answer");
    assert!(first.results[0].error.is_none());
    tx.send(pb::PublishRequest {
        topic_name: "/event/Other__e".into(),
        events: vec![order_event(&schema, 2)],
        auth_refresh: String::new(),
    })
    .await
    .expect("queue");
    let st = next(&mut responses)
        .await
        .expect_err("mismatch ends the stream");
    assert_status(&st, Code::InvalidArgument, "publish.topic.mismatch");
    server.shutdown().await;
}

#[tokio::test]
async fn publish_stream_stops_reading_when_the_client_stops_reading_answers() {
    // Window 1: the server holds one request in flight and a response or
    // two queued; a client that never reads answers stalls the stream once
    // HTTP/2 buffers fill, instead of the server queueing without bound.
    let server = start_with(|a| {
        a.publish_stream_window = 1;
        // Fast acks, so a server that never stalls would publish everything
        // well within the deadline and fail the assertion below.
        a.durability = eventbus::log::Durability::Buffered;
    })
    .await;
    let schema = server.order_schema_id().await;
    let (tx, rx) = mpsc::channel(1);
    let mut client = server.client().await;
    let call = tokio::spawn(async move {
        let resp = client.publish_stream(ReceiverStream::new(rx)).await;
        (client, resp) // the channel must outlive the call
    });
    let total = 20_000;
    let sender = tokio::spawn(async move {
        for i in 0..total {
            let ev = pb::ProducerEvent {
                id: format!("{i:0>36}"), // large correlation keys fill responses fast
                ..order_event(&schema, i)
            };
            if tx.send(request(vec![ev])).await.is_err() {
                break;
            }
        }
        tx
    });
    // Wait until the server has published a good share, then check that it
    // stalls well below the total while nobody reads responses.
    let stats = server.broker.clone();
    let published = || {
        stats
            .stats()
            .events_published
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = 0;
    let mut stable_polls = 0;
    while stable_polls < 25 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling, not synchronising
        let now = published();
        if now == last {
            stable_polls += 1
        } else {
            stable_polls = 0;
            last = now;
        }
    }
    assert!(last > 0, "the server published something");
    assert!(
        last < total as u64,
        "the server stalled at {last} of {total} while answers were unread"
    );
    // Reading the answers lets everything through.
    let (_client, resp) = call.await.expect("join");
    let mut responses = resp.expect("open").into_inner();
    let mut answered = 0;
    while answered < total {
        let r = next(&mut responses).await.expect("ok").expect("response");
        answered += r.results.len() as i64;
    }
    drop(sender.await.expect("sender"));
    assert!(next(&mut responses).await.expect("ok").is_none());
    assert_eq!(published(), total as u64);
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_publishers_get_unique_increasing_replay_ids() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let mut client = server.client().await;
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..25 {
                let resp = client
                    .publish(request(vec![order_event(&schema, w * 100 + i)]))
                    .await
                    .expect("publish")
                    .into_inner();
                mine.push(replay_num(&resp.results[0].replay_id));
            }
            mine
        }));
    }
    let mut acked = HashSet::new();
    for t in tasks {
        for id in t.await.expect("join") {
            assert!(acked.insert(id), "replay id {id} acknowledged twice");
        }
    }
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(pb::ReplayPreset::Earliest, vec![], 100))
        .await
        .expect("subscribe");
    let (events, _) = collect_events(&mut stream, 100).await;
    let seen: Vec<u64> = events.iter().map(|e| replay_num(&e.replay_id)).collect();
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps or duplicates: {seen:?}"
    );
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), acked);
    server.shutdown().await;
}
