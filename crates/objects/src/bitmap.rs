//! The field bitmaps of a change event header (`changedFields`, `nulledFields`,
//! `diffFields`) as the Pub/Sub API delivers them.
//!
//! Owns: [`FieldSet`] (top-level positions plus nested component indexes per compound
//! parent), [`encode`], [`decode`], [`names`] and [`field_names_from_schema`].
//! Must not: know objects or records (positions come from the caller or the schema text).
//!
//! Format (CDC_SPEC section 3): element 0 is `0x` + hex of one unsigned integer whose bit
//! `i` (least significant = 0) is the top-level field at schema position `i` (position 0
//! is the `ChangeEventHeader`, so bit 0 is never set); then one `{pos}-0x{hex}` element
//! per compound parent at position `pos`, whose bit `j` is component `j` of its nested
//! record. The parent's own top-level bit is not set by its components.
//! eventbus writes uppercase hex (pozil's client reads only `0-9A-F`), in whole bytes with
//! the fewest digits (`0x0400` for bit 10), the top-level element first even when it is
//! `0x00` (both Salesforce clients look for nested entries only after it), and nested
//! elements in position order. Decoding accepts either case, any length and any order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A set of fields by position: top-level positions and, per compound parent position,
/// the indexes of its components.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Top-level positions (1-based: 0 is the header).
    pub top: BTreeSet<usize>,
    /// Compound parent position → component indexes (0-based).
    pub nested: BTreeMap<usize, BTreeSet<usize>>,
}

impl FieldSet {
    /// Whether no field is in the set (empty nested sets count as nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.top.is_empty() && self.nested.values().all(BTreeSet::is_empty)
    }

    /// Adds component `component` of the compound at `position`.
    pub fn insert_nested(&mut self, position: usize, component: usize) {
        self.nested.entry(position).or_default().insert(component);
    }
}

/// Why bitmap strings could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    /// An element that is neither `0x<hex>` nor `<pos>-0x<hex>`.
    #[error("bitmap element {element:?} is not 0x<hex> or <position>-0x<hex>")]
    Malformed {
        /// The element, shortened to 40 characters.
        element: String,
    },
    /// Two top-level elements.
    #[error("bitmap has two top-level elements ({first:?} and {second:?})")]
    TwoTopLevel {
        /// The first one.
        first: String,
        /// The second one.
        second: String,
    },
    /// Two nested elements for the same parent.
    #[error("bitmap has two elements for the compound field at position {position}")]
    DuplicateParent {
        /// The parent's position.
        position: usize,
    },
    /// The schema text is not a change event schema.
    #[error("not a change event schema: {0}")]
    Schema(String),
    /// A bit past the last field of the schema or of a compound record.
    #[error("{what} has no field at position {position} ({count} fields)")]
    OutOfRange {
        /// `the schema` or `compound field Name`.
        what: String,
        /// The bit set.
        position: usize,
        /// How many fields there are.
        count: usize,
    },
}

/// The positions of `bits` as uppercase hex in whole bytes, most significant first.
fn hex(bits: &BTreeSet<usize>) -> String {
    let Some(&max) = bits.last() else {
        return "00".to_owned();
    };
    let mut bytes = vec![0u8; max / 8 + 1];
    for &b in bits {
        bytes[b / 8] |= 1 << (b % 8);
    }
    bytes.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// The bitmap strings of `set`: `[]` when it is empty; else the top-level `0x..` element
/// first (`0x00` when only components are set), then `{pos}-0x..` per compound parent
/// with components, in position order. Hex digits are uppercase.
#[must_use]
pub fn encode(set: &FieldSet) -> Vec<String> {
    if set.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!("0x{}", hex(&set.top))];
    for (pos, parts) in &set.nested {
        if !parts.is_empty() {
            out.push(format!("{pos}-0x{}", hex(parts)));
        }
    }
    out
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// The bit positions of one `0x<hex>` (either case, any length).
fn bits_of(element: &str, hex_part: &str) -> Result<BTreeSet<usize>, BitmapError> {
    let malformed = || BitmapError::Malformed {
        element: shorten(element),
    };
    let digits = hex_part
        .strip_prefix("0x")
        .or_else(|| hex_part.strip_prefix("0X"))
        .ok_or_else(malformed)?;
    if digits.is_empty() {
        return Err(malformed());
    }
    let mut out = BTreeSet::new();
    for (k, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16).ok_or_else(malformed)?;
        for b in 0..4 {
            if v & (1 << b) != 0 {
                out.insert(k * 4 + b);
            }
        }
    }
    Ok(out)
}

