//! The `org` command: the org users file (`--org-users-file`) the server's
//! SOAP and OAuth login check.
//!
//! Owns: adding, listing and removing users and connected apps in that
//! file, secrets read from stdin and stored hashed. Must not: talk to a
//! server (it reads the file at start) or define the file's format: the
//! server's loader (`auth::org`) does, and every change is checked by it
//! before the file is written.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::auth::org::{Directory, hash_secret};
use crate::auth::{AuthMode, Grants};

/// `eventbus org …`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Users of the org (username, password, org id, grants).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Connected apps (OAuth client id and secret, the user
    /// client_credentials runs as, the JWT bearer public key).
    #[command(subcommand)]
    Apps(AppsCommand),
}

/// The file every `org` command edits.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The org users file (created when missing). Rewritten in full:
    /// comments in it are not kept.
    #[arg(long, env = "EVENTBUS_ORG_USERS_FILE")]
    pub file: PathBuf,
}

/// `eventbus org users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password (with the security token appended, as
    /// clients send it) is read from stdin and stored hashed.
    Add(AddUser),
    /// List the users (no secrets).
    List(FileArg),
    /// Remove a user.
    Remove {
        #[command(flatten)]
        #[allow(missing_docs)]
        file: FileArg,
        /// The username.
        username: String,
    },
}

/// `eventbus org users add …`
#[derive(Debug, Args)]
pub struct AddUser {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: FileArg,
    /// The login name (`name@example.com`).
    pub username: String,
    /// The org (tenant) id, 15 or 18 characters.
    #[arg(long, default_value = crate::auth::DEFAULT_TENANT)]
    pub org_id: String,
    /// The user id (`005…`); derived from the org and username when absent.
    #[arg(long)]
    pub user_id: Option<String>,
    /// The full name.
    #[arg(long)]
    pub name: Option<String>,
    /// The email address (default: the username).
    #[arg(long)]
    pub email: Option<String>,
    /// Grants, comma-separated: publish:<pattern>, subscribe:<pattern>, admin.
    #[arg(long, value_delimiter = ',', default_value = "publish:*,subscribe:*")]
    pub grants: Vec<String>,
}

/// `eventbus org apps …`
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Add a connected app; its client secret is read from stdin (empty
    /// for none) and stored hashed.
    Add(AddApp),
    /// List the apps (no secrets).
    List(FileArg),
}

/// `eventbus org apps add …`
#[derive(Debug, Args)]
pub struct AddApp {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: FileArg,
    /// The client id (consumer key).
    pub client_id: String,
    /// The user `client_credentials` runs as.
    #[arg(long)]
    pub run_as: Option<String>,
    /// PEM public key or certificate that verifies JWT bearer assertions.
    #[arg(long)]
    pub jwt_public_key_file: Option<PathBuf>,
}

fn read_table(path: &Path) -> Result<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("org users file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Checks the new contents with the server's loader, then writes them.
fn write_table(path: &Path, table: &toml::Table) -> Result<()> {
    let text = toml::to_string(table).context("cannot write the file as TOML")?;
    let check = path.with_extension("toml.check");
    std::fs::write(&check, &text).with_context(|| format!("cannot write {}", check.display()))?;
    let loaded = Directory::load(AuthMode::Static, Some(&check));
    let _ = std::fs::remove_file(&check);
    loaded.map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn entries<'a>(table: &'a mut toml::Table, key: &str) -> Result<&'a mut Vec<toml::Value>> {
    table
        .entry(key)
        .or_insert_with(|| toml::Value::Array(Vec::new()))
        .as_array_mut()
        .with_context(|| format!("`{key}` in the org users file is not a list"))
}

fn name_of<'a>(v: &'a toml::Value, key: &str) -> &'a str {
    v.get(key).and_then(toml::Value::as_str).unwrap_or_default()
}

