//! Byte layout of a stored event record (the value under an event key).
//!
//! Owns: encoding and decoding event values. Must not: touch the database.
//!
//! Layout, version 1: `version:u8 | time_ms:u64 | id_len:u16 | id |
//! schema_len:u16 | schema_id | header_count:u16 | (key_len:u16 | key |
//! value_len:u32 | value)* | payload`. The payload runs to the end, so it
//! needs no length and is stored exactly as published.

use bytes::{BufMut, Bytes};

use crate::types::{EventId, SchemaId};
use eventbus_core::log::{EventHeader, LogError, NewEvent};

const VERSION: u8 = 1;

/// Encodes an event record.
pub fn encode(time_ms: u64, event: &NewEvent, out: &mut Vec<u8>) {
    out.reserve(event.approx_size());
    out.put_u8(VERSION);
    out.put_u64(time_ms);
    put_str16(out, event.id.as_str());
    put_str16(out, event.schema_id.as_str());
    out.put_u16(u16::try_from(event.headers.len()).unwrap_or(u16::MAX));
    for h in event.headers.iter().take(u16::MAX as usize) {
        put_str16(out, &h.key);
        out.put_u32(u32::try_from(h.value.len()).unwrap_or(u32::MAX));
        out.put_slice(&h.value[..h.value.len().min(u32::MAX as usize)]);
    }
    out.put_slice(&event.payload);
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Ids and header keys are short (event ids ≤ 36 chars, schema ids 22);
    // the broker rejects anything longer before it reaches the log.
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

/// Reads only the commit time of a record (retention scans need nothing else).
pub fn decode_time(value: &[u8]) -> Result<u64, LogError> {
    let mut r = Reader { buf: value, pos: 0 };
    r.header()?;
    r.u64()
}

/// Decodes an event record. The payload and header values are slices of
/// `value` (no copy): a read copies a batch of records into one buffer and
/// decodes each from its slice of it.
pub fn decode(value: &Bytes) -> Result<(u64, NewEvent), LogError> {
    let mut r = Reader { buf: value, pos: 0 };
    r.header()?;
    let time_ms = r.u64()?;
    let id = r.str16()?;
    let schema_id = r.str16()?;
    let n = r.u16()? as usize;
    let mut headers = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let key = r.str16()?;
        let len = r.u32()? as usize;
        let start = r.pos;
        r.take(len)?;
        headers.push(EventHeader {
            key,
            value: value.slice(start..r.pos),
        });
    }
    let payload = value.slice(r.pos..);
    Ok((
        time_ms,
        NewEvent {
            id: EventId::new(id),
            schema_id: SchemaId::new(schema_id),
            payload,
            headers,
            generated_id: false,
        },
    ))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn header(&mut self) -> Result<(), LogError> {
        match self.take(1)?[0] {
            VERSION => Ok(()),
            v => Err(LogError::Corrupt(
                format!("unknown event record version {v}").into(),
            )),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| LogError::Corrupt("event record is truncated".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, LogError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LogError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, LogError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn str16(&mut self) -> Result<String, LogError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| LogError::Corrupt("event record holds invalid UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(time: u64, id in "[a-zA-Z0-9-]{0,36}", schema in "[a-zA-Z0-9_-]{22}",
                              payload: Vec<u8>, hk in "[a-z]{0,8}", hv: Vec<u8>) {
            let ev = NewEvent {
                id: EventId::new(id),
                schema_id: SchemaId::new(schema),
                payload: Bytes::from(payload),
                headers: vec![EventHeader { key: hk, value: Bytes::from(hv) }],
                generated_id: false,
            };
            let mut buf = Vec::new();
            encode(time, &ev, &mut buf);
            prop_assert_eq!(decode_time(&buf).ok(), Some(time));
            let (t, back) = decode(&Bytes::from(buf.clone())).expect("decodes what encode wrote");
            prop_assert_eq!(t, time);
            prop_assert_eq!(back, ev);
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            let _ = decode(&Bytes::from(bytes));
        }
    }
}
