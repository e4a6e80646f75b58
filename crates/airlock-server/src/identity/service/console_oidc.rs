//! Web console sign-in with an OpenID Connect provider: the authorization code flow with PKCE
//! (`S256`), for people.
//!
//! - The browser is sent to the provider with a fresh [`SignInFlow`] (state, nonce, PKCE
//!   challenge); the flow's secrets stay in the browser's own short-lived cookie.
//! - At the callback the `state` must be the flow's; airlock exchanges the code at the token
//!   endpoint (with the verifier, and the client secret when configured) over the configured TLS
//!   trust, and verifies the ID token like a workload's: signature by a key of the provider's
//!   JWKS, `iss`, `aud` (the client id), the time window, and the flow's `nonce`.
//! - The person is the principal named by the username claim (lower-cased), created at the first
//!   sign-in as provisioned by the provider (`created_by` `oidc:<issuer>`). A local account of
//!   that name is never signed in this way.
//! - Their roles from the groups claim are set at each sign-in: bindings the mapping no longer
//!   gives are revoked (which ends their other sessions), new ones are added, each with its
//!   audit entry; bindings an access-admin granted are left alone.
//! - The session is bound to the provider (credential `oidc:<issuer>`) and to the principal's
//!   epoch, like a password session.

use std::collections::BTreeSet;
use std::time::Duration;

use airlock_core::access::{Role, Scope};
use airlock_core::{Actor, AuditEvent};
use airlock_identity::{NewSession, SignInFlow, TrustRule};

use super::console::ConsoleSession;
use super::{AuthError, Counts, Identity, barred, now_secs, record, validate_principal_name};
use crate::config::ConsoleOidcConfig;
use crate::identity::jwks::JwksSource;
use crate::outbound_tls::{self, PrivateCa, Trust};

/// Largest token endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest the token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured provider, ready to use.
pub struct ConsoleOidc {
    config: ConsoleOidcConfig,
    jwks: JwksSource,
    client: reqwest::Client,
    client_secret: Option<String>,
}

impl ConsoleOidc {
    /// Reads the client secret and the CA, builds the HTTP client, and loads the JWKS.
    pub async fn load(config: &ConsoleOidcConfig) -> Result<Self, String> {
        let client_secret = match &config.client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "access.console_oidc.client_secret_file {}: {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let trust = match &config.ca_cert {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| format!("access.console_oidc.ca_cert {}: {e}", path.display()))?;
                Trust::PrivateCa(
                    PrivateCa::from_pem(&pem).map_err(|e| {
                        format!("access.console_oidc.ca_cert {}: {e}", path.display())
                    })?,
                )
            }
            None => Trust::System,
        };
        let client = outbound_tls::client_builder(&trust)
            .https_only(true)
            .timeout(TOKEN_TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("access.console_oidc: cannot build the HTTP client: {e}"))?;
        let jwks = JwksSource::load(&config.jwks_rule()).await.map_err(|e| {
            e.to_string()
                .replace("oidc rule console", "access.console_oidc")
        })?;
        Ok(Self {
            config: config.clone(),
            jwks,
            client,
            client_secret,
        })
    }

    /// The provider's issuer, as sessions record it (`oidc:<issuer>`).
    fn credential(&self) -> String {
        format!("oidc:{}", self.config.issuer)
    }
}

