//! eventbus: an event bus server that speaks the Salesforce Pub/Sub API.
//!
//! Module map and dependency rule (no upward edges, no cycles):
//! - [`api`] (gRPC protocol layer) uses [`broker`] and [`schema`];
//! - [`broker`] (engine) uses [`log`] and [`schema`];
//! - [`log`] (topic log trait and backends) uses [`store`];
//! - [`schema`] (Avro) and [`store`] (RocksDB) are leaves;
//! - [`server`] composes everything; [`config`], [`types`], [`error`] and
//!   [`telemetry`] may be used by any module;
//! - [`transport`] (accepting, TLS handshakes, connection timeouts, response
//!   budgets) is below [`api`]: `api` uses it, it uses neither `api` nor the
//!   engine;
//! - [`cli`] is a gRPC client of the server (uses [`api`]'s generated types
//!   and [`schema`] for JSON ⇄ Avro), never the broker, the log or storage;
//! - [`command_line`] parses the binary's command line and hands a
//!   subcommand to the server settings ([`config`]), [`cli`] or [`bench`];
//!   those two share [`client`] and never use each other; [`config`] uses
//!   none of them;
//! - [`server`] opens the log through [`backend`] and serves plaintext health
//!   through [`health_listener`].
//!
//! [`server`], [`backend`] and [`store`] (and the RocksDB log backend) exist
//! only with the default `rocksdb` feature; the fuzz build turns it off.
//!
//! `tonic`/`prost` appear only in `api/`, `cli/`, `bench/`, `client.rs`,
//! `server.rs`, `health_listener.rs`, `tls.rs`,
//! `transport/io.rs` (tonic's `Connected` hook) and the fuzz
//! targets (`fuzzing`, test and `fuzzing` builds only),
//! `apache_avro` only in `schema/`, `rocksdb` only in `store/` and the log's
//! RocksDB files.

pub mod api;
pub mod auth;
#[cfg(feature = "rocksdb")]
pub mod backend;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod command_line;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod health_listener;
pub mod log;
pub mod schema;
#[cfg(feature = "rocksdb")]
pub mod server;
#[cfg(feature = "rocksdb")]
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod types;
