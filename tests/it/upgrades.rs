//! Upgrades against the real binary: `airlock serve` refuses a data directory whose database a
//! newer release has migrated, with exit status 2 and a message naming both schema versions and
//! the fix, and leaves the database as it was.

use crate::common;

use common::TestServer;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// A migration version far beyond any this binary carries.
const FUTURE: i64 = 9999;

#[tokio::test]
async fn serve_refuses_a_database_migrated_by_a_newer_release() {
    if common::embedded_only() {
        return;
    }
    let mut s = TestServer::start();
    s.push_blob("dev/upgrade/app", b"kept across the refusal")
        .await;
    s.stop();

    // A newer release ran its migration on this database.
    let database = s.data_dir.join("metadata.db");
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&database))
        .await
        .unwrap();
    let binary: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Counted, not derived from the newest version: versions assigned to parallel work may leave
    // gaps until it lands.
    let applied_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (?, 'from a newer release', TRUE, X'00', 1)",
    )
    .bind(FUTURE)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let (code, stderr) = common::serve_refused(&s.data_dir, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the database schema is at migration {FUTURE}, but this airlock binary knows migrations up to {binary} only"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Upgrade airlock"), "{stderr}");
    assert!(stderr.contains("restore the backup"), "{stderr}");

    // Nothing was migrated or written: the newer release's record is the newest still.
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&database))
        .await
        .unwrap();
    let newest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(newest, FUTURE);
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, applied_before + 1);
    pool.close().await;
}
