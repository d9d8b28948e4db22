//! SOAP `login` of the Partner API at `/services/Soap/u/{version}`, as a
//! Salesforce org answers it.
//!
//! Owns: reading the login envelope (any prefix or default namespace,
//! CDATA, an optional header), the `LoginResult` with its `userInfo` in the
//! WSDL's element order, and the SOAP faults (`INVALID_LOGIN`, malformed
//! requests). Must not: check passwords or keep sessions (auth::org does).
//!
//! Clients read the answer by position (the official Python example takes
//! `serverUrl`, `sessionId` and `userInfo` as children 3, 4 and 6 of
//! `result`, `organizationId` as child 8 of `userInfo`) or by unprefixed
//! element name (jsforce): so no SOAP Header, no prefixes on the result.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::login::{Login, read_body};

/// The Partner API's namespace.
const PARTNER_NS: &str = "urn:partner.soap.sforce.com";
/// The SOAP 1.1 envelope namespace.
const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Salesforce's message for bad credentials.
const INVALID_LOGIN: &str = "Invalid username, password, security token; or user locked out.";

/// Escapes text for an XML element.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A SOAP fault: HTTP 500, `faultcode`, `faultstring` and, for Salesforce
/// faults, `detail` with the `sf:` exception code and message.
fn fault(code: &str, message: &str, detail: Option<&str>) -> Response {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ENVELOPE_NS}\" xmlns:sf=\"urn:fault.partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring>",
        esc(code),
        esc(message)
    );
    if let Some(kind) = detail {
        let exception = code.strip_prefix("sf:").unwrap_or(code);
        let plain = message
            .strip_prefix(&format!("{exception}: "))
            .unwrap_or(message);
        let _ = write!(
            body,
            "<detail><sf:{kind} xsi:type=\"sf:{kind}\"><sf:exceptionCode>{}</sf:exceptionCode><sf:exceptionMessage>{}</sf:exceptionMessage></sf:{kind}></detail>",
            esc(exception),
            esc(plain)
        );
    }
    body.push_str("</soapenv:Fault></soapenv:Body></soapenv:Envelope>");
    xml(StatusCode::INTERNAL_SERVER_ERROR, body)
}

fn client_fault(message: &str) -> Response {
    fault("soapenv:Client", message, None)
}

/// The username and password of a `login` envelope.
///
/// # Errors
/// The client fault's message for anything that is not a login call.
fn parse_login(text: &str) -> Result<(String, String), String> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| format!("the request is not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" || root.tag_name().namespace() != Some(ENVELOPE_NS) {
        return Err(format!(
            "the request is not a SOAP 1.1 Envelope ({{{ENVELOPE_NS}}}Envelope)"
        ));
    }
    let body = root
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "Body")
        .ok_or("the Envelope has no Body")?;
    let call = body
        .children()
        .find(|n| n.is_element())
        .ok_or("the Body names no operation")?;
    let name = call.tag_name();
    if name.name() != "login" || name.namespace() != Some(PARTNER_NS) {
        return Err(format!(
            "No operation available for request {{{}}}{}: only login is served here",
            name.namespace().unwrap_or(""),
            name.name()
        ));
    }
    let field = |want: &str| {
        call.children()
            .find(|n| n.is_element() && n.tag_name().name() == want)
            .map(|n| {
                n.children()
                    .filter(|c| c.is_text())
                    .filter_map(|c| c.text())
                    .collect::<String>()
            })
    };
    let username = field("username").ok_or("login has no username element")?;
    let password = field("password").ok_or("login has no password element")?;
    Ok((username, password))
}

/// A version of the API as in `/services/Soap/u/62.0`.
fn valid_version(v: &str) -> bool {
    v.split_once('.').is_some_and(|(major, minor)| {
        (1..=3).contains(&major.len()) && major.bytes().all(|b| b.is_ascii_digit()) && minor == "0"
    })
}

