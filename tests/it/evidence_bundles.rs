//! Sigstore bundles as evidence: key-signed bundles v0.3 (protobuf-specs `sigstore_bundle.proto`
//! in its JSON mapping) attached to an image as OCI 1.1 referrers the way cosign v3 attaches them
//! (cosign `specs/BUNDLE_SPEC.md`), or posted to the evidence API, and verified by airlock.
//!
//! The bundles come from `tests/interop/cosign_spec.py bundle`, written from those specifications
//! with Python's `cryptography` and `securesystemslib`, so airlock's code is never trusted to
//! produce what it verifies. Where a test needs a bundle that no honest signer writes (tampered,
//! keyless, doubly signed), it edits the JSON here and pushes the referrer by hand.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::{ADMIN_PASSWORD, OCI_MANIFEST, TestServer, client_as, interop_tool_available, sha256};
use serde_json::{Value, json};

const PASSWORD: &str = "bundle-test-password-1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// The predicate type of the statement `cosign sign` (v3, bundle format) signs.
const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every Sigstore bundle media type of protobuf-specs `sigstore_bundle.proto` (v0.1, v0.2, v0.3).
const BUNDLE_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    BUNDLE_MEDIA_TYPE,
];
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const BUILDER_ID: &str = "https://github.com/actions/runner/github-hosted";

fn python_ready() -> bool {
    interop_tool_available(
        "python3",
        &["-c", "import cryptography, nacl, securesystemslib"],
    )
}

/// Runs the independent implementation; returns its stdout JSON, failing the test on an error.
fn py_ok(args: &[String]) -> Value {
    let output = Command::new("python3")
        .arg("tests/interop/cosign_spec.py")
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "cosign_spec.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cosign_spec.py prints JSON")
}

/// A test bed: a server, a key admin, an image in `dev/team/app`, a scratch directory.
struct Bed {
    s: TestServer,
    keyadmin: reqwest::Client,
    dir: tempfile::TempDir,
    repo: &'static str,
    digest: String,
    manifest: Vec<u8>,
}

