//! TLS for the gRPC listener and for our own clients (CLI, bench, tests).
//!
//! Owns: reading PEM files into rustls server configurations (the gRPC
//! listener's and the Tooling endpoint's) and tonic's client one, mutual-TLS
//! client verification, and the development certificate authority that
//! `--tls-self-signed DIR` creates once and reuses. Must not: know about
//! topics, tenants or tokens (authentication lives elsewhere).
//!
//! rustls runs on ring, the one crypto provider of the whole tree; the gRPC
//! listener offers ALPN `h2` and rustls negotiates TLS 1.2 or 1.3.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// File names inside a `--tls-self-signed` folder.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The development CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The server certificate, signed by the development CA.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// The server certificate's private key (mode 0600).
pub const SERVER_KEY_FILE: &str = "server-key.pem";

/// Names the development server certificate is valid for: what a client on
/// the same machine dials.
pub const DEV_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Common name of the development CA; also what rebuilds its issuer.
const DEV_CA_NAME: &str = "eventbus development CA";

/// Errors preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{0}")]
    Invalid(String),
    /// Certificate generation failed.
    #[error("could not generate a development certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where the server's TLS material comes from.
#[derive(Debug, Clone, Default)]
pub struct ServerTls {
    /// PEM certificate chain (leaf first).
    pub cert: Option<PathBuf>,
    /// PEM private key of the leaf.
    pub key: Option<PathBuf>,
    /// PEM CA bundle: when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// Folder of the development CA and server certificate (created on
    /// first use, reused after).
    pub self_signed: Option<PathBuf>,
}

