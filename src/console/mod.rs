//! The web console (issue 23): server-rendered pages on the HTTP listener
//! under `/console`, with a small hand-written script for the live parts
//! (Server-Sent Events) and every asset compiled into the binary.
//!
//! Owns: the console's routes ([`router`]), its login and session cookie
//! (session.rs), CSRF tokens ([`CsrfKey`]), the publish-rate history and
//! sparklines ([`rates`]), the pages (overview.rs, consumers.rs, topic.rs
//! with its live tail and export in tail.rs, faults.rs with fault injection
//! on, templates under `templates/`)
//! and the assets (assets.rs). Who a request is comes from
//! the [`Authenticator`](crate::auth::Authenticator) (the session cookie is
//! authenticated like a bearer token), what it sees from its grants and its
//! tenant's [`Namespace`](crate::api::namespace::Namespace).
//! Must not: check passwords or keep sessions itself (the org directory
//! and sessions in `auth::org` do), change topics or subscriptions behind
//! the engine's API, or name the server's wiring (`server`, `config`,
//! `backend`, `command_line`) or a client (`cli`, `bench`).

mod assets;
mod consumers;
pub mod csrf;
mod decoded;
mod faults;
mod managed;
mod overview;
mod position;
pub mod rates;
mod session;
mod tail;
mod topic;

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

pub use csrf::CsrfKey;
pub use rates::{Rates, spark_path, sparkline};
pub use session::{COOKIE, LOGIN_COOKIE};

use crate::api::http::HttpContext;

/// Everything a console handler reads.
struct Console {
    ctx: HttpContext,
    csrf: CsrfKey,
    rates: Arc<Rates>,
}

type State = axum::extract::State<Arc<Console>>;

/// An HTML page with the console's security headers: no framing, scripts
/// and styles from the console itself only, never cached.
fn page(status: axum::http::StatusCode, html: String) -> Response {
    let mut r = (status, axum::response::Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// A template that failed to render (a bug): 500, logged.
fn render_failed(e: &askama::Error) -> Response {
    tracing::warn!(error = %e, "console page failed to render");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "the page failed to render",
    )
        .into_response()
}

/// The console's routes, and `/` redirecting to `/console`. Starts the
/// publish-rate sampler, which ends with `ctx.stop` or when the router is
/// dropped (when called outside a Tokio runtime, rates are sampled when a
/// page is rendered instead).
pub fn router(ctx: &HttpContext) -> axum::Router {
    use axum::routing::{get, post};
    let rates = Arc::new(Rates::default());
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(rates::run_sampler(
            Arc::downgrade(&rates),
            Arc::downgrade(&ctx.broker),
            ctx.stop.clone(),
        ));
    }
    let console = Arc::new(Console {
        ctx: ctx.clone(),
        csrf: CsrfKey::random(),
        rates,
    });
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(overview::page_handler))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/consumers", get(consumers::page_handler))
        .route("/console/consumers/managed", post(consumers::action))
        .route(
            "/console/faults",
            get(faults::page_handler).post(faults::action),
        )
        .route("/console/topic", get(topic::page_handler))
        .route("/console/topic/publish", post(topic::publish))
        .route("/console/topic/export", get(tail::export))
        .route("/console/events/overview", get(overview::events))
        .route("/console/events/tail", get(tail::events))
        .route("/console/assets/{name}", get(assets::serve))
        .with_state(console)
}
