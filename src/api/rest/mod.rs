//! The Salesforce REST API under `/services/data/`, for platform events:
//! what REST publishers and the clients that describe an org call.
//!
//! Owns: the routes (each with and without a trailing slash, as clients
//! send both), the versions list and the resources of a version.
//! Callers authenticate with `Authorization: Bearer` through the server's
//! [`Authenticator`], so every kind of token it accepts works here.
//! Must not: hold publish rules (the broker) or schema encoding (the
//! schema crate).
//!
//! | Route | |
//! |---|---|
//! | `GET /services/data/` | versions, no login needed |
//! | `GET …/vNN.N/` | the resources of a version |
//! | `GET …/vNN.N/sobjects` | the org's platform events |
//! | `POST …/vNN.N/sobjects/{X__e}` | publish one event |
//! | `GET …/vNN.N/sobjects/{X__e}/describe` | an event's fields |
//! | `GET …/vNN.N/sobjects/{X__e}/eventSchema` | its current Avro schema |
//! | `GET …/vNN.N/event/eventSchema/{id}` | a schema of the org by id |
//! | `POST …/vNN.N/composite/sobjects` | publish up to 200 events |
//! | `GET …/vNN.N/limits` | allocations, counted from real use |
//!
//! With Change Data Capture (records of the objects enabled on the
//! `ChangeEvents` channel, see the `records` module):
//!
//! | Route | |
//! |---|---|
//! | `POST …/vNN.N/sobjects/{Object}` | create a record |
//! | `GET\|PATCH\|DELETE …/vNN.N/sobjects/{Object}/{id}` | read, update, delete it |
//! | `POST\|PATCH …/vNN.N/composite/sobjects` | create or update up to 200 records |
//! | `DELETE …/vNN.N/composite/sobjects?ids=…` | delete up to 200 records |

mod allocations;
mod describe;
mod fields;
mod publish;
mod records;
mod reply;

pub(crate) use records::shown as shown_record;
pub(crate) use reply::user_id;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use self::reply::RestError;
use super::limits::Limits;
use crate::auth::{Authenticator, Caller};
use crate::broker::Broker;
use crate::cdc::Cdc;

/// Largest request body read, in bytes: 200 records of a few KiB each
/// with room to spare; an event's own payload cap (1 MiB by default) is
/// the broker's.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
struct Shared {
    broker: Arc<Broker>,
    auth: Arc<Authenticator>,
    calls: Arc<allocations::ApiCalls>,
    limits: Arc<Limits>,
    cdc: Option<Arc<Cdc>>,
}

impl Shared {
    /// The API version and the caller of a call, in the order Salesforce
    /// checks them: an unknown version is `NOT_FOUND` even without a login.
    /// Counts the call towards the org's `DailyApiRequests`.
    fn call(&self, version: &str, headers: &HeaderMap) -> Result<(u32, Caller), RestError> {
        let v = reply::version(version)?;
        let caller = reply::caller(&self.auth, headers)?;
        self.calls.count(&caller.tenant);
        Ok((v, caller))
    }

    /// The records engine, or `NOT_FOUND` on a server without one.
    fn cdc(&self) -> Result<&Cdc, RestError> {
        self.cdc.as_deref().ok_or_else(RestError::not_found)
    }
}

