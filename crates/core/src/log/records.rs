//! Small per-tenant records kept beside the log: sObject records, counters
//! and settings (what Change Data Capture needs to store).
//!
//! Owns: the [`RecordStore`] part of [`super::TopicLog`], the stored record
//! type, and the rules every backend applies to keys, counter names,
//! prefixes, tenants and values before touching storage ([`check_key`] and
//! friends), so every backend refuses the same inputs with the same error.
//! Must not: know what a record means (sObjects, CDC settings and the
//! encoding of values belong to the engine) or name a storage engine.

use bytes::Bytes;

use super::LogError;
use crate::types::TenantId;

/// Longest record key or counter name, in characters (all ASCII).
pub const MAX_RECORD_KEY_CHARS: usize = 200;
/// Largest record value, in bytes. A JetStream backend also needs the NATS
/// servers' `max_payload` above it (plus a few hundred bytes of headers).
pub const MAX_RECORD_VALUE_BYTES: usize = 1 << 20;
/// Longest tenant id a record may belong to (canonical ids have 18).
pub const MAX_RECORD_TENANT_CHARS: usize = 64;

/// A record as stored: opaque bytes and the revision that wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The value, as given to [`RecordStore::put_record`].
    pub value: Bytes,
    /// The revision of the write that stored it: what the next
    /// [`RecordStore::put_record`] or [`RecordStore::delete_record`] of the
    /// key must name as `expected`.
    pub revision: u64,
}

/// Small per-tenant records beside the log: sObject records, counters,
/// settings. One part of [`super::TopicLog`].
///
/// Contract, for every backend:
/// - keys and counter names are 1..=[`MAX_RECORD_KEY_CHARS`] characters of
///   `[A-Za-z0-9_.-]`; tenants are 1..=[`MAX_RECORD_TENANT_CHARS`] letters
///   and digits; values are at most [`MAX_RECORD_VALUE_BYTES`]. Anything
///   else fails with [`LogError::InvalidRecord`] (a value with
///   [`LogError::TooLarge`]) before storage is touched;
/// - tenants are separate namespaces: no method ever reads, lists, changes or
///   counts another tenant's records or counters; records and counters are
///   separate namespaces too (a counter `x` and a record `x` coexist);
/// - every write is durable before it returns (the RocksDB backend fsyncs
///   its WAL, JetStream acknowledges after its replicas stored it) and is
///   compare-and-set against every process sharing the log;
/// - revisions of one key only grow, also across a delete and a new create
///   of the key (backends use one store-wide sequence).
///
/// Every method is required: there is no sensible default for storage.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// The record stored under `key` for `tenant`, if any.
    async fn get_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<StoredRecord>, LogError>;

    /// Durably stores `value` under `key` if the stored revision is
    /// `expected` (0: no record yet). Returns the new revision (> every
    /// earlier revision of that key), or `None` when the stored revision is
    /// another (nothing stored): compare-and-set across every process on
    /// the log.
    async fn put_record(
        &self,
        tenant: &TenantId,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> Result<Option<u64>, LogError>;

    /// Durably removes `key` if its revision is `expected`; false when it is
    /// not (or absent).
    async fn delete_record(
        &self,
        tenant: &TenantId,
        key: &str,
        expected: u64,
    ) -> Result<bool, LogError>;

    /// The tenant's records whose key starts with `prefix`, in key order, at
    /// most `limit`, starting after `after` (exclusive, "" = from the start).
    /// `prefix` may be empty (every record of the tenant); otherwise it
    /// follows the key rules, except that it may be shorter than a key.
    async fn list_records(
        &self,
        tenant: &TenantId,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, LogError>;

    /// Adds `n` (>= 1) to the tenant's counter `name` and returns the new
    /// value (a fresh counter starts at 0, so the first call returns `n`).
    /// Durable before it returns; two calls, from any processes, never get
    /// the same value. `n` of 0 fails with [`LogError::InvalidRecord`].
    async fn next_in_sequence(
        &self,
        tenant: &TenantId,
        name: &str,
        n: u64,
    ) -> Result<u64, LogError>;
}

fn key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Refuses a record key or counter name (`what` names which, for the
/// message) outside the rules of [`RecordStore`].
///
/// # Errors
/// [`LogError::InvalidRecord`] saying which rule `key` breaks.
pub fn check_key(what: &str, key: &str) -> Result<(), LogError> {
    if key.is_empty() || key.len() > MAX_RECORD_KEY_CHARS {
        return Err(LogError::InvalidRecord(format!(
            "a {what} has 1 to {MAX_RECORD_KEY_CHARS} characters, not {}",
            key.len()
        )));
    }
    check_chars(what, key)
}

/// Refuses a list prefix outside the rules of
/// [`RecordStore::list_records`] (empty is fine).
///
/// # Errors
/// [`LogError::InvalidRecord`] saying which rule `prefix` breaks.
pub fn check_prefix(prefix: &str) -> Result<(), LogError> {
    if prefix.len() > MAX_RECORD_KEY_CHARS {
        return Err(LogError::InvalidRecord(format!(
            "a record key prefix has at most {MAX_RECORD_KEY_CHARS} characters, not {}",
            prefix.len()
        )));
    }
    check_chars("record key prefix", prefix)
}

fn check_chars(what: &str, s: &str) -> Result<(), LogError> {
    match s.bytes().position(|b| !key_char(b)) {
        None => Ok(()),
        Some(at) => Err(LogError::InvalidRecord(format!(
            "a {what} is made of letters, digits, `_`, `.` and `-`; {:?} has {:?} at byte {at}",
            s,
            s[at..].chars().next().unwrap_or('?')
        ))),
    }
}

/// Refuses a tenant the record store cannot key by: anything but
/// 1..=[`MAX_RECORD_TENANT_CHARS`] letters and digits (every canonical org
/// id qualifies; only malformed stored forms do not).
///
/// # Errors
/// [`LogError::InvalidRecord`] naming the tenant.
pub fn check_tenant(tenant: &TenantId) -> Result<(), LogError> {
    let t = tenant.as_str();
    let ok = !t.is_empty()
        && t.len() <= MAX_RECORD_TENANT_CHARS
        && t.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidRecord(format!(
            "records belong to an org id (letters and digits), not {:?}",
            t
        )))
    }
}

