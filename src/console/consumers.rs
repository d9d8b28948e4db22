//! The Consumers page (`/console/consumers`) and its actions
//! (`POST /console/consumers/managed`).
//!
//! Owns: what the page shows (the open Subscribe and ManagedSubscribe
//! streams on the caller's org's topics that its grants reach, with credit,
//! deliveries, lag, client address and user; the org's managed
//! subscriptions with state, lag and commit position) and the actions on a
//! managed subscription: RUN, STOP and delete (delete only with its
//! confirmation box ticked). Actions need the form's CSRF token and the
//! `admin` grant, and go through the broker calls the Admin API uses
//! (`update_managed`, `delete_managed`). Moving a committed position is not
//! offered: the broker has no call for it yet (only a stream commits).
//! Must not: change anything else, or reach another org's streams or
//! subscriptions.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{forbidden, form, viewer};
use super::{Console, State, page, render_failed};
use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::{ManagedChange, ManagedRef, StreamKind, StreamSnapshot};
use crate::types::ManagedState;

/// One open stream.
pub(super) struct StreamRow {
    topic: String,
    kind: &'static str,
    /// The managed subscription's developer name (ManagedSubscribe only).
    managed: String,
    credit: u64,
    delivered: u64,
    lag: u64,
    client: String,
    user: String,
}

/// One managed subscription.
pub(super) struct ManagedRow {
    id: String,
    name: String,
    topic: String,
    state: &'static str,
    lag: String,
    active: bool,
    /// The committed replay position (`-` without a usable commit).
    commit: String,
}

/// Whether `caller` may see topic `name` (its own name for it).
fn visible(caller: &Caller, name: &str) -> bool {
    let g = &caller.grants;
    g.is_admin() || g.can_subscribe(name) || g.can_publish(name)
}

/// The rows of the streams in `all` that `caller` may see, under its names.
fn stream_rows(caller: &Caller, all: &[StreamSnapshot]) -> Vec<StreamRow> {
    let ns = Namespace::of(&caller.tenant);
    all.iter()
        .filter_map(|s| {
            let topic = ns.outward(&s.topic)?;
            if !visible(caller, topic) {
                return None;
            }
            let (kind, managed) = match &s.kind {
                StreamKind::Subscribe => ("Subscribe", String::new()),
                StreamKind::Managed { developer_name, .. } => {
                    ("ManagedSubscribe", developer_name.clone())
                }
            };
            Some(StreamRow {
                topic: topic.to_owned(),
                kind,
                managed,
                credit: s.credit,
                delivered: s.delivered_events,
                lag: s.lag,
                client: s
                    .origin
                    .peer
                    .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                user: if s.origin.user.is_empty() {
                    "-".to_owned()
                } else {
                    s.origin.user.clone()
                },
            })
        })
        .collect()
}

/// The caller's org's managed subscriptions on topics it may see.
fn managed_rows(c: &Console, caller: &Caller) -> Vec<ManagedRow> {
    let ns = Namespace::of(&caller.tenant);
    c.ctx
        .broker
        .list_managed(&caller.tenant)
        .iter()
        .filter_map(|v| {
            let r = &v.record;
            let topic = ns.outward(&r.topic)?;
            visible(caller, topic).then(|| ManagedRow {
                id: r.id.clone(),
                name: r.developer_name.clone(),
                topic: topic.to_owned(),
                state: match r.state {
                    ManagedState::Run => "RUN",
                    ManagedState::Stop => "STOP",
                },
                lag: v.lag().map_or_else(|| "-".to_owned(), |l| l.to_string()),
                active: v.active,
                commit: v
                    .committed
                    .map_or_else(|| "-".to_owned(), |o| o.0.to_string()),
            })
        })
        .collect()
}

#[derive(askama::Template)]
#[template(path = "consumers.html")]
struct ConsumersPage<'a> {
    version: &'a str,
    backend: &'a str,
    principal: &'a str,
    csrf: String,
    logged_in: bool,
    admin: bool,
    message: Option<String>,
    streams: Vec<StreamRow>,
    managed: Vec<ManagedRow>,
}

