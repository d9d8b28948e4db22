//! The record store's part of the contract ([`RecordStore`]): compare-and-set
//! of records, deletes by revision, listing, tenant isolation, counters, the
//! input rules, and (for backends that can reopen or share their storage)
//! what a second handle reads.
//!
//! Owns: one async fn per behaviour. Must not: depend on a particular
//! backend.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::tenant;
use crate::log::records::{MAX_RECORD_KEY_CHARS, MAX_RECORD_VALUE_BYTES};
use crate::log::{LogError, RecordStore, StoredRecord};
use crate::types::TenantId;

fn a() -> TenantId {
    tenant("00D000000000001")
}

fn b() -> TenantId {
    tenant("00D000000000002")
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put(log: &dyn RecordStore, t: &TenantId, key: &str, value: &str, expected: u64) -> u64 {
    log.put_record(t, key, bytes(value), expected)
        .await
        .expect("put")
        .unwrap_or_else(|| panic!("put {key} at revision {expected} refused"))
}

/// A record is created at revision 0, read back, and updated only at its
/// current revision; each write returns a larger revision.
pub async fn put_record_creates_and_updates_by_revision(log: &dyn RecordStore) {
    let t = a();
    assert_eq!(log.get_record(&t, "k").await.expect("get"), None);
    let r1 = put(log, &t, "k", "one", 0).await;
    assert!(r1 > 0);
    assert_eq!(
        log.get_record(&t, "k").await.expect("get"),
        Some(StoredRecord {
            value: bytes("one"),
            revision: r1
        })
    );
    let r2 = put(log, &t, "k", "two", r1).await;
    assert!(r2 > r1);
    let got = log.get_record(&t, "k").await.expect("get").expect("stored");
    assert_eq!((got.value, got.revision), (bytes("two"), r2));
    // An empty value is a value.
    let r3 = put(log, &t, "k", "", r2).await;
    assert_eq!(
        log.get_record(&t, "k").await.expect("get"),
        Some(StoredRecord {
            value: Bytes::new(),
            revision: r3
        })
    );
}

/// A put naming another revision than the stored one (a create of an
/// existing key, a stale or a made-up revision) stores nothing.
pub async fn put_record_with_another_revision_stores_nothing(log: &dyn RecordStore) {
    let t = a();
    assert_eq!(
        log.put_record(&t, "absent", bytes("x"), 7)
            .await
            .expect("put"),
        None,
        "an absent key has revision 0"
    );
    assert_eq!(log.get_record(&t, "absent").await.expect("get"), None);
    let r1 = put(log, &t, "k", "one", 0).await;
    assert_eq!(
        log.put_record(&t, "k", bytes("again"), 0)
            .await
            .expect("put"),
        None,
        "the key exists"
    );
    let r2 = put(log, &t, "k", "two", r1).await;
    for stale in [r1, r2 + 1000] {
        assert_eq!(
            log.put_record(&t, "k", bytes("stale"), stale)
                .await
                .expect("put"),
            None,
            "revision {stale}"
        );
    }
    let got = log.get_record(&t, "k").await.expect("get").expect("stored");
    assert_eq!((got.value, got.revision), (bytes("two"), r2));
}

/// Of many concurrent creates of one key exactly one wins, and of many
/// updates from one revision exactly one wins.
pub async fn concurrent_puts_of_one_revision_let_one_win(log: Arc<dyn RecordStore>) {
    let t = a();
    let race = |expected: u64| {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (log, t) = (log.clone(), t.clone());
                tokio::spawn(async move {
                    log.put_record(&t, "race", bytes(&format!("v{i}")), expected)
                        .await
                        .expect("put")
                        .map(|rev| (i, rev))
                })
            })
            .collect();
        async move {
            let mut won = Vec::new();
            for task in tasks {
                won.extend(task.await.expect("task"));
            }
            won
        }
    };
    let won = race(0).await;
    assert_eq!(won.len(), 1, "one create wins: {won:?}");
    let (i, rev) = won[0];
    let got = log.get_record(&t, "race").await.expect("get").expect("set");
    assert_eq!((got.value, got.revision), (bytes(&format!("v{i}")), rev));
    let won = race(rev).await;
    assert_eq!(won.len(), 1, "one update wins: {won:?}");
    assert!(won[0].1 > rev);
}

