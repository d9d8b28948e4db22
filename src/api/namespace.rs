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

use std::borrow::Cow;

use tonic::Status;

use crate::auth::same_org;
use crate::broker::{BrokerError, DEFAULT_TENANT_GUID, PublishReceipt};

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
        match self.scrub_text(st.message()) {
            Cow::Borrowed(_) => st,
            Cow::Owned(message) => Status::with_metadata(st.code(), message, st.metadata().clone()),
        }
    }

    /// The receipt with stored names in its per-event errors turned back
    /// into the client's names (`… is not a schema of topic /event/X__e`).
    pub fn scrub_receipt(&self, mut receipt: PublishReceipt) -> PublishReceipt {
        for outcome in &mut receipt.outcomes {
            if let Err(msg) = &mut outcome.result
                && let Cow::Owned(scrubbed) = self.scrub_text(msg)
            {
                *msg = scrubbed;
            }
        }
        receipt
    }

    /// `text` with this namespace's stored names turned into client names.
    fn scrub_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.prefix.is_empty() || !text.contains(self.prefix.as_str()) {
            return Cow::Borrowed(text);
        }
        Cow::Owned(text.replace(self.prefix.as_str(), ""))
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
    fn the_broker_reads_the_tenant_of_a_stored_name() {
        use crate::broker::{owner_of_topic, owner_prefix};
        for tenant in ["00D5e000000AbcdEAC", "00D5e000000Abcd", DEFAULT_TENANT_GUID] {
            let stored = Namespace::of(tenant).inward("/event/A__e").expect("inward");
            assert_eq!(
                owner_of_topic(&stored),
                crate::types::TenantId::from_stored(tenant),
                "{tenant}"
            );
            let other = Namespace::of(tenant).inward("/data/B").expect("inward");
            assert_eq!(owner_prefix(&stored), owner_prefix(&other), "{tenant}");
        }
        let acme = Namespace::of("00D5e000000AbcdEAC").inward("/event/A__e");
        let globex = Namespace::of("00D5e000000XyzwEAC").inward("/event/A__e");
        let default = Namespace::of(DEFAULT_TENANT_GUID).inward("/event/A__e");
        let (acme, globex, default) = (acme.expect("a"), globex.expect("g"), default.expect("d"));
        assert_ne!(owner_prefix(&acme), owner_prefix(&globex));
        assert_ne!(owner_prefix(&acme), owner_prefix(&default));
        assert_eq!(owner_prefix(&default), "");
    }

    #[test]
    fn statuses_and_per_event_errors_show_client_names() {
        use crate::broker::PublishOutcome;
        let acme = Namespace::of("00D5e000000AbcdEAC");
        let stored = acme.inward("/event/A__e").expect("inward");
        let st = acme.scrub(Status::not_found(format!(
            "The topic {stored} was deleted."
        )));
        assert_eq!(st.message(), "The topic /event/A__e was deleted.");
        let receipt = PublishReceipt {
            schema_id: crate::types::SchemaId::new("s"),
            outcomes: vec![
                PublishOutcome {
                    correlation_key: "1".into(),
                    result: Err(format!(
                        "The schema ID x is not a schema of topic {stored}."
                    )),
                },
                PublishOutcome {
                    correlation_key: "2".into(),
                    result: Ok(crate::types::ReplayId::from(crate::types::Offset(1))),
                },
            ],
        };
        let receipt = acme.scrub_receipt(receipt);
        assert_eq!(
            receipt.outcomes[0].result,
            Err("The schema ID x is not a schema of topic /event/A__e.".to_owned())
        );
        assert!(receipt.outcomes[1].result.is_ok());
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
