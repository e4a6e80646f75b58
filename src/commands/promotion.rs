//! `airlock promote`, `approve`, `promotions`, `rollback`, `freeze`/`unfreeze`,
//! `decisions` and `policy`: moving artifacts between stages through their gates.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{ApiClient, DENIED};
use crate::commands::common::{Common, print};
use crate::oci_client::ArtifactRef;

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
    /// Wait until the approvals arrive (or the request expires).
    #[arg(long)]
    wait: bool,
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
        /// Only this state (pending_approval, promoted, denied, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only this repository path (team/app).
        #[arg(long)]
        repository: Option<String>,
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
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: crate::commands::common::OutputFormat,
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

fn violations_text(decision: &Value) -> String {
    let mut lines = Vec::new();
    for v in decision["deny"].as_array().cloned().unwrap_or_default() {
        lines.push(format!(
            "  x {}: {}",
            v["rule"].as_str().unwrap_or(""),
            v["msg"].as_str().unwrap_or("")
        ));
        lines.push(format!(
            "      fix: {}",
            v["remediation"].as_str().unwrap_or("")
        ));
        if let Some(docs) = v["docs"].as_str() {
            lines.push(format!("      docs: {docs}"));
        }
    }
    for v in decision["warn"].as_array().cloned().unwrap_or_default() {
        lines.push(format!(
            "  ! {} (warning): {}",
            v["rule"].as_str().unwrap_or(""),
            v["msg"].as_str().unwrap_or("")
        ));
    }
    lines.join("\n")
}

fn outcome_text(body: &Value) -> String {
    let promotion = &body["promotion"];
    let decision = &body["decision"];
    let mut lines = Vec::new();
    let state = promotion["state"].as_str();
    let headline = match (state, decision["allowed"].as_bool()) {
        (Some("expired"), _) => format!(
            "EXPIRED {}: the approvals did not arrive in time; request it again",
            promotion["id"].as_str().unwrap_or("")
        ),
        (Some("cancelled"), _) => format!("CANCELLED {}", promotion["id"].as_str().unwrap_or("")),
        (_, Some(false)) => format!(
            "DENIED{}",
            promotion["id"]
                .as_str()
                .map(|id| format!(" {id}"))
                .unwrap_or_default()
        ),
        (Some("promoted"), _) => format!(
            "PROMOTED {} -> {} ({})",
            promotion["source"].as_str().unwrap_or(""),
            promotion["target"].as_str().unwrap_or(""),
            promotion["id"].as_str().unwrap_or("")
        ),
        (Some("pending_approval"), _) => format!(
            "PENDING APPROVAL {}: {} of {} approvals; approve with `airlock approve {}`",
            promotion["id"].as_str().unwrap_or(""),
            promotion["approvals"].as_array().map_or(0, Vec::len),
            body["approvals_required"],
            promotion["id"].as_str().unwrap_or("")
        ),
        (None, Some(true)) => format!(
            "ALLOWED (dry run; approvals required: {})",
            body["approvals_required"]
        ),
        (Some(other), _) => other.to_uppercase(),
        _ => "UNKNOWN".into(),
    };
    lines.push(headline);
    if let Some(digest) = promotion["digest"].as_str() {
        lines.push(format!("  artifact: {digest}"));
    }
    if let Some(id) = body["decision_id"].as_str() {
        lines.push(format!("  decision: {id} (airlock decisions show {id})"));
    }
    if let Some(attestation) = promotion["attestation"].as_str() {
        lines.push(format!("  attestation: {attestation}"));
    }
    let violations = violations_text(decision);
    if !violations.is_empty() {
        lines.push(violations);
    }
    lines.join("\n")
}

