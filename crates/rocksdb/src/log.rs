//! The RocksDB backend of [`TopicLog`](eventbus_core::log::TopicLog): its
//! [`EventLog`], [`CatalogStore`], [`LeaseStore`] and [`RecordStore`] (which
//! forwards to the `records` module).
//!
//! Owns: reading events and the catalog from RocksDB, trimming, and the
//! writer thread's lifecycle. Must not: configure RocksDB (that is `store`).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use rocksdb::{DB, ReadOptions, WriteBatch};
use tokio::sync::{mpsc, oneshot, watch};

use crate::io::{cf, joined, storage, synced, write_failed};
use crate::records::RocksRecords;
use crate::store::{CF_EVENTS, CF_META, CF_RECORDS, Store};
use crate::types::{ManagedId, Offset, SchemaId, TenantId, TopicId};
use crate::writer::{self, WriterMsg};
use crate::{codec, keys};
use eventbus_core::log::lease::LeaseTable;
use eventbus_core::log::tail::Tails;
use eventbus_core::log::{
    Catalog, CatalogChange, CatalogStore, CommitRecord, Durability, EpochMillis, EventLog,
    LeaseHolder, LeaseKey, LeaseStore, LogBounds, LogError, ManagedRecord, NewEvent, RecordStore,
    SchemaRecord, StoredEvent, StoredRecord, TopicRecord,
};
use eventbus_core::metrics::Metrics;

/// Reads of events at most this far behind a topic's tail run on the
/// calling thread (see [`RocksTopicLog`]'s `read`).
const RECENT_EVENTS: usize = 256;

/// The RocksDB-backed topic log.
pub struct RocksTopicLog {
    db: Arc<DB>,
    tails: Arc<Tails>,
    tx: mpsc::Sender<WriterMsg>,
    /// What appends share with the writer thread (inline commits).
    writer: Arc<writer::Shared>,
    metrics: Arc<Metrics>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop_syncer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    // Read-modify-write of meta records (the topic id counter, a managed
    // subscription's commit) one at a time. Never held across an `.await`
    // of anything but the blocking task doing the write.
    meta_rmw: Arc<Mutex<()>>,
    // The next topic id to hand out, read from the catalog on first use.
    next_topic_id: tokio::sync::Mutex<Option<u32>>,
    // One process opens the database (RocksDB's LOCK file), so leases
    // only need to hold within it.
    leases: LeaseTable,
    /// The record store's state (see `records`).
    pub(crate) records: RocksRecords,
}

impl RocksTopicLog {
    /// Starts the log on an open store: spawns the writer thread and, for
    /// [`Durability::Buffered`], a thread that fsyncs the WAL every
    /// `sync_interval`.
    ///
    /// # Errors
    /// [`LogError::Storage`] when a thread cannot be spawned.
    pub fn open(
        store: &Store,
        durability: Durability,
        sync_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LogError> {
        let db = store.db().clone();
        let tails = Arc::new(Tails::default());
        let (tx, rx) = mpsc::channel(writer::QUEUE_DEPTH);
        let mut threads = Vec::new();
        let shared = Arc::new(writer::Shared::new(durability));
        let (w_db, w_tails, w_shared, w_metrics) =
            (db.clone(), tails.clone(), shared.clone(), metrics.clone());
        threads.push(
            std::thread::Builder::new()
                .name("eventbus-writer".into())
                .spawn(move || writer::run(w_db, w_tails, w_shared, rx, &w_metrics))
                .map_err(storage)?,
        );
        let mut stop_syncer = None;
        if durability == Durability::Buffered {
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let s_db = db.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("eventbus-wal-sync".into())
                    .spawn(move || {
                        // Waiting on the stop channel doubles as the timer.
                        // Failures are logged when they start and end only:
                        // a full disk fails every sync until space is freed.
                        let mut failing = false;
                        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                            stop_rx.recv_timeout(sync_interval)
                        {
                            match s_db.flush_wal(true) {
                                Err(e) if !failing => {
                                    failing = true;
                                    tracing::warn!(error = %e, "background WAL sync failed");
                                }
                                Ok(()) if failing => {
                                    failing = false;
                                    tracing::info!("background WAL sync works again");
                                }
                                _ => {}
                            }
                        }
                    })
                    .map_err(storage)?,
            );
            stop_syncer = Some(stop_tx);
        }
        Ok(Self {
            db,
            tails,
            tx,
            writer: shared,
            metrics,
            threads: Mutex::new(threads),
            stop_syncer: Mutex::new(stop_syncer),
            meta_rmw: Arc::new(Mutex::new(())),
            next_topic_id: tokio::sync::Mutex::new(None),
            leases: LeaseTable::default(),
            records: RocksRecords::default(),
        })
    }

