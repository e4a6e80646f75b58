//! Reading the key-encryption key (`key_encryption_key_file`): 32 random bytes, base64 (standard
//! alphabet; surrounding whitespace such as a trailing newline is allowed), made with
//! `head -c 32 /dev/urandom | base64 > FILE`. Errors name the file and the fix, never its content.

use std::path::{Path, PathBuf};

use airlock_store::KeyEncryptionKey;
use base64::Engine as _;

/// The command that makes a key-encryption key file.
pub const MAKE_KEK: &str = "head -c 32 /dev/urandom | base64";

/// Most bytes read from the file (a KEK file is 45 bytes; anything much larger is not one).
const MAX_FILE_BYTES: u64 = 4096;

/// Why the key-encryption key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// PostgreSQL without a KEK.
    #[error(
        "database_url names PostgreSQL, where airlock keeps its own keys (audit log, token and attestation keys) in the database sealed under a key-encryption key, but key_encryption_key_file is not set. Make one with `{MAKE_KEK} > /etc/airlock/kek` (mode 0600, the same file for every replica; keep a copy apart from the database backups) and set key_encryption_key_file (or AIRLOCK_KEY_ENCRYPTION_KEY_FILE) to it"
    )]
    NotConfigured,
    /// The file cannot be read.
    #[error(
        "cannot read the key-encryption key file {} (key_encryption_key_file): {source}. Point key_encryption_key_file at the file every replica shares (make a new one only for a new installation: `{MAKE_KEK} > FILE`)",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not 32 bytes in base64.
    #[error(
        "the key-encryption key file {} (key_encryption_key_file) {problem}: it must hold 32 random bytes in base64, as `{MAKE_KEK} > FILE` writes",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (without the content).
        problem: String,
    },
}

/// Reads and decodes the KEK file at `path`.
pub fn read(path: &Path) -> Result<KeyEncryptionKey, KekError> {
    use std::io::Read as _;
    let read_error = |source| KekError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    let malformed = |problem: String| KekError::Malformed {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| malformed("is not base64".into()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| malformed(format!("holds {} bytes, not 32", b.len())))?;
    Ok(KeyEncryptionKey::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kek_file_is_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(
            &path,
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode([9u8; 32])
            ),
        )
        .unwrap();
        assert!(read(&path).is_ok());
        let short = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
        std::fs::write(&path, &short).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("holds 16 bytes, not 32"), "{err}");
        assert!(!err.contains(&short), "{err}");
        std::fs::write(&path, "not base64!").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains(MAKE_KEK));
        let missing = read(&dir.path().join("none")).unwrap_err().to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
