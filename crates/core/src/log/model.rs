//! Model-based property test of the [`TopicLog`] contract.
//!
//! The harness ([`Backend`], [`check_backend`]) is public under the
//! `test-util` feature so each backend crate runs it on its own log; the
//! memory log's run is here.
//!
//! Owns: a plain in-test model of the log (a `Vec` of events per topic plus
//! the catalog as maps), a proptest strategy for random operation sequences,
//! and the check that every backend's observable results match the model.
//! Must not: depend on a backend's internals; both backends are driven only
//! through the trait.
//!
//! Timestamps: the writer stamps events with the wall clock, which the trait
//! does not let a caller set. The `Tick` operation makes trimming exact
//! instead: it waits until the clock has moved past every committed event
//! and records that millisecond as a boundary. Events appended before tick
//! `i` are then older than boundary `i` and events after it are not, so
//! `trim_older_than(boundary i)` has exactly one correct outcome. (This
//! assumes the wall clock does not step backwards during a case.)
//!
//! `PROPTEST_CASES` raises the number of cases (default 64).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::sync::watch;

#[cfg(test)]
use super::memory::MemoryTopicLog;
use super::{EpochMillis, EventHeader, LogError, NewEvent, TopicLog, TopicRecord, now_ms};
use crate::types::{EventId, Offset, SchemaId, TopicId};

/// Topic ids the operations use: few, so operations collide on them.
const TOPICS: u32 = 3;
/// Most operations in one case.
const MAX_OPS: usize = 40;

/// A trim cutoff, chosen so the outcome is exact (see the module docs).
#[derive(Clone, Debug)]
enum Cutoff {
    /// Nothing is older than 0.
    Zero,
    /// Everything is older than `u64::MAX`.
    Max,
    /// The boundary recorded by tick number `i % ticks` (0 when none).
    Tick(usize),
}

/// One operation against the log.
#[derive(Clone, Debug)]
enum Op {
    Register(u32),
    Append(u32, Vec<NewEvent>),
    Read {
        topic: u32,
        after: u64,
        max_events: usize,
        max_bytes: Option<usize>,
    },
    Bounds(u32),
    Tick,
    Trim(u32, Cutoff),
    Delete(u32),
    PutTopic {
        id: u32,
        retention_ms: u64,
    },
    PutSchema(u8, String),
    LoadCatalog,
    Close,
    /// Close, drop and open again on the same folder (RocksDB only; a no-op
    /// for the in-memory log, which has nothing to reopen).
    Reopen,
}

fn topic_name(id: u32) -> String {
    format!("/event/T{id}__e")
}

