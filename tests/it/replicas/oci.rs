//! What the replica tests push and read back: the test OCI client's steps (each returns what the
//! server acknowledged instead of asserting, since a replica may die under it), the ledger of
//! acknowledged writes, and an OCI image layout for skopeo.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{OCI_MANIFEST, sha256};

/// Why a step failed: the status and body, or the transport error.
pub type Failure = String;

async fn failure(response: reqwest::Response) -> Failure {
    let status = response.status();
    format!("{status} {}", response.text().await.unwrap_or_default())
}

/// Resolves a `Location` header against `base`.
fn location(base: &str, response: &reqwest::Response) -> Result<String, Failure> {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{} without Location", response.status()))?;
    Ok(if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    })
}

/// Uploads `content` in one request (`POST ?digest=`); returns its digest once answered 201.
pub async fn push_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    content: &[u8],
) -> Result<String, Failure> {
    let digest = sha256(content);
    let response = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .body(content.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 201 {
        return Err(failure(response).await);
    }
    Ok(digest)
}

/// Uploads `content` in `chunks` PATCH requests between a POST and the final PUT, each request a
/// new round-robin pick (so one upload crosses replicas); returns its digest once answered 201.
pub async fn push_blob_chunked(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    content: &[u8],
    chunks: usize,
) -> Result<String, Failure> {
    let digest = sha256(content);
    let started = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if started.status() != 202 {
        return Err(failure(started).await);
    }
    let mut upload = location(base, &started)?;
    let size = content.len().div_ceil(chunks);
    for (i, chunk) in content.chunks(size).enumerate() {
        let from = i * size;
        let response = http
            .patch(&upload)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{from}-{}", from + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != 202 {
            return Err(failure(response).await);
        }
        upload = location(base, &response)?;
    }
    let separator = if upload.contains('?') { '&' } else { '?' };
    let response = http
        .put(format!("{upload}{separator}digest={digest}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 201 {
        return Err(failure(response).await);
    }
    Ok(digest)
}

/// An image manifest over `config` and `layers` (digest, size).
pub fn manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(digest, size)| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": digest, "size": size})
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .expect("manifest JSON")
}

/// Pushes `manifest` to `repo:tag`; Ok once answered 201.
pub async fn put_manifest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    manifest: &[u8],
) -> Result<(), Failure> {
    let response = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 201 {
        return Err(failure(response).await);
    }
    Ok(())
}

