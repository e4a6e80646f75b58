//! `airlock promote`, `approve`, `promotions`, `rollback`, `freeze`/`unfreeze`,
//! `decisions` and `policy`: moving artifacts between stages through their gates, over the typed
//! API (`airlock_api::promotion`).

use std::path::PathBuf;
use std::time::Duration;

use airlock_api::promotion as api;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{ApiClient, DENIED};
use crate::commands::common::{Common, OutputFormat, print_as};
use crate::commands::outcome::pending;
use crate::commands::pages::query_value;
use crate::oci_client::ArtifactRef;

/// Exit status when `promote --wait --timeout` gives up (the promotion is still open).
const TIMED_OUT: u8 = 2;

fn parse_timeout(value: &str) -> Result<Duration, String> {
    crate::client::parse_duration(value)
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

/// `airlock promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The artifact: [HOST/]stage/repo:tag or [HOST/]stage/repo@sha256:...
    reference: String,
    /// The target stage.
    #[arg(long)]
    to: String,
    /// Tags to set in the target (repeatable; default: the artifact's tags in the source).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The channel tag to move (default: the target stage's first channel tag).
    #[arg(long)]
    channel: Option<String>,
    /// Evaluate the gate without acting.
    #[arg(long)]
    dry_run: bool,
    /// Wait until the promotion is decided: exit 0 promoted, 1 denied, rejected, cancelled or
    /// expired, 2 when --timeout passes first.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long (e.g. 90s, 30m, 8h); the promotion stays
    /// pending. Without it, --wait waits until the promotion is decided or expires.
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Emergency promotion (needs the break-glass role, two approvals; raises an alert).
    #[arg(long, value_name = "REASON")]
    break_glass: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The promotion id (prm_...).
    id: String,
    /// A comment recorded with the approval.
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock promotions`.
#[derive(Debug, Subcommand)]
pub enum PromotionsCommand {
    /// List promotions, newest first.
    List {
        /// Only this state: evaluating, pending_approval, promoted, denied, expired or cancelled
        /// (the server refuses others, naming these).
        #[arg(long)]
        state: Option<String>,
        /// Only this repository path (team/app).
        #[arg(long)]
        repository: Option<String>,
        /// Stop after this many promotions (the newest); all of them when unset. The server
        /// answers a page at a time and this command follows its `next` cursor.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Show a promotion, its approvals and its decision.
    Show {
        /// The promotion id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Reject a pending promotion: an approver's recorded denial (the same eligibility as
    /// approving). Exit 1 if refused.
    Reject {
        /// The promotion id.
        id: String,
        /// Why (the requester reads it in `airlock promotions show`).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a pending promotion (its requester).
    Cancel {
        /// The promotion id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The repository with its stage, e.g. prod/team/app.
    repository: String,
    /// The channel tag to move back.
    #[arg(long)]
    channel: String,
    /// The digest to move it to (default: the one it named before).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `airlock freeze`.
#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// The gated stage.
    stage: String,
    /// Why (shown to everyone whose promotion is refused).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    common: Common,
}

/// `airlock unfreeze`.
#[derive(Debug, Args)]
pub struct UnfreezeArgs {
    /// The gated stage.
    stage: String,
    #[command(flatten)]
    common: Common,
}

/// `airlock decisions`.
#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// Show a decision record: its input, policy digest and result.
    Show {
        /// The decision id (dec_...).
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Re-evaluate a decision with its stored input and bundle; exit 1 unless identical.
    Replay {
        /// The decision id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run a bundle's `test_*` rules (locally); exit 1 if one fails.
    Test {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// Evaluate a gate over an input document (locally); exit 1 if denied.
    Eval {
        /// The input document (JSON, see docs/policy.md).
        #[arg(long)]
        input: PathBuf,
        /// The bundle directory (default: the built-in bundle).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The gate's stage (default: the input's target.stage).
        #[arg(long)]
        stage: Option<String>,
        /// A query instead of a stage's gate, e.g. data.airlock.rollback.
        #[arg(long)]
        query: Option<String>,
        /// The output format (`-o json`); the server is not asked.
        #[command(flatten)]
        common: Common,
    },
    /// Show the bundle the server uses.
    Show {
        #[command(flatten)]
        common: Common,
    },
    /// Ask the server to reload its bundle (access-admin).
    Reload {
        #[command(flatten)]
        common: Common,
    },
}

fn violations_text(decision: &api::Decision) -> String {
    let mut lines = Vec::new();
    for v in &decision.deny {
        lines.push(format!("  x {}: {}", v.rule, v.msg));
        lines.push(format!("      fix: {}", v.remediation));
        if let Some(docs) = &v.docs {
            lines.push(format!("      docs: {docs}"));
        }
    }
    for v in &decision.warn {
        lines.push(format!("  ! {} (warning): {}", v.rule, v.msg));
    }
    lines.join("\n")
}

/// The rule of a person's rejection (the decision record a rejection writes).
const REJECTED_RULE: &str = "airlock.rejected";

fn rejected(decision: &api::Decision) -> bool {
    decision.deny.iter().any(|v| v.rule == REJECTED_RULE)
}

fn outcome_text(body: &api::PromotionOutcome) -> String {
    let decision = &body.decision;
    let promotion = body.promotion.as_ref();
    let id = promotion.map(|p| p.id.as_str()).unwrap_or("");
    let mut lines = Vec::new();
    let headline = match promotion.map(|p| p.state.as_str()) {
        Some("expired") => {
            format!("EXPIRED {id}: the approvals did not arrive in time; request it again")
        }
        Some("cancelled") => format!("CANCELLED {id}"),
        Some("denied") if rejected(decision) => format!("REJECTED {id}"),
        _ if !decision.allowed => match promotion {
            Some(p) => format!("DENIED {}", p.id),
            None => "DENIED".into(),
        },
        Some("promoted") => {
            let p = promotion.map(|p| (p.source.as_str(), p.target.as_str()));
            let (source, target) = p.unwrap_or_default();
            format!("PROMOTED {source} -> {target} ({id})")
        }
        Some("pending_approval") => format!(
            "PENDING APPROVAL {id}: {} of {} approvals; approve with `airlock approve {id}`",
            promotion.map_or(0, |p| p.approvals.len()),
            body.approvals_required,
        ),
        None => format!(
            "ALLOWED (dry run; approvals required: {})",
            body.approvals_required
        ),
        Some(other) => other.to_uppercase(),
    };
    lines.push(headline);
    if let Some(p) = promotion {
        lines.push(format!("  artifact: {}", p.digest));
    }
    if let Some(id) = &body.decision_id {
        lines.push(format!("  decision: {id} (airlock decisions show {id})"));
    }
    if let Some(attestation) = promotion.and_then(|p| p.attestation.as_ref()) {
        lines.push(format!("  attestation: {attestation}"));
    }
    let violations = violations_text(decision);
    if !violations.is_empty() {
        lines.push(violations);
    }
    lines.join("\n")
}

/// POSTs `body` to `path` and reads a promotion outcome: a gate's denial (403 with a decision) is
/// a result to print, any other failure an error.
async fn post_outcome<B: serde::Serialize>(
    api: &ApiClient,
    path: &str,
    body: &B,
) -> Result<api::PromotionOutcome> {
    let (status, answer) = api.post_raw(path, &serde_json::to_value(body)?).await?;
    let is_outcome = (200..300).contains(&status)
        || (status == 403 && answer.get("decision").is_some_and(|d| !d.is_null()));
    if !is_outcome {
        return Err(api.failure(status, &answer));
    }
    serde_json::from_value(answer).with_context(|| {
        format!(
            "the server's answer to {path} is not what this client expects: \
             use an airlock CLI of the server's version"
        )
    })
}

/// The outcome shown for a promotion read back while waiting.
fn outcome_of(mut promotion: api::Promotion) -> api::PromotionOutcome {
    let decision = promotion.decision_result.take().unwrap_or(api::Decision {
        allowed: true,
        deny: Vec::new(),
        warn: Vec::new(),
        approvals: None,
        error: None,
    });
    api::PromotionOutcome {
        decision_id: promotion.decision.clone(),
        approvals_required: promotion.approvals_required,
        promotion: Some(promotion),
        decision,
        error: None,
    }
}

/// Whether a promotion in `state` is still open (its outcome may change).
fn open(state: &str) -> bool {
    matches!(state, "evaluating" | "pending_approval")
}

/// `airlock promote`.
pub async fn promote(args: PromoteArgs) -> Result<u8> {
    let target = ArtifactRef::parse(&args.reference, &args.common.server)?;
    let reference = target
        .digest
        .clone()
        .or(target.tag.clone())
        .unwrap_or_default();
    let mut api = ApiClient::connect(&target.server).await?;
    let request = api::PromotionRequest {
        source: target.repository.clone(),
        reference,
        to: args.to.clone(),
        tags: (!args.tags.is_empty()).then(|| args.tags.clone()),
        channel: args.channel.clone(),
        dry_run: args.dry_run,
        break_glass: args.break_glass.clone(),
    };
    let mut outcome = post_outcome(&api, "/api/v1/promotions", &request).await?;
    if args.wait
        && let Some(id) = outcome
            .promotion
            .as_ref()
            .filter(|p| open(&p.state))
            .map(|p| p.id.clone())
    {
        let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
        eprintln!("waiting for {id} to be decided ...");
        loop {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                pending(TIMED_OUT);
                print_as(&args.common, &outcome, outcome_text);
                eprintln!(
                    "airlock: gave up waiting after {}: {id} is still {}; check it later with `airlock promotions show {id}`",
                    humantime(args.timeout.unwrap_or_default()),
                    outcome
                        .promotion
                        .as_ref()
                        .map_or("open", |p| p.state.as_str()),
                );
                return Ok(TIMED_OUT);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let path = format!("/api/v1/promotions/{id}");
            let current: api::Promotion = match api.get_as(&path).await {
                // Access tokens are short-lived (access.token_lifetime_secs, 5 minutes by
                // default) and a wait may be longer: renew the token and ask again.
                Err(err) if is_unauthorized(&err) => {
                    if crate::client::token_given() {
                        bail!(
                            "the token given with --token / AIRLOCK_TOKEN expired while waiting \
                             for {id} to be decided (it cannot be renewed); check it with \
                             `airlock promotions show {id}` and a fresh token, or wait with a \
                             stored login (`airlock login`), which renews its token"
                        );
                    }
                    api = ApiClient::connect(&target.server).await?;
                    api.get_as(&path).await?
                }
                answer => answer?,
            };
            let still_open = open(&current.state);
            outcome = outcome_of(current);
            if !still_open {
                break;
            }
        }
    }
    let state = outcome.promotion.as_ref().map(|p| p.state.as_str());
    let ok = outcome.decision.allowed && !matches!(state, Some("expired" | "cancelled" | "denied"));
    let status = pending(if ok { 0 } else { DENIED });
    print_as(&args.common, &outcome, outcome_text);
    Ok(status)
}

/// Whether `err` is the server's 401 (the access token expired or was revoked).
fn is_unauthorized(err: &anyhow::Error) -> bool {
    err.downcast_ref::<crate::client::ApiError>()
        .is_some_and(|api| api.http_status == 401)
}

fn humantime(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}

/// `airlock approve`.
pub async fn approve(args: ApproveArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let outcome = post_outcome(
        &api,
        &format!("/api/v1/promotions/{}/approve", args.id),
        &api::ApproveRequest {
            comment: args.comment.clone(),
        },
    )
    .await?;
    let status = pending(if outcome.decision.allowed { 0 } else { DENIED });
    print_as(&args.common, &outcome, outcome_text);
    Ok(status)
}

fn promotion_line(p: &api::Promotion) -> String {
    format!(
        "{:<21} {:<17} {} -> {}  {}  by {}",
        p.id,
        p.state,
        p.source,
        p.target,
        p.digest.get(..19).unwrap_or(&p.digest),
        p.requested_by
    )
}

fn promotion_text(p: &api::Promotion) -> String {
    let mut lines = vec![promotion_line(p)];
    lines.push(format!(
        "  approvals: {} of {}",
        p.approvals.len(),
        p.approvals_required
    ));
    for a in &p.approvals {
        lines.push(format!(
            "    {} at {} {}",
            a.principal,
            a.at,
            a.comment.as_deref().unwrap_or("")
        ));
    }
    if let Some(d) = &p.decision {
        lines.push(format!("  decision: {d}"));
    }
    if let Some(result) = &p.decision_result {
        let violations = violations_text(result);
        if !violations.is_empty() {
            lines.push(violations);
        }
    }
    lines.join("\n")
}

/// Every promotion the list `query` selects (at most `limit`), following the server's `next`
/// cursor page by page; `next` of the answer is set only when `limit` stopped it early.
async fn all_promotions(
    api: &ApiClient,
    query: &[String],
    limit: Option<u32>,
) -> Result<api::PromotionList> {
    let mut list = api::PromotionList {
        promotions: Vec::new(),
        next: None,
    };
    let mut last: Option<String> = None;
    loop {
        let mut page_query = query.to_vec();
        // Ask for no more than the limit still wants, so the last page ends at the limit and its
        // `next` is exactly where the listing stopped.
        if let Some(limit) = limit {
            let wanted = (limit as usize).saturating_sub(list.promotions.len());
            page_query.push(format!("n={}", wanted.min(1000)));
        }
        if let Some(last) = &last {
            page_query.push(format!("last={}", query_value(last)));
        }
        let page: api::PromotionList = api
            .get_as(&format!("/api/v1/promotions?{}", page_query.join("&")))
            .await?;
        list.promotions.extend(page.promotions);
        if let Some(limit) = limit
            && list.promotions.len() >= limit as usize
        {
            list.next = page.next;
            return Ok(list);
        }
        match page.next {
            Some(next) => last = Some(next),
            None => return Ok(list),
        }
    }
}

/// `airlock promotions ...`.
pub async fn promotions(command: PromotionsCommand) -> Result<u8> {
    match command {
        PromotionsCommand::List {
            state,
            repository,
            limit,
            common,
        } => {
            let api = common.connect().await?;
            let mut query = Vec::new();
            if let Some(state) = state {
                query.push(format!("state={}", query_value(&state)));
            }
            if let Some(repository) = repository {
                query.push(format!("repository={}", query_value(&repository)));
            }
            let list = all_promotions(&api, &query, limit).await?;
            print_as(&common, &list, |list| {
                if list.promotions.is_empty() {
                    return "no promotions".into();
                }
                list.promotions
                    .iter()
                    .map(promotion_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PromotionsCommand::Show { id, common } => {
            let api = common.connect().await?;
            let p: api::Promotion = api.get_as(&format!("/api/v1/promotions/{id}")).await?;
            print_as(&common, &p, promotion_text);
        }
        PromotionsCommand::Reject { id, reason, common } => {
            let api = common.connect().await?;
            let p: api::Promotion = api
                .post_as(
                    &format!("/api/v1/promotions/{id}/reject"),
                    &api::RejectRequest { reason },
                )
                .await?;
            print_as(&common, &p, |p| {
                format!("REJECTED {}\n{}", p.id, promotion_text(p))
            });
        }
        PromotionsCommand::Cancel { id, common } => {
            let api = common.connect().await?;
            let p: api::Promotion = api
                .post_as(&format!("/api/v1/promotions/{id}/cancel"), &json!({}))
                .await?;
            print_as(&common, &p, |p| format!("cancelled {}", p.id));
        }
    }
    Ok(0)
}

/// `airlock rollback`.
pub async fn rollback(args: RollbackArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let request = api::RollbackRequest {
        repository: args.repository.clone(),
        channel: args.channel.clone(),
        to: args.to.clone(),
    };
    let (status, answer) = api
        .post_raw("/api/v1/rollbacks", &serde_json::to_value(&request)?)
        .await?;
    let is_outcome = (200..300).contains(&status)
        || (status == 403 && answer.get("decision").is_some_and(|d| !d.is_null()));
    if !is_outcome {
        return Err(api.failure(status, &answer));
    }
    let outcome: api::RollbackOutcome = serde_json::from_value(answer)
        .context("the server's answer to /api/v1/rollbacks is not what this client expects")?;
    let status = pending(if outcome.decision.allowed { 0 } else { DENIED });
    print_as(&args.common, &outcome, |b| {
        if b.decision.allowed {
            format!(
                "rolled {}:{} back from {} to {}",
                b.repository, b.channel, b.from, b.to
            )
        } else {
            format!(
                "DENIED: rolling back to {} is refused\n{}",
                b.to,
                violations_text(&b.decision)
            )
        }
    });
    Ok(status)
}

/// `airlock freeze`.
pub async fn freeze(args: FreezeArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let body: api::FreezeState = api
        .post_as(
            &format!("/api/v1/stages/{}/freeze", args.stage),
            &api::FreezeRequest {
                reason: args.reason.clone(),
            },
        )
        .await?;
    print_as(&args.common, &body, |_| {
        format!(
            "froze {}: promotions into it are refused until `airlock unfreeze {}`",
            args.stage, args.stage
        )
    });
    Ok(0)
}

/// `airlock unfreeze`.
pub async fn unfreeze(args: UnfreezeArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let body: api::FreezeState = api
        .post_as(
            &format!("/api/v1/stages/{}/unfreeze", args.stage),
            &json!({}),
        )
        .await?;
    print_as(&args.common, &body, |_| format!("unfroze {}", args.stage));
    Ok(0)
}

/// `airlock decisions ...`.
pub async fn decisions(command: DecisionsCommand) -> Result<u8> {
    match command {
        DecisionsCommand::Show { id, common } => {
            let api = common.connect().await?;
            let d: api::DecisionRecord = api.get_as(&format!("/api/v1/decisions/{id}")).await?;
            print_as(&common, &d, |d| {
                format!(
                    "{} ({} {}, policy {}): {}\n{}",
                    d.id,
                    d.action,
                    d.query,
                    d.policy,
                    if d.allowed { "allowed" } else { "denied" },
                    violations_text(&d.result)
                )
            });
            Ok(0)
        }
        DecisionsCommand::Replay { id, common } => {
            let api = common.connect().await?;
            let r: api::Replay = api
                .post_as(&format!("/api/v1/decisions/{id}/replay"), &json!({}))
                .await?;
            let status = pending(if r.identical { 0 } else { DENIED });
            print_as(&common, &r, |r| {
                if r.identical {
                    format!("replayed {} with policy {}: identical", r.id, r.policy)
                } else {
                    format!(
                        "replayed {}: DIFFERENT\n  original: {}\n  replayed: {}",
                        r.id,
                        serde_json::to_string(&r.original).unwrap_or_default(),
                        serde_json::to_string(&r.replayed).unwrap_or_default()
                    )
                }
            });
            Ok(status)
        }
    }
}

/// `airlock policy ...`.
pub async fn policy(command: PolicyCommand) -> Result<u8> {
    match command {
        PolicyCommand::Test { dir } => {
            let bundle = airlock_policy::Bundle::load(&dir)
                .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", dir.display()))?;
            let report = bundle.run_tests();
            let status = pending(if report.failed.is_empty() { 0 } else { DENIED });
            for name in &report.passed {
                println!("PASS {name}");
            }
            for (name, why) in &report.failed {
                println!("FAIL {name}: {why}");
            }
            println!(
                "{} passed, {} failed (bundle {})",
                report.passed.len(),
                report.failed.len(),
                bundle.digest()
            );
            Ok(status)
        }
        PolicyCommand::Eval {
            input,
            bundle,
            stage,
            query,
            common,
        } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let document: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", input.display()))?;
            let bundle = match bundle {
                Some(dir) => airlock_policy::Bundle::load(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", dir.display()))?,
                None => airlock_policy::default_bundle(),
            };
            let query = match (query, stage) {
                (Some(query), _) => query,
                (None, Some(stage)) => format!("data.airlock.gates.{stage}"),
                (None, None) => match document["target"]["stage"].as_str() {
                    Some(stage) => format!("data.airlock.gates.{stage}"),
                    None => bail!("give --stage or --query (the input has no target.stage)"),
                },
            };
            let decision = bundle.evaluate(&query, &document, airlock_policy::DEFAULT_TIMEOUT);
            let value = serde_json::to_value(&decision)?;
            let status = pending(if decision.allowed { 0 } else { DENIED });
            match common.output {
                OutputFormat::Json => println!("{value}"),
                OutputFormat::Text => {
                    println!(
                        "{} ({query}, bundle {}){}",
                        if decision.allowed {
                            "ALLOWED"
                        } else {
                            "DENIED"
                        },
                        bundle.digest(),
                        decision
                            .approvals
                            .map(|n| format!("; {n} approvals required"))
                            .unwrap_or_default()
                    );
                    let violations = violations_text(&serde_json::from_value(value)?);
                    if !violations.is_empty() {
                        println!("{violations}");
                    }
                }
            }
            Ok(status)
        }
        PolicyCommand::Show { common } => {
            let api = common.connect().await?;
            let info: api::PolicyInfo = api.get_as("/api/v1/policy").await?;
            print_as(&common, &info, |i| {
                format!("bundle {}\n  {}", i.digest, i.files.join("\n  "))
            });
            Ok(0)
        }
        PolicyCommand::Reload { common } => {
            let api = common.connect().await?;
            let info: api::PolicyReloaded =
                api.post_as("/api/v1/policy/reload", &json!({})).await?;
            print_as(&common, &info, |i| format!("reloaded: bundle {}", i.digest));
            Ok(0)
        }
    }
}
