//! The browser's side of an OpenID Connect sign-in (authorization code flow with PKCE, RFC 7636
//! `S256`): the per-attempt secrets and how they travel.
//!
//! A [`SignInFlow`] is generated when a person clicks "sign in with single sign-on": `state`
//! (bound to the browser, checked at the callback so another site cannot complete a sign-in in
//! this browser), `nonce` (bound into the ID token by the provider, checked so a token minted for
//! another attempt is refused) and the PKCE `verifier` (sent only to the token endpoint; the
//! provider saw only its SHA-256 `challenge`, so an intercepted code is useless). The flow lives
//! in a short-lived cookie of its own between the redirect and the callback: it is the browser's,
//! not a server-side record, so any replica can finish the sign-in. Each secret is 32 random
//! bytes, base64url.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One sign-in attempt's secrets and the redirect URI it was started with. `Debug` prints no
/// secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SignInFlow {
    /// The `state` parameter.
    pub state: String,
    /// The `nonce` parameter, which the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The redirect URI the authorization request named; the token request must name it again.
    pub redirect_uri: String,
}

impl std::fmt::Debug for SignInFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInFlow")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `S256` challenge of `verifier`: BASE64URL-NOPAD(SHA-256(verifier)) (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl SignInFlow {
    /// A new attempt for `redirect_uri`.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn generate(redirect_uri: &str) -> Self {
        Self {
            state: random_secret(),
            nonce: random_secret(),
            verifier: random_secret(),
            redirect_uri: redirect_uri.to_string(),
        }
    }

    /// The PKCE challenge the authorization request carries.
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.verifier)
    }

    /// The flow as a cookie value: its parts base64url-safe and joined by `.`.
    pub fn to_cookie(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.state,
            self.nonce,
            self.verifier,
            URL_SAFE_NO_PAD.encode(self.redirect_uri.as_bytes())
        )
    }

    /// The flow a cookie value holds, `None` for anything [`SignInFlow::to_cookie`] did not
    /// write.
    pub fn from_cookie(value: &str) -> Option<Self> {
        let mut parts = value.split('.');
        let (state, nonce, verifier, redirect) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let secret = |part: &str| {
            (part.len() == 43
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| part.to_string())
        };
        let redirect_uri = String::from_utf8(URL_SAFE_NO_PAD.decode(redirect).ok()?).ok()?;
        Some(Self {
            state: secret(state)?,
            nonce: secret(nonce)?,
            verifier: secret(verifier)?,
            redirect_uri,
        })
    }

    /// Whether the callback's `state` is this flow's, compared in constant time.
    pub fn state_matches(&self, state: &str) -> bool {
        self.state.len() == state.len() && bool::from(self.state.as_bytes().ct_eq(state.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        // RFC 7636 Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_flow_travels_in_its_cookie_and_nothing_else_is_read_as_one() {
        let flow = SignInFlow::generate("https://airlock.example/console/oidc/callback");
        assert_ne!(flow.state, flow.nonce);
        assert_ne!(flow.nonce, flow.verifier);
        assert_eq!(
            SignInFlow::from_cookie(&flow.to_cookie()),
            Some(flow.clone())
        );
        assert!(flow.state_matches(&flow.state.clone()));
        assert!(!flow.state_matches(&flow.nonce));
        assert!(!flow.state_matches(""));
        let cookie = flow.to_cookie();
        for bad in [
            "",
            "a.b.c.d",
            &format!("{cookie}.extra"),
            &cookie.replacen('.', "", 1),
            &cookie.replacen(&flow.state, &format!("{}!", &flow.state[1..]), 1),
        ] {
            assert_eq!(SignInFlow::from_cookie(bad), None, "{bad}");
        }
        assert!(!format!("{flow:?}").contains(&flow.verifier));
    }
}
