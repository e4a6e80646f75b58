//! `airlock verify REF... --stage prod [--current]`: whether each image reference a deployment
//! names is a digest promoted into the stage, by which promotion and decision, and whether that
//! still stands (`POST /api/v1/verify`). Exit 0 only if every reference passed, 1 if any failed.
//!
//! `airlock deploy-token --stage prod --repo team/app [--ttl 10m] [--format ...]`: a pull-only
//! token for named repositories (`POST /api/v1/deploy-tokens`), printed as the token, a Docker
//! config or a Kubernetes `imagePullSecret`.
//!
//! `airlock deployments report` and `airlock drift`: what runs where, as deployments report it,
//! and which of it is not what its stage holds (`POST /api/v1/deployments`, `GET /api/v1/drift`).

use airlock_api::deploy::{
    DeployTokenAnswer, DeployTokenRequest, DeploymentAnswer, DeploymentReport, DriftPage,
    VerifyAnswer, VerifyRequest, VerifyResult,
};
use anyhow::{Context, Result};
use base64::Engine as _;
use clap::{Args, ValueEnum};

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

/// How `airlock deploy-token` prints the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The token alone (use it as a bearer token, or as the password with your user name).
    Token,
    /// A Docker config (`config.json`) holding it for the registry host.
    DockerConfig,
    /// A Kubernetes Secret of type `kubernetes.io/dockerconfigjson`, for `imagePullSecrets`.
    Kubernetes,
}

