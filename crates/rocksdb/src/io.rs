//! Small helpers every file of the backend that talks to RocksDB shares:
//! errors of storage and of blocking tasks, column family handles, and the
//! fsynced write options of catalog-like writes.
//!
//! Owns: those helpers. Must not: know topics, records or keys.

use eventbus_core::log::{BoxError, LogError};
use rocksdb::{DB, WriteOptions};

use crate::store::is_no_space;

pub(crate) fn storage(e: impl Into<BoxError>) -> LogError {
    LogError::Storage(e.into())
}

/// A failed RocksDB write: [`LogError::StorageFull`] when the disk is full
/// (so admin calls report it as such), [`LogError::Storage`] otherwise.
pub(crate) fn write_failed(e: rocksdb::Error) -> LogError {
    if is_no_space(&e) {
        LogError::StorageFull(e.into())
    } else {
        storage(e)
    }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, LogError> {
    db.cf_handle(name)
        .ok_or_else(|| storage(format!("column family {name} missing")))
}

/// Write options for catalog and trim records: always fsynced, whatever the
/// event durability, because losing them would lose topics or reuse offsets.
pub(crate) fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

pub(crate) fn joined<T>(
    r: Result<Result<T, LogError>, tokio::task::JoinError>,
) -> Result<T, LogError> {
    r.map_err(|e| LogError::storage_in("storage task failed", e))?
}
