//! Logging setup, metric names and the metrics endpoint.
//!
//! Owns: the tracing subscriber, the Prometheus registry of the server,
//! the HTTP endpoint Prometheus scrapes ([`http`]) and the process metrics
//! read from /proc ([`process`]).
//! Must not: hold business logic.

pub mod http;
pub mod process;
pub use eventbus_core::metrics;

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber on stderr, filtered by `RUST_LOG` (default
/// `info`): human-readable `text`, or one JSON object per line with `json`.
/// Payloads and tokens are never logged anywhere.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            // Colour codes only for people; logs read by tools stay plain.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}
