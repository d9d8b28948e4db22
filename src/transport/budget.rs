//! Response memory budgets: bytes produced for a client and not yet
//! written to its socket, per connection and across the server.
//!
//! Owns: [`Budget`] (the server-wide total), [`ConnBudget`] (one
//! connection's share), [`Reservation`] and [`BudgetError`].
//! Must not: know gRPC or HTTP/2; the protocol layer decides what to charge
//! and when (`api::pacing`), the connection's IO releases what it writes
//! (`transport::io`).
//!
//! A connection holds two kinds of bytes:
//! - **unsent**: response data handed to HTTP/2 and not yet written to the
//!   socket. Charged as each body frame is produced, released as the
//!   connection writes HTTP/2 DATA payload, and all of it returned when the
//!   connection closes.
//! - **reserved**: a [`Reservation`] for work under way whose bytes exist
//!   before they become body frames: a unary request being handled, a
//!   subscription read and its response waiting for the transport, a
//!   PublishStream request and its answer. Released when the reservation is
//!   dropped.
//!
//! New work is admitted while the connection holds less than its limit and
//! the server less than its limit; the one admitted last may overshoot by
//! its own size, so a connection holds at most its limit plus one charge
//! and the server at most its limit plus one charge per admitting task.
//! Waiting for room is bounded: after the stuck-client timeout the waiter
//! gets a [`BudgetError`] and ends its call with it.
//!
//! Counting order (no lock): a charge adds to the server total before the
//! connection's, a release takes from the connection before the server, so
//! the server total never drops below the sum of its connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::ErrorCode;

/// Set in [`ConnBudget`]'s unsent counter once the connection closed: late
/// charges (a body polled after its connection went away) are refused
/// instead of leaking into the server total.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Why a call could not get room in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The client's own connection holds its whole budget of responses it
    /// has not read.
    #[error(
        "the client has not read the responses already sent on this connection for {}, so the server stopped producing more (EVENTBUS_CONNECTION_RESPONSE_BUDGET, EVENTBUS_STUCK_CLIENT_TIMEOUT); read responses as they arrive or spread streams over more connections",
        humantime::format_duration(*.waited)
    )]
    ClientStuck {
        /// How long the call waited.
        waited: Duration,
    },
    /// Clients across the server hold the whole server-wide budget.
    #[error(
        "the server holds its limit of responses that clients have not read yet and could not take this call within {} (EVENTBUS_RESPONSE_BUDGET); retry with backoff",
        humantime::format_duration(*.waited)
    )]
    ServerFull {
        /// How long the call waited.
        waited: Duration,
    },
}

impl BudgetError {
    /// The `error-code` trailer of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            BudgetError::ClientStuck { .. } => ErrorCode::ClientTooSlow,
            BudgetError::ServerFull { .. } => ErrorCode::ResponseBudgetExhausted,
        }
    }

    /// Whether a retry could succeed (on a connection that is read).
    pub fn retryable(&self) -> bool {
        true
    }
}

/// The server-wide budget every [`ConnBudget`] draws from.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    held: AtomicUsize,
    /// Woken when `held` falls below `limit`.
    room: Notify,
    /// Mirrors `held` for /metrics.
    gauge: Gauge,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Self::with_gauge(limit, Gauge::default())
    }

    /// A budget of `limit` bytes whose total `gauge` shows.
    pub fn with_gauge(limit: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
            room: Notify::new(),
            gauge,
        })
    }

    /// Bytes held across all connections.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Whether the server holds its whole budget.
    pub fn is_full(&self) -> bool {
        self.held() >= self.limit
    }

    fn add(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
        self.gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Adds `n` while below the limit.
    fn try_add(&self, n: usize) -> bool {
        let added = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < self.limit).then_some(h + n)
            })
            .is_ok();
        if added {
            self.gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
        added
    }

    fn sub(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.gauge.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
        let before = self.held.fetch_sub(n, Ordering::AcqRel);
        // Only the release that brings the total back under the limit
        // wakes waiters: releases happen on every socket write, waiters
        // only exist while the budget is full.
        if before >= self.limit && before - n < self.limit {
            self.room.notify_waiters();
        }
    }
}

