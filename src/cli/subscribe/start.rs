//! Where `eventbus subscribe` starts and when it is caught up: `--from`,
//! `--last N`, `--since TIME`, `--managed` and `--until-caught-up` turned
//! into a first request and an end point.
//!
//! The Pub/Sub API has no time index and no "N from the end", so this
//! works from what the wire gives: the Admin API's DescribeTopic (the oldest
//! and newest replay id and the event count) and one-event reads. Replay
//! ids are 8-byte big-endian integers that grow by one per event; when the
//! count says a topic has no gaps, `--last N` starts after `newest - N` and
//! `--since` binary-searches the events' `CreatedDate` (about log2(events)
//! one-event reads). With gaps, both read from the oldest event and pass
//! over what comes before.
//!
//! Owns: the start position and the caught-up point.
//! Must not: print events or hold the main loop.

use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use base64::Engine as _;
use tonic::transport::Channel;

use super::super::ConnArgs;
use super::super::wire::{hex, unary};
use super::output::{CREATED_DATE, Schemas, created_ms};
use super::stream::{Call, Source};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
use crate::types::ManagedRef;

/// Where the command is done with `--until-caught-up`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Not asked: follow until interrupted or `--count`.
    Follow,
    /// Nothing that existed at the start is left to print.
    Now,
    /// Done once this replay id (the newest at the start) is printed.
    At(Vec<u8>),
    /// Where the topic ends is unknown (no Admin access): done at the first
    /// keepalive, which the server sends once nothing new came for its
    /// keepalive interval.
    FirstKeepalive,
}

/// How a subscription starts.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// The first request.
    pub(super) source: Source,
    /// Events to pass over before printing (`--last` on a topic with gaps).
    pub(super) skip: u64,
    /// Pass over events whose `CreatedDate` (epoch ms) is before this,
    /// until the first one that is not (`--since`).
    pub(super) since_ms: Option<i64>,
    /// The caught-up point.
    pub(super) end: End,
}

/// What the command line asked for.
pub(super) struct Ask<'a> {
    /// The topic (absent with `--managed`).
    pub(super) topic: Option<&'a str>,
    /// `--from`.
    pub(super) from: &'a str,
    /// `--last`.
    pub(super) last: Option<u64>,
    /// `--since`.
    pub(super) since: Option<SystemTime>,
    /// `--managed`.
    pub(super) managed: Option<&'a str>,
    /// `--until-caught-up`.
    pub(super) until_caught_up: bool,
}

/// A topic's retained events, as DescribeTopic tells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Extent {
    /// Replay id of the oldest retained event.
    pub(super) first: u64,
    /// Replay id of the newest.
    pub(super) last: u64,
    /// Events retained.
    pub(super) count: u64,
}

impl Extent {
    /// Whether every replay id from `first` to `last` is an event.
    fn contiguous(self) -> bool {
        self.last.checked_sub(self.first).map(|d| d + 1) == Some(self.count)
    }
}

fn num(id: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(id.try_into().ok()?))
}

fn after(id: u64) -> Source {
    custom(id.to_be_bytes().to_vec())
}

fn custom(id: Vec<u8>) -> Source {
    Source::Topic {
        topic: String::new(),
        preset: pb::ReplayPreset::Custom,
        replay_id: id,
    }
}

fn preset(p: pb::ReplayPreset) -> Source {
    Source::Topic {
        topic: String::new(),
        preset: p,
        replay_id: vec![],
    }
}

