//! The Admin service, health transitions, reflection and compression.

use std::time::Duration;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb::{self, ReplayPreset};
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::common::*;

const NEW_TOPIC: &str = "/event/Shipment__e";
const SHIPMENT_SCHEMA: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Carrier__c","type":["null","string"],"default":null}]}"#;
const SHIPMENT_SCHEMA_V2: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Carrier__c","type":["null","string"],"default":null},{"name":"Weight__c","type":["null","double"],"default":null}]}"#;
const SHIPMENT_SCHEMA_BAD: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Carrier__c","type":["null","string"],"default":null},{"name":"Required__c","type":"string"}]}"#;

async fn admin_client(server: &TestServer) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect admin")
}

fn shipment_payload() -> Vec<u8> {
    // CreatedDate 1, CreatedById "u", Carrier__c null
    vec![2, 2, b'u', 0]
}

async fn publish_shipments(server: &TestServer, schema_id: &str, n: usize) -> Vec<Vec<u8>> {
    let resp = server
        .client()
        .await
        .publish(pb::PublishRequest {
            topic_name: NEW_TOPIC.into(),
            events: (0..n)
                .map(|_| pb::ProducerEvent {
                    schema_id: schema_id.into(),
                    payload: shipment_payload().into(),
                    ..Default::default()
                })
                .collect(),
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    resp.results
        .into_iter()
        .map(|r| {
            assert!(r.error.is_none(), "{:?}", r.error);
            r.replay_id.to_vec()
        })
        .collect()
}

#[tokio::test]
async fn topics_are_created_described_updated_and_deleted_while_running() {
    let server = start().await;
    let mut admin = admin_client(&server).await;
    let created = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA.into(),
            retention_ms: 3_600_000,
        })
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.topic_name, NEW_TOPIC);
    assert_eq!(created.retention_ms, 3_600_000);
    assert_eq!(created.event_count, 0);
    assert!(created.first_replay_id.is_empty());
    assert_eq!(created.last_replay_id.to_vec(), vec![0; 8]);

    // Usable through the Pub/Sub API at once.
    let info = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect("get topic")
        .into_inner();
    assert_eq!(info.schema_id, created.current_schema_id);
    let ids = publish_shipments(&server, &info.schema_id, 3).await;

    let d = admin
        .describe_topic(admin::DescribeTopicRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(d.event_count, 3);
    assert_eq!(d.first_replay_id.to_vec(), ids[0]);
    assert_eq!(d.last_replay_id.to_vec(), ids[2]);
    assert_eq!(d.schema_ids, vec![info.schema_id.clone()]);

    let list = admin
        .list_topics(admin::ListTopicsRequest {})
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = list.topics.iter().map(|t| t.topic_name.as_str()).collect();
    assert_eq!(names, vec![ORDER_TOPIC, NEW_TOPIC], "sorted by name");

    let updated = admin
        .update_topic(admin::UpdateTopicRequest {
            topic_name: NEW_TOPIC.into(),
            retention_ms: 60_000,
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.retention_ms, 60_000);

    // A live subscription ends with NOT_FOUND when its topic is deleted.
    let mut client = server.client().await;
    let mut req = fetch(ReplayPreset::Latest, vec![], 5);
    req.topic_name = NEW_TOPIC.into();
    let (_tx, mut stream) = subscribe(&mut client, req).await.expect("subscribe");
    let deleted = admin
        .delete_topic(admin::DeleteTopicRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_events, 3);
    let st = next(&mut stream).await.expect_err("subscription ends");
    assert_status(&st, Code::NotFound, "topic.not.found");
    let st = client
        .get_topic(pb::TopicRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect_err("gone");
    assert_status(&st, Code::NotFound, "topic.not.found");

    // Re-created, it starts empty and survives a restart.
    admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("re-create");
    let ids = publish_shipments(&server, &info.schema_id, 1).await;
    assert_eq!(replay_num(&ids[0]), 1);
    let server = server.restart().await;
    let mut admin = admin_client(&server).await;
    let d = admin
        .describe_topic(admin::DescribeTopicRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect("describe after restart")
        .into_inner();
    assert_eq!(d.event_count, 1);
    assert_eq!(d.retention_ms, 72 * 3600 * 1000, "server default retention");
    server.shutdown().await;
}

#[tokio::test]
async fn admin_errors_are_clear_statuses() {
    let server = start().await;
    let mut admin = admin_client(&server).await;
    let st = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            schema_json: ORDER_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect_err("exists");
    assert_status(&st, Code::AlreadyExists, "topic.already.exists");
    let st = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: "{\"type\":\"nope\"}".into(),
            retention_ms: 0,
        })
        .await
        .expect_err("bad schema");
    assert_status(&st, Code::InvalidArgument, "schema.invalid");
    let st = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: "no-slash".into(),
            schema_json: SHIPMENT_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect_err("bad name");
    assert_status(&st, Code::InvalidArgument, "topic.validation.invalid");
    let st = admin
        .update_topic(admin::UpdateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            retention_ms: 0,
        })
        .await
        .expect_err("zero retention");
    assert_status(&st, Code::InvalidArgument, "topic.retention.invalid");
    let st = admin
        .delete_topic(admin::DeleteTopicRequest {
            topic_name: "/event/Nope__e".into(),
        })
        .await
        .expect_err("unknown");
    assert_status(&st, Code::NotFound, "topic.not.found");
    server.shutdown().await;
}

