//! `eventbus channel …`: custom channels (`PlatformEventChannel`) and their
//! members (`PlatformEventChannelMember`) through the Channels service.
//!
//! Owns: these commands' arguments and output. Must not: know channel
//! rules (the server checks names, entities and filters, and answers with
//! Salesforce's error code and the filter position), or reach the channels
//! engine or the broker other than over gRPC.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use super::ConnArgs;
use super::wire::{channel, unary};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::channels_client::ChannelsClient;
use crate::client::rpc_error;

/// `eventbus channel …`
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Define a channel (`Orders__chn`); its topic is `/event/NAME` or
    /// `/data/NAME` and exists once the channel has a member.
    Create {
        /// The channel's name, ending `__chn`.
        name: String,
        /// `event` (platform events) or `data` (change events).
        #[arg(long = "type")]
        channel_type: String,
        /// A label; by default the name without `__chn`.
        #[arg(long, default_value = "")]
        label: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a channel, its members and its topic with its events.
    Delete {
        /// The channel's name.
        name: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the org's channels.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Define, remove or list the entities a channel carries.
    #[command(subcommand)]
    Member(MemberCommand),
}

/// `eventbus channel member …`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add an entity to a channel, or replace its filter and enriched
    /// fields.
    Set {
        /// The channel (`Orders__chn`).
        channel: String,
        /// A platform event (`Order_Event__e`) for an event channel, a
        /// change event entity (`AccountChangeEvent`) for a data channel.
        entity: String,
        /// Only events matching this expression
        /// (`Amount__c > 100 AND Region__c = 'EU'`).
        #[arg(long, default_value = "")]
        filter: String,
        /// Fields every change event carries even when unchanged (data
        /// channels), comma-separated.
        #[arg(long, value_delimiter = ',')]
        enrich: Vec<String>,
        /// The member's developer name; by default derived from the
        /// channel and the entity.
        #[arg(long, default_value = "")]
        name: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove an entity from a channel.
    Remove {
        /// The channel.
        channel: String,
        /// The member's entity.
        entity: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the members of a channel, or of every channel.
    List {
        /// The channel; every channel when left out.
        channel: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

fn channel_json(c: &admin::Channel) -> Value {
    json!({
        "id": c.id,
        "full_name": c.full_name,
        "channel_type": c.channel_type,
        "label": c.label,
        "topic": c.topic_name,
    })
}

fn member_json(m: &admin::ChannelMember) -> Value {
    json!({
        "id": m.id,
        "developer_name": m.developer_name,
        "channel": m.channel,
        "selected_entity": m.selected_entity,
        "filter_expression": m.filter_expression,
        "enriched_fields": m.enriched_fields,
    })
}

/// `-` for an empty cell.
fn cell(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// Runs one `channel` subcommand.
///
/// # Errors
/// Connection failures and server errors (a refused definition with the
/// server's message, which names the filter position).
pub async fn run(cmd: ChannelCommand) -> Result<()> {
    match cmd {
        ChannelCommand::Create {
            name,
            channel_type,
            label,
            conn,
        } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let ch = c
                .create_channel(unary(
                    &conn,
                    admin::CreateChannelRequest {
                        full_name: name,
                        channel_type,
                        label,
                    },
                ))
                .await
                .map_err(|e| rpc_error("CreateChannel", e))?
                .into_inner();
            println!(
                "created {} channel {} ({}, id {}): its events go to {} once it has a member",
                ch.channel_type, ch.full_name, ch.label, ch.id, ch.topic_name
            );
        }
        ChannelCommand::Delete { name, conn } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let r = c
                .delete_channel(unary(
                    &conn,
                    admin::DeleteChannelRequest {
                        full_name: name.clone(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("DeleteChannel", e))?
                .into_inner();
            if r.deleted {
                println!("deleted channel {name} with its members and its topic");
            } else {
                println!("no channel named {name}");
            }
        }
        ChannelCommand::List { json, conn } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let list = c
                .list_channels(unary(&conn, admin::ListChannelsRequest {}))
                .await
                .map_err(|e| rpc_error("ListChannels", e))?
                .into_inner();
            if json {
                for ch in &list.channels {
                    println!("{}", channel_json(ch));
                }
            } else {
                println!(
                    "{:<32} {:<6} {:<32} {:<40} ID",
                    "CHANNEL", "TYPE", "LABEL", "TOPIC"
                );
                for ch in &list.channels {
                    println!(
                        "{:<32} {:<6} {:<32} {:<40} {}",
                        ch.full_name, ch.channel_type, ch.label, ch.topic_name, ch.id
                    );
                }
            }
        }
        ChannelCommand::Member(m) => member(m).await?,
    }
    Ok(())
}

async fn member(cmd: MemberCommand) -> Result<()> {
    match cmd {
        MemberCommand::Set {
            channel: name,
            entity,
            filter,
            enrich,
            name: developer_name,
            conn,
        } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let m = c
                .set_channel_member(unary(
                    &conn,
                    admin::SetChannelMemberRequest {
                        channel: name,
                        selected_entity: entity,
                        filter_expression: filter,
                        enriched_fields: enrich,
                        developer_name,
                    },
                ))
                .await
                .map_err(|e| rpc_error("SetChannelMember", e))?
                .into_inner();
            let filter = if m.filter_expression.is_empty() {
                "every event".to_owned()
            } else {
                format!("filter {}", m.filter_expression)
            };
            let enriched = if m.enriched_fields.is_empty() {
                String::new()
            } else {
                format!(", enriched with {}", m.enriched_fields.join(","))
            };
            println!(
                "{} carries {} ({filter}{enriched}) as member {}",
                m.channel, m.selected_entity, m.developer_name
            );
        }
        MemberCommand::Remove {
            channel: name,
            entity,
            conn,
        } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let r = c
                .delete_channel_member(unary(
                    &conn,
                    admin::DeleteChannelMemberRequest {
                        channel: name.clone(),
                        selected_entity: entity.clone(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("DeleteChannelMember", e))?
                .into_inner();
            if r.deleted {
                println!("removed {entity} from {name}");
            } else {
                println!("{name} has no member for {entity}");
            }
        }
        MemberCommand::List {
            channel: name,
            json,
            conn,
        } => {
            let mut c = ChannelsClient::new(channel(&conn).await?);
            let list = c
                .list_channel_members(unary(
                    &conn,
                    admin::ListChannelMembersRequest {
                        channel: name.unwrap_or_default(),
                    },
                ))
                .await
                .map_err(|e| rpc_error("ListChannelMembers", e))?
                .into_inner();
            if json {
                for m in &list.members {
                    println!("{}", member_json(m));
                }
            } else {
                println!(
                    "{:<32} {:<32} {:<40} {:<24} FILTER",
                    "CHANNEL", "ENTITY", "DEVELOPER NAME", "ENRICHED"
                );
                for m in &list.members {
                    println!(
                        "{:<32} {:<32} {:<40} {:<24} {}",
                        m.channel,
                        m.selected_entity,
                        m.developer_name,
                        cell(&m.enriched_fields.join(",")),
                        cell(&m.filter_expression)
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_every_field() {
        let m = admin::ChannelMember {
            id: "0v8".into(),
            developer_name: "Orders_chn_Order_Event_e".into(),
            channel: "Orders__chn".into(),
            selected_entity: "Order_Event__e".into(),
            filter_expression: "Amount__c > 1".into(),
            enriched_fields: vec![],
        };
        let v = member_json(&m);
        assert_eq!(v["filter_expression"], "Amount__c > 1");
        assert_eq!(v["enriched_fields"], json!([]));
        let c = channel_json(&admin::Channel {
            id: "0YL".into(),
            full_name: "Orders__chn".into(),
            channel_type: "event".into(),
            label: "Orders".into(),
            topic_name: "/event/Orders__chn".into(),
        });
        assert_eq!(c["topic"], "/event/Orders__chn");
        assert_eq!(cell(""), "-");
    }
}
