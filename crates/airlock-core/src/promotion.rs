//! Promotions: their lifecycle, and who may approve one.
//!
//! A promotion asks to place `src_stage/path@digest` into `dst_stage/path`. It is evaluated by the
//! target stage's gate; if the gate allows it and needs approvals it waits in `pending_approval`
//! until enough distinct, eligible approvers sign off, then it is decided again and promoted.
//! Separation of duties is enforced here, not in policy: policy can raise the number of approvals
//! but never let the requester, a pusher or a builder approve, nor (where the gate asks for
//! independent approvals) a principal whose account or approver role comes from another party
//! of the same promotion: its requester, an approver, a pusher or a builder.
//!
//! Also here: which tags a promotion may set ([`check_promotion_tag`]), and what happens to a
//! promotion whose decision stopped half way ([`stalled_recovery`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::access::{Grant, Permission, PermissionTarget, Role, has_permission};
use crate::digest::{Digest, DigestAlgorithm};
use crate::name::{RepoName, StageName, Tag};

/// Where a promotion is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionState {
    /// The gate is being evaluated.
    Evaluating,
    /// The gate allowed it; approvals are missing.
    PendingApproval,
    /// The artifact is in the target stage.
    Promoted,
    /// The gate refused it.
    Denied,
    /// Its approvals did not arrive in time.
    Expired,
    /// Its requester withdrew it.
    Cancelled,
}

impl PromotionState {
    /// Every state, in lifecycle order (what a state filter may name).
    pub const ALL: [PromotionState; 6] = [
        Self::Evaluating,
        Self::PendingApproval,
        Self::Promoted,
        Self::Denied,
        Self::Expired,
        Self::Cancelled,
    ];

    /// The snake_case spelling stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evaluating => "evaluating",
            Self::PendingApproval => "pending_approval",
            Self::Promoted => "promoted",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Promoted | Self::Denied | Self::Expired | Self::Cancelled
        )
    }
}

impl fmt::Display for PromotionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromotionState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "evaluating" => Self::Evaluating,
            "pending_approval" => Self::PendingApproval,
            "promoted" => Self::Promoted,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown promotion state {other:?}")),
        })
    }
}

/// Why someone may not approve a promotion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    /// The promotion is not waiting for approvals.
    #[error("promotion {id} is {state}, not pending_approval; nothing to approve")]
    NotPending {
        /// The promotion.
        id: String,
        /// Its state.
        state: PromotionState,
    },
    /// Approvers may not approve what they asked for.
    #[error("{principal} requested this promotion and cannot approve it (separation of duties)")]
    Requester {
        /// The principal.
        principal: String,
    },
    /// Approvers may not approve what they pushed.
    #[error(
        "{principal} pushed this artifact and cannot approve its promotion (separation of duties)"
    )]
    Pusher {
        /// The principal.
        principal: String,
    },
    /// Approvers may not approve what they built (signed or attested).
    #[error(
        "{principal} built this artifact (pushed its signatures or attestations) and cannot approve its promotion (separation of duties)"
    )]
    Builder {
        /// The principal.
        principal: String,
    },
    /// The approver lacks the gate's approver role on the target repository.
    #[error(
        "{principal} does not hold the {role} role on {repository}; only it counts for this gate"
    )]
    MissingRole {
        /// The principal.
        principal: String,
        /// The role the gate requires.
        role: Role,
        /// The target repository.
        repository: RepoName,
    },
    /// The same person approves once.
    #[error(
        "{principal} already approved this promotion; approvals must come from distinct people"
    )]
    AlreadyApproved {
        /// The principal.
        principal: String,
    },
    /// The approver and another party of the promotion are not independent: one created the
    /// other's account or granted the role the other acts with here.
    #[error(
        "{principal} {relation} {other}, {}; approvals must come from people whose accounts and approver roles were not created or granted by another party of the promotion (separation of duties)",
        other_part.describe()
    )]
    NotIndependent {
        /// The principal who tried to approve.
        principal: String,
        /// How the two are related.
        relation: Vouch,
        /// The other party.
        other: String,
        /// The other party's part in the promotion.
        other_part: Party,
    },
    /// Nothing records who created the approver or granted its role, so independence cannot be
    /// established (fail closed).
    #[error(
        "who created {principal} or granted its {role} role is not recorded, and this gate needs independent approvals; an access-admin who is not a party of the promotion grants the role again"
    )]
    IndependenceUnknown {
        /// The principal.
        principal: String,
        /// The gate's approver role.
        role: Role,
    },
}

