//! airlock's configuration: one typed struct, every field defaulted, loaded once at start.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given by `--config`, `AIRLOCK_*`
//! environment variables (`AIRLOCK_LISTEN`, `AIRLOCK_DATA_DIR`, and nested fields with `__`, e.g.
//! `AIRLOCK_REGISTRY__MAX_MANIFEST_BYTES=8388608`), then command-line flags. See
//! `docs/configuration.md` for every field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use airlock_core::{StageConfig, Stages};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Serve plaintext HTTP on an address that is not loopback (`airlock serve --insecure-listen`).
    /// Off: without `[tls]` (or `--self-signed`) such an address is refused at start.
    pub insecure_listen: bool,
    /// Directory for the embedded database, blobs and keys. Required in every mode: with
    /// `database_url` set it still holds the keys (signing keys, keyring state) and TLS material.
    pub data_dir: PathBuf,
    /// The metadata database (`AIRLOCK_DATABASE_URL`). Unset: the embedded SQLite file in the
    /// data directory. `postgres://` or `postgresql://`: that PostgreSQL database (TLS as the
    /// URL's `sslmode` says), which several replicas may share. The URL may hold a password: it is
    /// never logged, and serialises with its credentials redacted.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted_url"
    )]
    pub database_url: Option<String>,
    /// Start even though the database is new while the data directory holds keys from an earlier
    /// installation (`airlock serve --allow-new-database`; never read from the file or the
    /// environment, so it cannot stay on by accident).
    #[serde(skip)]
    pub allow_new_database: bool,
    /// The key-encryption key (`AIRLOCK_KEY_ENCRYPTION_KEY_FILE`): a file of 32 random bytes in
    /// base64 (`head -c 32 /dev/urandom | base64`), the same for every replica. Required with a
    /// PostgreSQL `database_url`, where airlock's own keys live in the database sealed under it;
    /// ignored (with a warning) on the embedded default, which keeps its key files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate kept in the data directory (`airlock serve
    /// --self-signed`; never read from the file or the environment). Excludes `[tls]`.
    #[serde(skip)]
    pub self_signed: bool,
    /// Logging.
    pub log: LogConfig,
    /// Registry limits.
    pub registry: RegistryConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Identity and access control.
    pub access: AccessConfig,
    /// The policy bundle and promotion settings.
    pub policy: PolicyConfig,
    /// Gate settings per gated stage (by stage name); a gated stage without an entry gets the
    /// defaults.
    pub gates: std::collections::BTreeMap<String, GateConfig>,
    /// Anomaly rules: what airlock watches for and what it does when a rule trips.
    pub anomalies: AnomalyConfig,
    /// Webhook delivery: retries, backoff, timeouts.
    pub webhooks: WebhookConfig,
    /// Connection and upload limits against slow, idle or too many clients.
    pub limits: LimitsConfig,
    /// Graceful shutdown on SIGTERM or SIGINT: the drain delay and the shutdown timeout.
    pub shutdown: ShutdownConfig,
    /// TLS: the server's certificate and key, and client certificates for mutual TLS. Unset:
    /// plaintext HTTP (loopback only unless `insecure_listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The ordered stages.
    pub stages: Vec<StageConfig>,
    /// Garbage collection (`airlock gc`): the grace period and the retention rule.
    pub gc: GcConfig,
    /// Where blob bytes are kept: unset, the data directory's `blobs/`; `s3://BUCKET` or
    /// `s3://BUCKET/PREFIX`, an S3 bucket reached as `[s3]` says (docs/storage.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_store: Option<airlock_store::S3Location>,
    /// How the S3 bucket of `blob_store` is reached, and redirects of blob downloads to it.
    pub s3: S3Config,
    /// Deploy-time verification, deploy tokens and the Kubernetes admission webhook.
    pub deploy: DeployConfig,
    /// airlock as a witness of other transparency logs.
    pub witness: WitnessConfig,
}

/// Deploy-time verification (`POST /api/v1/verify`), deploy tokens and Kubernetes admission
/// (docs/deploy.md, "Deploy-time verification"; docs/kubernetes.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Accept tag references in gated stages, checked as the digest the tag names at that moment.
    /// Off (the default): a tag in a gated stage is refused, naming the digest to pin.
    pub allow_tags: bool,
    /// The host names (with the port, if one is written) deployments pull from airlock by, e.g.
    /// `airlock.example.com`. Set: a reference naming another host fails. Empty: hosts are not
    /// compared for digests (a digest names the same bytes anywhere), and no tag is accepted
    /// (airlock cannot tell a tag of another registry from its own). From the environment a
    /// comma-separated list (`AIRLOCK_DEPLOY__REGISTRY_HOSTS=airlock.example.com,10.0.0.5:5000`).
    pub registry_hosts: RegistryHosts,
    /// Most references one verification may name (1 to 1000).
    pub max_references: usize,
    /// Answers the verification cache keeps (0 turns it off). An answer is kept under the
    /// version of everything it read and never served once that moved.
    pub cache_entries: usize,
    /// The longest lifetime of a deploy token (`airlock deploy-token --ttl`), in seconds (60 to
    /// 86400).
    pub max_token_ttl_secs: u64,
    /// The Kubernetes ValidatingAdmissionWebhook at `/admission/v1/validate`; off unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionConfig>,
}

/// The host names airlock is pulled by: a list, or a comma-separated text from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RegistryHosts(pub Vec<String>);

impl<'de> Deserialize<'de> for RegistryHosts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            List(Vec<String>),
            Text(String),
        }
        let hosts = match Given::deserialize(deserializer)? {
            Given::List(hosts) => hosts,
            Given::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(str::to_string)
                .collect(),
        };
        for host in &hosts {
            let valid = !host.is_empty()
                && host.len() <= 255
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
            if !valid {
                return Err(serde::de::Error::custom(format!(
                    "registry_hosts: {host:?} is not a host name with an optional port (e.g. \"airlock.example.com\" or \"10.0.0.5:5000\")"
                )));
            }
        }
        Ok(Self(hosts))
    }
}

/// Most references a verification may name, whatever `max_references` says.
pub const MAX_VERIFY_REFERENCES: usize = 1000;

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            allow_tags: false,
            registry_hosts: RegistryHosts::default(),
            max_references: 100,
            cache_entries: 100_000,
            max_token_ttl_secs: 3600,
            admission: None,
        }
    }
}

/// The admission webhook: which namespaces deploy from which stage, and what a failed check does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// What a failed check does unless a namespace rule says otherwise: `enforce` denies the
    /// request, `warn` admits it with a warning per image.
    pub mode: AdmissionMode,
    /// What a namespace no rule matches gets: `deny` (the default: fail closed) or `allow`.
    pub unmatched: UnmatchedNamespace,
    /// Namespace rules, first match wins.
    pub namespaces: Vec<NamespaceRule>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            mode: AdmissionMode::Enforce,
            unmatched: UnmatchedNamespace::Deny,
            namespaces: Vec::new(),
        }
    }
}

/// What a failed admission check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionMode {
    /// Deny the request.
    Enforce,
    /// Admit it with warnings.
    Warn,
}

/// What a namespace no rule matches gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmatchedNamespace {
    /// Denied, naming the missing rule.
    Deny,
    /// Admitted unchecked.
    Allow,
}

/// Namespaces that deploy from one stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRule {
    /// Namespace names, each exact (`prod`) or a prefix pattern ending in `*` (`prod-*`).
    pub namespace_selector: Vec<String>,
    /// The stage their images must have been promoted into.
    pub stage: String,
    /// Overrides `[deploy.admission] mode` for these namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AdmissionMode>,
    /// Also require each image to be where its channel tag points now.
    #[serde(default)]
    pub current: bool,
}

impl NamespaceRule {
    /// Whether `namespace` is one of this rule's.
    pub fn matches(&self, namespace: &str) -> bool {
        self.namespace_selector
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => namespace.starts_with(prefix),
                None => namespace == pattern,
            })
    }
}

