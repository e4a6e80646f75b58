//! Inclusion proofs (an entry is in a tree) and consistency proofs (an older tree is a prefix of a
//! newer one), RFC 6962 section 2.1.1 / 2.1.2 and RFC 9162 section 2.1.3 / 2.1.4.
//!
//! Producing a proof reads stored hashes through a [`HashReader`]; checking one needs only the
//! proof and the trusted roots. [`InclusionProof`] and [`ConsistencyProof`] are the JSON forms
//! served to clients (hashes as lowercase hex); their `verify` methods check them against
//! signature-verified checkpoints.

use serde::{Deserialize, Serialize};

use crate::storage::{TlogReader, check_tree_size};
use crate::{AuditError, Hash, HashReader, VerifiedCheckpoint};

/// More hashes than any inclusion proof in a tree of at most 2^64 leaves has.
const MAX_INCLUSION_PROOF_HASHES: usize = 64;

/// More hashes than any consistency proof between trees of at most 2^64 leaves has.
const MAX_CONSISTENCY_PROOF_HASHES: usize = 128;

/// The audit path proving that leaf `index` is in the tree of the first `tree_size` leaves.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    tree_size: u64,
    index: u64,
    reader: &R,
) -> Result<Vec<Hash>, AuditError> {
    check_tree_size(tree_size)?;
    if index >= tree_size {
        return Err(AuditError::IndexOutOfRange { index, tree_size });
    }
    let adapter = TlogReader::new(reader);
    match tlog_tiles::prove_record(tree_size, index, &adapter) {
        Ok(proof) => Ok(proof.into_iter().map(Hash::from_tlog).collect()),
        Err(error) => Err(adapter.into_error(error)),
    }
}

