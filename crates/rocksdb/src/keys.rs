//! Key layouts of the RocksDB backend.
//!
//! Owns: the byte layout of every key. Must not: touch the database.
//!
//! A one-byte kind prefix, then fixed-width big-endian ids, so byte order
//! equals numeric order and one topic's events are one contiguous range.

use crate::types::{Offset, TenantId, TopicId};

/// Kind byte of event keys (events column family).
pub const KIND_EVENT: u8 = b'e';
/// Kind byte of topic records (meta column family), followed by the name.
pub const KIND_TOPIC: u8 = b't';
/// Kind byte of schema records stored before texts were kept per tenant
/// (meta column family), followed by the id. Read, never written.
pub const KIND_SCHEMA: u8 = b's';
/// Kind byte of a tenant's schema text (meta column family), followed by
/// the tenant's length (one byte), the tenant and the id.
pub const KIND_TENANT_SCHEMA: u8 = b'S';
/// Kind byte of trim points (meta column family), followed by the topic id.
pub const KIND_TRIM: u8 = b'm';

/// Kind byte of managed-subscription records (meta column family),
/// followed by the id.
pub const KIND_MANAGED: u8 = b'g';

/// Kind byte of a tenant's record (records column family), followed by the
/// tenant's length (one byte), the tenant and the record key.
pub const KIND_RECORD: u8 = b'r';
/// Kind byte of a tenant's counter (records column family), followed by the
/// tenant's length (one byte), the tenant and the counter name.
pub const KIND_COUNTER: u8 = b'c';
/// Key of the last revision handed out to a record (records column family).
pub const RECORD_REVISION_KEY: &[u8] = b"v";

/// Key of the next-topic-id counter (meta column family).
pub const NEXT_TOPIC_ID_KEY: &[u8] = b"n";

/// Length of an event key.
pub const EVENT_KEY_LEN: usize = 1 + 4 + 8;

/// `e | topic_id:u32 | offset:u64`.
pub fn event_key(topic: TopicId, offset: Offset) -> [u8; EVENT_KEY_LEN] {
    let mut k = [0u8; EVENT_KEY_LEN];
    k[0] = KIND_EVENT;
    k[1..5].copy_from_slice(&topic.0.to_be_bytes());
    k[5..13].copy_from_slice(&offset.0.to_be_bytes());
    k
}

/// The exclusive upper bound of a topic's event keys: the first key of the
/// next topic id (or one past the kind byte for the last id).
pub fn event_key_upper_bound(topic: TopicId) -> Vec<u8> {
    match topic.0.checked_add(1) {
        Some(next) => {
            let mut k = vec![KIND_EVENT];
            k.extend_from_slice(&next.to_be_bytes());
            k
        }
        None => vec![KIND_EVENT + 1],
    }
}

/// Splits an event key into topic and offset.
pub fn parse_event_key(key: &[u8]) -> Option<(TopicId, Offset)> {
    if key.len() != EVENT_KEY_LEN || key[0] != KIND_EVENT {
        return None;
    }
    let topic = u32::from_be_bytes(key[1..5].try_into().ok()?);
    let offset = u64::from_be_bytes(key[5..13].try_into().ok()?);
    Some((TopicId(topic), Offset(offset)))
}

/// `t | name`.
pub fn topic_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(KIND_TOPIC);
    k.extend_from_slice(name.as_bytes());
    k
}

