//! The IO type of an accepted connection.
//!
//! Owns: [`Tcp`] (the socket, its connection slot and the lingering
//! close), [`Conn`] (plaintext or TLS on top, the idle and stuck-client
//! timers, and the HTTP/2 DATA meter that releases written response bytes
//! from the connection's budget), [`ConnInfo`], what tonic puts in
//! every request's extensions, and [`KillSwitch`], which closes the
//! connection on demand (fault injection drops connections with it).
//! Must not: speak HTTP/2 beyond reading frame headers of what the server
//! itself writes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::budget::ConnBudget;
use crate::telemetry::metrics::ReasonLabel;

/// How long a closing connection keeps reading, and discarding, what the
/// client still sends after the server's last frame. Closing a socket with
/// unread input makes the kernel answer with RST, and a client that gets
/// the RST can lose frames it had not read yet: at shutdown, a PublishStream
/// client still pipelining requests lost the UNAVAILABLE trailers that end
/// its stream and saw "broken pipe" instead (found by
/// tests/integration/graceful.rs). One second is plenty for a client on a
/// live connection to see GOAWAY and close; it bounds a client that does not.
const LINGER_ON_CLOSE: Duration = Duration::from_secs(1);

/// Reads per poll while lingering before yielding, so a client that keeps
/// sending cannot hold a runtime thread.
const LINGER_READS_PER_POLL: usize = 16;

/// An accepted TCP connection: holds one of the server's connection slots
/// until dropped, and its shutdown sends FIN, then drains input until the
/// client closes or a second passes, so the close is never an
/// RST that could destroy the server's final frames (a "lingering close").
#[derive(Debug)]
pub struct Tcp {
    inner: tokio::net::TcpStream,
    linger: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
    open: Gauge,
}

impl Tcp {
    /// Wraps an accepted socket with the slot it took; `open` counts open
    /// connections.
    pub(super) fn new(
        inner: tokio::net::TcpStream,
        slot: OwnedSemaphorePermit,
        open: Gauge,
    ) -> Self {
        // gRPC writes many small frames (credit requests, single-event
        // responses); with Nagle on, a small write waits for the peer's
        // delayed ACK, which costs up to 40 ms per round trip. Found by
        // `eventbus bench replay` (5,000 events/s before, see BENCHMARKS.md).
        if let Err(e) = inner.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        open.inc();
        Self {
            inner,
            linger: None,
            _slot: slot,
            open,
        }
    }

    /// Waits until the client has sent something (or closed). A peek, not
    /// `readable()`: readiness may be reported without data, and a silent
    /// client must not pass for one that spoke.
    pub(super) async fn first_bytes(&self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        self.inner.peek(&mut byte).await.map(drop)
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.inner.peer_addr().ok()
    }
}

impl Drop for Tcp {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use std::future::Future;
        let this = self.get_mut();
        if this.linger.is_none() {
            // FIN first: everything written so far reaches the client.
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER_ON_CLOSE)));
        }
        let mut scratch = [0u8; 4096];
        for _ in 0..LINGER_READS_PER_POLL {
            if let Some(deadline) = this.linger.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                // The client closed too: nothing is left to turn into an RST.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Plaintext or TLS.
#[derive(Debug)]
enum Stream {
    Plain(Tcp),
    Tls(Box<tokio_rustls::server::TlsStream<Tcp>>),
}

/// What tonic hands every call on a connection (request extensions).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// The connection's response budget; `None` on listeners that are not
    /// budgeted (health, metrics, tooling).
    pub budget: Option<Arc<ConnBudget>>,
    /// Closes the connection when tripped.
    pub kill: Arc<KillSwitch>,
}

