//! Typed server settings: built-in defaults, then a TOML file (`--config`),
//! then `EVENTBUS_*` environment variables, then flags; each layer overrides
//! the one before (the command line, [`crate::command_line`], reads the file
//! and layers it).
//!
//! Owns: every setting of `serve`, its default, its flag, variable and file
//! key, the duration syntax of settings and client flags, and `validate()`.
//! Must not: be a global (the environment is read only while parsing), or
//! know the command line around the settings: the subcommands, the client
//! commands and the load generator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::api::ApiConfig;
use crate::broker::BrokerConfig;
use crate::log::Durability;

/// The storage backend of the topic log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Embedded RocksDB in `data_dir`: one server.
    #[default]
    Rocksdb,
    /// A NATS JetStream cluster: any number of servers on one log.
    Jetstream,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rocksdb" => Ok(Self::Rocksdb),
            "jetstream" => Ok(Self::Jetstream),
            other => Err(format!(
                "unknown backend `{other}`: use `rocksdb` (default) or `jetstream`"
            )),
        }
    }
}

pub use crate::client::parse_duration;
pub use eventbus_rocksdb::store::WalRecovery;

/// Settings of `eventbus serve`. Every flag also reads the environment
/// variable named in its help, and every setting but `config` can be set in
/// the TOML file under its field name (`max_credit = 100`).
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// TOML file of settings (keys as in config.example.toml); environment
    /// variables and flags override it.
    #[arg(long, env = "EVENTBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "EVENTBUS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Address of the Prometheus metrics endpoint (`/metrics`, plain HTTP);
    /// empty turns it off.
    #[arg(long, env = "EVENTBUS_METRICS_LISTEN", default_value = "")]
    pub metrics_listen: String,
    /// What the `topic` label of per-topic metrics shows: `default-tenant`
    /// (the default tenant's topic names; other tenants' topics together as
    /// `other-tenants`), `all` (every stored name, `/~<org id>/...` included:
    /// names tenants, so only where nobody else can reach /metrics) or
    /// `none` (every topic as `*`).
    #[arg(long, env = "EVENTBUS_METRICS_TOPIC_LABELS", value_enum, default_value_t = crate::telemetry::metrics::TopicLabels::DefaultTenant)]
    pub metrics_topic_labels: crate::telemetry::metrics::TopicLabels,
    /// Address of the one HTTP(S) listener for what Salesforce serves over
    /// HTTP (login: SOAP and OAuth; the Tooling API query); HTTPS with the
    /// server's certificate when TLS is on. Empty turns it off.
    #[arg(long, env = "EVENTBUS_HTTP_LISTEN", default_value = "")]
    pub http_listen: String,
    /// The former name of `--http-listen`, kept as its alias: used when
    /// `--http-listen` is empty.
    #[arg(long, env = "EVENTBUS_TOOLING_LISTEN", default_value = "")]
    pub tooling_listen: String,
    /// Address of a plaintext listener that serves only `grpc.health.v1`
    /// (for Kubernetes gRPC probes when the main port speaks TLS); empty
    /// turns it off.
    #[arg(long, env = "EVENTBUS_HEALTH_LISTEN", default_value = "")]
    pub health_listen: String,
    /// Address to listen on for gRPC (plaintext).
    #[arg(long, env = "EVENTBUS_LISTEN", default_value = "127.0.0.1:7011")]
    pub listen: SocketAddr,
    /// Folder holding the RocksDB data.
    #[arg(long, env = "EVENTBUS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Folder of `*.avsc` files to provision as topics at startup
    /// (`DIR/event/X__e.avsc` becomes `/event/X__e`).
    #[arg(long, env = "EVENTBUS_TOPICS")]
    pub topics: Option<PathBuf>,
    /// Tenants (org ids, comma-separated) the topics folder provisions
    /// besides the default tenant. Unset: every tenant of the static tokens
    /// file. Set it for `--auth jwt` (the server learns JWT tenants only from
    /// tokens), or to give the folder to fewer tenants than the tokens file
    /// names.
    #[arg(long, env = "EVENTBUS_TOPICS_TENANTS", value_delimiter = ',')]
    pub topics_tenants: Vec<String>,
    /// Salesforce DX project folder (`sfdx-project.json` package
    /// directories, or a folder with `objects/`) whose platform events
    /// (`objects/X__e`) are provisioned as topics `/event/X__e` at startup,
    /// with the schema Salesforce derives; the same tenants get them as get
    /// the topics folder.
    #[arg(long, env = "EVENTBUS_METADATA")]
    pub metadata: Option<PathBuf>,
    /// Keepalive interval of a subscription that has credit and nothing new.
    #[arg(long, env = "EVENTBUS_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// Where events live: `rocksdb` (embedded, this machine's `data_dir`)
    /// or `jetstream` (a NATS JetStream cluster shared by any number of
    /// eventbus servers).
    #[arg(long, env = "EVENTBUS_BACKEND", default_value = "rocksdb")]
    pub backend: Backend,
    /// NATS server URLs for `--backend jetstream`, comma-separated; the
    /// client fails over among them.
    #[arg(
        long,
        env = "EVENTBUS_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        value_delimiter = ','
    )]
    pub nats_url: Vec<String>,
    /// Replicas of every JetStream stream and bucket: 1, or 3 on a cluster.
    #[arg(long, env = "EVENTBUS_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,
    /// Prefix of every JetStream stream, subject and bucket name, so several
    /// deployments can share one cluster.
    #[arg(long, env = "EVENTBUS_NATS_PREFIX", default_value = "eventbus")]
    pub nats_prefix: String,
    /// A NATS credentials file (JWT and NKey seed) for `--backend jetstream`.
    #[arg(long, env = "EVENTBUS_NATS_CREDENTIALS", value_parser = any_path())]
    pub nats_credentials: Option<PathBuf>,
    /// CA certificates (PEM) to trust for TLS to NATS.
    #[arg(long, env = "EVENTBUS_NATS_TLS_CA", value_parser = any_path())]
    pub nats_tls_ca: Option<PathBuf>,
    /// `sync`: acknowledge after the WAL is fsynced. `buffered`: acknowledge
    /// after the write, fsync in the background (faster; a machine crash can
    /// lose the last acknowledged events).
    #[arg(long, env = "EVENTBUS_DURABILITY", default_value = "sync")]
    pub durability: Durability,
    /// How often `buffered` durability fsyncs the WAL.
    #[arg(long, env = "EVENTBUS_WAL_SYNC_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub wal_sync_interval: Duration,
    /// What startup does with a damaged write-ahead log. `tolerate-tail`:
    /// drop only a torn last record (a write cut short by a crash, never
    /// acknowledged with `sync` durability) and refuse to start on damage
    /// before it. `point-in-time`: start anyway, keeping the events before
    /// the damage and dropping the ones after it (set it once, after the
    /// refusal message, or restore a backup instead).
    #[arg(long, env = "EVENTBUS_WAL_RECOVERY", value_enum, default_value_t = WalRecovery::TolerateTail)]
    pub wal_recovery: WalRecovery,
    /// Cap on a subscription's outstanding credit; larger requests are clamped.
    #[arg(long, env = "EVENTBUS_MAX_CREDIT", default_value_t = 100)]
    pub max_credit: u32,
    /// Largest event payload in bytes; larger events fail individually.
    #[arg(long, env = "EVENTBUS_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,
    /// Largest gRPC request message in bytes.
    #[arg(long, env = "EVENTBUS_MAX_REQUEST_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Retention by age of new topics.
    #[arg(long, env = "EVENTBUS_RETENTION", default_value = "72h", value_parser = parse_duration)]
    pub retention: Duration,
    /// How often expired events are deleted.
    #[arg(long, env = "EVENTBUS_RETENTION_CHECK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub retention_check_interval: Duration,
    /// Most PublishStream requests in flight per stream.
    #[arg(long, env = "EVENTBUS_PUBLISH_STREAM_WINDOW", default_value_t = 16)]
    pub publish_stream_window: usize,
    /// How long a new Subscribe or PublishStream may take to send its first
    /// request before it is ended with INVALID_ARGUMENT.
    #[arg(long, env = "EVENTBUS_FIRST_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub first_request_timeout: Duration,
    /// HTTP/2 concurrent streams per connection (advertised to clients).
    #[arg(long, env = "EVENTBUS_MAX_CONCURRENT_STREAMS", default_value_t = 1000)]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive ping interval (0s turns pings off).
    #[arg(long, env = "EVENTBUS_HTTP2_KEEPALIVE", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive: Duration,
    /// Connections open at once across every listener (gRPC, health,
    /// tooling, metrics; TLS handshakes included); at the cap new ones wait
    /// in the listen backlog. Each takes a file descriptor: keep it at most
    /// the open-file limit minus 256 for storage.
    #[arg(long, env = "EVENTBUS_MAX_CONNECTIONS", default_value_t = 768)]
    pub max_connections: usize,
    /// Time a new connection has to complete its TLS handshake, or to send
    /// its first bytes without TLS, before it is closed.
    #[arg(long, env = "EVENTBUS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection that has not read or written a byte for this long is
    /// closed (HTTP/2 pings and subscription keepalives keep live ones busy).
    #[arg(long, env = "EVENTBUS_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How long a call or stream waits for room in a full response budget
    /// before it ends with RESOURCE_EXHAUSTED; a connection whose unread
    /// responses do not move for twice this long while it is full is closed.
    #[arg(long, env = "EVENTBUS_STUCK_CLIENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub stuck_client_timeout: Duration,
    /// Bytes of responses (and requests being handled) one connection may
    /// hold before the server waits for its client to read: new calls wait
    /// and streams stop producing.
    #[arg(long, env = "EVENTBUS_CONNECTION_RESPONSE_BUDGET", default_value_t = 8 * 1024 * 1024)]
    pub connection_response_budget: usize,
    /// The same across all connections of the server.
    #[arg(long, env = "EVENTBUS_RESPONSE_BUDGET", default_value_t = 256 * 1024 * 1024)]
    pub response_budget: usize,
    /// After SIGTERM, how long health reports NOT_SERVING before streams
    /// are ended (time for load balancers to stop routing here).
    #[arg(long, env = "EVENTBUS_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// How long shutdown waits for open calls before abandoning them.
    #[arg(long, env = "EVENTBUS_SHUTDOWN_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_deadline: Duration,
    /// PEM certificate chain to serve TLS with (leaf first); needs
    /// `--tls-key`. Read at startup: rotate by replacing the files and
    /// restarting (see the README).
    #[arg(long, env = "EVENTBUS_TLS_CERT", value_parser = any_path())]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "EVENTBUS_TLS_KEY", value_parser = any_path())]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: when set, clients must present a certificate signed by
    /// it (mutual TLS).
    #[arg(long, env = "EVENTBUS_TLS_CLIENT_CA", value_parser = any_path())]
    pub tls_client_ca: Option<PathBuf>,
    /// Development TLS: create (once) a CA and a certificate for localhost,
    /// 127.0.0.1 and ::1 in this folder and serve with it; clients trust
    /// `ca.pem` from the folder. Without a value: `<data-dir>/dev-tls`.
    #[arg(
        long,
        env = "EVENTBUS_TLS_SELF_SIGNED",
        value_parser = any_path(),
        num_args = 0..=1,
        default_missing_value = SELF_SIGNED_IN_DATA_DIR
    )]
    pub tls_self_signed: Option<PathBuf>,
    /// Authentication: `none` (development: every call is the default
    /// tenant), `static` (a tokens file) or `jwt` (signed tokens). `static`
    /// and `jwt` require the accesstoken, instanceurl and tenantid headers.
    #[arg(long, env = "EVENTBUS_AUTH", value_enum, default_value_t = crate::auth::AuthMode::None)]
    pub auth: crate::auth::AuthMode,
    /// Tokens file for `--auth static` (TOML: `[[tokens]]` with sha256,
    /// tenant, principal, grants; see the README).
    #[arg(long, env = "EVENTBUS_AUTH_TOKENS_FILE", value_parser = any_path())]
    pub auth_tokens_file: Option<PathBuf>,
    /// File holding the HS256 secret (at least 32 bytes) for `--auth jwt`.
    #[arg(long, env = "EVENTBUS_JWT_SECRET_FILE", value_parser = any_path())]
    pub jwt_secret_file: Option<PathBuf>,
    /// JWKS file of RS256/ES256 public keys for `--auth jwt`.
    #[arg(long, env = "EVENTBUS_JWT_JWKS_FILE", value_parser = any_path())]
    pub jwt_jwks_file: Option<PathBuf>,
    /// Required `iss` claim for `--auth jwt`.
    #[arg(long, env = "EVENTBUS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim for `--auth jwt`.
    #[arg(long, env = "EVENTBUS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Longest lifetime a JWT may claim for `--auth jwt`: `exp` minus `iat`
    /// (else `nbf`, else now). Longer-lived tokens are refused.
    #[arg(long, env = "EVENTBUS_JWT_MAX_LIFETIME", default_value = "24h", value_parser = parse_duration)]
    pub jwt_max_lifetime: Duration,
    /// The org's users and connected apps for login (SOAP `login`, OAuth;
    /// TOML: `[[users]]` and `[[apps]]` with hashed secrets, see `eventbus
    /// org users`). With `--auth none` any credentials log in without it.
    #[arg(long, env = "EVENTBUS_ORG_USERS_FILE", value_parser = any_path())]
    pub org_users_file: Option<PathBuf>,
    /// How long a session issued at login (SOAP `sessionId`, OAuth
    /// `access_token`) is accepted.
    #[arg(long, env = "EVENTBUS_SESSION_LIFETIME", default_value = "2h", value_parser = parse_duration)]
    pub session_lifetime: Duration,
    /// Fault injection (`eventbus fault`, the Admin API's `Faults`
    /// service): rules that make calls fail on purpose, and time travel.
    /// Off unless set; even then only callers with the `admin` grant may
    /// add rules.
    #[arg(
        long,
        env = "EVENTBUS_FAULT_INJECTION",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub fault_injection: bool,
    /// Fault rules to start with (TOML `[[fault]]` tables, see `eventbus
    /// fault add --help`); needs `--fault-injection`.
    #[arg(long, env = "EVENTBUS_FAULTS_FILE", value_parser = any_path())]
    pub faults_file: Option<PathBuf>,
    /// The commit number of each org's first Change Data Capture
    /// transaction; later ones count up from it. Salesforce's commit numbers
    /// can pass 2^53 (9007199254740992), past what a JavaScript number holds
    /// exactly: set this above it to test a consumer against that case.
    #[arg(long, env = "EVENTBUS_CDC_FIRST_COMMIT_NUMBER", default_value_t = 1)]
    pub cdc_first_commit_number: u64,
    /// Most Subscribe streams open at once per tenant (0: no limit); more
    /// get RESOURCE_EXHAUSTED `concurrent.client.limit.exceeded`.
    #[arg(
        long,
        env = "EVENTBUS_MAX_SUBSCRIPTIONS_PER_TENANT",
        default_value_t = 0
    )]
    pub max_subscriptions_per_tenant: usize,
    /// Managed subscriptions one tenant may define (Salesforce allows 200);
    /// more get RESOURCE_EXHAUSTED `managed.subscription.limit.exceeded`.
    #[arg(
        long,
        env = "EVENTBUS_MAX_MANAGED_SUBSCRIPTIONS_PER_TENANT",
        default_value_t = 200
    )]
    pub max_managed_subscriptions_per_tenant: usize,
    /// Most bytes of JSON one schema may have (Admin API, topics folder).
    #[arg(long, env = "EVENTBUS_MAX_SCHEMA_BYTES", default_value_t = 1024 * 1024)]
    pub max_schema_bytes: usize,
    /// Most types, fields and union branches one schema may have.
    #[arg(long, env = "EVENTBUS_MAX_SCHEMA_TYPES", default_value_t = 20_000)]
    pub max_schema_types: usize,
    /// Most distinct schemas one tenant's topics may use; more get
    /// RESOURCE_EXHAUSTED `schema.limit.exceeded`.
    #[arg(long, env = "EVENTBUS_MAX_SCHEMAS_PER_TENANT", default_value_t = 1_000)]
    pub max_schemas_per_tenant: usize,
    /// Most bytes of schema JSON one tenant's schemas may add up to.
    #[arg(
        long,
        env = "EVENTBUS_MAX_SCHEMA_BYTES_PER_TENANT",
        default_value_t = 16 * 1024 * 1024
    )]
    pub max_schema_bytes_per_tenant: usize,
    /// Sustained publish rate per tenant in events/s (0: no limit); faster
    /// publishing gets RESOURCE_EXHAUSTED `service.protection.triggered`.
    #[arg(
        long,
        env = "EVENTBUS_PUBLISH_EVENTS_PER_TENANT",
        default_value_t = 0.0
    )]
    pub publish_events_per_tenant: f64,
    /// Sustained publish rate per tenant in payload bytes/s (0: no limit).
    #[arg(long, env = "EVENTBUS_PUBLISH_BYTES_PER_TENANT", default_value_t = 0.0)]
    pub publish_bytes_per_tenant: f64,
}