impl DeployConfig {
    fn validate(&self, stages: &[StageConfig]) -> Result<(), String> {
        if self.max_references == 0 || self.max_references > MAX_VERIFY_REFERENCES {
            return Err(format!(
                "deploy.max_references must be 1 to {MAX_VERIFY_REFERENCES}"
            ));
        }
        if !(60..=86_400).contains(&self.max_token_ttl_secs) {
            return Err("deploy.max_token_ttl_secs must be 60 to 86400 (one day)".to_string());
        }
        let Some(admission) = &self.admission else {
            return Ok(());
        };
        for rule in &admission.namespaces {
            if !stages.iter().any(|s| s.name.as_str() == rule.stage) {
                return Err(format!(
                    "deploy.admission.namespaces: there is no stage {:?}; the stages are: {}",
                    rule.stage,
                    stages
                        .iter()
                        .map(|s| s.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if rule.namespace_selector.is_empty() {
                return Err(format!(
                    "deploy.admission.namespaces: the rule for stage {} selects no namespace; list names or prefixes such as \"prod-*\"",
                    rule.stage
                ));
            }
            for pattern in &rule.namespace_selector {
                let name = pattern.strip_suffix('*').unwrap_or(pattern);
                let valid = name.len() <= 63
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && (pattern.ends_with('*') || !name.is_empty());
                if !valid {
                    return Err(format!(
                        "deploy.admission.namespaces: {pattern:?} is not a namespace name or a prefix ending in \"*\" (lowercase letters, digits and \"-\")"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The S3 bucket of `blob_store` (see `docs/storage.md`). Credentials are never configured here:
/// they come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (or a web
/// identity or the instance's role, as AWS clients look for them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The S3 endpoint, e.g. `https://s3.example.com` or `http://127.0.0.1:9000`. Unset: AWS in
    /// `region`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`), which most S3-compatible servers need;
    /// otherwise virtual-hosted ones (`BUCKET.ENDPOINT/KEY`), as AWS prefers.
    pub path_style: bool,
    /// Allows an `http://` endpoint (bytes and signed requests travel in the clear).
    pub allow_http: bool,
    /// Blob GETs that passed the access check answer `307` to a presigned URL of the bucket, so
    /// the bytes do not pass through airlock (clients must reach the bucket's endpoint).
    pub redirect: bool,
    /// How long a presigned URL stays valid, in seconds (10 to 3600).
    pub redirect_ttl_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            allow_http: false,
            redirect: false,
            redirect_ttl_secs: 300,
        }
    }
}

impl S3Config {
    /// The store's view of these settings.
    pub fn options(&self) -> airlock_store::S3Options {
        airlock_store::S3Options {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            allow_http: self.allow_http,
            redirect_ttl: self
                .redirect
                .then(|| std::time::Duration::from_secs(self.redirect_ttl_secs)),
        }
    }

    /// Checks the settings against each other and `blob_store`.
    fn validate(&self, blob_store: Option<&airlock_store::S3Location>) -> Result<(), String> {
        if !airlock_store::REDIRECT_TTL_SECS.contains(&self.redirect_ttl_secs) {
            return Err(format!(
                "s3.redirect_ttl_secs must be between {} and {}",
                airlock_store::REDIRECT_TTL_SECS.start(),
                airlock_store::REDIRECT_TTL_SECS.end()
            ));
        }
        if self.redirect && blob_store.is_none() {
            return Err(
                "s3.redirect needs blob_store = \"s3://BUCKET\": blobs in the data directory are served by airlock".into(),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            if endpoint.starts_with("http://") {
                if !self.allow_http {
                    return Err(format!(
                        "s3.endpoint {endpoint:?} is plain HTTP: use https://, or set s3.allow_http = true on a trusted network"
                    ));
                }
            } else if !endpoint.starts_with("https://") {
                return Err(format!(
                    "s3.endpoint {endpoint:?} must start with https:// (or http:// with s3.allow_http = true)"
                ));
            }
        }
        if self.region.is_empty() {
            return Err("s3.region must not be empty".into());
        }
        Ok(())
    }
}

/// Garbage collection (see `docs/operations.md`, "Garbage collection").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Seconds a blob is kept after it was last committed or linked into a repository, however
    /// unreferenced: the manifest that will reference it may still be on its way. Also the
    /// youngest age of a file without a row that gc deletes.
    pub grace_secs: u64,
    /// Untagged manifests held in a push-stage repository for longer than this many days are
    /// removed from it by gc (never anything a gated stage holds or that was ever promoted, nor
    /// its evidence). Unset: untagged manifests are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_untagged_days: Option<u32>,
    /// Allows a grace period under [`MIN_GC_GRACE_SECS`] (down to 0) and `keep_untagged_days =
    /// 0`: for tests and demonstrations only. With a short grace period gc deletes a blob whose
    /// manifest is still being pushed (the push fails with `MANIFEST_BLOB_UNKNOWN` and must be
    /// repeated), and with 0 days every untagged manifest in a push stage goes at the next run.
    pub unsafe_short_periods: bool,
}

/// The shortest `[gc] grace_secs` allowed without `unsafe_short_periods`: a push of a large image
/// over a slow link must get its manifest in within the grace period.
pub const MIN_GC_GRACE_SECS: u64 = 300;

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace_secs: 3600,
            keep_untagged_days: None,
            unsafe_short_periods: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            insecure_listen: false,
            data_dir: PathBuf::from("./airlock-data"),
            database_url: None,
            allow_new_database: false,
            key_encryption_key_file: None,
            self_signed: false,
            log: LogConfig::default(),
            registry: RegistryConfig::default(),
            audit: AuditConfig::default(),
            access: AccessConfig::default(),
            policy: PolicyConfig::default(),
            gates: std::collections::BTreeMap::new(),
            anomalies: AnomalyConfig::default(),
            webhooks: WebhookConfig::default(),
            limits: LimitsConfig::default(),
            shutdown: ShutdownConfig::default(),
            tls: None,
            stages: Stages::default_pipeline(),
            gc: GcConfig::default(),
            blob_store: None,
            s3: S3Config::default(),
            deploy: DeployConfig::default(),
            witness: WitnessConfig::default(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `airlock_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Registry limits and housekeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Largest manifest accepted, in bytes (default 4 MiB).
    pub max_manifest_bytes: usize,
    /// Upload sessions idle this many seconds are cancelled and their data deleted (default 24 h).
    pub upload_expiry_secs: u64,
    /// How often the expiry sweep runs, in seconds (default 10 min).
    pub upload_sweep_interval_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 * 1024 * 1024,
            upload_expiry_secs: 24 * 60 * 60,
            upload_sweep_interval_secs: 10 * 60,
        }
    }
}

/// The audit log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log's origin (the first line of every checkpoint and the name of its key), used when
    /// the log key is generated on first start. Unset: `airlock/<random id>`.
    pub origin: Option<String>,
    /// Witnesses that cosign the log's checkpoints (c2sp.org/tlog-witness): each new checkpoint
    /// is submitted to every one with a consistency proof from the size it last cosigned, and
    /// their cosignatures are served under the log's signature at `/log/checkpoint`.
    pub witnesses: Vec<AuditWitness>,
}

impl AuditConfig {
    fn validate(&self) -> Result<(), String> {
        let mut keys = std::collections::BTreeSet::new();
        for (index, witness) in self.witnesses.iter().enumerate() {
            let field = format!("audit.witnesses[{index}]");
            airlock_audit::witness_key_name(&witness.key)
                .map_err(|e| format!("{field}.key: {e}"))?;
            if !keys.insert(witness.key.trim()) {
                return Err(format!("{field}.key: the witness is listed twice"));
            }
            match reqwest::Url::parse(&witness.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "{field}.url: {:?} is not an http(s) URL (the witness's submission prefix, e.g. \"https://witness.example.com/witness\")",
                        witness.url
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One witness of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditWitness {
    /// The witness's submission prefix: checkpoints are POSTed to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's `cosignature/v1` verifier key (`<name>+<id>+<base64>`); its answers are
    /// verified with it before they are stored.
    pub key: String,
}

/// airlock as a witness of other transparency logs (c2sp.org/tlog-witness): it cosigns a log's
/// checkpoint only when it extends the last one it cosigned for that log, and never rolls back.
/// Served at `/witness/add-checkpoint` and `/witness/<origin hash>/checkpoint`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name, which is also its key's name (e.g. `airlock.example.com/witness`).
    /// Unset: airlock witnesses no log.
    pub name: Option<String>,
    /// The verifier keys of the logs it witnesses (`<origin>+<id>+<base64>`), one per origin.
    pub logs: Vec<String>,
}

impl WitnessConfig {
    /// Checks the name and the log keys (as loading a configuration file does).
    pub fn check(&self) -> Result<(), String> {
        self.validate()
    }

    fn validate(&self) -> Result<(), String> {
        let Some(name) = &self.name else {
            return if self.logs.is_empty() {
                Ok(())
            } else {
                Err("witness.logs needs witness.name (the name of the witness's key)".into())
            };
        };
        airlock_audit::WitnessKey::check_name(name).map_err(|_| {
            format!("witness.name {name:?}: a witness name is non-empty, without whitespace, '+' or control characters (e.g. witness.example.com/w1)")
        })?;
        let mut origins = std::collections::BTreeSet::new();
        for (index, key) in self.logs.iter().enumerate() {
            let origin = airlock_audit::log_key_origin(key)
                .map_err(|e| format!("witness.logs[{index}]: {e}"))?;
            if !origins.insert(origin.clone()) {
                return Err(format!(
                    "witness.logs[{index}]: a second key for the log {origin}; a witness trusts one key per origin"
                ));
            }
        }
        Ok(())
    }
}

/// Identity and access control.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Require an identity for every request (the default). `false` serves every request
    /// anonymously (stage rules still apply): only for a registry on loopback.
    pub enabled: bool,
    /// The base URL clients reach airlock at, for the token realm in `WWW-Authenticate`.
    /// Unset: `http://` and the address airlock listens on (never a request header).
    pub public_url: Option<String>,
    /// Lifetime of access tokens, in seconds (default 5 minutes).
    pub token_lifetime_secs: u64,
    /// Lifetime of refresh tokens (`airlock login`, clients asking for offline access), in
    /// seconds (default 7 days). Each exchange replaces the token with a new one of this lifetime.
    pub refresh_lifetime_secs: u64,
    /// Seconds without a request after which a web console session ends (default 30 minutes).
    pub console_idle_timeout_secs: u64,
    /// Seconds after sign-in after which a web console session ends however active it is
    /// (default 12 hours).
    pub console_session_lifetime_secs: u64,
    /// Clock skew tolerated when checking token times, in seconds.
    pub leeway_secs: u64,
    /// Longest API key lifetime a service account may get, in days; a key added without an
    /// expiry gets exactly this.
    pub max_api_key_days: u64,
    /// Longest just-in-time grant, in seconds (default 8 hours).
    pub max_grant_secs: u64,
    /// Failed authentications for one user name from one client address per minute before
    /// further attempts for that name from that address are refused with 429.
    pub max_failures_per_minute: u32,
    /// Failed authentications from one client address per minute (whatever the names) before
    /// every further attempt from that address is refused with 429: the ceiling on a password
    /// spray. Keep it well above `max_failures_per_minute` when many users share an address (NAT,
    /// a proxy).
    pub max_failures_per_source_per_minute: u32,
    /// Proxies (addresses or blocks such as `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored. Empty (the default): the TCP peer is
    /// the client.
    pub trusted_proxies: airlock_core::TrustedProxies,
    /// Role pairs nobody may hold together.
    pub exclusive_roles: Vec<[String; 2]>,
    /// Workload identity: OIDC issuers whose ID tokens are exchanged for builder tokens.
    pub oidc: Vec<OidcTrustConfig>,
    /// Sign-in to the web console with an OpenID Connect provider (authorization code with
    /// PKCE), people's groups mapped to roles; unset: the console signs in with passwords only.
    pub console_oidc: Option<ConsoleOidcConfig>,
    /// The fewest characters a new password may have (8 to 1024; default 12). Passwords are also
    /// checked against a built-in list of common passwords and may not contain the user name.
    pub password_min_length: airlock_identity::MinPasswordLength,
    /// Days before an API key's expiry at which a `credential.expiring` audit event (and so a
    /// webhook) is sent, once per key and threshold: a list (`[14, 3]`, the default), one
    /// number, or a comma-separated text from the environment
    /// (`AIRLOCK_ACCESS__CREDENTIAL_EXPIRY_WARNING_DAYS=14,3`). Empty: no warnings.
    pub credential_expiry_warning_days: ExpiryWarningDays,
    /// The initial `admin` password for a new installation (from `AIRLOCK_INITIAL_ADMIN_PASSWORD`;
    /// never read from the file). Unset: a random one is written to
    /// `<data_dir>/initial-admin-password`, and must be changed at the first login.
    #[serde(skip)]
    pub initial_admin_password: Option<Secret>,
}

/// The thresholds (days before expiry) of `credential.expiring` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ExpiryWarningDays(pub Vec<u32>);

impl<'de> Deserialize<'de> for ExpiryWarningDays {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            One(u32),
            List(Vec<u32>),
            Text(String),
        }
        let days = match Given::deserialize(deserializer)? {
            Given::One(days) => vec![days],
            Given::List(days) => days,
            Given::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(|part| {
                    part.parse::<u32>().map_err(|_| {
                        serde::de::Error::custom(format!(
                            "credential_expiry_warning_days: {part:?} is not a number of days (e.g. [14, 3])"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if days.contains(&0) {
            return Err(serde::de::Error::custom(
                "credential_expiry_warning_days: thresholds are days before expiry and must be at least 1",
            ));
        }
        Ok(Self(days))
    }
}

/// The policy bundle and promotion settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of the policy bundle (`.rego` files and `.json` data). Unset: the default
    /// bundle built into airlock (the repository's `policies/`).
    pub bundle: Option<PathBuf>,
    /// Longest a gate evaluation may take, in milliseconds; longer is a denial.
    pub timeout_ms: u64,
    /// How long a promotion waits for its approvals, in seconds (default 24 h).
    pub approval_ttl_secs: u64,
    /// How long a promotion may stay `evaluating` (its decision, and for an approved one the
    /// promotion transaction), in seconds (default 2 minutes). One left longer was stalled by a
    /// crash: it is reopened with its approvals (or, never approved, cancelled) at start-up and
    /// by the periodic sweep.
    pub decision_timeout_secs: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            bundle: None,
            timeout_ms: 1000,
            approval_ttl_secs: 24 * 3600,
            decision_timeout_secs: 120,
        }
    }
}

/// The gate of one gated stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// The Rego query deciding promotions into the stage. Unset: `data.airlock.gates.<stage>`.
    pub query: Option<String>,
    /// Approvals every promotion needs (the policy may ask for more).
    pub approvals: ApprovalConfig,
    /// Repositories that need more approvals.
    pub critical: Vec<CriticalConfig>,
    /// The Rego query deciding rollbacks in the stage. Unset: `data.airlock.rollback`.
    pub rollback_query: Option<String>,
}

/// Who approves, and how many.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Approvals required.
    pub count: u32,
    /// The role approvers must hold on the target repository.
    pub role: String,
    /// When approvals must be independent of the requester, of the artifact's pushers and
    /// builders and of each other (no approver whose account or approver role was created or
    /// granted by another party of the promotion):
    /// `always`, `critical` (the default: repositories matching a `critical` rule, and any
    /// promotion needing two or more approvals) or `off`.
    pub independent: airlock_core::promotion::IndependenceMode,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            count: 0,
            role: "approver".into(),
            independent: airlock_core::promotion::IndependenceMode::default(),
        }
    }
}

/// Repositories that need more approvals.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalConfig {
    /// Repository path patterns without the stage (`team/payments/*`, `*`).
    pub repositories: Vec<String>,
    /// Approvals they need.
    pub approvals: u32,
}

/// Anomaly rules (see `docs/anomalies.md`). Every rule has a threshold (signals in the window
/// that trip it), a window and an action; every trip is recorded, audited and alerted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Promotions denied for one principal.
    pub denied_promotions: RuleConfig,
    /// Failed authentications naming one principal (the action applies to it) or coming from
    /// one source address (alert only: there is no one principal to lock).
    pub auth_failures: RuleConfig,
    /// A signature or attestation naming a trusted key that does not verify with it.
    pub tampered_evidence: RuleConfig,
    /// A pull by digest from a gated stage the digest was never promoted into.
    pub unpromoted_digest: RuleConfig,
    /// A promotion requested outside `days`/`hours` (UTC). Off by default.
    pub off_hours_promotion: RuleConfig,
    /// Promotions into one gated stage above `threshold` per window.
    pub promotion_burst: RuleConfig,
    /// A break-glass promotion: always an anomaly (it cannot be disabled).
    pub break_glass: RuleConfig,
    /// Pushes or deletes into a gated stage refused for one principal (every refusal counts,
    /// though the audit log records one per principal, repository and minute).
    pub refused_pushes: RuleConfig,
    /// A deployment reported (`POST /api/v1/deployments`) running a digest never promoted into
    /// its stage.
    pub drift: RuleConfig,
    /// Verified provenance naming one source revision for two different digests in one
    /// repository path: a rebuild that did not reproduce the artifact.
    pub rebuild_mismatch: RuleConfig,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        use airlock_core::AnomalyAction::*;
        Self {
            denied_promotions: RuleConfig::new(5, 600, LockPrincipal),
            // Alert only by default: anyone who knows a name can fail to log in as it, so a lock
            // here is a lockout anyone can cause (operators may choose it knowingly).
            auth_failures: RuleConfig::new(20, 600, Alert),
            tampered_evidence: RuleConfig::new(1, 3600, QuarantineArtifact),
            unpromoted_digest: RuleConfig::new(1, 600, Alert),
            off_hours_promotion: RuleConfig {
                enabled: false,
                days: Some("mon-fri".into()),
                hours: Some("07:00-19:00".into()),
                ..RuleConfig::new(1, 60, Alert)
            },
            promotion_burst: RuleConfig::new(20, 600, Alert),
            break_glass: RuleConfig::new(1, 60, Alert),
            refused_pushes: RuleConfig::new(20, 600, Alert),
            drift: RuleConfig::new(1, 600, Alert),
            rebuild_mismatch: RuleConfig::new(1, 3600, Alert),
        }
    }
}

impl AnomalyConfig {
    /// Each rule with its settings.
    pub fn rules(&self) -> [(airlock_core::AnomalyRule, &RuleConfig); 10] {
        use airlock_core::AnomalyRule::*;
        [
            (DeniedPromotions, &self.denied_promotions),
            (AuthFailures, &self.auth_failures),
            (TamperedEvidence, &self.tampered_evidence),
            (UnpromotedDigest, &self.unpromoted_digest),
            (OffHoursPromotion, &self.off_hours_promotion),
            (PromotionBurst, &self.promotion_burst),
            (BreakGlass, &self.break_glass),
            (RefusedPushes, &self.refused_pushes),
            (Drift, &self.drift),
            (RebuildMismatch, &self.rebuild_mismatch),
        ]
    }

    /// The settings of `rule`.
    pub fn rule(&self, rule: airlock_core::AnomalyRule) -> &RuleConfig {
        self.rules()
            .into_iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, config)| config)
            .unwrap_or(&self.break_glass)
    }

    fn validate(&self, stages: &[StageConfig]) -> Result<(), String> {
        use airlock_core::AnomalyRule;
        for (rule, config) in self.rules() {
            let field = format!("anomalies.{rule}");
            if config.threshold == 0 || config.window_secs == 0 {
                return Err(format!(
                    "{field}: threshold and window_secs must be positive"
                ));
            }
            if !rule.supports(config.action) {
                return Err(format!(
                    "{field}.action: {} cannot act on what this rule observes; use alert or one of the actions docs/anomalies.md lists for it",
                    config.action
                ));
            }
            let promotion_rule = matches!(
                rule,
                AnomalyRule::OffHoursPromotion
                    | AnomalyRule::PromotionBurst
                    | AnomalyRule::DeniedPromotions
                    | AnomalyRule::BreakGlass
            );
            if !config.stages.is_empty() && !promotion_rule {
                return Err(format!("{field}.stages: only promotion rules take stages"));
            }
            for stage in &config.stages {
                if !stages.iter().any(|s| {
                    s.name.as_str() == stage.as_str() && s.mode == airlock_core::StageMode::Gated
                }) {
                    return Err(format!("{field}.stages: there is no gated stage {stage}"));
                }
            }
            let off_hours = rule == AnomalyRule::OffHoursPromotion;
            if (config.days.is_some() || config.hours.is_some()) && !off_hours {
                return Err(format!(
                    "{field}: days and hours belong to anomalies.off_hours_promotion"
                ));
            }
            if off_hours {
                config
                    .allowed_hours()
                    .map_err(|e| format!("{field}: {e}"))?;
            }
        }
        if !self.break_glass.enabled {
            return Err(
                "anomalies.break_glass.enabled: a break-glass promotion always raises an anomaly; it cannot be disabled".into(),
            );
        }
        Ok(())
    }
}

/// Webhook delivery (see `docs/webhooks.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Attempts per delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds; it doubles per attempt (with jitter).
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    pub max_backoff_ms: u64,
    /// How long one attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// How often the outbox is polled for due deliveries, in milliseconds.
    pub poll_interval_ms: u64,
    /// Whether endpoints may be (or resolve to) loopback, link-local, cloud metadata, private,
    /// shared (CGNAT), unique-local, multicast or reserved addresses. Off: such targets are
    /// refused when an endpoint is added (literal addresses) and at every send (resolved names).
    /// For labs and receivers on the same host only.
    pub allow_private_targets: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff_ms: 1000,
            max_backoff_ms: 10 * 60 * 1000,
            timeout_ms: 10_000,
            poll_interval_ms: 500,
            allow_private_targets: false,
        }
    }
}

