//! The certificate airlock presents, replaced while it runs: on SIGHUP, and when the certificate
//! or key file changes (their size, modification time and inode are checked every
//! `tls.reload_interval_secs`). Each handshake asks [`ReloadingCertificate`] for the current
//! certificate, so new connections get the new one and open connections keep theirs. A reload
//! that fails (unreadable file, bad PEM, a key that does not match) keeps the current certificate
//! and logs an error naming the file; the next change or SIGHUP tries again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{CertificateInfo, TlsError, load_certified_key};

/// The served certificate and the files it comes from.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    /// Loads the certificate and key; fails if they cannot be served.
    pub fn load(cert: &Path, key: &Path) -> Result<(Self, CertificateInfo), TlsError> {
        let (certified, info) = load_certified_key(cert, key)?;
        Ok((
            Self {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                current: RwLock::new(certified),
            },
            info,
        ))
    }

    /// Reads the files again and, if they are usable, serves them from the next handshake on.
    pub fn reload(&self) -> Result<CertificateInfo, TlsError> {
        let (certified, info) = load_certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = certified;
        Ok(info)
    }

    /// Reloads on SIGHUP and when the files change, logging the outcome, until the task is
    /// dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = self.stamp();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let signal = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signal = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                _ = signal => "SIGHUP",
                _ = tick.tick() => {
                    let now = self.stamp();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the certificate or key file changed"
                }
            };
            self.reload_and_report(why);
        }
    }

    fn reload_and_report(&self, why: &str) {
        match self.reload() {
            Ok(info) => info.report(&self.cert, &format!("TLS certificate reloaded ({why})")),
            Err(err) => tracing::error!(
                error = %err,
                "TLS certificate reload ({why}) failed; still serving the previous certificate: {err}"
            ),
        }
    }

    /// What identifies the files' current contents without reading them.
    fn stamp(&self) -> [Option<FileStamp>; 2] {
        [FileStamp::of(&self.cert), FileStamp::of(&self.key)]
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Size, modification time and inode of a file.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        })
    }
}
