//! Anomaly storage: the signals rules count, the anomalies they raise, and the actions those take
//! (principal locks, artifact quarantines, stage freezes). Counting a signal, raising the anomaly,
//! taking its action and appending its audit entry happen in one transaction, so the window is
//! shared by every replica, survives a restart, and no action exists without its log entry.

use airlock_core::{
    Actor, AnomalyAction, AnomalyRule, AnomalyTarget, AuditEvent, AuditRecord, Signal,
};
use sqlx::Row;

use crate::audit::append;
use crate::engine::SqlBuilder;
use crate::error::StoreError;
use crate::metadata::{Metadata, WriteTransaction};

/// A rule's settings, as storage needs them to count and act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tripwire {
    /// Signals in the window that raise the anomaly (at least 1).
    pub threshold: u32,
    /// The sliding window, in milliseconds.
    pub window_ms: i64,
    /// What to do when it trips.
    pub action: AnomalyAction,
}

/// A stored anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyRow {
    /// Its id.
    pub id: i64,
    /// The rule that raised it.
    pub rule: AnomalyRule,
    /// What the rule counted per.
    pub key: String,
    /// The action taken.
    pub action: AnomalyAction,
    /// Whether the action changed anything.
    pub applied: bool,
    /// What was observed.
    pub summary: String,
    /// What it is about.
    pub target: AnomalyTarget,
    /// Signals in the window when it tripped.
    pub observed: u32,
    /// The rule's threshold then.
    pub threshold: u32,
    /// The rule's window then, in seconds.
    pub window_secs: u64,
    /// `open` or `resolved`.
    pub status: String,
    /// When it was raised (ms).
    pub created_at: i64,
    /// When it was resolved (ms).
    pub resolved_at: Option<i64>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Why.
    pub resolution: Option<String>,
}

/// A quarantine on an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRow {
    /// The anomaly that quarantined it.
    pub anomaly_id: i64,
    /// Why.
    pub reason: String,
    /// The repository path (every stage of it) it holds the artifact in; `None` for a
    /// quarantine from before quarantines were scoped, which holds the digest everywhere.
    pub repository_path: Option<String>,
}

/// A quarantine in force: the digest it holds, since when, and the anomaly's quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveQuarantine {
    /// The quarantined manifest digest.
    pub digest: String,
    /// When it was quarantined (Unix ms).
    pub created_at: i64,
    /// The anomaly, why, and where.
    pub quarantine: QuarantineRow,
}

/// Why resolving an anomaly failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No anomaly has that id.
    #[error("there is no anomaly {0}")]
    NotFound(i64),
    /// It was already resolved.
    #[error("anomaly {0} is already resolved")]
    AlreadyResolved(i64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ResolveError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

const ANOMALY_COLUMNS: &str = "id, rule, key, action, applied, summary, target, observed, \
    threshold, window_secs, status, created_at, resolved_at, resolved_by, resolution";

fn anomaly_from_row(row: &sqlx::any::AnyRow) -> Result<AnomalyRow, StoreError> {
    let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("anomaly {what}: {e}"));
    let rule: String = row.get("rule");
    let action: String = row.get("action");
    let target: String = row.get("target");
    Ok(AnomalyRow {
        id: row.get("id"),
        rule: rule.parse().map_err(|e| corrupt("rule", e))?,
        key: row.get("key"),
        action: action.parse().map_err(|e| corrupt("action", e))?,
        applied: row.get::<i64, _>("applied") != 0,
        summary: row.get("summary"),
        target: serde_json::from_str(&target).map_err(|e| corrupt("target", e.to_string()))?,
        observed: row.get::<i64, _>("observed") as u32,
        threshold: row.get::<i64, _>("threshold") as u32,
        window_secs: row.get::<i64, _>("window_secs") as u64,
        status: row.get("status"),
        created_at: row.get("created_at"),
        resolved_at: row.get("resolved_at"),
        resolved_by: row.get("resolved_by"),
        resolution: row.get("resolution"),
    })
}

impl Metadata {
    /// Counts `signal` at `now` (ms), unless an anomaly for its rule and key is open (then it
    /// adds nothing). When the signals of its rule and key in the window reach the threshold, raises one, takes `tripwire.action` and appends
    /// the `anomaly.detected` entry, all in one transaction; returns the new anomaly.
    pub async fn observe_signal(
        &self,
        signal: &Signal,
        tripwire: Tripwire,
        now: i64,
    ) -> Result<Option<AnomalyRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let raised = match observe_signal_in(&mut tx, signal, tripwire, now).await? {
            Some(id) => anomaly_on(&mut tx, id).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(raised)
    }

