//! Deciding a promotion by hand and from scripts: an approver's rejection (`promotions reject`,
//! under the same separation of duties as approving), `promote --wait --timeout`, and typos
//! (an unknown state filter, an unknown stage) refused by name.
//!
//! Every test starts its own `airlock serve` with a permissive policy bundle and one approval on
//! staging, so promotions wait for a person and nothing needs signing tools.

use crate::common;

use std::path::PathBuf;

use common::{TestServer, client_as, permissive_bundle, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "review-test-password-1";

/// A server needing one approval on staging, and a scratch directory for CLI homes.
struct Bed {
    s: TestServer,
    dir: tempfile::TempDir,
}

impl Bed {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundle = permissive_bundle(&dir.path().join("bundle"));
        let s = TestServer::start_with_env(&[
            ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
            ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
        ]);
        Self { s, dir }
    }

    /// Creates user `name` with `(role, scope)` grants; returns its client.
    async fn user(&self, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
        common::add_user(&self.s, name, PASSWORD, grants).await;
        client_as(name, PASSWORD)
    }

    fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("home-{user}"))
    }

    /// Logs `user` in with the CLI (once).
    fn login(&self, user: &str) -> PathBuf {
        let home = self.home(user);
        if !home.join("airlock/credentials.json").exists() {
            std::fs::create_dir_all(&home).unwrap();
            let (code, out, err) = self.s.cli_as(
                &home,
                &["login", &self.s.base, "-u", user, "--password-stdin"],
                Some(PASSWORD),
            );
            assert_eq!(code, 0, "login {user}: {out}{err}");
        }
        home
    }

    /// Runs the CLI as `user`.
    fn cli(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let home = self.login(user);
        self.s.cli_as(&home, args, None)
    }

    /// `rita` requests `dev/team/app@digest` into staging; returns the pending promotion's id.
    async fn pending(&self, rita: &reqwest::Client, digest: &str) -> String {
        let (status, body) = post(
            rita,
            &self.s.url("/api/v1/promotions"),
            json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["promotion"]["state"], "pending_approval", "{body}");
        body["promotion"]["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> (u16, Value) {
        let response = client.get(self.s.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn reject(&self, client: &reqwest::Client, id: &str, reason: &str) -> (u16, Value) {
        post(
            client,
            &self.s.url(&format!("/api/v1/promotions/{id}/reject")),
            json!({"reason": reason}),
        )
        .await
    }

    async fn push(&self, tag: &str, layer: &[u8]) -> String {
        common::push_image_as(&self.s, &self.s.http, "dev/team/app", tag, layer, None).await
    }
}

fn assert_error(status: u16, body: &Value, expected: u16, code: &str, message: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let text = body["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{text:?} lacks {message:?}");
}

#[tokio::test]
async fn an_eligible_approver_rejects_a_pending_promotion_with_a_recorded_reason() {
    let bed = Bed::start();
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    bed.user("alice", &[("approver", "staging")]).await;
    let digest = bed.push("1.0", b"rejected").await;
    let id = bed.pending(&rita, &digest).await;

    let (code, out, err) = bed.cli(
        "alice",
        &[
            "promotions",
            "reject",
            &id,
            "--reason",
            "CVE-2026-1 is unfixed",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("REJECTED {id}")), "{out}");

    // The promotion ends denied; its decision says who rejected it and why.
    let (status, shown) = bed.get(&rita, &format!("/api/v1/promotions/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["state"], "denied", "{shown}");
    let deny = &shown["decision_result"]["deny"][0];
    assert_eq!(deny["rule"], "airlock.rejected", "{shown}");
    assert_eq!(
        deny["msg"],
        "alice rejected the promotion: CVE-2026-1 is unfixed"
    );
    let (code, out, err) = bed.cli("rita", &["promotions", "show", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("x airlock.rejected: alice rejected the promotion: CVE-2026-1 is unfixed"),
        "{out}"
    );

    // The decision record is the rejection, and it is not a gate's decision to replay.
    let decision = shown["decision"].as_str().unwrap();
    let (status, record) = bed
        .get(&rita, &format!("/api/v1/decisions/{decision}"))
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["action"], "reject", "{record}");
    assert_eq!(record["input"]["rejected_by"], "alice", "{record}");
    let (status, body) = post(
        &rita,
        &bed.s.url(&format!("/api/v1/decisions/{decision}/replay")),
        json!({}),
    )
    .await;
    assert_error(status, &body, 409, "NOT_REPLAYABLE", "alice's rejection");

    // Audited with actor and reason.
    let entries = bed.s.audit_entries().await;
    let rejected: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "promotion.rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{entries:#?}");
    assert_eq!(rejected[0]["actor"]["principal"], "alice");
    assert_eq!(rejected[0]["details"]["reason"], "CVE-2026-1 is unfixed");
    assert_eq!(rejected[0]["details"]["decision"], decision);

    // A rejection closes the promotion: the artifact may be requested again.
    bed.pending(&rita, &digest).await;
}

#[tokio::test]
async fn rejecting_needs_the_same_eligibility_as_approving() {
    let bed = Bed::start();
    // rita also holds the approver role: she is refused as the requester, not for the role.
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("approver", "staging")])
        .await;
    let paula = bed
        .user("paula", &[("developer", "dev"), ("approver", "staging")])
        .await;
    // stan may read the promotion (a caller who may not gets 404 before any eligibility check).
    let stan = bed
        .user("stan", &[("approver", "prod"), ("reader", "staging")])
        .await;
    let alice = bed.user("alice", &[("approver", "staging")]).await;
    let digest = common::push_image_as(&bed.s, &paula, "dev/team/app", "1.0", b"sod", None).await;
    let id = bed.pending(&rita, &digest).await;

    let (status, body) = bed.reject(&rita, &id, "no").await;
    assert_error(
        status,
        &body,
        403,
        "REJECTION_REFUSED",
        "rita requested this promotion",
    );
    let (status, body) = bed.reject(&paula, &id, "no").await;
    assert_error(
        status,
        &body,
        403,
        "REJECTION_REFUSED",
        "paula pushed this artifact",
    );
    let (status, body) = bed.reject(&stan, &id, "no").await;
    assert_error(
        status,
        &body,
        403,
        "REJECTION_REFUSED",
        "stan does not hold the approver role on staging/team/app",
    );
    // The CLI exits 1 on a refusal and prints the rule.
    let (code, out, err) = bed.cli("stan", &["promotions", "reject", &id, "--reason", "no"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("REJECTION_REFUSED"), "{err}");

    // A reason is required.
    let (status, body) = bed.reject(&alice, &id, "  ").await;
    assert_error(
        status,
        &body,
        400,
        "BAD_REQUEST",
        "a rejection needs a reason",
    );

    // Nothing was changed by the refusals.
    let (_, shown) = bed.get(&rita, &format!("/api/v1/promotions/{id}")).await;
    assert_eq!(shown["state"], "pending_approval", "{shown}");

    let (status, body) = bed.reject(&alice, &id, "not now").await;
    assert_eq!(status, 200, "{body}");
    // Once closed, it is not pending any more: 409 naming its state.
    let (status, body) = bed.reject(&alice, &id, "again").await;
    assert_error(
        status,
        &body,
        409,
        "CONFLICT",
        &format!("promotion {id} is denied, not pending_approval"),
    );
    let (status, body) = bed.reject(&alice, "prm_doesnotexist", "x").await;
    assert_eq!(status, 404, "{body}");
}

/// Runs `promote --wait` as rita in a thread; returns its handle.
fn promote_waiting(
    bed: &Bed,
    tag: &str,
    extra: &[&str],
) -> std::thread::JoinHandle<(i32, String, String)> {
    let home = bed.login("rita");
    let base = bed.s.base.clone();
    let reference = format!("{}/dev/team/app:{tag}", bed.s.host);
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let mut args = vec![
            "promote".to_string(),
            reference,
            "--to".into(),
            "staging".into(),
            "--wait".into(),
        ];
        args.extend(extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(&args)
            .env("XDG_CONFIG_HOME", &home)
            .env("AIRLOCK_SERVER", &base)
            .output()
            .expect("run airlock");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
}

/// Waits until a promotion of the repository is pending approval; returns its id.
async fn wait_pending(bed: &Bed) -> String {
    for _ in 0..200 {
        let (_, list) = bed
            .get(&bed.s.http, "/api/v1/promotions?state=pending_approval")
            .await;
        if let Some(id) = list["promotions"][0]["id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no promotion became pending");
}

#[tokio::test]
async fn promote_wait_returns_0_once_an_approver_approves_meanwhile() {
    let bed = Bed::start();
    bed.user("rita", &[("promoter", "staging")]).await;
    let alice = bed.user("alice", &[("approver", "staging")]).await;
    bed.push("1.0", b"waited").await;
    let waiting = promote_waiting(&bed, "1.0", &["--timeout", "60s"]);
    let id = wait_pending(&bed).await;
    let (status, body) = post(
        &alice,
        &bed.s.url(&format!("/api/v1/promotions/{id}/approve")),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (code, out, err) = waiting.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("PROMOTED dev/team/app -> staging/team/app ({id})")),
        "{out}"
    );
    assert!(err.contains(&format!("waiting for {id}")), "{err}");
}

#[tokio::test]
async fn promote_wait_returns_1_when_the_promotion_is_rejected_meanwhile() {
    let bed = Bed::start();
    bed.user("rita", &[("promoter", "staging")]).await;
    let alice = bed.user("alice", &[("approver", "staging")]).await;
    bed.push("1.0", b"waited").await;
    let waiting = promote_waiting(&bed, "1.0", &["--output", "json"]);
    let id = wait_pending(&bed).await;
    let (status, body) = bed.reject(&alice, &id, "wrong build").await;
    assert_eq!(status, 200, "{body}");
    let (code, out, err) = waiting.join().unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let outcome: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(outcome["promotion"]["state"], "denied", "{outcome}");
    assert_eq!(outcome["decision"]["deny"][0]["rule"], "airlock.rejected");
}

#[tokio::test]
async fn promote_wait_timeout_exits_2_naming_the_promotion_and_how_to_check_it() {
    let bed = Bed::start();
    bed.user("rita", &[("promoter", "staging")]).await;
    bed.push("1.0", b"timed out").await;
    let (code, out, err) = promote_waiting(&bed, "1.0", &["--timeout", "2s", "--output", "json"])
        .join()
        .unwrap();
    assert_eq!(code, 2, "{out}{err}");
    let outcome: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(outcome["promotion"]["state"], "pending_approval");
    let id = outcome["promotion"]["id"].as_str().unwrap();
    assert!(
        err.contains(&format!("airlock promotions show {id}")),
        "{err}"
    );
    // The promotion is still open.
    let (_, shown) = bed
        .get(&bed.s.http, &format!("/api/v1/promotions/{id}"))
        .await;
    assert_eq!(shown["state"], "pending_approval");

    // --timeout without --wait and a bad duration are usage errors.
    let (code, _, err) = bed.cli(
        "rita",
        &[
            "promote",
            "dev/team/app:1.0",
            "--to",
            "staging",
            "--timeout",
            "5s",
        ],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = bed.cli(
        "rita",
        &[
            "promote",
            "dev/team/app:1.0",
            "--to",
            "staging",
            "--wait",
            "--timeout",
            "5 weeks",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a duration"), "{err}");
}

#[tokio::test]
async fn an_unknown_state_filter_is_refused_naming_the_states() {
    let bed = Bed::start();
    let (status, body) = bed
        .get(&bed.s.http, "/api/v1/promotions?state=pending")
        .await;
    assert_error(
        status,
        &body,
        400,
        "BAD_REQUEST",
        "there is no promotion state \"pending\"; states: evaluating, pending_approval, promoted, denied, expired, cancelled",
    );
    bed.user("rita", &[("promoter", "staging")]).await;
    let (code, out, err) = bed.cli("rita", &["promotions", "list", "--state", "bogus"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("pending_approval"), "{err}");
    let (code, out, err) = bed.cli("rita", &["promotions", "list", "--state", "denied"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn promoting_from_or_to_a_stage_that_does_not_exist_names_the_configured_stages() {
    let bed = Bed::start();
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let digest = bed.push("1.0", b"typo").await;
    for (source, to, stage) in [
        ("dev/team/app", "stagign", "stagign"),
        ("qa/team/app", "staging", "qa"),
    ] {
        let (status, body) = post(
            &rita,
            &bed.s.url("/api/v1/promotions"),
            json!({"source": source, "reference": digest, "to": to}),
        )
        .await;
        assert_error(
            status,
            &body,
            400,
            "STAGE_UNKNOWN",
            &format!("there is no stage {stage}; configured stages: dev, staging, prod"),
        );
    }
    let (code, out, err) = bed.cli("rita", &["promote", "dev/team/app:1.0", "--to", "stagign"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("configured stages: dev, staging, prod"),
        "{err}"
    );
}

#[tokio::test]
async fn a_caller_who_may_not_read_a_promotion_gets_the_same_404_from_every_action() {
    let bed = Bed::start();
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    bed.user("alice", &[("approver", "staging")]).await;
    let mallory = bed.user("mallory", &[("reader", "dev/elsewhere")]).await;
    let pending = bed.push("1.0", b"pending").await;
    let pending = bed.pending(&rita, &pending).await;
    let closed = bed.push("2.0", b"closed").await;
    let closed = bed.pending(&rita, &closed).await;
    let alice = client_as("alice", PASSWORD);
    let (status, body) = bed.reject(&alice, &closed, "not this one").await;
    assert_eq!(status, 200, "{body}");

    let (status, shown) = bed
        .get(&mallory, &format!("/api/v1/promotions/{pending}"))
        .await;
    assert_error(
        status,
        &shown,
        404,
        "NOT_FOUND",
        "no such promotion you may read",
    );
    for id in [&pending, &closed] {
        for (action, request) in [
            ("approve", json!({})),
            ("reject", json!({"reason": "probing"})),
            ("cancel", json!({})),
        ] {
            let (status, body) = post(
                &mallory,
                &bed.s.url(&format!("/api/v1/promotions/{id}/{action}")),
                request,
            )
            .await;
            assert_eq!((status, &body), (404, &shown), "{action} {id}");
            let text = body.to_string();
            assert!(
                !text.contains("staging") && !text.contains("team/app"),
                "{text}"
            );
        }
    }
    // The promotion is untouched, and an access-admin still cancels it.
    let (_, still) = bed
        .get(&rita, &format!("/api/v1/promotions/{pending}"))
        .await;
    assert_eq!(still["state"], "pending_approval", "{still}");
    let (status, body) = post(
        &bed.s.http,
        &bed.s.url(&format!("/api/v1/promotions/{pending}/cancel")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
}
