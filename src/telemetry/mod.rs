//! Logging setup.
//!
//! Owns: the tracing subscriber. Must not: hold business logic.

use tracing_subscriber::EnvFilter;

/// Installs a human-readable subscriber on stderr, filtered by `RUST_LOG`
/// (default `info`). Payloads and tokens are never logged anywhere.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people; logs read by tools stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
