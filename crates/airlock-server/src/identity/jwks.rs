//! Where an OIDC trust rule's keys come from: a JWKS file read at start, or the issuer's JWKS
//! URL fetched over TLS.
//!
//! What holds for a `jwks_url`:
//! - It is fetched at start; a failure (unreachable, a certificate the rule's trust refuses, not
//!   a valid JWKS) refuses the start with a message naming the rule.
//! - It is verified like every client airlock builds ([`crate::outbound_tls`]): the system's
//!   roots, or only the rule's `ca_cert`. Redirects are followed only to `https://` URLs (at
//!   most 5), bodies are limited to [`MAX_JWKS_BYTES`], each fetch to [`FETCH_TIMEOUT`].
//! - It is refreshed every `jwks_refresh_secs`, and when a token names a key id the JWKS does
//!   not hold (the issuer rotated its keys), at most once per [`UNKNOWN_KID_REFRESH`].
//! - A failed refresh keeps the last good JWKS and logs an error; a token is never verified
//!   against anything but a JWKS that parsed.

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use airlock_identity::{Jwks, OidcError, TrustRule};

use crate::config::OidcTrustConfig;
use crate::outbound_tls::{self, PrivateCa, TlsFailure, Trust};

/// Largest JWKS document accepted from a URL.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Longest a JWKS fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest interval between refreshes caused by unknown key ids.
pub const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(30);

/// Why a rule's JWKS could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The JWKS file could not be read.
    #[error("oidc rule {rule}: cannot read jwks_file {path}: {source}")]
    File {
        /// The rule.
        rule: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The rule's `ca_cert` is unusable.
    #[error("oidc rule {rule}: ca_cert {path}: {message}")]
    CaCert {
        /// The rule.
        rule: String,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The JWKS URL could not be fetched.
    #[error("oidc rule {rule}: cannot fetch jwks_url {url}: {message}")]
    Fetch {
        /// The rule.
        rule: String,
        /// The URL.
        url: String,
        /// Why, naming the fix for a certificate problem.
        message: String,
    },
    /// The document is not a usable JWKS.
    #[error("oidc rule {rule}: {source}")]
    Invalid {
        /// The rule.
        rule: String,
        /// Why.
        source: OidcError,
    },
}

/// A rule's keys.
pub enum JwksSource {
    /// Read once from `jwks_file`.
    File(Jwks),
    /// Fetched from `jwks_url` and refreshed.
    Url(Arc<RemoteJwks>),
}

impl JwksSource {
    /// Loads the keys `rule` names: reads its file or fetches its URL (and starts the periodic
    /// refresh, which ends when the source is dropped).
    pub async fn load(rule: &OidcTrustConfig) -> Result<Self, JwksError> {
        if let Some(url) = &rule.jwks_url {
            let remote = Arc::new(RemoteJwks::connect(rule, url).await?);
            RemoteJwks::spawn_refresh(
                Arc::downgrade(&remote),
                Duration::from_secs(rule.jwks_refresh_secs),
            );
            return Ok(JwksSource::Url(remote));
        }
        let path = rule.jwks_file.clone().unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|source| JwksError::File {
            rule: rule.name.clone(),
            path: path.display().to_string(),
            source,
        })?;
        Jwks::from_json(&text)
            .map(JwksSource::File)
            .map_err(|source| JwksError::Invalid {
                rule: rule.name.clone(),
                source,
            })
    }

    /// Verifies `id_token` for `rule` (see `airlock_identity::verify_id_token`). A token naming a
    /// key id this JWKS lacks triggers one refresh of a URL source (rate-limited) and a second
    /// try.
    pub async fn verify(
        &self,
        id_token: &str,
        rule: &TrustRule,
        now_secs: u64,
        leeway_secs: u64,
    ) -> Result<airlock_identity::OidcIdentity, OidcError> {
        match self {
            JwksSource::File(jwks) => {
                airlock_identity::verify_id_token(id_token, jwks, rule, now_secs, leeway_secs)
            }
            JwksSource::Url(remote) => {
                let jwks = remote.current();
                match airlock_identity::verify_id_token(
                    id_token,
                    &jwks,
                    rule,
                    now_secs,
                    leeway_secs,
                ) {
                    Err(OidcError::UnknownKeyId(kid)) => {
                        if remote.refresh_for_unknown_kid(&kid).await {
                            let jwks = remote.current();
                            airlock_identity::verify_id_token(
                                id_token,
                                &jwks,
                                rule,
                                now_secs,
                                leeway_secs,
                            )
                        } else {
                            Err(OidcError::UnknownKeyId(kid))
                        }
                    }
                    other => other,
                }
            }
        }
    }
}

