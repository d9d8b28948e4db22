//! The topic page (`/console/topic?name=…`) and its publish form
//! (`POST /console/topic/publish`).
//!
//! Owns: what a topic page shows (its numbers; its schema versions as
//! indented JSON with whether each can read the events of the one before;
//! a page of decoded events from EARLIEST, LATEST, a replay id or a time;
//! the publish form with its errors in place) and who sees what: the page
//! needs any grant on the topic, its events a subscribe grant, the form a
//! publish grant (a post without one is refused). Channels and change
//! event topics are read only, as in Salesforce. Must not: publish around
//! the engine's checks and budgets, or read more than one page of events
//! per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;

use super::decoded::EventView;
use super::overview::human_bytes;
use super::position::Position;
use super::session::{Viewer, action_form, viewer};
use super::{Console, State, page, render_failed};
use crate::api::namespace::Namespace;
use crate::broker::{Broker, BrokerError, PublishEvent, Topic};
use crate::schema::json::{JsonDefaults, JsonError};
use crate::types::{Offset, ReplayId};

/// The most events one tick of the live tail (tail.rs) sends.
pub(super) const TAIL_MAX: usize = 20;

/// Events per browse page unless asked otherwise.
const DEFAULT_COUNT: usize = 25;

/// The most events one browse page shows.
pub(super) const MAX_COUNT: usize = 200;

/// The largest JSON the publish form takes (the engine's event cap
/// applies to the encoded event as for any publish).
const MAX_PUBLISH_TEXT: usize = 1024 * 1024;

/// A topic a viewer asked for, and what it may do with it.
pub(super) struct Target {
    /// The viewer's name for it.
    pub(super) name: String,
    /// The engine's (stored) name.
    pub(super) stored: String,
    pub(super) topic: Arc<Topic>,
    /// May read its events (subscribe grant or admin).
    pub(super) can_read: bool,
    /// May publish to it (publish grant, and a topic that takes publishes).
    pub(super) can_publish: bool,
}

/// Whether `name` is a topic people publish to: a platform event, not a
/// channel (`__chn`) or change events (published by record changes).
fn takes_publishes(name: &str) -> bool {
    name.starts_with("/event/") && !name.ends_with("__chn")
}

/// A topic that is not there for the viewer: answered with a 404, so
/// topics of other orgs and topics out of reach look the same.
pub(super) struct NotVisible(String);

impl IntoResponse for NotVisible {
    fn into_response(self) -> Response {
        (
            StatusCode::NOT_FOUND,
            format!("there is no topic {:?} that you may see", self.0),
        )
            .into_response()
    }
}

/// Why a request for a topic's events is refused.
pub(super) enum Refused {
    /// No session: `401`.
    LoggedOut,
    /// Not a topic whose events the viewer may read: `404`.
    NotReadable(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::LoggedOut => (StatusCode::UNAUTHORIZED, "log in first").into_response(),
            Refused::NotReadable(name) => NotVisible(name).into_response(),
        }
    }
}

