//! Public keys, their ids, signing keys, and cosign's encrypted private key files.
//!
//! A [`PublicKey`] is parsed once from a SubjectPublicKeyInfo (SPKI) and re-encoded canonically,
//! so its [`KeyId`] (the SHA-256 of that SPKI DER) is the same however the key was presented.
//! Signatures use the encodings cosign writes: ASN.1 DER for ECDSA, raw 64 bytes for Ed25519, and
//! the plain RSA signature for PKCS#1 v1.5 and PSS.
//!
//! cosign key files are PEM blocks labelled `ENCRYPTED SIGSTORE PRIVATE KEY` (or the older
//! `ENCRYPTED COSIGN PRIVATE KEY`) whose body is a JSON document: scrypt parameters and salt, a
//! NaCl secretbox nonce and the ciphertext of a PKCS#8 DER private key. Both directions are here,
//! with the scrypt cost bounded so that a key file cannot exhaust memory.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    ObjectIdentifier, PrivateKeyInfo,
};
use rand_core::{OsRng, RngCore as _};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::TrustError;

/// Largest PEM text (public key, private key or cosign key file) airlock reads.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Largest DER encoding of a public or private key airlock reads.
pub const MAX_KEY_DER_BYTES: usize = 16 * 1024;

/// Smallest RSA modulus airlock accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The PEM label cosign writes on encrypted private keys.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";

/// The PEM label older cosign versions wrote on encrypted private keys.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// log2 of the scrypt `N` cosign uses when it writes a key file (its "standard" strength,
/// N = 65536, as in the key files `cosign generate-key-pair` writes).
pub const COSIGN_SCRYPT_LOG_N: u8 = 16;

/// The scrypt `r` cosign writes.
pub const COSIGN_SCRYPT_R: u32 = 8;

/// The scrypt `p` cosign writes.
pub const COSIGN_SCRYPT_P: u32 = 1;

/// Largest log2(`N`) airlock accepts in a key file: 2^17 is the strongest setting cosign writes
/// and costs 128 MiB of memory at r = 8. Larger values are refused before any work is done.
pub const MAX_SCRYPT_LOG_N: u8 = 17;

/// Largest scrypt `r` airlock accepts in a key file (memory is 128 * r * N bytes).
pub const MAX_SCRYPT_R: u32 = 8;

/// Largest scrypt `p` airlock accepts in a key file (time grows linearly with p).
pub const MAX_SCRYPT_P: u32 = 4;

const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const SECRETBOX_KEY_LEN: usize = 32;
const SECRETBOX_TAG_LEN: usize = 16;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// DER prefix of an SPKI holding an uncompressed P-256 point (the point follows).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an SPKI holding an uncompressed P-384 point (the point follows).
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// DER prefix of an SPKI holding an Ed25519 key (the 32 key bytes follow).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

// ---------------------------------------------------------------------------------------------
// Algorithms and key ids
// ---------------------------------------------------------------------------------------------

/// A signature algorithm: the key type together with the hash and padding its signatures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 over SHA-256, DER signatures (cosign's default key type).
    EcdsaP256Sha256,
    /// ECDSA on P-384 over SHA-384, DER signatures.
    EcdsaP384Sha384,
    /// Ed25519 over the message itself, 64-byte signatures.
    Ed25519,
    /// RSA PKCS#1 v1.5 over SHA-256 (what cosign assumes for an RSA public key).
    RsaPkcs1Sha256,
    /// RSA-PSS over SHA-256, MGF1-SHA-256; the salt is the hash length or the longest possible.
    RsaPssSha256,
}

impl KeyAlgorithm {
    /// Every algorithm, for listings and error messages.
    pub const ALL: [KeyAlgorithm; 5] = [
        Self::EcdsaP256Sha256,
        Self::EcdsaP384Sha384,
        Self::Ed25519,
        Self::RsaPkcs1Sha256,
        Self::RsaPssSha256,
    ];

    /// The stable name stored in the keyring and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Self::Ed25519 => "ed25519",
            Self::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            Self::RsaPssSha256 => "rsa-pss-sha256",
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::RsaPkcs1Sha256 | Self::RsaPssSha256)
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = TrustError;

    fn from_str(value: &str) -> Result<Self, TrustError> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == value)
            .ok_or_else(|| {
                TrustError::malformed(
                    "key algorithm",
                    format!(
                        "{:?} is not one of ecdsa-p256-sha256, ecdsa-p384-sha384, ed25519, \
                         rsa-pkcs1-sha256, rsa-pss-sha256",
                        truncate(value)
                    ),
                )
            })
    }
}

impl Serialize for KeyAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// The id of a public key: the lowercase hex SHA-256 of its canonical SPKI DER.
///
/// Holding one proves it is 64 lowercase hex digits. It is the same value as the hint Sigstore
/// tools derive from a public key, only hex- rather than base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a key whose canonical SPKI DER is `spki_der`.
    pub fn of_spki_der(spki_der: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(spki_der)))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 hash bytes the id encodes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        // The constructor guarantees 64 hex digits, so decoding cannot fail.
        if hex::decode_to_slice(&self.0, &mut bytes).is_err() {
            bytes = [0u8; 32];
        }
        bytes
    }

    /// Whether `hint` names this key: the hex id itself, or the base64 of the hash bytes (the
    /// form Sigstore bundles carry in `verificationMaterial.publicKey.hint`).
    pub fn matches_hint(&self, hint: &str) -> bool {
        hint == self.0 || hint == STANDARD.encode(self.to_bytes())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = TrustError;

    fn from_str(value: &str) -> Result<Self, TrustError> {
        if value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(value.to_string()))
        } else {
            Err(TrustError::malformed(
                "key id",
                format!(
                    "{:?} is not 64 lowercase hex digits (the SHA-256 of the public key's DER)",
                    truncate(value)
                ),
            ))
        }
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Public keys and signature verification
// ---------------------------------------------------------------------------------------------

/// Why one signature was not accepted by one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is well-formed but was not made by this key over this message.
    #[error("the signature does not verify")]
    Invalid,
    /// An ECDSA signature that is not an ASN.1 DER `SEQUENCE { r, s }`.
    #[error("the signature is not DER-encoded")]
    NotDer,
    /// A fixed-size signature (Ed25519) of the wrong length.
    #[error("the signature is {found} bytes long, expected {expected}")]
    WrongLength {
        /// The length this algorithm's signatures have.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The key's algorithm cannot verify a signature over a pre-computed SHA-256 digest.
    #[error("{0} keys cannot verify a signature over a pre-computed SHA-256 digest")]
    PrehashUnsupported(KeyAlgorithm),
}