#[tokio::test]
async fn schema_versions_must_be_backward_compatible() {
    let server = start().await;
    let mut admin = admin_client(&server).await;
    let v1 = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA.into(),
            retention_ms: 0,
        })
        .await
        .expect("create")
        .into_inner()
        .current_schema_id;
    let st = admin
        .register_schema(admin::RegisterSchemaRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA_BAD.into(),
        })
        .await
        .expect_err("a new required field cannot read old events");
    assert_status(&st, Code::FailedPrecondition, "schema.incompatible");
    assert!(st.message().contains("Required__c"), "{}", st.message());
    let reg = admin
        .register_schema(admin::RegisterSchemaRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA_V2.into(),
        })
        .await
        .expect("compatible")
        .into_inner();
    assert!(reg.created);
    let again = admin
        .register_schema(admin::RegisterSchemaRequest {
            topic_name: NEW_TOPIC.into(),
            schema_json: SHIPMENT_SCHEMA_V2.into(),
        })
        .await
        .expect("idempotent")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.schema_id, reg.schema_id);
    let versions = admin
        .list_schemas(admin::ListSchemasRequest {
            topic_name: NEW_TOPIC.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .versions;
    let summary: Vec<_> = versions
        .iter()
        .map(|v| (v.schema_id.clone(), v.version, v.current))
        .collect();
    assert_eq!(
        summary,
        vec![(v1, 1, false), (reg.schema_id.clone(), 2, true)]
    );
    assert_eq!(versions[1].schema_json, SHIPMENT_SCHEMA_V2);
    server.shutdown().await;
}

#[tokio::test]
async fn health_turns_not_serving_before_streams_end() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let server = start_with(|a| a.drain_delay = Duration::from_millis(300)).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    for service in ["", "eventbus.v1.PubSub", "eventbus.admin.v1.Admin"] {
        let st = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(st, ServingStatus::Serving as i32, "{service}");
    }
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Latest, vec![], 5))
        .await
        .expect("subscribe");
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "eventbus.v1.PubSub".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        next(&mut watch).await.expect("ok").expect("status").status,
        ServingStatus::Serving as i32
    );
    let stop = server.stop.clone();
    let done = tokio::spawn(server.shutdown());
    stop.cancel();
    // NOT_SERVING arrives while the subscription is still open (drain delay).
    assert_eq!(
        next(&mut watch).await.expect("ok").expect("status").status,
        ServingStatus::NotServing as i32
    );
    let st = next(&mut stream).await.expect_err("then the stream ends");
    assert_status(&st, Code::Unavailable, "service.unavailable");
    done.await.expect("clean shutdown");
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = start().await;
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = next(&mut resp).await.expect("ok").expect("response");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer: {msg:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "eventbus.admin.v1.Admin",
        "eventbus.v1.PubSub",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn gzip_is_accepted_and_used_when_asked() {
    let server = start().await;
    let schema = server.order_schema_id().await;
    let mut client = server
        .client()
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: (0..20).map(|i| order_event(&schema, i)).collect(),
            auth_refresh: String::new(),
        })
        .await
        .expect("gzip publish");
    assert_eq!(
        resp.metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip"),
        "the response is compressed when the client accepts gzip"
    );
    assert!(resp.get_ref().results.iter().all(|r| r.error.is_none()));
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 20))
        .await
        .expect("gzip subscribe");
    let (events, _) = collect_events(&mut stream, 20).await;
    assert_eq!(
        events[19].event.as_ref().expect("event").payload.to_vec(),
        order_payload(19)
    );
    server.shutdown().await;
}

/// A plain HTTP/1.1 GET over loopback; returns (status line, body).
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    sock.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf))
        .await
        .expect("metrics answer within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_are_scraped_over_http_and_move() {
    let server = start_with(|a| a.metrics_listen = "127.0.0.1:0".into()).await;
    let addr = server.metrics.expect("metrics endpoint on");
    let (status, body) = http_get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("pubsub_log_commit_latency_seconds"), "{body}");
    publish_orders(&server, 0, 5).await;
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 3))
        .await
        .expect("subscribe");
    collect_events(&mut stream, 3).await;
    let _ = client
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Nope__e".into(),
        })
        .await
        .expect_err("unknown topic");
    let (_, body) = http_get(addr, "/metrics").await;
    let topic = "{topic=\"/event/Order_Event__e\"}";
    assert_eq!(
        sample(&body, &format!("pubsub_publish_events_total{topic}")),
        Some(5.0),
        "{body}"
    );
    assert!(sample(&body, &format!("pubsub_publish_bytes_total{topic}")).unwrap_or(0.0) > 0.0);
    assert_eq!(
        sample(
            &body,
            &format!("pubsub_subscribe_delivered_events_total{topic}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&body, &format!("pubsub_subscribe_lag_events{topic}")),
        Some(2.0),
        "lag = 5 - 3"
    );
    assert_eq!(
        sample(&body, &format!("pubsub_subscriptions_open{topic}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "pubsub_subscribe_credit_outstanding"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &body,
            "pubsub_errors_total{code=\"sfdc.platform.eventbus.grpc.topic.not.found\"}"
        ),
        Some(1.0)
    );
    // The group-commit histogram is the RocksDB writer's; JetStream
    // batches on its own side.
    if !on_jetstream() {
        assert!(sample(&body, "pubsub_log_commit_batch_events_count").unwrap_or(0.0) >= 1.0);
    }
    assert!(sample(&body, "pubsub_publish_latency_seconds_count").unwrap_or(0.0) >= 1.0);
    assert!(body.contains("pubsub_storage_size_bytes"));
    assert!(body.contains("pubsub_storage_pending_compaction_bytes"));
    let (status, _) = http_get(addr, "/nope").await;
    assert!(status.contains("404"), "{status}");
    server.shutdown().await;
}
