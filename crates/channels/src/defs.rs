//! Channel and member definitions: what each may say, checked before
//! anything is stored, and the calls that change them.
//!
//! Owns: [`ChannelError`] (with Salesforce's error codes), name rules
//! (`X__chn`), member validation (the entity exists and fits the channel's
//! type, the filter parses and binds to the entity's fields, enriched
//! fields are simple fields of a change event entity), creating the
//! channel's topic with its members' schemas, and DX provisioning.
//! Must not: route events (see `routes`).

use eventbus_broker::BrokerError;
use eventbus_core::types::TenantId;
use eventbus_filter::ChannelKind;
use eventbus_objects::dx;
use eventbus_schema::ParsedSchema;

use super::Channels;
use super::error::ChannelError;
use super::fields::{EventFields, ObjectFields};
use super::model::{
    ChannelView, MemberSpec, MemberView, channel_topic, check_channel_name, kind_name, parse_kind,
    stored,
};
use super::store::{StoredChannel, StoredMember};

fn reparse(json: &str) -> Result<ParsedSchema, ChannelError> {
    ParsedSchema::parse(json)
        .map_err(|e| ChannelError::Broker(BrokerError::Provision(format!("a member schema: {e}"))))
}

/// Most custom channels per org (ours: Salesforce's limit depends on the
/// edition); every one is loaded into each server's route table.
pub const MAX_CHANNELS: usize = 100;
/// Most members per channel (ours): each member's filter runs on every
/// event of its entity.
pub const MAX_MEMBERS: usize = 50;

impl Channels {
    /// Defines a channel; `DUPLICATE_VALUE` when the org has one of that
    /// name.
    ///
    /// # Errors
    /// [`ChannelError::Invalid`] for a bad name or a duplicate; storage.
    pub async fn create_channel(
        &self,
        tenant: &TenantId,
        full_name: &str,
        kind: ChannelKind,
        label: &str,
    ) -> Result<ChannelView, ChannelError> {
        let full_name = full_name.trim();
        check_channel_name(full_name)?;
        let existing = self.load_channels(tenant).await?;
        if existing.len() >= MAX_CHANNELS {
            return Err(ChannelError::invalid(
                "LIMIT_EXCEEDED",
                format!(
                    "This org has {MAX_CHANNELS} custom channels, the most allowed; delete one first"
                ),
            ));
        }
        if existing
            .iter()
            .any(|(c, _)| c.full_name.eq_ignore_ascii_case(full_name))
        {
            return Err(ChannelError::invalid(
                "DUPLICATE_VALUE",
                format!("duplicate value found: a channel named {full_name} already exists"),
            ));
        }
        let id = self.new_id(tenant, "0YL").await?;
        let label = if label.trim().is_empty() {
            full_name.trim_end_matches("__chn").replace('_', " ")
        } else {
            label.trim().to_owned()
        };
        let rec = StoredChannel {
            id,
            full_name: full_name.to_owned(),
            kind,
            label,
        };
        if !self.put_channel(tenant, &rec, 0).await? {
            return Err(ChannelError::invalid(
                "DUPLICATE_VALUE",
                format!("duplicate value found: a channel named {full_name} already exists"),
            ));
        }
        self.changed(tenant).await?;
        Ok(rec.view())
    }

    /// Changes a channel's label (its type and name are fixed).
    ///
    /// # Errors
    /// [`ChannelError::NotFound`]; storage.
    pub async fn relabel_channel(
        &self,
        tenant: &TenantId,
        full_name: &str,
        label: &str,
    ) -> Result<ChannelView, ChannelError> {
        let (mut rec, rev) = self
            .load_channel(tenant, full_name)
            .await?
            .ok_or_else(|| ChannelError::NotFound(format!("No channel named {full_name}")))?;
        rec.label = label.trim().to_owned();
        self.put_channel(tenant, &rec, rev).await?;
        Ok(rec.view())
    }

