//! The `token` command: access tokens and their hashes for `--auth static`,
//! development JWTs for `--auth jwt`, and the development secrets folder.
//!
//! Owns: making tokens, hashing them, minting HS256 JWTs, writing the
//! development secrets folder. Must not: talk to a server; the secret file
//! format is [`crate::auth::read_hs256_secret`]'s.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};

use crate::auth::{DEFAULT_TENANT, Grants, hash_token, org_id_of, read_hs256_secret};
use crate::client::parse_duration;
use crate::types::TenantId;

/// The development secrets folder: `eventbus token init` writes it, and
/// `eventbus token jwt` finds its secret there. It ignores itself in git.
const DEV_DIR: &str = ".eventbus";
/// The HS256 secret file's name in [`DEV_DIR`].
const SECRET_FILE: &str = "jwt-secret";
/// The tokens file's name in [`DEV_DIR`].
const TOKENS_FILE: &str = "tokens.toml";
/// The grants of a development credential: everything in its tenant.
const DEV_GRANTS: &str = "admin,publish:*,subscribe:*";

/// `eventbus token …`: access tokens for `--auth static`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new random access token and print it with its SHA-256 (the
    /// token goes to the client, the hash into the tokens file).
    New,
    /// Print the SHA-256 of a token (read from stdin, so it stays out of
    /// the shell history).
    Hash,
    /// Mint a development JWT signed with an HS256 secret file and print
    /// only the token: `export EVENTBUS_ACCESS_TOKEN=$(eventbus token jwt)`.
    Jwt(JwtArgs),
    /// Write development secrets into a folder that git ignores
    /// (`.eventbus/`): an HS256 secret for `--auth jwt` and a tokens file
    /// with one token for `--auth static`; print how to use them.
    Init(InitArgs),
}

/// `eventbus token jwt …`
#[derive(Debug, Args)]
#[command(
    after_help = "The issuer, audience, secret file and maximum lifetime read the \
server's own variables (EVENTBUS_JWT_ISSUER, EVENTBUS_JWT_AUDIENCE, EVENTBUS_JWT_SECRET_FILE, \
EVENTBUS_JWT_MAX_LIFETIME), so a shell set up for the server mints tokens it accepts. A secret \
file that does not exist yet is created with a new random secret (stderr says so). The secret \
is the file's bytes without trailing line ends, never decoded."
)]
pub struct JwtArgs {
    /// HS256 secret file (created with a new secret when missing).
    #[arg(
        long,
        env = "EVENTBUS_JWT_SECRET_FILE",
        default_value = ".eventbus/jwt-secret"
    )]
    pub secret_file: PathBuf,
    /// The `iss` claim: the server's --jwt-issuer.
    #[arg(long, env = "EVENTBUS_JWT_ISSUER")]
    pub issuer: String,
    /// The `aud` claim: the server's --jwt-audience.
    #[arg(long, env = "EVENTBUS_JWT_AUDIENCE")]
    pub audience: String,
    /// The `tenant` claim: an org id (15 or 18 characters).
    #[arg(long, default_value = DEFAULT_TENANT)]
    pub tenant: String,
    /// The `sub` claim: who the caller is, for the server's logs.
    #[arg(long, default_value = "developer")]
    pub sub: String,
    /// The `grants` claim, comma-separated: publish:<pattern>,
    /// subscribe:<pattern>, admin.
    #[arg(long, default_value = DEV_GRANTS, value_delimiter = ',')]
    pub grants: Vec<String>,
    /// How long the token is valid (`exp` minus `iat`).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// The longest lifetime the server accepts (its
    /// EVENTBUS_JWT_MAX_LIFETIME); a longer --ttl is refused here.
    #[arg(long, env = "EVENTBUS_JWT_MAX_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    pub max_lifetime: Duration,
    /// The `iat` (and `nbf`) claim: RFC 3339 (2026-01-01T00:00:00Z) or
    /// seconds since the Unix epoch; default now. An earlier time makes a
    /// token that has already expired, for testing.
    #[arg(long)]
    pub issued_at: Option<String>,
}

/// `eventbus token init …`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write into; it gets a `.gitignore` that ignores it.
    #[arg(long, default_value = DEV_DIR)]
    pub dir: PathBuf,
    /// The tenant of the static token (an org id).
    #[arg(long, default_value = DEFAULT_TENANT)]
    pub tenant: String,
}

/// `eventbus token …`: makes a token, hashes one read from stdin, mints a
/// JWT or writes the development secrets folder.
///
/// # Errors
/// No token on stdin; for `jwt` and `init`, bad claims and files that
/// cannot be read or written.
pub fn run(cmd: TokenCommand) -> Result<()> {
    let token = match &cmd {
        TokenCommand::New => new_token(),
        TokenCommand::Jwt(args) => {
            println!("{}", mint(args, now_secs())?);
            return Ok(());
        }
        TokenCommand::Init(args) => return init(args),
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the token from stdin")?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if line.is_empty() {
                bail!(
                    "no token on stdin: pipe it in, for example `printf %s \"$TOKEN\" | eventbus token hash`"
                );
            }
            line
        }
    };
    if matches!(cmd, TokenCommand::New) {
        println!("token:  {token}");
        println!("sha256: {}", hash_token(&token));
    } else {
        println!("{}", hash_token(&token));
    }
    Ok(())
}

