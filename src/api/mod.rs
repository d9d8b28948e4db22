//! The gRPC protocol layer: `eventbus.v1.PubSub` on top of the broker.
//!
//! Owns: the generated protobuf types ([`pb`]), the service implementation,
//! conversions and status mapping. Must not: touch RocksDB, Avro or key
//! layouts; everything goes through [`crate::broker::Broker`].

pub mod admin;
pub mod convert;
pub mod publish;
pub mod status;
pub mod subscribe;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::broker::{Broker, DEFAULT_TENANT_GUID};
use crate::error::ErrorCode;
use crate::types::RpcId;

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
    /// How long a new Subscribe may take to send its first request; a stream
    /// that never does would otherwise hold its handler forever.
    pub first_request_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            publish_stream_window: 16,
            first_request_timeout: std::time::Duration::from_secs(60),
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
        }
    }
}

fn rpc_span(rpc: &'static str, rpc_id: RpcId) -> tracing::Span {
    tracing::info_span!("rpc", rpc, rpc_id = %rpc_id, topic = tracing::field::Empty)
}

#[tonic::async_trait]
impl pb::pub_sub_server::PubSub for PubSubService {
    type SubscribeStream = subscribe::FetchStream;
    type PublishStreamStream = publish::PublishResponseStream;
    type ManagedSubscribeStream = tokio_stream::Empty<Result<pb::ManagedFetchResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<tonic::Streaming<pb::FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("Subscribe", rpc);
        subscribe::start(self, request.into_inner(), rpc, span.clone())
            .instrument(span)
            .await
            .map(Response::new)
    }

    async fn get_schema(
        &self,
        request: Request<pb::SchemaRequest>,
    ) -> Result<Response<pb::SchemaInfo>, Status> {
        let rpc = RpcId::generate();
        let _span = rpc_span("GetSchema", rpc).entered();
        let req = request.into_inner();
        let schema = self
            .broker
            .schema(&req.schema_id)
            .map_err(|e| status::fail(self.broker.metrics(), &e, rpc))?;
        Ok(Response::new(convert::schema_info(&schema, rpc)))
    }

    async fn get_topic(
        &self,
        request: Request<pb::TopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("GetTopic", rpc);
        let req = request.into_inner();
        span.record("topic", req.topic_name.as_str());
        let _e = span.entered();
        let topic = self
            .broker
            .topic(&req.topic_name)
            .map_err(|e| status::fail(self.broker.metrics(), &e, rpc))?;
        Ok(Response::new(convert::topic_info(
            &topic,
            DEFAULT_TENANT_GUID,
            rpc,
        )))
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let rpc = RpcId::generate();
        let span = rpc_span("Publish", rpc);
        let req = request.into_inner();
        span.record("topic", req.topic_name.as_str());
        let broker = self.broker.clone();
        async move {
            let receipt = broker
                .publish(&req.topic_name, convert::publish_events(req.events))
                .await
                .map_err(|e| status::fail(broker.metrics(), &e, rpc))?;
            Ok(Response::new(convert::publish_response(receipt, rpc)))
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
        Ok(Response::new(publish::start(
            self,
            request.into_inner(),
            rpc,
            span,
        )))
    }

    async fn managed_subscribe(
        &self,
        _request: Request<tonic::Streaming<pb::ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        let rpc = RpcId::generate();
        Err(status::counted(
            self.broker.metrics(),
            status::status(
                Code::Unimplemented,
                ErrorCode::MethodUnimplemented,
                "ManagedSubscribe is not available on this server yet. Use Subscribe with a stored replay ID.",
                rpc,
            ),
        ))
    }
}
