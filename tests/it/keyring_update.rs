//! `airlock keys update`: changing what a key may vouch for (purposes, scope, end of validity)
//! without a new key pair, with the evidence it affects verified again in the same change.
//!
//! Evidence is signed by airlock's CLI with the real cosign-generated key in
//! `tests/fixtures/cosign/` (`COSIGN_PASSWORD=""`); the server decides over it as over any
//! pushed attestation.

use crate::common;

use std::path::PathBuf;

use common::{TestServer, client_as, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "keyring-update-password-1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const FIXTURE_KEY: &str = "tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key";

/// A server, a global key-admin, the fixture key in the keyring as `ci`, and an image pushed to
/// `dev/team/app`.
struct Bed {
    s: TestServer,
    keyadmin: reqwest::Client,
    dir: tempfile::TempDir,
    digest: String,
}

impl Bed {
    /// Starts the bed with the fixture key added as `ci` with `purposes` and `scope`.
    async fn new(purposes: &[&str], scope: &[&str]) -> Self {
        let s = TestServer::start();
        user(&s, "keyadmin", &[("key-admin", "*")]).await;
        let (_, digest) = s
            .push_image("dev/team/app", "1.0", &[b"keyring update"])
            .await;
        let bed = Self {
            keyadmin: client_as("keyadmin", PASSWORD),
            s,
            dir: tempfile::tempdir().unwrap(),
            digest,
        };
        let (status, body) = post(
            &bed.keyadmin,
            &bed.s.url("/api/v1/keys"),
            json!({"name": "ci", "public_key": fixture_public_pem(), "purposes": purposes, "scope": scope}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        bed
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Attests `predicate` of `predicate_type` (a cosign shorthand) about the image with the
    /// fixture key through the CLI; returns the evidence item the server recorded.
    fn attest(&self, predicate_type: &str, predicate: &Value) -> Value {
        let file = self.path(&format!("{predicate_type}.json"));
        std::fs::write(&file, predicate.to_string()).unwrap();
        let reference = format!("{}/dev/team/app@{}", self.s.host, self.digest);
        let (code, out, err) = self.s.cli_env(
            &[
                "attest",
                &reference,
                "--key",
                FIXTURE_KEY,
                "--type",
                predicate_type,
                "--predicate",
                file.to_str().unwrap(),
                "--output",
                "json",
            ],
            &[("COSIGN_PASSWORD", "")],
        );
        let answer: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let item = answer["evidence"][0].clone();
        let verified = item["status"] == "verified";
        assert_eq!(code, if verified { 0 } else { 1 }, "{out}{err}");
        item
    }

    /// The evidence item `item` about the image, as the evidence API shows it now.
    async fn item(&self, item: &Value) -> Value {
        let body: Value = self
            .s
            .http
            .get(self.s.url(&format!(
                "/api/v1/artifacts/dev/team/app@{}/evidence",
                self.digest
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["item"] == item["item"])
            .cloned()
            .unwrap_or_else(|| panic!("item {} not found: {body:#}", item["item"]))
    }

    /// `PATCH /api/v1/keys/{name}` as `client`.
    async fn update(&self, client: &reqwest::Client, name: &str, body: Value) -> (u16, Value) {
        patch(client, &self.s.url(&format!("/api/v1/keys/{name}")), body).await
    }

    /// Updates `ci` as the key admin, expecting success.
    async fn update_ci(&self, body: Value) -> Value {
        let (status, answer) = self.update(&self.keyadmin, "ci", body.clone()).await;
        assert_eq!(status, 200, "{body}: {answer}");
        answer
    }

    /// Runs the CLI logged in as the key admin.
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
        self.s.cli_as(&home, args, None)
    }

    /// Records the image as promoted into the gated `staging` stage (its metadata effect: a
    /// repository row and a repository_manifests row, no bytes copied), as the evidence tests do.
    async fn stage_copy(&self) {
        common::execute_on_database(
            &self.s.data_dir,
            "INSERT INTO repositories (name, created_at) VALUES ('staging/team/app', 0)",
            &[],
        )
        .await;
        common::execute_on_database(
            &self.s.data_dir,
            "INSERT INTO repository_manifests (repository, digest, created_at) VALUES ('staging/team/app', $1, 0)",
            &[&self.digest],
        )
        .await;
    }

    /// The flags on the image in `repository`.
    async fn flags(&self, repository: &str) -> Value {
        let body: Value = self
            .s
            .http
            .get(
                self.s
                    .url(&format!("/api/v1/artifacts/{repository}@{}", self.digest)),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["flags"].clone()
    }
}

async fn patch(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let response = client.patch(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates user `name` holding each (role, scope) of `grants`.
async fn user(s: &TestServer, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
    common::add_user(s, name, PASSWORD, grants).await
}

/// The public half of the fixture key.
fn fixture_public_pem() -> String {
    let pem = std::fs::read_to_string(FIXTURE_KEY).unwrap();
    airlock_trust::keys::decrypt_cosign_private_key(&pem, b"")
        .unwrap()
        .public_key()
        .to_pem()
}

fn sbom() -> Value {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "serde", "version": "1.0.200",
                        "purl": "pkg:cargo/serde@1.0.200",
                        "licenses": [{"expression": "MIT OR Apache-2.0"}]}]
    })
}

fn provenance() -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}]
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "metadata": {"invocationId": "1"}}
    })
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn adding_a_purpose_turns_a_rejected_sbom_attestation_verified_without_a_new_key_pair() {
    let bed = Bed::new(&["sign"], &["team/*"]).await;
    let item = bed.attest("cyclonedx", &sbom());
    assert_eq!(item["status"], "rejected", "{item:#}");
    assert_eq!(item["reason_code"], "predicate_not_allowed");
    // The rejection names the fix: update the existing key, not add a new one.
    let reason = item["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "airlock keys update ci --add-purpose attest:{CYCLONEDX}"
        )),
        "{reason}"
    );
    assert!(!reason.contains("keys add"), "{reason}");
    assert_eq!(item["facts"], Value::Null);

    let (code, out, err) = bed.cli_keyadmin(&[
        "keys",
        "update",
        "ci",
        "--add-purpose",
        &format!("attest:{CYCLONEDX}"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("attest:{CYCLONEDX}")), "{out}");

    // Verified now, with the SBOM's facts, and nothing was pushed again.
    let now = bed.item(&item).await;
    assert_eq!(now["status"], "verified", "{now:#}");
    assert_eq!(now["key_name"], "ci");
    assert_eq!(now["facts"]["kind"], "sbom", "{now:#}");
    assert_eq!(now["facts"]["licenses"][0], "MIT OR Apache-2.0", "{now:#}");

    // One audit entry for the change, with the purposes before and after, and one for the
    // verdict it changed.
    let entries = bed.s.audit_entries().await;
    let updated: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "key.updated")
        .collect();
    assert_eq!(updated.len(), 1, "{entries:#?}");
    let entry = updated[0];
    assert_eq!(entry["actor"]["principal"], "keyadmin");
    assert_eq!(entry["subject"]["name"], "ci");
    assert_eq!(entry["details"]["before"]["purposes"], json!(["sign"]));
    assert_eq!(
        entry["details"]["after"]["purposes"],
        json!(["sign", format!("attest:{CYCLONEDX}")])
    );
    assert_eq!(entry["details"]["before"]["scope"], json!(["team/*"]));
    assert_eq!(entry["details"]["after"]["scope"], json!(["team/*"]));
    assert!(
        entries.iter().any(|e| e["type"] == "evidence.reverified"
            && e["details"]["from"] == "rejected"
            && e["details"]["to"] == "verified"),
        "{entries:#?}"
    );
}

