//! Moving the metadata of a stopped embedded installation (SQLite) into an empty PostgreSQL
//! database, for `airlock migrate-store`.
//!
//! What is guaranteed:
//! - the target holds no data when the copy starts (no audit entry, principal, repository or
//!   blob: a server started on it would have written some), else [`MigrateError::TargetNotEmpty`]
//!   names a table holding rows; rows migrations seed (the keyring version) are replaced by the
//!   source's;
//! - both sides carry the same schema (the binary's migrations, applied when each was opened),
//!   and the copy refuses a table one side has and the other lacks;
//! - every table is copied whole, in an order where a row's foreign keys point at rows already
//!   copied (PostgreSQL's catalog says which table references which), with every column value as
//!   stored (ids included), in one PostgreSQL transaction holding the writer lock: the target ends
//!   up with all of it or none of it;
//! - identity columns' sequences are moved past the largest copied id, so the next row the server
//!   inserts does not collide;
//! - before the commit, inside the copy's transaction, the number of rows of every table is
//!   counted on both sides ([`TableCopy`]) and handed, with a [`TransactionReader`] over the
//!   uncommitted copy, to the caller's check (which compares the counts and verifies what needs
//!   the domain: the audit log, tags); a check that fails rolls everything back
//!   ([`MigrateError::CheckFailed`]), so the target stays empty.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use futures::future::BoxFuture;

use crate::audit_reader::TransactionReader;
use crate::engine::{Backend, SqlBuilder};
use crate::error::StoreError;
use crate::metadata::Metadata;

/// The table sqlx records applied migrations in: each side keeps its own.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Tables any use of a database fills (a server's first start writes principals and audit
/// entries): a target with a row in one of them holds data and is refused. Other tables may
/// hold only what migrations seed, which the copy replaces.
const DATA_TABLES: [&str; 4] = ["audit_entries", "principals", "repositories", "blobs"];

/// Values bound per `INSERT` statement (PostgreSQL accepts at most 65535).
const VALUES_PER_STATEMENT: usize = 8_000;

/// One table as copied: its name and the rows on each side afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows in the target after the copy.
    pub target_rows: u64,
}

/// Why the metadata was not moved.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source is not the embedded SQLite database or the target not PostgreSQL.
    #[error(
        "migrate-store copies an embedded (SQLite) database into PostgreSQL; got {from:?} into {to:?}"
    )]
    WrongEngines {
        /// The source's engine.
        from: Backend,
        /// The target's engine.
        to: Backend,
    },
    /// The target database already holds rows.
    #[error(
        "the target database already holds data (table {table} has rows): migrate-store only fills an empty database. Create a new database (CREATE DATABASE airlock_new) and pass its URL to --to, or, if an earlier migrate-store into it failed half-way, drop and recreate it"
    )]
    TargetNotEmpty {
        /// A table holding rows.
        table: String,
    },
    /// The two schemas do not hold the same tables.
    #[error(
        "the source and target schemas differ: table {table} exists only in the {side}; both are migrated by this binary, so the database was changed by hand or by another build"
    )]
    SchemaMismatch {
        /// The table.
        table: String,
        /// `source` or `target`.
        side: &'static str,
    },
    /// The caller's check of the uncommitted copy failed: it was rolled back.
    #[error("{0}")]
    CheckFailed(String),
    /// Foreign keys between the tables form a cycle the copy cannot order.
    #[error("the tables' foreign keys form a cycle through {0}: no copy order exists")]
    ForeignKeyCycle(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// One column value as SQLite stored it.
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

fn value_of(row: &AnyRow, index: usize) -> Result<Value, sqlx::Error> {
    use sqlx::ValueRef;
    use sqlx::any::AnyTypeInfoKind as Kind;
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        Kind::Null => Value::Null,
        Kind::Bool | Kind::SmallInt | Kind::Integer | Kind::BigInt => {
            Value::Integer(row.try_get::<i64, _>(index)?)
        }
        Kind::Real | Kind::Double => Value::Real(row.try_get::<f64, _>(index)?),
        Kind::Text => Value::Text(row.try_get::<String, _>(index)?),
        Kind::Blob => Value::Bytes(row.try_get::<Vec<u8>, _>(index)?),
    })
}

