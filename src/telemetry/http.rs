//! The Prometheus scrape endpoint: `GET /metrics` over plain HTTP.
//!
//! Owns: the route, its OpenMetrics content type and serving it until
//! stopped.
//! Must not: know what is measured (the caller renders the text) or accept
//! connections itself (the caller hands it a listener, with the transport's
//! connection cap and timeouts).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// Content type of the OpenMetrics text exposition that Prometheus scrapes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` until `stop` is cancelled; every scrape answers
/// what `render` returns then.
pub async fn serve_metrics<L, R>(listener: L, render: R, stop: CancellationToken)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    R: Fn() -> String + Clone + Send + Sync + 'static,
{
    use axum::routing::get;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics listening on {addr}");
    }
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                    render(),
                )
            }
        }),
    );
    let shutdown = async move { stop.cancelled().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "metrics endpoint failed");
    }
}
