//! Where a published event goes besides its own topic: the derived topics
//! (custom channels) a [`Router`] names, appended in the same atomic step as
//! the source ([`crate::log::EventLog::append_many`]), and publishes that
//! span several topics at once ([`Broker::publish_many`]).
//!
//! Owns: the router hook and the all-or-nothing multi-topic publish.
//! Must not: know what a channel or a filter is (the router does).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::publisher::{PublishEvent, PublishReceipt};
use super::{Broker, BrokerError, Topic};
use crate::log::NewEvent;
use crate::types::ReplayId;

/// Events derived from a publish, for one topic.
#[derive(Clone, Debug)]
pub struct Route {
    /// The derived topic (a channel).
    pub topic: Arc<Topic>,
    /// Its events, in source order.
    pub events: Vec<NewEvent>,
}

/// Decides which derived topics an event published to `source` goes to.
pub trait Router: Send + Sync + 'static {
    /// The derived events of `events` (already validated, ids assigned),
    /// published to `source`. An empty list when none.
    ///
    /// # Errors
    /// A failure that must fail the publish (nothing is appended).
    fn route<'a>(
        &'a self,
        source: &'a Topic,
        events: &'a [NewEvent],
    ) -> BoxFuture<'a, Result<Vec<Route>, BrokerError>>;
}

impl Broker {
    /// Installs the router every later publish consults. The broker keeps
    /// only a weak reference: the caller keeps the router alive (it holds
    /// the broker, and a strong cycle would keep the log open after
    /// shutdown).
    pub fn set_router(&self, router: &Arc<dyn Router>) {
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(router));
    }

    /// The derived events of a publish to `topic`, none without a router.
    pub(crate) async fn routes(
        &self,
        topic: &Topic,
        events: &[NewEvent],
    ) -> Result<Vec<Route>, BrokerError> {
        let router = self
            .router
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(std::sync::Weak::upgrade);
        match router {
            Some(r) => r.route(topic, events).await,
            None => Ok(Vec::new()),
        }
    }

    /// Publishes to several topics in one atomic step: every valid event of
    /// every part is stored, or (on a storage failure) none is. Invalid
    /// events get their own error outcome, as with [`Broker::publish`]. No
    /// router is consulted: the caller names every topic.
    ///
    /// # Errors
    /// Failures of the request as a whole: a blank, malformed or unknown
    /// topic, the same topic twice, a storage failure.
    pub async fn publish_many(
        &self,
        parts: Vec<(String, Vec<PublishEvent>)>,
    ) -> Result<Vec<PublishReceipt>, BrokerError> {
        let mut topics = Vec::with_capacity(parts.len());
        let mut log_parts = Vec::with_capacity(parts.len());
        let mut receipts = Vec::with_capacity(parts.len());
        let mut slots_of = Vec::with_capacity(parts.len());
        for (name, events) in parts {
            let topic = self.topic(&name)?;
            if topics.iter().any(|t: &Arc<Topic>| t.id == topic.id) {
                return Err(BrokerError::TopicNameInvalid(format!(
                    "{name} is named twice in one publish"
                )));
            }
            let super::publisher::Checked {
                outcomes,
                valid,
                slots,
            } = self.check_all(&topic, events);
            log_parts.push((topic.id, valid));
            receipts.push(PublishReceipt {
                schema_id: topic.current_schema().clone(),
                outcomes,
            });
            slots_of.push(slots);
            topics.push(topic);
        }
        let counted: usize = log_parts.iter().map(|(_, e)| e.len()).sum();
        let offsets = self.log().append_many(log_parts).await?;
        self.count(&self.stats().events_published, counted);
        for (((receipt, slots), offsets), topic) in
            receipts.iter_mut().zip(slots_of).zip(offsets).zip(&topics)
        {
            self.usage
                .published(&super::owner_of_topic(topic.name.as_str()), offsets.len());
            let label = self.metrics().topic_label(topic.name.as_str());
            self.metrics()
                .publish_events
                .get_or_create(&label)
                .inc_by(offsets.len() as u64);
            for (slot, offset) in slots.into_iter().zip(offsets) {
                receipt.outcomes[slot].result = Ok(ReplayId::from(offset));
            }
        }
        Ok(receipts)
    }
}
