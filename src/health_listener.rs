//! The plaintext listener that serves only `grpc.health.v1` (and the
//! reflection of it, for grpcurl), for Kubernetes gRPC probes when the main
//! port speaks TLS.
//!
//! Owns: that small gRPC server.
//! Must not: serve anything but health, or decide what health reports: it
//! shares the main port's health service, NOT_SERVING during the drain
//! included.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::transport::Transport;

/// Serves `health` on `listener` as a task of `tasks` until `until` is
/// cancelled (the server cancels it once the streams end).
///
/// # Errors
/// The reflection service could not be built.
pub fn spawn(
    listener: TcpListener,
    health: HealthServer<impl Health>,
    transport: &Transport,
    tasks: &TaskTracker,
    until: CancellationToken,
) -> Result<(), tonic_reflection::server::Error> {
    if let Ok(addr) = listener.local_addr() {
        // Not "listening on": scripts take the gRPC address from that line.
        tracing::info!("health (plaintext) serving on {addr}");
    }
    // Reflection of the health service alone, for grpcurl (which asks
    // v1alpha first).
    let reflect = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let only_health = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflect().build_v1()?)
        .add_service(reflect().build_v1alpha()?)
        .serve_with_incoming_shutdown(
            transport.incoming(listener, None, false, "health"),
            async move { until.cancelled().await },
        );
    tasks.spawn(async move {
        if let Err(e) = only_health.await {
            tracing::warn!(error = %e, "health listener failed");
        }
    });
    Ok(())
}
