//! The account story of docs/api.md over HTTP: register → login → refresh (rotation, reuse kills
//! the family, a grace window for racing tabs) → logout (of the whole login) → change
//! password → logout-all, on both backends.

use crate::support::{Backend, TestApp, Tokens};
use serde_json::json;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    register_then_login_then_refresh_then_logout_revokes_tokens,
    register_validates_fields_and_refuses_duplicates,
    login_failures_look_the_same_for_unknown_email_and_wrong_password,
    change_password_ends_other_sessions_and_keeps_this_one,
    logout_all_kills_every_token,
    change_fullname_updates_the_profile,
    a_refresh_token_is_never_an_access_token,
    logout_ends_every_access_token_of_the_login,
    reuse_after_the_grace_window_ends_every_access_token_of_the_login,
    two_tabs_racing_one_refresh_both_carry_on_with_the_same_successor,
    change_password_ends_every_access_token_of_the_login,
);

const PW: &str = "correct horse battery";

async fn register_then_login_then_refresh_then_logout_revokes_tokens(backend: Backend) {
    // No grace window: a second use of a rotated token is theft at once.
    let app = TestApp::start_with(backend, |s| s.auth.refresh_reuse_grace_secs = 0).await;
    let r = app.register("Ada Lovelace", "  Ada@Example.COM ", PW).await;
    r.assert_ok();
    let user = &r.data()["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["fullname"], "Ada Lovelace");
    assert_eq!(user["role"], "admin", "the first account is the admin");
    assert_eq!(user["is_active"], true);
    assert!(
        user["created_at"]
            .as_str()
            .expect("created_at")
            .ends_with('Z')
    );
    assert_eq!(r.data()["token_type"], "bearer");

    let status = app.get("/api/v1/auth/status", None).await;
    status.assert_ok();
    assert_eq!(
        status.data(),
        &json!({"auth_provider": "password", "registration_open": true, "max_upload_bytes": 10485760, "refresh_cookie": true})
    );

    // Login, then use the access token.
    let login = app.login("ada@example.com", PW).await;
    login.assert_ok();
    let a = Tokens::from(&login);
    let me = app.get("/api/v1/auth/me", Some(&a.access)).await;
    me.assert_ok();
    assert_eq!(me.data()["email"], "ada@example.com");
    assert!(me.data()["last_login_at"].is_string());
    assert!(me.data().get("password_hash").is_none());

    // Refresh rotates: the new pair works, the old refresh token is refused…
    let r1 = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": a.refresh}),
        )
        .await;
    r1.assert_ok();
    let b = Tokens::from(&r1);
    assert_ne!(b.refresh, a.refresh);
    app.get("/api/v1/auth/me", Some(&b.access))
        .await
        .assert_ok();
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": a.refresh}),
    )
    .await
    .assert_error(401);
    // …and that reuse revoked the whole family, including the newest token.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": b.refresh}),
    )
    .await
    .assert_error(401);

    // Logout: this access token is dead at once, and so is its refresh family.
    let c = Tokens::from(&app.login("ada@example.com", PW).await);
    app.post("/api/v1/auth/logout", Some(&c.access), json!({}))
        .await
        .assert_ok();
    app.get("/api/v1/auth/me", Some(&c.access))
        .await
        .assert_error(401);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": c.refresh}),
    )
    .await
    .assert_error(401);
    // Logout needs a live token.
    app.post("/api/v1/auth/logout", Some(&c.access), json!({}))
        .await
        .assert_error(401);
    // An unrelated session is untouched.
    let d = Tokens::from(&app.login("ada@example.com", PW).await);
    app.get("/api/v1/auth/me", Some(&d.access))
        .await
        .assert_ok();
    app.stop().await;
}

async fn register_validates_fields_and_refuses_duplicates(backend: Backend) {
    let app = TestApp::start(backend).await;
    let bad = app.register("A", "not-an-email", "short").await;
    bad.assert_error(422);
    let fields: Vec<&str> = bad
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert_eq!(fields, ["fullname", "email", "password"]);
    app.register("Bob Builder", "bob@example.com", &"x".repeat(129))
        .await
        .assert_error(422);

    app.register("Bob Builder", "bob@example.com", PW)
        .await
        .assert_ok();
    let dup = app
        .register("Robert", "BOB@example.com", "another password")
        .await;
    dup.assert_error(409);
    assert!(dup.msg().contains("already exists"), "{}", dup.msg());
    let second = app.register("Carol", "carol@example.com", PW).await;
    second.assert_ok();
    assert_eq!(second.data()["user"]["role"], "user");
    app.stop().await;
}

