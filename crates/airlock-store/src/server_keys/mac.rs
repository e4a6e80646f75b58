//! Authenticating a whole `server_keys` row: HMAC-SHA256 over every column, under a key derived
//! from the key-encryption key with HKDF-SHA256 (its own `info`, so the MAC key is never the
//! sealing key). Someone who can write the database but has no KEK cannot change a public half,
//! a retirement time or an acceptance window, nor add a row, without the row being refused.
//!
//! The MAC input is unambiguous: a fixed label, then each column in table order, every text and
//! byte string prefixed by its length (8 bytes, big-endian), every optional value by a presence
//! byte, every integer as 8 bytes big-endian.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::KeyPurpose;
use super::sealing::{KeyEncryptionKey, SealFailed};

/// HKDF's `info` for the row MAC key: distinct from every other use of the KEK.
const MAC_KEY_INFO: &[u8] = b"airlock server_keys row mac v1";
/// The first bytes of every MAC input.
const ROW_LABEL: &[u8] = b"airlock server_keys row v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The columns of one `server_keys` row, as stored.
pub(crate) struct RowFields<'a> {
    pub(crate) purpose: KeyPurpose,
    pub(crate) key_id: &'a str,
    pub(crate) public_key: &'a str,
    pub(crate) sealed_private: Option<&'a [u8]>,
    pub(crate) created_at: i64,
    pub(crate) retired_at: Option<i64>,
    pub(crate) accepted_until: Option<i64>,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_optional_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        None => out.push(0),
    }
}

fn put_optional_int(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&value.to_be_bytes());
        }
        None => out.push(0),
    }
}

impl RowFields<'_> {
    /// The MAC input: every column, length-prefixed.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            ROW_LABEL.len()
                + 64
                + self.key_id.len()
                + self.public_key.len()
                + self.sealed_private.map_or(0, <[u8]>::len),
        );
        out.extend_from_slice(ROW_LABEL);
        put_bytes(&mut out, self.purpose.as_str().as_bytes());
        put_bytes(&mut out, self.key_id.as_bytes());
        put_bytes(&mut out, self.public_key.as_bytes());
        put_optional_bytes(&mut out, self.sealed_private);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        put_optional_int(&mut out, self.retired_at);
        put_optional_int(&mut out, self.accepted_until);
        out
    }
}

fn keyed(kek: &KeyEncryptionKey) -> Result<HmacSha256, SealFailed> {
    let mut mac_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, kek.bytes())
        .expand(MAC_KEY_INFO, &mut mac_key)
        .map_err(|_| SealFailed)?;
    HmacSha256::new_from_slice(&mac_key).map_err(|_| SealFailed)
}

/// The MAC of `row` under `kek`.
pub(crate) fn row_mac(kek: &KeyEncryptionKey, row: &RowFields<'_>) -> Result<Vec<u8>, SealFailed> {
    let mut mac = keyed(kek)?;
    mac.update(&row.encode());
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Whether `tag` is the MAC of `row` under `kek` (compared in constant time).
pub(crate) fn verify_row(
    kek: &KeyEncryptionKey,
    row: &RowFields<'_>,
    tag: &[u8],
) -> Result<(), SealFailed> {
    let mut mac = keyed(kek)?;
    mac.update(&row.encode());
    mac.verify_slice(tag).map_err(|_| SealFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(public_key: &'a str, sealed: Option<&'a [u8]>) -> RowFields<'a> {
        RowFields {
            purpose: KeyPurpose::Token,
            key_id: "k1",
            public_key,
            sealed_private: sealed,
            created_at: 10,
            retired_at: None,
            accepted_until: None,
        }
    }

    /// The MAC binds every column and the KEK; moving bytes between adjacent columns changes it
    /// (length prefixes), and an absent value differs from an empty one.
    #[test]
    fn the_row_mac_binds_every_column() {
        let kek = KeyEncryptionKey::new([5; 32]);
        let base = row("pub", Some(b"sealed"));
        let tag = row_mac(&kek, &base).unwrap();
        assert_eq!(tag.len(), 32);
        assert!(verify_row(&kek, &base, &tag).is_ok());
        assert!(verify_row(&KeyEncryptionKey::new([6; 32]), &base, &tag).is_err());
        let changed = [
            RowFields {
                purpose: KeyPurpose::Attestation,
                ..row("pub", Some(b"sealed"))
            },
            RowFields {
                key_id: "k2",
                ..row("pub", Some(b"sealed"))
            },
            row("pub2", Some(b"sealed")),
            row("pubs", Some(b"ealed")),
            row("pub", Some(b"")),
            row("pub", None),
            RowFields {
                created_at: 11,
                ..row("pub", Some(b"sealed"))
            },
            RowFields {
                retired_at: Some(0),
                ..row("pub", Some(b"sealed"))
            },
            RowFields {
                accepted_until: Some(10),
                ..row("pub", Some(b"sealed"))
            },
        ];
        for (i, other) in changed.iter().enumerate() {
            assert!(verify_row(&kek, other, &tag).is_err(), "change {i}");
        }
        let mut truncated = tag.clone();
        truncated.pop();
        assert!(verify_row(&kek, &base, &truncated).is_err());
        assert!(verify_row(&kek, &base, &[]).is_err());
    }
}
