# Tests of the prod gate: each rule allowing and denying.
package airlock.gates.prod_test

import data.airlock.fixtures
import data.airlock.gates.prod
import data.airlock.lib

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

# --- dependency health ---

# warned is the set of rule ids prod warns about the given input with.
warned(given) := ids if {
	warn := prod.warn with input as given
	ids := fixtures.rule_ids(warn)
}

# with_dependencies changes the dependency facts of prod_input's SBOM.
with_dependencies(changes) := fixtures.with_evidence(fixtures.prod_input, "sboms", [object.union(
	fixtures.prod_input.evidence.sboms[0],
	{"dependencies": object.union(fixtures.dependencies, changes)},
)])

generic_node(version) := {
	"sources": array.concat(fixtures.dependencies.sources, [{
		"source": "pkg:generic",
		"repository_url": null,
		"components": 1,
		"examples": [sprintf("pkg:generic/node@%s", [version])],
	}]),
	"packages": object.union(fixtures.dependencies.packages, {"pkg:generic/node": [version]}),
}

evil_npm := {
	"sources": array.concat(fixtures.dependencies.sources, [{
		"source": "pkg:npm",
		"repository_url": "https://npm.evil.example",
		"components": 2,
		"examples": ["pkg:npm/left-pad@1.3.0?repository_url=https://npm.evil.example", "pkg:npm/is-odd@3.0.1?repository_url=https://npm.evil.example"],
	}]),
	"packages": object.union(fixtures.dependencies.packages, {"pkg:npm/left-pad": ["1.3.0"], "pkg:npm/is-odd": ["3.0.1"]}),
}

waiver(rule, id) := {"rule": rule, "id": id, "expires": "2026-12-31T23:59:59Z", "reason": "replacing it this quarter"}

# The defaults of data.json that the rules below change.
test_shipped_configuration if {
	data.airlock.config.scorecard_minimum == 5
	data.airlock.config.critical_repositories == []
	data.airlock.config.scorecard_enforced_repositories == []
	"pkg:npm" in data.airlock.config.allowed_dependency_sources
	not "pkg:generic" in data.airlock.config.allowed_dependency_sources
	data.airlock.config.eol["pkg:generic/node@16"] == "2023-09-11"
	data.airlock.config.eol["pkg:generic/python@3.8"] == "2024-10-07"
}

# prod.dependency_sources

test_component_from_a_source_not_allowed_is_denied_with_examples if {
	given := with_dependencies(evil_npm)
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	contains(fixtures.messages(deny), "no allowed_dependency_sources pattern allows: pkg:npm?repository_url=https://npm.evil.example (2 components, e.g. pkg:npm/is-odd@3.0.1?repository_url=https://npm.evil.example, pkg:npm/left-pad@1.3.0?repository_url=https://npm.evil.example)")
	some v in deny
	contains(v.remediation, "data.airlock.config.allowed_dependency_sources")
	v.docs == "docs/policy.md#prod-dependency-sources"
}

test_generic_components_are_denied_by_default_and_allowed_by_a_pattern if {
	given := with_dependencies(generic_node("22.11.0"))
	denied(given) == {"prod.dependency_sources"}
	deny := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as array.concat(data.airlock.config.allowed_dependency_sources, ["pkg:generic"])
	deny == set()
}

test_registry_pattern_allows_its_registry if {
	deny := prod.deny with input as with_dependencies(evil_npm)
		with data.airlock.config.allowed_dependency_sources as ["pkg:cargo", "pkg:deb/debian", "pkg:npm?repository_url=https://npm.evil.example"]
	deny == set()
}

test_missing_source_configuration_allows_nothing if {
	deny := prod.deny with input as fixtures.prod_input with data.airlock.config as object.remove(data.airlock.config, ["allowed_dependency_sources"])
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	contains(fixtures.messages(deny), "pkg:cargo (38 components, e.g. pkg:cargo/regorus@0.14.1, pkg:cargo/serde@1.0.215, pkg:cargo/tokio@1.41.1)")
}

