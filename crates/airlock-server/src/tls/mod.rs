//! TLS termination: the rustls server configuration airlock serves with, the certificate it
//! presents (reloaded without a restart), and the self-signed certificate of `--self-signed`.
//!
//! What holds:
//! - TLS 1.3 and 1.2 only, with rustls' `aws-lc-rs` cipher suites (AEAD only: AES-GCM and
//!   ChaCha20-Poly1305; ECDHE key exchange, X25519MLKEM768 preferred). ALPN offers `h2` and
//!   `http/1.1`; a client that offers no ALPN is served HTTP/1.1, one whose list names neither is
//!   refused in the handshake.
//! - The certificate and key are read from PEM files (the chain in order, leaf first). A key that
//!   does not match the leaf certificate is refused. [`reload`] re-reads them on SIGHUP and when
//!   either file changes; a reload that fails keeps the certificate being served and logs an
//!   error naming the file. Handshakes started after a reload present the new certificate;
//!   connections already open are not touched.
//! - With `client_ca` (mutual TLS), a client certificate must chain to it (`required`: every
//!   client; `optional`: clients that present one). A client certificate is a transport gate
//!   only: it does not name a principal, and requests still authenticate with a token, a
//!   password or an API key.
//! - A certificate that expires within [`EXPIRY_WARNING`] is warned about at start and at every
//!   reload; an expired one is logged as an error, but the server starts (clients refuse it, which
//!   an operator notices sooner than a registry that is down). Its expiry is exported as the
//!   `airlock_tls_certificate_expiry_timestamp_seconds` gauge.

pub mod reload;
pub mod self_signed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

use crate::config::{ClientAuth, TlsConfig};

/// How close to its expiry a certificate is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The gauge holding the served certificate's expiry (Unix seconds).
pub const EXPIRY_METRIC: &str = "airlock_tls_certificate_expiry_timestamp_seconds";

/// A TLS file that cannot be used; each names the file and, where it helps, the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no usable PEM of the expected kind.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "no CERTIFICATE block".
        what: String,
    },
    /// The key is not usable or does not belong to the certificate.
    #[error("{} does not fit {}: {source}", key.display(), cert.display())]
    Key {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client CA file cannot verify client certificates.
    #[error("tls.client_ca {}: {what}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        what: String,
    },
    /// rustls refused the configuration (should not happen with the ring provider).
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be made or stored.
    #[error("self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The one crypto provider of the build ([`crate::outbound_tls::crypto_provider`]: aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(crate::outbound_tls::crypto_provider())
}

/// What the log and the start-up message say about a certificate.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// SHA-256 of the leaf certificate's DER, as colon-separated upper-case hex (what browsers
    /// and `openssl x509 -fingerprint -sha256` print).
    pub fingerprint: String,
    /// The leaf's subject, as text.
    pub subject: String,
    /// The leaf's expiry, Unix seconds.
    pub not_after: i64,
}

impl CertificateInfo {
    /// Reads what it needs from the leaf certificate.
    pub fn of(leaf: &CertificateDer<'_>, path: &Path) -> Result<Self, TlsError> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| TlsError::Pem {
                path: path.to_path_buf(),
                what: format!("the first certificate is not valid X.509: {e}"),
            })?;
        Ok(Self {
            fingerprint: fingerprint(leaf),
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.timestamp(),
        })
    }

    /// The expiry as RFC 3339 text.
    pub fn expiry_text(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.not_after)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.not_after.to_string())
    }

    /// Seconds until expiry from `now` (negative once expired).
    pub fn remaining(&self, now: i64) -> i64 {
        self.not_after - now
    }

    /// Exports the expiry as the [`EXPIRY_METRIC`] gauge.
    pub fn export(&self) {
        metrics::gauge!(EXPIRY_METRIC).set(self.not_after as f64);
    }

    /// Logs the certificate (as served from `path`), with a warning close to expiry and an error
    /// once expired, and exports its expiry as a gauge.
    pub fn report(&self, path: &Path, what: &str) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let remaining = self.remaining(now);
        self.export();
        let file = path.display().to_string();
        if remaining <= 0 {
            tracing::error!(file, fingerprint = %self.fingerprint, not_after = %self.expiry_text(),
                "{what}: the TLS certificate has EXPIRED; clients refuse it: replace {file} (it is reloaded on SIGHUP or when the file changes)");
        } else if remaining < EXPIRY_WARNING.as_secs() as i64 {
            tracing::warn!(file, fingerprint = %self.fingerprint, not_after = %self.expiry_text(),
                days_left = remaining / 86400,
                "{what}: the TLS certificate expires in less than 14 days; replace {file} (it is reloaded on SIGHUP or when the file changes)");
        } else {
            tracing::info!(file, fingerprint = %self.fingerprint, not_after = %self.expiry_text(),
                subject = %self.subject, "{what}");
        }
    }
}

