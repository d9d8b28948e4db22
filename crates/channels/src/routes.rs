//! Routing: which channels an event goes to. Platform events are routed by
//! the broker through [`Channels`]'s [`Router`]; change events by the CDC
//! engine, which asks for an entity's [`DataRoute`]s and evaluates them
//! against the record (filters see the record after the change, enriched
//! fields come from it).
//!
//! Owns: the per-org route table (members with their filters bound),
//! reloading it, and the event-channel router. Must not: change
//! definitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::Value;

use eventbus_broker::{BrokerError, Route, Router, Topic};
use eventbus_core::log::NewEvent;
use eventbus_core::types::TenantId;
use eventbus_filter::{Bound, ChannelKind, Fields};
use eventbus_schema::ParsedSchema;

use super::error::ChannelError;
use super::fields::{EventFields, ObjectFields};
use super::model::{channel_topic, stored};
use super::{Channels, RELOAD_AFTER};

/// Parses `text` and binds it to `fields`.
///
/// # Errors
/// [`ChannelError::Invalid`] naming the position and the reason.
pub(crate) fn bind(
    text: &str,
    fields: &dyn Fields,
    kind: ChannelKind,
) -> Result<Bound, ChannelError> {
    let invalid = |e: eventbus_filter::FilterError| ChannelError::Invalid {
        code: "FIELD_INTEGRITY_EXCEPTION",
        message: format!("filterExpression: {e}"),
    };
    eventbus_filter::parse(text)
        .map_err(invalid)?
        .bind(fields, kind)
        .map_err(invalid)
}

/// One `event` channel a platform event topic feeds.
struct EventRoute {
    /// The channel topic, stored name.
    topic: String,
    filter: Option<Bound>,
}

/// One `data` channel an entity's change events feed.
#[derive(Clone, Debug)]
pub struct DataRoute {
    /// `Sales__chn`.
    pub channel: String,
    /// The channel topic, stored name.
    pub topic: String,
    /// The member's filter, bound to the entity's fields.
    pub filter: Option<Bound>,
    /// Fields sent with UPDATE and DELETE events even when unchanged: the
    /// member's enriched fields and the simple fields its filter names.
    pub enriched: Vec<String>,
}

/// An org's routes, as loaded at one moment.
pub(crate) struct TenantRoutes {
    loaded: Instant,
    /// By the source topic's stored name.
    event: HashMap<String, Vec<EventRoute>>,
    /// By change event entity (`AccountChangeEvent`).
    data: HashMap<String, Vec<DataRoute>>,
}

