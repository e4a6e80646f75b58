//! For tests only (the `test-support` feature): the S3-compatible test server that
//! `scripts/test-s3` starts, named by `AIRLOCK_TEST_S3_ENDPOINT`, and a fresh bucket per test.
//! Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` as for the server.

use std::time::Duration;

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;

use crate::blobs::S3Options;

/// The variable naming the test server's endpoint (`http://127.0.0.1:PORT`).
pub const ENDPOINT_VARIABLE: &str = "AIRLOCK_TEST_S3_ENDPOINT";

/// A running S3-compatible test server.
#[derive(Debug, Clone)]
pub struct TestS3 {
    /// Its endpoint.
    pub endpoint: String,
}

/// What stops a test from using the test server.
#[derive(Debug, thiserror::Error)]
pub enum TestS3Error {
    /// `AIRLOCK_TEST_S3_ENDPOINT` is not set.
    #[error(
        "AIRLOCK_TEST_S3_ENDPOINT is not set: start the test server with `eval \"$(scripts/test-s3)\"`"
    )]
    NotConfigured,
    /// The bucket could not be created.
    #[error("creating test bucket {bucket}: {reason}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// Why.
        reason: String,
    },
}

impl TestS3 {
    /// The test server named by the environment, if any.
    pub fn from_env() -> Result<Self, TestS3Error> {
        match std::env::var(ENDPOINT_VARIABLE) {
            Ok(endpoint) if !endpoint.is_empty() => Ok(Self { endpoint }),
            _ => Err(TestS3Error::NotConfigured),
        }
    }

    /// How airlock reaches the test server (path-style requests; `http://` allowed when the
    /// endpoint is plain HTTP), with redirects valid `redirect_ttl` when given.
    pub fn options(&self, redirect_ttl: Option<Duration>) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            path_style: true,
            allow_http: self.endpoint.starts_with("http://"),
            redirect_ttl,
        }
    }

    /// A bucket name no other test uses (`airlock-t-` and 16 random hex digits).
    pub fn fresh_bucket_name() -> String {
        format!(
            "airlock-t-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        )
    }

    /// Creates `bucket` (a signed `PUT /BUCKET`); a bucket that exists already is fine.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), TestS3Error> {
        let fail = |reason: String| TestS3Error::Bucket {
            bucket: bucket.to_string(),
            reason,
        };
        let credential = AwsCredential {
            key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            token: None,
        };
        let url = format!("{}/{bucket}", self.endpoint.trim_end_matches('/'));
        let mut request = http::Request::builder()
            .method("PUT")
            .uri(&url)
            .body(HttpRequestBody::from(Vec::new()))
            .map_err(|err| fail(err.to_string()))?;
        AwsAuthorizer::new(&credential, "s3", "us-east-1")
            .try_authorize(&mut request, None)
            .map_err(|err| fail(err.to_string()))?;
        let mut put = reqwest::Client::new().put(&url);
        for (name, value) in request.headers() {
            put = put.header(name, value);
        }
        let response = put.send().await.map_err(|err| fail(err.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        // A bucket of ours created earlier: S3 answers BucketAlreadyOwnedByYou, s3s-fs
        // BucketAlreadyExists (test bucket names are random or derived from a temporary path).
        if status.is_success()
            || body.contains("BucketAlreadyOwnedByYou")
            || body.contains("BucketAlreadyExists")
        {
            Ok(())
        } else {
            Err(fail(format!("{status}: {body}")))
        }
    }
}
