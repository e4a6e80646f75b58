# The gate of stage prod: everything staging requires (its deny rules are included as they
# are, under their staging.* and common.* ids), plus SLSA provenance from a trusted builder and
# source, a vulnerability scan without critical findings and with high ones within the limit or
# waived, an SBOM whose licenses are all allowed, healthy dependencies (from allowed sources,
# none past its end of life, build inputs pinned, the source's OpenSSF Scorecard result above
# the minimum), passing tests, a prior promotion to staging, and one approval (two under
# break-glass).
#
# A gate package holds only deny, warn and approvals (airlock rejects any other rule in it);
# helpers live in airlock.lib.
package airlock.gates.prod

# Members are imported one by one: regorus evaluates a whole package when a rule is reached
# through an import of the package (`lib.x`), which costs ~0.6 ms per evaluation here.
import data.airlock.gates.staging.deny as staging_deny
import data.airlock.lib.allowed_builders
import data.airlock.lib.allowed_licenses
import data.airlock.lib.allowed_source_prefixes
import data.airlock.lib.artifact_ref
import data.airlock.lib.evidence_ref
import data.airlock.lib.bounded_list
import data.airlock.lib.dependency_waivers_used
import data.airlock.lib.disallowed_sources
import data.airlock.lib.disallowed_sources_text
import data.airlock.lib.eol_text
import data.airlock.lib.eol_unwaived
import data.airlock.lib.invalid_dependency_source_patterns
import data.airlock.lib.repository_critical
import data.airlock.lib.sboms_without_dependencies
import data.airlock.lib.scorecard_enforced
import data.airlock.lib.scorecard_violations
import data.airlock.lib.unidentified_text
import data.airlock.lib.unlisted_unidentified
import data.airlock.lib.unpinned_inputs_remediation
import data.airlock.lib.unpinned_inputs_text
import data.airlock.lib.unwaived_unidentified
import data.airlock.lib.unwaived_unpinned_inputs
import data.airlock.lib.break_glass
import data.airlock.lib.break_glass_approvals
import data.airlock.lib.common_warn
import data.airlock.lib.critical_count
import data.airlock.lib.disallowed_licenses
import data.airlock.lib.finding_ids
import data.airlock.lib.has_invalid_licenses
import data.airlock.lib.has_provenance
import data.airlock.lib.has_sbom
import data.airlock.lib.has_vulnerability_report
import data.airlock.lib.independent_builders
import data.airlock.lib.invalid_licenses
import data.airlock.lib.invalid_waivers
import data.airlock.lib.max_high_vulnerabilities
import data.airlock.lib.passing_tests
import data.airlock.lib.promoted_to
import data.airlock.lib.rebuild_agreement_msg
import data.airlock.lib.rebuild_agreement_remediation
import data.airlock.lib.rebuild_agreement_required
import data.airlock.lib.tests_summary
import data.airlock.lib.trusted_builder_provenance
import data.airlock.lib.trusted_provenance
import data.airlock.lib.unwaived_high_count
import data.airlock.lib.unwaived_high_ids
import data.airlock.lib.violation
import data.airlock.lib.waived_high_ids

deny contains v if some v in staging_deny

warn contains v if some v in common_warn

approvals := break_glass_approvals if {
	break_glass
} else := 1

# --- provenance ---

deny contains violation(
	"prod.provenance_required",
	sprintf("%s has no verified SLSA provenance", [artifact_ref]),
	sprintf("build it on a trusted builder that emits SLSA provenance (e.g. GitHub Actions with actions/attest-build-provenance), or attest it: airlock attest HOST/%s --type slsaprovenance1 --predicate provenance.json --key cosign.key", [evidence_ref]),
) if {
	not has_provenance
}

deny contains violation(
	"prod.provenance_builder",
	sprintf("%s was built by %s, which is not an allowed builder (allowed: %s)", [
		artifact_ref,
		concat(", ", sort({p.builder_id | some p in input.evidence.provenance})),
		concat(", ", allowed_builders),
	]),
	"rebuild it on an allowed builder, or add the builder to data.airlock.config.allowed_builders in the policy bundle",
) if {
	has_provenance
	count(trusted_builder_provenance) == 0
}

