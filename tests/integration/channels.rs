//! Custom channels (issue 22): channels and members defined over the
//! Tooling REST API on 127.0.0.1, platform events and change events routed
//! to them by their filters (in the same append as their source), enriched
//! fields, a filter change applying to later events, ManagedSubscribe on a
//! channel, a restart, and bad definitions refused with nothing defined.

use std::net::SocketAddr;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::change_data_capture_client::ChangeDataCaptureClient;
use eventbus::api::pb;
use serde_json::{Value, json};

use crate::cdc::{latest, names, read, send};
use crate::common::*;

const V: &str = "/services/data/v62.0";

fn http_server() -> impl FnOnce(&mut eventbus::config::ServeArgs) {
    |a| a.tooling_listen = "127.0.0.1:0".into()
}

/// Defines a channel; its Tooling id.
async fn channel(addr: SocketAddr, name: &str, kind: &str) -> String {
    let (status, got) = send(
        addr,
        "POST",
        &format!("{V}/tooling/sobjects/PlatformEventChannel"),
        &json!({"FullName": name, "Metadata": {"channelType": kind, "label": name}}),
    )
    .await;
    assert_eq!(status, 201, "{got}");
    assert_eq!(got["success"], true);
    got["id"].as_str().expect("id").to_owned()
}

/// Defines a member; the status and body.
async fn member(addr: SocketAddr, meta: Value) -> (u16, Value) {
    send(
        addr,
        "POST",
        &format!("{V}/tooling/sobjects/PlatformEventChannelMember"),
        &json!({"FullName": "", "Metadata": meta}),
    )
    .await
}

async fn publish_order(addr: SocketAddr, number: &str, amount: f64) {
    let (status, got) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Order_Event__e"),
        &json!({"OrderNumber__c": number, "Amount__c": amount}),
    )
    .await;
    assert_eq!(status, 201, "{got}");
}

/// Every event of `topic`, decoded.
async fn all(server: &TestServer, topic: &str) -> Vec<Value> {
    let n = latest(server, topic) as usize;
    if n == 0 {
        return Vec::new();
    }
    read(server, topic, n)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

fn numbers(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["OrderNumber__c"].as_str().expect("number"))
        .collect()
}

