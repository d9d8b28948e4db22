//! The Avro binary encoding's primitives: one cursor that reads them, for the validator and
//! the JSON decoder alike, and the two writes the JSON encoder needs.
//!
//! Owns: [`Reader`] (zigzag varint `int`s and `long`s, booleans, floats, doubles, `fixed`
//! runs, length-prefixed bytes and strings, and array/map block headers, including the
//! negative-count form with a byte size), [`Block`], [`ReadError`], and [`write_long`] /
//! [`write_bytes`].
//! Must not: know about schemas, field paths or messages (each caller maps [`ReadError`]
//! to its own error), allocate, or trust a length, count or byte size before checking it
//! against the bytes that are left.
//!
//! Every read is as strict as the validator wants it (see `schema::validate`): a varint
//! may take at most 10 bytes (5 for an `int`) and may not set bits past the 64th, an `int`
//! must fit in 32 bits, a boolean byte must be 0 or 1, strings must be UTF-8, and a length
//! or block byte size must be non-negative and fit in the bytes left. A read costs time in
//! proportion to the bytes it consumes, and never reads past the end of the input. After an
//! error the position is unspecified: callers stop at the first error.

/// Longest varint encoding of an Avro `long` (64 bits at 7 bits per byte).
const MAX_LONG_VARINT_BYTES: usize = 10;

/// Longest varint encoding of an Avro `int`; Java's reader rejects longer ones.
const MAX_INT_VARINT_BYTES: usize = 5;

/// Why a read failed. The variants carry the facts; the callers add what was being read
/// (`a double`, `string length`, the field path) to their own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// The input ended inside a varint.
    TruncatedVarint,
    /// The input ended before a fixed-size value: it needs `needed` bytes, `remaining` were
    /// left.
    Truncated { needed: usize, remaining: usize },
    /// A varint with more bytes than its type allows: `what` is `int` or `long`, `max` the
    /// most bytes it may take.
    VarintTooLong { what: &'static str, max: usize },
    /// A 10-byte varint that sets bits beyond the 64th.
    LongOverflow,
    /// An `int` varint whose value does not fit in 32 bits.
    IntOutOfRange { value: i64 },
    /// A boolean byte other than 0 or 1.
    InvalidBoolean { byte: u8 },
    /// A negative length (bytes, string) or block byte size.
    NegativeLength { length: i64 },
    /// A length or block byte size larger than the `remaining` bytes after it.
    LengthExceedsInput { length: i64, remaining: usize },
    /// A string whose bytes are not UTF-8.
    InvalidUtf8,
}

/// The header of one array or map block (not the end marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    /// How many items (or entries) the block declares; not yet checked against anything.
    pub(super) count: u64,
    /// The byte size the negative-count form declares for the block's items, already
    /// checked to fit in the bytes left; `None` for the plain form.
    pub(super) byte_size: Option<u64>,
}

