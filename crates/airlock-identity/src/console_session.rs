//! Web console sessions: a random cookie the browser holds, a digest the server stores.
//!
//! A session cookie's value is 43 base64url characters (32 random bytes). The server keeps only
//! the SHA-256 of it, so a copy of the database signs nobody in. Each session also has its own
//! CSRF token (32 random bytes, base64url) that every form of the console carries back and the
//! server compares in constant time. A session ends after [`SessionTimeouts::idle_secs`] without
//! a request or [`SessionTimeouts::absolute_secs`] after it started, whichever comes first.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a session cookie's value and of a CSRF token, in base64url characters.
pub const SESSION_SECRET_LEN: usize = 43;

/// A new session: the cookie value for the browser, its digest and CSRF token for the server.
/// `Debug` prints neither secret.
pub struct NewSession {
    /// The cookie value (43 base64url characters). Do not log it.
    pub cookie: String,
    /// Lowercase hex SHA-256 of the cookie value: the session's stored id.
    pub id_sha256: String,
    /// The session's CSRF token (43 base64url characters).
    pub csrf_token: String,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("id_sha256", &self.id_sha256)
            .field("cookie", &"<redacted>")
            .field("csrf_token", &"<redacted>")
            .finish()
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl NewSession {
    /// Generates a session's cookie value and CSRF token.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate() -> Self {
        let cookie = random_secret();
        Self {
            id_sha256: hex::encode(Sha256::digest(cookie.as_bytes())),
            cookie,
            csrf_token: random_secret(),
        }
    }
}

/// The stored id of the session a presented cookie value names, or `None` when the value is not
/// 43 base64url characters (it names no session; nothing is looked up).
pub fn session_id_of(cookie: &str) -> Option<String> {
    let well_formed = cookie.len() == SESSION_SECRET_LEN
        && cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hex::encode(Sha256::digest(cookie.as_bytes())))
}

/// Whether a form's CSRF token is the session's, compared in constant time.
pub fn csrf_token_matches(presented: &str, stored: &str) -> bool {
    presented.len() == stored.len() && bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

/// How long a console session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// Seconds without a request after which the session ends.
    pub idle_secs: u64,
    /// Seconds after sign-in after which the session ends, however active.
    pub absolute_secs: u64,
}

/// Why a session no longer signs anyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionExpired {
    /// No request for longer than the idle timeout.
    #[error("the session was idle for longer than {0} s; sign in again")]
    Idle(u64),
    /// Older than the absolute timeout.
    #[error("the session is older than {0} s; sign in again")]
    Absolute(u64),
}

impl SessionTimeouts {
    /// Whether a session started at `created_millis` and last used at `last_seen_millis` is
    /// still live at `now_millis`.
    pub fn check(
        &self,
        created_millis: i64,
        last_seen_millis: i64,
        now_millis: i64,
    ) -> Result<(), SessionExpired> {
        let age = now_millis.saturating_sub(created_millis);
        if age >= (self.absolute_secs as i64).saturating_mul(1000) {
            return Err(SessionExpired::Absolute(self.absolute_secs));
        }
        let idle = now_millis.saturating_sub(last_seen_millis);
        if idle >= (self.idle_secs as i64).saturating_mul(1000) {
            return Err(SessionExpired::Idle(self.idle_secs));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_cookie_names_its_session_and_nothing_else_does() {
        let session = NewSession::generate();
        assert_eq!(session.cookie.len(), SESSION_SECRET_LEN);
        assert_eq!(session.csrf_token.len(), SESSION_SECRET_LEN);
        assert_ne!(session.cookie, session.csrf_token);
        assert_eq!(
            session_id_of(&session.cookie).as_deref(),
            Some(session.id_sha256.as_str())
        );
        let other = NewSession::generate();
        assert_ne!(other.id_sha256, session.id_sha256);
        // Malformed values name no session.
        assert_eq!(session_id_of(""), None);
        assert_eq!(session_id_of(&session.cookie[1..]), None);
        assert_eq!(session_id_of(&format!("{}=", &session.cookie[1..])), None);
        assert_eq!(session_id_of(&session.id_sha256), None);
        let debug = format!("{session:?}");
        assert!(!debug.contains(&session.cookie) && !debug.contains(&session.csrf_token));
    }

    #[test]
    fn csrf_tokens_match_only_themselves() {
        let session = NewSession::generate();
        assert!(csrf_token_matches(
            &session.csrf_token,
            &session.csrf_token.clone()
        ));
        assert!(!csrf_token_matches("", &session.csrf_token));
        assert!(!csrf_token_matches(
            &NewSession::generate().csrf_token,
            &session.csrf_token
        ));
        let mut changed = session.csrf_token.clone().into_bytes();
        changed[42] = if changed[42] == b'A' { b'B' } else { b'A' };
        assert!(!csrf_token_matches(
            &String::from_utf8(changed).unwrap(),
            &session.csrf_token
        ));
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let timeouts = SessionTimeouts {
            idle_secs: 60,
            absolute_secs: 3600,
        };
        assert_eq!(timeouts.check(0, 0, 59_999), Ok(()));
        assert_eq!(timeouts.check(0, 0, 60_000), Err(SessionExpired::Idle(60)));
        assert_eq!(timeouts.check(0, 3_550_000, 3_599_999), Ok(()));
        assert_eq!(
            timeouts.check(0, 3_599_000, 3_600_000),
            Err(SessionExpired::Absolute(3600))
        );
    }
}
