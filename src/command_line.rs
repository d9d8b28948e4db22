//! The `eventbus` command line: the parser, its subcommands, the config
//! file layered under environment and flags, and the dispatch of a
//! subcommand to the server settings, a client command or the load
//! generator.
//!
//! Owns: the subcommand tree ([`Cli`], [`Command`]), turning a `--config`
//! file into flags, and which module runs each subcommand.
//! Must not: define a server setting (that is [`crate::config`]) or a client
//! command's arguments or work ([`crate::cli`], [`crate::bench`]), or run the
//! server itself: the binary does, with the settings in [`Action::Serve`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::ServeArgs;

/// Command line of the `eventbus` binary.
#[derive(Debug, Parser)]
#[command(
    name = "eventbus",
    args_conflicts_with_subcommands = true,
    version,
    about = "An event bus server that speaks the Salesforce Pub/Sub API (eventbus.v1.PubSub).",
    long_about = "An event bus server that speaks the Salesforce Pub/Sub API (eventbus.v1.PubSub) \
                  over gRPC, on a RocksDB topic log or NATS JetStream. Without a subcommand it \
                  runs `serve`.",
    after_help = TOP_LEVEL_EXAMPLES
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    // The server settings of the no-subcommand form; `Cli::command_hiding_serve`
    // keeps them out of the top-level help (`serve --help` lists them).
    #[command(flatten)]
    #[allow(missing_docs)] // a flattened group: its fields carry the docs
    pub serve: ServeArgs,
}

/// The end of `eventbus --help`: what people do first, and where the
/// server's settings are.
const TOP_LEVEL_EXAMPLES: &str = "\
Examples:
  eventbus serve --topics examples/topics      run a server on 127.0.0.1:7011, data in ./data
  eventbus publish /event/Order_Event__e '{\"OrderNumber__c\": \"A-1\"}'
  eventbus subscribe /event/Order_Event__e --from earliest
  eventbus top                                 live view of topics and consumers
  eventbus token init                          development secrets in .eventbus/

Server settings (flags, EVENTBUS_* variables, --config file): eventbus serve --help
Each command's options: eventbus <command> --help";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default); `eventbus serve --help` lists its
    /// settings.
    // Boxed: the settings outweigh every other command's arguments.
    Serve(Box<ServeArgs>),
    /// Create, list, describe, change or delete topics (Admin API).
    #[command(subcommand)]
    Topic(crate::cli::TopicCommand),
    /// Register, get or list schema versions.
    #[command(subcommand)]
    Schema(crate::cli::SchemaCommand),
    /// Create, list, describe, start, stop or delete managed subscriptions
    /// (ManagedSubscribe keeps their committed position on the server).
    #[command(subcommand)]
    Managed(crate::cli::ManagedCommand),
    /// Change Data Capture: enable objects, list them, publish gap and
    /// overflow events.
    #[command(subcommand)]
    Cdc(crate::cli::CdcCommand),
    /// Create, update, delete, undelete or read records of CDC-enabled
    /// objects; each change publishes its change event.
    #[command(subcommand)]
    Record(crate::cli::RecordCommand),
    /// Custom channels: create, delete or list channels, and set, remove
    /// or list their members (entities with an optional filter).
    #[command(subcommand)]
    Channel(crate::cli::ChannelCommand),
    /// Fault injection and time travel (servers started with
    /// `--fault-injection`): add, list, remove or clear fault rules; expire
    /// a topic's events, sessions and tokens now; offset the server clock.
    #[command(subcommand)]
    Fault(crate::cli::FaultCommand),
    /// Publish JSON events, encoded to Avro with the topic's schema.
    Publish(crate::cli::PublishArgs),
    /// Subscribe and print events as JSON lines.
    Subscribe(crate::cli::SubscribeArgs),
    /// Watch topics (rates, subscribers, last event) and consumers (lag,
    /// credit) live; `--once` or `--json` print one snapshot.
    Top(crate::cli::TopArgs),
    /// Load-test a running eventbus (or NATS JetStream) and report numbers.
    Bench(crate::bench::BenchArgs),
    /// A bare tonic server of the Pub/Sub service for `bench --target
    /// echo`: the gRPC ceiling `bench/compare.sh` measures against.
    #[command(hide = true)]
    BenchEcho(crate::bench::echo::EchoArgs),
    /// Access tokens for `--auth static`, development JWTs for `--auth jwt`,
    /// development secrets (`token init`).
    #[command(subcommand)]
    Token(crate::cli::TokenCommand),
    /// The org users file that SOAP and OAuth login check: users and
    /// connected apps, secrets stored hashed.
    #[command(subcommand)]
    Org(crate::cli::OrgCommand),
    /// Log in over OAuth (password or client credentials) at a server's
    /// HTTP listener and print the access token for scripts.
    Login(crate::cli::LoginArgs),
}