    /// An anomaly by id.
    pub async fn anomaly(&self, id: i64) -> Result<Option<AnomalyRow>, StoreError> {
        anomaly_on(&mut *self.pool().acquire().await?, id).await
    }

    /// Up to `limit` anomalies with ids below `before` (from the newest when `None`), newest
    /// first, optionally of one status: a range over the primary key, or `anomalies_by_status`.
    pub async fn anomalies(
        &self,
        status: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        let rows = match status {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE id < $1
                     ORDER BY id DESC LIMIT $2"
                )))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            Some(status) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE status = $1 AND id < $2
                     ORDER BY id DESC LIMIT $3"
                )))
                .bind(status)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(anomaly_from_row).collect()
    }

    /// Resolves an open anomaly: undoes its action (lifts the lock, the quarantine, the freeze it
    /// set), restarts its rule's window for its key, and appends `anomaly.resolved` by `actor`,
    /// in one transaction.
    pub async fn resolve_anomaly(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<AnomalyRow, ResolveError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE id = $1"
        )))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or(ResolveError::NotFound(id))?;
        let anomaly = anomaly_from_row(&row)?;
        if anomaly.status != "open" {
            return Err(ResolveError::AlreadyResolved(id));
        }
        sqlx::query(
            "UPDATE anomalies SET status = 'resolved', resolved_at = $1, resolved_by = $2,
               resolution = $3 WHERE id = $4",
        )
        .bind(now)
        .bind(&actor.principal)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let locked: Vec<String> = sqlx::query_scalar(
            "DELETE FROM principal_locks WHERE anomaly_id = $1 RETURNING principal",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for principal in locked {
            sqlx::query(
                "UPDATE principals SET locked_by =
                   (SELECT MAX(anomaly_id) FROM principal_locks WHERE principal = $1)
                 WHERE name = $1",
            )
            .bind(&principal)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM artifact_quarantines WHERE anomaly_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let unfrozen: Vec<String> =
            sqlx::query_scalar("DELETE FROM stage_freezes WHERE anomaly_id = $1 RETURNING stage")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM anomaly_signals WHERE rule = $1 AND key = $2")
            .bind(anomaly.rule.as_str())
            .bind(&anomaly.key)
            .execute(&mut *tx)
            .await?;
        let mut records = vec![AuditRecord {
            time_millis: now,
            actor: actor.clone(),
            event: AuditEvent::AnomalyResolved {
                anomaly: id,
                rule: anomaly.rule,
                action: anomaly.action,
                reason: reason.to_string(),
            },
        }];
        records.extend(unfrozen.into_iter().map(|stage| AuditRecord {
            time_millis: now,
            actor: actor.clone(),
            event: AuditEvent::StageFreezeChanged {
                stage,
                frozen: false,
                reason: format!("anomaly {id} resolved: {reason}"),
            },
        }));
        append(&mut tx, &records).await?;
        tx.commit().await?;
        self.anomaly(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("anomaly {id} vanished")).into())
    }

    /// The quarantine in `repository_path` (any stage) on `digest`, on an index that contains
    /// it, or on a manifest it contains, at any depth, if any (the newest, when several anomalies
    /// set one): what a promotion of `digest` in that path would move.
    pub async fn quarantine(
        &self,
        repository_path: &str,
        digest: &str,
    ) -> Result<Option<QuarantineRow>, StoreError> {
        Ok(sqlx::query(
            "WITH RECURSIVE
               up(d) AS (SELECT $1 COLLATE \"binary\" UNION SELECT r.digest FROM manifest_references r
                         JOIN up ON r.child = up.d WHERE r.kind = 'manifest'),
               down(d) AS (SELECT $1 COLLATE \"binary\" UNION SELECT r.child FROM manifest_references r
                           JOIN down ON r.digest = down.d WHERE r.kind = 'manifest')
             SELECT anomaly_id, reason, repository_path FROM artifact_quarantines
             WHERE digest IN (SELECT d FROM up UNION SELECT d FROM down)
               AND (repository_path IS NULL OR repository_path = $2)
             ORDER BY anomaly_id DESC LIMIT 1",
        )
        .bind(digest)
        .bind(repository_path)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .map(|row| QuarantineRow {
            anomaly_id: row.get("anomaly_id"),
            reason: row.get("reason"),
            repository_path: row.get("repository_path"),
        }))
    }

    /// The newest `limit` quarantines in force (a resolved anomaly's are removed), newest
    /// first: what the stages board shows at a glance.
    pub async fn quarantines(&self, limit: u32) -> Result<Vec<ActiveQuarantine>, StoreError> {
        Ok(sqlx::query(
            "SELECT digest, anomaly_id, reason, repository_path, created_at FROM artifact_quarantines
             ORDER BY created_at DESC, digest, anomaly_id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|row| ActiveQuarantine {
            digest: row.get("digest"),
            created_at: row.get("created_at"),
            quarantine: QuarantineRow {
                anomaly_id: row.get("anomaly_id"),
                reason: row.get("reason"),
                repository_path: row.get("repository_path"),
            },
        })
        .collect())
    }

    /// Whether `digest` is in the lineage of `repository_path`: one of `repositories` (that
    /// path in each stage) holds it, or a promotion of that path moved it or is deciding to.
    pub async fn artifact_in_lineage(
        &self,
        repository_path: &str,
        repositories: &[airlock_core::RepoName],
        digest: &airlock_core::Digest,
    ) -> Result<bool, StoreError> {
        let digest = digest.to_string();
        // CASE, not a bare EXISTS: PostgreSQL answers a boolean and SQLite an integer.
        let mut query = SqlBuilder::new(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM promotions WHERE repository_path = ",
        );
        query
            .push_bind(repository_path)
            .push(" AND digest = ")
            .push_bind(digest.clone())
            .push(
                " AND state IN ('evaluating', 'pending_approval', 'promoted'))
                 OR EXISTS (SELECT 1 FROM repository_manifests WHERE digest = ",
            )
            .push_bind(digest)
            .push(" AND repository IN (")
            .push_list(repositories.iter().map(|r| r.as_str().to_string()))
            .push(")) THEN 1 ELSE 0 END");
        let found: Option<i64> = query
            .build_query_scalar(self.backend())?
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next();
        Ok(found.unwrap_or(0) != 0)
    }

    /// Forgets signals older than `before` (ms): no window reaches back that far.
    pub async fn prune_anomaly_signals(&self, before: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM anomaly_signals WHERE at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// An anomaly by id, on one connection (or inside the transaction that raised it, so a caller
/// has the row before it commits and nothing can fail after).
pub(crate) async fn anomaly_on(
    conn: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<Option<AnomalyRow>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE id = $1"
    )))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .next();
    row.as_ref().map(anomaly_from_row).transpose()
}

