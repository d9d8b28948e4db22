//! eventbus-schema: Avro schemas: parsing, schema ids, the in-memory registry
//! and payload validation, JSON <-> Avro.
//!
//! Depends on `eventbus-core` only (for the shared value types); the engine
//! and the protocol layer sit above it.
//!
//! Owns: turning schema JSON into a [`ParsedSchema`] (Parsing Canonical Form, schema id,
//! a compiled validator), the [`SchemaRegistry`] of every known schema, and the check that a
//! payload is exactly one Avro binary datum of its schema (spec §9).
//! Must not: know about gRPC, RocksDB, topics' storage or auth, or let an `apache_avro`
//! type out of this crate (the workspace's only importer of it; the public API uses
//! only strings, bytes and our own types).
//!
//! Why our own canonicaliser: apache-avro 0.22's `Schema::canonical_form()` does not give the
//! Avro spec's Parsing Canonical Form in three cases, which would change schema ids:
//! a logical type on a primitive comes out as `{"type":"int"}` instead of `"int"`, decimals
//! keep `precision`/`scale`, and a field's `order` attribute is kept. `canonical_form`
//! below writes the form from the parsed schema; it reproduces the Salesforce id of spec §9
//! and the Avro project's shared canonical-form test vectors.

mod binary;
pub mod compat;
pub mod dx;
pub mod json;
mod kinds;
pub mod limits;
pub mod registry;
#[cfg(test)]
pub(crate) mod testutil;
pub mod validate;

use std::collections::HashSet;
use std::fmt;

use apache_avro::Schema;
use apache_avro::schema::Name;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest as _, Md5};

use eventbus_core::types;
use kinds::Base;
use types::SchemaId;

pub use limits::SchemaLimits;
pub use registry::SchemaRegistry;

/// Errors of the schema layer.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema JSON could not be parsed as Avro (message says where/why).
    #[error("the schema could not be parsed: {reason}")]
    Parse {
        /// What is wrong and, for JSON syntax errors, the line and column.
        reason: String,
    },
    /// The schema parses but breaks a registration cap (see [`limits`]).
    #[error("the schema is over a limit: {reason}")]
    OverLimit {
        /// Which cap, by how much, and the setting that raises it.
        reason: String,
    },
    /// The top-level schema is not a record (Pub/Sub payloads are records).
    #[error("the schema's top-level type is `{kind}`, but Pub/Sub payloads must be records")]
    NotRecord {
        /// The Avro type the schema has instead, e.g. `string` or `array`.
        kind: String,
    },
}

/// Computes the Pub/Sub schema id: MD5 of the Parsing Canonical Form, base64url no padding (22 chars).
pub fn schema_id_of(canonical_form: &str) -> SchemaId {
    let digest = Md5::digest(canonical_form.as_bytes());
    SchemaId::new(URL_SAFE_NO_PAD.encode(digest))
}

/// A parsed, validated schema ready to check payloads.
///
/// Parsing does all the work once (canonical form, id, compiled validator), so the per-event
/// path in [`ParsedSchema::validate`] only walks bytes.
pub struct ParsedSchema {
    id: SchemaId,
    json: String,
    canonical_form: String,
    record_name: String,
    program: validate::Program,
    /// The parsed schema tree, kept for the modules that need names, symbols, defaults and
    /// aliases, which the compiled `program` drops ([`json`], [`compat`]).
    schema: Schema,
}

