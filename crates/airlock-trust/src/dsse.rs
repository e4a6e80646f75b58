//! DSSE (Dead Simple Signing Envelope) envelopes and their pre-authentication encoding.
//!
//! An envelope carries a payload, its type and signatures over `PAE(payloadType, payload)`, never
//! over the JSON itself, so re-serialising an envelope cannot change what was signed. This module
//! only parses and writes envelopes; deciding whether a signature counts is
//! [`crate::verify`]'s job.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::Deserialize;

use crate::TrustError;
use crate::keys::SigningKey;

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Largest envelope airlock parses (16 MiB): large SBOMs fit, memory stays bounded.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

/// Most signatures one envelope may carry; bounds the verification work per envelope.
pub const MAX_ENVELOPE_SIGNATURES: usize = 16;

const WHAT: &str = "DSSE envelope";

/// A parsed DSSE envelope: payload bytes decoded, at least one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The payload bytes (decoded from base64).
    pub payload: Vec<u8>,
    /// The signatures, in envelope order.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The signer's key id as the producer wrote it: a hint only, never trusted by itself. Empty
    /// when absent (cosign writes an empty string).
    pub keyid: String,
    /// The signature bytes (decoded from base64).
    pub sig: Vec<u8>,
}

/// The envelope as JSON carries it (also the `dsseEnvelope` of a Sigstore bundle).
#[derive(Deserialize)]
pub(crate) struct WireEnvelope {
    #[serde(rename = "payloadType", alias = "payload_type")]
    payload_type: String,
    payload: String,
    signatures: Vec<WireSignature>,
}

#[derive(Deserialize)]
struct WireSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

