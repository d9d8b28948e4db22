//! The catalog's records in key-value buckets.
//!
//! Owns: the topic id counter in the meta bucket (compare-and-set, so two
//! processes never take one id), decoding schema entries and listing a
//! bucket. Must not: touch event streams.

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use eventbus_core::log::{LogError, SchemaRecord};
use eventbus_core::types::{SchemaId, TenantId};

use crate::JetStreamTopicLog;
use crate::error::{storage, timed};
use crate::keys::unkey;
use crate::state::Inner;

const NEXT_TOPIC_ID: &str = "next_topic_id";

/// A schemas bucket entry as a record.
pub(crate) fn schema_record(key: &str, value: &[u8]) -> Result<SchemaRecord, LogError> {
    let name = unkey(key)?;
    let json = String::from_utf8(value.to_vec())
        .map_err(|_| LogError::Corrupt(format!("schema {name} is not UTF-8")))?;
    let (tenant, id) = match name.split_once('/') {
        Some((tenant, id)) => (Some(TenantId::from_stored(tenant)), id.to_owned()),
        None => (None, name),
    };
    Ok(SchemaRecord {
        tenant,
        id: SchemaId::new(id),
        json,
    })
}

impl JetStreamTopicLog {
    /// Atomically takes the next topic id (compare-and-set on the meta
    /// bucket), so two processes never get the same one.
    ///
    /// # Errors
    /// [`LogError::Storage`] when JetStream fails, [`LogError::Corrupt`]
    /// when the stored counter is not a number.
    pub(crate) async fn take_topic_id(&self) -> Result<u32, LogError> {
        loop {
            let (current, revision) = self.inner.next_topic_id().await?;
            let next = current
                .checked_add(1)
                .ok_or_else(|| storage("topic ids exhausted"))?;
            if self.inner.set_next_topic_id(next, revision).await? {
                return Ok(current);
            }
        }
    }
}

impl Inner {
    pub(crate) async fn next_topic_id(&self) -> Result<(u32, Option<u64>), LogError> {
        let entry = self
            .meta_kv
            .entry(NEXT_TOPIC_ID)
            .await
            .map_err(|e| storage(format!("next topic id: {e}")))?;
        match entry {
            Some(e) if e.operation == Operation::Put => {
                let v = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| LogError::Corrupt("next topic id is not a number".into()))?;
                Ok((v.max(1), Some(e.revision)))
            }
            _ => Ok((1, None)),
        }
    }

    /// Compare-and-set of the counter; false when another process won.
    pub(crate) async fn set_next_topic_id(
        &self,
        next: u32,
        revision: Option<u64>,
    ) -> Result<bool, LogError> {
        let value = Bytes::from(next.to_string());
        match revision {
            None => match self.meta_kv.create(NEXT_TOPIC_ID, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(storage(format!("next topic id: {e}"))),
            },
            Some(rev) => match self.meta_kv.update(NEXT_TOPIC_ID, value, rev).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(storage(format!("next topic id: {e}"))),
            },
        }
    }

    /// Raises the counter to at least `min`; never lowers it.
    pub(crate) async fn raise_next_topic_id(&self, min: u32) -> Result<(), LogError> {
        loop {
            let (current, revision) = self.next_topic_id().await?;
            if current >= min && revision.is_some() {
                return Ok(());
            }
            if self.set_next_topic_id(current.max(min), revision).await? {
                return Ok(());
            }
        }
    }
}

/// Every live key and value of a bucket (deleted keys skipped).
pub(crate) async fn all_entries(store: &kv::Store) -> Result<Vec<(String, Bytes)>, LogError> {
    let keys: Vec<String> = timed("list keys", async {
        let keys = store.keys().await.map_err(|e| e.to_string())?;
        keys.try_collect::<Vec<String>>()
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(storage)?;
    // A few gets at a time: the catalog is small, but not one round trip
    // after another.
    let entries: Vec<Option<(String, Bytes)>> = futures_util::stream::iter(keys)
        .map(|k| async move {
            let v = store
                .get(k.as_str())
                .await
                .map_err(|e| storage(format!("{}: {k}: {e}", store.name)))?;
            Ok::<_, LogError>(v.map(|v| (k, v)))
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(entries.into_iter().flatten().collect())
}
