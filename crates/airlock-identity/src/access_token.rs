//! Registry access tokens: EdDSA-signed JWTs in the shape of the Docker registry token spec.
//!
//! The token service signs [`AccessClaims`] with a [`TokenKey`] (Ed25519); the registry checks
//! them with a [`TokenVerifier`] built from the matching [`TokenPublicKey`]. Only `EdDSA` is ever
//! accepted: `alg: none`, HMAC (including the classic confusion attack that uses the public key
//! as an HMAC secret) and every other algorithm are refused before any cryptography runs.
//!
//! Refresh tokens use the same format with [`TokenKind::Refresh`]; the verifier is told which
//! kind it expects, so one can never stand in for the other.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::IdentityError;
use crate::jwt::{self, ParseError};

/// Claims every access or refresh token must carry; a token missing one is
/// [`TokenError::MissingClaim`].
const REQUIRED_CLAIMS: &[&str] = &[
    "iss", "aud", "sub", "exp", "nbf", "iat", "jti", "access", "epoch", "auth", "kind",
];
/// The registered claims jsonwebtoken checks for presence as well (defence in depth).
const REQUIRED_SPEC_CLAIMS: &[&str] = &["iss", "aud", "sub", "exp", "nbf"];

/// Whether a token grants registry access or only the right to obtain new access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A short-lived token presented to the registry API.
    Access,
    /// A longer-lived token presented only to the token endpoint to get a new access token.
    Refresh,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        })
    }
}

/// One grant in a token's `access` claim, as in the Docker token spec:
/// `{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Resource type, e.g. `repository` or `registry`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource name, e.g. a repository name or `catalog`.
    pub name: String,
    /// Granted actions, e.g. `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

/// The claims of an access or refresh token. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the token service's name.
    pub iss: String,
    /// Audience: the registry service name the token is for.
    pub aud: String,
    /// Subject: the principal the token was issued to.
    pub sub: String,
    /// Expiry.
    pub exp: u64,
    /// Not valid before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique token id, for audit and revocation.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<AccessEntry>,
    /// The principal's credential epoch when the token was issued; bumping the epoch revokes
    /// every token issued before.
    pub epoch: u64,
    /// How the principal authenticated (e.g. `password`, `api_key`, `oidc`).
    pub auth: String,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The credential the token descends from (`password:<principal id>` or an API key id):
    /// the token is good only while that credential is (not expired, not revoked). Absent for
    /// tokens that descend from no stored credential (an OIDC exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<String>,
    /// The refresh-token family (one login with offline access) the token descends from, if
    /// any: revoking the family ends its refresh tokens and the access tokens they issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

/// Why a token was rejected. Each variant names one check; messages are safe to return to the
/// client in a 401 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("token is too large ({0} bytes, at most {max})", max = jwt::MAX_TOKEN_BYTES)]
    TooLarge(usize),
    /// The token is not a well-formed compact JWS with JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than `EdDSA` (including `none` and `HS256`).
    #[error("token algorithm {0:?} is not allowed (only EdDSA)")]
    AlgorithmNotAllowed(String),
    /// The header has no `kid`.
    #[error("token header has no key id")]
    MissingKeyId,
    /// The header's `kid` is not the verification key's.
    #[error("token was signed by unknown key id {0:?}")]
    UnknownKeyId(String),
    /// The header's `kid` is a retired key whose overlap ended: what it signed is no longer
    /// accepted.
    #[error(
        "token was signed by token key {kid}, which was replaced and is no longer accepted (since {accepted_until}); log in again"
    )]
    RetiredKey {
        /// The retired key's id.
        kid: String,
        /// When its overlap ended (seconds since the Unix epoch).
        accepted_until: u64,
    },
    /// The signature does not verify with the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// A required claim is absent.
    #[error("token is missing the {0:?} claim")]
    MissingClaim(String),
    /// A claim has the wrong type or shape.
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
    /// `iss` is not the expected issuer.
    #[error("token issuer {0:?} is not the expected issuer")]
    WrongIssuer(String),
    /// `aud` is not this service.
    #[error("token audience {0:?} is not this service")]
    WrongAudience(String),
    /// `exp` (plus leeway) is in the past.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `nbf` (minus leeway) is in the future.
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `iat` (minus leeway) is in the future.
    #[error("token was issued in the future at {iat} (now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// An access token was presented where a refresh token was expected, or the reverse.
    #[error("a {found} token cannot be used as a {expected} token")]
    WrongKind {
        /// The kind the caller asked for.
        expected: TokenKind,
        /// The kind the token carries.
        found: TokenKind,
    },
}

