//! Catalog reads: repositories of a stage, a repository's tags with their digests, a channel
//! tag's history and the promotion that brought an artifact into a stage.
//!
//! Every list is one page: a range scan of a primary key or index after a cursor, bounded by
//! `LIMIT`, so its cost follows the page, not the table:
//! - repositories: the `repositories` primary key (name range of a stage), each checked for a
//!   manifest through the `repository_manifests` primary key;
//! - tags: the `tags` primary key `(repository, name)`;
//! - channel history: `channel_history_by_tag (repository, tag, id)`, newest first;
//! - the promotion into a stage: the unique partial index `promotions_live`.

use airlock_core::{Digest, Tag};
use sqlx::{FromRow, Row};

use crate::error::StoreError;
use crate::metadata::Metadata;
use crate::promotion::{ChannelMove, FreezeRow, PromotionRow, promotion_from_row};

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
const PROMOTION_INTO: &str = "SELECT * FROM promotions
     WHERE repository_path = $1 AND digest = $2 AND target_stage = $3
       AND state IN ('evaluating', 'pending_approval', 'promoted')
       AND state = 'promoted'";

impl Metadata {
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

    /// The promotion that brought `digest` of `repository_path` into `stage`, if one did.
    pub async fn promotion_into(
        &self,
        repository_path: &str,
        digest: &str,
        stage: &str,
    ) -> Result<Option<PromotionRow>, StoreError> {
        sqlx::query(PROMOTION_INTO)
            .bind(repository_path)
            .bind(digest)
            .bind(stage)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(promotion_from_row)
            .transpose()
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
                "USING PRIMARY KEY (repository=?)",
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
                PROMOTION_INTO,
                &["a", "sha256:00", "prod"][..],
                "SEARCH promotions USING INDEX promotions_live (repository_path=? AND digest=? AND target_stage=?)",
            ),
        ] {
            let plan = plan(&metadata, sql, binds).await;
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