    /// Deletes a channel, its members and its topic (with its events);
    /// false when there was none.
    ///
    /// # Errors
    /// Topic and storage failures.
    pub async fn delete_channel(
        &self,
        tenant: &TenantId,
        full_name: &str,
    ) -> Result<bool, ChannelError> {
        let Some((rec, _)) = self.load_channel(tenant, full_name).await? else {
            return Ok(false);
        };
        for (m, rev) in self.load_members(tenant, Some(&rec.full_name)).await? {
            self.remove_member(tenant, &m, rev).await?;
        }
        self.remove_channel(tenant, &rec).await?;
        self.changed(tenant).await?;
        let topic = stored(tenant, &channel_topic(rec.kind, &rec.full_name))?;
        match self.broker.delete_topic(topic.as_str()).await {
            Ok(_) | Err(BrokerError::TopicNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(true)
    }

    /// The org's channels, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn channels(&self, tenant: &TenantId) -> Result<Vec<ChannelView>, ChannelError> {
        Ok(self
            .load_channels(tenant)
            .await?
            .into_iter()
            .map(|(c, _)| c.view())
            .collect())
    }

    /// The org's members, of one channel or of all, by channel and entity.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn members(
        &self,
        tenant: &TenantId,
        channel: Option<&str>,
    ) -> Result<Vec<MemberView>, ChannelError> {
        Ok(self
            .load_members(tenant, channel)
            .await?
            .into_iter()
            .map(|(m, _)| m.view())
            .collect())
    }

    /// Defines a member: creates it, or replaces the member of the same
    /// channel and entity (a new filter applies to events published after
    /// this returns). Everything is checked before anything is stored.
    ///
    /// # Errors
    /// [`ChannelError::NotFound`] for an unknown channel;
    /// [`ChannelError::Invalid`] for an entity that is not one of the
    /// channel's type, a filter that does not parse or bind (the message
    /// names the position), enriched fields that are not simple fields of
    /// a change event entity; topic and storage failures.
    pub async fn upsert_member(
        &self,
        tenant: &TenantId,
        spec: MemberSpec,
    ) -> Result<MemberView, ChannelError> {
        let (channel, _) = self
            .load_channel(tenant, spec.channel.trim())
            .await?
            .ok_or_else(|| {
                ChannelError::invalid(
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!(
                        "eventChannel: no channel named {} exists; create the PlatformEventChannel first",
                        spec.channel.trim()
                    ),
                )
            })?;
        let entity = spec.selected_entity.trim().to_owned();
        let filter = spec
            .filter_expression
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        let (schema, canonical_entity) = match channel.kind {
            ChannelKind::Event => {
                let (schema, name, fields) = self.event_entity(tenant, &entity)?;
                if let Some(f) = &filter {
                    crate::routes::bind(f, &fields, ChannelKind::Event)?;
                }
                if !spec.enriched_fields.is_empty() {
                    return Err(ChannelError::invalid(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "enrichedFields: only change event members (data channels) take enriched fields",
                    ));
                }
                (schema, name)
            }
            ChannelKind::Data => {
                let obj = self
                    .objects
                    .by_change_event(&entity)
                    .ok_or_else(|| {
                        ChannelError::invalid(
                            "FIELD_INTEGRITY_EXCEPTION",
                            format!(
                                "selectedEntity: {entity} is not a change event entity (such as AccountChangeEvent) of this server's objects"
                            ),
                        )
                    })?
                    .clone();
                let fields = ObjectFields::new(&obj);
                if let Some(f) = &filter {
                    crate::routes::bind(f, &fields, ChannelKind::Data)?;
                }
                for name in &spec.enriched_fields {
                    fields.check_enriched(name)?;
                }
                let schema = reparse(&eventbus_objects::schema::change_event_schema(&obj))?;
                (schema, obj.change_event_name())
            }
        };
        let developer_name = spec
            .developer_name
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map_or_else(
                || {
                    format!(
                        "{}_{}",
                        channel.full_name.replace("__", "_"),
                        canonical_entity.replace("__", "_")
                    )
                },
                str::to_owned,
            );
        // The channel's topic carries the entity's schema before the member
        // can route anything to it.
        let topic = stored(tenant, &channel_topic(channel.kind, &channel.full_name))?;
        self.broker.add_schema(&topic, schema).await?;
        let existing = self
            .load_member(tenant, &channel.full_name, &canonical_entity)
            .await?;
        let (id, rev) = match &existing {
            Some((m, rev)) => (m.id.clone(), *rev),
            None => {
                let count = self
                    .load_members(tenant, Some(&channel.full_name))
                    .await?
                    .len();
                if count >= MAX_MEMBERS {
                    return Err(ChannelError::invalid(
                        "LIMIT_EXCEEDED",
                        format!(
                            "{} has {MAX_MEMBERS} members, the most allowed; remove one first",
                            channel.full_name
                        ),
                    ));
                }
                (self.new_id(tenant, "0v8").await?, 0)
            }
        };
        let rec = StoredMember {
            id,
            developer_name,
            channel: channel.full_name.clone(),
            selected_entity: canonical_entity,
            filter_expression: filter,
            enriched_fields: spec.enriched_fields.clone(),
        };
        if !self.put_member(tenant, &rec, rev).await? {
            return Err(ChannelError::invalid(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record: the member changed meanwhile; retry",
            ));
        }
        self.changed(tenant).await?;
        Ok(rec.view())
    }

