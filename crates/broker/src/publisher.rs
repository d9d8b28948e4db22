//! The publish pipeline: validate each event, append the valid ones, answer
//! one outcome per event in order.
//!
//! Owns: per-event checks (id length, size, schema membership, Avro payload)
//! and correlation keys. Must not: know the wire types.

use bytes::Bytes;

use super::{Broker, BrokerError};
use crate::log::{EventHeader, NewEvent};
use crate::types::{Echo, EventId, MAX_EVENT_ID_CHARS, ReplayId, SchemaId, clip_message};

/// Most events in one publish request. The spec recommends 200 or fewer and
/// documents no hard cap; without one, a 4 MiB request of ~5-byte invalid
/// events is ~800,000 events whose outcomes take hundreds of MiB and whose
/// response is far over every client's 4 MiB limit (found by the hostile
/// client tests). At 10,000 a request's outcomes, even when every event
/// fails with a message, take about 2 MiB.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

/// One event as a publisher sent it.
#[derive(Clone, Debug)]
pub struct PublishEvent {
    /// Client id, or empty for a generated one.
    pub id: String,
    /// Writer schema id of the payload.
    pub schema_id: String,
    /// Avro datum.
    pub payload: Bytes,
    /// Reserved headers.
    pub headers: Vec<EventHeader>,
}

/// The outcome of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The client's id, the generated id on success, or empty when an event
    /// without an id failed (spec §6.4).
    pub correlation_key: String,
    /// The replay id, or a message a person understands.
    pub result: Result<ReplayId, String>,
}

/// The outcome of a whole publish request.
#[derive(Clone, Debug)]
pub struct PublishReceipt {
    /// The topic's current schema id.
    pub schema_id: SchemaId,
    /// One outcome per event, in request order.
    pub outcomes: Vec<PublishOutcome>,
}

/// A batch after its checks (see [`Broker::check_all`]).
pub(crate) struct Checked {
    /// One per event, in order.
    pub(crate) outcomes: Vec<PublishOutcome>,
    /// The valid events, ids assigned.
    pub(crate) valid: Vec<NewEvent>,
    /// The index in `outcomes` of each valid event.
    pub(crate) slots: Vec<usize>,
}

impl Broker {
    /// Publishes a batch to `topic`. Returns once every valid event is
    /// durable. Invalid events get their own error outcome and do not stop
    /// the rest of the batch.
    ///
    /// # Errors
    /// Failures of the request as a whole: blank, malformed or unknown
    /// topic, an empty batch, or a storage failure (nothing was acknowledged).
    pub async fn publish(
        &self,
        topic: &str,
        events: Vec<PublishEvent>,
    ) -> Result<PublishReceipt, BrokerError> {
        let started = std::time::Instant::now();
        if topic.trim().is_empty() {
            return Err(BrokerError::PublishTopicBlank);
        }
        let topic = self.topic(topic)?;
        if events.is_empty() {
            return Err(BrokerError::EmptyBatch);
        }
        if events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(BrokerError::TooManyEvents {
                got: events.len(),
                max: MAX_EVENTS_PER_REQUEST,
            });
        }
        let Checked {
            mut outcomes,
            valid,
            slots,
        } = self.check_all(&topic, events);
        let label = self.metrics().topic_label(topic.name.as_str());
        let rejected = outcomes.len() - valid.len();
        if rejected > 0 {
            self.metrics()
                .publish_rejected
                .get_or_create(&label)
                .inc_by(rejected as u64);
        }
        if !valid.is_empty() {
            let bytes: usize = valid.iter().map(|e| e.payload.len()).sum();
            // Custom channels the events pass go in the same atomic append.
            let routes = self.routes(&topic, &valid).await?;
            let offsets = if routes.is_empty() {
                self.log().append(topic.id, valid).await?
            } else {
                let mut parts = Vec::with_capacity(routes.len() + 1);
                parts.push((topic.id, valid));
                parts.extend(routes.into_iter().map(|r| (r.topic.id, r.events)));
                self.log()
                    .append_many(parts)
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or_default()
            };
            self.count(&self.stats().events_published, offsets.len());
            self.usage
                .published(&super::owner_of_topic(topic.name.as_str()), offsets.len());
            let m = self.metrics();
            m.publish_events
                .get_or_create(&label)
                .inc_by(offsets.len() as u64);
            m.publish_bytes.get_or_create(&label).inc_by(bytes as u64);
            m.publish_latency.observe(started.elapsed().as_secs_f64());
            for (slot, offset) in slots.into_iter().zip(offsets) {
                outcomes[slot].result = Ok(ReplayId::from(offset));
            }
        }
        Ok(PublishReceipt {
            schema_id: topic.current_schema().clone(),
            outcomes,
        })
    }

    /// Checks every event of a batch for `topic`: the valid ones with their
    /// ids assigned, an outcome per event (the valid ones' filled in after
    /// the append), and where each valid one's outcome is.
    pub(crate) fn check_all(&self, topic: &super::Topic, events: Vec<PublishEvent>) -> Checked {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut valid = Vec::with_capacity(events.len());
        let mut slots = Vec::with_capacity(events.len());
        for (i, ev) in events.into_iter().enumerate() {
            match self.check(topic, &ev) {
                Ok(()) => {
                    let generated_id = ev.id.is_empty();
                    let id = if generated_id {
                        EventId::generate()
                    } else {
                        EventId::new(ev.id)
                    };
                    outcomes.push(PublishOutcome {
                        correlation_key: id.as_str().to_owned(),
                        result: Err(String::new()), // filled after the append
                    });
                    slots.push(i);
                    valid.push(NewEvent {
                        id,
                        schema_id: SchemaId::new(ev.schema_id),
                        payload: ev.payload,
                        headers: ev.headers,
                        generated_id,
                    });
                }
                Err(msg) => outcomes.push(PublishOutcome {
                    correlation_key: ev.id,
                    // Up to 10,000 of these go back in one response.
                    result: Err(clip_message(&msg).into_owned()),
                }),
            }
        }
        Checked {
            outcomes,
            valid,
            slots,
        }
    }

    pub(crate) fn check(&self, topic: &super::Topic, ev: &PublishEvent) -> Result<(), String> {
        let id_chars = ev.id.chars().count();
        if id_chars > MAX_EVENT_ID_CHARS {
            return Err(format!(
                "The event ID is {id_chars} characters long; at most {MAX_EVENT_ID_CHARS} are allowed. Use a UUID or leave it empty."
            ));
        }
        if ev.payload.len() > self.config().max_event_bytes {
            return Err(format!(
                "The event payload is {} bytes; the limit is {} bytes per event.",
                ev.payload.len(),
                self.config().max_event_bytes
            ));
        }
        if ev.schema_id.is_empty() {
            return Err(
                "The event has no schema_id. Set it to the topic's schema ID from GetTopic."
                    .to_owned(),
            );
        }
        let sid = SchemaId::new(ev.schema_id.as_str());
        if !topic.schema_ids.contains(&sid) {
            return Err(format!(
                "The schema ID {} is not a schema of topic {}. Use the schema ID from GetTopic (current: {}).",
                Echo(&ev.schema_id),
                topic.name,
                topic.current_schema()
            ));
        }
        let schema = self
            .schemas
            .get(&sid)
            .ok_or_else(|| format!("The schema {} is not registered.", Echo(&ev.schema_id)))?;
        schema.validate(&ev.payload).map_err(|e| {
            format!(
                "The payload is not a valid Avro record for schema {}: {e}.",
                Echo(&ev.schema_id)
            )
        })
    }
}
