//! The schema version check run at start, before any migration.
//!
//! sqlx records every applied migration in `_sqlx_migrations` (version, checksum of its SQL). What
//! holds before a binary applies its own migrations or runs a query:
//! - a database carrying a migration newer than the binary's newest (a newer airlock migrated
//!   it) is refused with [`StoreError::SchemaTooNew`], naming both versions: an older binary
//!   never reads or writes a schema it does not know;
//! - a database carrying a migration whose SQL differs from the binary's migration of that
//!   version (an edited migration, or a build from another branch), or a version the binary does
//!   not have at all below its newest, is refused with [`StoreError::MigrationChanged`].
//!
//! Nothing is written to the database by the check. A new database (no `_sqlx_migrations` yet)
//! passes.

use sqlx::AnyConnection;
use sqlx::migrate::Migrator;

use crate::engine::Backend;
use crate::error::StoreError;

/// Refuses a database whose applied migrations this binary does not have, exactly (see the
/// module docs).
pub(crate) async fn check_applied(
    connection: &mut AnyConnection,
    backend: Backend,
    migrator: &Migrator,
) -> Result<(), StoreError> {
    // Each engine lists its tables in its own catalog.
    let catalog = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT CAST(tablename AS TEXT) FROM pg_catalog.pg_tables
             WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'"
        }
    };
    let tracked: Option<String> = sqlx::query_scalar(catalog)
        .fetch_optional(&mut *connection)
        .await?;
    if tracked.is_none() {
        return Ok(());
    }
    // (version, description, checksum of the SQL)
    let applied: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT version, description, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *connection)
    .await?;
    let binary = migrator
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0);
    if let Some((newest, _, _)) = applied.last()
        && *newest > binary
    {
        return Err(StoreError::SchemaTooNew {
            database: *newest,
            binary,
        });
    }
    for (version, description, checksum) in applied {
        let known = migrator
            .iter()
            .find(|migration| migration.version == version);
        if known.is_none_or(|migration| *migration.checksum != *checksum) {
            return Err(StoreError::MigrationChanged {
                version,
                description,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use crate::Metadata;
    use crate::error::StoreError;

    /// A database migrated by this binary, then changed by `sql` as another binary would leave it.
    async fn migrated_then(path: &Path, sql: &'static str) {
        Metadata::open_sqlite(path).await.unwrap().close().await;
        let pool = SqlitePoolOptions::new()
            .connect_with(SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }

    fn newest_known() -> i64 {
        crate::metadata::migrator(crate::Backend::Sqlite)
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap()
    }

    #[tokio::test]
    async fn a_database_migrated_by_a_newer_binary_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        migrated_then(
            &path,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from a newer release', TRUE, X'00', 1)",
        )
        .await;
        let Err(err) = Metadata::open_sqlite(&path).await else {
            panic!("the database opened");
        };
        match &err {
            StoreError::SchemaTooNew { database, binary } => {
                assert_eq!((*database, *binary), (9999, newest_known()));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("9999"), "{message}");
        assert!(message.contains(&newest_known().to_string()), "{message}");
        assert!(message.contains("Upgrade airlock"), "{message}");
        assert!(message.contains("backup"), "{message}");
        // Refusing wrote nothing: the row is still there, and the check still refuses.
        assert!(matches!(
            Metadata::open_sqlite(&path).await,
            Err(StoreError::SchemaTooNew { .. })
        ));
    }

    #[tokio::test]
    async fn a_database_whose_applied_migration_was_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        migrated_then(
            &path,
            "UPDATE _sqlx_migrations SET checksum = X'0102' WHERE version = 3",
        )
        .await;
        let Err(err) = Metadata::open_sqlite(&path).await else {
            panic!("the database opened");
        };
        assert!(
            matches!(&err, StoreError::MigrationChanged { version: 3, description } if description == "access"),
            "{err:?}"
        );
        assert!(err.to_string().contains("migration 3 (access)"), "{err}");
    }

    #[tokio::test]
    async fn a_database_from_this_binary_or_a_new_one_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        Metadata::open_sqlite(&path).await.unwrap().close().await;
        let again = Metadata::open_sqlite(&path).await.unwrap();
        again.ping().await.unwrap();
    }
}
