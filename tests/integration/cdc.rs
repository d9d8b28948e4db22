//! Change Data Capture (issue 21): records changed through the REST API
//! and the ChangeDataCapture service over real HTTP and gRPC on 127.0.0.1,
//! their change events read back with a Subscribe stream and checked
//! field by field: header, bitmaps (decoded here independently of the
//! server's encoder), values, replay order, `/data/ChangeEvents` with two
//! schemas, a restart in between, and Salesforce's errors for bad input
//! with nothing published.

use std::net::SocketAddr;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::change_data_capture_client::ChangeDataCaptureClient;
use eventbus::api::pb;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::*;
use crate::http_client::{http, http_raw};

const V: &str = "/services/data/v62.0";

fn cdc_server() -> impl FnOnce(&mut eventbus::config::ServeArgs) {
    |a| a.tooling_listen = "127.0.0.1:0".into()
}

async fn cdc_client(server: &TestServer) -> ChangeDataCaptureClient<Channel> {
    ChangeDataCaptureClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect")
}

pub async fn enable(server: &TestServer, object: &str) -> admin::ChangeEventMember {
    cdc_client(server)
        .await
        .enable_change_events(admin::ChangeEventsRequest {
            name: object.into(),
        })
        .await
        .expect("enable")
        .into_inner()
}

pub async fn send(addr: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    http(addr, method, path, None, Some(body.to_string().as_bytes())).await
}

/// The latest offset of a topic (0 when it does not exist).
pub fn latest(server: &TestServer, topic: &str) -> u64 {
    server
        .broker
        .topic(topic)
        .map(|t| server.broker.bounds(t.id).expect("bounds").latest.0)
        .unwrap_or(0)
}

/// The first `n` events of `topic`, each with its schema id, decoded to
/// JSON with the schema GetSchema answers.
pub async fn read(server: &TestServer, topic: &str, n: usize) -> Vec<(String, Value)> {
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(
        &mut client,
        pb::FetchRequest {
            topic_name: topic.into(),
            replay_preset: pb::ReplayPreset::Earliest as i32,
            num_requested: n as i32,
            ..Default::default()
        },
    )
    .await
    .expect("subscribe");
    let (events, _) = collect_events(&mut stream, n).await;
    drop(tx);
    assert_eq!(events.len(), n, "events on {topic}");
    let mut out = Vec::new();
    for e in events {
        let ev = e.event.expect("event");
        let schema_json = client
            .get_schema(pb::SchemaRequest {
                schema_id: ev.schema_id.clone(),
            })
            .await
            .expect("get schema")
            .into_inner()
            .schema_json;
        let schema = eventbus::schema::ParsedSchema::parse(&schema_json).expect("schema parses");
        let v = schema.decode_to_json(&ev.payload).expect("decodes");
        out.push((schema_json, v));
    }
    out
}

