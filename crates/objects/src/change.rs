//! A change to a record turned into a change event: the body values and field bitmaps,
//! and the encoded Avro datum.
//!
//! Owns: [`ChangeType`], [`Header`], [`ChangeBody`], [`body`], [`encode`],
//! [`decoded_names`], the conversion of REST record values into the JSON the schema
//! encoder takes, and the choice of which fields go as diffs (the diff text itself is
//! [`crate::textdiff`]'s).
//! Must not: store records, assign transaction keys, sequence or commit numbers (the
//! engine does), or name `apache_avro` (encoding goes through
//! `eventbus_schema::ParsedSchema::encode_json`, which fills `CreatedDate`/`CreatedById`
//! only for plain `long`/`string` fields; change event fields are `["null", T]` unions,
//! so an UPDATE's null `CreatedDate` stays null).
//!
//! What goes in the body (CDC_SPEC section 4): CREATE and UNDELETE carry every non-null
//! field of the record and empty bitmaps; UPDATE carries only the fields whose value
//! changed (`LastModifiedDate` included when it moved), lists them in `changedFields`,
//! and those changed to null also in `nulledFields`; a changed component of a compound
//! field sets its nested bit under the parent's position (not the parent's own bit) and
//! the nested record carries only the changed components (all of them for a custom
//! geolocation field, as Salesforce does); DELETE and the GAP_* types
//! carry no values.
//!
//! `diffFields` (CDC guide "Sending Data Differences for Fields of Updated Records"):
//! in an UPDATE, a changed long text field (`FieldType::LongTextArea`: `Description`
//! and Long/Rich Text Area fields) whose old and new values are both non-null carries a
//! line diff instead of its new value when [`textdiff::unified`] says the diff
//! qualifies (new value of at least 1,000 characters, lengths within 50%, at most 25%
//! of the lines changed, diff shorter than the value). Such a field has its
//! `diffFields` bit and keeps its `changedFields` bit: Salesforce describes
//! `changedFields` as the fields that changed and `diffFields` as those whose value was
//! sent as a diff, and a diffed field did change (the header bitmaps of the guide's
//! Pub/Sub example were not legible in the copy we read, so this is our reading). Every
//! other value, and every CREATE or UNDELETE, goes whole.

use eventbus_schema::ParsedSchema;
use eventbus_schema::json::{JsonDefaults, JsonError};
use serde_json::{Map, Value, json};

use crate::bitmap::{self, BitmapError, FieldSet};
use crate::model::{FieldType, ObjectDef};
use crate::record::{MS_PER_DAY, Record, parse_date, parse_datetime, parse_time};
use crate::textdiff;

/// The `changeType` of a change event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// A record was created.
    Create,
    /// A record was changed.
    Update,
    /// A record was deleted (to the recycle bin).
    Delete,
    /// A record was restored from the recycle bin.
    Undelete,
    /// A create whose values are not sent.
    GapCreate,
    /// An update whose values are not sent.
    GapUpdate,
    /// A delete that could not be sent normally.
    GapDelete,
    /// An undelete whose values are not sent.
    GapUndelete,
    /// Changes past the per-transaction limit, one event per entity.
    GapOverflow,
}

impl ChangeType {
    /// Every change type, in the schema enum's symbol order.
    pub const ALL: [ChangeType; 9] = [
        ChangeType::Create,
        ChangeType::Update,
        ChangeType::Delete,
        ChangeType::Undelete,
        ChangeType::GapCreate,
        ChangeType::GapUpdate,
        ChangeType::GapDelete,
        ChangeType::GapUndelete,
        ChangeType::GapOverflow,
    ];

    /// The enum symbol: `CREATE`, `GAP_OVERFLOW`.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Undelete => "UNDELETE",
            ChangeType::GapCreate => "GAP_CREATE",
            ChangeType::GapUpdate => "GAP_UPDATE",
            ChangeType::GapDelete => "GAP_DELETE",
            ChangeType::GapUndelete => "GAP_UNDELETE",
            ChangeType::GapOverflow => "GAP_OVERFLOW",
        }
    }

    /// The change type of a symbol (exact case, as in the schema).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.symbol() == s)
    }

    /// Whether this is one of the GAP_* types.
    #[must_use]
    pub fn is_gap(self) -> bool {
        self.symbol().starts_with("GAP_")
    }
}

