//! Promotions: their lifecycle, and who may approve one.
//!
//! A promotion asks to place `src_stage/path@digest` into `dst_stage/path`. It is evaluated by the
//! target stage's gate; if the gate allows it and needs approvals it waits in `pending_approval`
//! until enough distinct, eligible approvers sign off, then it is decided again and promoted.
//! Separation of duties is enforced here, not in policy: policy can raise the number of approvals
//! but never let the requester, the pusher or a builder approve.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::access::{Grant, Role};
use crate::name::RepoName;

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
}

/// The people around a promotion that separation of duties looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromotionParties {
    /// Who requested it.
    pub requester: String,
    /// Who pushed the artifact's manifest.
    pub pusher: Option<String>,
    /// Who pushed its signatures and attestations.
    pub builders: Vec<String>,
    /// Who approved it so far.
    pub approvers: Vec<String>,
}

/// Decides whether `principal` (holding `grants`) may approve a promotion into `target` whose
/// gate requires `role`, given the promotion's parties. `now_millis` decides which grants are
/// active.
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
    if parties.pusher.as_deref() == Some(principal) {
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
    Ok(())
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
mod tests {
    use super::*;
    use crate::access::Scope;

    fn repo() -> RepoName {
        "prod/team/app".parse().unwrap()
    }

    fn grant(role: Role, scope: &str) -> Grant {
        Grant {
            role,
            scope: scope.parse::<Scope>().unwrap(),
            expires_at_millis: None,
        }
    }

    fn parties() -> PromotionParties {
        PromotionParties {
            requester: "rita".into(),
            pusher: Some("paul".into()),
            builders: vec!["ci-bot".into()],
            approvers: vec!["ann".into()],
        }
    }

    #[test]
    fn eligible_approver_passes() {
        let grants = [grant(Role::Approver, "prod")];
        assert_eq!(
            check_approver("bob", &grants, Role::Approver, &repo(), &parties(), 0),
            Ok(())
        );
    }

    #[test]
    fn requester_pusher_builder_and_repeat_approvers_are_refused() {
        let grants = [grant(Role::Approver, "*")];
        let refusal = |who: &str| {
            check_approver(who, &grants, Role::Approver, &repo(), &parties(), 0).unwrap_err()
        };
        assert!(matches!(refusal("rita"), ApprovalRefusal::Requester { .. }));
        assert!(matches!(refusal("paul"), ApprovalRefusal::Pusher { .. }));
        assert!(matches!(refusal("ci-bot"), ApprovalRefusal::Builder { .. }));
        assert!(matches!(
            refusal("ann"),
            ApprovalRefusal::AlreadyApproved { .. }
        ));
    }

    #[test]
    fn approver_role_must_cover_the_target_and_be_active() {
        let elsewhere = [grant(Role::Approver, "staging")];
        let wrong_role = [grant(Role::Promoter, "prod")];
        let expired = [Grant {
            expires_at_millis: Some(10),
            ..grant(Role::Approver, "prod")
        }];
        for grants in [&elsewhere[..], &wrong_role[..], &expired[..]] {
            assert!(matches!(
                check_approver("bob", grants, Role::Approver, &repo(), &parties(), 20),
                Err(ApprovalRefusal::MissingRole { .. })
            ));
        }
        let under = [grant(Role::Approver, "prod/team/*")];
        assert!(check_approver("bob", &under, Role::Approver, &repo(), &parties(), 20).is_ok());
    }

    #[test]
    fn required_approvals_take_the_strictest_rule() {
        assert_eq!(required_approvals(0, None, None, false), 0);
        assert_eq!(required_approvals(1, Some(3), Some(2), false), 3);
        assert_eq!(required_approvals(0, None, Some(1), false), 1);
        assert_eq!(required_approvals(0, None, None, true), 2);
        assert_eq!(required_approvals(3, None, None, true), 3);
    }

    #[test]
    fn states_round_trip() {
        for state in [
            PromotionState::Evaluating,
            PromotionState::PendingApproval,
            PromotionState::Promoted,
            PromotionState::Denied,
            PromotionState::Expired,
            PromotionState::Cancelled,
        ] {
            assert_eq!(state.as_str().parse::<PromotionState>(), Ok(state));
        }
        assert!(PromotionState::Promoted.is_final());
        assert!(!PromotionState::PendingApproval.is_final());
    }
}