/// Closes its connection, from any call on it, at once: reads see the
/// client gone and writes fail, so HTTP/2 ends every stream on it and the
/// socket closes, as when a network path drops.
#[derive(Debug, Default)]
pub struct KillSwitch {
    tripped: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl KillSwitch {
    /// Closes the connection.
    pub fn trip(&self) {
        self.tripped
            .store(true, std::sync::atomic::Ordering::Release);
        self.waker.wake();
    }

    fn is_tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether it was tripped; wakes `cx` when it is later.
    fn poll_tripped(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.is_tripped()
    }
}

/// Timers of a connection.
#[derive(Clone, Debug)]
pub(super) struct Timers {
    /// Close after this long without a byte read or written.
    pub idle: Duration,
    /// Close after twice this long without writing any of the response data
    /// waiting for the client, while the connection or the server has no
    /// room for more.
    pub stuck: Duration,
    /// Counts connections closed by a timer, by reason.
    pub closed: Family<ReasonLabel, Counter>,
}

/// An accepted connection after its handshake: what hyper reads and writes.
///
/// Closes itself (an IO error hyper turns into closing the connection)
/// when idle for the idle timeout, or when it is stuck: response data has
/// waited for the client for twice the stuck-client timeout without a byte
/// of it written while its connection or the server is out of budget. The
/// calls on it get `RESOURCE_EXHAUSTED` after one timeout; the connection
/// goes after the second, which also returns what it held to the server.
#[derive(Debug)]
pub struct Conn {
    io: Stream,
    info: ConnInfo,
    meter: FrameMeter,
    timers: Timers,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    /// The deadline that closed the connection, once one did.
    expired: Option<Expired>,
    closed: Family<ReasonLabel, Counter>,
}

/// Why a connection closed itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    /// Nothing read or written for the idle timeout.
    Idle,
    /// Responses not read, no progress, no room.
    Stuck,
    /// Its [`KillSwitch`] was tripped.
    Killed,
}

impl Expired {
    fn reason(self) -> &'static str {
        match self {
            Expired::Idle => "idle",
            Expired::Stuck => "stuck",
            Expired::Killed => "fault",
        }
    }
}

impl From<Expired> for io::Error {
    fn from(why: Expired) -> Self {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connection {}", why.reason()),
        )
    }
}

impl Conn {
    pub(super) fn plain(tcp: Tcp, budget: Option<Arc<ConnBudget>>, timers: Timers) -> Self {
        let remote = tcp.peer();
        Self::new(Stream::Plain(tcp), remote, budget, timers)
    }

    pub(super) fn tls(
        tls: tokio_rustls::server::TlsStream<Tcp>,
        budget: Option<Arc<ConnBudget>>,
        timers: Timers,
    ) -> Self {
        let remote = tls.get_ref().0.peer();
        Self::new(Stream::Tls(Box::new(tls)), remote, budget, timers)
    }

