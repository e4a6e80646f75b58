//! `airlock stages`, `repos`, `tags`, `channels history` and `status`: what is where, as far as
//! the caller may pull. Lists are paged: `-n` entries per page, `--last` the cursor the previous
//! page printed (on stderr, so the list itself pipes cleanly).

use airlock_api::catalog as api;
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::client::ApiClient;
use crate::commands::common::{Common, print_as};

/// Paging options of a list.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Entries per page (the server's default when unset).
    #[arg(short = 'n', long = "limit", value_name = "N")]
    limit: Option<u32>,
    /// Continue after this cursor (printed at the end of the previous page).
    #[arg(long, value_name = "CURSOR")]
    last: Option<String>,
}

impl PageArgs {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(n) = self.limit {
            params.push(("n", n.to_string()));
        }
        if let Some(last) = &self.last {
            params.push(("last", last.clone()));
        }
        params
    }
}

/// `airlock stages`.
#[derive(Debug, Args)]
pub struct StagesArgs {
    #[command(flatten)]
    common: Common,
}

/// `airlock repos`.
#[derive(Debug, Args)]
pub struct ReposArgs {
    /// Only this stage (e.g. prod); every stage when left out.
    stage: Option<String>,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    common: Common,
}

/// `airlock tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The repository with its stage, e.g. prod/team/app.
    repository: String,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    common: Common,
}

/// `airlock channels`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Every move of a channel tag (promotions and rollbacks), newest first.
    History {
        /// The repository in a gated stage, e.g. prod/team/app.
        repository: String,
        /// The channel tag, e.g. stable.
        channel: String,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// prod/team/app (that stage), team/app (every stage) or a pattern such as 'team/*'.
    path: String,
    #[command(flatten)]
    page: PageArgs,
    #[command(flatten)]
    common: Common,
}

/// `path?query` with the parameters form-encoded.
pub(crate) fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let query: String = reqwest::Url::parse_with_params("http://query.invalid/", params)
        .ok()
        .and_then(|url| url.query().map(String::from))
        .unwrap_or_default();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

async fn read<T: serde::de::DeserializeOwned>(api: &ApiClient, path: &str) -> Result<T> {
    api.get_as::<T>(path).await
}

/// Tells how to get the next page, on stderr.
pub(crate) fn more(next: Option<&str>, command: &str) {
    if let Some(next) = next {
        eprintln!("more: {command} --last {next}");
    }
}

