//! What every REST resource shares: the caller from `Authorization: Bearer`,
//! Salesforce's error bodies, API versions and record ids.
//!
//! Owns: the error list `[{"message","errorCode","fields"}]`, the versions
//! eventbus answers for, the 18-character id form and the user id that
//! fills `CreatedById`. Must not: know topics or schemas.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{Authenticator, Caller};

/// The oldest API version served (Winter '11, the oldest any client still
/// names in its defaults).
pub(super) const OLDEST: u32 = 20;
/// The newest API version served (Summer '25).
pub(super) const NEWEST: u32 = 64;
/// From this version on a platform event publish answers with an
/// `OPERATION_ENQUEUED` entry in `errors` (ORG_API_SPEC §3).
pub(super) const ENQUEUED_SINCE: u32 = 46;

/// A Salesforce REST error: the status and the list of errors.
#[derive(Debug)]
pub(super) struct RestError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl RestError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub(super) fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    /// `404 NOT_FOUND`, as Salesforce answers an unknown resource.
    pub(super) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// The entry of a save result's `errors` (which names the code
    /// `statusCode`, not `errorCode`).
    pub(super) fn save_error(&self) -> Value {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut entry = json!({ "message": self.message, "errorCode": self.code });
        if !self.fields.is_empty() {
            entry["fields"] = json!(self.fields);
        }
        (self.status, axum::Json(json!([entry]))).into_response()
    }
}

/// The caller named by the bearer token, or `401 INVALID_SESSION_ID`.
pub(super) fn caller(auth: &Authenticator, headers: &HeaderMap) -> Result<Caller, RestError> {
    auth.authenticate_bearer(crate::api::login::bearer(headers))
        .map_err(|e| {
            tracing::info!(reason = %e, "rest api call not authenticated");
            RestError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            )
        })
}

/// The major number of a `vNN.N` path segment eventbus serves, else
/// `NOT_FOUND` (what Salesforce answers for a version it does not have).
pub(super) fn version(segment: &str) -> Result<u32, RestError> {
    segment
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.len() <= 3)
        .and_then(|v| v.parse().ok())
        .filter(|v| (OLDEST..=NEWEST).contains(v))
        .ok_or_else(RestError::not_found)
}

/// The release name of an API version: three releases a year, Winter
/// (named after the next year), Spring and Summer; 20.0 is Winter '11.
pub(super) fn label(version: u32) -> String {
    let k = version - OLDEST;
    let season = ["Winter", "Spring", "Summer"][(k % 3) as usize];
    format!("{season} '{:02}", 11 + k / 3)
}

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 18-character, case-safe form of a 15-character id.
pub(super) fn id18(id15: &str) -> String {
    format!("{id15}{}", crate::types::id_suffix(id15))
}

/// An 18-character id with `prefix` (3 characters) whose other characters
/// come from `seed`: the same seed gives the same id.
pub(super) fn derived_id(prefix: &str, seed: &[u8]) -> String {
    let digest = Sha256::digest(seed);
    let body: String = digest
        .iter()
        .take(12)
        .map(|b| ALNUM[usize::from(*b) % ALNUM.len()] as char)
        .collect();
    id18(&format!("{prefix}{body}"))
}

/// The user id that fills `CreatedById`: the caller's principal when it is
/// a user id (`005…`, 15 or 18 characters), else an id derived from the
/// org and the principal, stable across calls and restarts.
pub(crate) fn user_id(caller: &Caller) -> String {
    if let Some(id) = &caller.user_id {
        return if id.len() == 15 { id18(id) } else { id.clone() };
    }
    let p = caller.principal.as_str();
    let is_id = p.starts_with("005")
        && matches!(p.len(), 15 | 18)
        && p.bytes().all(|b| b.is_ascii_alphanumeric());
    match p.len() {
        15 if is_id => id18(p),
        18 if is_id => p.to_owned(),
        _ => derived_id("005", format!("{}/{p}", caller.tenant).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_safe_suffix_matches_salesforce() {
        assert_eq!(id18("00558000001N0Ke"), "00558000001N0KeAAK");
        let id = derived_id("e00", b"x");
        assert_eq!((id.len(), &id[..3]), (18, "e00"));
        assert_eq!(id, derived_id("e00", b"x"));
        assert_ne!(id, derived_id("e00", b"y"));
    }

    #[test]
    fn versions_and_their_release_names() {
        assert_eq!(version("v62.0").ok(), Some(62));
        assert_eq!(version("v20.0").ok(), Some(20));
        for bad in [
            "62.0", "v62", "v62.1", "v19.0", "v99.0", "vx.0", "v.0", "v0062.0",
        ] {
            assert!(version(bad).is_err(), "{bad}");
        }
        assert_eq!(label(20), "Winter '11");
        assert_eq!(label(21), "Spring '11");
        assert_eq!(label(22), "Summer '11");
        assert_eq!(label(59), "Winter '24");
        assert_eq!(label(62), "Winter '25");
        assert_eq!(label(64), "Summer '25");
    }

    #[test]
    fn created_by_is_a_user_id() {
        let caller = |principal: &str| Caller {
            tenant: crate::types::TenantId::parse("00D000000000000EAA").expect("org id"),
            principal: principal.into(),
            grants: crate::auth::Grants::all(),
            user_id: None,
        };
        assert_eq!(user_id(&caller("00558000001N0Ke")), "00558000001N0KeAAK");
        assert_eq!(user_id(&caller("00558000001N0KeAAK")), "00558000001N0KeAAK");
        let ops = user_id(&caller("ops"));
        assert_eq!((ops.len(), &ops[..3]), (18, "005"));
        assert_eq!(ops, user_id(&caller("ops")));
    }
}
