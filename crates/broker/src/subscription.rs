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
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::credits::Credits;
use super::managed::{CommitAnswer, CommitRequest, ManagedRef, ManagedSession};
use super::{Broker, BrokerError, LiveSubscription, Topic};
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
            },
            session: start.session,
            topic: start.topic_name,
        })
    }
}

/// Unregisters the subscription however the loop ends.
struct OpenGuard<'a> {
    broker: &'a Broker,
    live_id: u64,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.broker
            .stats()
            .open_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
        self.broker.unregister_live(self.live_id);
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
        let live = Arc::new(LiveSubscription {
            topic: self.topic.id,
            topic_name: self.topic.name.to_string(),
            cursor: AtomicU64::new(self.cursor.0),
            credit: AtomicU64::new(u64::from(credits.available())),
        });
        let _open = OpenGuard {
            broker: &broker,
            live_id: broker.register_live(live.clone()),
        };
        let metrics = broker.metrics();
        let delivered = metrics
            .delivered_events
            .get_or_create(&metrics.topic_label(self.topic.name.as_str()))
            .clone();
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
                let want = (credits.available() as usize).min(cfg.max_batch_events);
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
                delivered.inc_by(n as u64);
                live.cursor.store(self.cursor.0, Ordering::Relaxed);
                live.credit
                    .store(u64::from(credits.available()), Ordering::Relaxed);
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
                    live.credit
                        .store(u64::from(credits.available()), Ordering::Relaxed);
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
                    live.credit.store(u64::from(credits.available()), Ordering::Relaxed);
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
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::log::SharedLog;
    use crate::log::memory::MemoryTopicLog;
    use crate::metrics::Metrics;
    use crate::schema::ParsedSchema;
    use crate::types::TopicName;
    use crate::{BrokerConfig, PublishEvent};

    const TOPIC: &str = "/event/A__e";
    const SCHEMA: &str =
        r#"{"type":"record","name":"A__e","fields":[{"name":"CreatedDate","type":"long"}]}"#;

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

    async fn broker_with_events(n: usize) -> Arc<Broker> {
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        let broker = Broker::open(log, BrokerConfig::default(), Arc::new(Metrics::new()))
            .await
            .expect("broker");
        let name = TopicName::parse(TOPIC).expect("name");
        broker
            .provision(&name, ParsedSchema::parse(SCHEMA).expect("schema"))
            .await
            .expect("provision");
        let schema = broker
            .topic(TOPIC)
            .expect("topic")
            .current_schema()
            .to_string();
        let events = (0..n)
            .map(|_| PublishEvent {
                id: String::new(),
                schema_id: schema.clone(),
                payload: bytes::Bytes::from_static(&[2]),
                headers: Vec::new(),
            })
            .collect();
        broker.publish(TOPIC, events).await.expect("publish");
        broker
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
}
