//! Locks held across transactions by one process among the replicas on a database: which replica
//! leads (signs audit checkpoints and runs the periodic sweeps) and which runs garbage collection.
//!
//! On PostgreSQL a [`SessionLock`] is a session-level advisory lock (`pg_try_advisory_lock`) held
//! on a connection of its own, taken out of the pool: PostgreSQL releases it when that connection
//! ends, so a replica that dies (SIGKILL, a lost host) gives it up as soon as the server notices
//! the connection is gone: at once for a closed socket, and within about 11 s for a silent peer
//! (the connection sets TCP keepalives of 5 s idle, 2 s interval, 3 probes). The lock is never
//! waited for: [`SessionLock::hold`] tries, and the caller tries again next round. A holder checks
//! its connection each time it asks, and counts the lock as lost when the connection fails or
//! does not answer within [`LOCK_QUERY_TIMEOUT`] (a hung connection never blocks its caller: the
//! connection is dropped, and the next call opens a new one).
//!
//! On the embedded SQLite database one process serves the data directory, so it always holds
//! every lock; callers keep their in-process exclusion for work within the process.

use std::time::Duration;

use sqlx::{AnyConnection, Executor};

use crate::engine::Backend;
use crate::error::StoreError;
use crate::metadata::Metadata;

/// The longest a lock's connection may take to answer (to connect, take or check the lock, or
/// release it): past it the lock counts as lost ([`StoreError::LockTimedOut`]).
pub const LOCK_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a [`SessionLock`] guards. Each has a fixed advisory-lock key, distinct from the writer
/// lock's (`engine::WRITER_LOCK_KEY`) and from one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLockKey {
    /// Leadership: the replica holding it runs the singleton background work.
    Leader,
    /// A garbage-collection run (one at a time across every replica).
    GarbageCollection,
}

impl SessionLockKey {
    /// The advisory-lock key: "airlock" in ASCII followed by a byte naming the lock (the writer
    /// lock's byte is 0).
    fn advisory_key(self) -> i64 {
        match self {
            SessionLockKey::Leader => 0x6169_726c_6f63_6b01,
            SessionLockKey::GarbageCollection => 0x6169_726c_6f63_6b02,
        }
    }
}

/// One process's claim on a [`SessionLockKey`], held until released, dropped, or its connection
/// fails. Made by [`Metadata::session_lock`]; it holds nothing until [`SessionLock::hold`]
/// succeeds.
pub struct SessionLock {
    metadata: Metadata,
    key: SessionLockKey,
    /// PostgreSQL: the lock's own connection, kept between attempts.
    connection: Option<AnyConnection>,
    held: bool,
    /// How long one query on the lock's connection may take ([`LOCK_QUERY_TIMEOUT`]).
    timeout: Duration,
}

impl Metadata {
    /// A claim on `key`, not yet held (see the module docs).
    pub fn session_lock(&self, key: SessionLockKey) -> SessionLock {
        SessionLock {
            metadata: self.clone(),
            key,
            connection: None,
            held: false,
            timeout: LOCK_QUERY_TIMEOUT,
        }
    }
}

