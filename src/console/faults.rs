//! The Faults page (`/console/faults`): the fault rules in force with how
//! often each fired, and forms to add, remove and clear them.
//!
//! Owns: showing a rule in a line and reading the add form into a
//! [`RuleSpec`]. Only with fault injection on (`404` otherwise) and only for
//! the `admin` grant (`403`), as the Admin API's `Faults` service. Must
//! not: check rules itself (`Rule::from_spec` does) or carry them out.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{action_form, viewer};
use super::{State, page, render_failed};
use crate::faults::{FaultTable, Rule, RuleSpec, RuleView};

/// One rule as a line of the table.
struct RuleRow {
    id: String,
    action: String,
    matches: String,
    limit: String,
    fired: u64,
    active: bool,
}

impl RuleRow {
    fn of(v: RuleView) -> Self {
        let s = &v.spec;
        let mut action = s.action.clone();
        let details: Vec<String> = [
            s.status.as_ref().map(|x| format!("status {x}")),
            s.error_code.as_ref().map(|x| format!("code {x}")),
            s.after_events.map(|n| format!("after {n} events")),
            s.duration.as_ref().map(|d| format!("for {d}")),
            s.keepalives
                .filter(|k| *k)
                .map(|_| "keepalives too".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !details.is_empty() {
            action = format!("{action} ({})", details.join(", "));
        }
        let matches: Vec<String> = [
            s.rpc.as_ref().map(|x| format!("rpc {x}")),
            s.topic.as_ref().map(|x| format!("topic {x}")),
            s.tenant.as_ref().map(|x| format!("tenant {x}")),
            s.client.as_ref().map(|x| format!("client {x}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let limit: Vec<String> = [
            s.times.map(|n| format!("{n} times")),
            s.probability.map(|p| format!("p = {p}")),
            v.remaining.map(|d| {
                format!(
                    "{} left",
                    humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        RuleRow {
            id: v.id,
            action,
            matches: if matches.is_empty() {
                "every call".to_owned()
            } else {
                matches.join(", ")
            },
            limit: if limit.is_empty() {
                "always".to_owned()
            } else {
                limit.join(", ")
            },
            fired: v.fired,
            active: v.active,
        }
    }
}

#[derive(askama::Template)]
#[template(path = "faults.html")]
struct FaultsPage<'a> {
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
    error: Option<String>,
    rules: Vec<RuleRow>,
}

/// The add form's fields as a rule spec (empty fields left out).
///
/// # Errors
/// A sentence for a number field that is not a number.
fn spec_of(form: &HashMap<String, String>) -> Result<RuleSpec, String> {
    let text = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let number = |k: &str| -> Result<Option<u64>, String> {
        text(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k} \"{v}\" is not a whole number"))
            })
            .transpose()
    };
    Ok(RuleSpec {
        action: text("action").unwrap_or_default(),
        tenant: text("tenant"),
        rpc: text("rpc"),
        topic: text("topic"),
        client: text("client"),
        status: text("status"),
        error_code: text("error_code"),
        message: text("message"),
        after_events: number("after_events")?,
        duration: text("duration"),
        keepalives: text("keepalives").map(|v| v == "on" || v == "true"),
        times: number("times")?,
        probability: text("probability")
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("probability \"{v}\" is not a number"))
            })
            .transpose()?,
        active_for: text("for"),
    })
}

/// Why the page is not there for a viewer.
enum Closed {
    /// Fault injection is off: `404`.
    Off,
    /// Not an admin: `403`.
    NotAdmin,
}

impl IntoResponse for Closed {
    fn into_response(self) -> Response {
        match self {
            Closed::Off => (
                StatusCode::NOT_FOUND,
                "fault injection is off: start the server with --fault-injection",
            )
                .into_response(),
            Closed::NotAdmin => {
                (StatusCode::FORBIDDEN, "fault rules need the admin grant").into_response()
            }
        }
    }
}

