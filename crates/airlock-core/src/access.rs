//! The access model: roles, what each role may do, where a grant applies, and the rules that
//! keep one person from holding too much power.
//!
//! Everything here is pure: a caller loads a principal's [`Grant`]s, then asks
//! [`registry_actions`] (what may this principal do to this repository through the registry API),
//! [`has_permission`] (may it approve, promote, manage keys, ...), or [`grant_scopes`] (which
//! Docker token scopes to put in a token). The role -> permission table is the one `match` in
//! [`permissions`]; [`permission_table_markdown`] renders it for the docs so they cannot drift.
//!
//! Gated stages never take pushes or deletions through the registry API, whatever the role:
//! content reaches them only by promotion.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, truncated};
use crate::name::{RepoName, StageName};
use crate::stage::{StageMode, Stages};

/// An action on a repository, as named in Docker token scopes (`repository:dev/app:pull,push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs, push manifests and tags.
    Push,
    /// Delete manifests, tags and blob links.
    Delete,
}

impl Action {
    /// Every action, in the order tokens list them.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The scope spelling of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named bundle of permissions that a principal holds in a [`Scope`].
///
/// The text spelling (config, API, serde) is kebab-case: `key-admin`, `break-glass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads content in every stage.
    Reader,
    /// Pushes and deletes in push stages, reads everywhere.
    Developer,
    /// A CI identity: pushes images and their signatures and attestations into push stages.
    Builder,
    /// Asks for artifacts to be promoted to the next stage.
    Promoter,
    /// Approves promotions requested by someone else.
    Approver,
    /// A deployment identity: reads gated stages only, because deployments pull from prod.
    Deployer,
    /// Manages signing and trust keys.
    KeyAdmin,
    /// Manages principals, roles, grants and access requests.
    AccessAdmin,
    /// Reads the audit log and all content, changes nothing.
    Auditor,
    /// May invoke emergency access, which is itself recorded and reviewed.
    BreakGlass,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 10] = [
        Role::Reader,
        Role::Developer,
        Role::Builder,
        Role::Promoter,
        Role::Approver,
        Role::Deployer,
        Role::KeyAdmin,
        Role::AccessAdmin,
        Role::Auditor,
        Role::BreakGlass,
    ];

    /// The kebab-case spelling used in config, the API and serde.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Developer => "developer",
            Self::Builder => "builder",
            Self::Promoter => "promoter",
            Self::Approver => "approver",
            Self::Deployer => "deployer",
            Self::KeyAdmin => "key-admin",
            Self::AccessAdmin => "access-admin",
            Self::Auditor => "auditor",
            Self::BreakGlass => "break-glass",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {value:?}: expected one of {}", Role::ALL.map(Role::as_str).join(", "))]
pub struct UnknownRole {
    /// The rejected input (truncated).
    pub value: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| UnknownRole {
                value: truncated(value),
            })
    }
}

/// One thing a role allows. Roles map to permissions in [`permissions`], and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Read manifests, blobs and tags in push stages.
    Pull,
    /// Read manifests, blobs and tags in gated stages.
    PullGated,
    /// Upload blobs, push manifests and move tags in push stages.
    Push,
    /// Delete manifests, tags and blobs in push stages.
    Delete,
    /// Push signatures and attestations.
    Attest,
    /// Request a promotion.
    Promote,
    /// Approve a promotion.
    Approve,
    /// Manage signing and trust keys.
    ManageKeys,
    /// Manage principals, roles, grants and access requests.
    ManageAccess,
    /// Read the audit log.
    ReadAudit,
    /// Invoke emergency (break-glass) access.
    BreakGlass,
}

impl Permission {
    /// Every permission, in the order the docs list them.
    pub const ALL: [Permission; 11] = [
        Permission::Pull,
        Permission::PullGated,
        Permission::Push,
        Permission::Delete,
        Permission::Attest,
        Permission::Promote,
        Permission::Approve,
        Permission::ManageKeys,
        Permission::ManageAccess,
        Permission::ReadAudit,
        Permission::BreakGlass,
    ];

    /// The kebab-case spelling used in the API, the docs and serde.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::PullGated => "pull-gated",
            Self::Push => "push",
            Self::Delete => "delete",
            Self::Attest => "attest",
            Self::Promote => "promote",
            Self::Approve => "approve",
            Self::ManageKeys => "manage-keys",
            Self::ManageAccess => "manage-access",
            Self::ReadAudit => "read-audit",
            Self::BreakGlass => "break-glass",
        }
    }

    /// One line for the docs saying what the permission allows.
    pub fn description(self) -> &'static str {
        match self {
            Self::Pull => "read manifests, blobs and tags in push stages",
            Self::PullGated => "read manifests, blobs and tags in gated stages",
            Self::Push => "upload blobs, push manifests and move tags in push stages",
            Self::Delete => "delete manifests, tags and blobs in push stages",
            Self::Attest => "push signatures and attestations",
            Self::Promote => "request a promotion",
            Self::Approve => "approve a promotion",
            Self::ManageKeys => "manage signing and trust keys",
            Self::ManageAccess => "manage principals, roles, grants and access requests",
            Self::ReadAudit => "read the audit log",
            Self::BreakGlass => "invoke emergency access, which is recorded and reviewed",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `role` may do: the whole role -> permission table, in one place.
pub fn permissions(role: Role) -> &'static [Permission] {
    use Permission::*;
    match role {
        Role::Reader => &[Pull, PullGated],
        Role::Developer => &[Pull, PullGated, Push, Delete],
        Role::Builder => &[Pull, Push, Attest],
        Role::Promoter => &[Pull, PullGated, Promote],
        Role::Approver => &[Pull, PullGated, Approve],
        Role::Deployer => &[PullGated],
        Role::KeyAdmin => &[ManageKeys],
        Role::AccessAdmin => &[ManageAccess, ReadAudit],
        Role::Auditor => &[ReadAudit, Pull, PullGated],
        Role::BreakGlass => &[BreakGlass],
    }
}

/// The role table (role | permissions) and a legend of what each permission means, as
/// Markdown for the docs, rendered from [`permissions`] so the docs cannot drift from the code.
pub fn permission_table_markdown() -> String {
    let code = |text: &str| format!("`{text}`");
    let mut out = String::from("| Role | Permissions |\n|---|---|\n");
    for role in Role::ALL {
        let granted: Vec<String> = permissions(role).iter().map(|p| code(p.as_str())).collect();
        out.push_str(&format!(
            "| {} | {} |\n",
            code(role.as_str()),
            granted.join(", ")
        ));
    }
    out.push_str("\n| Permission | Allows |\n|---|---|\n");
    for permission in Permission::ALL {
        out.push_str(&format!(
            "| {} | {} |\n",
            code(permission.as_str()),
            permission.description()
        ));
    }
    out
}

