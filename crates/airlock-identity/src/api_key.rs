//! API keys for automation: `alk_<id>_<secret>`.
//!
//! `<id>` is 12 lowercase hex characters (6 random bytes) that the server uses to find the key's
//! record; `<secret>` is 43 base64url characters (32 random bytes). Because the secret carries
//! 256 bits of entropy, the server stores only its SHA-256 digest: a slow password hash buys
//! nothing against brute force here, and a fast one keeps every authenticated request cheap. The
//! full key is shown to its owner once, at creation, and never again.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::IdentityError;

/// Every API key starts with this prefix, so leaked keys are easy to recognise and scan for.
pub const API_KEY_PREFIX: &str = "alk_";
/// Length of the lookup id, in hex characters.
pub const API_KEY_ID_LEN: usize = 12;
/// Length of the secret part, in base64url characters (32 bytes, unpadded).
pub const API_KEY_SECRET_LEN: usize = 43;
const API_KEY_LEN: usize = API_KEY_PREFIX.len() + API_KEY_ID_LEN + 1 + API_KEY_SECRET_LEN;

/// The full text of a newly generated API key, to be shown to its owner exactly once.
///
/// `Debug` prints only the lookup id; read the key with [`ApiKeySecret::expose`].
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The full key text, `alk_<id>_<secret>`. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = parse_api_key(&self.0).map(|(id, _)| id).unwrap_or("?");
        f.debug_struct("ApiKeySecret")
            .field("id", &id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What the server stores for an API key: its lookup id and the SHA-256 of its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The lookup id: 12 lowercase hex characters.
    pub id: String,
    /// Lowercase hex SHA-256 of the secret part's text (the 43 base64url characters).
    pub secret_sha256: String,
}

/// An API key as presented by a client, parsed but not yet verified.
///
/// Obtain one with [`ApiKey::parse`], look up the record by [`ApiKey::id`], then call
/// [`ApiKey::verify`]. `Debug` does not print the secret.
pub struct ApiKey {
    id: String,
    secret: String,
}

