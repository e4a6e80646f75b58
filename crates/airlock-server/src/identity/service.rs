//! The identity service: bootstrap, authentication, token issuing, grants, administration.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use airlock_core::access::{
    AccessRuleViolation, ExclusivePair, Grant, Permission, PermissionTarget, Role, Scope,
};
use airlock_core::{Action, Actor, AuditEvent, AuditRecord, RepoName, Stages};
use airlock_identity::AccessEntry;
use airlock_store::{
    AccessRequestRow, CredentialRow, Metadata, PasswordChange, PrincipalRow, StoreError, now_millis,
};

use crate::config::AccessConfig;

mod accounts;
mod api_keys;
mod console;
mod console_oidc;
mod deploy_tokens;
mod lists;
mod secrets;
mod tokens;

pub use api_keys::AddedKey;
pub use console::{ConsoleSession, SESSION_AUTH};
pub use deploy_tokens::{DEPLOY_AUTH, DeployToken, is_deploy_token, looks_like_token};
pub use lists::ListedBinding;
pub use tokens::IssuedTokens;

/// The issuer and audience of airlock's tokens.
pub const TOKEN_ISSUER: &str = "airlock";
/// The `service` of the Docker token flow.
pub const TOKEN_SERVICE: &str = "airlock";

/// Why identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or secret file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The configuration is invalid.
    #[error("access configuration: {0}")]
    Config(String),
    /// A password could not be hashed or generated.
    #[error(transparent)]
    Password(#[from] PasswordFailure),
}