/// Counts `signal` at `now` in `tx` (see [`Metadata::observe_signal`]); returns the id of the
/// anomaly it raised, if it tripped its rule.
pub(crate) async fn observe_signal_in(
    tx: &mut WriteTransaction,
    signal: &Signal,
    tripwire: Tripwire,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let rule = signal.rule.as_str();
    let open: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM anomalies WHERE rule = $1 AND key = $2 AND status = 'open'",
    )
    .bind(rule)
    .bind(&signal.key)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .next();
    if open.is_some() {
        // Already raised and not yet resolved: nothing to count (a flood adds no rows).
        return Ok(None);
    }
    sqlx::query("INSERT INTO anomaly_signals (rule, key, at) VALUES ($1, $2, $3)")
        .bind(rule)
        .bind(&signal.key)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let observed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM anomaly_signals WHERE rule = $1 AND key = $2 AND at > $3",
    )
    .bind(rule)
    .bind(&signal.key)
    .bind(now - tripwire.window_ms)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .next()
    .ok_or(sqlx::Error::RowNotFound)?;
    if observed < i64::from(tripwire.threshold.max(1)) {
        return Ok(None);
    }
    let target = serde_json::to_string(&signal.target)
        .map_err(|e| StoreError::Corrupt(format!("anomaly target: {e}")))?;
    let window_secs = tripwire.window_ms / 1000;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO anomalies (rule, key, action, applied, summary, target, observed,
           threshold, window_secs, status, created_at)
         VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, 'open', $9) RETURNING id",
    )
    .bind(rule)
    .bind(&signal.key)
    .bind(tripwire.action.as_str())
    .bind(&signal.summary)
    .bind(&target)
    .bind(observed)
    .bind(i64::from(tripwire.threshold))
    .bind(window_secs)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .next()
    .ok_or(sqlx::Error::RowNotFound)?;
    let mut records = Vec::new();
    let applied = take_action(tx, id, signal, tripwire.action, now, &mut records).await?;
    if applied {
        sqlx::query("UPDATE anomalies SET applied = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    records.insert(
        0,
        AuditRecord {
            time_millis: now,
            actor: Actor::system(),
            event: AuditEvent::AnomalyDetected {
                anomaly: id,
                rule: signal.rule,
                key: signal.key.clone(),
                action: tripwire.action,
                applied,
                summary: signal.summary.clone(),
                target: signal.target.clone(),
                observed: observed as u32,
                threshold: tripwire.threshold,
                window_secs: window_secs as u64,
            },
        },
    );
    append(tx, &records).await?;
    Ok(Some(id))
}

