//! Three `airlock serve` replicas on one PostgreSQL database and one S3 bucket behind haproxy
//! (round robin, no stickiness, health check on `/readyz`; `replicas/haproxy.cfg`), driven by
//! real clients (skopeo, the ORAS Python client) and the test OCI client:
//! - pushes and promotions through the load balancer are found on every replica, read directly;
//! - one replica SIGKILLed in the middle of a burst of pushes and promotions loses nothing the
//!   clients saw acknowledged;
//! - 50 concurrent requests for one promotion, spread over the replicas, make exactly one
//!   promotion (the others answer 409 naming it, as a single server does);
//! - the audit log is one tree: every replica presents the same key and checkpoint, and
//!   `airlock audit verify` and `../shared/tools/tlogverify` accept it through each;
//! - a rolling restart (SIGTERM, exit, start, ready, next) of all three under a push/pull loop
//!   fails no request.
//!
//! Runs only with `AIRLOCK_TEST_BACKEND=distributed` (PostgreSQL + S3, see tests/it/common); needs
//! haproxy (a missing one skips with a NOTICE, or fails under `AIRLOCK_INTEROP=required`).

mod cluster;
use crate::common;
mod oci;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::Cluster;
use common::{ADMIN_PASSWORD, OCI_MANIFEST, sha256};
use oci::{Acknowledged, Layout};
use serde_json::Value;

/// The repositories' stage the tests push into (a push stage of the default configuration).
const DEV: &str = "dev";

/// The password of `pat`, the promoter the tests create.
const PAT_PASSWORD: &str = "replica-promoter-phrase-0123";

/// Starts three replicas behind haproxy and has admin create `pat`, promoter on `staging`
/// (through haproxy); returns the cluster and a client acting as `pat`.
async fn start_cluster() -> (Cluster, reqwest::Client) {
    let cluster = tokio::task::block_in_place(|| Cluster::start(3, &[]));
    let (status, body) = common::post_json(
        &cluster.http,
        &cluster.url("/api/v1/users"),
        serde_json::json!({"name": "pat", "password": PAT_PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "create pat: {body}");
    let (status, body) = common::post_json(
        &cluster.http,
        &cluster.url("/api/v1/roles/grant"),
        serde_json::json!({"principal": "pat", "role": "promoter", "scope": "staging"}),
    )
    .await;
    assert_eq!(status, 200, "grant promoter to pat: {body}");
    (cluster, common::client_as("pat", PAT_PASSWORD))
}

/// Runs skopeo as admin with `args` (after `--insecure-policy`); returns (success, stderr).
fn skopeo(args: &[&str]) -> (bool, String) {
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let mut command = Command::new("skopeo");
    command.arg("--insecure-policy");
    match args.split_first() {
        Some((&"copy", rest)) => {
            command
                .args(["copy", "--src-creds", &creds, "--dest-creds", &creds])
                .args(rest);
        }
        Some((&"inspect", rest)) => {
            command.args(["inspect", "--creds", &creds]).args(rest);
        }
        _ => {
            command.args(args);
        }
    }
    let output = command.output().expect("run skopeo");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The manifest digest skopeo reads from `host` for `reference` (`repo:tag` or `repo@digest`).
fn skopeo_digest(host: &str, reference: &str) -> String {
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("admin:{ADMIN_PASSWORD}"))
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo inspect {host}/{reference}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    sha256(&output.stdout)
}

/// The independent verifier of C2SP checkpoints and tiles (required under
/// `AIRLOCK_INTEROP=required`, else `None` with a notice).
fn tlogverify() -> Option<PathBuf> {
    let tool = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tools/tlogverify/tlogverify"
    ));
    if tool.exists() {
        return Some(tool);
    }
    assert_ne!(
        std::env::var("AIRLOCK_INTEROP").as_deref(),
        Ok("required"),
        "tlogverify is required (AIRLOCK_INTEROP=required) but {} is missing",
        tool.display()
    );
    eprintln!("NOTICE: {} is missing; skipping its checks", tool.display());
    None
}

