//! `airlock verify REF... --stage prod [--current]`: whether each image reference a deployment
//! names is a digest promoted into the stage, by which promotion and decision, and whether that
//! still stands (`POST /api/v1/verify`). Exit 0 only if every reference passed, 1 if any failed.

use airlock_api::deploy::{VerifyAnswer, VerifyRequest, VerifyResult};
use anyhow::Result;
use clap::Args;

use crate::commands::common::{Common, print_as};
use crate::commands::outcome;

/// `airlock verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image references as the deployment names them, e.g.
    /// airlock.example.com/prod/team/app@sha256:... (the host is not compared).
    #[arg(required = true, value_name = "REF")]
    references: Vec<String>,
    /// The stage they must have been promoted into.
    #[arg(long)]
    stage: String,
    /// Also require each digest to be where its channel tag points now (not rolled back from).
    #[arg(long)]
    current: bool,
    #[command(flatten)]
    common: Common,
}

fn result_text(result: &VerifyResult) -> String {
    let mut lines = Vec::new();
    if result.verified {
        lines.push(format!("ok      {}", result.reference));
    } else {
        lines.push(format!("FAILED  {}", result.reference));
    }
    if let (Some(repository), Some(digest)) = (&result.repository, &result.digest) {
        lines.push(format!("        artifact:    {repository}@{digest}"));
    }
    if let Some(promotion) = &result.promotion {
        let approvals = if promotion.approvals.is_empty() {
            "none".to_string()
        } else {
            promotion.approvals.join(", ")
        };
        lines.push(format!(
            "        promotion:   {} from {}, requested by {}, approved by {approvals}{}",
            promotion.id,
            promotion.from,
            promotion.requested_by,
            promotion
                .promoted_at
                .as_deref()
                .map(|at| format!(", promoted {at}"))
                .unwrap_or_default()
        ));
        if let Some(decision) = &promotion.decision {
            lines.push(format!("        decision:    {decision}"));
        }
        if let Some(index) = &promotion.via_index {
            lines.push(format!("        via index:   {index}"));
        }
        if let Some(reason) = &promotion.break_glass {
            lines.push(format!("        break-glass: {reason}"));
        }
    }
    if let Some(attestation) = &result.attestation {
        lines.push(format!("        attestation: {attestation}"));
    }
    for failure in &result.failures {
        lines.push(format!("        {}: {}", failure.code, failure.message));
        lines.push(format!("          fix: {}", failure.remediation));
    }
    lines.join("\n")
}

fn answer_text(answer: &VerifyAnswer) -> String {
    let failed = answer.results.iter().filter(|r| !r.verified).count();
    let mut text: Vec<String> = answer.results.iter().map(result_text).collect();
    text.push(if failed == 0 {
        format!(
            "all {} reference(s) verified for stage {}",
            answer.results.len(),
            answer.stage
        )
    } else {
        format!(
            "{failed} of {} reference(s) not verified for stage {}",
            answer.results.len(),
            answer.stage
        )
    });
    text.join("\n")
}

/// Runs `airlock verify`.
pub async fn verify(args: VerifyArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let answer: VerifyAnswer = api
        .post_as(
            "/api/v1/verify",
            &VerifyRequest {
                stage: args.stage,
                references: args.references,
                current: args.current,
            },
        )
        .await?;
    let status = outcome::pending(if answer.verified { 0 } else { 1 });
    print_as(&args.common, &answer, answer_text);
    Ok(status)
}
