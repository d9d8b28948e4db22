//! A platform event's fields as the REST API shows them, and the JSON a
//! REST client sends turned into the JSON the schema encoder takes.
//!
//! Owns: reading the field list out of a topic's Avro schema text (plain
//! JSON: no Avro library here), Salesforce's field formats (datetimes as
//! `2024-05-01T17:30:00.000+0000`, dates as `2024-05-01`, numbers, checkbox
//! booleans, `null`), case-insensitive field names, and the fields the
//! server fills (`CreatedDate`, `CreatedById`). Must not: encode Avro (the
//! schema crate does) or publish.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::reply::RestError;

/// The fields Salesforce sets on every event; a publisher may not.
pub(super) const SYSTEM_FIELDS: [&str; 4] = ["ReplayId", "CreatedDate", "CreatedById", "EventUuid"];

/// What a field holds, as the REST API sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Double,
    Int,
    Long,
    Boolean,
    /// A `long` of epoch milliseconds (`doc` ends `:DateTime`).
    DateTime,
    /// An `int` of days since the epoch, or a `long` of epoch milliseconds
    /// at midnight UTC (`doc` ends `:Date`).
    Date {
        days: bool,
    },
    /// Anything else (records, arrays, maps, enums, bytes): taken as the
    /// schema encoder's JSON.
    Other,
}

/// One field of an event's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Field {
    pub name: String,
    pub kind: Kind,
    pub nillable: bool,
    /// Has a schema default (or is nillable): may be left out.
    pub optional: bool,
}

/// The record name and fields of an event schema's JSON text.
pub(super) fn of_schema(schema_json: &str) -> Vec<Field> {
    let schema: Value = serde_json::from_str(schema_json).unwrap_or(Value::Null);
    let Some(fields) = schema.get("fields").and_then(Value::as_array) else {
        return Vec::new();
    };
    fields
        .iter()
        .filter_map(|f| {
            let name = f.get("name")?.as_str()?.to_owned();
            let doc = f.get("doc").and_then(Value::as_str).unwrap_or("");
            let (base, nillable) = match f.get("type")? {
                Value::Array(branches) if branches.len() == 2 && branches[0] == "null" => {
                    (&branches[1], true)
                }
                other => (other, false),
            };
            let kind = match base.as_str().unwrap_or("") {
                "long" if doc.ends_with(":DateTime") => Kind::DateTime,
                "long" if doc.ends_with(":Date") => Kind::Date { days: false },
                "int" if doc.ends_with(":Date") => Kind::Date { days: true },
                "string" => Kind::Text,
                "double" | "float" => Kind::Double,
                "int" => Kind::Int,
                "long" => Kind::Long,
                "boolean" => Kind::Boolean,
                _ => Kind::Other,
            };
            Some(Field {
                name,
                kind,
                nillable,
                optional: nillable || f.get("default").is_some(),
            })
        })
        .collect()
}

/// The REST type of a field kind, as describe names it.
pub(super) fn soap_type(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Text | Kind::Other => ("string", "xsd:string"),
        Kind::Double => ("double", "xsd:double"),
        Kind::Int => ("int", "xsd:int"),
        Kind::Long => ("long", "xsd:long"),
        Kind::Boolean => ("boolean", "xsd:boolean"),
        Kind::DateTime => ("datetime", "xsd:dateTime"),
        Kind::Date { .. } => ("date", "xsd:date"),
    }
}

/// Turns the record a client sent (Salesforce's JSON) into the JSON the
/// schema encoder takes: field names as the schema spells them, datetimes
/// as epoch milliseconds, dates as days or milliseconds. `attributes`
/// (composite records carry it) is skipped.
///
/// # Errors
/// `INVALID_FIELD` for a field the event does not have,
/// `INVALID_FIELD_FOR_INSERT_UPDATE` for one the server fills, and
/// `JSON_PARSER_ERROR` for a value of the wrong form.
pub(super) fn to_event_json(
    event: &str,
    fields: &[Field],
    record: &Map<String, Value>,
) -> Result<Value, RestError> {
    let mut out = Map::new();
    let mut system = Vec::new();
    for (key, value) in record {
        if key == "attributes" {
            continue;
        }
        if let Some(s) = SYSTEM_FIELDS.iter().find(|s| s.eq_ignore_ascii_case(key)) {
            system.push((*s).to_owned());
            continue;
        }
        let Some(field) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(key)) else {
            return Err(RestError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {event}"),
            )
            .with_fields(vec![key.clone()]));
        };
        out.insert(field.name.clone(), convert(field, value)?);
    }
    if !system.is_empty() {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                system.join(", ")
            ),
        )
        .with_fields(system));
    }
    Ok(Value::Object(out))
}

fn convert(field: &Field, value: &Value) -> Result<Value, RestError> {
    let bad = |what: &str| {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {what} from {} value {} for field {}",
                token(value),
                short(value),
                field.name
            ),
        )
        .with_fields(vec![field.name.clone()])
    };
    if value.is_null() {
        // A checkbox is never null: Salesforce stores false.
        return Ok(match field.kind {
            Kind::Boolean if !field.nillable => Value::Bool(false),
            _ => Value::Null,
        });
    }
    let text = value.as_str().map(str::trim);
    Ok(match field.kind {
        Kind::Text => match value {
            Value::String(_) => value.clone(),
            // Salesforce writes a number or checkbox given for a text field
            // as its text.
            Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
            _ => return Err(bad("string")),
        },
        Kind::Double | Kind::Int | Kind::Long => {
            let number = match (value, text) {
                (Value::Number(n), _) => n.clone(),
                // Salesforce reads numbers given as strings too.
                (_, Some(t)) => serde_json::from_str::<serde_json::Number>(t)
                    .map_err(|_| bad(number_name(field.kind)))?,
                _ => return Err(bad(number_name(field.kind))),
            };
            let whole = matches!(field.kind, Kind::Int | Kind::Long);
            if whole && number.as_i64().is_none() {
                return Err(bad(number_name(field.kind)));
            }
            Value::Number(number)
        }
        Kind::Boolean => match (value, text) {
            (Value::Bool(b), _) => Value::Bool(*b),
            (_, Some(t)) if t.eq_ignore_ascii_case("true") => Value::Bool(true),
            (_, Some(t)) if t.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        Kind::DateTime => {
            let ms = text
                .and_then(parse_datetime)
                .ok_or_else(|| bad("datetime"))?;
            Value::from(ms)
        }
        Kind::Date { days } => {
            let d = text.and_then(parse_date).ok_or_else(|| bad("date"))?;
            if days {
                Value::from(d)
            } else {
                Value::from(d * MS_PER_DAY)
            }
        }
        Kind::Other => value.clone(),
    })
}

