//! Accepting connections: one acceptor shared by every listener.
//!
//! Owns: the server-wide connection cap, the accept loops with their error
//! classification and back-off, and the handshake of each new connection
//! (TLS, or the first bytes of a plaintext one) under a deadline, off the
//! accept loop.
//! Must not: serve requests; hyper (through tonic or axum) reads and
//! writes the connections this module hands out.
//!
//! The cap is a semaphore whose permit travels inside the connection
//! ([`Tcp`]) and is returned when the connection is dropped. The accept
//! loop takes a permit *before* it accepts: at the cap it stops accepting,
//! so new clients wait in the kernel's listen backlog instead of being
//! accepted and closed, and an idle or stuck connection that times out makes
//! room for the next one in arrival order (mini-redis does the same).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio::time::Instant;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::TransportConfig;
use super::budget::{Budget, ConnBudget};
use super::io::{Conn, Tcp, Timers};
use crate::telemetry::metrics::{Metrics, ReasonLabel};

/// Connections handed over after their handshake and not yet taken by the
/// server, per listener. Small: a connection waiting here holds its slot.
const READY_QUEUE: usize = 16;

/// First pause after an accept error that says the process or the system
/// ran out of descriptors or memory.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts in that state.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per this period about accept errors or the
/// connection cap, with a count of what was not logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections for every listener of one server: the connection
/// cap, the response budget and the timeouts are shared by all of them.
#[derive(Clone, Debug)]
pub struct Transport {
    cfg: TransportConfig,
    slots: Arc<Semaphore>,
    budget: Arc<Budget>,
    tasks: TaskTracker,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// A transport with `cfg`; accept loops and handshakes run on `tasks`.
    pub fn new(cfg: TransportConfig, tasks: TaskTracker, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            budget: Budget::with_gauge(cfg.response_budget, metrics.response_budget_held.clone()),
            cfg,
            tasks,
            metrics,
        }
    }

    /// The server-wide response budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The settings.
    pub fn config(&self) -> &TransportConfig {
        &self.cfg
    }

    /// Connections from `listener` for a tonic server, after their TLS
    /// handshake with `tls` (or their first bytes, without). `budgeted`
    /// gives each a [`ConnBudget`] (the gRPC port; health is not).
    pub fn incoming(
        &self,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        budgeted: bool,
        name: &'static str,
    ) -> Incoming {
        Incoming {
            rx: self.start(listener, tls, budgeted, name, None),
        }
    }

    /// [`Transport::incoming`] that stops accepting, and closes the
    /// listening socket, once `stop` is cancelled: from then on a client's
    /// new connection is refused at once (a clear "connection refused" it
    /// retries elsewhere) instead of waiting in the listen backlog for a
    /// server that will never accept it, and being reset when the process
    /// exits.
    pub fn incoming_until(
        &self,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        budgeted: bool,
        name: &'static str,
        stop: CancellationToken,
    ) -> Incoming {
        Incoming {
            rx: self.start(listener, tls, budgeted, name, Some(stop)),
        }
    }

    /// Connections from `listener` for an axum server (metrics, tooling).
    pub fn http_listener(
        &self,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        name: &'static str,
    ) -> io::Result<HttpListener> {
        let local = listener.local_addr()?;
        Ok(HttpListener {
            rx: self.start(listener, tls, false, name, None),
            local,
        })
    }

    fn start(
        &self,
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        budgeted: bool,
        name: &'static str,
        stop: Option<CancellationToken>,
    ) -> mpsc::Receiver<Conn> {
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        let shake = Arc::new(Handshake {
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            timeout: self.cfg.handshake_timeout,
            timers: Timers {
                idle: self.cfg.idle_timeout,
                stuck: self.cfg.stuck_client_timeout,
                closed: self.metrics.connections_closed.clone(),
            },
            budget: budgeted.then(|| (self.budget.clone(), self.cfg.connection_response_budget)),
            name,
            metrics: self.metrics.clone(),
            stop,
        });
        self.tasks.spawn(accept_loop(
            listener,
            shake,
            self.slots.clone(),
            self.cfg.max_connections,
            tx,
            self.tasks.clone(),
            self.metrics.clone(),
        ));
        rx
    }
}

