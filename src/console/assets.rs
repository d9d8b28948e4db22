//! The console's stylesheet and script, compiled into the binary and
//! served at `/console/assets/<name>` with their content types and cache
//! headers (pages link them with `?v=<version>`, so a new build is never
//! served an old copy).
//!
//! Owns: the asset table. Must not: serve files from disk.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name, content type, body) of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    (
        "topic.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/topic.js"),
    ),
];

/// How long a browser may keep an asset: a day (the `?v=` of the links
/// changes with each version).
const CACHE: &str = "public, max-age=86400";

/// `GET /console/assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let body: &'static str = body;
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