impl From<ParseError> for TokenError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::TooLarge(len) => TokenError::TooLarge(len),
            ParseError::Malformed(why) => TokenError::Malformed(why),
        }
    }
}

/// `kid` of an Ed25519 public key: the first 16 hex characters of SHA-256 over its 32 bytes.
fn key_id(key: &VerifyingKey) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    digest[..16].to_owned()
}

/// The Ed25519 key the token service signs with.
///
/// Persist it with [`TokenKey::to_pkcs8_pem`] in a file only the server can read (mode 0600);
/// `Debug` prints only the key id.
pub struct TokenKey {
    signing: SigningKey,
    public: TokenPublicKey,
}

impl TokenKey {
    /// Generates a fresh key from the operating system's RNG.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate() -> TokenKey {
        TokenKey::from_signing(SigningKey::generate(&mut OsRng))
    }

    fn from_signing(signing: SigningKey) -> TokenKey {
        let public = TokenPublicKey::from_verifying(signing.verifying_key());
        TokenKey { signing, public }
    }

    /// Loads a key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<TokenKey, IdentityError> {
        let signing = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| IdentityError::InvalidSigningKey(e.to_string()))?;
        Ok(TokenKey::from_signing(signing))
    }

    /// The key as PKCS#8 PEM, for the caller to store with mode 0600.
    pub fn to_pkcs8_pem(&self) -> Result<String, IdentityError> {
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::KeyEncoding(e.to_string()))?;
        Ok(pem.as_str().to_owned())
    }

    /// The public half, to build a [`TokenVerifier`] or publish as a JWK.
    pub fn public_key(&self) -> &TokenPublicKey {
        &self.public
    }

    /// The key id placed in every issued token's header.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// Signs `claims` as a JWT with header `{"alg": "EdDSA", "typ": "JWT", "kid": ...}`.
    ///
    /// The claims are signed as given: choosing lifetimes and grants is the caller's job.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        let der = self
            .signing
            .to_pkcs8_der()
            .map_err(|e| IdentityError::TokenSigning(e.to_string()))?;
        let key = EncodingKey::from_ed_der(der.as_bytes());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.public.kid.clone());
        jsonwebtoken::encode(&header, claims, &key)
            .map_err(|e| IdentityError::TokenSigning(e.to_string()))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

/// The public half of a [`TokenKey`]: verifies tokens, and can be published as PEM or JWK.
#[derive(Clone)]
pub struct TokenPublicKey {
    verifying: VerifyingKey,
    kid: String,
}

impl TokenPublicKey {
    fn from_verifying(verifying: VerifyingKey) -> TokenPublicKey {
        let kid = key_id(&verifying);
        TokenPublicKey { verifying, kid }
    }

    /// Loads a public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_public_pem(pem: &str) -> Result<TokenPublicKey, IdentityError> {
        let verifying = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| IdentityError::InvalidPublicKey(e.to_string()))?;
        Ok(TokenPublicKey::from_verifying(verifying))
    }

    /// The key as SPKI PEM.
    pub fn to_public_pem(&self) -> Result<String, IdentityError> {
        self.verifying
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| IdentityError::KeyEncoding(e.to_string()))
    }

    /// The key id: first 16 hex characters of SHA-256 over the 32 public key bytes.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.verifying.as_bytes()
    }

    /// The key as a JWK (`{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}`),
    /// for a JWKS document.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.verifying.as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

impl fmt::Debug for TokenPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPublicKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Checks access and refresh tokens issued by one [`TokenKey`].
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    /// The issuer's public key.
    pub key: TokenPublicKey,
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (this registry's service name).
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
}

