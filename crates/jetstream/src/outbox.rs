//! The outbox of `append_many`: one call's parts on several streams, made
//! all or nothing across crashes, which JetStream has no transaction for.
//!
//! Owns: the outbox stream (`<NAMES>_outbox`, subject `<prefix>.outbox`),
//! the encoding of an entry (every part's topic, the part's stream's last
//! sequence as this process knew it before the call, and its events),
//! carrying out a call (the entry first; then each part, every event with
//! the message id `ob<entry sequence>-<part>-<index>`; then the entry
//! deleted) and completing the entries a crashed or failed call left
//! behind (at connect and every [`OUTBOX_INTERVAL`]). Must not: touch the
//! catalog buckets, or decide which events go to which topic.
//!
//! Completing an entry is exact whether or not the duplicate window has
//! passed: for each part it reads the part's stream from the recorded
//! sequence on (headers only) and publishes only the events whose message
//! ids are not there yet, with those same ids, so a completion racing
//! another (or the late original call) is dropped by JetStream's
//! deduplication. Entries younger than [`OUTBOX_GRACE`] are left alone: the
//! call that wrote them may still be running.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio_util::sync::CancellationToken;

use eventbus_core::log::{EventHeader, LogError, NewEvent, now_ms};
use eventbus_core::types::{EventId, Offset, SchemaId, TopicId};

use crate::codec::{H_MSG_ID, encode_headers_as, millis};
use crate::error::{REQUEST_TIMEOUT, storage, timed, topic_err};
use crate::events::{acked, publish_err};
use crate::state::{Inner, TopicHandle};

/// How old an outbox entry must be before another pass completes it: longer
/// than a running call takes (its requests time out after
/// [`REQUEST_TIMEOUT`]), shorter than the default duplicate window (2
/// minutes), so a late original call and a completion are deduplicated.
pub(crate) const OUTBOX_GRACE: Duration = Duration::from_secs(60);
/// How often each process looks for unfinished entries (one stream-info
/// request when there are none).
pub(crate) const OUTBOX_INTERVAL: Duration = Duration::from_secs(10);
/// Messages fetched per request while scanning a stream.
const SCAN_BATCH: usize = 256;
/// The first byte of an encoded entry: the layout's version.
const ENTRY_VERSION: u8 = 1;

/// One part of an outbox entry, as decoded.
#[derive(Debug, PartialEq)]
pub(crate) struct Part {
    pub(crate) topic: TopicId,
    /// Every event of the part has a sequence above this one.
    pub(crate) start: u64,
    pub(crate) events: Vec<NewEvent>,
}

