//! The server's view of the tree: "stored hashes" in the dense order of Go's `sumdb/tlog`.
//!
//! Every leaf hash and every hash of a complete (perfect) subtree is stored exactly once, at a
//! stored-hash index given by [`stored_hash_index`] (Crosby and Wallach's post-order layout). When
//! leaf `n` is appended, the hashes to persist are its leaf hash and the roots of the subtrees it
//! completes, all at consecutive indexes: [`hashes_to_store`] computes them for a batch of leaves.
//! Roots, proofs and tiles for any tree size up to the current one are then computed from at most a
//! logarithmic number of stored hashes, read through the [`HashReader`] the caller implements over
//! its storage (a database table keyed by index, for airlock's server).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::{AuditError, Hash};

/// The largest tree size this crate computes stored-hash indexes for (2^62 leaves). Beyond it the
/// indexes would overflow 64 bits; no real log comes near it.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Reads previously stored hashes by stored-hash index.
///
/// Implemented by the caller over its storage. Implementations must return exactly one hash per
/// requested index, in the requested order, or an error (for example
/// [`AuditError::MissingStoredHash`] or [`AuditError::HashStorage`]). A wrong count is reported as
/// [`AuditError::HashReaderCountMismatch`], never a panic.
pub trait HashReader {
    /// Returns the hashes stored at `indexes`, in the same order.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, AuditError>;
}

/// Stored hashes held in memory: for tests, offline tools and small logs.
#[derive(Debug, Clone, Default)]
pub struct MemoryHashes {
    hashes: HashMap<u64, Hash>,
}

impl MemoryHashes {
    /// An empty store.
    pub fn new() -> MemoryHashes {
        MemoryHashes::default()
    }

    /// Stores `hash` at stored-hash `index`, replacing any previous hash there.
    pub fn insert(&mut self, index: u64, hash: Hash) {
        self.hashes.insert(index, hash);
    }

    /// The hash stored at `index`, if any.
    pub fn get(&self, index: u64) -> Option<Hash> {
        self.hashes.get(&index).copied()
    }

    /// How many hashes are stored.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

impl Extend<(u64, Hash)> for MemoryHashes {
    fn extend<T: IntoIterator<Item = (u64, Hash)>>(&mut self, pairs: T) {
        self.hashes.extend(pairs);
    }
}

impl FromIterator<(u64, Hash)> for MemoryHashes {
    fn from_iter<T: IntoIterator<Item = (u64, Hash)>>(pairs: T) -> MemoryHashes {
        MemoryHashes {
            hashes: pairs.into_iter().collect(),
        }
    }
}

impl HashReader for MemoryHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
        indexes
            .iter()
            .map(|&index| {
                self.get(index)
                    .ok_or(AuditError::MissingStoredHash { index })
            })
            .collect()
    }
}

/// The stored-hash index of the `n`th hash at tree `level` (level 0 holds the leaf hashes; level
/// `l` the roots of the perfect subtrees of `2^l` leaves).
///
/// Fails with [`AuditError::TreeTooLarge`] when that hash would lie beyond [`MAX_TREE_SIZE`] leaves.
pub fn stored_hash_index(level: u8, n: u64) -> Result<u64, AuditError> {
    let leaves_covered = 1u64
        .checked_shl(u32::from(level))
        .and_then(|subtree_leaves| n.checked_add(1)?.checked_mul(subtree_leaves));
    match leaves_covered {
        Some(leaves) if leaves <= MAX_TREE_SIZE => Ok(tlog_tiles::stored_hash_index(level, n)),
        _ => Err(AuditError::TreeTooLarge {
            size: leaves_covered.unwrap_or(u64::MAX),
        }),
    }
}

/// How many hashes are stored for a tree of `tree_size` leaves: the next free stored-hash index.
pub fn stored_hash_count(tree_size: u64) -> Result<u64, AuditError> {
    check_tree_size(tree_size)?;
    Ok(tlog_tiles::stored_hash_count(tree_size))
}