    fn new(
        io: Stream,
        remote: Option<SocketAddr>,
        budget: Option<Arc<ConnBudget>>,
        timers: Timers,
    ) -> Self {
        let now = Instant::now();
        Self {
            io,
            info: ConnInfo {
                remote,
                budget,
                kill: Arc::default(),
            },
            meter: FrameMeter::default(),
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timers.idle)),
            expired: None,
            closed: timers.closed.clone(),
            timers,
        }
    }

    /// The client's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.info.remote
    }

    /// Called when the IO is not ready: arms the timer for the next
    /// deadline, and reports the one that passed, if any.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        use std::future::Future;
        if let Some(expired) = self.expired {
            return Poll::Ready(expired);
        }
        if self.info.kill.poll_tripped(cx) {
            return Poll::Ready(self.expire(Expired::Killed));
        }
        loop {
            let now = Instant::now();
            let idle_at = self.last_activity + self.timers.idle;
            if now >= idle_at {
                return Poll::Ready(self.expire(Expired::Idle));
            }
            let mut next = idle_at;
            if let Some(budget) = &self.info.budget {
                budget.register_io(cx.waker());
                if let Some(since) = budget.waiting_since() {
                    let stuck_at = since + 2 * self.timers.stuck;
                    if now >= stuck_at && budget.under_pressure() {
                        tracing::info!(
                            remote = ?self.info.remote,
                            unsent = budget.unsent(),
                            "closing a connection whose client has not read its responses"
                        );
                        return Poll::Ready(self.expire(Expired::Stuck));
                    }
                    next = next.min(if now < stuck_at {
                        stuck_at
                    } else {
                        // Stuck but harmless for now (room left): look
                        // again later.
                        now + self.timers.stuck
                    });
                }
            }
            // Reset lazily: activity moves the idle deadline on every read
            // and write, and a timer that fires early only costs a look.
            if next < self.timer.deadline() || self.timer.is_elapsed() {
                self.timer.as_mut().reset(next);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // A deadline passed: look at everything again.
                Poll::Ready(()) => continue,
            }
        }
    }

    fn expire(&mut self, why: Expired) -> Expired {
        self.expired = Some(why);
        self.closed
            .get_or_create(&ReasonLabel {
                reason: why.reason(),
            })
            .inc();
        tracing::debug!(remote = ?self.info.remote, reason = why.reason(), "closing a connection");
        why
    }

    /// Releases the DATA payload among `written` bytes from the budget.
    fn count_written(&mut self, written: &[u8]) {
        if let Some(budget) = &self.info.budget {
            let data = self.meter.feed(written);
            budget.release_unsent(data);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(budget) = &self.info.budget {
            budget.close();
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired.is_some() {
            return Poll::Ready(Ok(()));
        }
        if this.info.kill.is_tripped() {
            this.expire(Expired::Killed);
            // Past the kill the connection reads as closed by the client.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Stream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Past a deadline the connection reads as closed by the client:
            // HTTP/2 then ends every stream as for a client that went away.
            Poll::Pending => this.poll_deadlines(cx).map(|_| Ok(())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.info.kill.is_tripped() {
            let why = match this.expired {
                Some(why) => why,
                None => this.expire(Expired::Killed),
            };
            return Poll::Ready(Err(why.into()));
        }
        let polled = match &mut this.io {
            Stream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_activity = Instant::now();
                    this.count_written(&buf[..n]);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadlines(cx).map(|why| Err(why.into())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.io {
            Stream::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        };
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_activity = Instant::now();
                    let mut left = n;
                    for b in bufs {
                        if left == 0 {
                            break;
                        }
                        let take = left.min(b.len());
                        this.count_written(&b[..take]);
                        left -= take;
                    }
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadlines(cx).map(|why| Err(why.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Stream::Plain(io) => io.is_write_vectored(),
            Stream::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.io {
            Stream::Plain(io) => Pin::new(io).poll_flush(cx),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.io {
            Stream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// HTTP/2 frame type of DATA frames (RFC 9113 §6.1).
const FRAME_DATA: u8 = 0;
/// Length of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;

/// Follows the frames in what the server writes on an HTTP/2 connection
/// and counts DATA payload bytes: the response data that left for the
/// client. A server's side of the connection starts with a frame (its
/// SETTINGS), so the stream is frames from its first byte.
#[derive(Debug, Default)]
struct FrameMeter {
    header: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: usize,
    data: bool,
}

impl FrameMeter {
    /// Consumes written bytes; returns how many were DATA payload.
    fn feed(&mut self, mut bytes: &[u8]) -> usize {
        let mut data = 0;
        while !bytes.is_empty() {
            if self.remaining == 0 && self.have < FRAME_HEADER {
                let take = (FRAME_HEADER - self.have).min(bytes.len());
                self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
                self.have += take;
                bytes = &bytes[take..];
                if self.have == FRAME_HEADER {
                    let h = self.header;
                    self.remaining =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    self.data = h[3] == FRAME_DATA;
                    self.have = 0;
                }
                continue;
            }
            let take = self.remaining.min(bytes.len());
            if self.data {
                data += take;
            }
            self.remaining -= take;
            bytes = &bytes[take..];
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.resize(FRAME_HEADER + payload, 0xAB);
        f
    }

    #[test]
    fn the_meter_counts_only_data_payload_however_writes_are_cut() {
        let mut bytes = Vec::new();
        bytes.extend(frame(4, 18)); // SETTINGS
        bytes.extend(frame(1, 40)); // HEADERS
        bytes.extend(frame(FRAME_DATA, 16_384));
        bytes.extend(frame(FRAME_DATA, 0));
        bytes.extend(frame(6, 8)); // PING
        bytes.extend(frame(FRAME_DATA, 70_000));
        bytes.extend(frame(1, 12)); // trailers
        for cut in [1, 2, 7, 9, 10, 100, 4096, bytes.len()] {
            let mut meter = FrameMeter::default();
            let counted: usize = bytes.chunks(cut).map(|c| meter.feed(c)).sum();
            assert_eq!(counted, 16_384 + 70_000, "writes of {cut} bytes");
        }
    }
}
