# The rollback query: moving a channel tag back to an artifact the stage already holds. It
# skips the promotion gates (the artifact passed them once) but refuses an artifact whose
# evidence has been revoked or that no trusted key has signed. A freeze does not block a
# rollback: rolling back is how a bad release is undone during one.
#
# Like a gate package, this package holds only deny, warn and approvals.
package airlock.rollback

# Members are imported one by one: regorus evaluates a whole package when a rule is reached
# through an import of the package (`lib.x`), which costs ~0.6 ms per evaluation here.
import data.airlock.lib.artifact_ref
import data.airlock.lib.common_deny
import data.airlock.lib.revoked
import data.airlock.lib.signature_violation
import data.airlock.lib.signed
import data.airlock.lib.target_stage
import data.airlock.lib.violation

deny contains violation(
	"common.evidence_revoked",
	sprintf("%s is flagged evidence_revoked in %s: evidence it was promoted on is no longer trusted", [artifact_ref, target_stage]),
	"roll back to another artifact, or rebuild, sign and attest it again with trusted keys and promote the new digest",
) if {
	revoked
}

deny contains signature_violation("rollback.signature_required") if not signed

deny contains v if {
	some v in common_deny
	v.rule == "common.input_version"
}
