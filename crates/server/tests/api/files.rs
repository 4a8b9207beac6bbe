//! Files through the API: upload checks that protect the server, ownership on every route,
//! downloads that never render inline, ranges, signed URLs and the storage quota.

use crate::support::{Backend, TestApp, path_of};
use ironhand_core::files::UrlSigner;
use reqwest::StatusCode;
use serde_json::json;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\x01\0\x18\xdd\x8d\xb4\0\0\0\0IEND\xaeB`\x82";

async fn files_app(backend: Backend) -> TestApp {
    TestApp::start_with(backend, |s| {
        s.files.max_upload_bytes = 1024 * 1024;
        s.files.quota_bytes = 3 * 1024 * 1024 / 2;
    })
    .await
}

async fn upload_download_ranges_signed_urls_and_delete(backend: Backend) {
    let app = files_app(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    let text = "line one\nline two\nÜnïcödé\n";
    let r = app
        .upload(&alice.access, "../../etc/notes.txt", text.as_bytes())
        .await;
    r.assert_ok();
    let info = r.data().clone();
    assert_eq!(
        info["filename"], "notes.txt",
        "only the last component is kept"
    );
    assert_eq!(info["content_type"], "text/plain");
    assert_eq!(info["size"], text.len());
    assert_eq!(info["metadata"]["sha256"].as_str().map(str::len), Some(64));
    assert!(
        info["upload_date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    let id = info["file_id"].as_str().expect("id").to_string();

    let again = app
        .get(&format!("/api/v1/files/{id}/info"), Some(&alice.access))
        .await;
    again.assert_ok();
    assert_eq!(again.data()["file_id"], id.as_str());

    // Whole download: an attachment, never sniffed or rendered.
    let (status, headers, body) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&alice.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, text.as_bytes());
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        h("content-disposition").starts_with("attachment; filename=\"notes.txt\""),
        "{}",
        h("content-disposition")
    );
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert!(h("content-security-policy").contains("sandbox"));
    assert_eq!(h("accept-ranges"), "bytes");
    assert_eq!(h("content-type"), "text/plain; charset=utf-8");

    // Ranges.
    let (status, headers, body) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&alice.access),
            Some("bytes=5-7"),
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, b"one");
    assert_eq!(
        headers["content-range"],
        format!("bytes 5-7/{}", text.len()).as_str()
    );
    let (status, _, body) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&alice.access),
            Some("bytes=-4"),
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, "dé\n".as_bytes())
    );
    let (status, headers, _) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&alice.access),
            Some("bytes=999-"),
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        headers["content-range"],
        format!("bytes */{}", text.len()).as_str()
    );

    // The signed URL in the info works without a token; a signed URL on request too.
    let url = path_of(info["file_url"].as_str().expect("file_url"));
    let (status, _, body) = app.get_bytes(&url, None, None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, text.as_bytes()));
    let signed = app
        .post(
            &format!("/api/v1/files/{id}/signed-url"),
            Some(&alice.access),
            json!({"expire_minutes": 5}),
        )
        .await;
    signed.assert_ok();
    assert_eq!(signed.data()["expires_in"], 300);
    let signed_path = path_of(signed.data()["signed_url"].as_str().expect("url"));
    assert_eq!(
        app.get_bytes(&signed_path, None, None).await.0,
        StatusCode::OK
    );
    for minutes in [0, 16, -1] {
        app.post(
            &format!("/api/v1/files/{id}/signed-url"),
            Some(&alice.access),
            json!({"expire_minutes": minutes}),
        )
        .await
        .assert_error(422);
    }

    // Tampering: another file's path, a later expiry, a past expiry (signed with the real
    // key), a signature made with the JWT key, no signature.
    let other = app.upload(&alice.access, "other.txt", b"other").await;
    let other_id = other.data()["file_id"].as_str().expect("id").to_string();
    let moved = signed_path.replace(&id, &other_id);
    app.get(&moved, None).await.assert_error(404);
    let (path, query) = signed_path.split_once('?').expect("query");
    let expires: i64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("expires="))
        .expect("expires")
        .parse()
        .expect("n");
    let later = signed_path.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    app.get(&later, None).await.assert_error(404);
    let key = std::fs::read_to_string(
        app.settings
            .server
            .data_dir
            .join("secrets/files_signing_key"),
    )
    .expect("generated key");
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let expired = format!(
        "{path}?{}",
        UrlSigner::new(key.trim().as_bytes()).query(path, past)
    );
    app.get(&expired, None).await.assert_error(404);
    let fresh = format!(
        "{path}?{}",
        UrlSigner::new(key.trim().as_bytes()).query(path, past + 600)
    );
    assert_eq!(
        app.get_bytes(&fresh, None, None).await.0,
        StatusCode::OK,
        "the same key and a future expiry work"
    );
    let jwt = std::fs::read_to_string(app.settings.server.data_dir.join("secrets/jwt_secret"))
        .expect("jwt key");
    assert_ne!(jwt.trim(), key.trim(), "download URLs have their own key");
    let forged = format!(
        "{path}?{}",
        UrlSigner::new(jwt.trim().as_bytes()).query(path, past + 600)
    );
    app.get(&forged, None).await.assert_error(404);
    app.get(path, None).await.assert_error(404);

    // Delete: gone everywhere, bytes removed.
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{id}"),
        Some(&alice.access),
        None,
    )
    .await
    .assert_ok();
    app.get(&format!("/api/v1/files/{id}/info"), Some(&alice.access))
        .await
        .assert_error(404);
    app.get(&url, None).await.assert_error(404);
    let stored: Vec<_> = walk(&app.settings.server.data_dir.join("files"));
    assert_eq!(
        stored.len(),
        1,
        "only the other file's bytes remain: {stored:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn another_users_file_is_not_found_on_any_route(backend: Backend) {
    let app = files_app(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    let bob = app.signed_up("bob@example.com", "correct horse").await;
    let id = app.upload(&alice.access, "a.txt", b"alice's").await.data()["file_id"]
        .as_str()
        .expect("id")
        .to_string();
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/files/{id}/info"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/files/{id}/download"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/files/{id}/signed-url"),
            Some(json!({"expire_minutes": 5})),
        ),
        (reqwest::Method::DELETE, format!("/api/v1/files/{id}"), None),
    ] {
        for token in [Some(bob.access.as_str()), None] {
            let r = app.call(method.clone(), &path, token, body.clone()).await;
            let expected = if token.is_none() && method != reqwest::Method::GET
                || token.is_none() && path.ends_with("/info")
            {
                401
            } else {
                404
            };
            r.assert_error(expected);
            assert!(
                r.data().is_null(),
                "{method} {path}: no data in a refusal: {}",
                r.body
            );
            assert!(!r.body.to_string().contains("a.txt"));
        }
    }
    // Still there for its owner; random and malformed ids are plain 404s.
    app.get(&format!("/api/v1/files/{id}/info"), Some(&alice.access))
        .await
        .assert_ok();
    app.get(
        &format!("/api/v1/files/{}/info", uuid::Uuid::new_v4()),
        Some(&alice.access),
    )
    .await
    .assert_error(404);
    app.get("/api/v1/files/not-an-id/info", Some(&alice.access))
        .await
        .assert_error(404);
}

async fn hostile_types_and_renamed_executables_are_refused(backend: Backend) {
    let app = files_app(backend).await;
    let u = app.signed_up("types@example.com", "correct horse").await;
    let mut pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    pe.resize(512, 0);
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(256, 0);
    let gif = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;<script>alert(1)</script>";
    for (name, bytes) in [
        ("holiday.png", pe.as_slice()),
        ("setup.exe", pe.as_slice()),
        ("readme.txt", elf.as_slice()),
        ("photo.png", gif.as_slice()),
        ("notes.txt", PNG),
        ("data.csv", b"a,b\n\0\0\0\x01binary".as_slice()),
    ] {
        let r = app.upload(&u.access, name, bytes).await;
        r.assert_error(415);
        assert!(r.data().is_null());
    }
    // Nothing was kept of the refused ones.
    assert_eq!(
        app.state
            .store
            .storage_used(ironhand_core::UserId::parse(&u.user_id).expect("id"))
            .await
            .expect("q"),
        0
    );
    let png = app.upload(&u.access, "pixel.png", PNG).await;
    png.assert_ok();
    assert_eq!(png.data()["content_type"], "image/png");
    // HTML is accepted as a file but only ever downloaded as opaque bytes.
    let html = app
        .upload(
            &u.access,
            "page.html",
            b"<html><script>alert(document.cookie)</script></html>",
        )
        .await;
    html.assert_ok();
    let id = html.data()["file_id"].as_str().expect("id");
    let (status, headers, _) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    // Not multipart, or no `file` part.
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&u.access)
                .json(&json!({"file": "x"})),
        )
        .await;
    r.assert_error(415);
    let (ct, body) = crate::support::multipart("attachment", "a.txt", b"hello");
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&u.access)
                .header("content-type", ct)
                .body(body),
        )
        .await;
    r.assert_error(422);
}

async fn uploads_past_the_limit_are_refused_while_streaming(backend: Backend) {
    let app = files_app(backend).await;
    let u = app.signed_up("big@example.com", "correct horse").await;
    let limit = 1024 * 1024;
    // Exactly the limit passes; one byte more is refused.
    app.upload(&u.access, "exact.txt", &vec![b'a'; limit])
        .await
        .assert_ok();
    let r = app
        .upload_refused_early(&u.access, "over.txt", &vec![b'a'; limit + 1])
        .await;
    r.assert_error(413);
    assert!(r.msg().contains("1 MiB"), "the limit is named: {}", r.msg());
    // A declared length over the limit is refused before the body is read.
    let r = app.post_oversized("/api/v1/files", false).await;
    assert!(matches!(r.status.as_u16(), 401 | 413), "{}", r.status);
    // A 2 GiB stream without a declared length: refused after about the limit, not at the end.
    let (reply, written, took) = app.upload_stream(&u.access, "huge.txt", 2 << 30).await;
    reply.assert_error(413);
    assert!(
        written < 64 << 20,
        "the server stopped reading early; {written} bytes were written"
    );
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    // Nothing of it stayed on disk.
    let staging = app.settings.server.data_dir.join("tmp/uploads");
    assert_eq!(walk(&staging).len(), 0, "staged parts are removed");
}

async fn the_storage_quota_counts_every_file(backend: Backend) {
    let app = files_app(backend).await;
    let u = app.signed_up("quota@example.com", "correct horse").await;
    app.upload(&u.access, "one.txt", &vec![b'a'; 1024 * 1024])
        .await
        .assert_ok();
    let r = app
        .upload_refused_early(&u.access, "two.txt", &vec![b'b'; 700 * 1024])
        .await;
    r.assert_error(413);
    assert!(r.msg().contains("quota"), "{}", r.msg());
    // Within what is left it still works; another user has their own quota.
    app.upload(&u.access, "small.txt", &vec![b'c'; 100 * 1024])
        .await
        .assert_ok();
    // Fill the quota exactly; then even an empty file is refused.
    let left = 3 * 1024 * 1024 / 2 - (1024 * 1024 + 100 * 1024);
    app.upload(&u.access, "rest.txt", &vec![b'd'; left])
        .await
        .assert_ok();
    app.upload_refused_early(&u.access, "empty.txt", b"")
        .await
        .assert_error(413);
    let v = app.signed_up("quota2@example.com", "correct horse").await;
    app.upload(&v.access, "two.txt", &vec![b'b'; 700 * 1024])
        .await
        .assert_ok();
}

async fn files_on_an_s3_store_work_the_same(backend: Backend) {
    let s3 = ironhand_fakes::s3::S3Server::start()
        .await
        .expect("s3 server");
    let (endpoint, bucket, access, secret) = (
        s3.endpoint().to_string(),
        s3.bucket().to_string(),
        s3.access_key().to_string(),
        s3.secret_key().to_string(),
    );
    let on_s3 = |secret: String| {
        let (endpoint, bucket, access) = (endpoint.clone(), bucket.clone(), access.clone());
        move |s: &mut ironhand_server::Settings| {
            s.files.storage = "s3".into();
            s.files.s3.endpoint = Some(endpoint);
            s.files.s3.bucket = Some(bucket);
            s.files.s3.access_key_id = Some(access);
            s.files.s3.secret_access_key = Some(secrecy::SecretString::from(secret));
            s.files.s3.prefix = Some("tenant-a".into());
        }
    };
    // Wrong credentials: readiness says the file store is the problem.
    let broken = TestApp::start_with(backend, on_s3("not-the-secret".into())).await;
    let ready = broken.get("/api/v1/ready", None).await;
    ready.assert_error(503);
    assert_eq!(ready.data()["checks"]["files"], "unavailable");
    assert!(ready.msg().contains("file store"), "{}", ready.msg());
    drop(broken);
    let app = TestApp::start_with(backend, on_s3(secret)).await;
    let ready = app.get("/api/v1/ready", None).await;
    ready.assert_ok();
    assert_eq!(ready.data()["checks"]["files"], "ok (s3)");
    let u = app.signed_up("s3@example.com", "correct horse").await;
    let content: Vec<u8> = (0..300_000u32)
        .map(|i| b"abcdefghij"[(i % 10) as usize])
        .collect();
    let r = app.upload(&u.access, "big.txt", &content).await;
    r.assert_ok();
    let id = r.data()["file_id"].as_str().expect("id").to_string();
    let (status, _, body) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!((status, body.len()), (StatusCode::OK, content.len()));
    assert_eq!(body, content);
    let (status, _, body) = app
        .get_bytes(
            &format!("/api/v1/files/{id}/download"),
            Some(&u.access),
            Some("bytes=100000-100009"),
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, b"abcdefghij".as_slice())
    );
    // Nothing of it on the local disk; the object is in the store, under the prefix.
    assert!(walk(&app.settings.server.data_dir.join("files")).is_empty());
    let objects = walk(s3.data_dir());
    assert!(
        objects
            .iter()
            .any(|p| p.to_string_lossy().contains("tenant-a")),
        "{objects:?}"
    );
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{id}"),
        Some(&u.access),
        None,
    )
    .await
    .assert_ok();
    app.get(&format!("/api/v1/files/{id}/download"), Some(&u.access))
        .await
        .assert_error(404);
    assert!(
        !walk(s3.data_dir())
            .iter()
            .any(|p| p.to_string_lossy().contains("tenant-a")
                && p.is_file()
                && std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) == content.len() as u64),
        "the object is removed"
    );
}

/// A file sent in two sessions belongs to both: deleting one session keeps the other's.
async fn a_file_sent_in_two_sessions_survives_deleting_one(backend: Backend) {
    let app = files_app(backend).await;
    let u = app.signed_up("twice@example.com", "correct horse").await;
    let id = app
        .upload(&u.access, "shared.txt", b"used twice")
        .await
        .data()["file_id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let session = app.new_session(&u.access).await;
        // No model here: the run places its files, stores the message, then explains.
        let mut stream = app
            .chat(
                &u.access,
                &session,
                json!({"message": "use the file", "attachments": [{"file_id": id}]}),
            )
            .await
            .unwrap_or_else(|r| panic!("{} {}", r.status, r.body));
        let events = stream.collect().await;
        let user = events
            .iter()
            .find(|e| e.event == "message")
            .expect("user message");
        assert_eq!(user.data["attachments"][0]["filename"], "shared.txt");
        sessions.push(session);
    }
    let files_of = |s: String| {
        let app = &app;
        let token = u.access.clone();
        async move {
            app.get(&format!("/api/v1/sessions/{s}/files"), Some(&token))
                .await
                .data()
                .clone()
        }
    };
    let first = files_of(sessions[0].clone()).await;
    let second = files_of(sessions[1].clone()).await;
    assert_eq!(
        first[0]["file_id"],
        id.as_str(),
        "the upload belongs to the first session"
    );
    assert_ne!(
        second[0]["file_id"],
        id.as_str(),
        "the second session got its own copy"
    );
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/sessions/{}", sessions[0]),
        Some(&u.access),
        None,
    )
    .await
    .assert_ok();
    let copy = second[0]["file_id"].as_str().expect("id");
    let (status, _, body) = app
        .get_bytes(
            &format!("/api/v1/files/{copy}/download"),
            Some(&u.access),
            None,
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"used twice".as_slice())
    );
}

/// A JPEG-looking body of `len` bytes (the header is what `store_screenshot` checks).
fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0".to_vec();
    bytes.resize(len.saturating_sub(2), 0x42);
    bytes.extend_from_slice(b"\xff\xd9");
    bytes
}

/// The signed screenshot URL of the browser `tool` event in a session's history.
fn screenshot_url(session: &serde_json::Value) -> String {
    let tool = session["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event"] == "tool")
        .expect("the tool event");
    path_of(
        tool["data"]["content"]["screenshot"]
            .as_str()
            .unwrap_or_else(|| panic!("a signed screenshot URL: {tool}")),
    )
}

/// The agent's browser screenshots: stored as files of the session but not listed with
/// them, shown in the `tool` event through a fresh signed URL (never a stored one), readable
/// by the owner and by readers of the shared session only, gone with the session.
async fn browser_screenshots_are_session_files_shown_only_in_their_event(backend: Backend) {
    use ironhand_core::ports::sessions::NewEvent;
    let app = files_app(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    let bob = app.signed_up("bob@example.com", "correct horse").await;
    let session = app.new_session(&alice.access).await;
    let user = ironhand_core::UserId::parse(&alice.user_id).expect("user id");
    let session_id = ironhand_core::SessionId::parse(&session).expect("session id");
    let upload = app.upload(&alice.access, "notes.txt", b"notes").await;
    let upload_id = upload.data()["file_id"].as_str().expect("id").to_string();
    app.state
        .store
        .attach_file(
            ironhand_core::ids::FileId::parse(&upload_id).expect("id"),
            session_id,
        )
        .await
        .expect("attach");

    // What the agent does after a browser call: store the JPEG, name it in the event.
    let bytes = jpeg(20_000);
    let shot = app
        .state
        .files
        .store_screenshot(user, session_id, bytes.clone())
        .await
        .expect("stored");
    assert_eq!(shot.content_type, "image/jpeg");
    assert!(
        shot.filename.starts_with("screenshot-") && shot.filename.ends_with(".jpg"),
        "{}",
        shot.filename
    );
    let data = json!({
        "tool_call_id": "call_1", "name": "browser", "function": "browser_navigate",
        "args": {"url": "https://example.com"}, "status": "called",
        "content": {"screenshot_file_id": shot.id.to_string()},
    });
    app.state
        .store
        .append_event(&NewEvent {
            session_id,
            event: "tool",
            data: &data,
            now: time::OffsetDateTime::now_utc(),
            latest_message: None,
            count_unread: false,
        })
        .await
        .expect("append");

    // Refused: not a JPEG, over the cap, over the quota (1.5 MiB here); nothing is kept.
    let files = &app.state.files;
    let refusal = files
        .store_screenshot(user, session_id, PNG.to_vec())
        .await
        .expect_err("a PNG")
        .to_string();
    assert!(refusal.contains("JPEG"), "{refusal}");
    let refusal = files
        .store_screenshot(user, session_id, jpeg(4 * 1024 * 1024 + 1))
        .await
        .expect_err("too large")
        .to_string();
    assert!(refusal.contains("4 MiB"), "{refusal}");
    let refusal = files
        .store_screenshot(user, session_id, jpeg(3 * 1024 * 1024 / 2))
        .await
        .expect_err("over the quota")
        .to_string();
    assert!(refusal.contains("quota"), "{refusal}");
    assert_eq!(
        app.state.store.storage_used(user).await.expect("q"),
        5 + 20_000,
        "screenshots count against the quota; the refused ones left nothing"
    );
    assert_eq!(walk(&app.settings.server.data_dir.join("files")).len(), 2);

    // Not in the session's file list, for its owner or (shared) anyone.
    let listed = app
        .get(
            &format!("/api/v1/sessions/{session}/files"),
            Some(&alice.access),
        )
        .await;
    listed.assert_ok();
    let ids: Vec<&str> = listed
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["file_id"].as_str())
        .collect();
    assert_eq!(ids, vec![upload_id.as_str()]);

    // The history holds the id; the wire adds a signed URL that downloads the JPEG.
    let stored = app
        .state
        .store
        .events_after(session_id, 0, 10)
        .await
        .expect("events");
    assert!(stored[0].data["content"].get("screenshot").is_none());
    let detail = app
        .get(&format!("/api/v1/sessions/{session}"), Some(&alice.access))
        .await;
    detail.assert_ok();
    let url = screenshot_url(detail.data());
    assert!(url.contains(&shot.id.to_string()), "{url}");
    let (status, headers, body) = app.get_bytes(&url, None, None).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, bytes.as_slice())
    );
    assert_eq!(headers["content-type"], "image/jpeg");
    let download = format!("/api/v1/files/{}/download", shot.id);
    assert_eq!(
        app.get_bytes(&download, Some(&alice.access), None).await.0,
        StatusCode::OK
    );
    for token in [Some(bob.access.as_str()), None] {
        app.get(&download, token).await.assert_error(404);
    }

    // Shared: an anonymous reader loads it the way attachments load; unshared, no more.
    app.call(
        reqwest::Method::POST,
        &format!("/api/v1/sessions/{session}/share"),
        Some(&alice.access),
        None,
    )
    .await
    .assert_ok();
    let shared = app
        .get(&format!("/api/v1/sessions/shared/{session}"), None)
        .await;
    shared.assert_ok();
    let (status, _, body) = app
        .get_bytes(&screenshot_url(shared.data()), None, None)
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, bytes.as_slice())
    );
    assert_eq!(app.get_bytes(&download, None, None).await.0, StatusCode::OK);
    let shared_files = app
        .get(&format!("/api/v1/sessions/{session}/share/files"), None)
        .await;
    assert_eq!(shared_files.data().as_array().map(Vec::len), Some(1));
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/sessions/{session}/share"),
        Some(&alice.access),
        None,
    )
    .await
    .assert_ok();
    app.get(&download, None).await.assert_error(404);

    // Deleting the session takes the screenshot and its bytes with it.
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/sessions/{session}"),
        Some(&alice.access),
        None,
    )
    .await
    .assert_ok();
    app.get(&download, Some(&alice.access))
        .await
        .assert_error(404);
    app.get(&url, None).await.assert_error(404);
    assert!(walk(&app.settings.server.data_dir.join("files")).is_empty());
}

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    browser_screenshots_are_session_files_shown_only_in_their_event,
    a_file_sent_in_two_sessions_survives_deleting_one,
    files_on_an_s3_store_work_the_same,
    upload_download_ranges_signed_urls_and_delete,
    another_users_file_is_not_found_on_any_route,
    hostile_types_and_renamed_executables_are_refused,
    uploads_past_the_limit_are_refused_while_streaming,
    the_storage_quota_counts_every_file,
);
