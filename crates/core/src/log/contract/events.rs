//! The event log's part of the contract ([`EventLog`]): offsets, reads, the
//! tail watch, retention and closing.
//!
//! Owns: one async fn per behaviour. Must not: depend on a particular
//! backend.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{event, fill};
use crate::log::{EpochMillis, EventLog, LogError};
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

/// One `append_many` stores every part with offsets `append` would assign,
/// each part contiguous, readable from its own topic.
pub async fn append_many_parts_land_dense_and_readable(log: &dyn EventLog) {
    fill(log, TopicId(1), 2).await;
    log.register_topic(TopicId(2)).await.expect("register");
    log.register_topic(TopicId(3)).await.expect("register");
    let offs = log
        .append_many(vec![
            (TopicId(1), vec![event(10), event(11)]),
            (TopicId(2), vec![event(20)]),
            (TopicId(3), vec![]),
        ])
        .await
        .expect("append_many");
    assert_eq!(
        offs,
        vec![vec![Offset(3), Offset(4)], vec![Offset(1)], vec![]]
    );
    let one = log
        .read(TopicId(1), Offset(2), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(
        one.iter().map(|e| (e.offset, &e.event)).collect::<Vec<_>>(),
        vec![(Offset(3), &event(10)), (Offset(4), &event(11))]
    );
    let two = log
        .read(TopicId(2), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].event, event(20));
    assert_eq!(log.bounds(TopicId(1)).expect("bounds").latest, Offset(4));
    assert_eq!(log.bounds(TopicId(2)).expect("bounds").latest, Offset(1));
    assert_eq!(log.bounds(TopicId(3)).expect("bounds").latest, Offset(0));
    let next = log
        .append(TopicId(2), vec![event(21)])
        .await
        .expect("append");
    assert_eq!(next, vec![Offset(2)], "append continues after append_many");
}

/// A part naming an unknown topic, or two parts naming one topic, fail the
/// whole call and store nothing in any part.
pub async fn append_many_is_all_or_nothing(log: &dyn EventLog) {
    fill(log, TopicId(1), 1).await;
    log.register_topic(TopicId(2)).await.expect("register");
    let unknown_last = log
        .append_many(vec![
            (TopicId(1), vec![event(1)]),
            (TopicId(2), vec![event(2)]),
            (TopicId(999), vec![event(3)]),
        ])
        .await;
    assert!(
        matches!(unknown_last, Err(LogError::UnknownTopic(999))),
        "{unknown_last:?}"
    );
    let unknown_empty = log
        .append_many(vec![(TopicId(1), vec![event(1)]), (TopicId(998), vec![])])
        .await;
    assert!(
        matches!(unknown_empty, Err(LogError::UnknownTopic(998))),
        "{unknown_empty:?}"
    );
    let twice = log
        .append_many(vec![
            (TopicId(1), vec![event(1)]),
            (TopicId(2), vec![event(2)]),
            (TopicId(1), vec![event(3)]),
        ])
        .await;
    assert!(
        matches!(twice, Err(LogError::DuplicateTopic(1))),
        "{twice:?}"
    );
    assert!(!LogError::DuplicateTopic(1).retryable());
    for (topic, latest) in [(TopicId(1), 1), (TopicId(2), 0)] {
        assert_eq!(
            log.bounds(topic).expect("bounds").latest,
            Offset(latest),
            "nothing stored in {topic:?}"
        );
        let evs = log
            .read(topic, Offset(0), 10, usize::MAX)
            .await
            .expect("read");
        assert_eq!(evs.len() as u64, latest, "nothing readable in {topic:?}");
    }
    let ok = log
        .append_many(vec![
            (TopicId(1), vec![event(5)]),
            (TopicId(2), vec![event(6)]),
        ])
        .await
        .expect("append_many after the failures");
    assert_eq!(ok, vec![vec![Offset(2)], vec![Offset(1)]]);
}

