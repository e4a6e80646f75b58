//! The password policy: what a new password must satisfy before airlock stores its hash.
//!
//! What holds for every password a user sets, an access-admin gives or airlock generates
//! ([`PasswordPolicy::check`]):
//! - at least [`PasswordPolicy::min_length`] characters (Unicode scalar values; configurable,
//!   never below [`MinPasswordLength::FLOOR`], default [`MinPasswordLength::DEFAULT`]);
//! - at most [`MAX_PASSWORD_BYTES`] bytes (the bound on what argon2 is asked to hash);
//! - not one of the most common passwords: the deny list `common-passwords.txt`, embedded in the
//!   binary, is compared case-insensitively after trimming surrounding white space (its source
//!   and license are named at the top of the file and in `common-passwords.LICENSE`);
//! - not starting with [`API_KEY_PREFIX`] (`alk_`): a secret starting with it is checked as an
//!   API key, so such a password could never log in;
//! - not the user name, and not containing it (case-insensitively) when the name has at least
//!   [`NAME_CONTAINMENT_MIN`] characters (shorter names would refuse too many passwords).
//!
//! A refusal names the rule that failed ([`PasswordRejected`]) and never the password.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::api_key::API_KEY_PREFIX;

/// The longest password accepted, in bytes: argon2 hashes whatever it is given, so a request
/// cannot make the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// User names at least this long may not appear anywhere in their password; shorter ones only
/// may not be the whole password.
pub const NAME_CONTAINMENT_MIN: usize = 3;

/// The embedded deny list: one password per line, lower case, `#` lines are comments.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The deny list as a set, built on first use.
fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

/// Whether `password`, trimmed and lower-cased, is on the embedded deny list.
pub fn is_common_password(password: &str) -> bool {
    common_passwords().contains(password.trim().to_lowercase().as_str())
}

/// How many passwords the embedded deny list holds.
pub fn common_password_count() -> usize {
    common_passwords().len()
}

/// The configured minimum password length (`access.password_min_length`), in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct MinPasswordLength(usize);

impl MinPasswordLength {
    /// The lowest minimum a configuration may set (NIST SP 800-63B's floor for chosen passwords).
    pub const FLOOR: usize = 8;
    /// The minimum when the configuration sets none.
    pub const DEFAULT: usize = 12;

    /// The length, in characters.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for MinPasswordLength {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// A minimum length outside [`MinPasswordLength::FLOOR`] ..= [`MAX_PASSWORD_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a minimum password length of {0} is outside {floor}..={max}",
    floor = MinPasswordLength::FLOOR,
    max = MAX_PASSWORD_BYTES
)]
pub struct MinLengthOutOfRange(pub u64);

impl TryFrom<u64> for MinPasswordLength {
    type Error = MinLengthOutOfRange;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match usize::try_from(value) {
            Ok(length) if (Self::FLOOR..=MAX_PASSWORD_BYTES).contains(&length) => Ok(Self(length)),
            _ => Err(MinLengthOutOfRange(value)),
        }
    }
}

impl From<MinPasswordLength> for u64 {
    fn from(value: MinPasswordLength) -> Self {
        value.0 as u64
    }
}

/// Why a password was refused: the rule that failed, never the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    /// Fewer characters than the minimum.
    #[error(
        "the password is too short: it needs at least {min} characters (access.password_min_length); a passphrase of several words is easiest to remember"
    )]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More bytes than [`MAX_PASSWORD_BYTES`].
    #[error("the password is too long: at most {max} bytes")]
    TooLong {
        /// The maximum, in bytes.
        max: usize,
    },
    /// On the deny list of common passwords.
    #[error(
        "the password is one of the most common passwords (airlock's built-in deny list); choose one nobody else would"
    )]
    Common,
    /// Starts with [`API_KEY_PREFIX`]: airlock would take it for an API key at every login.
    #[error(
        "the password starts with \"{API_KEY_PREFIX}\", which marks an API key: airlock would check it as an API key and never as a password; choose one that does not"
    )]
    ApiKeyPrefix,
    /// The user name, or contains it.
    #[error("the password contains the user name {user}; choose one that does not")]
    ContainsUserName {
        /// The user name.
        user: String,
    },
}

