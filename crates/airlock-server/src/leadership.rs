//! Which replica leads: the one that signs audit checkpoints and runs the periodic sweeps (idle
//! uploads, overdue and stalled promotions, anomaly signals, API key expiry notices), so that
//! work happens once however many replicas share the database.
//!
//! Leadership is [`airlock_store::SessionLock`] on [`SessionLockKey::Leader`]: on PostgreSQL a
//! session-level advisory lock on a connection of its own, which every replica tries to take
//! each round and which PostgreSQL frees when its holder's connection ends (a replica killed or
//! stopped gives it up at once; a vanished host within about 11 s, its TCP keepalives). A round
//! is at most [`CHECK_INTERVAL`] apart, so another replica leads within a few seconds of the
//! leader dying. On the embedded SQLite database the one process always leads.
//!
//! Every replica serves every request and accepts writes; leadership decides background work
//! only. Nothing relies on there being exactly one leader at every instant: checkpoint signing is
//! conditional on the tree it extends, and every sweep's change is conditional on the state it
//! read, so a replica that believes for a moment longer that it leads does no harm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use airlock_store::{Metadata, SessionLock, SessionLockKey};

/// How often a replica re-checks (leader) or tries to take (follower) leadership at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// This replica's view of leadership.
pub struct Leadership {
    lock: tokio::sync::Mutex<Checked>,
    leader: AtomicBool,
}

struct Checked {
    lock: SessionLock,
    at: Option<Instant>,
}

impl Leadership {
    /// Leadership over `metadata`'s database: taken from the start on the embedded database
    /// (one process, which always leads), else not yet taken.
    pub fn new(metadata: &Metadata) -> Self {
        Self {
            lock: tokio::sync::Mutex::new(Checked {
                lock: metadata.session_lock(SessionLockKey::Leader),
                at: None,
            }),
            leader: AtomicBool::new(metadata.backend() == airlock_store::Backend::Sqlite),
        }
    }

    /// Whether this replica leads now: takes leadership if it is free, or checks that it still
    /// holds it (at most once per [`CHECK_INTERVAL`]; in between, the last answer). A database
    /// error loses leadership until a later round takes it again.
    pub async fn lead(&self) -> bool {
        let mut checked = self.lock.lock().await;
        if checked.at.is_some_and(|at| at.elapsed() < CHECK_INTERVAL) {
            return self.is_leader();
        }
        let leads = match checked.lock.hold().await {
            Ok(leads) => leads,
            Err(err) => {
                tracing::warn!(error = %err, "checking leadership failed; this replica does not lead until it can check again");
                false
            }
        };
        checked.at = Some(Instant::now());
        let was = self.leader.swap(leads, Ordering::SeqCst);
        // Set every check, not only on a change: the first check may come before the metrics
        // recorder is installed.
        metrics::gauge!(crate::metrics::REPLICA_LEADER).set(if leads { 1.0 } else { 0.0 });
        if leads != was {
            if leads {
                tracing::info!(
                    "this replica leads: it signs audit checkpoints and runs the periodic sweeps"
                );
            } else {
                tracing::warn!("this replica no longer leads");
            }
        }
        leads
    }

    /// The answer of the last [`Leadership::lead`].
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Gives leadership up (at shutdown), so another replica takes it at its next round.
    pub async fn step_down(&self) {
        let mut checked = self.lock.lock().await;
        checked.lock.release().await;
        checked.at = None;
        if self.leader.swap(false, Ordering::SeqCst) {
            metrics::gauge!(crate::metrics::REPLICA_LEADER).set(0.0);
            tracing::info!("this replica stepped down as leader");
        }
    }
}