/// The topic named by the query's `name` whose events the request's
/// viewer may read (a session and a subscribe grant), and the query.
///
/// # Errors
/// [`Refused`] for no session or a topic out of reach.
pub(super) fn readable(
    c: &Console,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(Target, HashMap<String, String>), Refused> {
    let v = viewer(c, headers).ok_or(Refused::LoggedOut)?;
    let q = query_map(query);
    let name = q.get("name").map_or("", String::as_str);
    match target(c, &v, name) {
        Ok(t) if t.can_read => Ok((t, q)),
        _ => Err(Refused::NotReadable(name.to_owned())),
    }
}

/// The topic `name` (the viewer's name for it) when the viewer has any
/// grant on it.
pub(super) fn target(c: &Console, v: &Viewer, name: &str) -> Result<Target, NotVisible> {
    let not_found = || NotVisible(name.to_owned());
    let g = &v.caller.grants;
    let (read, publish) = (
        g.is_admin() || g.can_subscribe(name),
        g.is_admin() || g.can_publish(name),
    );
    if !read && !publish {
        return Err(not_found());
    }
    let stored = Namespace::of(&v.caller.tenant)
        .inward(name)
        .map_err(|_| not_found())?;
    let topic = c.ctx.broker.topic(&stored).map_err(|_| not_found())?;
    Ok(Target {
        name: name.to_owned(),
        stored,
        topic,
        can_read: read,
        can_publish: publish && takes_publishes(name),
    })
}

/// One schema version as the page shows it.
pub(super) struct SchemaView {
    id: String,
    record: String,
    current: bool,
    /// Whether a reader with this schema reads the events of the version
    /// before it, in words.
    compat: String,
    compat_ok: bool,
    json: String,
}

/// Every schema of `topic`, newest first, each checked against the one
/// before it (Avro schema resolution).
fn schema_views(c: &Console, v: &Viewer, topic: &Topic) -> Vec<SchemaView> {
    let broker = &c.ctx.broker;
    let parsed: Vec<_> = topic
        .schema_ids
        .iter()
        .map(|id| broker.schema(id.as_str()).ok())
        .collect();
    let mut out: Vec<SchemaView> = topic
        .schema_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let text = broker
                .schema_text(&v.caller.tenant, id.as_str())
                .map(|t| t.to_string())
                .unwrap_or_default();
            let json = serde_json::from_str::<serde_json::Value>(&text)
                .and_then(|j| serde_json::to_string_pretty(&j))
                .unwrap_or(text);
            let this = parsed[i].as_deref();
            let before = i.checked_sub(1).and_then(|p| parsed[p].as_deref());
            let (compat, compat_ok) = match (this, before) {
                (_, None) if i == 0 => ("first version".to_owned(), true),
                (Some(new), Some(old)) if new.record_name() != old.record_name() => (
                    format!(
                        "another entity ({}; this topic carries several)",
                        new.record_name()
                    ),
                    true,
                ),
                (Some(new), Some(old)) => match crate::schema::compat::check_backward(new, old) {
                    Ok(()) => ("reads the events of the version before".to_owned(), true),
                    Err(e) => (format!("cannot read the version before: {e}"), false),
                },
                _ => ("unknown (a schema is missing)".to_owned(), false),
            };
            SchemaView {
                id: id.to_string(),
                record: this.map(|s| s.record_name().to_owned()).unwrap_or_default(),
                current: i + 1 == topic.schema_ids.len(),
                compat,
                compat_ok,
                json,
            }
        })
        .collect();
    out.reverse();
    out
}

/// A page of events from `pos`: the events, where the next page starts
/// (when there are more), and a note for a position that is not retained.
pub(super) struct Browse {
    pub(super) events: Vec<EventView>,
    pub(super) next: Option<String>,
    pub(super) note: Option<String>,
}

/// The offset to read after for `pos`, and a note when `pos` is outside
/// what is retained.
pub(super) async fn start_of(
    broker: &Broker,
    topic: &Topic,
    pos: Position,
    count: usize,
) -> Result<(u64, Option<String>), BrokerError> {
    let b = broker.bounds(topic.id)?;
    Ok(match pos {
        Position::Earliest => (b.trimmed.0, None),
        Position::Latest => (
            b.latest.0.saturating_sub(count as u64).max(b.trimmed.0),
            None,
        ),
        Position::Replay(o) if o.0 <= b.trimmed.0 => (
            b.trimmed.0,
            Some(format!(
                "{} is no longer retained; showing the earliest retained events",
                ReplayId::from(o)
            )),
        ),
        Position::Replay(o) if o.0 > b.latest.0 => (
            b.latest.0,
            Some(format!(
                "{} is past the newest event ({})",
                ReplayId::from(o),
                ReplayId::from(b.latest)
            )),
        ),
        Position::Replay(o) => (o.0 - 1, None),
        Position::Time(ms) => (broker.offset_at_time(topic, ms).await?, None),
    })
}

/// Reads one page of `count` events from `pos`.
async fn browse(
    broker: &Broker,
    topic: &Topic,
    pos: Position,
    count: usize,
) -> Result<Browse, BrokerError> {
    let (after, note) = start_of(broker, topic, pos, count).await?;
    let stored = broker.read_page(topic, after, count).await?;
    let latest = broker.bounds(topic.id)?.latest;
    let next = stored
        .last()
        .filter(|e| e.offset < latest)
        .map(|e| ReplayId::from(Offset(e.offset.0 + 1)).to_string());
    Ok(Browse {
        events: stored.iter().map(|e| EventView::of(broker, e)).collect(),
        next,
        note,
    })
}

/// The publish form's state when the page is shown again after a post.
#[derive(Default)]
struct PublishForm {
    text: String,
    error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "topic.html")]