    fn recover_bounds(db: &DB, topic: TopicId) -> Result<LogBounds, LogError> {
        let meta = cf(db, CF_META)?;
        let events = cf(db, CF_EVENTS)?;
        let trimmed = match db.get_cf(&meta, keys::trim_key(topic)).map_err(storage)? {
            Some(v) => {
                Offset(u64::from_be_bytes(v.as_slice().try_into().map_err(
                    |_| LogError::Corrupt("trim point is not 8 bytes".into()),
                )?))
            }
            None => Offset(0),
        };
        let mut it = db.raw_iterator_cf(&events);
        it.seek_for_prev(keys::event_key(topic, Offset(u64::MAX)));
        let mut last = Offset(0);
        if it.valid()
            && let Some((t, o)) = it.key().and_then(keys::parse_event_key)
            && t == topic
        {
            last = o;
        }
        it.status().map_err(storage)?;
        Ok(LogBounds {
            trimmed,
            latest: last.max(trimmed),
        })
    }
}

#[async_trait::async_trait]
impl EventLog for RocksTopicLog {
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError> {
        if self.tails.contains(topic) {
            return Ok(());
        }
        let db = self.db.clone();
        let bounds =
            joined(tokio::task::spawn_blocking(move || Self::recover_bounds(&db, topic)).await)?;
        self.tails.register(topic, bounds);
        Ok(())
    }

    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events =
            match self
                .writer
                .try_inline(&self.db, &self.tails, &self.metrics, topic, events)
            {
                Ok(done) => return done,
                Err(events) => events,
            };
        let (reply, rx) = oneshot::channel();
        let queued = self.writer.enqueue();
        self.tx
            .send(WriterMsg::Append {
                topic,
                events,
                reply,
            })
            .await
            .map_err(|_| LogError::Closed)?;
        queued.sent();
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn append_many(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
    ) -> Result<Vec<Vec<Offset>>, LogError> {
        eventbus_core::log::check_distinct_topics(&parts)?;
        if parts.iter().all(|(_, events)| events.is_empty()) {
            return Ok(vec![Vec::new(); parts.len()]);
        }
        let (reply, rx) = oneshot::channel();
        let queued = self.writer.enqueue();
        self.tx
            .send(WriterMsg::AppendMany { parts, reply })
            .await
            .map_err(|_| LogError::Closed)?;
        queued.sent();
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let tail = self.tails.get(topic)?;
        let latest = tail.latest();
        if after >= latest || max_events == 0 {
            return Ok(Vec::new());
        }
        // At most this many events are there to read.
        let there = usize::try_from(latest.0 - after.0).unwrap_or(usize::MAX);
        let max_events = max_events.min(there);
        let recent = there <= RECENT_EVENTS;
        let db = self.db.clone();
        let read = move || {
            let cf = cf(&db, CF_EVENTS)?;
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::event_key_upper_bound(topic));
            let mut it = db.raw_iterator_cf_opt(&cf, ro);
            it.seek(keys::event_key(topic, after.next()));
            // The records are copied into one buffer, and each event's
            // payload is a slice of it: one allocation per read, not
            // one per event.
            let mut records = BytesMut::new();
            let mut spans: Vec<(Offset, usize, usize)> = Vec::with_capacity(max_events);
            while it.valid() && spans.len() < max_events {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                let (_, offset) = keys::parse_event_key(k)
                    .ok_or_else(|| LogError::Corrupt("malformed event key".into()))?;
                if !spans.is_empty() && records.len() + v.len() > max_bytes {
                    break;
                }
                if spans.is_empty() {
                    // Sized from the first record: events of a topic
                    // are usually alike.
                    records.reserve(
                        v.len()
                            .saturating_mul(max_events)
                            .min(max_bytes)
                            .max(v.len()),
                    );
                }
                let start = records.len();
                records.extend_from_slice(v);
                spans.push((offset, start, records.len()));
                it.next();
            }
            it.status().map_err(storage)?;
            let records = records.freeze();
            spans
                .into_iter()
                .map(|(offset, start, end)| {
                    let (time_ms, event) = codec::decode(&records.slice(start..end))?;
                    Ok(StoredEvent {
                        offset,
                        time_ms,
                        event,
                    })
                })
                .collect()
        };
        // A live subscriber reads what was just committed: it is in the
        // memtable, so the read is a few microseconds of memory copies and
        // runs here. Sending it to the blocking pool would cost two thread
        // hand-offs, more than the read. Older events may need the disk.
        if recent {
            read()
        } else {
            joined(tokio::task::spawn_blocking(read).await)
        }
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        Ok(self.tails.get(topic)?.bounds())
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.tails.watch(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff: EpochMillis) -> Result<u64, LogError> {
        let cutoff_ms = cutoff.0;
        let tail = self.tails.get(topic)?;
        let bounds = tail.bounds();
        if bounds.latest <= bounds.trimmed {
            return Ok(0);
        }
        let db = self.db.clone();
        let new_trim = joined(
            tokio::task::spawn_blocking(move || -> Result<Option<Offset>, LogError> {
                let events = cf(&db, CF_EVENTS)?;
                let meta = cf(&db, CF_META)?;
                let mut ro = ReadOptions::default();
                ro.set_iterate_upper_bound(keys::event_key_upper_bound(topic));
                let mut it = db.raw_iterator_cf_opt(&events, ro);
                it.seek(keys::event_key(topic, bounds.trimmed.next()));
                let mut last_expired = None;
                while it.valid() {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    let (_, offset) = keys::parse_event_key(k)
                        .ok_or_else(|| LogError::Corrupt("malformed event key".into()))?;
                    // Only committed events are trimmed; the tail snapshot
                    // bounds the scan so a concurrent append is never touched.
                    if offset > bounds.latest || codec::decode_time(v)? >= cutoff_ms {
                        break;
                    }
                    last_expired = Some(offset);
                    it.next();
                }
                it.status().map_err(storage)?;
                let Some(last) = last_expired else {
                    return Ok(None);
                };
                let mut batch = WriteBatch::default();
                batch.delete_range_cf(
                    &events,
                    keys::event_key(topic, Offset(0)),
                    keys::event_key(topic, last.next()),
                );
                batch.put_cf(&meta, keys::trim_key(topic), last.0.to_be_bytes());
                // The trim point must survive a crash, or offsets could be
                // reused after a restart that finds the topic empty.
                db.write_opt(batch, &synced()).map_err(write_failed)?;
                // Drop the range tombstone's data now rather than at some later
                // compaction, so EARLIEST scans do not wade through it.
                db.compact_range_cf(
                    &events,
                    Some(keys::event_key(topic, Offset(0))),
                    Some(keys::event_key(topic, last.next())),
                );
                Ok(Some(last))
            })
            .await,
        )?;
        Ok(match new_trim {
            Some(t) => {
                let deleted = t.0 - bounds.trimmed.0;
                tail.set_trimmed(t);
                deleted
            }
            None => 0,
        })
    }

