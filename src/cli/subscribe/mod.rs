//! `eventbus subscribe`: events out, with flow control, as kcat and
//! `nats sub` users expect: it resumes after the last printed event when
//! the connection or the server goes away, reads through a managed
//! subscription and commits what it printed, stops once caught up, and
//! says where to resume when it ends.
//!
//! Owns: the subscribe loop, reconnecting with backoff, and the exit
//! summary.
//! Must not: know the server's internals; it sees what the wire shows.

mod output;
mod start;
mod stream;

use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::ConnArgs;
use super::term::{print, progress};
use super::wire::{channel, hex};
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
pub use output::Format as OutputFormat;
use output::Format;
use output::{Schemas, created_ms, render, summary};
use start::{Ask, End, Plan, parse_since};
use stream::{Call, Source};

/// The first wait before reconnecting; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between reconnects.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `eventbus subscribe …`
#[derive(Debug, Args)]
#[command(after_help = "Output (-o): `json` prints one line per event: \
{\"replay_id\": \"<16 hex digits>\", \"event_id\": ..., \"schema_id\": ..., \"payload\": {...}} \
(the default when standard output is not a terminal); `pretty` a header line with the replay id \
and CreatedDate, then the indented payload (the default on a terminal); `payload` the payload \
alone. Replay ids are printed in hex; --from takes that hex form (or the base64 of the 8 bytes, \
as some clients store them). When the connection or the server goes away the command reconnects \
with backoff and resumes after the last printed event; on exit (also Ctrl-C) it prints a summary \
with the replay id to resume from on standard error. Flow control is real: the command asks for \
--credit events at a time and asks again when the server reports none pending.

Examples:
  eventbus subscribe /event/Order_Event__e --from earliest --until-caught-up
  eventbus subscribe /event/Order_Event__e --last 10 -o pretty
  eventbus subscribe /event/Order_Event__e --since 2026-12-04T10:00:00Z
  eventbus subscribe --managed Order_Processor --count 100")]
pub struct SubscribeArgs {
    /// Topic name (not needed with --managed).
    #[arg(required_unless_present = "managed")]
    pub topic: Option<String>,
    /// Where to start: latest, earliest (any case), or a replay id (hex or
    /// base64) to resume after.
    #[arg(long, default_value = "latest")]
    pub from: String,
    /// Start so that the last N existing events are printed.
    #[arg(long, value_name = "N", conflicts_with_all = ["from", "since"])]
    pub last: Option<u64>,
    /// Start at the first event at or after TIME: RFC 3339
    /// (2026-12-04T10:00:00Z) or a duration ago (10m, 2h). Uses the events'
    /// CreatedDate.
    #[arg(long, value_name = "TIME", value_parser = parse_since, conflicts_with = "from")]
    pub since: Option<SystemTime>,
    /// Read through this managed subscription (id or developer name): the
    /// server keeps the position, and the command commits what it printed,
    /// so the next run continues after it.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["topic", "from", "last", "since"])]
    pub managed: Option<String>,
    /// Exit once every event that existed at the start is printed (kcat -e).
    #[arg(long, short = 'e')]
    pub until_caught_up: bool,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Events to ask for at a time (the server caps outstanding credit).
    #[arg(long, default_value_t = 100)]
    pub credit: i32,
    /// Output format (default: pretty on a terminal, json otherwise).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputFormat>,
    /// No summary on exit.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Connection settings.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// How one call ended, when not with an error that ends the command.
enum Ended {
    /// Done: count reached, caught up, or interrupted.
    Done,
    /// The connection or the server went away: reconnect.
    Lost(String),
}

/// Whether a failed call is worth reconnecting for: the server or the
/// connection went away, not a refusal of what was asked.
fn retryable(st: &tonic::Status, reconnecting: bool) -> bool {
    use tonic::Code;
    match st.code() {
        Code::Unavailable
        | Code::Cancelled
        | Code::Unknown
        | Code::Aborted
        | Code::DeadlineExceeded => true,
        // A managed subscription is held a moment longer by a connection
        // that went away.
        Code::FailedPrecondition => reconnecting && st.message().contains("already"),
        _ => false,
    }
}

/// A short reason for the reconnect message.
fn reason(st: &tonic::Status) -> String {
    let msg = st.message();
    let msg = msg
        .split("rpcId:")
        .next()
        .unwrap_or(msg)
        .trim_end_matches([' ', ';']);
    if msg.is_empty() {
        format!("{:?}", st.code())
    } else {
        format!("{:?}: {msg}", st.code())
    }
}

/// Exponential backoff with jitter: 100 ms doubling to 5 s, each wait
/// between 75 % and 100 % of its step, so many clients of a restarted
/// server do not all come back at once.
struct Backoff {
    step: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            step: BACKOFF_FIRST,
        }
    }

    fn reset(&mut self) {
        self.step = BACKOFF_FIRST;
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(BACKOFF_MAX);
        // Random enough for spreading reconnects out.
        let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        step.mul_f64(0.75 + f64::from(r) / 4000.0)
    }
}

