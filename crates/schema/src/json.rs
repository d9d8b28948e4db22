//! JSON ⇄ Avro binary for the command line: `eventbus publish` reads an event as JSON,
//! `eventbus subscribe` prints events as JSON.
//!
//! Owns: [`ParsedSchema::encode_json`], [`ParsedSchema::decode_to_json`], [`JsonDefaults`]
//! and [`JsonError`].
//! Must not: let an `apache_avro` type out of `schema/`, decode a payload the validator has
//! not accepted, or panic on any JSON value or payload.
//!
//! The JSON is the form a person writes, not the Avro JSON encoding:
//! - a union value is written bare (`{"Amount__c": 12.5}` for `["null","double"]`) and its
//!   branch is picked by the JSON kind: null → `null`; a number → the first of `int`,
//!   `long`, `float`, `double` that holds it exactly (else the widest of `double`, `float`);
//!   a string → `string`, else an enum having that symbol, else `bytes`, else a `fixed` of
//!   that length; `true`/`false` → `boolean`; an object → a record whose fields cover its
//!   keys, else a map; an array → `array`. The Avro JSON form `{"double": 12.5}` (one key,
//!   naming a branch by type name, or a named type by full or short name) is accepted too
//!   and wins when the key names a branch, so a map with the single key `"map"` in a union
//!   with a map branch must be written in that form.
//! - a field left out takes the schema default, else the `null` branch of its union;
//!   otherwise it is an error. An explicit `null` is the `null` branch. At the top level, a
//!   `long` `CreatedDate` or `string` `CreatedById` that is missing or `null` comes from
//!   [`JsonDefaults`] (even over a schema default), as Salesforce fills them on publish.
//! - input fields the record does not have are an error, reported before missing ones
//!   since a misspelt name causes both.
//! - `bytes` and `fixed` are strings of code points 0–255, one per byte (the Avro JSON
//!   convention); enums are their symbol; logical types are their base type (a
//!   `timestamp-millis` is a number of milliseconds).
//! - `float`/`double` NaN and infinities, which JSON cannot write, are the strings `"NaN"`,
//!   `"Infinity"` and `"-Infinity"` both ways.
//!
//! Decoding gives the same form back, so `decode_to_json(encode_json(v))` is `v` with the
//! defaults filled in and tagged unions unwrapped. It is lossy only where a union has two branches of one JSON kind
//! (`["int","long"]`): the value survives, the branch index may not.
//!
//! Bounds: encoding stops at the validator's caps ([`MAX_DEPTH`] nesting,
//! [`MAX_ZERO_WIDTH_ITEMS`] zero-byte items), so its output always passes
//! [`ParsedSchema::validate`]. Decoding runs the validator first, so every length and count
//! it reads has already been checked against the payload size, and reads the bytes with the
//! validator's own cursor (`schema::binary::Reader`), so the two agree on every primitive.

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use serde_json::{Map, Number, Value};

use super::binary::{ReadError, Reader, write_bytes, write_long};
use super::kinds::{Base, NamedTypes};
use super::validate::{MAX_DEPTH, MAX_ZERO_WIDTH_ITEMS, PayloadError};
use super::{FieldAt, ParsedSchema};

/// Values for the fields Salesforce sets on publish, used when the JSON leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDefaults {
    /// `CreatedDate` (a `long`, milliseconds since the Unix epoch) when the input has none.
    pub created_date_ms: i64,
    /// `CreatedById` (a `string`, a Salesforce user id) when the input has none.
    pub created_by_id: String,
}

/// Why a JSON value could not be encoded, or a payload decoded. Field paths look like
/// `Address__c.City`, `Lines__c[2].Sku` or `Attributes__c["weight"]`.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The JSON value has the wrong kind for the field's type.
    #[error("{}: expected {expected}, got {got}", at(.field))]
    TypeMismatch {
        /// Path of the field.
        field: String,
        /// What the schema wants, e.g. `a number` or `a string or an integer`.
        expected: String,
        /// The value given, shortened, e.g. `"abc"` or `an object`.
        got: String,
    },
    /// A number that does not fit the field's type.
    #[error("{}: {value} is out of range for {kind}", at(.field))]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The number as written.
        value: String,
        /// `an int (32 bits)`, `a long (64 bits)` or `a float`.
        kind: &'static str,
    },
    /// A field that is absent and has neither a default nor a `null` branch.
    #[error("{}: missing and has no default", at(.field))]
    MissingField {
        /// Path of the field.
        field: String,
    },
    /// Input fields the record does not have.
    #[error(
        "unknown field{} {}{hint}",
        if .fields.len() == 1 { "" } else { "s" },
        .fields.join(", ")
    )]
    UnknownFields {
        /// Paths of the unknown fields.
        fields: Vec<String>,
        /// Empty, or ` (did you mean X?)` when a field differs from a known one only in case.
        hint: String,
    },
    /// A string that is not one of the enum's symbols.
    #[error("{}: {got} is not a symbol of enum {name} (expected one of {symbols})", at(.field))]
    UnknownSymbol {
        /// Path of the field.
        field: String,
        /// The string given, quoted.
        got: String,
        /// The enum's name.
        name: String,
        /// The symbols, comma separated.
        symbols: String,
    },
    /// A character above U+00FF in a `bytes` or `fixed` string.
    #[error(
        "{}: character {character:?} at position {position} is not a byte (bytes are written as a string of code points 0-255)",
        at(.field)
    )]
    NotAByte {
        /// Path of the field.
        field: String,
        /// The offending character.
        character: char,
        /// Its position in the string, in characters.
        position: usize,
    },
    /// A `fixed` string of the wrong length.
    #[error("{}: fixed {name} needs exactly {size} bytes, got {got}", at(.field))]
    FixedSize {
        /// Path of the field.
        field: String,
        /// The fixed type's name.
        name: String,
        /// Its size.
        size: usize,
        /// The number of bytes given.
        got: usize,
    },
    /// The schema's own default for a missing field does not encode (apache-avro checks
    /// defaults at parse time, so this means the two disagree about a default).
    #[error("{}: the schema's default value cannot be used: {source}", at(.field))]
    BadDefault {
        /// Path of the field.
        field: String,
        /// Why the default did not encode.
        #[source]
        source: Box<JsonError>,
    },
    /// Records, arrays and maps nested deeper than the validator allows.
    #[error("{}: values nest more than {limit} records, arrays and maps deep", at(.field))]
    TooDeep {
        /// Path of the value that went too deep.
        field: String,
        /// [`MAX_DEPTH`].
        limit: usize,
    },
    /// More zero-byte array items (nulls, empty records) than the validator allows.
    #[error("{}: more than {limit} zero-byte array items in one event", at(.field))]
    TooManyItems {
        /// Path of the array.
        field: String,
        /// [`MAX_ZERO_WIDTH_ITEMS`].
        limit: u64,
    },
    /// The event has more values than [`MAX_JSON_VALUES`]: encoding or decoding stops
    /// rather than build an unbounded tree (a schema's defaults or zero-byte records can
    /// expand far beyond the bytes of the event).
    #[error("the event has more than {limit} values, more than can be encoded or shown as JSON")]
    TooManyValues {
        /// [`MAX_JSON_VALUES`].
        limit: u64,
    },
    /// The schema refers to a type it never defines (parsing rejects such schemas, so this
    /// is defensive).
    #[error("the schema uses the type `{name}` but never defines it")]
    UndefinedType {
        /// The type's full name.
        name: String,
    },
    /// The payload is not one valid datum of the schema.
    #[error("the payload is not a valid event of this schema: {0}")]
    InvalidPayload(#[from] PayloadError),
    /// The validator accepted a payload the decoder could not read: a bug in one of them.
    #[error("the payload passed validation but could not be decoded; this is a bug")]
    Undecodable,
}

/// Formats a field path for messages: `field a.b`, or `the event` at the top level.
fn at(field: &str) -> FieldAt<'_> {
    FieldAt {
        path: field,
        top_level: "the event",
        quote: "",
    }
}

impl ParsedSchema {
    /// Encodes a JSON value (the form a person writes, see [the module docs](self)) as one
    /// Avro binary datum of this schema. The output always passes [`ParsedSchema::validate`].
    ///
    /// # Errors
    /// A [`JsonError`] naming the field path: wrong kind, out-of-range number, missing field
    /// without default, unknown fields, unknown enum symbol, bad bytes/fixed string, or
    /// nesting past the validator's caps.
    pub fn encode_json(
        &self,
        value: &Value,
        defaults: &JsonDefaults,
    ) -> Result<Vec<u8>, JsonError> {
        let names = NamedTypes::of(self.avro_schema());
        let mut encoder = Encoder {
            names: &names,
            out: Vec::with_capacity(128),
            path: String::new(),
            zero_width_items: 0,
            values_left: MAX_JSON_VALUES,
        };
        match self.avro_schema() {
            Schema::Record(record) => encoder.record(record, value, 0, Some(defaults))?,
            // `parse` only accepts records; encode anything else plainly all the same.
            other => encoder.value(other, value, 0)?,
        }
        Ok(encoder.out)
    }

