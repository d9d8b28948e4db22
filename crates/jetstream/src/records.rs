//! The record store in key-value buckets: the [`RecordStore`] methods.
//!
//! Owns: the records bucket (key `<tenant>.<key>`, value the record as
//! given, revision the KV revision) and the counters bucket (key
//! `<tenant>.<name>`, value the decimal count), the mapping of record keys
//! and counter names onto KV keys, compare-and-set through the bucket's
//! revisions, and listing by key prefix. Must not: append or read events,
//! or touch the catalog buckets.
//!
//! Key mapping: record keys (`[A-Za-z0-9_.-]`) are already KV-key
//! characters, and their `.`s stay token separators, so a prefix that ends
//! on a `.` lists through a subject filter (`<tenant>.Account.>`) instead of
//! reading the whole tenant. Only an empty token (a key that starts or ends
//! with `.`, or holds `..`), which NATS does not take, is written `=`: no
//! key character, so the mapping is one-to-one.
//!
//! Revisions are JetStream stream sequences of the bucket, so they grow
//! across a delete and a new create of a key. A delete leaves a delete
//! marker (the bucket denies real deletes); its revision is never handed
//! out, so no caller can name it as `expected`.

use std::collections::BTreeMap;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;

use eventbus_core::log::records::{
    check_prefix, check_record, check_sequence, check_tenant, check_value,
};
use eventbus_core::log::{BoxError, LogError, RecordStore, StoredRecord};
use eventbus_core::types::TenantId;

use crate::JetStreamTopicLog;
use crate::error::timed;

/// Marks an empty token of a key (`=` is no key character).
const EMPTY_TOKEN: &str = "=";

/// The KV key of `key` (a record key or counter name) of `tenant`.
pub(crate) fn kv_key(tenant: &TenantId, key: &str) -> String {
    let mut out = String::with_capacity(tenant.len() + key.len() + 4);
    out.push_str(tenant.as_str());
    for token in key.split('.') {
        out.push('.');
        out.push_str(if token.is_empty() { EMPTY_TOKEN } else { token });
    }
    out
}

/// The record key of a KV key of `tenant` (`None` for another tenant's).
pub(crate) fn record_key_of(tenant: &TenantId, kv_key: &str) -> Option<String> {
    let rest = kv_key.strip_prefix(tenant.as_str())?.strip_prefix('.')?;
    let tokens: Vec<&str> = rest
        .split('.')
        .map(|t| if t == EMPTY_TOKEN { "" } else { t })
        .collect();
    Some(tokens.join("."))
}

/// The subject filter (below the bucket's prefix) that holds every key of
/// `tenant` starting with `prefix`: its complete tokens, then `>`.
pub(crate) fn list_filter(tenant: &TenantId, prefix: &str) -> String {
    let mut filter = tenant.as_str().to_owned();
    if let Some((complete, _partial)) = prefix.rsplit_once('.') {
        for token in complete.split('.') {
            filter.push('.');
            filter.push_str(if token.is_empty() { EMPTY_TOKEN } else { token });
        }
    }
    filter.push_str(".>");
    filter
}

