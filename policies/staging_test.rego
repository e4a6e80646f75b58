# Tests of the staging gate: each rule allowing and denying.
package airlock.gates.staging_test

import data.airlock.fixtures
import data.airlock.gates.staging

test_compliant_promotion_is_allowed if {
	deny := staging.deny with input as fixtures.staging_input
	warn := staging.warn with input as fixtures.staging_input
	deny == set()
	warn == set()
	not staging.approvals with input as fixtures.staging_input
}

test_unsigned_artifact_is_denied if {
	given := fixtures.with_evidence(fixtures.staging_input, "signatures", [])
	deny := staging.deny with input as given
	fixtures.rule_ids(deny) == {"staging.signature_required"}
	some v in deny
	contains(v.msg, "dev/team/app@sha256:9f2b")
	contains(v.remediation, "airlock sign HOST/dev/team/app@sha256:9f2b")
	v.docs == "docs/policy.md#staging-signature-required"
}

test_unsigned_artifact_message_explains_rejected_evidence if {
	given := object.union(fixtures.staging_input, {"evidence": {
		"signatures": [],
		"rejected": [{"reason_code": "unknown_key", "reason": "no key in the keyring has id 77aa", "key": null}],
	}})
	deny := staging.deny with input as given
	contains(fixtures.messages(deny), "unknown_key: no key in the keyring has id 77aa")
}

test_signature_whose_scope_misses_the_repository_is_denied if {
	given := fixtures.with_evidence(fixtures.staging_input, "signatures", [{"key": "other-team", "key_scope": ["other/*", "team/app-legacy"]}])
	deny := staging.deny with input as given
	fixtures.rule_ids(deny) == {"staging.signature_required"}
	contains(fixtures.messages(deny), "signed by other-team, but no such key's scope (other/*, team/app-legacy) covers team/app")
}

test_signature_with_a_wildcard_or_exact_scope_is_allowed if {
	every scope in ["*", "team/app", "team/*"] {
		given := fixtures.with_evidence(fixtures.staging_input, "signatures", [{"key": "k", "key_scope": [scope]}])
		deny := staging.deny with input as given
		deny == set()
	}
}

test_one_covering_signature_among_others_is_enough if {
	given := fixtures.with_evidence(fixtures.staging_input, "signatures", [
		{"key": "other-team", "key_scope": ["other/*"]},
		{"key": "ci-builder", "key_scope": ["team/*"]},
	])
	deny := staging.deny with input as given
	deny == set()
}

test_frozen_stage_is_denied if {
	deny := staging.deny with input as object.union(fixtures.staging_input, fixtures.frozen)
	fixtures.rule_ids(deny) == {"common.stage_frozen"}
	contains(fixtures.messages(deny), "stage staging is frozen: year-end change freeze")
}

test_break_glass_passes_a_freeze_with_two_approvals if {
	given := object.union(object.union(fixtures.staging_input, fixtures.frozen), fixtures.break_glass)
	deny := staging.deny with input as given
	warn := staging.warn with input as given
	approvals := staging.approvals with input as given
	deny == set()
	fixtures.rule_ids(warn) == {"common.break_glass"}
	approvals == 2
}

test_break_glass_without_the_role_is_denied if {
	given := object.union(object.union(fixtures.staging_input, fixtures.frozen), {"break_glass": {"requested": true, "reason": "hotfix"}})
	deny := staging.deny with input as given
	fixtures.rule_ids(deny) == {"common.stage_frozen", "common.break_glass_invalid"}
}

test_break_glass_without_a_reason_is_denied if {
	given := object.union(object.union(fixtures.staging_input, fixtures.break_glass), {"break_glass": {"reason": " "}})
	deny := staging.deny with input as given
	fixtures.rule_ids(deny) == {"common.break_glass_invalid"}
}

test_revoked_evidence_is_denied if {
	deny := staging.deny with input as object.union(fixtures.staging_input, {"artifact": {"flags": ["evidence_revoked"]}})
	fixtures.rule_ids(deny) == {"common.evidence_revoked"}
}

test_other_flags_are_allowed if {
	deny := staging.deny with input as object.union(fixtures.staging_input, {"artifact": {"flags": ["pulled_unpromoted"]}})
	deny == set()
}

test_missing_sbom_only_warns if {
	given := fixtures.with_evidence(fixtures.staging_input, "sboms", [])
	deny := staging.deny with input as given
	warn := staging.warn with input as given
	deny == set()
	fixtures.rule_ids(warn) == {"staging.sbom_missing"}
}

test_other_input_version_is_denied if {
	deny := staging.deny with input as object.union(fixtures.staging_input, {"version": 2})
	fixtures.rule_ids(deny) == {"common.input_version"}
	contains(fixtures.messages(deny), "version 2")
}

test_empty_input_is_denied if {
	deny := staging.deny with input as {}
	fixtures.rule_ids(deny) == {"common.input_version", "staging.signature_required"}
}
