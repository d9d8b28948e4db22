//! Synthetic change events for resilience tests: gap events
//! (`GAP_CREATE`, `GAP_UPDATE`, `GAP_DELETE`, `GAP_UNDELETE`), which tell a
//! subscriber that records changed without saying how, and overflow events
//! (`GAP_OVERFLOW`), sent when a transaction changed more than Salesforce
//! reports one by one.
//!
//! Owns: their headers (no body values; an overflow event names no record)
//! and publishing them like any other change event. Must not: change
//! records.

use eventbus_objects::change::{ChangeBody, ChangeType, Header};

use super::records::{Committed, commit_number};
use super::time::now_ms;
use super::{Actor, Cdc, CdcError};
use eventbus_objects::ids;

impl Cdc {
    /// Publishes one synthetic event of `change` for `object` in `actor`'s
    /// tenant: a gap event for `record_ids`, or an overflow event (which
    /// names no record). The object must be enabled.
    ///
    /// # Errors
    /// [`CdcError::Invalid`] for a change type that is not a gap or
    /// overflow, record ids for an overflow event, none for a gap event, or
    /// an id of another object; [`CdcError::UnknownObject`],
    /// [`CdcError::NotEnabled`]; topic and storage failures.
    pub async fn emit_synthetic(
        &self,
        actor: &Actor,
        object: &str,
        change: ChangeType,
        record_ids: &[String],
    ) -> Result<Committed, CdcError> {
        let obj = self.resolve_entity(object)?;
        let overflow = matches!(change, ChangeType::GapOverflow);
        let gap = matches!(
            change,
            ChangeType::GapCreate
                | ChangeType::GapUpdate
                | ChangeType::GapDelete
                | ChangeType::GapUndelete
        );
        if !gap && !overflow {
            return Err(CdcError::Invalid(format!(
                "{} is not a gap or overflow change type: use GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE or GAP_OVERFLOW.",
                change.symbol()
            )));
        }
        if overflow && !record_ids.is_empty() {
            return Err(CdcError::Invalid(
                "An overflow event names no records: leave the record ids out.".to_owned(),
            ));
        }
        if gap && record_ids.is_empty() {
            return Err(CdcError::Invalid(
                "A gap event names the records it is about: give at least one record id."
                    .to_owned(),
            ));
        }
        let mut canonical = Vec::with_capacity(record_ids.len());
        for id in record_ids {
            let c = ids::canonical(id)
                .filter(|c| c.starts_with(&obj.key_prefix))
                .ok_or_else(|| {
                    CdcError::Invalid(format!(
                        "{id:?} is not a record id of {} (ids of {} start with {}).",
                        obj.name, obj.name, obj.key_prefix
                    ))
                })?;
            canonical.push(c);
        }
        if !self.is_enabled(&actor.tenant, obj).await? {
            return Err(CdcError::NotEnabled(obj.name.clone()));
        }
        let lock = self.tenant_lock(&actor.tenant);
        let _guard = lock.lock().await;
        let seq = self
            .log
            .next_in_sequence(&actor.tenant, "cdc.commit", 1)
            .await?;
        let commit = commit_number(self.cfg.first_commit_number, seq);
        let transaction_key = uuid::Uuid::new_v4().to_string();
        let header = Header {
            entity_name: obj.name.clone(),
            record_ids: canonical.clone(),
            change_type: change,
            change_origin: actor.origin.clone(),
            transaction_key: transaction_key.clone(),
            sequence_number: 1,
            commit_timestamp: now_ms(),
            commit_number: commit,
            commit_user: actor.user_id.clone(),
        };
        let body = ChangeBody::default();
        let schema = self.schema_of(obj)?;
        let event = super::records::encoded(schema, &header, &body, obj)?;
        let (entity, multi) = self.ensure_topics(&actor.tenant, obj).await?;
        let mut parts = super::records::Parts::default();
        parts.push(entity.as_str(), event.clone());
        parts.push_multi(multi.as_str(), event);
        let replay_ids = self.publish_parts(parts).await?;
        Ok(Committed {
            results: canonical.into_iter().map(Ok).collect(),
            transaction_key: Some(transaction_key),
            commit_number: Some(commit),
            replay_ids,
        })
    }
}
