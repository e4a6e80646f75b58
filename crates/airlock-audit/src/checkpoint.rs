//! The log's signing key and signed checkpoints.
//!
//! A checkpoint is a C2SP tlog-checkpoint body — origin line, decimal tree size line, base64 root
//! hash line — wrapped in a C2SP signed-note and signed with the log's Ed25519 key, whose key name
//! equals the origin. [`verify_checkpoint`] is the only way to obtain a [`VerifiedCheckpoint`]: it
//! checks the signature against the one trusted verifier key before reading the body.

use std::fmt;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use signed_note::{Note, NoteError, StandardSigner, StandardVerifier, Verifier as _, VerifierList};
use tlog_tiles::Checkpoint;

use crate::{AuditError, Hash};

/// The signed-note algorithm byte for Ed25519 keys.
const ED25519_ALGORITHM: u8 = 1;

/// The log's Ed25519 signing key, named after the log's origin.
///
/// Its text form, [`LogKey::private_text`], is secret: the caller stores it in a file only the
/// server can read. `Debug` shows only the public verifier key.
#[derive(Clone)]
pub struct LogKey {
    origin: String,
    private_text: String,
    verifier_key: String,
    signer: StandardSigner,
}

impl LogKey {
    /// Generates a fresh key for the log `origin` from the operating system's random source.
    ///
    /// The origin becomes the key name, so it must be non-empty and free of whitespace, `+` and
    /// control characters (for example `airlock.example.com/audit`).
    pub fn generate(origin: &str) -> Result<LogKey, AuditError> {
        check_origin(origin)?;
        let (private_text, verifier_key) = signed_note::generate_key(&mut rand_core::OsRng, origin);
        let signer =
            StandardSigner::new(&private_text).map_err(|_| AuditError::MalformedPrivateKey)?;
        Ok(LogKey {
            origin: origin.to_owned(),
            private_text,
            verifier_key,
            signer,
        })
    }

    /// Parses the `PRIVATE+KEY+<name>+<id>+<base64>` text written by [`LogKey::private_text`],
    /// ignoring surrounding whitespace. The key name becomes the origin.
    pub fn from_private_text(text: &str) -> Result<LogKey, AuditError> {
        let text = text.trim();
        let signer = StandardSigner::new(text).map_err(|_| AuditError::MalformedPrivateKey)?;
        // The signer validated the framing, key id and key; the verifier key is derived from the
        // same fields, which the signer does not expose.
        let mut fields = text.splitn(5, '+');
        let (Some(_), Some(_), Some(name), Some(_), Some(key_base64)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(AuditError::MalformedPrivateKey);
        };
        check_origin(name)?;
        let key_bytes = BASE64_STANDARD
            .decode(key_base64)
            .map_err(|_| AuditError::MalformedPrivateKey)?;
        let Some((&ED25519_ALGORITHM, seed)) = key_bytes.split_first() else {
            return Err(AuditError::MalformedPrivateKey);
        };
        let signing_key = ed25519_dalek::SigningKey::try_from(seed)
            .map_err(|_| AuditError::MalformedPrivateKey)?;
        let verifier_key =
            signed_note::new_ed25519_verifier_key(name, &signing_key.verifying_key());
        Ok(LogKey {
            origin: name.to_owned(),
            private_text: text.to_owned(),
            verifier_key,
            signer,
        })
    }

    /// The secret `PRIVATE+KEY+<name>+<id>+<base64>` text, for the caller to store (mode 0600).
    pub fn private_text(&self) -> &str {
        &self.private_text
    }

    /// The public `<name>+<id>+<base64>` verifier key that clients pin to check checkpoints.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The log origin, which is also the key name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs the checkpoint for the tree of `size` leaves with root `root` and returns the signed
    /// note: checkpoint body, a blank line, and the signature line.
    pub fn sign_checkpoint(&self, size: u64, root: &Hash) -> Result<String, AuditError> {
        let body = Checkpoint::new(&self.origin, size, root.to_tlog(), "")
            .map_err(|_| AuditError::MalformedCheckpoint)?;
        let mut note = Note::new(&body.to_bytes(), &[]).map_err(|_| AuditError::SigningFailed)?;
        note.add_sigs(&[&self.signer])
            .map_err(|_| AuditError::SigningFailed)?;
        String::from_utf8(note.to_bytes()).map_err(|_| AuditError::SigningFailed)
    }
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogKey")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

/// A checkpoint whose signature by the trusted log key has been verified.
///
/// Obtain it from [`verify_checkpoint`]; building one by hand skips the signature check that
/// [`crate::verify_log`] and the proof `verify` methods rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The log origin (equal to the verifying key's name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash of the tree of `size` leaves.
    pub root: Hash,
    /// The signed note exactly as verified, to store or pass on.
    pub note: String,
}