/// The field names a bitmap list names, decoded here the way the Python
/// and Node clients decode them: element 0 a hex number whose bit i is
/// top-level field i of the schema; `{pos}-0x…` a nested bitmap of the
/// record at position `pos`. Also checks the hex digits are upper case and
/// the top-level element comes first.
pub fn names(schema_json: &str, bitmaps: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(schema_json).expect("schema json");
    let fields = schema["fields"].as_array().expect("fields");
    let list: Vec<&str> = bitmaps
        .as_array()
        .expect("bitmap array")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    let mut out = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let (parent, hex) = match b.split_once("-0x") {
            Some((p, h)) => (Some(p.parse::<usize>().expect("parent position")), h),
            None => {
                assert_eq!(i, 0, "the top-level bitmap comes first: {list:?}");
                (None, b.strip_prefix("0x").expect("0x prefix"))
            }
        };
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
            "upper-case hex digits: {b}"
        );
        let bits: Vec<usize> = hex
            .chars()
            .rev()
            .enumerate()
            .flat_map(|(n, c)| {
                let d = c.to_digit(16).expect("hex digit") as usize;
                (0..4)
                    .filter(move |k| d & (1 << k) != 0)
                    .map(move |k| n * 4 + k)
            })
            .collect();
        for bit in bits {
            match parent {
                None => out.push(fields[bit]["name"].as_str().expect("name").to_owned()),
                Some(p) => {
                    let nested = &fields[p]["type"];
                    let record = nested
                        .as_array()
                        .and_then(|u| u.iter().find(|t| t.is_object()))
                        .unwrap_or(nested);
                    let record = if record.is_object() {
                        record.clone()
                    } else {
                        // A named type defined earlier in the schema.
                        find_record(&schema, record.as_str().expect("type name"))
                    };
                    out.push(format!(
                        "{}.{}",
                        fields[p]["name"].as_str().expect("name"),
                        record["fields"][bit]["name"].as_str().expect("nested name")
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// The record schema named `name` (short or full) anywhere in `schema`.
fn find_record(schema: &Value, name: &str) -> Value {
    fn walk(v: &Value, name: &str) -> Option<Value> {
        match v {
            Value::Object(m) => {
                let full = format!(
                    "{}.{}",
                    m.get("namespace").and_then(Value::as_str).unwrap_or(""),
                    m.get("name").and_then(Value::as_str).unwrap_or("")
                );
                if m.get("type") == Some(&json!("record"))
                    && (m.get("name") == Some(&json!(name)) || full == name)
                {
                    return Some(v.clone());
                }
                m.values().find_map(|x| walk(x, name))
            }
            Value::Array(a) => a.iter().find_map(|x| walk(x, name)),
            _ => None,
        }
    }
    walk(schema, name).unwrap_or_else(|| panic!("no record {name} in the schema"))
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn record_changes_over_rest_become_change_events_salesforce_encodes() {
    let server = start_with(cdc_server()).await;
    let http_addr = server.tooling.expect("http listener");
    let member = enable(&server, "Account").await;
    assert_eq!(member.topic_name, "/data/AccountChangeEvent");
    assert_eq!(member.selected_entity, "AccountChangeEvent");

    // CREATE, with the client id the call options header names.
    let body =
        json!({"Name": "Acme", "BillingCity": "Paris", "Phone": "+33 1", "NumberOfEmployees": 12});
    let (status, created) = http_raw(
        http_addr,
        &format!("POST {V}/sobjects/Account/"),
        &format!(
            "Sforce-Call-Options: client=IntegrationTest/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.to_string().len()
        ),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!((id.len(), &id[..3]), (18, "001"), "{created}");

    // UPDATE: a simple field and two address parts (City and PostalCode
    // make the nested bitmap `0A`: letters in the hex).
    let path = format!("{V}/sobjects/Account/{id}");
    let (status, got) = send(
        http_addr,
        "PATCH",
        &path,
        &json!({"Name": "Acme Corp", "BillingCity": "Lyon", "BillingPostalCode": "69001"}),
    )
    .await;
    assert_eq!(status, 204, "{got}");
    // UPDATE that clears a field.
    let (status, got) = send(http_addr, "PATCH", &path, &json!({"Phone": null})).await;
    assert_eq!(status, 204, "{got}");
    // GET shows the record as stored.
    let (status, record) = http(http_addr, "GET", &path, None, None).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["attributes"]["type"], "Account");
    assert_eq!(record["Id"], json!(id));
    assert_eq!(record["Name"], "Acme Corp");
    assert_eq!(record["BillingCity"], "Lyon");
    assert_eq!(record["Phone"], Value::Null);
    assert_eq!(record["NumberOfEmployees"], 12);
    // DELETE, then GET finds it in the recycle bin; UNDELETE through the
    // service.
    let (status, got) = http(http_addr, "DELETE", &path, None, None).await;
    assert_eq!(status, 204, "{got}");
    let (status, got) = http(http_addr, "GET", &path, None, None).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (404, &json!("ENTITY_IS_DELETED")),
        "{got}"
    );
    let (status, got) = http(http_addr, "DELETE", &path, None, None).await;
    assert_eq!(
        (status, &got[0]["errorCode"]),
        (404, &json!("ENTITY_IS_DELETED")),
        "{got}"
    );
    let undone = cdc_client(&server)
        .await
        .apply_records(admin::ApplyRecordsRequest {
            changes: vec![admin::RecordChange {
                operation: admin::RecordOperation::Undelete as i32,
                object: "Account".into(),
                id: id.clone(),
                fields_json: String::new(),
            }],
            all_or_none: true,
            client: String::new(),
        })
        .await
        .expect("undelete")
        .into_inner();
    assert!(undone.results[0].success, "{:?}", undone.results);

    let events = read(&server, "/data/AccountChangeEvent", 5).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["ChangeEventHeader"]["changeType"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["CREATE", "UPDATE", "UPDATE", "DELETE", "UNDELETE"]);
    let mut commits = Vec::new();
    for (schema, e) in &events {
        let h = &e["ChangeEventHeader"];
        assert_eq!(h["entityName"], "Account");
        assert_eq!(h["recordIds"], json!([id]));
        assert_eq!(h["sequenceNumber"], 1);
        let user = h["commitUser"].as_str().expect("user");
        assert_eq!((user.len(), &user[..3]), (18, "005"), "{h}");
        assert_eq!(h["transactionKey"].as_str().map(str::len), Some(36), "{h}");
        assert!(h["commitTimestamp"].as_i64().expect("timestamp") > 1_700_000_000_000);
        commits.push(h["commitNumber"].as_i64().expect("commit number"));
        assert_eq!(h["diffFields"], json!([]));
        assert!(schema.contains("\"ChangeEventHeader\""));
    }
    assert!(commits.windows(2).all(|w| w[0] < w[1]), "{commits:?}");
    let (schema, create) = &events[0];
    let h = &create["ChangeEventHeader"];
    assert_eq!(
        h["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=IntegrationTest/1.0"
    );
    assert_eq!(h["changedFields"], json!([]));
    assert_eq!(h["nulledFields"], json!([]));
    assert_eq!(create["Name"], "Acme");
    assert_eq!(create["Phone"], "+33 1");
    assert_eq!(create["NumberOfEmployees"], 12);
    assert_eq!(create["BillingAddress"]["City"], "Paris");
    assert_eq!(create["CreatedById"], h["commitUser"]);
    assert!(create["CreatedDate"].as_i64().is_some(), "{create}");
    assert_eq!(create["Website"], Value::Null);

    let (_, update) = &events[1];
    let h = &update["ChangeEventHeader"];
    assert_eq!(h["changeOrigin"], "com/salesforce/api/rest/62.0");
    assert_eq!(
        names(schema, &h["changedFields"]),
        sorted(&[
            "Name",
            "LastModifiedDate",
            "BillingAddress.City",
            "BillingAddress.PostalCode"
        ])
    );
    let changed = h["changedFields"].as_array().expect("array");
    assert!(
        changed
            .iter()
            .any(|b| b.as_str().is_some_and(|b| b.ends_with("-0x0A"))),
        "City and PostalCode are bits 1 and 3 of the address: {changed:?}"
    );
    assert_eq!(h["nulledFields"], json!([]));
    assert_eq!(update["Name"], "Acme Corp");
    assert_eq!(update["BillingAddress"]["City"], "Lyon");
    assert_eq!(update["BillingAddress"]["PostalCode"], "69001");
    assert_eq!(update["BillingAddress"]["Street"], Value::Null);
    // Unchanged fields are null even though the record has them.
    assert_eq!(update["Phone"], Value::Null);
    assert_eq!(update["NumberOfEmployees"], Value::Null);
    assert_eq!(update["CreatedDate"], Value::Null);
    assert!(update["LastModifiedDate"].as_i64().is_some());

    let (_, nulled) = &events[2];
    let h = &nulled["ChangeEventHeader"];
    assert_eq!(names(schema, &h["nulledFields"]), sorted(&["Phone"]));
    assert_eq!(
        names(schema, &h["changedFields"]),
        sorted(&["Phone", "LastModifiedDate"])
    );
    assert_eq!(nulled["Phone"], Value::Null);

    let (_, deleted) = &events[3];
    assert_eq!(deleted["Name"], Value::Null);
    assert_eq!(deleted["ChangeEventHeader"]["changedFields"], json!([]));
    let (_, undeleted) = &events[4];
    assert_eq!(undeleted["Name"], "Acme Corp");
    assert_eq!(
        undeleted["ChangeEventHeader"]["changeOrigin"],
        "com/salesforce/api/rest/64.0;client=eventbus-cli"
    );

    // The same five on the multi-entity channel, in the same order.
    let multi = read(&server, "/data/ChangeEvents", 5).await;
    let multi_kinds: Vec<&str> = multi
        .iter()
        .map(|(_, e)| e["ChangeEventHeader"]["changeType"].as_str().expect("type"))
        .collect();
    assert_eq!(multi_kinds, kinds);
}

#[tokio::test]
async fn the_multi_entity_channel_carries_each_objects_schema_across_a_restart() {
    let server = start_with(cdc_server()).await;
    enable(&server, "AccountChangeEvent").await;
    enable(&server, "contact").await;
    let addr = server.tooling.expect("http");
    let (status, a) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "A"}),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let (status, c) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Contact"),
        &json!({"LastName": "Curie", "FirstName": "Marie", "MailingCity": "Paris"}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(&c["id"].as_str().expect("id")[..3], "003");

    let server = server.restart_on_same_port().await;
    let addr = server.tooling.expect("http");
    let (status, a2) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "B"}),
    )
    .await;
    assert_eq!(status, 201, "{a2}");
    assert_ne!(
        a2["id"], a["id"],
        "ids are not handed out twice across a restart"
    );

    let events = read(&server, "/data/ChangeEvents", 3).await;
    let entities: Vec<&str> = events
        .iter()
        .map(|(_, e)| {
            e["ChangeEventHeader"]["entityName"]
                .as_str()
                .expect("entity")
        })
        .collect();
    assert_eq!(entities, ["Account", "Contact", "Account"]);
    assert_ne!(events[0].0, events[1].0, "two objects, two schemas");
    assert_eq!(events[0].0, events[2].0);
    let contact = &events[1].1;
    assert_eq!(contact["Name"]["LastName"], "Curie");
    assert_eq!(contact["Name"]["FirstName"], "Marie");
    assert_eq!(contact["MailingAddress"]["City"], "Paris");
    let commits: Vec<i64> = events
        .iter()
        .map(|(_, e)| {
            e["ChangeEventHeader"]["commitNumber"]
                .as_i64()
                .expect("commit")
        })
        .collect();
    assert!(commits.windows(2).all(|w| w[0] < w[1]), "{commits:?}");
    // GetTopic answers for the channel, GetSchema for both schemas.
    let topic = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: "/data/ChangeEvents".into(),
        })
        .await
        .expect("get topic")
        .into_inner();
    assert!(topic.can_subscribe);
    assert!(!topic.schema_id.is_empty());
    let listed = cdc_client(&server)
        .await
        .list_change_events(admin::ListChangeEventsRequest {})
        .await
        .expect("list")
        .into_inner();
    let enabled: Vec<&str> = listed.members.iter().map(|m| m.object.as_str()).collect();
    assert_eq!(enabled, ["Account", "Contact"]);
    assert!(listed.objects.iter().any(|o| o == "Opportunity"));
}

