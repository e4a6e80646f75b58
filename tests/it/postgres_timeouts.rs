//! PostgreSQL's time limits seen from a client: while another process holds the writer lock past
//! `lock_timeout`, a push is answered `503` with `Retry-After` (nothing was written, retrying is
//! right), not a hang or a `500`; once the lock is free the same push goes through. Runs under
//! `AIRLOCK_TEST_BACKEND=distributed` and prints a notice otherwise.

use crate::common;

use common::{TestServer, backend_env};

/// The writer lock's key (`airlock-store`'s `WRITER_LOCK_KEY`: "airlock\0" in ASCII).
const WRITER_LOCK_KEY: i64 = 0x6169_726c_6f63_6b00;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_waits_past_lock_timeout_answers_503_with_retry_after() {
    if !common::distributed() {
        eprintln!("NOTICE: PostgreSQL test skipped: set AIRLOCK_TEST_BACKEND=distributed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let (_, url) = backend_env(&data_dir).into_iter().next().unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let short = format!("{url}{separator}options=-c%20lock_timeout%3D1s");
    let s = TestServer::start_in(&data_dir, &[("AIRLOCK_DATABASE_URL", &short)]);

    // Another process holds the writer lock (a transaction stuck under it).
    use sqlx::Connection as _;
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let response = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("send the request again"),
        "{body}"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.unwrap();
    let digest = s
        .push_blob("dev/team/app", b"after the lock was freed")
        .await;
    assert!(digest.starts_with("sha256:"));
}
