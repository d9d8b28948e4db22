//! Fault injection: rules that make the server fail on purpose, the way
//! Salesforce's servers fail in production, so a client's reconnect and
//! retry logic can be tested on demand.
//!
//! Owns: the rule language ([`rule`]: which calls, what happens, how
//! often) and the table of rules in force ([`table`]). Must not: know
//! gRPC, HTTP or the server: the protocol layer asks [`FaultTable::check`]
//! what a call gets and carries it out, and the server decides whether
//! fault injection is on at all (it is off unless enabled).

pub mod rule;
pub mod table;

pub use rule::{Action, Call, Limit, Matcher, Rpc, Rule, RuleError, RuleSpec, parse_file};
pub use table::{FaultTable, Fired, MAX_RULES, RuleView};
