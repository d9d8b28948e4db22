//! `eventbus subscribe`: events out as JSON lines, with flow control.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ConnArgs;
use super::term::progress;
use super::wire::{authorized, channel, hex, unary};
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;
use crate::schema::ParsedSchema;

/// `eventbus subscribe …`
#[derive(Debug, Args)]
#[command(after_help = "Each event is printed as one JSON line: \
{\"replay_id\": \"<16 hex digits>\", \"event_id\": ..., \"schema_id\": ..., \"payload\": {...}}. \
Replay ids are printed in hex; --from takes that hex form (or the base64 of the 8 bytes, as some \
clients store them). Flow control is real: the command asks for --credit events at a time and \
asks again when the server reports none pending.")]
pub struct SubscribeArgs {
    /// Topic name.
    pub topic: String,
    /// Where to start: latest, earliest, or a replay id (hex or base64) to
    /// resume after.
    #[arg(long, default_value = "latest")]
    pub from: String,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Events to ask for at a time (the server caps outstanding credit).
    #[arg(long, default_value_t = 100)]
    pub credit: i32,
    /// Connection settings.
    #[command(flatten)]
    pub conn: ConnArgs,
}

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

/// `eventbus subscribe …`: events out as JSON lines, with flow control.
///
/// # Errors
/// A bad `--from` or `--credit`, connection failures, server errors, an
/// event that does not decode.
pub async fn run(args: SubscribeArgs) -> Result<()> {
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
