//! eventbus-rocksdb: the embedded storage backend, a topic log on RocksDB.
//!
//! Owns: opening the database with every option we set ([`store`]), the key
//! layouts ([`keys`]) and stored event record layout ([`codec`]), the single
//! writer with group commit (`writer`), the per-tenant record store
//! (`records`) and [`log::RocksTopicLog`], the
//! [`eventbus_core::log::TopicLog`] the server runs on by default.
//!
//! Must not: know Avro, the engine or the wire protocol. It depends only on
//! `eventbus-core`, and it is the only crate of the workspace that depends on
//! `rocksdb`, so no other layer can reach the database directly.

pub mod codec;
mod io;
pub mod keys;
pub mod log;
mod records;
pub mod store;
mod writer;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod records_tests;

use eventbus_core::types;

pub use log::RocksTopicLog;
pub use store::{Store, StoreError, WalRecovery};