async fn login(
    State(login): State<Login>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if !valid_version(&version) {
        return fault(
            "sf:UNSUPPORTED_API_VERSION",
            &format!("UNSUPPORTED_API_VERSION: Invalid Api version specified on URL: {version}"),
            Some("UnexpectedErrorFault"),
        );
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(why) => return client_fault(&why),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return client_fault("the request is not UTF-8");
    };
    let (username, password) = match parse_login(text) {
        Ok(pair) => pair,
        Err(why) => return client_fault(&why),
    };
    let user = match login.directory.password_login(&username, &password) {
        Ok(u) => u,
        Err(_) => {
            tracing::info!(username = %crate::types::Echo(&username), "soap login refused");
            return fault(
                "sf:INVALID_LOGIN",
                &format!("INVALID_LOGIN: {INVALID_LOGIN}"),
                Some("LoginFault"),
            );
        }
    };
    let issued = login.sessions.issue(user, None, false);
    let session = &issued.session;
    let user = &session.user;
    tracing::info!(user = %user.username, org = %user.org.as_str(), "soap login");
    let base = login.base_url(&headers);
    let org = user.org.as_str();
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{ENVELOPE_NS}\" xmlns=\"{PARTNER_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><loginResponse><result>"
    );
    let mut el = |name: &str, value: &str| {
        let _ = write!(out, "<{name}>{}</{name}>", esc(value));
    };
    el(
        "metadataServerUrl",
        &format!("{base}/services/Soap/m/{version}/{org}"),
    );
    el("passwordExpired", "false");
    el("sandbox", "false");
    el(
        "serverUrl",
        &format!("{base}/services/Soap/u/{version}/{org}"),
    );
    el("sessionId", &issued.access_token);
    el("userId", &user.user_id);
    out.push_str("<userInfo>");
    let seconds = session.seconds_valid().to_string();
    // GetUserInfoResult in the WSDL's order; no defaultAppIdForProfile,
    // so organizationId stays the ninth element (see the module docs).
    for (name, value) in [
        ("accessibilityMode", "false"),
        ("chatterExternal", "false"),
        ("currencySymbol", "$"),
        ("orgAttachmentFileSizeLimit", "5242880"),
        ("orgDefaultCurrencyIsoCode", "USD"),
        ("orgDefaultCurrencyLocale", "en_US"),
        ("orgDisallowHtmlAttachments", "false"),
        ("orgHasPersonAccounts", "false"),
        ("organizationId", org),
        ("organizationMultiCurrency", "false"),
        ("organizationName", "eventbus"),
        ("profileId", "00e000000000000AAA"),
    ] {
        let _ = write!(out, "<{name}>{}</{name}>", esc(value));
    }
    out.push_str("<roleId xsi:nil=\"true\"/>");
    for (name, value) in [
        ("sessionSecondsValid", seconds.as_str()),
        ("userDefaultCurrencyIsoCode", ""),
        ("userEmail", &user.email),
        ("userFullName", &user.display_name),
        ("userId", &user.user_id),
        ("userLanguage", "en_US"),
        ("userLocale", "en_US"),
        ("userName", &user.username),
        ("userTimeZone", "America/Los_Angeles"),
        ("userType", "Standard"),
        ("userUiSkin", "Theme3"),
    ] {
        if value.is_empty() {
            let _ = write!(out, "<{name} xsi:nil=\"true\"/>");
        } else {
            let _ = write!(out, "<{name}>{}</{name}>", esc(value));
        }
    }
    out.push_str("</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>");
    xml(StatusCode::OK, out)
}

/// The SOAP login route, with and without a trailing slash.
pub fn router(login_ctx: Login) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route("/services/Soap/u/{version}", post(login))
        .route("/services/Soap/u/{version}/", post(login))
        .with_state(login_ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_envelopes_of_every_client_shape_are_read() {
        let prefixed = "<?xml version=\"1.0\"?><se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\"><se:Header><urn:CallOptions xmlns:urn=\"urn:partner.soap.sforce.com\"><urn:client>x</urn:client></urn:CallOptions></se:Header><se:Body><n1:login xmlns:n1=\"urn:partner.soap.sforce.com\"><n1:username>a@b.c</n1:username><n1:password><![CDATA[p&w<d]]></n1:password></n1:login></se:Body></se:Envelope>";
        assert_eq!(parse_login(prefixed), Ok(("a@b.c".into(), "p&w<d".into())));
        let default_ns = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><login xmlns=\"urn:partner.soap.sforce.com\"><username>u</username><password>a&amp;b</password></login></soapenv:Body></soapenv:Envelope>";
        assert_eq!(parse_login(default_ns), Ok(("u".into(), "a&b".into())));
    }

    #[test]
    fn other_documents_are_refused_with_a_reason() {
        for (text, want) in [
            ("<not xml", "not well-formed"),
            ("<Envelope/>", "not a SOAP 1.1 Envelope"),
            (
                "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><logout xmlns=\"urn:partner.soap.sforce.com\"/></s:Body></s:Envelope>",
                "No operation available for request {urn:partner.soap.sforce.com}logout",
            ),
            (
                "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><login xmlns=\"urn:partner.soap.sforce.com\"><username>u</username></login></s:Body></s:Envelope>",
                "no password",
            ),
        ] {
            let err = parse_login(text).expect_err(text);
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn api_versions_look_like_salesforces() {
        assert!(valid_version("62.0") && valid_version("8.0"));
        assert!(!valid_version("62") && !valid_version("v62.0") && !valid_version("62.1"));
    }
}
