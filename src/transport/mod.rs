//! The transport under the listeners: how accepted connections are read
//! and written.
//!
//! Owns: the accepted-connection IO type ([`io`]). Must not: know gRPC
//! methods, statuses or the broker. It names tonic only for
//! `tonic::transport::server::Connected`, the trait a tonic server needs of
//! its connections.

pub mod io;
