//! The fields a member's filter and enriched fields are checked against:
//! a platform event's, read from its Avro schema, and an object's change
//! event fields, from the object model.
//!
//! Owns: the mapping of field types to the filter language's kinds (what
//! Salesforce lets a filter use) and the enriched-field rules. Must not:
//! parse filters.

use serde_json::Value;

use eventbus_filter::{FieldKind, Fields};
use eventbus_objects::model::{FieldType, ObjectDef};

use super::error::ChannelError;

/// A platform event's top-level fields, from its schema JSON (the type of a
/// `["null", T]` union is `T`; the `doc` suffix `:DateTime` / `:Date` tells
/// datetimes and dates from plain numbers, as DX-derived schemas write).
pub struct EventFields {
    entity: String,
    fields: Vec<(String, FieldKind)>,
}

impl EventFields {
    /// The fields of the event `entity` whose schema is `schema_json`.
    pub fn new(entity: &str, schema_json: &str) -> Self {
        let schema: Value = serde_json::from_str(schema_json).unwrap_or(Value::Null);
        let fields = schema
            .get("fields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| {
                        let name = f.get("name")?.as_str()?.to_owned();
                        let doc = f.get("doc").and_then(Value::as_str).unwrap_or("");
                        let base = match f.get("type")? {
                            Value::Array(branches) => {
                                branches.iter().find(|b| *b != "null")?.clone()
                            }
                            other => other.clone(),
                        };
                        let kind = match base.as_str() {
                            Some("long" | "int") if doc.ends_with(":DateTime") => {
                                FieldKind::DateTime
                            }
                            Some("long" | "int") if doc.ends_with(":Date") => FieldKind::Date,
                            Some("string") => FieldKind::Text,
                            Some("double" | "float" | "int" | "long") => FieldKind::Number,
                            Some("boolean") => FieldKind::Boolean,
                            _ => FieldKind::Unsupported("a record, array, map, enum or bytes"),
                        };
                        Some((name, kind))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            entity: entity.to_owned(),
            fields,
        }
    }
}

impl Fields for EventFields {
    fn kind(&self, path: &str) -> Option<FieldKind> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(path))
            .map(|(_, k)| *k)
    }

    fn entity_name(&self) -> Option<&str> {
        Some(&self.entity)
    }
}

/// An object's change event fields: top-level simple fields, and the
/// components of compound fields as `Parent.Component`
/// (`BillingAddress.City`, `Name.LastName`).
pub struct ObjectFields {
    entity: String,
    obj: ObjectDef,
}

fn kind_of(ty: FieldType) -> FieldKind {
    match ty {
        FieldType::Id
        | FieldType::Reference
        | FieldType::Text
        | FieldType::TextArea
        | FieldType::Picklist
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => FieldKind::Text,
        FieldType::Double | FieldType::Currency | FieldType::Percent | FieldType::Int => {
            FieldKind::Number
        }
        FieldType::Boolean => FieldKind::Boolean,
        FieldType::Date => FieldKind::Date,
        FieldType::DateTime => FieldKind::DateTime,
        FieldType::Time => FieldKind::Time,
        FieldType::LongTextArea => FieldKind::Unsupported("Long Text Area"),
        FieldType::MultiPicklist => FieldKind::Unsupported("Multi-Select Picklist"),
        FieldType::Address | FieldType::Name | FieldType::Location => FieldKind::Unsupported(
            "a compound field (filter on a component, such as BillingAddress.City)",
        ),
    }
}

impl ObjectFields {
    /// The fields of `obj`'s change events.
    pub fn new(obj: &ObjectDef) -> Self {
        Self {
            entity: obj.change_event_name(),
            obj: obj.clone(),
        }
    }

    /// Checks an enriched field: a simple (not compound) field of the
    /// object; long text and compound fields are refused.
    ///
    /// # Errors
    /// [`ChannelError::Invalid`] naming the field and why.
    pub fn check_enriched(&self, name: &str) -> Result<(), ChannelError> {
        let bad = |why: &str| ChannelError::Invalid {
            code: "FIELD_INTEGRITY_EXCEPTION",
            message: format!("enrichedFields: {name} {why}"),
        };
        let Some((_, f)) = self.obj.field(name.trim()) else {
            return Err(bad(&format!("is not a field of {}", self.entity)));
        };
        if f.is_compound() {
            return Err(bad(
                "is a compound field; compound fields cannot be enriched (enrich a simple field)",
            ));
        }
        if matches!(f.ty, FieldType::LongTextArea) {
            return Err(bad("is a long text field, which cannot be enriched"));
        }
        Ok(())
    }
}

impl Fields for ObjectFields {
    fn kind(&self, path: &str) -> Option<FieldKind> {
        match path.split_once('.') {
            None => self.obj.field(path).map(|(_, f)| kind_of(f.ty)),
            Some((parent, part)) => {
                let (_, f) = self.obj.field(parent)?;
                let c = f
                    .components
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(part))?;
                Some(kind_of(c.ty))
            }
        }
    }

    fn entity_name(&self) -> Option<&str> {
        Some(&self.entity)
    }
}
