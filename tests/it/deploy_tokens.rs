//! Deploy tokens end to end (`POST /api/v1/deploy-tokens`, `airlock deploy-token`): a deployer's
//! pull-only token for named repositories pulls exactly those, as a bearer token, through the
//! token endpoint as Basic credentials, and with skopeo from the Docker config the CLI writes;
//! it never pushes, never reaches another repository, never calls the JSON API, never outlives
//! its lifetime, ends when the deployer's roles change, and is audited without its secret.

use crate::common;

use std::process::Command;

use base64::Engine as _;
use common::{
    TestServer, add_user, bearer, claims_of, client_as, interop_tool_available, permissive_bundle,
    post_json as post,
};
use serde_json::{Value, json};

const PASSWORD: &str = "deploy-token-password-1";

/// A server where promotions into every gated stage need no approval, with `prod/team/app` and
/// `prod/team/other` promoted; returns it with the app's digest.
async fn start(temp: &std::path::Path) -> (TestServer, String) {
    let bundle = permissive_bundle(&temp.join("bundle"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "0"),
        ("AIRLOCK_DEPLOY__MAX_TOKEN_TTL_SECS", "900"),
    ]);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let mut app = String::new();
    for repo in ["team/app", "team/other"] {
        let (_, digest) = s
            .push_image(&format!("dev/{repo}"), "1.0", &[repo.as_bytes()])
            .await;
        for (from, to) in [("dev", "staging"), ("staging", "prod")] {
            let (status, body) = post(
                &rita,
                &s.url("/api/v1/promotions"),
                json!({"source": format!("{from}/{repo}"), "reference": digest, "to": to}),
            )
            .await;
            assert_eq!(status, 201, "{body:#}");
            assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
        }
        if repo == "team/app" {
            app = digest;
        }
    }
    (s, app)
}

