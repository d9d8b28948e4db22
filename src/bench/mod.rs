//! `eventbus bench`: a load generator that drives a running eventbus over
//! gRPC, or NATS JetStream with the equivalent operations, and reports
//! throughput, latency percentiles and server resource use.
//!
//! Owns: workloads, the measurement harness (HDR histograms, open-loop
//! pacing, /proc sampling) and the report. Must not: reach into the server
//! process other than through its wire protocol and /proc.
//!
//! Every workload is bounded by an event count (and a time limit), talks only
//! to loopback unless `--allow-remote` is given, and stops by itself.
//!
//! [`echo`] is the other end of the ceiling measurement: a bare tonic server
//! of the same service (`eventbus bench-echo`), which `--target echo` loads
//! with the same workload code.

pub mod echo;
mod eventbus;
mod jetstream;
mod payload;
mod procfs;
mod scale;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Which system a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// An eventbus server (gRPC Pub/Sub API).
    Eventbus,
    /// A NATS server with JetStream (file storage).
    Jetstream,
    /// `eventbus bench-echo`, a bare tonic server of the same service: the
    /// gRPC ceiling (no topic is created or deleted; events carry a fixed
    /// schema id).
    Echo,
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Streams of pipelined batches (eventbus: PublishStream; JetStream:
    /// async publish with a window of acks).
    Publish,
    /// Unary calls from many concurrent callers (eventbus: Publish;
    /// JetStream: publish and wait for each ack).
    Unary,
    /// Acknowledgement latency with one request in flight.
    Latency,
    /// Publish at a fixed rate and measure publish-to-delivery latency
    /// (open loop: the schedule does not wait for slow answers).
    E2e,
    /// Pre-fill a topic, then read it from the start with credit 100
    /// (JetStream: pull consumer, batches of 100).
    Replay,
    /// K subscribers on one topic while publishing.
    Fanout,
    /// Open many idle subscriptions and report server memory per subscription.
    Idle,
    /// Scale: create `--topic-count` topics (those missing), then unary
    /// Publish spread over them round robin.
    Topics,
    /// Scale: `--idle` idle subscriptions on one topic, then e2e with
    /// `--subscribers` active ones at `--rate`.
    Subscribers,
    /// Scale: read `--events` of an existing topic (`--keep-topic` fill)
    /// from its start, middle or end (`--from`), timing the first event.
    ReplayAt,
    /// Scale: one event at a time at `--rate` until `--until-file` exists
    /// (or `--events`); ack latency of a publisher beside other work.
    Probe,
    /// Scale: wait until the server answers DescribeTopic of `--topic`;
    /// with `--started-at-ns`, the time from a server's exec to serving.
    Ready,
}

impl Workload {
    /// Whether the workload belongs to the scale table (eventbus only,
    /// on topics it does not create afresh).
    fn is_scale(self) -> bool {
        matches!(
            self,
            Self::Topics | Self::Subscribers | Self::ReplayAt | Self::Probe | Self::Ready
        )
    }
}

/// Settings of `eventbus bench`.
#[derive(Clone, Debug, Args)]
#[command(
    after_help = "Examples:\n  eventbus bench publish --events 200000 --streams 4 --batch 100 --size 1024\n  \
eventbus bench e2e --rate 5000 --events 50000\n  eventbus bench replay --events 200000\n  \
eventbus bench idle --subscriptions 10000 --server-pid $(pgrep -n eventbus)\n  \
eventbus bench publish --target jetstream --nats-url nats://127.0.0.1:4222 --window 1000\n  \
eventbus bench unary --target echo --server 127.0.0.1:7012 --streams 50 --batch 1\n    (against `eventbus bench-echo --listen 127.0.0.1:7012`, the gRPC ceiling)"
)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum)]
    pub workload: Workload,
    /// The system under test.
    #[arg(long, value_enum, default_value = "eventbus")]
    pub target: Target,
    /// eventbus address.
    #[arg(long, env = "EVENTBUS_SERVER", default_value = "127.0.0.1:7011")]
    pub server: String,
    /// NATS URL for `--target jetstream`.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Events to publish (or to pre-fill for replay).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Payload size in bytes (the Avro record is padded to this size).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Concurrent publish streams (publish) or callers (unary).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Requests in flight per stream (eventbus) or acks outstanding
    /// (JetStream async publish).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Events per second for e2e and fanout.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Subscribers for fanout.
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    /// Idle subscriptions to open for `idle`.
    #[arg(long, default_value_t = 10_000)]
    pub subscriptions: usize,
    /// Server process id, to report its RSS and CPU time from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Topic (eventbus) or stream subject base (JetStream); created fresh
    /// and deleted when the run ends.
    #[arg(long, default_value = "/event/Bench__e")]
    pub topic: String,
    /// Keep the topic (eventbus) or stream (JetStream) and its events after
    /// the run instead of deleting it.
    #[arg(long)]
    pub keep_topic: bool,
    /// Upper bound on the run's duration.
    #[arg(long, default_value = "120s", value_parser = crate::client::parse_duration)]
    pub max_time: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Allow a non-loopback target.
    #[arg(long)]
    pub allow_remote: bool,
    /// Settings of the scale workloads.
    #[command(flatten)]
    pub scale: scale::ScaleArgs,
}

