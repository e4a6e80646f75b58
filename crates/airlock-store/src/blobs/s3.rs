//! Blobs in an S3 bucket (`blob_store = "s3://BUCKET/PREFIX"`), through `object_store`'s `aws`
//! client: where the bucket is, how requests reach it, where credentials come from, and the
//! presigned GET URLs that let clients fetch blob bytes from the bucket directly.
//!
//! Credentials come only from the environment the caller hands over, under their usual AWS
//! names ([`CREDENTIAL_VARIABLES`]): static keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! optionally `AWS_SESSION_TOKEN`), a web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` +
//! `AWS_ROLE_ARN`, as Kubernetes service accounts on EKS get), a container's credentials
//! endpoint, or, when none is set, the instance metadata service. They are never read from a
//! file airlock owns and never logged.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, Signer, Url};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::error::StoreError;

/// The environment variables the S3 client takes credentials from, and nothing else.
pub const CREDENTIAL_VARIABLES: [&str; 9] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// The shortest and longest lifetime of a presigned blob URL, in seconds.
pub const REDIRECT_TTL_SECS: std::ops::RangeInclusive<u64> = 10..=3600;

/// A bucket and an optional key prefix, written `s3://BUCKET` or `s3://BUCKET/PREFIX` (also in
/// configuration files, where a malformed one is refused when the file is read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct S3Location {
    bucket: String,
    prefix: Option<Path>,
}

/// Why an `s3://` location was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blob store {given:?}: {reason}; write s3://BUCKET or s3://BUCKET/PREFIX")]
pub struct S3LocationError {
    given: String,
    reason: &'static str,
}

impl S3Location {
    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix every object is stored under, if any.
    pub fn prefix(&self) -> Option<&Path> {
        self.prefix.as_ref()
    }
}

impl FromStr for S3Location {
    type Err = S3LocationError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| S3LocationError {
            given: given.chars().take(200).collect(),
            reason,
        };
        let rest = given.strip_prefix("s3://").ok_or_else(|| {
            refuse("only s3:// locations are supported (unset: the data directory's blobs/)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3-63 characters of lowercase letters, digits, '.' and '-',
        // starting and ending with a letter or digit.
        let edge_ok =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !(3..=63).contains(&bucket.len())
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            || !edge_ok(bucket.chars().next())
            || !edge_ok(bucket.chars().last())
        {
            return Err(refuse(
                "the bucket name must be 3 to 63 lowercase letters, digits, '.' or '-'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(prefix).map_err(|_| {
                refuse("the prefix must be '/'-separated names without empty, '.' or '..' parts")
            })?)
        };
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(prefix) => write!(f, "s3://{}/{prefix}", self.bucket),
            None => write!(f, "s3://{}", self.bucket),
        }
    }
}

impl TryFrom<String> for S3Location {
    type Error = S3LocationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<S3Location> for String {
    fn from(location: S3Location) -> Self {
        location.to_string()
    }
}

/// How to reach the bucket (`[s3]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The S3 endpoint (`http://127.0.0.1:9000`); `None` for AWS in `region`.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`) rather than virtual-hosted ones
    /// (`BUCKET.ENDPOINT/KEY`).
    pub path_style: bool,
    /// Whether an `http://` endpoint is allowed.
    pub allow_http: bool,
    /// When set, blob GETs may be redirected to presigned URLs valid this long.
    pub redirect_ttl: Option<Duration>,
}

/// Presigns blob GETs for redirects.
#[derive(Debug, Clone)]
pub(super) struct Redirects {
    signer: Arc<dyn Signer>,
    ttl: Duration,
}

impl Redirects {
    /// A URL that fetches the object at `path` (relative to the location's prefix) without
    /// credentials until the lifetime runs out.
    pub(super) async fn presign(&self, path: &Path) -> Result<Url, StoreError> {
        Ok(self.signer.signed_url(Method::GET, path, self.ttl).await?)
    }
}