/// `POST /api/v1/promotions` of `source@digest` into `to`: (status, body), or the transport error.
pub async fn request_promotion(
    http: &reqwest::Client,
    base: &str,
    source: &str,
    digest: &str,
    to: &str,
) -> Result<(u16, Value), Failure> {
    let response = http
        .post(format!("{base}/api/v1/promotions"))
        .json(&json!({"source": source, "reference": digest, "to": to}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Promotes `source@digest` into `to`; the promotion's id and target repository once answered
/// 201 with state `promoted`.
pub async fn promote(
    http: &reqwest::Client,
    base: &str,
    source: &str,
    digest: &str,
    to: &str,
) -> Result<(String, String), Failure> {
    let (status, body) = request_promotion(http, base, source, digest, to).await?;
    let promotion = &body["promotion"];
    if status != 201 || promotion["state"] != "promoted" {
        return Err(format!("{status} {body}"));
    }
    Ok((
        promotion["id"].as_str().unwrap_or_default().to_string(),
        promotion["target"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Everything a server acknowledged, to be found again afterwards.
#[derive(Debug, Default, Clone)]
pub struct Acknowledged {
    /// (repository, digest, content) of blobs answered 201.
    pub blobs: Vec<(String, String, Vec<u8>)>,
    /// (repository, tag, manifest bytes) of manifests answered 201.
    pub manifests: Vec<(String, String, Vec<u8>)>,
    /// (id, target repository, digest) of promotions answered 201 `promoted`.
    pub promotions: Vec<(String, String, String)>,
}

impl Acknowledged {
    /// Adds `other`'s acknowledgements.
    pub fn extend(&mut self, other: Acknowledged) {
        self.blobs.extend(other.blobs);
        self.manifests.extend(other.manifests);
        self.promotions.extend(other.promotions);
    }

    /// What of this is missing or different on the server at `base` (a replica, read directly).
    pub async fn missing_on(&self, http: &reqwest::Client, base: &str) -> Vec<String> {
        let mut missing = Vec::new();
        for (repo, digest, content) in &self.blobs {
            let response = http
                .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                .send()
                .await;
            match response {
                Ok(r) if r.status() == 200 => {
                    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if body != *content {
                        missing.push(format!("blob {repo}@{digest}: different bytes"));
                    }
                }
                Ok(r) => missing.push(format!("blob {repo}@{digest}: {}", r.status())),
                Err(e) => missing.push(format!("blob {repo}@{digest}: {e}")),
            }
        }
        for (repo, tag, bytes) in &self.manifests {
            let response = http
                .get(format!("{base}/v2/{repo}/manifests/{tag}"))
                .header("accept", OCI_MANIFEST)
                .send()
                .await;
            match response {
                Ok(r) if r.status() == 200 => {
                    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if body != *bytes {
                        missing.push(format!("manifest {repo}:{tag}: different bytes"));
                    }
                }
                Ok(r) => missing.push(format!("manifest {repo}:{tag}: {}", r.status())),
                Err(e) => missing.push(format!("manifest {repo}:{tag}: {e}")),
            }
        }
        for (id, target, digest) in &self.promotions {
            let state = match http
                .get(format!("{base}/api/v1/promotions/{id}"))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => r
                    .json::<Value>()
                    .await
                    .map(|v| v["state"].as_str().unwrap_or_default().to_string())
                    .unwrap_or_default(),
                Ok(r) => r.status().to_string(),
                Err(e) => e.to_string(),
            };
            if state != "promoted" {
                missing.push(format!("promotion {id}: {state}"));
            }
            let in_target = http
                .head(format!("{base}/v2/{target}/manifests/{digest}"))
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .map(|r| r.status().as_u16());
            if !matches!(in_target, Ok(200)) {
                missing.push(format!(
                    "promotion {id}: {target}@{digest} answers {in_target:?}"
                ));
            }
        }
        missing
    }
}

/// An OCI image layout on disk (for `skopeo copy oci:DIR:TAG ...`).
pub struct Layout {
    /// The layout's directory.
    pub dir: PathBuf,
}

impl Layout {
    /// A layout in `dir` holding one image of pseudo-random gzip layers of `layer_sizes` bytes,
    /// tagged `tag`; returns the layout and the manifest digest.
    pub fn with_image(dir: &Path, seed: u8, layer_sizes: &[usize], tag: &str) -> (Self, String) {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let layout = Self {
            dir: dir.to_path_buf(),
        };
        let layers: Vec<Value> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let content = gzip(&pseudo_random(
                    *size,
                    seed.wrapping_mul(31).wrapping_add(i as u8),
                ));
                layout.blob("application/vnd.oci.image.layer.v1.tar+gzip", &content)
            })
            .collect();
        let diff_ids: Vec<String> = (0..layers.len())
            .map(|i| sha256(format!("{seed}-{i}").as_bytes()))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}))
        .expect("config JSON");
        let config = layout.blob("application/vnd.oci.image.config.v1+json", &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}))
        .expect("manifest JSON");
        let mut descriptor = layout.blob(OCI_MANIFEST, &manifest);
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "mediaType": crate::common::OCI_INDEX,
                           "manifests": [descriptor]});
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).expect("index JSON"),
        )
        .expect("index.json");
        (layout, sha256(&manifest))
    }

    fn blob(&self, media_type: &str, content: &[u8]) -> Value {
        let digest = sha256(content);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest[7..]), content)
            .expect("layout blob");
        json!({"mediaType": media_type, "digest": digest, "size": content.len()})
    }
}

/// Real gzip, so skopeo copies the layers as they are.
fn gzip(content: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(content).expect("gzip");
    encoder.finish().expect("gzip")
}

/// `len` bytes from a xorshift generator seeded with `seed`.
pub fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