test_many_disallowed_sources_are_bounded if {
	sources := [{"source": sprintf("pkg:generic/vendor%02d", [i]), "repository_url": null, "components": 1, "examples": []} | some i in numbers.range(1, 13)]
	deny := prod.deny with input as with_dependencies({"sources": sources})
	msg := fixtures.messages(deny)
	contains(msg, "pkg:generic/vendor10 (1 component, e.g. )")
	contains(msg, "and 3 more")
	not contains(msg, "vendor11")
}

test_components_without_a_valid_package_url_are_denied_and_named if {
	given := with_dependencies({
		"unidentified": 2,
		"unversioned": 1,
		"unidentifiable": [
			{"component": "libfoo@1.0", "reason": "no package URL"},
			{"component": "pkg:cargo/serde", "reason": "no version"},
			{"component": "pkg:bad url", "reason": "invalid package URL: no type"},
		],
	})
	deny := prod.deny with input as given
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	msg := fixtures.messages(deny)
	contains(msg, "whose source cannot be checked: libfoo@1.0 (no package URL), pkg:bad url (invalid package URL: no type)")
	not contains(msg, "pkg:cargo/serde")
}

test_unlisted_unidentified_components_cannot_be_waived if {
	given := with_dependencies({
		"unidentified": 25,
		"unidentifiable": [{"component": "libfoo@1.0", "reason": "no package URL"}],
	})
	deny := prod.deny with input as given
		with data.airlock.config.waivers as [waiver("prod.dependency_sources", "libfoo@1.0")]
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	contains(fixtures.messages(deny), ": 24 not listed")
}

test_waived_unidentified_component_is_allowed_with_a_warning if {
	given := with_dependencies({
		"unidentified": 1,
		"unidentifiable": [{"component": "libfoo@1.0", "reason": "no package URL"}],
	})
	waivers := [waiver("prod.dependency_sources", "libfoo@1.0")]
	deny := prod.deny with input as given with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given with data.airlock.config.waivers as waivers
	deny == set()
	fixtures.rule_ids(warn) == {"prod.dependency_waived"}
	contains(fixtures.messages(warn), "prod.dependency_sources: libfoo@1.0")
}

test_sbom_without_dependency_facts_is_denied if {
	sbom := object.remove(fixtures.prod_input.evidence.sboms[0], ["dependencies"])
	deny := prod.deny with input as fixtures.with_evidence(fixtures.prod_input, "sboms", [sbom])
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	contains(fixtures.messages(deny), "the SBOMs attested by ci-builder carry no dependency facts")
}

test_invalid_source_pattern_fails_closed_and_warns if {
	patterns := ["pkg:cargo", "pkg:deb/debian", "npm:*"]
	given := with_dependencies(evil_npm)
	deny := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as patterns
	warn := prod.warn with input as given with data.airlock.config.allowed_dependency_sources as patterns
	fixtures.rule_ids(deny) == {"prod.dependency_sources"}
	fixtures.rule_ids(warn) == {"prod.dependency_sources"}
	contains(fixtures.messages(warn), "patterns that are not valid, which allow nothing: npm:*")
}

test_source_waiver_waives_the_source if {
	given := with_dependencies(evil_npm)
	waivers := [waiver("prod.dependency_sources", "pkg:npm?repository_url=https://npm.evil.example")]
	deny := prod.deny with input as given with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given with data.airlock.config.waivers as waivers
	deny == set()
	fixtures.rule_ids(warn) == {"prod.dependency_waived"}
	contains(fixtures.messages(warn), "prod.dependency_sources: pkg:npm?repository_url=https://npm.evil.example")
}

test_package_waivers_waive_a_source_only_when_they_cover_all_its_packages if {
	given := with_dependencies(evil_npm)
	one := [waiver("prod.dependency_sources", "pkg:npm/left-pad")]
	both := array.concat(one, [waiver("prod.dependency_sources", "pkg:npm/is-odd")])
	deny_one := prod.deny with input as given with data.airlock.config.waivers as one
	deny_both := prod.deny with input as given with data.airlock.config.waivers as both
	fixtures.rule_ids(deny_one) == {"prod.dependency_sources"}
	deny_both == set()
}