/// The fields of a checkpoint body, read without checking any signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// The origin line.
    pub origin: String,
    /// The tree size line.
    pub size: u64,
    /// The root hash line.
    pub root: Hash,
}

/// Verifies that `note` is a checkpoint signed by the key `verifier_key`
/// (`<name>+<id>+<base64>`, surrounding whitespace ignored) and returns its contents.
///
/// Fails if the note is malformed, carries no valid signature by exactly that key (signatures by
/// other keys are ignored, and alone are not enough), the body is not a checkpoint, or the
/// checkpoint's origin differs from the key name.
pub fn verify_checkpoint(note: &str, verifier_key: &str) -> Result<VerifiedCheckpoint, AuditError> {
    let verifier =
        StandardVerifier::new(verifier_key.trim()).map_err(|_| AuditError::MalformedVerifierKey)?;
    let key_name = verifier.name().to_owned();
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| AuditError::MalformedNote)?;
    match parsed.verify(&VerifierList::new(vec![Box::new(verifier)])) {
        Ok(_) => {}
        Err(NoteError::InvalidSignature { .. }) => {
            return Err(AuditError::CheckpointSignatureInvalid { key_name });
        }
        Err(_) => return Err(AuditError::CheckpointNotSignedByLogKey { key_name }),
    }
    let body = parse_checkpoint_body(parsed.text())?;
    if body.origin != key_name {
        return Err(AuditError::CheckpointOriginMismatch {
            origin: body.origin,
            key_name,
        });
    }
    Ok(VerifiedCheckpoint {
        origin: body.origin,
        size: body.size,
        root: body.root,
        note: note.to_owned(),
    })
}

/// Reads the checkpoint inside a signed note WITHOUT checking any signature: for display or to
/// pick the key to verify with, never to trust. Use [`verify_checkpoint`] for that.
pub fn parse_checkpoint_unverified(note: &str) -> Result<CheckpointBody, AuditError> {
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| AuditError::MalformedNote)?;
    parse_checkpoint_body(parsed.text())
}

/// Parses a C2SP tlog-checkpoint body (extension lines are allowed and ignored).
pub(crate) fn parse_checkpoint_body(text: &[u8]) -> Result<CheckpointBody, AuditError> {
    let checkpoint = Checkpoint::from_bytes(text).map_err(|_| AuditError::MalformedCheckpoint)?;
    Ok(CheckpointBody {
        origin: checkpoint.origin().to_owned(),
        size: checkpoint.size(),
        root: Hash::from_tlog(*checkpoint.hash()),
    })
}

