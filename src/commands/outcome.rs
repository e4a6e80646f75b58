//! How a command's outcome reaches its caller, the same for every command:
//!
//! - the exit status: 0 done, 1 refused, denied or a failed check, 2 a usage or connection error
//!   (also a server failure, 5xx, and anything that is not a decision);
//! - an error on stderr (`airlock: ...`), and with `--output json` also as one JSON document on
//!   stdout in the API's shape, `{"error":{"code","message","remediation"}}`;
//! - when stdout's reader goes away (`airlock audit tail | head -1`), a quiet exit instead of a
//!   panic, with the status the command was going to return (0 unless it recorded another with
//!   [`pending`] before printing: a denial or an error still exits 1 or 2).

use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::json;

use crate::client::{ApiError, ConnectionFailed};
use crate::commands::common::OutputFormat;

/// Exit status for a usage or connection error.
pub const USAGE_OR_CONNECTION: u8 = 2;

static OUTPUT: OnceLock<OutputFormat> = OnceLock::new();

/// The exit status a command recorded before printing its outcome (see [`pending`]).
static PENDING: AtomicU8 = AtomicU8::new(0);

/// Records `status` as the one to exit with if stdout's reader has gone away while the command
/// prints (a denial's report, an error's JSON), and returns it. Call it before printing.
pub fn pending(status: u8) -> u8 {
    PENDING.store(status, Ordering::SeqCst);
    status
}

/// Records `--output` for error reports (set once by `main` after parsing).
pub fn set_output(format: OutputFormat) {
    let _ = OUTPUT.set(format);
}

fn output() -> OutputFormat {
    OUTPUT.get().copied().unwrap_or(OutputFormat::Text)
}

/// Reports a command's error as `--output` says and returns its exit status.
pub fn report_error(err: &anyhow::Error) -> u8 {
    eprintln!("airlock: {err:#}");
    let (status, code, message, remediation) = classify(err);
    pending(status);
    if output() == OutputFormat::Json {
        // A closed stdout changes nothing: the status stays the error's.
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            json!({"error": {"code": code, "message": message, "remediation": remediation}})
        );
    }
    status
}

/// The exit status and the JSON error fields for `err`.
fn classify(err: &anyhow::Error) -> (u8, String, String, String) {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return (
            api.exit,
            api.detail.code.clone(),
            api.detail.message.clone(),
            api.detail.remediation.clone(),
        );
    }
    if let Some(failed) = err.downcast_ref::<ConnectionFailed>() {
        return (
            USAGE_OR_CONNECTION,
            "CONNECTION_FAILED".into(),
            format!("{err:#}"),
            if failed.source.is_some() {
                "check the server address (--server, AIRLOCK_SERVER or `airlock context use`) \
                 and that airlock is running there"
                    .into()
            } else {
                // A TLS failure: its message already names the fix.
                String::new()
            },
        );
    }
    (
        USAGE_OR_CONNECTION,
        "CLI_ERROR".into(),
        format!("{err:#}"),
        String::new(),
    )
}

/// Reports a command line clap refused (exit 2; `--help` and `--version` exit 0), as JSON on
/// stdout too when the command line asked for `--output json`.
pub fn report_usage_error(err: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    let status = match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        _ => USAGE_OR_CONNECTION,
    };
    let _ = err.print();
    if status != 0 && json_requested(std::env::args().skip(1)) {
        let message = usage_message(&err.render().to_string());
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            json!({"error": {"code": "USAGE", "message": message,
                             "remediation": "see the command's --help for its arguments and flags"}})
        );
    }
    status
}

/// The part of clap's rendered error that says what is wrong: its lines up to the first blank
/// one (the usage line and the `--help` hint follow), without the leading `error: `.
fn usage_message(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_start_matches("error: ")
        .to_string()
}

/// Whether a command line clap could not parse asked for `--output json` / `-o json`.
fn json_requested(args: impl Iterator<Item = String>) -> bool {
    let mut previous_was_flag = false;
    for arg in args {
        if previous_was_flag && arg == "json" {
            return true;
        }
        if matches!(arg.as_str(), "--output=json" | "-ojson" | "-o=json") {
            return true;
        }
        previous_was_flag = arg == "--output" || arg == "-o";
    }
    false
}

/// Makes a write to a closed stdout end the process quietly: the reader took what it wanted
/// (`| head -1`). The status is the one the command recorded with [`pending`] (0 if none). Rust ignores SIGPIPE, so such a write fails with EPIPE and
/// `println!` panics with "failed printing to stdout: Broken pipe"; every other panic keeps the
/// default report.
pub fn exit_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if payload.starts_with("failed printing to stdout")
            && (payload.contains("Broken pipe") || payload.contains("os error 32"))
        {
            std::process::exit(i32::from(PENDING.load(Ordering::SeqCst)));
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn json_output_is_recognised_in_every_spelling_and_position() {
        assert!(json_requested(args(&["-o", "json", "users"])));
        assert!(json_requested(args(&["users", "list", "--output", "json"])));
        assert!(json_requested(args(&["users", "--output=json"])));
        assert!(json_requested(args(&["-ojson"])));
        assert!(!json_requested(args(&["users", "add", "json"])));
        assert!(!json_requested(args(&["-o", "text", "json"])));
    }

    #[test]
    fn a_usage_message_keeps_every_line_before_the_usage() {
        let rendered = "error: the following required arguments were not provided:\n  <NAME>\n\nUsage: airlock channels history <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_message(rendered),
            "the following required arguments were not provided:\n  <NAME>"
        );
    }

    #[test]
    fn refusals_exit_1_and_everything_else_2() {
        for (status, exit) in [(401, 1), (403, 1), (404, 1), (409, 1), (422, 1), (429, 1)] {
            assert_eq!(crate::client::exit_status_for(status), exit, "{status}");
        }
        for status in [400, 413, 500, 502, 503] {
            assert_eq!(crate::client::exit_status_for(status), 2, "{status}");
        }
        let err: anyhow::Error = ApiError::from_answer(
            403,
            &json!({"error": {"code": "FORBIDDEN", "message": "no", "remediation": "ask"}}),
        )
        .into();
        let (status, code, message, remediation) = classify(&err);
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (1, "FORBIDDEN", "no")
        );
        assert_eq!(remediation, "ask");
        let err: anyhow::Error = ApiError::from_answer(502, &json!("<html>")).into();
        assert_eq!(classify(&err).0, 2);
        assert_eq!(classify(&anyhow::anyhow!("bad flag")).0, 2);
    }
}
