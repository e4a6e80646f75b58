//! Anomaly rules: what airlock watches for, what it does when a rule trips, and the pure checks
//! behind them (which action a rule may take, whether a time is inside the allowed hours).
//!
//! A rule counts [`Signal`]s per key (a principal, a source address, an artifact, a stage) in a
//! sliding window; at its threshold it raises an anomaly and takes its [`AnomalyAction`]. Counting
//! and acting happen in storage, in one transaction with the anomaly's audit entry; this module
//! only names things and decides what is allowed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::name::RepoName;

/// A rule airlock evaluates on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyRule {
    /// Promotions denied for one principal.
    DeniedPromotions,
    /// Failed authentications for one principal, or from one source address.
    AuthFailures,
    /// A signature or attestation naming a trusted key that does not verify with it.
    TamperedEvidence,
    /// A pull of a digest from a gated stage it was never promoted into.
    UnpromotedDigest,
    /// A promotion requested outside the allowed hours.
    OffHoursPromotion,
    /// More promotions into a stage than the rate allows.
    PromotionBurst,
    /// A break-glass promotion (always raises an anomaly).
    BreakGlass,
    /// Pushes (or deletes) into a gated stage refused for one principal.
    RefusedPushes,
    /// A deployment reported running a digest never promoted into its stage.
    Drift,
    /// Verified provenance of one source revision names two different digests: a rebuild did
    /// not reproduce the artifact.
    RebuildMismatch,
}

impl AnomalyRule {
    /// Every rule, in the order the docs list them.
    pub const ALL: [AnomalyRule; 10] = [
        Self::DeniedPromotions,
        Self::AuthFailures,
        Self::TamperedEvidence,
        Self::UnpromotedDigest,
        Self::OffHoursPromotion,
        Self::PromotionBurst,
        Self::BreakGlass,
        Self::RefusedPushes,
        Self::Drift,
        Self::RebuildMismatch,
    ];

    /// The configuration and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeniedPromotions => "denied_promotions",
            Self::AuthFailures => "auth_failures",
            Self::TamperedEvidence => "tampered_evidence",
            Self::UnpromotedDigest => "unpromoted_digest",
            Self::OffHoursPromotion => "off_hours_promotion",
            Self::PromotionBurst => "promotion_burst",
            Self::BreakGlass => "break_glass",
            Self::RefusedPushes => "refused_pushes",
            Self::Drift => "drift",
            Self::RebuildMismatch => "rebuild_mismatch",
        }
    }

    /// Whether the rule's signals carry what `action` acts on (a lock needs a principal, a
    /// quarantine an artifact, a freeze a gated stage).
    pub fn supports(self, action: AnomalyAction) -> bool {
        use AnomalyAction::*;
        // A probe for a random digest (`unpromoted_digest`) or a refused push must not be able
        // to freeze a stage or quarantine an artifact waiting for promotion: they only alert or
        // lock the prober.
        match action {
            Alert => true,
            // Drift is reported by a CD system or operator, not done by them.
            // A build that does not reproduce is a builder's fault, not its pusher's.
            LockPrincipal => !matches!(
                self,
                Self::PromotionBurst | Self::Drift | Self::RebuildMismatch
            ),
            QuarantineArtifact => matches!(
                self,
                Self::DeniedPromotions
                    | Self::TamperedEvidence
                    | Self::RebuildMismatch
                    | Self::OffHoursPromotion
                    | Self::BreakGlass
            ),
            FreezeStage => matches!(
                self,
                Self::DeniedPromotions
                    | Self::OffHoursPromotion
                    | Self::PromotionBurst
                    | Self::BreakGlass
                    | Self::Drift
            ),
        }
    }
}

impl fmt::Display for AnomalyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnomalyRule {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|rule| rule.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "unknown anomaly rule {value:?}: expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// What airlock does when a rule trips. Every action also records the anomaly and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyAction {
    /// Record and alert only.
    Alert,
    /// Lock the principal: its tokens die at once and it cannot authenticate until resolved.
    LockPrincipal,
    /// Quarantine the artifact: no promotion, no pulls from gated stages until resolved.
    QuarantineArtifact,
    /// Freeze the gated stage: no promotions (except break-glass) until resolved.
    FreezeStage,
}