    fn storage_stats(&self) -> eventbus_core::log::StorageStats {
        let prop = |name: &str| -> u64 {
            [CF_EVENTS, CF_META, CF_RECORDS]
                .iter()
                .filter_map(|cf_name| self.db.cf_handle(cf_name))
                .filter_map(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
                .sum()
        };
        eventbus_core::log::StorageStats {
            size_bytes: prop("rocksdb.live-sst-files-size"),
            pending_compaction_bytes: prop("rocksdb.estimate-pending-compaction-bytes"),
        }
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        let db = self.db.clone();
        joined(
            tokio::task::spawn_blocking(move || {
                let events = cf(&db, CF_EVENTS)?;
                let from = keys::event_key(topic, Offset(0));
                let to = keys::event_key_upper_bound(topic);
                let sizes = db
                    .get_approximate_sizes_cf(&events, &[rocksdb::Range::new(&from[..], &to[..])]);
                Ok(sizes.first().copied().unwrap_or(0))
            })
            .await,
        )
    }

    async fn close(&self) -> Result<(), LogError> {
        let (reply, rx) = oneshot::channel();
        let res = match self.tx.send(WriterMsg::Close { reply }).await {
            Ok(()) => rx.await.unwrap_or(Ok(())),
            Err(_) => Ok(()), // already closed
        };
        if let Some(stop) = self
            .stop_syncer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = stop.send(());
        }
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            // Joining blocks; both threads exit right after the messages above.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        res
    }
}

