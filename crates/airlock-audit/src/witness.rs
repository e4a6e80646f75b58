//! Witness cosigning: c2sp.org/tlog-witness requests and c2sp.org/tlog-cosignature signatures.
//!
//! A witness keeps, per log origin, the newest checkpoint it cosigned and cosigns a new one only
//! if a consistency proof shows it extends that one, so a log that rewrites or rolls back its
//! history after a cosigned checkpoint can never get that history cosigned. This module is the
//! protocol without I/O:
//! - [`WitnessKey`] signs `cosignature/v1` (Ed25519, signature type `0x04`) signature lines and
//!   [`verify_cosigned_checkpoint`] checks them, beside the log's own signature;
//! - [`AddCheckpoint`] parses and writes the `add-checkpoint` request body;
//! - [`check_add_checkpoint`] is the witness's decision, with each refusal as the spec's status.

use std::fmt;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use signed_note::{Note, NoteError, Signature, StandardVerifier, Verifier, VerifierList};

use crate::checkpoint::{check_origin, parse_checkpoint_body};
use crate::{AuditError, Hash, VerifiedCheckpoint, check_consistency};

/// The signed-note signature type of timestamped Ed25519 checkpoint cosignatures.
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;

/// The most consistency proof lines a request may carry (c2sp.org/tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// The largest `add-checkpoint` request body a witness reads: 63 proof lines and a checkpoint
/// with a generous number of signature lines fit well within it.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = 64 * 1024;

/// The `Content-Type` of a witness's 409 answer, which holds the size it last cosigned.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A witness's Ed25519 cosigning key, named by the witness (for example
/// `airlock.example.com/witness`).
///
/// Its text form, [`WitnessKey::private_text`], is secret. `Debug` shows only the verifier key.
#[derive(Clone)]
pub struct WitnessKey {
    name: String,
    signing_key: SigningKey,
    key_id: u32,
    verifier_key: String,
}

impl WitnessKey {
    /// Generates a fresh key named `name` from the operating system's random source.
    pub fn generate(name: &str) -> Result<WitnessKey, AuditError> {
        check_origin(name)?;
        let signing_key = SigningKey::generate(&mut rand_core::OsRng);
        Ok(WitnessKey::from_parts(name, signing_key))
    }

    /// Parses the `PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>` text written by
    /// [`WitnessKey::private_text`], ignoring surrounding whitespace.
    pub fn from_private_text(text: &str) -> Result<WitnessKey, AuditError> {
        let mut fields = text.trim().splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(key_base64)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(AuditError::MalformedPrivateKey);
        };
        check_origin(name).map_err(|_| AuditError::MalformedPrivateKey)?;
        let bytes = BASE64_STANDARD
            .decode(key_base64)
            .map_err(|_| AuditError::MalformedPrivateKey)?;
        let Some((&COSIGNATURE_V1_TYPE, seed)) = bytes.split_first() else {
            return Err(AuditError::MalformedPrivateKey);
        };
        let signing_key =
            SigningKey::try_from(seed).map_err(|_| AuditError::MalformedPrivateKey)?;
        let key = WitnessKey::from_parts(name, signing_key);
        if format!("{:08x}", key.key_id) != id {
            return Err(AuditError::MalformedPrivateKey);
        }
        Ok(key)
    }

    /// Checks that `name` can name a witness key (non-empty, no whitespace, `+` or control
    /// characters).
    pub fn check_name(name: &str) -> Result<(), AuditError> {
        check_origin(name)
    }

    fn from_parts(name: &str, signing_key: SigningKey) -> WitnessKey {
        let public = signing_key.verifying_key();
        let key_id = cosignature_key_id(name, &public);
        let mut material = vec![COSIGNATURE_V1_TYPE];
        material.extend_from_slice(public.as_bytes());
        let verifier_key = format!("{name}+{key_id:08x}+{}", BASE64_STANDARD.encode(&material));
        WitnessKey {
            name: name.to_owned(),
            signing_key,
            key_id,
            verifier_key,
        }
    }

    /// The secret text form, for the caller to store (mode 0600).
    pub fn private_text(&self) -> String {
        let mut material = vec![COSIGNATURE_V1_TYPE];
        material.extend_from_slice(self.signing_key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64_STANDARD.encode(&material)
        )
    }

    /// The public verifier key (`<name>+<id>+base64(0x04 || key)`) that logs and verifiers pin.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The witness name (the key name of its signature lines).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cosigns the checkpoint in the signed note `note` at `timestamp` (POSIX seconds, not zero)
    /// and returns the signature line, newline included.
    pub fn cosign(&self, note: &str, timestamp: u64) -> Result<String, AuditError> {
        if timestamp == 0 || timestamp > i64::MAX as u64 {
            return Err(AuditError::SigningFailed);
        }
        let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| AuditError::MalformedNote)?;
        let message = cosigned_message(timestamp, parsed.text());
        let signature = self.signing_key.sign(&message);
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        let line = Signature::new(self.name.clone(), self.key_id, bytes)
            .map_err(|_| AuditError::SigningFailed)?
            .to_bytes();
        String::from_utf8(line).map_err(|_| AuditError::SigningFailed)
    }
}