    /// Decodes one Avro binary datum of this schema into the JSON form [`encode_json`]
    /// accepts: unions unwrapped, enums as symbols, bytes and fixed as strings of code
    /// points 0–255, longs as JSON numbers.
    ///
    /// Validates first, so a hostile payload costs no more than [`ParsedSchema::validate`]
    /// plus one value per datum; never panics.
    ///
    /// Objects come out in key order, not schema order, unless serde_json's
    /// `preserve_order` feature is on.
    ///
    /// [`encode_json`]: ParsedSchema::encode_json
    ///
    /// # Errors
    /// [`JsonError::InvalidPayload`] when the payload is not exactly one datum of the schema.
    pub fn decode_to_json(&self, payload: &[u8]) -> Result<Value, JsonError> {
        self.validate(payload)?;
        let names = NamedTypes::of(self.avro_schema());
        let mut decoder = Decoder {
            names: &names,
            reader: Reader::new(payload),
            values_left: MAX_JSON_VALUES,
        };
        let value = decoder.value(self.avro_schema(), 0);
        match value {
            Ok(value) if decoder.reader.is_empty() => Ok(value),
            Err(_) if decoder.values_left == 0 => Err(JsonError::TooManyValues {
                limit: MAX_JSON_VALUES,
            }),
            Ok(_) | Err(Undecodable) => Err(JsonError::Undecodable),
        }
    }
}

/// Most values one event may have when encoded from JSON or decoded to JSON. A 1 MiB event
/// has at most about a million values that take bytes; the cap stops schemas whose
/// defaults or zero-byte records would expand one small event into an unbounded tree.
pub const MAX_JSON_VALUES: u64 = 4_000_000;

// ---- encoding ----

/// Largest integer a `double` holds exactly (2^53); integral JSON numbers written as
/// floats (`3.0`, `1e3`) count as integers only up to here.
const MAX_EXACT_DOUBLE_INT: f64 = 9_007_199_254_740_992.0;

struct Encoder<'s, 'n> {
    names: &'n NamedTypes<'s>,
    out: Vec<u8>,
    /// Path of the value being encoded; extended on the way down, cloned into errors.
    path: String,
    /// Zero-byte array items written so far (see [`MAX_ZERO_WIDTH_ITEMS`]).
    zero_width_items: u64,
    /// Values the encoder may still write (see [`MAX_JSON_VALUES`]).
    values_left: u64,
}

