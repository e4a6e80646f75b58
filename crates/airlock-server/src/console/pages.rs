//! The console's HTML, as compile-time templates (`maud` escapes every value it interpolates).
//! No page carries inline script or style: the Content-Security-Policy forbids both.

use airlock_api::catalog::{ArtifactStatus, RepositoryStatus, StageInfo, StageList, StatusPage};
use maud::{DOCTYPE, Markup, html};

use airlock_store::{AnomalyRow, ApprovalRow, PromotionRow};

use crate::identity::ConsoleSession;

/// The page around every console view: the header with the navigation and who is signed in
/// (with the sign-out form), then `body`.
pub(super) fn layout(title: &str, session: Option<&ConsoleSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · airlock" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console" { "airlock" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/console" aria-current=[current(title, "Stages board")] { "Stages board" } }
                                li { a href="/console/approvals" aria-current=[current(title, "Approvals")] { "Approvals" } }
                                @if crate::audit::routes::check_audit_reader(&Some(session.who.clone())).is_ok() {
                                    li { a href="/console/audit" aria-current=[current(title, "Audit log")] { "Audit log" } }
                                }
                                @if crate::anomalies::Anomalies::readable_by(&session.who) {
                                    li { a href="/console/anomalies" aria-current=[current(title, "Anomalies")] { "Anomalies" } }
                                }
                                li { a href="/console/keys" aria-current=[current(title, "Keyring")] { "Keyring" } }
                                li { a href="/console/access" aria-current=[current(title, "Access")] { "Access" } }
                            }
                        }
                        div class="who" {
                            span { "Signed in as " strong { (session.who.principal.name) } }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                                button class="quiet" type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// `aria-current="page"` for the navigation link of the page shown.
fn current(title: &str, link: &str) -> Option<&'static str> {
    (title == link).then_some("page")
}

/// A refusal from a service, in the API's words: what was refused and what to do.
pub(super) fn refusal(
    session: &ConsoleSession,
    title: &str,
    message: &str,
    remediation: &str,
) -> Markup {
    layout(
        title,
        Some(session),
        html! {
            h1 { (title) }
            div class="alert" role="alert" {
                p { (message) }
                p { strong { "What to do: " } (remediation) }
            }
            p { a href="/console/approvals" { "Back to the approvals" } " · " a href="/console" { "Stages board" } }
        },
    )
}

/// A promotion pending approval as the inbox shows it.
pub(super) struct Pending {
    /// The promotion.
    pub row: PromotionRow,
    /// Its approvals so far.
    pub approvals: Vec<ApprovalRow>,
    /// What the gate saw, if it was decided.
    pub summary: Option<super::decision_summary::DecisionSummary>,
    /// `None` if it waits for the person; else why it waits for someone else.
    pub waits_for: Option<String>,
}

/// The approvals inbox: promotions pending approval, those waiting for the person first, each
/// with approve and reject forms.
pub(super) fn approvals(
    session: &ConsoleSession,
    pending: &[Pending],
    notice: Option<&str>,
) -> Markup {
    let (mine, others): (Vec<&Pending>, Vec<&Pending>) =
        pending.iter().partition(|p| p.waits_for.is_none());
    layout(
        "Approvals",
        Some(session),
        html! {
            h1 { "Approvals" }
            @if let Some(notice) = notice {
                p class="notice" role="status" { (notice) }
            }
            div id="inbox" data-events=(format!(
                "/console/approvals/events?shown={}",
                super::pending_fingerprint(&pending.iter().map(|p| p.row.id.clone()).collect::<Vec<_>>())
            )) {
                p id="live" class="notice" role="status" aria-live="polite" hidden {}
            }
            @if pending.is_empty() {
                p class="muted" { "No promotion you may read is waiting for approval." }
            } @else {
                h2 { "Waiting for you (" (mine.len()) ")" }
                @if mine.is_empty() {
                    p class="muted" { "None: nothing you may approve is waiting." }
                }
                @for pending in &mine {
                    (pending_card(session, pending))
                }
                @if !others.is_empty() {
                    h2 { "Waiting for others (" (others.len()) ")" }
                    p class="muted" { "Promotions you may read that another approver decides." }
                    @for pending in &others {
                        (pending_card(session, pending))
                    }
                }
            }
        },
    )
}