/// Connection and upload limits (see `docs/operations.md`, "Limits and timeouts").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open client connections at most; a connection beyond it is answered 503 and closed.
    pub max_connections: usize,
    /// Seconds a connection has to deliver a complete request header, counted from when it
    /// opens or finishes its previous response: also the keep-alive idle timeout.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without delivering a byte while airlock waits for it; the
    /// request is then aborted (an upload keeps nothing of the chunk).
    pub body_timeout_secs: u64,
    /// Seconds a request body that is not a blob upload's may take in all, from its header; the
    /// request is then answered 408 and the connection closed.
    pub request_body_timeout_secs: u64,
    /// Upload bodies (PATCH, PUT, monolithic POST) streamed at once.
    pub max_concurrent_uploads: usize,
    /// Seconds an upload waits for a slot before it is refused with 429 and `Retry-After`.
    pub upload_queue_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout_secs: 30,
            body_timeout_secs: 60,
            request_body_timeout_secs: 30,
            max_concurrent_uploads: 256,
            upload_queue_secs: 10,
        }
    }
}

/// Graceful shutdown (see `docs/operations.md`, "Draining and rolling restarts"). On SIGTERM or
/// SIGINT `/readyz` answers 503 at once while requests are still served for `drain_delay_secs`
/// (so a load balancer polling it stops sending traffic first); then no new connection is accepted
/// and requests in flight get `timeout_secs` to finish. A second signal exits at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds between the signal and closing the listening socket, while `/readyz` answers 503
    /// and every request is still served. 0 closes it at once (a single server with no load
    /// balancer in front).
    pub drain_delay_secs: u64,
    /// Seconds requests in flight get to finish once the socket is closed; connections still open
    /// then are dropped.
    pub timeout_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay_secs: 5,
            timeout_secs: 30,
        }
    }
}

