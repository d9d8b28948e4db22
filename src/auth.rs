//! Who is calling: access-token checks, tenants and grants.
//!
//! Owns: the three authentication modes (`none`, `static`, `jwt`), the
//! tokens file, JWT verification (HS256 with a secret, RS256/ES256 with a
//! JWKS file), the `tenantid` header forms and the grant grammar. Must not:
//! name tonic types or know topics beyond their names; the protocol layer
//! reads the headers and maps [`AuthError`] to a status.
//!
//! Grants are strings: `publish:<pattern>`, `subscribe:<pattern>` and
//! `admin`, where a pattern is an exact topic name (`/event/Order__e`), a
//! prefix ending in `*` (`/event/*`), or `*` for every topic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::types::{Echo, TenantId};

pub mod org;

/// The tenant of every call in mode `none`, and of the topics folder.
pub const DEFAULT_TENANT: &str = crate::types::DEFAULT_TENANT_GUID;

/// How calls are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// Development: every call is the default tenant with every grant;
    /// headers are optional.
    #[default]
    None,
    /// A tokens file maps SHA-256 hashes of access tokens to a tenant, a
    /// principal and grants.
    Static,
    /// Signed JWTs: issuer, audience and the time claims checked (see
    /// [`check_token_times`]); claims name the tenant (`tenant`), the
    /// principal (`sub`) and the grants (`grants`).
    Jwt,
}

/// How far a JWT's `nbf` and `iat` may lie ahead of this server's clock, and
/// how long after its `exp` a token still passes: the issuer's clock and
/// ours may differ by some seconds. One minute, as jsonwebtoken's own
/// default and most JWT libraries allow.
pub const JWT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Default of the longest lifetime a JWT may claim
/// (`EVENTBUS_JWT_MAX_LIFETIME`): a day, so a leaked token is useless by
/// tomorrow whatever `exp` its issuer wrote.
pub const DEFAULT_JWT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A required header is missing or blank.
    #[error("the `{0}` header is missing or blank; send accesstoken, instanceurl and tenantid")]
    MissingHeader(&'static str),
    /// The token is unknown, expired, or its signature or claims are wrong.
    #[error("the access token was not accepted: {0}")]
    BadToken(String),
    /// A header is malformed, or `tenantid` names another tenant than the
    /// token's.
    #[error("{0}")]
    BadHeader(String),
}

impl AuthError {
    /// Whether the error is about headers (`service.auth.headers.invalid`)
    /// rather than credentials (`service.auth.error`).
    pub fn is_header_problem(&self) -> bool {
        matches!(self, AuthError::BadHeader(_))
    }
}

/// What a call may do, from a token's grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Publish to topics matching the pattern.
    Publish(Pattern),
    /// Subscribe to topics matching the pattern.
    Subscribe(Pattern),
    /// Use the Admin service (topics, schemas) of the tenant.
    Admin,
}

/// A topic-name pattern: exact, or a prefix when it ends in `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => topic == self.0,
        }
    }
}

impl Grant {
    /// Parses `publish:<pattern>`, `subscribe:<pattern>` or `admin`.
    ///
    /// # Errors
    /// A message naming the grant and the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "admin" {
            return Ok(Grant::Admin);
        }
        let bad = || {
            format!(
                "grant `{text}` is not one of publish:<topic pattern>, subscribe:<topic pattern>, admin"
            )
        };
        let (verb, pattern) = text.split_once(':').ok_or_else(bad)?;
        let valid = pattern == "*"
            || (pattern.starts_with('/') && !pattern[..pattern.len() - 1].contains('*'));
        if !valid {
            return Err(format!(
                "grant `{text}`: a pattern is a topic name, a prefix ending in `*` (/event/*), or `*`"
            ));
        }
        let pattern = Pattern(pattern.to_owned());
        match verb {
            "publish" => Ok(Grant::Publish(pattern)),
            "subscribe" => Ok(Grant::Subscribe(pattern)),
            _ => Err(bad()),
        }
    }
}

/// The grants of one caller.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// Every right on every topic (mode `none`).
    pub fn all() -> Self {
        Grants(vec![
            Grant::Publish(Pattern("*".into())),
            Grant::Subscribe(Pattern("*".into())),
            Grant::Admin,
        ])
    }

    /// Parses a list of grant strings.
    ///
    /// # Errors
    /// The first grant that does not parse.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        items
            .iter()
            .map(|g| Grant::parse(g.as_ref()))
            .collect::<Result<_, _>>()
            .map(Grants)
    }

    /// May publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.0
            .iter()
            .any(|g| matches!(g, Grant::Publish(p) if p.matches(topic)))
    }

    /// May subscribe to `topic`.
    pub fn can_subscribe(&self, topic: &str) -> bool {
        self.0
            .iter()
            .any(|g| matches!(g, Grant::Subscribe(p) if p.matches(topic)))
    }

    /// May use the Admin service.
    pub fn is_admin(&self) -> bool {
        self.0.contains(&Grant::Admin)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose topics the call sees: the org id in its canonical
    /// 18-character form, whichever form the token or claim names.
    pub tenant: TenantId,
    /// Who called, for logs.
    pub principal: String,
    /// What the caller may do.
    pub grants: Grants,
    /// The Salesforce user id (`005…`, 18 characters) of a session issued at
    /// login; `None` for static tokens, JWTs and `--auth none` without one.
    pub user_id: Option<String>,
}

