//! Catalog reads: repositories of a stage, a repository's tags with their digests, a channel
//! tag's history and the promotion that brought an artifact into a stage.
//!
//! Every list is one page: a range scan of a primary key or index after a cursor, bounded by
//! `LIMIT`, so its cost follows the page, not the table:
//! - repositories: the `repositories` primary key (name range of a stage), each checked for a
//!   manifest through the `repository_manifests` primary key;
//! - tags: the `tags` primary key `(repository, name)`;
//! - channel history: `channel_history_by_tag (repository, tag, id)`, newest first;
//! - the promotions into a stage of a page's artifacts: the unique partial index
//!   `promotions_live`, their approvals the `approvals` primary key, the page's tags
//!   `tags_by_digest` (one statement each per page, not one per artifact);
//! - a repository's artifacts, oldest first: `repository_manifests_by_time`
//!   `(repository, created_at, digest)`;
//! - promotions, newest first: `promotions_by_time (created_at, id)`, or with a filter
//!   `promotions_by_state_time` / `promotions_by_path_time` (both filters: the path's index, the
//!   state checked on its rows).

use std::collections::HashMap;

use airlock_core::{Digest, PromotionState, Tag};
use sqlx::{FromRow, Row};

use crate::error::StoreError;
use crate::metadata::Metadata;
use crate::promotion::{ApprovalRow, ChannelMove, FreezeRow, PromotionRow, promotion_from_row};

/// The most values bound in one `IN (...)` list of a catalog read (both engines cap bound
/// values far above this).
const IN_LIST_MAX: usize = 1000;

/// A tag as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagRow {
    /// The tag.
    pub name: Tag,
    /// The manifest it names.
    pub digest: Digest,
    /// When it was last set (ms).
    pub updated_at: i64,
}

/// The smallest string above every string starting with `prefix` (repository names are ASCII).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0x7f {
            end.push(last + 1);
            return String::from_utf8_lossy(&end).into_owned();
        }
    }
    "\u{7f}".to_string()
}

/// Repositories with a manifest in a name range after a cursor: the `repositories` primary key.
const REPOSITORIES_PAGE: &str = "SELECT name FROM repositories r
     WHERE name >= $1 AND name < $2 AND name > $3
       AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository = r.name)
     ORDER BY name LIMIT $4";

/// A repository's tags after a cursor: the `tags` primary key.
const TAGS_PAGE: &str = "SELECT name, digest, updated_at FROM tags
     WHERE repository = $1 AND name > $2 ORDER BY name LIMIT $3";

/// A channel tag's moves before a cursor, newest first: `channel_history_by_tag`.
const CHANNEL_MOVES_PAGE: &str =
    "SELECT id, digest, promotion_id, action, moved_by, moved_at FROM channel_history
     WHERE repository = $1 AND tag = $2 AND id < $3 ORDER BY id DESC LIMIT $4";

/// The promotion that brought an artifact into a stage. The state terms repeat
/// `promotions_live`'s condition so SQLite uses that unique index.
const PROMOTIONS_INTO: &str = "SELECT * FROM promotions
     WHERE repository_path = $1 AND target_stage = $2
       AND state IN ('evaluating', 'pending_approval', 'promoted')
       AND state = 'promoted' AND digest IN (";

/// The tags of some digests in a repository (`$2...`, closed by the caller): `tags_by_digest`.
const TAGS_OF_DIGESTS: &str = "SELECT digest, name FROM tags WHERE repository = $1 AND digest IN (";

/// The approvals of some promotions (`$1...`, closed by the caller): the `approvals` primary key.
const APPROVALS_OF: &str =
    "SELECT promotion_id, principal, comment, created_at FROM approvals WHERE promotion_id IN (";

/// `$first, $first+1, ...`: `count` placeholders for an `IN (...)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A repository's artifacts (no signatures, attestations or other referrers) after a cursor,
/// oldest first: `repository_manifests_by_time`.
const ARTIFACTS_PAGE: &str = "SELECT digest, created_at FROM repository_manifests rm
     WHERE repository = $1 AND (created_at, digest) > ($2, $3) AND subject IS NULL
       AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = rm.repository
           AND t.digest = rm.digest AND substr(t.name, 1, 7) = 'sha256-')
       AND NOT EXISTS (SELECT 1 FROM evidence_manifests em WHERE em.repository = rm.repository
           AND em.digest = rm.digest)
     ORDER BY created_at, digest LIMIT $4";

