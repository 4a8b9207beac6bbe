//! Sessions without the agent: creating, listing, reading, sharing, deleting — and the
//! ownership matrix of GAP-SESSION-001 across every session route.

use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    a_new_session_is_listed_read_and_deleted,
    every_session_route_answers_404_to_strangers_and_anonymous_callers,
    sharing_opens_a_read_only_view_and_unsharing_closes_it,
    malformed_session_ids_and_bodies_are_refused_cleanly,
);

async fn a_new_session_is_listed_read_and_deleted(backend: Backend) {
    let app = TestApp::start(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    let first = app.new_session(&alice.access).await;
    let second = app.new_session(&alice.access).await;

    let list = app.get("/api/v1/sessions", Some(&alice.access)).await;
    list.assert_ok();
    let sessions = list.data()["sessions"]
        .as_array()
        .expect("sessions")
        .clone();
    let ids: Vec<&str> = sessions
        .iter()
        .map(|s| s["session_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [second.as_str(), first.as_str()],
        "newest activity first"
    );
    let item = &sessions[0];
    assert_eq!(item["status"], "pending");
    assert_eq!(item["unread_message_count"], 0);
    assert_eq!(item["is_shared"], false);
    assert!(item["latest_message"].is_null() && item["latest_message_at"].is_null());

    // Paging: the next page starts strictly before the last item's activity.
    let page = app
        .get("/api/v1/sessions?limit=1", Some(&alice.access))
        .await;
    let last = page.data()["sessions"][0]["updated_at"]
        .as_f64()
        .expect("updated_at");
    let last_id = page.data()["sessions"][0]["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    // Both sessions may share a millisecond: the id keeps the page boundary exact.
    let next = app
        .get(
            &format!("/api/v1/sessions?limit=1&before={last}&before_id={last_id}"),
            Some(&alice.access),
        )
        .await;
    next.assert_ok();
    assert_eq!(next.data()["sessions"][0]["session_id"], json!(first));

    let detail = app
        .get(&format!("/api/v1/sessions/{first}"), Some(&alice.access))
        .await;
    detail.assert_ok();
    assert_eq!(detail.data()["session_id"], json!(first));
    assert_eq!(detail.data()["status"], "pending");
    assert_eq!(detail.data()["events"], json!([]));

    app.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{first}"),
        Some(&alice.access),
        None,
    )
    .await
    .assert_ok();
    app.get(&format!("/api/v1/sessions/{first}"), Some(&alice.access))
        .await
        .assert_error(404);
    let list = app.get("/api/v1/sessions", Some(&alice.access)).await;
    assert_eq!(list.data()["sessions"].as_array().map(Vec::len), Some(1));
}

/// Every owner-only route, as (method, path template, body).
fn owner_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/sessions/{id}", None),
        (Method::DELETE, "/api/v1/sessions/{id}", None),
        (Method::POST, "/api/v1/sessions/{id}/stop", None),
        (
            Method::POST,
            "/api/v1/sessions/{id}/chat",
            Some(json!({"message": "hi"})),
        ),
        (Method::POST, "/api/v1/sessions/{id}/chat", Some(json!({}))),
        (
            Method::POST,
            "/api/v1/sessions/{id}/shell",
            Some(json!({"session_id": "main"})),
        ),
        (
            Method::POST,
            "/api/v1/sessions/{id}/file",
            Some(json!({"file": "/home/ubuntu/x"})),
        ),
        (
            Method::POST,
            "/api/v1/sessions/{id}/clear_unread_message_count",
            None,
        ),
        (Method::POST, "/api/v1/sessions/{id}/share", None),
        (Method::DELETE, "/api/v1/sessions/{id}/share", None),
        (
            Method::POST,
            "/api/v1/sessions/{id}/takeover",
            Some(json!({"action": "hand_back"})),
        ),
        (
            Method::POST,
            "/api/v1/sessions/{id}/vnc/signed-url",
            Some(json!({"expire_minutes": 5})),
        ),
    ]
}

/// Routes anyone may read once the owner shares the session.
fn shared_routes() -> Vec<&'static str> {
    vec![
        "/api/v1/sessions/shared/{id}",
        "/api/v1/sessions/{id}/share/files",
        "/api/v1/sessions/{id}/files",
    ]
}

async fn every_session_route_answers_404_to_strangers_and_anonymous_callers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let stranger = app.signed_up("stranger@example.com", "correct horse").await;
    for shared in [false, true] {
        let id = app.new_session(&owner.access).await;
        if shared {
            app.call(
                Method::POST,
                &format!("/api/v1/sessions/{id}/share"),
                Some(&owner.access),
                None,
            )
            .await
            .assert_ok();
        }
        for (method, template, body) in owner_routes() {
            let path = template.replace("{id}", &id);
            // A stranger: the same 404 as a session that does not exist, with no data.
            let r = app
                .call(method.clone(), &path, Some(&stranger.access), body.clone())
                .await;
            r.assert_error(404);
            assert!(
                r.data().is_null(),
                "{method} {path} leaked data: {}",
                r.body
            );
            // Anonymous: 401 (a token is required), never the session.
            let r = app.call(method.clone(), &path, None, body.clone()).await;
            r.assert_error(401);
            assert!(r.data().is_null());
        }
        for template in shared_routes() {
            let path = template.replace("{id}", &id);
            for token in [None, Some(stranger.access.as_str())] {
                let r = app.get(&path, token).await;
                if shared {
                    r.assert_ok();
                } else {
                    r.assert_error(404);
                    assert!(r.data().is_null());
                }
            }
            // The owner always reads their own files; the public views need sharing.
            let r = app.get(&path, Some(&owner.access)).await;
            if shared || template.ends_with("/files") && !template.contains("/share/") {
                r.assert_ok();
            } else {
                r.assert_error(404);
            }
        }
        // Nothing a stranger did changed the session.
        let detail = app
            .get(&format!("/api/v1/sessions/{id}"), Some(&owner.access))
            .await;
        detail.assert_ok();
        assert_eq!(detail.data()["is_shared"], json!(shared));
        assert_eq!(detail.data()["events"], json!([]));
    }
    // An unknown id answers like a stranger's.
    let missing = uuid::Uuid::now_v7();
    app.get(&format!("/api/v1/sessions/{missing}"), Some(&owner.access))
        .await
        .assert_error(404);
    // And a stranger's list never shows the owner's sessions.
    let list = app.get("/api/v1/sessions", Some(&stranger.access)).await;
    assert_eq!(list.data()["sessions"], json!([]));
}