/// The measured outcome of one run.
#[derive(Debug, Default)]
pub struct Report {
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Events acknowledged or delivered.
    pub events: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Payload bytes per event.
    pub size: usize,
    /// Latency samples in microseconds (ack or end-to-end), if measured.
    pub latency: Option<Histogram<u64>>,
    /// Extra figures (lag, memory per subscription, ...).
    pub extra: Vec<(String, Value)>,
    /// Server RSS at the end, bytes.
    pub server_rss: Option<u64>,
    /// Server CPU seconds used during the run.
    pub server_cpu: Option<f64>,
    /// This load generator's own CPU seconds during the run: on a shared
    /// machine the client's cost is part of the budget too.
    pub client_cpu: Option<f64>,
    /// Where the measured phase started, when a workload prepares first
    /// (replay fills the log): CPU counted from here, not from the start.
    pub measured_from: Option<CpuMark>,
}

/// Both processes' CPU seconds at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuMark {
    /// The server's, when its pid is known.
    pub server: Option<f64>,
    /// This load generator's.
    pub client: Option<f64>,
}

impl CpuMark {
    /// Reads both now.
    pub(crate) fn now(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(procfs::cpu_seconds),
            client: procfs::cpu_seconds(std::process::id()),
        }
    }
}

impl Report {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "workload": self.workload,
            "target": self.target,
            "events": self.events,
            "seconds": self.elapsed.as_secs_f64(),
            "events_per_sec": self.rate(),
            "mb_per_sec": self.rate() * self.size as f64 / 1e6,
            "payload_bytes": self.size,
            "server_rss_bytes": self.server_rss,
            "server_cpu_seconds": self.server_cpu,
            "client_cpu_seconds": self.client_cpu,
        });
        if let Some(h) = &self.latency {
            v["latency_us"] = json!({
                "p50": h.value_at_quantile(0.50),
                "p90": h.value_at_quantile(0.90),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
                "count": h.len(),
            });
        }
        for (k, x) in &self.extra {
            v[k] = x.clone();
        }
        v
    }

    /// The report as a short table for people: rates to three significant
    /// digits, latencies in the unit that fits (`--json` keeps the raw
    /// numbers for scripts).
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "{} on {}: {} events in {} = {} events/s, {} MB/s",
            self.workload,
            self.target,
            separated(self.events),
            seconds(self.elapsed.as_secs_f64()),
            significant(self.rate()),
            significant(self.rate() * self.size as f64 / 1e6)
        );
        if let Some(h) = &self.latency {
            s.push_str(&format!(
                "\n  latency: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
                micros(h.value_at_quantile(0.50)),
                micros(h.value_at_quantile(0.90)),
                micros(h.value_at_quantile(0.99)),
                micros(h.value_at_quantile(0.999)),
                micros(h.max()),
                separated(h.len())
            ));
        }
        for (k, v) in &self.extra {
            let shown = match v {
                Value::Number(n) if n.is_u64() => n.as_u64().map(separated),
                Value::Number(n) => n.as_f64().map(significant),
                _ => None,
            }
            .unwrap_or_else(|| v.to_string());
            s.push_str(&format!("\n  {}: {shown}", k.replace('_', " ")));
        }
        if let Some(rss) = self.server_rss {
            s.push_str(&format!(
                "\n  server RSS: {} MiB",
                significant(rss as f64 / (1 << 20) as f64)
            ));
        }
        if let Some(cpu) = self.server_cpu {
            s.push_str(&format!("\n  server CPU: {}", seconds(cpu)));
        }
        if let Some(cpu) = self.client_cpu {
            s.push_str(&format!("\n  load generator CPU: {}", seconds(cpu)));
        }
        s
    }
}