impl AnomalyAction {
    /// Every action.
    pub const ALL: [AnomalyAction; 4] = [
        Self::Alert,
        Self::LockPrincipal,
        Self::QuarantineArtifact,
        Self::FreezeStage,
    ];

    /// The configuration and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::LockPrincipal => "lock_principal",
            Self::QuarantineArtifact => "quarantine_artifact",
            Self::FreezeStage => "freeze_stage",
        }
    }
}

impl fmt::Display for AnomalyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnomalyAction {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "unknown anomaly action {value:?}: expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

/// What an anomaly is about: whichever of these its signal knew.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyTarget {
    /// The principal that acted (or that an authentication named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The repository involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepoName>,
    /// The artifact involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The gated stage involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One observation a rule counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The rule that counts it.
    pub rule: AnomalyRule,
    /// What the rule counts per: `principal:alice`, `source:10.0.0.7`, `artifact:sha256:..`,
    /// `stage:prod`.
    pub key: String,
    /// What the signal is about.
    pub target: AnomalyTarget,
    /// One sentence for people: what was observed.
    pub summary: String,
}

/// The days and UTC hours in which promotions are expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHours {
    /// Allowed weekdays, Monday first.
    days: [bool; 7],
    /// First allowed minute of the day (UTC).
    start_minute: u32,
    /// First minute no longer allowed; below `start_minute` the range wraps past midnight.
    end_minute: u32,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(name: &str) -> Result<usize, String> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            format!(
                "unknown day {name:?}: expected one of {}",
                DAY_NAMES.join(", ")
            )
        })
}