impl fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WitnessKey")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

/// `SHA-256(name || "\n" || 0x04 || public key)[:4]`, big-endian.
fn cosignature_key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut material = vec![COSIGNATURE_V1_TYPE];
    material.extend_from_slice(public.as_bytes());
    signed_note::key_id(name, &material)
}

/// The message a `cosignature/v1` signs: header line, time line, then the checkpoint body.
fn cosigned_message(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(body);
    message
}

/// Verifies `cosignature/v1` signature lines of one witness key.
struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses a `<name>+<id>+base64(0x04 || key)` verifier key.
    fn new(vkey: &str) -> Result<CosignatureVerifier, AuditError> {
        let malformed = || AuditError::MalformedWitnessKey {
            key: vkey.trim().to_owned(),
        };
        let mut fields = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key_base64)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed());
        };
        let bytes = BASE64_STANDARD
            .decode(key_base64)
            .map_err(|_| malformed())?;
        let Some((&COSIGNATURE_V1_TYPE, public)) = bytes.split_first() else {
            return Err(malformed());
        };
        let key = VerifyingKey::try_from(public).map_err(|_| malformed())?;
        let key_id = cosignature_key_id(name, &key);
        if !signed_note::is_key_name_valid(name) || format!("{key_id:08x}") != id {
            return Err(malformed());
        }
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id,
            key,
        })
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 72 {
            return false;
        }
        let (timestamp, signature) = sig.split_at(8);
        let (Ok(timestamp), Ok(signature)) = (
            <[u8; 8]>::try_from(timestamp),
            <[u8; 64]>::try_from(signature),
        ) else {
            return false;
        };
        let timestamp = u64::from_be_bytes(timestamp);
        if timestamp == 0 || timestamp > i64::MAX as u64 {
            return false;
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        self.key
            .verify_strict(&cosigned_message(timestamp, msg), &signature)
            .is_ok()
    }
}

/// Checks that `vkey` is a well-formed `cosignature/v1` verifier key and returns its name.
pub fn witness_key_name(vkey: &str) -> Result<String, AuditError> {
    CosignatureVerifier::new(vkey).map(|verifier| verifier.name)
}

/// Checks that `vkey` is a well-formed log verifier key (`<origin>+<id>+<base64>`, Ed25519) and
/// returns the origin it names.
pub fn log_key_origin(vkey: &str) -> Result<String, AuditError> {
    let verifier =
        StandardVerifier::new(vkey.trim()).map_err(|_| AuditError::MalformedVerifierKey)?;
    Ok(verifier.name().to_owned())
}

/// One valid witness cosignature on a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness name.
    pub witness: String,
    /// When the witness cosigned, in POSIX seconds.
    pub timestamp: u64,
    /// The signature line, newline included.
    pub line: String,
}

/// A checkpoint verified against the log key, with the cosignatures of the trusted witnesses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    /// The checkpoint, signed by the log key.
    pub checkpoint: VerifiedCheckpoint,
    /// The valid cosignatures, one per trusted witness key that cosigned (in note order).
    pub cosignatures: Vec<Cosignature>,
}