/// The header fields of a change event other than the bitmaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The object's API name: `Account`.
    pub entity_name: String,
    /// The ids of the records changed (empty for GAP_OVERFLOW).
    pub record_ids: Vec<String>,
    /// What happened.
    pub change_type: ChangeType,
    /// `com/salesforce/api/rest/62.0;client=...` or empty.
    pub change_origin: String,
    /// Shared by every event of one transaction.
    pub transaction_key: String,
    /// 1-based order within the transaction.
    pub sequence_number: i32,
    /// Commit time, epoch milliseconds.
    pub commit_timestamp: i64,
    /// The system change number of the commit.
    pub commit_number: i64,
    /// The id of the user whose transaction it was.
    pub commit_user: String,
}

/// The body of a change event and its bitmaps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeBody {
    /// Schema-level field names → the encoder's JSON; compound fields are objects keyed
    /// by component short names. An absent field is null.
    pub values: Map<String, Value>,
    /// `changedFields`.
    pub changed: FieldSet,
    /// `nulledFields`.
    pub nulled: FieldSet,
    /// `diffFields`: the long text fields whose value is a line diff (see the module
    /// docs); each is in `changed` too.
    pub diff: FieldSet,
}

/// Why a change event could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The values do not fit the schema (a schema of another object, or a stale one).
    #[error("the change event does not fit its schema: {0}")]
    Encode(#[from] JsonError),
}

/// A REST record value of type `ty` as the schema encoder's JSON (see
/// [`crate::schema`] for the types): datetimes to epoch milliseconds, dates to days,
/// times to milliseconds after midnight. `None` for null or a value that does not read.
fn avro_value(ty: FieldType, value: Option<&Value>) -> Option<Value> {
    let value = value.filter(|v| !v.is_null())?;
    let text = value.as_str();
    Some(match ty {
        FieldType::DateTime => Value::from(text.and_then(parse_datetime)?),
        FieldType::Date => {
            // A stored date is `YYYY-MM-DD`; a datetime is read as its UTC date.
            let days = text.and_then(parse_date).or_else(|| {
                text.and_then(parse_datetime)
                    .map(|ms| ms.div_euclid(MS_PER_DAY))
            })?;
            Value::from(days)
        }
        FieldType::Time => Value::from(text.and_then(parse_time)?),
        FieldType::Int => Value::from(value.as_i64()?),
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            Value::from(value.as_f64()?)
        }
        FieldType::Boolean => Value::Bool(value.as_bool()?),
        _ => match value {
            Value::String(_) => value.clone(),
            Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
            _ => return None,
        },
    })
}

