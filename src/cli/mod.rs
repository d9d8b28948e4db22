//! The client commands of the `eventbus` binary: `topic`, `schema`,
//! `login`, `managed`, `org`, `publish`, `subscribe`, `token`, `top`, `cdc`,
//! `record`, `channel`, `fault`.
//!
//! Owns: argument definitions, talking to a server over gRPC (Pub/Sub and
//! Admin services), JSON ⇄ Avro through the schema module, output formats.
//! The command files (`commands.rs`, `managed.rs`, `publish.rs`,
//! `subscribe/`, `token.rs`, `top.rs`) share `wire.rs`, `term.rs` and
//! `format.rs` and never import each other.
//! Must not: touch storage, the log or the broker directly; it is a client
//! like any other and sees only what the wire shows. It does not know the
//! load generator either: both share [`crate::client`].

mod cdc;
mod channel;
mod commands;
mod fault;
mod format;
mod login;
mod managed;
mod org;
mod publish;
mod subscribe;
mod term;
mod token;
mod top;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::client::parse_duration;

pub use cdc::{CdcCommand, RecordCommand, record, run as cdc};
pub use channel::{ChannelCommand, MemberCommand, run as channel};
pub use commands::{schema, topic};
pub use fault::{AddArgs, FaultCommand, ListFormat, run as fault};
pub use login::{LoginArgs, run as login};
pub use managed::run as managed;
pub use org::{OrgCommand, run as org};
pub use publish::{PublishArgs, run as publish};
pub use subscribe::{OutputFormat, SubscribeArgs, run as subscribe};
pub use token::{TokenCommand, run as token};
pub use top::{TopArgs, run as top};

/// Connection settings shared by every client command.
#[derive(Clone, Debug, Args)]
pub struct ConnArgs {
    /// Server address: `host:port` or `http://host:port` for plaintext,
    /// `https://host:port` (or any `--tls-*` option) for TLS.
    #[arg(long, env = "EVENTBUS_SERVER", default_value = "127.0.0.1:7011")]
    pub server: String,
    /// Deadline for connecting and for each unary call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// PEM CA bundle to trust for the server's certificate (for a
    /// `--tls-self-signed DIR` server: `DIR/ca.pem`). Implies TLS.
    #[arg(long, env = "EVENTBUS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS. Implies TLS.
    #[arg(long, env = "EVENTBUS_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM key of `--tls-client-cert`.
    #[arg(long, env = "EVENTBUS_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// Access token sent as the `accesstoken` header (servers with `--auth
    /// static` or `jwt`). Prefer the environment variable: flags show up in
    /// the process list.
    #[arg(long, env = "EVENTBUS_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<String>,
    /// Tenant sent as the `tenantid` header: an org id or
    /// `core/<name>/<orgId>`; it selects the tenant whose topics the command
    /// sees and must match the token's.
    #[arg(long, env = "EVENTBUS_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Sent as the `instanceurl` header.
    #[arg(
        long,
        env = "EVENTBUS_INSTANCE_URL",
        default_value = "https://localhost"
    )]
    pub instance_url: String,
}

impl ConnArgs {
    /// The client TLS settings these arguments name.
    pub fn tls(&self) -> crate::tls::ClientTls {
        crate::tls::ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_client_cert.clone(),
            key: self.tls_client_key.clone(),
        }
    }
}

/// `eventbus topic …`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic from an Avro schema file.
    Create {
        /// Topic name, for example /event/Order_Event__e.
        name: String,
        /// The Avro schema (.avsc) file.
        #[arg(long)]
        schema: PathBuf,
        /// Retention by age (for example 72h); default: the server's.
        #[arg(long, value_parser = parse_duration)]
        retention: Option<Duration>,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List topics with their event counts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show one topic: schema versions, replay id range (hex), counts, size.
    Describe {
        /// Topic name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Change a topic's retention.
    Retention {
        /// Topic name.
        name: String,
        /// New retention by age, for example 24h.
        #[arg(value_parser = parse_duration)]
        retention: Duration,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a topic and all its events.
    Delete {
        /// Topic name.
        name: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// A managed subscription on the command line: an id (`18x…`, 15 or 18
/// characters) or a developer name.
#[derive(Debug, Subcommand)]
pub enum ManagedCommand {
    /// Create a managed subscription on a topic (the topic is fixed after).
    Create {
        /// Developer name: a letter, then letters, digits and single
        /// underscores; unique in the tenant.
        name: String,
        /// The topic it reads.
        #[arg(long)]
        topic: String,
        /// Where a stream starts when nothing was committed: latest or earliest.
        #[arg(long, default_value = "latest", value_parser = parse_replay)]
        default_replay: crate::types::ManagedReplay,
        /// Where a stream starts when the commit is no longer retained.
        #[arg(long, default_value = "latest", value_parser = parse_replay)]
        error_recovery_replay: crate::types::ManagedReplay,
        /// Create it in state STOP.
        #[arg(long)]
        stopped: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the tenant's managed subscriptions.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show one: state, replays, committed replay id and lag.
    Describe {
        /// Id or developer name.
        subscription: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set state RUN: streams may open again (from the default replay
    /// after a STOP).
    Start {
        /// Id or developer name.
        subscription: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set state STOP: the active stream ends, the commit is deleted and new
    /// streams are refused until `start`.
    Stop {
        /// Id or developer name.
        subscription: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Change the default or error-recovery replay.
    Update {
        /// Id or developer name.
        subscription: String,
        /// latest or earliest.
        #[arg(long, value_parser = parse_replay)]
        default_replay: Option<crate::types::ManagedReplay>,
        /// latest or earliest.
        #[arg(long, value_parser = parse_replay)]
        error_recovery_replay: Option<crate::types::ManagedReplay>,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete it; its active stream ends.
    Delete {
        /// Id or developer name.
        subscription: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

fn parse_replay(s: &str) -> Result<crate::types::ManagedReplay, String> {
    s.parse()
}

/// `eventbus schema …`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a new schema version for a topic. It must be able to read
    /// events written with the current version (backward compatible).
    Register {
        /// Topic name.
        topic: String,
        /// The Avro schema (.avsc) file.
        #[arg(long)]
        schema: PathBuf,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the schema JSON of a schema id (GetSchema).
    Get {
        /// The 22-character schema id.
        schema_id: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List a topic's schema versions, oldest first.
    List {
        /// Topic name.
        topic: String,
        /// Connection settings.
        #[command(flatten)]
        conn: ConnArgs,
    },
}
