//! Names a request can carry: stages, repositories (`<stage>/<path>`), tags, and references.
//!
//! Each type can only hold a value that matches the OCI distribution grammar, so a value that
//! reaches storage can never contain `..`, a leading `/`, upper case or other path tricks.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, truncated};

/// Longest repository name accepted (the limit docker/distribution applies).
pub const MAX_REPO_NAME_LEN: usize = 255;

/// Checks one path component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub(crate) fn component_is_valid(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alphanumeric run is required here.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator: ".", "_", "__" or one or more "-".
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// The name of a stage: the first path segment of every repository name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageName(pub(crate) String);

impl StageName {
    /// The stage name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StageName {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        if component_is_valid(value) {
            Ok(Self(value.to_string()))
        } else {
            Err(Error::InvalidName {
                value: truncated(value),
                reason: "a stage name is one lowercase path component such as dev or prod",
            })
        }
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StageName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for StageName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A full repository name, `<stage>/<path>`, e.g. `dev/team/app`.
///
/// Parsing checks the OCI grammar and that there is a path after the stage; whether the stage
/// exists is a configuration question answered by [`crate::Stages::stage_of`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName {
    full: String,
    stage_len: usize,
}

impl<'de> serde::Deserialize<'de> for RepoName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for RepoName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl RepoName {
    /// The whole name, stage included.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The stage segment.
    pub fn stage(&self) -> StageName {
        StageName(self.full[..self.stage_len].to_string())
    }

    /// The path after the stage (`team/app` for `dev/team/app`), the same in every stage.
    pub fn path(&self) -> &str {
        &self.full[self.stage_len + 1..]
    }

    /// The same path in another stage: `dev/team/app` -> `prod/team/app`.
    pub fn in_stage(&self, stage: &StageName) -> RepoName {
        RepoName {
            full: format!("{}/{}", stage.as_str(), self.path()),
            stage_len: stage.as_str().len(),
        }
    }
}

impl FromStr for RepoName {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidName {
            value: truncated(value),
            reason,
        };
        if value.len() > MAX_REPO_NAME_LEN {
            return Err(invalid("a repository name is at most 255 characters"));
        }
        if !value.split('/').all(component_is_valid) {
            return Err(invalid(
                "each path component must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
            ));
        }
        let Some(stage_len) = value.find('/') else {
            return Err(invalid(
                "a repository name is <stage>/<path>, e.g. dev/team/app",
            ));
        };
        Ok(Self {
            full: value.to_string(),
            stage_len,
        })
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        let bytes = value.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
        if valid {
            Ok(Self(value.to_string()))
        } else {
            Err(Error::InvalidTag(truncated(value)))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag, resolved through the repository's tag table.
    Tag(Tag),
    /// A content digest.
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        if value.contains(':') {
            value.parse().map(Self::Digest)
        } else {
            value.parse().map(Self::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for good in [
            "dev/app",
            "dev/team/app",
            "dev/a.b/c_d/e__f/g---h",
            "prod/0/1",
        ] {
            let name: RepoName = good.parse().unwrap();
            assert_eq!(name.as_str(), good);
        }
        let name: RepoName = "dev/team/app".parse().unwrap();
        assert_eq!(name.stage().as_str(), "dev");
        assert_eq!(name.path(), "team/app");
        assert_eq!(
            name.in_stage(&"prod".parse().unwrap()).as_str(),
            "prod/team/app"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "dev",
            "dev/",
            "/dev/app",
            "dev//app",
            "dev/../app",
            "dev/./app",
            "dev/App",
            "dev/app/",
            "dev/a___b",
            "dev/-app",
            "dev/app-",
            "dev/a.-b",
            "dev/a b",
            "dev/a%2fb",
        ] {
            assert!(
                bad.parse::<RepoName>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long = format!("dev/{}", "a".repeat(300));
        assert!(long.parse::<RepoName>().is_err());
    }

    #[test]
    fn tags_follow_the_grammar() {
        for good in ["1", "latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(good.parse::<Tag>().is_ok(), "{good:?}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reference_is_tag_or_digest() {
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
        assert!(matches!(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse::<Reference>(),
            Ok(Reference::Digest(_))
        ));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn valid_names_never_contain_path_tricks(s in "[a-z0-9./_-]{1,40}") {
            if let Ok(name) = s.parse::<RepoName>() {
                let n = name.as_str();
                proptest::prop_assert!(!n.contains(".."));
                proptest::prop_assert!(!n.contains("//"));
                proptest::prop_assert!(!n.starts_with('/') && !n.ends_with('/'));
                proptest::prop_assert!(!n.split('/').any(|c| c == "."));
            }
        }

        #[test]
        fn name_parse_never_panics(s in ".{0,300}") {
            let _ = s.parse::<RepoName>();
            let _ = s.parse::<Tag>();
            let _ = s.parse::<Reference>();
        }
    }
}