/// Where a grant applies.
///
/// Text forms (config, API, serde): `*` or `global` for [`Scope::Global`]; a stage name such as
/// `prod` for [`Scope::Stage`]; `prod/team/app` for exactly one repository; `prod/team/*` for every
/// repository under `prod/team/`. A trailing `/*` is the only wildcard; a stage cannot be named
/// `global`. [`fmt::Display`] writes the form [`FromStr`] reads (`*` for global).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everything: every stage, every repository, and registry-wide operations.
    Global,
    /// One stage and all its repositories.
    Stage(StageName),
    /// Exactly one repository (`prod/team/app`).
    Repository(RepoName),
    /// Every repository whose name starts with this name and a `/` (`prod/team/*` is held as
    /// `prod/team`); the named repository itself is not included.
    RepositoriesUnder(RepoName),
}

/// Why a scope string was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope text is empty.
    #[error(
        "empty scope: write `*` for everything, a stage such as `prod`, or repositories such as `prod/team/*`"
    )]
    Empty,
    /// The first segment is not a valid stage name.
    #[error(
        "invalid scope {scope:?}: {stage:?} is not a stage name (one lowercase component such as dev or prod)"
    )]
    BadStage {
        /// The rejected scope (truncated).
        scope: String,
        /// The offending stage segment (truncated).
        stage: String,
    },
    /// The repository path after the stage breaks the OCI name grammar.
    #[error("invalid scope {scope:?}: {source}")]
    BadPath {
        /// The rejected scope (truncated).
        scope: String,
        /// What the repository-name parser said.
        source: Error,
    },
    /// A `*` appears somewhere other than a final `/*` or the whole scope.
    #[error(
        "invalid scope {scope:?}: `*` is allowed only as the whole scope or as a final `/*` after a repository path, e.g. prod/team/*"
    )]
    MisplacedWildcard {
        /// The rejected scope (truncated).
        scope: String,
    },
    /// `<stage>/*` was written; the whole stage is spelled as the bare stage name.
    #[error("invalid scope {scope:?}: write {stage} to cover the whole stage")]
    WholeStageWildcard {
        /// The rejected scope (truncated).
        scope: String,
        /// The stage that was meant.
        stage: StageName,
    },
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, ScopeError> {
        if text.is_empty() {
            return Err(ScopeError::Empty);
        }
        if text == "*" || text == "global" {
            return Ok(Scope::Global);
        }
        let (body, subtree) = match text.strip_suffix("/*") {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(ScopeError::MisplacedWildcard {
                scope: truncated(text),
            });
        }
        let stage_text = body.split('/').next().unwrap_or(body);
        let stage: StageName = stage_text.parse().map_err(|_| ScopeError::BadStage {
            scope: truncated(text),
            stage: truncated(stage_text),
        })?;
        if stage_text.len() == body.len() {
            return if subtree {
                Err(ScopeError::WholeStageWildcard {
                    scope: truncated(text),
                    stage,
                })
            } else {
                Ok(Scope::Stage(stage))
            };
        }
        let repo: RepoName = body.parse().map_err(|source| ScopeError::BadPath {
            scope: truncated(text),
            source,
        })?;
        Ok(if subtree {
            Scope::RepositoriesUnder(repo)
        } else {
            Scope::Repository(repo)
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("*"),
            Self::Stage(stage) => stage.fmt(f),
            Self::Repository(repo) => repo.fmt(f),
            Self::RepositoriesUnder(base) => write!(f, "{base}/*"),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Scope {
    /// Whether the scope includes `repo`.
    pub fn covers(&self, repo: &RepoName) -> bool {
        match self {
            Self::Global => true,
            Self::Stage(stage) => repo.stage() == *stage,
            Self::Repository(exact) => repo == exact,
            Self::RepositoriesUnder(base) => {
                repo.stage() == base.stage()
                    && repo
                        .path()
                        .strip_prefix(base.path())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }

    /// Whether the scope includes the whole of `stage`, as stage-wide permissions such as
    /// [`Permission::Approve`] need. Only [`Scope::Global`] and that [`Scope::Stage`] do; a scope
    /// over some repositories of the stage does not.
    pub fn covers_stage(&self, stage: &StageName) -> bool {
        match self {
            Self::Global => true,
            Self::Stage(own) => own == stage,
            Self::Repository(_) | Self::RepositoriesUnder(_) => false,
        }
    }

    /// Whether everything this scope includes is also included by `other`: an access admin
    /// scoped to `other` may hand out grants in this scope.
    pub fn is_within(&self, other: &Scope) -> bool {
        match self {
            Self::Global => *other == Self::Global,
            Self::Stage(stage) => other.covers_stage(stage),
            Self::Repository(repo) => other.covers(repo),
            // Everything under `base/` lies inside `other` exactly when `other` is the same
            // subtree or a wider scope that holds `base` itself; a single repository never does.
            Self::RepositoriesUnder(base) => match other {
                Self::RepositoriesUnder(other_base) if other_base == base => true,
                Self::Repository(_) => false,
                _ => other.covers(base),
            },
        }
    }

    /// Whether the scope includes `target`.
    fn covers_target(&self, target: &PermissionTarget) -> bool {
        match target {
            PermissionTarget::Global => *self == Self::Global,
            PermissionTarget::Stage(stage) => self.covers_stage(stage),
            PermissionTarget::Repository(repo) => self.covers(repo),
        }
    }
}

/// A role held in a scope, optionally until a moment (just-in-time access).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// Where it applies.
    pub scope: Scope,
    /// When it stops applying (Unix ms, exclusive); `None` for a standing grant.
    pub expires_at_millis: Option<i64>,
}

impl Grant {
    /// Whether the grant applies at `now_millis`: standing, or not yet at its expiry.
    pub fn is_active(&self, now_millis: i64) -> bool {
        self.expires_at_millis
            .is_none_or(|expires| now_millis < expires)
    }
}

/// The permissions of the grants that are active at `now_millis` and whose scope satisfies
/// `applies`.
fn active_permissions(
    grants: &[Grant],
    now_millis: i64,
    applies: impl Fn(&Scope) -> bool,
) -> BTreeSet<Permission> {
    grants
        .iter()
        .filter(|grant| grant.is_active(now_millis) && applies(&grant.scope))
        .flat_map(|grant| permissions(grant.role).iter().copied())
        .collect()
}

/// The registry actions a principal holding `grants` may perform on `repo`, which lives in a
/// stage of mode `mode` (from [`Stages::stage_of`]).
///
/// In a push stage: pull with [`Permission::Pull`], push with [`Permission::Push`], delete with
/// [`Permission::Delete`]. In a gated stage: pull with [`Permission::PullGated`], and never push
/// or delete, whatever the role. Signatures and attestations are pushes, so they need
/// [`Permission::Push`] too.
pub fn registry_actions(
    grants: &[Grant],
    repo: &RepoName,
    mode: StageMode,
    now_millis: i64,
) -> BTreeSet<Action> {
    let held = active_permissions(grants, now_millis, |scope| scope.covers(repo));
    let needed = |action| match (mode, action) {
        (StageMode::Push, Action::Pull) => Some(Permission::Pull),
        (StageMode::Push, Action::Push) => Some(Permission::Push),
        (StageMode::Push, Action::Delete) => Some(Permission::Delete),
        (StageMode::Gated, Action::Pull) => Some(Permission::PullGated),
        (StageMode::Gated, Action::Push | Action::Delete) => None,
    };
    Action::ALL
        .into_iter()
        .filter(|&action| needed(action).is_some_and(|p| held.contains(&p)))
        .collect()
}

/// What a non-registry permission is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionTarget {
    /// Something registry-wide (the catalog, principals, keys): only globally scoped grants count.
    Global,
    /// Something stage-wide (approving promotions into a stage): global grants and grants on that
    /// stage count.
    Stage(StageName),
    /// One repository: every grant whose scope covers it counts.
    Repository(RepoName),
}

/// Whether some grant active at `now_millis` gives `permission` in a scope covering `target`.
///
/// Reading and writing content goes through [`registry_actions`], which also applies the stage
/// rules; this answers the other questions (may this principal approve into prod?).
pub fn has_permission(
    grants: &[Grant],
    permission: Permission,
    target: &PermissionTarget,
    now_millis: i64,
) -> bool {
    active_permissions(grants, now_millis, |scope| scope.covers_target(target))
        .contains(&permission)
}

/// Whether some grant active at `now_millis` gives `permission` in a scope that includes all of
/// `scope` ([`Scope::is_within`]): a key-admin scoped to `prod/team/*` administers what lies in
/// `prod/team/*`, and nothing wider.
pub fn has_permission_within(
    grants: &[Grant],
    permission: Permission,
    scope: &Scope,
    now_millis: i64,
) -> bool {
    grants.iter().any(|grant| {
        grant.is_active(now_millis)
            && permissions(grant.role).contains(&permission)
            && scope.is_within(&grant.scope)
    })
}

/// Longest single Docker token scope accepted, to bound what a request can make us parse.
pub const MAX_REQUESTED_SCOPE_LEN: usize = 1024;

/// One scope a Docker client asked a token for, `type:name:action[,action...]` (see
/// <https://distribution.github.io/distribution/spec/auth/scope/>).
///
/// The type ends at the first `:` and the actions start after the last, so a name may hold a
/// `:` (a registry host with a port). Empty action entries are dropped. The name is checked only
/// when access is decided in [`grant_scopes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedScope {
    /// The resource type, e.g. `repository` or `registry`.
    pub resource_type: String,
    /// The resource name, e.g. `dev/team/app` or `catalog`.
    pub name: String,
    /// The actions asked for, e.g. `pull`, `push`, `*`.
    pub actions: Vec<String>,
}

/// Why a Docker token scope was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestedScopeError {
    /// The scope is longer than [`MAX_REQUESTED_SCOPE_LEN`].
    #[error("token scope is {len} bytes long; at most {MAX_REQUESTED_SCOPE_LEN} are accepted")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The scope lacks the two `:` separating type, name and actions.
    #[error(
        "invalid token scope {scope:?}: expected type:name:actions, e.g. repository:dev/app:pull"
    )]
    MissingSeparator {
        /// The rejected scope (truncated).
        scope: String,
    },
    /// The resource type is not `[a-z0-9]+` with an optional `(class)`.
    #[error(
        "invalid token scope {scope:?}: resource type {resource_type:?} must be lowercase letters and digits, optionally followed by (class)"
    )]
    BadResourceType {
        /// The rejected scope (truncated).
        scope: String,
        /// The offending type (truncated).
        resource_type: String,
    },
    /// The resource name is empty or holds whitespace or control characters.
    #[error(
        "invalid token scope {scope:?}: the resource name must be non-empty, without whitespace or control characters"
    )]
    BadName {
        /// The rejected scope (truncated).
        scope: String,
    },
    /// An action is neither `*` nor lowercase letters.
    #[error("invalid token scope {scope:?}: action {action:?} must be lowercase letters or *")]
    BadAction {
        /// The rejected scope (truncated).
        scope: String,
        /// The offending action (truncated).
        action: String,
    },
}

