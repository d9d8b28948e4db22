//! eventbus-cdc, Change Data Capture: sObject records kept per tenant, the
//! change event each committed change publishes, and which objects publish
//! them.
//!
//! Depends on `eventbus-core` (types, the log contract and its record
//! store), `eventbus-schema` (Avro), `eventbus-objects` (the object model,
//! change event schemas and bitmaps) and `eventbus-broker` (topics and
//! publishing); the protocol layer (REST, the Admin API) sits above it.
//!
//! Owns: enabling objects on the standard `ChangeEvents` channel
//! ([`members`]), the record transaction path ([`records`]: validate,
//! store with compare-and-set, build and publish the change events of one
//! transaction), synthetic gap and overflow events ([`synthetic`]).
//! Must not: know the wire (HTTP, gRPC) or a storage engine, or encode Avro
//! itself (the objects and schema crates do).
//!
//! Consistency: a transaction's records are stored first (compare-and-set
//! on their revisions, so two processes on a shared log cannot both change
//! one record), then its change events are appended to each entity topic
//! and to `/data/ChangeEvents`. A failed append puts the records back and
//! fails the call, so nothing is acknowledged without its events. A crash
//! between the two steps can leave a record changed without its event (the
//! README's "Differences from Salesforce" says so); Salesforce sends a gap
//! event in that case.

pub mod error;
pub mod members;
pub mod project;
pub mod records;
mod store;
pub mod synthetic;
mod time;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eventbus_broker::Broker;
use eventbus_core::log::SharedLog;
use eventbus_core::types::TenantId;
use eventbus_objects::model::{ObjectCatalog, ObjectDef};
use eventbus_schema::ParsedSchema;

pub use error::CdcError;
pub use members::Member;
pub use records::RecordOp;

/// Settings of Change Data Capture.
#[derive(Clone, Debug)]
pub struct CdcConfig {
    /// The commit number of a tenant's first transaction; later ones count
    /// up from it. Salesforce's commit numbers can pass 2^53, which
    /// JavaScript numbers cannot hold exactly: start above it to meet that
    /// case locally.
    pub first_commit_number: u64,
}

impl Default for CdcConfig {
    fn default() -> Self {
        Self {
            first_commit_number: 1,
        }
    }
}

/// Who makes a change, as the change event's header tells it.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The org the records belong to.
    pub tenant: TenantId,
    /// `commitUser`, and the owner, creator and last modifier of records:
    /// an 18-character user id.
    pub user_id: String,
    /// `changeOrigin`: `com/salesforce/api/rest/62.0;client=…`.
    pub origin: String,
}

/// The Change Data Capture engine of one server.
pub struct Cdc {
    broker: Arc<Broker>,
    log: SharedLog,
    catalog: ObjectCatalog,
    schemas: HashMap<String, Arc<ParsedSchema>>,
    cfg: CdcConfig,
    /// Custom channels, for the data channels change events also go to.
    channels: Option<Arc<eventbus_channels::Channels>>,
    /// One lock per tenant: a tenant's transactions run one at a time in
    /// this process (other processes are kept apart by compare-and-set).
    locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Cdc {
    /// The engine over `broker` and its `log`, for the objects of
    /// `catalog`.
    ///
    /// # Errors
    /// [`CdcError::Internal`] when an object's change event schema does not
    /// parse (a bug in the object model).
    pub fn new(
        broker: Arc<Broker>,
        log: SharedLog,
        catalog: ObjectCatalog,
        cfg: CdcConfig,
        channels: Option<Arc<eventbus_channels::Channels>>,
    ) -> Result<Self, CdcError> {
        let mut schemas = HashMap::new();
        for obj in catalog.objects() {
            let json = eventbus_objects::schema::change_event_schema(obj);
            let parsed = ParsedSchema::parse(&json).map_err(|e| {
                CdcError::Internal(format!(
                    "the change event schema of {} does not parse: {e}",
                    obj.name
                ))
            })?;
            schemas.insert(obj.name.clone(), Arc::new(parsed));
        }
        Ok(Self {
            broker,
            log,
            catalog,
            schemas,
            cfg,
            channels,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The objects records can be kept of.
    pub fn catalog(&self) -> &ObjectCatalog {
        &self.catalog
    }

    /// The change event schema of `obj`.
    pub fn schema_of(&self, obj: &ObjectDef) -> Result<&Arc<ParsedSchema>, CdcError> {
        self.schemas
            .get(&obj.name)
            .ok_or_else(|| CdcError::Internal(format!("no change event schema for {}", obj.name)))
    }

    /// The object `name` (any case) names, or `NOT_FOUND`.
    ///
    /// # Errors
    /// [`CdcError::UnknownObject`].
    pub fn object(&self, name: &str) -> Result<&ObjectDef, CdcError> {
        self.catalog
            .get(name)
            .ok_or_else(|| CdcError::UnknownObject(name.to_owned()))
    }

    /// The lock that runs `tenant`'s transactions one at a time.
    fn tenant_lock(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(tenant.clone()).or_default().clone()
    }
}
#[cfg(test)]
mod tests;
