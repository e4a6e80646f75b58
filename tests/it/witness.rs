//! Witness cosigning (c2sp.org/tlog-witness): a log server submits each new checkpoint to its
//! witnesses (`[[audit.witnesses]]`) and serves their cosignatures at `/log/checkpoint`; a
//! witness (`airlock witness serve`, or `airlock serve` with `[witness]`) cosigns only what
//! extends what it cosigned before. `airlock audit verify --witness` requires the cosignatures,
//! and so catches the rewrite a log's own signature cannot: drop the newer checkpoints, rewrite
//! the tail, restart, and let airlock sign again. Cosignatures are also checked by an
//! independent implementation of the C2SP specs (`tests/interop/tlog_witness.py`), which also
//! acts as an independent log against airlock's witness.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common;
use common::TestServer;

const WITNESS_NAME: &str = "witness.test/w1";

/// A witness served alone (`airlock witness serve`), stopped on drop.
struct Witness {
    child: Child,
    /// The submission prefix, e.g. `http://127.0.0.1:PORT/witness`.
    url: String,
    /// Its verifier key.
    key: String,
}

impl Witness {
    /// Starts a witness over `data_dir` listening on `listen`, witnessing the logs `log_keys`.
    fn start(data_dir: &Path, listen: &str, log_keys: &[&str]) -> Witness {
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args([
                "witness",
                "serve",
                "--name",
                WITNESS_NAME,
                "--listen",
                listen,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("AIRLOCK_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for key in log_keys {
            command.args(["--log", key]);
        }
        let mut child = command.spawn().expect("start airlock witness serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a first line").expect("stdout");
        let base = first
            .strip_prefix("airlock witness listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        let second = lines.next().expect("a second line").expect("stdout");
        let key = second
            .strip_prefix("witness key: ")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        Witness {
            child,
            url: format!("{base}/witness"),
            key,
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address no one listens on now (for a server that must keep its port).
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// Writes a configuration file listing `witnesses` (url, key) as the log's witnesses, plus
/// `extra` TOML; returns its path.
fn config_with_witnesses(dir: &Path, witnesses: &[(&str, &str)], extra: &str) -> PathBuf {
    let mut text = String::from(extra);
    for (url, key) in witnesses {
        text.push_str(&format!(
            "\n[[audit.witnesses]]\nurl = \"{url}\"\nkey = \"{key}\"\n"
        ));
    }
    let path = dir.join("airlock.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The log's verifier key, as the server presents it.
async fn log_key(s: &TestServer) -> String {
    s.http
        .get(s.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .to_string()
}

/// Waits until `/log/checkpoint` covers every appended entry and carries a cosignature line by
/// `witness_name`; returns the note.
async fn wait_for_cosigned(s: &TestServer, witness_name: &str) -> String {
    let size = s.wait_for_checkpoint().await;
    for _ in 0..150 {
        let note = s
            .anonymous
            .get(s.url("/log/checkpoint"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let covers = note
            .lines()
            .nth(1)
            .and_then(|line| line.parse::<u64>().ok())
            .is_some_and(|at| at >= size);
        if covers && note.contains(&format!("— {witness_name} ")) {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the checkpoint of size {size} was not cosigned by {witness_name} within 30 s");
}

/// Waits up to 10 s for the log to record a failure of its (first) witness; returns it.
async fn witness_error(s: &TestServer) -> String {
    for _ in 0..100 {
        let (_, status) = common::get_json(&s.anonymous, &s.url("/api/v1/audit/witnesses")).await;
        if let Some(error) = status["witnesses"][0]["last_error"].as_str() {
            return error.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log recorded no witness failure within 10 s");
}

/// Runs the independent verifier on a cosigned checkpoint; returns (exit code, output).
fn independent_verify(note: &str, log_key: &str, witness_key: &str) -> (i32, String) {
    let mut child = Command::new("python3")
        .arg(interop_script())
        .args(["verify-cosigned", log_key, witness_key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(note.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn interop_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tlog_witness.py")
}

fn python_ready() -> bool {
    common::interop_tool_available("python3", &["-c", "import cryptography"])
}

/// A log server over a fresh data directory witnessed by one standalone witness; returns the
/// server, its log key, the witness and the temporary directory holding both.
async fn witnessed_log() -> (TestServer, String, Witness, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("log");
    // The witness must know the log's key before it can cosign: start the log once to make it.
    let mut first = TestServer::start_in(&data, &[]);
    let key = log_key(&first).await;
    first.stop();
    let witness = Witness::start(&temp.path().join("witness"), "127.0.0.1:0", &[&key]);
    let config = config_with_witnesses(temp.path(), &[(&witness.url, &witness.key)], "");
    let s = TestServer::start_in_with_args(&data, &["--config", config.to_str().unwrap()], &[]);
    (s, key, witness, temp)
}

#[tokio::test]
async fn a_witness_cosigns_the_log_and_verify_requires_its_cosignature() {
    let (s, key, witness, temp) = witnessed_log().await;
    s.push_image("dev/team/app", "v1", &[b"layer one"]).await;
    let note = wait_for_cosigned(&s, WITNESS_NAME).await;

    // The witness's key file is its own secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(temp.path().join("witness/witness-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "witness-key mode {mode:o}");
    }
    // `airlock witness key` prints what the witness printed at start.
    let (code, out, err) = common::airlock_cli(&[
        "witness",
        "key",
        "--data-dir",
        temp.path().join("witness").to_str().unwrap(),
    ]);
    assert_eq!((code, out.trim()), (0, witness.key.as_str()), "{err}");

    // The log names where its witness stands.
    let (status, witnesses) =
        common::get_json(&s.anonymous, &s.url("/api/v1/audit/witnesses")).await;
    assert_eq!(status, 200);
    let size = note.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert_eq!(witnesses["witnesses"][0]["name"], WITNESS_NAME);
    assert!(witnesses["witnesses"][0]["cosigned_size"].as_u64().unwrap() >= size);
    assert!(
        witnesses["witnesses"][0].get("last_error").is_none(),
        "{witnesses}"
    );

    // An independent implementation of the C2SP specs accepts the cosigned checkpoint.
    if python_ready() {
        let (code, out) = independent_verify(&note, &key, &witness.key);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ok"), "{out}");
        // And refuses it when the cosignature is altered.
        let mut tampered: Vec<String> = note.lines().map(str::to_string).collect();
        let last = tampered.last_mut().unwrap();
        let flipped = if last.ends_with("A=") { "B=" } else { "A=" };
        last.replace_range(last.len() - 2.., flipped);
        let (code, out) = independent_verify(&(tampered.join("\n") + "\n"), &key, &witness.key);
        assert_eq!(code, 1, "{out}");
    }

    // The witness serves what it cosigned (monitor retrieval).
    let origin = note.lines().next().unwrap();
    let hash = common::sha256(origin.as_bytes());
    let copy = reqwest::get(format!(
        "{}/{}/checkpoint",
        witness.url,
        hash.trim_start_matches("sha256:")
    ))
    .await
    .unwrap();
    assert_eq!(copy.status(), 200);
    let copy = copy.text().await.unwrap();
    assert!(copy.contains(&format!("— {WITNESS_NAME} ")), "{copy}");
    assert!(copy.starts_with(origin), "{copy}");

    // Verification with the witness passes; with a witness that never cosigned, it fails.
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        &key,
        "--witness",
        &witness.key,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("cosigned by 1 witness(es): {WITNESS_NAME}")),
        "{out}"
    );
    let stranger = airlock_audit::WitnessKey::generate("witness.test/stranger").unwrap();
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        &key,
        "--witness",
        &witness.key,
        "--witness",
        stranger.verifier_key(),
        "--min-witnesses",
        "2",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "carries 1 of the 2 witness cosignatures required (missing: witness.test/stranger)"
        ),
        "{err}"
    );
    let (code, _, err) = s.cli(&[
        "audit",
        "verify",
        "--witness",
        &witness.key,
        "--min-witnesses",
        "3",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--min-witnesses 3"), "{err}");
}

#[tokio::test]
async fn a_rewrite_after_a_cosigned_checkpoint_is_refused_by_the_witness_and_fails_verify() {
    let (mut s, key, witness, _temp) = witnessed_log().await;
    s.push_image("dev/team/app", "v1", &[b"first"]).await;
    let first = wait_for_cosigned(&s, WITNESS_NAME).await;
    let kept = first.lines().nth(1).unwrap().parse::<u64>().unwrap();
    s.push_image("dev/team/app", "v2", &[b"second"]).await;
    let second = wait_for_cosigned(&s, WITNESS_NAME).await;
    let cosigned = second.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert!(cosigned > kept);
    s.stop();

    // The attack from the review, by someone holding the database: drop every checkpoint after
    // `kept` with its hashes and cosignatures, rewrite the entries after it, and let airlock
    // sign the rewritten tail when it starts again.
    let dir = s.data_dir.clone();
    let hashes_kept = airlock_audit::stored_hash_count(kept).unwrap().to_string();
    let kept_text = kept.to_string();
    for sql in [
        "DELETE FROM audit_checkpoints WHERE size > CAST($1 AS BIGINT)",
        "DELETE FROM audit_cosignatures WHERE size > CAST($1 AS BIGINT)",
    ] {
        common::execute_on_database(&dir, sql, &[&kept_text]).await;
    }
    common::execute_on_database(
        &dir,
        "DELETE FROM audit_hashes WHERE idx >= CAST($1 AS BIGINT)",
        &[&hashes_kept],
    )
    .await;
    let rewrite = if common::distributed() {
        "UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'admin', 'admim'), 'UTF8') WHERE idx >= CAST($1 AS BIGINT)"
    } else {
        "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'admin', 'admim') AS BLOB) WHERE idx >= CAST($1 AS BIGINT)"
    };
    let rewritten = common::execute_on_database(&dir, rewrite, &[&kept_text]).await;
    assert!(rewritten > 0, "no entry after {kept} names admin");

    let config = dir.parent().unwrap().join("airlock.toml");
    let s = TestServer::start_in_with_args(&dir, &["--config", config.to_str().unwrap()], &[]);
    let size = s.wait_for_checkpoint().await;
    assert!(size >= cosigned);

    // The log's own signature vouches for the rewritten history: verify without a witness passes.
    let (code, out, err) = s.cli(&["audit", "verify", "--log-key", &key]);
    assert_eq!(code, 0, "{out}{err}");

    // The witness refuses it (its answer is kept), and verify with the witness names the rewrite.
    let refusal = witness_error(&s).await;
    assert!(refusal.contains("422"), "{refusal}");
    assert!(refusal.contains("rewritten"), "{refusal}");
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        &key,
        "--witness",
        &witness.key,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("carries 0 of the 1"), "{err}");
    assert!(
        err.contains(&format!("last cosigned size {cosigned}")),
        "{err}"
    );
    assert!(err.contains("rewritten"), "{err}");
    // The witness still holds the checkpoint it cosigned, with the original root.
    let origin = second.lines().next().unwrap();
    let hash = common::sha256(origin.as_bytes());
    let copy = reqwest::get(format!(
        "{}/{}/checkpoint",
        witness.url,
        hash.trim_start_matches("sha256:")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(copy.lines().nth(2), second.lines().nth(2), "{copy}");
}

#[tokio::test]
async fn a_witness_that_is_down_delays_nothing_and_cosigns_once_back() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("log");
    let mut first = TestServer::start_in(&data, &[]);
    let key = log_key(&first).await;
    first.stop();
    let address = free_address();
    let witness_dir = temp.path().join("witness");
    // Started once to make its key, then stopped: the log starts with its witness down.
    let witness = Witness::start(&witness_dir, &address, &[&key]);
    let (url, witness_key) = (witness.url.clone(), witness.key.clone());
    drop(witness);
    let config = config_with_witnesses(temp.path(), &[(&url, &witness_key)], "");
    let s = TestServer::start_in_with_args(&data, &["--config", config.to_str().unwrap()], &[]);

    // Pushes are acknowledged and signed into checkpoints as usual.
    s.push_image("dev/team/app", "v1", &[b"while the witness is down"])
        .await;
    let size = s.wait_for_checkpoint().await;
    let error = witness_error(&s).await;
    assert!(error.contains("cannot reach"), "{error}");
    let (_, checkpoint) = common::get_json(&s.anonymous, &s.url("/api/v1/audit/checkpoint")).await;
    assert!(checkpoint["size"].as_u64().unwrap() >= size);

    // Back on the same address, the witness cosigns what the log signed meanwhile.
    let _witness = Witness::start(&witness_dir, &address, &[&key]);
    wait_for_cosigned(&s, WITNESS_NAME).await;
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        &key,
        "--witness",
        &witness_key,
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn two_airlock_servers_witness_each_other() {
    let temp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (temp.path().join("a"), temp.path().join("b"));
    let mut a = TestServer::start_in(&dir_a, &[]);
    let mut b = TestServer::start_in(&dir_b, &[]);
    let (log_a, log_b) = (log_key(&a).await, log_key(&b).await);
    a.stop();
    b.stop();
    // Each one's witness key is made before it starts, so the other's configuration can name it.
    let witness_a = airlock_audit::WitnessKey::generate("a.test/witness").unwrap();
    let witness_b = airlock_audit::WitnessKey::generate("b.test/witness").unwrap();
    for (dir, key) in [(&dir_a, &witness_a), (&dir_b, &witness_b)] {
        std::fs::write(dir.join("witness-key"), key.private_text()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.join("witness-key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
    }
    let (address_a, address_b) = (free_address(), free_address());
    let config = |dir: &Path, name: &str, witnessed_log: &str, peer: &str, peer_key: &str| {
        let path = dir.join("airlock.toml");
        std::fs::write(
            &path,
            format!(
                "[witness]\nname = \"{name}\"\nlogs = [\"{witnessed_log}\"]\n\n[[audit.witnesses]]\nurl = \"http://{peer}/witness\"\nkey = \"{peer_key}\"\n"
            ),
        )
        .unwrap();
        path
    };
    let config_a = config(
        &dir_a,
        "a.test/witness",
        &log_b,
        &address_b,
        witness_b.verifier_key(),
    );
    let config_b = config(
        &dir_b,
        "b.test/witness",
        &log_a,
        &address_a,
        witness_a.verifier_key(),
    );
    let a = TestServer::start_in_with_args(
        &dir_a,
        &[
            "--config",
            config_a.to_str().unwrap(),
            "--listen",
            &address_a,
        ],
        &[],
    );
    let b = TestServer::start_in_with_args(
        &dir_b,
        &[
            "--config",
            config_b.to_str().unwrap(),
            "--listen",
            &address_b,
        ],
        &[],
    );
    a.push_image("dev/team/app", "v1", &[b"on a"]).await;
    b.push_image("dev/team/app", "v1", &[b"on b"]).await;
    wait_for_cosigned(&a, "b.test/witness").await;
    wait_for_cosigned(&b, "a.test/witness").await;
    let (code, out, err) = a.cli(&[
        "audit",
        "verify",
        "--log-key",
        &log_a,
        "--witness",
        witness_b.verifier_key(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = b.cli(&[
        "audit",
        "verify",
        "--log-key",
        &log_b,
        "--witness",
        witness_a.verifier_key(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // Each serves the other's key at /witness/key, and refuses logs it does not witness.
    let served = reqwest::get(format!("http://{address_a}/witness/key"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served.trim(), witness_a.verifier_key());
    let own = a
        .anonymous
        .get(a.url("/log/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let unknown = reqwest::Client::new()
        .post(format!("http://{address_a}/witness/add-checkpoint"))
        .body(format!("old 0\n\n{own}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("does not witness the log")
    );
}

#[tokio::test]
async fn an_independent_log_gets_cosignatures_and_refusals_as_the_spec_says() {
    if !python_ready() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    // The independent log needs the witness's address and key before the witness can know the
    // log's key: both are fixed first (the key file is what `witness serve` would make).
    let witness_dir = temp.path().join("witness");
    std::fs::create_dir_all(&witness_dir).unwrap();
    let witness_key = airlock_audit::WitnessKey::generate(WITNESS_NAME).unwrap();
    std::fs::write(witness_dir.join("witness-key"), witness_key.private_text()).unwrap();
    let address = free_address();
    let url = format!("http://{address}/witness");
    let mut log = Command::new("python3")
        .arg(interop_script())
        .args(["act-as-log", &url, witness_key.verifier_key()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(log.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let key = line
        .trim()
        .strip_prefix("log-key: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let witness = Witness::start(&witness_dir, &address, &[&key]);
    assert_eq!(witness.key, witness_key.verifier_key());
    writeln!(log.stdin.as_mut().unwrap(), "go").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = log.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{rest}{stderr}");
    assert!(!rest.contains("FAIL"), "{rest}");
    // a..l: 20 checks, each an `ok:` line.
    assert_eq!(
        rest.lines().filter(|l| l.starts_with("ok:")).count(),
        20,
        "{rest}"
    );
}

#[test]
fn witness_serve_names_a_bad_argument_and_refuses_plaintext_off_loopback() {
    let log = airlock_audit::LogKey::generate("log.test/a").unwrap();
    let (code, _, err) = common::airlock_cli(&[
        "witness",
        "serve",
        "--name",
        "w.test/w",
        "--log",
        "not-a-key",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--log not-a-key: malformed log verifier key"),
        "{err}"
    );
    let (code, _, err) = common::airlock_cli(&[
        "witness",
        "serve",
        "--name",
        "a b",
        "--log",
        log.verifier_key(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--name \"a b\": a witness name is"), "{err}");
    let (code, _, err) = common::airlock_cli(&[
        "witness",
        "serve",
        "--name",
        "w.test/w",
        "--log",
        log.verifier_key(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("refusing to serve plaintext HTTP on 0.0.0.0:0"),
        "{err}"
    );
}
