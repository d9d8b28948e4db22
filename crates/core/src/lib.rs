//! eventbus-core: the ground every other eventbus crate stands on.
//!
//! Owns: the shared value types ([`types`]: ids, names, tenants), the
//! append-only registry of error codes ([`error`]), the server's metric
//! families ([`metrics`]), and the topic log contract ([`log`]): the
//! [`log::TopicLog`] trait, its record types, the in-memory backend and the
//! contract suite every backend runs.
//!
//! Must not: depend on any other eventbus crate, name a storage engine
//! (RocksDB and JetStream are backend crates above this one), know Avro
//! (`eventbus-schema`) or the wire protocol (the root `eventbus` crate).
//! `tonic`, `prost`, `apache_avro` and `rocksdb` are not dependencies here,
//! so the compiler keeps it that way.

pub mod error;
pub mod log;
pub mod metrics;
pub mod types;
