//! Which SQL engine holds the metadata, and what differs between the two.
//!
//! Every query is written once through sqlx's `Any` driver, in SQL that both SQLite (3.35 or
//! newer) and PostgreSQL (15) accept: `$N` placeholders, `ON CONFLICT ... DO NOTHING/UPDATE`,
//! `RETURNING`, `COALESCE`, integers as 64-bit (`BIGINT`, decoded as `i64`), flags as integers
//! compared with 0/1 (never decoded as `bool`: the `Any` driver decodes by the value's type, and
//! SQLite has no boolean type), `SUM` cast to `BIGINT` (PostgreSQL sums integers as `NUMERIC`),
//! text compared byte by byte (PostgreSQL's columns have the collation `"binary"`, a copy of "C"
//! under the name of SQLite's default; a recursive query seeded with a bound value writes
//! `$N COLLATE "binary"`, as PostgreSQL wants the seed's collation to be the column's).
//! What truly differs is chosen here, or where a statement is built, by [`Backend`], with a
//! comment.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::{AnyArguments, AnyConnectOptions};
use sqlx::error::BoxDynError;
use sqlx::{Any, AnyConnection, Arguments, AssertSqlSafe, Encode, Executor, Type};

/// The SQL engine behind a [`crate::Metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one SQLite file in WAL mode in the data directory.
    Sqlite,
    /// A PostgreSQL server shared by every replica.
    Postgres,
}

impl Backend {
    /// The engine behind an open connection (a pooled one, or a transaction's).
    pub(crate) fn of(conn: &AnyConnection) -> Backend {
        // Anything but SQLite speaks PostgreSQL's `$N` (which SQLite accepts too).
        if conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// Where the metadata lives: the embedded SQLite file or a PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// The SQLite database file at this path.
    Sqlite(PathBuf),
    /// The PostgreSQL database at this URL (`postgres://` or `postgresql://`), which may hold a
    /// password: show it with [`redact_url`] only.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseLocation::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            DatabaseLocation::Postgres(url) => {
                f.debug_tuple("Postgres").field(&redact_url(url)).finish()
            }
        }
    }
}

/// `url` with any user name and password replaced by `***`, for logs and messages: a database
/// URL may carry credentials. Text that is not a URL is replaced whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    // The authority ends at the first '/', '?' or '#'; userinfo is what precedes its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // An '@' after that point means the userinfo itself may hold an unencoded '/', '?' or '#'
    // (`postgres://u:pa#ss@host/db`): nothing but the scheme is shown.
    if tail.contains('@') {
        return format!("{scheme}://***");
    }
    let tail = redact_query_password(tail);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{tail}", &authority[at + 1..]),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// A `password=` query parameter (which libpq-style URLs accept) replaced by `***`.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{query}")
}

/// The key of the advisory lock every PostgreSQL write transaction takes first (see
/// [`crate::Metadata`]'s `begin_write`): one fixed 64-bit number, "airlock\0" in ASCII.
pub(crate) const WRITER_LOCK_KEY: i64 = 0x6169_726c_6f63_6b00;

/// Connection options for the SQLite database at `path` (never creating it: the caller does),
/// read-only with `read_only`. The `Any` driver takes options as a URL only, so the path is
/// percent-encoded into one (every byte but unreserved characters and `/`), which sqlx decodes
/// back to the same path whatever characters it holds.
pub(crate) fn sqlite_options(
    path: &Path,
    read_only: bool,
) -> Result<AnyConnectOptions, sqlx::Error> {
    let mut url = String::from("sqlite://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                url.push(char::from(*byte))
            }
            other => url.push_str(&format!("%{other:02X}")),
        }
    }
    url.push_str(if read_only { "?mode=ro" } else { "?mode=rw" });
    AnyConnectOptions::from_str(&url)
}

/// The settings every SQLite connection gets when it opens: write-ahead logging, `synchronous =
/// NORMAL` (durable at checkpoints, never corrupt), foreign keys enforced, and a 10 s wait for a
/// lock held by another process.
pub(crate) async fn sqlite_settings(connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
    connection
        .execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
        )
        .await?;
    Ok(())
}

/// The time limits every PostgreSQL connection gets when it opens (`SET`, session-wide), so no
/// transaction can hold the writer lock ([`WRITER_LOCK_KEY`]) for long and no writer waits for it
/// without end:
/// - `lock_timeout`: how long a statement waits for a lock (the writer lock, a row lock) before it
///   fails with SQLSTATE `55P03`. Writers of one process queue in the process first, so at most one
///   per replica waits here, each for transactions that take milliseconds.
/// - `idle_in_transaction_session_timeout`: a transaction that sends nothing for this long (its
///   process hangs, is stopped or lost its network) has its session ended by the server, which
///   releases the writer lock it held. No transaction waits on the network while it holds the lock
///   (blob checks run before it begins), so a live one is never idle this long.
/// - `statement_timeout`: the longest a single statement may run (a runaway query under the lock,
///   or a read that would tie up a connection), SQLSTATE `57014`.
///
/// Each applies unless the database URL's `options` parameter sets it
/// (`?options=-c%20statement_timeout%3D300s`), which then wins (docs/configuration.md).
pub const POSTGRES_TIMEOUTS: [(&str, &str); 3] = [
    ("lock_timeout", "15s"),
    ("idle_in_transaction_session_timeout", "60s"),
    ("statement_timeout", "120s"),
];

