//! What the org has: the global `sobjects` list and
//! `sobjects/{Event__e}/describe` for platform events.
//!
//! Owns: the describe shapes of an event and its fields (the fields
//! Salesforce adds to every event, `ReplayId`, `CreatedDate`,
//! `CreatedById`, `EventUuid`, then the schema's own). Must not: publish.

use serde_json::{Value, json};

use super::fields::{self, Field, Kind};
use super::publish::EventType;
use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::Broker;

/// The key prefix Salesforce's platform event records show.
const EVENT_KEY_PREFIX: &str = "e00";

fn urls(version: u32, name: &str) -> Value {
    let base = format!("/services/data/v{version}.0/sobjects/{name}");
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "eventSchema": format!("{base}/eventSchema"),
    })
}

/// The object properties describe and the global list share.
fn object(version: u32, name: &str, can_publish: bool) -> serde_json::Map<String, Value> {
    let label = name.trim_end_matches("__e").replace('_', " ");
    let flags = json!({
        "name": name,
        "label": label,
        "labelPlural": label,
        "keyPrefix": EVENT_KEY_PREFIX,
        "custom": true,
        "customSetting": false,
        "createable": can_publish,
        "deletable": false,
        "updateable": false,
        "queryable": false,
        "retrieveable": false,
        "searchable": false,
        "layoutable": false,
        "triggerable": true,
        "replicateable": false,
        "undeletable": false,
        "mergeable": false,
        "feedEnabled": false,
        "activateable": false,
        "deprecatedAndHidden": false,
        "urls": urls(version, name),
    });
    match flags {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// `GET sobjects`: every platform event of the caller's org it may
/// publish or subscribe to, by name.
pub(super) fn global(broker: &Broker, caller: &Caller, version: u32) -> Value {
    let ns = Namespace::of(&caller.tenant);
    let sobjects: Vec<Value> = broker
        .topics()
        .iter()
        .filter_map(|t| ns.outward(t.name.as_str()))
        .filter(|n| caller.grants.can_publish(n) || caller.grants.can_subscribe(n))
        .filter_map(|n| n.strip_prefix("/event/"))
        .filter(|n| n.ends_with("__e"))
        .map(|n| {
            Value::Object(object(
                version,
                n,
                caller.grants.can_publish(&format!("/event/{n}")),
            ))
        })
        .collect();
    json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects })
}

/// One field as describe shows it.
fn field(name: &str, kind: Kind, nillable: bool, custom: bool, createable: bool) -> Value {
    let (kind_name, soap) = fields::soap_type(kind);
    let (kind_name, soap, reference) = match name {
        "CreatedById" => ("reference", "tns:ID", vec!["User"]),
        "ReplayId" | "EventUuid" => ("string", "xsd:string", vec![]),
        _ => (kind_name, soap, vec![]),
    };
    let length = match kind_name {
        "string" if name == "ReplayId" => 255,
        "string" if name == "EventUuid" => 36,
        "string" => 255,
        "reference" => 18,
        _ => 0,
    };
    let (precision, scale) = if kind_name == "double" {
        (18, 0)
    } else {
        (0, 0)
    };
    json!({
        "name": name,
        "label": name.trim_end_matches("__c").replace('_', " "),
        "type": kind_name,
        "soapType": soap,
        "length": length,
        "byteLength": length * 3,
        "precision": precision,
        "scale": scale,
        "digits": 0,
        "nillable": nillable,
        "custom": custom,
        "createable": createable,
        "updateable": false,
        "filterable": true,
        "defaultedOnCreate": !createable || kind == Kind::Boolean,
        "referenceTo": reference,
        "relationshipName": if name == "CreatedById" { json!("CreatedBy") } else { Value::Null },
        "picklistValues": [],
    })
}

/// `GET sobjects/{name}/describe`.
pub(super) fn event(caller: &Caller, version: u32, event: &EventType) -> Value {
    let publish = caller.grants.can_publish(&format!("/event/{}", event.name));
    let mut out = object(version, &event.name, publish);
    let mut described = vec![
        field("ReplayId", Kind::Text, true, false, false),
        field("CreatedDate", Kind::DateTime, false, false, false),
        field("CreatedById", Kind::Text, false, false, false),
        field("EventUuid", Kind::Text, true, false, false),
    ];
    described.extend(
        event
            .fields
            .iter()
            .filter(|f: &&Field| !fields::SYSTEM_FIELDS.contains(&f.name.as_str()))
            .map(|f| field(&f.name, f.kind, f.nillable, f.name.ends_with("__c"), true)),
    );
    out.insert("fields".into(), Value::Array(described));
    out.insert("childRelationships".into(), json!([]));
    out.insert("recordTypeInfos".into(), json!([]));
    Value::Object(out)
}