/// Whether an error (or one of its sources) is the NATS servers refusing a
/// message above their `max_payload`.
fn over_max_payload(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("max payload") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A failed write of record `key`: [`LogError::TooLarge`] when the value
/// does not fit the servers' `max_payload`, [`LogError::Storage`] otherwise.
fn write_err(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> LogError {
    if over_max_payload(&e) {
        LogError::TooLarge(format!(
            "the record {key} is larger than the NATS servers' max_payload"
        ))
    } else {
        LogError::storage_in(format!("record {key}"), e)
    }
}

/// The live value and revision under `k` (deleted or purged keys are
/// absent), read from the bucket stream's leader. The buckets allow direct
/// gets, which any replica may answer: a follower that has not applied a
/// write yet answers with what was there before, so a record written and
/// then read (enable Change Data Capture, then change a record) could read
/// as missing on a cluster. The leader has every acknowledged write.
async fn live_entry(store: &kv::Store, k: &str) -> Result<Option<StoredRecord>, LogError> {
    let subject = format!("{}{k}", store.prefix);
    let read = async {
        match store.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    let message = timed("record get", read)
        .await
        .map_err(|e| LogError::storage_in(format!("{}: {k}", store.name), e))?;
    Ok(message.and_then(|message| {
        let deleted = message
            .headers
            .get("KV-Operation")
            .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
        (!deleted).then_some(StoredRecord {
            value: message.payload,
            revision: message.sequence,
        })
    }))
}

#[async_trait::async_trait]
impl RecordStore for JetStreamTopicLog {
    async fn get_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError> {
        check_record(tenant, key)?;
        live_entry(&self.inner.records_kv, &kv_key(tenant, key)).await
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
        let store = &self.inner.records_kv;
        let k = kv_key(tenant, key);
        if expected == 0 {
            // `create` also takes a key whose last entry is a delete marker.
            match store.create(&k, value).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(write_err(key, e)),
            }
        } else {
            match store.update(&k, value, expected).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(write_err(key, e)),
            }
        }
    }

    async fn delete_record(
        &self,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError> {
        check_record(tenant, key)?;
        // Revision 0 would mean "no message yet" to JetStream: a delete
        // marker written for a key that never existed.
        if expected == 0 {
            return Ok(false);
        }
        let store = &self.inner.records_kv;
        match store
            .delete_expect_revision(kv_key(tenant, key), Some(expected))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(LogError::storage_in(format!("record {key}"), e)),
        }
    }

    async fn list_records(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError> {
        check_tenant(tenant)?;
        check_prefix(prefix)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let store = &self.inner.records_kv;
        let filter = format!("{}{}", store.prefix, list_filter(tenant, prefix));
        let what = || format!("{}: list {filter}", store.name);
        // The latest entry of every key under the filter, in stream order:
        // an ordered consumer, gone when dropped. Keeps the `limit`
        // smallest keys after `after` only.
        let consumer = timed(
            "record list",
            self.inner.js.create_consumer_on_stream(
                pull::OrderedConfig {
                    filter_subject: filter.clone(),
                    deliver_policy: DeliverPolicy::LastPerSubject,
                    ..Default::default()
                },
                &store.stream_name,
            ),
        )
        .await
        .map_err(|e| LogError::storage_in(what(), e))?;
        let mut kept: BTreeMap<String, StoredRecord> = BTreeMap::new();
        if consumer.cached_info().num_pending > 0 {
            let mut messages = timed("record list", consumer.messages())
                .await
                .map_err(|e| LogError::storage_in(what(), e))?;
            loop {
                let message = timed("record list", async {
                    match messages.next().await {
                        Some(Ok(m)) => Ok(m),
                        Some(Err(e)) => Err(BoxError::from(e)),
                        None => Err(BoxError::from("the listing ended early")),
                    }
                })
                .await
                .map_err(|e| LogError::storage_in(what(), e))?;
                let info = message
                    .info()
                    .map_err(|e| LogError::storage_in(what(), e))?;
                let (revision, pending) = (info.stream_sequence, info.pending);
                let deleted = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
                let name = message
                    .subject
                    .strip_prefix(store.prefix.as_str())
                    .and_then(|k| record_key_of(tenant, k));
                if let Some(name) = name
                    && !deleted
                    && name.starts_with(prefix)
                    && name.as_str() > after
                {
                    kept.insert(
                        name,
                        StoredRecord {
                            value: message.payload.clone(),
                            revision,
                        },
                    );
                    if kept.len() > limit {
                        kept.pop_last();
                    }
                }
                if pending == 0 {
                    break;
                }
            }
        }
        Ok(kept.into_iter().collect())
    }

    async fn next_in_sequence(
        &self,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError> {
        check_sequence(tenant, name, n)?;
        let store = &self.inner.counters_kv;
        let k = kv_key(tenant, name);
        let fail = |e: BoxError| LogError::storage_in(format!("counter {name}"), e);
        // Loops only when another call (of any process) moved the counter
        // between our read and our write; the next read decides again.
        loop {
            let (current, revision) = match live_entry(store, &k).await? {
                Some(e) => {
                    let v = std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            LogError::Corrupt(format!("counter {name} is not a number").into())
                        })?;
                    (v, Some(e.revision))
                }
                None => (0, None),
            };
            let next = current
                .checked_add(n)
                .ok_or_else(|| LogError::InvalidRecord(format!("counter {name} would overflow")))?;
            let value = Bytes::from(next.to_string());
            let stored = match revision {
                None => match store.create(&k, value).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(fail(e.into())),
                },
                Some(rev) => match store.update(&k, value, rev).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(fail(e.into())),
                },
            };
            if stored {
                return Ok(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> TenantId {
        TenantId::parse("00D000000000001").expect("org id")
    }

    #[test]
    fn keys_map_one_to_one_onto_valid_kv_keys() {
        let t = org();
        for key in [
            "a",
            "Account.001",
            ".",
            "..",
            ".a",
            "a.",
            "a..b",
            "-",
            "_x_",
        ] {
            let k = kv_key(&t, key);
            assert!(
                !k.ends_with('.') && !k.contains(".."),
                "{key:?} maps to {k:?}"
            );
            assert_eq!(record_key_of(&t, &k).as_deref(), Some(key));
        }
        assert_eq!(kv_key(&t, "Account.001"), format!("{t}.Account.001"));
        assert_ne!(kv_key(&t, "a."), kv_key(&t, "a"));
        let other = TenantId::parse("00D000000000002").expect("org id");
        assert_eq!(record_key_of(&other, &kv_key(&t, "a")), None);
    }

    #[test]
    fn list_filters_hold_every_key_with_the_prefix() {
        let t = org();
        assert_eq!(list_filter(&t, ""), format!("{t}.>"));
        assert_eq!(list_filter(&t, "Acc"), format!("{t}.>"));
        assert_eq!(list_filter(&t, "Account."), format!("{t}.Account.>"));
        assert_eq!(list_filter(&t, "Account.00"), format!("{t}.Account.>"));
        assert_eq!(list_filter(&t, ".x"), format!("{t}.=.>"));
        assert_eq!(list_filter(&t, "a..b"), format!("{t}.a.=.>"));
        // Every key with the prefix is under the filter's tokens.
        for (prefix, key) in [("Account.", "Account."), ("a..", "a..b."), (".", ".lead")] {
            let filter = list_filter(&t, prefix);
            let fixed = filter.strip_suffix('>').expect("ends with >");
            assert!(kv_key(&t, key).starts_with(fixed), "{key} under {filter}");
        }
    }

    #[test]
    fn a_max_payload_refusal_is_too_large() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("publish failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("max payload size exceeded"));
        assert!(matches!(write_err("k", e), LogError::TooLarge(_)));
        let e = Outer(std::io::Error::other("timed out"));
        assert!(matches!(write_err("k", e), LogError::Storage(_)));
    }
}