/// What the token endpoint answers (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Identity {
    /// The console's OIDC sign-in button label, if a provider is configured.
    pub fn console_oidc_label(&self) -> Option<&str> {
        self.console_oidc
            .as_ref()
            .map(|oidc| oidc.config.button_label.as_str())
    }

    /// The configured redirect URL, if any (else the caller derives it).
    pub fn console_oidc_redirect_url(&self) -> Option<String> {
        let oidc = self.console_oidc.as_ref()?;
        oidc.config.redirect_url.clone().or_else(|| {
            self.config
                .public_url
                .as_ref()
                .map(|base| format!("{}/console/oidc/callback", base.trim_end_matches('/')))
        })
    }

    /// Starts a sign-in: the provider's authorization URL for a new flow, and the flow.
    pub fn begin_console_oidc(
        &self,
        redirect_uri: &str,
    ) -> Result<(String, SignInFlow), AuthError> {
        let oidc = self
            .console_oidc
            .as_ref()
            .ok_or_else(|| AuthError::Invalid("single sign-on is not configured".into()))?;
        let flow = SignInFlow::generate(redirect_uri);
        let mut url = reqwest::Url::parse(&oidc.config.authorization_endpoint)
            .map_err(|e| AuthError::Invalid(format!("the authorization endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &oidc.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &oidc.config.scopes.join(" "))
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &flow.challenge())
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), flow))
    }

    /// Finishes a sign-in whose callback carried `code` and `state`: checks the state, exchanges
    /// the code, verifies the ID token, provisions the person and their roles, and starts a
    /// console session. Every refusal is recorded as a failed authentication from `source`.
    pub async fn finish_console_oidc(
        &self,
        flow: &SignInFlow,
        code: &str,
        state: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(NewSession, ConsoleSession), AuthError> {
        let Some(oidc) = self.console_oidc.as_ref() else {
            return Err(AuthError::Invalid(
                "single sign-on is not configured".into(),
            ));
        };
        let refuse = |reason: String| async move {
            self.fail("oidc", None, source, &reason, Counts::SourceOnly)
                .await;
            AuthError::Invalid(reason)
        };
        if !flow.state_matches(state) {
            return Err(refuse(
                "the sign-in did not come back to the browser that started it (state mismatch): start again".into(),
            )
            .await);
        }
        let id_token = match self.exchange_code(oidc, flow, code).await {
            Ok(token) => token,
            Err(reason) => return Err(refuse(reason).await),
        };
        let rule = TrustRule {
            name: "console".into(),
            issuer: oidc.config.issuer.clone(),
            audience: oidc.config.client_id.clone(),
            claims: [("nonce".to_string(), flow.nonce.clone())].into(),
            repositories: Vec::new(),
        };
        let verified = match oidc
            .jwks
            .verify(&id_token, &rule, now_secs(), self.config.leeway_secs)
            .await
        {
            Ok(verified) => verified,
            Err(err) => {
                return Err(refuse(format!("the provider's ID token was refused: {err}")).await);
            }
        };
        let claimed = verified
            .claims
            .get(&oidc.config.username_claim)
            .and_then(|v| v.as_str())
            .map(str::to_lowercase);
        let Some(name) = claimed else {
            return Err(refuse(format!(
                "the provider's ID token has no {:?} claim to name the person: set access.console_oidc.username_claim",
                oidc.config.username_claim
            ))
            .await);
        };
        if validate_principal_name(&name).is_err() {
            return Err(refuse(format!(
                "the provider names the person {name:?} ({} claim), which is not an airlock principal name (lowercase letters, digits, - _ ., at most 64): set access.console_oidc.username_claim to another claim",
                oidc.config.username_claim
            ))
            .await);
        }
        let groups: Vec<String> = match verified.claims.get(&oidc.config.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let actor = Actor {
            principal: name.clone(),
            auth_method: "oidc".into(),
            source: source.map(|s| s.to_string()),
        };
        let principal = match self.oidc_person(oidc, &name, &actor).await? {
            Ok(principal) => principal,
            Err(reason) => return Err(refuse(reason).await),
        };
        if let Some(reason) = barred(&principal) {
            self.fail(&name, None, source, &reason, Counts::Nothing)
                .await;
            return Err(AuthError::Barred(reason));
        }
        let wanted = oidc.config.grants_for(&groups);
        self.sync_oidc_grants(oidc, &principal, &wanted, &actor)
            .await?;
        // Re-read: the epoch moved if a role was revoked.
        let principal = self.principal(&name).await?;
        let who = self
            .authenticated(
                principal,
                "oidc".into(),
                Some(oidc.credential()),
                None,
                None,
            )
            .await?;
        self.open_console_session(who, oidc.credential(), source)
            .await
    }

    /// Exchanges `code` at the token endpoint; the ID token, or why there is none.
    async fn exchange_code(
        &self,
        oidc: &ConsoleOidc,
        flow: &SignInFlow,
        code: &str,
    ) -> Result<String, String> {
        let mut request = oidc.client.post(&oidc.config.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("client_id", oidc.config.client_id.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ]);
        if let Some(secret) = &oidc.client_secret {
            request = request.basic_auth(&oidc.config.client_id, Some(secret));
        }
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "the provider's token endpoint could not be reached ({}): {e}",
                oidc.config.token_endpoint
            )
        };
        let mut response = request.send().await.map_err(|e| {
            failed(
                &crate::outbound_tls::TlsFailure::find(&e)
                    .map_or_else(|| e.to_string(), |tls| tls.to_string()),
            )
        })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(format!(
                    "the provider's token answer is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            format!("the provider's token endpoint answered {status} without a JSON token answer")
        })?;
        if !status.is_success() || answer.error.is_some() {
            return Err(format!(
                "the provider refused the code ({status}): {}{}",
                answer.error.as_deref().unwrap_or("no error code"),
                answer
                    .error_description
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
        }
        answer.id_token.ok_or_else(|| {
            "the provider's token answer has no id_token (is openid among the scopes?)".into()
        })
    }

    /// The principal for OIDC person `name`: created at the first sign-in; `Err` with the reason
    /// when `name` belongs to a local account or another provider.
    async fn oidc_person(
        &self,
        oidc: &ConsoleOidc,
        name: &str,
        actor: &Actor,
    ) -> Result<Result<airlock_store::PrincipalRow, String>, AuthError> {
        let origin = oidc.credential();
        match self.metadata.principal_created_by(name).await? {
            Some(created_by) if created_by == origin => Ok(Ok(self.principal(name).await?)),
            Some(_) => Ok(Err(format!(
                "an account named {name} already exists in airlock and was not created by this provider, so single sign-on does not sign in to it; sign in with its password, or have an access-admin rename one of them"
            ))),
            None => {
                match self
                    .metadata
                    .create_principal(
                        name,
                        "user",
                        &origin,
                        &[record(
                            actor,
                            AuditEvent::PrincipalCreated {
                                principal: name.into(),
                                kind: "user".into(),
                            },
                        )],
                    )
                    .await
                {
                    Ok(principal) => Ok(Ok(principal)),
                    // Another replica created it in the meantime: check its origin again.
                    Err(airlock_store::StoreError::Conflict(_)) => {
                        match self.metadata.principal_created_by(name).await? {
                            Some(created_by) if created_by == origin => {
                                Ok(Ok(self.principal(name).await?))
                            }
                            _ => Ok(Err(format!(
                                "an account named {name} already exists in airlock and was not created by this provider"
                            ))),
                        }
                    }
                    Err(err) => Err(err.into()),
                }
            }
        }
    }

    /// Makes the roles the provider grants `principal` exactly `wanted` (others untouched),
    /// refusing a set that breaks separation of duties with the roles it holds.
    async fn sync_oidc_grants(
        &self,
        oidc: &ConsoleOidc,
        principal: &airlock_store::PrincipalRow,
        wanted: &BTreeSet<(Role, Scope)>,
        actor: &Actor,
    ) -> Result<(), AuthError> {
        let origin = oidc.credential();
        let bindings = self.metadata.bindings(principal.id).await?;
        let held: BTreeSet<(String, String)> = bindings
            .iter()
            .filter(|b| b.granted_by == origin)
            .map(|b| (b.role.clone(), b.scope.clone()))
            .collect();
        let wanted_text: BTreeSet<(String, String)> = wanted
            .iter()
            .map(|(role, scope)| (role.to_string(), scope.to_string()))
            .collect();
        let remove: Vec<(String, String)> = held.difference(&wanted_text).cloned().collect();
        let add: Vec<(String, String)> = wanted_text.difference(&held).cloned().collect();
        if remove.is_empty() && add.is_empty() {
            return Ok(());
        }
        // The roles held after the change must not break separation of duties.
        let mut after: Vec<Role> = bindings
            .iter()
            .filter(|b| b.granted_by != origin)
            .filter_map(|b| b.role.parse().ok())
            .collect();
        for (role, _) in wanted {
            airlock_core::access::check_role_grant(
                &origin,
                &principal.name,
                *role,
                &after,
                &self.exclusive,
            )?;
            after.push(*role);
        }
        let mut records = Vec::new();
        for (role, scope) in &remove {
            records.push(record(
                actor,
                AuditEvent::RoleRevoked {
                    principal: principal.name.clone(),
                    role: role.clone(),
                    scope: scope.clone(),
                },
            ));
        }
        for (role, scope) in &add {
            records.push(record(
                actor,
                AuditEvent::RoleGranted {
                    principal: principal.name.clone(),
                    role: role.clone(),
                    scope: scope.clone(),
                    expires_at_millis: None,
                    access_request: None,
                },
            ));
        }
        self.metadata
            .replace_bindings(principal.id, &origin, &remove, &add, &records)
            .await?;
        Ok(())
    }

    /// Whether a console session's credential `oidc:<issuer>` is the configured provider's.
    pub(super) fn oidc_credential_live(&self, credential: &str) -> bool {
        self.console_oidc
            .as_ref()
            .is_some_and(|oidc| oidc.credential() == credential)
    }
}