/// Connections ready to serve, for `serve_with_incoming_shutdown`. Dropping
/// it stops the accept loop and closes the listening socket.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Conn>,
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Connections ready to serve, as an axum listener.
#[derive(Debug)]
pub struct HttpListener {
    rx: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl axum::serve::Listener for HttpListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => {
                let addr = conn.remote().unwrap_or(self.local);
                (conn, addr)
            }
            // The accept loop only ends once this listener is dropped or
            // the listening socket is gone; axum stops calling first.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// How an accept error is handled.
#[derive(Debug, PartialEq, Eq)]
enum AcceptFailure {
    /// About one connection (aborted before it was accepted, a signal):
    /// accept the next at once.
    Transient,
    /// The process or the system is out of descriptors or memory, or
    /// something unknown: accepting again at once would fail again and
    /// spin a core, so pause (doubling) first.
    Exhausted,
}

fn classify(e: &io::Error) -> AcceptFailure {
    // accept(2): "Linux accept() passes already-pending network errors on
    // the new socket as an error code from accept()"; retry on those.
    const TRANSIENT_ERRNO: [i32; 10] = [
        libc::ECONNABORTED,
        libc::EINTR,
        libc::EPROTO,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::ENONET,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
        libc::EPERM,
    ];
    if let Some(errno) = e.raw_os_error()
        && TRANSIENT_ERRNO.contains(&errno)
    {
        return AcceptFailure::Transient;
    }
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut => AcceptFailure::Transient,
        // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything not known.
        _ => AcceptFailure::Exhausted,
    }
}

/// Pauses after exhausted accepts: 10 ms doubling to 1 s, reset by the
/// next accepted connection.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }

    fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        now
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// Lets a warning through at most once per [`WARN_EVERY`] and counts the
/// ones held back.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when a warning may be logged.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + WARN_EVERY) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Accepts until the server stops taking connections (`tx` closed).
async fn accept_loop(
    listener: TcpListener,
    shake: Arc<Handshake>,
    slots: Arc<Semaphore>,
    max: usize,
    tx: mpsc::Sender<Conn>,
    tasks: TaskTracker,
    metrics: Arc<Metrics>,
) {
    let stop = shake.stop.clone();
    let mut backoff = Backoff::new();
    let mut cap_warning = Throttle::default();
    let mut error_warning = Throttle::default();
    loop {
        // A slot first: at the cap, new connections wait in the backlog.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(TryAcquireError::Closed) => return,
            Err(TryAcquireError::NoPermits) => {
                if let Some(held_back) = cap_warning.allow() {
                    tracing::warn!(
                        listener = shake.name,
                        max_connections = max,
                        held_back,
                        "connection cap reached (EVENTBUS_MAX_CONNECTIONS); new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    () = ended(&tx, stop.as_ref()) => return,
                }
            }
        };
        let tcp = loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = ended(&tx, stop.as_ref()) => return,
            };
            match accepted {
                Ok((tcp, _)) => {
                    backoff.reset();
                    break tcp;
                }
                Err(e) if classify(&e) == AcceptFailure::Transient => {
                    tracing::debug!(listener = shake.name, error = %e, "accept failed; accepting the next");
                }
                Err(e) => {
                    metrics.accept_errors.inc();
                    let pause = backoff.pause();
                    if let Some(held_back) = error_warning.allow() {
                        tracing::warn!(
                            listener = shake.name,
                            error = %e,
                            ?pause,
                            held_back,
                            "cannot accept connections (out of file descriptors or memory?); pausing before the next attempt"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = ended(&tx, stop.as_ref()) => return,
                    }
                }
            }
        };
        let tcp = Tcp::new(tcp, slot, metrics.connections_open.clone());
        let (shake, tx) = (shake.clone(), tx.clone());
        tasks.spawn(async move { shake.run(tcp, tx).await });
    }
}

