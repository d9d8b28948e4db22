//! What every client command does on the wire: a channel to the server
//! its connection settings name, requests carrying the authentication
//! headers and deadline, replay ids shown in hex.
//!
//! Owns: turning [`ConnArgs`] into a channel and request metadata.
//! Must not: run a command; the command files use this, never each other.

use anyhow::Result;
use tonic::transport::Channel;

use super::ConnArgs;

/// A channel to the server `conn` names.
///
/// # Errors
/// See [`crate::client::connect`].
pub(super) async fn channel(conn: &ConnArgs) -> Result<Channel> {
    crate::client::connect(&conn.server, conn.timeout, &conn.tls()).await
}

/// A unary request: the authentication headers and `--timeout` as its
/// deadline.
pub(super) fn unary<T>(conn: &ConnArgs, msg: T) -> tonic::Request<T> {
    let mut req = authorized(conn, msg);
    req.set_timeout(conn.timeout);
    req
}

/// A request carrying the authentication headers `conn` names (none when
/// no token is set: servers with `--auth none` need none).
pub(super) fn authorized<T>(conn: &ConnArgs, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(token) = &conn.access_token {
        let md = req.metadata_mut();
        for (key, value) in [
            ("accesstoken", Some(token.as_str())),
            ("instanceurl", Some(conn.instance_url.as_str())),
            ("tenantid", conn.tenant_id.as_deref()),
        ] {
            // A value that is not a valid header is left out; the server
            // then names the missing header.
            if let Some(v) = value.and_then(|v| v.parse().ok()) {
                md.insert(key, v);
            }
        }
    }
    req
}

/// Bytes (a replay id) in the hex form `subscribe --from` reads.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
