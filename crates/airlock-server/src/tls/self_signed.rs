//! `airlock serve --self-signed`: a certificate for trying TLS out without a CA. Made once (ECDSA
//! P-256, valid for [`VALIDITY_DAYS`]) in `<data_dir>/tls/` (`self-signed.crt`, and
//! `self-signed.key` with mode 0600) for the names airlock is reached at — the listen address
//! (for an unspecified one, the host name), `localhost`, `127.0.0.1` and `::1`, and the host of
//! `access.public_url` — and reused on later starts. An expired one is replaced (with a warning);
//! a damaged one is an error (delete both files to make a new one). Clients pin it or add it to
//! their trusted roots; it is no substitute for a certificate from a CA.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{CertificateInfo, TlsError, read_certificates};

/// How long a self-signed certificate is valid.
pub const VALIDITY_DAYS: i64 = 365;

/// The certificate and key files, and what happened to them.
#[derive(Debug)]
pub struct SelfSigned {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The key (PEM, mode 0600).
    pub key: PathBuf,
    /// The certificate's fingerprint and expiry.
    pub info: CertificateInfo,
    /// Whether this start made it (first start, or the previous one had expired).
    pub created: bool,
}

/// The names a self-signed certificate for `listen` covers.
pub fn names_for(listen: SocketAddr, public_url: Option<&str>) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if listen.ip().is_unspecified() {
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_string());
        }
    } else {
        names.push(listen.ip().to_string());
    }
    if let Some(host) = public_url
        .and_then(|url| url.split("://").nth(1))
        .and_then(|rest| rest.split(['/', '?']).next())
    {
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        names.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        );
    }
    names.retain(|n| !n.is_empty());
    let mut unique = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
}

/// Reuses the self-signed certificate in `data_dir`, or makes one for `names`.
pub fn load_or_create(data_dir: &Path, names: &[String]) -> Result<SelfSigned, TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if cert.exists() || key.exists() {
        let chain = read_certificates(&cert)?;
        let info = CertificateInfo::of(&chain[0], &cert)?;
        if info.remaining(now) > 0 {
            super::load_certified_key(&cert, &key)?;
            return Ok(SelfSigned {
                cert,
                key,
                info,
                created: false,
            });
        }
        tracing::warn!(file = %cert.display(), expired = %info.expiry_text(),
            "the self-signed certificate has expired: making a new one (clients that pinned the old one must pin the new fingerprint)");
        for file in [&cert, &key] {
            if let Err(err) = std::fs::remove_file(file)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                return Err(TlsError::SelfSigned(format!(
                    "cannot remove {}: {err}",
                    file.display()
                )));
            }
        }
    }
    create(&dir, &cert, &key, names)?;
    let chain = read_certificates(&cert)?;
    let info = CertificateInfo::of(&chain[0], &cert)?;
    Ok(SelfSigned {
        cert,
        key,
        info,
        created: true,
    })
}

fn create(dir: &Path, cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| TlsError::SelfSigned(format!("{what}: {e}"));
    std::fs::create_dir_all(dir)
        .map_err(|e| failed(&format!("cannot create {}", dir.display()), &e))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| failed("a listen name is not usable in a certificate", &e))?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "airlock self-signed");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let pair = rcgen::KeyPair::generate().map_err(|e| failed("cannot generate a key", &e))?;
    let certificate = params
        .self_signed(&pair)
        .map_err(|e| failed("cannot sign the certificate", &e))?;
    write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| TlsError::SelfSigned(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError::SelfSigned(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_loopback_the_listen_address_and_the_public_host() {
        let names = names_for(
            "192.0.2.7:5000".parse().unwrap(),
            Some("https://registry.example.com:8443/x"),
        );
        for name in [
            "localhost",
            "127.0.0.1",
            "::1",
            "192.0.2.7",
            "registry.example.com",
        ] {
            assert!(
                names.contains(&name.to_string()),
                "{name} missing from {names:?}"
            );
        }
        let loopback = names_for("127.0.0.1:0".parse().unwrap(), None);
        assert_eq!(loopback, ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile_dir("reuse");
        let names = names_for("127.0.0.1:0".parse().unwrap(), None);
        let first = load_or_create(&dir, &names).unwrap();
        assert!(first.created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_create(&dir, &names).unwrap();
        assert!(!second.created);
        assert_eq!(first.info.fingerprint, second.info.fingerprint);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "airlock-self-signed-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
