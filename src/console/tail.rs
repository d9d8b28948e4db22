//! A topic's live tail (`/console/events/tail?name=…`, Server-Sent Events)
//! and the export of a range as JSON lines (`/console/topic/export`).
//!
//! Owns: the tail's sampling and the export's paging, which keep a tab's
//! cost bounded whatever the publish rate. The tail sends, once per
//! [`TICK`] at most, the newest events since the last tick, at most
//! [`TAIL_MAX`] of them, and says how many it skipped; the next batch is
//! read only once the connection took the previous one, so a slow tab
//! slows its own tail and buffers nothing. The export reads one page at a
//! time as the connection takes the body, up to the newest event when the
//! export began. Both end when the connection drops, the session ends or
//! the server stops. Must not: buffer events between ticks or pages, or
//! count as a subscriber.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Serialize;

use super::State;
use super::decoded::{EventView, export_line};
use super::position::Position;
use super::session::viewer;
use super::topic::{TAIL_MAX, readable, start_of};
use crate::types::{Offset, ReplayId};

/// How often the tail looks for new events.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// Events per export page read.
const EXPORT_PAGE: usize = 500;

/// One tick's batch.
#[derive(Serialize)]
struct Batch {
    /// The newest events since the last batch, oldest first.
    events: Vec<EventView>,
    /// Events published since the last batch that were not sent.
    skipped: u64,
    /// The newest replay id (hex), or `-` for an empty topic.
    latest: String,
}

/// What a tick reads: after `seen`, the newest [`TAIL_MAX`] events up to
/// `latest`; the offset to read after, and how many are skipped.
fn window(seen: u64, latest: u64) -> (u64, u64) {
    let new = latest.saturating_sub(seen);
    let skipped = new.saturating_sub(TAIL_MAX as u64);
    (seen + skipped, skipped)
}

/// `GET /console/events/tail?name=…`: `tail` events (JSON [`Batch`]),
/// the first with the last few events at once, then whenever new events
/// were committed, at most once per [`TICK`]. Needs a session (401) and a
/// subscribe grant on the topic (404).
pub(super) async fn events(
    axum::extract::State(c): State,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let (t, _) = match readable(&c, &headers, query.as_deref()) {
        Ok(tq) => tq,
        Err(r) => return r.into_response(),
    };
    let Ok(bounds) = c.ctx.broker.bounds(t.topic.id) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the topic could not be read",
        )
            .into_response();
    };
    // The first batch shows the last few events.
    let seen = bounds.latest.0.saturating_sub(5).max(bounds.trimmed.0);
    let stop = c.ctx.stop.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (c, headers, t, tick, seen, true);
    let stream = futures_util::stream::unfold(
        state,
        |(c, headers, t, mut tick, mut seen, mut first)| async move {
            loop {
                tick.tick().await;
                // A session that ended (logout, expiry) ends the tail.
                viewer(&c, &headers)?;
                let broker = &c.ctx.broker;
                let bounds = broker.bounds(t.topic.id).ok()?;
                let latest = bounds.latest.0;
                if latest <= seen && !first {
                    continue;
                }
                first = false;
                let (after, skipped) = window(seen.max(bounds.trimmed.0), latest);
                let stored = broker.read_page(&t.topic, after, TAIL_MAX).await.ok()?;
                seen = stored.last().map_or(latest, |e| e.offset.0);
                let batch = Batch {
                    events: stored.iter().map(|e| EventView::of(broker, e)).collect(),
                    skipped,
                    latest: if latest == 0 {
                        "-".to_owned()
                    } else {
                        ReplayId::from(Offset(latest)).to_string()
                    },
                };
                let json = serde_json::to_string(&batch).ok()?;
                let event = Event::default().event("tail").data(json);
                return Some((
                    Ok::<_, Infallible>(event),
                    (c, headers, t, tick, seen, first),
                ));
            }
        },
    )
    .take_until(stop.cancelled_owned());
    let mut r = Sse::new(stream).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /console/topic/export?name=…&from=…[&to=…]`: the events from
/// `from` (EARLIEST, a replay id or a time) through `to` (LATEST by
/// default, a replay id or a time; inclusive) as JSON lines, one
/// `eventbus subscribe -o json` object per event plus its commit `time`.
/// Needs a session (401) and a subscribe grant (404); a position that does
/// not parse is a 400.
pub(super) async fn export(
    axum::extract::State(c): State,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let (t, q) = match readable(&c, &headers, query.as_deref()) {
        Ok(tq) => tq,
        Err(r) => return r.into_response(),
    };
    let now = SystemTime::now();
    let parse = |key: &str, default: &str| {
        Position::parse(q.get(key).map_or(default, String::as_str), now)
            .map_err(|e| format!("{key}: {e}"))
    };
    let (from, to) = match (parse("from", "EARLIEST"), parse("to", "LATEST")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let broker = c.ctx.broker.clone();
    let latest = match broker.bounds(t.topic.id) {
        Ok(b) => b.latest.0,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the topic could not be read",
            )
                .into_response();
        }
    };
    let after = match start_of(&broker, &t.topic, from, 0).await {
        // LATEST as a start exports nothing but what `to` allows after it.
        Ok((after, _)) => after,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    // The last offset to export (inclusive).
    let last = match to {
        Position::Latest => latest,
        Position::Earliest => 0,
        Position::Replay(o) => o.0.min(latest),
        Position::Time(ms) => match broker.offset_at_time(&t.topic, ms.saturating_add(1)).await {
            Ok(o) => o,
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        },
    };
    let stop = c.ctx.stop.clone();
    let topic = t.topic.clone();
    let pages = futures_util::stream::unfold(
        (broker, topic, after),
        move |(broker, topic, after)| async move {
            if after >= last {
                return None;
            }
            let page = match broker.read_page(&topic, after, EXPORT_PAGE).await {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "console export stopped");
                    return None;
                }
            };
            let next = page.last().map_or(last, |e| e.offset.0);
            let body: String = page
                .iter()
                .filter(|e| e.offset.0 <= last)
                .map(|e| export_line(&broker, e))
                .collect();
            Some((Ok::<_, Infallible>(body), (broker, topic, next)))
        },
    )
    .take_until(stop.cancelled_owned());
    let file = format!(
        "{}.jsonl",
        t.name
            .trim_start_matches('/')
            .replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_', "-")
    );
    let mut r = axum::body::Body::from_stream(pages).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_tick_sends_the_newest_events_and_counts_the_rest() {
        assert_eq!(window(10, 10), (10, 0));
        assert_eq!(window(10, 15), (10, 0));
        assert_eq!(window(0, 1_000), (980, 980));
    }

    proptest! {
        #[test]
        fn a_tick_never_reads_more_than_its_cap(seen in 0u64..1_000_000, new in 0u64..1_000_000) {
            let (after, skipped) = window(seen, seen + new);
            prop_assert!(seen + new - after <= TAIL_MAX as u64);
            prop_assert_eq!(after - seen, skipped);
        }
    }
}