/// The message id of event `index` of part `part` of entry `entry`.
fn msg_id(entry: u64, part: usize, index: usize) -> String {
    format!("ob{entry}-{part}-{index}")
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Lengths fit: one entry is one NATS message (`max_payload` < 4 GiB).
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// An entry: version, part count, then per part its topic id, start
/// sequence, event count and events (id, schema id, payload, headers), all
/// integers big-endian, byte strings length-prefixed (u32).
pub(crate) fn encode_entry(parts: &[(TopicId, Vec<NewEvent>)], starts: &[u64]) -> Vec<u8> {
    let mut out = vec![ENTRY_VERSION];
    put_count(&mut out, parts.len());
    for ((topic, events), start) in parts.iter().zip(starts) {
        out.extend_from_slice(&topic.0.to_be_bytes());
        out.extend_from_slice(&start.to_be_bytes());
        put_count(&mut out, events.len());
        for e in events {
            put_bytes(&mut out, e.id.as_str().as_bytes());
            put_bytes(&mut out, e.schema_id.as_str().as_bytes());
            put_bytes(&mut out, &e.payload);
            put_count(&mut out, e.headers.len());
            for h in &e.headers {
                put_bytes(&mut out, h.key.as_bytes());
                put_bytes(&mut out, &h.value);
            }
        }
    }
    out
}

/// Reads an encoded entry front to back.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        if self.rest.len() < n {
            return Err(LogError::Corrupt("outbox entry is truncated".into()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, LogError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, LogError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn count(&mut self) -> Result<usize, LogError> {
        let n = self.u32()? as usize;
        // Every counted item takes at least 4 bytes: a count larger than
        // that is corrupt (and must not size an allocation).
        if n > self.rest.len() / 4 {
            return Err(LogError::Corrupt("outbox entry count is too large".into()));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], LogError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, LogError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|e| LogError::corrupt_in("outbox entry text", e))
    }
}

/// Decodes what [`encode_entry`] wrote.
pub(crate) fn decode_entry(body: &[u8]) -> Result<Vec<Part>, LogError> {
    let mut c = Cursor { rest: body };
    let version = c.take(1)?[0];
    if version != ENTRY_VERSION {
        return Err(LogError::Corrupt(
            format!("outbox entry version {version} is unknown").into(),
        ));
    }
    let n_parts = c.count()?;
    let mut parts = Vec::with_capacity(n_parts);
    for _ in 0..n_parts {
        let topic = TopicId(c.u32()?);
        let start = c.u64()?;
        let n_events = c.count()?;
        let mut events = Vec::with_capacity(n_events);
        for _ in 0..n_events {
            let id = EventId::new(c.text()?);
            let schema_id = SchemaId::new(c.text()?);
            let payload = Bytes::copy_from_slice(c.bytes()?);
            let n_headers = c.count()?;
            let mut headers = Vec::with_capacity(n_headers);
            for _ in 0..n_headers {
                let key = c.text()?;
                let value = Bytes::copy_from_slice(c.bytes()?);
                headers.push(EventHeader { key, value });
            }
            events.push(NewEvent {
                id,
                schema_id,
                payload,
                headers,
                generated_id: false,
            });
        }
        parts.push(Part {
            topic,
            start,
            events,
        });
    }
    if !c.rest.is_empty() {
        return Err(LogError::Corrupt(
            "outbox entry has bytes after its last part".into(),
        ));
    }
    Ok(parts)
}

/// A failed publish of an outbox entry.
fn entry_err(e: PublishError) -> LogError {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => LogError::TooLarge(format!(
            "The events of one append_many call, with their headers, are larger than the NATS server accepts in one message ({e}); raise max_payload in nats-server's configuration or publish fewer or smaller events."
        )),
        _ => LogError::storage_in("publish to the append_many outbox", e),
    }
}

impl Inner {
    pub(crate) fn outbox_stream(&self) -> String {
        format!("{}_outbox", self.names)
    }

    fn outbox_subject(&self) -> String {
        format!("{}.outbox", self.prefix)
    }

    /// Creates the outbox stream unless it exists.
    async fn ensure_outbox(&self) -> Result<(), LogError> {
        let cfg = stream::Config {
            name: self.outbox_stream(),
            subjects: vec![self.outbox_subject()],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        };
        timed("outbox stream", self.js.get_or_create_stream(cfg))
            .await
            .map(|_| ())
            .map_err(|e| LogError::storage_in("create the append_many outbox", e))
    }

    /// Stores one call's parts in the outbox; returns the entry's sequence.
    pub(crate) async fn publish_entry(
        &self,
        parts: &[(TopicId, Vec<NewEvent>)],
        starts: &[u64],
    ) -> Result<u64, LogError> {
        let body = Bytes::from(encode_entry(parts, starts));
        let ack = self
            .js
            .send_publish(self.outbox_subject(), Publish::build().payload(body))
            .await
            .map_err(entry_err)?;
        Ok(ack.await.map_err(entry_err)?.sequence)
    }

