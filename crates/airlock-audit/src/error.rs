//! The errors of this crate: [`AuditError`] for keys, checkpoints, stored hashes, proofs and tiles,
//! and [`VerifyError`] for the findings of a whole-log verification.
//!
//! The errors of `tlog_tiles` and `signed_note` never leave this crate; every failure is mapped to a
//! variant here that says what failed.

use thiserror::Error;

/// What went wrong while signing, parsing or checking audit-log data.
#[derive(Debug, Error)]
pub enum AuditError {
    /// A log origin (which is also the signing key's name) was empty, had whitespace or a `+`.
    #[error(
        "log origin {origin:?} is not a valid key name (must be non-empty, without whitespace or '+')"
    )]
    InvalidOrigin {
        /// The rejected origin.
        origin: String,
    },

    /// A private key text was not of the form `PRIVATE+KEY+<name>+<id>+<base64 Ed25519 key>`.
    #[error("malformed log private key (expected PRIVATE+KEY+<name>+<id>+<base64>)")]
    MalformedPrivateKey,

    /// A verifier (public) key text was not of the form `<name>+<id>+<base64 Ed25519 key>`.
    #[error("malformed log verifier key (expected <name>+<id>+<base64>)")]
    MalformedVerifierKey,

    /// A witness verifier key was not of the form `<name>+<id>+base64(0x04 || Ed25519 key)`.
    #[error(
        "malformed witness key {key:?} (expected a cosignature/v1 verifier key <name>+<id>+base64(0x04 || Ed25519 key))"
    )]
    MalformedWitnessKey {
        /// The rejected key text.
        key: String,
    },

    /// A trusted witness's cosignature on a checkpoint does not verify.
    #[error("the cosignature of witness {witness} does not verify (the checkpoint was altered)")]
    CosignatureInvalid {
        /// The witness name.
        witness: String,
    },

    /// An `add-checkpoint` request body is malformed (c2sp.org/tlog-witness).
    #[error("malformed add-checkpoint request: {reason}")]
    MalformedWitnessRequest {
        /// What is wrong with it.
        reason: String,
    },

    /// Signing a checkpoint note failed.
    #[error("signing the checkpoint failed")]
    SigningFailed,

    /// A signed note could not be parsed (bad framing, bad signature line, too large).
    #[error("malformed signed note")]
    MalformedNote,

    /// A note carries no signature by the trusted log key (it may be signed by another key).
    #[error("checkpoint is not signed by the trusted log key {key_name}")]
    CheckpointNotSignedByLogKey {
        /// The name of the trusted key.
        key_name: String,
    },

    /// A note carries a signature line for the trusted log key, but it does not verify: the note
    /// was altered after signing.
    #[error("checkpoint signature by log key {key_name} does not verify (the note was altered)")]
    CheckpointSignatureInvalid {
        /// The name of the trusted key.
        key_name: String,
    },

    /// The note's text is not a C2SP tlog-checkpoint (origin, decimal size, base64 root hash).
    #[error("malformed checkpoint body")]
    MalformedCheckpoint,

    /// The checkpoint's origin line differs from the name of the key that signed it.
    #[error("checkpoint origin {origin:?} does not match the log key name {key_name:?}")]
    CheckpointOriginMismatch {
        /// The origin line of the checkpoint.
        origin: String,
        /// The name of the trusted key.
        key_name: String,
    },

    /// Two checkpoints compared by a consistency proof belong to different logs.
    #[error("checkpoints are from different logs ({old_origin:?} and {new_origin:?})")]
    CheckpointsFromDifferentLogs {
        /// The origin of the older checkpoint.
        old_origin: String,
        /// The origin of the newer checkpoint.
        new_origin: String,
    },

    /// A hash was not 64 hexadecimal digits.
    #[error("malformed hash (expected 64 hexadecimal digits)")]
    MalformedHash,

    /// A tree size exceeds [`crate::MAX_TREE_SIZE`], beyond which stored-hash indexes overflow.
    #[error("tree size {size} exceeds the supported maximum")]
    TreeTooLarge {
        /// The rejected size.
        size: u64,
    },

    /// A leaf index is not inside the tree it was asked about.
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The rejected index.
        index: u64,
        /// The size of the tree.
        tree_size: u64,
    },

    /// A consistency proof was requested or checked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeAfterNewSize {
        /// The older (claimed smaller) size.
        old_size: u64,
        /// The newer size.
        new_size: u64,
    },

    /// An inclusion proof does not prove the leaf is in the tree with that root.
    #[error("inclusion proof for leaf {index} in tree of size {tree_size} does not verify")]
    InclusionProofInvalid {
        /// The leaf index the proof was checked for.
        index: u64,
        /// The tree size the proof was checked against.
        tree_size: u64,
    },

    /// A consistency proof does not prove the old tree is a prefix of the new tree.
    #[error("consistency proof from size {old_size} to size {new_size} does not verify")]
    ConsistencyProofInvalid {
        /// The older tree size.
        old_size: u64,
        /// The newer tree size.
        new_size: u64,
    },

    /// A proof was checked against a checkpoint of a different tree size than it was made for.
    #[error("proof is for tree size {proof_size} but the checkpoint has size {checkpoint_size}")]
    ProofSizeMismatch {
        /// The size the proof claims.
        proof_size: u64,
        /// The size of the checkpoint it was checked against.
        checkpoint_size: u64,
    },

    /// An inclusion proof's leaf hash is not the hash of the entry it was checked for.
    #[error("inclusion proof for leaf {index} is for a different entry")]
    ProofLeafMismatch {
        /// The leaf index of the proof.
        index: u64,
    },

    /// A stored hash needed for the computation is not in the hash storage.
    #[error("stored hash {index} is missing from hash storage")]
    MissingStoredHash {
        /// The stored-hash index (see [`crate::stored_hash_index`]).
        index: u64,
    },

    /// A [`crate::HashReader`] returned a different number of hashes than it was asked for.
    #[error("hash storage returned {returned} hashes for {requested} requested")]
    HashReaderCountMismatch {
        /// How many hashes were requested.
        requested: usize,
        /// How many were returned.
        returned: usize,
    },

    /// The hash storage behind a [`crate::HashReader`] failed.
    #[error("reading stored hashes failed")]
    HashStorage(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The Merkle tree library rejected an input this crate should have caught first.
    #[error("Merkle tree computation failed: {reason}")]
    TreeComputation {
        /// The library's description of the failure.
        reason: String,
    },

    /// A tile path is not a canonical C2SP tlog-tiles path.
    #[error("malformed tile path {path:?}")]
    MalformedTilePath {
        /// The rejected path (shortened if long).
        path: String,
    },

    /// A tile's level, index or width is outside what tlog-tiles allows (width 1..=256,
    /// level 0..=63).
    #[error("invalid tile coordinates: level {level}, index {index}, width {width}")]
    InvalidTileCoordinates {
        /// The tile level.
        level: u8,
        /// The tile index within its level.
        index: u64,
        /// The tile width.
        width: u16,
    },

    /// A tile asks for hashes that a tree of this size does not have (yet).
    #[error(
        "tile level {level}, index {index}, width {width} is beyond a tree of size {tree_size}"
    )]
    TileBeyondTree {
        /// The tile level.
        level: u8,
        /// The tile index within its level.
        index: u64,
        /// The tile width.
        width: u16,
        /// The tree size.
        tree_size: u64,
    },

    /// An entry is too long for an entry bundle (its length must fit in 16 bits).
    #[error(
        "entry {position} of the bundle is {len} bytes, more than the 65535 an entry bundle allows"
    )]
    EntryTooLarge {
        /// The entry's position in the bundle.
        position: usize,
        /// Its length in bytes.
        len: usize,
    },

    /// An entry bundle holds more than 256 entries.
    #[error("an entry bundle holds at most 256 entries, got {count}")]
    TooManyBundleEntries {
        /// The number of entries.
        count: usize,
    },

    /// An entry bundle ends in the middle of a length prefix or an entry.
    #[error("entry bundle is truncated at byte {offset}")]
    TruncatedEntryBundle {
        /// The offset of the incomplete length prefix or entry.
        offset: usize,
    },
}