/// `airlock deploy-token`.
#[derive(Debug, Args)]
pub struct DeployTokenArgs {
    /// The stage the images are pulled from.
    #[arg(long)]
    stage: String,
    /// A repository path in that stage, without the stage (repeatable), e.g. team/app.
    #[arg(long = "repo", required = true, value_name = "PATH")]
    repositories: Vec<String>,
    /// How long the token lives, e.g. 10m, 1h (at most the server's max_token_ttl_secs).
    #[arg(long, default_value = "10m", value_parser = parse_ttl)]
    ttl: u64,
    /// What to print.
    #[arg(long, value_enum, default_value_t = TokenFormat::Token)]
    format: TokenFormat,
    /// The registry host the cluster pulls airlock by (default: the server URL's host and port).
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// The Secret's name (with --format kubernetes).
    #[arg(long, default_value = "airlock-pull")]
    name: String,
    /// The Secret's namespace (with --format kubernetes; default: none, kubectl's).
    #[arg(long)]
    namespace: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// A DNS label, as Kubernetes names of Secrets and namespaces are.
fn is_kubernetes_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn parse_ttl(value: &str) -> Result<u64, String> {
    crate::client::parse_duration(value).map_err(|e| e.to_string())
}

/// `{"auths": {HOST: {"username", "password", "auth"}}}`, as `docker login` writes it.
fn docker_config(registry: &str, answer: &DeployTokenAnswer) -> serde_json::Value {
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", answer.username, answer.token));
    serde_json::json!({"auths": {registry: {
        "username": answer.username,
        "password": answer.token,
        "auth": auth,
    }}})
}

fn kubernetes_secret(
    name: &str,
    namespace: Option<&str>,
    registry: &str,
    answer: &DeployTokenAnswer,
) -> String {
    let config = docker_config(registry, answer).to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(config);
    let mut lines = vec![
        format!(
            "# A pull-only airlock deploy token for {}, expiring {}.",
            answer.repositories.join(", "),
            answer.expires_at
        ),
        "apiVersion: v1".to_string(),
        "kind: Secret".to_string(),
        "metadata:".to_string(),
        format!("  name: {name}"),
    ];
    if let Some(namespace) = namespace {
        lines.push(format!("  namespace: {namespace}"));
    }
    lines.extend([
        "  annotations:".to_string(),
        format!("    airlock.example.com/token-id: \"{}\"", answer.id),
        format!("    airlock.example.com/expires: \"{}\"", answer.expires_at),
        "type: kubernetes.io/dockerconfigjson".to_string(),
        "data:".to_string(),
        format!("  .dockerconfigjson: {encoded}"),
    ]);
    lines.join("\n") + "\n"
}

/// Runs `airlock deploy-token`.
pub async fn deploy_token(args: DeployTokenArgs) -> Result<u8> {
    let registry = match &args.registry {
        Some(registry) => registry.clone(),
        None => {
            let url = reqwest::Url::parse(&args.common.server).with_context(|| {
                format!("the server URL {:?} does not parse", args.common.server)
            })?;
            let host = url.host_str().context("the server URL has no host")?;
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }
    };
    if let Some(namespace) = &args.namespace
        && args.format != TokenFormat::Kubernetes
    {
        anyhow::bail!("--namespace {namespace} is for --format kubernetes");
    }
    for (flag, value) in [
        ("--name", Some(&args.name)),
        ("--namespace", args.namespace.as_ref()),
    ] {
        if let Some(value) = value
            && !is_kubernetes_name(value)
        {
            anyhow::bail!(
                "{flag} {value:?} is not a Kubernetes name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
            );
        }
    }
    let api = args.common.connect().await?;
    let answer: DeployTokenAnswer = api
        .post_as(
            "/api/v1/deploy-tokens",
            &DeployTokenRequest {
                stage: args.stage,
                repositories: args.repositories,
                ttl_secs: Some(args.ttl),
            },
        )
        .await?;
    match args.format {
        TokenFormat::Token => print_as(&args.common, &answer, |a| a.token.clone()),
        TokenFormat::DockerConfig => {
            println!("{:#}", docker_config(&registry, &answer));
        }
        TokenFormat::Kubernetes => {
            print!(
                "{}",
                kubernetes_secret(&args.name, args.namespace.as_deref(), &registry, &answer)
            );
        }
    }
    eprintln!(
        "deploy token {} for {} (user {}), pull only, expires {}",
        answer.id,
        answer.repositories.join(", "),
        answer.username,
        answer.expires_at
    );
    Ok(0)
}

/// `airlock deployments`.
#[derive(Debug, clap::Subcommand)]
pub enum DeploymentsCommand {
    /// Report what a workload runs now (replacing its earlier report); each image is verified
    /// against the stage, and one never promoted there raises a `drift` anomaly signal.
    Report {
        /// Where it runs (a cluster, a region).
        #[arg(long)]
        environment: String,
        /// What runs the images, e.g. shop/deployment/checkout.
        #[arg(long)]
        workload: String,
        /// The stage it deploys from.
        #[arg(long)]
        stage: String,
        /// Every image reference it runs (none: it runs nothing any more).
        #[arg(value_name = "REF")]
        images: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Only this environment.
    #[arg(long)]
    environment: Option<String>,
    /// Reported images checked per page (the server's default when unset).
    #[arg(short = 'n', long = "limit", value_name = "N")]
    limit: Option<u32>,
    /// Continue after this cursor (printed at the end of the previous page).
    #[arg(long, value_name = "CURSOR")]
    last: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Runs `airlock deployments`.
pub async fn deployments(command: DeploymentsCommand) -> Result<u8> {
    let DeploymentsCommand::Report {
        environment,
        workload,
        stage,
        images,
        common,
    } = command;
    let api = common.connect().await?;
    let answer: DeploymentAnswer = api
        .post_as(
            "/api/v1/deployments",
            &DeploymentReport {
                environment,
                workload,
                stage,
                images,
            },
        )
        .await?;
    let status = outcome::pending(if answer.unpromoted == 0 { 0 } else { 1 });
    print_as(&common, &answer, |answer| {
        let mut text: Vec<String> = answer.images.iter().map(result_text).collect();
        text.push(format!(
            "reported {} image(s) of {} in {} (stage {}); {} never promoted there",
            answer.images.len(),
            answer.workload,
            answer.environment,
            answer.stage,
            answer.unpromoted
        ));
        text.join("\n")
    });
    Ok(status)
}

/// Runs `airlock drift`: exit 0 when the page shows no drift, 1 when it does.
pub async fn drift(args: DriftArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let mut params = Vec::new();
    if let Some(environment) = &args.environment {
        params.push(("environment", environment.clone()));
    }
    if let Some(n) = args.limit {
        params.push(("n", n.to_string()));
    }
    if let Some(last) = &args.last {
        params.push(("last", last.clone()));
    }
    let page: DriftPage = api
        .get_as(&crate::commands::catalog::with_query(
            "/api/v1/drift",
            &params,
        ))
        .await?;
    let status = outcome::pending(if page.drift.is_empty() { 0 } else { 1 });
    print_as(&args.common, &page, |page| {
        let mut lines = Vec::new();
        for entry in &page.drift {
            lines.push(format!(
                "{:<10}  {} {} runs {} (stage {}, reported by {} at {})",
                entry.kind.to_uppercase(),
                entry.environment,
                entry.workload,
                entry.reference,
                entry.stage,
                entry.reported_by,
                entry.reported_at
            ));
            for failure in &entry.failures {
                lines.push(format!("            {}: {}", failure.code, failure.message));
                lines.push(format!("              fix: {}", failure.remediation));
            }
        }
        lines.push(format!(
            "{} of {} reported image(s) drifted",
            page.drift.len(),
            page.checked
        ));
        lines.join("\n")
    });
    crate::commands::catalog::more(page.next.as_deref(), "airlock drift");
    Ok(status)
}
