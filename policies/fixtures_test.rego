# Inputs and helpers shared by the bundle's tests. Not a gate; nothing here is evaluated by
# airlock outside `airlock policy test`.
package airlock.fixtures

digest := "sha256:9f2b1c4e6a3d8e7f0b5c2a1d4e6f8a0b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f"

# A promotion into prod that every rule of the default bundle allows.
prod_input := {
	"version": 1,
	"now": "2026-11-25T12:00:00.000Z",
	"action": "promote",
	"artifact": {
		"repository": "team/app",
		"name": "staging/team/app",
		"origin": "dev/team/app",
		"digest": digest,
		"media_type": "application/vnd.oci.image.manifest.v1+json",
		"size": 1234,
		"tags": ["1.4.2"],
		"annotations": {},
		"created": "2026-11-24T09:30:00Z",
		"pushed_by": "ci-bot",
		"flags": [],
	},
	"source": {"stage": "staging"},
	"target": {
		"stage": "prod",
		"repository": "prod/team/app",
		"tags": ["1.4.2"],
		"channel": "stable",
		"frozen": false,
		"freeze_reason": null,
	},
	"evidence": {
		"signatures": [{
			"key": "ci-builder",
			"key_id": "3f9a0c7d2b1e",
			"key_scope": ["team/*"],
			"format": "cosign",
			"source": "tag",
		}],
		"provenance": [{
			"key": "ci-builder",
			"slsa_version": "v1",
			"builder_id": "https://github.com/actions/runner/github-hosted",
			"build_type": "https://actions.github.io/buildtypes/workflow/v1",
			"source_repository": "https://github.com/acme/app",
			"commit": "0d3c5e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a",
			"source_ref": "refs/heads/main",
			"inputs": 2,
			"unpinned_inputs": [],
		}],
		"rebuilds": {
			"independent": 2,
			"source_repository": "https://github.com/acme/app",
			"commit": "0d3c5e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a",
			"builders": [
				{"builder_id": "https://github.com/actions/runner/github-hosted", "key": "ci-builder"},
				{"builder_id": "https://rebuild.example.com/builder", "key": "rebuilder"},
			],
			"revisions": 1,
		},
		"sboms": [{
			"key": "ci-builder",
			"format": "cyclonedx",
			"licenses": ["Apache-2.0 OR MIT", "BSD-3-Clause", "Unicode-3.0 AND (MIT OR Apache-2.0)"],
			"invalid_licenses": [],
			"components": 42,
			"dependencies": dependencies,
		}],
		"vulnerabilities": [{
			"key": "ci-builder",
			"scanner": "trivy",
			"counts": {"critical": 0, "high": 0, "medium": 1, "low": 0, "unknown": 0},
			"findings": [{
				"id": "CVE-2026-1001",
				"package": "zlib",
				"version": "1.3",
				"severity": "medium",
				"fixed_version": "1.3.1",
			}],
		}],
		"tests": [{"key": "ci-builder", "result": "passed", "passed": 120, "warned": 0, "failed": 0}],
		"scorecards": [scorecard],
		"attestations": [
			{"key": "ci-builder", "predicate_type": "https://slsa.dev/provenance/v1"},
			{"key": "ci-builder", "predicate_type": "https://cyclonedx.org/bom"},
			{"key": "ci-builder", "predicate_type": "https://cosign.sigstore.dev/attestation/vuln/v1"},
			{"key": "ci-builder", "predicate_type": "https://in-toto.io/attestation/test-result/v0.1"},
			{"key": "ci-builder", "predicate_type": "https://scorecard.dev/result/v0.1"},
		],
		"rejected": [],
	},
	"history": [{
		"stage": "staging",
		"promotion": "prm_01",
		"state": "promoted",
		"at": "2026-11-24T10:00:00Z",
		"by": "alice",
	}],
	"requester": {
		"principal": "alice",
		"roles": [{"role": "promoter", "scope": "prod"}],
		"auth_method": "password",
		"source": "127.0.0.1",
	},
	"approvals": [],
	"break_glass": {"requested": false, "reason": null},
}

# The dependency facts of prod_input's SBOM: every component from a default registry, none
# past its end of life.
dependencies := {
	"components": 41,
	"direct": 5,
	"transitive": 36,
	"exempt": 1,
	"unidentified": 0,
	"unversioned": 0,
	"unidentifiable": [],
	"sources": [
		{"source": "pkg:cargo", "repository_url": null, "components": 38, "examples": ["pkg:cargo/serde@1.0.215", "pkg:cargo/tokio@1.41.1", "pkg:cargo/regorus@0.14.1"]},
		{"source": "pkg:deb/debian", "repository_url": null, "components": 2, "examples": ["pkg:deb/debian/libc6@2.36-9?arch=amd64", "pkg:deb/debian/zlib1g@1.3?arch=amd64"]},
	],
	"packages": {
		"pkg:cargo/serde": ["1.0.215"],
		"pkg:cargo/tokio": ["1.40.0", "1.41.1"],
		"pkg:cargo/regorus": ["0.14.1"],
		"pkg:deb/debian/libc6": ["2.36-9"],
		"pkg:deb/debian/zlib1g": ["1.3"],
	},
	"duplicates": [{"package": "pkg:cargo/tokio", "versions": ["1.40.0", "1.41.1"]}],
}

# A passing Scorecard result for prod_input's source repository.
scorecard := {
	"key": "ci-builder",
	"repository": "github.com/acme/app",
	"commit": "0d3c5e7a9b1f2d4c6e8a0b2d4f6a8c0e2b4d6f8a",
	"date": "2026-11-20T08:00:00Z",
	"scorecard_version": "v5.1.1",
	"score": 7.3,
	"checks": {
		"Maintained": 10,
		"Pinned-Dependencies": 6,
		"Signed-Releases": -1,
		"Vulnerabilities": 10,
		"Branch-Protection": 8,
		"Code-Review": 9,
	},
}

# A promotion from dev into staging that every rule of the default bundle allows.
staging_input := object.union(prod_input, {
	"artifact": {"name": "dev/team/app"},
	"source": {"stage": "dev"},
	"target": {"stage": "staging", "repository": "staging/team/app", "channel": null},
	"history": [],
})

# A rollback of prod's stable channel to an artifact prod already holds.
rollback_input := object.union(prod_input, {
	"action": "rollback",
	"artifact": {"name": "prod/team/app"},
	"source": {"stage": "prod"},
})

# with_evidence replaces one kind of evidence in an input.
with_evidence(base, kind, items) := object.union(base, {"evidence": {kind: items}})

# A frozen target stage, and a break-glass request that may pass it.
frozen := {"target": {"frozen": true, "freeze_reason": "year-end change freeze"}}

break_glass := {
	"requester": {"roles": [{"role": "break-glass", "scope": "prod"}]},
	"break_glass": {"requested": true, "reason": "INC-42: payment outage hotfix"},
}

# rule_ids is the set of rule ids of a set of violations.
rule_ids(violations) := {v.rule | some v in violations}

# messages is one string of all the messages of a set of violations.
messages(violations) := concat("\n", sort({v.msg | some v in violations}))
