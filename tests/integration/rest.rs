//! The REST API under /services/data/ (issue 20): platform events
//! published with `POST sobjects/X__e` and `composite/sobjects` over real
//! HTTP on 127.0.0.1, read back over gRPC; Salesforce's error bodies, and
//! nothing stored when a call fails.

use std::net::SocketAddr;

use eventbus::api::pb;
use serde_json::{Value, json};

use crate::common::*;
use crate::http_client::{http, http_raw};

const EVENT_PATH: &str = "/services/data/v62.0/sobjects/Order_Event__e/";

/// `parts` as the chunks of a chunked body.
fn chunked_body(parts: &[&str]) -> String {
    let mut out: String = parts
        .iter()
        .map(|p| format!("{:x}\r\n{p}\r\n", p.len()))
        .collect();
    out.push_str("0\r\n\r\n");
    out
}

/// Asserts that GET `path` answers Salesforce's `404 NOT_FOUND`.
async fn assert_not_found(addr: SocketAddr, path: &str) {
    let (status, got) = http(addr, "GET", path, None, None).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (404, &json!("NOT_FOUND")),
        "{path} {got}"
    );
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    http(addr, "POST", path, None, Some(body.to_string().as_bytes())).await
}

/// Events stored in the order topic so far.
fn stored(server: &TestServer) -> u64 {
    let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
    server.broker.bounds(topic.id).expect("bounds").latest.0
}

/// The first `n` events of the order topic, decoded to JSON.
async fn read_back(server: &TestServer, n: usize) -> Vec<Value> {
    let mut client = server.client().await;
    let (_tx, mut stream) = subscribe(
        &mut client,
        fetch(pb::ReplayPreset::Earliest, Vec::new(), n as i32),
    )
    .await
    .expect("subscribe");
    let (events, _) = collect_events(&mut stream, n).await;
    events
        .iter()
        .map(|e| {
            let ev = e.event.as_ref().expect("event");
            let schema = server.broker.schema(&ev.schema_id).expect("schema");
            schema.decode_to_json(&ev.payload).expect("decodes")
        })
        .collect()
}

/// Static auth with these tokens: (token, org, principal, grants as TOML
/// list items), and the HTTP listener on.
fn with_tokens(
    tokens: &[(&str, &str, &str, &str)],
) -> impl FnOnce(&mut eventbus::config::ServeArgs) {
    let file: String = tokens
        .iter()
        .map(|(token, org, principal, grants)| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{org}\"\nprincipal = \"{principal}\"\ngrants = [{grants}]\n",
                eventbus::auth::hash_token(token)
            )
        })
        .collect();
    move |a| {
        let path = a.data_dir.parent().expect("root").join("tokens.toml");
        std::fs::write(&path, file).expect("tokens");
        a.auth = eventbus::auth::AuthMode::Static;
        a.auth_tokens_file = Some(path);
        a.tooling_listen = "127.0.0.1:0".into();
    }
}

fn rest_server() -> impl FnOnce(&mut eventbus::config::ServeArgs) {
    |a| a.tooling_listen = "127.0.0.1:0".into()
}