/// Takes `action` for anomaly `id`; returns whether it changed anything. Freezes add their
/// `stage.frozen` record to `records`.
async fn take_action(
    tx: &mut WriteTransaction,
    id: i64,
    signal: &Signal,
    action: AnomalyAction,
    now: i64,
    records: &mut Vec<AuditRecord>,
) -> Result<bool, sqlx::Error> {
    let reason = format!("anomaly {id} ({}): {}", signal.rule, signal.summary);
    match action {
        AnomalyAction::Alert => Ok(false),
        AnomalyAction::LockPrincipal => {
            let Some(principal) = &signal.target.principal else {
                return Ok(false);
            };
            // The epoch bump kills every token the principal holds, at once.
            let locked = sqlx::query(
                "UPDATE principals SET locked_by = $1, authz_epoch = authz_epoch + 1 WHERE name = $2",
            )
            .bind(id)
            .bind(principal)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if locked == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO principal_locks (principal, anomaly_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(principal)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(true)
        }
        AnomalyAction::QuarantineArtifact => {
            // A quarantine holds the artifact in the repository path its signal named (the
            // artifact's lineage across stages), never the same bytes in other repositories.
            let (Some(digest), Some(repository)) =
                (&signal.target.digest, &signal.target.repository)
            else {
                return Ok(false);
            };
            sqlx::query(
                "INSERT INTO artifact_quarantines (digest, anomaly_id, reason, created_at,
                   repository_path)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(digest.to_string())
            .bind(id)
            .bind(&reason)
            .bind(now)
            .bind(repository.path())
            .execute(&mut **tx)
            .await?;
            Ok(true)
        }
        AnomalyAction::FreezeStage => {
            let Some(stage) = &signal.target.stage else {
                return Ok(false);
            };
            // A stage already frozen (by a person or another anomaly) keeps that freeze.
            let frozen = sqlx::query(
                "INSERT INTO stage_freezes (stage, reason, frozen_by, frozen_at, anomaly_id)
                 VALUES ($1, $2, 'airlock', $3, $4) ON CONFLICT (stage) DO NOTHING",
            )
            .bind(stage)
            .bind(&reason)
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if frozen > 0 {
                records.push(AuditRecord {
                    time_millis: now,
                    actor: Actor::system(),
                    event: AuditEvent::StageFreezeChanged {
                        stage: stage.clone(),
                        frozen: true,
                        reason,
                    },
                });
            }
            Ok(frozen > 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use airlock_core::{Digest, ParsedManifest, RepoName};

    use super::*;
    use crate::metadata::{ManifestUpload, now_millis};

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// The same image manifest (same bytes, same digest) stored in each of `repos`.
    async fn same_image_in(meta: &Metadata, repos: &[&RepoName]) -> Digest {
        let config = "{}";
        let config_digest = Digest::sha256_of(config.as_bytes());
        let content = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":2}},\"layers\":[]}}"
        );
        let digest = Digest::sha256_of(content.as_bytes());
        let parsed = ParsedManifest::parse(Some(MANIFEST), content.as_bytes()).unwrap();
        for repo in repos {
            meta.commit_blob(repo, &config_digest, 2, &[])
                .await
                .unwrap();
            let upload = ManifestUpload {
                digest: &digest,
                manifest: &parsed,
                content: content.as_bytes(),
            };
            meta.put_manifest(repo, upload, None, "tester", |_| Ok(vec![]))
                .await
                .unwrap();
        }
        digest
    }

    #[tokio::test]
    async fn a_quarantine_holds_the_artifact_in_its_repository_path_only() {
        for meta in crate::testing::engines().await {
            let evil = RepoName::from_str("dev/evil/x").unwrap();
            let team_dev = RepoName::from_str("dev/team/app").unwrap();
            let team_prod = RepoName::from_str("prod/team/app").unwrap();
            let digest = same_image_in(&meta, &[&evil, &team_dev, &team_prod]).await;
            let lineage = |path: &str| {
                ["dev", "staging", "prod"]
                    .map(|stage| RepoName::from_str(&format!("{stage}/{path}")).unwrap())
            };
            assert!(
                meta.artifact_in_lineage("team/app", &lineage("team/app"), &digest)
                    .await
                    .unwrap()
            );
            assert!(
                !meta
                    .artifact_in_lineage("other/app", &lineage("other/app"), &digest)
                    .await
                    .unwrap()
            );

            // Tampered evidence in dev/evil/x quarantines evil/x's copy, not team/app's.
            let signal = Signal {
                rule: AnomalyRule::TamperedEvidence,
                key: format!("artifact:evil/x@{digest}"),
                target: AnomalyTarget {
                    repository: Some(evil.clone()),
                    digest: Some(digest.clone()),
                    ..AnomalyTarget::default()
                },
                summary: "tampered".into(),
            };
            let tripwire = Tripwire {
                threshold: 1,
                window_ms: 60_000,
                action: AnomalyAction::QuarantineArtifact,
            };
            let anomaly = meta
                .observe_signal(&signal, tripwire, now_millis())
                .await
                .unwrap()
                .unwrap();
            assert!(anomaly.applied);
            let held = |repo: &RepoName| {
                let meta = meta.clone();
                let repo = repo.clone();
                let digest = digest.clone();
                async move {
                    let stored = meta.manifest(&repo, &digest).await.unwrap().unwrap();
                    let by_path = meta
                        .quarantine(repo.path(), &digest.to_string())
                        .await
                        .unwrap();
                    assert_eq!(stored.quarantine, by_path);
                    stored.quarantine
                }
            };
            let quarantine = held(&evil).await.expect("evil/x's copy is held");
            assert_eq!(quarantine.repository_path.as_deref(), Some("evil/x"));
            assert_eq!(held(&team_dev).await, None);
            assert_eq!(held(&team_prod).await, None);
            // It is the one quarantine in force.
            let active = meta.quarantines(10).await.unwrap();
            assert_eq!(active.len(), 1, "{active:?}");
            assert_eq!(active[0].digest, digest.to_string());
            assert_eq!(active[0].quarantine, quarantine);

            // A quarantine raised before quarantines were scoped (no path) holds it everywhere.
            sqlx::query(
                "UPDATE artifact_quarantines SET repository_path = NULL WHERE anomaly_id = $1",
            )
            .bind(anomaly.id)
            .execute(meta.pool())
            .await
            .unwrap();
            assert!(held(&team_prod).await.is_some());
        }
    }

    #[tokio::test]
    async fn an_authentication_failure_counts_its_signals_in_its_own_transaction() {
        for meta in crate::testing::engines().await {
            meta.create_principal("mallory", "user", "admin", &[])
                .await
                .unwrap();
            let signal = Signal {
                rule: AnomalyRule::AuthFailures,
                key: "principal:mallory".into(),
                target: AnomalyTarget {
                    principal: Some("mallory".into()),
                    ..AnomalyTarget::default()
                },
                summary: "2 failed authentications for mallory".into(),
            };
            let tripwire = Tripwire {
                threshold: 2,
                window_ms: 60_000,
                action: AnomalyAction::LockPrincipal,
            };
            let failed = |reason: &str| AuditRecord {
                time_millis: now_millis(),
                actor: Actor::system(),
                event: AuditEvent::AuthenticationFailed {
                    principal: "mallory".into(),
                    reason: reason.into(),
                },
            };
            let signals = [(signal, tripwire)];
            // The middle of a minute, so both failures fall in the same one.
            let now = now_millis().div_euclid(60_000) * 60_000 + 30_000;
            let first = meta
                .record_auth_failure(
                    "mallory",
                    Some("mallory"),
                    "192.0.2.7",
                    now,
                    &[failed("wrong password")],
                    &signals,
                )
                .await
                .unwrap();
            assert!(first.is_empty(), "one signal is below the threshold");
            let second = meta
                .record_auth_failure(
                    "mallory",
                    Some("mallory"),
                    "192.0.2.7",
                    now + 1,
                    &[failed("wrong password again")],
                    &signals,
                )
                .await
                .unwrap();
            assert_eq!(second.len(), 1, "the second signal trips the rule");
            assert!(second[0].applied);
            let principal = meta.principal_by_name("mallory").await.unwrap().unwrap();
            assert_eq!(principal.locked_by, Some(second[0].id));
            // The rate limiter's counts and the log, oldest first: one auth.failed entry for the
            // minute (the second failure's record is not appended), then the anomaly's.
            let (by_name, by_source) = meta
                .auth_failures("mallory", "192.0.2.7", now.div_euclid(60_000))
                .await
                .unwrap();
            assert_eq!((by_name, by_source), (2, 2));
            let kinds: Vec<String> = meta
                .audit_entries_newest(None, 10)
                .await
                .unwrap()
                .iter()
                .map(|e| {
                    let entry: serde_json::Value = serde_json::from_slice(&e.entry).unwrap();
                    entry["type"].as_str().unwrap_or_default().to_string()
                })
                .collect();
            assert_eq!(kinds, ["auth.failed", "anomaly.detected"], "{kinds:?}");
        }
    }
}
