//! The built-in standard objects: Account, Contact, Lead, Opportunity, Case, Order, Task
//! and User with their common standard fields, and the builders of compound fields and
//! system fields that custom objects share.
//!
//! Owns: [`ObjectCatalog::standard`], [`address`], [`person_name`], [`location`],
//! [`system_fields`].
//! Must not: read files or build schemas.
//!
//! Facts from Salesforce's Object Reference (field names, types, id prefixes, which fields
//! are required on create); the lists are a common subset, not every field an org has.
//! Field order follows describe order (the order Salesforce's change event schemas use):
//! the object's main fields, then the system fields `OwnerId` (where the object has an
//! owner), `CreatedDate`, `CreatedById`, `LastModifiedDate`, `LastModifiedById`, then (for
//! Account, as in Salesforce's documented AccountChangeEvent) the later standard fields.
//! Account's order matches the documented example field for field, so its positions (and
//! bitmaps) are Salesforce's: `Fax` is 7, `LastModifiedDate` 22. The other objects keep
//! the system fields last. Fields the server would have to compute (`Case.CaseNumber`,
//! `Order.OrderNumber`, roll-ups) are left out.

use crate::model::{Component, FieldDef, FieldType, ObjectCatalog, ObjectDef};

/// The components of an address, in nested-record order, with their types.
/// (Salesforce's documented `BillingAddress` example; `StateCode` and `CountryCode` exist
/// only in orgs with state and country picklists, which eventbus does not model.)
const ADDRESS_PARTS: [(&str, FieldType); 8] = [
    ("Street", FieldType::TextArea),
    ("City", FieldType::Text),
    ("State", FieldType::Text),
    ("PostalCode", FieldType::Text),
    ("Country", FieldType::Text),
    ("Latitude", FieldType::Double),
    ("Longitude", FieldType::Double),
    ("GeocodeAccuracy", FieldType::Picklist),
];

/// A compound address field `name` whose flat REST fields are `prefix` + component
/// (`address("BillingAddress", "Billing")` → `BillingStreet`, `BillingCity`, ...;
/// Lead's `address("Address", "")` → `Street`, `City`, ...).
#[must_use]
pub fn address(name: &str, prefix: &str) -> FieldDef {
    FieldDef {
        components: ADDRESS_PARTS
            .iter()
            .map(|(part, ty)| Component {
                name: (*part).to_owned(),
                field: format!("{prefix}{part}"),
                ty: *ty,
            })
            .collect(),
        length: None,
        default_on: false,
        ..FieldDef::simple(name, FieldType::Address)
    }
}

/// The compound `Name` of a person: Salutation (when `salutation`), FirstName, LastName,
/// MiddleName, Suffix; the flat REST fields have the same names. Required on create means
/// `LastName` is required.
#[must_use]
pub fn person_name(salutation: bool) -> FieldDef {
    let mut parts = vec![
        ("FirstName", FieldType::Text),
        ("LastName", FieldType::Text),
        ("MiddleName", FieldType::Text),
        ("Suffix", FieldType::Text),
    ];
    if salutation {
        parts.insert(0, ("Salutation", FieldType::Picklist));
    }
    FieldDef {
        components: parts
            .into_iter()
            .map(|(part, ty)| Component {
                name: part.to_owned(),
                field: part.to_owned(),
                ty,
            })
            .collect(),
        length: None,
        default_on: false,
        ..FieldDef::simple("Name", FieldType::Name)
    }
    .required()
}

/// A geolocation field `name` (`Loc__c`): components `Latitude` and `Longitude`, flat
/// REST fields `Loc__Latitude__s` and `Loc__Longitude__s`.
#[must_use]
pub fn location(name: &str) -> FieldDef {
    let base = name.strip_suffix("__c").unwrap_or(name);
    FieldDef {
        components: ["Latitude", "Longitude"]
            .iter()
            .map(|part| Component {
                name: (*part).to_owned(),
                field: format!("{base}__{part}__s"),
                ty: FieldType::Double,
            })
            .collect(),
        length: None,
        default_on: false,
        ..FieldDef::simple(name, FieldType::Location)
    }
}

