//! OpenMetrics 1.0 text for scrapers that ask for it.
//!
//! metrics-exporter-prometheus 0.17 renders only the Prometheus text format (0.0.4), so this
//! module negotiates the format from the `Accept` header and rewrites the exporter's text into
//! OpenMetrics, which differs from it in exactly these ways for the metric types airlock uses
//! (counters, gauges, histograms and summaries):
//!
//! - a counter family is named without `_total` in `# HELP`/`# TYPE`, its samples with it;
//! - `# HELP` text escapes `"` as well as `\` and newlines;
//! - no blank lines; the exposition ends with `# EOF`;
//! - `le` and `quantile` label values and sample values are canonical numbers (`1.0`, `+Inf`).

/// The OpenMetrics text version a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// `version=1.0.0`, or no version.
    V1_0_0,
    /// `version=0.0.1`, the draft some scrapers still list (the text is the same here).
    V0_0_1,
}

impl Version {
    /// The response's `Content-Type`.
    pub(super) fn content_type(self) -> &'static str {
        match self {
            Self::V1_0_0 => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::V0_0_1 => "application/openmetrics-text; version=0.0.1; charset=utf-8",
        }
    }
}

/// Which OpenMetrics version to answer with, or `None` for the Prometheus text format: the
/// format with the higher `q` in `accept` wins (`*/*` and `text/*` count for the Prometheus
/// text), OpenMetrics on a tie only if it was named. A missing or empty header is Prometheus
/// text, so existing scrapers see no change.
pub(super) fn negotiate(accept: &str) -> Option<Version> {
    let mut best_openmetrics: Option<(f32, Version)> = None;
    let mut best_text = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0_f32;
        let mut version = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0),
                "version" => version = Some(value.to_string()),
                _ => {}
            }
        }
        match media_type.as_str() {
            "application/openmetrics-text" => {
                let version = match version.as_deref() {
                    None | Some("1.0.0") => Version::V1_0_0,
                    Some("0.0.1") => Version::V0_0_1,
                    Some(_) => continue,
                };
                if q > 0.0 && best_openmetrics.is_none_or(|(best, _)| q > best) {
                    best_openmetrics = Some((q, version));
                }
            }
            "text/plain" | "text/*" | "*/*" => best_text = best_text.max(q),
            _ => {}
        }
    }
    best_openmetrics
        .filter(|(q, _)| *q >= best_text)
        .map(|(_, version)| version)
}

/// Rewrites the exporter's Prometheus text exposition as OpenMetrics text (see the module
/// documentation for what changes).
pub(super) fn from_prometheus_text(text: &str) -> String {
    use std::collections::HashMap;
    // Each family's type, by the name the exporter gave it.
    let types: HashMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let counter_family = |name: &str| -> Option<String> {
        (types.get(name) == Some(&"counter"))
            .then(|| name.strip_suffix("_total").unwrap_or(name).to_string())
    };
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = counter_family(name).unwrap_or_else(|| name.to_string());
            out.push_str(&format!("# HELP {family} {}\n", escape_help(help)));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let family = counter_family(name).unwrap_or_else(|| name.to_string());
            out.push_str(&format!("# TYPE {family} {kind}\n"));
        } else if line.starts_with('#') {
            // Other comments are not part of OpenMetrics.
            continue;
        } else {
            out.push_str(&sample(line, &counter_family));
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// One sample line: a counter's sample gets its `_total`, numbers become canonical.
fn sample(line: &str, counter_family: &dyn Fn(&str) -> Option<String>) -> String {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let name = match counter_family(name) {
        Some(family) => format!("{family}_total"),
        None => name.to_string(),
    };
    let rest = &line[name_end..];
    let (labels, value) = match rest.strip_prefix('{') {
        Some(inner) => match label_set_end(inner) {
            Some(end) => (
                Some(canonical_labels(&inner[..end])),
                inner[end + 1..].trim(),
            ),
            None => (None, rest.trim()),
        },
        None => (None, rest.trim()),
    };
    match labels {
        Some(labels) => format!("{name}{{{labels}}} {}", canonical_number(value)),
        None => format!("{name} {}", canonical_number(value)),
    }
}

/// The index of the `}` closing a label set (`inner` starts after its `{`), skipping quoted
/// label values with their escapes.
fn label_set_end(inner: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in inner.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(index),
            _ => {}
        }
    }
    None
}

/// Label pairs with `le` and `quantile` values made canonical (`1` -> `1.0`, `inf` -> `+Inf`).
/// The exporter never puts `,` or `"` inside those two (they are numbers), so splitting there is
/// safe; other labels are copied as they are.
fn canonical_labels(labels: &str) -> String {
    let mut out = Vec::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let Some(eq) = rest.find("=\"") else {
            out.push(rest.to_string());
            break;
        };
        let key = &rest[..eq];
        let value_start = eq + 2;
        let value_len = quoted_len(&rest[value_start..]);
        let value = &rest[value_start..value_start + value_len];
        let value = if key == "le" || key == "quantile" {
            canonical_float(value)
        } else {
            value.to_string()
        };
        out.push(format!("{key}=\"{value}\""));
        rest = rest[(value_start + value_len + 1).min(rest.len())..]
            .strip_prefix(',')
            .unwrap_or("");
    }
    out.join(",")
}

