//! One subscription: a cursor, a credit count and a wake-up on the tail.
//!
//! Owns: start positions, the delivery loop, keepalives, and a managed
//! stream ([`ManagedOpen`]): the delivery loop over the session the managed
//! module opens (lease, start, commits stay there). Must not: queue
//! events. The log is the buffer: a subscription holds a cursor and reads
//! only as many events as it has credit for, so a client that stops asking
//! costs a few bytes of state, not a growing queue.
//!
//! A client that asked for events but does not read them is the
//! transport's to notice: a [`Pace`] given with [`Subscription::paced`]
//! admits each read first, and the [`Hold`] it returns travels with the
//! delivery until the transport has taken it, so a stalled client stops
//! the loop before it reads more instead of after.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::credits::Credits;
use super::managed::{CommitAnswer, CommitRequest, ManagedRef, ManagedSession};
use super::streams::{LiveSubscription, StreamKind, StreamOrigin};
use super::{Broker, BrokerError, Topic};
use crate::log::StoredEvent;
use crate::types::{Offset, ReplayId};

/// How long a stopping subscription waits to hand its shutdown error to a
/// client that is not reading.
const SHUTDOWN_NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The client's side of a subscription, as the delivery loop reads it.
pub type Controls = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Control> + Send>>;

/// Where a subscription starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// After the newest event: only events published from now on.
    Latest,
    /// At the oldest retained event.
    Earliest,
    /// After the event with this replay id (raw bytes as the client sent them).
    Custom(Vec<u8>),
}

/// Input from the client side of a subscription.
#[derive(Debug)]
pub enum Control {
    /// More credit.
    Grant(u32),
    /// A managed subscription's commit (ManagedSubscribe only).
    Commit(CommitRequest),
    /// The client sent something that ends the stream: the commits before
    /// it are answered, then the stream ends. Why is the protocol layer's
    /// to tell the client, after the last delivery.
    Fail,
    /// The client's side of the stream broke; nobody is listening.
    Disconnected,
}

/// Admits a subscription's reads while its client takes what it is sent
/// (implemented by the protocol layer on the connection's response budget).
pub trait Pace: Send + Sync {
    /// Waits until a response of up to `bytes` may be read; `None` ends the
    /// subscription (the pace has told the client why).
    ///
    /// # Cancel safety
    /// Must be cancel safe: the loop drops it on shutdown or disconnect.
    fn admit(&self, bytes: usize) -> PaceAdmission<'_>;
}

/// The future [`Pace::admit`] returns.
pub type PaceAdmission<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<Hold>> + Send + 'a>>;

/// Bytes a [`Pace`] counts for one delivery until the delivery is dropped.
pub trait Held: Send + Sync {
    /// Counts `bytes` from now on instead of what was admitted (never
    /// more).
    fn shrink_to(&mut self, bytes: usize);
}

/// What a [`Pace`] admitted, carried by the [`Delivery`] it was read for.
pub struct Hold(Box<dyn Held>);

