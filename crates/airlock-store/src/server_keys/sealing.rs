//! Sealing a server key's private half under the key-encryption key (KEK): AES-256-GCM with a
//! fresh random 96-bit nonce per seal, and the key's purpose and id as additional authenticated
//! data, so a sealed value opens only under the KEK it was sealed with and only as the key it was
//! sealed for (copying one row's sealed bytes into another row is refused like a tampered byte).
//!
//! Sealed form: a version byte (1), the 12-byte nonce, then the ciphertext with its 16-byte tag.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use super::KeyPurpose;

/// The first byte of every sealed value this version writes.
const VERSION: u8 = 1;
/// AES-GCM's nonce length.
const NONCE_LEN: usize = 12;

/// The 32-byte key that seals airlock's own private keys in the database. Its bytes never appear
/// in `Debug` output, logs or errors.
#[derive(Clone)]
pub struct KeyEncryptionKey(Key<Aes256Gcm>);

impl KeyEncryptionKey {
    /// The KEK of these 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes.into())
    }

    /// The raw key bytes, for deriving the row MAC key (`mac`); never shown anywhere.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0)
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(redacted)")
    }
}

/// The additional data bound to a sealed key: what it is for and which key it is.
fn aad(purpose: KeyPurpose, key_id: &str) -> Vec<u8> {
    format!("airlock server key\0{}\0{key_id}", purpose.as_str()).into_bytes()
}

/// A sealed value could not be made or opened; it carries no detail of the key or the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealFailed;

/// Seals `private` (the key's private half) as key `key_id` of `purpose`.
pub(crate) fn seal(
    kek: &KeyEncryptionKey,
    purpose: KeyPurpose,
    key_id: &str,
    private: &[u8],
) -> Result<Vec<u8>, SealFailed> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = aad(purpose, key_id);
    let ciphertext = kek
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: private,
                aad: &aad,
            },
        )
        .map_err(|_| SealFailed)?;
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens what [`seal`] made for key `key_id` of `purpose`; refuses a value sealed under another
/// KEK, for another key, or changed in any byte.
pub(crate) fn open(
    kek: &KeyEncryptionKey,
    purpose: KeyPurpose,
    key_id: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, SealFailed> {
    let Some((&VERSION, rest)) = sealed.split_first() else {
        return Err(SealFailed);
    };
    if rest.len() < NONCE_LEN {
        return Err(SealFailed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let aad = aad(purpose, key_id);
    kek.cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SealFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_as_sealed() {
        let kek = KeyEncryptionKey::new([7; 32]);
        let sealed = seal(&kek, KeyPurpose::Token, "k1", b"private").unwrap();
        assert_eq!(
            open(&kek, KeyPurpose::Token, "k1", &sealed).unwrap(),
            b"private"
        );
        // Two seals of the same key differ (fresh nonce).
        assert_ne!(
            seal(&kek, KeyPurpose::Token, "k1", b"private").unwrap(),
            sealed
        );
        let other = KeyEncryptionKey::new([8; 32]);
        assert_eq!(
            open(&other, KeyPurpose::Token, "k1", &sealed),
            Err(SealFailed)
        );
        assert_eq!(
            open(&kek, KeyPurpose::Attestation, "k1", &sealed),
            Err(SealFailed)
        );
        assert_eq!(
            open(&kek, KeyPurpose::Token, "k2", &sealed),
            Err(SealFailed)
        );
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert_eq!(
                open(&kek, KeyPurpose::Token, "k1", &tampered),
                Err(SealFailed),
                "byte {i}"
            );
        }
        assert_eq!(
            open(&kek, KeyPurpose::Token, "k1", &sealed[..10]),
            Err(SealFailed)
        );
        assert!(!format!("{kek:?}").contains('7'));
    }
}