test_waiver_for_another_rule_or_expired_waives_no_source if {
	given := with_dependencies(evil_npm)
	other := [waiver("prod.end_of_life", "pkg:npm?repository_url=https://npm.evil.example")]
	expired := [object.union(waiver("prod.dependency_sources", "pkg:npm?repository_url=https://npm.evil.example"), {"expires": "2026-11-25T11:00:00Z"})]
	untyped := [{"id": "pkg:npm?repository_url=https://npm.evil.example", "expires": "2026-12-31T23:59:59Z", "reason": "x"}]
	denied_other := prod.deny with input as given with data.airlock.config.waivers as other
	denied_expired := prod.deny with input as given with data.airlock.config.waivers as expired
	denied_untyped := prod.deny with input as given with data.airlock.config.waivers as untyped
	fixtures.rule_ids(denied_other) == {"prod.dependency_sources"}
	fixtures.rule_ids(denied_expired) == {"prod.dependency_sources"}
	fixtures.rule_ids(denied_untyped) == {"prod.dependency_sources"}
}

# prod.unpinned_inputs

unpinned(inputs) := fixtures.with_evidence(fixtures.prod_input, "provenance", [object.union(
	fixtures.prod_input.evidence.provenance[0],
	{"unpinned_inputs": inputs},
)])

test_unpinned_inputs_warn_outside_critical_repositories if {
	given := unpinned(["git+https://github.com/acme/tools@refs/heads/main", "https://example.com/setup.sh"])
	warn := prod.warn with input as given
	denied(given) == set()
	fixtures.rule_ids(warn) == {"prod.unpinned_inputs"}
	contains(fixtures.messages(warn), "not pinned by digest: git+https://github.com/acme/tools@refs/heads/main, https://example.com/setup.sh")
	some v in warn
	contains(v.remediation, "data.airlock.config.critical_repositories")
}

test_unpinned_inputs_deny_in_critical_repositories if {
	given := unpinned(["https://example.com/setup.sh"])
	deny := prod.deny with input as given with data.airlock.config.critical_repositories as ["team/*"]
	warn := prod.warn with input as given with data.airlock.config.critical_repositories as ["team/*"]
	fixtures.rule_ids(deny) == {"prod.unpinned_inputs"}
	warn == set()
	other := prod.deny with input as given with data.airlock.config.critical_repositories as ["payments/*", "team/app2"]
	other == set()
}

test_unpinned_inputs_deny_everywhere_without_configuration if {
	deny := prod.deny with input as unpinned(["https://example.com/setup.sh"])
		with data.airlock.config as object.remove(data.airlock.config, ["critical_repositories"])
	fixtures.rule_ids(deny) == {"prod.unpinned_inputs"}
}

test_pinned_inputs_pass if {
	deny := prod.deny with input as unpinned([]) with data.airlock.config.critical_repositories as ["*"]
	warn := prod.warn with input as unpinned([]) with data.airlock.config.critical_repositories as ["*"]
	deny == set()
	warn == set()
}

test_unpinned_input_waiver_waives_that_input_only if {
	given := unpinned(["https://example.com/setup.sh", "https://example.com/other.sh"])
	waivers := [waiver("prod.unpinned_inputs", "https://example.com/setup.sh")]
	deny := prod.deny with input as given
		with data.airlock.config.critical_repositories as ["*"]
		with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given
		with data.airlock.config.critical_repositories as ["*"]
		with data.airlock.config.waivers as waivers
	fixtures.rule_ids(deny) == {"prod.unpinned_inputs"}
	msg := fixtures.messages(deny)
	contains(msg, "other.sh")
	not contains(msg, "setup.sh")
	contains(fixtures.messages(warn), "prod.unpinned_inputs: https://example.com/setup.sh")
}

test_provenance_that_does_not_say_counts_as_unpinned if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [object.remove(fixtures.prod_input.evidence.provenance[0], ["unpinned_inputs"])])
	warn := prod.warn with input as given
	fixtures.rule_ids(warn) == {"prod.unpinned_inputs"}
	contains(fixtures.messages(warn), "does not say which inputs are pinned")
}

