//! The client commands on a terminal: the real binary with its standard
//! streams on a pseudo-terminal (`openpty`), against a real server. What a
//! person sees is checked by replaying the captured bytes through a small
//! terminal model (carriage return, erase line, cursor up).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// A new pseudo-terminal of 80 columns: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the given ints; the
    // name and termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// What a run on the terminal left.
struct TerminalRun {
    status: ExitStatus,
    /// Every byte the terminal received.
    tty: Vec<u8>,
    /// Standard output when it was a pipe.
    piped_stdout: Option<String>,
}

/// Runs `eventbus ARGS` with stdin, stderr (and stdout unless
/// `pipe_stdout`) on a pseudo-terminal.
async fn on_terminal(args: Vec<String>, pipe_stdout: bool) -> TerminalRun {
    tokio::task::spawn_blocking(move || {
        let (master, slave) = openpty();
        let tty = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
        cmd.args(&args)
            .env_remove("EVENTBUS_SERVER")
            .stdin(tty(&slave))
            .stderr(tty(&slave))
            .stdout(if pipe_stdout {
                Stdio::piped()
            } else {
                tty(&slave)
            });
        let mut child = cmd.spawn().expect("spawn eventbus");
        // Only the child holds the terminal now: reading the master ends
        // (EIO) when it exits.
        drop(cmd);
        drop(slave);
        let mut master = std::fs::File::from(master);
        let reader = std::thread::spawn(move || {
            let mut tty = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tty.extend_from_slice(&buf[..n]);
            }
            tty
        });
        let piped_stdout = child.stdout.take().map(|mut out| {
            let mut s = String::new();
            out.read_to_string(&mut s).expect("read stdout");
            s
        });
        let status = child.wait().expect("wait");
        TerminalRun {
            status,
            tty: reader.join().expect("reader"),
            piped_stdout,
        }
    })
    .await
    .expect("join")
}

/// The lines a terminal shows after receiving `bytes`: `\r` returns to
/// the first column, `\n` moves down, ESC [ K / ESC [ 2 K erase, ESC [ n A
/// moves up; other escape sequences change nothing visible here.
fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    continue;
                }
                chars.next();
                let mut param = String::new();
                let mut end = ' ';
                for p in chars.by_ref() {
                    if p.is_ascii_alphabetic() {
                        end = p;
                        break;
                    }
                    param.push(p);
                }
                match (end, param.as_str()) {
                    ('K', "" | "0") => lines[row].truncate(col),
                    ('K', "2") => lines[row].clear(),
                    ('A', n) => row = row.saturating_sub(n.parse().unwrap_or(1)),
                    _ => {}
                }
            }
            c => {
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    let mut shown: Vec<String> = lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .collect();
    while shown.last().is_some_and(String::is_empty) {
        shown.pop();
    }
    shown
}

fn args(server: &TestServer, list: &[&str]) -> Vec<String> {
    list.iter()
        .map(|s| (*s).to_owned())
        .chain(["--server".to_owned(), server.addr.to_string()])
        .collect()
}

