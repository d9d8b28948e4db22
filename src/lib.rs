//! eventbus: an event bus server that speaks the Salesforce Pub/Sub API.
//!
//! This root crate is the top of the workspace: the gRPC protocol layer
//! ([`api`], with the code generated from `proto/`), authentication
//! ([`auth`]), the server's composition ([`server`], [`config`],
//! [`transport`], [`tls`], [`telemetry`]) and the clients of the one
//! `eventbus` binary ([`cli`], [`bench`](mod@bench)). Everything below it is its own
//! crate, and a crate may depend only on crates below it (README,
//! "Architecture"):
//!
//! | crate | holds | depends on |
//! |---|---|---|
//! | `eventbus-core` ([`types`], [`error`], [`log`], [`telemetry::metrics`]) | value types, error codes, metrics, the log contract, the memory log | - |
//! | `eventbus-schema` ([`schema`]) | Avro: parsing, limits, validation, JSON | core |
//! | `eventbus-rocksdb` | the RocksDB store and log backend | core |
//! | `eventbus-jetstream` | the NATS JetStream log backend | core |
//! | `eventbus-objects` ([`objects`]) | sObjects, change event schemas, bitmaps | core, schema |
//! | `eventbus-broker` ([`broker`]) | the engine | core, schema |
//! | `eventbus-filter` | channel member filter expressions | - |
//! | `eventbus-channels` ([`channels`]) | custom channels: definitions, routing | core, schema, objects, filter, broker |
//! | `eventbus-cdc` ([`cdc`]) | records and their change events | core, schema, objects, broker, filter, channels |
//! | `eventbus-faults` ([`faults`]) | fault rules: what to break on purpose, for which calls | core |
//! | `eventbus` (this crate) | protocol, server, clients, binary | all of the above |
//!
//! The re-exports below keep one path per layer for this crate's code and
//! its tests (`crate::broker`, `eventbus::schema`, ...).
//!
//! Inside this crate the modules keep the same rule (no upward edges, no
//! cycles), checked by `scripts/check-layers.sh`:
//! - [`transport`] (accepting, TLS handshakes, connection timeouts, response
//!   budgets), [`tls`], [`auth`] and [`telemetry`] are below [`api`] (the
//!   gRPC protocol layer) and use neither it nor the engine's callers;
//! - [`console`] is the web console on the HTTP listener (server-rendered
//!   pages over [`api`]'s HTTP context, the engine and [`auth`]); it names
//!   no server wiring and no client;
//! - [`config`] holds the server's settings and names no client;
//! - [`server`] composes the server: it opens the log through [`backend`]
//!   and serves plaintext health through [`health_listener`];
//! - [`cli`] and [`bench`](mod@bench) are gRPC clients of a server (they use [`api`]'s
//!   generated types and [`schema`] for JSON <-> Avro, never the engine, the
//!   log or storage); they share [`client`] and never use each other;
//! - [`command_line`] parses the binary's command line and hands a
//!   subcommand to the server ([`config`]), [`cli`] or [`bench`](mod@bench).
//!
//! `tonic`/`prost` appear only in `api/`, `cli/`, `bench/`, `client.rs`,
//! `server.rs`, `health_listener.rs`, `tls.rs`, `transport/` and the fuzz
//! targets (`fuzzing`, test and `fuzzing` builds only).
//!
//! [`server`], [`backend`] and [`config`] (and the RocksDB backend) exist
//! only with the default `rocksdb` feature; the fuzz build turns it off.

pub use eventbus_broker as broker;
pub use eventbus_cdc as cdc;
pub use eventbus_channels as channels;
pub use eventbus_core::{error, log, types};
pub use eventbus_faults as faults;
pub use eventbus_objects as objects;
pub use eventbus_schema as schema;

pub mod api;
pub mod auth;
#[cfg(feature = "rocksdb")]
pub mod backend;
pub mod bench;
pub mod cli;
pub mod client;
#[cfg(feature = "rocksdb")]
pub mod command_line;
#[cfg(feature = "rocksdb")]
pub mod config;
pub mod console;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod health_listener;
#[cfg(feature = "rocksdb")]
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod transport;