/// Promotions before a cursor, newest first: `promotions_by_time`.
const PROMOTIONS_PAGE: &str = "SELECT * FROM promotions
     WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3";

/// Promotions of one state before a cursor, newest first: `promotions_by_state_time`.
const PROMOTIONS_PAGE_BY_STATE: &str = "SELECT * FROM promotions
     WHERE state = $1 AND (created_at, id) < ($2, $3)
     ORDER BY created_at DESC, id DESC LIMIT $4";

/// Promotions of one repository path before a cursor, newest first: `promotions_by_path_time`.
const PROMOTIONS_PAGE_BY_PATH: &str = "SELECT * FROM promotions
     WHERE repository_path = $1 AND (created_at, id) < ($2, $3)
     ORDER BY created_at DESC, id DESC LIMIT $4";

/// Promotions of one repository path and state before a cursor, newest first:
/// `promotions_by_path_time`, the state checked on the path's rows.
const PROMOTIONS_PAGE_BY_PATH_STATE: &str = "SELECT * FROM promotions
     WHERE repository_path = $1 AND (created_at, id) < ($2, $3) AND state = $4
     ORDER BY created_at DESC, id DESC LIMIT $5";

/// Where a page of a list ordered by time starts: the time (ms) and the tie-breaking key
/// (a promotion id, a digest) of the last entry of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCursor {
    /// The entry's time (ms).
    pub at: i64,
    /// The entry's key, ordering entries of the same time.
    pub key: String,
}

/// An artifact of a repository as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// The manifest digest.
    pub digest: String,
    /// When it entered the repository (ms).
    pub created_at: i64,
    /// Its tags in the repository, by name.
    pub tags: Vec<String>,
}

impl Metadata {
    /// Up to `limit` artifacts of `repository` after `after` (from the start when `None`),
    /// oldest first, each with its tags: the page `status` shows.
    pub async fn artifacts_page(
        &self,
        repository: &str,
        after: Option<&TimeCursor>,
        limit: u32,
    ) -> Result<Vec<ArtifactEntry>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(ARTIFACTS_PAGE)
            .bind(repository)
            .bind(after.map_or(i64::MIN, |c| c.at))
            .bind(after.map_or("", |c| c.key.as_str()))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        // The page's tags in one statement (`tags_by_digest`), not one per artifact.
        let mut tags: HashMap<String, Vec<String>> = HashMap::with_capacity(rows.len());
        for chunk in rows.chunks(IN_LIST_MAX) {
            let sql = format!(
                "{TAGS_OF_DIGESTS}{}) ORDER BY digest, name",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(repository);
            for (digest, _) in chunk {
                query = query.bind(digest);
            }
            for row in query.fetch_all(self.pool()).await? {
                tags.entry(row.try_get("digest")?)
                    .or_default()
                    .push(row.try_get("name")?);
            }
        }
        Ok(rows
            .into_iter()
            .map(|(digest, created_at)| ArtifactEntry {
                tags: tags.remove(&digest).unwrap_or_default(),
                digest,
                created_at,
            })
            .collect())
    }