/// The longest polling interval a setting accepts (one week): timers beyond it would overflow.
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;

/// TLS termination (see `docs/tls.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to: mutual TLS. Unset: clients
    /// present no certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (the default; a client without a valid certificate is refused
    /// in the handshake) or `optional` (a client may present none, but one it presents must be
    /// valid). Given without `client_ca`, the start is refused (it would mean no mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// How often the certificate and key files are checked for changes, in seconds (they are
    /// also reloaded on SIGHUP).
    #[serde(default = "default_reload_interval")]
    pub reload_interval_secs: u64,
}

fn default_reload_interval() -> u64 {
    5
}

/// Whether clients must present a certificate (with `tls.client_ca`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every client presents a certificate chaining to `client_ca`.
    #[default]
    Required,
    /// A client may present none; one it presents must chain to `client_ca`.
    Optional,
}

/// One anomaly rule's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Whether the rule is evaluated.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Signals within the window that trip the rule (the Nth trips it).
    pub threshold: u32,
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// What to do: `alert`, `lock_principal`, `quarantine_artifact` or `freeze_stage`.
    pub action: airlock_core::AnomalyAction,
    /// Promotion rules: the gated stages watched (empty: every gated stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// `off_hours_promotion`: the allowed days (`mon-fri`, `mon,wed`, `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<String>,
    /// `off_hours_promotion`: the allowed hours, UTC (`07:00-19:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
}

fn enabled() -> bool {
    true
}

impl RuleConfig {
    fn new(threshold: u32, window_secs: u64, action: airlock_core::AnomalyAction) -> Self {
        Self {
            enabled: true,
            threshold,
            window_secs,
            action,
            stages: Vec::new(),
            days: None,
            hours: None,
        }
    }

    /// The allowed days and hours (`off_hours_promotion`).
    pub fn allowed_hours(&self) -> Result<airlock_core::AllowedHours, String> {
        airlock_core::AllowedHours::parse(
            self.days.as_deref().unwrap_or("*"),
            self.hours.as_deref().unwrap_or("00:00-24:00"),
        )
    }

    /// Whether the rule watches promotions into `stage`.
    pub fn watches(&self, stage: &str) -> bool {
        self.stages.is_empty() || self.stages.iter().any(|s| s == stage)
    }
}