/// The `SET` statements of [`POSTGRES_TIMEOUTS`] for the connections to `url`: those whose setting
/// the URL's `options` parameter does not name.
pub(crate) fn postgres_timeouts_sql(url: &str) -> Result<String, sqlx::Error> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
    let named = named_settings(options.get_options().unwrap_or_default());
    Ok(POSTGRES_TIMEOUTS
        .iter()
        .filter(|(setting, _)| !named.iter().any(|name| name == setting))
        .map(|(setting, value)| format!("SET {setting} = '{value}';"))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The names of the settings a PostgreSQL `options` value sets (`-c name=value`, `-cname=value`,
/// `--name=value`; dashes in a name stand for underscores), lower-cased: compared whole, so
/// `deadlock_timeout` is not taken for `lock_timeout`.
fn named_settings(options: &str) -> Vec<String> {
    options
        .split_whitespace()
        .filter(|token| *token != "-c")
        .map(|token| token.trim_start_matches("-c").trim_start_matches('-'))
        .filter_map(|token| token.split_once('='))
        .map(|(name, _)| name.replace('-', "_").to_ascii_lowercase())
        .collect()
}

/// Why PostgreSQL gave up on a statement because of a time limit of [`POSTGRES_TIMEOUTS`] (or the
/// pool had no connection to give): the database is busy or a transaction was stuck. Nothing was
/// written; the same request sent again can succeed, so clients hear 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBusy {
    /// A lock (the writer lock, a row lock) was not granted within `lock_timeout` (`55P03`).
    LockTimeout,
    /// A statement ran longer than `statement_timeout` (`57014`).
    StatementTimeout,
    /// The server ended the session of a transaction idle longer than
    /// `idle_in_transaction_session_timeout` (`25P03`).
    IdleTransaction,
    /// No pooled connection became free within the pool's acquire timeout.
    PoolExhausted,
}

impl DatabaseBusy {
    /// The time limit behind `err`, if a time limit is why it failed.
    pub fn of(err: &sqlx::Error) -> Option<Self> {
        match err {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("55P03") => Some(Self::LockTimeout),
                Some("57014") => Some(Self::StatementTimeout),
                Some("25P03") => Some(Self::IdleTransaction),
                _ => None,
            },
            sqlx::Error::PoolTimedOut => Some(Self::PoolExhausted),
            _ => None,
        }
    }

    /// Seconds a client should wait before sending the request again.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::LockTimeout | Self::PoolExhausted => 2,
            Self::StatementTimeout | Self::IdleTransaction => 5,
        }
    }
}

impl std::fmt::Display for DatabaseBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LockTimeout => {
                "the database's write lock was not granted in time (other writers hold it): nothing was changed, send the request again"
            }
            Self::StatementTimeout => {
                "a database statement ran past the statement time limit: nothing was changed, send the request again"
            }
            Self::IdleTransaction => {
                "the database ended a transaction that had stalled: nothing was changed, send the request again"
            }
            Self::PoolExhausted => {
                "every database connection is busy: nothing was changed, send the request again"
            }
        })
    }
}

/// A statement built from pieces, with `$N` placeholders for PostgreSQL and anonymous `?` ones
/// for SQLite (sqlx's own `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL does
/// not accept).
///
/// SQLite keeps a statement's parameter names in a list that sqlx-sqlite searches once per
/// bound value, so a statement with N named (`$N`) parameters costs O(N²) to bind: with the
/// thousand-value lists and multi-row inserts built here that was a fifth of `audit verify`'s
/// time. Anonymous `?` parameters are bound by position, without the search. Every value must
/// go through [`SqlBuilder::push_bind`] (no `$N` in the text pushed), so both forms number the
/// values the same way.
pub(crate) struct SqlBuilder {
    /// The statement with `$N` placeholders.
    sql: String,
    /// The same statement with `?` placeholders.
    positional: String,
    arguments: AnyArguments,
    /// The first value that failed to encode, reported when the statement is built.
    error: Option<BoxDynError>,
}

impl SqlBuilder {
    /// A statement starting with `sql`.
    pub(crate) fn new(sql: impl AsRef<str>) -> Self {
        Self {
            sql: sql.as_ref().to_string(),
            positional: sql.as_ref().to_string(),
            arguments: AnyArguments::default(),
            error: None,
        }
    }

