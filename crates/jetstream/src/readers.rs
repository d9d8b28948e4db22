//! The reader cache: pull consumers left where a subscriber stopped reading.
//!
//! Owns: one pull consumer per subscriber position with its pipelined pull
//! requests (the next batch is requested while the last one is read, as a
//! JetStream client reading a stream does), reused by the next read from
//! there, what it received beyond a read's budget, and evicting idle or
//! least recently used readers. Must not: wait for new events (the tail
//! watch does), except for those the cached tail already announced (see
//! [`Readers::read`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::{FutureExt, StreamExt};

use eventbus_core::log::{LogError, StoredEvent};
use eventbus_core::types::{Offset, TopicId};

use crate::codec::{decode_event, millis};
use crate::error::{REQUEST_TIMEOUT, timed, topic_err};

/// The server drops a cached reader consumer unused this long; the cache
/// forgets entries after half of it so it never reads from a dropped one.
pub const READER_IDLE: Duration = Duration::from_secs(60);
/// Cached reader consumers (one per subscriber position), process-wide.
pub(crate) const READER_CACHE: usize = 512;
/// Messages one pull request of a reader asks for; the next request goes
/// out when half of them arrived, so a reader holds at most about one and a
/// half of these beyond what it returned (as `fetch` of a whole read did).
pub(crate) const PULL_BATCH: usize = 200;
/// How long a read waits for an event the cached tail announced (its
/// reader's server may lag the one that acknowledged it).
const DUE_WAIT: Duration = Duration::from_secs(REQUEST_TIMEOUT.as_secs() / 2);

/// A pull consumer positioned at a subscriber's next offset, its message
/// stream (pull requests outstanding), and what it received beyond the last
/// read's budget.
struct Reader {
    messages: pull::Stream,
    buffered: VecDeque<StoredEvent>,
    used: Instant,
}

/// The process's cached readers, by topic and the offset each reads next.
#[derive(Default)]
pub(crate) struct Readers {
    cache: Mutex<HashMap<(TopicId, u64), Reader>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a read keeps: up to `max_events` events and about `max_bytes`
/// (always at least one event).
struct Budget {
    max_events: usize,
    max_bytes: usize,
    bytes: usize,
}

impl Budget {
    fn full(&self, out: &[StoredEvent]) -> bool {
        out.len() >= self.max_events || (!out.is_empty() && self.bytes >= self.max_bytes)
    }

    /// Takes `e` into `out`, or gives it back when it would pass the budget.
    #[allow(clippy::result_large_err)] // gives back the event it was passed; boxing would allocate per event
    fn take(&mut self, e: StoredEvent, out: &mut Vec<StoredEvent>) -> Result<(), StoredEvent> {
        let size = e.event.approx_size();
        if out.len() >= self.max_events || (!out.is_empty() && self.bytes + size > self.max_bytes) {
            Err(e)
        } else {
            self.bytes += size;
            out.push(e);
            Ok(())
        }
    }
}

impl Readers {
    /// Drops the topic's readers.
    pub(crate) fn forget(&self, topic: TopicId) {
        lock(&self.cache).retain(|(t, _), _| *t != topic);
    }

    /// Reads after `after` from `stream` (topic `topic`'s), reusing the
    /// reader a previous read left there. `latest`: the cached tail (or
    /// `after` when retention took everything up to it). Events
    /// up to it are stored, so the read waits for them while its budget
    /// has room (they are on their way: the reader's pull requests are
    /// outstanding), and takes later ones only when they are already
    /// there. The server answering this reader may not have stored an
    /// announced event yet (its consumer can sit on a replica that lags the
    /// one that acknowledged it); returning nothing then would leave a
    /// subscriber waiting on a tail that already moved, so the read waits
    /// for that event too, at most [`DUE_WAIT`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read(
        &self,
        js: &jetstream::Context,
        stream: &str,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
        latest: Offset,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let start = after.0 + 1;
        let cached = {
            let mut readers = lock(&self.cache);
            readers
                .remove(&(topic, start))
                .filter(|r| r.used.elapsed() < READER_IDLE / 2)
        };
        let (mut reader, mut fresh) = match cached {
            Some(r) => (r, false),
            None => (new_reader(js, stream, topic, start).await?, true),
        };
        let mut out = Vec::new();
        let mut budget = Budget {
            max_events,
            max_bytes,
            bytes: 0,
        };
        while let Some(e) = reader.buffered.pop_front() {
            if let Err(e) = budget.take(e, &mut out) {
                reader.buffered.push_front(e);
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + DUE_WAIT;
        while reader.buffered.is_empty() && !budget.full(&out) {
            let last = out.last().map_or(after, |e| e.offset);
            let next = if last < latest {
                // Stored: it comes (unless the reader's server lags).
                match tokio::time::timeout_at(deadline, reader.messages.next()).await {
                    Ok(m) => m,
                    Err(_) => break,
                }
            } else {
                // Past the cached tail: only what is already here.
                match reader.messages.next().now_or_never() {
                    Some(m) => m,
                    None => break,
                }
            };
            let event = match next.map(|m| decode(m.map_err(Into::into))) {
                Some(Ok(e)) => e,
                // The server may have dropped an idle consumer: one more
                // try on a fresh one before giving up.
                Some(Err(_)) | None if !fresh && out.is_empty() => {
                    reader = new_reader(js, stream, topic, start).await?;
                    fresh = true;
                    continue;
                }
                // What was read stays good; the reader does not.
                Some(Err(_)) | None if !out.is_empty() => return Ok(out),
                Some(Err(e)) => return Err(topic_err(topic, e)),
                None => {
                    return Err(topic_err(topic, format!("reader of {stream} ended")));
                }
            };
            if let Err(e) = budget.take(event, &mut out) {
                reader.buffered.push_back(e);
            }
        }
        let next = out.last().map_or(start, |e| e.offset.0 + 1);
        reader.used = Instant::now();
        let mut readers = lock(&self.cache);
        if readers.len() >= READER_CACHE {
            // Least recently used goes; the server drops its consumer after
            // READER_IDLE.
            if let Some(oldest) = readers.iter().min_by_key(|(_, r)| r.used).map(|(k, _)| *k) {
                readers.remove(&oldest);
            }
        }
        readers.insert((topic, next), reader);
        Ok(out)
    }
}

/// A stored message as an event.
fn decode(
    m: Result<jetstream::Message, async_nats::Error>,
) -> Result<StoredEvent, async_nats::Error> {
    let m = m?;
    let info = m.info()?;
    let (seq, time) = (info.stream_sequence, millis(info));
    let m = m.split().0;
    Ok(decode_event(seq, time, m.headers.as_ref(), m.payload)?)
}

async fn new_reader(
    js: &jetstream::Context,
    stream: &str,
    topic: TopicId,
    start: u64,
) -> Result<Reader, LogError> {
    let consumer = timed(
        "create reader",
        js.create_consumer_on_stream(
            pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: READER_IDLE,
                memory_storage: true,
                ..Default::default()
            },
            stream,
        ),
    )
    .await
    .map_err(|e| topic_err(topic, e))?;
    let messages = timed(
        "start reader",
        consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(READER_IDLE / 2)
            .messages(),
    )
    .await
    .map_err(|e| topic_err(topic, e))?;
    Ok(Reader {
        messages,
        buffered: VecDeque::new(),
        used: Instant::now(),
    })
}
