//! The files of a rotatable key in the data directory: the private key (`<name>.pem`, PKCS#8,
//! 0600, as before rotation existed) and its history (`<name>s.json`, 0600): when the current
//! key was made, and every key it replaced with its public half, when it was retired and until
//! when what it signed is accepted.
//!
//! A rotation writes the new private key to `<name>.pem.next`, then the history naming the new
//! key as current (temporary file, fsync, rename), then renames `<name>.pem.next` over
//! `<name>.pem`. Opening finishes a rotation a crash interrupted after the history was written
//! (the `.next` file is the key the history names) and drops a `.next` file the history does not
//! name; until then the key file is the truth, so a history ahead of it is never half-applied.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ServerKeyError;

/// The key that signs now, as the history records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CurrentKey {
    /// Its id.
    pub key_id: String,
    /// When it was made (Unix ms).
    pub created_at: i64,
}

/// A key that no longer signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetiredKey {
    /// Its id.
    pub key_id: String,
    /// Its public half (PEM).
    pub public_key: String,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it was replaced (Unix ms).
    pub retired_at: i64,
    /// Until when what it signed is accepted (Unix ms); `None`: without end (attestations stay
    /// verifiable).
    pub accepted_until: Option<i64>,
}

/// The history file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyHistory {
    /// The key that signs now (absent before the first rotation).
    #[serde(default)]
    pub current: Option<CurrentKey>,
    /// Replaced keys, oldest first.
    #[serde(default)]
    pub retired: Vec<RetiredKey>,
}

/// The two files of one rotatable key.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// `<data_dir>/<name>.pem`.
    pub key: PathBuf,
    /// `<data_dir>/<name>s.json`.
    pub history: PathBuf,
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServerKeyError + '_ {
    move |source| ServerKeyError::File {
        path: path.to_path_buf(),
        source,
    }
}

fn next_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// Writes `content` to `path` through a temporary file in the same directory (mode 0600,
/// fsynced) renamed over it, then fsyncs the directory.
fn write_atomically(path: &Path, content: &[u8]) -> Result<(), ServerKeyError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    write_new_secret(&temp, content)?;
    std::fs::rename(&temp, path).map_err(file_error(path))?;
    sync_dir(path)
}

/// Creates `path` (replacing a stale one) with mode 0600 and `content`, fsynced.
fn write_new_secret(path: &Path, content: &[u8]) -> Result<(), ServerKeyError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(file_error(path)(err)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(file_error(path))?;
    file.write_all(content).map_err(file_error(path))?;
    file.sync_all().map_err(file_error(path))
}

fn sync_dir(path: &Path) -> Result<(), ServerKeyError> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(file_error(dir))?;
    }
    Ok(())
}

impl KeyFiles {
    /// The files of key `name` (`token-key`, `attestation-key`) in `data_dir`.
    pub fn new(data_dir: &Path, name: &str) -> Self {
        Self {
            key: data_dir.join(format!("{name}.pem")),
            history: data_dir.join(format!("{name}s.json")),
        }
    }

