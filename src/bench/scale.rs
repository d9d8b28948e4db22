//! The scale workloads of `eventbus bench` (run by `bench/scale.sh`): how
//! cost grows with topics, idle subscribers and log size, and the probes
//! around them (publish latency beside other work, time to serve).
//!
//! Owns: topic fan-out publishing, idle-plus-active subscriber runs,
//! replay from a position of an existing log, the paced latency probe and
//! the readiness wait. Must not: delete or recreate a topic it was pointed
//! at to read (`replay-at`, `ready` only read), or start, stop or signal
//! the server (the script does that).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use clap::{Args, ValueEnum};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::eventbus::{check, client, connect, e2e, events, fresh_topic, open_idle, publish_timed};
use super::{BenchArgs, Report, Workload, histogram, join_histograms, payload, record};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::api::pb;

/// Settings only the scale workloads read.
#[derive(Clone, Debug, Default, Args)]
pub struct ScaleArgs {
    /// Topics for `topics` (`/event/Scale0__e` ... `/event/Scale<n-1>__e`).
    #[arg(long, default_value_t = 1000)]
    pub topic_count: u64,
    /// Where `replay-at` starts reading.
    #[arg(long, value_enum, default_value = "start")]
    pub from: ReplayFrom,
    /// `probe` publishes until this file exists.
    #[arg(long)]
    pub until_file: Option<PathBuf>,
    /// `ready`: when the server was started (Unix epoch nanoseconds, as
    /// `date +%s%N` prints), to report the time from its exec to serving.
    #[arg(long)]
    pub started_at_ns: Option<u64>,
}

/// A position in a topic's retained events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReplayFrom {
    /// EARLIEST: the oldest retained event.
    #[default]
    Start,
    /// CUSTOM: after the replay id halfway through the retained events.
    Middle,
    /// CUSTOM: the last `--events` events.
    End,
}

/// CreateTopic calls in flight while `topics` provisions.
const CREATE_CONCURRENCY: usize = 32;

/// How often `ready` retries.
const READY_POLL: Duration = Duration::from_millis(2);

/// Credit a reader keeps topped up.
const CREDIT: i32 = 100;

pub(super) async fn run(args: &BenchArgs) -> Result<Report> {
    match args.workload {
        Workload::Topics => topics(args).await,
        Workload::Subscribers => subscribers(args).await,
        Workload::ReplayAt => replay_at(args).await,
        Workload::Probe => probe(args).await,
        Workload::Ready => ready(args).await,
        other => bail!("{other:?} is not a scale workload"),
    }
}

/// The `i`th topic of the `topics` workload.
fn scale_topic(i: u64) -> String {
    format!("/event/Scale{i}__e")
}

/// Creates the topics `topics` names (an existing one is described
/// instead) and returns each one's schema id, in order.
async fn provision(ch: &Channel, n: u64) -> Result<(Vec<String>, u64)> {
    let created = Arc::new(AtomicU64::new(0));
    let ids: Vec<Result<String>> = stream::iter(0..n)
        .map(|i| {
            let mut admin = AdminClient::new(ch.clone());
            let created = created.clone();
            async move {
                let name = scale_topic(i);
                let made = admin
                    .create_topic(admin::CreateTopicRequest {
                        topic_name: name.clone(),
                        schema_json: payload::SCHEMA.to_owned(),
                        retention_ms: 0,
                    })
                    .await;
                match made {
                    Ok(d) => {
                        created.fetch_add(1, Ordering::Relaxed);
                        Ok(d.into_inner().current_schema_id)
                    }
                    Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(admin
                        .describe_topic(admin::DescribeTopicRequest { topic_name: name })
                        .await
                        .map_err(|e| anyhow!("DescribeTopic: {}", e.message()))?
                        .into_inner()
                        .current_schema_id),
                    Err(s) => Err(anyhow!("CreateTopic {name}: {}", s.message())),
                }
            }
        })
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await;
    let ids = ids.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((ids, created.load(Ordering::Relaxed)))
}

