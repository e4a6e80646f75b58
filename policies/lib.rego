# Helpers shared by airlock's default gates: pure functions (the shape of a violation, key
# scope matching, SPDX license expressions), then the facts the gates derive from the
# promotion input (version 1, see docs/policy.md) and from data.airlock.config, and the checks
# several gates share.
#
# Every message and remediation helper has a default, so a deny rule can never become
# undefined (and so silently allow) because a field it wanted to quote is missing.
#
# One package, one file: airlock refuses a package split across files (see docs/policy.md).
package airlock.lib

# === pure functions ===

# violation is the object every deny and warn rule returns. The docs link is derived from the
# rule id ("prod.high_vulnerabilities" -> "docs/policy.md#prod-high-vulnerabilities"), so every
# rule id must have that anchor in docs/policy.md.
violation(rule, msg, remediation) := {
	"rule": rule,
	"msg": msg,
	"remediation": remediation,
	"docs": concat("", ["docs/policy.md#", replace(replace(rule, ".", "-"), "_", "-")]),
}

# scope_covers holds when a keyring scope pattern covers a repository path (without its stage):
# "*" covers everything, "team/app" only itself, "team/*" everything under "team/".
scope_covers(pattern, _) if pattern == "*"

scope_covers(pattern, repository) if pattern == repository

scope_covers(pattern, repository) if {
	endswith(pattern, "/*")
	startswith(repository, trim_suffix(pattern, "*"))
}

# license_allowed is true when the SPDX expression can be satisfied using only licenses listed
# in allowed, false otherwise: for "A OR B" one alternative suffices, "A AND B" needs both, AND
# binds tighter than OR and parentheses group as SPDX says. "X WITH exception" counts as X (an
# exception only grants extra permissions) unless "X WITH exception" itself is listed.
# Expressions nested more than six parentheses deep, or malformed ones, are never allowed.
#
# Cheapest first: a listed expression; an expression without parentheses or WITH, read as
# alternatives of conjunctions; then the general case, which reduces the innermost
# parenthesised group to "T" or "F" one at a time. (`else` chains, not several bodies: regorus
# evaluates every body of a function, and this runs for every license of every SBOM.)
license_allowed(expression, allowed) := true if {
	expression in allowed
} else := true if {
	not contains(expression, "(")
	not contains(expression, ")")
	not contains(expression, " WITH ")
	some alternative in split(expression, " OR ")
	every id in split(alternative, " AND ") {
		id in allowed
	}
} else := true if {
	regex.match(`[()]| WITH `, expression)
	tokens := license_truth_tokens(expression, allowed)
	reduced := reduce_license_group(reduce_license_group(reduce_license_group(
		reduce_license_group(reduce_license_group(reduce_license_group(tokens))),
	)))
	license_alternatives_hold(reduced)
} else := false

# license_tokens splits a canonical SPDX expression into terms, operators and parentheses;
# "X WITH exception" stays one term, "X+WITH+exception".
license_tokens(expression) := [token |
	spaced := replace(replace(replace(expression, " WITH ", "+WITH+"), "(", " ( "), ")", " ) ")
	some token in split(spaced, " ")
	token != ""
]

license_operators := {"(", ")", "AND", "OR"}

# license_truth_tokens replaces each license term by "T" (allowed) or "F", keeping AND, OR and
# parentheses.
license_truth_tokens(expression, allowed) := [license_token_truth(token, allowed) |
	some token in license_tokens(expression)
]

license_token_truth(token, allowed) := token if {
	token in license_operators
} else := "T" if {
	token in allowed
} else := "T" if {
	parts := split(token, "+WITH+")
	count(parts) == 2
	some listed in [parts[0], concat(" WITH ", parts)]
	listed in allowed
} else := "F"

# reduce_license_group replaces the innermost parenthesised group by its truth value.
reduce_license_group(tokens) := reduced if {
	")" in tokens
	close := min({i | some i, token in tokens; token == ")"})
	open := max({i | some i, token in tokens; token == "("; i < close})
	value := license_group_value(array.slice(tokens, open + 1, close))
	before := array.slice(tokens, 0, open)
	after := array.slice(tokens, close + 1, count(tokens))
	reduced := array.concat(array.concat(before, [value]), after)
} else := tokens

license_group_value(tokens) := "T" if {
	license_alternatives_hold(tokens)
} else := "F"

# license_alternatives_hold holds for a flat "T"/"F" expression (no parentheses) when some
# OR-alternative consists only of "T" terms joined by AND.
license_alternatives_hold(tokens) if {
	not "(" in tokens
	not ")" in tokens
	some alternative in split(concat(" ", tokens), " OR ")
	every term in split(alternative, " AND ") {
		term == "T"
	}
}

