//! Container image references as Kubernetes, containerd and docker write them, e.g.
//! `registry.example.com:5000/prod/team/app:1.4@sha256:<hex>`, parsed by the distribution
//! reference grammar (`name [":" tag] ["@" digest]`).
//!
//! An admission check reads the images a workload would run; [`ImageRef`] says which registry
//! host, repository path, tag and digest one of them names, so the check compares typed parts and
//! never splits the string again. Nothing is defaulted: `nginx` has no host and the path `nginx`,
//! because which registry a bare name means is the container runtime's configuration, not part of
//! the reference.
//!
//! Guarantees of a parsed [`ImageRef`]: the input was at most [`MAX_IMAGE_REF_LEN`] bytes (checked
//! before anything else), host and path together are at most [`MAX_REPO_NAME_LEN`] characters,
//! every path component is a lowercase grammar component (so no empty segment, `.` or `..`), and
//! the tag and digest are the crate's [`Tag`] and [`Digest`].

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, truncated};
use crate::name::{MAX_REPO_NAME_LEN, Tag};

/// Longest image reference accepted, in bytes; longer input is refused before it is parsed.
pub const MAX_IMAGE_REF_LEN: usize = 4096;

/// A parsed container image reference: `[host[:port]/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    host: Option<String>,
    path: String,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// The registry host with its port, e.g. `localhost:5000`; `None` when the reference names
    /// none (the first path component has no `.` or `:` and is not `localhost`).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The repository path after the host, e.g. `prod/team/app`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
}

/// Why a string is not an image reference. Each message says what to write instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// The reference is empty.
    #[error(
        "empty image reference: write a name such as registry.example.com/team/app:1.0 or team/app@sha256:<64 hex digits>"
    )]
    Empty,
    /// The reference is longer than [`MAX_IMAGE_REF_LEN`].
    #[error("image reference is {len} bytes long; at most {MAX_IMAGE_REF_LEN} are accepted")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Host and path together are longer than [`MAX_REPO_NAME_LEN`].
    #[error(
        "image name {name:?} is {len} characters long; registry host and repository path together are at most {MAX_REPO_NAME_LEN}"
    )]
    NameTooLong {
        /// The name (truncated).
        name: String,
        /// Its length.
        len: usize,
    },
    /// A path component has upper case letters; lowercased it would be valid.
    #[error(
        "invalid image reference {reference:?}: repository names must be lowercase, {component:?} is not (a registry host is only the part before the first `/`, and only when it contains `.` or `:` or is `localhost`)"
    )]
    UppercasePath {
        /// The rejected reference (truncated).
        reference: String,
        /// The component (truncated).
        component: String,
    },
    /// A path component does not match the grammar, or is empty.
    #[error(
        "invalid image reference {reference:?}: path component {component:?} must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*, and the path may not contain `//` or start or end with `/`"
    )]
    InvalidComponent {
        /// The rejected reference (truncated).
        reference: String,
        /// The component (truncated).
        component: String,
    },
    /// The registry host is not a domain name, an IPv4 address or a bracketed IPv6 address.
    #[error(
        "invalid image reference {reference:?}: registry host {host:?} must be DNS labels of letters, digits and inner `-` joined by `.`, an IPv4 address, or an IPv6 address in brackets such as [::1]"
    )]
    InvalidHost {
        /// The rejected reference (truncated).
        reference: String,
        /// The host with its port (truncated).
        host: String,
    },
    /// The registry host's port is empty or not decimal digits.
    #[error(
        "invalid image reference {reference:?}: the registry port {port:?} must be decimal digits, e.g. localhost:5000/team/app"
    )]
    InvalidPort {
        /// The rejected reference (truncated).
        reference: String,
        /// The text after the host's `:` (truncated).
        port: String,
    },
    /// The text after the name's `:` is not a tag.
    #[error("invalid image reference {reference:?}: {source}")]
    InvalidTag {
        /// The rejected reference (truncated).
        reference: String,
        /// Why the tag was rejected.
        #[source]
        source: Error,
    },
    /// The text after `@` is not a supported digest.
    #[error("invalid image reference {reference:?}: {source}")]
    InvalidDigest {
        /// The rejected reference (truncated).
        reference: String,
        /// Why the digest was rejected.
        #[source]
        source: Error,
    },
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(value: &str) -> Result<Self, ImageRefError> {
        if value.len() > MAX_IMAGE_REF_LEN {
            return Err(ImageRefError::TooLong { len: value.len() });
        }
        if value.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let reference = || truncated(value);

        // Neither name nor tag may contain `@`, so the digest is everything after the first one.
        let (rest, digest) = match value.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest
                    .parse()
                    .map_err(|source| ImageRefError::InvalidDigest {
                        reference: reference(),
                        source,
                    })?;
                (rest, Some(digest))
            }
            None => (value, None),
        };

        // The tag follows a `:` in the last path component; a `:` before it is the host's port.
        let last_component = rest.rfind('/').map_or(0, |slash| slash + 1);
        let (name, tag) = match rest[last_component..].find(':') {
            Some(offset) => {
                let colon = last_component + offset;
                let tag =
                    rest[colon + 1..]
                        .parse()
                        .map_err(|source| ImageRefError::InvalidTag {
                            reference: reference(),
                            source,
                        })?;
                (&rest[..colon], Some(tag))
            }
            None => (rest, None),
        };

        let (host, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                check_host(first, value)?;
                (Some(first), path)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            if !path_component_is_valid(component) {
                let only_uppercase = path_component_is_valid(&component.to_ascii_lowercase());
                let component = truncated(component);
                return Err(if only_uppercase {
                    ImageRefError::UppercasePath {
                        reference: reference(),
                        component,
                    }
                } else {
                    ImageRefError::InvalidComponent {
                        reference: reference(),
                        component,
                    }
                });
            }
        }
        if name.len() > MAX_REPO_NAME_LEN {
            return Err(ImageRefError::NameTooLong {
                name: truncated(name),
                len: name.len(),
            });
        }

        Ok(Self {
            host: host.map(str::to_string),
            path: path.to_string(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "{host}/")?;
        }
        f.write_str(&self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// One path component of the grammar, `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, checked where
/// repository names are (`name.rs`).
fn path_component_is_valid(component: &str) -> bool {
    crate::name::component_is_valid(component)
}

/// Checks `host[:port]`: a domain name or IPv4 address, or an IPv6 address in brackets, then an
/// optional decimal port.
fn check_host(domain: &str, reference: &str) -> Result<(), ImageRefError> {
    let invalid_host = || ImageRefError::InvalidHost {
        reference: truncated(reference),
        host: truncated(domain),
    };
    let (host_is_valid, port) = match domain.strip_prefix('[') {
        Some(bracketed) => {
            let (ipv6, after) = bracketed.split_once(']').ok_or_else(invalid_host)?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(invalid_host)?),
            };
            let ipv6_is_valid =
                !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
            (ipv6_is_valid, port)
        }
        None => match domain.split_once(':') {
            Some((host, port)) => (domain_name_is_valid(host), Some(port)),
            None => (domain_name_is_valid(domain), None),
        },
    };
    if !host_is_valid {
        return Err(invalid_host());
    }
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ImageRefError::InvalidPort {
                reference: truncated(reference),
                port: truncated(port),
            })
        }
        _ => Ok(()),
    }
}