/// Calls without events (no parts, or only empty ones) store nothing and
/// get one empty `Vec` per part.
pub async fn append_many_empty_parts(log: &dyn EventLog) {
    log.register_topic(TopicId(1)).await.expect("register");
    log.register_topic(TopicId(2)).await.expect("register");
    assert!(
        log.append_many(Vec::new())
            .await
            .expect("no parts")
            .is_empty()
    );
    let offs = log
        .append_many(vec![(TopicId(1), vec![]), (TopicId(2), vec![])])
        .await
        .expect("empty parts");
    assert_eq!(offs, vec![Vec::<Offset>::new(), Vec::new()]);
    let offs = log
        .append_many(vec![(TopicId(1), vec![]), (TopicId(2), vec![event(1)])])
        .await
        .expect("one empty part");
    assert_eq!(offs, vec![vec![], vec![Offset(1)]]);
    assert_eq!(log.bounds(TopicId(1)).expect("bounds").latest, Offset(0));
}

/// Concurrent `append` and `append_many` calls on the same topics get
/// unique, dense offsets; no part is interleaved with another call's events,
/// and each offset holds the event its call sent.
pub async fn concurrent_append_many_keeps_parts_contiguous(log: Arc<dyn EventLog>) {
    let (a, b) = (TopicId(5), TopicId(6));
    log.register_topic(a).await.expect("register");
    log.register_topic(b).await.expect("register");
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..15u64 {
                let n = w * 1000 + i * 10;
                if w % 2 == 0 {
                    let parts = vec![
                        (a, vec![event(n), event(n + 1)]),
                        (b, vec![event(n + 2), event(n + 3), event(n + 4)]),
                    ];
                    let offs = log.append_many(parts.clone()).await.expect("append_many");
                    for ((topic, events), offs) in parts.into_iter().zip(offs) {
                        mine.extend(events.into_iter().zip(offs).map(|(e, o)| (topic, o, e)));
                    }
                } else {
                    let topic = if i % 2 == 0 { a } else { b };
                    let events = vec![event(n), event(n + 1)];
                    let offs = log.append(topic, events.clone()).await.expect("append");
                    mine.extend(events.into_iter().zip(offs).map(|(e, o)| (topic, o, e)));
                }
            }
            mine
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.expect("join"));
    }
    for topic in [a, b] {
        let mut mine: Vec<_> = sent.iter().filter(|(t, _, _)| *t == topic).collect();
        mine.sort_by_key(|(_, o, _)| *o);
        let n = mine.len() as u64;
        assert!(
            mine.iter().map(|(_, o, _)| o.0).eq(1..=n),
            "offsets of {topic:?} unique and dense"
        );
        let stored = log
            .read(topic, Offset(0), 10_000, usize::MAX)
            .await
            .expect("read");
        assert_eq!(stored.len() as u64, n);
        for (s, (_, o, e)) in stored.iter().zip(&mine) {
            assert_eq!(
                (s.offset, &s.event),
                (*o, e),
                "the call's event at its offset"
            );
        }
    }
    // Contiguity of each part: consecutive events of one part carry
    // consecutive numbers (event(n), event(n + 1), ...), checked through
    // the offsets the calls got back.
    for w in 0..6u64 {
        for i in 0..15u64 {
            let n = w * 1000 + i * 10;
            let at: Vec<_> = sent
                .iter()
                .filter(|(_, _, e)| {
                    let k = u64::from_be_bytes(e.payload[..].try_into().expect("8 bytes"));
                    (n..n + 5).contains(&k)
                })
                .collect();
            for pair in at.windows(2) {
                if pair[0].0 == pair[1].0 {
                    assert_eq!(pair[1].1.0, pair[0].1.0 + 1, "one part is contiguous");
                }
            }
        }
    }
}

/// After close, `append_many` fails with [`LogError::Closed`].
pub async fn append_many_after_close_fails(log: &dyn EventLog) {
    log.register_topic(TopicId(1)).await.expect("register");
    log.register_topic(TopicId(2)).await.expect("register");
    log.close().await.expect("close");
    let res = log
        .append_many(vec![
            (TopicId(1), vec![event(0)]),
            (TopicId(2), vec![event(1)]),
        ])
        .await;
    assert!(matches!(res, Err(LogError::Closed)), "{res:?}");
}