fn pending_card(session: &ConsoleSession, pending: &Pending) -> Markup {
    let row = &pending.row;
    let approvals = &pending.approvals;
    let summary = pending.summary.as_ref();
    let heading = format!(
        "{}: {} → {}",
        row.repository_path, row.source_stage, row.target_stage
    );
    let comment_id = format!("comment-{}", row.id);
    let reason_id = format!("reason-{}", row.id);
    html! {
        section class="card" aria-label=(heading) {
            h3 { (heading) }
            p {
                span class="digest" title=(row.digest.to_string()) { (short(&row.digest.to_string())) }
                " "
                @for tag in &row.tags { span class="tag" { (tag.as_str()) } }
            }
            p class="muted" {
                (row.id) " · requested by " strong { (row.requested_by) } " at " (millis(row.created_at))
                " · expires " (millis(row.expires_at))
            }
            p {
                (approvals.len()) " of " (row.approvals_required) " approvals"
                @if !approvals.is_empty() {
                    ": "
                    @for (i, approval) in approvals.iter().enumerate() {
                        @if i > 0 { ", " }
                        (approval.principal)
                    }
                }
            }
            @if let Some(summary) = summary {
                details open {
                    summary { "What the gate saw" }
                    (super::decision_summary::render(summary))
                    p { a href=(artifact_href(&format!("{}/{}", row.source_stage, row.repository_path), &row.digest.to_string())) { "The artifact's page" } }
                }
            }
            @if row.requested_by == session.who.principal.name {
                p class="muted" { "You requested this promotion: another approver decides it." }
            } @else if let Some(why) = &pending.waits_for {
                p class="muted" { "Not yours to approve: " (why) "." }
            }
            div class="decide" {
                form method="post" action=(format!("/console/promotions/{}/approve", row.id)) {
                    input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                    label for=(comment_id) { "Comment (optional)" }
                    input type="text" id=(comment_id) name="text";
                    button type="submit" { "Approve" }
                }
                form method="post" action=(format!("/console/promotions/{}/reject", row.id)) {
                    input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                    label for=(reason_id) { "Reason" }
                    input type="text" id=(reason_id) name="text" required;
                    button class="quiet" type="submit" { "Reject" }
                }
            }
        }
    }
}

/// The anomalies page: open ones (or all), each with what was done and, for an access-admin,
/// the form that resolves it.
pub(super) fn anomalies(
    session: &ConsoleSession,
    rows: &[AnomalyRow],
    all: bool,
    may_resolve: bool,
    notice: Option<&str>,
) -> Markup {
    layout(
        "Anomalies",
        Some(session),
        html! {
            h1 { "Anomalies" }
            @if let Some(notice) = notice {
                p class="notice" role="status" { (notice) }
            }
            p {
                @if all {
                    "Showing all anomalies, newest first. " a href="/console/anomalies" { "Show the open ones only" }
                } @else {
                    "Showing the open anomalies, newest first. " a href="/console/anomalies?status=all" { "Show resolved ones too" }
                }
            }
            @if rows.is_empty() {
                p class="muted" { @if all { "No anomaly was ever detected." } @else { "No anomaly is open." } }
            }
            @for row in rows {
                (anomaly_card(session, row, may_resolve))
            }
        },
    )
}

fn anomaly_card(session: &ConsoleSession, row: &AnomalyRow, may_resolve: bool) -> Markup {
    let heading = format!("Anomaly {}: {}", row.id, row.rule.as_str());
    let reason_id = format!("resolution-{}", row.id);
    html! {
        section class="card" aria-label=(heading) {
            h2 { (heading) " " span class=(if row.status == "open" { "badge frozen" } else { "badge push" }) { (row.status) } }
            p { (row.summary) }
            p class="muted" {
                "Action: " strong { (row.action.as_str()) }
                @if row.applied { " (applied)" } @else { " (not applied)" }
                " · observed " (row.observed) " against a threshold of " (row.threshold)
                " in " (row.window_secs) " s · detected " (millis(row.created_at))
            }
            @if let Some(resolved_at) = row.resolved_at {
                p {
                    "Resolved by " strong { (row.resolved_by.as_deref().unwrap_or("?")) } " at " (millis(resolved_at))
                    @if let Some(resolution) = &row.resolution { ": " (resolution) }
                }
            } @else if may_resolve {
                form class="decide" method="post" action=(format!("/console/anomalies/{}/resolve", row.id)) {
                    input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                    label for=(reason_id) { "Why it is resolved" }
                    input type="text" id=(reason_id) name="text" required;
                    button type="submit" { @if row.applied { "Resolve and undo the action" } @else { "Resolve" } }
                }
            }
        }
    }
}

