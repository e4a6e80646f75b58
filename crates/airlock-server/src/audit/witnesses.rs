//! Getting the log's checkpoints cosigned by its witnesses (`[[audit.witnesses]]`,
//! c2sp.org/tlog-witness).
//!
//! On the replica that signs checkpoints, once a second: each witness with no stored cosignature
//! on the newest checkpoint gets an `add-checkpoint` request with a consistency proof
//! from that size. A `409` answer names the size the witness really holds, and the request is
//! sent again from there. The answer's signature lines are verified with the witness's key
//! before they are stored (`audit_cosignatures`), and `/log/checkpoint` serves them under the
//! log's signature. Where each witness stands, with its last refusal, is kept in
//! `audit_witness_status` (`GET /api/v1/audit/witnesses`).
//!
//! Witnessing never holds the log up: a witness that is down or refuses is retried with backoff
//! (up to a minute apart) while entries are appended and checkpoints signed as usual; its
//! cosignatures arrive once it answers. A witness that refuses with `422` (the log no longer
//! extends what it cosigned) will refuse every later checkpoint too: that is the point, and the
//! refusal is logged as an error and shown by `airlock audit verify --witness`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_audit::{AddCheckpoint, TLOG_SIZE_CONTENT_TYPE, verify_cosigned_checkpoint};
use airlock_store::StoredCheckpoint;

use super::AuditLog;
use crate::config::AuditWitness;

/// How often the newest checkpoint is offered to witnesses that lack it.
const ROUND_INTERVAL: Duration = Duration::from_secs(1);
/// How long one witness request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between attempts at a failing witness.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The largest answer read from a witness (a few signature lines).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One configured witness.
struct Witness {
    /// The submission prefix, without a trailing slash.
    url: String,
    /// Its verifier key.
    key: String,
    /// The start of its signature lines: `— <name> `.
    line_prefix: String,
    /// When to try it next, after failures.
    next_attempt: Option<Instant>,
    /// Failures in a row.
    failures: u32,
}

/// The witnesses of one log and the client that reaches them.
pub struct Witnesses {
    log: Arc<AuditLog>,
    witnesses: Vec<Witness>,
    http: reqwest::Client,
}

impl Witnesses {
    /// The witnesses `config` lists for `log` (validated with the configuration).
    pub fn new(log: Arc<AuditLog>, config: &[AuditWitness]) -> Result<Witnesses, reqwest::Error> {
        let http = crate::outbound_tls::client_builder(&crate::outbound_tls::Trust::System)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Witnesses {
            log,
            witnesses: config
                .iter()
                .map(|witness| Witness {
                    url: witness.url.trim_end_matches('/').to_owned(),
                    key: witness.key.trim().to_owned(),
                    line_prefix: format!(
                        "— {} ",
                        airlock_audit::witness_key_name(&witness.key).unwrap_or_default()
                    ),
                    next_attempt: None,
                    failures: 0,
                })
                .collect(),
            http,
        })
    }

    /// Offers new checkpoints to the witnesses until the task is dropped, on the leading
    /// replica only.
    pub async fn run(mut self, leadership: Arc<crate::leadership::Leadership>) {
        let mut interval = tokio::time::interval(ROUND_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if !leadership.is_leader() {
                continue;
            }
            self.round().await;
        }
    }

    /// One round: every due witness that lacks the newest checkpoint is asked to cosign it.
    async fn round(&mut self) {
        let latest = match self.log.latest_checkpoint().await {
            Ok(latest) => latest,
            Err(err) => {
                tracing::warn!(error = %err, "witnessing: reading the newest checkpoint failed");
                return;
            }
        };
        let statuses = match self.log.metadata.witness_statuses().await {
            Ok(statuses) => statuses,
            Err(err) => {
                tracing::warn!(error = %err, "witnessing: reading the witnesses' status failed");
                return;
            }
        };
        // What is stored for the newest checkpoint: a witness with a line there has cosigned it.
        let lines = match self.log.metadata.cosignatures(latest.size).await {
            Ok(lines) => lines,
            Err(err) => {
                tracing::warn!(error = %err, "witnessing: reading the cosignatures failed");
                return;
            }
        };
        let now = Instant::now();
        let log = self.log.clone();
        let http = self.http.clone();
        let attempts = self.witnesses.iter_mut().filter_map(|witness| {
            let known = statuses.iter().find(|status| status.witness == witness.key);
            let cosigned = known.map_or(0, |status| status.cosigned_size);
            let current = lines
                .iter()
                .any(|line| line.starts_with(&witness.line_prefix));
            if current || witness.next_attempt.is_some_and(|at| at > now) {
                return None;
            }
            let log = log.clone();
            let http = http.clone();
            let latest = latest.clone();
            Some(async move {
                let outcome = submit(&log, &http, witness, &latest, cosigned).await;
                (witness, outcome)
            })
        });
        for (witness, outcome) in futures::future::join_all(attempts).await {
            let (cosigned, error) = match outcome {
                Ok(size) => {
                    witness.failures = 0;
                    witness.next_attempt = None;
                    metrics::counter!(crate::metrics::AUDIT_WITNESS_SUBMISSIONS, "outcome" => "cosigned").increment(1);
                    (size, None)
                }
                Err(failure) => {
                    witness.failures = witness.failures.saturating_add(1);
                    let backoff = Duration::from_secs(1u64 << witness.failures.min(6));
                    witness.next_attempt = Some(Instant::now() + backoff.min(MAX_BACKOFF));
                    metrics::counter!(crate::metrics::AUDIT_WITNESS_SUBMISSIONS, "outcome" => failure.outcome()).increment(1);
                    if failure.outcome() == "refused" {
                        tracing::error!(witness = %witness.url, error = %failure.message, "a witness refused the log's checkpoint");
                    } else {
                        tracing::warn!(witness = %witness.url, error = %failure.message, "a witness could not be reached");
                    }
                    (failure.cosigned_size, Some(failure.message))
                }
            };
            if let Err(err) = self
                .log
                .metadata
                .set_witness_status(&witness.key, cosigned, error.as_deref())
                .await
            {
                tracing::warn!(error = %err, "witnessing: recording a witness's status failed");
            }
        }
    }
}