/// How one principal vouches for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouch {
    /// The approver's account was created by the other party.
    CreatedBy,
    /// The approver's role on the target was granted (only) by parties of the promotion.
    RoleGrantedBy,
    /// The approver created the other party's account.
    Created,
    /// The approver granted the role the other party acts with in this promotion.
    GrantedRoleTo,
    /// The approver (a service account) holds an API key the other party added: the other party
    /// can act as it.
    KeyAddedBy,
    /// The approver added an API key to the other party (a service account), so can act as it.
    AddedKeyTo,
    /// The approver's password was reset by the other party, who learned or chose the temporary
    /// password: the other party can act as it.
    PasswordResetBy,
    /// The approver reset the other party's password, so can act as it.
    ResetPasswordOf,
}

impl fmt::Display for Vouch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreatedBy => "was created by",
            Self::RoleGrantedBy => "holds its approver role on the target only by grant of",
            Self::Created => "created",
            Self::GrantedRoleTo => "granted the role used in this promotion to",
            Self::KeyAddedBy => "holds an API key added by",
            Self::AddedKeyTo => "added an API key to",
            Self::PasswordResetBy => "had its password reset by",
            Self::ResetPasswordOf => "reset the password of",
        })
    }
}

/// A principal's part in a promotion, as the independence rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// It requested the promotion.
    Requester,
    /// It approved the promotion.
    Approver,
    /// It pushed the artifact (or a manifest it contains) or evidence about it: a pusher or a
    /// builder.
    Contributor,
}

impl Party {
    fn describe(self) -> &'static str {
        match self {
            Self::Requester => "who requested this promotion",
            Self::Approver => "who approved this promotion",
            Self::Contributor => "who pushed or built this artifact",
        }
    }
}

/// Who vouched for a principal: who created its account and who granted each of its grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vouchers {
    /// Who created the principal (a principal's name, or `bootstrap` / `oidc`); `None`: unknown.
    pub created_by: Option<String>,
    /// Its role grants, each with who granted it (inactive grants are ignored).
    pub grants: Vec<(Grant, String)>,
    /// Who added its API keys (revoked and expired ones included): each of them could act as it.
    pub key_adders: Vec<String>,
    /// Who reset its password (ever, even if it was changed since): each of them learned or chose
    /// a password of it and could act as it.
    pub password_resetters: Vec<String>,
}

/// The people around a promotion that separation of duties looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromotionParties {
    /// Who requested it.
    pub requester: String,
    /// Everyone who ever pushed the artifact's manifest (or a manifest it contains) into a
    /// repository of its path, in any stage, deleted or not.
    pub pushers: Vec<String>,
    /// Who pushed its signatures and attestations (or anything naming it as subject).
    pub builders: Vec<String>,
    /// Who approved it so far (besides the principal being checked).
    pub approvers: Vec<String>,
    /// `Some` when the gate needs independent approvals: who vouched for the requester, the
    /// approvers so far, the pushers and builders, and the principal being checked, by name.
    /// `None`: the rule is off.
    pub independence: Option<BTreeMap<String, Vouchers>>,
}

/// Decides whether `principal` (holding `grants`) may approve a promotion into `target` whose
/// gate requires `role`, given the promotion's parties. `now_millis` decides which grants are
/// active.
///
/// With `parties.independence` set, the approver must also be independent of the requester, of
/// every approver so far and of every pusher and builder of the artifact: its account was not
/// created by one of them, its approver role on the target was granted by someone who is not one
/// of them, and it did not create one of them or grant the role one of them acts with (the
/// approver role of an approver; for the requester, the roles that let it promote into the
/// target; for a pusher or builder only its account is looked at, not its grants).
pub fn check_approver(
    principal: &str,
    grants: &[Grant],
    role: Role,
    target: &RepoName,
    parties: &PromotionParties,
    now_millis: i64,
) -> Result<(), ApprovalRefusal> {
    let principal_owned = || principal.to_string();
    if parties.requester == principal {
        return Err(ApprovalRefusal::Requester {
            principal: principal_owned(),
        });
    }
    if parties.pushers.iter().any(|p| p == principal) {
        return Err(ApprovalRefusal::Pusher {
            principal: principal_owned(),
        });
    }
    if parties.builders.iter().any(|b| b == principal) {
        return Err(ApprovalRefusal::Builder {
            principal: principal_owned(),
        });
    }
    if parties.approvers.iter().any(|a| a == principal) {
        return Err(ApprovalRefusal::AlreadyApproved {
            principal: principal_owned(),
        });
    }
    let holds = grants
        .iter()
        .any(|g| g.role == role && g.is_active(now_millis) && g.scope.covers(target));
    if !holds {
        return Err(ApprovalRefusal::MissingRole {
            principal: principal_owned(),
            role,
            repository: target.clone(),
        });
    }
    if let Some(vouchers) = &parties.independence {
        check_independent(principal, role, target, parties, vouchers, now_millis)?;
    }
    Ok(())
}