/// Verifies the log's signature on `note` (as [`crate::verify_checkpoint`] does) and every
/// signature line of the witness keys `witness_vkeys`; lines of other keys are ignored.
///
/// A line that names a trusted witness key but does not verify fails the whole note (it is
/// malformed, per c2sp.org/signed-note). A witness with no line is simply absent from
/// [`CosignedCheckpoint::cosignatures`]: the caller decides how many it requires.
pub fn verify_cosigned_checkpoint(
    note: &str,
    log_vkey: &str,
    witness_vkeys: &[String],
) -> Result<CosignedCheckpoint, AuditError> {
    let checkpoint = crate::verify_checkpoint(note, log_vkey)?;
    if witness_vkeys.is_empty() {
        return Ok(CosignedCheckpoint {
            checkpoint,
            cosignatures: Vec::new(),
        });
    }
    let log_verifier =
        StandardVerifier::new(log_vkey.trim()).map_err(|_| AuditError::MalformedVerifierKey)?;
    let log_id = (log_verifier.name().to_owned(), log_verifier.key_id());
    let mut verifiers: Vec<Box<dyn Verifier>> = vec![Box::new(log_verifier)];
    let mut seen = vec![log_id.clone()];
    for vkey in witness_vkeys {
        let verifier = CosignatureVerifier::new(vkey)?;
        let id = (verifier.name.clone(), verifier.key_id);
        if !seen.contains(&id) {
            seen.push(id);
            verifiers.push(Box::new(verifier));
        }
    }
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| AuditError::MalformedNote)?;
    let (verified, _unknown) = match parsed.verify(&VerifierList::new(verifiers)) {
        Ok(signatures) => signatures,
        Err(NoteError::InvalidSignature { name, .. }) => {
            return Err(AuditError::CosignatureInvalid { witness: name });
        }
        Err(_) => return Err(AuditError::MalformedNote),
    };
    let cosignatures = verified
        .into_iter()
        .filter(|signature| (signature.name().to_owned(), signature.id()) != log_id)
        .map(|signature| {
            let mut timestamp = [0u8; 8];
            timestamp.copy_from_slice(&signature.signature()[..8]);
            Cosignature {
                witness: signature.name().to_owned(),
                timestamp: u64::from_be_bytes(timestamp),
                line: String::from_utf8_lossy(&signature.to_bytes()).into_owned(),
            }
        })
        .collect();
    Ok(CosignedCheckpoint {
        checkpoint,
        cosignatures,
    })
}

/// An `add-checkpoint` request: the size the submitter believes the witness last cosigned, a
/// consistency proof from that size, and the new checkpoint (a signed note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The tree size of the previous checkpoint.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint as a signed note, signatures included.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// Parses a request body: `old N` line, at most [`MAX_PROOF_LINES`] base64 hash lines, an
    /// empty line, then the checkpoint. Every line ends in a newline.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, AuditError> {
        let malformed = |reason: &str| AuditError::MalformedWitnessRequest {
            reason: reason.to_owned(),
        };
        if body.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(malformed("the request is larger than 64 KiB"));
        }
        let text = std::str::from_utf8(body).map_err(|_| malformed("the request is not UTF-8"))?;
        let (old_line, mut rest) = text
            .split_once('\n')
            .ok_or_else(|| malformed("the request has no old size line"))?;
        let old_size = old_line
            .strip_prefix("old ")
            .filter(|size| is_canonical_decimal(size))
            .and_then(|size| size.parse::<u64>().ok())
            .ok_or_else(|| {
                malformed("the first line must be `old` and a decimal size without leading zeroes")
            })?;
        let mut proof = Vec::new();
        loop {
            let (line, remainder) = rest
                .split_once('\n')
                .ok_or_else(|| malformed("the proof lines are not followed by an empty line"))?;
            rest = remainder;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed("more than 63 consistency proof lines"));
            }
            let bytes = BASE64_STANDARD
                .decode(line)
                .map_err(|_| malformed("a proof line is not base64"))?;
            let hash = <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| malformed("a proof line is not a 32-byte hash"))?;
            proof.push(Hash(hash));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&BASE64_STANDARD.encode(hash.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body
    }
}