#[tokio::test]
async fn removing_a_purpose_rejects_what_the_key_attested_and_flags_gated_copies() {
    let bed = Bed::new(&["sign", &format!("attest:{SLSA_V1}")], &["team/*"]).await;
    let item = bed.attest("slsaprovenance1", &provenance());
    assert_eq!(item["status"], "verified", "{item:#}");
    bed.stage_copy().await;
    assert_eq!(bed.flags("staging/team/app").await, json!([]));

    let key = bed
        .update_ci(json!({"remove_purposes": [format!("attest:{SLSA_V1}")]}))
        .await;
    assert_eq!(key["purposes"], json!(["sign"]));
    let now = bed.item(&item).await;
    assert_eq!(now["status"], "rejected", "{now:#}");
    assert_eq!(now["reason_code"], "predicate_not_allowed");
    assert_eq!(now["facts"], Value::Null);
    // The copy in the gated stage was promoted with evidence that no longer counts: flagged, with
    // an alert entry. The push stage's copy is not.
    let flags = bed.flags("staging/team/app").await;
    assert_eq!(flags[0]["flag"], "evidence_revoked", "{flags:#}");
    assert_eq!(bed.flags("dev/team/app").await, json!([]));
    let entries = bed.s.audit_entries().await;
    let alert = entries
        .iter()
        .find(|e| e["type"] == "artifact.evidence_revoked")
        .expect("an alert entry");
    assert_eq!(alert["subject"]["repository"], "staging/team/app");
    assert!(entries.iter().any(|e| e["type"] == "key.updated"));
}