# === facts from the input and configuration ===

# The input document version this bundle is written for.
supported_input_version := 1

# --- configuration (data.airlock.config); missing settings fall back to the strictest value ---

default allowed_builders := []

allowed_builders := data.airlock.config.allowed_builders

default allowed_source_prefixes := []

allowed_source_prefixes := data.airlock.config.allowed_source_prefixes

default allowed_licenses := []

allowed_licenses := data.airlock.config.allowed_licenses

default max_high_vulnerabilities := 0

max_high_vulnerabilities := data.airlock.config.max_high_vulnerabilities

default waivers := []

waivers := data.airlock.config.waivers

# --- the artifact ---

default artifact_ref := "the artifact"

artifact_ref := sprintf("%s@%s", [input.artifact.name, input.artifact.digest])

# Where evidence is added: the artifact in the push stage it came from (evidence belongs to the
# repository path, so it counts in every stage; gated stages refuse pushes).
default evidence_ref := "the artifact in its push stage"

evidence_ref := sprintf("%s@%s", [input.artifact.origin, input.artifact.digest])

default target_stage := "the target stage"

target_stage := input.target.stage

revoked if "evidence_revoked" in input.artifact.flags

# --- signatures ---

default signatures := []

signatures := input.evidence.signatures

# Verified signatures whose key scope covers the artifact's repository.
covering_signatures contains signature if {
	some signature in signatures
	some pattern in signature.key_scope
	scope_covers(pattern, input.artifact.repository)
}

signed if count(covering_signatures) > 0

default rejected_summary := ""

rejected_summary := summary if {
	reasons := [sprintf("%s: %s", [r.reason_code, r.reason]) | some r in input.evidence.rejected]
	count(reasons) > 0
	summary := sprintf("; rejected evidence: %s", [concat("; ", reasons)])
}

default signature_msg := "no verified signature covers the artifact's repository"

signature_msg := msg if {
	count(signatures) == 0
	msg := sprintf("%s has no verified signature%s", [artifact_ref, rejected_summary])
}

signature_msg := msg if {
	count(signatures) > 0
	keys := concat(", ", sort({s.key | some s in signatures}))
	scopes := concat(", ", sort({p | some s in signatures; some p in s.key_scope}))
	msg := sprintf(
		"%s is signed by %s, but no such key's scope (%s) covers %s",
		[artifact_ref, keys, scopes, input.artifact.repository],
	)
}

default signature_remediation := "sign it with a key in airlock's keyring whose scope covers the repository: airlock sign HOST/STAGE/REPO@DIGEST --key cosign.key"

signature_remediation := sprintf(
	"sign it: airlock sign HOST/%s --key cosign.key (or cosign sign --key cosign.key HOST/%s); the key must be in airlock's keyring with a scope covering %s (airlock keys list)",
	[evidence_ref, evidence_ref, input.artifact.repository],
)

# signature_violation is the violation, under the given rule id, for an artifact without a
# verified signature whose key scope covers its repository.
signature_violation(rule) := violation(rule, signature_msg, signature_remediation)

# --- checks every gate shares ---

# Break-glass counts only when requested with a reason by a holder of the break-glass role
# (the service checks this too; the policy does not take the request's word for it).
break_glass if {
	input.break_glass.requested == true
	is_string(input.break_glass.reason)
	trim_space(input.break_glass.reason) != ""
	some binding in input.requester.roles
	binding.role == "break-glass"
}

default freeze_reason := "no reason given"

freeze_reason := input.target.freeze_reason if is_string(input.target.freeze_reason)

default requester := "the requester"

requester := input.requester.principal

# Violations every gate of a promotion denies with.
common_deny contains violation(
	"common.input_version",
	sprintf("the promotion input has version %v; this policy bundle reads version %d", [object.get(input, "version", null), supported_input_version]),
	"run an airlock server and policy bundle of matching versions: update the bundle (airlock policy test ./policies) or the server",
) if {
	input.version != supported_input_version
}

common_deny contains violation(
	"common.input_version",
	sprintf("the promotion input has no version; this policy bundle reads version %d", [supported_input_version]),
	"run an airlock server and policy bundle of matching versions: update the bundle (airlock policy test ./policies) or the server",
) if {
	not input.version
}

common_deny contains violation(
	"common.stage_frozen",
	sprintf("stage %s is frozen: %s", [target_stage, freeze_reason]),
	sprintf("wait until the freeze on %s is lifted (airlock unfreeze), or, for an emergency, promote with break-glass: the break-glass role, a reason and two approvals", [target_stage]),
) if {
	input.target.frozen == true
	not break_glass
}

