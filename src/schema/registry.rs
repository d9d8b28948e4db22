//! The in-memory registry of every known schema, by schema id.
//!
//! Owns: the id → [`ParsedSchema`] map shared by publish (validation), subscribe and
//! `GetSchema`.
//! Must not: persist anything or hold topic state (a topic's current schema id lives with
//! the topic and is looked up here); whoever loads schemas from storage inserts them.
//! Locking: one `RwLock`, held for a single map operation and never across a call out.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::schema::ParsedSchema;
use crate::types::SchemaId;

/// Concurrent in-memory map of every known schema by id (std::sync::RwLock, short critical sections).
///
/// Reads (every published event looks its schema up) take the read lock for one hash
/// lookup and an `Arc` clone; inserts are rare (a new schema version).
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    by_id: RwLock<HashMap<SchemaId, Arc<ParsedSchema>>>,
}

impl SchemaRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a schema, idempotent by id: if a schema with the same id is already known, the
    /// stored one is kept (same id means same canonical form) and returned, and `schema` is
    /// dropped. The first JSON text registered for an id is the one `GetSchema` returns.
    pub fn insert(&self, schema: ParsedSchema) -> Arc<ParsedSchema> {
        // Cheap path first: re-registering a known schema (on every restart or topic load)
        // should not contend with readers for the write lock.
        if let Some(existing) = self.get(schema.id()) {
            return existing;
        }
        let mut map = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(schema.id().clone())
                .or_insert_with(|| Arc::new(schema)),
        )
    }

    /// The schema with this id, if known.
    pub fn get(&self, id: &SchemaId) -> Option<Arc<ParsedSchema>> {
        self.read().get(id).cloned()
    }

    /// How many schemas are known.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no schema is known.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SchemaId, Arc<ParsedSchema>>> {
        // A poisoned lock only means a thread panicked while holding it. The critical
        // sections are a single map lookup or insert, which leave the map consistent even
        // then, so keep serving rather than spread the panic to every publisher.
        self.by_id.read().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn insert_then_get_by_id() {
        let registry = SchemaRegistry::new();
        assert!(registry.is_empty());
        let v1 = registry.insert(parsed(ORDER_V1));
        let v2 = registry.insert(parsed(ORDER_V2));
        assert_ne!(v1.id(), v2.id());
        assert_eq!(registry.len(), 2);
        let got = registry.get(v1.id()).expect("v1 is registered");
        assert!(Arc::ptr_eq(&got, &v1));
        assert!(registry.get(&SchemaId::new("nope")).is_none());
    }

    #[test]
    fn insert_is_idempotent_and_keeps_the_first_json() {
        let registry = SchemaRegistry::new();
        let first = registry.insert(parsed(ORDER_V1));
        // Same canonical form, different text: doc strings do not change the id.
        let with_docs = ORDER_V1.replace(
            r#""type":"long"}"#,
            r#""type":"long","doc":"CreatedDate:DateTime"}"#,
        );
        let second = registry.insert(parsed(&with_docs));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(second.json(), ORDER_V1);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn concurrent_inserts_of_one_schema_store_one_copy() {
        let registry = Arc::new(SchemaRegistry::new());
        let stored: Vec<Arc<ParsedSchema>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let registry = Arc::clone(&registry);
                    scope.spawn(move || registry.insert(parsed(ORDER_V2)))
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