/// Every `(stored_hash_index, hash)` pair to persist when appending the leaves `first_index..
/// first_index + leaf_hashes.len()`, in increasing index order.
///
/// `reader` must hold the hashes stored for the first `first_index` leaves (nothing from this
/// batch); hashes produced earlier in the batch are taken from the batch itself. The returned
/// indexes are exactly `stored_hash_count(first_index)..stored_hash_count(first_index + len)`.
pub fn hashes_to_store<R: HashReader + ?Sized>(
    first_index: u64,
    leaf_hashes: &[Hash],
    reader: &R,
) -> Result<Vec<(u64, Hash)>, AuditError> {
    let batch_len = u64::try_from(leaf_hashes.len()).unwrap_or(u64::MAX);
    let end = first_index.saturating_add(batch_len);
    check_tree_size(end)?;

    let mut overlay = BatchOverlay {
        earlier: reader,
        batch: HashMap::new(),
    };
    let mut to_store = Vec::with_capacity(leaf_hashes.len() * 2);
    for (leaf_index, leaf) in (first_index..end).zip(leaf_hashes) {
        let new_hashes = {
            let adapter = TlogReader::new(&overlay);
            tlog_tiles::stored_hashes_for_record_hash(leaf_index, leaf.to_tlog(), &adapter)
                .map_err(|error| adapter.into_error(error))?
        };
        let first_stored = tlog_tiles::stored_hash_index(0, leaf_index);
        for (stored_index, hash) in (first_stored..).zip(new_hashes) {
            let hash = Hash::from_tlog(hash);
            overlay.batch.insert(stored_index, hash);
            to_store.push((stored_index, hash));
        }
    }
    Ok(to_store)
}

/// The root hash of the tree of the first `tree_size` leaves, from at most `1 + log2(tree_size)`
/// stored hashes. The empty tree's root is [`Hash::EMPTY_TREE`].
pub fn tree_root<R: HashReader + ?Sized>(tree_size: u64, reader: &R) -> Result<Hash, AuditError> {
    check_tree_size(tree_size)?;
    let adapter = TlogReader::new(reader);
    tlog_tiles::tree_hash(tree_size, &adapter)
        .map(Hash::from_tlog)
        .map_err(|error| adapter.into_error(error))
}

/// Rejects tree sizes whose stored-hash indexes would overflow.
pub(crate) fn check_tree_size(tree_size: u64) -> Result<(), AuditError> {
    if tree_size > MAX_TREE_SIZE {
        return Err(AuditError::TreeTooLarge { size: tree_size });
    }
    Ok(())
}

/// A reader that answers from the hashes of the batch being appended first, then from storage.
struct BatchOverlay<'a, R: HashReader + ?Sized> {
    earlier: &'a R,
    batch: HashMap<u64, Hash>,
}

impl<R: HashReader + ?Sized> HashReader for BatchOverlay<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
        let not_in_batch: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|index| !self.batch.contains_key(index))
            .collect();
        let from_storage = if not_in_batch.is_empty() {
            Vec::new()
        } else {
            read_exactly(self.earlier, &not_in_batch)?
        };
        let mut from_storage = from_storage.into_iter();
        let mut hashes = Vec::with_capacity(indexes.len());
        for index in indexes {
            let hash = match self.batch.get(index) {
                Some(hash) => Some(*hash),
                None => from_storage.next(),
            };
            hashes.push(hash.ok_or(AuditError::MissingStoredHash { index: *index })?);
        }
        Ok(hashes)
    }
}