impl<'s> Encoder<'s, '_> {
    fn base(&self, schema: &'s Schema) -> Result<Base<'s>, JsonError> {
        self.names
            .base(schema)
            .map_err(|name| JsonError::UndefinedType { name })
    }

    fn mismatch(&self, expected: impl Into<String>, got: &Value) -> JsonError {
        JsonError::TypeMismatch {
            field: self.path.clone(),
            expected: expected.into(),
            got: show(got),
        }
    }

    /// Enters one more level of record/array/map nesting, as the validator counts it.
    fn enter(&self, depth: usize) -> Result<usize, JsonError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep {
                field: self.path.clone(),
                limit: MAX_DEPTH,
            });
        }
        Ok(depth)
    }

    fn value(&mut self, schema: &'s Schema, value: &Value, depth: usize) -> Result<(), JsonError> {
        self.values_left = self
            .values_left
            .checked_sub(1)
            .ok_or(JsonError::TooManyValues {
                limit: MAX_JSON_VALUES,
            })?;
        match self.base(schema)? {
            Base::Null => match value {
                Value::Null => Ok(()),
                other => Err(self.mismatch("null", other)),
            },
            Base::Boolean => match value {
                Value::Bool(b) => {
                    self.out.push(u8::from(*b));
                    Ok(())
                }
                other => Err(self.mismatch("a boolean", other)),
            },
            Base::Int => {
                let n = self.integer(
                    value,
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                    "an int (32 bits)",
                )?;
                write_long(&mut self.out, n);
                Ok(())
            }
            Base::Long => {
                let n = self.integer(value, i64::MIN, i64::MAX, "a long (64 bits)")?;
                write_long(&mut self.out, n);
                Ok(())
            }
            Base::Float => {
                let x = self.number(value)?;
                let narrowed = x as f32;
                if narrowed.is_infinite() && x.is_finite() {
                    return Err(JsonError::OutOfRange {
                        field: self.path.clone(),
                        value: show(value),
                        kind: "a float",
                    });
                }
                self.out.extend_from_slice(&narrowed.to_le_bytes());
                Ok(())
            }
            Base::Double => {
                let x = self.number(value)?;
                self.out.extend_from_slice(&x.to_le_bytes());
                Ok(())
            }
            Base::String => match value {
                Value::String(s) => {
                    write_bytes(&mut self.out, s.as_bytes());
                    Ok(())
                }
                other => Err(self.mismatch("a string", other)),
            },
            Base::Bytes => match value {
                Value::String(s) => {
                    let bytes = self.code_points(s)?;
                    write_bytes(&mut self.out, &bytes);
                    Ok(())
                }
                other => Err(self.mismatch("a string of bytes (code points 0-255)", other)),
            },
            Base::Fixed(fixed) => match value {
                Value::String(s) => {
                    let bytes = self.code_points(s)?;
                    if bytes.len() != fixed.size {
                        return Err(JsonError::FixedSize {
                            field: self.path.clone(),
                            name: fixed.name.name().to_owned(),
                            size: fixed.size,
                            got: bytes.len(),
                        });
                    }
                    self.out.extend_from_slice(&bytes);
                    Ok(())
                }
                other => Err(self.mismatch(
                    format!("a string of {} bytes (code points 0-255)", fixed.size),
                    other,
                )),
            },
            Base::Enum(e) => match value {
                Value::String(s) => match e.symbols.iter().position(|sym| sym == s) {
                    Some(index) => {
                        write_long(&mut self.out, index as i64);
                        Ok(())
                    }
                    None => Err(JsonError::UnknownSymbol {
                        field: self.path.clone(),
                        got: show(value),
                        name: e.name.name().to_owned(),
                        symbols: e.symbols.join(", "),
                    }),
                },
                other => Err(self.mismatch(
                    format!("a string (a symbol of enum {})", e.name.name()),
                    other,
                )),
            },
            Base::Array(items) => match value {
                Value::Array(values) => self.array(items, values, depth),
                other => Err(self.mismatch("an array", other)),
            },
            Base::Map(values) => match value {
                Value::Object(entries) => self.map(values, entries, depth),
                other => Err(self.mismatch("an object (a map)", other)),
            },
            Base::Union(branches) => self.union(branches, value, depth),
            Base::Record(record) => self.record(record, value, depth, None),
        }
    }

    /// Reads an integer in `min..=max`, accepting integral floats up to 2^53 (`3.0`, `1e3`).
    fn integer(
        &self,
        value: &Value,
        min: i64,
        max: i64,
        kind: &'static str,
    ) -> Result<i64, JsonError> {
        let Value::Number(n) = value else {
            return Err(self.mismatch("an integer", value));
        };
        match integer_of(n) {
            Some(i) if i >= i128::from(min) && i <= i128::from(max) => {
                // In range of an i64 by the check above.
                Ok(i as i64)
            }
            Some(_) => Err(JsonError::OutOfRange {
                field: self.path.clone(),
                value: n.to_string(),
                kind,
            }),
            None => Err(self.mismatch("an integer", value)),
        }
    }

    /// Reads a float/double value: any JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    fn number(&self, value: &Value) -> Result<f64, JsonError> {
        match value {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.mismatch("a number", value)),
            Value::String(s) => non_finite(s).ok_or_else(|| self.mismatch("a number", value)),
            other => Err(self.mismatch("a number", other)),
        }
    }

    /// Converts a string of code points 0–255 to bytes.
    fn code_points(&self, s: &str) -> Result<Vec<u8>, JsonError> {
        s.chars()
            .enumerate()
            .map(|(position, c)| {
                u8::try_from(c).map_err(|_| JsonError::NotAByte {
                    field: self.path.clone(),
                    character: c,
                    position,
                })
            })
            .collect()
    }

    fn array(
        &mut self,
        items: &'s Schema,
        values: &[Value],
        depth: usize,
    ) -> Result<(), JsonError> {
        let depth = self.enter(depth)?;
        if !values.is_empty() {
            write_long(&mut self.out, values.len() as i64);
            let outer = self.path.len();
            for (i, item) in values.iter().enumerate() {
                self.path.push_str(&format!("[{i}]"));
                let before = self.out.len();
                self.value(items, item, depth)?;
                if self.out.len() == before {
                    // Only a type whose every value takes zero bytes writes nothing; the
                    // validator caps how many of those one payload may declare.
                    self.zero_width_items += 1;
                    if self.zero_width_items > MAX_ZERO_WIDTH_ITEMS {
                        self.path.truncate(outer);
                        return Err(JsonError::TooManyItems {
                            field: self.path.clone(),
                            limit: MAX_ZERO_WIDTH_ITEMS,
                        });
                    }
                }
                self.path.truncate(outer);
            }
        }
        write_long(&mut self.out, 0);
        Ok(())
    }

    fn map(
        &mut self,
        values: &'s Schema,
        entries: &Map<String, Value>,
        depth: usize,
    ) -> Result<(), JsonError> {
        let depth = self.enter(depth)?;
        if !entries.is_empty() {
            write_long(&mut self.out, entries.len() as i64);
            let outer = self.path.len();
            for (key, value) in entries {
                self.path.push_str(&format!("[{key:?}]"));
                write_bytes(&mut self.out, key.as_bytes());
                self.value(values, value, depth)?;
                self.path.truncate(outer);
            }
        }
        write_long(&mut self.out, 0);
        Ok(())
    }

    fn union(
        &mut self,
        branches: &'s [Schema],
        value: &Value,
        depth: usize,
    ) -> Result<(), JsonError> {
        let bases = branches
            .iter()
            .map(|b| self.base(b))
            .collect::<Result<Vec<_>, _>>()?;
        // The Avro JSON form, {"double": 12.5}: one key naming a branch.
        if let Value::Object(entries) = value
            && entries.len() == 1
            && let Some((key, inner)) = entries.iter().next()
            && let Some(index) = bases.iter().position(|b| names_branch(b, key))
        {
            write_long(&mut self.out, index as i64);
            return self.value(&branches[index], inner, depth);
        }
        if let Some(index) = pick_branch(&bases, value) {
            write_long(&mut self.out, index as i64);
            return self.value(&branches[index], value, depth);
        }
        // No branch takes this kind of value. With one non-null branch, encode against it
        // for its precise message ("expected a number"); otherwise list what would do.
        let non_null: Vec<usize> = (0..bases.len())
            .filter(|&i| !matches!(bases[i], Base::Null))
            .collect();
        if let [only] = non_null[..] {
            write_long(&mut self.out, only as i64);
            return self.value(&branches[only], value, depth);
        }
        let mut expected: Vec<String> = Vec::new();
        for base in &bases {
            let text = describe_expected(base);
            if !expected.contains(&text) {
                expected.push(text);
            }
        }
        Err(self.mismatch(or_list(&expected), value))
    }

    fn record(
        &mut self,
        record: &'s RecordSchema,
        value: &Value,
        depth: usize,
        defaults: Option<&JsonDefaults>,
    ) -> Result<(), JsonError> {
        let Value::Object(entries) = value else {
            return Err(self.mismatch(format!("an object (record {})", record.name.name()), value));
        };
        let depth = self.enter(depth)?;
        self.unknown_fields(record, entries)?;
        let outer = self.path.len();
        for field in &record.fields {
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&field.name);
            let given = entries.get(&field.name).filter(|v| !v.is_null());
            match (given, defaults) {
                (Some(v), _) => self.value(&field.schema, v, depth)?,
                (None, Some(d))
                    if field.name == "CreatedDate"
                        && matches!(self.base(&field.schema)?, Base::Long) =>
                {
                    write_long(&mut self.out, d.created_date_ms);
                }
                (None, Some(d))
                    if field.name == "CreatedById"
                        && matches!(self.base(&field.schema)?, Base::String) =>
                {
                    write_bytes(&mut self.out, d.created_by_id.as_bytes());
                }
                // An explicit null is a value: the null branch, or an error naming the type.
                (None, _) if entries.contains_key(&field.name) => {
                    self.value(&field.schema, &Value::Null, depth)?;
                }
                (None, _) => self.missing(&field.schema, field.default.as_ref(), depth)?,
            }
            self.path.truncate(outer);
        }
        Ok(())
    }

    /// Encodes a field the input left out: its default, else a union's null branch.
    fn missing(
        &mut self,
        schema: &'s Schema,
        default: Option<&Value>,
        depth: usize,
    ) -> Result<(), JsonError> {
        if let Some(default) = default {
            // A default inside a default (a nested record's own missing fields) that fails
            // is reported once, at the innermost field, not wrapped at every level.
            return self
                .value(schema, default, depth)
                .map_err(|source| match source {
                    inner @ (JsonError::BadDefault { .. } | JsonError::TooManyValues { .. }) => {
                        inner
                    }
                    other => JsonError::BadDefault {
                        field: self.path.clone(),
                        source: Box::new(other),
                    },
                });
        }
        if let Base::Union(branches) = self.base(schema)? {
            for (index, branch) in branches.iter().enumerate() {
                if matches!(self.base(branch)?, Base::Null) {
                    write_long(&mut self.out, index as i64);
                    return Ok(());
                }
            }
        }
        Err(JsonError::MissingField {
            field: self.path.clone(),
        })
    }

    fn unknown_fields(
        &self,
        record: &RecordSchema,
        entries: &Map<String, Value>,
    ) -> Result<(), JsonError> {
        let mut unknown: Vec<&String> = entries
            .keys()
            .filter(|k| !record.lookup.contains_key(k.as_str()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        // Sorted, so the message does not depend on serde_json's `preserve_order` feature.
        unknown.sort();
        let mut hints = Vec::new();
        for key in &unknown {
            if let Some(field) = record
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(key) && !entries.contains_key(&f.name))
            {
                hints.push(field.name.as_str());
            }
        }
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}.", self.path)
        };
        Err(JsonError::UnknownFields {
            fields: unknown.iter().map(|k| format!("{prefix}{k}")).collect(),
            hint: if hints.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", hints.join(", "))
            },
        })
    }
}

/// The integer a JSON number holds exactly, if any.
fn integer_of(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    let f = n.as_f64()?;
    // Bounded by 2^53, so the cast is exact.
    (f.fract() == 0.0 && f.abs() <= MAX_EXACT_DOUBLE_INT).then_some(f as i128)
}

/// The float values JSON has no literal for, as the strings we write them as.
fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Whether `key` names this union branch in the Avro JSON encoding.
fn names_branch(base: &Base<'_>, key: &str) -> bool {
    match base.name() {
        Some(name) => name.name() == key || name.fullname(None) == key,
        None => base.type_name() == key,
    }
}