/// What the binary was asked to do.
#[derive(Debug)]
pub enum Action {
    /// Run the server with these settings.
    Serve(Box<ServeArgs>),
    /// Run a client command.
    Client(Box<Command>),
}

/// Why the settings could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Bad flags, or `--help`/`--version` (clap prints and exits).
    Clap(clap::Error),
    /// Problems in the config file, all of them.
    File(String),
}

impl From<clap::Error> for LoadError {
    fn from(e: clap::Error) -> Self {
        LoadError::Clap(e)
    }
}

impl Cli {
    /// Parses `args` with the config file layered under environment and
    /// flags: a file value applies only where neither a variable nor a flag
    /// set the setting.
    ///
    /// # Errors
    /// [`LoadError::Clap`] for bad flags; [`LoadError::File`] listing every
    /// unknown key and invalid value of the file at once.
    pub fn load_from<I, T>(args: I) -> Result<Cli, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Cli::command_hiding_serve().try_get_matches_from(&args)?;
        let (serve, explicit) = match matches.subcommand() {
            Some(("serve", m)) => (m, true),
            Some(_) => return Ok(Cli::from_arg_matches(&matches)?),
            None => (&matches, false),
        };
        let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
            return Ok(Cli::from_arg_matches(&matches)?);
        };
        // A file value applies unless a variable or a flag set the setting.
        // Settings without a default have no value source at all when
        // unset, so "not from env or flags" is the test, not "default".
        let from_file = file_flags(&path, |id| {
            !matches!(
                serve.value_source(id),
                Some(ValueSource::EnvVariable | ValueSource::CommandLine)
            )
        })?;
        let mut layered: Vec<OsString> = Vec::with_capacity(args.len() + from_file.len() + 1);
        layered.push(args.first().cloned().unwrap_or_else(|| "eventbus".into()));
        layered.push("serve".into());
        layered.extend(from_file.into_iter().map(OsString::from));
        layered.extend(args.into_iter().skip(if explicit { 2 } else { 1 }));
        let matches = Cli::command().try_get_matches_from(layered)?;
        Ok(Cli::from_arg_matches(&matches)?)
    }

    /// The parser with the no-subcommand form's server settings hidden
    /// from the top-level help: they still parse, and `serve --help`
    /// lists them, so `eventbus --help` shows the commands and examples.
    pub fn command_hiding_serve() -> clap::Command {
        Cli::command().mut_args(|a| match a.get_id().as_str() {
            "help" | "version" => a,
            _ => a.hide(true),
        })
    }

    /// The serve settings, whether given with or without `serve`.
    pub fn into_serve(self) -> Option<ServeArgs> {
        match self.command {
            Some(Command::Serve(a)) => Some(*a),
            None => Some(self.serve),
            Some(_) => None,
        }
    }

    /// Serve settings, or the client command to run.
    pub fn into_action(self) -> Action {
        match self.command {
            Some(Command::Serve(a)) => Action::Serve(a),
            None => Action::Serve(Box::new(self.serve)),
            Some(other) => Action::Client(Box::new(other)),
        }
    }
}