/// Checks `label('.'label)*` where a label is letters and digits with `-` only inside; an IPv4
/// address is such a name.
fn domain_name_is_valid(host: &str) -> bool {
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(value: &str) -> ImageRef {
        value
            .parse()
            .unwrap_or_else(|e| panic!("{value:?} should parse: {e}"))
    }

    fn parts(r: &ImageRef) -> (Option<&str>, &str, Option<&str>, Option<String>) {
        (
            r.host(),
            r.path(),
            r.tag().map(Tag::as_str),
            r.digest().map(Digest::to_string),
        )
    }

    #[test]
    fn host_with_port_and_digest() {
        let value = format!("localhost:5000/prod/team/app@sha256:{HEX}");
        let r = parse(&value);
        assert_eq!(
            parts(&r),
            (
                Some("localhost:5000"),
                "prod/team/app",
                None,
                Some(format!("sha256:{HEX}"))
            )
        );
        assert_eq!(r.to_string(), value);
    }

    #[test]
    fn ipv4_and_ipv6_hosts() {
        let r = parse("10.0.0.1:5000/team/app:1.0");
        assert_eq!(
            parts(&r),
            (Some("10.0.0.1:5000"), "team/app", Some("1.0"), None)
        );
        let r = parse("[::1]:5000/team/app");
        assert_eq!(parts(&r), (Some("[::1]:5000"), "team/app", None, None));
        let r = parse("localhost/app");
        assert_eq!(parts(&r), (Some("localhost"), "app", None, None));
        let r = parse("Registry.Example.com/team/app");
        assert_eq!(r.host(), Some("Registry.Example.com"));
    }

    #[test]
    fn no_host_means_no_host() {
        assert_eq!(parts(&parse("nginx")), (None, "nginx", None, None));
        assert_eq!(
            parts(&parse("team/app:1.0")),
            (None, "team/app", Some("1.0"), None)
        );
        // A single component with a dot is a path, as in the distribution grammar.
        assert_eq!(
            parts(&parse("registry.example.com")),
            (None, "registry.example.com", None, None)
        );
    }

    #[test]
    fn tag_and_digest_together() {
        let value = format!("registry.example.com/prod/team/app:1.4.0@sha256:{HEX}");
        let r = parse(&value);
        assert_eq!(
            parts(&r),
            (
                Some("registry.example.com"),
                "prod/team/app",
                Some("1.4.0"),
                Some(format!("sha256:{HEX}"))
            )
        );
        assert_eq!(r.to_string(), value);
    }

    #[test]
    fn digest_only_and_tag_only() {
        let r = parse(&format!("team/app@sha256:{HEX}"));
        assert_eq!(r.tag(), None);
        assert!(r.digest().is_some());
        let r = parse("registry.example.com:443/team/app:v2");
        assert_eq!(r.tag().map(Tag::as_str), Some("v2"));
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn uppercase_path_is_rejected_with_the_fix() {
        for bad in ["registry.example.com/Team/app", "MyRegistry/app", "App:1"] {
            let err = bad.parse::<ImageRef>().unwrap_err();
            assert!(
                matches!(err, ImageRefError::UppercasePath { .. }),
                "{bad:?}: {err:?}"
            );
            assert!(
                err.to_string()
                    .contains("repository names must be lowercase")
            );
        }
    }

    #[test]
    fn bad_components_are_rejected() {
        for bad in [
            "registry.example.com//app",
            "team//app",
            "/team/app",
            "team/app/",
            "localhost:5000/",
            "team/../app",
            "team/-app",
            "team/a b",
        ] {
            assert!(
                matches!(
                    bad.parse::<ImageRef>(),
                    Err(ImageRefError::InvalidComponent { .. })
                ),
                "{bad:?} should be an invalid component"
            );
        }
    }

    #[test]
    fn trailing_colon_is_rejected() {
        assert!(matches!(
            "nginx:".parse::<ImageRef>(),
            Err(ImageRefError::InvalidTag { .. })
        ));
        assert!(matches!(
            "team/app:1.0:".parse::<ImageRef>(),
            Err(ImageRefError::InvalidTag { .. })
        ));
        assert!(matches!(
            "team/app@".parse::<ImageRef>(),
            Err(ImageRefError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn bad_hosts_and_ports_are_rejected() {
        for bad in [
            "localhost:/app",
            "registry.example.com:abc/app",
            "a.b:1:2/app",
        ] {
            assert!(
                matches!(
                    bad.parse::<ImageRef>(),
                    Err(ImageRefError::InvalidPort { .. })
                ),
                "{bad:?} should have an invalid port"
            );
        }
        for bad in [
            "-bad.example.com/app",
            "a..b/app",
            "[zz]:5000/app",
            "[::1/app",
        ] {
            assert!(
                matches!(
                    bad.parse::<ImageRef>(),
                    Err(ImageRefError::InvalidHost { .. })
                ),
                "{bad:?} should have an invalid host"
            );
        }
    }

    #[test]
    fn short_digest_is_rejected() {
        let err = "team/app@sha256:abc123".parse::<ImageRef>().unwrap_err();
        assert!(matches!(
            err,
            ImageRefError::InvalidDigest {
                source: Error::InvalidDigest { .. },
                ..
            }
        ));
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!("".parse::<ImageRef>(), Err(ImageRefError::Empty));
        // Refused by the first check: no splitting or component scan happens.
        assert_eq!(
            "a".repeat(10_000).parse::<ImageRef>(),
            Err(ImageRefError::TooLong { len: 10_000 })
        );
        assert!(matches!(
            "a".repeat(256).parse::<ImageRef>(),
            Err(ImageRefError::NameTooLong { len: 256, .. })
        ));
        assert!("a".repeat(255).parse::<ImageRef>().is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_display_round_trips(s in ".{0,300}") {
            if let Ok(r) = s.parse::<ImageRef>() {
                proptest::prop_assert_eq!(r.to_string(), s);
            }
        }

        #[test]
        fn grammar_shaped_input_round_trips(
            s in "([a-z0-9.-]{1,12}(:[0-9]{1,5})?/)?[a-z0-9._/-]{1,30}(:[A-Za-z0-9_.-]{1,10})?"
        ) {
            if let Ok(r) = s.parse::<ImageRef>() {
                proptest::prop_assert_eq!(r.to_string(), s);
            }
        }
    }
}
