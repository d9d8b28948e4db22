//! Workloads against an eventbus server over gRPC, and against the bare
//! tonic echo server of the same service (`--target echo`, the ceiling).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures_util::stream::{FuturesOrdered, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{BenchArgs, Report, Workload, histogram, join_histograms, payload, record};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;

/// How long a bench connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn connect(server: &str) -> Result<Channel> {
    crate::client::connect(server, CONNECT_TIMEOUT, &crate::tls::ClientTls::default()).await
}

pub(super) fn client(ch: &Channel) -> PubSubClient<Channel> {
    PubSubClient::new(ch.clone())
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20)
}

/// Creates the bench topic afresh and returns its schema id.
pub(super) async fn fresh_topic(ch: &Channel, topic: &str) -> Result<String> {
    let mut admin = AdminClient::new(ch.clone());
    let _ = admin
        .delete_topic(admin::DeleteTopicRequest {
            topic_name: topic.to_owned(),
        })
        .await;
    let d = admin
        .create_topic(admin::CreateTopicRequest {
            topic_name: topic.to_owned(),
            schema_json: payload::SCHEMA.to_owned(),
            retention_ms: 0,
        })
        .await
        .map_err(|e| anyhow!("CreateTopic {topic}: {}", e.message()))?
        .into_inner();
    Ok(d.current_schema_id)
}

pub(super) fn events(schema: &str, n: usize, size: usize) -> Vec<pb::ProducerEvent> {
    (0..n)
        .map(|_| pb::ProducerEvent {
            id: String::new(),
            schema_id: schema.to_owned(),
            payload: payload::encode(payload::now_us(), size).into(),
            headers: vec![],
        })
        .collect()
}

pub(super) fn check(resp: &pb::PublishResponse) -> Result<u64> {
    if let Some(e) = resp.results.iter().find_map(|r| r.error.as_ref()) {
        bail!("an event failed: {}", e.msg);
    }
    Ok(resp.results.len() as u64)
}

pub(super) async fn run(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    let schema = fresh_topic(&ch, &args.topic).await?;
    let report = workload(args, &ch, &schema).await;
    if !args.keep_topic {
        // The run's events are of no use after it: leave no topic behind,
        // whether the run succeeded or not.
        let deleted = AdminClient::new(ch.clone())
            .delete_topic(admin::DeleteTopicRequest {
                topic_name: args.topic.clone(),
            })
            .await;
        if let Err(e) = deleted {
            eprintln!(
                "eventbus bench: could not delete {}: {}",
                args.topic,
                e.message()
            );
        }
    }
    report
}

/// The same workloads against `eventbus bench-echo`: it has no Admin API,
/// so no topic is created or deleted and events carry its fixed schema id.
pub(super) async fn run_echo(args: &BenchArgs) -> Result<Report> {
    let ch = connect(&args.server).await?;
    workload(args, &ch, super::echo::SCHEMA_ID).await
}

async fn workload(args: &BenchArgs, ch: &Channel, schema: &str) -> Result<Report> {
    match args.workload {
        Workload::Publish => publish_streams(args, ch, schema, args.streams, args.window).await,
        Workload::Latency => publish_streams(args, ch, schema, 1, 1).await,
        Workload::Unary => unary(args, ch, schema).await,
        Workload::E2e => e2e(args, ch, schema, 1, false).await,
        Workload::Fanout => e2e(args, ch, schema, args.subscribers.max(1), true).await,
        Workload::Replay => replay(args, ch, schema).await,
        Workload::Idle => idle(args, ch).await,
        Workload::Topics
        | Workload::Subscribers
        | Workload::ReplayAt
        | Workload::Probe
        | Workload::Ready => bail!("{:?} runs from the scale module", args.workload),
    }
}

