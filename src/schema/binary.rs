//! The Avro binary encoding's primitives: the two writes the JSON encoder needs.
//!
//! Owns: [`write_long`] and [`write_bytes`].
//! Must not: know about schemas, field paths or messages, or let an `apache_avro` type in.

/// Appends a long as Avro does: zigzag, then a little-endian base-128 varint.
pub(super) fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends a length-prefixed byte run (`bytes`, `string`, map keys).
pub(super) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // A Vec never holds more than isize::MAX bytes, so the length fits in an i64.
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}