impl Hold {
    /// Wraps what the pace counts.
    pub fn new(held: impl Held + 'static) -> Self {
        Self(Box::new(held))
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// One response's worth of events (empty for a keepalive or a commit
/// answer).
#[derive(Debug)]
pub struct Delivery {
    /// The events, in offset order.
    pub events: Vec<StoredEvent>,
    /// The subscription's position after this response; valid as a CUSTOM
    /// start point even when it names no delivered event.
    pub latest: ReplayId,
    /// Credit left after this response.
    pub pending: u32,
    /// A commit answer; a response carrying one carries no events. Boxed:
    /// deliveries sit in every subscription's channel slots (tokio
    /// allocates 32 at a time), so their size is paid per idle subscriber.
    pub commit: Option<Box<CommitAnswer>>,
    /// What the subscription's [`Pace`] counts for these events, released
    /// when the delivery is dropped (turned into a response).
    pub hold: Option<Hold>,
}

/// A subscription ready to run.
pub struct Subscription {
    pub(super) broker: Arc<Broker>,
    pub(super) topic: Arc<Topic>,
    pub(super) cursor: Offset,
    pub(super) pace: Option<Arc<dyn Pace>>,
    pub(super) origin: StreamOrigin,
}

/// A managed stream ready to run.
pub struct ManagedOpen {
    /// The delivery side.
    pub subscription: Subscription,
    /// The commit side and the lease.
    pub session: ManagedSession,
    /// The stored name of the topic.
    pub topic: String,
}

/// What the delivery loop does after handling client input.
enum Flow {
    Go,
    End,
}

impl Broker {
    /// Resolves the topic and start position of a new subscription.
    ///
    /// # Errors
    /// Blank, malformed or unknown topic; a missing, malformed, unknown or
    /// expired replay id for [`Start::Custom`].
    pub fn subscribe(
        self: &Arc<Self>,
        topic: &str,
        start: Start,
    ) -> Result<Subscription, BrokerError> {
        let topic = self.topic(topic)?;
        let bounds = self.log().bounds(topic.id)?;
        let cursor = match start {
            Start::Latest => bounds.latest,
            Start::Earliest => bounds.trimmed,
            Start::Custom(bytes) => {
                if bytes.is_empty() {
                    return Err(BrokerError::ReplayIdMissing);
                }
                let id = ReplayId::decode(&bytes).map_err(BrokerError::ReplayIdCorrupted)?;
                let at = id.offset();
                if at > bounds.latest {
                    return Err(BrokerError::ReplayIdCorrupted(format!(
                        "replay ID {id} is not a position of topic {} (its newest is {})",
                        topic.name,
                        ReplayId::from(bounds.latest)
                    )));
                }
                if at < bounds.trimmed {
                    return Err(BrokerError::ReplayIdCorrupted(format!(
                        "replay ID {id} is older than the retention window of topic {}; resubscribe with EARLIEST",
                        topic.name
                    )));
                }
                at
            }
        };
        Ok(Subscription {
            broker: self.clone(),
            topic,
            cursor,
            pace: None,
            origin: StreamOrigin::default(),
        })
    }
}

impl Broker {
    /// Opens a stream on a managed subscription: checks its state, takes
    /// the lease (waiting briefly for a previous holder to go) and finds
    /// the start: after the commit; without one, the default replay; when
    /// the commit is no longer retained, the error-recovery replay (see
    /// the managed module).
    ///
    /// # Errors
    /// A malformed or unknown reference, STOP, another active stream, the
    /// topic gone.
    pub async fn open_managed(
        self: &Arc<Self>,
        tenant: &str,
        r: &ManagedRef,
    ) -> Result<ManagedOpen, BrokerError> {
        let start = self.open_managed_session(tenant, r).await?;
        Ok(ManagedOpen {
            subscription: Subscription {
                broker: self.clone(),
                topic: start.topic,
                cursor: start.cursor,
                pace: None,
                origin: StreamOrigin::default(),
            },
            session: start.session,
            topic: start.topic_name,
        })
    }
}

/// Counts the subscription as open until the loop ends, however it ends.
struct OpenGuard<'a> {
    broker: &'a Broker,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.broker
            .stats()
            .open_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscription {
    /// The subscribed topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The position the subscription starts after.
    pub fn cursor(&self) -> ReplayId {
        ReplayId::from(self.cursor)
    }

    /// Names who opened the stream, for [`Broker::live_streams`] (the
    /// default names nobody).
    #[must_use]
    pub fn with_origin(mut self, origin: StreamOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// Reads only what `pace` admits (the default admits everything).
    #[must_use]
    pub fn paced(mut self, pace: Arc<dyn Pace>) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Delivers events until the client goes away, half-closes (the
    /// controls stream ends), sends a bad request, or `stop` fires; for a
    /// managed subscription also until it is stopped or deleted.
    ///
    /// `controls` is polled only while the loop waits (and, for a managed
    /// subscription, once after each response, so commits are answered
    /// while events flow), so unread requests stay in the transport's flow
    /// control rather than in a queue. Errors are sent on `out` before
    /// returning.
    pub async fn run(
        mut self,
        initial_credit: u32,
        mut controls: Controls,
        out: mpsc::Sender<Result<Delivery, BrokerError>>,
        stop: CancellationToken,
        mut managed: Option<ManagedSession>,
    ) {
        let broker = self.broker.clone();
        broker
            .stats()
            .open_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        let cfg = broker.config().clone();
        let mut credits = Credits::new(cfg.max_credit);
        credits.grant(initial_credit);
        let kind = match managed.as_ref() {
            None => StreamKind::Subscribe,
            Some(session) => StreamKind::Managed {
                id: session.id(),
                developer_name: session.developer_name().to_owned(),
            },
        };
        let live = Arc::new(LiveSubscription::new(
            (self.topic.id, self.topic.name.to_string()),
            kind,
            std::mem::take(&mut self.origin),
            self.cursor,
            credits.available(),
        ));
        let _open = OpenGuard { broker: &broker };
        // Removes the stream from the listing however the loop ends.
        let _listed = broker.register_live(live.clone());
        let metrics = broker.metrics();
        let delivered = metrics
            .delivered_events
            .get_or_create(&metrics.topic_label(self.topic.name.as_str()))
            .clone();
        let tenant = crate::owner_of_topic(self.topic.name.as_str());
        let mut tail = match broker.log().watch_tail(self.topic.id) {
            Ok(t) => t,
            Err(e) => {
                let _ = out.send(Err(e.into())).await;
                return;
            }
        };
        let mut keepalive_at = Instant::now() + cfg.keepalive;
        loop {
            let latest = *tail.borrow_and_update();
            if credits.available() > 0 && self.cursor < latest {
                let mut hold = match self.pace.clone() {
                    None => None,
                    Some(pace) => {
                        let ending = managed.as_ref().map(ManagedSession::ending);
                        tokio::select! {
                            biased;
                            _ = stop.cancelled() => return self.shutdown(&out, &stop).await,
                            _ = out.closed() => return,
                            () = cancelled(ending.as_ref()) => {
                                if let Some(session) = managed.as_ref() {
                                    let _ = out.send(Err(session.end_reason())).await;
                                }
                                return;
                            }
                            admitted = pace.admit(cfg.max_response_bytes) => match admitted {
                                Some(hold) => Some(hold),
                                // The client is stuck; the pace ends the stream.
                                None => return,
                            },
                        }
                    }
                };
                let want = (credits.available() as usize)
                    .min(cfg.max_batch_events)
                    .min(pipelined_batch(cfg.max_credit));
                let events = match broker
                    .log()
                    .read(self.topic.id, self.cursor, want, cfg.max_response_bytes)
                    .await
                {
                    Ok(evs) => evs,
                    Err(e) => {
                        let _ = out.send(Err(e.into())).await;
                        return;
                    }
                };
                let Some(last) = events.last().map(|e| e.offset) else {
                    // Everything after the cursor was trimmed by retention
                    // while we waited: continue from the trim point.
                    match broker.log().bounds(self.topic.id) {
                        Ok(b) if b.trimmed > self.cursor => {
                            self.cursor = b.trimmed;
                            continue;
                        }
                        _ => {
                            // Nothing readable yet; wait for the tail to move.
                            if tail.changed().await.is_err() {
                                return self.deleted(&out).await;
                            }
                            continue;
                        }
                    }
                };
                if let Some(hold) = hold.as_mut() {
                    hold.0
                        .shrink_to(events.iter().map(|e| e.event.approx_size()).sum());
                }
                let n = events.len();
                let bytes: usize = events.iter().map(|e| e.event.payload.len()).sum();
                broker.count(&broker.stats().events_read_for_subscribers, n);
                self.cursor = last;
                credits.take(u32::try_from(n).unwrap_or(u32::MAX));
                let delivery = Delivery {
                    events,
                    latest: ReplayId::from(self.cursor),
                    pending: credits.available(),
                    commit: None,
                    hold,
                };
                if !send(&out, Ok(delivery), &stop).await {
                    return self.shutdown(&out, &stop).await;
                }
                broker.count(&broker.stats().events_delivered, n);
                broker.usage.delivered(&tenant, n);
                delivered.inc_by(n as u64);
                live.delivered(n, bytes, self.cursor, credits.available());
                keepalive_at = Instant::now() + cfg.keepalive;
                // A managed subscription answers commits between responses
                // too, not only once it runs out of credit or events.
                if let Some(session) = managed.as_mut()
                    && let Some(ctl) = controls.next().now_or_never()
                {
                    let had_credit = credits.available() > 0;
                    let flow = Box::pin(self.handle(
                        ctl,
                        &mut controls,
                        &mut credits,
                        Some(session),
                        &out,
                        &stop,
                    ))
                    .await;
                    if matches!(flow, Flow::End) {
                        return;
                    }
                    live.set_credit(credits.available());
                    if !had_credit && credits.available() > 0 {
                        keepalive_at = Instant::now() + cfg.keepalive;
                    }
                }
                continue;
            }
            let had_credit = credits.available() > 0;
            let ending = managed.as_ref().map(ManagedSession::ending);
            tokio::select! {
                // Shutdown first, then client input, so a stream that is
                // both busy and asked to stop stops.
                biased;
                _ = stop.cancelled() => return self.shutdown(&out, &stop).await,
                _ = out.closed() => return,
                () = cancelled(ending.as_ref()) => {
                    if let Some(session) = managed.as_ref() {
                        let _ = out.send(Err(session.end_reason())).await;
                    }
                    return;
                }
                ctl = controls.next() => {
                    // Boxed: input handling (commits) would otherwise grow
                    // every subscription's future, idle ones included.
                    let flow = Box::pin(self.handle(
                        ctl,
                        &mut controls,
                        &mut credits,
                        managed.as_mut(),
                        &out,
                        &stop,
                    ))
                    .await;
                    if matches!(flow, Flow::End) {
                        return;
                    }
                    live.set_credit(credits.available());
                    if !had_credit && credits.available() > 0 {
                        keepalive_at = Instant::now() + cfg.keepalive;
                    }
                },
                changed = tail.changed(), if had_credit => {
                    if changed.is_err() {
                        return self.deleted(&out).await;
                    }
                }
                _ = tokio::time::sleep_until(keepalive_at), if had_credit => {
                    let ka = Delivery {
                        events: Vec::new(),
                        latest: ReplayId::from(self.cursor),
                        pending: credits.available(),
                        commit: None,
                        hold: None,
                    };
                    if !send(&out, Ok(ka), &stop).await {
                        return self.shutdown(&out, &stop).await;
                    }
                    keepalive_at = Instant::now() + cfg.keepalive;
                }
            }
        }
    }

    /// Handles one input from the client (`None`: it half-closed). A
    /// commit is answered together with every further commit that is
    /// already waiting: they are made durable with one write and answered
    /// with one response for the newest.
    async fn handle(
        &mut self,
        first: Option<Control>,
        controls: &mut Controls,
        credits: &mut Credits,
        managed: Option<&mut ManagedSession>,
        out: &mpsc::Sender<Result<Delivery, BrokerError>>,
        stop: &CancellationToken,
    ) -> Flow {
        let mut commits = Vec::new();
        let mut end = false;
        let mut listening = true;
        let mut next = first;
        loop {
            match next {
                Some(Control::Grant(n)) => credits.grant(n),
                Some(Control::Commit(c)) => commits.push(c),
                Some(Control::Fail) => end = true,
                Some(Control::Disconnected) => {
                    listening = false;
                    end = true;
                }
                // The client half-closed: end the stream with OK, after
                // answering the commits it sent before.
                None => end = true,
            }
            if commits.is_empty() || end {
                break;
            }
            match controls.next().now_or_never() {
                Some(ctl) => next = ctl,
                None => break,
            }
        }
        if let Some(session) = managed
            && !commits.is_empty()
        {
            // Commits the client sent are stored even if it is gone.
            let answers = session.commit(commits, self.cursor).await;
            for answer in answers {
                let response = Delivery {
                    events: Vec::new(),
                    latest: ReplayId::from(self.cursor),
                    pending: credits.available(),
                    commit: Some(Box::new(answer)),
                    hold: None,
                };
                if listening && !send(out, Ok(response), stop).await {
                    return Flow::End;
                }
            }
        }
        if end { Flow::End } else { Flow::Go }
    }

    /// The tail watch closed: the topic was deleted.
    async fn deleted(&self, out: &mpsc::Sender<Result<Delivery, BrokerError>>) {
        let _ = out
            .send(Err(BrokerError::TopicDeleted(self.topic.name.to_string())))
            .await;
    }

    async fn shutdown(
        &self,
        out: &mpsc::Sender<Result<Delivery, BrokerError>>,
        stop: &CancellationToken,
    ) {
        if stop.is_cancelled() {
            // Tell the client why, so it reconnects instead of treating the
            // end as final; give up after a second if it is not reading.
            let _ = tokio::time::timeout(
                SHUTDOWN_NOTICE_TIMEOUT,
                out.send(Err(BrokerError::ShuttingDown)),
            )
            .await;
        }
    }
}

/// Resolves when `token` is cancelled; never without a token.
/// Most events of one response while the backlog is long: half the
/// credit cap (50 of the API's 100). A client that tops its credit back up
/// as responses arrive (as the Pub/Sub API's clients do) has granted more
/// before the server runs out, so the server reads the next events while
/// the client takes these; with whole-credit responses the two would take
/// turns, each idle while the other works.
fn pipelined_batch(max_credit: u32) -> usize {
    (max_credit as usize).div_ceil(2).max(1)
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Sends unless `stop` fires first; false when the item was not sent.
async fn send(
    out: &mpsc::Sender<Result<Delivery, BrokerError>>,
    item: Result<Delivery, BrokerError>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        _ = stop.cancelled() => false,
        r = out.send(item) => r.is_ok(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn long_backlogs_are_sent_in_halves_of_the_credit_cap() {
        assert_eq!(super::pipelined_batch(100), 50);
        assert_eq!(super::pipelined_batch(7), 4);
        assert_eq!(super::pipelined_batch(1), 1);
        assert_eq!(super::pipelined_batch(0), 1);
    }

    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::BrokerConfig;
    use crate::log::LogError;
    use crate::log::memory::MemoryTopicLog;
    use crate::testing::{TokioLeaseLog, open, publish, topic};
    use crate::types::{ManagedReplay, ManagedState};
    use crate::{ManagedRef, NewManaged};

    const TOPIC: &str = "/event/A__e";

    /// Admits while `admit` is set and records what each hold shrank to.
    struct Recording {
        admit: bool,
        asked: Mutex<Vec<usize>>,
        shrunk: Arc<Mutex<Vec<usize>>>,
    }

    struct Shrinks(Arc<Mutex<Vec<usize>>>);

    impl Held for Shrinks {
        fn shrink_to(&mut self, bytes: usize) {
            self.0.lock().expect("lock").push(bytes);
        }
    }

    impl Pace for Recording {
        fn admit(&self, bytes: usize) -> PaceAdmission<'_> {
            self.asked.lock().expect("lock").push(bytes);
            let hold = self.admit.then(|| Hold::new(Shrinks(self.shrunk.clone())));
            Box::pin(async move { hold })
        }
    }

    /// A broker on the in-memory log with [`TOPIC`] holding `n` events.
    async fn broker_with(cfg: BrokerConfig, n: usize) -> Arc<Broker> {
        let broker = open(Arc::new(MemoryTopicLog::new()), cfg).await;
        topic(&broker, TOPIC).await;
        if n > 0 {
            publish(&broker, TOPIC, n).await;
        }
        broker
    }

    async fn broker_with_events(n: usize) -> Arc<Broker> {
        broker_with(BrokerConfig::default(), n).await
    }

    fn recording(admit: bool) -> Arc<Recording> {
        Arc::new(Recording {
            admit,
            asked: Mutex::new(Vec::new()),
            shrunk: Arc::new(Mutex::new(Vec::new())),
        })
    }

    #[tokio::test]
    async fn a_paced_read_is_admitted_first_and_its_hold_rides_the_delivery() {
        let broker = broker_with_events(3).await;
        let pace = recording(true);
        let sub = broker
            .subscribe(TOPIC, Start::Earliest)
            .expect("subscribe")
            .paced(pace.clone());
        let (tx, mut rx) = mpsc::channel(2);
        let stop = CancellationToken::new();
        let run = tokio::spawn(sub.run(
            10,
            Box::pin(tokio_stream::pending()),
            tx,
            stop.clone(),
            None,
        ));
        let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a delivery")
            .expect("open")
            .expect("events");
        assert_eq!(d.events.len(), 3);
        assert!(d.hold.is_some(), "the hold travels with the events");
        let read: usize = d.events.iter().map(|e| e.event.approx_size()).sum();
        assert_eq!(*pace.shrunk.lock().expect("lock"), vec![read]);
        assert_eq!(
            *pace.asked.lock().expect("lock"),
            vec![broker.config().max_response_bytes]
        );
        stop.cancel();
        let _ = run.await;
    }

    #[tokio::test]
    async fn a_read_the_pace_refuses_ends_the_subscription_without_reading() {
        let broker = broker_with_events(3).await;
        let pace = recording(false);
        let sub = broker
            .subscribe(TOPIC, Start::Earliest)
            .expect("subscribe")
            .paced(pace.clone());
        let (tx, mut rx) = mpsc::channel(2);
        let run = sub.run(
            10,
            Box::pin(tokio_stream::pending()),
            tx,
            CancellationToken::new(),
            None,
        );
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the loop ends");
        assert!(rx.recv().await.is_none(), "nothing was delivered");
        assert_eq!(pace.asked.lock().expect("lock").len(), 1);
        assert!(pace.shrunk.lock().expect("lock").is_empty());
    }

    // Timing: every test below runs on tokio's paused clock. A wait on
    // the channel lets the clock jump to the next timer, so an hour of
    // silence costs no real time.

    type Out = mpsc::Receiver<Result<Delivery, BrokerError>>;

    /// A subscription's delivery loop running on its own task; `grants`
    /// is the client's side (dropping it half-closes the stream).
    struct Running {
        out: Out,
        grants: mpsc::Sender<Control>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        fn start(sub: Subscription, credit: u32, managed: Option<ManagedSession>) -> Self {
            let (grants, controls) = mpsc::channel(8);
            let (tx, out) = mpsc::channel(8);
            let stop = CancellationToken::new();
            let controls: Controls =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(controls));
            let task = tokio::spawn(sub.run(credit, controls, tx, stop.clone(), managed));
            Self {
                out,
                grants,
                stop,
                task,
            }
        }

        async fn grant(&self, n: u32) {
            self.grants
                .send(Control::Grant(n))
                .await
                .expect("the loop listens");
        }

        /// Asserts that nothing arrives for `how_long`.
        async fn quiet(&mut self, how_long: Duration) {
            if let Ok(got) = tokio::time::timeout(how_long, self.out.recv()).await {
                panic!("nothing expected within {how_long:?}, got {got:?}");
            }
        }

        /// The next response, which must arrive within `how_long`.
        async fn next(&mut self, how_long: Duration) -> Delivery {
            tokio::time::timeout(how_long, self.out.recv())
                .await
                .unwrap_or_else(|_| panic!("a response within {how_long:?}"))
                .expect("the loop runs")
                .expect("a delivery, not an error")
        }

        /// Stops the loop, failing the test if it does not stop.
        async fn end(self) {
            self.stop.cancel();
            tokio::time::timeout(HOUR, self.task)
                .await
                .expect("the loop stops when told")
                .expect("the loop does not panic");
        }
    }

    /// Slack for the timer wheel's millisecond rounding.
    const TICK: Duration = Duration::from_millis(5);
    /// Longer than any timer of an idle subscription without credit.
    const HOUR: Duration = Duration::from_secs(3600);

    fn ids(d: &Delivery) -> Vec<u64> {
        d.events.iter().map(|e| e.offset.0).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn with_credit_and_nothing_new_a_keepalive_comes_every_interval() {
        let broker = broker_with_events(2).await;
        let keepalive = broker.config().keepalive;
        let sub = broker.subscribe(TOPIC, Start::Latest).expect("subscribe");
        let mut run = Running::start(sub, 5, None);
        for _ in 0..3 {
            run.quiet(keepalive - TICK).await;
            let ka = run.next(2 * TICK).await;
            assert!(ka.events.is_empty(), "a keepalive carries no events");
            assert_eq!(
                ka.latest,
                ReplayId::from(Offset(2)),
                "it names the position"
            );
            assert_eq!(ka.pending, 5, "and the credit left");
            assert!(ka.commit.is_none());
        }
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_credit_no_keepalive_and_a_grant_starts_the_interval() {
        let broker = broker_with_events(0).await;
        let keepalive = broker.config().keepalive;
        let sub = broker.subscribe(TOPIC, Start::Latest).expect("subscribe");
        let mut run = Running::start(sub, 0, None);
        run.quiet(HOUR).await;
        run.grant(3).await;
        // Counted from the grant, not from when the stream opened an hour
        // ago (that keepalive would be long overdue).
        run.quiet(keepalive - TICK).await;
        let ka = run.next(2 * TICK).await;
        assert!(ka.events.is_empty());
        assert_eq!(ka.pending, 3);
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_puts_the_next_keepalive_a_full_interval_off() {
        let broker = broker_with_events(0).await;
        let keepalive = broker.config().keepalive;
        let sub = broker.subscribe(TOPIC, Start::Latest).expect("subscribe");
        let mut run = Running::start(sub, 10, None);
        run.quiet(keepalive / 2).await;
        let offsets = publish(&broker, TOPIC, 1).await;
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![offsets[0].0]);
        assert_eq!(d.pending, 9);
        run.quiet(keepalive - TICK).await;
        let ka = run.next(2 * TICK).await;
        assert!(ka.events.is_empty());
        assert_eq!(ka.latest, ReplayId::from(offsets[0]));
        assert_eq!(ka.pending, 9);
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_event_is_delivered_without_credit() {
        let broker = broker_with_events(5).await;
        let sub = broker.subscribe(TOPIC, Start::Earliest).expect("subscribe");
        let mut run = Running::start(sub, 0, None);
        run.quiet(HOUR).await;
        run.grant(2).await;
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![1, 2], "as many as granted");
        assert_eq!(d.pending, 0);
        run.quiet(HOUR).await;
        run.grant(10).await;
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![3, 4, 5]);
        assert_eq!(d.pending, 7, "credit not spent stays");
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn grants_add_up() {
        let broker = broker_with_events(0).await;
        let sub = broker.subscribe(TOPIC, Start::Latest).expect("subscribe");
        let mut run = Running::start(sub, 1, None);
        run.grant(2).await;
        run.grant(3).await;
        // The grants are taken while nothing is there to deliver.
        run.quiet(TICK).await;
        publish(&broker, TOPIC, 10).await;
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![1, 2, 3, 4, 5, 6], "1 + 2 + 3 events");
        assert_eq!(d.pending, 0);
        run.quiet(HOUR).await;
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn credit_is_capped_at_the_configured_maximum() {
        let cfg = BrokerConfig {
            max_credit: 4,
            ..BrokerConfig::default()
        };
        let broker = broker_with(cfg, 0).await;
        let keepalive = broker.config().keepalive;
        let sub = broker.subscribe(TOPIC, Start::Latest).expect("subscribe");
        let mut run = Running::start(sub, 3, None);
        run.grant(3).await;
        run.grant(100).await;
        run.quiet(keepalive - TICK).await;
        let ka = run.next(2 * TICK).await;
        assert_eq!(ka.pending, 4, "the keepalive reports the capped credit");
        publish(&broker, TOPIC, 10).await;
        // Four events, in halves of the credit cap.
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![1, 2]);
        assert_eq!(d.pending, 2);
        let d = run.next(TICK).await;
        assert_eq!(ids(&d), vec![3, 4]);
        assert_eq!(d.pending, 0);
        run.quiet(HOUR).await;
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn credit_larger_than_a_batch_is_spent_over_several_responses() {
        let cfg = BrokerConfig {
            max_batch_events: 2,
            ..BrokerConfig::default()
        };
        let broker = broker_with(cfg, 10).await;
        let sub = broker.subscribe(TOPIC, Start::Earliest).expect("subscribe");
        let mut run = Running::start(sub, 5, None);
        let mut got = Vec::new();
        for pending in [3, 1, 0] {
            let d = run.next(TICK).await;
            assert!(d.events.len() <= 2);
            assert_eq!(d.pending, pending);
            got.extend(ids(&d));
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        run.quiet(HOUR).await;
        run.end().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_managed_stream_that_loses_its_lease_ends_with_a_storage_error() {
        const TENANT: &str = "00D000000000000EAA";
        let log = Arc::new(TokioLeaseLog::default());
        let broker = open(log.clone(), BrokerConfig::default()).await;
        topic(&broker, TOPIC).await;
        broker
            .create_managed(
                TENANT,
                NewManaged {
                    developer_name: "Leased".into(),
                    topic: TOPIC.into(),
                    default_replay: ManagedReplay::Latest,
                    error_recovery_replay: ManagedReplay::Latest,
                    state: ManagedState::Run,
                },
            )
            .await
            .expect("create");
        let open = broker
            .open_managed(TENANT, &ManagedRef::Name("Leased".into()))
            .await
            .expect("open");
        let mut run = Running::start(open.subscription, 1, Some(open.session));
        log.cut_off(&broker.instance);
        // The lease is renewed every few seconds, well before a keepalive
        // is due: the first thing the client hears is why its stream ended.
        match tokio::time::timeout(broker.config().keepalive - TICK, run.out.recv()).await {
            Ok(Some(Err(BrokerError::Log(LogError::Storage(_))))) => {}
            other => panic!("expected the lease error, got {other:?}"),
        }
        assert!(run.out.recv().await.is_none(), "and the stream ended");
        run.end().await;
    }

    async fn poll_until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_running_stream_is_listed_with_its_counts_and_removed_when_it_ends() {
        let broker = open(Arc::new(MemoryTopicLog::new()), BrokerConfig::default()).await;
        topic(&broker, TOPIC).await;
        publish(&broker, TOPIC, 5).await;
        let origin = crate::StreamOrigin {
            tenant: "000000000000000AAA".into(),
            peer: Some("127.0.0.1:5000".parse().expect("addr")),
            user: "orders".into(),
            rpc_id: "rpc".into(),
        };
        let sub = broker
            .subscribe(TOPIC, Start::Earliest)
            .expect("subscribe")
            .with_origin(origin.clone());
        let (tx, mut rx) = mpsc::channel(2);
        let (grants, controls) = mpsc::channel::<Control>(1);
        let stop = CancellationToken::new();
        let run = tokio::spawn(sub.run(
            3,
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(controls)),
            tx,
            stop.clone(),
            None,
        ));
        let d = rx.recv().await.expect("open").expect("events");
        assert_eq!(d.events.len(), 3);
        let bytes: u64 = d.events.iter().map(|e| e.event.payload.len() as u64).sum();
        poll_until("the delivery is counted", || {
            broker
                .live_streams()
                .first()
                .is_some_and(|s| s.delivered_events == 3)
        })
        .await;
        let [s] = broker.live_streams().try_into().expect("one stream");
        assert_eq!(s.topic, TOPIC);
        assert_eq!(s.kind, crate::StreamKind::Subscribe);
        assert_eq!(s.origin, origin);
        assert_eq!(s.credit, 0);
        assert_eq!(s.delivered_bytes, bytes);
        assert_eq!(s.lag, 2, "5 published, 3 delivered");
        assert!(s.last_delivery_ms.is_some());
        let topic_id = broker.topic(TOPIC).expect("topic").id;
        assert_eq!(broker.open_streams_by_topic().get(&topic_id), Some(&1));
        grants.send(Control::Grant(7)).await.expect("grant");
        let d = rx.recv().await.expect("open").expect("events");
        assert_eq!(d.events.len(), 2);
        poll_until("the credit left is shown", || {
            broker
                .live_streams()
                .first()
                .is_some_and(|s| s.credit == 5 && s.lag == 0)
        })
        .await;
        // The client goes away: the loop ends and the entry with it.
        drop(rx);
        drop(grants);
        run.await.expect("loop ends");
        assert!(broker.live_streams().is_empty());
        assert!(broker.open_streams_by_topic().is_empty());
    }
}