/// A delete needs the current revision; afterwards the key is absent, can
/// be created again, and its new revision is above every earlier one.
pub async fn delete_record_needs_the_current_revision(log: &dyn RecordStore) {
    let t = a();
    assert!(!log.delete_record(&t, "k", 0).await.expect("absent"));
    assert!(!log.delete_record(&t, "k", 1).await.expect("absent"));
    let r1 = put(log, &t, "k", "one", 0).await;
    let r2 = put(log, &t, "k", "two", r1).await;
    assert!(!log.delete_record(&t, "k", r1).await.expect("stale"));
    assert!(!log.delete_record(&t, "k", 0).await.expect("not absent"));
    assert!(log.get_record(&t, "k").await.expect("get").is_some());
    assert!(log.delete_record(&t, "k", r2).await.expect("delete"));
    assert_eq!(log.get_record(&t, "k").await.expect("get"), None);
    assert!(!log.delete_record(&t, "k", r2).await.expect("gone"));
    assert_eq!(
        log.put_record(&t, "k", bytes("x"), r2).await.expect("put"),
        None,
        "a deleted key has revision 0"
    );
    let r3 = put(log, &t, "k", "three", 0).await;
    assert!(r3 > r2, "revisions grow across a delete: {r3} after {r2}");
    assert!(
        log.list_records(&t, "", "", 10)
            .await
            .expect("list")
            .iter()
            .all(|(k, r)| k != "k" || r.revision == r3)
    );
}

/// Listing returns the tenant's records in key order, filtered by prefix,
/// after `after`, at most `limit`; keys made of dots and dashes included.
pub async fn list_records_by_prefix_after_and_limit(log: &dyn RecordStore) {
    let t = a();
    let keys = [
        "Account.001",
        "Account.002",
        "Account.010",
        "Account",
        "Accounts.1",
        "Contact.001",
        ".lead",
        "a..b.",
        "-",
        "_",
        "Account.",
    ];
    let mut revisions = std::collections::BTreeMap::new();
    for k in keys {
        revisions.insert(k.to_owned(), put(log, &t, k, &format!("v:{k}"), 0).await);
    }
    let list = |prefix: &'static str, after: &'static str, limit: usize| {
        let t = &t;
        async move {
            log.list_records(t, prefix, after, limit)
                .await
                .expect("list")
        }
    };
    let names = |v: Vec<(String, StoredRecord)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();

    let all = list("", "", 100).await;
    let mut sorted: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    sorted.sort();
    assert_eq!(names(all.clone()), sorted, "every record, in key order");
    for (k, r) in &all {
        assert_eq!(r.value, bytes(&format!("v:{k}")));
        assert_eq!(Some(&r.revision), revisions.get(k));
    }
    assert_eq!(
        names(list("Account.", "", 100).await),
        ["Account.", "Account.001", "Account.002", "Account.010"]
    );
    assert_eq!(
        names(list("Account", "", 100).await),
        [
            "Account",
            "Account.",
            "Account.001",
            "Account.002",
            "Account.010",
            "Accounts.1"
        ]
    );
    assert_eq!(
        names(list("Account.0", "Account.001", 100).await),
        ["Account.002", "Account.010"]
    );
    assert_eq!(
        names(list("Account.", "Account.0011", 1).await),
        ["Account.002"],
        "`after` need not be a stored key"
    );
    assert_eq!(
        names(list("Account.", "", 2).await),
        ["Account.", "Account.001"]
    );
    assert_eq!(names(list("Account.", "", 0).await), Vec::<String>::new());
    assert_eq!(names(list("Account.", "Z", 10).await), Vec::<String>::new());
    assert_eq!(names(list(".", "", 10).await), [".lead"]);
    assert_eq!(names(list("a.", "", 10).await), ["a..b."]);
    assert_eq!(names(list("Lead", "", 10).await), Vec::<String>::new());
    // Paging through everything, two at a time, sees each record once.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = log.list_records(&t, "", &after, 2).await.expect("list");
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        paged.extend(names(page));
    }
    assert_eq!(paged, sorted);
}

