//! Administrators: the first account (or `user create --admin`) manages the others.

use crate::support::{Backend, TestApp, Tokens};
use serde_json::json;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    admins_list_find_deactivate_and_activate_users,
    non_admins_are_refused_admin_routes
);

const PW: &str = "long enough pw";

async fn admins_list_find_deactivate_and_activate_users(backend: Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.signed_up("boss@example.com", PW).await;
    let worker = app.signed_up("worker@example.com", PW).await;
    app.signed_up("other@example.org", PW).await;

    let list = app
        .get("/api/v1/auth/users?page=1&limit=2", Some(&admin.access))
        .await;
    list.assert_ok();
    assert_eq!(list.data()["total"], 3);
    assert_eq!(list.data()["users"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        list.data()["users"][0]["email"],
        "other@example.org",
        "newest first"
    );
    let found = app
        .get("/api/v1/auth/users?q=WORKER", Some(&admin.access))
        .await;
    assert_eq!(found.data()["total"], 1);
    assert_eq!(found.data()["users"][0]["id"], json!(worker.user_id));

    let one = app
        .get(
            &format!("/api/v1/auth/user/{}", worker.user_id),
            Some(&admin.access),
        )
        .await;
    one.assert_ok();
    assert_eq!(one.data()["email"], "worker@example.com");
    app.get(
        &format!("/api/v1/auth/user/{}", uuid::Uuid::now_v7()),
        Some(&admin.access),
    )
    .await
    .assert_error(404);

    // Nobody deactivates themselves.
    app.post(
        &format!("/api/v1/auth/user/{}/deactivate", admin.user_id),
        Some(&admin.access),
        json!({}),
    )
    .await
    .assert_error(400);

    // Deactivation ends the user's sessions (every access token, those issued before a
    // refresh too) and blocks login.
    let refreshed = app.refreshed(&worker.refresh).await;
    app.post(
        &format!("/api/v1/auth/user/{}/deactivate", worker.user_id),
        Some(&admin.access),
        json!({}),
    )
    .await
    .assert_ok();
    for t in [&worker, &refreshed] {
        app.get("/api/v1/auth/me", Some(&t.access))
            .await
            .assert_error(401);
        app.refresh(&t.refresh).await.assert_error(401);
    }
    let blocked = app.login("worker@example.com", PW).await;
    blocked.assert_error(403);
    assert!(blocked.msg().contains("deactivated"));
    // A wrong password on a deactivated account still says only "invalid".
    app.login("worker@example.com", "wrong password")
        .await
        .assert_error(401);
    let shown = app
        .get(
            &format!("/api/v1/auth/user/{}", worker.user_id),
            Some(&admin.access),
        )
        .await;
    assert_eq!(shown.data()["is_active"], false);

    app.post(
        &format!("/api/v1/auth/user/{}/activate", worker.user_id),
        Some(&admin.access),
        json!({}),
    )
    .await
    .assert_ok();
    let back = Tokens::from(&app.login("worker@example.com", PW).await);
    app.get("/api/v1/auth/me", Some(&back.access))
        .await
        .assert_ok();
    app.post(
        &format!("/api/v1/auth/user/{}/activate", uuid::Uuid::now_v7()),
        Some(&admin.access),
        json!({}),
    )
    .await
    .assert_error(404);
    app.stop().await;
}

async fn non_admins_are_refused_admin_routes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.signed_up("first@example.com", PW).await;
    let user = app.signed_up("second@example.com", PW).await;
    app.get("/api/v1/auth/users", Some(&user.access))
        .await
        .assert_error(403);
    app.get(
        &format!("/api/v1/auth/user/{}", admin.user_id),
        Some(&user.access),
    )
    .await
    .assert_error(403);
    app.post(
        &format!("/api/v1/auth/user/{}/deactivate", admin.user_id),
        Some(&user.access),
        json!({}),
    )
    .await
    .assert_error(403);
    app.get("/api/v1/auth/users", None).await.assert_error(401);
    // Still active.
    app.get("/api/v1/auth/me", Some(&admin.access))
        .await
        .assert_ok();
    app.stop().await;
}