/// The rules a new password must satisfy (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// The minimum length, in characters.
    pub min_length: MinPasswordLength,
}

impl PasswordPolicy {
    /// Checks `password` as the new password of `user`; the first rule that fails is returned.
    pub fn check(&self, user: &str, password: &str) -> Result<(), PasswordRejected> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRejected::TooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        if password.chars().count() < self.min_length.get() {
            return Err(PasswordRejected::TooShort {
                min: self.min_length.get(),
            });
        }
        if password.starts_with(API_KEY_PREFIX) {
            return Err(PasswordRejected::ApiKeyPrefix);
        }
        let lowered = password.trim().to_lowercase();
        let name = user.trim().to_lowercase();
        let contains_name = !name.is_empty()
            && (lowered == name
                || (name.chars().count() >= NAME_CONTAINMENT_MIN && lowered.contains(&name)));
        if contains_name {
            return Err(PasswordRejected::ContainsUserName { user: user.into() });
        }
        if common_passwords().contains(lowered.as_str()) {
            return Err(PasswordRejected::Common);
        }
        Ok(())
    }

    /// A random password for `user` that satisfies the policy: URL-safe characters (see
    /// [`crate::generate_password_of`]), [`crate::password::GENERATED_PASSWORD_LEN`] of them or the
    /// minimum length if that is more. One the policy refuses (it happens to contain the user
    /// name) is drawn again, at most [`GENERATE_ATTEMPTS`] times in all; after that
    /// [`GenerationFailed`] is returned rather than trying for ever.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate(&self, user: &str) -> Result<String, GenerationFailed> {
        let length = crate::password::GENERATED_PASSWORD_LEN.max(self.min_length.get());
        let mut last = None;
        for _ in 0..GENERATE_ATTEMPTS {
            let password = crate::generate_password_of(length);
            match self.check(user, &password) {
                Ok(()) => return Ok(password),
                Err(rule) => last = Some(rule),
            }
        }
        Err(GenerationFailed { last })
    }
}

/// How many random passwords [`PasswordPolicy::generate`] draws before it gives up.
pub const GENERATE_ATTEMPTS: usize = 100;

/// No generated password satisfied the policy in [`GENERATE_ATTEMPTS`] draws.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no generated password satisfied the password policy in {GENERATE_ATTEMPTS} attempts{}; choose the password instead",
    last.as_ref().map(|rule| format!(" (last refusal: {rule})")).unwrap_or_default()
)]
pub struct GenerationFailed {
    /// The rule the last attempt failed, if any.
    pub last: Option<PasswordRejected>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn a_long_uncommon_password_without_the_name_is_accepted() {
        assert_eq!(policy().check("alice", "tall-lamp-orbit-9"), Ok(()));
    }

    #[test]
    fn the_default_minimum_is_twelve_characters_counted_as_characters() {
        assert_eq!(
            policy().check("alice", "tall-lamp-9"),
            Err(PasswordRejected::TooShort { min: 12 })
        );
        // 12 characters, 24 bytes: long enough.
        assert_eq!(policy().check("alice", "ééééééééééé9"), Ok(()));
        assert_eq!(
            policy().check("alice", ""),
            Err(PasswordRejected::TooShort { min: 12 })
        );
    }

    #[test]
    fn a_configured_minimum_applies() {
        let policy = PasswordPolicy {
            min_length: MinPasswordLength::try_from(20).unwrap(),
        };
        assert_eq!(
            policy.check("alice", "tall-lamp-orbit-9"),
            Err(PasswordRejected::TooShort { min: 20 })
        );
    }