async fn login_failures_look_the_same_for_unknown_email_and_wrong_password(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.signed_up("eve@example.com", PW).await;
    let wrong = app.login("eve@example.com", "wrong password").await;
    let unknown = app.login("nobody@example.com", PW).await;
    let malformed = app.login("not an email", PW).await;
    for r in [&wrong, &unknown, &malformed] {
        r.assert_error(401);
        assert_eq!(r.msg(), "Invalid email or password");
        assert_eq!(r.data(), &serde_json::Value::Null);
    }
    app.login("EVE@example.com", PW).await.assert_ok();
    app.stop().await;
}

async fn change_password_ends_other_sessions_and_keeps_this_one(backend: Backend) {
    let app = TestApp::start(backend).await;
    let here = app.signed_up("pat@example.com", PW).await;
    let elsewhere = Tokens::from(&app.login("pat@example.com", PW).await);

    let wrong = app
        .post(
            "/api/v1/auth/change-password",
            Some(&here.access),
            json!({"old_password": "nope nope", "new_password": "new password 1"}),
        )
        .await;
    wrong.assert_error(400);
    app.post(
        "/api/v1/auth/change-password",
        Some(&here.access),
        json!({"old_password": PW, "new_password": "short"}),
    )
    .await
    .assert_error(422);
    app.post(
        "/api/v1/auth/change-password",
        Some(&here.access),
        json!({"old_password": PW, "new_password": "new password 1"}),
    )
    .await
    .assert_ok();

    // Every access token issued before the change is dead…
    app.get("/api/v1/auth/me", Some(&here.access))
        .await
        .assert_error(401);
    app.get("/api/v1/auth/me", Some(&elsewhere.access))
        .await
        .assert_error(401);
    // …the other session cannot refresh, this one can and carries on.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": elsewhere.refresh}),
    )
    .await
    .assert_error(401);
    let renewed = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": here.refresh}),
        )
        .await;
    renewed.assert_ok();
    app.get(
        "/api/v1/auth/me",
        Some(Tokens::from(&renewed).access.as_str()),
    )
    .await
    .assert_ok();

    app.login("pat@example.com", PW).await.assert_error(401);
    app.login("pat@example.com", "new password 1")
        .await
        .assert_ok();
    app.stop().await;
}

async fn logout_all_kills_every_token(backend: Backend) {
    let app = TestApp::start(backend).await;
    let one = app.signed_up("lou@example.com", PW).await;
    let two = Tokens::from(&app.login("lou@example.com", PW).await);
    app.post("/api/v1/auth/logout-all", Some(&one.access), json!({}))
        .await
        .assert_ok();
    for t in [&one, &two] {
        app.get("/api/v1/auth/me", Some(&t.access))
            .await
            .assert_error(401);
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": t.refresh}),
        )
        .await
        .assert_error(401);
    }
    let fresh = Tokens::from(&app.login("lou@example.com", PW).await);
    app.get("/api/v1/auth/me", Some(&fresh.access))
        .await
        .assert_ok();
    app.stop().await;
}

async fn change_fullname_updates_the_profile(backend: Backend) {
    let app = TestApp::start(backend).await;
    let t = app.signed_up("kim@example.com", PW).await;
    let r = app
        .post(
            "/api/v1/auth/change-fullname",
            Some(&t.access),
            json!({"fullname": "  Kim Lee  "}),
        )
        .await;
    r.assert_ok();
    assert_eq!(r.data()["fullname"], "Kim Lee");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&t.access)).await.data()["fullname"],
        "Kim Lee"
    );
    app.post(
        "/api/v1/auth/change-fullname",
        Some(&t.access),
        json!({"fullname": "K"}),
    )
    .await
    .assert_error(422);
    app.post(
        "/api/v1/auth/change-fullname",
        None,
        json!({"fullname": "Kim"}),
    )
    .await
    .assert_error(401);
    app.stop().await;
}

async fn a_refresh_token_is_never_an_access_token(backend: Backend) {
    let app = TestApp::start(backend).await;
    let t = app.signed_up("ria@example.com", PW).await;
    let r = app.get("/api/v1/auth/me", Some(&t.refresh)).await;
    r.assert_error(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    for bad in ["", "Basic abc", "Bearer", "Bearer not.a.jwt"] {
        let req = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("authorization", bad);
        app.send(req).await.assert_error(401);
    }
    // A token signed with another key is refused.
    let forged = {
        let other = ironhand_core::auth::TokenSigner::new(b"some-other-secret-of-enough-length!!");
        let claims = ironhand_core::auth::AccessClaims {
            sub: ironhand_core::UserId::parse(&t.user_id).expect("id"),
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + 600,
            iat: time::OffsetDateTime::now_utc().unix_timestamp(),
            jti: "forged".into(),
            kind: "access".into(),
            ver: 0,
            fam: uuid::Uuid::nil(),
        };
        other.sign(&claims).expect("sign")
    };
    app.get("/api/v1/auth/me", Some(&forged))
        .await
        .assert_error(401);
    app.stop().await;
}

#[tokio::test]
async fn raising_the_argon2_cost_upgrades_hashes_at_the_next_login_without_ending_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::support::settings_for(Backend::Sqlite, dir.path()).await;
    let before = TestApp::from_settings(settings.clone()).await;
    let session = before.signed_up("cost@example.com", PW).await;
    before.stop().await;

    settings.auth.argon2_memory_kib = 2048;
    let after = TestApp::from_settings(settings.clone()).await;
    after.login("cost@example.com", PW).await.assert_ok();
    // The old session is untouched…
    after
        .get("/api/v1/auth/me", Some(&session.access))
        .await
        .assert_ok();
    // …the stored hash now has the new cost, and the password still works.
    let store = ironhand_db::connect(&settings.database_url(), false)
        .await
        .expect("db");
    let email = ironhand_core::user::Email::parse("cost@example.com").expect("email");
    let user = store.user_by_email(&email).await.expect("q").expect("user");
    assert!(
        user.password_hash
            .as_deref()
            .is_some_and(|h| h.contains("m=2048,")),
        "{:?}",
        user.password_hash
    );
    after.login("cost@example.com", PW).await.assert_ok();
    after.stop().await;
}

