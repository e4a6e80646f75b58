//! Reading a stored audit log either through a database's pool ([`Metadata`]) or through one
//! open transaction ([`TransactionReader`]): offline verification (`verify_stored_log` in the
//! server) runs the same code on both, so `airlock migrate-store` can verify the copied log
//! inside the copy's transaction, before it commits.

use std::future::Future;

use sqlx::AnyConnection;
use tokio::sync::Mutex;

use crate::audit::{
    DifferingHash, StoredCheckpoint, StoredEntry, checkpoints_on, entries_on, entry_count_on,
    hashes_differing_on,
};
use crate::error::StoreError;
use crate::metadata::Metadata;

/// What offline verification of a stored audit log reads.
pub trait AuditLogReader: Sync {
    /// Every checkpoint, oldest first.
    fn checkpoints(&self)
    -> impl Future<Output = Result<Vec<StoredCheckpoint>, StoreError>> + Send;
    /// How many entries the log holds (integrated or not).
    fn audit_entry_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Entries with `start <= index < end`, in order.
    fn audit_entries(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<StoredEntry>, StoreError>> + Send;
    /// Which of `expected` (stored-hash index, hash) pairs the log does not hold as given: the
    /// index and what is stored there (`None`: nothing); empty when all agree.
    fn audit_hashes_differing(
        &self,
        expected: &[(u64, [u8; 32])],
    ) -> impl Future<Output = Result<Vec<DifferingHash>, StoreError>> + Send;
}

impl AuditLogReader for Metadata {
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        Metadata::checkpoints(self).await
    }

    async fn audit_entry_count(&self) -> Result<u64, StoreError> {
        Metadata::audit_entry_count(self).await
    }

    async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        Metadata::audit_entries(self, start, end).await
    }

    async fn audit_hashes_differing(
        &self,
        expected: &[(u64, [u8; 32])],
    ) -> Result<Vec<DifferingHash>, StoreError> {
        Metadata::audit_hashes_differing(self, expected).await
    }
}

/// Reads through one open transaction: sees what it wrote before it commits.
pub struct TransactionReader<'a> {
    connection: Mutex<&'a mut AnyConnection>,
}

impl<'a> TransactionReader<'a> {
    /// A reader over the transaction (or connection) `connection`.
    pub fn new(connection: &'a mut AnyConnection) -> Self {
        Self {
            connection: Mutex::new(connection),
        }
    }

    /// Every tag as (repository, tag, digest), sorted, as [`Metadata::tag_digests`].
    pub async fn tag_digests(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut connection = self.connection.lock().await;
        crate::migrate::tag_digests_on(&mut connection).await
    }
}

impl AuditLogReader for TransactionReader<'_> {
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        checkpoints_on(*self.connection.lock().await).await
    }

    async fn audit_entry_count(&self) -> Result<u64, StoreError> {
        entry_count_on(*self.connection.lock().await).await
    }

    async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        entries_on(*self.connection.lock().await, start, end).await
    }

    async fn audit_hashes_differing(
        &self,
        expected: &[(u64, [u8; 32])],
    ) -> Result<Vec<DifferingHash>, StoreError> {
        hashes_differing_on(*self.connection.lock().await, expected).await
    }
}
