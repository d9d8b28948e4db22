//! The org's users and connected apps, and the sessions they log in to.
//!
//! Owns: the org users file (users with their org id, user id, username,
//! hashed password and grants; connected apps with a hashed client secret,
//! the user they run as and the public key of their JWT bearer flow),
//! secret hashing (PBKDF2-HMAC-SHA256), checking credentials, and the
//! sessions issued at login (access and refresh tokens, expiry, revoke).
//! Must not: speak HTTP, SOAP or gRPC; the login endpoints (api::oauth,
//! api::soap) shape the answers and [`super::Authenticator`] accepts the
//! access tokens on every API.
//!
//! With `--auth none` any credentials log in to the default org with every
//! grant, so local development needs no file.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::Deserialize;

use super::{AuthConfigError, AuthMode, Caller, DEFAULT_TENANT, Grants, hash_token, org_id_of};
use crate::types::TenantId;

/// Default lifetime of a session (`EVENTBUS_SESSION_LIFETIME`): two hours,
/// Salesforce's default session timeout (`sessionSecondsValid` 7200).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// PBKDF2 rounds of a new secret hash.
const PBKDF2_ROUNDS: u32 = 100_000;
/// The scheme name that starts a stored secret hash.
const SCHEME: &str = "pbkdf2-sha256";

/// Hashes a password or client secret for the org users file:
/// `pbkdf2-sha256$<rounds>$<salt>$<hash>` (base64, no padding), with a new
/// random salt.
pub fn hash_secret(secret: &str) -> String {
    let salt = uuid::Uuid::new_v4();
    hash_with(secret, salt.as_bytes(), PBKDF2_ROUNDS)
}

fn hash_with(secret: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(rounds).unwrap_or(NonZeroU32::MIN),
        salt,
        secret.as_bytes(),
        &mut out,
    );
    format!("{SCHEME}${rounds}${}${}", B64.encode(salt), B64.encode(out))
}

/// Whether `secret` matches a stored hash (constant time in the hash).
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    let Ok((rounds, salt, hash)) = parse_hash(stored) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        secret.as_bytes(),
        &hash,
    )
    .is_ok()
}

fn parse_hash(stored: &str) -> Result<(NonZeroU32, Vec<u8>, Vec<u8>), String> {
    let bad = || {
        format!(
            "not a secret hash of the form {SCHEME}$<rounds>$<salt>$<hash> (eventbus org users add makes one)"
        )
    };
    let mut parts = stored.split('$');
    if parts.next() != Some(SCHEME) {
        return Err(bad());
    }
    let rounds = parts
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .and_then(NonZeroU32::new)
        .ok_or_else(bad)?;
    let salt = parts
        .next()
        .and_then(|s| B64.decode(s).ok())
        .ok_or_else(bad)?;
    let hash = parts
        .next()
        .and_then(|s| B64.decode(s).ok())
        .filter(|h| h.len() == 32)
        .ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((rounds, salt, hash))
}

/// The 18-character form of a 15- or 18-character Salesforce id.
fn id18(id: &str) -> Result<String, String> {
    TenantId::parse(id)
        .map(|t| t.as_str().to_owned())
        .map_err(|_| {
            format!(
                "`{}` is not a Salesforce id (15 or 18 letters and digits)",
                id.escape_debug()
            )
        })
}

/// A user id derived from the org and username, for users the file gives
/// no id (and every user of `--auth none`): `005` and 12 base-62 digits.
fn derived_user_id(org: &str, username: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let hash = hash_token(&format!("{org}/{username}"));
    let mut id = String::from("005");
    id.extend(
        hash.as_bytes()
            .chunks(2)
            .take(12)
            .map(|c| DIGITS[usize::from(c[0] ^ c[1].rotate_left(3)) % DIGITS.len()] as char),
    );
    id18(&id).unwrap_or(id)
}