/// `streams` PublishStreams, each with up to `window` requests of
/// `--batch` events in flight; ack latency per request.
async fn publish_streams(
    args: &BenchArgs,
    ch: &Channel,
    schema: &str,
    streams: usize,
    window: usize,
) -> Result<Report> {
    let streams = streams.max(1);
    let per_stream = args.events.div_ceil(streams as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let mut client = client(ch);
        let (topic, schema) = (args.topic.clone(), schema.to_owned());
        let (batch, size) = (args.batch.max(1), args.size);
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel::<pb::PublishRequest>(window.max(1));
            let mut responses = client
                .publish_stream(ReceiverStream::new(rx))
                .await
                .map_err(|e| anyhow!("PublishStream: {}", e.message()))?
                .into_inner();
            let mut hist = histogram();
            let mut sent_at = std::collections::VecDeque::new();
            let mut sent = 0u64;
            let mut acked = 0u64;
            while acked < per_stream {
                while sent < per_stream && sent_at.len() < window.max(1) {
                    let n = (per_stream - sent).min(batch as u64) as usize;
                    let req = pb::PublishRequest {
                        topic_name: topic.clone(),
                        events: events(&schema, n, size),
                        auth_refresh: String::new(),
                    };
                    sent_at.push_back(Instant::now());
                    tx.send(req).await.map_err(|_| anyhow!("stream closed"))?;
                    sent += n as u64;
                }
                let resp = responses
                    .message()
                    .await
                    .map_err(|e| anyhow!("PublishStream: {}", e.message()))?
                    .ok_or_else(|| anyhow!("PublishStream ended early"))?;
                acked += check(&resp)?;
                if let Some(t) = sent_at.pop_front() {
                    record(&mut hist, t.elapsed());
                }
            }
            drop(tx);
            Ok::<_, anyhow::Error>((acked, hist))
        }));
    }
    let (events, latency) = join_histograms(tasks).await?;
    Ok(Report {
        events,
        elapsed: started.elapsed(),
        latency: Some(latency),
        extra: vec![
            ("streams".into(), json!(streams)),
            ("batch".into(), json!(args.batch)),
            ("window".into(), json!(window)),
        ],
        ..Report::default()
    })
}

/// `--streams` concurrent callers of unary Publish, `--batch` events each.
async fn unary(args: &BenchArgs, ch: &Channel, schema: &str) -> Result<Report> {
    let callers = args.streams.max(1);
    let per_caller = args.events.div_ceil(callers as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let mut client = client(ch);
        let (topic, schema) = (args.topic.clone(), schema.to_owned());
        let (batch, size) = (args.batch.max(1), args.size);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut done = 0u64;
            while done < per_caller {
                let n = (per_caller - done).min(batch as u64) as usize;
                done +=
                    publish_timed(&mut client, &topic, events(&schema, n, size), &mut hist).await?;
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
            ("callers".into(), json!(callers)),
            ("batch".into(), json!(args.batch)),
        ],
        ..Report::default()
    })
}

/// One unary Publish of `events` to `topic`, its round trip recorded in
/// `hist`; returns how many events were acknowledged.
pub(super) async fn publish_timed(
    client: &mut PubSubClient<Channel>,
    topic: &str,
    events: Vec<pb::ProducerEvent>,
    hist: &mut Histogram<u64>,
) -> Result<u64> {
    let t = Instant::now();
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: topic.to_owned(),
            events,
            auth_refresh: String::new(),
        })
        .await
        .map_err(|e| anyhow!("Publish: {}", e.message()))?
        .into_inner();
    record(hist, t.elapsed());
    check(&resp)
}

