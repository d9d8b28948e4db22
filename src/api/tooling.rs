//! A sliver of the Salesforce Tooling API over HTTP: the SOQL query Pub/Sub
//! API clients send to look up a `ManagedEventSubscription` record before
//! they open ManagedSubscribe.
//!
//! Owns: `GET /services/data/vNN.N/tooling/query/?q=…` for the
//! `ManagedEventSubscription` object, its tiny SOQL subset and the
//! Salesforce-shaped JSON answers and errors.
//! Must not: hold managed-subscription rules (the broker does) or speak
//! gRPC.
//!
//! The npm client `salesforce-pubsub-api-client` (5.x) runs
//! `SELECT Id, DeveloperName, Metadata FROM ManagedEventSubscription WHERE
//! Id='…' LIMIT 1` (or `DeveloperName='…'`) against its `instanceUrl` with
//! `Authorization: Bearer <accessToken>`, and reads `Metadata.topicName`
//! and `Metadata.state`. Pointing `instanceUrl` at this listener makes its
//! `subscribeWithManagedSubscription` work against eventbus unchanged.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::namespace::Namespace;
use crate::auth::Authenticator;
use crate::broker::{Broker, ManagedRef, ManagedView};

/// The object this endpoint answers for.
const OBJECT: &str = "ManagedEventSubscription";
/// The fields a query may select.
const FIELDS: [&str; 4] = ["Id", "DeveloperName", "MasterLabel", "Metadata"];

#[derive(Clone)]
struct Shared {
    broker: Arc<Broker>,
    auth: Arc<Authenticator>,
    channels: Option<Arc<crate::channels::Channels>>,
}

/// A parsed query.
#[derive(Debug, PartialEq, Eq)]
struct Soql {
    fields: Vec<&'static str>,
    filter: Option<ManagedRef>,
    limit: Option<usize>,
}

/// Parses the SOQL subset: `SELECT f[, f…] FROM ManagedEventSubscription
/// [WHERE Id = '…' | DeveloperName = '…'] [LIMIT n]`, keywords in any case.
fn parse(q: &str) -> Result<Soql, String> {
    let words: Vec<&str> = q.split_whitespace().collect();
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(k));
    if !kw(0, "SELECT") {
        return Err("the query must start with SELECT".into());
    }
    let from = (1..words.len())
        .find(|&i| kw(i, "FROM"))
        .ok_or("the query has no FROM")?;
    let mut fields = Vec::new();
    for f in words[1..from].join(" ").split(',') {
        let f = f.trim();
        let known = FIELDS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(f))
            .ok_or_else(|| format!("No such column '{f}' on entity '{OBJECT}'"))?;
        fields.push(*known);
    }
    if !words
        .get(from + 1)
        .is_some_and(|o| o.eq_ignore_ascii_case(OBJECT))
    {
        return Err(format!(
            "only {OBJECT} can be queried here, not {}",
            words.get(from + 1).unwrap_or(&"nothing")
        ));
    }
    let mut i = from + 2;
    let mut filter = None;
    if kw(i, "WHERE") {
        // `Id='x'`, `Id = 'x'` and `Id ='x'` are all one condition.
        let end = (i + 1..words.len())
            .find(|&j| kw(j, "LIMIT"))
            .unwrap_or(words.len());
        let cond = words[i + 1..end].join(" ");
        let (field, value) = cond
            .split_once('=')
            .ok_or("the WHERE clause needs field = 'value'")?;
        let value = value
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or("the value in WHERE must be quoted with '")?;
        if value.contains('\'') {
            return Err("the value in WHERE may not contain a quote".into());
        }
        filter = Some(match field.trim() {
            f if f.eq_ignore_ascii_case("Id") => ManagedRef::Id(value.to_owned()),
            f if f.eq_ignore_ascii_case("DeveloperName") => ManagedRef::Name(value.to_owned()),
            f => {
                return Err(format!(
                    "filtering by {f} is not supported; use Id or DeveloperName"
                ));
            }
        });
        i = end;
    }
    let mut limit = None;
    if kw(i, "LIMIT") {
        limit = Some(
            words
                .get(i + 1)
                .and_then(|n| n.parse().ok())
                .ok_or("LIMIT needs a number")?,
        );
        i += 2;
    }
    if i != words.len() {
        return Err(format!("unexpected `{}`", words[i..].join(" ")));
    }
    Ok(Soql {
        fields,
        filter,
        limit,
    })
}

/// A Salesforce REST error: a list with one message and code.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!([{ "message": message, "errorCode": code }])),
    )
        .into_response()
}