/// Whether `text` is `[a-z0-9]+`.
fn is_lower_alnum(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `text` is `[a-z0-9]+` optionally followed by `([a-z0-9]+)`.
fn is_resource_type(text: &str) -> bool {
    match text.split_once('(') {
        None => is_lower_alnum(text),
        Some((value, class)) => {
            is_lower_alnum(value) && class.strip_suffix(')').is_some_and(is_lower_alnum)
        }
    }
}

impl FromStr for RequestedScope {
    type Err = RequestedScopeError;

    fn from_str(text: &str) -> Result<Self, RequestedScopeError> {
        if text.len() > MAX_REQUESTED_SCOPE_LEN {
            return Err(RequestedScopeError::TooLong { len: text.len() });
        }
        let scope = || truncated(text);
        let missing = || RequestedScopeError::MissingSeparator { scope: scope() };
        let (resource_type, rest) = text.split_once(':').ok_or_else(missing)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(missing)?;
        if !is_resource_type(resource_type) {
            return Err(RequestedScopeError::BadResourceType {
                scope: scope(),
                resource_type: truncated(resource_type),
            });
        }
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RequestedScopeError::BadName { scope: scope() });
        }
        let actions = actions
            .split(',')
            .filter(|action| !action.is_empty())
            .map(|action| {
                if action == "*" || action.bytes().all(|b| b.is_ascii_lowercase()) {
                    Ok(action.to_string())
                } else {
                    Err(RequestedScopeError::BadAction {
                        scope: scope(),
                        action: truncated(action),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions,
        })
    }
}

impl fmt::Display for RequestedScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

/// Parses a token request's `scope` parameter, which may hold several scopes separated by
/// spaces; the first malformed one rejects the whole parameter.
pub fn parse_requested_scopes(text: &str) -> Result<Vec<RequestedScope>, RequestedScopeError> {
    text.split(' ')
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect()
}

/// One entry of a token's `access` claim: what the token allows on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedAccess {
    /// The resource type, as requested.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The resource name, as requested.
    pub name: String,
    /// The granted actions: requested ones the principal holds, never others.
    pub actions: Vec<String>,
}

/// Decides which of the `requested` Docker token scopes a principal holding `grants` receives.
///
/// Each entry is the intersection of what was asked and what is allowed, never more:
/// - `repository:<name>:<actions>`: `name` must be a [`RepoName`] in a configured stage; the
///   granted actions are the requested `pull`/`push`/`delete` among [`registry_actions`], and `*`
///   stands for all of those. Unknown actions are dropped.
/// - `registry:catalog:*`: granted as `*` only to a principal with a globally scoped
///   [`Permission::Pull`] grant, since the catalog lists repositories of every stage.
/// - Anything else (other types, resource classes such as `repository(plugin)`) is not granted.
///
/// A scope whose intersection is empty is omitted from the result rather than listed with no
/// actions. Entries are returned in request order.
pub fn grant_scopes(
    requested: &[RequestedScope],
    grants: &[Grant],
    stages: &Stages,
    now_millis: i64,
) -> Vec<GrantedAccess> {
    requested
        .iter()
        .filter_map(|scope| {
            let actions = match (scope.resource_type.as_str(), scope.name.as_str()) {
                ("repository", name) => {
                    granted_repository_actions(scope, name, grants, stages, now_millis)
                }
                ("registry", "catalog") => {
                    let wants_all = scope.actions.iter().any(|a| a == "*");
                    let global_pull = has_permission(
                        grants,
                        Permission::Pull,
                        &PermissionTarget::Global,
                        now_millis,
                    );
                    if wants_all && global_pull {
                        vec!["*".to_string()]
                    } else {
                        Vec::new()
                    }
                }
                _ => Vec::new(),
            };
            (!actions.is_empty()).then(|| GrantedAccess {
                resource_type: scope.resource_type.clone(),
                name: scope.name.clone(),
                actions,
            })
        })
        .collect()
}

/// The actions of a `repository` scope that are both requested and allowed, in request order,
/// each once; empty if the name is not a repository in a configured stage.
fn granted_repository_actions(
    scope: &RequestedScope,
    name: &str,
    grants: &[Grant],
    stages: &Stages,
    now_millis: i64,
) -> Vec<String> {
    let Ok(repo) = name.parse::<RepoName>() else {
        return Vec::new();
    };
    let Ok(stage) = stages.stage_of(&repo) else {
        return Vec::new();
    };
    let allowed = registry_actions(grants, &repo, stage.mode, now_millis);
    let mut granted: Vec<String> = Vec::new();
    for requested in &scope.actions {
        let matching = allowed
            .iter()
            .filter(|action| requested == "*" || requested == action.as_str());
        for action in matching {
            if !granted.iter().any(|g| g == action.as_str()) {
                granted.push(action.as_str().to_string());
            }
        }
    }
    granted
}

/// Two roles one principal may not hold together (separation of duties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExclusivePair(pub Role, pub Role);

impl ExclusivePair {
    /// The role that may not be held alongside `role`, if `role` is part of this pair.
    fn partner_of(self, role: Role) -> Option<Role> {
        if self.0 == role {
            Some(self.1)
        } else if self.1 == role {
            Some(self.0)
        } else {
            None
        }
    }
}

/// The pairs enforced unless configured otherwise: whoever manages the trust keys does not also
/// approve what those keys vouch for.
pub fn default_exclusive_pairs() -> Vec<ExclusivePair> {
    vec![ExclusivePair(Role::KeyAdmin, Role::Approver)]
}

/// A separation-of-duties rule that a grant or decision would break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRuleViolation {
    /// A principal tried to grant a role to themselves.
    #[error(
        "{principal} cannot grant role {role} to themselves: nobody grants themselves a role, another access admin must"
    )]
    SelfGrant {
        /// Who tried.
        principal: String,
        /// The role.
        role: Role,
    },
    /// The grantee already holds a role configured as mutually exclusive with the new one.
    #[error(
        "role {role} cannot be granted to a holder of role {held}: {role} and {held} are configured as mutually exclusive (separation of duties)"
    )]
    MutuallyExclusive {
        /// The role being granted.
        role: Role,
        /// The role already held that excludes it.
        held: Role,
    },
    /// A principal tried to decide their own just-in-time access request.
    #[error(
        "{principal} cannot decide their own access request: someone else must approve or deny it"
    )]
    SelfApproval {
        /// The requester, who was also the decider.
        principal: String,
    },
    /// An access-admin tried to reset their own password (which needs no current password).
    #[error(
        "{principal} cannot reset their own password: change it with `airlock users passwd`, which asks for the current one"
    )]
    SelfPasswordReset {
        /// The access-admin.
        principal: String,
    },
    /// An access-admin tried to reset another access-admin's password.
    #[error(
        "{principal} cannot reset the password of {target}, who is an access-admin: one access-admin must not be able to take over another's account; {target} changes it with `airlock users passwd`, or, if it is lost, {target}'s access-admin role is revoked first (recorded in the audit log) and the password reset then"
    )]
    AccessAdminPasswordReset {
        /// The access-admin resetting.
        principal: String,
        /// The access-admin whose password it was.
        target: String,
    },
}