/// A new random access token: 244 random bits from two v4 UUIDs, far
/// beyond guessing.
fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A new HS256 secret: 96 hex characters (366 random bits from three v4
/// UUIDs), used as the characters they are, plus a line end.
fn new_secret() -> String {
    format!(
        "{}{}{}\n",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Writes `text` to a new file only its owner may read; `Ok(false)` when
/// the file exists already (it is kept).
fn write_secret_file(path: &Path, text: &str) -> Result<bool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(anyhow!("cannot create {}: {e}", path.display())),
    }
}

/// The tenant an org id (or `core/<name>/<orgId>`) names.
fn tenant_of(text: &str) -> Result<TenantId> {
    org_id_of(text)
        .map_err(|e| anyhow!("--tenant: {e}"))
        .and_then(|id| TenantId::parse(id).map_err(|e| anyhow!("--tenant: {e}")))
}

/// `iat` from `--issued-at`: RFC 3339 or seconds since the epoch.
fn issued_at(text: Option<&str>, now: u64) -> Result<u64> {
    let Some(text) = text.map(str::trim) else {
        return Ok(now);
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            anyhow!(
                "--issued-at `{text}` is neither RFC 3339 (2026-01-01T00:00:00Z) nor seconds since the Unix epoch"
            )
        })
}

