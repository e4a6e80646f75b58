//! Access and refresh tokens: the happy path and every rejection path of `TokenVerifier`.

use airlock_identity::{
    AccessClaims, AccessEntry, IdentityError, MAX_TOKEN_BYTES, RetiredTokenKey, TokenError,
    TokenKey, TokenKind, TokenPublicKey, TokenVerifier, token_response,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW: u64 = 1_750_000_000;
const LEEWAY: u64 = 30;
const ISSUER: &str = "airlock-token-service";
const AUDIENCE: &str = "airlock-registry";

fn claims(kind: TokenKind) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "alice".into(),
        exp: NOW + 300,
        nbf: NOW,
        iat: NOW,
        jti: "0f6c2f4e-1d7a-4d4e-9a55-3a8f0b1c2d3e".into(),
        access: vec![AccessEntry {
            resource_type: "repository".into(),
            name: "team/app".into(),
            actions: vec!["pull".into()],
        }],
        epoch: 3,
        auth: "password".into(),
        kind,
        cred: Some("password:1".into()),
        fam: None,
    }
}

fn verifier(key: &TokenKey) -> TokenVerifier {
    TokenVerifier {
        key: key.public_key().clone(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_secs: LEEWAY,
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Signs an arbitrary header and payload with `key`'s Ed25519 key, bypassing `TokenKey::issue`.
fn sign_raw(key: &TokenKey, header: &Value, payload: &Value) -> String {
    let signing = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    let message = format!("{}.{}", b64_json(header), b64_json(payload));
    let signature = signing.sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn eddsa_header(key: &TokenKey) -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()})
}

fn claims_json(kind: TokenKind) -> Value {
    serde_json::to_value(claims(kind)).unwrap()
}

#[test]
fn issued_token_round_trips_with_all_claims() {
    let key = TokenKey::generate();
    let token = key.issue(&claims(TokenKind::Access)).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    let verified = verifier(&key)
        .verify(&token, NOW, TokenKind::Access)
        .unwrap();
    assert_eq!(verified, claims(TokenKind::Access));
}

#[test]
fn access_entries_serialize_with_docker_field_names() {
    let value = claims_json(TokenKind::Refresh);
    assert_eq!(
        value["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    );
    assert_eq!(value["kind"], "refresh");
}

#[test]
fn kid_is_sixteen_hex_characters_of_the_public_key_digest() {
    let key = TokenKey::generate();
    assert_eq!(key.kid().len(), 16);
    assert!(key.kid().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(key.kid(), TokenKey::generate().kid());
    let jwk = key.public_key().jwk();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(
        jwk["x"],
        URL_SAFE_NO_PAD.encode(key.public_key().as_bytes())
    );
}

#[test]
fn keys_survive_a_pem_round_trip() {
    let key = TokenKey::generate();
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let reloaded = TokenKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(reloaded.kid(), key.kid());
    let public =
        TokenPublicKey::from_public_pem(&key.public_key().to_public_pem().unwrap()).unwrap();
    assert_eq!(public.kid(), key.kid());
    let token = reloaded.issue(&claims(TokenKind::Access)).unwrap();
    let verifier = TokenVerifier {
        key: public,
        ..verifier(&key)
    };
    assert!(verifier.verify(&token, NOW, TokenKind::Access).is_ok());
}

#[test]
fn invalid_pem_is_an_error_and_debug_hides_the_private_key() {
    assert!(matches!(
        TokenKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(IdentityError::InvalidSigningKey(_))
    ));
    assert!(matches!(
        TokenPublicKey::from_public_pem("nope"),
        Err(IdentityError::InvalidPublicKey(_))
    ));
    let key = TokenKey::generate();
    let pem = key.to_pkcs8_pem().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let printed = format!("{key:?}");
    assert!(!printed.contains(&body), "{printed}");
    assert!(printed.contains(key.kid()), "{printed}");
}

#[test]
fn expired_token_is_rejected_but_leeway_is_honoured() {
    let key = TokenKey::generate();
    let token = key.issue(&claims(TokenKind::Access)).unwrap();
    let exp = NOW + 300;
    let v = verifier(&key);
    assert!(v.verify(&token, exp + LEEWAY, TokenKind::Access).is_ok());
    assert_eq!(
        v.verify(&token, exp + LEEWAY + 1, TokenKind::Access),
        Err(TokenError::Expired {
            exp,
            now: exp + LEEWAY + 1
        })
    );
}

#[test]
fn token_not_yet_valid_is_rejected_but_leeway_is_honoured() {
    let key = TokenKey::generate();
    let mut c = claims(TokenKind::Access);
    c.nbf = NOW + 100;
    let token = key.issue(&c).unwrap();
    let v = verifier(&key);
    assert!(
        v.verify(&token, NOW + 100 - LEEWAY, TokenKind::Access)
            .is_ok()
    );
    assert_eq!(
        v.verify(&token, NOW + 100 - LEEWAY - 1, TokenKind::Access),
        Err(TokenError::NotYetValid {
            nbf: NOW + 100,
            now: NOW + 100 - LEEWAY - 1
        })
    );
}

#[test]
fn token_issued_in_the_future_is_rejected() {
    let key = TokenKey::generate();
    let mut c = claims(TokenKind::Access);
    c.iat = NOW + 1000;
    let token = key.issue(&c).unwrap();
    assert!(matches!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::IssuedInFuture { .. })
    ));
}

#[test]
fn token_from_another_key_is_rejected() {
    let key = TokenKey::generate();
    let other = TokenKey::generate();
    let token = other.issue(&claims(TokenKind::Access)).unwrap();
    assert_eq!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::UnknownKeyId(other.kid().to_owned()))
    );
    // Another key that claims our kid: the signature check catches it.
    let forged = sign_raw(&other, &eddsa_header(&key), &claims_json(TokenKind::Access));
    assert_eq!(
        verifier(&key).verify(&forged, NOW, TokenKind::Access),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn token_without_kid_is_rejected() {
    let key = TokenKey::generate();
    let token = sign_raw(
        &key,
        &json!({"alg": "EdDSA", "typ": "JWT"}),
        &claims_json(TokenKind::Access),
    );
    assert_eq!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::MissingKeyId)
    );
}