/// Resolves once nobody takes connections any more, or `stop` says to stop
/// accepting them.
async fn ended(tx: &mpsc::Sender<Conn>, stop: Option<&CancellationToken>) {
    match stop {
        Some(stop) => tokio::select! {
            () = tx.closed() => {}
            () = stop.cancelled() => {}
        },
        None => tx.closed().await,
    }
}

/// The handshake of one listener's connections.
struct Handshake {
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeout: Duration,
    timers: Timers,
    budget: Option<(Arc<Budget>, usize)>,
    name: &'static str,
    metrics: Arc<Metrics>,
    /// Stops the accept loop (and closes the listening socket) when
    /// cancelled; `None`: only when the server stops taking connections.
    stop: Option<CancellationToken>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("listener", &self.name)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Completes the TLS handshake, or waits for the first bytes of a
    /// plaintext connection, within the handshake timeout; then hands the
    /// connection to the server. A connection that does neither in time is
    /// closed (dropped), which frees its slot.
    async fn run(&self, tcp: Tcp, tx: mpsc::Sender<Conn>) {
        let budget = || {
            self.budget
                .as_ref()
                .map(|(global, limit)| ConnBudget::new(global.clone(), *limit))
        };
        let shake = async {
            match &self.tls {
                Some(acceptor) => acceptor
                    .accept(tcp)
                    .await
                    .map(|tls| Conn::tls(tls, budget(), self.timers.clone())),
                None => {
                    tcp.first_bytes().await?;
                    Ok(Conn::plain(tcp, budget(), self.timers.clone()))
                }
            }
        };
        let done = tokio::select! {
            r = tokio::time::timeout(self.timeout, shake) => r,
            () = tx.closed() => return,
        };
        match done {
            Ok(Ok(conn)) => {
                // Fails only when the server stopped taking connections.
                let _ = tx.send(conn).await;
            }
            Ok(Err(e)) => {
                tracing::debug!(listener = self.name, error = %e, "handshake failed");
            }
            Err(_) => {
                self.metrics
                    .connections_closed
                    .get_or_create(&ReasonLabel {
                        reason: "handshake",
                    })
                    .inc();
                tracing::debug!(
                    listener = self.name,
                    timeout = ?self.timeout,
                    "closing a connection that did not complete its handshake in time"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_listener_refuses_new_connections_at_once() {
        let transport = Transport::new(
            TransportConfig::default(),
            TaskTracker::new(),
            Arc::new(Metrics::new()),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let mut incoming = transport.incoming_until(listener, None, false, "test", stop.clone());
        // Accepted while running (the handshake waits for a first byte).
        let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut first, b"x")
            .await
            .expect("write");
        use tokio_stream::StreamExt as _;
        assert!(incoming.next().await.is_some(), "served before the stop");
        stop.cancel();
        // The accept loop sees the stop and closes the socket; a connection
        // attempt is then refused, not queued in the backlog.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                _ if Instant::now() < deadline => tokio::task::yield_now().await,
                other => panic!("still accepting 10 s after the stop: {other:?}"),
            }
        }
    }

    #[test]
    fn accept_errors_are_classified() {
        let errno = io::Error::from_raw_os_error;
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&errno(e)), AcceptFailure::Exhausted, "{e}");
        }
        for e in [
            libc::ECONNABORTED,
            libc::EINTR,
            libc::EPROTO,
            libc::ENETUNREACH,
        ] {
            assert_eq!(classify(&errno(e)), AcceptFailure::Transient, "{e}");
        }
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::ConnectionReset)),
            AcceptFailure::Transient
        );
        assert_eq!(
            classify(&io::Error::other("something new")),
            AcceptFailure::Exhausted,
            "unknown errors pause rather than spin"
        );
    }

    #[test]
    fn the_backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::new();
        let pauses: Vec<u128> = (0..9).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.pause(), BACKOFF_FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn warnings_are_throttled_with_a_count() {
        let mut t = Throttle::default();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        tokio::time::sleep(WARN_EVERY).await;
        assert_eq!(t.allow(), Some(2));
    }
}
