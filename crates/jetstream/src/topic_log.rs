//! The [`TopicLog`] implementation on the modules of this crate.
//!
//! Owns: the trait methods, publishing one call's events (pipelined acks
//! under the topic's append lock) and the explicit trim. Must not: cache
//! anything of its own (the state lives in [`Inner`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use eventbus_core::log::{
    Catalog, CatalogChange, CommitRecord, LogBounds, LogError, ManagedRecord, NewEvent,
    StorageStats, StoredEvent, TopicLog, TopicRecord,
};
use eventbus_core::types::{Offset, SchemaId, TenantId, TopicId};

use crate::JetStreamTopicLog;
use crate::catalog::{all_entries, schema_record};
use crate::codec::encode_headers;
use crate::error::{REQUEST_TIMEOUT, STREAM_NOT_FOUND, storage, timed, topic_err};
use crate::follow::follow;
use crate::keys::{key_of, schema_key};
use crate::state::{Inner, TopicHandle, bounds_of, lock};

/// Acks one append call keeps outstanding before it waits for the oldest.
pub(crate) const ACK_WINDOW: usize = 1024;

impl Inner {
    /// Publishes one call's events under the topic's append lock.
    pub(crate) async fn append_locked(
        &self,
        topic: TopicId,
        handle: &TopicHandle,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Offset>, LogError> {
        let subject = self.subject(topic);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let messages: Vec<Publish> = events
            .iter()
            .map(|e| {
                let n = seen.entry(e.id.as_str()).or_default();
                let headers = encode_headers(e, *n);
                *n += 1;
                Publish::build().headers(headers).payload(e.payload.clone())
            })
            .collect();
        // Pipelined: up to ACK_WINDOW publishes go out before the first ack
        // is awaited; acks are taken in order, so offsets match events.
        let mut pending = VecDeque::with_capacity(messages.len().min(ACK_WINDOW));
        let mut offsets = Vec::with_capacity(messages.len());
        {
            // Held while this call's messages go out, not while their acks
            // come back: the sends of one call stay contiguous on the
            // connection (so are their sequences), and concurrent calls
            // overlap their round trips instead of queueing behind them.
            let _one_call_sends_at_a_time = handle.append.lock().await;
            if self.closed.load(Ordering::Acquire) {
                return Err(LogError::Closed);
            }
            for m in messages {
                if pending.len() >= ACK_WINDOW
                    && let Some(ack) = pending.pop_front()
                {
                    offsets.push(acked(topic, ack).await?);
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), m)
                    .await
                    .map_err(|e| publish_err(topic, e))?;
                pending.push_back(ack);
            }
        }
        for ack in pending {
            offsets.push(acked(topic, ack).await?);
        }
        if let Some(max) = offsets.iter().max() {
            handle.tail.advance(*max);
        }
        Ok(offsets)
    }

    /// The first sequence stored at or after `cutoff_ms`, if any.
    pub(crate) async fn first_at_or_after(
        &self,
        topic: TopicId,
        cutoff_ms: u64,
    ) -> Result<Option<u64>, LogError> {
        let start_time =
            async_nats::datetime::from_nanos(i128::from(cutoff_ms) * 1_000_000).map_err(storage)?;
        let name = self.stream_name(topic);
        let consumer: consumer::PullConsumer = timed(
            "create trim probe",
            self.js.create_consumer_on_stream(
                pull::Config {
                    deliver_policy: DeliverPolicy::ByStartTime { start_time },
                    ack_policy: AckPolicy::None,
                    headers_only: true,
                    inactive_threshold: REQUEST_TIMEOUT,
                    memory_storage: true,
                    ..Default::default()
                },
                &name,
            ),
        )
        .await
        .map_err(|e| topic_err(topic, e))?;
        let first = async {
            let mut batch = consumer.fetch().max_messages(1).messages().await?;
            match batch.next().await {
                Some(m) => Ok(Some(m?.info()?.stream_sequence)),
                None => Ok::<_, async_nats::Error>(None),
            }
        };
        let first = timed("trim probe", first)
            .await
            .map_err(|e| topic_err(topic, e));
        // The probe is done either way; the server would drop it later.
        let _ = self
            .js
            .delete_consumer_from_stream(&consumer.cached_info().name, &name)
            .await;
        first
    }
}

