//! The error type for creating credentials and loading keys.
//!
//! Verification failures have their own enums ([`crate::TokenError`], [`crate::OidcError`])
//! because the server turns them into 401 answers; this one covers the operations the server
//! itself performs (hashing, key loading, signing) and malformed API keys.

/// What failed while creating a credential, loading a key, or parsing an API key.
///
/// No variant ever carries secret material: messages name the step that failed, not its input.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// argon2 refused to hash the password (parameters, password length, or the system RNG).
    #[error("hashing the password failed: {0}")]
    PasswordHash(String),
    /// The token signing key is not an Ed25519 private key in PKCS#8 PEM form.
    #[error("the token signing key is not an Ed25519 PKCS#8 PEM private key: {0}")]
    InvalidSigningKey(String),
    /// The token verification key is not an Ed25519 public key in SPKI PEM form.
    #[error("the token public key is not an Ed25519 SPKI PEM public key: {0}")]
    InvalidPublicKey(String),
    /// Encoding a key as PEM failed.
    #[error("encoding the token key as PEM failed: {0}")]
    KeyEncoding(String),
    /// Signing an access token failed.
    #[error("signing the access token failed: {0}")]
    TokenSigning(String),
    /// The presented text is not an API key of the form `alk_<12 hex>_<43 base64url>`.
    #[error("malformed API key: {0}")]
    MalformedApiKey(&'static str),
}