    /// Deletes the member of `channel` for `entity`; false when none.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delete_member(
        &self,
        tenant: &TenantId,
        channel: &str,
        entity: &str,
    ) -> Result<bool, ChannelError> {
        let found = self
            .load_members(tenant, Some(channel.trim()))
            .await?
            .into_iter()
            .find(|(m, _)| m.selected_entity.eq_ignore_ascii_case(entity.trim()));
        let Some((m, rev)) = found else {
            return Ok(false);
        };
        let removed = self.remove_member(tenant, &m, rev).await?;
        self.changed(tenant).await?;
        Ok(removed)
    }

    /// The schema, canonical name and fields of the platform event
    /// `entity` (`Order_Event__e`, any case) of `tenant`.
    fn event_entity(
        &self,
        tenant: &TenantId,
        entity: &str,
    ) -> Result<(ParsedSchema, String, EventFields), ChannelError> {
        let not_found = || {
            ChannelError::invalid(
                "FIELD_INTEGRITY_EXCEPTION",
                format!(
                    "selectedEntity: {entity} is not a platform event of this org (an event channel's members select platform events such as Order_Event__e)"
                ),
            )
        };
        if !entity.to_ascii_lowercase().ends_with("__e") {
            return Err(not_found());
        }
        let wanted = stored(tenant, &format!("/event/{entity}")).map_err(|_| not_found())?;
        let topic = self
            .broker
            .topic(wanted.as_str())
            .ok()
            .or_else(|| {
                self.broker
                    .topics()
                    .into_iter()
                    .find(|t| t.name.as_str().eq_ignore_ascii_case(wanted.as_str()))
            })
            .ok_or_else(not_found)?;
        let name = topic
            .name
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or(entity)
            .to_owned();
        let text = self
            .broker
            .schema_text(tenant, topic.current_schema().as_str())?;
        let schema = reparse(&text)?;
        let fields = EventFields::new(&name, &text);
        Ok((schema, name, fields))
    }

    /// Defines the channels and members of a DX project for each of
    /// `tenants`: channels first (an existing one keeps its definition),
    /// then members (replacing ones of the same channel and entity).
    /// Members of the standard `ChangeEvents` channel are not handled here.
    ///
    /// # Errors
    /// The first invalid definition, naming its file.
    pub async fn provision(
        &self,
        channels: &[dx::Channel],
        members: &[dx::ChannelMember],
        tenants: &[TenantId],
    ) -> Result<usize, ChannelError> {
        let mut n = 0;
        let named = |file: &str, e: ChannelError| match e {
            ChannelError::Invalid { code, message } => ChannelError::Invalid {
                code,
                message: format!("{file}: {message}"),
            },
            other => other,
        };
        for tenant in tenants {
            for c in channels {
                let kind = parse_kind(&c.channel_type).map_err(|e| named(&c.file, e))?;
                match self.load_channel(tenant, &c.full_name).await? {
                    Some((existing, _)) if existing.kind != kind => {
                        return Err(named(
                            &c.file,
                            ChannelError::invalid(
                                "INVALID_INPUT",
                                format!(
                                    "channelType is {} but the channel exists as {}; delete it first",
                                    kind_name(kind),
                                    kind_name(existing.kind)
                                ),
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.create_channel(tenant, &c.full_name, kind, &c.label)
                            .await
                            .map_err(|e| named(&c.file, e))?;
                        n += 1;
                    }
                }
            }
            for m in members
                .iter()
                .filter(|m| !m.event_channel.eq_ignore_ascii_case("ChangeEvents"))
            {
                self.upsert_member(
                    tenant,
                    MemberSpec {
                        channel: m.event_channel.clone(),
                        selected_entity: m.selected_entity.clone(),
                        filter_expression: m.filter_expression.clone(),
                        enriched_fields: m.enriched_fields.clone(),
                        developer_name: Some(m.developer_name.clone()),
                    },
                )
                .await
                .map_err(|e| named(&m.file, e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}