/// One tenant never reads, lists, replaces, deletes or counts another's
/// records and counters, even under the same keys and names.
pub async fn tenants_never_see_each_others_records(log: &dyn RecordStore) {
    let (ta, tb) = (a(), b());
    let ra = put(log, &ta, "Account.1", "a's", 0).await;
    assert_eq!(log.get_record(&tb, "Account.1").await.expect("get"), None);
    assert!(
        log.list_records(&tb, "", "", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(!log.delete_record(&tb, "Account.1", ra).await.expect("b's"));
    assert_eq!(
        log.put_record(&tb, "Account.1", bytes("b's"), ra)
            .await
            .expect("put"),
        None,
        "b has no such record"
    );
    let rb = put(log, &tb, "Account.1", "b's", 0).await;
    assert_eq!(
        log.get_record(&ta, "Account.1")
            .await
            .expect("get")
            .map(|r| (r.value, r.revision)),
        Some((bytes("a's"), ra))
    );
    assert_eq!(
        log.list_records(&tb, "", "", 10).await.expect("list"),
        vec![(
            "Account.1".to_owned(),
            StoredRecord {
                value: bytes("b's"),
                revision: rb
            }
        )]
    );
    assert_eq!(log.next_in_sequence(&ta, "001", 1).await.expect("seq"), 1);
    assert_eq!(log.next_in_sequence(&ta, "001", 1).await.expect("seq"), 2);
    assert_eq!(log.next_in_sequence(&tb, "001", 1).await.expect("seq"), 1);
    // Counters and records are separate namespaces.
    assert_eq!(log.get_record(&ta, "001").await.expect("get"), None);
    assert_eq!(
        log.list_records(&ta, "", "", 10).await.expect("list").len(),
        1
    );
}

/// A counter starts at 0, grows by `n` per call, and counters of one
/// tenant are independent of each other.
pub async fn sequences_start_at_zero_and_grow_by_n(log: &dyn RecordStore) {
    let t = a();
    assert_eq!(
        log.next_in_sequence(&t, "ids.001", 1).await.expect("seq"),
        1
    );
    assert_eq!(
        log.next_in_sequence(&t, "ids.001", 1).await.expect("seq"),
        2
    );
    assert_eq!(
        log.next_in_sequence(&t, "ids.001", 100).await.expect("seq"),
        102
    );
    assert_eq!(
        log.next_in_sequence(&t, "ids.003", 5).await.expect("seq"),
        5
    );
    assert_eq!(log.next_in_sequence(&t, "commit", 1).await.expect("seq"), 1);
    assert_eq!(
        log.next_in_sequence(&t, "ids.001", 1).await.expect("seq"),
        103
    );
}

/// 8 tasks taking 50 values each get 400 different values, 1..=400, and
/// each task's values increase.
pub async fn concurrent_sequence_calls_get_unique_values(log: Arc<dyn RecordStore>) {
    let t = a();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (log, t) = (log.clone(), t.clone());
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(50);
                for _ in 0..50 {
                    got.push(log.next_in_sequence(&t, "seq", 1).await.expect("seq"));
                }
                got
            })
        })
        .collect();
    let mut all = HashSet::new();
    for task in tasks {
        let got = task.await.expect("task");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "monotonic: {got:?}");
        for v in got {
            assert!(all.insert(v), "{v} handed out twice");
        }
    }
    assert_eq!(all, (1..=400).collect::<HashSet<u64>>());
    assert_eq!(log.next_in_sequence(&t, "seq", 1).await.expect("seq"), 401);
}

fn invalid(r: Result<impl std::fmt::Debug, LogError>) -> bool {
    matches!(r, Err(LogError::InvalidRecord(_)))
}

