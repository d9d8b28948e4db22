//! Record ids: 15 characters (the object's key prefix, three reserved
//! zeros, nine base-62 digits of a per-org counter) plus Salesforce's
//! three-character case-safety suffix. Records of Change Data Capture and
//! the Tooling records of channels get their ids this way.
//!
//! Owns: making ids and reading the forms clients send (15 or 18
//! characters). Must not: store anything.

use eventbus_core::types::id_suffix;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 18-character id of record number `n` of the object with key prefix
/// `prefix`.
pub fn record_id(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        // `v % 62` is below 62, so the index is in range.
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let id15 = format!(
        "{prefix}000{}",
        std::str::from_utf8(&digits).unwrap_or("000000000")
    );
    let suffix = id_suffix(&id15);
    id15 + &suffix
}

/// The canonical 18-character form of an id a client sent, or `None` when
/// it is no id (not 15 or 18 letters and digits). The suffix of an
/// 18-character id is recomputed, not trusted.
pub fn canonical(id: &str) -> Option<String> {
    if !matches!(id.len(), 15 | 18) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let id15 = &id[..15];
    Some(format!("{id15}{}", id_suffix(id15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_prefix_and_a_suffix_and_read_back() {
        let id = record_id("001", 1);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("001000000000001"), "{id}");
        assert_eq!(canonical(&id).as_deref(), Some(id.as_str()));
        assert_eq!(canonical(&id[..15]).as_deref(), Some(id.as_str()));
        let big = record_id("a00", 62u64.pow(9) - 1);
        assert!(big.starts_with("a00000zzzzzzzzz"), "{big}");
        assert_ne!(record_id("001", 2), record_id("001", 3));
        assert_eq!(canonical("001-bad"), None);
        assert_eq!(canonical("001000000000001AAAB"), None);
    }
}
