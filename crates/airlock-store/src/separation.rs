//! The facts separation of duties needs beyond a promotion's own rows: the append-only record of
//! everyone who contributed a digest to a repository path (pushed it, or pushed evidence about
//! it), kept across deletes and re-pushes, and who vouched for a principal (created its account,
//! granted its roles).

use std::collections::BTreeMap;

use airlock_core::{Digest, Grant, ParsedManifest, RepoName, Tag, Vouchers};
use sqlx::Row;

use crate::error::StoreError;
use crate::metadata::Metadata;

/// Records, inside a manifest push's transaction, that `principal` contributed to the artifacts
/// of `repo`'s path: it pushed `digest`; and, when the manifest names a subject or the tag is a
/// digest-derived tag (cosign's `sha256-<hex>.sig`), it pushed evidence about that digest. The
/// record is append-only: deleting the manifest does not remove it.
pub(crate) async fn record_contributions(
    tx: &mut sqlx::AnyConnection,
    repo: &RepoName,
    digest: &Digest,
    manifest: &ParsedManifest,
    tag: Option<&Tag>,
    principal: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut contributions = vec![(digest.clone(), "push")];
    if let Some(subject) = &manifest.subject {
        contributions.push((subject.clone(), "evidence"));
    }
    if let Some(subject) = tag.and_then(|t| airlock_core::promotion::digest_tag_subject(t.as_str()))
    {
        contributions.push((subject, "evidence"));
    }
    for (digest, kind) in contributions {
        sqlx::query(
            "INSERT INTO artifact_contributors
             (repository_path, digest, principal, kind, first_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(repo.path())
        .bind(digest.to_string())
        .bind(principal)
        .bind(kind)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Everyone who contributed to an artifact of a path, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contributors {
    /// Who pushed the manifest, or a manifest it contains, into a repository of the path.
    pub pushers: Vec<String>,
    /// Who pushed evidence about it (a manifest naming it as subject, a tag-scheme tag).
    pub builders: Vec<String>,
}

impl Metadata {
    /// Everyone who ever contributed `digest` (or a manifest it contains, at any depth) to a
    /// repository of `repository_path`, in any stage, including manifests deleted since.
    pub async fn contributors(
        &self,
        repository_path: &str,
        digest: &str,
    ) -> Result<Contributors, StoreError> {
        let rows = sqlx::query(
            "WITH RECURSIVE down(d) AS (SELECT $2 COLLATE \"binary\" UNION SELECT r.child FROM manifest_references r
                                        JOIN down ON r.digest = down.d WHERE r.kind = 'manifest')
             SELECT DISTINCT principal, kind FROM artifact_contributors
             WHERE repository_path = $1
               AND ((kind = 'push' AND digest IN (SELECT d FROM down))
                    OR (kind = 'evidence' AND digest = $2))
             ORDER BY principal",
        )
        .bind(repository_path)
        .bind(digest)
        .fetch_all(self.pool())
        .await?;
        let mut contributors = Contributors::default();
        for row in rows {
            let principal: String = row.get("principal");
            match row.get::<String, _>("kind").as_str() {
                "push" => contributors.pushers.push(principal),
                _ => contributors.builders.push(principal),
            }
        }
        Ok(contributors)
    }

    /// Who vouched for each of `names`: who created its account and who granted each of its
    /// role bindings (as recorded; bindings whose role or scope no longer parse are left out), and
    /// who added its API keys, and who ever reset its password (read from the `password.reset`
    /// audit entries, appended in the same transaction as each reset).
    /// Names without a principal are left out.
    pub async fn vouchers(&self, names: &[&str]) -> Result<BTreeMap<String, Vouchers>, StoreError> {
        let mut out = BTreeMap::new();
        // Who reset whose password: the audit log records every reset (appended in the reset's
        // transaction); read once for all `names`.
        let mut resetters: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if !names.is_empty() {
            // The entries are parsed here rather than with the engine's JSON functions, which
            // SQLite and PostgreSQL spell differently. An entry that is not JSON names nobody.
            let entries: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT entry FROM audit_entries WHERE kind = 'password.reset' ORDER BY idx",
            )
            .fetch_all(self.pool())
            .await?;
            let mut rows = std::collections::BTreeSet::new();
            for entry in entries {
                let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&entry) else {
                    continue;
                };
                let target = entry.pointer("/subject/name").and_then(|v| v.as_str());
                let resetter = entry.pointer("/actor/principal").and_then(|v| v.as_str());
                if let (Some(target), Some(resetter)) = (target, resetter) {
                    rows.insert((target.to_string(), resetter.to_string()));
                }
            }
            for (target, resetter) in rows {
                if names.contains(&target.as_str()) {
                    resetters.entry(target).or_default().push(resetter);
                }
            }
        }
        for name in names {
            let principal = sqlx::query("SELECT id, created_by FROM principals WHERE name = $1")
                .bind(name)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next();
            let Some(principal) = principal else {
                continue;
            };
            let id: i64 = principal.get("id");
            let grants = sqlx::query(
                "SELECT role, scope, expires_at, granted_by FROM role_bindings
                 WHERE principal_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .filter_map(|row| {
                let grant = Grant {
                    role: row.get::<String, _>("role").parse().ok()?,
                    scope: row.get::<String, _>("scope").parse().ok()?,
                    expires_at_millis: row.get("expires_at"),
                };
                Some((grant, row.get::<String, _>("granted_by")))
            })
            .collect();
            // Whoever added one of its API keys (revoked or expired ones too) could act as it.
            let key_adders: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT created_by FROM credentials
                 WHERE principal_id = $1 AND kind = 'api_key' AND created_by IS NOT NULL
                 ORDER BY created_by",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await?;
            // Whoever reset its password learned or chose a password of it, so could act as it,
            // even after it was changed.
            let password_resetters = resetters.get(*name).cloned().unwrap_or_default();
            out.insert(
                name.to_string(),
                Vouchers {
                    created_by: principal.get("created_by"),
                    grants,
                    key_adders,
                    password_resetters,
                },
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::metadata::ManifestUpload;

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// `content` as an image manifest (one config blob, `subject` if given).
    /// `subject` is the subject's digest and size.
    fn document(seed: &str, subject: Option<(&Digest, usize)>) -> (String, Digest) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let config_digest = Digest::sha256_of(config.as_bytes());
        let subject = subject
            .map(|(s, size)| {
                format!(
                    ",\"subject\":{{\"mediaType\":\"{MANIFEST}\",\"digest\":\"{s}\",\"size\":{size}}}"
                )
            })
            .unwrap_or_default();
        let content = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[]{subject}}}",
            config.len()
        );
        (content, config_digest)
    }

    /// `by` pushes the document for `seed` into `repo` (with `tag`); returns its digest.
    async fn push(
        meta: &Metadata,
        repo: &RepoName,
        seed: &str,
        subject: Option<(&Digest, usize)>,
        tag: Option<&str>,
        by: &str,
    ) -> Digest {
        let (content, config_digest) = document(seed, subject);
        let config = format!("{{\"seed\":\"{seed}\"}}");
        meta.commit_blob(repo, &config_digest, config.len() as u64, &[])
            .await
            .unwrap();
        let digest = Digest::sha256_of(content.as_bytes());
        let parsed = ParsedManifest::parse(Some(MANIFEST), content.as_bytes()).unwrap();
        let tag = tag.map(|t| Tag::from_str(t).unwrap());
        meta.put_manifest(
            repo,
            ManifestUpload {
                digest: &digest,
                manifest: &parsed,
                content: content.as_bytes(),
            },
            tag.as_ref(),
            by,
            |_| Ok(vec![]),
        )
        .await
        .unwrap();
        digest
    }

    #[tokio::test]
    async fn contributors_outlive_deletes_and_re_pushes() {
        for meta in crate::testing::engines().await {
            let dev = RepoName::from_str("dev/team/app").unwrap();
            let other = RepoName::from_str("dev/other/app").unwrap();
            let digest = push(&meta, &dev, "app", None, None, "alice").await;
            assert!(meta.delete_manifest(&dev, &digest, &[]).await.unwrap());
            push(&meta, &dev, "app", None, None, "bob").await;
            // Evidence by subject and by cosign tag; a push of the same bytes under another path.
            let app_size = document("app", None).0.len();
            push(
                &meta,
                &dev,
                "sbom",
                Some((&digest, app_size)),
                None,
                "carol",
            )
            .await;
            let sig_tag = format!("sha256-{}.sig", digest.hex());
            push(&meta, &dev, "sig", None, Some(&sig_tag), "dan").await;
            push(&meta, &other, "app", None, None, "eve").await;

            let found = meta
                .contributors("team/app", &digest.to_string())
                .await
                .unwrap();
            assert_eq!(found.pushers, ["alice", "bob"]);
            assert_eq!(found.builders, ["carol", "dan"]);
            assert_eq!(
                meta.pushed_by(dev.as_str(), &digest.to_string())
                    .await
                    .unwrap()
                    .as_deref(),
                Some("bob"),
                "the repository row only knows the latest pusher"
            );
        }
    }

    #[tokio::test]
    async fn the_contributor_record_is_append_only() {
        for meta in crate::testing::engines().await {
            let dev = RepoName::from_str("dev/team/app").unwrap();
            push(&meta, &dev, "app", None, None, "alice").await;
            for sql in [
                "DELETE FROM artifact_contributors",
                "UPDATE artifact_contributors SET principal = 'nobody'",
            ] {
                let err = sqlx::query(sql).execute(meta.pool()).await.unwrap_err();
                assert!(err.to_string().contains("append-only"), "{sql}: {err}");
            }
        }
    }

    #[tokio::test]
    async fn the_migration_backfills_contributors_from_what_older_versions_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let hex = "ab".repeat(32);
        {
            // The schema before this migration, with data an older version wrote.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(false);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(8, &pool)
                .await
                .unwrap();
            let entry = |kind: &str, actor: &str, subject: String, details: &str| {
                format!(
                    r#"{{"actor":{{"auth_method":"password","principal":"{actor}"}},"details":{details},"outcome":"success","subject":{subject},"time":"2026-01-01T00:00:00.000Z","type":"{kind}","v":1}}"#
                )
            };
            let entries = [
                // alice pushed sha256:ab.. into dev/team/app, and it was deleted since.
                entry(
                    "manifest.pushed",
                    "alice",
                    format!(
                        r#"{{"digest":"sha256:{hex}","kind":"artifact","repository":"dev/team/app"}}"#
                    ),
                    r#"{"media_type":"x"}"#,
                ),
                // carol pushed a referrer of it, dan its cosign signature by tag.
                entry(
                    "manifest.pushed",
                    "carol",
                    format!(
                        r#"{{"digest":"sha256:{}","kind":"artifact","repository":"dev/team/app"}}"#,
                        "cd".repeat(32)
                    ),
                    &format!(r#"{{"media_type":"x","subject":"sha256:{hex}"}}"#),
                ),
                entry(
                    "tag.moved",
                    "dan",
                    format!(
                        r#"{{"kind":"tag","repository":"dev/team/app","tag":"sha256-{hex}.sig"}}"#
                    ),
                    r#"{"digest":"sha256:00","previous":null}"#,
                ),
                // A tag that only looks similar names nothing.
                entry(
                    "tag.moved",
                    "erin",
                    r#"{"kind":"tag","repository":"dev/team/app","tag":"sha256-abc.sig"}"#
                        .to_string(),
                    r#"{"digest":"sha256:00","previous":null}"#,
                ),
            ];
            for (index, entry) in entries.iter().enumerate() {
                sqlx::query("INSERT INTO audit_entries (idx, entry, kind, time_millis) VALUES ($1, $2, json_extract($3, '$.type'), 7)")
                    .bind(index as i64)
                    .bind(entry.as_bytes())
                    .bind(entry)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            // bob re-pushed it; the promotion copy into staging carries bob too.
            for repo in ["dev/team/app", "staging/team/app"] {
                sqlx::query("INSERT INTO repository_manifests (repository, digest, subject, created_at, pushed_by) VALUES ($1, $2, NULL, 9, 'bob')")
                    .bind(repo)
                    .bind(format!("sha256:{hex}"))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query("INSERT INTO promotions (id, repository_path, digest, source_stage, target_stage, tags, state, requested_by, requester, created_at, expires_at) VALUES ('prm_x', 'team/app', 'sha256:efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef', 'dev', 'staging', '[]', 'evaluating', 'rita', '{}', 42, 99)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        let found = meta
            .contributors("team/app", &format!("sha256:{hex}"))
            .await
            .unwrap();
        assert_eq!(found.pushers, ["alice", "bob"]);
        assert_eq!(found.builders, ["carol", "dan"]);
        let legacy = meta.promotion("prm_x").await.unwrap().unwrap();
        assert_eq!(legacy.evaluating_since, Some(42));
        assert_eq!(legacy.claim.as_deref(), Some("legacy-prm_x"));
    }

    #[tokio::test]
    async fn whoever_reset_a_password_vouches_for_the_principal_even_after_it_changed() {
        use airlock_core::{Actor, AuditEvent, AuditRecord};

        use crate::PasswordChange;

        for meta in crate::testing::engines().await {
            let carol = meta
                .create_principal("carol", "user", "admin", &[])
                .await
                .unwrap();
            meta.create_principal("dave", "user", "admin", &[])
                .await
                .unwrap();
            let by = |who: &str, event| AuditRecord {
                time_millis: 1,
                actor: Actor {
                    principal: who.into(),
                    auth_method: "password".into(),
                    source: None,
                },
                event,
            };
            let reset = by(
                "eve",
                AuditEvent::PasswordReset {
                    principal: "carol".into(),
                    generated: true,
                },
            );
            meta.replace_password(carol.id, "h1", PasswordChange::Reset, &[reset])
                .await
                .unwrap();
            // Carol's own change (after the reset) does not undo what eve could do meanwhile.
            let changed = by(
                "carol",
                AuditEvent::PasswordChanged {
                    principal: "carol".into(),
                },
            );
            meta.replace_password(carol.id, "h2", PasswordChange::ByUser, &[changed])
                .await
                .unwrap();
            let vouchers = meta.vouchers(&["carol", "dave"]).await.unwrap();
            assert_eq!(
                vouchers["carol"].password_resetters,
                vec!["eve".to_string()]
            );
            assert!(vouchers["dave"].password_resetters.is_empty());
        }
    }

    #[tokio::test]
    async fn reading_password_resets_uses_the_kind_index_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("m.db"))
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        crate::metadata::migrator(crate::Backend::Sqlite)
            .run(&pool)
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT entry FROM audit_entries WHERE kind = 'password.reset'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let detail: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            detail.iter().any(|d| d.contains("audit_entries_by_kind")),
            "{detail:?}"
        );
    }
}