impl Channels {
    /// Reads `tenant`'s definitions and replaces its routes (the publish
    /// path only ever reads them, never waits for storage).
    pub(crate) async fn reload(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<TenantRoutes>, ChannelError> {
        let routes = Arc::new(self.load_routes(tenant).await?);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), routes.clone());
        Ok(routes)
    }

    /// `tenant`'s routes as last loaded, if they were.
    fn routes_now(&self, tenant: &TenantId) -> Option<Arc<TenantRoutes>> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    /// `tenant`'s routes: as loaded, or read now (the CDC engine's path,
    /// which may wait).
    async fn routes_of(&self, tenant: &TenantId) -> Result<Arc<TenantRoutes>, ChannelError> {
        match self.routes_now(tenant) {
            Some(r) if r.loaded.elapsed() < RELOAD_AFTER * 2 => Ok(r),
            _ => self.reload(tenant).await,
        }
    }

    /// Reads `tenant`'s definitions into routes.
    async fn load_routes(&self, tenant: &TenantId) -> Result<TenantRoutes, ChannelError> {
        let loaded = Instant::now();
        let channels: HashMap<String, ChannelKind> = self
            .load_channels(tenant)
            .await?
            .into_iter()
            .map(|(c, _)| (c.full_name, c.kind))
            .collect();
        let mut event: HashMap<String, Vec<EventRoute>> = HashMap::new();
        let mut data: HashMap<String, Vec<DataRoute>> = HashMap::new();
        for (m, _) in self.load_members(tenant, None).await? {
            let Some(kind) = channels.get(&m.channel).copied() else {
                continue;
            };
            let topic = stored(tenant, &channel_topic(kind, &m.channel))?
                .as_str()
                .to_owned();
            match kind {
                ChannelKind::Event => {
                    let source = stored(tenant, &format!("/event/{}", m.selected_entity))?;
                    let filter = match &m.filter_expression {
                        None => None,
                        Some(f) => {
                            let Ok(t) = self.broker.topic(source.as_str()) else {
                                continue;
                            };
                            let text = self
                                .broker
                                .schema_text(tenant, t.current_schema().as_str())?;
                            let fields = EventFields::new(&m.selected_entity, &text);
                            match bind(f, &fields, kind) {
                                Ok(b) => Some(b),
                                Err(e) => {
                                    // The event's schema changed under the
                                    // filter: nothing matches until fixed.
                                    tracing::warn!(member = %m.developer_name, error = %e, "channel member filter no longer binds; it routes nothing");
                                    continue;
                                }
                            }
                        }
                    };
                    event
                        .entry(source.as_str().to_owned())
                        .or_default()
                        .push(EventRoute { topic, filter });
                }
                ChannelKind::Data => {
                    let Some(obj) = self.objects.by_change_event(&m.selected_entity) else {
                        continue;
                    };
                    let fields = ObjectFields::new(obj);
                    let mut enriched = m.enriched_fields.clone();
                    let filter = match &m.filter_expression {
                        None => None,
                        Some(f) => match bind(f, &fields, kind) {
                            Ok(b) => {
                                // Filtered fields are enriched (Salesforce
                                // sends them even when unchanged).
                                if let Ok(parsed) = eventbus_filter::parse(f) {
                                    for path in parsed.fields() {
                                        if !path.contains('.')
                                            && !enriched
                                                .iter()
                                                .any(|e| e.eq_ignore_ascii_case(&path))
                                            && fields.check_enriched(&path).is_ok()
                                        {
                                            enriched.push(path);
                                        }
                                    }
                                }
                                Some(b)
                            }
                            Err(e) => {
                                tracing::warn!(member = %m.developer_name, error = %e, "channel member filter no longer binds; it routes nothing");
                                continue;
                            }
                        },
                    };
                    data.entry(obj.change_event_name())
                        .or_default()
                        .push(DataRoute {
                            channel: m.channel.clone(),
                            topic,
                            filter,
                            enriched,
                        });
                }
            }
        }
        Ok(TenantRoutes {
            loaded,
            event,
            data,
        })
    }

    /// The `data` channels `tenant`'s change events of `entity`
    /// (`AccountChangeEvent`) go to, when their filters pass.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn data_routes(
        &self,
        tenant: &TenantId,
        entity: &str,
    ) -> Result<Vec<DataRoute>, ChannelError> {
        Ok(self
            .routes_of(tenant)
            .await?
            .data
            .get(entity)
            .cloned()
            .unwrap_or_default())
    }

    /// Makes sure the channel topic `topic` (stored name) carries `schema`.
    ///
    /// # Errors
    /// Topic failures.
    pub async fn ensure_schema(
        &self,
        topic: &str,
        schema: &ParsedSchema,
    ) -> Result<Arc<Topic>, BrokerError> {
        let t = self.broker.topic(topic)?;
        if t.schema_ids.contains(schema.id()) {
            return Ok(t);
        }
        let name = t.name.clone();
        let again = ParsedSchema::parse(schema.json())
            .map_err(|e| BrokerError::SchemaInvalid(e.to_string()))?;
        self.broker.add_schema(&name, again).await?;
        self.broker.topic(topic)
    }

    async fn route_events(
        &self,
        source: &Topic,
        events: &[NewEvent],
    ) -> Result<Vec<Route>, BrokerError> {
        // Only what is loaded: publishes of one stream must reach the log in
        // the order they came, so this path never waits for storage (the
        // routes are loaded at startup, on every change through this server,
        // and every RELOAD_AFTER by `run_reload`).
        let Some(routes) = self.routes_now(&source.owner()) else {
            return Ok(Vec::new());
        };
        let Some(list) = routes.event.get(source.name.as_str()) else {
            return Ok(Vec::new());
        };
        // Each event decoded once, and only when some route filters.
        let mut decoded: Vec<Option<Value>> = vec![None; events.len()];
        let mut out = Vec::with_capacity(list.len());
        for route in list {
            let mut chosen = Vec::new();
            for (i, ev) in events.iter().enumerate() {
                let pass = match &route.filter {
                    None => true,
                    Some(f) => {
                        if decoded[i].is_none() {
                            let schema = self.broker.schema(ev.schema_id.as_str())?;
                            decoded[i] = Some(schema.decode_to_json(&ev.payload).map_err(|e| {
                                BrokerError::Provision(format!(
                                    "a published event does not decode: {e}"
                                ))
                            })?);
                        }
                        decoded[i].as_ref().is_some_and(|v| f.matches(v))
                    }
                };
                if pass {
                    chosen.push(ev.clone());
                }
            }
            if chosen.is_empty() {
                continue;
            }
            let mut topic = match self.broker.topic(&route.topic) {
                Ok(t) => t,
                // The channel's topic was deleted meanwhile.
                Err(BrokerError::TopicNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            for ev in &chosen {
                if !topic.schema_ids.contains(&ev.schema_id) {
                    let schema = self.broker.schema(ev.schema_id.as_str())?;
                    topic = self.ensure_schema(&route.topic, &schema).await?;
                }
            }
            out.push(Route {
                topic,
                events: chosen,
            });
        }
        Ok(out)
    }
}

impl Router for Channels {
    fn route<'a>(
        &'a self,
        source: &'a Topic,
        events: &'a [NewEvent],
    ) -> BoxFuture<'a, Result<Vec<Route>, BrokerError>> {
        Box::pin(self.route_events(source, events))
    }
}