/// Picks the union branch for a bare JSON value by its kind (see the module docs).
fn pick_branch(bases: &[Base<'_>], value: &Value) -> Option<usize> {
    let first = |want: fn(&Base<'_>) -> bool| bases.iter().position(want);
    match value {
        Value::Null => first(|b| matches!(b, Base::Null)),
        Value::Bool(_) => first(|b| matches!(b, Base::Boolean)),
        Value::Number(n) => pick_number(bases, n),
        Value::String(s) => first(|b| matches!(b, Base::String))
            .or_else(|| {
                bases
                    .iter()
                    .position(|b| matches!(b, Base::Enum(e) if e.symbols.iter().any(|sym| sym == s)))
            })
            .or_else(|| {
                let is_bytes = s.chars().all(|c| u32::from(c) <= 0xff);
                let len = s.chars().count();
                is_bytes
                    .then(|| {
                        first(|b| matches!(b, Base::Bytes)).or_else(|| {
                            bases
                                .iter()
                                .position(|b| matches!(b, Base::Fixed(f) if f.size == len))
                        })
                    })
                    .flatten()
            })
            .or_else(|| {
                non_finite(s)?;
                first(|b| matches!(b, Base::Double)).or_else(|| first(|b| matches!(b, Base::Float)))
            }),
        Value::Array(_) => first(|b| matches!(b, Base::Array(_))),
        Value::Object(entries) => bases
            .iter()
            .position(|b| {
                matches!(b, Base::Record(r) if entries.keys().all(|k| r.lookup.contains_key(k.as_str())))
            })
            .or_else(|| first(|b| matches!(b, Base::Map(_))))
            .or_else(|| {
                // No record takes these keys: if there is just one record, pick it so its
                // error names the unknown fields.
                let mut records = bases.iter().enumerate().filter(|(_, b)| matches!(b, Base::Record(_)));
                match (records.next(), records.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            }),
    }
}

/// The first of int, long, float, double that holds the number exactly; else the widest
/// floating branch that holds it at all.
fn pick_number(bases: &[Base<'_>], n: &Number) -> Option<usize> {
    let first = |want: fn(&Base<'_>) -> bool| bases.iter().position(want);
    let int = integer_of(n);
    let x = n.as_f64();
    let fits_int = int.is_some_and(|i| i32::try_from(i).is_ok());
    let fits_long = int.is_some_and(|i| i64::try_from(i).is_ok());
    let fits_float = x.is_some_and(|x| {
        f64::from(x as f32) == x && int.is_none_or(|i| i.unsigned_abs() <= 1 << 24)
    });
    let fits_double = x.is_some_and(|_| int.is_none_or(|i| i.unsigned_abs() <= 1 << 53));
    let exact = [
        (fits_int, first(|b| matches!(b, Base::Int))),
        (fits_long, first(|b| matches!(b, Base::Long))),
        (fits_float, first(|b| matches!(b, Base::Float))),
        (fits_double, first(|b| matches!(b, Base::Double))),
    ];
    if let Some(index) = exact
        .iter()
        .find_map(|&(fits, index)| if fits { index } else { None })
    {
        return Some(index);
    }
    let x = x?;
    first(|b| matches!(b, Base::Double))
        .or_else(|| first(|b| matches!(b, Base::Float)).filter(|_| (x as f32).is_finite()))
}

/// What a value of this type looks like, for "expected …" messages.
fn describe_expected(base: &Base<'_>) -> String {
    match base {
        Base::Null => "null".into(),
        Base::Boolean => "a boolean".into(),
        Base::Int | Base::Long => "an integer".into(),
        Base::Float | Base::Double => "a number".into(),
        Base::String => "a string".into(),
        Base::Bytes => "a string of bytes".into(),
        Base::Fixed(f) => format!("a string of {} bytes", f.size),
        Base::Enum(e) => format!("a symbol of enum {}", e.name.name()),
        Base::Array(_) => "an array".into(),
        Base::Map(_) => "an object (a map)".into(),
        Base::Union(_) => "a union value".into(),
        Base::Record(r) => format!("an object (record {})", r.name.name()),
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A JSON value for an error message: scalars as written (long strings cut), containers
/// by kind, since echoing a whole object back helps nobody.
fn show(value: &Value) -> String {
    /// Strings longer than this are cut, so a huge value cannot make a huge message.
    const MAX_SHOWN_CHARS: usize = 40;
    match value {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        Value::String(s) if s.chars().count() > MAX_SHOWN_CHARS => {
            let cut: String = s.chars().take(MAX_SHOWN_CHARS).collect();
            format!("{}…", Value::String(cut))
        }
        other => other.to_string(),
    }
}

// ---- decoding ----

/// The decoder met bytes the validator should have rejected.
struct Undecodable;

impl From<ReadError> for Undecodable {
    fn from(_: ReadError) -> Self {
        Undecodable
    }
}

/// Reads an already validated payload. Every failure path still returns [`Undecodable`]
/// rather than trusting the validator, so a disagreement between the two is an error, not
/// a panic.
struct Decoder<'s, 'n, 'a> {
    names: &'n NamedTypes<'s>,
    reader: Reader<'a>,
    /// Values the decoder may still build (see [`MAX_JSON_VALUES`]).
    values_left: u64,
}

impl<'s, 'a> Decoder<'s, '_, 'a> {
    fn value(&mut self, schema: &'s Schema, depth: usize) -> Result<Value, Undecodable> {
        self.values_left = self.values_left.checked_sub(1).ok_or(Undecodable)?;
        let base = self.names.base(schema).map_err(|_| Undecodable)?;
        Ok(match base {
            Base::Null => Value::Null,
            Base::Boolean => Value::Bool(self.reader.boolean()?),
            Base::Int => Value::from(self.reader.int()?),
            Base::Long => Value::from(self.reader.long()?),
            Base::Float => {
                let x = self.reader.float()?;
                // Through the shortest decimal form, so 0.1f32 prints as 0.1, not as the
                // f64 nearest to it (0.10000000149011612); it reads back as the same f32.
                float_json(x.to_string().parse::<f64>().unwrap_or(f64::from(x)))
            }
            Base::Double => float_json(self.reader.double()?),
            Base::String => Value::String(self.string()?),
            Base::Bytes => Value::String(code_point_string(self.reader.bytes()?)),
            Base::Fixed(fixed) => Value::String(code_point_string(self.reader.fixed(fixed.size)?)),
            Base::Enum(e) => {
                let index = usize::try_from(self.reader.int()?).map_err(|_| Undecodable)?;
                Value::String(e.symbols.get(index).ok_or(Undecodable)?.clone())
            }
            Base::Union(branches) => {
                let index = usize::try_from(self.reader.long()?).map_err(|_| Undecodable)?;
                self.value(branches.get(index).ok_or(Undecodable)?, depth)?
            }
            Base::Record(record) => {
                let depth = enter(depth)?;
                let mut out = Map::new();
                for field in &record.fields {
                    let value = self.value(&field.schema, depth)?;
                    out.insert(field.name.clone(), value);
                }
                Value::Object(out)
            }
            Base::Array(items) => {
                let depth = enter(depth)?;
                let mut out = Vec::new();
                while let Some(block) = self.reader.block()? {
                    for _ in 0..block.count {
                        out.push(self.value(items, depth)?);
                    }
                }
                Value::Array(out)
            }
            Base::Map(values) => {
                let depth = enter(depth)?;
                let mut out = Map::new();
                while let Some(block) = self.reader.block()? {
                    for _ in 0..block.count {
                        let key = self.string()?;
                        let value = self.value(values, depth)?;
                        out.insert(key, value);
                    }
                }
                Value::Object(out)
            }
        })
    }

    /// Reads a string (or map key) as an owned `String`. Through [`Reader::bytes`], not
    /// [`Reader::string`]: `from_utf8` is the check here, and the reader's would repeat it.
    fn string(&mut self) -> Result<String, Undecodable> {
        let raw = self.reader.bytes()?;
        Ok(std::str::from_utf8(raw)
            .map_err(|_| Undecodable)?
            .to_owned())
    }
}

/// The decoder's own depth guard, matching the validator's, so the recursion is bounded
/// even if the two ever disagree.
fn enter(depth: usize) -> Result<usize, Undecodable> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return Err(Undecodable);
    }
    Ok(depth)
}

/// A float as JSON: a number, or the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn float_json(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String("NaN".into()),
        None if x > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// Bytes as a string of code points 0–255, the Avro JSON convention.
fn code_point_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{LINKED_LIST, Rng, one_field, parsed};
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value as AvroValue;
    use apache_avro::writer::datum::GenericDatumWriter;
    use proptest::prelude::*;
    use serde_json::json;

    /// A Salesforce-style platform event using every kind of Avro type.
    const ORDER_EVENT: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[
        {"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},
        {"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},
        {"name":"Amount__c","type":["null","double"],"default":null},
        {"name":"Name__c","type":["null","string"],"default":null},
        {"name":"Shipped__c","type":["null","boolean"],"default":null},
        {"name":"Status__c","type":["null",{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED","CANCELLED"]}],"default":null},
        {"name":"Priority__c","type":{"type":"enum","name":"Priority","symbols":["LOW","HIGH"]},"default":"LOW"},
        {"name":"Tags__c","type":{"type":"array","items":"string"},"default":[]},
        {"name":"Attributes__c","type":{"type":"map","values":["null","long"]},"default":{}},
        {"name":"Address__c","type":["null",{"type":"record","name":"Address","fields":[
            {"name":"Street","type":["null","string"],"default":null},
            {"name":"City","type":["null","string"],"default":null},
            {"name":"PostalCode","type":["null","string"],"default":null}]}],"default":null},
        {"name":"Checksum__c","type":["null",{"type":"fixed","name":"Md5","size":16}],"default":null},
        {"name":"Blob__c","type":["null","bytes"],"default":null},
        {"name":"Quantity__c","type":"int","default":1},
        {"name":"Ratio__c","type":["null","float"],"default":null},
        {"name":"ShipDate__c","type":["null",{"type":"int","logicalType":"date"}],"default":null},
        {"name":"DueAt__c","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
        {"name":"BillingAddress__c","type":["null","Address"],"default":null},
        {"name":"Lines__c","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
            {"name":"Sku","type":"string"},
            {"name":"Qty","type":"int"},
            {"name":"Price","type":["null","double"],"default":null}]}},"default":[]}
    ]}"#;

    /// Unions of every shape, to exercise branch picking.
    const UNIONS: &str = r#"{"type":"record","name":"U","fields":[
        {"name":"n","type":["null","int","long","float","double"]},
        {"name":"s","type":["null","string",{"type":"enum","name":"E","symbols":["A","B"]}]},
        {"name":"b","type":[{"type":"enum","name":"E2","symbols":["X"]},"bytes",{"type":"fixed","name":"F4","size":4}]},
        {"name":"o","type":["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int","default":0}]},{"type":"map","values":"string"}]},
        {"name":"a","type":["null",{"type":"array","items":["null","boolean"]}]},
        {"name":"f","type":["null","float"]}]}"#;

    const ALL_SCHEMAS: [&str; 3] = [ORDER_EVENT, LINKED_LIST, UNIONS];

    fn defaults() -> JsonDefaults {
        JsonDefaults {
            created_date_ms: 1_718_000_000_000,
            created_by_id: "005xx000001X8Uz".to_owned(),
        }
    }

    fn encode(schema: &ParsedSchema, value: &Value) -> Vec<u8> {
        schema
            .encode_json(value, &defaults())
            .unwrap_or_else(|e| panic!("{value} encodes: {e}"))
    }

    fn encode_err(schema: &ParsedSchema, value: &Value) -> String {
        match schema.encode_json(value, &defaults()) {
            Ok(bytes) => panic!("{value} encoded to {bytes:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// Encodes, checks the validator accepts the bytes, decodes.
    fn round_trip(schema: &ParsedSchema, value: &Value) -> Value {
        let bytes = encode(schema, value);
        assert_eq!(schema.validate(&bytes), Ok(()), "{value}");
        schema
            .decode_to_json(&bytes)
            .expect("valid payload decodes")
    }

    fn full_order() -> Value {
        json!({
            "CreatedDate": 1_700_000_000_123_i64,
            "CreatedById": "005000000000001AAA",
            "Amount__c": 12.5,
            "Name__c": "Ünïcödé order ✓",
            "Shipped__c": true,
            "Status__c": "SHIPPED",
            "Priority__c": "HIGH",
            "Tags__c": ["rush", ""],
            "Attributes__c": {"weight": -3, "unset": null},
            "Address__c": {"Street": "1 Market St", "City": null, "PostalCode": "94105"},
            "Checksum__c": "\u{ab}".repeat(16),
            "Blob__c": "\u{0}\u{1}\u{2}\u{ff}",
            "Quantity__c": i32::MIN,
            "Ratio__c": 0.1,
            "ShipDate__c": 19_900,
            "DueAt__c": i64::MAX,
            "BillingAddress__c": null,
            "Lines__c": [
                {"Sku": "SKU-1", "Qty": 3, "Price": 4.0},
                {"Sku": "SKU-2", "Qty": 0, "Price": null}
            ]
        })
    }

    // ---- round trips ----

    #[test]
    fn a_full_salesforce_event_round_trips() {
        let schema = parsed(ORDER_EVENT);
        assert_eq!(round_trip(&schema, &full_order()), full_order());
    }

    #[test]
    fn encoding_matches_apache_avro_byte_for_byte() {
        let avro = Schema::parse_str(ORDER_EVENT).expect("parses");
        let some = |v: AvroValue| AvroValue::Union(1, Box::new(v));
        let none = || AvroValue::Union(0, Box::new(AvroValue::Null));
        let address = AvroValue::Record(vec![
            (
                "Street".into(),
                some(AvroValue::String("1 Market St".into())),
            ),
            ("City".into(), none()),
            ("PostalCode".into(), some(AvroValue::String("94105".into()))),
        ]);
        let expected = AvroValue::Record(vec![
            ("CreatedDate".into(), AvroValue::Long(1_700_000_000_123)),
            (
                "CreatedById".into(),
                AvroValue::String("005000000000001AAA".into()),
            ),
            ("Amount__c".into(), some(AvroValue::Double(12.5))),
            (
                "Name__c".into(),
                some(AvroValue::String("Ünïcödé order ✓".into())),
            ),
            ("Shipped__c".into(), some(AvroValue::Boolean(true))),
            (
                "Status__c".into(),
                some(AvroValue::Enum(2, "SHIPPED".into())),
            ),
            ("Priority__c".into(), AvroValue::Enum(1, "HIGH".into())),
            (
                "Tags__c".into(),
                AvroValue::Array(vec![
                    AvroValue::String("rush".into()),
                    AvroValue::String("".into()),
                ]),
            ),
            (
                "Attributes__c".into(),
                // One entry: apache-avro writes a HashMap, in no fixed order.
                AvroValue::Map(
                    [("weight".to_owned(), some(AvroValue::Long(-3)))]
                        .into_iter()
                        .collect(),
                ),
            ),
            ("Address__c".into(), some(address)),
            (
                "Checksum__c".into(),
                some(AvroValue::Fixed(16, vec![0xab; 16])),
            ),
            ("Blob__c".into(), some(AvroValue::Bytes(vec![0, 1, 2, 255]))),
            ("Quantity__c".into(), AvroValue::Int(i32::MIN)),
            ("Ratio__c".into(), some(AvroValue::Float(0.1))),
            ("ShipDate__c".into(), some(AvroValue::Date(19_900))),
            (
                "DueAt__c".into(),
                some(AvroValue::TimestampMillis(i64::MAX)),
            ),
            ("BillingAddress__c".into(), none()),
            (
                "Lines__c".into(),
                AvroValue::Array(vec![AvroValue::Record(vec![
                    ("Sku".into(), AvroValue::String("SKU-1".into())),
                    ("Qty".into(), AvroValue::Int(3)),
                    ("Price".into(), some(AvroValue::Double(4.0))),
                ])]),
            ),
        ]);
        let theirs = GenericDatumWriter::builder(&avro)
            .build()
            .and_then(|w| w.write_value_to_vec(expected.clone()))
            .expect("apache-avro encodes the sample");
        let mut input = full_order();
        input["Attributes__c"] = json!({"weight": -3});
        input["Lines__c"] = json!([{"Sku": "SKU-1", "Qty": 3, "Price": 4.0}]);
        let ours = encode(&parsed(ORDER_EVENT), &input);
        assert_eq!(ours, theirs);
        // And apache-avro's decoder reads our bytes back to the same value.
        let decoded = GenericDatumReader::builder(&avro)
            .build()
            .and_then(|r| r.read_value(&mut &ours[..]))
            .expect("apache-avro decodes our bytes");
        assert_eq!(decoded, expected);
    }

    #[test]
    fn missing_fields_take_schema_defaults_and_salesforce_fields_take_ours() {
        let schema = parsed(ORDER_EVENT);
        let expected = json!({
            "CreatedDate": 1_718_000_000_000_i64,
            "CreatedById": "005xx000001X8Uz",
            "Amount__c": null, "Name__c": null, "Shipped__c": null, "Status__c": null,
            "Priority__c": "LOW", "Tags__c": [], "Attributes__c": {}, "Address__c": null,
            "Checksum__c": null, "Blob__c": null, "Quantity__c": 1, "Ratio__c": null,
            "ShipDate__c": null, "DueAt__c": null, "BillingAddress__c": null, "Lines__c": []
        });
        assert_eq!(round_trip(&schema, &json!({})), expected);
        // null for CreatedDate/CreatedById means "fill it in", like leaving it out.
        let nulls = json!({"CreatedDate": null, "CreatedById": null});
        assert_eq!(round_trip(&schema, &nulls), expected);
        // Given values win over the defaults.
        let given = json!({"CreatedDate": 5, "CreatedById": "me", "Quantity__c": 7});
        let out = round_trip(&schema, &given);
        assert_eq!(out["CreatedDate"], json!(5));
        assert_eq!(out["CreatedById"], json!("me"));
        assert_eq!(out["Quantity__c"], json!(7));
        // Nested defaults: an address with only a city.
        let out = round_trip(&schema, &json!({"Address__c": {"City": "Paris"}}));
        assert_eq!(
            out["Address__c"],
            json!({"Street": null, "City": "Paris", "PostalCode": null})
        );
    }

    #[test]
    fn salesforce_defaults_apply_only_to_top_level_fields_of_the_right_type() {
        let wrong_type = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"CreatedDate","type":"string"}]}"#,
        );
        assert_eq!(
            encode_err(&wrong_type, &json!({})),
            "field CreatedDate: missing and has no default"
        );
        let nested = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"Inner","type":{"type":"record","name":"I","fields":[
                {"name":"CreatedDate","type":"long"}]}}]}"#,
        );
        assert_eq!(
            encode_err(&nested, &json!({"Inner": {}})),
            "field Inner.CreatedDate: missing and has no default"
        );
        // A timestamp-millis CreatedDate is a long underneath, so it is filled.
        let logical = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"CreatedDate","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
        );
        assert_eq!(
            round_trip(&logical, &json!({})),
            json!({"CreatedDate": 1_718_000_000_000_i64})
        );
    }

    #[test]
    fn nullable_fields_without_a_default_may_be_left_out() {
        let schema = one_field("x", r#"["string","null"]"#);
        assert_eq!(encode(&schema, &json!({})), [2]);
        assert_eq!(encode(&schema, &json!({"x": null})), [2]);
        assert_eq!(round_trip(&schema, &json!({"x": "hi"})), json!({"x": "hi"}));
        // A non-null default wins over the null branch.
        let schema = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":["string","null"],"default":"d"}]}"#,
        );
        assert_eq!(round_trip(&schema, &json!({})), json!({"x": "d"}));
        assert_eq!(round_trip(&schema, &json!({"x": null})), json!({"x": null}));
    }

    #[test]
    fn both_union_styles_encode_the_same_bytes() {
        let schema = parsed(ORDER_EVENT);
        let pairs = [
            (
                json!({"Amount__c": 12.5}),
                json!({"Amount__c": {"double": 12.5}}),
            ),
            (
                json!({"Amount__c": null}),
                json!({"Amount__c": {"null": null}}),
            ),
            (json!({"Name__c": "x"}), json!({"Name__c": {"string": "x"}})),
            (
                json!({"Shipped__c": false}),
                json!({"Shipped__c": {"boolean": false}}),
            ),
            (
                json!({"Status__c": "PAID"}),
                json!({"Status__c": {"Status": "PAID"}}),
            ),
            (
                json!({"Status__c": "PAID"}),
                json!({"Status__c": {"com.sforce.eventbus.Status": "PAID"}}),
            ),
            (
                json!({"Address__c": {"City": "Oslo"}}),
                json!({"Address__c": {"com.sforce.eventbus.Address": {"City": "Oslo"}}}),
            ),
            (
                json!({"BillingAddress__c": {"City": "Oslo"}}),
                json!({"BillingAddress__c": {"Address": {"City": "Oslo"}}}),
            ),
            (
                json!({"Checksum__c": "0123456789abcdef"}),
                json!({"Checksum__c": {"Md5": "0123456789abcdef"}}),
            ),
            (
                json!({"Blob__c": "\u{0}\u{ff}"}),
                json!({"Blob__c": {"bytes": "\u{0}\u{ff}"}}),
            ),
            (
                json!({"Ratio__c": 0.5}),
                json!({"Ratio__c": {"float": 0.5}}),
            ),
            (
                json!({"ShipDate__c": 19_900}),
                json!({"ShipDate__c": {"int": 19_900}}),
            ),
            (json!({"DueAt__c": 1}), json!({"DueAt__c": {"long": 1}})),
        ];
        for (bare, tagged) in pairs {
            assert_eq!(
                encode(&schema, &bare),
                encode(&schema, &tagged),
                "{bare} vs {tagged}"
            );
        }
        // A wrong value inside the tagged form is reported against that branch.
        assert_eq!(
            encode_err(&schema, &json!({"Amount__c": {"double": "x"}})),
            "field Amount__c: expected a number, got \"x\""
        );
    }

    /// The union branch index our encoder chose for field `name` of [`UNIONS`].
    fn branch(field: &str, value: Value) -> Result<u8, String> {
        let schema = parsed(UNIONS);
        let mut event = json!({"n": null, "s": null, "b": "X", "o": null, "a": null, "f": null});
        event[field] = value;
        let bytes = schema
            .encode_json(&event, &defaults())
            .map_err(|e| e.to_string())?;
        assert_eq!(schema.validate(&bytes), Ok(()));
        let position = ["n", "s", "b", "o", "a", "f"]
            .iter()
            .position(|f| *f == field)
            .expect("known field");
        // Every field before `field` is a one-byte null or enum branch, then its enum
        // symbol byte for `b`.
        let offset = position + usize::from(position > 2);
        Ok(bytes[offset] / 2)
    }

    #[test]
    fn bare_union_values_pick_their_branch_by_kind() {
        // Numbers: the first of int, long, float, double that holds the value exactly.
        assert_eq!(branch("n", json!(1)), Ok(1));
        assert_eq!(branch("n", json!(-2_147_483_649_i64)), Ok(2));
        assert_eq!(branch("n", json!(0.5)), Ok(3));
        assert_eq!(branch("n", json!(0.1)), Ok(4));
        assert_eq!(branch("n", json!(1e300)), Ok(4));
        assert_eq!(branch("n", json!(u64::MAX)), Ok(4));
        assert_eq!(branch("n", json!("NaN")), Ok(4));
        assert_eq!(branch("f", json!(0.1)), Ok(1)); // only a float branch: it takes 0.1
        assert_eq!(branch("n", json!(null)), Ok(0));
        // Strings: string first, then an enum that has the symbol, bytes, fixed by length.
        assert_eq!(branch("s", json!("A")), Ok(1));
        assert_eq!(branch("b", json!("X")), Ok(0));
        assert_eq!(branch("b", json!("Y")), Ok(1));
        // Objects: a record whose fields cover the keys, else the map.
        assert_eq!(branch("o", json!({"x": 1})), Ok(1));
        assert_eq!(branch("o", json!({})), Ok(1));
        assert_eq!(branch("o", json!({"y": "z"})), Ok(2));
        assert_eq!(branch("o", json!({"map": {"x": "1"}})), Ok(2)); // tagged form
        assert_eq!(branch("a", json!([true, null])), Ok(1));
        // And the messages when nothing fits.
        assert_eq!(
            branch("n", json!("1")),
            Err("field n: expected null, an integer or a number, got \"1\"".into())
        );
        assert_eq!(
            branch("b", json!("☺")),
            Err("field b: expected a symbol of enum E2, a string of bytes or a string of 4 bytes, got \"☺\"".into())
        );
        assert_eq!(
            branch("f", json!(1e300)),
            // serde_json's float formatting (`1e+300` today) is not ours to pin.
            Err(format!(
                "field f: {} is out of range for a float",
                json!(1e300)
            ))
        );
        assert_eq!(
            branch("a", json!([1])),
            Err("field a[0]: expected a boolean, got 1".into())
        );
    }

    #[test]
    fn bytes_and_fixed_with_a_four_byte_fixed_branch_pick_by_length() {
        let schema = one_field("b", r#"[{"type":"fixed","name":"F4","size":4},"string"]"#);
        assert_eq!(encode(&schema, &json!({"b": "abcd"}))[0], 2); // string comes first
        let schema = one_field("b", r#"["null",{"type":"fixed","name":"F4","size":4}]"#);
        assert_eq!(
            encode(&schema, &json!({"b": "abcd"})),
            [2, b'a', b'b', b'c', b'd']
        );
        assert_eq!(
            encode_err(&schema, &json!({"b": "abc"})),
            "field b: fixed F4 needs exactly 4 bytes, got 3"
        );
    }

    #[test]
    fn non_finite_floats_are_strings_both_ways() {
        let schema = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"f","type":"float"},{"name":"d","type":["null","double"]}]}"#,
        );
        for (f, d) in [("NaN", "Infinity"), ("-Infinity", "NaN")] {
            let value = json!({"f": f, "d": d});
            assert_eq!(round_trip(&schema, &value), value);
        }
        assert_eq!(
            round_trip(&schema, &json!({"f": 0.1, "d": 0.1})),
            json!({"f": 0.1, "d": 0.1})
        );
    }

    #[test]
    fn integers_accept_integral_floats_and_check_their_range() {
        let schema = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"i","type":"int"},{"name":"l","type":"long"}]}"#,
        );
        let value: Value = serde_json::from_str(r#"{"i": 3.0, "l": 1e3}"#).expect("json");
        assert_eq!(round_trip(&schema, &value), json!({"i": 3, "l": 1000}));
        assert_eq!(
            round_trip(&schema, &json!({"i": i32::MAX, "l": i64::MIN})),
            json!({"i": i32::MAX, "l": i64::MIN})
        );
        assert_eq!(
            encode_err(&schema, &json!({"i": 3_000_000_000_i64, "l": 0})),
            "field i: 3000000000 is out of range for an int (32 bits)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"i": 0, "l": u64::MAX})),
            "field l: 18446744073709551615 is out of range for a long (64 bits)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"i": 1.5, "l": 0})),
            "field i: expected an integer, got 1.5"
        );
        assert_eq!(
            encode_err(&schema, &json!({"i": 0, "l": 1e300})),
            format!("field l: expected an integer, got {}", json!(1e300))
        );
    }

    // ---- every error a person can get ----

    #[test]
    fn wrong_kinds_name_the_field_and_the_value() {
        let schema = parsed(ORDER_EVENT);
        let cases = [
            (
                json!({"Amount__c": "abc"}),
                "field Amount__c: expected a number, got \"abc\"",
            ),
            (
                json!({"Shipped__c": 1}),
                "field Shipped__c: expected a boolean, got 1",
            ),
            (
                json!({"Name__c": ["x"]}),
                "field Name__c: expected a string, got an array",
            ),
            (
                json!({"Tags__c": "x"}),
                "field Tags__c: expected an array, got \"x\"",
            ),
            (
                json!({"Tags__c": ["a", 2]}),
                "field Tags__c[1]: expected a string, got 2",
            ),
            (
                json!({"Attributes__c": {"w": "heavy"}}),
                "field Attributes__c[\"w\"]: expected an integer, got \"heavy\"",
            ),
            (
                json!({"Attributes__c": []}),
                "field Attributes__c: expected an object (a map), got an array",
            ),
            (
                json!({"Address__c": {"City": false}}),
                "field Address__c.City: expected a string, got false",
            ),
            (
                json!({"Address__c": "Main St"}),
                "field Address__c: expected an object (record Address), got \"Main St\"",
            ),
            (
                json!({"Priority__c": 1}),
                "field Priority__c: expected a string (a symbol of enum Priority), got 1",
            ),
            (
                json!({"Quantity__c": null}),
                "field Quantity__c: expected an integer, got null",
            ),
            (
                json!({"CreatedById": 5}),
                "field CreatedById: expected a string, got 5",
            ),
            (
                json!({"Blob__c": 5}),
                "field Blob__c: expected a string of bytes (code points 0-255), got 5",
            ),
        ];
        for (value, message) in cases {
            assert_eq!(encode_err(&schema, &value), message, "{value}");
        }
        assert_eq!(
            encode_err(&schema, &json!([1])),
            "the event: expected an object (record Order_Event__e), got an array"
        );
        let long = encode_err(&schema, &json!({"Amount__c": "y".repeat(1000)}));
        assert!(long.len() < 120 && long.ends_with("…"), "{long}");
    }

    #[test]
    fn missing_required_fields_are_named_with_their_path() {
        let schema = parsed(ORDER_EVENT);
        let value = json!({"Lines__c": [
            {"Sku": "A", "Qty": 1}, {"Sku": "B", "Qty": 2}, {"Qty": 3}
        ]});
        assert_eq!(
            encode_err(&schema, &value),
            "field Lines__c[2].Sku: missing and has no default"
        );
        let schema = one_field("Required__c", r#""string""#);
        assert_eq!(
            encode_err(&schema, &json!({})),
            "field Required__c: missing and has no default"
        );
    }

    #[test]
    fn unknown_fields_are_listed_with_a_case_hint() {
        let schema = parsed(ORDER_EVENT);
        assert_eq!(
            encode_err(&schema, &json!({"Foo__c": 1})),
            "unknown field Foo__c"
        );
        assert_eq!(
            encode_err(&schema, &json!({"Foo__c": 1, "Bar__c": 2})),
            "unknown fields Bar__c, Foo__c"
        );
        assert_eq!(
            encode_err(&schema, &json!({"amount__c": 1})),
            "unknown field amount__c (did you mean Amount__c?)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"Address__c": {"Zip": "1"}})),
            "unknown field Address__c.Zip"
        );
        assert_eq!(
            encode_err(
                &schema,
                &json!({"Lines__c": [{"Sku": "A", "Qty": 1, "Colour": "red"}]})
            ),
            "unknown field Lines__c[0].Colour"
        );
        // Unknown fields are reported before missing ones: the typo is the likely cause.
        let schema = one_field("Required__c", r#""string""#);
        assert_eq!(
            encode_err(&schema, &json!({"required__c": "x"})),
            "unknown field required__c (did you mean Required__c?)"
        );
    }

    #[test]
    fn enum_symbols_bytes_and_fixed_are_checked() {
        let schema = parsed(ORDER_EVENT);
        assert_eq!(
            encode_err(&schema, &json!({"Status__c": "LOST"})),
            "field Status__c: \"LOST\" is not a symbol of enum Status (expected one of NEW, PAID, SHIPPED, CANCELLED)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"Priority__c": "low"})),
            "field Priority__c: \"low\" is not a symbol of enum Priority (expected one of LOW, HIGH)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"Blob__c": "a☺"})),
            "field Blob__c: character '☺' at position 1 is not a byte (bytes are written as a string of code points 0-255)"
        );
        assert_eq!(
            encode_err(&schema, &json!({"Checksum__c": "abc"})),
            "field Checksum__c: fixed Md5 needs exactly 16 bytes, got 3"
        );
        assert_eq!(
            encode_err(
                &schema,
                &json!({"Checksum__c": {"Md5": "é".repeat(15) + "☺"}})
            ),
            "field Checksum__c: character '☺' at position 15 is not a byte (bytes are written as a string of code points 0-255)"
        );
    }

    #[test]
    fn a_default_that_does_not_encode_is_reported_as_the_schemas_fault() {
        // apache-avro accepts any string as a bytes default; ours must be code points 0-255.
        let schema = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"☺"}]}"#,
        );
        let err = schema
            .encode_json(&json!({}), &defaults())
            .expect_err("bad default");
        assert!(matches!(err, JsonError::BadDefault { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "field b: the schema's default value cannot be used: field b: character '☺' at position 0 is not a byte (bytes are written as a string of code points 0-255)"
        );
        assert_eq!(round_trip(&schema, &json!({"b": "ok"})), json!({"b": "ok"}));
        // A default within a default is reported once, at the innermost field.
        let schema = parsed(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"S","fields":[
                {"name":"x","type":"bytes","default":"☺"}]},"default":{}}]}"#,
        );
        assert_eq!(
            encode_err(&schema, &json!({})),
            "field a.x: the schema's default value cannot be used: field a.x: character '☺' at position 0 is not a byte (bytes are written as a string of code points 0-255)"
        );
    }

    /// `{"value": 0, "next": {"value": 1, "next": … null}}`, `nodes` records deep.
    fn linked_list(nodes: usize) -> Value {
        let mut value = Value::Null;
        for i in (0..nodes).rev() {
            value = json!({"value": i, "next": value});
        }
        value
    }

    #[test]
    fn nesting_stops_at_the_validators_depth_cap() {
        let schema = parsed(LINKED_LIST);
        let deepest = linked_list(MAX_DEPTH);
        assert_eq!(round_trip(&schema, &deepest), deepest);
        let err = schema
            .encode_json(&linked_list(MAX_DEPTH + 1), &defaults())
            .expect_err("too deep");
        assert!(
            matches!(
                err,
                JsonError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .ends_with(": values nest more than 64 records, arrays and maps deep"),
            "{err}"
        );
        // Far deeper input fails the same way, without exhausting the stack.
        assert!(
            schema
                .encode_json(&linked_list(1_000), &defaults())
                .is_err()
        );
    }

    #[test]
    fn zero_byte_items_stop_at_the_validators_cap() {
        let schema = one_field("xs", r#"{"type":"array","items":"null"}"#);
        let at_cap = json!({"xs": vec![Value::Null; MAX_ZERO_WIDTH_ITEMS as usize]});
        assert_eq!(round_trip(&schema, &at_cap), at_cap);
        let over = json!({"xs": vec![Value::Null; MAX_ZERO_WIDTH_ITEMS as usize + 1]});
        assert_eq!(
            encode_err(&schema, &over),
            "field xs: more than 65536 zero-byte array items in one event"
        );
    }

    #[test]
    fn decoding_rejects_invalid_payloads_with_the_validators_message() {
        let schema = parsed(ORDER_EVENT);
        let mut bytes = encode(&schema, &full_order());
        bytes.push(0);
        let err = schema.decode_to_json(&bytes).expect_err("trailing byte");
        assert_eq!(
            err.to_string(),
            "the payload is not a valid event of this schema: the payload has 1 bytes left over after the record ended"
        );
        assert!(matches!(err, JsonError::InvalidPayload(_)));
        let schema = one_field("Amount__c", r#"["null","double"]"#);
        assert_eq!(
            schema.decode_to_json(&[14]).map_err(|e| e.to_string()),
            Err("the payload is not a valid event of this schema: field `Amount__c`: union branch index 7 is out of range (the union has 2 branches)".into())
        );
    }

    #[test]
    fn decoding_reads_negative_block_counts() {
        let schema = one_field("xs", r#"{"type":"array","items":"long"}"#);
        // Count -2 with a byte size of 2, items 1 and -1, end marker.
        assert_eq!(
            schema.decode_to_json(&[3, 4, 2, 1, 0]).expect("valid"),
            json!({"xs": [1, -1]})
        );
    }

    // ---- property tests ----

    /// The JSON codec's own draws, on top of the shared generator.
    impl Rng {
        fn byte_string(&mut self, n: usize) -> String {
            (0..n).map(|_| char::from(self.next() as u8)).collect()
        }

        /// A float as the decoder prints it: shortest form, or a non-finite string.
        fn float(&mut self, bits: u64, single: bool) -> Value {
            if single {
                let x = f32::from_bits(bits as u32);
                float_json(x.to_string().parse::<f64>().unwrap_or(f64::NAN))
            } else {
                float_json(f64::from_bits(bits))
            }
        }
    }

    /// A random event in the person-friendly form, following the schema. Unions are bare
    /// unless `tagged` picks the Avro JSON form for a branch.
    fn random_json(schema: &Schema, names: &NamedTypes<'_>, rng: &mut Rng, depth: usize) -> Value {
        let deep = depth > 5;
        let base = names.base(schema).expect("refs resolve");
        match base {
            Base::Null => Value::Null,
            Base::Boolean => Value::Bool(rng.next() & 1 == 1),
            Base::Int => json!(rng.long() as i32),
            Base::Long => json!(rng.long()),
            Base::Float => {
                let bits = rng.next();
                rng.float(bits, true)
            }
            Base::Double => {
                let bits = rng.next();
                rng.float(bits, false)
            }
            Base::Bytes => {
                let n = rng.below(20);
                Value::String(rng.byte_string(n))
            }
            Base::String => Value::String(rng.string()),
            Base::Fixed(f) => Value::String(rng.byte_string(f.size)),
            Base::Enum(e) => Value::String(e.symbols[rng.below(e.symbols.len())].clone()),
            Base::Array(items) => {
                let n = if deep { 0 } else { rng.below(5) };
                Value::Array(
                    (0..n)
                        .map(|_| random_json(items, names, rng, depth + 1))
                        .collect(),
                )
            }
            Base::Map(values) => {
                let n = if deep { 0 } else { rng.below(5) };
                Value::Object(
                    (0..n)
                        .map(|_| (rng.string(), random_json(values, names, rng, depth + 1)))
                        .collect(),
                )
            }
            Base::Union(branches) => {
                let i = if deep { 0 } else { rng.below(branches.len()) };
                let inner = random_json(&branches[i], names, rng, depth + 1);
                if rng.below(4) == 0 {
                    let key = names.base(&branches[i]).expect("refs resolve").type_name();
                    json!({ key: inner })
                } else {
                    inner
                }
            }
            Base::Record(r) => {
                // Fields with a default are sometimes left out, so defaults get exercised.
                let mut out = Map::new();
                for f in &r.fields {
                    let optional =
                        f.default.is_some() || (depth == 0 && f.name.starts_with("Created"));
                    if !optional || rng.below(4) != 0 {
                        out.insert(
                            f.name.clone(),
                            random_json(&f.schema, names, rng, depth + 1),
                        );
                    }
                }
                Value::Object(out)
            }
        }
    }

    /// Whether `got` is `expected` with defaults filled in: numbers compared by value (`5`
    /// and `5.0` are equal), NaN (a string here) equal to itself, extra object keys allowed.
    fn same(expected: &Value, got: &Value) -> bool {
        match (expected, got) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64() || a == b,
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            // Decoding fills in the defaults of fields the input left out.
            (Value::Object(a), Value::Object(b)) => {
                a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
            }
            _ => expected == got,
        }
    }

    /// Drops the Avro JSON union wrappers the generator added, for comparison with output.
    fn untag(schema: &Schema, names: &NamedTypes<'_>, value: &Value) -> Value {
        match (names.base(schema).expect("refs resolve"), value) {
            (Base::Union(branches), v) => {
                let bases: Vec<_> = branches
                    .iter()
                    .map(|b| names.base(b).expect("refs resolve"))
                    .collect();
                if let Value::Object(m) = v
                    && m.len() == 1
                    && let Some((key, inner)) = m.iter().next()
                    && let Some(i) = bases.iter().position(|b| names_branch(b, key))
                {
                    return untag(&branches[i], names, inner);
                }
                match pick_branch(&bases, v) {
                    Some(i) => untag(&branches[i], names, v),
                    None => v.clone(),
                }
            }
            (Base::Record(r), Value::Object(m)) => Value::Object(
                r.fields
                    .iter()
                    .filter_map(|f| {
                        m.get(&f.name)
                            .map(|v| (f.name.clone(), untag(&f.schema, names, v)))
                    })
                    .collect(),
            ),
            (Base::Array(items), Value::Array(xs)) => {
                Value::Array(xs.iter().map(|x| untag(items, names, x)).collect())
            }
            (Base::Map(values), Value::Object(m)) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), untag(values, names, v)))
                    .collect(),
            ),
            (_, v) => v.clone(),
        }
    }

    /// Arbitrary JSON, mostly small, with keys that are often field names of [`ORDER_EVENT`].
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("Amount__c".to_owned()),
            Just("Status__c".to_owned()),
            Just("Address__c".to_owned()),
            Just("City".to_owned()),
            Just("Lines__c".to_owned()),
            Just("Sku".to_owned()),
            Just("Qty".to_owned()),
            Just("Attributes__c".to_owned()),
            Just("double".to_owned()),
            Just("null".to_owned()),
            "[a-z]{1,3}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|x| Number::from_f64(x).map_or(Value::Null, Value::Number)),
            prop_oneof![Just("NEW".to_owned()), Just("\u{ff}".to_owned()), ".{0,3}"]
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_events_encode_validate_and_round_trip(seed in any::<u64>()) {
            for json in ALL_SCHEMAS {
                let schema = parsed(json);
                let names = NamedTypes::of(schema.avro_schema());
                let value = random_json(schema.avro_schema(), &names, &mut Rng(seed), 0);
                let bytes = schema.encode_json(&value, &defaults());
                prop_assert!(bytes.is_ok(), "{}: {:?}", value, bytes.err());
                let bytes = bytes.expect("checked");
                prop_assert_eq!(schema.validate(&bytes), Ok(()));
                let decoded = schema.decode_to_json(&bytes).expect("valid payload decodes");
                // Every field the input gave comes back as given (defaults fill the rest).
                let expected = untag(schema.avro_schema(), &names, &value);
                let Value::Object(expected) = expected else { unreachable!("events are records") };
                for (k, v) in &expected {
                    prop_assert!(same(v, &decoded[k]), "{}: {} became {}", k, v, decoded[k]);
                }
                // And the decoded form reads back as itself. (Not always from the same
                // bytes: where a union has two branches of one JSON kind, a value may come
                // back through the other one, e.g. a float 5.0 as the int 5.)
                let again = schema.encode_json(&decoded, &defaults()).expect("decoded form encodes");
                let redecoded = schema.decode_to_json(&again).expect("valid payload decodes");
                prop_assert!(same(&decoded, &redecoded), "{} became {}", decoded, redecoded);
            }
        }

        #[test]
        fn whatever_encodes_passes_the_validator(value in arbitrary_json()) {
            for json in ALL_SCHEMAS {
                let schema = parsed(json);
                let wrapped = json!({"Lines__c": [value.clone()], "Attributes__c": value.clone()});
                for input in [&value, &wrapped] {
                    if let Ok(bytes) = schema.encode_json(input, &defaults()) {
                        prop_assert_eq!(schema.validate(&bytes), Ok(()));
                        prop_assert!(schema.decode_to_json(&bytes).is_ok());
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for json in ALL_SCHEMAS {
                let _ = parsed(json).decode_to_json(&bytes);
            }
        }

        /// The decoder must read everything the validator accepts: corrupt valid payloads
        /// and check that validation and decoding agree.
        #[test]
        fn the_decoder_reads_whatever_the_validator_accepts(
            seed in any::<u64>(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            for json in ALL_SCHEMAS {
                let schema = parsed(json);
                let names = NamedTypes::of(schema.avro_schema());
                let value = random_json(schema.avro_schema(), &names, &mut Rng(seed), 0);
                let mut bytes = schema.encode_json(&value, &defaults()).expect("random events encode");
                if bytes.is_empty() {
                    continue;
                }
                for &(at, byte) in &edits {
                    let i = at % bytes.len();
                    bytes[i] = byte;
                }
                let decoded = schema.decode_to_json(&bytes);
                prop_assert_eq!(
                    decoded.is_ok(),
                    schema.validate(&bytes).is_ok(),
                    "{:?}", decoded.err()
                );
            }
        }
    }
}
