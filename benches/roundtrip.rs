//! Publish -> Subscribe over loopback gRPC against an in-process server:
//! the time from a unary Publish until a live subscriber holds the event.
//! Run with `cargo bench --bench roundtrip`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use eventbus::api::pb::{self, pub_sub_client::PubSubClient};
use eventbus::config::ServeArgs;
use eventbus::server::Server;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = r#"{"type":"record","name":"Bench__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"}]}"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("topics/event")).expect("mkdir");
    std::fs::write(dir.path().join("topics/event/Bench__e.avsc"), SCHEMA).expect("schema");
    let mut args = ServeArgs::for_tests(dir.path().join("data"));
    args.topics = Some(dir.path().join("topics"));
    let stop = CancellationToken::new();
    let (mut client, mut stream, tx, schema_id, task) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Server::build(args).await.expect("server");
        let task = tokio::spawn(server.serve(listener, stop.clone()));
        let mut client = loop {
            match PubSubClient::connect(format!("http://{addr}")).await {
                Ok(c) => break c,
                // Readiness polling, bounded by the bench itself.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let schema_id = client
            .get_topic(pb::TopicRequest {
                topic_name: "/event/Bench__e".into(),
            })
            .await
            .expect("topic")
            .into_inner()
            .schema_id;
        let (tx, rx) = mpsc::channel(16);
        tx.send(pb::FetchRequest {
            topic_name: "/event/Bench__e".into(),
            num_requested: 100,
            ..Default::default()
        })
        .await
        .expect("first request");
        let stream = client
            .subscribe(ReceiverStream::new(rx))
            .await
            .expect("subscribe")
            .into_inner();
        (client, stream, tx, schema_id, task)
    });
    let payload = vec![2u8, 2, b'u']; // CreatedDate 1, CreatedById "u"
    c.bench_function("publish_to_delivery_loopback", |b| {
        b.iter(|| {
            rt.block_on(async {
                client
                    .publish(pb::PublishRequest {
                        topic_name: "/event/Bench__e".into(),
                        events: vec![pb::ProducerEvent {
                            schema_id: schema_id.clone(),
                            payload: payload.clone().into(),
                            ..Default::default()
                        }],
                        auth_refresh: String::new(),
                    })
                    .await
                    .expect("publish");
                let resp = stream.message().await.expect("ok").expect("delivery");
                tx.send(pb::FetchRequest {
                    num_requested: i32::try_from(resp.events.len()).unwrap_or(1),
                    ..Default::default()
                })
                .await
                .expect("credit");
            })
        })
    });
    stop.cancel();
    rt.block_on(async {
        drop(tx);
        let _ = task.await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
