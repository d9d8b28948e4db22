//! ManagedSubscribe: definitions, commits, resume, exclusivity, RUN/STOP.

use std::time::Duration;

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::admin_client::AdminClient;
use eventbus::api::pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::*;

const NAME: &str = "Order_Processor";
const ALREADY_ACTIVE: &str = "An active managed subscription with the same ID already exists. If a previous subscription with the same ID was stopped, there can be a delay before it expires. Try subscribing again later.";

async fn admin_client(server: &TestServer) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect admin")
}

async fn create(
    server: &TestServer,
    name: &str,
    default: admin::ManagedReplay,
    recovery: admin::ManagedReplay,
) -> admin::ManagedSubscription {
    admin_client(server)
        .await
        .create_managed_subscription(admin::CreateManagedSubscriptionRequest {
            developer_name: name.into(),
            topic_name: ORDER_TOPIC.into(),
            default_replay: default as i32,
            error_recovery_replay: recovery as i32,
            state: admin::ManagedState::Run as i32,
        })
        .await
        .expect("create managed subscription")
        .into_inner()
}

/// The usual test subscription: NAME, EARLIEST for both replays.
async fn create_earliest(server: &TestServer) -> admin::ManagedSubscription {
    create(
        server,
        NAME,
        admin::ManagedReplay::Earliest,
        admin::ManagedReplay::Earliest,
    )
    .await
}

fn by_name(name: &str) -> admin::ManagedSubscriptionRef {
    admin::ManagedSubscriptionRef {
        developer_name: name.into(),
        ..Default::default()
    }
}

async fn describe(server: &TestServer, name: &str) -> admin::ManagedSubscription {
    admin_client(server)
        .await
        .describe_managed_subscription(by_name(name))
        .await
        .expect("describe")
        .into_inner()
}

async fn set_state(server: &TestServer, name: &str, state: admin::ManagedState) {
    admin_client(server)
        .await
        .update_managed_subscription(admin::UpdateManagedSubscriptionRequest {
            subscription: Some(by_name(name)),
            state: Some(state as i32),
            ..Default::default()
        })
        .await
        .expect("update state");
}

/// One open ManagedSubscribe stream.
struct Managed {
    tx: Option<mpsc::Sender<pb::ManagedFetchRequest>>,
    rx: tonic::Streaming<pb::ManagedFetchResponse>,
}

fn first_by_name(name: &str, n: i32) -> pb::ManagedFetchRequest {
    pb::ManagedFetchRequest {
        developer_name: name.into(),
        num_requested: n,
        ..Default::default()
    }
}

fn commit(request_id: &str, replay_id: &[u8]) -> pb::ManagedFetchRequest {
    pb::ManagedFetchRequest {
        commit_replay_id_request: Some(pb::CommitReplayRequest {
            commit_request_id: request_id.into(),
            replay_id: replay_id.to_vec().into(),
        }),
        ..Default::default()
    }
}

fn credit(n: i32) -> pb::ManagedFetchRequest {
    pb::ManagedFetchRequest {
        num_requested: n,
        ..Default::default()
    }
}

/// Opens a stream with `first`; the error when the server refuses it.
async fn open(
    server: &TestServer,
    first: pb::ManagedFetchRequest,
) -> Result<Managed, tonic::Status> {
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.expect("queue first request");
    let resp = server
        .client()
        .await
        .managed_subscribe(ReceiverStream::new(rx))
        .await?;
    Ok(Managed {
        tx: Some(tx),
        rx: resp.into_inner(),
    })
}

impl Managed {
    async fn send(&self, req: pb::ManagedFetchRequest) {
        self.tx
            .as_ref()
            .expect("not half-closed")
            .send(req)
            .await
            .expect("request stream open");
    }

    async fn next(&mut self) -> pb::ManagedFetchResponse {
        next(&mut self.rx)
            .await
            .expect("stream healthy")
            .expect("stream open")
    }