impl ServerTls {
    /// Checks that the settings fit together; `None` when they do.
    pub fn problem(&self) -> Option<String> {
        match (&self.cert, &self.key, &self.self_signed) {
            (Some(_), None, _) => Some(
                "EVENTBUS_TLS_CERT (--tls-cert) needs EVENTBUS_TLS_KEY (--tls-key) too".to_owned(),
            ),
            (None, Some(_), _) => Some(
                "EVENTBUS_TLS_KEY (--tls-key) needs EVENTBUS_TLS_CERT (--tls-cert) too".to_owned(),
            ),
            (Some(_), Some(_), Some(_)) => Some(
                "EVENTBUS_TLS_SELF_SIGNED (--tls-self-signed) and EVENTBUS_TLS_CERT/KEY are alternatives; set one".to_owned(),
            ),
            (None, None, None) if self.client_ca.is_some() => Some(
                "EVENTBUS_TLS_CLIENT_CA (--tls-client-ca) needs TLS on: set EVENTBUS_TLS_CERT and EVENTBUS_TLS_KEY or EVENTBUS_TLS_SELF_SIGNED".to_owned(),
            ),
            _ => None,
        }
    }

    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.self_signed.is_some()
    }

    /// The certificate and key files in use, `None` for plaintext (with
    /// `self_signed`, created first when missing).
    fn identity_files(&self) -> Result<Option<(PathBuf, PathBuf)>, TlsError> {
        Ok(match (&self.cert, &self.key, &self.self_signed) {
            (Some(cert), Some(key), _) => Some((cert.clone(), key.clone())),
            (_, _, Some(dir)) => {
                let dev = DevCa::ensure(dir)?;
                Some((dev.server_cert, dev.server_key))
            }
            _ => None,
        })
    }

    /// A rustls configuration for the plain-HTTP side endpoints (the
    /// Tooling API), with the same certificate as the gRPC listener and
    /// HTTP/1.1 only; `None` for plaintext. Callers there authenticate with
    /// a bearer token, so no client certificate is asked for.
    ///
    /// # Errors
    /// As [`ServerTls::server_config`].
    pub fn http_config(
        &self,
    ) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>, TlsError> {
        self.rustls_config(b"http/1.1", false)
    }

    /// The gRPC listener's rustls configuration (ALPN `h2`; with
    /// `client_ca`, a client certificate signed by it is required), or
    /// `None` for plaintext. With `self_signed`, creates the development CA
    /// and certificate first when the folder does not hold them yet. The
    /// server does the handshakes itself (`transport::accept`), under its
    /// handshake timeout.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that is missing, unreadable or invalid.
    pub fn server_config(
        &self,
    ) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>, TlsError> {
        self.rustls_config(b"h2", true)
    }

    fn rustls_config(
        &self,
        alpn: &[u8],
        client_auth: bool,
    ) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>, TlsError> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let Some((cert, key)) = self.identity_files()? else {
            return Ok(None);
        };
        let cert_pem = read_pem(&cert, "TLS certificate", "CERTIFICATE")?;
        let key_pem = read_pem(&key, "TLS private key", "PRIVATE KEY")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Invalid(format!("TLS certificate {}: {e}", cert.display())))?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError::Invalid(format!("TLS private key {}: {e}", key.display())))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(format!("TLS: {e}")))?;
        let builder = match self.client_ca.as_ref().filter(|_| client_auth) {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let ca_pem = read_pem(ca, "TLS client CA", "CERTIFICATE")?;
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&ca_pem) {
                    let c = c.map_err(|e| {
                        TlsError::Invalid(format!("TLS client CA {}: {e}", ca.display()))
                    })?;
                    roots.add(c).map_err(|e| {
                        TlsError::Invalid(format!("TLS client CA {}: {e}", ca.display()))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    std::sync::Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Invalid(format!("TLS client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key_der)
            .map_err(|e| TlsError::Invalid(format!("TLS certificate {}: {e}", cert.display())))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Some(std::sync::Arc::new(config)))
    }
}

/// Reads a PEM file and checks it holds a block of the expected kind, so a
/// swapped certificate and key fail at startup with the file's name.
fn read_pem(path: &Path, what: &'static str, kind: &str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Io {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_kind = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.contains(kind));
    if !has_kind {
        return Err(TlsError::Invalid(format!(
            "{what} {} holds no PEM `{kind}` block",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The development certificate authority in a `--tls-self-signed` folder.
#[derive(Debug, Clone)]
pub struct DevCa {
    /// The CA certificate clients trust.
    pub ca_cert: PathBuf,
    /// The CA's private key (signs the server and client certificates).
    pub ca_key: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
}

impl DevCa {
    /// The file paths under `dir`, whether or not they exist.
    pub fn paths(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join(CA_CERT_FILE),
            ca_key: dir.join(CA_KEY_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
        }
    }

    /// Reuses the CA and server certificate in `dir`, or creates all four
    /// files when any is missing (a half-written folder is never trusted).
    ///
    /// # Errors
    /// [`TlsError`] when the folder cannot be written or generation fails.
    pub fn ensure(dir: &Path) -> Result<Self, TlsError> {
        let dev = Self::paths(dir);
        let all = [&dev.ca_cert, &dev.ca_key, &dev.server_cert, &dev.server_key];
        if all.iter().all(|p| p.is_file()) {
            tracing::info!(ca = %dev.ca_cert.display(), "reusing the development TLS certificates");
            return Ok(dev);
        }
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            what: "cannot create the TLS folder",
            path: dir.display().to_string(),
            source,
        })?;
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let mut params = CertificateParams::new(DEV_SERVER_NAMES.map(str::to_owned).to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "eventbus development server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = params.signed_by(&server_key, &issuer)?;
        write_file(&dev.ca_key, &ca_key.serialize_pem(), true)?;
        write_file(&dev.server_key, &server_key.serialize_pem(), true)?;
        write_file(&dev.server_cert, &server_cert.pem(), false)?;
        // The CA certificate goes last: its presence marks a complete folder.
        write_file(&dev.ca_cert, &ca_cert.pem(), false)?;
        tracing::info!(
            ca = %dev.ca_cert.display(),
            names = ?DEV_SERVER_NAMES,
            "created development TLS certificates; clients trust the CA file"
        );
        Ok(dev)
    }

    /// Issues a client certificate for `name`, signed by this CA, for mutual
    /// TLS in development and tests. Returns (certificate PEM, key PEM).
    ///
    /// # Errors
    /// [`TlsError`] when the CA key cannot be read or signing fails.
    pub fn issue_client(&self, name: &str) -> Result<(String, String), TlsError> {
        let key_pem = std::fs::read_to_string(&self.ca_key).map_err(|source| TlsError::Io {
            what: "cannot read the development CA key",
            path: self.ca_key.display().to_string(),
            source,
        })?;
        let ca_key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The development CA's parameters. Deterministic, so the issuer can be
/// rebuilt from the stored key to sign more certificates later.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, DEV_CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        what: "cannot write",
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// TLS settings of a client (CLI, bench, tests).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM CA bundle to trust for the server's certificate.
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    pub cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// The tonic client configuration for a server reached as `host`.
    ///
    /// # Errors
    /// [`TlsError`] naming an unreadable or invalid file, or a certificate
    /// without its key.
    pub fn config(&self, host: &str) -> Result<ClientTlsConfig, TlsError> {
        // Addresses in URIs come bracketed (`[::1]`); certificates name the
        // bare address.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut config = ClientTlsConfig::new().domain_name(host);
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(Certificate::from_pem(read_pem(
                ca,
                "TLS CA",
                "CERTIFICATE",
            )?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let cert = read_pem(cert, "TLS client certificate", "CERTIFICATE")?;
                let key = read_pem(key, "TLS client key", "PRIVATE KEY")?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => {
                return Err(TlsError::Invalid(
                    "a TLS client certificate needs its key and the other way round".to_owned(),
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_ca_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DevCa::ensure(dir.path()).expect("create");
        let ca = std::fs::read(&first.ca_cert).expect("ca");
        let again = DevCa::ensure(dir.path()).expect("reuse");
        assert_eq!(std::fs::read(&again.ca_cert).expect("ca"), ca);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.ca_key)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private keys are owner-only");
        let (cert, key) = first.issue_client("alice").expect("client cert");
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
    }

    #[test]
    fn a_half_written_folder_is_regenerated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DevCa::ensure(dir.path()).expect("create");
        let ca = std::fs::read(&first.ca_cert).expect("ca");
        std::fs::remove_file(&first.server_key).expect("rm");
        let again = DevCa::ensure(dir.path()).expect("regenerate");
        assert_ne!(std::fs::read(&again.ca_cert).expect("ca"), ca);
    }

    #[test]
    fn settings_that_do_not_fit_are_named() {
        let cert_only = ServerTls {
            cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(cert_only.problem().is_some_and(|p| p.contains("TLS_KEY")));
        let ca_only = ServerTls {
            client_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(
            ca_only
                .problem()
                .is_some_and(|p| p.contains("TLS_CLIENT_CA"))
        );
        assert!(ServerTls::default().problem().is_none());
        assert!(!ServerTls::default().enabled());
    }

    #[test]
    fn a_key_file_given_as_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = DevCa::ensure(dir.path()).expect("create");
        let swapped = ServerTls {
            cert: Some(dev.server_key.clone()),
            key: Some(dev.server_cert),
            ..Default::default()
        };
        let err = swapped.server_config().expect_err("swapped files");
        assert!(err.to_string().contains("server-key.pem"), "{err}");
    }
}
