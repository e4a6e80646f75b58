//! The engines the store's tests run on.
//!
//! [`engines`] yields a fresh store on SQLite always and, when `AIRLOCK_TEST_POSTGRES_URL` names a
//! PostgreSQL server (a superuser URL: `scripts/test-services` starts one), on a fresh PostgreSQL
//! database too (`airlock_t_<random>`, dropped when the store is). With `AIRLOCK_INTEROP=required`
//! (CI) a missing URL fails the test instead of leaving PostgreSQL out.

use sqlx::{ConnectOptions, Connection, Executor};

use crate::Metadata;

/// A store for one test on one engine, with what it needs kept alive.
pub(crate) struct TestStore {
    /// The store.
    pub(crate) metadata: Metadata,
    /// The directory of the SQLite file (an empty one for PostgreSQL), removed with the store.
    _dir: tempfile::TempDir,
    /// The PostgreSQL database, dropped with the store.
    _database: Option<PostgresDatabase>,
}

impl std::ops::Deref for TestStore {
    type Target = Metadata;

    fn deref(&self) -> &Metadata {
        &self.metadata
    }
}

/// The PostgreSQL server for tests, if any (see the module docs).
pub(crate) fn postgres_admin_url() -> Option<String> {
    match std::env::var("AIRLOCK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("AIRLOCK_INTEROP").as_deref() != Ok("required"),
                "AIRLOCK_INTEROP=required but AIRLOCK_TEST_POSTGRES_URL is unset: start PostgreSQL with scripts/test-services"
            );
            None
        }
    }
}

/// A database created for one test, dropped (with `psql`, forcing its connections closed) when
/// this is dropped.
pub(crate) struct PostgresDatabase {
    admin: String,
    name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-q",
                &self.admin,
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `url` with its database (the path) replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates an empty database on the test server at `admin`.
pub(crate) async fn create_database(admin: &str) -> PostgresDatabase {
    create_database_with(admin, "").await
}

/// Creates an empty database on the test server at `admin` with `CREATE DATABASE` options (e.g.
/// a collation).
pub(crate) async fn create_database_with(admin: &str, options_sql: &str) -> PostgresDatabase {
    let name = format!("airlock_t_{}", uuid::Uuid::new_v4().simple());
    let options: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
    let mut connection = options.connect().await.unwrap();
    connection
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} {options_sql}"
        )))
        .await
        .unwrap();
    connection.close().await.unwrap();
    PostgresDatabase {
        url: with_database(admin, &name),
        admin: admin.to_string(),
        name,
    }
}

/// A fresh store on each engine under test (see the module docs).
pub(crate) async fn engines() -> Vec<TestStore> {
    let mut stores = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    stores.push(TestStore {
        metadata: Metadata::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap(),
        _dir: dir,
        _database: None,
    });
    if let Some(admin) = postgres_admin_url() {
        let database = create_database(&admin).await;
        stores.push(TestStore {
            metadata: Metadata::open_postgres(&database.url).await.unwrap(),
            _dir: tempfile::tempdir().unwrap(),
            _database: Some(database),
        });
    }
    stores
}

#[test]
fn a_database_name_replaces_the_path_and_keeps_the_query() {
    assert_eq!(
        with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
        "postgres://u@h:5/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
