//! Witness cosigning records (migration 0031): the cosignatures this log's witnesses returned and
//! where each witness stands (`audit_cosignatures`, `audit_witness_status`), and, for airlock as a
//! witness of other logs, the newest checkpoint it cosigned per origin (`witnessed_logs`), which
//! only moves forward by compare-and-swap.

use sqlx::Row;

use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// Where one configured witness stands for this log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessStatusRow {
    /// The witness's verifier key.
    pub witness: String,
    /// The largest tree size it cosigned for this log (0 before the first).
    pub cosigned_size: u64,
    /// Why the last submission failed, or `None` after a cosignature.
    pub last_error: Option<String>,
    /// When this row last changed, in milliseconds since the epoch.
    pub updated_at: i64,
}

/// The newest checkpoint this witness cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedLogRow {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: [u8; 32],
    /// The checkpoint as received, with this witness's cosignature line appended.
    pub checkpoint: String,
}

impl Metadata {
    /// Stores (or replaces) `witness`'s cosignature line on the checkpoint of `size`.
    pub async fn record_cosignature(
        &self,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_cosignatures (size, witness, line, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line,
             created_at = excluded.created_at",
        )
        .bind(size as i64)
        .bind(witness)
        .bind(line)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The cosignature lines stored for the checkpoint of `size`, ordered by witness key.
    pub async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT line FROM audit_cosignatures WHERE size = $1 ORDER BY witness",
        )
        .bind(size as i64)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records where `witness` stands: the size it has cosigned and the last failure, if any.
    pub async fn set_witness_status(
        &self,
        witness: &str,
        cosigned_size: u64,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_witness_status (witness, cosigned_size, last_error, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (witness) DO UPDATE SET cosigned_size = excluded.cosigned_size,
             last_error = excluded.last_error, updated_at = excluded.updated_at",
        )
        .bind(witness)
        .bind(cosigned_size as i64)
        .bind(last_error)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every witness status row, ordered by witness key.
    pub async fn witness_statuses(&self) -> Result<Vec<WitnessStatusRow>, StoreError> {
        sqlx::query(
            "SELECT witness, cosigned_size, last_error, updated_at FROM audit_witness_status
             ORDER BY witness",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(WitnessStatusRow {
                witness: row.try_get("witness")?,
                cosigned_size: row.try_get::<i64, _>("cosigned_size")? as u64,
                last_error: row.try_get("last_error")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
    }

    /// The newest checkpoint this witness cosigned for `origin`, if any.
    pub async fn witnessed_log(&self, origin: &str) -> Result<Option<WitnessedLogRow>, StoreError> {
        let row =
            sqlx::query("SELECT size, root, checkpoint FROM witnessed_logs WHERE origin = $1")
                .bind(origin)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next();
        row.map(|row| {
            let root: Vec<u8> = row.try_get("root")?;
            let root = <[u8; 32]>::try_from(root.as_slice()).map_err(|_| {
                StoreError::Corrupt(format!("witnessed_logs root of {origin} is not 32 bytes"))
            })?;
            Ok(WitnessedLogRow {
                size: row.try_get::<i64, _>("size")? as u64,
                root,
                checkpoint: row.try_get("checkpoint")?,
            })
        })
        .transpose()
    }

    /// Moves `origin`'s record to `new`, only if it is still at `expected_size` (`None`: no
    /// record yet). Returns whether it moved: `false` means another request moved it first, and
    /// the caller answers with the size it moved to. The check and the write are one statement,
    /// so two requests can never both pass the same check (no rollback by a slower request).
    pub async fn advance_witnessed_log(
        &self,
        origin: &str,
        expected_size: Option<u64>,
        new: &WitnessedLogRow,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = match expected_size {
            None => {
                sqlx::query(
                    "INSERT INTO witnessed_logs (origin, size, root, checkpoint, updated_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin) DO NOTHING",
                )
                .bind(origin)
                .bind(new.size as i64)
                .bind(new.root.to_vec())
                .bind(&new.checkpoint)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?
            }
            Some(expected) => sqlx::query(
                "UPDATE witnessed_logs SET size = $1, root = $2, checkpoint = $3, updated_at = $4
                     WHERE origin = $5 AND size = $6",
            )
            .bind(new.size as i64)
            .bind(new.root.to_vec())
            .bind(&new.checkpoint)
            .bind(now_millis())
            .bind(origin)
            .bind(expected as i64)
            .execute(&mut *tx)
            .await?,
        };
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(size: u64, byte: u8) -> WitnessedLogRow {
        WitnessedLogRow {
            size,
            root: [byte; 32],
            checkpoint: format!("origin\n{size}\n...\n"),
        }
    }

    #[tokio::test]
    async fn witnessed_logs_move_only_from_the_expected_size() {
        for meta in crate::testing::engines().await {
            assert_eq!(meta.witnessed_log("log.test/a").await.unwrap(), None);
            assert!(
                meta.advance_witnessed_log("log.test/a", None, &row(5, 1))
                    .await
                    .unwrap()
            );
            // A second first contact, or a request from a stale size, does not move it.
            assert!(
                !meta
                    .advance_witnessed_log("log.test/a", None, &row(9, 2))
                    .await
                    .unwrap()
            );
            assert!(
                !meta
                    .advance_witnessed_log("log.test/a", Some(3), &row(9, 2))
                    .await
                    .unwrap()
            );
            assert_eq!(
                meta.witnessed_log("log.test/a").await.unwrap(),
                Some(row(5, 1))
            );
            assert!(
                meta.advance_witnessed_log("log.test/a", Some(5), &row(9, 2))
                    .await
                    .unwrap()
            );
            assert_eq!(
                meta.witnessed_log("log.test/a").await.unwrap(),
                Some(row(9, 2))
            );
            assert_eq!(meta.witnessed_log("log.test/b").await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn cosignatures_and_witness_status_are_kept_per_witness() {
        for meta in crate::testing::engines().await {
            meta.record_cosignature(7, "w2+key", "— w2 AAA\n")
                .await
                .unwrap();
            meta.record_cosignature(7, "w1+key", "— w1 BBB\n")
                .await
                .unwrap();
            meta.record_cosignature(7, "w1+key", "— w1 CCC\n")
                .await
                .unwrap();
            assert_eq!(
                meta.cosignatures(7).await.unwrap(),
                vec!["— w1 CCC\n".to_string(), "— w2 AAA\n".to_string()]
            );
            assert!(meta.cosignatures(8).await.unwrap().is_empty());

            meta.set_witness_status("w1+key", 7, None).await.unwrap();
            meta.set_witness_status("w1+key", 7, Some("422: rewritten"))
                .await
                .unwrap();
            let statuses = meta.witness_statuses().await.unwrap();
            assert_eq!(statuses.len(), 1);
            assert_eq!(statuses[0].cosigned_size, 7);
            assert_eq!(statuses[0].last_error.as_deref(), Some("422: rewritten"));
        }
    }
}