async fn sharing_opens_a_read_only_view_and_unsharing_closes_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{id}/share"),
            Some(&owner.access),
            None,
        )
        .await;
    r.assert_ok();
    assert_eq!(r.data(), &json!({"session_id": id, "is_shared": true}));
    let public = app
        .get(&format!("/api/v1/sessions/shared/{id}"), None)
        .await;
    public.assert_ok();
    assert_eq!(public.data()["session_id"], json!(id));
    assert_eq!(public.data()["is_shared"], true);
    let list = app.get("/api/v1/sessions", Some(&owner.access)).await;
    assert_eq!(list.data()["sessions"][0]["is_shared"], true);

    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}/share"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(r.data(), &json!({"session_id": id, "is_shared": false}));
    app.get(&format!("/api/v1/sessions/shared/{id}"), None)
        .await
        .assert_error(404);
}

async fn malformed_session_ids_and_bodies_are_refused_cleanly(backend: Backend) {
    let app = TestApp::start(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    app.get("/api/v1/sessions/not-a-uuid", Some(&alice.access))
        .await
        .assert_error(404);
    app.get("/api/v1/sessions/shared/%00", None)
        .await
        .assert_error(404);
    app.get("/api/v1/sessions?limit=0", Some(&alice.access))
        .await
        .assert_error(422);
    app.get("/api/v1/sessions?limit=abc", Some(&alice.access))
        .await
        .assert_error(422);
    app.get("/api/v1/sessions?before=-1", Some(&alice.access))
        .await
        .assert_error(422);
    app.get("/api/v1/sessions?before_id=x", Some(&alice.access))
        .await
        .assert_error(422);
    let id = app.new_session(&alice.access).await;
    let chat = |body: Value| {
        let app = &app;
        let token = alice.access.clone();
        let id = id.clone();
        async move { app.chat(&token, &id, body).await }
    };
    for (body, field) in [
        (json!({"message": "x".repeat(100_001)}), "message"),
        (
            json!({"message": "hi", "client_message_id": ""}),
            "client_message_id",
        ),
        (
            json!({"message": "hi", "client_message_id": "x".repeat(200)}),
            "client_message_id",
        ),
        (json!({"event_id": "yesterday"}), "event_id"),
        (json!({"event_id": "5"}), "event_id"),
        (json!({"message": 5}), "message"),
    ] {
        match chat(body).await {
            Ok(_) => panic!("a stream opened for an invalid {field}"),
            Err(r) => {
                r.assert_error(422);
                assert!(r.body.to_string().contains(field), "{}", r.body);
            }
        }
    }
    app.post(
        &format!("/api/v1/sessions/{id}/shell"),
        Some(&alice.access),
        json!({}),
    )
    .await
    .assert_error(422);
    app.post(
        &format!("/api/v1/sessions/{id}/file"),
        Some(&alice.access),
        json!({"file": ""}),
    )
    .await
    .assert_error(422);
    // Nothing was started by any of that.
    let detail = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice.access))
        .await;
    assert_eq!(detail.data()["events"], json!([]));
    assert_eq!(detail.data()["status"], "pending");
}

/// One user cannot hold an unbounded number of event streams open on an instance; closing
/// one frees its slot, and other users are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_per_user_are_capped() {
    let app = TestApp::start(Backend::Sqlite).await;
    let alice = app.signed_up("streams@example.com", "correct horse").await;
    let open_list = || {
        app.request(Method::POST, "/api/v1/sessions", Some(&alice.access), None)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let res = open_list().await.expect("stream");
        assert_eq!(res.status(), 200);
        streams.push(res);
    }
    let refused = open_list().await.expect("answer");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let id = app.new_session(&alice.access).await;
    let chat = app.chat(&alice.access, &id, json!({})).await;
    assert!(
        matches!(chat, Err(ref r) if r.status == 429),
        "chat streams count too"
    );
    // Another user has their own slots.
    let bob = app
        .signed_up("bob-streams@example.com", "correct horse")
        .await;
    let res = app
        .request(Method::POST, "/api/v1/sessions", Some(&bob.access), None)
        .send()
        .await
        .expect("bob");
    assert_eq!(res.status(), 200);
    // Closing one frees a slot (the server notices the closed connection).
    drop(streams.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let res = open_list().await.expect("answer");
        if res.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
