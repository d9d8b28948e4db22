//! Behaviour every [`TopicLog`] backend must show, as reusable async checks.
//!
//! Owns: one async fn per behaviour and the `contract_tests!` macro that
//! turns them into `#[tokio::test]`s for a backend. Must not: depend on a
//! particular backend.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{
    CatalogChange, CommitRecord, EpochMillis, LeaseHolder, LeaseKey, ManagedRecord, NewEvent,
    SchemaRecord, TopicLog, TopicRecord,
};
use crate::types::{
    EventId, ManagedId, ManagedReplay, ManagedState, Offset, SchemaId, TenantId, TopicId,
};

/// A tenant of the schema checks.
pub fn tenant(org15: &str) -> TenantId {
    TenantId::parse(org15).expect("a 15-character org id")
}

/// A small event whose payload encodes `n`.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        id: EventId::new(format!("ev-{n}")),
        schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
        payload: Bytes::from(n.to_be_bytes().to_vec()),
        headers: Vec::new(),
    }
}

/// Registers `topic` and appends `n` events one call each; returns offsets.
pub async fn fill(log: &dyn TopicLog, topic: TopicId, n: u64) -> Vec<Offset> {
    log.register_topic(topic).await.expect("register");
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(log.append(topic, vec![event(i)]).await.expect("append"));
    }
    out
}

/// Offsets start at 1 and grow by one per event, across calls.
pub async fn offsets_start_at_one_and_are_dense(log: &dyn TopicLog) {
    log.register_topic(TopicId(7)).await.expect("register");
    let a = log
        .append(TopicId(7), vec![event(1), event(2)])
        .await
        .expect("append");
    let b = log
        .append(TopicId(7), vec![event(3)])
        .await
        .expect("append");
    assert_eq!(a, vec![Offset(1), Offset(2)]);
    assert_eq!(b, vec![Offset(3)]);
    let bounds = log.bounds(TopicId(7)).expect("bounds");
    assert_eq!(bounds.latest, Offset(3));
    assert_eq!(bounds.trimmed, Offset(0));
}

