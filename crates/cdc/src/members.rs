//! Which objects publish change events: members of the standard
//! `ChangeEvents` channel, per tenant, as Salesforce models them
//! (`PlatformEventChannelMember` with `eventChannel` `ChangeEvents` and a
//! `selectedEntity` such as `AccountChangeEvent`).
//!
//! Owns: enabling and disabling an object, the members list, the topics an
//! enabled object publishes to (`/data/AccountChangeEvent` and the
//! multi-entity `/data/ChangeEvents`, which carries every entity's schema),
//! and members read from a DX project at startup.
//! Must not: touch records.
//!
//! A member is stored in the record store under `cdc.member.<Entity>`, so
//! every process on a shared log sees the same members. Disabling keeps the
//! topics and their events (subscribers can still replay them); only new
//! changes stop publishing, as in Salesforce.

use bytes::Bytes;
use serde_json::{Value, json};

use eventbus_broker::provision::stored_name;
use eventbus_core::types::{TenantId, TopicName};
use eventbus_objects::dx::ChannelMember;
use eventbus_objects::model::ObjectDef;

use super::{Cdc, CdcError};

/// The standard channel every change event entity is a member of.
pub const STANDARD_CHANNEL: &str = "ChangeEvents";

/// The multi-entity topic of the standard channel.
pub const MULTI_ENTITY_TOPIC: &str = "/data/ChangeEvents";

const MEMBER_PREFIX: &str = "cdc.member.";

/// An object enabled for Change Data Capture in one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `ChangeEvents_AccountChangeEvent`, as a DX project names the file.
    pub developer_name: String,
    /// Always [`STANDARD_CHANNEL`] for now.
    pub event_channel: String,
    /// `AccountChangeEvent`.
    pub selected_entity: String,
    /// `Account`.
    pub object: String,
    /// `/data/AccountChangeEvent` (the tenant's name for it).
    pub topic: String,
    /// The current change event schema id of the object.
    pub schema_id: String,
}

impl Cdc {
    /// The object a name given to enable or disable means: an object name
    /// (`Account`, `Employee__c`) or its change event entity
    /// (`AccountChangeEvent`, `Employee__ChangeEvent`), any case.
    ///
    /// # Errors
    /// [`CdcError::UnknownObject`].
    pub fn resolve_entity(&self, name: &str) -> Result<&ObjectDef, CdcError> {
        let name = name.trim();
        self.catalog
            .get(name)
            .or_else(|| self.catalog.by_change_event(name))
            .ok_or_else(|| CdcError::UnknownObject(name.to_owned()))
    }

    fn member_of(&self, obj: &ObjectDef) -> Result<Member, CdcError> {
        let entity = obj.change_event_name();
        Ok(Member {
            developer_name: format!("{STANDARD_CHANNEL}_{entity}"),
            event_channel: STANDARD_CHANNEL.to_owned(),
            selected_entity: entity,
            object: obj.name.clone(),
            topic: obj.change_event_topic(),
            schema_id: self.schema_of(obj)?.id().as_str().to_owned(),
        })
    }

    /// Makes sure `tenant`'s topics of `obj` exist and carry its current
    /// change event schema: the entity topic (a new compatible version when
    /// the object gained fields) and `/data/ChangeEvents` (one more schema).
    pub(crate) async fn ensure_topics(
        &self,
        tenant: &TenantId,
        obj: &ObjectDef,
    ) -> Result<(TopicName, TopicName), CdcError> {
        let schema = self.schema_of(obj)?;
        let entity = stored(tenant, &obj.change_event_topic())?;
        let multi = stored(tenant, MULTI_ENTITY_TOPIC)?;
        let has = |name: &TopicName| {
            self.broker
                .topic(name.as_str())
                .is_ok_and(|t| t.schema_ids.contains(schema.id()))
        };
        if !has(&entity) {
            let current = self
                .broker
                .topic(entity.as_str())
                .is_ok_and(|t| t.current_schema() == schema.id());
            if !current {
                self.broker
                    .provision(&entity, reparse(schema.json())?)
                    .await?;
            }
        }
        if !has(&multi) {
            self.broker
                .add_schema(&multi, reparse(schema.json())?)
                .await?;
        }
        Ok((entity, multi))
    }