pub(crate) async fn acked(
    topic: TopicId,
    ack: jetstream::context::PublishAckFuture,
) -> Result<Offset, LogError> {
    let ack = ack.await.map_err(|e| publish_err(topic, e))?;
    Ok(Offset(ack.sequence))
}

pub(crate) fn publish_err(
    topic: TopicId,
    e: async_nats::jetstream::context::PublishError,
) -> LogError {
    match e.kind() {
        PublishErrorKind::StreamNotFound => LogError::UnknownTopic(topic.0),
        _ => storage(format!("publish to topic {}: {e}", topic.0)),
    }
}

#[async_trait::async_trait]
impl TopicLog for JetStreamTopicLog {
    async fn register_topic(&self, topic: TopicId) -> Result<(), LogError> {
        let inner = &self.inner;
        if inner.handle(topic).is_ok() {
            return Ok(());
        }
        let state = inner.ensure_stream(topic, None).await?;
        let (handle, fresh) = {
            let mut map = inner.topics.write().unwrap_or_else(|p| p.into_inner());
            match map.get(&topic) {
                // A concurrent registration won; it runs the follower.
                Some(h) => (h.clone(), false),
                None => {
                    let h = Arc::new(TopicHandle {
                        tail: inner.tails.register(topic, bounds_of(&state)),
                        append: tokio::sync::Mutex::new(()),
                        stop: inner.shutdown.child_token(),
                    });
                    map.insert(topic, h.clone());
                    (h, true)
                }
            }
        };
        lock(&inner.sizes).insert(topic, state.bytes);
        if fresh {
            inner.tasks.spawn(follow(
                Arc::downgrade(inner),
                inner.js.clone(),
                topic,
                Arc::downgrade(&handle),
                inner.stream_name(topic),
                handle.stop.clone(),
            ));
        }
        Ok(())
    }