/// The body and bitmaps of a `change` to a record of `obj`. `before` and `after` are the
/// full stored records (flat REST names, system fields included) before and after the
/// change; the ones a change type does not use may be `None`. See the module docs for
/// what each change type carries.
#[must_use]
pub fn body(
    obj: &ObjectDef,
    change: ChangeType,
    before: Option<&Record>,
    after: Option<&Record>,
) -> ChangeBody {
    let mut out = ChangeBody::default();
    let empty = Record::new();
    match change {
        ChangeType::Create | ChangeType::Undelete => {
            let after = after.unwrap_or(&empty);
            for f in &obj.fields {
                if f.is_compound() {
                    let parts: Map<String, Value> = f
                        .components
                        .iter()
                        .filter_map(|c| {
                            Some((c.name.clone(), avro_value(c.ty, after.get(&c.field))?))
                        })
                        .collect();
                    if !parts.is_empty() {
                        out.values.insert(f.name.clone(), Value::Object(parts));
                    }
                } else if let Some(v) = avro_value(f.ty, after.get(&f.name)) {
                    out.values.insert(f.name.clone(), v);
                }
            }
        }
        ChangeType::Update => {
            let before = before.unwrap_or(&empty);
            let after = after.unwrap_or(&empty);
            for (i, f) in obj.fields.iter().enumerate() {
                let pos = i + 1;
                if f.is_compound() {
                    let mut parts = Map::new();
                    for (j, c) in f.components.iter().enumerate() {
                        let old = avro_value(c.ty, before.get(&c.field));
                        let new = avro_value(c.ty, after.get(&c.field));
                        if old == new {
                            continue;
                        }
                        out.changed.insert_nested(pos, j);
                        match new {
                            Some(v) => {
                                parts.insert(c.name.clone(), v);
                            }
                            None => out.nulled.insert_nested(pos, j),
                        }
                    }
                    // Salesforce publishes every component of a changed custom
                    // geolocation field, changed or not (CDC "General Considerations").
                    if !parts.is_empty() && f.custom && f.ty == FieldType::Location {
                        parts = f
                            .components
                            .iter()
                            .filter_map(|c| {
                                Some((c.name.clone(), avro_value(c.ty, after.get(&c.field))?))
                            })
                            .collect();
                    }
                    if !parts.is_empty() {
                        out.values.insert(f.name.clone(), Value::Object(parts));
                    }
                } else {
                    let old = avro_value(f.ty, before.get(&f.name));
                    let new = avro_value(f.ty, after.get(&f.name));
                    if old == new {
                        continue;
                    }
                    out.changed.top.insert(pos);
                    // A large text edit may go as a line diff (see the module docs).
                    let diff = match (f.ty, &old, &new) {
                        (
                            FieldType::LongTextArea,
                            Some(Value::String(old)),
                            Some(Value::String(new)),
                        ) => textdiff::unified(old, new),
                        _ => None,
                    };
                    if let Some(diff) = diff {
                        out.diff.top.insert(pos);
                        out.values.insert(f.name.clone(), Value::String(diff));
                        continue;
                    }
                    match new {
                        Some(v) => {
                            out.values.insert(f.name.clone(), v);
                        }
                        None => {
                            out.nulled.top.insert(pos);
                        }
                    }
                }
            }
        }
        ChangeType::Delete
        | ChangeType::GapCreate
        | ChangeType::GapUpdate
        | ChangeType::GapDelete
        | ChangeType::GapUndelete
        | ChangeType::GapOverflow => {}
    }
    out
}

/// The full change event datum as JSON for the schema encoder: the header with its
/// bitmaps, then the body values.
#[must_use]
pub fn event_json(header: &Header, body: &ChangeBody) -> Value {
    let mut event = Map::new();
    event.insert(
        "ChangeEventHeader".to_owned(),
        json!({
            "entityName": header.entity_name,
            "recordIds": header.record_ids,
            "changeType": header.change_type.symbol(),
            "changeOrigin": header.change_origin,
            "transactionKey": header.transaction_key,
            "sequenceNumber": header.sequence_number,
            "commitTimestamp": header.commit_timestamp,
            "commitNumber": header.commit_number,
            "commitUser": header.commit_user,
            "nulledFields": bitmap::encode(&body.nulled),
            "diffFields": bitmap::encode(&body.diff),
            "changedFields": bitmap::encode(&body.changed),
        }),
    );
    for (k, v) in &body.values {
        event.insert(k.clone(), v.clone());
    }
    Value::Object(event)
}

/// Encodes a change event: the header (bitmaps from [`bitmap::encode`]) and the body, as
/// one Avro datum of `schema` (the object's [`crate::schema::change_event_schema`]).
///
/// # Errors
/// [`ChangeError::Encode`] when the values do not fit the schema.
pub fn encode(
    schema: &ParsedSchema,
    header: &Header,
    body: &ChangeBody,
) -> Result<Vec<u8>, ChangeError> {
    // Never used: every field of a change event schema is a union, which the encoder's
    // Salesforce defaults do not touch (see the module docs).
    let unused = JsonDefaults {
        created_date_ms: 0,
        created_by_id: String::new(),
    };
    Ok(schema.encode_json(&event_json(header, body), &unused)?)
}

/// The field names of a decoded change event header's bitmaps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderNames {
    /// `changedFields` as names (`Name`, `BillingAddress.City`).
    pub changed: Vec<String>,
    /// `nulledFields` as names.
    pub nulled: Vec<String>,
    /// `diffFields` as names.
    pub diff: Vec<String>,
}

