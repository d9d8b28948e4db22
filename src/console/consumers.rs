//! The Consumers page (`/console/consumers`) and its actions
//! (`POST /console/consumers/managed`).
//!
//! Owns: what the page shows (the open Subscribe and ManagedSubscribe
//! streams on the caller's org's topics that its grants reach, with credit,
//! deliveries, lag, client address and user; the org's managed
//! subscriptions with state, lag and commit position) and the actions on a
//! managed subscription: RUN, STOP, delete and moving its committed
//! position to EARLIEST, LATEST or a replay id (delete and move only with
//! their confirmation box ticked). Actions need the form's CSRF token and
//! the `admin` grant, and go through the engine's calls (`update_managed`
//! and `delete_managed`, as the Admin API; `move_managed_commit`).
//! Must not: change anything else, or reach another org's streams or
//! subscriptions.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::managed::{ManagedRow, managed_rows, visible};
use super::position::parse_replay_hex;
use super::session::{action_form, viewer};
use super::{State, page, render_failed};
use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::{CommitTarget, ManagedChange, ManagedRef, StreamKind, StreamSnapshot};
use crate::types::{ManagedState, ReplayId};

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

#[derive(askama::Template)]
#[template(path = "consumers.html")]
struct ConsumersPage<'a> {
    version: &'a str,
    backend: &'a str,
    principal: &'a str,
    csrf: String,
    logged_in: bool,
    /// The page, for the navigation.
    current: &'static str,
    /// Whether to link the Faults page.
    faults: bool,
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
        current: "consumers",
        faults: c.ctx.faults.is_some() && v.caller.grants.is_admin(),
        admin: v.caller.grants.is_admin(),
        message,
        streams: stream_rows(&v.caller, &c.ctx.broker.live_streams()),
        managed: managed_rows(&c.ctx.broker, &v.caller),
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
    Move,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "run" => Some(Self::Run),
            "stop" => Some(Self::Stop),
            "delete" => Some(Self::Delete),
            "move" => Some(Self::Move),
            _ => None,
        }
    }
}

/// The position field of the move form: `EARLIEST`, `LATEST` (any case) or
/// a replay id in hex (16 digits).
fn parse_target(s: &str) -> Result<CommitTarget, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("earliest") {
        return Ok(CommitTarget::Earliest);
    }
    if s.eq_ignore_ascii_case("latest") {
        return Ok(CommitTarget::Latest);
    }
    parse_replay_hex(s)
        .map(CommitTarget::Replay)
        .map_err(|_| format!("\"{s}\" is not EARLIEST, LATEST or a replay id in hex"))
}

/// Back to the page with a one-line result.
fn back(message: &str) -> Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("msg", message)
        .finish();
    Redirect::to(&format!("/console/consumers?{q}")).into_response()
}

/// `POST /console/consumers/managed`: RUN, STOP, delete or move
/// (`action`, with `position` for move) the managed subscription `id`.
/// Needs the CSRF token (403), the `admin` grant (403) and, for delete and
/// move, `confirm=yes` (400); answers with a 303 back to the page and its
/// result.
pub(super) async fn action(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (v, fields) = match action_form(&c, &headers, body).await {
        Ok(vf) => vf,
        Err(r) => return r,
    };
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
    let confirmed = fields.get("confirm").map(String::as_str) == Some("yes");
    if matches!(act, Action::Delete | Action::Move) && !confirmed {
        return (
            StatusCode::BAD_REQUEST,
            "this action needs the \"I am sure\" box ticked",
        )
            .into_response();
    }
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
        Action::Move => {
            let to = match parse_target(fields.get("position").map_or("", String::as_str)) {
                Ok(t) => t,
                Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
            };
            broker.move_managed_commit(tenant, &r, to).await.map(|m| {
                let at = m
                    .committed
                    .map_or_else(|| "-".to_owned(), |o| ReplayId::from(o).to_string());
                format!(
                    "{}'s committed position is now {at}.",
                    m.record.developer_name
                )
            })
        }
        Action::Delete => broker
            .delete_managed(tenant, &r)
            .await
            .map(|m| format!("{} deleted.", m.record.developer_name)),
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
    use crate::auth::Grants;
    use crate::broker::StreamOrigin;
    use crate::types::{Offset, ReplayId, TenantId};

    fn stream(topic: &str, kind: StreamKind) -> StreamSnapshot {
        StreamSnapshot {
            id: 1,
            topic: topic.into(),
            kind,
            origin: StreamOrigin {
                tenant: "t".into(),
                peer: Some("127.0.0.1:40000".parse().expect("addr")),
                user: "reader".into(),
                rpc_id: "r".into(),
            },
            credit: 4,
            delivered_events: 9,
            delivered_bytes: 900,
            position: ReplayId::from(Offset(9)),
            lag: 1,
            opened_ms: 1,
            last_delivery_ms: None,
        }
    }

    fn caller(tenant: &str, grants: &[&str]) -> Caller {
        Caller {
            tenant: TenantId::from_stored(tenant),
            principal: "p".into(),
            grants: Grants::parse(grants).expect("grants"),
            user_id: None,
        }
    }

    #[test]
    fn a_caller_sees_its_orgs_streams_its_grants_reach_under_its_names() {
        let org = "00D5e000000AbcdEAC";
        let stored = Namespace::of(org)
            .inward("/event/A__e")
            .expect("stored name");
        let all = vec![
            // The default org's topic: not this org's.
            stream("/event/A__e", StreamKind::Subscribe),
            stream(
                &stored,
                StreamKind::Managed {
                    id: "18x000000000000AAA".into(),
                    developer_name: "Orders".into(),
                },
            ),
            stream(&stored, StreamKind::Subscribe),
        ];
        let rows = stream_rows(&caller(org, &["subscribe:/event/A__e"]), &all);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.topic == "/event/A__e"));
        assert_eq!(
            (rows[0].kind, rows[0].managed.as_str()),
            ("ManagedSubscribe", "Orders")
        );
        assert_eq!((rows[1].credit, rows[1].delivered, rows[1].lag), (4, 9, 1));
        assert_eq!(
            (rows[1].client.as_str(), rows[1].user.as_str()),
            ("127.0.0.1:40000", "reader")
        );
        // Grants that do not reach the topic hide it.
        assert!(stream_rows(&caller(org, &["subscribe:/event/B__e"]), &all).is_empty());
    }

    #[test]
    fn actions_parse_their_words_only() {
        assert_eq!(Action::parse("run"), Some(Action::Run));
        assert_eq!(Action::parse("stop"), Some(Action::Stop));
        assert_eq!(Action::parse("delete"), Some(Action::Delete));
        assert_eq!(Action::parse("move"), Some(Action::Move));
        assert_eq!(Action::parse("RUN"), None);
        assert_eq!(Action::parse(""), None);
    }

    #[test]
    fn positions_are_presets_or_hex_replay_ids() {
        assert_eq!(parse_target(" earliest "), Ok(CommitTarget::Earliest));
        assert_eq!(parse_target("LATEST"), Ok(CommitTarget::Latest));
        let id = ReplayId::from(crate::types::Offset(42));
        assert_eq!(parse_target(&id.to_string()), Ok(CommitTarget::Replay(id)));
        for bad in ["", "x", "2a", "0000000000000g2a", "000000000000002a00"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_replay_id_round_trips_through_its_hex(n in proptest::prelude::any::<u64>()) {
            let id = ReplayId::from(crate::types::Offset(n));
            proptest::prop_assert_eq!(parse_target(&id.to_string()), Ok(CommitTarget::Replay(id)));
        }
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
