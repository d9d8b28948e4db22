//! Composition root: opens the log (`backend.rs`), builds the broker and
//! services, serves gRPC, the metrics endpoint (`telemetry::http`) and the
//! plaintext health listener (`health_listener.rs`), and runs the shutdown
//! sequence.
//!
//! Owns: wiring and lifecycle. Must not: hold request logic, or serve an
//! endpoint or open a backend inline: each is a function of its own module.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::codec::CompressionEncoding;
use tonic_health::ServingStatus;

use crate::api::admin::{AdminService, pb as admin_pb};
use crate::api::oversize::RequestLimit;
use crate::api::{PubSubService, pb};
use crate::backend::OpenError;
use crate::broker::{Broker, BrokerError};
use crate::config::ServeArgs;
use crate::telemetry::metrics::Metrics;
use eventbus_rocksdb::StoreError;

/// The gRPC service name health reports on besides the empty name.
pub const PUBSUB_SERVICE_NAME: &str = "eventbus.v1.PubSub";
/// The admin service's name, also reported by health.
pub const ADMIN_SERVICE_NAME: &str = "eventbus.admin.v1.Admin";

/// HTTP/2 receive window per stream. Large enough that a 1 MiB event moves
/// in a few round trips on loopback, small enough that a stream the server
/// has stopped reading (PublishStream backpressure) buffers little.
const HTTP2_STREAM_WINDOW: u32 = 512 * 1024;

/// HTTP/2 receive window per connection. h2 sizes its small-DATA-frame flood
/// budget at half of this: with the 64 KiB default, a PublishStream client
/// pipelining ~100-byte requests into a stream the server has paused for
/// backpressure gets the whole connection closed with ENHANCE_YOUR_CALM after
/// about 220 buffered requests. 16 MiB gives room for dozens of such paused
/// streams while a real flood of tiny frames is still cut off.
const HTTP2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Errors that stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// The data folder could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log could not start.
    #[error("could not start the topic log: {0}")]
    Log(#[from] crate::log::LogError),
    /// The broker could not load or provision topics.
    #[error("{0}")]
    Broker(#[from] BrokerError),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The gRPC transport failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<OpenError> for ServerError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Store(e) => ServerError::Store(e),
            OpenError::Log(e) => ServerError::Log(e),
        }
    }
}

/// A built server: storage open, topics provisioned, not yet serving.
pub struct Server {
    args: ServeArgs,
    broker: Arc<Broker>,
    metrics: Option<TcpListener>,
    tooling: Option<TcpListener>,
    health: Option<TcpListener>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    http_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    auth: Arc<crate::auth::Authenticator>,
    login: (
        Arc<crate::auth::org::Directory>,
        Arc<crate::auth::org::Sessions>,
    ),
    cdc: Arc<crate::cdc::Cdc>,
    channels: Arc<crate::channels::Channels>,
    /// Fault rules in force; `None` unless `--fault-injection`.
    faults: Option<Arc<crate::faults::FaultTable>>,
}

/// The fault table when `--fault-injection` is on, with the rules of
/// `--faults-file`; loudly logged, so nobody runs it by mistake.
fn fault_table(args: &ServeArgs) -> Result<Option<Arc<crate::faults::FaultTable>>, ServerError> {
    if !args.fault_injection {
        return Ok(None);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let table = Arc::new(crate::faults::FaultTable::new(seed));
    if let Some(path) = args.faults_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("faults file {}: {e}", path.display())))?;
        let rules = crate::faults::parse_file(&text)
            .map_err(|e| ServerError::Config(format!("faults file {}: {e}", path.display())))?;
        for rule in rules {
            let id = table
                .add(rule, std::time::Instant::now())
                .map_err(|e| ServerError::Config(format!("faults file {}: {e}", path.display())))?;
            tracing::warn!(rule = %id, file = %path.display(), "fault rule loaded");
        }
    }
    tracing::warn!(
        "fault injection is ON: callers with the admin grant can make calls fail on purpose (eventbus fault); never on a server with real traffic"
    );
    Ok(Some(table))
}