#[tokio::test]
async fn a_platform_event_posted_over_rest_is_read_back_over_grpc() {
    let server = start_with(rest_server()).await;
    let addr = server.tooling.expect("http listener on");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let (status, body) = post(
        addr,
        EVENT_PATH,
        &json!({"OrderNumber__c": "A-1", "amount__c": 12.5}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let id = body["id"].as_str().expect("id");
    assert_eq!((id.len(), &id[..3]), (18, "e00"), "{body}");
    assert_eq!(
        body["errors"][0]["statusCode"], "OPERATION_ENQUEUED",
        "{body}"
    );
    let uuid = body["errors"][0]["message"].as_str().expect("event uuid");
    assert_eq!(uuid.len(), 36, "{body}");
    // Before 46.0 the result has no OPERATION_ENQUEUED entry; no trailing
    // slash works too.
    let (status, old) = post(
        addr,
        "/services/data/v45.0/sobjects/Order_Event__e",
        &json!({"OrderNumber__c": "A-2", "Amount__c": "7"}),
    )
    .await;
    assert_eq!((status, &old["errors"]), (201, &json!([])), "{old}");

    // A chunked body with no Content-Length, as jsforce sends.
    let (status, chunked) = http_raw(
        addr,
        &format!("POST {EVENT_PATH}"),
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        chunked_body(&[r#"{"OrderNumber__c""#, r#": "A-3"}"#]).as_bytes(),
    )
    .await;
    assert_eq!(
        (status, &chunked["success"]),
        (201, &json!(true)),
        "{chunked}"
    );

    let events = read_back(&server, 3).await;
    assert_eq!(events[2]["OrderNumber__c"], "A-3");
    assert_eq!(events[0]["OrderNumber__c"], "A-1");
    assert_eq!(events[0]["Amount__c"], 12.5);
    assert_eq!(events[1]["Amount__c"], 7.0);
    let created = events[0]["CreatedDate"].as_i64().expect("CreatedDate");
    assert!(
        created >= before,
        "CreatedDate {created} is the publish time"
    );
    let by = events[0]["CreatedById"].as_str().expect("CreatedById");
    assert_eq!((by.len(), &by[..3]), (18, "005"), "{by}");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_publishes_get_salesforce_errors_and_store_nothing() {
    let server = start_with(rest_server()).await;
    let addr = server.tooling.expect("http listener on");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            EVENT_PATH,
            br#"{"Nope__c": 1}"#.to_vec(),
            400,
            "INVALID_FIELD",
        ),
        (
            EVENT_PATH,
            br#"{"OrderNumber__c": "#.to_vec(),
            400,
            "JSON_PARSER_ERROR",
        ),
        (EVENT_PATH, br#"[1, 2]"#.to_vec(), 400, "JSON_PARSER_ERROR"),
        (
            EVENT_PATH,
            br#"{"Amount__c": "lots"}"#.to_vec(),
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            EVENT_PATH,
            br#"{"CreatedDate": "2024-05-01T00:00:00Z"}"#.to_vec(),
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            "/services/data/v62.0/sobjects/Missing__e/",
            b"{}".to_vec(),
            404,
            "NOT_FOUND",
        ),
        (
            "/services/data/v62.0/sobjects/Nope/",
            b"{}".to_vec(),
            404,
            "NOT_FOUND",
        ),
        (
            "/services/data/v99.0/sobjects/Order_Event__e/",
            b"{}".to_vec(),
            404,
            "NOT_FOUND",
        ),
    ];
    for (path, body, want_status, want_code) in cases {
        let (status, got) = http(addr, "POST", path, None, Some(&body)).await;
        assert_eq!(status, want_status, "{path} {got}");
        assert_eq!(got[0]["errorCode"], want_code, "{path} {got}");
        assert!(
            got[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{got}"
        );
    }
    let (_, unknown) = post(addr, EVENT_PATH, &json!({"Nope__c": 1})).await;
    assert_eq!(
        unknown,
        json!([{"message": "No such column 'Nope__c' on sobject of type Order_Event__e", "errorCode": "INVALID_FIELD", "fields": ["Nope__c"]}])
    );
    // A huge body: refused with 413, not read into memory.
    let huge = format!(r#"{{"OrderNumber__c": "{}"}}"#, "x".repeat(9 * 1024 * 1024));
    let (status, got) = http(addr, "POST", EVENT_PATH, None, Some(huge.as_bytes())).await;
    assert_eq!(status, 413, "{got}");
    assert_eq!(got[0]["errorCode"], "REQUEST_ENTITY_TOO_LARGE");
    assert_eq!(stored(&server), 0, "nothing stored");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_calls_need_a_valid_bearer_token_when_auth_is_on() {
    let server = start_with(with_tokens(&[
        (
            "good-token",
            "00D000000000000EAA",
            "00558000001N0Ke",
            r#""publish:*", "subscribe:*""#,
        ),
        (
            "read-token",
            "00D000000000000EAA",
            "reader",
            r#""subscribe:*""#,
        ),
    ]))
    .await;
    let addr = server.tooling.expect("http listener on");
    let body = json!({"OrderNumber__c": "A-1"}).to_string();
    for bearer in [None, Some("bad-token")] {
        for (method, path) in [
            ("POST", EVENT_PATH),
            ("POST", "/services/data/v62.0/composite/sobjects"),
            ("GET", "/services/data/v62.0/sobjects"),
            ("GET", "/services/data/v62.0/"),
        ] {
            let (status, got) = http(addr, method, path, bearer, Some(body.as_bytes())).await;
            assert_eq!(status, 401, "{path} {bearer:?}");
            assert_eq!(
                got,
                json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            );
        }
    }
    // Subscribe-only: the event is visible but not createable.
    let (status, got) = http(
        addr,
        "POST",
        EVENT_PATH,
        Some("read-token"),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 403, "{got}");
    assert_eq!(got[0]["errorCode"], "INSUFFICIENT_ACCESS_OR_READONLY");
    assert_eq!(stored(&server), 0, "nothing stored");
    let (status, got) = http(
        addr,
        "POST",
        EVENT_PATH,
        Some("good-token"),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!((status, &got["success"]), (201, &json!(true)), "{got}");
    // CreatedById is the logged-in user.
    let events = read_back_as(&server, "good-token").await;
    assert_eq!(events["CreatedById"], "00558000001N0KeAAK");
    server.shutdown().await;
}

/// The first event of the order topic, read with a static token.
async fn read_back_as(server: &TestServer, token: &str) -> Value {
    let mut client = server.client().await;
    let mut req = tonic::Request::new(tokio_stream::iter(vec![fetch(
        pb::ReplayPreset::Earliest,
        Vec::new(),
        1,
    )]));
    let meta = req.metadata_mut();
    meta.insert("accesstoken", token.parse().expect("ascii"));
    meta.insert("instanceurl", "https://localhost".parse().expect("ascii"));
    meta.insert("tenantid", "00D000000000000EAA".parse().expect("ascii"));
    let mut stream = client.subscribe(req).await.expect("subscribe").into_inner();
    let (events, _) = collect_events(&mut stream, 1).await;
    let ev = events[0].event.as_ref().expect("event");
    let schema = server.broker.schema(&ev.schema_id).expect("schema");
    schema.decode_to_json(&ev.payload).expect("decodes")
}

#[tokio::test]
async fn composite_publishes_up_to_200_records_with_a_result_each() {
    let server = start_with(rest_server()).await;
    let addr = server.tooling.expect("http listener on");
    let path = "/services/data/v62.0/composite/sobjects/";
    let rec = |n: &str| json!({"attributes": {"type": "Order_Event__e"}, "OrderNumber__c": n});
    // allOrNone: one bad record rolls back all of them.
    let (status, got) = post(
        addr,
        path,
        &json!({"allOrNone": true, "records": [rec("1"), {"attributes": {"type": "Order_Event__e"}, "Bad__c": 1}, rec("3")]}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let codes: Vec<_> = got
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["success"].clone(), r["errors"][0]["statusCode"].clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (json!(false), json!("ALL_OR_NONE_OPERATION_ROLLED_BACK")),
            (json!(false), json!("INVALID_FIELD")),
            (json!(false), json!("ALL_OR_NONE_OPERATION_ROLLED_BACK")),
        ]
    );
    assert_eq!(stored(&server), 0, "nothing stored");
    // Without allOrNone the good records are published, in order.
    let (status, got) = post(
        addr,
        path,
        &json!({"allOrNone": false, "records": [rec("1"), {"attributes": {"type": "Nope__e"}}, rec("3"), {"OrderNumber__c": "4"}]}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got[0]["success"], true);
    assert_eq!(got[1]["errors"][0]["statusCode"], "INVALID_TYPE");
    assert_eq!(got[1]["id"], Value::Null);
    assert_eq!(got[2]["success"], true);
    assert_eq!(got[3]["errors"][0]["statusCode"], "INVALID_TYPE");
    // 200 records at once.
    let many: Vec<Value> = (0..200).map(|i| rec(&format!("m{i}"))).collect();
    let (status, got) = post(addr, path, &json!({"records": many})).await;
    assert_eq!(status, 200);
    assert!(
        got.as_array()
            .is_some_and(|r| r.len() == 200 && r.iter().all(|r| r["success"] == true))
    );
    let events = read_back(&server, 3).await;
    let numbers: Vec<_> = events.iter().map(|e| e["OrderNumber__c"].clone()).collect();
    assert_eq!(numbers, vec![json!("1"), json!("3"), json!("m0")]);
    // 201 records: refused whole.
    let too_many: Vec<Value> = (0..201).map(|i| rec(&format!("x{i}"))).collect();
    let (status, got) = post(addr, path, &json!({"records": too_many})).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (400, &json!("EXCEEDED_ID_LIMIT")),
        "{got}"
    );
    let (status, got) = post(addr, path, &json!({"allOrNone": true})).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (400, &json!("JSON_PARSER_ERROR")),
        "{got}"
    );
    assert_eq!(stored(&server), 202, "only the good records stored");
    server.shutdown().await;
}

#[tokio::test]
async fn versions_resources_and_describe_show_the_orgs_events() {
    let server = start_with(rest_server()).await;
    let addr = server.tooling.expect("http listener on");
    for path in ["/services/data", "/services/data/"] {
        let (status, got) = http(addr, "GET", path, None, None).await;
        assert_eq!(status, 200, "{got}");
        let list = got.as_array().expect("versions");
        assert!(
            list.contains(
                &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
            ),
            "{got}"
        );
        assert!(
            list.windows(2)
                .all(|w| w[0]["version"].as_str().map(|v| v.parse::<f64>().ok())
                    < w[1]["version"].as_str().map(|v| v.parse::<f64>().ok()))
        );
    }
    let (status, got) = http(addr, "GET", "/services/data/v59.0/", None, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["sobjects"], "/services/data/v59.0/sobjects");
    assert_eq!(got["limits"], "/services/data/v59.0/limits");
    for path in [
        "/services/data/v62.0/query/?q=x",
        "/services/data/v62.0/sobjects/Order_Event__e/nope/deeper",
    ] {
        let (status, got) = http(addr, "GET", path, None, None).await;
        assert_eq!(
            (status, &got[0]["errorCode"]),
            (404, &json!("NOT_FOUND")),
            "{path} {got}"
        );
    }
    let (status, got) = http(addr, "GET", "/services/data/v3.0", None, None).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (404, &json!("NOT_FOUND")),
        "{got}"
    );

    let (status, got) = http(addr, "GET", "/services/data/v62.0/sobjects", None, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["maxBatchSize"], 200);
    let sobjects = got["sobjects"].as_array().expect("sobjects");
    let order = sobjects
        .iter()
        .find(|o| o["name"] == "Order_Event__e")
        .expect("the order event is listed");
    assert_eq!(order["createable"], true);
    assert_eq!(order["custom"], true);
    assert_eq!(
        order["urls"]["describe"],
        "/services/data/v62.0/sobjects/Order_Event__e/describe"
    );

    let (status, got) = http(
        addr,
        "GET",
        "/services/data/v62.0/sobjects/order_event__e/describe/",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Order_Event__e");
    let fields: Vec<(String, String)> = got["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or("").to_owned(),
                f["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("ReplayId", "string"),
        ("CreatedDate", "datetime"),
        ("CreatedById", "reference"),
        ("EventUuid", "string"),
        ("OrderNumber__c", "string"),
        ("Amount__c", "double"),
    ]
    .iter()
    .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(fields, want);
    assert_eq!(got["fields"][2]["referenceTo"], json!(["User"]));
    assert_not_found(addr, "/services/data/v62.0/sobjects/Nope__e/describe").await;
    let (status, got) = http(
        addr,
        "GET",
        "/services/data/v62.0/sobjects/Order_Event__e",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["objectDescribe"]["name"], "Order_Event__e");
    let (status, got) = http(
        addr,
        "GET",
        "/services/data/v62.0/sobjects/Order_Event__e/eventSchema",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        serde_json::from_str::<Value>(ORDER_SCHEMA).expect("schema")
    );
    let id = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .as_str()
        .to_owned();
    let (status, by_id) = http(
        addr,
        "GET",
        &format!("/services/data/v62.0/event/eventSchema/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!((status, &by_id), (200, &got));
    assert_not_found(addr, "/services/data/v62.0/event/eventSchema/nope").await;
    server.shutdown().await;
}

#[tokio::test]
async fn limits_count_the_events_really_published_and_delivered() {
    let server = start_with(rest_server()).await;
    let addr = server.tooling.expect("http listener on");
    let path = "/services/data/v62.0/limits/";
    let (status, before) = http(addr, "GET", path, None, None).await;
    assert_eq!(status, 200, "{before}");
    let remaining = |body: &Value, name: &str| body[name]["Remaining"].as_u64().expect(name);
    assert_eq!(before["HourlyPublishedPlatformEvents"]["Max"], 100_000);
    assert_eq!(remaining(&before, "HourlyPublishedPlatformEvents"), 100_000);
    assert_eq!(remaining(&before, "DailyDeliveredPlatformEvents"), 50_000);
    // Two events over REST, one over gRPC, then all three delivered.
    for n in ["1", "2"] {
        let (status, got) = post(addr, EVENT_PATH, &json!({ "OrderNumber__c": n })).await;
        assert_eq!(status, 201, "{got}");
    }
    let schema_id = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .as_str()
        .to_owned();
    let published = server
        .client()
        .await
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: vec![order_event(&schema_id, 3)],
            auth_refresh: String::new(),
        })
        .await
        .expect("grpc publish");
    assert!(published.get_ref().results[0].error.is_none());
    assert_eq!(read_back(&server, 3).await.len(), 3);
    let (status, after) = http(addr, "GET", path, None, None).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        remaining(&after, "HourlyPublishedPlatformEvents"),
        100_000 - 3
    );
    // Delivery is counted once the subscriber was handed the events.
    let delivered = eventually(
        "3 deliveries counted",
        std::time::Duration::from_secs(10),
        || async {
            let (_, body) = http(addr, "GET", path, None, None).await;
            (remaining(&body, "DailyDeliveredPlatformEvents") == 50_000 - 3).then_some(body)
        },
    )
    .await;
    // Every authenticated REST call counts: the limits calls and the posts.
    assert!(
        remaining(&delivered, "DailyApiRequests") <= remaining(&before, "DailyApiRequests") - 4,
        "{before} {delivered}"
    );
    assert_eq!(
        remaining(&after, "HourlyPublishedStandardVolumePlatformEvents"),
        1_000
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rest_publishes_share_the_tenants_publish_rate_with_grpc() {
    let server = start_with(|a| {
        a.tooling_listen = "127.0.0.1:0".into();
        a.publish_events_per_tenant = 2.0;
    })
    .await;
    let addr = server.tooling.expect("http listener on");
    let rec = json!({"attributes": {"type": "Order_Event__e"}, "OrderNumber__c": "n"});
    // The bucket holds 2 events; 200 at once take it ~99 s into debt.
    let records: Vec<Value> = (0..200).map(|_| rec.clone()).collect();
    let (status, got) = post(
        addr,
        "/services/data/v62.0/composite/sobjects",
        &json!({ "records": records }),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert!(
        got.as_array()
            .is_some_and(|r| r.iter().all(|r| r["success"] == true))
    );
    let (status, got) = post(addr, EVENT_PATH, &json!({"OrderNumber__c": "late"})).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (400, &json!("LIMIT_EXCEEDED")),
        "{got}"
    );
    assert!(
        got[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 events/s")),
        "{got}"
    );
    let (status, got) = post(
        addr,
        "/services/data/v62.0/composite/sobjects",
        &json!({ "records": [rec] }),
    )
    .await;
    assert_eq!(
        (status, &got[0]["errors"][0]["statusCode"]),
        (200, &json!("LIMIT_EXCEEDED")),
        "{got}"
    );
    assert_eq!(stored(&server), 200, "the refused events are not stored");
    server.shutdown().await;
}

#[tokio::test]
async fn another_orgs_events_are_its_own() {
    let server = start_with(with_tokens(&[(
        "other-org",
        "00D5g000000AbCdEAA",
        "other",
        r#""publish:*", "subscribe:*""#,
    )]))
    .await;
    let addr = server.tooling.expect("http listener on");
    let token = Some("other-org");
    // The topics folder gives every org of the tokens file its own copy of
    // the folder's topics: the other org publishes to its copy only.
    let (status, got) = http(addr, "GET", "/services/data/v62.0/sobjects", token, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["sobjects"][0]["name"], "Order_Event__e", "{got}");
    let body = json!({"OrderNumber__c": "x"}).to_string();
    let (status, got) = http(addr, "POST", EVENT_PATH, token, Some(body.as_bytes())).await;
    assert_eq!((status, &got["success"]), (201, &json!(true)), "{got}");
    assert_eq!(stored(&server), 0, "nothing in the default org's topic");
    let theirs = server
        .broker
        .topic("/~00D5g000000AbCd/event/Order_Event__e")
        .expect("the other org's topic");
    assert_eq!(server.broker.bounds(theirs.id).expect("bounds").latest.0, 1);
    // The other org's REST calls count towards its limits only.
    let (_, mine) = http(addr, "GET", "/services/data/v62.0/limits", token, None).await;
    assert_eq!(
        mine["HourlyPublishedPlatformEvents"]["Remaining"],
        100_000 - 1
    );
    assert_eq!(
        server
            .broker
            .usage(
                &eventbus::types::TenantId::parse(eventbus::broker::DEFAULT_TENANT_GUID)
                    .expect("org")
            )
            .published_last_hour,
        0
    );
    server.shutdown().await;
}

const SHIPMENT_SCHEMA: &str = r#"{
  "type": "record", "name": "Shipment__e", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
    {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
    {"name": "Carrier__c", "type": "string", "doc": "Data:Text"},
    {"name": "Due__c", "type": ["null", "long"], "default": null, "doc": "Data:DateTime"},
    {"name": "Urgent__c", "type": "boolean", "default": false, "doc": "Data:Boolean"}
  ]
}"#;

#[tokio::test]
async fn datetimes_checkboxes_and_required_fields_in_salesforce_formats() {
    let server = start_with(|a| {
        let topics = a.topics.clone().expect("topics folder");
        std::fs::write(topics.join("event/Shipment__e.avsc"), SHIPMENT_SCHEMA).expect("schema");
        a.tooling_listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = server.tooling.expect("http listener on");
    let path = "/services/data/v62.0/sobjects/Shipment__e/";
    let (status, got) = post(
        addr,
        path,
        &json!({"Due__c": "2024-05-01T17:30:00.000+0000"}),
    )
    .await;
    assert_eq!(status, 400, "{got}");
    assert_eq!(
        got,
        json!([{"message": "Required fields are missing: [Carrier__c]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Carrier__c"]}])
    );
    let (status, got) = post(
        addr,
        path,
        &json!({"Carrier__c": "UPS", "Due__c": "2024-05-01T19:30:00+02:00", "Urgent__c": "true"}),
    )
    .await;
    assert_eq!(status, 201, "{got}");
    let topic = server.broker.topic("/event/Shipment__e").expect("topic");
    assert_eq!(
        server.broker.bounds(topic.id).expect("bounds").latest.0,
        1,
        "one stored"
    );
    let (status, got) = http(
        addr,
        "GET",
        "/services/data/v62.0/sobjects/Shipment__e/describe",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let kinds: Vec<_> = got["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .skip(4)
        .map(|f| (f["name"].clone(), f["type"].clone(), f["nillable"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("Carrier__c"), json!("string"), json!(false)),
            (json!("Due__c"), json!("datetime"), json!(true)),
            (json!("Urgent__c"), json!("boolean"), json!(false)),
        ]
    );
    // Read back over gRPC: the datetime is epoch milliseconds.
    let mut client = server.client().await;
    let mut first = fetch(pb::ReplayPreset::Earliest, Vec::new(), 1);
    first.topic_name = "/event/Shipment__e".into();
    let (_tx, mut stream) = subscribe(&mut client, first).await.expect("subscribe");
    let (events, _) = collect_events(&mut stream, 1).await;
    let ev = events[0].event.as_ref().expect("event");
    let got = server
        .broker
        .schema(&ev.schema_id)
        .expect("schema")
        .decode_to_json(&ev.payload)
        .expect("decodes");
    assert_eq!(got["Due__c"], 1_714_584_600_000_i64);
    assert_eq!(got["Urgent__c"], true);
    assert_eq!(got["Carrier__c"], "UPS");
    server.shutdown().await;
}
