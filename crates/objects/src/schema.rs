//! The Avro schema of an object's change event, as Salesforce derives it.
//!
//! Owns: [`change_event_schema`], [`CHANGE_TYPES`] (the `ChangeType` enum's symbols) and
//! the Avro type of each [`FieldType`] ([`avro_type`]).
//! Must not: parse or encode Avro (the result is JSON text for
//! `eventbus_schema::ParsedSchema::parse`), or know records.
//!
//! Shape: record `{Entity}ChangeEvent` in namespace `com.sforce.eventbus`; field 0
//! `ChangeEventHeader`, a plain record (not a union) with the twelve header fields in
//! the order the Pub/Sub API delivers them (CDC_SPEC section 2); then every body field of
//! the object in [`ObjectDef::fields`] order as `["null", T]` with `"default": null`.
//! Compound fields are nested records whose components are nullable too: `Address`
//! (defined at its first use, referenced by name after that), `Switchable_PersonName`
//! for a person `Name`, `Location` for a geolocation.
//!
//! Types: text, ids, picklists (multi-select as `a;b`), email, phone, URL → `string`;
//! number, currency, percent, latitude/longitude → `double`; whole numbers → `int`;
//! checkbox → `boolean`; datetime → `long` epoch milliseconds; date → `int` days since
//! 1970-01-01 (as eventbus's platform event schemas do; Salesforce's docs only say "epoch
//! time", so this is unconfirmed); time → `int` milliseconds after midnight (unconfirmed).
//! Each field has a `doc` of the form `Data:<Type>` (`CreatedDate:DateTime` and
//! `CreatedBy:EntityId` for the creation fields, as in platform event schemas), which the
//! REST layer reads to tell dates from numbers; Salesforce's exact doc strings for change
//! events are unconfirmed.

use serde_json::{Value, json};

use crate::model::{FieldDef, FieldType, ObjectDef};

/// The namespace of every change event schema.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// The symbols of the `ChangeType` enum, in order (Salesforce's Apex docs also name a
/// reserved `SNAPSHOT`, which is not a symbol here).
pub const CHANGE_TYPES: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// The Avro type (without the null branch) of a simple field type; `None` for compounds.
#[must_use]
pub fn avro_type(ty: FieldType) -> Option<&'static str> {
    Some(match ty {
        FieldType::Id
        | FieldType::Reference
        | FieldType::Text
        | FieldType::TextArea
        | FieldType::LongTextArea
        | FieldType::Picklist
        | FieldType::MultiPicklist
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => "string",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Int | FieldType::Date | FieldType::Time => "int",
        FieldType::Boolean => "boolean",
        FieldType::DateTime => "long",
        FieldType::Address | FieldType::Name | FieldType::Location => return None,
    })
}

/// The `doc` type word of a field type.
fn doc_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Id | FieldType::Reference => "EntityId",
        FieldType::Text | FieldType::TextArea | FieldType::Phone | FieldType::Email => "Text",
        FieldType::LongTextArea => "MultiLineText",
        FieldType::Picklist => "DynamicEnum",
        FieldType::MultiPicklist => "MultiEnum",
        FieldType::Url => "Url",
        FieldType::Double => "Double",
        FieldType::Currency => "Currency",
        FieldType::Percent => "Percent",
        FieldType::Int => "Int",
        FieldType::Boolean => "Boolean",
        FieldType::DateTime => "DateTime",
        FieldType::Date => "Date",
        FieldType::Time => "Time",
        FieldType::Address => "Address",
        FieldType::Name => "PersonName",
        FieldType::Location => "Location",
    }
}

/// The name of the nested record of a compound type.
fn record_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Name => "Switchable_PersonName",
        FieldType::Location => "Location",
        _ => "Address",
    }
}

fn header() -> Value {
    let strings = json!({"type": "array", "items": "string"});
    json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": NAMESPACE,
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {"name": "changeType", "type": {
                "type": "enum", "name": "ChangeType", "namespace": NAMESPACE,
                "symbols": CHANGE_TYPES,
            }},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    })
}

fn doc(f: &FieldDef) -> String {
    match f.name.as_str() {
        "CreatedDate" => "CreatedDate:DateTime".to_owned(),
        "CreatedById" => "CreatedBy:EntityId".to_owned(),
        _ => format!("Data:{}", doc_type(f.ty)),
    }
}