    /// Reads responses until `n` events arrived; commit answers in between
    /// are a test failure here.
    async fn events(&mut self, n: usize) -> Vec<pb::ConsumerEvent> {
        let mut out = Vec::new();
        while out.len() < n {
            let r = self.next().await;
            assert!(
                r.commit_response.is_none(),
                "unexpected commit answer: {r:?}"
            );
            out.extend(r.events);
        }
        out
    }

    /// The next commit answer; a commit answer never carries events.
    async fn commit_answer(&mut self) -> (pb::CommitReplayResponse, pb::ManagedFetchResponse) {
        loop {
            let mut r = self.next().await;
            if let Some(c) = r.commit_response.take() {
                assert!(
                    r.events.is_empty(),
                    "a commit answer must come alone: {r:?}"
                );
                return (c, r);
            }
            assert!(
                r.events.is_empty(),
                "events while waiting for a commit answer"
            );
        }
    }

    /// Half-closes and expects the server to end the stream with OK.
    async fn close(mut self) {
        self.tx = None;
        loop {
            match next(&mut self.rx).await {
                Ok(None) => return,
                Ok(Some(r)) => assert!(r.events.is_empty(), "events after half-close"),
                Err(st) => panic!("half-close must end with OK: {st:?}"),
            }
        }
    }

    /// The status the server ends the stream with.
    async fn ended(mut self) -> tonic::Status {
        loop {
            match next(&mut self.rx).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("stream ended with OK"),
                Err(st) => return st,
            }
        }
    }
}

fn ids(events: &[pb::ConsumerEvent]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.replay_id.to_vec()).collect()
}