/// The authentication headers of one call, as sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    /// `accesstoken`.
    pub access_token: Option<&'a str>,
    /// `instanceurl`.
    pub instance_url: Option<&'a str>,
    /// `tenantid`.
    pub tenant_id: Option<&'a str>,
}

/// Reads the org id out of a `tenantid` header: an org id of 15 or 18
/// letters and digits, or `core/<name>/<orgId>` (spec §4).
///
/// # Errors
/// [`AuthError::BadHeader`] for any other form.
pub fn org_id_of(tenant_id: &str) -> Result<&str, AuthError> {
    let id = match tenant_id.strip_prefix("core/") {
        Some(rest) => match rest.split_once('/') {
            Some((name, id)) if !name.is_empty() => id,
            _ => "",
        },
        None => tenant_id,
    };
    let well_formed =
        (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if well_formed {
        Ok(id)
    } else {
        Err(AuthError::BadHeader(format!(
            "tenantid `{}` is neither an org id (15 or 18 letters and digits) nor core/<name>/<orgId>",
            Echo(tenant_id)
        )))
    }
}

/// Whether two org ids name the same org: an 18-character id is the
/// 15-character one plus a 3-character case checksum.
pub fn same_org(a: &str, b: &str) -> bool {
    let short = |s: &str| s.get(..15).map(str::to_owned).unwrap_or_default();
    !a.is_empty() && short(a) == short(b)
}

/// Hex SHA-256 of an access token, as stored in the tokens file.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Errors loading the authentication settings.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A file could not be read.
    #[error("{what} {path}: cannot read: {source}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A file or setting is invalid.
    #[error("{0}")]
    Invalid(String),
}

fn read(path: &Path, what: &'static str) -> Result<String, AuthConfigError> {
    std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// Shortest HS256 secret accepted, in bytes: a short secret can be
/// brute-forced offline from any token; RFC 7518 §3.2 asks for at least
/// 256 bits.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Reads an HS256 secret file. The key is the file's bytes as they are,
/// with trailing line ends (`\n`, `\r\n`) removed so `echo … > file` and
/// editors that add one work; nothing is decoded: a base64 or hex text is
/// used as its characters, the way the issuer must use it too. Any bytes
/// may appear, and at least [`MIN_HS256_SECRET_BYTES`] must remain.
///
/// # Errors
/// [`AuthConfigError`] for an unreadable file or a short secret.
pub fn read_hs256_secret(path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    let mut secret = std::fs::read(path).map_err(|source| AuthConfigError::Read {
        what: "JWT secret file",
        path: path.display().to_string(),
        source,
    })?;
    while secret.last().is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        secret.pop();
    }
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthConfigError::Invalid(format!(
            "JWT secret file {}: the secret must be at least {MIN_HS256_SECRET_BYTES} bytes (trailing line ends do not count); found {}",
            path.display(),
            secret.len()
        )));
    }
    Ok(secret)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    sha256: String,
    tenant: String,
    principal: String,
    #[serde(default)]
    grants: Vec<String>,
}

/// Settings of the authenticator, from the serve settings.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The mode.
    pub mode: AuthMode,
    /// Tokens file for `static`.
    pub tokens_file: Option<PathBuf>,
    /// File holding the HS256 secret for `jwt`.
    pub jwt_secret_file: Option<PathBuf>,
    /// JWKS file (RS256/ES256 public keys) for `jwt`.
    pub jwt_jwks_file: Option<PathBuf>,
    /// Required `iss`.
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    pub jwt_audience: Option<String>,
    /// Longest lifetime a JWT may claim (see [`check_token_times`]).
    pub jwt_max_lifetime: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            tokens_file: None,
            jwt_secret_file: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_max_lifetime: DEFAULT_JWT_MAX_LIFETIME,
        }
    }
}

struct JwtKey {
    kid: Option<String>,
    key: DecodingKey,
    alg: Algorithm,
}

/// Claims we read from a JWT. The library checks the signature, `iss` and
/// `aud`, and that `exp` is there; [`check_token_times`] checks the times.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(flatten)]
    times: TokenTimes,
}

/// The time claims of a JWT, in seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenTimes {
    /// Expiry (`exp`): required.
    #[serde(default)]
    pub exp: u64,
    /// Not before (`nbf`), when given.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Issued at (`iat`), when given.
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Checks a verified token's time claims against `now` (seconds since the
/// Unix epoch), allowing [`JWT_CLOCK_SKEW`] of difference between clocks:
/// the token has not expired, `nbf` and `iat` are not in the future, and its
/// lifetime is at most `max_lifetime`. The lifetime counts from `iat`, else
/// from `nbf`, else from now, so a token without either is judged by what
/// it has left: `exp` = 2^62 fails every way.
///
/// # Errors
/// Which check failed, for the server log.
pub fn check_token_times(t: TokenTimes, now: u64, max_lifetime: Duration) -> Result<(), String> {
    let skew = JWT_CLOCK_SKEW.as_secs();
    if t.exp.saturating_add(skew) < now {
        return Err(format!("the token expired at {} (now {now})", t.exp));
    }
    if let Some(nbf) = t.nbf
        && nbf > now.saturating_add(skew)
    {
        return Err(format!(
            "the token is not valid before {nbf} (nbf; now {now})"
        ));
    }
    if let Some(iat) = t.iat
        && iat > now.saturating_add(skew)
    {
        return Err(format!(
            "the token's iat {iat} is in the future (now {now})"
        ));
    }
    let (start, allowance) = match t.iat.or(t.nbf) {
        Some(start) => (start, 0),
        // Measured on our clock, so the issuer's may differ by the skew.
        None => (now, skew),
    };
    let lifetime = t.exp.saturating_sub(start);
    if lifetime > max_lifetime.as_secs().saturating_add(allowance) {
        return Err(format!(
            "the token is valid for {lifetime} s from {}, longer than the {} s allowed (EVENTBUS_JWT_MAX_LIFETIME)",
            if t.iat.is_some() {
                "iat"
            } else if t.nbf.is_some() {
                "nbf"
            } else {
                "now"
            },
            max_lifetime.as_secs()
        ));
    }
    Ok(())
}

