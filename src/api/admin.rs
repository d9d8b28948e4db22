//! The `eventbus.admin.v1.Admin` service: topics and schema versions.
//!
//! Owns: the admin RPCs' conversions and status mapping.
//! Must not: hold topic rules (the broker does).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::ProtocolError;
use super::namespace::Namespace;
use super::status;
use crate::auth::Authenticator;
use crate::broker::{
    Broker, BrokerError, ManagedChange, ManagedRef, ManagedView, NewManaged, StreamKind,
    StreamSnapshot, TopicSummary,
};
use crate::types::{ManagedReplay, ManagedState, Offset, ReplayId, RpcId};

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
        let caller =
            status::authenticate_admin(&self.auth, request.metadata(), metrics, rpc, "Admin")?;
        Ok(AdminCall {
            rpc,
            ns: Namespace::of(&caller.tenant),
            tenant: caller.tenant,
            metrics,
        })
    }
}

/// One admin call in progress: its rpc id and the caller's namespace.
struct AdminCall<'a> {
    rpc: RpcId,
    ns: Namespace,
    tenant: crate::types::TenantId,
    metrics: &'a crate::telemetry::metrics::Metrics,
}

impl AdminCall<'_> {
    /// The status for `e`, with stored topic names turned back into the
    /// caller's.
    fn fail(&self, e: BrokerError) -> Status {
        self.ns.scrub(status::fail(self.metrics, &e, self.rpc))
    }

    /// The status for a protocol error `e`, with stored topic names turned
    /// back into the caller's.
    fn refuse(&self, e: ProtocolError) -> Status {
        self.ns.scrub(status::refuse(self.metrics, &e, self.rpc))
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
        publish_rate: s.activity.publish_rate,
        subscribers: s.activity.open_streams,
        last_event_ms: s
            .activity
            .last_event_ms
            .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
    }
}

fn replay_pb(r: ManagedReplay) -> i32 {
    match r {
        ManagedReplay::Latest => pb::ManagedReplay::Latest as i32,
        ManagedReplay::Earliest => pb::ManagedReplay::Earliest as i32,
    }
}

fn state_pb(s: ManagedState) -> i32 {
    match s {
        ManagedState::Run => pb::ManagedState::Run as i32,
        ManagedState::Stop => pb::ManagedState::Stop as i32,
    }
}

fn replay_of(v: i32) -> Result<ManagedReplay, BrokerError> {
    match pb::ManagedReplay::try_from(v) {
        Ok(pb::ManagedReplay::Latest) => Ok(ManagedReplay::Latest),
        Ok(pb::ManagedReplay::Earliest) => Ok(ManagedReplay::Earliest),
        Err(_) => Err(BrokerError::ManagedInvalid(format!(
            "replay {v} is not LATEST (0) or EARLIEST (1)"
        ))),
    }
}

fn state_of(v: i32) -> Result<ManagedState, BrokerError> {
    match pb::ManagedState::try_from(v) {
        Ok(pb::ManagedState::Run) => Ok(ManagedState::Run),
        Ok(pb::ManagedState::Stop) => Ok(ManagedState::Stop),
        Err(_) => Err(BrokerError::ManagedInvalid(format!(
            "state {v} is not RUN (0) or STOP (1)"
        ))),
    }
}

/// The subscription a reference names: exactly one of id and name.
fn reference(r: Option<pb::ManagedSubscriptionRef>) -> Result<ManagedRef, ProtocolError> {
    let r = r.unwrap_or_default();
    match (r.id.trim().is_empty(), r.developer_name.trim().is_empty()) {
        (false, true) => Ok(ManagedRef::Id(r.id)),
        (true, false) => Ok(ManagedRef::Name(r.developer_name)),
        (true, true) => Err(ProtocolError::ManagedUnnamed),
        (false, false) => Err(ProtocolError::ManagedNamedTwice),
    }
}

