//! The engine over the in-memory log: what each operation stores and
//! publishes, without a server around it (the integration tests drive the
//! same paths over REST and gRPC).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use eventbus_broker::{Broker, BrokerConfig};
use eventbus_core::log::SharedLog;
use eventbus_core::log::memory::MemoryTopicLog;
use eventbus_core::metrics::Metrics;
use eventbus_core::types::{DEFAULT_TENANT_GUID, TenantId};
use eventbus_objects::model::ObjectCatalog;

use super::{Actor, Cdc, CdcConfig, CdcError, RecordOp};

async fn engine(first_commit_number: u64) -> Cdc {
    let log: SharedLog = Arc::new(MemoryTopicLog::new());
    let broker = Broker::open(
        log.clone(),
        BrokerConfig::default(),
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap();
    Cdc::new(
        broker,
        log,
        ObjectCatalog::standard(),
        CdcConfig {
            first_commit_number,
        },
        None,
    )
    .unwrap()
}

fn actor() -> Actor {
    Actor {
        tenant: TenantId::from_stored(DEFAULT_TENANT_GUID),
        user_id: "005000000000001AAA".into(),
        origin: "com/salesforce/api/rest/62.0".into(),
    }
}

fn fields(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Every event of `topic`, decoded.
async fn events(cdc: &Cdc, topic: &str) -> Vec<Value> {
    let t = cdc.broker.topic(topic).unwrap();
    let stored = cdc
        .log
        .read(t.id, Default::default(), 1000, 1 << 20)
        .await
        .unwrap();
    stored
        .iter()
        .map(|e| {
            let schema = cdc.broker.schema(e.event.schema_id.as_str()).unwrap();
            schema.decode_to_json(&e.event.payload).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn changes_of_a_disabled_object_are_refused_and_store_nothing() {
    let cdc = engine(1).await;
    let op = RecordOp::Create {
        object: "Account".into(),
        fields: fields(json!({"Name": "Acme"})),
    };
    let done = cdc.apply(&actor(), vec![op], true).await.unwrap();
    assert!(matches!(done.results[0], Err(CdcError::NotEnabled(_))));
    assert!(done.transaction_key.is_none());
    assert!(cdc.broker.topic("/data/AccountChangeEvent").is_err());
}

#[tokio::test]
async fn one_transaction_is_one_commit_with_its_events_in_sequence() {
    let cdc = engine(1 << 53).await;
    let tenant = actor().tenant;
    cdc.enable(&tenant, "Account").await.unwrap();
    cdc.enable(&tenant, "ContactChangeEvent").await.unwrap();
    let ops = vec![
        RecordOp::Create {
            object: "Account".into(),
            fields: fields(json!({"Name": "A"})),
        },
        RecordOp::Create {
            object: "contact".into(),
            fields: fields(json!({"LastName": "L"})),
        },
        RecordOp::Create {
            object: "Account".into(),
            fields: fields(json!({"Name": "B"})),
        },
    ];
    let done = cdc.apply(&actor(), ops, true).await.unwrap();
    assert_eq!(done.commit_number, Some(1 << 53));
    assert_eq!(done.replay_ids.len(), 3);
    let all = events(&cdc, "/data/ChangeEvents").await;
    let seq: Vec<(i64, &str)> = all
        .iter()
        .map(|e| {
            let h = &e["ChangeEventHeader"];
            (
                h["sequenceNumber"].as_i64().unwrap(),
                h["entityName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seq, [(1, "Account"), (2, "Contact"), (3, "Account")]);
    let keys: Vec<&Value> = all
        .iter()
        .map(|e| &e["ChangeEventHeader"]["transactionKey"])
        .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    assert!(
        all.iter()
            .all(|e| e["ChangeEventHeader"]["commitNumber"] == json!(1u64 << 53))
    );
    assert_eq!(events(&cdc, "/data/AccountChangeEvent").await.len(), 2);
    // The next transaction has the next commit number.
    let id = done.results[0].as_ref().unwrap().clone();
    let next = cdc
        .apply(
            &actor(),
            vec![RecordOp::Update {
                object: None,
                id,
                fields: fields(json!({"Name": "A2"})),
            }],
            true,
        )
        .await
        .unwrap();
    assert_eq!(next.commit_number, Some((1 << 53) + 1));
}

#[tokio::test]
async fn delete_and_undelete_follow_the_recycle_bin() {
    let cdc = engine(1).await;
    let tenant = actor().tenant;
    cdc.enable(&tenant, "Account").await.unwrap();
    let made = cdc
        .apply(
            &actor(),
            vec![RecordOp::Create {
                object: "Account".into(),
                fields: fields(json!({"Name": "A"})),
            }],
            true,
        )
        .await
        .unwrap();
    let id = made.results[0].as_ref().unwrap().clone();
    let del = |id: &str| RecordOp::Delete {
        object: Some("Account".into()),
        id: id.to_owned(),
    };
    let undel = |id: &str| RecordOp::Undelete {
        object: None,
        id: id.to_owned(),
    };
    let r = cdc.apply(&actor(), vec![undel(&id)], true).await.unwrap();
    assert!(matches!(r.results[0], Err(CdcError::NotDeleted(_))));
    cdc.apply(&actor(), vec![del(&id)], true).await.unwrap();
    assert!(matches!(
        cdc.get(&tenant, None, &id).await,
        Err(CdcError::EntityDeleted(_))
    ));
    let r = cdc.apply(&actor(), vec![del(&id)], true).await.unwrap();
    assert!(matches!(r.results[0], Err(CdcError::EntityDeleted(_))));
    cdc.apply(&actor(), vec![undel(&id)], true).await.unwrap();
    let (_, record) = cdc.get(&tenant, Some("account"), &id[..15]).await.unwrap();
    assert_eq!(record["Name"], "A");
    let kinds: Vec<String> = events(&cdc, "/data/AccountChangeEvent")
        .await
        .iter()
        .map(|e| {
            e["ChangeEventHeader"]["changeType"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["CREATE", "DELETE", "UNDELETE"]);
    // Disabling stops publishing; the topic stays.
    assert!(cdc.disable(&tenant, "Account").await.unwrap());
    assert!(!cdc.disable(&tenant, "Account").await.unwrap());
    let r = cdc.apply(&actor(), vec![del(&id)], true).await.unwrap();
    assert!(matches!(r.results[0], Err(CdcError::NotEnabled(_))));
    assert!(cdc.members(&tenant).await.unwrap().is_empty());
    assert!(cdc.broker.topic("/data/AccountChangeEvent").is_ok());
}

#[tokio::test]
async fn tenants_keep_their_records_and_topics_apart() {
    let cdc = engine(1).await;
    let other = TenantId::parse("00D5e000000AbcdEAC").unwrap();
    cdc.enable(&other, "Account").await.unwrap();
    assert!(cdc.members(&actor().tenant).await.unwrap().is_empty());
    let them = Actor {
        tenant: other.clone(),
        ..actor()
    };
    let made = cdc
        .apply(
            &them,
            vec![RecordOp::Create {
                object: "Account".into(),
                fields: fields(json!({"Name": "Theirs"})),
            }],
            true,
        )
        .await
        .unwrap();
    let id = made.results[0].as_ref().unwrap().clone();
    assert!(cdc.get(&other, None, &id).await.is_ok());
    assert!(matches!(
        cdc.get(&actor().tenant, None, &id).await,
        Err(CdcError::RecordNotFound(_))
    ));
    assert!(cdc.broker.topic("/data/AccountChangeEvent").is_err());
    assert!(
        cdc.broker
            .topics()
            .iter()
            .any(|t| t.name.as_str().ends_with("/data/AccountChangeEvent"))
    );
}