/// A subscription across reconnects.
struct Session {
    conn: ConnArgs,
    format: Format,
    count: Option<u64>,
    credit: i32,
    plan: Plan,
    schemas: Schemas,
    /// Events printed.
    printed: u64,
    /// The last printed replay id.
    last_printed: Option<Vec<u8>>,
    /// The newest replay id handled (printed or passed over): a reconnect
    /// resumes after it, and an event at or before it is a duplicate.
    handled: Option<Vec<u8>>,
    /// The newest replay id whose commit was answered (managed).
    committed: Option<Vec<u8>>,
    /// Set by Ctrl-C or SIGTERM.
    stop: CancellationToken,
    bar: indicatif::ProgressBar,
}

impl Session {
    fn done_counting(&self) -> bool {
        self.count.is_some_and(|n| self.printed >= n)
    }

    /// Credit to ask for now: `--credit`, never beyond `--count`.
    fn want(&self) -> i32 {
        match self.count {
            Some(n) => {
                let left = n.saturating_sub(self.printed);
                i32::try_from(left.min(self.credit as u64)).unwrap_or(i32::MAX)
            }
            None => self.credit,
        }
    }

    /// Where the next call starts.
    fn source(&self) -> Source {
        match (&self.plan.source, &self.handled) {
            (Source::Topic { topic, .. }, Some(id)) => Source::Topic {
                topic: topic.clone(),
                preset: crate::api::pb::ReplayPreset::Custom,
                replay_id: id.clone(),
            },
            (source, _) => source.clone(),
        }
    }

    /// Whether the caught-up point is printed.
    fn caught_up(&self) -> bool {
        match &self.plan.end {
            End::Now => true,
            End::At(end) => self.handled.as_ref().is_some_and(|h| h >= end),
            End::Follow | End::FirstKeepalive => false,
        }
    }

