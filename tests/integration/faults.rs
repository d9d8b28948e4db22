//! Storage faults against the real binary: a full disk (a small tmpfs), a
//! torn or damaged write-ahead log after SIGKILL, and a damaged store at
//! startup. Every acknowledged event must survive, or the server must refuse
//! to start with a message that says what is wrong and what to do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb::{self, ReplayPreset, pub_sub_client::PubSubClient};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::common::*;

/// Acknowledged events: replay id -> payload.
type Acked = BTreeMap<u64, Vec<u8>>;

/// A tmpfs mounted for one test; unmounted on drop, also when the test fails.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "80m") on `path`, or explains why the
    /// test is skipped (mounting needs root; CI runs the tests as root).
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: path.to_owned(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipping the disk-full test: mounting a tmpfs was refused ({}); it needs root, as in CI",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping the disk-full test: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process we started still holds a file): detach it now;
            // the kernel frees it when the last user goes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// The `eventbus` binary serving on a free loopback port, with every log
/// line kept. Killed (by its pid) on drop, so a failing test leaves no
/// process behind and a tmpfs can unmount.
struct Server {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

fn serve_command(data: &Path, topics: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventbus"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--topics")
        .arg(topics)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Server {
    async fn start(data: &Path, topics: &Path, extra: &[&str]) -> Server {
        let mut child = serve_command(data, topics, extra)
            .spawn()
            .expect("spawn eventbus");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel(); // bounded by the child's log lines
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let message = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                if let Some(rest) = message.split("listening on ").nth(1) {
                    let _ = addr_tx.send(rest.trim().to_owned());
                }
                sink.lock().expect("log lines").push(line);
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx.recv()).await {
            Ok(Some(a)) => a.parse().expect("socket address"),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "eventbus did not start; its log:\n{}",
                    logs.lock().expect("log lines").join("\n")
                );
            }
        };
        wait_until_serving(addr).await;
        Server { child, addr, logs }
    }

    /// Whether a log line contains `needle`.
    fn logged(&self, needle: &str) -> bool {
        self.logs
            .lock()
            .expect("log lines")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Whether a log line containing `needle` shows up within 10 s: the
    /// server writes the line around the time it answers, and a reader
    /// thread copies its stderr, so the line can trail the answer a little.
    async fn logged_soon(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.logged(needle) {
                return true;
            }
            // Polling a log, not synchronisation.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.logged(needle)
    }

    fn log_text(&self) -> String {
        self.logs.lock().expect("log lines").join("\n")
    }

    /// Sends `signal` to the server (by its pid) and waits up to 30 s for it
    /// to exit.
    async fn stop(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "eventbus did not exit within 30 s of {signal}"
            );
            // Polling the exit of a child process, not synchronisation.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn client(&self) -> PubSubClient<Channel> {
        PubSubClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    async fn schema_id(&self) -> String {
        self.client()
            .await
            .get_topic(pb::TopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .expect("get topic")
            .into_inner()
            .schema_id
    }

    /// The newest replay id of the order topic (0 when empty).
    async fn last_replay(&self) -> u64 {
        let mut admin = AdminClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect admin");
        let d = admin
            .describe_topic(admin::DescribeTopicRequest {
                topic_name: ORDER_TOPIC.into(),
            })
            .await
            .expect("describe topic")
            .into_inner();
        replay_num(&d.last_replay_id)
    }

    /// Reads the order topic from EARLIEST up to replay id `upto`, checking
    /// that ids are dense from 1.
    async fn read_upto(&self, upto: u64) -> Acked {
        let mut log = Acked::new();
        if upto == 0 {
            return log;
        }
        let mut client = self.client().await;
        let (tx, mut stream) = subscribe(&mut client, fetch(ReplayPreset::Earliest, vec![], 100))
            .await
            .expect("subscribe");
        let mut last = 0;
        while last < upto {
            let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .unwrap_or_else(|_| panic!("events up to {upto} missing; the log ends at {last}"))
                .expect("stream healthy")
                .expect("stream open");
            for e in &resp.events {
                let id = replay_num(&e.replay_id);
                assert_eq!(id, last + 1, "replay ids must be dense from 1");
                last = id;
                let payload = e.event.as_ref().expect("event").payload.to_vec();
                log.insert(id, payload);
            }
            if resp.pending_num_requested == 0 {
                tx.send(more(100)).await;
            }
        }
        log
    }

    /// Asserts that every acknowledged event is readable, unchanged.
    async fn assert_has_all(&self, acked: &Acked) {
        let want = acked.keys().next_back().copied().unwrap_or(0);
        let last = self.last_replay().await;
        assert!(
            last >= want,
            "acknowledged events up to {want} expected; the topic ends at {last}"
        );
        let log = self.read_upto(last).await;
        for (id, payload) in acked {
            assert_eq!(
                log.get(id),
                Some(payload),
                "acknowledged event {id} lost or changed"
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // By pid, our own child; a no-op when it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An order payload of about `filler` bytes that is unique to `n`.
fn unique_payload(n: i64, filler: usize) -> Vec<u8> {
    let filler = filler.max(12); // room for the 12-digit tag
    let mut p = big_order_payload(filler);
    let tag = format!("{n:012}");
    // big_order_payload ends with the filler string and one union-index byte.
    let start = p.len() - 1 - filler;
    p[start..start + tag.len()].copy_from_slice(tag.as_bytes());
    p
}

/// Publishes `n` unique events (one unary request); returns (id, payload).
async fn publish(
    client: &mut PubSubClient<Channel>,
    schema: &str,
    from: i64,
    n: i64,
    filler: usize,
) -> Result<Vec<(u64, Vec<u8>)>, tonic::Status> {
    let payloads: Vec<Vec<u8>> = (from..from + n)
        .map(|i| unique_payload(i, filler))
        .collect();
    let resp = client
        .publish(pb::PublishRequest {
            topic_name: ORDER_TOPIC.into(),
            events: payloads
                .iter()
                .map(|p| pb::ProducerEvent {
                    id: String::new(),
                    schema_id: schema.into(),
                    payload: p.clone().into(),
                    headers: vec![],
                })
                .collect(),
            auth_refresh: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(resp.results.len(), payloads.len());
    Ok(resp
        .results
        .iter()
        .zip(payloads)
        .map(|(r, p)| {
            assert!(r.error.is_none(), "a valid event failed: {:?}", r.error);
            (replay_num(&r.replay_id), p)
        })
        .collect())
}

/// Publishes `requests` requests of `per` events and records the acks.
async fn publish_some(server: &Server, acked: &mut Acked, requests: i64, per: i64, filler: usize) {
    let schema = server.schema_id().await;
    let mut client = server.client().await;
    let base = acked.len() as i64 * 1000;
    for r in 0..requests {
        let got = publish(&mut client, &schema, base + r * per, per, filler)
            .await
            .expect("publish on a healthy disk");
        for (id, p) in got {
            assert!(acked.insert(id, p).is_none(), "replay id {id} reused");
        }
    }
}

/// The newest write-ahead log file (`NNNNNN.log`) of a data folder.
fn newest_wal(data: &Path) -> PathBuf {
    std::fs::read_dir(data)
        .expect("read data folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .expect("a WAL file")
}

/// Every data file of a folder (RocksDB's own `LOG*` text files excluded:
/// each open attempt rotates them); directories map to an empty marker.
fn snapshot(data: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(data)
        .expect("read data folder")
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with("LOG"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = if e.path().is_dir() {
                b"<dir>".to_vec()
            } else {
                std::fs::read(e.path()).expect("read data file")
            };
            (name, bytes)
        })
        .collect()
}

/// Runs the server on a folder it must refuse: it has to exit non-zero
/// within 30 s. Returns what it printed.
async fn refuse_to_start(data: &Path, topics: &Path, extra: &[&str]) -> String {
    let child = serve_command(data, topics, extra)
        .spawn()
        .expect("spawn eventbus");
    let pid = child.id();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let out = match out {
        Ok(joined) => joined.expect("wait task").expect("wait for eventbus"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "eventbus started on a damaged folder {} instead of refusing",
                data.display()
            );
        }
    };
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "eventbus must exit non-zero on a damaged folder; it printed:\n{text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_keeps_subscribers_and_resumes_without_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(root.path(), ORDER_SCHEMA);
    // 80 MiB: RocksDB resumes writes only once one write buffer (64 MiB) is
    // free, so the filler we delete later must free more than that.
    let Some(small) = Tmpfs::mount(&root.path().join("small"), "80m") else {
        return;
    };
    let filler = small.path.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..76 {
            f.write_all(&chunk).expect("write filler");
        }
        f.sync_all().expect("sync filler");
    }
    let data = small.path.join("data");
    let mut server = Server::start(&data, &topics, &[]).await;
    let schema = server.schema_id().await;
    let mut client = server.client().await;

    // Publish until the disk is full; 4 MiB of room takes ~200 requests.
    let mut acked = Acked::new();
    let mut seq = 0i64;
    let refused = loop {
        assert!(seq < 100_000, "the disk never filled up");
        match publish(&mut client, &schema, seq, 20, 1000).await {
            Ok(got) => acked.extend(got),
            Err(st) => break st,
        }
        seq += 20;
    };
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the disk filled"
    );
    assert_status(&refused, tonic::Code::Unavailable, "storage.full");
    assert!(
        refused.message().contains("storage is full"),
        "message: {}",
        refused.message()
    );
    assert!(
        server.logged_soon("storage full").await,
        "the server logs the full disk:\n{}",
        server.log_text()
    );
    let before_full = acked.len();

    // While full: publishing stays refused, subscribers still read
    // everything acknowledged, and health still answers.
    let st = publish(&mut client, &schema, seq, 1, 10)
        .await
        .expect_err("still full");
    assert_status(&st, tonic::Code::Unavailable, "storage.full");
    server.assert_has_all(&acked).await;
    wait_until_serving(server.addr).await;

    // Free space on the same filesystem: publishing resumes by itself.
    std::fs::remove_file(&filler).expect("delete filler");
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(60);
    loop {
        seq += 20;
        match publish(&mut client, &schema, seq, 20, 1000).await {
            Ok(got) => {
                acked.extend(got);
                break;
            }
            Err(st) => {
                assert_status(&st, tonic::Code::Unavailable, "storage.full");
                assert!(
                    Instant::now() < deadline,
                    "publishing did not resume within 60 s of freeing space"
                );
            }
        }
        // Polling interval while waiting for RocksDB's recovery (it checks
        // free space every 5 s), not synchronisation.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let resumed_after = freed.elapsed();
    for _ in 0..10 {
        seq += 20;
        let got = publish(&mut client, &schema, seq, 20, 1000)
            .await
            .expect("publishing after recovery");
        acked.extend(got);
    }
    assert!(
        server.logged_soon("publishing resumed").await,
        "the server logs the recovery:\n{}",
        server.log_text()
    );
    server.assert_has_all(&acked).await;

    // A restart still has every acknowledged event.
    server.stop("-TERM").await;
    drop(server);
    let mut server = Server::start(&data, &topics, &[]).await;
    server.assert_has_all(&acked).await;
    let last = server.last_replay().await;
    assert_eq!(
        last,
        acked.keys().next_back().copied().unwrap_or(0),
        "refused publishes must not leave events behind"
    );
    eprintln!(
        "disk full: {before_full} events acknowledged before the disk filled, publishing resumed {:.1} s after freeing space, {} acknowledged events intact after a restart",
        resumed_after.as_secs_f64(),
        acked.len()
    );
    server.stop("-TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_after_sigkill_recovers_every_acknowledged_event() {
    let root = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(root.path(), ORDER_SCHEMA);
    let data = root.path().join("data");
    // A torn write leaves the start of a record: a header announcing 1000
    // bytes followed by fewer; and a tail of garbage bytes.
    let mut partial = vec![0xde, 0xad, 0xbe, 0xef];
    partial.extend_from_slice(&1000u16.to_le_bytes());
    partial.push(1); // a "full record" type
    partial.extend_from_slice(&[b'x'; 300]);
    let garbage = vec![0xffu8; 200];
    let mut acked = Acked::new();
    for tail in [partial, garbage] {
        let mut server = Server::start(&data, &topics, &[]).await;
        server.assert_has_all(&acked).await;
        publish_some(&server, &mut acked, 10, 20, 200).await;
        server.stop("-KILL").await;
        drop(server);
        let wal = newest_wal(&data);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&wal)
            .expect("open WAL");
        f.write_all(&tail).expect("append torn tail");
    }
    let server = Server::start(&data, &topics, &[]).await;
    server.assert_has_all(&acked).await;
    // The next event continues right after the last acknowledged one.
    let mut client = server.client().await;
    let got = publish(&mut client, &server.schema_id().await, 999_999, 1, 10)
        .await
        .expect("publish after recovery");
    let last = acked.keys().next_back().copied().unwrap_or(0);
    assert_eq!(got[0].0, last + 1, "offsets continue after recovery");
    eprintln!(
        "torn WAL tail: {} acknowledged events intact after two torn tails",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_inside_the_wal_refuses_to_start_until_point_in_time_is_chosen() {
    let root = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(root.path(), ORDER_SCHEMA);
    let data = root.path().join("data");
    let mut acked = Acked::new();
    {
        let mut server = Server::start(&data, &topics, &[]).await;
        publish_some(&server, &mut acked, 20, 10, 500).await;
        server.stop("-KILL").await;
    }
    // Flip bytes in the middle of the WAL: inside acknowledged records.
    let wal = newest_wal(&data);
    let mut bytes = std::fs::read(&wal).expect("read WAL");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&wal, &bytes).expect("write WAL");
    let before = snapshot(&data);

    let msg = refuse_to_start(&data, &topics, &[]).await;
    for needle in [
        data.display().to_string().as_str(),
        "write-ahead log",
        "damaged",
        "from a backup",
        "--wal-recovery point-in-time",
        "EVENTBUS_WAL_RECOVERY",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from:\n{msg}");
    }
    assert!(
        snapshot(&data) == before,
        "a refused start must not change the data files"
    );

    // The operator accepts losing what follows the damage.
    let mut server = Server::start(&data, &topics, &["--wal-recovery", "point-in-time"]).await;
    assert!(
        server.logged_soon("recovered to a point in time").await,
        "the log must say what happened:\n{}",
        server.log_text()
    );
    let kept = server.last_replay().await;
    let acked_last = acked.keys().next_back().copied().unwrap_or(0);
    assert!(
        kept < acked_last,
        "the damage sat inside acknowledged records, so some must be gone"
    );
    let log = server.read_upto(kept).await;
    for (id, payload) in &log {
        assert_eq!(
            acked.get(id),
            Some(payload),
            "event {id} is not what was acknowledged"
        );
    }
    server.stop("-TERM").await;
    drop(server);

    // Once is enough: the next start needs no setting and keeps the prefix.
    let mut server = Server::start(&data, &topics, &[]).await;
    assert_eq!(server.last_replay().await, kept);
    server.stop("-TERM").await;
    eprintln!(
        "damaged WAL: start refused; point-in-time kept events 1..={kept} of {acked_last} acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_refuses_to_start_with_a_message() {
    let root = tempfile::tempdir().expect("temp dir");
    let topics = write_topics(root.path(), ORDER_SCHEMA);

    // A file where the data folder should be.
    let file = root.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("write file");
    let msg = refuse_to_start(&file, &topics, &[]).await;
    for needle in [
        file.display().to_string().as_str(),
        "could not create the data folder",
        "--data-dir",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from:\n{msg}");
    }
    assert_eq!(std::fs::read(&file).expect("read file"), b"x");

    // A healthy store, then damaged copies of it.
    let data = root.path().join("data");
    let mut acked = Acked::new();
    {
        let mut server = Server::start(&data, &topics, &[]).await;
        publish_some(&server, &mut acked, 5, 10, 100).await;
        server.stop("-TERM").await;
    }
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &[&str]); 3] = [
        (
            "empty CURRENT",
            |d| std::fs::write(d.join("CURRENT"), "").expect("truncate CURRENT"),
            &["is damaged", "CURRENT", "from a backup"],
        ),
        (
            "missing CURRENT",
            |d| std::fs::remove_file(d.join("CURRENT")).expect("remove CURRENT"),
            &["is damaged", "CURRENT file is missing", "from a backup"],
        ),
        (
            "unreadable MANIFEST (I/O error)",
            |d| {
                let manifest = std::fs::read_dir(d)
                    .expect("read folder")
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
                    })
                    .expect("a MANIFEST");
                std::fs::remove_file(&manifest).expect("remove MANIFEST");
                std::fs::create_dir(&manifest).expect("directory in its place");
            },
            &[
                "could not open the data folder",
                "MANIFEST",
                "disk is healthy",
            ],
        ),
    ];
    for (i, (name, damage, needles)) in cases.into_iter().enumerate() {
        let copy = root.path().join(format!("case-{i}"));
        std::fs::create_dir(&copy).expect("mkdir copy");
        for e in std::fs::read_dir(&data)
            .expect("read data")
            .filter_map(Result::ok)
        {
            std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy data file");
        }
        damage(&copy);
        let before = snapshot(&copy);
        let msg = refuse_to_start(&copy, &topics, &[]).await;
        assert!(
            msg.contains(&copy.display().to_string()),
            "{name}: the folder is not named in:\n{msg}"
        );
        for needle in needles {
            assert!(
                msg.contains(needle),
                "{name}: `{needle}` missing from:\n{msg}"
            );
        }
        assert!(
            snapshot(&copy) == before,
            "{name}: a refused start must not change the data files"
        );
    }

    // The original was never touched.
    let mut server = Server::start(&data, &topics, &[]).await;
    server.assert_has_all(&acked).await;
    server.stop("-TERM").await;
}