/// Topics have independent offsets.
pub async fn topics_are_independent(log: &dyn TopicLog) {
    fill(log, TopicId(1), 3).await;
    let b = fill(log, TopicId(2), 2).await;
    assert_eq!(b, vec![Offset(1), Offset(2)]);
    let evs = log
        .read(TopicId(2), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(evs.len(), 2);
}

/// Reads return events after the given offset, in order, with their bytes.
pub async fn read_returns_events_after_offset_in_order(log: &dyn TopicLog) {
    fill(log, TopicId(1), 10).await;
    let evs = log
        .read(TopicId(1), Offset(4), 100, usize::MAX)
        .await
        .expect("read");
    let offs: Vec<u64> = evs.iter().map(|e| e.offset.0).collect();
    assert_eq!(offs, (5..=10).collect::<Vec<_>>());
    assert_eq!(evs[0].event, event(4));
    assert!(
        log.read(TopicId(1), Offset(10), 100, usize::MAX)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Reads stop at the event and byte limits but return at least one event.
pub async fn read_respects_limits(log: &dyn TopicLog) {
    fill(log, TopicId(1), 10).await;
    let evs = log
        .read(TopicId(1), Offset(0), 3, usize::MAX)
        .await
        .expect("read");
    assert_eq!(evs.len(), 3);
    let evs = log.read(TopicId(1), Offset(0), 100, 1).await.expect("read");
    assert_eq!(
        evs.len(),
        1,
        "one event even when it exceeds the byte budget"
    );
}

/// The tail watch moves after an append commits.
pub async fn watch_tail_wakes_on_append(log: Arc<dyn TopicLog>) {
    log.register_topic(TopicId(9)).await.expect("register");
    let mut rx = log.watch_tail(TopicId(9)).expect("watch");
    assert_eq!(*rx.borrow_and_update(), Offset(0));
    let writer = log.clone();
    let task = tokio::spawn(async move { writer.append(TopicId(9), vec![event(0)]).await });
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("tail moved within 10 s")
        .expect("sender alive");
    assert_eq!(*rx.borrow(), Offset(1));
    task.await.expect("join").expect("append");
}

/// Concurrent appenders get unique, dense offsets, each call contiguous.
pub async fn concurrent_appends_get_unique_dense_offsets(log: Arc<dyn TopicLog>) {
    log.register_topic(TopicId(4)).await.expect("register");
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..25u64 {
                let offs = log
                    .append(TopicId(4), vec![event(w * 1000 + i), event(w * 1000 + i)])
                    .await
                    .expect("append");
                assert_eq!(
                    offs[1].0,
                    offs[0].0 + 1,
                    "one call's offsets are contiguous"
                );
                mine.extend(offs);
            }
            mine
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for o in t.await.expect("join") {
            assert!(all.insert(o), "offset {o:?} assigned twice");
        }
    }
    assert_eq!(all.len(), 400);
    assert!((1..=400).all(|o| all.contains(&Offset(o))), "no gaps");
}

/// Trimming deletes old events, keeps offsets, and moves the trim point.
pub async fn trim_deletes_old_events_only(log: &dyn TopicLog) {
    fill(log, TopicId(1), 4).await;
    assert_eq!(
        log.trim_older_than(TopicId(1), EpochMillis(0))
            .await
            .expect("trim"),
        0
    );
    let n = log
        .trim_older_than(TopicId(1), EpochMillis(u64::MAX))
        .await
        .expect("trim");
    assert_eq!(n, 4);
    let b = log.bounds(TopicId(1)).expect("bounds");
    assert_eq!((b.trimmed, b.latest), (Offset(4), Offset(4)));
    assert!(
        log.read(TopicId(1), Offset(0), 10, usize::MAX)
            .await
            .expect("read")
            .is_empty()
    );
    let next = log
        .append(TopicId(1), vec![event(9)])
        .await
        .expect("append");
    assert_eq!(next, vec![Offset(5)], "offsets are never reused");
}

/// Catalog records round-trip.
pub async fn catalog_round_trips(log: &dyn TopicLog) {
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

/// A managed-subscription record of the default tenant, developer name
/// `Sub_<id>`, with a commit at `commit` when given.
pub fn managed_record(id: &str, commit: Option<u64>) -> ManagedRecord {
    ManagedRecord {
        id: id.to_owned(),
        tenant: "00D000000000000EAA".into(),
        developer_name: format!("Sub_{id}"),
        topic: "/event/A__e".into(),
        default_replay: ManagedReplay::Earliest,
        error_recovery_replay: ManagedReplay::Latest,
        state: ManagedState::Run,
        created_ms: 1,
        updated_ms: 2,
        commit: commit.map(|offset| CommitRecord {
            topic_id: 3,
            offset,
            time_ms: 4,
        }),
    }
}

/// A managed-subscription id as the checks name them (any text).
pub fn managed_id(id: &str) -> ManagedId {
    ManagedId::from_stored(id.to_owned())
}

/// Managed-subscription records are stored, replaced (a commit) and
/// deleted by id.
pub async fn managed_records_round_trip(log: &dyn TopicLog) {
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
pub async fn create_managed_takes_a_name_once_per_tenant(log: &dyn TopicLog) {
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
pub async fn put_commit_changes_only_the_commit(log: &dyn TopicLog) {
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

/// Creating a topic whose name exists stores nothing.
pub async fn create_topic_refuses_an_existing_name(log: &dyn TopicLog) {
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
pub async fn allocated_topic_ids_are_fresh(log: &dyn TopicLog) {
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
pub async fn schema_texts_are_kept_per_tenant(log: &dyn TopicLog) {
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

/// A lease keeps other holders out until it is released or expires.
pub async fn leases_exclude_other_holders(log: &dyn TopicLog) {
    let long = Duration::from_secs(60);
    let (k, a, b) = (
        LeaseKey::new("k"),
        LeaseHolder::new("a"),
        LeaseHolder::new("b"),
    );
    assert!(log.acquire_lease(&k, &a, long).await.expect("acquire"));
    assert!(
        log.acquire_lease(&k, &a, long)
            .await
            .expect("again by the holder")
    );
    assert!(!log.acquire_lease(&k, &b, long).await.expect("refused"));
    assert!(log.renew_lease(&k, &a, long).await.expect("renew"));
    assert!(!log.renew_lease(&k, &b, long).await.expect("not b's"));
    log.release_lease(&k, &b).await.expect("not b's to release");
    assert!(!log.acquire_lease(&k, &b, long).await.expect("still a's"));
    log.release_lease(&k, &a).await.expect("release");
    assert!(
        log.acquire_lease(&k, &b, Duration::from_millis(1))
            .await
            .expect("free")
    );
    // An expired lease goes to whoever asks, and its old holder has lost it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(log.acquire_lease(&k, &a, long).await.expect("taken over"));
    assert!(!log.renew_lease(&k, &b, long).await.expect("lost"));
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

/// Appends to an unregistered topic fail instead of inventing offsets.
pub async fn unknown_topic_is_an_error(log: &dyn TopicLog) {
    assert!(log.append(TopicId(999), vec![event(0)]).await.is_err());
    assert!(log.bounds(TopicId(999)).is_err());
}

/// After close, appends fail.
pub async fn close_refuses_appends(log: &dyn TopicLog) {
    log.register_topic(TopicId(1)).await.expect("register");
    log.close().await.expect("close");
    assert!(log.append(TopicId(1), vec![event(0)]).await.is_err());
}

/// Expands to one `#[tokio::test]` per contract behaviour. The argument is a
/// block returning `(log, guard)`; the guard (for example a temp dir) lives
/// as long as the test.
#[macro_export]
macro_rules! contract_tests {
    ($make:block) => {
        mod contract_suite {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;
            use std::sync::Arc;
            use $crate::log::TopicLog;

            fn make() -> (Arc<dyn TopicLog>, impl Sized) {
                let (log, guard) = $make;
                (Arc::new(log) as Arc<dyn TopicLog>, guard)
            }

            #[tokio::test]
            async fn offsets_start_at_one_and_are_dense() {
                let (log, _g) = make();
                $crate::log::contract::offsets_start_at_one_and_are_dense(&*log).await;
            }
            #[tokio::test]
            async fn topics_are_independent() {
                let (log, _g) = make();
                $crate::log::contract::topics_are_independent(&*log).await;
            }
            #[tokio::test]
            async fn read_returns_events_after_offset_in_order() {
                let (log, _g) = make();
                $crate::log::contract::read_returns_events_after_offset_in_order(&*log).await;
            }
            #[tokio::test]
            async fn read_respects_limits() {
                let (log, _g) = make();
                $crate::log::contract::read_respects_limits(&*log).await;
            }
            #[tokio::test]
            async fn watch_tail_wakes_on_append() {
                let (log, _g) = make();
                $crate::log::contract::watch_tail_wakes_on_append(log).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_appends_get_unique_dense_offsets() {
                let (log, _g) = make();
                $crate::log::contract::concurrent_appends_get_unique_dense_offsets(log).await;
            }
            #[tokio::test]
            async fn trim_deletes_old_events_only() {
                let (log, _g) = make();
                $crate::log::contract::trim_deletes_old_events_only(&*log).await;
            }
            #[tokio::test]
            async fn catalog_round_trips() {
                let (log, _g) = make();
                $crate::log::contract::catalog_round_trips(&*log).await;
            }
            #[tokio::test]
            async fn managed_records_round_trip() {
                let (log, _g) = make();
                $crate::log::contract::managed_records_round_trip(&*log).await;
            }
            #[tokio::test]
            async fn create_managed_takes_a_name_once_per_tenant() {
                let (log, _g) = make();
                $crate::log::contract::create_managed_takes_a_name_once_per_tenant(&*log).await;
            }
            #[tokio::test]
            async fn put_commit_changes_only_the_commit() {
                let (log, _g) = make();
                $crate::log::contract::put_commit_changes_only_the_commit(&*log).await;
            }
            #[tokio::test]
            async fn create_topic_refuses_an_existing_name() {
                let (log, _g) = make();
                $crate::log::contract::create_topic_refuses_an_existing_name(&*log).await;
            }
            #[tokio::test]
            async fn allocated_topic_ids_are_fresh() {
                let (log, _g) = make();
                $crate::log::contract::allocated_topic_ids_are_fresh(&*log).await;
            }
            #[tokio::test]
            async fn schema_texts_are_kept_per_tenant() {
                let (log, _g) = make();
                $crate::log::contract::schema_texts_are_kept_per_tenant(&*log).await;
            }
            #[tokio::test]
            async fn leases_exclude_other_holders() {
                let (log, _g) = make();
                $crate::log::contract::leases_exclude_other_holders(&*log).await;
            }
            #[tokio::test]
            async fn catalog_changes_are_reported() {
                let (log, _g) = make();
                $crate::log::contract::catalog_changes_are_reported(&*log).await;
            }
            #[tokio::test]
            async fn delete_topic_removes_everything() {
                let (log, _g) = make();
                $crate::log::contract::delete_topic_removes_everything(&*log).await;
            }
            #[tokio::test]
            async fn unknown_topic_is_an_error() {
                let (log, _g) = make();
                $crate::log::contract::unknown_topic_is_an_error(&*log).await;
            }
            #[tokio::test]
            async fn close_refuses_appends() {
                let (log, _g) = make();
                $crate::log::contract::close_refuses_appends(&*log).await;
            }
        }
    };
}
pub use crate::contract_tests;