/// SHA-256 fingerprint of a certificate, `AB:CD:...`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads the certificates of a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "holds no CERTIFICATE block (expected the PEM chain, leaf first)".into(),
        });
    }
    Ok(certs)
}

/// Reads the certificate chain and the key and checks that they belong together.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, CertificateInfo), TlsError> {
    let chain = read_certificates(cert)?;
    let info = CertificateInfo::of(&chain[0], cert)?;
    let key_bytes = std::fs::read(key).map_err(|source| TlsError::Read {
        path: key.to_path_buf(),
        source,
    })?;
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        what: format!("holds no usable PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let certified =
        CertifiedKey::from_der(chain, private, &provider()).map_err(|source| TlsError::Key {
            key: key.to_path_buf(),
            cert: cert.to_path_buf(),
            source,
        })?;
    Ok((Arc::new(certified), info))
}

/// The rustls configuration: TLS 1.3 and 1.2, ALPN `h2` and `http/1.1`, the certificate from
/// `resolver`, and client certificates per `tls.client_ca` / `tls.client_auth`.
pub fn server_config(
    tls: &TlsConfig,
    resolver: Arc<reload::ReloadingCertificate>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    what: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match tls.client_auth.unwrap_or_default() {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| TlsError::ClientCa {
                path: path.clone(),
                what: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What `serve` needs to terminate TLS.
pub struct Termination {
    /// The rustls configuration every handshake uses.
    pub server_config: Arc<ServerConfig>,
    /// The served certificate, for the reload task.
    pub certificate: Arc<reload::ReloadingCertificate>,
    /// How often the reload task checks the files.
    pub reload_every: Duration,
    /// The certificate served at start.
    pub info: CertificateInfo,
    /// The self-signed certificate, with `--self-signed`.
    pub self_signed: Option<self_signed::SelfSigned>,
}

/// Loads the configured certificate (or, with `--self-signed`, makes or reuses one in the data
/// directory) and builds the rustls configuration. `None`: no TLS is configured.
pub fn prepare(config: &crate::Config) -> Result<Option<Termination>, TlsError> {
    let (tls, self_signed) = match (&config.tls, config.self_signed) {
        (Some(tls), _) => (tls.clone(), None),
        (None, true) => {
            let names = self_signed::names_for(config.listen, config.access.public_url.as_deref());
            let made = self_signed::load_or_create(&config.data_dir, &names)?;
            let tls = TlsConfig {
                cert: made.cert.clone(),
                key: made.key.clone(),
                client_ca: None,
                client_auth: None,
                reload_interval_secs: 5,
            };
            (tls, Some(made))
        }
        (None, false) => return Ok(None),
    };
    let (certificate, info) = reload::ReloadingCertificate::load(&tls.cert, &tls.key)?;
    info.report(&tls.cert, "TLS certificate loaded");
    let certificate = Arc::new(certificate);
    let server_config = server_config(&tls, certificate.clone())?;
    Ok(Some(Termination {
        server_config,
        certificate,
        reload_every: Duration::from_secs(tls.reload_interval_secs),
        info,
        self_signed,
    }))
}