impl Server {
    /// Validates settings, opens the data folder and provisions the topics
    /// folder.
    ///
    /// # Errors
    /// [`ServerError`] describing what is wrong (bad setting, locked or
    /// unreadable data folder, invalid schema file named by path).
    pub async fn build(args: ServeArgs) -> Result<Self, ServerError> {
        args.validate().map_err(ServerError::Config)?;
        // TLS first: a missing or invalid certificate fails before the data
        // folder is opened (and locked).
        let tls = args.tls().server_config()?;
        let http_tls = args.tls().http_config()?;
        let sessions = Arc::new(crate::auth::org::Sessions::new(args.session_lifetime));
        let directory = Arc::new(
            crate::auth::org::Directory::load(args.auth, args.org_users_file())
                .map_err(|e| ServerError::Config(e.to_string()))?,
        );
        let auth = Arc::new(
            crate::auth::Authenticator::load(&args.auth())
                .map_err(|e| ServerError::Config(e.to_string()))?
                .with_sessions(sessions.clone()),
        );
        tracing::info!(mode = ?auth.mode(), "authentication");
        let faults = fault_table(&args)?;
        let mut metrics = Metrics::with_topic_labels(args.metrics_topic_labels);
        metrics.register_collector(Box::new(crate::telemetry::process::ProcessCollector));
        let metrics = Arc::new(metrics);
        let opened = crate::backend::open(&args, metrics.clone()).await?;
        let mut broker_cfg = args.broker();
        broker_cfg.max_event_bytes = opened.max_event_bytes;
        let log = opened.log.clone();
        let broker = Broker::open(opened.log, broker_cfg, metrics).await?;
        // `topics = ""` in the config file means none. The default tenant
        // gets the folder, and so do the tenants `topics_tenants` lists or,
        // when it lists none, every tenant of the static tokens file.
        let listed = args.provisioned_tenants().map_err(ServerError::Config)?;
        let tenants = if listed.is_empty() {
            auth.tenants()
        } else {
            listed
        };
        // `--metadata`: platform events of a Salesforce DX project, beside the topics folder.
        let some = |d: &Option<std::path::PathBuf>| d.clone().filter(|d| !d.as_os_str().is_empty());
        let (topics, metadata) = (some(&args.topics), some(&args.metadata));
        if (topics.is_some() || metadata.is_some())
            && let Err(e) = broker
                .provision_sources_for(topics.as_deref(), metadata.as_deref(), &tenants)
                .await
        {
            let _ = broker.close().await;
            return Err(e.into());
        }
        let (cdc, channels) =
            match Self::change_data_capture(&args, &broker, log, metadata.as_deref(), &tenants)
                .await
            {
                Ok(both) => both,
                Err(e) => {
                    let _ = broker.close().await;
                    return Err(e);
                }
            };
        tracing::info!(topics = broker.topics().len(), "topics loaded");
        let bind = |addr: Result<Option<std::net::SocketAddr>, String>, what: &'static str| async move {
            match addr.map_err(ServerError::Config)? {
                Some(addr) => TcpListener::bind(addr).await.map(Some).map_err(|e| {
                    ServerError::Config(format!("cannot listen for {what} on {addr}: {e}"))
                }),
                None => Ok(None),
            }
        };
        let (metrics, tooling, health) = match (
            bind(args.metrics_addr(), "metrics").await,
            bind(args.http_addr(), "http").await,
            bind(args.health_addr(), "health").await,
        ) {
            (Ok(m), Ok(t), Ok(h)) => (m, t, h),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                let _ = broker.close().await;
                return Err(e);
            }
        };
        Ok(Self {
            args,
            broker,
            metrics,
            tooling,
            health,
            tls,
            http_tls,
            auth,
            login: (directory, sessions),
            cdc,
            channels,
            faults,
        })
    }

    /// The Change Data Capture engine and the custom channels: the standard
    /// objects with the objects, channels and channel members of the
    /// `--metadata` project, defined for the default tenant and each of
    /// `tenants`. The channels route the broker's publishes from here on.
    async fn change_data_capture(
        args: &ServeArgs,
        broker: &Arc<Broker>,
        log: crate::log::SharedLog,
        metadata: Option<&std::path::Path>,
        tenants: &[crate::types::TenantId],
    ) -> Result<(Arc<crate::cdc::Cdc>, Arc<crate::channels::Channels>), ServerError> {
        let mut catalog = crate::objects::model::ObjectCatalog::standard();
        let project = match metadata {
            Some(dir) => crate::cdc::project::load_project(dir, &mut catalog)
                .map_err(|e| ServerError::Config(format!("--metadata {}: {e}", dir.display())))?,
            None => crate::cdc::project::Project::default(),
        };
        let channels = crate::channels::Channels::new(broker.clone(), log.clone(), catalog.clone());
        let router: Arc<dyn crate::broker::Router> = channels.clone();
        broker.set_router(&router);
        let cfg = crate::cdc::CdcConfig {
            first_commit_number: args.cdc_first_commit_number,
        };
        let cdc = crate::cdc::Cdc::new(broker.clone(), log, catalog, cfg, Some(channels.clone()))
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let mut all = vec![crate::types::TenantId::from_stored(
            crate::broker::DEFAULT_TENANT_GUID,
        )];
        all.extend(
            tenants
                .iter()
                .filter(|t| !all.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let enabled = cdc
            .provision_members(&project.members, &all)
            .await
            .map_err(|e| ServerError::Config(format!("--metadata: {e}")))?;
        if !enabled.is_empty() {
            tracing::info!(
                members = enabled.len(),
                "change data capture members enabled"
            );
        }
        let defined = channels
            .provision(&project.channels, &project.members, &all)
            .await
            .map_err(|e| ServerError::Config(format!("--metadata: {e}")))?;
        if defined > 0 {
            tracing::info!(definitions = defined, "custom channels defined");
        }
        channels
            .load_all()
            .await
            .map_err(|e| ServerError::Config(format!("custom channels: {e}")))?;
        Ok((Arc::new(cdc), channels))
    }

    /// The bound address of the plaintext health listener, when it is on.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.health.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address of the HTTP(S) listener, when it is on.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.tooling.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address of the Tooling API endpoint: the HTTP listener's.
    pub fn tooling_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr()
    }

    /// The bound address of the metrics endpoint, when it is on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The engine, for tests and tools in the same process.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves on `listener` until `stop` is cancelled, then shuts down:
    /// health turns NOT_SERVING, streams end, open calls get up to
    /// `shutdown_deadline`, the log is synced and closed.
    ///
    /// # Errors
    /// [`ServerError::Transport`] when serving fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> Result<(), ServerError> {
        let Server {
            args,
            broker,
            metrics,
            tooling,
            health: health_listener,
            tls,
            http_tls,
            auth,
            login: (directory, sessions),
            cdc,
            channels,
            faults,
        } = self;
        let tls_on = tls.is_some();
        let tasks = TaskTracker::new();
        // One acceptor for every listener: the connection cap, timeouts and
        // the response budget are shared (see crate::transport).
        crate::transport::check_open_file_limit(args.max_connections);
        let transport = crate::transport::Transport::new(
            args.transport(),
            tasks.clone(),
            broker.metrics().clone(),
        );
        // `stop` starts the shutdown; `streams` ends the streams after the
        // drain delay, so load balancers see NOT_SERVING before anything closes.
        let streams = CancellationToken::new();
        let (health, health_svc) = tonic_health::server::health_reporter();
        // Shared by gRPC and REST publishes (issue 20).
        let limits = Arc::new(crate::api::limits::Limits::new(args.limits()));
        let pubsub = PubSubService::new(broker.clone(), args.api(), streams.clone(), tasks.clone())
            .with_auth(auth.clone())
            .with_limits(limits.clone())
            .with_faults(faults.clone());
        let pubsub = pb::pub_sub_server::PubSubServer::new(pubsub)
            .max_decoding_message_size(args.max_request_bytes)
            // Responses are bounded by the broker (max_response_bytes) well
            // below this; the cap guards against a bug, not a client.
            .max_encoding_message_size(4 * 1024 * 1024 + 64 * 1024)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
        // tonic refuses an oversize unary request without our trailers.
        let pubsub = RequestLimit::new(pubsub, broker.metrics().clone(), args.max_request_bytes);
        let admin = admin_pb::admin_server::AdminServer::new(
            AdminService::new(broker.clone()).with_auth(auth.clone()),
        )
        .max_decoding_message_size(args.max_request_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
        let cdc_admin = admin_pb::change_data_capture_server::ChangeDataCaptureServer::new(
            crate::api::cdc::CdcService::new(cdc.clone(), auth.clone(), broker.metrics().clone()),
        )
        .max_decoding_message_size(args.max_request_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
        let channels_admin = admin_pb::channels_server::ChannelsServer::new(
            crate::api::channels_admin::ChannelsService::new(
                channels.clone(),
                auth.clone(),
                broker.metrics().clone(),
            ),
        )
        .max_decoding_message_size(args.max_request_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
        let faults_admin = admin_pb::faults_server::FaultsServer::new(
            crate::api::faults_admin::FaultsService::new(
                faults.clone(),
                broker.clone(),
                auth.clone(),
                sessions.clone(),
            ),
        )
        .max_decoding_message_size(args.max_request_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
        for name in ["", PUBSUB_SERVICE_NAME, ADMIN_SERVICE_NAME] {
            health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        tasks.spawn(broker.clone().run_retention(streams.clone()));
        // Channel definitions changed through other servers on a shared log.
        tasks.spawn(channels.clone().run_reload(streams.clone()));
        tasks.spawn(broker.clone().run_activity(streams.clone()));
        if let Some(listener) = metrics {
            let listener = transport
                .http_listener(listener, None, "metrics")
                .map_err(|e| ServerError::Config(format!("metrics listener: {e}")))?;
            let render = {
                let broker = broker.clone();
                move || {
                    broker.refresh_gauges();
                    broker.metrics().encode()
                }
            };
            tasks.spawn(crate::telemetry::http::serve_metrics(
                listener,
                render,
                stop.clone(),
            ));
        }
        if let Some(listener) = health_listener {
            // Stops once the streams end.
            crate::health_listener::spawn(
                listener,
                health_svc.clone(),
                &transport,
                &tasks,
                streams.clone(),
            )
            .map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
        }
        if let Some(listener) = tooling {
            if let Ok(addr) = listener.local_addr() {
                // Logged before the gRPC line below, so scripts that wait for
                // that line find this one too. Not "listening on": scripts
                // take the gRPC address from the first such line.
                tracing::info!(tls = http_tls.is_some(), "http api serving on {addr}");
                if auth.mode() == crate::auth::AuthMode::None && !addr.ip().is_loopback() {
                    tracing::warn!(
                        "the web console at http://{addr}/console is open to anyone who reaches \
                         this address (--auth none); use --auth static or jwt, or listen on loopback"
                    );
                }
            }
            let ctx = crate::api::http::HttpContext {
                broker: broker.clone(),
                auth: auth.clone(),
                login: crate::api::http::Login {
                    directory,
                    sessions,
                    tls: http_tls.is_some(),
                },
                limits: limits.clone(),
                cdc: Some(cdc.clone()),
                channels: Some(channels.clone()),
                faults: faults.clone(),
                server: crate::api::http::ServerInfo {
                    backend: match args.backend {
                        crate::config::Backend::Rocksdb => "rocksdb",
                        crate::config::Backend::Jetstream => "jetstream",
                    },
                    started: std::time::SystemTime::now(),
                },
                stop: stop.clone(),
            };
            let listener = transport
                .http_listener(listener, http_tls, "http")
                .map_err(|e| ServerError::Config(format!("http listener: {e}")))?;
            // The console reads the HTTP context, so it sits above `api`:
            // its routes are merged here rather than in `api::http`.
            let app = crate::api::http::router(&ctx).merge(crate::console::router(&ctx));
            tasks.spawn(crate::api::http::serve(listener, app, stop.clone()));
        }

        if let Ok(local) = listener.local_addr() {
            // Tools and tests read the port from this line when started on :0.
            tracing::info!(tls = tls_on, "eventbus listening on {local}");
        }
        let signal = {
            let (stop, streams, health) = (stop.clone(), streams.clone(), health.clone());
            let drain_delay = args.drain_delay;
            async move {
                stop.cancelled().await;
                for name in ["", PUBSUB_SERVICE_NAME, ADMIN_SERVICE_NAME] {
                    health
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
                tracing::info!(
                    ?drain_delay,
                    "shutting down: health is NOT_SERVING; draining"
                );
                tokio::time::sleep(drain_delay).await;
                tracing::info!("ending streams; no new calls");
                streams.cancel();
            }
        };
        let keepalive = (!args.http2_keepalive.is_zero()).then_some(args.http2_keepalive);
        let fault_injection = args.fault_injection;
        // TLS handshakes happen in the transport, under its deadline; tonic
        // gets connections that are ready.
        // Once the drain delay is over (`streams`), new connections are
        // refused rather than left in the backlog until the process exits.
        let incoming = transport.incoming_until(listener, tls, true, "grpc", streams.clone());
        let serve = tonic::transport::Server::builder()
            .layer(crate::api::faults::ResetLayer::new(fault_injection))
            .layer(crate::api::pacing::PacingLayer::new(
                args.pacing(),
                broker.metrics().clone(),
            ))
            .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW))
            .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW))
            .max_concurrent_streams(Some(args.max_concurrent_streams))
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
            .add_service(health_svc)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pubsub)
            .add_service(admin)
            .add_service(cdc_admin)
            .add_service(channels_admin)
            .add_service(faults_admin)
            .serve_with_incoming_shutdown(incoming, signal);
        let mut serve = std::pin::pin!(serve);
        let result = tokio::select! {
            r = &mut serve => r.map_err(ServerError::from),
            _ = async { streams.cancelled().await; tokio::time::sleep(args.shutdown_deadline).await } => {
                tracing::warn!(deadline = ?args.shutdown_deadline, "open calls outlived the shutdown deadline; abandoning them");
                Ok(())
            }
        };
        stop.cancel();
        streams.cancel();
        tasks.close();
        if tokio::time::timeout(args.shutdown_deadline, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some stream tasks did not finish in time");
        }
        if let Err(e) = broker.close().await {
            tracing::error!(error = %e, "final log sync failed");
            return Err(e.into());
        }
        tracing::info!("log synced and closed");
        result
    }
}