/// Opens a Subscribe from `preset`, keeping credit topped up to 100.
/// Calls `on_event` for each event until `want` events arrived.
async fn read_events(
    ch: &Channel,
    topic: &str,
    preset: pb::ReplayPreset,
    want: u64,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    mut on_event: impl FnMut(&pb::ConsumerEvent),
) -> Result<u64> {
    let mut client = client(ch);
    let (tx, rx) = mpsc::channel(16);
    tx.send(pb::FetchRequest {
        topic_name: topic.to_owned(),
        replay_preset: preset as i32,
        num_requested: 100,
        ..Default::default()
    })
    .await
    .map_err(|_| anyhow!("request stream closed"))?;
    let mut stream = client
        .subscribe(ReceiverStream::new(rx))
        .await
        .map_err(|e| anyhow!("Subscribe: {}", e.message()))?
        .into_inner();
    if let Some(r) = ready {
        let _ = r.send(());
    }
    let mut got = 0u64;
    while got < want {
        let resp = stream
            .message()
            .await
            .map_err(|e| anyhow!("Subscribe: {}", e.message()))?
            .ok_or_else(|| anyhow!("Subscribe ended early"))?;
        for e in &resp.events {
            on_event(e);
        }
        got += resp.events.len() as u64;
        // Top the credit back up to 100 as events arrive (Camel-style), so
        // the server always has a full window to fill.
        let top_up = 100 - resp.pending_num_requested;
        if top_up > 0 && !resp.events.is_empty() {
            tx.send(pb::FetchRequest {
                num_requested: top_up,
                ..Default::default()
            })
            .await
            .map_err(|_| anyhow!("request stream closed"))?;
        }
    }
    Ok(got)
}

/// Publishes at `--rate` (open loop, one event per request on one
/// PublishStream) while `subscribers` read live; latency = delivery time
/// minus the send stamp in the payload. With `own_connections` (fanout)
/// each subscriber has its own connection, as separate client programs
/// would: on one shared HTTP/2 connection every delivery to every
/// subscriber would pass through that connection's single task.
pub(super) async fn e2e(
    args: &BenchArgs,
    ch: &Channel,
    schema: &str,
    subscribers: usize,
    own_connections: bool,
) -> Result<Report> {
    let total = args.events;
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let ch = if own_connections {
            connect(&args.server).await?
        } else {
            ch.clone()
        };
        let topic = args.topic.clone();
        readers.push((
            ready_rx,
            tokio::spawn(async move {
                let mut hist = histogram();
                let got = read_events(
                    &ch,
                    &topic,
                    pb::ReplayPreset::Latest,
                    total,
                    Some(ready_tx),
                    |e| {
                        if let Some(sent) = e
                            .event
                            .as_ref()
                            .and_then(|ev| payload::sent_us(&ev.payload))
                        {
                            let us = (payload::now_us() - sent).max(1) as u64;
                            let _ = hist.record(us.min(100_000_000));
                        }
                    },
                )
                .await?;
                Ok::<_, anyhow::Error>((got, hist))
            }),
        ));
    }
    let mut tasks = Vec::new();
    for (ready, task) in readers {
        ready
            .await
            .map_err(|_| anyhow!("a subscriber failed to start"))?;
        tasks.push(task);
    }
    let started = Instant::now();
    let mut client = client(ch);
    let (tx, rx) = mpsc::channel::<pb::PublishRequest>(1024);
    let mut responses = client
        .publish_stream(ReceiverStream::new(rx))
        .await
        .map_err(|e| anyhow!("PublishStream: {}", e.message()))?
        .into_inner();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match responses.message().await {
                Ok(Some(r)) => acked += check(&r)?,
                Ok(None) => break,
                Err(e) => bail!("PublishStream: {}", e.message()),
            }
        }
        Ok(acked)
    });
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let (topic, schema, size) = (args.topic.clone(), schema.to_owned(), args.size);
    // Open loop: event i is due at start + i * interval, whatever happened
    // to earlier ones; a late sender catches up instead of slowing the rate.
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let req = pb::PublishRequest {
            topic_name: topic.clone(),
            events: events(&schema, 1, size),
            auth_refresh: String::new(),
        };
        tx.send(req)
            .await
            .map_err(|_| anyhow!("publish stream closed"))?;
    }
    let published_in = started.elapsed();
    let acked = acks.await??;
    drop(tx);
    let (delivered, latency) = join_histograms(tasks).await?;
    let mut extra = super::delivery_figures(args, subscribers, delivered, published_in, started);
    extra.push(("acked".into(), json!(acked)));
    Ok(Report {
        events: delivered,
        elapsed: started.elapsed(),
        latency: Some(latency),
        extra,
        ..Report::default()
    })
}