/// The audit log page: the newest signed checkpoint and the newest entries, each with its
/// bytes and inclusion proof for the page's script to check.
pub(super) fn audit(
    session: &ConsoleSession,
    checkpoint: &airlock_store::StoredCheckpoint,
    verifier_key: &str,
    kind: &str,
    entries: &[super::ShownEntry],
) -> Markup {
    layout(
        "Audit log",
        Some(session),
        html! {
            h1 { "Audit log" }
            (checkpoint_card(checkpoint, verifier_key))
            form class="search" method="get" action="/console/audit" role="search" {
                label for="type" { "Event type" }
                input type="search" id="type" name="type" value=(kind) placeholder="promotion. or auth.failed";
                button type="submit" { "Filter" }
            }
            p {
                a class="button" href=(format!("/console/audit/export?type={}", query_value(kind))) download {
                    "Export these entries (JSON Lines)"
                }
            }
            @if entries.is_empty() {
                p class="muted" { "No entry matches." }
            }
            (entry_list(entries))
        },
    )
}

/// The newest signed checkpoint (`#log`), with the note and the log's key for the page's script
/// to verify, and where the script says what it found.
pub(super) fn checkpoint_card(
    checkpoint: &airlock_store::StoredCheckpoint,
    verifier_key: &str,
) -> Markup {
    html! {
        section id="log" class="card" aria-labelledby="checkpoint"
            data-note=(base64_of(checkpoint.note.as_bytes())) data-key=(verifier_key) {
            h2 id="checkpoint" { "Newest signed checkpoint" }
            p {
                "It covers " strong { (checkpoint.size) } " entries; signed at " (millis(checkpoint.created_at)) "."
            }
            pre { (checkpoint.note) }
            p { "The log's key: " code { (verifier_key) } }
            p id="log-status" class="notice" role="status" aria-live="polite" {
                "Checking the checkpoint in your browser…"
            }
        }
    }
}

/// Audit entries, newest first, each with its bytes and inclusion proof (`li.entry`) for the
/// page's script to check against the checkpoint.
pub(super) fn entry_list(entries: &[super::ShownEntry]) -> Markup {
    html! {
        ol class="entries" reversed {
            @for entry in entries.iter().rev() {
                li class="entry card" data-index=(entry.index) data-bytes=(base64_of(&entry.bytes))
                    data-proof=[entry.proof.as_ref().map(|p| p.join(","))] {
                    p {
                        strong { "Entry " (entry.index) } " "
                        span class="proof" role="status" {
                            @if entry.proof.is_some() { "checking…" } @else { "not yet in a signed checkpoint" }
                        }
                    }
                    pre { (String::from_utf8_lossy(&entry.bytes)) }
                }
            }
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A time in milliseconds as RFC 3339.
pub(super) fn millis(at: i64) -> String {
    airlock_core::audit::rfc3339_millis(at)
}

/// The sign-in page: `csrf` goes into the form; `error` says why the last attempt failed,
/// `notice` why the page is shown.
pub(super) fn login(
    csrf: &str,
    single_sign_on: Option<&str>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            div class="card login" {
                h1 { "Sign in to airlock" }
                @if let Some(notice) = notice {
                    p class="notice" role="status" { (notice) }
                }
                @if let Some(error) = error {
                    p class="alert" role="alert" { (error) }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf_token" value=(csrf);
                    label for="username" { "User name" }
                    input type="text" id="username" name="username" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
                @if let Some(label) = single_sign_on {
                    p class="or" { "or" }
                    p { a class="button" href="/console/oidc/start" { (label) } }
                }
            }
        },
    )
}

/// A page saying one thing to whoever asked, signed in or not (an unknown address, a malformed
/// request).
pub(super) fn notice(title: &str, text: &str, detail: Option<&str>) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p class="alert" role="alert" { (text) }
            @if let Some(detail) = detail { p class="muted" { (detail) } }
            p { a href="/console" { "Go to the stages board" } }
        },
    )
}