/// Who granted the grants through which `principal` takes its `part` in a promotion into
/// `target`: its active grants of `role` covering the target (an approver), or its active grants
/// that let it promote or break glass there (the requester).
fn qualifying_granters<'a>(
    vouchers: &'a Vouchers,
    part: Option<Party>,
    role: Role,
    target: &RepoName,
    now_millis: i64,
) -> Vec<&'a str> {
    let repository = PermissionTarget::Repository(target.clone());
    vouchers
        .grants
        .iter()
        .filter(|(grant, _)| grant.is_active(now_millis))
        .filter(|(grant, _)| match part {
            Some(Party::Requester) => [Permission::Promote, Permission::BreakGlass]
                .into_iter()
                .any(|p| has_permission(std::slice::from_ref(grant), p, &repository, now_millis)),
            _ => grant.role == role && grant.scope.covers(target),
        })
        .map(|(_, by)| by.as_str())
        .collect()
}

/// The independence half of [`check_approver`].
fn check_independent(
    principal: &str,
    role: Role,
    target: &RepoName,
    parties: &PromotionParties,
    vouchers: &BTreeMap<String, Vouchers>,
    now_millis: i64,
) -> Result<(), ApprovalRefusal> {
    // The other parties, with their part; the requester first, then the approvers so far, then
    // everyone who pushed or built the artifact (a pusher's stand-in approving is the pusher
    // approving her own build).
    let mut others: Vec<(&str, Party)> = vec![(parties.requester.as_str(), Party::Requester)];
    others.extend(
        parties
            .approvers
            .iter()
            .filter(|a| a.as_str() != principal)
            .map(|a| (a.as_str(), Party::Approver)),
    );
    others.extend(
        parties
            .pushers
            .iter()
            .chain(&parties.builders)
            .filter(|c| c.as_str() != principal)
            .map(|c| (c.as_str(), Party::Contributor)),
    );
    let refuse = |relation, other: &str, other_part| ApprovalRefusal::NotIndependent {
        principal: principal.to_string(),
        relation,
        other: other.to_string(),
        other_part,
    };
    let mine = vouchers
        .get(principal)
        .ok_or_else(|| ApprovalRefusal::IndependenceUnknown {
            principal: principal.to_string(),
            role,
        })?;
    if let Some(creator) = &mine.created_by
        && let Some((other, part)) = others.iter().find(|(o, _)| o == creator)
    {
        return Err(refuse(Vouch::CreatedBy, other, *part));
    }
    if let Some((other, part)) = others
        .iter()
        .find(|(o, _)| mine.key_adders.iter().any(|a| a == o))
    {
        return Err(refuse(Vouch::KeyAddedBy, other, *part));
    }
    if let Some((other, part)) = others
        .iter()
        .find(|(o, _)| mine.password_resetters.iter().any(|r| r == o))
    {
        return Err(refuse(Vouch::PasswordResetBy, other, *part));
    }
    let granters = qualifying_granters(mine, Some(Party::Approver), role, target, now_millis);
    if granters.is_empty() {
        return Err(ApprovalRefusal::IndependenceUnknown {
            principal: principal.to_string(),
            role,
        });
    }
    if granters.iter().all(|g| others.iter().any(|(o, _)| o == g))
        && let Some((other, part)) = others.iter().find(|(o, _)| *o == granters[0])
    {
        return Err(refuse(Vouch::RoleGrantedBy, other, *part));
    }
    // The other way round: the approver must not have made another party what it is here.
    for (other, part) in &others {
        let Some(theirs) = vouchers.get(*other) else {
            continue;
        };
        if theirs.created_by.as_deref() == Some(principal) {
            return Err(refuse(Vouch::Created, other, *part));
        }
        if theirs.key_adders.iter().any(|a| a == principal) {
            return Err(refuse(Vouch::AddedKeyTo, other, *part));
        }
        if theirs.password_resetters.iter().any(|r| r == principal) {
            return Err(refuse(Vouch::ResetPasswordOf, other, *part));
        }
        // A contributor acts with the roles that let it push into its path's source stage, which
        // the rule does not see; its account is checked above, its grants are not.
        if *part == Party::Contributor {
            continue;
        }
        let granters = qualifying_granters(theirs, Some(*part), role, target, now_millis);
        let from_parties =
            |g: &&str| *g == principal || others.iter().any(|(o, _)| o == g && o != other);
        if granters.contains(&principal) && granters.iter().all(from_parties) {
            return Err(refuse(Vouch::GrantedRoleTo, other, *part));
        }
    }
    Ok(())
}