test_untrusted_provenance_inputs_are_not_checked if {
	untrusted := object.union(fixtures.prod_input.evidence.provenance[0], {"builder_id": "https://ci.example.com/laptop", "unpinned_inputs": ["x"]})
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [fixtures.prod_input.evidence.provenance[0], untrusted])
	deny := prod.deny with input as given with data.airlock.config.critical_repositories as ["*"]
	deny == set()
}

# prod.scorecard_minimum

with_scorecards(items) := fixtures.with_evidence(fixtures.prod_input, "scorecards", items)

test_low_scorecard_warns if {
	given := with_scorecards([object.union(fixtures.scorecard, {"score": 4.2})])
	warn := prod.warn with input as given
	denied(given) == set()
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(warn), "github.com/acme/app (2026-11-20T08:00:00Z, attested by ci-builder) scores 4.2, below the minimum 5")
	some v in warn
	contains(v.remediation, "data.airlock.config.scorecard_minimum")
	v.docs == "docs/policy.md#prod-scorecard-minimum"
}

test_low_scorecard_denies_in_enforced_repositories if {
	given := with_scorecards([object.union(fixtures.scorecard, {"score": 4.2})])
	deny := prod.deny with input as given with data.airlock.config.scorecard_enforced_repositories as ["team/app"]
	warn := prod.warn with input as given with data.airlock.config.scorecard_enforced_repositories as ["team/app"]
	fixtures.rule_ids(deny) == {"prod.scorecard_minimum"}
	warn == set()
}

test_unmaintained_source_fails_whatever_its_score if {
	given := with_scorecards([object.union(fixtures.scorecard, {"score": 9.1, "checks": {"Maintained": 0}})])
	warn := prod.warn with input as given
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	msg := fixtures.messages(warn)
	contains(msg, "its Maintained check is 0")
	not contains(msg, "below the minimum")
}

test_inconclusive_maintained_check_is_not_zero if {
	given := with_scorecards([object.union(fixtures.scorecard, {"checks": {"Maintained": -1}})])
	warned(given) == set()
}

test_minimum_comes_from_configuration if {
	given := with_scorecards([object.union(fixtures.scorecard, {"score": 4.2})])
	warn := prod.warn with input as given with data.airlock.config.scorecard_minimum as 4
	warn == set()
	strict := prod.warn with input as fixtures.prod_input with data.airlock.config as object.remove(data.airlock.config, ["scorecard_minimum"])
	contains(fixtures.messages(strict), "below the minimum 10")
}

test_missing_scorecard_warns_with_how_to_attest_one if {
	given := with_scorecards([])
	warn := prod.warn with input as given
	denied(given) == set()
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(warn), "no OpenSSF Scorecard result is attested for github.com/acme/app")
	some v in warn
	contains(v.remediation, "scorecard --repo=github.com/acme/app --format=json > scorecard.json")
	contains(v.remediation, "airlock attest HOST/dev/team/app@sha256:9f2b")
	contains(v.remediation, "--type https://scorecard.dev/result/v0.1 --predicate scorecard.json --key cosign.key")
}

test_missing_scorecard_denies_in_enforced_repositories if {
	deny := prod.deny with input as with_scorecards([]) with data.airlock.config.scorecard_enforced_repositories as ["*"]
	fixtures.rule_ids(deny) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(deny), "no OpenSSF Scorecard result is attested")
}

test_scorecard_of_another_repository_does_not_count if {
	given := with_scorecards([object.union(fixtures.scorecard, {"repository": "github.com/acme/application"})])
	warn := prod.warn with input as given
	contains(fixtures.messages(warn), "no OpenSSF Scorecard result is attested for github.com/acme/app")
	no_repository := with_scorecards([object.remove(fixtures.scorecard, ["repository"])])
	warned(no_repository) == {"prod.scorecard_minimum"}
}

test_scorecard_repository_is_compared_loosely if {
	warned(with_scorecards([object.union(fixtures.scorecard, {"repository": "https://www.GitHub.com/acme/App.git"})])) == set()
}

test_newest_scorecard_counts if {
	old_low := object.union(fixtures.scorecard, {"date": "2026-10-01T08:00:00Z", "score": 3})
	new_low := object.union(fixtures.scorecard, {"date": "2026-11-24T08:00:00Z", "score": 3})
	warned(with_scorecards([old_low, fixtures.scorecard])) == set()
	warned(with_scorecards([new_low, fixtures.scorecard])) == {"prod.scorecard_minimum"}
}