/// The system fields every object's change event carries, last and in this order:
/// `OwnerId` when `owned`, then `CreatedDate`, `CreatedById`, `LastModifiedDate`,
/// `LastModifiedById`. Only `OwnerId` is settable.
#[must_use]
pub fn system_fields(owned: bool) -> Vec<FieldDef> {
    let mut out = Vec::new();
    if owned {
        out.push(FieldDef::simple("OwnerId", FieldType::Reference));
    }
    out.extend([
        FieldDef::simple("CreatedDate", FieldType::DateTime).read_only(),
        FieldDef::simple("CreatedById", FieldType::Reference).read_only(),
        FieldDef::simple("LastModifiedDate", FieldType::DateTime).read_only(),
        FieldDef::simple("LastModifiedById", FieldType::Reference).read_only(),
    ]);
    out
}

/// The names of the system fields (see [`system_fields`]).
pub const SYSTEM_FIELD_NAMES: [&str; 5] = [
    "OwnerId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
];

fn object(name: &str, label: &str, prefix: &str, owned: bool, fields: Vec<FieldDef>) -> ObjectDef {
    let mut fields = fields;
    fields.extend(system_fields(owned));
    ObjectDef {
        name: name.to_owned(),
        label: label.to_owned(),
        key_prefix: prefix.to_owned(),
        fields,
        custom: false,
    }
}

fn f(name: &str, ty: FieldType) -> FieldDef {
    FieldDef::simple(name, ty)
}

use FieldType as T;

fn account() -> ObjectDef {
    let mut a = object(
        "Account",
        "Account",
        "001",
        true,
        vec![
            f("Name", T::Text).required(),
            f("Type", T::Picklist),
            f("ParentId", T::Reference),
            address("BillingAddress", "Billing"),
            address("ShippingAddress", "Shipping"),
            f("Phone", T::Phone),
            f("Fax", T::Phone),
            f("AccountNumber", T::Text).length(40),
            f("Website", T::Url),
            f("Sic", T::Text).length(20),
            f("Industry", T::Picklist),
            f("AnnualRevenue", T::Currency),
            f("NumberOfEmployees", T::Int),
            f("Ownership", T::Picklist),
            f("TickerSymbol", T::Text).length(20),
            f("Description", T::LongTextArea),
            f("Rating", T::Picklist),
            f("Site", T::Text).length(80),
        ],
    );
    // After the system fields, in the documented example's order.
    a.fields.extend([
        f("Jigsaw", T::Text).length(20),
        f("JigsawCompanyId", T::Text).length(20).read_only(),
        f("CleanStatus", T::Picklist),
        f("AccountSource", T::Picklist),
        f("DunsNumber", T::Text).length(9),
        f("Tradestyle", T::Text),
        f("NaicsCode", T::Text).length(8),
        f("NaicsDesc", T::Text).length(120),
        f("YearStarted", T::Text).length(4),
        f("SicDesc", T::Text).length(80),
        f("DandbCompanyId", T::Reference),
        f("OperatingHoursId", T::Reference),
    ]);
    a
}

fn contact() -> ObjectDef {
    object(
        "Contact",
        "Contact",
        "003",
        true,
        vec![
            f("AccountId", T::Reference),
            person_name(true),
            address("OtherAddress", "Other"),
            address("MailingAddress", "Mailing"),
            f("Phone", T::Phone),
            f("Fax", T::Phone),
            f("MobilePhone", T::Phone),
            f("HomePhone", T::Phone),
            f("OtherPhone", T::Phone),
            f("AssistantPhone", T::Phone),
            f("ReportsToId", T::Reference),
            f("Email", T::Email),
            f("Title", T::Text).length(128),
            f("Department", T::Text).length(80),
            f("AssistantName", T::Text).length(40),
            f("LeadSource", T::Picklist),
            f("Birthdate", T::Date),
            f("Description", T::LongTextArea),
            f("HasOptedOutOfEmail", T::Boolean),
            f("DoNotCall", T::Boolean),
        ],
    )
}

