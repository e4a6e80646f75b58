//! Workload identity: CI ID tokens checked against a JWKS and a trust rule.
//!
//! The tests play the issuer: an ES256 key made with `p256`, and an RS256 key from a fixed
//! test-only PEM (RSA key generation is too slow in debug builds).

use std::collections::BTreeMap;

use airlock_identity::{Jwks, MAX_TOKEN_BYTES, OidcError, TrustRule, select_rule, verify_id_token};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use rand_core::OsRng;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

const NOW: u64 = 1_750_000_000;
const LEEWAY: u64 = 60;
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const AUDIENCE: &str = "https://airlock.example";

/// A throwaway 2048-bit RSA key, for tests only.
const TEST_RSA_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEogIBAAKCAQEA997LL+zkfDgHk26zEO6/v/Dqd9XhhJHdmTONbI9JnTSvSvaI\n\
uaSeej5IOqyz8hj9Q0CNTRrrwCScMyNzItcKCs/FIjzr37XlV71r0/Wa5H2oebGA\n\
D9G2AybIRynQLS97LdNSMty+rn+mr3/6uYX/5TJAXoM6wdiTA4if7IprsdXHbwdr\n\
n+CBk73p6PhRHwxIIGcFk3hE9yruYFD7GSnl/0tIco8QLhchBA87TNPBjxk+RXZ1\n\
bCaOzIabLGZZzDc7urg6JOQS67/7kg3BexjfeE5ZxaCaAd+59jMgJX+owCv3ihZ1\n\
gr/Wz3Jqe2nd48jMbJQVvZBibb3IEEcqstrcuQIDAQABAoIBAGCxuxYBFckXmmz7\n\
PEOYv5jDBNSmzQkIVigTolH9O7xl9xQJRKEXBPOvJEIvaStCcFox7m1r2RflsEGK\n\
zLmEpdg94StQFLv6m3M048GWCEymcHi4s7p4Fsb39B0+xIU8BpOD4ocQ8hnklkPU\n\
axzAl2jzx4SXMO656+/u9mQyQ3zlohMb187lp5y3FIRZKrT9uBpDIw+Rywq+hiWN\n\
gE/KOWzM814uhi3wbPPaf201Zb+0gmPa7ZXbi5an6k/tjT3JVHAsckDcr9tok6Mf\n\
dd9RUEjhpReW2wCkuyBOEyYiggnbRkP8ypu1VWYhzGAbVUEO8uka6gB+cUWpx2ri\n\
cmTRW7kCgYEA/R4+UAZruDN4l8OrmZ9tWTIABpvQdfyfXuh03s/NCjJZ/JmANheT\n\
YPsCh36ulcP6W6k9HzvjbJp/y67pRxBH7mTUJeNxcF6Ta/pwmc/4r/7WLzmvIOgP\n\
fPuKp5NiVCqBzcuXS/CA2C16iGyI4XbXZmZBkJCcxd9nNV+ldZrsjisCgYEA+rFB\n\
KHgY5kVO3HmihSuLfx95oKKS70a17YMoiImVKUXwg3huRmg8tPU1cZSKWxrxryiE\n\
Ycarsq9wKSadUwawN0+sgEQaFxXUyzwFcYnuBdZVXDhkj1r7jtuGVMLXvHqdmuv8\n\
kB9ao+rkpwVJ/exzRXX+DpWBitn31hzllbL6sqsCgYAUlO36Mdt2efD3XjjI4BbT\n\
JuarouXbgjQvUnWWXI1Oo/N/P7gWLeqU+zQkcl+d2/ayl1tZ+9OtVA7KMCnV1nQS\n\
5W3+urTRr08Le6zGRQvyu6UM6ALeiSAhSI7ou2pGb8JoSoK98Qt5CJGrIDAtLS2s\n\
rOnt6GRnDphk1actnfBYSwKBgDjnWz7wY9aBDPGGupk31SY54sXPoUKm7kzHZL/5\n\
Wt5PfdSZ1Y4twvngXw01BmK/rvRvYf0/t2GL6Q2uMi/SaNVlRGapDrMGxZKMQUAQ\n\
avLwP9f7BPh1UnyO3+MFhyrFOlkcD+w28cAbZWN0E+OLdG7j5ZMx5IG8EEGNtZ9R\n\
TQ6ZAoGAUZWqZxA1ZMoM3bJbVey/zdsMIE2Rfq+swON9CzDe82ZTlzPWQL5YaSg0\n\
HaYwde+xOINNvo3LX9Dh9+POxXtHGUwQdGxX0zzcNYRzt8fXlaJgSeQ16lEJAjtT\n\
xoKCV7By/pwrCSxN346xSQVztYPMgE3JllAV5a+Ubj1zpuRcFjU=\n\
-----END RSA PRIVATE KEY-----\n\
";