/// `airlock stages`.
pub async fn stages(args: StagesArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let list: api::StageList = read(&api, "/api/v1/stages").await?;
    print_as(&args.common, &list, |list| {
        list.stages
            .iter()
            .map(|s| {
                let mut line = format!("{:<12} {}", s.name, s.kind);
                if !s.from.is_empty() {
                    line.push_str(&format!("  from: {}", s.from.join(",")));
                }
                if let Some(gate) = &s.gate {
                    line.push_str(&format!(
                        "  gate: {}  approvals: {} ({})",
                        gate.query, gate.approvals, gate.approver_role
                    ));
                }
                if !s.channel_tags.is_empty() {
                    line.push_str(&format!("  channels: {}", s.channel_tags.join(",")));
                }
                if let Some(f) = &s.frozen {
                    line.push_str(&format!("  FROZEN: {} (by {} at {})", f.reason, f.by, f.at));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}

/// `airlock repos`.
pub async fn repos(args: ReposArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let mut params = args.page.params();
    if let Some(stage) = &args.stage {
        params.push(("stage", stage.clone()));
    }
    let page: api::RepositoryPage =
        read(&api, &with_query("/api/v1/repositories", &params)).await?;
    print_as(&args.common, &page, |page| {
        if page.repositories.is_empty() {
            return "no repositories you may read".to_string();
        }
        page.repositories
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
            .join("\n")
    });
    let command = match &args.stage {
        Some(stage) => format!("airlock repos {stage}"),
        None => "airlock repos".to_string(),
    };
    more(page.next.as_deref(), &command);
    Ok(0)
}

/// `airlock tags`.
pub async fn tags(args: TagsArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let mut params = args.page.params();
    params.push(("repository", args.repository.clone()));
    let page: api::TagPage = read(&api, &with_query("/api/v1/tags", &params)).await?;
    print_as(&args.common, &page, |page| {
        if page.tags.is_empty() {
            return format!("{} has no tags", page.repository);
        }
        page.tags
            .iter()
            .map(|t| format!("{:<24} {}  {}", t.name, t.digest, t.updated))
            .collect::<Vec<_>>()
            .join("\n")
    });
    more(
        page.next.as_deref(),
        &format!("airlock tags {}", args.repository),
    );
    Ok(0)
}

/// `airlock channels`.
pub async fn channels(command: ChannelsCommand) -> Result<u8> {
    match command {
        ChannelsCommand::History {
            repository,
            channel,
            page,
            common,
        } => {
            let api = common.connect().await?;
            let mut params = page.params();
            params.push(("repository", repository.clone()));
            params.push(("channel", channel.clone()));
            let history: api::ChannelHistory =
                read(&api, &with_query("/api/v1/channels/history", &params)).await?;
            print_as(&common, &history, |h| {
                if h.moves.is_empty() {
                    return format!("{}:{} never moved", h.repository, h.channel);
                }
                h.moves.iter().map(move_line).collect::<Vec<_>>().join("\n")
            });
            more(
                history.next.as_deref(),
                &format!("airlock channels history {repository} {channel}"),
            );
        }
    }
    Ok(0)
}

fn move_line(m: &api::ChannelMoveInfo) -> String {
    format!(
        "{}  {:<8} {}  by {}{}",
        m.at,
        m.action,
        m.digest,
        m.by,
        m.promotion
            .as_deref()
            .map(|p| format!("  ({p})"))
            .unwrap_or_default()
    )
}

/// `airlock status`.
pub async fn status(args: StatusArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let name = args.path.trim_matches('/');
    if name.contains('*') {
        let mut params = args.page.params();
        params.push(("repository", name.to_string()));
        let page: api::StatusPage = read(&api, &with_query("/api/v1/status", &params)).await?;
        print_as(&args.common, &page, |page| {
            page.repositories
                .iter()
                .map(status_text)
                .collect::<Vec<_>>()
                .join("\n")
        });
        more(page.next.as_deref(), &format!("airlock status '{name}'"));
        return Ok(0);
    }
    let path = format!("/api/v1/status/{name}");
    if args.page.limit.is_some() || args.page.last.is_some() {
        // One page, as asked.
        let status: api::RepositoryStatus =
            read(&api, &with_query(&path, &args.page.params())).await?;
        print_as(&args.common, &status, status_text);
        more(status.next.as_deref(), &format!("airlock status '{name}'"));
        return Ok(0);
    }
    // Every page, merged: the whole status, as one answer.
    let mut status: api::RepositoryStatus = read(&api, &path).await?;
    while let Some(last) = status.next.take() {
        let page: api::RepositoryStatus = read(&api, &with_query(&path, &[("last", last)])).await?;
        merge_status(&mut status, page);
    }
    print_as(&args.common, &status, status_text);
    Ok(0)
}

/// Adds a following page of a repository's status to `status`: a stage already shown gets the
/// page's artifacts appended, a new stage is added; `next` becomes the page's.
fn merge_status(status: &mut api::RepositoryStatus, page: api::RepositoryStatus) {
    for stage in page.stages {
        match status.stages.iter_mut().find(|s| s.stage == stage.stage) {
            Some(shown) => shown.artifacts.extend(stage.artifacts),
            None => status.stages.push(stage),
        }
    }
    status.next = page.next;
}

/// One repository's status for people: each stage, its artifacts with the promotion that
/// brought them (who asked, when, who approved) and its channel tags' latest moves.
fn status_text(status: &api::RepositoryStatus) -> String {
    let mut lines = Vec::new();
    for stage in &status.stages {
        let frozen = stage
            .frozen
            .as_deref()
            .map(|r| format!(" (FROZEN: {r})"))
            .unwrap_or_default();
        lines.push(format!("{}{frozen}", stage.repository));
        if stage.artifacts.is_empty() {
            lines.push("  -".into());
        }
        for a in &stage.artifacts {
            let tags = if a.tags.is_empty() {
                "-".to_string()
            } else {
                a.tags.join(",")
            };
            let by = match (&a.promotion, &a.promoted_by) {
                (Some(p), Some(by)) => format!("  by {p} ({by})"),
                _ => String::new(),
            };
            lines.push(format!("  {}  tags: {tags}{by}", a.digest));
            if let Some(at) = &a.promoted_at {
                lines.push(format!(
                    "    requested {}  promoted {at}",
                    a.requested_at.as_deref().unwrap_or("-")
                ));
            }
            for approval in &a.approvals {
                lines.push(format!(
                    "    approved by {} at {}{}",
                    approval.principal,
                    approval.at,
                    approval
                        .comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ));
            }
        }
        for channel in &stage.channels {
            if channel.moves.is_empty() {
                continue;
            }
            lines.push(format!("  channel {}:", channel.channel));
            for m in &channel.moves {
                lines.push(format!("    {}", move_line(m)));
            }
        }
    }
    lines.join("\n")
}
