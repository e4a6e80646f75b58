//! Unit tests of the approval, tag and recovery rules.

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
        pushers: vec!["paul".into(), "pete".into()],
        builders: vec!["ci-bot".into()],
        approvers: vec!["ann".into()],
        independence: None,
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
    // Everyone who ever pushed the digest counts, not only the latest pusher.
    assert!(matches!(refusal("pete"), ApprovalRefusal::Pusher { .. }));
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

/// Vouchers: created by `creator`, holding `(role, scope, granted_by)` grants.
fn vouched(creator: &str, grants: &[(Role, &str, &str)]) -> Vouchers {
    Vouchers {
        created_by: Some(creator.into()),
        grants: grants
            .iter()
            .map(|(role, scope, by)| (grant(*role, scope), by.to_string()))
            .collect(),
        key_adders: Vec::new(),
        password_resetters: Vec::new(),
    }
}

/// A promotion requested by rita (a promoter created and granted by admin), approved so far by
/// `approvers`, with the independence rule on and `candidates` vouched for as given.
fn independent_parties(approvers: &[&str], candidates: &[(&str, Vouchers)]) -> PromotionParties {
    let mut vouchers = BTreeMap::new();
    vouchers.insert(
        "rita".to_string(),
        vouched("admin", &[(Role::Promoter, "prod", "admin")]),
    );
    for (name, v) in candidates {
        vouchers.insert(name.to_string(), v.clone());
    }
    PromotionParties {
        requester: "rita".into(),
        pushers: vec!["paul".into()],
        builders: Vec::new(),
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
        independence: Some(vouchers),
    }
}

fn check_independent_approver(
    who: &str,
    parties: &PromotionParties,
) -> Result<(), ApprovalRefusal> {
    let grants: Vec<Grant> = parties.independence.as_ref().unwrap()[who]
        .grants
        .iter()
        .map(|(g, _)| g.clone())
        .collect();
    check_approver(who, &grants, Role::Approver, &repo(), parties, 0)
}

#[test]
fn approvers_vouched_for_by_outsiders_are_independent() {
    let parties = independent_parties(
        &["ann"],
        &[
            (
                "ann",
                vouched("admin", &[(Role::Approver, "prod", "admin")]),
            ),
            ("bob", vouched("admin", &[(Role::Approver, "prod", "sam")])),
        ],
    );
    assert_eq!(check_independent_approver("bob", &parties), Ok(()));
}

#[test]
fn a_service_account_whose_key_a_party_added_is_not_independent() {
    let mut bot = vouched("admin", &[(Role::Approver, "prod", "admin")]);
    bot.key_adders = vec!["rita".into()];
    let parties = independent_parties(&[], &[("bot", bot)]);
    assert_eq!(
        check_independent_approver("bot", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "bot".into(),
            relation: Vouch::KeyAddedBy,
            other: "rita".into(),
            other_part: Party::Requester,
        })
    );
    // The other way round: an approver who added a key to an approver already counted.
    let mut bot = vouched("admin", &[(Role::Approver, "prod", "admin")]);
    bot.key_adders = vec!["ann".into()];
    let parties = independent_parties(
        &["bot"],
        &[
            ("bot", bot),
            ("ann", vouched("admin", &[(Role::Approver, "prod", "sam")])),
        ],
    );
    assert_eq!(
        check_independent_approver("ann", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "ann".into(),
            relation: Vouch::AddedKeyTo,
            other: "bot".into(),
            other_part: Party::Approver,
        })
    );
}

