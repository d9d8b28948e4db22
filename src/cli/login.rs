//! The `login` command: logs in to an eventbus (or a Salesforce org) over
//! OAuth and prints the session for scripts.
//!
//! Owns: the OAuth 2.0 token request (`password` grant with a username,
//! `client_credentials` without), over HTTP or HTTPS, and printing the
//! access token. Must not: know the server's side of login.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::parse_duration;

/// `eventbus login …`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  printf %s \"$PASSWORD\" | eventbus login --url http://127.0.0.1:8080 --username me@acme.example
  export EVENTBUS_ACCESS_TOKEN=$(eventbus login --url http://127.0.0.1:8080 --client-id app --client-secret-stdin < secret)

The password (with the security token appended) is read from stdin, so it stays out of the \
shell history; the access token is printed on stdout, the instance URL on stderr.")]
pub struct LoginArgs {
    /// The login URL: the server's HTTP listener (`--http-listen`), e.g.
    /// `http://127.0.0.1:8080` or `https://localhost:8443`.
    #[arg(long, env = "EVENTBUS_LOGIN_URL")]
    pub url: String,
    /// The username (OAuth `password` grant, password from stdin); without
    /// it, the `client_credentials` grant of `--client-id`.
    #[arg(long)]
    pub username: Option<String>,
    /// The connected app's client id (consumer key).
    #[arg(long, env = "EVENTBUS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The connected app's client secret. Prefer the environment variable
    /// or `--client-secret-stdin`: flags show up in the process list.
    #[arg(long, env = "EVENTBUS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Read the client secret from stdin (`client_credentials` only).
    #[arg(long, conflicts_with = "username")]
    pub client_secret_stdin: bool,
    /// Print the whole token answer as JSON instead of the access token.
    #[arg(long)]
    pub json: bool,
    /// PEM CA bundle to trust for an `https://` URL (for a
    /// `--tls-self-signed DIR` server: `DIR/ca.pem`).
    #[arg(long, env = "EVENTBUS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Deadline of the whole exchange.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn stdin_secret(what: &str) -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    if text.is_empty() {
        bail!(
            "no {what} on stdin: pipe it in, for example `printf %s \"$SECRET\" | eventbus login ...`"
        );
    }
    Ok(text)
}

/// Scheme, host, port of a login URL.
fn parse_url(url: &str) -> Result<(bool, String, u16)> {
    let (tls, rest) = match url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        _ => bail!("--url `{url}` must start with http:// or https://"),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => (
            h.to_owned(),
            p.parse()
                .map_err(|_| anyhow!("--url `{url}`: `{p}` is not a port"))?,
        ),
        _ => (authority.to_owned(), if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        bail!("--url `{url}` names no host");
    }
    Ok((tls, host, port))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> Result<Vec<u8>> {
    s.write_all(request)
        .await
        .context("cannot send the login request")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .context("cannot read the login answer")?;
    Ok(raw)
}

/// POSTs `form` to `{url}/services/oauth2/token`; the status and body.
async fn post_token(args: &LoginArgs, form: &str) -> Result<(u16, String)> {
    let (tls, host, port) = parse_url(&args.url)?;
    let request = format!(
        "POST /services/oauth2/token HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    let raw = if tls {
        use tokio_rustls::rustls;
        let ca = args.tls_ca.as_ref().ok_or_else(|| {
            anyhow!("an https:// login URL needs --tls-ca FILE (EVENTBUS_TLS_CA): the CA that signed the server's certificate")
        })?;
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.with_context(|| format!("{}: not a PEM certificate", ca.display()))?)
                .with_context(|| format!("{}: not a CA certificate", ca.display()))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| anyhow!("--url host `{host}`: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS with {} failed", args.url))?;
        exchange(stream, request.as_bytes()).await?
    } else {
        exchange(tcp, request.as_bytes()).await?
    };
    let text = String::from_utf8(raw).context("the answer is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("the answer from {} is not HTTP", args.url))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("the answer from {} is not HTTP", args.url))?;
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        bail!(
            "the answer from {} is chunked, which this client does not read",
            args.url
        );
    }
    Ok((status, body.to_owned()))
}

/// Runs `eventbus login`.
///
/// # Errors
/// Bad arguments, the server unreachable, or the login refused (with
/// Salesforce's error and description).
pub async fn run(args: LoginArgs) -> Result<()> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    let client_secret = match (args.client_secret_stdin, &args.client_secret) {
        (true, _) => Some(stdin_secret("client secret")?),
        (false, s) => s.clone(),
    };
    match &args.username {
        Some(username) => {
            let password = stdin_secret("password")?;
            form.append_pair("grant_type", "password")
                .append_pair("username", username)
                .append_pair("password", &password);
        }
        None => {
            if args.client_id.is_none() || client_secret.is_none() {
                bail!(
                    "give --username (password grant) or --client-id with a client secret (client_credentials grant)"
                );
            }
            form.append_pair("grant_type", "client_credentials");
        }
    }
    if let Some(id) = &args.client_id {
        form.append_pair("client_id", id);
    }
    if let Some(secret) = &client_secret {
        form.append_pair("client_secret", secret);
    }
    let form = form.finish();
    let (status, body) = tokio::time::timeout(args.timeout, post_token(&args, &form))
        .await
        .map_err(|_| anyhow!("no answer from {} within {:?}", args.url, args.timeout))??;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 200 {
        match (json["error"].as_str(), json["error_description"].as_str()) {
            (Some(e), Some(d)) => bail!("login refused ({status}): {e}: {d}"),
            _ => bail!("login refused ({status}): {}", body.trim()),
        }
    }
    let token = json["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("the answer has no access_token: {}", body.trim()))?;
    if args.json {
        println!("{json}");
    } else {
        println!("{token}");
    }
    if let Some(url) = json["instance_url"].as_str() {
        eprintln!("logged in; instance URL {url}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls_name_scheme_host_and_port() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080").ok(),
            Some((false, "127.0.0.1".into(), 8080))
        );
        assert_eq!(
            parse_url("https://localhost/").ok(),
            Some((true, "localhost".into(), 443))
        );
        assert_eq!(
            parse_url("https://[::1]:8443/x").ok(),
            Some((true, "[::1]".into(), 8443))
        );
        assert_eq!(
            parse_url("http://[::1]").ok(),
            Some((false, "[::1]".into(), 80))
        );
        assert!(parse_url("localhost:8080").is_err());
        assert!(parse_url("http://:80").is_err());
        assert!(parse_url("http://h:port").is_err());
    }
}
