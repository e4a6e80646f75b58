//! Starting and stopping the server: storage, services, routes, middleware, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use airlock_store::{BlobStore, DatabaseLocation, Metadata, StoreError};
use axum::Router;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::access::AccessControl;
use crate::audit::{AuditLog, AuditLogError};
use crate::config::{Config, ConfigError};
use crate::evidence::EvidenceService;
use crate::evidence::routes::EvidenceState;
use crate::identity::{Identity, IdentityError};
use crate::oci::{self, OciState};
use crate::promotion::PromotionService;
use crate::registry::{Registry, RegistryLimits};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be opened.
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        /// The data directory.
        dir: String,
        /// Why.
        source: StoreError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Identity and access could not be set up.
    #[error("cannot set up access control: {0}")]
    Identity(#[from] IdentityError),
    /// Promotions could not be set up (policy bundle, attestation key).
    #[error("cannot set up promotions: {0}")]
    Promotion(String),
    /// The webhook sender could not be set up.
    #[error("cannot set up webhook delivery: {0}")]
    Webhooks(String),
    /// The witness (`[witness]`) could not be set up.
    #[error("witness: {0}")]
    Witness(String),
    /// The audit log could not be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] AuditLogError),
    /// airlock's own keys could not be opened (key files, the key-encryption key, the keys
    /// stored in the database).
    #[error("cannot open airlock's keys: {0}")]
    ServerKeys(#[from] crate::server_keys::ServerKeyError),
    /// The data directory cannot be used (permissions, a new database beside old keys).
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// The TLS certificate, key or client CA cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Plaintext on an address other than loopback, without `--insecure-listen`.
    #[error(
        "refusing to serve plaintext HTTP on {addr}, which is not a loopback address: passwords and tokens would cross the network in the clear. Configure [tls] cert and key (docs/tls.md), or start with --self-signed to try TLS out, or pass --insecure-listen (insecure_listen = true) if a TLS-terminating proxy on a trusted network is in front"
    )]
    InsecureListen {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// The status `airlock serve` exits with: 2 when the database's schema is not this binary's
    /// (a newer release migrated it, or a migration differs: the fix is another binary or a
    /// backup, not a retry), 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self {
            ServeError::Storage {
                source: StoreError::SchemaTooNew { .. } | StoreError::MigrationChanged { .. },
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// Opens storage in the data directory and builds the registry service.
pub async fn open_registry(config: &Config) -> Result<Arc<Registry>, ServeError> {
    let dir = &config.data_dir;
    let storage = |source| ServeError::Storage {
        dir: dir.display().to_string(),
        source,
    };
    let location = config.database_location()?;
    crate::data_dir::prepare(dir, &location)?;
    let metadata = match &location {
        DatabaseLocation::Sqlite(path) => Metadata::open_sqlite(path).await.map_err(storage)?,
        DatabaseLocation::Postgres(url) => {
            Metadata::open_postgres(url)
                .await
                .map_err(|source| ServeError::Storage {
                    dir: format!("the PostgreSQL database {}", airlock_store::redact_url(url)),
                    source,
                })?
        }
    };
    crate::data_dir::check_new_database(dir, &location, &metadata, config.allow_new_database)
        .await?;
    let blobs = match &config.blob_store {
        None => BlobStore::local(&dir.join("blobs")).map_err(storage)?,
        Some(location) => BlobStore::s3(location, &config.s3.options(), std::env::vars())
            .await
            .map_err(storage)?,
    };
    let limits = RegistryLimits {
        max_manifest_bytes: config.registry.max_manifest_bytes,
        upload_expiry: Duration::from_secs(config.registry.upload_expiry_secs),
        max_concurrent_uploads: config.limits.max_concurrent_uploads,
        upload_queue_wait: Duration::from_secs(config.limits.upload_queue_secs),
    };
    Ok(Arc::new(Registry::new(
        metadata,
        blobs,
        config.stages()?,
        limits,
    )))
}

/// The services behind the HTTP application.
pub struct Services {
    /// The registry.
    pub registry: Arc<Registry>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Identity and access.
    pub identity: Arc<Identity>,
    /// Evidence.
    pub evidence: Arc<EvidenceService>,
    /// Promotions.
    pub promotions: Arc<PromotionService>,
    /// Anomaly detection and records.
    pub anomalies: Arc<crate::anomalies::Anomalies>,
    /// Webhook endpoints.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// airlock's own keys (rotation).
    pub server_keys: Arc<crate::server_keys::ServerKeys>,
    /// The catalog: stages, repositories, tags, channel history, status.
    pub catalog: Arc<crate::catalog::CatalogService>,
    /// Set when shutdown begins, so `/readyz` answers 503.
    pub draining: crate::readiness::Draining,
    /// Garbage collection.
    pub gc: Arc<crate::gc::Collector>,
    /// Deploy-time verification and the admission webhook.
    pub deploy: Arc<crate::deploy::DeployService>,
    /// Whether airlock serves TLS (the console's cookies are then `Secure`).
    pub serves_tls: bool,
    /// airlock as a witness of other logs (`[witness]`), when configured.
    pub witness: Option<Arc<crate::witness::WitnessService>>,
}

/// The whole HTTP application.
pub fn router(
    services: Services,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Router {
    let Services {
        registry,
        audit,
        identity,
        evidence,
        promotions,
        anomalies,
        webhooks,
        server_keys,
        catalog,
        draining,
        gc,
        deploy,
        serves_tls,
        witness,
    } = services;
    let trusted_proxies = Arc::new(identity.trusted_proxies().clone());
    let access = Arc::new(AccessControl::with_identity(identity.clone()));
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(crate::readiness::readyz))
        .with_state(crate::readiness::ReadinessState {
            registry: registry.clone(),
            draining,
        });
    let metrics_route = Router::new()
        .route("/metrics", get(crate::metrics::render))
        .with_state(metrics);
    let write_guard = axum::middleware::from_fn_with_state(
        registry.clone(),
        crate::readiness::refuse_writes_when_storage_fails,
    );
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path())
    });
    Router::new()
        .merge(oci::router(OciState {
            registry,
            access,
            evidence: evidence.clone(),
            anomalies: anomalies.clone(),
        }))
        .merge(crate::evidence::routes::router(EvidenceState {
            evidence: evidence.clone(),
            identity: identity.clone(),
        }))
        .merge(crate::promotion::routes::router(
            crate::promotion::routes::PromotionState {
                promotions: promotions.clone(),
                identity: identity.clone(),
            },
        ))
        .merge(crate::anomalies::routes::router(
            crate::anomalies::routes::AnomalyState {
                anomalies: anomalies.clone(),
                identity: identity.clone(),
            },
        ))
        .merge(crate::webhooks::routes::router(
            crate::webhooks::routes::WebhookState {
                webhooks,
                identity: identity.clone(),
            },
        ))
        .merge(crate::server_keys::routes::router(
            crate::server_keys::routes::ServerKeyState {
                keys: server_keys,
                identity: identity.clone(),
            },
        ))
        .merge(crate::console::router(crate::console::ConsoleState {
            identity: identity.clone(),
            catalog: catalog.clone(),
            promotions: promotions.clone(),
            anomalies: anomalies.clone(),
            evidence: evidence.clone(),
            audit: audit.clone(),
            secure_cookies: serves_tls,
        }))
        .merge(crate::catalog::routes::router(
            crate::catalog::routes::CatalogState {
                catalog,
                identity: identity.clone(),
            },
        ))
        .merge(crate::gc::routes::router(crate::gc::routes::GcState {
            collector: gc,
            identity: identity.clone(),
        }))
        .merge(crate::deploy::routes::router(
            crate::deploy::routes::DeployState {
                deploy,
                identity: identity.clone(),
            },
        ))
        .merge(crate::audit::routes::router(audit, identity.clone()))
        .merge(witness.map(crate::witness::routes::router).unwrap_or_default())
        .merge(crate::identity::routes::router(identity))
        .merge(crate::openapi::router())
        .merge(crate::meta::routes::router())
        .merge(health)
        .merge(metrics_route)
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": {"code": "NOT_FOUND", "message": "no endpoint at this path", "remediation": "the registry API is under /v2/"}})),
            )
        })
        .layer(axum::middleware::from_fn(crate::api::render_rejections))
        .layer(write_guard)
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            crate::client_address::resolve,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Runs the server until `shutdown` resolves, then drains as `[shutdown]` says (`/readyz` fails
/// at once, requests are served for `drain_delay_secs`, then the socket closes and requests in
/// flight get `timeout_secs`; see [`crate::connections`]) and closes storage.
/// Prints `airlock listening on http://ADDR` (`https://` with TLS) on stdout once the socket is
/// bound; with `--self-signed`, the certificate's path, fingerprint and expiry follow.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let plaintext = config.tls.is_none() && !config.self_signed;
    if plaintext && !config.listen.ip().is_loopback() && !config.insecure_listen {
        return Err(ServeError::InsecureListen {
            addr: config.listen,
        });
    }
    // Held until the server returns: `airlock migrate-store` refuses a directory in use.
    let _data_dir_lock = crate::data_dir::lock(&config.data_dir)?;
    let registry = open_registry(&config).await?;
    let tls = crate::tls::prepare(&config)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let origin = config.audit.origin.clone().unwrap_or_else(|| {
        format!(
            "airlock/{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        )
    });
    let mut keys =
        crate::server_keys::open(&config, registry.metadata(), registry.blobs(), &origin).await?;
    let mut audit = match keys.log.take() {
        Some(key) => AuditLog::open_with_key(registry.metadata().clone(), key).await?,
        None => AuditLog::open(registry.metadata().clone(), &config.data_dir, &origin).await?,
    };
    audit.set_witnesses(config.audit.witnesses.clone());
    let audit = Arc::new(audit);
    let witness = crate::witness::WitnessService::open(
        &config.witness,
        &config.data_dir,
        registry.metadata().clone(),
    )
    .map_err(|e| ServeError::Witness(e.to_string()))?
    .map(Arc::new);
    if !keys.deferred_audit.is_empty() {
        registry
            .metadata()
            .record_events(&keys.deferred_audit)
            .await
            .map_err(crate::server_keys::ServerKeyError::Store)?;
    }
    // Which replica signs checkpoints and runs the periodic sweeps (always this one on SQLite).
    let leadership = Arc::new(crate::leadership::Leadership::new(registry.metadata()));
    let integrator = tokio::spawn(audit.clone().run_integrator(leadership.clone()));
    let witnessing = if config.audit.witnesses.is_empty() {
        None
    } else {
        let witnesses =
            crate::audit::witnesses::Witnesses::new(audit.clone(), &config.audit.witnesses)
                .map_err(|e| ServeError::Witness(e.to_string()))?;
        Some(tokio::spawn(witnesses.run(leadership.clone())))
    };
    let anomalies = crate::anomalies::Anomalies::new(
        registry.metadata().clone(),
        config.anomalies.clone(),
        config.stages()?,
    );
    registry.report_refusals_to(anomalies.clone());
    // The token realm in `WWW-Authenticate` is the configured public URL, else the address
    // airlock listens on (https:// with TLS); never a request header.
    let mut access = config.access.clone();
    if access.public_url.is_none() {
        if addr.ip().is_unspecified() {
            tracing::warn!(%addr, "access.public_url is unset and airlock listens on every address: clients are sent to {scheme}://{addr}/auth/token for tokens; set access.public_url to the URL they reach airlock at");
        }
        access.public_url = Some(format!("{scheme}://{addr}"));
    }
    let identity = Arc::new(
        Identity::open(
            registry.metadata().clone(),
            &config.data_dir,
            access,
            config.stages()?,
            config.access.initial_admin_password.clone().map(|s| s.0),
            anomalies.clone(),
            keys.tokens.clone(),
        )
        .await?,
    );
    if !identity.enabled() {
        tracing::warn!(
            "access control is off (access.enabled = false): every request is anonymous"
        );
    }
    let sweep = tokio::spawn(sweep_uploads(
        registry.clone(),
        leadership.clone(),
        Duration::from_secs(config.registry.upload_sweep_interval_secs),
    ));
    let evidence = Arc::new(EvidenceService::new(
        registry.metadata().clone(),
        registry.blobs().clone(),
        config.stages()?,
        anomalies.clone(),
    ));
    match evidence.ingest_pending().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            manifests = n,
            "ingested evidence a previous run left pending"
        ),
        Err(err) => tracing::error!(error = %err, "ingesting pending evidence failed"),
    }
    let attestation_keys = keys.attestations.clone();
    let server_keys = Arc::new(crate::server_keys::ServerKeys::new(
        registry.metadata().clone(),
        &keys,
        crate::server_keys::TokenLifetimes {
            access_secs: config.access.token_lifetime_secs,
            refresh_secs: config.access.refresh_lifetime_secs,
            leeway_secs: config.access.leeway_secs,
        },
    ));
    // On PostgreSQL: a rotation another replica makes reaches this one within a poll.
    let key_follower = tokio::spawn(server_keys.clone().follow_database());
    let promotions = Arc::new(
        PromotionService::open(
            registry.metadata().clone(),
            registry.blobs().clone(),
            config.clone(),
            evidence.clone(),
            attestation_keys,
            identity.clone(),
            anomalies.clone(),
        )
        .await
        .map_err(|e| ServeError::Promotion(e.to_string()))?,
    );
    // A promotion a crash left `evaluating` is recovered before the first request.
    match promotions.recover_stalled().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            promotions = n,
            "recovered promotions whose decision a previous run left unfinished"
        ),
        Err(err) => tracing::error!(error = %err, "recovering stalled promotions failed"),
    }
    // Expiry notices due while airlock was down are appended before the first request.
    send_expiry_notices(&identity).await;
    let housekeeping = tokio::spawn(promotion_housekeeping(
        promotions.clone(),
        anomalies.clone(),
        identity.clone(),
        leadership.clone(),
    ));
    let dispatcher = tokio::spawn(
        crate::webhooks::Dispatcher::new(
            registry.metadata().clone(),
            config.webhooks.clone(),
            audit.origin().to_string(),
            crate::data_dir::replica_id(&config.data_dir)?,
        )
        .map_err(|e| ServeError::Webhooks(e.to_string()))?
        .run(),
    );
    let deploy = Arc::new(crate::deploy::DeployService::new(
        registry.metadata().clone(),
        config.stages()?,
        identity.clone(),
        anomalies.clone(),
        config.deploy.clone(),
    ));
    let draining = crate::readiness::Draining::default();
    let app = router(
        Services {
            registry: registry.clone(),
            audit: audit.clone(),
            identity: identity.clone(),
            evidence,
            promotions,
            anomalies,
            webhooks: crate::webhooks::Webhooks::new(
                registry.metadata().clone(),
                config.webhooks.allow_private_targets,
            ),
            server_keys,
            catalog: Arc::new(crate::catalog::CatalogService::new(
                registry.metadata().clone(),
                config.stages()?,
                config.gates.clone(),
                identity.clone(),
            )),
            draining: draining.clone(),
            gc: Arc::new(crate::gc::Collector::new(
                registry.metadata().clone(),
                registry.blobs().clone(),
                &config.stages()?,
                config.gc.clone(),
            )),
            deploy,
            serves_tls: !plaintext,
            witness,
        },
        crate::metrics::install(),
    );
    if let Some(tls) = &tls {
        tls.info.export();
    }
    // The database URL may hold a password: only its redacted form is logged.
    let database = config
        .database_url
        .as_deref()
        .map_or_else(|| "embedded SQLite".to_string(), airlock_store::redact_url);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), %database, tls = tls.is_some(), "airlock listening");
    println!("airlock listening on {scheme}://{addr}");
    if let Some(made) = tls.as_ref().and_then(|tls| tls.self_signed.as_ref()) {
        // Written without panicking: a supervisor may close stdout after the first line.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "self-signed TLS certificate{}: {}\nSHA-256 fingerprint: {}\nexpires: {}",
            if made.created { " (new)" } else { "" },
            made.cert.display(),
            made.info.fingerprint,
            made.info.expiry_text()
        );
    }
    let reloads = tls
        .as_ref()
        .map(|tls| tokio::spawn(tls.certificate.clone().watch(tls.reload_every)));
    let limits = crate::connections::ConnectionLimits {
        max_connections: config.limits.max_connections,
        header_read_timeout: Duration::from_secs(config.limits.header_read_timeout_secs),
        body_timeout: Duration::from_secs(config.limits.body_timeout_secs),
        request_body_timeout: Duration::from_secs(config.limits.request_body_timeout_secs),
    };
    crate::connections::serve(
        listener,
        app,
        limits,
        tls.map(|tls| tls.server_config),
        crate::connections::Shutdown {
            signal: shutdown,
            draining,
            drain_delay: Duration::from_secs(config.shutdown.drain_delay_secs),
            timeout: Duration::from_secs(config.shutdown.timeout_secs),
        },
    )
    .await?;
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    sweep.abort();
    key_follower.abort();
    housekeeping.abort();
    dispatcher.abort();
    integrator.abort();
    if let Some(witnessing) = witnessing {
        witnessing.abort();
    }
    // The leader leaves a checkpoint that covers everything written before shutdown, then hands
    // leadership to another replica at once.
    if leadership.is_leader() {
        while let Ok(Some(_)) = audit.integrate().await {}
    }
    leadership.step_down().await;
    registry.metadata().close().await;
    tracing::info!("airlock stopped");
    Ok(())
}