    /// One call, until it ends, fails or the command is done.
    async fn follow(&mut self, channel: Channel, reconnecting: bool) -> Result<Ended> {
        let mut client = PubSubClient::new(channel);
        let call = Call::open(&mut client, &self.conn, &self.source(), self.want().max(1)).await;
        let mut call = match call {
            Ok(c) => c,
            // The first call must open: a server that never answered (not
            // running, speaking TLS) is an error to show, not to retry.
            Err(st) if reconnecting && retryable(&st, reconnecting) => {
                return Ok(Ended::Lost(reason(&st)));
            }
            Err(st) => return Err(rpc_error(self.rpc(), st)),
        };
        let mut out = std::io::stdout().lock();
        let mut sent_commit: Option<(String, Vec<u8>)> = None;
        let ended = loop {
            let resp = tokio::select! {
                biased;
                () = self.stop.cancelled() => break Ended::Done,
                r = call.next() => r,
            };
            let resp = match resp {
                Ok(Some(r)) => r,
                Ok(None) => break Ended::Lost("the server ended the stream".into()),
                Err(st) if retryable(&st, reconnecting) => break Ended::Lost(reason(&st)),
                Err(st) => {
                    drop(out);
                    call.close(None).await;
                    return Err(rpc_error(self.rpc(), st));
                }
            };
            if let Some(c) = &resp.commit {
                self.answered(c);
            }
            let keepalive = resp.events.is_empty() && resp.commit.is_none();
            if keepalive && self.plan.end == End::FirstKeepalive {
                break Ended::Done;
            }
            // A keepalive says everything up to the stream's position was
            // delivered: a reconnect may resume there (managed streams
            // resume at their commit instead).
            if keepalive
                && matches!(self.plan.source, Source::Topic { .. })
                && resp.latest.len() == 8
                && self
                    .handled
                    .as_ref()
                    .is_none_or(|h| resp.latest.as_slice() > h.as_slice())
            {
                self.handled = Some(resp.latest.clone());
            }
            let mut lines = String::new();
            for ev in resp.events {
                if self.done_counting() || self.caught_up() {
                    break;
                }
                if self
                    .handled
                    .as_ref()
                    .is_some_and(|h| ev.replay_id.as_ref() <= h.as_slice())
                {
                    continue; // delivered again after a reconnect: printed already
                }
                let event = ev.event.unwrap_or_default();
                let payload = self
                    .schemas
                    .decode(&mut client, &self.conn, &ev.replay_id, &event)
                    .await?;
                self.handled = Some(ev.replay_id.to_vec());
                if self.plan.skip > 0 {
                    self.plan.skip -= 1;
                    continue;
                }
                if let Some(t) = self.plan.since_ms {
                    if created_ms(&payload).is_some_and(|ms| ms < t) {
                        continue;
                    }
                    self.plan.since_ms = None;
                }
                lines.push_str(&render(self.format, &ev.replay_id, &event, &payload));
                self.printed += 1;
                self.last_printed = Some(ev.replay_id.to_vec());
                self.bar.inc(1);
            }
            print(&self.bar, &mut out, &lines)?;
            // Commit what was printed (or passed over as a duplicate).
            if let Some(h) = &self.handled
                && sent_commit.as_ref().is_none_or(|(_, id)| id != h)
                && self.committed.as_ref() != Some(h)
                && let Some(req) = call.commit(h).await
            {
                sent_commit = Some((req, h.clone()));
            }
            if self.done_counting() || self.caught_up() {
                break Ended::Done;
            }
            // Ask for more when the server has none pending, never beyond --count.
            if resp.pending == 0 {
                let want = self.want();
                if want > 0 && !call.ask(want).await {
                    break Ended::Lost("the request stream closed".into());
                }
            }
        };
        drop(out);
        if let Ended::Done = ended {
            let waiting = sent_commit
                .filter(|(_, id)| self.committed.as_ref() != Some(id))
                .map(|(req, _)| req);
            if let Some(answer) = call.close(waiting).await {
                self.answered(&answer);
            }
        }
        Ok(ended)
    }

    fn rpc(&self) -> &'static str {
        match self.plan.source {
            Source::Managed(_) => "ManagedSubscribe",
            Source::Topic { .. } => "Subscribe",
        }
    }

    /// Notes a commit answer.
    fn answered(&mut self, c: &crate::api::pb::CommitReplayResponse) {
        match &c.error {
            None => self.committed = Some(c.replay_id.to_vec()),
            Some(e) => self.bar.suspend(|| {
                eprintln!(
                    "eventbus: the commit of {} failed: {}",
                    hex(&c.replay_id),
                    e.msg
                );
            }),
        }
    }

    /// What the summary says about resuming.
    fn resume_hint(&self) -> String {
        match &self.plan.source {
            Source::Managed(name) => match &self.committed {
                Some(id) => format!("committed {} to {name}", hex(id)),
                None => format!("nothing committed to {name}"),
            },
            Source::Topic { .. } => match &self.last_printed {
                Some(id) => format!("resume with --from {}", hex(id)),
                None => String::new(),
            },
        }
    }
}

/// Cancels `stop` on Ctrl-C (SIGINT) or SIGTERM.
fn on_signal(stop: CancellationToken) {
    // Untracked on purpose: it only cancels the token and ends with the
    // process.
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        stop.cancel();
    });
}