#[async_trait::async_trait]
impl CatalogStore for RocksTopicLog {
    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let db = self.db.clone();
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                let mut cat = Catalog::default();
                let mut it = db.raw_iterator_cf(&meta);
                it.seek_to_first();
                while it.valid() {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    match k.first() {
                        Some(&keys::KIND_TOPIC) => {
                            let rec: TopicRecord = serde_json::from_slice(v)
                                .map_err(|e| LogError::corrupt_in("topic record", e))?;
                            cat.topics.push(rec);
                        }
                        _ if k == keys::NEXT_TOPIC_ID_KEY => {
                            let b: [u8; 4] = v.try_into().map_err(|_| {
                                LogError::Corrupt("next topic id is not 4 bytes".into())
                            })?;
                            cat.next_topic_id = u32::from_be_bytes(b);
                        }
                        Some(&keys::KIND_SCHEMA) => {
                            let id = String::from_utf8_lossy(&k[1..]).into_owned();
                            let json = String::from_utf8(v.to_vec()).map_err(|_| {
                                LogError::Corrupt(format!("schema {id} is not UTF-8").into())
                            })?;
                            cat.schemas.push(SchemaRecord {
                                tenant: None,
                                id: SchemaId::new(id),
                                json,
                            });
                        }
                        Some(&keys::KIND_TENANT_SCHEMA) => {
                            let (tenant, id) =
                                keys::parse_tenant_schema_key(k).ok_or_else(|| {
                                    LogError::Corrupt("a tenant schema key is malformed".into())
                                })?;
                            let json = String::from_utf8(v.to_vec()).map_err(|_| {
                                LogError::Corrupt(format!("schema {id} is not UTF-8").into())
                            })?;
                            cat.schemas.push(SchemaRecord {
                                tenant: Some(tenant),
                                id: SchemaId::new(id),
                                json,
                            });
                        }
                        Some(&keys::KIND_MANAGED) => {
                            let rec: ManagedRecord = serde_json::from_slice(v).map_err(|e| {
                                LogError::corrupt_in("managed subscription record", e)
                            })?;
                            cat.managed.push(rec);
                        }
                        _ => {}
                    }
                    it.next();
                }
                it.status().map_err(storage)?;
                let max_used = cat.topics.iter().map(|t| t.id).max().unwrap_or(0);
                cat.next_topic_id = cat.next_topic_id.max(max_used.saturating_add(1)).max(1);
                Ok(cat)
            })
            .await,
        )
    }

    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError> {
        let db = self.db.clone();
        let value = serde_json::to_vec(&record).map_err(storage)?;
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                let next = match db.get_cf(&meta, keys::NEXT_TOPIC_ID_KEY).map_err(storage)? {
                    Some(v) => v
                        .as_slice()
                        .try_into()
                        .map(u32::from_be_bytes)
                        .map_err(|_| LogError::Corrupt("next topic id is not 4 bytes".into()))?,
                    None => 1,
                };
                let mut batch = WriteBatch::default();
                batch.put_cf(&meta, keys::topic_key(&record.name), value);
                batch.put_cf(
                    &meta,
                    keys::NEXT_TOPIC_ID_KEY,
                    next.max(record.id.saturating_add(1)).to_be_bytes(),
                );
                db.write_opt(batch, &synced()).map_err(write_failed)
            })
            .await,
        )
    }

    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError> {
        // One process writes the database and the broker creates topics one
        // at a time, so look-then-write cannot race.
        let db = self.db.clone();
        let key = keys::topic_key(&record.name);
        let exists = joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                Ok(db.get_cf(&meta, key).map_err(storage)?.is_some())
            })
            .await,
        )?;
        if exists {
            return Ok(false);
        }
        self.put_topic(record).await?;
        Ok(true)
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let registered = self.tails.get(topic).map(|t| t.bounds()).ok();
        let db = self.db.clone();
        let name = name.to_owned();
        let bounds = joined(
            tokio::task::spawn_blocking(move || {
                // An unregistered topic can still have events on disk (after
                // a restart): count them from storage, as the contract says
                // (found by the model test).
                let bounds = match registered {
                    Some(b) => b,
                    None => Self::recover_bounds(&db, topic)?,
                };
                let events = cf(&db, CF_EVENTS)?;
                let meta = cf(&db, CF_META)?;
                let mut batch = WriteBatch::default();
                batch.delete_range_cf(
                    &events,
                    &keys::event_key(topic, Offset(0))[..],
                    &keys::event_key_upper_bound(topic)[..],
                );
                batch.delete_cf(&meta, keys::trim_key(topic));
                batch.delete_cf(&meta, keys::topic_key(&name));
                db.write_opt(batch, &synced()).map_err(write_failed)?;
                db.compact_range_cf(
                    &events,
                    Some(keys::event_key(topic, Offset(0))),
                    Some(keys::event_key_upper_bound(topic)),
                );
                Ok(bounds)
            })
            .await,
        )?;
        self.tails.remove(topic);
        Ok(bounds.latest.0 - bounds.trimmed.0)
    }

    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError> {
        let db = self.db.clone();
        let key = keys::tenant_schema_key(tenant, id.as_str());
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                db.put_cf_opt(&meta, key, json, &synced())
                    .map_err(write_failed)
            })
            .await,
        )
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        let db = self.db.clone();
        let value = serde_json::to_vec(&record).map_err(storage)?;
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                db.put_cf_opt(&meta, keys::managed_key(&record.id), value, &synced())
                    .map_err(write_failed)
            })
            .await,
        )
    }

    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError> {
        // One process writes the database and the broker creates managed
        // subscriptions one at a time, so look-then-write cannot race.
        let taken = self
            .load_catalog()
            .await?
            .managed
            .iter()
            .any(|r| r.same_tenant(&record) && r.developer_name == record.developer_name);
        if taken {
            return Ok(false);
        }
        self.put_managed(record).await?;
        Ok(true)
    }

    async fn delete_managed(&self, id: &ManagedId) -> Result<(), LogError> {
        let db = self.db.clone();
        let key = keys::managed_key(id.as_str());
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                db.delete_cf_opt(&meta, key, &synced())
                    .map_err(write_failed)
            })
            .await,
        )
    }

    async fn put_commit(
        &self,
        id: &ManagedId,
        commit: Option<CommitRecord>,
    ) -> Result<bool, LogError> {
        let db = self.db.clone();
        let rmw = self.meta_rmw.clone();
        let key = keys::managed_key(id.as_str());
        joined(
            tokio::task::spawn_blocking(move || {
                let _one = rmw.lock().unwrap_or_else(|p| p.into_inner());
                let meta = cf(&db, CF_META)?;
                let Some(v) = db.get_cf(&meta, &key).map_err(storage)? else {
                    return Ok(false);
                };
                let mut rec: ManagedRecord = serde_json::from_slice(&v)
                    .map_err(|e| LogError::corrupt_in("managed subscription record", e))?;
                rec.commit = commit;
                let value = serde_json::to_vec(&rec).map_err(storage)?;
                db.put_cf_opt(&meta, &key, value, &synced())
                    .map_err(write_failed)?;
                Ok(true)
            })
            .await,
        )
    }

    async fn get_managed(&self, id: &ManagedId) -> Result<Option<ManagedRecord>, LogError> {
        let db = self.db.clone();
        let key = keys::managed_key(id.as_str());
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                db.get_cf(&meta, &key)
                    .map_err(storage)?
                    .map(|v| {
                        serde_json::from_slice(&v)
                            .map_err(|e| LogError::corrupt_in("managed subscription record", e))
                    })
                    .transpose()
            })
            .await,
        )
    }

    async fn allocate_topic_id(&self) -> Result<TopicId, LogError> {
        // One process opens the database, so a counter in memory hands out
        // unique ids; it starts above the stored counter, which `put_topic`
        // raises durably with every record (an id handed out but never
        // stored may come again after a restart, harmlessly: nothing used it).
        let mut next = self.next_topic_id.lock().await;
        let id = match *next {
            Some(id) => id,
            None => self.load_catalog().await?.next_topic_id.max(1),
        };
        *next = Some(id.saturating_add(1));
        Ok(TopicId(id))
    }

    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError> {
        let db = self.db.clone();
        let key = match tenant {
            Some(t) => keys::tenant_schema_key(t, id.as_str()),
            None => keys::schema_key(id.as_str()),
        };
        joined(
            tokio::task::spawn_blocking(move || {
                let meta = cf(&db, CF_META)?;
                match db.get_cf(&meta, key).map_err(storage)? {
                    Some(v) => String::from_utf8(v)
                        .map(Some)
                        .map_err(|_| LogError::Corrupt("schema is not UTF-8".into())),
                    None => Ok(None),
                }
            })
            .await,
        )
    }

    fn watch_catalog(&self) -> Option<tokio::sync::broadcast::Receiver<CatalogChange>> {
        // Only this process writes the database.
        None
    }
}

