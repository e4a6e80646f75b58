# Tests of the pure helpers of airlock.lib.
package airlock.lib_test

import data.airlock.lib

test_scope_star_covers_everything if {
	lib.scope_covers("*", "team/app")
	lib.scope_covers("*", "a")
}

test_exact_scope_covers_only_itself if {
	lib.scope_covers("team/app", "team/app")
	not lib.scope_covers("team/app", "team/app2")
	not lib.scope_covers("team/app", "team/app/sub")
}

test_prefix_scope_covers_everything_under_it if {
	lib.scope_covers("team/*", "team/app")
	lib.scope_covers("team/*", "team/app/sub")
	not lib.scope_covers("team/*", "team")
	not lib.scope_covers("team/*", "teams/app")
	not lib.scope_covers("team*", "team/app")
	not lib.scope_covers("", "team/app")
}

allowed := ["MIT", "Apache-2.0", "BSD-3-Clause", "Unicode-3.0", "GPL-2.0-only WITH Classpath-exception-2.0"]

test_single_licenses if {
	lib.license_allowed("MIT", allowed)
	not lib.license_allowed("GPL-3.0-only", allowed)
	not lib.license_allowed("MIT-0", allowed)
	not lib.license_allowed("LicenseRef-proprietary", allowed)
}

test_or_needs_one_allowed_alternative if {
	lib.license_allowed("Apache-2.0 OR MIT", allowed)
	lib.license_allowed("GPL-3.0-only OR MIT", allowed)
	lib.license_allowed("MIT OR GPL-3.0-only", allowed)
	not lib.license_allowed("GPL-3.0-only OR LGPL-2.1-only", allowed)
}

test_and_needs_every_part_allowed if {
	lib.license_allowed("MIT AND BSD-3-Clause", allowed)
	not lib.license_allowed("MIT AND GPL-3.0-only", allowed)
	not lib.license_allowed("GPL-3.0-only AND MIT", allowed)
}

test_and_binds_tighter_than_or if {
	# MIT OR (GPL AND BSD): MIT alone suffices.
	lib.license_allowed("MIT OR GPL-3.0-only AND BSD-3-Clause", allowed)
	# (GPL AND MIT) OR LGPL: neither alternative is fully allowed.
	not lib.license_allowed("GPL-3.0-only AND MIT OR LGPL-2.1-only", allowed)
}

test_parentheses_group if {
	lib.license_allowed("Unicode-3.0 AND (MIT OR Apache-2.0)", allowed)
	lib.license_allowed("(MIT OR Apache-2.0) AND Unicode-3.0", allowed)
	lib.license_allowed("(MIT OR GPL-3.0-only) AND BSD-3-Clause", allowed)
	not lib.license_allowed("(MIT OR Apache-2.0) AND GPL-3.0-only", allowed)
	not lib.license_allowed("(MIT OR GPL-3.0-only) AND (GPL-3.0-only OR LGPL-2.1-only)", allowed)
	lib.license_allowed("GPL-3.0-only OR (MIT AND (BSD-3-Clause OR LGPL-2.1-only))", allowed)
	not lib.license_allowed("GPL-3.0-only OR (MIT AND (LGPL-3.0-only OR LGPL-2.1-only))", allowed)
}

test_with_exception_counts_as_its_license if {
	lib.license_allowed("Apache-2.0 WITH LLVM-exception", allowed)
	not lib.license_allowed("GPL-3.0-only WITH GCC-exception-3.1", allowed)
	# Listed with its exception, the combination is allowed...
	lib.license_allowed("GPL-2.0-only WITH Classpath-exception-2.0", allowed)
	# ...but not the bare license.
	not lib.license_allowed("GPL-2.0-only", allowed)
	lib.license_allowed("(GPL-2.0-only WITH Classpath-exception-2.0 OR LGPL-2.1-only) AND MIT", allowed)
}

test_malformed_expressions_are_not_allowed if {
	not lib.license_allowed("", allowed)
	not lib.license_allowed("(MIT", allowed)
	not lib.license_allowed("MIT)", allowed)
	not lib.license_allowed("MIT OR", allowed)
	not lib.license_allowed("AND MIT", allowed)
}

test_nesting_beyond_six_levels_is_not_allowed if {
	lib.license_allowed("((((((MIT))))))", allowed)
	not lib.license_allowed("(((((((MIT)))))))", allowed)
}

test_violation_links_documentation if {
	v := lib.violation("prod.high_vulnerabilities", "m", "r")
	v == {"rule": "prod.high_vulnerabilities", "msg": "m", "remediation": "r", "docs": "docs/policy.md#prod-high-vulnerabilities"}
}