#[test]
fn alg_none_is_rejected() {
    let key = TokenKey::generate();
    for alg in ["none", "None", "NONE", ""] {
        let token = format!(
            "{}.{}.",
            b64_json(&json!({"alg": alg, "typ": "JWT", "kid": key.kid()})),
            b64_json(&claims_json(TokenKind::Access))
        );
        assert_eq!(
            verifier(&key).verify(&token, NOW, TokenKind::Access),
            Err(TokenError::AlgorithmNotAllowed(alg.to_owned())),
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let key = TokenKey::generate();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    for secret in [
        key.public_key().as_bytes().to_vec(),
        key.public_key().to_public_pem().unwrap().into_bytes(),
    ] {
        let token = jsonwebtoken::encode(
            &header,
            &claims(TokenKind::Access),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            verifier(&key).verify(&token, NOW, TokenKind::Access),
            Err(TokenError::AlgorithmNotAllowed("HS256".into()))
        );
    }
}

#[test]
fn other_algorithms_on_an_eddsa_signature_are_rejected() {
    let key = TokenKey::generate();
    for alg in ["RS256", "ES256", "PS256", "HS512", "EdDSA "] {
        let token = sign_raw(
            &key,
            &json!({"alg": alg, "typ": "JWT", "kid": key.kid()}),
            &claims_json(TokenKind::Access),
        );
        assert_eq!(
            verifier(&key).verify(&token, NOW, TokenKind::Access),
            Err(TokenError::AlgorithmNotAllowed(alg.into())),
            "{alg}"
        );
    }
}

#[test]
fn tampered_payload_is_rejected() {
    let key = TokenKey::generate();
    let token = key.issue(&claims(TokenKind::Access)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    let tampered = format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2]);
    assert_eq!(
        verifier(&key).verify(&tampered, NOW, TokenKind::Access),
        Err(TokenError::BadSignature)
    );
    let truncated_signature = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
    assert_eq!(
        verifier(&key).verify(&truncated_signature, NOW, TokenKind::Access),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn wrong_audience_is_rejected() {
    let key = TokenKey::generate();
    let mut c = claims(TokenKind::Access);
    c.aud = "another-registry".into();
    let token = key.issue(&c).unwrap();
    assert_eq!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::WrongAudience("another-registry".into()))
    );
}

#[test]
fn wrong_issuer_is_rejected() {
    let key = TokenKey::generate();
    let mut c = claims(TokenKind::Access);
    c.iss = "someone-else".into();
    let token = key.issue(&c).unwrap();
    assert_eq!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::WrongIssuer("someone-else".into()))
    );
}

#[test]
fn refresh_token_is_not_an_access_token_and_vice_versa() {
    let key = TokenKey::generate();
    let v = verifier(&key);
    let refresh = key.issue(&claims(TokenKind::Refresh)).unwrap();
    let access = key.issue(&claims(TokenKind::Access)).unwrap();
    assert_eq!(
        v.verify(&refresh, NOW, TokenKind::Access),
        Err(TokenError::WrongKind {
            expected: TokenKind::Access,
            found: TokenKind::Refresh
        })
    );
    assert_eq!(
        v.verify(&access, NOW, TokenKind::Refresh),
        Err(TokenError::WrongKind {
            expected: TokenKind::Refresh,
            found: TokenKind::Access
        })
    );
    assert!(v.verify(&refresh, NOW, TokenKind::Refresh).is_ok());
}

