//! sObject records over REST, the changes Change Data Capture turns into
//! change events: `POST sobjects/{Object}`, `GET|PATCH|DELETE
//! sobjects/{Object}/{id}`, and `POST|PATCH|DELETE composite/sobjects`
//! for records.
//!
//! Owns: Salesforce's request and response shapes for records (the save
//! result, `204 No Content`, the record with its `attributes`, composite
//! results per record), `allOrNone`, and the `changeOrigin` of a REST call
//! (`com/salesforce/api/rest/62.0`, with `;client=…` from the
//! `Sforce-Call-Options` header). Must not: hold record rules (the cdc
//! crate does).

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::reply::{self, RestError};
use crate::auth::Caller;
use crate::cdc::{Actor, Cdc, CdcError, RecordOp};
use crate::objects::model::{FieldType, ObjectDef};

/// Most records in one composite call, as Salesforce allows.
const MAX_RECORDS: usize = 200;

/// The REST error for a failed record call.
pub(super) fn rest_error(e: &CdcError) -> RestError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let code = e.error_code();
    if e.is_server_error() {
        tracing::warn!(error = %e, "record call failed");
    }
    RestError::new(status, code, e.to_string()).with_fields(e.fields())
}

/// Who changes records in this call: the caller's org and user, and the
/// `changeOrigin` Salesforce records for a REST call of `version`.
pub(super) fn actor(caller: &Caller, version: u32, headers: &HeaderMap) -> Actor {
    let mut origin = format!("com/salesforce/api/rest/{version}.0");
    if let Some(client) = client_id(headers) {
        origin.push_str(";client=");
        origin.push_str(&client);
    }
    Actor {
        tenant: caller.tenant.clone(),
        user_id: reply::user_id(caller),
        origin,
    }
}

/// The `client` of a `Sforce-Call-Options` header
/// (`client=SampleClient/1.0, defaultNamespace=ns`).
fn client_id(headers: &HeaderMap) -> Option<String> {
    let options = headers.get("sforce-call-options")?.to_str().ok()?;
    options.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("client") && !v.trim().is_empty())
            .then(|| v.trim().to_owned())
    })
}

/// Whether `name` is a platform event (`X__e`): those are published, not
/// stored.
pub(super) fn is_event(name: &str) -> bool {
    name.len() > 3 && name[name.len() - 3..].eq_ignore_ascii_case("__e")
}

fn fields_of_body(value: Value, object: &str) -> Result<Map<String, Value>, RestError> {
    match value {
        Value::Object(mut map) => {
            map.remove("attributes");
            Ok(map)
        }
        other => Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {object} from a JSON {}: send one JSON object of the record's fields",
                kind(&other)
            ),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `POST sobjects/{Object}`: creates one record; its save result.
pub(super) async fn create(
    cdc: &Cdc,
    actor: &Actor,
    object: &str,
    body: Value,
) -> Result<Value, RestError> {
    let fields = fields_of_body(body, object)?;
    let op = RecordOp::Create {
        object: object.to_owned(),
        fields,
    };
    let id = single(cdc, actor, op).await?;
    Ok(json!({ "id": id, "success": true, "errors": [] }))
}

/// `PATCH sobjects/{Object}/{id}`.
pub(super) async fn update(
    cdc: &Cdc,
    actor: &Actor,
    object: &str,
    id: &str,
    body: Value,
) -> Result<(), RestError> {
    let mut fields = fields_of_body(body, object)?;
    // Salesforce ignores an `Id` in the body that names the same record.
    if let Some(Value::String(given)) = fields.get("Id")
        && given.get(..15) == id.get(..15)
    {
        fields.remove("Id");
    }
    let op = RecordOp::Update {
        object: Some(object.to_owned()),
        id: id.to_owned(),
        fields,
    };
    single(cdc, actor, op).await.map(|_| ())
}

/// `DELETE sobjects/{Object}/{id}`.
pub(super) async fn delete(
    cdc: &Cdc,
    actor: &Actor,
    object: &str,
    id: &str,
) -> Result<(), RestError> {
    let op = RecordOp::Delete {
        object: Some(object.to_owned()),
        id: id.to_owned(),
    };
    single(cdc, actor, op).await.map(|_| ())
}

async fn single(cdc: &Cdc, actor: &Actor, op: RecordOp) -> Result<String, RestError> {
    let committed = cdc
        .apply(actor, vec![op], true)
        .await
        .map_err(|e| rest_error(&e))?;
    match committed.results.into_iter().next() {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => Err(rest_error(&e)),
        None => Err(RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "no result",
        )),
    }
}

