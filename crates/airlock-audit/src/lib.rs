//! airlock's tamper-evident audit log, as a library: no SQL, no HTTP, no async.
//!
//! The audit log is an append-only RFC 6962 / RFC 9162 Merkle tree of entries (leaf =
//! SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right)). The server persists the tree as
//! "stored hashes" ([`hashes_to_store`], read back through a [`HashReader`]), signs C2SP
//! tlog-checkpoints with the log's Ed25519 [`LogKey`], and serves inclusion and consistency
//! proofs ([`InclusionProof`], [`ConsistencyProof`]) and C2SP tlog-tiles ([`TilePath`],
//! [`hash_tile`], [`entry_bundle`]). Clients check a checkpoint's signature with
//! [`verify_checkpoint`] and re-verify the whole log offline with [`verify_log`], which names the
//! first deleted, altered or rewritten entry. Witnesses cosign checkpoints ([`WitnessKey`],
//! [`check_add_checkpoint`], [`verify_cosigned_checkpoint`]; c2sp.org/tlog-witness).
//!
//! Parsing is separated from checking: a [`VerifiedCheckpoint`] only comes out of a signature
//! check against one trusted verifier key, and proofs and logs are checked against it. The Merkle
//! computations are those of Cloudflare's `tlog_tiles` (a port of Go's `sumdb/tlog`), and notes
//! are `signed_note`; their error types are mapped into [`AuditError`] and never exposed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
mod error;
mod hash;
mod proof;
mod storage;
mod tile;
mod verify;
mod witness;

pub use checkpoint::{
    CheckpointBody, LogKey, VerifiedCheckpoint, parse_checkpoint_unverified, verify_checkpoint,
};
pub use error::{AuditError, VerifyError};
pub use hash::{HASH_SIZE, Hash, leaf_hash, node_hash};
pub use proof::{
    ConsistencyProof, InclusionProof, check_consistency, check_inclusion, consistency_proof,
    inclusion_proof,
};
pub use storage::{
    HashReader, MAX_TREE_SIZE, MemoryHashes, hashes_to_store, stored_hash_count, stored_hash_index,
    tree_root,
};
pub use tile::{
    FULL_TILE_WIDTH, MAX_TILE_LEVEL, TILE_HEIGHT, TilePath, entry_bundle, hash_tile,
    parse_entry_bundle,
};
pub use verify::{LogReport, LogVerifier, TreeBuilder, verify_log};
pub use witness::{
    AddCheckpoint, COSIGNATURE_V1_TYPE, Cosignature, CosignedCheckpoint, MAX_ADD_CHECKPOINT_BYTES,
    MAX_PROOF_LINES, TLOG_SIZE_CONTENT_TYPE, WitnessKey, WitnessRefusal, WitnessedTree,
    check_add_checkpoint, checkpoint_origin_unverified, log_key_origin, origin_hash,
    verify_cosigned_checkpoint, witness_key_name,
};