/// The first problem [`crate::verify_log`] found in a log. Each variant names the entry or the
/// range of entries where the problem lies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// An entry index is skipped: the entry was deleted.
    #[error("entry {index} is missing (deleted)")]
    MissingEntry {
        /// The first missing index.
        index: u64,
    },

    /// Entries came out of order or an index repeats.
    #[error("entry {index} came out of order (expected entry {expected})")]
    UnorderedEntry {
        /// The index that was read.
        index: u64,
        /// The index that should have come next.
        expected: u64,
    },

    /// The entry's recomputed leaf hash differs from the stored leaf hash: the entry was modified,
    /// or moved to another position.
    #[error("entry {index} was altered (its hash differs from the stored leaf hash)")]
    EntryAltered {
        /// The altered entry.
        index: u64,
    },

    /// No stored leaf hash exists for an entry, so it cannot be checked.
    #[error("no stored leaf hash for entry {index}")]
    MissingLeafHash {
        /// The entry without a leaf hash.
        index: u64,
    },

    /// The tree recomputed from the entries differs from a signed checkpoint. The first rewritten
    /// entry lies in `last_good_size..size`.
    #[error(
        "recomputed root at size {size} differs from the signed checkpoint; \
         the first rewritten entry lies in {last_good_size}..{size}"
    )]
    RootMismatch {
        /// The size of the checkpoint that did not match.
        size: u64,
        /// The largest smaller checkpoint size that matched (0 if none).
        last_good_size: u64,
    },

    /// Fewer entries exist than a signed checkpoint covers: the log was truncated.
    #[error("log has {have} entries but a signed checkpoint covers {checkpoint_size}")]
    Truncated {
        /// The number of entries present.
        have: u64,
        /// The size of the smallest checkpoint beyond them.
        checkpoint_size: u64,
    },
}
