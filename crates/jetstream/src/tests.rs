//! Tests of the JetStream backend against a real nats-server: the log
//! contract, plus what only a shared, replicated log has (deduplication,
//! several processes, the catalog feed, topic ids, leases).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::Bytes;

use eventbus_core::log::contract::{self, event};
use eventbus_core::log::{
    CatalogChange, CatalogStore, EpochMillis, EventHeader, EventLog, LogError, ManagedRecord,
    NewEvent, SchemaRecord, TopicRecord, now_ms,
};
use eventbus_core::types::{EventId, Offset, SchemaId, TopicId};

use crate::events::ACK_WINDOW;
use crate::keys::key_of;
use crate::testing::{NatsServer, log_on_fresh_server};
use crate::{JetStreamConfig, JetStreamTopicLog};

contract::contract_tests!({ log_on_fresh_server() });

/// Bounds every wait for something another task or process does.
const WAIT: Duration = Duration::from_secs(15);

async fn connect(server: &NatsServer, cfg: &JetStreamConfig) -> JetStreamTopicLog {
    let _ = server;
    JetStreamTopicLog::connect(cfg.clone())
        .await
        .expect("connect to the test nats-server")
}

fn ev(id: &str, n: u8) -> NewEvent {
    NewEvent {
        id: EventId::new(id),
        schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
        payload: Bytes::from(vec![n; 4]),
        headers: Vec::new(),
        generated_id: false,
    }
}

fn offsets(v: &[u64]) -> Vec<Offset> {
    v.iter().copied().map(Offset).collect()
}

#[tokio::test]
async fn a_retried_event_id_is_stored_once_and_keeps_its_offset() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    log.register_topic(TopicId(1)).await.expect("register");
    let first = log
        .append(TopicId(1), vec![ev("a", 1), ev("b", 2)])
        .await
        .expect("append");
    assert_eq!(first, offsets(&[1, 2]));
    // A client retrying `b` together with a new event.
    let retry = log
        .append(TopicId(1), vec![ev("b", 2), ev("c", 3)])
        .await
        .expect("append");
    assert_eq!(retry, offsets(&[2, 3]), "the duplicate answers its offset");
    // One id twice in one call: both stored; the whole call retried: none.
    let twice = log
        .append(TopicId(1), vec![ev("d", 4), ev("d", 5)])
        .await
        .expect("append");
    assert_eq!(twice, offsets(&[4, 5]));
    let again = log
        .append(TopicId(1), vec![ev("d", 4), ev("d", 5)])
        .await
        .expect("append");
    assert_eq!(again, offsets(&[4, 5]));
    let all = log
        .read(TopicId(1), Offset(0), 100, usize::MAX)
        .await
        .expect("read");
    let ids: Vec<&str> = all.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "d"]);
    assert_eq!(all[4].event.payload, Bytes::from(vec![5u8; 4]));
    assert_eq!(log.bounds(TopicId(1)).expect("bounds").latest, Offset(5));
}