/// Why a request could not be authenticated or authorized. Each maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were presented.
    #[error("authentication required")]
    Missing,
    /// The credentials are wrong (the message never says which part).
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// The principal may not authenticate at all (disabled, or locked by an anomaly); only told to
    /// whoever presented its valid secret or token.
    #[error("{0}")]
    Barred(String),
    /// The password was reset (or generated at installation) and must be changed before it is
    /// used for anything else; only whoever presented it learns this.
    #[error(
        "the password of {principal} must be changed before it can be used: run `airlock users passwd -u {principal} --password-stdin` (current and new password on standard input), then log in with the new one"
    )]
    PasswordChangeRequired {
        /// Whose password.
        principal: String,
    },
    /// A new password does not satisfy the password policy.
    #[error(transparent)]
    Policy(#[from] airlock_identity::PasswordRejected),
    /// Too many failures for this principal or source.
    #[error("too many failed authentications; retry in a minute")]
    RateLimited,
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A separation-of-duties rule refused the change.
    #[error(transparent)]
    Rule(#[from] AccessRuleViolation),
    /// A malformed `/auth/token` request (a missing field or an unsupported grant type).
    #[error("{0}")]
    TokenRequest(String),
    /// A scope names a stage that is not configured.
    #[error(
        "scope {scope} names stage {stage:?}, which is not configured; the stages are: {}",
        configured.join(", ")
    )]
    UnknownStage {
        /// The scope as given.
        scope: String,
        /// The stage it names.
        stage: String,
        /// The configured stages, in order.
        configured: Vec<String>,
    },
    /// A principal name breaks the naming rule.
    #[error(
        "invalid name {name:?}: use 1-64 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
    )]
    InvalidName {
        /// The name (at most 64 characters of it).
        name: String,
    },
    /// A password operation on a service account, which has API keys instead.
    #[error("{name} is a service account: it has API keys, not a password")]
    NoPassword {
        /// The service account.
        name: String,
    },
    /// An API key operation on a principal that is not a service account.
    #[error("{name} is not a service account: API keys belong to service accounts")]
    NotServiceAccount {
        /// The principal.
        name: String,
    },
    /// The new password is the current one.
    #[error("the new password is the current one")]
    SamePassword,
    /// An access-admin tried to disable their own account.
    #[error("you cannot disable yourself")]
    DisableSelf,
    /// An API key expiry out of bounds.
    #[error(transparent)]
    Expiry(#[from] airlock_core::api_key::LifetimeError),
    /// A just-in-time grant duration out of bounds.
    #[error("the duration must be between 1 s and {max_secs} s (access.max_grant_secs)")]
    GrantDuration {
        /// `access.max_grant_secs`.
        max_secs: u64,
    },
    /// A just-in-time request without a reason.
    #[error("a reason is required (e.g. the incident or change ticket)")]
    ReasonRequired,
    /// A stored access request names a role this version does not know (the database was
    /// written by another version; an internal failure, never the client's).
    #[error("access request {id} holds an unknown role")]
    StoredRole {
        /// The request.
        id: i64,
        /// Why the role does not parse.
        #[source]
        source: airlock_core::access::UnknownRole,
    },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token could not be signed (an internal failure, never the client's).
    #[error("token signing failed")]
    Signing(#[source] airlock_identity::IdentityError),
    /// A new password could not be hashed or generated (an internal failure, never the client's).
    #[error(transparent)]
    Hashing(#[from] PasswordFailure),
}

/// Why [`Identity::set_password`] failed: hashing or storing.
#[derive(Debug)]
enum SetPasswordError {
    Store(StoreError),
    Password(PasswordFailure),
}

impl From<StoreError> for SetPasswordError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<SetPasswordError> for AuthError {
    fn from(err: SetPasswordError) -> Self {
        match err {
            SetPasswordError::Store(err) => Self::Store(err),
            SetPasswordError::Password(err) => Self::Hashing(err),
        }
    }
}

impl From<SetPasswordError> for IdentityError {
    fn from(err: SetPasswordError) -> Self {
        match err {
            SetPasswordError::Store(err) => Self::Store(err),
            SetPasswordError::Password(err) => Self::Password(err),
        }
    }
}

/// Why a password could not be hashed or generated (an internal failure, never the client's).
#[derive(Debug, thiserror::Error)]
pub enum PasswordFailure {
    /// argon2 refused.
    #[error("hashing the password failed")]
    Hash(#[source] airlock_identity::IdentityError),
    /// The blocking task that hashes died.
    #[error("the password hashing task failed")]
    Task(#[source] tokio::task::JoinError),
    /// No generated password satisfied the policy.
    #[error("generating a password failed")]
    Generate(#[source] airlock_identity::GenerationFailed),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The principal.
    pub principal: PrincipalRow,
    /// How it authenticated (`password`, `api_key`, `token`, `oidc`).
    pub method: String,
    /// Its active grants now.
    pub grants: Vec<Grant>,
    /// The registry access its token carries (`None` for credentials checked directly).
    pub token_access: Option<Vec<AccessEntry>>,
    /// The stored credential this authentication descends from (`password:<id>` or an API key
    /// id; `None` for OIDC): tokens issued to the caller carry it and stop working with it.
    pub credential: Option<String>,
    /// The refresh-token family (login) a token descends from, if any.
    pub refresh_family: Option<String>,
}

impl Authenticated {
    /// The audit log's view of this caller.
    pub fn actor(&self, source: Option<std::net::SocketAddr>) -> Actor {
        Actor {
            principal: self.principal.name.clone(),
            auth_method: self.method.clone(),
            source: source.map(|s| s.to_string()),
        }
    }

    /// Whether the caller holds `permission` for `target`.
    pub fn has(&self, permission: Permission, target: &PermissionTarget) -> bool {
        airlock_core::access::has_permission(&self.grants, permission, target, now_millis())
    }
}

/// A password or API key verified recently, so Basic auth on every request does not rerun argon2.
///
/// A hit counts only while the principal's `authz_epoch` is still `authz_epoch` (read before the
/// hash the secret was verified against) and the credential still has `secret_hash`: a password
/// change keeps the credential id but bumps the epoch and replaces the hash, so an entry for the
/// old password misses even if a check that started before the change inserted it after the
/// change cleared the cache.
struct CachedCredential {
    principal_id: i64,
    method: &'static str,
    credential_id: String,
    authz_epoch: i64,
    secret_hash: String,
    until: Instant,
}

/// The identity service.
pub struct Identity {
    metadata: Metadata,
    /// The token signing key and the keys it replaced (rotated by `server_keys`).
    token_keys: Arc<crate::server_keys::TokenKeys>,
    config: AccessConfig,
    stages: Stages,
    exclusive: Vec<ExclusivePair>,
    oidc: Vec<(airlock_identity::TrustRule, super::jwks::JwksSource)>,
    /// The provider people sign in to the console with, if configured.
    console_oidc: Option<console_oidc::ConsoleOidc>,
    verified: Mutex<HashMap<[u8; 32], CachedCredential>>,
    /// When each API key's last use was last written (`api_keys::note_api_key_use`).
    key_uses: Mutex<HashMap<String, Instant>>,
    anomalies: Arc<crate::anomalies::Anomalies>,
    password_checks: super::password_checks::PasswordChecks,
    policy: airlock_identity::PasswordPolicy,
    /// `<data_dir>/initial-admin-password`: written when airlock generates admin's password,
    /// removed once that password is changed.
    initial_password_file: std::path::PathBuf,
}

/// What a failed authentication counts toward in the `auth_failures` anomaly rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// A wrong secret for a named principal: the principal and the source address.
    PrincipalAndSource,
    /// Anyone can name a principal in a forged token or an unverified OIDC token, so only the
    /// source address counts.
    SourceOnly,
    /// Expected after a change (a stale token), or already acted on (a locked or disabled
    /// principal): counting it would only re-lock after a resolve.
    Nothing,
}

/// Whether a stored credential can still be used at `now` (ms): not revoked, not expired.
fn credential_is_live(credential: &CredentialRow, now: i64) -> bool {
    credential.revoked_at.is_none() && credential.expires_at.is_none_or(|e| e > now)
}

/// Why `principal` may not authenticate at all (disabled, or locked by an anomaly), if so.
fn barred(principal: &PrincipalRow) -> Option<String> {
    if principal.disabled {
        return Some(format!(
            "the principal is disabled; an access-admin can enable it again with `airlock users enable {}` (its earlier logins and tokens stay revoked)",
            principal.name
        ));
    }
    principal.locked_by.map(|anomaly| {
        format!(
            "the principal is locked by anomaly {anomaly}; an access-admin can lift it with `airlock anomalies resolve {anomaly} --reason ..`"
        )
    })
}

/// The file in the data directory that holds a generated initial admin password.
const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Hashes `password` with argon2id on the blocking pool.
async fn hash_password(password: &str) -> Result<String, PasswordFailure> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || airlock_identity::hash_password(&password))
        .await
        .map_err(PasswordFailure::Task)?
        .map_err(PasswordFailure::Hash)
}

fn write_secret_file(path: &Path, content: &str) -> Result<(), IdentityError> {
    use std::io::Write;
    let err = |e: std::io::Error| IdentityError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(content.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

fn now_secs() -> u64 {
    (now_millis() / 1000).max(0) as u64
}

fn record(actor: &Actor, event: AuditEvent) -> AuditRecord {
    AuditRecord {
        time_millis: now_millis(),
        actor: actor.clone(),
        event,
    }
}

impl Identity {
    /// Takes the token keys (`server_keys::open`), loads OIDC trust rules, and on a new
    /// installation creates the `admin` user with `initial_password` or a random one written to
    /// `<data_dir>/initial-admin-password` (0600).
    pub async fn open(
        metadata: Metadata,
        data_dir: &Path,
        config: AccessConfig,
        stages: Stages,
        initial_password: Option<String>,
        anomalies: Arc<crate::anomalies::Anomalies>,
        token_keys: Arc<crate::server_keys::TokenKeys>,
    ) -> Result<Self, IdentityError> {
        let mut exclusive = Vec::new();
        for [a, b] in &config.exclusive_roles {
            let parse = |r: &str| {
                r.parse::<Role>()
                    .map_err(|e| IdentityError::Config(format!("exclusive_roles: {e}")))
            };
            exclusive.push(ExclusivePair(parse(a)?, parse(b)?));
        }
        let mut oidc = Vec::new();
        for rule in &config.oidc {
            let jwks = super::jwks::JwksSource::load(rule)
                .await
                .map_err(|e| IdentityError::Config(e.to_string()))?;
            for scope in &rule.repositories {
                scope
                    .parse::<Scope>()
                    .map_err(|e| IdentityError::Config(format!("oidc rule {}: {e}", rule.name)))?;
            }
            let trust = airlock_identity::TrustRule {
                name: rule.name.clone(),
                issuer: rule.issuer.clone(),
                audience: rule.audience.clone(),
                claims: rule.claims.clone(),
                repositories: rule.repositories.clone(),
            };
            trust
                .validate()
                .map_err(|e| IdentityError::Config(format!("oidc rule {}: {e}", rule.name)))?;
            oidc.push((trust, jwks));
        }
        let console_oidc = match &config.console_oidc {
            Some(provider) => Some(
                console_oidc::ConsoleOidc::load(provider)
                    .await
                    .map_err(IdentityError::Config)?,
            ),
            None => None,
        };
        let identity = Self {
            metadata,
            token_keys,
            stages,
            exclusive,
            oidc,
            console_oidc,
            verified: Mutex::new(HashMap::new()),
            key_uses: Mutex::new(HashMap::new()),
            anomalies,
            password_checks: super::password_checks::PasswordChecks::new(),
            policy: airlock_identity::PasswordPolicy {
                min_length: config.password_min_length,
            },
            initial_password_file: data_dir.join(INITIAL_PASSWORD_FILE),
            config,
        };
        // Every stage the single sign-on mapping names must exist, as for a grant by hand.
        if let Some(provider) = &identity.config.console_oidc {
            for group in provider.groups.keys() {
                for (_, scope) in provider.grants_for(std::slice::from_ref(group)) {
                    identity.check_scope_stage(&scope).map_err(|e| {
                        IdentityError::Config(format!("access.console_oidc.groups.{group:?}: {e}"))
                    })?;
                }
            }
        }
        identity.bootstrap(data_dir, initial_password).await?;
        // Compute the dummy hash now, so the first refused login costs what every other does.
        let _ = tokio::task::spawn_blocking(secrets::dummy_password_hash).await;
        Ok(identity)
    }

    /// The token signing key and the keys it replaced.
    pub fn token_keys(&self) -> Arc<crate::server_keys::TokenKeys> {
        self.token_keys.clone()
    }

    /// Whether access control is on.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The configured public URL, if any (`serve` sets it to the listening address when the
    /// configuration leaves it unset).
    pub fn public_url(&self) -> Option<&str> {
        self.config.public_url.as_deref()
    }

    /// The proxies whose `X-Forwarded-For` names the client (`access.trusted_proxies`).
    pub fn trusted_proxies(&self) -> &airlock_core::TrustedProxies {
        &self.config.trusted_proxies
    }

    async fn bootstrap(
        &self,
        data_dir: &Path,
        initial_password: Option<String>,
    ) -> Result<(), IdentityError> {
        if !self.metadata.principals_page(None, 1).await?.is_empty() {
            return Ok(());
        }
        let actor = Actor {
            principal: "airlock".into(),
            auth_method: "bootstrap".into(),
            source: None,
        };
        let (password, written) = match initial_password {
            Some(password) => {
                // The operator chose it (tests, scripted set-ups): kept, but a weak one is named.
                if let Err(rule) = self.policy.check("admin", &password) {
                    tracing::warn!(
                        "the configured initial admin password (AIRLOCK_INITIAL_ADMIN_PASSWORD) does not satisfy the password policy: {rule}; it is used as given, change it with `airlock users passwd`"
                    );
                }
                (password, false)
            }
            None => (
                self.policy
                    .generate("admin")
                    .map_err(PasswordFailure::Generate)?,
                true,
            ),
        };
        let created = self
            .metadata
            .create_principal(
                "admin",
                "user",
                "bootstrap",
                &[record(
                    &actor,
                    AuditEvent::PrincipalCreated {
                        principal: "admin".into(),
                        kind: "user".into(),
                    },
                )],
            )
            .await;
        let admin = match created {
            Ok(admin) => admin,
            // Another replica starting on the same new database at the same time bootstraps.
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        self.set_password(
            &admin,
            &password,
            &actor,
            PasswordChange::Initial {
                must_change: written,
            },
        )
        .await?;
        for role in [Role::AccessAdmin, Role::Developer, Role::Auditor] {
            self.metadata
                .add_binding(
                    admin.id,
                    &role.to_string(),
                    "*",
                    None,
                    "bootstrap",
                    &[record(
                        &actor,
                        AuditEvent::RoleGranted {
                            principal: "admin".into(),
                            role: role.to_string(),
                            scope: "*".into(),
                            expires_at_millis: None,
                            access_request: None,
                        },
                    )],
                )
                .await?;
        }
        if written {
            let path = data_dir.join(INITIAL_PASSWORD_FILE);
            write_secret_file(&path, &format!("{password}\n"))?;
            tracing::warn!(path = %path.display(), "created user admin; its initial password is in this file and must be changed at the first login (`airlock users passwd -u admin --password-stdin`), which also removes the file");
        } else {
            tracing::info!(
                "created user admin with the password from AIRLOCK_INITIAL_ADMIN_PASSWORD"
            );
        }
        Ok(())
    }

    /// Sets the first password of a new principal (`credential.created`).
    async fn set_password(
        &self,
        principal: &PrincipalRow,
        password: &str,
        actor: &Actor,
        change: PasswordChange,
    ) -> Result<(), SetPasswordError> {
        let hash = hash_password(password)
            .await
            .map_err(SetPasswordError::Password)?;
        let id = format!("password:{}", principal.id);
        self.metadata
            .replace_password(
                principal.id,
                &hash,
                change,
                &[record(
                    actor,
                    AuditEvent::CredentialCreated {
                        principal: principal.name.clone(),
                        credential: "password".into(),
                        id,
                        expires_at_millis: None,
                    },
                )],
            )
            .await?;
        Ok(())
    }

    /// The active grants of a principal (bindings not expired). An OIDC rule's principal
    /// (`oidc/<rule>`) also holds `builder` in the rule's repositories, from the configuration;
    /// roles an access-admin granted it (e.g. `promoter` on staging, for a CI job that promotes
    /// its own builds) come on top, like any principal's.
    pub async fn grants(&self, principal: &PrincipalRow) -> Result<Vec<Grant>, StoreError> {
        let now = now_millis();
        let mut grants: Vec<Grant> = match principal.name.strip_prefix("oidc/") {
            Some(rule) => self
                .oidc
                .iter()
                .filter(|(t, _)| t.name == rule)
                .flat_map(|(trust, _)| trust.repositories.iter())
                .filter_map(|s| s.parse::<Scope>().ok())
                .map(|scope| Grant {
                    role: Role::Builder,
                    scope,
                    expires_at_millis: None,
                })
                .collect(),
            None => Vec::new(),
        };
        grants.extend(
            self.metadata
                .bindings(principal.id)
                .await?
                .into_iter()
                .filter_map(|b| {
                    Some(Grant {
                        role: b.role.parse().ok()?,
                        scope: b.scope.parse().ok()?,
                        expires_at_millis: b.expires_at,
                    })
                })
                .filter(|g| g.is_active(now)),
        );
        Ok(grants)
    }

    /// Whether credential `id` exists, belongs to `principal_id` and is live now.
    pub(super) async fn credential_live(
        &self,
        id: &str,
        principal_id: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.metadata.credential(id).await?.is_some_and(|c| {
            c.principal_id == principal_id && credential_is_live(&c, now_millis())
        }))
    }

    /// The caller `principal` with its grants now.
    pub(super) async fn authenticated(
        &self,
        principal: PrincipalRow,
        method: String,
        credential: Option<String>,
        refresh_family: Option<String>,
        token_access: Option<Vec<AccessEntry>>,
    ) -> Result<Authenticated, AuthError> {
        let grants = self.grants(&principal).await?;
        Ok(Authenticated {
            principal,
            method,
            grants,
            token_access,
            credential,
            refresh_family,
        })
    }

    /// Exchanges a CI's OIDC ID token for the identity of its trust rule (`oidc/<rule>`), whose
    /// grants are `builder` in the rule's repositories.
    pub async fn authenticate_oidc(
        &self,
        id_token: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Authenticated, AuthError> {
        let rules: Vec<airlock_identity::TrustRule> =
            self.oidc.iter().map(|(t, _)| t.clone()).collect();
        let rule = match airlock_identity::select_rule(id_token, &rules) {
            Ok(rule) => rule.clone(),
            Err(err) => {
                return Err(self
                    .fail("oidc", None, source, &err.to_string(), Counts::SourceOnly)
                    .await);
            }
        };
        let Some((_, jwks)) = self.oidc.iter().find(|(t, _)| t.name == rule.name) else {
            return Err(self
                .fail("oidc", None, source, "no trust rule", Counts::SourceOnly)
                .await);
        };
        if let Err(err) = jwks
            .verify(id_token, &rule, now_secs(), self.config.leeway_secs)
            .await
        {
            return Err(self
                .fail(
                    &format!("oidc/{}", rule.name),
                    None,
                    source,
                    &err.to_string(),
                    Counts::SourceOnly,
                )
                .await);
        }
        let name = format!("oidc/{}", rule.name);
        let principal = match self.metadata.principal_by_name(&name).await? {
            Some(p) => p,
            None => {
                let actor = Actor {
                    principal: name.clone(),
                    auth_method: "oidc".into(),
                    source: source.map(|s| s.to_string()),
                };
                match self
                    .metadata
                    .create_principal(
                        &name,
                        "service",
                        "oidc",
                        &[record(
                            &actor,
                            AuditEvent::PrincipalCreated {
                                principal: name.clone(),
                                kind: "service".into(),
                            },
                        )],
                    )
                    .await
                {
                    Ok(p) => p,
                    Err(StoreError::Conflict(_)) => {
                        self.metadata
                            .principal_by_name(&name)
                            .await?
                            .ok_or_else(|| AuthError::NotFound(name.clone()))?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Some(reason) = barred(&principal) {
            self.fail(&name, None, source, &reason, Counts::Nothing)
                .await;
            return Err(AuthError::Barred(reason));
        }
        self.authenticated(principal, "oidc".into(), None, None, None)
            .await
    }

    /// May `who` perform `action` on `repo`? Registry actions come from the token's `access`
    /// claim when authenticated by token, else from the principal's grants.
    pub fn registry_allows(&self, who: &Authenticated, repo: &RepoName, action: Action) -> bool {
        // A token never allows more than its `access` claim, nor more than the principal's grants
        // allow right now: when a just-in-time grant ends, so does what its tokens may do.
        let token_covers = match &who.token_access {
            Some(access) => access.iter().any(|entry| {
                entry.resource_type == "repository"
                    && entry.name == repo.as_str()
                    && entry
                        .actions
                        .iter()
                        .any(|a| a == action.as_str() || a == "*")
            }),
            None => true,
        };
        token_covers && self.grants_allow(who, repo, action)
    }

    /// Whether the principal's grants (not its token) allow `action` on `repo`.
    pub fn grants_allow(&self, who: &Authenticated, repo: &RepoName, action: Action) -> bool {
        let Ok(stage) = self.stages.stage_of(repo) else {
            return false;
        };
        airlock_core::access::registry_actions(&who.grants, repo, stage.mode, now_millis())
            .contains(&action)
    }

    /// Whether the stage rules alone refuse `action` on `repo` (an unknown stage, or a write into
    /// a gated stage), whoever asks.
    pub fn refused_by_stage_rules(&self, repo: &RepoName, action: Action) -> bool {
        match self.stages.stage_of(repo) {
            Err(_) => true,
            Ok(stage) => {
                stage.mode == airlock_core::StageMode::Gated
                    && matches!(action, Action::Push | Action::Delete)
            }
        }
    }

    /// Whether the caller may list the catalog.
    pub fn catalog_allowed(&self, who: &Authenticated) -> bool {
        let token_covers = match &who.token_access {
            Some(access) => access
                .iter()
                .any(|e| e.resource_type == "registry" && e.name == "catalog"),
            None => true,
        };
        token_covers && who.has(Permission::Pull, &PermissionTarget::Global)
    }

    // ---- administration (each call checks the caller's permission itself) ----

    fn require(
        &self,
        who: &Authenticated,
        permission: Permission,
        target: &PermissionTarget,
    ) -> Result<(), AuthError> {
        if who.has(permission, target) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "{} lacks the {permission:?} permission here; ask an access-admin for a role that grants it",
                who.principal.name
            )))
        }
    }

    async fn principal(&self, name: &str) -> Result<PrincipalRow, AuthError> {
        self.metadata
            .principal_by_name(name)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no principal named {name}")))
    }

    /// Creates a user with `password`, or a generated one that is returned.
    pub async fn add_user(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
        password: Option<String>,
    ) -> Result<Option<String>, AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        validate_principal_name(name)?;
        if let Some(password) = &password {
            self.policy.check(name, password)?;
        }
        let principal = self
            .metadata
            .create_principal(
                name,
                "user",
                &who.principal.name,
                &[record(
                    actor,
                    AuditEvent::PrincipalCreated {
                        principal: name.into(),
                        kind: "user".into(),
                    },
                )],
            )
            .await
            .map_err(conflict)?;
        let generated = password.is_none();
        let password = match password {
            Some(password) => password,
            None => self
                .policy
                .generate(name)
                .map_err(PasswordFailure::Generate)?,
        };
        self.set_password(
            &principal,
            &password,
            actor,
            PasswordChange::Initial { must_change: false },
        )
        .await?;
        Ok(generated.then_some(password))
    }

    /// Creates a service account and its first API key, named `default` (returned once),
    /// expiring in `expires_secs`. An expiry beyond `access.max_api_key_days` creates nothing.
    pub async fn add_service_account(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
        expires_secs: u64,
    ) -> Result<(String, String, i64), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        validate_principal_name(name)?;
        let expires_at = airlock_core::api_key::key_expiry(
            airlock_core::api_key::RequestedExpiry::In(expires_secs),
            now_millis(),
            self.config.max_api_key_days,
        )?;
        let principal = self
            .metadata
            .create_principal(
                name,
                "service",
                &who.principal.name,
                &[record(
                    actor,
                    AuditEvent::PrincipalCreated {
                        principal: name.into(),
                        kind: "service".into(),
                    },
                )],
            )
            .await
            .map_err(conflict)?;
        let first = airlock_core::api_key::ApiKeyName::default_key();
        let added = self
            .store_new_key(
                who,
                actor,
                &principal,
                &first,
                airlock_core::api_key::RequestedExpiry::At(expires_at),
            )
            .await?;
        Ok((added.secret, added.key.id, expires_at))
    }

    /// Revokes a credential (an API key id, or `password:<id>`). An API key is revoked alone, as
    /// by [`Identity::revoke_api_key`]: only the tokens descending from it end; a password
    /// revocation bumps the principal's epoch, ending all its tokens.
    pub async fn revoke_credential(
        &self,
        who: &Authenticated,
        actor: &Actor,
        id: &str,
    ) -> Result<(), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let Some(credential) = self.metadata.credential(id).await? else {
            return Err(AuthError::NotFound(format!("no credential {id}")));
        };
        let owner_row = self
            .metadata
            .principal_by_id(credential.principal_id)
            .await?;
        // An API key is revoked alone: the account's other keys and their tokens keep working.
        if credential.kind == "api_key"
            && let Some(owner) = &owner_row
            && let Some(key) = self
                .metadata
                .api_keys(owner.id)
                .await?
                .into_iter()
                .find(|k| k.id == id)
        {
            return self.revoke_key_row(actor, owner, &key).await;
        }
        let owner = owner_row.map(|p| p.name).unwrap_or_default();
        if !self
            .metadata
            .revoke_credential(
                id,
                &[record(
                    actor,
                    AuditEvent::CredentialRevoked {
                        principal: owner,
                        id: id.into(),
                    },
                )],
            )
            .await?
        {
            return Err(AuthError::Conflict(format!(
                "credential {id} is already revoked"
            )));
        }
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Disables a principal.
    pub async fn disable(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
    ) -> Result<(), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.principal(name).await?;
        if principal.name == who.principal.name {
            return Err(AuthError::DisableSelf);
        }
        self.metadata
            .disable_principal(
                principal.id,
                &[record(
                    actor,
                    AuditEvent::PrincipalDisabled {
                        principal: name.into(),
                    },
                )],
            )
            .await?;
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Refuses a scope on a stage that is not configured (a typo would otherwise be a grant that
    /// covers nothing). Removing a binding does not check this, so a binding on a stage taken out
    /// of the configuration can still be removed.
    fn check_scope_stage(&self, scope: &Scope) -> Result<(), AuthError> {
        let stage = match scope {
            Scope::Global => return Ok(()),
            Scope::Stage(stage) => stage.clone(),
            Scope::Repository(repo) | Scope::RepositoriesUnder(repo) => repo.stage(),
        };
        let configured: Vec<String> = self
            .stages
            .all()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        if configured.iter().any(|name| *name == stage.as_str()) {
            Ok(())
        } else {
            Err(AuthError::UnknownStage {
                scope: scope.to_string(),
                stage: stage.to_string(),
                configured,
            })
        }
    }

    /// Binds `role` in `scope` to `name` (standing grant), enforcing separation of duties. A scope
    /// on a stage that is not configured is refused.
    pub async fn grant_role(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
        role: Role,
        scope: &Scope,
    ) -> Result<(), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        self.check_scope_stage(scope)?;
        let principal = self.principal(name).await?;
        let current: Vec<Role> = self
            .grants(&principal)
            .await?
            .into_iter()
            .map(|g| g.role)
            .collect();
        airlock_core::access::check_role_grant(
            &who.principal.name,
            name,
            role,
            &current,
            &self.exclusive,
        )?;
        self.metadata
            .add_binding(
                principal.id,
                &role.to_string(),
                &scope.to_string(),
                None,
                &who.principal.name,
                &[record(
                    actor,
                    AuditEvent::RoleGranted {
                        principal: name.into(),
                        role: role.to_string(),
                        scope: scope.to_string(),
                        expires_at_millis: None,
                        access_request: None,
                    },
                )],
            )
            .await?;
        Ok(())
    }

    /// Removes `role` in `scope` from `name`.
    pub async fn revoke_role(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
        role: Role,
        scope: &Scope,
    ) -> Result<(), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.principal(name).await?;
        let removed = self
            .metadata
            .remove_binding(
                principal.id,
                &role.to_string(),
                &scope.to_string(),
                &[record(
                    actor,
                    AuditEvent::RoleRevoked {
                        principal: name.into(),
                        role: role.to_string(),
                        scope: scope.to_string(),
                    },
                )],
            )
            .await?;
        if removed == 0 {
            return Err(AuthError::NotFound(format!(
                "{name} does not hold {role} in {scope}"
            )));
        }
        Ok(())
    }

    /// Files a just-in-time access request by the caller. A scope on a stage that is not
    /// configured is refused.
    pub async fn request_access(
        &self,
        who: &Authenticated,
        actor: &Actor,
        role: Role,
        scope: &Scope,
        duration_secs: u64,
        reason: &str,
    ) -> Result<i64, AuthError> {
        if duration_secs == 0 || duration_secs > self.config.max_grant_secs {
            return Err(AuthError::GrantDuration {
                max_secs: self.config.max_grant_secs,
            });
        }
        if reason.trim().is_empty() {
            return Err(AuthError::ReasonRequired);
        }
        self.check_scope_stage(scope)?;
        let principal = who.principal.clone();
        Ok(self
            .metadata
            .create_access_request(
                principal.id,
                &role.to_string(),
                &scope.to_string(),
                duration_secs,
                reason,
                |id| {
                    vec![record(
                        actor,
                        AuditEvent::AccessRequested {
                            request: id,
                            principal: principal.name.clone(),
                            role: role.to_string(),
                            scope: scope.to_string(),
                            duration_secs,
                            reason: reason.into(),
                        },
                    )]
                },
            )
            .await?)
    }

    /// Grants or denies a pending request: only an access-admin who is not the requester.
    pub async fn decide_access(
        &self,
        who: &Authenticated,
        actor: &Actor,
        id: i64,
        grant: bool,
    ) -> Result<AccessRequestRow, AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let request = self
            .metadata
            .access_request(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no access request {id}")))?;
        airlock_core::access::check_access_decision(&request.principal, &who.principal.name)?;
        if grant {
            let principal = self.principal(&request.principal).await?;
            let role: Role = request
                .role
                .parse()
                .map_err(|source| AuthError::StoredRole { id, source })?;
            let current: Vec<Role> = self
                .grants(&principal)
                .await?
                .into_iter()
                .map(|g| g.role)
                .collect();
            airlock_core::access::check_role_grant(
                &who.principal.name,
                &request.principal,
                role,
                &current,
                &self.exclusive,
            )?;
        }
        let decision = if grant { "granted" } else { "denied" };
        let expires_at = now_millis() + request.duration_secs * 1000;
        let mut records = vec![record(
            actor,
            AuditEvent::AccessDecided {
                request: id,
                principal: request.principal.clone(),
                decision: decision.into(),
            },
        )];
        if grant {
            records.push(record(
                actor,
                AuditEvent::RoleGranted {
                    principal: request.principal.clone(),
                    role: request.role.clone(),
                    scope: request.scope.clone(),
                    expires_at_millis: Some(expires_at),
                    access_request: Some(id),
                },
            ));
        }
        self.metadata
            .decide_access_request(id, decision, &who.principal.name, expires_at, &records)
            .await
            .map_err(conflict)?;
        self.request_by_id(id).await
    }

    /// Ends a granted just-in-time request early (an access-admin; the requester may also give
    /// up their own grant).
    pub async fn revoke_access(
        &self,
        who: &Authenticated,
        actor: &Actor,
        id: i64,
    ) -> Result<AccessRequestRow, AuthError> {
        let request = self
            .metadata
            .access_request(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no access request {id}")))?;
        if request.principal != who.principal.name {
            self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        }
        let records = vec![
            record(
                actor,
                AuditEvent::AccessDecided {
                    request: id,
                    principal: request.principal.clone(),
                    decision: "revoked".into(),
                },
            ),
            record(
                actor,
                AuditEvent::RoleRevoked {
                    principal: request.principal.clone(),
                    role: request.role.clone(),
                    scope: request.scope.clone(),
                },
            ),
        ];
        self.metadata
            .revoke_access_request(id, &who.principal.name, &records)
            .await
            .map_err(conflict)?;
        self.request_by_id(id).await
    }

    async fn request_by_id(&self, id: i64) -> Result<AccessRequestRow, AuthError> {
        self.metadata
            .access_request(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no access request {id}")))
    }
}

fn conflict(err: StoreError) -> AuthError {
    match err {
        StoreError::Conflict(message) => AuthError::Conflict(message),
        other => AuthError::Store(other),
    }
}

fn validate_principal_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidName {
            name: name.chars().take(64).collect(),
        })
    }
}
