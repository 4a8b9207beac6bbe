//! Two instances sharing PostgreSQL and Redis behave as one service: a logout on one is seen
//! by the other at once (GAP-AUTH-002), and rate limits are shared.

use crate::support::{Backend, TestApp, Tokens, settings_for};
use serde_json::json;

async fn pair() -> (TestApp, TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings_for(Backend::PostgresRedis, dir.path()).await;
    settings.auth.jwt_secret = Some(secrecy::SecretString::from(format!(
        "shared-secret-{}",
        uuid::Uuid::new_v4()
    )));
    let a = TestApp::from_settings(settings.clone()).await;
    let b = TestApp::from_settings(settings).await;
    (a, b, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_seen_by_the_other_at_once() {
    let (a, b, _dir) = pair().await;
    let t = a.signed_up("twin@example.com", "long enough pw").await;
    b.get("/api/v1/auth/me", Some(&t.access)).await.assert_ok();
    a.post("/api/v1/auth/logout", Some(&t.access), json!({}))
        .await
        .assert_ok();
    b.get("/api/v1/auth/me", Some(&t.access))
        .await
        .assert_error(401);
    b.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": t.refresh}),
    )
    .await
    .assert_error(401);

    // Refresh-token reuse detected on B kills the family issued by A.
    let fresh = Tokens::from(&a.login("twin@example.com", "long enough pw").await);
    let rotated = Tokens::from(
        &a.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": fresh.refresh}),
        )
        .await,
    );
    b.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": fresh.refresh}),
    )
    .await
    .assert_error(401);
    a.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": rotated.refresh}),
    )
    .await
    .assert_error(401);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let (a, b, _dir) = pair().await;
    // Rebuild both with the default login budget (5/minute per IP) on the same Redis prefix.
    let mut settings = a.settings.clone();
    settings.rate_limits.login = "5/minute".into();
    a.stop().await;
    b.stop().await;
    let a = TestApp::from_settings(settings.clone()).await;
    let b = TestApp::from_settings(settings).await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.login(&format!("p{i}@example.com"), "wrong")
            .await
            .assert_error(401);
    }
    a.login("p9@example.com", "wrong").await.assert_error(429);
    b.login("p9@example.com", "wrong").await.assert_error(429);
    a.stop().await;
    b.stop().await;
}
