//! Changing what a key may vouch for (`airlock keys update`): its purposes, scope and end of
//! validity, by a key-admin whose grants hold the key's scope, with the evidence the change
//! affects verified again in the same keyring transaction (`EvidenceService::change_keyring`).

use std::str::FromStr;

use airlock_core::{Actor, AuditEvent, RepoName};
use airlock_store::{KeyChange, KeyRow, StoreError, now_millis};
use airlock_trust::verify::{Purpose, ScopePattern};

use super::{Affected, EvidenceError, EvidenceService, Result};

/// A change to what a key may vouch for, as the API receives it (`airlock keys update`).
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    /// Purposes to add (`sign`, `attest:<predicate type>`).
    pub add_purposes: Vec<String>,
    /// Purposes to remove.
    pub remove_purposes: Vec<String>,
    /// The new scope (repository path patterns), replacing the old one.
    pub scope: Option<Vec<String>>,
    /// The new end of validity (ms).
    pub not_after: Option<i64>,
}

/// Where a caller may administer keys: everywhere (a global key-admin, or access control off),
/// or where its scoped `key-admin` grants reach. A key's scope names repository paths without the
/// stage and so applies in every stage: a scoped key-admin administers a key only if its grants
/// hold each of the key's patterns in every configured stage.
#[derive(Debug, Clone)]
pub enum KeyAuthority {
    /// No limit.
    Everywhere,
    /// The caller's grants.
    Grants(Vec<airlock_core::access::Grant>),
}

impl EvidenceService {
    /// Changes what the key named `name` may vouch for: adds and removes purposes, replaces its
    /// scope, moves its end of validity. `authority` says where the caller may administer keys:
    /// the key's scope before and after the change must lie within it. Evidence whose verdict the
    /// change can alter is verified again in the same transaction (see `change_keyring`).
    pub async fn update_key(
        &self,
        name: &str,
        update: KeyUpdate,
        authority: &KeyAuthority,
        actor: &Actor,
    ) -> Result<KeyRow> {
        // The key is read, checked and its new purposes, scope and validity computed under the
        // keyring lock, held through the write: two concurrent updates apply one after the
        // other, each to what the other left, and the audit record's "before" is what it changed.
        let guard = self.lock.lock().await;
        let (version, rows) = self.metadata.keyring().await?;
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| EvidenceError::KeyUnknown {
                name: name.to_string(),
            })?
            .clone();
        if let Some(outside) = self.outside_authority(authority, &row.scope) {
            return Err(EvidenceError::KeyOutsideAuthority {
                key: name.to_string(),
                pattern: outside.to_string(),
            });
        }
        if update.add_purposes.is_empty()
            && update.remove_purposes.is_empty()
            && update.scope.is_none()
            && update.not_after.is_none()
        {
            return Err(EvidenceError::NothingToChange);
        }
        if row.status == "revoked" {
            return Err(EvidenceError::KeyRevoked {
                name: name.to_string(),
            });
        }
        let mut purposes = row.purposes.clone();
        for purpose in &update.remove_purposes {
            Purpose::from_str(purpose).map_err(|source| EvidenceError::Purpose {
                purpose: purpose.clone(),
                source,
            })?;
            if !purposes.contains(purpose) {
                return Err(EvidenceError::PurposeNotHeld {
                    name: name.to_string(),
                    purpose: purpose.clone(),
                    held: row.purposes.clone(),
                });
            }
            purposes.retain(|p| p != purpose);
        }
        for purpose in &update.add_purposes {
            Purpose::from_str(purpose).map_err(|source| EvidenceError::Purpose {
                purpose: purpose.clone(),
                source,
            })?;
            if purposes.contains(purpose) {
                return Err(EvidenceError::PurposeHeld {
                    name: name.to_string(),
                    purpose: purpose.clone(),
                });
            }
            purposes.push(purpose.clone());
        }
        if purposes.is_empty() {
            return Err(EvidenceError::NoPurposeLeft {
                name: name.to_string(),
            });
        }
        let scope = match &update.scope {
            Some(scope) => {
                if scope.is_empty() {
                    return Err(EvidenceError::NoScope);
                }
                for pattern in scope {
                    ScopePattern::from_str(pattern).map_err(|source| EvidenceError::Scope {
                        pattern: pattern.clone(),
                        source,
                    })?;
                }
                if let Some(outside) = self.outside_authority(authority, scope) {
                    return Err(EvidenceError::ScopeOutsideAuthority {
                        pattern: outside.to_string(),
                    });
                }
                scope.clone()
            }
            None => row.scope.clone(),
        };
        let not_after = update.not_after.or(row.not_after);
        if let (Some(from), Some(until)) = (row.not_before, not_after)
            && until <= from
        {
            return Err(EvidenceError::Validity { not_before: from });
        }
        if purposes == row.purposes && scope == row.scope && not_after == row.not_after {
            return Err(EvidenceError::Unchanged {
                name: name.to_string(),
            });
        }
        let change = KeyChange::Update {
            key_id: row.key_id.clone(),
            purposes: purposes.clone(),
            scope: scope.clone(),
            not_after,
        };
        let event = AuditEvent::KeyUpdated {
            key_id: row.key_id.clone(),
            name: row.name.clone(),
            purposes_before: row.purposes.clone(),
            purposes_after: purposes,
            scope_before: row.scope.clone(),
            scope_after: scope,
            not_after_before_millis: row.not_after,
            not_after_after_millis: not_after,
        };
        self.change_keyring_locked(
            &guard,
            (version, rows),
            change,
            event,
            Affected::RejectedAndOfKey(&row.key_id),
            actor,
        )
        .await?;
        let (_, rows) = self.metadata.keyring().await?;
        drop(guard);
        rows.into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| StoreError::Corrupt("changed key vanished".into()).into())
    }

    /// The first of `patterns` that `authority` does not hold in every stage, if any.
    fn outside_authority<'a>(
        &self,
        authority: &KeyAuthority,
        patterns: &'a [String],
    ) -> Option<&'a str> {
        let KeyAuthority::Grants(grants) = authority else {
            return None;
        };
        let now = now_millis();
        patterns
            .iter()
            .find(|pattern| {
                !self.stages.all().iter().all(|stage| {
                    stage_scope(&stage.name, pattern).is_some_and(|scope| {
                        airlock_core::access::has_permission_within(
                            grants,
                            airlock_core::access::Permission::ManageKeys,
                            &scope,
                            now,
                        )
                    })
                })
            })
            .map(String::as_str)
    }
}

/// The access scope that a key scope pattern (`*`, `team/*`, `team/app`: paths without a stage)
/// names in `stage`; `None` if the pattern makes no repository name there (fail closed).
fn stage_scope(
    stage: &airlock_core::StageName,
    pattern: &str,
) -> Option<airlock_core::access::Scope> {
    use airlock_core::access::Scope;
    if pattern == "*" {
        return Some(Scope::Stage(stage.clone()));
    }
    match pattern.strip_suffix("/*") {
        Some(base) => RepoName::from_str(&format!("{stage}/{base}"))
            .ok()
            .map(Scope::RepositoriesUnder),
        None => RepoName::from_str(&format!("{stage}/{pattern}"))
            .ok()
            .map(Scope::Repository),
    }
}
