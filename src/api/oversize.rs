//! Gives tonic's refusal of an oversize unary request our status.
//!
//! Owns: [`RequestLimit`], a wrapper around a generated gRPC server that
//! turns tonic's bare `OUT_OF_RANGE` "decoded message length too large"
//! answer into `RESOURCE_EXHAUSTED` with the `service.request.too.large`
//! error code, an `rpc-id` trailer and a message ending in `rpcId`.
//! Must not: read or buffer bodies; tonic still enforces the limit (from the
//! length prefix, before the message is buffered). Streams map the same
//! refusal themselves (the `stream` module's `ReadError::TooLarge`), because
//! it reaches their handler as a read error rather than a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use super::{ProtocolError, status};
use crate::telemetry::metrics::Metrics;
use crate::types::RpcId;

/// A gRPC server whose trailers-only oversize refusals are rewritten.
#[derive(Clone)]
pub struct RequestLimit<S> {
    inner: S,
    metrics: Arc<Metrics>,
    limit: usize,
}

impl<S> RequestLimit<S> {
    /// Wraps `inner`, whose decoding limit is `limit` bytes.
    pub fn new(inner: S, metrics: Arc<Metrics>, limit: usize) -> Self {
        Self {
            inner,
            metrics,
            limit,
        }
    }
}

/// Whether a response's headers are tonic's own oversize refusal: a
/// trailers-only answer whose `grpc-status` is one tonic uses for it and
/// that carries no `error-code` (every status of ours does).
fn is_refusal(headers: &http::HeaderMap) -> bool {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    status::is_tonic_too_large(
        tonic::Code::from_i32(code),
        headers.contains_key(status::ERROR_CODE_KEY),
    )
}

impl<S> Service<http::Request<Body>> for RequestLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let call = self.inner.call(req);
        let metrics = self.metrics.clone();
        let limit = self.limit;
        Box::pin(async move {
            let resp = call.await?;
            if !is_refusal(resp.headers()) {
                return Ok(resp);
            }
            let rpc = RpcId::generate();
            tracing::debug!(rpc_id = %rpc, limit, "request over the size limit refused");
            Ok(
                status::refuse(&metrics, &ProtocolError::RequestTooLarge(Some(limit)), rpc)
                    .into_http(),
            )
        })
    }
}

impl<S: NamedService> NamedService for RequestLimit<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_oversize_statuses_are_refusals() {
        let mut h = http::HeaderMap::new();
        assert!(
            !is_refusal(&h),
            "a normal response has no grpc-status header"
        );
        h.insert("grpc-status", http::HeaderValue::from_static("11"));
        assert!(is_refusal(&h));
        h.insert(
            status::ERROR_CODE_KEY,
            http::HeaderValue::from_static("sfdc.platform.eventbus.grpc.x"),
        );
        assert!(!is_refusal(&h), "our own statuses are left alone");
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert!(!is_refusal(&h));
    }
}