fn managed(ns: &Namespace, v: &ManagedView) -> pb::ManagedSubscription {
    let r = &v.record;
    let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let replay = |o: Offset| ReplayId::from(o).to_bytes().to_vec().into();
    pb::ManagedSubscription {
        id: r.id.clone(),
        developer_name: r.developer_name.clone(),
        topic_name: ns.outward(&r.topic).unwrap_or(&r.topic).to_owned(),
        default_replay: replay_pb(r.default_replay),
        error_recovery_replay: replay_pb(r.error_recovery_replay),
        state: state_pb(r.state),
        created_ms: ms(r.created_ms),
        updated_ms: ms(r.updated_ms),
        committed_replay_id: v.committed.map(replay).unwrap_or_default(),
        committed_ms: match (v.committed, r.commit) {
            (Some(_), Some(c)) => ms(c.time_ms),
            _ => 0,
        },
        latest_replay_id: v.latest.map(replay).unwrap_or_default(),
        lag: v.lag(),
        active: v.active,
    }
}

/// The streams of `ns`'s tenant among `all`, on `topic` (a name as the
/// tenant writes it) when one is given, as the tenant names them.
fn visible_streams(
    ns: &Namespace,
    all: &[StreamSnapshot],
    topic: &str,
) -> Vec<pb::StreamDescription> {
    all.iter()
        .filter_map(|s| {
            let name = ns.outward(&s.topic)?;
            (topic.is_empty() || topic == name).then(|| describe_stream(name, s))
        })
        .collect()
}

