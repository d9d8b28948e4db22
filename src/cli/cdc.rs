//! `eventbus cdc …` and `eventbus record …`: Change Data Capture through the
//! ChangeDataCapture service (enable objects, change records, synthetic gap
//! and overflow events).
//!
//! Owns: these commands' arguments and output. Must not: know record rules
//! (the server applies them and answers Salesforce's error codes).

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::ConnArgs;
use super::wire::{channel, hex, unary};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::change_data_capture_client::ChangeDataCaptureClient;
use crate::client::rpc_error;

/// `eventbus cdc …`
#[derive(Debug, Subcommand)]
pub enum CdcCommand {
    /// Select an object on the ChangeEvents channel: its record changes
    /// publish to `/data/<Object>ChangeEvent` and `/data/ChangeEvents`.
    Enable {
        /// Object (`Account`, `Employee__c`) or entity (`AccountChangeEvent`).
        object: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove an object from the channel (its topics and events stay).
    Disable {
        /// Object or entity name.
        object: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the enabled objects, and every object that could be.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Publish a gap event (records changed, details unknown) for records.
    Gap {
        /// Object name.
        object: String,
        /// The record ids it is about.
        #[arg(required = true)]
        ids: Vec<String>,
        /// GAP_CREATE, GAP_UPDATE, GAP_DELETE or GAP_UNDELETE.
        #[arg(long = "type", default_value = "GAP_UPDATE")]
        change_type: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Publish an overflow event (GAP_OVERFLOW) for an object.
    Overflow {
        /// Object name.
        object: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `eventbus record …`
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Create a record; prints its id.
    Create {
        /// Object name.
        object: String,
        /// The fields, a JSON object in the REST API's form.
        fields: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Change fields of a record (`null` clears one).
    Update {
        /// Object name.
        object: String,
        /// Record id.
        id: String,
        /// The fields to change, a JSON object.
        fields: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Move a record to the recycle bin.
    Delete {
        /// Object name.
        object: String,
        /// Record id.
        id: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Restore a record from the recycle bin.
    Undelete {
        /// Object name.
        object: String,
        /// Record id.
        id: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print a record as JSON.
    Get {
        /// Object name.
        object: String,
        /// Record id.
        id: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

fn member_json(m: &admin::ChangeEventMember) -> Value {
    json!({
        "object": m.object,
        "selected_entity": m.selected_entity,
        "event_channel": m.event_channel,
        "developer_name": m.developer_name,
        "topic": m.topic_name,
        "schema_id": m.schema_id,
    })
}

/// Runs one `cdc` subcommand.
///
/// # Errors
/// Connection failures and server errors, with their error code.
pub async fn run(cmd: CdcCommand) -> Result<()> {
    match cmd {
        CdcCommand::Enable { object, conn } => {
            let mut c = ChangeDataCaptureClient::new(channel(&conn).await?);
            let m = c
                .enable_change_events(unary(&conn, admin::ChangeEventsRequest { name: object }))
                .await
                .map_err(|e| rpc_error("EnableChangeEvents", e))?
                .into_inner();
            println!(
                "enabled {} on {}: changes publish to {} and /data/ChangeEvents (schema {})",
                m.object, m.event_channel, m.topic_name, m.schema_id
            );
        }
        CdcCommand::Disable { object, conn } => {
            let mut c = ChangeDataCaptureClient::new(channel(&conn).await?);
            let r = c
                .disable_change_events(unary(
                    &conn,
                    admin::ChangeEventsRequest {
                        name: object.clone(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("DisableChangeEvents", e))?
                .into_inner();
            if r.was_enabled {
                println!("disabled {object}: its topics and events stay");
            } else {
                println!("{object} was not enabled");
            }
        }
        CdcCommand::List { json, conn } => {
            let mut c = ChangeDataCaptureClient::new(channel(&conn).await?);
            let list = c
                .list_change_events(unary(&conn, admin::ListChangeEventsRequest {}))
                .await
                .map_err(|e| rpc_error("ListChangeEvents", e))?
                .into_inner();
            if json {
                for m in &list.members {
                    println!("{}", member_json(m));
                }
            } else {
                println!("{:<24} {:<32} {:<40} SCHEMA", "OBJECT", "ENTITY", "TOPIC");
                for m in &list.members {
                    println!(
                        "{:<24} {:<32} {:<40} {}",
                        m.object, m.selected_entity, m.topic_name, m.schema_id
                    );
                }
                let enabled: Vec<&str> = list.members.iter().map(|m| m.object.as_str()).collect();
                let others: Vec<&str> = list
                    .objects
                    .iter()
                    .map(String::as_str)
                    .filter(|o| !enabled.contains(o))
                    .collect();
                println!("not enabled: {}", others.join(", "));
            }
        }
        CdcCommand::Gap {
            object,
            ids,
            change_type,
            conn,
        } => {
            let change_type = change_type.to_ascii_uppercase();
            if !change_type.starts_with("GAP_") || change_type == "GAP_OVERFLOW" {
                bail!(
                    "--type {change_type}: use GAP_CREATE, GAP_UPDATE, GAP_DELETE or GAP_UNDELETE (overflow events: `eventbus cdc overflow`)"
                );
            }
            synthetic(&conn, object, change_type, ids).await?;
        }
        CdcCommand::Overflow { object, conn } => {
            synthetic(&conn, object, "GAP_OVERFLOW".to_owned(), Vec::new()).await?;
        }
    }
    Ok(())
}

async fn synthetic(
    conn: &ConnArgs,
    object: String,
    change_type: String,
    record_ids: Vec<String>,
) -> Result<()> {
    let mut c = ChangeDataCaptureClient::new(channel(conn).await?);
    let r = c
        .emit_synthetic_event(unary(
            conn,
            admin::EmitSyntheticEventRequest {
                object: object.clone(),
                change_type: change_type.clone(),
                record_ids,
            },
        ))
        .await
        .map_err(|e| rpc_error("EmitSyntheticEvent", e))?
        .into_inner();
    let replay = r.replay_ids.first().map(|b| hex(b)).unwrap_or_default();
    println!(
        "published {change_type} for {object}: transaction {}, commit {}, replay id {replay} on /data/ChangeEvents",
        r.transaction_key, r.commit_number
    );
    Ok(())
}

fn fields_of(text: &str) -> Result<String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => Ok(text.to_owned()),
        Ok(_) => bail!("the fields must be a JSON object, such as '{{\"Name\":\"Acme\"}}'"),
        Err(e) => bail!("the fields are not JSON: {e}"),
    }
}

/// Runs one `record` subcommand.
///
/// # Errors
/// Connection failures, server errors, and the record's own error (with
/// Salesforce's error code), which makes the command fail.
pub async fn record(cmd: RecordCommand) -> Result<()> {
    let (conn, change, what) = match cmd {
        RecordCommand::Get { object, id, conn } => {
            let mut c = ChangeDataCaptureClient::new(channel(&conn).await?);
            let r = c
                .get_record(unary(&conn, admin::GetRecordRequest { object, id }))
                .await
                .map_err(|e| rpc_error("GetRecord", e))?
                .into_inner();
            println!("{}", r.record_json);
            return Ok(());
        }
        RecordCommand::Create {
            object,
            fields,
            conn,
        } => (
            conn,
            admin::RecordChange {
                operation: admin::RecordOperation::Create as i32,
                object,
                id: String::new(),
                fields_json: fields_of(&fields)?,
            },
            "created",
        ),
        RecordCommand::Update {
            object,
            id,
            fields,
            conn,
        } => (
            conn,
            admin::RecordChange {
                operation: admin::RecordOperation::Update as i32,
                object,
                id,
                fields_json: fields_of(&fields)?,
            },
            "updated",
        ),
        RecordCommand::Delete { object, id, conn } => (
            conn,
            admin::RecordChange {
                operation: admin::RecordOperation::Delete as i32,
                object,
                id,
                fields_json: String::new(),
            },
            "deleted",
        ),
        RecordCommand::Undelete { object, id, conn } => (
            conn,
            admin::RecordChange {
                operation: admin::RecordOperation::Undelete as i32,
                object,
                id,
                fields_json: String::new(),
            },
            "undeleted",
        ),
    };
    let mut c = ChangeDataCaptureClient::new(channel(&conn).await?);
    let r = c
        .apply_records(unary(
            &conn,
            admin::ApplyRecordsRequest {
                changes: vec![change],
                all_or_none: true,
                client: String::new(),
            },
        ))
        .await
        .map_err(|e| rpc_error("ApplyRecords", e))?
        .into_inner();
    let Some(result) = r.results.first() else {
        bail!("the server answered no result");
    };
    if !result.success {
        let fields = if result.fields.is_empty() {
            String::new()
        } else {
            format!(" (fields: {})", result.fields.join(", "))
        };
        bail!("{}: {}{fields}", result.error_code, result.message);
    }
    let replay = r.replay_ids.first().map(|b| hex(b)).unwrap_or_default();
    println!(
        "{what} {}: commit {}, replay id {replay} on /data/ChangeEvents",
        result.id, r.commit_number
    );
    Ok(())
}
