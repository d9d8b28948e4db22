//! Conversions between protobuf messages and domain types.
//!
//! Owns: every pb ⇄ domain conversion. Must not: hold logic beyond mapping.

use crate::api::pb;
use crate::broker::{Delivery, PublishEvent, PublishReceipt, Start, Topic};
use crate::log::{EventHeader, StoredEvent};
use crate::types::RpcId;

/// A publish request's events in domain form.
pub fn publish_events(events: Vec<pb::ProducerEvent>) -> Vec<PublishEvent> {
    events
        .into_iter()
        .map(|e| PublishEvent {
            id: e.id,
            schema_id: e.schema_id,
            payload: e.payload,
            headers: e
                .headers
                .into_iter()
                .map(|h| EventHeader {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
        })
        .collect()
}

/// A publish receipt as a PublishResponse.
pub fn publish_response(receipt: PublishReceipt, rpc: RpcId) -> pb::PublishResponse {
    pb::PublishResponse {
        results: receipt
            .outcomes
            .into_iter()
            .map(|o| match o.result {
                Ok(replay) => pb::PublishResult {
                    replay_id: replay.to_bytes().to_vec().into(),
                    error: None,
                    correlation_key: o.correlation_key,
                },
                Err(msg) => pb::PublishResult {
                    replay_id: Default::default(),
                    error: Some(pb::Error {
                        code: pb::ErrorCode::Publish as i32,
                        msg,
                    }),
                    correlation_key: o.correlation_key,
                },
            })
            .collect(),
        schema_id: receipt.schema_id.to_string(),
        rpc_id: rpc.to_string(),
    }
}

/// A stored event as a ConsumerEvent.
pub fn consumer_event(e: StoredEvent) -> pb::ConsumerEvent {
    pb::ConsumerEvent {
        replay_id: bytes::Bytes::copy_from_slice(
            &crate::types::ReplayId::from(e.offset).to_bytes()[..],
        ),
        event: Some(pb::ProducerEvent {
            id: e.event.id.into_string(),
            schema_id: e.event.schema_id.into_string(),
            payload: e.event.payload,
            headers: e
                .event
                .headers
                .into_iter()
                .map(|h| pb::EventHeader {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
        }),
    }
}

/// A delivery as a FetchResponse.
pub fn fetch_response(d: Delivery, rpc: RpcId) -> pb::FetchResponse {
    pb::FetchResponse {
        events: d.events.into_iter().map(consumer_event).collect(),
        latest_replay_id: d.latest.to_bytes().to_vec().into(),
        rpc_id: rpc.to_string(),
        pending_num_requested: i32::try_from(d.pending).unwrap_or(i32::MAX),
    }
}

/// A delivery as a ManagedFetchResponse: events, or a commit answer
/// alone (never both: the Java client does not commit a batch that
/// carries a commit response).
pub fn managed_response(d: Delivery, rpc: RpcId) -> pb::ManagedFetchResponse {
    pb::ManagedFetchResponse {
        events: d.events.into_iter().map(consumer_event).collect(),
        latest_replay_id: d.latest.to_bytes().to_vec().into(),
        rpc_id: rpc.to_string(),
        pending_num_requested: i32::try_from(d.pending).unwrap_or(i32::MAX),
        commit_response: d.commit.map(|c| *c).map(|c| pb::CommitReplayResponse {
            commit_request_id: c.request_id,
            replay_id: c.replay_id.into(),
            error: c.error.map(|msg| pb::Error {
                code: pb::ErrorCode::Commit as i32,
                msg,
            }),
            process_time: i64::try_from(c.process_time_ms).unwrap_or(i64::MAX),
        }),
    }
}

/// The start position of a first FetchRequest. Unknown preset numbers are
/// treated as LATEST, the proto3 default.
pub fn start(req: &pb::FetchRequest) -> Start {
    match pb::ReplayPreset::try_from(req.replay_preset) {
        Ok(pb::ReplayPreset::Earliest) => Start::Earliest,
        Ok(pb::ReplayPreset::Custom) => Start::Custom(req.replay_id.to_vec()),
        _ => Start::Latest,
    }
}

/// A topic as TopicInfo.
pub fn topic_info(t: &Topic, tenant: &str, rpc: RpcId) -> pb::TopicInfo {
    pb::TopicInfo {
        topic_name: t.name.to_string(),
        tenant_guid: tenant.to_owned(),
        can_publish: true,
        can_subscribe: true,
        schema_id: t.current_schema().to_string(),
        rpc_id: rpc.to_string(),
    }
}

/// A schema (its id and the caller's JSON text of it) as SchemaInfo.
pub fn schema_info(id: &str, json: &str, rpc: RpcId) -> pb::SchemaInfo {
    pb::SchemaInfo {
        schema_json: json.to_owned(),
        schema_id: id.to_owned(),
        rpc_id: rpc.to_string(),
    }
}
