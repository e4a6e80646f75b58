//! The PostgreSQL and S3 helpers the benchmarks on the distributed engines share (`engines.rs`,
//! `replicas.rs`): a fresh, randomly named database and bucket per run, created and dropped with
//! `psql` (Debian's postgresql-client) as the role of `AIRLOCK_TEST_POSTGRES_URL`.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// `N` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// 16 random hex digits, for database and bucket names.
pub fn random_suffix() -> Result<String> {
    Ok(hex::encode(random_bytes::<8>()?))
}

/// `url` (a PostgreSQL URL) with its database replaced by `name`.
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..end]),
        None => format!("{}/{name}", &base[..end]),
    }
}

/// Runs `sql` with `psql` against `url`.
pub fn psql(url: &str, sql: &str) -> Result<()> {
    let output = Command::new("psql")
        .args(["-q", url, "-c", sql])
        .output()
        .context("run psql (Debian's postgresql-client)")?;
    if !output.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// A new database `airlock_bench_<random>` on the server of `admin_url` (a role that may
/// `CREATE DATABASE`), dropped (with its connections) when this goes.
pub struct BenchDatabase {
    admin_url: String,
    /// The database's name.
    pub name: String,
    /// The URL of the database, as `admin_url`'s role.
    pub url: String,
}

impl BenchDatabase {
    /// Creates the database.
    pub fn create(admin_url: &str) -> Result<Self> {
        let name = format!("airlock_bench_{}", random_suffix()?);
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            admin_url: admin_url.to_string(),
            url: url_with_database(admin_url, &name),
            name,
        })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_options_kept() {
        assert_eq!(
            url_with_database("postgres://u@h:5432/postgres", "b"),
            "postgres://u@h:5432/b"
        );
        assert_eq!(
            url_with_database("postgres://u@h/postgres?sslmode=disable", "b"),
            "postgres://u@h/b?sslmode=disable"
        );
        assert_eq!(url_with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