# A partial run (scorecard --checks=...) says nothing about maintenance: it fails the rule.
test_scorecard_without_the_maintained_check_fails if {
	partial := object.union(fixtures.scorecard, {"score": 10, "checks": {"Maintained": null}})
	given := with_scorecards([object.union(object.remove(fixtures.scorecard, ["checks"]), {"score": 10, "checks": {"Code-Review": 10}})])
	warn := prod.warn with input as given
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(warn), "does not include the Maintained check")
	warned(with_scorecards([partial])) == {"prod.scorecard_minimum"}
}

# Dates are compared as dates: an offset or a plain date is read as the time it names.
test_newest_scorecard_compares_parsed_dates if {
	# As strings "2026-11-24T01:00:00+05:00" sorts after "2026-11-24T00:00:00Z"; as dates it is
	# 2026-11-23T20:00Z, the older one.
	old_low := object.union(fixtures.scorecard, {"date": "2026-11-24T01:00:00+05:00", "score": 3})
	new_ok := object.union(fixtures.scorecard, {"date": "2026-11-24T00:00:00Z"})
	warned(with_scorecards([old_low, new_ok])) == set()
	plain_new_low := object.union(fixtures.scorecard, {"date": "2026-11-24", "score": 3})
	warned(with_scorecards([plain_new_low, fixtures.scorecard])) == {"prod.scorecard_minimum"}
	# A date that cannot be read does not count, and does not hide the others.
	unreadable_ok := object.union(fixtures.scorecard, {"date": "zzzz", "score": 9})
	low := object.union(fixtures.scorecard, {"score": 3})
	mixed := prod.warn with input as with_scorecards([low, unreadable_ok])
	contains(fixtures.messages(mixed), "scores 3, below the minimum 5")
}

test_stale_scorecard_fails if {
	stale := object.union(fixtures.scorecard, {"date": "2026-08-01T08:00:00Z"})
	warn := prod.warn with input as with_scorecards([stale])
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(warn), "from 2026-08-01T08:00:00Z, older than 90 days")
	recent_enough := prod.warn with input as with_scorecards([stale])
		with data.airlock.config.scorecard_max_age_days as 200
	recent_enough == set()
	default_age := prod.warn with input as with_scorecards([stale])
		with data.airlock.config as object.remove(data.airlock.config, ["scorecard_max_age_days"])
	fixtures.rule_ids(default_age) == {"prod.scorecard_minimum"}
	data.airlock.config.scorecard_max_age_days == 90
}

test_scorecard_waiver_accepts_the_repository if {
	given := with_scorecards([])
	waivers := [waiver("prod.scorecard_minimum", "https://github.com/acme/app")]
	deny := prod.deny with input as given
		with data.airlock.config.scorecard_enforced_repositories as ["*"]
		with data.airlock.config.waivers as waivers
	warn := prod.warn with input as given with data.airlock.config.waivers as waivers
	deny == set()
	fixtures.rule_ids(warn) == {"prod.dependency_waived"}
	contains(fixtures.messages(warn), "prod.scorecard_minimum: github.com/acme/app")
}

test_scorecard_cannot_be_matched_without_trusted_provenance if {
	given := fixtures.with_evidence(fixtures.prod_input, "provenance", [])
	warn := prod.warn with input as given
	fixtures.rule_ids(warn) == {"prod.scorecard_minimum"}
	contains(fixtures.messages(warn), "no trusted provenance names its source repository")
}

# prod.end_of_life

test_runtime_past_its_end_of_life_is_denied_with_its_date if {
	given := with_dependencies(generic_node("16.20.2"))
	deny := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
	fixtures.rule_ids(deny) == {"prod.end_of_life"}
	contains(fixtures.messages(deny), "past their end of life: pkg:generic/node 16.20.2 (end of life 2023-09-11)")
	some v in deny
	contains(v.remediation, "data.airlock.config.eol")
	v.docs == "docs/policy.md#prod-end-of-life"
}

