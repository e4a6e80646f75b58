//! Refused pushes, aggregated per principal, repository and minute, and capped per principal and
//! minute.
//!
//! A write into a gated stage is refused by the stage rules and recorded as `push.refused`. A
//! client that retries in a loop (or a principal probing) would otherwise add one audit entry
//! per request; like failed authentications (`auth_failures`, see `access.rs`), refusals are
//! counted per minute and only the first of each principal, repository and minute is appended.
//! The repository name is the client's choice, so a principal refused in many repositories is
//! also capped: at most [`REFUSED_PUSH_ENTRIES_PER_MINUTE`] entries per principal and minute,
//! across repositories; refusals in further repositories in that minute are only counted. The
//! count is returned so the caller can report every refusal to the anomaly rule.

use airlock_core::AuditRecord;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::Metadata;

/// The most `push.refused` audit entries one principal adds in one minute, across repositories.
pub const REFUSED_PUSH_ENTRIES_PER_MINUTE: i64 = 10;

impl Metadata {
    /// Counts a refused push by `principal` into `repository` in `minute` (Unix minutes) and
    /// appends `records` only if it is the first of that principal, repository and minute and
    /// the principal has refusals in no more than [`REFUSED_PUSH_ENTRIES_PER_MINUTE`]
    /// repositories in the minute (this one included), in one transaction. Returns the count for
    /// the repository in the minute so far. Counts older than an hour are forgotten.
    pub async fn record_refused_push(
        &self,
        principal: &str,
        repository: &str,
        minute: i64,
        records: &[AuditRecord],
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO refused_pushes (principal, repository, minute, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (principal, repository, minute) DO UPDATE SET count = refused_pushes.count + 1
             RETURNING count",
        )
        .bind(principal)
        .bind(repository)
        .bind(minute)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?;
        if count == 1 {
            // The first in this repository: logged unless the principal already reached the cap
            // in other repositories this minute. Each repository has one row per minute, so the
            // rows are the repositories refused so far.
            let repositories: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM refused_pushes WHERE principal = $1 AND minute = $2",
            )
            .bind(principal)
            .bind(minute)
            .fetch_one(&mut *tx)
            .await?;
            if repositories <= REFUSED_PUSH_ENTRIES_PER_MINUTE {
                append(&mut tx, records).await?;
            }
            sqlx::query("DELETE FROM refused_pushes WHERE minute < $1")
                .bind(minute - 60)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use airlock_core::{Action, Actor, AuditEvent};

    use super::*;
    use crate::metadata::now_millis;

    fn refused(repository: &str) -> AuditRecord {
        AuditRecord {
            time_millis: now_millis(),
            actor: Actor::system(),
            event: AuditEvent::PushRefused {
                repository: repository.parse().unwrap(),
                action: Action::Push,
                reason: "gated".into(),
            },
        }
    }

    #[tokio::test]
    async fn only_the_first_refusal_per_principal_repository_and_minute_is_logged() {
        for meta in crate::testing::engines().await {
            let before = meta.audit_entry_count().await.unwrap();
            for n in 1..=50 {
                let count = meta
                    .record_refused_push("mallory", "prod/a/b", 1000, &[refused("prod/a/b")])
                    .await
                    .unwrap();
                assert_eq!(count, n);
            }
            assert_eq!(meta.audit_entry_count().await.unwrap(), before + 1);
            // Another repository, another principal and the next minute each start their own count.
            for (principal, repository, minute) in [
                ("mallory", "prod/a/c", 1000),
                ("eve", "prod/a/b", 1000),
                ("mallory", "prod/a/b", 1001),
            ] {
                let count = meta
                    .record_refused_push(principal, repository, minute, &[refused(repository)])
                    .await
                    .unwrap();
                assert_eq!(count, 1, "{principal} {repository} {minute}");
            }
            assert_eq!(meta.audit_entry_count().await.unwrap(), before + 4);
        }
    }

    #[tokio::test]
    async fn refusals_in_many_repositories_are_logged_up_to_the_cap_per_principal_and_minute() {
        for meta in crate::testing::engines().await {
            let before = meta.audit_entry_count().await.unwrap();
            for n in 0..100 {
                let repository = format!("prod/x/{n}");
                let count = meta
                    .record_refused_push("mallory", &repository, 1000, &[refused(&repository)])
                    .await
                    .unwrap();
                assert_eq!(count, 1, "{repository}");
            }
            let capped = before + REFUSED_PUSH_ENTRIES_PER_MINUTE as u64;
            assert_eq!(meta.audit_entry_count().await.unwrap(), capped);
            // Another principal and the next minute have their own cap.
            for (principal, minute) in [("eve", 1000), ("mallory", 1001)] {
                meta.record_refused_push(principal, "prod/x/0", minute, &[refused("prod/x/0")])
                    .await
                    .unwrap();
            }
            assert_eq!(meta.audit_entry_count().await.unwrap(), capped + 2);
        }
    }
}
