//! Stored events as people read them in the console: the payload decoded
//! to JSON with the schema it was written with, and change events' bitmap
//! fields followed by the field names they stand for.
//!
//! Owns: one event's display form ([`EventView`]) and its export line
//! (the same object `eventbus subscribe -o json` prints, so the two feed
//! the same tools). Must not: read the log or decide what a caller may see.

use serde::Serialize;
use serde_json::{Value, json};

use crate::broker::Broker;
use crate::log::StoredEvent;
use crate::objects::bitmap::name_header_fields;
use crate::types::ReplayId;

/// The most characters of an event's JSON the console shows; the export
/// carries every event whole.
pub(super) const MAX_SHOWN: usize = 64 * 1024;

/// The one-line summary's length.
const SUMMARY: usize = 160;

/// One event as the browse list and the live tail show it.
#[derive(Clone, Debug, Serialize)]
pub(super) struct EventView {
    /// The replay id in hex.
    pub(super) replay_id: String,
    /// When it was committed (RFC 3339, UTC).
    pub(super) time: String,
    /// The schema it was written with.
    pub(super) schema: String,
    /// The event id (the publisher's, or the one the server gave it).
    pub(super) event_id: String,
    /// The decoded payload on one line, cut short.
    pub(super) summary: String,
    /// The decoded payload, indented (cut at [`MAX_SHOWN`]).
    pub(super) json: String,
}

/// `e`'s payload as JSON, change events' bitmaps named; a payload that does
/// not decode (or whose schema is unknown) becomes a one-field object
/// saying why, so one bad event does not hide the others.
pub(super) fn payload_json(broker: &Broker, e: &StoredEvent) -> Value {
    let schema = match broker.schema(e.event.schema_id.as_str()) {
        Ok(s) => s,
        Err(err) => return json!({ "undecodable": err.to_string() }),
    };
    match schema.decode_to_json(&e.event.payload) {
        Ok(mut v) => {
            name_header_fields(schema.json(), &mut v);
            v
        }
        Err(err) => json!({ "undecodable": err.to_string() }),
    }
}

/// The first `max` characters of `s`, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

impl EventView {
    /// The view of a stored event.
    pub(super) fn of(broker: &Broker, e: &StoredEvent) -> Self {
        let payload = payload_json(broker, e);
        let line = payload.to_string();
        let pretty = serde_json::to_string_pretty(&payload).unwrap_or_else(|_| line.clone());
        EventView {
            replay_id: ReplayId::from(e.offset).to_string(),
            time: super::position::rfc3339_ms(e.time_ms),
            schema: e.event.schema_id.to_string(),
            event_id: e.event.id.to_string(),
            summary: cut(&line, SUMMARY),
            json: cut(&pretty, MAX_SHOWN),
        }
    }
}

/// One export line: `{"replay_id","event_id","schema_id","payload"}` and
/// the commit `time`, newline-terminated.
pub(super) fn export_line(broker: &Broker, e: &StoredEvent) -> String {
    let mut line = json!({
        "replay_id": ReplayId::from(e.offset).to_string(),
        "event_id": e.event.id.to_string(),
        "schema_id": e.event.schema_id.to_string(),
        "payload": payload_json(broker, e),
        "time": super::position::rfc3339_ms(e.time_ms),
    })
    .to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("ééé", 2), "éé…");
    }
}