/// A page saying one thing (a refusal, a failure).
pub(super) fn message(session: &ConsoleSession, title: &str, text: &str) -> Markup {
    layout(
        title,
        Some(session),
        html! {
            h1 { (title) }
            p class="alert" role="alert" { (text) }
            p { a href="/console" { "Back to the stages board" } }
        },
    )
}

/// The stages board: for each repository path on the page, what is in each stage.
pub(super) fn board(
    session: &ConsoleSession,
    search: &str,
    stages: &StageList,
    found: &StatusPage,
    glance: &super::Glance,
) -> Markup {
    board_page(session, search, stages, found, glance, None)
}

/// The stages board with why the search found nothing to show.
pub(super) fn board_with_error(
    session: &ConsoleSession,
    search: &str,
    stages: &StageList,
    found: &StatusPage,
    error: &str,
) -> Markup {
    board_page(
        session,
        search,
        stages,
        found,
        &super::Glance::default(),
        Some(error),
    )
}

fn board_page(
    session: &ConsoleSession,
    search: &str,
    stages: &StageList,
    found: &StatusPage,
    glance: &super::Glance,
    error: Option<&str>,
) -> Markup {
    layout(
        "Stages board",
        Some(session),
        html! {
            h1 { "Stages board" }
            section class="card" aria-labelledby="pipeline" {
                h2 id="pipeline" { "Pipeline" }
                div class="stages" {
                    @for stage in &stages.stages {
                        (stage_summary(stage))
                    }
                }
            }
            (at_a_glance(glance))
            form class="search" method="get" action="/console" role="search" {
                label for="q" { "Repository" }
                input type="search" id="q" name="q" value=(search) placeholder="team/app or team/*";
                button type="submit" { "Search" }
            }
            @if let Some(error) = error {
                p class="alert" role="alert" { (error) }
            } @else if found.repositories.is_empty() {
                p class="notice" role="status" { "No repository you may read holds artifacts yet." }
            }
            @for repository in &found.repositories {
                (repository_card(repository, glance))
            }
            @if let Some(next) = &found.next {
                nav class="pager" aria-label="Pages" {
                    a class="button" href=(format!("/console?q={}&last={}", query_value(search), query_value(next))) { "Next page" }
                }
            }
        },
    )
}

fn stage_summary(stage: &StageInfo) -> Markup {
    html! {
        div class="stage" {
            h3 {
                span { (stage.name) }
                @if stage.frozen.is_some() {
                    span class="badge frozen" { "frozen" }
                } @else {
                    span class=(format!("badge {}", stage.kind)) { (stage.kind) }
                }
            }
            @if let Some(gate) = &stage.gate {
                p class="muted" {
                    "From " (stage.from.join(", ")) "; "
                    (gate.approvals) " approval" @if gate.approvals != 1 { "s" }
                    " (" (gate.approver_role) ")"
                }
            } @else {
                p class="muted" { "Builders push here." }
            }
            @if let Some(frozen) = &stage.frozen {
                p { "Frozen by " (frozen.by) " at " (frozen.at) ": " (frozen.reason) }
            }
        }
    }
}

/// Pending promotions shown by name on the board at most (the inbox has them all).
const GLANCE_PENDING: usize = 5;

