//! Who is looking at the console: the login form, the session cookie, the
//! logout action and the CSRF check every action shares.
//!
//! Owns: the cookie (`eventbus_console=<session>`, `HttpOnly`,
//! `SameSite=Strict`, `Path=/console`, `Secure` under TLS) and reading it
//! back, and the login form's own cookie (`eventbus_console_login`, the
//! random value its CSRF token is derived from). The password check and the session are the org directory's and
//! sessions' (`auth::org`), the same ones the OAuth password grant uses;
//! the cookie's session is authenticated through the `Authenticator` like
//! a bearer token. With `--auth none` the console is open: every request
//! is the open caller. Must not: render pages other than the login form.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Console, State, page, render_failed};
use crate::auth::{AuthMode, Caller};

/// The session cookie's name.
pub const COOKIE: &str = "eventbus_console";

/// What the CSRF token is derived from where there is no session
/// (`--auth none`).
const OPEN: &str = "eventbus-console-open";

/// The caller of a console request.
pub(super) struct Viewer {
    /// Tenant, principal and grants.
    pub(super) caller: Caller,
    /// The session's access token; `None` with `--auth none`.
    pub(super) session: Option<String>,
}

impl Viewer {
    /// The CSRF token of the forms rendered for this viewer.
    pub(super) fn csrf(&self, console: &Console) -> String {
        console.csrf.token(self.session.as_deref().unwrap_or(OPEN))
    }

