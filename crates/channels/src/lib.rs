//! eventbus-channels, custom channels as Salesforce models them: a
//! `PlatformEventChannel` (`X__chn`, type `event` or `data`) is a stream of
//! its own, and each `PlatformEventChannelMember` selects an entity (a
//! platform event, or an object's change events) with an optional filter
//! expression and, for change events, enriched fields.
//!
//! Depends on `eventbus-core` (the record store), `eventbus-schema`,
//! `eventbus-objects` (change event entities and their fields),
//! `eventbus-filter` (the filter language) and `eventbus-broker` (topics,
//! the router hook). Change Data Capture (`eventbus-cdc`) uses it for
//! `data` channels; the protocol layer (Tooling REST, the Admin API) and DX
//! provisioning define channels through it.
//!
//! Owns: the definitions and their validation ([`defs`], [`model`],
//! [`error`]), their storage in
//! the record store ([`store`]), the field lists filters are checked
//! against ([`fields`]), and routing ([`routes`]): platform events to
//! `event` channels as the broker's [`eventbus_broker::Router`], and the
//! routes of an entity's change events for the CDC engine.
//! Must not: know the wire or a storage engine, or evaluate change events
//! itself (the CDC engine has the record states that filters and enrichment
//! need).
//!
//! A channel's topic is `/event/X__chn` or `/data/X__chn`. It is created with
//! the first member (it needs a schema) and carries the schema of every
//! member's entity; deleting the channel deletes its members and its topic.
//! Definitions are stored per org in the record store, so every server on
//! a shared log sees them; each server re-reads an org's definitions at
//! most [`RELOAD_AFTER`] after another server changed them (at once after a
//! change through itself).

pub mod defs;
pub mod error;
pub mod fields;
pub mod model;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventbus_broker::Broker;
use eventbus_core::log::SharedLog;
use eventbus_core::types::TenantId;
use eventbus_objects::model::ObjectCatalog;

pub use error::ChannelError;
pub use eventbus_filter::ChannelKind;
pub use model::{ChannelView, MemberSpec, MemberView, kind_name, parse_kind};
pub use routes::DataRoute;

/// How long a server serves an org's channel definitions before reading
/// them again (changes made through another server on a shared log).
pub const RELOAD_AFTER: Duration = Duration::from_secs(1);

/// The custom channels of one server.
pub struct Channels {
    broker: Arc<Broker>,
    log: SharedLog,
    objects: ObjectCatalog,
    cache: Mutex<HashMap<TenantId, Arc<routes::TenantRoutes>>>,
}

impl Channels {
    /// Channels over `broker` and its `log`; `objects` are the entities of
    /// `data` channels.
    pub fn new(broker: Arc<Broker>, log: SharedLog, objects: ObjectCatalog) -> Arc<Self> {
        Arc::new(Self {
            broker,
            log,
            objects,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Reads `tenant`'s routes again after a change through this server,
    /// and lists the org among those with channels (the index every server
    /// loads at startup).
    async fn changed(&self, tenant: &TenantId) -> Result<(), ChannelError> {
        self.index(tenant).await?;
        self.reload(tenant).await?;
        Ok(())
    }

    /// Loads the routes of every org with channels, then reads them again
    /// every [`RELOAD_AFTER`] (changes made through other servers on a
    /// shared log) until `stop`.
    pub async fn run_reload(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            match self.indexed_tenants().await {
                Ok(tenants) => {
                    for t in tenants {
                        if let Err(e) = self.reload(&t).await {
                            tracing::warn!(tenant = %t, error = %e, "channel definitions could not be read");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the orgs with channels could not be listed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RELOAD_AFTER) => {}
            }
        }
    }

    /// Loads the routes of every org with channels once (startup, before
    /// serving).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn load_all(&self) -> Result<(), ChannelError> {
        for t in self.indexed_tenants().await? {
            self.reload(&t).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