/// `GET sobjects/{Object}/{id}`: the record as Salesforce shows it.
pub(super) async fn get(
    cdc: &Cdc,
    caller: &Caller,
    version: u32,
    object: &str,
    id: &str,
) -> Result<Value, RestError> {
    let (obj, record) = cdc
        .get(&caller.tenant, Some(object), id)
        .await
        .map_err(|e| rest_error(&e))?;
    Ok(shown(obj, &record, version))
}

/// A stored record in the REST form: `attributes`, `Id`, `IsDeleted`, every
/// field (null when empty) with compound fields also as a whole, then
/// `SystemModstamp`.
pub(crate) fn shown(obj: &ObjectDef, record: &Map<String, Value>, version: u32) -> Value {
    let id = record.get("Id").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({
            "type": obj.name,
            "url": format!("/services/data/v{version}.0/sobjects/{}/{}", obj.name, id.as_str().unwrap_or("")),
        }),
    );
    out.insert("Id".into(), id);
    out.insert(
        "IsDeleted".into(),
        record
            .get("IsDeleted")
            .cloned()
            .unwrap_or(Value::Bool(false)),
    );
    for f in &obj.fields {
        if f.components.is_empty() {
            out.insert(
                f.name.clone(),
                record.get(&f.name).cloned().unwrap_or(Value::Null),
            );
            continue;
        }
        for c in &f.components {
            out.insert(
                c.field.clone(),
                record.get(&c.field).cloned().unwrap_or(Value::Null),
            );
        }
        out.insert(f.name.clone(), compound(f.ty, &f.components, record));
    }
    out.insert(
        "SystemModstamp".into(),
        record.get("SystemModstamp").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// A compound field as REST shows it whole: an address or location as an
/// object of lower-camel-case parts (null when every part is), a name as
/// its parts joined.
fn compound(
    ty: FieldType,
    parts: &[crate::objects::model::Component],
    record: &Map<String, Value>,
) -> Value {
    if matches!(ty, FieldType::Name) {
        let words: Vec<&str> = [
            "Salutation",
            "FirstName",
            "MiddleName",
            "LastName",
            "Suffix",
        ]
        .iter()
        .filter_map(|short| {
            parts
                .iter()
                .find(|c| c.name == *short)
                .and_then(|c| record.get(&c.field))
                .and_then(Value::as_str)
        })
        .collect();
        return if words.is_empty() {
            Value::Null
        } else {
            Value::String(words.join(" "))
        };
    }
    let mut whole = Map::new();
    let mut any = false;
    for c in parts {
        let v = record.get(&c.field).cloned().unwrap_or(Value::Null);
        any |= !v.is_null();
        let mut key = c.name.clone();
        if let Some(first) = key.get(..1) {
            key = first.to_ascii_lowercase() + &key[1..];
        }
        whole.insert(key, v);
    }
    if any {
        Value::Object(whole)
    } else {
        Value::Null
    }
}

/// The records of a composite body: `{"allOrNone": bool, "records": [...]}`.
pub(super) fn composite_records(
    body: &Value,
) -> Result<(bool, Vec<Map<String, Value>>), RestError> {
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(Value::Array(records)) = body.get("records") else {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body has no records array: send {\"allOrNone\": false, \"records\": [...]}",
        ));
    };
    if records.len() > MAX_RECORDS {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
            ),
        ));
    }
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        match r {
            Value::Object(m) => out.push(m.clone()),
            other => {
                return Err(RestError::new(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    format!("Each record must be a JSON object, not a {}", kind(other)),
                ));
            }
        }
    }
    Ok((all_or_none, out))
}

/// The `attributes.type` of a composite record.
pub(super) fn record_type(record: &Map<String, Value>) -> Option<&str> {
    record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
}