/// Parses `--from`: latest, earliest (any case), 16 hex digits, or base64
/// of 8 bytes.
///
/// # Errors
/// Anything else, with the accepted forms.
pub(super) fn parse_from(from: &str) -> Result<(pb::ReplayPreset, Vec<u8>)> {
    match from.to_ascii_lowercase().as_str() {
        "latest" => return Ok((pb::ReplayPreset::Latest, vec![])),
        "earliest" => return Ok((pb::ReplayPreset::Earliest, vec![])),
        _ => {}
    }
    if from.len() == 16 && from.chars().all(|c| c.is_ascii_hexdigit()) {
        let bytes = (0..8)
            .map(|i| u8::from_str_radix(&from[i * 2..i * 2 + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        return Ok((pb::ReplayPreset::Custom, bytes));
    }
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(bytes) = engine.decode(from)
            && bytes.len() == 8
        {
            return Ok((pb::ReplayPreset::Custom, bytes));
        }
    }
    bail!(
        "--from must be latest, earliest, or a replay id: 16 hex digits or the base64 of 8 bytes; got `{from}`"
    )
}

/// Parses `--since`: an RFC 3339 time (`2026-12-04T10:00:00Z`) or a
/// duration ago (`10m`, `2h`).
///
/// # Errors
/// Neither form, with both named.
pub(super) fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    match humantime::parse_duration(s) {
        Ok(ago) => Ok(SystemTime::now()
            .checked_sub(ago)
            .unwrap_or(SystemTime::UNIX_EPOCH)),
        Err(_) => Err(format!(
            "`{s}` is neither a time like 2026-12-04T10:00:00Z nor a duration ago like 10m or 2h"
        )),
    }
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The start of `--last n` on a topic with `extent`: (source, events to
/// pass over).
pub(super) fn last_n(extent: Option<Extent>, n: u64) -> (Source, u64) {
    match extent {
        None => (preset(pb::ReplayPreset::Latest), 0),
        Some(_) if n == 0 => (preset(pb::ReplayPreset::Latest), 0),
        Some(e) if n >= e.count => (preset(pb::ReplayPreset::Earliest), 0),
        Some(e) if e.contiguous() => (after(e.last - n), 0),
        Some(e) => (preset(pb::ReplayPreset::Earliest), e.count - n),
    }
}

/// `--from latest` pinned to the topic's newest event now: after it, or
/// from the start of a topic that retains none (nothing older to skip).
pub(super) fn latest_now(extent: Option<Extent>) -> Source {
    match extent {
        Some(e) => after(e.last),
        None => preset(pb::ReplayPreset::Earliest),
    }
}

/// The caught-up point of a topic subscription starting at `source`.
pub(super) fn end_of(extent: Option<Extent>, source: &Source) -> End {
    let Some(e) = extent else {
        return End::Now;
    };
    match source {
        Source::Topic { preset, .. } if *preset == pb::ReplayPreset::Latest => End::Now,
        Source::Topic { replay_id, .. } if num(replay_id).is_some_and(|id| id >= e.last) => {
            End::Now
        }
        _ => End::At(e.last.to_be_bytes().to_vec()),
    }
}

/// Works out the plan, asking the server what it needs.
///
/// # Errors
/// A bad `--from`, a refused DescribeTopic when `--last` or `--since` need
/// it, a topic whose events have no `CreatedDate` for `--since`.
pub(super) async fn plan(channel: &Channel, conn: &ConnArgs, ask: &Ask<'_>) -> Result<Plan> {
    if let Some(name) = ask.managed {
        let end = if ask.until_caught_up {
            managed_end(channel, conn, name).await?
        } else {
            End::Follow
        };
        return Ok(Plan {
            source: Source::Managed(name.to_owned()),
            skip: 0,
            since_ms: None,
            end,
        });
    }
    let topic = ask.topic.unwrap_or_default();
    let needs_extent = ask.last.is_some() || ask.since.is_some() || ask.until_caught_up;
    let mut known = true;
    let extent = if needs_extent {
        match topic_extent(channel, conn, topic).await {
            Ok(e) => e,
            Err(st)
                if st.code() == tonic::Code::PermissionDenied
                    && ask.last.is_none()
                    && ask.since.is_none() =>
            {
                eprintln!(
                    "eventbus: cannot read where {topic} ends (DescribeTopic needs the admin grant); \
                     stopping at the first keepalive instead, after the server's keepalive interval"
                );
                known = false;
                None
            }
            Err(st) if st.code() == tonic::Code::PermissionDenied => {
                return Err(rpc_error("DescribeTopic", st).context(
                    "--last and --since read where the topic starts and ends with the Admin API, which needs the admin grant",
                ));
            }
            Err(st) => return Err(rpc_error("DescribeTopic", st)),
        }
    } else {
        None
    };
    let (mut source, skip, since_ms) = if let Some(n) = ask.last {
        let (s, skip) = last_n(extent, n);
        (s, skip, None)
    } else if let Some(since) = ask.since {
        let t = epoch_ms(since);
        (
            search_since(channel, conn, topic, extent, t).await?,
            0,
            Some(t),
        )
    } else {
        let (p, id) = parse_from(ask.from)?;
        let source = if p == pb::ReplayPreset::Latest && !ask.until_caught_up {
            // LATEST as of now, pinned: a reconnect before the first event
            // or keepalive then resumes here instead of at a later LATEST,
            // which would skip what was published meanwhile. Without the
            // Admin API (no admin grant) the server's LATEST it is.
            match topic_extent(channel, conn, topic).await {
                Ok(e) => latest_now(e),
                Err(_) => preset(p),
            }
        } else {
            Source::Topic {
                topic: String::new(),
                preset: p,
                replay_id: id,
            }
        };
        (source, 0, None)
    };
    if let Source::Topic { topic: t, .. } = &mut source {
        topic.clone_into(t);
    }
    let end = match (ask.until_caught_up, known) {
        (false, _) => End::Follow,
        (true, false) => End::FirstKeepalive,
        (true, true) => end_of(extent, &source),
    };
    Ok(Plan {
        source,
        skip,
        since_ms,
        end,
    })
}

/// The topic's extent; `None` when it retains no events.
async fn topic_extent(
    channel: &Channel,
    conn: &ConnArgs,
    topic: &str,
) -> Result<Option<Extent>, tonic::Status> {
    let d = AdminClient::new(channel.clone())
        .describe_topic(unary(
            conn,
            admin::DescribeTopicRequest {
                topic_name: topic.to_owned(),
            },
        ))
        .await?
        .into_inner();
    Ok(match (num(&d.first_replay_id), num(&d.last_replay_id)) {
        (Some(first), Some(last)) if d.event_count > 0 => Some(Extent {
            first,
            last,
            count: d.event_count,
        }),
        _ => None,
    })
}

/// The caught-up point of a managed subscription: the topic's newest event,
/// unless the commit already is there.
async fn managed_end(channel: &Channel, conn: &ConnArgs, name: &str) -> Result<End> {
    let reference = match ManagedRef::guess(name) {
        ManagedRef::Id(id) => admin::ManagedSubscriptionRef {
            id,
            ..Default::default()
        },
        ManagedRef::Name(developer_name) => admin::ManagedSubscriptionRef {
            developer_name,
            ..Default::default()
        },
    };
    match AdminClient::new(channel.clone())
        .describe_managed_subscription(unary(conn, reference))
        .await
    {
        Ok(m) => {
            let m = m.into_inner();
            let latest = num(&m.latest_replay_id).unwrap_or(0);
            let committed = num(&m.committed_replay_id).unwrap_or(0);
            Ok(if latest == 0 || (committed >= latest) {
                End::Now
            } else {
                End::At(m.latest_replay_id.to_vec())
            })
        }
        Err(st) if st.code() == tonic::Code::PermissionDenied => {
            eprintln!(
                "eventbus: cannot read where {name} ends (DescribeManagedSubscription needs the admin grant); \
                 stopping at the first keepalive instead, after the server's keepalive interval"
            );
            Ok(End::FirstKeepalive)
        }
        Err(st) => Err(rpc_error("DescribeManagedSubscription", st)),
    }
}

/// The start of `--since t_ms`: after the newest event older than `t_ms`,
/// found by binary search on `CreatedDate` when the topic has no gaps (one
/// one-event read per step), else the oldest event (the main loop then
/// passes over older events).
async fn search_since(
    channel: &Channel,
    conn: &ConnArgs,
    topic: &str,
    extent: Option<Extent>,
    t_ms: i64,
) -> Result<Source> {
    let Some(e) = extent else {
        return Ok(preset(pb::ReplayPreset::Latest));
    };
    if !e.contiguous() {
        return Ok(preset(pb::ReplayPreset::Earliest));
    }
    let mut client = PubSubClient::new(channel.clone());
    let mut schemas = Schemas::default();
    // The smallest offset whose time is at or after t_ms lies in [lo, hi].
    let (mut lo, mut hi) = (e.first, e.last + 1);
    let mut before = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (id, ms) = probe(&mut client, conn, &mut schemas, topic, e.first, mid).await?;
        if ms < t_ms {
            before = Some(id);
            lo = id + 1;
        } else {
            hi = mid;
        }
    }
    Ok(match before {
        None => preset(pb::ReplayPreset::Earliest),
        Some(id) => after(id),
    })
}

/// Reads the event at `offset` (or the next one): its replay id and time.
async fn probe(
    client: &mut PubSubClient<Channel>,
    conn: &ConnArgs,
    schemas: &mut Schemas,
    topic: &str,
    first: u64,
    offset: u64,
) -> Result<(u64, i64)> {
    let source = if offset <= first {
        Source::Topic {
            topic: topic.to_owned(),
            preset: pb::ReplayPreset::Earliest,
            replay_id: vec![],
        }
    } else {
        Source::Topic {
            topic: topic.to_owned(),
            preset: pb::ReplayPreset::Custom,
            replay_id: (offset - 1).to_be_bytes().to_vec(),
        }
    };
    let mut call = Call::open(client, conn, &source, 1)
        .await
        .map_err(|e| rpc_error("Subscribe", e))?;
    let read = tokio::time::timeout(conn.timeout.max(Duration::from_secs(1)), async {
        loop {
            match call.next().await {
                Ok(Some(r)) => {
                    if let Some(ev) = r.events.into_iter().next() {
                        return Ok(ev);
                    }
                }
                Ok(None) => bail!("the server ended the stream while looking for --since"),
                Err(e) => return Err(rpc_error("Subscribe", e)),
            }
        }
    })
    .await;
    let ev = match read {
        Ok(r) => r?,
        Err(_) => {
            bail!("no event at replay id {offset:016x} within --timeout while looking for --since")
        }
    };
    drop(call);
    let event = ev.event.unwrap_or_default();
    let payload = schemas.decode(client, conn, &ev.replay_id, &event).await?;
    let Some(ms) = created_ms(&payload) else {
        bail!(
            "--since needs each event's time, and the events of {topic} have no {CREATED_DATE} field (event {})",
            hex(&ev.replay_id)
        );
    };
    Ok((num(&ev.replay_id).unwrap_or(offset), ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_presets_in_any_case_hex_and_base64() {
        for s in ["latest", "LATEST", "Latest"] {
            assert_eq!(parse_from(s).expect("ok").0, pb::ReplayPreset::Latest);
        }
        for s in ["earliest", "EARLIEST", "Earliest"] {
            assert_eq!(parse_from(s).expect("ok").0, pb::ReplayPreset::Earliest);
        }
        let (p, b) = parse_from("000000000000002a").expect("hex");
        assert_eq!(
            (p, b),
            (pb::ReplayPreset::Custom, vec![0, 0, 0, 0, 0, 0, 0, 42])
        );
        let (_, b) = parse_from("AAAAAAAAACo=").expect("base64");
        assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 42]);
        assert!(parse_from("42").is_err());
        assert!(parse_from("zz00000000000000").is_err());
    }

    #[test]
    fn hex_is_what_from_reads() {
        let id = [0u8, 1, 2, 3, 4, 5, 6, 255];
        assert_eq!(parse_from(&hex(&id)).expect("round trip").1, id.to_vec());
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        let t = parse_since("2026-12-04T10:00:00Z").expect("rfc 3339");
        assert_eq!(epoch_ms(t), 1_796_378_400_000);
        let ago = parse_since("10m").expect("duration");
        let diff = SystemTime::now().duration_since(ago).expect("in the past");
        assert!(diff >= Duration::from_secs(600), "{diff:?}");
        let err = parse_since("yesterday").expect_err("neither");
        assert!(
            err.contains("2026-12-04T10:00:00Z") && err.contains("10m"),
            "{err}"
        );
    }

    fn start_of(s: &Source) -> (pb::ReplayPreset, Option<u64>) {
        match s {
            Source::Topic {
                preset, replay_id, ..
            } => (*preset, num(replay_id)),
            Source::Managed(_) => panic!("a topic source"),
        }
    }

    #[test]
    fn latest_is_pinned_to_the_newest_event_at_the_start() {
        let e = Extent {
            first: 11,
            last: 20,
            count: 10,
        };
        assert_eq!(
            start_of(&latest_now(Some(e))),
            (pb::ReplayPreset::Custom, Some(20))
        );
        assert_eq!(start_of(&latest_now(None)).0, pb::ReplayPreset::Earliest);
    }

    #[test]
    fn last_n_starts_after_newest_minus_n_or_passes_over_with_gaps() {
        let e = Extent {
            first: 11,
            last: 20,
            count: 10,
        };
        let (s, skip) = last_n(Some(e), 3);
        assert_eq!(
            (start_of(&s), skip),
            ((pb::ReplayPreset::Custom, Some(17)), 0)
        );
        let (s, _) = last_n(Some(e), 10);
        assert_eq!(start_of(&s).0, pb::ReplayPreset::Earliest);
        let (s, _) = last_n(Some(e), 0);
        assert_eq!(start_of(&s).0, pb::ReplayPreset::Latest);
        let (s, _) = last_n(None, 5);
        assert_eq!(start_of(&s).0, pb::ReplayPreset::Latest);
        let gaps = Extent {
            first: 1,
            last: 20,
            count: 10,
        };
        let (s, skip) = last_n(Some(gaps), 3);
        assert_eq!((start_of(&s).0, skip), (pb::ReplayPreset::Earliest, 7));
    }

    #[test]
    fn caught_up_is_the_newest_event_at_the_start() {
        let e = Some(Extent {
            first: 1,
            last: 9,
            count: 9,
        });
        assert_eq!(
            end_of(e, &preset(pb::ReplayPreset::Earliest)),
            End::At(9u64.to_be_bytes().to_vec())
        );
        assert_eq!(end_of(e, &preset(pb::ReplayPreset::Latest)), End::Now);
        assert_eq!(end_of(e, &after(9)), End::Now);
        assert_eq!(end_of(None, &preset(pb::ReplayPreset::Earliest)), End::Now);
    }
}