#[tokio::test]
async fn reconnect_resumes_exactly_after_the_last_commit() {
    let server = start().await;
    let sub = create_earliest(&server).await;
    assert_eq!(sub.id.len(), 18);
    assert!(sub.id.starts_with("18x"));
    let published = publish_orders(&server, 0, 10).await;

    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    let got = s.events(10).await;
    assert_eq!(ids(&got), published);
    // Commit the sixth event: the commit is answered in its own message.
    s.send(commit("c-1", &published[5])).await;
    let (answer, msg) = s.commit_answer().await;
    assert_eq!(answer.commit_request_id, "c-1");
    assert_eq!(answer.replay_id.to_vec(), published[5]);
    assert!(answer.error.is_none(), "{answer:?}");
    assert!(
        answer.process_time > 1_600_000_000_000,
        "epoch ms: {}",
        answer.process_time
    );
    assert_eq!(msg.pending_num_requested, 0);
    assert_eq!(msg.latest_replay_id.to_vec(), published[9]);
    s.close().await;

    let d = describe(&server, NAME).await;
    assert_eq!(d.committed_replay_id.to_vec(), published[5]);
    assert_eq!(d.lag, Some(4));
    assert!(d.committed_ms > 0);

    // By id this time, 15-character form: resumes with the seventh event.
    let mut s = open(
        &server,
        pb::ManagedFetchRequest {
            subscription_id: sub.id[..15].to_owned(),
            num_requested: 100,
            ..Default::default()
        },
    )
    .await
    .expect("reopen");
    let got = s.events(4).await;
    assert_eq!(ids(&got), published[6..].to_vec());
    let more = publish_orders(&server, 10, 1).await;
    assert_eq!(ids(&s.events(1).await), more);
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_commits_get_a_commit_error_and_the_stream_goes_on() {
    let server = start().await;
    create_earliest(&server).await;
    let published = publish_orders(&server, 0, 10).await;
    let mut s = open(&server, first_by_name(NAME, 5)).await.expect("open");
    assert_eq!(ids(&s.events(5).await), published[..5].to_vec());

    let commit_error = |a: &pb::CommitReplayResponse| {
        let e = a.error.as_ref().expect("a commit error");
        assert_eq!(e.code, pb::ErrorCode::Commit as i32);
        e.msg.clone()
    };
    // Never delivered on this stream.
    s.send(commit("undelivered", &published[7])).await;
    let (a, _) = s.commit_answer().await;
    assert_eq!(a.commit_request_id, "undelivered");
    assert!(commit_error(&a).contains("not delivered"), "{a:?}");
    // A good one, then an older one.
    s.send(commit("good", &published[3])).await;
    let (a, _) = s.commit_answer().await;
    assert!(a.error.is_none(), "{a:?}");
    s.send(commit("older", &published[1])).await;
    let (a, _) = s.commit_answer().await;
    assert!(commit_error(&a).contains("older"), "{a:?}");
    // Malformed.
    s.send(commit("malformed", b"abc")).await;
    let (a, _) = s.commit_answer().await;
    assert!(commit_error(&a).contains("not valid"), "{a:?}");

    // The stream is still open and delivers on new credit.
    s.send(credit(5)).await;
    assert_eq!(ids(&s.events(5).await), published[5..].to_vec());
    assert_eq!(
        describe(&server, NAME).await.committed_replay_id.to_vec(),
        published[3]
    );
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn pending_commits_are_answered_together_for_the_newest() {
    let server = start().await;
    create_earliest(&server).await;
    let published = publish_orders(&server, 0, 6).await;
    let mut s = open(&server, first_by_name(NAME, 6)).await.expect("open");
    s.events(6).await;
    for (i, id) in published.iter().enumerate() {
        s.send(commit(&format!("c-{i}"), id)).await;
    }
    // Answers come in order; the last names the newest commit, and no
    // commit is answered as failed.
    let mut last = None;
    while last
        .as_ref()
        .is_none_or(|a: &pb::CommitReplayResponse| a.commit_request_id != "c-5")
    {
        let (a, _) = s.commit_answer().await;
        assert!(a.error.is_none(), "{a:?}");
        last = Some(a);
    }
    assert_eq!(
        describe(&server, NAME).await.committed_replay_id.to_vec(),
        published[5]
    );
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_latest_replay_id_of_a_keepalive_can_be_committed() {
    let server = start_with(|a| a.keepalive = Duration::from_millis(200)).await;
    let published = publish_orders(&server, 0, 3).await;
    create(
        &server,
        NAME,
        admin::ManagedReplay::Latest,
        admin::ManagedReplay::Latest,
    )
    .await;
    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    let ka = s.next().await;
    assert!(ka.events.is_empty() && ka.commit_response.is_none());
    assert_eq!(ka.latest_replay_id.to_vec(), published[2]);
    assert_eq!(ka.pending_num_requested, 10);
    s.send(commit("ka", &ka.latest_replay_id)).await;
    let (a, msg) = s.commit_answer().await;
    assert!(a.error.is_none(), "{a:?}");
    assert_eq!(msg.pending_num_requested, 10);
    s.close().await;
    let d = describe(&server, NAME).await;
    assert_eq!(d.committed_replay_id.to_vec(), published[2]);
    assert_eq!(d.lag, Some(0));
    server.shutdown().await;
}

#[tokio::test]
async fn one_stream_at_a_time_and_free_again_as_soon_as_it_ends() {
    let server = start().await;
    create_earliest(&server).await;
    publish_orders(&server, 0, 1).await;
    let mut first = open(&server, first_by_name(NAME, 10)).await.expect("open");
    first.events(1).await;
    assert!(describe(&server, NAME).await.active);

    let st = match open(&server, first_by_name(NAME, 10)).await {
        Err(st) => st,
        Ok(s) => s.ended().await,
    };
    assert_status(
        &st,
        Code::FailedPrecondition,
        "managed.subscription.already.active",
    );
    assert!(st.message().starts_with(ALREADY_ACTIVE), "{}", st.message());
    assert!(
        describe(&server, NAME).await.active,
        "the refused stream takes nothing away"
    );

    // A clean half-close frees it at once.
    first.close().await;
    let mut second = open(&server, first_by_name(NAME, 10))
        .await
        .expect("free after half-close");
    second.events(1).await;

    // So does a client that vanishes: its connection closes.
    drop(second);
    let mut third = open(&server, first_by_name(NAME, 10))
        .await
        .expect("free after a disconnect");
    third.events(1).await;
    third.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stop_ends_the_stream_deletes_the_commit_and_run_starts_from_the_default_replay() {
    let server = start().await;
    create(
        &server,
        NAME,
        admin::ManagedReplay::Earliest,
        admin::ManagedReplay::Latest,
    )
    .await;
    let published = publish_orders(&server, 0, 4).await;
    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    s.events(4).await;
    s.send(commit("c", &published[3])).await;
    assert!(s.commit_answer().await.0.error.is_none());

    set_state(&server, NAME, admin::ManagedState::Stop).await;
    let st = s.ended().await;
    assert_status(
        &st,
        Code::FailedPrecondition,
        "managed.subscription.config.stopped",
    );
    let d = describe(&server, NAME).await;
    assert_eq!(d.state, admin::ManagedState::Stop as i32);
    assert!(d.committed_replay_id.is_empty(), "STOP deletes the commit");
    assert!(!d.active);

    let st = open(&server, first_by_name(NAME, 10))
        .await
        .err()
        .expect("refused while stopped");
    assert_status(
        &st,
        Code::FailedPrecondition,
        "managed.subscription.config.stopped",
    );

    set_state(&server, NAME, admin::ManagedState::Run).await;
    let mut s = open(&server, first_by_name(NAME, 10))
        .await
        .expect("open after RUN");
    // Default replay EARLIEST: everything again.
    assert_eq!(ids(&s.events(4).await), published);
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn deleting_the_subscription_ends_its_stream() {
    let server = start().await;
    create_earliest(&server).await;
    publish_orders(&server, 0, 1).await;
    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    s.events(1).await;
    admin_client(&server)
        .await
        .delete_managed_subscription(by_name(NAME))
        .await
        .expect("delete");
    assert_status(
        &s.ended().await,
        Code::NotFound,
        "managed.subscription.config.deleted",
    );
    let st = open(&server, first_by_name(NAME, 10))
        .await
        .err()
        .expect("gone");
    assert_status(
        &st,
        Code::NotFound,
        "managed.subscription.developer.name.not.found",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_commit_survives_a_server_restart() {
    let server = start().await;
    let sub = create_earliest(&server).await;
    let published = publish_orders(&server, 0, 8).await;
    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    s.events(8).await;
    s.send(commit("before-restart", &published[4])).await;
    assert!(s.commit_answer().await.0.error.is_none());
    drop(s);

    let server = server.restart().await;
    let d = describe(&server, NAME).await;
    assert_eq!(d.id, sub.id, "the id is stable");
    assert_eq!(d.committed_replay_id.to_vec(), published[4]);
    let mut s = open(&server, first_by_name(NAME, 10))
        .await
        .expect("reopen");
    assert_eq!(ids(&s.events(3).await), published[5..].to_vec());
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_commit_no_longer_retained_falls_back_to_the_error_recovery_replay() {
    let server = start().await;
    // Default LATEST, recovery EARLIEST: the two starts differ.
    create(
        &server,
        NAME,
        admin::ManagedReplay::Latest,
        admin::ManagedReplay::Earliest,
    )
    .await;
    let mut s = open(&server, first_by_name(NAME, 10)).await.expect("open");
    let published = publish_orders(&server, 0, 5).await;
    s.events(5).await;
    s.send(commit("c", &published[1])).await;
    assert!(s.commit_answer().await.0.error.is_none());
    s.close().await;

    // Retention deletes every event, including those after the commit.
    let mut admin = admin_client(&server).await;
    admin
        .update_topic(admin::UpdateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            retention_ms: 1,
        })
        .await
        .expect("retention");
    // Every published event is at least a millisecond old once this
    // returns: wait on the clock, not on the server.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        server
            .broker
            .enforce_retention()
            .await
            .expect("retention pass"),
        5
    );
    admin
        .update_topic(admin::UpdateTopicRequest {
            topic_name: ORDER_TOPIC.into(),
            retention_ms: 3_600_000,
        })
        .await
        .expect("retention back");
    let later = publish_orders(&server, 5, 2).await;

    let mut s = open(&server, first_by_name(NAME, 10))
        .await
        .expect("reopen");
    // EARLIEST (the recovery replay) gives the two retained events; the
    // default replay LATEST would give none.
    assert_eq!(ids(&s.events(2).await), later);
    s.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn first_requests_that_name_nothing_or_too_much_are_refused() {
    let server = start().await;
    let sub = create(
        &server,
        NAME,
        admin::ManagedReplay::Latest,
        admin::ManagedReplay::Latest,
    )
    .await;
    let cases: Vec<(pb::ManagedFetchRequest, Code, &str)> = vec![
        (
            credit(1),
            Code::InvalidArgument,
            "managed.subscription.id.or.developer.name.empty",
        ),
        (
            pb::ManagedFetchRequest {
                subscription_id: sub.id.clone(),
                developer_name: NAME.into(),
                num_requested: 1,
                ..Default::default()
            },
            Code::InvalidArgument,
            "managed.subscription.id.or.developer.name.empty",
        ),
        (
            pb::ManagedFetchRequest {
                subscription_id: "18x000000000000".into(),
                num_requested: 1,
                ..Default::default()
            },
            Code::NotFound,
            "managed.subscription.subscription.id.not.found",
        ),
        (
            pb::ManagedFetchRequest {
                subscription_id: "18x123".into(),
                num_requested: 1,
                ..Default::default()
            },
            Code::InvalidArgument,
            "managed.subscription.subscription.id.invalid",
        ),
        (
            first_by_name("Nobody", 1),
            Code::NotFound,
            "managed.subscription.developer.name.not.found",
        ),
        (
            pb::ManagedFetchRequest {
                commit_replay_id_request: Some(pb::CommitReplayRequest::default()),
                ..first_by_name(NAME, 1)
            },
            Code::InvalidArgument,
            "managed.subscription.fetch.request.commit.request.restricted",
        ),
        (
            pb::ManagedFetchRequest {
                auth_refresh: "token".into(),
                ..first_by_name(NAME, 1)
            },
            Code::InvalidArgument,
            "managed.subscription.fetch.request.auth.request.restricted",
        ),
        (
            first_by_name(NAME, -1),
            Code::InvalidArgument,
            "managed.subscription.fetch.request.events.invalid",
        ),
    ];
    for (req, code, suffix) in cases {
        let st = open(&server, req.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{req:?} accepted"));
        assert_status(&st, code, suffix);
    }
    // None of them took the subscription.
    open(&server, first_by_name(NAME, 1))
        .await
        .expect("still free")
        .close()
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn later_requests_may_omit_the_name_but_not_change_it() {
    let server = start().await;
    let sub = create(
        &server,
        NAME,
        admin::ManagedReplay::Latest,
        admin::ManagedReplay::Latest,
    )
    .await;
    let s = open(&server, first_by_name(NAME, 1)).await.expect("open");
    s.send(pb::ManagedFetchRequest {
        subscription_id: sub.id.clone(),
        num_requested: 1,
        ..Default::default()
    })
    .await;
    s.send(pb::ManagedFetchRequest {
        developer_name: "Someone_Else".into(),
        num_requested: 1,
        ..Default::default()
    })
    .await;
    assert_status(
        &s.ended().await,
        Code::InvalidArgument,
        "managed.subscription.fetch.request.invalid",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn definitions_are_checked_and_limited_per_tenant() {
    let server = start_with(|a| a.max_managed_subscriptions_per_tenant = 2).await;
    let mut admin = admin_client(&server).await;
    let req = |name: &str, topic: &str| admin::CreateManagedSubscriptionRequest {
        developer_name: name.into(),
        topic_name: topic.into(),
        ..Default::default()
    };
    admin
        .create_managed_subscription(req("A", ORDER_TOPIC))
        .await
        .expect("first");
    let st = admin
        .create_managed_subscription(req("A", ORDER_TOPIC))
        .await
        .expect_err("same name");
    assert_status(
        &st,
        Code::AlreadyExists,
        "managed.subscription.already.exists",
    );
    let st = admin
        .create_managed_subscription(req("Bad__Name", ORDER_TOPIC))
        .await
        .expect_err("bad name");
    assert_status(
        &st,
        Code::InvalidArgument,
        "managed.subscription.config.invalid",
    );
    let st = admin
        .create_managed_subscription(req("B", "/event/Nope__e"))
        .await
        .expect_err("no topic");
    assert_status(&st, Code::NotFound, "topic.not.found");
    admin
        .create_managed_subscription(req("B", ORDER_TOPIC))
        .await
        .expect("second");
    let st = admin
        .create_managed_subscription(req("C", ORDER_TOPIC))
        .await
        .expect_err("third");
    assert_status(
        &st,
        Code::ResourceExhausted,
        "managed.subscription.limit.exceeded",
    );
    let list = admin
        .list_managed_subscriptions(admin::ListManagedSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = list
        .subscriptions
        .iter()
        .map(|s| s.developer_name.as_str())
        .collect();
    assert_eq!(names, ["A", "B"]);
    // Deleting frees a slot.
    admin
        .delete_managed_subscription(by_name("A"))
        .await
        .expect("delete");
    admin
        .create_managed_subscription(req("C", ORDER_TOPIC))
        .await
        .expect("after delete");
    server.shutdown().await;
}

#[tokio::test]
async fn the_topics_folder_declares_managed_subscriptions() {
    let server = start_with(|a| {
        let dir = a.topics.clone().expect("topics folder").join("managed");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("Fulfillment.toml"),
            format!("topic = \"{ORDER_TOPIC}\"\ndefault_replay = \"EARLIEST\"\nerror_recovery_replay = \"LATEST\"\n"),
        )
        .expect("write");
    })
    .await;
    let d = describe(&server, "Fulfillment").await;
    assert_eq!(d.topic_name, ORDER_TOPIC);
    assert_eq!(d.default_replay, admin::ManagedReplay::Earliest as i32);
    assert_eq!(d.error_recovery_replay, admin::ManagedReplay::Latest as i32);
    assert_eq!(d.state, admin::ManagedState::Run as i32);
    let published = publish_orders(&server, 0, 2).await;
    let mut s = open(&server, first_by_name("Fulfillment", 5))
        .await
        .expect("open");
    assert_eq!(ids(&s.events(2).await), published);
    s.send(commit("c", &published[1])).await;
    assert!(s.commit_answer().await.0.error.is_none());
    s.close().await;
    // A restart provisions the folder again: same id, commit kept.
    let server = server.restart().await;
    let again = describe(&server, "Fulfillment").await;
    assert_eq!(again.id, d.id);
    assert_eq!(again.committed_replay_id.to_vec(), published[1]);
    server.shutdown().await;
}

/// What the official Java example (genericpubsub/ManagedSubscribe.java)
/// does on the wire, step by step: first request by developer name with a
/// batch of credit; after every response that carries no commit answer, a
/// commit-only request (random UUID, latest_replay_id, no name, credit 0);
/// more credit whenever pending_num_requested reaches 0, commit answers
/// included; half-close at the end and wait for the server to complete.
#[tokio::test]
async fn the_java_client_flow_consumes_commits_and_resumes() {
    const BATCH: i32 = 7;
    let server = start().await;
    create_earliest(&server).await;
    let published = publish_orders(&server, 0, 50).await;

    /// Consumes until `want` events arrived and the commit of the last
    /// response is answered; returns the replay ids and the answers seen.
    async fn consume(server: &TestServer, want: usize) -> (Vec<Vec<u8>>, usize) {
        let mut s = open(server, first_by_name(NAME, BATCH))
            .await
            .expect("open");
        let mut got = Vec::new();
        let mut answers = 0;
        let mut last_commit = None;
        loop {
            let r = s.next().await;
            if let Some(c) = &r.commit_response {
                assert!(r.events.is_empty(), "a commit answer comes alone");
                assert!(c.error.is_none(), "{c:?}");
                answers += 1;
                if got.len() >= want && last_commit.as_ref() == Some(&c.commit_request_id) {
                    break;
                }
            } else {
                got.extend(ids(&r.events));
                let id = uuid::Uuid::new_v4().to_string();
                s.send(commit(&id, &r.latest_replay_id)).await;
                last_commit = Some(id);
            }
            if r.pending_num_requested == 0 && got.len() < want {
                s.send(credit(BATCH)).await;
            }
        }
        s.close().await;
        (got, answers)
    }

    let (first, answers) = consume(&server, 30).await;
    assert!(answers > 0);
    assert_eq!(first, published[..first.len()].to_vec());
    let (second, _) = consume(&server, published.len() - first.len()).await;
    assert_eq!(
        second,
        published[first.len()..].to_vec(),
        "no gap, no re-delivery"
    );
    server.shutdown().await;
}

/// One plain HTTP/1.1 GET; returns the status code and the body.
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).expect("json body"))
}

fn soql_path(q: &str) -> String {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/services/data/v62.0/tooling/query/?q={encoded}")
}

#[tokio::test]
async fn the_tooling_api_query_finds_managed_subscriptions_by_id_or_name() {
    let server = start_with(|a| a.tooling_listen = "127.0.0.1:0".into()).await;
    let addr = server.tooling.expect("tooling endpoint on");
    let sub = create_earliest(&server).await;
    let q = |filter: &str| {
        soql_path(&format!(
            "SELECT Id, DeveloperName, Metadata FROM ManagedEventSubscription WHERE {filter} LIMIT 1"
        ))
    };
    for filter in [
        format!("Id='{}'", sub.id),
        format!("DeveloperName='{NAME}'"),
    ] {
        let (status, body) = http_get(addr, &q(&filter), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["size"], 1, "{body}");
        let rec = &body["records"][0];
        assert_eq!(rec["Id"], sub.id.as_str());
        assert_eq!(rec["DeveloperName"], NAME);
        assert_eq!(rec["Metadata"]["topicName"], ORDER_TOPIC);
        assert_eq!(rec["Metadata"]["state"], "RUN");
        assert_eq!(rec["Metadata"]["defaultReplay"], "EARLIEST");
        assert_eq!(rec["attributes"]["type"], "ManagedEventSubscription");
    }
    let (status, body) = http_get(addr, &q("DeveloperName='Nobody'"), None).await;
    assert_eq!(
        (status, body["size"].clone()),
        (200, serde_json::json!(0)),
        "{body}"
    );
    let (status, body) = http_get(addr, &soql_path("SELECT Id FROM Account"), None).await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    server.shutdown().await;
}

#[tokio::test]
async fn the_tooling_api_needs_a_valid_bearer_token_when_auth_is_on() {
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        std::fs::write(
            &file,
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"00D000000000000EAA\"\nprincipal = \"ops\"\ngrants = [\"subscribe:*\", \"admin\"]\n",
                eventbus::auth::hash_token("good-token")
            ),
        )
        .expect("tokens");
        a.auth = eventbus::auth::AuthMode::Static;
        a.auth_tokens_file = Some(file);
        a.tooling_listen = "127.0.0.1:0".into();
    })
    .await;
    let addr = server.tooling.expect("tooling endpoint on");
    let path = soql_path("SELECT Id, Metadata FROM ManagedEventSubscription");
    for bearer in [None, Some("bad-token")] {
        let (status, body) = http_get(addr, &path, bearer).await;
        assert_eq!(status, 401, "{bearer:?}");
        assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    }
    let (status, body) = http_get(addr, &path, Some("good-token")).await;
    assert_eq!(
        (status, body["size"].clone()),
        (200, serde_json::json!(0)),
        "{body}"
    );
    server.shutdown().await;
}
