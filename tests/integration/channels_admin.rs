//! Custom channels through the `eventbus.admin.v1.Channels` service (issue
//! 22) over real gRPC on 127.0.0.1: channels and members defined, listed
//! and removed; a member's filter applied to the events published after
//! it; refused definitions (a filter error naming its position, a
//! duplicate channel, an unknown channel) with nothing defined; the `admin`
//! grant required; and the `eventbus channel` commands against a server.
//!
//! A duplicate channel is `ALREADY_EXISTS` with `…channel.invalid` and a
//! message starting `DUPLICATE_VALUE:` (Salesforce's code for it); other
//! refused definitions are `INVALID_ARGUMENT` with the same error code.

use eventbus::api::admin::pb as admin;
use eventbus::api::admin::pb::channels_client::ChannelsClient;
use eventbus::api::pb;
use eventbus::auth::{AuthMode, hash_token};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::common::*;

async fn channels(server: &TestServer) -> ChannelsClient<Channel> {
    ChannelsClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect")
}

async fn create(
    c: &mut ChannelsClient<Channel>,
    name: &str,
    kind: &str,
) -> Result<admin::Channel, tonic::Status> {
    c.create_channel(admin::CreateChannelRequest {
        full_name: name.into(),
        channel_type: kind.into(),
        label: String::new(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn set_member(
    c: &mut ChannelsClient<Channel>,
    channel: &str,
    entity: &str,
    filter: &str,
    enriched: &[&str],
) -> Result<admin::ChannelMember, tonic::Status> {
    c.set_channel_member(admin::SetChannelMemberRequest {
        channel: channel.into(),
        selected_entity: entity.into(),
        filter_expression: filter.into(),
        enriched_fields: enriched.iter().map(|s| (*s).to_owned()).collect(),
        developer_name: String::new(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn list_channels(c: &mut ChannelsClient<Channel>) -> Vec<admin::Channel> {
    c.list_channels(admin::ListChannelsRequest {})
        .await
        .expect("list channels")
        .into_inner()
        .channels
}

async fn list_members(c: &mut ChannelsClient<Channel>, channel: &str) -> Vec<admin::ChannelMember> {
    c.list_channel_members(admin::ListChannelMembersRequest {
        channel: channel.into(),
    })
    .await
    .expect("list members")
    .into_inner()
    .members
}

#[tokio::test]
async fn channels_and_members_are_defined_listed_and_removed() {
    let server = start().await;
    let mut c = channels(&server).await;

    let orders = create(&mut c, "Orders__chn", "event")
        .await
        .expect("create event channel");
    assert_eq!(orders.full_name, "Orders__chn");
    assert_eq!(orders.channel_type, "event");
    assert_eq!(orders.label, "Orders");
    assert_eq!(orders.topic_name, "/event/Orders__chn");
    assert!(orders.id.starts_with("0YL"), "{}", orders.id);
    let sales = create(&mut c, "Sales__chn", "DATA")
        .await
        .expect("create data channel");
    assert_eq!(sales.channel_type, "data");
    assert_eq!(sales.topic_name, "/data/Sales__chn");

    let names: Vec<String> = list_channels(&mut c)
        .await
        .into_iter()
        .map(|ch| ch.full_name)
        .collect();
    assert_eq!(names, ["Orders__chn", "Sales__chn"]);

    // A member with a filter, then the events published after it: only
    // those matching reach the channel (amounts are n * 1.5).
    let m = set_member(
        &mut c,
        "orders__chn",
        "Order_Event__e",
        "Amount__c > 100",
        &[],
    )
    .await
    .expect("set member");
    assert_eq!(m.channel, "Orders__chn");
    assert_eq!(m.selected_entity, "Order_Event__e");
    assert_eq!(m.filter_expression, "Amount__c > 100");
    assert!(m.id.starts_with("0v8"), "{}", m.id);
    assert!(!m.developer_name.is_empty());
    publish_orders(&server, 60, 10).await;
    let mut client = server.client().await;
    let (tx, mut stream) = subscribe(
        &mut client,
        pb::FetchRequest {
            topic_name: "/event/Orders__chn".into(),
            ..fetch(pb::ReplayPreset::Earliest, vec![], 3)
        },
    )
    .await
    .expect("subscribe to the channel");
    let (events, _) = collect_events(&mut stream, 3).await;
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| e.event.as_ref().expect("event").payload.to_vec())
        .collect();
    assert_eq!(
        payloads,
        [order_payload(67), order_payload(68), order_payload(69)],
        "only the orders over 100, in order"
    );
    drop(tx);

    // A data channel member with enriched fields.
    let d = set_member(&mut c, "Sales__chn", "AccountChangeEvent", "", &["Name"])
        .await
        .expect("set data member");
    assert_eq!(d.enriched_fields, ["Name"]);
    assert_eq!(d.filter_expression, "");

    let all = list_members(&mut c, "").await;
    let pairs: Vec<(String, String)> = all
        .iter()
        .map(|m| (m.channel.clone(), m.selected_entity.clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("Orders__chn".to_owned(), "Order_Event__e".to_owned()),
            ("Sales__chn".to_owned(), "AccountChangeEvent".to_owned()),
        ]
    );
    assert_eq!(list_members(&mut c, "Sales__chn").await.len(), 1);

    // Replacing a member keeps one member with the new filter.
    set_member(
        &mut c,
        "Orders__chn",
        "Order_Event__e",
        "Amount__c > 1",
        &[],
    )
    .await
    .expect("replace member");
    let of_orders = list_members(&mut c, "Orders__chn").await;
    assert_eq!(of_orders.len(), 1);
    assert_eq!(of_orders[0].filter_expression, "Amount__c > 1");

    // Removing.
    let removed = c
        .delete_channel_member(admin::DeleteChannelMemberRequest {
            channel: "Sales__chn".into(),
            selected_entity: "accountchangeevent".into(),
        })
        .await
        .expect("remove member")
        .into_inner();
    assert!(removed.deleted);
    let again = c
        .delete_channel_member(admin::DeleteChannelMemberRequest {
            channel: "Sales__chn".into(),
            selected_entity: "AccountChangeEvent".into(),
        })
        .await
        .expect("remove member again")
        .into_inner();
    assert!(!again.deleted);
    assert!(list_members(&mut c, "Sales__chn").await.is_empty());

    let deleted = c
        .delete_channel(admin::DeleteChannelRequest {
            full_name: "Orders__chn".into(),
        })
        .await
        .expect("delete channel")
        .into_inner();
    assert!(deleted.deleted);
    let names: Vec<String> = list_channels(&mut c)
        .await
        .into_iter()
        .map(|ch| ch.full_name)
        .collect();
    assert_eq!(names, ["Sales__chn"]);
    assert!(list_members(&mut c, "").await.is_empty());
    let gone = c
        .delete_channel(admin::DeleteChannelRequest {
            full_name: "Orders__chn".into(),
        })
        .await
        .expect("delete channel again")
        .into_inner();
    assert!(!gone.deleted);
}

#[tokio::test]
async fn refused_definitions_define_nothing() {
    let server = start().await;
    let mut c = channels(&server).await;
    create(&mut c, "Orders__chn", "event")
        .await
        .expect("create");

    // A filter that does not parse: the message names the position.
    let st = set_member(
        &mut c,
        "Orders__chn",
        "Order_Event__e",
        "Amount__c > > 100",
        &[],
    )
    .await
    .expect_err("bad filter");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    assert!(
        st.message()
            .starts_with("FIELD_INTEGRITY_EXCEPTION: filterExpression:"),
        "{}",
        st.message()
    );
    assert!(st.message().contains("at character"), "{}", st.message());
    // A filter naming a field the event does not have.
    let st = set_member(
        &mut c,
        "Orders__chn",
        "Order_Event__e",
        "Missing__c = 'x'",
        &[],
    )
    .await
    .expect_err("unknown field");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    assert!(st.message().contains("Missing__c"), "{}", st.message());
    // An entity of the wrong kind, enriched fields on an event channel.
    let st = set_member(&mut c, "Orders__chn", "AccountChangeEvent", "", &[])
        .await
        .expect_err("change events on an event channel");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    let st = set_member(&mut c, "Orders__chn", "Order_Event__e", "", &["Name"])
        .await
        .expect_err("enriched fields on an event channel");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    assert!(list_members(&mut c, "").await.is_empty(), "nothing defined");

    // Bad channel definitions.
    let st = create(&mut c, "Orders", "event")
        .await
        .expect_err("name without __chn");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    assert!(st.message().contains("__chn"), "{}", st.message());
    let st = create(&mut c, "Other__chn", "stream")
        .await
        .expect_err("unknown type");
    assert_status(&st, Code::InvalidArgument, "channel.invalid");
    let st = create(&mut c, "ORDERS__chn", "data")
        .await
        .expect_err("duplicate");
    assert_status(&st, Code::AlreadyExists, "channel.invalid");
    assert!(
        st.message().starts_with("DUPLICATE_VALUE:"),
        "{}",
        st.message()
    );
    let channels_now = list_channels(&mut c).await;
    assert_eq!(channels_now.len(), 1);
    assert_eq!(channels_now[0].channel_type, "event");

    // An unknown channel.
    let st = set_member(&mut c, "Nope__chn", "Order_Event__e", "", &[])
        .await
        .expect_err("unknown channel");
    assert_status(&st, Code::NotFound, "channel.not.found");
    assert!(st.message().contains("Nope__chn"), "{}", st.message());
    let st = c
        .list_channel_members(admin::ListChannelMembersRequest {
            channel: "Nope__chn".into(),
        })
        .await
        .expect_err("members of an unknown channel");
    assert_status(&st, Code::NotFound, "channel.not.found");
    let st = c
        .delete_channel_member(admin::DeleteChannelMemberRequest {
            channel: "Nope__chn".into(),
            selected_entity: "Order_Event__e".into(),
        })
        .await
        .expect_err("member of an unknown channel");
    assert_status(&st, Code::NotFound, "channel.not.found");
}

/// The default tenant of the test server.
const ORG: &str = "00D000000000000EAA";

#[tokio::test]
async fn the_admin_grant_is_required() {
    let server = start_with(|a| {
        let file = a.data_dir.parent().expect("root").join("tokens.toml");
        let entry = |token: &str, grants: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"{token}\"\ngrants = [{grants}]\n",
                hash_token(token)
            )
        };
        let body = [
            entry("ops-token", "\"admin\""),
            entry("writer-token", "\"publish:*\", \"subscribe:*\""),
        ]
        .join("\n");
        std::fs::write(&file, body).expect("tokens file");
        a.auth = AuthMode::Static;
        a.topics_tenants = vec![ORG.into()];
        a.auth_tokens_file = Some(file);
    })
    .await;
    let as_caller = |token: &'static str| {
        move |mut req: tonic::Request<()>| {
            let md = req.metadata_mut();
            md.insert("accesstoken", MetadataValue::from_static(token));
            md.insert(
                "instanceurl",
                MetadataValue::from_static("https://acme.my.salesforce.com"),
            );
            md.insert("tenantid", MetadataValue::from_static(ORG));
            Ok(req)
        }
    };
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut writer = ChannelsClient::with_interceptor(channel.clone(), as_caller("writer-token"));
    let st = writer
        .create_channel(admin::CreateChannelRequest {
            full_name: "Orders__chn".into(),
            channel_type: "event".into(),
            label: String::new(),
        })
        .await
        .expect_err("a caller without admin");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let st = writer
        .list_channels(admin::ListChannelsRequest {})
        .await
        .expect_err("listing needs admin too");
    assert_status(&st, Code::PermissionDenied, "admin.permission");
    let mut anonymous = ChannelsClient::new(channel.clone());
    let st = anonymous
        .list_channels(admin::ListChannelsRequest {})
        .await
        .expect_err("no credentials");
    assert_eq!(st.code(), Code::Unauthenticated, "{st:?}");

    let mut ops = ChannelsClient::with_interceptor(channel, as_caller("ops-token"));
    ops.create_channel(admin::CreateChannelRequest {
        full_name: "Orders__chn".into(),
        channel_type: "event".into(),
        label: "Order feed".into(),
    })
    .await
    .expect("admin creates");
    let list = ops
        .list_channels(admin::ListChannelsRequest {})
        .await
        .expect("admin lists")
        .into_inner()
        .channels;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].label, "Order feed");
}

#[tokio::test]
async fn the_cli_defines_and_lists_channels() {
    let server = start().await;
    let addr = server.addr.to_string();
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let out = run_eventbus(
        &addr,
        &["channel", "create", "Orders__chn", "--type", "event"],
        None,
    )
    .await;
    let text = ok(&out);
    assert!(text.contains("created event channel Orders__chn"), "{text}");
    assert!(text.contains("/event/Orders__chn"), "{text}");

    let out = run_eventbus(
        &addr,
        &[
            "channel",
            "member",
            "set",
            "Orders__chn",
            "Order_Event__e",
            "--filter",
            "Amount__c > 100",
        ],
        None,
    )
    .await;
    let text = ok(&out);
    assert!(
        text.contains("Orders__chn carries Order_Event__e"),
        "{text}"
    );
    assert!(text.contains("Amount__c > 100"), "{text}");

    // A refused filter fails with the server's message and its position.
    let out = run_eventbus(
        &addr,
        &[
            "channel",
            "member",
            "set",
            "Orders__chn",
            "Order_Event__e",
            "--filter",
            "Amount__c >",
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("filterExpression"), "{err}");
    assert!(err.contains("at character"), "{err}");

    let out = run_eventbus(&addr, &["channel", "list"], None).await;
    let text = ok(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("Orders__chn"))
        .unwrap_or_else(|| panic!("no row for the channel: {text}"));
    assert!(
        row.contains("event") && row.contains("/event/Orders__chn"),
        "{row}"
    );

    let out = run_eventbus(&addr, &["channel", "list", "--json"], None).await;
    let text = ok(&out);
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(v["full_name"], "Orders__chn");
    assert_eq!(v["channel_type"], "event");

    let out = run_eventbus(
        &addr,
        &["channel", "member", "list", "Orders__chn", "--json"],
        None,
    )
    .await;
    let text = ok(&out);
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(v["selected_entity"], "Order_Event__e");
    assert_eq!(
        v["filter_expression"], "Amount__c > 100",
        "the first filter stays"
    );

    let out = run_eventbus(&addr, &["channel", "member", "list"], None).await;
    let text = ok(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Orders__chn") && l.contains("Amount__c > 100")),
        "{text}"
    );

    let out = run_eventbus(
        &addr,
        &[
            "channel",
            "member",
            "remove",
            "Orders__chn",
            "Order_Event__e",
        ],
        None,
    )
    .await;
    assert!(ok(&out).contains("removed Order_Event__e from Orders__chn"));
    let out = run_eventbus(&addr, &["channel", "delete", "Orders__chn"], None).await;
    assert!(ok(&out).contains("deleted channel Orders__chn"));
}
