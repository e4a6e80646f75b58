//! TLS for the connections airlock makes itself: the CLI's requests to a server, webhook
//! deliveries and OIDC JWKS fetches. Every HTTP client in the workspace is built from
//! [`client_builder`], so they all verify servers the same way.
//!
//! What holds:
//! - One crypto provider, rustls' `aws-lc-rs` (post-quantum hybrid key exchange X25519MLKEM768
//!   preferred), installed as the process default by [`install_crypto_provider`] before any client
//!   is built.
//! - [`Trust::System`] verifies against the operating system's roots (rustls-platform-verifier:
//!   the system trust store, with hostname checks); [`Trust::PrivateCa`] verifies against the
//!   given CA certificates ONLY (the system roots are not consulted, so a private CA pins the
//!   server to that CA); [`Trust::Insecure`] checks nothing and exists for lab use only.
//! - TLS 1.2 is the lowest version offered.
//! - [`TlsFailure::find`] walks an error's source chain to the rustls error, so callers can
//!   print "the server's certificate has expired" instead of a nested transport error.

use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::error::Error as StdError;

/// The crypto provider of every TLS connection airlock makes or accepts: rustls' `aws-lc-rs`, the
/// build's one provider (it offers the post-quantum hybrid key exchange X25519MLKEM768, first).
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Installs [`crypto_provider`] as the process default once (later calls do nothing). Called by
/// [`client_builder`]; safe to call from anywhere, any number of times.
pub fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means a provider is already installed; the build holds only aws-lc-rs, so it is that.
        let _ = crypto_provider().install_default();
    });
}

/// Which server certificates a client accepts.
#[derive(Clone, Default)]
pub enum Trust {
    /// The operating system's trust store (rustls-platform-verifier).
    #[default]
    System,
    /// Only certificates issued by these CA certificates (the system roots are not used).
    PrivateCa(PrivateCa),
    /// Any certificate, unchecked. Lab use only: anyone on the path can read and change the
    /// connection.
    Insecure,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::System => f.write_str("System"),
            Trust::PrivateCa(ca) => write!(f, "PrivateCa({} certificates)", ca.certs.len()),
            Trust::Insecure => f.write_str("Insecure"),
        }
    }
}

/// CA certificates parsed from PEM, with the PEM text they came from (to store it again).
#[derive(Clone)]
pub struct PrivateCa {
    pem: String,
    certs: Vec<CertificateDer<'static>>,
}

/// A CA certificate file or PEM text that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    /// The PEM could not be parsed.
    #[error("the CA certificate is not valid PEM: {0}")]
    Pem(String),
    /// The PEM holds no `CERTIFICATE` block.
    #[error(
        "the CA certificate holds no PEM CERTIFICATE block (expected -----BEGIN CERTIFICATE-----)"
    )]
    Empty,
}

impl PrivateCa {
    /// Parses one or more PEM `CERTIFICATE` blocks (other blocks are ignored).
    pub fn from_pem(pem: &str) -> Result<Self, CaCertError> {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaCertError::Pem(e.to_string()))?;
        if certs.is_empty() {
            return Err(CaCertError::Empty);
        }
        Ok(Self {
            pem: pem.to_string(),
            certs,
        })
    }

    /// The PEM text these certificates were parsed from.
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// A reqwest client builder that verifies servers as `trust` says, over rustls with the aws-lc-rs
/// provider, TLS 1.2 or newer. Callers add their own timeouts, redirects, resolver and headers.
pub fn client_builder(trust: &Trust) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_version_min(reqwest::tls::Version::TLS_1_2);
    match trust {
        Trust::System if system_roots_usable() => builder,
        // No system trust store: every https server is refused as untrusted (fail closed), and
        // plaintext URLs and the rest of the process keep working.
        Trust::System => builder.tls_certs_only(Vec::new()),
        Trust::PrivateCa(ca) => builder.tls_certs_only(
            ca.certs
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
        ),
        Trust::Insecure => builder.tls_danger_accept_invalid_certs(true),
    }
}

/// Whether the operating system's trust store can be loaded (probed once per process). Without
/// it (no `ca-certificates`, an empty `SSL_CERT_FILE`) a client on the system roots cannot even
/// be built; airlock then warns once and refuses every https server such a client would reach,
/// instead of failing to start or failing plaintext requests too.
fn system_roots_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(
        || match reqwest::Client::builder().tls_backend_rustls().build() {
            Ok(_) => true,
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                tracing::warn!(
                    "the system's CA certificates cannot be loaded ({cause}): https connections \
                     that rely on them (webhooks, OIDC JWKS, the CLI without --ca-cert) will be \
                     refused; install the ca-certificates package or give a CA explicitly"
                );
                false
            }
        },
    )
}

