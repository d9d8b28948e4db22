//! The RocksDB backend's [`RecordStore`]: per-tenant records and counters
//! in the `records` column family.
//!
//! Owns: the stored value layout of a record (`revision:u64 BE | value`)
//! and of a counter (`u64 BE`), the store-wide revision sequence, and the
//! compare-and-set of records and counters. Must not: configure RocksDB
//! (that is `store`) or lay out keys (that is `keys`).
//!
//! One process opens the database (RocksDB's LOCK file), so compare-and-set
//! only has to hold within it: one lock ([`RocksRecords`]) serialises every
//! read-modify-write of the column family, taken on the blocking thread
//! that does the write, never across an `.await`. Writes are fsynced like
//! the catalog's, whatever the event durability: a record or counter value
//! handed out must survive a crash, or a counter could hand a value out
//! twice. Revisions come from one sequence for all keys, stored with every
//! record write (`keys::RECORD_REVISION_KEY`), so a key deleted and created
//! again gets a revision above its old ones.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rocksdb::{DB, WriteBatch};

use crate::io::{cf, joined, storage, synced, write_failed};
use crate::keys;
use crate::store::CF_RECORDS;
use crate::types::TenantId;
#[cfg(doc)]
use eventbus_core::log::RecordStore;
use eventbus_core::log::records::{
    check_prefix, check_record, check_sequence, check_tenant, check_value,
};
use eventbus_core::log::{LogError, StoredRecord};

/// The record store's state: the lock of its writes and the last revision
/// handed out (`None` until read from storage on the first write).
#[derive(Clone, Default)]
pub(crate) struct RocksRecords {
    writes: Arc<Mutex<Option<u64>>>,
}

impl RocksRecords {
    fn lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn decode_record(v: &[u8]) -> Result<StoredRecord, LogError> {
    let (revision, value) = v
        .split_first_chunk::<8>()
        .ok_or_else(|| LogError::Corrupt("a record is shorter than its revision".into()))?;
    Ok(StoredRecord {
        value: Bytes::copy_from_slice(value),
        revision: u64::from_be_bytes(*revision),
    })
}

fn encode_record(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&revision.to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn decode_u64(v: &[u8], what: &str) -> Result<u64, LogError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| LogError::Corrupt(format!("{what} is not 8 bytes").into()))
}

/// The revision stored under `key`, 0 when there is no record.
fn stored_revision(db: &DB, key: &[u8]) -> Result<u64, LogError> {
    let records = cf(db, CF_RECORDS)?;
    match db.get_pinned_cf(&records, key).map_err(storage)? {
        Some(v) => Ok(decode_record(&v)?.revision),
        None => Ok(0),
    }
}

/// Takes the next revision: one above the last handed out, read from
/// storage the first time. Moves the sequence on before the write, so a
/// failed write (whose fate RocksDB may not know) never lets a revision be
/// handed out twice.
fn next_revision(db: &DB, last: &mut Option<u64>) -> Result<u64, LogError> {
    let current = match *last {
        Some(r) => r,
        None => {
            let records = cf(db, CF_RECORDS)?;
            match db
                .get_cf(&records, keys::RECORD_REVISION_KEY)
                .map_err(storage)?
            {
                Some(v) => decode_u64(&v, "the last record revision")?,
                None => 0,
            }
        }
    };
    let next = current
        .checked_add(1)
        .ok_or_else(|| LogError::Corrupt("record revisions exhausted".into()))?;
    *last = Some(next);
    Ok(next)
}

