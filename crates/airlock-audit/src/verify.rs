//! Whole-log verification, for clients and offline audits: recompute the tree from the entries and
//! compare it with the stored leaf hashes and the signed checkpoints.
//!
//! [`TreeBuilder`] keeps only the roots of the perfect subtrees covering the leaves pushed so far
//! (one per set bit of the size), so pushing a leaf costs amortized two hashes and the root of the
//! current size costs `log2(size)` hashes. [`LogVerifier`] checks entries pushed one at a time
//! against it (for callers that page through a log); [`verify_log`] feeds it from an iterator.

use crate::{Hash, VerifiedCheckpoint, VerifyError, leaf_hash, node_hash};

/// Builds RFC 6962 tree roots incrementally, one leaf at a time, without storing the leaves.
///
/// For every size, [`TreeBuilder::root`] equals [`crate::tree_root`] of the same leaves.
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    size: u64,
    /// Roots of the perfect subtrees covering leaves `0..size`, largest (leftmost) first; subtree
    /// `i` has `2^b` leaves where `b` is the `i`th highest set bit of `size`.
    subtree_roots: Vec<Hash>,
}

impl TreeBuilder {
    /// A builder for the empty tree.
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    /// Appends the leaf with hash `leaf` (see [`crate::leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let mut merged = leaf;
        // Each trailing one bit of the old size is a subtree of the same size as `merged`.
        let mut size_bits = self.size;
        while size_bits & 1 == 1 {
            let Some(left) = self.subtree_roots.pop() else {
                break;
            };
            merged = node_hash(&left, &merged);
            size_bits >>= 1;
        }
        self.subtree_roots.push(merged);
        self.size += 1;
    }

    /// The number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree of all leaves pushed so far ([`Hash::EMPTY_TREE`] if none).
    pub fn root(&self) -> Hash {
        let mut right_to_left = self.subtree_roots.iter().rev();
        match right_to_left.next() {
            None => Hash::EMPTY_TREE,
            Some(rightmost) => {
                right_to_left.fold(*rightmost, |right, left| node_hash(left, &right))
            }
        }
    }
}

/// The result of a successful [`verify_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    /// The number of entries verified.
    pub size: u64,
    /// The root hash of the tree of all verified entries.
    pub root: Hash,
    /// How many checkpoints matched the recomputed tree.
    pub checkpoints_checked: usize,
}

/// Verifies a whole log and reports the first problem, naming the entry where it lies.
///
/// `entries` yields `(index, entry bytes)` in increasing index order starting at 0.
/// `stored_leaf_hash`, when given, returns the leaf hash the log stored or served for an index;
/// each entry's recomputed leaf hash must equal it. Every checkpoint (in any order) must match the
/// tree recomputed at its size, and the entries must reach the largest checkpoint.
///
/// Checks, in entry order: a skipped index is [`VerifyError::MissingEntry`]; a repeated or
/// decreasing index is [`VerifyError::UnorderedEntry`]; a leaf hash mismatch is
/// [`VerifyError::EntryAltered`] (a modified or moved entry); a checkpoint whose root differs is
/// [`VerifyError::RootMismatch`] (entries rewritten together with their hashes); running out of
/// entries before a checkpoint's size is [`VerifyError::Truncated`].
///
/// Runs in one pass with O(log n) memory besides the entry being read: it is [`LogVerifier`] fed
/// from an iterator.
pub fn verify_log<I, B>(
    entries: I,
    stored_leaf_hash: Option<&dyn Fn(u64) -> Option<Hash>>,
    checkpoints: &[VerifiedCheckpoint],
) -> Result<LogReport, VerifyError>
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    let mut verifier = LogVerifier::new(checkpoints)?;
    for (index, entry) in entries {
        match stored_leaf_hash {
            Some(stored_leaf_hash) => {
                verifier.push_checked(index, entry.as_ref(), stored_leaf_hash(index))?
            }
            None => verifier.push(index, entry.as_ref())?,
        }
    }
    verifier.finish()
}

/// [`verify_log`] one entry at a time, for callers that read a log in pages (from a database,
/// from tiles) and must not hold it whole: memory stays O(log n) however long the log.
///
/// Feed every entry in index order with [`LogVerifier::push_checked`] (or [`LogVerifier::push`]
/// where no stored leaf hashes exist), then call [`LogVerifier::finish`]. Each call reports the
/// first problem as [`verify_log`] does, naming the entry.
#[derive(Debug, Clone)]
pub struct LogVerifier {
    tree: TreeBuilder,
    checkpoints: CheckpointCursor,
}

impl LogVerifier {
    /// A verifier expecting entry 0 next, checking against `checkpoints` (in any order); a
    /// checkpoint of size 0 is checked at once.
    pub fn new(checkpoints: &[VerifiedCheckpoint]) -> Result<LogVerifier, VerifyError> {
        let mut verifier = LogVerifier {
            tree: TreeBuilder::new(),
            checkpoints: CheckpointCursor::new(checkpoints),
        };
        verifier.checkpoints.check_reached(&verifier.tree)?;
        Ok(verifier)
    }