struct TopicPage<'a> {
    version: &'a str,
    backend: &'a str,
    principal: &'a str,
    csrf: String,
    logged_in: bool,
    /// The page, for the navigation.
    current: &'static str,
    /// Whether to link the Faults page.
    faults: bool,
    message: Option<String>,
    name: String,
    /// `name` encoded for a query string.
    name_q: String,
    kind: &'static str,
    events: u64,
    rate: String,
    bytes: String,
    retention: String,
    earliest: String,
    latest: String,
    schemas: Vec<SchemaView>,
    can_read: bool,
    from: String,
    count: usize,
    browse: Option<Browse>,
    browse_error: Option<String>,
    can_publish: bool,
    publish_placeholder: String,
    publish: PublishForm,
    tail_max: usize,
}

/// The query's fields.
pub(super) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Renders the page of `t` for `v`, with `q` (from, count, msg) and the
/// publish form's state.
async fn render(
    c: &Console,
    v: &Viewer,
    t: &Target,
    q: &HashMap<String, String>,
    publish: PublishForm,
    status: StatusCode,
) -> Response {
    use askama::Template as _;
    let broker = &c.ctx.broker;
    let summary = match broker.describe(&t.stored).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, topic = %t.stored, "console topic page failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the topic could not be read",
            )
                .into_response();
        }
    };
    let from = q.get("from").cloned().unwrap_or_default();
    let count = q
        .get("count")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_COUNT)
        .clamp(1, MAX_COUNT);
    let (browse_result, browse_error) = if t.can_read {
        match Position::parse(&from, SystemTime::now()) {
            Ok(pos) => match browse(broker, &t.topic, pos, count).await {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(format!("the events could not be read: {e}"))),
            },
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let fields = broker
        .schema(t.topic.current_schema().as_str())
        .map(|s| s.field_names())
        .unwrap_or_default();
    let p = TopicPage {
        version: env!("CARGO_PKG_VERSION"),
        backend: c.ctx.server.backend,
        principal: &v.caller.principal,
        csrf: v.csrf(c),
        logged_in: v.session.is_some(),
        current: "topic",
        faults: c.ctx.faults.is_some() && v.caller.grants.is_admin(),
        message: q.get("msg").map(|m| m.chars().take(200).collect()),
        name: t.name.clone(),
        name_q: form_urlencoded::byte_serialize(t.name.as_bytes()).collect(),
        kind: if t.name.ends_with("__chn") {
            "channel"
        } else {
            "topic"
        },
        events: summary.event_count(),
        rate: format!("{:.1}/s", summary.activity.publish_rate),
        bytes: human_bytes(summary.disk_bytes),
        retention: humantime::format_duration(summary.topic.retention).to_string(),
        earliest: if summary.event_count() == 0 {
            "-".to_owned()
        } else {
            ReplayId::from(Offset(summary.bounds.trimmed.0 + 1)).to_string()
        },
        latest: if summary.event_count() == 0 {
            "-".to_owned()
        } else {
            ReplayId::from(summary.bounds.latest).to_string()
        },
        schemas: schema_views(c, v, &t.topic),
        can_read: t.can_read,
        from,
        count,
        browse: browse_result,
        browse_error,
        can_publish: t.can_publish,
        publish_placeholder: placeholder(&fields),
        publish,
        tail_max: TAIL_MAX,
    };
    match p.render() {
        Ok(html) => page(status, html),
        Err(e) => render_failed(&e),
    }
}

/// The publish box's hint: the current schema's fields, without the two
/// the server fills.
fn placeholder(fields: &[String]) -> String {
    let shown: Vec<String> = fields
        .iter()
        .filter(|f| !matches!(f.as_str(), "CreatedDate" | "CreatedById"))
        .map(|f| format!("\"{f}\": …"))
        .collect();
    format!("{{{}}}", shown.join(", "))
}

/// `GET /console/topic?name=…[&from=…][&count=…]`.
pub(super) async fn page_handler(
    axum::extract::State(c): State,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let q = query_map(query.as_deref());
    let t = match target(&c, &v, q.get("name").map_or("", String::as_str)) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    render(&c, &v, &t, &q, PublishForm::default(), StatusCode::OK).await
}

