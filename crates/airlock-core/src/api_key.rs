//! Service-account API keys as the domain sees them, with no I/O: a key's name, how long it may
//! live, and which expiry notice is due.
//!
//! What holds: a key name is 1-64 characters of `a-z`, `0-9`, `-`, `_`, `.` starting with a
//! letter or digit; every key expires, no later than the configured maximum lifetime after it is
//! made; and a key gets at most one `credential.expiring` notice per configured threshold (when a
//! key is first seen inside several thresholds at once, only the nearest is announced and the
//! others count as sent) and one `credential.expired` notice.

use std::fmt;
use std::str::FromStr;

/// Milliseconds in a day.
pub const DAY_MILLIS: i64 = 86_400_000;

/// The name of an API key, unique among its account's live keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyName(String);

/// Why a text is not an API key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key name {0:?}: use 1-64 characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
)]
pub struct InvalidKeyName(pub String);

impl FromStr for ApiKeyName {
    type Err = InvalidKeyName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            && text.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(InvalidKeyName(text.chars().take(64).collect()))
        }
    }
}

impl ApiKeyName {
    /// `default`: the name of the key a service account is created with.
    pub fn default_key() -> Self {
        Self("default".into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a new key should expire, as its creator asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedExpiry {
    /// Nothing asked: the maximum lifetime.
    Default,
    /// This many seconds from now.
    In(u64),
    /// At this time (ms).
    At(i64),
}

/// Why a requested expiry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    /// The expiry is now or in the past.
    #[error("an API key must expire in the future")]
    NotInFuture,
    /// The expiry is beyond the maximum lifetime.
    #[error(
        "API keys may live at most {max_days} days (access.max_api_key_days); ask for an earlier expiry or raise the setting"
    )]
    TooLong {
        /// The configured maximum, in days.
        max_days: u64,
    },
}

/// The expiry (ms) of a key made at `now` (ms) for `requested`, bounded by `max_days`.
pub fn key_expiry(
    requested: RequestedExpiry,
    now: i64,
    max_days: u64,
) -> Result<i64, LifetimeError> {
    let max_millis = i64::try_from(max_days)
        .ok()
        .and_then(|d| d.checked_mul(DAY_MILLIS))
        .unwrap_or(i64::MAX);
    let latest = now.saturating_add(max_millis);
    let expires_at = match requested {
        RequestedExpiry::Default => latest,
        RequestedExpiry::In(secs) => i64::try_from(secs)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map_or(i64::MAX, |ms| now.saturating_add(ms)),
        RequestedExpiry::At(at) => at,
    };
    if expires_at <= now {
        return Err(LifetimeError::NotInFuture);
    }
    if expires_at > latest {
        return Err(LifetimeError::TooLong { max_days });
    }
    Ok(expires_at)
}

/// Which expiry notice a key needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryNotice {
    /// The key is inside `reached` thresholds (days, ascending); `days` (the smallest of them)
    /// is the one to announce, unless already sent.
    Expiring {
        /// The threshold to announce.
        days: u32,
        /// Every threshold the key is inside now (all count as sent once `days` is).
        reached: Vec<u32>,
    },
    /// The key has expired.
    Expired,
}

/// The notice due for a key expiring at `expires_at` (ms) at `now` (ms) with warning thresholds
/// `thresholds` (days), or `None` while it is outside every threshold.
pub fn expiry_notice(expires_at: i64, now: i64, thresholds: &[u32]) -> Option<ExpiryNotice> {
    if expires_at <= now {
        return Some(ExpiryNotice::Expired);
    }
    let left = expires_at - now;
    let mut reached: Vec<u32> = thresholds
        .iter()
        .copied()
        .filter(|&days| days > 0 && left <= i64::from(days) * DAY_MILLIS)
        .collect();
    reached.sort_unstable();
    reached.dedup();
    let days = *reached.first()?;
    Some(ExpiryNotice::Expiring { days, reached })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn key_names_follow_the_principal_name_rules() {
        for good in ["ci", "deploy-2026", "a.b_c", "0"] {
            assert!(good.parse::<ApiKeyName>().is_ok(), "{good}");
        }
        for bad in ["", "-ci", "CI", "has space", "ü", &"a".repeat(65)] {
            assert!(bad.parse::<ApiKeyName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_without_an_expiry_gets_the_maximum_lifetime() {
        assert_eq!(
            key_expiry(RequestedExpiry::Default, NOW, 365),
            Ok(NOW + 365 * DAY_MILLIS)
        );
    }

    #[test]
    fn an_expiry_beyond_the_maximum_or_in_the_past_is_refused() {
        assert_eq!(
            key_expiry(RequestedExpiry::In(31 * 86_400), NOW, 30),
            Err(LifetimeError::TooLong { max_days: 30 })
        );
        assert_eq!(
            key_expiry(RequestedExpiry::In(30 * 86_400), NOW, 30),
            Ok(NOW + 30 * DAY_MILLIS)
        );
        assert_eq!(
            key_expiry(RequestedExpiry::In(0), NOW, 30),
            Err(LifetimeError::NotInFuture)
        );
        assert_eq!(
            key_expiry(RequestedExpiry::At(NOW - 1), NOW, 30),
            Err(LifetimeError::NotInFuture)
        );
        assert_eq!(
            key_expiry(RequestedExpiry::In(u64::MAX), NOW, 30),
            Err(LifetimeError::TooLong { max_days: 30 })
        );
        assert!(
            key_expiry(RequestedExpiry::At(NOW + 31 * DAY_MILLIS), NOW, 30)
                .unwrap_err()
                .to_string()
                .contains("access.max_api_key_days")
        );
    }

    #[test]
    fn the_nearest_reached_threshold_is_announced() {
        let thresholds = [14, 3];
        assert_eq!(expiry_notice(NOW + 20 * DAY_MILLIS, NOW, &thresholds), None);
        assert_eq!(
            expiry_notice(NOW + 10 * DAY_MILLIS, NOW, &thresholds),
            Some(ExpiryNotice::Expiring {
                days: 14,
                reached: vec![14]
            })
        );
        assert_eq!(
            expiry_notice(NOW + 2 * DAY_MILLIS, NOW, &thresholds),
            Some(ExpiryNotice::Expiring {
                days: 3,
                reached: vec![3, 14]
            })
        );
        assert_eq!(
            expiry_notice(NOW, NOW, &thresholds),
            Some(ExpiryNotice::Expired)
        );
        assert_eq!(expiry_notice(NOW + DAY_MILLIS, NOW, &[]), None);
    }
}