    /// The number of entries verified so far (the index expected next).
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Adds entry `index`, whose stored leaf hash is `stored_leaf_hash` (`None`: the log has
    /// none, [`VerifyError::MissingLeafHash`]); checks the index, the leaf hash, and every
    /// checkpoint of the size reached.
    pub fn push_checked(
        &mut self,
        index: u64,
        entry: &[u8],
        stored_leaf_hash: Option<Hash>,
    ) -> Result<(), VerifyError> {
        self.push_leaf_checked(index, leaf_hash(entry), stored_leaf_hash)
    }

    /// [`LogVerifier::push_checked`] for an entry whose leaf hash ([`crate::leaf_hash`] of its
    /// bytes) the caller computed already.
    pub fn push_leaf_checked(
        &mut self,
        index: u64,
        leaf: Hash,
        stored_leaf_hash: Option<Hash>,
    ) -> Result<(), VerifyError> {
        self.check_index(index)?;
        match stored_leaf_hash {
            Some(stored) if stored == leaf => {}
            Some(_) => return Err(VerifyError::EntryAltered { index }),
            None => return Err(VerifyError::MissingLeafHash { index }),
        }
        self.add_leaf(leaf)
    }

    /// Adds entry `index` without a stored leaf hash to compare with; checks the index and every
    /// checkpoint of the size reached.
    pub fn push(&mut self, index: u64, entry: &[u8]) -> Result<(), VerifyError> {
        self.check_index(index)?;
        self.add_leaf(leaf_hash(entry))
    }

    /// Ends the log: fails with [`VerifyError::Truncated`] if a checkpoint is larger than the
    /// entries pushed.
    pub fn finish(self) -> Result<LogReport, VerifyError> {
        if let Some(checkpoint_size) = self.checkpoints.next_size() {
            return Err(VerifyError::Truncated {
                have: self.tree.size(),
                checkpoint_size,
            });
        }
        Ok(LogReport {
            size: self.tree.size(),
            root: self.tree.root(),
            checkpoints_checked: self.checkpoints.checked,
        })
    }

    fn check_index(&self, index: u64) -> Result<(), VerifyError> {
        let expected = self.tree.size();
        if index > expected {
            return Err(VerifyError::MissingEntry { index: expected });
        }
        if index < expected {
            return Err(VerifyError::UnorderedEntry { index, expected });
        }
        Ok(())
    }

    fn add_leaf(&mut self, leaf: Hash) -> Result<(), VerifyError> {
        self.tree.push(leaf);
        self.checkpoints.check_reached(&self.tree)
    }
}

/// The checkpoints sorted by size, consumed as the recomputed tree grows.
#[derive(Debug, Clone)]
struct CheckpointCursor {
    by_size: Vec<(u64, Hash)>,
    next: usize,
    last_good_size: u64,
    checked: usize,
}

impl CheckpointCursor {
    fn new(checkpoints: &[VerifiedCheckpoint]) -> CheckpointCursor {
        let mut by_size: Vec<(u64, Hash)> = checkpoints
            .iter()
            .map(|checkpoint| (checkpoint.size, checkpoint.root))
            .collect();
        by_size.sort_by_key(|(size, _)| *size);
        CheckpointCursor {
            by_size,
            next: 0,
            last_good_size: 0,
            checked: 0,
        }
    }

    /// The size of the smallest checkpoint not yet checked.
    fn next_size(&self) -> Option<u64> {
        self.by_size.get(self.next).map(|(size, _)| *size)
    }

    /// Checks every checkpoint of exactly the tree's current size.
    fn check_reached(&mut self, tree: &TreeBuilder) -> Result<(), VerifyError> {
        let size = tree.size();
        if self.next_size() != Some(size) {
            return Ok(());
        }
        let root = tree.root();
        while let Some(&(checkpoint_size, checkpoint_root)) = self.by_size.get(self.next) {
            if checkpoint_size != size {
                break;
            }
            if checkpoint_root != root {
                return Err(VerifyError::RootMismatch {
                    size,
                    last_good_size: self.last_good_size,
                });
            }
            self.last_good_size = size;
            self.checked += 1;
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_builder_has_empty_tree_root() {
        let tree = TreeBuilder::new();
        assert_eq!(tree.size(), 0);
        assert_eq!(tree.root(), Hash::EMPTY_TREE);
    }

    #[test]
    fn one_leaf_tree_root_is_the_leaf_hash() {
        let mut tree = TreeBuilder::new();
        tree.push(leaf_hash(b"only"));
        assert_eq!(tree.root(), leaf_hash(b"only"));
    }

    #[test]
    fn subtree_roots_track_the_set_bits_of_the_size() {
        let mut tree = TreeBuilder::new();
        for size in 1..=300u64 {
            tree.push(leaf_hash(&size.to_be_bytes()));
            assert_eq!(tree.subtree_roots.len() as u32, size.count_ones());
        }
    }

    #[test]
    fn empty_log_with_no_checkpoints_passes() {
        let report = verify_log(Vec::<(u64, Vec<u8>)>::new(), None, &[]).unwrap();
        assert_eq!(report.size, 0);
        assert_eq!(report.root, Hash::EMPTY_TREE);
        assert_eq!(report.checkpoints_checked, 0);
    }
}
