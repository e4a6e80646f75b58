//! Deploy-time verification end to end (`POST /api/v1/verify`, `airlock verify`): a digest
//! promoted into prod verifies with its promotion, decision and attestation; tags, other stages,
//! unpromoted digests and repositories the caller may not pull are refused with the fix; a key
//! compromised between two calls, a newer promotion and a rollback change the very next answer
//! (the cache never answers stale).

use crate::common;

use std::path::Path;

use common::{TestServer, add_user, permissive_bundle, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "deploy-verify-password-1";
const FIXTURE_KEY: &str = "tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key";

/// The host name deployments pull airlock by, in the first test's configuration.
const HOST: &str = "airlock.example.com";

/// A server where promotions into every gated stage need no approval, with `env` on top.
fn start(temp: &Path, env: &[(&str, &str)]) -> TestServer {
    let bundle = permissive_bundle(&temp.join("bundle"));
    let mut all = vec![
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "0"),
    ];
    all.extend_from_slice(env);
    TestServer::start_with_env(&all)
}

/// Promotes `digest` of `team/app` from `from` to `to` as `client`; the promotion must complete.
async fn promote(s: &TestServer, client: &reqwest::Client, from: &str, digest: &str, to: &str) {
    let (status, body) = post(
        client,
        &s.url("/api/v1/promotions"),
        json!({"source": format!("{from}/team/app"), "reference": digest, "to": to}),
    )
    .await;
    assert_eq!(status, 201, "promote {from} -> {to}: {body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}

async fn verify(s: &TestServer, client: &reqwest::Client, body: Value) -> (u16, Value) {
    post(client, &s.url("/api/v1/verify"), body).await
}

/// The single result of verifying `reference` against prod (`current` as given).
async fn verify_one(
    s: &TestServer,
    client: &reqwest::Client,
    reference: &str,
    current: bool,
) -> Value {
    let (status, body) = verify(
        s,
        client,
        json!({"stage": "prod", "references": [reference], "current": current}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        body["results"].as_array().map(Vec::len),
        Some(1),
        "{body:#}"
    );
    body["results"][0].clone()
}

fn codes(result: &Value) -> Vec<String> {
    result["failures"]
        .as_array()
        .unwrap_or_else(|| panic!("no failures list: {result:#}"))
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// The value of the counter series `name{labels}` in the server's metrics, or 0.
async fn counter(s: &TestServer, series: &str) -> f64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Logs `name` in with the CLI in its own home; returns the home.
fn cli_login(s: &TestServer, home: &Path, name: &str) {
    std::fs::create_dir_all(home).unwrap();
    let (code, out, err) = s.cli_as(
        home,
        &["login", &s.base, "-u", name, "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn a_promoted_digest_verifies_and_every_other_reference_names_its_fix() {
    let temp = tempfile::tempdir().unwrap();
    let s = start(temp.path(), &[("AIRLOCK_DEPLOY__REGISTRY_HOSTS", HOST)]);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let dora = add_user(&s, "dora", PASSWORD, &[("deployer", "*")]).await;
    let devin = add_user(&s, "devin", PASSWORD, &[("developer", "dev")]).await;
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"release one"]).await;
    let (_, unpromoted) = s
        .push_image("dev/team/app", "2.0", &[b"never promoted"])
        .await;
    promote(&s, &rita, "dev", &digest, "staging").await;
    promote(&s, &rita, "staging", &digest, "prod").await;

    // The promoted digest, named as a deployment would (host, stage, path, digest).
    let reference = format!("{HOST}/prod/team/app@{digest}");
    let result = verify_one(&s, &dora, &reference, false).await;
    assert_eq!(result["verified"], true, "{result:#}");
    assert_eq!(result["reference"], reference.as_str());
    assert_eq!(result["repository"], "prod/team/app");
    assert_eq!(result["digest"], digest.as_str());
    let promotion = &result["promotion"];
    assert!(
        promotion["id"].as_str().unwrap().starts_with("prm_"),
        "{result:#}"
    );
    assert_eq!(promotion["from"], "staging");
    assert_eq!(promotion["requested_by"], "rita");
    assert!(
        promotion["decision"].as_str().unwrap().starts_with("dec_"),
        "{result:#}"
    );
    // The attestation reference resolves in the registry: it is the signed promotion
    // attestation, whose subject is the artifact.
    let attestation = result["attestation"].as_str().expect("attestation");
    let (repo, att_digest) = attestation.split_once('@').unwrap();
    assert_eq!(repo, "prod/team/app");
    let manifest: Value = dora
        .get(s.url(&format!("/v2/{repo}/manifests/{att_digest}")))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        manifest["subject"]["digest"],
        digest.as_str(),
        "{manifest:#}"
    );

    // Everything else fails, each with a stable code and the fix.
    let cases = [
        (
            format!("{HOST}/prod/team/app:1.0"),
            "TAG_REFUSED",
            digest.clone(),
        ),
        (
            format!("{HOST}/dev/team/app@{digest}"),
            "STAGE_MISMATCH",
            format!("{HOST}/prod/team/app@{digest}"),
        ),
        (
            format!("{HOST}/prod/team/app@{unpromoted}"),
            "NOT_PROMOTED",
            format!("airlock promote team/app@{unpromoted} --to prod"),
        ),
        (
            "Prod/Team/App@sha256:00".to_string(),
            "REFERENCE_INVALID",
            "HOST/STAGE/PATH@sha256".to_string(),
        ),
        // Another registry (or none: the runtime's default one) is not airlock.
        (
            format!("registry.example.org/prod/team/app@{digest}"),
            "REGISTRY_UNKNOWN",
            format!("{HOST}/prod/team/app@{digest}"),
        ),
        (
            format!("team/app@{digest}"),
            "REGISTRY_UNKNOWN",
            format!("{HOST}/team/app@{digest}"),
        ),
    ];
    for (reference, code, fix) in &cases {
        let result = verify_one(&s, &dora, reference, false).await;
        assert_eq!(result["verified"], false, "{result:#}");
        assert_eq!(codes(&result), [*code], "{result:#}");
        let remediation = result["failures"][0]["remediation"].as_str().unwrap();
        assert!(remediation.contains(fix.as_str()), "{code}: {result:#}");
    }
    // A caller who may not pull from prod learns nothing about what it holds.
    let denied = verify_one(&s, &devin, &reference, false).await;
    assert_eq!(codes(&denied), ["DENIED"], "{denied:#}");
    assert!(denied.get("promotion").is_none(), "{denied:#}");

    // One request, several references: verified only if all are.
    let (status, body) = verify(
        &s,
        &dora,
        json!({"stage": "prod", "references": [reference, cases[2].0]}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["verified"], false);
    assert_eq!(body["results"][0]["verified"], true);
    assert_eq!(body["results"][1]["verified"], false);

    // Bad requests as a whole are 400 with the fix.
    for (request, code) in [
        (
            json!({"stage": "nowhere", "references": [reference]}),
            "STAGE_UNKNOWN",
        ),
        (
            json!({"stage": "prod", "references": []}),
            "REFERENCE_INVALID",
        ),
        (
            json!({"stage": "prod", "references": vec![reference.clone(); 101]}),
            "TOO_MANY_REFERENCES",
        ),
        (json!({"stage": "prod", "refs": [reference]}), "BAD_REQUEST"),
    ] {
        let (status, body) = verify(&s, &dora, request).await;
        assert_eq!(status, 400, "{body:#}");
        let got = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            got == code || (code == "BAD_REQUEST" && !got.is_empty()),
            "{code}: {body:#}"
        );
        assert!(body["error"]["remediation"].is_string(), "{body:#}");
    }

    // The CLI: exit 0 when all pass, 1 when any fails, JSON on request.
    let home = temp.path().join("dora-home");
    cli_login(&s, &home, "dora");
    let (code, out, err) = s.cli_as(&home, &["verify", &reference, "--stage", "prod"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok      ") && out.contains("attestation: prod/team/app@"),
        "{out}"
    );
    let (code, out, err) = s.cli_as(
        &home,
        &[
            "verify",
            &reference,
            &cases[2].0,
            "--stage",
            "prod",
            "--output",
            "json",
        ],
        None,
    );
    assert_eq!(code, 1, "{out}{err}");
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["verified"], false);
    assert_eq!(parsed["results"][1]["failures"][0]["code"], "NOT_PROMOTED");
    let (code, out, _) = s.cli_as(&home, &["verify", &cases[0].0, "--stage", "prod"], None);
    assert_eq!(code, 1);
    assert!(
        out.contains("TAG_REFUSED") && out.contains("fix: pin the digest"),
        "{out}"
    );
}

#[tokio::test]
async fn a_compromise_a_newer_promotion_and_a_rollback_change_the_next_answer() {
    let temp = tempfile::tempdir().unwrap();
    let s = start(temp.path(), &[]);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let dora = add_user(&s, "dora", PASSWORD, &[("deployer", "*")]).await;
    add_user(&s, "kay", PASSWORD, &[("key-admin", "*")]).await;
    let kay_home = temp.path().join("kay-home");
    cli_login(&s, &kay_home, "kay");
    let (code, out, err) = s.cli_with_env(
        &kay_home,
        &[
            "keys",
            "add",
            "release-key",
            "--key",
            FIXTURE_KEY,
            "--purpose",
            "sign",
            "--scope",
            "team/*",
        ],
        None,
        &[("COSIGN_PASSWORD", "")],
    );
    assert_eq!(code, 0, "{out}{err}");

    // The first release is signed with the key, then promoted to prod.
    let (_, first) = s
        .push_image("dev/team/app", "1.0", &[b"first release"])
        .await;
    let (code, out, err) = s.cli_env(
        &[
            "sign",
            &format!("{}/dev/team/app@{first}", s.host),
            "--key",
            FIXTURE_KEY,
        ],
        &[("COSIGN_PASSWORD", "")],
    );
    assert_eq!(code, 0, "{out}{err}");
    promote(&s, &rita, "dev", &first, "staging").await;
    promote(&s, &rita, "staging", &first, "prod").await;
    let first_ref = format!("{}/prod/team/app@{first}", s.host);
    // With no registry_hosts configured, hosts are not compared for digests (nor is a missing
    // one: the request's stage is meant), and no tag is accepted.
    let bare = verify_one(&s, &dora, &format!("team/app@{first}"), false).await;
    assert_eq!(bare["verified"], true, "{bare:#}");
    let tag = verify_one(&s, &dora, &format!("{}/prod/team/app:1.0", s.host), false).await;
    assert_eq!(codes(&tag), ["TAG_REFUSED"], "{tag:#}");
    assert!(
        tag["failures"][0]["remediation"]
            .as_str()
            .unwrap()
            .contains("registry_hosts"),
        "{tag:#}"
    );

    // Asked twice, the second answer comes from the cache.
    let hits = counter(&s, "airlock_verify_cache_total{result=\"hit\"}").await;
    for _ in 0..2 {
        let result = verify_one(&s, &dora, &first_ref, true).await;
        assert_eq!(result["verified"], true, "{result:#}");
    }
    assert!(counter(&s, "airlock_verify_cache_total{result=\"hit\"}").await > hits);

    // A newer release takes the channel: the first is no longer current, but still promoted.
    let (_, second) = s
        .push_image("dev/team/app", "2.0", &[b"second release"])
        .await;
    promote(&s, &rita, "dev", &second, "staging").await;
    promote(&s, &rita, "staging", &second, "prod").await;
    let stale = verify_one(&s, &dora, &first_ref, true).await;
    assert_eq!(codes(&stale), ["NOT_CURRENT"], "{stale:#}");
    assert!(
        stale["failures"][0]["remediation"]
            .as_str()
            .unwrap()
            .contains(&second),
        "{stale:#}"
    );
    assert_eq!(
        verify_one(&s, &dora, &first_ref, false).await["verified"],
        true
    );

    // A rollback to the first makes it current again, and the second not.
    let (status, body) = post(
        &rita,
        &s.url("/api/v1/rollbacks"),
        json!({"repository": "prod/team/app", "channel": "stable", "to": first}),
    )
    .await;
    assert!(status == 200 || status == 201, "{body:#}");
    assert_eq!(
        verify_one(&s, &dora, &first_ref, true).await["verified"],
        true
    );
    let second_ref = format!("{}/prod/team/app@{second}", s.host);
    assert_eq!(
        codes(&verify_one(&s, &dora, &second_ref, true).await),
        ["NOT_CURRENT"]
    );

    // The key that signed the first release is compromised: the very next answer fails.
    let (code, out, err) = s.cli_as(
        &kay_home,
        &[
            "keys",
            "revoke",
            "release-key",
            "--reason",
            "key leaked",
            "--compromised",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let revoked = verify_one(&s, &dora, &first_ref, true).await;
    assert_eq!(revoked["verified"], false, "{revoked:#}");
    assert!(
        codes(&revoked).contains(&"EVIDENCE_REVOKED".to_string()),
        "{revoked:#}"
    );
    assert!(
        revoked["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("key leaked")
            || revoked["failures"][0]["message"]
                .as_str()
                .unwrap()
                .contains("release-key"),
        "{revoked:#}"
    );
}