impl Bed {
    async fn new() -> Self {
        let s = TestServer::start();
        create_user(&s, "keyadmin", "key-admin", "*").await;
        let repo = "dev/team/app";
        let (manifest, digest) = s.push_image(repo, "1.0", &[b"layer one"]).await;
        Self {
            keyadmin: client_as("keyadmin", PASSWORD),
            s,
            dir: tempfile::tempdir().unwrap(),
            repo,
            digest,
            manifest,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Generates a key pair (`p256` or `ed25519`) with the independent implementation.
    fn keygen(&self, name: &str, algorithm: &str) -> PathBuf {
        let dir = self.path(name);
        py_ok(&strings(&[
            "keygen",
            "--out-dir",
            dir.to_str().unwrap(),
            "--algorithm",
            algorithm,
        ]));
        dir
    }

    /// Adds the public key in `key_dir` to the keyring for `team/*`; returns its key id.
    async fn add_key(&self, name: &str, key_dir: &Path, purposes: &[&str]) -> String {
        let public_key = std::fs::read_to_string(key_dir.join("key.pub")).unwrap();
        let (status, body) = post(
            &self.keyadmin,
            &self.s.url("/api/v1/keys"),
            json!({"name": name, "public_key": public_key, "purposes": purposes, "scope": ["team/*"]}),
        )
        .await;
        assert_eq!(status, 201, "add key {name}: {body}");
        body["key_id"].as_str().unwrap().to_string()
    }

    /// `cosign_spec.py bundle` for this artifact, signed with the key in `key_dir`; `extra`
    /// chooses the mode and the rest. Returns {"manifest_digest", "bundle"}.
    fn py_bundle(&self, key_dir: &Path, extra: &[&str]) -> Value {
        let mut args = strings(&[
            "bundle",
            "--registry",
            &self.s.base,
            "--user",
            "admin",
            "--password",
            ADMIN_PASSWORD,
            "--repo",
            self.repo,
            "--digest",
            &self.digest,
            "--key",
            key_dir.join("key.pem").to_str().unwrap(),
        ]);
        args.extend(strings(extra));
        py_ok(&args)
    }

    /// Writes the SLSA v1 provenance predicate to a file; returns its path.
    fn provenance_file(&self) -> String {
        let file = self.path("provenance.json");
        std::fs::write(&file, slsa_provenance().to_string()).unwrap();
        file.display().to_string()
    }

    fn evidence_url(&self) -> String {
        self.s.url(&format!(
            "/api/v1/artifacts/{}@{}/evidence",
            self.repo, self.digest
        ))
    }

    async fn evidence(&self) -> Vec<Value> {
        let response = self.s.http.get(self.evidence_url()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["evidence"].as_array().cloned().unwrap_or_default()
    }

    /// The one evidence item carried by the referrer manifest `manifest`.
    async fn item_of(&self, manifest: &Value) -> Value {
        let manifest = manifest.as_str().expect("a manifest digest");
        let items: Vec<Value> = self
            .evidence()
            .await
            .into_iter()
            .filter(|e| e["manifest"] == manifest)
            .collect();
        assert_eq!(items.len(), 1, "expected one evidence item: {items:#?}");
        items.into_iter().next().unwrap()
    }

    /// Pushes `bundle` as a bundle referrer of the artifact, laid out as cosign v3 does, without
    /// the independent implementation (for bundles it would refuse to write); returns the
    /// referrer's digest.
    async fn push_bundle(&self, bundle: &Value) -> Value {
        self.push_bundle_as(bundle, BUNDLE_MEDIA_TYPE).await
    }

    /// [`Bed::push_bundle`] with the layer (and artifact type) media type `media_type`.
    async fn push_bundle_as(&self, bundle: &Value, media_type: &str) -> Value {
        let bundle = serde_json::to_vec(bundle).unwrap();
        let layer = self.s.push_blob(self.repo, &bundle).await;
        let config = self.s.push_blob(self.repo, b"{}").await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": media_type,
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
            "layers": [{"mediaType": media_type, "digest": layer, "size": bundle.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": self.manifest.len()},
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
        }))
        .unwrap();
        let digest = sha256(&manifest);
        let response = self
            .s
            .put_manifest(self.repo, &digest, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        Value::String(digest)
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates the user `name` (password [`PASSWORD`]) holding `role` on `scope`.
async fn create_user(s: &TestServer, name: &str, role: &str, scope: &str) {
    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/users"),
        json!({"name": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": name, "role": role, "scope": scope}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn slsa_provenance() -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}]
        },
        "runDetails": {"builder": {"id": BUILDER_ID}, "metadata": {"invocationId": "1"}}
    })
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string"))
        .unwrap()
}

/// The bundle with its DSSE statement rewritten by `edit` (still valid JSON, signature kept).
fn with_statement(bundle: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut bundle = bundle.clone();
    let mut statement: Value =
        serde_json::from_slice(&unb64(&bundle["dsseEnvelope"]["payload"])).unwrap();
    edit(&mut statement);
    bundle["dsseEnvelope"]["payload"] = b64(&serde_json::to_vec(&statement).unwrap()).into();
    bundle
}

fn assert_rejected(item: &Value, reason_code: &str, words: &str) {
    assert_eq!(item["status"], "rejected", "{item:#}");
    assert_eq!(item["reason_code"], reason_code, "{item:#}");
    let reason = item["reason"].as_str().unwrap();
    assert!(reason.contains(words), "{reason_code}: {reason}");
}

#[tokio::test]
async fn dsse_provenance_bundle_referrer_is_a_verified_attestation() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    let key_id = bed
        .add_key("ci-builder", &ci, &[&format!("attest:{SLSA_V1}")])
        .await;
    let provenance = bed.provenance_file();
    let pushed = bed.py_bundle(
        &ci,
        &[
            "--mode",
            "dsse",
            "--predicate-type",
            SLSA_V1,
            "--predicate",
            &provenance,
        ],
    );
    let bundle = &pushed["bundle"];
    assert_eq!(bundle["mediaType"], BUNDLE_MEDIA_TYPE);
    assert_eq!(
        bundle["verificationMaterial"],
        json!({"publicKey": {}, "tlogEntries": []})
    );

    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "attestation");
    assert_eq!(item["format"], "sigstore-bundle");
    assert_eq!(item["source"], "referrer");
    assert_eq!(item["key_name"], "ci-builder");
    assert_eq!(item["key_id"], key_id.as_str());
    assert_eq!(item["predicate_type"], SLSA_V1);
    assert_eq!(item["facts"]["kind"], "provenance");
    assert_eq!(item["facts"]["builder_id"], BUILDER_ID);
    assert_eq!(
        item["facts"]["source_repository"],
        "https://github.com/acme/app"
    );

    // The referrer is discoverable as cosign looks for it: by artifactType, with its annotations.
    let index: Value = bed
        .s
        .http
        .get(
            bed.s
                .url(&format!("/v2/{}/referrers/{}", bed.repo, bed.digest)),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == pushed["manifest_digest"])
        .unwrap_or_else(|| panic!("referrer not listed: {index:#}"));
    assert_eq!(listed["artifactType"], BUNDLE_MEDIA_TYPE);
    assert_eq!(
        listed["annotations"]["dev.sigstore.bundle.predicateType"],
        SLSA_V1
    );
}

#[tokio::test]
async fn message_signature_bundle_referrer_is_a_verified_signature() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let signer = bed.keygen("signer", "p256");
    bed.add_key("signer", &signer, &["sign"]).await;
    let pushed = bed.py_bundle(&signer, &["--mode", "message", "--hint", "signer"]);
    let digest = &pushed["bundle"]["messageSignature"]["messageDigest"];
    assert_eq!(digest["algorithm"], "SHA2_256");
    assert_eq!(hex::encode(unb64(&digest["digest"])), bed.digest[7..]);

    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "signature");
    assert_eq!(item["format"], "sigstore-bundle");
    assert_eq!(item["key_name"], "signer");
    assert_eq!(item["predicate_type"], Value::Null);