/// A cursor over one Avro binary payload. Each read consumes exactly the bytes of one
/// primitive encoding, or fails. Not `Copy`, so a read cannot land on a stray copy.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    /// The bytes not yet consumed.
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub(super) fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    /// How many bytes are left.
    #[inline]
    pub(super) fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Whether every byte has been consumed.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Reads a boolean: one byte, 0 or 1.
    #[inline]
    pub(super) fn boolean(&mut self) -> Result<bool, ReadError> {
        match self.input.split_first() {
            Some((&byte, rest)) if byte <= 1 => {
                self.input = rest;
                Ok(byte == 1)
            }
            Some((&byte, _)) => Err(ReadError::InvalidBoolean { byte }),
            None => Err(ReadError::Truncated {
                needed: 1,
                remaining: 0,
            }),
        }
    }

    /// Reads an `int`: a zigzag varint of at most 5 bytes whose value fits in 32 bits.
    #[inline]
    pub(super) fn int(&mut self) -> Result<i32, ReadError> {
        let raw = self.varint(MAX_INT_VARINT_BYTES, "int")?;
        // Zigzag maps the 32-bit range onto 0..=u32::MAX.
        if raw > u64::from(u32::MAX) {
            return Err(ReadError::IntOutOfRange { value: zigzag(raw) });
        }
        // raw ≤ u32::MAX, so the zigzag value is in i32's range and the cast is exact.
        Ok(zigzag(raw) as i32)
    }

    /// Reads a `long`: a zigzag varint of at most 10 bytes that fits in 64 bits. Union
    /// indexes, lengths and block counts are longs too.
    #[inline]
    pub(super) fn long(&mut self) -> Result<i64, ReadError> {
        let raw = self.varint(MAX_LONG_VARINT_BYTES, "long")?;
        Ok(zigzag(raw))
    }

    /// Reads a `float`: 4 bytes, little-endian IEEE 754.
    #[inline]
    pub(super) fn float(&mut self) -> Result<f32, ReadError> {
        self.array().map(f32::from_le_bytes)
    }

    /// Reads a `double`: 8 bytes, little-endian IEEE 754.
    #[inline]
    pub(super) fn double(&mut self) -> Result<f64, ReadError> {
        self.array().map(f64::from_le_bytes)
    }

    /// Reads exactly `n` bytes: a `fixed` value of size `n`.
    #[inline]
    pub(super) fn fixed(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.input.len() {
            return Err(ReadError::Truncated {
                needed: n,
                remaining: self.input.len(),
            });
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// Reads `bytes`: a `long` length, checked against the bytes left before anything is
    /// taken, then that many bytes.
    #[inline]
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let length = self.long()?;
        let remaining = self.input.len();
        match usize::try_from(length) {
            Ok(n) if n <= remaining => {
                let (head, rest) = self.input.split_at(n);
                self.input = rest;
                Ok(head)
            }
            // usize is 64 bits on every target we build for, so only negatives fail the
            // conversion.
            Err(_) if length < 0 => Err(ReadError::NegativeLength { length }),
            Ok(_) | Err(_) => Err(ReadError::LengthExceedsInput { length, remaining }),
        }
    }

    /// Reads a `string` (or map key): as [`Reader::bytes`], checked to be UTF-8. Returns
    /// the bytes: this is for callers that need only the check (the validator), which an
    /// ASCII scan before the full UTF-8 check makes much cheaper on the short strings events
    /// are full of. A caller that wants a `&str` reads [`Reader::bytes`] and converts.
    #[inline]
    pub(super) fn string(&mut self) -> Result<&'a [u8], ReadError> {
        let bytes = self.bytes()?;
        // `is_ascii` first: Salesforce strings are mostly ASCII ids and names, and its
        // word-at-a-time scan is much cheaper than `from_utf8` on short strings.
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
            Ok(bytes)
        } else {
            Err(ReadError::InvalidUtf8)
        }
    }

    /// Reads an array or map block header: `None` at the end marker (count 0), otherwise
    /// the item count and, for the negative-count form, the byte size that follows it,
    /// checked to be non-negative and to fit in the bytes left. The count itself is only
    /// as trustworthy as the caller's checks make it: each caller bounds it (the
    /// validator by the items' minimum size, the decoder by having validated first).
    #[inline]
    pub(super) fn block(&mut self) -> Result<Option<Block>, ReadError> {
        let raw = self.long()?;
        if raw == 0 {
            return Ok(None);
        }
        let byte_size = if raw < 0 {
            let size = self.long()?;
            let remaining = self.input.len();
            match u64::try_from(size) {
                Err(_) => return Err(ReadError::NegativeLength { length: size }),
                Ok(s) if s > remaining as u64 => {
                    return Err(ReadError::LengthExceedsInput {
                        length: size,
                        remaining,
                    });
                }
                Ok(s) => Some(s),
            }
        } else {
            None
        };
        Ok(Some(Block {
            count: raw.unsigned_abs(),
            byte_size,
        }))
    }

    /// Reads exactly `N` bytes as an array.
    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        match self.input.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.input = rest;
                Ok(*head)
            }
            None => Err(ReadError::Truncated {
                needed: N,
                remaining: self.input.len(),
            }),
        }
    }

    /// Reads an unsigned LEB128 varint of at most `max_bytes` bytes.
    #[inline(always)]
    fn varint(&mut self, max_bytes: usize, what: &'static str) -> Result<u64, ReadError> {
        // Fast path, inlined: most lengths, indexes and small numbers are one byte.
        if let Some((&byte, rest)) = self.input.split_first()
            && byte < 0x80
        {
            self.input = rest;
            return Ok(u64::from(byte));
        }
        self.varint_multi_byte(max_bytes, what)
    }

    #[inline(never)]
    fn varint_multi_byte(
        &mut self,
        max_bytes: usize,
        what: &'static str,
    ) -> Result<u64, ReadError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.input.iter().enumerate() {
            if i == max_bytes {
                return Err(ReadError::VarintTooLong {
                    what,
                    max: max_bytes,
                });
            }
            // The 10th byte holds bit 63 only; anything above would be silently dropped.
            if i == MAX_LONG_VARINT_BYTES - 1 && byte & 0x7f > 1 {
                return Err(ReadError::LongOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                // i < len, so i + 1 ≤ len and the slice is in bounds.
                self.input = &self.input[i + 1..];
                return Ok(value);
            }
        }
        Err(ReadError::TruncatedVarint)
    }
}