/// Reads through `reader`, insisting on one hash per index.
fn read_exactly<R: HashReader + ?Sized>(
    reader: &R,
    indexes: &[u64],
) -> Result<Vec<Hash>, AuditError> {
    let hashes = reader.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(AuditError::HashReaderCountMismatch {
            requested: indexes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

/// Reads the single hash at stored-hash `index`.
pub(crate) fn read_one<R: HashReader + ?Sized>(reader: &R, index: u64) -> Result<Hash, AuditError> {
    read_exactly(reader, &[index])?
        .pop()
        .ok_or(AuditError::MissingStoredHash { index })
}

/// Presents a [`HashReader`] to `tlog_tiles`, keeping the caller's error (which `tlog_tiles`
/// cannot carry) and guaranteeing the hash count `tlog_tiles` asserts on.
pub(crate) struct TlogReader<'a, R: HashReader + ?Sized> {
    inner: &'a R,
    failure: RefCell<Option<AuditError>>,
}

impl<'a, R: HashReader + ?Sized> TlogReader<'a, R> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: &'a R) -> TlogReader<'a, R> {
        TlogReader {
            inner,
            failure: RefCell::new(None),
        }
    }

    /// The error to report for a failed `tlog_tiles` call: the reader's own error if it failed,
    /// otherwise the library's reason.
    pub(crate) fn into_error(self, error: tlog_tiles::Error) -> AuditError {
        self.failure
            .into_inner()
            .unwrap_or_else(|| AuditError::TreeComputation {
                reason: error.to_string(),
            })
    }
}

impl<R: HashReader + ?Sized> tlog_tiles::HashReader for TlogReader<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        match read_exactly(self.inner, indexes) {
            Ok(hashes) => Ok(hashes.into_iter().map(Hash::to_tlog).collect()),
            Err(error) => {
                self.failure.replace(Some(error));
                Err(tlog_tiles::Error::IndexesNotInTree)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;

    struct ShortReader;

    impl HashReader for ShortReader {
        fn read_hashes(&self, _indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
            Ok(Vec::new())
        }
    }

    fn leaves(count: u64) -> Vec<Hash> {
        (0..count).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn stored_indexes_are_dense_and_consecutive() {
        let leaf_hashes = leaves(300);
        let stored = hashes_to_store(0, &leaf_hashes, &MemoryHashes::new()).unwrap();
        let indexes: Vec<u64> = stored.iter().map(|(index, _)| *index).collect();
        let expected: Vec<u64> = (0..stored_hash_count(300).unwrap()).collect();
        assert_eq!(indexes, expected);
    }

    #[test]
    fn batches_give_the_same_hashes_as_one_batch() {
        let leaf_hashes = leaves(100);
        let whole = hashes_to_store(0, &leaf_hashes, &MemoryHashes::new()).unwrap();
        let mut storage = MemoryHashes::new();
        let mut in_batches = Vec::new();
        for chunk_start in (0..100).step_by(7) {
            let chunk_end = (chunk_start + 7).min(100);
            let batch = hashes_to_store(
                chunk_start as u64,
                &leaf_hashes[chunk_start..chunk_end],
                &storage,
            )
            .unwrap();
            storage.extend(batch.iter().copied());
            in_batches.extend(batch);
        }
        assert_eq!(whole, in_batches);
    }

    #[test]
    fn appending_without_earlier_hashes_fails_naming_the_missing_hash() {
        let error = hashes_to_store(1, &leaves(1), &MemoryHashes::new()).unwrap_err();
        assert!(matches!(error, AuditError::MissingStoredHash { index: 0 }));
    }

    #[test]
    fn reader_returning_too_few_hashes_is_an_error_not_a_panic() {
        let error = tree_root(5, &ShortReader).unwrap_err();
        assert!(matches!(
            error,
            AuditError::HashReaderCountMismatch { returned: 0, .. }
        ));
        let error = hashes_to_store(1, &leaves(1), &ShortReader).unwrap_err();
        assert!(matches!(error, AuditError::HashReaderCountMismatch { .. }));
    }

    #[test]
    fn oversized_trees_are_refused() {
        let storage = MemoryHashes::new();
        assert!(matches!(
            tree_root(u64::MAX, &storage),
            Err(AuditError::TreeTooLarge { .. })
        ));
        assert!(hashes_to_store(MAX_TREE_SIZE, &leaves(1), &storage).is_err());
        assert!(stored_hash_index(0, MAX_TREE_SIZE).is_err());
        assert!(stored_hash_index(63, 1).is_err());
        assert!(stored_hash_count(u64::MAX).is_err());
        assert_eq!(stored_hash_index(0, MAX_TREE_SIZE - 1).unwrap(), {
            tlog_tiles::stored_hash_index(0, MAX_TREE_SIZE - 1)
        });
    }

    #[test]
    fn empty_tree_root_needs_no_storage() {
        assert_eq!(
            tree_root(0, &MemoryHashes::new()).unwrap(),
            Hash::EMPTY_TREE
        );
    }
}