/// The table, when the page is there for this viewer.
fn table_for(c: &super::Console, admin: bool) -> Result<&std::sync::Arc<FaultTable>, Closed> {
    let table = c.ctx.faults.as_ref().ok_or(Closed::Off)?;
    if !admin {
        return Err(Closed::NotAdmin);
    }
    Ok(table)
}

/// `GET /console/faults[?msg=…]`.
pub(super) async fn page_handler(
    axum::extract::State(c): State,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let table = match table_for(&c, v.caller.grants.is_admin()) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let q: HashMap<String, String> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    render(&c, &v, table, q.get("msg").cloned(), None, StatusCode::OK)
}

fn render(
    c: &super::Console,
    v: &super::session::Viewer,
    table: &FaultTable,
    message: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    use askama::Template as _;
    let p = FaultsPage {
        version: env!("CARGO_PKG_VERSION"),
        backend: c.ctx.server.backend,
        principal: &v.caller.principal,
        csrf: v.csrf(c),
        logged_in: v.session.is_some(),
        current: "faults",
        faults: true,
        message: message.map(|m| m.chars().take(200).collect()),
        error,
        rules: table
            .list(Instant::now())
            .into_iter()
            .map(RuleRow::of)
            .collect(),
    };
    match p.render() {
        Ok(html) => page(status, html),
        Err(e) => render_failed(&e),
    }
}

/// `POST /console/faults` (`op` = `add` with the rule's fields, `remove`
/// with `id`, or `clear`): back to the page (303) with the result; a rule
/// that is not valid shows the page again with the error (400).
pub(super) async fn action(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (v, fields) = match action_form(&c, &headers, body).await {
        Ok(vf) => vf,
        Err(r) => return r,
    };
    let table = match table_for(&c, v.caller.grants.is_admin()) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let message = match fields.get("op").map(String::as_str) {
        Some("add") => match spec_of(&fields)
            .and_then(|s| Rule::from_spec(s).map_err(|e| e.0))
            .and_then(|rule| table.add(rule, Instant::now()).map_err(|e| e.0))
        {
            Ok(id) => {
                tracing::warn!(user = %v.caller.principal, rule = %id, "console added a fault rule");
                format!("Rule {id} added.")
            }
            Err(e) => {
                return render(&c, &v, table, None, Some(e), StatusCode::BAD_REQUEST);
            }
        },
        Some("remove") => {
            let id = fields.get("id").map_or("", |s| s.trim());
            if table.remove(id) {
                format!("Rule {id} removed.")
            } else {
                format!("There is no rule {id}.")
            }
        }
        Some("clear") => format!("{} rules removed.", table.clear()),
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("msg", &message)
        .finish();
    Redirect::to(&format!("/console/faults?{q}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_add_form_reads_into_a_spec_without_empty_fields() {
        let form: HashMap<String, String> = [
            ("action", "fail"),
            ("rpc", "Subscribe"),
            ("topic", " "),
            ("after_events", "3"),
            ("times", "1"),
            ("for", "10m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let spec = spec_of(&form).expect("valid");
        assert_eq!(spec.topic, None);
        assert_eq!(spec.after_events, Some(3));
        assert_eq!(spec.active_for.as_deref(), Some("10m"));
        Rule::from_spec(spec).expect("a rule");
        let mut bad = form;
        bad.insert("times".into(), "twice".into());
        assert!(spec_of(&bad).expect_err("not a number").contains("times"));
    }

    #[test]
    fn a_rule_reads_as_one_line() {
        let table = FaultTable::new(1);
        let spec = RuleSpec {
            action: "fail".into(),
            rpc: Some("Subscribe".into()),
            after_events: Some(2),
            times: Some(1),
            ..RuleSpec::default()
        };
        table
            .add(Rule::from_spec(spec).expect("valid"), Instant::now())
            .expect("room");
        let row = RuleRow::of(table.list(Instant::now()).remove(0));
        assert_eq!(row.action, "fail (after 2 events)");
        assert_eq!(row.matches, "rpc Subscribe");
        assert_eq!(row.limit, "1 times");
    }
}
