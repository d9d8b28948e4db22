//! Schema registration caps and the cost of validating against hostile schemas: the
//! schema bomb of issue 17 (finding 1) and the per-tenant schema caps (finding 7).

use std::time::Instant;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb;
use eventbus::server::Server;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::*;

async fn admin_client(server: &TestServer) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect admin")
}

/// `R_i = {a: R_(i-1), b: R_(i-1)}`, `R_0 = {x: leaf}`, each `R_i` the type of a
/// top-level field `d_i`: the probe's schema (5.9 KB at 44 levels with a `null` leaf).
fn doubling(levels: usize, leaf: &str) -> String {
    let mut fields = vec![format!(
        r#"{{"name":"d0","type":{{"type":"record","name":"R0","fields":[{{"name":"x","type":{leaf}}}]}}}}"#
    )];
    for i in 1..=levels {
        fields.push(format!(
            r#"{{"name":"d{i}","type":{{"type":"record","name":"R{i}","fields":[{{"name":"a","type":"R{p}"}},{{"name":"b","type":"R{p}"}}]}}}}"#,
            p = i - 1
        ));
    }
    format!(
        r#"{{"type":"record","name":"Bomb","fields":[{}]}}"#,
        fields.join(",")
    )
}

/// A small record schema numbered `n`, so each `n` has its own schema id.
fn numbered_schema(n: usize) -> String {
    format!(
        r#"{{"type":"record","name":"Numbered{n}__e","fields":[{{"name":"CreatedDate","type":"long"}}]}}"#
    )
}

async fn create(
    admin: &mut AdminClient<Channel>,
    topic: &str,
    schema: &str,
) -> Result<admin::TopicDescription, tonic::Status> {
    admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: topic.into(),
            schema_json: schema.into(),
            retention_ms: 0,
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn the_schema_bomb_is_refused_and_the_server_keeps_answering() {
    let server = start().await;
    let mut admin = admin_client(&server).await;
    let bomb = doubling(44, r#""null""#);
    let started = Instant::now();
    let st = create(&mut admin, "/event/Bomb__e", &bomb)
        .await
        .expect_err("the bomb must be refused");
    assert_status(&st, Code::InvalidArgument, "schema.invalid");
    assert!(st.message().contains("zero bytes"), "{}", st.message());
    assert!(st.message().contains("`d44`"), "{}", st.message());
    eprintln!(
        "{} byte bomb refused in {:?}",
        bomb.len(),
        started.elapsed()
    );
    // Other calls are answered as before.
    let topic = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: ORDER_TOPIC.into(),
        })
        .await
        .expect("GetTopic after the bomb");
    assert_eq!(topic.into_inner().topic_name, ORDER_TOPIC);
}