/// Checks the separation-of-duties rules for access-admin `resetter` resetting the password of
/// `target`, who holds `target_roles`: nobody resets their own password (a reset needs no current
/// password, so a stolen session could otherwise take the account over for good), and nobody
/// resets another access-admin's (that would let one access-admin act as two).
pub fn check_password_reset(
    resetter: &str,
    target: &str,
    target_roles: &[Role],
) -> Result<(), AccessRuleViolation> {
    if resetter == target {
        return Err(AccessRuleViolation::SelfPasswordReset {
            principal: resetter.into(),
        });
    }
    if target_roles.contains(&Role::AccessAdmin) {
        return Err(AccessRuleViolation::AccessAdminPasswordReset {
            principal: resetter.into(),
            target: target.into(),
        });
    }
    Ok(())
}

/// Checks the separation-of-duties rules for `granter` giving `role` to `grantee`, who already
/// holds `grantee_current_roles`: nobody grants themselves a role, and nobody holds both roles of
/// an `exclusive` pair. Scope containment and the granter's own permission are checked elsewhere.
pub fn check_role_grant(
    granter: &str,
    grantee: &str,
    role: Role,
    grantee_current_roles: &[Role],
    exclusive: &[ExclusivePair],
) -> Result<(), AccessRuleViolation> {
    if granter == grantee {
        return Err(AccessRuleViolation::SelfGrant {
            principal: granter.to_string(),
            role,
        });
    }
    let conflict = exclusive
        .iter()
        .filter_map(|pair| pair.partner_of(role))
        .find(|partner| grantee_current_roles.contains(partner));
    match conflict {
        Some(held) => Err(AccessRuleViolation::MutuallyExclusive { role, held }),
        None => Ok(()),
    }
}