#[async_trait::async_trait]
impl LeaseStore for RocksTopicLog {
    async fn acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        Ok(self.leases.acquire(key, holder, ttl))
    }

    async fn renew_lease(
        &self,
        key: &LeaseKey,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        Ok(self.leases.renew(key, holder, ttl))
    }

    async fn release_lease(&self, key: &LeaseKey, holder: &LeaseHolder) -> Result<(), LogError> {
        self.leases.release(key, holder);
        Ok(())
    }
}

#[async_trait::async_trait]
impl RecordStore for RocksTopicLog {
    async fn get_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError> {
        self.records.get_record(&self.db, tenant, key).await
    }

    async fn put_record(
        &self,
        tenant: &TenantId,
        key: &str,
        value: bytes::Bytes,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        self.records
            .put_record(&self.db, tenant, key, value, expected)
            .await
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError> {
        self.records
            .delete_record(&self.db, tenant, key, expected)
            .await
    }

    async fn list_records(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError> {
        self.records
            .list_records(&self.db, tenant, prefix, after, limit)
            .await
    }

    async fn next_in_sequence(
        &self,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError> {
        self.records
            .next_in_sequence(&self.db, tenant, name, n)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventbus_core::log::contract;

    fn open(dir: &std::path::Path) -> RocksTopicLog {
        open_with(dir, Durability::Sync)
    }

    fn open_with(dir: &std::path::Path, durability: Durability) -> RocksTopicLog {
        let store = Store::open(dir).expect("temp dir opens");
        RocksTopicLog::open(
            &store,
            durability,
            Duration::from_millis(50),
            Arc::new(Metrics::new()),
        )
        .expect("writer starts")
    }

    contract::contract_tests!({
        let dir = tempfile::tempdir().expect("temp dir");
        let log = open(dir.path());
        (log, dir)
    });

    #[tokio::test]
    async fn offsets_survive_reopen_and_trim() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = open(dir.path());
            contract::fill(&log, TopicId(1), 5).await;
            let n = log
                .trim_older_than(TopicId(1), EpochMillis(u64::MAX))
                .await
                .expect("trim");
            assert_eq!(n, 5);
            log.close().await.expect("close");
        }
        let log = open(dir.path());
        log.register_topic(TopicId(1)).await.expect("register");
        assert_eq!(
            log.bounds(TopicId(1)).expect("bounds"),
            LogBounds {
                trimmed: Offset(5),
                latest: Offset(5)
            }
        );
        let offs = contract::fill(&log, TopicId(1), 1).await;
        assert_eq!(offs, vec![Offset(6)], "offsets are never reused after trim");
        log.close().await.expect("close");
    }

    #[tokio::test]
    async fn append_many_parts_survive_reopen_together() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = open(dir.path());
            contract::fill(&log, TopicId(1), 2).await;
            log.register_topic(TopicId(2)).await.expect("register");
            let offs = log
                .append_many(vec![
                    (TopicId(1), vec![contract::event(7)]),
                    (TopicId(2), vec![contract::event(8), contract::event(9)]),
                ])
                .await
                .expect("append_many");
            assert_eq!(offs, vec![vec![Offset(3)], vec![Offset(1), Offset(2)]]);
            log.close().await.expect("close");
        }
        let log = open(dir.path());
        log.register_topic(TopicId(1)).await.expect("register");
        log.register_topic(TopicId(2)).await.expect("register");
        assert_eq!(log.bounds(TopicId(1)).expect("bounds").latest, Offset(3));
        assert_eq!(log.bounds(TopicId(2)).expect("bounds").latest, Offset(2));
        let two = log
            .read(TopicId(2), Offset(0), 10, usize::MAX)
            .await
            .expect("read");
        let got: Vec<_> = two.into_iter().map(|e| e.event).collect();
        assert_eq!(got, vec![contract::event(8), contract::event(9)]);
        log.close().await.expect("close");
    }

