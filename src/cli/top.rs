//! `eventbus top`: what a server is doing at a glance, its topics (events,
//! publish rate, bytes, subscribers, last event) and its consumers (the
//! live streams: kind, name, peer, user, delivered, credit, lag).
//!
//! Owns: the two Admin calls of a snapshot (`ListTopics`, `ListStreams`),
//! its text and JSON forms, and the live view: the terminal's alternate
//! screen redrawn every `--interval`, restored however the command ends
//! (q, Esc, Ctrl-C, SIGTERM, an error). Not on a terminal, or with
//! `--once`/`--json`, one snapshot is printed and the command exits: that
//! is what scripts and tests read.
//! Must not: touch the server's internals; it sees what the Admin API
//! shows the caller's tenant.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::ConnArgs;
use super::format::{age, bytes, now_ms, rate};
use super::wire::{channel, hex, unary};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::client::{parse_duration, rpc_error};

/// `eventbus top …`
#[derive(Debug, Args)]
#[command(
    after_help = "On a terminal the view refreshes every --interval until q, Esc or Ctrl-C. \
Piped, or with --once, one snapshot is printed as text; with --json as one JSON document. \
RATE/s is the server's average over about the last minute; LAG is how many events a stream is \
behind its topic's newest; CREDIT is what it asked for and was not yet sent."
)]
pub struct TopArgs {
    /// How often the view is refreshed.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print one snapshot as plain text and exit.
    #[arg(long)]
    pub once: bool,
    /// Print one snapshot as one JSON document and exit.
    #[arg(long)]
    pub json: bool,
    /// Only this topic and its consumers.
    #[arg(long)]
    pub topic: Option<String>,
    /// Connection settings.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// What the server showed at one moment.
struct Snapshot {
    at_ms: u64,
    topics: Vec<admin::TopicDescription>,
    streams: Vec<admin::StreamDescription>,
}

/// Takes a snapshot: topics and streams, asked for together.
async fn snapshot(
    client: &AdminClient<Channel>,
    conn: &ConnArgs,
    topic: Option<&str>,
) -> Result<Snapshot> {
    let (mut a, mut b) = (client.clone(), client.clone());
    let (topics, streams) = tokio::join!(
        a.list_topics(unary(conn, admin::ListTopicsRequest {})),
        b.list_streams(unary(
            conn,
            admin::ListStreamsRequest {
                topic_name: topic.unwrap_or_default().to_owned(),
            },
        )),
    );
    let mut topics = topics
        .map_err(|e| rpc_error("ListTopics", e))?
        .into_inner()
        .topics;
    if let Some(name) = topic {
        topics.retain(|t| t.topic_name == name);
    }
    Ok(Snapshot {
        at_ms: now_ms(),
        topics,
        streams: streams
            .map_err(|e| rpc_error("ListStreams", e))?
            .into_inner()
            .streams,
    })
}

fn kind(s: &admin::StreamDescription) -> &'static str {
    match admin::StreamKind::try_from(s.kind) {
        Ok(admin::StreamKind::ManagedSubscribe) => "managed",
        _ => "subscribe",
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// The snapshot as text lines: the topics table, a blank line, the
/// consumers table.
fn render(snap: &Snapshot) -> Vec<String> {
    let mut lines = Vec::with_capacity(snap.topics.len() + snap.streams.len() + 3);
    lines.push(format!(
        "{:<40} {:>10} {:>9} {:>10} {:>5} {:>10}",
        "TOPIC", "EVENTS", "RATE/s", "BYTES", "SUBS", "LAST EVENT"
    ));
    for t in &snap.topics {
        lines.push(format!(
            "{:<40} {:>10} {:>9} {:>10} {:>5} {:>10}",
            t.topic_name,
            t.event_count,
            rate(t.publish_rate),
            bytes(t.bytes_on_disk),
            t.subscribers,
            age(snap.at_ms, t.last_event_ms)
        ));
    }
    lines.push(String::new());
    lines.push(format!(
        "{:<40} {:<9} {:<20} {:<21} {:<12} {:>10} {:>6} {:>8}",
        "TOPIC", "KIND", "NAME", "PEER", "USER", "DELIVERED", "CREDIT", "LAG"
    ));
    for s in &snap.streams {
        lines.push(format!(
            "{:<40} {:<9} {:<20} {:<21} {:<12} {:>10} {:>6} {:>8}",
            s.topic_name,
            kind(s),
            or_dash(&s.developer_name),
            or_dash(&s.peer),
            or_dash(&s.user),
            s.delivered_events,
            s.credit,
            s.lag
        ));
    }
    if snap.streams.is_empty() {
        lines.push("(no consumers)".to_owned());
    }
    lines
}

/// The snapshot as one JSON document.
fn to_json(snap: &Snapshot) -> Value {
    json!({
        "time_ms": snap.at_ms,
        "topics": snap.topics.iter().map(|t| json!({
            "topic": t.topic_name,
            "event_count": t.event_count,
            "publish_rate": t.publish_rate,
            "bytes_on_disk": t.bytes_on_disk,
            "subscribers": t.subscribers,
            "last_event_ms": (t.last_event_ms > 0).then_some(t.last_event_ms),
        })).collect::<Vec<_>>(),
        "streams": snap.streams.iter().map(|s| json!({
            "id": s.id,
            "topic": s.topic_name,
            "kind": kind(s),
            "managed_subscription_id": (!s.managed_subscription_id.is_empty()).then_some(&s.managed_subscription_id),
            "developer_name": (!s.developer_name.is_empty()).then_some(&s.developer_name),
            "peer": (!s.peer.is_empty()).then_some(&s.peer),
            "user": (!s.user.is_empty()).then_some(&s.user),
            "delivered_events": s.delivered_events,
            "delivered_bytes": s.delivered_bytes,
            "credit": s.credit,
            "lag": s.lag,
            "replay_id": hex(&s.replay_id),
            "opened_ms": s.opened_ms,
            "last_delivery_ms": (s.last_delivery_ms > 0).then_some(s.last_delivery_ms),
            "rpc_id": s.rpc_id,
        })).collect::<Vec<_>>(),
    })
}

/// `eventbus top`.
///
/// # Errors
/// Connection failures and server errors (with their error code); a
/// terminal that cannot be put into raw mode.
pub async fn run(args: TopArgs) -> Result<()> {
    let client = AdminClient::new(channel(&args.conn).await?);
    let topic = args.topic.as_deref();
    if args.json {
        let snap = snapshot(&client, &args.conn, topic).await?;
        println!("{}", to_json(&snap));
        return Ok(());
    }
    if args.once || !std::io::stdout().is_terminal() {
        let snap = snapshot(&client, &args.conn, topic).await?;
        for line in render(&snap) {
            println!("{line}");
        }
        return Ok(());
    }
    // The first snapshot before the screen changes: a server that is not
    // there, or refuses the caller, is reported like any other command's.
    let first = snapshot(&client, &args.conn, topic).await?;
    let screen = Screen::enter()?;
    let outcome = live(&screen, &client, &args, first).await;
    drop(screen);
    outcome
}

/// Redraws every interval until asked to stop.
async fn live(
    screen: &Screen,
    client: &AdminClient<Channel>,
    args: &TopArgs,
    first: Snapshot,
) -> Result<()> {
    let mut keys = screen.keys();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut tick = tokio::time::interval(args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: `first` is that snapshot
    let mut shown = first;
    let mut problem: Option<String> = None;
    loop {
        screen.draw(&args.conn.server, args.interval, &shown, problem.as_deref())?;
        tokio::select! {
            _ = tick.tick() => match snapshot(client, &args.conn, args.topic.as_deref()).await {
                Ok(snap) => {
                    shown = snap;
                    problem = None;
                }
                // Keep the last view and say why it is stale; the server may be restarting.
                Err(e) => problem = Some(format!("{e:#}")),
            },
            key = keys.recv() => match key {
                Some(Key::Quit) | None => return Ok(()),
                Some(Key::Redraw) => {}
            },
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// What a key press asks for.
#[derive(Debug)]
enum Key {
    Quit,
    Redraw,
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct Screen {
    stop_keys: Arc<AtomicBool>,
}

impl Screen {
    fn enter() -> Result<Self> {
        use crossterm::{cursor, execute, terminal};
        terminal::enable_raw_mode().context("cannot put the terminal into raw mode")?;
        let screen = Self {
            stop_keys: Arc::new(AtomicBool::new(false)),
        };
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .context("cannot switch to the alternate screen")?;
        Ok(screen)
    }

    /// Key presses, read on a thread of their own (crossterm's reads
    /// block); the thread ends when the screen is dropped.
    fn keys(&self) -> mpsc::Receiver<Key> {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        let (tx, rx) = mpsc::channel(8);
        let stop = self.stop_keys.clone();
        // Untracked: a plain thread, not a task; it checks `stop` every
        // 100 ms and the process ends with the command anyway.
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Polls so the thread notices `stop` within 100 ms.
                match event::poll(Duration::from_millis(100)) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => return,
                }
                let key = match event::read() {
                    Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                        let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                            && matches!(k.code, KeyCode::Char('c'));
                        match k.code {
                            KeyCode::Char('q' | 'Q') | KeyCode::Esc => Key::Quit,
                            _ if ctrl_c => Key::Quit,
                            _ => continue,
                        }
                    }
                    Ok(Event::Resize(..)) => Key::Redraw,
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.blocking_send(key).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Draws `snap` with a header line, cut to the terminal's size.
    fn draw(
        &self,
        server: &str,
        interval: Duration,
        snap: &Snapshot,
        problem: Option<&str>,
    ) -> Result<()> {
        use crossterm::{cursor, queue, terminal};
        // A terminal that reports no size (a bare pseudo-terminal) gets a
        // common one rather than an empty screen.
        let (cols, rows) = match terminal::size() {
            Ok((c, r)) if c > 0 && r > 0 => (c, r),
            _ => (120, 40),
        };
        let mut header = vec![format!(
            "eventbus top - {server} - {} topics, {} consumers - every {} - q to quit",
            snap.topics.len(),
            snap.streams.len(),
            humantime::format_duration(interval)
        )];
        if let Some(p) = problem {
            header.push(format!("! {p} (showing the last snapshot)"));
        }
        header.push(String::new());
        let mut out = std::io::stdout().lock();
        queue!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )?;
        for line in header
            .into_iter()
            .chain(render(snap))
            .take(usize::from(rows))
        {
            let cut: String = line.chars().take(usize::from(cols)).collect();
            // Raw mode: a line feed alone does not return the cursor.
            write!(out, "{cut}\r\n")?;
        }
        out.flush()?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        use crossterm::{cursor, execute, terminal};
        self.stop_keys.store(true, Ordering::Relaxed);
        // Best effort: nothing more can be done for a terminal that is gone.
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            at_ms: 1_700_000_010_000,
            topics: vec![admin::TopicDescription {
                topic_name: "/event/Order__e".into(),
                event_count: 42,
                bytes_on_disk: 2048,
                publish_rate: 1.25,
                subscribers: 2,
                last_event_ms: 1_700_000_007_000,
                ..Default::default()
            }],
            streams: vec![admin::StreamDescription {
                topic_name: "/event/Order__e".into(),
                kind: admin::StreamKind::ManagedSubscribe as i32,
                developer_name: "Fulfilment".into(),
                peer: "127.0.0.1:50000".into(),
                delivered_events: 40,
                credit: 60,
                lag: 2,
                replay_id: vec![0, 0, 0, 0, 0, 0, 0, 40].into(),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_text_snapshot_has_both_tables() {
        let lines = render(&snap());
        assert!(lines[0].starts_with("TOPIC") && lines[0].contains("RATE/s"));
        assert!(lines[1].contains("/event/Order__e"));
        for cell in ["42", "1.2", "2.0 KiB", "3s ago"] {
            assert!(lines[1].contains(cell), "{cell} in {:?}", lines[1]);
        }
        assert!(lines[3].contains("DELIVERED") && lines[3].contains("LAG"));
        for cell in ["managed", "Fulfilment", "127.0.0.1:50000", "40", "60"] {
            assert!(lines[4].contains(cell), "{cell} in {:?}", lines[4]);
        }
        assert!(lines[4].contains(" - "), "no user: {:?}", lines[4]);
    }

    #[test]
    fn the_json_snapshot_names_every_figure() {
        let v = to_json(&snap());
        assert_eq!(v["topics"][0]["publish_rate"], 1.25);
        assert_eq!(v["topics"][0]["last_event_ms"], 1_700_000_007_000i64);
        let s = &v["streams"][0];
        assert_eq!(s["kind"], "managed");
        assert_eq!(s["replay_id"], "0000000000000028");
        assert_eq!(s["user"], Value::Null);
        assert_eq!(s["last_delivery_ms"], Value::Null);
    }
}