impl ApiKey {
    /// Generates a new key: the secret to show once, and the record to store.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate() -> (ApiKeySecret, ApiKeyRecord) {
        let mut id = [0u8; API_KEY_ID_LEN / 2];
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let record = ApiKeyRecord {
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            id: id.clone(),
        };
        (
            ApiKeySecret(format!("{API_KEY_PREFIX}{id}_{secret}")),
            record,
        )
    }

    /// Parses a presented key strictly (see [`parse_api_key`]).
    pub fn parse(text: &str) -> Result<ApiKey, IdentityError> {
        let (id, secret) = parse_api_key(text)?;
        Ok(ApiKey {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The lookup id, to find the stored [`ApiKeyRecord`].
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this key's secret matches the stored digest (see [`verify_api_key`]).
    pub fn verify(&self, stored_hash_hex: &str) -> bool {
        verify_api_key(&self.secret, stored_hash_hex)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Splits `alk_<id>_<secret>` into its lookup id and secret part, borrowing from `text`.
///
/// Strict: exactly 60 characters, the `alk_` prefix, 12 lowercase hex characters, `_`, then 43
/// characters of canonical unpadded base64url that decode to 32 bytes. Anything else is
/// [`IdentityError::MalformedApiKey`].
pub fn parse_api_key(text: &str) -> Result<(&str, &str), IdentityError> {
    if text.len() != API_KEY_LEN {
        return Err(IdentityError::MalformedApiKey("wrong length"));
    }
    let rest = text
        .strip_prefix(API_KEY_PREFIX)
        .ok_or(IdentityError::MalformedApiKey("missing the alk_ prefix"))?;
    // The length check above guarantees both split points exist; `get` keeps it panic-free
    // even for multi-byte input.
    let id = rest
        .get(..API_KEY_ID_LEN)
        .ok_or(IdentityError::MalformedApiKey(
            "id is not 12 hex characters",
        ))?;
    if !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(IdentityError::MalformedApiKey(
            "id is not 12 lowercase hex characters",
        ));
    }
    let secret = rest
        .get(API_KEY_ID_LEN..)
        .and_then(|s| s.strip_prefix('_'))
        .ok_or(IdentityError::MalformedApiKey(
            "missing the _ between id and secret",
        ))?;
    match URL_SAFE_NO_PAD.decode(secret) {
        Ok(bytes) if bytes.len() == 32 => Ok((id, secret)),
        _ => Err(IdentityError::MalformedApiKey(
            "secret is not 43 characters of base64url",
        )),
    }
}

/// Whether `secret` (the part after the id) hashes to `stored_hash_hex`, compared in constant time.
///
/// Returns `false` when the stored digest is not 64 hex characters.
pub fn verify_api_key(secret: &str, stored_hash_hex: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hash_hex) else {
        return false;
    };
    if stored.len() != 32 {
        return false;
    }
    let presented = Sha256::digest(secret.as_bytes());
    presented.as_slice().ct_eq(&stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_and_verifies_against_its_record() {
        let (secret, record) = ApiKey::generate();
        let text = secret.expose();
        assert_eq!(text.len(), API_KEY_LEN);
        let (id, part) = parse_api_key(text).unwrap();
        assert_eq!(id, record.id);
        assert_eq!(part.len(), API_KEY_SECRET_LEN);
        assert!(verify_api_key(part, &record.secret_sha256));
        let key = ApiKey::parse(text).unwrap();
        assert_eq!(key.id(), record.id);
        assert!(key.verify(&record.secret_sha256));
    }

    #[test]
    fn two_generated_keys_differ() {
        let (a, ra) = ApiKey::generate();
        let (b, rb) = ApiKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(ra, rb);
    }

    #[test]
    fn tampered_secret_does_not_verify() {
        let (secret, record) = ApiKey::generate();
        let (_, part) = parse_api_key(secret.expose()).unwrap();
        let mut tampered = part.to_owned().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(!verify_api_key(&tampered, &record.secret_sha256));
        let (other, _) = ApiKey::generate();
        let (_, other_part) = parse_api_key(other.expose()).unwrap();
        assert!(!verify_api_key(other_part, &record.secret_sha256));
    }

    #[test]
    fn malformed_stored_digest_does_not_verify() {
        let (secret, record) = ApiKey::generate();
        let (_, part) = parse_api_key(secret.expose()).unwrap();
        assert!(!verify_api_key(part, ""));
        assert!(!verify_api_key(part, "zz"));
        assert!(!verify_api_key(part, &record.secret_sha256[..62]));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let (secret, _) = ApiKey::generate();
        let good = secret.expose();
        let secret_part = &good[17..];
        let cases = [
            String::new(),
            "alk_".to_owned(),
            good[..59].to_owned(),
            format!("{good}A"),
            format!("xyz_{}", &good[4..]),
            format!("ALK_{}", &good[4..]),
            format!("alk_0123456789AB_{secret_part}"),
            format!("alk_0123456789ag_{secret_part}"),
            format!("alk_0123456789ab-{secret_part}"),
            format!("alk_0123456789ab_{}", "+".repeat(43)),
            format!("alk_0123456789ab_{}=", &secret_part[..42]),
            // Non-canonical base64url: the last character carries non-zero padding bits.
            format!("alk_0123456789ab_{}B", "A".repeat(42)),
            format!("alk_0123456789ab_{}é", "A".repeat(41)),
            format!("alk_é123456789a_{secret_part}"),
        ];
        for case in &cases {
            assert!(
                matches!(parse_api_key(case), Err(IdentityError::MalformedApiKey(_))),
                "{case:?} was accepted"
            );
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let (secret, record) = ApiKey::generate();
        let (_, part) = parse_api_key(secret.expose()).unwrap();
        let printed = format!("{secret:?}");
        assert!(!printed.contains(part), "{printed}");
        assert!(printed.contains(&record.id), "{printed}");
        let parsed = format!("{:?}", ApiKey::parse(secret.expose()).unwrap());
        assert!(!parsed.contains(part), "{parsed}");
    }
}
