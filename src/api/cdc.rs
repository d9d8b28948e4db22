//! The `eventbus.admin.v1.ChangeDataCapture` service: enabling objects,
//! changing records and emitting synthetic change events over gRPC (the
//! `eventbus cdc` and `eventbus record` commands use it).
//!
//! Owns: the conversions and status mapping of these RPCs; the
//! `changeOrigin` of changes made through it
//! (`com/salesforce/api/rest/64.0;client=eventbus-cli`, or the client the
//! request names). Must not: hold record rules (the cdc crate does).

use std::sync::Arc;

use serde_json::Value;
use tonic::{Code, Request, Response, Status};

use super::admin::pb;
use super::status;
use crate::auth::Authenticator;
use crate::cdc::records::Committed;
use crate::cdc::{Actor, Cdc, CdcError, Member, RecordOp};
use crate::error::ErrorCode;
use crate::objects::change::ChangeType;
use crate::types::{ReplayId, RpcId, TenantId};

/// The ChangeDataCapture service.
#[derive(Clone)]
pub struct CdcService {
    cdc: Arc<Cdc>,
    auth: Arc<Authenticator>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

/// One call in progress: its rpc id and the caller.
struct Call {
    rpc: RpcId,
    tenant: TenantId,
    user_id: String,
}

impl CdcService {
    /// The service over `cdc`, for callers with the `admin` grant.
    pub fn new(
        cdc: Arc<Cdc>,
        auth: Arc<Authenticator>,
        metrics: Arc<crate::telemetry::metrics::Metrics>,
    ) -> Self {
        Self { cdc, auth, metrics }
    }

    fn call<T>(&self, request: &Request<T>) -> Result<Call, Status> {
        let rpc = RpcId::generate();
        let caller = status::authenticate_admin(
            &self.auth,
            request.metadata(),
            &self.metrics,
            rpc,
            "ChangeDataCapture",
        )?;
        Ok(Call {
            rpc,
            user_id: super::rest::user_id(&caller),
            tenant: caller.tenant,
        })
    }

    fn fail(&self, call: &Call, e: CdcError) -> Status {
        let (code, error_code) = match &e {
            CdcError::Broker(b) => return status::fail(&self.metrics, b, call.rpc),
            CdcError::Log(l) => {
                tracing::warn!(error = %l, rpc_id = %call.rpc, "record store failed");
                if l.retryable() {
                    (Code::Unavailable, ErrorCode::ServiceUnavailable)
                } else {
                    (Code::Internal, ErrorCode::ServiceInternal)
                }
            }
            CdcError::UnknownObject(_) => (Code::NotFound, ErrorCode::CdcObjectNotFound),
            CdcError::RecordNotFound(_) | CdcError::EntityDeleted(_) => {
                (Code::NotFound, ErrorCode::CdcRecordNotFound)
            }
            CdcError::Locked(_) => (Code::Aborted, ErrorCode::CdcRequestInvalid),
            CdcError::Internal(_) => (Code::Internal, ErrorCode::ServiceInternal),
            _ => (Code::InvalidArgument, ErrorCode::CdcRequestInvalid),
        };
        let message = match &e {
            CdcError::UnknownObject(name) => format!(
                "The object {} is not one this server knows: use a standard object (Account, Contact, Lead, Opportunity, Case, Order, Task, User) or one of the --metadata project.",
                crate::types::Echo(name)
            ),
            CdcError::RecordNotFound(id) | CdcError::EntityDeleted(id) => format!(
                "No record has the id {} (or it is deleted).",
                crate::types::Echo(id)
            ),
            CdcError::Log(_) => "The record store failed; retry the call later.".to_owned(),
            other => other.to_string(),
        };
        status::counted(
            &self.metrics,
            status::status(code, error_code, &message, call.rpc),
        )
    }
}

fn member_pb(m: &Member) -> pb::ChangeEventMember {
    pb::ChangeEventMember {
        developer_name: m.developer_name.clone(),
        event_channel: m.event_channel.clone(),
        selected_entity: m.selected_entity.clone(),
        object: m.object.clone(),
        topic_name: m.topic.clone(),
        schema_id: m.schema_id.clone(),
    }
}

fn replay_ids(ids: &[ReplayId]) -> Vec<bytes::Bytes> {
    ids.iter()
        .map(|r| bytes::Bytes::copy_from_slice(&r.to_bytes()))
        .collect()
}

fn committed_pb(c: Committed) -> pb::ApplyRecordsResponse {
    let results = c
        .results
        .into_iter()
        .map(|r| match r {
            Ok(id) => pb::RecordResult {
                success: true,
                id,
                ..Default::default()
            },
            Err(e) => pb::RecordResult {
                success: false,
                id: match &e {
                    CdcError::RecordNotFound(id)
                    | CdcError::EntityDeleted(id)
                    | CdcError::NotDeleted(id) => id.clone(),
                    _ => String::new(),
                },
                error_code: e.error_code().to_owned(),
                message: e.to_string(),
                fields: e.fields(),
            },
        })
        .collect();
    pb::ApplyRecordsResponse {
        results,
        transaction_key: c.transaction_key.unwrap_or_default(),
        commit_number: c.commit_number.unwrap_or(0),
        replay_ids: replay_ids(&c.replay_ids),
    }
}

/// The newest REST API version, named in the origin of changes made here.
const ORIGIN_VERSION: &str = "64.0";

#[tonic::async_trait]
impl pb::change_data_capture_server::ChangeDataCapture for CdcService {
    async fn enable_change_events(
        &self,
        request: Request<pb::ChangeEventsRequest>,
    ) -> Result<Response<pb::ChangeEventMember>, Status> {
        let call = self.call(&request)?;
        let name = request.into_inner().name;
        let member = self
            .cdc
            .enable(&call.tenant, &name)
            .await
            .map_err(|e| self.fail(&call, e))?;
        tracing::info!(entity = %member.selected_entity, rpc_id = %call.rpc, "change events enabled");
        Ok(Response::new(member_pb(&member)))
    }

