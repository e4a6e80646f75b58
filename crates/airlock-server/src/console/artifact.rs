//! The artifact page: what an artifact is, what its verified evidence says (vulnerabilities by
//! severity with the policy's waivers, licenses, provenance, tests), every promotion of it with
//! its decision and approvals, and, for audit readers, its audit entries with inclusion proofs
//! that the page's script checks in the browser.

use std::net::SocketAddr;

use airlock_api::evidence::{Artifact, EvidenceItem};
use airlock_api::promotion::Violation;
use airlock_policy::Waiver;
use airlock_trust::facts::{
    Facts, Finding, Provenance, Sbom, Scorecard, TestResult, Vulnerabilities,
};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{self, layout, millis, short};
use super::{ConsoleState, ShownEntry, Signed, caller_of, page, refusal, with_proofs};
use crate::api::ApiError;
use crate::identity::ConsoleSession;

/// Promotions of a repository path the artifact page reads at most (newest first).
const ARTIFACT_PROMOTIONS: u32 = 200;

/// Query of the artifact page.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct ArtifactQuery {
    /// `<stage>/<path>`.
    repository: String,
    /// `sha256:<hex>`.
    digest: String,
}

/// A promotion of the artifact as its page shows it.
pub(crate) struct ArtifactPromotion {
    /// The promotion.
    pub row: airlock_store::PromotionRow,
    /// Its approvals.
    pub approvals: Vec<airlock_store::ApprovalRow>,
    /// Its last decision, if it was decided.
    pub decision: Option<airlock_api::promotion::Decision>,
}

pub(super) async fn artifact(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    Query(query): Query<ArtifactQuery>,
) -> Response {
    use std::str::FromStr as _;
    let (repo, digest) = match (
        airlock_core::RepoName::from_str(&query.repository),
        airlock_core::Digest::from_str(&query.digest),
    ) {
        (Ok(repo), Ok(digest)) => (repo, digest),
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::refusal(
                    &session,
                    "Artifact",
                    "The address does not name an artifact.",
                    "Open the artifact from the stages board (repository=<stage>/<path>&digest=sha256:<hex>).",
                ),
            );
        }
    };
    let caller = caller_of(&session, peer);
    let evidence_state = crate::evidence::routes::EvidenceState {
        evidence: state.evidence.clone(),
        identity: state.identity.clone(),
    };
    let shown = match crate::evidence::routes::artifact_view(
        &evidence_state,
        &caller,
        &repo,
        &digest,
    )
    .await
    {
        Ok(shown) => shown,
        Err(err) => return refusal(&session, "Artifact", err),
    };
    let promotions_caller = crate::promotion::Caller::from(caller);
    let rows = match state
        .promotions
        .list(None, Some(repo.path()), None, ARTIFACT_PROMOTIONS)
        .await
    {
        Ok(rows) => rows,
        Err(err) => return refusal(&session, "Artifact", ApiError::from(err)),
    };
    let mut promotions = Vec::new();
    for row in rows.into_iter().filter(|row| {
        row.digest == digest
            && crate::promotion::routes::promotion_readable(
                &state.identity,
                &promotions_caller,
                row,
            )
    }) {
        let approvals = match state.promotions.show(&row.id).await {
            Ok((_, approvals)) => approvals,
            Err(err) => return refusal(&session, "Artifact", ApiError::from(err)),
        };
        let decision = match &row.last_decision {
            Some(id) => match state.promotions.decision(id).await {
                Ok(record) => match crate::promotion::routes::stored_decision(&record.result) {
                    Ok(decision) => Some(decision),
                    Err(err) => return refusal(&session, "Artifact", err),
                },
                Err(err) => return refusal(&session, "Artifact", ApiError::from(err)),
            },
            None => None,
        };
        promotions.push(ArtifactPromotion {
            row,
            approvals,
            decision,
        });
    }
    let audit = if crate::audit::routes::check_audit_reader(&Some(session.who.clone())).is_ok() {
        match artifact_entries(&state, &digest).await {
            Ok(audit) => Some(audit),
            Err(err) => return refusal(&session, "Artifact", ApiError::from(err)),
        }
    } else {
        None
    };
    let shown_view = Shown {
        artifact: &shown,
        promotions: &promotions,
        waivers: &state.promotions.waivers(),
        audit: audit.as_ref(),
        verifier_key: state.audit.verifier_key(),
        now: time::OffsetDateTime::now_utc(),
    };
    page(StatusCode::OK, artifact_page(&session, &shown_view))
}