/// Accepts origins usable both as a signed-note key name and as a note line.
pub(crate) fn check_origin(origin: &str) -> Result<(), AuditError> {
    if signed_note::is_key_name_valid(origin) && !origin.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AuditError::InvalidOrigin {
            origin: origin.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;

    const ORIGIN: &str = "airlock.test/audit";

    #[test]
    fn signed_checkpoint_round_trips() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let root = leaf_hash(b"x");
        let note = key.sign_checkpoint(42, &root).unwrap();
        let checkpoint = verify_checkpoint(&note, key.verifier_key()).unwrap();
        assert_eq!(checkpoint.origin, ORIGIN);
        assert_eq!(checkpoint.size, 42);
        assert_eq!(checkpoint.root, root);
        assert_eq!(checkpoint.note, note);
    }

    #[test]
    fn note_has_checkpoint_body_blank_line_and_signature_line() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let note = key.sign_checkpoint(7, &Hash::EMPTY_TREE).unwrap();
        let lines: Vec<&str> = note.split('\n').collect();
        assert_eq!(lines[0], ORIGIN);
        assert_eq!(lines[1], "7");
        assert_eq!(lines[2], "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with(&format!("— {ORIGIN} ")));
        assert_eq!(lines[5], "");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn private_text_round_trips_with_whitespace() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let reloaded = LogKey::from_private_text(&format!("  {}\n", key.private_text())).unwrap();
        assert_eq!(reloaded.verifier_key(), key.verifier_key());
        assert_eq!(reloaded.origin(), ORIGIN);
        assert_eq!(reloaded.private_text(), key.private_text());
        let note = reloaded.sign_checkpoint(1, &leaf_hash(b"")).unwrap();
        verify_checkpoint(&note, key.verifier_key()).unwrap();
    }

    #[test]
    fn debug_output_does_not_reveal_the_private_key() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("PRIVATE"));
        assert!(debug.contains(key.verifier_key()));
    }

    #[test]
    fn invalid_origins_are_rejected() {
        for origin in ["", "has space", "has+plus", "tab\there", "nl\n", "ctl\u{1}"] {
            assert!(
                matches!(
                    LogKey::generate(origin),
                    Err(AuditError::InvalidOrigin { .. })
                ),
                "{origin:?}"
            );
        }
    }

    #[test]
    fn malformed_private_texts_are_rejected() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let verifier_key = key.verifier_key().to_owned();
        let fields: Vec<&str> = key.private_text().splitn(5, '+').collect();
        let wrong_id = format!("PRIVATE+KEY+{}+00000000+{}", fields[2], fields[4]);
        let renamed = format!("PRIVATE+KEY+renamed+{}+{}", fields[3], fields[4]);
        for text in [
            "",
            "PRIVATE+KEY",
            verifier_key.as_str(),
            "PRIVATE+KEY+name+00000000+AAAA",
            wrong_id.as_str(),
            renamed.as_str(),
        ] {
            assert!(
                matches!(
                    LogKey::from_private_text(text),
                    Err(AuditError::MalformedPrivateKey)
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn checkpoint_signed_by_another_key_with_the_same_origin_is_refused() {
        let trusted = LogKey::generate(ORIGIN).unwrap();
        let impostor = LogKey::generate(ORIGIN).unwrap();
        let note = impostor.sign_checkpoint(3, &leaf_hash(b"a")).unwrap();
        let error = verify_checkpoint(&note, trusted.verifier_key()).unwrap_err();
        assert!(matches!(
            error,
            AuditError::CheckpointNotSignedByLogKey { .. }
        ));
        assert!(
            error
                .to_string()
                .contains("not signed by the trusted log key")
        );
    }

    #[test]
    fn checkpoint_with_edited_size_is_refused() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let note = key.sign_checkpoint(10, &leaf_hash(b"a")).unwrap();
        let edited = note.replacen("\n10\n", "\n11\n", 1);
        assert_ne!(edited, note);
        assert!(matches!(
            verify_checkpoint(&edited, key.verifier_key()),
            Err(AuditError::CheckpointSignatureInvalid { .. })
        ));
    }

    #[test]
    fn checkpoint_whose_origin_differs_from_the_key_name_is_refused() {
        let key = LogKey::generate("other.test/log").unwrap();
        // A correctly signed note whose body names a different origin than the key.
        let body = format!("{ORIGIN}\n5\n{}\n", leaf_hash(b"a").to_tlog());
        let mut note = Note::new(body.as_bytes(), &[]).unwrap();
        note.add_sigs(&[&key.signer]).unwrap();
        let note = String::from_utf8(note.to_bytes()).unwrap();
        assert!(matches!(
            verify_checkpoint(&note, key.verifier_key()),
            Err(AuditError::CheckpointOriginMismatch { .. })
        ));
    }

    #[test]
    fn signed_note_that_is_not_a_checkpoint_is_refused() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let mut note = Note::new(b"hello\n", &[]).unwrap();
        note.add_sigs(&[&key.signer]).unwrap();
        let note = String::from_utf8(note.to_bytes()).unwrap();
        assert!(matches!(
            verify_checkpoint(&note, key.verifier_key()),
            Err(AuditError::MalformedCheckpoint)
        ));
    }

    #[test]
    fn garbage_notes_and_keys_are_refused() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let note = key.sign_checkpoint(1, &leaf_hash(b"a")).unwrap();
        for bad_note in ["", "no blank line\n", "a\n\nnot a signature\n"] {
            assert!(matches!(
                verify_checkpoint(bad_note, key.verifier_key()),
                Err(AuditError::MalformedNote)
            ));
        }
        for bad_key in ["", "name", "name+0000+AAAA", key.private_text()] {
            assert!(matches!(
                verify_checkpoint(&note, bad_key),
                Err(AuditError::MalformedVerifierKey)
            ));
        }
    }

    #[test]
    fn unverified_parse_reads_the_body() {
        let key = LogKey::generate(ORIGIN).unwrap();
        let note = key.sign_checkpoint(9, &leaf_hash(b"z")).unwrap();
        let body = parse_checkpoint_unverified(&note).unwrap();
        assert_eq!(body.origin, ORIGIN);
        assert_eq!(body.size, 9);
        assert_eq!(body.root, leaf_hash(b"z"));
    }
}