/// A secret string that never appears in `Debug` output or logs.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: None,
            token_lifetime_secs: 300,
            refresh_lifetime_secs: 7 * 24 * 3600,
            console_idle_timeout_secs: 30 * 60,
            console_session_lifetime_secs: 12 * 3600,
            leeway_secs: 30,
            max_api_key_days: 365,
            credential_expiry_warning_days: ExpiryWarningDays(vec![14, 3]),
            max_grant_secs: 8 * 3600,
            max_failures_per_minute: 10,
            max_failures_per_source_per_minute: 100,
            trusted_proxies: airlock_core::TrustedProxies::default(),
            exclusive_roles: vec![["key-admin".to_string(), "approver".to_string()]],
            oidc: Vec::new(),
            console_oidc: None,
            password_min_length: airlock_identity::MinPasswordLength::default(),
            initial_admin_password: None,
        }
    }
}

/// The OpenID Connect provider people sign in to the web console with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidcConfig {
    /// The provider's issuer (`iss`), exactly.
    pub issuer: String,
    /// airlock's client id at the provider; ID tokens must name it in `aud`.
    pub client_id: String,
    /// A file holding the client secret, for a confidential client (sent as HTTP Basic,
    /// `client_secret_basic`); unset: a public client, protected by PKCE alone.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The provider's authorization endpoint (`https://`), where browsers are sent to sign in.
    pub authorization_endpoint: String,
    /// The provider's token endpoint (`https://`), where airlock exchanges the code.
    pub token_endpoint: String,
    /// The provider's JWKS as a file (exactly one of `jwks_file` and `jwks_url`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The provider's JWKS URL (`https://`), fetched at start and refreshed.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A PEM file with the only CA trusted for the token endpoint and `jwks_url`; unset: the
    /// system's roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// With `jwks_url`: seconds between refreshes (at least 10).
    #[serde(default = "OidcTrustConfig::default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Where the provider sends the browser back, exactly as registered there; unset:
    /// `access.public_url` + `/console/oidc/callback`, else the address the browser used.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Scopes asked for (must include `openid`).
    #[serde(default = "ConsoleOidcConfig::default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that names the person (their principal's name).
    #[serde(default = "ConsoleOidcConfig::default_username_claim")]
    pub username_claim: String,
    /// The ID token claim listing the person's groups (an array of strings).
    #[serde(default = "ConsoleOidcConfig::default_groups_claim")]
    pub groups_claim: String,
    /// The sign-in button's words.
    #[serde(default = "ConsoleOidcConfig::default_button_label")]
    pub button_label: String,
    /// Group to roles (`"role:scope"`, e.g. `"approver:prod"`): at each sign-in the person
    /// holds exactly the roles their groups map to (roles an access-admin granted stay).
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
}

impl ConsoleOidcConfig {
    fn default_scopes() -> Vec<String> {
        ["openid", "profile", "email"].map(String::from).to_vec()
    }

    fn default_username_claim() -> String {
        "preferred_username".into()
    }

    fn default_groups_claim() -> String {
        "groups".into()
    }

    fn default_button_label() -> String {
        "Sign in with single sign-on".into()
    }

    /// The JWKS source as a trust rule's, for [`crate::identity::jwks::JwksSource`].
    pub fn jwks_rule(&self) -> OidcTrustConfig {
        OidcTrustConfig {
            name: "console".into(),
            issuer: self.issuer.clone(),
            audience: self.client_id.clone(),
            jwks_file: self.jwks_file.clone(),
            jwks_url: self.jwks_url.clone(),
            ca_cert: self.ca_cert.clone(),
            jwks_refresh_secs: self.jwks_refresh_secs,
            claims: Default::default(),
            repositories: Vec::new(),
        }
    }

    /// The roles `groups` map to, as (role, scope), each once.
    pub fn grants_for(
        &self,
        groups: &[String],
    ) -> std::collections::BTreeSet<(airlock_core::access::Role, airlock_core::access::Scope)> {
        groups
            .iter()
            .filter_map(|group| self.groups.get(group))
            .flatten()
            .filter_map(|grant| parse_role_scope(grant).ok())
            .collect()
    }

    /// Checks the provider settings and every mapped grant.
    fn validate(&self) -> Result<(), String> {
        let https = |what: &str, url: &str| -> Result<(), String> {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("access.console_oidc.{what} {url:?} is not a URL: {e}"))?;
            if parsed.scheme() != "https" || parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "access.console_oidc.{what} {url:?} must be an https:// URL with a host"
                ));
            }
            Ok(())
        };
        if self.issuer.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err("access.console_oidc: set issuer and client_id".into());
        }
        https("authorization_endpoint", &self.authorization_endpoint)?;
        https("token_endpoint", &self.token_endpoint)?;
        if let Some(url) = &self.redirect_url {
            let parsed = reqwest::Url::parse(url).map_err(|e| {
                format!("access.console_oidc.redirect_url {url:?} is not a URL: {e}")
            })?;
            if !parsed.path().ends_with("/console/oidc/callback") {
                return Err(format!(
                    "access.console_oidc.redirect_url {url:?} must end with /console/oidc/callback"
                ));
            }
        }
        if !self.scopes.iter().any(|scope| scope == "openid") {
            return Err("access.console_oidc.scopes must include openid".into());
        }
        for (group, grants) in &self.groups {
            for grant in grants {
                parse_role_scope(grant).map_err(|e| {
                    format!("access.console_oidc.groups.{group:?}: {grant:?}: {e} (write role:scope, e.g. \"approver:prod\")")
                })?;
            }
        }
        self.jwks_rule()
            .validate()
            .map_err(|e| e.replace("access.oidc rule console", "access.console_oidc"))
    }
}

/// `"role:scope"` as a role and a scope.
fn parse_role_scope(
    text: &str,
) -> Result<(airlock_core::access::Role, airlock_core::access::Scope), String> {
    let (role, scope) = text
        .split_once(':')
        .ok_or_else(|| "not role:scope".to_string())?;
    Ok((
        role.parse().map_err(|e| format!("{e}"))?,
        scope.parse().map_err(|e| format!("{e}"))?,
    ))
}

/// One OIDC trust rule: which ID tokens are accepted and what they may push.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcTrustConfig {
    /// The rule's name; tokens act as principal `oidc/<name>`.
    pub name: String,
    /// The issuer (`iss`), exactly.
    pub issuer: String,
    /// The audience (`aud`) the token must carry.
    pub audience: String,
    /// The issuer's JWKS as a file, read at start (exactly one of `jwks_file` and `jwks_url`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL (`https://` only), fetched at start (a failure refuses the start),
    /// every `jwks_refresh_secs`, and when a token names an unknown key (at most every 30 s);
    /// a failed refresh keeps the last good JWKS and logs an error.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// With `jwks_url`: a PEM file with the CA that issued the JWKS server's certificate; only
    /// it is trusted for the fetch. Without it the system's roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// With `jwks_url`: seconds between refreshes (at least 10).
    #[serde(default = "OidcTrustConfig::default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Claims that must match (exact, or a prefix with a trailing `*`), e.g. `repository`, `ref`.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
    /// Scopes (e.g. `dev/team/*`) in which the exchanged token has the `builder` role.
    pub repositories: Vec<String>,
}

impl OidcTrustConfig {
    fn default_jwks_refresh_secs() -> u64 {
        3600
    }

    /// Checks the JWKS source: exactly one of `jwks_file` and an `https://` `jwks_url`,
    /// `ca_cert` only with `jwks_url`, a refresh interval of at least 10 s.
    fn validate(&self) -> Result<(), String> {
        let rule = &self.name;
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "access.oidc rule {rule}: set jwks_file or jwks_url, not both"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "access.oidc rule {rule}: set jwks_file (a JWKS file) or jwks_url (the issuer's https:// JWKS URL)"
                ));
            }
            (None, Some(url)) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| {
                    format!("access.oidc rule {rule}: jwks_url {url:?} is not a URL: {e}")
                })?;
                if parsed.scheme() != "https" || parsed.host_str().is_none_or(str::is_empty) {
                    return Err(format!(
                        "access.oidc rule {rule}: jwks_url {url:?} must be an https:// URL with a host"
                    ));
                }
            }
            (Some(_), None) => {
                if self.ca_cert.is_some() {
                    return Err(format!(
                        "access.oidc rule {rule}: ca_cert applies only to jwks_url (a jwks_file is read from disk)"
                    ));
                }
            }
        }
        if !(10..=MAX_INTERVAL_SECS).contains(&self.jwks_refresh_secs) {
            return Err(format!(
                "access.oidc rule {rule}: jwks_refresh_secs must be between 10 and {MAX_INTERVAL_SECS}"
            ));
        }
        Ok(())
    }
}