    // A message signature is a signature: a key that may only attest does not count.
    let attester = bed.keygen("attester", "p256");
    bed.add_key("attester", &attester, &[&format!("attest:{SLSA_V1}")])
        .await;
    let pushed = bed.py_bundle(&attester, &["--mode", "message"]);
    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_rejected(&item, "not_signing", "lacks the `sign` purpose");
}

#[tokio::test]
async fn cosign_sign_bundle_counts_as_a_signature() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let signer = bed.keygen("signer", "p256");
    bed.add_key("signer", &signer, &["sign"]).await;
    // Exactly what `cosign sign --key` v3 writes without a transparency log: the key hint is
    // base64(sha256(SPKI)), the DSSE signature has no keyid, the (empty) tlogEntries is left out,
    // and the statement's subject has a digest but no name.
    let pushed = bed.py_bundle(
        &signer,
        &[
            "--mode",
            "dsse",
            "--hint-from-key",
            "--dsse-keyid",
            "",
            "--omit-tlog-entries",
        ],
    );
    let bundle = &pushed["bundle"];
    assert!(bundle["verificationMaterial"].get("tlogEntries").is_none());
    let statement: Value =
        serde_json::from_slice(&unb64(&bundle["dsseEnvelope"]["payload"])).unwrap();
    assert_eq!(statement["predicateType"], COSIGN_SIGN);
    assert_eq!(
        statement["subject"],
        json!([{"digest": {"sha256": &bed.digest[7..]}}])
    );

    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "signature");
    assert_eq!(item["format"], "sigstore-bundle");
    assert_eq!(item["key_name"], "signer");
    assert_eq!(item["predicate_type"], COSIGN_SIGN);

    // Ed25519 keys sign it the same way (over the DSSE PAE).
    let edwards = bed.keygen("edwards", "ed25519");
    bed.add_key("edwards", &edwards, &["sign"]).await;
    let pushed = bed.py_bundle(&edwards, &["--mode", "dsse"]);
    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "signature");

    // Being a signature, it needs the `sign` purpose, not an `attest:` one.
    let attester = bed.keygen("attester", "p256");
    bed.add_key("attester", &attester, &[&format!("attest:{SLSA_V1}")])
        .await;
    let pushed = bed.py_bundle(&attester, &["--mode", "dsse"]);
    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_rejected(&item, "not_signing", "lacks the `sign` purpose");
}