/// `s | schema id`.
pub fn schema_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(KIND_SCHEMA);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `S | tenant_len:u8 | tenant | schema id`. Tenant ids are 18 bytes; the
/// length keeps the key unambiguous for any other stored form.
pub fn tenant_schema_key(tenant: &TenantId, id: &str) -> Vec<u8> {
    // Canonical ids are 18 bytes; any other stored form comes from a topic
    // name (at most 255 bytes with its prefix), so nothing is cut in
    // practice: the cut only keeps the encoding total.
    let t = tenant.as_str().as_bytes();
    let t = &t[..t.len().min(usize::from(u8::MAX))];
    let len = u8::try_from(t.len()).unwrap_or(u8::MAX);
    let mut k = Vec::with_capacity(2 + t.len() + id.len());
    k.push(KIND_TENANT_SCHEMA);
    k.push(len);
    k.extend_from_slice(t);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits a tenant schema key into tenant and schema id.
pub fn parse_tenant_schema_key(key: &[u8]) -> Option<(TenantId, String)> {
    let (&kind, rest) = key.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if kind != KIND_TENANT_SCHEMA || rest.len() < usize::from(len) {
        return None;
    }
    let (tenant, id) = rest.split_at(usize::from(len));
    let tenant = std::str::from_utf8(tenant).ok()?;
    let id = std::str::from_utf8(id).ok()?;
    Some((TenantId::from_stored(tenant), id.to_owned()))
}

/// `kind | tenant_len:u8 | tenant | name`: the tenant's namespace of
/// `kind`, then the name, so one tenant's keys with a common prefix are one
/// contiguous range, in the names' byte order. The record store admits
/// tenants of at most 64 bytes, so the length fits its byte.
fn tenant_scoped(kind: u8, tenant: &TenantId, name: &str) -> Vec<u8> {
    let t = tenant.as_str().as_bytes();
    let len = u8::try_from(t.len()).unwrap_or(u8::MAX);
    let t = &t[..usize::from(len)];
    let mut k = Vec::with_capacity(2 + t.len() + name.len());
    k.push(kind);
    k.push(len);
    k.extend_from_slice(t);
    k.extend_from_slice(name.as_bytes());
    k
}

/// `r | tenant_len:u8 | tenant | key`; with a prefix of keys for `key`,
/// the start of the range of the tenant's keys with that prefix.
pub fn record_key(tenant: &TenantId, key: &str) -> Vec<u8> {
    tenant_scoped(KIND_RECORD, tenant, key)
}

/// `c | tenant_len:u8 | tenant | name`.
pub fn counter_key(tenant: &TenantId, name: &str) -> Vec<u8> {
    tenant_scoped(KIND_COUNTER, tenant, name)
}

/// `g | managed subscription id`.
pub fn managed_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(KIND_MANAGED);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `m | topic_id:u32`.
pub fn trim_key(topic: TopicId) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = KIND_TRIM;
    k[1..5].copy_from_slice(&topic.0.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_keys_sort_like_offsets(t: u32, a: u64, b: u64) {
            prop_assert_eq!(a.cmp(&b), event_key(TopicId(t), Offset(a)).cmp(&event_key(TopicId(t), Offset(b))));
        }

        #[test]
        fn event_keys_group_by_topic(t1: u32, t2: u32, a: u64, b: u64) {
            prop_assume!(t1 != t2);
            let (k1, k2) = (event_key(TopicId(t1), Offset(a)), event_key(TopicId(t2), Offset(b)));
            prop_assert_eq!(t1.cmp(&t2), k1.cmp(&k2));
        }

        #[test]
        fn tenant_schema_keys_round_trip(short in "[0-9A-Za-z]{15}", id in "[0-9A-Za-z_-]{0,40}") {
            let tenant = TenantId::parse(&short).expect("an org id");
            let key = tenant_schema_key(&tenant, &id);
            prop_assert_eq!(parse_tenant_schema_key(&key), Some((tenant, id)));
            prop_assert_ne!(key[0], KIND_SCHEMA);
        }

        #[test]
        fn record_keys_sort_like_their_keys_within_a_tenant(
            t1 in "[0-9A-Za-z]{15}", t2 in "[0-9A-Za-z]{15}",
            a in "[A-Za-z0-9_.-]{1,20}", b in "[A-Za-z0-9_.-]{1,20}",
        ) {
            let (t1, t2) = (TenantId::parse(&t1).expect("org"), TenantId::parse(&t2).expect("org"));
            prop_assert_eq!(a.cmp(&b), record_key(&t1, &a).cmp(&record_key(&t1, &b)));
            // A key starts with a prefix exactly when its stored key does.
            prop_assert_eq!(
                a.starts_with(b.as_str()),
                record_key(&t1, &a).starts_with(&record_key(&t1, &b))
            );
            if t1 != t2 {
                prop_assert!(!record_key(&t1, &a).starts_with(&record_key(&t2, "")));
            }
            prop_assert_ne!(record_key(&t1, &a), counter_key(&t1, &a));
        }

        #[test]
        fn event_keys_round_trip(t: u32, o: u64) {
            prop_assert_eq!(parse_event_key(&event_key(TopicId(t), Offset(o))), Some((TopicId(t), Offset(o))));
        }

        #[test]
        fn upper_bound_is_above_every_key_of_the_topic(t: u32, o: u64) {
            let ub = event_key_upper_bound(TopicId(t));
            prop_assert!(event_key(TopicId(t), Offset(o)).as_slice() < ub.as_slice());
            if let Some(n) = t.checked_add(1) {
                prop_assert!(event_key(TopicId(n), Offset(0)).as_slice() >= ub.as_slice());
            }
        }
    }
}
