//! A small OCI Distribution client for the CLI's `sign` and `attest`: resolve a reference, upload
//! small blobs, read and write manifests. Authenticates with a registry token for exactly the
//! repository it writes, obtained from the stored login.

use anyhow::{Result, anyhow, bail};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use sha2::{Digest as _, Sha256};

use crate::client::{ApiClient, connection_error, normalize_server};

/// Media types the client accepts when reading manifests.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A reference the CLI was given: `HOST/stage/repo:tag` or `HOST/stage/repo@sha256:...` (the host
/// may be left out when `--server` names the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    /// The server URL (`http://HOST`).
    pub server: String,
    /// The registry host as written in references (`127.0.0.1:5000`).
    pub host: String,
    /// The repository with its stage (`dev/team/app`).
    pub repository: String,
    /// A tag, if the reference named one.
    pub tag: Option<String>,
    /// A digest, if the reference named one.
    pub digest: Option<String>,
}

impl ArtifactRef {
    /// Parses `text`, using `default_server` when it has no host.
    /// A host equal to `default_server`'s takes that server's scheme (so `http://` chosen with
    /// `--server` or the context stays `http://`); another host is `https://` unless loopback.
    pub fn parse(text: &str, default_server: &str) -> Result<Self> {
        if text.contains("://") {
            bail!(
                "{text:?} is a URL; an image reference has no scheme: write HOST/<stage>/<path>:tag \
                 (e.g. 127.0.0.1:5000/dev/team/app:1) and choose http:// or https:// with --server"
            );
        }
        let chosen = normalize_server(default_server);
        let chosen_host = chosen
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (text, None),
        };
        let first = rest.split('/').next().unwrap_or_default();
        let has_host = first.contains('.') || first.contains(':') || first == "localhost";
        let (server, host, path) = if has_host {
            let path = rest[first.len()..].trim_start_matches('/');
            let server = if first.eq_ignore_ascii_case(&chosen_host) {
                chosen
            } else {
                normalize_server(first)
            };
            (server, first.to_string(), path)
        } else {
            (chosen, chosen_host, rest)
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path.to_string(), None),
        };
        if repository.split('/').count() < 2 || repository.split('/').any(str::is_empty) {
            bail!(
                "{text:?} does not name a repository as <stage>/<path> (e.g. 127.0.0.1:5000/dev/team/app@sha256:...)"
            );
        }
        if let Some(digest) = &digest
            && !(digest.starts_with("sha256:") && digest.len() == 71)
        {
            bail!("{digest:?} is not a sha256 digest (sha256:<64 hex>)");
        }
        if tag.is_none() && digest.is_none() {
            bail!("{text:?} names no tag or digest; add :tag or @sha256:...");
        }
        Ok(Self {
            server,
            host,
            repository,
            tag,
            digest,
        })
    }

    /// The repository as cosign names it in signatures: `HOST/stage/path`.
    pub fn docker_reference(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

/// A manifest as read from the registry.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A client for one repository on one server.
pub struct OciClient {
    server: String,
    repository: String,
    http: reqwest::Client,
    token: String,
}

impl OciClient {
    /// Connects with a token for `pull,push` on the reference's repository.
    pub async fn connect(target: &ArtifactRef) -> Result<Self> {
        Self::connect_for(target, "pull,push").await
    }

    /// Connects with a token for `pull` only.
    pub async fn connect_read(target: &ArtifactRef) -> Result<Self> {
        Self::connect_for(target, "pull").await
    }

    async fn connect_for(target: &ArtifactRef, actions: &str) -> Result<Self> {
        let scope = format!("repository:{}:{actions}", target.repository);
        let api = ApiClient::connect_with_scopes(&target.server, &[scope]).await?;
        Ok(Self {
            server: target.server.clone(),
            repository: target.repository.clone(),
            http: api.http().clone(),
            token: api.token().to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.server, self.repository)
    }

    async fn failure(what: &str, response: reqwest::Response) -> anyhow::Error {
        // The registry's code and message (`{"errors":[...]}`), exit 1 for a refusal or a
        // missing artifact and 2 otherwise, as for every API error.
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let mut error = crate::client::ApiError::from_answer(status, &body);
        error.detail.message = format!("{what} failed: {}", error.detail.message);
        error.into()
    }

    /// The manifest `reference` (tag or digest) names, or `None` if there is none.
    pub async fn manifest(&self, reference: &str) -> Result<Option<FetchedManifest>> {
        let response = self
            .http
            .get(self.url(&format!("manifests/{reference}")))
            .bearer_auth(&self.token)
            .header(ACCEPT, MANIFEST_TYPES)
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::failure(&format!("reading manifest {reference}"), response).await);
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        let content = response.bytes().await?.to_vec();
        Ok(Some(FetchedManifest {
            media_type,
            digest: sha256_digest(&content),
            content,
        }))
    }

    /// Uploads `bytes` as a blob (monolithic), unless the repository already has it.
    pub async fn upload_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let head = self
            .http
            .head(self.url(&format!("blobs/{digest}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        if head.status().is_success() {
            return Ok(digest);
        }
        let start = self
            .http
            .post(self.url("blobs/uploads/"))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        if start.status() != StatusCode::ACCEPTED {
            return Err(Self::failure("starting an upload", start).await);
        }
        let location = start
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("the registry sent no upload location"))?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.server)
        } else {
            location.to_string()
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .http
            .put(format!("{location}{separator}digest={digest}"))
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        if put.status() != StatusCode::CREATED {
            return Err(Self::failure("uploading a blob", put).await);
        }
        Ok(digest)
    }

    /// Pushes a manifest under `reference` (a tag, or its digest); returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        content: &[u8],
    ) -> Result<String> {
        let response = self
            .http
            .put(self.url(&format!("manifests/{reference}")))
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, media_type)
            .body(content.to_vec())
            .send()
            .await
            .map_err(|e| connection_error(&self.server, e))?;
        if response.status() != StatusCode::CREATED {
            return Err(Self::failure("pushing the manifest", response).await);
        }
        Ok(sha256_digest(content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_with_a_host_name_their_server() {
        let r = ArtifactRef::parse(&format!("127.0.0.1:5000/dev/team/app@{DIGEST}"), "x").unwrap();
        assert_eq!(r.server, "http://127.0.0.1:5000");
        assert_eq!(r.repository, "dev/team/app");
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.docker_reference(), "127.0.0.1:5000/dev/team/app");
        let tagged = ArtifactRef::parse("localhost:5000/dev/app:1.0", "x").unwrap();
        assert_eq!(tagged.tag.as_deref(), Some("1.0"));
        assert_eq!(tagged.repository, "dev/app");
    }

    #[test]
    fn references_without_a_host_use_the_server_option() {
        let r = ArtifactRef::parse("dev/team/app:v1", "http://10.0.0.1:5000").unwrap();
        assert_eq!(r.server, "http://10.0.0.1:5000");
        assert_eq!(r.host, "10.0.0.1:5000");
        assert_eq!(r.docker_reference(), "10.0.0.1:5000/dev/team/app");
    }

    #[test]
    fn a_reference_to_the_chosen_server_uses_its_scheme() {
        let r = ArtifactRef::parse(
            "reg.example.com:5000/dev/app:1",
            "http://reg.example.com:5000",
        )
        .unwrap();
        assert_eq!(r.server, "http://reg.example.com:5000");
        assert_eq!(r.host, "reg.example.com:5000");
        let other =
            ArtifactRef::parse("other.example.com/dev/app:1", "http://reg.example.com:5000")
                .unwrap();
        assert_eq!(other.server, "https://other.example.com");
    }

    #[test]
    fn a_reference_with_a_scheme_is_refused_as_a_url() {
        let err = ArtifactRef::parse("http://127.0.0.1:5000/dev/app:1", "http://127.0.0.1:5000")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no scheme") && err.contains("--server"),
            "{err}"
        );
    }

    #[test]
    fn bad_references_say_what_is_missing() {
        for (text, expected) in [
            ("127.0.0.1:5000/dev/app", "no tag or digest"),
            ("127.0.0.1:5000/dev/app@sha256:00", "not a sha256 digest"),
            ("127.0.0.1:5000/app:1", "<stage>/<path>"),
        ] {
            let err = ArtifactRef::parse(text, "x").unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
