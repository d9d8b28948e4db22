//! The event log's part of the contract ([`EventLog`]): offsets, reads, the
//! tail watch, retention and closing.
//!
//! Owns: one async fn per behaviour. Must not: depend on a particular
//! backend.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{event, fill};
use crate::log::{EpochMillis, EventLog};
use crate::types::{Offset, TopicId};

/// Offsets start at 1 and grow by one per event, across calls.
pub async fn offsets_start_at_one_and_are_dense(log: &dyn EventLog) {
    log.register_topic(TopicId(7)).await.expect("register");
    let a = log
        .append(TopicId(7), vec![event(1), event(2)])
        .await
        .expect("append");
    let b = log
        .append(TopicId(7), vec![event(3)])
        .await
        .expect("append");
    assert_eq!(a, vec![Offset(1), Offset(2)]);
    assert_eq!(b, vec![Offset(3)]);
    let bounds = log.bounds(TopicId(7)).expect("bounds");
    assert_eq!(bounds.latest, Offset(3));
    assert_eq!(bounds.trimmed, Offset(0));
}

/// Topics have independent offsets.
pub async fn topics_are_independent(log: &dyn EventLog) {
    fill(log, TopicId(1), 3).await;
    let b = fill(log, TopicId(2), 2).await;
    assert_eq!(b, vec![Offset(1), Offset(2)]);
    let evs = log
        .read(TopicId(2), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(evs.len(), 2);
}

/// Reads return events after the given offset, in order, with their bytes.
pub async fn read_returns_events_after_offset_in_order(log: &dyn EventLog) {
    fill(log, TopicId(1), 10).await;
    let evs = log
        .read(TopicId(1), Offset(4), 100, usize::MAX)
        .await
        .expect("read");
    let offs: Vec<u64> = evs.iter().map(|e| e.offset.0).collect();
    assert_eq!(offs, (5..=10).collect::<Vec<_>>());
    assert_eq!(evs[0].event, event(4));
    assert!(
        log.read(TopicId(1), Offset(10), 100, usize::MAX)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Reads stop at the event and byte limits but return at least one event.
pub async fn read_respects_limits(log: &dyn EventLog) {
    fill(log, TopicId(1), 10).await;
    let evs = log
        .read(TopicId(1), Offset(0), 3, usize::MAX)
        .await
        .expect("read");
    assert_eq!(evs.len(), 3);
    let evs = log.read(TopicId(1), Offset(0), 100, 1).await.expect("read");
    assert_eq!(
        evs.len(),
        1,
        "one event even when it exceeds the byte budget"
    );
}

/// The tail watch moves after an append commits.
pub async fn watch_tail_wakes_on_append(log: Arc<dyn EventLog>) {
    log.register_topic(TopicId(9)).await.expect("register");
    let mut rx = log.watch_tail(TopicId(9)).expect("watch");
    assert_eq!(*rx.borrow_and_update(), Offset(0));
    let writer = log.clone();
    let task = tokio::spawn(async move { writer.append(TopicId(9), vec![event(0)]).await });
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("tail moved within 10 s")
        .expect("sender alive");
    assert_eq!(*rx.borrow(), Offset(1));
    task.await.expect("join").expect("append");
}

/// Concurrent appenders get unique, dense offsets, each call contiguous.
pub async fn concurrent_appends_get_unique_dense_offsets(log: Arc<dyn EventLog>) {
    log.register_topic(TopicId(4)).await.expect("register");
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..25u64 {
                let offs = log
                    .append(TopicId(4), vec![event(w * 1000 + i), event(w * 1000 + i)])
                    .await
                    .expect("append");
                assert_eq!(
                    offs[1].0,
                    offs[0].0 + 1,
                    "one call's offsets are contiguous"
                );
                mine.extend(offs);
            }
            mine
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for o in t.await.expect("join") {
            assert!(all.insert(o), "offset {o:?} assigned twice");
        }
    }
    assert_eq!(all.len(), 400);
    assert!((1..=400).all(|o| all.contains(&Offset(o))), "no gaps");
}

/// Trimming deletes old events, keeps offsets, and moves the trim point.
pub async fn trim_deletes_old_events_only(log: &dyn EventLog) {
    fill(log, TopicId(1), 4).await;
    assert_eq!(
        log.trim_older_than(TopicId(1), EpochMillis(0))
            .await
            .expect("trim"),
        0
    );
    let n = log
        .trim_older_than(TopicId(1), EpochMillis(u64::MAX))
        .await
        .expect("trim");
    assert_eq!(n, 4);
    let b = log.bounds(TopicId(1)).expect("bounds");
    assert_eq!((b.trimmed, b.latest), (Offset(4), Offset(4)));
    assert!(
        log.read(TopicId(1), Offset(0), 10, usize::MAX)
            .await
            .expect("read")
            .is_empty()
    );
    let next = log
        .append(TopicId(1), vec![event(9)])
        .await
        .expect("append");
    assert_eq!(next, vec![Offset(5)], "offsets are never reused");
}

/// Appends to an unregistered topic fail instead of inventing offsets.
pub async fn unknown_topic_is_an_error(log: &dyn EventLog) {
    assert!(log.append(TopicId(999), vec![event(0)]).await.is_err());
    assert!(log.bounds(TopicId(999)).is_err());
}

/// After close, appends fail.
pub async fn close_refuses_appends(log: &dyn EventLog) {
    log.register_topic(TopicId(1)).await.expect("register");
    log.close().await.expect("close");
    assert!(log.append(TopicId(1), vec![event(0)]).await.is_err());
}
