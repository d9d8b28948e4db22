//! Custom channels over the Tooling REST API, as Salesforce serves them:
//! `PlatformEventChannel` and `PlatformEventChannelMember` records under
//! `/services/data/vNN.N/tooling/sobjects/`, and their SOQL query.
//!
//! Owns: the routes, request bodies (`{"FullName": …, "Metadata": {…}}`),
//! the save results and record shapes, the small SOQL subset for the two
//! objects, and mapping channel errors to Salesforce's error bodies.
//! Must not: hold channel rules (the channels crate does).
//!
//! | Route | |
//! |---|---|
//! | `POST …/tooling/sobjects/PlatformEventChannel` | define a channel |
//! | `GET\|PATCH\|DELETE …/tooling/sobjects/PlatformEventChannel/{id}` | read, relabel, delete it |
//! | `POST …/tooling/sobjects/PlatformEventChannelMember` | define a member |
//! | `GET\|PATCH\|DELETE …/tooling/sobjects/PlatformEventChannelMember/{id}` | read, change (filter, enriched fields), delete it |
//! | `GET …/tooling/query?q=SELECT … FROM PlatformEventChannel[Member] …` | query them |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::{Authenticator, Caller};
use crate::channels::{ChannelError, ChannelView, Channels, MemberSpec, MemberView};

/// The channel object.
pub const CHANNEL: &str = "PlatformEventChannel";
/// The member object.
pub const MEMBER: &str = "PlatformEventChannelMember";

#[derive(Clone)]
struct Shared {
    channels: Arc<Channels>,
    auth: Arc<Authenticator>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!([{ "message": message, "errorCode": code, "fields": [] }])),
    )
        .into_response()
}

fn failed(e: &ChannelError) -> Response {
    if e.http_status() >= 500 {
        tracing::warn!(error = %e, "channel call failed");
    }
    error(
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.error_code(),
        &e.to_string(),
    )
}

fn caller(s: &Shared, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    s.auth
        .authenticate_bearer(super::login::bearer(headers))
        .map_err(|e| {
            tracing::info!(reason = %e, "tooling call not authenticated");
            Box::new(error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            ))
        })
}

/// A caller that may change definitions: the `admin` grant.
fn admin(s: &Shared, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let c = caller(s, headers)?;
    if !c.grants.is_admin() {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on object: defining channels needs the admin grant",
        )));
    }
    Ok(c)
}

fn body_json(body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object: {\"FullName\": …, \"Metadata\": {…}}",
        ))),
        Err(e) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("The request body is not valid JSON: {e}"),
        ))),
    }
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text(m: &Map<String, Value>, name: &str) -> Option<String> {
    field(m, name).and_then(Value::as_str).map(str::to_owned)
}

fn saved(id: &str) -> Value {
    json!({ "id": id, "success": true, "errors": [], "warnings": [], "infos": [] })
}

fn channel_metadata(c: &ChannelView) -> Value {
    json!({
        "channelType": crate::channels::kind_name(c.kind),
        "label": c.label,
    })
}

fn member_metadata(m: &MemberView) -> Value {
    json!({
        "eventChannel": m.channel,
        "selectedEntity": m.selected_entity,
        "filterExpression": m.filter_expression,
        "enrichedFields": m.enriched_fields.iter().map(|f| json!({"name": f})).collect::<Vec<_>>(),
    })
}

fn channel_record(version: &str, c: &ChannelView, fields: &[String]) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": CHANNEL, "url": format!("/services/data/{version}/tooling/sobjects/{CHANNEL}/{}", c.id)}),
    );
    for f in fields {
        let v = match f.as_str() {
            "Id" => json!(c.id),
            "DeveloperName" => json!(c.full_name.trim_end_matches("__chn")),
            "MasterLabel" => json!(c.label),
            "FullName" => json!(c.full_name),
            "ChannelType" => json!(crate::channels::kind_name(c.kind)),
            _ => channel_metadata(c),
        };
        out.insert(f.clone(), v);
    }
    Value::Object(out)
}