fn record(ns: &Namespace, version: &str, v: &ManagedView, fields: &[&str]) -> Value {
    let r = &v.record;
    let mut obj = serde_json::Map::new();
    obj.insert(
        "attributes".into(),
        json!({
            "type": OBJECT,
            "url": format!("/services/data/{version}/tooling/sobjects/{OBJECT}/{}", r.id),
        }),
    );
    for f in fields {
        let value = match *f {
            "Id" => json!(r.id),
            "DeveloperName" => json!(r.developer_name),
            "MasterLabel" => json!(r.developer_name),
            _ => json!({
                "label": r.developer_name,
                "topicName": ns.outward(&r.topic).unwrap_or(&r.topic),
                "defaultReplay": r.default_replay.to_string(),
                "errorRecoveryReplay": r.error_recovery_replay.to_string(),
                "state": r.state.to_string(),
            }),
        };
        obj.insert((*f).to_owned(), value);
    }
    Value::Object(obj)
}

#[derive(serde::Deserialize)]
struct QueryParams {
    q: Option<String>,
}

async fn query(
    State(shared): State<Shared>,
    axum::extract::Path(version): axum::extract::Path<String>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    let bearer = super::login::bearer(&headers);
    let caller = match shared.auth.authenticate_bearer(bearer) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "tooling query not authenticated");
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            );
        }
    };
    let Some(q) = params.q else {
        return error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "The q parameter with a SOQL query is missing.",
        );
    };
    if super::channels::is_channel_query(&q)
        && let Some(channels) = &shared.channels
    {
        return super::channels::query(channels, &caller, &version, &q).await;
    }
    let soql = match parse(&q) {
        Ok(s) => s,
        Err(why) => return error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &why),
    };
    let ns = Namespace::of(&caller.tenant);
    let mut found = match &soql.filter {
        None => shared.broker.list_managed(&caller.tenant),
        // A malformed or unknown id matches no record, as in SOQL.
        Some(r) => shared
            .broker
            .describe_managed(&caller.tenant, r)
            .into_iter()
            .collect(),
    };
    // Only what the caller may read: the subscribe grant on the topic.
    found.retain(|v| {
        ns.outward(&v.record.topic)
            .is_some_and(|t| caller.grants.can_subscribe(t))
    });
    let total = found.len();
    if let Some(n) = soql.limit {
        found.truncate(n);
    }
    let records: Vec<Value> = found
        .iter()
        .map(|v| record(&ns, &version, v, &soql.fields))
        .collect();
    axum::Json(json!({
        "size": records.len(),
        "totalSize": total,
        "done": true,
        "queryLocator": null,
        "entityTypeName": OBJECT,
        "records": records,
    }))
    .into_response()
}

/// The Tooling API query routes, for the HTTP listener's router
/// ([`super::http::router`]).
pub fn router(
    broker: Arc<Broker>,
    auth: Arc<Authenticator>,
    channels: Option<Arc<crate::channels::Channels>>,
) -> axum::Router {
    use axum::routing::get;
    let mut r = axum::Router::new()
        .route("/services/data/{version}/tooling/query", get(query))
        .route("/services/data/{version}/tooling/query/", get(query))
        .with_state(Shared {
            broker,
            auth: auth.clone(),
            channels: channels.clone(),
        });
    if let Some(c) = channels {
        r = r.merge(super::channels::router(c, auth));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_queries_clients_send() {
        let q = parse("SELECT Id, DeveloperName, Metadata FROM ManagedEventSubscription WHERE Id='18xAAAAAAAAAAAAAAA' LIMIT 1")
            .expect("parses");
        assert_eq!(q.fields, vec!["Id", "DeveloperName", "Metadata"]);
        assert_eq!(q.filter, Some(ManagedRef::Id("18xAAAAAAAAAAAAAAA".into())));
        assert_eq!(q.limit, Some(1));
        let q = parse("select id from managedeventsubscription where DeveloperName = 'Orders'")
            .expect("parses");
        assert_eq!(q.filter, Some(ManagedRef::Name("Orders".into())));
        assert_eq!(q.limit, None);
        assert!(parse("SELECT Id FROM ManagedEventSubscription").is_ok_and(|q| q.filter.is_none()));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "",
            "DELETE FROM ManagedEventSubscription",
            "SELECT Id FROM Account",
            "SELECT Secret__c FROM ManagedEventSubscription",
            "SELECT Id FROM ManagedEventSubscription WHERE Id=x",
            "SELECT Id FROM ManagedEventSubscription WHERE Topic='x'",
            "SELECT Id FROM ManagedEventSubscription LIMIT many",
            "SELECT Id FROM ManagedEventSubscription ORDER BY Id",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
