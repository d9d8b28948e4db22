//! `eventbus managed …`: managed subscriptions through the Admin API.

use anyhow::Result;
use serde_json::{Value, json};

use super::ManagedCommand;
use super::wire::{channel, hex, unary};
use crate::api::admin::pb as admin;
use crate::api::admin::pb::admin_client::AdminClient;
use crate::client::rpc_error;
use crate::types::{ManagedRef, ManagedReplay};

/// The reference a command-line argument names.
fn reference(s: &str) -> admin::ManagedSubscriptionRef {
    match ManagedRef::guess(s) {
        ManagedRef::Id(id) => admin::ManagedSubscriptionRef {
            id,
            ..Default::default()
        },
        ManagedRef::Name(developer_name) => admin::ManagedSubscriptionRef {
            developer_name,
            ..Default::default()
        },
    }
}

fn replay_pb(r: ManagedReplay) -> i32 {
    match r {
        ManagedReplay::Latest => admin::ManagedReplay::Latest as i32,
        ManagedReplay::Earliest => admin::ManagedReplay::Earliest as i32,
    }
}

fn replay_name(v: i32) -> &'static str {
    admin::ManagedReplay::try_from(v).map_or("?", |r| r.as_str_name())
}

fn state_name(v: i32) -> &'static str {
    admin::ManagedState::try_from(v).map_or("?", |s| s.as_str_name())
}

fn describe_json(m: &admin::ManagedSubscription) -> Value {
    let opt_hex = |b: &[u8]| {
        if b.is_empty() {
            Value::Null
        } else {
            json!(hex(b))
        }
    };
    json!({
        "id": m.id,
        "developer_name": m.developer_name,
        "topic": m.topic_name,
        "state": state_name(m.state),
        "default_replay": replay_name(m.default_replay),
        "error_recovery_replay": replay_name(m.error_recovery_replay),
        "committed_replay_id": opt_hex(&m.committed_replay_id),
        "committed_ms": if m.committed_ms == 0 { Value::Null } else { json!(m.committed_ms) },
        "latest_replay_id": opt_hex(&m.latest_replay_id),
        "lag": m.lag,
        "active": m.active,
        "created_ms": m.created_ms,
        "updated_ms": m.updated_ms,
    })
}

fn print_one(m: &admin::ManagedSubscription, as_json: bool) {
    let v = describe_json(m);
    if as_json {
        println!("{v}");
        return;
    }
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            let shown = match v {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k:<22} {shown}");
        }
    }
}

/// Runs one `managed` subcommand.
///
/// # Errors
/// Connection failures and server errors, with their error code.
pub async fn run(cmd: ManagedCommand) -> Result<()> {
    match cmd {
        ManagedCommand::Create {
            name,
            topic,
            default_replay,
            error_recovery_replay,
            stopped,
            conn,
        } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let state = if stopped {
                admin::ManagedState::Stop
            } else {
                admin::ManagedState::Run
            };
            let m = admin
                .create_managed_subscription(unary(
                    &conn,
                    admin::CreateManagedSubscriptionRequest {
                        developer_name: name,
                        topic_name: topic,
                        default_replay: replay_pb(default_replay),
                        error_recovery_replay: replay_pb(error_recovery_replay),
                        state: state as i32,
                    },
                ))
                .await
                .map_err(|e| rpc_error("CreateManagedSubscription", e))?
                .into_inner();
            println!(
                "created managed subscription {} ({}) on {}, state {}",
                m.developer_name,
                m.id,
                m.topic_name,
                state_name(m.state)
            );
        }
        ManagedCommand::List { json, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let list = admin
                .list_managed_subscriptions(unary(&conn, admin::ListManagedSubscriptionsRequest {}))
                .await
                .map_err(|e| rpc_error("ListManagedSubscriptions", e))?
                .into_inner();
            if json {
                for m in &list.subscriptions {
                    println!("{}", describe_json(m));
                }
            } else {
                println!(
                    "{:<18} {:<30} {:<32} {:<5} {:>10} {:<6}",
                    "ID", "DEVELOPER NAME", "TOPIC", "STATE", "LAG", "ACTIVE"
                );
                for m in &list.subscriptions {
                    println!(
                        "{:<18} {:<30} {:<32} {:<5} {:>10} {:<6}",
                        m.id,
                        m.developer_name,
                        m.topic_name,
                        state_name(m.state),
                        m.lag.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                        if m.active { "yes" } else { "no" }
                    );
                }
            }
        }
        ManagedCommand::Describe {
            subscription,
            json,
            conn,
        } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let m = admin
                .describe_managed_subscription(unary(&conn, reference(&subscription)))
                .await
                .map_err(|e| rpc_error("DescribeManagedSubscription", e))?
                .into_inner();
            print_one(&m, json);
        }
        ManagedCommand::Start { subscription, conn } => {
            set_state(&subscription, &conn, admin::ManagedState::Run).await?;
        }
        ManagedCommand::Stop { subscription, conn } => {
            set_state(&subscription, &conn, admin::ManagedState::Stop).await?;
        }
        ManagedCommand::Update {
            subscription,
            default_replay,
            error_recovery_replay,
            conn,
        } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let m = admin
                .update_managed_subscription(unary(
                    &conn,
                    admin::UpdateManagedSubscriptionRequest {
                        subscription: Some(reference(&subscription)),
                        state: None,
                        default_replay: default_replay.map(replay_pb),
                        error_recovery_replay: error_recovery_replay.map(replay_pb),
                    },
                ))
                .await
                .map_err(|e| rpc_error("UpdateManagedSubscription", e))?
                .into_inner();
            print_one(&m, false);
        }
        ManagedCommand::Delete { subscription, conn } => {
            let mut admin = AdminClient::new(channel(&conn).await?);
            let m = admin
                .delete_managed_subscription(unary(&conn, reference(&subscription)))
                .await
                .map_err(|e| rpc_error("DeleteManagedSubscription", e))?
                .into_inner();
            println!(
                "deleted managed subscription {} ({})",
                m.developer_name, m.id
            );
        }
    }
    Ok(())
}

async fn set_state(
    subscription: &str,
    conn: &super::ConnArgs,
    state: admin::ManagedState,
) -> Result<()> {
    let mut admin = AdminClient::new(channel(conn).await?);
    let m = admin
        .update_managed_subscription(unary(
            conn,
            admin::UpdateManagedSubscriptionRequest {
                subscription: Some(reference(subscription)),
                state: Some(state as i32),
                default_replay: None,
                error_recovery_replay: None,
            },
        ))
        .await
        .map_err(|e| rpc_error("UpdateManagedSubscription", e))?
        .into_inner();
    println!(
        "managed subscription {} ({}) is now {}",
        m.developer_name,
        m.id,
        state_name(m.state)
    );
    Ok(())
}
