//! Evidence comes straight from the network: signature and attestation layers, referrers and
//! Sigstore bundles pushed by clients, key files uploaded by key admins. None of it may panic,
//! and no input may be accepted as signed by a key whose private half the fuzzer never sees.
#![no_main]

use std::sync::OnceLock;

use airlock_trust::cosign::{SigstoreBundle, SimpleSigningPayload};
use airlock_trust::dsse::Envelope;
use airlock_trust::intoto::Statement;
use airlock_trust::keys::{self, PublicKey, SigningKey};
use airlock_trust::verify::{self, EvidenceSubject, Keyring, Purpose, ScopePattern, TrustedKey};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

/// Every predicate type `derive_facts` reads by type (SARIF is matched by substring).
const PREDICATE_TYPES: [&str; 7] = [
    "https://slsa.dev/provenance/v1",
    "https://slsa.dev/provenance/v0.2",
    "https://cyclonedx.org/bom",
    "https://spdx.dev/Document",
    "https://cosign.sigstore.dev/attestation/vuln/v1",
    "https://in-toto.io/attestation/test-result/v0.1",
    "https://docs.oasis-open.org/sarif/sarif/2.1.0",
];

/// The most scrypt work (N * r * p) a fuzzed key file may ask for. The library allows up to
/// N = 2^17, r = 8, p = 4, which takes about 8 s per run in this build (cosign's own
/// N = 2^16, r = 8, p = 1 about 1.5 s); 2^11 (e.g. N = 2^8, r = 8) takes milliseconds and still
/// runs the whole decryption path.
const MAX_SCRYPT_COST: u64 = 1 << 11;

/// A fixed evidence subject: the artifact the real cosign signature fixture names.
const SUBJECT_REPOSITORY: &str = "busybox";
const SUBJECT_DIGEST: &str =
    "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
const SEEN_AT_MS: i64 = 1_700_000_000_000;

/// One P-256 key allowed to sign and to attest SLSA provenance everywhere, generated once.
fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let purposes = ["sign", "attest:https://slsa.dev/provenance/v1"]
            .iter()
            .map(|purpose| purpose.parse::<Purpose>().expect("a valid purpose"))
            .collect();
        let scope = vec!["*".parse::<ScopePattern>().expect("a valid scope")];
        let public_key = SigningKey::generate_p256().public_key();
        Keyring {
            version: 1,
            keys: vec![TrustedKey::new("fuzz", public_key, purposes, scope)],
        }
    })
}

fn subject() -> &'static EvidenceSubject {
    static SUBJECT: OnceLock<EvidenceSubject> = OnceLock::new();
    SUBJECT.get_or_init(|| EvidenceSubject {
        repository_path: SUBJECT_REPOSITORY.to_owned(),
        digest: SUBJECT_DIGEST.parse().expect("a valid digest"),
    })
}

/// Whether decrypting `pem` costs at most [`MAX_SCRYPT_COST`] of scrypt work. Reads the PEM
/// block exactly as `keys::read_pem` does; whenever the library would refuse the file before
/// running scrypt (no encrypted-key block, not base64, not JSON, parameters not integers), the
/// call is cheap and allowed.
fn scrypt_cost_within_budget(pem: &str) -> bool {
    let mut lines = pem.lines().map(str::trim);
    let Some(label) = lines.by_ref().find_map(|line| {
        line.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
    }) else {
        return true;
    };
    if label != keys::SIGSTORE_PRIVATE_KEY_LABEL && label != keys::COSIGN_PRIVATE_KEY_LABEL {
        return true;
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return true;
        }
        body.push_str(line);
    }
    if !ended {
        return true;
    }
    let Ok(json) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) else {
        return true;
    };
    let Ok(file) = serde_json::from_slice::<serde_json::Value>(&json) else {
        return true;
    };
    let param = |name: &str| {
        file.pointer(&format!("/kdf/params/{name}"))
            .and_then(serde_json::Value::as_u64)
    };
    match (param("N"), param("r"), param("p")) {
        (Some(n), Some(r), Some(p)) => n.saturating_mul(r).saturating_mul(p) <= MAX_SCRYPT_COST,
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    // Parsers: whatever parses must survive re-encoding unchanged.
    if let Ok(envelope) = Envelope::parse(data) {
        assert_eq!(Envelope::parse(&envelope.to_json()).ok(), Some(envelope));
    }
    if let Ok(statement) = Statement::parse(data) {
        let reparsed =
            Statement::parse(&statement.to_json()).expect("a re-encoded statement parses");
        // The predicate is left out: JSON floats need not survive a parse-print-parse cycle.
        assert_eq!(reparsed.version, statement.version);
        assert_eq!(reparsed.subjects, statement.subjects);
        assert_eq!(reparsed.predicate_type, statement.predicate_type);
        for predicate_type in PREDICATE_TYPES
            .iter()
            .copied()
            .chain([statement.predicate_type.as_str()])
        {
            let _ = airlock_trust::facts::derive_facts(predicate_type, &statement.predicate);
        }
    }
    if let Ok(payload) = SimpleSigningPayload::parse(data) {
        let bytes = payload.to_bytes();
        if bytes.len() <= airlock_trust::cosign::MAX_SIMPLE_SIGNING_BYTES {
            let reparsed =
                SimpleSigningPayload::parse(&bytes).expect("a re-encoded payload parses");
            assert_eq!(reparsed.docker_reference, payload.docker_reference);
            assert_eq!(
                reparsed.docker_manifest_digest,
                payload.docker_manifest_digest
            );
        }
    }
    let _ = SigstoreBundle::parse(data);

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = PublicKey::from_pem(text) {
            assert_eq!(PublicKey::from_pem(&key.to_pem()).ok(), Some(key));
        }
        if scrypt_cost_within_budget(text) {
            let _ = keys::decrypt_cosign_private_key(text, b"");
        }
    }

    if let Ok(predicate) = serde_json::from_slice::<serde_json::Value>(data) {
        for predicate_type in PREDICATE_TYPES {
            let _ = airlock_trust::facts::derive_facts(predicate_type, &predicate);
        }
    }

    // Verifiers: the first byte picks one, the rest is its input. The keyring's private key is
    // never written anywhere, so every verdict must be a rejection.
    if let Some((selector, rest)) = data.split_first() {
        let verdict = match selector % 3 {
            0 => {
                // Payload and signature annotation, separated by the first NUL byte.
                let (payload, signature) = match rest.iter().position(|&b| b == 0) {
                    Some(at) => (&rest[..at], &rest[at + 1..]),
                    None => (rest, &[][..]),
                };
                let signature = String::from_utf8_lossy(signature);
                verify::verify_cosign_signature(
                    keyring(),
                    subject(),
                    payload,
                    &signature,
                    SEEN_AT_MS,
                )
            }
            1 => verify::verify_attestation(keyring(), subject(), rest, SEEN_AT_MS),
            _ => verify::verify_sigstore_bundle(keyring(), subject(), rest, SEEN_AT_MS),
        };
        assert!(
            verdict.is_err(),
            "accepted evidence no key signed: {verdict:?}"
        );
    }
});
