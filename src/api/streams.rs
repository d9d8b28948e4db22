//! Live streams on the wire: who opened a Subscribe or ManagedSubscribe
//! stream (the origin the broker lists it with), and the Admin API's
//! `ListStreams` answer.
//!
//! Owns: taking the peer address and principal from a call, and turning
//! the broker's [`StreamSnapshot`]s into `StreamDescription`s a tenant may
//! see (its own streams, under its own topic names).
//! Must not: keep streams itself (the broker's registry does) or decide who
//! the caller is (`auth` does).

use tonic::Request;

use super::admin::pb;
use super::namespace::Namespace;
use crate::auth::{AuthMode, Caller};
use crate::broker::{StreamKind, StreamOrigin, StreamSnapshot};
use crate::transport::ConnInfo;
use crate::types::RpcId;

/// The origin of a stream opened by `request` from `caller`: the peer the
/// transport accepted, and the principal when the server authenticates
/// (`--auth none` has no user to show).
pub(super) fn origin<T>(
    request: &Request<T>,
    caller: &Caller,
    mode: AuthMode,
    rpc: RpcId,
) -> StreamOrigin {
    StreamOrigin {
        tenant: caller.tenant.to_string(),
        peer: request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|info| info.remote),
        user: if mode == AuthMode::None {
            String::new()
        } else {
            caller.principal.clone()
        },
        rpc_id: rpc.to_string(),
    }
}

/// The streams of `ns`'s tenant among `all`, on `topic` (a name as the
/// tenant writes it) when one is given, as the tenant names them.
pub(super) fn visible(
    ns: &Namespace,
    all: &[StreamSnapshot],
    topic: &str,
) -> Vec<pb::StreamDescription> {
    all.iter()
        .filter_map(|s| {
            let name = ns.outward(&s.topic)?;
            (topic.is_empty() || topic == name).then(|| describe(name, s))
        })
        .collect()
}

fn describe(topic: &str, s: &StreamSnapshot) -> pb::StreamDescription {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Offset, ReplayId};

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
        let seen = visible(&mine, &all, "");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].topic_name, "/event/A__e");
        assert_eq!(seen[0].kind, pb::StreamKind::ManagedSubscribe as i32);
        assert_eq!(seen[0].developer_name, "Orders");
        assert_eq!(seen[0].peer, "127.0.0.1:40000");
        assert_eq!(seen[0].last_delivery_ms, 0);
        let default = Namespace::of(crate::types::DEFAULT_TENANT_GUID);
        let seen = visible(&default, &all, "");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].kind, pb::StreamKind::Subscribe as i32);
        assert!(visible(&default, &all, "/event/B__e").is_empty());
        assert_eq!(visible(&default, &all, "/event/A__e").len(), 1);
    }
}