    /// Enables Change Data Capture for the object `name` means (see
    /// [`Cdc::resolve_entity`]) in `tenant`: its topics are created, and
    /// changes of its records publish from now on. Enabling an enabled
    /// object changes nothing.
    ///
    /// # Errors
    /// [`CdcError::UnknownObject`]; topic and storage failures.
    pub async fn enable(&self, tenant: &TenantId, name: &str) -> Result<Member, CdcError> {
        let obj = self.resolve_entity(name)?;
        let member = self.member_of(obj)?;
        self.ensure_topics(tenant, obj).await?;
        let key = format!("{MEMBER_PREFIX}{}", member.selected_entity);
        if self.log.get_record(tenant, &key).await?.is_none() {
            let value = json!({
                "developerName": member.developer_name,
                "eventChannel": member.event_channel,
                "selectedEntity": member.selected_entity,
            });
            // Another process enabling it at the same moment stores the same.
            self.log
                .put_record(tenant, &key, Bytes::from(value.to_string()), 0)
                .await?;
        }
        Ok(member)
    }

    /// Disables Change Data Capture for the object `name` means; false when
    /// it was not enabled. Its topics and their events stay.
    ///
    /// # Errors
    /// [`CdcError::UnknownObject`]; storage failures.
    pub async fn disable(&self, tenant: &TenantId, name: &str) -> Result<bool, CdcError> {
        let obj = self.resolve_entity(name)?;
        let key = format!("{MEMBER_PREFIX}{}", obj.change_event_name());
        match self.log.get_record(tenant, &key).await? {
            Some(stored) => Ok(self
                .log
                .delete_record(tenant, &key, stored.revision)
                .await?),
            None => Ok(false),
        }
    }

    /// Whether `obj` is enabled in `tenant`.
    pub async fn is_enabled(&self, tenant: &TenantId, obj: &ObjectDef) -> Result<bool, CdcError> {
        let key = format!("{MEMBER_PREFIX}{}", obj.change_event_name());
        Ok(self.log.get_record(tenant, &key).await?.is_some())
    }

    /// The objects enabled in `tenant`, by entity name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn members(&self, tenant: &TenantId) -> Result<Vec<Member>, CdcError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .log
                .list_records(tenant, MEMBER_PREFIX, &after, 500)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (key, stored) in &page {
                let entity = key.trim_start_matches(MEMBER_PREFIX);
                // A member of an object this server no longer defines (a DX
                // object removed from the project) is listed by nothing.
                if let Some(obj) = self.catalog.by_change_event(entity) {
                    let mut member = self.member_of(obj)?;
                    if let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(&stored.value)
                        && let Some(Value::String(name)) = v.get("developerName")
                    {
                        member.developer_name = name.clone();
                    }
                    out.push(member);
                }
            }
            if page.len() < 500 {
                break;
            }
        }
        Ok(out)
    }

    /// Enables the members of the standard `ChangeEvents` channel a DX
    /// project declares, for each of `tenants` (members of custom channels
    /// are left to the channels).
    ///
    /// # Errors
    /// [`CdcError::Invalid`] naming the member file; as [`Cdc::enable`].
    pub async fn provision_members(
        &self,
        members: &[ChannelMember],
        tenants: &[TenantId],
    ) -> Result<Vec<Member>, CdcError> {
        // Members of custom channels are the channels' (see
        // `eventbus_channels::Channels::provision`).
        let members: Vec<&ChannelMember> = members
            .iter()
            .filter(|m| m.event_channel.eq_ignore_ascii_case(STANDARD_CHANNEL))
            .collect();
        for m in &members {
            self.resolve_entity(&m.selected_entity).map_err(|_| {
                CdcError::Invalid(format!(
                    "{}: selectedEntity {:?} is no change event entity of a known object (standard objects and the project's objects)",
                    m.file, m.selected_entity
                ))
            })?;
        }
        let mut out = Vec::new();
        for tenant in tenants {
            for m in &members {
                out.push(self.enable(tenant, &m.selected_entity).await?);
            }
        }
        Ok(out)
    }
}

/// `tenant`'s stored name of the topic `name`.
fn stored(tenant: &TenantId, name: &str) -> Result<TopicName, CdcError> {
    let name = TopicName::parse(name).map_err(|e| CdcError::Internal(format!("{name}: {e}")))?;
    Ok(stored_name(tenant, &name)?)
}

fn reparse(json: &str) -> Result<eventbus_schema::ParsedSchema, CdcError> {
    eventbus_schema::ParsedSchema::parse(json)
        .map_err(|e| CdcError::Internal(format!("change event schema: {e}")))
}