/// Mints the JWT `args` describe, signed with the secret file (made first
/// when missing), `now` being the current time in seconds.
fn mint(args: &JwtArgs, now: u64) -> Result<String> {
    if args.issuer.trim().is_empty() || args.audience.trim().is_empty() {
        bail!("--issuer and --audience must name the server's --jwt-issuer and --jwt-audience");
    }
    if args.ttl.is_zero() {
        bail!("--ttl must be longer than 0s");
    }
    if args.ttl > args.max_lifetime {
        bail!(
            "--ttl {} is longer than the {} a server accepts (EVENTBUS_JWT_MAX_LIFETIME, --max-lifetime here); the server would refuse the token",
            humantime::format_duration(args.ttl),
            humantime::format_duration(args.max_lifetime)
        );
    }
    let tenant = tenant_of(&args.tenant)?;
    Grants::parse(&args.grants).map_err(|e| anyhow!("--grants: {e}"))?;
    if write_secret_file(&args.secret_file, &new_secret())? {
        eprintln!(
            "eventbus: wrote a new HS256 secret to {}; start the server with --jwt-secret-file {}",
            args.secret_file.display(),
            args.secret_file.display()
        );
    }
    let secret = read_hs256_secret(&args.secret_file)?;
    let iat = issued_at(args.issued_at.as_deref(), now)?;
    let claims = serde_json::json!({
        "iss": args.issuer,
        "aud": args.audience,
        "sub": args.sub,
        "tenant": tenant.as_str(),
        "grants": args.grants,
        "iat": iat,
        "nbf": iat,
        "exp": iat.saturating_add(args.ttl.as_secs()),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .context("cannot sign the token")
}

/// Writes the development secrets folder and prints how to use it.
fn init(args: &InitArgs) -> Result<()> {
    let tenant = tenant_of(&args.tenant)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    // The folder ignores itself, wherever it is made.
    write_secret_file(
        &dir.join(".gitignore"),
        "# Development secrets written by `eventbus token init`.\n*\n",
    )?;
    let secret = dir.join(SECRET_FILE);
    let tokens = dir.join(TOKENS_FILE);
    let show = |p: &Path| p.display().to_string();
    if write_secret_file(&secret, &new_secret())? {
        println!("wrote {} (HS256 secret for --auth jwt)", show(&secret));
    } else {
        println!("kept {}", show(&secret));
    }
    let token = new_token();
    let grants: Vec<String> = DEV_GRANTS.split(',').map(|g| format!("\"{g}\"")).collect();
    let body = format!(
        "# Development tokens written by `eventbus token init`; add more with\n# `eventbus token new`.\n[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nprincipal = \"developer\"\ngrants = [{}]\n",
        hash_token(&token),
        grants.join(", ")
    );
    let new_tokens = write_secret_file(&tokens, &body)?;
    if new_tokens {
        println!(
            "wrote {} (one token: tenant {tenant}, principal developer, grants {DEV_GRANTS})",
            show(&tokens)
        );
    } else {
        println!(
            "kept {} (it holds hashes only: make another token with `eventbus token new`)",
            show(&tokens)
        );
    }
    println!();
    println!("Static tokens:");
    println!(
        "  eventbus serve --topics examples/topics --auth static --auth-tokens-file {}",
        show(&tokens)
    );
    if new_tokens {
        println!("  export EVENTBUS_ACCESS_TOKEN={token}");
    }
    println!("JWT:");
    println!(
        "  eventbus serve --topics examples/topics --auth jwt --jwt-secret-file {} --jwt-issuer eventbus-dev --jwt-audience eventbus",
        show(&secret)
    );
    println!(
        "  export EVENTBUS_ACCESS_TOKEN=$(eventbus token jwt --secret-file {} --issuer eventbus-dev --audience eventbus --tenant {tenant})",
        show(&secret)
    );
    println!("Development TLS: add --tls-self-signed (certificates in <data-dir>/dev-tls).");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMode, AuthSettings, Authenticator, Headers};

    const ORG: &str = "00D5e000000AbcdEAC";

    fn jwt_args(dir: &Path) -> JwtArgs {
        JwtArgs {
            secret_file: dir.join("nested/jwt-secret"),
            issuer: "eventbus-dev".into(),
            audience: "eventbus".into(),
            tenant: ORG.into(),
            sub: "tester".into(),
            grants: vec!["publish:/event/*".into()],
            ttl: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(24 * 3600),
            issued_at: None,
        }
    }

    fn server_auth(secret: &Path) -> Authenticator {
        Authenticator::load(&AuthSettings {
            mode: AuthMode::Jwt,
            jwt_secret_file: Some(secret.to_owned()),
            jwt_issuer: Some("eventbus-dev".into()),
            jwt_audience: Some("eventbus".into()),
            ..Default::default()
        })
        .expect("server settings load")
    }

    fn bearer(token: &str) -> Headers<'_> {
        Headers {
            access_token: Some(token),
            instance_url: Some("https://localhost"),
            tenant_id: None,
        }
    }

    #[test]
    fn a_minted_jwt_is_accepted_by_a_server_with_the_same_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = jwt_args(dir.path());
        let token = mint(&args, now_secs()).expect("mints, making the secret file");
        let caller = server_auth(&args.secret_file)
            .authenticate(bearer(&token))
            .expect("accepted");
        assert_eq!(caller.tenant, ORG);
        assert_eq!(caller.principal, "tester");
        assert!(caller.grants.can_publish("/event/A__e"));
        assert!(!caller.grants.can_subscribe("/event/A__e"));
        // The secret file is kept and reused.
        let again = mint(&args, now_secs()).expect("mints");
        server_auth(&args.secret_file)
            .authenticate(bearer(&again))
            .expect("same secret");
    }

    #[test]
    fn an_old_or_overlong_token_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = jwt_args(dir.path());
        args.issued_at = Some("2020-01-01T00:00:00Z".into());
        let old = mint(&args, now_secs()).expect("mints");
        let err = server_auth(&args.secret_file)
            .authenticate(bearer(&old))
            .expect_err("expired");
        assert!(err.to_string().contains("expired"), "{err}");
        args.issued_at = None;
        args.ttl = Duration::from_secs(25 * 3600);
        let err = mint(&args, now_secs()).expect_err("too long");
        assert!(
            err.to_string().contains("EVENTBUS_JWT_MAX_LIFETIME"),
            "{err}"
        );
        args.ttl = Duration::from_secs(60);
        args.tenant = "acme".into();
        assert!(mint(&args, now_secs()).is_err(), "bad tenant");
        args.tenant = ORG.into();
        args.grants = vec!["all".into()];
        assert!(mint(&args, now_secs()).is_err(), "bad grant");
    }

    #[test]
    fn issued_at_reads_rfc3339_and_epoch_seconds() {
        assert_eq!(issued_at(None, 42).expect("now"), 42);
        assert_eq!(
            issued_at(Some("1767225600"), 0).expect("secs"),
            1_767_225_600
        );
        assert_eq!(
            issued_at(Some("2026-01-01T00:00:00Z"), 0).expect("rfc3339"),
            1_767_225_600
        );
        assert!(issued_at(Some("yesterday"), 0).is_err());
    }

    #[test]
    fn init_writes_an_ignored_folder_the_server_can_load_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = InitArgs {
            dir: dir.path().join(".eventbus"),
            tenant: ORG.into(),
        };
        init(&args).expect("init");
        let ignore = std::fs::read_to_string(args.dir.join(".gitignore")).expect("gitignore");
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        let secret = std::fs::read(args.dir.join(SECRET_FILE)).expect("secret");
        server_auth(&args.dir.join(SECRET_FILE));
        let tokens = Authenticator::load(&AuthSettings {
            mode: AuthMode::Static,
            tokens_file: Some(args.dir.join(TOKENS_FILE)),
            ..Default::default()
        })
        .expect("tokens file loads");
        assert_eq!(
            tokens
                .tenants()
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            vec![ORG.to_owned()]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(args.dir.join(SECRET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads secrets");
        }
        init(&args).expect("again");
        assert_eq!(
            std::fs::read(args.dir.join(SECRET_FILE)).expect("secret"),
            secret,
            "an existing secret is kept"
        );
    }
}
