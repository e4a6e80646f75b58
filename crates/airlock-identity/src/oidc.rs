//! Workload identity: CI ID tokens (GitHub Actions, GitLab CI, ...) verified against a
//! [`TrustRule`].
//!
//! A trust rule says "tokens from this issuer, for this audience, whose claims match these
//! patterns, may act on these repositories". The server picks the candidate rule with
//! [`select_rule`] (an unverified peek at `iss`), fetches that issuer's [`Jwks`], then calls
//! [`verify_id_token`], which checks everything: the algorithm (RS256 or ES256, matching the
//! key's type), the signature by the key named in `kid`, the issuer, the audience, the time
//! window, and every claim pattern.
//!
//! Issuers such as GitHub are shared by every user of the service, and the audience is chosen by
//! whoever writes the workflow, so a rule must constrain at least one claim (e.g.
//! `repository`); [`TrustRule::validate`] enforces this and `verify_id_token` re-checks it.

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jwt::{self, ParseError};

/// Largest JWKS document [`Jwks::from_json`] accepts, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Smallest RSA modulus accepted in a JWKS, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Claims an ID token must carry.
const REQUIRED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "iat"];
/// The registered claims jsonwebtoken checks for presence as well (defence in depth).
const REQUIRED_SPEC_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp"];

/// Why an ID token, a JWKS document or a trust rule was rejected. Messages are safe to return
/// to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("ID token is too large ({0} bytes, at most {max})", max = jwt::MAX_TOKEN_BYTES)]
    TooLarge(usize),
    /// The token is not a well-formed compact JWS with JSON header and claims.
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    /// No trust rule names the token's issuer, or the rule given names another one.
    #[error("untrusted issuer {0:?}")]
    UntrustedIssuer(String),
    /// The header's algorithm is not RS256 or ES256.
    #[error("ID token algorithm {0:?} is not supported (only RS256 and ES256)")]
    UnsupportedAlgorithm(String),
    /// The header has no `kid`, so no key can be selected.
    #[error("ID token header has no key id")]
    MissingKeyId,
    /// No usable key in the JWKS has the header's `kid`.
    #[error("unknown key id {0:?} for this issuer")]
    UnknownKeyId(String),
    /// The header's algorithm does not fit the selected key (e.g. ES256 with an RSA key).
    #[error("ID token algorithm {alg} does not match key {kid:?}, which is for {key_alg}")]
    KeyAlgorithmMismatch {
        /// The selected key.
        kid: String,
        /// The header's algorithm.
        alg: String,
        /// The only algorithm the key is used with.
        key_alg: String,
    },
    /// The signature does not verify with the selected key.
    #[error("ID token signature is invalid")]
    BadSignature,
    /// A required claim is absent.
    #[error("ID token is missing the {0:?} claim")]
    MissingClaim(String),
    /// A registered claim has the wrong type (e.g. a string `exp`).
    #[error("ID token claims are invalid: {0}")]
    InvalidClaims(String),
    /// `aud` does not contain the rule's audience.
    #[error("ID token audience {found:?} does not contain {expected:?}")]
    WrongAudience {
        /// The rule's audience.
        expected: String,
        /// The token's audiences.
        found: Vec<String>,
    },
    /// `exp` (plus leeway) is in the past.
    #[error("ID token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `nbf` (minus leeway) is in the future.
    #[error("ID token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `iat` (minus leeway) is in the future.
    #[error("ID token was issued in the future at {iat} (now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// A claim the rule constrains is absent from the token.
    #[error("claim {claim:?} required by trust rule {rule:?} is missing")]
    RuleClaimMissing {
        /// The rule's name.
        rule: String,
        /// The claim's name.
        claim: String,
    },
    /// A claim the rule constrains is not a string.
    #[error("claim {claim:?} is not a string")]
    ClaimNotString {
        /// The claim's name.
        claim: String,
    },
    /// A claim does not match the rule's pattern.
    #[error("claim {claim:?} = {found:?} does not match {expected:?}")]
    ClaimMismatch {
        /// The claim's name.
        claim: String,
        /// The token's value.
        found: String,
        /// The rule's pattern.
        expected: String,
    },
    /// The JWKS document could not be used.
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    /// A trust rule is unsafe or malformed.
    #[error("trust rule {rule:?} is invalid: {reason}")]
    InvalidRule {
        /// The rule's name.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<ParseError> for OidcError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::TooLarge(len) => OidcError::TooLarge(len),
            ParseError::Malformed(why) => OidcError::Malformed(why),
        }
    }
}

