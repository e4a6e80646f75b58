//! The CLI's connection to an airlock server: the stored login (`airlock login`), access tokens
//! obtained from it, JSON requests, and turning API errors into messages and exit codes.
//!
//! Every HTTP client the CLI makes comes from [`build_http_client`], which applies the one TLS choice
//! for the server (see [`trust_for`]): `--insecure`, else `--ca-cert FILE` / `AIRLOCK_CA_CERT`,
//! else the choice `airlock login` stored with the server's entry, else the system's roots.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use airlock_server::outbound_tls::{self, PrivateCa, TlsFailure, Trust};

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Exit status of a refused or failed operation (usage and connection errors exit 2).
pub const DENIED: u8 = 1;

/// Where the CLI keeps refresh credentials: `$XDG_CONFIG_HOME/airlock/credentials.json`
/// (`~/.config/...` without XDG_CONFIG_HOME), mode 0600.
pub fn credentials_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?,
        )
        .join(".config"),
    };
    Ok(base.join("airlock").join("credentials.json"))
}

/// One stored login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    /// Who logged in.
    pub username: String,
    /// The refresh token (a secret: the file is 0600). Empty for a login with `--oidc`, which
    /// keeps only its short-lived access token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// The access token of an `airlock login --oidc` (a secret), used as it is until
    /// `access_token_expires`; a login with a password has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When `access_token` expires, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires: Option<u64>,
    /// The PEM of the private CA given to `airlock login --ca-cert` (or `AIRLOCK_CA_CERT`): only
    /// certificates it issued are accepted from this server. Absent: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_pem: Option<String>,
    /// `airlock login --insecure` was used: this server's certificate is not checked (lab use).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

impl StoredLogin {
    /// A login of `username` to a server verified as `trust` says (the CA or `--insecure` is kept
    /// with it for later commands).
    pub fn new(username: &str, refresh_token: String, trust: &Trust) -> Self {
        Self {
            username: username.to_string(),
            refresh_token,
            access_token: None,
            access_token_expires: None,
            ca_cert_pem: match trust {
                Trust::PrivateCa(ca) => Some(ca.pem().to_string()),
                _ => None,
            },
            insecure: matches!(trust, Trust::Insecure),
        }
    }
}

/// Every stored login, by server URL: the contexts. The current one is the server every command
/// uses without `--server` or `AIRLOCK_SERVER`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CredentialStore {
    /// Logins by server.
    pub servers: BTreeMap<String, StoredLogin>,
    /// The current context: the server of the last `airlock login` or `airlock context use`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}

/// The server used when neither `--server` nor `AIRLOCK_SERVER` names one.
pub const FALLBACK_SERVER: &str = "http://127.0.0.1:5000";

/// The server a command talks to without `--server` or `AIRLOCK_SERVER`: the current context,
/// else [`FALLBACK_SERVER`]. (A credential store that cannot be read falls back too; the command
/// then reports the store's problem when it needs the login.)
pub fn default_server() -> String {
    CredentialStore::load()
        .ok()
        .and_then(|store| store.current)
        .unwrap_or_else(|| FALLBACK_SERVER.to_string())
}