fn lead() -> ObjectDef {
    object(
        "Lead",
        "Lead",
        "00Q",
        true,
        vec![
            person_name(true),
            f("Title", T::Text).length(128),
            f("Company", T::Text).required(),
            address("Address", ""),
            f("Phone", T::Phone),
            f("MobilePhone", T::Phone),
            f("Fax", T::Phone),
            f("Email", T::Email),
            f("Website", T::Url),
            f("Description", T::LongTextArea),
            f("LeadSource", T::Picklist),
            f("Status", T::Picklist).required(),
            f("Industry", T::Picklist),
            f("Rating", T::Picklist),
            f("AnnualRevenue", T::Currency),
            f("NumberOfEmployees", T::Int),
            f("HasOptedOutOfEmail", T::Boolean),
            f("IsConverted", T::Boolean).read_only(),
            f("DoNotCall", T::Boolean),
        ],
    )
}

fn opportunity() -> ObjectDef {
    object(
        "Opportunity",
        "Opportunity",
        "006",
        true,
        vec![
            f("AccountId", T::Reference),
            f("IsPrivate", T::Boolean),
            f("Name", T::Text).length(120).required(),
            f("Description", T::LongTextArea),
            f("StageName", T::Picklist).required(),
            f("Amount", T::Currency),
            f("Probability", T::Percent),
            f("CloseDate", T::Date).required(),
            f("Type", T::Picklist),
            f("NextStep", T::Text),
            f("LeadSource", T::Picklist),
            f("IsClosed", T::Boolean).read_only(),
            f("IsWon", T::Boolean).read_only(),
            f("ForecastCategoryName", T::Picklist),
        ],
    )
}

fn case() -> ObjectDef {
    object(
        "Case",
        "Case",
        "500",
        true,
        vec![
            f("ContactId", T::Reference),
            f("AccountId", T::Reference),
            f("ParentId", T::Reference),
            f("SuppliedName", T::Text).length(80),
            f("SuppliedEmail", T::Email),
            f("SuppliedPhone", T::Text).length(40),
            f("SuppliedCompany", T::Text).length(80),
            f("Type", T::Picklist),
            f("Status", T::Picklist),
            f("Reason", T::Picklist),
            f("Origin", T::Picklist),
            f("Subject", T::Text),
            f("Priority", T::Picklist),
            f("Description", T::LongTextArea),
            f("IsClosed", T::Boolean).read_only(),
            f("ClosedDate", T::DateTime).read_only(),
            f("IsEscalated", T::Boolean),
        ],
    )
}

fn order() -> ObjectDef {
    object(
        "Order",
        "Order",
        "801",
        true,
        vec![
            f("AccountId", T::Reference).required(),
            f("EffectiveDate", T::Date).required(),
            f("EndDate", T::Date),
            f("Status", T::Picklist).required(),
            f("Description", T::LongTextArea),
            f("Type", T::Picklist),
            address("BillingAddress", "Billing"),
            address("ShippingAddress", "Shipping"),
            f("Name", T::Text).length(80),
            f("PoNumber", T::Text).length(80),
            f("PoDate", T::Date),
            f("OrderReferenceNumber", T::Text).length(80),
        ],
    )
}

fn task() -> ObjectDef {
    object(
        "Task",
        "Task",
        "00T",
        true,
        vec![
            f("WhoId", T::Reference),
            f("WhatId", T::Reference),
            f("Subject", T::Text),
            f("ActivityDate", T::Date),
            f("Status", T::Picklist),
            f("Priority", T::Picklist),
            f("Description", T::LongTextArea),
            f("Type", T::Picklist),
            f("IsClosed", T::Boolean).read_only(),
            f("ReminderDateTime", T::DateTime),
            f("IsReminderSet", T::Boolean),
        ],
    )
}

fn user() -> ObjectDef {
    object(
        "User",
        "User",
        "005",
        false,
        vec![
            f("Username", T::Text).length(80).required(),
            person_name(false),
            f("CompanyName", T::Text).length(80),
            f("Division", T::Text).length(80),
            f("Department", T::Text).length(80),
            f("Title", T::Text).length(80),
            address("Address", ""),
            f("Email", T::Email).length(128).required(),
            f("Phone", T::Phone),
            f("MobilePhone", T::Phone),
            f("Alias", T::Text).length(8).required(),
            f("CommunityNickname", T::Text).length(40),
            f("IsActive", T::Boolean),
            f("TimeZoneSidKey", T::Picklist).required(),
            f("UserRoleId", T::Reference),
            f("LocaleSidKey", T::Picklist).required(),
            f("EmailEncodingKey", T::Picklist).required(),
            f("ProfileId", T::Reference).required(),
            f("LanguageLocaleKey", T::Picklist).required(),
            f("ManagerId", T::Reference),
        ],
    )
}

