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

# A setting of the wrong type counts as missing, so it too takes the strictest value.
default allowed_dependency_sources := []

allowed_dependency_sources := data.airlock.config.allowed_dependency_sources if is_array(data.airlock.config.allowed_dependency_sources)

default critical_repositories := ["*"]

critical_repositories := data.airlock.config.critical_repositories if is_array(data.airlock.config.critical_repositories)

default scorecard_minimum := 10

scorecard_minimum := data.airlock.config.scorecard_minimum if is_number(data.airlock.config.scorecard_minimum)

default scorecard_enforced_repositories := []

scorecard_enforced_repositories := data.airlock.config.scorecard_enforced_repositories if {
	is_array(data.airlock.config.scorecard_enforced_repositories)
} else := ["*"] if {
	data.airlock.config.scorecard_enforced_repositories
}

default scorecard_max_age_days := 90

scorecard_max_age_days := data.airlock.config.scorecard_max_age_days if {
	is_number(data.airlock.config.scorecard_max_age_days)
	data.airlock.config.scorecard_max_age_days >= 0
}

default eol := {}

eol := data.airlock.config.eol if is_object(data.airlock.config.eol)

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

# is_date holds for "YYYY-MM-DD". Dates and config patterns are checked with string built-ins,
# not regex.match: regorus compiles a regular expression at every call, which would cost more
# than the rest of an evaluation.
is_date(text) if {
	is_string(text)
	count(text) == 10
	parts := split(text, "-")
	count(parts) == 3
	count(parts[0]) == 4
	count(parts[1]) == 2
	trim(concat("", parts), "0123456789") == ""
}

# calendar_date_valid holds when the date a "YYYY-MM-DD..." text starts with exists (no
# February 30th) and lies within 1678..2261, the years a nanosecond timestamp can hold: the
# parser fails the evaluation on anything else. Only for texts whose first ten characters are
# such digits and dashes (to_number refuses leading zeros, hence trim_left).
calendar_date_valid(text) if {
	substring(text, 0, 4) >= "1678"
	substring(text, 0, 4) <= "2261"
	substring(text, 5, 2) >= "01"
	substring(text, 5, 2) <= "12"
	substring(text, 8, 2) >= "01"
	year := to_number(substring(text, 0, 4))
	month := to_number(trim_left(substring(text, 5, 2), "0"))
	day := to_number(trim_left(substring(text, 8, 2), "0"))
	day <= days_in_month(year, month)
}

days_in_month(year, month) := 29 if {
	month == 2
	year % 4 == 0
	not year_is_common_century(year)
} else := [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]

year_is_common_century(year) if {
	year % 100 == 0
	year % 400 != 0
}

# timestamp_ns is an RFC 3339 date-time in nanoseconds since the epoch; undefined (never an
# error) for anything else.
timestamp_ns(text) := time.parse_rfc3339_ns(text) if {
	is_rfc3339(text)
	calendar_date_valid(text)
}

# date_ns reads "YYYY-MM-DD" (the start of that day, UTC) or an RFC 3339 date-time; undefined
# (never an error) for anything else.
date_ns(text) := time.parse_rfc3339_ns(concat("", [text, "T00:00:00Z"])) if {
	is_date(text)
	calendar_date_valid(text)
} else := timestamp_ns(text) if {
	is_string(text)
	count(text) > 10
}

now_ns := timestamp_ns(input.now)

# Waivers. A waiver without `rule` (or with rule prod.high_vulnerabilities) waives a high
# vulnerability id, as before rule-scoped waivers existed; a waiver with `rule` waives, for
# that rule only, what its id names (see docs/policy.md#waivers). A waiver counts while its
# expires, an RFC 3339 date-time, is after input.now; one whose expiry cannot be read, or
# whose rule cannot be waived, waives nothing (and prod warns about it).
waivable_rules := {
	"prod.high_vulnerabilities",
	"prod.dependency_sources",
	"prod.unpinned_inputs",
	"prod.scorecard_minimum",
	"prod.end_of_life",
}

unexpired_waivers contains w if {
	some w in waivers
	timestamp_ns(w.expires) > now_ns
}

# Ids of the high vulnerabilities unexpired waivers accept.
active_waivers contains w.id if {
	some w in unexpired_waivers
	object.get(w, "rule", "prod.high_vulnerabilities") == "prod.high_vulnerabilities"
}