/// Reads bitmap strings back into a [`FieldSet`]: the inverse of [`encode`], accepting
/// either case, any number of digits and the elements in any order. A nested element
/// with no bits set is dropped.
///
/// # Errors
/// [`BitmapError::Malformed`] for an element of another form,
/// [`BitmapError::TwoTopLevel`] and [`BitmapError::DuplicateParent`] for repeats.
pub fn decode(bitmaps: &[String]) -> Result<FieldSet, BitmapError> {
    let mut set = FieldSet::default();
    let mut top: Option<&str> = None;
    for element in bitmaps {
        match element.split_once('-') {
            None => {
                if let Some(first) = top {
                    return Err(BitmapError::TwoTopLevel {
                        first: shorten(first),
                        second: shorten(element),
                    });
                }
                top = Some(element);
                set.top = bits_of(element, element)?;
            }
            Some((pos, hex_part)) => {
                let position = if !pos.is_empty() && pos.bytes().all(|b| b.is_ascii_digit()) {
                    pos.parse::<usize>().ok()
                } else {
                    None
                }
                .ok_or_else(|| BitmapError::Malformed {
                    element: shorten(element),
                })?;
                if set.nested.contains_key(&position) {
                    return Err(BitmapError::DuplicateParent { position });
                }
                // Kept even when empty so a repeat is still caught; dropped at the end.
                set.nested.insert(position, bits_of(element, hex_part)?);
            }
        }
    }
    set.nested.retain(|_, bits| !bits.is_empty());
    Ok(set)
}

/// The field names of `set`: top-level fields by name (`Name`), then components as
/// `Parent.Component` (`BillingAddress.City`), each in position order. `fields[i]` is the
/// name and component names of the field at position `i` (index 0 is the header).
/// Positions with no field are skipped.
#[must_use]
pub fn names(fields: &[(String, Vec<String>)], set: &FieldSet) -> Vec<String> {
    let mut out: Vec<String> = set
        .top
        .iter()
        .filter_map(|&p| fields.get(p).map(|(n, _)| n.clone()))
        .collect();
    for (pos, parts) in &set.nested {
        let Some((parent, components)) = fields.get(*pos) else {
            continue;
        };
        out.extend(
            parts
                .iter()
                .filter_map(|&j| components.get(j).map(|c| format!("{parent}.{c}"))),
        );
    }
    out
}

/// The top-level fields of a record schema with the field names of the nested record of
/// each (empty for non-records); named records defined earlier are resolved by name.
fn schema_fields(schema_json: &str) -> Result<Vec<(String, Vec<String>)>, BitmapError> {
    let schema: Value = serde_json::from_str(schema_json)
        .map_err(|e| BitmapError::Schema(format!("invalid JSON: {e}")))?;
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| BitmapError::Schema("the schema is not a record".to_owned()))?;
    let mut records: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for f in fields {
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| BitmapError::Schema("a field without a name".to_owned()))?;
        let ty = f.get("type").unwrap_or(&Value::Null);
        let branches: Vec<&Value> = match ty {
            Value::Array(b) => b.iter().collect(),
            other => vec![other],
        };
        let mut parts = Vec::new();
        for b in branches {
            match b {
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("record") => {
                    let sub: Vec<String> = o
                        .get("fields")
                        .and_then(Value::as_array)
                        .map(|fs| {
                            fs.iter()
                                .filter_map(|f| f.get("name").and_then(Value::as_str))
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(n) = o.get("name").and_then(Value::as_str) {
                        let short = n.rsplit('.').next().unwrap_or(n).to_owned();
                        records.insert(short, sub.clone());
                    }
                    if parts.is_empty() {
                        parts = sub;
                    }
                }
                Value::String(s) => {
                    let short = s.rsplit('.').next().unwrap_or(s);
                    if let Some(sub) = records.get(short)
                        && parts.is_empty()
                    {
                        parts.clone_from(sub);
                    }
                }
                _ => {}
            }
        }
        out.push((name.to_owned(), parts));
    }
    Ok(out)
}