/// The [`RecordStore`] calls on the database `db` (the log forwards its
/// trait methods here).
impl RocksRecords {
    pub(crate) async fn get_record(
        &self,
        db: &Arc<DB>,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError> {
        check_record(tenant, key)?;
        let db = db.clone();
        let k = keys::record_key(tenant, key);
        joined(
            tokio::task::spawn_blocking(move || {
                let records = cf(&db, CF_RECORDS)?;
                db.get_pinned_cf(&records, &k)
                    .map_err(storage)?
                    .map(|v| decode_record(&v))
                    .transpose()
            })
            .await,
        )
    }

    pub(crate) async fn put_record(
        &self,
        db: &Arc<DB>,
        tenant: &TenantId,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        check_record(tenant, key)?;
        check_value(&value)?;
        let (db, state) = (db.clone(), self.clone());
        let k = keys::record_key(tenant, key);
        joined(
            tokio::task::spawn_blocking(move || {
                let mut last = state.lock();
                if stored_revision(&db, &k)? != expected {
                    return Ok(None);
                }
                let revision = next_revision(&db, &mut last)?;
                let records = cf(&db, CF_RECORDS)?;
                let mut batch = WriteBatch::default();
                batch.put_cf(&records, &k, encode_record(revision, &value));
                batch.put_cf(&records, keys::RECORD_REVISION_KEY, revision.to_be_bytes());
                db.write_opt(batch, &synced()).map_err(write_failed)?;
                Ok(Some(revision))
            })
            .await,
        )
    }

    pub(crate) async fn delete_record(
        &self,
        db: &Arc<DB>,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError> {
        check_record(tenant, key)?;
        let (db, state) = (db.clone(), self.clone());
        let k = keys::record_key(tenant, key);
        joined(
            tokio::task::spawn_blocking(move || {
                let _one = state.lock();
                let current = stored_revision(&db, &k)?;
                if current == 0 || current != expected {
                    return Ok(false);
                }
                let records = cf(&db, CF_RECORDS)?;
                db.delete_cf_opt(&records, &k, &synced())
                    .map_err(write_failed)?;
                Ok(true)
            })
            .await,
        )
    }

    pub(crate) async fn list_records(
        &self,
        db: &Arc<DB>,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError> {
        check_tenant(tenant)?;
        check_prefix(prefix)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let db = db.clone();
        let scope = keys::record_key(tenant, "");
        let range = keys::record_key(tenant, prefix);
        let after = keys::record_key(tenant, after);
        joined(
            tokio::task::spawn_blocking(move || {
                let records = cf(&db, CF_RECORDS)?;
                let mut it = db.raw_iterator_cf(&records);
                // The tenant's keys with the prefix are one range in key
                // order; start at its beginning or just after `after`,
                // whichever is later.
                it.seek(range.as_slice().max(after.as_slice()));
                let mut out = Vec::new();
                while it.valid() && out.len() < limit {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    if !k.starts_with(&range) {
                        break;
                    }
                    if k != after.as_slice() {
                        let name = std::str::from_utf8(&k[scope.len()..])
                            .map_err(|e| LogError::corrupt_in("a record key", e))?;
                        out.push((name.to_owned(), decode_record(v)?));
                    }
                    it.next();
                }
                it.status().map_err(storage)?;
                Ok(out)
            })
            .await,
        )
    }

    pub(crate) async fn next_in_sequence(
        &self,
        db: &Arc<DB>,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError> {
        check_sequence(tenant, name, n)?;
        let (db, state) = (db.clone(), self.clone());
        let k = keys::counter_key(tenant, name);
        let name = name.to_owned();
        joined(
            tokio::task::spawn_blocking(move || {
                let _one = state.lock();
                let records = cf(&db, CF_RECORDS)?;
                let current = match db.get_pinned_cf(&records, &k).map_err(storage)? {
                    Some(v) => decode_u64(&v, &format!("counter {name}"))?,
                    None => 0,
                };
                let next = current.checked_add(n).ok_or_else(|| {
                    LogError::InvalidRecord(format!("counter {name} would overflow"))
                })?;
                db.put_cf_opt(&records, &k, next.to_be_bytes(), &synced())
                    .map_err(write_failed)?;
                Ok(next)
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_value_round_trips_and_a_short_one_is_corrupt() {
        let v = encode_record(42, b"value");
        assert_eq!(
            decode_record(&v).expect("decodes"),
            StoredRecord {
                value: Bytes::from_static(b"value"),
                revision: 42
            }
        );
        assert!(matches!(decode_record(&v[..7]), Err(LogError::Corrupt(_))));
        assert_eq!(
            decode_record(&encode_record(1, b""))
                .expect("decodes")
                .value,
            Bytes::new()
        );
    }
}