/// A test issuer key: signs tokens and publishes its JWK.
struct IssuerKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl IssuerKey {
    fn es256(kid: &str) -> IssuerKey {
        let signing = p256::ecdsa::SigningKey::random(&mut OsRng);
        let der = signing.to_pkcs8_der().unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        IssuerKey {
            alg: Algorithm::ES256,
            kid: kid.into(),
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
        }
    }

    fn rs256(kid: &str) -> IssuerKey {
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(TEST_RSA_PEM).unwrap();
        let der = private.to_pkcs1_der().unwrap();
        IssuerKey {
            alg: Algorithm::RS256,
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            // GitHub's JWKS entries look like this (plus x5c/x5t, which are ignored).
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
                "x5t": "ignored",
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(claims, |_| {})
    }

    fn sign_with_header(&self, claims: &Value, edit: impl FnOnce(&mut Header)) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        edit(&mut header);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn jwks(keys: &[&IssuerKey]) -> Jwks {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    Jwks::from_json(&doc.to_string()).unwrap()
}

/// Claims as GitHub Actions issues them for a push to main of `org/app`.
fn github_claims() -> Value {
    json!({
        "iss": GITHUB,
        "aud": AUDIENCE,
        "sub": "repo:org/app:ref:refs/heads/main",
        "repository": "org/app",
        "repository_owner": "org",
        "ref": "refs/heads/main",
        "workflow": "release",
        "run_id": "123456789",
        "jti": "6d9c3c4f-1f0b-4f0b-9b8e-2f1c7d4a5b6c",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 290,
    })
}

fn main_branch_rule() -> TrustRule {
    TrustRule {
        name: "org-app-main".into(),
        issuer: GITHUB.into(),
        audience: AUDIENCE.into(),
        claims: BTreeMap::from([
            ("repository".into(), "org/app".into()),
            ("ref".into(), "refs/heads/main".into()),
        ]),
        repositories: vec!["org/app".into()],
    }
}

fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

#[test]
fn es256_token_from_the_trusted_workflow_is_accepted() {
    let key = IssuerKey::es256("gh-1");
    let token = key.sign(&github_claims());
    let identity =
        verify_id_token(&token, &jwks(&[&key]), &main_branch_rule(), NOW, LEEWAY).unwrap();
    assert_eq!(identity.subject, "repo:org/app:ref:refs/heads/main");
    assert_eq!(identity.issuer, GITHUB);
    assert_eq!(identity.claims["workflow"], "release");
    assert_eq!(identity.claims["ref"], "refs/heads/main");
}

#[test]
fn rs256_token_is_accepted_and_keys_are_selected_by_kid() {
    let ec = IssuerKey::es256("ec");
    let rsa = IssuerKey::rs256("rsa");
    let set = jwks(&[&ec, &rsa]);
    assert_eq!(set.key_ids().collect::<Vec<_>>(), ["ec", "rsa"]);
    for key in [&ec, &rsa] {
        let token = key.sign(&github_claims());
        assert!(verify_id_token(&token, &set, &main_branch_rule(), NOW, LEEWAY).is_ok());
    }
}

#[test]
fn untrusted_issuer_is_rejected() {
    let key = IssuerKey::es256("gh-1");
    let token = key.sign(&with(
        &github_claims(),
        "iss",
        json!("https://evil.example"),
    ));
    assert_eq!(
        verify_id_token(&token, &jwks(&[&key]), &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::UntrustedIssuer("https://evil.example".into()))
    );
    assert_eq!(
        select_rule(&token, &[main_branch_rule()]),
        Err(OidcError::UntrustedIssuer("https://evil.example".into()))
    );
}

#[test]
fn unknown_or_missing_key_id_is_rejected() {
    let trusted = IssuerKey::es256("gh-1");
    let stranger = IssuerKey::es256("gh-2");
    let token = stranger.sign(&github_claims());
    assert_eq!(
        verify_id_token(&token, &jwks(&[&trusted]), &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::UnknownKeyId("gh-2".into()))
    );
    let no_kid = trusted.sign_with_header(&github_claims(), |h| h.kid = None);
    assert_eq!(
        verify_id_token(
            &no_kid,
            &jwks(&[&trusted]),
            &main_branch_rule(),
            NOW,
            LEEWAY
        ),
        Err(OidcError::MissingKeyId)
    );
}

#[test]
fn token_signed_by_another_key_with_the_same_kid_is_rejected() {
    let trusted = IssuerKey::es256("gh-1");
    let impostor = IssuerKey::es256("gh-1");
    let token = impostor.sign(&github_claims());
    assert_eq!(
        verify_id_token(&token, &jwks(&[&trusted]), &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::BadSignature)
    );
}

#[test]
fn tampered_claims_are_rejected() {
    let key = IssuerKey::es256("gh-1");
    let token = key.sign(&with(&github_claims(), "ref", json!("refs/heads/dev")));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(github_claims().to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        verify_id_token(&forged, &jwks(&[&key]), &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::BadSignature)
    );
}

#[test]
fn algorithm_must_be_rs256_or_es256_and_fit_the_key() {
    let ec = IssuerKey::es256("ec");
    let rsa = IssuerKey::rs256("rsa");
    let set = jwks(&[&ec, &rsa]);
    // An ES256 signature presented under the RSA key's kid.
    let token = ec.sign_with_header(&github_claims(), |h| h.kid = Some("rsa".into()));
    assert_eq!(
        verify_id_token(&token, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::KeyAlgorithmMismatch {
            kid: "rsa".into(),
            alg: "ES256".into(),
            key_alg: "RS256".into()
        })
    );
    // HS256 with the RSA modulus as the secret: algorithm confusion.
    let modulus = URL_SAFE_NO_PAD
        .decode(rsa.jwk["n"].as_str().unwrap())
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".into());
    let hs = jsonwebtoken::encode(
        &header,
        &github_claims(),
        &EncodingKey::from_secret(&modulus),
    )
    .unwrap();
    assert_eq!(
        verify_id_token(&hs, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::UnsupportedAlgorithm("HS256".into()))
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"ec"}"#),
        URL_SAFE_NO_PAD.encode(github_claims().to_string())
    );
    assert_eq!(
        verify_id_token(&none, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::UnsupportedAlgorithm("none".into()))
    );
}

#[test]
fn wrong_audience_is_rejected_and_audience_lists_are_searched() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    let token = key.sign(&with(
        &github_claims(),
        "aud",
        json!("https://other.example"),
    ));
    assert_eq!(
        verify_id_token(&token, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::WrongAudience {
            expected: AUDIENCE.into(),
            found: vec!["https://other.example".into()]
        })
    );
    let list = key.sign(&with(
        &github_claims(),
        "aud",
        json!(["https://other.example", AUDIENCE]),
    ));
    assert!(verify_id_token(&list, &set, &main_branch_rule(), NOW, LEEWAY).is_ok());
}

