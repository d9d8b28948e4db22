//! The sObject model: field types, fields (simple and compound), objects and the catalog
//! of an org's objects.
//!
//! Owns: [`FieldType`], [`Component`], [`FieldDef`], [`ObjectDef`] (change event name and
//! topic, flat REST field lookup), [`FlatField`] and [`ObjectCatalog`].
//! Must not: know the standard objects' contents (that is [`crate::standard`], which also
//! provides [`ObjectCatalog::standard`]), read files, or build schemas.
//!
//! Field order is the order of the change event body: body field `i` of
//! [`ObjectDef::fields`] sits at top-level position `i + 1` of the change event schema,
//! because position 0 is the `ChangeEventHeader`.

use std::collections::BTreeMap;

/// The type of a field as Salesforce's describe names it (`Int` for a whole number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A record id (the object's own `Id`).
    Id,
    /// A lookup or master-detail: the id of another record.
    Reference,
    /// Text up to `length` characters (at most 255).
    Text,
    /// Text area up to 255 characters.
    TextArea,
    /// Long or rich text area (up to 131,072 characters).
    LongTextArea,
    /// One value of a picklist.
    Picklist,
    /// Several picklist values joined by `;`.
    MultiPicklist,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// A number with a fraction.
    Double,
    /// An amount of money.
    Currency,
    /// A percentage (`12.5` means 12.5 %).
    Percent,
    /// A whole number (32 bits).
    Int,
    /// A checkbox: never null in a stored record.
    Boolean,
    /// A date and time (REST: `2026-12-05T01:02:03.000+0000`).
    DateTime,
    /// A date (REST: `2026-12-05`).
    Date,
    /// A time of day (REST: `10:00:00.000Z`).
    Time,
    /// A compound address (Street, City, ...).
    Address,
    /// A compound person name (Salutation, FirstName, LastName, ...).
    Name,
    /// A compound geolocation (Latitude, Longitude).
    Location,
}

impl FieldType {
    /// Whether the type is a compound of components.
    #[must_use]
    pub fn is_compound(self) -> bool {
        matches!(
            self,
            FieldType::Address | FieldType::Name | FieldType::Location
        )
    }

    /// Whether values of this type are text in a record.
    #[must_use]
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::Text
                | FieldType::TextArea
                | FieldType::LongTextArea
                | FieldType::Picklist
                | FieldType::MultiPicklist
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
        )
    }
}

/// One component of a compound field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// Its short name in the change event's nested record: `Street`.
    pub name: String,
    /// The flat REST field that holds it: `BillingStreet`.
    pub field: String,
    /// Its type (never compound).
    pub ty: FieldType,
}

/// One top-level field of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The API name: `Name`, `BillingAddress`, `Tenure__c`.
    pub name: String,
    /// Its type.
    pub ty: FieldType,
    /// The components, in nested-record order; non-empty exactly when the field is compound.
    pub components: Vec<Component>,
    /// Required on create.
    pub required: bool,
    /// Whether a client may set it (false for system fields and auto numbers).
    pub updateable: bool,
    /// A custom field (`__c`).
    pub custom: bool,
    /// The maximum length of a text value, in characters.
    pub length: Option<u32>,
    /// A checkbox checked on create when the record leaves it out (DX
    /// `<defaultValue>true</defaultValue>`); other checkboxes start false.
    pub default_on: bool,
}

impl FieldDef {
    /// A simple field.
    #[must_use]
    pub fn simple(name: &str, ty: FieldType) -> Self {
        let length = match ty {
            FieldType::Id | FieldType::Reference => Some(18),
            FieldType::Text | FieldType::TextArea | FieldType::Picklist => Some(255),
            FieldType::LongTextArea => Some(32_000),
            FieldType::MultiPicklist => Some(4_099),
            FieldType::Email => Some(80),
            FieldType::Phone => Some(40),
            FieldType::Url => Some(255),
            _ => None,
        };
        FieldDef {
            name: name.to_owned(),
            ty,
            components: Vec::new(),
            required: false,
            updateable: true,
            custom: name.ends_with("__c"),
            length,
            default_on: false,
        }
    }

    /// The same field, required on create.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The same field, not settable by clients.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.updateable = false;
        self
    }

    /// The same field with another maximum length.
    #[must_use]
    pub fn length(mut self, length: u32) -> Self {
        self.length = Some(length);
        self
    }

    /// Whether the field is compound.
    #[must_use]
    pub fn is_compound(&self) -> bool {
        !self.components.is_empty()
    }
}