#[tokio::test]
async fn bad_record_input_gets_salesforce_errors_and_publishes_nothing() {
    let server = start_with(cdc_server()).await;
    enable(&server, "Account").await;
    let addr = server.tooling.expect("http");
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "sobjects/Nope__c",
            json!({"Name": "x"}),
            404,
            "NOT_FOUND",
        ),
        (
            "POST",
            "sobjects/Lead",
            json!({"LastName": "x", "Company": "y"}),
            400,
            "INVALID_TYPE",
        ),
        (
            "POST",
            "sobjects/Account",
            json!({"Name": "x", "Nope__c": 1}),
            400,
            "INVALID_FIELD",
        ),
        (
            "POST",
            "sobjects/Account",
            json!({"Name": "x", "NumberOfEmployees": "many"}),
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            "POST",
            "sobjects/Account",
            json!({"Phone": "1"}),
            400,
            "REQUIRED_FIELD_MISSING",
        ),
        (
            "POST",
            "sobjects/Account",
            json!({"Name": "x", "CreatedDate": "2024-01-01T00:00:00.000+0000"}),
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            "POST",
            "sobjects/Account",
            json!(["not", "an", "object"]),
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            "PATCH",
            "sobjects/Account/001000000000999AAA",
            json!({"Name": "x"}),
            404,
            "NOT_FOUND",
        ),
        (
            "DELETE",
            "sobjects/Account/nonsense",
            json!({}),
            404,
            "NOT_FOUND",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got_status, got) = send(addr, method, &format!("{V}/{path}"), &body).await;
        assert_eq!(
            (got_status, got[0]["errorCode"].as_str()),
            (status, Some(code)),
            "{method} {path}: {got}"
        );
        assert!(
            got[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{got}"
        );
    }
    let (_, got) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "x", "Nope__c": 1}),
    )
    .await;
    assert_eq!(got[0]["fields"], json!(["Nope__c"]), "{got}");
    assert_eq!(latest(&server, "/data/AccountChangeEvent"), 0);
    assert_eq!(latest(&server, "/data/ChangeEvents"), 0);

    // All or none: one bad record, nothing stored, the good one rolled back.
    let (status, results) = send(
        addr,
        "POST",
        &format!("{V}/composite/sobjects"),
        &json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "Name": "good"},
            {"attributes": {"type": "Account"}, "Nope__c": 1},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["success"], false, "{results}");
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(latest(&server, "/data/AccountChangeEvent"), 0);

    // Not all or none: the good ones commit, in one transaction; equal
    // changes share one event with both ids.
    let (status, results) = send(
        addr,
        "POST",
        &format!("{V}/composite/sobjects"),
        &json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "Name": "twin"},
            {"attributes": {"type": "Account"}, "Nope__c": 1},
            {"attributes": {"type": "Account"}, "Name": "twin"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(
        results
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["success"].as_bool())
            .collect::<Vec<_>>(),
        [Some(true), Some(false), Some(true)]
    );
    let events = read(&server, "/data/AccountChangeEvent", 1).await;
    let h = &events[0].1["ChangeEventHeader"];
    assert_eq!(
        h["recordIds"],
        json!([results[0]["id"], results[2]["id"]]),
        "{h}"
    );
    assert_eq!(latest(&server, "/data/AccountChangeEvent"), 1);
}