/// The REST API's routes, ready to merge into the HTTP listener's router.
///
/// REST publishes are charged to the tenant's publish rate in `limits`,
/// the same budget gRPC publishes use. With `cdc`, records of the objects
/// enabled for Change Data Capture are served too.
pub fn router(
    broker: Arc<Broker>,
    auth: Arc<Authenticator>,
    limits: Arc<Limits>,
    cdc: Option<Arc<Cdc>>,
) -> Router {
    // Each path also with a trailing slash: simple-salesforce and the
    // official examples send `…/sobjects/X__e/`.
    let both = |r: Router<Shared>, path: &str, route: axum::routing::MethodRouter<Shared>| {
        r.route(path, route.clone())
            .route(&format!("{path}/"), route)
    };
    let mut r = Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions));
    r = both(r, "/services/data/{version}", get(resources));
    r = both(r, "/services/data/{version}/limits", get(limits_of));
    r = both(
        r,
        "/services/data/{version}/sobjects/{name}/eventSchema",
        get(event_schema),
    );
    r = both(r, "/services/data/{version}/sobjects", get(global));
    r = both(
        r,
        "/services/data/{version}/sobjects/{name}",
        post(create).get(basic),
    );
    r = both(
        r,
        "/services/data/{version}/sobjects/{name}/describe",
        get(describe_one),
    );
    r = both(
        r,
        "/services/data/{version}/sobjects/{name}/{id}",
        get(record_get).patch(record_update).delete(record_delete),
    );
    r = both(
        r,
        "/services/data/{version}/composite/sobjects",
        post(composite)
            .patch(composite_update)
            .delete(composite_delete),
    );
    r = both(
        r,
        "/services/data/{version}/event/eventSchema/{id}",
        get(schema_by_id),
    );
    // Anything else under a version: Salesforce's NOT_FOUND, not a bare 404.
    r = r.route(
        "/services/data/{version}/{*rest}",
        axum::routing::any(|| async { RestError::not_found() }),
    );
    r.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Shared {
            broker,
            auth,
            calls: Arc::default(),
            limits,
            cdc,
        })
}

/// The body, or a Salesforce error for one too large or cut short.
fn body(read: Result<Bytes, BytesRejection>) -> Result<Bytes, RestError> {
    read.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_ENTITY_TOO_LARGE",
                format!("The request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            RestError::new(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                format!("The request body could not be read: {e}"),
            )
        }
    })
}

