//! `eventbus subscribe` as a process against a real server: reconnecting
//! across a server restart, Ctrl-C, --until-caught-up, --last, --since,
//! --managed, and the client's error messages.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::common::*;

/// Publishes `n` orders from number `from`; their replay ids in the hex
/// the CLI prints.
async fn published_hex(server: &TestServer, from: i64, n: i64) -> Vec<String> {
    publish_orders(server, from, n)
        .await
        .iter()
        .map(|i| hex(i))
        .collect()
}

/// Replay id bytes in the hex the CLI prints.
fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `eventbus ARGS --server ADDR` to the end with optional stdin.
async fn run(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    run_eventbus(addr, args, stdin).await
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn replay_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["replay_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A subscribe command still running: its output lines as they come.
struct Following {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Following {
    fn spawn(addr: &str, args: &[&str]) -> Following {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventbus"))
            .args(args)
            .arg("--server")
            .arg(addr)
            .env_remove("EVENTBUS_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eventbus");
        let (tx, lines) = mpsc::unbounded_channel(); // bounded by the child's output
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Following {
            child,
            lines,
            stderr,
        }
    }

    /// The next `n` lines, failing after 30 s.
    async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        while got.len() < n {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("{n} lines within 30 s, got {got:?}"))
                .expect("the command is still printing");
            got.push(serde_json::from_str(&line).expect("one JSON object per line"));
        }
        got
    }

    /// Sends `signal` to the child (by its pid) and waits for it to end.
    async fn stop_with(self, signal: i32) -> (ExitStatus, String, Vec<String>) {
        let Following {
            mut child,
            mut lines,
            stderr,
        } = self;
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on the pid of a child this test spawned and has
        // not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await
        .expect("the command ends within 20 s of the signal")
        .expect("join")
        .expect("wait");
        let mut rest = Vec::new();
        while let Ok(l) = lines.try_recv() {
            rest.push(l);
        }
        (status, stderr.join().expect("stderr reader"), rest)
    }
}

#[tokio::test]
async fn subscribe_resumes_after_a_server_restart_without_gaps_or_duplicates() {
    let server = start().await;
    let addr = server.addr.to_string();
    let mut ids = publish_orders(&server, 1, 3).await;
    let mut sub = Following::spawn(
        &addr,
        &["subscribe", ORDER_TOPIC, "--from", "earliest", "-o", "json"],
    );
    let first = sub.take(3).await;
    assert_eq!(
        replay_ids(&first),
        ids.iter().map(|i| hex(i)).collect::<Vec<_>>()
    );

    // The server goes away and comes back on the same port and data.
    let server = server.restart_on_same_port().await;
    ids.extend(publish_orders(&server, 4, 3).await);
    let second = sub.take(3).await;
    let all: Vec<String> = replay_ids(&first)
        .into_iter()
        .chain(replay_ids(&second))
        .collect();
    assert_eq!(
        all,
        ids.iter().map(|i| hex(i)).collect::<Vec<_>>(),
        "every event once, in order"
    );

    let (status, stderr, rest) = sub.stop_with(libc::SIGTERM).await;
    assert!(status.success(), "{stderr}");
    assert!(rest.is_empty(), "nothing more: {rest:?}");
    assert!(
        stderr.contains("connection lost (")
            && stderr.contains(&format!("resuming after {} in ", hex(&ids[2]))),
        "{stderr}"
    );
    assert!(stderr.contains("eventbus: 6 events in"), "{stderr}");
    server.shutdown().await;
}

#[tokio::test]
async fn from_latest_resumes_where_it_started_when_nothing_was_printed_yet() {
    // Found in review: a `--from latest` subscriber that had printed nothing
    // reconnected at a new LATEST and skipped what was published while it
    // was away. LATEST is now pinned when the command starts.
    let server = start().await;
    let addr = server.addr.to_string();
    publish_orders(&server, 1, 2).await;
    let mut sub = Following::spawn(&addr, &["subscribe", ORDER_TOPIC, "-o", "json"]);
    let open = || async {
        let mut admin = AdminClient::connect(format!("http://{addr}")).await.ok()?;
        let listed = admin
            .list_streams(admin::ListStreamsRequest::default())
            .await
            .ok()?
            .into_inner();
        (!listed.streams.is_empty()).then_some(())
    };
    eventually("the subscriber's stream", Duration::from_secs(20), open).await;
    let server = server.restart_on_same_port().await;
    // Published before or after the command reconnects: printed either way.
    let ids: Vec<String> = published_hex(&server, 3, 2).await;
    assert_eq!(replay_ids(&sub.take(2).await), ids);
    let (status, stderr, rest) = sub.stop_with(libc::SIGINT).await;
    assert!(status.success() && rest.is_empty(), "{stderr} {rest:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn ctrl_c_ends_with_a_summary_naming_where_to_resume() {
    let server = start().await;
    let addr = server.addr.to_string();
    let ids = publish_orders(&server, 1, 3).await;
    let mut sub = Following::spawn(&addr, &["subscribe", ORDER_TOPIC, "--from", "earliest"]);
    sub.take(3).await;
    let (status, stderr, _) = sub.stop_with(libc::SIGINT).await;
    assert!(status.success(), "{stderr}");
    let last = hex(&ids[2]);
    assert!(
        stderr.contains("eventbus: 3 events in")
            && stderr.contains(&format!("last replay id {last}; resume with --from {last}")),
        "{stderr}"
    );
    // The printed resume point works.
    let more = publish_orders(&server, 4, 1).await;
    let out = run(
        &addr,
        &["subscribe", ORDER_TOPIC, "--from", &last, "-e"],
        None,
    )
    .await;
    assert_eq!(replay_ids(&stdout_lines(&out)), vec![hex(&more[0])]);
    server.shutdown().await;
}

#[tokio::test]
async fn until_caught_up_last_and_since_start_and_stop_where_asked() {
    let server = start().await;
    let addr = server.addr.to_string();
    // Events whose CreatedDate is 1 s, 2 s, ... 8 s after the epoch.
    let input: String = (1..=8)
        .map(|i| {
            format!(
                "{{\"CreatedDate\":{},\"OrderNumber__c\":\"S-{i}\"}}\n",
                i * 1000
            )
        })
        .collect();
    let published = run(&addr, &["publish", ORDER_TOPIC], Some(&input)).await;
    let ids: Vec<String> = String::from_utf8_lossy(&published.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 8);

    let all = stdout_lines(
        &run(
            &addr,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--from",
                "EARLIEST",
                "--until-caught-up",
            ],
            None,
        )
        .await,
    );
    assert_eq!(replay_ids(&all), ids);
    let none = stdout_lines(
        &run(
            &addr,
            &["subscribe", ORDER_TOPIC, "--from", "Latest", "-e"],
            None,
        )
        .await,
    );
    assert!(none.is_empty());
    let last3 = stdout_lines(
        &run(
            &addr,
            &["subscribe", ORDER_TOPIC, "--last", "3", "-e"],
            None,
        )
        .await,
    );
    assert_eq!(replay_ids(&last3), ids[5..]);
    let more = stdout_lines(
        &run(
            &addr,
            &["subscribe", ORDER_TOPIC, "--last", "50", "-e"],
            None,
        )
        .await,
    );
    assert_eq!(replay_ids(&more), ids);
    let since = stdout_lines(
        &run(
            &addr,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--since",
                "1970-01-01T00:00:05Z",
                "-e",
            ],
            None,
        )
        .await,
    );
    assert_eq!(replay_ids(&since), ids[4..], "from CreatedDate 5 s on");
    let since = stdout_lines(
        &run(
            &addr,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--since",
                "1970-01-01T00:00:04.500Z",
                "-e",
            ],
            None,
        )
        .await,
    );
    assert_eq!(replay_ids(&since), ids[4..]);
    // A duration ago: these events are all older.
    let recent = stdout_lines(
        &run(
            &addr,
            &["subscribe", ORDER_TOPIC, "--since", "10m", "-e"],
            None,
        )
        .await,
    );
    assert!(recent.is_empty(), "{recent:?}");
    // The payload alone.
    let out = run(
        &addr,
        &[
            "subscribe",
            ORDER_TOPIC,
            "--last",
            "1",
            "-e",
            "-o",
            "payload",
        ],
        None,
    )
    .await;
    let payload = stdout_lines(&out);
    assert_eq!(payload.len(), 1);
    assert_eq!(payload[0]["OrderNumber__c"], "S-8");
    assert_eq!(payload[0]["CreatedDate"], 8000);
    // A bad --since says what it takes.
    let out = run(
        &addr,
        &["subscribe", ORDER_TOPIC, "--since", "yesterday"],
        None,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("2026-12-04T10:00:00Z"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn managed_reads_commit_what_was_printed_and_the_next_run_continues() {
    let server = start().await;
    let addr = server.addr.to_string();
    let out = run(
        &addr,
        &[
            "managed",
            "create",
            "Cli_Reader",
            "--topic",
            ORDER_TOPIC,
            "--default-replay",
            "earliest",
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = published_hex(&server, 1, 5).await;

    let out = run(
        &addr,
        &["subscribe", "--managed", "Cli_Reader", "--count", "3"],
        None,
    )
    .await;
    assert_eq!(replay_ids(&stdout_lines(&out)), ids[..3]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("committed {} to Cli_Reader", ids[2])),
        "{err}"
    );
    let describe = run(
        &addr,
        &["managed", "describe", "Cli_Reader", "--json"],
        None,
    )
    .await;
    let d: Value = serde_json::from_slice(&describe.stdout).expect("json");
    assert_eq!(d["committed_replay_id"], ids[2].as_str());

    // The next run continues after the commit and stops once caught up.
    let out = run(&addr, &["subscribe", "--managed", "Cli_Reader", "-e"], None).await;
    assert_eq!(replay_ids(&stdout_lines(&out)), ids[3..]);
    let out = run(&addr, &["subscribe", "--managed", "Cli_Reader", "-e"], None).await;
    assert!(stdout_lines(&out).is_empty(), "nothing left");

    // Across a server restart too.
    let mut sub = Following::spawn(&addr, &["subscribe", "--managed", "Cli_Reader"]);
    let more: Vec<String> = published_hex(&server, 6, 2).await;
    assert_eq!(replay_ids(&sub.take(2).await), more);
    let server = server.restart_on_same_port().await;
    let after: Vec<String> = published_hex(&server, 8, 2).await;
    assert_eq!(
        replay_ids(&sub.take(2).await),
        after,
        "no duplicates after the reconnect"
    );
    let (status, stderr, rest) = sub.stop_with(libc::SIGINT).await;
    assert!(status.success() && rest.is_empty(), "{stderr} {rest:?}");
    assert!(
        stderr.contains(&format!("committed {} to Cli_Reader", after[1])),
        "{stderr}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn errors_a_reconnect_cannot_fix_end_the_command() {
    let server = start().await;
    let addr = server.addr.to_string();
    let out = run(
        &addr,
        &["subscribe", "/event/Nope__e", "--from", "earliest"],
        None,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("topic.not.found"),
        "{err}"
    );
    assert!(!err.contains("connection lost"), "{err}");
    let out = run(&addr, &["subscribe", "--managed", "Nobody", "-e"], None).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not.found"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_says_to_start_the_server_once() {
    // A port nobody listens on: bound, then released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let out = run(&addr, &["topic", "list"], None).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("connection refused: is the server running? start it with `eventbus serve"),
        "{err}"
    );
    assert_eq!(
        err.matches("onnection refused").count(),
        1,
        "said once: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