/// What waits for approval and what is quarantined, of what the person may read.
fn at_a_glance(glance: &super::Glance) -> Markup {
    html! {
        section class="card" aria-labelledby="glance" {
            h2 id="glance" { "At a glance" }
            div class="stages" {
                div class="stage" {
                    h3 { span { "Waiting for approval" } span class="badge gated" { (glance.pending.len()) } }
                    @if glance.pending.is_empty() {
                        p class="muted" { "Nothing you may read waits for approval." }
                    } @else {
                        ul {
                            @for row in glance.pending.iter().take(GLANCE_PENDING) {
                                li {
                                    (row.repository_path) ": " (row.source_stage) " → " (row.target_stage) " "
                                    span class="digest" title=(row.digest.to_string()) { (short(&row.digest.to_string())) }
                                    br;
                                    span class="muted" { "requested by " (row.requested_by) " · " (row.approvals_required) " approval" @if row.approvals_required != 1 { "s" } " needed" }
                                }
                            }
                        }
                        p { a href="/console/approvals" { "Open the approvals inbox" } }
                    }
                }
                div class="stage" {
                    h3 { span { "Quarantined" } span class=(if glance.quarantines.is_empty() { "badge push" } else { "badge frozen" }) { (glance.quarantines.len()) } }
                    @if glance.quarantines.is_empty() {
                        p class="muted" { "No artifact you may read is quarantined." }
                    } @else {
                        ul {
                            @for held in &glance.quarantines {
                                li {
                                    span class="digest" title=(held.digest) { (short(&held.digest)) }
                                    " in " (held.quarantine.repository_path.as_deref().unwrap_or("every repository"))
                                    br;
                                    span class="muted" { "anomaly " (held.quarantine.anomaly_id) " since " (millis(held.created_at)) ": " (held.quarantine.reason) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn repository_card(repository: &RepositoryStatus, glance: &super::Glance) -> Markup {
    html! {
        section class="card" aria-label=(repository.repository) {
            h2 { (repository.repository) }
            div class="stages" {
                @for stage in &repository.stages {
                    div class="stage" {
                        h3 {
                            span { (stage.stage) }
                            @if stage.frozen.is_some() { span class="badge frozen" { "frozen" } }
                        }
                        @if let Some(reason) = &stage.frozen {
                            p class="muted" { "Frozen: " (reason) }
                        }
                        @if stage.artifacts.is_empty() {
                            p class="muted" { "Nothing here yet." }
                        } @else {
                            ul {
                                @for artifact in &stage.artifacts {
                                    li {
                                        (artifact_line(&stage.repository, artifact))
                                        @if let Some(held) = glance.quarantine(&repository.repository, &artifact.digest) {
                                            " " span class="badge frozen" title=(held.quarantine.reason) { "quarantined" }
                                        }
                                    }
                                }
                            }
                        }
                        @for channel in &stage.channels {
                            @if let Some(latest) = channel.moves.first() {
                                p class="muted" {
                                    "Channel " span class="tag" { (channel.channel) }
                                    " → " span class="digest" title=(latest.digest) { (short(&latest.digest)) }
                                }
                                details {
                                    summary { "History of " (channel.channel) }
                                    ol class="history" {
                                        @for moved in &channel.moves {
                                            li {
                                                (moved.action) " → "
                                                a class="digest" title=(moved.digest) href=(artifact_href(&stage.repository, &moved.digest)) { (short(&moved.digest)) }
                                                br;
                                                span class="muted" {
                                                    "by " (moved.by) " at " (moved.at)
                                                    @if let Some(promotion) = &moved.promotion { " (" (promotion) ")" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn artifact_line(repository: &str, artifact: &ArtifactStatus) -> Markup {
    html! {
        a class="digest" title=(artifact.digest) href=(artifact_href(repository, &artifact.digest)) { (short(&artifact.digest)) }
        " "
        @for tag in &artifact.tags {
            span class="tag" { (tag) }
        }
        @if let Some(promotion) = &artifact.promotion {
            br;
            span class="muted" {
                "Promoted by " (artifact.promoted_by.as_deref().unwrap_or("?"))
                @if let Some(at) = &artifact.promoted_at { " at " (at) }
                " (" (promotion) ")"
                @if !artifact.approvals.is_empty() {
                    "; approved by "
                    @for (i, approval) in artifact.approvals.iter().enumerate() {
                        @if i > 0 { ", " }
                        (approval.principal)
                    }
                }
            }
        }
    }
}

/// The console page of artifact `digest` in `repository` (`<stage>/<path>`).
pub(super) fn artifact_href(repository: &str, digest: &str) -> String {
    format!(
        "/console/artifact?repository={}&digest={}",
        query_value(repository),
        query_value(digest)
    )
}

/// `sha256:` and the first 12 hex digits of a digest.
pub(super) fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |colon| colon + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

/// A value percent-encoded for a query string.
pub(super) fn query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_shortened_and_values_escaped() {
        assert_eq!(
            short("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            "sha256:0123456789ab"
        );
        assert_eq!(short("odd"), "odd");
        let page = login("tok\"en", None, Some("<script>alert(1)</script>"), None).into_string();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("value=\"tok&quot;en\""), "{page}");
        // The one script is the console's own file; nothing is inline.
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(
            page.contains("<script src=\"/console/assets/console.js\" defer></script>"),
            "{page}"
        );
        assert_eq!(query_value("team/* x&y"), "team%2F*+x%26y");
    }
}