/// One user of the org.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgUser {
    /// The org (tenant).
    pub org: TenantId,
    /// The 18-character user id (`005…`).
    pub user_id: String,
    /// The login name (`name@example.com`).
    pub username: String,
    /// The full name.
    pub display_name: String,
    /// The email address.
    pub email: String,
    /// What the user's sessions may do.
    pub grants: Grants,
}

impl OrgUser {
    /// The caller a session of this user authenticates as.
    pub fn caller(&self) -> Caller {
        Caller {
            tenant: self.org.clone(),
            principal: self.username.clone(),
            grants: self.grants.clone(),
            user_id: Some(self.user_id.clone()),
        }
    }

    /// A user of `--auth none`: the default org, every grant.
    fn open(username: &str) -> Self {
        let username = if username.trim().is_empty() {
            "developer@eventbus.local"
        } else {
            username.trim()
        };
        Self {
            org: TenantId::from_stored(DEFAULT_TENANT),
            user_id: derived_user_id(DEFAULT_TENANT, username),
            username: username.to_owned(),
            display_name: username.split('@').next().unwrap_or(username).to_owned(),
            email: if username.contains('@') {
                username.to_owned()
            } else {
                String::new()
            },
            grants: Grants::all(),
        }
    }
}

/// A connected app: OAuth client credentials and the user it runs as.
#[derive(Clone)]
pub struct ConnectedApp {
    /// The consumer key.
    pub client_id: String,
    secret_hash: String,
    /// The username `client_credentials` runs as.
    pub run_as: Option<String>,
    /// The public key that verifies JWT bearer assertions (RS256).
    pub jwt_key: Option<Arc<jsonwebtoken::DecodingKey>>,
}

impl std::fmt::Debug for ConnectedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedApp")
            .field("client_id", &self.client_id)
            .field("run_as", &self.run_as)
            .field("jwt_key", &self.jwt_key.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    apps: Vec<AppEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password: String,
    org_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    run_as: Option<String>,
    #[serde(default)]
    jwt_public_key_file: Option<PathBuf>,
}

/// Why a login failed (the endpoints map it to Salesforce's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password, bad assertion or refresh token.
    #[error("authentication failure")]
    BadCredentials,
    /// Unknown client id.
    #[error("client identifier invalid")]
    UnknownClient,
    /// Wrong client secret.
    #[error("invalid client credentials")]
    BadClientSecret,
    /// The app has no user to run as, or no key for JWT bearer.
    #[error("{0}")]
    NotSetUp(String),
}

/// The org users file, loaded; in mode `none`, every login succeeds.
#[derive(Debug, Default)]
pub struct Directory {
    open: bool,
    users: Vec<(OrgUser, String)>,
    apps: Vec<ConnectedApp>,
}

impl Directory {
    /// The directory of `--auth none` without a file: any credentials log
    /// in to the default org.
    pub fn open() -> Self {
        Self {
            open: true,
            ..Self::default()
        }
    }

    /// Loads the users file (`None`: no users) for `mode`.
    ///
    /// # Errors
    /// [`AuthConfigError`] naming the file, the entry and what is wrong.
    pub fn load(mode: AuthMode, path: Option<&Path>) -> Result<Self, AuthConfigError> {
        let mut dir = match path {
            Some(path) => load_users(path)?,
            None => Self::default(),
        };
        dir.open = mode == AuthMode::None;
        Ok(dir)
    }

    /// Whether any credentials log in (`--auth none`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The users, without their password hashes.
    pub fn users(&self) -> impl Iterator<Item = &OrgUser> {
        self.users.iter().map(|(u, _)| u)
    }

    /// The user named `username` (case-insensitive, as Salesforce's).
    pub fn user(&self, username: &str) -> Option<&OrgUser> {
        self.users
            .iter()
            .map(|(u, _)| u)
            .find(|u| u.username.eq_ignore_ascii_case(username.trim()))
    }

