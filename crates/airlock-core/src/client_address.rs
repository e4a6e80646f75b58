//! The client's address behind trusted proxies.
//!
//! A request's client is its TCP peer, unless the peer is a configured trusted proxy: then the
//! `X-Forwarded-For` chain is read from the right (the entry the nearest proxy appended) and the
//! first address that is not itself a trusted proxy is the client. `X-Forwarded-For` from any other
//! peer is ignored, so nobody can choose the address the rate limiter, the audit log and policy
//! see by sending the header. A malformed entry stops the walk at the last trusted hop.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address block: an address and a prefix length (`10.0.0.0/8`, `::1/128`); a bare address
/// is the block of that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

/// Why a trusted-proxy entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not an address or address block (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8): {why}"
)]
pub struct IpBlockError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl IpBlock {
    /// Whether `addr` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for IpBlock {
    type Err = IpBlockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |why| IpBlockError {
            entry: s.to_string(),
            why,
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| error("not an IP address"))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| error("the prefix length is out of range"))?,
        };
        Ok(IpBlock { network, prefix })
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Deserializes from a list of addresses and
/// blocks, or from one comma-separated string (as an environment variable gives it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpBlock>);

impl TrustedProxies {
    /// Whether `addr` is a trusted proxy.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(addr))
    }

    /// The client address of a request from TCP peer `peer` that carried the
    /// `X-Forwarded-For` values `forwarded_for` (in header order).
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = canonical(peer);
        for hop in hops.iter().rev() {
            let Ok(addr) = hop.parse::<IpAddr>() else {
                break;
            };
            client = canonical(addr);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = IpBlockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            One(String),
            Many(Vec<String>),
        }
        let entries = match Given::deserialize(deserializer)? {
            Given::One(text) => text,
            Given::Many(list) => list.join(","),
        };
        entries.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let block: IpBlock = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.9.9.9")));
        let one: IpBlock = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6: IpBlock = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: IpBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<IpBlock>().is_err());
        assert!("proxy.example".parse::<IpBlock>().is_err());
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            trusted.client_address(ip("192.0.2.7"), ["203.0.113.9"]),
            ip("192.0.2.7")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("127.0.0.1"), ["203.0.113.9"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse().unwrap();
        // The client forged the left-most entry; the proxies appended the rest.
        assert_eq!(
            trusted.client_address(
                ip("10.0.0.1"),
                ["6.6.6.6, 203.0.113.9", "192.168.1.1, 10.0.0.2"]
            ),
            ip("203.0.113.9")
        );
        // Only trusted hops: the left-most one.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["10.0.0.3"]),
            ip("10.0.0.3")
        );
        // No header: the proxy itself.
        assert_eq!(trusted.client_address(ip("10.0.0.1"), []), ip("10.0.0.1"));
        // A malformed hop stops the walk at the last trusted hop.
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["203.0.113.9, garbage"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_deserialize_from_a_list_or_a_string() {
        let from_list: TrustedProxies =
            serde_json::from_str(r#"["127.0.0.1", "10.0.0.0/8"]"#).unwrap();
        let from_string: TrustedProxies =
            serde_json::from_str(r#""127.0.0.1,10.0.0.0/8""#).unwrap();
        assert_eq!(from_list, from_string);
        assert!(serde_json::from_str::<TrustedProxies>(r#"["nope"]"#).is_err());
    }
}