    /// Sends part `part` of entry `entry` (its events but those in `skip`)
    /// to its topic's stream; the acks come back in the events' order.
    pub(crate) async fn send_part(
        &self,
        entry: u64,
        part: usize,
        topic: TopicId,
        events: &[NewEvent],
        skip: &HashSet<usize>,
    ) -> Result<Vec<PublishAckFuture>, LogError> {
        let subject = self.subject(topic);
        let mut acks = Vec::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            if skip.contains(&index) {
                continue;
            }
            let m = Publish::build()
                .headers(encode_headers_as(e, &msg_id(entry, part, index)))
                .payload(e.payload.clone());
            let ack = self
                .js
                .send_publish(subject.clone(), m)
                .await
                .map_err(|e| publish_err(topic, e))?;
            acks.push(ack);
        }
        Ok(acks)
    }

    /// Deletes a completed entry.
    async fn delete_entry(&self, entry: u64) -> Result<(), LogError> {
        let outbox = self
            .js
            .get_stream_no_info(self.outbox_stream())
            .await
            .map_err(storage)?;
        timed("outbox delete", outbox.delete_message(entry))
            .await
            .map(|_| ())
            .map_err(|e| LogError::storage_in(format!("delete outbox entry {entry}"), e))
    }

    /// Carries out one `append_many` call whose parts name distinct,
    /// registered topics (`handles` in the order of `parts`).
    ///
    /// A failure after the entry was stored leaves the entry: a later pass
    /// completes the call (the caller saw an error, as for a publish whose
    /// ack was lost).
    pub(crate) async fn append_many_locked(
        &self,
        parts: Vec<(TopicId, Vec<NewEvent>)>,
        handles: Vec<Arc<TopicHandle>>,
    ) -> Result<Vec<Vec<Offset>>, LogError> {
        // The cached tail is at most the stream's last sequence: every event
        // of this call gets a higher one.
        let starts: Vec<u64> = handles.iter().map(|h| h.tail.latest().0).collect();
        let entry = self.publish_entry(&parts, &starts).await?;
        let mut pending = Vec::with_capacity(parts.len());
        {
            // The topics' append locks in topic order (no two calls wait on
            // each other), held while the parts are sent: each part's
            // sequences are contiguous, as `append`'s are.
            let mut order: Vec<usize> = (0..parts.len()).collect();
            order.sort_by_key(|&i| parts[i].0);
            let mut guards = Vec::with_capacity(order.len());
            for &i in &order {
                guards.push(handles[i].append.lock().await);
            }
            let none = HashSet::new();
            for (i, (topic, events)) in parts.iter().enumerate() {
                pending.push(self.send_part(entry, i, *topic, events, &none).await?);
            }
        }
        let mut out = Vec::with_capacity(parts.len());
        for (((topic, _), acks), handle) in parts.iter().zip(pending).zip(&handles) {
            let mut offsets = Vec::with_capacity(acks.len());
            for ack in acks {
                offsets.push(acked(*topic, ack).await?);
            }
            if let Some(max) = offsets.iter().max() {
                self.moved(*topic, Some(handle), *max).await;
            }
            out.push(offsets);
        }
        // Every part is stored: a stale entry would only cost a pass that
        // finds everything there.
        if let Err(error) = self.delete_entry(entry).await {
            tracing::warn!(%error, entry, "append_many: completed outbox entry not deleted");
        }
        Ok(out)
    }

    /// The indexes `i` of the messages with id `<prefix><i>` in `topic`'s
    /// stream after sequence `start`.
    async fn indexes_present(
        &self,
        topic: TopicId,
        start: u64,
        prefix: &str,
    ) -> Result<HashSet<usize>, LogError> {
        let name = self.stream_name(topic);
        let stream = timed("stream info", self.js.get_stream(&name))
            .await
            .map_err(|e| topic_err(topic, e))?;
        let last = stream.cached_info().state.last_sequence;
        let mut found = HashSet::new();
        if last <= start {
            return Ok(found);
        }
        let consumer: consumer::PullConsumer = timed(
            "create outbox check",
            self.js.create_consumer_on_stream(
                pull::Config {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start + 1,
                    },
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
        let scanned = scan(&consumer, last, |m, _| {
            let id = m.headers.as_ref().and_then(|h| h.get(H_MSG_ID));
            if let Some(index) = id
                .and_then(|id| id.as_str().strip_prefix(prefix))
                .and_then(|i| i.parse().ok())
            {
                found.insert(index);
            }
            true
        })
        .await;
        // The check is done either way; the server would drop it later.
        let _ = self
            .js
            .delete_consumer_from_stream(&consumer.cached_info().name, &name)
            .await;
        scanned.map_err(|e| topic_err(topic, e))?;
        Ok(found)
    }

    /// Publishes what of one part of entry `entry` is not in its stream.
    /// A part whose topic was deleted is dropped.
    async fn complete_part(&self, entry: u64, index: usize, part: Part) -> Result<(), LogError> {
        let prefix = format!("ob{entry}-{index}-");
        let gone = |topic: TopicId| {
            tracing::info!(
                entry,
                topic = topic.0,
                "append_many outbox: the topic of a part is deleted; part dropped"
            );
            Ok(())
        };
        let present = match self.indexes_present(part.topic, part.start, &prefix).await {
            Ok(p) => p,
            Err(LogError::UnknownTopic(_)) => return gone(part.topic),
            Err(e) => return Err(e),
        };
        if present.len() >= part.events.len() {
            return Ok(());
        }
        let handle = self.handle(part.topic).ok();
        let acks = {
            // A registered topic's lock keeps the completed events together.
            let _guard = match &handle {
                Some(h) => Some(h.append.lock().await),
                None => None,
            };
            self.send_part(entry, index, part.topic, &part.events, &present)
                .await
        };
        let mut max = None;
        let acks = match acks {
            Ok(acks) => acks,
            Err(LogError::UnknownTopic(_)) => return gone(part.topic),
            Err(e) => return Err(e),
        };
        for ack in acks {
            match acked(part.topic, ack).await {
                Ok(o) => max = max.max(Some(o)),
                Err(LogError::UnknownTopic(_)) => return gone(part.topic),
                Err(e) => return Err(e),
            }
        }
        if let Some(max) = max {
            self.moved(part.topic, handle.as_deref(), max).await;
        }
        Ok(())
    }

    /// Completes and deletes every outbox entry at least `min_age` old;
    /// returns how many. An entry that cannot be decoded is logged and left.
    pub(crate) async fn recover_outbox(&self, min_age: Duration) -> Result<usize, LogError> {
        let name = self.outbox_stream();
        let outbox = timed("outbox info", self.js.get_stream(&name))
            .await
            .map_err(|e| LogError::storage_in("the append_many outbox", e))?;
        let state = &outbox.cached_info().state;
        if state.messages == 0 {
            return Ok(0);
        }
        let last = state.last_sequence;
        let consumer: consumer::PullConsumer = timed(
            "create outbox reader",
            self.js.create_consumer_on_stream(
                pull::Config {
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::None,
                    inactive_threshold: REQUEST_TIMEOUT,
                    memory_storage: true,
                    ..Default::default()
                },
                &name,
            ),
        )
        .await
        .map_err(|e| LogError::storage_in("the append_many outbox", e))?;
        let min_age_ms = u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX);
        let newest = now_ms().saturating_sub(min_age_ms);
        let mut due = Vec::new();
        let scanned = scan(&consumer, last, |m, (seq, time)| {
            if time > newest {
                // Entries are in time order: the rest are younger still.
                return false;
            }
            due.push((seq, m.payload.clone()));
            true
        })
        .await;
        let _ = self
            .js
            .delete_consumer_from_stream(&consumer.cached_info().name, &name)
            .await;
        scanned.map_err(|e| LogError::storage_in("read the append_many outbox", e))?;
        let mut done = 0;
        for (entry, body) in due {
            let parts = match decode_entry(&body) {
                Ok(parts) => parts,
                Err(error) => {
                    tracing::error!(%error, entry, "append_many outbox entry cannot be decoded");
                    continue;
                }
            };
            for (index, part) in parts.into_iter().enumerate() {
                if !part.events.is_empty() {
                    self.complete_part(entry, index, part).await?;
                }
            }
            // Another process's pass may have deleted it first.
            if let Err(error) = self.delete_entry(entry).await {
                tracing::warn!(%error, entry, "append_many: completed outbox entry not deleted");
            }
            tracing::info!(entry, "append_many outbox entry completed");
            done += 1;
        }
        Ok(done)
    }
}

