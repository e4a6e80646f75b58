//! The error for malformed trust material: keys, key files, payloads, envelopes, statements.
//!
//! A [`TrustError`] means the *input* could not be understood (or, for signing, produced). It never
//! means "the signature did not verify": that is a [`crate::keys::SignatureError`] for one
//! signature, or a [`crate::verify::Rejection`] for one piece of evidence. Messages never contain
//! secret material (passwords, private key bytes, derived keys).

/// Why a key, key file or evidence document could not be parsed, decrypted or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The public key is not one airlock can verify with.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The private key is not one airlock can sign with.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(String),
    /// The encrypted key file did not decrypt: the password is wrong (or the file was altered).
    #[error("the password does not decrypt this key file (or the file was altered)")]
    WrongPassword,
    /// The key file is of a kind airlock does not read.
    #[error("unsupported key file: {0}")]
    UnsupportedKeyFile(String),
    /// The input is larger than airlock accepts for this kind of document.
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// What was being parsed.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The input is not well-formed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// Encrypting a private key file failed (e.g. the system random number generator failed).
    #[error("could not encrypt the private key: {0}")]
    Encryption(String),
}

impl TrustError {
    /// Shorthand for [`TrustError::Malformed`].
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            reason: reason.into(),
        }
    }

    /// Refuses `len` bytes of `what` when they exceed `limit`.
    pub(crate) fn check_size(what: &'static str, len: usize, limit: usize) -> Result<(), Self> {
        if len > limit {
            Err(Self::TooLarge { what, limit })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_names_what_and_limit() {
        let err = TrustError::check_size("DSSE envelope", 11, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DSSE envelope is larger than the 10-byte limit"
        );
        assert!(TrustError::check_size("DSSE envelope", 10, 10).is_ok());
    }
}
