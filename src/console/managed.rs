//! What the overview and the consumers page both show: which topics a
//! viewer may see, and its org's managed subscriptions as rows.
//!
//! Owns: [`visible`] and [`ManagedRow`]. Must not: change anything.

use serde::Serialize;

use crate::api::namespace::Namespace;
use crate::auth::Caller;
use crate::broker::Broker;
use crate::types::{ManagedState, ReplayId};

/// Whether `caller` may see topic `name` (its own name for it).
pub(super) fn visible(caller: &Caller, name: &str) -> bool {
    let g = &caller.grants;
    g.is_admin() || g.can_subscribe(name) || g.can_publish(name)
}

/// One managed subscription.
#[derive(Serialize)]
pub(super) struct ManagedRow {
    pub(super) id: String,
    pub(super) name: String,
    /// The caller's name for its topic.
    pub(super) topic: String,
    /// `RUN` or `STOP`.
    pub(super) state: &'static str,
    pub(super) lag: String,
    /// Whether a stream holds it.
    pub(super) active: bool,
    /// The committed replay position (`-` without a usable commit).
    pub(super) commit: String,
}

/// The caller's org's managed subscriptions on topics it may see.
pub(super) fn managed_rows(broker: &Broker, caller: &Caller) -> Vec<ManagedRow> {
    let ns = Namespace::of(&caller.tenant);
    broker
        .list_managed(&caller.tenant)
        .iter()
        .filter_map(|v| {
            let r = &v.record;
            let topic = ns.outward(&r.topic)?;
            visible(caller, topic).then(|| ManagedRow {
                id: r.id.clone(),
                name: r.developer_name.clone(),
                topic: topic.to_owned(),
                state: match r.state {
                    ManagedState::Run => "RUN",
                    ManagedState::Stop => "STOP",
                },
                lag: v.lag().map_or_else(|| "-".to_owned(), |l| l.to_string()),
                active: v.active,
                commit: v
                    .committed
                    .map_or_else(|| "-".to_owned(), |o| ReplayId::from(o).to_string()),
            })
        })
        .collect()
}
