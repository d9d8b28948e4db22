//! Records as the record store keeps them: one JSON object per record under
//! `rec.<Object>.<id>`, with its revision for compare-and-set.
//!
//! Owns: the key layout and the JSON form of a stored record (REST field
//! names and values, plus `Id` and `IsDeleted`). Must not: decide what a
//! change means (see `records`).

use bytes::Bytes;
use eventbus_core::types::TenantId;
use eventbus_objects::record::Record;

use super::{Cdc, CdcError};

/// A stored record and the revision that wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) revision: u64,
    pub(crate) record: Record,
}

/// The store key of record `id` of `object`.
pub(crate) fn record_key(object: &str, id: &str) -> String {
    format!("rec.{object}.{id}")
}

impl Cdc {
    /// The record stored under `key`, if any.
    pub(crate) async fn load(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<Loaded>, CdcError> {
        let Some(stored) = self.log.get_record(tenant, key).await? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&stored.value).map_err(|e| {
            CdcError::Internal(format!("stored record {key} is not a JSON object: {e}"))
        })?;
        Ok(Some(Loaded {
            revision: stored.revision,
            record,
        }))
    }

    /// Stores `record` under `key` if its revision is `expected` (0: new);
    /// the new revision, or `None` when another writer came first.
    pub(crate) async fn save(
        &self,
        tenant: &TenantId,
        key: &str,
        record: &Record,
        expected: u64,
    ) -> Result<Option<u64>, CdcError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| CdcError::Internal(format!("record {key} does not serialise: {e}")))?;
        Ok(self
            .log
            .put_record(tenant, key, Bytes::from(bytes), expected)
            .await?)
    }
}