/// Why a TLS connection failed, as found in an error's source chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate does not chain to a trusted root.
    Untrusted,
    /// The certificate (or one in its chain) has expired.
    Expired,
    /// The certificate is not valid yet (or the local clock is wrong).
    NotYetValid,
    /// The certificate is not for the host name connected to.
    WrongName {
        /// The names the certificate presents, where known.
        presented: Vec<String>,
    },
    /// The certificate was revoked.
    Revoked,
    /// Another certificate problem (rustls' description).
    BadCertificate(String),
    /// The server refused the handshake (e.g. it requires a client certificate).
    Refused(String),
    /// The other side does not speak TLS (for example a plain `http://` server).
    NotTls,
    /// Another TLS error (rustls' description).
    Other(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::Untrusted => f.write_str(
                "the server's certificate is not trusted (it is not issued by a trusted CA)",
            ),
            TlsFailure::Expired => f.write_str("the server's certificate has expired"),
            TlsFailure::NotYetValid => f.write_str(
                "the server's certificate is not valid yet (check this machine's clock)",
            ),
            TlsFailure::WrongName { presented } if presented.is_empty() => {
                f.write_str("the server's certificate is not for this host name")
            }
            TlsFailure::WrongName { presented } => write!(
                f,
                "the server's certificate is not for this host name (it names {})",
                presented.join(", ")
            ),
            TlsFailure::Revoked => f.write_str("the server's certificate has been revoked"),
            TlsFailure::BadCertificate(why) => {
                write!(f, "the server's certificate is not acceptable: {why}")
            }
            TlsFailure::Refused(alert) => write!(
                f,
                "the server refused the TLS handshake ({alert}); it may require a client certificate"
            ),
            TlsFailure::NotTls => f.write_str(
                "the server did not answer in TLS; if it serves plain HTTP use an http:// URL",
            ),
            TlsFailure::Other(why) => write!(f, "the TLS connection failed: {why}"),
        }
    }
}

impl TlsFailure {
    /// The TLS failure in `err`'s source chain, if there is one.
    ///
    /// `std::io::Error::source` skips the error it wraps, so an I/O error's inner error is
    /// inspected too (tokio-rustls reports handshake failures as I/O errors around rustls').
    pub fn find(err: &(dyn StdError + 'static)) -> Option<Self> {
        let mut current: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(error) = current {
            if let Some(tls) = error.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(tls));
            }
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
                && let Some(found) = Self::find(inner)
            {
                return Some(found);
            }
            current = error.source();
        }
        None
    }

    /// The failure a rustls error stands for.
    pub fn from_rustls(err: &rustls::Error) -> Self {
        match err {
            rustls::Error::InvalidCertificate(cert) => Self::from_certificate_error(cert),
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsFailure::NotTls
            }
            rustls::Error::AlertReceived(alert) => Self::from_alert(*alert),
            other => TlsFailure::Other(other.to_string()),
        }
    }

    fn from_alert(alert: AlertDescription) -> Self {
        match alert {
            AlertDescription::CertificateExpired => TlsFailure::Expired,
            AlertDescription::UnknownCA => TlsFailure::Untrusted,
            AlertDescription::CertificateRevoked => TlsFailure::Revoked,
            other => TlsFailure::Refused(format!("{other:?}")),
        }
    }

    fn from_certificate_error(err: &CertificateError) -> Self {
        match err {
            // A bad signature on the chain: a CA of the issuer's name, but not the trusted one.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsFailure::Untrusted
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotYetValid
            }
            CertificateError::NotValidForName => TlsFailure::WrongName {
                presented: Vec::new(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => TlsFailure::WrongName {
                presented: presented.clone(),
            },
            CertificateError::Revoked => TlsFailure::Revoked,
            other => TlsFailure::BadCertificate(other.to_string()),
        }
    }

    /// Whether the failure is about the certificate's trust (so a CA choice can fix it).
    pub fn is_trust_problem(&self) -> bool {
        matches!(self, TlsFailure::Untrusted | TlsFailure::BadCertificate(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_ca_needs_a_certificate_block() {
        assert!(matches!(
            PrivateCa::from_pem("not pem at all"),
            Err(CaCertError::Empty)
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca = PrivateCa::from_pem(&cert.pem()).unwrap();
        assert_eq!(ca.certs.len(), 1);
        assert_eq!(ca.pem(), cert.pem());
    }

    #[test]
    fn certificate_errors_are_found_inside_io_errors() {
        // tokio-rustls wraps the rustls error in an io::Error, whose source() skips it.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        let outer = anyhow_like(io);
        assert_eq!(TlsFailure::find(outer.as_ref()), Some(TlsFailure::Expired));
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(
            TlsFailure::find(&unknown),
            Some(TlsFailure::Untrusted),
            "found at the top too"
        );
        let plain = std::io::Error::other("connection refused");
        assert_eq!(TlsFailure::find(&plain), None);
    }

    /// An error whose source is `inner`, as a transport error chain has.
    fn anyhow_like(inner: std::io::Error) -> Box<dyn StdError + 'static> {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        Box::new(Outer(inner))
    }

    #[test]
    fn failures_read_as_sentences() {
        assert_eq!(
            TlsFailure::Expired.to_string(),
            "the server's certificate has expired"
        );
        assert!(TlsFailure::Untrusted.to_string().contains("not trusted"));
        assert!(TlsFailure::Untrusted.is_trust_problem());
        assert!(!TlsFailure::Expired.is_trust_problem());
    }
}
