//! The gRPC protocol layer: `eventbus.v1.PubSub` on top of the broker.
//!
//! Owns: the generated protobuf types ([`pb`]), the service implementation,
//! conversions and status mapping. Must not: touch RocksDB, Avro or key
//! layouts; everything goes through [`crate::broker::Broker`].

pub mod admin;
pub mod cdc;
pub mod channels;
pub mod channels_admin;
pub mod codec;
pub mod convert;
pub mod faults;
pub mod faults_admin;
pub mod http;
pub mod limits;
pub mod login;
pub mod managed;
pub mod namespace;
pub mod oauth;
pub mod oversize;
pub mod pacing;
mod protocol;
pub mod publish;
pub mod rest;
pub mod soap;
pub mod status;
mod stream;
mod streams;
pub mod subscribe;
pub mod tooling;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::{Authenticator, Caller};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::types::{Echo, RpcId};
use namespace::Namespace;
pub use protocol::ProtocolError;

/// Code generated from `proto/eventbus/v1/pubsub_api.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)] // generated code
pub mod pb {
    tonic::include_proto!("eventbus.v1");

    /// Encoded file descriptor set of our protos (PubSub and Admin), for
    /// server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("eventbus_descriptor");
}

/// Settings of the protocol layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Most PublishStream requests in flight per stream before the server
    /// stops reading from it (backpressure).
    pub publish_stream_window: usize,
    /// How long a new Subscribe or PublishStream may take to send its first
    /// request; a stream that never does would otherwise hold its handler
    /// forever.
    pub first_request_timeout: std::time::Duration,
    /// How long a stream waits for room in its connection's response
    /// budget before it ends with `RESOURCE_EXHAUSTED` (see [`pacing`]).
    pub stuck_client_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            publish_stream_window: 16,
            first_request_timeout: std::time::Duration::from_secs(60),
            stuck_client_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The `eventbus.v1.PubSub` service.
#[derive(Clone)]
pub struct PubSubService {
    broker: Arc<Broker>,
    cfg: ApiConfig,
    stop: CancellationToken,
    tasks: TaskTracker,
    // Shared by every PublishStream of this service (see publish::BUDGET_KIB).
    publish_budget: Arc<tokio::sync::Semaphore>,
    auth: Arc<Authenticator>,
    limits: Arc<limits::Limits>,
    /// Fault rules; `None` unless fault injection is on.
    faults: Option<faults::Faults>,
}