/// ASCII decimal digits with no leading zero unless the number is zero.
fn is_canonical_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// The newest checkpoint a witness cosigned for one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessedTree {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

impl WitnessedTree {
    /// What a witness that never cosigned for a log compares with: the empty tree.
    pub const EMPTY: WitnessedTree = WitnessedTree {
        size: 0,
        root: Hash::EMPTY_TREE,
    };
}

/// Why a witness refuses an `add-checkpoint` request whose checkpoint verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessRefusal {
    /// The old size is larger than the checkpoint's size (400).
    #[error("the old size {old_size} is larger than the checkpoint's size {size}")]
    OldSizeAfterSize {
        /// The request's old size.
        old_size: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The old size is not the size this witness last cosigned (409; the answer holds it).
    #[error(
        "the old size {old_size} is not the size this witness last cosigned for the log ({cosigned_size}): send a proof from {cosigned_size}"
    )]
    Conflict {
        /// The request's old size.
        old_size: u64,
        /// The size this witness last cosigned.
        cosigned_size: u64,
    },
    /// The checkpoint is not consistent with what this witness cosigned (422).
    #[error("{0}")]
    Inconsistent(String),
}

impl WitnessRefusal {
    /// The HTTP status c2sp.org/tlog-witness assigns to the refusal.
    pub fn status(&self) -> u16 {
        match self {
            WitnessRefusal::OldSizeAfterSize { .. } => 400,
            WitnessRefusal::Conflict { .. } => 409,
            WitnessRefusal::Inconsistent(_) => 422,
        }
    }
}

/// The witness's decision on `request`, whose checkpoint `checkpoint` already verified against
/// the log's key, given the newest tree it cosigned for that log (`cosigned`, or
/// [`WitnessedTree::EMPTY`]). `Ok` means cosign and record `checkpoint` as the newest.
pub fn check_add_checkpoint(
    request: &AddCheckpoint,
    checkpoint: &VerifiedCheckpoint,
    cosigned: &WitnessedTree,
) -> Result<(), WitnessRefusal> {
    if request.old_size > checkpoint.size {
        return Err(WitnessRefusal::OldSizeAfterSize {
            old_size: request.old_size,
            size: checkpoint.size,
        });
    }
    if request.old_size != cosigned.size {
        return Err(WitnessRefusal::Conflict {
            old_size: request.old_size,
            cosigned_size: cosigned.size,
        });
    }
    if checkpoint.size == 0 && checkpoint.root != Hash::EMPTY_TREE {
        return Err(WitnessRefusal::Inconsistent(
            "a checkpoint of size 0 must have the empty tree's root".into(),
        ));
    }
    if request.old_size == 0 {
        return if request.proof.is_empty() {
            Ok(())
        } else {
            Err(WitnessRefusal::Inconsistent(
                "a request from old size 0 must carry no consistency proof".into(),
            ))
        };
    }
    if request.old_size == checkpoint.size {
        return if checkpoint.root == cosigned.root {
            Ok(())
        } else {
            Err(WitnessRefusal::Inconsistent(format!(
                "the checkpoint has the size {} this witness cosigned, with another root: the log was rewritten (forked)",
                checkpoint.size
            )))
        };
    }
    check_consistency(
        &request.proof,
        checkpoint.size,
        &checkpoint.root,
        cosigned.size,
        &cosigned.root,
    )
    .map_err(|_| {
        WitnessRefusal::Inconsistent(format!(
            "the consistency proof from size {} to size {} does not verify against the checkpoint this witness cosigned: the log was rewritten after it (forked)",
            cosigned.size, checkpoint.size
        ))
    })
}

/// The origin of the checkpoint in a signed note, read without checking any signature (to pick
/// the log key to verify it with).
pub fn checkpoint_origin_unverified(note: &str) -> Result<String, AuditError> {
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| AuditError::MalformedNote)?;
    Ok(parse_checkpoint_body(parsed.text())?.origin)
}

/// The lowercase hex SHA-256 of a log origin: the path segment of a witness's monitoring
/// endpoint (`GET <prefix>/<origin hash>/checkpoint`).
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

#[cfg(test)]
#[path = "witness_tests.rs"]
mod tests;
