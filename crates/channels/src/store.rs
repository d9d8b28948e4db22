//! Channels and members in the record store: `chn.def.<X__chn>` and
//! `chn.mem.<X__chn>.<Entity>`, JSON in Salesforce's metadata field names.
//!
//! Owns: the key layout, the JSON form and the Tooling ids (`0YL…` for
//! channels, `0v8…` for members, from a per-org counter). Must not: check
//! definitions (see `defs`).

use bytes::Bytes;
use serde_json::{Value, json};

use eventbus_core::types::TenantId;
use eventbus_filter::ChannelKind;
use eventbus_objects::ids::record_id;

use super::Channels;
use super::error::ChannelError;
use super::model::{ChannelView, MemberView, channel_topic, kind_name, parse_kind};

const CHANNEL_PREFIX: &str = "chn.def.";
/// The index of orgs with channels, kept in the default org's records.
const ORG_PREFIX: &str = "chn.org.";
const MEMBER_PREFIX: &str = "chn.mem.";

/// A channel as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredChannel {
    pub(crate) id: String,
    pub(crate) full_name: String,
    pub(crate) kind: ChannelKind,
    pub(crate) label: String,
}

impl StoredChannel {
    pub(crate) fn view(&self) -> ChannelView {
        ChannelView {
            id: self.id.clone(),
            full_name: self.full_name.clone(),
            kind: self.kind,
            label: self.label.clone(),
            topic: channel_topic(self.kind, &self.full_name),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "fullName": self.full_name,
            "channelType": kind_name(self.kind),
            "label": self.label,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            id: v.get("id")?.as_str()?.to_owned(),
            full_name: v.get("fullName")?.as_str()?.to_owned(),
            kind: parse_kind(v.get("channelType")?.as_str()?).ok()?,
            label: v.get("label")?.as_str()?.to_owned(),
        })
    }
}

/// A member as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredMember {
    pub(crate) id: String,
    pub(crate) developer_name: String,
    pub(crate) channel: String,
    pub(crate) selected_entity: String,
    pub(crate) filter_expression: Option<String>,
    pub(crate) enriched_fields: Vec<String>,
}