async fn status_of(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_deploy_token_pulls_its_repositories_only_and_ends_with_the_deployers_roles() {
    let temp = tempfile::tempdir().unwrap();
    let (s, digest) = start(temp.path()).await;
    let dora = add_user(&s, "dora", PASSWORD, &[("deployer", "*")]).await;
    let (status, answer) = post(
        &dora,
        &s.url("/api/v1/deploy-tokens"),
        json!({"stage": "prod", "repositories": ["team/app"], "ttl_secs": 300}),
    )
    .await;
    assert_eq!(status, 201, "{answer:#}");
    assert_eq!(answer["username"], "dora");
    assert_eq!(answer["repositories"], json!(["prod/team/app"]));
    let token = answer["token"].as_str().unwrap().to_string();
    let issued = claims_of(&token);
    assert_eq!(issued["auth"], "deploy");
    assert_eq!(
        issued["access"],
        json!([{"type": "repository", "name": "prod/team/app", "actions": ["pull"]}])
    );
    let lifetime = issued["exp"].as_u64().unwrap() - issued["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300);

    // As a bearer token: its repository, nothing else, never a push.
    let app = s.url(&format!("/v2/prod/team/app/manifests/{digest}"));
    let as_bearer = bearer(&token);
    assert_eq!(status_of(&as_bearer, &app).await, 200);
    let other = s.url("/v2/prod/team/other/manifests/1.0");
    assert!([401, 403].contains(&status_of(&as_bearer, &other).await));
    let dev = s.url(&format!("/v2/dev/team/app/manifests/{digest}"));
    assert!([401, 403].contains(&status_of(&as_bearer, &dev).await));
    let push = as_bearer
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert!([401, 403].contains(&push.status().as_u16()), "{push:?}");

    // Never the JSON API: it would act with dora's roles.
    let (status, body) = common::get_json(&as_bearer, &s.url("/api/v1/whoami")).await;
    assert_eq!(status, 401, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deploy token"),
        "{body:#}"
    );
    let (status, _) = post(
        &as_bearer,
        &s.url("/api/v1/deploy-tokens"),
        json!({"stage": "prod", "repositories": ["team/app"]}),
    )
    .await;
    assert_eq!(status, 401, "a deploy token minted another");

    // As Basic credentials at the token endpoint (what a container runtime sends): only the
    // requested part of its access, never past its expiry, no refresh token.
    let as_basic = client_as("dora", &token);
    let exchanged: Value = as_basic
        .get(s.url(
            "/auth/token?service=airlock&scope=repository:prod/team/app:pull,push&scope=repository:prod/team/other:pull&offline_token=true",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inner = claims_of(exchanged["token"].as_str().expect("a token"));
    assert_eq!(
        inner["access"],
        json!([{"type": "repository", "name": "prod/team/app", "actions": ["pull"]}]),
        "{inner:#}"
    );
    assert!(inner["exp"].as_u64() <= issued["exp"].as_u64(), "{inner:#}");
    assert!(
        exchanged.get("refresh_token").is_none_or(Value::is_null),
        "{exchanged:#}"
    );
    // The same token under another user name is refused.
    let wrong_user = client_as("rita", &token)
        .get(s.url("/auth/token?service=airlock&scope=repository:prod/team/app:pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_user.status(), 401);
    // Basic credentials straight on /v2 work the same way.
    assert_eq!(status_of(&as_basic, &app).await, 200);

    // Audited with its id and repositories, never the token.
    let entries = s.audit_entries().await;
    let entry = entries
        .iter()
        .find(|e| e["type"] == "deploy_token.issued")
        .expect("a deploy_token.issued entry");
    assert_eq!(
        entry["subject"],
        json!({"kind": "principal", "name": "dora"})
    );
    assert_eq!(entry["details"]["id"], answer["id"]);
    assert_eq!(entry["details"]["repositories"], json!(["prod/team/app"]));
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !entries.iter().any(|e| e.to_string().contains(signature)),
        "the token is in the audit log"
    );

    // Revoking dora's role ends the token at once.
    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/roles/revoke"),
        json!({"principal": "dora", "role": "deployer", "scope": "*"}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(status_of(&as_bearer, &app).await, 401);
}

#[tokio::test]
async fn requests_a_deployer_may_not_make_are_refused_with_the_fix() {
    let temp = tempfile::tempdir().unwrap();
    let (s, _) = start(temp.path()).await;
    let dora = add_user(&s, "dora", PASSWORD, &[("deployer", "*")]).await;
    let devin = add_user(&s, "devin", PASSWORD, &[("developer", "dev")]).await;
    let cases = [
        (
            &dora,
            json!({"stage": "prod", "repositories": ["team/app"], "ttl_secs": 901}),
            400,
            "TTL_INVALID",
        ),
        (
            &dora,
            json!({"stage": "prod", "repositories": ["team/app"], "ttl_secs": 0}),
            400,
            "TTL_INVALID",
        ),
        (
            &dora,
            json!({"stage": "prod", "repositories": []}),
            400,
            "REPOSITORIES_INVALID",
        ),
        (
            &dora,
            json!({"stage": "nowhere", "repositories": ["team/app"]}),
            400,
            "STAGE_UNKNOWN",
        ),
        (
            &dora,
            json!({"stage": "prod", "repositories": ["Team/App"]}),
            400,
            "NAME_INVALID",
        ),
        (
            &devin,
            json!({"stage": "prod", "repositories": ["team/app"]}),
            403,
            "DENIED",
        ),
    ];
    for (client, request, status, code) in cases {
        let (got, body) = post(client, &s.url("/api/v1/deploy-tokens"), request.clone()).await;
        assert_eq!(got, status, "{request}: {body:#}");
        assert_eq!(body["error"]["code"], code, "{request}: {body:#}");
        assert!(body["error"]["remediation"].is_string(), "{body:#}");
    }
    // None of them issued anything.
    assert!(
        !s.audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "deploy_token.issued")
    );
}

#[tokio::test]
async fn the_cli_writes_a_docker_config_skopeo_pulls_with_and_a_kubernetes_secret() {
    let temp = tempfile::tempdir().unwrap();
    let (s, digest) = start(temp.path()).await;
    add_user(&s, "dora", PASSWORD, &[("deployer", "*")]).await;
    let home = temp.path().join("dora-home");
    std::fs::create_dir_all(&home).unwrap();
    let (code, out, err) = s.cli_as(
        &home,
        &["login", &s.base, "-u", "dora", "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");

    let (code, secret, err) = s.cli_as(
        &home,
        &[
            "deploy-token",
            "--stage",
            "prod",
            "--repo",
            "team/app",
            "--ttl",
            "5m",
            "--format",
            "kubernetes",
            "--namespace",
            "shop",
        ],
        None,
    );
    assert_eq!(code, 0, "{secret}{err}");
    assert!(err.contains("pull only"), "{err}");
    for line in [
        "kind: Secret",
        "type: kubernetes.io/dockerconfigjson",
        "  name: airlock-pull",
        "  namespace: shop",
    ] {
        assert!(secret.lines().any(|l| l == line), "no {line:?} in {secret}");
    }
    let encoded = secret
        .lines()
        .find_map(|l| l.strip_prefix("  .dockerconfigjson: "))
        .expect("the config");
    let config: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["auths"][&s.host]["username"], "dora", "{config:#}");

    let (code, out, err) = s.cli_as(
        &home,
        &[
            "deploy-token",
            "--stage",
            "prod",
            "--repo",
            "team/app",
            "--format",
            "docker-config",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let auth_file = temp.path().join("config.json");
    std::fs::write(&auth_file, &out).unwrap();
    if !interop_tool_available("skopeo", &["--version"]) {
        return;
    }
    // skopeo reads the Docker config, is sent to the token endpoint, and pulls.
    let inspect = |reference: &str| {
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
            .arg(&auth_file)
            .arg(reference)
            .output()
            .expect("run skopeo")
    };
    let pulled = inspect(&format!("docker://{}/prod/team/app@{digest}", s.host));
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(common::sha256(&pulled.stdout), digest);
    let refused = inspect(&format!("docker://{}/prod/team/other:1.0", s.host));
    assert!(
        !refused.status.success(),
        "the token pulled another repository"
    );
}
