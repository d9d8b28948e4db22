//! Opens the RocksDB database and declares its column families and options.
//!
//! Owns: every RocksDB option we set, the column family names, the open call.
//! Must not: know about topics, events or schemas (it hands out a handle).
//!
//! Storage faults: opening refuses a damaged folder with a message that says
//! what is wrong and what to do ([`StoreError`]), and never drops WAL records
//! unless the operator chose [`WalRecovery::PointInTime`]. A full disk at run
//! time is RocksDB's to recover from: a failed WAL write stops writes, and its
//! SstFileManager retries every 5 s until one memtable's worth of space (the
//! events write buffer, 64 MiB) is free, then flushes and accepts writes
//! again; [`is_no_space`] lets the log report the condition as such.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, DBRecoveryMode, ErrorKind, Options};

/// What opening the store does when its write-ahead log is damaged (the
/// store's own setting; the server's command line parses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum WalRecovery {
    /// Replay every intact record. A torn last record is dropped: it can only
    /// hold a write that was never acknowledged, because with `sync`
    /// durability an append is acknowledged only after its WAL record is
    /// fsynced. Damage anywhere before the end stops startup with a message
    /// naming the folder and what to do.
    #[default]
    TolerateTail,
    /// Replay up to the first damaged record and drop everything after it,
    /// with a warning in the log. Only for an operator who accepts losing
    /// the events written after the damage.
    PointInTime,
}

/// Column family holding event records, keyed by topic id and offset.
pub const CF_EVENTS: &str = "events";
/// Column family holding topic, schema and trim-point records.
pub const CF_META: &str = "meta";
/// Column family holding the per-tenant records and counters of the record
/// store (added after the first release: opening creates it in an older
/// database, see `create_missing_column_families`).
pub const CF_RECORDS: &str = "records";

/// Errors opening the store. Each message names the folder, says what is
/// wrong and what the operator can do; none of them changed the folder.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused to open the folder for a reason other than damage
    /// (lock held, permissions, I/O error, full disk).
    // The cause is part of the message, not a `source`, so the one-line
    // startup error does not print it twice.
    #[error("could not open the data folder {path}: {cause}. {hint}")]
    Open {
        /// The data folder.
        path: String,
        /// What RocksDB said.
        cause: rocksdb::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The data folder could not be created.
    #[error(
        "could not create the data folder {path}: {cause}. Point --data-dir \
         (EVENTBUS_DATA_DIR) at a folder eventbus may create and write, or move \
         away what is in the way."
    )]
    CreateDir {
        /// The data folder.
        path: String,
        /// The IO error.
        cause: std::io::Error,
    },
    /// The write-ahead log is damaged before its last record, inside records
    /// that may have been acknowledged.
    #[error(
        "the write-ahead log in the data folder {path} is damaged before its end \
         ({detail}), so events acknowledged after the damage cannot be replayed. \
         eventbus did not start and changed nothing. Either restore the folder \
         from a backup, or start once with --wal-recovery point-in-time \
         (EVENTBUS_WAL_RECOVERY=point-in-time) to keep every event before the \
         damage and drop the events after it."
    )]
    WalDamaged {
        /// The data folder.
        path: String,
        /// What RocksDB found.
        detail: String,
    },
    /// A file other than the write-ahead log (CURRENT, MANIFEST, a table
    /// file) is damaged or missing.
    #[error(
        "the data folder {path} is damaged ({detail}). eventbus did not start \
         and changed nothing. Restore the folder from a backup; or, to start \
         empty, move the folder away (keep it for investigation)."
    )]
    Damaged {
        /// The data folder.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// An open database shared by the log backend's reader and writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    /// Opens (creating if needed) the database under `dir`, tolerating only
    /// a torn last WAL record ([`WalRecovery::TolerateTail`]).
    ///
    /// # Errors
    /// As [`Store::open_with`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, WalRecovery::default())
    }

    /// Opens (creating if needed) the database under `dir`; `wal_recovery`
    /// decides what happens when the write-ahead log is damaged.
    ///
    /// The first attempt always tolerates only a torn tail. When RocksDB
    /// reports corruption, a read-only probe in point-in-time mode tells WAL
    /// damage (the probe opens) from damage elsewhere (it does not); with
    /// [`WalRecovery::PointInTime`] WAL damage is then recovered up to the
    /// first bad record, with a warning in the log. A failed open changes no
    /// data file (RocksDB only rotates its own `LOG` text files).
    ///
    /// # Errors
    /// [`StoreError`] when the folder cannot be created, RocksDB cannot open
    /// it (for example another eventbus process holds its lock), or it is
    /// damaged; each message says what to do.
    pub fn open_with(dir: &Path, wal_recovery: WalRecovery) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|cause| StoreError::CreateDir {
            path: path.clone(),
            cause,
        })?;
        refuse_orphaned_files(dir)?;
        let first = match open_db(dir, DBRecoveryMode::TolerateCorruptedTailRecords, false) {
            Ok(db) => return Ok(Self { db: Arc::new(db) }),
            Err(e) if e.kind() == ErrorKind::Corruption => e,
            Err(cause) => {
                return Err(StoreError::Open {
                    hint: open_hint(&cause),
                    path,
                    cause,
                });
            }
        };
        let detail = first.to_string();
        // Only the WAL replay differs between the two modes, so a store that
        // opens in point-in-time mode has its damage in the WAL. Read-only:
        // the probe replays into memory and writes no data file.
        let wal_only = open_db(dir, DBRecoveryMode::PointInTime, true).is_ok();
        match (wal_only, wal_recovery) {
            (false, _) => Err(StoreError::Damaged { path, detail }),
            (true, WalRecovery::TolerateTail) => Err(StoreError::WalDamaged { path, detail }),
            (true, WalRecovery::PointInTime) => {
                match open_db(dir, DBRecoveryMode::PointInTime, false) {
                    Ok(db) => {
                        tracing::warn!(
                            data_dir = %path,
                            damage = %detail,
                            "the write-ahead log was damaged: recovered to a point in time \
                             (wal_recovery = point-in-time); events written after the damage \
                             were dropped. Remove the setting once this start succeeded."
                        );
                        Ok(Self { db: Arc::new(db) })
                    }
                    Err(e) => Err(StoreError::Damaged {
                        path,
                        detail: e.to_string(),
                    }),
                }
            }
        }
    }

    /// The shared database handle.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }
}

