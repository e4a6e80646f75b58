# Tests of the rollback query.
package airlock.rollback_test

import data.airlock.fixtures
import data.airlock.rollback

test_rollback_to_a_signed_artifact_is_allowed if {
	deny := rollback.deny with input as fixtures.rollback_input
	deny == set()
}

test_rollback_during_a_freeze_is_allowed if {
	deny := rollback.deny with input as object.union(fixtures.rollback_input, fixtures.frozen)
	deny == set()
}

test_rollback_to_revoked_evidence_is_denied if {
	deny := rollback.deny with input as object.union(fixtures.rollback_input, {"artifact": {"flags": ["evidence_revoked"]}})
	fixtures.rule_ids(deny) == {"common.evidence_revoked"}
}

test_rollback_to_an_unsigned_artifact_is_denied if {
	deny := rollback.deny with input as fixtures.with_evidence(fixtures.rollback_input, "signatures", [])
	fixtures.rule_ids(deny) == {"rollback.signature_required"}
	some v in deny
	v.docs == "docs/policy.md#rollback-signature-required"
}

test_rollback_with_other_input_version_is_denied if {
	deny := rollback.deny with input as object.union(fixtures.rollback_input, {"version": 7})
	fixtures.rule_ids(deny) == {"common.input_version"}
}