    /// The user a username and password log in as.
    ///
    /// # Errors
    /// [`LoginError::BadCredentials`].
    pub fn password_login(&self, username: &str, password: &str) -> Result<OrgUser, LoginError> {
        if let Some((user, hash)) = self
            .users
            .iter()
            .find(|(u, _)| u.username.eq_ignore_ascii_case(username.trim()))
        {
            return if verify_secret(password, hash) {
                Ok(user.clone())
            } else if self.open {
                Ok(OrgUser::open(username))
            } else {
                Err(LoginError::BadCredentials)
            };
        }
        if self.open {
            return Ok(OrgUser::open(username));
        }
        // The same work for an unknown user as for a wrong password.
        let _ = verify_secret(password, &hash_with("", b"timing", PBKDF2_ROUNDS));
        Err(LoginError::BadCredentials)
    }

    /// Checks a client id and secret: the app (`None` in mode `none` for
    /// an app the file does not list).
    ///
    /// # Errors
    /// [`LoginError::UnknownClient`] or [`LoginError::BadClientSecret`].
    pub fn client(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<Option<&ConnectedApp>, LoginError> {
        match self.app(client_id) {
            Some(app) => match secret {
                // An app without a secret is a public client.
                _ if app.secret_hash.is_empty() => Ok(Some(app)),
                Some(s) if verify_secret(s, &app.secret_hash) => Ok(Some(app)),
                _ if self.open => Ok(Some(app)),
                _ => Err(LoginError::BadClientSecret),
            },
            None if self.open => Ok(None),
            None => Err(LoginError::UnknownClient),
        }
    }

    /// The app with this client id.
    pub fn app(&self, client_id: &str) -> Option<&ConnectedApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// The user an app's client credentials run as.
    ///
    /// # Errors
    /// [`LoginError`] for bad client credentials or an app without a user.
    pub fn client_credentials_login(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<OrgUser, LoginError> {
        match self.client(client_id, Some(secret))? {
            // The client credentials flow needs a confidential client.
            Some(app) if app.secret_hash.is_empty() && !self.open => {
                Err(LoginError::BadClientSecret)
            }
            Some(app) => match &app.run_as {
                Some(name) => self.named_user(name),
                None if self.open => Ok(OrgUser::open(&app.client_id)),
                None => Err(LoginError::NotSetUp(
                    "no client credentials user associated with this app (run_as)".into(),
                )),
            },
            None => Ok(OrgUser::open(&format!("{client_id}@eventbus.local"))),
        }
    }

    /// The user `username` for a flow that already proved who it is (JWT
    /// bearer, refresh): any name in mode `none`.
    ///
    /// # Errors
    /// [`LoginError::BadCredentials`] for an unknown user.
    pub fn named_user(&self, username: &str) -> Result<OrgUser, LoginError> {
        match self.user(username) {
            Some(u) => Ok(u.clone()),
            None if self.open => Ok(OrgUser::open(username)),
            None => Err(LoginError::BadCredentials),
        }
    }
}

fn load_users(path: &Path) -> Result<Directory, AuthConfigError> {
    let shown = path.display();
    let text = super::read(path, "org users file")?;
    let file: UsersFile = toml::from_str(&text)
        .map_err(|e| AuthConfigError::Invalid(format!("org users file {shown}: {e}")))?;
    let mut dir = Directory::default();
    for (i, u) in file.users.into_iter().enumerate() {
        let at = |e: String| {
            AuthConfigError::Invalid(format!(
                "org users file {shown}, user {} ({}): {e}",
                i + 1,
                u.username
            ))
        };
        if u.username.trim().is_empty() {
            return Err(at("the username is empty".into()));
        }
        parse_hash(&u.password).map_err(|e| at(format!("password: {e}")))?;
        let org = org_id_of(&u.org_id)
            .map_err(|e| e.to_string())
            .and_then(TenantId::parse)
            .map_err(&at)?;
        let user_id = match &u.user_id {
            Some(id) if id.starts_with("005") => id18(id).map_err(&at)?,
            Some(id) => {
                return Err(at(format!(
                    "user_id `{}` is not a user id (005…)",
                    id.escape_debug()
                )));
            }
            None => derived_user_id(org.as_str(), &u.username),
        };
        let grants = Grants::parse(&u.grants).map_err(&at)?;
        if dir.user(&u.username).is_some() {
            return Err(at("the username appears twice".into()));
        }
        let user = OrgUser {
            org,
            user_id,
            display_name: u.name.clone().unwrap_or_else(|| u.username.clone()),
            email: u.email.clone().unwrap_or_else(|| u.username.clone()),
            username: u.username.clone(),
            grants,
        };
        dir.users.push((user, u.password));
    }
    for (i, a) in file.apps.into_iter().enumerate() {
        let at = |e: String| {
            AuthConfigError::Invalid(format!(
                "org users file {shown}, app {} ({}): {e}",
                i + 1,
                a.client_id
            ))
        };
        if a.client_id.trim().is_empty() {
            return Err(at("the client_id is empty".into()));
        }
        let secret_hash = a.client_secret.clone().unwrap_or_default();
        if a.client_secret.is_some() {
            parse_hash(&secret_hash).map_err(|e| at(format!("client_secret: {e}")))?;
        }
        if let Some(name) = &a.run_as
            && dir.user(name).is_none()
        {
            return Err(at(format!("run_as `{name}` is not a user of the file")));
        }
        let jwt_key = match &a.jwt_public_key_file {
            Some(file) => {
                let file = match file.is_relative() {
                    true => path.parent().unwrap_or(Path::new(".")).join(file),
                    false => file.clone(),
                };
                let pem = std::fs::read(&file)
                    .map_err(|e| at(format!("jwt_public_key_file {}: {e}", file.display())))?;
                let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    at(format!(
                        "jwt_public_key_file {}: not an RSA public key or certificate in PEM: {e}",
                        file.display()
                    ))
                })?;
                Some(Arc::new(key))
            }
            None => None,
        };
        if dir.app(&a.client_id).is_some() {
            return Err(at("the client_id appears twice".into()));
        }
        dir.apps.push(ConnectedApp {
            client_id: a.client_id,
            secret_hash,
            run_as: a.run_as,
            jwt_key,
        });
    }
    Ok(dir)
}

