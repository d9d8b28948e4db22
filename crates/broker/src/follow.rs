//! Following a shared log's catalog: topics, schemas and managed
//! subscriptions created, changed or deleted by other eventbus processes
//! show up here without a restart.
//!
//! Owns: applying [`CatalogChange`]s to the engine's in-memory tables, and
//! reloading the whole catalog when the change stream fell behind.
//! Must not: write to the log (the process that made a change wrote it).
//!
//! Every change is applied as an upsert, so a process's own changes, which
//! it sees too, change nothing.

use std::sync::Weak;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Broker, BrokerError, Topic};
use crate::log::CatalogChange;
use crate::schema::ParsedSchema;
use crate::types::SchemaId;

/// Applies `changes` to the broker until it is dropped or the log closes.
pub(super) async fn follow(broker: Weak<Broker>, mut changes: broadcast::Receiver<CatalogChange>) {
    loop {
        let next = changes.recv().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let applied = match next {
            Ok(change) => broker.apply(change).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "fell behind the catalog changes; reloading the catalog"
                );
                broker.resync().await
            }
            Err(RecvError::Closed) => return,
        };
        if let Err(e) = applied {
            tracing::warn!(error = %e, "could not apply a catalog change");
        }
    }
}

impl Broker {
    /// Applies one change made by any process on the log.
    async fn apply(&self, change: CatalogChange) -> Result<(), BrokerError> {
        match change {
            CatalogChange::Topic(rec) => {
                let owner = super::owner_of_topic(&rec.name);
                for id in &rec.schema_ids {
                    self.learn_schema(&owner, &SchemaId::new(id.as_str()))
                        .await?;
                }
                let topic = Topic::from_record(rec)?;
                let same = self.lookup(topic.name.as_str()).is_some_and(|t| {
                    t.id == topic.id
                        && t.schema_ids == topic.schema_ids
                        && t.retention == topic.retention
                });
                if !same {
                    self.log.register_topic(topic.id).await?;
                    tracing::info!(topic = %topic.name, "topic changed by another process");
                    self.install(topic);
                }
            }
            CatalogChange::TopicDeleted(name) => {
                // Changes arrive in order: a topic deleted and created again
                // is removed here and installed by the change that follows.
                let removed = self
                    .topics
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                if removed.is_some() {
                    tracing::info!(topic = %name, "topic deleted by another process");
                }
            }
            CatalogChange::Schema(rec) => {
                let known = match &rec.tenant {
                    Some(t) => self.schemas.text(t, &rec.id).is_some(),
                    None => self.schemas.get(&rec.id).is_some(),
                };
                if !known {
                    let parsed = ParsedSchema::parse(&rec.json).map_err(|e| {
                        BrokerError::Provision(format!(
                            "stored schema {} does not parse: {e}",
                            rec.id
                        ))
                    })?;
                    self.schemas.insert(rec.tenant.as_ref(), parsed);
                }
            }
            CatalogChange::Managed(rec) => self.managed_changed(rec),
            CatalogChange::ManagedDeleted(id) => self.managed_deleted(&id),
        }
        Ok(())
    }

