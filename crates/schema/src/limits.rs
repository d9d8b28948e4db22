//! Registration caps on one schema: what a new schema may cost before it is accepted.
//!
//! Owns: [`SchemaLimits`] and [`ParsedSchema::check_limits`], the checks the Admin API and
//! the topics folder run on every schema they register (size, number of types, nesting as
//! written, types with no finite encoding, and zero-byte types that expand into many
//! values).
//! Must not: count per tenant (the broker knows which topics, and so which schemas, a
//! tenant has) or apply to schemas loaded from storage: a schema that was accepted once
//! keeps loading, whatever the caps are now.
//!
//! Why these caps, given that validation is linear in the payload whatever the schema:
//! - the schema itself costs memory and parse time roughly in proportion to its text and
//!   its types (about 25 bytes of memory per byte of JSON), so both are capped;
//! - a zero-byte type (records of `null`s) costs nothing to validate but every reader's
//!   decoder builds each of its values: a record that uses one such record twice per level
//!   for 44 levels is 5.9 KB of JSON and 2^44 values for an empty payload;
//! - a type that contains itself with no union or array to stop the recursion has no
//!   value at all, so no event could ever be published to it;
//! - a payload may nest at most [`MAX_DEPTH`] records, arrays and maps, so a schema
//!   written deeper than that cannot carry its deepest values.

use super::validate::MAX_DEPTH;
use super::{ParsedSchema, SchemaError};

/// Most values one zero-byte field may expand to in a reader's decoder (a `null` is one
/// value, a record of `k` nulls is `k + 1`). Real schemas have a handful of `null`-typed
/// fields at most.
pub const MAX_ZERO_BYTE_VALUES: u64 = 4_096;

/// Caps a schema must meet to be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Most bytes of schema JSON.
    pub max_bytes: usize,
    /// Most types, fields and union branches, counted after named types are resolved
    /// (each named type counts once).
    pub max_types: usize,
}

impl Default for SchemaLimits {
    /// 1 MiB of JSON and 20,000 types: a Change Data Capture schema of an object with 800
    /// fields is about 150 KB and 3,000 types.
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_types: 20_000,
        }
    }
}

impl SchemaLimits {
    /// Checks the text's size before anything parses it.
    ///
    /// # Errors
    /// [`SchemaError::OverLimit`] when the text is longer than [`SchemaLimits::max_bytes`].
    pub fn check_text(&self, json: &str) -> Result<(), SchemaError> {
        if json.len() > self.max_bytes {
            return Err(SchemaError::OverLimit {
                reason: format!(
                    "the schema is {} bytes; a schema may be at most {} bytes (EVENTBUS_MAX_SCHEMA_BYTES)",
                    json.len(),
                    self.max_bytes
                ),
            });
        }
        Ok(())
    }
}

impl ParsedSchema {
    /// Parses `json` for registration: the size is checked before parsing and every other
    /// cap after.
    ///
    /// # Errors
    /// As [`ParsedSchema::parse`], and [`SchemaError::OverLimit`] saying which cap the
    /// schema breaks.
    pub fn parse_limited(json: &str, limits: &SchemaLimits) -> Result<ParsedSchema, SchemaError> {
        limits.check_text(json)?;
        let schema = ParsedSchema::parse(json)?;
        schema.check_limits(limits)?;
        Ok(schema)
    }

    /// Checks the caps of [`SchemaLimits`] and the fixed ones of this module.
    ///
    /// # Errors
    /// [`SchemaError::OverLimit`] naming the cap and, where there is one, the field.
    pub fn check_limits(&self, limits: &SchemaLimits) -> Result<(), SchemaError> {
        let over = |reason: String| Err(SchemaError::OverLimit { reason });
        limits.check_text(&self.json)?;
        let types = self.program.size();
        if types > limits.max_types {
            return over(format!(
                "the schema has {types} types, fields and union branches; a schema may have at most {} (EVENTBUS_MAX_SCHEMA_TYPES)",
                limits.max_types
            ));
        }
        let depth = self.program.written_depth();
        if depth > MAX_DEPTH {
            return over(format!(
                "records, arrays and maps nest {depth} deep as written; an event may nest at most {MAX_DEPTH}"
            ));
        }
        if let Some(field) = self.program.first_unencodable_field() {
            return over(format!(
                "field `{field}` has a type that contains itself with no union or array to end the recursion, so it has no value and no event could be published"
            ));
        }
        if let Some((field, values)) = self.program.largest_zero_byte_field()
            && values > MAX_ZERO_BYTE_VALUES
        {
            let values = if values == u64::MAX {
                "more than 2^64".to_owned()
            } else {
                values.to_string()
            };
            return over(format!(
                "field `{field}` always encodes to zero bytes yet expands to {values} values (records of nulls); a zero-byte field may expand to at most {MAX_ZERO_BYTE_VALUES}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{doubling, parsed};

    fn over_limit(json: &str) -> String {
        match ParsedSchema::parse_limited(json, &SchemaLimits::default()) {
            Err(SchemaError::OverLimit { reason }) => reason,
            other => panic!("expected OverLimit, got {other:?}"),
        }
    }

    #[test]
    fn the_doubling_null_bomb_is_refused_at_registration() {
        let reason = over_limit(&doubling(44, r#""null""#));
        assert!(reason.contains("zero bytes"), "{reason}");
        assert!(reason.contains("field `d44`"), "{reason}");
        // Ten levels expand to 4,095 values: still accepted.
        ParsedSchema::parse_limited(&doubling(10, r#""null""#), &SchemaLimits::default())
            .expect("a small zero-byte tree is fine");
    }

    #[test]
    fn size_and_type_caps_name_their_setting() {
        let json = r#"{"type":"record","name":"E","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"]}]}"#;
        let tight = SchemaLimits {
            max_bytes: 20,
            max_types: 1_000,
        };
        let err = ParsedSchema::parse_limited(json, &tight).expect_err("too long");
        assert!(
            err.to_string().contains("EVENTBUS_MAX_SCHEMA_BYTES"),
            "{err}"
        );
        let tight = SchemaLimits {
            max_bytes: 10_000,
            max_types: 4,
        };
        let err = ParsedSchema::parse_limited(json, &tight).expect_err("too many types");
        assert!(
            err.to_string().contains("EVENTBUS_MAX_SCHEMA_TYPES"),
            "{err}"
        );
        ParsedSchema::parse_limited(json, &SchemaLimits::default()).expect("fits");
    }

    #[test]
    fn a_type_without_any_value_is_refused() {
        let json = r#"{"type":"record","name":"Loop","fields":[{"name":"next","type":"Loop"}]}"#;
        let reason = over_limit(json);
        assert!(reason.contains("`next`"), "{reason}");
        // With a union to end it, it is a linked list: fine.
        parsed(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#)
            .check_limits(&SchemaLimits::default())
            .expect("a linked list has values");
    }

    #[test]
    fn nesting_deeper_than_an_event_may_is_refused() {
        // Maps nest one JSON level each, so 65 of them stay within the JSON parser's
        // own nesting limit.
        let mut json = r#""long""#.to_owned();
        for _ in 0..MAX_DEPTH {
            json = format!(r#"{{"type":"map","values":{json}}}"#);
        }
        let schema =
            format!(r#"{{"type":"record","name":"Deep","fields":[{{"name":"m","type":{json}}}]}}"#);
        let reason = over_limit(&schema);
        assert!(reason.contains("nest 65 deep"), "{reason}");
    }
}
