//! The `topic` and `schema` commands.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::wire::{channel, hex, unary};
use super::{SchemaCommand, TopicCommand};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::client::rpc_error;

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
        "publish_rate": d.publish_rate,
        "subscribers": d.subscribers,
        "last_event_ms": if d.last_event_ms > 0 { json!(d.last_event_ms) } else { Value::Null },
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
                    "{:<40} {:>12} {:>9} {:>5} {:>10} {:>24} {:>10}",
                    "TOPIC", "EVENTS", "RATE/s", "SUBS", "LAST EVENT", "SCHEMA", "RETENTION"
                );
                let now = super::format::now_ms();
                for t in &list.topics {
                    println!(
                        "{:<40} {:>12} {:>9} {:>5} {:>10} {:>24} {:>10}",
                        t.topic_name,
                        t.event_count,
                        super::format::rate(t.publish_rate),
                        t.subscribers,
                        super::format::age(now, t.last_event_ms),
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
