//! A throwaway nats-server for the JetStream backend's tests.
//!
//! Owns: starting one `nats-server --jetstream` per test on a free loopback
//! port with its own temporary store, and stopping it when the guard drops
//! (also when the test panics). Must not: skip silently when the binary is
//! missing: the tests fail with a message saying how to install it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{JetStreamConfig, JetStreamTopicLog};

/// Where CI (Debian's package) and most installs put the binary.
const CANDIDATES: &[&str] = &[
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
];
/// Startup takes milliseconds; this only bounds a broken install.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(CANDIDATES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found (looked on PATH and in {CANDIDATES:?}): the JetStream \
                 backend tests need a real server. Install it (`apt-get install nats-server`) \
                 or set NATS_SERVER=/path/to/nats-server"
            )
        })
}

/// A running nats-server with JetStream; killed on drop.
pub(super) struct NatsServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// `nats://127.0.0.1:<port>`.
    pub(super) url: String,
}

impl NatsServer {
    /// Starts a server and waits (by reading its log, never by sleeping)
    /// until it accepts clients.
    pub(super) fn start() -> Self {
        let bin = binary();
        let dir = tempfile::tempdir().expect("temp dir for the JetStream store");
        let mut child = Command::new(&bin)
            .arg("--jetstream")
            .arg("--store_dir")
            .arg(dir.path())
            .args(["--addr", "127.0.0.1", "--port", "-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server {}: {e}; the JetStream backend tests need it \
                     (`apt-get install nats-server`, or NATS_SERVER=/path/to/nats-server)",
                    bin.display()
                )
            });
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to the end: finds the port, then keeps draining so
        // the server never blocks on a full pipe. Ends when the server does.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(tx) = &tx
                    && let Some((_, addr)) = line.split_once("Listening for client connections on ")
                {
                    let _ = tx.send(Ok(addr.trim().to_owned()));
                }
                if line.contains("Listening for client connections on ") {
                    tx = None;
                }
                if tx.is_some() {
                    log.push(line);
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(log.join("\n")));
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => addr,
            Ok(Err(log)) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server exited before listening:\n{log}")
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not listen within {START_TIMEOUT:?}: {e}")
            }
        };
        Self {
            child,
            _dir: dir,
            url: format!("nats://{addr}"),
        }
    }

    /// A config for this server with a prefix no other log of this test
    /// process uses.
    pub(super) fn config(&self) -> JetStreamConfig {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        JetStreamConfig {
            urls: vec![self.url.clone()],
            prefix: format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)),
            ..JetStreamConfig::default()
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the contract suite's factory keeps alive: the server and the
/// runtime that runs the log's connection.
pub(super) struct Guard {
    rt: Option<tokio::runtime::Runtime>,
    _server: NatsServer,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Dropped inside the test's runtime, where a blocking shutdown is
        // not allowed.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A log on a fresh server, for the synchronous contract factory: the
/// connection is made (and its background tasks run) on a runtime of its
/// own, since the factory cannot `.await`. The client works from any
/// runtime, so the test's runtime uses it as usual.
pub(super) fn log_on_fresh_server() -> (JetStreamTopicLog, Guard) {
    let server = NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("helper runtime");
    let cfg = server.config();
    let log = std::thread::scope(|s| {
        s.spawn(|| rt.block_on(JetStreamTopicLog::connect(cfg)))
            .join()
            .expect("connect thread")
    })
    .expect("connect to the test nats-server");
    (
        log,
        Guard {
            rt: Some(rt),
            _server: server,
        },
    )
}