/// Feeds `each` the messages of `consumer` (with their stream sequence and
/// time) up to sequence `last`, until it returns false.
async fn scan(
    consumer: &consumer::PullConsumer,
    last: u64,
    mut each: impl FnMut(&jetstream::Message, (u64, u64)) -> bool,
) -> Result<(), crate::error::RequestError> {
    loop {
        let batch = timed("scan", async {
            let batch = consumer.fetch().max_messages(SCAN_BATCH).messages().await?;
            let messages: Vec<jetstream::Message> = batch.try_collect().await?;
            Ok::<_, async_nats::Error>(messages)
        })
        .await?;
        if batch.is_empty() {
            return Ok(());
        }
        for m in &batch {
            let Ok(info) = m.info() else {
                continue;
            };
            let at = (info.stream_sequence, millis(info));
            if !each(m, at) || at.0 >= last {
                return Ok(());
            }
        }
    }
}

/// Creates the outbox stream and starts the task that completes unfinished
/// entries: now and every [`OUTBOX_INTERVAL`].
pub(crate) async fn start(inner: &Arc<Inner>) -> Result<(), LogError> {
    inner.ensure_outbox().await?;
    inner.tasks.spawn(complete_unfinished(
        Arc::downgrade(inner),
        inner.shutdown.clone(),
    ));
    Ok(())
}