/// The endpoint with the bucket as the first label of its host, for virtual-hosted requests to
/// an endpoint that is not AWS (`http://s3.example:9000` -> `http://BUCKET.s3.example:9000`).
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> Result<String, StoreError> {
    let mut url = Url::parse(endpoint).map_err(|err| invalid_endpoint(endpoint, &err))?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid_endpoint(endpoint, &"no host"))?
        .to_string();
    url.set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|err| invalid_endpoint(endpoint, &err))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn invalid_endpoint(endpoint: &str, why: &dyn fmt::Display) -> StoreError {
    StoreError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "[s3] endpoint {endpoint:?} is not a URL ({why}): write e.g. https://s3.example.com"
        ),
    ))
}

/// The bucket's store, scoped to the location's prefix, and its signer when redirects are on.
pub(super) fn build(
    location: &S3Location,
    options: &S3Options,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Arc<dyn object_store::ObjectStore>, Option<Redirects>), StoreError> {
    // A plain-HTTP endpoint needs no trust store: without this, a machine without CA
    // certificates could not build the client at all.
    let plain_http = options
        .endpoint
        .as_deref()
        .is_some_and(|endpoint| endpoint.starts_with("http://"));
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&options.region)
        .with_virtual_hosted_style_request(!options.path_style)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(options.allow_http)
                .with_no_system_certificates(plain_http)
                .with_connect_timeout(Duration::from_secs(5))
                // A blob download streams for as long as the client reads: no overall deadline,
                // but a read that stalls for a minute fails.
                .with_timeout_disabled()
                .with_read_timeout(Duration::from_secs(60)),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 5,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(endpoint) = &options.endpoint {
        let endpoint = if options.path_style {
            endpoint.trim_end_matches('/').to_string()
        } else {
            virtual_hosted_endpoint(endpoint, &location.bucket)?
        };
        builder = builder.with_endpoint(endpoint);
    }
    for (name, value) in env {
        if CREDENTIAL_VARIABLES.contains(&name.as_str())
            && let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(key, value);
        }
    }
    let s3: AmazonS3 = builder.build()?;
    let store = Arc::new(match &location.prefix {
        Some(prefix) => PrefixStore::new(s3, prefix.clone()),
        None => PrefixStore::new(s3, Path::default()),
    });
    let redirects = options.redirect_ttl.map(|ttl| Redirects {
        signer: store.clone(),
        ttl,
    });
    Ok((store, redirects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_valid_bucket_and_prefix() {
        let plain: S3Location = "s3://airlock-blobs".parse().unwrap();
        assert_eq!(plain.bucket(), "airlock-blobs");
        assert_eq!(plain.prefix(), None);
        assert_eq!(plain.to_string(), "s3://airlock-blobs");
        let nested: S3Location = "s3://b.example/team/prod/".parse().unwrap();
        assert_eq!(nested.prefix().map(|p| p.as_ref()), Some("team/prod"));
        assert_eq!(nested.to_string(), "s3://b.example/team/prod");
        for bad in [
            "file:///data",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://under_score",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "bucket/prefix",
        ] {
            let err = bad.parse::<S3Location>().unwrap_err();
            assert!(
                err.to_string().contains("s3://BUCKET/PREFIX"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn virtual_hosted_requests_put_the_bucket_in_the_host() {
        assert_eq!(
            virtual_hosted_endpoint("http://127.0.0.1.nip.example:9000/", "b").unwrap(),
            "http://b.127.0.0.1.nip.example:9000"
        );
        assert!(virtual_hosted_endpoint("not a url", "b").is_err());
    }

    #[tokio::test]
    async fn presigned_urls_carry_a_signature_and_the_prefix_but_no_secret() {
        let location: S3Location = "s3://bucket/pre".parse().unwrap();
        let options = S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            path_style: true,
            allow_http: true,
            redirect_ttl: Some(Duration::from_secs(60)),
        };
        let env = [
            ("AWS_ACCESS_KEY_ID".to_string(), "AKIDEXAMPLE".to_string()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                "s3cr3t-value".to_string(),
            ),
            (
                "AWS_ENDPOINT".to_string(),
                "http://ignored.example".to_string(),
            ),
        ];
        let (_, redirects) = build(&location, &options, env).unwrap();
        let url = redirects
            .unwrap()
            .presign(&Path::from("blobs/sha256/ab/abc"))
            .await
            .unwrap();
        let url = url.as_str();
        assert!(
            url.starts_with("http://127.0.0.1:9/bucket/pre/blobs/sha256/ab/abc?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(!url.contains("s3cr3t"), "{url}");
    }
}
