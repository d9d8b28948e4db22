//! The console's topic page (issue 23) over real HTTP on 127.0.0.1: schema
//! versions with their compatibility, browsing from EARLIEST, LATEST, a
//! replay id and a time, the publish form (good and bad input, CSRF and
//! grants), the live tail's bounded batches, the export as JSON lines, and
//! change events with their bitmap fields named.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::common::*;
use crate::console::{
    FORM, console_server, console_server_with, csrf_of, log_in, log_in_as, next_sse, open_sse,
};
use crate::http_client::{exchange as http, form};

const PAGE: &str = "/console/topic?name=%2Fevent%2FOrder_Event__e";

/// A user of the org who may only subscribe (password `pw`).
const READER: &str = r#"
[[users]]
username = "reader@acme.example"
password = "$HASH"
org_id = "00D000000000000EAA"
user_id = "005000000000002"
name = "Rita Reader"
grants = ["subscribe:/event/*"]
"#;

async fn get(addr: SocketAddr, cookie: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, &[("Cookie", cookie)], b"").await;
    (status, body)
}

/// The replay ids of the page's browse list, in order.
fn browse_ids(page: &str) -> Vec<String> {
    let Some(list) = page.split(r#"<ol class="events" id="browse">"#).nth(1) else {
        return Vec::new();
    };
    let list = list.split("</ol>").next().unwrap_or("");
    list.split(r#"data-replay-id=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap_or("").to_owned())
        .collect()
}

/// Publishes orders `from..from + n` straight through the engine (the
/// console's users log in with passwords; this org has no gRPC token).
async fn publish_direct(server: &TestServer, from: i64, n: i64) {
    let schema = server
        .broker
        .topic(ORDER_TOPIC)
        .expect("topic")
        .current_schema()
        .to_string();
    let events = (from..from + n)
        .map(|i| eventbus::broker::PublishEvent {
            id: String::new(),
            schema_id: schema.clone(),
            payload: order_payload(i).into(),
            headers: Vec::new(),
        })
        .collect();
    let receipt = server
        .broker
        .publish(ORDER_TOPIC, events)
        .await
        .expect("publish");
    assert!(receipt.outcomes.iter().all(|o| o.result.is_ok()));
}

fn hex(n: u64) -> String {
    format!("{n:016x}")
}

async fn post_publish(
    addr: SocketAddr,
    cookie: &str,
    csrf: &str,
    name: &str,
    payload: &str,
) -> (u16, std::collections::HashMap<String, String>, String) {
    http(
        addr,
        "POST",
        "/console/topic/publish",
        &[FORM, ("Cookie", cookie)],
        &form(&[("csrf", csrf), ("name", name), ("payload", payload)]),
    )
    .await
}

#[tokio::test]
async fn the_topic_page_shows_schema_versions_and_browses_from_any_position() {
    let (server, addr) = console_server().await;
    publish_direct(&server, 1, 30).await;
    let v2 = eventbus::schema::ParsedSchema::parse(ORDER_SCHEMA_V2).expect("v2");
    let v2_id = v2.id().to_string();
    server
        .broker
        .register_schema(ORDER_TOPIC, v2)
        .await
        .expect("a compatible version");
    let cookie = log_in(addr).await;

    let (status, page) = get(addr, &cookie, PAGE).await;
    assert_eq!(status, 200, "{page}");
    // Both versions, newest first, the new one current and compatible,
    // each as indented JSON.
    let v1_id = server.broker.topic(ORDER_TOPIC).expect("topic").schema_ids[0].to_string();
    let (at_v2, at_v1) = (
        page.find(&format!(r#"data-schema-id="{v2_id}""#))
            .expect("v2 listed"),
        page.find(&format!(r#"data-schema-id="{v1_id}""#))
            .expect("v1 listed"),
    );
    assert!(at_v2 < at_v1, "newest first");
    assert!(page[at_v2..at_v1].contains("current"), "{page}");
    assert!(
        page[at_v2..at_v1].contains("reads the events of the version before"),
        "{page}"
    );
    assert!(page[at_v1..].contains("first version"), "{page}");
    assert!(
        page.contains("&#34;name&#34;: &#34;Status__c&#34;"),
        "indented schema JSON: {page}"
    );

    // EARLIEST by default: the first 25, decoded, and a link to the next.
    let ids = browse_ids(&page);
    assert_eq!(ids, (1..=25).map(hex).collect::<Vec<_>>());
    assert!(page.contains("ORD-000001"), "decoded payload: {page}");
    assert!(
        page.contains(&format!("from={}", hex(26))),
        "next page: {page}"
    );

    let (_, page) = get(addr, &cookie, &format!("{PAGE}&from=LATEST&count=5")).await;
    assert_eq!(browse_ids(&page), (26..=30).map(hex).collect::<Vec<_>>());
    assert!(
        !page.contains("id=\"browse-next\""),
        "nothing after the newest: {page}"
    );

    let (_, page) = get(addr, &cookie, &format!("{PAGE}&from={}&count=3", hex(10))).await;
    assert_eq!(browse_ids(&page), (10..=12).map(hex).collect::<Vec<_>>());

    // A time: the events committed from then on (all of them from an hour
    // ago, none from a future moment).
    let (_, page) = get(addr, &cookie, &format!("{PAGE}&from=1h&count=200")).await;
    assert_eq!(browse_ids(&page).len(), 30);
    let (_, page) = get(addr, &cookie, &format!("{PAGE}&from=2099-01-01T00:00:00Z")).await;
    assert!(
        browse_ids(&page).is_empty() && page.contains("No events here"),
        "{page}"
    );

    // Past the newest, and words that are no position.
    let (_, page) = get(addr, &cookie, &format!("{PAGE}&from={}", hex(99))).await;
    assert!(page.contains("is past the newest event"), "{page}");
    let (status, page) = get(addr, &cookie, &format!("{PAGE}&from=yesterday")).await;
    assert_eq!(status, 200);
    assert!(page.contains("is not EARLIEST, LATEST"), "{page}");

    // Another org's topic, and one that does not exist, are not there.
    let (status, _) = get(
        addr,
        &cookie,
        "/console/topic?name=%2Fevent%2FSecret_Event__e",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(addr, &cookie, "/console/topic?name=%2Fevent%2FNope__e").await;
    assert_eq!(status, 404);
    // Without a session: the login.
    let (status, h, _) = http(addr, "GET", PAGE, &[], b"").await;
    assert_eq!((status, h["location"].as_str()), (303, "/console/login"));
}

#[tokio::test]
async fn the_publish_form_publishes_and_shows_what_is_wrong_in_place() {
    let (server, addr) = console_server().await;
    let cookie = log_in(addr).await;
    let (_, page) = get(addr, &cookie, PAGE).await;
    assert!(
        page.contains(r#"id="publish-form""#),
        "ops may publish: {page}"
    );
    assert!(
        page.contains("OrderNumber__c"),
        "the hint names the fields: {page}"
    );
    let csrf = csrf_of(&page);

    let (status, h, body) = post_publish(
        addr,
        &cookie,
        &csrf,
        ORDER_TOPIC,
        r#"{"OrderNumber__c": "WEB-1", "Amount__c": 12.5}"#,
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let back = h["location"].clone();
    assert!(back.contains("Published+event+0000000000000001"), "{back}");
    let (_, page) = get(addr, &cookie, &back).await;
    assert!(page.contains("Published event 0000000000000001."), "{page}");
    assert!(page.contains("WEB-1"), "the new event in the list: {page}");
    let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
    assert_eq!(server.broker.bounds(topic.id).expect("bounds").latest.0, 1);

    // Bad input: the page again (400), the text kept, the error beside it,
    // nothing published.
    for (payload, says) in [
        ("{\"OrderNumber__c\": ", "This is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{\"Amount__c\": \"lots\"}", "Amount__c"),
        ("{\"Colour__c\": \"red\"}", "Colour__c"),
    ] {
        let (status, _, page) = post_publish(addr, &cookie, &csrf, ORDER_TOPIC, payload).await;
        assert_eq!(status, 400, "{payload}: {page}");
        assert!(page.contains(r#"id="publish-error""#), "{payload}: {page}");
        assert!(page.contains(says), "{payload}: {page}");
        assert!(page.contains(r#"aria-invalid="true""#), "{page}");
        let kept = payload.replace('"', "&#34;").replace('<', "&lt;");
        assert!(page.contains(&kept), "the text is kept: {page}");
    }
    assert_eq!(server.broker.bounds(topic.id).expect("bounds").latest.0, 1);

    // No CSRF token, or another session's: refused.
    let (status, _, _) = post_publish(addr, &cookie, "", ORDER_TOPIC, "{}").await;
    assert_eq!(status, 403);
    let other = log_in(addr).await;
    let (status, _, _) = post_publish(addr, &other, &csrf, ORDER_TOPIC, "{}").await;
    assert_eq!(status, 403);
    assert_eq!(server.broker.bounds(topic.id).expect("bounds").latest.0, 1);
}

#[tokio::test]
async fn a_subscribe_only_user_sees_no_publish_form_and_is_refused_when_posting() {
    let users = READER.replace("$HASH", &eventbus::auth::org::hash_secret("pw"));
    let (server, addr) = console_server_with(&users, "tokens = []\n").await;
    publish_direct(&server, 1, 2).await;
    let cookie = log_in_as(addr, "reader@acme.example").await;
    let (status, page) = get(addr, &cookie, PAGE).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("publish-form"), "{page}");
    assert_eq!(browse_ids(&page).len(), 2, "a reader browses");
    let csrf = csrf_of(&page);
    let (status, _, body) = post_publish(
        addr,
        &cookie,
        &csrf,
        ORDER_TOPIC,
        r#"{"OrderNumber__c": "X"}"#,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs a publish grant"), "{body}");
    let topic = server.broker.topic(ORDER_TOPIC).expect("topic");
    assert_eq!(server.broker.bounds(topic.id).expect("bounds").latest.0, 2);
}

#[tokio::test]
async fn the_live_tail_sends_bounded_batches_of_the_newest_events() {
    let (server, addr) = console_server().await;
    publish_direct(&server, 1, 8).await;
    let (status, _, _) = http(
        addr,
        "GET",
        "/console/events/tail?name=%2Fevent%2FOrder_Event__e",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 401, "no session, no tail");
    let cookie = log_in(addr).await;
    let path = "/console/events/tail?name=%2Fevent%2FOrder_Event__e";
    let (headers, first, mut conn) = open_sse(addr, path, "tail", Some(&cookie)).await;
    assert!(
        headers["content-type"].starts_with("text/event-stream"),
        "{headers:?}"
    );
    // The first batch: the last five events, decoded.
    let ids: Vec<&str> = first["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["replay_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, (4..=8).map(hex).collect::<Vec<_>>());
    assert!(
        first["events"][4]["json"]
            .as_str()
            .expect("json")
            .contains("ORD-000008")
    );
    assert_eq!(first["latest"], hex(8));

    // 50 more in one go: the next batch carries the newest 20 and counts
    // the 30 it skipped.
    publish_direct(&server, 9, 50).await;
    let batch = next_sse(&mut conn, "tail").await;
    let events = batch["events"].as_array().expect("events");
    assert_eq!(events.len(), 20, "{batch}");
    assert_eq!(batch["skipped"], 30, "{batch}");
    assert_eq!(events[19]["replay_id"], hex(58));
    assert_eq!(events[0]["replay_id"], hex(39));
}

#[tokio::test]
async fn the_export_streams_a_range_as_json_lines() {
    let (server, addr) = console_server().await;
    publish_direct(&server, 1, 1_200).await;
    let cookie = log_in(addr).await;
    let (status, h, body) = http(
        addr,
        "GET",
        "/console/topic/export?name=%2Fevent%2FOrder_Event__e&from=EARLIEST",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["content-type"], "application/x-ndjson");
    assert!(
        h["content-disposition"].contains("event-Order_Event__e.jsonl"),
        "{h:?}"
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1_200, "every event, across pages");
    assert_eq!(lines[0]["replay_id"], hex(1));
    assert_eq!(lines[1_199]["replay_id"], hex(1_200));
    assert_eq!(lines[41]["payload"]["OrderNumber__c"], "ORD-000042");
    assert!(lines[0]["schema_id"].is_string() && lines[0]["time"].is_string());

    // A range by replay ids, inclusive at both ends.
    let path = format!(
        "/console/topic/export?name=%2Fevent%2FOrder_Event__e&from={}&to={}",
        hex(600),
        hex(602)
    );
    let (_, _, body) = http(addr, "GET", &path, &[("Cookie", &cookie)], b"").await;
    let ids: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["replay_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, [hex(600), hex(601), hex(602)]);

    let (status, _, body) = http(
        addr,
        "GET",
        "/console/topic/export?name=%2Fevent%2FOrder_Event__e&from=soon",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("from:"), "{body}");
    let (status, _, _) = http(
        addr,
        "GET",
        "/console/topic/export?name=%2Fevent%2FOrder_Event__e",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn change_events_show_their_bitmap_fields_by_name() {
    let server = start_with(|a| a.http_listen = "127.0.0.1:0".into()).await;
    let addr = server.tooling.expect("http listener on");
    crate::cdc::enable(&server, "Account").await;
    let (status, created) = crate::cdc::send(
        addr,
        "POST",
        "/services/data/v62.0/sobjects/Account",
        &json!({"Name": "Acme", "Phone": "555-0100"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, _) = crate::cdc::send(
        addr,
        "PATCH",
        &format!("/services/data/v62.0/sobjects/Account/{id}"),
        &json!({"Name": "Acme Corp", "Phone": null}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, page) = http(
        addr,
        "GET",
        "/console/topic?name=%2Fdata%2FAccountChangeEvent",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(browse_ids(&page).len(), 2, "{page}");
    assert!(page.contains("&#34;changedFieldNames&#34;"), "{page}");
    assert!(page.contains("&#34;nulledFieldNames&#34;: [\n"), "{page}");
    assert!(
        !page.contains("publish-form"),
        "change events are read only: {page}"
    );
    // The token of a page with a form (the open console's).
    let (_, _, order_page) = http(addr, "GET", PAGE, &[], b"").await;
    let (status, _, body) = http(
        addr,
        "POST",
        "/console/topic/publish",
        &[FORM],
        &form(&[
            ("csrf", &csrf_of(&order_page)),
            ("name", "/data/AccountChangeEvent"),
            ("payload", "{}"),
        ]),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read only"), "{body}");
}