impl TokenVerifier {
    /// Verifies `token` at time `now_secs` and returns its claims if it is a valid token of
    /// `expected_kind`.
    ///
    /// Order: size and shape, algorithm (EdDSA only), key id, claim presence and types,
    /// signature, then issuer, audience, time window and kind. Each failure is its own
    /// [`TokenError`] variant.
    pub fn verify(
        &self,
        token: &str,
        now_secs: u64,
        expected_kind: TokenKind,
    ) -> Result<AccessClaims, TokenError> {
        let jwt = jwt::parse(token)?;
        if jwt.header.alg != "EdDSA" {
            return Err(TokenError::AlgorithmNotAllowed(jwt.header.alg));
        }
        match jwt.header.kid {
            None => return Err(TokenError::MissingKeyId),
            Some(kid) if kid != self.key.kid => return Err(TokenError::UnknownKeyId(kid)),
            Some(_) => {}
        }
        if let Some(missing) = jwt::first_missing(&jwt.claims, REQUIRED_CLAIMS) {
            return Err(TokenError::MissingClaim(missing.to_owned()));
        }
        let claims: AccessClaims = serde_json::from_value(serde_json::Value::Object(jwt.claims))
            .map_err(|e| TokenError::InvalidClaims(e.to_string()))?;

        let key = DecodingKey::from_ed_der(self.key.verifying.as_bytes());
        jwt::verify_signature(token, &key, Algorithm::EdDSA, REQUIRED_SPEC_CLAIMS).map_err(
            |e| match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim),
                ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed("EdDSA".into()),
                _ => TokenError::Malformed("the token could not be decoded for verification"),
            },
        )?;

        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience(claims.aud));
        }
        check_time_window(&claims, now_secs, self.leeway_secs)?;
        if claims.kind != expected_kind {
            return Err(TokenError::WrongKind {
                expected: expected_kind,
                found: claims.kind,
            });
        }
        Ok(claims)
    }
}

/// A token key that no longer signs (it was rotated out): tokens it signed are accepted until
/// `accepted_until_secs`, the end of the rotation's overlap, and refused with
/// [`TokenError::RetiredKey`] after.
#[derive(Debug, Clone)]
pub struct RetiredTokenKey {
    /// Its public half.
    pub key: TokenPublicKey,
    /// The end of its overlap (seconds since the Unix epoch).
    pub accepted_until_secs: u64,
}

impl TokenVerifier {
    /// [`TokenVerifier::verify`], picking the key by the token's `kid`: the verifier's own key, or
    /// one of `retired` while its overlap lasts. Every other check is the same for both.
    pub fn verify_with_retired(
        &self,
        token: &str,
        now_secs: u64,
        expected_kind: TokenKind,
        retired: &[RetiredTokenKey],
    ) -> Result<AccessClaims, TokenError> {
        let kid = jwt::parse(token)?.header.kid;
        if let Some(kid) = kid
            && kid != self.key.kid
            && let Some(old) = retired.iter().find(|r| r.key.kid == kid)
        {
            if now_secs > old.accepted_until_secs {
                return Err(TokenError::RetiredKey {
                    kid,
                    accepted_until: old.accepted_until_secs,
                });
            }
            let verifier = TokenVerifier {
                key: old.key.clone(),
                ..self.clone()
            };
            return verifier.verify(token, now_secs, expected_kind);
        }
        self.verify(token, now_secs, expected_kind)
    }
}

fn check_time_window(claims: &AccessClaims, now: u64, leeway: u64) -> Result<(), TokenError> {
    if claims.exp.saturating_add(leeway) < now {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.nbf.saturating_sub(leeway) > now {
        return Err(TokenError::NotYetValid {
            nbf: claims.nbf,
            now,
        });
    }
    if claims.iat.saturating_sub(leeway) > now {
        return Err(TokenError::IssuedInFuture {
            iat: claims.iat,
            now,
        });
    }
    Ok(())
}

/// The JSON body of a Docker `GET /auth/token` answer.
///
/// Both `token` and `access_token` carry the token (clients read either); `refresh_token` is
/// present only when one is given. `issued_at` must be RFC 3339.
pub fn token_response(
    token: &str,
    expires_in: u64,
    issued_at_rfc3339: &str,
    refresh_token: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at_rfc3339,
    });
    if let (Some(refresh), Some(map)) = (refresh_token, body.as_object_mut()) {
        map.insert("refresh_token".into(), refresh.into());
    }
    body
}
