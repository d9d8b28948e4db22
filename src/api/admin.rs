//! The `eventbus.admin.v1.Admin` service: topics and schema versions.
//!
//! Owns: the admin RPCs' conversions and status mapping.
//! Must not: hold topic rules (the broker does).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::status;
use crate::broker::{Broker, TopicSummary};
use crate::types::{ReplayId, RpcId};

/// Code generated from `proto/eventbus/admin/v1/admin.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)] // generated code
pub mod pb {
    tonic::include_proto!("eventbus.admin.v1");
}

/// The Admin service.
#[derive(Clone)]
pub struct AdminService {
    broker: Arc<Broker>,
}

impl AdminService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

fn describe(s: &TopicSummary) -> pb::TopicDescription {
    let count = s.event_count();
    pb::TopicDescription {
        topic_name: s.topic.name.to_string(),
        current_schema_id: s.topic.current_schema().to_string(),
        schema_ids: s.topic.schema_ids.iter().map(ToString::to_string).collect(),
        retention_ms: Broker::retention_ms(&s.topic),
        first_replay_id: if count > 0 {
            ReplayId::from(s.bounds.trimmed.next())
                .to_bytes()
                .to_vec()
                .into()
        } else {
            Default::default()
        },
        last_replay_id: ReplayId::from(s.bounds.latest).to_bytes().to_vec().into(),
        event_count: count,
        bytes_on_disk: s.disk_bytes,
        created_ms: i64::try_from(s.topic.created_ms).unwrap_or(i64::MAX),
    }
}

fn retention(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let rpc = RpcId::generate();
        let req = request.into_inner();
        let fail = |e| status::fail(self.broker.metrics(), &e, rpc);
        let schema = Broker::parse_schema(&req.schema_json).map_err(fail)?;
        self.broker
            .create_topic(&req.topic_name, schema, retention(req.retention_ms))
            .await
            .map_err(fail)?;
        tracing::info!(topic = %req.topic_name, rpc_id = %rpc, "topic created");
        let s = self.broker.describe(&req.topic_name).await.map_err(fail)?;
        Ok(Response::new(describe(&s)))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let rpc = RpcId::generate();
        let all = self
            .broker
            .describe_all()
            .await
            .map_err(|e| status::fail(self.broker.metrics(), &e, rpc))?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: all.iter().map(describe).collect(),
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let rpc = RpcId::generate();
        let s = self
            .broker
            .describe(&request.into_inner().topic_name)
            .await
            .map_err(|e| status::fail(self.broker.metrics(), &e, rpc))?;
        Ok(Response::new(describe(&s)))
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let rpc = RpcId::generate();
        let req = request.into_inner();
        let fail = |e| status::fail(self.broker.metrics(), &e, rpc);
        if req.retention_ms == 0 {
            return Err(fail(crate::broker::BrokerError::RetentionInvalid(0)));
        }
        self.broker
            .update_retention(&req.topic_name, Duration::from_millis(req.retention_ms))
            .await
            .map_err(fail)?;
        let s = self.broker.describe(&req.topic_name).await.map_err(fail)?;
        Ok(Response::new(describe(&s)))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let rpc = RpcId::generate();
        let deleted_events = self
            .broker
            .delete_topic(&request.into_inner().topic_name)
            .await
            .map_err(|e| status::fail(self.broker.metrics(), &e, rpc))?;
        Ok(Response::new(pb::DeleteTopicResponse { deleted_events }))
    }

    async fn register_schema(
        &self,
        request: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::RegisterSchemaResponse>, Status> {
        let rpc = RpcId::generate();
        let req = request.into_inner();
        let fail = |e| status::fail(self.broker.metrics(), &e, rpc);
        let schema = Broker::parse_schema(&req.schema_json).map_err(fail)?;
        let schema_id = schema.id().to_string();
        let created = self
            .broker
            .register_schema(&req.topic_name, schema)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::RegisterSchemaResponse {
            schema_id,
            created,
        }))
    }

    async fn list_schemas(
        &self,
        request: Request<pb::ListSchemasRequest>,
    ) -> Result<Response<pb::ListSchemasResponse>, Status> {
        let rpc = RpcId::generate();
        let fail = |e| status::fail(self.broker.metrics(), &e, rpc);
        let topic = self
            .broker
            .topic(&request.into_inner().topic_name)
            .map_err(fail)?;
        let n = topic.schema_ids.len();
        let mut versions = Vec::with_capacity(n);
        for (i, id) in topic.schema_ids.iter().enumerate() {
            let schema = self.broker.schema(id.as_str()).map_err(fail)?;
            versions.push(pb::SchemaVersion {
                schema_id: id.to_string(),
                schema_json: schema.json().to_owned(),
                version: u32::try_from(i + 1).unwrap_or(u32::MAX),
                current: i + 1 == n,
            });
        }
        Ok(Response::new(pb::ListSchemasResponse { versions }))
    }
}
