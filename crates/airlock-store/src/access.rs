//! Identity and access storage: principals, credentials, role bindings, access requests and
//! failed-authentication counts. Every change appends its audit records in the same transaction.
//!
//! The epoch rule: a change that narrows what a principal may do (a binding removed, a granted
//! access request revoked, a disabled principal, a revoked or replaced credential) bumps its
//! `authz_epoch`, which ends every token it holds. A change that only adds rights (a binding, a
//! granted access request) does not: tokens carry no more than they were issued with, every
//! request is also checked against the principal's live grants (so a just-in-time binding that
//! runs out narrows rights at once without a bump), and a refresh exchange re-reads the grants.

use airlock_core::{AuditRecord, Signal};
use sqlx::Row;

use crate::anomalies::{AnomalyRow, Tripwire, anomaly_on, observe_signal_in};
use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, WriteTransaction, now_millis};

/// A principal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    /// Disabled principals cannot authenticate and their tokens are refused.
    pub disabled: bool,
    /// The authorization epoch tokens must carry.
    pub authz_epoch: i64,
    /// The newest open anomaly that locked the principal; while set, it cannot authenticate.
    pub locked_by: Option<i64>,
    /// The password was reset by an access-admin (or generated at installation): until the user
    /// changes it, it authenticates only the change.
    pub password_must_change: bool,
    /// When it was created (ms).
    pub created_at: i64,
}

/// A stored credential (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// Credential id (`password:<principal>` or the API key id).
    pub id: String,
    /// Owner.
    pub principal_id: i64,
    /// `password` or `api_key`.
    pub kind: String,
    /// Argon2id PHC string or SHA-256 hex.
    pub secret_hash: String,
    /// Expiry (ms), if any.
    pub expires_at: Option<i64>,
    /// Revocation time (ms), if revoked.
    pub revoked_at: Option<i64>,
}

/// A role binding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    /// Database id.
    pub id: i64,
    /// The role name.
    pub role: String,
    /// The scope text.
    pub scope: String,
    /// End of a just-in-time grant (ms).
    pub expires_at: Option<i64>,
    /// Who granted it.
    pub granted_by: String,
}

/// A role binding as the bindings list shows it: with its principal's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalBindingRow {
    /// The principal's name.
    pub principal: String,
    /// The binding.
    pub binding: BindingRow,
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequestRow {
    /// Request id.
    pub id: i64,
    /// Who asked.
    pub principal: String,
    /// Role asked for.
    pub role: String,
    /// Scope asked for.
    pub scope: String,
    /// Duration asked for (s).
    pub duration_secs: i64,
    /// Why.
    pub reason: String,
    /// `pending`, `granted`, `denied`, `revoked`.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When it was asked (ms).
    pub created_at: i64,
    /// When the grant ends, for granted requests (ms).
    pub expires_at: Option<i64>,
}

fn principal_from_row(row: sqlx::any::AnyRow) -> PrincipalRow {
    PrincipalRow {
        id: row.get("id"),
        name: row.get("name"),
        kind: row.get("kind"),
        disabled: row.get::<i64, _>("disabled") != 0,
        authz_epoch: row.get("authz_epoch"),
        locked_by: row.get("locked_by"),
        password_must_change: row.get::<i64, _>("password_must_change") != 0,
        created_at: row.get("created_at"),
    }
}

