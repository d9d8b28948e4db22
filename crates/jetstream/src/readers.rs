//! The reader cache: pull consumers left where a subscriber stopped reading.
//!
//! Owns: one pull consumer per subscriber position, reused by the next read
//! from there, what it fetched beyond a read's byte budget, and evicting
//! idle or least recently used readers. Must not: wait for new events (the
//! tail watch does), except for one the cached tail already announced that
//! the reader's server has not stored yet (see [`Readers::read`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, pull};
use futures_util::TryStreamExt;

use eventbus_core::log::{LogError, StoredEvent};
use eventbus_core::types::{Offset, TopicId};

use crate::codec::{decode_event, millis};
use crate::error::{REQUEST_TIMEOUT, RequestError, timed, topic_err};

/// The server drops a cached reader consumer unused this long; the cache
/// forgets entries after half of it so it never fetches from a dropped one.
pub const READER_IDLE: Duration = Duration::from_secs(60);
/// Cached reader consumers (one per subscriber position), process-wide.
pub(crate) const READER_CACHE: usize = 512;

/// A pull consumer positioned at a subscriber's next offset, and what it
/// fetched beyond the last read's byte budget.
struct Reader {
    consumer: consumer::PullConsumer,
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

impl Readers {
    /// Drops the topic's readers.
    pub(crate) fn forget(&self, topic: TopicId) {
        lock(&self.cache).retain(|(t, _), _| *t != topic);
    }

    /// Reads after `after` from `stream` (topic `topic`'s), reusing the
    /// reader a previous read left there. `due`: the cached tail says an
    /// event follows `after`. The server answering this reader may not have
    /// stored it yet (its consumer can sit on a replica that lags the one that
    /// acknowledged the announced append); returning nothing then would leave a
    /// subscriber waiting on a tail that already moved, so the read waits
    /// for that event (at most half a request timeout).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read(
        &self,
        js: &jetstream::Context,
        stream: &str,
        topic: TopicId,
        after: Offset,
        max_events: usize,
        max_bytes: usize,
        due: bool,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let start = after.0 + 1;
        let cached = {
            let mut readers = lock(&self.cache);
            readers
                .remove(&(topic, start))
                .filter(|r| r.used.elapsed() < READER_IDLE / 2)
        };
        let (mut reader, fresh) = match cached {
            Some(r) => (r, false),
            None => (new_reader(js, stream, topic, start).await?, true),
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let take = |e: StoredEvent, out: &mut Vec<StoredEvent>, bytes: &mut usize| {
            let size = e.event.approx_size();
            if out.len() >= max_events || (!out.is_empty() && *bytes + size > max_bytes) {
                Err(e)
            } else {
                *bytes += size;
                out.push(e);
                Ok(())
            }
        };
        while let Some(e) = reader.buffered.pop_front() {
            if let Err(e) = take(e, &mut out, &mut bytes) {
                reader.buffered.push_front(e);
                break;
            }
        }
        if reader.buffered.is_empty() && out.len() < max_events && bytes < max_bytes {
            let fetched = match fetch(&reader.consumer, max_events - out.len(), None).await {
                Ok(f) => f,
                // The server may have dropped an idle consumer: one more
                // try on a fresh one before giving up.
                Err(_) if !fresh => {
                    reader = new_reader(js, stream, topic, start).await?;
                    fetch(&reader.consumer, max_events - out.len(), None)
                        .await
                        .map_err(|e| topic_err(topic, e))?
                }
                Err(e) => return Err(topic_err(topic, e)),
            };
            let fetched = if fetched.is_empty() && out.is_empty() && due {
                fetch(&reader.consumer, 1, Some(REQUEST_TIMEOUT / 2))
                    .await
                    .map_err(|e| topic_err(topic, e))?
            } else {
                fetched
            };
            for e in fetched {
                if !reader.buffered.is_empty() {
                    reader.buffered.push_back(e);
                } else if let Err(e) = take(e, &mut out, &mut bytes) {
                    reader.buffered.push_back(e);
                }
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
    Ok(Reader {
        consumer,
        buffered: VecDeque::new(),
        used: Instant::now(),
    })
}

/// Up to `n` stored messages from the reader's position, without waiting
/// for new ones; with `wait`, up to `n` that arrive within it.
async fn fetch(
    consumer: &consumer::PullConsumer,
    n: usize,
    wait: Option<Duration>,
) -> Result<Vec<StoredEvent>, RequestError> {
    let run = async {
        let batch = match wait {
            None => consumer.fetch().max_messages(n).messages().await?,
            Some(wait) => {
                consumer
                    .batch()
                    .max_messages(n)
                    .expires(wait)
                    .messages()
                    .await?
            }
        };
        let messages: Vec<jetstream::Message> = batch.try_collect().await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let info = m.info()?;
            let (seq, time) = (info.stream_sequence, millis(info));
            let m = m.split().0;
            out.push(decode_event(seq, time, m.headers.as_ref(), m.payload)?);
        }
        Ok::<_, async_nats::Error>(out)
    };
    timed("fetch", run).await
}