/// Reads the TOML file and turns each key whose setting is still at its
/// default (`is_default(id)`) into a `--flag=value` argument, checking every
/// key and value and reporting all problems together.
fn file_flags(path: &Path, is_default: impl Fn(&str) -> bool) -> Result<Vec<String>, LoadError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::File(format!("config file {shown}: cannot read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| LoadError::File(format!("config file {shown}: not valid TOML: {e}")))?;
    let cmd = Cli::command();
    let serve = cmd
        .find_subcommand("serve")
        .expect("the serve subcommand is declared above");
    let known: Vec<(String, String)> = serve
        .get_arguments()
        .filter_map(|a| Some((a.get_id().to_string(), a.get_long()?.to_owned())))
        .filter(|(id, _)| id != "config")
        .collect();
    let mut problems = Vec::new();
    let mut flags = Vec::new();
    for (key, value) in &table {
        let Some((id, long)) = known.iter().find(|(id, _)| id == key) else {
            problems.push(format!("unknown key `{key}`"));
            continue;
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                problems.push(format!(
                    "key `{key}`: expected a string or a number, found {}",
                    other.type_str()
                ));
                continue;
            }
        };
        let flag = format!("--{long}={text}");
        if let Err(e) = Cli::command().try_get_matches_from(["eventbus", "serve", flag.as_str()]) {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("invalid value")
                .trim_start_matches("error: ");
            problems.push(format!("key `{key}`: {first}"));
            continue;
        }
        if is_default(id) {
            flags.push(flag);
        }
    }
    if problems.is_empty() {
        Ok(flags)
    } else {
        Err(LoadError::File(format!(
            "config file {shown} has problems:\n  - {}",
            problems.join("\n  - ")
        )))
    }
}

impl Command {
    /// Runs a client command or the load generator; `serve` is not one.
    ///
    /// # Errors
    /// Connection failures, server errors (with their error code), bad input.
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Serve(_) => bail!("serve is not a client command"),
            Command::Topic(t) => crate::cli::topic(t).await,
            Command::Schema(s) => crate::cli::schema(s).await,
            Command::Managed(m) => crate::cli::managed(m).await,
            Command::Cdc(c) => crate::cli::cdc(c).await,
            Command::Record(r) => crate::cli::record(r).await,
            Command::Channel(c) => crate::cli::channel(c).await,
            Command::Fault(f) => crate::cli::fault(f).await,
            Command::Publish(p) => crate::cli::publish(p).await,
            Command::Subscribe(s) => crate::cli::subscribe(s).await,
            Command::Top(t) => crate::cli::top(t).await,
            Command::Bench(b) => crate::bench::run(b).await,
            Command::BenchEcho(e) => crate::bench::echo::run(e).await,
            Command::Token(t) => crate::cli::token(t),
            Command::Org(o) => crate::cli::org(o),
            Command::Login(l) => crate::cli::login(l).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::WalRecovery;
    use crate::log::Durability;

    #[test]
    fn top_level_help_is_short_and_points_to_serve_help() {
        let help = Cli::command_hiding_serve().render_long_help().to_string();
        let lines = help.lines().count();
        assert!(lines < 60, "{lines} lines:\n{help}");
        for needle in ["serve --help", "publish", "subscribe", "Examples:"] {
            assert!(help.contains(needle), "{needle} missing from:\n{help}");
        }
        assert!(
            !help.contains("--max-credit"),
            "server flags hidden:\n{help}"
        );
        assert!(!help.contains("Boxed"), "no internal notes:\n{help}");
        // The server settings still parse without the subcommand, and
        // `serve --help` lists them.
        let cli = Cli::load_from(["eventbus", "--max-credit", "7"])
            .map_err(|e| format!("{e:?}"))
            .expect("parses");
        assert_eq!(cli.into_serve().expect("serve").max_credit, 7);
        let mut cmd = Cli::command_hiding_serve();
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        assert!(
            serve
                .render_long_help()
                .to_string()
                .contains("--max-credit")
        );
    }

    #[test]
    fn wal_recovery_defaults_to_tolerating_only_a_torn_tail() {
        let args = Cli::parse_from(["eventbus"]).serve;
        assert_eq!(args.wal_recovery, WalRecovery::TolerateTail);
        let args = Cli::try_parse_from(["eventbus", "--wal-recovery", "point-in-time"])
            .expect("valid flag")
            .serve;
        assert_eq!(args.wal_recovery, WalRecovery::PointInTime);
        assert!(Cli::try_parse_from(["eventbus", "--wal-recovery", "skip-any"]).is_err());
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("eventbus.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn the_example_config_loads_and_documents_every_setting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = root.join("config.example.toml");
        let cli = Cli::load_from(
            ["eventbus", "serve", "--config"]
                .map(OsString::from)
                .into_iter()
                .chain([example.clone().into_os_string()]),
        )
        .unwrap_or_else(|e| panic!("config.example.toml must load: {e:?}"));
        let args = cli.into_serve().expect("serve");
        args.validate().expect("example settings validate");
        let text = std::fs::read_to_string(&example).expect("read example");
        let table: toml::Table = text.parse().expect("toml");
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").expect("serve");
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "config" && arg.get_long().is_some() {
                assert!(table.contains_key(id), "config.example.toml lacks `{id}`");
            }
        }
    }