#[tokio::test]
async fn bundles_that_do_not_hold_are_rejected_with_their_reason() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign", &format!("attest:{SLSA_V1}")])
        .await;
    let provenance = bed.provenance_file();
    let (_, other) = bed.s.push_image(bed.repo, "other", &[b"other layer"]).await;

    // A message signature over another artifact, attached to this one.
    let pushed = bed.py_bundle(&ci, &["--mode", "message", "--subject-digest", &other]);
    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_rejected(&item, "digest_mismatch", &other);

    // A statement about another artifact.
    let pushed = bed.py_bundle(
        &ci,
        &[
            "--mode",
            "dsse",
            "--predicate-type",
            SLSA_V1,
            "--predicate",
            &provenance,
            "--subject-digest",
            &other,
        ],
    );
    let item = bed.item_of(&pushed["manifest_digest"]).await;
    assert_rejected(&item, "subject_mismatch", &bed.digest);

    // Signed by a key that is not in the keyring, in either form.
    let stranger = bed.keygen("stranger", "p256");
    for mode in ["dsse", "message"] {
        let pushed = bed.py_bundle(&stranger, &["--mode", mode]);
        let item = bed.item_of(&pushed["manifest_digest"]).await;
        assert_rejected(&item, "unknown_key", "airlock keys add");
    }

    // A tampered payload (still a valid statement). Without a hint no key verifies it; with
    // cosign's hint naming the keyring key, that key's signature is reported as not verifying.
    let tamper = |statement: &mut Value| {
        statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/".into();
    };
    let dsse = ["--mode", "dsse", "--predicate-type", SLSA_V1];
    let mut args = dsse.to_vec();
    args.extend(["--predicate", &provenance, "--no-push"]);
    let honest = bed.py_bundle(&ci, &args)["bundle"].clone();
    let manifest = bed.push_bundle(&with_statement(&honest, tamper)).await;
    assert_rejected(&bed.item_of(&manifest).await, "unknown_key", "");
    args.extend(["--hint-from-key", "--dsse-keyid", ""]);
    let hinted = bed.py_bundle(&ci, &args)["bundle"].clone();
    let manifest = bed.push_bundle(&with_statement(&hinted, tamper)).await;
    assert_rejected(
        &bed.item_of(&manifest).await,
        "bad_signature",
        "does not verify",
    );
    // A payload whose bytes no longer parse is rejected too. (airlock parses the statement
    // before checking the signature and reports `malformed`; DSSE verifies first, which would
    // give `unknown_key`. Either way it does not count, so only that is asserted.)
    let mut broken = honest.clone();
    let mut payload = unb64(&honest["dsseEnvelope"]["payload"]);
    let last = payload.len() - 1;
    payload[last] ^= 0x01;
    broken["dsseEnvelope"]["payload"] = b64(&payload).into();
    let item = bed.item_of(&bed.push_bundle(&broken).await).await;
    assert_eq!(item["status"], "rejected", "{item:#}");

    // A message signature whose messageDigest field names this artifact but whose signature is
    // over another one.
    let mut forged = bed.py_bundle(
        &ci,
        &["--mode", "message", "--subject-digest", &other, "--no-push"],
    )["bundle"]
        .clone();
    forged["messageSignature"]["messageDigest"]["digest"] =
        b64(&hex::decode(&bed.digest[7..]).unwrap()).into();
    let item = bed.item_of(&bed.push_bundle(&forged).await).await;
    assert_rejected(&item, "unknown_key", "");

    // Bundles airlock does not take: keyless (certificate) material, and both kinds of content.
    let mut keyless = honest.clone();
    keyless["verificationMaterial"] =
        json!({"certificate": {"rawBytes": b64(b"not a certificate")}, "tlogEntries": []});
    let item = bed.item_of(&bed.push_bundle(&keyless).await).await;
    assert_rejected(&item, "malformed", "keyless");
    let mut both = honest.clone();
    both["messageSignature"] =
        bed.py_bundle(&ci, &["--mode", "message", "--no-push"])["bundle"]["messageSignature"]
            .clone();
    let item = bed.item_of(&bed.push_bundle(&both).await).await;
    assert_rejected(&item, "malformed", "both");

    // None of it counts: the only verified evidence is none at all.
    assert!(
        bed.evidence()
            .await
            .iter()
            .all(|e| e["status"] == "rejected"),
        "{:#?}",
        bed.evidence().await
    );
}

