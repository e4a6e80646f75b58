//! Whole-log verification: each kind of tampering is found and named.

use airlock_audit::{
    Hash, LogKey, LogVerifier, MemoryHashes, TreeBuilder, VerifiedCheckpoint, VerifyError,
    hashes_to_store, leaf_hash, stored_hash_index, tree_root, verify_checkpoint, verify_log,
};

const ORIGIN: &str = "airlock.test/audit";

/// An honest log of 100 entries as the server keeps it: entries, stored hashes, and checkpoints
/// signed at sizes 10, 50 and 100.
struct Log {
    entries: Vec<(u64, Vec<u8>)>,
    storage: MemoryHashes,
    checkpoints: Vec<VerifiedCheckpoint>,
}

impl Log {
    fn new() -> Log {
        let key = LogKey::generate(ORIGIN).unwrap();
        let entries: Vec<(u64, Vec<u8>)> = (0..100)
            .map(|i| (i, format!("{{\"event\":\"push\",\"n\":{i}}}").into_bytes()))
            .collect();
        let leaf_hashes: Vec<Hash> = entries.iter().map(|(_, entry)| leaf_hash(entry)).collect();
        let mut storage = MemoryHashes::new();
        let mut checkpoints = Vec::new();
        let mut start = 0;
        for size in [10, 50, 100] {
            let batch = hashes_to_store(start, &leaf_hashes[start as usize..size], &storage);
            storage.extend(batch.unwrap());
            start = size as u64;
            let root = tree_root(start, &storage).unwrap();
            let note = key.sign_checkpoint(start, &root).unwrap();
            checkpoints.push(verify_checkpoint(&note, key.verifier_key()).unwrap());
        }
        Log {
            entries,
            storage,
            checkpoints,
        }
    }

    fn stored_leaf_hash(&self, index: u64) -> Option<Hash> {
        self.storage.get(stored_hash_index(0, index).ok()?)
    }

    fn set_stored_leaf_hash(&mut self, index: u64, hash: Hash) {
        self.storage
            .insert(stored_hash_index(0, index).unwrap(), hash);
    }

    fn verify(&self) -> Result<airlock_audit::LogReport, VerifyError> {
        let lookup = |index| self.stored_leaf_hash(index);
        verify_log(
            self.entries.iter().cloned(),
            Some(&lookup),
            &self.checkpoints,
        )
    }

    fn verify_without_leaf_hashes(&self) -> Result<airlock_audit::LogReport, VerifyError> {
        verify_log(self.entries.iter().cloned(), None, &self.checkpoints)
    }
}

#[test]
fn clean_log_passes() {
    let log = Log::new();
    let report = log.verify().unwrap();
    assert_eq!(report.size, 100);
    assert_eq!(report.root, tree_root(100, &log.storage).unwrap());
    assert_eq!(report.checkpoints_checked, 3);
    assert_eq!(log.verify_without_leaf_hashes().unwrap(), report);
}

#[test]
fn unsorted_checkpoints_are_checked_in_size_order() {
    let mut log = Log::new();
    log.checkpoints.reverse();
    assert_eq!(log.verify().unwrap().checkpoints_checked, 3);
}

#[test]
fn entries_beyond_the_last_checkpoint_are_verified_against_leaf_hashes() {
    let mut log = Log::new();
    log.checkpoints.truncate(2);
    assert_eq!(log.verify().unwrap().size, 100);
    log.entries[70].1.push(b'!');
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::EntryAltered { index: 70 }
    );
}

#[test]
fn modified_entry_is_named() {
    let mut log = Log::new();
    log.entries[37].1 = b"{\"event\":\"nothing happened\"}".to_vec();
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::EntryAltered { index: 37 }
    );
}

#[test]
fn deleted_entry_is_named() {
    let mut log = Log::new();
    log.entries.remove(37);
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::MissingEntry { index: 37 }
    );
    let mut log = Log::new();
    log.entries.remove(0);
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::MissingEntry { index: 0 }
    );
}

#[test]
fn swapped_entries_are_named_at_the_first() {
    let mut log = Log::new();
    let (first, second) = (log.entries[20].1.clone(), log.entries[30].1.clone());
    log.entries[20].1 = second;
    log.entries[30].1 = first;
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::EntryAltered { index: 20 }
    );
}

#[test]
fn entry_rewritten_with_its_leaf_hash_is_caught_by_the_next_checkpoint() {
    let mut log = Log::new();
    let forged = b"{\"event\":\"forged\"}".to_vec();
    log.set_stored_leaf_hash(60, leaf_hash(&forged));
    log.entries[60].1 = forged;
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::RootMismatch {
            size: 100,
            last_good_size: 50
        }
    );
}

#[test]
fn rewrite_before_the_first_checkpoint_reports_no_good_size() {
    let mut log = Log::new();
    log.entries[5].1 = b"rewritten".to_vec();
    assert_eq!(
        log.verify_without_leaf_hashes().unwrap_err(),
        VerifyError::RootMismatch {
            size: 10,
            last_good_size: 0
        }
    );
}