/// The field names of `bitmaps` (see [`names`]) with the positions read from a change
/// event's Avro schema JSON: for the command line and tests.
///
/// # Errors
/// As [`decode`]; [`BitmapError::Schema`] when the text is not a record schema;
/// [`BitmapError::OutOfRange`] for a bit past the last field of the schema or of a
/// compound record.
pub fn field_names_from_schema(
    schema_json: &str,
    bitmaps: &[String],
) -> Result<Vec<String>, BitmapError> {
    let fields = schema_fields(schema_json)?;
    let set = decode(bitmaps)?;
    if let Some(&p) = set.top.iter().find(|&&p| p >= fields.len()) {
        return Err(BitmapError::OutOfRange {
            what: "the schema".to_owned(),
            position: p,
            count: fields.len(),
        });
    }
    for (pos, parts) in &set.nested {
        let Some((parent, components)) = fields.get(*pos) else {
            return Err(BitmapError::OutOfRange {
                what: "the schema".to_owned(),
                position: *pos,
                count: fields.len(),
            });
        };
        if let Some(&j) = parts.iter().find(|&&j| j >= components.len()) {
            return Err(BitmapError::OutOfRange {
                what: format!("compound field {parent}"),
                position: j,
                count: components.len(),
            });
        }
    }
    Ok(names(&fields, &set))
}