    #[tokio::test]
    async fn schema_texts_stored_before_texts_were_per_tenant_still_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = contract::tenant("00D5e000000Aaaa");
        {
            let store = Store::open(dir.path()).expect("open");
            // The layout of older versions: `s | id` → the first text.
            let meta = cf(store.db(), CF_META).expect("meta column family");
            store
                .db()
                .put_cf(meta, keys::schema_key("old"), "{\"doc\":\"first\"}")
                .expect("legacy record");
            let log = RocksTopicLog::open(
                &store,
                Durability::Sync,
                Duration::from_millis(50),
                Arc::new(Metrics::new()),
            )
            .expect("open");
            log.put_schema(&a, SchemaId::new("old"), "{\"doc\":\"A's\"}".into())
                .await
                .expect("put");
            log.close().await.expect("close");
        }
        let log = open(dir.path());
        let mut schemas = log.load_catalog().await.expect("load").schemas;
        schemas.sort();
        assert_eq!(
            schemas,
            vec![
                SchemaRecord {
                    tenant: None,
                    id: SchemaId::new("old"),
                    json: "{\"doc\":\"first\"}".into()
                },
                SchemaRecord {
                    tenant: Some(a.clone()),
                    id: SchemaId::new("old"),
                    json: "{\"doc\":\"A's\"}".into()
                },
            ]
        );
        let old = SchemaId::new("old");
        assert_eq!(
            log.get_schema(None, &old).await.expect("get").as_deref(),
            Some("{\"doc\":\"first\"}")
        );
        assert_eq!(
            log.get_schema(Some(&a), &old)
                .await
                .expect("get")
                .as_deref(),
            Some("{\"doc\":\"A's\"}")
        );
        log.close().await.expect("close");
    }

    /// The event-log contract with buffered durability, where small
    /// appends commit inline on the caller's thread.
    mod buffered {
        use super::*;

        fn open_buffered(dir: &std::path::Path) -> RocksTopicLog {
            open_with(dir, Durability::Buffered)
        }

        eventbus_core::event_log_contract_tests!({
            let dir = tempfile::tempdir().expect("temp dir");
            let log = open_buffered(dir.path());
            (log, dir)
        });

        /// Streams pipelining appends of mixed sizes (some inline, some
        /// through the writer thread) on a multi-threaded runtime: every
        /// stream's events get increasing offsets in the order it sent
        /// them, and together they fill the log without gaps.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn inline_and_queued_appends_keep_each_stream_in_order() {
            use futures_util::stream::{FuturesOrdered, StreamExt};
            let dir = tempfile::tempdir().expect("temp dir");
            let log = Arc::new(open_buffered(dir.path()));
            let topic = TopicId(7);
            log.register_topic(topic).await.expect("register");
            let mut tasks = Vec::new();
            for stream in 0..8u64 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    // Up to 4 requests in flight, answered in order, as a
                    // PublishStream does.
                    let mut inflight = FuturesOrdered::new();
                    let mut got = Vec::new();
                    for req in 0..200u64 {
                        let n = if req % 7 == 0 {
                            40
                        } else {
                            1 + (req % 3) as usize
                        };
                        let events: Vec<NewEvent> = (0..n as u64)
                            .map(|i| contract::event(req * 1000 + i))
                            .collect();
                        let log = log.clone();
                        inflight.push_back(async move { log.append(topic, events).await });
                        if inflight.len() >= 4 {
                            got.extend(inflight.next().await.expect("one").expect("append"));
                        }
                    }
                    while let Some(r) = inflight.next().await {
                        got.extend(r.expect("append"));
                    }
                    (stream, got)
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                let (stream, got) = t.await.expect("task");
                assert!(
                    got.windows(2).all(|w| w[0] < w[1]),
                    "stream {stream} got offsets out of order"
                );
                all.extend(got);
            }
            all.sort();
            let n = all.len() as u64;
            assert_eq!(all, (1..=n).map(Offset).collect::<Vec<_>>());
            assert_eq!(log.bounds(topic).expect("bounds").latest, Offset(n));
            let read = log
                .read(topic, Offset(0), usize::MAX, usize::MAX)
                .await
                .expect("read");
            assert_eq!(read.len() as u64, n);
            log.close().await.expect("close");
        }
    }

    #[tokio::test]
    async fn buffered_durability_appends_and_reopens() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let log = open_with(dir.path(), Durability::Buffered);
            contract::fill(&log, TopicId(3), 10).await;
            log.close().await.expect("close");
        }
        let log = open(dir.path());
        log.register_topic(TopicId(3)).await.expect("register");
        assert_eq!(log.bounds(TopicId(3)).expect("bounds").latest, Offset(10));
        let evs = log
            .read(TopicId(3), Offset(0), 100, usize::MAX)
            .await
            .expect("read");
        assert_eq!(evs.len(), 10);
    }
}