fn describe_stream(topic: &str, s: &StreamSnapshot) -> pb::StreamDescription {
    let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let (kind, id, name) = match &s.kind {
        StreamKind::Subscribe => (pb::StreamKind::Subscribe, "", ""),
        StreamKind::Managed { id, developer_name } => (
            pb::StreamKind::ManagedSubscribe,
            id.as_str(),
            developer_name.as_str(),
        ),
    };
    pb::StreamDescription {
        id: s.id,
        topic_name: topic.to_owned(),
        kind: kind as i32,
        managed_subscription_id: id.to_owned(),
        developer_name: name.to_owned(),
        credit: s.credit,
        delivered_events: s.delivered_events,
        delivered_bytes: s.delivered_bytes,
        replay_id: s.position.to_bytes().to_vec().into(),
        lag: s.lag,
        peer: s.origin.peer.map(|p| p.to_string()).unwrap_or_default(),
        user: s.origin.user.clone(),
        opened_ms: ms(s.opened_ms),
        last_delivery_ms: s.last_delivery_ms.map_or(0, ms),
        rpc_id: s.origin.rpc_id.clone(),
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
        let schema = self
            .broker
            .parse_schema(req.schema_json.clone())
            .await
            .map_err(fail)?;
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
        let schema = self
            .broker
            .parse_schema(req.schema_json.clone())
            .await
            .map_err(fail)?;
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
            // The tenant's own text of each version, never another tenant's.
            let json = self
                .broker
                .schema_text(&call.tenant, id.as_str())
                .map_err(fail)?;
            versions.push(pb::SchemaVersion {
                schema_id: id.to_string(),
                schema_json: json.to_string(),
                version: u32::try_from(i + 1).unwrap_or(u32::MAX),
                current: i + 1 == n,
            });
        }
        Ok(Response::new(pb::ListSchemasResponse { versions }))
    }

    async fn create_managed_subscription(
        &self,
        request: Request<pb::CreateManagedSubscriptionRequest>,
    ) -> Result<Response<pb::ManagedSubscription>, Status> {
        let call = self.admin(&request)?;
        let req = request.into_inner();
        let fail = |e| call.fail(e);
        let def = NewManaged {
            developer_name: req.developer_name,
            topic: call.stored(&req.topic_name)?,
            default_replay: replay_of(req.default_replay).map_err(fail)?,
            error_recovery_replay: replay_of(req.error_recovery_replay).map_err(fail)?,
            state: state_of(req.state).map_err(fail)?,
        };
        let v = self
            .broker
            .create_managed(&call.tenant, def)
            .await
            .map_err(fail)?;
        tracing::info!(subscription = %v.record.id, name = %v.record.developer_name, rpc_id = %call.rpc, "managed subscription created");
        Ok(Response::new(managed(&call.ns, &v)))
    }

    async fn list_managed_subscriptions(
        &self,
        request: Request<pb::ListManagedSubscriptionsRequest>,
    ) -> Result<Response<pb::ListManagedSubscriptionsResponse>, Status> {
        let call = self.admin(&request)?;
        Ok(Response::new(pb::ListManagedSubscriptionsResponse {
            subscriptions: self
                .broker
                .list_managed(&call.tenant)
                .iter()
                .map(|v| managed(&call.ns, v))
                .collect(),
        }))
    }

    async fn describe_managed_subscription(
        &self,
        request: Request<pb::ManagedSubscriptionRef>,
    ) -> Result<Response<pb::ManagedSubscription>, Status> {
        let call = self.admin(&request)?;
        let fail = |e| call.fail(e);
        let r = reference(Some(request.into_inner())).map_err(|e| call.refuse(e))?;
        let v = self
            .broker
            .describe_managed(&call.tenant, &r)
            .map_err(fail)?;
        Ok(Response::new(managed(&call.ns, &v)))
    }

    async fn update_managed_subscription(
        &self,
        request: Request<pb::UpdateManagedSubscriptionRequest>,
    ) -> Result<Response<pb::ManagedSubscription>, Status> {
        let call = self.admin(&request)?;
        let req = request.into_inner();
        let fail = |e| call.fail(e);
        let r = reference(req.subscription).map_err(|e| call.refuse(e))?;
        let change = ManagedChange {
            state: req.state.map(state_of).transpose().map_err(fail)?,
            default_replay: req
                .default_replay
                .map(replay_of)
                .transpose()
                .map_err(fail)?,
            error_recovery_replay: req
                .error_recovery_replay
                .map(replay_of)
                .transpose()
                .map_err(fail)?,
        };
        let v = self
            .broker
            .update_managed(&call.tenant, &r, change)
            .await
            .map_err(fail)?;
        Ok(Response::new(managed(&call.ns, &v)))
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let call = self.admin(&request)?;
        let topic = request.into_inner().topic_name;
        Ok(Response::new(pb::ListStreamsResponse {
            streams: visible_streams(&call.ns, &self.broker.live_streams(), &topic),
        }))
    }

    async fn delete_managed_subscription(
        &self,
        request: Request<pb::ManagedSubscriptionRef>,
    ) -> Result<Response<pb::ManagedSubscription>, Status> {
        let call = self.admin(&request)?;
        let fail = |e| call.fail(e);
        let r = reference(Some(request.into_inner())).map_err(|e| call.refuse(e))?;
        let v = self
            .broker
            .delete_managed(&call.tenant, &r)
            .await
            .map_err(fail)?;
        Ok(Response::new(managed(&call.ns, &v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::StreamOrigin;

    fn snapshot(topic: &str, kind: StreamKind) -> StreamSnapshot {
        StreamSnapshot {
            id: 7,
            topic: topic.into(),
            kind,
            origin: StreamOrigin {
                tenant: "t".into(),
                peer: Some("127.0.0.1:40000".parse().expect("addr")),
                user: "orders".into(),
                rpc_id: "r".into(),
            },
            credit: 3,
            delivered_events: 10,
            delivered_bytes: 1000,
            position: ReplayId::from(Offset(10)),
            lag: 2,
            opened_ms: 1,
            last_delivery_ms: None,
        }
    }

    #[test]
    fn a_tenant_sees_its_own_streams_under_its_own_names() {
        let org = "00D5e000000AbcdEAC";
        let mine = Namespace::of(org);
        let stored_mine = mine.inward("/event/A__e").expect("name");
        let all = vec![
            snapshot("/event/A__e", StreamKind::Subscribe),
            snapshot(
                &stored_mine,
                StreamKind::Managed {
                    id: "18x000000000000AAA".into(),
                    developer_name: "Orders".into(),
                },
            ),
        ];
        let seen = visible_streams(&mine, &all, "");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].topic_name, "/event/A__e");
        assert_eq!(seen[0].kind, pb::StreamKind::ManagedSubscribe as i32);
        assert_eq!(seen[0].developer_name, "Orders");
        assert_eq!(seen[0].peer, "127.0.0.1:40000");
        assert_eq!(seen[0].last_delivery_ms, 0);
        let default = Namespace::of(crate::types::DEFAULT_TENANT_GUID);
        let seen = visible_streams(&default, &all, "");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].kind, pb::StreamKind::Subscribe as i32);
        assert!(visible_streams(&default, &all, "/event/B__e").is_empty());
        assert_eq!(visible_streams(&default, &all, "/event/A__e").len(), 1);
    }
}
