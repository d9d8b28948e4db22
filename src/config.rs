//! Typed settings, from flags and `EVENTBUS_*` environment variables.
//!
//! Owns: every setting, its default, its flag and variable, and `validate()`.
//! Must not: be a global; the environment is read only while parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::ApiConfig;
use crate::broker::BrokerConfig;
use crate::log::Durability;

/// Command line of the `eventbus` binary.
#[derive(Debug, Parser)]
#[command(
    name = "eventbus",
    version,
    about = "An event bus server that speaks the Salesforce Pub/Sub API (eventbus.v1.PubSub).",
    long_about = "An event bus server that speaks the Salesforce Pub/Sub API (eventbus.v1.PubSub) \
                  over gRPC, on a RocksDB topic log. Without a subcommand it runs `serve`."
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 72h: {e}"))
}

/// Settings of `eventbus serve`. Every flag also reads the environment
/// variable named in its help.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
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
    /// Keepalive interval of a subscription that has credit and nothing new.
    #[arg(long, env = "EVENTBUS_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    pub keepalive: Duration,
    /// `sync`: acknowledge after the WAL is fsynced. `buffered`: acknowledge
    /// after the write, fsync in the background (faster; a machine crash can
    /// lose the last acknowledged events).
    #[arg(long, env = "EVENTBUS_DURABILITY", default_value = "sync")]
    pub durability: Durability,
    /// How often `buffered` durability fsyncs the WAL.
    #[arg(long, env = "EVENTBUS_WAL_SYNC_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub wal_sync_interval: Duration,
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
    /// HTTP/2 concurrent streams per connection (advertised to clients).
    #[arg(long, env = "EVENTBUS_MAX_CONCURRENT_STREAMS", default_value_t = 1000)]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive ping interval (0s turns pings off).
    #[arg(long, env = "EVENTBUS_HTTP2_KEEPALIVE", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive: Duration,
    /// How long shutdown waits for open calls before abandoning them.
    #[arg(long, env = "EVENTBUS_SHUTDOWN_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_deadline: Duration,
}

impl ServeArgs {
    /// Checks every setting and reports all problems at once.
    ///
    /// # Errors
    /// One message listing every invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
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
        if self.publish_stream_window == 0 {
            problems.push(
                "EVENTBUS_PUBLISH_STREAM_WINDOW (--publish-stream-window) must be at least 1"
                    .to_owned(),
            );
        }
        if self.max_concurrent_streams < 100 {
            problems.push(
                "EVENTBUS_MAX_CONCURRENT_STREAMS (--max-concurrent-streams) must be at least 100 (clients expect 100 per connection)"
                    .to_owned(),
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

    /// Defaults with `data_dir` set: what tests use.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut args = Cli::parse_from(["eventbus"]).serve;
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
            ..BrokerConfig::default()
        }
    }

    /// The protocol layer's section.
    pub fn api(&self) -> ApiConfig {
        ApiConfig {
            publish_stream_window: self.publish_stream_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_readme() {
        let args = Cli::parse_from(["eventbus"]).serve;
        args.validate().expect("defaults validate");
        assert_eq!(args.listen.to_string(), "127.0.0.1:7011");
        assert_eq!(args.max_credit, 100);
        assert_eq!(args.keepalive, Duration::from_secs(60));
        assert_eq!(args.durability, Durability::Sync);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut args = Cli::parse_from(["eventbus"]).serve;
        args.max_credit = 0;
        args.keepalive = Duration::ZERO;
        let err = args.validate().expect_err("invalid");
        assert!(
            err.contains("MAX_CREDIT") && err.contains("KEEPALIVE"),
            "{err}"
        );
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
            None => panic!("serve subcommand expected"),
        }
    }
}