    #[test]
    fn a_minimum_below_the_floor_or_above_the_maximum_is_refused() {
        assert_eq!(MinPasswordLength::try_from(7), Err(MinLengthOutOfRange(7)));
        assert!(MinPasswordLength::try_from(8).is_ok());
        assert!(MinPasswordLength::try_from(1024).is_ok());
        assert!(MinPasswordLength::try_from(1025).is_err());
        assert_eq!(MinPasswordLength::default().get(), 12);
    }

    #[test]
    fn more_than_1024_bytes_is_too_long() {
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            policy().check("alice", &long),
            Err(PasswordRejected::TooLong { max: 1024 })
        );
        assert_eq!(
            policy().check("alice", &"x".repeat(MAX_PASSWORD_BYTES)),
            Ok(())
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case_and_surrounding_space() {
        for password in [
            "qwerty123456",
            "QWERTY123456",
            "  Qwerty123456 ",
            "1qaz2wsx3edc",
        ] {
            assert_eq!(
                policy().check("alice", password),
                Err(PasswordRejected::Common),
                "{password:?}"
            );
        }
        assert!(is_common_password("Password123"));
        assert!(!is_common_password("tall-lamp-orbit-9"));
    }

    #[test]
    fn the_deny_list_holds_thousands_of_passwords_and_no_comment_lines() {
        let count = common_password_count();
        assert!(count > 10_000, "{count}");
        assert!(!common_passwords().iter().any(|p| p.starts_with('#')));
        assert!(
            common_passwords()
                .iter()
                .all(|p| *p == p.trim().to_lowercase())
        );
    }

    #[test]
    fn the_user_name_may_not_be_or_appear_in_the_password() {
        assert_eq!(
            policy().check("alice", "my-name-is-ALICE-ok"),
            Err(PasswordRejected::ContainsUserName {
                user: "alice".into()
            })
        );
        assert_eq!(
            policy().check("ci-robot-account", "ci-robot-account"),
            Err(PasswordRejected::ContainsUserName {
                user: "ci-robot-account".into()
            })
        );
        // A name shorter than 3 characters only may not be the whole password.
        assert_eq!(policy().check("ci", "circus-tent-orbit"), Ok(()));
    }

    #[test]
    fn a_password_starting_like_an_api_key_is_refused_and_says_why() {
        let refused = policy().check("alice", "alk_tall-lamp-orbit-9");
        assert_eq!(refused, Err(PasswordRejected::ApiKeyPrefix));
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("API key"), "{message}");
        assert!(!message.contains("tall-lamp"), "{message}");
        // Only the exact prefix marks an API key.
        assert_eq!(policy().check("alice", "ALK_tall-lamp-orbit-9"), Ok(()));
        assert_eq!(policy().check("alice", "tall-alk_lamp-orbit-9"), Ok(()));
    }

    #[test]
    fn a_refusal_never_contains_the_password() {
        let secret = "qwerty123456";
        let message = policy().check("alice", secret).unwrap_err().to_string();
        assert!(!message.contains(secret), "{message}");
        assert!(message.contains("common"), "{message}");
    }

    #[test]
    fn generated_passwords_satisfy_the_policy() {
        for _ in 0..20 {
            let password = policy().generate("abc").unwrap();
            assert_eq!(policy().check("abc", &password), Ok(()));
        }
    }

    #[test]
    fn generated_passwords_meet_a_minimum_longer_than_the_default_length() {
        let policy = PasswordPolicy {
            min_length: MinPasswordLength::try_from(64).unwrap(),
        };
        let password = policy.generate("alice").unwrap();
        assert_eq!(password.chars().count(), 64);
        assert_eq!(policy.check("alice", &password), Ok(()));
        let longest = PasswordPolicy {
            min_length: MinPasswordLength::try_from(MAX_PASSWORD_BYTES as u64).unwrap(),
        };
        let password = longest.generate("alice").unwrap();
        assert_eq!(longest.check("alice", &password), Ok(()));
    }
}
