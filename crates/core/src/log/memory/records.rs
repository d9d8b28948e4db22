//! The in-memory backend's [`RecordStore`].
//!
//! Owns: the records and counters of every tenant in process memory, and
//! one store-wide revision sequence. Must not: outlive the process (nothing
//! is durable here; the contract's durability holds only within it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use super::{MemoryTopicLog, lock};
use crate::log::records::{check_prefix, check_record, check_sequence, check_value};
use crate::log::{LogError, RecordStore, StoredRecord};
use crate::types::TenantId;

/// Records and counters of every tenant, behind one lock (no `.await`
/// inside): one lock makes every compare-and-set atomic.
#[derive(Default)]
pub(super) struct MemoryRecords {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    // By tenant, then key: a tenant's keys in order for `list_records`.
    records: HashMap<TenantId, BTreeMap<String, StoredRecord>>,
    counters: HashMap<(TenantId, String), u64>,
    // The last revision handed out, by any key: revisions of a key grow
    // across deletes because they come from this one sequence.
    revision: u64,
}

#[async_trait::async_trait]
impl RecordStore for MemoryTopicLog {
    async fn get_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError> {
        check_record(tenant, key)?;
        self.open()?;
        let state = lock(&self.records.state);
        Ok(state.records.get(tenant).and_then(|r| r.get(key)).cloned())
    }

    async fn put_record(
        &self,
        tenant: &TenantId,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> Result<Option<u64>, LogError> {
        check_record(tenant, key)?;
        check_value(&value)?;
        self.open()?;
        let mut state = lock(&self.records.state);
        let current = state
            .records
            .get(tenant)
            .and_then(|r| r.get(key))
            .map_or(0, |r| r.revision);
        if current != expected {
            return Ok(None);
        }
        state.revision += 1;
        let revision = state.revision;
        state
            .records
            .entry(tenant.clone())
            .or_default()
            .insert(key.to_owned(), StoredRecord { value, revision });
        Ok(Some(revision))
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError> {
        check_record(tenant, key)?;
        self.open()?;
        let mut state = lock(&self.records.state);
        let Some(records) = state.records.get_mut(tenant) else {
            return Ok(false);
        };
        if records.get(key).is_none_or(|r| r.revision != expected) {
            return Ok(false);
        }
        records.remove(key);
        Ok(true)
    }

    async fn list_records(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError> {
        crate::log::records::check_tenant(tenant)?;
        check_prefix(prefix)?;
        self.open()?;
        let state = lock(&self.records.state);
        let Some(records) = state.records.get(tenant) else {
            return Ok(Vec::new());
        };
        // Keys after `after` that start with `prefix` form one run of the
        // ordered map, starting at the larger of the two.
        let start = if after >= prefix {
            std::ops::Bound::Excluded(after)
        } else {
            std::ops::Bound::Included(prefix)
        };
        Ok(records
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect())
    }

    async fn next_in_sequence(
        &self,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError> {
        check_sequence(tenant, name, n)?;
        self.open()?;
        let mut state = lock(&self.records.state);
        let counter = state
            .counters
            .entry((tenant.clone(), name.to_owned()))
            .or_default();
        let next = counter
            .checked_add(n)
            .ok_or_else(|| LogError::InvalidRecord(format!("counter {name} would overflow")))?;
        *counter = next;
        Ok(next)
    }
}
