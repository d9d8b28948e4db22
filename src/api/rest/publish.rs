//! Publishing platform events over REST: `POST sobjects/{Event__e}/` and
//! `POST composite/sobjects`.
//!
//! Owns: finding the event's topic and current schema, the record turned
//! into one Avro event with `CreatedDate` and `CreatedById` filled by the
//! server, the save results (`id`, `success`, `errors`, with the
//! `OPERATION_ENQUEUED` entry of newer versions) and `allOrNone`.
//! Must not: validate or store events itself (the broker does), or encode
//! Avro (the schema crate does).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::fields::{self, Field};
use super::reply::{self, RestError};
use crate::api::limits::Limits;
use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::{Broker, PublishEvent, Topic};
use crate::schema::json::{JsonDefaults, JsonError};

/// Most records in one `composite/sobjects` call.
pub(super) const MAX_RECORDS: usize = 200;

/// An event a caller may publish: its topic (stored name) and fields.
pub(super) struct EventType {
    /// The API name, as the topic spells it (`Order_Event__e`).
    pub name: String,
    pub topic: Arc<Topic>,
    pub fields: Vec<Field>,
    /// The current schema's JSON text, as the caller's org registered it.
    pub schema_json: Arc<str>,
}

/// The platform event `name` (any case) of the caller's org, when the
/// caller may publish or subscribe to it.
///
/// # Errors
/// `NOT_FOUND` for a name that is no event of the org or that the caller
/// may neither publish nor subscribe to.
pub(super) fn event_type(
    broker: &Broker,
    caller: &Caller,
    name: &str,
) -> Result<EventType, RestError> {
    let ns = Namespace::of(&caller.tenant);
    let is_event = name.len() > 3 && name[name.len() - 3..].eq_ignore_ascii_case("__e");
    let exact = format!("/event/{name}");
    let found = is_event
        .then(|| {
            ns.inward(&exact)
                .ok()
                .and_then(|stored| broker.topic(&stored).ok())
                .or_else(|| {
                    // Salesforce's object names are not case sensitive.
                    broker.topics().into_iter().find(|t| {
                        ns.outward(t.name.as_str())
                            .is_some_and(|n| n.eq_ignore_ascii_case(&exact))
                    })
                })
        })
        .flatten();
    let topic = found.ok_or_else(RestError::not_found)?;
    let outward = ns
        .outward(topic.name.as_str())
        .unwrap_or_default()
        .to_owned();
    if !caller.grants.can_publish(&outward) && !caller.grants.can_subscribe(&outward) {
        return Err(RestError::not_found());
    }
    // The caller's own text: two orgs' schemas of one canonical form
    // share an id but may differ in `doc`, which tells datetimes apart.
    let schema_json = broker
        .schema_text(&caller.tenant, topic.current_schema().as_str())
        .map_err(|e| {
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                e.to_string(),
            )
        })?;
    Ok(EventType {
        name: outward.trim_start_matches("/event/").to_owned(),
        fields: fields::of_schema(&schema_json),
        schema_json,
        topic,
    })
}

/// One record turned into an event of its topic's current schema.
struct Prepared {
    topic: Arc<Topic>,
    event: PublishEvent,
}

/// Who publishes, and when: what fills `CreatedById` and `CreatedDate`.
pub(super) struct Publisher<'a> {
    broker: &'a Broker,
    limits: &'a Limits,
    caller: &'a Caller,
    defaults: JsonDefaults,
}

impl Publisher<'_> {
    pub(super) fn new<'a>(
        broker: &'a Broker,
        limits: &'a Limits,
        caller: &'a Caller,
    ) -> Publisher<'a> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Publisher {
            broker,
            limits,
            caller,
            defaults: JsonDefaults {
                created_date_ms: now,
                created_by_id: reply::user_id(caller),
            },
        }
    }

    /// The event a record of `name` makes, ready to publish.
    fn prepare(&self, name: &str, record: &Map<String, Value>) -> Result<Prepared, RestError> {
        let event = event_type(self.broker, self.caller, name)?;
        let outward = format!("/event/{}", event.name);
        if !self.caller.grants.can_publish(&outward) {
            return Err(RestError::new(
                StatusCode::FORBIDDEN,
                "INSUFFICIENT_ACCESS_OR_READONLY",
                format!(
                    "insufficient access rights on object {}: no publish grant on {outward}",
                    event.name
                ),
            ));
        }
        let json = fields::to_event_json(&event.name, &event.fields, record)?;
        let schema_id = event.topic.current_schema().as_str().to_owned();
        let schema = self.broker.schema(&schema_id).map_err(|e| {
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                e.to_string(),
            )
        })?;
        let payload = schema
            .encode_json(&json, &self.defaults)
            .map_err(|e| match e {
                JsonError::MissingField { field } => RestError::new(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{field}]"),
                )
                .with_fields(vec![field]),
                other => RestError::new(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    other.to_string(),
                ),
            })?;
        Ok(Prepared {
            topic: event.topic,
            event: PublishEvent {
                id: String::new(),
                schema_id,
                payload: Bytes::from(payload),
                headers: Vec::new(),
            },
        })
    }

    /// Publishes prepared events, one broker call per topic, and returns
    /// one save result per event, in order.
    async fn publish(
        &self,
        prepared: Vec<Prepared>,
        version: u32,
    ) -> Vec<Result<Value, RestError>> {
        let mut results: Vec<Option<Result<Value, RestError>>> =
            (0..prepared.len()).map(|_| None).collect();
        let bytes = prepared.iter().map(|p| p.event.payload.len()).sum();
        if let Err(hit) = self
            .limits
            .charge_publish(&self.caller.tenant, prepared.len(), bytes)
        {
            return prepared
                .iter()
                .map(|_| {
                    Err(RestError::new(
                        StatusCode::BAD_REQUEST,
                        "LIMIT_EXCEEDED",
                        hit.to_string(),
                    ))
                })
                .collect();
        }
        let mut by_topic: HashMap<String, (Vec<usize>, Vec<PublishEvent>)> = HashMap::new();
        let mut order = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            let name = p.topic.name.as_str().to_owned();
            let group = by_topic.entry(name.clone()).or_insert_with(|| {
                order.push(name);
                (Vec::new(), Vec::new())
            });
            group.0.push(i);
            group.1.push(p.event);
        }
        for name in order {
            let (slots, events) = by_topic.remove(&name).unwrap_or_default();
            match self.broker.publish(&name, events).await {
                Ok(receipt) => {
                    for (slot, outcome) in slots.into_iter().zip(receipt.outcomes) {
                        results[slot] = Some(match outcome.result {
                            Ok(_) => Ok(saved(&outcome.correlation_key, version)),
                            Err(msg) => Err(RestError::new(
                                StatusCode::BAD_REQUEST,
                                "INVALID_INPUT",
                                msg,
                            )),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic = %name, "rest publish failed");
                    for slot in slots {
                        results[slot] = Some(Err(unavailable(&e)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(RestError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "UNKNOWN_EXCEPTION",
                        "no result",
                    ))
                })
            })
            .collect()
    }
}

fn unavailable(e: &crate::broker::BrokerError) -> RestError {
    RestError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "PLATFORM_EVENT_PUBLISHING_UNAVAILABLE",
        format!("Failed to publish the event; retry later: {e}"),
    )
}