# --- dependency sources ---

source(text) := {"source": text, "repository_url": null, "components": 1, "examples": []}

source_at(text, url) := {"source": text, "repository_url": url, "components": 1, "examples": []}

allows(patterns, s) if lib.dependency_source_allowed(s) with data.airlock.config.allowed_dependency_sources as patterns

test_type_pattern_allows_the_type_and_its_namespaces if {
	allows(["pkg:npm"], source("pkg:npm"))
	allows(["pkg:npm"], source("pkg:npm/%40angular"))
	not allows(["pkg:npm"], source("pkg:npmx"))
	not allows(["pkg:npm"], source("pkg:cargo"))
}

test_namespace_pattern_allows_only_its_namespace if {
	allows(["pkg:deb/debian"], source("pkg:deb/debian"))
	not allows(["pkg:deb/debian"], source("pkg:deb/ubuntu"))
	not allows(["pkg:deb/debian"], source("pkg:deb/debian-ports"))
	not allows(["pkg:deb/debian"], source("pkg:deb"))
	allows(["pkg:golang/github.com"], source("pkg:golang/github.com/acme"))
}

test_trailing_star_is_a_prefix if {
	allows(["pkg:deb/debian*"], source("pkg:deb/debian-ports"))
	allows(["pkg:npm*"], source("pkg:npmx"))
	allows(["pkg:golang/github.com/acme*"], source("pkg:golang/github.com/acme-labs"))
	allows(["pkg:*"], source("pkg:generic"))
	not allows(["pkg:deb/debian*"], source("pkg:deb/ubuntu"))
}

test_at_in_a_namespace_pattern_reads_as_percent_40 if {
	allows(["pkg:npm/@acme"], source("pkg:npm/%40acme"))
	allows(["pkg:npm/%40acme"], source("pkg:npm/%40acme"))
	not allows(["pkg:npm/@acme"], source("pkg:npm/%40other"))
}

test_repository_url_must_match if {
	not allows(["pkg:npm"], source_at("pkg:npm", "https://npm.evil.example"))
	allows(["pkg:npm?repository_url=https://npm.example.com"], source_at("pkg:npm", "https://npm.example.com"))
	allows(["pkg:npm?repository_url=https://npm.example.com"], source_at("pkg:npm/%40acme", "https://npm.example.com"))
	not allows(["pkg:npm?repository_url=https://npm.example.com"], source("pkg:npm"))
	not allows(["pkg:npm?repository_url=https://npm.example.com"], source_at("pkg:npm", "https://npm.evil.example"))
	# A source without the field is from the default registry.
	allows(["pkg:npm"], {"source": "pkg:npm", "components": 1, "examples": []})
}

test_invalid_source_patterns_allow_nothing_and_are_reported if {
	patterns := ["npm", "pkg:", "pkg:NPM", "pkg:npm/", "pkg:npm?registry=x", "pkg:npm?repository_url=", 7, "pkg:cargo"]
	not allows(patterns, source("pkg:npm"))
	allows(patterns, source("pkg:cargo"))
	invalid := lib.invalid_dependency_source_patterns with data.airlock.config.allowed_dependency_sources as patterns
	invalid == {"npm", "pkg:", "pkg:NPM", "pkg:npm/", "pkg:npm?registry=x", "pkg:npm?repository_url=", "7"}
}

test_sources_setting_of_the_wrong_type_allows_nothing if {
	not allows("pkg:npm", source("pkg:npm"))
}

# --- end of life ---

test_eol_version_boundaries if {
	lib.eol_version_matches("16", "16")
	lib.eol_version_matches("16", "16.20.2")
	lib.eol_version_matches("16", "v16.1.0")
	lib.eol_version_matches("16", "16-alpine")
	lib.eol_version_matches("16", "16+build.1")
	lib.eol_version_matches("3.8", "3.8.18")
	lib.eol_version_matches(null, "22.1.0")
	not lib.eol_version_matches("16", "160.0.0")
	not lib.eol_version_matches("16", "1.16")
	not lib.eol_version_matches("16", "v160")
	not lib.eol_version_matches("3.8", "3.80.1")
	not lib.eol_version_matches("3.8", "3.9.0")
}