#[tokio::test]
async fn every_event_field_round_trips_even_odd_bytes() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    log.register_topic(TopicId(2)).await.expect("register");
    let odd = NewEvent {
        // Spaces, a newline and a leading `~` must not reach the NATS
        // header framing as they are.
        id: EventId::new("~id with spaces\r\nX: y"),
        schema_id: SchemaId::new("schema-1_x"),
        payload: Bytes::from_static(b"\x00\x01binary\xff"),
        headers: vec![
            EventHeader {
                key: "plain".into(),
                value: Bytes::from_static(b"v"),
            },
            EventHeader {
                key: "k: odd\n".into(),
                value: Bytes::from_static(b"\x00\xff\r\n"),
            },
            EventHeader {
                key: "plain".into(),
                value: Bytes::new(),
            },
        ],
        generated_id: false,
    };
    let empty_id = NewEvent {
        id: EventId::new(""),
        ..ev("x", 1)
    };
    let before = now_ms();
    log.append(TopicId(2), vec![odd.clone(), empty_id.clone()])
        .await
        .expect("append");
    let got = log
        .read(TopicId(2), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event, odd);
    assert_eq!(got[1].event, empty_id);
    // The server's clock stamps events; it is this machine's clock here.
    assert!(got[0].time_ms + 1000 >= before && got[0].time_ms <= now_ms() + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_sees_appends_of_the_first() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    b.register_topic(TopicId(3)).await.expect("register b");
    let mut tail = b.watch_tail(TopicId(3)).expect("watch");
    a.register_topic(TopicId(3)).await.expect("register a");
    a.append(TopicId(3), vec![event(1), event(2), event(3)])
        .await
        .expect("append");
    tokio::time::timeout(WAIT, tail.wait_for(|o| *o >= Offset(3)))
        .await
        .expect("b's tail moved within 15 s")
        .expect("watch open");
    let got = b
        .read(TopicId(3), Offset(1), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(
        got.iter().map(|e| e.offset).collect::<Vec<_>>(),
        offsets(&[2, 3])
    );
    assert_eq!(got[1].event, event(3));
    // And b's own append continues after a's.
    let next = b.append(TopicId(3), vec![event(4)]).await.expect("append");
    assert_eq!(next, offsets(&[4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_below_the_cached_tail_waits_for_an_event_its_reader_lacks() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    a.register_topic(TopicId(6)).await.expect("register a");
    b.register_topic(TopicId(6)).await.expect("register b");
    // B's tail ahead of the server its reader asks: as when B's follower
    // got event 1 from a replica that stored it before the reader's did. A
    // subscriber that read nothing would wait for a tail that already moved.
    b.inner
        .handle(TopicId(6))
        .expect("handle")
        .tail
        .advance(Offset(1));
    let (got, appended) = tokio::join!(b.read(TopicId(6), Offset(0), 10, usize::MAX), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.append(TopicId(6), vec![event(1)]).await
    });
    assert_eq!(appended.expect("append"), offsets(&[1]));
    let got = got.expect("read");
    assert_eq!(
        got.iter().map(|e| e.offset).collect::<Vec<_>>(),
        offsets(&[1]),
        "the read waited for the event the tail announced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_by_another_process_closes_the_watch() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    contract::fill(&a, TopicId(4), 2).await;
    b.register_topic(TopicId(4)).await.expect("register");
    let mut tail = b.watch_tail(TopicId(4)).expect("watch");
    assert_eq!(
        a.delete_topic(TopicId(4), "/event/X__e")
            .await
            .expect("delete"),
        2
    );
    let closed = tokio::time::timeout(WAIT, async { while tail.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "b's watch closed within 15 s");
    assert!(matches!(
        b.append(TopicId(4), vec![event(9)]).await,
        Err(LogError::UnknownTopic(4))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_read_at_once_by_the_other_process() {
    // Found by the two-server integration test under load: a managed stream
    // opened on b right after a's commit started before it, because b read
    // the commit from its catalog feed, which may lag. `get_managed` reads
    // the bucket.
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    a.put_managed(contract::managed_record("m1", None))
        .await
        .expect("put managed");
    for offset in 1..=20 {
        let commit = eventbus_core::log::CommitRecord {
            topic_id: 3,
            offset,
            time_ms: 10,
        };
        assert!(
            a.put_commit(&contract::managed_id("m1"), Some(commit))
                .await
                .expect("commit")
        );
        let seen = b
            .get_managed(&contract::managed_id("m1"))
            .await
            .expect("get");
        assert_eq!(seen.and_then(|r| r.commit), Some(commit), "at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_changes_reach_the_other_process() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    let mut feed = b.catalog_feed();
    let topic = TopicRecord {
        id: 7,
        name: "/event/Order__e".into(),
        schema_ids: vec!["s1".into()],
        retention_ms: 3_600_000,
        created_ms: 1,
    };
    a.put_topic(topic.clone()).await.expect("put topic");
    let tenant = contract::tenant("00D000000000000");
    a.put_schema(&tenant, SchemaId::new("s1"), "{\"type\":\"record\"}".into())
        .await
        .expect("put schema");
    a.put_managed(contract::managed_record("m1", None))
        .await
        .expect("put managed");
    a.put_managed(contract::managed_record("m1", Some(5)))
        .await
        .expect("commit");
    a.delete_managed(&contract::managed_id("m1"))
        .await
        .expect("delete managed");
    a.delete_topic(TopicId(7), &topic.name)
        .await
        .expect("delete topic");
    let mut want = vec![
        CatalogChange::Topic(topic.clone()),
        CatalogChange::Schema(SchemaRecord {
            tenant: Some(tenant),
            id: SchemaId::new("s1"),
            json: "{\"type\":\"record\"}".into(),
        }),
        CatalogChange::Managed(contract::managed_record("m1", None)),
        CatalogChange::Managed(contract::managed_record("m1", Some(5))),
        CatalogChange::ManagedDeleted("m1".into()),
        CatalogChange::TopicDeleted(topic.name.clone()),
    ];
    // Each bucket's changes arrive in order; the buckets interleave freely.
    let mut per_bucket: Vec<Vec<CatalogChange>> = vec![Vec::new(); 3];
    let bucket = |c: &CatalogChange| match c {
        CatalogChange::Topic(_) | CatalogChange::TopicDeleted(_) => 0,
        CatalogChange::Schema(..) => 1,
        CatalogChange::Managed(_) | CatalogChange::ManagedDeleted(_) => 2,
    };
    for _ in 0..want.len() {
        let c = tokio::time::timeout(WAIT, feed.recv())
            .await
            .expect("a change within 15 s")
            .expect("feed open");
        per_bucket[bucket(&c)].push(c);
    }
    want.sort_by_key(bucket);
    assert_eq!(per_bucket.concat(), want);
    // The catalog itself agrees.
    let cat = b.load_catalog().await.expect("load");
    assert!(cat.topics.is_empty() && cat.managed.is_empty());
    assert_eq!(cat.next_topic_id, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_ids_are_unique_across_processes() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = Arc::new(connect(&server, &cfg).await);
    let b = Arc::new(connect(&server, &cfg).await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(log.take_topic_id().await.expect("allocate"));
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for id in t.await.expect("join") {
            assert!(all.insert(id), "topic id {id} handed out twice");
        }
    }
    assert_eq!(all, (1..=80).collect::<HashSet<u32>>());
    // put_topic raises the counter; it never goes down.
    a.put_topic(TopicRecord {
        id: 200,
        name: "/event/Big__e".into(),
        schema_ids: vec![],
        retention_ms: 60_000,
        created_ms: 1,
    })
    .await
    .expect("put");
    assert_eq!(b.take_topic_id().await.expect("allocate"), 201);
    a.put_topic(TopicRecord {
        id: 3,
        name: "/event/Small__e".into(),
        schema_ids: vec![],
        retention_ms: 60_000,
        created_ms: 1,
    })
    .await
    .expect("put");
    assert_eq!(a.take_topic_id().await.expect("allocate"), 202);
    assert_eq!(b.load_catalog().await.expect("load").next_topic_id, 203);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_until_released_or_expired() {
    let server = NatsServer::start();
    let cfg = server.config();
    let a = connect(&server, &cfg).await;
    let b = connect(&server, &cfg).await;
    let long = Duration::from_secs(60);
    let key = "managed/0Xx000000000001AAA";
    assert!(a.lease_acquire(key, "a", long).await.expect("acquire"));
    assert!(!b.lease_acquire(key, "b", long).await.expect("acquire"));
    assert!(a.lease_acquire(key, "a", long).await.expect("re-acquire"));
    assert!(a.lease_renew(key, "a", long).await.expect("renew"));
    assert!(!b.lease_renew(key, "b", long).await.expect("renew"));
    b.lease_release(key, "b")
        .await
        .expect("release by a stranger");
    assert!(!b.lease_acquire(key, "b", long).await.expect("still held"));
    a.lease_release(key, "a").await.expect("release");
    assert!(!a.lease_renew(key, "a", long).await.expect("renew"));
    assert!(b.lease_acquire(key, "b", long).await.expect("free again"));

    // A holder that stops renewing loses the lease once it expires.
    let short = "managed/short";
    assert!(
        a.lease_acquire(short, "a", Duration::from_millis(200))
            .await
            .expect("acquire")
    );
    let deadline = Instant::now() + WAIT;
    loop {
        if b.lease_acquire(short, "b", long).await.expect("acquire") {
            break;
        }
        assert!(Instant::now() < deadline, "expired lease not taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!a.lease_renew(short, "a", long).await.expect("renew"));
    assert!(!a.lease_acquire(short, "a", long).await.expect("acquire"));
    // The old holder's late release leaves the new holder's lease alone.
    a.lease_release(short, "a").await.expect("release");
    assert!(b.lease_renew(short, "b", long).await.expect("renew"));
}

#[tokio::test]
async fn sequential_reads_reuse_one_consumer() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    log.register_topic(TopicId(5)).await.expect("register");
    let batch: Vec<NewEvent> = (0..100).map(event).collect();
    log.append(TopicId(5), batch).await.expect("append");
    let mut after = Offset(0);
    let mut seen = 0;
    loop {
        // A small byte budget too, so reads also stop on bytes.
        let got = log.read(TopicId(5), after, 7, 200).await.expect("read");
        let Some(last) = got.last() else { break };
        for (i, e) in got.iter().enumerate() {
            assert_eq!(
                e.offset,
                Offset(after.0 + 1 + i as u64),
                "in order, no gaps"
            );
        }
        seen += got.len();
        after = last.offset;
    }
    assert_eq!(seen, 100);
    let stream = log
        .inner
        .js
        .get_stream(log.inner.stream_name(TopicId(5)))
        .await
        .expect("stream");
    // The tail follower and one reader, not one consumer per read.
    assert!(
        stream.cached_info().state.consumer_count <= 2,
        "consumers: {}",
        stream.cached_info().state.consumer_count
    );
}

#[tokio::test]
async fn retention_is_the_streams_max_age() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    let rec = TopicRecord {
        id: 6,
        name: "/event/Short__e".into(),
        schema_ids: vec![],
        retention_ms: 60_000,
        created_ms: 1,
    };
    log.put_topic(rec.clone()).await.expect("put");
    let info = log
        .inner
        .js
        .get_stream(log.inner.stream_name(TopicId(6)))
        .await
        .expect("stream");
    assert_eq!(info.cached_info().config.max_age, Duration::from_secs(60));
    assert_eq!(
        info.cached_info().config.duplicate_window,
        Duration::from_secs(60),
        "the duplicate window never exceeds the retention"
    );
    log.put_topic(TopicRecord {
        retention_ms: 3_600_000,
        ..rec
    })
    .await
    .expect("put");
    let info = log
        .inner
        .js
        .get_stream(log.inner.stream_name(TopicId(6)))
        .await
        .expect("stream");
    assert_eq!(info.cached_info().config.max_age, Duration::from_secs(3600));
}

/// Rough throughput on a local single server: `cargo test -p
/// eventbus-jetstream --lib tests::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    log.register_topic(TopicId(1)).await.expect("register");
    let (calls, per_call, size) = (200u64, 100u64, 200usize);
    let started = Instant::now();
    for c in 0..calls {
        let batch = (0..per_call)
            .map(|i| NewEvent {
                id: EventId::new(format!("e-{c}-{i}")),
                schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
                payload: Bytes::from(vec![7u8; size]),
                headers: Vec::new(),
                generated_id: false,
            })
            .collect();
        log.append(TopicId(1), batch).await.expect("append");
    }
    let secs = started.elapsed().as_secs_f64();
    let total = calls * per_call;
    println!(
        "append: {total} events of {size} B in batches of {per_call}: {:.0} events/s",
        total as f64 / secs
    );
    let started = Instant::now();
    let mut after = Offset(0);
    let mut read = 0u64;
    loop {
        let got = log
            .read(TopicId(1), after, 500, 4 << 20)
            .await
            .expect("read");
        let Some(last) = got.last() else { break };
        after = last.offset;
        read += got.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "read: {read} events in reads of up to 500: {:.0} events/s",
        read as f64 / secs
    );
    assert_eq!(read, total);

    // One event per call, one caller: the round trip dominates.
    let started = Instant::now();
    for i in 0..1000u64 {
        log.append(TopicId(1), vec![event(1_000_000 + i)])
            .await
            .expect("append");
    }
    println!(
        "append: 1 event per call, 1 caller: {:.0} calls/s",
        1000.0 / started.elapsed().as_secs_f64()
    );

    // Eight callers on eight topics, batches of 100.
    let log = Arc::new(log);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 10..18u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.register_topic(TopicId(t)).await.expect("register");
            for c in 0..25u64 {
                let batch = (0..100).map(|i| event(c * 1000 + i)).collect();
                log.append(TopicId(t), batch).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    println!(
        "append: 8 callers on 8 topics, batches of 100: {:.0} events/s",
        20_000.0 / started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn trim_keeps_events_from_the_cutoff_on() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    contract::fill(&log, TopicId(8), 2).await;
    let second = log
        .read(TopicId(8), Offset(1), 1, usize::MAX)
        .await
        .expect("read")[0]
        .time_ms;
    // Later events get a later millisecond: poll the clock, then append.
    while now_ms() <= second + 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    log.append(TopicId(8), vec![event(2), event(3)])
        .await
        .expect("append");
    let third = log
        .read(TopicId(8), Offset(2), 1, usize::MAX)
        .await
        .expect("read")[0]
        .time_ms;
    assert!(third > second);
    assert_eq!(
        log.trim_older_than(TopicId(8), EpochMillis(third))
            .await
            .expect("trim"),
        2
    );
    let b = log.bounds(TopicId(8)).expect("bounds");
    assert_eq!((b.trimmed, b.latest), (Offset(2), Offset(4)));
    let left = log
        .read(TopicId(8), Offset(0), 10, usize::MAX)
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(|e| e.offset).collect::<Vec<_>>(),
        offsets(&[3, 4])
    );
}

#[tokio::test]
async fn a_call_larger_than_the_ack_window_gets_dense_offsets() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    log.register_topic(TopicId(9)).await.expect("register");
    let n = ACK_WINDOW as u64 * 2 + 10;
    let got = log
        .append(TopicId(9), (0..n).map(event).collect())
        .await
        .expect("append");
    assert_eq!(got, (1..=n).map(Offset).collect::<Vec<_>>());
    assert_eq!(log.bounds(TopicId(9)).expect("bounds").latest, Offset(n));
}

#[tokio::test]
async fn a_name_claimed_by_an_older_version_under_the_short_org_id_stays_taken() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    // What an older version stored for a token naming its tenant by the
    // 15-character id: the record and the name claimed under that form.
    let old = ManagedRecord {
        tenant: "00D5e000000Othe".into(),
        developer_name: "Same".into(),
        ..contract::managed_record("m1", None)
    };
    log.put_managed(old.clone()).await.expect("put managed");
    log.inner
        .names_kv
        .put(key_of("00D5e000000Othe/Same"), Bytes::from_static(b"m1"))
        .await
        .expect("claim");
    let new = |id: &str| ManagedRecord {
        id: id.into(),
        tenant: "00D5e000000OtheEAC".into(),
        ..old.clone()
    };
    assert!(
        !log.create_managed(new("m2")).await.expect("create"),
        "the 18-character form of the same org finds the name taken"
    );
    // Deleting the old subscription frees its claim.
    log.delete_managed(&contract::managed_id("m1"))
        .await
        .expect("delete");
    assert!(
        log.inner
            .names_kv
            .get(key_of("00D5e000000Othe/Same"))
            .await
            .expect("get")
            .is_none(),
        "the old claim is released"
    );
    assert!(log.create_managed(new("m3")).await.expect("create"));
}

#[tokio::test]
async fn schema_texts_stored_before_texts_were_per_tenant_still_load() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    // The layout of older versions: key = the schema id, value = the first
    // text registered for it.
    log.inner
        .schemas_kv
        .put(key_of("old"), Bytes::from_static(b"{\"doc\":\"first\"}"))
        .await
        .expect("legacy record");
    let a = contract::tenant("00D5e000000Aaaa");
    log.put_schema(&a, SchemaId::new("old"), "{\"doc\":\"A's\"}".into())
        .await
        .expect("put");
    let schemas = log.load_catalog().await.expect("load").schemas;
    assert_eq!(
        schemas,
        vec![
            SchemaRecord {
                tenant: None,
                id: SchemaId::new("old"),
                json: "{\"doc\":\"first\"}".into()
            },
            SchemaRecord {
                tenant: Some(a.clone()),
                id: SchemaId::new("old"),
                json: "{\"doc\":\"A's\"}".into()
            },
        ]
    );
    let old = SchemaId::new("old");
    assert_eq!(
        log.get_schema(None, &old).await.expect("get").as_deref(),
        Some("{\"doc\":\"first\"}")
    );
    assert_eq!(
        log.get_schema(Some(&a), &old)
            .await
            .expect("get")
            .as_deref(),
        Some("{\"doc\":\"A's\"}")
    );
}

#[tokio::test]
async fn records_written_by_one_process_are_read_by_another() {
    let server = NatsServer::start();
    let cfg = server.config();
    let first = connect(&server, &cfg).await;
    let written = contract::records::records_before_reopen(&first).await;
    let second = connect(&server, &cfg).await;
    contract::records::records_after_reopen(&second, written).await;
}

#[tokio::test]
async fn a_record_above_max_payload_is_too_large() {
    use eventbus_core::log::RecordStore;
    use eventbus_core::log::records::MAX_RECORD_VALUE_BYTES;
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    let tenant = contract::tenant("00D000000000001");
    // The server's default max_payload (1 MiB) leaves no room for the
    // largest record plus its subject.
    assert!(log.max_payload() <= MAX_RECORD_VALUE_BYTES);
    let value = Bytes::from(vec![1u8; MAX_RECORD_VALUE_BYTES]);
    assert!(matches!(
        log.put_record(&tenant, "big", value, 0).await,
        Err(LogError::TooLarge(_))
    ));
    assert_eq!(log.get_record(&tenant, "big").await.expect("get"), None);
}

/// The outbox stream's message count.
async fn outbox_entries(log: &JetStreamTopicLog) -> u64 {
    let inner = &log.inner;
    let outbox = inner
        .js
        .get_stream(inner.outbox_stream())
        .await
        .expect("outbox stream");
    outbox.cached_info().state.messages
}

async fn events_of(log: &JetStreamTopicLog, topic: TopicId) -> Vec<(u64, NewEvent)> {
    log.read(topic, Offset(0), 100, usize::MAX)
        .await
        .expect("read")
        .into_iter()
        .map(|e| (e.offset.0, e.event))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_append_many_is_completed_once_by_a_new_connection() {
    let server = NatsServer::start();
    // A short duplicate window, passed before the completion: only the
    // check of the streams keeps the completion from doubling part 0.
    let cfg = JetStreamConfig {
        duplicate_window: Duration::from_secs(1),
        ..server.config()
    };
    let (a, b) = (TopicId(1), TopicId(2));
    let parts = vec![
        (a, vec![ev("s1", 1), ev("s2", 2)]),
        (b, vec![ev("d1", 3)]),
        (TopicId(3), vec![]),
    ];
    {
        let crashed = connect(&server, &cfg).await;
        for t in [a, b, TopicId(3)] {
            crashed.register_topic(t).await.expect("register");
        }
        crashed
            .append(a, vec![ev("before", 0)])
            .await
            .expect("append");
        // As if the process died after the entry and the first part.
        let inner = &crashed.inner;
        let entry = inner
            .publish_entry(&parts, &[1, 0, 0])
            .await
            .expect("outbox entry");
        let acks = inner
            .send_part(entry, 0, a, &parts[0].1, &HashSet::new())
            .await
            .expect("first part sent");
        for ack in acks {
            ack.await.expect("first part stored");
        }
        assert_eq!(outbox_entries(&crashed).await, 1);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = connect(&server, &cfg).await;
    // Its own pass at connect leaves entries younger than the grace alone.
    assert_eq!(outbox_entries(&fresh).await, 1);
    assert_eq!(
        fresh
            .inner
            .recover_outbox(Duration::ZERO)
            .await
            .expect("pass"),
        1
    );
    assert_eq!(outbox_entries(&fresh).await, 0, "the entry is deleted");
    assert_eq!(
        fresh
            .inner
            .recover_outbox(Duration::ZERO)
            .await
            .expect("pass"),
        0
    );
    for t in [a, b] {
        fresh.register_topic(t).await.expect("register");
    }
    assert_eq!(
        events_of(&fresh, a).await,
        vec![(1, ev("before", 0)), (2, ev("s1", 1)), (3, ev("s2", 2))],
        "the source part is not doubled"
    );
    assert_eq!(
        events_of(&fresh, b).await,
        vec![(1, ev("d1", 3))],
        "the derived part is completed"
    );
    // A whole call leaves no entry behind, and its events keep their ids.
    let offs = fresh
        .append_many(vec![(a, vec![ev("s3", 4)]), (b, vec![ev("d2", 5)])])
        .await
        .expect("append_many");
    assert_eq!(offs, vec![offsets(&[4]), offsets(&[2])]);
    assert_eq!(outbox_entries(&fresh).await, 0);
    assert_eq!(events_of(&fresh, b).await[1], (2, ev("d2", 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_topic_was_deleted_is_completed_for_the_rest() {
    let server = NatsServer::start();
    let log = connect(&server, &server.config()).await;
    let (a, b) = (TopicId(1), TopicId(2));
    log.register_topic(a).await.expect("register");
    log.register_topic(b).await.expect("register");
    let parts = vec![(a, vec![ev("s", 1)]), (b, vec![ev("d", 2)])];
    log.inner
        .publish_entry(&parts, &[0, 0])
        .await
        .expect("outbox entry");
    log.delete_topic(b, "/event/B__e").await.expect("delete");
    assert_eq!(
        log.inner
            .recover_outbox(Duration::ZERO)
            .await
            .expect("pass"),
        1
    );
    assert_eq!(events_of(&log, a).await, vec![(1, ev("s", 1))]);
    assert_eq!(outbox_entries(&log).await, 0);
}