/// One connection's share of the response budget. Shared (`Arc`) by the
/// connection's IO, the calls on it and their reservations.
#[derive(Debug)]
pub struct ConnBudget {
    global: Arc<Budget>,
    limit: usize,
    /// Response data handed to HTTP/2 and not yet written; [`CLOSED`] once
    /// the connection closed.
    unsent: AtomicUsize,
    reserved: AtomicUsize,
    /// Tasks waiting in [`ConnBudget::reserve`].
    waiters: AtomicUsize,
    room: Notify,
    origin: Instant,
    /// Nanoseconds after `origin` of the last progress: DATA written, or
    /// unsent data appearing when there was none.
    progress_ns: AtomicU64,
    /// The connection's IO task, woken when unsent data appears so it arms
    /// its stuck timer.
    io: AtomicWaker,
}

impl ConnBudget {
    /// A connection's budget of `limit` bytes within `global`.
    pub fn new(global: Arc<Budget>, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            global,
            limit,
            unsent: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            room: Notify::new(),
            origin: Instant::now(),
            progress_ns: AtomicU64::new(0),
            io: AtomicWaker::new(),
        })
    }

    /// Response bytes waiting to be written.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Acquire) & !CLOSED
    }

    /// Bytes held: unsent plus reserved.
    pub fn held(&self) -> usize {
        self.unsent()
            .saturating_add(self.reserved.load(Ordering::Acquire))
    }

    /// Whether the connection holds its whole budget.
    pub fn is_full(&self) -> bool {
        self.held() >= self.limit
    }

    /// Whether this connection, or the server, has no room for more.
    pub fn under_pressure(&self) -> bool {
        self.is_full() || self.global.is_full()
    }

    fn mark_progress(&self) {
        let ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.progress_ns.store(ns, Ordering::Release);
    }

    /// Since when unsent data has waited without any being written, or
    /// `None` when nothing waits.
    pub fn waiting_since(&self) -> Option<Instant> {
        (self.unsent() > 0)
            .then(|| self.origin + Duration::from_nanos(self.progress_ns.load(Ordering::Acquire)))
    }

    /// Registers the connection's IO task to be woken when unsent data
    /// appears.
    pub fn register_io(&self, waker: &std::task::Waker) {
        self.io.register(waker);
    }

    /// Charges `n` bytes of response data handed to HTTP/2. Never waits:
    /// what is charged here was admitted before it was produced.
    pub fn charge_unsent(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.global.add(n);
        let before = self
            .unsent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u & CLOSED == 0).then_some(u + n)
            });
        match before {
            Ok(0) => {
                self.mark_progress();
                self.io.wake();
            }
            Ok(_) => {}
            // Closed: nothing will ever write or return these bytes.
            Err(_) => self.global.sub(n),
        }
    }

    /// Releases `n` bytes of response data written to the socket (at most
    /// what is charged: DATA dropped by HTTP/2 with a reset stream is never
    /// written, so a little may stay charged until the connection closes).
    pub fn release_unsent(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut taken = 0;
        let _ = self
            .unsent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                taken = n.min(u & !CLOSED);
                Some(u - taken)
            });
        self.mark_progress();
        self.global.sub(taken);
        self.wake_waiters();
    }

    /// Waits until every response byte handed to HTTP/2 on this connection
    /// was written to the socket (or the connection closed), for at most
    /// `patience`: so that what a call sent is on the wire before its
    /// stream is reset or its connection dropped on purpose.
    pub async fn flushed(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        self.waiters.fetch_add(1, Ordering::AcqRel);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let u = self.unsent.load(Ordering::Acquire);
            if u & CLOSED != 0 || u == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.waiters.fetch_sub(1, Ordering::AcqRel);
    }

    /// Returns every unsent byte to the server total; later charges are
    /// refused. Called once, when the connection's IO is dropped.
    pub fn close(&self) {
        let before = self.unsent.swap(CLOSED, Ordering::AcqRel);
        if before & CLOSED == 0 {
            self.global.sub(before);
        }
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Reserves `n` bytes if this connection and the server both have room.
    fn try_reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        let unsent = self.unsent();
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r.saturating_add(unsent) < self.limit).then_some(r + n)
            })
            .ok()?;
        if !self.global.try_add(n) {
            // No wake-up for this connection's other waiters: the server
            // is full, so they could not proceed either (and this waiter
            // would wake itself and spin). The server's release wakes them.
            self.reserved.fetch_sub(n, Ordering::AcqRel);
            return None;
        }
        Some(Reservation {
            conn: self.clone(),
            bytes: n,
        })
    }

    /// Reserves `n` bytes whether or not there is room: for bytes that
    /// already exist (a request just read) and must be counted.
    pub fn force_reserve(self: &Arc<Self>, n: usize) -> Reservation {
        self.reserved.fetch_add(n, Ordering::AcqRel);
        self.global.add(n);
        Reservation {
            conn: self.clone(),
            bytes: n,
        }
    }

    /// Waits until this connection and the server have room, then reserves
    /// `n` bytes (`0`: only waits for room).
    ///
    /// # Errors
    /// [`BudgetError`] after `patience` without room: `ClientStuck` when
    /// the connection itself is full, `ServerFull` otherwise.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is reserved until it returns.
    pub async fn reserve(
        self: &Arc<Self>,
        n: usize,
        patience: Duration,
    ) -> Result<Reservation, BudgetError> {
        if let Some(r) = self.try_reserve(n) {
            return Ok(r);
        }
        let started = Instant::now();
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiters);
        loop {
            // Enabled before the check, so a release between the check and
            // the await is not missed.
            let conn_room = self.room.notified();
            let global_room = self.global.room.notified();
            tokio::pin!(conn_room, global_room);
            conn_room.as_mut().enable();
            global_room.as_mut().enable();
            if let Some(r) = self.try_reserve(n) {
                return Ok(r);
            }
            tokio::select! {
                () = &mut conn_room => {}
                () = &mut global_room => {}
                () = &mut deadline => {
                    let waited = started.elapsed();
                    return Err(if self.is_full() {
                        BudgetError::ClientStuck { waited }
                    } else {
                        BudgetError::ServerFull { waited }
                    });
                }
            }
        }
    }
}