/// `airlock promote`.
pub async fn promote(args: PromoteArgs) -> Result<u8> {
    let target = ArtifactRef::parse(&args.reference, &args.common.server)?;
    let reference = target
        .digest
        .clone()
        .or(target.tag.clone())
        .unwrap_or_default();
    let api = ApiClient::connect(&target.server).await?;
    let tags = if args.tags.is_empty() {
        Value::Null
    } else {
        json!(args.tags)
    };
    let (status, mut body) = api
        .post_raw(
            "/api/v1/promotions",
            &json!({"source": target.repository, "reference": reference, "to": args.to,
                    "tags": tags, "channel": args.channel, "dry_run": args.dry_run,
                    "break_glass": args.break_glass}),
        )
        .await?;
    // A denial (403 with a decision) is a result to print; any other failure is an error.
    if (status != 403 || body["decision"].is_null()) && !(200..300).contains(&status) {
        return Err(api.failure(status, &body));
    }
    if args.wait && body["promotion"]["state"] == "pending_approval" {
        let id = body["promotion"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        eprintln!("waiting for approvals of {id} ...");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let current = api.get(&format!("/api/v1/promotions/{id}")).await?;
            if current["state"] != "pending_approval" {
                body = json!({"promotion": current, "decision": current["decision_result"],
                              "decision_id": current["decision"], "approvals_required": current["approvals_required"]});
                break;
            }
        }
    }
    print(&args.common, &body, outcome_text);
    let state = body["promotion"]["state"].as_str();
    let ok = body["decision"]["allowed"] == true
        && !matches!(state, Some("expired" | "cancelled" | "denied"));
    Ok(if ok { 0 } else { DENIED })
}

/// `airlock approve`.
pub async fn approve(args: ApproveArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let (status, body) = api
        .post_raw(
            &format!("/api/v1/promotions/{}/approve", args.id),
            &json!({"comment": args.comment}),
        )
        .await?;
    if !(200..300).contains(&status) && body["decision"].is_null() {
        return Err(api.failure(status, &body));
    }
    print(&args.common, &body, outcome_text);
    Ok(if body["decision"]["allowed"] == true {
        0
    } else {
        DENIED
    })
}

fn promotion_line(p: &Value) -> String {
    format!(
        "{:<21} {:<17} {} -> {}  {}  by {}",
        p["id"].as_str().unwrap_or(""),
        p["state"].as_str().unwrap_or(""),
        p["source"].as_str().unwrap_or(""),
        p["target"].as_str().unwrap_or(""),
        &p["digest"].as_str().unwrap_or("")[..19.min(p["digest"].as_str().unwrap_or("").len())],
        p["requested_by"].as_str().unwrap_or("")
    )
}

