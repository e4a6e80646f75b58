//! Which network addresses airlock refuses to connect to on a user's behalf (webhook targets).
//!
//! An endpoint URL is chosen by an access-admin, but whoever controls its DNS name chooses the
//! address. Without a check, a webhook is a way to make airlock POST to its own loopback
//! services, to a cloud metadata service (which hands out credentials), or to hosts on the
//! private network behind it. [`restricted_range`] names the range an address falls in, if it
//! is one of those; the webhook sender refuses such addresses unless the operator allows private
//! targets explicitly. IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4
//! address they carry. Pure: no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range of addresses that is not a public internet host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestrictedRange {
    /// `0.0.0.0/8`, `::`: "this host" (connecting to it reaches the local machine).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// A cloud instance metadata service: `169.254.169.254`, `169.254.170.2`, `fd00:ec2::254`,
    /// `100.100.100.200`.
    CloudMetadata,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// RFC 1918: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`; and the deprecated IPv6
    /// site-local `fec0::/10`.
    Private,
    /// `100.64.0.0/10`, shared address space behind carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `fc00::/7`, IPv6 unique local addresses.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`, `240.0.0.0/4`, `192.0.0.0/24` (IETF protocol assignments) and
    /// `198.18.0.0/15` (benchmarking).
    Reserved,
}

impl RestrictedRange {
    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::CloudMetadata => "cloud metadata",
            Self::LinkLocal => "link-local",
            Self::Private => "private (RFC 1918)",
            Self::SharedAddressSpace => "shared (carrier-grade NAT)",
            Self::UniqueLocal => "unique local (fc00::/7)",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for RestrictedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The restricted range `ip` falls in, or `None` for an ordinary public address.
pub fn restricted_range(ip: IpAddr) -> Option<RestrictedRange> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<RestrictedRange> {
    use RestrictedRange::*;
    let [a, b, c, d] = ip.octets();
    let range = match (a, b, c, d) {
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200) => CloudMetadata,
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (169, 254, ..) => LinkLocal,
        (10, ..) | (192, 168, ..) => Private,
        (172, 16..=31, ..) => Private,
        (100, 64..=127, ..) => SharedAddressSpace,
        (224..=239, ..) => Multicast,
        (240..=255, ..) | (192, 0, 0, _) | (198, 18..=19, ..) => Reserved,
        _ => return None,
    };
    Some(range)
}

fn restricted_v6(ip: Ipv6Addr) -> Option<RestrictedRange> {
    use RestrictedRange::*;
    if let Some(v4) = embedded_v4(ip) {
        return restricted_v4(v4);
    }
    let segments = ip.segments();
    let range = if ip.is_unspecified() {
        Unspecified
    } else if ip.is_loopback() {
        Loopback
    } else if segments == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        CloudMetadata
    } else if segments[0] & 0xffc0 == 0xfe80 {
        LinkLocal
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Private
    } else if segments[0] & 0xfe00 == 0xfc00 {
        UniqueLocal
    } else if segments[0] & 0xff00 == 0xff00 {
        Multicast
    } else {
        return None;
    };
    Some(range)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        // IPv4-mapped ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // NAT64 well-known prefix 64:ff9b::a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // IPv4-compatible ::a.b.c.d (deprecated; `::` and `::1` are not this form).
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        // 6to4 2002:aabb:ccdd::/48.
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestrictedRange::*;

    fn range(text: &str) -> Option<RestrictedRange> {
        restricted_range(text.parse().unwrap())
    }

    #[test]
    fn loopback_link_local_metadata_and_private_ranges_are_restricted() {
        for (address, expected) in [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("169.254.169.254", CloudMetadata),
            ("169.254.170.2", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("fd00:ec2::254", CloudMetadata),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fec0::1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.0.170", Reserved),
            ("198.18.0.1", Reserved),
        ] {
            assert_eq!(range(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
        for (address, expected) in [
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:7f00:1", Some(Loopback)),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(CloudMetadata)),
            ("64:ff9b::192.168.0.1", Some(Private)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("::ffff:93.184.216.34", None),
            ("2002:5db8:d822::1", None),
        ] {
            assert_eq!(range(address), expected, "{address}");
        }
    }

    #[test]
    fn public_addresses_and_range_edges_are_not_restricted() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "fe7f::1",
            "fbff::1",
        ] {
            assert_eq!(range(address), None, "{address}");
        }
    }
}