#[tokio::test]
async fn evidence_api_accepts_bundles_from_ci() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign", &format!("attest:{SLSA_V1}")])
        .await;
    create_user(&bed.s, "ci-bot", "builder", "dev").await;
    let builder = client_as("ci-bot", PASSWORD);
    let provenance = bed.provenance_file();
    let bundle_file = |key: &Path, name: &str, extra: &[&str]| {
        let out = bed.path(name);
        let mut args = vec!["--no-push", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        bed.py_bundle(key, &args);
        std::fs::read(&out).unwrap()
    };
    let api = bed.evidence_url();

    // A provenance attestation bundle: verified, with its facts.
    let attestation = bundle_file(
        &ci,
        "provenance.bundle.json",
        &[
            "--mode",
            "dsse",
            "--predicate-type",
            SLSA_V1,
            "--predicate",
            &provenance,
        ],
    );
    let response = builder.post(&api).body(attestation).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "attestation");
    assert_eq!(item["format"], "sigstore-bundle");
    assert_eq!(item["source"], "api");
    assert_eq!(item["pushed_by"], "ci-bot");
    assert_eq!(item["facts"]["builder_id"], BUILDER_ID);

    // A message signature bundle: a verified signature.
    let signature = bundle_file(&ci, "message.bundle.json", &["--mode", "message"]);
    let response = builder.post(&api).body(signature).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["status"], "verified", "{item:#}");
    assert_eq!(item["kind"], "signature");
    assert_eq!(item["format"], "sigstore-bundle");

    // A stranger's bundle is recorded as rejected and answered 422.
    let stranger = bed.keygen("stranger", "p256");
    let foreign = bundle_file(&stranger, "stranger.bundle.json", &["--mode", "message"]);
    let response = builder.post(&api).body(foreign).send().await.unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "EVIDENCE_REJECTED", "{body}");
    let api_items: Vec<Value> = bed
        .evidence()
        .await
        .into_iter()
        .filter(|e| e["source"] == "api")
        .collect();
    assert_eq!(api_items.len(), 3, "{api_items:#?}");
    assert_eq!(api_items[2]["reason_code"], "unknown_key");
    assert_eq!(api_items[2]["format"], "sigstore-bundle");

    // A truncated bundle is not evidence at all: 400, nothing stored.
    let truncated = bundle_file(&ci, "truncated.bundle.json", &["--mode", "message"]);
    let response = builder
        .post(&api)
        .body(truncated[..truncated.len() / 2].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(bed.evidence().await.len(), 3);
}

/// protobuf-specs `sigstore_bundle.proto`: "DSSE envelopes in a bundle MUST have exactly one
/// signature ... During verification a client MUST reject an envelope if the number of
/// signatures is not equal to one." Even when one of them is by a keyring key.
#[tokio::test]
async fn bundle_dsse_envelope_with_two_signatures_is_rejected() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign"]).await;
    let stranger = bed.keygen("stranger", "p256");
    let mut bundle = bed.py_bundle(&ci, &["--mode", "dsse", "--no-push"])["bundle"].clone();
    let other = bed.py_bundle(&stranger, &["--mode", "dsse", "--no-push"])["bundle"].clone();
    let second = other["dsseEnvelope"]["signatures"][0].clone();
    bundle["dsseEnvelope"]["signatures"]
        .as_array_mut()
        .unwrap()
        .push(second);
    let item = bed.item_of(&bed.push_bundle(&bundle).await).await;
    assert_eq!(item["status"], "rejected", "{item:#}");
    assert_eq!(item["reason_code"], "malformed", "{item:#}");
    assert!(
        item["reason"]
            .as_str()
            .unwrap()
            .contains("exactly one signature"),
        "{item:#}"
    );
}

