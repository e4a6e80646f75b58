//! Webhooks: endpoints that receive airlock's events as CloudEvents 1.0 (structured JSON mode),
//! signed with HMAC-SHA256, from a durable outbox.
//!
//! The outbox is filled by storage: every audit entry appended in a transaction enqueues its
//! deliveries in that same transaction (`airlock_store` `webhooks.rs`), so an event is never lost
//! between "it happened" and "it was queued". The [`Dispatcher`] claims due deliveries with a lease
//! (replica-safe), POSTs them, and records each outcome: 2xx is delivered; anything else is retried
//! with exponential backoff and jitter until `max_attempts`, then the delivery is dead-lettered.
//! Deliveries of one subject to one endpoint go out in order: a later one waits while an earlier
//! one is pending. The CloudEvent `id` is the audit index, the same on every attempt, so a
//! receiver that saw an event before can drop the repeat. Deliveries go only to public
//! addresses unless `allow_private_targets` is set ([`target`]).
//!
//! `https://` endpoints are verified with the same TLS as every client airlock builds
//! ([`crate::outbound_tls`]): the system's roots, or only the endpoint's own `ca_cert` when it
//! names one. The certificate must be for the URL's host (SNI and hostname check use the
//! name in the URL), while the address connected to is the one the guarded resolver checked.
//! A certificate failure is a failed attempt (retried, then dead-lettered) whose recorded error
//! names the certificate problem. Plain `http://` endpoints are still accepted (the HMAC
//! signature protects integrity, not confidentiality); docs/webhooks.md recommends https.

