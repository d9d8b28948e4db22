//! Opens the RocksDB database and declares its column families and options.
//!
//! Owns: every RocksDB option we set, the column family names, the open call.
//! Must not: know about topics, events or schemas (it hands out a handle).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

/// Column family holding event records, keyed by topic id and offset.
pub const CF_EVENTS: &str = "events";
/// Column family holding topic, schema and trim-point records.
pub const CF_META: &str = "meta";

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused to open the folder.
    #[error("could not open the RocksDB data folder {path}: {source}")]
    Open {
        /// The data folder.
        path: String,
        /// What RocksDB said.
        #[source]
        source: rocksdb::Error,
    },
    /// The data folder could not be created.
    #[error("could not create the data folder {path}: {source}")]
    CreateDir {
        /// The data folder.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// An open database shared by the log backend's reader and writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    /// Opens (creating if needed) the database under `dir`.
    ///
    /// # Errors
    /// [`StoreError`] when the folder cannot be created or RocksDB cannot open it
    /// (for example another eventbus process holds its lock).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        // Two cores on the reference machine: one flush and one compaction
        // thread keep up with the writer without starving the gRPC runtime.
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        // Write SST data to disk in 1 MiB steps instead of one large burst at
        // the end of a flush, so a flush does not stall the WAL fsyncs that
        // publishers wait on.
        db_opts.set_bytes_per_sync(1 << 20);
        // RocksDB's info LOG grows without bound by default; five files are
        // plenty for diagnosing a problem.
        db_opts.set_keep_log_file_num(5);
        // Bound the WAL so a quiet meta CF cannot pin old WAL files forever
        // while the events CF keeps writing.
        db_opts.set_max_total_wal_size(256 << 20);

        let mut events = Options::default();
        // Events are Avro records with repetitive field layouts: lz4 saves
        // disk at little CPU cost, and it is the only codec we compile in.
        events.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Larger memtables mean fewer, larger flushes for an append-only
        // workload; 64 MiB is the RocksDB default, written down on purpose
        // because the memory budget in the README counts it.
        events.set_write_buffer_size(64 << 20);
        // Retention deletes whole key ranges; compacting them away as soon as
        // possible keeps tombstones from slowing EARLIEST scans.
        events.set_level_compaction_dynamic_level_bytes(true);

        let meta = Options::default();
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_EVENTS, events),
            ColumnFamilyDescriptor::new(CF_META, meta),
        ];
        let db =
            DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|source| StoreError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The shared database handle.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }
}

/// Runs blocking storage work off the async runtime's worker threads.
///
/// # Errors
/// Returns the closure's error, or `join` mapped by the caller when the
/// blocking task panicked or was cancelled.
pub async fn run_blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await
}