#[tokio::test]
async fn commit_numbers_start_where_the_setting_says_even_past_two_to_the_53() {
    let first: u64 = (1 << 53) + 7;
    let server = start_with(|a| {
        a.tooling_listen = "127.0.0.1:0".into();
        a.cdc_first_commit_number = first;
    })
    .await;
    enable(&server, "Opportunity").await;
    let mut c = cdc_client(&server).await;
    let made = c
        .apply_records(admin::ApplyRecordsRequest {
            changes: vec![admin::RecordChange {
                operation: admin::RecordOperation::Create as i32,
                object: "Opportunity".into(),
                id: String::new(),
                fields_json: json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": 1250.5}).to_string(),
            }],
            all_or_none: true,
            client: "tests".into(),
        })
        .await
        .expect("create")
        .into_inner();
    assert!(made.results[0].success, "{:?}", made.results);
    assert_eq!(made.commit_number as u64, first);
    let events = read(&server, "/data/OpportunityChangeEvent", 1).await;
    let e = &events[0].1;
    assert_eq!(e["ChangeEventHeader"]["commitNumber"].as_u64(), Some(first));
    assert_eq!(e["Amount"], 1250.5);
    assert_eq!(e["Name"], "Deal");
}

#[tokio::test]
async fn gap_and_overflow_events_are_published_on_request() {
    let server = start_with(cdc_server()).await;
    enable(&server, "Case").await;
    let mut c = cdc_client(&server).await;
    let gap = c
        .emit_synthetic_event(admin::EmitSyntheticEventRequest {
            object: "Case".into(),
            change_type: "GAP_UPDATE".into(),
            record_ids: vec!["500000000000001AAA".into()],
        })
        .await
        .expect("gap")
        .into_inner();
    assert_eq!(gap.replay_ids.len(), 1);
    c.emit_synthetic_event(admin::EmitSyntheticEventRequest {
        object: "Case".into(),
        change_type: "GAP_OVERFLOW".into(),
        record_ids: Vec::new(),
    })
    .await
    .expect("overflow");
    for (change, ids, problem) in [
        (
            "UPDATE",
            vec!["500000000000001AAA".to_owned()],
            "not a gap type",
        ),
        (
            "GAP_OVERFLOW",
            vec!["500000000000001AAA".to_owned()],
            "ids on overflow",
        ),
        ("GAP_CREATE", Vec::new(), "no ids on a gap"),
        (
            "GAP_CREATE",
            vec!["001000000000001AAA".to_owned()],
            "another object's id",
        ),
    ] {
        let st = c
            .emit_synthetic_event(admin::EmitSyntheticEventRequest {
                object: "Case".into(),
                change_type: change.into(),
                record_ids: ids,
            })
            .await
            .expect_err(problem);
        assert_status(&st, tonic::Code::InvalidArgument, "cdc.request.invalid");
    }
    let st = c
        .emit_synthetic_event(admin::EmitSyntheticEventRequest {
            object: "Nope__c".into(),
            change_type: "GAP_OVERFLOW".into(),
            record_ids: Vec::new(),
        })
        .await
        .expect_err("unknown object");
    assert_status(&st, tonic::Code::NotFound, "cdc.object.not.found");
    let events = read(&server, "/data/CaseChangeEvent", 2).await;
    let (_, g) = &events[0];
    assert_eq!(g["ChangeEventHeader"]["changeType"], "GAP_UPDATE");
    assert_eq!(
        g["ChangeEventHeader"]["recordIds"],
        json!(["500000000000001AAA"])
    );
    assert_eq!(g["Subject"], Value::Null);
    let (_, o) = &events[1];
    assert_eq!(o["ChangeEventHeader"]["changeType"], "GAP_OVERFLOW");
    assert_eq!(o["ChangeEventHeader"]["recordIds"], json!([]));
    assert_eq!(latest(&server, "/data/CaseChangeEvent"), 2);
}