test_eol_patterns if {
	lib.eol_entry("pkg:generic/node@16") == {"package": "pkg:generic/node", "version": "16"}
	lib.eol_entry("pkg:generic/node") == {"package": "pkg:generic/node", "version": null}
	lib.eol_entry("pkg:npm/@angular/core@12") == {"package": "pkg:npm/%40angular/core", "version": "12"}
	lib.eol_entry("pkg:npm/@angular/core") == {"package": "pkg:npm/%40angular/core", "version": null}
	not lib.eol_entry("node@16")
	not lib.eol_entry("pkg:generic/node@")
	not lib.eol_entry("pkg:generic")
	not lib.eol_entry("pkg:generic/")
	not lib.eol_entry(16)
}

# --- dates ---

test_dates_and_date_times if {
	lib.date_ns("2023-09-11") == time.parse_rfc3339_ns("2023-09-11T00:00:00Z")
	lib.date_ns("2023-09-11T10:00:00+02:00") == time.parse_rfc3339_ns("2023-09-11T08:00:00Z")
	lib.date_ns("2024-02-29") == time.parse_rfc3339_ns("2024-02-29T00:00:00Z")
	lib.date_ns("2000-02-29")
	lib.timestamp_ns("2026-12-31T23:59:59Z")
}

test_malformed_dates_are_undefined_not_errors if {
	not lib.date_ns("2023-02-30")
	not lib.date_ns("2023-02-29")
	not lib.date_ns("1900-02-29")
	not lib.date_ns("2023-04-31")
	not lib.date_ns("2023-13-01")
	not lib.date_ns("9999-12-31")
	not lib.date_ns("0001-01-01")
	not lib.date_ns("2023-9-11")
	not lib.date_ns("11/09/2023")
	not lib.date_ns("")
	not lib.date_ns(20230911)
	not lib.date_ns(null)
	not lib.timestamp_ns("2023-09-11")
	not lib.timestamp_ns("9999-12-31T23:59:59Z")
	not lib.timestamp_ns("2023-02-31T00:00:00Z")
}

# --- repositories and lists ---

test_repositories_are_compared_without_scheme_www_slash_and_git if {
	lib.normalized_repository("https://github.com/acme/app") == "github.com/acme/app"
	lib.normalized_repository("https://www.GitHub.com/Acme/App.git") == "github.com/acme/app"
	lib.normalized_repository("git+https://github.com/acme/app/") == "github.com/acme/app"
	lib.normalized_repository("github.com/acme/app") == "github.com/acme/app"
	lib.normalized_repository("https://github.com/acme/app.git/") == "github.com/acme/app"
	lib.normalized_repository("https://github.com/acme/application") != "github.com/acme/app"
}

test_bounded_list_names_ten_then_counts if {
	lib.bounded_list(["a", "b"]) == "a, b"
	lib.bounded_list([]) == ""
	items := [sprintf("c%02d", [i]) | some i in numbers.range(1, 12)]
	lib.bounded_list(items) == "c01, c02, c03, c04, c05, c06, c07, c08, c09, c10 and 2 more"
}

# --- waivers ---

test_rule_scoped_waiver_waives_only_its_rule if {
	waivers := [{"rule": "prod.end_of_life", "id": "pkg:generic/node", "expires": "2027-01-01T00:00:00Z", "reason": "x"}]
	lib.rule_waived("prod.end_of_life", "pkg:generic/node") with data.airlock.config.waivers as waivers with input.now as "2026-11-25T12:00:00Z"
	not lib.rule_waived("prod.dependency_sources", "pkg:generic/node") with data.airlock.config.waivers as waivers with input.now as "2026-11-25T12:00:00Z"
	ids := lib.active_waivers with data.airlock.config.waivers as waivers with input.now as "2026-11-25T12:00:00Z"
	ids == set()
}

test_waiver_without_rule_waives_vulnerabilities_only if {
	waivers := [
		{"id": "CVE-2026-1", "expires": "2027-01-01T00:00:00Z", "reason": "x"},
		{"rule": "prod.high_vulnerabilities", "id": "CVE-2026-2", "expires": "2027-01-01T00:00:00Z", "reason": "x"},
	]
	ids := lib.active_waivers with data.airlock.config.waivers as waivers with input.now as "2026-11-25T12:00:00Z"
	ids == {"CVE-2026-1", "CVE-2026-2"}
	rule_waivers := lib.active_rule_waivers with data.airlock.config.waivers as waivers with input.now as "2026-11-25T12:00:00Z"
	rule_waivers == set()
}

test_malformed_sources_are_not_allowed_without_error if {
	not allows(["pkg:npm"], {"source": 7, "repository_url": null})
	not allows(["pkg:*"], {"source": null})
	not allows(["pkg:npm"], {})
}