/// The bitmap fields of a change event's header (`changedFields`,
/// `nulledFields`, `diffFields`), each followed by its field names
/// (`changedFieldNames: ["Name", "BillingAddress.City"]`) decoded with the
/// event's schema (for people: the CLI and the console). Other events are
/// left as they are, and so is a bitmap that does not decode (the raw value
/// is still shown).
pub fn name_header_fields(schema_json: &str, payload: &mut Value) {
    let Some(Value::Object(header)) = payload.get_mut("ChangeEventHeader") else {
        return;
    };
    let mut named = serde_json::Map::with_capacity(header.len() + 3);
    for (key, value) in std::mem::take(header) {
        let names = matches!(
            key.as_str(),
            "changedFields" | "nulledFields" | "diffFields"
        )
        .then(|| {
            let bitmaps: Vec<String> = value
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            field_names_from_schema(schema_json, &bitmaps).ok()
        })
        .flatten();
        let name_key = format!("{}Names", key.trim_end_matches('s'));
        named.insert(key, value);
        if let Some(names) = names {
            named.insert(name_key, Value::from(names));
        }
    }
    *header = named;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(top: &[usize], nested: &[(usize, &[usize])]) -> FieldSet {
        FieldSet {
            top: top.iter().copied().collect(),
            nested: nested
                .iter()
                .map(|(p, b)| (*p, b.iter().copied().collect()))
                .collect(),
        }
    }

    #[test]
    fn the_documented_example_decodes_and_encodes_back() {
        let input = strings(&["0x650004E0", "4-0x10", "7-0x06"]);
        let s = decode(&input).expect("decodes");
        assert_eq!(
            s,
            set(&[5, 6, 7, 10, 24, 26, 29, 30], &[(4, &[4]), (7, &[1, 2])])
        );
        assert_eq!(encode(&s), input);
        // Lowercase and odd lengths read the same.
        let lower = strings(&["0x650004e0", "7-0X6", "4-0x010"]);
        assert_eq!(decode(&lower).expect("decodes"), s);
    }

    #[test]
    fn encoding_is_uppercase_whole_bytes_with_the_top_level_first() {
        assert_eq!(encode(&FieldSet::default()), Vec::<String>::new());
        assert_eq!(encode(&set(&[10], &[])), ["0x0400"]);
        assert_eq!(encode(&set(&[1], &[])), ["0x02"]);
        // Address City (1) and PostalCode (3) of a compound at position 4.
        assert_eq!(encode(&set(&[], &[(4, &[1, 3])])), ["0x00", "4-0x0A"]);
        assert_eq!(
            encode(&set(&[1, 3, 28], &[(9, &[0]), (4, &[1, 3])])),
            ["0x1000000A", "4-0x0A", "9-0x01"]
        );
        // An empty nested set is nothing.
        assert_eq!(encode(&set(&[], &[(4, &[])])), Vec::<String>::new());
    }

    #[test]
    fn decoding_reports_what_is_wrong() {
        let err = |v: &[&str]| decode(&strings(v)).expect_err("refused").to_string();
        assert!(err(&["650004E0"]).contains("not 0x<hex>"));
        assert!(err(&["0xZZ"]).contains("\"0xZZ\""));
        assert!(err(&["0x"]).contains("not 0x<hex>"));
        assert!(err(&["x-0x01"]).contains("not 0x<hex>"));
        assert!(err(&["-0x01"]).contains("not 0x<hex>"));
        assert!(err(&["0x01", "0x02"]).contains("two top-level"));
        assert!(err(&["0x01", "4-0x01", "4-0x02"]).contains("position 4"));
        assert_eq!(
            decode(&strings(&["0x00", "4-0x00"])).expect("ok"),
            FieldSet::default()
        );
    }

    #[test]
    fn names_come_from_positions() {
        let fields = vec![
            ("ChangeEventHeader".to_owned(), vec![]),
            ("Name".to_owned(), vec![]),
            (
                "BillingAddress".to_owned(),
                strings(&["Street", "City", "State", "PostalCode"]),
            ),
            ("LastModifiedDate".to_owned(), vec![]),
        ];
        let s = set(&[1, 3, 9], &[(2, &[1, 3])]);
        assert_eq!(
            names(&fields, &s),
            [
                "Name",
                "LastModifiedDate",
                "BillingAddress.City",
                "BillingAddress.PostalCode"
            ]
        );
    }

    #[test]
    fn names_from_a_schema_resolve_named_records() {
        let schema = r#"{"type":"record","name":"AccountChangeEvent","fields":[
            {"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[]}},
            {"name":"Name","type":["null","string"],"default":null},
            {"name":"BillingAddress","type":["null",{"type":"record","name":"Address","namespace":"com.sforce.eventbus",
                "fields":[{"name":"Street","type":["null","string"]},{"name":"City","type":["null","string"]}]}],"default":null},
            {"name":"ShippingAddress","type":["null","com.sforce.eventbus.Address"],"default":null}]}"#;
        let got = field_names_from_schema(schema, &strings(&["0x02", "3-0x02", "2-0x01"]))
            .expect("names");
        assert_eq!(
            got,
            ["Name", "BillingAddress.Street", "ShippingAddress.City"]
        );
        let e = field_names_from_schema(schema, &strings(&["0x10"])).expect_err("past the end");
        assert_eq!(
            e.to_string(),
            "the schema has no field at position 4 (4 fields)"
        );
        let e = field_names_from_schema(schema, &strings(&["0x00", "3-0x04"])).expect_err("part");
        assert_eq!(
            e.to_string(),
            "compound field ShippingAddress has no field at position 2 (2 fields)"
        );
        assert!(matches!(
            field_names_from_schema("[]", &[]),
            Err(BitmapError::Schema(_))
        ));
    }

    fn field_sets() -> impl Strategy<Value = FieldSet> {
        (
            proptest::collection::btree_set(1usize..300, 0..20),
            proptest::collection::btree_map(
                1usize..300,
                proptest::collection::btree_set(0usize..20, 1..6),
                0..4,
            ),
        )
            .prop_map(|(top, nested)| FieldSet { top, nested })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(s in field_sets()) {
            let out = encode(&s);
            prop_assert_eq!(&decode(&out).expect("own output decodes"), &s);
            if let Some(first) = out.first() {
                prop_assert!(first.starts_with("0x") && !first.contains('-'));
                prop_assert_eq!(out.iter().filter(|e| !e.contains('-')).count(), 1);
            } else {
                prop_assert!(s.is_empty());
            }
            for e in &out {
                let digits = e.rsplit("0x").next().unwrap_or("");
                prop_assert!(digits.len() % 2 == 0 && !digits.is_empty());
                prop_assert!(digits.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
            }
        }

        #[test]
        fn decode_never_panics(input in proptest::collection::vec("[-0-9a-fA-FxX]{0,12}|.{0,12}", 0..5)) {
            let _ = decode(&input);
        }
    }

    #[test]
    fn header_bitmaps_get_their_names_beside_them() {
        let schema = r#"{"type":"record","name":"AccountChangeEvent","fields":[
            {"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[]}},
            {"name":"Name","type":["null","string"]},
            {"name":"Phone","type":["null","string"]}]}"#;
        let mut payload = serde_json::json!({
            "ChangeEventHeader": {"changedFields": ["0x02"], "nulledFields": ["0x04"],
                                   "diffFields": ["0xFF"], "entityName": "Account"},
            "Name": "Acme"
        });
        name_header_fields(schema, &mut payload);
        let h = &payload["ChangeEventHeader"];
        assert_eq!(h["changedFieldNames"], serde_json::json!(["Name"]));
        assert_eq!(h["nulledFieldNames"], serde_json::json!(["Phone"]));
        // Out of range for the schema: the raw bitmap stays, no names.
        assert!(h.get("diffFieldNames").is_none());
        assert_eq!(h["diffFields"], serde_json::json!(["0xFF"]));
        let mut other = serde_json::json!({"Order_Number__c": "1"});
        name_header_fields(schema, &mut other);
        assert_eq!(other, serde_json::json!({"Order_Number__c": "1"}));
    }
}
