# Tests of the prod gate: each rule allowing and denying.
package airlock.gates.prod_test

import data.airlock.fixtures
import data.airlock.gates.prod

# denied is the set of rule ids prod denies the given input with.
denied(given) := ids if {
	deny := prod.deny with input as given
	ids := fixtures.rule_ids(deny)
}

test_compliant_promotion_is_allowed_with_one_approval if {
	deny := prod.deny with input as fixtures.prod_input
	warn := prod.warn with input as fixtures.prod_input
	approvals := prod.approvals with input as fixtures.prod_input
	deny == set()
	warn == set()
	approvals == 1
}

test_staging_requirements_apply if {
	denied(fixtures.with_evidence(fixtures.prod_input, "signatures", [])) == {"staging.signature_required"}
	denied(object.union(fixtures.prod_input, fixtures.frozen)) == {"common.stage_frozen"}
	denied(object.union(fixtures.prod_input, {"artifact": {"flags": ["evidence_revoked"]}})) == {"common.evidence_revoked"}
}

test_break_glass_requires_two_approvals if {
	given := object.union(object.union(fixtures.prod_input, fixtures.frozen), fixtures.break_glass)
	approvals := prod.approvals with input as given
	warn := prod.warn with input as given
	denied(given) == set()
	approvals == 2
	fixtures.rule_ids(warn) == {"common.break_glass"}
}

# --- provenance ---

test_missing_provenance_is_denied if {
	denied(fixtures.with_evidence(fixtures.prod_input, "provenance", [])) == {"prod.provenance_required"}
}

test_provenance_from_another_builder_is_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [{
		"builder_id": "https://ci.example.com/laptop",
		"source_repository": "https://github.com/acme/app",
	}])
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.provenance_builder"}
	contains(fixtures.messages(deny), "built by https://ci.example.com/laptop")
}

test_provenance_from_another_source_is_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [{
		"builder_id": "https://github.com/actions/runner/github-hosted",
		"source_repository": "https://gitlab.example.com/acme/app",
	}])
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.provenance_source"}
	contains(fixtures.messages(deny), "built from https://gitlab.example.com/acme/app")
}

test_one_trusted_provenance_among_others_is_enough if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [
		{"builder_id": "https://ci.example.com/laptop", "source_repository": "https://github.com/acme/app"},
		{"builder_id": "https://github.com/actions/runner/github-hosted", "source_repository": "https://github.com/acme/app"},
	])
	denied(given) == set()
}

test_builders_come_from_configuration if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [{
		"builder_id": "https://ci.example.com/runner",
		"source_repository": "https://git.example.com/acme/app",
	}])
	deny := prod.deny with input as given
		with data.airlock.config.allowed_builders as ["https://ci.example.com/runner"]
		with data.airlock.config.allowed_source_prefixes as ["https://git.example.com/acme/"]
	deny == set()
}

# --- vulnerabilities ---

high_finding(id) := {"id": id, "package": "openssl", "version": "3.0.1", "severity": "high", "fixed_version": "3.0.2"}

report_with(findings) := [{
	"key": "ci-builder",
	"scanner": "trivy",
	"counts": {
		"critical": count([f | some f in findings; f.severity == "critical"]),
		"high": count([f | some f in findings; f.severity == "high"]),
		"medium": 0, "low": 0, "unknown": 0,
	},
	"findings": findings,
}]

test_missing_vulnerability_report_is_denied if {
	denied(fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", [])) == {"prod.vulnerability_scan_required"}
}

test_critical_vulnerability_is_denied_and_named if {
	critical := object.union(high_finding("CVE-2026-0001"), {"severity": "critical"})
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([critical]))
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.critical_vulnerabilities"}
	contains(fixtures.messages(deny), "1 critical vulnerabilities: CVE-2026-0001")
}

test_critical_vulnerabilities_counted_but_not_named_are_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", [{
		"scanner": "grype",
		"counts": {"critical": 2, "high": 0, "medium": 0, "low": 0, "unknown": 0},
		"findings": [],
	}])
	denied(given) == {"prod.critical_vulnerabilities"}
}

test_critical_vulnerability_cannot_be_waived if {
	critical := object.union(high_finding("CVE-2026-0001"), {"severity": "critical"})
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([critical]))
	deny := prod.deny with input as given
		with data.airlock.config.waivers as [{"id": "CVE-2026-0001", "expires": "2027-01-01T00:00:00Z", "reason": "x"}]
	fixtures.rule_ids(deny) == {"prod.critical_vulnerabilities"}
}

test_high_vulnerability_over_the_limit_is_denied_and_named if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
	contains(fixtures.messages(deny), "1 unwaived high vulnerabilities, more than the 0 allowed: CVE-2026-0002")
}

test_high_vulnerabilities_within_a_raised_limit_are_allowed if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	deny := prod.deny with input as given with data.airlock.config.max_high_vulnerabilities as 1
	deny == set()
}

test_high_vulnerability_with_an_unexpired_waiver_is_allowed_with_a_warning if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	waivers := [{"id": "CVE-2026-0002", "expires": "2026-12-31T23:59:59Z", "reason": "not reachable"}]
	deny := prod.deny with input as given with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given with data.airlock.config.waivers as waivers
	deny == set()
	fixtures.rule_ids(warn) == {"prod.vulnerability_waived"}
	contains(fixtures.messages(warn), "CVE-2026-0002")
}

