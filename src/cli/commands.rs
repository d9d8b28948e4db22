//! The `topic`, `schema`, `publish` and `subscribe` commands.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::wire::{authorized, channel, hex, unary};
use super::{ConnArgs, PublishArgs, SchemaCommand, SubscribeArgs, TopicCommand};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
use crate::schema::ParsedSchema;
use crate::schema::json::JsonDefaults;

/// Parses `--from`: latest, earliest, 16 hex digits, or base64 of 8 bytes.
fn parse_from(from: &str) -> Result<(pb::ReplayPreset, Vec<u8>)> {
    match from {
        "latest" => return Ok((pb::ReplayPreset::Latest, vec![])),
        "earliest" => return Ok((pb::ReplayPreset::Earliest, vec![])),
        _ => {}
    }
    if from.len() == 16 && from.chars().all(|c| c.is_ascii_hexdigit()) {
        let bytes = (0..8)
            .map(|i| u8::from_str_radix(&from[i * 2..i * 2 + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        return Ok((pb::ReplayPreset::Custom, bytes));
    }
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(bytes) = engine.decode(from)
            && bytes.len() == 8
        {
            return Ok((pb::ReplayPreset::Custom, bytes));
        }
    }
    bail!(
        "--from must be latest, earliest, or a replay id: 16 hex digits or the base64 of 8 bytes; got `{from}`"
    )
}

fn describe_json(d: &admin::TopicDescription) -> Value {
    json!({
        "topic": d.topic_name,
        "current_schema_id": d.current_schema_id,
        "schema_ids": d.schema_ids,
        "retention": humantime::format_duration(Duration::from_millis(d.retention_ms)).to_string(),
        "first_replay_id": if d.first_replay_id.is_empty() { Value::Null } else { json!(hex(&d.first_replay_id)) },
        "last_replay_id": hex(&d.last_replay_id),
        "event_count": d.event_count,
        "bytes_on_disk": d.bytes_on_disk,
        "created_ms": d.created_ms,
    })
}

/// `eventbus topic …` through the Admin API.
///
/// # Errors
/// Connection failures, server errors (with their error code), an
/// unreadable schema file.
pub async fn topic(cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create {
            name,
            schema,
            retention,
            conn,
        } => {
            let json = std::fs::read_to_string(&schema)
                .with_context(|| format!("cannot read {}", schema.display()))?;
            let mut admin = AdminClient::new(channel(&conn).await?);
            let d = admin
                .create_topic(unary(
                    &conn,
                    admin::CreateTopicRequest {
                        topic_name: name.clone(),
                        schema_json: json,
                        retention_ms: retention.map_or(0, |r| r.as_millis() as u64),
                    },
                ))
                .await
                .map_err(|e| rpc_error("CreateTopic", e))?
                .into_inner();
            println!(
                "created {} with schema {}",
                d.topic_name, d.current_schema_id
            );
        }
        TopicCommand::List { json, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let list = admin
                .list_topics(unary(&conn, admin::ListTopicsRequest {}))
                .await
                .map_err(|e| rpc_error("ListTopics", e))?
                .into_inner();
            if json {
                for t in &list.topics {
                    println!("{}", describe_json(t));
                }
            } else {
                println!(
                    "{:<40} {:>12} {:>24} {:>10}",
                    "TOPIC", "EVENTS", "SCHEMA", "RETENTION"
                );
                for t in &list.topics {
                    println!(
                        "{:<40} {:>12} {:>24} {:>10}",
                        t.topic_name,
                        t.event_count,
                        t.current_schema_id,
                        humantime::format_duration(Duration::from_millis(t.retention_ms))
                            .to_string()
                    );
                }
            }
        }
        TopicCommand::Describe { name, json, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let d = admin
                .describe_topic(unary(
                    &conn,
                    admin::DescribeTopicRequest { topic_name: name },
                ))
                .await
                .map_err(|e| rpc_error("DescribeTopic", e))?
                .into_inner();
            if json {
                println!("{}", describe_json(&d));
            } else {
                let v = describe_json(&d);
                if let Some(obj) = v.as_object() {
                    for (k, v) in obj {
                        println!(
                            "{k:<18} {}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                        );
                    }
                }
            }
        }
        TopicCommand::Retention {
            name,
            retention,
            conn,
        } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let d = admin
                .update_topic(unary(
                    &conn,
                    admin::UpdateTopicRequest {
                        topic_name: name,
                        retention_ms: retention.as_millis() as u64,
                    },
                ))
                .await
                .map_err(|e| rpc_error("UpdateTopic", e))?
                .into_inner();
            println!(
                "{} now keeps events for {}",
                d.topic_name,
                humantime::format_duration(Duration::from_millis(d.retention_ms))
            );
        }
        TopicCommand::Delete { name, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let r = admin
                .delete_topic(unary(
                    &conn,
                    admin::DeleteTopicRequest {
                        topic_name: name.clone(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("DeleteTopic", e))?
                .into_inner();
            println!("deleted {name} and {} events", r.deleted_events);
        }
    }
    Ok(())
}

/// `eventbus schema …` through the Admin and Pub/Sub APIs.
///
/// # Errors
/// Connection failures, server errors (with their error code), an
/// unreadable schema file.
pub async fn schema(cmd: SchemaCommand) -> Result<()> {
    match cmd {
        SchemaCommand::Register {
            topic,
            schema,
            conn,
        } => {
            let json = std::fs::read_to_string(&schema)
                .with_context(|| format!("cannot read {}", schema.display()))?;
            let mut admin = AdminClient::new(channel(&conn).await?);
            let r = admin
                .register_schema(unary(
                    &conn,
                    admin::RegisterSchemaRequest {
                        topic_name: topic.clone(),
                        schema_json: json,
                    },
                ))
                .await
                .map_err(|e| rpc_error("RegisterSchema", e))?
                .into_inner();
            if r.created {
                println!(
                    "registered {} as the current schema of {topic}",
                    r.schema_id
                );
            } else {
                println!("{} already is the current schema of {topic}", r.schema_id);
            }
        }
        SchemaCommand::Get { schema_id, conn } => {
            let mut client = PubSubClient::new(channel(&conn).await?);
            let s = client
                .get_schema(unary(&conn, pb::SchemaRequest { schema_id }))
                .await
                .map_err(|e| rpc_error("GetSchema", e))?
                .into_inner();
            println!("{}", s.schema_json);
        }
        SchemaCommand::List { topic, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let r = admin
                .list_schemas(unary(
                    &conn,
                    admin::ListSchemasRequest { topic_name: topic },
                ))
                .await
                .map_err(|e| rpc_error("ListSchemas", e))?
                .into_inner();
            for v in r.versions {
                println!(
                    "{}\t{}{}",
                    v.version,
                    v.schema_id,
                    if v.current { "\tcurrent" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// The topic's current schema, fetched the way Pub/Sub clients do.
async fn current_schema(
    client: &mut PubSubClient<Channel>,
    conn: &ConnArgs,
    topic: &str,
) -> Result<ParsedSchema> {
    let info = client
        .get_topic(unary(
            conn,
            pb::TopicRequest {
                topic_name: topic.to_owned(),
            },
        ))
        .await
        .map_err(|e| rpc_error("GetTopic", e))?
        .into_inner();
    let s = client
        .get_schema(unary(
            conn,
            pb::SchemaRequest {
                schema_id: info.schema_id,
            },
        ))
        .await
        .map_err(|e| rpc_error("GetSchema", e))?
        .into_inner();
    ParsedSchema::parse(&s.schema_json)
        .map_err(|e| anyhow!("the server's schema does not parse: {e}"))
}

fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    // Only for people: piped output gets no bar.
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// `eventbus publish …`: JSON events in, Avro on the wire, replay ids out.
///
/// # Errors
/// Connection failures, server errors, input that does not fit the schema,
/// and events the server refused (all of them listed).
pub async fn publish(args: PublishArgs) -> Result<()> {
    let mut client = PubSubClient::new(channel(&args.conn).await?);
    let schema = current_schema(&mut client, &args.conn, &args.topic).await?;
    let inputs: Vec<(usize, String)> = match (&args.event, &args.file) {
        (Some(one), _) => vec![(1, one.clone())],
        (None, Some(path)) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            read_lines(std::io::BufReader::new(f))?
        }
        (None, None) => read_lines(std::io::stdin().lock())?,
    };
    if inputs.is_empty() {
        bail!("no events: give a JSON object, --file, or JSON lines on standard input");
    }
    // Encode everything first: a bad line publishes nothing.
    let now_ms = crate::client::now_ms() as i64;
    let defaults = JsonDefaults {
        created_date_ms: now_ms,
        created_by_id: args.created_by.clone(),
    };
    let mut events = Vec::with_capacity(inputs.len());
    let mut problems = Vec::new();
    for (line, text) in &inputs {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("line {line}: not JSON: {e}"));
                continue;
            }
        };
        match schema.encode_json(&value, &defaults) {
            Ok(payload) => events.push(pb::ProducerEvent {
                id: String::new(),
                schema_id: schema.id().to_string(),
                payload: payload.into(),
                headers: vec![],
            }),
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "nothing was published; the input does not fit the schema of {}:\n  {}",
            args.topic,
            problems.join("\n  ")
        );
    }
    let bar = progress(Some(events.len() as u64), "publishing");
    let batch = args.batch.clamp(1, 1000);
    let total = events.len();
    let (tx, rx) = mpsc::channel(8);
    let topic = args.topic.clone();
    let sender = tokio::spawn(async move {
        let mut it = events.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<_> = it.by_ref().take(batch).collect();
            let req = pb::PublishRequest {
                topic_name: topic.clone(),
                events: chunk,
                auth_refresh: String::new(),
            };
            if tx.send(req).await.is_err() {
                break;
            }
        }
    });
    let mut responses = client
        .publish_stream(authorized(&args.conn, ReceiverStream::new(rx)))
        .await
        .map_err(|e| rpc_error("PublishStream", e))?
        .into_inner();
    let mut out = std::io::stdout().lock();
    let mut done = 0usize;
    let mut failed = Vec::new();
    while let Some(resp) = responses
        .message()
        .await
        .map_err(|e| rpc_error("PublishStream", e))?
    {
        for r in resp.results {
            done += 1;
            match r.error {
                None => {
                    let line = hex(&r.replay_id);
                    if bar.is_hidden() {
                        writeln!(out, "{line}")?;
                    } else {
                        bar.println(line);
                    }
                }
                Some(e) => failed.push(format!("event {done}: {}", e.msg)),
            }
            bar.inc(1);
        }
        if done >= total {
            break;
        }
    }
    bar.finish_and_clear();
    let _ = sender.await;
    if !failed.is_empty() {
        bail!(
            "{} of {total} events failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

fn read_lines(r: impl BufRead) -> Result<Vec<(usize, String)>> {
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line.context("cannot read input")?;
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    Ok(out)
}

/// `eventbus subscribe …`: events out as JSON lines, with flow control.
///
/// # Errors
/// A bad `--from` or `--credit`, connection failures, server errors, an
/// event that does not decode.
pub async fn subscribe(args: SubscribeArgs) -> Result<()> {
    if args.credit <= 0 {
        bail!("--credit must be at least 1");
    }
    let (preset, replay_id) = parse_from(&args.from)?;
    let mut client = PubSubClient::new(channel(&args.conn).await?);
    let mut schemas: std::collections::HashMap<String, ParsedSchema> = Default::default();
    let first_credit = match args.count {
        Some(n) => args.credit.min(i32::try_from(n).unwrap_or(i32::MAX)).max(1),
        None => args.credit,
    };
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::FetchRequest {
        topic_name: args.topic.clone(),
        replay_preset: preset as i32,
        replay_id: replay_id.into(),
        num_requested: first_credit,
        auth_refresh: String::new(),
    })
    .await
    .map_err(|_| anyhow!("request stream closed"))?;
    let mut stream = client
        .subscribe(authorized(&args.conn, ReceiverStream::new(rx)))
        .await
        .map_err(|e| rpc_error("Subscribe", e))?
        .into_inner();
    let bar = progress(args.count, "receiving");
    let mut out = std::io::stdout().lock();
    let mut received: u64 = 0;
    let mut asked: u64 = first_credit as u64;
    loop {
        if args.count.is_some_and(|n| received >= n) {
            break;
        }
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(rpc_error("Subscribe", e)),
        };
        for ev in resp.events {
            if args.count.is_some_and(|n| received >= n) {
                break;
            }
            let event = ev.event.unwrap_or_default();
            if !schemas.contains_key(&event.schema_id) {
                let s = client
                    .get_schema(unary(
                        &args.conn,
                        pb::SchemaRequest {
                            schema_id: event.schema_id.clone(),
                        },
                    ))
                    .await
                    .map_err(|e| rpc_error("GetSchema", e))?
                    .into_inner();
                let parsed = ParsedSchema::parse(&s.schema_json)
                    .map_err(|e| anyhow!("schema {} does not parse: {e}", event.schema_id))?;
                schemas.insert(event.schema_id.clone(), parsed);
            }
            let payload = schemas
                .get(&event.schema_id)
                .map(|s| s.decode_to_json(&event.payload))
                .transpose()
                .map_err(|e| anyhow!("event {} does not decode: {e}", hex(&ev.replay_id)))?
                .unwrap_or(Value::Null);
            let line = json!({
                "replay_id": hex(&ev.replay_id),
                "event_id": event.id,
                "schema_id": event.schema_id,
                "payload": payload,
            })
            .to_string();
            if bar.is_hidden() {
                writeln!(out, "{line}")?;
            } else {
                bar.println(line);
            }
            received += 1;
            bar.inc(1);
        }
        out.flush()?;
        // Ask for more when the server has none pending, never beyond --count.
        if resp.pending_num_requested == 0 {
            let want = match args.count {
                Some(n) => n.saturating_sub(received).min(args.credit as u64),
                None => args.credit as u64,
            };
            if want > 0 {
                asked += want;
                let more = pb::FetchRequest {
                    num_requested: i32::try_from(want).unwrap_or(i32::MAX),
                    ..Default::default()
                };
                if tx.send(more).await.is_err() {
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    tracing::debug!(received, asked, "subscription done");
    // Half-close and let the server end the call.
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_presets_hex_and_base64() {
        assert_eq!(
            parse_from("latest").expect("ok").0,
            pb::ReplayPreset::Latest
        );
        assert_eq!(
            parse_from("earliest").expect("ok").0,
            pb::ReplayPreset::Earliest
        );
        let (p, b) = parse_from("000000000000002a").expect("hex");
        assert_eq!(
            (p, b),
            (pb::ReplayPreset::Custom, vec![0, 0, 0, 0, 0, 0, 0, 42])
        );
        let (_, b) = parse_from("AAAAAAAAACo=").expect("base64");
        assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 42]);
        assert!(parse_from("42").is_err());
        assert!(parse_from("zz00000000000000").is_err());
    }

    #[test]
    fn hex_is_what_from_reads() {
        let id = [0u8, 1, 2, 3, 4, 5, 6, 255];
        assert_eq!(parse_from(&hex(&id)).expect("round trip").1, id.to_vec());
    }
}
