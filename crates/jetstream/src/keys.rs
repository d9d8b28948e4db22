//! Key-value key escaping.
//!
//! Owns: how any string (a topic name, a subscription id, a lease key, a
//! tenant's schema id) becomes a key the buckets accept, and back. Must not:
//! touch a bucket.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use eventbus_core::log::LogError;
use eventbus_core::types::{SchemaId, TenantId};

/// A KV key (or header text) for any string: base64url has only allowed
/// characters and never starts or ends with `.`.
pub(crate) fn key_of(s: &str) -> String {
    if s.is_empty() {
        // The bucket refuses empty keys; `=` is no base64url character.
        return "=".into();
    }
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

pub(crate) fn unkey(k: &str) -> Result<String, LogError> {
    if k == "=" {
        return Ok(String::new());
    }
    URL_SAFE_NO_PAD
        .decode(k)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LogError::Corrupt(format!("key {k:?} is not base64url of UTF-8").into()))
}

/// The schemas bucket's key of a tenant's text (`<tenant>/<id>`; tenant ids
/// have no `/`), or with `None` of a text stored before texts were kept per
/// tenant (the id alone; schema ids have no `/` either).
pub(crate) fn schema_key(tenant: Option<&TenantId>, id: &SchemaId) -> String {
    match tenant {
        Some(t) => key_of(&format!("{t}/{id}")),
        None => key_of(id.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_round_trips_through_a_key() {
        for s in ["", "/event/Order__e", "a.b c", "ünï/çødé", "="] {
            let k = key_of(s);
            assert!(!k.is_empty() && !k.starts_with('.') && !k.ends_with('.'));
            assert_eq!(unkey(&k).expect("a key of ours"), s);
        }
    }

    #[test]
    fn a_tenants_schema_key_differs_from_the_legacy_one() {
        let id = SchemaId::new("s1");
        let tenant = TenantId::parse("00D000000000000").expect("org id");
        assert_ne!(schema_key(Some(&tenant), &id), schema_key(None, &id));
        assert_eq!(
            unkey(&schema_key(Some(&tenant), &id)).expect("a key of ours"),
            format!("{tenant}/s1")
        );
    }
}