#[derive(Clone, Debug)]
enum VerifyingKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// A public key airlock can verify signatures with, and the algorithm its signatures use.
///
/// Construct it with [`PublicKey::from_pem`] or [`PublicKey::from_spki_der`]; both refuse curves
/// and key sizes airlock does not trust (RSA below [`MIN_RSA_BITS`], small-order Ed25519 keys).
#[derive(Clone, Debug)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    key_id: KeyId,
    key: VerifyingKey,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && self.spki_der == other.spki_der
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Parses a `PUBLIC KEY` PEM block (SPKI). The algorithm follows from the key: P-256, P-384,
    /// Ed25519, or RSA (>= 2048 bits) with PKCS#1 v1.5 signatures, as cosign assumes; use
    /// [`PublicKey::from_pem_with_algorithm`] for RSA-PSS.
    pub fn from_pem(pem: &str) -> Result<Self, TrustError> {
        let block = read_pem(pem, "public key PEM")?;
        match block.label.as_str() {
            PUBLIC_KEY_LABEL => Self::from_spki_der(&block.der),
            "RSA PUBLIC KEY" => Err(TrustError::InvalidPublicKey(
                "PKCS#1 `RSA PUBLIC KEY` PEM is not supported; convert it to SPKI with \
                 `openssl rsa -RSAPublicKey_in -pubout`"
                    .into(),
            )),
            "CERTIFICATE" => Err(TrustError::InvalidPublicKey(
                "a certificate is not a public key; extract it with `openssl x509 -pubkey -noout`"
                    .into(),
            )),
            label if label.contains("PRIVATE KEY") => Err(TrustError::InvalidPublicKey(
                "this is a private key; give the public key (e.g. cosign.pub)".into(),
            )),
            label => Err(TrustError::InvalidPublicKey(format!(
                "expected a `PUBLIC KEY` PEM block, found `{}`",
                truncate(label)
            ))),
        }
    }

    /// Parses a `PUBLIC KEY` PEM block and uses `algorithm` for its signatures; errors if the
    /// algorithm does not fit the key (only RSA keys have a choice: PKCS#1 v1.5 or PSS).
    pub fn from_pem_with_algorithm(pem: &str, algorithm: KeyAlgorithm) -> Result<Self, TrustError> {
        Self::from_pem(pem)?.with_algorithm(algorithm)
    }

    /// Parses a DER-encoded SubjectPublicKeyInfo, detecting the algorithm as
    /// [`PublicKey::from_pem`] does.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, TrustError> {
        TrustError::check_size("public key DER", der.len(), MAX_KEY_DER_BYTES)?;
        let invalid = |err: &dyn fmt::Display| TrustError::InvalidPublicKey(err.to_string());
        let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| invalid(&e))?;
        let oid = spki.algorithm.oid;
        if oid == OID_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters_oid().map_err(|_| {
                TrustError::InvalidPublicKey("the EC key does not name its curve".into())
            })?;
            if curve == OID_P256 {
                let key =
                    p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| invalid(&e))?;
                Ok(Self::from_p256(key))
            } else if curve == OID_P384 {
                let key =
                    p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| invalid(&e))?;
                Ok(Self::from_p384(key))
            } else {
                Err(TrustError::InvalidPublicKey(format!(
                    "unsupported elliptic curve {curve}; use P-256, P-384 or Ed25519"
                )))
            }
        } else if oid == OID_ED25519 {
            let key =
                ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(|e| invalid(&e))?;
            if key.is_weak() {
                return Err(TrustError::InvalidPublicKey(
                    "the Ed25519 key is a small-order point, which verifies forged signatures"
                        .into(),
                ));
            }
            Ok(Self::from_ed25519(key))
        } else if oid == OID_RSA_ENCRYPTION {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| invalid(&e))?;
            let bits = key.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(TrustError::InvalidPublicKey(format!(
                    "the RSA key has {bits} bits; airlock requires at least {MIN_RSA_BITS}"
                )));
            }
            let spki_der = key
                .to_public_key_der()
                .map_err(|e| invalid(&e))?
                .as_bytes()
                .to_vec();
            Ok(Self::assemble(
                KeyAlgorithm::RsaPkcs1Sha256,
                spki_der,
                VerifyingKey::Rsa(key),
            ))
        } else if oid == OID_RSASSA_PSS {
            Err(TrustError::InvalidPublicKey(
                "RSASSA-PSS SubjectPublicKeyInfo is not supported; give the key as rsaEncryption \
                 and choose the rsa-pss-sha256 algorithm"
                    .into(),
            ))
        } else {
            Err(TrustError::InvalidPublicKey(format!(
                "unsupported key algorithm {oid}; use ECDSA P-256/P-384, Ed25519 or RSA"
            )))
        }
    }

    /// Parses a DER SPKI and uses `algorithm` for its signatures (the form the keyring stores).
    pub fn from_spki_der_with_algorithm(
        der: &[u8],
        algorithm: KeyAlgorithm,
    ) -> Result<Self, TrustError> {
        Self::from_spki_der(der)?.with_algorithm(algorithm)
    }

    /// The same key used with `algorithm`; errors if the algorithm does not fit the key.
    pub fn with_algorithm(mut self, algorithm: KeyAlgorithm) -> Result<Self, TrustError> {
        if algorithm == self.algorithm || (algorithm.is_rsa() && self.algorithm.is_rsa()) {
            self.algorithm = algorithm;
            Ok(self)
        } else {
            Err(TrustError::InvalidPublicKey(format!(
                "a {} key cannot be used as {algorithm}",
                self.algorithm
            )))
        }
    }

    fn from_p256(key: p256::ecdsa::VerifyingKey) -> Self {
        let mut spki_der = P256_SPKI_PREFIX.to_vec();
        spki_der.extend_from_slice(key.to_encoded_point(false).as_bytes());
        Self::assemble(
            KeyAlgorithm::EcdsaP256Sha256,
            spki_der,
            VerifyingKey::P256(key),
        )
    }

    fn from_p384(key: p384::ecdsa::VerifyingKey) -> Self {
        let mut spki_der = P384_SPKI_PREFIX.to_vec();
        spki_der.extend_from_slice(key.to_encoded_point(false).as_bytes());
        Self::assemble(
            KeyAlgorithm::EcdsaP384Sha384,
            spki_der,
            VerifyingKey::P384(key),
        )
    }

    fn from_ed25519(key: ed25519_dalek::VerifyingKey) -> Self {
        let mut spki_der = ED25519_SPKI_PREFIX.to_vec();
        spki_der.extend_from_slice(key.as_bytes());
        Self::assemble(KeyAlgorithm::Ed25519, spki_der, VerifyingKey::Ed25519(key))
    }

    fn assemble(algorithm: KeyAlgorithm, spki_der: Vec<u8>, key: VerifyingKey) -> Self {
        Self {
            algorithm,
            key_id: KeyId::of_spki_der(&spki_der),
            spki_der,
            key,
        }
    }

    /// The algorithm this key's signatures use.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key's id (SHA-256 of [`PublicKey::spki_der`]).
    pub fn key_id(&self) -> KeyId {
        self.key_id.clone()
    }

    /// The canonical DER SubjectPublicKeyInfo (uncompressed points for ECDSA).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key as a `PUBLIC KEY` PEM block, as cosign writes `cosign.pub`.
    pub fn to_pem(&self) -> String {
        encode_pem(PUBLIC_KEY_LABEL, &self.spki_der)
    }

    /// Verifies `signature` over `message`: DER ECDSA over SHA-256 (P-256) or SHA-384 (P-384),
    /// raw Ed25519 (strict: no malleable or small-order signatures), or RSA over SHA-256.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::Verifier as _;
        match &self.key {
            VerifyingKey::P256(key) => {
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::NotDer)?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            VerifyingKey::P384(key) => {
                let signature = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::NotDer)?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            VerifyingKey::Ed25519(key) => {
                let bytes: &[u8; 64] =
                    signature
                        .try_into()
                        .map_err(|_| SignatureError::WrongLength {
                            expected: 64,
                            found: signature.len(),
                        })?;
                let signature = ed25519_dalek::Signature::from_bytes(bytes);
                key.verify_strict(message, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            VerifyingKey::Rsa(key) => {
                let digest: [u8; 32] = Sha256::digest(message).into();
                self.verify_rsa_prehash(key, &digest, signature)
            }
        }
    }

    /// Verifies `signature` over a message of which only the SHA-256 digest is known (Sigstore
    /// bundles' `messageSignature`). Supported for ECDSA P-256 and RSA; other keys return
    /// [`SignatureError::PrehashUnsupported`].
    pub fn verify_prehash(
        &self,
        sha256_digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match &self.key {
            VerifyingKey::P256(key) => {
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::NotDer)?;
                key.verify_prehash(sha256_digest, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            VerifyingKey::Rsa(key) => self.verify_rsa_prehash(key, sha256_digest, signature),
            VerifyingKey::P384(_) | VerifyingKey::Ed25519(_) => {
                Err(SignatureError::PrehashUnsupported(self.algorithm))
            }
        }
    }

    fn verify_rsa_prehash(
        &self,
        key: &rsa::RsaPublicKey,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        if self.algorithm == KeyAlgorithm::RsaPssSha256 {
            // Go's crypto/rsa (and so cosign) signs with the longest salt by default; others
            // use the hash length. Accept exactly these two.
            let longest_salt = key.size().saturating_sub(32 + 2);
            for salt_len in [32, longest_salt] {
                let scheme = rsa::Pss::new_with_salt::<Sha256>(salt_len);
                if key.verify(scheme, digest, signature).is_ok() {
                    return Ok(());
                }
            }
            Err(SignatureError::Invalid)
        } else {
            key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, signature)
                .map_err(|_| SignatureError::Invalid)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------------------------

/// A private key airlock can sign with. The secret is zeroized on drop; `Debug` shows only the
/// algorithm and the public key's id.
#[derive(Clone)]
pub enum SigningKey {
    /// ECDSA P-256 (cosign's default): DER signatures over SHA-256.
    EcdsaP256(p256::ecdsa::SigningKey),
    /// ECDSA P-384: DER signatures over SHA-384.
    EcdsaP384(p384::ecdsa::SigningKey),
    /// Ed25519: 64-byte signatures over the message.
    Ed25519(ed25519_dalek::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.public_key().key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh ECDSA P-256 key from the operating system's random number generator.
    pub fn generate_p256() -> Self {
        Self::EcdsaP256(p256::ecdsa::SigningKey::random(&mut OsRng))
    }

    /// A fresh Ed25519 key from the operating system's random number generator.
    pub fn generate_ed25519() -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
    }

    /// The algorithm of the signatures this key makes.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::EcdsaP256(_) => KeyAlgorithm::EcdsaP256Sha256,
            Self::EcdsaP384(_) => KeyAlgorithm::EcdsaP384Sha384,
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// Signs `message`: DER ECDSA (deterministic, RFC 6979) or raw Ed25519, exactly what
    /// [`PublicKey::verify`] accepts.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::DerSignature = key.sign(message);
                signature.as_bytes().to_vec()
            }
            Self::EcdsaP384(key) => {
                let signature: p384::ecdsa::DerSignature = key.sign(message);
                signature.as_bytes().to_vec()
            }
            Self::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::EcdsaP256(key) => PublicKey::from_p256(*key.verifying_key()),
            Self::EcdsaP384(key) => PublicKey::from_p384(*key.verifying_key()),
            Self::Ed25519(key) => PublicKey::from_ed25519(key.verifying_key()),
        }
    }

    /// Parses a PKCS#8 DER private key (P-256, P-384 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, TrustError> {
        TrustError::check_size("private key DER", der.len(), MAX_KEY_DER_BYTES)?;
        let invalid = |err: &dyn fmt::Display| TrustError::InvalidPrivateKey(err.to_string());
        let info = PrivateKeyInfo::try_from(der).map_err(|e| invalid(&e))?;
        let oid = info.algorithm.oid;
        if oid == OID_EC_PUBLIC_KEY {
            let curve = info.algorithm.parameters_oid().map_err(|_| {
                TrustError::InvalidPrivateKey("the EC key does not name its curve".into())
            })?;
            if curve == OID_P256 {
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map(Self::EcdsaP256)
                    .map_err(|e| invalid(&e))
            } else if curve == OID_P384 {
                p384::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map(Self::EcdsaP384)
                    .map_err(|e| invalid(&e))
            } else {
                Err(TrustError::InvalidPrivateKey(format!(
                    "unsupported elliptic curve {curve}; use P-256, P-384 or Ed25519"
                )))
            }
        } else if oid == OID_ED25519 {
            ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(Self::Ed25519)
                .map_err(|e| invalid(&e))
        } else if oid == OID_RSA_ENCRYPTION || oid == OID_RSASSA_PSS {
            Err(TrustError::InvalidPrivateKey(
                "airlock does not sign with RSA keys; use ECDSA P-256 (cosign's default) or \
                 Ed25519"
                    .into(),
            ))
        } else {
            Err(TrustError::InvalidPrivateKey(format!(
                "unsupported key algorithm {oid}; use ECDSA P-256, P-384 or Ed25519"
            )))
        }
    }

    /// Parses a SEC1 `ECPrivateKey` DER (the body of an `EC PRIVATE KEY` PEM block) on P-256 or
    /// P-384.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, TrustError> {
        TrustError::check_size("private key DER", der.len(), MAX_KEY_DER_BYTES)?;
        if let Ok(secret) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::EcdsaP256(secret.into()));
        }
        if let Ok(secret) = p384::SecretKey::from_sec1_der(der) {
            return Ok(Self::EcdsaP384(secret.into()));
        }
        Err(TrustError::InvalidPrivateKey(
            "not a SEC1 EC private key on P-256 or P-384".into(),
        ))
    }

    /// The key as PKCS#8 DER (version 1, without the optional public key, which is what Go's
    /// `x509.ParsePKCS8PrivateKey` and so cosign read). The caller holds secret bytes: write
    /// them only encrypted or to a file only its owner can read.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, TrustError> {
        let document = match self {
            Self::EcdsaP256(key) => key.to_pkcs8_der(),
            Self::EcdsaP384(key) => key.to_pkcs8_der(),
            Self::Ed25519(key) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
        }
        .map_err(|e| TrustError::InvalidPrivateKey(format!("cannot encode as PKCS#8: {e}")))?;
        Ok(document.as_bytes().to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// cosign key files
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct EncryptedKeyFile {
    kdf: KdfSection,
    cipher: CipherSection,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct KdfSection {
    name: String,
    params: ScryptSection,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptSection {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct CipherSection {
    name: String,
    nonce: String,
}

/// Reads a private key file: a cosign encrypted key (`ENCRYPTED SIGSTORE PRIVATE KEY` or
/// `ENCRYPTED COSIGN PRIVATE KEY`, decrypted with `password`), or an unencrypted PKCS#8
/// `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM block (`password` is then ignored).
///
/// A wrong password gives [`TrustError::WrongPassword`]. scrypt parameters above
/// [`MAX_SCRYPT_LOG_N`], [`MAX_SCRYPT_R`] or [`MAX_SCRYPT_P`] are refused before any work.
pub fn decrypt_cosign_private_key(pem: &str, password: &[u8]) -> Result<SigningKey, TrustError> {
    let block = read_pem(pem, "private key PEM")?;
    match block.label.as_str() {
        SIGSTORE_PRIVATE_KEY_LABEL | COSIGN_PRIVATE_KEY_LABEL => {
            let plaintext = decrypt_key_file(&block.der, password)?;
            SigningKey::from_pkcs8_der(&plaintext).map_err(|e| match e {
                TrustError::InvalidPrivateKey(reason) => TrustError::InvalidPrivateKey(format!(
                    "the key file decrypted, but its content is not a usable key: {reason}"
                )),
                other => other,
            })
        }
        "PRIVATE KEY" => SigningKey::from_pkcs8_der(&block.der),
        "EC PRIVATE KEY" => SigningKey::from_sec1_der(&block.der),
        "ENCRYPTED PRIVATE KEY" => Err(TrustError::UnsupportedKeyFile(
            "PKCS#8-encrypted keys are not supported; import it with `cosign import-key-pair` or \
             decrypt it with `openssl pkcs8`"
                .into(),
        )),
        "RSA PRIVATE KEY" => Err(TrustError::UnsupportedKeyFile(
            "RSA private keys cannot sign in airlock; use ECDSA P-256 or Ed25519".into(),
        )),
        PUBLIC_KEY_LABEL => Err(TrustError::UnsupportedKeyFile(
            "this is a public key; give the private key (e.g. cosign.key)".into(),
        )),
        label => Err(TrustError::UnsupportedKeyFile(format!(
            "PEM block `{}` is not a private key; expected `{SIGSTORE_PRIVATE_KEY_LABEL}`, \
             `PRIVATE KEY` or `EC PRIVATE KEY`",
            truncate(label)
        ))),
    }
}

fn decrypt_key_file(body: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, TrustError> {
    const WHAT: &str = "cosign key file";
    let file: EncryptedKeyFile =
        serde_json::from_slice(body).map_err(|e| TrustError::malformed(WHAT, e.to_string()))?;
    if file.kdf.name != "scrypt" {
        return Err(TrustError::UnsupportedKeyFile(format!(
            "key derivation `{}` is not supported; cosign uses scrypt",
            truncate(&file.kdf.name)
        )));
    }
    if file.cipher.name != "nacl/secretbox" {
        return Err(TrustError::UnsupportedKeyFile(format!(
            "cipher `{}` is not supported; cosign uses nacl/secretbox",
            truncate(&file.cipher.name)
        )));
    }
    let ScryptSection { n, r, p } = file.kdf.params;
    if n < 2 || !n.is_power_of_two() {
        return Err(TrustError::malformed(
            WHAT,
            format!("scrypt N = {n} is not a power of two greater than 1"),
        ));
    }
    let log_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
    if log_n > MAX_SCRYPT_LOG_N || r == 0 || r > MAX_SCRYPT_R || p == 0 || p > MAX_SCRYPT_P {
        return Err(TrustError::UnsupportedKeyFile(format!(
            "scrypt parameters N = {n}, r = {r}, p = {p} exceed airlock's limits (N <= 2^{}, \
             r <= {MAX_SCRYPT_R}, p <= {MAX_SCRYPT_P})",
            MAX_SCRYPT_LOG_N
        )));
    }
    let salt = decode_field(&file.kdf.salt, "kdf.salt")?;
    let nonce: [u8; NONCE_LEN] = decode_field(&file.cipher.nonce, "cipher.nonce")?
        .try_into()
        .map_err(|_| TrustError::malformed(WHAT, format!("the nonce is not {NONCE_LEN} bytes")))?;
    let ciphertext = decode_field(&file.ciphertext, "ciphertext")?;
    if ciphertext.len() < SECRETBOX_TAG_LEN {
        return Err(TrustError::malformed(
            WHAT,
            "the ciphertext is shorter than its authentication tag",
        ));
    }
    let key = derive_secretbox_key(password, &salt, log_n, r, p)?;
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_slice()));
    let plaintext = cipher
        .decrypt(&nonce.into(), ciphertext.as_slice())
        .map_err(|_| TrustError::WrongPassword)?;
    Ok(Zeroizing::new(plaintext))
}

fn decode_field(value: &str, field: &str) -> Result<Vec<u8>, TrustError> {
    STANDARD.decode(value).map_err(|_| {
        TrustError::malformed(
            "cosign key file",
            format!("`{field}` is not standard base64"),
        )
    })
}

fn derive_secretbox_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; SECRETBOX_KEY_LEN]>, TrustError> {
    let params = scrypt::Params::new(log_n, r, p, SECRETBOX_KEY_LEN).map_err(|_| {
        TrustError::UnsupportedKeyFile(format!(
            "scrypt parameters N = 2^{log_n}, r = {r}, p = {p} are invalid"
        ))
    })?;
    let mut key = Zeroizing::new([0u8; SECRETBOX_KEY_LEN]);
    scrypt::scrypt(password, salt, &params, key.as_mut_slice())
        .map_err(|_| TrustError::UnsupportedKeyFile("scrypt refused the output length".into()))?;
    Ok(key)
}

/// Writes `key` as a cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY`), encrypted under
/// `password` with scrypt (N = 2^[`COSIGN_SCRYPT_LOG_N`], r = 8, p = 1, a random 32-byte salt)
/// and NaCl secretbox (a random 24-byte nonce), exactly as `cosign generate-key-pair` does, so
/// cosign can read it back with `COSIGN_PASSWORD`.
pub fn encrypt_cosign_private_key(key: &SigningKey, password: &[u8]) -> Result<String, TrustError> {
    encrypt_with_log_n(key, password, COSIGN_SCRYPT_LOG_N)
}

fn encrypt_with_log_n(key: &SigningKey, password: &[u8], log_n: u8) -> Result<String, TrustError> {
    let plaintext = Zeroizing::new(key.to_pkcs8_der()?);
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|_| TrustError::Encryption("the system random number generator failed".into()))?;
    let secretbox_key =
        derive_secretbox_key(password, &salt, log_n, COSIGN_SCRYPT_R, COSIGN_SCRYPT_P)
            .map_err(|e| TrustError::Encryption(e.to_string()))?;
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(secretbox_key.as_slice()));
    let ciphertext = cipher
        .encrypt(&nonce.into(), plaintext.as_slice())
        .map_err(|_| TrustError::Encryption("secretbox refused the plaintext".into()))?;
    let file = EncryptedKeyFile {
        kdf: KdfSection {
            name: "scrypt".into(),
            params: ScryptSection {
                n: 1u64 << log_n,
                r: COSIGN_SCRYPT_R,
                p: COSIGN_SCRYPT_P,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: CipherSection {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(ciphertext),
    };
    let json = serde_json::to_vec(&file).map_err(|e| TrustError::Encryption(e.to_string()))?;
    Ok(encode_pem(SIGSTORE_PRIVATE_KEY_LABEL, &json))
}

// ---------------------------------------------------------------------------------------------
// PEM
// ---------------------------------------------------------------------------------------------

/// One PEM block: its label and decoded body (zeroized on drop, since it may be a private key).
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// Reads the first PEM block of `text` (RFC 7468; text before it is ignored). Bounded by
/// [`MAX_PEM_BYTES`]; PEM headers (legacy OpenSSL encryption) are refused.
pub(crate) fn read_pem(text: &str, what: &'static str) -> Result<PemBlock, TrustError> {
    TrustError::check_size(what, text.len(), MAX_PEM_BYTES)?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or_else(|| TrustError::malformed(what, "no `-----BEGIN ...-----` line"))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(TrustError::UnsupportedKeyFile(
                "PEM headers (legacy OpenSSL encryption) are not supported".into(),
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(TrustError::malformed(
            what,
            format!("no `{}` line", truncate(&end)),
        ));
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| TrustError::malformed(what, "the body is not base64"))?;
    Ok(PemBlock {
        label,
        der: Zeroizing::new(der),
    })
}

/// Encodes `der` as a PEM block with 64-character lines and a final newline.
pub(crate) fn encode_pem(label: &str, der: &[u8]) -> String {
    let body = Zeroizing::new(STANDARD.encode(der));
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// At most 64 characters of `value`, for error messages about untrusted input.
pub(crate) fn truncate(value: &str) -> String {
    clip(value, 64)
}

/// At most `limit` characters of `value` (with `...` when cut), for messages about untrusted
/// input.
pub(crate) fn clip(value: &str, limit: usize) -> String {
    match value.char_indices().nth(limit) {
        Some((index, _)) => format!("{}...", &value[..index]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_KEY: &str =
        include_str!("../../../tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key");
    const REAL_PUB: &str = include_str!("../../../tests/fixtures/cosign/real_signature.pub");
    const REAL_PAYLOAD: &[u8] =
        include_bytes!("../../../tests/fixtures/cosign/real_signature.payload.json");
    const REAL_SIG_B64: &str =
        include_str!("../../../tests/fixtures/cosign/real_signature.sig.b64");

    // Independent vectors made with OpenSSL 3 over `VECTOR_MESSAGE` (throwaway keys).
    const VECTOR_MESSAGE: &[u8] = b"airlock rsa test vector";
    const RSA_2048_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyqVLlXF7HVGbKMxBwUKa
sw72TKd24Px810grcDym9NHO3NygtsjSOlya6OkYFUJn4xK0lQDn8Y0zEG8zpHJH
f8NNywEnD7eSgF1woyYwAmqbj4JYiq+0jkE+2FDDPhzaeuu7CiAmVZc3c4SP2fuq
1iqB3S0HZhX34A6SDGBfauTDSliv5PLrRR7IrQPCh1HQ7Vlu+ZNOAPx9wikSqxN8
b/NwqTqFpXE74R79bYJfoPyBbJvBPpru7BbnoMdqsipN+EXmg1Bqq7Mx/+dckFpJ
TVysvA7IkOhEoCrBW/ALmLCJXnzjJdGhBGxcrOxxrkw1LWg4AyGI5MpLGfwp8C9x
MQIDAQAB
-----END PUBLIC KEY-----
";
    const RSA_PKCS1_SIG: &str = "nSGy5iLtJm5y3Dhgr5mN9IY/uEcElf+pmlJrMzp9gofRH2bNfYeXbqIkTzBfQWfwkt+HYfd/imzZVDXS8JeWtq0GPgGYaeVIXRrQwLkuN8jJdga9HyOh9HOjtqSxie/05lcPono64Wx4Mo9IeaAq6+IiycZEf3AMKJDPKeePNlaL5PaIAqgYlDfcNKc/PLLpKPnIQXT+QZGUHEHAvi5i0DslD3Rnt+tOBiSR3kkk5JMAaJyfm8gVa2E7HeX/k455T31ibOxnvHmj6LoBPXUanWi2a0nux/8/KzQuwJPu1jakLk0dGMYQIxAwaFSmOHUOQeLpvu7NLLPRLZXMCZHQKA==";
    const RSA_PSS_SALT32_SIG: &str = "iEfM6+iA9S7QpfITZ2osjkYzXkm25f57uYkmyPR6Y1C3+lAdd+RHJ1IZsLlNnO00FkDDwJG6rFKtSugYB7F2WUZ2FaqBq2B0VaRAfSdnWUx+LneIIXjsZzQW3MJJHbhHOKDF7qgSKQ/4oyLW/IBVTdvZZ4JSftT4BDcsdsrOkZkvM7G3XcYZE5CLb1mUsc1Z7S5NBVKvKg2IOf94k/z47pixMu45PjjU8WbCHJKVxQdnrB84TaZFGNYHnTunstQzTricsV+Qtfa2JEqQ/tdwgTY8fHcRqvh/onK8z8iP+ynaK06+Xyge1HGJN0uh/CXEwlHZdcoiOD6ys2tt1ybc2w==";
    const RSA_PSS_MAX_SALT_SIG: &str = "mrz5z4qc6raFRnLeBfDMSnAsTfKb+clOWoagR8fMrEzgExtDE8Lx6XxzRpQ135bfZ4DAZw6dK0ld5HiGXR8yWM3UyeY6Q4WWX6TBKI7IugbOo34F6J03PHgQidNeSoEQE9Cfd3lUjLs3ay9nxUYdQVKbHYWcwWcoOyC0HOUGt7FNTjyBL+vYDJsVA85+WIloGSZpT8iTP8w8PN5c/VFLFvhEfEbWWoJgGokEqL3CFvm+VHLCnUxB7XBv8UTlpUUJmYHi+BmDuedoNjwSfShnz5qCY5r0Vm52WkW9wuTG9t7b+MjvLOK/6blt4D1SmR5aoM9yb4TU2wTwf7/y1HcNwA==";
    const RSA_1024_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCeqkQuZJp53nig03iIb6dx80e
kKvJybILAfh4c5UNiQguHwjvuAG0D62OHWw/tT5qN5V+oMHBB7G6449j7LqEttzX
K9ll8eFMxcEHe/5Yr6W+hMmYyEJhZJWskh73EoZYRp95PKPrfrXeNp/LmL99fjBS
eKg/iQ2USDFbh8i07wIDAQAB
-----END PUBLIC KEY-----
";
    const ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAhL0in1LvcFppzJZxo1ySLhEPo4+TIuA7nL4AuAO0zMk=
-----END PUBLIC KEY-----
";
    const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILDRCpQ0a+5adFq+tKTM4CLYKsHIZvkFK9wvVgpyULZQ
-----END PRIVATE KEY-----
";
    const ED25519_SIG: &str =
        "RlLK3dambM70AXWpysnZYGcd8C+BSC9iQqUVcvbaoY1hej5ZqsatDvGBEHmO4qvIoOImCSNQBhRNd4V2zOSjDA==";
    const P384_PUB: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEqlcT3evf1B+yhKYpC2nu+rckfqmEybU5
yC6c8SlEAs5L9iJ/Hsv40NXXuYAqPx128bEFzY5xRqQwX7SJEmw8ddiSBXn6guIb
EgR2/2mbWKQ9euR/DDAUSeuekIYnt458
-----END PUBLIC KEY-----
";
    const P384_SIG: &str = "MGUCMH6l51Ws5f03d4OHGi92Q95rWv/UGV5LjdpKG5ffwjGt/1Or07pzHdDz0LboL7HFeQIxALiNgpebMoe6pG65Srlo+7XN+pHjJIX+lew+GRC0NySJxzPAmXFgUamo6sB1WUH2ng==";
    const SEC1_P256_PRIVATE: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEINzZ0ULToLKWYoC9AyzVXVLCwN6xaeFdWcEAutCkQXZKoAoGCCqGSM49
AwEHoUQDQgAE6LFibEDkZOymC11qdxU2Pr3C/80a02jrZUisds3DMZonpHeHVFuu
csgACaHj+suN8lk9EQ+F5GfxPkrinYZxfg==
-----END EC PRIVATE KEY-----
";
    const SEC1_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6LFibEDkZOymC11qdxU2Pr3C/80a
02jrZUisds3DMZonpHeHVFuucsgACaHj+suN8lk9EQ+F5GfxPkrinYZxfg==
-----END PUBLIC KEY-----
";

    fn b64(value: &str) -> Vec<u8> {
        STANDARD.decode(value.trim()).unwrap()
    }

    #[test]
    fn real_cosign_key_decrypts_with_the_empty_password() {
        let key = decrypt_cosign_private_key(REAL_KEY, b"").unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
        let signature = key.sign(b"promote me");
        let public = key.public_key();
        public.verify(b"promote me", &signature).unwrap();
        assert_eq!(
            public.verify(b"promote you", &signature),
            Err(SignatureError::Invalid)
        );
        // The derived public key round-trips through PEM with the same id.
        let reparsed = PublicKey::from_pem(&public.to_pem()).unwrap();
        assert_eq!(reparsed, public);
        assert_eq!(reparsed.key_id(), public.key_id());
    }

    #[test]
    fn real_cosign_key_with_a_wrong_password_is_wrong_password() {
        assert_eq!(
            decrypt_cosign_private_key(REAL_KEY, b"not the password").unwrap_err(),
            TrustError::WrongPassword
        );
    }

    #[test]
    fn real_cosign_signature_verifies_over_the_payload() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
        public.verify(REAL_PAYLOAD, &b64(REAL_SIG_B64)).unwrap();
    }

    #[test]
    fn real_cosign_signature_fails_when_one_payload_byte_changes() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        let signature = b64(REAL_SIG_B64);
        for index in [0, REAL_PAYLOAD.len() / 2, REAL_PAYLOAD.len() - 1] {
            let mut payload = REAL_PAYLOAD.to_vec();
            payload[index] ^= 0x01;
            assert_eq!(
                public.verify(&payload, &signature),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn real_cosign_signature_verifies_as_a_prehash() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        let digest: [u8; 32] = Sha256::digest(REAL_PAYLOAD).into();
        public.verify_prehash(&digest, &b64(REAL_SIG_B64)).unwrap();
    }

    #[test]
    fn ecdsa_signature_that_is_not_der_is_reported() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        assert_eq!(
            public.verify(REAL_PAYLOAD, &[0u8; 64]),
            Err(SignatureError::NotDer)
        );
    }

    #[test]
    fn p256_round_trip() {
        let key = SigningKey::generate_p256();
        let signature = key.sign(b"message");
        key.public_key().verify(b"message", &signature).unwrap();
        assert_eq!(
            key.public_key().verify(b"massage", &signature),
            Err(SignatureError::Invalid)
        );
        let digest: [u8; 32] = Sha256::digest(b"message").into();
        key.public_key()
            .verify_prehash(&digest, &signature)
            .unwrap();
    }

    #[test]
    fn p384_round_trip_uses_sha384() {
        let key = SigningKey::EcdsaP384(p384::ecdsa::SigningKey::random(&mut OsRng));
        let signature = key.sign(b"message");
        let public = key.public_key();
        assert_eq!(public.algorithm(), KeyAlgorithm::EcdsaP384Sha384);
        public.verify(b"message", &signature).unwrap();
        assert_eq!(
            public.verify(b"massage", &signature),
            Err(SignatureError::Invalid)
        );
        let digest = [0u8; 32];
        assert_eq!(
            public.verify_prehash(&digest, &signature),
            Err(SignatureError::PrehashUnsupported(
                KeyAlgorithm::EcdsaP384Sha384
            ))
        );
    }

    #[test]
    fn openssl_p384_signature_verifies() {
        let public = PublicKey::from_pem(P384_PUB).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::EcdsaP384Sha384);
        public.verify(VECTOR_MESSAGE, &b64(P384_SIG)).unwrap();
        assert!(public.verify(b"other", &b64(P384_SIG)).is_err());
    }

    #[test]
    fn ed25519_round_trip() {
        let key = SigningKey::generate_ed25519();
        let signature = key.sign(b"message");
        assert_eq!(signature.len(), 64);
        let public = key.public_key();
        assert_eq!(public.algorithm(), KeyAlgorithm::Ed25519);
        public.verify(b"message", &signature).unwrap();
        assert_eq!(
            public.verify(b"massage", &signature),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            public.verify(b"message", &signature[..63]),
            Err(SignatureError::WrongLength {
                expected: 64,
                found: 63
            })
        );
        assert_eq!(
            public.verify_prehash(&[0u8; 32], &signature),
            Err(SignatureError::PrehashUnsupported(KeyAlgorithm::Ed25519))
        );
    }

    #[test]
    fn openssl_ed25519_key_and_signature_interoperate() {
        let public = PublicKey::from_pem(ED25519_PUB).unwrap();
        public.verify(VECTOR_MESSAGE, &b64(ED25519_SIG)).unwrap();
        let private = decrypt_cosign_private_key(ED25519_PRIVATE, b"ignored").unwrap();
        assert_eq!(private.public_key(), public);
        assert_eq!(private.sign(VECTOR_MESSAGE), b64(ED25519_SIG));
    }

    #[test]
    fn small_order_ed25519_key_is_refused() {
        // The identity point (y = 1) is of small order.
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        let mut point = [0u8; 32];
        point[0] = 1;
        spki.extend_from_slice(&point);
        assert!(matches!(
            PublicKey::from_spki_der(&spki),
            Err(TrustError::InvalidPublicKey(reason)) if reason.contains("small-order")
        ));
    }

    #[test]
    fn openssl_rsa_pkcs1_signature_verifies_by_default() {
        let public = PublicKey::from_pem(RSA_2048_PUB).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::RsaPkcs1Sha256);
        public.verify(VECTOR_MESSAGE, &b64(RSA_PKCS1_SIG)).unwrap();
        assert_eq!(
            public.verify(b"other", &b64(RSA_PKCS1_SIG)),
            Err(SignatureError::Invalid)
        );
        let digest: [u8; 32] = Sha256::digest(VECTOR_MESSAGE).into();
        public.verify_prehash(&digest, &b64(RSA_PKCS1_SIG)).unwrap();
        // A PSS signature is not a PKCS#1 v1.5 one.
        assert!(
            public
                .verify(VECTOR_MESSAGE, &b64(RSA_PSS_SALT32_SIG))
                .is_err()
        );
    }

    #[test]
    fn openssl_rsa_pss_signatures_verify_with_either_salt_length() {
        let public =
            PublicKey::from_pem_with_algorithm(RSA_2048_PUB, KeyAlgorithm::RsaPssSha256).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::RsaPssSha256);
        public
            .verify(VECTOR_MESSAGE, &b64(RSA_PSS_SALT32_SIG))
            .unwrap();
        public
            .verify(VECTOR_MESSAGE, &b64(RSA_PSS_MAX_SALT_SIG))
            .unwrap();
        assert!(public.verify(b"other", &b64(RSA_PSS_SALT32_SIG)).is_err());
        assert!(public.verify(VECTOR_MESSAGE, &b64(RSA_PKCS1_SIG)).is_err());
        // The algorithm does not change the key id.
        assert_eq!(
            public.key_id(),
            PublicKey::from_pem(RSA_2048_PUB).unwrap().key_id()
        );
    }

    #[test]
    fn rsa_below_2048_bits_is_refused() {
        assert!(matches!(
            PublicKey::from_pem(RSA_1024_PUB),
            Err(TrustError::InvalidPublicKey(reason)) if reason.contains("1024 bits")
        ));
    }

    #[test]
    fn algorithm_that_does_not_fit_the_key_is_refused() {
        assert!(PublicKey::from_pem_with_algorithm(REAL_PUB, KeyAlgorithm::RsaPssSha256).is_err());
        assert!(
            PublicKey::from_pem_with_algorithm(RSA_2048_PUB, KeyAlgorithm::EcdsaP256Sha256)
                .is_err()
        );
        let public =
            PublicKey::from_pem_with_algorithm(REAL_PUB, KeyAlgorithm::EcdsaP256Sha256).unwrap();
        assert_eq!(public.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
    }

    #[test]
    fn key_id_is_sha256_of_the_spki_der() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        let block = read_pem(REAL_PUB, "test").unwrap();
        assert_eq!(public.spki_der(), block.der.as_slice());
        assert_eq!(
            public.key_id().as_str(),
            hex::encode(Sha256::digest(block.der.as_slice()))
        );
        assert_eq!(public.to_pem(), REAL_PUB.trim_end().to_string() + "\n");
        let id = public.key_id();
        assert!(id.matches_hint(id.as_str()));
        assert!(id.matches_hint(&STANDARD.encode(Sha256::digest(block.der.as_slice()))));
        assert!(!id.matches_hint("something else"));
    }

    #[test]
    fn constructed_spki_matches_the_crates_encoding() {
        let p256 = p256::ecdsa::SigningKey::random(&mut OsRng);
        let p384 = p384::ecdsa::SigningKey::random(&mut OsRng);
        let ed = ed25519_dalek::SigningKey::generate(&mut OsRng);
        for (key, expected) in [
            (
                SigningKey::EcdsaP256(p256.clone()),
                p256.verifying_key().to_public_key_der().unwrap(),
            ),
            (
                SigningKey::EcdsaP384(p384.clone()),
                p384.verifying_key().to_public_key_der().unwrap(),
            ),
            (
                SigningKey::Ed25519(ed.clone()),
                ed.verifying_key().to_public_key_der().unwrap(),
            ),
        ] {
            assert_eq!(key.public_key().spki_der(), expected.as_bytes());
            assert_eq!(
                PublicKey::from_spki_der(expected.as_bytes()).unwrap(),
                key.public_key()
            );
        }
    }

    #[test]
    fn key_id_parsing_requires_64_lowercase_hex() {
        let id: KeyId = "a".repeat(64).parse().unwrap();
        assert_eq!(id.to_string(), "a".repeat(64));
        assert!("A".repeat(64).parse::<KeyId>().is_err());
        assert!("a".repeat(63).parse::<KeyId>().is_err());
        assert!("g".repeat(64).parse::<KeyId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"nope\"").is_err());
    }

    #[test]
    fn key_algorithm_strings_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(
                algorithm.as_str().parse::<KeyAlgorithm>().unwrap(),
                algorithm
            );
            let json = serde_json::to_string(&algorithm).unwrap();
            assert_eq!(json, format!("\"{algorithm}\""));
            assert_eq!(
                serde_json::from_str::<KeyAlgorithm>(&json).unwrap(),
                algorithm
            );
        }
        assert!("ecdsa".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn sec1_ec_private_key_is_read() {
        let key = decrypt_cosign_private_key(SEC1_P256_PRIVATE, b"").unwrap();
        assert_eq!(
            key.public_key(),
            PublicKey::from_pem(SEC1_P256_PUB).unwrap()
        );
    }

    #[test]
    fn pkcs8_round_trip_for_every_signing_algorithm() {
        for key in [
            SigningKey::generate_p256(),
            SigningKey::EcdsaP384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            SigningKey::generate_ed25519(),
        ] {
            let der = key.to_pkcs8_der().unwrap();
            let back = SigningKey::from_pkcs8_der(&der).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let pem = encode_pem("PRIVATE KEY", &der);
            let from_pem = decrypt_cosign_private_key(&pem, b"").unwrap();
            assert_eq!(from_pem.public_key(), key.public_key());
        }
    }

    #[test]
    fn cosign_key_file_round_trip() {
        let key = SigningKey::generate_p256();
        let pem = encrypt_with_log_n(&key, b"correct horse", 4).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = decrypt_cosign_private_key(&pem, b"correct horse").unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(
            decrypt_cosign_private_key(&pem, b"wrong horse").unwrap_err(),
            TrustError::WrongPassword
        );
        let ed = SigningKey::generate_ed25519();
        let pem = encrypt_with_log_n(&ed, b"", 4).unwrap();
        let back = decrypt_cosign_private_key(&pem, b"").unwrap();
        assert_eq!(back.public_key(), ed.public_key());
    }

    fn key_file_json(pem: &str) -> serde_json::Value {
        let block = read_pem(pem, "test").unwrap();
        serde_json::from_slice(&block.der).unwrap()
    }

    fn key_file_pem(json: &serde_json::Value) -> String {
        encode_pem(
            SIGSTORE_PRIVATE_KEY_LABEL,
            &serde_json::to_vec(json).unwrap(),
        )
    }

    #[test]
    fn cosign_key_file_uses_cosigns_format_and_defaults() {
        let real = key_file_json(REAL_KEY);
        let key = SigningKey::generate_p256();
        let pem = encrypt_cosign_private_key(&key, b"pw").unwrap();
        let ours = key_file_json(&pem);
        assert_eq!(ours["kdf"]["name"], real["kdf"]["name"]);
        assert_eq!(ours["kdf"]["params"], real["kdf"]["params"]);
        assert_eq!(ours["cipher"]["name"], real["cipher"]["name"]);
        let len = |value: &serde_json::Value| b64(value.as_str().unwrap()).len();
        assert_eq!(len(&ours["kdf"]["salt"]), len(&real["kdf"]["salt"]));
        assert_eq!(len(&ours["cipher"]["nonce"]), len(&real["cipher"]["nonce"]));
        // Field order as Go writes it.
        let body = read_pem(&pem, "test").unwrap();
        let text = String::from_utf8(body.der.to_vec()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#
            )
        );
    }

    #[test]
    fn oversized_scrypt_cost_is_refused_before_work() {
        let mut json = key_file_json(REAL_KEY);
        json["kdf"]["params"]["N"] = serde_json::json!(1u64 << 20);
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::UnsupportedKeyFile(reason)) if reason.contains("exceed")
        ));
        let mut json = key_file_json(REAL_KEY);
        json["kdf"]["params"]["r"] = serde_json::json!(64);
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::UnsupportedKeyFile(_))
        ));
        let mut json = key_file_json(REAL_KEY);
        json["kdf"]["params"]["N"] = serde_json::json!(1000);
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::Malformed { .. })
        ));
    }

    #[test]
    fn unsupported_kdf_and_cipher_are_refused() {
        let mut json = key_file_json(REAL_KEY);
        json["kdf"]["name"] = serde_json::json!("pbkdf2");
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::UnsupportedKeyFile(reason)) if reason.contains("pbkdf2")
        ));
        let mut json = key_file_json(REAL_KEY);
        json["cipher"]["name"] = serde_json::json!("aes-gcm");
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::UnsupportedKeyFile(reason)) if reason.contains("aes-gcm")
        ));
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let mut json = key_file_json(REAL_KEY);
        json["cipher"]["nonce"] = serde_json::json!("AAAA");
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("nonce")
        ));
        let mut json = key_file_json(REAL_KEY);
        json["ciphertext"] = serde_json::json!("not base64!");
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("ciphertext")
        ));
        let mut json = key_file_json(REAL_KEY);
        json["ciphertext"] = serde_json::json!("AAAA");
        assert!(matches!(
            decrypt_cosign_private_key(&key_file_pem(&json), b""),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("tag")
        ));
        let not_json = encode_pem(SIGSTORE_PRIVATE_KEY_LABEL, b"{not json");
        assert!(matches!(
            decrypt_cosign_private_key(&not_json, b""),
            Err(TrustError::Malformed { .. })
        ));
    }

    #[test]
    fn other_pem_blocks_are_refused_with_a_reason() {
        let encrypted_pkcs8 = encode_pem("ENCRYPTED PRIVATE KEY", b"x");
        assert!(matches!(
            decrypt_cosign_private_key(&encrypted_pkcs8, b""),
            Err(TrustError::UnsupportedKeyFile(_))
        ));
        assert!(matches!(
            decrypt_cosign_private_key(REAL_PUB, b""),
            Err(TrustError::UnsupportedKeyFile(reason)) if reason.contains("public key")
        ));
        assert!(matches!(
            PublicKey::from_pem(SEC1_P256_PRIVATE),
            Err(TrustError::InvalidPublicKey(reason)) if reason.contains("private key")
        ));
        let certificate = encode_pem("CERTIFICATE", b"x");
        assert!(matches!(
            PublicKey::from_pem(&certificate),
            Err(TrustError::InvalidPublicKey(reason)) if reason.contains("certificate")
        ));
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            decrypt_cosign_private_key(legacy, b""),
            Err(TrustError::UnsupportedKeyFile(_))
        ));
    }

    #[test]
    fn broken_pem_is_malformed() {
        assert!(matches!(
            PublicKey::from_pem("hello"),
            Err(TrustError::Malformed { .. })
        ));
        let unterminated = REAL_PUB.replace("-----END PUBLIC KEY-----", "");
        assert!(matches!(
            PublicKey::from_pem(&unterminated),
            Err(TrustError::Malformed { .. })
        ));
        let bad_body = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(bad_body),
            Err(TrustError::Malformed { .. })
        ));
        let not_spki = encode_pem("PUBLIC KEY", b"\x30\x03\x02\x01\x01");
        assert!(matches!(
            PublicKey::from_pem(&not_spki),
            Err(TrustError::InvalidPublicKey(_))
        ));
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let huge = "A".repeat(MAX_PEM_BYTES + 1);
        assert_eq!(
            PublicKey::from_pem(&huge).unwrap_err(),
            TrustError::TooLarge {
                what: "public key PEM",
                limit: MAX_PEM_BYTES
            }
        );
        assert!(matches!(
            decrypt_cosign_private_key(&huge, b""),
            Err(TrustError::TooLarge { .. })
        ));
        assert!(matches!(
            PublicKey::from_spki_der(&vec![0u8; MAX_KEY_DER_BYTES + 1]),
            Err(TrustError::TooLarge { .. })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_der(&vec![0u8; MAX_KEY_DER_BYTES + 1]),
            Err(TrustError::TooLarge { .. })
        ));
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let key = SigningKey::generate_p256();
        let debug = format!("{key:?}");
        let SigningKey::EcdsaP256(inner) = &key else {
            unreachable!()
        };
        let secret = hex::encode(inner.to_bytes());
        assert!(!debug.contains(&secret));
        assert!(debug.contains(key.public_key().key_id().as_str()));
    }

    #[test]
    fn pem_text_around_the_block_and_crlf_are_tolerated() {
        let text = format!(
            "comment line\r\n{}\r\ntrailer",
            REAL_PUB.replace('\n', "\r\n")
        );
        assert_eq!(
            PublicKey::from_pem(&text).unwrap(),
            PublicKey::from_pem(REAL_PUB).unwrap()
        );
    }
}