#[test]
fn missing_or_mistyped_claims_are_rejected_even_when_signed() {
    let key = TokenKey::generate();
    for claim in ["exp", "nbf", "iss", "aud", "sub", "epoch", "kind", "access"] {
        let mut payload = claims_json(TokenKind::Access);
        payload.as_object_mut().unwrap().remove(claim);
        let token = sign_raw(&key, &eddsa_header(&key), &payload);
        assert_eq!(
            verifier(&key).verify(&token, NOW, TokenKind::Access),
            Err(TokenError::MissingClaim(claim.into())),
            "{claim}"
        );
    }
    for (claim, value) in [
        ("exp", json!("tomorrow")),
        ("exp", json!(-1)),
        ("kind", json!("admin")),
        ("aud", json!(["a", "b"])),
    ] {
        let mut payload = claims_json(TokenKind::Access);
        payload[claim] = value;
        let token = sign_raw(&key, &eddsa_header(&key), &payload);
        assert!(
            matches!(
                verifier(&key).verify(&token, NOW, TokenKind::Access),
                Err(TokenError::InvalidClaims(_))
            ),
            "{claim}"
        );
    }
}

#[test]
fn garbage_is_rejected_as_malformed() {
    let key = TokenKey::generate();
    let v = verifier(&key);
    let valid = key.issue(&claims(TokenKind::Access)).unwrap();
    for garbage in [
        String::new(),
        "garbage".into(),
        "a.b.c".into(),
        "..".into(),
        format!("{valid}.extra"),
        valid.replacen('.', "", 1),
        format!("Bearer {valid}"),
        format!("{} {}", &valid[..10], &valid[10..]),
        "\u{0}\u{1}.\u{2}.\u{3}".into(),
    ] {
        assert!(
            matches!(
                v.verify(&garbage, NOW, TokenKind::Access),
                Err(TokenError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
}

#[test]
fn oversized_token_is_rejected() {
    let key = TokenKey::generate();
    let mut c = claims(TokenKind::Access);
    c.jti = "x".repeat(MAX_TOKEN_BYTES);
    let token = key.issue(&c).unwrap();
    assert_eq!(
        verifier(&key).verify(&token, NOW, TokenKind::Access),
        Err(TokenError::TooLarge(token.len()))
    );
    let junk = "a".repeat(1 << 20);
    assert_eq!(
        verifier(&key).verify(&junk, NOW, TokenKind::Access),
        Err(TokenError::TooLarge(1 << 20))
    );
}

#[test]
fn token_response_has_docker_fields() {
    assert_eq!(
        token_response("t", 300, "2025-06-15T12:00:00Z", None),
        json!({"token": "t", "access_token": "t", "expires_in": 300, "issued_at": "2025-06-15T12:00:00Z"})
    );
    assert_eq!(
        token_response("t", 300, "2025-06-15T12:00:00Z", Some("r"))["refresh_token"],
        "r"
    );
}

#[test]
fn a_retired_key_verifies_its_tokens_until_its_overlap_ends() {
    let old = TokenKey::generate();
    let new = TokenKey::generate();
    let retired = [RetiredTokenKey {
        key: old.public_key().clone(),
        accepted_until_secs: NOW + 10,
    }];
    let old_token = old.issue(&claims(TokenKind::Refresh)).unwrap();
    let new_token = new.issue(&claims(TokenKind::Access)).unwrap();
    let current = verifier(&new);
    // The current key's tokens verify as before; the old key's within the overlap.
    assert!(
        current
            .verify_with_retired(&new_token, NOW, TokenKind::Access, &retired)
            .is_ok()
    );
    assert!(
        current
            .verify_with_retired(&old_token, NOW + 10, TokenKind::Refresh, &retired)
            .is_ok()
    );
    // After the overlap: refused, naming the retired key.
    assert_eq!(
        current.verify_with_retired(&old_token, NOW + 11, TokenKind::Refresh, &retired),
        Err(TokenError::RetiredKey {
            kid: old.kid().to_owned(),
            accepted_until: NOW + 10
        })
    );
    // Every other check still applies to the old key's tokens (here: the kind).
    assert!(matches!(
        current.verify_with_retired(&old_token, NOW, TokenKind::Access, &retired),
        Err(TokenError::WrongKind { .. })
    ));
    // A token claiming the old key's kid but signed by another key is a bad signature.
    let forged = sign_raw(&new, &eddsa_header(&old), &claims_json(TokenKind::Access));
    assert_eq!(
        current.verify_with_retired(&forged, NOW, TokenKind::Access, &retired),
        Err(TokenError::BadSignature)
    );
    // Without the retired list the old key is unknown.
    assert_eq!(
        current.verify(&old_token, NOW, TokenKind::Refresh),
        Err(TokenError::UnknownKeyId(old.kid().to_owned()))
    );
}