fn number_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "int",
        Kind::Long => "long",
        _ => "double",
    }
}

/// The JSON token name Salesforce's parser messages use.
fn token(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// A value for a message, cut to 80 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

// Salesforce's date and datetime forms are read as the records of Change
// Data Capture read them.
pub(super) use crate::objects::record::{MS_PER_DAY, parse_date, parse_datetime};

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order_Event__e","fields":[
        {"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},
        {"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},
        {"name":"OrderNumber__c","type":["null","string"],"default":null,"doc":"Data:Text"},
        {"name":"Amount__c","type":["null","double"],"default":null},
        {"name":"Urgent__c","type":"boolean","default":false},
        {"name":"Due__c","type":["null","long"],"default":null,"doc":"Data:DateTime"},
        {"name":"Ship__c","type":["null","int"],"default":null,"doc":"Data:Date"}]}"#;

    fn record(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn reads_the_fields_of_a_platform_event_schema() {
        let fields = of_schema(SCHEMA);
        let kinds: Vec<_> = fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.nillable))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("CreatedDate", Kind::DateTime, false),
                ("CreatedById", Kind::Text, false),
                ("OrderNumber__c", Kind::Text, true),
                ("Amount__c", Kind::Double, true),
                ("Urgent__c", Kind::Boolean, false),
                ("Due__c", Kind::DateTime, true),
                ("Ship__c", Kind::Date { days: true }, true),
            ]
        );
        assert!(fields[4].optional && !fields[0].optional);
    }

    #[test]
    fn salesforce_field_formats_become_the_encoders_json() {
        let fields = of_schema(SCHEMA);
        let got = to_event_json(
            "Order_Event__e",
            &fields,
            &record(json!({
                "attributes": {"type": "Order_Event__e"},
                "ordernumber__c": 42,
                "Amount__c": "12.50",
                "Urgent__c": "TRUE",
                "Due__c": "2024-05-01T17:30:00.000+0000",
                "Ship__c": "1970-01-02",
            })),
        )
        .expect("converts");
        assert_eq!(
            got,
            json!({
                "OrderNumber__c": "42",
                "Amount__c": 12.50,
                "Urgent__c": true,
                "Due__c": 1_714_584_600_000_i64,
                "Ship__c": 1,
            })
        );
        let nulls = to_event_json(
            "Order_Event__e",
            &fields,
            &record(json!({"Urgent__c": null, "Amount__c": null})),
        )
        .expect("nulls");
        assert_eq!(nulls, json!({"Urgent__c": false, "Amount__c": null}));
    }

    #[test]
    fn refuses_unknown_system_and_malformed_fields() {
        let fields = of_schema(SCHEMA);
        let err =
            |v: Value| to_event_json("Order_Event__e", &fields, &record(v)).expect_err("refused");
        let e = err(json!({"Nope__c": 1}));
        assert_eq!(e.code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "No such column 'Nope__c' on sobject of type Order_Event__e"
        );
        let e = err(json!({"CreatedDate": "2024-05-01T00:00:00Z", "createdbyid": "005"}));
        assert_eq!(e.code, "INVALID_FIELD_FOR_INSERT_UPDATE");
        assert_eq!(e.fields, vec!["CreatedDate", "CreatedById"]);
        for bad in [
            json!({"Amount__c": "many"}),
            json!({"Amount__c": [1]}),
            json!({"Urgent__c": 1}),
            json!({"Due__c": "yesterday"}),
            json!({"Due__c": 1714584600000_i64}),
            json!({"Ship__c": "2024-02-30"}),
            json!({"OrderNumber__c": {"a": 1}}),
        ] {
            assert_eq!(err(bad.clone()).code, "JSON_PARSER_ERROR", "{bad}");
        }
    }

    #[test]
    fn datetimes_in_every_form_salesforce_reads() {
        let at = 1_714_584_600_000_i64; // 2024-05-01T17:30:00Z
        for s in [
            "2024-05-01T17:30:00.000+0000",
            "2024-05-01T17:30:00Z",
            "2024-05-01T17:30:00.000Z",
            "2024-05-01T17:30Z",
            "2024-05-01T17:30:00",
            "2024-05-01T19:30:00+02:00",
            "2024-05-01T12:30:00.0000-0500",
        ] {
            assert_eq!(parse_datetime(s), Some(at), "{s}");
        }
        assert_eq!(
            parse_datetime("2024-05-01T17:30:00.123456Z"),
            Some(at + 123)
        );
        for bad in [
            "2024-05-01",
            "2024-05-01T25:00:00Z",
            "2024-05-01T17:30:00+2",
            "2024-13-01T00:00:00Z",
            "2024-05-01T17:30:00.Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_datetime("1969-12-31T00:00:00Z"), Some(-86_400_000));
    }
}