#[tokio::test]
async fn changing_the_scope_reverifies_the_keys_evidence_both_ways() {
    let bed = Bed::new(&[&format!("attest:{SLSA_V1}")], &["team/*"]).await;
    let item = bed.attest("slsaprovenance1", &provenance());
    assert_eq!(item["status"], "verified", "{item:#}");

    let key = bed.update_ci(json!({"scope": ["other/*"]})).await;
    assert_eq!(key["scope"], json!(["other/*"]));
    let now = bed.item(&item).await;
    assert_eq!(now["status"], "rejected", "{now:#}");
    assert_eq!(now["reason_code"], "out_of_scope");
    assert!(
        now["reason"]
            .as_str()
            .unwrap()
            .contains("airlock keys update ci --scope"),
        "{now:#}"
    );

    bed.update_ci(json!({"scope": ["other/*", "team/app"]}))
        .await;
    let now = bed.item(&item).await;
    assert_eq!(now["status"], "verified", "{now:#}");
    assert_eq!(now["facts"]["kind"], "provenance", "{now:#}");
}

#[tokio::test]
async fn moving_not_after_before_the_evidence_was_seen_rejects_it_and_moving_it_back_verifies_it() {
    let bed = Bed::new(&[&format!("attest:{SLSA_V1}")], &["team/*"]).await;
    let item = bed.attest("slsaprovenance1", &provenance());
    assert_eq!(item["status"], "verified", "{item:#}");

    let key = bed
        .update_ci(json!({"not_after": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(key["not_after"], "2020-01-01T00:00:00.000Z", "{key:#}");
    let now = bed.item(&item).await;
    assert_eq!(now["status"], "rejected", "{now:#}");
    assert_eq!(now["reason_code"], "key_expired");

    let (code, out, err) = bed.cli_keyadmin(&[
        "keys",
        "update",
        "ci",
        "--not-after",
        "2099-12-31T23:59:59Z",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bed.item(&item).await["status"], "verified");
    let entries = bed.s.audit_entries().await;
    let last = entries
        .iter()
        .rfind(|e| e["type"] == "key.updated")
        .unwrap();
    assert_eq!(
        last["details"]["before"]["not_after"],
        "2020-01-01T00:00:00.000Z"
    );
    assert_eq!(
        last["details"]["after"]["not_after"],
        "2099-12-31T23:59:59.000Z"
    );
}

#[tokio::test]
async fn a_scoped_key_admin_updates_keys_only_within_its_scope() {
    let bed = Bed::new(&["sign"], &["team/*"]).await;
    // A second key, for every repository.
    let other = airlock_trust::keys::SigningKey::generate_p256()
        .public_key()
        .to_pem();
    let (status, body) = post(
        &bed.keyadmin,
        &bed.s.url("/api/v1/keys"),
        json!({"name": "everything", "public_key": other, "purposes": ["sign"], "scope": ["*"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Key-admin for team/* in every stage of the pipeline.
    let team = user(
        &bed.s,
        "teamkeys",
        &[
            ("key-admin", "dev/team/*"),
            ("key-admin", "staging/team/*"),
            ("key-admin", "prod/team/*"),
        ],
    )
    .await;
    // Within its scope: allowed, and narrowing stays within.
    let (status, body) = bed
        .update(
            &team,
            "ci",
            json!({"add_purposes": [format!("attest:{SLSA_V1}")]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bed
        .update(&team, "ci", json!({"scope": ["team/app"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // A key outside its scope: refused, saying why.
    let (status, body) = bed
        .update(
            &team,
            "everything",
            json!({"add_purposes": [format!("attest:{SLSA_V1}")]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("everything"), "{body}");
    assert!(message(&body).contains("key-admin"), "{body}");
    // Widening a key beyond its own scope: refused, and the key is unchanged.
    for scope in [json!(["*"]), json!(["team/app", "payments/*"])] {
        let (status, body) = bed.update(&team, "ci", json!({"scope": scope})).await;
        assert_eq!(status, 403, "{scope}: {body}");
        assert!(
            message(&body).contains("beyond your key-admin grants"),
            "{body}"
        );
    }
    // A key-admin for team/* in dev only does not hold a key that applies in every stage.
    let dev_only = user(&bed.s, "devkeys", &[("key-admin", "dev/team/*")]).await;
    let (status, body) = bed
        .update(&dev_only, "ci", json!({"remove_purposes": ["sign"]}))
        .await;
    assert_eq!(status, 403, "{body}");
    // Adding keys still needs a global key-admin.
    let (status, _) = post(
        &team,
        &bed.s.url("/api/v1/keys"),
        json!({"name": "k2", "public_key": airlock_trust::keys::SigningKey::generate_p256().public_key().to_pem(),
               "purposes": ["sign"], "scope": ["team/*"]}),
    )
    .await;
    assert_eq!(status, 403);
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
    let ci = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap();
    assert_eq!(ci["scope"], json!(["team/app"]));
    assert_eq!(ci["purposes"], json!(["sign", format!("attest:{SLSA_V1}")]));
}

#[tokio::test]
async fn only_key_admins_update_keys() {
    let bed = Bed::new(&["sign"], &["team/*"]).await;
    // admin holds access-admin, developer and auditor, but not key-admin.
    let (status, body) = bed
        .update(
            &bed.s.http,
            "ci",
            json!({"add_purposes": [format!("attest:{CYCLONEDX}")]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("key-admin"), "{body}");
    let (code, _, err) = bed.s.cli(&[
        "keys",
        "update",
        "ci",
        "--add-purpose",
        &format!("attest:{CYCLONEDX}"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("key-admin"), "{err}");
    assert!(
        !bed.s
            .audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "key.updated")
    );
}

#[tokio::test]
async fn bad_updates_are_refused_with_the_fix() {
    let bed = Bed::new(&["sign"], &["team/*"]).await;
    for (body, status, words) in [
        (json!({}), 400, "nothing to change"),
        (json!({"add_purposes": ["launch"]}), 400, "launch"),
        (
            json!({"add_purposes": ["sign"]}),
            400,
            "already has the purpose",
        ),
        (
            json!({"remove_purposes": [format!("attest:{SLSA_V1}")]}),
            400,
            "does not have the purpose",
        ),
        (json!({"remove_purposes": ["sign"]}), 400, "no purpose left"),
        (json!({"scope": []}), 400, "--scope"),
        (json!({"scope": ["a//b"]}), 400, "a//b"),
        (json!({"not_after": "next week"}), 400, "RFC 3339"),
        (json!({"scope": ["team/*"]}), 400, "nothing to change"),
        (json!({"rename": "x"}), 400, "unknown field"),
    ] {
        let (got, answer) = bed.update(&bed.keyadmin, "ci", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(message(&answer).contains(words), "{words}: {answer}");
        assert!(answer["error"]["remediation"].is_string(), "{answer}");
    }
    // An unknown key is not found, and the answer says where to look.
    let (status, answer) = bed
        .update(&bed.keyadmin, "nope", json!({"add_purposes": ["sign"]}))
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(message(&answer).contains("airlock keys list"), "{answer}");
    // The CLI refuses an update with nothing to change before it asks the server.
    let (code, _, err) = bed.cli_keyadmin(&["keys", "update", "ci"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--add-purpose"), "{err}");
    // Nothing changed, nothing was recorded.
    assert!(
        !bed.s
            .audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "key.updated")
    );
}

/// The key `name` as `GET /api/v1/keys` lists it.
async fn listed_key(bed: &Bed, name: &str) -> Value {
    let body: Value = bed
        .keyadmin
        .get(bed.s.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no key list: {body:#}"))
        .iter()
        .find(|k| k["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("key {name} not listed: {body:#}"))
}

#[tokio::test]
async fn concurrent_updates_of_one_key_are_never_lost_and_the_audit_chain_holds() {
    let attest = format!("attest:{SLSA_V1}");
    let bed = Bed::new(&["sign", &attest], &["team/*"]).await;
    for round in 0..6 {
        let not_after = format!("{}-06-01T00:00:00Z", 2090 + round);
        let (removed, moved) = tokio::join!(
            bed.update(
                &bed.keyadmin,
                "ci",
                json!({"remove_purposes": [attest.clone()]})
            ),
            bed.update(&bed.keyadmin, "ci", json!({"not_after": not_after})),
        );
        // Each change is applied or refused as a conflict; never answered 200 and then lost.
        for (status, answer) in [&removed, &moved] {
            assert!(*status == 200 || *status == 409, "round {round}: {answer}");
        }
        let key = listed_key(&bed, "ci").await;
        if removed.0 == 200 {
            assert_eq!(
                key["purposes"],
                json!(["sign"]),
                "round {round}: the removed purpose came back: {key:#}"
            );
        }
        if moved.0 == 200 {
            assert_eq!(
                key["not_after"],
                format!("{}-06-01T00:00:00.000Z", 2090 + round),
                "round {round}: the moved end of validity was lost: {key:#}"
            );
        }
        // Back to both purposes for the next round.
        if key["purposes"] == json!(["sign"]) {
            bed.update_ci(json!({"add_purposes": [attest.clone()]}))
                .await;
        }
    }
    // Each key.updated entry starts from what the previous one left.
    let entries = bed.s.audit_entries().await;
    let updated: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "key.updated")
        .collect();
    assert!(updated.len() >= 6, "{updated:#?}");
    for pair in updated.windows(2) {
        assert_eq!(
            pair[1]["details"]["before"], pair[0]["details"]["after"],
            "an update's before is not the previous update's after: {pair:#?}"
        );
    }
}