impl CredentialStore {
    /// Reads the store (empty if absent).
    pub fn load() -> Result<Self> {
        let path = credentials_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid JSON; delete it and log in again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes the store with mode 0600.
    pub fn save(&self) -> Result<()> {
        use std::io::Write;
        let path = credentials_path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

/// An exclusive lock on the credential store, held while a stored refresh token is exchanged
/// and its successor saved: refresh tokens rotate, and a second CLI process presenting the
/// token the first one just spent would revoke the login.
pub struct CredentialLock {
    _file: std::fs::File,
}

impl CredentialLock {
    /// Waits for the lock (`credentials.json.lock` beside the store).
    pub fn acquire() -> Result<Self> {
        let path = credentials_path()?.with_extension("json.lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

/// Normalises a server URL for use as a key. A server given without a scheme is `https://`,
/// except a loopback host (`localhost`, `127.0.0.0/8`, `::1`), which is `http://` so the
/// zero-configuration quick start (`airlock serve` on 127.0.0.1:5000) keeps working.
pub fn normalize_server(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else if is_loopback_host(url) {
        format!("http://{url}")
    } else {
        format!("https://{url}")
    }
}

/// Whether `authority` (`host`, `host:port`, `[v6]:port`, optionally followed by a path) names
/// a loopback host.
fn is_loopback_host(authority: &str) -> bool {
    let authority = authority.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None if authority.matches(':').count() > 1 => authority,
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

/// The TLS flags given on the command line (`--ca-cert`, `--insecure`), set once by `main`.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    /// `--ca-cert FILE` / `AIRLOCK_CA_CERT`: a private CA's PEM file.
    pub ca_cert: Option<PathBuf>,
    /// `--insecure`: do not check server certificates.
    pub insecure: bool,
}

static TLS_OPTIONS: OnceLock<TlsOptions> = OnceLock::new();

/// `--token` / `AIRLOCK_TOKEN` and the server it was given for.
struct GivenToken {
    token: String,
    server: String,
}

static BEARER_TOKEN: OnceLock<Option<GivenToken>> = OnceLock::new();

/// Records `--token` / `AIRLOCK_TOKEN` (already checked) and the chosen server (`--server`,
/// `AIRLOCK_SERVER` or the current context): every API client this process makes for that server
/// then sends it as the bearer token, no stored login is read or renewed, and a client for any
/// other server is refused (the token is never sent anywhere else).
pub fn set_bearer_token(token: Option<String>, server: &str) {
    let given = token
        .filter(|token| !token.trim().is_empty())
        .map(|token| GivenToken {
            token,
            server: normalize_server(server),
        });
    let _ = BEARER_TOKEN.set(given);
}

/// The given token, if any, for `server` (normalized); an error when a token was given for a
/// different server.
fn bearer_token_for(server: &str) -> Result<Option<String>> {
    match BEARER_TOKEN.get().and_then(Option::as_ref) {
        None => Ok(None),
        Some(given) if given.server.eq_ignore_ascii_case(server) => Ok(Some(given.token.clone())),
        Some(given) => bail!(
            "the reference names the server {server}, but --token / AIRLOCK_TOKEN is for {}: \
             the token is only sent to the chosen server; name that server in the reference \
             (or leave the host out), or pass --server {server} with a token it issued",
            given.server
        ),
    }
}

/// Whether `--token` / `AIRLOCK_TOKEN` was given (then no stored login is read, renewed or
/// written).
pub fn token_given() -> bool {
    BEARER_TOKEN.get().is_some_and(Option::is_some)
}

/// Records the command line's TLS flags for every client this process makes.
pub fn set_tls_options(options: TlsOptions) {
    let _ = TLS_OPTIONS.set(options);
}

fn tls_options() -> TlsOptions {
    TLS_OPTIONS.get().cloned().unwrap_or_default()
}

/// The warning printed on every use of `--insecure`.
const INSECURE_WARNING: &str = "airlock: WARNING: --insecure: the server's certificate is NOT \
     checked; anyone on the network path can read and change this connection, including your \
     password and tokens. Use it only in a lab; pass --ca-cert FILE for a private CA instead.";

/// The TLS choice for `server`: `--insecure`, else `--ca-cert` / `AIRLOCK_CA_CERT`, else what
/// `airlock login` stored for the server, else the system's roots.
pub fn trust_for(stored: Option<&StoredLogin>) -> Result<Trust> {
    choose_trust(&tls_options(), stored)
}

/// [`trust_for`] with the command line's `options` given.
fn choose_trust(options: &TlsOptions, stored: Option<&StoredLogin>) -> Result<Trust> {
    if options.insecure {
        return Ok(Trust::Insecure);
    }
    if let Some(path) = &options.ca_cert {
        return Ok(Trust::PrivateCa(read_ca_file(path)?));
    }
    match stored {
        Some(login) if login.insecure => Ok(Trust::Insecure),
        Some(login) => match &login.ca_cert_pem {
            Some(pem) => Ok(Trust::PrivateCa(PrivateCa::from_pem(pem).with_context(
                || "the CA stored with this login is unusable; log in again with --ca-cert FILE",
            )?)),
            None => Ok(Trust::System),
        },
        None => Ok(Trust::System),
    }
}

/// Reads a private CA's PEM file.
pub fn read_ca_file(path: &std::path::Path) -> Result<PrivateCa> {
    let pem = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the CA certificate {} (--ca-cert / AIRLOCK_CA_CERT)",
            path.display()
        )
    })?;
    PrivateCa::from_pem(&pem).with_context(|| {
        format!(
            "{} (--ca-cert / AIRLOCK_CA_CERT) is not a PEM CA certificate",
            path.display()
        )
    })
}

/// The one place the CLI builds HTTP clients: TLS as `trust` says (warning on stderr when it
/// is `--insecure`), with `headers` sent on every request.
pub fn build_http_client(
    trust: &Trust,
    headers: reqwest::header::HeaderMap,
) -> Result<reqwest::Client> {
    if matches!(trust, Trust::Insecure) {
        eprintln!("{INSECURE_WARNING}");
    }
    outbound_tls::client_builder(trust)
        .default_headers(headers)
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")
}

/// A request that got no answer: the server is unreachable, refused the connection, or the TLS
/// handshake failed. Exit status 2, like a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectionFailed {
    /// The sentence to print, naming the server and, for TLS, the fix.
    pub message: String,
    /// What the HTTP client reported; none for a TLS failure, whose sentence already says what
    /// the transport chain would.
    #[source]
    pub source: Option<reqwest::Error>,
}

/// The error to print for a request to `server` that got no answer: a TLS failure as one
/// sentence naming the fix, anything else as "cannot reach" with its cause.
pub fn connection_error(server: &str, err: reqwest::Error) -> anyhow::Error {
    let failed = match TlsFailure::find(&err) {
        Some(failure) => {
            let fix = match &failure {
                TlsFailure::Untrusted | TlsFailure::BadCertificate(_) => {
                    ": pass --ca-cert FILE or set AIRLOCK_CA_CERT to the CA that issued it \
                     (`airlock login --ca-cert FILE` stores it for later commands)"
                }
                TlsFailure::Expired => ": the server's operator must renew it",
                TlsFailure::NotYetValid => "",
                TlsFailure::WrongName { .. } => {
                    ": connect with a name the certificate lists, or have it reissued"
                }
                _ => "",
            };
            ConnectionFailed {
                message: format!("cannot connect to {server}: {failure}{fix}"),
                source: None,
            }
        }
        None => ConnectionFailed {
            message: format!("cannot reach {server}; is airlock running there?"),
            source: Some(err),
        },
    };
    failed.into()
}

/// Exchanges a user name and password (or API key) for a refresh token over a client that
/// verifies the server as `trust` says.
pub async fn login(server: &str, trust: &Trust, username: &str, password: &str) -> Result<String> {
    let http = build_http_client(trust, reqwest::header::HeaderMap::new())?;
    let response = http
        .post(format!("{server}/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("service", "airlock"),
            ("access_type", "offline"),
            ("client_id", "airlock-cli"),
        ])
        .send()
        .await
        .map_err(|e| connection_error(server, e))?;
    let status = response.status();
    if !status.is_success() {
        // A refused password (401) or a rate limit (429) is a refusal: exit 1 with the server's
        // code, like the API's.
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let mut error = ApiError::from_answer(status.as_u16(), &body);
        error.detail.message = format!("login refused: {}", error.detail.message);
        return Err(error.into());
    }
    let body: airlock_api::identity::TokenResponse = response
        .json()
        .await
        .context("the server's token answer is not what this client expects")?;
    body.refresh_token
        .ok_or_else(|| anyhow!("the server returned no refresh token"))
}

/// An authenticated API client for one server.
pub struct ApiClient {
    server: String,
    http: reqwest::Client,
    token: String,
}

/// The server's error answer to an API request: its status, the exit status it maps to, and the
/// API's `{"error":{"code","message","remediation"}}` as sent.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub http_status: u16,
    /// The exit status: [`DENIED`] for a refusal (401, 403, 409, 422, 429), 2 otherwise (a bad
    /// request, something that does not exist, a server failure).
    pub exit: u8,
    /// The server's error, as sent.
    pub detail: airlock_api::ErrorDetail,
}

impl ApiError {
    /// The error for an answer with `status` and `body`: an [`airlock_api::ErrorBody`], the
    /// registry's and token endpoint's `{"errors":[{"code","message","detail"}]}` (its first
    /// error, with no remediation), or anything else, e.g. a proxy's page, for which a generic
    /// code and message stand in.
    pub fn from_answer(status: u16, body: &Value) -> Self {
        let registry = || {
            serde_json::from_value::<airlock_api::identity::TokenErrorBody>(body.clone())
                .ok()
                .and_then(|body| body.errors.into_iter().next())
                .map(|error| airlock_api::ErrorDetail {
                    code: error.code,
                    message: error.message,
                    remediation: String::new(),
                })
        };
        let detail = serde_json::from_value::<airlock_api::ErrorBody>(body.clone())
            .map(|body| body.error)
            .ok()
            .or_else(registry)
            .unwrap_or_else(|| airlock_api::ErrorDetail {
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("ERROR")
                    .to_string(),
                message: body["error"]["message"]
                    .as_str()
                    .unwrap_or("request failed")
                    .to_string(),
                remediation: body["error"]["remediation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        Self {
            http_status: status,
            exit: exit_status_for(status),
            detail,
        }
    }
}

/// The exit status for an API error answer with HTTP `status`: 1 for a refusal or a failed check
/// (401, 403, 409, 422, 429; and 404: what was asked about does not exist, or not for the
/// caller), 2 for everything else (400 and other usage errors, 5xx).
pub fn exit_status_for(status: u16) -> u8 {
    if matches!(status, 401 | 403 | 404 | 409 | 422 | 429) {
        DENIED
    } else {
        2
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.detail.code, self.http_status, self.detail.message
        )?;
        if !self.detail.remediation.is_empty() {
            write!(f, "\n  next: {}", self.detail.remediation)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiClient {
    /// An HTTP client that sends the stored login's token if there is one for `server`, and no
    /// credentials otherwise (for public endpoints or servers without access control).
    pub async fn http_for(server: &str) -> Result<reqwest::Client> {
        let server = normalize_server(server);
        let mut headers = reqwest::header::HeaderMap::new();
        let store = CredentialStore::load().unwrap_or_default();
        let stored = store.servers.get(&server);
        let token = bearer_token_for(&server)?;
        if (stored.is_some() || token.is_some())
            && let Ok(client) = Self::connect(&server).await
            && let Ok(value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", client.token))
        {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        build_http_client(&trust_for(stored)?, headers)
    }

    /// Connects to `server` with its stored login, getting a fresh access token.
    pub async fn connect(server: &str) -> Result<Self> {
        Self::connect_with_scopes(server, &[]).await
    }

    /// Like [`ApiClient::connect`], with a token that also carries registry access for `scopes`
    /// (`repository:<name>:pull,push`), for the CLI commands that push to `/v2/`.
    ///
    /// With `--token` / `AIRLOCK_TOKEN` that token is used as it is (the stored login is neither
    /// read nor renewed, and `scopes` are whatever the token carries); a login made with
    /// `airlock login --oidc` uses its stored access token until it expires.
    pub async fn connect_with_scopes(server: &str, scopes: &[String]) -> Result<Self> {
        let server = normalize_server(server);
        if let Some(token) = bearer_token_for(&server)? {
            let store = CredentialStore::load().unwrap_or_default();
            let trust = trust_for(store.servers.get(&server))?;
            let http = build_http_client(&trust, reqwest::header::HeaderMap::new())?;
            return Ok(Self {
                server,
                http,
                token,
            });
        }
        let _lock = CredentialLock::acquire()?;
        let mut store = CredentialStore::load()?;
        let login = store.servers.get(&server).ok_or_else(|| {
            anyhow!(
                "not logged in to {server}: run `airlock login {server} -u NAME --password-stdin` \
                 (or `--oidc` in CI), or set AIRLOCK_TOKEN"
            )
        })?;
        let http = build_http_client(&trust_for(Some(login))?, reqwest::header::HeaderMap::new())?;
        if let Some(token) = &login.access_token {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or_default();
            if login
                .access_token_expires
                .is_none_or(|expires| expires <= now)
            {
                bail!(
                    "the token `airlock login --oidc` stored for {server} has expired: run \
                     `airlock login {server} --oidc` again"
                );
            }
            return Ok(Self {
                server,
                http,
                token: token.clone(),
            });
        }
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", login.refresh_token.as_str()),
            ("service", "airlock"),
        ];
        form.extend(scopes.iter().map(|scope| ("scope", scope.as_str())));
        let response = http
            .post(format!("{server}/auth/token"))
            .form(&form)
            .send()
            .await
            .map_err(|e| connection_error(&server, e))?;
        if !response.status().is_success() {
            // The server says why (e.g. the principal is disabled, or locked by an anomaly): its
            // code and message, exit 1 for a refusal, and logging in again as the fix.
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let mut error = ApiError::from_answer(status, &body);
            error.detail.message = format!(
                "the stored login for {server} is no longer valid: {}",
                error.detail.message
            );
            // The token endpoint's registry-shaped errors carry no remediation; an API-shaped
            // one that does (e.g. a disabled account's "ask for `airlock users enable`") is kept.
            if error.detail.remediation.is_empty() {
                error.detail.remediation = format!(
                    "log in again: `airlock login {server} -u NAME --password-stdin` (an \
                     access-admin must first enable or unlock an account the server refused)"
                );
            }
            return Err(error.into());
        }
        let body: airlock_api::identity::TokenResponse = response
            .json()
            .await
            .context("the server's token answer is not what this client expects")?;
        let token = body.token;
        // The refresh token just presented is spent: keep its successor for the next command.
        if let Some(next) = body.refresh_token
            && let Some(login) = store.servers.get_mut(&server)
        {
            login.refresh_token = next;
            store
                .save()
                .context("cannot save the renewed login; log in again")?;
        }
        Ok(Self {
            server,
            http,
            token,
        })
    }

    /// The HTTP client this API client uses (its TLS choice), for other requests to the server.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let (status, body) = self.send_raw(request).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(self.failure(status, &body))
    }

    async fn send_raw(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// POSTs `body` and returns the status and JSON answer whatever the status (for answers
    /// that carry a result even when they refuse, such as a denied promotion).
    pub async fn post_raw(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send_raw(self.http.post(format!("{}{path}", self.server)).json(body))
            .await
    }

    /// GETs a text document (e.g. a PEM key).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(self.failure(status, &body));
        }
        Ok(response.text().await?)
    }

    /// The error for an API answer with `status` and error `body`: the message and what to do
    /// next, with exit status 1 for refusals and 2 otherwise ([`ApiError`]).
    pub fn failure(&self, status: u16, body: &Value) -> anyhow::Error {
        ApiError::from_answer(status, body).into()
    }

    /// The access token, for requests this client does not make itself (the registry API).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// GET `path` as the API type `T` (an `airlock_api` response).
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let answer = self
            .send(self.http.get(format!("{}{path}", self.server)))
            .await?;
        typed(path, answer)
    }

    /// POST the API request `body` to `path`, reading the answer as `T`.
    pub async fn post_as<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let answer = self
            .send(self.http.post(format!("{}{path}", self.server)).json(body))
            .await?;
        typed(path, answer)
    }

    /// PATCH the API request `body` to `path`, reading the answer as `T`.
    pub async fn patch_as<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let answer = self
            .send(self.http.patch(format!("{}{path}", self.server)).json(body))
            .await?;
        typed(path, answer)
    }