# eol_denied is the set of rule ids prod denies node at that version with (any source allowed).
eol_denied(version) := ids if {
	deny := prod.deny with input as with_dependencies(generic_node(version))
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
	ids := fixtures.rule_ids(deny)
}

test_end_of_life_version_boundaries if {
	eol_denied("v16.1.0") == {"prod.end_of_life"}
	eol_denied("16") == {"prod.end_of_life"}
	eol_denied("160.0.0") == set()
	eol_denied("1.16") == set()
	eol_denied("22.11.0") == set()
}

# A package whose version the SBOM does not know, named by an eol entry: whether it is past its
# end of life cannot be told, so it is denied (fail closed).
test_unversioned_package_named_by_an_eol_entry_is_denied if {
	given := with_dependencies({
		"sources": generic_node("16").sources,
		"packages": object.union(fixtures.dependencies.packages, {"pkg:generic/node": []}),
	})
	deny := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
	fixtures.rule_ids(deny) == {"prod.end_of_life"}
	contains(fixtures.messages(deny), "pkg:generic/node (version unknown; end of life 2023-04-30 for pkg:generic/node@14)")
	everything := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as {"pkg:generic/node": "2030-01-01"}
	contains(fixtures.messages(everything), "pkg:generic/node (version unknown; end of life 2030-01-01 for pkg:generic/node)")
}

test_end_of_life_ignores_a_debian_epoch if {
	eol_denied("1:16.20.2-1") == {"prod.end_of_life"}
	eol_denied("2:v16.1") == {"prod.end_of_life"}
	eol_denied("1:160.0") == set()
	eol_denied("a:16.1") == set()
}

test_end_of_life_counts_from_its_date if {
	given := with_dependencies(generic_node("22.1.0"))
	eol := {"pkg:generic/node@22": "2027-04-30"}
	before := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as eol
	on_the_day := prod.deny with input as object.union(given, {"now": "2027-04-30T00:00:00.000Z"})
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as eol
	with_offset := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as {"pkg:generic/node@22": "2026-11-25T13:00:00+02:00"}
	before == set()
	fixtures.rule_ids(on_the_day) == {"prod.end_of_life"}
	fixtures.rule_ids(with_offset) == {"prod.end_of_life"}
}

test_package_pattern_without_version_matches_every_version if {
	deny := prod.deny with input as fixtures.prod_input with data.airlock.config.eol as {"pkg:cargo/tokio": "2026-01-01"}
	contains(fixtures.messages(deny), "pkg:cargo/tokio 1.40.0 (end of life 2026-01-01), pkg:cargo/tokio 1.41.1 (end of life 2026-01-01)")
}

test_unreadable_end_of_life_date_fails_closed if {
	given := with_dependencies(generic_node("22.1.0"))
	eol := {"pkg:generic/node@22": "next spring", "pkg:generic/deno": "soon"}
	deny := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as eol
	fixtures.rule_ids(deny) == {"prod.end_of_life"}
	contains(fixtures.messages(deny), "pkg:generic/node 22.1.0 (end-of-life date next spring in data.airlock.config.eol is not a date; counted as passed)")
	# A well-shaped date that does not exist, and one beyond the timestamp range, too.
	feb30 := prod.deny with input as given
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as {"pkg:generic/node": "2023-02-30", "pkg:generic/node@22.1": "9999-12-31"}
	msg := fixtures.messages(feb30)
	contains(msg, "pkg:generic/node 22.1.0 (end-of-life date 2023-02-30 in data.airlock.config.eol is not a date; counted as passed)")
	contains(msg, "pkg:generic/node 22.1.0 (end-of-life date 9999-12-31 in data.airlock.config.eol is not a date; counted as passed)")
}