impl ParsedSchema {
    /// Parses schema JSON, keeping the original text for `GetSchema` replies.
    ///
    /// # Errors
    /// [`SchemaError::Parse`] when the text is not JSON or not a valid Avro schema,
    /// [`SchemaError::NotRecord`] when the top-level type is not a record.
    pub fn parse(json: &str) -> Result<ParsedSchema, SchemaError> {
        // Parse the JSON ourselves first: serde_json's message names the line and column,
        // which apache-avro's wrapper error drops.
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| SchemaError::Parse {
                reason: format!("the text is not valid JSON: {e}"),
            })?;
        let schema = Schema::parse(&value).map_err(|e| SchemaError::Parse {
            reason: format!("the JSON is not a valid Avro schema: {}", error_chain(&e)),
        })?;
        let Schema::Record(record) = &schema else {
            return Err(SchemaError::NotRecord {
                kind: Base::of(&schema)
                    .map_or("named type reference", |base| base.kind_name())
                    .to_owned(),
            });
        };
        let record_name = record.name.fullname(None);
        let canonical_form = canonical_form(&schema);
        let program =
            validate::Program::compile(&schema).map_err(|reason| SchemaError::Parse { reason })?;
        Ok(ParsedSchema {
            id: schema_id_of(&canonical_form),
            json: json.to_owned(),
            canonical_form,
            record_name,
            program,
            schema,
        })
    }

    /// The schema id (MD5 of the canonical form, base64url).
    pub fn id(&self) -> &SchemaId {
        &self.id
    }

    /// The JSON text exactly as given to [`ParsedSchema::parse`].
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The Avro Parsing Canonical Form the id is computed from.
    pub fn canonical_form(&self) -> &str {
        &self.canonical_form
    }

    /// The record's full name, e.g. `com.sforce.eventbus.Order_Event__e`.
    pub fn record_name(&self) -> &str {
        &self.record_name
    }

    /// The top-level field names in schema order (the order the spec §9.2 bitmaps index).
    pub fn field_names(&self) -> Vec<String> {
        self.program.root_field_names()
    }

    /// Checks that `payload` is exactly one Avro binary datum of this schema, with no trailing bytes.
    ///
    /// Never panics and never allocates on success; the work is bounded by the payload size
    /// (see [`validate`] for the caps on hostile input).
    ///
    /// # Errors
    /// A [`validate::PayloadError`] naming the field path and what is wrong.
    pub fn validate(&self, payload: &[u8]) -> Result<(), validate::PayloadError> {
        self.program.validate(payload)
    }

    /// [`ParsedSchema::validate`], also returning how many steps the walk took. The walk
    /// never takes more than [`validate::step_budget`] of the payload's length; the fuzz
    /// targets and tests check that bound.
    pub fn validate_counting(&self, payload: &[u8]) -> (Result<(), validate::PayloadError>, u64) {
        self.program.validate_counting(payload)
    }

    /// The parsed apache-avro schema tree; crate-private so no `apache_avro` type leaves
    /// `schema/`.
    pub(crate) fn avro_schema(&self) -> &Schema {
        &self.schema
    }

    /// Decodes one datum of `payload` with apache-avro's reader, the reference the fuzz
    /// targets compare [`ParsedSchema::validate`] with. Returns how many bytes the datum
    /// took, or the reader's error text. The reader's allocations are capped at
    /// [`REFERENCE_MAX_ALLOCATION_BYTES`] for the whole process (apache-avro keeps the
    /// first cap it is given).
    ///
    /// # Errors
    /// The reader's error message when it cannot decode a datum.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn reference_decode(&self, payload: &[u8]) -> Result<usize, String> {
        apache_avro::util::max_allocation_bytes(REFERENCE_MAX_ALLOCATION_BYTES);
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema)
            .build()
            .map_err(|e| e.to_string())?;
        let mut rest = payload;
        reader.read_value(&mut rest).map_err(|e| e.to_string())?;
        Ok(payload.len() - rest.len())
    }
}

/// Allocation cap of the reference decoder: far above what any valid fuzz input needs, far
/// below the fuzzer's `-malloc_limit_mb`, so a hostile length makes the reference fail
/// instead of aborting the run.
#[cfg(any(test, feature = "fuzzing"))]
pub const REFERENCE_MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

impl fmt::Debug for ParsedSchema {
    // The compiled program and the JSON are noise in logs; the id and name identify it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSchema")
            .field("id", &self.id)
            .field("record_name", &self.record_name)
            .finish_non_exhaustive()
    }
}

/// An apache-avro error with its `source` chain, since the top-level message is often
/// only "Failed to parse schema" and the useful part is underneath.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A field path in an error message: `field <path>`, or what the error is about as a
/// whole (`the record`, `the event`) when the path is empty. Each module's errors keep
/// their own wording through `top_level` and `quote`.
pub(crate) struct FieldAt<'a> {
    /// The path, e.g. `Address__c.City`; empty at the top level.
    pub(crate) path: &'a str,
    /// Written instead of the path when it is empty.
    pub(crate) top_level: &'static str,
    /// Written on both sides of the path: a backtick, or nothing.
    pub(crate) quote: &'static str,
}

impl fmt::Display for FieldAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(self.top_level)
        } else {
            write!(f, "field {q}{}{q}", self.path, q = self.quote)
        }
    }
}