async fn complete_unfinished(inner: Weak<Inner>, stop: CancellationToken) {
    loop {
        {
            let Some(inner) = inner.upgrade() else { return };
            let pass = tokio::select! {
                _ = stop.cancelled() => return,
                pass = inner.recover_outbox(OUTBOX_GRACE) => pass,
            };
            if let Err(error) = pass {
                tracing::warn!(%error, "append_many outbox pass failed; retried later");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(OUTBOX_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, payload: &[u8], headers: &[(&str, &[u8])]) -> NewEvent {
        NewEvent {
            id: EventId::new(id),
            schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
            payload: Bytes::copy_from_slice(payload),
            headers: headers
                .iter()
                .map(|(k, v)| EventHeader {
                    key: (*k).to_owned(),
                    value: Bytes::copy_from_slice(v),
                })
                .collect(),
            generated_id: false,
        }
    }

    #[test]
    fn an_entry_round_trips() {
        let parts = vec![
            (
                TopicId(3),
                vec![
                    event("a", b"\x00\x01", &[("k", b"\xff\x00"), ("", b"")]),
                    event("", b"", &[]),
                ],
            ),
            (TopicId(u32::MAX), vec![]),
            (
                TopicId(4),
                vec![event("ü id", b"x", &[("odd: key\n", b"v")])],
            ),
        ];
        let body = encode_entry(&parts, &[7, 0, u64::MAX]);
        let back = decode_entry(&body).expect("decodes what it encoded");
        let want: Vec<Part> = parts
            .into_iter()
            .zip([7, 0, u64::MAX])
            .map(|((topic, events), start)| Part {
                topic,
                start,
                events,
            })
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn a_damaged_entry_is_corrupt_not_a_panic() {
        let parts = vec![(TopicId(1), vec![event("a", b"payload", &[("k", b"v")])])];
        let body = encode_entry(&parts, &[1]);
        for cut in 0..body.len() {
            assert!(
                matches!(decode_entry(&body[..cut]), Err(LogError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(matches!(decode_entry(&longer), Err(LogError::Corrupt(_))));
        let mut version = body;
        version[0] = 9;
        assert!(matches!(decode_entry(&version), Err(LogError::Corrupt(_))));
        // A count claiming more parts than there are bytes.
        let mut huge = vec![ENTRY_VERSION];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_entry(&huge), Err(LogError::Corrupt(_))));
    }

    #[test]
    fn message_ids_name_entry_part_and_index() {
        assert_eq!(msg_id(12, 0, 3), "ob12-0-3");
        assert_ne!(msg_id(1, 11, 1), msg_id(11, 1, 1));
    }
}
