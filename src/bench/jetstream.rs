//! The same workloads against NATS JetStream, the peer we compare with.
//!
//! Mapping: a topic is a stream with file storage and one subject; publish
//! is `js.publish` with a window of outstanding acks (JetStream acknowledges
//! after writing, without fsync by default); replay is a pull consumer from
//! the start with batches of 100 and no acks; e2e and fanout read with pull
//! consumers that deliver new messages (fanout: one connection each).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use serde_json::json;

use super::{BenchArgs, Report, Workload, histogram, join_histograms, payload, record};

const STREAM: &str = "BENCH";
const SUBJECT: &str = "bench.events";

async fn fresh_stream(js: &jetstream::Context) -> Result<stream::Stream> {
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow!("create stream: {e}"))
}

pub(super) async fn run(args: &BenchArgs) -> Result<Report> {
    let client = async_nats::connect(&args.nats_url)
        .await
        .map_err(|e| anyhow!("cannot connect to {}: {e}", args.nats_url))?;
    let js = jetstream::new(client);
    let stream = fresh_stream(&js).await?;
    let report = workload(args, &js, &stream).await;
    if !args.keep_topic
        && let Err(e) = js.delete_stream(STREAM).await
    {
        eprintln!("eventbus bench: could not delete stream {STREAM}: {e}");
    }
    report
}

async fn workload(
    args: &BenchArgs,
    js: &jetstream::Context,
    stream: &stream::Stream,
) -> Result<Report> {
    match args.workload {
        Workload::Publish => publish(args, js, args.streams, args.window).await,
        Workload::Latency => publish(args, js, 1, 1).await,
        Workload::Unary => publish(args, js, args.streams, 1).await,
        Workload::E2e => e2e(args, js, stream, 1, false).await,
        Workload::Fanout => e2e(args, js, stream, args.subscribers.max(1), true).await,
        Workload::Replay => replay(args, js, stream).await,
        Workload::Idle => bail!("idle is measured for eventbus only"),
        Workload::Topics
        | Workload::Subscribers
        | Workload::ReplayAt
        | Workload::Probe
        | Workload::Ready => bail!("the scale workloads are measured for eventbus only"),
    }
}

/// `tasks` publishers, each keeping up to `window` acks outstanding.
async fn publish(
    args: &BenchArgs,
    js: &jetstream::Context,
    tasks: usize,
    window: usize,
) -> Result<Report> {
    let tasks = tasks.max(1);
    let per_task = args.events.div_ceil(tasks as u64);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let js = js.clone();
        let size = args.size;
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut pending = std::collections::VecDeque::new();
            let mut acked = 0u64;
            for _ in 0..per_task {
                if pending.len() >= window.max(1) {
                    let (t, fut): (Instant, jetstream::context::PublishAckFuture) =
                        pending.pop_front().expect("window is not empty");
                    fut.await.map_err(|e| anyhow!("ack: {e}"))?;
                    record(&mut hist, t.elapsed());
                    acked += 1;
                }
                let data = payload::encode(payload::now_us(), size);
                let t = Instant::now();
                let fut = js
                    .publish(SUBJECT, data.into())
                    .await
                    .map_err(|e| anyhow!("publish: {e}"))?;
                pending.push_back((t, fut));
            }
            for (t, fut) in pending {
                fut.await.map_err(|e| anyhow!("ack: {e}"))?;
                record(&mut hist, t.elapsed());
                acked += 1;
            }
            Ok::<_, anyhow::Error>((acked, hist))
        }));
    }
    let (total, all) = join_histograms(handles).await?;
    Ok(Report {
        events: total,
        elapsed: started.elapsed(),
        latency: Some(all),
        extra: vec![
            ("publishers".into(), json!(tasks)),
            ("window".into(), json!(window)),
        ],
        ..Report::default()
    })
}

async fn pull_consumer(
    stream: &stream::Stream,
    policy: consumer::DeliverPolicy,
) -> Result<consumer::PullConsumer> {
    stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: policy,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("create consumer: {e}"))
}

/// Reads `want` messages, 100 per pull.
async fn read(
    consumer: consumer::PullConsumer,
    want: u64,
    mut on: impl FnMut(&[u8]),
) -> Result<u64> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(100)
        .messages()
        .await
        .map_err(|e| anyhow!("pull: {e}"))?;
    let mut got = 0;
    while got < want {
        let Some(m) = messages.next().await else {
            break;
        };
        let m = m.map_err(|e| anyhow!("pull: {e}"))?;
        on(&m.payload);
        got += 1;
    }
    Ok(got)
}

/// Publishes at `--rate` while `subscribers` pull consumers read new
/// messages. With `own_connections` (fanout) each subscriber has its own
/// NATS connection, as separate client programs would.
async fn e2e(
    args: &BenchArgs,
    js: &jetstream::Context,
    stream: &stream::Stream,
    subscribers: usize,
    own_connections: bool,
) -> Result<Report> {
    let total = args.events;
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let consumer = if own_connections {
            let client = async_nats::connect(&args.nats_url)
                .await
                .map_err(|e| anyhow!("cannot connect to {}: {e}", args.nats_url))?;
            let own = jetstream::new(client)
                .get_stream(STREAM)
                .await
                .map_err(|e| anyhow!("get stream: {e}"))?;
            pull_consumer(&own, consumer::DeliverPolicy::New).await?
        } else {
            pull_consumer(stream, consumer::DeliverPolicy::New).await?
        };
        readers.push(tokio::spawn(async move {
            let mut hist = histogram();
            let got = read(consumer, total, |p| {
                if let Some(sent) = payload::sent_us(p) {
                    let us = (payload::now_us() - sent).max(1) as u64;
                    let _ = hist.record(us.min(100_000_000));
                }
            })
            .await?;
            Ok::<_, anyhow::Error>((got, hist))
        }));
    }
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut pending = std::collections::VecDeque::new();
    for i in 0..total {
        tokio::time::sleep_until((started + interval.mul_f64(i as f64)).into()).await;
        let data = payload::encode(payload::now_us(), args.size);
        pending.push_back(
            js.publish(SUBJECT, data.into())
                .await
                .map_err(|e| anyhow!("publish: {e}"))?,
        );
        while pending.len() > 1000 {
            if let Some(f) = pending.pop_front() {
                f.await.map_err(|e| anyhow!("ack: {e}"))?;
            }
        }
    }
    let published_in = started.elapsed();
    for f in pending {
        f.await.map_err(|e| anyhow!("ack: {e}"))?;
    }
    let (delivered, all) = join_histograms(readers).await?;
    Ok(Report {
        events: delivered,
        elapsed: started.elapsed(),
        latency: Some(all),
        extra: super::delivery_figures(args, subscribers, delivered, published_in, started),
        ..Report::default()
    })
}

async fn replay(
    args: &BenchArgs,
    js: &jetstream::Context,
    stream: &stream::Stream,
) -> Result<Report> {
    let mut fill = args.clone();
    fill.window = 1000;
    publish(&fill, js, 2, 1000).await?;
    let consumer = pull_consumer(stream, consumer::DeliverPolicy::All).await?;
    let mark = super::CpuMark::now(args.server_pid);
    let started = Instant::now();
    let got = read(consumer, args.events, |_| {}).await?;
    Ok(Report {
        events: got,
        elapsed: started.elapsed(),
        extra: vec![("batch".into(), json!(100))],
        measured_from: Some(mark),
        ..Report::default()
    })
}