    /// Appends SQL text (never a value from outside: bind those).
    pub(crate) fn push(&mut self, sql: impl AsRef<str>) -> &mut Self {
        self.sql.push_str(sql.as_ref());
        self.positional.push_str(sql.as_ref());
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + 't,
    {
        if let Err(err) = self.arguments.add(value)
            && self.error.is_none()
        {
            self.error = Some(err);
        }
        let number = self.arguments.len();
        self.sql.push_str(&format!("${number}"));
        self.positional.push('?');
        self
    }

    /// Appends placeholders bound to `values`, separated by commas; `NULL` for no values (an
    /// empty `IN ()` list is an error in PostgreSQL, and `x IN (NULL)` holds for no `x`).
    pub(crate) fn push_list<'t, T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + 't,
    {
        let mut first = true;
        for value in values {
            if !first {
                self.push(", ");
            }
            self.push_bind(value);
            first = false;
        }
        if first {
            self.push("NULL");
        }
        self
    }

    /// The statement for `backend`, to execute or fetch rows from; fails if a bound value could
    /// not be encoded.
    pub(crate) fn build(
        self,
        backend: Backend,
    ) -> Result<sqlx::query::Query<'static, Any, AnyArguments>, sqlx::Error> {
        let (sql, arguments) = self.finish(backend)?;
        Ok(sqlx::query_with(AssertSqlSafe(sql), arguments))
    }

    /// The statement for `backend`, fetching the first column of each row as `O`.
    pub(crate) fn build_query_scalar<O>(
        self,
        backend: Backend,
    ) -> Result<sqlx::query::QueryScalar<'static, Any, O, AnyArguments>, sqlx::Error>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let (sql, arguments) = self.finish(backend)?;
        Ok(sqlx::query_scalar_with(AssertSqlSafe(sql), arguments))
    }

    fn finish(self, backend: Backend) -> Result<(String, AnyArguments), sqlx::Error> {
        if let Some(err) = self.error {
            return Err(sqlx::Error::Encode(err));
        }
        Ok(match backend {
            Backend::Sqlite => (self.positional, self.arguments),
            Backend::Postgres => (self.sql, self.arguments),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built_sql(backend: Backend) -> String {
        use sqlx::Execute;
        let mut query = SqlBuilder::new("SELECT x FROM t WHERE a = ");
        query
            .push_bind(7_i64)
            .push(" AND b IN (")
            .push_list(["p", "q"])
            .push(")");
        let built = query.build(backend).expect("every value encodes");
        built.sql().as_str().to_string()
    }

    #[test]
    fn built_statements_use_each_engines_placeholders() {
        assert_eq!(
            built_sql(Backend::Sqlite),
            "SELECT x FROM t WHERE a = ? AND b IN (?, ?)"
        );
        assert_eq!(
            built_sql(Backend::Postgres),
            "SELECT x FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact_url("postgres://airlock:s3cret@db.example:5432/airlock?sslmode=require"),
            "postgres://***@db.example:5432/airlock?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://db/airlock?user=a&password=s3cret"),
            "postgresql://db/airlock?user=a&password=***"
        );
        assert_eq!(redact_url("postgres://db/airlock"), "postgres://db/airlock");
        assert_eq!(redact_url("not a url s3cret"), "***");
        // Unencoded '#', '/' or '?' in the password: the authority cannot be told apart.
        for url in [
            "postgres://airlock:s3cr#et@db/airlock",
            "postgres://airlock:s3cr/et@db/airlock",
            "postgres://airlock:s3cr?et@db/airlock",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("s3cr"), "{url} shown as {shown}");
            assert_eq!(shown, "postgres://***");
        }
        assert_eq!(
            redact_url("postgres://airlock:p@ss@db/airlock"),
            "postgres://***@db/airlock"
        );
        let location = DatabaseLocation::Postgres("postgres://u:s3cret@h/d".into());
        assert!(!format!("{location:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn a_path_with_url_characters_opens_the_same_file() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b?c#d%41.db");
        std::fs::write(&path, b"").unwrap();
        let options = sqlite_options(&path, false).unwrap();
        let mut connection: AnyConnection = sqlx::ConnectOptions::connect(&options).await.unwrap();
        connection
            .execute("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        assert!(!dir.path().join("a b").exists());
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::postgres_timeouts_sql;

    #[test]
    fn a_setting_named_in_the_url_options_wins_and_only_that_one() {
        let base = "postgres://airlock@db.example/airlock";
        let all = postgres_timeouts_sql(base).unwrap();
        assert!(all.contains("SET lock_timeout = '15s';"), "{all}");
        // deadlock_timeout contains the text lock_timeout: airlock's lock_timeout still applies.
        let deadlock =
            postgres_timeouts_sql(&format!("{base}?options=-c%20deadlock_timeout%3D1s")).unwrap();
        assert_eq!(deadlock, all);
        let own = postgres_timeouts_sql(&format!(
            "{base}?options=-c%20lock_timeout%3D5s%20--statement-timeout%3D300s"
        ))
        .unwrap();
        assert!(!own.contains("lock_timeout = '15s'"), "{own}");
        assert!(!own.contains("statement_timeout"), "{own}");
        assert!(own.contains("idle_in_transaction_session_timeout"), "{own}");
    }
}
