//! OAuth 2.0 as a Salesforce org answers it: `/services/oauth2/token`
//! (password, client_credentials, JWT bearer and refresh_token grants),
//! `/services/oauth2/userinfo`, the identity URL `/id/{orgId}/{userId}` and
//! `/services/oauth2/revoke`.
//!
//! Owns: the form parameters of each grant, Salesforce's token JSON
//! (`access_token`, `instance_url`, `id`, `token_type`, `issued_at`,
//! `signature`) and its error JSON (`{"error", "error_description"}`), the
//! identity JSON. Must not: check secrets or keep sessions itself (the org
//! directory and sessions in `auth::org` do).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::login::{Login, bearer, read_body};
use crate::auth::org::{Issued, LoginError, OrgUser, Session};

/// The JWT bearer grant's `grant_type`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An OAuth error answer: HTTP 400 and `{"error", "error_description"}`.
#[derive(Debug)]
struct OAuthError {
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}

fn bad_request(error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        error,
        description: description.to_owned(),
    }
}

fn login_error(e: &LoginError) -> OAuthError {
    match e {
        LoginError::BadCredentials => bad_request("invalid_grant", "authentication failure"),
        LoginError::UnknownClient => bad_request("invalid_client_id", "client identifier invalid"),
        LoginError::BadClientSecret => bad_request("invalid_client", "invalid client credentials"),
        LoginError::NotSetUp(why) => bad_request("invalid_grant", why),
    }
}