/// `GET /console/consumers`: the streams and managed subscriptions (the
/// login form first without a session); `?msg=` is the last action's
/// result.
pub(super) async fn page_handler(
    axum::extract::State(c): State,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    use askama::Template as _;
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let message = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "msg")
            .map(|(_, m)| m.chars().take(200).collect())
    });
    let p = ConsumersPage {
        version: env!("CARGO_PKG_VERSION"),
        backend: c.ctx.server.backend,
        principal: &v.caller.principal,
        csrf: v.csrf(&c),
        logged_in: v.session.is_some(),
        admin: v.caller.grants.is_admin(),
        message,
        streams: stream_rows(&v.caller, &c.ctx.broker.live_streams()),
        managed: managed_rows(&c, &v.caller),
    };
    match p.render() {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => render_failed(&e),
    }
}

/// A managed-subscription action of the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Run,
    Stop,
    Delete,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "run" => Some(Self::Run),
            "stop" => Some(Self::Stop),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Back to the page with a one-line result.
fn back(message: &str) -> Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("msg", message)
        .finish();
    Redirect::to(&format!("/console/consumers?{q}")).into_response()
}

/// `POST /console/consumers/managed`: RUN, STOP or delete (`action`) the
/// managed subscription `id`. Needs the CSRF token (403), the `admin`
/// grant (403) and, for delete, `confirm=yes` (400); answers with a 303
/// back to the page and its result.
pub(super) async fn action(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let fields = match form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !v.csrf_ok(&c, &fields) {
        return forbidden();
    }
    if !v.caller.grants.is_admin() {
        return (
            StatusCode::FORBIDDEN,
            "changing managed subscriptions needs the admin grant",
        )
            .into_response();
    }
    let Some(act) = fields.get("action").and_then(|a| Action::parse(a)) else {
        return (StatusCode::BAD_REQUEST, "unknown action").into_response();
    };
    let id = fields.get("id").map_or("", |s| s.trim());
    if id.is_empty() {
        return (StatusCode::BAD_REQUEST, "no subscription named").into_response();
    }
    let r = ManagedRef::Id(id.to_owned());
    let broker = &c.ctx.broker;
    let tenant = &v.caller.tenant;
    let result = match act {
        Action::Run | Action::Stop => {
            let state = if act == Action::Run {
                ManagedState::Run
            } else {
                ManagedState::Stop
            };
            let change = ManagedChange {
                state: Some(state),
                ..ManagedChange::default()
            };
            broker
                .update_managed(tenant, &r, change)
                .await
                .map(|m| format!("{} is now {}.", m.record.developer_name, m.record.state))
        }
        Action::Delete => {
            if fields.get("confirm").map(String::as_str) != Some("yes") {
                return (
                    StatusCode::BAD_REQUEST,
                    "deleting needs the \"I am sure\" box ticked",
                )
                    .into_response();
            }
            broker
                .delete_managed(tenant, &r)
                .await
                .map(|m| format!("{} deleted.", m.record.developer_name))
        }
    };
    match result {
        Ok(msg) => {
            tracing::info!(user = %v.caller.principal, subscription = %id, action = ?act, "console managed subscription action");
            back(&msg)
        }
        Err(e) => back(&format!("Failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_their_words_only() {
        assert_eq!(Action::parse("run"), Some(Action::Run));
        assert_eq!(Action::parse("stop"), Some(Action::Stop));
        assert_eq!(Action::parse("delete"), Some(Action::Delete));
        assert_eq!(Action::parse("RUN"), None);
        assert_eq!(Action::parse(""), None);
    }

    #[test]
    fn the_result_goes_back_in_the_query() {
        let r = back("A b&c");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()
                .get(axum::http::header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/console/consumers?msg=A+b%26c")
        );
    }
}