#[test]
fn an_approver_whose_password_a_party_reset_is_not_independent() {
    let mut carol = vouched("admin", &[(Role::Approver, "prod", "admin")]);
    carol.password_resetters = vec!["rita".into()];
    let parties = independent_parties(&[], &[("carol", carol)]);
    let refusal = check_independent_approver("carol", &parties);
    assert_eq!(
        refusal,
        Err(ApprovalRefusal::NotIndependent {
            principal: "carol".into(),
            relation: Vouch::PasswordResetBy,
            other: "rita".into(),
            other_part: Party::Requester,
        })
    );
    assert!(
        refusal
            .unwrap_err()
            .to_string()
            .starts_with("carol had its password reset by rita, who requested this promotion"),
    );
    // A reset by someone outside the promotion does not matter.
    let mut carol = vouched("admin", &[(Role::Approver, "prod", "admin")]);
    carol.password_resetters = vec!["sam".into()];
    let parties = independent_parties(&[], &[("carol", carol)]);
    assert_eq!(check_independent_approver("carol", &parties), Ok(()));
    // The other way round: an approver who reset the password of an approver already counted,
    // or of the pusher.
    let mut carol = vouched("admin", &[(Role::Approver, "prod", "admin")]);
    carol.password_resetters = vec!["ann".into()];
    let mut paul = vouched("admin", &[(Role::Developer, "dev", "admin")]);
    paul.password_resetters = vec!["bob".into()];
    let parties = independent_parties(
        &["carol"],
        &[
            ("carol", carol),
            ("paul", paul),
            ("ann", vouched("admin", &[(Role::Approver, "prod", "sam")])),
            ("bob", vouched("admin", &[(Role::Approver, "prod", "sam")])),
        ],
    );
    assert_eq!(
        check_independent_approver("ann", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "ann".into(),
            relation: Vouch::ResetPasswordOf,
            other: "carol".into(),
            other_part: Party::Approver,
        })
    );
    assert_eq!(
        check_independent_approver("bob", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "bob".into(),
            relation: Vouch::ResetPasswordOf,
            other: "paul".into(),
            other_part: Party::Contributor,
        })
    );
}

#[test]
fn stand_ins_created_or_granted_by_the_requester_are_refused() {
    let parties = independent_parties(
        &[],
        &[
            ("s1", vouched("rita", &[(Role::Approver, "prod", "admin")])),
            ("s2", vouched("admin", &[(Role::Approver, "prod", "rita")])),
        ],
    );
    assert_eq!(
        check_independent_approver("s1", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "s1".into(),
            relation: Vouch::CreatedBy,
            other: "rita".into(),
            other_part: Party::Requester,
        })
    );
    let refusal = check_independent_approver("s2", &parties).unwrap_err();
    assert_eq!(
        refusal,
        ApprovalRefusal::NotIndependent {
            principal: "s2".into(),
            relation: Vouch::RoleGrantedBy,
            other: "rita".into(),
            other_part: Party::Requester,
        }
    );
    assert_eq!(
        refusal.to_string(),
        "s2 holds its approver role on the target only by grant of rita, who requested this promotion; approvals must come from people whose accounts and approver roles were not created or granted by another party of the promotion (separation of duties)"
    );
}

#[test]
fn stand_ins_of_another_approver_are_refused_in_either_order() {
    // eve approved; s1 is her creation, s2 holds the role by her grant only.
    let parties = independent_parties(
        &["eve"],
        &[
            (
                "eve",
                vouched("admin", &[(Role::Approver, "prod", "admin")]),
            ),
            ("s1", vouched("eve", &[(Role::Approver, "prod", "admin")])),
            ("s2", vouched("admin", &[(Role::Approver, "*", "eve")])),
        ],
    );
    assert!(matches!(
        check_independent_approver("s1", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::CreatedBy, ref other, other_part: Party::Approver, .. }) if other == "eve"
    ));
    assert!(matches!(
        check_independent_approver("s2", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::RoleGrantedBy, ref other, .. }) if other == "eve"
    ));
    // The stand-in approved first: its creator is refused when she comes to approve.
    let parties = independent_parties(
        &["s1", "s2"],
        &[
            (
                "eve",
                vouched("admin", &[(Role::Approver, "prod", "admin")]),
            ),
            ("s1", vouched("eve", &[(Role::Approver, "prod", "admin")])),
            ("s2", vouched("admin", &[(Role::Approver, "*", "eve")])),
        ],
    );
    assert!(matches!(
        check_independent_approver("eve", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::Created, ref other, .. }) if other == "s1"
    ));
    let parties = independent_parties(
        &["s2"],
        &[
            (
                "eve",
                vouched("admin", &[(Role::Approver, "prod", "admin")]),
            ),
            ("s2", vouched("admin", &[(Role::Approver, "*", "eve")])),
        ],
    );
    assert!(matches!(
        check_independent_approver("eve", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::GrantedRoleTo, ref other, .. }) if other == "s2"
    ));
}

