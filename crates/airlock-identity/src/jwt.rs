//! Compact JWS parsing shared by access tokens and OIDC ID tokens.
//!
//! This is the "parse" half of parse-then-verify: it bounds the input, checks the three-part
//! shape, and decodes the header and the claims into JSON without trusting either. Signature
//! verification happens afterwards, in [`verify_signature`], through jsonwebtoken.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// Largest token, in bytes, that any verifier in this crate will look at.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token could not even be parsed.
#[derive(Debug)]
pub(crate) enum ParseError {
    TooLarge(usize),
    Malformed(&'static str),
}

/// The JOSE header fields this crate acts on.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// Critical extensions: none are understood, so any presence rejects the token (RFC 7515 §4.1.11).
    #[serde(default)]
    pub crit: Option<IgnoredAny>,
}

/// A token split and decoded, nothing verified.
#[derive(Debug)]
pub(crate) struct UnverifiedJwt {
    pub header: Header,
    pub claims: Map<String, Value>,
}

/// Parses a compact JWS (`header.payload.signature`) without verifying it.
pub(crate) fn parse(token: &str) -> Result<UnverifiedJwt, ParseError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ParseError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed(
            "a JWT has exactly three dot-separated parts",
        ));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| ParseError::Malformed("the header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| ParseError::Malformed("the header is not a JSON object with a string alg"))?;
    if header.crit.is_some() {
        return Err(ParseError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ParseError::Malformed("the payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| ParseError::Malformed("the payload is not a JSON object"))?;
    Ok(UnverifiedJwt { header, claims })
}

/// Verifies `token`'s signature with `key` for exactly `alg`, and that the registered claims in
/// `required` (jsonwebtoken understands `exp`, `nbf`, `iss`, `aud`, `sub`) are present.
///
/// Time, issuer and audience are deliberately not checked here: callers check them on typed
/// claims against their own clock, so results do not depend on when the test suite runs.
pub(crate) fn verify_signature(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    required: &[&str],
) -> Result<(), jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(required);
    jsonwebtoken::decode::<IgnoredAny>(token, key, &validation).map(|_| ())
}

/// The names in `required` that `claims` lacks, first one only.
pub(crate) fn first_missing<'a>(
    claims: &Map<String, Value>,
    required: &[&'a str],
) -> Option<&'a str> {
    required
        .iter()
        .copied()
        .find(|name| !claims.contains_key(*name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn well_formed_token_parses() {
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"EdDSA","kid":"k"}"#),
            b64(r#"{"a":1}"#)
        );
        let jwt = parse(&token).unwrap();
        assert_eq!(jwt.header.alg, "EdDSA");
        assert_eq!(jwt.header.kid.as_deref(), Some("k"));
        assert_eq!(jwt.claims["a"], 1);
    }

    #[test]
    fn malformed_shapes_are_rejected() {
        let h = b64(r#"{"alg":"EdDSA"}"#);
        let p = b64("{}");
        for token in [
            String::new(),
            "a.b".to_owned(),
            format!("{h}.{p}"),
            format!("{h}.{p}.s.x"),
            format!("{h}=.{p}.s"),
            format!("{}.{p}.s", b64("[]")),
            format!("{}.{p}.s", b64(r#"{"alg":1}"#)),
            format!("{}.{p}.s", b64(r#"{"alg":"EdDSA","crit":["b64"]}"#)),
            format!("{h}.{}.s", b64("[1]")),
            format!("{h}.{}.s", b64("not json")),
        ] {
            assert!(
                matches!(parse(&token), Err(ParseError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn oversized_token_is_rejected_before_decoding() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(parse(&token), Err(ParseError::TooLarge(_))));
    }
}
