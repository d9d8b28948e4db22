//! Who opened a Subscribe or ManagedSubscribe stream: the origin the
//! broker lists it with (the Admin API's `ListStreams` shows it).
//!
//! Owns: taking the peer address and principal from a call.
//! Must not: keep streams itself (the broker's registry does) or decide who
//! the caller is (`auth` does).

use tonic::Request;

use crate::auth::{AuthMode, Caller};
use crate::broker::StreamOrigin;
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
