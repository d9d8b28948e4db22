//! Integration tests: a real tonic client against the real server over
//! loopback, each test with its own port and temporary data folder.

// Helpers are `pub` for use across the test modules of this one crate.
#![allow(unreachable_pub)]

mod admin;
mod auth;
mod cdc;
mod channels;
mod channels_admin;
mod channels_crash;
mod cli;
mod common;
mod console;
mod console_topic;
mod crash;
mod devsetup;
mod durability;
mod fault_injection;
mod faults;
mod faults_admin;
mod graceful;
mod hostile;
mod http_client;
mod jetstream;
mod jetstream_startup;
mod leaks;
mod managed;
mod metadata;
mod orgauth;
mod publish;
mod rest;
mod schemas;
mod subscribe;
mod subscribe_cli;
mod terminal;
mod tls;
mod top;
mod topics;
mod transport;