/// An integer with `,` between thousands: `48,316`.
fn separated(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A measurement to three significant digits, thousands separated:
/// `48,300`, `49.5`, `0.123`. More digits than that are noise in a run.
fn significant(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if magnitude >= 2 {
        let unit = 10f64.powi(magnitude - 2);
        let rounded = (x.abs() / unit).round() * unit;
        let sign = if x < 0.0 { "-" } else { "" };
        return format!("{sign}{}", separated(rounded as u64));
    }
    let decimals = usize::try_from(2 - magnitude).unwrap_or(0);
    format!("{x:.decimals$}")
}

/// Seconds to three significant digits: `4.14 s`, `0.250 s`.
fn seconds(secs: f64) -> String {
    format!("{} s", significant(secs))
}

/// A latency in microseconds in the unit that fits: `850 µs`, `12.3 ms`,
/// `1.20 s`.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{} ms", significant(us as f64 / 1e3)),
        _ => seconds(us as f64 / 1e6),
    }
}

/// A latency histogram in microseconds, 1 µs to 100 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("static bounds are valid")
}

/// What one measuring task returns: events counted and its latencies.
pub(crate) type Measured = Result<(u64, Histogram<u64>)>;

/// Sums the counts and merges the histograms of measuring tasks.
pub(crate) async fn join_histograms(tasks: Vec<tokio::task::JoinHandle<Measured>>) -> Measured {
    let mut total = 0;
    let mut all = histogram();
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        all.add(&h).map_err(|e| anyhow::anyhow!("histogram: {e}"))?;
    }
    Ok((total, all))
}

/// The figures of a run with live subscribers (e2e, fanout): the publish
/// rate asked for and achieved, and the deliveries: `events` of the report
/// counts every delivery to every subscriber, so its rate is the delivered
/// events per second, written out as `delivered_events_per_sec` too.
pub(crate) fn delivery_figures(
    args: &BenchArgs,
    subscribers: usize,
    delivered: u64,
    published_in: Duration,
    started: Instant,
) -> Vec<(String, Value)> {
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    vec![
        ("rate".into(), json!(args.rate)),
        (
            "achieved_publish_rate".into(),
            json!(args.events as f64 / published_in.as_secs_f64().max(1e-9)),
        ),
        ("subscribers".into(), json!(subscribers)),
        (
            "delivered_per_subscriber".into(),
            json!(delivered / subscribers.max(1) as u64),
        ),
        (
            "delivered_events_per_sec".into(),
            json!(delivered as f64 / elapsed),
        ),
        (
            "expected_events_per_sec".into(),
            json!(args.rate as f64 * subscribers as f64),
        ),
    ]
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 100_000_000);
    // Values are clamped into the histogram's bounds, so recording cannot fail.
    let _ = h.record(us);
}