/// The secret on stdin, without its line end.
fn secret_from_stdin(what: &str) -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs an `org` command.
///
/// # Errors
/// An unreadable or invalid file, a duplicate or unknown name, bad grants.
pub fn run(cmd: OrgCommand) -> Result<()> {
    match cmd {
        OrgCommand::Users(UsersCommand::Add(a)) => {
            Grants::parse(&a.grants).map_err(anyhow::Error::msg)?;
            let password = secret_from_stdin("password")?;
            if password.is_empty() {
                bail!(
                    "no password on stdin: pipe it in, for example `printf %s \"$PASSWORD\" | eventbus org users add {}`",
                    a.username
                );
            }
            let mut table = read_table(&a.file.file)?;
            let users = entries(&mut table, "users")?;
            if users
                .iter()
                .any(|u| name_of(u, "username").eq_ignore_ascii_case(&a.username))
            {
                bail!(
                    "user {} is already in {}",
                    a.username,
                    a.file.file.display()
                );
            }
            let mut user = toml::Table::new();
            user.insert("username".into(), a.username.clone().into());
            user.insert("password".into(), hash_secret(&password).into());
            user.insert("org_id".into(), a.org_id.into());
            for (key, value) in [("user_id", a.user_id), ("name", a.name), ("email", a.email)] {
                if let Some(v) = value {
                    user.insert(key.into(), v.into());
                }
            }
            user.insert("grants".into(), a.grants.into());
            users.push(user.into());
            write_table(&a.file.file, &table)?;
            eprintln!("added user {} to {}", a.username, a.file.file.display());
            Ok(())
        }
        OrgCommand::Users(UsersCommand::List(f)) => {
            let dir = Directory::load(AuthMode::Static, Some(&f.file))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let table = read_table(&f.file)?;
            println!(
                "{:<32} {:<18} {:<18} GRANTS",
                "USERNAME", "ORG ID", "USER ID"
            );
            for raw in table
                .get("users")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(u) = dir.user(name_of(raw, "username")) else {
                    continue;
                };
                let grants: Vec<&str> = raw
                    .get("grants")
                    .and_then(toml::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(toml::Value::as_str)
                    .collect();
                println!(
                    "{:<32} {:<18} {:<18} {}",
                    u.username,
                    u.org.as_str(),
                    u.user_id,
                    grants.join(",")
                );
            }
            Ok(())
        }
        OrgCommand::Users(UsersCommand::Remove { file, username }) => {
            let mut table = read_table(&file.file)?;
            let users = entries(&mut table, "users")?;
            let before = users.len();
            users.retain(|u| !name_of(u, "username").eq_ignore_ascii_case(&username));
            if users.len() == before {
                bail!("no user {username} in {}", file.file.display());
            }
            write_table(&file.file, &table)?;
            eprintln!("removed user {username} from {}", file.file.display());
            Ok(())
        }
        OrgCommand::Apps(AppsCommand::Add(a)) => {
            let secret = secret_from_stdin("client secret")?;
            let mut table = read_table(&a.file.file)?;
            let apps = entries(&mut table, "apps")?;
            if apps.iter().any(|x| name_of(x, "client_id") == a.client_id) {
                bail!(
                    "app {} is already in {}",
                    a.client_id,
                    a.file.file.display()
                );
            }
            let mut app = toml::Table::new();
            app.insert("client_id".into(), a.client_id.clone().into());
            if !secret.is_empty() {
                app.insert("client_secret".into(), hash_secret(&secret).into());
            }
            if let Some(r) = a.run_as {
                app.insert("run_as".into(), r.into());
            }
            if let Some(k) = a.jwt_public_key_file {
                app.insert("jwt_public_key_file".into(), k.display().to_string().into());
            }
            apps.push(app.into());
            write_table(&a.file.file, &table)?;
            eprintln!("added app {} to {}", a.client_id, a.file.file.display());
            Ok(())
        }
        OrgCommand::Apps(AppsCommand::List(f)) => {
            let table = read_table(&f.file)?;
            println!(
                "{:<32} {:<8} {:<32} JWT KEY",
                "CLIENT ID", "SECRET", "RUN AS"
            );
            for app in table
                .get("apps")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "{:<32} {:<8} {:<32} {}",
                    name_of(app, "client_id"),
                    if app.get("client_secret").is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    name_of(app, "run_as"),
                    name_of(app, "jwt_public_key_file"),
                );
            }
            Ok(())
        }
    }
}