    /// Up to `limit` promotions before `before` (from the newest when `None`), newest first,
    /// optionally only those in `state` and of `repository_path`.
    pub async fn promotions_page(
        &self,
        state: Option<PromotionState>,
        repository_path: Option<&str>,
        before: Option<&TimeCursor>,
        limit: u32,
    ) -> Result<Vec<PromotionRow>, StoreError> {
        let at = before.map_or(i64::MAX, |c| c.at);
        let key = before.map_or("", |c| c.key.as_str());
        let limit = i64::from(limit);
        let query = match (state, repository_path) {
            (None, None) => sqlx::query(PROMOTIONS_PAGE).bind(at).bind(key).bind(limit),
            (Some(state), None) => sqlx::query(PROMOTIONS_PAGE_BY_STATE)
                .bind(state)
                .bind(at)
                .bind(key)
                .bind(limit),
            (None, Some(path)) => sqlx::query(PROMOTIONS_PAGE_BY_PATH)
                .bind(path)
                .bind(at)
                .bind(key)
                .bind(limit),
            (Some(state), Some(path)) => sqlx::query(PROMOTIONS_PAGE_BY_PATH_STATE)
                .bind(path)
                .bind(at)
                .bind(key)
                .bind(state)
                .bind(limit),
        };
        query
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(promotion_from_row)
            .collect()
    }