/// Checks the credentials of each call.
pub struct Authenticator {
    mode: AuthMode,
    tokens: HashMap<String, Caller>,
    jwt_keys: Vec<JwtKey>,
    issuer: Option<String>,
    audience: Option<String>,
    max_lifetime: Duration,
    sessions: Option<std::sync::Arc<org::Sessions>>,
    expired: std::sync::Mutex<ExpiredTokens>,
}

/// The instants before which JWTs count as expired (fault injection's
/// "expire sessions and tokens now"), seconds since the epoch.
#[derive(Debug, Default)]
struct ExpiredTokens {
    /// Every tenant's tokens issued at or before this; 0: none.
    all: u64,
    /// One org's (15-character id); one entry per org an admin named.
    orgs: HashMap<String, u64>,
}

impl ExpiredTokens {
    /// The cutoff in force for `tenant`, if any.
    fn cutoff(&self, tenant: &TenantId) -> Option<u64> {
        let org = self.orgs.get(tenant.short()).copied().unwrap_or(0);
        Some(self.all.max(org)).filter(|c| *c > 0)
    }
}

/// Why a token issued at `issued` (its `iat`, else its `nbf`) is refused
/// under `cutoff`, or `None` when it is not. A token with neither claim
/// cannot be judged and passes.
fn issued_before(times: TokenTimes, cutoff: Option<u64>) -> Option<String> {
    let cutoff = cutoff?;
    let issued = times.iat.or(times.nbf)?;
    (issued <= cutoff).then(|| {
        format!(
            "the token was issued at {issued}, before its tenant's tokens were expired at {cutoff}"
        )
    })
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("tokens", &self.tokens.len())
            .field("jwt_keys", &self.jwt_keys.len())
            .finish()
    }
}

impl Authenticator {
    /// Mode `none`.
    pub fn none() -> Self {
        Self {
            mode: AuthMode::None,
            tokens: HashMap::new(),
            jwt_keys: Vec::new(),
            issuer: None,
            audience: None,
            max_lifetime: DEFAULT_JWT_MAX_LIFETIME,
            sessions: None,
            expired: std::sync::Mutex::new(ExpiredTokens::default()),
        }
    }

    /// Expires, as of `now` (seconds since the epoch), the JWTs of
    /// `tenant` (an org id, either form), or of every tenant when `None`:
    /// a JWT whose `iat` (else `nbf`) is at or before `now` is refused from
    /// then on, with the error of an expired token. JWTs with neither
    /// claim, and the static tokens of mode `static`, cannot expire this
    /// way. Login sessions are ended through [`org::Sessions::expire`].
    ///
    /// # Errors
    /// A `tenant` that is no org id.
    pub fn expire_tokens(&self, tenant: Option<&str>, now: u64) -> Result<(), String> {
        let org = tenant
            .map(|t| {
                org_id_of(t.trim())
                    .map_err(|e| e.to_string())
                    .and_then(TenantId::parse)
            })
            .transpose()?;
        let mut expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
        match org {
            Some(org) => {
                let at = expired.orgs.entry(org.short().to_owned()).or_default();
                *at = (*at).max(now);
            }
            None => expired.all = expired.all.max(now),
        }
        Ok(())
    }