fn member_record(version: &str, m: &MemberView, fields: &[String]) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": MEMBER, "url": format!("/services/data/{version}/tooling/sobjects/{MEMBER}/{}", m.id)}),
    );
    for f in fields {
        let v = match f.as_str() {
            "Id" => json!(m.id),
            "DeveloperName" | "FullName" => json!(m.developer_name),
            "EventChannel" => json!(m.channel),
            "SelectedEntity" => json!(m.selected_entity),
            "FilterExpression" => json!(m.filter_expression),
            _ => member_metadata(m),
        };
        out.insert(f.clone(), v);
    }
    Value::Object(out)
}

const CHANNEL_FIELDS: [&str; 6] = [
    "Id",
    "DeveloperName",
    "MasterLabel",
    "FullName",
    "ChannelType",
    "Metadata",
];
const MEMBER_FIELDS: [&str; 7] = [
    "Id",
    "DeveloperName",
    "FullName",
    "EventChannel",
    "SelectedEntity",
    "FilterExpression",
    "Metadata",
];

fn all_fields(object: &str) -> Vec<String> {
    let list: &[&str] = if object == CHANNEL {
        &CHANNEL_FIELDS
    } else {
        &MEMBER_FIELDS
    };
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The member spec a body's `Metadata` gives (over `base` for a PATCH).
fn member_spec(meta: &Map<String, Value>, base: Option<&MemberView>) -> MemberSpec {
    let mut spec = base.map_or_else(MemberSpec::default, |m| MemberSpec {
        channel: m.channel.clone(),
        selected_entity: m.selected_entity.clone(),
        filter_expression: m.filter_expression.clone(),
        enriched_fields: m.enriched_fields.clone(),
        developer_name: Some(m.developer_name.clone()),
    });
    if let Some(c) = text(meta, "eventChannel") {
        spec.channel = c;
    }
    if let Some(e) = text(meta, "selectedEntity") {
        spec.selected_entity = e;
    }
    if let Some(f) = field(meta, "filterExpression") {
        spec.filter_expression = f.as_str().map(str::to_owned);
    }
    if let Some(Value::Array(list)) = field(meta, "enrichedFields") {
        spec.enriched_fields = list
            .iter()
            .filter_map(|f| match f {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => text(o, "name"),
                _ => None,
            })
            .collect();
    }
    spec
}

async fn create(
    State(s): State<Shared>,
    Path((_version, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let c = match admin(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let full_name = text(&m, "FullName").unwrap_or_default();
    let meta = match field(&m, "Metadata") {
        Some(Value::Object(meta)) => meta.clone(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Metadata]",
            );
        }
    };
    if object.eq_ignore_ascii_case(CHANNEL) {
        let kind =
            match crate::channels::parse_kind(&text(&meta, "channelType").unwrap_or_default()) {
                Ok(k) => k,
                Err(e) => return failed(&e),
            };
        let label = text(&meta, "label").unwrap_or_default();
        match s
            .channels
            .create_channel(&c.tenant, &full_name, kind, &label)
            .await
        {
            Ok(view) => (StatusCode::CREATED, axum::Json(saved(&view.id))).into_response(),
            Err(e) => failed(&e),
        }
    } else if object.eq_ignore_ascii_case(MEMBER) {
        let mut spec = member_spec(&meta, None);
        if !full_name.trim().is_empty() {
            spec.developer_name = Some(full_name);
        }
        match s.channels.upsert_member(&c.tenant, spec).await {
            Ok(view) => (StatusCode::CREATED, axum::Json(saved(&view.id))).into_response(),
            Err(e) => failed(&e),
        }
    } else {
        error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
}

/// The channel or member with Tooling id `id`.
async fn find(
    s: &Shared,
    c: &Caller,
    object: &str,
    id: &str,
) -> Result<Result<ChannelView, MemberView>, Response> {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    };
    let same = |a: &str| a.get(..15).is_some_and(|a| Some(a) == id.get(..15));
    if object.eq_ignore_ascii_case(CHANNEL) {
        let list = s
            .channels
            .channels(&c.tenant)
            .await
            .map_err(|e| failed(&e))?;
        list.into_iter()
            .find(|v| same(&v.id))
            .map(Ok)
            .ok_or_else(not_found)
    } else if object.eq_ignore_ascii_case(MEMBER) {
        let list = s
            .channels
            .members(&c.tenant, None)
            .await
            .map_err(|e| failed(&e))?;
        list.into_iter()
            .find(|v| same(&v.id))
            .map(Err)
            .ok_or_else(not_found)
    } else {
        Err(not_found())
    }
}

async fn read(
    State(s): State<Shared>,
    Path((version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match find(&s, &c, &object, &id).await {
        Ok(Ok(ch)) => {
            axum::Json(channel_record(&version, &ch, &all_fields(CHANNEL))).into_response()
        }
        Ok(Err(m)) => axum::Json(member_record(&version, &m, &all_fields(MEMBER))).into_response(),
        Err(r) => r,
    }
}

async fn update(
    State(s): State<Shared>,
    Path((_version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let c = match admin(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let meta = match field(&m, "Metadata") {
        Some(Value::Object(meta)) => meta.clone(),
        _ => Map::new(),
    };
    let result = match find(&s, &c, &object, &id).await {
        Ok(Ok(ch)) => {
            let label = text(&meta, "label").unwrap_or(ch.label);
            s.channels
                .relabel_channel(&c.tenant, &ch.full_name, &label)
                .await
                .map(|_| ())
        }
        Ok(Err(member)) => {
            let spec = member_spec(&meta, Some(&member));
            if !spec.channel.eq_ignore_ascii_case(&member.channel)
                || !spec
                    .selected_entity
                    .eq_ignore_ascii_case(&member.selected_entity)
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "eventChannel and selectedEntity of a member cannot change; delete it and define a new one",
                );
            }
            s.channels.upsert_member(&c.tenant, spec).await.map(|_| ())
        }
        Err(r) => return r,
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(&e),
    }
}

async fn remove(
    State(s): State<Shared>,
    Path((_version, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let c = match admin(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let result = match find(&s, &c, &object, &id).await {
        Ok(Ok(ch)) => s.channels.delete_channel(&c.tenant, &ch.full_name).await,
        Ok(Err(m)) => {
            s.channels
                .delete_member(&c.tenant, &m.channel, &m.selected_entity)
                .await
        }
        Err(r) => return r,
    };
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(&e),
    }
}

/// Whether a SOQL query is about one of the channel objects (the Tooling
/// query route hands those here).
pub fn is_channel_query(q: &str) -> bool {
    let words: Vec<&str> = q.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("FROM"))
        .and_then(|i| words.get(i + 1))
        .is_some_and(|o| o.eq_ignore_ascii_case(CHANNEL) || o.eq_ignore_ascii_case(MEMBER))
}

/// Answers `SELECT f[, …] FROM PlatformEventChannel[Member] [WHERE F =
/// 'v'] [LIMIT n]`.
pub async fn query(channels: &Channels, caller: &Caller, version: &str, q: &str) -> Response {
    let words: Vec<&str> = q.split_whitespace().collect();
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(k));
    let malformed = |why: &str| error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", why);
    if !kw(0, "SELECT") {
        return malformed("the query must start with SELECT");
    }
    let Some(from) = (1..words.len()).find(|&i| kw(i, "FROM")) else {
        return malformed("the query has no FROM");
    };
    let object = if kw(from + 1, CHANNEL) {
        CHANNEL
    } else {
        MEMBER
    };
    let known = all_fields(object);
    let mut fields = Vec::new();
    for f in words[1..from].join(" ").split(',') {
        let f = f.trim();
        match known.iter().find(|k| k.eq_ignore_ascii_case(f)) {
            Some(k) => fields.push(k.clone()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{f}' on entity '{object}'"),
                );
            }
        }
    }
    let mut i = from + 2;
    let mut filter: Option<(String, String)> = None;
    if kw(i, "WHERE") {
        let end = (i + 1..words.len())
            .find(|&j| kw(j, "LIMIT"))
            .unwrap_or(words.len());
        let cond = words[i + 1..end].join(" ");
        let Some((f, v)) = cond.split_once('=') else {
            return malformed("the WHERE clause needs Field = 'value'");
        };
        let Some(v) = v
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
        else {
            return malformed("the value in WHERE must be quoted with '");
        };
        let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(f.trim())) else {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                &format!("No such column '{}' on entity '{object}'", f.trim()),
            );
        };
        filter = Some((k.clone(), v.to_owned()));
        i = end;
    }
    let mut limit = None;
    if kw(i, "LIMIT") {
        match words.get(i + 1).and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => limit = Some(n),
            None => return malformed("LIMIT needs a number"),
        }
        i += 2;
    }
    if i != words.len() {
        return malformed(&format!("unexpected `{}`", words[i..].join(" ")));
    }
    let everything = all_fields(object);
    let matches = |rec: &Value| match &filter {
        None => true,
        Some((f, v)) => rec
            .get(f)
            .and_then(Value::as_str)
            .is_some_and(|x| x.eq_ignore_ascii_case(v)),
    };
    let mut records: Vec<Value> = if object == CHANNEL {
        match channels.channels(&caller.tenant).await {
            Ok(list) => list
                .iter()
                .filter(|c| matches(&channel_record(version, c, &everything)))
                .map(|c| channel_record(version, c, &fields))
                .collect(),
            Err(e) => return failed(&e),
        }
    } else {
        match channels.members(&caller.tenant, None).await {
            Ok(list) => list
                .iter()
                .filter(|m| matches(&member_record(version, m, &everything)))
                .map(|m| member_record(version, m, &fields))
                .collect(),
            Err(e) => return failed(&e),
        }
    };
    let total = records.len();
    if let Some(n) = limit {
        records.truncate(n);
    }
    axum::Json(json!({
        "size": records.len(),
        "totalSize": total,
        "done": true,
        "queryLocator": null,
        "entityTypeName": object,
        "records": records,
    }))
    .into_response()
}

/// The Tooling sObject routes of the two channel objects.
pub fn router(channels: Arc<Channels>, auth: Arc<Authenticator>) -> axum::Router {
    use axum::routing::{get, post};
    let one = get(read).patch(update).delete(remove);
    axum::Router::new()
        .route(
            "/services/data/{version}/tooling/sobjects/{object}",
            post(create),
        )
        .route(
            "/services/data/{version}/tooling/sobjects/{object}/",
            post(create),
        )
        .route(
            "/services/data/{version}/tooling/sobjects/{object}/{id}",
            one.clone(),
        )
        .route(
            "/services/data/{version}/tooling/sobjects/{object}/{id}/",
            one,
        )
        .with_state(Shared { channels, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_queries_are_told_apart() {
        assert!(is_channel_query("SELECT Id FROM PlatformEventChannel"));
        assert!(is_channel_query(
            "select Id, FilterExpression from platformeventchannelmember where DeveloperName = 'x'"
        ));
        assert!(!is_channel_query("SELECT Id FROM ManagedEventSubscription"));
    }

    #[test]
    fn a_member_patch_keeps_what_it_does_not_name() {
        let base = MemberView {
            id: "0v8000000000001AAA".into(),
            developer_name: "Orders_chn_Order_Event_e".into(),
            channel: "Orders__chn".into(),
            selected_entity: "Order_Event__e".into(),
            filter_expression: Some("Amount__c > 10".into()),
            enriched_fields: vec![],
        };
        let meta = json!({"filterExpression": "Amount__c > 1000"});
        let spec = member_spec(meta.as_object().expect("object"), Some(&base));
        assert_eq!(spec.filter_expression.as_deref(), Some("Amount__c > 1000"));
        assert_eq!(spec.channel, "Orders__chn");
        let meta = json!({"enrichedFields": [{"name": "Industry"}, "Phone"]});
        let spec = member_spec(meta.as_object().expect("object"), Some(&base));
        assert_eq!(spec.enriched_fields, ["Industry", "Phone"]);
    }
}
