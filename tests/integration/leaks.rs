//! What error messages give away (issue 17, finding 9): lookalike topic
//! names, and request fields echoed back without bound.

use eventbus::api::admin::pb::{self as admin_pb, admin_client::AdminClient};
use eventbus::api::pb::{self, ReplayPreset};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn topic_names_with_invisible_bidi_or_non_ascii_characters_are_refused() {
    let server = start().await;
    let mut admin = AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect");
    let mut client = server.client().await;
    for (what, name, shown) in [
        (
            "zero-width space",
            "/event/Order_Event__e\u{200B}",
            "U+200B",
        ),
        (
            "right-to-left override",
            "/event/\u{202E}e__tnevE_redrO",
            "U+202E",
        ),
        ("Cyrillic O", "/event/\u{041E}rder_Event__e", "U+041E"),
        ("hyphen", "/event/Order-Event__e", "`-`"),
    ] {
        let st = admin
            .create_topic(admin_pb::CreateTopicRequest {
                topic_name: name.into(),
                schema_json: ORDER_SCHEMA.into(),
                retention_ms: 0,
            })
            .await
            .expect_err(what);
        assert_status(&st, Code::InvalidArgument, "topic.validation.invalid");
        assert!(
            st.message().contains(shown) && st.message().is_ascii(),
            "{what}: the message names the character, escaped: {}",
            st.message()
        );
        // The lookalike of an existing topic is not a topic either.
        let st = client
            .get_topic(pb::TopicRequest {
                topic_name: name.into(),
            })
            .await
            .expect_err(what);
        assert_status(&st, Code::InvalidArgument, "topic.validation.invalid");
    }
    let topics = admin
        .list_topics(admin_pb::ListTopicsRequest {})
        .await
        .expect("list")
        .into_inner()
        .topics;
    assert_eq!(topics.len(), 1, "only the provisioned topic: {topics:?}");
    server.shutdown().await;
}

/// Most bytes a status message may have: 1 KiB of text plus ` rpcId: <uuid>`.
const MAX_MESSAGE_BYTES: usize = 1024 + 44;

/// Asserts that a status stays small: its message, and all its trailers
/// (`grpc-message` is the message percent-encoded, at most 3 bytes per byte).
fn assert_small(what: &str, st: &tonic::Status) {
    let trailers: usize = st
        .metadata()
        .iter()
        .map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => k.as_str().len() + v.len(),
            tonic::metadata::KeyAndValueRef::Binary(k, v) => {
                k.as_str().len() + v.as_encoded_bytes().len()
            }
        })
        .sum();
    eprintln!(
        "{what}: {:?}, message {} bytes, other trailers {trailers} bytes",
        st.code(),
        st.message().len()
    );
    assert!(
        st.message().len() <= MAX_MESSAGE_BYTES && trailers <= 512,
        "{what}: message of {} bytes, trailers of {trailers} bytes: {}…",
        st.message().len(),
        st.message().chars().take(200).collect::<String>()
    );
}

#[tokio::test]
async fn request_fields_are_echoed_cut_short_so_statuses_stay_small() {
    let server = start().await;
    let schema_id = server.order_schema_id().await;
    let mut client = server.client().await;
    let big = "x".repeat(100 * 1024);

    let st = client
        .get_schema(pb::SchemaRequest {
            schema_id: big.clone(),
        })
        .await
        .expect_err("100 KB schema id");
    assert_status(&st, Code::NotFound, "schema.meta.permission");
    assert_small("GetSchema, 100 KB schema id", &st);
    assert!(st.message().contains("xxx…"), "{}", st.message());

    let st = client
        .get_topic(pb::TopicRequest {
            topic_name: format!("/event/{big}"),
        })
        .await
        .expect_err("100 KB topic name");
    assert_status(&st, Code::InvalidArgument, "topic.validation.invalid");
    assert_small("GetTopic, 100 KB topic name", &st);

    // A per-event error quotes the schema id, cut short too.
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&big, 1), order_event(&schema_id, 2)],
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    let msg = &resp.results[0].error.as_ref().expect("the event fails").msg;
    eprintln!(
        "Publish, 100 KB schema id: per-event error {} bytes",
        msg.len()
    );
    assert!(msg.len() <= 1024, "{} bytes", msg.len());
    assert!(resp.results[1].error.is_none(), "{resp:?}");

    // A later PublishStream request naming a 100 KB topic.
    let (tx, rx) = mpsc::channel(2);
    let request = |topic: &str| pb::PublishRequest {
        topic_name: topic.into(),
        events: vec![order_event(&schema_id, 3)],
        auth_refresh: String::new(),
    };
    tx.send(request(ORDER_TOPIC)).await.expect("send");
    tx.send(request(&format!("/event/{big}")))
        .await
        .expect("send");
    let mut responses = client
        .publish_stream(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    next(&mut responses)
        .await
        .expect("the first request is answered")
        .expect("open");
    let st = next(&mut responses)
        .await
        .expect_err("the second request names another topic");
    assert_status(&st, Code::InvalidArgument, "publish.topic.mismatch");
    assert_small("PublishStream, 100 KB topic name", &st);

    // A later FetchRequest naming a 100 KB topic.
    let (requests, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 1))
        .await
        .expect("subscribe");
    requests
        .send(pb::FetchRequest {
            topic_name: format!("/event/{big}"),
            num_requested: 1,
            ..Default::default()
        })
        .await;
    let st = loop {
        match next(&mut stream).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(st) => break st,
        }
    };
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.topic.mismatch",
    );
    assert_small("Subscribe, 100 KB topic name", &st);

    // A 100 KB replay id.
    let st = subscribe(
        &mut client,
        fetch(ReplayPreset::Custom, vec![7; 100 * 1024], 1),
    )
    .await
    .err()
    .expect("100 KB replay id");
    assert_status(
        &st,
        Code::InvalidArgument,
        "subscription.fetch.replayid.corrupted",
    );
    assert_small("Subscribe, 100 KB replay id", &st);

    // A 100 KB developer name.
    let (tx, rx) = mpsc::channel(1);
    tx.send(pb::ManagedFetchRequest {
        developer_name: big.clone(),
        num_requested: 1,
        ..Default::default()
    })
    .await
    .expect("send");
    let st = client
        .managed_subscribe(ReceiverStream::new(rx))
        .await
        .expect_err("100 KB developer name");
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    assert_small("ManagedSubscribe, 100 KB developer name", &st);
    server.shutdown().await;
}