    /// Whether `form` carries this viewer's CSRF token (field `csrf`).
    pub(super) fn csrf_ok(&self, console: &Console, form: &HashMap<String, String>) -> bool {
        form.get("csrf").is_some_and(|t| {
            console
                .csrf
                .verify(self.session.as_deref().unwrap_or(OPEN), t)
        })
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The viewer of a request: the open caller with `--auth none`, else the
/// caller of the cookie's session; `None` without a live session.
pub(super) fn viewer(console: &Console, headers: &HeaderMap) -> Option<Viewer> {
    let auth = &console.ctx.auth;
    if auth.mode() == AuthMode::None {
        let caller = auth.authenticate_bearer(None).ok()?;
        return Some(Viewer {
            caller,
            session: None,
        });
    }
    let token = cookie(headers, COOKIE)?;
    let caller = auth.authenticate_bearer(Some(token)).ok()?;
    Some(Viewer {
        caller,
        session: Some(token.to_owned()),
    })
}

/// The fields of a form body (`application/x-www-form-urlencoded`).
///
/// # Errors
/// 413/400 for a body too large or broken off.
pub(super) async fn form(body: axum::body::Body) -> Result<HashMap<String, String>, Response> {
    let bytes = crate::api::login::read_body(body)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The viewer and fields of a posted form (an action): the login page
/// without a session, and `403` without the viewer's CSRF token.
///
/// # Errors
/// The answer to send instead.
pub(super) async fn action_form(
    console: &Console,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Viewer, HashMap<String, String>), Response> {
    let Some(v) = viewer(console, headers) else {
        return Err(Redirect::to("/console/login").into_response());
    };
    let fields = form(body).await?;
    if !v.csrf_ok(console, &fields) {
        return Err(forbidden());
    }
    Ok((v, fields))
}

/// The answer to an action whose CSRF token is missing or wrong.
pub(super) fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "the form's CSRF token is missing or wrong: reload the page and try again",
    )
        .into_response()
}

/// The login form's cookie: a random value drawn when the form is shown,
/// whose HMAC is the form's CSRF token (there is no session yet to derive
/// one from), so another site cannot post a login of its own choosing.
pub const LOGIN_COOKIE: &str = "eventbus_console_login";

/// How long a login form stays usable.
const LOGIN_FORM_SECS: u64 = 3600;

/// What the login form's CSRF token is derived from.
fn login_subject(nonce: &str) -> String {
    format!("login:{nonce}")
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    version: &'a str,
    username: &'a str,
    csrf: String,
    error: Option<&'a str>,
}

/// The login form, with the request's login cookie kept (or a new one
/// set) and its CSRF token.
fn login_page(
    c: &Console,
    headers: &HeaderMap,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    use askama::Template as _;
    let nonce = cookie(headers, LOGIN_COOKIE)
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let p = LoginPage {
        version: env!("CARGO_PKG_VERSION"),
        username,
        csrf: c.csrf.token(&login_subject(&nonce)),
        error,
    };
    let mut r = match p.render() {
        Ok(html) => page(status, html),
        Err(e) => return render_failed(&e),
    };
    let set = cookie_line(
        LOGIN_COOKIE,
        &nonce,
        "/console/login",
        LOGIN_FORM_SECS,
        c.ctx.login.tls,
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /console/login`: the form (straight to the overview when open or
/// already logged in).
pub(super) async fn login_form(axum::extract::State(c): State, headers: HeaderMap) -> Response {
    if viewer(&c, &headers).is_some() {
        return Redirect::to("/console").into_response();
    }
    login_page(&c, &headers, StatusCode::OK, "", None)
}

/// `POST /console/login`: checks the form's CSRF token against the login
/// cookie, then the username and password against the org users file
/// (the OAuth password grant's check), issues a session and sets the
/// session cookie.
pub(super) async fn login(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if c.ctx.auth.mode() == AuthMode::None {
        return Redirect::to("/console").into_response();
    }
    let fields = match form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let csrf_ok = match (cookie(&headers, LOGIN_COOKIE), fields.get("csrf")) {
        (Some(nonce), Some(token)) => c.csrf.verify(&login_subject(nonce), token),
        _ => false,
    };
    if !csrf_ok {
        return forbidden();
    }
    let username = fields.get("username").map_or("", |u| u.trim());
    let password = fields.get("password").map_or("", String::as_str);
    let login = &c.ctx.login;
    let user = match login.directory.password_login(username, password) {
        Ok(user) => user,
        Err(e) => {
            tracing::info!(user = %username, error = %e, "console login refused");
            return login_page(
                &c,
                &headers,
                StatusCode::UNAUTHORIZED,
                username,
                Some("Wrong username or password."),
            );
        }
    };
    let issued = login.sessions.issue(user, None, false);
    tracing::info!(user = %issued.session.user.username, org = %issued.session.user.org.as_str(), "console login");
    let cookie = session_cookie(
        &issued.access_token,
        login.sessions.lifetime().as_secs(),
        login.tls,
    );
    let mut r = Redirect::to("/console").into_response();
    let spent = cookie_line(LOGIN_COOKIE, "", "/console/login", 0, login.tls);
    match (
        HeaderValue::from_str(&cookie),
        HeaderValue::from_str(&spent),
    ) {
        (Ok(v), Ok(spent)) => {
            r.headers_mut().append(header::SET_COOKIE, v);
            r.headers_mut().append(header::SET_COOKIE, spent);
            r
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "bad session token").into_response(),
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` under
/// TLS (`max_age` 0 clears it).
fn cookie_line(name: &str, value: &str, path: &str, max_age: u64, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value of a session (`max_age` 0 clears it).
pub(super) fn session_cookie(token: &str, max_age: u64, tls: bool) -> String {
    cookie_line(COOKIE, token, "/console", max_age, tls)
}

/// `POST /console/logout`: ends the session (CSRF-checked) and clears the
/// cookie.
pub(super) async fn logout(
    axum::extract::State(c): State,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(v) = viewer(&c, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let fields = match form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !v.csrf_ok(&c, &fields) {
        return forbidden();
    }
    let Some(token) = v.session else {
        // Open console: nothing to end.
        return Redirect::to("/console").into_response();
    };
    c.ctx.login.sessions.revoke(&token);
    let mut r = Redirect::to("/console/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie("", 0, c.ctx.login.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; eventbus_console=tok!en; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("tok!en"));
        assert_eq!(cookie(&h, "c"), None);
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("eventbus_console="),
        );
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn the_session_cookie_has_its_attributes() {
        let c = session_cookie("t", 60, false);
        assert_eq!(
            c,
            "eventbus_console=t; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(session_cookie("t", 60, true).ends_with("; Secure"));
    }
}
