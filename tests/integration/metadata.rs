//! `--metadata DIR`: platform events of a Salesforce DX project become
//! topics with the schema Salesforce derives, beside the topics folder, and
//! stay in step with the files across restarts.

use std::path::{Path, PathBuf};

use eventbus::api::pb;
use eventbus::config::ServeArgs;
use eventbus::server::Server;

use crate::common::*;

const SHIPMENT_TOPIC: &str = "/event/Shipment_Status__e";

/// The example project of the repository.
fn example_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dx-project")
}

const OBJECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <deploymentStatus>Deployed</deploymentStatus>
    <eventType>HighVolume</eventType>
    <label>Alert</label>
    <pluralLabel>Alerts</pluralLabel>
    <publishBehavior>PublishImmediately</publishBehavior>
</CustomObject>
"#;

fn field(name: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CustomField xmlns=\"http://soap.sforce.com/2006/04/metadata\">\n    <fullName>{name}</fullName>\n    <label>{name}</label>\n{body}\n</CustomField>\n"
    )
}

/// A DX project in `root/dx` with the event Alert__e and a Text field
/// Message__c; returns the project folder.
fn write_project(root: &Path) -> PathBuf {
    let dx = root.join("dx");
    let ev = dx.join("force-app/main/default/objects/Alert__e");
    std::fs::create_dir_all(ev.join("fields")).expect("mkdir");
    std::fs::write(
        dx.join("sfdx-project.json"),
        r#"{"packageDirectories":[{"path":"force-app","default":true}],"sourceApiVersion":"62.0"}"#,
    )
    .expect("write project");
    std::fs::write(ev.join("Alert__e.object-meta.xml"), OBJECT).expect("write object");
    write_field(
        &dx,
        "Message__c",
        "    <type>Text</type>\n    <length>80</length>",
    );
    dx
}

fn write_field(dx: &Path, name: &str, body: &str) {
    let path = dx.join(format!(
        "force-app/main/default/objects/Alert__e/fields/{name}.field-meta.xml"
    ));
    std::fs::write(path, field(name, body)).expect("write field");
}

async fn topic(server: &TestServer, name: &str) -> pb::TopicInfo {
    server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: name.into(),
        })
        .await
        .expect("get topic")
        .into_inner()
}

async fn schema_json(server: &TestServer, id: &str) -> String {
    server
        .client()
        .await
        .get_schema(pb::SchemaRequest {
            schema_id: id.into(),
        })
        .await
        .expect("get schema")
        .into_inner()
        .schema_json
}

