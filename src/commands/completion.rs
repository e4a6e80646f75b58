//! `airlock completion SHELL` and `airlock manpages DIR`: shell completion scripts and man pages,
//! both generated from the same clap definition the binary parses with, so they cannot list a
//! flag the binary does not take.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

/// `airlock completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. E.g. `airlock completion bash >
    /// /etc/bash_completion.d/airlock`, or `source <(airlock completion bash)`.
    shell: clap_complete::Shell,
}

/// `airlock manpages`.
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// The directory to write `airlock.1` and one page per subcommand (`airlock-promote.1`, ...)
    /// into; created if missing. E.g. `airlock manpages /usr/local/share/man/man1`.
    dir: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout (a reader that stops early, such as
/// `| head`, ends the command quietly).
pub fn completion(args: CompletionArgs, mut command: clap::Command) -> Result<u8> {
    use std::io::Write;
    let name = command.get_name().to_string();
    // Rendered first: clap_complete panics on a failed write, this reports it.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(err) => Err(err).context("cannot write the completion script to stdout"),
        Ok(()) => Ok(0),
    }
}

/// Writes the man pages of `command` and every subcommand into `args.dir`.
pub fn manpages(args: ManpagesArgs, command: clap::Command) -> Result<u8> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let written = write_pages(&args.dir, command)?;
    eprintln!("wrote {written} man pages to {}", args.dir.display());
    Ok(0)
}

fn write_pages(dir: &Path, command: clap::Command) -> Result<usize> {
    // Built, each subcommand's display name is `<parent>-<sub>`, the page's name.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    write_page(dir, &command)
}

fn write_page(dir: &Path, command: &clap::Command) -> Result<usize> {
    if command.is_hide_set() {
        return Ok(0);
    }
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .render(&mut page)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands() {
        written += write_page(dir, sub)?;
    }
    Ok(written)
}