#[tokio::test]
async fn a_doubling_schema_with_byte_leaves_validates_in_proportion_to_the_payload() {
    // Accepted: each level doubles the leaves, but every leaf takes a byte, so the walk
    // is bounded by the payload, not by the schema's 2^17 paths.
    let server = start().await;
    let mut admin = admin_client(&server).await;
    let schema = doubling(16, r#"["null","long"]"#);
    let created = create(&mut admin, "/event/Doubling__e", &schema)
        .await
        .expect("a doubling schema whose leaves take bytes is fine");
    let schema_id = created.current_schema_id;
    // Every d_i holds 2^i leaves, all null (branch 0, one byte each).
    let valid = vec![0u8; (0..=16).map(|i| 1usize << i).sum()];
    let events = vec![
        pb::ProducerEvent {
            schema_id: schema_id.clone(),
            payload: Vec::new().into(),
            ..Default::default()
        },
        pb::ProducerEvent {
            schema_id: schema_id.clone(),
            payload: valid.clone().into(),
            ..Default::default()
        },
    ];
    let started = Instant::now();
    let resp = server
        .client()
        .await
        .publish(pb::PublishRequest {
            topic_name: "/event/Doubling__e".into(),
            events,
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    eprintln!(
        "empty and {}-byte payloads of a 2^17-path schema answered in {:?}",
        valid.len(),
        started.elapsed()
    );
    let err = resp.results[0].error.as_ref().expect("empty payload fails");
    assert!(err.msg.contains("payload"), "{}", err.msg);
    assert!(
        resp.results[1].error.is_none(),
        "{:?}",
        resp.results[1].error
    );
}

#[tokio::test]
async fn schemas_over_the_size_or_type_cap_are_refused_naming_the_setting() {
    let server = start_with(|args| {
        // No topics folder: its schema is over these tight caps.
        args.topics = None;
        args.max_schema_bytes = 2_000;
        args.max_schema_types = 40;
    })
    .await;
    let mut admin = admin_client(&server).await;
    let long = format!(
        r#"{{"type":"record","name":"Long__e","doc":"{}","fields":[{{"name":"CreatedDate","type":"long"}}]}}"#,
        "x".repeat(2_500)
    );
    let st = create(&mut admin, "/event/Long__e", &long)
        .await
        .expect_err("too long");
    assert_status(&st, Code::InvalidArgument, "schema.invalid");
    assert!(
        st.message().contains("EVENTBUS_MAX_SCHEMA_BYTES"),
        "{}",
        st.message()
    );
    let wide: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"name":"f{i}","type":["null","long"]}}"#))
        .collect();
    let wide = format!(
        r#"{{"type":"record","name":"W","fields":[{}]}}"#,
        wide.join(",")
    );
    let st = create(&mut admin, "/event/Wide__e", &wide)
        .await
        .expect_err("too many types");
    assert_status(&st, Code::InvalidArgument, "schema.invalid");
    assert!(
        st.message().contains("EVENTBUS_MAX_SCHEMA_TYPES"),
        "{}",
        st.message()
    );
}

#[tokio::test]
async fn a_tenant_may_use_at_most_its_cap_of_schemas() {
    let server = start_with(|args| args.max_schemas_per_tenant = 3).await;
    let mut admin = admin_client(&server).await;
    // The topics folder's Order_Event__e is the first schema.
    create(&mut admin, "/event/N1__e", &numbered_schema(1))
        .await
        .expect("second schema");
    create(&mut admin, "/event/N2__e", &numbered_schema(2))
        .await
        .expect("third schema");
    let st = create(&mut admin, "/event/N3__e", &numbered_schema(3))
        .await
        .expect_err("a fourth schema is over the cap");
    assert_status(&st, Code::ResourceExhausted, "schema.limit.exceeded");
    assert!(
        st.message().contains("EVENTBUS_MAX_SCHEMAS_PER_TENANT"),
        "{}",
        st.message()
    );
    // A schema the tenant already uses costs nothing more.
    create(&mut admin, "/event/N1b__e", &numbered_schema(1))
        .await
        .expect("a schema already in use");
    // A new version is a new schema too.
    let st = admin
        .register_schema(admin::RegisterSchemaRequest {
            topic_name: "/event/N1__e".into(),
            schema_json: numbered_schema(1).replace(
                r#""type":"long"}"#,
                r#""type":"long"},{"name":"X","type":["null","long"],"default":null}"#,
            ),
        })
        .await
        .expect_err("a new version over the cap");
    assert_status(&st, Code::ResourceExhausted, "schema.limit.exceeded");
}

#[tokio::test]
async fn a_tenant_may_use_at_most_its_cap_of_schema_bytes() {
    let server = start_with(|args| args.max_schema_bytes_per_tenant = 1_000).await;
    let mut admin = admin_client(&server).await;
    // The topics folder's schema takes part of the budget already.
    let padded = |n: usize| {
        format!(
            r#"{{"type":"record","name":"P{n}__e","doc":"{}","fields":[{{"name":"CreatedDate","type":"long"}}]}}"#,
            "p".repeat(250)
        )
    };
    let mut refused = None;
    for n in 0..10 {
        if let Err(st) = create(&mut admin, &format!("/event/P{n}__e"), &padded(n)).await {
            refused = Some(st);
            break;
        }
    }
    let st = refused.expect("the byte budget runs out");
    assert_status(&st, Code::ResourceExhausted, "schema.limit.exceeded");
    assert!(
        st.message()
            .contains("EVENTBUS_MAX_SCHEMA_BYTES_PER_TENANT"),
        "{}",
        st.message()
    );
}

#[tokio::test]
async fn a_topics_folder_with_the_schema_bomb_does_not_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(dir.path(), ORDER_SCHEMA);
    std::fs::write(topics.join("event/Bomb__e.avsc"), doubling(44, r#""null""#))
        .expect("write bomb");
    let mut args = eventbus::config::ServeArgs::for_tests(dir.path().join("data"));
    args.topics = Some(topics);
    on_test_backend(&mut args);
    let err = match Server::build(args).await {
        Ok(_) => panic!("a topics folder with the bomb must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("Bomb__e.avsc"), "{err}");
    assert!(err.contains("zero bytes"), "{err}");
}
