//! Client plumbing shared by the client commands ([`crate::cli`]) and the
//! load generator ([`crate::bench`]): connecting to an eventbus, showing its
//! errors, the wall clock, and the duration syntax every client flag and
//! server setting takes.
//!
//! Owns: how a server address becomes a gRPC channel (plaintext or TLS) and
//! how a server error is shown to a person.
//! Must not: know any command's arguments or output, or name the engine,
//! storage or the server: a client sees only what the wire shows.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tonic::transport::{Channel, Endpoint};

/// Connects to an eventbus given as `host:port`, `http://host:port` or
/// `https://host:port`. TLS is used for `https://` and whenever `tls` names
/// a CA or a client certificate.
///
/// # Errors
/// A malformed address, unreadable TLS files, or the connection failing
/// within `timeout`.
pub async fn connect(
    server: &str,
    timeout: Duration,
    tls: &crate::tls::ClientTls,
) -> Result<Channel> {
    let wants_tls = tls.ca.is_some() || tls.cert.is_some();
    let uri = match server.split_once("://") {
        Some(("http", rest)) if wants_tls => format!("https://{rest}"),
        Some(_) => server.to_owned(),
        None if wants_tls => format!("https://{server}"),
        None => format!("http://{server}"),
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("`{server}` is not a server address"))?
        .connect_timeout(timeout);
    if uri.starts_with("https://") {
        let host = endpoint.uri().host().unwrap_or_default().to_owned();
        endpoint = endpoint.tls_config(tls.config(&host)?)?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to eventbus at {uri}"))
}

/// Explains a server error with its error code.
pub fn rpc_error(what: &str, st: tonic::Status) -> anyhow::Error {
    let code = st
        .metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    anyhow!(
        "{what} failed: {:?}: {} (error-code: {code})",
        st.code(),
        st.message()
    )
}

/// Current wall-clock time, epoch milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses a duration the way every setting and client flag takes one
/// (`30s`, `5m`, `72h`, `100ms`).
///
/// # Errors
/// A message naming the value and the expected form.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 72h: {e}"))
}
