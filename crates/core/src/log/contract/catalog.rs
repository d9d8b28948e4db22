//! The catalog's part of the contract ([`CatalogStore`]): topic, schema and
//! managed-subscription records, topic ids and the change feed; the checks
//! that need events too (a topic's deletion, the feed) take the whole
//! [`TopicLog`].
//!
//! Owns: one async fn per behaviour. Must not: depend on a particular
//! backend.

use std::time::Duration;

use super::{fill, managed_id, managed_record, tenant};
use crate::log::{
    CatalogChange, CatalogStore, CommitRecord, ManagedRecord, SchemaRecord, TopicLog, TopicRecord,
};
use crate::types::{Offset, SchemaId, TenantId, TopicId};

/// Catalog records round-trip.
pub async fn catalog_round_trips(log: &dyn CatalogStore) {
    let rec = TopicRecord {
        id: 3,
        name: "/event/A__e".into(),
        schema_ids: vec!["x".into(), "y".into()],
        retention_ms: 1000,
        created_ms: 5,
    };
    log.put_topic(rec.clone()).await.expect("put topic");
    let t = tenant("00D000000000000");
    log.put_schema(&t, SchemaId::new("y"), "{}".into())
        .await
        .expect("put schema");
    let cat = log.load_catalog().await.expect("load");
    assert_eq!(cat.topics, vec![rec]);
    assert_eq!(
        cat.schemas,
        vec![SchemaRecord {
            tenant: Some(t),
            id: SchemaId::new("y"),
            json: "{}".to_owned()
        }]
    );
    assert_eq!(cat.next_topic_id, 4);
}

/// Managed-subscription records are stored, replaced (a commit) and
/// deleted by id.
pub async fn managed_records_round_trip(log: &dyn CatalogStore) {
    let rec = managed_record;
    log.put_managed(rec("b", None)).await.expect("put");
    log.put_managed(rec("a", None)).await.expect("put");
    log.put_managed(rec("a", Some(7))).await.expect("commit");
    let mut got = log.load_catalog().await.expect("load").managed;
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, vec![rec("a", Some(7)), rec("b", None)]);
    log.delete_managed(&managed_id("a")).await.expect("delete");
    log.delete_managed(&managed_id("never"))
        .await
        .expect("deleting an absent id is fine");
    assert_eq!(
        log.load_catalog().await.expect("load").managed,
        vec![rec("b", None)]
    );
}

/// A developer name is taken once per tenant, and free again after a delete.
pub async fn create_managed_takes_a_name_once_per_tenant(log: &dyn CatalogStore) {
    let rec = |id: &str, tenant: &str| ManagedRecord {
        tenant: tenant.to_owned(),
        developer_name: "Same".into(),
        ..managed_record(id, None)
    };
    assert!(
        log.create_managed(rec("m1", "00D000000000000EAA"))
            .await
            .expect("create")
    );
    assert!(
        !log.create_managed(rec("m2", "00D000000000000EAA"))
            .await
            .expect("taken")
    );
    assert!(
        log.create_managed(rec("m3", "00D5e000000OtheEAC"))
            .await
            .expect("other tenant")
    );
    // Both forms of an org id are one tenant, also for records that name
    // it by its 15-character form (as older versions stored them).
    assert!(
        !log.create_managed(rec("m5", "00D5e000000Othe"))
            .await
            .expect("taken by the 18-character form")
    );
    log.delete_managed(&managed_id("m1")).await.expect("delete");
    assert!(
        log.create_managed(rec("m4", "00D000000000000"))
            .await
            .expect("free again")
    );
    assert!(
        !log.create_managed(rec("m6", "00D000000000000EAA"))
            .await
            .expect("taken by the 15-character form")
    );
    let mut ids: Vec<String> = log
        .load_catalog()
        .await
        .expect("load")
        .managed
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["m3", "m4"]);
}

/// A commit replaces only the commit of a stored subscription.
pub async fn put_commit_changes_only_the_commit(log: &dyn CatalogStore) {
    let mut rec = ManagedRecord {
        developer_name: "Sub".into(),
        ..managed_record("m1", None)
    };
    log.put_managed(rec.clone()).await.expect("put");
    let commit = CommitRecord {
        topic_id: 3,
        offset: 9,
        time_ms: 10,
    };
    assert!(
        log.put_commit(&managed_id("m1"), Some(commit))
            .await
            .expect("commit")
    );
    assert!(
        !log.put_commit(&managed_id("absent"), Some(commit))
            .await
            .expect("commit")
    );
    rec.commit = Some(commit);
    assert_eq!(
        log.load_catalog().await.expect("load").managed,
        vec![rec.clone()]
    );
    assert!(
        log.put_commit(&managed_id("m1"), None)
            .await
            .expect("uncommit")
    );
    rec.commit = None;
    assert_eq!(log.load_catalog().await.expect("load").managed, vec![rec]);
}

/// `get_managed` reads a subscription as stored, its latest commit included.
pub async fn get_managed_reads_the_stored_record(log: &dyn CatalogStore) {
    assert_eq!(log.get_managed(&managed_id("m1")).await.expect("get"), None);
    let rec = managed_record("m1", None);
    log.put_managed(rec.clone()).await.expect("put");
    assert_eq!(
        log.get_managed(&managed_id("m1")).await.expect("get"),
        Some(rec.clone())
    );
    let commit = CommitRecord {
        topic_id: 3,
        offset: 9,
        time_ms: 10,
    };
    assert!(
        log.put_commit(&managed_id("m1"), Some(commit))
            .await
            .expect("commit")
    );
    let got = log.get_managed(&managed_id("m1")).await.expect("get");
    assert_eq!(got.and_then(|r| r.commit), Some(commit));
    log.delete_managed(&managed_id("m1")).await.expect("delete");
    assert_eq!(log.get_managed(&managed_id("m1")).await.expect("get"), None);
}