impl Metadata {
    /// The tables of the target (PostgreSQL) in copy order, with their columns in order.
    async fn postgres_tables_in_order(&self) -> Result<Vec<(String, Vec<String>)>, MigrateError> {
        let columns = sqlx::query(
            "SELECT table_name::TEXT AS t, column_name::TEXT AS c FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        )
        .fetch_all(self.pool())
        .await?;
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in columns {
            let table: String = row.try_get("t")?;
            if table != MIGRATIONS_TABLE {
                tables.entry(table).or_default().push(row.try_get("c")?);
            }
        }
        let references = sqlx::query(
            "SELECT c.conrelid::regclass::TEXT AS child, c.confrelid::regclass::TEXT AS parent
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
        )
        .fetch_all(self.pool())
        .await?;
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in references {
            let child: String = row.try_get("child")?;
            let parent: String = row.try_get("parent")?;
            if child != parent {
                parents.entry(child).or_default().insert(parent);
            }
        }
        // Kahn's algorithm, by name within a round for a deterministic order.
        let mut ordered = Vec::new();
        let mut left: BTreeSet<String> = tables.keys().cloned().collect();
        while !left.is_empty() {
            let ready: Vec<String> = left
                .iter()
                .filter(|table| {
                    parents
                        .get(*table)
                        .is_none_or(|p| p.iter().all(|parent| !left.contains(parent)))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                let stuck = left.iter().cloned().collect::<Vec<_>>().join(", ");
                return Err(MigrateError::ForeignKeyCycle(stuck));
            }
            for table in ready {
                left.remove(&table);
                let columns = tables.remove(&table).unwrap_or_default();
                ordered.push((table, columns));
            }
        }
        Ok(ordered)
    }

    /// The tables of the source (SQLite), without SQLite's and the migrations' own.
    async fn sqlite_tables(&self) -> Result<BTreeSet<String>, MigrateError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(names
            .into_iter()
            .filter(|name| name != MIGRATIONS_TABLE)
            .collect())
    }

    async fn row_count(&self, table: &str) -> Result<u64, MigrateError> {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{table}\""
        )))
        .fetch_one(self.pool())
        .await?;
        Ok(count as u64)
    }

    /// Fails with [`MigrateError::TargetNotEmpty`] when this database holds data (an early,
    /// cheap answer before anything is copied; [`Metadata::copy_into_postgres`] checks again in
    /// its transaction).
    pub async fn refuse_if_holding_data(&self) -> Result<(), MigrateError> {
        let mut connection = self.pool().acquire().await.map_err(StoreError::from)?;
        refuse_data(&mut connection).await
    }

    /// Every tag as (repository, tag, digest), sorted: to check that each resolves to the same
    /// digest on both sides of a copy.
    pub async fn tag_digests(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        tag_digests_on(&mut *self.pool().acquire().await?).await
    }

    /// Copies every table of `self` (a stopped embedded installation's SQLite database) into
    /// `target` (an empty PostgreSQL database migrated by this binary), as the module docs say:
    /// `check` sees the row counts and the uncommitted copy, and an `Err` from it rolls the copy
    /// back ([`MigrateError::CheckFailed`] with its message). Returns each table with its row
    /// counts on both sides, in copy order.
    pub async fn copy_into_postgres<C>(
        &self,
        target: &Metadata,
        check: C,
    ) -> Result<Vec<TableCopy>, MigrateError>
    where
        C: for<'r> FnOnce(
            &'r [TableCopy],
            &'r TransactionReader<'r>,
        ) -> BoxFuture<'r, Result<(), String>>,
    {
        if self.backend() != Backend::Sqlite || target.backend() != Backend::Postgres {
            return Err(MigrateError::WrongEngines {
                from: self.backend(),
                to: target.backend(),
            });
        }
        let order = target.postgres_tables_in_order().await?;
        let source_tables = self.sqlite_tables().await?;
        for (table, _) in &order {
            if !source_tables.contains(table) {
                return Err(MigrateError::SchemaMismatch {
                    table: table.clone(),
                    side: "target",
                });
            }
        }
        for table in &source_tables {
            if !order.iter().any(|(name, _)| name == table) {
                return Err(MigrateError::SchemaMismatch {
                    table: table.clone(),
                    side: "source",
                });
            }
        }
        let mut tx = target.begin_write().await?;
        // One long transaction on a dedicated session: no per-statement limit.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        refuse_data(&mut tx).await?;
        // What a fresh database holds (rows migrations seed, such as the keyring version) is
        // replaced by the source's rows of the same tables, children first.
        for (table, _) in order.iter().rev() {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
                .execute(&mut *tx)
                .await?;
        }
        for (table, columns) in &order {
            copy_table(self, &mut tx, table, columns).await?;
            reset_identity(&mut tx, table, columns).await?;
        }
        let mut copies = Vec::with_capacity(order.len());
        for (table, _) in order {
            copies.push(TableCopy {
                source_rows: self.row_count(&table).await?,
                target_rows: row_count_on(&mut tx, &table).await?,
                table,
            });
        }
        {
            let reader = TransactionReader::new(&mut tx);
            check(&copies, &reader)
                .await
                .map_err(MigrateError::CheckFailed)?;
        }
        tx.commit().await?;
        Ok(copies)
    }
}