#[test]
fn expired_token_is_rejected_but_leeway_is_honoured() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    let token = key.sign(&github_claims());
    let exp = NOW + 290;
    assert!(verify_id_token(&token, &set, &main_branch_rule(), exp + LEEWAY, LEEWAY).is_ok());
    assert_eq!(
        verify_id_token(&token, &set, &main_branch_rule(), exp + LEEWAY + 1, LEEWAY),
        Err(OidcError::Expired {
            exp,
            now: exp + LEEWAY + 1
        })
    );
}

#[test]
fn token_from_the_future_is_rejected() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    let early = key.sign(&with(&github_claims(), "nbf", json!(NOW + 600)));
    assert!(matches!(
        verify_id_token(&early, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::NotYetValid { nbf, .. }) if nbf == NOW + 600
    ));
    let claims = with(&github_claims(), "iat", json!(NOW + 600));
    let claims = with(&claims, "nbf", json!(NOW));
    let future = key.sign(&claims);
    assert!(matches!(
        verify_id_token(&future, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::IssuedInFuture { .. })
    ));
}

#[test]
fn non_matching_claim_is_rejected_with_a_message_naming_it() {
    let key = IssuerKey::es256("gh-1");
    let token = key.sign(&with(&github_claims(), "ref", json!("refs/heads/dev")));
    let err =
        verify_id_token(&token, &jwks(&[&key]), &main_branch_rule(), NOW, LEEWAY).unwrap_err();
    assert_eq!(
        err,
        OidcError::ClaimMismatch {
            claim: "ref".into(),
            found: "refs/heads/dev".into(),
            expected: "refs/heads/main".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"claim "ref" = "refs/heads/dev" does not match "refs/heads/main""#
    );
}

#[test]
fn missing_or_non_string_rule_claim_is_rejected() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    let mut claims = github_claims();
    claims.as_object_mut().unwrap().remove("ref");
    assert!(matches!(
        verify_id_token(&key.sign(&claims), &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::RuleClaimMissing { claim, .. }) if claim == "ref"
    ));
    let numeric = key.sign(&with(&github_claims(), "ref", json!(7)));
    assert_eq!(
        verify_id_token(&numeric, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::ClaimNotString {
            claim: "ref".into()
        })
    );
}