/// Why one submission did not end in a stored cosignature.
struct Failure {
    /// `refused` (the witness answered with a refusal) or `unreachable`.
    refused: bool,
    /// The size the witness is known to hold afterwards.
    cosigned_size: u64,
    message: String,
}

impl Failure {
    fn outcome(&self) -> &'static str {
        if self.refused {
            "refused"
        } else {
            "unreachable"
        }
    }
}

/// Offers `latest` to `witness`, starting from the size it is believed to hold; returns the
/// size it cosigned.
async fn submit(
    log: &AuditLog,
    http: &reqwest::Client,
    witness: &Witness,
    latest: &StoredCheckpoint,
    mut old_size: u64,
) -> Result<u64, Failure> {
    let unreachable = |old_size: u64, message: String| Failure {
        refused: false,
        cosigned_size: old_size,
        message,
    };
    // A 409 names the witness's real size; one retry from there.
    for _ in 0..2 {
        if old_size > latest.size {
            return Err(Failure {
                refused: true,
                cosigned_size: old_size,
                message: format!(
                    "the witness has cosigned {old_size} entries of this log, more than the {} it holds now: the log was rolled back (restored from an older backup?) or another log signs with its key, and this witness will not cosign it again until it extends that checkpoint",
                    latest.size
                ),
            });
        }
        let proof = if old_size == 0 || old_size == latest.size {
            Vec::new()
        } else {
            log.consistency_proof(old_size, Some(latest.size))
                .await
                .map_err(|e| {
                    unreachable(
                        old_size,
                        format!("building the consistency proof from {old_size} failed: {e}"),
                    )
                })?
                .hashes
        };
        let body = AddCheckpoint {
            old_size,
            proof,
            checkpoint: latest.note.clone(),
        }
        .to_body();
        let response = http
            .post(format!("{}/add-checkpoint", witness.url))
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(old_size, format!("cannot reach {}: {e}", witness.url)))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = read_bounded(response)
            .await
            .map_err(|message| unreachable(old_size, message))?;
        match status.as_u16() {
            200 => {
                return store_cosignature(log, witness, latest, &text)
                    .await
                    .map(|()| latest.size)
                    .map_err(|message| Failure {
                        refused: true,
                        cosigned_size: old_size,
                        message,
                    });
            }
            409 if content_type.starts_with(TLOG_SIZE_CONTENT_TYPE) => {
                match text.trim_end_matches('\n').parse::<u64>() {
                    Ok(size) => old_size = size,
                    Err(_) => {
                        return Err(Failure {
                            refused: true,
                            cosigned_size: old_size,
                            message: "the witness answered 409 without a tree size".into(),
                        });
                    }
                }
            }
            code => {
                let reason: String = text.trim().chars().take(500).collect();
                return Err(Failure {
                    refused: status.is_client_error(),
                    cosigned_size: old_size,
                    message: format!(
                        "the witness refused the checkpoint of size {} with {code}: {reason}",
                        latest.size
                    ),
                });
            }
        }
    }
    Err(Failure {
        refused: true,
        cosigned_size: old_size,
        message: "the witness answered 409 twice: another log or replica submits under this log's key at the same time".into(),
    })
}

/// Reads a witness's answer, at most [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the witness's answer failed: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err("the witness's answer is larger than 64 KiB".into());
        }
    }
    String::from_utf8(body).map_err(|_| "the witness's answer is not UTF-8".into())
}

/// Verifies the witness's signature lines on `latest` and stores its cosignature.
async fn store_cosignature(
    log: &AuditLog,
    witness: &Witness,
    latest: &StoredCheckpoint,
    answer: &str,
) -> Result<(), String> {
    let mut note = latest.note.clone();
    for line in answer.lines().filter(|line| line.starts_with("— ")) {
        note.push_str(line);
        note.push('\n');
    }
    let cosigned = verify_cosigned_checkpoint(
        &note,
        log.verifier_key(),
        std::slice::from_ref(&witness.key),
    )
    .map_err(|e| format!("the witness's answer does not verify: {e}"))?;
    let Some(cosignature) = cosigned.cosignatures.first() else {
        return Err(
            "the witness answered 200 without a cosignature by the key configured for it".into(),
        );
    };
    log.metadata
        .record_cosignature(latest.size, &witness.key, &cosignature.line)
        .await
        .map_err(|e| format!("storing the cosignature failed: {e}"))
}