deny contains violation(
	"prod.provenance_source",
	sprintf("%s was built from %s, which does not start with an allowed source prefix (allowed: %s)", [
		artifact_ref,
		concat(", ", sort({p.source_repository | some p in trusted_builder_provenance})),
		concat(", ", allowed_source_prefixes),
	]),
	"build it from an allowed source repository, or add the prefix to data.airlock.config.allowed_source_prefixes in the policy bundle",
) if {
	count(trusted_builder_provenance) > 0
	count(trusted_provenance) == 0
}

# --- vulnerabilities ---

deny contains violation(
	"prod.vulnerability_scan_required",
	sprintf("%s has no verified vulnerability report", [artifact_ref]),
	sprintf("scan it and attest the report: trivy image --format cosign-vuln -o vuln.json HOST/%s, then airlock attest HOST/%s --type vuln --predicate vuln.json --key cosign.key", [evidence_ref, evidence_ref]),
) if {
	not has_vulnerability_report
}

deny contains violation(
	"prod.critical_vulnerabilities",
	sprintf("%s has %d critical vulnerabilities: %s", [
		artifact_ref,
		critical_count,
		concat(", ", sort(finding_ids("critical"))),
	]),
	"update the affected packages to their fixed versions, rebuild and promote the new digest; critical vulnerabilities cannot be waived",
) if {
	critical_count > 0
}

deny contains violation(
	"prod.high_vulnerabilities",
	sprintf("%s has %d unwaived high vulnerabilities, more than the %d allowed: %s", [
		artifact_ref,
		unwaived_high_count,
		max_high_vulnerabilities,
		concat(", ", sort(unwaived_high_ids)),
	]),
	"update the affected packages to their fixed versions and rebuild, or add a waiver with an id, an expiry and a reason to data.airlock.config.waivers in the policy bundle",
) if {
	unwaived_high_count > max_high_vulnerabilities
}

warn contains violation(
	"prod.vulnerability_waived",
	sprintf("%s has high vulnerabilities accepted by waivers: %s", [
		artifact_ref,
		concat(", ", sort(waived_high_ids)),
	]),
	"fix them before the waivers expire; each waiver's expiry and reason are in data.airlock.config.waivers",
) if {
	count(waived_high_ids) > 0
}

warn contains violation(
	"prod.waiver_invalid",
	sprintf("waivers that waive nothing: %s", [concat(", ", sort(invalid_waivers))]),
	"give each waiver in data.airlock.config.waivers an expires date-time such as 2026-12-31T23:59:59Z, and a rule only if it is one that can be waived (see docs/policy.md#waivers)",
) if {
	count(invalid_waivers) > 0
}

# --- SBOM and licenses ---

deny contains violation(
	"prod.sbom_required",
	sprintf("%s has no verified SBOM", [artifact_ref]),
	sprintf("attest an SBOM: syft HOST/%s -o cyclonedx-json > sbom.json, then airlock attest HOST/%s --type cyclonedx --predicate sbom.json --key cosign.key", [evidence_ref, evidence_ref]),
) if {
	not has_sbom
}

deny contains violation(
	"prod.license_not_allowed",
	sprintf("%s contains licenses that are not allowed: %s (allowed: %s)", [
		artifact_ref,
		concat(", ", sort(disallowed_licenses)),
		concat(", ", allowed_licenses),
	]),
	"replace the components under these licenses, or, after legal review, add the license to data.airlock.config.allowed_licenses in the policy bundle",
) if {
	count(disallowed_licenses) > 0
}

deny contains violation(
	"prod.license_invalid",
	sprintf("%s has an SBOM with license expressions that are not valid SPDX: %s", [
		artifact_ref,
		concat("; ", sort(invalid_licenses)),
	]),
	"fix the license data of these components (valid SPDX ids, or LicenseRef-*), regenerate and attest the SBOM",
) if {
	has_invalid_licenses
}

# --- dependency health ---

deny contains violation(
	"prod.dependency_sources",
	sprintf("%s has components from sources no allowed_dependency_sources pattern allows: %s", [artifact_ref, disallowed_sources_text]),
	"take these components from an allowed source (the public registry of their ecosystem) and rebuild, or, if the source is trusted, add a pattern such as pkg:generic or pkg:npm?repository_url=https://npm.example.com to data.airlock.config.allowed_dependency_sources; a waiver in data.airlock.config.waivers with rule prod.dependency_sources and the source or package as id accepts it until it expires",
) if {
	count(disallowed_sources) > 0
}

