//! One Subscribe or ManagedSubscribe call, seen the same way by the
//! subscribe loop: open with credit, read responses, add credit, commit,
//! close.
//!
//! Owns: the request messages of both RPCs and closing a call cleanly
//! (a managed call waits for the answer to its last commit).
//! Must not: print, or decide where to start or when to stop.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::super::ConnArgs;
use super::super::wire::authorized;
use crate::api::pb;
use crate::api::pb::pub_sub_client::PubSubClient;
use crate::types::ManagedRef;

/// How long closing waits for the server: for the answer to a last commit
/// and for the end of the call after the half-close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a call reads.
#[derive(Clone, Debug)]
pub(super) enum Source {
    /// A topic through Subscribe, from a preset or after a replay id.
    Topic {
        /// Topic name.
        topic: String,
        /// LATEST, EARLIEST or CUSTOM.
        preset: pb::ReplayPreset,
        /// The replay id to start after, for CUSTOM.
        replay_id: Vec<u8>,
    },
    /// A managed subscription (id or developer name) through
    /// ManagedSubscribe: the server knows where to start.
    Managed(String),
}

/// A response of either RPC.
pub(super) struct Response {
    /// The events, oldest first.
    pub(super) events: Vec<pb::ConsumerEvent>,
    /// Credit left after this response.
    pub(super) pending: i32,
    /// The answer to a commit (managed only).
    pub(super) commit: Option<pb::CommitReplayResponse>,
    /// The stream's position (`latest_replay_id`): after a keepalive, the
    /// replay id a new call may resume after without missing anything.
    pub(super) latest: Vec<u8>,
}

/// An open call.
pub(super) enum Call {
    /// Subscribe.
    Plain {
        /// Later requests (credit).
        tx: mpsc::Sender<pb::FetchRequest>,
        /// Responses.
        rx: tonic::Streaming<pb::FetchResponse>,
    },
    /// ManagedSubscribe.
    Managed {
        /// Later requests (credit, commits).
        tx: mpsc::Sender<pb::ManagedFetchRequest>,
        /// Responses.
        rx: tonic::Streaming<pb::ManagedFetchResponse>,
    },
}

impl Call {
    /// Opens a call on `source` asking for `credit` events.
    ///
    /// # Errors
    /// The server refused the call.
    pub(super) async fn open(
        client: &mut PubSubClient<Channel>,
        conn: &ConnArgs,
        source: &Source,
        credit: i32,
    ) -> Result<Call, tonic::Status> {
        match source {
            Source::Topic {
                topic,
                preset,
                replay_id,
            } => {
                let (tx, rx) = mpsc::channel(4);
                // The receiver is alive: it is right here.
                let _ = tx
                    .send(pb::FetchRequest {
                        topic_name: topic.clone(),
                        replay_preset: *preset as i32,
                        replay_id: replay_id.clone().into(),
                        num_requested: credit,
                        auth_refresh: String::new(),
                    })
                    .await;
                let rx = client
                    .subscribe(authorized(conn, ReceiverStream::new(rx)))
                    .await?
                    .into_inner();
                Ok(Call::Plain { tx, rx })
            }
            Source::Managed(name) => {
                let (subscription_id, developer_name) = match ManagedRef::guess(name) {
                    ManagedRef::Id(id) => (id, String::new()),
                    ManagedRef::Name(n) => (String::new(), n),
                };
                let (tx, rx) = mpsc::channel(4);
                let _ = tx
                    .send(pb::ManagedFetchRequest {
                        subscription_id,
                        developer_name,
                        num_requested: credit,
                        ..Default::default()
                    })
                    .await;
                let rx = client
                    .managed_subscribe(authorized(conn, ReceiverStream::new(rx)))
                    .await?
                    .into_inner();
                Ok(Call::Managed { tx, rx })
            }
        }
    }

    /// The next response; `None` when the server ended the call.
    ///
    /// # Errors
    /// The call failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a response is either returned or still queued.
    pub(super) async fn next(&mut self) -> Result<Option<Response>, tonic::Status> {
        Ok(match self {
            Call::Plain { rx, .. } => rx.message().await?.map(|r| Response {
                events: r.events,
                pending: r.pending_num_requested,
                commit: None,
                latest: r.latest_replay_id.to_vec(),
            }),
            Call::Managed { rx, .. } => rx.message().await?.map(|r| Response {
                events: r.events,
                pending: r.pending_num_requested,
                commit: r.commit_response,
                latest: r.latest_replay_id.to_vec(),
            }),
        })
    }

    /// Asks for `n` more events; false when the call is gone.
    pub(super) async fn ask(&self, n: i32) -> bool {
        match self {
            Call::Plain { tx, .. } => tx
                .send(pb::FetchRequest {
                    num_requested: n,
                    ..Default::default()
                })
                .await
                .is_ok(),
            Call::Managed { tx, .. } => tx
                .send(pb::ManagedFetchRequest {
                    num_requested: n,
                    ..Default::default()
                })
                .await
                .is_ok(),
        }
    }

    /// Commits `replay_id` (managed only); returns the commit request id
    /// the answer will carry, `None` on a plain call or a call that is gone.
    pub(super) async fn commit(&self, replay_id: &[u8]) -> Option<String> {
        let Call::Managed { tx, .. } = self else {
            return None;
        };
        let id = uuid::Uuid::new_v4().to_string();
        tx.send(pb::ManagedFetchRequest {
            commit_replay_id_request: Some(pb::CommitReplayRequest {
                commit_request_id: id.clone(),
                replay_id: replay_id.to_vec().into(),
            }),
            ..Default::default()
        })
        .await
        .ok()
        .map(|()| id)
    }

    /// Ends the call: when `commit` names a commit request still
    /// unanswered, waits for its answer (events that arrive meanwhile are
    /// not printed, so they are not committed either), then half-closes and
    /// lets the server end the call. Returns the answer, if one came.
    pub(super) async fn close(self, commit: Option<String>) -> Option<pb::CommitReplayResponse> {
        match self {
            Call::Plain { tx, mut rx } => {
                drop(tx);
                drain(&mut rx).await;
                None
            }
            Call::Managed { tx, mut rx } => {
                let mut answer = None;
                if let Some(id) = commit {
                    answer = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Ok(Some(r)) = rx.message().await {
                            if let Some(c) = r.commit_response
                                && c.commit_request_id == id
                            {
                                return Some(c);
                            }
                        }
                        None
                    })
                    .await
                    .ok()
                    .flatten();
                }
                drop(tx);
                drain(&mut rx).await;
                answer
            }
        }
    }
}

/// Reads what is left of a half-closed call until the server ends it.
async fn drain<T>(rx: &mut tonic::Streaming<T>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Ok(Some(_)) = rx.message().await {}
    })
    .await;
}