    async fn append(&self, topic: TopicId, events: Vec<NewEvent>) -> Result<Vec<Offset>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let handle = self.inner.handle(topic)?;
        let inner = self.inner.clone();
        // A task of its own: dropping this future (a client gone away) must
        // not stop a half-sent batch, so every event of the call is sent.
        let task = self
            .inner
            .tasks
            .spawn(async move { inner.append_locked(topic, &handle, events).await });
        task.await
            .map_err(|e| storage(format!("append task failed: {e}")))?
    }

    async fn read(
        &self,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let handle = self.inner.handle(topic)?;
        if after >= handle.tail.latest() || max_events == 0 {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        inner
            .readers
            .read(
                &inner.js,
                &inner.stream_name(topic),
                topic,
                after,
                max_events,
                max_bytes,
            )
            .await
    }

    fn bounds(&self, topic: TopicId) -> Result<LogBounds, LogError> {
        Ok(self.inner.tails.get(topic)?.bounds())
    }

    fn watch_tail(&self, topic: TopicId) -> Result<watch::Receiver<Offset>, LogError> {
        self.inner.tails.watch(topic)
    }

    async fn trim_older_than(&self, topic: TopicId, cutoff_ms: u64) -> Result<u64, LogError> {
        let inner = &self.inner;
        let handle = inner.handle(topic)?;
        let stream = inner
            .js
            .get_stream_no_info(inner.stream_name(topic))
            .await
            .map_err(storage)?;
        let info = timed("stream info", stream.get_info())
            .await
            .map_err(|e| topic_err(topic, e))?;
        let bounds = bounds_of(&info.state);
        handle.tail.set_trimmed(bounds.trimmed);
        if info.state.messages == 0 {
            return Ok(0);
        }
        // Keep everything from the first event at or after the cutoff; the
        // state snapshot bounds the purge so later appends are never touched.
        // The common cases (nothing or everything expired) need no probe.
        let ts_ms = |t: async_nats::datetime::DateTime| {
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        };
        let keep_from = if cutoff_ms <= ts_ms(info.state.first_timestamp) {
            return Ok(0);
        } else if cutoff_ms > ts_ms(info.state.last_timestamp) {
            bounds.latest.0 + 1
        } else {
            inner
                .first_at_or_after(topic, cutoff_ms)
                .await?
                .unwrap_or(u64::MAX)
                .min(bounds.latest.0 + 1)
        };
        if keep_from <= bounds.trimmed.0 + 1 {
            return Ok(0);
        }
        let purged = timed("purge", stream.purge().sequence(keep_from).into_future())
            .await
            .map_err(|e| topic_err(topic, e))?;
        handle.tail.set_trimmed(Offset(keep_from - 1));
        Ok(purged.purged)
    }

    async fn load_catalog(&self) -> Result<Catalog, LogError> {
        let inner = &self.inner;
        let topics: Vec<(String, Bytes)> = all_entries(&inner.topics_kv).await?;
        let mut cat = Catalog::default();
        for (_, v) in topics {
            let rec: TopicRecord = serde_json::from_slice(&v)
                .map_err(|e| LogError::Corrupt(format!("topic record: {e}")))?;
            cat.topics.push(rec);
        }
        cat.topics.sort_by_key(|t| t.id);
        for (k, v) in all_entries(&inner.schemas_kv).await? {
            cat.schemas.push(schema_record(&k, &v)?);
        }
        cat.schemas.sort();
        for (_, v) in all_entries(&inner.managed_kv).await? {
            let rec: ManagedRecord = serde_json::from_slice(&v)
                .map_err(|e| LogError::Corrupt(format!("managed subscription record: {e}")))?;
            cat.managed.push(rec);
        }
        cat.managed.sort_by(|a, b| a.id.cmp(&b.id));
        let (next, _) = inner.next_topic_id().await?;
        let max_used = cat.topics.iter().map(|t| t.id).max().unwrap_or(0);
        cat.next_topic_id = next.max(max_used.saturating_add(1)).max(1);
        Ok(cat)
    }

    async fn put_topic(&self, record: TopicRecord) -> Result<(), LogError> {
        let inner = &self.inner;
        // The counter first: after a crash midway an id is skipped, never
        // handed out twice.
        inner
            .raise_next_topic_id(record.id.saturating_add(1))
            .await?;
        let topic = TopicId(record.id);
        inner
            .ensure_stream(topic, Some(Duration::from_millis(record.retention_ms)))
            .await?;
        let value = serde_json::to_vec(&record).map_err(storage)?;
        inner
            .topics_kv
            .put(key_of(&record.name), value.into())
            .await
            .map_err(|e| storage(format!("topic record {}: {e}", record.name)))?;
        Ok(())
    }

    async fn create_topic(&self, record: TopicRecord) -> Result<bool, LogError> {
        let inner = &self.inner;
        inner
            .raise_next_topic_id(record.id.saturating_add(1))
            .await?;
        inner
            .ensure_stream(
                TopicId(record.id),
                Some(Duration::from_millis(record.retention_ms)),
            )
            .await?;
        let value = serde_json::to_vec(&record).map_err(storage)?;
        // Create, not put: of several processes creating the same topic at
        // once (replicas provisioning one topics folder), one wins.
        match inner
            .topics_kv
            .create(key_of(&record.name), value.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(storage(format!("topic record {}: {e}", record.name))),
        }
    }

    async fn delete_topic(&self, topic: TopicId, name: &str) -> Result<u64, LogError> {
        let inner = &self.inner;
        let stream_name = inner.stream_name(topic);
        let held = match timed("stream info", inner.js.get_stream(&stream_name)).await {
            Ok(s) => s.cached_info().state.messages,
            Err(e) if e.contains(STREAM_NOT_FOUND) => 0,
            Err(e) => return Err(storage(e)),
        };
        match timed("stream delete", inner.js.delete_stream(&stream_name)).await {
            Ok(_) => {}
            Err(e) if e.contains(STREAM_NOT_FOUND) => {}
            Err(e) => return Err(storage(e)),
        }
        // Only a live record is deleted: every deletion reaches every
        // process's catalog feed, and a second one for the same topic would
        // only make them all act on it again.
        let key = key_of(name);
        let live = inner
            .topics_kv
            .entry(key.as_str())
            .await
            .map_err(|e| storage(format!("topic record {name}: {e}")))?
            .is_some_and(|e| e.operation == Operation::Put);
        if live {
            inner
                .topics_kv
                .delete(&key)
                .await
                .map_err(|e| storage(format!("topic record {name}: {e}")))?;
        }
        inner.forget(topic, None);
        Ok(held)
    }

    async fn disk_size(&self, topic: TopicId) -> Result<u64, LogError> {
        let inner = &self.inner;
        match timed("stream info", inner.js.get_stream(inner.stream_name(topic))).await {
            Ok(s) => {
                let bytes = s.cached_info().state.bytes;
                if inner.handle(topic).is_ok() {
                    lock(&inner.sizes).insert(topic, bytes);
                }
                Ok(bytes)
            }
            Err(e) if e.contains(STREAM_NOT_FOUND) => Ok(0),
            Err(e) => Err(storage(e)),
        }
    }

    fn storage_stats(&self) -> StorageStats {
        StorageStats {
            size_bytes: lock(&self.inner.sizes).values().sum(),
            pending_compaction_bytes: 0,
        }
    }

    async fn put_schema(
        &self,
        tenant: &TenantId,
        id: SchemaId,
        json: String,
    ) -> Result<(), LogError> {
        self.inner
            .schemas_kv
            .put(schema_key(Some(tenant), &id), json.into())
            .await
            .map_err(|e| storage(format!("schema {id}: {e}")))?;
        Ok(())
    }

    async fn put_managed(&self, record: ManagedRecord) -> Result<(), LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let value = serde_json::to_vec(&record).map_err(storage)?;
        self.inner
            .managed_kv
            .put(key_of(&record.id), value.into())
            .await
            .map_err(|e| storage(format!("managed subscription {}: {e}", record.id)))?;
        Ok(())
    }

    async fn create_managed(&self, record: ManagedRecord) -> Result<bool, LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let names = &self.inner.names_kv;
        // Claimed under the canonical tenant id, so both forms of an org id
        // take one name.
        let tenant = TenantId::from_stored(&record.tenant);
        let name = key_of(&format!("{tenant}/{}", record.developer_name));
        let fail = |e: &dyn std::fmt::Display| {
            storage(format!(
                "managed subscription name {}: {e}",
                record.developer_name
            ))
        };
        // Older versions claimed under the form the token named: a live
        // claim under the 15-character form takes the name too.
        let legacy = key_of(&format!("{}/{}", tenant.short(), record.developer_name));
        if let Some(claim) = names.entry(&legacy).await.map_err(|e| fail(&e))?
            && claim.operation == Operation::Put
        {
            let holder = String::from_utf8_lossy(&claim.value).into_owned();
            let alive = self
                .inner
                .managed_kv
                .get(key_of(&holder))
                .await
                .map_err(|e| fail(&e))?
                .is_some();
            if alive {
                return Ok(false);
            }
        }
        loop {
            match names.create(&name, record.id.clone().into()).await {
                Ok(_) => break,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    // Taken, unless the claim outlived its subscription (a
                    // process died between the claim and the record):
                    // then it is taken over.
                    let Some(claim) = names.entry(&name).await.map_err(|e| fail(&e))? else {
                        continue;
                    };
                    let holder = String::from_utf8_lossy(&claim.value).into_owned();
                    let alive = claim.operation == Operation::Put
                        && self
                            .inner
                            .managed_kv
                            .get(key_of(&holder))
                            .await
                            .map_err(|e| fail(&e))?
                            .is_some();
                    if alive {
                        return Ok(false);
                    }
                    match names
                        .update(&name, record.id.clone().into(), claim.revision)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(fail(&e)),
                    }
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        self.put_managed(record).await?;
        Ok(true)
    }

    async fn delete_managed(&self, id: &str) -> Result<(), LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let record = self
            .inner
            .managed_kv
            .get(key_of(id))
            .await
            .map_err(|e| storage(format!("managed subscription {id}: {e}")))?
            .and_then(|v| serde_json::from_slice::<ManagedRecord>(&v).ok());
        self.inner
            .managed_kv
            .delete(key_of(id))
            .await
            .map_err(|e| storage(format!("managed subscription {id}: {e}")))?;
        // The name is free again; a claim another subscription took over
        // meanwhile stays (it names another id).
        // The claim is under the canonical tenant id, or, made by an older
        // version, under the form the record names.
        if let Some(rec) = record {
            let canonical = TenantId::from_stored(&rec.tenant).to_string();
            let mut tenants = vec![canonical];
            if tenants[0] != rec.tenant {
                tenants.push(rec.tenant.clone());
            }
            for tenant in tenants {
                let name = key_of(&format!("{tenant}/{}", rec.developer_name));
                if let Ok(Some(claim)) = self.inner.names_kv.entry(&name).await
                    && claim.operation == Operation::Put
                    && claim.value.as_ref() == id.as_bytes()
                {
                    let _ = self
                        .inner
                        .names_kv
                        .delete_expect_revision(&name, Some(claim.revision))
                        .await;
                }
            }
        }
        Ok(())
    }

    async fn put_commit(&self, id: &str, commit: Option<CommitRecord>) -> Result<bool, LogError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let store = &self.inner.managed_kv;
        let k = key_of(id);
        // Read, change the commit, write back if nobody wrote in between: a
        // definition changed by another process keeps that change.
        loop {
            let entry = store
                .entry(&k)
                .await
                .map_err(|e| storage(format!("managed subscription {id}: {e}")))?;
            let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                return Ok(false);
            };
            let mut rec: ManagedRecord = serde_json::from_slice(&entry.value)
                .map_err(|e| LogError::Corrupt(format!("managed subscription {id}: {e}")))?;
            rec.commit = commit;
            let value = serde_json::to_vec(&rec).map_err(storage)?;
            match store.update(&k, value.into(), entry.revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(storage(format!("managed subscription {id}: {e}"))),
            }
        }
    }

    async fn allocate_topic_id(&self) -> Result<u32, LogError> {
        self.take_topic_id().await
    }

    async fn get_schema(
        &self,
        tenant: Option<&TenantId>,
        id: &SchemaId,
    ) -> Result<Option<String>, LogError> {
        let value = self
            .inner
            .schemas_kv
            .get(schema_key(tenant, id))
            .await
            .map_err(|e| storage(format!("schema {id}: {e}")))?;
        value
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| LogError::Corrupt(format!("schema {id} is not UTF-8")))
            })
            .transpose()
    }

    fn watch_catalog(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        Some(self.catalog_feed())
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LogError> {
        self.lease_acquire(key, holder, ttl).await
    }

    async fn renew_lease(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool, LogError> {
        self.lease_renew(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), LogError> {
        self.lease_release(key, holder).await
    }

    async fn close(&self) -> Result<(), LogError> {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.shutdown.cancel();
        inner.tasks.close();
        // Appends in flight finish (their acks come within the ack timeout);
        // followers and watchers stop at once.
        if tokio::time::timeout(REQUEST_TIMEOUT, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("JetStream log closed with appends still waiting for acks");
        }
        inner.client.flush().await.map_err(storage)
    }
}