impl PubSubService {
    /// A service over `broker`. Stream tasks are spawned on `tasks` and end
    /// when `stop` is cancelled.
    pub fn new(
        broker: Arc<Broker>,
        cfg: ApiConfig,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            broker,
            cfg,
            stop,
            tasks,
            publish_budget: Arc::new(tokio::sync::Semaphore::new(publish::BUDGET_KIB)),
            auth: Arc::new(Authenticator::none()),
            limits: Arc::new(limits::Limits::default()),
            faults: None,
        }
    }

    /// Applies the fault rules of `table` to calls (none: fault injection
    /// off, every call as it comes).
    pub fn with_faults(mut self, table: Option<Arc<crate::faults::FaultTable>>) -> Self {
        self.faults = table.map(|t| faults::Faults::new(t, self.broker.metrics().clone()));
        self
    }

    /// What a call gets from the fault rules (nothing when they are off).
    fn plan(
        &self,
        caller: &Caller,
        rpc: crate::faults::Rpc,
        topic: &str,
        ctx: &faults::CallCtx,
    ) -> faults::Plan {
        match &self.faults {
            Some(f) => f.plan(caller, rpc, topic, ctx),
            None => faults::Plan::none(),
        }
    }

    /// A unary call's latency and failure from `plan`.
    async fn unary_faults(plan: &faults::Plan, rpc: RpcId) -> Result<(), Status> {
        if plan.is_empty() {
            return Ok(());
        }
        let delay = plan.latency();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        plan.unary_failure(rpc).await.map_or(Ok(()), Err)
    }

    /// Enforces per-tenant `limits` (the default has none).
    pub fn with_limits(mut self, limits: Arc<limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Checks every call with `auth` (the default lets every call in as the
    /// default tenant: mode `none`).
    pub fn with_auth(mut self, auth: Arc<Authenticator>) -> Self {
        self.auth = auth;
        self
    }

    fn caller<T>(&self, request: &Request<T>, rpc: RpcId) -> Result<Caller, Status> {
        status::authenticate(&self.auth, request.metadata(), self.broker.metrics(), rpc)
    }
}

/// Payload bytes of a request, what the per-tenant byte rate counts.
fn payload_bytes(req: &pb::PublishRequest) -> usize {
    req.events.iter().map(|e| e.payload.len()).sum()
}

/// `PERMISSION_DENIED` for a Publish or PublishStream to a topic the caller
/// may not publish to (spec: `topic.meta.permission`).
fn publish_denied(broker: &Broker, topic: &str, rpc: RpcId) -> Status {
    status::denied(
        broker.metrics(),
        ErrorCode::TopicMetaPermission,
        &format!(
            "Publishing to {} is not permitted for this caller, or the topic does not exist.",
            Echo(topic)
        ),
        rpc,
    )
}

fn rpc_span(rpc: &'static str, rpc_id: RpcId) -> tracing::Span {
    tracing::info_span!("rpc", rpc, rpc_id = %rpc_id, topic = tracing::field::Empty)
}

#[tonic::async_trait]
impl pb::pub_sub_server::PubSub for PubSubService {
    type SubscribeStream = subscribe::FetchStream;
    type PublishStreamStream = publish::PublishResponseStream;
    type ManagedSubscribeStream = managed::ManagedStream;

    async fn subscribe(
        &self,
        request: Request<tonic::Streaming<pb::FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("Subscribe", rpc);
        let caller = self.caller(&request, rpc)?;
        let budget = pacing::budget_of(&request);
        let origin = streams::origin(&request, &caller, self.auth.mode(), rpc);
        let ctx = faults::CallCtx::of(&request);
        subscribe::start(
            self,
            &caller,
            request.into_inner(),
            (budget, origin),
            rpc,
            span.clone(),
            &ctx,
        )
        .instrument(span)
        .await
        .map(Response::new)
    }

    async fn get_schema(
        &self,
        request: Request<pb::SchemaRequest>,
    ) -> Result<Response<pb::SchemaInfo>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("GetSchema", rpc);
        let caller = self.caller(&request, rpc)?;
        let plan = self.plan(
            &caller,
            crate::faults::Rpc::GetSchema,
            "",
            &faults::CallCtx::of(&request),
        );
        Self::unary_faults(&plan, rpc).await?;
        let _span = span.entered();
        let req = request.into_inner();
        let fail = |e| status::fail(self.broker.metrics(), &e, rpc);
        // The caller's own tenant's text, never another tenant's.
        let json = self
            .broker
            .schema_text(&caller.tenant, &req.schema_id)
            .map_err(fail)?;
        // As on Salesforce, a caller reads the schemas of the topics it may
        // publish or subscribe to; an admin, every schema of its tenant's
        // topics (ListSchemas shows it them anyway). An id none of those
        // topics has (another tenant's, or one of a topic the caller has no
        // grant on) is answered exactly like an unknown id
        // (`schema.meta.permission`, "bad ID or credentials"). Mode `none`
        // grants everything.
        let ns = Namespace::of(&caller.tenant);
        let admin = caller.grants.is_admin();
        let visible = self.broker.topics().iter().any(|t| {
            t.schema_ids.iter().any(|id| id.as_str() == req.schema_id)
                && ns.outward(t.name.as_str()).is_some_and(|name| {
                    admin || caller.grants.can_publish(name) || caller.grants.can_subscribe(name)
                })
        });
        if !visible {
            return Err(fail(crate::broker::BrokerError::SchemaNotFound(
                req.schema_id,
            )));
        }
        Ok(Response::new(convert::schema_info(
            &req.schema_id,
            &json,
            rpc,
        )))
    }

    async fn get_topic(
        &self,
        request: Request<pb::TopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("GetTopic", rpc);
        let caller = self.caller(&request, rpc)?;
        let ctx = faults::CallCtx::of(&request);
        let req = request.into_inner();
        let plan = self.plan(&caller, crate::faults::Rpc::GetTopic, &req.topic_name, &ctx);
        Self::unary_faults(&plan, rpc).await?;
        span.record("topic", req.topic_name.as_str());
        let _e = span.entered();
        let (can_publish, can_subscribe) = (
            caller.grants.can_publish(&req.topic_name),
            caller.grants.can_subscribe(&req.topic_name),
        );
        // A caller with no right on the topic learns nothing about it, the
        // same answer as for a topic that does not exist.
        if !can_publish && !can_subscribe {
            return Err(publish_denied(&self.broker, &req.topic_name, rpc));
        }
        let ns = Namespace::of(&caller.tenant);
        let fail = |e| ns.scrub(status::fail(self.broker.metrics(), &e, rpc));
        let stored = ns.inward(&req.topic_name).map_err(fail)?;
        let topic = self.broker.topic(&stored).map_err(fail)?;
        let mut info = convert::topic_info(&topic, &caller.tenant, rpc);
        info.topic_name = ns
            .outward(topic.name.as_str())
            .unwrap_or(&req.topic_name)
            .to_owned();
        info.can_publish = can_publish;
        info.can_subscribe = can_subscribe;
        Ok(Response::new(info))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("Publish", rpc);
        let caller = self.caller(&request, rpc)?;
        let ctx = faults::CallCtx::of(&request);
        let req = request.into_inner();
        span.record("topic", req.topic_name.as_str());
        let broker = self.broker.clone();
        if !req.topic_name.trim().is_empty() && !caller.grants.can_publish(&req.topic_name) {
            return Err(publish_denied(&broker, &req.topic_name, rpc));
        }
        let plan = self.plan(&caller, crate::faults::Rpc::Publish, &req.topic_name, &ctx);
        Self::unary_faults(&plan, rpc).await?;
        if let Some(msg) = plan.refusal() {
            return Ok(Response::new(faults::refused(&broker, &req, &msg, rpc)));
        }
        self.limits
            .charge_publish(&caller.tenant, req.events.len(), payload_bytes(&req))
            .map_err(|hit| status::limited(broker.metrics(), &hit, rpc))?;
        let ns = Namespace::of(&caller.tenant);
        async move {
            let fail = |e| ns.scrub(status::fail(broker.metrics(), &e, rpc));
            let stored = ns.inward(&req.topic_name).map_err(fail)?;
            let receipt = broker
                .publish(&stored, convert::publish_events(req.events))
                .await
                .map_err(fail)?;
            Ok(Response::new(convert::publish_response(
                ns.scrub_receipt(receipt),
                rpc,
            )))
        }
        .instrument(span)
        .await
    }

    async fn publish_stream(
        &self,
        request: Request<tonic::Streaming<pb::PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("PublishStream", rpc);
        let caller = self.caller(&request, rpc)?;
        let pace = pacing::budget_of(&request)
            .map(|b| pacing::PublishPace::new(b, self.cfg.stuck_client_timeout));
        let ctx = faults::CallCtx::of(&request);
        Ok(Response::new(publish::start(
            self,
            caller,
            request.into_inner(),
            pace,
            rpc,
            span,
            ctx,
        )))
    }

    async fn managed_subscribe(
        &self,
        request: Request<tonic::Streaming<pb::ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("ManagedSubscribe", rpc);
        let caller = self.caller(&request, rpc)?;
        let budget = pacing::budget_of(&request);
        let origin = streams::origin(&request, &caller, self.auth.mode(), rpc);
        let ctx = faults::CallCtx::of(&request);
        managed::start(
            self,
            &caller,
            request.into_inner(),
            (budget, origin),
            rpc,
            span.clone(),
            &ctx,
        )
        .instrument(span)
        .await
        .map(Response::new)
    }
}
