//! Subscribe: replay presets, credit, keepalives, errors.

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventbus::api::pb::{self, ReplayPreset};
use prost::Message;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn earliest_replays_every_event_in_order_with_the_same_bytes() {
    let server = start().await;
    let ids = publish_orders(&server, 0, 5).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 10))
        .await
        .expect("subscribe");
    let (events, responses) = collect_events(&mut stream, 5).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.replay_id.to_vec()).collect();
    assert_eq!(got, ids);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.event.as_ref().expect("event").payload.to_vec(),
            order_payload(i as i64)
        );
    }
    let last = responses.last().expect("a response");
    assert_eq!(last.latest_replay_id.to_vec(), ids[4]);
    assert_eq!(last.pending_num_requested, 5);
    assert!(!last.rpc_id.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn latest_delivers_only_new_events_promptly() {
    let server = start().await;
    publish_orders(&server, 0, 3).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 10))
        .await
        .expect("subscribe");
    // The subscriber is waiting; the append wakes it.
    let ids = publish_orders(&server, 3, 2).await;
    let (events, _) = collect_events(&mut stream, 2).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.replay_id.to_vec()).collect();
    assert_eq!(got, ids);
    server.shutdown().await;
}

#[tokio::test]
async fn custom_delivers_from_the_first_event_after_the_id() {
    let server = start().await;
    let ids = publish_orders(&server, 0, 6).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Custom, ids[2].clone(), 10))
        .await
        .expect("subscribe");
    let (events, _) = collect_events(&mut stream, 3).await;
    let got: Vec<Vec<u8>> = events.iter().map(|e| e.replay_id.to_vec()).collect();
    assert_eq!(got, ids[3..].to_vec());
    // Replay id 0 (before the first event) is valid too.
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Custom, vec![0; 8], 10))
        .await
        .expect("subscribe from 0");
    let (events, _) = collect_events(&mut stream, 6).await;
    assert_eq!(events[0].replay_id.to_vec(), ids[0]);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_replay_ids_are_invalid_argument() {
    let server = start().await;
    publish_orders(&server, 0, 2).await;
    let mut client = server.client().await;
    let st = subscribe(&mut client, fetch(ReplayPreset::Custom, vec![], 1))
        .await
        .map(|_| ())
        .expect_err("missing id");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.replayid.validation.failed",
    );
    for bad in [
        vec![1, 2, 3],                 // wrong length
        vec![0; 10],                   // wrong length
        b"25243248".to_vec(),          // ASCII digits: a huge position
        100u64.to_be_bytes().to_vec(), // ahead of the newest event
    ] {
        let st = subscribe(&mut client, fetch(ReplayPreset::Custom, bad.clone(), 1))
            .await
            .map(|_| ())
            .expect_err("bad id");
        assert_status(
            &st,
            Code::InvalidArgument,
            "subscription.fetch.replayid.corrupted",
        );
        assert!(st.message().contains("Replay ID"), "{}", st.message());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn first_request_errors_are_statuses() {
    let server = start().await;
    let mut client = server.client().await;
    let mut req = fetch(ReplayPreset::Latest, vec![], 1);
    req.topic_name = String::new();
    let st = subscribe(&mut client, req)
        .await
        .map(|_| ())
        .expect_err("blank");
    assert_status(&st, Code::InvalidArgument, "topic.validation.empty");
    let mut req = fetch(ReplayPreset::Latest, vec![], 1);
    req.topic_name = "/event/Missing__e".into();
    let st = subscribe(&mut client, req)
        .await
        .map(|_| ())
        .expect_err("unknown");
    assert_status(&st, Code::NotFound, "topic.not.found");
    let st = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 0))
        .await
        .map(|_| ())
        .expect_err("no credit");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.requested.events.invalid",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn credit_of_three_gives_exactly_three_until_more_is_asked() {
    let server = start().await;
    let ids = publish_orders(&server, 0, 10).await;
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 3))
        .await
        .expect("subscribe");
    let (events, responses) = collect_events(&mut stream, 3).await;
    assert_eq!(events.len(), 3, "never more than the credit");
    assert_eq!(responses.last().expect("response").pending_num_requested, 0);
    let read = || {
        server
            .broker
            .stats()
            .events_read_for_subscribers
            .load(Ordering::Relaxed)
    };
    assert_eq!(read(), 3, "the server read only what the credit allows");
    tx.send(more(2)).await;
    let (events, responses) = collect_events(&mut stream, 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].replay_id.to_vec(), ids[3]);
    assert_eq!(responses.last().expect("response").pending_num_requested, 0);
    assert_eq!(read(), 5);
    // Python-style requests repeat topic and replay fields; they only add credit.
    tx.send(fetch(ReplayPreset::Earliest, vec![], 5)).await;
    let (events, _) = collect_events(&mut stream, 5).await;
    assert_eq!(events[4].replay_id.to_vec(), ids[9]);
    server.shutdown().await;
}

