//! The in-memory registry of every known schema, by schema id, and of each
//! tenant's text of it.
//!
//! Owns: the id → [`ParsedSchema`] map shared by publish (validation) and
//! compatibility checks, and the (tenant, id) → JSON text map `GetSchema`
//! and `ListSchemas` answer from. Schema ids hash the Parsing Canonical
//! Form, which drops `doc`, `aliases` and `default`: two tenants' schemas
//! with one id validate the same payloads, so one parsed schema per id
//! serves every tenant, but each tenant's text is its own and is never
//! shown to another.
//! Must not: persist anything or hold topic state (a topic's current schema id lives with
//! the topic and is looked up here); whoever loads schemas from storage inserts them.
//! Locking: one `RwLock`, held for a single map operation and never across a call out.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::ParsedSchema;
use crate::types::{SchemaId, TenantId};

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<SchemaId, Arc<ParsedSchema>>,
    texts: HashMap<(TenantId, SchemaId), Arc<str>>,
}

/// Concurrent in-memory map of every known schema by id and of each
/// tenant's text (std::sync::RwLock, short critical sections).
///
/// Reads (every published event looks its schema up) take the read lock for one hash
/// lookup and an `Arc` clone; inserts are rare (a new schema version).
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    maps: RwLock<Maps>,
}

impl SchemaRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a schema, idempotent by id: if a schema with the same id is already known, the
    /// stored one is kept (same id means same canonical form, so it validates the same
    /// payloads) and returned, and `schema` is dropped. With an `owner`, the schema's JSON
    /// text becomes that tenant's text of the id unless the tenant has one already (its
    /// first registration is the text it gets back). Without one (a text stored before
    /// texts were kept per tenant), no tenant gets the text from here.
    pub fn insert(&self, owner: Option<&TenantId>, schema: ParsedSchema) -> Arc<ParsedSchema> {
        // Cheap path first: re-registering a known schema (on every restart or topic load)
        // should not contend with readers for the write lock.
        let known = {
            let maps = self.read();
            let known = maps.by_id.get(schema.id()).cloned();
            let has_text =
                owner.is_none_or(|o| maps.texts.contains_key(&(o.clone(), schema.id().clone())));
            known.filter(|_| has_text)
        };
        if let Some(existing) = known {
            return existing;
        }
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(owner) = owner {
            maps.texts
                .entry((owner.clone(), schema.id().clone()))
                .or_insert_with(|| Arc::from(schema.json()));
        }
        Arc::clone(
            maps.by_id
                .entry(schema.id().clone())
                .or_insert_with(|| Arc::new(schema)),
        )
    }

    /// The schema with this id, if known, for validating payloads and checking
    /// compatibility. Its [`ParsedSchema::json`] is whichever tenant's text came first:
    /// never show it to a caller; [`SchemaRegistry::text`] gives a tenant its own.
    pub fn get(&self, id: &SchemaId) -> Option<Arc<ParsedSchema>> {
        self.read().by_id.get(id).cloned()
    }

    /// `owner`'s JSON text of the schema, if it registered one.
    pub fn text(&self, owner: &TenantId, id: &SchemaId) -> Option<Arc<str>> {
        self.read().texts.get(&(owner.clone(), id.clone())).cloned()
    }

    /// How many schemas are known.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether no schema is known.
    pub fn is_empty(&self) -> bool {
        self.read().by_id.is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // A poisoned lock only means a thread panicked while holding it. The critical
        // sections are a single map lookup or insert, which leave the maps consistent even
        // then, so keep serving rather than spread the panic to every publisher.
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER_V1: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"}]}"#;
    const ORDER_V2: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[{"name":"CreatedDate","type":"long"},{"name":"CreatedById","type":"string"},{"name":"Amount__c","type":["null","double"],"default":null}]}"#;

    fn parsed(json: &str) -> ParsedSchema {
        ParsedSchema::parse(json).expect("test schema parses")
    }

    #[test]
    fn registry_is_send_sync_and_default() {
        fn assert_send_sync<T: Send + Sync + Default>() {}
        assert_send_sync::<SchemaRegistry>();
        assert!(SchemaRegistry::default().is_empty());
    }

    fn tenant(org15: &str) -> TenantId {
        TenantId::parse(org15).expect("org id")
    }

    #[test]
    fn insert_then_get_by_id() {
        let registry = SchemaRegistry::new();
        assert!(registry.is_empty());
        let a = tenant("00D5e000000Aaaa");
        let v1 = registry.insert(Some(&a), parsed(ORDER_V1));
        let v2 = registry.insert(Some(&a), parsed(ORDER_V2));
        assert_ne!(v1.id(), v2.id());
        assert_eq!(registry.len(), 2);
        let got = registry.get(v1.id()).expect("v1 is registered");
        assert!(Arc::ptr_eq(&got, &v1));
        assert!(registry.get(&SchemaId::new("nope")).is_none());
    }

    #[test]
    fn insert_is_idempotent_and_keeps_each_tenants_first_text() {
        let registry = SchemaRegistry::new();
        let (a, b, c) = (
            tenant("00D5e000000Aaaa"),
            tenant("00D5e000000Bbbb"),
            tenant("00D5e000000Cccc"),
        );
        let first = registry.insert(Some(&a), parsed(ORDER_V1));
        // Same canonical form, different text: doc strings do not change the id.
        let with_docs = ORDER_V1.replace(
            r#""type":"long"}"#,
            r#""type":"long","doc":"B's private note"}"#,
        );
        let second = registry.insert(Some(&b), parsed(&with_docs));
        assert!(Arc::ptr_eq(&first, &second), "one parsed schema per id");
        assert_eq!(registry.len(), 1);
        let id = first.id();
        assert_eq!(registry.text(&a, id).as_deref(), Some(ORDER_V1));
        assert_eq!(registry.text(&b, id).as_deref(), Some(with_docs.as_str()));
        assert_eq!(registry.text(&c, id), None, "C registered nothing");
        // A tenant keeps its first text; a text without owner is nobody's.
        registry.insert(Some(&a), parsed(&with_docs));
        assert_eq!(registry.text(&a, id).as_deref(), Some(ORDER_V1));
        registry.insert(None, parsed(&with_docs));
        assert_eq!(registry.text(&c, id), None);
    }

    #[test]
    fn concurrent_inserts_of_one_schema_store_one_copy() {
        let registry = Arc::new(SchemaRegistry::new());
        let stored: Vec<Arc<ParsedSchema>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let registry = Arc::clone(&registry);
                    scope.spawn(move || {
                        registry.insert(Some(&tenant("00D5e000000Aaaa")), parsed(ORDER_V2))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("insert thread does not panic"))
                .collect()
        });
        assert_eq!(registry.len(), 1);
        for s in &stored {
            assert!(Arc::ptr_eq(s, &stored[0]));
        }
    }
}