fn dump(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[test]
fn the_terminal_model_follows_returns_erases_and_moves_up() {
    assert_eq!(screen(b"abc\r\x1b[2Kxy\n"), vec!["xy"]);
    assert_eq!(screen(b"one\ntwo\x1b[1A\r\x1b[K\n"), vec!["", "two"]);
    assert_eq!(screen(b"a\r\nb\r\n"), vec!["a", "b"]);
}

#[tokio::test]
async fn subscribe_on_a_terminal_prints_each_event_on_its_own_line() {
    let server = start().await;
    let ids = publish_orders(&server, 1, 5).await;
    let run = on_terminal(
        args(
            &server,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--from",
                "earliest",
                "--count",
                "3",
                "-o",
                "json",
            ],
        ),
        false,
    )
    .await;
    assert!(run.status.success(), "{}", dump(&run.tty));
    // The terminal's own newline is \r\n; nothing else may move the cursor
    // back over a line, and no progress display draws in between.
    let text = String::from_utf8_lossy(&run.tty).replace("\r\n", "\n");
    assert!(
        !text.contains('\r') && !text.contains('\x1b'),
        "only whole lines: {}",
        dump(&run.tty)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "3 events and the summary: {text}");
    for (line, id) in lines[..3].iter().zip(&ids) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("one JSON object per line ({e}): {}", dump(&run.tty)));
        assert_eq!(v["replay_id"], hex(id));
    }
    assert!(
        lines[3].starts_with("eventbus: 3 events in") && lines[3].contains(&hex(&ids[2])),
        "{text}"
    );
    assert_eq!(screen(&run.tty), lines, "what the person sees");

    // The default on a terminal: a header line per event, then indented JSON.
    let run = on_terminal(
        args(
            &server,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--from",
                "EARLIEST",
                "--count",
                "2",
            ],
        ),
        false,
    )
    .await;
    assert!(run.status.success(), "{}", dump(&run.tty));
    let text = String::from_utf8_lossy(&run.tty).replace("\r\n", "\n");
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("replay_id "))
        .collect();
    assert_eq!(headers.len(), 2, "{text}");
    assert!(
        headers[0].contains(&hex(&ids[0])) && headers[0].contains("2023-11-14T22:13:20.001Z"),
        "{text}"
    );
    assert!(
        text.contains("\n  \"OrderNumber__c\": \"ORD-000001\",\n"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn publish_from_a_file_on_a_terminal_prints_one_replay_id_per_line() {
    let server = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("five.jsonl");
    std::fs::write(
        &file,
        (1..=5)
            .map(|i| format!("{{\"OrderNumber__c\":\"A-{i}\"}}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");
    let run = on_terminal(
        args(&server, &["publish", ORDER_TOPIC, "--file", file]),
        false,
    )
    .await;
    assert!(run.status.success(), "{}", dump(&run.tty));
    let text = String::from_utf8_lossy(&run.tty).replace("\r\n", "\n");
    assert!(
        !text.contains('\r') && !text.contains('\x1b'),
        "{}",
        dump(&run.tty)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 16 && l.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_progress_display_goes_to_the_terminal_only_and_is_cleared() {
    let server = start().await;
    publish_orders(&server, 1, 300).await;
    // Data piped to a file-like reader, standard error on the terminal.
    let run = on_terminal(
        args(
            &server,
            &[
                "subscribe",
                ORDER_TOPIC,
                "--from",
                "earliest",
                "--count",
                "300",
                "--credit",
                "7",
            ],
        ),
        true,
    )
    .await;
    assert!(run.status.success(), "{}", dump(&run.tty));
    let out = run.piped_stdout.expect("piped");
    assert_eq!(out.lines().count(), 300);
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "json by default when piped"
    );
    assert!(!out.contains('\x1b') && !out.contains('\r'));
    // Whatever the display drew, the terminal shows only the summary.
    let shown = screen(&run.tty);
    assert_eq!(shown.len(), 1, "{shown:?} from {}", dump(&run.tty));
    assert!(shown[0].starts_with("eventbus: 300 events in"), "{shown:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn publish_on_a_terminal_says_it_reads_standard_input() {
    let server = start().await;
    // Standard input is the terminal, where nobody types: the command
    // waits; the hint is on the screen before that.
    let (master, slave) = openpty();
    let tty = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    cmd.args(args(&server, &["publish", ORDER_TOPIC]))
        .stdin(tty(&slave))
        .stdout(tty(&slave))
        .stderr(tty(&slave));
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd);
    drop(slave);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel(); // bounded by the child's output
    let mut reader = std::fs::File::from(master.try_clone().expect("dup"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let hint = "reading events from standard input";
    while !String::from_utf8_lossy(&seen).contains("end with Ctrl-D") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the hint within 10 s, saw {}", dump(&seen)))
            .expect("terminal open");
        seen.extend(chunk);
    }
    assert!(
        String::from_utf8_lossy(&seen).contains(hint),
        "{}",
        dump(&seen)
    );
    // Type one event and Ctrl-D (EOF at the start of a line).
    {
        use std::io::Write;
        let mut w = std::fs::File::from(master.try_clone().expect("dup"));
        w.write_all(b"{\"OrderNumber__c\":\"T-1\"}\n\x04")
            .expect("type");
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success());
    let events = publish_orders(&server, 2, 1).await;
    assert_eq!(
        replay_num(&events[0]),
        2,
        "the typed event was published first"
    );
    server.shutdown().await;
}

/// Replay id bytes in the hex the CLI prints.
fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
