//! The benchmark event: an Avro record `{CreatedDate: long, CreatedById:
//! string, Data__c: string}` padded to the requested size. CreatedDate
//! carries the send time in microseconds since the Unix epoch, so a
//! subscriber in the same process can compute end-to-end latency.

use std::time::{SystemTime, UNIX_EPOCH};

/// The bench topic's schema.
pub(crate) const SCHEMA: &str = r#"{"type":"record","name":"Bench__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Data__c","type":"string"}]}"#;

/// Smallest payload: the two fixed fields plus the filler's length prefix.
pub(crate) const MIN_SIZE: usize = 40;

const USER: &str = "005000000000000AAA";

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn varint_len(v: i64) -> usize {
    let mut buf = Vec::with_capacity(10);
    put_long(&mut buf, v);
    buf.len()
}

/// Encodes an event of `size` bytes stamped with `sent_us` (sizes below
/// [`MIN_SIZE`] are rounded up; where the filler's length prefix grows by a
/// byte, the event may come out one byte short).
pub(crate) fn encode(sent_us: i64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(MIN_SIZE));
    // Varints shrink for small numbers, so the filler is sized from what was
    // actually written.
    put_long(&mut out, sent_us);
    put_long(&mut out, USER.len() as i64);
    out.extend_from_slice(USER.as_bytes());
    let fixed = out.len();
    let target = size.max(MIN_SIZE);
    // Find the filler length n with len(varint(n)) + n + fixed == target.
    let mut n = target.saturating_sub(fixed + 1);
    while n > 0 && fixed + varint_len(n as i64) + n > target {
        n -= 1;
    }
    put_long(&mut out, n as i64);
    out.resize(out.len() + n, b'x');
    out
}

/// The send stamp of an encoded event.
pub(crate) fn sent_us(payload: &[u8]) -> Option<i64> {
    let mut z: u64 = 0;
    for (i, b) in payload.iter().take(10).enumerate() {
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ParsedSchema;

    #[test]
    fn events_have_the_requested_size_validate_and_carry_the_stamp() {
        let schema = ParsedSchema::parse(SCHEMA).expect("schema");
        for size in [MIN_SIZE, 100, 129, 1024, 16_385, 1 << 20] {
            let p = encode(1_700_000_000_123_456, size);
            assert!(
                p.len() == size || p.len() + 1 == size,
                "size {size}: {}",
                p.len()
            );
            schema.validate(&p).expect("valid Avro");
            assert_eq!(sent_us(&p), Some(1_700_000_000_123_456));
        }
    }
}