/// The Avro schema JSON of `obj`'s change event (see the module docs for its shape). The
/// text is deterministic, so equal objects give equal schema ids.
#[must_use]
pub fn change_event_schema(obj: &ObjectDef) -> String {
    let mut fields = vec![json!({"name": "ChangeEventHeader", "type": header()})];
    let mut defined: Vec<&'static str> = Vec::new();
    for f in &obj.fields {
        let ty = if f.is_compound() {
            let name = record_name(f.ty);
            if defined.contains(&name) {
                json!(["null", name])
            } else {
                defined.push(name);
                let parts: Vec<Value> = f
                    .components
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "type": ["null", avro_type(c.ty).unwrap_or("string")],
                            "doc": format!("Data:{}", doc_type(c.ty)),
                            "default": null,
                        })
                    })
                    .collect();
                json!(["null", {
                    "type": "record",
                    "name": name,
                    "namespace": NAMESPACE,
                    "fields": parts,
                }])
            }
        } else {
            json!(["null", avro_type(f.ty).unwrap_or("string")])
        };
        fields.push(json!({"name": f.name, "type": ty, "doc": doc(f), "default": null}));
    }
    json!({
        "type": "record",
        "name": obj.change_event_name(),
        "namespace": NAMESPACE,
        "fields": fields,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use eventbus_schema::ParsedSchema;

    use super::*;
    use crate::model::ObjectCatalog;
    use crate::standard::location;

    #[test]
    fn every_standard_objects_schema_parses() {
        for obj in ObjectCatalog::standard().objects() {
            let text = change_event_schema(obj);
            let parsed =
                ParsedSchema::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", obj.name));
            assert_eq!(
                parsed.record_name(),
                format!("com.sforce.eventbus.{}", obj.change_event_name())
            );
            let names = parsed.field_names();
            assert_eq!(names.len(), obj.fields.len() + 1, "{}", obj.name);
            assert_eq!(names[0], "ChangeEventHeader");
            // Deterministic text, so a deterministic id.
            let again = ParsedSchema::parse(&change_event_schema(obj)).expect("parses");
            assert_eq!(again.id(), parsed.id());
        }
    }

    #[test]
    fn the_account_schema_has_salesforces_shape() {
        let catalog = ObjectCatalog::standard();
        let account = catalog.get("Account").expect("Account");
        let v: Value = serde_json::from_str(&change_event_schema(account)).expect("JSON");
        assert_eq!(v["name"], "AccountChangeEvent");
        assert_eq!(v["namespace"], "com.sforce.eventbus");
        let header = &v["fields"][0];
        assert_eq!(header["type"]["type"], "record");
        let header_fields: Vec<_> = header["type"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            header_fields,
            [
                "entityName",
                "recordIds",
                "changeType",
                "changeOrigin",
                "transactionKey",
                "sequenceNumber",
                "commitTimestamp",
                "commitNumber",
                "commitUser",
                "nulledFields",
                "diffFields",
                "changedFields"
            ]
        );
        assert_eq!(
            header["type"]["fields"][2]["type"]["symbols"][8],
            "GAP_OVERFLOW"
        );
        assert_eq!(
            v["fields"][1],
            json!({"name": "Name", "type": ["null", "string"], "doc": "Data:Text", "default": null})
        );
        // BillingAddress defines Address; ShippingAddress refers to it.
        assert_eq!(v["fields"][4]["name"], "BillingAddress");
        assert_eq!(v["fields"][4]["type"][1]["name"], "Address");
        let parts: Vec<_> = v["fields"][4]["type"][1]["fields"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|f| f["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            parts,
            [
                "Street",
                "City",
                "State",
                "PostalCode",
                "Country",
                "Latitude",
                "Longitude",
                "GeocodeAccuracy"
            ]
        );
        assert_eq!(
            v["fields"][4]["type"][1]["fields"][5]["type"],
            json!(["null", "double"])
        );
        assert_eq!(v["fields"][5]["type"], json!(["null", "Address"]));
        let created = v["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == "CreatedDate")
            .expect("CreatedDate");
        assert_eq!(created["type"], json!(["null", "long"]));
        assert_eq!(created["doc"], "CreatedDate:DateTime");
    }

    #[test]
    fn names_and_locations_are_records_and_dates_are_days() {
        let catalog = ObjectCatalog::standard();
        let mut contact = catalog.get("Contact").expect("Contact").clone();
        contact.fields.push(location("Home__c"));
        contact.fields.push(location("Work__c"));
        let text = change_event_schema(&contact);
        ParsedSchema::parse(&text).expect("parses");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        let field = |name: &str| {
            v["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .find(|f| f["name"] == name)
                .cloned()
                .expect(name)
        };
        assert_eq!(field("Name")["type"][1]["name"], "Switchable_PersonName");
        assert_eq!(field("Name")["type"][1]["fields"][0]["name"], "Salutation");
        assert_eq!(field("Birthdate")["type"], json!(["null", "int"]));
        assert_eq!(field("Birthdate")["doc"], "Data:Date");
        assert_eq!(field("Home__c")["type"][1]["name"], "Location");
        assert_eq!(field("Work__c")["type"], json!(["null", "Location"]));
    }
}