/// A configuration that could not be loaded; the message names the file, variable or field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, an environment variable or a field is malformed.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the bad value came from.
        origin: String,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Top-level fields that `AIRLOCK_*` variables may set; other `AIRLOCK_*` variables belong to
/// other tools (tests, the CLI) and are ignored here.
const ENV_SETTABLE: [&str; 21] = [
    "listen",
    "insecure_listen",
    "tls",
    "data_dir",
    "database_url",
    "log",
    "registry",
    "audit",
    "access",
    "policy",
    "gates",
    "anomalies",
    "webhooks",
    "limits",
    "shutdown",
    "gc",
    "blob_store",
    "s3",
    "key_encryption_key_file",
    "deploy",
    "witness",
];

/// Serialises a database URL without its credentials (see [`airlock_store::redact_url`]).
fn serialize_redacted_url<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&airlock_store::redact_url(url)),
        None => serializer.serialize_none(),
    }
}

impl Config {
    /// Where the metadata lives: the embedded SQLite file in the data directory, or the
    /// PostgreSQL database of `database_url` (already checked by [`Config::validate`]).
    pub fn database_location(&self) -> Result<airlock_store::DatabaseLocation, ConfigError> {
        match &self.database_url {
            None => Ok(airlock_store::DatabaseLocation::Sqlite(
                crate::data_dir::database_path(&self.data_dir),
            )),
            Some(url) => {
                let scheme = url.split_once("://").map(|(scheme, _)| scheme);
                match scheme {
                    Some("postgres" | "postgresql") => {
                        Ok(airlock_store::DatabaseLocation::Postgres(url.clone()))
                    }
                    _ => Err(ConfigError::Invalid {
                        origin: "database_url".into(),
                        message: format!(
                            "{} is not a database airlock can use: set database_url to postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://...) for PostgreSQL, or leave it unset for the embedded SQLite database in the data directory",
                            airlock_store::redact_url(url)
                        ),
                    }),
                }
            }
        }
    }