#[tokio::test]
async fn a_dx_project_enables_objects_and_adds_custom_fields_and_objects() {
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dx-project");
    let server = start_with(|a| {
        a.tooling_listen = "127.0.0.1:0".into();
        a.metadata = Some(project);
    })
    .await;
    let listed = cdc_client(&server)
        .await
        .list_change_events(admin::ListChangeEventsRequest {})
        .await
        .expect("list")
        .into_inner();
    let enabled: Vec<(&str, &str)> = listed
        .members
        .iter()
        .map(|m| (m.object.as_str(), m.topic_name.as_str()))
        .collect();
    assert_eq!(
        enabled,
        [
            ("Account", "/data/AccountChangeEvent"),
            ("Vehicle__c", "/data/Vehicle__ChangeEvent")
        ]
    );
    let addr = server.tooling.expect("http");
    // The custom field of a standard object is a field of its records and
    // of its change event.
    let (status, a) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "Fleet Co", "Tier__c": "Gold"}),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let (status, v) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Vehicle__c"),
        &json!({"Name": "Van 7", "Plate__c": "AB-123-CD", "Capacity_Kg__c": 1200.5}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let vid = v["id"].as_str().expect("id");
    assert!(vid.starts_with('a'), "a custom object's key prefix: {vid}");
    let (status, missing) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Vehicle__c"),
        &json!({"Name": "Van 8"}),
    )
    .await;
    assert_eq!(
        (status, missing[0]["errorCode"].as_str()),
        (400, Some("REQUIRED_FIELD_MISSING")),
        "{missing}"
    );
    let events = read(&server, "/data/ChangeEvents", 2).await;
    assert_eq!(events[0].1["Tier__c"], "Gold");
    assert_eq!(events[1].1["ChangeEventHeader"]["entityName"], "Vehicle__c");
    assert_eq!(events[1].1["Plate__c"], "AB-123-CD");
    assert_eq!(events[1].1["Capacity_Kg__c"], 1200.5);
    assert_eq!(events[1].1["In_Service__c"], true, "{}", events[1].1);
    let record: Value = serde_json::from_str(&events[1].0).expect("schema");
    assert_eq!(record["name"], "Vehicle__ChangeEvent");
}

