# The gate of stage staging: the artifact must be signed by a key trusted for its repository,
# not revoked, and the stage must not be frozen. A missing SBOM is only a warning here; prod
# requires one.
#
# A gate package holds only deny, warn and approvals (airlock rejects any other rule in it);
# helpers live in airlock.lib.
package airlock.gates.staging

# Members are imported one by one: regorus evaluates a whole package when a rule is reached
# through an import of the package (`lib.x`), which costs ~0.6 ms per evaluation here.
import data.airlock.lib.artifact_ref
import data.airlock.lib.evidence_ref
import data.airlock.lib.break_glass
import data.airlock.lib.break_glass_approvals
import data.airlock.lib.common_deny
import data.airlock.lib.common_warn
import data.airlock.lib.has_sbom
import data.airlock.lib.signature_violation
import data.airlock.lib.signed
import data.airlock.lib.violation

deny contains v if some v in common_deny

deny contains signature_violation("staging.signature_required") if not signed

warn contains v if some v in common_warn

warn contains violation(
	"staging.sbom_missing",
	sprintf("%s has no verified SBOM; prod will require one", [artifact_ref]),
	sprintf("attest an SBOM: syft HOST/%s -o cyclonedx-json > sbom.json, then airlock attest HOST/%s --type cyclonedx --predicate sbom.json --key cosign.key", [evidence_ref, evidence_ref]),
) if {
	not has_sbom
}

approvals := break_glass_approvals if break_glass