/// The signature schemes accepted for ID tokens, each tied to one key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA key of at least [`MIN_RSA_BITS`].
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl KeyAlg {
    fn from_header(alg: &str) -> Option<KeyAlg> {
        match alg {
            "RS256" => Some(KeyAlg::Rs256),
            "ES256" => Some(KeyAlg::Es256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
        }
    }
}

#[derive(Clone)]
struct JwksKey {
    kid: String,
    alg: KeyAlg,
    key: DecodingKey,
}

/// An issuer's signing keys (a JWKS document), restricted to the keys this crate can use:
/// signature keys with a `kid` that are RSA (≥ 2048 bits, for RS256) or EC P-256 (for ES256).
///
/// Other keys (encryption keys, other curves or types, keys whose `alg` names another
/// algorithm) are ignored, so tokens signed with them fail as [`OidcError::UnknownKeyId`].
#[derive(Clone)]
pub struct Jwks {
    keys: Vec<JwksKey>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    ///
    /// Fails when the document is larger than [`MAX_JWKS_BYTES`], is not a JWKS, has no usable
    /// key, or has two usable keys with the same `kid` (which would make selection ambiguous).
    pub fn from_json(json: &str) -> Result<Jwks, OidcError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(OidcError::InvalidJwks(format!(
                "document is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        let document: JwksDocument = serde_json::from_str(json)
            .map_err(|e| OidcError::InvalidJwks(format!("not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for value in document.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = usable_key(&jwk) else {
                continue;
            };
            if !seen.insert(key.kid.clone()) {
                return Err(OidcError::InvalidJwks(format!(
                    "key id {:?} appears more than once",
                    key.kid
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(OidcError::InvalidJwks(
                "no RSA or P-256 signature key with a key id".into(),
            ));
        }
        Ok(Jwks { keys })
    }

    /// The key ids of the usable keys, in document order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    fn find(&self, kid: &str) -> Option<&JwksKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The key as this crate will use it, or `None` if it cannot verify RS256 or ES256 tokens.
fn usable_key(jwk: &Jwk) -> Option<JwksKey> {
    let kid = jwk.common.key_id.clone()?;
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return None;
            }
            KeyAlg::Rs256
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => KeyAlg::Es256,
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == KeyAlg::Rs256,
        Some(KeyAlgorithm::ES256) => alg == KeyAlg::Es256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { kid, alg, key })
}

/// Which workloads an issuer's ID tokens may authenticate, and what they are granted.
///
/// Loaded from the server's configuration; call [`TrustRule::validate`] at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrustRule {
    /// A name for messages and audit, e.g. `github-release`.
    pub name: String,
    /// The exact `iss`, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// The audience the token must contain, e.g. this registry's URL.
    pub audience: String,
    /// Claim name to pattern. A pattern matches a string claim exactly, or, if it ends with `*`,
    /// by prefix (`refs/heads/release-*`). A `*` anywhere else is an ordinary character.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The scopes granted to matching workloads; interpreted by the server.
    #[serde(default)]
    pub repositories: Vec<String>,
}

impl TrustRule {
    /// Checks that the rule is safe to use: a non-empty issuer and audience, and at least one
    /// claim whose pattern is more than a bare `*` (otherwise any user of a shared issuer such as
    /// GitHub would match).
    pub fn validate(&self) -> Result<(), OidcError> {
        let invalid = |reason: &str| OidcError::InvalidRule {
            rule: self.name.clone(),
            reason: reason.to_owned(),
        };
        if self.issuer.is_empty() {
            return Err(invalid("issuer is empty"));
        }
        if self.audience.is_empty() {
            return Err(invalid("audience is empty"));
        }
        if self.claims.keys().any(String::is_empty) {
            return Err(invalid("a claim name is empty"));
        }
        if !self.claims.values().any(|p| !p.is_empty() && p != "*") {
            return Err(invalid(
                "at least one claim must be constrained by a pattern other than \"*\"",
            ));
        }
        Ok(())
    }

    /// Checks the rule's claim patterns against `claims`; the first failure is returned.
    fn match_claims(&self, claims: &Map<String, Value>) -> Result<(), OidcError> {
        for (name, pattern) in &self.claims {
            let value = claims
                .get(name)
                .ok_or_else(|| OidcError::RuleClaimMissing {
                    rule: self.name.clone(),
                    claim: name.clone(),
                })?;
            let Value::String(value) = value else {
                return Err(OidcError::ClaimNotString {
                    claim: name.clone(),
                });
            };
            if !pattern_matches(pattern, value) {
                return Err(OidcError::ClaimMismatch {
                    claim: name.clone(),
                    found: value.clone(),
                    expected: pattern.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Exact match, or prefix match when `pattern` ends with `*`.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern,
    }
}

/// A verified workload identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The token's `sub`, e.g. `repo:org/app:ref:refs/heads/main`.
    pub subject: String,
    /// The token's `iss`.
    pub issuer: String,
    /// Every claim of the token, for audit and for the server's own decisions.
    pub claims: BTreeMap<String, Value>,
}

/// `aud` may be one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn into_vec(self) -> Vec<String> {
        match self {
            Audience::One(aud) => vec![aud],
            Audience::Many(auds) => auds,
        }
    }
}

/// The registered claims, typed.
#[derive(Deserialize)]
struct RegisteredClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: u64,
    iat: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

/// Verifies a CI ID token against `rule`, with keys from `jwks` and the clock `now_secs`.
///
/// Order: the rule is valid, size and shape, registered claims present and typed, issuer is
/// the rule's, algorithm is RS256 or ES256, `kid` selects a key of that algorithm, signature,
/// audience, time window (`exp`, `nbf`, `iat`, each with `leeway_secs`), then every claim
/// pattern of the rule.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    rule: &TrustRule,
    now_secs: u64,
    leeway_secs: u64,
) -> Result<OidcIdentity, OidcError> {
    rule.validate()?;
    let jwt = jwt::parse(token)?;
    if let Some(missing) = jwt::first_missing(&jwt.claims, REQUIRED_CLAIMS) {
        return Err(OidcError::MissingClaim(missing.to_owned()));
    }
    let registered: RegisteredClaims = serde_json::from_value(Value::Object(jwt.claims.clone()))
        .map_err(|e| OidcError::InvalidClaims(e.to_string()))?;
    if registered.iss != rule.issuer {
        return Err(OidcError::UntrustedIssuer(registered.iss));
    }

    let alg = KeyAlg::from_header(&jwt.header.alg)
        .ok_or_else(|| OidcError::UnsupportedAlgorithm(jwt.header.alg.clone()))?;
    let kid = jwt.header.kid.as_deref().ok_or(OidcError::MissingKeyId)?;
    let key = jwks
        .find(kid)
        .ok_or_else(|| OidcError::UnknownKeyId(kid.to_owned()))?;
    if key.alg != alg {
        return Err(OidcError::KeyAlgorithmMismatch {
            kid: kid.to_owned(),
            alg: alg.name().to_owned(),
            key_alg: key.alg.name().to_owned(),
        });
    }
    jwt::verify_signature(token, &key.key, alg.jsonwebtoken(), REQUIRED_SPEC_CLAIMS).map_err(
        |e| match e.into_kind() {
            ErrorKind::InvalidSignature => OidcError::BadSignature,
            ErrorKind::MissingRequiredClaim(claim) => OidcError::MissingClaim(claim),
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => {
                OidcError::InvalidJwks(format!("key {kid:?} is not a valid public key"))
            }
            _ => OidcError::Malformed("the token could not be decoded for verification"),
        },
    )?;

    let audiences = registered.aud.into_vec();
    if !audiences.contains(&rule.audience) {
        return Err(OidcError::WrongAudience {
            expected: rule.audience.clone(),
            found: audiences,
        });
    }
    let now = now_secs;
    if registered.exp.saturating_add(leeway_secs) < now {
        return Err(OidcError::Expired {
            exp: registered.exp,
            now,
        });
    }
    if let Some(nbf) = registered.nbf
        && nbf.saturating_sub(leeway_secs) > now
    {
        return Err(OidcError::NotYetValid { nbf, now });
    }
    if registered.iat.saturating_sub(leeway_secs) > now {
        return Err(OidcError::IssuedInFuture {
            iat: registered.iat,
            now,
        });
    }
    rule.match_claims(&jwt.claims)?;

    Ok(OidcIdentity {
        subject: registered.sub,
        issuer: registered.iss,
        claims: jwt.claims.into_iter().collect(),
    })
}

/// Picks the trust rule to verify `token` with, from an unverified look at its claims.
///
/// Among the rules whose issuer equals the token's `iss`, returns the first whose audience and
/// claim patterns also match, or else the first of them (so that [`verify_id_token`] reports
/// the precise mismatch). No rule for the issuer is [`OidcError::UntrustedIssuer`]. Nothing
/// here is trusted: the caller must still call [`verify_id_token`] with the returned rule.
pub fn select_rule<'a>(token: &str, rules: &'a [TrustRule]) -> Result<&'a TrustRule, OidcError> {
    let jwt = jwt::parse(token)?;
    let issuer = match jwt.claims.get("iss") {
        Some(Value::String(iss)) => iss.as_str(),
        Some(_) => return Err(OidcError::InvalidClaims("\"iss\" is not a string".into())),
        None => return Err(OidcError::MissingClaim("iss".into())),
    };
    let audiences: Vec<&str> = match jwt.claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut candidates = rules.iter().filter(|rule| rule.issuer == issuer).peekable();
    let first = *candidates
        .peek()
        .ok_or_else(|| OidcError::UntrustedIssuer(issuer.to_owned()))?;
    Ok(candidates
        .find(|rule| {
            audiences.contains(&rule.audience.as_str()) && rule.match_claims(&jwt.claims).is_ok()
        })
        .unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_star_is_a_prefix_glob_and_nothing_else_is() {
        assert!(pattern_matches("refs/heads/main", "refs/heads/main"));
        assert!(!pattern_matches("refs/heads/main", "refs/heads/main2"));
        assert!(!pattern_matches("refs/heads/main", "refs/heads/mai"));
        assert!(pattern_matches(
            "refs/heads/release-*",
            "refs/heads/release-1.2"
        ));
        assert!(pattern_matches(
            "refs/heads/release-*",
            "refs/heads/release-"
        ));
        assert!(!pattern_matches("refs/heads/release-*", "refs/heads/dev"));
        assert!(!pattern_matches("repo:*:main", "repo:org/app:main"));
        assert!(pattern_matches("repo:*:main", "repo:*:main"));
        assert!(pattern_matches("*", "anything"));
    }

    fn rule(claims: &[(&str, &str)]) -> TrustRule {
        TrustRule {
            name: "r".into(),
            issuer: "https://issuer.example".into(),
            audience: "airlock".into(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            repositories: vec![],
        }
    }

    #[test]
    fn rules_must_constrain_a_claim() {
        assert!(rule(&[("repository", "org/app")]).validate().is_ok());
        assert!(rule(&[("repository", "org/*")]).validate().is_ok());
        for unsafe_rule in [
            rule(&[]),
            rule(&[("repository", "*")]),
            rule(&[("sub", "")]),
        ] {
            assert!(matches!(
                unsafe_rule.validate(),
                Err(OidcError::InvalidRule { .. })
            ));
        }
        let mut no_issuer = rule(&[("repository", "org/app")]);
        no_issuer.issuer.clear();
        assert!(no_issuer.validate().is_err());
        let mut no_audience = rule(&[("repository", "org/app")]);
        no_audience.audience.clear();
        assert!(no_audience.validate().is_err());
    }

    #[test]
    fn jwks_without_usable_keys_or_with_duplicate_kids_is_rejected() {
        assert!(Jwks::from_json("not json").is_err());
        assert!(Jwks::from_json(r#"{"keys":[]}"#).is_err());
        // An Ed25519 key and an encryption key: both ignored, so nothing usable is left.
        let ignored = r#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"},
            {"kty":"EC","crv":"P-256","use":"enc","kid":"b",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        assert!(matches!(
            Jwks::from_json(ignored),
            Err(OidcError::InvalidJwks(_))
        ));
        let ec = r#"{"kty":"EC","crv":"P-256","kid":"same",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let one = Jwks::from_json(&format!(r#"{{"keys":[{ec}]}}"#)).unwrap();
        assert_eq!(one.key_ids().collect::<Vec<_>>(), ["same"]);
        assert!(matches!(
            Jwks::from_json(&format!(r#"{{"keys":[{ec},{ec}]}}"#)),
            Err(OidcError::InvalidJwks(_))
        ));
    }

    #[test]
    fn short_rsa_keys_and_mislabelled_keys_are_ignored() {
        // 1024-bit modulus: too small.
        let short_n = URL_SAFE_NO_PAD.encode([0xC3u8; 128]);
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"r","n":"{short_n}","e":"AQAB"}}]}}"#);
        assert!(Jwks::from_json(&doc).is_err());
        let long_n = URL_SAFE_NO_PAD.encode([0xC3u8; 256]);
        let ok = format!(r#"{{"keys":[{{"kty":"RSA","kid":"r","n":"{long_n}","e":"AQAB"}}]}}"#);
        assert!(Jwks::from_json(&ok).is_ok());
        let mislabelled = format!(
            r#"{{"keys":[{{"kty":"RSA","alg":"ES256","kid":"r","n":"{long_n}","e":"AQAB"}}]}}"#
        );
        assert!(Jwks::from_json(&mislabelled).is_err());
    }
}