    /// DELETE `path`, reading the answer as `T`.
    pub async fn delete_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let answer = self
            .send(self.http.delete(format!("{}{path}", self.server)))
            .await?;
        typed(path, answer)
    }
}

/// Reads an API answer as its type; a mismatch means client and server disagree on the API.
fn typed<T: DeserializeOwned>(path: &str, answer: Value) -> Result<T> {
    serde_json::from_value(answer).with_context(|| {
        format!(
            "the server's answer to {path} is not what this client expects: \
             use an airlock CLI of the server's version (`airlock version` shows both)"
        )
    })
}

/// Parses a duration such as `45s`, `90m`, `8h`, `30d` into seconds.
pub fn parse_duration(value: &str) -> Result<u64> {
    let value = value.trim();
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let amount: u64 = number.parse().map_err(|_| {
        anyhow!("{value:?} is not a duration: use a number and s, m, h or d, e.g. 1h or 30d")
    })?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{value:?} is not a duration: use a number and s, m, h or d, e.g. 1h or 30d"),
    };
    amount
        .checked_mul(unit_secs)
        .ok_or_else(|| anyhow!("{value:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn servers_normalize() {
        assert_eq!(normalize_server("127.0.0.1:5000/"), "http://127.0.0.1:5000");
        assert_eq!(normalize_server("https://x.example"), "https://x.example");
        assert_eq!(normalize_server("http://x.example"), "http://x.example");
    }

    #[test]
    fn a_server_without_a_scheme_is_https_unless_it_is_loopback() {
        assert_eq!(
            normalize_server("registry.example"),
            "https://registry.example"
        );
        assert_eq!(
            normalize_server("registry.example:5000"),
            "https://registry.example:5000"
        );
        assert_eq!(normalize_server("10.0.0.5:5000"), "https://10.0.0.5:5000");
        assert_eq!(normalize_server("localhost:5000"), "http://localhost:5000");
        assert_eq!(normalize_server("LOCALHOST"), "http://LOCALHOST");
        assert_eq!(normalize_server("127.1.2.3:80"), "http://127.1.2.3:80");
        assert_eq!(normalize_server("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(
            normalize_server("[2001:db8::1]:5000"),
            "https://[2001:db8::1]:5000"
        );
        assert_eq!(
            normalize_server("localhost.evil.example"),
            "https://localhost.evil.example"
        );
    }

    #[test]
    fn the_flags_win_over_the_stored_choice_which_wins_over_the_system_roots() {
        let dir = std::env::temp_dir().join(format!("airlock-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &pem).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let login = |ca_cert_pem: Option<&str>, insecure| StoredLogin {
            username: "alice".into(),
            refresh_token: "r".into(),
            access_token: None,
            access_token_expires: None,
            ca_cert_pem: ca_cert_pem.map(String::from),
            insecure,
        };
        let none = TlsOptions::default();
        let insecure = TlsOptions {
            insecure: true,
            ca_cert: None,
        };
        let with_ca = TlsOptions {
            insecure: false,
            ca_cert: Some(ca_file.clone()),
        };
        let kind = |trust: Trust| match trust {
            Trust::System => "system".to_string(),
            Trust::PrivateCa(ca) => format!("ca:{}", ca.pem() == pem),
            Trust::Insecure => "insecure".to_string(),
        };
        let stored_ca = login(Some(&pem), false);
        let stored_insecure = login(None, true);
        let plain = login(None, false);
        assert_eq!(kind(choose_trust(&none, None).unwrap()), "system");
        assert_eq!(kind(choose_trust(&none, Some(&plain)).unwrap()), "system");
        assert_eq!(
            kind(choose_trust(&none, Some(&stored_ca)).unwrap()),
            "ca:true"
        );
        assert_eq!(
            kind(choose_trust(&none, Some(&stored_insecure)).unwrap()),
            "insecure"
        );
        assert_eq!(
            kind(choose_trust(&insecure, Some(&stored_ca)).unwrap()),
            "insecure"
        );
        assert_eq!(
            kind(choose_trust(&with_ca, Some(&stored_insecure)).unwrap()),
            "ca:true",
            "a CA on the command line wins over a stored --insecure"
        );
        let bad = TlsOptions {
            insecure: false,
            ca_cert: Some(not_pem),
        };
        let err = format!("{:#}", choose_trust(&bad, None).unwrap_err());
        assert!(
            err.contains("--ca-cert") && err.contains("not a PEM"),
            "{err}"
        );
        let missing = TlsOptions {
            insecure: false,
            ca_cert: Some(dir.join("absent.pem")),
        };
        let err = format!("{:#}", choose_trust(&missing, None).unwrap_err());
        assert!(err.contains("cannot read the CA certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stored_logins_without_tls_fields_still_load() {
        let old =
            r#"{"servers":{"http://127.0.0.1:5000":{"username":"admin","refresh_token":"r"}}}"#;
        let store: CredentialStore = serde_json::from_str(old).unwrap();
        let login = &store.servers["http://127.0.0.1:5000"];
        assert_eq!(login.ca_cert_pem, None);
        assert!(!login.insecure);
        assert!(matches!(trust_for(Some(login)).unwrap(), Trust::System));
        assert_eq!(store.current, None, "an old store has no current context");
        // Written back, the absent choices stay absent.
        let text = serde_json::to_string(&store).unwrap();
        assert!(
            !text.contains("ca_cert_pem") && !text.contains("insecure"),
            "{text}"
        );
    }
}