#[test]
fn glob_claim_matches_by_prefix() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    let mut rule = main_branch_rule();
    rule.claims
        .insert("ref".into(), "refs/heads/release-*".into());
    let release = key.sign(&with(
        &github_claims(),
        "ref",
        json!("refs/heads/release-1.4"),
    ));
    assert!(verify_id_token(&release, &set, &rule, NOW, LEEWAY).is_ok());
    let main = key.sign(&github_claims());
    assert!(matches!(
        verify_id_token(&main, &set, &rule, NOW, LEEWAY),
        Err(OidcError::ClaimMismatch { .. })
    ));
}

#[test]
fn missing_registered_claims_are_rejected() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    for claim in ["iss", "sub", "aud", "exp", "iat"] {
        let mut claims = github_claims();
        claims.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            verify_id_token(&key.sign(&claims), &set, &main_branch_rule(), NOW, LEEWAY),
            Err(OidcError::MissingClaim(claim.into())),
            "{claim}"
        );
    }
    let string_exp = key.sign(&with(&github_claims(), "exp", json!("soon")));
    assert!(matches!(
        verify_id_token(&string_exp, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::InvalidClaims(_))
    ));
}

#[test]
fn garbage_and_oversized_tokens_are_rejected() {
    let key = IssuerKey::es256("gh-1");
    let set = jwks(&[&key]);
    for garbage in ["", "x", "a.b.c", "a.b.c.d"] {
        assert!(
            matches!(
                verify_id_token(garbage, &set, &main_branch_rule(), NOW, LEEWAY),
                Err(OidcError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
    let huge = key.sign(&with(
        &github_claims(),
        "pad",
        json!("x".repeat(MAX_TOKEN_BYTES)),
    ));
    assert!(matches!(
        verify_id_token(&huge, &set, &main_branch_rule(), NOW, LEEWAY),
        Err(OidcError::TooLarge(_))
    ));
}

#[test]
fn unsafe_rule_is_refused_at_verification() {
    let key = IssuerKey::es256("gh-1");
    let mut rule = main_branch_rule();
    rule.claims.clear();
    assert!(matches!(
        verify_id_token(
            &key.sign(&github_claims()),
            &jwks(&[&key]),
            &rule,
            NOW,
            LEEWAY
        ),
        Err(OidcError::InvalidRule { .. })
    ));
}

#[test]
fn select_rule_prefers_the_rule_whose_claims_match() {
    let key = IssuerKey::es256("gh-1");
    let other_repo = TrustRule {
        name: "org-lib".into(),
        claims: BTreeMap::from([("repository".into(), "org/lib".into())]),
        ..main_branch_rule()
    };
    let gitlab = TrustRule {
        name: "gitlab".into(),
        issuer: "https://gitlab.example".into(),
        ..main_branch_rule()
    };
    let rules = [gitlab, other_repo, main_branch_rule()];
    let token = key.sign(&github_claims());
    assert_eq!(select_rule(&token, &rules).unwrap().name, "org-app-main");
    // No rule matches the claims: the first rule for the issuer is returned, and verification
    // then names the mismatch.
    let stranger = key.sign(&with(&github_claims(), "repository", json!("evil/app")));
    let chosen = select_rule(&stranger, &rules).unwrap();
    assert_eq!(chosen.name, "org-lib");
    assert!(matches!(
        verify_id_token(&stranger, &jwks(&[&key]), chosen, NOW, LEEWAY),
        Err(OidcError::ClaimMismatch { .. })
    ));
    assert!(matches!(
        select_rule("garbage", &rules),
        Err(OidcError::Malformed(_))
    ));
}

#[test]
fn trust_rules_deserialize_from_configuration() {
    let rule: TrustRule = serde_json::from_value(json!({
        "name": "org-app-main",
        "issuer": GITHUB,
        "audience": AUDIENCE,
        "claims": {"repository": "org/app", "ref": "refs/heads/main"},
        "repositories": ["org/app"],
    }))
    .unwrap();
    assert_eq!(rule, main_branch_rule());
    assert!(rule.validate().is_ok());
}