/// Checks that `proof` shows the leaf hash `leaf` at position `index` in the tree of `tree_size`
/// leaves whose root is `root`.
pub fn check_inclusion(
    proof: &[Hash],
    tree_size: u64,
    root: &Hash,
    index: u64,
    leaf: &Hash,
) -> Result<(), AuditError> {
    if index >= tree_size {
        return Err(AuditError::IndexOutOfRange { index, tree_size });
    }
    let invalid = AuditError::InclusionProofInvalid { index, tree_size };
    if proof.len() > MAX_INCLUSION_PROOF_HASHES {
        return Err(invalid);
    }
    let proof: Vec<tlog_tiles::Hash> = proof.iter().map(|hash| hash.to_tlog()).collect();
    tlog_tiles::check_record(&proof, tree_size, root.to_tlog(), index, leaf.to_tlog())
        .map_err(|_| invalid)
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves.
/// From the empty tree (`old_size == 0`) the proof is empty.
pub fn consistency_proof<R: HashReader + ?Sized>(
    new_size: u64,
    old_size: u64,
    reader: &R,
) -> Result<Vec<Hash>, AuditError> {
    check_tree_size(new_size)?;
    if old_size > new_size {
        return Err(AuditError::OldSizeAfterNewSize { old_size, new_size });
    }
    if old_size == 0 {
        return Ok(Vec::new());
    }
    let adapter = TlogReader::new(reader);
    match tlog_tiles::prove_tree(new_size, old_size, &adapter) {
        Ok(proof) => Ok(proof.into_iter().map(Hash::from_tlog).collect()),
        Err(error) => Err(adapter.into_error(error)),
    }
}

/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` is a prefix of
/// the tree of `new_size` leaves with root `new_root`.
///
/// From the empty tree, only an empty proof and the empty-tree root are accepted.
pub fn check_consistency(
    proof: &[Hash],
    new_size: u64,
    new_root: &Hash,
    old_size: u64,
    old_root: &Hash,
) -> Result<(), AuditError> {
    if old_size > new_size {
        return Err(AuditError::OldSizeAfterNewSize { old_size, new_size });
    }
    let invalid = AuditError::ConsistencyProofInvalid { old_size, new_size };
    if old_size == 0 {
        return if proof.is_empty() && *old_root == Hash::EMPTY_TREE {
            Ok(())
        } else {
            Err(invalid)
        };
    }
    if proof.len() > MAX_CONSISTENCY_PROOF_HASHES {
        return Err(invalid);
    }
    let proof: Vec<tlog_tiles::Hash> = proof.iter().map(|hash| hash.to_tlog()).collect();
    tlog_tiles::check_tree(
        &proof,
        new_size,
        new_root.to_tlog(),
        old_size,
        old_root.to_tlog(),
    )
    .map_err(|_| invalid)
}

/// A served inclusion proof: entry `index`, with leaf hash `leaf_hash`, is in the tree of
/// `tree_size` leaves. In JSON the hashes are lowercase hex strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The position of the entry in the log.
    pub index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The RFC 6962 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// The audit path, from the leaf's sibling up to the root's child.
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Builds the proof for leaf `index` in the tree of `tree_size` leaves from stored hashes.
    pub fn prove<R: HashReader + ?Sized>(
        tree_size: u64,
        index: u64,
        reader: &R,
    ) -> Result<InclusionProof, AuditError> {
        let hashes = inclusion_proof(tree_size, index, reader)?;
        let leaf_index = crate::stored_hash_index(0, index)?;
        let leaf_hash = crate::storage::read_one(reader, leaf_index)?;
        Ok(InclusionProof {
            index,
            tree_size,
            leaf_hash,
            hashes,
        })
    }

    /// Checks that `leaf_hash` is at `index` in the tree of the signed `checkpoint`, which must
    /// be of size `tree_size`. It does not look at any entry bytes: see [`Self::verify_entry`].
    pub fn verify(&self, checkpoint: &VerifiedCheckpoint) -> Result<(), AuditError> {
        if checkpoint.size != self.tree_size {
            return Err(AuditError::ProofSizeMismatch {
                proof_size: self.tree_size,
                checkpoint_size: checkpoint.size,
            });
        }
        check_inclusion(
            &self.hashes,
            self.tree_size,
            &checkpoint.root,
            self.index,
            &self.leaf_hash,
        )
    }

    /// Checks that `entry` is the entry at `index` in the tree of the signed `checkpoint`.
    pub fn verify_entry(
        &self,
        entry: &[u8],
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<(), AuditError> {
        if crate::leaf_hash(entry) != self.leaf_hash {
            return Err(AuditError::ProofLeafMismatch { index: self.index });
        }
        self.verify(checkpoint)
    }
}

/// A served consistency proof: the tree of `old_size` leaves is a prefix of the tree of
/// `new_size` leaves. In JSON the hashes are lowercase hex strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The size of the older tree.
    pub old_size: u64,
    /// The size of the newer tree.
    pub new_size: u64,
    /// The consistency proof hashes.
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Builds the proof from the tree of `old_size` leaves to the tree of `new_size` leaves.
    pub fn prove<R: HashReader + ?Sized>(
        old_size: u64,
        new_size: u64,
        reader: &R,
    ) -> Result<ConsistencyProof, AuditError> {
        Ok(ConsistencyProof {
            old_size,
            new_size,
            hashes: consistency_proof(new_size, old_size, reader)?,
        })
    }

    /// Checks that the signed `old` checkpoint's tree is a prefix of the signed `new`
    /// checkpoint's tree: same log, sizes matching the proof, and a valid proof.
    pub fn verify(
        &self,
        old: &VerifiedCheckpoint,
        new: &VerifiedCheckpoint,
    ) -> Result<(), AuditError> {
        if old.origin != new.origin {
            return Err(AuditError::CheckpointsFromDifferentLogs {
                old_origin: old.origin.clone(),
                new_origin: new.origin.clone(),
            });
        }
        for (proof_size, checkpoint_size) in [(self.old_size, old.size), (self.new_size, new.size)]
        {
            if proof_size != checkpoint_size {
                return Err(AuditError::ProofSizeMismatch {
                    proof_size,
                    checkpoint_size,
                });
            }
        }
        check_consistency(
            &self.hashes,
            self.new_size,
            &new.root,
            self.old_size,
            &old.root,
        )
    }
}