    #[test]
    fn the_file_sits_under_environment_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "max_credit = 50\nkeepalive = \"5s\"\ndurability = \"buffered\"\n",
        );
        let p = path.display().to_string();
        let a = Cli::load_from(["eventbus", "serve", "--config", &p, "--max-credit", "7"])
            .map_err(|e| format!("{e:?}"))
            .expect("loads")
            .into_serve()
            .expect("serve");
        assert_eq!(a.max_credit, 7, "a flag beats the file");
        assert_eq!(
            a.keepalive,
            Duration::from_secs(5),
            "the file beats the default"
        );
        assert_eq!(a.durability, Durability::Buffered);
        // Without the subcommand too.
        let a = Cli::load_from(["eventbus", "--config", &p])
            .map_err(|e| format!("{e:?}"))
            .expect("loads")
            .into_serve()
            .expect("serve");
        assert_eq!(a.max_credit, 50);
    }

    #[test]
    fn file_values_apply_to_settings_without_a_default() {
        // Found by the deploy checks: topics, TLS and JWT files in the config
        // file were ignored, so a server meant to use TLS came up plaintext.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "topics = \"/etc/eventbus/topics\"\ntls_cert = \"/tls/tls.crt\"\ntls_key = \"/tls/tls.key\"\nauth = \"jwt\"\njwt_jwks_file = \"/jwt/jwks.json\"\njwt_issuer = \"https://issuer\"\n",
        );
        let p = path.display().to_string();
        let a = Cli::load_from(["eventbus", "serve", "--config", &p])
            .map_err(|e| format!("{e:?}"))
            .expect("loads")
            .into_serve()
            .expect("serve");
        assert_eq!(a.topics, Some(PathBuf::from("/etc/eventbus/topics")));
        assert_eq!(a.tls_cert, Some(PathBuf::from("/tls/tls.crt")));
        assert_eq!(a.tls_key, Some(PathBuf::from("/tls/tls.key")));
        assert_eq!(a.jwt_jwks_file, Some(PathBuf::from("/jwt/jwks.json")));
        assert_eq!(a.jwt_issuer.as_deref(), Some("https://issuer"));
        assert!(a.tls().enabled());
        // A flag still beats the file.
        let a = Cli::load_from(["eventbus", "serve", "--config", &p, "--topics", "/other"])
            .map_err(|e| format!("{e:?}"))
            .expect("loads")
            .into_serve()
            .expect("serve");
        assert_eq!(a.topics, Some(PathBuf::from("/other")));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "max_credits = 5\nkeepalive = \"soon\"\ndurability = \"maybe\"\nlisten = [1]\n",
        );
        let p = path.display().to_string();
        match Cli::load_from(["eventbus", "serve", "--config", &p]) {
            Err(LoadError::File(msg)) => {
                for needle in ["max_credits", "keepalive", "durability", "listen"] {
                    assert!(msg.contains(needle), "{needle} missing from: {msg}");
                }
            }
            other => panic!("expected file problems, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["eventbus", "serve", "--durability", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["eventbus", "serve", "--keepalive", "soon"]).is_err());
        let cli = Cli::try_parse_from([
            "eventbus",
            "serve",
            "--durability",
            "buffered",
            "--keepalive",
            "5s",
        ])
        .expect("valid flags");
        match cli.command {
            Some(Command::Serve(a)) => {
                assert_eq!(a.durability, Durability::Buffered);
                assert_eq!(a.keepalive, Duration::from_secs(5));
            }
            _ => panic!("serve subcommand expected"),
        }
    }
}