/// `--tls-self-signed` without a value: the `dev-tls` folder inside the
/// data folder, so generated certificates stay with the data and out of
/// the working directory. A path that starts with `<data-dir>` is resolved
/// that way in the config file and the environment too.
pub const SELF_SIGNED_IN_DATA_DIR: &str = "<data-dir>/dev-tls";

/// A path setting that may be empty (`tls_cert = ""` in the file: unset);
/// clap's own path parser refuses an empty value.
fn any_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

impl ServeArgs {
    /// Checks every setting and reports all problems at once.
    ///
    /// # Errors
    /// One message listing every invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !matches!(self.nats_replicas, 1..=5) {
            problems.push(format!(
                "EVENTBUS_NATS_REPLICAS (--nats-replicas) must be 1 to 5 (JetStream's range; 3 on a three-node cluster); got {}",
                self.nats_replicas
            ));
        }
        if self.backend == Backend::Jetstream && self.jetstream().urls.is_empty() {
            problems.push("EVENTBUS_NATS_URL (--nats-url) names no server".to_owned());
        }
        if self.nats_prefix.is_empty()
            || !self
                .nats_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(format!(
                "EVENTBUS_NATS_PREFIX (--nats-prefix) `{}` must be letters, digits, - and _",
                self.nats_prefix
            ));
        }
        for (name, v) in [
            (
                "EVENTBUS_PUBLISH_EVENTS_PER_TENANT (--publish-events-per-tenant)",
                self.publish_events_per_tenant,
            ),
            (
                "EVENTBUS_PUBLISH_BYTES_PER_TENANT (--publish-bytes-per-tenant)",
                self.publish_bytes_per_tenant,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("{name} must be 0 (no limit) or a positive rate"));
            }
        }
        if let Err(e) = self.provisioned_tenants() {
            problems.push(e);
        }
        if let Some(problem) = self.tls().problem() {
            problems.push(problem);
        }
        if self.faults_file().is_some() && !self.fault_injection {
            problems.push(
                "EVENTBUS_FAULTS_FILE (--faults-file) needs EVENTBUS_FAULT_INJECTION (--fault-injection)"
                    .to_owned(),
            );
        }
        if self.max_credit == 0 {
            problems.push("EVENTBUS_MAX_CREDIT (--max-credit) must be at least 1".to_owned());
        }
        if self.keepalive.is_zero() {
            problems.push("EVENTBUS_KEEPALIVE (--keepalive) must be longer than 0s".to_owned());
        }
        if self.keepalive > Duration::from_secs(270) {
            problems.push(format!(
                "EVENTBUS_KEEPALIVE (--keepalive) is {}; clients expect a keepalive within 270s",
                humantime::format_duration(self.keepalive)
            ));
        }
        if self.max_event_bytes == 0 {
            problems
                .push("EVENTBUS_MAX_EVENT_BYTES (--max-event-bytes) must be at least 1".to_owned());
        }
        if self.max_request_bytes < 1024 {
            problems.push(
                "EVENTBUS_MAX_REQUEST_BYTES (--max-request-bytes) must be at least 1024".to_owned(),
            );
        }
        if self.max_event_bytes > 3 * 1024 * 1024 {
            problems.push(
                "EVENTBUS_MAX_EVENT_BYTES (--max-event-bytes) may be at most 3 MiB, so every event fits a response under the 4 MiB client limit"
                    .to_owned(),
            );
        }
        if self.retention.is_zero() {
            problems.push("EVENTBUS_RETENTION (--retention) must be longer than 0s".to_owned());
        }
        if self.retention_check_interval.is_zero() {
            problems.push(
                "EVENTBUS_RETENTION_CHECK_INTERVAL (--retention-check-interval) must be longer than 0s"
                    .to_owned(),
            );
        }
        if self.wal_sync_interval.is_zero() {
            problems.push(
                "EVENTBUS_WAL_SYNC_INTERVAL (--wal-sync-interval) must be longer than 0s"
                    .to_owned(),
            );
        }
        if self.first_request_timeout.is_zero() {
            problems.push(
                "EVENTBUS_FIRST_REQUEST_TIMEOUT (--first-request-timeout) must be longer than 0s"
                    .to_owned(),
            );
        }
        if self.publish_stream_window == 0 {
            problems.push(
                "EVENTBUS_PUBLISH_STREAM_WINDOW (--publish-stream-window) must be at least 1"
                    .to_owned(),
            );
        }
        for (value, what) in [
            (
                self.max_schema_bytes,
                "EVENTBUS_MAX_SCHEMA_BYTES (--max-schema-bytes)",
            ),
            (
                self.max_schema_types,
                "EVENTBUS_MAX_SCHEMA_TYPES (--max-schema-types)",
            ),
            (
                self.max_schemas_per_tenant,
                "EVENTBUS_MAX_SCHEMAS_PER_TENANT (--max-schemas-per-tenant)",
            ),
            (
                self.max_schema_bytes_per_tenant,
                "EVENTBUS_MAX_SCHEMA_BYTES_PER_TENANT (--max-schema-bytes-per-tenant)",
            ),
        ] {
            if value == 0 {
                problems.push(format!(
                    "{what} must be at least 1: no schema could be registered"
                ));
            }
        }
        if self.max_concurrent_streams < 100 {
            problems.push(
                "EVENTBUS_MAX_CONCURRENT_STREAMS (--max-concurrent-streams) must be at least 100 (clients expect 100 per connection)"
                    .to_owned(),
            );
        }
        if self.max_connections == 0 {
            problems
                .push("EVENTBUS_MAX_CONNECTIONS (--max-connections) must be at least 1".to_owned());
        }
        for (name, v) in [
            (
                "EVENTBUS_HANDSHAKE_TIMEOUT (--handshake-timeout)",
                self.handshake_timeout,
            ),
            (
                "EVENTBUS_STUCK_CLIENT_TIMEOUT (--stuck-client-timeout)",
                self.stuck_client_timeout,
            ),
        ] {
            if v.is_zero() {
                problems.push(format!("{name} must be longer than 0s"));
            }
        }
        if self.idle_timeout <= self.keepalive {
            problems.push(format!(
                "EVENTBUS_IDLE_TIMEOUT (--idle-timeout) is {}; it must be longer than EVENTBUS_KEEPALIVE ({}), or subscriptions waiting for events would be closed as idle",
                humantime::format_duration(self.idle_timeout),
                humantime::format_duration(self.keepalive)
            ));
        }
        if self.connection_response_budget < 64 * 1024 {
            problems.push(
                "EVENTBUS_CONNECTION_RESPONSE_BUDGET (--connection-response-budget) must be at least 65536 bytes"
                    .to_owned(),
            );
        }
        if self.response_budget < self.connection_response_budget {
            problems.push(
                "EVENTBUS_RESPONSE_BUDGET (--response-budget) must be at least EVENTBUS_CONNECTION_RESPONSE_BUDGET"
                    .to_owned(),
            );
        }
        if let Err(e) = self.metrics_addr() {
            problems.push(e);
        }
        if self.session_lifetime.is_zero() {
            problems
                .push("EVENTBUS_SESSION_LIFETIME (--session-lifetime) must be more than 0".into());
        }
        if let Err(e) = self.http_addr() {
            problems.push(e);
        }
        if self.jwt_max_lifetime.is_zero() {
            problems.push(
                "EVENTBUS_JWT_MAX_LIFETIME (--jwt-max-lifetime) must be longer than 0s".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "invalid settings:\n  - {}",
                problems.join("\n  - ")
            ))
        }
    }

    /// The tenants `topics_tenants` names, each in its canonical form.
    ///
    /// # Errors
    /// A message naming every value that is not an org id.
    pub fn provisioned_tenants(&self) -> Result<Vec<crate::types::TenantId>, String> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for id in self.topics_tenants.iter().map(|s| s.trim()) {
            if id.is_empty() {
                continue;
            }
            match crate::types::TenantId::parse(id) {
                Ok(t) => out.push(t),
                Err(e) => bad.push(e),
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(format!(
                "EVENTBUS_TOPICS_TENANTS (--topics-tenants): {}",
                bad.join("; ")
            ))
        }
    }

    /// The metrics address, if metrics are on.
    ///
    /// # Errors
    /// A message when the address does not parse.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(
            &self.metrics_listen,
            "EVENTBUS_METRICS_LISTEN (--metrics-listen)",
        )
    }

    /// The HTTP(S) listener's address (`--http-listen`, else its alias
    /// `--tooling-listen`), `None` when both are empty.
    ///
    /// # Errors
    /// A message when the address does not parse, or when the two name
    /// different addresses.
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, String> {
        let http = optional_addr(&self.http_listen, "EVENTBUS_HTTP_LISTEN (--http-listen)")?;
        let tooling = optional_addr(
            &self.tooling_listen,
            "EVENTBUS_TOOLING_LISTEN (--tooling-listen, the alias of --http-listen)",
        )?;
        match (http, tooling) {
            (Some(a), Some(b)) if a != b => Err(format!(
                "EVENTBUS_HTTP_LISTEN (--http-listen) {a} and its alias EVENTBUS_TOOLING_LISTEN (--tooling-listen) {b} differ; set only --http-listen"
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// The plaintext health listener's address, `None` when it is off.
    ///
    /// # Errors
    /// A message when the address does not parse.
    pub fn health_addr(&self) -> Result<Option<SocketAddr>, String> {
        optional_addr(
            &self.health_listen,
            "EVENTBUS_HEALTH_LISTEN (--health-listen)",
        )
    }

    /// Defaults with `data_dir` set: what tests use.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut args = ServeOnly::parse_from(["eventbus"]).serve;
        args.data_dir = data_dir;
        args.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        args
    }

    /// The broker's section.
    pub fn broker(&self) -> BrokerConfig {
        BrokerConfig {
            max_credit: self.max_credit,
            keepalive: self.keepalive,
            max_event_bytes: self.max_event_bytes,
            default_retention: self.retention,
            retention_check_interval: self.retention_check_interval,
            max_managed_per_tenant: self.max_managed_subscriptions_per_tenant,
            schema_limits: crate::schema::SchemaLimits {
                max_bytes: self.max_schema_bytes,
                max_types: self.max_schema_types,
            },
            max_schemas_per_tenant: self.max_schemas_per_tenant,
            max_schema_bytes_per_tenant: self.max_schema_bytes_per_tenant,
            ..BrokerConfig::default()
        }
    }

    /// The JetStream backend's section.
    pub fn jetstream(&self) -> eventbus_jetstream::JetStreamConfig {
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        eventbus_jetstream::JetStreamConfig {
            urls: self
                .nats_url
                .iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            replicas: self.nats_replicas,
            prefix: self.nats_prefix.clone(),
            credentials_file: set(&self.nats_credentials),
            tls_ca: set(&self.nats_tls_ca),
            ..eventbus_jetstream::JetStreamConfig::default()
        }
    }

    /// The TLS section.
    pub fn tls(&self) -> crate::tls::ServerTls {
        // An empty value (`tls_cert = ""` in the file) means unset.
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        crate::tls::ServerTls {
            cert: set(&self.tls_cert),
            key: set(&self.tls_key),
            client_ca: set(&self.tls_client_ca),
            self_signed: set(&self.tls_self_signed).map(|p| match p.strip_prefix("<data-dir>") {
                Ok(rest) => self.data_dir.join(rest),
                Err(_) => p,
            }),
        }
    }

    /// The per-tenant limits.
    pub fn limits(&self) -> crate::api::limits::LimitsConfig {
        crate::api::limits::LimitsConfig {
            max_subscriptions_per_tenant: self.max_subscriptions_per_tenant,
            publish_events_per_sec: self.publish_events_per_tenant,
            publish_bytes_per_sec: self.publish_bytes_per_tenant,
        }
    }

    /// The faults file, when one is named (`""` in the config file names
    /// none).
    pub fn faults_file(&self) -> Option<&std::path::Path> {
        self.faults_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The org users file, when one is set.
    pub fn org_users_file(&self) -> Option<&std::path::Path> {
        self.org_users_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The authentication section.
    pub fn auth(&self) -> crate::auth::AuthSettings {
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        crate::auth::AuthSettings {
            mode: self.auth,
            tokens_file: path(&self.auth_tokens_file),
            jwt_secret_file: path(&self.jwt_secret_file),
            jwt_jwks_file: path(&self.jwt_jwks_file),
            jwt_issuer: self.jwt_issuer.clone(),
            jwt_audience: self.jwt_audience.clone(),
            jwt_max_lifetime: self.jwt_max_lifetime,
        }
    }

    /// The protocol layer's section.
    pub fn api(&self) -> ApiConfig {
        ApiConfig {
            publish_stream_window: self.publish_stream_window,
            first_request_timeout: self.first_request_timeout,
            stuck_client_timeout: self.stuck_client_timeout,
        }
    }

    /// How calls are paced by their connection's response budget.
    pub fn pacing(&self) -> crate::api::pacing::PacingConfig {
        crate::api::pacing::PacingConfig {
            stuck_client_timeout: self.stuck_client_timeout,
            max_request_bytes: self.max_request_bytes,
        }
    }

    /// The transport's section: connection cap, timeouts, budgets.
    pub fn transport(&self) -> crate::transport::TransportConfig {
        crate::transport::TransportConfig {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            stuck_client_timeout: self.stuck_client_timeout,
            connection_response_budget: self.connection_response_budget,
            response_budget: self.response_budget,
        }
    }
}

/// The settings alone as a command line: defaults and the environment
/// without the subcommands around them (the binary's parser is
/// [`crate::command_line::Cli`]).
#[derive(Parser)]
#[command(name = "eventbus")]
struct ServeOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

/// An address setting that may be empty (off).
fn optional_addr(value: &str, setting: &str) -> Result<Option<SocketAddr>, String> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| format!("{setting} `{value}` is not an address like 127.0.0.1:9090: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_readme() {
        let args = ServeOnly::parse_from(["eventbus"]).serve;
        args.validate().expect("defaults validate");
        assert_eq!(args.listen.to_string(), "127.0.0.1:7011");
        assert_eq!(args.max_credit, 100);
        assert_eq!(args.keepalive, Duration::from_secs(60));
        assert_eq!(args.durability, Durability::Sync);
        assert_eq!(args.jwt_max_lifetime, crate::auth::DEFAULT_JWT_MAX_LIFETIME);
        assert_eq!(
            args.metrics_topic_labels,
            crate::telemetry::metrics::TopicLabels::DefaultTenant
        );
        let transport = args.transport();
        let built_in = crate::transport::TransportConfig::default();
        assert_eq!(transport.max_connections, built_in.max_connections);
        assert_eq!(transport.handshake_timeout, built_in.handshake_timeout);
        assert_eq!(transport.idle_timeout, built_in.idle_timeout);
        assert_eq!(
            transport.stuck_client_timeout,
            built_in.stuck_client_timeout
        );
        assert_eq!(
            transport.connection_response_budget,
            built_in.connection_response_budget
        );
        assert_eq!(transport.response_budget, built_in.response_budget);
    }

    #[test]
    fn transport_settings_that_cannot_work_are_refused() {
        let mut args = ServeOnly::parse_from(["eventbus"]).serve;
        args.max_connections = 0;
        args.idle_timeout = Duration::from_secs(30);
        args.handshake_timeout = Duration::ZERO;
        args.connection_response_budget = 1024;
        args.response_budget = 512;
        let err = args.validate().expect_err("invalid");
        for needle in [
            "MAX_CONNECTIONS",
            "IDLE_TIMEOUT",
            "HANDSHAKE_TIMEOUT",
            "CONNECTION_RESPONSE_BUDGET (",
            "EVENTBUS_RESPONSE_BUDGET (",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn tls_self_signed_without_a_value_lives_in_the_data_folder() {
        let parse = |args: &[&str]| {
            ServeOnly::try_parse_from(args)
                .expect("valid flags")
                .serve
                .tls()
                .self_signed
        };
        assert_eq!(
            parse(&["eventbus", "--data-dir", "/var/eb", "--tls-self-signed"]),
            Some(PathBuf::from("/var/eb/dev-tls"))
        );
        assert_eq!(
            parse(&["eventbus", "--tls-self-signed", "--data-dir", "/var/eb"]),
            Some(PathBuf::from("/var/eb/dev-tls")),
            "a flag after it is not taken as its value"
        );
        // An explicit folder is used as given, relative to the working directory.
        assert_eq!(
            parse(&["eventbus", "--tls-self-signed", "certs"]),
            Some(PathBuf::from("certs"))
        );
        assert_eq!(parse(&["eventbus"]), None);
    }

    #[test]
    fn tooling_listen_is_an_alias_of_http_listen() {
        let mut args = ServeOnly::parse_from(["eventbus"]).serve;
        assert_eq!(args.http_addr(), Ok(None));
        args.tooling_listen = "127.0.0.1:8080".into();
        assert_eq!(
            args.http_addr(),
            Ok(Some("127.0.0.1:8080".parse().expect("addr")))
        );
        args.http_listen = "127.0.0.1:8080".into();
        assert_eq!(
            args.http_addr(),
            Ok(Some("127.0.0.1:8080".parse().expect("addr")))
        );
        args.http_listen = "127.0.0.1:9090".into();
        let err = args.http_addr().expect_err("two addresses");
        assert!(err.contains("differ"), "{err}");
        assert!(args.validate().is_err());
        let args = ServeOnly::parse_from(["eventbus", "--http-listen", "127.0.0.1:1"]).serve;
        assert_eq!(
            args.http_addr(),
            Ok(Some("127.0.0.1:1".parse().expect("addr")))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut args = ServeOnly::parse_from(["eventbus"]).serve;
        args.max_credit = 0;
        args.keepalive = Duration::ZERO;
        args.jwt_max_lifetime = Duration::ZERO;
        let err = args.validate().expect_err("invalid");
        assert!(
            err.contains("MAX_CREDIT")
                && err.contains("KEEPALIVE")
                && err.contains("JWT_MAX_LIFETIME"),
            "{err}"
        );
    }
}