pub mod routes;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::webhook::{EventPattern, MAX_PATTERNS, TEST_EVENT_KIND, event_type};
use airlock_core::{Actor, AuditEvent, AuditRecord};
use airlock_store::{
    AttemptOutcome, DeliveryRow, DueDelivery, Metadata, StoreError, WebhookRow, now_millis,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::config::WebhookConfig;
use crate::identity::Authenticated;
use crate::outbound_tls::{self, PrivateCa, TlsFailure, Trust};

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-airlock-signature";
/// The header carrying the delivery id (differs per endpoint; the CloudEvent id does not).
pub const DELIVERY_HEADER: &str = "x-airlock-delivery";
/// Shortest and longest secret accepted, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=1024;
/// Longest URL accepted.
const MAX_URL_BYTES: usize = 2048;
/// Longest endpoint CA (PEM) accepted.
const MAX_CA_CERT_BYTES: usize = 64 * 1024;
/// Deliveries claimed per round.
const BATCH: u32 = 32;
/// Attempts in flight at once (each to its own subject).
pub const IN_FLIGHT: usize = 64;

/// Why a webhook request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The caller may not read (or manage) webhooks.
    #[error(
        "{principal} may not {} webhooks: that needs the access-admin role{}",
        if *read { "read" } else { "manage" },
        if *read { " (or auditor to read)" } else { "" }
    )]
    Forbidden {
        /// The caller.
        principal: String,
        /// Whether it wanted to read rather than manage.
        read: bool,
    },
    /// No endpoint (or no active one) has this id.
    #[error("there is no {}webhook {id}", if *active { "active " } else { "" })]
    Unknown {
        /// The id asked for.
        id: i64,
        /// Whether only active endpoints were looked at.
        active: bool,
    },
    /// The endpoint URL is not one airlock sends to.
    #[error("webhook URL {0}")]
    Url(#[source] UrlProblem),
    /// The URL's host is a literal address in a restricted range.
    #[error("webhook URL {0}")]
    Target(#[source] target::TargetRefused),
    /// A `ca_cert` for an `http://` URL.
    #[error("a ca_cert applies only to an https:// webhook URL")]
    CaCertNeedsHttps,
    /// A `ca_cert` over the size limit.
    #[error("the webhook's ca_cert is longer than {limit} bytes")]
    CaCertTooLong {
        /// The limit.
        limit: usize,
    },
    /// A `ca_cert` that is not PEM certificates.
    #[error("the webhook's ca_cert: {0}")]
    CaCert(#[source] crate::outbound_tls::CaCertError),
    /// No event patterns, or too many.
    #[error("a webhook needs 1 to {max} event patterns, e.g. promotion.* or anomaly.*")]
    EventCount {
        /// The most allowed.
        max: usize,
    },
    /// An event pattern that is not one.
    #[error("{reason}")]
    EventPattern {
        /// The pattern given.
        pattern: String,
        /// Why it is not one (it names the fix).
        reason: String,
    },
    /// A secret of the wrong length.
    #[error(
        "the secret has {length} bytes; use {} to {} (e.g. `openssl rand -hex 32 > secret`)",
        SECRET_BYTES.start(),
        SECRET_BYTES.end()
    )]
    SecretLength {
        /// Its length.
        length: usize,
    },
    /// A delivery state that does not exist.
    #[error("status {status:?}: use pending, delivered, dead or cancelled")]
    DeliveryStatus {
        /// The state given.
        status: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is wrong with an endpoint URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlProblem {
    /// Over the size limit.
    #[error("is longer than {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// Not a URL.
    #[error("{url:?} is not a URL: {source}")]
    NotAUrl {
        /// The text given.
        url: String,
        /// Why (the URL parser's error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Neither `https` nor `http`.
    #[error("has scheme {scheme:?}; use https:// (or http://)")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// No host.
    #[error("has no host")]
    NoHost,
    /// User and password in the URL.
    #[error("carries credentials; authenticate the receiver with the HMAC signature instead")]
    Credentials,
}

/// The HMAC-SHA256 of `body` under `secret`, as the `X-Airlock-Signature` value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The CloudEvent (structured JSON) for a delivery, as bytes: the same bytes on every attempt.
pub fn cloud_event(delivery: &DueDelivery, source: &str) -> Vec<u8> {
    let data: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
    let (id, data) = match delivery.audit_index {
        Some(index) => (
            index.to_string(),
            json!({"audit_index": index, "entry": data}),
        ),
        None => (format!("delivery-{}", delivery.id), data),
    };
    let event = json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": event_type(&delivery.event_type),
        "subject": delivery.subject,
        "time": airlock_core::audit::rfc3339_millis(delivery.time_millis),
        "datacontenttype": "application/json",
        "data": data,
    });
    // Serialising a JSON value cannot fail.
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A URL without its path and query (which may carry a token), for the audit log.
fn url_origin(url: &reqwest::Url) -> String {
    let mut origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    origin
}

/// A URL as shown to those who may not see its path and query: `origin/… (sha256 <hex>)`.
pub fn redacted_url(text: &str) -> String {
    let origin = reqwest::Url::parse(text)
        .map(|url| url_origin(&url))
        .unwrap_or_default();
    format!(
        "{origin}/… (sha256 {})",
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// Parses and checks an endpoint URL.
fn parse_url(text: &str) -> Result<reqwest::Url, WebhookError> {
    let bad = |problem: UrlProblem| WebhookError::Url(problem);
    if text.len() > MAX_URL_BYTES {
        return Err(bad(UrlProblem::TooLong {
            limit: MAX_URL_BYTES,
        }));
    }
    let url = reqwest::Url::parse(text).map_err(|source| {
        bad(UrlProblem::NotAUrl {
            url: text.to_string(),
            source: Box::new(source),
        })
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(bad(UrlProblem::Scheme {
                scheme: other.to_string(),
            }));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(UrlProblem::NoHost));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(UrlProblem::Credentials));
    }
    Ok(url)
}

/// Checks an endpoint's CA: PEM certificates, for an `https://` URL.
fn check_ca_cert(url: &reqwest::Url, pem: &str) -> Result<(), WebhookError> {
    if url.scheme() != "https" {
        return Err(WebhookError::CaCertNeedsHttps);
    }
    if pem.len() > MAX_CA_CERT_BYTES {
        return Err(WebhookError::CaCertTooLong {
            limit: MAX_CA_CERT_BYTES,
        });
    }
    PrivateCa::from_pem(pem)
        .map(|_| ())
        .map_err(WebhookError::CaCert)
}

/// The webhook service: endpoint management and delivery history.
pub struct Webhooks {
    metadata: Metadata,
    /// `[webhooks] allow_private_targets`.
    allow_private_targets: bool,
}

impl Webhooks {
    /// The service over `metadata`; `allow_private_targets` lets endpoints name restricted
    /// addresses (see [`target`]).
    pub fn new(metadata: Metadata, allow_private_targets: bool) -> Arc<Self> {
        Arc::new(Self {
            metadata,
            allow_private_targets,
        })
    }

    /// Whether `who` manages webhooks (and may see their full URLs).
    pub fn manages(who: Option<&Authenticated>) -> bool {
        who.is_none_or(|who| who.has(Permission::ManageAccess, &PermissionTarget::Global))
    }

    fn require(who: Option<&Authenticated>, name: &str, read: bool) -> Result<(), WebhookError> {
        let Some(who) = who else {
            return Ok(());
        };
        let global = PermissionTarget::Global;
        let allowed = who.has(Permission::ManageAccess, &global)
            || (read && who.has(Permission::ReadAudit, &global));
        if allowed {
            Ok(())
        } else {
            Err(WebhookError::Forbidden {
                principal: name.to_string(),
                read,
            })
        }
    }

    /// Adds an endpoint for `events` (patterns) signed with `secret`.
    pub async fn add(
        &self,
        who: Option<&Authenticated>,
        actor: &Actor,
        url: &str,
        events: &[String],
        secret: &str,
        ca_cert: Option<&str>,
    ) -> Result<WebhookRow, WebhookError> {
        Self::require(who, &actor.principal, false)?;
        let url = parse_url(url.trim())?;
        let ca_cert = ca_cert.map(str::trim).filter(|pem| !pem.is_empty());
        if let Some(pem) = ca_cert {
            check_ca_cert(&url, pem)?;
        }
        // A literal address is refused now; a name is checked at every send, when it resolves.
        target::check_literal(
            url.host_str().unwrap_or_default(),
            self.allow_private_targets,
        )
        .map_err(WebhookError::Target)?;
        if events.is_empty() || events.len() > MAX_PATTERNS {
            return Err(WebhookError::EventCount { max: MAX_PATTERNS });
        }
        let mut patterns = Vec::new();
        for event in events {
            let pattern: EventPattern =
                event.parse().map_err(|reason| WebhookError::EventPattern {
                    pattern: event.clone(),
                    reason,
                })?;
            let text = pattern.to_string();
            if !patterns.contains(&text) {
                patterns.push(text);
            }
        }
        if !SECRET_BYTES.contains(&secret.len()) {
            return Err(WebhookError::SecretLength {
                length: secret.len(),
            });
        }
        let origin = url_origin(&url);
        let url_sha256 = hex::encode(Sha256::digest(url.as_str().as_bytes()));
        let audit_events = patterns.clone();
        let time_millis = now_millis();
        let row = self
            .metadata
            .add_webhook(
                url.as_str(),
                &patterns,
                secret.as_bytes(),
                ca_cert,
                &actor.principal,
                |endpoint| AuditRecord {
                    time_millis,
                    actor: actor.clone(),
                    event: AuditEvent::WebhookChanged {
                        endpoint,
                        origin,
                        url_sha256,
                        events: audit_events,
                        added: true,
                    },
                },
            )
            .await?;
        Ok(row)
    }

    /// Removes an endpoint; its pending deliveries are cancelled.
    pub async fn remove(
        &self,
        who: Option<&Authenticated>,
        actor: &Actor,
        id: i64,
    ) -> Result<(), WebhookError> {
        Self::require(who, &actor.principal, false)?;
        let row = self.active(id).await?;
        let url = parse_url(&row.url).ok();
        let record = AuditRecord {
            time_millis: now_millis(),
            actor: actor.clone(),
            event: AuditEvent::WebhookChanged {
                endpoint: id,
                origin: url.as_ref().map(url_origin).unwrap_or_default(),
                url_sha256: hex::encode(Sha256::digest(row.url.as_bytes())),
                events: row.events,
                added: false,
            },
        };
        if !self.metadata.remove_webhook(id, record).await? {
            return Err(WebhookError::Unknown { id, active: true });
        }
        Ok(())
    }

    async fn active(&self, id: i64) -> Result<WebhookRow, WebhookError> {
        self.metadata
            .webhook(id)
            .await?
            .filter(|row| row.removed_at.is_none())
            .ok_or(WebhookError::Unknown { id, active: true })
    }

    /// Up to `limit` active endpoints with ids above `after` (from the first when `None`), by id.
    pub async fn list(
        &self,
        who: Option<&Authenticated>,
        name: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookRow>, WebhookError> {
        Self::require(who, name, true)?;
        Ok(self.metadata.webhooks_page(after, limit).await?)
    }

    /// Up to `limit` deliveries to an endpoint (removed endpoints too) with ids below `before`
    /// (from the newest when `None`), newest first.
    pub async fn deliveries(
        &self,
        who: Option<&Authenticated>,
        name: &str,
        id: i64,
        status: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, WebhookError> {
        Self::require(who, name, true)?;
        if let Some(status) = status
            && !matches!(status, "pending" | "delivered" | "dead" | "cancelled")
        {
            return Err(WebhookError::DeliveryStatus {
                status: status.to_string(),
            });
        }
        if self.metadata.webhook(id).await?.is_none() {
            return Err(WebhookError::Unknown { id, active: false });
        }
        Ok(self
            .metadata
            .deliveries_page(id, status, before, limit)
            .await?)
    }

    /// Queues a `dev.airlock.webhook.test` event for one endpoint; returns the delivery id.
    pub async fn test(
        &self,
        who: Option<&Authenticated>,
        actor: &Actor,
        id: i64,
    ) -> Result<i64, WebhookError> {
        Self::require(who, &actor.principal, false)?;
        self.active(id).await?;
        let data = json!({"webhook": id, "requested_by": actor.principal,
                          "message": "a test event from airlock webhooks test"});
        Ok(self
            .metadata
            .enqueue_event(
                id,
                TEST_EVENT_KIND,
                &format!("webhook/{id}"),
                data.to_string().as_bytes(),
            )
            .await?)
    }
}

/// Sends due deliveries, forever.
pub struct Dispatcher {
    metadata: Metadata,
    /// This replica's id, which marks the leases it holds.
    replica: String,
    config: WebhookConfig,
    source: String,
    /// The client for endpoints verified against the system's roots.
    client: reqwest::Client,
    /// Clients for endpoints with their own CA, by the CA's PEM.
    private_ca_clients: std::sync::Mutex<std::collections::HashMap<String, reqwest::Client>>,
}

/// Clients kept for endpoints with their own CA before the cache is emptied (endpoints are few;
/// this bounds what removed endpoints leave behind).
const MAX_PRIVATE_CA_CLIENTS: usize = 256;

impl Dispatcher {
    /// A dispatcher whose events name `source` (the audit log's origin), claiming deliveries as
    /// `replica` (`data_dir::replica_id`). Fails if the HTTP client cannot be built (never
    /// silently falls back to one that follows redirects).
    pub fn new(
        metadata: Metadata,
        config: WebhookConfig,
        source: String,
        replica: String,
    ) -> Result<Self, reqwest::Error> {
        let client = Self::build_client(&config, &Trust::System)?;
        Ok(Self {
            metadata,
            replica,
            config,
            source,
            client,
            private_ca_clients: Default::default(),
        })
    }

    /// A delivery client verifying receivers as `trust` says.
    fn build_client(
        config: &WebhookConfig,
        trust: &Trust,
    ) -> Result<reqwest::Client, reqwest::Error> {
        // No proxy: a proxy would connect to whatever address it likes, past the resolver's
        // check. Names resolve through the guarded resolver only.
        outbound_tls::client_builder(trust)
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(target::GuardedResolver {
                allow_private: config.allow_private_targets,
            })
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The client for a delivery: the shared one, or one trusting only the endpoint's CA.
    fn client_for(&self, ca_cert: Option<&str>) -> Result<reqwest::Client, String> {
        let Some(pem) = ca_cert else {
            return Ok(self.client.clone());
        };
        let mut clients = self
            .private_ca_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(pem) {
            return Ok(client.clone());
        }
        let ca = PrivateCa::from_pem(pem).map_err(|e| format!("the endpoint's ca_cert: {e}"))?;
        let client = Self::build_client(&self.config, &Trust::PrivateCa(ca))
            .map_err(|e| format!("cannot build a client for the endpoint's ca_cert: {e}"))?;
        if clients.len() >= MAX_PRIVATE_CA_CLIENTS {
            clients.clear();
        }
        clients.insert(pem.to_string(), client.clone());
        Ok(client)
    }

    /// Polls the outbox every `poll_interval_ms` and sends what is due. Each attempt runs as its
    /// own task (at most [`IN_FLIGHT`] at once), so a slow or unreachable receiver holds up only
    /// its own subjects, never the other endpoints' deliveries.
    ///
    /// Every replica sends: a delivery is claimed under the database's writer lock with a lease
    /// marked with the replica's id, so one replica attempts it at a time. At start the leases a
    /// previous run of this replica left (it died mid-attempt) are released at once; another
    /// replica's lease is never released (it may be sending right now), it runs out (the
    /// attempt's timeout plus 30 s) and a dead replica's deliveries are taken over then.
    pub async fn run(self) {
        match self.metadata.release_delivery_leases(&self.replica).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "released webhook deliveries a previous run left leased"
            ),
            Err(err) => tracing::error!(error = %err, "releasing webhook delivery leases failed"),
        }
        let dispatcher = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tick =
            tokio::time::interval(Duration::from_millis(dispatcher.config.poll_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let free = slots.available_permits().min(BATCH as usize) as u32;
            if free == 0 {
                continue;
            }
            let now = now_millis();
            // Held until the attempt is recorded: its timeout plus room to wait for the writer.
            let lease = now + dispatcher.config.timeout_ms as i64 + 30_000;
            let due = match dispatcher
                .metadata
                .claim_due_deliveries(&dispatcher.replica, now, lease, free)
                .await
            {
                Ok(due) => due,
                Err(err) => {
                    tracing::error!(error = %err, "claiming webhook deliveries failed");
                    continue;
                }
            };
            if due.is_empty() {
                continue;
            }
            for delivery in due {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let dispatcher = dispatcher.clone();
                tokio::spawn(async move {
                    let id = delivery.id;
                    if let Err(err) = dispatcher.attempt(delivery).await {
                        tracing::error!(delivery = id, error = %err, "recording a webhook attempt failed");
                    }
                    if let Ok(pending) = dispatcher.metadata.pending_deliveries().await {
                        metrics::gauge!(crate::metrics::WEBHOOK_PENDING).set(pending as f64);
                    }
                    drop(slot);
                });
            }
        }
    }

    /// The delay before attempt `attempts + 1`: exponential from `initial_backoff_ms`, capped at
    /// `max_backoff_ms`, with "equal jitter" (between half and all of it) so receivers that
    /// failed together are not retried in lockstep.
    fn backoff_ms(&self, attempts: i64) -> i64 {
        let exponent = attempts.clamp(1, 30) as u32 - 1;
        let full = self
            .config
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.config.max_backoff_ms);
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        (full as f64 * (0.5 + random / 2.0)) as i64
    }

    async fn attempt(&self, delivery: DueDelivery) -> Result<(), StoreError> {
        let body = cloud_event(&delivery, &self.source);
        let signature = signature(&delivery.secret, &body);
        // A literal address is not resolved, so the resolver never sees it: check it here (it
        // was checked when the endpoint was added, but the setting may have changed since).
        let host = reqwest::Url::parse(&delivery.url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default();
        if let Err(refused) = target::check_literal(&host, self.config.allow_private_targets) {
            return self.finish(&delivery, None, refused.to_string()).await;
        }
        let client = match self.client_for(delivery.ca_cert.as_deref()) {
            Ok(client) => client,
            Err(why) => return self.finish(&delivery, None, why).await,
        };
        let sent = client
            .post(&delivery.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/cloudevents+json; charset=utf-8",
            )
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery.id.to_string())
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let outcome = AttemptOutcome::Delivered {
                    status: response.status().as_u16(),
                };
                self.record_outcome(&delivery, outcome).await
            }
            Ok(response) => {
                let status = response.status();
                self.finish(
                    &delivery,
                    Some(status.as_u16()),
                    format!("the receiver answered {status}"),
                )
                .await
            }
            Err(err) => self.finish(&delivery, None, transport_error(&err)).await,
        }
    }

    /// Records a failed attempt: retried after a backoff, or dead-lettered after the last one.
    async fn finish(
        &self,
        delivery: &DueDelivery,
        status: Option<u16>,
        error: String,
    ) -> Result<(), StoreError> {
        let attempts = delivery.attempts + 1;
        let retry_at = (attempts < i64::from(self.config.max_attempts))
            .then(|| now_millis() + self.backoff_ms(attempts));
        let outcome = AttemptOutcome::Failed {
            status,
            error,
            retry_at,
        };
        self.record_outcome(delivery, outcome).await
    }

    async fn record_outcome(
        &self,
        delivery: &DueDelivery,
        outcome: AttemptOutcome,
    ) -> Result<(), StoreError> {
        let attempts = delivery.attempts + 1;
        let label = match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Failed { retry_at: None, .. } => "dead",
            AttemptOutcome::Failed { .. } => "failed",
        };
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
        if label == "dead" {
            tracing::warn!(
                delivery = delivery.id,
                event = %delivery.event_type,
                attempts,
                "webhook delivery dead-lettered after its last attempt"
            );
        }
        let recorded = self
            .metadata
            .finish_delivery(delivery.id, &self.replica, &outcome)
            .await?;
        if !recorded {
            tracing::warn!(
                delivery = delivery.id,
                event = %delivery.event_type,
                outcome = label,
                "webhook delivery's lease was lost before its outcome was recorded (it ran out and another replica claimed the delivery); this attempt's outcome is not recorded, the other replica's attempt decides"
            );
        }
        Ok(())
    }
}

/// A transport error as a short message without the URL (its path may carry a token). A TLS
/// failure is named as such ("TLS: the server's certificate is not trusted ...").
fn transport_error(err: &reqwest::Error) -> String {
    if let Some(failure) = TlsFailure::find(err) {
        let hint = if failure.is_trust_problem() {
            " (give the endpoint the CA that issued it as ca_cert)"
        } else {
            ""
        };
        return format!("TLS: {failure}{hint}").chars().take(300).collect();
    }
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut message = kind.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message = format!("{kind}: {cause}");
        source = cause.source();
    }
    message.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_checked_and_redacted_for_the_log() {
        let url = parse_url("http://hooks.example:8080/T0/B1/secret-token?x=1").unwrap();
        assert_eq!(url_origin(&url), "http://hooks.example:8080");
        for (bad, words) in [
            ("ftp://x/", "scheme"),
            ("http://user:pw@x/", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let err = parse_url(bad).unwrap_err().to_string();
            assert!(err.contains(words), "{bad}: {err}");
        }
    }

    #[test]
    fn https_urls_are_accepted_and_a_ca_cert_only_with_them() {
        let url = parse_url("https://hooks.example/x").unwrap();
        assert_eq!(url_origin(&url), "https://hooks.example");
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        check_ca_cert(&url, &ca).unwrap();
        let plain = parse_url("http://hooks.example/x").unwrap();
        let err = check_ca_cert(&plain, &ca).unwrap_err().to_string();
        assert!(err.contains("only to an https://"), "{err}");
        let err = check_ca_cert(&url, "not a certificate")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn cloud_events_carry_the_audit_entry_with_a_stable_id() {
        let delivery = DueDelivery {
            id: 9,
            url: "http://x/".into(),
            secret: b"0123456789abcdef".to_vec(),
            ca_cert: None,
            event_type: "promotion.promoted".into(),
            subject: "prod/team/app@sha256:ab".into(),
            audit_index: Some(42),
            data: br#"{"type":"promotion.promoted"}"#.to_vec(),
            time_millis: 0,
            attempts: 3,
        };
        let body = cloud_event(&delivery, "airlock/test");
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], "42");
        assert_eq!(event["type"], "dev.airlock.promotion.promoted");
        assert_eq!(event["source"], "airlock/test");
        assert_eq!(event["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(event["data"]["entry"]["type"], "promotion.promoted");
        assert_eq!(
            body,
            cloud_event(&delivery, "airlock/test"),
            "same bytes every time"
        );
    }
}
