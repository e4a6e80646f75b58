//! Which addresses webhooks may be sent to.
//!
//! Unless `[webhooks] allow_private_targets` is set, a delivery goes only to public addresses:
//! never to loopback, link-local, cloud metadata, private (RFC 1918), shared (CGNAT),
//! unique-local, multicast or reserved ranges (`airlock_core::address`). A literal address in an
//! endpoint URL is checked when the endpoint is added and again at every send; a name is
//! resolved at every send by [`GuardedResolver`], which refuses the connection when any address
//! the name resolves to is restricted and otherwise hands the HTTP client exactly the addresses
//! it checked. The client connects only to those, so a name that resolves to a public address
//! for the check and to a private one a moment later (DNS rebinding) cannot slip through: there
//! is no second lookup.

use std::net::{IpAddr, SocketAddr};

use airlock_core::address::{RestrictedRange, restricted_range};

/// A target refused because it is (or resolves to) a restricted address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    /// The host is, or resolves to, an address in a restricted range.
    #[error(
        "{host} is {address}, a {range} address; webhooks go only to public addresses unless \
         [webhooks] allow_private_targets = true (AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true) is set"
    )]
    Restricted {
        /// The host as the URL names it.
        host: String,
        /// The offending address.
        address: IpAddr,
        /// Its range.
        range: RestrictedRange,
    },
    /// The name resolved to no address.
    #[error("{host} resolves to no address")]
    Unresolved {
        /// The host as the URL names it.
        host: String,
    },
}

/// The address a URL host names literally (`127.0.0.1`, `[::1]`), if it is one.
pub fn literal_address(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// Checks every address `host` resolved to (or names literally).
pub fn check_addresses(
    host: &str,
    addresses: &[IpAddr],
    allow_private: bool,
) -> Result<(), TargetRefused> {
    if addresses.is_empty() {
        return Err(TargetRefused::Unresolved {
            host: host.to_string(),
        });
    }
    if allow_private {
        return Ok(());
    }
    for address in addresses {
        if let Some(range) = restricted_range(*address) {
            return Err(TargetRefused::Restricted {
                host: host.to_string(),
                address: *address,
                range,
            });
        }
    }
    Ok(())
}

/// Checks a URL host that is a literal address; a name passes (it is checked when resolved).
pub fn check_literal(host: &str, allow_private: bool) -> Result<(), TargetRefused> {
    match literal_address(host) {
        Some(address) => check_addresses(host, &[address], allow_private),
        None => Ok(()),
    }
}

/// The HTTP client's resolver for webhook deliveries: resolves with the system resolver and
/// refuses names that resolve to a restricted address (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// `[webhooks] allow_private_targets`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addresses: Vec<IpAddr> = resolved.iter().map(SocketAddr::ip).collect();
            check_addresses(&host, &addresses, allow_private)?;
            let checked: reqwest::dns::Addrs = Box::new(resolved.into_iter());
            Ok(checked)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve as _;

    #[test]
    fn literal_addresses_are_checked_and_names_are_left_to_the_resolver() {
        let err = check_literal("127.0.0.1", false).unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(err.contains("allow_private_targets"), "{err}");
        let err = check_literal("[::ffff:169.254.169.254]", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloud metadata"), "{err}");
        assert!(check_literal("[fd00:ec2::254]", false).is_err());
        assert!(check_literal("10.0.0.8", false).is_err());
        assert!(check_literal("93.184.216.34", false).is_ok());
        assert!(check_literal("hooks.example", false).is_ok());
        assert!(check_literal("127.0.0.1", true).is_ok());
    }

    #[test]
    fn one_restricted_address_among_public_ones_refuses_the_name() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "192.168.0.7".parse().unwrap();
        assert!(check_addresses("x", &[public], false).is_ok());
        assert!(matches!(
            check_addresses("x", &[public, private], false),
            Err(TargetRefused::Restricted {
                range: RestrictedRange::Private,
                ..
            })
        ));
        assert!(
            check_addresses("x", &[], true).is_err(),
            "no address at all"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_loopback_addresses_unless_allowed() {
        let name = |text: &str| text.parse::<reqwest::dns::Name>().unwrap();
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name("localhost"))
        .await;
        let err = refused.err().expect("localhost is refused").to_string();
        assert!(err.contains("loopback"), "{err}");
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name("localhost"))
        .await
        .expect("allowed for labs");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
