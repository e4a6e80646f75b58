//! Webhook storage: endpoints and the durable outbox of deliveries.
//!
//! Deliveries of audit events are enqueued by [`enqueue_for_records`], called from the audit
//! append inside the transaction of every change: an event commits with its deliveries or not at
//! all. Senders claim due deliveries with a lease (so two replicas never send one delivery at the
//! same time), and record each attempt's outcome.

use airlock_core::AuditRecord;
use airlock_core::webhook::{EventPattern, cloud_subject, subscribed};
use sqlx::{AnyConnection, Row};

use crate::audit::append;
use crate::engine::Backend;
use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// A webhook endpoint as stored (its secret only for the sender, see [`DueDelivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Its id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// The event patterns it subscribes to.
    pub events: Vec<String>,
    /// Who added it.
    pub created_by: String,
    /// When (ms).
    pub created_at: i64,
    /// When it was removed (ms), if it was.
    pub removed_at: Option<i64>,
    /// The PEM of the CA its receiver's certificate must chain to (`None`: the system's roots).
    pub ca_cert: Option<String>,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub endpoint_id: i64,
    /// The event kind (`promotion.promoted`).
    pub event_type: String,
    /// What the event is about.
    pub subject: String,
    /// The audit entry the event is, if any.
    pub audit_index: Option<i64>,
    /// `pending`, `delivered`, `dead` or `cancelled`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (ms).
    pub next_attempt_at: i64,
    /// HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was enqueued (ms).
    pub created_at: i64,
    /// When it was delivered (ms).
    pub delivered_at: Option<i64>,
}

/// A delivery claimed for sending, with what the sender needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery id.
    pub id: i64,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's HMAC key.
    pub secret: Vec<u8>,
    /// The endpoint's CA (PEM), if it names one.
    pub ca_cert: Option<String>,
    /// The event kind.
    pub event_type: String,
    /// What the event is about.
    pub subject: String,
    /// The audit entry index, if the event is one.
    pub audit_index: Option<i64>,
    /// The audit entry's canonical JSON, or the event's own data.
    pub data: Vec<u8>,
    /// When the event happened (ms).
    pub time_millis: i64,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// It failed; try again at `retry_at` (ms), or give up (`None`: dead-letter).
    Failed {
        /// The status, if the receiver answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again; `None` moves the delivery to `dead`.
        retry_at: Option<i64>,
    },
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_type, subject, audit_index, status, \
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

fn delivery_from_row(row: &sqlx::any::AnyRow) -> DeliveryRow {
    DeliveryRow {
        id: row.get("id"),
        endpoint_id: row.get("endpoint_id"),
        event_type: row.get("event_type"),
        subject: row.get("subject"),
        audit_index: row.get("audit_index"),
        status: row.get("status"),
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_status: row.get("last_status"),
        last_error: row.get("last_error"),
        created_at: row.get("created_at"),
        delivered_at: row.get("delivered_at"),
    }
}

fn webhook_from_row(row: &sqlx::any::AnyRow) -> Result<WebhookRow, StoreError> {
    let events: String = row.get("events");
    Ok(WebhookRow {
        id: row.get("id"),
        url: row.get("url"),
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?,
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        removed_at: row.get("removed_at"),
        ca_cert: row.get("ca_cert"),
    })
}

/// The active endpoints' ids and event patterns (JSON), read on `conn` inside the audit append's
/// transaction (which found some active).
pub(crate) async fn active_endpoint_events(
    conn: &mut AnyConnection,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE removed_at IS NULL ORDER BY id")
        .fetch_all(&mut *conn)
        .await
}

