//! The `eventbus.admin.v1.Admin` service: topics and schema versions.
//!
//! Owns: the admin RPCs' conversions and status mapping.
//! Must not: hold topic rules (the broker does).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::namespace::Namespace;
use super::status;
use crate::auth::Authenticator;
use crate::broker::{Broker, BrokerError, TopicSummary};
use crate::error::ErrorCode;
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
    auth: Arc<Authenticator>,
}

impl AdminService {
    /// A service over `broker`, open to every caller until
    /// [`AdminService::with_auth`] says otherwise.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            auth: Arc::new(Authenticator::none()),
        }
    }

    /// Requires callers with the `admin` grant, checked with `auth`.
    pub fn with_auth(mut self, auth: Arc<Authenticator>) -> Self {
        self.auth = auth;
        self
    }

    /// Starts an admin call: a new rpc id, the caller authenticated and
    /// holding the admin grant, and the caller's namespace (an admin manages
    /// its own tenant's topics).
    fn admin<T>(&self, request: &Request<T>) -> Result<AdminCall<'_>, Status> {
        let rpc = RpcId::generate();
        let metrics = self.broker.metrics();
        let caller = status::authenticate(&self.auth, request.metadata(), metrics, rpc)?;
        if !caller.grants.is_admin() {
            return Err(status::denied(
                metrics,
                ErrorCode::AdminPermission,
                &format!(
                    "{} may not use the Admin service: it needs the `admin` grant.",
                    caller.principal
                ),
                rpc,
            ));
        }
        Ok(AdminCall {
            rpc,
            ns: Namespace::of(&caller.tenant),
            metrics,
        })
    }
}

/// One admin call in progress: its rpc id and the caller's namespace.
struct AdminCall<'a> {
    rpc: RpcId,
    ns: Namespace,
    metrics: &'a crate::telemetry::metrics::Metrics,
}

impl AdminCall<'_> {
    /// The status for `e`, with stored topic names turned back into the
    /// caller's.
    fn fail(&self, e: BrokerError) -> Status {
        self.ns.scrub(status::fail(self.metrics, &e, self.rpc))
    }

    /// The stored name of the caller's topic `name`.
    fn stored(&self, name: &str) -> Result<String, Status> {
        self.ns.inward(name).map_err(|e| self.fail(e))
    }
}

fn describe(ns: &Namespace, s: &TopicSummary) -> pb::TopicDescription {
    let count = s.event_count();
    let stored = s.topic.name.as_str();
    pb::TopicDescription {
        topic_name: ns.outward(stored).unwrap_or(stored).to_owned(),
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
        let call = self.admin(&request)?;
        let req = request.into_inner();
        let fail = |e| call.fail(e);
        let stored = call.stored(&req.topic_name)?;
        let schema = Broker::parse_schema(&req.schema_json).map_err(fail)?;
        self.broker
            .create_topic(&stored, schema, retention(req.retention_ms))
            .await
            .map_err(fail)?;
        tracing::info!(topic = %stored, rpc_id = %call.rpc, "topic created");
        let s = self.broker.describe(&stored).await.map_err(fail)?;
        Ok(Response::new(describe(&call.ns, &s)))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let call = self.admin(&request)?;
        let all = self.broker.describe_all().await.map_err(|e| call.fail(e))?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: all
                .iter()
                .filter(|t| call.ns.outward(t.topic.name.as_str()).is_some())
                .map(|t| describe(&call.ns, t))
                .collect(),
        }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let call = self.admin(&request)?;
        let fail = |e| call.fail(e);
        let stored = call.stored(&request.into_inner().topic_name)?;
        let s = self.broker.describe(&stored).await.map_err(fail)?;
        Ok(Response::new(describe(&call.ns, &s)))
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicDescription>, Status> {
        let call = self.admin(&request)?;
        let req = request.into_inner();
        let fail = |e| call.fail(e);
        if req.retention_ms == 0 {
            return Err(fail(crate::broker::BrokerError::RetentionInvalid(0)));
        }
        let stored = call.stored(&req.topic_name)?;
        self.broker
            .update_retention(&stored, Duration::from_millis(req.retention_ms))
            .await
            .map_err(fail)?;
        let s = self.broker.describe(&stored).await.map_err(fail)?;
        Ok(Response::new(describe(&call.ns, &s)))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let call = self.admin(&request)?;
        let fail = |e| call.fail(e);
        let stored = call.stored(&request.into_inner().topic_name)?;
        let deleted_events = self.broker.delete_topic(&stored).await.map_err(fail)?;
        Ok(Response::new(pb::DeleteTopicResponse { deleted_events }))
    }

    async fn register_schema(
        &self,
        request: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::RegisterSchemaResponse>, Status> {
        let call = self.admin(&request)?;
        let req = request.into_inner();
        let fail = |e| call.fail(e);
        let stored = call.stored(&req.topic_name)?;
        let schema = Broker::parse_schema(&req.schema_json).map_err(fail)?;
        let schema_id = schema.id().to_string();
        let created = self
            .broker
            .register_schema(&stored, schema)
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
        let call = self.admin(&request)?;
        let fail = |e| call.fail(e);
        let stored = call.stored(&request.into_inner().topic_name)?;
        let topic = self.broker.topic(&stored).map_err(fail)?;
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
