//! What `eventbus subscribe` prints: each event in the chosen format, the
//! schemas to decode it, and the summary on exit.
//!
//! Owns: the output formats (`json` is the stable, scriptable one) and the
//! schema cache.
//! Must not: talk to the stream or decide when to stop.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::super::ConnArgs;
use super::super::wire::{hex, unary};
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
use crate::schema::ParsedSchema;

/// `--output`: how each event is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: replay_id (hex), event_id, schema_id,
    /// payload (the default when standard output is not a terminal).
    Json,
    /// A header line with the replay id and the event's time, then the
    /// payload as indented JSON (the default on a terminal).
    Pretty,
    /// Only the decoded payload, one JSON object per line.
    Payload,
}

/// The payload field that holds an event's time, as Salesforce names it:
/// epoch milliseconds.
pub(super) const CREATED_DATE: &str = "CreatedDate";

/// The event time of a decoded payload (`CreatedDate`, epoch ms), if the
/// schema has one.
pub(super) fn created_ms(payload: &Value) -> Option<i64> {
    payload.get(CREATED_DATE).and_then(Value::as_i64)
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub(super) fn rfc3339_ms(ms: i64) -> String {
    let at = if ms >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    };
    humantime::format_rfc3339_millis(at).to_string()
}

/// One event as `format` prints it, ending in a newline.
pub(super) fn render(
    format: Format,
    replay_id: &[u8],
    event: &pb::ProducerEvent,
    payload: &Value,
) -> String {
    match format {
        // Exactly the objects of earlier versions: scripts parse them.
        Format::Json => format!(
            "{}\n",
            json!({
                "replay_id": hex(replay_id),
                "event_id": event.id,
                "schema_id": event.schema_id,
                "payload": payload,
            })
        ),
        Format::Payload => format!("{payload}\n"),
        Format::Pretty => {
            let time =
                created_ms(payload).map_or_else(String::new, |ms| format!("  {}", rfc3339_ms(ms)));
            let body =
                serde_json::to_string_pretty(payload).unwrap_or_else(|_| payload.to_string());
            format!(
                "replay_id {}{time}  event_id {}  schema_id {}\n{body}\n\n",
                hex(replay_id),
                event.id,
                event.schema_id
            )
        }
    }
}

/// The schemas seen so far, fetched with GetSchema the first time an event
/// names one.
#[derive(Default)]
pub(super) struct Schemas(HashMap<String, ParsedSchema>);

impl Schemas {
    /// The payload of `event` decoded to JSON.
    ///
    /// # Errors
    /// GetSchema failed, or the schema or the payload does not decode.
    pub(super) async fn decode(
        &mut self,
        client: &mut PubSubClient<Channel>,
        conn: &ConnArgs,
        replay_id: &[u8],
        event: &pb::ProducerEvent,
    ) -> Result<Value> {
        if !self.0.contains_key(&event.schema_id) {
            let s = client
                .get_schema(unary(
                    conn,
                    pb::SchemaRequest {
                        schema_id: event.schema_id.clone(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("GetSchema", e))?
                .into_inner();
            let parsed = ParsedSchema::parse(&s.schema_json)
                .map_err(|e| anyhow!("schema {} does not parse: {e}", event.schema_id))?;
            self.0.insert(event.schema_id.clone(), parsed);
        }
        let Some(schema) = self.0.get(&event.schema_id) else {
            return Ok(Value::Null);
        };
        let mut payload = schema
            .decode_to_json(&event.payload)
            .map_err(|e| anyhow!("event {} does not decode: {e}", hex(replay_id)))?;
        crate::objects::bitmap::name_header_fields(schema.json(), &mut payload);
        Ok(payload)
    }
}

/// The line printed on exit: how many events, how fast, and where to
/// resume.
pub(super) fn summary(
    printed: u64,
    elapsed: Duration,
    last: Option<&[u8]>,
    resume: &str,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        printed as f64 / secs
    } else {
        0.0
    };
    let mut line = format!(
        "{printed} event{} in {:.1}s ({rate:.1}/s)",
        if printed == 1 { "" } else { "s" },
        secs
    );
    match last {
        Some(id) => line.push_str(&format!("; last replay id {}; {resume}", hex(id))),
        None => line.push_str("; nothing printed"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> pb::ProducerEvent {
        pb::ProducerEvent {
            id: "e-1".into(),
            schema_id: "s-1".into(),
            payload: Default::default(),
            headers: vec![],
        }
    }

    #[test]
    fn json_lines_keep_their_shape() {
        let line = render(
            Format::Json,
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &event(),
            &json!({"A": 1}),
        );
        assert_eq!(
            line,
            "{\"replay_id\":\"000000000000002a\",\"event_id\":\"e-1\",\"schema_id\":\"s-1\",\"payload\":{\"A\":1}}\n"
        );
    }

    #[test]
    fn payload_is_the_payload_alone() {
        let line = render(Format::Payload, &[0; 8], &event(), &json!({"A": 1}));
        assert_eq!(line, "{\"A\":1}\n");
    }

    #[test]
    fn pretty_heads_the_indented_payload_with_id_and_time() {
        let text = render(
            Format::Pretty,
            &[0, 0, 0, 0, 0, 0, 0, 42],
            &event(),
            &json!({"CreatedDate": 1_764_842_400_123_i64, "A": 1}),
        );
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "replay_id 000000000000002a  2025-12-04T10:00:00.123Z  event_id e-1  schema_id s-1"
            )
        );
        assert_eq!(lines.next(), Some("{"));
        assert!(text.ends_with("}\n\n"), "{text}");
    }

    #[test]
    fn the_summary_names_the_resume_point() {
        let s = summary(
            3,
            Duration::from_secs(2),
            Some(&[0, 0, 0, 0, 0, 0, 0, 9]),
            "resume with --from 0000000000000009",
        );
        assert_eq!(
            s,
            "3 events in 2.0s (1.5/s); last replay id 0000000000000009; resume with --from 0000000000000009"
        );
        assert_eq!(
            summary(0, Duration::ZERO, None, ""),
            "0 events in 0.0s (0.0/s); nothing printed"
        );
    }
}
