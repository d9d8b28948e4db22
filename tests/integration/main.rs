//! Integration tests: a real tonic client against the real server over
//! loopback, each test with its own port and temporary data folder.

// Helpers are `pub` for use across the test modules of this one crate.
#![allow(unreachable_pub)]

mod admin;
mod cli;
mod common;
mod crash;
mod durability;
mod publish;
mod subscribe;
mod topics;
