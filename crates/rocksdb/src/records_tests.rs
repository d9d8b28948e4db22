//! The RocksDB log's record store end to end: durability across a reopen
//! and the upgrade of a database made before the `records` column family
//! (the compare-and-set rules are the contract suite's).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rocksdb::DB;

use crate::Store;
use crate::log::RocksTopicLog;
use crate::store::CF_RECORDS;
use crate::types::TenantId;
use eventbus_core::log::contract::records::{records_after_reopen, records_before_reopen};
use eventbus_core::log::{Durability, EventLog, RecordStore};
use eventbus_core::metrics::Metrics;

fn open(dir: &std::path::Path) -> RocksTopicLog {
    let store = Store::open(dir).expect("temp dir opens");
    RocksTopicLog::open(
        &store,
        Durability::Sync,
        Duration::from_millis(50),
        Arc::new(Metrics::new()),
    )
    .expect("writer starts")
}

#[tokio::test]
async fn records_and_counters_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = {
        let log = open(dir.path());
        let written = records_before_reopen(&log).await;
        log.close().await.expect("close");
        written
    };
    let log = open(dir.path());
    records_after_reopen(&log, written).await;
    log.close().await.expect("close");
}

#[tokio::test]
async fn a_database_without_the_records_column_family_opens_and_gets_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        // What older versions made: the events and meta families only.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, dir.path(), ["events", "meta"]).expect("old layout");
        db.put_cf(
            db.cf_handle("meta").expect("meta"),
            b"n",
            7u32.to_be_bytes(),
        )
        .expect("an old record");
    }
    let log = open(dir.path());
    let t = TenantId::parse("00D000000000001").expect("org id");
    assert_eq!(log.next_in_sequence(&t, "seq", 1).await.expect("seq"), 1);
    let rev = log
        .put_record(&t, "k", Bytes::from_static(b"v"), 0)
        .await
        .expect("put")
        .expect("created");
    assert_eq!(rev, 1);
    log.close().await.expect("close");
    let names = DB::list_cf(&rocksdb::Options::default(), dir.path()).expect("list");
    assert!(names.iter().any(|n| n == CF_RECORDS), "{names:?}");
}