test_waiver_expiry_is_compared_as_a_time_not_a_string if {
	# 13:00+02:00 is 11:00Z, before input.now (12:00Z), although "13" sorts after "12".
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	deny := prod.deny with input as given
		with data.airlock.config.waivers as [{"id": "CVE-2026-0002", "expires": "2026-11-25T13:00:00+02:00", "reason": "x"}]
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
}

test_expired_waiver_is_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	deny := prod.deny with input as given
		with data.airlock.config.waivers as [{"id": "CVE-2026-0002", "expires": "2026-11-25T11:59:59Z", "reason": "x"}]
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
}

test_waiver_with_an_unreadable_expiry_waives_nothing if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	waivers := [{"id": "CVE-2026-0002", "expires": "next year", "reason": "x"}]
	deny := prod.deny with input as given with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given with data.airlock.config.waivers as waivers
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
	fixtures.rule_ids(warn) == {"prod.waiver_invalid"}
	contains(fixtures.messages(warn), "CVE-2026-0002")
}

test_each_high_vulnerability_over_the_limit_needs_its_own_waiver if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002"), high_finding("CVE-2026-0003")]))
	deny := prod.deny with input as given
		with data.airlock.config.waivers as [{"id": "CVE-2026-0002", "expires": "2027-01-01T00:00:00Z", "reason": "x"}]
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
	msg := fixtures.messages(deny)
	contains(msg, "CVE-2026-0003")
	not contains(msg, "CVE-2026-0002")
}

# --- SBOM and licenses ---

sbom_with(licenses) := [{"key": "ci-builder", "format": "cyclonedx", "licenses": licenses, "invalid_licenses": [], "components": 3, "dependencies": fixtures.dependencies}]

test_missing_sbom_is_denied if {
	denied(fixtures.with_evidence(fixtures.prod_input, "sboms", [])) == {"prod.sbom_required"}
}

test_license_not_allowed_is_denied_and_named if {
	given := fixtures.with_evidence(fixtures.prod_input, "sboms", sbom_with(["MIT", "GPL-3.0-only"]))
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.license_not_allowed"}
	contains(fixtures.messages(deny), "not allowed: GPL-3.0-only (allowed: MIT, Apache-2.0")
}

test_license_choice_with_one_allowed_alternative_is_allowed if {
	denied(fixtures.with_evidence(fixtures.prod_input, "sboms", sbom_with(["MIT OR GPL-3.0-only"]))) == set()
}

test_license_conjunction_with_one_disallowed_part_is_denied if {
	denied(fixtures.with_evidence(fixtures.prod_input, "sboms", sbom_with(["MIT AND GPL-3.0-only"]))) == {"prod.license_not_allowed"}
}

test_allowed_licenses_come_from_configuration if {
	given := fixtures.with_evidence(fixtures.prod_input, "sboms", sbom_with(["GPL-3.0-only"]))
	deny := prod.deny with input as given with data.airlock.config.allowed_licenses as ["GPL-3.0-only"]
	deny == set()
}

test_invalid_license_expression_is_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "sboms", [{
		"key": "ci-builder",
		"format": "cyclonedx",
		"licenses": ["MIT"],
		"invalid_licenses": [{"component": "libfoo", "expression": "MIT AND OR Apache-2.0", "error": "unexpected OR"}],
		"components": 2,
		"dependencies": fixtures.dependencies,
	}])
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.license_invalid"}
	contains(fixtures.messages(deny), "libfoo: MIT AND OR Apache-2.0 (unexpected OR)")
}

# --- tests ---

test_missing_test_results_are_denied if {
	denied(fixtures.with_evidence(fixtures.prod_input, "tests", [])) == {"prod.tests_required"}
}

test_failed_test_results_are_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "tests", [{"key": "ci-builder", "result": "failed", "passed": 100, "warned": 0, "failed": 3}])
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.tests_required"}
	contains(fixtures.messages(deny), "failed, 3 failed")
}

test_passed_result_with_failures_is_denied if {
	given := fixtures.with_evidence(fixtures.prod_input, "tests", [{"key": "ci-builder", "result": "passed", "passed": 100, "warned": 0, "failed": 1}])
	denied(given) == {"prod.tests_required"}
}

# --- history ---

test_artifact_not_promoted_to_staging_is_denied if {
	denied(object.union(fixtures.prod_input, {"history": []})) == {"prod.staging_first"}
}

test_denied_staging_promotion_does_not_count if {
	given := object.union(fixtures.prod_input, {"history": [{"stage": "staging", "promotion": "prm_02", "state": "denied", "at": "2026-11-24T10:00:00Z", "by": "alice"}]})
	denied(given) == {"prod.staging_first"}
}

# --- everything at once ---

test_bare_input_is_denied_by_every_evidence_rule if {
	given := {"version": 1, "artifact": {"repository": "team/app", "name": "staging/team/app", "digest": fixtures.digest, "flags": []}}
	denied(given) == {
		"staging.signature_required",
		"prod.provenance_required",
		"prod.vulnerability_scan_required",
		"prod.sbom_required",
		"prod.tests_required",
		"prod.staging_first",
	}
}

test_every_violation_links_its_rule_documentation if {
	given := {"version": 3, "target": {"frozen": true}, "artifact": {"flags": ["evidence_revoked"]}}
	deny := prod.deny with input as given
	count(deny) > 5
	every v in deny {
		v.docs == concat("", ["docs/policy.md#", replace(replace(v.rule, ".", "-"), "_", "-")])
	}
}
