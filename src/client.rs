//! Client plumbing shared by the client commands ([`crate::cli`]) and the
//! load generator ([`crate::bench`]): connecting to an eventbus, showing its
//! errors, the wall clock, and the duration syntax every client flag and
//! server setting takes.
//!
//! Owns: how a server address becomes a gRPC channel (plaintext or TLS) and
//! how a server or connection error is shown to a person (with what to do
//! about it, each cause said once).
//! Must not: know any command's arguments or output, or name the engine,
//! storage or the server: a client sees only what the wire shows.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Result, anyhow};
use tonic::transport::{Channel, Endpoint};

/// The `host:port` of the last server this process reached in plaintext:
/// when a call on it fails without an answer from the server, that server
/// is probed for speaking TLS (see [`rpc_error`]).
static PLAINTEXT_SERVER: Mutex<Option<String>> = Mutex::new(None);

/// How long the TLS probe of a failed plaintext call waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to an eventbus given as `host:port`, `http://host:port` or
/// `https://host:port`. TLS is used for `https://` and whenever `tls` names
/// a CA or a client certificate.
///
/// # Errors
/// A malformed address, unreadable TLS files, or the connection failing
/// within `timeout`.
pub async fn connect(
    server: &str,
    timeout: Duration,
    tls: &crate::tls::ClientTls,
) -> Result<Channel> {
    let wants_tls = tls.ca.is_some() || tls.cert.is_some();
    let uri = match server.split_once("://") {
        Some(("http", rest)) if wants_tls => format!("https://{rest}"),
        Some(_) => server.to_owned(),
        None if wants_tls => format!("https://{server}"),
        None => format!("http://{server}"),
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| anyhow!("`{server}` is not a server address: {e}"))?
        .connect_timeout(timeout);
    let secure = uri.starts_with("https://");
    if secure {
        let host = endpoint.uri().host().unwrap_or_default().to_owned();
        endpoint = endpoint.tls_config(tls.config(&host)?)?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow!(
            "cannot connect to eventbus at {uri}: {}",
            connect_problem(&e)
        )
    })?;
    if !secure && let Ok(mut last) = PLAINTEXT_SERVER.lock() {
        *last = uri.strip_prefix("http://").map(str::to_owned);
    }
    Ok(channel)
}

/// What went wrong connecting, with what to do about it.
fn connect_problem(e: &(dyn std::error::Error + 'static)) -> String {
    let text = chain_text(e);
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!(
            "the server's certificate is not trusted ({}): pass the CA that signed it with \
             --tls-ca FILE or EVENTBUS_TLS_CA (for a server started with --tls-self-signed DIR: \
             --tls-ca DIR/ca.pem)",
            text.rsplit(": ").next().unwrap_or(&text)
        )
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        // rustls read something that is not a TLS record: the server
        // answered in plaintext.
        "the server answered in plaintext and this client spoke TLS: use host:port or \
         http://host:port without --tls-ca/--tls-client-cert (or EVENTBUS_TLS_CA), or start \
         the server with TLS (--tls-self-signed, or --tls-cert and --tls-key)"
            .to_owned()
    } else if text.contains("Connection refused") {
        "connection refused: is the server running? start it with `eventbus serve ...`".to_owned()
    } else {
        text
    }
}

/// An error and its causes joined with ": ", each said once: a cause
/// whose text the message already contains is left out, and one that
/// repeats the previous part and adds to it replaces that part (libraries
/// often put their source's text into their own).
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    join_once(std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string))
}

/// [`chain_text`] for an [`anyhow::Error`]: what the binary prints.
pub fn error_text(e: &anyhow::Error) -> String {
    join_once(e.chain().map(ToString::to_string))
}

fn join_once(parts: impl Iterator<Item = String>) -> String {
    let mut kept: Vec<String> = Vec::new();
    for part in parts {
        let part = part.trim().to_owned();
        if part.is_empty() || kept.iter().any(|k| k.contains(&part)) {
            continue;
        }
        match kept.last_mut() {
            Some(last) if part.contains(last.as_str()) => *last = part,
            _ => kept.push(part),
        }
    }
    kept.join(": ")
}

/// Whether the server at `addr` answers the HTTP/2 preface of a plaintext
/// client with TLS (a TLS alert or handshake record).
fn speaks_tls(addr: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&sock, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = s.set_write_timeout(Some(PROBE_TIMEOUT));
    // The client preface, then an empty SETTINGS frame.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    if s.write_all(&hello).is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    // TLS record types: 0x15 alert, 0x16 handshake. An HTTP/2 server
    // answers with a frame, whose length starts with 0x00.
    matches!(s.read(&mut first), Ok(1) if matches!(first[0], 0x15 | 0x16))
}

/// Explains a server error with its error code. A call that failed
/// without an answer from the server (no `error-code`) on a plaintext
/// connection to a server that speaks TLS says so, with what to pass.
///
/// The probe blocks the calling thread for at most a few seconds, on
/// this error path only, before the command ends.
pub fn rpc_error(what: &str, st: tonic::Status) -> anyhow::Error {
    let no_answer = st.metadata().get("error-code").is_none()
        && matches!(
            st.code(),
            tonic::Code::Cancelled
                | tonic::Code::Unknown
                | tonic::Code::Unavailable
                | tonic::Code::Internal
        );
    if no_answer {
        let server = PLAINTEXT_SERVER.lock().ok().and_then(|s| s.clone());
        if let Some(server) = server
            && speaks_tls(&server)
        {
            return anyhow!(
                "{what} failed: the server at {server} seems to speak TLS and this client spoke \
                 plaintext: use https://{server} and --tls-ca FILE or EVENTBUS_TLS_CA with the CA \
                 that signed its certificate (for a server started with --tls-self-signed DIR: \
                 --tls-ca DIR/ca.pem)"
            );
        }
    }
    let code = st
        .metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    anyhow!(
        "{what} failed: {:?}: {} (error-code: {code})",
        st.code(),
        st.message()
    )
}

/// Current wall-clock time, epoch milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses a duration the way every setting and client flag takes one
/// (`30s`, `5m`, `72h`, `100ms`).
///
/// # Errors
/// A message naming the value and the expected form.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 72h: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        let parts = [
            "cannot connect to eventbus at http://127.0.0.1:1",
            "transport error",
            "tcp connect error",
            "tcp connect error: Connection refused (os error 111)",
            "Connection refused (os error 111)",
        ];
        assert_eq!(
            join_once(parts.iter().map(|s| (*s).to_owned())),
            "cannot connect to eventbus at http://127.0.0.1:1: transport error: tcp connect error: Connection refused (os error 111)"
        );
        let plaintext = "transport error: received corrupt message of type InvalidContentType";
        assert!(
            connect_problem(&std::io::Error::other(plaintext)).contains("answered in plaintext")
        );
        let twice = [
            "invalid peer certificate: UnknownIssuer",
            "invalid peer certificate: UnknownIssuer",
        ];
        assert_eq!(
            join_once(twice.iter().map(|s| (*s).to_owned())),
            "invalid peer certificate: UnknownIssuer"
        );
    }
}