/// A JWKS fetched from a URL: the last good document, and how to fetch the next.
pub struct RemoteJwks {
    rule: String,
    url: String,
    client: reqwest::Client,
    current: RwLock<Arc<Jwks>>,
    /// When an unknown key id last caused a refresh.
    last_unknown_kid_refresh: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    /// Builds the client for `rule` and fetches the first JWKS.
    async fn connect(rule: &OidcTrustConfig, url: &str) -> Result<Self, JwksError> {
        let trust = match &rule.ca_cert {
            Some(path) => {
                let ca_error = |message: String| JwksError::CaCert {
                    rule: rule.name.clone(),
                    path: path.display().to_string(),
                    message,
                };
                let pem = std::fs::read_to_string(path).map_err(|e| ca_error(e.to_string()))?;
                Trust::PrivateCa(PrivateCa::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?)
            }
            None => Trust::System,
        };
        let client = outbound_tls::client_builder(&trust)
            .https_only(true)
            .timeout(FETCH_TIMEOUT)
            .no_proxy()
            // Redirects stay on the configured host, over https: an issuer cannot send airlock
            // to another (possibly internal) host.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                if attempt.previous().len() >= 5 || attempt.url().scheme() != "https" || !same_host
                {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JwksError::Fetch {
                rule: rule.name.clone(),
                url: url.to_string(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let first = fetch_jwks(&client, &rule.name, url).await?;
        Ok(Self {
            rule: rule.name.clone(),
            url: url.to_string(),
            client,
            current: RwLock::new(Arc::new(first)),
            last_unknown_kid_refresh: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The last good JWKS.
    pub fn current(&self) -> Arc<Jwks> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches the JWKS and keeps it; on failure keeps the last good one and logs the error.
    /// Returns whether the JWKS was replaced.
    async fn refresh(&self) -> bool {
        let _one_at_a_time = self.fetching.lock().await;
        match fetch_jwks(&self.client, &self.rule, &self.url).await {
            Ok(jwks) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(jwks);
                true
            }
            Err(err) => {
                tracing::error!(rule = %self.rule, error = %err,
                    "refreshing an OIDC JWKS failed; keeping the last good one");
                false
            }
        }
    }

    /// Refreshes because a token named `kid`, unless a refresh for an unknown key id happened
    /// within [`UNKNOWN_KID_REFRESH`]. Returns whether a refresh replaced the JWKS.
    async fn refresh_for_unknown_kid(&self, kid: &str) -> bool {
        {
            let mut last = self
                .last_unknown_kid_refresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFRESH) {
                return false;
            }
            *last = Some(Instant::now());
        }
        tracing::info!(rule = %self.rule, kid, "an ID token names an unknown key; refreshing the JWKS");
        self.refresh().await
    }

    /// Refreshes every `interval` while the source lives.
    fn spawn_refresh(remote: Weak<RemoteJwks>, interval: Duration) {
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(remote) = remote.upgrade() else {
                    return;
                };
                remote.refresh().await;
            }
        });
    }
}

/// Fetches and parses the JWKS at `url` for `rule`.
async fn fetch_jwks(client: &reqwest::Client, rule: &str, url: &str) -> Result<Jwks, JwksError> {
    let failed = |message: String| JwksError::Fetch {
        rule: rule.to_string(),
        url: url.to_string(),
        message,
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| failed(describe_transport_error(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(describe_transport_error(&e)))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(failed(format!(
                "the JWKS is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| failed("the JWKS is not UTF-8".into()))?;
    Jwks::from_json(&text).map_err(|source| JwksError::Invalid {
        rule: rule.to_string(),
        source,
    })
}

/// A fetch error in one sentence: a TLS failure with the fix, or the transport error's chain.
fn describe_transport_error(err: &reqwest::Error) -> String {
    if let Some(failure) = TlsFailure::find(err) {
        let fix = if failure.is_trust_problem() {
            ": set the rule's ca_cert to the CA that issued it"
        } else {
            ""
        };
        return format!("{failure}{fix}");
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}