impl SessionLock {
    /// Takes the lock if it is free, or checks that it is still held: `true` while this claim
    /// holds it. Never waits for another holder. On an error (the connection failed) the lock
    /// counts as lost and the next call opens a new connection and tries again.
    pub async fn hold(&mut self) -> Result<bool, StoreError> {
        if self.metadata.backend() == Backend::Sqlite {
            self.held = true;
            return Ok(true);
        }
        let timeout = self.timeout;
        let outcome = match tokio::time::timeout(timeout, self.hold_postgres()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::LockTimedOut {
                secs: timeout.as_secs(),
            }),
        };
        if outcome.is_err() {
            // The connection's session, and with it the lock, is gone or unusable.
            self.connection = None;
            self.held = false;
        }
        outcome
    }

    async fn hold_postgres(&mut self) -> Result<bool, StoreError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let mut connection = self.metadata.pool().acquire().await?.detach();
                // The server notices a silent peer (a host that vanished) in about 11 s and
                // ends its session, releasing the lock for another replica.
                connection
                    .execute(
                        "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
                         SET tcp_keepalives_count = 3",
                    )
                    .await?;
                self.held = false;
                self.connection.insert(connection)
            }
        };
        if self.held {
            sqlx::query("SELECT 1").execute(&mut *connection).await?;
            return Ok(true);
        }
        let taken: i64 = sqlx::query_scalar(
            "SELECT CAST(CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END AS BIGINT)",
        )
        .bind(self.key.advisory_key())
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .next()
        .unwrap_or(0);
        self.held = taken == 1;
        Ok(self.held)
    }

    /// Whether the last [`SessionLock::hold`] found the lock held by this claim.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Releases the lock, if held, so another process can take it at once; the connection
    /// closes. (Dropping the claim releases it too, as soon as the server sees the connection
    /// close.)
    pub async fn release(&mut self) {
        let held = std::mem::replace(&mut self.held, false);
        if let Some(mut connection) = self.connection.take() {
            let key = self.key.advisory_key();
            // A hung connection is dropped instead (the server frees the lock when it notices).
            let _ = tokio::time::timeout(self.timeout, async move {
                if held {
                    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(key)
                        .execute(&mut connection)
                        .await;
                }
                let _ = sqlx::Connection::close(connection).await;
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_claim_holds_a_key_until_it_is_released() {
        for meta in crate::testing::engines().await {
            let backend = meta.backend();
            let mut first = meta.session_lock(SessionLockKey::Leader);
            let mut second = meta.session_lock(SessionLockKey::Leader);
            let mut gc = meta.session_lock(SessionLockKey::GarbageCollection);
            assert!(first.hold().await.unwrap());
            assert!(
                first.hold().await.unwrap(),
                "{backend:?}: a held lock stays held"
            );
            assert!(
                gc.hold().await.unwrap(),
                "{backend:?}: keys are independent"
            );
            match backend {
                // One process serves an embedded database: it always leads.
                Backend::Sqlite => assert!(second.hold().await.unwrap()),
                Backend::Postgres => {
                    assert!(!second.hold().await.unwrap(), "taken by the first claim");
                    first.release().await;
                    assert!(!first.held());
                    assert!(second.hold().await.unwrap(), "free once released");
                    assert!(!first.hold().await.unwrap(), "now the second claim's");
                    // A dropped claim's connection closes, and the server frees its lock.
                    drop(second);
                    let mut taken = false;
                    for _ in 0..50 {
                        if first.hold().await.unwrap() {
                            taken = true;
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    assert!(taken, "a dropped claim's lock is freed");
                }
            }
        }
    }

    /// A lock connection that does not answer in time counts as lost: the call returns
    /// [`StoreError::LockTimedOut`] instead of waiting, the claim holds nothing, and the next
    /// call (in time) takes the lock again on a new connection.
    #[tokio::test]
    async fn a_lock_connection_that_does_not_answer_in_time_is_lost() {
        for meta in crate::testing::engines().await {
            if meta.backend() != Backend::Postgres {
                continue;
            }
            let mut claim = meta.session_lock(SessionLockKey::Leader);
            assert!(claim.hold().await.unwrap());
            // The server process behind the claim's connection stops, as a vanished host's
            // would: the connection stays open and nothing answers.
            let connection = claim.connection.as_mut().expect("the claim's connection");
            let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            let backend = rustix::process::Pid::from_raw(backend).expect("a backend pid");
            rustix::process::kill_process(backend, rustix::process::Signal::STOP)
                .expect("stop the lock connection's server process (the test runs as root)");
            claim.timeout = Duration::from_millis(300);
            let outcome = claim.hold().await;
            rustix::process::kill_process(backend, rustix::process::Signal::CONT).unwrap();
            assert!(
                matches!(outcome, Err(StoreError::LockTimedOut { .. })),
                "{outcome:?}"
            );
            assert!(!claim.held());
            assert!(claim.connection.is_none(), "the hung connection is dropped");
            claim.timeout = LOCK_QUERY_TIMEOUT;
            let mut taken = false;
            for _ in 0..50 {
                if claim.hold().await.unwrap() {
                    taken = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(taken, "taken again once its old connection is gone");
            claim.release().await;
        }
    }
}
