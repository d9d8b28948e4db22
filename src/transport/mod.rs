//! The transport under every listener: accepting connections, TLS and
//! plaintext handshakes, connection timeouts and the response memory budget.
//!
//! Owns: the connection cap, accept-error handling, handshake, idle and
//! stuck-client timeouts ([`accept`], [`io`]), and the per-connection and
//! server-wide budgets of response bytes not yet written ([`budget`]).
//! Must not: know gRPC methods, statuses or the broker; the protocol layer
//! (`api::pacing`) decides what a call charges and how it ends when it
//! cannot get room. It names tonic only for [`tonic::transport::server::Connected`],
//! the hook that hands each call its connection's budget.
//!
//! Why these pieces, and not tonic's own:
//! - tonic's accept loop retries a failed accept at once, so with the
//!   descriptors exhausted it spins a core; tonic's TLS has no handshake
//!   deadline by default, and the axum Tooling endpoint did its handshakes
//!   inside its accept loop, one at a time. Here every listener's loop is the
//!   same: a slot of the connection cap first, then accept, errors classified
//!   (pause and retry, never end), and each handshake in its own tracked task
//!   under [`TransportConfig::handshake_timeout`].
//! - hyper holds every response a handler produced until the client takes
//!   it, and tonic does not expose hyper's send-buffer knob; with up to
//!   `max_concurrent_streams` calls per connection and no cap on
//!   connections, a client that stops reading made the server hold without
//!   bound. The budget counts bytes from the moment they are produced (or,
//!   for requests and subscription reads, reserved before they are) until
//!   the connection writes them, and new work waits while a connection or
//!   the server is full.
//!
//! Requests are bounded by HTTP/2 flow control before they reach a handler:
//! a client can send at most the receive windows ahead (512 KiB per stream,
//! 16 MiB per connection, see `server.rs`), so unread request bytes are at
//! most 16 MiB per connection, `max_connections` times 16 MiB in all. Once
//! read, a unary request is charged to its connection's budget until its
//! handler returns, and PublishStream requests until they are answered.

pub mod accept;
pub mod budget;
pub mod io;

use std::time::Duration;

pub use accept::{HttpListener, Incoming, Transport};
pub use budget::{Budget, BudgetError, ConnBudget, Reservation};
pub use io::{Conn, ConnInfo, KillSwitch};

/// Settings of the transport (see the README's "Limits and budgets").
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Connections open at once across every listener (handshakes
    /// included); at the cap new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a new connection has to complete its TLS handshake, or to send
    /// its first bytes without TLS.
    pub handshake_timeout: Duration,
    /// Time a connection may go without reading or writing a byte.
    pub idle_timeout: Duration,
    /// Time a call waits for room in a full budget before it ends with
    /// `RESOURCE_EXHAUSTED`; a connection whose unread responses do not
    /// move for twice this long while it is full is closed.
    pub stuck_client_timeout: Duration,
    /// Response bytes one connection may hold unwritten (with its
    /// reservations) before its new work waits.
    pub connection_response_budget: usize,
    /// The same across all connections.
    pub response_budget: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_connections: 768,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            stuck_client_timeout: Duration::from_secs(30),
            connection_response_budget: 8 * 1024 * 1024,
            response_budget: 256 * 1024 * 1024,
        }
    }
}

/// Descriptors kept free for everything but client connections: RocksDB's
/// files (it keeps every SST open), its write-ahead log and manifest, the
/// listeners and the log output.
pub const FD_RESERVE: u64 = 256;

/// The soft limit on open files of this process, from `/proc/self/limits`
/// (`None` where that cannot be read).
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Warns when `max_connections` plus [`FD_RESERVE`] does not fit the
/// process's open-file limit: past it, accepts fail with EMFILE (the server
/// pauses and retries, but new clients are not served meanwhile).
pub fn check_open_file_limit(max_connections: usize) {
    let Some(limit) = open_file_limit() else {
        return;
    };
    let needed = max_connections as u64 + FD_RESERVE;
    if limit < needed {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            needed,
            "the open-file limit is below EVENTBUS_MAX_CONNECTIONS plus 256 for storage; raise LimitNOFILE (ulimit -n) or lower EVENTBUS_MAX_CONNECTIONS"
        );
    } else {
        tracing::info!(open_file_limit = limit, max_connections, "connection cap");
    }
}