    /// Creates the key file (mode 0600) on first start; refuses to replace one.
    pub fn create(&self, pem: &str) -> Result<(), ServerKeyError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&self.key).map_err(file_error(&self.key))?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(file_error(&self.key))
    }

    /// The history (empty if there is none yet).
    pub fn read_history(&self) -> Result<KeyHistory, ServerKeyError> {
        match std::fs::read(&self.history) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ServerKeyError::Corrupt {
                path: self.history.clone(),
                message: e.to_string(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(KeyHistory::default()),
            Err(err) => Err(file_error(&self.history)(err)),
        }
    }

    /// Finishes or drops a rotation a crash interrupted (see the module docs): `key_id` computes
    /// a key id from private key PEM.
    pub fn recover(
        &self,
        key_id: impl Fn(&str) -> Result<String, ServerKeyError>,
    ) -> Result<(), ServerKeyError> {
        let next = next_path(&self.key);
        let pem = match std::fs::read_to_string(&next) {
            Ok(pem) => pem,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(file_error(&next)(err)),
        };
        let history = self.read_history()?;
        let named = history
            .current
            .as_ref()
            .is_some_and(|current| key_id(&pem).is_ok_and(|id| id == current.key_id));
        if named {
            tracing::warn!(path = %self.key.display(), "finishing a key rotation a previous run left unfinished");
            std::fs::rename(&next, &self.key).map_err(file_error(&self.key))?;
            sync_dir(&self.key)
        } else {
            tracing::warn!(path = %next.display(), "removing a key file of a rotation that never took effect");
            std::fs::remove_file(&next).map_err(file_error(&next))
        }
    }

    /// When the key file was last written (Unix ms): the creation time of a key that has no
    /// history yet.
    pub fn key_modified_millis(&self) -> i64 {
        std::fs::metadata(&self.key)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Replaces the key: `new_pem` becomes the key file and `history` (which names it as current)
    /// the history, in the order the module docs give.
    pub fn replace(&self, new_pem: &str, history: &KeyHistory) -> Result<(), ServerKeyError> {
        let next = next_path(&self.key);
        write_new_secret(&next, new_pem.as_bytes())?;
        let json = serde_json::to_vec_pretty(history).map_err(|e| ServerKeyError::Corrupt {
            path: self.history.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&self.history, &json)?;
        std::fs::rename(&next, &self.key).map_err(file_error(&self.key))?;
        sync_dir(&self.key)
    }
}

/// The history after replacing the current key (`old_id`, `old_public_pem`, made at
/// `old_created_at`) by `new_id` at `now`, accepting what the old key signed until
/// `accepted_until`.
pub fn rotated(mut history: KeyHistory, old: RetiredKey, new_id: &str, now: i64) -> KeyHistory {
    history
        .retired
        .retain(|r| r.key_id != old.key_id && r.key_id != new_id);
    history.retired.push(old);
    history.current = Some(CurrentKey {
        key_id: new_id.to_string(),
        created_at: now,
    });
    history
}

/// When the key with id `key_id` was made: as the history says if it names it as current,
/// else the key file's modification time.
pub fn created_at(history: &KeyHistory, files: &KeyFiles, key_id: &str) -> i64 {
    match &history.current {
        Some(current) if current.key_id == key_id => current.created_at,
        _ => files.key_modified_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "airlock-key-files-{name}-{}-{}",
                std::process::id(),
                now_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn now_nanos() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    fn retired(id: &str) -> RetiredKey {
        RetiredKey {
            key_id: id.into(),
            public_key: "PEM".into(),
            created_at: 1,
            retired_at: 2,
            accepted_until: Some(3),
        }
    }

    #[test]
    fn a_rotation_is_finished_or_dropped_at_open() {
        let dir = TempDir::new("recover");
        let files = KeyFiles::new(dir.path(), "k");
        std::fs::write(&files.key, "old").unwrap();
        let id = |pem: &str| Ok(format!("id-{pem}"));
        // The history names the `.next` key: the rotation is finished.
        let history = rotated(KeyHistory::default(), retired("id-old"), "id-new", 5);
        std::fs::write(&files.history, serde_json::to_vec(&history).unwrap()).unwrap();
        std::fs::write(next_path(&files.key), "new").unwrap();
        files.recover(id).unwrap();
        assert_eq!(std::fs::read_to_string(&files.key).unwrap(), "new");
        assert!(!next_path(&files.key).exists());
        // A `.next` key the history does not name is dropped; the key file stays.
        std::fs::write(next_path(&files.key), "other").unwrap();
        files.recover(id).unwrap();
        assert_eq!(std::fs::read_to_string(&files.key).unwrap(), "new");
        assert!(!next_path(&files.key).exists());
    }

    #[test]
    fn replacing_writes_both_files_with_mode_0600() {
        let dir = TempDir::new("replace");
        let files = KeyFiles::new(dir.path(), "k");
        std::fs::write(&files.key, "old").unwrap();
        let history = rotated(KeyHistory::default(), retired("a"), "b", 5);
        files.replace("new", &history).unwrap();
        assert_eq!(std::fs::read_to_string(&files.key).unwrap(), "new");
        assert_eq!(files.read_history().unwrap(), history);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [&files.key, &files.history] {
                let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
        // Rotating back to a key that was retired drops its old entry.
        let again = rotated(history, retired("b"), "a", 6);
        assert_eq!(again.retired.len(), 1);
        assert_eq!(again.retired[0].key_id, "b");
    }
}
