//! `auth.provider`: `local` (one configured account) and `none` (single-user installs).

use crate::support::{Backend, TestApp, Tokens};
use secrecy::SecretString;
use serde_json::json;

#[tokio::test]
async fn local_provider_has_one_configured_account_and_no_registration() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.auth.provider = "local".into();
        s.auth.local_email = Some("Owner@Example.com".into());
        s.auth.local_password = Some(SecretString::from("owner password"));
    })
    .await;
    let status = app.get("/api/v1/auth/status", None).await;
    assert_eq!(
        status.data(),
        &json!({"auth_provider": "local", "registration_open": false, "max_upload_bytes": 10485760, "refresh_cookie": true})
    );
    app.register("Someone", "someone@example.com", "long enough pw")
        .await
        .assert_error(400);
    app.post(
        "/api/v1/auth/send-verification-code",
        None,
        json!({"email": "owner@example.com"}),
    )
    .await
    .assert_error(400);
    let login = app.login("owner@example.com", "owner password").await;
    login.assert_ok();
    assert_eq!(login.data()["user"]["role"], "admin");
    let t = Tokens::from(&login);
    app.get("/api/v1/auth/me", Some(&t.access))
        .await
        .assert_ok();
    app.post("/api/v1/auth/logout", Some(&t.access), json!({}))
        .await
        .assert_error(400);
    app.get("/api/v1/auth/me", None).await.assert_error(401);
    app.stop().await;
}

#[tokio::test]
async fn none_provider_acts_as_one_local_user_without_tokens() {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.auth.provider = "none".into()).await;
    let status = app.get("/api/v1/auth/status", None).await;
    assert_eq!(status.data()["auth_provider"], "none");
    let me = app.get("/api/v1/auth/me", None).await;
    me.assert_ok();
    let again = app.get("/api/v1/auth/me", None).await;
    assert_eq!(me.data()["id"], again.data()["id"]);
    // With no login at all, nobody gets admin powers.
    assert_eq!(me.data()["role"], "user");
    app.get("/api/v1/auth/users", None).await.assert_error(403);
    app.register("Someone", "someone@example.com", "long enough pw")
        .await
        .assert_error(400);
    app.login("anonymous@ironhand.local", "whatever")
        .await
        .assert_error(400);
    app.stop().await;
}

#[tokio::test]
async fn local_provider_lets_only_the_configured_account_in() {
    // Accounts from an earlier password-mode life of the same database stay locked out.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::support::settings_for(Backend::Sqlite, dir.path()).await;
    let earlier = TestApp::from_settings(settings.clone()).await;
    let old = earlier.signed_up("old@example.com", "long enough pw").await;
    earlier.stop().await;
    settings.auth.provider = "local".into();
    settings.auth.local_email = Some("owner@example.com".into());
    settings.auth.local_password = Some(SecretString::from("owner password"));
    let app = TestApp::from_settings(settings).await;
    app.login("old@example.com", "long enough pw")
        .await
        .assert_error(401);
    // Sessions from the earlier life end too: no refresh, no access.
    app.get("/api/v1/auth/me", Some(&old.access))
        .await
        .assert_error(401);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": old.refresh}),
    )
    .await
    .assert_error(401);
    app.login("owner@example.com", "owner password")
        .await
        .assert_ok();
    app.stop().await;
}
