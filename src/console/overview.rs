//! The overview page (`/console`) and its live numbers
//! (`/console/events/overview`, Server-Sent Events).
//!
//! Owns: what the overview shows (every topic and channel of the caller's
//! org that its grants reach: retained events, publish rate and its
//! sparkline, bytes on disk, retention, current schema, open streams;
//! managed subscriptions with state and lag; the server's version,
//! backend and uptime) and the event stream's pace. The stream costs one
//! snapshot per tick and buffers nothing: the next snapshot is made only
//! when the previous one was taken by the connection, and it ends when
//! the tab closes (the connection drops the stream), when the session ends
//! or when the server stops. Must not: change anything.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::StreamExt as _;
use serde::Serialize;

use super::managed::{ManagedRow, managed_rows, visible};
use super::rates::{spark_path, sparkline};
use super::session::viewer;
use super::{Console, State, page, render_failed};
use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::BrokerError;

/// How often the live overview sends its numbers.
pub(super) const TICK: Duration = Duration::from_secs(2);

/// One topic (or channel) row.
#[derive(Serialize)]
pub(super) struct TopicRow {
    /// The caller's name for it.
    name: String,
    /// `name` encoded for a query string (pages only).
    #[serde(skip)]
    name_q: String,
    /// `topic` or `channel`.
    kind: &'static str,
    /// Events retained.
    events: u64,
    /// Events per second over about the last minute.
    rate: String,
    /// The sparkline's path (`d`).
    path: String,
    /// The whole sparkline (pages only).
    #[serde(skip)]
    spark: String,
    /// Bytes on disk, for people.
    bytes: String,
    /// Retention, for people.
    retention: String,
    /// The current schema id.
    schema: String,
    /// Open Subscribe and ManagedSubscribe streams.
    subscribers: u32,
}

/// What the overview shows (and the live stream sends).
#[derive(Serialize)]
pub(super) struct Snapshot {
    topics: Vec<TopicRow>,
    managed: Vec<ManagedRow>,
    uptime: String,
}

/// `n` bytes for people (binary units).
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration for people, to the second.
fn human_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The overview's numbers for `caller`.
async fn snapshot(c: &Console, caller: &Caller) -> Result<Snapshot, BrokerError> {
    let broker = &c.ctx.broker;
    if c.rates.is_empty() {
        // No sampler ran yet: one sample now, so rows have a ring.
        c.rates.sample(broker, tokio::time::Instant::now());
    }
    let ns = Namespace::of(&caller.tenant);
    let mut topics = Vec::new();
    for s in broker.describe_all().await? {
        let stored = s.topic.name.as_str();
        let Some(name) = ns.outward(stored) else {
            continue;
        };
        if !visible(caller, name) {
            continue;
        }
        let points = c.rates.points(stored);
        topics.push(TopicRow {
            name: name.to_owned(),
            name_q: form_urlencoded::byte_serialize(name.as_bytes()).collect(),
            kind: if name.ends_with("__chn") {
                "channel"
            } else {
                "topic"
            },
            events: s.event_count(),
            rate: format!("{:.1}/s", s.activity.publish_rate),
            path: spark_path(&points),
            spark: sparkline(&points),
            bytes: human_bytes(s.disk_bytes),
            retention: human_duration(s.topic.retention),
            schema: s.topic.current_schema().to_string(),
            subscribers: s.activity.open_streams,
        });
    }
    let managed = managed_rows(broker, caller);
    let uptime = SystemTime::now()
        .duration_since(c.ctx.server.started)
        .unwrap_or_default();
    Ok(Snapshot {
        topics,
        managed,
        uptime: human_duration(uptime),
    })
}

#[derive(askama::Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    version: &'a str,
    backend: &'a str,
    principal: &'a str,
    csrf: String,
    logged_in: bool,
    /// The page, for the navigation.
    current: &'static str,
    /// Fault injection is on and the viewer may see its rules.
    faults: bool,
    snap: Snapshot,
}

/// `GET /console`: the overview (the login form first without a session).
pub(super) async fn page_handler(axum::extract::State(c): State, headers: HeaderMap) -> Response {
    use askama::Template as _;
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let snap = match snapshot(&c, &v.caller).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console overview failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the topics could not be read",
            )
                .into_response();
        }
    };
    let p = OverviewPage {
        version: env!("CARGO_PKG_VERSION"),
        backend: c.ctx.server.backend,
        principal: &v.caller.principal,
        csrf: v.csrf(&c),
        logged_in: v.session.is_some(),
        current: "overview",
        faults: c.ctx.faults.is_some() && v.caller.grants.is_admin(),
        snap,
    };
    match p.render() {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => render_failed(&e),
    }
}

/// `GET /console/events/overview`: the overview's numbers as one
/// `overview` event (JSON) every [`TICK`], the first at once.
pub(super) async fn events(axum::extract::State(c): State, headers: HeaderMap) -> Response {
    if viewer(&c, &headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    }
    let stop = c.ctx.stop.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream =
        futures_util::stream::unfold((c, headers, tick), |(c, headers, mut tick)| async move {
            tick.tick().await;
            // A session that ended (logout, expiry) ends the stream.
            let v = viewer(&c, &headers)?;
            let snap = snapshot(&c, &v.caller).await.ok()?;
            let json = serde_json::to_string(&snap).ok()?;
            let event = Event::default().event("overview").data(json);
            Some((Ok::<_, Infallible>(event), (c, headers, tick)))
        })
        .take_until(stop.cancelled_owned());
    let mut r = Sse::new(stream).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn durations_are_whole_seconds() {
        assert_eq!(human_duration(Duration::from_millis(3_723_400)), "1h 2m 3s");
    }
}