    /// Also accepts the access tokens of the sessions issued at login
    /// (SOAP `sessionId`, OAuth `access_token`), in every mode.
    pub fn with_sessions(mut self, sessions: std::sync::Arc<org::Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The caller of a live login session's access token.
    fn session_caller(&self, token: Option<&str>) -> Option<Caller> {
        let token = token.map(str::trim).filter(|t| !t.is_empty())?;
        self.sessions
            .as_ref()?
            .session(token)
            .map(|s| s.user.caller())
    }

    /// Loads the files the mode needs and checks they fit together.
    ///
    /// # Errors
    /// [`AuthConfigError`] naming the file or setting that is wrong.
    pub fn load(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let mut auth = Self::none();
        auth.mode = settings.mode;
        match settings.mode {
            AuthMode::None => {}
            AuthMode::Static => {
                let path = settings.tokens_file.as_deref().ok_or_else(|| {
                    AuthConfigError::Invalid(
                        "EVENTBUS_AUTH=static needs EVENTBUS_AUTH_TOKENS_FILE (--auth-tokens-file)"
                            .into(),
                    )
                })?;
                auth.tokens = load_tokens(path)?;
            }
            AuthMode::Jwt => {
                if let Some(path) = &settings.jwt_secret_file {
                    let secret = read_hs256_secret(path)?;
                    auth.jwt_keys.push(JwtKey {
                        kid: None,
                        key: DecodingKey::from_secret(&secret),
                        alg: Algorithm::HS256,
                    });
                }
                if let Some(path) = &settings.jwt_jwks_file {
                    auth.jwt_keys.extend(load_jwks(path)?);
                }
                if auth.jwt_keys.is_empty() {
                    return Err(AuthConfigError::Invalid(
                        "EVENTBUS_AUTH=jwt needs EVENTBUS_JWT_SECRET_FILE or EVENTBUS_JWT_JWKS_FILE"
                            .into(),
                    ));
                }
                auth.max_lifetime = settings.jwt_max_lifetime;
                auth.issuer = settings.jwt_issuer.clone().filter(|s| !s.is_empty());
                auth.audience = settings.jwt_audience.clone().filter(|s| !s.is_empty());
                if auth.issuer.is_none() || auth.audience.is_none() {
                    return Err(AuthConfigError::Invalid(
                        "EVENTBUS_AUTH=jwt needs EVENTBUS_JWT_ISSUER and EVENTBUS_JWT_AUDIENCE: tokens minted for another service must not be accepted".into(),
                    ));
                }
            }
        }
        Ok(auth)
    }

    /// The mode in force.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The tenants the credentials name, sorted and without repeats: those
    /// of the tokens file in mode `static`, none otherwise (a JWT names its
    /// tenant only when it arrives).
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut out: Vec<TenantId> = self.tokens.values().map(|c| c.tenant.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Authenticates one call from its headers.
    ///
    /// # Errors
    /// [`AuthError`]: missing headers, a token that is not accepted, or a
    /// `tenantid` that does not match the token's tenant.
    pub fn authenticate(&self, headers: Headers<'_>) -> Result<Caller, AuthError> {
        if self.mode == AuthMode::None {
            if let Some(caller) = self.session_caller(headers.access_token) {
                return Ok(caller);
            }
            return Ok(Caller {
                tenant: TenantId::from_stored(DEFAULT_TENANT),
                principal: "anonymous".to_owned(),
                grants: Grants::all(),
                user_id: None,
            });
        }

        let token = present(headers.access_token, "accesstoken")?;
        let instance_url = present(headers.instance_url, "instanceurl")?;
        if !(instance_url.starts_with("https://") || instance_url.starts_with("http://")) {
            return Err(AuthError::BadHeader(format!(
                "instanceurl `{}` is not an http(s) URL",
                Echo(instance_url)
            )));
        }
        // Salesforce requires `tenantid`; here a credential names exactly
        // one tenant (a tokens-file entry, a JWT's `tenant` claim), so a
        // call without the header is that tenant's (README "Differences
        // from Salesforce"). A header that is sent must still match.
        let Ok(tenant_id) = present(headers.tenant_id, "tenantid") else {
            return self.caller_of(token);
        };
        let org = org_id_of(tenant_id)?;
        let caller = self.caller_of(token)?;
        if !same_org(&caller.tenant, org) {
            return Err(AuthError::BadHeader(format!(
                "tenantid `{}` does not match the tenant of the access token",
                Echo(tenant_id)
            )));
        }
        Ok(caller)
    }

    /// Authenticates a REST call that carries only `Authorization: Bearer
    /// <token>` (the Tooling API shape): the token alone names the tenant.
    ///
    /// # Errors
    /// A missing or unknown token.
    pub fn authenticate_bearer(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        if self.mode == AuthMode::None {
            return self.authenticate(Headers {
                access_token: token,
                ..Headers::default()
            });
        }
        self.caller_of(present(token, "Authorization: Bearer")?)
    }

    fn caller_of(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some(caller) = self.session_caller(Some(token)) {
            return Ok(caller);
        }
        match self.mode {
            AuthMode::Static => self
                .tokens
                .get(&hash_token(token))
                .cloned()
                .ok_or_else(|| AuthError::BadToken("unknown token".into())),
            _ => self.verify_jwt(token),
        }
    }

    fn verify_jwt(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::BadToken(format!("not a JWT: {e}")))?;
        let mut last = String::from("no key for the token's algorithm and key id");
        for key in &self.jwt_keys {
            if key.alg != header.alg {
                continue;
            }
            if let (Some(want), Some(have)) = (&header.kid, &key.kid)
                && want != have
            {
                continue;
            }
            let mut validation = Validation::new(key.alg);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            // The times are checked below, all in one place, on one clock.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            if let Some(iss) = &self.issuer {
                validation.set_issuer(&[iss]);
            }
            if let Some(aud) = &self.audience {
                validation.set_audience(&[aud]);
            }
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    check_token_times(claims.times, now, self.max_lifetime)
                        .map_err(AuthError::BadToken)?;
                    if claims.tenant.is_empty() {
                        return Err(AuthError::BadToken("the token names no `tenant`".into()));
                    }
                    let tenant = org_id_of(&claims.tenant)
                        .ok()
                        .and_then(|id| TenantId::parse(id).ok())
                        .ok_or_else(|| {
                            AuthError::BadToken("the token's `tenant` is not an org id".into())
                        })?;
                    let cutoff = self
                        .expired
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .cutoff(&tenant);
                    if let Some(why) = issued_before(claims.times, cutoff) {
                        return Err(AuthError::BadToken(why));
                    }
                    let grants = Grants::parse(&claims.grants).map_err(AuthError::BadToken)?;
                    return Ok(Caller {
                        tenant,
                        principal: claims.sub,
                        grants,
                        user_id: None,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(AuthError::BadToken(last))
    }
}

/// A header's value, trimmed, or [`AuthError::MissingHeader`] when absent
/// or blank.
fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, AuthError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::MissingHeader(name))
}

fn load_tokens(path: &Path) -> Result<HashMap<String, Caller>, AuthConfigError> {
    let shown = path.display();
    let file: TokensFile = toml::from_str(&read(path, "tokens file")?)
        .map_err(|e| AuthConfigError::Invalid(format!("tokens file {shown}: {e}")))?;
    let mut out = HashMap::new();
    for (i, t) in file.tokens.into_iter().enumerate() {
        let at = || format!("tokens file {shown}, token {} ({})", i + 1, t.principal);
        let hash = t.sha256.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthConfigError::Invalid(format!(
                "{}: sha256 must be 64 hex digits (eventbus token hash prints it)",
                at()
            )));
        }
        let tenant = org_id_of(&t.tenant)
            .map_err(|e| e.to_string())
            .and_then(TenantId::parse)
            .map_err(|e| AuthConfigError::Invalid(format!("{}: {e}", at())))?;
        let grants = Grants::parse(&t.grants)
            .map_err(|e| AuthConfigError::Invalid(format!("{}: {e}", at())))?;
        let caller = Caller {
            tenant,
            principal: t.principal.clone(),
            grants,
            user_id: None,
        };
        if out.insert(hash, caller).is_some() {
            return Err(AuthConfigError::Invalid(format!(
                "{}: the same token appears twice",
                at()
            )));
        }
    }
    Ok(out)
}