fn host_of(addr: &str) -> &str {
    let rest = addr.split("://").last().unwrap_or(addr);
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn is_loopback(addr: &str) -> bool {
    let host = host_of(addr);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Runs a benchmark and prints its report.
///
/// # Errors
/// A non-loopback target without `--allow-remote`, connection failures,
/// server errors, or a run that exceeded `--max-time`.
pub async fn run(args: BenchArgs) -> Result<()> {
    let report = measure(&args).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    Ok(())
}

/// Runs a benchmark and returns its report.
///
/// # Errors
/// As [`run`].
pub async fn measure(args: &BenchArgs) -> Result<Report> {
    let addr = match args.target {
        Target::Eventbus | Target::Echo => &args.server,
        Target::Jetstream => &args.nats_url,
    };
    if !args.allow_remote && !is_loopback(addr) {
        bail!("refusing to load {addr}: not a loopback address (pass --allow-remote to insist)");
    }
    if args.size < payload::MIN_SIZE {
        bail!("--size must be at least {} bytes", payload::MIN_SIZE);
    }
    let before = CpuMark::now(args.server_pid);
    let started = Instant::now();
    let mut report = tokio::time::timeout(args.max_time, async {
        match args.target {
            Target::Eventbus if args.workload.is_scale() => scale::run(args).await,
            Target::Eventbus => eventbus::run(args).await,
            Target::Echo => eventbus::run_echo(args).await,
            Target::Jetstream if args.workload.is_scale() => {
                bail!("the scale workloads are measured for eventbus only")
            }
            Target::Jetstream => jetstream::run(args).await,
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the run exceeded --max-time {:?}", args.max_time))??;
    report.size = args.size;
    report.target = format!("{:?}", args.target).to_lowercase();
    report.workload = format!("{:?}", args.workload).to_lowercase();
    // A workload that prepared first (replay fills the log) counts CPU
    // from the start of its measured phase only.
    let before = report.measured_from.unwrap_or(before);
    report.client_cpu = procfs::cpu_seconds(std::process::id())
        .zip(before.client)
        .map(|(after, before)| after - before);
    if let Some(pid) = args.server_pid {
        report.server_rss = procfs::rss_bytes(pid);
        report.server_cpu = procfs::cpu_seconds(pid)
            .zip(before.server)
            .map(|(after, before)| after - before);
    }
    tracing::debug!(total = ?started.elapsed(), "bench done");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_allowed_by_default() {
        assert!(is_loopback("127.0.0.1:7011"));
        assert!(is_loopback("http://127.0.0.1:7011"));
        assert!(is_loopback("nats://localhost:4222"));
        assert!(is_loopback("[::1]:7011"));
        assert!(!is_loopback("10.0.0.5:7011"));
        assert!(!is_loopback("nats://example.com:4222"));
    }

    #[test]
    fn reports_carry_rates_and_percentiles() {
        let mut h = histogram();
        for us in 1..=1000 {
            record(&mut h, Duration::from_micros(us));
        }
        let r = Report {
            workload: "publish".into(),
            target: "eventbus".into(),
            events: 1000,
            elapsed: Duration::from_secs(2),
            size: 1000,
            latency: Some(h),
            ..Report::default()
        };
        let v = r.to_json();
        assert_eq!(v["events_per_sec"], 500.0);
        assert_eq!(v["mb_per_sec"], 0.5);
        let p50 = v["latency_us"]["p50"].as_u64().expect("p50");
        assert!((495..=505).contains(&p50), "{p50}");
        assert!(r.to_table().contains("p99.9"));
    }

    #[test]
    fn tables_round_to_three_digits_and_pick_latency_units() {
        assert_eq!(separated(0), "0");
        assert_eq!(separated(999), "999");
        assert_eq!(separated(1_000), "1,000");
        assert_eq!(separated(1_234_567), "1,234,567");
        assert_eq!(significant(48_316.77), "48,300");
        assert_eq!(significant(1_234_567.0), "1,230,000");
        assert_eq!(significant(999.6), "1,000");
        assert_eq!(significant(49.51), "49.5");
        assert_eq!(significant(4.1449), "4.14");
        assert_eq!(significant(0.123_45), "0.123");
        assert_eq!(significant(0.0), "0");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_345), "12.3 ms");
        assert_eq!(micros(999_999), "1,000 ms");
        assert_eq!(micros(1_200_000), "1.20 s");
        let mut h = histogram();
        record(&mut h, Duration::from_millis(40));
        let r = Report {
            workload: "e2e".into(),
            target: "eventbus".into(),
            events: 25_000,
            elapsed: Duration::from_secs_f64(5.012_345),
            size: 1024,
            latency: Some(h),
            extra: vec![
                ("achieved_publish_rate".into(), json!(4_999.876_5)),
                ("acked".into(), json!(25_000)),
            ],
            ..Report::default()
        };
        let table = r.to_table();
        assert!(
            table.starts_with(
                "e2e on eventbus: 25,000 events in 5.01 s = 4,990 events/s, 5.11 MB/s"
            ),
            "{table}"
        );
        assert!(table.contains("p50 40.0 ms"), "{table}");
        assert!(table.contains("achieved publish rate: 5,000"), "{table}");
        assert!(table.contains("acked: 25,000"), "{table}");
    }

    fn args(line: &[&str]) -> BenchArgs {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            bench: BenchArgs,
        }
        use clap::Parser;
        Line::try_parse_from(std::iter::once("bench").chain(line.iter().copied()))
            .expect("bench arguments")
            .bench
    }

    /// The ceiling's two ends together: the echo server on port 0 and the
    /// load generator's own workloads against it, in this process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workloads_run_against_the_echo_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(echo::serve(listener, 10_000, stop.clone()));
        let pid = std::process::id().to_string();
        for (workload, events) in [
            ("unary", 200),
            ("replay", 300),
            ("latency", 50),
            ("publish", 500),
            ("e2e", 100),
            ("fanout", 100),
        ] {
            let a = args(&[
                workload,
                "--target",
                "echo",
                "--server",
                &addr,
                "--events",
                &events.to_string(),
                "--streams",
                "5",
                "--batch",
                "10",
                "--rate",
                "5000",
                "--subscribers",
                "3",
                "--server-pid",
                &pid,
                "--max-time",
                "60s",
            ]);
            let r = measure(&a).await.expect(workload);
            let v = r.to_json();
            assert_eq!(v["target"], "echo");
            assert_eq!(v["workload"], workload);
            let expected = if workload == "fanout" { 300 } else { events };
            assert_eq!(v["events"], expected, "{workload}: {v}");
            assert!(v["events_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
            if workload == "fanout" {
                assert_eq!(v["subscribers"], 3, "{v}");
                assert!(v["delivered_events_per_sec"].as_f64().unwrap_or(0.0) > 0.0);
                assert_eq!(v["expected_events_per_sec"], 15_000.0);
            }
        }
        stop.cancel();
        server
            .await
            .expect("server task")
            .expect("the echo server stops cleanly");
    }
}
