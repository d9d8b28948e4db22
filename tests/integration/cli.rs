//! The `eventbus` client commands, driven as a process against a real server.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

const SHIPMENT_SCHEMA: &str = r#"{"type":"record","name":"Shipment__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Carrier__c","type":["null","string"],"default":null},{"name":"Weight__c","type":["null","double"],"default":null}]}"#;

/// Runs `eventbus ARGS --server ADDR` with optional stdin; returns its output.
pub(crate) async fn eventbus(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    run_eventbus(&server.addr.to_string(), args, stdin).await
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn topic_and_schema_commands_manage_a_running_server() {
    let server = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("shipment.avsc");
    std::fs::write(&schema, SHIPMENT_SCHEMA).expect("write");
    let schema = schema.to_str().expect("utf-8 path");

    let out = ok(&eventbus(
        &server,
        &[
            "topic",
            "create",
            "/event/Shipment__e",
            "--schema",
            schema,
            "--retention",
            "24h",
        ],
        None,
    )
    .await);
    assert!(out.contains("created /event/Shipment__e"), "{out}");
    let out = ok(&eventbus(&server, &["topic", "list"], None).await);
    assert!(
        out.contains("/event/Shipment__e") && out.contains(ORDER_TOPIC),
        "{out}"
    );
    let out = ok(&eventbus(
        &server,
        &["topic", "describe", "/event/Shipment__e", "--json"],
        None,
    )
    .await);
    let d: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(d["retention"], "1day");
    assert_eq!(d["event_count"], 0);
    let out = ok(&eventbus(
        &server,
        &["topic", "retention", "/event/Shipment__e", "2h"],
        None,
    )
    .await);
    assert!(out.contains("2h"), "{out}");

    // Schema versions: a compatible one registers, an incompatible one names the field.
    let v2 = dir.path().join("v2.avsc");
    std::fs::write(&v2, SHIPMENT_SCHEMA.replace(r#"{"name":"Weight__c","type":["null","double"],"default":null}"#, r#"{"name":"Weight__c","type":["null","double"],"default":null},{"name":"Eta__c","type":["null","long"],"default":null}"#)).expect("write");
    let out = ok(&eventbus(
        &server,
        &[
            "schema",
            "register",
            "/event/Shipment__e",
            "--schema",
            v2.to_str().expect("path"),
        ],
        None,
    )
    .await);
    assert!(out.contains("registered"), "{out}");
    let bad = dir.path().join("bad.avsc");
    std::fs::write(
        &bad,
        SHIPMENT_SCHEMA.replace(
            r#"{"name":"Weight__c","type":["null","double"],"default":null}"#,
            r#"{"name":"Weight__c","type":"string"}"#,
        ),
    )
    .expect("write");
    let err = failed(
        &eventbus(
            &server,
            &[
                "schema",
                "register",
                "/event/Shipment__e",
                "--schema",
                bad.to_str().expect("path"),
            ],
            None,
        )
        .await,
    );
    assert!(
        err.contains("Weight__c") && err.contains("schema.incompatible"),
        "{err}"
    );
    let out = ok(&eventbus(&server, &["schema", "list", "/event/Shipment__e"], None).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].ends_with("current"), "{out}");
    let id = lines[0].split('\t').nth(1).expect("schema id");
    let out = ok(&eventbus(&server, &["schema", "get", id], None).await);
    assert_eq!(out.trim(), SHIPMENT_SCHEMA);

    let out = ok(&eventbus(&server, &["topic", "delete", "/event/Shipment__e"], None).await);
    assert!(out.contains("deleted /event/Shipment__e"), "{out}");
    let err = failed(&eventbus(&server, &["topic", "describe", "/event/Shipment__e"], None).await);
    assert!(
        err.contains("NotFound") && err.contains("topic.not.found"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn publish_and_subscribe_speak_json_and_share_replay_ids() {
    let server = start().await;
    // One event as an argument, in the form a person writes.
    let out = ok(&eventbus(
        &server,
        &[
            "publish",
            ORDER_TOPIC,
            r#"{"OrderNumber__c":"A-1","Amount__c":12.5}"#,
        ],
        None,
    )
    .await);
    let first: Vec<&str> = out.lines().collect();
    assert_eq!(first.len(), 1, "{out}");
    assert_eq!(first[0].len(), 16, "a hex replay id: {out}");
    // JSON lines on stdin, including the Avro union form.
    let lines = "{\"OrderNumber__c\":\"A-2\"}\n\n{\"OrderNumber__c\":{\"string\":\"A-3\"},\"Amount__c\":null,\"CreatedDate\":5}\n";
    let out = ok(&eventbus(&server, &["publish", ORDER_TOPIC], Some(lines)).await);
    assert_eq!(out.lines().count(), 2, "{out}");
    // And from a file.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("orders.jsonl");
    std::fs::write(
        &file,
        (4..=9)
            .map(|i| format!("{{\"OrderNumber__c\":\"A-{i}\"}}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let out = ok(&eventbus(
        &server,
        &[
            "publish",
            ORDER_TOPIC,
            "--file",
            file.to_str().expect("path"),
            "--batch",
            "4",
        ],
        None,
    )
    .await);
    let ids: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 6);

    // Bad input names the field and publishes nothing.
    let err = failed(
        &eventbus(
            &server,
            &["publish", ORDER_TOPIC],
            Some("{\"Amount__c\":\"abc\"}\n{\"Nope__c\":1}\n"),
        )
        .await,
    );
    assert!(err.contains("line 1") && err.contains("Amount__c"), "{err}");
    assert!(err.contains("line 2") && err.contains("Nope__c"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");

    // Subscribe from earliest with small credit: every event, in order, decoded.
    let out = ok(&eventbus(
        &server,
        &[
            "subscribe",
            ORDER_TOPIC,
            "--from",
            "earliest",
            "--count",
            "9",
            "--credit",
            "2",
        ],
        None,
    )
    .await);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(events.len(), 9);
    assert_eq!(events[0]["replay_id"], first[0]);
    assert_eq!(events[0]["payload"]["OrderNumber__c"], "A-1");
    assert_eq!(events[0]["payload"]["Amount__c"], 12.5);
    assert_eq!(events[0]["payload"]["CreatedById"], "005000000000000AAA");
    assert!(
        events[0]["payload"]["CreatedDate"].as_i64().unwrap_or(0) > 1_600_000_000_000,
        "filled with now in ms"
    );
    assert_eq!(events[2]["payload"]["CreatedDate"], 5);
    assert_eq!(events[2]["payload"]["OrderNumber__c"], "A-3");
    assert!(events[2]["payload"]["Amount__c"].is_null());
    // A replay id printed by publish resumes a subscription right after it.
    let out = ok(&eventbus(
        &server,
        &["subscribe", ORDER_TOPIC, "--from", &ids[2], "--count", "3"],
        None,
    )
    .await);
    let resumed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let got: Vec<&str> = resumed
        .iter()
        .map(|e| e["replay_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, vec![ids[3].as_str(), ids[4].as_str(), ids[5].as_str()]);
    // A bad --from is a clear error.
    let err = failed(
        &eventbus(
            &server,
            &["subscribe", ORDER_TOPIC, "--from", "12", "--count", "1"],
            None,
        )
        .await,
    );
    assert!(err.contains("--from"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn every_command_explains_itself() {
    let server = start().await;
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["topic", "--help"],
        vec!["topic", "create", "--help"],
        vec!["schema", "register", "--help"],
        vec!["publish", "--help"],
        vec!["subscribe", "--help"],
        vec!["managed", "--help"],
        vec!["managed", "create", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_eventbus"))
            .args(&args)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Usage"),
            "{args:?}: {text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .args(["subscribe", "--help"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hex"));
    let out = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .args(["publish", "--help"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("CreatedDate"));
    server.shutdown().await;
}

#[tokio::test]
async fn bench_runs_each_workload_against_a_server_and_reports_json() {
    let server = start().await;
    let pid = std::process::id().to_string(); // the server runs in this test process
    for workload in ["publish", "latency", "unary", "e2e", "replay", "fanout"] {
        let out = ok(&eventbus(
            &server,
            &[
                "bench",
                workload,
                "--events",
                "300",
                "--rate",
                "3000",
                "--batch",
                "50",
                "--json",
                "--server-pid",
                &pid,
            ],
            None,
        )
        .await);
        let r: Value = serde_json::from_str(out.trim()).expect("one JSON report");
        assert_eq!(r["workload"], workload);
        let events = r["events"].as_u64().unwrap_or(0);
        let expected = if workload == "fanout" { 1200 } else { 300 };
        assert_eq!(events, expected, "{workload}: {r}");
        assert!(r["events_per_sec"].as_f64().unwrap_or(0.0) > 0.0);
        assert!(r["server_rss_bytes"].as_u64().unwrap_or(0) > 0);
        if workload != "replay" {
            assert!(r["latency_us"]["p99"].as_u64().is_some(), "{workload}: {r}");
        }
    }
    let out = ok(&eventbus(
        &server,
        &[
            "bench",
            "idle",
            "--subscriptions",
            "50",
            "--json",
            "--server-pid",
            &pid,
        ],
        None,
    )
    .await);
    let r: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(r["subscriptions"], 50);
    assert!(r["bytes_per_idle_subscription"].as_f64().is_some());
    server.shutdown().await;
}

/// `eventbus bench-echo` (the gRPC ceiling) as its own process, loaded by
/// `eventbus bench --target echo` with the unary and replay workloads.
#[tokio::test]
async fn bench_echo_serves_the_ceiling_workloads() {
    use std::io::{BufRead, BufReader};
    let mut echo = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .args(["bench-echo", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn bench-echo");
    let stdout = echo.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read the first line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .expect("listening on ADDR")
        .trim()
        .to_owned();
    for (workload, events) in [("unary", "200"), ("replay", "300")] {
        let out = ok(&run_eventbus(
            &addr,
            &[
                "bench",
                workload,
                "--target",
                "echo",
                "--events",
                events,
                "--streams",
                "4",
                "--batch",
                "1",
                "--json",
            ],
            None,
        )
        .await);
        let r: Value = serde_json::from_str(out.trim()).expect("one JSON report");
        assert_eq!(r["target"], "echo", "{r}");
        assert_eq!(r["workload"], workload, "{r}");
        assert_eq!(r["events"].to_string(), events, "{r}");
    }
    // Not in --help: a tool for compare.sh, not a command for people.
    let help = Command::new(env!("CARGO_BIN_EXE_eventbus"))
        .arg("--help")
        .output()
        .expect("help");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("bench-echo"));
    let _ = echo.kill();
    let _ = echo.wait();
}

#[tokio::test]
async fn bench_scale_workloads_run_against_a_server() {
    let server = start().await;
    let pid = std::process::id().to_string(); // the server runs in this test process
    let run = |args: Vec<String>| {
        let (server, pid) = (&server, &pid);
        async move {
            let mut all = vec!["bench".to_owned()];
            all.extend(args);
            all.extend(["--json".to_owned(), "--server-pid".to_owned(), pid.clone()]);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let out = ok(&eventbus(server, &refs, None).await);
            serde_json::from_str::<Value>(out.trim()).expect("one JSON report")
        }
    };
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let r = run(words(
        "topics --topic-count 5 --events 95 --streams 3 --batch 10",
    ))
    .await;
    assert_eq!(r["events"], 95, "{r}");
    assert_eq!(r["topics_created"], 5, "{r}");
    // A second run finds them all there.
    let r = run(words("topics --topic-count 5 --events 10 --batch 10")).await;
    assert_eq!(r["topics_created"], 0, "{r}");
    let r = run(words(
        "subscribers --subscriptions 20 --subscribers 2 --events 100 --rate 2000",
    ))
    .await;
    assert_eq!(r["events"], 200, "{r}");
    assert_eq!(r["idle_subscriptions"], 20, "{r}");
    assert!(r["latency_us"]["p99"].as_u64().is_some(), "{r}");
    run(words(
        "publish --topic /event/Log__e --keep-topic --events 400 --batch 50",
    ))
    .await;
    for (from, after) in [
        ("start", Value::Null),
        ("middle", 200.into()),
        ("end", 300.into()),
    ] {
        let r = run(words(&format!(
            "replay-at --topic /event/Log__e --from {from} --events 100"
        )))
        .await;
        assert_eq!(r["events"], 100, "{from}: {r}");
        assert_eq!(r["start_after_offset"], after, "{from}: {r}");
        assert!(r["first_event_us"].as_u64().is_some(), "{from}: {r}");
    }
    let r = run(words("probe --events 20 --rate 1000")).await;
    assert_eq!(r["events"], 20, "{r}");
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
        .to_string();
    let r = run(words(&format!(
        "ready --topic /event/Log__e --started-at-ns {now_ns}"
    )))
    .await;
    assert!(r["seconds_to_ready"].as_f64().is_some(), "{r}");
    server.shutdown().await;
}

#[tokio::test]
async fn managed_commands_create_list_describe_stop_start_and_delete() {
    let server = start().await;
    let out = ok(&eventbus(
        &server,
        &[
            "managed",
            "create",
            "Billing_Sync",
            "--topic",
            ORDER_TOPIC,
            "--default-replay",
            "earliest",
        ],
        None,
    )
    .await);
    assert!(
        out.contains("created managed subscription Billing_Sync (18x"),
        "{out}"
    );
    let list = ok(&eventbus(&server, &["managed", "list", "--json"], None).await);
    let rows: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 1);
    let id = rows[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(rows[0]["state"], "RUN");
    assert_eq!(rows[0]["default_replay"], "EARLIEST");
    assert_eq!(rows[0]["error_recovery_replay"], "LATEST");
    assert_eq!(
        rows[0]["lag"], 0,
        "no commit yet: EARLIEST of an empty topic"
    );

    // Describe by id or by name; the table and the JSON agree.
    let by_id: Value = serde_json::from_str(&ok(&eventbus(
        &server,
        &["managed", "describe", &id, "--json"],
        None,
    )
    .await))
    .expect("json");
    assert_eq!(by_id["developer_name"], "Billing_Sync");
    let table = ok(&eventbus(&server, &["managed", "describe", "Billing_Sync"], None).await);
    assert!(
        table.contains(&id) && table.contains(ORDER_TOPIC),
        "{table}"
    );

    let out = ok(&eventbus(&server, &["managed", "stop", "Billing_Sync"], None).await);
    assert!(out.contains("is now STOP"), "{out}");
    let out = ok(&eventbus(&server, &["managed", "start", &id], None).await);
    assert!(out.contains("is now RUN"), "{out}");
    let out = ok(&eventbus(
        &server,
        &[
            "managed",
            "update",
            "Billing_Sync",
            "--error-recovery-replay",
            "earliest",
        ],
        None,
    )
    .await);
    assert!(out.contains("EARLIEST"), "{out}");

    // Errors name the problem and the error code.
    let err = failed(
        &eventbus(
            &server,
            &["managed", "create", "Billing_Sync", "--topic", ORDER_TOPIC],
            None,
        )
        .await,
    );
    assert!(err.contains("managed.subscription.already.exists"), "{err}");
    let err = failed(&eventbus(&server, &["managed", "describe", "Nobody"], None).await);
    assert!(err.contains("developer.name.not.found"), "{err}");

    let out = ok(&eventbus(&server, &["managed", "delete", "Billing_Sync"], None).await);
    assert!(
        out.contains("deleted managed subscription Billing_Sync"),
        "{out}"
    );
    let list = ok(&eventbus(&server, &["managed", "list"], None).await);
    assert_eq!(list.lines().count(), 1, "only the header is left: {list}");
    server.shutdown().await;
}