/// [`Metadata::tag_digests`] on one connection (or inside a transaction).
pub(crate) async fn tag_digests_on(
    connection: &mut sqlx::AnyConnection,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT repository, name, digest FROM tags ORDER BY repository, name")
            .fetch_all(&mut *connection)
            .await?,
    )
}

/// Rows in `table`, counted on `connection` (inside the copy's transaction).
async fn row_count_on(
    connection: &mut sqlx::AnyConnection,
    table: &str,
) -> Result<u64, MigrateError> {
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM \"{table}\""
    )))
    .fetch_one(&mut *connection)
    .await?;
    Ok(count as u64)
}

/// Fails with [`MigrateError::TargetNotEmpty`] when one of [`DATA_TABLES`] holds a row.
async fn refuse_data(connection: &mut sqlx::AnyConnection) -> Result<(), MigrateError> {
    for table in DATA_TABLES {
        let any: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM \"{table}\" LIMIT 1"
        )))
        .fetch_all(&mut *connection)
        .await?;
        if !any.is_empty() {
            return Err(MigrateError::TargetNotEmpty {
                table: table.to_string(),
            });
        }
    }
    Ok(())
}

/// Copies `table`'s rows from `source` in batches of multi-row `INSERT`s.
async fn copy_table(
    source: &Metadata,
    tx: &mut sqlx::AnyConnection,
    table: &str,
    columns: &[String],
) -> Result<(), MigrateError> {
    use futures::TryStreamExt;
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let rows_per_statement = (VALUES_PER_STATEMENT / columns.len().max(1)).max(1);
    // Rows in the table's own order (its rowid), so copies are deterministic.
    let select = format!("SELECT {list} FROM \"{table}\"");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(source.pool());
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(rows_per_statement);
    loop {
        let next = rows.try_next().await?;
        if let Some(row) = &next {
            let values = (0..columns.len())
                .map(|i| value_of(row, i))
                .collect::<Result<Vec<_>, _>>()?;
            batch.push(values);
        }
        if batch.len() >= rows_per_statement || (next.is_none() && !batch.is_empty()) {
            let mut insert = SqlBuilder::new(format!("INSERT INTO \"{table}\" ({list}) VALUES "));
            for (n, values) in batch.drain(..).enumerate() {
                insert.push(if n == 0 { "(" } else { ", (" });
                for (i, value) in values.into_iter().enumerate() {
                    if i > 0 {
                        insert.push(", ");
                    }
                    match value {
                        Value::Null => insert.push("NULL"),
                        Value::Integer(v) => insert.push_bind(v),
                        Value::Real(v) => insert.push_bind(v),
                        Value::Text(v) => insert.push_bind(v),
                        Value::Bytes(v) => insert.push_bind(v),
                    };
                }
                insert.push(")");
            }
            insert.build(Backend::of(tx))?.execute(&mut *tx).await?;
        }
        if next.is_none() {
            return Ok(());
        }
    }
}

/// Moves the sequences of `table`'s identity columns past the largest value copied.
async fn reset_identity(
    tx: &mut sqlx::AnyConnection,
    table: &str,
    columns: &[String],
) -> Result<(), MigrateError> {
    for column in columns {
        let sequence: Vec<Option<String>> =
            sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)::TEXT")
                .bind(format!("\"{table}\""))
                .bind(column.as_str())
                .fetch_all(&mut *tx)
                .await?;
        let Some(Some(sequence)) = sequence.into_iter().next() else {
            continue;
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval($1::regclass, COALESCE((SELECT MAX(\"{column}\") FROM \"{table}\"), 1),
                           (SELECT MAX(\"{column}\") FROM \"{table}\") IS NOT NULL)::TEXT"
        )))
        .bind(sequence)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