/// The evidence API reads a bundle of each media type protobuf-specs defines (v0.1 and v0.2 as
/// `...bundle+json;version=0.x`, v0.3 as `...bundle.v0.3+json`), as the referrer path does: the
/// `mediaType` is not signed, so one signed bundle relabelled is a bundle of each version.
#[tokio::test]
async fn evidence_api_accepts_each_sigstore_bundle_media_type() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign", &format!("attest:{SLSA_V1}")])
        .await;
    create_user(&bed.s, "ci-bot", "builder", "dev").await;
    let builder = client_as("ci-bot", PASSWORD);
    let provenance = bed.provenance_file();
    let signature = bed.py_bundle(&ci, &["--mode", "message", "--no-push"])["bundle"].clone();
    let attestation = bed.py_bundle(
        &ci,
        &[
            "--mode",
            "dsse",
            "--predicate-type",
            SLSA_V1,
            "--predicate",
            &provenance,
            "--no-push",
        ],
    )["bundle"]
        .clone();
    for media_type in BUNDLE_MEDIA_TYPES {
        for (bundle, kind) in [(&signature, "signature"), (&attestation, "attestation")] {
            let mut bundle = bundle.clone();
            bundle["mediaType"] = json!(media_type);
            let (status, item) = post(&builder, &bed.evidence_url(), bundle).await;
            assert_eq!(status, 201, "{media_type} {kind}: {item:#}");
            assert_eq!(item["status"], "verified", "{media_type} {kind}: {item:#}");
            assert_eq!(item["kind"], kind, "{media_type}: {item:#}");
            assert_eq!(item["format"], "sigstore-bundle", "{media_type}: {item:#}");
        }
    }
    let verified = bed
        .evidence()
        .await
        .iter()
        .filter(|e| e["status"] == "verified" && e["source"] == "api")
        .count();
    assert_eq!(verified, 6);
}

/// A bundle referrer whose layer carries the v0.1 or v0.2 media type is read as a bundle too
/// (the same test the evidence API applies), and its verdict names the bundle.
#[tokio::test]
async fn bundle_referrer_of_each_media_type_is_verified() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign"]).await;
    let signature = bed.py_bundle(&ci, &["--mode", "message", "--no-push"])["bundle"].clone();
    for media_type in BUNDLE_MEDIA_TYPES {
        let mut bundle = signature.clone();
        bundle["mediaType"] = json!(media_type);
        let item = bed
            .item_of(&bed.push_bundle_as(&bundle, media_type).await)
            .await;
        assert_eq!(item["status"], "verified", "{media_type}: {item:#}");
        assert_eq!(item["kind"], "signature", "{media_type}: {item:#}");
        assert_eq!(item["format"], "sigstore-bundle", "{media_type}: {item:#}");
    }
}

/// A document that calls itself a Sigstore bundle of a version airlock does not read is refused
/// with the media types it does read, and nothing is stored.
#[tokio::test]
async fn evidence_api_refuses_an_unknown_sigstore_bundle_media_type() {
    if !python_ready() {
        return;
    }
    let bed = Bed::new().await;
    let ci = bed.keygen("ci", "p256");
    bed.add_key("ci", &ci, &["sign"]).await;
    create_user(&bed.s, "ci-bot", "builder", "dev").await;
    let builder = client_as("ci-bot", PASSWORD);
    let mut bundle = bed.py_bundle(&ci, &["--mode", "message", "--no-push"])["bundle"].clone();
    for wrong in [
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.2+json",
    ] {
        bundle["mediaType"] = json!(wrong);
        let (status, body) = post(&builder, &bed.evidence_url(), bundle.clone()).await;
        assert_eq!(status, 400, "{wrong}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(wrong), "{message}");
        for accepted in BUNDLE_MEDIA_TYPES {
            assert!(message.contains(accepted), "{message}");
        }
    }
    assert!(bed.evidence().await.is_empty());
}