# Pairs {"rule", "id"} of the unexpired rule-scoped waivers.
active_rule_waivers contains {"rule": w.rule, "id": w.id} if {
	some w in unexpired_waivers
	w.rule in waivable_rules
	w.rule != "prod.high_vulnerabilities"
}

rule_waived(rule, id) if {"rule": rule, "id": id} in active_rule_waivers

# "id (why)" for each waiver that waives nothing whatever the input.
invalid_waivers contains sprintf("%v (expires is not an RFC 3339 date-time)", [object.get(w, "id", "(no id)")]) if {
	some w in waivers
	not timestamp_ns(w.expires)
}

invalid_waivers contains sprintf("%v (rule %v cannot be waived)", [object.get(w, "id", "(no id)"), rule]) if {
	some w in waivers
	rule := object.get(w, "rule", null)
	rule != null
	not rule in waivable_rules
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

# --- dependency health ---

# bounded_list joins a sorted array of strings, naming at most ten: "a, b, ... and 3 more".
bounded_list(items) := concat(", ", items) if {
	count(items) <= 10
} else := sprintf("%s and %d more", [concat(", ", array.slice(items, 0, 10)), count(items) - 10])

# repository_in_scope holds when a scope pattern of the list covers the artifact's repository.
repository_in_scope(patterns) if {
	some pattern in patterns
	is_string(pattern)
	scope_covers(pattern, input.artifact.repository)
}

# Sources of dependencies. A pattern is pkg:TYPE or pkg:TYPE/NAMESPACE, either optionally
# ending in "*", optionally followed by ?repository_url=URL (see docs/policy.md). A literal "@"
# in a namespace is read as the purl spec writes it, "%40".
#
# Cost: a source is looked up in the set of patterns, by each of its prefixes ("pkg:deb",
# "pkg:deb/debian"), so the work grows with the sources, not with sources x patterns, and no
# pattern is parsed; only patterns with a "*" are parsed, and only for a source the lookup did
# not allow. (In regorus a rule is evaluated once per evaluation, a function at every call.)
allowed_source_set := {p | some p in allowed_dependency_sources}

dependency_source_globs contains parsed if {
	some pattern in allowed_dependency_sources
	is_string(pattern)
	contains(pattern, "*")
	parsed := dependency_source_pattern(pattern)
}

invalid_dependency_source_patterns contains sprintf("%v", [pattern]) if {
	some pattern in allowed_dependency_sources
	not dependency_source_pattern(pattern)
}

# dependency_source_pattern is a valid pattern's {"path", "repository_url"}; undefined otherwise.
dependency_source_pattern(pattern) := {"path": replace(parts[0], "@", "%40"), "repository_url": url} if {
	is_string(pattern)
	parts := split(pattern, "?repository_url=")
	url := dependency_pattern_url(parts)
	dependency_source_path_valid(parts[0])
}

dependency_pattern_url(parts) := null if {
	count(parts) == 1
} else := parts[1] if {
	count(parts) == 2
	parts[1] != ""
	not contains(parts[1], "?")
}

# "pkg:*", or "pkg:" then a lower-case type and namespace segments, none empty, with at most a
# trailing "*".
dependency_source_path_valid(path) := true if {
	path == "pkg:*"
} else := true if {
	startswith(path, "pkg:")
	not contains(path, "?")
	not contains(path, "#")
	body := trim_suffix(trim_prefix(path, "pkg:"), "*")
	not contains(body, "*")
	segments := split(body, "/")
	every segment in segments {
		segment != ""
	}
	segments[0] == lower(segments[0])
	not contains(segments[0], " ")
	purl_canonical(segments[0], concat("/", array.slice(segments, 1, count(segments))))
} else := false

# Types whose namespace and name the purl spec lower-cases: a pattern or eol key with an
# upper-case letter there (or, for pypi, a "_", which the spec writes "-") matches nothing the
# facts give, so the bundle's tests refuse it.
purl_lowercased_types := {"npm", "pypi", "deb", "apk", "golang", "github", "bitbucket", "composer", "hex"}

# purl_canonical holds when the rest of a purl (namespace and name, without version) is
# written as the purl spec canonicalises it for its type.
purl_canonical(purl_type, rest) if {
	not purl_type in purl_lowercased_types
} else if {
	rest == lower(rest)
	purl_type != "pypi"
} else if {
	rest == lower(rest)
	not contains(rest, "_")
}

# dependency_path_matches: the pattern's path equals the source, or the source continues it
# after a "/", or (trailing "*") the source starts with it.
dependency_path_matches(path, source) := true if {
	path == source
} else := true if {
	not endswith(path, "*")
	startswith(source, concat("", [path, "/"]))
} else := true if {
	endswith(path, "*")
	startswith(source, trim_suffix(path, "*"))
} else := false

dependency_source_allowed(source) := true if {
	# The common cases first: a pattern naming the type, or the whole source.
	is_string(source.source)
	suffix := dependency_source_suffix(source)
	some path in [split(source.source, "/")[0], source.source]
	concat("", [path, suffix]) in allowed_source_set
} else := true if {
	some candidate in dependency_source_candidates(source)
	candidate in allowed_source_set
} else := true if {
	is_string(source.source)
	some pattern in dependency_source_globs
	object.get(source, "repository_url", null) == pattern.repository_url
	dependency_path_matches(pattern.path, source.source)
} else := false

# The patterns without "*" that allow a source: each of its path prefixes at a "/", with the
# source's ?repository_url=, and each also with "@" for "%40".
dependency_source_candidates(source) := {candidate |
	is_string(source.source)
	segments := split(source.source, "/")
	suffix := dependency_source_suffix(source)
	some i in numbers.range(1, count(segments))
	path := concat("/", array.slice(segments, 0, i))
	some candidate in {concat("", [path, suffix]), concat("", [replace(path, "%40", "@"), suffix])}
}

dependency_source_suffix(source) := concat("", ["?repository_url=", source.repository_url]) if {
	is_string(source.repository_url)
} else := ""

# The name of a source in messages and waivers: "pkg:npm", "pkg:npm?repository_url=URL".
dependency_source_label(source) := sprintf("%v?repository_url=%v", [source.source, source.repository_url]) if {
	is_string(source.repository_url)
} else := sprintf("%v", [object.get(source, "source", "?")])

# dependency_source_waived: the source is named by a waiver, or every package of its type and
# namespace the SBOM lists is (a package's registry is not part of its name, so a package
# waiver is only counted when it covers every such package).
dependency_source_waived(_, source) if {
	rule_waived("prod.dependency_sources", dependency_source_label(source))
}

# Only when a prod.dependency_sources waiver is active are the SBOM's packages scanned, once
# per waiver, so an SBOM with many disallowed sources costs nothing more without waivers.
dependency_source_waived(i, source) if {
	not rule_waived("prod.dependency_sources", dependency_source_label(source))
	count(dependency_package_waivers) > 0
	prefix := concat("", [source.source, "/"])
	some waived in dependency_package_waivers
	startswith(waived, prefix)
	packages := [name |
		some name, _ in input.evidence.sboms[i].dependencies.packages
		startswith(name, prefix)
		not contains(trim_prefix(name, prefix), "/")
	]
	count(packages) > 0
	every name in packages {
		rule_waived("prod.dependency_sources", name)
	}
}

# Ids of the active prod.dependency_sources waivers.
dependency_package_waivers := {w.id |
	some w in active_rule_waivers
	w.rule == "prod.dependency_sources"
	is_string(w.id)
}

# Sources of components no pattern allows, with the index of their SBOM (keying by the SBOM's
# whole dependency facts would compare them at every lookup).
unallowed_dependency_sources contains [i, source] if {
	some i, sbom in input.evidence.sboms
	some source in sbom.dependencies.sources
	not dependency_source_allowed(source)
}

disallowed_sources contains dependency_source_label(source) if {
	some [i, source] in unallowed_dependency_sources
	not dependency_source_waived(i, source)
}

waived_sources contains dependency_source_label(source) if {
	some [i, source] in unallowed_dependency_sources
	dependency_source_waived(i, source)
}

# "pkg:generic (2 components, e.g. pkg:generic/node@16.20.2, ...)" for a source label.
dependency_source_description(label) := sprintf("%s (%s, e.g. %s)", [label, components_text(n), concat(", ", examples)]) if {
	sources := [source |
		some [_, source] in unallowed_dependency_sources
		dependency_source_label(source) == label
	]
	n := max([object.get(source, "components", 0) | some source in sources])
	examples := array.slice(sort({e | some source in sources; some e in source.examples}), 0, 3)
} else := label

components_text(1) := "1 component"

components_text(n) := sprintf("%v components", [n]) if n != 1

# The first ten disallowed sources, described, then how many more.
default disallowed_sources_text := "unknown sources"

disallowed_sources_text := bounded_list(array.concat(
	[dependency_source_description(label) | some label in array.slice(sort(disallowed_sources), 0, 10)],
	[sprintf("%v", [label]) | some label in array.slice(sort(disallowed_sources), 10, count(disallowed_sources))],
))

# Components whose source cannot be checked: no package URL, or an invalid one.
unidentified_components contains u if {
	some sbom in input.evidence.sboms
	some u in sbom.dependencies.unidentifiable
	u.reason != "no version"
}

unwaived_unidentified contains sprintf("%v (%v)", [u.component, u.reason]) if {
	some u in unidentified_components
	not rule_waived("prod.dependency_sources", u.component)
}

waived_unidentified contains sprintf("%v", [u.component]) if {
	some u in unidentified_components
	rule_waived("prod.dependency_sources", u.component)
}

# Components without a valid package URL that the facts count but do not list (they list the
# first 20 of each SBOM): they cannot be waived.
unlisted_unidentified := max({0} | {n |
	some sbom in input.evidence.sboms
	listed := count([u | some u in sbom.dependencies.unidentifiable; u.reason != "no version"])
	n := sbom.dependencies.unidentified - listed
})

default unidentified_text := "components without a valid package URL"

unidentified_text := bounded_list(sort(unwaived_unidentified)) if {
	unlisted_unidentified == 0
} else := sprintf("%s and %d more not listed", [bounded_list(sort(unwaived_unidentified)), unlisted_unidentified]) if {
	count(unwaived_unidentified) > 0
} else := sprintf("%d not listed", [unlisted_unidentified])

# Keys of SBOMs without dependency facts: their components' sources cannot be checked.
sboms_without_dependencies contains sprintf("%v", [object.get(sbom, "key", "?")]) if {
	some sbom in input.evidence.sboms
	not is_object(sbom.dependencies)
}

# --- provenance inputs ---

default unpinned_inputs_remediation := "pin every build input by digest and rebuild"

unpinned_inputs_remediation := "pin every build input by digest (a commit SHA instead of a branch or tag, an image digest instead of a tag, a checksum for downloads) so the provenance records it, and rebuild; a waiver in data.airlock.config.waivers with rule prod.unpinned_inputs and the input's uri as id accepts one until it expires"

repository_critical if repository_in_scope(critical_repositories)

# --- independent rebuilds ---

# Repositories (without stage) where prod.rebuild_agreement denies; elsewhere it warns.
default rebuild_agreement_repositories := []

rebuild_agreement_repositories := data.airlock.config.rebuild_agreement_repositories if is_array(data.airlock.config.rebuild_agreement_repositories)

rebuild_agreement_required if repository_in_scope(rebuild_agreement_repositories)

# How many independent builders (distinct builder ids and distinct signing keys) built this very
# digest from one source revision: input.evidence.rebuilds, which airlock derives from the
# verified provenance (missing: 0).
default independent_builders := 0

independent_builders := input.evidence.rebuilds.independent if is_number(input.evidence.rebuilds.independent)

default rebuild_revision := "its source revision"

rebuild_revision := sprintf("%s@%s", [input.evidence.rebuilds.source_repository, input.evidence.rebuilds.commit]) if {
	is_string(input.evidence.rebuilds.source_repository)
	is_string(input.evidence.rebuilds.commit)
}

rebuild_agreement_msg := sprintf(
	"%s was built from %s by %d independent builder(s); at least 2 builders with distinct builder ids and distinct signing keys must produce this same digest",
	[artifact_ref, rebuild_revision, independent_builders],
)

rebuild_agreement_remediation := sprintf(
	"rebuild the same source revision on a second, independent builder (another builder id, signing with its own keyring key) and attach its SLSA provenance to this digest: airlock attest HOST/%s --type slsaprovenance1 --predicate provenance.json --key builder2.key; if the rebuild produces another digest, the build is not reproducible: fix that first",
	[evidence_ref],
)

# Inputs of trusted provenance without a digest; provenance that does not say is listed too
# (fail closed).
provenance_unpinned_inputs contains sprintf("%v", [uri]) if {
	some p in trusted_provenance
	some uri in p.unpinned_inputs
}

provenance_unpinned_inputs contains sprintf("(the provenance attested by %v does not say which inputs are pinned)", [object.get(p, "key", "?")]) if {
	some p in trusted_provenance
	not is_array(p.unpinned_inputs)
}

unwaived_unpinned_inputs contains uri if {
	some uri in provenance_unpinned_inputs
	not rule_waived("prod.unpinned_inputs", uri)
}

waived_unpinned_inputs contains uri if {
	some uri in provenance_unpinned_inputs
	rule_waived("prod.unpinned_inputs", uri)
}

default unpinned_inputs_text := "unpinned inputs"

unpinned_inputs_text := bounded_list(sort(unwaived_unpinned_inputs))

# --- OpenSSF Scorecard ---

scorecard_enforced if repository_in_scope(scorecard_enforced_repositories)

# normalized_repository compares repository names: no scheme, no "www.", no trailing "/" or
# ".git", lower case ("https://www.GitHub.com/acme/app.git" -> "github.com/acme/app").
normalized_repository(url) := trim_suffix(trim_suffix(trim_suffix(trim_prefix(without_scheme(lower(url)), "www."), "/"), ".git"), "/")

without_scheme(url) := concat("://", array.slice(parts, 1, count(parts))) if {
	parts := split(url, "://")
	count(parts) > 1
} else := url

# The source repositories of trusted provenance, normalized.
source_repositories contains normalized_repository(p.source_repository) if {
	some p in trusted_provenance
	is_string(p.source_repository)
}

default scorecards := []

scorecards := input.evidence.scorecards if is_array(input.evidence.scorecards)

# [repository (normalized), result, date in ns] for each Scorecard result that names its
# repository, normalized and its date read once per evaluation. (The facts only hold an RFC
# 3339 date-time or a YYYY-MM-DD date; a result whose date cannot be read does not count.)
scorecard_results contains [normalized_repository(s.repository), s, ns] if {
	some s in scorecards
	is_string(s.repository)
	ns := date_ns(s.date)
}

scorecard_repositories := {repository | some [repository, _, _] in scorecard_results}

# [repository, result, date in ns] for the newest results (by the time their dates name;
# several if attested for the same time) of each source repository. (The date is read once:
# reading an RFC 3339 date-time costs a regular expression.)
source_scorecards contains [repository, s, ns] if {
	some [repository, s, ns] in scorecard_results
	repository in source_repositories
	newest := max({x | some [r, _, x] in scorecard_results; r == repository})
	ns == newest
}

maintained_score(s) := object.get(object.get(s, "checks", {}), "Maintained", null)

# A result passes with a score at least the minimum, a Maintained check other than 0 (-1,
# inconclusive, passes; a result without it, from a partial run, does not), and a date at most
# scorecard_max_age_days before now.
scorecard_passes(s, ns) if {
	s.score >= scorecard_minimum
	is_number(maintained_score(s))
	maintained_score(s) != 0
	ns >= scorecard_oldest_ns
}

# The oldest time a passing result may be from.
scorecard_oldest_ns := now_ns - (((scorecard_max_age_days * 24) * 3600) * 1000000000)

# Source repositories whose newest Scorecard result fails, or that have none.
scorecard_failing contains repository if {
	some [repository, s, ns] in source_scorecards
	not scorecard_passes(s, ns)
}

scorecard_missing contains repository if {
	some repository in source_repositories
	not repository in scorecard_repositories
}

# Source repositories with a failing or missing result that no waiver accepts.
scorecard_unwaived contains repository if {
	some repository in source_repositories
	scorecard_not_ok(repository)
	not scorecard_waived(repository)
}

scorecard_not_ok(repository) := true if {
	not repository in scorecard_repositories
} else := true if {
	repository in scorecard_failing
} else := false

scorecard_waived(repository) if {
	some w in active_rule_waivers
	w.rule == "prod.scorecard_minimum"
	is_string(w.id)
	normalized_repository(w.id) == repository
}

waived_scorecards := {r |
	some r in source_repositories
	scorecard_not_ok(r)
	scorecard_waived(r)
}


# "github.com/acme/app scores 4.2 (2026-11-20), below the minimum 5; its Maintained check is 0"
scorecard_failure(repository) := concat("; ", [text |
	some [r, s, ns] in source_scorecards
	r == repository
	not scorecard_passes(s, ns)
	reasons := [reason |
		some reason in [
			sprintf("scores %v, below the minimum %v", [s.score, scorecard_minimum]),
			"its Maintained check is 0 (archived, inactive for 90 days, or younger than that)",
			"does not include the Maintained check (a partial run, scorecard --checks=...)",
			sprintf("is from %v, older than %v days", [s.date, scorecard_max_age_days]),
		]
		scorecard_reason_applies(reason, s, ns)
	]
	text := sprintf("%v (%v, attested by %v) %s", [repository, s.date, object.get(s, "key", "?"), concat(" and ", reasons)])
]) if {
	repository in scorecard_failing
} else := sprintf("%v fails the Scorecard minimum", [repository])

scorecard_reason_applies(reason, s, _) if {
	startswith(reason, "scores")
	not s.score >= scorecard_minimum
}

scorecard_reason_applies(reason, s, _) if {
	startswith(reason, "its Maintained")
	maintained_score(s) == 0
}

scorecard_reason_applies(reason, s, _) if {
	startswith(reason, "does not include")
	not is_number(maintained_score(s))
}

scorecard_reason_applies(reason, _, ns) if {
	startswith(reason, "is from")
	ns < scorecard_oldest_ns
}

# The prod.scorecard_minimum violations; the gate denies with them in enforced repositories
# and warns with them elsewhere. (Few rules on the way: each costs the gate time.)
scorecard_violations contains scorecard_violation(repository) if some repository in scorecard_unwaived

scorecard_violation(repository) := violation(
	"prod.scorecard_minimum",
	sprintf("the OpenSSF Scorecard result of the source of %s fails: %s", [artifact_ref, scorecard_failure(repository)]),
	sprintf("improve the repository's practices (scorecard --repo=%s --show-details says what each check wants) and attest a new result, or change data.airlock.config.scorecard_minimum (now %v); a waiver in data.airlock.config.waivers with rule prod.scorecard_minimum and id %s accepts it until it expires", [repository, scorecard_minimum, repository]),
) if {
	repository in scorecard_failing
} else := violation(
	"prod.scorecard_minimum",
	sprintf("no OpenSSF Scorecard result is attested for %s, the source repository of %s", [repository, artifact_ref]),
	sprintf("run scorecard --repo=%s --format=json > scorecard.json, then airlock attest HOST/%s --type https://scorecard.dev/result/v0.1 --predicate scorecard.json --key cosign.key", [repository, evidence_ref]),
)

# No trusted provenance names a source repository, so no result can be matched.
scorecard_violations contains violation(
	"prod.scorecard_minimum",
	sprintf("no OpenSSF Scorecard result can be matched to %s: no trusted provenance names its source repository", [artifact_ref]),
	sprintf("attest provenance from an allowed builder and source (see prod.provenance_required), then a Scorecard result of that source: scorecard --repo=github.com/ORG/REPO --format=json > scorecard.json, then airlock attest HOST/%s --type https://scorecard.dev/result/v0.1 --predicate scorecard.json --key cosign.key", [evidence_ref]),
) if {
	count(source_repositories) == 0
}

# --- end of life ---

# An eol pattern is PACKAGE or PACKAGE@VERSION; PACKAGE is a purl without version
# ("pkg:generic/node"), a literal "@" in it read as "%40".
eol_package_valid(name) if {
	startswith(name, "pkg:")
	not contains(name, "?")
	not contains(name, "#")
	not endswith(name, "/")
	segments := split(trim_prefix(name, "pkg:"), "/")
	count(segments) > 1
	segments[0] != ""
	segments[0] == lower(segments[0])
	purl_canonical(segments[0], concat("/", array.slice(segments, 1, count(segments))))
}

eol_entry(pattern) := {"package": replace(name, "@", "%40"), "version": version} if {
	is_string(pattern)
	parts := split(pattern, "@")
	n := count(parts)
	n > 1
	version := parts[n - 1]
	not contains(version, "/")
	version != ""
	name := concat("@", array.slice(parts, 0, n - 1))
	eol_package_valid(name)
} else := {"package": replace(pattern, "@", "%40"), "version": null} if {
	is_string(pattern)
	eol_package_valid(pattern)
	not eol_has_empty_version(pattern)
}

eol_has_empty_version(pattern) if endswith(pattern, "@")

# eol_version_matches: no version in the pattern matches every version; otherwise the
# component's version (without a Debian-style epoch "N:" and a leading "v") equals it or
# continues it after ".", "-" or "+".
eol_version_matches(want, version) := true if {
	want == null
} else := true if {
	is_string(want)
	eol_version(version) == want
} else := true if {
	is_string(want)
	some separator in [".", "-", "+"]
	startswith(eol_version(version), concat("", [want, separator]))
} else := false

# "1:3.9.2-1" -> "3.9.2-1", "v16.1.0" -> "16.1.0".
eol_version(version) := trim_prefix(regex.replace(version, "^[0-9]+:", ""), "v")

# Components past their end of life: the package is looked up in each SBOM's packages, so the
# cost grows with the eol entries and the versions of their packages, not with the components.
# A date that cannot be read counts as passed (fail closed), and so does an unknown now.
# Each pattern is only split at its "@" before the lookup, and checked in full when its package
# is present.
eol_findings contains {"package": name, "version": version, "date": date, "pattern": pattern} if {
	some pattern, date in eol
	[name, wanted] := eol_split(pattern)
	some sbom in input.evidence.sboms
	some version in sbom.dependencies.packages[name]
	is_string(version)
	eol_entry(pattern)
	eol_version_matches(wanted, version)
	not now_ns < date_ns(date)
}

# A package the SBOM lists without any version, named by an eol entry (with or without a
# version): whether it is past its end of life cannot be told, so it is a finding (fail closed).
eol_findings contains {"package": name, "version": null, "date": date, "pattern": pattern} if {
	some pattern, date in eol
	[name, _] := eol_split(pattern)
	some sbom in input.evidence.sboms
	count(sbom.dependencies.packages[name]) == 0
	eol_entry(pattern)
}

# eol_split is [package, version or null] of an eol pattern, unchecked.
eol_split(pattern) := [parts[0], parts[1]] if {
	parts := split(pattern, "@")
	count(parts) == 2
	not contains(parts[1], "/")
} else := [entry.package, entry.version] if {
	entry := eol_entry(pattern)
} else := [pattern, null]

eol_waived(finding) := true if {
	rule_waived("prod.end_of_life", finding.package)
} else := true if {
	rule_waived("prod.end_of_life", finding.pattern)
} else := false

eol_finding_text(finding) := sprintf("%v (version unknown; end of life %v for %v)", [finding.package, finding.date, finding.pattern]) if {
	finding.version == null
} else := sprintf("%v %v (end of life %v)", [finding.package, finding.version, finding.date]) if {
	date_ns(finding.date)
} else := sprintf("%v %v (end-of-life date %v in data.airlock.config.eol is not a date; counted as passed)", [finding.package, finding.version, finding.date])

eol_version_text(null) := "(version unknown)"

eol_version_text(version) := version if is_string(version)

eol_unwaived contains eol_finding_text(f) if {
	some f in eol_findings
	not eol_waived(f)
}

eol_waived_components contains sprintf("%v %v", [f.package, eol_version_text(f.version)]) if {
	some f in eol_findings
	eol_waived(f)
}

default eol_text := "components past their end of life"

eol_text := bounded_list(sort(eol_unwaived))

# "pattern: date" for each eol entry that is not a valid pattern with a valid date. The gates
# do not read it (checking every entry at every evaluation would cost more than the rest of
# the gate): the bundle's tests do, and an entry whose date cannot be read denies the
# components it matches.
invalid_eol_entries contains sprintf("%v: %v", [pattern, date]) if {
	some pattern, date in eol
	not eol_entry_valid(pattern, date)
}

invalid_eol_entries contains "data.airlock.config.eol is not an object" if {
	data.airlock.config.eol
	not is_object(data.airlock.config.eol)
}

eol_entry_valid(pattern, date) if {
	eol_entry(pattern)
	date_ns(date)
}

# --- waived dependency findings ---

# "rule: what" for everything a rule-scoped waiver accepted (computed only when one is active).
default dependency_waivers_used := []

dependency_waivers_used := array.concat(array.concat(array.concat(
	sort({sprintf("prod.dependency_sources: %s", [x]) | some x in (waived_sources | waived_unidentified)}),
	sort({sprintf("prod.unpinned_inputs: %s", [x]) | some x in waived_unpinned_inputs}),
), sort({sprintf("prod.scorecard_minimum: %s", [x]) | some x in waived_scorecards})),
	sort({sprintf("prod.end_of_life: %s", [x]) | some x in eol_waived_components}),
) if {
	count(active_rule_waivers) > 0
}

# --- history ---

promoted_to(stage) if {
	some entry in input.history
	entry.stage == stage
	entry.state == "promoted"
}
