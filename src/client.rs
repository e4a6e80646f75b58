//! The CLI's connection to an airlock server: the stored login (`airlock login`), access tokens
//! obtained from it, JSON requests, and turning API errors into messages and exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
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
    /// The refresh token (a secret: the file is 0600).
    pub refresh_token: String,
}

/// Every stored login, by server URL.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CredentialStore {
    /// Logins by server.
    pub servers: BTreeMap<String, StoredLogin>,
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

/// Normalises a server URL for use as a key.
pub fn normalize_server(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// Exchanges a user name and password (or API key) for a refresh token.
pub async fn login(server: &str, username: &str, password: &str) -> Result<String> {
    let http = reqwest::Client::new();
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
        .with_context(|| format!("cannot reach {server}; is airlock running there?"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["errors"][0]["message"]
            .as_str()
            .or(body["error"]["message"].as_str())
            .unwrap_or("login failed");
        bail!("login refused ({status}): {message}");
    }
    body["refresh_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("the server returned no refresh token"))
}

/// An authenticated API client for one server.
pub struct ApiClient {
    server: String,
    http: reqwest::Client,
    token: String,
}

/// An API failure: the message to print and the exit status.
#[derive(Debug)]
pub struct ApiFailure {
    /// What to print on stderr.
    pub message: String,
    /// The exit status.
    pub status: u8,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl ApiClient {
    /// An HTTP client that sends the stored login's token if there is one for `server`, and no
    /// credentials otherwise (for public endpoints or servers without access control).
    pub async fn http_for(server: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let has_login = CredentialStore::load()
            .map(|s| s.servers.contains_key(&normalize_server(server)))
            .unwrap_or(false);
        if has_login
            && let Ok(client) = Self::connect(server).await
            && let Ok(value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", client.token))
        {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap_or_default()
    }

    /// Connects to `server` with its stored login, getting a fresh access token.
    pub async fn connect(server: &str) -> Result<Self> {
        Self::connect_with_scopes(server, &[]).await
    }

    /// Like [`ApiClient::connect`], with a token that also carries registry access for `scopes`
    /// (`repository:<name>:pull,push`), for the CLI commands that push to `/v2/`.
    pub async fn connect_with_scopes(server: &str, scopes: &[String]) -> Result<Self> {
        let server = normalize_server(server);
        let _lock = CredentialLock::acquire()?;
        let mut store = CredentialStore::load()?;
        let login = store.servers.get(&server).ok_or_else(|| {
            anyhow!(
                "not logged in to {server}: run `airlock login {server} -u NAME --password-stdin`"
            )
        })?;
        let http = reqwest::Client::new();
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
            .with_context(|| format!("cannot reach {server}; is airlock running there?"))?;
        if !response.status().is_success() {
            // The server says why (e.g. the principal is locked by an anomaly); show it.
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let why = body["errors"][0]["message"]
                .as_str()
                .or_else(|| body["error"]["message"].as_str())
                .unwrap_or("expired, or your access changed");
            bail!("the stored login for {server} is no longer valid ({why}): log in again");
        }
        let body: Value = response.json().await?;
        let token = body["token"]
            .as_str()
            .ok_or_else(|| anyhow!("the server returned no token"))?
            .to_string();
        // The refresh token just presented is spent: keep its successor for the next command.
        if let Some(next) = body["refresh_token"].as_str()
            && let Some(login) = store.servers.get_mut(&server)
        {
            login.refresh_token = next.to_string();
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
            .context("request failed")?;
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
            .context("request failed")?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(self.failure(status, &body));
        }
        Ok(response.text().await?)
    }

    /// The error for an API answer with `status` and error `body`: the message and what to do
    /// next, with exit status 1 for refusals and 2 otherwise.
    pub fn failure(&self, status: u16, body: &Value) -> anyhow::Error {
        let error = &body["error"];
        let message = format!(
            "{} ({}): {}{}",
            error["code"].as_str().unwrap_or("ERROR"),
            status,
            error["message"].as_str().unwrap_or("request failed"),
            error["remediation"]
                .as_str()
                .map(|r| format!("\n  next: {r}"))
                .unwrap_or_default()
        );
        let code = if matches!(status, 401 | 403 | 409 | 422 | 429) {
            DENIED
        } else {
            2
        };
        ApiFailure {
            message,
            status: code,
        }
        .into()
    }

    /// GET a JSON document.
    /// The access token, for requests this client does not make itself (the registry API).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.server)))
            .await
    }

    /// POST JSON, returning JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.server)).json(body))
            .await
    }

    /// `DELETE` `path`; the JSON answer, or the API error as a message.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.server)))
            .await
    }

    /// `PATCH` JSON, returning JSON.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.server)).json(body))
            .await
    }
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
    }
}