    /// Reloads the catalog and applies it whole: what a watcher that fell
    /// behind does.
    async fn resync(&self) -> Result<(), BrokerError> {
        let catalog = self.log.load_catalog().await?;
        let names: std::collections::HashSet<String> =
            catalog.topics.iter().map(|t| t.name.clone()).collect();
        for rec in catalog.topics {
            self.apply(CatalogChange::Topic(rec)).await?;
        }
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(name));
        self.managed_resync(catalog.managed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Two brokers on one shared in-memory log: two eventbus processes on
    //! one shared log, as far as the engine can tell.
    //!
    //! The follower applies changes in the background: the tests poll
    //! with [`eventually`].

    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{Broker, BrokerConfig, ManagedChange, ManagedRef, NewManaged};
    use crate::log::SharedLog;
    use crate::log::memory::MemoryTopicLog;
    use crate::testing::{eventually, open, topic};
    use crate::types::{ManagedReplay, ManagedState};

    const TENANT: &str = "00D000000000000EAA";

    async fn pair() -> (Arc<Broker>, Arc<Broker>) {
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        (
            open(log.clone(), BrokerConfig::default()).await,
            open(log, BrokerConfig::default()).await,
        )
    }

    #[tokio::test]
    async fn a_topic_created_on_one_is_usable_on_the_other_with_a_fresh_id() {
        let (a, b) = pair().await;
        topic(&a, "/event/A__e").await;
        eventually("b knows the topic", || b.topic("/event/A__e").is_ok()).await;
        let on_b = b.topic("/event/A__e").expect("topic");
        assert_eq!(
            on_b.schema_ids,
            a.topic("/event/A__e").expect("topic").schema_ids
        );
        assert!(
            b.schema(on_b.current_schema().as_str()).is_ok(),
            "the schema came along"
        );
        // B creates another: the ids never collide.
        topic(&b, "/event/B__e").await;
        eventually("a knows b's topic", || a.topic("/event/B__e").is_ok()).await;
        assert_ne!(
            a.topic("/event/A__e").expect("a").id,
            a.topic("/event/B__e").expect("b").id
        );
        a.delete_topic("/event/A__e").await.expect("delete");
        eventually("b forgets the topic", || b.topic("/event/A__e").is_err()).await;
    }

    #[tokio::test]
    async fn two_processes_provisioning_one_topic_at_once_agree_on_it() {
        let (a, b) = pair().await;
        let (ra, rb) = tokio::join!(topic(&a, "/event/A__e"), topic(&b, "/event/A__e"));
        let _ = (ra, rb);
        let (ta, tb) = (
            a.topic("/event/A__e").expect("a"),
            b.topic("/event/A__e").expect("b"),
        );
        assert_eq!(ta.id, tb.id, "one topic, one id");
    }

    #[tokio::test]
    async fn two_processes_creating_one_developer_name_at_once_make_one_subscription() {
        let (a, b) = pair().await;
        topic(&a, "/event/A__e").await;
        eventually("b knows the topic", || b.topic("/event/A__e").is_ok()).await;
        let def = || NewManaged {
            developer_name: "Once".into(),
            topic: "/event/A__e".into(),
            default_replay: ManagedReplay::Latest,
            error_recovery_replay: ManagedReplay::Latest,
            state: ManagedState::Run,
        };
        let (ra, rb) = tokio::join!(
            a.create_managed(TENANT, def()),
            b.create_managed(TENANT, def())
        );
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "exactly one creation succeeds: {:?} {:?}",
            ra.map(|v| v.record.id),
            rb.map(|v| v.record.id)
        );
    }

    #[tokio::test]
    async fn a_managed_subscription_is_exclusive_across_processes() {
        let (a, b) = pair().await;
        topic(&a, "/event/A__e").await;
        eventually("b knows the topic", || b.topic("/event/A__e").is_ok()).await;
        a.create_managed(
            TENANT,
            NewManaged {
                developer_name: "Shared".into(),
                topic: "/event/A__e".into(),
                default_replay: ManagedReplay::Earliest,
                error_recovery_replay: ManagedReplay::Earliest,
                state: ManagedState::Run,
            },
        )
        .await
        .expect("create");
        let name = ManagedRef::Name("Shared".into());
        eventually("b knows the subscription", || {
            b.describe_managed(TENANT, &name).is_ok()
        })
        .await;

        let held = a.open_managed(TENANT, &name).await.expect("a opens");
        match b.open_managed(TENANT, &name).await {
            Err(super::super::BrokerError::ManagedAlreadyActive) => {}
            Err(e) => panic!("expected already active, got {e}"),
            Ok(_) => panic!("two streams on one managed subscription"),
        }
        // A commit on A is what B resumes from.
        let published = a
            .publish(
                "/event/A__e",
                vec![super::super::PublishEvent {
                    id: String::new(),
                    schema_id: a
                        .topic("/event/A__e")
                        .expect("t")
                        .current_schema()
                        .to_string(),
                    payload: bytes::Bytes::from_static(&[2]),
                    headers: Vec::new(),
                }],
            )
            .await
            .expect("publish");
        let offset = published.outcomes[0].result.as_ref().expect("ok").offset();
        let mut session = held.session;
        let answers = session
            .commit(
                vec![super::super::CommitRequest {
                    request_id: "c".into(),
                    replay_id: crate::types::ReplayId::from(offset).to_bytes().to_vec(),
                    received_ms: 1,
                }],
                offset,
            )
            .await;
        assert!(answers[0].error.is_none(), "{answers:?}");
        drop(session);
        eventually("b sees the commit", || {
            b.describe_managed(TENANT, &name)
                .is_ok_and(|v| v.committed == Some(offset))
        })
        .await;
        let on_b = b
            .open_managed(TENANT, &name)
            .await
            .expect("b opens once a let go");
        assert_eq!(
            on_b.subscription.cursor(),
            crate::types::ReplayId::from(offset)
        );

        // STOP through A ends B's stream.
        let ending = on_b.session.ending();
        a.update_managed(
            TENANT,
            &name,
            ManagedChange {
                state: Some(ManagedState::Stop),
                ..ManagedChange::default()
            },
        )
        .await
        .expect("stop");
        tokio::time::timeout(Duration::from_secs(10), ending.cancelled())
            .await
            .expect("b's stream ends");
        assert!(matches!(
            on_b.session.end_reason(),
            super::super::BrokerError::ManagedStopped(_)
        ));
        drop(on_b);
        assert!(matches!(
            b.open_managed(TENANT, &name).await.map(|_| ()),
            Err(super::super::BrokerError::ManagedStopped(_))
        ));
    }
}
