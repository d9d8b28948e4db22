//! The `token` command: access tokens and their hashes for `--auth static`.
//!
//! Owns: making tokens and hashing them. Must not: talk to a server.

use anyhow::{Context, Result, bail};
use clap::Subcommand;

/// `eventbus token …`: access tokens for `--auth static`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new random access token and print it with its SHA-256 (the
    /// token goes to the client, the hash into the tokens file).
    New,
    /// Print the SHA-256 of a token (read from stdin, so it stays out of
    /// the shell history).
    Hash,
}

/// `eventbus token …`: makes a token or hashes one read from stdin.
///
/// # Errors
/// No token on stdin.
pub fn run(cmd: TokenCommand) -> Result<()> {
    let token = match cmd {
        // 244 random bits from two v4 UUIDs: far beyond guessing.
        TokenCommand::New => format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
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
        println!("sha256: {}", crate::auth::hash_token(&token));
    } else {
        println!("{}", crate::auth::hash_token(&token));
    }
    Ok(())
}