/// A composite create (`POST`) or update (`PATCH`) of records: one save
/// result per record, in order.
pub(super) async fn composite(
    cdc: &Cdc,
    actor: &Actor,
    records: Vec<Map<String, Value>>,
    all_or_none: bool,
    update: bool,
) -> Result<Value, RestError> {
    let mut ops = Vec::with_capacity(records.len());
    let mut refused: Vec<Option<RestError>> = Vec::with_capacity(records.len());
    for mut r in records {
        let Some(object) = record_type(&r).map(str::to_owned) else {
            refused.push(Some(RestError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                "Must send a concrete entity type.",
            )));
            continue;
        };
        r.remove("attributes");
        let op = if update {
            match r.remove("id").or_else(|| r.remove("Id")) {
                Some(Value::String(id)) => RecordOp::Update {
                    object: Some(object),
                    id,
                    fields: r,
                },
                _ => {
                    refused.push(Some(RestError::new(
                        StatusCode::BAD_REQUEST,
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                    )));
                    continue;
                }
            }
        } else {
            if r.contains_key("id") || r.contains_key("Id") {
                refused.push(Some(RestError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                )));
                continue;
            }
            RecordOp::Create { object, fields: r }
        };
        refused.push(None);
        ops.push(op);
    }
    run_composite(cdc, actor, ops, refused, all_or_none).await
}

/// `DELETE composite/sobjects?ids=…&allOrNone=…`.
pub(super) async fn composite_delete(
    cdc: &Cdc,
    actor: &Actor,
    ids: &str,
    all_or_none: bool,
) -> Result<Value, RestError> {
    let ids: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids parameter not specified",
        ));
    }
    if ids.len() > MAX_RECORDS {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
            ),
        ));
    }
    let ops = ids
        .iter()
        .map(|id| RecordOp::Delete {
            object: None,
            id: (*id).to_owned(),
        })
        .collect::<Vec<_>>();
    let refused = ops.iter().map(|_| None).collect();
    run_composite(cdc, actor, ops, refused, all_or_none).await
}

async fn run_composite(
    cdc: &Cdc,
    actor: &Actor,
    ops: Vec<RecordOp>,
    refused: Vec<Option<RestError>>,
    all_or_none: bool,
) -> Result<Value, RestError> {
    let any_refused = refused.iter().any(Option::is_some);
    let mut results = if all_or_none && any_refused {
        // Nothing runs: the valid ones are rolled back.
        ops.iter().map(|_| Err(CdcError::RolledBack)).collect()
    } else {
        cdc.apply(actor, ops, all_or_none)
            .await
            .map_err(|e| rest_error(&e))?
            .results
    }
    .into_iter();
    let mut out = Vec::with_capacity(refused.len());
    for r in refused {
        let entry = match r {
            Some(e) => json!({ "success": false, "errors": [e.save_error()] }),
            None => match results.next() {
                Some(Ok(id)) => json!({ "id": id, "success": true, "errors": [] }),
                Some(Err(e)) => json!({
                    "id": record_id_of(&e),
                    "success": false,
                    "errors": [rest_error(&e).save_error()],
                }),
                None => json!({ "success": false, "errors": [] }),
            },
        };
        out.push(entry);
    }
    Ok(Value::Array(out))
}

fn record_id_of(e: &CdcError) -> Value {
    match e {
        CdcError::RecordNotFound(id) | CdcError::EntityDeleted(id) | CdcError::NotDeleted(id) => {
            json!(id)
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_id_comes_from_the_call_options_header() {
        let mut h = HeaderMap::new();
        assert_eq!(client_id(&h), None);
        h.insert(
            "Sforce-Call-Options",
            "client=SampleClient/1.0, defaultNamespace=ns"
                .parse()
                .expect("header"),
        );
        assert_eq!(client_id(&h).as_deref(), Some("SampleClient/1.0"));
        h.insert(
            "Sforce-Call-Options",
            "defaultNamespace=ns".parse().expect("header"),
        );
        assert_eq!(client_id(&h), None);
    }

    #[test]
    fn events_are_told_from_objects_by_suffix() {
        assert!(is_event("Order_Event__e"));
        assert!(is_event("order_event__E"));
        assert!(!is_event("Account"));
        assert!(!is_event("Employee__c"));
    }
}