#[test]
fn an_approver_who_made_the_requester_a_promoter_is_refused() {
    let mut parties = independent_parties(
        &[],
        &[(
            "eve",
            vouched("admin", &[(Role::Approver, "prod", "admin")]),
        )],
    );
    let vouchers = parties.independence.as_mut().unwrap();
    vouchers.insert(
        "rita".into(),
        vouched("admin", &[(Role::Promoter, "prod/team/*", "eve")]),
    );
    let parties = parties;
    assert!(matches!(
        check_independent_approver("eve", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::GrantedRoleTo, ref other, other_part: Party::Requester, .. }) if other == "rita"
    ));
    let mut parties = parties;
    let vouchers = parties.independence.as_mut().unwrap();
    vouchers.insert("rita".into(), vouched("eve", &[]));
    assert!(matches!(
        check_independent_approver("eve", &parties),
        Err(ApprovalRefusal::NotIndependent {
            relation: Vouch::Created,
            ..
        })
    ));
}

#[test]
fn one_independent_grant_is_enough_and_unrelated_grants_do_not_count() {
    // s1 holds the role twice: once from rita (a party), once from an outsider.
    let parties = independent_parties(
        &[],
        &[(
            "s1",
            vouched(
                "admin",
                &[
                    (Role::Approver, "prod", "rita"),
                    (Role::Approver, "*", "sam"),
                ],
            ),
        )],
    );
    assert_eq!(check_independent_approver("s1", &parties), Ok(()));
    // The outsider's grant is for another stage: it does not make s1 an approver here.
    let parties = independent_parties(
        &[],
        &[(
            "s1",
            vouched(
                "admin",
                &[
                    (Role::Approver, "prod", "rita"),
                    (Role::Approver, "staging", "sam"),
                ],
            ),
        )],
    );
    assert!(matches!(
        check_independent_approver("s1", &parties),
        Err(ApprovalRefusal::NotIndependent {
            relation: Vouch::RoleGrantedBy,
            ..
        })
    ));
}

#[test]
fn stand_ins_created_or_granted_by_a_pusher_or_builder_are_refused() {
    // paul pushed the artifact and ci-bot built it; rita, who requested, is honest.
    let mut parties = independent_parties(
        &[],
        &[
            ("s1", vouched("paul", &[(Role::Approver, "prod", "admin")])),
            ("s2", vouched("admin", &[(Role::Approver, "prod", "paul")])),
            (
                "s3",
                vouched("ci-bot", &[(Role::Approver, "prod", "admin")]),
            ),
            ("s4", vouched("admin", &[(Role::Approver, "*", "ci-bot")])),
        ],
    );
    parties.builders = vec!["ci-bot".into()];
    assert_eq!(
        check_independent_approver("s1", &parties),
        Err(ApprovalRefusal::NotIndependent {
            principal: "s1".into(),
            relation: Vouch::CreatedBy,
            other: "paul".into(),
            other_part: Party::Contributor,
        })
    );
    let refusal = check_independent_approver("s2", &parties).unwrap_err();
    assert_eq!(
        refusal,
        ApprovalRefusal::NotIndependent {
            principal: "s2".into(),
            relation: Vouch::RoleGrantedBy,
            other: "paul".into(),
            other_part: Party::Contributor,
        }
    );
    assert_eq!(
        refusal.to_string(),
        "s2 holds its approver role on the target only by grant of paul, who pushed or built this artifact; approvals must come from people whose accounts and approver roles were not created or granted by another party of the promotion (separation of duties)"
    );
    assert!(matches!(
        check_independent_approver("s3", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::CreatedBy, ref other, other_part: Party::Contributor, .. }) if other == "ci-bot"
    ));
    assert!(matches!(
        check_independent_approver("s4", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::RoleGrantedBy, ref other, other_part: Party::Contributor, .. }) if other == "ci-bot"
    ));
}

