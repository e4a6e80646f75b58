//! Evidence end to end: the keyring, cosign signatures and DSSE/in-toto attestations pushed over
//! the OCI API, verified (or rejected with a reason) by airlock.
//!
//! Signatures come from two independent sides, so airlock's code is never trusted twice:
//! `tests/interop/cosign_spec.py`, written from the cosign, DSSE and in-toto specifications with
//! Python's `cryptography`, PyNaCl and `securesystemslib`, signs what airlock must verify and
//! verifies what airlock's CLI signs; and the real cosign-generated key in `tests/fixtures/cosign/`
//! is read and used by airlock's CLI.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    ADMIN_PASSWORD, OCI_MANIFEST, TestServer, client_as, cosign_spec as py,
    cosign_spec_ok as py_ok, post_json as post, python_ready, sha256,
};
use serde_json::{Value, json};

const PASSWORD: &str = "evidence-test-password-1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const FIXTURE_KEY: &str = "tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key";

/// A test bed: a server, a key admin, a pushed image in `dev/team/app`, a scratch directory.
struct Bed {
    s: TestServer,
    keyadmin: reqwest::Client,
    dir: tempfile::TempDir,
    repo: &'static str,
    digest: String,
}

impl Bed {
    async fn new() -> Self {
        let s = TestServer::start();
        let (status, body) = post(
            &s.http,
            &s.url("/api/v1/users"),
            json!({"name": "keyadmin", "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(
            &s.http,
            &s.url("/api/v1/roles/grant"),
            json!({"principal": "keyadmin", "role": "key-admin", "scope": "*"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let repo = "dev/team/app";
        let (_, digest) = s.push_image(repo, "1.0", &[b"layer one"]).await;
        Self {
            keyadmin: client_as("keyadmin", PASSWORD),
            s,
            dir: tempfile::tempdir().unwrap(),
            repo,
            digest,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Generates a P-256 key pair with the independent implementation; returns its directory.
    fn keygen(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        py_ok(&["keygen", "--out-dir", dir.to_str().unwrap()]);
        dir
    }

    async fn add_key(
        &self,
        name: &str,
        public_pem: &str,
        purposes: &[&str],
        extra: Value,
    ) -> Value {
        let mut body = json!({"name": name, "public_key": public_pem, "purposes": purposes, "scope": ["team/*"]});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let (status, body) = post(&self.keyadmin, &self.s.url("/api/v1/keys"), body).await;
        assert_eq!(status, 201, "add key {name}: {body}");
        body
    }

    async fn key_status(&self, name: &str, action: &str, body: Value) {
        let (status, body) = post(
            &self.keyadmin,
            &self.s.url(&format!("/api/v1/keys/{name}/{action}")),
            body,
        )
        .await;
        assert_eq!(status, 200, "{action} {name}: {body}");
    }

    /// Registry arguments for cosign_spec.py.
    fn reg(&self) -> Vec<String> {
        vec![
            "--registry".into(),
            self.s.base.clone(),
            "--user".into(),
            "admin".into(),
            "--password".into(),
            ADMIN_PASSWORD.into(),
            "--repo".into(),
            self.repo.into(),
            "--digest".into(),
            self.digest.clone(),
        ]
    }

    fn py_sign(&self, key_dir: &Path, extra: &[&str]) -> Value {
        let mut args: Vec<String> = vec!["sign".into()];
        args.extend(self.reg());
        args.extend([
            "--key".into(),
            key_dir.join("key.pem").display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn py_attest(
        &self,
        key_dir: &Path,
        predicate_type: &str,
        predicate: &Value,
        extra: &[&str],
    ) -> Value {
        let file = self.path(&format!("predicate-{}.json", rand_suffix()));
        std::fs::write(&file, predicate.to_string()).unwrap();
        let mut args: Vec<String> = vec!["attest".into()];
        args.extend(self.reg());
        args.extend([
            "--key".into(),
            key_dir.join("key.pem").display().to_string(),
            "--predicate-type".into(),
            predicate_type.into(),
            "--predicate".into(),
            file.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    async fn evidence(&self) -> Vec<Value> {
        let response = self
            .s
            .http
            .get(self.s.url(&format!(
                "/api/v1/artifacts/{}@{}/evidence",
                self.repo, self.digest
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["evidence"].as_array().cloned().unwrap_or_default()
    }

    /// The evidence items carried by the manifest `manifest`.
    async fn evidence_of(&self, manifest: &str) -> Vec<Value> {
        self.evidence()
            .await
            .into_iter()
            .filter(|e| e["manifest"] == manifest)
            .collect()
    }

    /// Logs the CLI in as the key admin (in its own config directory) and runs it.
    fn cli_keyadmin(&self, args: &[&str]) -> (i32, String, String) {
        let home = self.path("keyadmin-home");
        if !home.join("airlock/credentials.json").exists() {
            std::fs::create_dir_all(&home).unwrap();
            let (code, out, err) = self.s.cli_as(
                &home,
                &["login", &self.s.base, "-u", "keyadmin", "--password-stdin"],
                Some(PASSWORD),
            );
            assert_eq!(code, 0, "{out}{err}");
        }
        self.s
            .cli_with_env(&home, args, None, &[("COSIGN_PASSWORD", "")])
    }
}

fn rand_suffix() -> String {
    uuid_like()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn single(items: Vec<Value>) -> Value {
    assert_eq!(items.len(), 1, "expected one evidence item: {items:#?}");
    items.into_iter().next().unwrap()
}

fn public_pem(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("key.pub")).unwrap()
}

fn slsa_provenance() -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}]
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "metadata": {"invocationId": "1"}}
    })
}

fn cyclonedx(license_expression: &str) -> Value {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [
            {"type": "library", "name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.200",
             "licenses": [{"expression": "MIT OR Apache-2.0"}]},
            {"type": "library", "name": "weird", "version": "0.1.0",
             "licenses": [{"expression": license_expression}]}
        ]
    })
}

#[tokio::test]
async fn independent_signatures_and_attestations_are_verified_in_both_schemes() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci");
    bed.add_key(
        "ci-builder",
        &public_pem(&ci),
        &[
            "sign",
            &format!("attest:{SLSA_V1}"),
            &format!("attest:{CYCLONEDX}"),
        ],
        json!({}),
    )
    .await;

    // Tag scheme, as cosign writes by default.
    let signed = bed.py_sign(&ci, &[]);
    assert_eq!(signed["tag"], format!("sha256-{}.sig", &bed.digest[7..]));
    let item = single(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
    );
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "signature");
    assert_eq!(item["key_name"], "ci-builder");
    assert_eq!(item["source"], "tag");

    let attested = bed.py_attest(&ci, SLSA_V1, &slsa_provenance(), &[]);
    let item = single(
        bed.evidence_of(attested["manifest_digest"].as_str().unwrap())
            .await,
    );
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "attestation");
    assert_eq!(item["predicate_type"], SLSA_V1);
    assert_eq!(item["facts"]["kind"], "provenance");
    assert_eq!(
        item["facts"]["builder_id"],
        "https://github.com/actions/runner/github-hosted"
    );
    assert_eq!(
        item["facts"]["source_repository"],
        "https://github.com/acme/app"
    );
    assert_eq!(
        item["facts"]["commit"],
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    );

    // OCI 1.1 referrers, in the layouts cosign versions write, and an in-toto v0.1 statement.
    for style in ["empty-config", "config-only", "config-and-artifact-type"] {
        let signed = bed.py_sign(&ci, &["--referrer", "--referrer-style", style]);
        let item = single(
            bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
                .await,
        );
        assert_eq!(item["status"], "verified", "{style}: {item:#}");
        assert_eq!(item["source"], "referrer");
    }
    let attested = bed.py_attest(
        &ci,
        CYCLONEDX,
        &cyclonedx("MIT AND OR Apache-2.0"),
        &[
            "--referrer",
            "--artifact-type",
            "application/vnd.in-toto+json",
            "--statement-version",
            "v0.1",
        ],
    );
    let item = single(
        bed.evidence_of(attested["manifest_digest"].as_str().unwrap())
            .await,
    );
    assert_eq!(item["status"], "verified", "{item:#}");
    // The invalid license expression is reported, not dropped.
    assert_eq!(item["facts"]["kind"], "sbom");
    let licenses = item["facts"]["licenses"].as_array().unwrap();
    assert_eq!(licenses.len(), 1, "{item:#}");
    let license = licenses[0].as_str().unwrap();
    assert!(
        license.contains("MIT") && license.contains("Apache-2.0") && license.contains(" OR "),
        "{license}"
    );
    let invalid = item["facts"]["invalid_licenses"].as_array().unwrap();
    assert_eq!(invalid.len(), 1, "{item:#}");
    assert_eq!(invalid[0]["expression"], "MIT AND OR Apache-2.0");
    assert_eq!(invalid[0]["component"], "weird@0.1.0");

    // Everything is in the audit log.
    let entries = bed.s.audit_entries().await;
    let verified = entries
        .iter()
        .filter(|e| e["type"] == "evidence.verified")
        .count();
    assert_eq!(verified, 6, "{entries:#?}");
    assert!(
        entries
            .iter()
            .any(|e| e["type"] == "key.added" && e["subject"]["name"] == "ci-builder")
    );
}

#[tokio::test]
async fn airlock_signs_with_the_real_cosign_key_and_the_independent_verifier_accepts() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    // The public half of the real cosign-generated key, as the independent implementation reads it.
    let decrypted = py_ok(&["decrypt-key", "--key", FIXTURE_KEY, "--password", ""]);
    let pem = decrypted["public_pem"].as_str().unwrap().to_string();
    let pub_file = bed.path("fixture.pub");
    std::fs::write(&pub_file, &pem).unwrap();

    // The key admin adds it from the private key file with the CLI (COSIGN_PASSWORD is empty).
    let (code, out, err) = bed.cli_keyadmin(&[
        "keys",
        "add",
        "cosign-fixture",
        "--key",
        FIXTURE_KEY,
        "--purpose",
        "sign",
        "--purpose",
        &format!("attest:{SLSA_V1}"),
        "--scope",
        "team/*",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let reference = format!("{}/{}@{}", bed.s.host, bed.repo, bed.digest);

    // airlock signs (tag scheme), the server verifies it, and so does the independent verifier.
    let (code, out, err) = bed.s.cli_env(
        &["sign", &reference, "--key", FIXTURE_KEY, "--output", "json"],
        &[("COSIGN_PASSWORD", "")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let signed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(signed["evidence"][0]["status"], "verified", "{signed:#}");
    assert_eq!(signed["evidence"][0]["key_id"], added["key_id"]);
    let mut args: Vec<String> = vec!["verify".into()];
    args.extend(bed.reg());
    args.extend(["--pub".into(), pub_file.display().to_string()]);
    let verdict = py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(verdict["verified"], 1, "{verdict:#}");
    assert_eq!(
        verdict["docker_references"][0],
        format!("{}/{}", bed.s.host, bed.repo)
    );

    // airlock attests (tag scheme and referrer); securesystemslib verifies the DSSE envelopes.
    let predicate = bed.path("provenance.json");
    std::fs::write(&predicate, slsa_provenance().to_string()).unwrap();
    for extra in [&[][..], &["--referrer"][..]] {
        let mut args = vec![
            "attest",
            &reference,
            "--key",
            FIXTURE_KEY,
            "--type",
            "slsaprovenance1",
            "--predicate",
            predicate.to_str().unwrap(),
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = bed.s.cli_env(&args, &[("COSIGN_PASSWORD", "")]);
        assert_eq!(code, 0, "{out}{err}");
        let attested: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            attested["evidence"][0]["status"], "verified",
            "{attested:#}"
        );
        let mut args: Vec<String> = vec!["verify-attestation".into()];
        args.extend(bed.reg());
        args.extend([
            "--pub".into(),
            pub_file.display().to_string(),
            "--type".into(),
            SLSA_V1.into(),
        ]);
        if !extra.is_empty() {
            args.push("--referrer".into());
        }
        let verdict = py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(verdict["verified"].as_u64().unwrap() >= 1, "{verdict:#}");
    }

    // `airlock evidence` shows all of it.
    let (code, out, err) = bed.s.cli(&["evidence", &reference]);
    assert_eq!(code, 0, "{out}{err}");
    // The referrer attestation is the same envelope as the tag-scheme one (same key, statement and
    // deterministic ECDSA), so it is one item.
    assert_eq!(out.matches("verified").count(), 2, "{out}");
    assert!(out.contains("key=cosign-fixture"), "{out}");
    assert!(
        out.contains("builder https://github.com/actions/runner/github-hosted"),
        "{out}"
    );
}

#[tokio::test]
async fn generated_key_pairs_are_cosign_format() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["keys", "generate", "--output-key-prefix"])
        .arg(dir.path().join("release"))
        .env("COSIGN_PASSWORD", "correct horse")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = dir.path().join("release.key");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (code, decrypted, err) = py(&[
        "decrypt-key",
        "--key",
        key.to_str().unwrap(),
        "--password",
        "correct horse",
    ]);
    assert_eq!(code, 0, "{err}");
    let public = std::fs::read_to_string(dir.path().join("release.pub")).unwrap();
    assert_eq!(
        decrypted["public_pem"].as_str().unwrap().trim(),
        public.trim()
    );
    let (code, _, err) = py(&[
        "decrypt-key",
        "--key",
        key.to_str().unwrap(),
        "--password",
        "wrong",
    ]);
    assert_ne!(code, 0, "a wrong password must not decrypt: {err}");
    // Existing files are not overwritten.
    let again = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["keys", "generate", "--output-key-prefix"])
        .arg(dir.path().join("release"))
        .env("COSIGN_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

/// Pushes a cosign tag-scheme signature manifest for `subject` carrying `payload` and `signature`
/// (base64), as cosign would; returns the manifest digest.
async fn push_signature_manifest(
    s: &TestServer,
    repo: &str,
    subject: &str,
    payload: &[u8],
    signature: &str,
) -> String {
    let layer = s.push_blob(repo, payload).await;
    let config = s.push_blob(repo, b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer,
                    "size": payload.len(), "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    }))
    .unwrap();
    let tag = format!("sha256-{}.sig", &subject[7..]);
    let response = s.put_manifest(repo, &tag, OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), 201);
    sha256(&manifest)
}

#[tokio::test]
async fn bad_evidence_is_rejected_with_its_reason_and_changes_nothing_else() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let good = bed.keygen("good");
    bed.add_key(
        "good",
        &public_pem(&good),
        &["sign", &format!("attest:{SLSA_V1}")],
        json!({}),
    )
    .await;
    let baseline = bed.py_sign(&good, &[]);
    let baseline_item = single(
        bed.evidence_of(baseline["manifest_digest"].as_str().unwrap())
            .await,
    );
    assert_eq!(baseline_item["status"], "verified");

    let expect_rejected = |items: Vec<Value>, code: &str, words: &str| {
        let item = single(items);
        assert_eq!(item["status"], "rejected", "{item:#}");
        assert_eq!(item["reason_code"], code, "{item:#}");
        let reason = item["reason"].as_str().unwrap();
        assert!(reason.contains(words), "{code}: {reason}");
    };

    // Unknown key.
    let stranger = bed.keygen("stranger");
    let signed = bed.py_sign(&stranger, &[]);
    expect_rejected(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
        "unknown_key",
        "airlock keys add",
    );

    // Expired: a key whose validity ended before the signature arrived.
    let expired = bed.keygen("expired");
    bed.add_key(
        "expired",
        &public_pem(&expired),
        &["sign"],
        json!({"not_after": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let signed = bed.py_sign(&expired, &[]);
    expect_rejected(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
        "key_expired",
        "expired at 2026-01-01",
    );

    // A retired key (rotated, and also past its not_after): new signatures are refused.
    let old = bed.keygen("old");
    bed.add_key(
        "old",
        &public_pem(&old),
        &["sign"],
        json!({"not_after": "2026-01-01T00:00:00Z"}),
    )
    .await;
    bed.key_status("old", "retire", json!({"reason": "rotated"}))
        .await;
    let signed = bed.py_sign(&old, &[]);
    expect_rejected(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
        "key_retired",
        "retired",
    );

    // Revoked (not compromised): signatures seen after the revocation are refused.
    let gone = bed.keygen("gone");
    bed.add_key("gone", &public_pem(&gone), &["sign"], json!({}))
        .await;
    bed.key_status("gone", "revoke", json!({"reason": "left the team"}))
        .await;
    let signed = bed.py_sign(&gone, &[]);
    expect_rejected(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
        "key_revoked",
        "left the team",
    );

    // A payload for another artifact, pushed as this artifact's signature.
    let (_, other) = bed.s.push_image(bed.repo, "other", &[b"other layer"]).await;
    let mut args: Vec<String> = vec!["sign".into()];
    let mut reg = bed.reg();
    let position = reg.iter().position(|a| a == "--digest").unwrap();
    reg[position + 1] = other.clone();
    args.extend(reg);
    args.extend(["--key".into(), good.join("key.pem").display().to_string()]);
    let for_other = py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let payload = base64_decode(for_other["payload"].as_str().unwrap());
    let manifest = push_signature_manifest(
        &bed.s,
        bed.repo,
        &bed.digest,
        &payload,
        for_other["signature"].as_str().unwrap(),
    )
    .await;
    expect_rejected(bed.evidence_of(&manifest).await, "digest_mismatch", &other);

    // A docker-reference naming another repository.
    let elsewhere = format!("{}/dev/team/other", bed.s.host);
    let signed = bed.py_sign(&good, &["--reference", &elsewhere]);
    expect_rejected(
        bed.evidence_of(signed["manifest_digest"].as_str().unwrap())
            .await,
        "reference_mismatch",
        "dev/team/other",
    );

    // DSSE with the wrong payloadType.
    let attested = bed.py_attest(
        &good,
        SLSA_V1,
        &slsa_provenance(),
        &["--payload-type", "application/json"],
    );
    expect_rejected(
        bed.evidence_of(attested["manifest_digest"].as_str().unwrap())
            .await,
        "wrong_payload_type",
        "application/json",
    );

    // A statement about another artifact.
    let attested = bed.py_attest(
        &good,
        SLSA_V1,
        &slsa_provenance(),
        &["--subject-digest", &other],
    );
    expect_rejected(
        bed.evidence_of(attested["manifest_digest"].as_str().unwrap())
            .await,
        "subject_mismatch",
        &bed.digest,
    );

    // A predicate type the key may not vouch for.
    let attested = bed.py_attest(&good, CYCLONEDX, &cyclonedx("MIT"), &[]);
    expect_rejected(
        bed.evidence_of(attested["manifest_digest"].as_str().unwrap())
            .await,
        "predicate_not_allowed",
        CYCLONEDX,
    );

    // A truncated envelope pushed as an attestation layer.
    let envelope = attested["envelope"].to_string();
    let truncated = &envelope.as_bytes()[..envelope.len() / 2];
    let manifest = push_attestation_layer(&bed.s, bed.repo, &bed.digest, truncated).await;
    expect_rejected(bed.evidence_of(&manifest).await, "malformed", "");

    // The evidence API: truncated, huge and non-DSSE bodies are refused and nothing is stored.
    let before = bed.evidence().await.len();
    let api = bed.s.url(&format!(
        "/api/v1/artifacts/{}@{}/evidence",
        bed.repo, bed.digest
    ));
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/users"),
        json!({"name": "ci-bot", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/roles/grant"),
        json!({"principal": "ci-bot", "role": "builder", "scope": "dev"}),
    )
    .await;
    assert_eq!(status, 200);
    let builder = client_as("ci-bot", PASSWORD);
    for body in [
        truncated.to_vec(),
        b"{\"hello\": 1}".to_vec(),
        b"[1,2".to_vec(),
    ] {
        let response = builder.post(&api).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "BAD_REQUEST", "{answer}");
    }
    // A body above the limit is cut off: 413, or the connection closed before it was all sent.
    match builder
        .post(&api)
        .body(vec![b' '; 17 * 1024 * 1024])
        .send()
        .await
    {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(err) => assert!(err.is_request(), "{err}"),
    }
    assert_eq!(bed.evidence().await.len(), before);
    // A huge envelope pushed as a layer is stored as rejected, too large, without being read.
    let mut huge = b"{\"payloadType\":\"".to_vec();
    huge.resize(16 * 1024 * 1024 + 1, b'a');
    let manifest = push_attestation_layer(&bed.s, bed.repo, &bed.digest, &huge).await;
    expect_rejected(bed.evidence_of(&manifest).await, "too_large", "");

    // The good signature is untouched by all of this.
    let item = single(
        bed.evidence_of(baseline["manifest_digest"].as_str().unwrap())
            .await,
    );
    assert_eq!(item, baseline_item);
    let entries = bed.s.audit_entries().await;
    let rejected = entries
        .iter()
        .filter(|e| e["type"] == "evidence.rejected")
        .count();
    assert_eq!(rejected, 11, "one audit entry per rejection");
}

async fn push_attestation_layer(
    s: &TestServer,
    repo: &str,
    subject: &str,
    envelope: &[u8],
) -> String {
    let layer = s.push_blob(repo, envelope).await;
    let config = s.push_blob(repo, b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer,
                    "size": envelope.len(), "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": SLSA_V1}}],
    }))
    .unwrap();
    let tag = format!("sha256-{}.att", &subject[7..]);
    let response = s.put_manifest(repo, &tag, OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), 201);
    sha256(&manifest)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn evidence_api_accepts_dsse_envelopes_from_ci() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci");
    bed.add_key(
        "ci",
        &public_pem(&ci),
        &[&format!("attest:{SLSA_V1}")],
        json!({}),
    )
    .await;
    // The independent implementation writes the envelope (it also pushes it, to a scratch
    // repository, so that for `team/app` the API is where it first arrives).
    bed.s.push_image("dev/scratch/x", "1", &[b"scratch"]).await;
    let envelope_for = |key: &Path, name: &str| {
        let out = bed.path(name);
        let predicate = bed.path(&format!("{name}.predicate"));
        std::fs::write(&predicate, slsa_provenance().to_string()).unwrap();
        let mut reg = bed.reg();
        let position = reg.iter().position(|a| a == "--repo").unwrap();
        reg[position + 1] = "dev/scratch/x".into();
        let mut args: Vec<String> = vec!["attest".into()];
        args.extend(reg);
        args.extend([
            "--key".into(),
            key.join("key.pem").display().to_string(),
            "--predicate-type".into(),
            SLSA_V1.into(),
            "--predicate".into(),
            predicate.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]);
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        std::fs::read(&out).unwrap()
    };
    let envelope = envelope_for(&ci, "envelope.json");
    let api = bed.s.url(&format!(
        "/api/v1/artifacts/{}@{}/evidence",
        bed.repo, bed.digest
    ));
    // A developer (no attest permission) may not add evidence.
    let (status, body) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/users"),
        json!({"name": "dev1", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/roles/grant"),
        json!({"principal": "dev1", "role": "developer", "scope": "dev"}),
    )
    .await;
    assert_eq!(status, 200);
    let response = client_as("dev1", PASSWORD)
        .post(&api)
        .body(envelope.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // A builder may.
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/users"),
        json!({"name": "ci-bot", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/roles/grant"),
        json!({"principal": "ci-bot", "role": "builder", "scope": "dev/team/*"}),
    )
    .await;
    assert_eq!(status, 200);
    let response = client_as("ci-bot", PASSWORD)
        .post(&api)
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["source"], "api");
    assert_eq!(item["pushed_by"], "ci-bot");
    assert_eq!(
        item["facts"]["builder_id"],
        "https://github.com/actions/runner/github-hosted"
    );
    // An envelope for a key not in the keyring is stored as rejected and answered 422.
    let stranger = bed.keygen("stranger");
    let envelope = envelope_for(&stranger, "stranger.json");
    let response = client_as("ci-bot", PASSWORD)
        .post(&api)
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "EVIDENCE_REJECTED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no key in the keyring"),
        "{body}"
    );
    let api_items: Vec<Value> = bed
        .evidence()
        .await
        .into_iter()
        .filter(|e| e["source"] == "api")
        .collect();
    assert_eq!(api_items.len(), 2);
    assert_eq!(api_items[1]["reason_code"], "unknown_key");
    // An artifact that is not in the registry.
    let missing = api.replace(&bed.digest[7..], &"0".repeat(64));
    let response = client_as("ci-bot", PASSWORD)
        .post(&missing)
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn rotation_keeps_old_signatures_and_compromise_voids_them() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let a = bed.keygen("a");
    bed.add_key("key-a", &public_pem(&a), &["sign"], json!({}))
        .await;
    let signed_a = bed.py_sign(&a, &[]);
    let manifest_a = signed_a["manifest_digest"].as_str().unwrap().to_string();
    assert_eq!(
        single(bed.evidence_of(&manifest_a).await)["status"],
        "verified"
    );

    // Simulate the artifact having been promoted into the gated stage `staging` (promotion lands
    // with the gates issue; here its metadata effect is written directly: a repository row and a
    // repository_manifests row, no bytes copied).
    common::execute_on_database(
        &bed.s.data_dir,
        "INSERT INTO repositories (name, created_at) VALUES ('staging/team/app', 0)",
        &[],
    )
    .await;
    common::execute_on_database(
        &bed.s.data_dir,
        "INSERT INTO repository_manifests (repository, digest, created_at) VALUES ('staging/team/app', $1, 0)",
        &[&bed.digest],
    )
    .await;

    // Rotate: add B, retire A. A's signature stays valid; a new one by A is refused.
    let b = bed.keygen("b");
    bed.add_key("key-b", &public_pem(&b), &["sign"], json!({}))
        .await;
    bed.key_status("key-a", "retire", json!({"reason": "rotation"}))
        .await;
    assert_eq!(
        single(bed.evidence_of(&manifest_a).await)["status"],
        "verified"
    );
    let signed_b = bed.py_sign(&b, &[]);
    let items = bed
        .evidence_of(signed_b["manifest_digest"].as_str().unwrap())
        .await;
    // The tag-scheme manifest now carries both signatures; the B one is new and verified.
    assert!(
        items
            .iter()
            .any(|e| e["key_name"] == "key-b" && e["status"] == "verified"),
        "{items:#?}"
    );

    // A is compromised: every signature it made is void, and the staged copy is flagged.
    let (code, out, err) = bed.cli_keyadmin(&[
        "keys",
        "revoke",
        "key-a",
        "--reason",
        "key leaked",
        "--compromised",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let item = single(bed.evidence_of(&manifest_a).await);
    assert_eq!(item["status"], "revoked", "{item:#}");
    assert_eq!(item["reason_code"], "key_compromised");
    assert!(item["reason"].as_str().unwrap().contains("key leaked"));
    let evidence = bed.evidence().await;
    assert!(
        evidence
            .iter()
            .any(|e| e["key_name"] == "key-b" && e["status"] == "verified")
    );
    let staged: Value = bed
        .s
        .http
        .get(bed.s.url(&format!(
            "/api/v1/artifacts/staging/team/app@{}",
            bed.digest
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(staged["flags"][0]["flag"], "evidence_revoked", "{staged:#}");
    let entries = bed.s.audit_entries().await;
    let alert = entries
        .iter()
        .find(|e| e["type"] == "artifact.evidence_revoked")
        .expect("an alert entry");
    assert_eq!(alert["subject"]["repository"], "staging/team/app");
    assert_eq!(alert["details"]["alert"], true);
    assert!(
        entries
            .iter()
            .any(|e| e["type"] == "key.revoked" && e["details"]["compromised"] == true)
    );
    // The dev copy is not flagged: push stages are not gated.
    let dev: Value = bed
        .s
        .http
        .get(
            bed.s
                .url(&format!("/api/v1/artifacts/{}@{}", bed.repo, bed.digest)),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dev["flags"], json!([]));
}

#[tokio::test]
async fn only_key_admins_change_the_keyring_and_bad_keys_are_refused() {
    let bed = Bed::new().await;
    let pem = std::fs::read_to_string("tests/fixtures/cosign/real_signature.pub").unwrap();
    // admin holds access-admin, developer and auditor, but not key-admin.
    let (status, body) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/keys"),
        json!({"name": "k", "public_key": pem, "purposes": ["sign"], "scope": ["*"]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key-admin")
    );
    for (body, words) in [
        (
            json!({"name": "k", "public_key": "not a key", "purposes": ["sign"], "scope": ["*"]}),
            "key",
        ),
        (
            json!({"name": "k", "public_key": pem, "purposes": [], "scope": ["*"]}),
            "purpose",
        ),
        (
            json!({"name": "k", "public_key": pem, "purposes": ["launch"], "scope": ["*"]}),
            "launch",
        ),
        (
            json!({"name": "k", "public_key": pem, "purposes": ["sign"], "scope": []}),
            "scope",
        ),
        (
            json!({"name": "k", "public_key": pem, "purposes": ["sign"], "scope": ["a//b"]}),
            "a//b",
        ),
        (
            json!({"name": "bad name!", "public_key": pem, "purposes": ["sign"], "scope": ["*"]}),
            "name",
        ),
        (
            json!({"name": "k", "public_key": pem, "purposes": ["sign"], "scope": ["*"], "not_after": "soon"}),
            "RFC 3339",
        ),
    ] {
        let (status, answer) = post(&bed.keyadmin, &bed.s.url("/api/v1/keys"), body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(words),
            "{words}: {answer}"
        );
    }
    bed.add_key("k", &pem, &["sign"], json!({})).await;
    let (status, _) = post(
        &bed.keyadmin,
        &bed.s.url("/api/v1/keys"),
        json!({"name": "k2", "public_key": pem, "purposes": ["sign"], "scope": ["*"]}),
    )
    .await;
    assert_eq!(status, 409, "the same public key twice");
    let (status, _) = post(
        &bed.keyadmin,
        &bed.s.url("/api/v1/keys/nope/retire"),
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &bed.keyadmin,
        &bed.s.url("/api/v1/keys/k/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "a reason is required");
    let (status, _) = post(
        &bed.s.http,
        &bed.s.url("/api/v1/keys/k/revoke"),
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, 403);
    // Everyone authenticated may read the keyring; the key id is the SHA-256 of the SPKI DER.
    let list: Value = bed
        .s
        .http
        .get(bed.s.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &list["keys"][0];
    assert_eq!(key["algorithm"], "ecdsa-p256-sha256");
    let der = pem_body(&pem);
    assert_eq!(key["key_id"].as_str().unwrap(), &sha256(&der)[7..]);
    let (code, out, err) = bed.s.cli(&["keys", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("k ") && out.contains("active"), "{out}");
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body)
}

#[tokio::test]
async fn evidence_a_crash_left_behind_is_ingested_at_the_next_start() {
    if !python_ready() {
        return;
    }
    let mut bed = Bed::new().await;
    let ci = bed.keygen("ci");
    bed.add_key("ci", &public_pem(&ci), &["sign"], json!({}))
        .await;
    let signed = bed.py_sign(&ci, &[]);
    let manifest = signed["manifest_digest"].as_str().unwrap().to_string();
    assert_eq!(
        single(bed.evidence_of(&manifest).await)["status"],
        "verified"
    );

    // A crash between the manifest's commit and its ingestion leaves the manifest without
    // evidence rows and marked pending (the push's transaction marks it); recreate that state
    // with the server stopped.
    bed.s.stop();
    common::execute_on_database(&bed.s.data_dir, "DELETE FROM evidence", &[]).await;
    common::execute_on_database(&bed.s.data_dir, "DELETE FROM evidence_manifests", &[]).await;
    let marked = common::execute_on_database(
        &bed.s.data_dir,
        "INSERT INTO evidence_pending (repository, digest, created_at)
         SELECT repository, digest, created_at FROM repository_manifests WHERE digest = $1",
        &[&manifest],
    )
    .await;
    assert_eq!(marked, 1);
    let data_dir = bed.s.data_dir.clone();
    let restarted = TestServer::start_in(&data_dir, &[]);
    let response = restarted
        .http
        .get(restarted.url(&format!(
            "/api/v1/artifacts/{}@{}/evidence",
            bed.repo, bed.digest
        )))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let items: Vec<Value> = body["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manifest"] == manifest.as_str())
        .cloned()
        .collect();
    let item = single(items);
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["key_name"], "ci");
    drop(restarted);
}