#[tokio::test]
async fn credit_is_clamped_at_the_cap_and_pending_is_reported() {
    let server = start_with(|a| a.keepalive = Duration::from_millis(200)).await;
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 500))
        .await
        .expect("asking for more than the cap is not an error");
    let ka = next(&mut stream).await.expect("ok").expect("keepalive");
    assert!(ka.events.is_empty());
    assert_eq!(ka.pending_num_requested, 100, "clamped to the cap");
    tx.send(more(50)).await;
    publish_orders(&server, 0, 7).await;
    let (_, responses) = collect_events(&mut stream, 7).await;
    assert_eq!(
        responses.last().expect("response").pending_num_requested,
        93
    );
    server.shutdown().await;
}

#[tokio::test]
async fn keepalives_carry_a_resumable_latest_replay_id() {
    let server = start_with(|a| a.keepalive = Duration::from_millis(100)).await;
    let ids = publish_orders(&server, 0, 2).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("subscribe");
    let ka = next(&mut stream).await.expect("ok").expect("keepalive");
    assert!(ka.events.is_empty());
    assert_eq!(
        ka.latest_replay_id.to_vec(),
        ids[1],
        "keepalive reports the position"
    );
    assert_eq!(ka.pending_num_requested, 1);
    // A new subscription from the keepalive's id sees exactly the next event.
    let (_tx2, mut resumed) = subscribe(
        &mut client,
        fetch(ReplayPreset::Custom, ka.latest_replay_id.to_vec(), 5),
    )
    .await
    .expect("keepalive id is a valid CUSTOM start");
    let newer = publish_orders(&server, 2, 1).await;
    let (events, _) = collect_events(&mut resumed, 1).await;
    assert_eq!(events[0].replay_id.to_vec(), newer[0]);
    // The first subscription gets it too.
    let (events, _) = collect_events(&mut stream, 1).await;
    assert_eq!(events[0].replay_id.to_vec(), newer[0]);
    server.shutdown().await;
}

#[tokio::test]
async fn an_empty_topic_reports_an_eight_byte_latest_replay_id() {
    let server = start_with(|a| a.keepalive = Duration::from_millis(100)).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 1))
        .await
        .expect("subscribe");
    let ka = next(&mut stream).await.expect("ok").expect("keepalive");
    assert_eq!(ka.latest_replay_id.to_vec(), vec![0; 8]);
    server.shutdown().await;
}