/// The form parameters of a request: the body's, then the query string's
/// for names the body lacks.
async fn params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: axum::body::Body,
) -> Result<HashMap<String, String>, OAuthError> {
    let body = read_body(body)
        .await
        .map_err(|why| bad_request("invalid_request", &why))?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form && !body.is_empty() {
        return Err(bad_request(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut out: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned() {
        out.entry(k).or_insert(v);
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// The client id and secret of HTTP Basic client authentication.
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The identity URL of a user: `{base}/id/{orgId}/{userId}`.
fn identity_url(base: &str, user: &OrgUser) -> String {
    format!("{base}/id/{}/{}", user.org.as_str(), user.user_id)
}

/// The token JSON of a login.
fn token_answer(
    login: &Login,
    headers: &HeaderMap,
    issued: &Issued,
    signing_key: &str,
    scope: Option<&str>,
) -> Response {
    let base = login.base_url(headers);
    let id = identity_url(&base, &issued.session.user);
    let issued_at = issued.session.issued_at_millis().to_string();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signing_key.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(
        &key,
        format!("{id}{issued_at}").as_bytes(),
    ));
    let mut out = serde_json::Map::new();
    out.insert("access_token".into(), json!(issued.access_token));
    if let Some(r) = &issued.refresh_token {
        out.insert("refresh_token".into(), json!(r));
    }
    out.insert("signature".into(), json!(signature));
    if let Some(scope) = scope {
        out.insert("scope".into(), json!(scope));
    }
    out.insert("instance_url".into(), json!(base));
    out.insert("id".into(), json!(id));
    out.insert("token_type".into(), json!("Bearer"));
    out.insert("issued_at".into(), json!(issued_at));
    (
        [(header::CACHE_CONTROL, "no-cache, no-store")],
        axum::Json(Value::Object(out)),
    )
        .into_response()
}

fn required<'a>(p: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    p.get(name)
        .map(String::as_str)
        .ok_or_else(|| bad_request("invalid_request", &format!("{name} is missing")))
}

/// Whether the request asks for a refresh token (scope `refresh_token` or
/// `offline_access`).
fn wants_refresh(p: &HashMap<String, String>) -> bool {
    p.get("scope").is_some_and(|s| {
        s.split([' ', ','])
            .any(|w| w == "refresh_token" || w == "offline_access")
    })
}

async fn token(
    State(login): State<Login>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    let p = match params(&headers, uri.query(), body).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(grant) = p.get("grant_type") else {
        return bad_request("invalid_request", "grant type is missing").into_response();
    };
    let result = match grant.as_str() {
        "password" => password_grant(&login, &p),
        "client_credentials" => client_credentials_grant(&login, &headers, &p),
        JWT_BEARER => jwt_bearer_grant(&login, &headers, &p),
        "refresh_token" => refresh_grant(&login, &p),
        _ => Err(bad_request(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    match result {
        Ok((issued, key, scope)) => {
            tracing::info!(
                user = %issued.session.user.username,
                org = %issued.session.user.org.as_str(),
                grant = %grant,
                "oauth login"
            );
            token_answer(&login, &headers, &issued, &key, scope)
        }
        Err(e) => e.into_response(),
    }
}

/// A grant's outcome: the session, the key of its `signature`, its scope.
type Granted = Result<(Issued, String, Option<&'static str>), OAuthError>;

fn password_grant(login: &Login, p: &HashMap<String, String>) -> Granted {
    let username = required(p, "username")?;
    let password = required(p, "password")?;
    let client_id = p.get("client_id").map(String::as_str);
    let secret = p.get("client_secret").map(String::as_str);
    match client_id {
        Some(id) => {
            login
                .directory
                .client(id, secret)
                .map_err(|e| login_error(&e))?;
        }
        None if login.directory.is_open() => {}
        None => {
            return Err(bad_request(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
    }
    let user = login
        .directory
        .password_login(username, password)
        .map_err(|e| login_error(&e))?;
    let issued = login.sessions.issue(user, client_id, wants_refresh(p));
    Ok((issued, secret.unwrap_or_default().to_owned(), None))
}

fn client_credentials_grant(
    login: &Login,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Granted {
    let (id, secret) = match basic_client(headers) {
        Some(pair) => pair,
        None => (
            required(p, "client_id")?.to_owned(),
            required(p, "client_secret")?.to_owned(),
        ),
    };
    let user = login
        .directory
        .client_credentials_login(&id, &secret)
        .map_err(|e| login_error(&e))?;
    let issued = login.sessions.issue(user, Some(&id), false);
    Ok((issued, secret, Some("api")))
}

/// The claims of a JWT bearer assertion.
#[derive(serde::Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
}

/// The claims of a JWT before its signature is checked (to find the key).
fn unverified_claims(jwt: &str) -> Option<Assertion> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn jwt_bearer_grant(login: &Login, headers: &HeaderMap, p: &HashMap<String, String>) -> Granted {
    let assertion = required(p, "assertion")?;
    let invalid = |why: &str| {
        tracing::info!(reason = why, "jwt bearer assertion refused");
        bad_request("invalid_grant", why)
    };
    // The issuer names the app whose key must have signed it.
    let unverified = unverified_claims(assertion).ok_or_else(|| invalid("invalid assertion"))?;
    let app = login.directory.app(&unverified.iss);
    let key = match app.and_then(|a| a.jwt_key.clone()) {
        Some(key) => key,
        None if app.is_none() && !login.directory.is_open() => {
            return Err(bad_request(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        None if login.directory.is_open() => {
            // Mode none: the assertion's claims are taken as they are.
            let user = login
                .directory
                .named_user(&unverified.sub)
                .map_err(|e| login_error(&e))?;
            let issued = login.sessions.issue(user, Some(&unverified.iss), false);
            return Ok((issued, String::new(), Some("api")));
        }
        None => {
            return Err(invalid(
                "the app has no certificate for the JWT bearer flow",
            ));
        }
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    let mut audiences = vec![
        login.base_url(headers),
        "https://login.salesforce.com".to_owned(),
        "https://test.salesforce.com".to_owned(),
    ];
    audiences.push(format!("{}/", audiences[0]));
    validation.set_audience(&audiences);
    // simple-salesforce sends `exp` as a string: the library reads numbers
    // only, so the time is checked below from the raw claims.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|e| invalid(&format!("invalid assertion: {e}")))?;
    let exp = match &data.claims["exp"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid("expired authorization code"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if exp.saturating_add(crate::auth::JWT_CLOCK_SKEW.as_secs()) < now {
        return Err(invalid("expired authorization code"));
    }
    let user = login
        .directory
        .named_user(&unverified.sub)
        .map_err(|_| invalid("user hasn't approved this consumer"))?;
    let issued = login.sessions.issue(user, Some(&unverified.iss), false);
    Ok((issued, String::new(), Some("api")))
}

fn refresh_grant(login: &Login, p: &HashMap<String, String>) -> Granted {
    let refresh = required(p, "refresh_token")?;
    let client_id = required(p, "client_id")?;
    let secret = p.get("client_secret").map(String::as_str);
    if secret.is_some() || !login.directory.is_open() {
        login
            .directory
            .client(client_id, secret)
            .map_err(|e| login_error(&e))?;
    }
    let user = login
        .sessions
        .refresh(refresh, client_id)
        .ok_or_else(|| bad_request("invalid_grant", "expired access/refresh token"))?;
    let issued = login.sessions.issue(user, Some(client_id), false);
    Ok((issued, secret.unwrap_or_default().to_owned(), Some("api")))
}

/// The session of the request's bearer token.
fn session_of(login: &Login, headers: &HeaderMap) -> Option<Session> {
    bearer(headers).and_then(|t| login.sessions.session(t))
}

/// The 401 Salesforce answers for a bad bearer token.
fn bad_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Bad_OAuth_Token",
    )
        .into_response()
}

/// The `urls` of the identity answers (`{version}` is literal, as in
/// Salesforce's).
fn urls(base: &str, user: &OrgUser) -> Value {
    let org = user.org.as_str();
    json!({
        "enterprise": format!("{base}/services/Soap/c/{{version}}/{org}"),
        "metadata": format!("{base}/services/Soap/m/{{version}}/{org}"),
        "partner": format!("{base}/services/Soap/u/{{version}}/{org}"),
        "rest": format!("{base}/services/data/v{{version}}/"),
        "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
        "search": format!("{base}/services/data/v{{version}}/search/"),
        "query": format!("{base}/services/data/v{{version}}/query/"),
        "tooling_rest": format!("{base}/services/data/v{{version}}/tooling/"),
        "profile": format!("{base}/{}", user.user_id),
    })
}

fn given_and_family(user: &OrgUser) -> (String, String) {
    match user.display_name.rsplit_once(' ') {
        Some((given, family)) => (given.to_owned(), family.to_owned()),
        None => (String::new(), user.display_name.clone()),
    }
}

async fn userinfo(State(login): State<Login>, headers: HeaderMap) -> Response {
    let Some(session) = session_of(&login, &headers) else {
        return bad_token();
    };
    let user = &session.user;
    let base = login.base_url(&headers);
    let (given, family) = given_and_family(user);
    axum::Json(json!({
        "sub": identity_url(&base, user),
        "user_id": user.user_id,
        "organization_id": user.org.as_str(),
        "preferred_username": user.username,
        "nickname": user.username.split('@').next().unwrap_or_default(),
        "name": user.display_name,
        "email": user.email,
        "email_verified": true,
        "given_name": given,
        "family_name": family,
        "zoneinfo": "America/Los_Angeles",
        "profile": format!("{base}/{}", user.user_id),
        "urls": urls(&base, user),
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": -28_800_000,
        "is_app_installed": true,
    }))
    .into_response()
}

async fn identity(
    State(login): State<Login>,
    Path((org, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = session_of(&login, &headers) else {
        return bad_token();
    };
    let user = &session.user;
    let same = |a: &str, b: &str| a.len() >= 15 && b.get(..15) == a.get(..15);
    if !same(&org, user.org.as_str()) || !same(&user_id, &user.user_id) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Bad_Id",
        )
            .into_response();
    }
    let base = login.base_url(&headers);
    let (given, family) = given_and_family(user);
    axum::Json(json!({
        "id": identity_url(&base, user),
        "asserted_user": true,
        "user_id": user.user_id,
        "organization_id": user.org.as_str(),
        "username": user.username,
        "nick_name": user.username.split('@').next().unwrap_or_default(),
        "display_name": user.display_name,
        "email": user.email,
        "email_verified": true,
        "first_name": given,
        "last_name": family,
        "timezone": "America/Los_Angeles",
        "urls": urls(&base, user),
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": -28_800_000,
        "is_app_installed": true,
    }))
    .into_response()
}

async fn revoke(
    State(login): State<Login>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    let p = match params(&headers, uri.query(), body).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(token) = p.get("token") else {
        return bad_request("invalid_request", "token is missing").into_response();
    };
    if login.sessions.revoke(token) {
        StatusCode::OK.into_response()
    } else {
        bad_request("invalid_token", "invalid token").into_response()
    }
}

/// The OAuth routes, with and without a trailing slash.
pub fn router(login: Login) -> axum::Router {
    use axum::routing::{get, post};
    let mut r = axum::Router::new();
    for (path, route) in [
        ("/services/oauth2/token", post(token)),
        ("/services/oauth2/userinfo", get(userinfo).post(userinfo)),
        ("/services/oauth2/revoke", post(revoke).get(revoke)),
        ("/id/{org}/{user}", get(identity).post(identity)),
    ] {
        r = r
            .route(&format!("{path}/"), route.clone())
            .route(path, route);
    }
    r.with_state(login)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_client_authentication_is_read() {
        let mut h = HeaderMap::new();
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("app:s3:cret")
        );
        h.insert(header::AUTHORIZATION, value.parse().expect("header"));
        assert_eq!(basic_client(&h), Some(("app".into(), "s3:cret".into())));
        h.insert(header::AUTHORIZATION, "Basic !!".parse().expect("header"));
        assert_eq!(basic_client(&h), None);
    }

    #[test]
    fn a_refresh_token_is_issued_only_when_asked_for() {
        let p = |s: &str| HashMap::from([("scope".to_owned(), s.to_owned())]);
        assert!(wants_refresh(&p("api refresh_token")));
        assert!(wants_refresh(&p("offline_access")));
        assert!(!wants_refresh(&p("api")));
        assert!(!wants_refresh(&HashMap::new()));
    }
}