fn event_strategy() -> impl Strategy<Value = NewEvent> {
    (
        "[a-z0-9-]{0,12}",
        prop_oneof![
            Just("AAAAAAAAAAAAAAAAAAAAAA"),
            Just("BBBBBBBBBBBBBBBBBBBBBB")
        ],
        proptest::collection::vec(any::<u8>(), 0..48),
        proptest::collection::vec(
            ("[a-z]{1,6}", proptest::collection::vec(any::<u8>(), 0..8)),
            0..3,
        ),
    )
        .prop_map(|(id, schema, payload, headers)| NewEvent {
            id: EventId::new(id),
            schema_id: SchemaId::new(schema),
            payload: Bytes::from(payload),
            headers: headers
                .into_iter()
                .map(|(key, value)| EventHeader {
                    key,
                    value: Bytes::from(value),
                })
                .collect(),
            generated_id: false,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let topic = 1..=TOPICS;
    prop_oneof![
        3 => topic.clone().prop_map(Op::Register),
        6 => (topic.clone(), proptest::collection::vec(event_strategy(), 0..6))
            .prop_map(|(t, evs)| Op::Append(t, evs)),
        5 => (
            topic.clone(),
            0u64..24,
            0usize..8,
            prop_oneof![3 => Just(None), 1 => (1usize..200).prop_map(Some)],
        )
            .prop_map(|(topic, after, max_events, max_bytes)| Op::Read {
                topic,
                after,
                max_events,
                max_bytes,
            }),
        2 => topic.clone().prop_map(Op::Bounds),
        1 => Just(Op::Tick),
        2 => (
            topic.clone(),
            prop_oneof![
                Just(Cutoff::Zero),
                Just(Cutoff::Max),
                (0usize..8).prop_map(Cutoff::Tick)
            ],
        )
            .prop_map(|(t, c)| Op::Trim(t, c)),
        1 => topic.prop_map(Op::Delete),
        1 => (1u32..=6, 0u64..10_000).prop_map(|(id, retention_ms)| Op::PutTopic { id, retention_ms }),
        1 => (0u8..3, "[a-z{}\"]{0,10}").prop_map(|(i, j)| Op::PutSchema(i, j)),
        1 => Just(Op::LoadCatalog),
        // Rare: after a close, appends fail until a reopen.
        1 => prop_oneof![4 => Just(Op::Reopen), 1 => Just(Op::Close)],
    ]
}

/// One event as the model holds it.
#[derive(Clone, Debug)]
struct ModelEvent {
    offset: u64,
    event: NewEvent,
    /// How many ticks happened before its append.
    epoch: usize,
}

/// What the model holds for one topic's log.
#[derive(Clone, Debug, Default)]
struct ModelTopic {
    /// Retained events, oldest first.
    events: Vec<ModelEvent>,
    trimmed: u64,
    latest: u64,
}

/// The simple model every backend must agree with.
#[derive(Debug, Default)]
struct Model {
    /// Log contents that exist in storage (registered or not).
    logs: BTreeMap<u32, ModelTopic>,
    /// Topics registered with the current log instance.
    registered: BTreeSet<u32>,
    /// Tick boundaries, epoch ms.
    ticks: Vec<u64>,
    closed: bool,
    catalog: BTreeMap<String, TopicRecord>,
    /// Schema texts by (tenant, id).
    schemas: BTreeMap<(String, String), String>,
    next_topic_id: u32,
}

/// The log under test and how to reopen it.
pub trait Backend {
    /// The log, as the trait object every caller sees.
    fn log(&self) -> Arc<dyn TopicLog>;
    /// Whether `Reopen` means anything here; when not, the model treats it
    /// as a no-op.
    fn can_reopen(&self) -> bool;
    /// Drops the (already closed) log and opens it again on the same storage.
    fn reopen(&mut self);
}

#[cfg(test)]
struct Memory(Arc<MemoryTopicLog>);

#[cfg(test)]
impl Backend for Memory {
    fn log(&self) -> Arc<dyn TopicLog> {
        self.0.clone()
    }
    fn can_reopen(&self) -> bool {
        false
    }
    fn reopen(&mut self) {}
}

/// Compares a backend's result with the model's expectation: equal values,
/// or both errors.
fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &Result<T, LogError>,
    want: &Option<T>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(g), Some(w)) => prop_assert_eq!(g, w, "{}", what),
        (Err(_), None) => {}
        (g, w) => prop_assert!(false, "{what}: backend gave {g:?}, model expects {w:?}"),
    }
    Ok(())
}

/// Waits until the wall clock moved past `now_ms()` and returns the new
/// millisecond: everything committed before the call is older than it.
fn tick() -> u64 {
    let before = now_ms();
    loop {
        let t = now_ms();
        if t > before {
            return t;
        }
        // At most one millisecond of spinning.
        std::thread::yield_now();
    }
}