    /// Up to `limit` repository names starting with `prefix` and after `last`, by name, that hold
    /// at least one manifest.
    pub async fn repositories_page(
        &self,
        prefix: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(REPOSITORIES_PAGE)
            .bind(prefix)
            .bind(prefix_end(prefix))
            .bind(last.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
    }

    /// Up to `limit` tags of `repository` after `last`, by name, with their digests and times.
    pub async fn tags_page(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TagRow>, StoreError> {
        sqlx::query_as(TAGS_PAGE)
            .bind(repository)
            .bind(last.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(|err| StoreError::undecodable("tags", err))
    }

    /// Up to `limit` moves of the channel tag `tag` in `repository` older than the move `before`
    /// (all when `None`), newest first, each with its id (the cursor of the next page).
    pub async fn channel_moves_page(
        &self,
        repository: &str,
        tag: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, ChannelMove)>, StoreError> {
        let rows = sqlx::query(CHANNEL_MOVES_PAGE)
            .bind(repository)
            .bind(tag)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, ChannelMove::from_row(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|err| StoreError::undecodable("channel_history", err))
    }

    /// For each of `digests`, the promotion that brought it into `stage` of `repository_path`
    /// (if one did), with its approvals oldest first: one statement for the
    /// promotions and one for their approvals (per [`IN_LIST_MAX`] digests), however many
    /// digests a page holds.
    pub async fn promotions_into(
        &self,
        repository_path: &str,
        digests: &[String],
        stage: &str,
    ) -> Result<HashMap<String, (PromotionRow, Vec<ApprovalRow>)>, StoreError> {
        let mut found = HashMap::with_capacity(digests.len());
        for chunk in digests.chunks(IN_LIST_MAX) {
            let sql = format!("{PROMOTIONS_INTO}{})", placeholders(3, chunk.len()));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(repository_path)
                .bind(stage);
            for digest in chunk {
                query = query.bind(digest);
            }
            for row in query.fetch_all(self.pool()).await? {
                let promotion = promotion_from_row(row)?;
                found.insert(promotion.digest.to_string(), (promotion, Vec::new()));
            }
        }
        let ids: Vec<String> = found.values().map(|(p, _)| p.id.clone()).collect();
        let mut by_id: HashMap<String, Vec<ApprovalRow>> = HashMap::new();
        for chunk in ids.chunks(IN_LIST_MAX) {
            let sql = format!("{APPROVALS_OF}{})", placeholders(1, chunk.len()));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.pool()).await? {
                let approval = ApprovalRow::from_row(&row)
                    .map_err(|err| StoreError::undecodable("approvals", err))?;
                by_id
                    .entry(row.try_get("promotion_id")?)
                    .or_default()
                    .push(approval);
            }
        }
        for (promotion, approvals) in found.values_mut() {
            *approvals = by_id.remove(&promotion.id).unwrap_or_default();
            approvals
                .sort_by(|a, b| (a.created_at, &a.principal).cmp(&(b.created_at, &b.principal)));
        }
        Ok(found)
    }

    /// Every stage freeze (at most one per stage).
    pub async fn freezes(&self) -> Result<Vec<FreezeRow>, StoreError> {
        sqlx::query_as(
            "SELECT stage, reason, frozen_by, frozen_at, anomaly_id FROM stage_freezes ORDER BY stage",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|err| StoreError::undecodable("stage_freezes", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql` with `binds` bound, one line per step.
    async fn plan(metadata: &Metadata, sql: &str, binds: &[&str]) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(metadata.pool()).await.unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every catalog page is a bounded range over a primary key or index, never a scan.
    #[tokio::test]
    async fn every_catalog_read_searches_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Metadata::open_sqlite(&dir.path().join("metadata.db"))
            .await
            .unwrap();
        for (sql, binds, expected) in [
            (
                REPOSITORIES_PAGE,
                &["dev/", "dev0", "", "10"][..],
                "SEARCH r USING COVERING INDEX sqlite_autoindex_repositories_1 (name>? AND name<?)",
            ),
            (
                REPOSITORIES_PAGE,
                &["dev/", "dev0", "", "10"][..],
                "SEARCH rm EXISTS USING COVERING INDEX repository_manifests_by_time (repository=?)",
            ),
            (
                TAGS_PAGE,
                &["dev/a", "", "10"][..],
                "SEARCH tags USING PRIMARY KEY (repository=? AND name>?)",
            ),
            (
                CHANNEL_MOVES_PAGE,
                &["prod/a", "stable", "5", "10"][..],
                "channel_history_by_tag (repository=? AND tag=? AND id<?)",
            ),
            (
                crate::metadata::REFERRERS,
                &["dev/a", "sha256:00", "x", "x"][..],
                "SEARCH rm USING COVERING INDEX repository_manifests_by_subject (repository=? AND subject=?)",
            ),
            (
                &format!("{TAGS_OF_DIGESTS}$2, $3) ORDER BY digest, name"),
                &["dev/a", "sha256:00", "sha256:01"][..],
                "SEARCH tags USING COVERING INDEX tags_by_digest (repository=? AND digest=?)",
            ),
            (
                &format!("{APPROVALS_OF}$1, $2)"),
                &["prm_a", "prm_b"][..],
                "SEARCH approvals USING PRIMARY KEY (promotion_id=?)",
            ),
            (
                &format!("{PROMOTIONS_INTO}$3, $4)"),
                &["a", "prod", "sha256:00", "sha256:01"][..],
                "SEARCH promotions USING INDEX promotions_live (repository_path=? AND digest=? AND target_stage=?)",
            ),
            (
                ARTIFACTS_PAGE,
                &["dev/a", "0", "", "10"][..],
                "SEARCH rm USING INDEX repository_manifests_by_time (repository=? AND (created_at,digest)>(?,?))",
            ),
            (
                PROMOTIONS_PAGE,
                &["5", "x", "10"][..],
                "SEARCH promotions USING INDEX promotions_by_time ((created_at,id)<(?,?))",
            ),
            (
                PROMOTIONS_PAGE_BY_STATE,
                &["promoted", "5", "x", "10"][..],
                "SEARCH promotions USING INDEX promotions_by_state_time (state=? AND (created_at,id)<(?,?))",
            ),
            (
                PROMOTIONS_PAGE_BY_PATH,
                &["team/app", "5", "x", "10"][..],
                "SEARCH promotions USING INDEX promotions_by_path_time (repository_path=? AND (created_at,id)<(?,?))",
            ),
            (
                PROMOTIONS_PAGE_BY_PATH_STATE,
                &["team/app", "5", "x", "promoted", "10"][..],
                "SEARCH promotions USING INDEX promotions_by_path_time (repository_path=? AND (created_at,id)<(?,?))",
            ),
        ] {
            let plan = plan(&metadata, sql, binds).await;
            assert!(
                !plan.contains("TEMP B-TREE"),
                "sorted outside the index: {sql}\n{plan}"
            );
            assert!(plan.contains(expected), "{sql}\n{plan}");
            assert!(!plan.contains("SCAN"), "{sql}\n{plan}");
        }
    }

    #[test]
    fn a_prefix_ends_just_above_its_last_character() {
        assert_eq!(prefix_end("prod/"), "prod0");
        assert_eq!(prefix_end("prod/team/a"), "prod/team/b");
        assert_eq!(prefix_end(""), "\u{7f}");
    }
}