#[tokio::test]
async fn an_update_of_long_text_is_sent_as_a_diff_listed_in_diff_fields() {
    let server = start_with(cdc_server()).await;
    enable(&server, "Account").await;
    let addr = server.tooling.expect("http");
    let lines: Vec<String> = (0..20)
        .map(|i| format!("Line {i} of a long account description, long enough to count."))
        .collect();
    let old = lines.join("\n");
    let mut changed = lines.clone();
    changed[7] = "Line 7 was rewritten by the update.".to_owned();
    let new = changed.join("\n");
    assert!(old.len() >= 1000 && new.len() >= 1000);
    let (status, made) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "Long", "Description": old}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().expect("id");
    let (status, got) = send(
        addr,
        "PATCH",
        &format!("{V}/sobjects/Account/{id}"),
        &json!({"Description": new}),
    )
    .await;
    assert_eq!(status, 204, "{got}");
    let events = read(&server, "/data/AccountChangeEvent", 2).await;
    let (schema, update) = &events[1];
    let h = &update["ChangeEventHeader"];
    assert_eq!(names(schema, &h["diffFields"]), sorted(&["Description"]));
    assert!(names(schema, &h["changedFields"]).contains(&"Description".to_owned()));
    let diff = update["Description"].as_str().expect("diff text");
    assert!(diff.starts_with("--- \n+++ "), "{diff}");
    assert!(diff.contains("@@ -8,1 +8,1 @@"), "{diff}");
    assert!(
        diff.contains("+Line 7 was rewritten by the update."),
        "{diff}"
    );
    assert_eq!(
        eventbus::objects::textdiff::apply(&old, diff).expect("applies"),
        new
    );
    // The record itself holds the whole new value.
    let (_, record) = http(
        addr,
        "GET",
        &format!("{V}/sobjects/Account/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(record["Description"], json!(new));
}