/// Checks that the `decider` of a just-in-time access request is not its `requester`.
pub fn check_access_decision(requester: &str, decider: &str) -> Result<(), AccessRuleViolation> {
    if requester == decider {
        Err(AccessRuleViolation::SelfApproval {
            principal: requester.to_string(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn repo(text: &str) -> RepoName {
        text.parse().unwrap()
    }

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    fn stages() -> Stages {
        Stages::new(Stages::default_pipeline()).unwrap()
    }

    fn grant(role: Role, scope_text: &str) -> Grant {
        Grant {
            role,
            scope: scope(scope_text),
            expires_at_millis: None,
        }
    }

    fn actions_on(grants: &[Grant], name: &str) -> BTreeSet<Action> {
        let repo = repo(name);
        let mode = stages().stage_of(&repo).unwrap().mode;
        registry_actions(grants, &repo, mode, NOW)
    }

    fn set(actions: &[Action]) -> BTreeSet<Action> {
        actions.iter().copied().collect()
    }

    fn requested(text: &str) -> RequestedScope {
        text.parse().unwrap()
    }

    #[test]
    fn permission_table_is_pinned() {
        use Permission::*;
        let expected: [(Role, &[Permission]); 10] = [
            (Role::Reader, &[Pull, PullGated]),
            (Role::Developer, &[Pull, PullGated, Push, Delete]),
            (Role::Builder, &[Pull, Push, Attest]),
            (Role::Promoter, &[Pull, PullGated, Promote]),
            (Role::Approver, &[Pull, PullGated, Approve]),
            (Role::Deployer, &[PullGated]),
            (Role::KeyAdmin, &[ManageKeys]),
            (Role::AccessAdmin, &[ManageAccess, ReadAudit]),
            (Role::Auditor, &[ReadAudit, Pull, PullGated]),
            (Role::BreakGlass, &[BreakGlass]),
        ];
        for (role, perms) in expected {
            let got: BTreeSet<_> = permissions(role).iter().copied().collect();
            let want: BTreeSet<_> = perms.iter().copied().collect();
            assert_eq!(got, want, "{role}");
            assert_eq!(
                permissions(role).len(),
                perms.len(),
                "{role} lists a duplicate"
            );
        }
    }

    #[test]
    fn markdown_table_lists_every_role_and_permission() {
        let md = permission_table_markdown();
        assert!(md.contains("| `developer` | `pull`, `pull-gated`, `push`, `delete` |"));
        assert!(md.contains("| `deployer` | `pull-gated` |"));
        for role in Role::ALL {
            assert!(md.contains(&format!("| `{role}` |")), "{role}");
        }
        for permission in Permission::ALL {
            assert!(md.contains(&format!("| `{permission}` |")), "{permission}");
        }
    }

    #[test]
    fn role_text_is_kebab_case_everywhere() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert_eq!(Role::KeyAdmin.as_str(), "key-admin");
        assert_eq!(Role::AccessAdmin.as_str(), "access-admin");
        assert_eq!(Role::BreakGlass.as_str(), "break-glass");
        for permission in Permission::ALL {
            let json = serde_json::to_string(&permission).unwrap();
            assert_eq!(json, format!("\"{}\"", permission.as_str()));
        }
    }

    #[test]
    fn unknown_roles_are_rejected_with_the_valid_ones_listed() {
        for bad in ["", "Reader", "key_admin", "keyadmin", "admin", " reader"] {
            let err = bad.parse::<Role>().unwrap_err();
            assert!(err.to_string().contains("break-glass"), "{err}");
        }
    }

    #[test]
    fn each_role_acts_on_dev_and_prod_as_the_table_says() {
        use Action::*;
        let cases: [(Role, &[Action], &[Action]); 10] = [
            (Role::Reader, &[Pull], &[Pull]),
            (Role::Developer, &[Pull, Push, Delete], &[Pull]),
            (Role::Builder, &[Pull, Push], &[]),
            (Role::Promoter, &[Pull], &[Pull]),
            (Role::Approver, &[Pull], &[Pull]),
            (Role::Deployer, &[], &[Pull]),
            (Role::KeyAdmin, &[], &[]),
            (Role::AccessAdmin, &[], &[]),
            (Role::Auditor, &[Pull], &[Pull]),
            (Role::BreakGlass, &[], &[]),
        ];
        for (role, dev, prod) in cases {
            let grants = [grant(role, "*")];
            assert_eq!(
                actions_on(&grants, "dev/team/app"),
                set(dev),
                "{role} on dev"
            );
            assert_eq!(
                actions_on(&grants, "prod/team/app"),
                set(prod),
                "{role} on prod"
            );
            assert_eq!(
                actions_on(&grants, "staging/team/app"),
                set(prod),
                "{role} on staging"
            );
        }
    }

    #[test]
    fn nobody_pushes_or_deletes_in_gated_stages() {
        let everything: Vec<Grant> = Role::ALL.into_iter().map(|r| grant(r, "*")).collect();
        assert_eq!(
            actions_on(&everything, "prod/team/app"),
            set(&[Action::Pull])
        );
        assert_eq!(
            actions_on(&everything, "staging/team/app"),
            set(&[Action::Pull])
        );
        let prod_scoped: Vec<Grant> = Role::ALL.into_iter().map(|r| grant(r, "prod")).collect();
        assert_eq!(
            actions_on(&prod_scoped, "prod/team/app"),
            set(&[Action::Pull])
        );
    }

    #[test]
    fn actions_follow_the_grant_scope() {
        let grants = [grant(Role::Developer, "dev/team/*")];
        assert_eq!(actions_on(&grants, "dev/team/app").len(), 3);
        assert_eq!(actions_on(&grants, "dev/team/a/b").len(), 3);
        assert!(actions_on(&grants, "dev/teamx/app").is_empty());
        assert!(actions_on(&grants, "dev/team").is_empty());
        assert!(actions_on(&grants, "prod/team/app").is_empty());

        let grants = [grant(Role::Developer, "dev/team/app")];
        assert_eq!(actions_on(&grants, "dev/team/app").len(), 3);
        assert!(actions_on(&grants, "dev/team/app2").is_empty());
        assert!(actions_on(&grants, "dev/team/app/sub").is_empty());
    }

    #[test]
    fn expired_grants_are_ignored() {
        let mut developer = grant(Role::Developer, "*");
        developer.expires_at_millis = Some(NOW);
        assert!(!developer.is_active(NOW));
        assert!(developer.is_active(NOW - 1));
        assert!(actions_on(std::slice::from_ref(&developer), "dev/team/app").is_empty());
        assert!(!has_permission(
            std::slice::from_ref(&developer),
            Permission::Pull,
            &PermissionTarget::Global,
            NOW
        ));
        developer.expires_at_millis = Some(NOW + 1);
        assert_eq!(actions_on(&[developer], "dev/team/app").len(), 3);
        assert!(grant(Role::Reader, "*").is_active(i64::MAX));
    }

    #[test]
    fn valid_scopes_parse_and_round_trip() {
        assert_eq!(scope("*"), Scope::Global);
        assert_eq!(scope("global"), Scope::Global);
        assert_eq!(scope("prod"), Scope::Stage("prod".parse().unwrap()));
        assert_eq!(
            scope("prod/team/*"),
            Scope::RepositoriesUnder(repo("prod/team"))
        );
        assert_eq!(
            scope("prod/team/app"),
            Scope::Repository(repo("prod/team/app"))
        );
        for text in ["*", "prod", "prod/team/*", "prod/team/app", "dev/a/b.c/*"] {
            assert_eq!(scope(text).to_string(), text);
            let json = serde_json::to_string(&scope(text)).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope(text));
        }
        assert_eq!(scope("global").to_string(), "*");
        assert!(serde_json::from_str::<Scope>("\"prod/*/x\"").is_err());
    }

    #[test]
    fn invalid_scopes_are_rejected_with_the_problem_named() {
        let err = |text: &str| text.parse::<Scope>().unwrap_err();
        assert_eq!(err(""), ScopeError::Empty);
        assert!(matches!(err("Prod"), ScopeError::BadStage { .. }));
        assert!(matches!(err("../x"), ScopeError::BadStage { .. }));
        assert!(matches!(err("/prod/x"), ScopeError::BadStage { .. }));
        assert!(matches!(err("prod/"), ScopeError::BadPath { .. }));
        assert!(matches!(err("prod//a"), ScopeError::BadPath { .. }));
        assert!(matches!(err("prod/team/"), ScopeError::BadPath { .. }));
        assert!(matches!(err("prod/Team/app"), ScopeError::BadPath { .. }));
        assert!(matches!(err("prod/team/../x"), ScopeError::BadPath { .. }));
        assert!(matches!(err("prod//*"), ScopeError::BadPath { .. }));
        assert!(matches!(
            err("prod/*/x"),
            ScopeError::MisplacedWildcard { .. }
        ));
        assert!(matches!(
            err("prod/team/**"),
            ScopeError::MisplacedWildcard { .. }
        ));
        assert!(matches!(
            err("prod/team*"),
            ScopeError::MisplacedWildcard { .. }
        ));
        assert!(matches!(err("**"), ScopeError::MisplacedWildcard { .. }));
        assert!(matches!(err("*/*"), ScopeError::MisplacedWildcard { .. }));
        assert!(matches!(
            err("prod/*"),
            ScopeError::WholeStageWildcard { .. }
        ));
        assert!(err("prod/*").to_string().contains("write prod"));
        assert!(err("prod/Team/app").to_string().contains("path component"));
    }

    #[test]
    fn scope_covers_only_its_repositories() {
        let team = scope("prod/team/*");
        assert!(team.covers(&repo("prod/team/app")));
        assert!(team.covers(&repo("prod/team/a/b")));
        assert!(!team.covers(&repo("prod/team")));
        assert!(!team.covers(&repo("prod/teamx/app")));
        assert!(!team.covers(&repo("staging/team/app")));

        let exact = scope("prod/team/app");
        assert!(exact.covers(&repo("prod/team/app")));
        assert!(!exact.covers(&repo("prod/team/app/x")));
        assert!(!exact.covers(&repo("prod/team/apps")));
        assert!(!exact.covers(&repo("dev/team/app")));

        assert!(scope("prod").covers(&repo("prod/x")));
        assert!(!scope("prod").covers(&repo("production/x")));
        assert!(Scope::Global.covers(&repo("anything/x")));
    }

    #[test]
    fn only_global_and_stage_scopes_cover_a_stage() {
        let prod: StageName = "prod".parse().unwrap();
        assert!(Scope::Global.covers_stage(&prod));
        assert!(scope("prod").covers_stage(&prod));
        assert!(!scope("dev").covers_stage(&prod));
        assert!(!scope("prod/team/*").covers_stage(&prod));
        assert!(!scope("prod/team/app").covers_stage(&prod));
    }

    #[test]
    fn a_permission_within_a_scope_needs_one_grant_that_holds_all_of_it() {
        let grants = [
            grant(Role::KeyAdmin, "prod/team/*"),
            grant(Role::KeyAdmin, "dev/team/*"),
            grant(Role::Reader, "*"),
        ];
        let within = |s: &str| has_permission_within(&grants, Permission::ManageKeys, &scope(s), 0);
        assert!(within("prod/team/*"));
        assert!(within("prod/team/app"));
        assert!(within("dev/team/a/*"));
        assert!(!within("prod/other/*"));
        assert!(!within("prod"), "a subtree does not hold the whole stage");
        assert!(!within("*"));
        assert!(!has_permission_within(
            &grants,
            Permission::ManageAccess,
            &scope("prod/team/app"),
            0
        ));
        let expired = [Grant {
            role: Role::KeyAdmin,
            scope: Scope::Global,
            expires_at_millis: Some(10),
        }];
        assert!(has_permission_within(
            &expired,
            Permission::ManageKeys,
            &scope("prod"),
            9
        ));
        assert!(!has_permission_within(
            &expired,
            Permission::ManageKeys,
            &scope("prod"),
            10
        ));
    }

    #[test]
    fn scope_containment() {
        let within = |a: &str, b: &str| scope(a).is_within(&scope(b));
        assert!(within("*", "*"));
        assert!(within("prod", "*"));
        assert!(!within("*", "prod"));
        assert!(within("prod", "prod"));
        assert!(!within("prod", "dev"));
        assert!(!within("prod", "prod/team/*"));
        assert!(within("prod/team/*", "prod"));
        assert!(within("prod/team/*", "prod/team/*"));
        assert!(within("prod/team/a/*", "prod/team/*"));
        assert!(!within("prod/team/*", "prod/team/a/*"));
        assert!(!within("prod/teamx/*", "prod/team/*"));
        assert!(!within("prod/team/*", "prod/team"));
        assert!(!within("prod/team/*", "dev"));
        assert!(within("prod/team/app", "prod/team/*"));
        assert!(within("prod/team/app", "prod/team/app"));
        assert!(!within("prod/team/app", "prod/team/other"));
        assert!(!within("prod/team/app", "staging"));
    }

    #[test]
    fn permissions_apply_to_targets_their_scope_covers() {
        let prod = PermissionTarget::Stage("prod".parse().unwrap());
        let staging = PermissionTarget::Stage("staging".parse().unwrap());
        let app = PermissionTarget::Repository(repo("prod/team/app"));

        let approver = [grant(Role::Approver, "prod")];
        assert!(has_permission(&approver, Permission::Approve, &prod, NOW));
        assert!(has_permission(&approver, Permission::Approve, &app, NOW));
        assert!(!has_permission(
            &approver,
            Permission::Approve,
            &staging,
            NOW
        ));
        assert!(!has_permission(
            &approver,
            Permission::Approve,
            &PermissionTarget::Global,
            NOW
        ));
        assert!(!has_permission(&approver, Permission::Promote, &prod, NOW));

        let repo_approver = [grant(Role::Approver, "prod/team/*")];
        assert!(has_permission(
            &repo_approver,
            Permission::Approve,
            &app,
            NOW
        ));
        assert!(!has_permission(
            &repo_approver,
            Permission::Approve,
            &prod,
            NOW
        ));

        let global = [grant(Role::KeyAdmin, "*")];
        for target in [&PermissionTarget::Global, &prod, &app] {
            assert!(has_permission(&global, Permission::ManageKeys, target, NOW));
        }
        assert!(!has_permission(&[], Permission::Pull, &app, NOW));
    }

    #[test]
    fn requested_scopes_parse() {
        let scope = requested("repository:dev/team/app:pull,push");
        assert_eq!(scope.resource_type, "repository");
        assert_eq!(scope.name, "dev/team/app");
        assert_eq!(scope.actions, ["pull", "push"]);
        assert_eq!(scope.to_string(), "repository:dev/team/app:pull,push");

        let with_port = requested("repository:localhost:5000/dev/app:pull");
        assert_eq!(with_port.name, "localhost:5000/dev/app");
        assert_eq!(with_port.actions, ["pull"]);

        let catalog = requested("registry:catalog:*");
        assert_eq!(
            (catalog.name.as_str(), catalog.actions.as_slice()),
            ("catalog", &["*".to_string()][..])
        );

        assert!(requested("repository:dev/app:").actions.is_empty());
        assert_eq!(
            requested("repository:dev/app:pull,,push").actions,
            ["pull", "push"]
        );
        assert_eq!(
            requested("repository(plugin):dev/app:pull").resource_type,
            "repository(plugin)"
        );

        let many = parse_requested_scopes("repository:dev/a:pull  registry:catalog:*").unwrap();
        assert_eq!(many.len(), 2);
        assert!(parse_requested_scopes("repository:dev/a:pull bogus").is_err());
    }

    #[test]
    fn malformed_requested_scopes_are_rejected() {
        use RequestedScopeError as E;
        let err = |text: &str| text.parse::<RequestedScope>().unwrap_err();
        assert!(matches!(err(""), E::MissingSeparator { .. }));
        assert!(matches!(err("repository"), E::MissingSeparator { .. }));
        assert!(matches!(
            err("repository:dev/app"),
            E::MissingSeparator { .. }
        ));
        assert!(matches!(err(":dev/app:pull"), E::BadResourceType { .. }));
        assert!(matches!(
            err("Repository:dev/app:pull"),
            E::BadResourceType { .. }
        ));
        assert!(matches!(
            err("repository(:dev/app:pull"),
            E::BadResourceType { .. }
        ));
        assert!(matches!(
            err("repository():dev/app:pull"),
            E::BadResourceType { .. }
        ));
        assert!(matches!(err("repository::pull"), E::BadName { .. }));
        assert!(matches!(err("repository:dev app:pull"), E::BadName { .. }));
        assert!(matches!(
            err("repository:dev/app:PULL"),
            E::BadAction { .. }
        ));
        assert!(matches!(
            err("repository:dev/app:pull;push"),
            E::BadAction { .. }
        ));
        assert!(matches!(err("repository:dev/app:**"), E::BadAction { .. }));
        let long = format!(
            "repository:dev/{}:pull",
            "a".repeat(MAX_REQUESTED_SCOPE_LEN)
        );
        assert!(matches!(err(&long), E::TooLong { .. }));
    }

    fn granted(grants: &[Grant], scopes: &[&str]) -> Vec<GrantedAccess> {
        let requested: Vec<_> = scopes.iter().map(|s| requested(s)).collect();
        grant_scopes(&requested, grants, &stages(), NOW)
    }

    fn access(resource_type: &str, name: &str, actions: &[&str]) -> GrantedAccess {
        GrantedAccess {
            resource_type: resource_type.into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn developer_asking_to_push_to_prod_gets_pull_only() {
        let developer = [grant(Role::Developer, "*")];
        assert_eq!(
            granted(&developer, &["repository:prod/team/app:pull,push"]),
            [access("repository", "prod/team/app", &["pull"])]
        );
        assert_eq!(
            granted(&developer, &["repository:dev/team/app:push,pull"]),
            [access("repository", "dev/team/app", &["push", "pull"])]
        );
        assert!(granted(&developer, &["repository:prod/team/app:push,delete"]).is_empty());
    }

    #[test]
    fn unknown_stages_malformed_names_and_other_types_get_nothing() {
        let developer = [grant(Role::Developer, "*")];
        for scope in [
            "repository:qa/team/app:pull",
            "repository:Dev/team/app:pull",
            "repository:dev:pull",
            "repository:dev//app:pull",
            "repository:localhost:5000/dev/app:pull",
            "repository(plugin):dev/team/app:pull",
            "registry:other:*",
            "widget:dev/team/app:pull",
        ] {
            assert!(granted(&developer, &[scope]).is_empty(), "{scope}");
        }
    }

    #[test]
    fn star_expands_to_allowed_actions_and_unknown_actions_are_dropped() {
        let developer = [grant(Role::Developer, "*")];
        assert_eq!(
            granted(&developer, &["repository:dev/team/app:*"]),
            [access(
                "repository",
                "dev/team/app",
                &["pull", "push", "delete"]
            )]
        );
        assert_eq!(
            granted(&developer, &["repository:prod/team/app:*"]),
            [access("repository", "prod/team/app", &["pull"])]
        );
        assert_eq!(
            granted(&developer, &["repository:dev/team/app:fly,pull,pull,*"]),
            [access(
                "repository",
                "dev/team/app",
                &["pull", "push", "delete"]
            )]
        );
        let builder = [grant(Role::Builder, "*")];
        assert_eq!(
            granted(&builder, &["repository:dev/team/app:*"]),
            [access("repository", "dev/team/app", &["pull", "push"])]
        );
    }

    #[test]
    fn catalog_needs_a_global_pull_grant() {
        let catalog = ["registry:catalog:*"];
        let star = [access("registry", "catalog", &["*"])];
        assert_eq!(granted(&[grant(Role::Reader, "*")], &catalog), star);
        assert_eq!(granted(&[grant(Role::Developer, "global")], &catalog), star);
        assert!(granted(&[grant(Role::Reader, "dev")], &catalog).is_empty());
        assert!(granted(&[grant(Role::Reader, "dev/team/*")], &catalog).is_empty());
        assert!(granted(&[grant(Role::Deployer, "*")], &catalog).is_empty());
        assert!(granted(&[grant(Role::KeyAdmin, "*")], &catalog).is_empty());
        assert!(granted(&[grant(Role::Reader, "*")], &["registry:catalog:pull"]).is_empty());
    }

    #[test]
    fn granted_access_serializes_as_a_token_access_claim() {
        let json = serde_json::to_value(access("repository", "dev/a", &["pull"])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "repository", "name": "dev/a", "actions": ["pull"]})
        );
    }

    #[test]
    fn nobody_grants_themselves_a_role() {
        let err = check_role_grant(
            "alice",
            "alice",
            Role::Reader,
            &[],
            &default_exclusive_pairs(),
        )
        .unwrap_err();
        assert!(matches!(err, AccessRuleViolation::SelfGrant { .. }));
        assert!(err.to_string().contains("nobody grants themselves a role"));
    }

    #[test]
    fn key_admin_and_approver_are_mutually_exclusive_both_ways() {
        let pairs = default_exclusive_pairs();
        assert_eq!(
            check_role_grant("admin", "bob", Role::Approver, &[Role::KeyAdmin], &pairs),
            Err(AccessRuleViolation::MutuallyExclusive {
                role: Role::Approver,
                held: Role::KeyAdmin
            })
        );
        let err = check_role_grant(
            "admin",
            "bob",
            Role::KeyAdmin,
            &[Role::Reader, Role::Approver],
            &pairs,
        )
        .unwrap_err();
        assert_eq!(
            err,
            AccessRuleViolation::MutuallyExclusive {
                role: Role::KeyAdmin,
                held: Role::Approver
            }
        );
        let message = err.to_string();
        assert!(message.contains("key-admin") && message.contains("approver"));
        assert!(message.contains("configured as mutually exclusive"));
    }

    #[test]
    fn other_role_combinations_are_allowed() {
        let pairs = default_exclusive_pairs();
        for role in Role::ALL {
            for held in Role::ALL {
                let exclusive = matches!(
                    (role, held),
                    (Role::KeyAdmin, Role::Approver) | (Role::Approver, Role::KeyAdmin)
                );
                let result = check_role_grant("admin", "bob", role, &[held], &pairs);
                assert_eq!(result.is_err(), exclusive, "{role} with {held}");
            }
        }
        assert!(check_role_grant("admin", "bob", Role::Approver, &[Role::KeyAdmin], &[]).is_ok());
        let custom = [ExclusivePair(Role::Promoter, Role::Approver)];
        assert!(
            check_role_grant("admin", "bob", Role::Promoter, &[Role::Approver], &custom).is_err()
        );
    }

    #[test]
    fn nobody_decides_their_own_access_request() {
        assert_eq!(
            check_access_decision("alice", "alice"),
            Err(AccessRuleViolation::SelfApproval {
                principal: "alice".into()
            })
        );
        assert!(check_access_decision("alice", "bob").is_ok());
    }

    #[test]
    fn nobody_resets_their_own_or_another_access_admins_password() {
        assert_eq!(
            check_password_reset("admin", "admin", &[Role::AccessAdmin]),
            Err(AccessRuleViolation::SelfPasswordReset {
                principal: "admin".into()
            })
        );
        assert_eq!(
            check_password_reset("admin", "root", &[Role::Reader, Role::AccessAdmin]),
            Err(AccessRuleViolation::AccessAdminPasswordReset {
                principal: "admin".into(),
                target: "root".into()
            })
        );
        assert!(check_password_reset("admin", "bob", &[Role::Developer, Role::Approver]).is_ok());
        assert!(check_password_reset("admin", "bob", &[]).is_ok());
    }

    const SCOPE_TEXTS: [&str; 14] = [
        "*",
        "dev",
        "prod",
        "staging",
        "prod/team/*",
        "prod/team/a/*",
        "prod/teamx/*",
        "prod/team/app",
        "prod/team",
        "prod/team/a/b",
        "dev/team/*",
        "dev/team/app",
        "staging/team/*",
        "prod/other/*",
    ];

    const REPO_TEXTS: [&str; 10] = [
        "prod/team",
        "prod/team/app",
        "prod/team/a/b",
        "prod/team/a/b/c",
        "prod/teamx/app",
        "prod/other/x",
        "dev/team/app",
        "dev/x",
        "staging/team/app",
        "qa/team/app",
    ];

    proptest::proptest! {
        #[test]
        fn scope_parse_never_panics_and_round_trips(text in "[a-z0-9./_*-]{0,30}") {
            if let Ok(parsed) = text.parse::<Scope>() {
                let again: Scope = parsed.to_string().parse().unwrap();
                proptest::prop_assert_eq!(again, parsed);
            }
        }

        #[test]
        fn containment_implies_coverage(
            a in proptest::sample::select(&SCOPE_TEXTS[..]),
            b in proptest::sample::select(&SCOPE_TEXTS[..]),
        ) {
            let (a, b) = (scope(a), scope(b));
            if a.is_within(&b) {
                for name in REPO_TEXTS {
                    let r = repo(name);
                    proptest::prop_assert!(!a.covers(&r) || b.covers(&r), "{} within {} but {}", a, b, name);
                }
                let stage_names = ["dev", "staging", "prod", "qa"];
                for stage in stage_names.map(|s| s.parse::<StageName>().unwrap()) {
                    proptest::prop_assert!(!a.covers_stage(&stage) || b.covers_stage(&stage));
                }
            }
        }

        #[test]
        fn requested_scope_parse_never_panics(text in ".{0,60}") {
            let _ = text.parse::<RequestedScope>();
            let _ = parse_requested_scopes(&text);
        }

        #[test]
        fn never_more_than_requested_or_allowed(
            roles in proptest::collection::vec(proptest::sample::select(&Role::ALL[..]), 0..4),
            grant_scope in proptest::sample::select(&SCOPE_TEXTS[..]),
            name in proptest::sample::select(&REPO_TEXTS[..]),
            actions in proptest::collection::vec(
                proptest::sample::select(&["pull", "push", "delete", "*", "fly", "pul"][..]),
                0..6,
            ),
        ) {
            let grants: Vec<Grant> = roles.iter().map(|&role| grant(role, grant_scope)).collect();
            let wanted = RequestedScope {
                resource_type: "repository".into(),
                name: name.into(),
                actions: actions.iter().map(|a| a.to_string()).collect(),
            };
            let result = grant_scopes(std::slice::from_ref(&wanted), &grants, &stages(), NOW);
            proptest::prop_assert!(result.len() <= 1);
            let repo = repo(name);
            let allowed = match stages().stage_of(&repo) {
                Ok(stage) => registry_actions(&grants, &repo, stage.mode, NOW),
                Err(_) => BTreeSet::new(),
            };
            for entry in result {
                proptest::prop_assert_eq!(&entry.name, name);
                proptest::prop_assert!(!entry.actions.is_empty());
                let unique: BTreeSet<_> = entry.actions.iter().collect();
                proptest::prop_assert_eq!(unique.len(), entry.actions.len());
                for action in &entry.actions {
                    proptest::prop_assert!(actions.contains(&action.as_str()) || actions.contains(&"*"));
                    proptest::prop_assert!(allowed.iter().any(|a| a.as_str() == action));
                }
            }
        }
    }
}