/// Whether approvals of promotions into a gate must be independent (see [`check_approver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndependenceMode {
    /// For every promotion that needs approvals.
    Always,
    /// For promotions of repositories matching one of the gate's critical rules, and for every
    /// promotion that needs two or more approvals (M-of-N, break-glass). The default.
    #[default]
    Critical,
    /// Never (only the other separation-of-duties rules apply).
    Off,
}

impl IndependenceMode {
    /// Whether the rule applies to a promotion needing `required` approvals, `critical` telling
    /// whether one of the gate's critical rules matches its repository.
    pub fn applies(self, critical: bool, required: u32) -> bool {
        match self {
            Self::Always => true,
            Self::Critical => critical || required >= 2,
            Self::Off => false,
        }
    }
}

/// Why a tag may not be set by a promotion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionTagRefusal {
    /// The tag has the shape of a tag derived from a digest (cosign's `sha256-<hex>.sig`, `.att`,
    /// `.sbom`, the OCI referrers fallback `sha256-<hex>`): airlock sets those itself.
    #[error(
        "tag {tag} has the form of a digest-derived tag (cosign's sha256-<hex>.sig/.att/.sbom, the OCI referrers tag sha256-<hex>); airlock sets those itself when it promotes the evidence; promote with a release tag such as 1.4.2 instead"
    )]
    DigestDerived {
        /// The tag.
        tag: Tag,
    },
    /// The tag is one of the target stage's channel tags, which move only as the channel.
    #[error(
        "tag {tag} is a channel tag of stage {stage}; channel tags move only as the channel: pass it as --channel {tag} (\"channel\" in the API) and leave it out of the tags"
    )]
    Channel {
        /// The tag.
        tag: Tag,
        /// The target stage.
        stage: StageName,
    },
}

/// The digest a digest-derived tag names: `<alg>-<hex>` optionally followed by `.<suffix>`
/// (cosign's tag scheme, the OCI referrers fallback tag). `None` for other tags.
pub fn digest_tag_subject(tag: &str) -> Option<Digest> {
    let name = tag.split_once('.').map_or(tag, |(name, _)| name);
    let (algorithm, hex) = name.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// Whether `tag` looks derived from a digest: it starts with the name of a digest algorithm and
/// a dash (`sha256-`, `sha512-`). Such tags are reserved for evidence in gated stages, whatever
/// follows.
pub fn is_digest_derived_tag(tag: &str) -> bool {
    [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512]
        .into_iter()
        .any(|a| {
            tag.strip_prefix(a.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
}

/// Checks a tag a promotion is asked to set in `stage` (whose channel tags are `channel_tags`):
/// no digest-derived tags (airlock sets those for the evidence it carries, and a squatted one
/// would later be re-pointed), no channel tags (they move only as the promotion's channel).
pub fn check_promotion_tag(
    tag: &Tag,
    stage: &StageName,
    channel_tags: &[String],
) -> Result<(), PromotionTagRefusal> {
    if is_digest_derived_tag(tag.as_str()) {
        return Err(PromotionTagRefusal::DigestDerived { tag: tag.clone() });
    }
    if channel_tags.iter().any(|c| c == tag.as_str()) {
        return Err(PromotionTagRefusal::Channel {
            tag: tag.clone(),
            stage: stage.clone(),
        });
    }
    Ok(())
}

/// What becomes of a promotion left `evaluating` past the decision timeout (the process deciding
/// it stopped, or its decision hangs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalledRecovery {
    /// It holds approvals (its last approval claimed it): back to `pending_approval` with every
    /// approval kept, so the final decision can be made again.
    Reopen,
    /// A new request that was never decided to the end and holds no approval: it is cancelled,
    /// so the requester can ask again. Nothing is lost: there was nothing to approve yet.
    Cancel,
}

/// Decides what to do with a stalled promotion holding `approvals` approvals. Neither outcome
/// promotes: a promotion is only ever promoted by a decision that still holds its claim.
pub fn stalled_recovery(approvals: usize) -> StalledRecovery {
    if approvals > 0 {
        StalledRecovery::Reopen
    } else {
        StalledRecovery::Cancel
    }
}

/// The approvals a promotion needs: the most of the gate's configured count, any critical
/// repository rule matching it, the policy's requirement, and two for break-glass.
pub fn required_approvals(
    configured: u32,
    critical: Option<u32>,
    policy: Option<u32>,
    break_glass: bool,
) -> u32 {
    let mut required = configured
        .max(critical.unwrap_or(0))
        .max(policy.unwrap_or(0));
    if break_glass {
        required = required.max(2);
    }
    required
}

#[cfg(test)]
mod tests;