/// One object (standard or custom) and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectDef {
    /// The API name: `Account`, `Employee__c`, `ns__Emp__c`.
    pub name: String,
    /// The label.
    pub label: String,
    /// The three-character id prefix: `001`.
    pub key_prefix: String,
    /// The fields in change event body order.
    pub fields: Vec<FieldDef>,
    /// A custom object.
    pub custom: bool,
}

/// A REST field name resolved: a simple field or one component of a compound field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatField {
    /// The REST name in its canonical case: `BillingCity`.
    pub name: String,
    /// The value's type (a component's own type for a component).
    pub ty: FieldType,
    /// Top-level position in the change event schema (1-based: 0 is the header).
    pub position: usize,
    /// Index of the component in the compound field, for a component.
    pub component: Option<usize>,
    /// Whether clients may set it.
    pub updateable: bool,
    /// Required on create.
    pub required: bool,
    /// Maximum text length.
    pub length: Option<u32>,
}

impl ObjectDef {
    /// The change event's entity name: `AccountChangeEvent`, and for a custom object the
    /// name without its final `c`: `Employee__c` → `Employee__ChangeEvent`.
    #[must_use]
    pub fn change_event_name(&self) -> String {
        match self.name.strip_suffix("__c") {
            Some(base) => format!("{base}__ChangeEvent"),
            None => format!("{}ChangeEvent", self.name),
        }
    }

    /// The per-entity topic: `/data/AccountChangeEvent`.
    #[must_use]
    pub fn change_event_topic(&self) -> String {
        format!("/data/{}", self.change_event_name())
    }

    /// The top-level field `name` (case-insensitive) and its 0-based index in `fields`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name.eq_ignore_ascii_case(name))
    }

    /// Looks up a REST field name, case-insensitively: a simple field, a compound parent
    /// (`BillingAddress`, which clients may read but not set) or a component of a compound
    /// (`BillingCity` → component `City` of `BillingAddress`).
    #[must_use]
    pub fn flat_field(&self, name: &str) -> Option<FlatField> {
        for (i, f) in self.fields.iter().enumerate() {
            if f.name.eq_ignore_ascii_case(name) {
                return Some(FlatField {
                    name: f.name.clone(),
                    ty: f.ty,
                    position: i + 1,
                    component: None,
                    // A compound parent is never set directly: its components are.
                    updateable: f.updateable && !f.is_compound(),
                    required: f.required,
                    length: f.length,
                });
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            for (j, c) in f.components.iter().enumerate() {
                if c.field.eq_ignore_ascii_case(name) {
                    return Some(FlatField {
                        name: c.field.clone(),
                        ty: c.ty,
                        position: i + 1,
                        component: Some(j),
                        updateable: f.updateable,
                        required: f.required && component_required(f, j),
                        length: component_length(&c.name, c.ty),
                    });
                }
            }
        }
        None
    }

    /// Every settable or readable flat REST field, in body order (components in place of
    /// their compound parent).
    #[must_use]
    pub fn flat_fields(&self) -> Vec<FlatField> {
        let mut out = Vec::new();
        for f in &self.fields {
            if f.is_compound() {
                for c in &f.components {
                    out.extend(self.flat_field(&c.field));
                }
            } else {
                out.extend(self.flat_field(&f.name));
            }
        }
        out
    }

    /// Top-level field names with their component names, position order without the
    /// header: the input of [`crate::bitmap::names`] after prepending the header.
    #[must_use]
    pub fn bitmap_fields(&self) -> Vec<(String, Vec<String>)> {
        let mut out = vec![("ChangeEventHeader".to_owned(), Vec::new())];
        out.extend(self.fields.iter().map(|f| {
            (
                f.name.clone(),
                f.components.iter().map(|c| c.name.clone()).collect(),
            )
        }));
        out
    }
}

/// Whether component `j` of the required compound `f` is itself required: a required
/// `Name` needs its `LastName`; other compounds need none of their parts.
fn component_required(f: &FieldDef, j: usize) -> bool {
    f.ty == FieldType::Name && f.components.get(j).is_some_and(|c| c.name == "LastName")
}

/// The maximum length of a component's text (Salesforce's lengths for the address and
/// name parts; other text parts 255).
fn component_length(name: &str, ty: FieldType) -> Option<u32> {
    if !ty.is_text() {
        return None;
    }
    Some(match name {
        "City" | "FirstName" | "MiddleName" | "Suffix" | "Salutation" | "GeocodeAccuracy" => 40,
        "State" | "Country" | "LastName" => 80,
        "PostalCode" => 20,
        _ => 255,
    })
}