/// `airlock promotions ...`.
pub async fn promotions(command: PromotionsCommand) -> Result<u8> {
    match command {
        PromotionsCommand::List {
            state,
            repository,
            common,
        } => {
            let api = common.connect().await?;
            let mut query = Vec::new();
            if let Some(state) = state {
                query.push(format!("state={state}"));
            }
            if let Some(repository) = repository {
                query.push(format!("repository={repository}"));
            }
            let list = api
                .get(&format!("/api/v1/promotions?{}", query.join("&")))
                .await?;
            print(&common, &list, |v| {
                let items = v["promotions"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    return "no promotions".into();
                }
                items
                    .iter()
                    .map(promotion_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PromotionsCommand::Show { id, common } => {
            let api = common.connect().await?;
            let p = api.get(&format!("/api/v1/promotions/{id}")).await?;
            print(&common, &p, |p| {
                let mut lines = vec![promotion_line(p)];
                lines.push(format!(
                    "  approvals: {} of {}",
                    p["approvals"].as_array().map_or(0, Vec::len),
                    p["approvals_required"]
                ));
                for a in p["approvals"].as_array().cloned().unwrap_or_default() {
                    lines.push(format!(
                        "    {} at {} {}",
                        a["principal"].as_str().unwrap_or(""),
                        a["at"].as_str().unwrap_or(""),
                        a["comment"].as_str().unwrap_or("")
                    ));
                }
                if let Some(d) = p["decision"].as_str() {
                    lines.push(format!("  decision: {d}"));
                }
                let violations = violations_text(&p["decision_result"]);
                if !violations.is_empty() {
                    lines.push(violations);
                }
                lines.join("\n")
            });
        }
        PromotionsCommand::Cancel { id, common } => {
            let api = common.connect().await?;
            let p = api
                .post(&format!("/api/v1/promotions/{id}/cancel"), &json!({}))
                .await?;
            print(&common, &p, |p| {
                format!("cancelled {}", p["id"].as_str().unwrap_or(""))
            });
        }
    }
    Ok(0)
}

/// `airlock rollback`.
pub async fn rollback(args: RollbackArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let (status, body) = api
        .post_raw(
            "/api/v1/rollbacks",
            &json!({"repository": args.repository, "channel": args.channel, "to": args.to}),
        )
        .await?;
    if !(200..300).contains(&status) && body["decision"].is_null() {
        return Err(api.failure(status, &body));
    }
    print(&args.common, &body, |b| {
        if b["decision"]["allowed"] == true {
            format!(
                "rolled {}:{} back from {} to {}",
                b["repository"].as_str().unwrap_or(""),
                b["channel"].as_str().unwrap_or(""),
                b["from"].as_str().unwrap_or(""),
                b["to"].as_str().unwrap_or("")
            )
        } else {
            format!(
                "DENIED: rolling back to {} is refused\n{}",
                b["to"].as_str().unwrap_or(""),
                violations_text(&b["decision"])
            )
        }
    });
    Ok(if body["decision"]["allowed"] == true {
        0
    } else {
        DENIED
    })
}

/// `airlock freeze`.
pub async fn freeze(args: FreezeArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let body = api
        .post(
            &format!("/api/v1/stages/{}/freeze", args.stage),
            &json!({"reason": args.reason}),
        )
        .await?;
    print(&args.common, &body, |_| {
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
    let body = api
        .post(
            &format!("/api/v1/stages/{}/unfreeze", args.stage),
            &json!({}),
        )
        .await?;
    print(&args.common, &body, |_| format!("unfroze {}", args.stage));
    Ok(0)
}

/// `airlock decisions ...`.
pub async fn decisions(command: DecisionsCommand) -> Result<u8> {
    match command {
        DecisionsCommand::Show { id, common } => {
            let api = common.connect().await?;
            let d = api.get(&format!("/api/v1/decisions/{id}")).await?;
            print(&common, &d, |d| {
                format!(
                    "{} ({} {}, policy {}): {}\n{}",
                    d["id"].as_str().unwrap_or(""),
                    d["action"].as_str().unwrap_or(""),
                    d["query"].as_str().unwrap_or(""),
                    d["policy"].as_str().unwrap_or(""),
                    if d["allowed"] == true {
                        "allowed"
                    } else {
                        "denied"
                    },
                    violations_text(&d["result"])
                )
            });
            Ok(0)
        }
        DecisionsCommand::Replay { id, common } => {
            let api = common.connect().await?;
            let r = api
                .post(&format!("/api/v1/decisions/{id}/replay"), &json!({}))
                .await?;
            print(&common, &r, |r| {
                if r["identical"] == true {
                    format!(
                        "replayed {} with policy {}: identical",
                        r["id"].as_str().unwrap_or(""),
                        r["policy"].as_str().unwrap_or("")
                    )
                } else {
                    format!(
                        "replayed {}: DIFFERENT\n  original: {}\n  replayed: {}",
                        r["id"].as_str().unwrap_or(""),
                        r["original"],
                        r["replayed"]
                    )
                }
            });
            Ok(if r["identical"] == true { 0 } else { DENIED })
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
            Ok(if report.failed.is_empty() { 0 } else { DENIED })
        }
        PolicyCommand::Eval {
            input,
            bundle,
            stage,
            query,
            output,
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
            match output {
                crate::commands::common::OutputFormat::Json => println!("{value}"),
                crate::commands::common::OutputFormat::Text => {
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
                    let violations = violations_text(&value);
                    if !violations.is_empty() {
                        println!("{violations}");
                    }
                }
            }
            Ok(if decision.allowed { 0 } else { DENIED })
        }
        PolicyCommand::Show { common } => {
            let api = common.connect().await?;
            let info = api.get("/api/v1/policy").await?;
            print(&common, &info, |i| {
                format!(
                    "bundle {}\n  {}",
                    i["digest"].as_str().unwrap_or(""),
                    i["files"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect::<Vec<_>>()
                        .join("\n  ")
                )
            });
            Ok(0)
        }
        PolicyCommand::Reload { common } => {
            let api = common.connect().await?;
            let info = api.post("/api/v1/policy/reload", &json!({})).await?;
            print(&common, &info, |i| {
                format!("reloaded: bundle {}", i["digest"].as_str().unwrap_or(""))
            });
            Ok(0)
        }
    }
}