/// `eventbus subscribe …`: events out as JSON lines (or `--output`), with
/// flow control, reconnecting until done.
///
/// # Errors
/// A bad `--from`, `--credit` or `--since`, the first connection failing,
/// errors that a reconnect cannot fix (unknown topic, authentication),
/// an event that does not decode.
pub async fn run(args: SubscribeArgs) -> Result<()> {
    if args.credit <= 0 {
        bail!("--credit must be at least 1");
    }
    let stop = CancellationToken::new();
    on_signal(stop.clone());
    let format = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Pretty
    } else {
        Format::Json
    });
    let first = channel(&args.conn).await?;
    let plan = start::plan(
        &first,
        &args.conn,
        &Ask {
            topic: args.topic.as_deref(),
            from: &args.from,
            last: args.last,
            since: args.since,
            managed: args.managed.as_deref(),
            until_caught_up: args.until_caught_up,
        },
    )
    .await?;
    let started = Instant::now();
    let mut session = Session {
        conn: args.conn,
        format,
        count: args.count,
        credit: args.credit,
        plan,
        schemas: Schemas::default(),
        printed: 0,
        last_printed: None,
        handled: None,
        committed: None,
        stop: stop.clone(),
        bar: progress(args.count, "receiving"),
    };
    let result = run_session(&mut session, first).await;
    session.bar.finish_and_clear();
    if !args.quiet {
        eprintln!(
            "eventbus: {}",
            summary(
                session.printed,
                started.elapsed(),
                session.last_printed.as_deref(),
                &session.resume_hint()
            )
        );
    }
    result
}

async fn run_session(session: &mut Session, first: Channel) -> Result<()> {
    if session.caught_up() || session.count == Some(0) {
        return Ok(());
    }
    let mut backoff = Backoff::new();
    let mut channel_now = Some(first);
    let mut reconnecting = false;
    loop {
        let lost = match channel_now.take() {
            Some(ch) => {
                let before = session.handled.clone();
                match session.follow(ch, reconnecting).await? {
                    Ended::Done => return Ok(()),
                    Ended::Lost(why) => {
                        if session.handled != before {
                            backoff.reset();
                        }
                        why
                    }
                }
            }
            None => match channel(&session.conn).await {
                Ok(ch) => {
                    channel_now = Some(ch);
                    continue;
                }
                // The server is still away: the short form, not the advice
                // for a first connection.
                Err(e) if format!("{e:#}").contains("connection refused") => {
                    "connection refused".to_owned()
                }
                Err(e) => crate::client::error_text(&e),
            },
        };
        reconnecting = true;
        let wait = backoff.next();
        let at = match (&session.plan.source, &session.handled) {
            (Source::Managed(name), _) => format!("resuming {name} after its last commit"),
            (_, Some(id)) => format!("resuming after {}", hex(id)),
            (_, None) => "starting again".to_owned(),
        };
        session.bar.suspend(|| {
            eprintln!(
                "eventbus: connection lost ({lost}); {at} in {}ms",
                wait.as_millis()
            );
        });
        tokio::select! {
            () = session.stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        let steps = [100u64, 200, 400, 800, 1600, 3200, 5000, 5000];
        for (w, s) in waits.iter().zip(steps) {
            let s = Duration::from_millis(s);
            assert!(
                *w <= s && *w >= s.mul_f64(0.75),
                "{w:?} for a step of {s:?}"
            );
        }
        b.reset();
        assert!(b.next() <= BACKOFF_FIRST);
    }

    #[test]
    fn only_a_connection_or_server_going_away_is_retried() {
        use tonic::{Code, Status};
        assert!(retryable(&Status::unavailable("shutting down"), false));
        assert!(retryable(&Status::cancelled("reset"), false));
        assert!(!retryable(&Status::not_found("no topic"), true));
        assert!(!retryable(&Status::unauthenticated("bad token"), true));
        assert!(!retryable(&Status::invalid_argument("bad replay id"), true));
        let held = Status::new(Code::FailedPrecondition, "already active");
        assert!(retryable(&held, true) && !retryable(&held, false));
    }

    #[test]
    fn the_reason_drops_the_rpc_id() {
        let st = tonic::Status::unavailable("the server is shutting down; rpcId: 42");
        assert_eq!(reason(&st), "Unavailable: the server is shutting down");
        let st = tonic::Status::unavailable("Shutting down. Resume later. rpcId: 42");
        assert_eq!(reason(&st), "Unavailable: Shutting down. Resume later.");
    }
}
