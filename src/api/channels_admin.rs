//! The `eventbus.admin.v1.Channels` service: custom channels and their
//! members over gRPC (the `eventbus channel` commands use it), through the
//! same calls of [`crate::channels::Channels`] as the Tooling REST API
//! ([`super::channels`]) and DX provisioning.
//!
//! Owns: the conversions and status mapping of these RPCs: a refused
//! definition is `INVALID_ARGUMENT` with `…channel.invalid` and a message
//! that starts with Salesforce's error code (`FIELD_INTEGRITY_EXCEPTION: …`);
//! a duplicate channel is `ALREADY_EXISTS` (`DUPLICATE_VALUE: …`, same
//! error code); an unknown channel is `NOT_FOUND` with `…channel.not.found`.
//! Must not: hold channel rules (the channels crate does).

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};

use super::admin::pb;
use super::status;
use crate::auth::Authenticator;
use crate::channels::{
    ChannelError, ChannelView, Channels, MemberSpec, MemberView, kind_name, parse_kind,
};
use crate::error::ErrorCode;
use crate::types::{Echo, RpcId, TenantId};

/// The Salesforce error code of a duplicate definition.
const DUPLICATE_VALUE: &str = "DUPLICATE_VALUE";

/// The Channels service.
#[derive(Clone)]
pub struct ChannelsService {
    channels: Arc<Channels>,
    auth: Arc<Authenticator>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

/// One call in progress: its rpc id and the caller's org.
struct Call {
    rpc: RpcId,
    tenant: TenantId,
}

impl ChannelsService {
    /// The service over `channels`, for callers with the `admin` grant.
    pub fn new(
        channels: Arc<Channels>,
        auth: Arc<Authenticator>,
        metrics: Arc<crate::telemetry::metrics::Metrics>,
    ) -> Self {
        Self {
            channels,
            auth,
            metrics,
        }
    }

    fn call<T>(&self, request: &Request<T>) -> Result<Call, Status> {
        let rpc = RpcId::generate();
        let caller = status::authenticate_admin(
            &self.auth,
            request.metadata(),
            &self.metrics,
            rpc,
            "Channels",
        )?;
        Ok(Call {
            rpc,
            tenant: caller.tenant,
        })
    }

    fn fail(&self, call: &Call, e: &ChannelError) -> Status {
        let (code, error_code, message) = match e {
            ChannelError::Broker(b) => return status::fail(&self.metrics, b, call.rpc),
            ChannelError::Log(l) => {
                tracing::warn!(error = %l, rpc_id = %call.rpc, "channel store failed");
                let message = "The record store failed; retry the call later.".to_owned();
                if l.retryable() {
                    (Code::Unavailable, ErrorCode::ServiceUnavailable, message)
                } else {
                    (Code::Internal, ErrorCode::ServiceInternal, message)
                }
            }
            ChannelError::NotFound(m) => (Code::NotFound, ErrorCode::ChannelNotFound, m.clone()),
            ChannelError::Invalid { code, message } => (
                if *code == DUPLICATE_VALUE {
                    Code::AlreadyExists
                } else {
                    Code::InvalidArgument
                },
                ErrorCode::ChannelInvalid,
                format!("{code}: {message}"),
            ),
        };
        status::counted(
            &self.metrics,
            status::status(code, error_code, &message, call.rpc),
        )
    }

    fn not_found(&self, call: &Call, channel: &str) -> Status {
        self.fail(
            call,
            &ChannelError::NotFound(format!(
                "The org has no channel named {}: create it first (eventbus channel create).",
                Echo(channel.trim())
            )),
        )
    }