/// The objects of an org, by API name.
#[derive(Clone, Debug, Default)]
pub struct ObjectCatalog {
    /// Lower-cased API name → object.
    by_name: BTreeMap<String, ObjectDef>,
}

impl ObjectCatalog {
    /// A catalog with no objects (see [`ObjectCatalog::standard`] for the built-in ones).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The object `name` (case-insensitive API name).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ObjectDef> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// The object whose change event is `entity` (`AccountChangeEvent`,
    /// `Employee__ChangeEvent`; case-insensitive).
    #[must_use]
    pub fn by_change_event(&self, entity: &str) -> Option<&ObjectDef> {
        let lower = entity.to_ascii_lowercase();
        let base = lower.strip_suffix("changeevent")?;
        let name = match base.strip_suffix("__") {
            Some(custom) => format!("{custom}__c"),
            None => base.to_owned(),
        };
        self.by_name.get(&name)
    }

    /// The object whose ids start with `prefix` (case-sensitive, as ids are).
    #[must_use]
    pub fn by_key_prefix(&self, prefix: &str) -> Option<&ObjectDef> {
        self.by_name.values().find(|o| o.key_prefix == prefix)
    }

    /// Every object, in API name order (case-insensitive).
    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.by_name.values()
    }

    /// Adds `obj`, replacing any object of the same name (case-insensitive).
    pub fn insert(&mut self, obj: ObjectDef) {
        self.by_name.insert(obj.name.to_ascii_lowercase(), obj);
    }

    /// The number of objects.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no objects.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(prefix: &str) -> FieldDef {
        FieldDef {
            components: ["Street", "City"]
                .iter()
                .map(|c| Component {
                    name: (*c).to_owned(),
                    field: format!("{prefix}{c}"),
                    ty: FieldType::Text,
                })
                .collect(),
            ..FieldDef::simple(&format!("{prefix}Address"), FieldType::Address)
        }
    }

    fn object(name: &str) -> ObjectDef {
        ObjectDef {
            name: name.to_owned(),
            label: name.to_owned(),
            key_prefix: "a00".to_owned(),
            fields: vec![
                FieldDef::simple("Name", FieldType::Text).required(),
                address("Billing"),
                FieldDef::simple("CreatedDate", FieldType::DateTime).read_only(),
            ],
            custom: name.ends_with("__c"),
        }
    }

    #[test]
    fn change_event_names_and_topics() {
        assert_eq!(object("Account").change_event_name(), "AccountChangeEvent");
        assert_eq!(
            object("Employee__c").change_event_topic(),
            "/data/Employee__ChangeEvent"
        );
        assert_eq!(
            object("ns__Emp__c").change_event_name(),
            "ns__Emp__ChangeEvent"
        );
    }

    #[test]
    fn flat_fields_resolve_simple_fields_and_components() {
        let o = object("Account");
        let name = o.flat_field("name").expect("Name");
        assert_eq!((name.name.as_str(), name.position), ("Name", 1));
        assert!(name.required && name.updateable && name.component.is_none());
        let city = o.flat_field("BILLINGCITY").expect("BillingCity");
        assert_eq!(city.name, "BillingCity");
        assert_eq!((city.position, city.component), (2, Some(1)));
        let parent = o.flat_field("billingaddress").expect("parent");
        assert!(!parent.updateable);
        assert!(!o.flat_field("CreatedDate").expect("system").updateable);
        assert_eq!(o.flat_field("Nope"), None);
        let flat: Vec<_> = o.flat_fields().into_iter().map(|f| f.name).collect();
        assert_eq!(
            flat,
            ["Name", "BillingStreet", "BillingCity", "CreatedDate"]
        );
    }

    #[test]
    fn the_catalog_finds_objects_by_name_change_event_and_prefix() {
        let mut c = ObjectCatalog::empty();
        c.insert(object("Account"));
        c.insert(object("Employee__c"));
        assert_eq!(c.get("ACCOUNT").map(|o| o.name.as_str()), Some("Account"));
        assert_eq!(
            c.by_change_event("employee__changeevent")
                .map(|o| o.name.as_str()),
            Some("Employee__c")
        );
        assert_eq!(
            c.by_change_event("AccountChangeEvent")
                .map(|o| o.name.as_str()),
            Some("Account")
        );
        assert!(c.by_change_event("Account").is_none());
        assert!(c.by_key_prefix("a00").is_some());
        let mut renamed = object("account");
        renamed.label = "Replaced".to_owned();
        c.insert(renamed);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("Account").map(|o| o.label.as_str()), Some("Replaced"));
        let names: Vec<_> = c.objects().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["account", "Employee__c"]);
    }
}