/// The names behind the bitmaps of a decoded `ChangeEventHeader` (its JSON as
/// `decode_to_json` gives it), with positions from the change event schema text.
///
/// # Errors
/// As [`bitmap::field_names_from_schema`]; [`BitmapError::Schema`] when a bitmap field
/// is missing or not an array of strings.
pub fn decoded_names(schema_json: &str, header_json: &Value) -> Result<HeaderNames, BitmapError> {
    let list = |key: &str| -> Result<Vec<String>, BitmapError> {
        let strings = header_json
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| BitmapError::Schema(format!("{key} is not an array of strings")))?;
        bitmap::field_names_from_schema(schema_json, &strings)
    };
    Ok(HeaderNames {
        changed: list("changedFields")?,
        nulled: list("nulledFields")?,
        diff: list("diffFields")?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::ObjectCatalog;
    use crate::schema::change_event_schema;

    fn record(v: Value) -> Record {
        v.as_object().cloned().expect("an object")
    }

    fn account() -> ObjectDef {
        ObjectCatalog::standard()
            .get("Account")
            .cloned()
            .expect("Account")
    }

    fn header(change_type: ChangeType) -> Header {
        Header {
            entity_name: "Account".to_owned(),
            record_ids: vec!["001000000000001AAA".to_owned()],
            change_type,
            change_origin: "com/salesforce/api/rest/62.0".to_owned(),
            transaction_key: "0001a2b3-c4d5-e6f7-0819-2a3b4c5d6e7f".to_owned(),
            sequence_number: 1,
            commit_timestamp: 1_796_432_523_000,
            // Past 2^53, where JavaScript numbers lose digits.
            commit_number: 9_007_199_254_740_993,
            commit_user: "005000000000001AAA".to_owned(),
        }
    }

    fn stored() -> Record {
        record(json!({
            "Name": "Acme",
            "BillingStreet": "1 Main St",
            "BillingCity": "Lyon",
            "BillingPostalCode": "69001",
            "NumberOfEmployees": 5,
            "AnnualRevenue": 1000.0,
            "Description": "old",
            "OwnerId": "005000000000001AAA",
            "CreatedDate": "2026-12-05T01:02:03.000+0000",
            "CreatedById": "005000000000001AAA",
            "LastModifiedDate": "2026-12-05T01:02:03.000+0000",
            "LastModifiedById": "005000000000001AAA",
        }))
    }

    fn position(obj: &ObjectDef, name: &str) -> usize {
        obj.field(name).map(|(i, _)| i + 1).expect(name)
    }

    #[test]
    fn symbols_round_trip() {
        for c in ChangeType::ALL {
            assert_eq!(ChangeType::parse(c.symbol()), Some(c));
        }
        assert_eq!(ChangeType::parse("create"), None);
        assert!(ChangeType::GapOverflow.is_gap() && !ChangeType::Update.is_gap());
        assert_eq!(
            ChangeType::ALL.map(ChangeType::symbol),
            crate::schema::CHANGE_TYPES
        );
    }

    #[test]
    fn a_create_carries_every_value_and_no_bitmaps() {
        let a = account();
        let b = body(&a, ChangeType::Create, None, Some(&stored()));
        assert!(b.changed.is_empty() && b.nulled.is_empty() && b.diff.is_empty());
        assert_eq!(b.values["Name"], "Acme");
        assert_eq!(
            b.values["BillingAddress"],
            json!({"Street": "1 Main St", "City": "Lyon", "PostalCode": "69001"})
        );
        assert!(!b.values.contains_key("ShippingAddress"));
        assert_eq!(b.values["CreatedDate"], json!(1_796_432_523_000_i64));
        assert_eq!(b.values["AnnualRevenue"], json!(1000.0));
        let schema = ParsedSchema::parse(&change_event_schema(&a)).expect("schema");
        let bytes = encode(&schema, &header(ChangeType::Create), &b).expect("encodes");
        let back = schema.decode_to_json(&bytes).expect("decodes");
        assert_eq!(back["ChangeEventHeader"]["changeType"], "CREATE");
        assert_eq!(back["ChangeEventHeader"]["changedFields"], json!([]));
        assert_eq!(back["BillingAddress"]["City"], "Lyon");
        assert_eq!(back["BillingAddress"]["Country"], Value::Null);
        assert_eq!(back["CreatedDate"], json!(1_796_432_523_000_i64));
    }

    #[test]
    fn an_update_of_name_and_billing_city_and_postal_code() {
        let a = account();
        let before = stored();
        let mut after = stored();
        after.insert("Name".into(), json!("Acme Corp"));
        after.insert("BillingCity".into(), json!("Paris"));
        after.insert("BillingPostalCode".into(), json!("75001"));
        after.insert("Description".into(), Value::Null);
        after.insert(
            "LastModifiedDate".into(),
            json!("2026-12-05T01:05:00.000+0000"),
        );
        let b = body(&a, ChangeType::Update, Some(&before), Some(&after));
        let (name, billing, description, modified) = (
            position(&a, "Name"),
            position(&a, "BillingAddress"),
            position(&a, "Description"),
            position(&a, "LastModifiedDate"),
        );
        assert_eq!(billing, 4);
        assert_eq!(
            b.changed.top,
            [name, description, modified].into_iter().collect()
        );
        assert_eq!(b.changed.nested[&4], [1, 3].into_iter().collect());
        assert_eq!(b.nulled.top, [description].into_iter().collect());
        assert!(b.nulled.nested.is_empty());
        assert_eq!(
            Value::Object(b.values.clone()),
            json!({
                "Name": "Acme Corp",
                "BillingAddress": {"City": "Paris", "PostalCode": "75001"},
                "LastModifiedDate": 1_796_432_700_000_i64,
            })
        );
        let changed = bitmap::encode(&b.changed);
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[1], "4-0x0A");
        assert!(changed[0].starts_with("0x"));
        assert_eq!(
            bitmap::decode(&changed[..1]).expect("decodes").top,
            b.changed.top
        );

        let text = change_event_schema(&a);
        let schema = ParsedSchema::parse(&text).expect("schema");
        let bytes = encode(&schema, &header(ChangeType::Update), &b).expect("encodes");
        let back = schema.decode_to_json(&bytes).expect("decodes");
        let h = &back["ChangeEventHeader"];
        assert_eq!(h["changedFields"], json!(changed));
        assert_eq!(h["commitNumber"].as_i64(), Some(9_007_199_254_740_993));
        assert_eq!(h["sequenceNumber"], 1);
        // Unchanged fields, the system fields included, are null in an UPDATE.
        assert_eq!(back["CreatedDate"], Value::Null);
        assert_eq!(back["CreatedById"], Value::Null);
        assert_eq!(back["NumberOfEmployees"], Value::Null);
        assert_eq!(back["BillingAddress"]["Street"], Value::Null);
        assert_eq!(back["BillingAddress"]["City"], "Paris");
        let names = decoded_names(&text, h).expect("names");
        assert_eq!(
            names.changed,
            [
                "Name",
                "Description",
                "LastModifiedDate",
                "BillingAddress.City",
                "BillingAddress.PostalCode"
            ]
        );
        assert_eq!(names.nulled, ["Description"]);
        assert!(names.diff.is_empty());
    }

    /// Eight paragraphs of a long Description, about 1,500 characters.
    fn long_description() -> Vec<String> {
        (1..=8)
            .map(|i| {
                format!(
                    "Paragraph {i}. {}",
                    "Business apps move to the cloud. ".repeat(5)
                )
            })
            .collect()
    }

    #[test]
    fn an_update_of_a_long_description_sends_a_diff() {
        let a = account();
        let paragraphs = long_description();
        let mut edited = paragraphs.clone();
        edited[1] = edited[1].replace("apps", "applications");
        let (old, new) = (paragraphs.join("\n"), edited.join("\n"));
        assert!(new.chars().count() >= 1_000);
        let mut before = stored();
        before.insert("Description".into(), json!(old));
        let mut after = before.clone();
        after.insert("Description".into(), json!(new));
        after.insert("Name".into(), json!("Acme Corp"));
        let b = body(&a, ChangeType::Update, Some(&before), Some(&after));
        let (name, description) = (position(&a, "Name"), position(&a, "Description"));
        assert_eq!(b.changed.top, [name, description].into_iter().collect());
        assert_eq!(b.diff.top, [description].into_iter().collect());
        assert!(b.diff.nested.is_empty() && b.nulled.is_empty());
        let diff = b.values["Description"].as_str().expect("a string");
        assert_eq!(
            diff,
            format!(
                "--- \n+++ {}\n@@ -2,1 +2,1 @@\n-{}\n+{}",
                textdiff::sha256_hex(&new),
                paragraphs[1],
                edited[1]
            )
        );
        assert_eq!(b.values["Name"], "Acme Corp");

        // Through the Avro encoding and back, as a subscriber gets it.
        let text = change_event_schema(&a);
        let schema = ParsedSchema::parse(&text).expect("schema");
        let bytes = encode(&schema, &header(ChangeType::Update), &b).expect("encodes");
        let back = schema.decode_to_json(&bytes).expect("decodes");
        let h = &back["ChangeEventHeader"];
        assert_eq!(h["diffFields"], json!(bitmap::encode(&b.diff)));
        let names = decoded_names(&text, h).expect("names");
        assert_eq!(names.diff, ["Description"]);
        assert!(names.changed.contains(&"Description".to_owned()));
        let sent = back["Description"].as_str().expect("the diff");
        assert_eq!(textdiff::apply(&old, sent).as_deref(), Ok(new.as_str()));
    }

    #[test]
    fn long_text_goes_whole_when_no_diff_qualifies() {
        let a = account();
        let description = position(&a, "Description");
        let paragraphs = long_description();
        let old = paragraphs.join("\n");
        let update = |new: Value| {
            let mut before = stored();
            before.insert("Description".into(), json!(old));
            let mut after = before.clone();
            after.insert("Description".into(), new);
            body(&a, ChangeType::Update, Some(&before), Some(&after))
        };
        // Rewritten: every line changed.
        let rewritten: String = paragraphs.iter().map(|p| p.to_uppercase() + "\n").collect();
        let b = update(json!(rewritten.trim_end()));
        assert!(b.diff.is_empty() && b.changed.top.contains(&description));
        assert_eq!(b.values["Description"], json!(rewritten.trim_end()));
        // Cleared: changed and nulled, never diffed.
        let b = update(Value::Null);
        assert!(b.diff.is_empty() && b.nulled.top.contains(&description));
        // A short value.
        let b = update(json!("short"));
        assert!(b.diff.is_empty());
        assert_eq!(b.values["Description"], "short");
        // CREATE carries the whole value.
        let mut rec = stored();
        rec.insert("Description".into(), json!(old));
        let b = body(&a, ChangeType::Create, None, Some(&rec));
        assert!(b.diff.is_empty());
        assert_eq!(b.values["Description"], json!(old));
    }

    #[test]
    fn the_documented_fax_update_has_salesforces_bitmap() {
        // Salesforce's enriched-event example: only Fax and LastModifiedDate changed,
        // changedFields ["0x400080"].
        let a = account();
        let mut after = stored();
        after.insert("Fax".into(), json!("+1 415 555 0100"));
        after.insert(
            "LastModifiedDate".into(),
            json!("2026-12-05T01:05:00.000+0000"),
        );
        let b = body(&a, ChangeType::Update, Some(&stored()), Some(&after));
        assert_eq!(bitmap::encode(&b.changed), ["0x400080"]);
        assert!(bitmap::encode(&b.nulled).is_empty());
    }

    #[test]
    fn a_changed_custom_location_carries_all_its_components() {
        let mut a = account();
        a.fields.push(crate::standard::location("Site__c"));
        let pos = a.fields.len();
        let mut before = stored();
        before.insert("Site__Latitude__s".into(), json!(48.85));
        before.insert("Site__Longitude__s".into(), json!(2.35));
        let mut after = before.clone();
        after.insert("Site__Longitude__s".into(), json!(2.29));
        let b = body(&a, ChangeType::Update, Some(&before), Some(&after));
        assert_eq!(b.changed.nested[&pos], [1].into_iter().collect());
        assert_eq!(
            b.values["Site__c"],
            json!({"Latitude": 48.85, "Longitude": 2.29})
        );
    }

    #[test]
    fn a_nulled_component_is_changed_and_nulled_under_its_parent() {
        let a = account();
        let mut after = stored();
        after.insert("BillingStreet".into(), Value::Null);
        let b = body(&a, ChangeType::Update, Some(&stored()), Some(&after));
        assert_eq!(bitmap::encode(&b.changed), ["0x00", "4-0x01"]);
        assert_eq!(bitmap::encode(&b.nulled), ["0x00", "4-0x01"]);
        assert!(b.values.is_empty());
    }

    #[test]
    fn deletes_and_gaps_carry_no_values() {
        let a = account();
        let schema = ParsedSchema::parse(&change_event_schema(&a)).expect("schema");
        for c in [
            ChangeType::Delete,
            ChangeType::GapCreate,
            ChangeType::GapUpdate,
            ChangeType::GapDelete,
            ChangeType::GapUndelete,
            ChangeType::GapOverflow,
        ] {
            let b = body(&a, c, Some(&stored()), Some(&stored()));
            assert_eq!(b, ChangeBody::default(), "{c:?}");
            let mut h = header(c);
            if c == ChangeType::GapOverflow {
                h.record_ids.clear();
            }
            let back = schema
                .decode_to_json(&encode(&schema, &h, &b).expect("encodes"))
                .expect("decodes");
            assert_eq!(back["ChangeEventHeader"]["changeType"], c.symbol());
            assert_eq!(back["Name"], Value::Null);
        }
    }

    #[test]
    fn dates_and_times_become_numbers() {
        let catalog = ObjectCatalog::standard();
        let contact = catalog.get("Contact").expect("Contact");
        let after = record(
            json!({"LastName": "Doe", "FirstName": "Jo", "Birthdate": "1970-01-11", "DoNotCall": false}),
        );
        let b = body(contact, ChangeType::Create, None, Some(&after));
        assert_eq!(b.values["Birthdate"], json!(10));
        assert_eq!(b.values["DoNotCall"], json!(false));
        assert_eq!(
            b.values["Name"],
            json!({"FirstName": "Jo", "LastName": "Doe"})
        );
        let schema = ParsedSchema::parse(&change_event_schema(contact)).expect("schema");
        let mut h = header(ChangeType::Create);
        h.entity_name = "Contact".to_owned();
        let back = schema
            .decode_to_json(&encode(&schema, &h, &b).expect("encodes"))
            .expect("decodes");
        assert_eq!(back["Birthdate"], json!(10));
        assert_eq!(back["Name"]["LastName"], "Doe");
        assert_eq!(
            avro_value(FieldType::Time, Some(&json!("10:00:00.000Z"))),
            Some(json!(36_000_000))
        );
    }

    fn account_values() -> impl Strategy<Value = Record> {
        let names = prop::sample::subsequence(
            vec![
                "Name",
                "Phone",
                "BillingCity",
                "BillingStreet",
                "ShippingCountry",
                "NumberOfEmployees",
                "AnnualRevenue",
                "Description",
            ],
            0..8,
        );
        (names, any::<i32>(), any::<u8>()).prop_map(|(names, n, s)| {
            let mut r = Record::new();
            for name in names {
                let v = match name {
                    "NumberOfEmployees" => json!(n),
                    "AnnualRevenue" => json!(f64::from(n) / 4.0),
                    _ => json!(format!("v{s}")),
                };
                r.insert(name.to_owned(), v);
            }
            r
        })
    }

    proptest! {
        #[test]
        fn every_update_encodes_and_its_bitmaps_name_exactly_the_changed_fields(
            before in account_values(),
            after in account_values(),
        ) {
            let a = account();
            let b = body(&a, ChangeType::Update, Some(&before), Some(&after));
            let text = change_event_schema(&a);
            let schema = ParsedSchema::parse(&text).expect("schema");
            let bytes = encode(&schema, &header(ChangeType::Update), &b).expect("encodes");
            let back = schema.decode_to_json(&bytes).expect("decodes");
            let names = decoded_names(&text, &back["ChangeEventHeader"]).expect("names");
            let mut expected: Vec<String> = a
                .flat_fields()
                .into_iter()
                .filter(|f| before.get(&f.name) != after.get(&f.name))
                .map(|f| match f.component {
                    Some(j) => {
                        let parent = &a.fields[f.position - 1];
                        format!("{}.{}", parent.name, parent.components[j].name)
                    }
                    None => f.name,
                })
                .collect();
            let mut got = names.changed.clone();
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected);
            for n in &names.nulled {
                prop_assert!(names.changed.contains(n));
            }
        }
    }
}