fn answer(result: Result<(StatusCode, Value), RestError>) -> Response {
    match result {
        Ok((status, v)) => (status, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn versions() -> Response {
    let list: Vec<Value> = (reply::OLDEST..=reply::NEWEST)
        .map(|v| json!({ "label": reply::label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0") }))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn resources(
    State(s): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer((|| {
        let (v, _) = s.call(&version, &headers)?;
        let base = format!("/services/data/v{v}.0");
        let mut out = serde_json::Map::new();
        for name in ["sobjects", "composite", "limits", "tooling"] {
            out.insert(name.into(), json!(format!("{base}/{name}")));
        }
        Ok((StatusCode::OK, Value::Object(out)))
    })())
}

async fn limits_of(
    State(s): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(s.call(&version, &headers).map(|(_, caller)| {
        let calls = s.calls.last_day(&caller.tenant);
        let events = s.broker.usage(&caller.tenant);
        (StatusCode::OK, allocations::report(calls, events))
    }))
}

async fn global(
    State(s): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer((|| {
        let (v, caller) = s.call(&version, &headers)?;
        Ok((StatusCode::OK, describe::global(&s.broker, &caller, v)))
    })())
}

/// The describe of event `name`, for the caller.
fn described(
    s: &Shared,
    version: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Value, RestError> {
    let (v, caller) = s.call(version, headers)?;
    let event = publish::event_type(&s.broker, &caller, name)?;
    Ok(describe::event(&caller, v, &event))
}

async fn describe_one(
    State(s): State<Shared>,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(described(&s, &version, &name, &headers).map(|d| (StatusCode::OK, d)))
}

/// `GET sobjects/{name}`: the object's basic information.
async fn basic(
    State(s): State<Shared>,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(described(&s, &version, &name, &headers).map(|mut object| {
        if let Some(o) = object.as_object_mut() {
            o.remove("fields");
            o.remove("childRelationships");
            o.remove("recordTypeInfos");
        }
        (
            StatusCode::OK,
            json!({ "objectDescribe": object, "recentItems": [] }),
        )
    }))
}

/// `GET sobjects/{name}/eventSchema`: the event's current Avro schema.
async fn event_schema(
    State(s): State<Shared>,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let found = s.call(&version, &headers).and_then(|(_, caller)| {
        publish::event_type(&s.broker, &caller, &name).map(|e| e.schema_json)
    });
    schema_response(found)
}

/// `GET event/eventSchema/{schemaId}`: a schema of the caller's org by id.
async fn schema_by_id(
    State(s): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let found = s.call(&version, &headers).and_then(|(_, caller)| {
        s.broker
            .schema_text(&caller.tenant, &id)
            .map_err(|_| RestError::not_found())
    });
    schema_response(found)
}

/// A schema's JSON text as the body, or the error.
fn schema_response(found: Result<Arc<str>, RestError>) -> Response {
    match found {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text.to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn create(
    State(s): State<Shared>,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let body = body(read)?;
        if !records::is_event(&name) {
            let cdc = s.cdc()?;
            let value = publish::parse_body(&body)?;
            let actor = records::actor(&caller, v, &headers);
            let saved = records::create(cdc, &actor, &name, value).await?;
            return Ok((StatusCode::CREATED, saved));
        }
        let saved = publish::one(
            publish::Publisher::new(&s.broker, &s.limits, &caller),
            v,
            &name,
            &body,
        )
        .await?;
        Ok((StatusCode::CREATED, saved))
    };
    answer(run.await)
}

async fn composite(
    State(s): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let body = body(read)?;
        let value = publish::parse_body(&body)?;
        if let Ok((all_or_none, list)) = records::composite_records(&value)
            && !list.is_empty()
            && list
                .iter()
                .all(|r| records::record_type(r).is_some_and(|t| !records::is_event(t)))
        {
            let cdc = s.cdc()?;
            let actor = records::actor(&caller, v, &headers);
            let results = records::composite(cdc, &actor, list, all_or_none, false).await?;
            return Ok((StatusCode::OK, results));
        }
        let results = publish::many(
            publish::Publisher::new(&s.broker, &s.limits, &caller),
            v,
            &body,
        )
        .await?;
        Ok((StatusCode::OK, results))
    };
    answer(run.await)
}

/// `GET sobjects/{Object}/{id}`.
async fn record_get(
    State(s): State<Shared>,
    Path((version, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let record = records::get(s.cdc()?, &caller, v, &name, &id).await?;
        Ok((StatusCode::OK, record))
    };
    answer(run.await)
}

/// `PATCH sobjects/{Object}/{id}`: `204 No Content`.
async fn record_update(
    State(s): State<Shared>,
    Path((version, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let value = publish::parse_body(&body(read)?)?;
        let actor = records::actor(&caller, v, &headers);
        records::update(s.cdc()?, &actor, &name, &id, value).await
    };
    no_content(run.await)
}

/// `DELETE sobjects/{Object}/{id}`: `204 No Content`.
async fn record_delete(
    State(s): State<Shared>,
    Path((version, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let actor = records::actor(&caller, v, &headers);
        records::delete(s.cdc()?, &actor, &name, &id).await
    };
    no_content(run.await)
}

fn no_content(result: Result<(), RestError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH composite/sobjects`: updates up to 200 records.
async fn composite_update(
    State(s): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let value = publish::parse_body(&body(read)?)?;
        let (all_or_none, list) = records::composite_records(&value)?;
        let actor = records::actor(&caller, v, &headers);
        let results = records::composite(s.cdc()?, &actor, list, all_or_none, true).await?;
        Ok((StatusCode::OK, results))
    };
    answer(run.await)
}

/// The query of `DELETE composite/sobjects`.
#[derive(serde::Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    ids: String,
    #[serde(default, rename = "allOrNone")]
    all_or_none: Option<String>,
}

/// `DELETE composite/sobjects?ids=…&allOrNone=…`.
async fn composite_delete(
    State(s): State<Shared>,
    Path(version): Path<String>,
    Query(q): Query<DeleteQuery>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (v, caller) = s.call(&version, &headers)?;
        let all_or_none = q
            .all_or_none
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("true"));
        let actor = records::actor(&caller, v, &headers);
        let results = records::composite_delete(s.cdc()?, &actor, &q.ids, all_or_none).await?;
        Ok((StatusCode::OK, results))
    };
    answer(run.await)
}