test_invalid_end_of_life_patterns_match_nothing_and_fail_the_bundle_tests if {
	eol := {"node@16": "2023-09-11", "pkg:generic/node@": "2023-09-11", "pkg:generic/node@16": 20230911, "pkg:cargo/tokio": "someday"}
	deny := prod.deny with input as with_dependencies(generic_node("16.1.0"))
		with data.airlock.config.allowed_dependency_sources as ["pkg:*"]
		with data.airlock.config.eol as eol
	# pkg:generic/node@16 with a number for a date matches and denies; the others match nothing
	# but tokio, whose unreadable date denies.
	msg := fixtures.messages(deny)
	contains(msg, "pkg:generic/node 16.1.0 (end-of-life date 20230911 in data.airlock.config.eol is not a date; counted as passed)")
	contains(msg, "pkg:cargo/tokio 1.41.1 (end-of-life date someday")
	not contains(msg, "node@16:")
	invalid := lib.invalid_eol_entries with data.airlock.config.eol as eol
	invalid == {"node@16: 2023-09-11", "pkg:generic/node@: 2023-09-11", "pkg:generic/node@16: 20230911", "pkg:cargo/tokio: someday"}
	not_an_object := lib.invalid_eol_entries with data.airlock.config.eol as ["pkg:generic/node@16"]
	not_an_object == {"data.airlock.config.eol is not an object"}
}

# The configuration of the bundle under test is valid: a typo in data.json fails
# `airlock policy test` (the gates only report invalid source patterns when a source is denied,
# and never read eol entries that match nothing).
test_configured_dependency_source_patterns_are_valid if {
	count(lib.invalid_dependency_source_patterns) == 0
	is_array(data.airlock.config.allowed_dependency_sources)
}

# Keys must be canonical purls for the types the purl spec lower-cases, or they would match
# nothing: the facts give pkg:pypi/django, never pkg:pypi/Django.
test_non_canonical_eol_keys_and_source_patterns_are_invalid if {
	eol := {
		"pkg:pypi/Django@3.2": "2024-04-01",
		"pkg:pypi/zope_interface": "2024-04-01",
		"pkg:npm/Left-Pad": "2024-04-01",
		"pkg:deb/Debian/python3.9@3.9": "2025-10-31",
		"pkg:maven/org.Example/Lib@1": "2024-04-01",
		"pkg:generic/Node@16": "2023-09-11",
	}
	invalid := lib.invalid_eol_entries with data.airlock.config.eol as eol
	invalid == {"pkg:pypi/Django@3.2: 2024-04-01", "pkg:pypi/zope_interface: 2024-04-01", "pkg:npm/Left-Pad: 2024-04-01", "pkg:deb/Debian/python3.9@3.9: 2025-10-31"}
	patterns := ["pkg:deb/Debian", "pkg:golang/github.com/Acme*", "pkg:maven/org.Example", "pkg:npm/%40scope", "pkg:github/acme"]
	bad := lib.invalid_dependency_source_patterns with data.airlock.config.allowed_dependency_sources as patterns
	bad == {"pkg:deb/Debian", "pkg:golang/github.com/Acme*"}
}

test_configured_eol_entries_are_valid if {
	count(lib.invalid_eol_entries) == 0
	is_object(data.airlock.config.eol)
}

test_end_of_life_waivers if {
	given := with_dependencies(generic_node("16.20.2"))
	by_package := [waiver("prod.end_of_life", "pkg:generic/node")]
	by_pattern := [waiver("prod.end_of_life", "pkg:generic/node@16")]
	expired := [object.union(waiver("prod.end_of_life", "pkg:generic/node"), {"expires": "2026-01-01T00:00:00Z"})]
	vulnerability := [{"id": "pkg:generic/node", "expires": "2026-12-31T23:59:59Z", "reason": "x"}]
	deny_package := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"] with data.airlock.config.waivers as by_package
	deny_pattern := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"] with data.airlock.config.waivers as by_pattern
	deny_expired := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"] with data.airlock.config.waivers as expired
	deny_vulnerability := prod.deny with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"] with data.airlock.config.waivers as vulnerability
	warn := prod.warn with input as given with data.airlock.config.allowed_dependency_sources as ["pkg:*"] with data.airlock.config.waivers as by_package
	deny_package == set()
	deny_pattern == set()
	fixtures.rule_ids(deny_expired) == {"prod.end_of_life"}
	fixtures.rule_ids(deny_vulnerability) == {"prod.end_of_life"}
	fixtures.rule_ids(warn) == {"prod.dependency_waived"}
	contains(fixtures.messages(warn), "prod.end_of_life: pkg:generic/node 16.20.2")
}