#[tokio::test]
async fn half_close_ends_the_stream_with_ok() {
    let server = start().await;
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .expect("subscribe");
    drop(tx);
    assert!(next(&mut stream).await.expect("ends with OK").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn a_different_topic_on_a_later_request_is_invalid_argument() {
    let server = start().await;
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .expect("subscribe");
    tx.send(fetch(ReplayPreset::Latest, vec![], 1)).await; // same topic: fine
    let mut other = more(1);
    other.topic_name = "/event/Other__e".into();
    tx.send(other).await;
    let st = next(&mut stream).await.expect_err("mismatch");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.topic.mismatch",
    );
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .expect("subscribe");
    tx.send(more(-1)).await;
    let st = next(&mut stream).await.expect_err("negative credit");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.requested.events.invalid",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn responses_stay_under_four_megabytes() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let mut client = server.client().await;
    for i in 0..4 {
        let events = (0..3)
            .map(|j| pb::ProducerEvent {
                id: format!("big-{i}-{j}"),
                schema_id: schema.clone(),
                payload: big_order_payload(1_000_000).into(),
                headers: vec![],
            })
            .collect();
        let resp = client
            .publish(pb::PublishRequest {
                topic_name: ORDER_TOPIC.into(),
                events,
                auth_refresh: String::new(),
            })
            .await
            .expect("publish")
            .into_inner();
        assert!(resp.results.iter().all(|r| r.error.is_none()), "{resp:?}");
    }
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 12))
        .await
        .expect("subscribe");
    let (events, responses) = collect_events(&mut stream, 12).await;
    assert_eq!(events.len(), 12);
    assert!(
        responses.len() >= 3,
        "12 MB of events need several responses"
    );
    for r in &responses {
        assert!(
            r.encoded_len() < 4 * 1024 * 1024,
            "response of {} bytes",
            r.encoded_len()
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_without_credit_makes_the_server_read_nothing_more() {
    let server = start().await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("subscribe");
    for i in 0..10 {
        publish_orders(&server, i * 50, 50).await;
    }
    let (events, responses) = collect_events(&mut stream, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(responses[0].pending_num_requested, 0);
    let stats = server.broker.stats();
    assert_eq!(stats.events_read_for_subscribers.load(Ordering::Relaxed), 1);
    assert_eq!(stats.events_delivered.load(Ordering::Relaxed), 1);
    assert_eq!(stats.open_subscriptions.load(Ordering::Relaxed), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_subscriptions_with_unavailable() {
    let server = start().await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .expect("subscribe");
    let stop = server.stop.clone();
    let done = tokio::spawn(server.shutdown());
    stop.cancel();
    let st = next(&mut stream).await.expect_err("ends with a status");
    assert_status(&st, Code::Unavailable, "service.unavailable");
    done.await.expect("clean shutdown");
}

#[tokio::test]
async fn a_subscription_that_never_sends_its_first_request_is_ended() {
    let server = start_with(|a| a.first_request_timeout = Duration::from_millis(200)).await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::FetchRequest>(1);
    let st = tokio::time::timeout(
        Duration::from_secs(10),
        client.subscribe(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .expect("the server answers within 10 s")
    .map(|_| ())
    .expect_err("no first request");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.request.invalid",
    );
    assert!(
        st.message().contains("No FetchRequest arrived"),
        "{}",
        st.message()
    );
    drop(tx);
    server.shutdown().await;
}

/// A later FetchRequest over the size limit ends the subscription with
/// RESOURCE_EXHAUSTED and our trailers, not with OK: the client is still
/// there and must learn why its stream ended.
#[tokio::test]
async fn an_oversize_request_mid_stream_ends_it_with_request_too_large() {
    let server = start_with(|a| a.max_request_bytes = 64 * 1024).await;
    let mut client = server.client().await;
    let (requests, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, Vec::new(), 1))
        .await
        .expect("subscribe");
    requests
        .send(pb::FetchRequest {
            topic_name: ORDER_TOPIC.into(),
            num_requested: 1,
            auth_refresh: "x".repeat(100 * 1024),
            ..Default::default()
        })
        .await;
    let st = loop {
        match stream.message().await {
            Ok(Some(_)) => continue, // a keepalive may come first
            Ok(None) => panic!("the stream ended with OK"),
            Err(st) => break st,
        }
    };
    assert_status(&st, Code::ResourceExhausted, "service.request.too.large");
    assert!(st.message().contains("65536 bytes"), "{}", st.message());
}
