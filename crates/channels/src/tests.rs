//! Channels over the in-memory log: definitions refused or kept, and
//! routing through the broker's publish (the integration tests drive the
//! same code over the Tooling API, the CDC engine and a crash harness).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;

use eventbus_broker::{Broker, BrokerConfig, PublishEvent, Router};
use eventbus_core::log::SharedLog;
use eventbus_core::log::memory::MemoryTopicLog;
use eventbus_core::metrics::Metrics;
use eventbus_core::types::{DEFAULT_TENANT_GUID, TenantId};
use eventbus_filter::ChannelKind;
use eventbus_objects::model::ObjectCatalog;
use eventbus_schema::ParsedSchema;

use super::{ChannelError, Channels, MemberSpec};

const SCHEMA: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[
  {"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},
  {"name":"Amount__c","type":["null","double"],"default":null},
  {"name":"Region__c","type":["null","string"],"default":null}]}"#;

fn tenant() -> TenantId {
    TenantId::from_stored(DEFAULT_TENANT_GUID)
}

async fn setup() -> (Arc<Broker>, Arc<Channels>, Arc<dyn Router>) {
    let log: SharedLog = Arc::new(MemoryTopicLog::new());
    let broker = Broker::open(
        log.clone(),
        BrokerConfig::default(),
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap();
    broker
        .create_topic(
            "/event/Order_Event__e",
            ParsedSchema::parse(SCHEMA).unwrap(),
            None,
        )
        .await
        .unwrap();
    let channels = Channels::new(broker.clone(), log, ObjectCatalog::standard());
    let router: Arc<dyn Router> = channels.clone();
    broker.set_router(&router);
    (broker, channels, router)
}

fn order(amount: f64, region: &str) -> PublishEvent {
    let schema = ParsedSchema::parse(SCHEMA).unwrap();
    let payload = schema
        .encode_json(
            &serde_json::json!({"CreatedDate": 1, "Amount__c": amount, "Region__c": region}),
            &eventbus_schema::json::JsonDefaults {
                created_date_ms: 1,
                created_by_id: String::new(),
            },
        )
        .unwrap();
    PublishEvent {
        id: String::new(),
        schema_id: schema.id().as_str().to_owned(),
        payload: Bytes::from(payload),
        headers: Vec::new(),
    }
}

fn spec(channel: &str, entity: &str, filter: Option<&str>) -> MemberSpec {
    MemberSpec {
        channel: channel.into(),
        selected_entity: entity.into(),
        filter_expression: filter.map(str::to_owned),
        ..MemberSpec::default()
    }
}

fn latest(broker: &Broker, topic: &str) -> u64 {
    let t = broker.topic(topic).unwrap();
    broker.bounds(t.id).unwrap().latest.0
}

#[tokio::test]
async fn publishes_reach_the_channels_whose_filters_pass_in_the_same_append() {
    let (broker, channels, _router) = setup().await;
    channels
        .create_channel(&tenant(), "Big__chn", ChannelKind::Event, "")
        .await
        .unwrap();
    channels
        .upsert_member(
            &tenant(),
            spec(
                "Big__chn",
                "order_event__e",
                Some("Amount__c > 100 AND Region__c = 'eu'"),
            ),
        )
        .await
        .unwrap();
    let receipt = broker
        .publish(
            "/event/Order_Event__e",
            vec![order(500.0, "EU"), order(5.0, "EU"), order(900.0, "US")],
        )
        .await
        .unwrap();
    assert!(receipt.outcomes.iter().all(|o| o.result.is_ok()));
    assert_eq!(latest(&broker, "/event/Order_Event__e"), 3);
    assert_eq!(latest(&broker, "/event/Big__chn"), 1);
    // A new filter applies to what is published after it.
    channels
        .upsert_member(
            &tenant(),
            spec("Big__chn", "Order_Event__e", Some("Amount__c < 10")),
        )
        .await
        .unwrap();
    broker
        .publish(
            "/event/Order_Event__e",
            vec![order(500.0, "EU"), order(5.0, "US")],
        )
        .await
        .unwrap();
    assert_eq!(latest(&broker, "/event/Big__chn"), 2);
    let members = channels.members(&tenant(), Some("big__chn")).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        members[0].filter_expression.as_deref(),
        Some("Amount__c < 10")
    );
    assert_eq!(members[0].selected_entity, "Order_Event__e");
    // Deleting the channel deletes its topic; publishing goes on.
    assert!(
        channels
            .delete_channel(&tenant(), "Big__chn")
            .await
            .unwrap()
    );
    assert!(broker.topic("/event/Big__chn").is_err());
    broker
        .publish("/event/Order_Event__e", vec![order(1.0, "EU")])
        .await
        .unwrap();
    assert!(channels.members(&tenant(), None).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_definitions_are_refused_and_store_nothing() {
    let (_broker, channels, _router) = setup().await;
    let invalid = |e: ChannelError| match e {
        ChannelError::Invalid { code, message } => (code, message),
        other => panic!("not a refusal: {other}"),
    };
    let (code, _) = invalid(
        channels
            .create_channel(&tenant(), "Orders", ChannelKind::Event, "")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "INVALID_INPUT");
    channels
        .create_channel(&tenant(), "Orders__chn", ChannelKind::Event, "Orders")
        .await
        .unwrap();
    let (code, _) = invalid(
        channels
            .create_channel(&tenant(), "Orders__chn", ChannelKind::Data, "")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "DUPLICATE_VALUE");
    for (s, says) in [
        (
            spec("Orders__chn", "Order_Event__e", Some("Amount__c > 'x'")),
            "character",
        ),
        (
            spec("Orders__chn", "Order_Event__e", Some("Nope__c = 1")),
            "Nope__c",
        ),
        (spec("Orders__chn", "Nope__e", None), "Nope__e"),
        (spec("Nope__chn", "Order_Event__e", None), "Nope__chn"),
        (
            spec("Orders__chn", "AccountChangeEvent", None),
            "AccountChangeEvent",
        ),
        (
            MemberSpec {
                enriched_fields: vec!["Amount__c".into()],
                ..spec("Orders__chn", "Order_Event__e", None)
            },
            "enrichedFields",
        ),
    ] {
        let (code, message) = invalid(channels.upsert_member(&tenant(), s).await.unwrap_err());
        assert_eq!(code, "FIELD_INTEGRITY_EXCEPTION", "{message}");
        assert!(message.contains(says), "{message}");
    }
    assert!(channels.members(&tenant(), None).await.unwrap().is_empty());
}

#[tokio::test]
async fn data_members_enrich_the_simple_fields_their_filters_name() {
    let (_broker, channels, _router) = setup().await;
    channels
        .create_channel(&tenant(), "Sales__chn", ChannelKind::Data, "Sales")
        .await
        .unwrap();
    // Compound and long text fields cannot be enriched.
    for bad in ["BillingAddress", "Description", "Nope"] {
        let e = channels
            .upsert_member(
                &tenant(),
                MemberSpec {
                    enriched_fields: vec![bad.into()],
                    ..spec("Sales__chn", "AccountChangeEvent", None)
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    channels
        .upsert_member(
            &tenant(),
            MemberSpec {
                enriched_fields: vec!["Industry".into()],
                ..spec(
                    "Sales__chn",
                    "AccountChangeEvent",
                    Some("AnnualRevenue > 10 AND BillingAddress.City = 'Paris' AND ChangeEventHeader.changeType = 'UPDATE'"),
                )
            },
        )
        .await
        .unwrap();
    let routes = channels
        .data_routes(&tenant(), "AccountChangeEvent")
        .await
        .unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].enriched, ["Industry", "AnnualRevenue"]);
    assert!(routes[0].filter.is_some());
    assert!(
        channels
            .data_routes(&tenant(), "ContactChangeEvent")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn channels_and_members_are_capped() {
    let (_broker, channels, _router) = setup().await;
    for i in 0..super::defs::MAX_CHANNELS {
        channels
            .create_channel(&tenant(), &format!("C{i}__chn"), ChannelKind::Event, "")
            .await
            .unwrap();
    }
    let e = channels
        .create_channel(&tenant(), "More__chn", ChannelKind::Event, "")
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), "LIMIT_EXCEEDED", "{e}");
    assert_eq!(
        channels.channels(&tenant()).await.unwrap().len(),
        super::defs::MAX_CHANNELS
    );
}
