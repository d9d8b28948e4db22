//! Test fixtures shared by the schema modules' unit tests.
//!
//! Owns: the splitmix64 [`Rng`] the property tests draw random values from, and the small
//! schema helpers ([`parsed`], [`one_field`], [`LINKED_LIST`]) several test modules use.
//! Must not: be compiled outside tests, or hold fixtures only one module uses (those stay
//! in that module's `tests`; a module may add its own `impl Rng` methods there).

use super::ParsedSchema;

/// A linked list: the classic recursive schema.
pub(crate) const LINKED_LIST: &str = r#"{"type":"record","name":"Node","fields":[
        {"name":"value","type":"long"},
        {"name":"next","type":["null","Node"],"default":null}]}"#;

/// The probe's schema bomb: `R_i = {a: R_(i-1), b: R_(i-1)}` for `i` in `1..=levels`,
/// with `R_0 = {x: leaf}` (`leaf` is type JSON, `"null"` for the bomb itself). Each `R_i`
/// is defined as the type of a top-level field `d_i` and refers to `R_(i-1)` by name, so
/// the JSON stays flat; a value of `R_i` has `2^i` leaves.
pub(crate) fn doubling(levels: usize, leaf: &str) -> String {
    let mut fields = vec![format!(
        r#"{{"name":"d0","type":{{"type":"record","name":"R0","fields":[{{"name":"x","type":{leaf}}}]}}}}"#
    )];
    for i in 1..=levels {
        fields.push(format!(
            r#"{{"name":"d{i}","type":{{"type":"record","name":"R{i}","fields":[{{"name":"a","type":"R{p}"}},{{"name":"b","type":"R{p}"}}]}}}}"#,
            p = i - 1
        ));
    }
    format!(
        r#"{{"type":"record","name":"Bomb","fields":[{}]}}"#,
        fields.join(",")
    )
}

/// Parses a schema the test knows to be valid.
pub(crate) fn parsed(json: &str) -> ParsedSchema {
    ParsedSchema::parse(json).expect("test schema parses")
}

/// A record `R` with the one field `name` of type `ty` (schema JSON).
pub(crate) fn one_field(name: &str, ty: &str) -> ParsedSchema {
    parsed(&format!(
        r#"{{"type":"record","name":"R","fields":[{{"name":"{name}","type":{ty}}}]}}"#
    ))
}

/// splitmix64: a tiny deterministic generator so random values can follow any schema,
/// including recursive ones, from one proptest-chosen seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`, or 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A long of any magnitude.
    pub(crate) fn long(&mut self) -> i64 {
        // Spread over every varint length, not just 10-byte ones.
        (self.next() as i64) >> self.below(64)
    }

    /// A short string mixing ASCII, multi-byte characters, NUL and a quote.
    pub(crate) fn string(&mut self) -> String {
        const CHARS: &[char] = &['a', 'Z', '0', ' ', 'é', 'ß', '中', '😀', '\0', '"'];
        (0..self.below(12))
            .map(|_| CHARS[self.below(CHARS.len())])
            .collect()
    }

    /// `n` random bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