/// Enqueues a delivery of each record (appended at indexes from `first_index`) to every active
/// endpoint subscribed to its kind, on `conn` inside the caller's transaction. `endpoints` are the
/// active endpoints' ids and event patterns (JSON), read in that transaction by the audit append
/// ([`active_endpoint_events`]).
pub(crate) async fn enqueue_for_records(
    conn: &mut AnyConnection,
    endpoints: &[(i64, String)],
    records: &[AuditRecord],
    first_index: i64,
) -> Result<(), sqlx::Error> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<(i64, Vec<EventPattern>)> = endpoints
        .iter()
        .map(|(id, events)| {
            let patterns: Vec<String> = serde_json::from_str(events).unwrap_or_default();
            (
                *id,
                patterns.iter().filter_map(|p| p.parse().ok()).collect(),
            )
        })
        .collect();
    let now = now_millis();
    for (offset, record) in records.iter().enumerate() {
        let kind = record.event.kind();
        let mut subject = None;
        for (endpoint, patterns) in &endpoints {
            if !subscribed(patterns, kind) {
                continue;
            }
            let subject = subject.get_or_insert_with(|| cloud_subject(&record.event));
            sqlx::query(
                "INSERT INTO webhook_deliveries (endpoint_id, event_type, subject, audit_index,
                   time_millis, status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
            )
            .bind(endpoint)
            .bind(kind)
            .bind(subject.as_str())
            .bind(first_index + offset as i64)
            .bind(record.time_millis)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

impl Metadata {
    /// Adds an endpoint (with the CA its receiver's certificate must chain to, if any) and
    /// appends the record `audit(id)` builds, in one transaction.
    pub async fn add_webhook(
        &self,
        url: &str,
        events: &[String],
        secret: &[u8],
        ca_cert: Option<&str>,
        created_by: &str,
        audit: impl FnOnce(i64) -> AuditRecord,
    ) -> Result<WebhookRow, StoreError> {
        let events_json = serde_json::to_string(events)
            .map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?;
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (url, events, secret, ca_cert, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(url)
        .bind(&events_json)
        .bind(secret)
        .bind(ca_cert)
        .bind(created_by)
        .bind(now_millis())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?;
        append(&mut tx, &[audit(id)]).await?;
        tx.commit().await?;
        self.webhook(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("webhook {id} vanished")))
    }

    /// Removes an endpoint (its pending deliveries are cancelled) with `record`, and erases its
    /// secret: the row keeps its URL and events for the delivery history and the audit trail,
    /// but its HMAC key is replaced by an empty value (under `secure_delete`, so SQLite zeroes
    /// the old bytes instead of leaving them in free page space) and the write-ahead log is
    /// checkpointed and truncated, so the key is in neither database file afterwards. Returns
    /// whether it was active.
    pub async fn remove_webhook(&self, id: i64, record: AuditRecord) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let sqlite = self.backend() == Backend::Sqlite;
        // SQLite only: zero the old bytes in the file (PostgreSQL's old row versions are reclaimed
        // by VACUUM; see docs/webhooks.md).
        if sqlite {
            sqlx::query("PRAGMA secure_delete = ON")
                .execute(&mut *tx)
                .await?;
        }
        let removed = sqlx::query(
            "UPDATE webhook_endpoints SET removed_at = $1, secret = $2
             WHERE id = $3 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(Vec::<u8>::new())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'cancelled', last_error = 'endpoint removed'
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, &[record]).await?;
        if sqlite {
            sqlx::query("PRAGMA secure_delete = OFF")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if sqlite {
            self.truncate_wal().await;
        }
        Ok(true)
    }

    /// Copies the write-ahead log into the database and empties it, so bytes a change erased
    /// are no longer in the log's older frames. Best effort: a reader still on an older snapshot
    /// makes it give up after the busy timeout (logged); the next checkpoint overwrites them.
    async fn truncate_wal(&self) {
        let _slot = self.writer_slot().await;
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_all(self.pool())
            .await
        {
            Ok(rows) if rows.first().is_some_and(|(busy, _, _)| *busy == 0) => {}
            Ok(_) => {
                tracing::warn!("the write-ahead log could not be truncated (a reader was busy)")
            }
            Err(err) => tracing::warn!(error = %err, "checkpointing the write-ahead log failed"),
        }
    }

    /// An endpoint by id (removed ones too).
    pub async fn webhook(&self, id: i64) -> Result<Option<WebhookRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, url, events, created_by, created_at, removed_at, ca_cert FROM webhook_endpoints
             WHERE id = $1",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// The active endpoints.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, events, created_by, created_at, removed_at, ca_cert FROM webhook_endpoints
             WHERE removed_at IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Up to `limit` active endpoints with ids above `after` (from the first when `None`), by id:
    /// a range of `webhook_endpoints_active`.
    pub async fn webhooks_page(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WebhookRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, events, created_by, created_at, removed_at, ca_cert FROM webhook_endpoints
             WHERE removed_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(i64::MIN))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Enqueues an event that is not an audit entry (`webhook.test`) for one endpoint; returns
    /// the delivery id.
    pub async fn enqueue_event(
        &self,
        endpoint_id: i64,
        kind: &str,
        subject: &str,
        data: &[u8],
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (endpoint_id, event_type, subject, data, time_millis,
               status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7) RETURNING id",
        )
        .bind(endpoint_id)
        .bind(kind)
        .bind(subject)
        .bind(data)
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` due deliveries for `owner` (the claiming replica's id) until
    /// `lease_until` (ms): pending, due, not leased by another sender, and first in line for
    /// their endpoint and subject (an earlier pending delivery of the same subject holds the
    /// later ones back).
    pub async fn claim_due_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // Most rounds find nothing: look first without taking the writer.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
             LIMIT 1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT d.id, e.url, e.secret, e.ca_cert, d.event_type, d.subject, d.audit_index,
                    COALESCE(a.entry, d.data) AS data, d.time_millis, d.attempts
             FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id
             LEFT JOIN audit_entries a ON a.idx = d.audit_index
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1
               AND (d.lease_until IS NULL OR d.lease_until < $1)
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                               WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject
                                 AND p.status = 'pending' AND p.id < d.id)
             ORDER BY d.id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get("id");
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_until = $1, lease_owner = $2 WHERE id = $3",
            )
            .bind(lease_until)
            .bind(owner)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            claimed.push(DueDelivery {
                id,
                url: row.get("url"),
                secret: row.get("secret"),
                ca_cert: row.get("ca_cert"),
                event_type: row.get("event_type"),
                subject: row.get("subject"),
                audit_index: row.get("audit_index"),
                data: row.get::<Option<Vec<u8>>, _>("data").unwrap_or_default(),
                time_millis: row.get("time_millis"),
                attempts: row.get("attempts"),
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Releases the delivery leases a previous run of this replica (`owner`, its data
    /// directory's replica id) left, at start, returning how many were held: such a lease
    /// belongs to a process that died mid-attempt (kill -9, a crash), and waiting for it to run
    /// out would hold back its endpoint's events for the lease time. On the embedded database,
    /// which one process serves, every lease is that process's. A lease another replica holds on
    /// a shared database is never released (it may be sending right now: releasing it would send
    /// the delivery twice); it runs out instead.
    pub async fn release_delivery_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = NULL, lease_owner = NULL
              WHERE status = 'pending' AND lease_until IS NOT NULL
                AND ($1 = 1 OR lease_owner = $2)",
        )
        .bind(i64::from(self.backend() == crate::Backend::Sqlite))
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(released)
    }

    /// Records an attempt's outcome and releases the lease, if `owner` (the replica id it
    /// claimed the delivery with) still holds the lease. Returns whether it did: `false` when
    /// the lease ran out and another replica claimed the delivery (that replica's attempt
    /// decides), or the delivery is no longer pending; nothing is written then.
    pub async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let updated =
            match outcome {
                AttemptOutcome::Delivered { status } => sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                       last_status = $1, last_error = NULL, delivered_at = $2, lease_until = NULL,
                       lease_owner = NULL
                     WHERE id = $3 AND status = 'pending' AND lease_owner = $4",
                )
                .bind(i64::from(*status))
                .bind(now)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?,
                AttemptOutcome::Failed {
                    status,
                    error,
                    retry_at,
                } => {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1,
                       last_status = $2, last_error = $3, next_attempt_at = $4, lease_until = NULL,
                       lease_owner = NULL
                     WHERE id = $5 AND status = 'pending' AND lease_owner = $6",
                    )
                    .bind(if retry_at.is_some() {
                        "pending"
                    } else {
                        "dead"
                    })
                    .bind(status.map(i64::from))
                    .bind(error)
                    .bind(retry_at.unwrap_or(now))
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                }
            };
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Deliveries to `endpoint_id`, newest first, optionally of one status.
    pub async fn deliveries(
        &self,
        endpoint_id: i64,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        self.deliveries_page(endpoint_id, status, None, limit).await
    }

    /// Up to `limit` deliveries to an endpoint with ids below `before` (from the newest when
    /// `None`), newest first, optionally of one status: a range of
    /// `webhook_deliveries_by_endpoint`, or of `webhook_deliveries_by_endpoint_status`.
    pub async fn deliveries_page(
        &self,
        endpoint_id: i64,
        status: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        let rows = match status {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                     WHERE endpoint_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                )))
                .bind(endpoint_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            Some(status) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                     WHERE endpoint_id = $1 AND status = $2 AND id < $3
                     ORDER BY id DESC LIMIT $4"
                )))
                .bind(endpoint_id)
                .bind(status)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(rows.iter().map(delivery_from_row).collect())
    }

    /// Deliveries waiting to be sent (all endpoints).
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use airlock_core::{Action, Actor, AuditEvent, AuditRecord};

    use super::*;

    #[tokio::test]
    async fn the_upgrade_blanks_secrets_of_endpoints_removed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            // The schema before migration 12, with one removed and one live endpoint.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(11, &pool)
                .await
                .unwrap();
            for (url, removed) in [("http://a.example/", Some(1)), ("http://b.example/", None)] {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (url, events, secret, created_by, created_at, removed_at)
                     VALUES ($1, '[\"*\"]', $2, 'admin', 0, $3)",
                )
                .bind(url)
                .bind(b"an old secret value".as_slice())
                .bind(removed)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        meta.close().await;
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .unwrap();
        let secrets: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT url, secret FROM webhook_endpoints ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(secrets[0], ("http://a.example/".into(), Vec::new()));
        assert_eq!(
            secrets[1],
            ("http://b.example/".into(), b"an old secret value".to_vec())
        );
    }

    #[tokio::test]
    async fn the_ca_cert_column_is_added_over_existing_endpoints_and_delivered_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            // The schema before migration 15, with an endpoint and a pending delivery.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(14, &pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO webhook_endpoints (url, events, secret, created_by, created_at)
                 VALUES ('http://old.example/', '[\"*\"]', x'00112233', 'admin', 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO webhook_deliveries (endpoint_id, event_type, subject, data,
                   time_millis, status, next_attempt_at, created_at)
                 VALUES (1, 'webhook.test', 'webhook/1', x'7b7d', 0, 'pending', 0, 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        let old = meta.webhook(1).await.unwrap().unwrap();
        assert_eq!(old.url, "http://old.example/");
        assert_eq!(
            old.ca_cert, None,
            "an existing endpoint keeps the system roots"
        );
        let due = meta
            .claim_due_deliveries("test", now_millis(), now_millis() + 1000, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].ca_cert, None);
        assert_eq!(due[0].secret, vec![0x00, 0x11, 0x22, 0x33]);

        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let added = meta
            .add_webhook(
                "https://new.example/",
                &["*".into()],
                b"0123456789abcdef",
                Some(pem),
                "admin",
                |id| AuditRecord {
                    time_millis: now_millis(),
                    actor: Actor::system(),
                    event: AuditEvent::WebhookChanged {
                        endpoint: id,
                        origin: "https://new.example".into(),
                        url_sha256: String::new(),
                        events: vec!["*".into()],
                        added: true,
                    },
                },
            )
            .await
            .unwrap();
        assert_eq!(added.ca_cert.as_deref(), Some(pem));
        // Adding it is an event (`webhook.added`) delivered to both endpoints.
        let due = meta
            .claim_due_deliveries("test", now_millis(), now_millis() + 1000, 10)
            .await
            .unwrap();
        let sent = due
            .iter()
            .find(|d| d.url == "https://new.example/")
            .unwrap_or_else(|| panic!("{due:?}"));
        assert_eq!(sent.ca_cert.as_deref(), Some(pem));
    }

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

    async fn store() -> Vec<crate::testing::TestStore> {
        crate::testing::engines().await
    }

    /// Adds an endpoint for `pattern`, as the webhook service does.
    async fn endpoint(meta: &Metadata, pattern: &str) -> WebhookRow {
        meta.add_webhook(
            "http://x/",
            &[pattern.into()],
            b"0123456789abcdef",
            None,
            "admin",
            |id| AuditRecord {
                time_millis: now_millis(),
                actor: Actor::system(),
                event: AuditEvent::WebhookChanged {
                    endpoint: id,
                    origin: "http://x".into(),
                    url_sha256: String::new(),
                    events: vec![pattern.into()],
                    added: true,
                },
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn deliveries_commit_with_their_event_or_not_at_all() {
        for meta in store().await {
            let endpoint = endpoint(&meta, "*").await;
            // The endpoint's own `webhook.added` is its first delivery.
            assert_eq!(
                meta.deliveries(endpoint.id, None, 10).await.unwrap().len(),
                1
            );
            meta.record_events(&[refused("prod/a/b")]).await.unwrap();
            let listed = meta.deliveries(endpoint.id, None, 10).await.unwrap();
            assert_eq!(listed.len(), 2);
            assert_eq!(listed[0].event_type, "push.refused");
            assert_eq!(listed[0].subject, "prod/a/b");

            // A transaction that appends an event but does not commit leaves neither the audit
            // entry nor its delivery.
            let entries = meta.audit_entry_count().await.unwrap();
            {
                let mut tx = meta.begin_write().await.unwrap();
                append(&mut tx, &[refused("prod/a/c")]).await.unwrap();
                // Dropped without commit: rolled back, as a change that fails after its append is.
            }
            assert_eq!(meta.audit_entry_count().await.unwrap(), entries);
            assert_eq!(
                meta.deliveries(endpoint.id, None, 10).await.unwrap().len(),
                2
            );
        }
    }

    /// At start a replica releases the leases its previous run left; on a shared database never
    /// another replica's (it may be sending right now), on the embedded one every lease.
    #[tokio::test]
    async fn a_replica_releases_only_its_own_leases_on_a_shared_database() {
        for meta in store().await {
            endpoint(&meta, "push.*").await;
            for repository in ["prod/a/one", "prod/a/two"] {
                meta.record_events(&[refused(repository)]).await.unwrap();
            }
            let now = now_millis();
            let mine = meta
                .claim_due_deliveries("replica-a", now, now + 60_000, 1)
                .await
                .unwrap();
            let theirs = meta
                .claim_due_deliveries("replica-b", now, now + 60_000, 1)
                .await
                .unwrap();
            assert_eq!((mine.len(), theirs.len()), (1, 1));
            let released = meta.release_delivery_leases("replica-a").await.unwrap();
            let again = meta
                .claim_due_deliveries("replica-a", now, now + 60_000, 10)
                .await
                .unwrap();
            let ids: Vec<i64> = again.iter().map(|d| d.id).collect();
            match meta.backend() {
                crate::Backend::Postgres => {
                    assert_eq!(released, 1);
                    assert_eq!(ids, [mine[0].id], "the other replica's lease holds");
                }
                crate::Backend::Sqlite => {
                    assert_eq!(released, 2);
                    assert_eq!(ids, [mine[0].id, theirs[0].id]);
                }
            }
        }
    }

    #[tokio::test]
    async fn claims_keep_subject_order_and_leases_exclude_other_senders() {
        for meta in store().await {
            let endpoint = endpoint(&meta, "push.*").await;
            for repository in ["prod/a/one", "prod/a/one", "prod/a/two"] {
                meta.record_events(&[refused(repository)]).await.unwrap();
            }
            let now = now_millis();
            let claimed = meta
                .claim_due_deliveries("test", now, now + 60_000, 10)
                .await
                .unwrap();
            let subjects: Vec<&str> = claimed.iter().map(|d| d.subject.as_str()).collect();
            assert_eq!(
                subjects,
                ["prod/a/one", "prod/a/two"],
                "one per subject, the earliest"
            );
            // Leased: another sender finds nothing.
            assert!(
                meta.claim_due_deliveries("test", now, now + 60_000, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // The first of `one` fails for good: the second of `one` becomes due (a dead delivery
            // does not hold its subject back).
            let first = claimed[0].id;
            let dead = AttemptOutcome::Failed {
                status: Some(500),
                error: "boom".into(),
                retry_at: None,
            };
            assert!(meta.finish_delivery(first, "test", &dead).await.unwrap());
            let next = meta
                .claim_due_deliveries("test", now, now + 60_000, 10)
                .await
                .unwrap();
            assert_eq!(next.len(), 1);
            assert_eq!(next[0].subject, "prod/a/one");
            assert!(next[0].id > first);
            let listed = meta
                .deliveries(endpoint.id, Some("dead"), 10)
                .await
                .unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].last_error.as_deref(), Some("boom"));
        }
    }

    /// A replica whose lease ran out and whose delivery another replica claimed cannot record
    /// its outcome: the finish reports the lost lease and writes nothing; the holder's does.
    #[tokio::test]
    async fn only_the_lease_holder_finishes_a_delivery() {
        for meta in store().await {
            let endpoint = endpoint(&meta, "push.*").await;
            meta.record_events(&[refused("prod/a/one")]).await.unwrap();
            let now = now_millis();
            let slow = meta
                .claim_due_deliveries("replica-a", now, now + 1, 1)
                .await
                .unwrap();
            // The lease has run out: replica-b claims the same delivery.
            let later = now + 10;
            let fast = meta
                .claim_due_deliveries("replica-b", later, later + 60_000, 1)
                .await
                .unwrap();
            assert_eq!((slow.len(), fast.len()), (1, 1));
            assert_eq!(slow[0].id, fast[0].id);
            let id = slow[0].id;
            let failed = AttemptOutcome::Failed {
                status: Some(500),
                error: "late".into(),
                retry_at: None,
            };
            assert!(
                !meta
                    .finish_delivery(id, "replica-a", &failed)
                    .await
                    .unwrap()
            );
            let pending = meta
                .deliveries(endpoint.id, Some("pending"), 10)
                .await
                .unwrap();
            assert_eq!(pending.len(), 1, "the lost lease wrote nothing");
            assert_eq!(pending[0].attempts, 0);
            assert!(
                meta.finish_delivery(id, "replica-b", &AttemptOutcome::Delivered { status: 204 })
                    .await
                    .unwrap()
            );
            let delivered = meta
                .deliveries(endpoint.id, Some("delivered"), 10)
                .await
                .unwrap();
            assert_eq!(delivered.len(), 1);
            assert_eq!(delivered[0].last_status, Some(204));
            // Finished: a second finish by anyone changes nothing.
            assert!(
                !meta
                    .finish_delivery(id, "replica-b", &failed)
                    .await
                    .unwrap()
            );
        }
    }
}