fn load_jwks(path: &Path) -> Result<Vec<JwtKey>, AuthConfigError> {
    let shown = path.display();
    let set: JwkSet = serde_json::from_str(&read(path, "JWKS file")?)
        .map_err(|e| AuthConfigError::Invalid(format!("JWKS file {shown}: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let alg = match &jwk.algorithm {
            P::RSA(_) => Algorithm::RS256,
            P::EllipticCurve(_) => Algorithm::ES256,
            _ => {
                return Err(AuthConfigError::Invalid(format!(
                    "JWKS file {shown}: only RSA (RS256) and EC P-256 (ES256) keys are supported"
                )));
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| AuthConfigError::Invalid(format!("JWKS file {shown}: {e}")))?;
        keys.push(JwtKey {
            kid: jwk.common.key_id.clone(),
            key,
            alg,
        });
    }
    if keys.is_empty() {
        return Err(AuthConfigError::Invalid(format!(
            "JWKS file {shown} holds no keys"
        )));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};

    const ORG: &str = "00D5e000000AbcdEAC";

    fn headers<'a>(token: &'a str, tenant: &'a str) -> Headers<'a> {
        Headers {
            access_token: Some(token),
            instance_url: Some("https://example.my.salesforce.com"),
            tenant_id: Some(tenant),
        }
    }

    #[test]
    fn tenant_header_forms() {
        assert_eq!(org_id_of(ORG), Ok(ORG));
        assert_eq!(org_id_of("00D5e000000Abcd"), Ok("00D5e000000Abcd"));
        assert_eq!(org_id_of(&format!("core/acme/{ORG}")), Ok(ORG));
        for bad in ["", "core//x", "core/acme/", "00D-bad", "core/acme/123"] {
            assert!(org_id_of(bad).is_err(), "{bad}");
        }
        assert!(same_org(ORG, "00D5e000000Abcd"));
        assert!(!same_org(ORG, "00D5e000000Abce"));
    }

    #[test]
    fn grants_match_exact_prefix_and_all() {
        let g = Grants::parse(&["publish:/event/Order__e", "subscribe:/event/*"]).expect("parse");
        assert!(g.can_publish("/event/Order__e"));
        assert!(!g.can_publish("/event/Order__e2"));
        assert!(g.can_subscribe("/event/Anything__e"));
        assert!(!g.can_subscribe("/data/AccountChangeEvent"));
        assert!(!g.is_admin());
        assert!(Grants::all().can_publish("/data/X"));
        for bad in [
            "write:/event/x",
            "publish:event",
            "publish:/ev*ent/*",
            "publish",
        ] {
            assert!(Grant::parse(bad).is_err(), "{bad}");
        }
    }

    fn tokens_file(dir: &Path, body: &str) -> AuthSettings {
        let path = dir.join("tokens.toml");
        std::fs::write(&path, body).expect("write");
        AuthSettings {
            mode: AuthMode::Static,
            tokens_file: Some(path),
            ..Default::default()
        }
    }

    #[test]
    fn static_tokens_map_to_tenant_principal_and_grants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = format!(
            "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"orders\"\ngrants = [\"publish:/event/*\"]\n",
            hash_token("s3cret")
        );
        let auth = Authenticator::load(&tokens_file(dir.path(), &body)).expect("load");
        let caller = auth
            .authenticate(headers("s3cret", ORG))
            .expect("known token");
        assert_eq!(caller.principal, "orders");
        assert!(caller.grants.can_publish("/event/X__e"));
        // The core/<name>/<orgId> form and the 15-character id work too.
        auth.authenticate(headers("s3cret", &format!("core/acme/{ORG}")))
            .expect("long form");
        auth.authenticate(headers("s3cret", &ORG[..15]))
            .expect("15 characters");
        assert!(matches!(
            auth.authenticate(headers("wrong", ORG)),
            Err(AuthError::BadToken(_))
        ));
        let other = auth
            .authenticate(headers("s3cret", "00D5e000000ZZZZEAC"))
            .expect_err("foreign tenant");
        assert!(other.is_header_problem());
        let missing = auth
            .authenticate(Headers {
                access_token: Some("s3cret"),
                ..Default::default()
            })
            .expect_err("missing");
        assert_eq!(missing, AuthError::MissingHeader("instanceurl"));
    }

    #[test]
    fn a_call_without_tenantid_is_the_tenant_its_credential_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = "00D5e000000ZZZZEA4";
        let body = format!(
            "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"a\"\n\n[[tokens]]\nsha256 = \"{}\"\ntenant = \"{}\"\nprincipal = \"b\"\n\n[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"c\"\n",
            hash_token("ta"),
            hash_token("tb"),
            &other[..15],
            hash_token("tc"),
        );
        let auth = Authenticator::load(&tokens_file(dir.path(), &body)).expect("load");
        for (token, tenant) in [("ta", ORG), ("tb", other)] {
            let caller = auth
                .authenticate(Headers {
                    access_token: Some(token),
                    instance_url: Some("https://localhost"),
                    tenant_id: None,
                })
                .expect("the token names the tenant");
            assert_eq!(caller.tenant, tenant);
        }
        // A header that is sent must still match; a blank one counts as absent.
        assert!(auth.authenticate(headers("ta", other)).is_err());
        auth.authenticate(headers("ta", " ")).expect("blank");
        let tenants: Vec<String> = auth.tenants().iter().map(|t| t.to_string()).collect();
        assert_eq!(tenants, vec![ORG.to_owned(), other.to_owned()]);
        assert!(Authenticator::none().tenants().is_empty());
    }

    #[test]
    fn an_hs256_secret_is_the_file_bytes_without_trailing_line_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        let text = "0123456789abcdef0123456789abcdef";
        for (written, expected) in [
            (format!("{text}\n").into_bytes(), text.as_bytes().to_vec()),
            (format!("{text}\r\n").into_bytes(), text.as_bytes().to_vec()),
            (
                format!(" {text} ").into_bytes(),
                format!(" {text} ").into_bytes(),
            ),
            // base64 is not decoded: its characters are the key.
            (
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
            ),
            // Any bytes, not only UTF-8.
            ((0u8..=255).collect(), (0u8..=255).collect()),
        ] {
            std::fs::write(&path, &written).expect("write");
            assert_eq!(read_hs256_secret(&path).expect("reads"), expected);
        }
        std::fs::write(&path, format!("{}\n\n", &text[..31])).expect("write");
        let err = read_hs256_secret(&path).expect_err("short");
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        // A token signed with the bytes verifies against the file.
        std::fs::write(&path, [0xffu8; 40]).expect("write");
        let mut settings = jwt_settings(dir.path(), None, None);
        settings.jwt_secret_file = Some(path);
        let auth = Authenticator::load(&settings).expect("load");
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims(now() + 600, "eventbus"),
            &EncodingKey::from_secret(&[0xffu8; 40]),
        )
        .expect("sign");
        auth.authenticate(headers(&token, ORG))
            .expect("binary secret");
    }

    #[test]
    fn both_forms_of_a_tenant_id_give_one_canonical_tenant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = format!(
            "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{}\"\nprincipal = \"short\"\n\n[[tokens]]\nsha256 = \"{}\"\ntenant = \"core/acme/{ORG}\"\nprincipal = \"long\"\n",
            hash_token("t15"),
            &ORG[..15],
            hash_token("t18"),
        );
        let auth = Authenticator::load(&tokens_file(dir.path(), &body)).expect("load");
        for (token, tenant_header) in [("t15", ORG), ("t18", &ORG[..15])] {
            let caller = auth
                .authenticate(headers(token, tenant_header))
                .expect("same org");
            assert_eq!(caller.tenant, ORG, "token {token}");
        }
        let jwt = jwt_settings(dir.path(), Some("0123456789abcdef0123456789abcdef"), None);
        let auth = Authenticator::load(&jwt).expect("load");
        let mut claims = claims(now() + 600, "eventbus");
        claims["tenant"] = serde_json::Value::from(&ORG[..15]);
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("sign");
        let caller = auth.authenticate(headers(&token, ORG)).expect("JWT");
        assert_eq!(caller.tenant, ORG);
    }

    #[test]
    fn a_bad_tokens_file_names_the_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body =
            format!("[[tokens]]\nsha256 = \"abc\"\ntenant = \"{ORG}\"\nprincipal = \"orders\"\n");
        let err = Authenticator::load(&tokens_file(dir.path(), &body)).expect_err("bad hash");
        assert!(err.to_string().contains("token 1 (orders)"), "{err}");
        let body = format!(
            "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{ORG}\"\nprincipal = \"o\"\ngrants = [\"all\"]\n",
            hash_token("x")
        );
        let err = Authenticator::load(&tokens_file(dir.path(), &body)).expect_err("bad grant");
        assert!(err.to_string().contains("grant `all`"), "{err}");
    }

    #[test]
    fn mode_none_lets_everyone_in_as_the_default_tenant() {
        let caller = Authenticator::none()
            .authenticate(Headers::default())
            .expect("none");
        assert_eq!(caller.tenant, DEFAULT_TENANT);
        assert!(caller.grants.is_admin());
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    fn claims(exp: u64, aud: &str) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://issuer.test", "aud": aud, "exp": exp, "sub": "fulfilment",
            "tenant": ORG, "grants": ["subscribe:/event/*"],
        })
    }

    fn jwt_settings(dir: &Path, secret: Option<&str>, jwks: Option<&str>) -> AuthSettings {
        let mut s = AuthSettings {
            mode: AuthMode::Jwt,
            jwt_issuer: Some("https://issuer.test".into()),
            jwt_audience: Some("eventbus".into()),
            ..Default::default()
        };
        if let Some(secret) = secret {
            let p = dir.join("secret");
            std::fs::write(&p, secret).expect("write");
            s.jwt_secret_file = Some(p);
        }
        if let Some(jwks) = jwks {
            let p = dir.join("jwks.json");
            std::fs::write(&p, jwks).expect("write");
            s.jwt_jwks_file = Some(p);
        }
        s
    }

    #[test]
    fn hs256_checks_signature_expiry_and_audience() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "0123456789abcdef0123456789abcdef";
        let auth =
            Authenticator::load(&jwt_settings(dir.path(), Some(secret), None)).expect("load");
        let key = EncodingKey::from_secret(secret.as_bytes());
        let good = jsonwebtoken::encode(&Header::default(), &claims(now() + 600, "eventbus"), &key)
            .expect("sign");
        let caller = auth.authenticate(headers(&good, ORG)).expect("valid");
        assert_eq!(caller.principal, "fulfilment");
        assert!(caller.grants.can_subscribe("/event/A__e"));
        assert!(!caller.grants.can_publish("/event/A__e"));

        let expired =
            jsonwebtoken::encode(&Header::default(), &claims(now() - 3600, "eventbus"), &key)
                .expect("sign");
        let err = auth
            .authenticate(headers(&expired, ORG))
            .expect_err("expired");
        assert!(err.to_string().contains("expired"), "{err}");
        let wrong_aud =
            jsonwebtoken::encode(&Header::default(), &claims(now() + 600, "other"), &key)
                .expect("sign");
        let err = auth
            .authenticate(headers(&wrong_aud, ORG))
            .expect_err("audience");
        assert!(err.to_string().contains("Audience"), "{err}");
        let forged = jsonwebtoken::encode(
            &Header::default(),
            &claims(now() + 600, "eventbus"),
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!!"),
        )
        .expect("sign");
        assert!(auth.authenticate(headers(&forged, ORG)).is_err());
        assert!(
            Authenticator::load(&jwt_settings(dir.path(), Some("short"), None)).is_err(),
            "short secrets are refused"
        );
    }

    #[test]
    fn token_times_are_checked_with_a_minute_of_clock_skew() {
        const NOW: u64 = 1_767_225_600;
        const DAY: u64 = 24 * 3600;
        let max = DEFAULT_JWT_MAX_LIFETIME;
        let t = |exp: u64, nbf: Option<u64>, iat: Option<u64>| TokenTimes { exp, nbf, iat };
        let ok = |times: TokenTimes| check_token_times(times, NOW, max);
        // Accepted: the usual token, the skew either way, exactly a day.
        ok(t(NOW + 600, Some(NOW), Some(NOW))).expect("now");
        ok(t(NOW - 60, None, Some(NOW - 3600))).expect("expired within the skew");
        ok(t(NOW + 600, Some(NOW + 60), None)).expect("nbf within the skew");
        ok(t(NOW + 600, None, Some(NOW + 60))).expect("iat within the skew");
        ok(t(NOW + DAY, None, Some(NOW))).expect("a day from iat");
        ok(t(NOW + DAY - 3600, Some(NOW - 3600), None)).expect("a day from nbf");
        ok(t(NOW + DAY + 60, None, None)).expect("a day from now, within the skew");
        // Refused.
        for (what, times, says) in [
            ("expired", t(NOW - 61, None, None), "expired"),
            (
                "valid from tomorrow",
                t(NOW + DAY + 600, Some(NOW + DAY), None),
                "nbf",
            ),
            (
                "nbf past the skew",
                t(NOW + 600, Some(NOW + 61), None),
                "nbf",
            ),
            (
                "issued in the future",
                t(NOW + 600, None, Some(NOW + 61)),
                "iat",
            ),
            ("exp = 2^62", t(1 << 62, None, None), "longer"),
            (
                "exp = 2^62 with iat",
                t(1 << 62, Some(NOW), Some(NOW)),
                "longer",
            ),
            (
                "a day and a second",
                t(NOW + DAY + 1, None, Some(NOW)),
                "longer",
            ),
            (
                "a day from now past the skew",
                t(NOW + DAY + 61, None, None),
                "longer",
            ),
            (
                "u64::MAX",
                t(u64::MAX, Some(u64::MAX), Some(u64::MAX)),
                "nbf",
            ),
        ] {
            let err = ok(times).expect_err(what);
            assert!(err.contains(says), "{what}: {err}");
        }
        // The lifetime is a setting.
        check_token_times(
            t(NOW + 3600, None, Some(NOW)),
            NOW,
            Duration::from_secs(3600),
        )
        .expect("an hour of an hour");
        check_token_times(
            t(NOW + 3601, None, Some(NOW)),
            NOW,
            Duration::from_secs(3600),
        )
        .expect_err("past an hour");
    }

    #[test]
    fn jwt_time_claims_are_checked_after_the_signature() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "0123456789abcdef0123456789abcdef";
        let mut settings = jwt_settings(dir.path(), Some(secret), None);
        settings.jwt_max_lifetime = Duration::from_secs(3600);
        let auth = Authenticator::load(&settings).expect("load");
        let key = EncodingKey::from_secret(secret.as_bytes());
        let sign = |extra: serde_json::Value| {
            let mut c = claims(now() + 600, "eventbus");
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            jsonwebtoken::encode(&Header::default(), &c, &key).expect("sign")
        };
        auth.authenticate(headers(
            &sign(serde_json::json!({"iat": now(), "nbf": now()})),
            ORG,
        ))
        .expect("valid");
        for (what, extra) in [
            ("nbf tomorrow", serde_json::json!({"nbf": now() + 86_400})),
            ("iat in an hour", serde_json::json!({"iat": now() + 3600})),
            ("two hours left", serde_json::json!({"exp": now() + 7200})),
            ("exp = 2^62", serde_json::json!({"exp": 1u64 << 62})),
            ("iat not a number", serde_json::json!({"iat": "yesterday"})),
        ] {
            assert!(
                matches!(
                    auth.authenticate(headers(&sign(extra), ORG)),
                    Err(AuthError::BadToken(_))
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn expired_tokens_are_refused_by_their_issue_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "0123456789abcdef0123456789abcdef";
        let auth =
            Authenticator::load(&jwt_settings(dir.path(), Some(secret), None)).expect("load");
        let key = EncodingKey::from_secret(secret.as_bytes());
        let sign = |extra: serde_json::Value| {
            let mut c = claims(now() + 600, "eventbus");
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            jsonwebtoken::encode(&Header::default(), &c, &key).expect("sign")
        };
        let t = now();
        let old = sign(serde_json::json!({"iat": t - 10}));
        let old_nbf = sign(serde_json::json!({"nbf": t - 10}));
        let undated = sign(serde_json::json!({}));
        let newer = sign(serde_json::json!({"iat": t + 5}));
        auth.authenticate(headers(&old, ORG)).expect("valid before");
        // Another org's expiry leaves this one's tokens alone.
        auth.expire_tokens(Some("00D5e000000Zzzz"), t)
            .expect("org id");
        auth.authenticate(headers(&old, ORG))
            .expect("other org expired");
        assert!(auth.expire_tokens(Some("not an org"), t).is_err());
        auth.expire_tokens(Some(ORG), t).expect("org id");
        for (what, token) in [("iat", &old), ("nbf", &old_nbf)] {
            let err = auth.authenticate(headers(token, ORG)).expect_err(what);
            assert!(
                matches!(&err, AuthError::BadToken(m) if m.contains("expired")),
                "{what}: {err:?}"
            );
        }
        auth.authenticate(headers(&undated, ORG))
            .expect("a token without iat or nbf cannot be judged");
        auth.authenticate(headers(&newer, ORG))
            .expect("issued after the expiry");
        assert!(
            issued_before(
                TokenTimes {
                    exp: 0,
                    nbf: None,
                    iat: Some(t + 5)
                },
                Some(t + 5)
            )
            .is_some(),
            "the same second counts as before"
        );
        assert_eq!(issued_before(TokenTimes::default(), None), None);
    }

    /// An ES256 key pair as (signing key, JWK JSON with `kid`).
    fn es256_key(kid: &str) -> (EncodingKey, serde_json::Value) {
        let pair = rcgen::KeyPair::generate().expect("P-256 key");
        let raw = pair.public_key_raw();
        // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        });
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
        (key, jwk)
    }

    #[test]
    fn rs256_tokens_verify_against_an_rsa_jwks() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let jwks =
            std::fs::read_to_string(fixtures.join("jwt-rs256-test-jwks.json")).expect("jwks");
        let pem = std::fs::read(fixtures.join("jwt-rs256-test-key.pem")).expect("key");
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = Authenticator::load(&jwt_settings(dir.path(), None, Some(&jwks))).expect("load");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-test".into());
        let key = EncodingKey::from_rsa_pem(&pem).expect("rsa key");
        let token =
            jsonwebtoken::encode(&header, &claims(now() + 600, "eventbus"), &key).expect("sign");
        let caller = auth.authenticate(headers(&token, ORG)).expect("RS256");
        assert_eq!(caller.principal, "fulfilment");
        // An HS256 token cannot pass as RS256 (no key of that algorithm).
        let hs = jsonwebtoken::encode(
            &Header::default(),
            &claims(now() + 600, "eventbus"),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("sign");
        assert!(auth.authenticate(headers(&hs, ORG)).is_err());
    }

    #[test]
    fn a_jwks_with_two_keys_picks_the_key_by_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k1, j1) = es256_key("one");
        let (k2, j2) = es256_key("two");
        let jwks = serde_json::json!({ "keys": [j1, j2] }).to_string();
        let auth = Authenticator::load(&jwt_settings(dir.path(), None, Some(&jwks))).expect("load");
        for (kid, key) in [("one", &k1), ("two", &k2)] {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            let token =
                jsonwebtoken::encode(&header, &claims(now() + 600, "eventbus"), key).expect("sign");
            auth.authenticate(headers(&token, ORG))
                .unwrap_or_else(|e| panic!("key {kid}: {e}"));
        }
        // Signed by key two but labelled as key one: refused.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("one".into());
        let token =
            jsonwebtoken::encode(&header, &claims(now() + 600, "eventbus"), &k2).expect("sign");
        assert!(auth.authenticate(headers(&token, ORG)).is_err());
    }
}