/// Writes the Avro Parsing Canonical Form of a parsed schema.
///
/// The rules, from the Avro spec: primitives as bare strings; named types with their full
/// name, written in full the first time and as the quoted name after that; only the
/// attributes `name, type, fields, symbols, items, values, size`, in that order; no
/// whitespace. Logical types, `doc`, `default`, `aliases`, `order` and custom attributes
/// are dropped because they do not change how data is parsed.
pub(crate) fn canonical_form(schema: &Schema) -> String {
    let mut out = String::with_capacity(256);
    let mut seen = HashSet::new();
    write_canonical(schema, &mut seen, &mut out);
    out
}

fn write_canonical(schema: &Schema, seen: &mut HashSet<String>, out: &mut String) {
    let base = match Base::of(schema) {
        Ok(base) => base,
        Err(reference) => {
            push_json_string(out, &reference.fullname(None));
            return;
        }
    };
    match base {
        Base::Fixed(fixed) => {
            if write_name_or_ref(&fixed.name, "fixed", seen, out) {
                out.push_str(r#","size":"#);
                out.push_str(&fixed.size.to_string());
                out.push('}');
            }
        }
        Base::Array(items) => {
            out.push_str(r#"{"type":"array","items":"#);
            write_canonical(items, seen, out);
            out.push('}');
        }
        Base::Map(values) => {
            out.push_str(r#"{"type":"map","values":"#);
            write_canonical(values, seen, out);
            out.push('}');
        }
        Base::Union(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(branch, seen, out);
            }
            out.push(']');
        }
        Base::Enum(enum_schema) => {
            if write_name_or_ref(&enum_schema.name, "enum", seen, out) {
                out.push_str(r#","symbols":["#);
                for (i, symbol) in enum_schema.symbols.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(out, symbol);
                }
                out.push_str("]}");
            }
        }
        Base::Record(record) => {
            if write_name_or_ref(&record.name, "record", seen, out) {
                out.push_str(r#","fields":["#);
                for (i, field) in record.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(r#"{"name":"#);
                    push_json_string(out, &field.name);
                    out.push_str(r#","type":"#);
                    write_canonical(&field.schema, seen, out);
                    out.push('}');
                }
                out.push_str("]}");
            }
        }
        // Primitives, logical types included, are their bare base type name.
        primitive => push_json_string(out, primitive.kind_name()),
    }
}

/// Writes `"fullname"` if the type was already written (returns false), otherwise opens the
/// definition as `{"name":"fullname","type":"<kind>"` and returns true so the caller adds
/// the rest and the closing brace.
fn write_name_or_ref(
    name: &Name,
    kind: &str,
    seen: &mut HashSet<String>,
    out: &mut String,
) -> bool {
    let full = name.fullname(None);
    if seen.contains(&full) {
        push_json_string(out, &full);
        return false;
    }
    out.push_str(r#"{"name":"#);
    push_json_string(out, &full);
    out.push_str(r#","type":"#);
    push_json_string(out, kind);
    seen.insert(full);
    true
}

/// Appends `s` as a JSON string. Avro names and symbols never need escaping, but field
/// names and symbols come from user JSON, so escape anyway rather than trust the parser.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live Salesforce schema from spec §9, whose `uuid` attribute is its id.
    const CM_TEST_EVENT_TWO: &str = r#"{"type":"record","name":"CM_Test_Event_Two__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},{"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},{"name":"Message__c","type":["null","string"],"default":null}],"uuid":"K98aAtiNFBjA-PJlcvaQ2g"}"#;

    fn pcf(json: &str) -> String {
        canonical_form(&Schema::parse_str(json).expect("test schema parses"))
    }

    #[test]
    fn salesforce_schema_id_matches_the_pinned_vector() {
        let schema = ParsedSchema::parse(CM_TEST_EVENT_TWO).expect("spec schema parses");
        assert_eq!(
            schema.canonical_form(),
            r#"{"name":"com.sforce.eventbus.CM_Test_Event_Two__e","type":"record","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Message__c","type":["null","string"]}]}"#
        );
        assert_eq!(schema.id().as_str(), "K98aAtiNFBjA-PJlcvaQ2g");
        assert_eq!(schema.id().as_str().len(), 22);
        assert_eq!(schema.json(), CM_TEST_EVENT_TWO);
        assert_eq!(
            schema.record_name(),
            "com.sforce.eventbus.CM_Test_Event_Two__e"
        );
        assert_eq!(
            schema.field_names(),
            ["CreatedDate", "CreatedById", "Message__c"]
        );
    }

    #[test]
    fn schema_id_is_md5_base64url_without_padding() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(schema_id_of("").as_str(), "1B2M2Y8AsgTpgAmY7PhCfg");
    }

    #[test]
    fn canonical_form_matches_the_avro_spec_vectors() {
        // Vectors from the Avro project's shared schema tests (spec rules PRIMITIVES,
        // FULLNAMES, STRIP, ORDER, INTEGERS).
        let cases = [
            (r#"{"type":"null"}"#, r#""null""#),
            (r#"[ "int" , {"type":"boolean"} ]"#, r#"["int","boolean"]"#),
            (
                r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
                r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            ),
            (
                r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
                r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            ),
            (
                r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
                r#"{"name":"foo","type":"record","fields":[]}"#,
            ),
            (
                r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},
                    {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                    "type":"record", "name":"foo"}"#,
                r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            ),
            (
                r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
                r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            ),
            (
                r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
                r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            ),
            (
                r#"{ "items":{"type":"null"}, "type":"array"}"#,
                r#"{"type":"array","items":"null"}"#,
            ),
            (
                r#"{ "values":"string", "type":"map"}"#,
                r#"{"type":"map","values":"string"}"#,
            ),
            (
                r#"{"name":"PigValue","type":"record",
                   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
                r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(pcf(input), expected, "input: {input}");
        }
    }

    #[test]
    fn canonical_form_uses_full_names_for_nested_and_referenced_types() {
        let json = r#"{"type":"record","name":"Outer","namespace":"a.b","fields":[
            {"name":"inner","type":{"type":"record","name":"Inner","fields":[
                {"name":"x","type":"int"}]}},
            {"name":"again","type":"Inner"},
            {"name":"qualified","type":"a.b.Inner"},
            {"name":"e","type":{"type":"enum","name":"Color","namespace":"other","symbols":["RED","GREEN"],"default":"RED"}},
            {"name":"e2","type":"other.Color"},
            {"name":"f","type":{"type":"fixed","name":"Hash","size":16,"aliases":["Digest"]}},
            {"name":"fs","type":{"type":"array","items":"Hash"}},
            {"name":"m","type":{"type":"map","values":{"type":"record","name":"Deep","fields":[
                {"name":"d","type":{"type":"record","name":"Deeper","namespace":"z","fields":[
                    {"name":"k","type":"a.b.Hash"}]}}]}}}
        ]}"#;
        // Inside namespace `z` a bare `Hash` would mean `z.Hash`, hence the full name above;
        // `again` checks that a bare name inherits the enclosing namespace `a.b`.
        assert_eq!(
            pcf(json),
            concat!(
                r#"{"name":"a.b.Outer","type":"record","fields":["#,
                r#"{"name":"inner","type":{"name":"a.b.Inner","type":"record","fields":[{"name":"x","type":"int"}]}},"#,
                r#"{"name":"again","type":"a.b.Inner"},"#,
                r#"{"name":"qualified","type":"a.b.Inner"},"#,
                r#"{"name":"e","type":{"name":"other.Color","type":"enum","symbols":["RED","GREEN"]}},"#,
                r#"{"name":"e2","type":"other.Color"},"#,
                r#"{"name":"f","type":{"name":"a.b.Hash","type":"fixed","size":16}},"#,
                r#"{"name":"fs","type":{"type":"array","items":"a.b.Hash"}},"#,
                r#"{"name":"m","type":{"type":"map","values":{"name":"a.b.Deep","type":"record","fields":["#,
                r#"{"name":"d","type":{"name":"z.Deeper","type":"record","fields":[{"name":"k","type":"a.b.Hash"}]}}]}}}"#,
                r#"]}"#
            )
        );
    }

    #[test]
    fn canonical_form_drops_logical_types_and_their_attributes() {
        // apache-avro's own canonical_form gets every one of these wrong (see module docs).
        let json = r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"lt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
            {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},
            {"name":"decf","type":{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":10,"scale":2}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"uf","type":{"type":"fixed","name":"U16","size":16,"logicalType":"uuid"}},
            {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
            {"name":"big","type":{"type":"bytes","logicalType":"big-decimal"}},
            {"name":"unknown","type":{"type":"string","logicalType":"made-up"}},
            {"name":"custom","type":{"type":"string","avro.java.string":"String"}},
            {"name":"wrapped","type":{"type":{"type":"long"}}},
            {"name":"again","type":"Money"}
        ]}"#;
        assert_eq!(
            pcf(json),
            concat!(
                r#"{"name":"L","type":"record","fields":["#,
                r#"{"name":"d","type":"int"},{"name":"tm","type":"int"},"#,
                r#"{"name":"ts","type":"long"},{"name":"lt","type":"long"},"#,
                r#"{"name":"dec","type":"bytes"},"#,
                r#"{"name":"decf","type":{"name":"Money","type":"fixed","size":8}},"#,
                r#"{"name":"u","type":"string"},"#,
                r#"{"name":"uf","type":{"name":"U16","type":"fixed","size":16}},"#,
                r#"{"name":"dur","type":{"name":"Dur","type":"fixed","size":12}},"#,
                r#"{"name":"big","type":"bytes"},"#,
                r#"{"name":"unknown","type":"string"},"#,
                r#"{"name":"custom","type":"string"},"#,
                r#"{"name":"wrapped","type":"long"},"#,
                r#"{"name":"again","type":"Money"}"#,
                r#"]}"#
            )
        );
    }

    #[test]
    fn ids_ignore_doc_default_and_custom_attributes_but_not_structure() {
        let a = ParsedSchema::parse(CM_TEST_EVENT_TWO).expect("parses");
        let stripped = r#"{"type":"record","name":"CM_Test_Event_Two__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Message__c","type":["null","string"]}]}"#;
        let b = ParsedSchema::parse(stripped).expect("parses");
        assert_eq!(a.id(), b.id());
        assert_ne!(a.json(), b.json());
        let reordered = stripped.replace(r#"["null","string"]"#, r#"["string","null"]"#);
        let c = ParsedSchema::parse(&reordered).expect("parses");
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn invalid_json_is_a_parse_error_with_a_position() {
        let err = ParsedSchema::parse(r#"{"type":"record","name":"X","fields":[}"#)
            .expect_err("broken JSON must fail");
        let text = err.to_string();
        assert!(matches!(err, SchemaError::Parse { .. }), "{err:?}");
        assert!(text.contains("not valid JSON"), "{text}");
        assert!(text.contains("line 1 column"), "{text}");
    }

    #[test]
    fn invalid_avro_is_a_parse_error_saying_why() {
        let cases = [
            (r#"{"type":"record","name":"X"}"#, "fields"),
            (
                r#"{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}"#,
                "Nope",
            ),
            (r#"{"type":"recrod","name":"X","fields":[]}"#, "recrod"),
            (r#"{"type":"record","name":"1X","fields":[]}"#, "1X"),
        ];
        for (json, needle) in cases {
            let err = ParsedSchema::parse(json).expect_err("invalid Avro must fail");
            assert!(matches!(err, SchemaError::Parse { .. }), "{json}: {err:?}");
            let text = err.to_string();
            assert!(
                text.contains(needle),
                "{json}: message `{text}` lacks `{needle}`"
            );
        }
    }

    #[test]
    fn non_record_schemas_are_rejected_by_kind() {
        let cases = [
            (r#""string""#, "string"),
            (r#"{"type":"array","items":"int"}"#, "array"),
            (r#"["null","string"]"#, "union"),
            (r#"{"type":"enum","name":"E","symbols":["A"]}"#, "enum"),
            (
                r#"{"type":"long","logicalType":"timestamp-millis"}"#,
                "long",
            ),
        ];
        for (json, kind) in cases {
            match ParsedSchema::parse(json) {
                Err(SchemaError::NotRecord { kind: got }) => assert_eq!(got, kind, "{json}"),
                other => panic!("{json}: expected NotRecord, got {other:?}"),
            }
        }
        let err = ParsedSchema::parse(r#""string""#).expect_err("not a record");
        assert_eq!(
            err.to_string(),
            "the schema's top-level type is `string`, but Pub/Sub payloads must be records"
        );
    }

    #[test]
    fn deeply_nested_schema_json_fails_cleanly() {
        // serde_json stops at 128 levels, so a hostile schema cannot blow the stack.
        let mut json = String::from(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"#);
        for _ in 0..200 {
            json.push_str(r#"{"type":"array","items":"#);
        }
        json.push_str(r#""int""#);
        for _ in 0..200 {
            json.push('}');
        }
        json.push_str("}]}");
        let err = ParsedSchema::parse(&json).expect_err("too deep");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
}
