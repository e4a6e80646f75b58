//! The identity lists, a page at a time: principals with their grants, role bindings, access
//! requests.
//!
//! What holds:
//! - Each page is a range of an index (principals by name, bindings by principal name and id,
//!   access requests by id), read one row past its end to know whether another page follows, so a
//!   page costs the same whatever the number of principals, bindings or requests.
//! - Principals and bindings need `access-admin` or `auditor`; access requests are everyone's to
//!   list, but a caller without either role sees only their own.
//! - An OIDC trust rule's principal (`oidc/<rule>`) holds `builder` in the rule's repositories
//!   from the configuration; in the bindings list those grants come before its stored bindings,
//!   numbered from `-k` to `-1` so one cursor orders both.

use airlock_core::access::{Grant, Permission, PermissionTarget, Role, Scope};
use airlock_store::{AccessRequestRow, PrincipalRow, now_millis};

use super::{AuthError, Authenticated, Identity};

/// A role binding as the bindings list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBinding {
    /// Who holds it.
    pub principal: String,
    /// Its place among the principal's bindings: the binding's id, or for an OIDC rule's grant
    /// from the configuration, a negative number before them.
    pub seq: i64,
    /// The grant; `None` for a stored binding whose role or scope no longer parses (the list
    /// leaves it out, but it still holds its place for the cursor).
    pub grant: Option<Grant>,
}

impl Identity {
    fn require_identity_reader(who: &Authenticated, what: &str) -> Result<(), AuthError> {
        if who.has(Permission::ManageAccess, &PermissionTarget::Global)
            || who.has(Permission::ReadAudit, &PermissionTarget::Global)
        {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "listing {what} needs access-admin or auditor"
            )))
        }
    }

    /// Up to `limit` principals named after `after` (from the first when `None`), by name, each
    /// with its active grants. Needs `access-admin` or `auditor`.
    pub async fn principals_page(
        &self,
        who: &Authenticated,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(PrincipalRow, Vec<Grant>)>, AuthError> {
        Self::require_identity_reader(who, "principals")?;
        let mut out = Vec::new();
        for principal in self.metadata.principals_page(after, limit).await? {
            let grants = self.grants(&principal).await?;
            out.push((principal, grants));
        }
        Ok(out)
    }

    /// Up to `limit` active role bindings after `after` (principal name and place), of one
    /// principal or of all, by principal name and then place. A stored binding whose role or
    /// scope no longer parses is read with `grant` `None`, for the caller to leave out. Needs
    /// `access-admin` or `auditor`.
    pub async fn bindings_page(
        &self,
        who: &Authenticated,
        principal: Option<&str>,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<ListedBinding>, AuthError> {
        Self::require_identity_reader(who, "role bindings")?;
        let now = now_millis();
        let mut entries: Vec<(String, i64, Option<Grant>)> = self
            .metadata
            .bindings_page(principal, after, now, limit)
            .await?
            .into_iter()
            .map(|row| {
                let grant = match (row.binding.role.parse(), row.binding.scope.parse()) {
                    (Ok(role), Ok(scope)) => Some(Grant {
                        role,
                        scope,
                        expires_at_millis: row.binding.expires_at,
                    }),
                    _ => None,
                };
                (row.principal, row.binding.id, grant)
            })
            .collect();
        entries.extend(self.rule_grants_after(principal, after).await?);
        entries.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        entries.truncate(limit as usize);
        Ok(entries
            .into_iter()
            .map(|(principal, seq, grant)| ListedBinding {
                principal,
                seq,
                grant,
            })
            .collect())
    }

    /// The configured grants of the OIDC rules' principals that exist and come after `after`
    /// (of `principal` only, when given), numbered `-k..-1` within each principal.
    async fn rule_grants_after(
        &self,
        principal: Option<&str>,
        after: Option<(&str, i64)>,
    ) -> Result<Vec<(String, i64, Option<Grant>)>, AuthError> {
        let mut out = Vec::new();
        for (rule, _) in &self.oidc {
            let name = format!("oidc/{}", rule.name);
            if principal.is_some_and(|p| p != name)
                || after.is_some_and(|(after_name, _)| name.as_str() < after_name)
            {
                continue;
            }
            let scopes: Vec<Scope> = rule
                .repositories
                .iter()
                .filter_map(|s| s.parse::<Scope>().ok())
                .collect();
            let count = scopes.len() as i64;
            let listed: Vec<_> = scopes
                .into_iter()
                .enumerate()
                .map(|(i, scope)| (name.clone(), i as i64 - count, scope))
                .filter(|(name, seq, _)| {
                    after.is_none_or(|(after_name, after_seq)| {
                        (name.as_str(), *seq) > (after_name, after_seq)
                    })
                })
                .collect();
            if listed.is_empty() || self.metadata.principal_by_name(&name).await?.is_none() {
                continue;
            }
            out.extend(listed.into_iter().map(|(name, seq, scope)| {
                (
                    name,
                    seq,
                    Some(Grant {
                        role: Role::Builder,
                        scope,
                        expires_at_millis: None,
                    }),
                )
            }));
        }
        Ok(out)
    }

    /// Up to `limit` access requests with ids below `before` (from the newest when `None`),
    /// newest first: every request for an `access-admin` or `auditor`, the caller's own for
    /// anyone else.
    pub async fn access_requests_page(
        &self,
        who: &Authenticated,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccessRequestRow>, AuthError> {
        let everyone = who.has(Permission::ManageAccess, &PermissionTarget::Global)
            || who.has(Permission::ReadAudit, &PermissionTarget::Global);
        let principal = (!everyone).then_some(who.principal.id);
        Ok(self
            .metadata
            .access_requests_page(principal, before, limit)
            .await?)
    }
}