async fn logout_ends_every_access_token_of_the_login(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first = app.signed_up("leo@example.com", PW).await;
    let elsewhere = Tokens::from(&app.login("leo@example.com", PW).await);
    let second = app.refreshed(&first.refresh).await;
    app.post("/api/v1/auth/logout", Some(&second.access), json!({}))
        .await
        .assert_ok();
    // The access token issued before the refresh dies with the one presented…
    for access in [&first.access, &second.access] {
        app.get("/api/v1/auth/me", Some(access))
            .await
            .assert_error(401);
    }
    for refresh in [&first.refresh, &second.refresh] {
        app.refresh(refresh).await.assert_error(401);
    }
    // …and another login of the same account carries on.
    app.get("/api/v1/auth/me", Some(&elsewhere.access))
        .await
        .assert_ok();
    app.refreshed(&elsewhere.refresh).await;
    app.stop().await;
}

async fn reuse_after_the_grace_window_ends_every_access_token_of_the_login(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.auth.refresh_reuse_grace_secs = 1).await;
    let first = app.signed_up("ria@example.com", PW).await;
    let elsewhere = Tokens::from(&app.login("ria@example.com", PW).await);
    let second = app.refreshed(&first.refresh).await;
    app.get("/api/v1/auth/me", Some(&second.access))
        .await
        .assert_ok();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // The rotated token, presented after the window, is theft: the whole login ends.
    app.refresh(&first.refresh).await.assert_error(401);
    for access in [&first.access, &second.access] {
        app.get("/api/v1/auth/me", Some(access))
            .await
            .assert_error(401);
    }
    app.refresh(&second.refresh).await.assert_error(401);
    app.get("/api/v1/auth/me", Some(&elsewhere.access))
        .await
        .assert_ok();
    app.stop().await;
}

async fn two_tabs_racing_one_refresh_both_carry_on_with_the_same_successor(backend: Backend) {
    let app = TestApp::start(backend).await;
    let login = app.signed_up("tab@example.com", PW).await;
    // One tab refreshes; the other, which sent the same token a moment later, gets the same
    // successor (and an access token of its own) instead of ending the login.
    let one = app.refreshed(&login.refresh).await;
    let two = app.refreshed(&login.refresh).await;
    assert_eq!(two.refresh, one.refresh);
    for access in [&one.access, &two.access] {
        app.get("/api/v1/auth/me", Some(access)).await.assert_ok();
    }
    // Truly at once: every request carries on, all with one successor.
    let replies = futures::future::join_all((0..4).map(|_| app.refresh(&one.refresh))).await;
    let successors: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| Tokens::from(r.assert_ok()).refresh)
        .collect();
    assert_eq!(successors.len(), 1, "{successors:?}");
    let newest = successors.into_iter().next().expect("a successor");
    // A client that kept its first token gets the login's newest token, not a spent one…
    assert_eq!(app.refreshed(&login.refresh).await.refresh, newest);
    // …and the login goes on.
    let next = app.refreshed(&newest).await;
    app.get("/api/v1/auth/me", Some(&next.access))
        .await
        .assert_ok();
    app.stop().await;
}

async fn change_password_ends_every_access_token_of_the_login(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first = app.signed_up("cam@example.com", PW).await;
    let second = app.refreshed(&first.refresh).await;
    app.post(
        "/api/v1/auth/change-password",
        Some(&second.access),
        json!({"old_password": PW, "new_password": "new password 1"}),
    )
    .await
    .assert_ok();
    for access in [&first.access, &second.access] {
        app.get("/api/v1/auth/me", Some(access))
            .await
            .assert_error(401);
    }
    // The login that changed the password continues through its refresh token.
    let renewed = app.refreshed(&second.refresh).await;
    app.get("/api/v1/auth/me", Some(&renewed.access))
        .await
        .assert_ok();
    app.stop().await;
}