/// Decrements a waiter count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reserved bytes of one connection, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    conn: Arc<ConnBudget>,
    bytes: usize,
}

impl Reservation {
    /// The bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Shrinks the reservation to `bytes` (never grows it).
    pub fn shrink_to(&mut self, bytes: usize) {
        let give_back = self.bytes.saturating_sub(bytes);
        if give_back > 0 {
            self.bytes -= give_back;
            self.give_back(give_back);
        }
    }

    fn give_back(&self, n: usize) {
        self.conn.reserved.fetch_sub(n, Ordering::AcqRel);
        self.conn.global.sub(n);
        self.conn.wake_waiters();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[test]
    fn a_connection_admits_until_its_limit_then_refuses() {
        let global = Budget::new(100 * KIB);
        let conn = ConnBudget::new(global.clone(), 10 * KIB);
        let a = conn.try_reserve(6 * KIB).expect("room");
        // Below the limit: admitted, and may overshoot by its own size.
        let b = conn.try_reserve(6 * KIB).expect("still below the limit");
        assert_eq!(conn.held(), 12 * KIB);
        assert!(conn.try_reserve(1).is_none(), "over the limit");
        assert_eq!(global.held(), 12 * KIB);
        drop(a);
        assert!(conn.try_reserve(1).is_some());
        drop(b);
        assert_eq!(conn.held(), 0);
        assert_eq!(global.held(), 0);
    }

    #[test]
    fn unsent_bytes_count_until_written_and_return_on_close() {
        let global = Budget::new(100 * KIB);
        let conn = ConnBudget::new(global.clone(), 10 * KIB);
        conn.charge_unsent(12 * KIB);
        assert!(conn.is_full());
        assert!(conn.try_reserve(0).is_none());
        conn.release_unsent(4 * KIB);
        assert_eq!(conn.unsent(), 8 * KIB);
        assert!(conn.try_reserve(0).is_some());
        // Writes of more than was charged (a reset stream's data) clamp.
        conn.release_unsent(20 * KIB);
        assert_eq!(conn.unsent(), 0);
        assert_eq!(global.held(), 0);
        conn.charge_unsent(3 * KIB);
        conn.close();
        assert_eq!(global.held(), 0, "closing returns what was never written");
        conn.charge_unsent(5 * KIB);
        assert_eq!(global.held(), 0, "a closed connection takes no charges");
        assert_eq!(conn.unsent(), 0);
    }

    #[test]
    fn the_server_limit_holds_across_connections() {
        let global = Budget::new(10 * KIB);
        let one = ConnBudget::new(global.clone(), 100 * KIB);
        let two = ConnBudget::new(global.clone(), 100 * KIB);
        one.charge_unsent(10 * KIB);
        assert!(global.is_full());
        assert!(two.try_reserve(1).is_none(), "the server is full");
        assert!(two.under_pressure());
        assert!(!two.is_full());
        assert_eq!(two.held(), 0, "a refused reservation leaves nothing");
        one.release_unsent(KIB);
        assert!(two.try_reserve(1).is_some());
    }

    #[test]
    fn reservations_shrink_and_return_on_drop() {
        let global = Budget::new(100 * KIB);
        let conn = ConnBudget::new(global.clone(), 10 * KIB);
        let mut r = conn.force_reserve(30 * KIB);
        assert!(conn.is_full(), "forced reservations may exceed the limit");
        r.shrink_to(2 * KIB);
        r.shrink_to(5 * KIB);
        assert_eq!(r.bytes(), 2 * KIB, "shrinking never grows");
        assert_eq!(conn.held(), 2 * KIB);
        drop(r);
        assert_eq!(global.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_room_when_bytes_are_written() {
        let global = Budget::new(100 * KIB);
        let conn = ConnBudget::new(global.clone(), 10 * KIB);
        conn.charge_unsent(10 * KIB);
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.reserve(KIB, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "no room yet");
        conn.release_unsent(KIB);
        let r = waiter.await.expect("join").expect("room after a write");
        assert_eq!(r.bytes(), KIB);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_room_when_the_server_frees_some() {
        let global = Budget::new(10 * KIB);
        let hog = ConnBudget::new(global.clone(), 100 * KIB);
        let other = ConnBudget::new(global.clone(), 100 * KIB);
        hog.charge_unsent(10 * KIB);
        let waiter = tokio::spawn({
            let other = other.clone();
            async move { other.reserve(KIB, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        hog.close();
        waiter
            .await
            .expect("join")
            .expect("room once the hog closed");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_after_the_patience_with_the_reason() {
        let global = Budget::new(100 * KIB);
        let conn = ConnBudget::new(global.clone(), 10 * KIB);
        conn.charge_unsent(10 * KIB);
        let err = conn
            .reserve(KIB, Duration::from_secs(30))
            .await
            .expect_err("stuck");
        assert_eq!(
            err,
            BudgetError::ClientStuck {
                waited: Duration::from_secs(30)
            }
        );
        assert_eq!(err.code(), ErrorCode::ClientTooSlow);
        let full = Budget::new(KIB);
        let hog = ConnBudget::new(full.clone(), 100 * KIB);
        hog.charge_unsent(KIB);
        let innocent = ConnBudget::new(full, 100 * KIB);
        let err = innocent
            .reserve(1, Duration::from_secs(1))
            .await
            .expect_err("server full");
        assert!(matches!(err, BudgetError::ServerFull { .. }), "{err:?}");
        assert_eq!(conn.waiters.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_since_tracks_data_that_is_not_written() {
        let conn = ConnBudget::new(Budget::new(100 * KIB), 10 * KIB);
        assert!(conn.waiting_since().is_none());
        tokio::time::sleep(Duration::from_secs(3)).await;
        conn.charge_unsent(KIB);
        let since = conn.waiting_since().expect("data waits");
        assert_eq!(since, Instant::now());
        tokio::time::sleep(Duration::from_secs(3)).await;
        conn.charge_unsent(KIB);
        assert_eq!(
            conn.waiting_since(),
            Some(since),
            "more data is no progress"
        );
        conn.release_unsent(KIB);
        assert_eq!(conn.waiting_since(), Some(Instant::now()));
        conn.release_unsent(KIB);
        assert!(conn.waiting_since().is_none());
    }
}