/// On the leader (the sweeps run once however many replicas there are; each change they make is
/// conditional on the state it read, so a second run would change nothing), every 30 s: expires
/// overdue promotions, recovers stalled ones (a replica that stopped mid-decision), forgets
/// anomaly signals no window reaches and appends due API key expiry notices. On every replica,
/// reloads the policy bundle on SIGHUP (a bundle that fails to load or whose tests fail is
/// refused, and the current one stays).
async fn promotion_housekeeping(
    promotions: Arc<PromotionService>,
    anomalies: Arc<crate::anomalies::Anomalies>,
    identity: Arc<Identity>,
    leadership: Arc<crate::leadership::Leadership>,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        #[cfg(unix)]
        let reload = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let reload = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tick.tick() => {
                if !leadership.is_leader() {
                    continue;
                }
                if let Err(err) = promotions.expire_overdue().await {
                    tracing::error!(error = %err, "expiring overdue promotions failed");
                }
                if let Err(err) = promotions.recover_stalled().await {
                    tracing::error!(error = %err, "recovering stalled promotions failed");
                }
                if let Err(err) = anomalies.prune().await {
                    tracing::error!(error = %err, "pruning anomaly signals failed");
                }
                send_expiry_notices(&identity).await;
            }
            _ = reload => {
                match promotions.reload_policy(&airlock_core::Actor::system()).await {
                    Ok(digest) => tracing::info!(%digest, "policy bundle reloaded (SIGHUP)"),
                    Err(err) => tracing::error!(error = %err, "policy bundle refused; the previous one stays"),
                }
            }
        }
    }
}

/// Appends the due `credential.expiring` / `credential.expired` events (once each).
async fn send_expiry_notices(identity: &Identity) {
    match identity.send_expiry_notices().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "API key expiry notices appended"),
        Err(err) => tracing::error!(error = %err, "appending API key expiry notices failed"),
    }
}

/// Cancels idle upload sessions, on the leader only (see `Registry::sweep_expired_uploads`).
async fn sweep_uploads(
    registry: Arc<Registry>,
    leadership: Arc<crate::leadership::Leadership>,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        if !leadership.is_leader() {
            continue;
        }
        match registry.sweep_expired_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "expired idle uploads"),
            Err(err) => tracing::warn!(error = %err, "upload expiry sweep failed"),
        }
    }
}
