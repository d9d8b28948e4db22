//! The header codec: one event as one NATS message.
//!
//! Owns: the headers an event is published with (schema id, message id for
//! deduplication, event headers) and decoding a stored message back into a
//! [`StoredEvent`]. Must not: publish or fetch.

use std::borrow::Cow;

use async_nats::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use eventbus_core::log::{EventHeader, LogError, NewEvent, StoredEvent};
use eventbus_core::types::{EventId, Offset, SchemaId};

pub(crate) const H_SCHEMA: &str = "Eb-Schema";
pub(crate) const H_ID: &str = "Eb-Id";
pub(crate) const H_HEADER: &str = "Eb-H";
pub(crate) const H_MSG_ID: &str = "Nats-Msg-Id";

/// Header text for a client-chosen string: itself when plain visible ASCII,
/// else `~` + base64url.
pub(crate) fn header_text(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty() && !s.starts_with('~') && s.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("~{}", URL_SAFE_NO_PAD.encode(s.as_bytes())))
    }
}

pub(crate) fn from_header_text(s: &str) -> Result<String, LogError> {
    match s.strip_prefix('~') {
        None => Ok(s.to_owned()),
        Some(b64) => URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                LogError::Corrupt(format!("header text {s:?} is not ~base64url").into())
            }),
    }
}

/// The NATS headers of one event; `repeat` counts earlier events of the
/// same call with the same id.
pub(crate) fn encode_headers(event: &NewEvent, repeat: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(H_SCHEMA, header_text(event.schema_id.as_str()).as_ref());
    let id = event.id.as_str();
    if event.generated_id {
        // Nobody can retry a publish with an id the server made up: no
        // deduplication entry, the id travels in `Eb-Id`.
        h.insert(H_ID, header_text(id).as_ref());
    } else if !id.is_empty() {
        let text = header_text(id);
        if repeat == 0 {
            h.insert(H_MSG_ID, text.as_ref());
        } else {
            // A space never occurs in header text, so this id cannot
            // collide with any event's own id.
            h.insert(H_MSG_ID, format!("{text} {repeat}"));
            h.insert(H_ID, text.as_ref());
        }
    }
    event_headers(event, &mut h);
    h
}

/// The NATS headers of one event deduplicated by `msg_id` rather than by
/// its own id (which travels in `Eb-Id`, `~` when empty, so the message id
/// is never read back as the event id).
pub(crate) fn encode_headers_as(event: &NewEvent, msg_id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(H_SCHEMA, header_text(event.schema_id.as_str()).as_ref());
    h.insert(H_MSG_ID, msg_id);
    h.insert(H_ID, header_text(event.id.as_str()).as_ref());
    event_headers(event, &mut h);
    h
}

fn event_headers(event: &NewEvent, h: &mut HeaderMap) {
    for header in &event.headers {
        h.append(
            H_HEADER,
            format!(
                "{}:{}",
                URL_SAFE_NO_PAD.encode(header.key.as_bytes()),
                URL_SAFE_NO_PAD.encode(&header.value)
            ),
        );
    }
}

pub(crate) fn decode_event(
    offset: u64,
    time_ms: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<StoredEvent, LogError> {
    let corrupt = |what: &str| LogError::Corrupt(format!("event {offset}: {what}").into());
    let headers = headers.ok_or_else(|| corrupt("no headers"))?;
    let schema = headers
        .get(H_SCHEMA)
        .ok_or_else(|| corrupt("no schema id header"))?;
    let schema_id = SchemaId::new(from_header_text(schema.as_str())?);
    let id = match headers.get(H_ID).or_else(|| headers.get(H_MSG_ID)) {
        Some(v) => from_header_text(v.as_str())?,
        None => String::new(),
    };
    let mut out = Vec::new();
    for v in headers.get_all(H_HEADER) {
        let (k, val) = v
            .as_str()
            .split_once(':')
            .ok_or_else(|| corrupt("event header without `:`"))?;
        let key = URL_SAFE_NO_PAD
            .decode(k)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| corrupt("event header key is not base64url of UTF-8"))?;
        let value = URL_SAFE_NO_PAD
            .decode(val)
            .map_err(|_| corrupt("event header value is not base64url"))?;
        out.push(EventHeader {
            key,
            value: Bytes::from(value),
        });
    }
    Ok(StoredEvent {
        offset: Offset(offset),
        time_ms,
        event: NewEvent {
            id: EventId::new(id),
            schema_id,
            payload,
            headers: out,
            generated_id: false,
        },
    })
}

pub(crate) fn millis(t: async_nats::jetstream::message::Info<'_>) -> u64 {
    u64::try_from(t.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_plain_only_for_visible_ascii() {
        assert_eq!(header_text("abc-1_X"), "abc-1_X");
        for odd in ["", "~x", "a b", "a\r\nb", "ü"] {
            let text = header_text(odd);
            assert!(text.starts_with('~'), "{odd:?} -> {text}");
            assert_eq!(from_header_text(&text).expect("ours"), odd);
        }
    }

    #[test]
    fn an_event_round_trips_through_its_headers() {
        let event = NewEvent {
            id: EventId::new("id with spaces"),
            schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
            payload: Bytes::from_static(b"\x00\xff"),
            headers: vec![EventHeader {
                key: "k: odd\n".into(),
                value: Bytes::from_static(b"\x00\r\n"),
            }],
            generated_id: false,
        };
        let generated = NewEvent {
            generated_id: true,
            ..event.clone()
        };
        let headers = encode_headers(&generated, 0);
        assert!(
            headers.get(H_MSG_ID).is_none(),
            "no deduplication by a generated id"
        );
        let back = decode_event(1, 2, Some(&headers), event.payload.clone()).expect("decodes");
        assert_eq!(back.event, event, "read back with its id, as not generated");
        let as_outbox = encode_headers_as(&event, "ob1-0-0");
        let back = decode_event(1, 2, Some(&as_outbox), event.payload.clone()).expect("decodes");
        assert_eq!(back.event, event);
        let anonymous = NewEvent {
            id: EventId::new(""),
            ..event.clone()
        };
        let as_outbox = encode_headers_as(&anonymous, "ob1-0-0");
        let back = decode_event(1, 2, Some(&as_outbox), event.payload.clone()).expect("decodes");
        assert_eq!(back.event, anonymous, "the message id is not the event id");
        for repeat in [0, 2] {
            let headers = encode_headers(&event, repeat);
            let back = decode_event(7, 9, Some(&headers), event.payload.clone())
                .expect("decodes what it encoded");
            assert_eq!((back.offset, back.time_ms), (Offset(7), 9));
            assert_eq!(back.event, event);
        }
    }
}