/// Why a publish from the form failed, in words for the form.
fn publish_error(e: &JsonError) -> String {
    match e {
        JsonError::MissingField { field } => format!("Required field {field} is missing."),
        other => format!("{other}."),
    }
}

/// `POST /console/topic/publish` (`csrf`, `name`, `payload`): publishes
/// one event from its JSON form and goes back to the page (303); invalid
/// JSON or a refused event shows the page again with the error beside the
/// text (400). Needs the CSRF token (403) and a publish grant (403).
pub(super) async fn publish(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (v, fields) = match action_form(&c, &headers, body).await {
        Ok(vf) => vf,
        Err(r) => return r,
    };
    let t = match target(&c, &v, fields.get("name").map_or("", String::as_str)) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !t.can_publish {
        let why = if takes_publishes(&t.name) {
            format!("publishing to {} needs a publish grant for it", t.name)
        } else {
            format!(
                "{} is read only: events reach it from their sources",
                t.name
            )
        };
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let text = fields.get("payload").cloned().unwrap_or_default();
    let q = HashMap::from([("from".to_owned(), "LATEST".to_owned())]);
    let again = |error: String| PublishForm {
        text: text.clone(),
        error: Some(error),
    };
    match publish_one(&c, &v, &t, &text).await {
        Ok(replay) => {
            tracing::info!(user = %v.caller.principal, topic = %t.name, replay_id = %replay, "console publish");
            let back = form_urlencoded::Serializer::new(String::new())
                .append_pair("name", &t.name)
                .append_pair("from", "LATEST")
                .append_pair("msg", &format!("Published event {replay}."))
                .finish();
            Redirect::to(&format!("/console/topic?{back}")).into_response()
        }
        Err(error) => render(&c, &v, &t, &q, again(error), StatusCode::BAD_REQUEST).await,
    }
}

/// Encodes `text` with the topic's current schema and publishes it; the
/// replay id, or what a person should fix.
async fn publish_one(c: &Console, v: &Viewer, t: &Target, text: &str) -> Result<String, String> {
    if text.len() > MAX_PUBLISH_TEXT {
        return Err(format!(
            "The event is {} bytes of JSON; the form takes at most {MAX_PUBLISH_TEXT}.",
            text.len()
        ));
    }
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("This is not JSON: {e}."))?;
    if !json.is_object() {
        return Err("The event must be a JSON object of its fields.".to_owned());
    }
    let broker = &c.ctx.broker;
    let schema_id = t.topic.current_schema().as_str().to_owned();
    let schema = broker
        .schema(&schema_id)
        .map_err(|e| format!("The topic's schema could not be loaded: {e}."))?;
    let defaults = JsonDefaults {
        created_date_ms: SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        created_by_id: crate::api::rest::user_id(&v.caller),
    };
    let payload = schema
        .encode_json(&json, &defaults)
        .map_err(|e| publish_error(&e))?;
    c.ctx
        .limits
        .charge_publish(&v.caller.tenant, 1, payload.len())
        .map_err(|hit| format!("{hit}."))?;
    let event = PublishEvent {
        id: String::new(),
        schema_id,
        payload: Bytes::from(payload),
        headers: Vec::new(),
    };
    let receipt = broker
        .publish(&t.stored, vec![event])
        .await
        .map_err(|e| format!("The event was not published: {e}."))?;
    match receipt.outcomes.into_iter().next().map(|o| o.result) {
        Some(Ok(replay)) => Ok(replay.to_string()),
        Some(Err(msg)) => Err(format!("The event was refused: {msg}")),
        None => Err("The event was not published.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_platform_event_topics_take_publishes() {
        assert!(takes_publishes("/event/Order_Event__e"));
        assert!(!takes_publishes("/event/Orders__chn"));
        assert!(!takes_publishes("/data/AccountChangeEvent"));
        assert!(!takes_publishes("/data/ChangeEvents"));
    }

    #[test]
    fn the_hint_names_the_fields_the_publisher_fills() {
        let fields =
            ["CreatedDate", "CreatedById", "Order_Number__c", "Amount__c"].map(str::to_owned);
        assert_eq!(
            placeholder(&fields),
            "{\"Order_Number__c\": …, \"Amount__c\": …}"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let e = JsonError::MissingField {
            field: "Order_Number__c".into(),
        };
        assert_eq!(
            publish_error(&e),
            "Required field Order_Number__c is missing."
        );
    }
}