/// The save result of a published event: an `e00` id (not unique, never
/// delivered, as Salesforce's), and from API 46.0 the `OPERATION_ENQUEUED`
/// entry carrying the event's `EventUuid`.
fn saved(event_uuid: &str, version: u32) -> Value {
    let errors = if version >= reply::ENQUEUED_SINCE {
        json!([{ "statusCode": "OPERATION_ENQUEUED", "message": event_uuid, "fields": [] }])
    } else {
        json!([])
    };
    json!({
        "id": reply::derived_id("e00", event_uuid.as_bytes()),
        "success": true,
        "errors": errors,
    })
}

/// The body as a JSON value, or Salesforce's `JSON_PARSER_ERROR`.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, RestError> {
    serde_json::from_slice(body).map_err(|e| {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("The request body is not valid JSON: {e}"),
        )
    })
}

/// `POST sobjects/{name}/`: publishes one event; `201` with its save result.
pub(super) async fn one(
    publisher: Publisher<'_>,
    version: u32,
    name: &str,
    body: &[u8],
) -> Result<Value, RestError> {
    let value = parse_body(body)?;
    let Value::Object(record) = value else {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {name} from a JSON {}: send one JSON object of the event's fields",
                kind(&value)
            ),
        ));
    };
    let prepared = publisher.prepare(name, &record)?;
    publisher
        .publish(vec![prepared], version)
        .await
        .pop()
        .unwrap_or_else(|| {
            Err(RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                "no result",
            ))
        })
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

/// `POST composite/sobjects`: publishes up to 200 records, each naming its
/// event in `attributes.type`; one save result per record, in order. With
/// `allOrNone`, a record that cannot be published stops all of them.
pub(super) async fn many(
    publisher: Publisher<'_>,
    version: u32,
    body: &[u8],
) -> Result<Value, RestError> {
    let value = parse_body(body)?;
    let bad = |m: &str| RestError::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", m);
    let all_or_none = match value.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("allOrNone must be true or false")),
    };
    let Some(records) = value.get("records").and_then(Value::as_array) else {
        return Err(bad(
            "The request body needs a records array: {\"allOrNone\": false, \"records\": [...]}",
        ));
    };
    if records.len() > MAX_RECORDS {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_RECORDS} records into this call (got {})",
                records.len()
            ),
        ));
    }
    let prepared: Vec<Result<Prepared, RestError>> = records
        .iter()
        .map(|r| {
            let record = r
                .as_object()
                .ok_or_else(|| bad("every record must be a JSON object"))?;
            let name = record
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    RestError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_TYPE",
                        "Every record needs attributes.type naming its sObject type",
                    )
                })?;
            publisher.prepare(name, record).map_err(|e| match e.code {
                "NOT_FOUND" => RestError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_TYPE",
                    format!("sObject type '{name}' is not supported."),
                ),
                _ => e,
            })
        })
        .collect();
    let failed = prepared.iter().any(Result::is_err);
    let mut results: Vec<Option<Result<Value, RestError>>> = Vec::with_capacity(prepared.len());
    let mut ready = Vec::new();
    let mut slots = Vec::new();
    for (i, p) in prepared.into_iter().enumerate() {
        match p {
            Ok(p) if all_or_none && failed => {
                drop(p);
                results.push(Some(Err(RestError::new(
                    StatusCode::BAD_REQUEST,
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                ))));
            }
            Ok(p) => {
                results.push(None);
                ready.push(p);
                slots.push(i);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    if !ready.is_empty() {
        for (slot, r) in slots
            .into_iter()
            .zip(publisher.publish(ready, version).await)
        {
            results[slot] = Some(r);
        }
    }
    Ok(Value::Array(
        results
            .into_iter()
            .map(|r| match r {
                Some(Ok(v)) => v,
                Some(Err(e)) => json!({ "id": null, "success": false, "errors": [e.save_error()] }),
                None => json!({ "id": null, "success": false, "errors": [] }),
            })
            .collect(),
    ))
}