common_deny contains violation(
	"common.evidence_revoked",
	sprintf("%s is flagged evidence_revoked in %s: evidence it was promoted on is no longer trusted", [artifact_ref, target_stage]),
	"rebuild, sign and attest it again with trusted keys and promote the new digest; airlock show on the artifact lists which evidence was revoked",
) if {
	revoked
}

common_deny contains violation(
	"common.break_glass_invalid",
	sprintf("%s requested break-glass without the break-glass role or without a reason", [requester]),
	"break-glass needs the break-glass role (airlock access request break-glass --scope STAGE --for 1h --reason ...) and a reason; otherwise promote without it",
) if {
	input.break_glass.requested == true
	not break_glass
}

# Warnings every gate of a promotion gives.
common_warn contains violation(
	"common.break_glass",
	sprintf("break-glass promotion by %s into frozen stage %s (%s): %s", [requester, target_stage, freeze_reason, input.break_glass.reason]),
	"review this promotion after the emergency; break-glass needs two approvals and raises an alert",
) if {
	break_glass
	input.target.frozen == true
}

# Approvals a gate requires at least while break-glass is used.
break_glass_approvals := 2

# --- provenance ---

has_provenance if count(input.evidence.provenance) > 0

trusted_builder_provenance contains p if {
	some p in input.evidence.provenance
	p.builder_id in allowed_builders
}

trusted_provenance contains p if {
	some p in trusted_builder_provenance
	some prefix in allowed_source_prefixes
	startswith(p.source_repository, prefix)
}

# --- vulnerabilities ---

has_vulnerability_report if count(input.evidence.vulnerabilities) > 0

# Ids of the findings of a severity, over every verified report.
finding_ids(severity) := {f.id |
	some report in input.evidence.vulnerabilities
	some f in report.findings
	f.severity == severity
}

# Findings a report counts but does not name (a scanner that reports counts only). They cannot
# be waived; the largest such number over all reports is taken.
unnamed_findings(severity) := max({0} | {n |
	some report in input.evidence.vulnerabilities
	named := count([f | some f in report.findings; f.severity == severity])
	n := report.counts[severity] - named
})

# RFC 3339 date-times, checked before parsing: a built-in error would fail the whole
# evaluation (closed), so data that may be malformed is checked first.
rfc3339_pattern := `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`

is_rfc3339(text) if {
	is_string(text)
	regex.match(rfc3339_pattern, text)
}

now_ns := time.parse_rfc3339_ns(input.now) if is_rfc3339(input.now)

# Ids named by a waiver that has not expired at input.now. A waiver whose expiry is not an
# RFC 3339 date-time waives nothing (and prod warns about it).
active_waivers contains w.id if {
	some w in waivers
	is_rfc3339(w.expires)
	time.parse_rfc3339_ns(w.expires) > now_ns
}

invalid_waivers contains object.get(w, "id", "(no id)") if {
	some w in waivers
	not is_rfc3339(w.expires)
}

waived_high_ids := {id | some id in finding_ids("high"); id in active_waivers}

unwaived_high_ids := {id | some id in finding_ids("high"); not id in active_waivers}

unwaived_high_count := count(unwaived_high_ids) + unnamed_findings("high")

critical_count := count(finding_ids("critical")) + unnamed_findings("critical")

# --- SBOMs and licenses ---

has_sbom if count(input.evidence.sboms) > 0

disallowed_licenses contains expression if {
	some sbom in input.evidence.sboms
	some expression in sbom.licenses
	not license_allowed(expression, allowed_licenses)
}

has_invalid_licenses if {
	some sbom in input.evidence.sboms
	count(sbom.invalid_licenses) > 0
}

# "component: expression (why)" for each license the SBOM's parser could not read.
invalid_licenses contains sprintf("%v: %v (%v)", [
	object.get(entry, "component", "?"),
	object.get(entry, "expression", "?"),
	object.get(entry, "error", "?"),
]) if {
	some sbom in input.evidence.sboms
	some entry in sbom.invalid_licenses
}

# --- test results ---

passing_tests contains t if {
	some t in input.evidence.tests
	t.result == "passed"
	t.failed == 0
}

default tests_summary := "none attested"

tests_summary := concat(", ", sort({sprintf("%v, %v failed", [t.result, t.failed]) | some t in input.evidence.tests})) if {
	count(input.evidence.tests) > 0
}

# --- history ---

promoted_to(stage) if {
	some entry in input.history
	entry.stage == stage
	entry.state == "promoted"
}