    /// Loads the configuration from an optional file and `AIRLOCK_*` variables (passed in, so this
    /// function reads no global state), then validates it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid {
                        origin: path.display().to_string(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(name) = key.strip_prefix("AIRLOCK_") else {
                continue;
            };
            let path: Vec<String> = name
                .to_ascii_lowercase()
                .split("__")
                .map(String::from)
                .collect();
            if !ENV_SETTABLE.contains(&path[0].as_str()) {
                continue;
            }
            set_path(&mut table, &path, env_value(&value)).map_err(|message| {
                ConfigError::Invalid {
                    origin: key.clone(),
                    message,
                }
            })?;
        }
        // A rule given in part (`[anomalies.denied_promotions] threshold = 3`) keeps the
        // defaults of its other fields.
        if let Some(given) = table.remove("anomalies") {
            let mut merged = toml::Value::try_from(AnomalyConfig::default()).map_err(|e| {
                ConfigError::Invalid {
                    origin: "anomalies".into(),
                    message: e.to_string(),
                }
            })?;
            merge_tables(&mut merged, given);
            table.insert("anomalies".into(), merged);
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: file.map_or("environment".into(), |p| p.display().to_string()),
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: the stage list, non-zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: "validation".into(),
            message,
        };
        Stages::new(self.stages.clone()).map_err(|e| invalid(format!("stages: {e}")))?;
        self.database_location()?;
        if self.registry.max_manifest_bytes == 0 {
            return Err(invalid(
                "registry.max_manifest_bytes must be positive".into(),
            ));
        }
        if self.access.console_idle_timeout_secs == 0
            || self.access.console_session_lifetime_secs == 0
        {
            return Err(invalid(
                "access.console_idle_timeout_secs and access.console_session_lifetime_secs must be at least 1 second".into(),
            ));
        }
        for (stage, gate) in &self.gates {
            let known = self.stages.iter().any(|s| {
                s.name.as_str() == stage.as_str() && s.mode == airlock_core::StageMode::Gated
            });
            if !known {
                return Err(invalid(format!(
                    "gates.{stage}: there is no gated stage {stage}"
                )));
            }
            for critical in &gate.critical {
                for pattern in &critical.repositories {
                    let starts_with_stage = self
                        .stages
                        .iter()
                        .any(|s| pattern.split('/').next() == Some(s.name.as_str()));
                    if pattern
                        .parse::<airlock_trust::verify::ScopePattern>()
                        .is_err()
                        || (starts_with_stage && pattern != "*")
                    {
                        return Err(invalid(format!(
                            "gates.{stage}.critical: {pattern:?} is not a repository path pattern without the stage (e.g. \"team/payments/*\")"
                        )));
                    }
                }
            }
            if gate.approvals.role.parse::<airlock_core::Role>().is_err() {
                return Err(invalid(format!(
                    "gates.{stage}.approvals.role: unknown role {:?}",
                    gate.approvals.role
                )));
            }
        }
        if self.policy.timeout_ms == 0 || self.policy.approval_ttl_secs == 0 {
            return Err(invalid(
                "policy.timeout_ms and policy.approval_ttl_secs must be positive".into(),
            ));
        }
        // A decision evaluates the gate up to three times (a keyring change retries it).
        if self.policy.decision_timeout_secs.saturating_mul(1000)
            < self
                .policy
                .timeout_ms
                .saturating_mul(3)
                .saturating_add(10_000)
        {
            return Err(invalid(format!(
                "policy.decision_timeout_secs must leave room for three gate evaluations: at least {} s with policy.timeout_ms = {}",
                (self.policy.timeout_ms.saturating_mul(3) + 10_000).div_ceil(1000),
                self.policy.timeout_ms
            )));
        }
        self.anomalies.validate(&self.stages).map_err(invalid)?;
        self.deploy.validate(&self.stages).map_err(invalid)?;
        self.audit.validate().map_err(invalid)?;
        self.witness.validate().map_err(invalid)?;
        for rule in &self.access.oidc {
            rule.validate().map_err(invalid)?;
        }
        if let Some(console) = &self.access.console_oidc {
            console.validate().map_err(invalid)?;
        }
        let hooks = &self.webhooks;
        if hooks.max_attempts == 0
            || hooks.max_attempts > 1000
            || hooks.initial_backoff_ms == 0
            || hooks.max_backoff_ms < hooks.initial_backoff_ms
            || hooks.max_backoff_ms > 7 * 24 * 3600 * 1000
            || hooks.timeout_ms == 0
            || hooks.timeout_ms > 10 * 60 * 1000
            || hooks.poll_interval_ms == 0
            || hooks.poll_interval_ms > 60 * 60 * 1000
        {
            return Err(invalid(
                "webhooks: max_attempts must be 1 to 1000; initial_backoff_ms, timeout_ms (at most 10 min) and poll_interval_ms (at most 1 h) positive; max_backoff_ms between initial_backoff_ms and 7 days".into(),
            ));
        }
        let limits = &self.limits;
        if limits.max_connections == 0
            || limits.header_read_timeout_secs == 0
            || limits.body_timeout_secs == 0
            || limits.request_body_timeout_secs == 0
            || limits.max_concurrent_uploads == 0
            || limits.max_concurrent_uploads > tokio::sync::Semaphore::MAX_PERMITS
            || limits.max_connections > tokio::sync::Semaphore::MAX_PERMITS
        {
            return Err(invalid(
                "limits: max_connections, max_concurrent_uploads, header_read_timeout_secs, body_timeout_secs and request_body_timeout_secs must be positive".into(),
            ));
        }
        let shutdown = &self.shutdown;
        if shutdown.drain_delay_secs > MAX_INTERVAL_SECS
            || shutdown.timeout_secs > MAX_INTERVAL_SECS
        {
            return Err(invalid(format!(
                "shutdown: drain_delay_secs and timeout_secs must be at most {MAX_INTERVAL_SECS}"
            )));
        }
        self.s3
            .validate(self.blob_store.as_ref())
            .map_err(invalid)?;
        let gc = &self.gc;
        let min_grace = if gc.unsafe_short_periods {
            0
        } else {
            MIN_GC_GRACE_SECS
        };
        if !(min_grace..=MAX_INTERVAL_SECS).contains(&gc.grace_secs) {
            return Err(invalid(format!(
                "gc.grace_secs must be between {min_grace} and {MAX_INTERVAL_SECS} (a shorter grace period only with gc.unsafe_short_periods = true, for tests)"
            )));
        }
        if gc.keep_untagged_days == Some(0) && !gc.unsafe_short_periods {
            return Err(invalid(
                "gc.keep_untagged_days must be at least 1 (0 only with gc.unsafe_short_periods = true, for tests); unset it to keep untagged manifests".into(),
            ));
        }
        if let Some(tls) = &self.tls {
            if self.self_signed {
                return Err(invalid(
                    "--self-signed and [tls] exclude each other: drop --self-signed to serve the configured certificate, or remove [tls]".into(),
                ));
            }
            if !(1..=MAX_INTERVAL_SECS).contains(&tls.reload_interval_secs) {
                return Err(invalid(format!(
                    "tls.reload_interval_secs must be between 1 and {MAX_INTERVAL_SECS} (SIGHUP also reloads)"
                )));
            }
            if let Some(auth) = tls.client_auth
                && tls.client_ca.is_none()
            {
                let value = match auth {
                    ClientAuth::Required => "required",
                    ClientAuth::Optional => "optional",
                };
                return Err(invalid(format!(
                    "tls.client_auth = \"{value}\" needs tls.client_ca (the CA client certificates must chain to); without it no client certificate is asked for"
                )));
            }
        }
        if self.registry.upload_sweep_interval_secs == 0 {
            return Err(invalid(
                "registry.upload_sweep_interval_secs must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The gate settings of `stage` (defaults if unconfigured).
    pub fn gate(&self, stage: &str) -> GateConfig {
        self.gates.get(stage).cloned().unwrap_or_default()
    }

    /// The validated stages.
    pub fn stages(&self) -> Result<Stages, ConfigError> {
        Stages::new(self.stages.clone()).map_err(|e| ConfigError::Invalid {
            origin: "validation".into(),
            message: format!("stages: {e}"),
        })
    }
}

/// Overlays `given` on `base`: tables merge key by key, anything else replaces.
fn merge_tables(base: &mut toml::Value, given: toml::Value) {
    match (base, given) {
        (toml::Value::Table(base), toml::Value::Table(given)) => {
            for (key, value) in given {
                match base.get_mut(&key) {
                    Some(existing) => merge_tables(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, given) => *base = given,
    }
}

/// An environment value as TOML when it parses as a number or boolean, else as a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_string())
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty variable name")?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("{key} is not a table"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[gc]` periods are bounded: a grace period under five minutes or a retention of 0 days
    /// only with `unsafe_short_periods`, and nothing so long that the cutoff overflows.
    #[test]
    fn gc_periods_are_bounded() {
        let load = |gc: &str| {
            static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("airlock-gc-config-{}-{n}.toml", std::process::id()));
            std::fs::write(&path, format!("[gc]\n{gc}\n")).unwrap();
            let loaded = Config::load(Some(&path), []).map(|c| c.gc);
            let _ = std::fs::remove_file(&path);
            loaded
        };
        let gc = load("grace_secs = 300\nkeep_untagged_days = 1").unwrap();
        assert_eq!((gc.grace_secs, gc.keep_untagged_days), (300, Some(1)));
        assert_eq!(
            load(&format!("grace_secs = {MAX_INTERVAL_SECS}"))
                .unwrap()
                .grace_secs,
            MAX_INTERVAL_SECS
        );
        let gc =
            load("grace_secs = 0\nkeep_untagged_days = 0\nunsafe_short_periods = true").unwrap();
        assert_eq!((gc.grace_secs, gc.keep_untagged_days), (0, Some(0)));
        for (gc, words) in [
            ("grace_secs = 299", "gc.grace_secs must be between 300 and"),
            ("grace_secs = 0", "unsafe_short_periods"),
            (
                "grace_secs = 9223372036854775807",
                "gc.grace_secs must be between 300 and",
            ),
            (
                "grace_secs = 10000000000000000\nunsafe_short_periods = true",
                "gc.grace_secs must be between",
            ),
            (
                "keep_untagged_days = 0",
                "gc.keep_untagged_days must be at least 1",
            ),
        ] {
            let err = load(gc).unwrap_err().to_string();
            assert!(err.contains(words), "{gc}: {err}");
        }
    }

    #[test]
    fn an_oidc_rule_needs_exactly_one_https_jwks_source() {
        let rule = |source: &str| {
            static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!(
                "airlock-oidc-config-{}-{n}.toml",
                std::process::id()
            ));
            std::fs::write(
                &path,
                format!(
                    "[[access.oidc]]\nname = \"ci\"\nissuer = \"https://ci.example\"\n\
                     audience = \"airlock\"\nrepositories = [\"dev/*\"]\n{source}\n"
                ),
            )
            .unwrap();
            let loaded = Config::load(Some(&path), []).map(|_| ());
            let _ = std::fs::remove_file(&path);
            loaded
        };
        rule("jwks_file = \"/etc/jwks.json\"").unwrap();
        rule("jwks_url = \"https://ci.example/.well-known/jwks\"\nca_cert = \"/etc/ca.pem\"")
            .unwrap();
        for (source, words) in [
            ("", "set jwks_file (a JWKS file) or jwks_url"),
            (
                "jwks_file = \"/j\"\njwks_url = \"https://ci.example/jwks\"",
                "not both",
            ),
            (
                "jwks_url = \"http://ci.example/jwks\"",
                "must be an https:// URL",
            ),
            ("jwks_url = \"not a url\"", "is not a URL"),
            (
                "jwks_file = \"/j\"\nca_cert = \"/ca.pem\"",
                "ca_cert applies only to jwks_url",
            ),
            (
                "jwks_url = \"https://ci.example/jwks\"\njwks_refresh_secs = 1",
                "between 10 and 604800",
            ),
            (
                // A timer this far away would overflow.
                "jwks_url = \"https://ci.example/jwks\"\njwks_refresh_secs = 9999999999",
                "between 10 and 604800",
            ),
        ] {
            let err = rule(source).unwrap_err().to_string();
            assert!(
                err.contains("access.oidc rule ci") && err.contains(words),
                "{source}: {err}"
            );
        }
    }

    #[test]
    fn a_database_url_selects_postgres_and_is_never_shown_with_its_password() {
        let config = Config::load(None, []).unwrap();
        assert!(matches!(
            config.database_location().unwrap(),
            airlock_store::DatabaseLocation::Sqlite(path) if path.ends_with("metadata.db")
        ));
        for scheme in ["postgres", "postgresql"] {
            let url = format!("{scheme}://airlock:s3cret@db:5432/airlock?sslmode=require");
            let env = [("AIRLOCK_DATABASE_URL".to_string(), url.clone())];
            let config = Config::load(None, env).unwrap();
            assert_eq!(
                config.database_location().unwrap(),
                airlock_store::DatabaseLocation::Postgres(url)
            );
            let shown = toml::to_string(&config).unwrap();
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db:5432/airlock"), "{shown}");
        }
        let env = [(
            "AIRLOCK_DATABASE_URL".to_string(),
            "mysql://root:s3cret@db/airlock".to_string(),
        )];
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(
            err.contains("postgres://") && err.contains("postgresql://"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, []).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.stages().unwrap().all().len(), 3);
    }

    #[test]
    fn env_overrides_nested_fields_and_ignores_foreign_variables() {
        let env = [
            ("AIRLOCK_LISTEN".to_string(), "0.0.0.0:6000".to_string()),
            (
                "AIRLOCK_REGISTRY__MAX_MANIFEST_BYTES".to_string(),
                "1024".to_string(),
            ),
            ("AIRLOCK_INTEROP".to_string(), "required".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.registry.max_manifest_bytes, 1024);
    }

    #[test]
    fn expiry_warning_days_take_a_list_a_number_or_a_comma_separated_text() {
        assert_eq!(
            Config::load(None, [])
                .unwrap()
                .access
                .credential_expiry_warning_days
                .0,
            vec![14, 3]
        );
        for (value, expected) in [("2", vec![2]), ("14,3", vec![14, 3]), ("", vec![])] {
            let env = [(
                "AIRLOCK_ACCESS__CREDENTIAL_EXPIRY_WARNING_DAYS".to_string(),
                value.to_string(),
            )];
            let config = Config::load(None, env).unwrap();
            assert_eq!(config.access.credential_expiry_warning_days.0, expected);
        }
        for bad in ["0", "x", "3,-1"] {
            let env = [(
                "AIRLOCK_ACCESS__CREDENTIAL_EXPIRY_WARNING_DAYS".to_string(),
                bad.to_string(),
            )];
            assert!(Config::load(None, env).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_minimum_is_read_and_bounded() {
        let set = |value: &str| {
            Config::load(
                None,
                [(
                    "AIRLOCK_ACCESS__PASSWORD_MIN_LENGTH".to_string(),
                    value.to_string(),
                )],
            )
        };
        assert_eq!(Config::default().access.password_min_length.get(), 12);
        assert_eq!(set("16").unwrap().access.password_min_length.get(), 16);
        for bad in ["7", "1025"] {
            let err = set(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "a minimum password length of {bad} is outside 8..=1024"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn anomaly_rules_given_in_part_keep_their_other_defaults() {
        let env = [
            (
                "AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__THRESHOLD".to_string(),
                "2".to_string(),
            ),
            (
                "AIRLOCK_ANOMALIES__PROMOTION_BURST__ACTION".to_string(),
                "freeze_stage".to_string(),
            ),
        ];
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.anomalies.denied_promotions.threshold, 2);
        assert_eq!(config.anomalies.denied_promotions.window_secs, 600);
        assert_eq!(
            config.anomalies.promotion_burst.action,
            airlock_core::AnomalyAction::FreezeStage
        );
        let refused = [
            (
                "AIRLOCK_ANOMALIES__AUTH_FAILURES__ACTION",
                "freeze_stage",
                "auth_failures.action",
            ),
            (
                "AIRLOCK_ANOMALIES__BREAK_GLASS__ENABLED",
                "false",
                "cannot be disabled",
            ),
            (
                "AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__HOURS",
                "9-17",
                "HH:MM",
            ),
            (
                "AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__THRESHOLD",
                "0",
                "positive",
            ),
            (
                "AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__ACTION",
                "lock",
                "unknown variant",
            ),
        ];
        for (name, value, words) in refused {
            let err = Config::load(None, [(name.to_string(), value.to_string())])
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{name}: {err}");
        }
        let mut config = Config::default();
        config.anomalies.promotion_burst.stages = vec!["dev".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("no gated stage dev"), "{err}");
        for (name, value) in [
            ("AIRLOCK_WEBHOOKS__POLL_INTERVAL_MS", "0"),
            ("AIRLOCK_WEBHOOKS__MAX_ATTEMPTS", "0"),
            ("AIRLOCK_WEBHOOKS__TIMEOUT_MS", "9999999999999"),
            ("AIRLOCK_WEBHOOKS__MAX_BACKOFF_MS", "10"),
        ] {
            let err = Config::load(None, [(name.to_string(), value.to_string())])
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains("webhooks:"), "{name}: {err}");
        }
    }

    #[test]
    fn file_errors_name_the_field() {
        let dir = std::env::temp_dir().join(format!("airlock-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("airlock.toml");
        std::fs::write(&file, "[registry]\nmax_manifest_byte = 3\n").unwrap();
        let err = Config::load(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("max_manifest_byte"), "{err}");

        std::fs::write(
            &file,
            "[[stages]]\nname = \"dev\"\nmode = \"push\"\n[[stages]]\nname = \"prod\"\nmode = \"gated\"\nfrom = [\"qa\"]\n",
        )
        .unwrap();
        let err = Config::load(Some(&file), []).unwrap_err().to_string();
        assert!(err.contains("stages") && err.contains("qa"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// `blob_store` takes `s3://BUCKET[/PREFIX]` only; `[s3]` is checked against it: plain HTTP
    /// only when allowed, redirects only on S3 and for 10 s to 1 h.
    #[test]
    fn blob_store_and_s3_settings_are_checked() {
        let load = |pairs: &[(&str, &str)]| {
            Config::load(
                None,
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let config = load(&[
            ("AIRLOCK_BLOB_STORE", "s3://airlock-blobs/prod"),
            ("AIRLOCK_S3__ENDPOINT", "http://127.0.0.1:9000"),
            ("AIRLOCK_S3__ALLOW_HTTP", "true"),
            ("AIRLOCK_S3__PATH_STYLE", "true"),
            ("AIRLOCK_S3__REDIRECT", "true"),
        ])
        .unwrap();
        let location = config.blob_store.clone().unwrap();
        assert_eq!(
            (location.bucket(), location.to_string().as_str()),
            ("airlock-blobs", "s3://airlock-blobs/prod")
        );
        let options = config.s3.options();
        assert_eq!(options.region, "us-east-1");
        assert_eq!(
            options.redirect_ttl,
            Some(std::time::Duration::from_secs(300))
        );
        assert!(options.path_style && options.allow_http);
        assert!(load(&[]).unwrap().blob_store.is_none());
        for (pairs, words) in [
            (
                vec![("AIRLOCK_BLOB_STORE", "/var/lib/blobs")],
                "write s3://BUCKET or s3://BUCKET/PREFIX",
            ),
            (
                vec![("AIRLOCK_BLOB_STORE", "s3://Bad_Bucket")],
                "bucket name must be",
            ),
            (
                vec![
                    ("AIRLOCK_BLOB_STORE", "s3://airlock-blobs"),
                    ("AIRLOCK_S3__ENDPOINT", "http://127.0.0.1:9000"),
                ],
                "s3.allow_http = true",
            ),
            (
                vec![
                    ("AIRLOCK_BLOB_STORE", "s3://airlock-blobs"),
                    ("AIRLOCK_S3__ENDPOINT", "127.0.0.1:9000"),
                ],
                "must start with https://",
            ),
            (
                vec![("AIRLOCK_S3__REDIRECT", "true")],
                "s3.redirect needs blob_store",
            ),
            (
                vec![
                    ("AIRLOCK_BLOB_STORE", "s3://airlock-blobs"),
                    ("AIRLOCK_S3__REDIRECT_TTL_SECS", "3601"),
                ],
                "s3.redirect_ttl_secs must be between 10 and 3600",
            ),
            (
                vec![("AIRLOCK_S3__SECRET_ACCESS_KEY", "x")],
                "unknown field `secret_access_key`",
            ),
            (vec![("AIRLOCK_WITNESS__NAME", "has space")], "witness.name"),
            (
                vec![
                    ("AIRLOCK_WITNESS__NAME", "w.test/w"),
                    ("AIRLOCK_WITNESS__LOGS", "x"),
                ],
                "invalid type",
            ),
        ] {
            let err = load(&pairs).unwrap_err().to_string();
            assert!(err.contains(words), "{pairs:?}: {err}");
        }
    }
}

#[cfg(test)]
mod witness_config_tests {
    use super::*;

    fn config(text: &str) -> Result<(), String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn witness_keys_urls_and_logs_are_checked() {
        let witness = airlock_audit::WitnessKey::generate("w.test/w1").unwrap();
        let log = airlock_audit::LogKey::generate("log.test/a").unwrap();
        let witnessed = format!(
            "[[audit.witnesses]]\nurl = \"https://w.test/witness\"\nkey = \"{}\"\n",
            witness.verifier_key()
        );
        config(&witnessed).unwrap();
        for (text, words) in [
            (
                witnessed.replace("https://w.test/witness", "ftp://w.test"),
                "is not an http(s) URL",
            ),
            (
                format!("{witnessed}{witnessed}"),
                "the witness is listed twice",
            ),
            (
                format!(
                    "[[audit.witnesses]]\nurl = \"https://w.test\"\nkey = \"{}\"\n",
                    log.verifier_key()
                ),
                "malformed witness key",
            ),
            (
                "[witness]\nlogs = [\"x\"]\n".to_string(),
                "witness.logs needs witness.name",
            ),
            (
                format!(
                    "[witness]\nname = \"w.test/w1\"\nlogs = [\"{}\", \"{}\"]\n",
                    log.verifier_key(),
                    log.verifier_key()
                ),
                "a second key for the log log.test/a",
            ),
            (
                format!(
                    "[witness]\nname = \"w.test/w1\"\nlogs = [\"{}\"]\n",
                    witness.verifier_key()
                ),
                "witness.logs[0]",
            ),
        ] {
            let err = config(&text).unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
        config(&format!(
            "[witness]\nname = \"w.test/w1\"\nlogs = [\"{}\"]\n",
            log.verifier_key()
        ))
        .unwrap();
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must load and must equal the built-in defaults it claims to show.
    #[test]
    fn documented_example_is_the_default() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/airlock.example.toml"
        );
        let example = Config::load(Some(Path::new(path)), []).unwrap();
        let default = Config::default();
        assert_eq!(
            toml::to_string(&example).unwrap(),
            toml::to_string(&default).unwrap()
        );
    }
}