/// Audit entries about an artifact its page shows at most (the newest).
const ARTIFACT_ENTRIES: u32 = 50;

/// The newest checkpoint and the artifact's newest entries with their proofs in it.
async fn artifact_entries(
    state: &ConsoleState,
    digest: &airlock_core::Digest,
) -> Result<(airlock_store::StoredCheckpoint, Vec<ShownEntry>), crate::audit::AuditLogError> {
    let checkpoint = state.audit.latest_checkpoint().await?;
    let stored = state
        .audit
        .entries_about(&digest.to_string(), ARTIFACT_ENTRIES)
        .await?;
    let entries = with_proofs(&state.audit, &checkpoint, stored).await?;
    Ok((checkpoint, entries))
}

/// An artifact's page: what it is, its evidence with verdicts and derived facts, and every
/// promotion of it with its decision and approvals.
fn artifact_page(session: &ConsoleSession, shown: &Shown<'_>) -> Markup {
    let artifact = shown.artifact;
    let promotions = shown.promotions;
    layout(
        "Artifact",
        Some(session),
        html! {
            h1 { (artifact.repository) }
            section class="card" aria-labelledby="what" {
                h2 id="what" { "What it is" }
                dl class="facts" {
                    dt { "Digest" } dd { code class="digest" { (artifact.digest) } }
                    dt { "Media type" } dd { (artifact.media_type) }
                    dt { "Size" } dd { (artifact.size) " bytes" }
                    dt { "Tags here" } dd {
                        @if artifact.tags.is_empty() { span class="muted" { "none" } }
                        @for tag in &artifact.tags { span class="tag" { (tag) } }
                    }
                }
                @for flag in &artifact.flags {
                    p class="alert" role="alert" { strong { (flag.flag) } ": " (flag.reason) }
                }
            }
            section class="card" aria-labelledby="evidence" {
                h2 id="evidence" { "Evidence" }
                @if artifact.evidence.is_empty() {
                    p class="muted" { "No signature or attestation names this artifact." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Verdict" } th scope="col" { "Kind" } th scope="col" { "Predicate" } th scope="col" { "Key" } th scope="col" { "Arrived" } th scope="col" { "Why" } } }
                        tbody {
                            @for item in &artifact.evidence {
                                tr {
                                    td { span class=(verdict_class(&item.status)) { (item.status) } }
                                    td { (item.kind.as_deref().unwrap_or("?")) " (" (item.format) ")" }
                                    td { (item.predicate_type.as_deref().unwrap_or("")) }
                                    td {
                                        (item.key_name.as_deref().unwrap_or(""))
                                        @if let Some(key) = &item.key_id { br; span class="digest muted" title=(key) { (short(key)) } }
                                    }
                                    td { (item.source) " in " (item.repository) }
                                    td { (item.reason.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
            (facts_summary(shown))
            section class="card" aria-labelledby="promotions" {
                h2 id="promotions" { "Promotions" }
                @if promotions.is_empty() {
                    p class="muted" { "It was never promoted." }
                }
                @for promotion in promotions {
                    (promotion_block(promotion))
                }
            }
            (audit_section(shown))
        },
    )
}

fn verdict_class(status: &str) -> &'static str {
    match status {
        "verified" => "badge push",
        "rejected" | "revoked" => "badge frozen",
        _ => "badge",
    }
}

fn promotion_block(promotion: &ArtifactPromotion) -> Markup {
    let row = &promotion.row;
    html! {
        div class="stage" {
            h3 {
                span { (row.source_stage) " → " (row.target_stage) }
                span class=(if row.state.to_string() == "promoted" { "badge push" } else if row.state.to_string() == "pending_approval" { "badge gated" } else { "badge frozen" }) { (row.state.to_string()) }
            }
            p class="muted" {
                (row.id) " · requested by " strong { (row.requested_by) } " at " (millis(row.created_at))
                @if let Some(decided) = row.decided_at { " · decided " (millis(decided)) }
                @if let Some(attestation) = &row.attestation { " · attestation " span class="digest" title=(attestation) { (short(attestation)) } }
            }
            @if let Some(reason) = &row.break_glass {
                p class="alert" { "Break-glass: " (reason) }
            }
            p {
                (promotion.approvals.len()) " of " (row.approvals_required) " approvals"
                @for (i, approval) in promotion.approvals.iter().enumerate() {
                    @if i == 0 { ": " } @else { ", " }
                    (approval.principal) " at " (millis(approval.created_at))
                    @if let Some(comment) = &approval.comment { " (“" (comment) "”)" }
                }
            }
            @if let Some(decision) = &promotion.decision {
                @if decision.allowed {
                    p { "The gate allowed it." }
                } @else {
                    p { strong { "The gate denied it:" } }
                }
                @if !decision.deny.is_empty() {
                    ul class="violations" {
                        @for violation in &decision.deny { li { (violation_line(violation)) } }
                    }
                }
                @if !decision.warn.is_empty() {
                    p class="muted" { "Warnings:" }
                    ul class="violations" {
                        @for violation in &decision.warn { li { (violation_line(violation)) } }
                    }
                }
            }
        }
    }
}

fn violation_line(violation: &Violation) -> Markup {
    html! {
        code { (violation.rule) } ": " (violation.msg)
        br;
        span class="muted" { "What to do: " (violation.remediation) }
        @if let Some(docs) = &violation.docs {
            @if docs.starts_with("https://") || docs.starts_with("http://") {
                " " a href=(docs) rel="noreferrer" { "Docs" }
            } @else {
                " (see " (docs) ")"
            }
        }
    }
}

/// What the artifact page shows.
struct Shown<'a> {
    artifact: &'a Artifact,
    promotions: &'a [ArtifactPromotion],
    /// The policy bundle's waivers.
    waivers: &'a [Waiver],
    /// The newest checkpoint and the artifact's entries, for audit readers.
    audit: Option<&'a (airlock_store::StoredCheckpoint, Vec<ShownEntry>)>,
    /// The audit log's verifier key, for the page's script.
    verifier_key: &'a str,
    /// When the page is made: waivers that expired before it accept nothing.
    now: time::OffsetDateTime,
}

/// Findings of a severity a vulnerability summary lists at most.
const FINDINGS_SHOWN: usize = 100;

/// A summary of each verified evidence item's facts, by kind, with the raw facts beside it.
fn facts_summary(shown: &Shown<'_>) -> Markup {
    let verified: Vec<(&EvidenceItem, Facts)> = shown
        .artifact
        .evidence
        .iter()
        .filter(|item| item.status == "verified" && !item.facts.is_null())
        .filter_map(|item| {
            serde_json::from_value::<Facts>(item.facts.clone())
                .ok()
                .map(|facts| (item, facts))
        })
        .collect();
    html! {
        section class="card" aria-labelledby="says" {
            h2 id="says" { "What the verified evidence says" }
            @if verified.is_empty() {
                p class="muted" { "No verified attestation states facts about it (provenance, SBOM, vulnerability scan, tests)." }
            }
            @for (item, facts) in &verified {
                @match facts {
                    Facts::Vulnerabilities(report) => (vulnerabilities(report, item, shown)),
                    Facts::Sbom(sbom) => (licenses(sbom, item)),
                    Facts::Provenance(provenance) => (provenance_facts(provenance, item)),
                    Facts::TestResult(result) => (tests(result, item)),
                    Facts::Scorecard(card) => (scorecard(card, item)),
                    Facts::None => {},
                }
                @if !matches!(facts, Facts::None) {
                    details {
                        summary { "All the facts airlock read from it" }
                        pre { (serde_json::to_string_pretty(&item.facts).unwrap_or_default()) }
                    }
                }
            }
            (rebuilds_summary(&shown.artifact.rebuilds))
        }
    }
}

/// How many independent builders agree on the digest, and independent rebuilds that did not.
fn rebuilds_summary(rebuilds: &airlock_api::evidence::RebuildAgreement) -> Markup {
    html! {
        @if rebuilds.independent > 0 || !rebuilds.mismatches.is_empty() {
            h3 { "Independent rebuilds" }
            p {
                (counted(rebuilds.independent as usize, "independent builder"))
                " (distinct builder ids and keys) built this digest"
                @if let (Some(source), Some(commit)) = (&rebuilds.source_repository, &rebuilds.commit) {
                    " from " code { (source) "@" (commit) }
                }
                "."
            }
            ul {
                @for builder in &rebuilds.builders {
                    li { (builder.builder_id) " (key " (builder.key) ")" }
                }
            }
            @for mismatch in &rebuilds.mismatches {
                p class="alert" role="alert" {
                    strong { "Not reproduced: " }
                    (mismatch.builder_id) " (key " (mismatch.key) ") built the same commit into "
                    code class="digest" { (mismatch.digest) }
                }
            }
        }
    }
}

/// Who vouches for a summary: the key that verified the evidence.
fn signed_by(item: &EvidenceItem) -> Markup {
    html! {
        p class="muted" {
            "Signed with " (item.key_name.as_deref().unwrap_or("an unnamed key"))
            @if let Some(at) = &item.verified_at { "; verified " (at) }
        }
    }
}

fn vulnerabilities(report: &Vulnerabilities, item: &EvidenceItem, shown: &Shown<'_>) -> Markup {
    let severities = ["critical", "high", "medium", "low", "unknown"];
    let listed: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|finding| matches!(finding.severity.as_str(), "critical" | "high"))
        .take(FINDINGS_SHOWN)
        .collect();
    let heading = format!("Vulnerabilities ({})", report.scanner);
    html! {
        h3 { (heading) }
        (signed_by(item))
        table class="counts" {
            caption class="visually-hidden" { "Findings by severity" }
            thead { tr { @for severity in severities { th scope="col" { (severity) } } } }
            tbody { tr {
                @for severity in severities {
                    td class=(if matches!(severity, "critical" | "high") && report.counts.get(severity).copied().unwrap_or(0) > 0 { "bad" } else { "" }) {
                        (report.counts.get(severity).copied().unwrap_or(0))
                    }
                }
            } }
        }
        @if !listed.is_empty() {
            table {
                caption class="visually-hidden" { "Critical and high findings" }
                thead { tr { th scope="col" { "Id" } th scope="col" { "Severity" } th scope="col" { "Package" } th scope="col" { "Fixed in" } th scope="col" { "Waiver" } } }
                tbody {
                    @for finding in &listed {
                        tr {
                            td { code { (finding.id) } }
                            td { (finding.severity) }
                            td { (finding.package) @if let Some(version) = &finding.version { " " (version) } }
                            td { (finding.fixed_version.as_deref().unwrap_or("no fix yet")) }
                            td { (waiver_status(&finding.id, shown)) }
                        }
                    }
                }
            }
            p class="muted" {
                "A waiver is the policy bundle's (data.airlock.config.waivers); the gate decides what it accepts (the default gates: high vulnerabilities, never critical ones)."
            }
        }
    }
}

/// Whether a policy waiver names vulnerability `id`, and until when it counts.
fn waiver_status(id: &str, shown: &Shown<'_>) -> Markup {
    let Some(waiver) = shown
        .waivers
        .iter()
        .find(|waiver| waiver.id == id && waiver.covers_vulnerabilities())
    else {
        return html! { span class="muted" { "none" } };
    };
    let expires = time::OffsetDateTime::parse(
        &waiver.expires,
        &time::format_description::well_known::Rfc3339,
    );
    html! {
        @match expires {
            Ok(at) if at > shown.now => {
                span class="badge push" { "waived" } " until " (waiver.expires)
            }
            Ok(_) => {
                span class="badge frozen" { "expired" } " on " (waiver.expires)
            }
            Err(_) => {
                span class="badge frozen" { "unreadable expiry" } " " (waiver.expires) " (waives nothing)"
            }
        }
        @if let Some(reason) = &waiver.reason { br; span class="muted" { (reason) } }
    }
}

fn licenses(sbom: &Sbom, item: &EvidenceItem) -> Markup {
    html! {
        h3 { "Licenses (" (sbom.format) " " (sbom.spec_version) " SBOM)" }
        (signed_by(item))
        p {
            (counted(sbom.components.len(), "component")) "; "
            @if sbom.licenses.is_empty() { "no license stated." } @else {
                (counted(sbom.licenses.len(), "distinct license")) ":"
            }
        }
        @if !sbom.licenses.is_empty() {
            ul class="inline" { @for license in &sbom.licenses { li { code { (license) } } } }
        }
        @if !sbom.invalid_licenses.is_empty() {
            p class="alert" {
                (sbom.invalid_licenses.len()) " license expressions could not be understood: "
                @for (i, invalid) in sbom.invalid_licenses.iter().take(20).enumerate() {
                    @if i > 0 { ", " }
                    code { (invalid.expression) }
                }
            }
        }
    }
}

fn provenance_facts(provenance: &Provenance, item: &EvidenceItem) -> Markup {
    html! {
        h3 { "Provenance (SLSA " (provenance.slsa_version) ")" }
        (signed_by(item))
        dl class="facts" {
            dt { "Builder" } dd { code { (provenance.builder_id) } }
            dt { "Build type" } dd { code { (provenance.build_type) } }
            dt { "Source" } dd {
                (provenance.source_repository.as_deref().unwrap_or("not stated"))
                @if let Some(source_ref) = &provenance.source_ref { " at " code { (source_ref) } }
            }
            dt { "Commit" } dd { code { (provenance.commit.as_deref().unwrap_or("not stated")) } }
            dt { "Inputs" } dd {
                (provenance.inputs)
                @match &provenance.unpinned_inputs {
                    Some(unpinned) if unpinned.is_empty() => { ", every one pinned by digest" }
                    Some(unpinned) => { ", " strong { (unpinned.len()) " without a digest" } ": " (unpinned.join(", ")) }
                    None => { " (whether they are pinned is unknown)" }
                }
            }
        }
    }
}

fn tests(result: &TestResult, item: &EvidenceItem) -> Markup {
    html! {
        h3 { "Tests: " (result.result) }
        (signed_by(item))
        p {
            (result.passed) " passed, " (result.warned) " warned, " (result.failed) " failed"
            @if let Some(url) = &result.url {
                @if url.starts_with("https://") || url.starts_with("http://") {
                    " · " a href=(url) rel="noreferrer" { "full results" }
                } @else { " · " (url) }
            }
        }
    }
}

fn scorecard(card: &Scorecard, item: &EvidenceItem) -> Markup {
    html! {
        h3 { "OpenSSF Scorecard: " (format!("{:.1}", card.score)) " of 10" }
        (signed_by(item))
        p { (card.repository.as_deref().unwrap_or("the source repository")) " scored " (card.date) }
    }
}

/// `n` and `noun`, in the plural unless `n` is 1.
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// The artifact's audit entries, for audit readers, with the checkpoint the page's script checks
/// their proofs against.
fn audit_section(shown: &Shown<'_>) -> Markup {
    html! {
        section class="card" aria-labelledby="entries" {
            h2 id="entries" { "Its audit entries" }
            @match shown.audit {
                None => {
                    p class="muted" { "Only auditors and access-admins read the audit log." }
                }
                Some((checkpoint, entries)) => {
                    p {
                        "The newest " (entries.len()) " entries whose subject is this digest (pushes, evidence, promotions), in every stage. "
                        "Your browser checks each one's inclusion proof against the signed checkpoint."
                    }
                    (pages::checkpoint_card(checkpoint, shown.verifier_key))
                    @if entries.is_empty() { p class="muted" { "None yet." } }
                    (pages::entry_list(entries))
                }
            }
        }
    }
}