fn minute_of(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time of day as HH:MM (24-hour, UTC)");
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(bad)?;
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad())?;
    if hours > 24 || minutes > 59 || (hours == 24 && minutes != 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

impl AllowedHours {
    /// Parses days (`mon-fri`, `mon,wed,fri`, `*`) and hours (`08:00-18:00`, UTC; the end is
    /// exclusive; `22:00-06:00` wraps past midnight and counts for the day it starts on).
    pub fn parse(days: &str, hours: &str) -> Result<Self, String> {
        let mut allowed = [false; 7];
        if days.trim() == "*" {
            allowed = [true; 7];
        } else {
            for part in days.split(',') {
                match part.split_once('-') {
                    Some((first, last)) => {
                        let (first, last) = (day_index(first)?, day_index(last)?);
                        let mut day = first;
                        loop {
                            allowed[day] = true;
                            if day == last {
                                break;
                            }
                            day = (day + 1) % 7;
                        }
                    }
                    None => allowed[day_index(part)?] = true,
                }
            }
        }
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| format!("{hours:?} is not a range of hours like 08:00-18:00"))?;
        let (start_minute, end_minute) = (minute_of(start)?, minute_of(end)?);
        if start_minute == end_minute {
            return Err(format!("{hours:?} is an empty range of hours"));
        }
        Ok(Self {
            days: allowed,
            start_minute,
            end_minute,
        })
    }

    /// Whether `time_millis` (Unix ms) falls inside the allowed days and hours, in UTC.
    pub fn allows(&self, time_millis: i64) -> bool {
        const DAY_MS: i64 = 86_400_000;
        let day = time_millis.div_euclid(DAY_MS);
        let minute = (time_millis.rem_euclid(DAY_MS) / 60_000) as u32;
        // 1970-01-01 was a Thursday (index 3, Monday first).
        let weekday = |day: i64| (day + 3).rem_euclid(7) as usize;
        if self.start_minute < self.end_minute {
            self.days[weekday(day)] && (self.start_minute..self.end_minute).contains(&minute)
        } else if minute >= self.start_minute {
            self.days[weekday(day)]
        } else {
            // The early-morning part of a range that began the day before.
            minute < self.end_minute && self.days[weekday(day - 1)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 was a Monday; returns Unix ms for that week's `day` (0 = Monday) at `hh:mm` UTC.
    fn at(day: i64, hh: i64, mm: i64) -> i64 {
        let monday = 1_795_392_000_000; // 2026-11-23T00:00:00Z
        monday + day * 86_400_000 + hh * 3_600_000 + mm * 60_000
    }

    #[test]
    fn the_reference_monday_is_a_monday() {
        let hours = AllowedHours::parse("mon", "00:00-24:00").unwrap();
        assert!(hours.allows(at(0, 12, 0)));
        assert!(!hours.allows(at(1, 12, 0)));
        assert!(!hours.allows(at(-1, 12, 0)));
    }

    #[test]
    fn office_hours_include_the_start_and_exclude_the_end() {
        let hours = AllowedHours::parse("mon-fri", "08:00-18:00").unwrap();
        assert!(!hours.allows(at(2, 7, 59)));
        assert!(hours.allows(at(2, 8, 0)));
        assert!(hours.allows(at(2, 17, 59)));
        assert!(!hours.allows(at(2, 18, 0)));
        assert!(!hours.allows(at(5, 12, 0)), "Saturday");
        assert!(hours.allows(at(4, 12, 0)), "Friday");
    }

    #[test]
    fn night_shifts_wrap_past_midnight() {
        let hours = AllowedHours::parse("fri", "22:00-06:00").unwrap();
        assert!(hours.allows(at(4, 23, 0)));
        assert!(
            hours.allows(at(5, 5, 59)),
            "Saturday morning belongs to Friday's shift"
        );
        assert!(!hours.allows(at(5, 6, 0)));
        assert!(
            !hours.allows(at(4, 5, 0)),
            "Friday morning belongs to Thursday"
        );
        let weekend = AllowedHours::parse("sat-mon", "00:00-24:00").unwrap();
        assert!(weekend.allows(at(6, 1, 0)) && weekend.allows(at(7, 1, 0)));
        assert!(!weekend.allows(at(8, 1, 0)));
    }

    #[test]
    fn malformed_hours_are_refused_with_the_reason() {
        for (days, hours, words) in [
            ("mon-fri", "8-18", "HH:MM"),
            ("mon-fri", "08:00", "range of hours"),
            ("mon-fri", "08:00-08:00", "empty"),
            ("mon-fry", "08:00-18:00", "unknown day"),
            ("mon", "25:00-26:00", "HH:MM"),
        ] {
            let err = AllowedHours::parse(days, hours).unwrap_err();
            assert!(err.contains(words), "{days} {hours}: {err}");
        }
    }

    #[test]
    fn actions_need_what_they_act_on() {
        use AnomalyAction::*;
        assert!(AnomalyRule::TamperedEvidence.supports(QuarantineArtifact));
        assert!(!AnomalyRule::TamperedEvidence.supports(FreezeStage));
        assert!(!AnomalyRule::AuthFailures.supports(QuarantineArtifact));
        assert!(AnomalyRule::AuthFailures.supports(LockPrincipal));
        assert!(!AnomalyRule::PromotionBurst.supports(LockPrincipal));
        assert!(AnomalyRule::PromotionBurst.supports(FreezeStage));
        assert!(!AnomalyRule::UnpromotedDigest.supports(FreezeStage));
        assert!(!AnomalyRule::UnpromotedDigest.supports(QuarantineArtifact));
        assert!(AnomalyRule::RefusedPushes.supports(LockPrincipal));
        assert!(!AnomalyRule::RefusedPushes.supports(QuarantineArtifact));
        assert!(!AnomalyRule::RefusedPushes.supports(FreezeStage));
        for rule in AnomalyRule::ALL {
            assert!(rule.supports(Alert));
            assert_eq!(rule.as_str().parse::<AnomalyRule>(), Ok(rule));
        }
        assert!("lock".parse::<AnomalyAction>().is_err());
    }
}