/// Creates `--topic-count` topics, then `--streams` callers of unary
/// Publish (`--batch` events a call) send `--events` events, each call to
/// the next topic round robin. The topics stay.
async fn topics(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    let n = args.scale.topic_count.max(1);
    let t = Instant::now();
    let (schemas, created) = provision(&ch, n).await?;
    let create_seconds = t.elapsed().as_secs_f64();
    let schemas = Arc::new(schemas);
    let callers = args.streams.max(1);
    let calls = args.events.div_ceil(args.batch.max(1) as u64);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let mut client = client(&ch);
        let (schemas, next) = (schemas.clone(), next.clone());
        let (batch, size, total) = (args.batch.max(1), args.size, args.events);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut done = 0u64;
            loop {
                let call = next.fetch_add(1, Ordering::Relaxed);
                if call >= calls {
                    break;
                }
                let first = call * batch as u64;
                let k = (total - first).min(batch as u64) as usize;
                let topic = call % n;
                let batch = events(&schemas[topic as usize], k, size);
                done += publish_timed(&mut client, &scale_topic(topic), batch, &mut hist).await?;
            }
            Ok::<_, anyhow::Error>((done, hist))
        }));
    }
    let (events, latency) = join_histograms(tasks).await?;
    Ok(Report {
        events,
        elapsed: started.elapsed(),
        latency: Some(latency),
        extra: vec![
            ("topics".into(), json!(n)),
            ("topics_created".into(), json!(created)),
            ("create_seconds".into(), json!(create_seconds)),
            ("callers".into(), json!(callers)),
            ("batch".into(), json!(args.batch)),
        ],
        ..Report::default()
    })
}

/// `--subscriptions` idle subscriptions (credit 1, LATEST; each takes one
/// warm-up event and then waits) on a fresh `--topic`, then e2e at
/// `--rate` with `--subscribers` active ones.
async fn subscribers(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    let schema = fresh_topic(&ch, &args.topic).await?;
    let rss = || args.server_pid.and_then(super::procfs::rss_bytes);
    let rss_before = rss();
    let idle = open_idle(&args.server, &args.topic, args.subscriptions).await?;
    // One event uses up every idle subscription's credit, so the measured
    // run publishes to subscriptions that hold none.
    check(
        &client(&ch)
            .publish(pb::PublishRequest {
                topic_name: args.topic.clone(),
                events: events(&schema, 1, args.size),
                auth_refresh: String::new(),
            })
            .await
            .map_err(|e| anyhow!("Publish: {}", e.message()))?
            .into_inner(),
    )?;
    tokio::time::sleep(Duration::from_millis(500 + args.subscriptions as u64 / 10)).await;
    let rss_idle = rss();
    let mut report = e2e(args, &ch, &schema, args.subscribers.max(1), false).await;
    drop(idle);
    if !args.keep_topic {
        let _ = AdminClient::new(ch.clone())
            .delete_topic(admin::DeleteTopicRequest {
                topic_name: args.topic.clone(),
            })
            .await;
    }
    if let Ok(r) = &mut report {
        r.extra.extend([
            ("idle_subscriptions".into(), json!(args.subscriptions)),
            ("server_rss_before_idle_bytes".into(), json!(rss_before)),
            ("server_rss_with_idle_bytes".into(), json!(rss_idle)),
        ]);
    }
    report
}

/// A topic's retained events as offsets: the first and last retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Retained {
    first: u64,
    last: u64,
}

/// Where a read of `want` events starting at `from` begins: `None` for
/// EARLIEST, else the CUSTOM replay id's offset (reading starts after it);
/// and how many events it can read.
fn start_of(from: ReplayFrom, r: Retained, want: u64) -> (Option<u64>, u64) {
    let count = (r.last + 1).saturating_sub(r.first);
    let after = match from {
        ReplayFrom::Start => return (None, want.min(count)),
        ReplayFrom::Middle => r.first.saturating_sub(1) + count / 2,
        ReplayFrom::End => r.first.saturating_sub(1) + count.saturating_sub(want),
    };
    (Some(after), want.min(r.last.saturating_sub(after)))
}