impl ObjectCatalog {
    /// The built-in standard objects: Account (001), Contact (003), Lead (00Q),
    /// Opportunity (006), Case (500), Order (801), Task (00T) and User (005).
    #[must_use]
    pub fn standard() -> Self {
        let mut c = ObjectCatalog::empty();
        for o in [
            account(),
            contact(),
            lead(),
            opportunity(),
            case(),
            order(),
            task(),
            user(),
        ] {
            c.insert(o);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_standard_objects_have_their_prefixes() {
        let c = ObjectCatalog::standard();
        for (name, prefix) in [
            ("Account", "001"),
            ("Contact", "003"),
            ("Lead", "00Q"),
            ("Opportunity", "006"),
            ("Case", "500"),
            ("Order", "801"),
            ("Task", "00T"),
            ("User", "005"),
        ] {
            let o = c.get(name).expect(name);
            assert_eq!(o.key_prefix, prefix);
            assert_eq!(c.by_key_prefix(prefix).map(|o| o.name.as_str()), Some(name));
            assert!(!o.custom);
        }
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn names_are_unique_and_system_fields_are_together() {
        for o in ObjectCatalog::standard().objects() {
            let mut seen = HashSet::new();
            for f in &o.fields {
                assert!(
                    seen.insert(f.name.to_ascii_lowercase()),
                    "{}.{}",
                    o.name,
                    f.name
                );
                for c in &f.components {
                    assert!(
                        seen.insert(c.field.to_ascii_lowercase()),
                        "{}.{}",
                        o.name,
                        c.field
                    );
                }
            }
            let (created, _) = o.field("CreatedDate").expect("CreatedDate");
            let run: Vec<_> = o.fields[created..created + 4]
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            assert_eq!(
                run,
                [
                    "CreatedDate",
                    "CreatedById",
                    "LastModifiedDate",
                    "LastModifiedById"
                ],
                "{}",
                o.name
            );
            match o.field("OwnerId") {
                Some((owner, _)) => assert_eq!(owner + 1, created, "{}", o.name),
                None => assert_eq!(o.name, "User"),
            }
            if o.name != "Account" {
                assert_eq!(created + 4, o.fields.len(), "{}", o.name);
            }
        }
    }

    #[test]
    fn account_starts_in_the_documented_order_and_has_compound_addresses() {
        let c = ObjectCatalog::standard();
        let a = c.get("Account").expect("Account");
        let names: Vec<_> = a.fields.iter().take(5).map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "ParentId",
                "BillingAddress",
                "ShippingAddress"
            ]
        );
        let city = a.flat_field("BillingCity").expect("BillingCity");
        assert_eq!((city.position, city.component), (4, Some(1)));
        let lat = a.flat_field("ShippingLatitude").expect("lat");
        assert_eq!(
            (lat.ty, lat.position, lat.component),
            (T::Double, 5, Some(5))
        );
        // Positions as in Salesforce's documented AccountChangeEvent.
        let at = |name: &str| a.field(name).map(|(i, _)| i + 1);
        assert_eq!(at("Fax"), Some(7));
        assert_eq!(at("OwnerId"), Some(19));
        assert_eq!(at("LastModifiedDate"), Some(22));
        assert_eq!(at("Jigsaw"), Some(24));
        assert_eq!(at("OperatingHoursId"), Some(35));
        assert_eq!(
            a.flat_field("Description").map(|f| f.ty),
            Some(T::LongTextArea)
        );
        let lead = c.get("Lead").expect("Lead");
        assert_eq!(lead.flat_field("city").map(|f| f.name), Some("City".into()));
        let contact = c.get("Contact").expect("Contact");
        let last = contact.flat_field("LastName").expect("LastName");
        assert!(last.required);
        assert!(!contact.flat_field("FirstName").expect("FirstName").required);
        assert_eq!(contact.flat_field("Birthdate").map(|f| f.ty), Some(T::Date));
    }

    #[test]
    fn location_fields_use_the_s_suffix() {
        let loc = location("Site__c");
        let flat: Vec<_> = loc.components.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(flat, ["Site__Latitude__s", "Site__Longitude__s"]);
    }
}