/// Applies `ops` to the backend and the model and checks every result.
async fn run_case(backend: &mut dyn Backend, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut watches: HashMap<u32, watch::Receiver<Offset>> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let log = backend.log();
        let at = format!("step {step}: {op:?}");
        match op {
            Op::Register(t) => {
                let got = log.register_topic(TopicId(*t)).await;
                prop_assert!(got.is_ok(), "{at}: {got:?}");
                model.registered.insert(*t);
                model.logs.entry(*t).or_default();
                if !watches.contains_key(t) {
                    let rx = log.watch_tail(TopicId(*t));
                    prop_assert!(rx.is_ok(), "{at}: watch of a registered topic");
                    if let Ok(rx) = rx {
                        watches.insert(*t, rx);
                    }
                }
            }
            Op::Append(t, events) => {
                let got = log.append(TopicId(*t), events.clone()).await;
                let want = if events.is_empty() {
                    Some(Vec::new())
                } else if model.closed || !model.registered.contains(t) {
                    None
                } else {
                    let m = model.logs.entry(*t).or_default();
                    let epoch = model.ticks.len();
                    let mut offs = Vec::new();
                    for ev in events {
                        m.latest += 1;
                        offs.push(Offset(m.latest));
                        m.events.push(ModelEvent {
                            offset: m.latest,
                            event: ev.clone(),
                            epoch,
                        });
                    }
                    Some(offs)
                };
                same(&at, &got, &want)?;
            }
            Op::Read {
                topic,
                after,
                max_events,
                max_bytes,
            } => {
                let got = log
                    .read(
                        TopicId(*topic),
                        Offset(*after),
                        *max_events,
                        max_bytes.unwrap_or(usize::MAX),
                    )
                    .await;
                if !model.registered.contains(topic) {
                    prop_assert!(got.is_err(), "{at}: read of an unregistered topic");
                    continue;
                }
                let got = match got {
                    Ok(g) => g,
                    Err(e) => return Err(TestCaseError::fail(format!("{at}: {e}"))),
                };
                let m = model.logs.get(topic).cloned().unwrap_or_default();
                let want: Vec<&ModelEvent> = m
                    .events
                    .iter()
                    .filter(|e| e.offset > *after)
                    .take(*max_events)
                    .collect();
                if max_bytes.is_none() {
                    prop_assert_eq!(got.len(), want.len(), "{}: event count", at);
                } else {
                    // The byte budget is approximate and measured differently
                    // per backend: any non-empty prefix is right.
                    prop_assert!(got.len() <= want.len(), "{at}: too many events");
                    prop_assert!(
                        want.is_empty() || !got.is_empty(),
                        "{at}: at least one event when any exists"
                    );
                }
                let mut last_time = 0;
                for (g, w) in got.iter().zip(&want) {
                    prop_assert_eq!(g.offset, Offset(w.offset), "{}", at);
                    prop_assert_eq!(&g.event, &w.event, "{}: event at {}", at, w.offset);
                    prop_assert!(g.time_ms >= last_time, "{at}: time goes backwards");
                    last_time = g.time_ms;
                    if w.epoch > 0 {
                        prop_assert!(
                            g.time_ms >= model.ticks[w.epoch - 1],
                            "{at}: event {} stamped before the tick that preceded it",
                            w.offset
                        );
                    }
                    if let Some(next_tick) = model.ticks.get(w.epoch) {
                        prop_assert!(
                            g.time_ms < *next_tick,
                            "{at}: event {} stamped after the tick that followed it",
                            w.offset
                        );
                    }
                }
            }
            Op::Bounds(t) => {
                let got = log.bounds(TopicId(*t)).map(|b| (b.trimmed.0, b.latest.0));
                let want = model
                    .registered
                    .contains(t)
                    .then(|| model.logs.get(t).map_or((0, 0), |m| (m.trimmed, m.latest)));
                same(&at, &got, &want)?;
                prop_assert_eq!(
                    log.watch_tail(TopicId(*t)).is_ok(),
                    model.registered.contains(t),
                    "{}: watch_tail",
                    at
                );
            }
            Op::Tick => model.ticks.push(tick()),
            Op::Trim(t, cutoff) => {
                // Events with epoch < `keep_from` are older than the cutoff.
                let (cutoff_ms, keep_from) = match cutoff {
                    Cutoff::Zero => (0, 0),
                    Cutoff::Max => (u64::MAX, usize::MAX),
                    Cutoff::Tick(i) if !model.ticks.is_empty() => {
                        let i = i % model.ticks.len();
                        (model.ticks[i], i + 1)
                    }
                    Cutoff::Tick(_) => (0, 0),
                };
                let got = log
                    .trim_older_than(TopicId(*t), EpochMillis(cutoff_ms))
                    .await;
                let want = if model.registered.contains(t) {
                    let m = model.logs.entry(*t).or_default();
                    let n = m.events.iter().take_while(|e| e.epoch < keep_from).count();
                    if let Some(last) = m.events.drain(..n).last() {
                        m.trimmed = last.offset;
                    }
                    Some(n as u64)
                } else {
                    None
                };
                same(&at, &got, &want)?;
            }
            Op::Delete(t) => {
                let got = log.delete_topic(TopicId(*t), &topic_name(*t)).await;
                let removed = model.logs.remove(t).map_or(0, |m| m.events.len() as u64);
                model.registered.remove(t);
                model.catalog.remove(&topic_name(*t));
                same(&at, &got, &Some(removed))?;
                if let Some(rx) = watches.remove(t) {
                    prop_assert!(
                        rx.has_changed().is_err(),
                        "{at}: a deleted topic's watch closes"
                    );
                }
            }
            Op::PutTopic { id, retention_ms } => {
                let rec = TopicRecord {
                    id: *id,
                    name: topic_name(*id),
                    schema_ids: vec!["AAAAAAAAAAAAAAAAAAAAAA".into()],
                    retention_ms: *retention_ms,
                    created_ms: 1,
                };
                let got = log.put_topic(rec.clone()).await;
                model.next_topic_id = model.next_topic_id.max(id + 1);
                model.catalog.insert(rec.name.clone(), rec);
                same(&at, &got, &Some(()))?;
            }
            Op::PutSchema(i, json) => {
                // Two tenants, one id in common: texts are kept per tenant.
                let org = if i % 2 == 0 {
                    "00D5e000000Aaaa"
                } else {
                    "00D5e000000Bbbb"
                };
                let tenant = crate::types::TenantId::parse(org).expect("org id");
                let id = format!("schema-{}", i / 2);
                let got = log
                    .put_schema(&tenant, SchemaId::new(id.clone()), json.clone())
                    .await;
                model.schemas.insert((tenant.to_string(), id), json.clone());
                same(&at, &got, &Some(()))?;
            }
            Op::LoadCatalog => {
                let got = log.load_catalog().await.map(|mut c| {
                    c.topics.sort_by_key(|t| t.id);
                    c.schemas.sort();
                    let schemas: Vec<((String, String), String)> = c
                        .schemas
                        .into_iter()
                        .map(|r| {
                            let tenant = r.tenant.map(|t| t.to_string()).unwrap_or_default();
                            ((tenant, r.id.as_str().to_owned()), r.json)
                        })
                        .collect();
                    (c.topics, schemas, c.next_topic_id)
                });
                let mut topics: Vec<TopicRecord> = model.catalog.values().cloned().collect();
                topics.sort_by_key(|t| t.id);
                let schemas = model
                    .schemas
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                same(
                    &at,
                    &got,
                    &Some((topics, schemas, model.next_topic_id.max(1))),
                )?;
            }
            Op::Close => {
                let got = log.close().await;
                prop_assert!(got.is_ok(), "{at}: {got:?}");
                model.closed = true;
            }
            Op::Reopen => {
                if backend.can_reopen() {
                    let got = log.close().await;
                    prop_assert!(got.is_ok(), "{at}: close before reopen: {got:?}");
                    drop(log);
                    backend.reopen();
                    model.closed = false;
                    model.registered.clear();
                    for (t, rx) in watches.drain() {
                        prop_assert!(
                            rx.has_changed().is_err(),
                            "{at}: topic {t}'s watch closes with the old log"
                        );
                    }
                }
            }
        }
        // The tail watch always shows the latest committed offset.
        for (t, rx) in &mut watches {
            let latest = model.logs.get(t).map_or(0, |m| m.latest);
            prop_assert_eq!(
                rx.borrow_and_update().0,
                latest,
                "{}: tail watch of topic {}",
                at,
                t
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Runs the property for a backend made fresh for every case.
pub fn check_backend(make: impl Fn() -> Box<dyn Backend>) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // Cases are cheap to regenerate; no regression files in src/.
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op_strategy(), 1..MAX_OPS);
    let result = runner.run(&strategy, |ops| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
        let mut backend = make();
        let res = rt.block_on(async {
            let res = run_case(backend.as_mut(), &ops).await;
            // Stop the writer before the runtime and the folder go away.
            let _ = backend.log().close().await;
            res
        });
        drop(backend);
        res
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[cfg(test)]
#[test]
fn memory_log_matches_the_model() {
    check_backend(|| Box::new(Memory(Arc::new(MemoryTopicLog::new()))));
}