async fn bump_epoch(tx: &mut WriteTransaction, principal_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE principals SET authz_epoch = authz_epoch + 1 WHERE id = $1")
        .bind(principal_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Binds a role inside `tx`. The epoch stays: a new binding only adds rights, so the principal's
/// tokens stay valid and pick the right up at their next refresh.
async fn insert_binding(
    tx: &mut WriteTransaction,
    principal_id: i64,
    role: &str,
    scope: &str,
    expires_at: Option<i64>,
    granted_by: &str,
    access_request_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO role_bindings
         (principal_id, role, scope, expires_at, granted_by, access_request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(principal_id)
    .bind(role)
    .bind(scope)
    .bind(expires_at)
    .bind(granted_by)
    .bind(access_request_id)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which access requests to read.
#[derive(Clone, Copy)]
enum RequestFilter<'a> {
    /// All, or those with a status.
    Status(Option<&'a str>),
    /// One by id.
    Id(i64),
    /// A page: ids below `before`, of one principal or of all.
    Page {
        principal_id: Option<i64>,
        before: i64,
        limit: u32,
    },
}

const PRINCIPAL_COLUMNS: &str =
    "id, name, kind, disabled, authz_epoch, locked_by, password_must_change, created_at";

impl Metadata {
    /// Creates a principal. Fails with [`StoreError::Conflict`] if the name is taken.
    pub async fn create_principal(
        &self,
        name: &str,
        kind: &str,
        created_by: &str,
        records: &[AuditRecord],
    ) -> Result<PrincipalRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM principals WHERE name = $1")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next();
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "principal {name} already exists"
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO principals (name, kind, created_at, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(kind)
        .bind(now_millis())
        .bind(created_by)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        self.principal_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("principal vanished".into()))
    }

    /// A principal by name.
    pub async fn principal_by_name(&self, name: &str) -> Result<Option<PrincipalRow>, StoreError> {
        let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(principal_from_row))
    }

    /// A principal by id.
    pub async fn principal_by_id(&self, id: i64) -> Result<Option<PrincipalRow>, StoreError> {
        let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(principal_from_row))
    }

    /// Up to `limit` principals named after `after` (from the first when `None`), by name: a
    /// range of the unique index on `name`.
    pub async fn principals_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PrincipalRow>, StoreError> {
        let sql = format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE name > $1 ORDER BY name LIMIT $2"
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(principal_from_row)
            .collect())
    }

    /// Up to `limit` role bindings active at `now`, by principal name and then binding id, after
    /// the binding `after` (principal name, binding id; from the first when `None`), of one
    /// principal or of all: the name index of `principals`, then `role_bindings_by_principal`.
    pub async fn bindings_page(
        &self,
        principal: Option<&str>,
        after: Option<(&str, i64)>,
        now: i64,
        limit: u32,
    ) -> Result<Vec<PrincipalBindingRow>, StoreError> {
        let (after_name, after_id) = after.unwrap_or(("", i64::MIN));
        let rows = sqlx::query(
            "SELECT p.name AS principal, b.id, b.role, b.scope, b.expires_at, b.granted_by
             FROM principals p JOIN role_bindings b ON b.principal_id = p.id
             WHERE ($1 IS NULL OR p.name = $2) AND (p.name, b.id) > ($3, $4)
               AND (b.expires_at IS NULL OR b.expires_at > $5)
             ORDER BY p.name, b.id LIMIT $6",
        )
        .bind(principal)
        .bind(principal)
        .bind(after_name)
        .bind(after_id)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| PrincipalBindingRow {
                principal: row.get("principal"),
                binding: BindingRow {
                    id: row.get("id"),
                    role: row.get("role"),
                    scope: row.get("scope"),
                    expires_at: row.get("expires_at"),
                    granted_by: row.get("granted_by"),
                },
            })
            .collect())
    }

    /// Disables a principal (and ends its tokens by bumping its epoch and revoking its
    /// refresh-token families). Returns whether it existed.
    pub async fn disable_principal(
        &self,
        id: i64,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE principals SET disabled = 1, authz_epoch = authz_epoch + 1 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        crate::passwords::revoke_logins(&mut tx, id, "disabled").await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds a credential (replacing a credential with the same id, e.g. a new password) and bumps
    /// the owner's epoch.
    pub async fn put_credential(
        &self,
        credential: &CredentialRow,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO credentials (id, principal_id, kind, secret_hash, expires_at, revoked_at, created_at)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash,
               expires_at = excluded.expires_at, revoked_at = NULL, created_at = excluded.created_at",
        )
        .bind(&credential.id)
        .bind(credential.principal_id)
        .bind(&credential.kind)
        .bind(&credential.secret_hash)
        .bind(credential.expires_at)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        bump_epoch(&mut tx, credential.principal_id).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A credential by id.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT id, principal_id, kind, secret_hash, expires_at, revoked_at FROM credentials WHERE id = $1",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .map(|row| CredentialRow {
            id: row.get("id"),
            principal_id: row.get("principal_id"),
            kind: row.get("kind"),
            secret_hash: row.get("secret_hash"),
            expires_at: row.get("expires_at"),
            revoked_at: row.get("revoked_at"),
        }))
    }

    /// Revokes a credential and bumps its owner's epoch. Returns whether it was active.
    pub async fn revoke_credential(
        &self,
        id: &str,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let owner: Option<i64> = sqlx::query_scalar(
            "UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING principal_id",
        )
        .bind(now_millis())
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next();
        let Some(owner) = owner else {
            return Ok(false);
        };
        bump_epoch(&mut tx, owner).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The role bindings of a principal (expired ones included; callers check expiry).
    pub async fn bindings(&self, principal_id: i64) -> Result<Vec<BindingRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT id, role, scope, expires_at, granted_by FROM role_bindings WHERE principal_id = $1 ORDER BY id",
        )
        .bind(principal_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|row| BindingRow {
            id: row.get("id"),
            role: row.get("role"),
            scope: row.get("scope"),
            expires_at: row.get("expires_at"),
            granted_by: row.get("granted_by"),
        })
        .collect())
    }

    /// Binds a role (the principal's epoch stays: see the module docs).
    pub async fn add_binding(
        &self,
        principal_id: i64,
        role: &str,
        scope: &str,
        expires_at: Option<i64>,
        granted_by: &str,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_binding(
            &mut tx,
            principal_id,
            role,
            scope,
            expires_at,
            granted_by,
            None,
        )
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Who created principal `name` (an access-admin's name, `bootstrap`, or the identity
    /// provider that provisioned it, e.g. `oidc:https://idp.example`); `None` if there is none.
    pub async fn principal_created_by(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT created_by FROM principals WHERE name = $1")
                .bind(name)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next(),
        )
    }

    /// Replaces some of a principal's bindings granted by `granted_by` in one transaction:
    /// removes those of `remove` (bumping its epoch if one was there) and adds `add` as standing
    /// bindings, with `records`.
    pub async fn replace_bindings(
        &self,
        principal_id: i64,
        granted_by: &str,
        remove: &[(String, String)],
        add: &[(String, String)],
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for (role, scope) in remove {
            removed += sqlx::query(
                "DELETE FROM role_bindings
                 WHERE principal_id = $1 AND role = $2 AND scope = $3 AND granted_by = $4",
            )
            .bind(principal_id)
            .bind(role)
            .bind(scope)
            .bind(granted_by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if removed > 0 {
            bump_epoch(&mut tx, principal_id).await?;
        }
        for (role, scope) in add {
            insert_binding(&mut tx, principal_id, role, scope, None, granted_by, None).await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes every binding of `role` in `scope` from a principal and bumps its epoch. Returns
    /// how many were removed.
    pub async fn remove_binding(
        &self,
        principal_id: i64,
        role: &str,
        scope: &str,
        records: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM role_bindings WHERE principal_id = $1 AND role = $2 AND scope = $3",
        )
        .bind(principal_id)
        .bind(role)
        .bind(scope)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(0);
        }
        bump_epoch(&mut tx, principal_id).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Files an access request; `records_for` builds its audit records from the new id.
    pub async fn create_access_request(
        &self,
        principal_id: i64,
        role: &str,
        scope: &str,
        duration_secs: u64,
        reason: &str,
        records_for: impl FnOnce(i64) -> Vec<AuditRecord>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO access_requests (principal_id, role, scope, duration_secs, reason, status, created_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) RETURNING id",
        )
        .bind(principal_id)
        .bind(role)
        .bind(scope)
        .bind(duration_secs as i64)
        .bind(reason)
        .bind(now_millis())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))?;
        append(&mut tx, &records_for(id)).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Access requests, newest first (at most 1000), optionally only those with `status`.
    pub async fn access_requests(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<AccessRequestRow>, StoreError> {
        self.query_access_requests(RequestFilter::Status(status))
            .await
    }

    /// Up to `limit` access requests with ids below `before` (from the newest when `None`),
    /// newest first, of one principal or of all: a range of the primary key, or of
    /// `access_requests_by_principal`.
    pub async fn access_requests_page(
        &self,
        principal_id: Option<i64>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccessRequestRow>, StoreError> {
        self.query_access_requests(RequestFilter::Page {
            principal_id,
            before: before.unwrap_or(i64::MAX),
            limit,
        })
        .await
    }

    /// One access request.
    pub async fn access_request(&self, id: i64) -> Result<Option<AccessRequestRow>, StoreError> {
        Ok(self
            .query_access_requests(RequestFilter::Id(id))
            .await?
            .into_iter()
            .next())
    }

    async fn query_access_requests(
        &self,
        filter: RequestFilter<'_>,
    ) -> Result<Vec<AccessRequestRow>, StoreError> {
        let (condition, limit) = match filter {
            RequestFilter::Status(_) => ("($1 IS NULL OR r.status = $2)", "1000"),
            RequestFilter::Id(_) => ("r.id = $1", "1000"),
            RequestFilter::Page {
                principal_id: Some(_),
                ..
            } => ("r.principal_id = $1 AND r.id < $2", "$3"),
            RequestFilter::Page {
                principal_id: None, ..
            } => ("r.id < $1", "$2"),
        };
        let sql = format!(
            "SELECT r.id, p.name AS principal, r.role, r.scope, r.duration_secs, r.reason, r.status,
                    r.decided_by, r.created_at,
                    (SELECT MAX(b.expires_at) FROM role_bindings b WHERE b.access_request_id = r.id) AS expires_at
             FROM access_requests r JOIN principals p ON p.id = r.principal_id
             WHERE {condition} ORDER BY r.id DESC LIMIT {limit}"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match filter {
            RequestFilter::Status(status) => query.bind(status).bind(status),
            RequestFilter::Id(id) => query.bind(id),
            RequestFilter::Page {
                principal_id,
                before,
                limit,
            } => match principal_id {
                Some(principal_id) => query.bind(principal_id),
                None => query,
            }
            .bind(before)
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|row| AccessRequestRow {
                id: row.get("id"),
                principal: row.get("principal"),
                role: row.get("role"),
                scope: row.get("scope"),
                duration_secs: row.get("duration_secs"),
                reason: row.get("reason"),
                status: row.get("status"),
                decided_by: row.get("decided_by"),
                created_at: row.get("created_at"),
                expires_at: row.get("expires_at"),
            })
            .collect())
    }

    /// Decides a pending request: `granted` binds the role until `expires_at`; `denied` only
    /// records the decision. Fails with [`StoreError::Conflict`] unless the request is pending.
    pub async fn decide_access_request(
        &self,
        id: i64,
        decision: &str,
        decided_by: &str,
        expires_at: i64,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE access_requests SET status = $1, decided_by = $2, decided_at = $3
             WHERE id = $4 AND status = 'pending' RETURNING principal_id, role, scope",
        )
        .bind(decision)
        .bind(decided_by)
        .bind(now_millis())
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Conflict(format!("access request {id} is not pending")))?;
        if decision == "granted" {
            let principal_id: i64 = row.get("principal_id");
            let role: String = row.get("role");
            let scope: String = row.get("scope");
            insert_binding(
                &mut tx,
                principal_id,
                &role,
                &scope,
                Some(expires_at),
                decided_by,
                Some(id),
            )
            .await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a granted request: removes the role bindings it created and bumps the principal's
    /// epoch. Fails with [`StoreError::Conflict`] unless the request is granted.
    pub async fn revoke_access_request(
        &self,
        id: i64,
        decided_by: &str,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let principal_id: i64 = sqlx::query_scalar(
            "UPDATE access_requests SET status = 'revoked', decided_by = $1, decided_at = $2
             WHERE id = $3 AND status = 'granted' RETURNING principal_id",
        )
        .bind(decided_by)
        .bind(now_millis())
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Conflict(format!("access request {id} is not granted")))?;
        sqlx::query("DELETE FROM role_bindings WHERE access_request_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bump_epoch(&mut tx, principal_id).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed authentication at `now` (ms), all in one write transaction, so every
    /// refusal writes once whatever its reason: counts it for `principal` (its audit label: a
    /// principal's name, or `unknown`) from `source` in the current minute, and for the user `name`
    /// as presented (known or not; `None` when nothing was named, e.g. a forged token) from that
    /// source; appends `records` only for the principal's first failure in the minute (a flood
    /// yields one audit entry per principal per minute); and counts each of `signals` under its
    /// rule, raising and acting on any anomaly that trips. Returns the anomalies raised.
    pub async fn record_auth_failure(
        &self,
        principal: &str,
        name: Option<&str>,
        source: &str,
        now: i64,
        records: &[AuditRecord],
        signals: &[(Signal, Tripwire)],
    ) -> Result<Vec<AnomalyRow>, StoreError> {
        let minute = now.div_euclid(60_000);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO auth_failures (principal, source, minute, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (principal, source, minute) DO UPDATE SET count = auth_failures.count + 1",
        )
        .bind(principal)
        .bind(source)
        .bind(minute)
        .execute(&mut *tx)
        .await?;
        if let Some(name) = name {
            sqlx::query(
                "INSERT INTO auth_failures_by_name (name, source, minute, count) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (name, source, minute) DO UPDATE SET count = auth_failures_by_name.count + 1",
            )
            .bind(name)
            .bind(source)
            .bind(minute)
            .execute(&mut *tx)
            .await?;
        }
        let by_principal: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM auth_failures WHERE principal = $1 AND minute = $2",
        )
        .bind(principal)
        .bind(minute)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .unwrap_or(0);
        if by_principal == 1 {
            append(&mut tx, records).await?;
        }
        sqlx::query("DELETE FROM auth_failures WHERE minute < $1")
            .bind(minute - 60)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM auth_failures_by_name WHERE minute < $1")
            .bind(minute - 1)
            .execute(&mut *tx)
            .await?;
        let mut anomalies = Vec::new();
        for (signal, tripwire) in signals {
            if let Some(id) = observe_signal_in(&mut tx, signal, *tripwire, now).await? {
                anomalies.extend(anomaly_on(&mut tx, id).await?);
            }
        }
        tx.commit().await?;
        Ok(anomalies)
    }

    /// Failures for the user `name` (as presented) from `source`, and from `source` in all, in
    /// `minute` (for the rate limiter, before checking credentials).
    pub async fn auth_failures(
        &self,
        name: &str,
        source: &str,
        minute: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT
               (SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM auth_failures_by_name
                  WHERE name = $1 AND source = $2 AND minute = $3) AS p,
               (SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM auth_failures WHERE source = $4 AND minute = $5) AS s",
        )
        .bind(name)
        .bind(source)
        .bind(minute)
        .bind(source)
        .bind(minute)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("no row".into()))?;
        Ok((row.get("p"), row.get("s")))
    }
}