/// Seconds since the Unix epoch.
fn epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A live session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who logged in.
    pub user: OrgUser,
    /// When the session was issued.
    pub issued_at: SystemTime,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
    /// The connected app it was issued to, when any.
    pub client_id: Option<String>,
    refresh: Option<String>,
}

/// What a login issued.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The access token (SOAP `sessionId`).
    pub access_token: String,
    /// The refresh token, when one was asked for.
    pub refresh_token: Option<String>,
    /// The session.
    pub session: Session,
}

struct RefreshGrant {
    user: OrgUser,
    client_id: Option<String>,
    issued_at: SystemTime,
}

/// Live sessions (and refresh tokens) kept at most: logins beyond it end
/// the oldest, so a client that logs in in a loop cannot grow memory.
const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
struct State {
    access: HashMap<String, Session>,
    refresh: HashMap<String, RefreshGrant>,
}

/// The sessions issued at login, kept in memory (a restart logs everyone
/// out, as a Salesforce session timeout would), keyed by token hash.
pub struct Sessions {
    lifetime: Duration,
    max: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The key of the earliest-issued entry.
fn oldest<'a>(entries: impl Iterator<Item = (&'a String, SystemTime)>) -> Option<String> {
    entries.min_by_key(|(_, at)| *at).map(|(k, _)| k.clone())
}

