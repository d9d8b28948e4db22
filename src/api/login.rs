//! What the login areas of the HTTP listener share (OAuth in oauth.rs,
//! SOAP in soap.rs): the org directory and sessions, the URLs a login
//! answer names, bounded request bodies, the bearer token.
//!
//! Must not: answer requests itself.

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::auth::org::{Directory, Sessions};

/// The largest login request body read (SOAP envelope, OAuth form): a
/// login is a few hundred bytes; anything near this is not one.
pub const MAX_LOGIN_BODY: usize = 64 * 1024;

/// What the login areas (OAuth, SOAP) share.
#[derive(Clone)]
pub struct Login {
    /// The org's users and connected apps.
    pub directory: Arc<Directory>,
    /// The sessions issued.
    pub sessions: Arc<Sessions>,
    /// Whether the listener speaks TLS (the scheme of the URLs answered).
    pub tls: bool,
}

impl Login {
    /// `scheme://host[:port]` of this listener as the client reached it
    /// (its `Host` header), so the calls that follow a login reach the same
    /// listener. A `Host` with characters no host name has is not echoed.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }
}

/// Reads a request body of at most [`MAX_LOGIN_BODY`] bytes (chunked or
/// not).
///
/// # Errors
/// A message for a body that is too large or breaks off.
pub async fn read_body(body: axum::body::Body) -> Result<bytes::Bytes, String> {
    axum::body::to_bytes(body, MAX_LOGIN_BODY)
        .await
        .map_err(|e| {
            use std::error::Error as _;
            let too_large = e
                .source()
                .is_some_and(|s| s.to_string().contains("length limit"));
            if too_large {
                format!("the request body is larger than {MAX_LOGIN_BODY} bytes")
            } else {
                format!("the request body could not be read: {e}")
            }
        })
}

/// The bearer token of `Authorization: Bearer …` (or `OAuth …`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_names_the_host_the_client_reached() {
        let login = Login {
            directory: Arc::new(Directory::open()),
            sessions: Arc::new(Sessions::new(std::time::Duration::from_secs(60))),
            tls: true,
        };
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8443".parse().expect("header"));
        assert_eq!(login.base_url(&h), "https://127.0.0.1:8443");
        h.insert("host", "evil\"<x>".parse().expect("header"));
        assert_eq!(login.base_url(&h), "https://localhost");
    }
}
