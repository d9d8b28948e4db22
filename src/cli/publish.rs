//! `eventbus publish`: JSON events in, Avro on the wire, replay ids out.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::ConnArgs;
use super::term::{hint_stdin, print, progress};
use super::wire::{authorized, channel, hex, unary};
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
use crate::schema::ParsedSchema;
use crate::schema::json::JsonDefaults;

/// `eventbus publish …`
#[derive(Debug, Args)]
#[command(
    after_help = "Input is JSON in the shape a person writes it: nullable fields as plain values \
({\"Amount__c\": 12.5}) or null/absent; the Avro form {\"Amount__c\": {\"double\": 12.5}} works too. \
CreatedDate (epoch ms, now) and CreatedById are filled in when the schema has them and the input \
does not. Each published event's replay id is printed on its own line, in hex: the form \
`eventbus subscribe --from` accepts."
)]
pub struct PublishArgs {
    /// Topic name.
    pub topic: String,
    /// One event as a JSON object. Without it, JSON lines are read from
    /// --file or standard input.
    pub event: Option<String>,
    /// A file of JSON lines (one event per line).
    #[arg(long, conflicts_with = "event")]
    pub file: Option<PathBuf>,
    /// Events per PublishStream request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// CreatedById to fill in when the input has none.
    #[arg(long, default_value = "005000000000000AAA")]
    pub created_by: String,
    /// Connection settings.
    #[command(flatten)]
    pub conn: ConnArgs,
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

/// `eventbus publish …`: JSON events in, Avro on the wire, replay ids out.
///
/// # Errors
/// Connection failures, server errors, input that does not fit the schema,
/// and events the server refused (all of them listed).
pub async fn run(args: PublishArgs) -> Result<()> {
    let mut client = PubSubClient::new(channel(&args.conn).await?);
    let schema = current_schema(&mut client, &args.conn, &args.topic).await?;
    let inputs: Vec<(usize, String)> = match (&args.event, &args.file) {
        (Some(one), _) => vec![(1, one.clone())],
        (None, Some(path)) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            read_lines(std::io::BufReader::new(f))?
        }
        (None, None) => {
            hint_stdin(
                "reading events from standard input: one JSON object per line, end with Ctrl-D \
                 (or give one event as an argument, or --file FILE)",
            );
            read_lines(std::io::stdin().lock())?
        }
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
    let mut lines = String::new();
    while let Some(resp) = responses
        .message()
        .await
        .map_err(|e| rpc_error("PublishStream", e))?
    {
        for r in resp.results {
            done += 1;
            match r.error {
                None => lines.push_str(&format!("{}\n", hex(&r.replay_id))),
                Some(e) => failed.push(format!("event {done}: {}", e.msg)),
            }
            bar.inc(1);
        }
        print(&bar, &mut out, &lines)?;
        lines.clear();
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
