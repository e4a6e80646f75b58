//! The anomaly benchmark: what the detector adds to the request path, against the work the same
//! requests already do, measured in the same run on the same database.
//!
//! - A signal below its threshold (one insert and one indexed count in a write transaction), next
//!   to the audit entry the same event already appends (`record_events`, one write transaction).
//! - The manifest lookup every pull makes (it carries the quarantine check in the same query),
//!   with no quarantines and with `--quarantines` other digests quarantined.
//!
//! Signals are measured with `--preload` signals already in the table, to show the index keeps
//! the window count flat.

use std::time::{Duration, Instant};

use airlock_core::{
    Action, Actor, AnomalyAction, AnomalyRule, AnomalyTarget, AuditEvent, AuditRecord, Digest,
    ParsedManifest, RepoName, Signal,
};
use airlock_store::{ManifestUpload, Metadata, Tripwire, now_millis};
use anyhow::{Context, Result, bail};

struct Options {
    samples: usize,
    preload: usize,
    quarantines: usize,
}

fn options() -> Result<Options> {
    let mut options = Options {
        samples: 2000,
        preload: 100_000,
        quarantines: 10_000,
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--samples" => options.samples = value()?.parse()?,
            "--preload" => options.preload = value()?.parse()?,
            "--quarantines" => options.quarantines = value()?.parse()?,
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    Ok(options)
}

fn signal(i: usize) -> Signal {
    let principal = format!("user-{}", i % 500);
    Signal {
        rule: AnomalyRule::DeniedPromotions,
        key: format!("principal:{principal}"),
        target: AnomalyTarget {
            principal: Some(principal),
            ..AnomalyTarget::default()
        },
        summary: "promotion denied (staging.signature_required)".into(),
    }
}

fn denial_record(i: usize, repository: &RepoName) -> AuditRecord {
    AuditRecord {
        time_millis: now_millis(),
        actor: Actor {
            principal: format!("user-{}", i % 500),
            auth_method: "token".into(),
            source: Some("10.0.0.7:51234".into()),
        },
        event: AuditEvent::PushRefused {
            repository: repository.clone(),
            action: Action::Push,
            reason: "stage prod is gated: artifacts reach prod only by promotion".into(),
        },
    }
}

async fn lookups(
    metadata: &Metadata,
    repo: &RepoName,
    digest: &Digest,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut taken = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let found = metadata.manifest(repo, digest).await?;
        taken.push(started.elapsed());
        if found.is_none_or(|m| m.quarantine.is_some()) {
            bail!("the benchmark manifest is missing or quarantined");
        }
    }
    Ok(taken)
}

fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn line(name: &str, samples: &mut [Duration]) -> Duration {
    let (p50, p99) = summary(samples);
    println!("  {name:<44} p50 {p50:>10.2?}  p99 {p99:>10.2?}");
    p50
}

pub async fn run() -> Result<()> {
    let options = options()?;
    let repo: RepoName = "prod/team/app".parse()?;
    let dir = tempfile::tempdir()?;
    let metadata = Metadata::open_sqlite(&dir.path().join("metadata.db")).await?;
    // Never trips: the benchmark measures the cost of counting, which every signal pays.
    let tripwire = Tripwire {
        threshold: u32::MAX,
        window_ms: 600_000,
        action: AnomalyAction::LockPrincipal,
    };
    println!(
        "anomaly signals and quarantine lookups, {} samples each, {} signals preloaded",
        options.samples, options.preload
    );
    let now = now_millis();
    for i in 0..options.preload {
        metadata.observe_signal(&signal(i), tripwire, now).await?;
    }

    let mut append = Vec::with_capacity(options.samples);
    let mut observe = Vec::with_capacity(options.samples);
    for i in 0..options.samples {
        let started = Instant::now();
        metadata.record_events(&[denial_record(i, &repo)]).await?;
        append.push(started.elapsed());
        let started = Instant::now();
        metadata
            .observe_signal(&signal(i), tripwire, now_millis())
            .await?;
        observe.push(started.elapsed());
    }
    println!("request path of a denied promotion:");
    let append_p50 = line("audit entry the denial already appends", &mut append);
    let observe_p50 = line("anomaly signal (insert + window count)", &mut observe);
    println!(
        "  signal / audit append (p50): {:.2}",
        observe_p50.as_secs_f64() / append_p50.as_secs_f64()
    );

    // A manifest in a gated repository, as a promotion leaves it (rows only: the bench reads
    // metadata, never blob bytes).
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"layer");
    for blob in [&config, &layer] {
        metadata.commit_blob(&repo, blob, 2, &[]).await?;
    }
    let content = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 2}],
    }))?;
    let digest = Digest::sha256_of(&content);
    let parsed =
        ParsedManifest::parse(Some("application/vnd.oci.image.manifest.v1+json"), &content)?;
    metadata
        .put_manifest(
            &repo,
            ManifestUpload {
                digest: &digest,
                manifest: &parsed,
                content: &content,
            },
            None,
            "bench",
            |_| Ok(Vec::new()),
        )
        .await?;

    println!(
        "request path of a pull from a gated stage (the manifest query carries the quarantine):"
    );
    let mut clean = lookups(&metadata, &repo, &digest, options.samples).await?;
    let clean_p50 = line("manifest lookup, no quarantines", &mut clean);
    let quarantine_tripwire = Tripwire {
        threshold: 1,
        window_ms: 600_000,
        action: AnomalyAction::QuarantineArtifact,
    };
    for i in 0..options.quarantines {
        let other = Digest::sha256_of(format!("tampered {i}").as_bytes());
        let tampered = Signal {
            rule: AnomalyRule::TamperedEvidence,
            key: format!("artifact:{other}"),
            target: AnomalyTarget {
                digest: Some(other),
                ..AnomalyTarget::default()
            },
            summary: "bench".into(),
        };
        metadata
            .observe_signal(&tampered, quarantine_tripwire, now_millis())
            .await?;
    }
    let mut crowded = lookups(&metadata, &repo, &digest, options.samples).await?;
    let crowded_p50 = line(
        &format!(
            "manifest lookup, {} other digests quarantined",
            options.quarantines
        ),
        &mut crowded,
    );
    println!(
        "  crowded / clean (p50): {:.2}",
        crowded_p50.as_secs_f64() / clean_p50.as_secs_f64()
    );
    Ok(())
}