    /// The org's channel named `name` (any case), NOT_FOUND when none.
    async fn existing(&self, call: &Call, name: &str) -> Result<ChannelView, Status> {
        let name = name.trim();
        self.channels
            .channels(&call.tenant)
            .await
            .map_err(|e| self.fail(call, &e))?
            .into_iter()
            .find(|c| c.full_name.eq_ignore_ascii_case(name))
            .ok_or_else(|| self.not_found(call, name))
    }
}

fn channel_pb(c: ChannelView) -> pb::Channel {
    pb::Channel {
        id: c.id,
        full_name: c.full_name,
        channel_type: kind_name(c.kind).to_owned(),
        label: c.label,
        topic_name: c.topic,
    }
}

fn member_pb(m: MemberView) -> pb::ChannelMember {
    pb::ChannelMember {
        id: m.id,
        developer_name: m.developer_name,
        channel: m.channel,
        selected_entity: m.selected_entity,
        filter_expression: m.filter_expression.unwrap_or_default(),
        enriched_fields: m.enriched_fields,
    }
}

/// The member a request defines: blank optional fields mean none, enriched
/// fields are trimmed and blank ones dropped.
fn member_spec(req: pb::SetChannelMemberRequest) -> MemberSpec {
    let filter = req.filter_expression.trim();
    let developer_name = req.developer_name.trim();
    MemberSpec {
        channel: req.channel.trim().to_owned(),
        selected_entity: req.selected_entity.trim().to_owned(),
        filter_expression: (!filter.is_empty()).then(|| filter.to_owned()),
        enriched_fields: req
            .enriched_fields
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        developer_name: (!developer_name.is_empty()).then(|| developer_name.to_owned()),
    }
}

#[tonic::async_trait]
impl pb::channels_server::Channels for ChannelsService {
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let kind = parse_kind(&req.channel_type).map_err(|e| self.fail(&call, &e))?;
        let created = self
            .channels
            .create_channel(&call.tenant, &req.full_name, kind, &req.label)
            .await
            .map_err(|e| self.fail(&call, &e))?;
        tracing::info!(channel = %created.full_name, rpc_id = %call.rpc, "channel created");
        Ok(Response::new(channel_pb(created)))
    }

    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let call = self.call(&request)?;
        let name = request.into_inner().full_name;
        let deleted = self
            .channels
            .delete_channel(&call.tenant, name.trim())
            .await
            .map_err(|e| self.fail(&call, &e))?;
        if deleted {
            tracing::info!(channel = %name.trim(), rpc_id = %call.rpc, "channel deleted");
        }
        Ok(Response::new(pb::DeleteChannelResponse { deleted }))
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let call = self.call(&request)?;
        let channels = self
            .channels
            .channels(&call.tenant)
            .await
            .map_err(|e| self.fail(&call, &e))?;
        Ok(Response::new(pb::ListChannelsResponse {
            channels: channels.into_iter().map(channel_pb).collect(),
        }))
    }

    async fn set_channel_member(
        &self,
        request: Request<pb::SetChannelMemberRequest>,
    ) -> Result<Response<pb::ChannelMember>, Status> {
        let call = self.call(&request)?;
        let spec = member_spec(request.into_inner());
        // The engine refuses a member of an unknown channel as an invalid
        // definition (Tooling's FIELD_INTEGRITY_EXCEPTION); here it is
        // NOT_FOUND. A channel deleted between the two calls still gets
        // the engine's refusal.
        self.existing(&call, &spec.channel).await?;
        let member = self
            .channels
            .upsert_member(&call.tenant, spec)
            .await
            .map_err(|e| self.fail(&call, &e))?;
        tracing::info!(
            channel = %member.channel,
            entity = %member.selected_entity,
            rpc_id = %call.rpc,
            "channel member defined"
        );
        Ok(Response::new(member_pb(member)))
    }

    async fn delete_channel_member(
        &self,
        request: Request<pb::DeleteChannelMemberRequest>,
    ) -> Result<Response<pb::DeleteChannelMemberResponse>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let channel = self.existing(&call, &req.channel).await?;
        let deleted = self
            .channels
            .delete_member(&call.tenant, &channel.full_name, req.selected_entity.trim())
            .await
            .map_err(|e| self.fail(&call, &e))?;
        Ok(Response::new(pb::DeleteChannelMemberResponse { deleted }))
    }

    async fn list_channel_members(
        &self,
        request: Request<pb::ListChannelMembersRequest>,
    ) -> Result<Response<pb::ListChannelMembersResponse>, Status> {
        let call = self.call(&request)?;
        let wanted = request.into_inner().channel;
        let channel = if wanted.trim().is_empty() {
            None
        } else {
            Some(self.existing(&call, &wanted).await?.full_name)
        };
        let members = self
            .channels
            .members(&call.tenant, channel.as_deref())
            .await
            .map_err(|e| self.fail(&call, &e))?;
        Ok(Response::new(pb::ListChannelMembersResponse {
            members: members.into_iter().map(member_pb).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_spec_drops_blank_optional_fields() {
        let spec = member_spec(pb::SetChannelMemberRequest {
            channel: " Orders__chn ".into(),
            selected_entity: "Order_Event__e".into(),
            filter_expression: "   ".into(),
            enriched_fields: vec![" Name ".into(), String::new(), "  ".into()],
            developer_name: String::new(),
        });
        assert_eq!(spec.channel, "Orders__chn");
        assert_eq!(spec.filter_expression, None);
        assert_eq!(spec.enriched_fields, vec!["Name".to_owned()]);
        assert_eq!(spec.developer_name, None);
    }

    #[test]
    fn member_spec_keeps_given_fields() {
        let spec = member_spec(pb::SetChannelMemberRequest {
            channel: "Sales__chn".into(),
            selected_entity: "AccountChangeEvent".into(),
            filter_expression: " Industry = 'Energy' ".into(),
            enriched_fields: vec!["Name".into(), "Industry".into()],
            developer_name: "Sales_Accounts".into(),
        });
        assert_eq!(
            spec.filter_expression.as_deref(),
            Some("Industry = 'Energy'")
        );
        assert_eq!(spec.enriched_fields, vec!["Name", "Industry"]);
        assert_eq!(spec.developer_name.as_deref(), Some("Sales_Accounts"));
    }

    #[test]
    fn views_convert_with_empty_for_none() {
        let m = member_pb(MemberView {
            id: "0v8x".into(),
            developer_name: "d".into(),
            channel: "Orders__chn".into(),
            selected_entity: "Order_Event__e".into(),
            filter_expression: None,
            enriched_fields: vec![],
        });
        assert_eq!(m.filter_expression, "");
        let c = channel_pb(ChannelView {
            id: "0YLx".into(),
            full_name: "Orders__chn".into(),
            kind: crate::channels::ChannelKind::Data,
            label: "Orders".into(),
            topic: "/data/Orders__chn".into(),
        });
        assert_eq!(c.channel_type, "data");
        assert_eq!(c.topic_name, "/data/Orders__chn");
    }
}
