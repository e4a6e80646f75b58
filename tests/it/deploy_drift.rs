//! Drift end to end (`POST /api/v1/deployments`, `GET /api/v1/drift`, `airlock deployments
//! report`, `airlock drift`): a deployment reports what it runs; an image never promoted into its
//! stage is answered as such, raises the `drift` anomaly and is listed as `unpromoted`; one whose
//! channel moved on is listed as `behind`; a new report replaces the old; the list is paged and
//! filtered by the caller's pull rights; bad reports are refused with the fix.

use crate::common;

use common::{TestServer, add_user, get_json, permissive_bundle, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "deploy-drift-password-1";
const ENVIRONMENT: &str = "prod-eu";
const WORKLOAD: &str = "shop/deployment/checkout";

async fn promote(s: &TestServer, client: &reqwest::Client, digest: &str) {
    for (from, to) in [("dev", "staging"), ("staging", "prod")] {
        let (status, body) = post(
            client,
            &s.url("/api/v1/promotions"),
            json!({"source": format!("{from}/team/app"), "reference": digest, "to": to}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
        assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    }
}

async fn report(s: &TestServer, client: &reqwest::Client, images: &[String]) -> (u16, Value) {
    post(
        client,
        &s.url("/api/v1/deployments"),
        json!({"environment": ENVIRONMENT, "workload": WORKLOAD, "stage": "prod", "images": images}),
    )
    .await
}

/// `(kind, reference)` of every drift entry the caller sees.
async fn drift(s: &TestServer, client: &reqwest::Client) -> (Vec<(String, String)>, Value) {
    let (status, page) = get_json(client, &s.url("/api/v1/drift")).await;
    assert_eq!(status, 200, "{page:#}");
    let entries = page["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["reference"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (entries, page)
}

#[tokio::test]
async fn reported_images_never_promoted_or_behind_their_channel_are_drift() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "0"),
    ]);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let cd = add_user(&s, "cd", PASSWORD, &[("deployer", "*")]).await;
    let devin = add_user(&s, "devin", PASSWORD, &[("developer", "dev")]).await;
    let (_, first) = s
        .push_image("dev/team/app", "1.0", &[b"first release"])
        .await;
    let (_, second) = s
        .push_image("dev/team/app", "2.0", &[b"second release"])
        .await;
    let (_, rogue) = s
        .push_image("dev/team/app", "rogue", &[b"never promoted"])
        .await;
    promote(&s, &rita, &first).await;
    let image = |digest: &str| format!("{}/prod/team/app@{digest}", s.host);

    // The workload runs the release and something never promoted.
    let (status, answer) = report(&s, &cd, &[image(&first), image(&rogue)]).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["unpromoted"], 1, "{answer:#}");
    assert_eq!(answer["images"][0]["verified"], true, "{answer:#}");
    assert_eq!(answer["images"][1]["failures"][0]["code"], "NOT_PROMOTED");

    // The rogue digest is a drift anomaly (alert by default) and the report is audited.
    let (status, anomalies) = get_json(&s.http, &s.url("/api/v1/anomalies?status=open")).await;
    assert_eq!(status, 200, "{anomalies:#}");
    let found = anomalies["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "drift")
        .unwrap_or_else(|| panic!("no drift anomaly: {anomalies:#}"))
        .clone();
    assert_eq!(found["action"], "alert", "{found:#}");
    assert_eq!(found["target"]["digest"], rogue.as_str(), "{found:#}");
    assert_eq!(found["target"]["stage"], "prod", "{found:#}");
    let entries = s.audit_entries().await;
    let reported = entries
        .iter()
        .find(|e| e["type"] == "deployment.reported")
        .expect("a deployment.reported entry");
    assert_eq!(reported["subject"]["workload"], WORKLOAD);
    assert_eq!(reported["details"]["unpromoted"], 1);
    assert_eq!(reported["actor"]["principal"], "cd");

    let (listed, page) = drift(&s, &cd).await;
    assert_eq!(
        listed,
        [("unpromoted".to_string(), image(&rogue))],
        "{page:#}"
    );
    assert_eq!(page["checked"], 2);

    // A newer release takes the channel: the workload is now also behind.
    promote(&s, &rita, &second).await;
    let (listed, page) = drift(&s, &cd).await;
    assert_eq!(listed.len(), 2, "{page:#}");
    let behind = page["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "behind")
        .unwrap_or_else(|| panic!("nothing behind: {page:#}"));
    assert_eq!(behind["reference"], image(&first).as_str());
    assert!(
        behind["failures"][0]["remediation"]
            .as_str()
            .unwrap()
            .contains(&second),
        "{behind:#}"
    );
    // Someone who may not pull from prod sees none of it.
    let (hidden, _) = drift(&s, &devin).await;
    assert!(hidden.is_empty(), "{hidden:?}");

    // Paged: one reported image per page, with a cursor; a forged cursor is refused.
    let (status, one) = get_json(&cd, &s.url("/api/v1/drift?n=1")).await;
    assert_eq!(status, 200, "{one:#}");
    assert_eq!(one["checked"], 1);
    let next = one["next"].as_str().expect("a next page").to_string();
    let (status, two) = get_json(&cd, &s.url(&format!("/api/v1/drift?n=1&last={next}"))).await;
    assert_eq!(status, 200, "{two:#}");
    assert_ne!(
        one["drift"], two["drift"],
        "the second page repeats the first"
    );
    let (status, body) = get_json(&cd, &s.url("/api/v1/drift?last=zz")).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["error"]["code"], "PAGINATION_CURSOR_INVALID");

    // The CLI: drift exits 1 while there is some.
    let (code, out, err) = s.cli(&["drift", "--environment", ENVIRONMENT]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("UNPROMOTED") && out.contains("BEHIND"),
        "{out}"
    );
    assert!(out.contains("2 of 2 reported image(s) drifted"), "{out}");

    // The workload is redeployed with the current release: a new report replaces the old one.
    let (code, out, err) = s.cli(&[
        "deployments",
        "report",
        "--environment",
        ENVIRONMENT,
        "--workload",
        WORKLOAD,
        "--stage",
        "prod",
        &image(&second),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (listed, page) = drift(&s, &cd).await;
    assert!(listed.is_empty(), "{page:#}");
    assert_eq!(page["checked"], 1);
    let (code, out, err) = s.cli(&["drift"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn reports_a_reporter_may_not_make_are_refused_with_the_fix() {
    let s = TestServer::start();
    let cd = add_user(&s, "cd", PASSWORD, &[("deployer", "*")]).await;
    let devin = add_user(&s, "devin", PASSWORD, &[("developer", "dev")]).await;
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"release"]).await;
    let image = format!("{}/prod/team/app@{digest}", s.host);
    let cases = [
        (
            &cd,
            json!({"environment": "", "workload": WORKLOAD, "stage": "prod", "images": [image]}),
            400,
            "REPORT_INVALID",
        ),
        (
            &cd,
            json!({"environment": "a\nb", "workload": WORKLOAD, "stage": "prod", "images": [image]}),
            400,
            "REPORT_INVALID",
        ),
        (
            &cd,
            json!({"environment": ENVIRONMENT, "workload": WORKLOAD, "stage": "nowhere", "images": [image]}),
            400,
            "STAGE_UNKNOWN",
        ),
        (
            &cd,
            json!({"environment": ENVIRONMENT, "workload": WORKLOAD, "stage": "prod", "images": ["x".repeat(5000)]}),
            400,
            "REPORT_INVALID",
        ),
        (
            &devin,
            json!({"environment": ENVIRONMENT, "workload": WORKLOAD, "stage": "prod", "images": [image]}),
            403,
            "DENIED",
        ),
    ];
    for (client, request, status, code) in cases {
        let (got, body) = post(client, &s.url("/api/v1/deployments"), request.clone()).await;
        assert_eq!(got, status, "{request}: {body:#}");
        assert_eq!(body["error"]["code"], code, "{request}: {body:#}");
        assert!(body["error"]["remediation"].is_string(), "{body:#}");
    }
    // None was recorded.
    assert!(
        !s.audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "deployment.reported")
    );
    let (_, page) = get_json(&cd, &s.url("/api/v1/drift")).await;
    assert_eq!(page["checked"], 0, "{page:#}");
}
