//! The [`Hash`] type and the RFC 6962 / RFC 9162 hashing of leaves and interior nodes.
//!
//! leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right); the empty tree's root is
//! SHA-256 of the empty string. The domain-separating prefixes make a leaf impossible to pass off
//! as an interior node.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AuditError;

/// The size of a [`Hash`](struct@Hash) in bytes.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash of a leaf, an interior node or a tree root.
///
/// Displays and serializes as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// The root of the empty tree: SHA-256 of the empty string.
    pub const EMPTY_TREE: Hash = Hash(tlog_tiles::EMPTY_HASH.0);

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// The hash as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Result<Hash, AuditError> {
        let mut bytes = [0u8; HASH_SIZE];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| AuditError::MalformedHash)?;
        Ok(Hash(bytes))
    }

    /// Converts into the hash type of `tlog_tiles`.
    pub(crate) fn to_tlog(self) -> tlog_tiles::Hash {
        tlog_tiles::Hash(self.0)
    }

    /// Converts from the hash type of `tlog_tiles`.
    pub(crate) fn from_tlog(hash: tlog_tiles::Hash) -> Hash {
        Hash(hash.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl FromStr for Hash {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<Hash, AuditError> {
        Hash::from_hex(text)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The RFC 6962 leaf hash of a log entry: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash::from_tlog(tlog_tiles::record_hash(entry))
}

/// The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::from_tlog(tlog_tiles::node_hash(left.to_tlog(), right.to_tlog()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn empty_tree_root_is_sha256_of_empty_string() {
        let expected: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(Hash::EMPTY_TREE, Hash(expected));
    }

    #[test]
    fn hex_round_trips_and_rejects_wrong_lengths() {
        let hash = leaf_hash(b"entry");
        assert_eq!(Hash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert_eq!(hash.to_string(), hash.to_hex());
        assert!(Hash::from_hex("").is_err());
        assert!(Hash::from_hex(&"a".repeat(63)).is_err());
        assert!(Hash::from_hex(&"a".repeat(66)).is_err());
        assert!(Hash::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn json_form_is_lowercase_hex_string() {
        let hash = Hash([0xab; 32]);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        let back: Hash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hash);
        assert!(serde_json::from_str::<Hash>("\"abcd\"").is_err());
    }

    #[test]
    fn leaf_and_node_hashes_use_domain_prefixes() {
        let mut leaf_input = vec![0u8];
        leaf_input.extend_from_slice(b"x");
        assert_eq!(
            leaf_hash(b"x").0,
            <[u8; 32]>::from(Sha256::digest(&leaf_input))
        );

        let (left, right) = (Hash([1; 32]), Hash([2; 32]));
        let mut node_input = vec![1u8];
        node_input.extend_from_slice(&left.0);
        node_input.extend_from_slice(&right.0);
        assert_eq!(
            node_hash(&left, &right).0,
            <[u8; 32]>::from(Sha256::digest(&node_input))
        );
    }
}