/// Pre-fills `--events` events, then reads them from EARLIEST.
async fn replay(args: &BenchArgs, ch: &Channel, schema: &str) -> Result<Report> {
    let mut fill = args.clone();
    fill.batch = 500;
    fill.window = 8;
    publish_streams(&fill, ch, schema, 2, 8).await?;
    let mark = super::CpuMark::now(args.server_pid);
    let started = Instant::now();
    let got = read_events(
        ch,
        &args.topic,
        pb::ReplayPreset::Earliest,
        args.events,
        None,
        |_| {},
    )
    .await?;
    Ok(Report {
        events: got,
        elapsed: started.elapsed(),
        extra: vec![("credit".into(), json!(100))],
        measured_from: Some(mark),
        ..Report::default()
    })
}

/// Opens `--subscriptions` idle subscriptions (credit 1, LATEST) and reports
/// the server's RSS growth per subscription.
async fn idle(args: &BenchArgs, _ch: &Channel) -> Result<Report> {
    let pid = args
        .server_pid
        .ok_or_else(|| anyhow!("idle needs --server-pid to read the server's memory"))?;
    let before = super::procfs::rss_bytes(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}"))?;
    let started = Instant::now();
    let (channels, senders, streams) =
        open_idle(&args.server, &args.topic, args.subscriptions).await?;
    let after = super::procfs::rss_bytes(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}"))?;
    let per_sub = after.saturating_sub(before) as f64 / args.subscriptions.max(1) as f64;
    let elapsed = started.elapsed();
    drop(senders);
    drop(streams);
    drop(channels);
    Ok(Report {
        events: 0,
        elapsed,
        extra: vec![
            ("subscriptions".into(), json!(args.subscriptions)),
            ("server_rss_before_bytes".into(), json!(before)),
            ("server_rss_after_bytes".into(), json!(after)),
            ("bytes_per_idle_subscription".into(), json!(per_sub.round())),
        ],
        ..Report::default()
    })
}

/// Idle subscriptions: their connections, their request senders and their
/// response streams (dropping them ends the subscriptions).
pub(super) type IdleSubscriptions = (
    Vec<Channel>,
    Vec<mpsc::Sender<pb::FetchRequest>>,
    Vec<tonic::Streaming<pb::FetchResponse>>,
);

/// Opens `n` subscriptions to `topic` (credit 1, LATEST) that read nothing,
/// 500 per connection (a connection carries at most 1000 streams), 200
/// opening at once.
pub(super) async fn open_idle(server: &str, topic: &str, n: usize) -> Result<IdleSubscriptions> {
    let per_conn = 500usize;
    let mut channels = Vec::new();
    let mut streams = Vec::new();
    let mut senders = Vec::new();
    let mut opening = FuturesOrdered::new();
    for i in 0..n {
        if i % per_conn == 0 {
            channels.push(connect(server).await?);
        }
        let mut c = client(channels.last().expect("a channel was just added"));
        let topic = topic.to_owned();
        opening.push_back(async move {
            let (tx, rx) = mpsc::channel(1);
            tx.send(pb::FetchRequest {
                topic_name: topic,
                num_requested: 1,
                ..Default::default()
            })
            .await
            .map_err(|_| anyhow!("request stream closed"))?;
            let s = c
                .subscribe(ReceiverStream::new(rx))
                .await
                .map_err(|e| anyhow!("Subscribe: {}", e.message()))?
                .into_inner();
            Ok::<_, anyhow::Error>((tx, s))
        });
        if opening.len() >= 200
            && let Some(r) = opening.next().await
        {
            let (tx, s) = r?;
            senders.push(tx);
            streams.push(s);
        }
    }
    while let Some(r) = opening.next().await {
        let (tx, s) = r?;
        senders.push(tx);
        streams.push(s);
    }
    Ok((channels, senders, streams))
}