/// A new random token: the org's 15-character id, `!`, and 244 random
/// bits, the shape of a Salesforce session id.
fn new_token(org: &TenantId) -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut bytes = a.as_bytes().to_vec();
    bytes.extend_from_slice(b.as_bytes());
    format!(
        "{}!{}",
        org.short(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Sessions {
    /// Sessions that live `lifetime` from issue.
    pub fn new(lifetime: Duration) -> Self {
        Self::with_max(lifetime, MAX_SESSIONS)
    }

    /// Sessions that live `lifetime`, at most `max` of them (and `max`
    /// refresh tokens) at a time.
    pub fn with_max(lifetime: Duration, max: usize) -> Self {
        Self {
            lifetime,
            max: max.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// How long a session lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a session for `user`, with a refresh token when asked.
    pub fn issue(&self, user: OrgUser, client_id: Option<&str>, with_refresh: bool) -> Issued {
        let access_token = new_token(&user.org);
        let refresh_token = with_refresh.then(|| new_token(&user.org));
        let issued_at = SystemTime::now();
        let session = Session {
            user: user.clone(),
            issued_at,
            expires_at: issued_at + self.lifetime,
            client_id: client_id.map(str::to_owned),
            refresh: refresh_token.as_deref().map(hash_token),
        };
        let mut state = self.state();
        // Pruned only at the cap, so a login costs O(1) until then.
        if state.access.len() >= self.max {
            let now = SystemTime::now();
            state.access.retain(|_, s| s.expires_at > now);
            if state.access.len() >= self.max
                && let Some(oldest) = oldest(state.access.iter().map(|(k, s)| (k, s.issued_at)))
            {
                state.access.remove(&oldest);
            }
        }
        if refresh_token.is_some()
            && state.refresh.len() >= self.max
            && let Some(oldest) = oldest(state.refresh.iter().map(|(k, g)| (k, g.issued_at)))
        {
            state.refresh.remove(&oldest);
        }
        state
            .access
            .insert(hash_token(&access_token), session.clone());
        if let Some(r) = &refresh_token {
            state.refresh.insert(
                hash_token(r),
                RefreshGrant {
                    user,
                    client_id: client_id.map(str::to_owned),
                    issued_at,
                },
            );
        }
        Issued {
            access_token,
            refresh_token,
            session,
        }
    }

    /// The live session of an access token: `None` when unknown, expired
    /// or revoked.
    pub fn session(&self, access_token: &str) -> Option<Session> {
        let key = hash_token(access_token);
        let mut state = self.state();
        let found = state.access.get(&key)?.clone();
        if found.expires_at <= SystemTime::now() {
            state.access.remove(&key);
            return None;
        }
        Some(found)
    }

    /// Ends now every live session of `tenant` (an org id, either form, or
    /// a stored tenant id), or of every tenant when `None`: their access
    /// tokens are refused from the next call on, as after they expired.
    /// Refresh tokens stay valid (a Salesforce session timeout leaves them
    /// too), so a client's refresh flow can be tested. Returns how many
    /// sessions ended.
    pub fn expire(&self, tenant: Option<&str>) -> usize {
        let mut state = self.state();
        let before = state.access.len();
        state.access.retain(|_, s| {
            tenant.is_some_and(|t| {
                let org = s.user.org.as_str();
                !(org == t.trim() || super::same_org(org, t.trim()))
            })
        });
        before - state.access.len()
    }

    /// The user of a refresh token issued to `client_id`.
    pub fn refresh(&self, refresh_token: &str, client_id: &str) -> Option<OrgUser> {
        let state = self.state();
        let grant = state.refresh.get(&hash_token(refresh_token))?;
        match &grant.client_id {
            Some(c) if c != client_id => None,
            _ => Some(grant.user.clone()),
        }
    }

    /// Revokes an access token, or a refresh token and every session
    /// issued with it. Whether the token was known.
    pub fn revoke(&self, token: &str) -> bool {
        let key = hash_token(token);
        let mut state = self.state();
        if state.access.remove(&key).is_some() {
            return true;
        }
        if state.refresh.remove(&key).is_some() {
            state
                .access
                .retain(|_, s| s.refresh.as_deref() != Some(key.as_str()));
            return true;
        }
        false
    }
}

impl Session {
    /// Seconds the session stays valid from issue.
    pub fn seconds_valid(&self) -> u64 {
        self.expires_at
            .duration_since(self.issued_at)
            .unwrap_or_default()
            .as_secs()
    }

    /// Milliseconds since the epoch of issue (OAuth `issued_at`).
    pub fn issued_at_millis(&self) -> u128 {
        epoch(self.issued_at).as_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hashed_with_a_salt_and_verified() {
        let a = hash_secret("s3cret");
        let b = hash_secret("s3cret");
        assert_ne!(a, b, "a new salt each time");
        assert!(a.starts_with("pbkdf2-sha256$100000$"));
        assert!(verify_secret("s3cret", &a));
        assert!(!verify_secret("s3cret!", &a));
        assert!(!verify_secret("s3cret", "plain-text"));
        assert!(parse_hash("pbkdf2-sha256$0$AA$AA").is_err());
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("org.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn users_toml() -> String {
        format!(
            "[[users]]\nusername = \"ops@acme.example\"\npassword = \"{}\"\norg_id = \"00D5g000004ABCD\"\nuser_id = \"0055g00000ABCDE\"\ngrants = [\"publish:*\"]\n\n[[apps]]\nclient_id = \"app1\"\nclient_secret = \"{}\"\nrun_as = \"ops@acme.example\"\n\n[[apps]]\nclient_id = \"public\"\nrun_as = \"ops@acme.example\"\n",
            hash_secret("pw"),
            hash_secret("cs")
        )
    }

    #[test]
    fn the_users_file_logs_users_and_apps_in() {
        let (_d, path) = file(&users_toml());
        let dir = Directory::load(AuthMode::Static, Some(&path)).expect("loads");
        let user = dir.password_login("OPS@acme.example", "pw").expect("login");
        assert_eq!(user.org.as_str(), "00D5g000004ABCDEA4");
        assert_eq!(user.user_id, "0055g00000ABCDEAA5");
        assert!(user.grants.can_publish("/event/X__e"));
        assert!(!user.grants.can_subscribe("/event/X__e"));
        assert_eq!(
            dir.password_login("ops@acme.example", "nope"),
            Err(LoginError::BadCredentials)
        );
        assert_eq!(
            dir.password_login("who@acme.example", "pw"),
            Err(LoginError::BadCredentials)
        );
        assert_eq!(
            dir.client_credentials_login("app1", "cs")
                .map(|u| u.username),
            Ok("ops@acme.example".into())
        );
        assert_eq!(
            dir.client_credentials_login("app1", "bad").err(),
            Some(LoginError::BadClientSecret)
        );
        assert_eq!(
            dir.client_credentials_login("app2", "cs").err(),
            Some(LoginError::UnknownClient)
        );
        let public = dir.client("public", None).expect("no secret needed");
        assert_eq!(public.map(|a| a.client_id.as_str()), Some("public"));
        assert_eq!(
            dir.client_credentials_login("public", "").err(),
            Some(LoginError::BadClientSecret)
        );
    }

    #[test]
    fn mode_none_logs_any_credentials_in_to_the_default_org() {
        let dir = Directory::open();
        let user = dir.password_login("me@dev", "anything").expect("login");
        assert_eq!(user.org.as_str(), DEFAULT_TENANT);
        assert!(user.user_id.starts_with("005") && user.user_id.len() == 18);
        assert_eq!(user.grants, Grants::all());
        assert_eq!(
            dir.password_login("me@dev", "other")
                .expect("again")
                .user_id,
            user.user_id
        );
    }

    #[test]
    fn bad_files_name_the_entry_and_the_problem() {
        for (text, want) in [
            (
                "[[users]]\nusername = \"a\"\npassword = \"plain\"\norg_id = \"00D000000000001\"\n",
                "user 1 (a): password: not a secret hash",
            ),
            (
                &format!(
                    "[[users]]\nusername = \"a\"\npassword = \"{}\"\norg_id = \"nope\"\n",
                    hash_secret("x")
                ),
                "user 1 (a): tenantid `nope`",
            ),
            (
                &format!(
                    "[[users]]\nusername = \"a\"\npassword = \"{}\"\norg_id = \"00D000000000001\"\nuser_id = \"001000000000001\"\n",
                    hash_secret("x")
                ),
                "is not a user id",
            ),
            (
                "[[apps]]\nclient_id = \"c\"\nrun_as = \"ghost\"\n",
                "app 1 (c): run_as `ghost`",
            ),
            ("[[people]]\n", "unknown field"),
        ] {
            let (_d, path) = file(text);
            let err = Directory::load(AuthMode::Static, Some(&path))
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn sessions_expire_and_are_revoked() {
        let user = Directory::open()
            .password_login("me@dev", "x")
            .expect("login");
        let sessions = Sessions::new(Duration::from_secs(3600));
        let issued = sessions.issue(user.clone(), Some("app"), true);
        assert!(issued.access_token.starts_with("00D000000000000!"));
        assert_eq!(
            sessions.session(&issued.access_token).map(|s| s.user),
            Some(user.clone())
        );
        let refresh = issued.refresh_token.expect("refresh token");
        assert_eq!(sessions.refresh(&refresh, "app"), Some(user.clone()));
        assert_eq!(sessions.refresh(&refresh, "other-app"), None);
        assert!(sessions.revoke(&refresh));
        assert!(
            sessions.session(&issued.access_token).is_none(),
            "revoking the refresh token ends its sessions"
        );
        assert!(!sessions.revoke(&refresh));
        let few = Sessions::with_max(Duration::from_secs(3600), 2);
        let first = few.issue(user.clone(), None, true);
        let second = few.issue(user.clone(), None, true);
        let third = few.issue(user.clone(), None, true);
        assert!(
            few.session(&first.access_token).is_none(),
            "the oldest ends"
        );
        assert!(few.session(&second.access_token).is_some());
        assert!(few.session(&third.access_token).is_some());
        let first_refresh = first.refresh_token.expect("refresh");
        assert_eq!(few.refresh(&first_refresh, "any"), None, "at most two kept");
        let short = Sessions::new(Duration::ZERO);
        let expired = short.issue(user, None, false);
        assert!(short.session(&expired.access_token).is_none());
    }

    #[test]
    fn expiring_ends_a_tenants_sessions_now_and_keeps_refresh_tokens() {
        let user = Directory::open()
            .password_login("me@dev", "x")
            .expect("login");
        let mut other = user.clone();
        other.org = TenantId::parse("00D5e000000AbcdEAC").expect("org id");
        let sessions = Sessions::new(Duration::from_secs(3600));
        let mine = sessions.issue(user.clone(), Some("app"), true);
        let theirs = sessions.issue(other.clone(), None, false);
        // The 15-character form names the same org.
        assert_eq!(sessions.expire(Some("00D5e000000Abcd")), 1);
        assert!(sessions.session(&theirs.access_token).is_none());
        assert!(sessions.session(&mine.access_token).is_some());
        assert_eq!(sessions.expire(Some("00D5e000000Abcd")), 0);
        let again = sessions.issue(other, None, false);
        assert_eq!(sessions.expire(None), 2);
        assert!(sessions.session(&mine.access_token).is_none());
        assert!(sessions.session(&again.access_token).is_none());
        let refresh = mine.refresh_token.expect("refresh token");
        assert_eq!(sessions.refresh(&refresh, "app"), Some(user));
    }
}
