//! GetTopic, GetSchema, the topics folder and schema versions.

use eventbus::api::pb;
use eventbus::config::ServeArgs;
use eventbus::server::Server;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn get_topic_reports_schema_tenant_permissions_and_rpc_id() {
    let server = start().await;
    let info = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("get topic")
        .into_inner();
    assert_eq!(info.topic_name, ORDER_TOPIC);
    assert_eq!(info.schema_id.len(), 22);
    assert!(!info.tenant_guid.is_empty());
    assert!(info.can_publish && info.can_subscribe);
    assert_eq!(info.rpc_id.len(), 36, "rpc id is a UUID: {}", info.rpc_id);
    server.shutdown().await;
}

#[tokio::test]
async fn get_topic_errors_carry_status_code_and_trailers() {
    let server = start().await;
    let mut client = server.client().await;
    let st = client
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Nope__e".into(),
        })
        .await
        .expect_err("unknown topic");
    assert_status(&st, Code::NotFound, "topic.not.found");
    let st = client
        .get_topic(pb::TopicRequest {
            topic_name: " ".into(),
        })
        .await
        .expect_err("blank topic");
    assert_status(&st, Code::InvalidArgument, "topic.validation.empty");
    server.shutdown().await;
}

#[tokio::test]
async fn get_schema_returns_the_json_of_the_id() {
    let server = start().await;
    let id = server.order_schema_id().await;
    let mut client = server.client().await;
    let info = client
        .get_schema(pb::SchemaRequest {
            schema_id: id.clone(),
        })
        .await
        .expect("get schema")
        .into_inner();
    assert_eq!(info.schema_id, id);
    assert_eq!(info.schema_json, ORDER_SCHEMA);
    assert!(!info.rpc_id.is_empty());
    let st = client
        .get_schema(pb::SchemaRequest {
            schema_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        })
        .await
        .expect_err("unknown schema");
    assert_status(&st, Code::NotFound, "schema.meta.permission");
    let st = client
        .get_schema(pb::SchemaRequest {
            schema_id: String::new(),
        })
        .await
        .expect_err("blank schema id");
    assert_status(&st, Code::InvalidArgument, "schema.validation.failed");
    server.shutdown().await;
}

#[tokio::test]
async fn a_changed_schema_file_becomes_the_current_version_and_old_ids_resolve() {
    let server = start().await;
    let v1 = server.order_schema_id().await;
    let before = publish_orders(&server, 0, 2).await;
    let topics = server.topics.clone();
    std::fs::write(topics.join("event/Order_Event__e.avsc"), ORDER_SCHEMA_V2).expect("write v2");
    let server = server.restart().await;
    let v2 = server.order_schema_id().await;
    assert_ne!(v1, v2, "a changed schema gets a new id");
    let mut client = server.client().await;
    let old = client
        .get_schema(pb::SchemaRequest {
            schema_id: v1.clone(),
        })
        .await
        .expect("old schema id still resolves")
        .into_inner();
    assert_eq!(old.schema_json, ORDER_SCHEMA);
    // Both versions publish; each event keeps the schema id it was written with.
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![
                order_event(&v1, 10),
                pb::ProducerEvent {
                    schema_id: v2.clone(),
                    payload: order_payload_v2(11).into(),
                    ..Default::default()
                },
            ],
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert!(resp.results.iter().all(|r| r.error.is_none()), "{resp:?}");
    assert_eq!(resp.schema_id, v2);
    let (_tx, mut stream) = subscribe(&mut client, fetch(pb::ReplayPreset::Earliest, vec![], 10))
        .await
        .expect("subscribe");
    let (events, _) = collect_events(&mut stream, 4).await;
    let ids: Vec<_> = events
        .iter()
        .map(|e| e.event.as_ref().expect("event").schema_id.clone())
        .collect();
    assert_eq!(ids, vec![v1.clone(), v1.clone(), v1, v2]);
    assert_eq!(events[0].replay_id.to_vec(), before[0]);
    server.shutdown().await;
}

#[tokio::test]
async fn an_invalid_schema_file_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    std::fs::create_dir_all(topics.join("data")).expect("mkdir");
    std::fs::write(
        topics.join("data/AccountChangeEvent.avsc"),
        r#"{"type":"record","name":"X","fields":[{"name":"a","type":"nosuchtype"}]}"#,
    )
    .expect("write");
    let mut args = ServeArgs::for_tests(dir.path().join("data"));
    args.topics = Some(topics);
    let err = match Server::build(args).await {
        Ok(_) => panic!("startup must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("AccountChangeEvent.avsc"), "{err}");
}

#[tokio::test]
async fn topics_persist_without_the_topics_folder() {
    let server = start().await;
    let id = server.order_schema_id().await;
    let (mut args, dir) = server.shutdown().await;
    args.topics = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::build(args).await.expect("builds");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, stop.clone()));
    wait_until_serving(addr).await;
    let mut client =
        eventbus::api::pb::pub_sub_client::PubSubClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    let info = client
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("topic persisted")
        .into_inner();
    assert_eq!(info.schema_id, id);
    stop.cancel();
    task.await.expect("join").expect("clean stop");
    drop(dir);
}
