//! The verification cache: answers kept under the `verify_version` they were computed at.
//!
//! The store bumps that version in the same transaction as every change an answer reads
//! (migration 0029's triggers), and each verification reads it before anything else. An answer is
//! stored under the version read *before* its records were, so it can only be newer than its key;
//! a lookup under a newer version finds nothing and empties the cache. No answer is ever served
//! once a change that could flip it has committed, on this replica or another.

use std::collections::HashMap;
use std::sync::Mutex;

use airlock_api::deploy::VerifyResult;

/// What an answer depends on besides the version: the repository, the digest and whether the
/// channel's current digest was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub repository: String,
    pub digest: String,
    pub current: bool,
}

/// Answers by key, all computed at one version.
pub(super) struct VerifyCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

struct CacheState {
    version: i64,
    answers: HashMap<CacheKey, VerifyResult>,
}

impl VerifyCache {
    /// A cache of at most `capacity` answers (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(CacheState {
                version: i64::MIN,
                answers: HashMap::new(),
            }),
        }
    }

    /// The answer kept for `key` at `version`, if any. A newer version empties the cache.
    pub fn get(&self, version: i64, key: &CacheKey) -> Option<VerifyResult> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.version != version {
            if version > state.version {
                state.version = version;
                state.answers.clear();
            }
            return None;
        }
        state.answers.get(key).cloned()
    }

    /// Keeps `answer` for `key`, computed from records read after `version` was. An answer of an
    /// older version than the cache holds is dropped; a full cache is emptied first.
    pub fn put(&self, version: i64, key: CacheKey, answer: VerifyResult) {
        if self.capacity == 0 {
            return;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if version < state.version {
            return;
        }
        if version > state.version {
            state.version = version;
            state.answers.clear();
        }
        if state.answers.len() >= self.capacity && !state.answers.contains_key(&key) {
            state.answers.clear();
        }
        state.answers.insert(key, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(digest: &str) -> CacheKey {
        CacheKey {
            repository: "prod/team/app".into(),
            digest: digest.into(),
            current: false,
        }
    }

    fn answer(digest: &str) -> VerifyResult {
        VerifyResult {
            reference: String::new(),
            verified: true,
            repository: Some("prod/team/app".into()),
            digest: Some(digest.into()),
            promotion: None,
            attestation: None,
            failures: Vec::new(),
        }
    }

    #[test]
    fn an_answer_is_served_only_at_its_version() {
        let cache = VerifyCache::new(10);
        cache.put(3, key("a"), answer("a"));
        assert_eq!(cache.get(3, &key("a")), Some(answer("a")));
        assert_eq!(cache.get(3, &key("b")), None);
        // The version moved: nothing from version 3 is served, and it is not coming back.
        assert_eq!(cache.get(4, &key("a")), None);
        assert_eq!(cache.get(3, &key("a")), None);
        // An answer computed at an older version than the cache holds is dropped.
        cache.put(3, key("a"), answer("a"));
        assert_eq!(cache.get(4, &key("a")), None);
    }

    #[test]
    fn a_full_cache_starts_over_and_an_empty_one_keeps_nothing() {
        let cache = VerifyCache::new(2);
        cache.put(1, key("a"), answer("a"));
        cache.put(1, key("b"), answer("b"));
        cache.put(1, key("c"), answer("c"));
        assert_eq!(cache.get(1, &key("a")), None);
        assert_eq!(cache.get(1, &key("c")), Some(answer("c")));
        let off = VerifyCache::new(0);
        off.put(1, key("a"), answer("a"));
        assert_eq!(off.get(1, &key("a")), None);
    }
}