/// Avro's zigzag decoding: 0, 1, 2, 3 … → 0, -1, 1, -2 ….
#[inline]
fn zigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::Schema;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;
    use proptest::prelude::*;

    fn long(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_long(&mut out, v);
        out
    }

    /// apache-avro's encoding of one value of a primitive schema.
    fn avro(schema: &Schema, value: Value) -> Vec<u8> {
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("test value encodes")
    }

    /// Runs `read` on `input`, returning its result and the bytes it left.
    fn read<'a, T>(
        input: &'a [u8],
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, ReadError>,
    ) -> (Result<T, ReadError>, usize) {
        let mut reader = Reader::new(input);
        let out = read(&mut reader);
        (out, reader.remaining())
    }

    #[test]
    fn zigzag_orders_small_magnitudes_first() {
        let cases: [(i64, &[u8]); 8] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (
                i64::MAX,
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                i64::MIN,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(long(value), bytes, "{value}");
            assert_eq!(read(bytes, Reader::long), (Ok(value), 0), "{value}");
        }
        assert_eq!(zigzag(u64::MAX), i64::MIN);
        assert_eq!(zigzag(u64::MAX - 1), i64::MAX);
    }

    #[test]
    fn ints_are_longs_of_at_most_five_bytes_within_32_bits() {
        for value in [0, -1, 1, i32::MIN, i32::MAX] {
            assert_eq!(read(&long(i64::from(value)), Reader::int), (Ok(value), 0));
        }
        assert_eq!(
            read(&long(i64::from(i32::MAX) + 1), Reader::int).0,
            Err(ReadError::IntOutOfRange {
                value: i64::from(i32::MAX) + 1
            })
        );
        assert_eq!(
            read(&long(i64::from(i32::MIN) - 1), Reader::int).0,
            Err(ReadError::IntOutOfRange {
                value: i64::from(i32::MIN) - 1
            })
        );
        // The most a 5-byte varint holds: 35 bits.
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0x7f], Reader::int).0,
            Err(ReadError::IntOutOfRange {
                value: zigzag((1 << 35) - 1)
            })
        );
    }

    #[test]
    fn overlong_varints_are_rejected() {
        // Padding with continuation bytes is legal up to the type's length.
        let mut ten = vec![0x80; 9];
        ten.push(0x00);
        assert_eq!(read(&ten, Reader::long), (Ok(0), 0));
        // Bit 63 alone: zigzag 2^63 is 2^62.
        ten[9] = 0x01;
        assert_eq!(read(&ten, Reader::long), (Ok(1 << 62), 0));
        let mut eleven = vec![0x80; 10];
        eleven.push(0x00);
        assert_eq!(
            read(&eleven, Reader::long).0,
            Err(ReadError::VarintTooLong {
                what: "long",
                max: 10
            })
        );
        // The 10th byte may only hold bit 63.
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(
            read(&overflow, Reader::long).0,
            Err(ReadError::LongOverflow)
        );
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], Reader::int).0,
            Err(ReadError::VarintTooLong {
                what: "int",
                max: 5
            })
        );
        assert_eq!(read(&[0x80, 0x80, 0x80, 0x80, 0x00], Reader::int).0, Ok(0));
    }

    #[test]
    fn truncated_input_is_reported_not_read_past() {
        assert_eq!(read(&[], Reader::long).0, Err(ReadError::TruncatedVarint));
        let bytes = long(i64::MAX);
        for end in 0..bytes.len() {
            assert_eq!(
                read(&bytes[..end], Reader::long).0,
                Err(ReadError::TruncatedVarint),
                "{end}"
            );
        }
        assert_eq!(
            read(&[], Reader::boolean).0,
            Err(ReadError::Truncated {
                needed: 1,
                remaining: 0
            })
        );
        assert_eq!(
            read(&[0; 3], Reader::float).0,
            Err(ReadError::Truncated {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(
            read(&[0; 7], Reader::double).0,
            Err(ReadError::Truncated {
                needed: 8,
                remaining: 7
            })
        );
        assert_eq!(
            read(&[0; 15], |r| r.fixed(16)).0,
            Err(ReadError::Truncated {
                needed: 16,
                remaining: 15
            })
        );
        assert_eq!(read(&[], |r| r.fixed(0)), (Ok(&[][..]), 0));
        // A length beyond the bytes left fails before anything is taken.
        let mut input = long(i64::MAX);
        input.extend_from_slice(b"abc");
        assert_eq!(
            read(&input, Reader::bytes),
            (
                Err(ReadError::LengthExceedsInput {
                    length: i64::MAX,
                    remaining: 3
                }),
                3
            )
        );
        assert_eq!(
            read(&long(-5), Reader::string).0,
            Err(ReadError::NegativeLength { length: -5 })
        );
    }

    #[test]
    fn fixed_size_values_are_little_endian() {
        assert_eq!(read(&[0, 1], Reader::boolean), (Ok(false), 1));
        assert_eq!(read(&[1], Reader::boolean), (Ok(true), 0));
        assert_eq!(
            read(&[2], Reader::boolean).0,
            Err(ReadError::InvalidBoolean { byte: 2 })
        );
        assert_eq!(read(&1.5f32.to_le_bytes(), Reader::float), (Ok(1.5), 0));
        assert_eq!(
            read(&(-0.1f64).to_le_bytes(), Reader::double),
            (Ok(-0.1), 0)
        );
        assert_eq!(read(&[7, 8, 9], |r| r.fixed(2)), (Ok(&[7, 8][..]), 1));
    }

    #[test]
    fn strings_must_be_utf8_and_bytes_need_not() {
        let mut input = Vec::new();
        write_bytes(&mut input, "Ünïcödé ✓".as_bytes());
        assert_eq!(
            read(&input, Reader::string),
            (Ok("Ünïcödé ✓".as_bytes()), 0)
        );
        let bad = [&long(2)[..], &[0xc3, 0x28]].concat();
        assert_eq!(read(&bad, Reader::string).0, Err(ReadError::InvalidUtf8));
        assert_eq!(read(&bad, Reader::bytes), (Ok(&[0xc3, 0x28][..]), 0));
    }

    #[test]
    fn block_headers_read_both_forms() {
        assert_eq!(read(&long(0), Reader::block), (Ok(None), 0));
        assert_eq!(
            read(&long(3), Reader::block),
            (
                Ok(Some(Block {
                    count: 3,
                    byte_size: None
                })),
                0
            )
        );
        // Count -2 with a byte size of 2, then the two items.
        assert_eq!(
            read(&[3, 4, 2, 1], Reader::block),
            (
                Ok(Some(Block {
                    count: 2,
                    byte_size: Some(2)
                })),
                2
            )
        );
        // i64::MIN: the negative form with the largest magnitude.
        let input = [long(i64::MIN), long(0)].concat();
        assert_eq!(
            read(&input, Reader::block).0,
            Ok(Some(Block {
                count: 1 << 63,
                byte_size: Some(0)
            }))
        );
        assert_eq!(
            read(&[long(-1), long(-4), long(1)].concat(), Reader::block).0,
            Err(ReadError::NegativeLength { length: -4 })
        );
        assert_eq!(
            read(&[long(-1), long(1 << 50), long(1)].concat(), Reader::block).0,
            Err(ReadError::LengthExceedsInput {
                length: 1 << 50,
                remaining: 1
            })
        );
        assert_eq!(
            read(&long(-1), Reader::block).0,
            Err(ReadError::TruncatedVarint)
        );
    }

    /// One read of each kind, picked by `op`.
    fn any_read(reader: &mut Reader<'_>, op: u8) -> Result<(), ReadError> {
        match op % 9 {
            0 => reader.boolean().map(drop),
            1 => reader.int().map(drop),
            2 => reader.long().map(drop),
            3 => reader.float().map(drop),
            4 => reader.double().map(drop),
            5 => reader.fixed(usize::from(op)).map(drop),
            6 => reader.bytes().map(drop),
            7 => reader.string().map(drop),
            _ => reader.block().map(drop),
        }
    }

    proptest! {
        #[test]
        fn longs_round_trip_and_match_apache_avro(value in any::<i64>()) {
            let bytes = long(value);
            prop_assert_eq!(&bytes, &avro(&Schema::Long, Value::Long(value)));
            prop_assert_eq!(read(&bytes, Reader::long), (Ok(value), 0));
        }

        #[test]
        fn ints_round_trip_and_match_apache_avro(value in any::<i32>()) {
            let bytes = long(i64::from(value));
            prop_assert_eq!(&bytes, &avro(&Schema::Int, Value::Int(value)));
            prop_assert_eq!(read(&bytes, Reader::int), (Ok(value), 0));
        }

        #[test]
        fn strings_round_trip_and_match_apache_avro(text in ".{0,40}") {
            let mut bytes = Vec::new();
            write_bytes(&mut bytes, text.as_bytes());
            prop_assert_eq!(&bytes, &avro(&Schema::String, Value::String(text.clone())));
            prop_assert_eq!(read(&bytes, Reader::string), (Ok(text.as_bytes()), 0));
        }

        /// Whatever the bytes, reads never panic or read past the end, and each successful
        /// one consumes at least a byte (`fixed` is only asked for 5 bytes or more here).
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            ops in proptest::collection::vec(any::<u8>(), 1..32),
        ) {
            let mut reader = Reader::new(&bytes);
            for op in ops {
                let before = reader.remaining();
                let result = any_read(&mut reader, op);
                prop_assert!(reader.remaining() <= before);
                if result.is_err() {
                    break;
                }
                prop_assert!(reader.remaining() < before);
            }
        }
    }
}