deny contains violation(
	"prod.dependency_sources",
	sprintf("%s has components without a valid package URL, whose source cannot be checked: %s", [artifact_ref, unidentified_text]),
	"generate the SBOM with a tool that gives every component a package URL (syft, cdxgen, trivy), correct the invalid ones, and attest it again; a waiver in data.airlock.config.waivers with rule prod.dependency_sources and the component as id (as the message writes it, before the parenthesis) accepts one until it expires",
) if {
	count(unwaived_unidentified) + unlisted_unidentified > 0
}

deny contains violation(
	"prod.dependency_sources",
	sprintf("the SBOMs attested by %s carry no dependency facts (evidence.sboms[].dependencies), so their components' sources cannot be checked", [concat(", ", sort(sboms_without_dependencies))]),
	"run an airlock server as recent as this policy bundle: it derives the dependency facts from every verified SBOM",
) if {
	count(sboms_without_dependencies) > 0
}

# Checked only when a source is denied: an invalid pattern allows nothing, so it matters then.
warn contains violation(
	"prod.dependency_sources",
	sprintf("data.airlock.config.allowed_dependency_sources has patterns that are not valid, which allow nothing: %s", [bounded_list(sort(invalid_dependency_source_patterns))]),
	"write each pattern as pkg:TYPE or pkg:TYPE/NAMESPACE, optionally ending in *, optionally followed by ?repository_url=URL (see docs/policy.md#prod-dependency-sources)",
) if {
	count(disallowed_sources) > 0
	count(invalid_dependency_source_patterns) > 0
}

# --- independent rebuilds ---

deny contains violation("prod.rebuild_agreement", rebuild_agreement_msg, rebuild_agreement_remediation) if {
	has_provenance
	independent_builders < 2
	rebuild_agreement_required
}

warn contains violation(
	"prod.rebuild_agreement",
	rebuild_agreement_msg,
	concat("", [rebuild_agreement_remediation, "; this denies in repositories listed in data.airlock.config.rebuild_agreement_repositories"]),
) if {
	has_provenance
	independent_builders < 2
	not rebuild_agreement_required
}

deny contains violation(
	"prod.unpinned_inputs",
	sprintf("%s was built from inputs not pinned by digest: %s", [artifact_ref, unpinned_inputs_text]),
	unpinned_inputs_remediation,
) if {
	count(unwaived_unpinned_inputs) > 0
	repository_critical
}

warn contains violation(
	"prod.unpinned_inputs",
	sprintf("%s was built from inputs not pinned by digest: %s", [artifact_ref, unpinned_inputs_text]),
	concat("", [unpinned_inputs_remediation, "; this denies in repositories listed in data.airlock.config.critical_repositories"]),
) if {
	count(unwaived_unpinned_inputs) > 0
	not repository_critical
}

deny contains v if {
	scorecard_enforced
	some v in scorecard_violations
}

warn contains v if {
	not scorecard_enforced
	some v in scorecard_violations
}

deny contains violation(
	"prod.end_of_life",
	sprintf("%s contains components past their end of life: %s", [artifact_ref, eol_text]),
	"upgrade them to a supported release and rebuild (the dates are data.airlock.config.eol); a waiver in data.airlock.config.waivers with rule prod.end_of_life and the package (e.g. pkg:generic/node) or the eol pattern (pkg:generic/node@16) as id accepts it until it expires",
) if {
	count(eol_unwaived) > 0
}

warn contains violation(
	"prod.dependency_waived",
	sprintf("%s passes dependency rules only through waivers: %s", [artifact_ref, bounded_list(dependency_waivers_used)]),
	"fix them before the waivers expire; each waiver's rule, expiry and reason are in data.airlock.config.waivers",
) if {
	count(dependency_waivers_used) > 0
}

# --- tests ---

deny contains violation(
	"prod.tests_required",
	sprintf("%s has no passing test-result attestation (%s)", [artifact_ref, tests_summary]),
	sprintf("run the test suite against this build and attest a passing result: airlock attest HOST/%s --type https://in-toto.io/attestation/test-result/v0.1 --predicate results.json --key cosign.key", [evidence_ref]),
) if {
	count(passing_tests) == 0
}

# --- history ---

deny contains violation(
	"prod.staging_first",
	sprintf("%s has not been promoted to staging", [artifact_ref]),
	"promote the same digest to staging first (airlock promote), then to prod: prod takes only what passed staging",
) if {
	not promoted_to("staging")
}