impl Envelope {
    /// Parses an envelope from JSON. Payload and signatures may be standard or URL-safe base64,
    /// with or without padding, as the DSSE specification allows. Refuses input above
    /// [`MAX_ENVELOPE_BYTES`], envelopes without signatures or with more than
    /// [`MAX_ENVELOPE_SIGNATURES`], and empty signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        TrustError::check_size(WHAT, bytes.len(), MAX_ENVELOPE_BYTES)?;
        let wire: WireEnvelope = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::malformed(WHAT, e.to_string()))?;
        Self::from_wire(wire)
    }

    pub(crate) fn from_wire(wire: WireEnvelope) -> Result<Self, TrustError> {
        if wire.payload_type.is_empty() {
            return Err(TrustError::malformed(WHAT, "payloadType is empty"));
        }
        if wire.signatures.is_empty() {
            return Err(TrustError::malformed(
                WHAT,
                "the envelope has no signatures",
            ));
        }
        if wire.signatures.len() > MAX_ENVELOPE_SIGNATURES {
            return Err(TrustError::malformed(
                WHAT,
                format!(
                    "the envelope has {} signatures; at most {MAX_ENVELOPE_SIGNATURES} are accepted",
                    wire.signatures.len()
                ),
            ));
        }
        let payload = decode_base64(&wire.payload, WHAT, "payload")?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|signature| {
                let sig = decode_base64(&signature.sig, WHAT, "signatures[].sig")?;
                if sig.is_empty() {
                    return Err(TrustError::malformed(WHAT, "a signature is empty"));
                }
                Ok(EnvelopeSignature {
                    keyid: signature.keyid.unwrap_or_default(),
                    sig,
                })
            })
            .collect::<Result<Vec<_>, TrustError>>()?;
        Ok(Self {
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// The envelope as cosign writes it:
    /// `{"payloadType":..,"payload":<base64>,"signatures":[{"keyid":..,"sig":<base64>}]}`.
    pub fn to_json(&self) -> Vec<u8> {
        let signatures = self
            .signatures
            .iter()
            .map(|signature| {
                format!(
                    "{{\"keyid\":{},\"sig\":\"{}\"}}",
                    json_string(&signature.keyid),
                    STANDARD.encode(&signature.sig)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"payloadType\":{},\"payload\":\"{}\",\"signatures\":[{signatures}]}}",
            json_string(&self.payload_type),
            STANDARD.encode(&self.payload)
        )
        .into_bytes()
    }

    /// The bytes every signature of this envelope covers: [`pae`] of its type and payload.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// The DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII decimal byte counts.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut encoded = Vec::with_capacity(header.len() + payload.len());
    encoded.extend_from_slice(header.as_bytes());
    encoded.extend_from_slice(payload);
    encoded
}

/// Signs `payload` into a one-signature envelope, with an empty key id as cosign writes it.
pub fn sign_envelope(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
    Envelope {
        payload_type: payload_type.to_string(),
        payload: payload.to_vec(),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: key.sign(&pae(payload_type, payload)),
        }],
    }
}

/// A JSON string literal for `value` (escaped; cannot fail).
pub(crate) fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// Decodes standard or URL-safe base64, padded or not (what DSSE and protobuf JSON allow).
pub(crate) fn decode_base64(
    value: &str,
    what: &'static str,
    field: &str,
) -> Result<Vec<u8>, TrustError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    LENIENT_STANDARD
        .decode(value)
        .or_else(|_| LENIENT_URL_SAFE.decode(value))
        .map_err(|_| TrustError::malformed(what, format!("`{field}` is not base64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn pae_counts_bytes_not_characters() {
        assert_eq!(pae("é", b"\xff"), b"DSSEv1 2 \xc3\xa9 1 \xff".to_vec());
    }

    #[test]
    fn signed_envelope_round_trips_through_json() {
        let key = SigningKey::generate_p256();
        let envelope = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}");
        let json = envelope.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with(
            "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"eyJhIjoxfQ==\",\"signatures\":[{\"keyid\":\"\",\"sig\":\""
        ));
        let parsed = Envelope::parse(&json).unwrap();
        assert_eq!(parsed, envelope);
        key.public_key()
            .verify(&parsed.pae(), &parsed.signatures[0].sig)
            .unwrap();
    }

    #[test]
    fn url_safe_and_unpadded_base64_are_accepted() {
        let json = br#"{"payloadType":"t","payload":"-_8","signatures":[{"sig":"AQ"}]}"#;
        let envelope = Envelope::parse(json).unwrap();
        assert_eq!(envelope.payload, vec![0xfb, 0xff]);
        assert_eq!(envelope.signatures[0].sig, vec![1]);
        assert_eq!(envelope.signatures[0].keyid, "");
    }

    #[test]
    fn envelope_without_signatures_is_malformed() {
        let json = br#"{"payloadType":"t","payload":"","signatures":[]}"#;
        assert!(matches!(
            Envelope::parse(json),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("no signatures")
        ));
    }

    #[test]
    fn envelope_with_bad_base64_is_malformed() {
        let json = br#"{"payloadType":"t","payload":"!!","signatures":[{"sig":"AQ=="}]}"#;
        assert!(matches!(
            Envelope::parse(json),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("payload")
        ));
        let json = br#"{"payloadType":"t","payload":"","signatures":[{"sig":"*"}]}"#;
        assert!(matches!(
            Envelope::parse(json),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("sig")
        ));
    }

    #[test]
    fn envelope_with_missing_fields_or_empty_signature_is_malformed() {
        for json in [
            &br#"{"payload":"","signatures":[{"sig":"AQ=="}]}"#[..],
            br#"{"payloadType":"","payload":"","signatures":[{"sig":"AQ=="}]}"#,
            br#"{"payloadType":"t","payload":"","signatures":[{"sig":""}]}"#,
            br#"[]"#,
            b"not json",
        ] {
            assert!(
                matches!(Envelope::parse(json), Err(TrustError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn too_many_signatures_are_refused() {
        let signatures = vec![r#"{"sig":"AQ=="}"#; MAX_ENVELOPE_SIGNATURES + 1].join(",");
        let json = format!(r#"{{"payloadType":"t","payload":"","signatures":[{signatures}]}}"#);
        assert!(matches!(
            Envelope::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("at most")
        ));
    }

    #[test]
    fn oversized_envelope_is_refused() {
        let bytes = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            Envelope::parse(&bytes).unwrap_err(),
            TrustError::TooLarge {
                what: "DSSE envelope",
                limit: MAX_ENVELOPE_BYTES
            }
        );
    }
}
