//! `airlock login --oidc`: a CI job's OIDC ID token exchanged (`POST /auth/oidc`) for a
//! short-lived builder token.
//!
//! Where the ID token comes from, in this order: `--id-token-file FILE`; the environment variable
//! `--id-token-env NAME` names (GitLab's `id_tokens:` keyword); GitHub Actions' token service
//! (`ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, asked for `--audience`);
//! GitLab's `CI_JOB_JWT_V2`. Nothing long-lived is stored: the access token is kept as the
//! server's context until it expires (or, with `--print-token`, printed and not stored).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Deserialize;

use crate::client::{
    ApiError, ConnectionFailed, CredentialLock, CredentialStore, StoredLogin, build_http_client,
    connection_error,
};

/// The `--oidc` options of `airlock login`.
#[derive(Debug, Args)]
pub struct OidcArgs {
    /// Exchange the CI job's OIDC ID token for a short-lived builder token instead of logging in
    /// with a password (GitHub Actions, GitLab CI, or --id-token-file).
    #[arg(long)]
    pub(crate) oidc: bool,
    /// The audience to ask GitHub Actions' token service for: the `audience` of the server's
    /// `[[access.oidc]]` rule [default: the server URL].
    #[arg(long, requires = "oidc", value_name = "AUDIENCE")]
    audience: Option<String>,
    /// Read the ID token from this environment variable (GitLab: the name given under
    /// `id_tokens:`), instead of CI_JOB_JWT_V2 or GitHub's token service.
    #[arg(long, requires = "oidc", value_name = "NAME")]
    id_token_env: Option<String>,
    /// Read the ID token from this file.
    #[arg(
        long,
        requires = "oidc",
        value_name = "FILE",
        conflicts_with = "id_token_env"
    )]
    id_token_file: Option<PathBuf>,
    /// Registry access the token should carry, e.g. `repository:dev/team/app:pull,push`
    /// (repeat for several; limited to the rule's repositories). Needed for `airlock sign`,
    /// `attest` and pushes with the token.
    #[arg(long = "scope", requires = "oidc", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Print the token on stdout (e.g. `export AIRLOCK_TOKEN=$(airlock login --oidc
    /// --print-token)`) and store nothing.
    #[arg(long, requires = "oidc")]
    print_token: bool,
}

/// `POST /auth/oidc`'s answer.
#[derive(Deserialize)]
struct Issued {
    token: String,
    expires_in: u64,
}

/// GitHub's token service's answer.
#[derive(Deserialize)]
struct GithubIdToken {
    value: String,
}

/// Exchanges the job's ID token at `server` and stores (or prints) the builder token.
pub async fn login(server: &str, args: &OidcArgs) -> Result<u8> {
    let id_token = id_token(server, args).await?;
    let earlier = CredentialStore::load()?.servers.remove(server);
    let trust = crate::client::trust_for(earlier.as_ref())?;
    let http = build_http_client(&trust, reqwest::header::HeaderMap::new())?;
    let response = http
        .post(format!("{server}/auth/oidc"))
        .json(&serde_json::json!({"id_token": id_token, "scope": args.scopes}))
        .send()
        .await
        .map_err(|e| connection_error(server, e))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        // The token endpoint answers in the registry's error shape; show its message.
        let message = body["errors"][0]["message"]
            .as_str()
            .or(body["error"]["message"].as_str())
            .unwrap_or("the ID token was refused");
        return Err(ApiError::from_answer(
            status,
            &serde_json::json!({"error": {
                "code": "OIDC_REFUSED",
                "message": message,
                "remediation": "check that an [[access.oidc]] rule of the server has this \
                    token's issuer, audience (--audience) and claims"}}),
        )
        .into());
    }
    let issued: Issued = serde_json::from_value(body)
        .map_err(|_| anyhow!("{server}/auth/oidc answered without a token"))?;
    if args.print_token {
        println!("{}", issued.token);
        eprintln!(
            "a builder token for {server}, valid for {} s; later commands use it from \
             AIRLOCK_TOKEN or --token (nothing was stored)",
            issued.expires_in
        );
        return Ok(0);
    }
    // Who the token is for, as the server says (`oidc/<rule>`).
    let me: airlock_api::identity::WhoAmI = {
        let response = http
            .get(format!("{server}/api/v1/whoami"))
            .bearer_auth(&issued.token)
            .send()
            .await
            .map_err(|e| connection_error(server, e))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(ApiError::from_answer(status, &body).into());
        }
        serde_json::from_value(body)
            .context("the server's whoami answer is not what this client expects")?
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let _lock = CredentialLock::acquire()?;
    let mut store = CredentialStore::load()?;
    let mut login = StoredLogin::new(&me.name, String::new(), &trust);
    login.access_token = Some(issued.token);
    login.access_token_expires = Some(now.saturating_add(issued.expires_in));
    store.servers.insert(server.to_string(), login);
    store.current = Some(server.to_string());
    store.save()?;
    eprintln!(
        "logged in to {server} as {} with a CI token valid for {} s: later commands use it until \
         it expires (it is stored as this context's token in {}; nothing renews it)",
        me.name,
        issued.expires_in,
        crate::client::credentials_path()?.display()
    );
    Ok(0)
}

/// The job's ID token, from the first source that has one.
async fn id_token(server: &str, args: &OidcArgs) -> Result<String> {
    if let Some(path) = &args.id_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the ID token file {}", path.display()))?;
        return non_empty(text, &format!("the ID token file {}", path.display()));
    }
    if let Some(name) = &args.id_token_env {
        let value = std::env::var(name).map_err(|_| {
            anyhow!("--id-token-env {name}: the variable is not set (declare it under id_tokens: in .gitlab-ci.yml)")
        })?;
        return non_empty(value, &format!("the variable {name}"));
    }
    if let (Ok(url), Ok(request_token)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) {
        return github_id_token(
            &url,
            &request_token,
            args.audience.as_deref().unwrap_or(server),
        )
        .await;
    }
    if let Ok(value) = std::env::var("CI_JOB_JWT_V2") {
        return non_empty(value, "CI_JOB_JWT_V2");
    }
    bail!(
        "no CI ID token found: in GitHub Actions give the job `permissions: id-token: write`; in \
         GitLab CI declare one under `id_tokens:` and pass --id-token-env NAME; elsewhere pass \
         --id-token-file FILE"
    )
}

fn non_empty(value: String, what: &str) -> Result<String> {
    let value = value.trim().to_string();
    if value.is_empty() {
        bail!("{what} is empty: it should hold the CI job's OIDC ID token");
    }
    Ok(value)
}

/// Asks GitHub Actions' token service for an ID token with `audience`.
async fn github_id_token(url: &str, request_token: &str, audience: &str) -> Result<String> {
    let http = build_http_client(
        &airlock_server::outbound_tls::Trust::System,
        reqwest::header::HeaderMap::new(),
    )?;
    let mut url = reqwest::Url::parse(url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
    url.query_pairs_mut().append_pair("audience", audience);
    let response = http
        .get(url)
        .bearer_auth(request_token)
        .send()
        .await
        .map_err(|e| ConnectionFailed {
            message: "cannot reach GitHub's ID token service (ACTIONS_ID_TOKEN_REQUEST_URL)".into(),
            source: Some(e),
        })?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "GitHub's ID token service answered {status}: give the job `permissions: id-token: \
             write`"
        );
    }
    let answer: GithubIdToken = response
        .json()
        .await
        .context("GitHub's ID token service answered without a token")?;
    non_empty(answer.value, "GitHub's ID token")
}