    async fn disable_change_events(
        &self,
        request: Request<pb::ChangeEventsRequest>,
    ) -> Result<Response<pb::DisableChangeEventsResponse>, Status> {
        let call = self.call(&request)?;
        let name = request.into_inner().name;
        let was_enabled = self
            .cdc
            .disable(&call.tenant, &name)
            .await
            .map_err(|e| self.fail(&call, e))?;
        Ok(Response::new(pb::DisableChangeEventsResponse {
            was_enabled,
        }))
    }

    async fn list_change_events(
        &self,
        request: Request<pb::ListChangeEventsRequest>,
    ) -> Result<Response<pb::ListChangeEventsResponse>, Status> {
        let call = self.call(&request)?;
        let members = self
            .cdc
            .members(&call.tenant)
            .await
            .map_err(|e| self.fail(&call, e))?;
        Ok(Response::new(pb::ListChangeEventsResponse {
            members: members.iter().map(member_pb).collect(),
            objects: self
                .cdc
                .catalog()
                .objects()
                .map(|o| o.name.clone())
                .collect(),
        }))
    }

    async fn apply_records(
        &self,
        request: Request<pb::ApplyRecordsRequest>,
    ) -> Result<Response<pb::ApplyRecordsResponse>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let client = if req.client.trim().is_empty() {
            "eventbus-cli".to_owned()
        } else {
            req.client.trim().to_owned()
        };
        let actor = Actor {
            tenant: call.tenant.clone(),
            user_id: call.user_id.clone(),
            origin: format!("com/salesforce/api/rest/{ORIGIN_VERSION};client={client}"),
        };
        let mut ops = Vec::with_capacity(req.changes.len());
        for (i, c) in req.changes.into_iter().enumerate() {
            let fields = if c.fields_json.trim().is_empty() {
                serde_json::Map::new()
            } else {
                match serde_json::from_str::<Value>(&c.fields_json) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) | Err(_) => {
                        return Err(self.fail(
                            &call,
                            CdcError::Invalid(format!(
                                "change {}: fields_json is not a JSON object of fields",
                                i + 1
                            )),
                        ));
                    }
                }
            };
            let object = (!c.object.trim().is_empty()).then(|| c.object.trim().to_owned());
            let op = match pb::RecordOperation::try_from(c.operation) {
                Ok(pb::RecordOperation::Create) => RecordOp::Create {
                    object: object.unwrap_or_default(),
                    fields,
                },
                Ok(pb::RecordOperation::Update) => RecordOp::Update {
                    object,
                    id: c.id,
                    fields,
                },
                Ok(pb::RecordOperation::Delete) => RecordOp::Delete { object, id: c.id },
                Ok(pb::RecordOperation::Undelete) => RecordOp::Undelete { object, id: c.id },
                Err(_) => {
                    return Err(self.fail(
                        &call,
                        CdcError::Invalid(format!(
                            "change {}: unknown operation {}",
                            i + 1,
                            c.operation
                        )),
                    ));
                }
            };
            ops.push(op);
        }
        let committed = self
            .cdc
            .apply(&actor, ops, req.all_or_none)
            .await
            .map_err(|e| self.fail(&call, e))?;
        Ok(Response::new(committed_pb(committed)))
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let object = (!req.object.trim().is_empty()).then_some(req.object.trim());
        let (obj, record) = self
            .cdc
            .get(&call.tenant, object, &req.id)
            .await
            .map_err(|e| self.fail(&call, e))?;
        let version: u32 = 64;
        let shown = super::rest::shown_record(obj, &record, version);
        Ok(Response::new(pb::RecordResponse {
            object: obj.name.clone(),
            record_json: shown.to_string(),
        }))
    }

    async fn emit_synthetic_event(
        &self,
        request: Request<pb::EmitSyntheticEventRequest>,
    ) -> Result<Response<pb::EmitSyntheticEventResponse>, Status> {
        let call = self.call(&request)?;
        let req = request.into_inner();
        let change = ChangeType::parse(req.change_type.trim()).ok_or_else(|| {
            self.fail(
                &call,
                CdcError::Invalid(format!(
                    "{} is no change type: use GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE or GAP_OVERFLOW.",
                    crate::types::Echo(&req.change_type)
                )),
            )
        })?;
        let actor = Actor {
            tenant: call.tenant.clone(),
            user_id: call.user_id.clone(),
            origin: String::new(),
        };
        let c = self
            .cdc
            .emit_synthetic(&actor, &req.object, change, &req.record_ids)
            .await
            .map_err(|e| self.fail(&call, e))?;
        tracing::info!(object = %req.object, change = change.symbol(), rpc_id = %call.rpc, "synthetic change event");
        Ok(Response::new(pb::EmitSyntheticEventResponse {
            transaction_key: c.transaction_key.unwrap_or_default(),
            commit_number: c.commit_number.unwrap_or(0),
            replay_ids: replay_ids(&c.replay_ids),
        }))
    }
}