#[test]
fn an_approver_who_created_the_pusher_is_refused() {
    // eve created paul's account; paul pushed the artifact: eve approving is approving her own
    // stand-in's push.
    let mut parties = independent_parties(
        &[],
        &[(
            "eve",
            vouched("admin", &[(Role::Approver, "prod", "admin")]),
        )],
    );
    let vouchers = parties.independence.as_mut().unwrap();
    vouchers.insert("paul".into(), vouched("eve", &[]));
    assert!(matches!(
        check_independent_approver("eve", &parties),
        Err(ApprovalRefusal::NotIndependent { relation: Vouch::Created, ref other, other_part: Party::Contributor, .. }) if other == "paul"
    ));
    // A contributor vouched for by outsiders changes nothing.
    let vouchers = parties.independence.as_mut().unwrap();
    vouchers.insert("paul".into(), vouched("admin", &[]));
    assert_eq!(check_independent_approver("eve", &parties), Ok(()));
}

#[test]
fn unknown_vouchers_fail_closed_and_the_rule_off_ignores_them() {
    let mut parties = independent_parties(&[], &[]);
    let grants = [grant(Role::Approver, "prod")];
    assert!(matches!(
        check_approver("bob", &grants, Role::Approver, &repo(), &parties, 0),
        Err(ApprovalRefusal::IndependenceUnknown { .. })
    ));
    parties.independence = None;
    assert_eq!(
        check_approver("bob", &grants, Role::Approver, &repo(), &parties, 0),
        Ok(())
    );
}

#[test]
fn independence_applies_by_mode() {
    use IndependenceMode::*;
    assert!(Always.applies(false, 1));
    assert!(!Critical.applies(false, 1));
    assert!(Critical.applies(true, 1));
    assert!(Critical.applies(false, 2));
    assert!(!Off.applies(true, 5));
    assert_eq!(IndependenceMode::default(), Critical);
}

#[test]
fn promotion_tags_refuse_digest_derived_and_channel_tags() {
    let stage: StageName = "prod".parse().unwrap();
    let channels = vec!["stable".to_string(), "canary".to_string()];
    let hex = "a".repeat(64);
    let check = |tag: &str| check_promotion_tag(&tag.parse().unwrap(), &stage, &channels);
    assert_eq!(check("1.4.2"), Ok(()));
    assert_eq!(check("sha-1"), Ok(()));
    assert_eq!(check("sha256"), Ok(()));
    for tag in [
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
        format!("sha256-{hex}.sbom"),
        format!("sha256-{hex}"),
        "sha256-abc".to_string(),
        "sha512-0123.sig".to_string(),
    ] {
        assert!(
            matches!(check(&tag), Err(PromotionTagRefusal::DigestDerived { .. })),
            "{tag}"
        );
    }
    let refusal = check("canary").unwrap_err();
    assert!(matches!(refusal, PromotionTagRefusal::Channel { .. }));
    assert!(
        refusal.to_string().contains("--channel canary"),
        "{refusal}"
    );
}

#[test]
fn digest_tags_name_their_subject() {
    let hex = "c".repeat(64);
    let digest: Digest = format!("sha256:{hex}").parse().unwrap();
    assert_eq!(
        digest_tag_subject(&format!("sha256-{hex}.sig")),
        Some(digest.clone())
    );
    assert_eq!(digest_tag_subject(&format!("sha256-{hex}")), Some(digest));
    assert_eq!(digest_tag_subject("sha256-abc.sig"), None);
    assert_eq!(digest_tag_subject("1.0"), None);
}

#[test]
fn stalled_promotions_with_approvals_reopen_and_fresh_ones_are_cancelled() {
    assert_eq!(stalled_recovery(0), StalledRecovery::Cancel);
    assert_eq!(stalled_recovery(1), StalledRecovery::Reopen);
    assert_eq!(stalled_recovery(3), StalledRecovery::Reopen);
}