test_rule_scoped_waiver_does_not_waive_a_vulnerability if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	scoped := [waiver("prod.end_of_life", "CVE-2026-0002")]
	as_rule := [waiver("prod.high_vulnerabilities", "CVE-2026-0002")]
	deny_scoped := prod.deny with input as given with data.airlock.config.waivers as scoped
	deny_as_rule := prod.deny with input as given with data.airlock.config.waivers as as_rule
	fixtures.rule_ids(deny_scoped) == {"prod.high_vulnerabilities"}
	deny_as_rule == set()
}

test_waiver_for_a_rule_that_cannot_be_waived_warns if {
	waivers := [waiver("prod.critical_vulnerabilities", "CVE-2026-0001")]
	warn := prod.warn with input as fixtures.prod_input with data.airlock.config.waivers as waivers
	fixtures.rule_ids(warn) == {"prod.waiver_invalid"}
	contains(fixtures.messages(warn), "CVE-2026-0001 (rule prod.critical_vulnerabilities cannot be waived)")
}

test_waiver_expiring_beyond_the_timestamp_range_waives_nothing_without_error if {
	given := fixtures.with_evidence(fixtures.prod_input, "vulnerabilities", report_with([high_finding("CVE-2026-0002")]))
	waivers := [{"id": "CVE-2026-0002", "expires": "9999-12-31T23:59:59Z", "reason": "x"}]
	deny := prod.deny with input as given with data.airlock.config.waivers as waivers
	fixtures.rule_ids(deny) == {"prod.high_vulnerabilities"}
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

# --- independent rebuilds ---

rebuilt_by(count) := fixtures.with_evidence(fixtures.prod_input, "rebuilds", object.union(
	fixtures.prod_input.evidence.rebuilds,
	{"independent": count},
))

test_one_builder_warns_naming_the_revision_and_how_to_add_a_second if {
	given := rebuilt_by(1)
	warn := prod.warn with input as given
	denied(given) == set()
	fixtures.rule_ids(warn) == {"prod.rebuild_agreement"}
	contains(fixtures.messages(warn), "from https://github.com/acme/app@0d3c5e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a by 1 independent builder(s)")
	some v in warn
	contains(v.remediation, "second, independent builder")
	contains(v.remediation, "data.airlock.config.rebuild_agreement_repositories")
	v.docs == "docs/policy.md#prod-rebuild-agreement"
}

test_one_builder_denies_in_rebuild_agreement_repositories if {
	given := rebuilt_by(1)
	deny := prod.deny with input as given with data.airlock.config.rebuild_agreement_repositories as ["team/*"]
	warn := prod.warn with input as given with data.airlock.config.rebuild_agreement_repositories as ["team/*"]
	fixtures.rule_ids(deny) == {"prod.rebuild_agreement"}
	warn == set()
	other := prod.deny with input as given with data.airlock.config.rebuild_agreement_repositories as ["payments/*"]
	other == set()
}

test_two_independent_builders_pass_even_where_required if {
	deny := prod.deny with input as rebuilt_by(2) with data.airlock.config.rebuild_agreement_repositories as ["*"]
	warn := prod.warn with input as rebuilt_by(2) with data.airlock.config.rebuild_agreement_repositories as ["*"]
	deny == set()
	warn == set()
}

test_a_missing_rebuild_fact_counts_as_none if {
	given := json.remove(fixtures.prod_input, ["evidence/rebuilds"])
	deny := prod.deny with input as given with data.airlock.config.rebuild_agreement_repositories as ["*"]
	fixtures.rule_ids(deny) == {"prod.rebuild_agreement"}
	contains(fixtures.messages(deny), "from its source revision by 0 independent builder(s)")
}

test_no_provenance_is_denied_once_by_its_own_rule if {
	given := json.remove(fixtures.with_evidence(fixtures.prod_input, "provenance", []), ["evidence/rebuilds"])
	deny := prod.deny with input as given with data.airlock.config.rebuild_agreement_repositories as ["*"]
	not "prod.rebuild_agreement" in fixtures.rule_ids(deny)
	"prod.provenance_required" in fixtures.rule_ids(deny)
}
