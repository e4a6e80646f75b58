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