/// Whether a RocksDB error means the disk (or RocksDB's space limit) is
/// full. RocksDB keeps the subcode only in the message text
/// (`IO error: No space left on device: ...`).
pub fn is_no_space(e: &rocksdb::Error) -> bool {
    let text = e.as_ref();
    e.kind() == ErrorKind::IOError
        && (text.contains("No space left on device") || text.contains("Space limit reached"))
}

/// What to do about an open failure that is not damage.
fn open_hint(e: &rocksdb::Error) -> &'static str {
    let text = e.as_ref();
    if text.contains("LOCK") || text.contains("lock") {
        "Another process, probably another eventbus, is using this folder: stop it or choose another --data-dir."
    } else if is_no_space(e) {
        "The disk is full: free space on it and start again."
    } else if text.contains("Permission denied") {
        "eventbus may not read or write it: fix the owner or permissions of the folder and its files."
    } else {
        "Check that eventbus can read and write the folder and its files and that the disk is healthy (the system log shows I/O errors); if a file is damaged, restore the folder from a backup."
    }
}

/// Refuses a folder that holds RocksDB data files but no `CURRENT` file:
/// with `create_if_missing`, RocksDB would take it for an empty folder,
/// create a new database and delete the old files as obsolete.
fn refuse_orphaned_files(dir: &Path) -> Result<(), StoreError> {
    if dir.join("CURRENT").exists() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|cause| StoreError::CreateDir {
        path: dir.display().to_string(),
        cause,
    })?;
    let orphan = entries.filter_map(Result::ok).find_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        (name.starts_with("MANIFEST-") || name.ends_with(".sst")).then_some(name)
    });
    match orphan {
        Some(name) => Err(StoreError::Damaged {
            path: dir.display().to_string(),
            detail: format!("it holds RocksDB data ({name}) but its CURRENT file is missing"),
        }),
        None => Ok(()),
    }
}

/// Opens the database with every option we set and the given WAL recovery
/// mode (`read_only` for the damage probe).
fn open_db(dir: &Path, recovery: DBRecoveryMode, read_only: bool) -> Result<DB, rocksdb::Error> {
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
    // RocksDB's default (point-in-time) stops replay at the first damaged
    // WAL record and silently drops every record after it, acknowledged
    // or not. Tolerating only a torn tail loses nothing acknowledged (a
    // synced record is complete) and makes damage anywhere else fail the
    // open, so `open_with` can refuse with a message; point-in-time is
    // used only when the operator asked for it.
    db_opts.set_wal_recovery_mode(recovery);

    let mut events = Options::default();
    // Events are Avro records with repetitive field layouts: lz4 saves
    // disk at little CPU cost, and it is the only codec we compile in.
    events.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Larger memtables mean fewer, larger flushes for an append-only
    // workload; 64 MiB is the RocksDB default, written down on purpose
    // because the memory budget in the README counts it. It is also the
    // free space RocksDB waits for before it resumes writes after the disk
    // filled up (its SstFileManager reserves one write buffer).
    events.set_write_buffer_size(64 << 20);
    // Retention deletes whole key ranges; compacting them away as soon as
    // possible keeps tombstones from slowing EARLIEST scans.
    events.set_level_compaction_dynamic_level_bytes(true);
    // Events are read in order, many at a time: 16 KiB blocks (RocksDB's
    // default is 4 KiB) hold about fourteen 1 KiB events, so a replay does
    // a quarter of the block-cache lookups, decompressions and reads per
    // event. A read of one event decompresses one block either way.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_size(16 << 10);
    events.set_block_based_table_factory(&table);

    let meta = Options::default();
    let mut records = Options::default();
    // Records are small JSON-ish values read by key and scanned by prefix
    // within one tenant: lz4 (the only codec compiled in) halves them at
    // little CPU cost, like the events.
    records.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // A small memtable: records change rarely compared with events, and
    // every write of theirs is fsynced anyway; 16 MiB keeps the memory
    // budget of this column family a quarter of the events' (the WAL cap,
    // `max_total_wal_size`, flushes it when it lingers).
    records.set_write_buffer_size(16 << 20);
    let mut cfs = vec![
        ColumnFamilyDescriptor::new(CF_EVENTS, events),
        ColumnFamilyDescriptor::new(CF_META, meta),
        ColumnFamilyDescriptor::new(CF_RECORDS, records),
    ];
    if read_only {
        // The damage probe cannot create column families: open those the
        // folder has (a database of an older version lacks the records).
        let existing = DB::list_cf(&db_opts, dir)?;
        cfs.retain(|cf| existing.iter().any(|name| name == cf.name()));
        DB::open_cf_descriptors_read_only(&db_opts, dir, cfs, false)
    } else {
        // `create_missing_column_families` above adds any column family an
        // older version's database lacks.
        DB::open_cf_descriptors(&db_opts, dir, cfs)
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