/// The length of a quoted value up to (not including) its closing `"`.
fn quoted_len(value: &str) -> usize {
    let mut escaped = false;
    for (index, c) in value.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return index,
            _ => {}
        }
    }
    value.len()
}

/// A sample value as OpenMetrics writes it: integers as they are, floats as
/// [`canonical_float`] writes them.
fn canonical_number(value: &str) -> String {
    if value.parse::<i64>().is_ok() {
        return value.to_string();
    }
    canonical_float(value)
}

/// A float as OpenMetrics writes it (what its `le` and `quantile` labels need): `+Inf`, `-Inf`,
/// `NaN`, whole numbers with `.0`, others in their shortest form (`0.0025`). Text that is not a
/// number is left alone.
fn canonical_float(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) if v.is_nan() => "NaN".to_string(),
        Ok(v) if v == f64::INFINITY => "+Inf".to_string(),
        Ok(v) if v == f64::NEG_INFINITY => "-Inf".to_string(),
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.1}"),
        Ok(v) => v.to_string(),
        Err(_) => value.to_string(),
    }
}

/// `# HELP` text in OpenMetrics: `\\`, `\n` (already escaped by the exporter) and `\"`.
fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prometheus_text_stays_the_default() {
        for accept in [
            "",
            "*/*",
            "text/plain",
            "text/plain;version=0.0.4",
            "application/json",
            "text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0.9",
            "application/openmetrics-text;version=2.0.0",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;q=0.5,*/*",
        ] {
            assert_eq!(negotiate(accept), None, "{accept:?}");
        }
    }

    #[test]
    fn openmetrics_is_chosen_when_preferred() {
        // What Prometheus 2.x sends.
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Some(Version::V1_0_0)
        );
        assert_eq!(
            negotiate("application/openmetrics-text; version=1.0.0"),
            Some(Version::V1_0_0)
        );
        assert_eq!(
            negotiate("Application/OpenMetrics-Text"),
            Some(Version::V1_0_0)
        );
        assert_eq!(
            negotiate("text/plain;q=0.5,application/openmetrics-text;version=0.0.1"),
            Some(Version::V0_0_1)
        );
        // A tie goes to the format that was named.
        assert_eq!(
            negotiate("application/openmetrics-text,*/*"),
            Some(Version::V1_0_0)
        );
    }

    #[test]
    fn counters_lose_total_in_their_family_name_only() {
        let text = "# HELP airlock_http_requests_total HTTP requests.\n\
                    # TYPE airlock_http_requests_total counter\n\
                    airlock_http_requests_total{route=\"v2_base\",method=\"GET\",status=\"200\"} 3\n\
                    \n\
                    # HELP airlock_audit_log_entries Entries.\n\
                    # TYPE airlock_audit_log_entries gauge\n\
                    airlock_audit_log_entries 16\n\
                    \n";
        assert_eq!(
            from_prometheus_text(text),
            "# HELP airlock_http_requests HTTP requests.\n\
             # TYPE airlock_http_requests counter\n\
             airlock_http_requests_total{route=\"v2_base\",method=\"GET\",status=\"200\"} 3\n\
             # HELP airlock_audit_log_entries Entries.\n\
             # TYPE airlock_audit_log_entries gauge\n\
             airlock_audit_log_entries 16\n\
             # EOF\n"
        );
    }

    #[test]
    fn a_counter_without_total_gets_it_on_its_samples() {
        let text = "# TYPE things counter\nthings 2\n";
        assert_eq!(
            from_prometheus_text(text),
            "# TYPE things counter\nthings_total 2\n# EOF\n"
        );
    }

    #[test]
    fn histogram_and_summary_numbers_become_canonical() {
        let text = "# TYPE d histogram\n\
                    d_bucket{route=\"a,b}\",le=\"0.0025\"} 1\n\
                    d_bucket{route=\"a,b}\",le=\"1\"} 2\n\
                    d_bucket{route=\"a,b}\",le=\"+Inf\"} 2\n\
                    d_sum{route=\"a,b}\"} 0.5\n\
                    d_count{route=\"a,b}\"} 2\n\
                    # TYPE s summary\n\
                    s{quantile=\"1\"} inf\n\
                    s{quantile=\"0.5\"} NaN\n\
                    s_sum 3\n\
                    s_count 1\n";
        assert_eq!(
            from_prometheus_text(text),
            "# TYPE d histogram\n\
             d_bucket{route=\"a,b}\",le=\"0.0025\"} 1\n\
             d_bucket{route=\"a,b}\",le=\"1.0\"} 2\n\
             d_bucket{route=\"a,b}\",le=\"+Inf\"} 2\n\
             d_sum{route=\"a,b}\"} 0.5\n\
             d_count{route=\"a,b}\"} 2\n\
             # TYPE s summary\n\
             s{quantile=\"1.0\"} +Inf\n\
             s{quantile=\"0.5\"} NaN\n\
             s_sum 3\n\
             s_count 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn help_text_escapes_quotes() {
        let text = "# HELP x says \"hi\" with a \\\\ and a \\n\n# TYPE x gauge\nx 1\n";
        assert_eq!(
            from_prometheus_text(text),
            "# HELP x says \\\"hi\\\" with a \\\\ and a \\n\n# TYPE x gauge\nx 1\n# EOF\n"
        );
    }
}