#[test]
fn truncated_log_is_named() {
    let mut log = Log::new();
    log.entries.truncate(80);
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::Truncated {
            have: 80,
            checkpoint_size: 100
        }
    );
    log.entries.clear();
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::Truncated {
            have: 0,
            checkpoint_size: 10
        }
    );
}

#[test]
fn repeated_or_decreasing_indexes_are_refused() {
    let mut log = Log::new();
    let repeat = log.entries[41].clone();
    log.entries.insert(42, repeat);
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::UnorderedEntry {
            index: 41,
            expected: 42
        }
    );
}

#[test]
fn entry_without_a_stored_leaf_hash_is_named() {
    let log = Log::new();
    let lookup = |index: u64| (index != 12).then(|| log.stored_leaf_hash(index)).flatten();
    assert_eq!(
        verify_log(log.entries.iter().cloned(), Some(&lookup), &log.checkpoints).unwrap_err(),
        VerifyError::MissingLeafHash { index: 12 }
    );
}

#[test]
fn checkpoint_of_the_empty_tree_is_checked() {
    let key = LogKey::generate(ORIGIN).unwrap();
    let empty = verify_checkpoint(
        &key.sign_checkpoint(0, &Hash::EMPTY_TREE).unwrap(),
        key.verifier_key(),
    )
    .unwrap();
    let report = verify_log(Vec::<(u64, Vec<u8>)>::new(), None, &[empty]).unwrap();
    assert_eq!(report.checkpoints_checked, 1);

    let bogus = verify_checkpoint(
        &key.sign_checkpoint(0, &leaf_hash(b"")).unwrap(),
        key.verifier_key(),
    )
    .unwrap();
    assert_eq!(
        verify_log(Vec::<(u64, Vec<u8>)>::new(), None, &[bogus]).unwrap_err(),
        VerifyError::RootMismatch {
            size: 0,
            last_good_size: 0
        }
    );
}

/// A larger log (several tiles deep) with leaf-hash checks and a checkpoint verifies. Speed is
/// measured by the benchmark (`airlock-bench audit`), not here.
#[test]
fn a_large_log_verifies() {
    const SIZE: u64 = 20_000;
    let entry = |index: u64| index.to_le_bytes();
    let leaf_hashes: Vec<Hash> = (0..SIZE).map(|index| leaf_hash(&entry(index))).collect();
    let mut builder = TreeBuilder::new();
    leaf_hashes.iter().for_each(|leaf| builder.push(*leaf));
    let key = LogKey::generate(ORIGIN).unwrap();
    let note = key.sign_checkpoint(SIZE, &builder.root()).unwrap();
    let checkpoint = verify_checkpoint(&note, key.verifier_key()).unwrap();

    let lookup = |index: u64| leaf_hashes.get(usize::try_from(index).ok()?).copied();
    let report = verify_log(
        (0..SIZE).map(|index| (index, entry(index))),
        Some(&lookup),
        &[checkpoint],
    )
    .unwrap();
    assert_eq!(report.size, SIZE);
    assert_eq!(report.checkpoints_checked, 1);
}

/// Feeds `log` to a [`LogVerifier`] one entry at a time, as a paged reader does.
fn verify_one_at_a_time(log: &Log) -> Result<airlock_audit::LogReport, VerifyError> {
    let mut verifier = LogVerifier::new(&log.checkpoints)?;
    for (index, entry) in &log.entries {
        verifier.push_checked(*index, entry, log.stored_leaf_hash(*index))?;
        assert_eq!(verifier.size(), index + 1);
    }
    verifier.finish()
}

#[test]
fn one_entry_at_a_time_verifies_as_the_whole_log_does() {
    let log = Log::new();
    assert_eq!(verify_one_at_a_time(&log).unwrap(), log.verify().unwrap());
}

#[test]
fn one_entry_at_a_time_names_an_entry_altered_in_the_middle() {
    let mut log = Log::new();
    log.entries[42].1 = b"{\"event\":\"push\",\"n\":4200}".to_vec();
    assert_eq!(
        verify_one_at_a_time(&log).unwrap_err(),
        VerifyError::EntryAltered { index: 42 }
    );
    assert_eq!(
        log.verify().unwrap_err(),
        VerifyError::EntryAltered { index: 42 }
    );
}

#[test]
fn one_entry_at_a_time_names_a_missing_entry_and_a_short_log() {
    let mut log = Log::new();
    log.entries.remove(60);
    assert_eq!(
        verify_one_at_a_time(&log).unwrap_err(),
        VerifyError::MissingEntry { index: 60 }
    );
    let mut log = Log::new();
    log.entries.truncate(70);
    assert_eq!(
        verify_one_at_a_time(&log).unwrap_err(),
        VerifyError::Truncated {
            have: 70,
            checkpoint_size: 100
        }
    );
}