#[tokio::test]
async fn event_channels_get_exactly_the_events_their_filters_pass() {
    let server = start_with(http_server()).await;
    let addr = server.tooling.expect("http");
    channel(addr, "Big_EU__chn", "event").await;
    channel(addr, "Big__chn", "event").await;
    let (status, m) = member(
        addr,
        json!({"eventChannel": "Big_EU__chn", "selectedEntity": "order_event__e",
               "filterExpression": "Amount__c > 1000 AND OrderNumber__c LIKE 'EU-%'"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    let (status, m) = member(
        addr,
        json!({"eventChannel": "Big__chn", "selectedEntity": "Order_Event__e",
               "filterExpression": "Amount__c >= 1000"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    let member_id = m["id"].as_str().expect("id").to_owned();
    for (n, amount) in [
        ("EU-1", 1500.0),
        ("US-1", 2000.0),
        ("EU-2", 10.0),
        ("EU-3", 1000.0),
        ("eu-4", 1000.5),
        ("US-2", 5.0),
    ] {
        publish_order(addr, n, amount).await;
    }
    // Published with gRPC too: one request of several events.
    publish_orders(&server, 1, 3).await;
    assert_eq!(
        numbers(&all(&server, "/event/Big_EU__chn").await),
        ["EU-1", "eu-4"]
    );
    assert_eq!(
        numbers(&all(&server, "/event/Big__chn").await),
        ["EU-1", "US-1", "EU-3", "eu-4"]
    );
    assert_eq!(latest(&server, ORDER_TOPIC), 9);
    // The channel's events are the source's own: same schema and payload.
    let source = server.broker.topic(ORDER_TOPIC).expect("topic");
    let from_source = read(&server, ORDER_TOPIC, 1).await;
    let from_channel = read(&server, "/event/Big__chn", 1).await;
    assert_eq!(from_source, from_channel);

    // GetTopic answers for the channel; a Subscribe stream reads it.
    let topic = server
        .client()
        .await
        .get_topic(pb::TopicRequest {
            topic_name: "/event/Big__chn".into(),
        })
        .await
        .expect("get topic")
        .into_inner();
    assert!(topic.can_subscribe);
    assert_eq!(topic.schema_id, source.current_schema().as_str());

    // A new filter applies to events published after the change.
    let (status, got) = send(
        addr,
        "PATCH",
        &format!("{V}/tooling/sobjects/PlatformEventChannelMember/{member_id}"),
        &json!({"Metadata": {"filterExpression": "Amount__c < 100"}}),
    )
    .await;
    assert_eq!(status, 204, "{got}");
    publish_order(addr, "US-3", 50.0).await;
    publish_order(addr, "US-4", 5000.0).await;
    assert_eq!(
        numbers(&all(&server, "/event/Big__chn").await),
        ["EU-1", "US-1", "EU-3", "eu-4", "US-3"]
    );
    // The Tooling query shows the member with its new filter.
    let (status, q) = http_client_get(
        addr,
        &format!("{V}/tooling/query?q=SELECT+Id,+DeveloperName,+FilterExpression+FROM+PlatformEventChannelMember+WHERE+EventChannel+=+'Big__chn'"),
    )
    .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["size"], 1, "{q}");
    assert_eq!(q["records"][0]["FilterExpression"], "Amount__c < 100");

    // Definitions survive a restart and keep routing.
    let server = server.restart_on_same_port().await;
    let addr = server.tooling.expect("http");
    publish_order(addr, "US-5", 7.0).await;
    assert_eq!(
        numbers(&all(&server, "/event/Big__chn").await),
        ["EU-1", "US-1", "EU-3", "eu-4", "US-3", "US-5"]
    );
}

async fn http_client_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    crate::http_client::http(addr, "GET", path, None, None).await
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_reason_and_define_nothing() {
    let server = start_with(http_server()).await;
    let addr = server.tooling.expect("http");
    channel(addr, "Orders__chn", "event").await;
    let cases = [
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Order_Event__e", "filterExpression": "Amount__c > 'x'"}),
            "filterExpression",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Order_Event__e", "filterExpression": "Nope__c = 1"}),
            "Nope__c",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Order_Event__e", "filterExpression": "Amount__c > 1 AND OrderNumber__c = 'a' OR Amount__c < 0"}),
            "character",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Order_Event__e", "filterExpression": "(Amount__c > 1"}),
            "character",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Nope__e"}),
            "Nope__e",
        ),
        (
            json!({"eventChannel": "Missing__chn", "selectedEntity": "Order_Event__e"}),
            "Missing__chn",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "Order_Event__e", "enrichedFields": [{"name": "Amount__c"}]}),
            "enrichedFields",
        ),
        (
            json!({"eventChannel": "Orders__chn", "selectedEntity": "AccountChangeEvent"}),
            "AccountChangeEvent",
        ),
    ];
    for (meta, says) in cases {
        let (status, got) = member(addr, meta.clone()).await;
        assert_eq!(status, 400, "{meta}: {got}");
        assert_eq!(
            got[0]["errorCode"], "FIELD_INTEGRITY_EXCEPTION",
            "{meta}: {got}"
        );
        let msg = got[0]["message"].as_str().expect("message");
        assert!(msg.contains(says), "{meta}: {msg}");
    }
    let (status, got) = send(
        addr,
        "POST",
        &format!("{V}/tooling/sobjects/PlatformEventChannel"),
        &json!({"FullName": "Orders__chn", "Metadata": {"channelType": "event"}}),
    )
    .await;
    assert_eq!(
        (status, got[0]["errorCode"].as_str()),
        (400, Some("DUPLICATE_VALUE")),
        "{got}"
    );
    let (status, got) = send(
        addr,
        "POST",
        &format!("{V}/tooling/sobjects/PlatformEventChannel"),
        &json!({"FullName": "Orders", "Metadata": {"channelType": "event"}}),
    )
    .await;
    assert_eq!(
        (status, got[0]["errorCode"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{got}"
    );
    let (_, q) = http_client_get(
        addr,
        &format!("{V}/tooling/query?q=SELECT+Id+FROM+PlatformEventChannelMember"),
    )
    .await;
    assert_eq!(q["totalSize"], 0, "nothing was defined: {q}");
    // A channel without members has no topic yet.
    assert!(server.broker.topic("/event/Orders__chn").is_err());
}

#[tokio::test]
async fn data_channels_filter_change_events_and_enrich_updates_and_deletes() {
    let server = start_with(http_server()).await;
    let addr = server.tooling.expect("http");
    channel(addr, "Sales__chn", "data").await;
    let (status, m) = member(
        addr,
        json!({"eventChannel": "Sales__chn", "selectedEntity": "AccountChangeEvent",
               "filterExpression": "ChangeEventHeader.changeType != 'CREATE' AND AnnualRevenue > 1000",
               "enrichedFields": [{"name": "Industry"}]}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    // A data channel member alone lets the object's records change.
    let (status, big) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "Big", "AnnualRevenue": 5000, "Industry": "Energy", "Phone": "1"}),
    )
    .await;
    assert_eq!(status, 201, "{big}");
    let (status, small) = send(
        addr,
        "POST",
        &format!("{V}/sobjects/Account"),
        &json!({"Name": "Small", "AnnualRevenue": 10, "Industry": "Retail"}),
    )
    .await;
    assert_eq!(status, 201, "{small}");
    let big = big["id"].as_str().expect("id").to_owned();
    let small = small["id"].as_str().expect("id").to_owned();
    for id in [&big, &small] {
        let (status, got) = send(
            addr,
            "PATCH",
            &format!("{V}/sobjects/Account/{id}"),
            &json!({"Phone": "2"}),
        )
        .await;
        assert_eq!(status, 204, "{got}");
    }
    // One transaction of two updates: only the record that passes.
    let (status, got) = send(
        addr,
        "PATCH",
        &format!("{V}/composite/sobjects"),
        &json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "id": big, "Phone": "3"},
            {"attributes": {"type": "Account"}, "id": small, "Phone": "3"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let (status, got) = crate::http_client::http(
        addr,
        "DELETE",
        &format!("{V}/sobjects/Account/{big}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 204, "{got}");
    // Not on the standard channel: no per-object topic.
    assert_eq!(latest(&server, "/data/AccountChangeEvent"), 0);
    let events = read(&server, "/data/Sales__chn", 3).await;
    assert_eq!(latest(&server, "/data/Sales__chn"), 3);
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["ChangeEventHeader"]["changeType"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["UPDATE", "UPDATE", "DELETE"]);
    for (schema, e) in &events {
        let h = &e["ChangeEventHeader"];
        assert_eq!(h["recordIds"], json!([big]), "{h}");
        // Enriched although unchanged, and not reported as changed.
        assert_eq!(e["Industry"], "Energy", "{e}");
        // AnnualRevenue is named in the filter: enriched too.
        assert_eq!(e["AnnualRevenue"], 5000.0, "{e}");
        let changed = names(schema, &h["changedFields"]);
        assert!(!changed.contains(&"Industry".to_owned()), "{changed:?}");
    }
    assert_eq!(events[0].1["Phone"], "2");
    assert_eq!(events[2].1["Name"], Value::Null);
}

#[tokio::test]
async fn a_channel_works_with_managed_subscribe_and_delete_removes_it() {
    let server = start_with(http_server()).await;
    let addr = server.tooling.expect("http");
    let id = channel(addr, "All_Orders__chn", "event").await;
    let (status, m) = member(
        addr,
        json!({"eventChannel": "All_Orders__chn", "selectedEntity": "Order_Event__e"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    publish_order(addr, "A-1", 1.0).await;
    publish_order(addr, "A-2", 2.0).await;
    assert_eq!(
        numbers(&all(&server, "/event/All_Orders__chn").await),
        ["A-1", "A-2"]
    );
    // ManagedSubscribe on the channel, from EARLIEST.
    let mut admin = eventbus::api::admin::pb::admin_client::AdminClient::connect(format!(
        "http://{}",
        server.addr
    ))
    .await
    .expect("connect");
    let sub = admin
        .create_managed_subscription(admin::CreateManagedSubscriptionRequest {
            developer_name: "Orders_Feed".into(),
            topic_name: "/event/All_Orders__chn".into(),
            default_replay: admin::ManagedReplay::Earliest as i32,
            error_recovery_replay: admin::ManagedReplay::Earliest as i32,
            state: admin::ManagedState::Run as i32,
        })
        .await
        .expect("managed subscription")
        .into_inner();
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ManagedFetchRequest {
        subscription_id: sub.id.clone(),
        num_requested: 10,
        ..Default::default()
    })
    .await
    .expect("queue");
    let mut stream = client
        .managed_subscribe(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("managed subscribe")
        .into_inner();
    let mut got = 0;
    while got < 2 {
        let r = next_within(&mut stream, std::time::Duration::from_secs(10))
            .await
            .expect("ok")
            .expect("a response");
        got += r.events.len();
    }
    assert_eq!(got, 2);
    drop(tx);
    // Deleting the channel deletes its topic and members.
    let (status, body) = crate::http_client::http(
        addr,
        "DELETE",
        &format!("{V}/tooling/sobjects/PlatformEventChannel/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(server.broker.topic("/event/All_Orders__chn").is_err());
    publish_order(addr, "A-3", 3.0).await;
    assert_eq!(latest(&server, ORDER_TOPIC), 3);
}

#[allow(dead_code)]
async fn cdc_client(server: &TestServer) -> ChangeDataCaptureClient<tonic::transport::Channel> {
    ChangeDataCaptureClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect")
}
