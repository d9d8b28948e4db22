//! What channels and members look like to callers, and the name rules.
//!
//! Owns: [`ChannelView`], [`MemberView`], [`MemberSpec`], channel kinds by
//! name, topic names of channels, API name checks. Must not: store or
//! route anything.

use eventbus_broker::provision::stored_name;
use eventbus_core::types::{TenantId, TopicName};
use eventbus_filter::ChannelKind;

use super::error::ChannelError;

/// A channel as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelView {
    /// The Tooling record id (`0YL…`).
    pub id: String,
    /// `Orders__chn`.
    pub full_name: String,
    /// `event` or `data`.
    pub kind: ChannelKind,
    /// The label.
    pub label: String,
    /// `/event/Orders__chn` or `/data/Orders__chn` (the org's name for it).
    pub topic: String,
}

/// A member as callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// The Tooling record id (`0v8…`).
    pub id: String,
    /// `Orders_chn_Order_Event_e`.
    pub developer_name: String,
    /// `Orders__chn`.
    pub channel: String,
    /// `Order_Event__e` or `AccountChangeEvent`.
    pub selected_entity: String,
    /// The filter as given, if any.
    pub filter_expression: Option<String>,
    /// The enriched fields as given.
    pub enriched_fields: Vec<String>,
}

/// A member to define (create, or replace the one of the same channel and
/// entity).
#[derive(Clone, Debug, Default)]
pub struct MemberSpec {
    /// The channel, `X__chn`.
    pub channel: String,
    /// The entity.
    pub selected_entity: String,
    /// The filter, if any (blank means none).
    pub filter_expression: Option<String>,
    /// Fields sent with every change event even when unchanged.
    pub enriched_fields: Vec<String>,
    /// The developer name; derived from channel and entity when empty.
    pub developer_name: Option<String>,
}

/// The topic name a channel's events go to.
pub(crate) fn channel_topic(kind: ChannelKind, name: &str) -> String {
    match kind {
        ChannelKind::Event => format!("/event/{name}"),
        ChannelKind::Data => format!("/data/{name}"),
    }
}

/// The kind a `channelType` names.
///
/// # Errors
/// [`ChannelError::Invalid`] for anything but `event` and `data`.
pub fn parse_kind(s: &str) -> Result<ChannelKind, ChannelError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "event" => Ok(ChannelKind::Event),
        "data" => Ok(ChannelKind::Data),
        other => Err(ChannelError::invalid(
            "INVALID_INPUT",
            format!(
                "channelType {other:?} is not valid: use event (platform events) or data (change events)"
            ),
        )),
    }
}

/// The name of a kind, as `channelType` spells it.
pub fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Event => "event",
        ChannelKind::Data => "data",
    }
}

/// Checks a channel API name: a letter, letters, digits and single
/// underscores, ending `__chn`, at most 80 characters in all.
pub(crate) fn check_channel_name(name: &str) -> Result<(), ChannelError> {
    let bad = |why: &str| {
        ChannelError::invalid(
            "INVALID_INPUT",
            format!(
                "The channel name {name:?} is not valid: {why}. Use a name such as Orders__chn."
            ),
        )
    };
    let Some(base) = name.strip_suffix("__chn") else {
        return Err(bad("a custom channel's name ends with __chn"));
    };
    if name.len() > 80 {
        return Err(bad("it is longer than 80 characters"));
    }
    if !base.starts_with(|c: char| c.is_ascii_alphabetic())
        || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || base.contains("__")
        || base.ends_with('_')
    {
        return Err(bad(
            "before __chn it needs a letter, then letters, digits and single underscores",
        ));
    }
    Ok(())
}

/// The stored name of `tenant`'s topic `name`.
pub(crate) fn stored(tenant: &TenantId, name: &str) -> Result<TopicName, ChannelError> {
    let parsed = TopicName::parse(name)
        .map_err(|e| ChannelError::invalid("INVALID_INPUT", format!("{name}: {e}")))?;
    Ok(stored_name(tenant, &parsed)?)
}
