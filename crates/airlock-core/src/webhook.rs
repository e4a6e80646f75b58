//! Webhook vocabulary: which events an endpoint subscribes to, and how an audit event is named as
//! a CloudEvent (`type` `dev.airlock.<kind>`, `subject` what it is about).
//!
//! Every webhook event is an audit log event (or the `webhook.test` ping), so the audit
//! vocabulary in [`crate::audit`] is the event catalogue; nothing here needs to change when a
//! capability adds an event kind.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::audit::AuditEvent;

/// The prefix of every CloudEvent `type` airlock sends.
pub const EVENT_TYPE_PREFIX: &str = "dev.airlock.";

/// The kind of the test event `airlock webhooks test` sends.
pub const TEST_EVENT_KIND: &str = "webhook.test";

/// Most patterns one endpoint may list.
pub const MAX_PATTERNS: usize = 64;

/// The CloudEvent `type` of an event kind: `promotion.promoted` -> `dev.airlock.promotion.promoted`.
pub fn event_type(kind: &str) -> String {
    format!("{EVENT_TYPE_PREFIX}{kind}")
}

/// An event pattern: `*` (everything), `promotion.*` (every kind under a prefix), or one kind
/// (`promotion.promoted`). The `dev.airlock.` prefix may be written or left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventPattern {
    /// The kind, or the prefix before `.*` (empty for `*`).
    stem: String,
    /// Whether the pattern ends in `*`.
    wildcard: bool,
}

impl EventPattern {
    /// Whether the event kind (`promotion.promoted`) matches.
    pub fn matches(&self, kind: &str) -> bool {
        if !self.wildcard {
            return kind == self.stem;
        }
        self.stem.is_empty()
            || kind
                .strip_prefix(self.stem.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

impl FromStr for EventPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "event pattern {text:?} {why}; use `*`, a prefix like `promotion.*` or a kind like `promotion.promoted`"
            )
        };
        let trimmed = text.trim();
        let kind = trimmed.strip_prefix(EVENT_TYPE_PREFIX).unwrap_or(trimmed);
        if kind.is_empty() || kind.len() > 100 {
            return Err(bad("is empty or too long"));
        }
        if kind.starts_with(EVENT_TYPE_PREFIX) {
            return Err(bad("repeats the dev.airlock. prefix"));
        }
        let (stem, wildcard) = match kind.strip_suffix('*') {
            Some("") => (String::new(), true),
            Some(prefix) => match prefix.strip_suffix('.') {
                Some(stem) => (stem.to_string(), true),
                None => return Err(bad("has `*` other than as a whole last segment")),
            },
            None => (kind.to_string(), false),
        };
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !stem.is_empty() && !stem.split('.').all(valid_segment) {
            return Err(bad("is not dot-separated lowercase words"));
        }
        Ok(Self { stem, wildcard })
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.stem.is_empty(), self.wildcard) {
            (true, _) => f.write_str("*"),
            (false, true) => write!(f, "{}.*", self.stem),
            (false, false) => f.write_str(&self.stem),
        }
    }
}

/// Whether any of `patterns` matches `kind`.
pub fn subscribed(patterns: &[EventPattern], kind: &str) -> bool {
    patterns.iter().any(|p| p.matches(kind))
}

/// What an event is about, as a CloudEvent `subject`: `prod/team/app@sha256:..` for artifacts
/// and promotions, `prod/team/app:stable` for tags, `principal/alice`, `stage/prod`,
/// `anomaly/3`. Deliveries of one subject to one endpoint keep their order.
pub fn cloud_subject(event: &AuditEvent) -> String {
    subject_of(&event.subject_json())
}

fn subject_of(subject: &Value) -> String {
    let text = |key: &str| match &subject[key] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let repository = text("repository").or_else(|| text("repository_path"));
    match (repository, text("digest"), text("tag")) {
        (Some(repository), Some(digest), _) => format!("{repository}@{digest}"),
        (Some(repository), None, Some(tag)) => format!("{repository}:{tag}"),
        (Some(repository), None, None) => repository,
        _ => {
            let kind = text("kind").unwrap_or_else(|| "event".into());
            let name = text("name")
                .or_else(|| text("id"))
                .or_else(|| text("digest"))
                .unwrap_or_default();
            format!("{}/{name}", kind.replace('_', "-"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Action;

    fn pattern(text: &str) -> EventPattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_match_kinds_prefixes_and_everything() {
        assert!(pattern("*").matches("promotion.promoted"));
        assert!(pattern("promotion.*").matches("promotion.promoted"));
        assert!(pattern("dev.airlock.promotion.*").matches("promotion.denied"));
        assert!(!pattern("promotion.*").matches("promotions.x"));
        assert!(!pattern("promotion.*").matches("promotion"));
        assert!(pattern("anomaly.detected").matches("anomaly.detected"));
        assert!(!pattern("anomaly.detected").matches("anomaly.resolved"));
        assert!(pattern("artifact.evidence_revoked").matches("artifact.evidence_revoked"));
        assert_eq!(
            pattern("dev.airlock.promotion.*").to_string(),
            "promotion.*"
        );
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_shape_to_use() {
        for bad in [
            "",
            "promo*",
            "*.promoted",
            "Promotion.*",
            "a..b",
            "promotion.*.x",
            "a b",
        ] {
            let err = bad.parse::<EventPattern>().unwrap_err();
            assert!(err.contains("promotion.*"), "{bad}: {err}");
        }
    }

    #[test]
    fn subjects_name_what_the_event_is_about() {
        let repository: crate::RepoName = "prod/team/app".parse().unwrap();
        let digest = crate::Digest::sha256_of(b"x");
        let pushed = AuditEvent::PushRefused {
            repository: repository.clone(),
            action: Action::Push,
            reason: "gated".into(),
        };
        assert_eq!(cloud_subject(&pushed), "prod/team/app");
        let deleted = AuditEvent::ManifestDeleted {
            repository,
            digest: digest.clone(),
        };
        assert_eq!(cloud_subject(&deleted), format!("prod/team/app@{digest}"));
        let failed = AuditEvent::AuthenticationFailed {
            principal: "alice".into(),
            reason: "wrong password".into(),
        };
        assert_eq!(cloud_subject(&failed), "principal/alice");
        let frozen = AuditEvent::StageFreezeChanged {
            stage: "prod".into(),
            frozen: true,
            reason: "x".into(),
        };
        assert_eq!(cloud_subject(&frozen), "stage/prod");
        let access = AuditEvent::AccessDecided {
            request: 7,
            principal: "bob".into(),
            decision: "granted".into(),
        };
        assert_eq!(cloud_subject(&access), "access-request/7");
        assert_eq!(
            event_type("promotion.promoted"),
            "dev.airlock.promotion.promoted"
        );
    }
}
