//! Parsing `/v2/...` paths into typed routes.
//!
//! Repository names contain slashes, so the path is read from its end: the last segments say which
//! endpoint it is, and everything before them is the repository name, parsed into a [`RepoName`].

use airlock_core::{Digest, Reference, RepoName};

/// An OCI distribution endpoint with its typed path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRoute {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<reference>` where the reference is not a valid tag (and not
    /// digest-shaped): no manifest can have it, so a read is answered `404 MANIFEST_UNKNOWN`
    /// (what registries and the conformance suite expect) and a write `400 TAG_INVALID`.
    ManifestWithInvalidTag(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`; the id is checked against stored sessions, not parsed here.
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
}

/// Why a path is not an OCI route.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// The path matches no endpoint.
    #[error("no OCI endpoint at this path")]
    NotFound,
    /// The endpoint matched but a parameter is malformed.
    #[error(transparent)]
    Invalid(#[from] airlock_core::Error),
}

impl OciRoute {
    /// Parses the part of the path after `/v2/`.
    pub fn parse(rest: &str) -> Result<Self, RouteError> {
        if rest.is_empty() {
            return Ok(Self::Base);
        }
        if rest == "_catalog" {
            return Ok(Self::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Self::Tags(name.parse()?));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Ok(Self::UploadStart(name.parse()?));
        }
        let (head, last) = rest.rsplit_once('/').ok_or(RouteError::NotFound)?;
        let (name, kind) = head.rsplit_once('/').ok_or(RouteError::NotFound)?;
        match kind {
            "manifests" => {
                let name = name.parse()?;
                match last.parse() {
                    Ok(reference) => Ok(Self::Manifest(name, reference)),
                    Err(airlock_core::Error::InvalidTag(tag)) => {
                        Ok(Self::ManifestWithInvalidTag(name, tag))
                    }
                    Err(err) => Err(err.into()),
                }
            }
            "blobs" => Ok(Self::Blob(name.parse()?, last.parse()?)),
            "referrers" => Ok(Self::Referrers(name.parse()?, last.parse()?)),
            "uploads" => {
                let name = name.strip_suffix("/blobs").ok_or(RouteError::NotFound)?;
                Ok(Self::Upload(name.parse()?, last.to_string()))
            }
            _ => Err(RouteError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_endpoint() {
        assert_eq!(OciRoute::parse(""), Ok(OciRoute::Base));
        assert_eq!(OciRoute::parse("_catalog"), Ok(OciRoute::Catalog));
        assert_eq!(
            OciRoute::parse("dev/team/app/tags/list"),
            Ok(OciRoute::Tags(repo("dev/team/app")))
        );
        assert_eq!(
            OciRoute::parse("dev/team/app/manifests/v1"),
            Ok(OciRoute::Manifest(
                repo("dev/team/app"),
                "v1".parse().unwrap()
            ))
        );
        assert_eq!(
            OciRoute::parse(&format!("dev/app/blobs/{D}")),
            Ok(OciRoute::Blob(repo("dev/app"), D.parse().unwrap()))
        );
        assert_eq!(
            OciRoute::parse("dev/app/blobs/uploads/"),
            Ok(OciRoute::UploadStart(repo("dev/app")))
        );
        assert_eq!(
            OciRoute::parse("dev/app/blobs/uploads/abc"),
            Ok(OciRoute::Upload(repo("dev/app"), "abc".into()))
        );
        assert_eq!(
            OciRoute::parse(&format!("dev/app/referrers/{D}")),
            Ok(OciRoute::Referrers(repo("dev/app"), D.parse().unwrap()))
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            OciRoute::parse("dev/blobs/manifests/manifests/v1"),
            Ok(OciRoute::Manifest(
                repo("dev/blobs/manifests"),
                "v1".parse().unwrap()
            ))
        );
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(
            OciRoute::parse("dev/app/other/x"),
            Err(RouteError::NotFound)
        );
        assert_eq!(OciRoute::parse("x"), Err(RouteError::NotFound));
        assert!(matches!(
            OciRoute::parse("dev/../etc/manifests/v1"),
            Err(RouteError::Invalid(_))
        ));
        assert!(matches!(
            OciRoute::parse("dev/app/blobs/sha256:nothex"),
            Err(RouteError::Invalid(_))
        ));
        assert!(matches!(
            OciRoute::parse("dev/app/manifests/sha256:nothex"),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn a_manifest_reference_that_is_no_valid_tag_is_its_own_route() {
        assert_eq!(
            OciRoute::parse("dev/app/manifests/.INVALID_MANIFEST_NAME"),
            Ok(OciRoute::ManifestWithInvalidTag(
                repo("dev/app"),
                ".INVALID_MANIFEST_NAME".into()
            ))
        );
        // The repository name is still checked first.
        assert!(matches!(
            OciRoute::parse("dev/../x/manifests/.bad"),
            Err(RouteError::Invalid(_))
        ));
    }
}