/// Refuses a value larger than [`MAX_RECORD_VALUE_BYTES`].
///
/// # Errors
/// [`LogError::TooLarge`] saying the limit.
pub fn check_value(value: &[u8]) -> Result<(), LogError> {
    if value.len() > MAX_RECORD_VALUE_BYTES {
        return Err(LogError::TooLarge(format!(
            "a record is at most {MAX_RECORD_VALUE_BYTES} bytes, not {}",
            value.len()
        )));
    }
    Ok(())
}

/// Refuses a counter step of 0 (it would hand out a value twice).
///
/// # Errors
/// [`LogError::InvalidRecord`].
pub fn check_step(n: u64) -> Result<(), LogError> {
    if n == 0 {
        return Err(LogError::InvalidRecord(
            "a sequence advances by at least 1".into(),
        ));
    }
    Ok(())
}

/// [`check_tenant`] and [`check_key`] of a record key, as every method
/// taking one starts.
///
/// # Errors
/// As those two.
pub fn check_record(tenant: &TenantId, key: &str) -> Result<(), LogError> {
    check_tenant(tenant)?;
    check_key("record key", key)
}

/// [`check_tenant`], [`check_key`] of a counter name and [`check_step`], as
/// [`RecordStore::next_in_sequence`] starts.
///
/// # Errors
/// As those three.
pub fn check_sequence(tenant: &TenantId, name: &str, n: u64) -> Result<(), LogError> {
    check_tenant(tenant)?;
    check_key("counter name", name)?;
    check_step(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_key_rules_hold() {
        for good in ["a", "Account.001000000000001AAA", ".", "a..b.", "_-.", "9"] {
            assert!(check_key("record key", good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_RECORD_KEY_CHARS);
        assert!(check_key("record key", &long).is_ok());
        for bad in ["", "a b", "a/b", "ü", "a*", "a>", "a\n"] {
            assert!(
                matches!(
                    check_key("record key", bad),
                    Err(LogError::InvalidRecord(_))
                ),
                "{bad:?}"
            );
        }
        assert!(check_key("record key", &format!("{long}x")).is_err());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("Account.").is_ok());
        assert!(check_prefix("a b").is_err());
        assert!(check_step(0).is_err());
        assert!(check_step(1).is_ok());
        assert!(matches!(
            check_value(&vec![0; MAX_RECORD_VALUE_BYTES + 1]),
            Err(LogError::TooLarge(_))
        ));
        assert!(check_value(&vec![0; MAX_RECORD_VALUE_BYTES]).is_ok());
        let org = TenantId::parse("00D000000000000").expect("org id");
        assert!(check_tenant(&org).is_ok());
        assert!(check_tenant(&TenantId::from_stored("not an org")).is_err());
        assert!(check_tenant(&TenantId::from_stored("")).is_err());
    }

    proptest! {
        #[test]
        fn keys_of_the_alphabet_pass_and_others_fail(key in "[A-Za-z0-9_.-]{1,200}", bad in "[ -~]{0,10}[^A-Za-z0-9_.-][ -~]{0,10}") {
            prop_assert!(check_key("record key", &key).is_ok());
            prop_assert!(check_key("record key", &bad).is_err());
        }
    }
}
