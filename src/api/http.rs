//! The one HTTP(S) listener (`--http-listen`): the router composition of
//! every area Salesforce serves over HTTP, and what they share.
//!
//! Owns: which routes the listener serves (each area exports a `router`
//! and is merged here) and the `NOT_FOUND` answer for any other path.
//! Must not: hold an area's own logic (the Tooling query is tooling.rs,
//! OAuth oauth.rs, SOAP login soap.rs). The web console (`crate::console`)
//! sits above this layer (it reads this context), so the server merges its
//! router with this one.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::broker::Broker;

pub use super::login::Login;

/// What the HTTP areas need.
#[derive(Clone)]
pub struct HttpContext {
    /// The engine.
    pub broker: Arc<Broker>,
    /// Checks bearer tokens.
    pub auth: Arc<Authenticator>,
    /// The login side.
    pub login: Login,
    /// Per-tenant publish budgets, shared with gRPC (REST publishes).
    pub limits: Arc<crate::api::limits::Limits>,
    /// Records and their change events (REST sObject records).
    pub cdc: Option<Arc<crate::cdc::Cdc>>,
    /// Custom channels (Tooling `PlatformEventChannel[Member]`).
    pub channels: Option<Arc<crate::channels::Channels>>,
    /// Fault rules, when fault injection is on (the console's Faults page).
    pub faults: Option<Arc<crate::faults::FaultTable>>,
    /// What the server says about itself (the console's overview).
    pub server: ServerInfo,
    /// Cancelled when the server stops: long-lived answers (the console's
    /// event streams) and background tasks end with it.
    pub stop: CancellationToken,
}

/// What the server says about itself.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The log backend's name (`rocksdb`, `jetstream`).
    pub backend: &'static str,
    /// When the server started serving.
    pub started: std::time::SystemTime,
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!([{
            "errorCode": "NOT_FOUND",
            "message": "The requested resource does not exist",
        }])),
    )
        .into_response()
}

/// Every route of the HTTP listener: each area's router merged.
pub fn router(ctx: &HttpContext) -> axum::Router {
    axum::Router::new()
        .merge(super::tooling::router(
            ctx.broker.clone(),
            ctx.auth.clone(),
            ctx.channels.clone(),
        ))
        .merge(super::oauth::router(ctx.login.clone()))
        .merge(super::soap::router(ctx.login.clone()))
        .merge(super::rest::router(
            ctx.broker.clone(),
            ctx.auth.clone(),
            ctx.limits.clone(),
            ctx.cdc.clone(),
        ))
        .fallback(not_found)
}

/// Serves `app` on `listener` (whose connections the transport accepted
/// and, with TLS, handshook off its accept loop) until `stop` is cancelled.
pub async fn serve(
    listener: crate::transport::HttpListener,
    app: axum::Router,
    stop: CancellationToken,
) {
    let shutdown = async move { stop.cancelled().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "http listener failed");
    }
}