impl StoredMember {
    pub(crate) fn view(&self) -> MemberView {
        MemberView {
            id: self.id.clone(),
            developer_name: self.developer_name.clone(),
            channel: self.channel.clone(),
            selected_entity: self.selected_entity.clone(),
            filter_expression: self.filter_expression.clone(),
            enriched_fields: self.enriched_fields.clone(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "developerName": self.developer_name,
            "eventChannel": self.channel,
            "selectedEntity": self.selected_entity,
            "filterExpression": self.filter_expression,
            "enrichedFields": self.enriched_fields,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            id: v.get("id")?.as_str()?.to_owned(),
            developer_name: v.get("developerName")?.as_str()?.to_owned(),
            channel: v.get("eventChannel")?.as_str()?.to_owned(),
            selected_entity: v.get("selectedEntity")?.as_str()?.to_owned(),
            filter_expression: v
                .get("filterExpression")
                .and_then(Value::as_str)
                .map(str::to_owned),
            enriched_fields: v
                .get("enrichedFields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

fn channel_key(name: &str) -> String {
    format!("{CHANNEL_PREFIX}{name}")
}

fn member_key(channel: &str, entity: &str) -> String {
    format!("{MEMBER_PREFIX}{channel}.{entity}")
}

fn corrupt(key: &str) -> ChannelError {
    ChannelError::Log(eventbus_core::log::LogError::Corrupt(
        format!("stored channel definition {key} is not valid JSON of its kind").into(),
    ))
}

fn index_org() -> TenantId {
    TenantId::from_stored(eventbus_core::types::DEFAULT_TENANT_GUID)
}

impl Channels {
    /// Lists `tenant` among the orgs with channels.
    pub(crate) async fn index(&self, tenant: &TenantId) -> Result<(), ChannelError> {
        let key = format!("{ORG_PREFIX}{}", tenant.as_str());
        if self.log.get_record(&index_org(), &key).await?.is_none() {
            // Another server indexing it at the same moment stores the same.
            self.log
                .put_record(&index_org(), &key, Bytes::from_static(b"1"), 0)
                .await?;
        }
        Ok(())
    }

    /// Every org that ever defined a channel.
    pub(crate) async fn indexed_tenants(&self) -> Result<Vec<TenantId>, ChannelError> {
        Ok(self
            .scan(&index_org(), ORG_PREFIX)
            .await?
            .into_iter()
            .map(|(k, _)| TenantId::from_stored(k.trim_start_matches(ORG_PREFIX)))
            .collect())
    }

    /// A new Tooling id with `prefix`.
    pub(crate) async fn new_id(
        &self,
        tenant: &TenantId,
        prefix: &str,
    ) -> Result<String, ChannelError> {
        let n = self
            .log
            .next_in_sequence(tenant, &format!("chn.id.{prefix}"), 1)
            .await?;
        Ok(record_id(prefix, n))
    }

    /// The channel `name` (exact, then any case) and its revision.
    pub(crate) async fn load_channel(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<(StoredChannel, u64)>, ChannelError> {
        if let Some(found) = self.log.get_record(tenant, &channel_key(name)).await? {
            let v: Value = serde_json::from_slice(&found.value).map_err(|_| corrupt(name))?;
            let c = StoredChannel::from_json(&v).ok_or_else(|| corrupt(name))?;
            return Ok(Some((c, found.revision)));
        }
        Ok(self
            .load_channels(tenant)
            .await?
            .into_iter()
            .find(|(c, _)| c.full_name.eq_ignore_ascii_case(name)))
    }

    /// Every channel of the org, by name.
    pub(crate) async fn load_channels(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(StoredChannel, u64)>, ChannelError> {
        let mut out = Vec::new();
        for (key, rec) in self.scan(tenant, CHANNEL_PREFIX).await? {
            let v: Value = serde_json::from_slice(&rec.value).map_err(|_| corrupt(&key))?;
            out.push((
                StoredChannel::from_json(&v).ok_or_else(|| corrupt(&key))?,
                rec.revision,
            ));
        }
        Ok(out)
    }

    /// The org's members, of `channel` (any case) or of every channel.
    pub(crate) async fn load_members(
        &self,
        tenant: &TenantId,
        channel: Option<&str>,
    ) -> Result<Vec<(StoredMember, u64)>, ChannelError> {
        let mut out = Vec::new();
        for (key, rec) in self.scan(tenant, MEMBER_PREFIX).await? {
            let v: Value = serde_json::from_slice(&rec.value).map_err(|_| corrupt(&key))?;
            let m = StoredMember::from_json(&v).ok_or_else(|| corrupt(&key))?;
            if channel.is_none_or(|c| c.eq_ignore_ascii_case(&m.channel)) {
                out.push((m, rec.revision));
            }
        }
        Ok(out)
    }

    /// The member of `channel` for `entity`.
    pub(crate) async fn load_member(
        &self,
        tenant: &TenantId,
        channel: &str,
        entity: &str,
    ) -> Result<Option<(StoredMember, u64)>, ChannelError> {
        Ok(self
            .load_members(tenant, Some(channel))
            .await?
            .into_iter()
            .find(|(m, _)| m.selected_entity.eq_ignore_ascii_case(entity)))
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        prefix: &str,
    ) -> Result<Vec<(String, eventbus_core::log::StoredRecord)>, ChannelError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.log.list_records(tenant, prefix, &after, 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            let full = page.len() == 500;
            out.extend(page);
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Stores a channel at revision `expected`; false on a conflict.
    pub(crate) async fn put_channel(
        &self,
        tenant: &TenantId,
        c: &StoredChannel,
        expected: u64,
    ) -> Result<bool, ChannelError> {
        let v = Bytes::from(c.to_json().to_string());
        Ok(self
            .log
            .put_record(tenant, &channel_key(&c.full_name), v, expected)
            .await?
            .is_some())
    }

    /// Stores a member at revision `expected`; false on a conflict.
    pub(crate) async fn put_member(
        &self,
        tenant: &TenantId,
        m: &StoredMember,
        expected: u64,
    ) -> Result<bool, ChannelError> {
        let v = Bytes::from(m.to_json().to_string());
        Ok(self
            .log
            .put_record(
                tenant,
                &member_key(&m.channel, &m.selected_entity),
                v,
                expected,
            )
            .await?
            .is_some())
    }

    pub(crate) async fn remove_member(
        &self,
        tenant: &TenantId,
        m: &StoredMember,
        rev: u64,
    ) -> Result<bool, ChannelError> {
        Ok(self
            .log
            .delete_record(tenant, &member_key(&m.channel, &m.selected_entity), rev)
            .await?)
    }

    pub(crate) async fn remove_channel(
        &self,
        tenant: &TenantId,
        c: &StoredChannel,
    ) -> Result<(), ChannelError> {
        if let Some(found) = self
            .log
            .get_record(tenant, &channel_key(&c.full_name))
            .await?
        {
            self.log
                .delete_record(tenant, &channel_key(&c.full_name), found.revision)
                .await?;
        }
        Ok(())
    }
}
