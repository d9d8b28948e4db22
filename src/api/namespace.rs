//! Tenant namespaces: the topic names a tenant sees and the names the
//! broker stores.
//!
//! Owns: the mapping between a client's topic name and the stored one. The
//! default tenant's topics keep their names (the topics folder provisions
//! them, and data written before tenants existed stays valid); any other
//! tenant's `/event/X__e` is stored as `/~<org id, 15 chars>/event/X__e`.
//! Names a client sends that start with `/~` never reach the broker, so no
//! tenant can name another's topics; such a name is answered like any
//! unknown topic. Must not: decide who the tenant is (that is `auth`).

use tonic::Status;

use crate::auth::same_org;
use crate::broker::{BrokerError, DEFAULT_TENANT_GUID};

pub use crate::types::TENANT_MARK;

/// One tenant's view of topic names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Empty for the default tenant, else `/~<org15>`.
    prefix: String,
}

impl Namespace {
    /// The namespace of `tenant` (an org id, 15 or 18 characters: both
    /// forms of one org share a namespace).
    pub fn of(tenant: &str) -> Self {
        if same_org(tenant, DEFAULT_TENANT_GUID) {
            return Self {
                prefix: String::new(),
            };
        }
        let org15 = tenant.get(..15).unwrap_or(tenant);
        Self {
            prefix: format!("{TENANT_MARK}{org15}"),
        }
    }

    /// The stored name for a name the client sent. Blank or malformed names
    /// pass through unchanged, so they fail the broker's validation with
    /// the same message for every tenant.
    ///
    /// # Errors
    /// [`BrokerError::TopicNotFound`] for a name in the reserved `/~` form.
    pub fn inward(&self, name: &str) -> Result<String, BrokerError> {
        if name.starts_with(TENANT_MARK) {
            return Err(BrokerError::TopicNotFound(name.to_owned()));
        }
        if !name.starts_with('/') {
            return Ok(name.to_owned());
        }
        Ok(format!("{}{name}", self.prefix))
    }

    /// The client's name for a stored name, or `None` when the stored name
    /// belongs to another tenant.
    pub fn outward<'a>(&self, stored: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return (!stored.starts_with(TENANT_MARK)).then_some(stored);
        }
        stored
            .strip_prefix(self.prefix.as_str())
            .filter(|rest| rest.starts_with('/'))
    }

    /// The status with stored names in its message turned back into the
    /// client's names (the broker's messages quote the name it was given).
    pub fn scrub(&self, st: Status) -> Status {
        if self.prefix.is_empty() || !st.message().contains(self.prefix.as_str()) {
            return st;
        }
        let message = st.message().replace(self.prefix.as_str(), "");
        Status::with_metadata(st.code(), message, st.metadata().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tenant_names_are_unchanged_and_others_are_prefixed() {
        let default = Namespace::of(DEFAULT_TENANT_GUID);
        assert_eq!(
            default.inward("/event/A__e").ok().as_deref(),
            Some("/event/A__e")
        );
        let acme = Namespace::of("00D5e000000AbcdEAC");
        let stored = acme.inward("/event/A__e").expect("inward");
        assert_eq!(stored, "/~00D5e000000Abcd/event/A__e");
        assert_eq!(acme.outward(&stored), Some("/event/A__e"));
        // Both lengths of one org id are one namespace.
        assert_eq!(Namespace::of("00D5e000000Abcd"), acme);
        // Nobody sees another tenant's stored names.
        assert_eq!(default.outward(&stored), None);
        let other = Namespace::of("00D5e000000ZzzzEAC");
        assert_eq!(other.outward(&stored), None);
        assert_eq!(acme.outward("/event/A__e"), None);
        assert_eq!(acme.outward("/~00D5e000000Abcdx/event/A__e"), None);
    }

    #[test]
    fn reserved_and_malformed_names_do_not_cross_namespaces() {
        let acme = Namespace::of("00D5e000000AbcdEAC");
        for ns in [&acme, &Namespace::of(DEFAULT_TENANT_GUID)] {
            assert!(ns.inward("/~00D5e000000Zzzz/event/A__e").is_err());
            assert_eq!(ns.inward("").ok().as_deref(), Some(""));
            assert_eq!(ns.inward("event/A").ok().as_deref(), Some("event/A"));
        }
    }
}
