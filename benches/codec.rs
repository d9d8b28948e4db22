//! Avro validation, JSON encoding, replay-id and key encoding.
//! Run with `cargo bench --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventbus::schema::ParsedSchema;
use eventbus::schema::json::JsonDefaults;
use eventbus::types::{Offset, ReplayId, TopicId};
use eventbus_rocksdb::keys::event_key;

const SCHEMA: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[
 {"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},
 {"name":"OrderNumber__c","type":["null","string"],"default":null},
 {"name":"Amount__c","type":["null","double"],"default":null},
 {"name":"Status__c","type":["null","string"],"default":null},
 {"name":"Notes__c","type":["null","string"],"default":null}]}"#;

fn bench(c: &mut Criterion) {
    let schema = ParsedSchema::parse(SCHEMA).expect("schema");
    let value = serde_json::json!({
        "OrderNumber__c": "ORD-000123", "Amount__c": 1234.5, "Status__c": "Shipped",
        "Notes__c": "x".repeat(900)
    });
    let defaults = JsonDefaults {
        created_date_ms: 1_700_000_000_000,
        created_by_id: "005000000000000AAA".into(),
    };
    let payload = schema.encode_json(&value, &defaults).expect("encodes");
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("validate_1KiB_record", |b| {
        b.iter(|| schema.validate(black_box(&payload)).expect("valid"))
    });
    g.bench_function("encode_json_1KiB_record", |b| {
        b.iter(|| {
            schema
                .encode_json(black_box(&value), &defaults)
                .expect("encodes")
        })
    });
    g.bench_function("decode_to_json_1KiB_record", |b| {
        b.iter(|| schema.decode_to_json(black_box(&payload)).expect("decodes"))
    });
    g.finish();
    let mut g = c.benchmark_group("ids");
    g.bench_function("replay_id_round_trip", |b| {
        b.iter(|| {
            let id = ReplayId::from(Offset(black_box(123_456_789)));
            ReplayId::decode(&id.to_bytes()).expect("8 bytes").offset()
        })
    });
    g.bench_function("event_key", |b| {
        b.iter(|| event_key(TopicId(black_box(7)), Offset(black_box(123_456_789))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