/// Keys, names, prefixes and tenants outside the rules, a step of 0 and a
/// value above the limit are refused, and nothing is stored; the largest
/// key is fine.
pub async fn invalid_inputs_are_refused(log: &dyn RecordStore) {
    let t = a();
    let too_long = "k".repeat(MAX_RECORD_KEY_CHARS + 1);
    for key in [
        "",
        "a b",
        "a/b",
        "a*",
        "a>",
        "ü",
        "a\u{0}",
        too_long.as_str(),
    ] {
        assert!(
            invalid(log.put_record(&t, key, bytes("x"), 0).await),
            "put {key:?}"
        );
        assert!(invalid(log.get_record(&t, key).await), "get {key:?}");
        assert!(
            invalid(log.delete_record(&t, key, 1).await),
            "delete {key:?}"
        );
        assert!(
            invalid(log.next_in_sequence(&t, key, 1).await),
            "sequence {key:?}"
        );
        if !key.is_empty() {
            assert!(
                invalid(log.list_records(&t, key, "", 10).await),
                "prefix {key:?}"
            );
        }
    }
    assert!(invalid(log.next_in_sequence(&t, "seq", 0).await));
    let odd = TenantId::from_stored("not an org");
    assert!(invalid(log.get_record(&odd, "k").await));
    assert!(invalid(log.list_records(&odd, "", "", 1).await));
    assert!(invalid(log.next_in_sequence(&odd, "seq", 1).await));
    let big = Bytes::from(vec![7u8; MAX_RECORD_VALUE_BYTES + 1]);
    assert!(matches!(
        log.put_record(&t, "big", big, 0).await,
        Err(LogError::TooLarge(_))
    ));
    assert!(
        log.list_records(&t, "", "", 10)
            .await
            .expect("list")
            .is_empty(),
        "nothing was stored"
    );
    let longest = "k".repeat(MAX_RECORD_KEY_CHARS);
    put(log, &t, &longest, "fits", 0).await;
    assert_eq!(log.next_in_sequence(&t, &longest, 1).await.expect("seq"), 1);
    // A value of a size real records reach (every backend's default
    // message limits take it; 1 MiB needs a NATS `max_payload` above it).
    let value = Bytes::from((0..=255u8).cycle().take(256 * 1024).collect::<Vec<u8>>());
    let rev = log
        .put_record(&t, "large", value.clone(), 0)
        .await
        .expect("put")
        .expect("created");
    assert_eq!(
        log.get_record(&t, "large").await.expect("get"),
        Some(StoredRecord {
            value,
            revision: rev
        })
    );
}

/// What [`records_before_reopen`] wrote, for [`records_after_reopen`].
#[derive(Clone, Debug)]
pub struct Written {
    revision: u64,
    deleted_revision: u64,
}

/// Writes records and counters for a check through another handle on the
/// same storage (the same folder reopened, or another process on a shared
/// log): see [`records_after_reopen`].
pub async fn records_before_reopen(log: &dyn RecordStore) -> Written {
    let t = a();
    let r1 = put(log, &t, "kept", "first", 0).await;
    let revision = put(log, &t, "kept", "second", r1).await;
    let deleted_revision = put(log, &t, "gone", "x", 0).await;
    assert!(
        log.delete_record(&t, "gone", deleted_revision)
            .await
            .expect("delete")
    );
    assert_eq!(log.next_in_sequence(&t, "seq", 5).await.expect("seq"), 5);
    Written {
        revision,
        deleted_revision,
    }
}

/// Through another handle: the records, deletes and counters of
/// [`records_before_reopen`] are there, counters go on from where they
/// were and new revisions are above the old ones.
pub async fn records_after_reopen(log: &dyn RecordStore, written: Written) {
    let t = a();
    assert_eq!(
        log.get_record(&t, "kept").await.expect("get"),
        Some(StoredRecord {
            value: bytes("second"),
            revision: written.revision
        })
    );
    assert_eq!(log.get_record(&t, "gone").await.expect("get"), None);
    assert_eq!(log.next_in_sequence(&t, "seq", 1).await.expect("seq"), 6);
    let new = put(log, &t, "gone", "again", 0).await;
    assert!(new > written.deleted_revision && new > written.revision);
    let updated = put(log, &t, "kept", "third", written.revision).await;
    assert!(updated > new);
}
