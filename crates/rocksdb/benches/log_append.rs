//! Appending batches to the RocksDB topic log, synced and buffered.
//! Run with `cargo bench --bench log_append`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventbus_core::log::{Durability, EventLog, NewEvent};
use eventbus_core::metrics::Metrics;
use eventbus_core::types::{EventId, SchemaId, TopicId};
use eventbus_rocksdb::RocksTopicLog;
use eventbus_rocksdb::Store;

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            id: EventId::new(format!("{i:036}")),
            schema_id: SchemaId::new("TbotHLHLoAk8KszCap06wg"),
            payload: Bytes::from(vec![7u8; 1024]),
            headers: vec![],
            generated_id: false,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("log_append_1KiB");
    group.measurement_time(Duration::from_secs(5));
    for durability in [Durability::Sync, Durability::Buffered] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let log = Arc::new(
            RocksTopicLog::open(
                &store,
                durability,
                Duration::from_millis(100),
                Arc::new(Metrics::new()),
            )
            .expect("log"),
        );
        rt.block_on(log.register_topic(TopicId(1)))
            .expect("register");
        for batch in [1usize, 10, 100, 1000] {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("{durability:?}/batch_{batch}"), |b| {
                b.iter_batched(
                    || events(batch),
                    |evs| rt.block_on(log.append(TopicId(1), evs)).expect("append"),
                    BatchSize::SmallInput,
                );
            });
        }
        rt.block_on(log.close()).expect("close");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