/// What `Server::build` says when it refuses to start.
async fn startup_error(args: ServeArgs) -> String {
    match Server::build(args).await {
        Ok(_) => panic!("the server should refuse to start"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_example_project_provisions_its_event_beside_the_avsc_topics() {
    let server = start_with(|a| a.metadata = Some(example_project())).await;
    // The topics folder's topic is still there.
    assert_eq!(topic(&server, ORDER_TOPIC).await.topic_name, ORDER_TOPIC);
    let info = topic(&server, SHIPMENT_TOPIC).await;
    assert!(info.can_publish && info.can_subscribe);
    let json = schema_json(&server, &info.schema_id).await;
    assert_eq!(
        json,
        concat!(
            r#"{"name":"Shipment_Status__e","namespace":"com.sforce.eventbus","doc":"62.0","type":"record","fields":["#,
            r#"{"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},"#,
            r#"{"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},"#,
            r#"{"name":"Delivered__c","type":"boolean","doc":"Data:Boolean","default":false},"#,
            r#"{"name":"Notes__c","type":["null","string"],"doc":"Data:Text","default":null},"#,
            r#"{"name":"Shipped_At__c","type":["null","long"],"doc":"Data:DateTime","default":null},"#,
            r#"{"name":"Tracking_Number__c","type":["null","string"],"doc":"Data:Text","default":null},"#,
            r#"{"name":"Weight_Kg__c","type":["null","double"],"doc":"Data:Double","default":null}]}"#
        )
    );

    // Publish one event in that schema and read it back.
    let mut payload = Vec::new();
    put_long(&mut payload, 1_700_000_000_000);
    put_str(&mut payload, "005000000000001AAA");
    payload.push(1); // Delivered__c = true
    put_long(&mut payload, 0); // Notes__c = null
    put_long(&mut payload, 1); // Shipped_At__c = long
    put_long(&mut payload, 1_700_000_000_123);
    put_long(&mut payload, 1); // Tracking_Number__c = string
    put_str(&mut payload, "1Z999AA10123456784");
    put_long(&mut payload, 1); // Weight_Kg__c = double
    payload.extend_from_slice(&12.5f64.to_le_bytes());
    let mut client = server.client().await;
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: SHIPMENT_TOPIC.into(),
            events: vec![pb::ProducerEvent {
                id: "shipment-1".into(),
                schema_id: info.schema_id.clone(),
                payload: payload.clone().into(),
                headers: vec![],
            }],
            auth_refresh: String::new(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert!(
        resp.results[0].error.is_none(),
        "{:?}",
        resp.results[0].error
    );
    let mut first = fetch(pb::ReplayPreset::Earliest, vec![], 1);
    first.topic_name = SHIPMENT_TOPIC.into();
    let (_requests, mut stream) = subscribe(&mut client, first).await.expect("subscribe");
    let (events, _) = collect_events(&mut stream, 1).await;
    let event = events[0].event.as_ref().expect("event");
    assert_eq!(event.schema_id, info.schema_id);
    assert_eq!(event.payload.as_ref(), payload.as_slice());
    server.shutdown().await;
}

#[tokio::test]
async fn a_changed_field_list_registers_a_new_version_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dx = write_project(dir.path());
    let server = start_with(|a| a.metadata = Some(dx.clone())).await;
    let first = topic(&server, "/event/Alert__e").await.schema_id;
    // An unchanged project leaves the schema as it is.
    let server = server.restart().await;
    assert_eq!(topic(&server, "/event/Alert__e").await.schema_id, first);

    // A new field, and a checkbox: a new, backward compatible version.
    write_field(
        &dx,
        "Severity__c",
        "    <type>Number</type>\n    <precision>3</precision>\n    <scale>0</scale>",
    );
    write_field(
        &dx,
        "Urgent__c",
        "    <type>Checkbox</type>\n    <defaultValue>false</defaultValue>",
    );
    let server = server.restart().await;
    let second = topic(&server, "/event/Alert__e").await.schema_id;
    assert_ne!(second, first);
    let json = schema_json(&server, &second).await;
    assert!(
        json.contains(
            r#"{"name":"Severity__c","type":["null","double"],"doc":"Data:Double","default":null}"#
        ) && json.contains(
            r#"{"name":"Urgent__c","type":"boolean","doc":"Data:Boolean","default":false}"#
        ),
        "{json}"
    );
    // The first version stays resolvable for events written with it.
    assert!(schema_json(&server, &first).await.contains("Message__c"));

    // A removed field is backward compatible too.
    std::fs::remove_file(
        dx.join("force-app/main/default/objects/Alert__e/fields/Severity__c.field-meta.xml"),
    )
    .expect("remove");
    let server = server.restart().await;
    let third = topic(&server, "/event/Alert__e").await.schema_id;
    assert!(third != second && third != first);
    assert!(!schema_json(&server, &third).await.contains("Severity__c"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_incompatible_change_stops_startup_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dx = write_project(dir.path());
    let server = start_with(|a| a.metadata = Some(dx.clone())).await;
    let first = topic(&server, "/event/Alert__e").await.schema_id;
    let (args, tmp) = server.shutdown().await;

    // Message__c changes from Text to Number: old events cannot be read.
    write_field(
        &dx,
        "Message__c",
        "    <type>Number</type>\n    <precision>5</precision>",
    );
    let err = startup_error(args.clone()).await;
    assert!(
        err.contains("Alert__e.object-meta.xml")
            && err.contains("Message__c")
            && err.contains("not backward compatible"),
        "{err}"
    );

    // Nothing was stored: back to the old file, the old schema is current.
    write_field(
        &dx,
        "Message__c",
        "    <type>Text</type>\n    <length>80</length>",
    );
    let server = TestServer::start_again(args, tmp).await;
    assert_eq!(topic(&server, "/event/Alert__e").await.schema_id, first);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_projects_stop_startup_naming_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dx = write_project(dir.path());
    let base = || {
        let mut args = ServeArgs::for_tests(dir.path().join("data"));
        args.topics = Some(write_topics(dir.path(), ORDER_SCHEMA));
        on_test_backend(&mut args);
        args.metadata = Some(dx.clone());
        args
    };

    // A field type platform events do not have: file and line.
    write_field(&dx, "Stage__c", "    <type>Picklist</type>");
    let err = startup_error(base()).await;
    assert!(
        err.contains("fields/Stage__c.field-meta.xml:5: field type \"Picklist\" is not allowed on a platform event"),
        "{err}"
    );
    // Malformed XML.
    write_field(&dx, "Stage__c", "    <type>Text</type><length>5");
    let err = startup_error(base()).await;
    assert!(
        err.contains("Stage__c.field-meta.xml:") && err.contains("not well-formed XML"),
        "{err}"
    );
    std::fs::remove_file(
        dx.join("force-app/main/default/objects/Alert__e/fields/Stage__c.field-meta.xml"),
    )
    .expect("remove");

    // The same topic in the topics folder and the project.
    let mut args = base();
    std::fs::write(
        args.topics
            .as_ref()
            .expect("topics")
            .join("event/Alert__e.avsc"),
        ORDER_SCHEMA.replace("Order_Event__e", "Alert__e"),
    )
    .expect("write avsc");
    let err = startup_error(args.clone()).await;
    assert!(
        err.contains("topic /event/Alert__e is also defined by") && err.contains("Alert__e.avsc"),
        "{err}"
    );
    std::fs::remove_file(
        args.topics
            .as_ref()
            .expect("topics")
            .join("event/Alert__e.avsc"),
    )
    .expect("remove");

    // A folder that is no DX project.
    args.metadata = Some(dir.path().join("topics"));
    let err = startup_error(args.clone()).await;
    assert!(
        err.contains("neither an sfdx-project.json nor an objects/ folder"),
        "{err}"
    );

    // Nothing was stored by any of the failed starts.
    args.metadata = None;
    let server = TestServer::start_again(
        args,
        std::sync::Arc::new(tempfile::tempdir().expect("tempdir")),
    )
    .await;
    let st = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Alert__e".into(),
        })
        .await
        .expect_err("never created");
    assert_status(&st, tonic::Code::NotFound, "topic.not.found");
    server.shutdown().await;
}