/// The test client's image: a config and a layer pushed in `chunks` PATCH requests, and a
/// manifest tagged `tag`. Every step answered 201 goes into `acked`; the manifest's digest is
/// returned when all did.
async fn push_image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u64,
    acked: &mut Acknowledged,
) -> Result<String, oci::Failure> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = oci::pseudo_random(48 * 1024 + (seed % 1024) as usize, (seed % 251) as u8);
    let layer = [layer, seed.to_le_bytes().to_vec()].concat();
    let config_digest = oci::push_blob(http, base, repo, &config).await?;
    acked
        .blobs
        .push((repo.into(), config_digest.clone(), config.clone()));
    let layer_digest = oci::push_blob_chunked(http, base, repo, &layer, 3).await?;
    acked
        .blobs
        .push((repo.into(), layer_digest.clone(), layer.clone()));
    let manifest = oci::manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, layer.len())],
    );
    oci::put_manifest(http, base, repo, tag, &manifest).await?;
    acked
        .manifests
        .push((repo.into(), tag.into(), manifest.clone()));
    Ok(sha256(&manifest))
}

/// Asserts that everything in `acked` is found, unchanged, on every running replica.
async fn assert_found_on_every_replica(cluster: &Cluster, acked: &Acknowledged) {
    let started = Instant::now();
    let checks = cluster
        .running()
        .map(|replica| acked.missing_on(&cluster.http, &replica.base));
    let results = futures::future::join_all(checks).await;
    for (replica, missing) in cluster.running().zip(results) {
        assert!(
            missing.is_empty(),
            "{} lacks what the clients saw acknowledged ({} blobs, {} manifests, {} promotions acknowledged):\n{}\nreplicas' errors:\n{}",
            replica.name,
            acked.blobs.len(),
            acked.manifests.len(),
            acked.promotions.len(),
            missing.join("\n"),
            cluster.error_lines().join("\n")
        );
    }
    eprintln!(
        "read back from every replica in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// GET `url` as admin: (status, body text).
async fn get_text(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Waits up to 20 s until the newest signed checkpoint (read through haproxy) covers every
/// audit entry; returns the log size.
async fn wait_for_checkpoint(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) =
            get_text(&cluster.http, &cluster.url("/api/v1/audit/checkpoint")).await;
        assert_eq!(status, 200, "{body}");
        let checkpoint: Value = serde_json::from_str(&body).expect("checkpoint JSON");
        if checkpoint["size"] == checkpoint["entries"] {
            return checkpoint["size"].as_u64().expect("size");
        }
        assert!(
            Instant::now() < deadline,
            "the audit log was not checkpointed within 20 s: {checkpoint}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The audit log is one tree: once checkpointed, every running replica presents the same log key
/// and the same checkpoint (origin, size, root), and `airlock audit verify` (key pinned, every
/// entry signed) and tlogverify accept the log through haproxy and through each replica.
async fn assert_one_audit_tree(cluster: &Cluster) {
    let started = Instant::now();
    let size = wait_for_checkpoint(cluster).await;
    eprintln!(
        "checkpointed {size} entries after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        size > common::BOOTSTRAP_ENTRIES as u64,
        "log of {size} entries"
    );
    let mut keys = Vec::new();
    let mut trees = Vec::new();
    for replica in cluster.running() {
        let (status, key) = get_text(&cluster.http, &replica.url("/log/key")).await;
        assert_eq!(status, 200, "{}: /log/key: {key}", replica.name);
        keys.push((replica.name.clone(), key.trim().to_string()));
        let (status, note) = get_text(&cluster.http, &replica.url("/log/checkpoint")).await;
        assert_eq!(status, 200, "{}: /log/checkpoint: {note}", replica.name);
        let tree: Vec<&str> = note.lines().take(3).collect();
        trees.push((replica.name.clone(), tree.join("\n")));
    }
    assert!(
        keys.iter().all(|(_, k)| *k == keys[0].1),
        "the replicas present different log keys: {keys:#?}"
    );
    assert!(
        trees.iter().all(|(_, t)| *t == trees[0].1),
        "the replicas' checkpoints differ (a forked or lagging log): {trees:#?}"
    );
    assert!(
        trees[0].1.starts_with(cluster::ORIGIN),
        "checkpoint origin: {}",
        trees[0].1
    );
    let key = keys[0].1.clone();
    let mut servers = vec![("haproxy".to_string(), cluster.base.clone())];
    servers.extend(cluster.running().map(|r| (r.name.clone(), r.base.clone())));
    let tool = tlogverify();
    for (name, base) in &servers {
        let (code, out, err) = cluster.cli(
            base,
            &["audit", "verify", "--log-key", &key, "--require-signed"],
        );
        assert_eq!(code, 0, "airlock audit verify through {name}:\n{out}{err}");
        // tlogverify proves every index from the tiles: through haproxy, which spreads its
        // requests over every replica, once is enough (the checkpoints above are equal).
        if let Some(tool) = tool.as_ref().filter(|_| name == "haproxy") {
            let output = Command::new(tool)
                .args([base, &key])
                .env("TLOG_AUTH", format!("admin:{ADMIN_PASSWORD}"))
                .output()
                .expect("run tlogverify");
            let said = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success() && !said.contains("FAIL"),
                "tlogverify through {name}:\n{said}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                said.contains("PASS tile-based inclusion proofs verified for"),
                "tlogverify through {name} checked no inclusion proofs:\n{said}"
            );
        }
    }
    eprintln!(
        "one audit tree of {size} entries checked through haproxy and each replica in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_clients_push_and_promote_through_three_replicas() {
    if !cluster::available()
        || !common::interop_tool_available("skopeo", &["--version"])
        || !common::interop_tool_available("python3", &["-c", "import oras.client"])
    {
        return;
    }
    let (cluster, pat) = start_cluster().await;
    let work = cluster.scratch("clients");

    // skopeo (two images at once), oras and the test client push at the same time.
    let mut skopeo_runs = Vec::new();
    for (i, name) in ["alpha", "beta"].into_iter().enumerate() {
        let (layout, digest) = Layout::with_image(
            &work.join(name),
            i as u8 + 1,
            &[2_000, 1024 * 1024 + 17, 10, 300_000],
            "1",
        );
        let source = format!("oci:{}:1", layout.dir.display());
        let dest = format!("docker://{}/{DEV}/skopeo/{name}:1", cluster.host);
        skopeo_runs.push((
            name,
            digest,
            tokio::task::spawn_blocking(move || {
                skopeo(&["copy", "--dest-tls-verify=false", &source, &dest])
            }),
        ));
    }
    let oras_dir = work.join("oras");
    std::fs::create_dir_all(&oras_dir).unwrap();
    let (host, oras_work) = (cluster.host.clone(), oras_dir.clone());
    let oras = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/oras_roundtrip.py"
            ))
            .args([&host, "dev/oras/bundle", oras_work.to_str().unwrap()])
            .env("AIRLOCK_USER", "admin")
            .env("AIRLOCK_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("run oras_roundtrip.py")
    });
    let pushes = (0..6u64).map(|i| {
        let (http, base) = (cluster.http.clone(), cluster.base.clone());
        tokio::spawn(async move {
            let mut acked = Acknowledged::default();
            let repo = format!("{DEV}/client/app{}", i % 2);
            let digest = push_image(&http, &base, &repo, &format!("v{i}"), i, &mut acked)
                .await
                .unwrap_or_else(|e| panic!("test client push {repo}:v{i}: {e}"));
            (repo, digest, acked)
        })
    });
    let pushes = futures::future::join_all(pushes).await;
    let mut acked = Acknowledged::default();
    let mut to_promote = Vec::new();
    for push in pushes {
        let (repo, digest, done) = push.unwrap();
        acked.extend(done);
        to_promote.push((repo, digest));
    }
    for (name, digest, run) in skopeo_runs {
        let (ok, said) = run.await.unwrap();
        assert!(ok, "skopeo copy of {name} through haproxy: {said}");
        to_promote.push((format!("{DEV}/skopeo/{name}"), digest));
    }
    let oras = oras.await.unwrap();
    assert!(
        oras.status.success(),
        "oras through haproxy: {}",
        String::from_utf8_lossy(&oras.stderr)
    );
    let oras_said: Value = serde_json::from_slice(&oras.stdout).expect("oras JSON");
    let oras_digest = oras_said["artifact_digest"]
        .as_str()
        .expect("digest")
        .to_string();

    // Promotions through haproxy, all at once.
    let promotions = to_promote.iter().map(|(repo, digest)| {
        let (http, base) = (pat.clone(), cluster.base.clone());
        let (repo, digest) = (repo.clone(), digest.clone());
        tokio::spawn(async move {
            let promoted = oci::promote(&http, &base, &repo, &digest, "staging").await;
            (repo, digest, promoted)
        })
    });
    for promotion in futures::future::join_all(promotions).await {
        let (repo, digest, promoted) = promotion.unwrap();
        let (id, target) =
            promoted.unwrap_or_else(|e| panic!("promotion of {repo}@{digest} to staging: {e}"));
        acked.promotions.push((id, target, digest));
    }

    // Every replica, read directly, has all of it: skopeo and oras read what they pushed.
    assert_found_on_every_replica(&cluster, &acked).await;
    for replica in cluster.running() {
        let host = replica.base.trim_start_matches("http://");
        for (repo, digest) in to_promote.iter().filter(|(r, _)| r.contains("skopeo")) {
            assert_eq!(
                skopeo_digest(host, &format!("{repo}:1")),
                *digest,
                "{}: {repo}:1",
                replica.name
            );
        }
        let (status, _) = get_text(
            &cluster.http,
            &replica.url(&format!("/v2/dev/oras/bundle/manifests/{oras_digest}")),
        )
        .await;
        assert_eq!(status, 200, "{}: the oras artifact", replica.name);
    }
    assert_one_audit_tree(&cluster).await;
}

/// A burst worker: pushes images and promotes them, one after another, until `stop`; returns
/// what was acknowledged and the failures it saw.
async fn burst_worker(
    http: reqwest::Client,
    promoter: reqwest::Client,
    base: String,
    worker: u64,
    stop: Arc<AtomicBool>,
) -> (Acknowledged, Vec<String>) {
    let mut acked = Acknowledged::default();
    let mut failures = Vec::new();
    let repo = format!("{DEV}/burst/w{worker}");
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let seed = worker * 1_000_000 + i;
        let pushed = push_image(&http, &base, &repo, &format!("i{i}"), seed, &mut acked).await;
        match pushed {
            Ok(digest) => match oci::promote(&promoter, &base, &repo, &digest, "staging").await {
                Ok((id, target)) => acked.promotions.push((id, target, digest)),
                Err(e) => failures.push(format!("promote {repo}:i{i}: {e}")),
            },
            Err(e) => failures.push(format!("push {repo}:i{i}: {e}")),
        }
        i += 1;
    }
    (acked, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_burst_loses_nothing_acknowledged() {
    if !cluster::available() {
        return;
    }
    let (mut cluster, pat) = start_cluster().await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(burst_worker(
                cluster.http.clone(),
                pat.clone(),
                cluster.base.clone(),
                w,
                stop.clone(),
            ))
        })
        .collect();
    // Let the burst get going, kill r2 in the middle of it, keep going on the other two.
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| cluster.kill(1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Acknowledged::default();
    let mut failures = Vec::new();
    for worker in workers {
        let (done, failed) = worker.await.unwrap();
        acked.extend(done);
        failures.extend(failed);
    }
    eprintln!(
        "burst: {} blobs, {} manifests, {} promotions acknowledged; {} operations failed (requests in flight on the killed replica):\n{}",
        acked.blobs.len(),
        acked.manifests.len(),
        acked.promotions.len(),
        failures.len(),
        failures.join("\n")
    );
    assert!(
        acked.promotions.len() >= 6,
        "the burst made too little progress to prove anything: {} promotions",
        acked.promotions.len()
    );
    // A request in flight on the killed replica may fail (haproxy answers 502 and does not replay
    // a write); no more than one per worker.
    assert!(
        failures.len() <= 6,
        "more operations failed than were in flight when r2 died:\n{}",
        failures.join("\n")
    );
    assert_found_on_every_replica(&cluster, &acked).await;
    // The killed replica comes back and serves the same data.
    tokio::task::block_in_place(|| cluster.restart(1));
    assert_found_on_every_replica(&cluster, &acked).await;
    assert_one_audit_tree(&cluster).await;
}

/// `airlock_http_requests_total` for `POST` on the JSON API (`route="api"`) at `base`.
async fn api_posts(http: &reqwest::Client, base: &str) -> u64 {
    let (status, text) = get_text(http, &format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{base}/metrics: {text}");
    text.lines()
        .filter(|l| {
            l.starts_with("airlock_http_requests_total{")
                && l.contains(r#"route="api""#)
                && l.contains(r#"method="POST""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_for_one_promotion_make_exactly_one() {
    if !cluster::available() {
        return;
    }
    let (cluster, pat) = start_cluster().await;
    let repo = format!("{DEV}/race/app");
    let digest = push_image(
        &cluster.http,
        &cluster.base,
        &repo,
        "1",
        7,
        &mut Acknowledged::default(),
    )
    .await
    .unwrap();
    let mut before = Vec::new();
    for replica in &cluster.replicas {
        // Warm each replica's password cache, so the requests race in the promotion service.
        let (status, body) = get_text(&pat, &replica.url("/api/v1/promotions")).await;
        assert_eq!(status, 200, "{body}");
        before.push(api_posts(&cluster.http, &replica.base).await);
    }

    let requests = (0..50).map(|_| {
        let (http, base) = (pat.clone(), cluster.base.clone());
        let (repo, digest) = (repo.clone(), digest.clone());
        tokio::spawn(async move {
            oci::request_promotion(&http, &base, &repo, &digest, "staging")
                .await
                .expect("promotion request")
        })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    // The requests were spread over all three replicas.
    for (replica, before) in cluster.replicas.iter().zip(before) {
        let served = api_posts(&cluster.http, &replica.base).await - before;
        assert!(
            served > 0,
            "{} served none of the 50 requests",
            replica.name
        );
        eprintln!("{} served {served} of the 50 requests", replica.name);
    }
    let created: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{results:#?}");
    assert_eq!(
        created[0]["promotion"]["state"], "promoted",
        "{:#}",
        created[0]
    );
    let id = created[0]["promotion"]["id"].as_str().unwrap().to_string();
    for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body:#}");
        assert_eq!(body["error"]["code"], "CONFLICT", "{body:#}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&id), "{message} does not name {id}");
    }
    for replica in &cluster.replicas {
        let (status, body) = get_text(
            &cluster.http,
            &replica.url("/api/v1/promotions?repository=race/app"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        let ids: Vec<&str> = list["promotions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        assert_eq!(ids, [id.as_str()], "{}: {body}", replica.name);
    }
    let (status, body) = get_text(
        &cluster.http,
        &cluster.url("/api/v1/audit/entries?limit=10000"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let promoted = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"]["type"] == "promotion.promoted")
        .count();
    assert_eq!(promoted, 1, "promotion.promoted audit entries");
    assert_one_audit_tree(&cluster).await;
}

/// A push/pull worker: pushes a blob and a manifest, then reads both back, over and over until
/// `stop`; returns what was acknowledged, the number of requests and every failed one.
async fn push_pull_worker(
    http: reqwest::Client,
    base: String,
    worker: u64,
    stop: Arc<AtomicBool>,
) -> (Acknowledged, usize, Vec<String>) {
    let mut acked = Acknowledged::default();
    let mut requests = 0;
    let mut failures = Vec::new();
    let repo = format!("{DEV}/rolling/w{worker}");
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let seed = worker * 1_000_000 + i;
        let tag = format!("i{i}");
        // The image: the config's POST, the layer's POST, 3 PATCH and PUT, the manifest's PUT.
        requests += 7;
        match push_image(&http, &base, &repo, &tag, seed, &mut acked).await {
            Ok(digest) => {
                requests += 2;
                let manifest = http
                    .get(format!("{base}/v2/{repo}/manifests/{digest}"))
                    .header("accept", OCI_MANIFEST)
                    .send()
                    .await;
                match manifest {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("GET {repo}@{digest}: {}", r.status())),
                    Err(e) => failures.push(format!("GET {repo}@{digest}: {e}")),
                }
                let (_, layer_digest, _) = acked.blobs.last().cloned().unwrap_or_default();
                let blob = http
                    .get(format!("{base}/v2/{repo}/blobs/{layer_digest}"))
                    .send()
                    .await;
                match blob {
                    Ok(r) if r.status() == 200 => {
                        if let Err(e) = r.bytes().await {
                            failures.push(format!("GET {repo}@{layer_digest}: body: {e}"));
                        }
                    }
                    Ok(r) => failures.push(format!("GET {repo}@{layer_digest}: {}", r.status())),
                    Err(e) => failures.push(format!("GET {repo}@{layer_digest}: {e}")),
                }
            }
            Err(e) => failures.push(format!("push {repo}:{tag}: {e}")),
        }
        i += 1;
    }
    (acked, requests, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_a_push_pull_loop_fails_no_request() {
    if !cluster::available() {
        return;
    }
    let (mut cluster, _) = start_cluster().await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(push_pull_worker(
                cluster.http.clone(),
                cluster.base.clone(),
                w,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    for i in 0..cluster.replicas.len() {
        tokio::task::block_in_place(|| {
            cluster.stop(i);
            cluster.restart(i);
        });
        eprintln!(
            "{} restarted ({:.1} s into the rolling restart)",
            cluster.replicas[i].name,
            started.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Acknowledged::default();
    let mut requests = 0;
    let mut failures = Vec::new();
    for worker in workers {
        let (done, count, failed) = worker.await.unwrap();
        acked.extend(done);
        requests += count;
        failures.extend(failed);
    }
    eprintln!(
        "rolling restart: {requests} requests, {} images pushed and read back",
        acked.manifests.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the rolling restart:\n{}\nhaproxy logged:\n{}",
        failures.len(),
        failures.join("\n"),
        cluster.haproxy_log.lines().join("\n")
    );
    assert!(
        acked.manifests.len() >= 20,
        "the loop made too little progress to prove anything: {} images",
        acked.manifests.len()
    );
    assert_found_on_every_replica(&cluster, &acked).await;
    assert_one_audit_tree(&cluster).await;
}