/// An 8-byte replay id's offset.
fn offset_of(replay_id: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = replay_id
        .try_into()
        .map_err(|_| anyhow!("a replay id of {} bytes, not 8", replay_id.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Reads `--events` events of an existing `--topic` from `--from` with
/// credit 100 kept topped up; reports events/s and the time from the
/// Subscribe call to the first event.
async fn replay_at(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    let d = AdminClient::new(ch.clone())
        .describe_topic(admin::DescribeTopicRequest {
            topic_name: args.topic.clone(),
        })
        .await
        .map_err(|e| anyhow!("DescribeTopic {}: {}", args.topic, e.message()))?
        .into_inner();
    if d.event_count == 0 {
        bail!("{} has no events to read", args.topic);
    }
    let retained = Retained {
        first: offset_of(&d.first_replay_id)?,
        last: offset_of(&d.last_replay_id)?,
    };
    let (after, want) = start_of(args.scale.from, retained, args.events);
    let mut client = client(&ch);
    let (tx, rx) = mpsc::channel(16);
    tx.send(pb::FetchRequest {
        topic_name: args.topic.clone(),
        replay_preset: if after.is_some() {
            pb::ReplayPreset::Custom
        } else {
            pb::ReplayPreset::Earliest
        } as i32,
        replay_id: after
            .map(|o| o.to_be_bytes().to_vec())
            .unwrap_or_default()
            .into(),
        num_requested: CREDIT,
        ..Default::default()
    })
    .await
    .map_err(|_| anyhow!("request stream closed"))?;
    let started = Instant::now();
    let mut stream = client
        .subscribe(ReceiverStream::new(rx))
        .await
        .map_err(|e| anyhow!("Subscribe: {}", e.message()))?
        .into_inner();
    let mut first_event = None;
    let mut got = 0u64;
    while got < want {
        let resp = stream
            .message()
            .await
            .map_err(|e| anyhow!("Subscribe: {}", e.message()))?
            .ok_or_else(|| anyhow!("Subscribe ended early"))?;
        if first_event.is_none() && !resp.events.is_empty() {
            first_event = Some(started.elapsed());
        }
        got += resp.events.len() as u64;
        let top_up = CREDIT - resp.pending_num_requested;
        if top_up > 0 && !resp.events.is_empty() {
            tx.send(pb::FetchRequest {
                num_requested: top_up,
                ..Default::default()
            })
            .await
            .map_err(|_| anyhow!("request stream closed"))?;
        }
    }
    Ok(Report {
        events: got,
        elapsed: started.elapsed(),
        extra: vec![
            (
                "from".into(),
                json!(format!("{:?}", args.scale.from).to_lowercase()),
            ),
            ("retained_events".into(), json!(d.event_count)),
            ("start_after_offset".into(), json!(after)),
            (
                "first_event_us".into(),
                json!(first_event.map(|t| t.as_micros() as u64)),
            ),
        ],
        ..Report::default()
    })
}

/// Whether the probe should stop: the stop file exists or the count is
/// reached.
fn probe_done(until: Option<&std::path::Path>, sent: u64, limit: u64) -> bool {
    sent >= limit || until.is_some_and(std::path::Path::exists)
}

/// One event at a time on one PublishStream to a fresh `--topic`, paced at
/// `--rate` (a late ack delays only itself: the next is sent at once),
/// until `--until-file` exists or `--events` were sent.
async fn probe(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    let schema = fresh_topic(&ch, &args.topic).await?;
    let (tx, rx) = mpsc::channel::<pb::PublishRequest>(1);
    let mut responses = client(&ch)
        .publish_stream(ReceiverStream::new(rx))
        .await
        .map_err(|e| anyhow!("PublishStream: {}", e.message()))?
        .into_inner();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let until = args.scale.until_file.as_deref();
    let mut hist = histogram();
    let started = Instant::now();
    let mut sent = 0u64;
    while !probe_done(until, sent, args.events) {
        tokio::time::sleep_until((started + interval.mul_f64(sent as f64)).into()).await;
        let t = Instant::now();
        tx.send(pb::PublishRequest {
            topic_name: args.topic.clone(),
            events: events(&schema, 1, args.size),
            auth_refresh: String::new(),
        })
        .await
        .map_err(|_| anyhow!("publish stream closed"))?;
        let resp = responses
            .message()
            .await
            .map_err(|e| anyhow!("PublishStream: {}", e.message()))?
            .ok_or_else(|| anyhow!("PublishStream ended early"))?;
        check(&resp)?;
        record(&mut hist, t.elapsed());
        sent += 1;
    }
    let elapsed = started.elapsed();
    drop(tx);
    if !args.keep_topic {
        let _ = AdminClient::new(ch.clone())
            .delete_topic(admin::DeleteTopicRequest {
                topic_name: args.topic.clone(),
            })
            .await;
    }
    Ok(Report {
        events: sent,
        elapsed,
        latency: Some(hist),
        extra: vec![("rate".into(), json!(args.rate))],
        ..Report::default()
    })
}

/// Nanoseconds since the Unix epoch.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Retries connecting and DescribeTopic of `--topic` every 2 ms until one
/// succeeds; reports the attempts and, given `--started-at-ns`, the
/// seconds from then to the first answer.
async fn ready(args: &BenchArgs) -> Result<Report> {
    let started = Instant::now();
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        if let Ok(ch) = connect(&args.server).await {
            let described = AdminClient::new(ch)
                .describe_topic(admin::DescribeTopicRequest {
                    topic_name: args.topic.clone(),
                })
                .await;
            match described {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::NotFound => {
                    bail!("the server serves but has no topic {}", args.topic)
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let at = now_ns();
    let since = args
        .scale
        .started_at_ns
        .map(|t0| at.saturating_sub(t0) as f64 / 1e9);
    Ok(Report {
        events: 0,
        elapsed: started.elapsed(),
        extra: vec![
            ("attempts".into(), json!(attempts)),
            ("ready_at_ns".into(), json!(at)),
            ("seconds_to_ready".into(), json!(since)),
        ],
        ..Report::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_topics_are_valid_platform_event_names() {
        assert_eq!(scale_topic(0), "/event/Scale0__e");
        assert_eq!(scale_topic(99_999), "/event/Scale99999__e");
    }

    #[test]
    fn reads_start_at_the_start_middle_or_end() {
        let r = Retained {
            first: 1,
            last: 1_000,
        };
        assert_eq!(start_of(ReplayFrom::Start, r, 200), (None, 200));
        // After offset 500: events 501..=700.
        assert_eq!(start_of(ReplayFrom::Middle, r, 200), (Some(500), 200));
        // The last 200: after 800, events 801..=1000.
        assert_eq!(start_of(ReplayFrom::End, r, 200), (Some(800), 200));
        // Fewer retained than wanted: what is there.
        assert_eq!(start_of(ReplayFrom::Start, r, 5_000), (None, 1_000));
        assert_eq!(start_of(ReplayFrom::Middle, r, 5_000), (Some(500), 500));
        assert_eq!(start_of(ReplayFrom::End, r, 5_000), (Some(0), 1_000));
        // After a trim the first retained offset moves.
        let trimmed = Retained {
            first: 401,
            last: 1_000,
        };
        assert_eq!(start_of(ReplayFrom::Middle, trimmed, 100), (Some(700), 100));
        assert_eq!(start_of(ReplayFrom::End, trimmed, 100), (Some(900), 100));
    }

    #[test]
    fn replay_ids_are_big_endian_offsets() {
        assert_eq!(offset_of(&[0, 0, 0, 0, 0, 0, 1, 2]).expect("8 bytes"), 258);
        assert!(offset_of(&[1, 2, 3]).is_err());
    }

    #[test]
    fn the_probe_stops_at_its_count_or_its_file() {
        let dir = std::env::temp_dir().join(format!("eventbus-probe-{}", std::process::id()));
        assert!(!probe_done(Some(&dir), 5, 10));
        assert!(probe_done(None, 10, 10));
        std::fs::write(&dir, b"").expect("write the stop file");
        assert!(probe_done(Some(&dir), 5, 10));
        std::fs::remove_file(&dir).expect("remove the stop file");
    }
}