/// Creating a topic whose name exists stores nothing.
pub async fn create_topic_refuses_an_existing_name(log: &dyn CatalogStore) {
    let rec = |id: u32| TopicRecord {
        id,
        name: "/event/C__e".into(),
        schema_ids: vec!["x".into()],
        retention_ms: 60_000,
        created_ms: 1,
    };
    assert!(log.create_topic(rec(4)).await.expect("create"));
    assert!(!log.create_topic(rec(5)).await.expect("second create"));
    assert_eq!(log.load_catalog().await.expect("load").topics, vec![rec(4)]);
}

/// Topic ids come out unique and above every stored topic's id.
pub async fn allocated_topic_ids_are_fresh(log: &dyn CatalogStore) {
    log.put_topic(TopicRecord {
        id: 7,
        name: "/event/A__e".into(),
        schema_ids: vec!["x".into()],
        retention_ms: 1,
        created_ms: 1,
    })
    .await
    .expect("put topic");
    let a = log.allocate_topic_id().await.expect("allocate");
    let b = log.allocate_topic_id().await.expect("allocate");
    assert!(a > TopicId(7) && b > a, "{a:?}, {b:?}");
}

/// Schema texts are read back per tenant and id: two tenants' texts of one
/// id are kept apart, and a tenant never reads another's.
pub async fn schema_texts_are_kept_per_tenant(log: &dyn CatalogStore) {
    let (a, b, c) = (
        tenant("00D5e000000Aaaa"),
        tenant("00D5e000000Bbbb"),
        tenant("00D5e000000Cccc"),
    );
    let id = SchemaId::new("s1");
    log.put_schema(&a, id.clone(), "{\"doc\":\"A's\"}".into())
        .await
        .expect("put schema");
    log.put_schema(&b, id.clone(), "{\"doc\":\"B's\"}".into())
        .await
        .expect("put schema");
    let get = |t: Option<TenantId>, id: &str| {
        let id = SchemaId::new(id);
        async move { log.get_schema(t.as_ref(), &id).await.expect("get") }
    };
    assert_eq!(
        get(Some(a.clone()), "s1").await.as_deref(),
        Some("{\"doc\":\"A's\"}")
    );
    assert_eq!(
        get(Some(b.clone()), "s1").await.as_deref(),
        Some("{\"doc\":\"B's\"}")
    );
    assert_eq!(get(Some(c), "s1").await, None, "C stored none");
    assert_eq!(get(None, "s1").await, None, "no text without a tenant");
    assert_eq!(get(Some(a.clone()), "none").await, None);
    // The later text of a tenant replaces its earlier one.
    log.put_schema(&a, id.clone(), "{}".into())
        .await
        .expect("put schema");
    let mut cat = log.load_catalog().await.expect("load").schemas;
    cat.sort();
    assert_eq!(
        cat,
        vec![
            SchemaRecord {
                tenant: Some(a),
                id: id.clone(),
                json: "{}".into()
            },
            SchemaRecord {
                tenant: Some(b),
                id,
                json: "{\"doc\":\"B's\"}".into()
            },
        ]
    );
}

/// A log that reports catalog changes reports every kind of them.
pub async fn catalog_changes_are_reported(log: &dyn TopicLog) {
    let Some(mut rx) = log.watch_catalog() else {
        return; // a log written by one handle only
    };
    let topic = TopicRecord {
        id: 2,
        name: "/event/B__e".into(),
        schema_ids: vec!["s".into()],
        retention_ms: 1,
        created_ms: 1,
    };
    let t = tenant("00D000000000000");
    log.put_schema(&t, SchemaId::new("s"), "{}".into())
        .await
        .expect("schema");
    log.put_topic(topic.clone()).await.expect("topic");
    log.register_topic(TopicId(2)).await.expect("register");
    log.delete_topic(TopicId(2), "/event/B__e")
        .await
        .expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change within 10 s")
            .expect("watch open");
        seen.push(change);
    }
    assert_eq!(
        seen,
        vec![
            CatalogChange::Schema(SchemaRecord {
                tenant: Some(t),
                id: SchemaId::new("s"),
                json: "{}".into()
            }),
            CatalogChange::Topic(topic),
            CatalogChange::TopicDeleted("/event/B__e".into()),
        ]
    );
}

/// Deleting a topic removes its events and record, and its id is not reused.
pub async fn delete_topic_removes_everything(log: &dyn TopicLog) {
    let rec = TopicRecord {
        id: 5,
        name: "/event/Gone__e".into(),
        schema_ids: vec!["x".into()],
        retention_ms: 1000,
        created_ms: 5,
    };
    log.put_topic(rec).await.expect("put topic");
    fill(log, TopicId(5), 3).await;
    fill(log, TopicId(6), 2).await;
    assert_eq!(
        log.delete_topic(TopicId(5), "/event/Gone__e")
            .await
            .expect("delete"),
        3
    );
    let cat = log.load_catalog().await.expect("load");
    assert!(cat.topics.is_empty());
    assert_eq!(
        cat.next_topic_id, 6,
        "a deleted topic's id is not handed out again"
    );
    assert!(log.bounds(TopicId(5)).is_err());
    assert_eq!(log.disk_size(TopicId(5)).await.expect("size"), 0);
    // Other topics are untouched.
    let evs = log
        .read(TopicId(6), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(evs.len(), 2);
}
