//! Files through the agent: an attachment reaches the sandbox's `upload/`, a file the agent
//! writes and names in its result comes back on the answer and downloads, the session's
//! file list follows, and shared readers may fetch exactly that session's files.

use super::{AgentApp, call, one_step};
use crate::support::{Backend, path_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    attachments_go_into_the_sandbox_and_results_come_back_as_files,
    a_reply_to_the_agents_question_is_free_even_at_the_limit,
);

async fn attachments_go_into_the_sandbox_and_results_come_back_as_files(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let app = &a.app;
    let token = a.user.access.clone();
    let up = app
        .upload(&token, "scores.csv", b"name,score\nada,3\n")
        .await;
    up.assert_ok();
    let csv_id = up.data()["file_id"].as_str().expect("id").to_string();
    let report = "# Report\n\nada scored 3\n";
    let task = a.script(
        one_step(
            vec![
                call("shell_exec", json!({"id": "s", "exec_dir": "/home/ubuntu", "command": "ls upload && cat upload/scores.csv"})),
                call("file_write", json!({"file": "/home/ubuntu/out/report.md", "content": report})),
                call("complete_step", json!({"success": true, "result": "wrote the report", "attachments": ["out/report.md", "missing.txt"]})),
            ],
            "The report is attached.",
        ),
        "summarise the scores",
    );
    let session = a.session().await;
    let mut stream = app
        .chat(&token, &session, json!({"message": task, "attachments": [{"file_id": csv_id, "filename": "whatever.csv"}]}))
        .await
        .unwrap_or_else(|r| panic!("chat refused: {} {}", r.status, r.body));
    let events = stream.collect().await;

    // The user's message lists the attachment, with a working signed URL.
    let user_message = events
        .iter()
        .find(|e| e.event == "message" && e.data["role"] == "user")
        .expect("user message");
    let attached = &user_message.data["attachments"][0];
    assert_eq!(attached["filename"], "scores.csv");
    let (status, _, body) = app
        .get_bytes(
            &path_of(attached["file_url"].as_str().expect("url")),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"name,score\nada,3\n".as_slice())
    );

    // The command saw the file in upload/.
    let shell = events
        .iter()
        .find(|e| {
            e.event == "tool" && e.data["function"] == "shell_exec" && e.data["status"] == "called"
        })
        .expect("shell call");
    let output = shell.data["content"]["console"][0]["output"]
        .as_str()
        .unwrap_or_default();
    assert!(
        output.contains("scores.csv") && output.contains("ada,3"),
        "{output}"
    );

    // The answer carries the report (the missing file is named, not attached).
    let answer = events
        .iter()
        .rev()
        .find(|e| e.event == "message" && e.data["role"] == "assistant")
        .expect("answer");
    let files = answer.data["attachments"].as_array().expect("attachments");
    assert_eq!(files.len(), 1, "{}", answer.data);
    assert_eq!(files[0]["filename"], "report.md");
    assert_eq!(files[0]["content_type"], "text/markdown");
    assert!(
        answer.data["content"]
            .as_str()
            .is_some_and(|c| c.contains("missing.txt")),
        "{}",
        answer.data["content"]
    );
    let (status, headers, body) = app
        .get_bytes(
            &path_of(files[0]["file_url"].as_str().expect("url")),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, report.as_bytes())
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );

    // The history replays the answer with fresh URLs.
    let history = a.history(&session).await;
    let replayed = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .find(|e| e["event"] == "message")
        .expect("message");
    assert!(
        replayed["data"]["attachments"][0]["file_url"]
            .as_str()
            .is_some()
    );

    // The session's files: the upload and the report, once (written, then named).
    let listed = app
        .get(&format!("/api/v1/sessions/{session}/files"), Some(&token))
        .await;
    listed.assert_ok();
    let mut names: Vec<&str> = listed
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["report.md", "scores.csv"]);
    let report_id = files[0]["file_id"].as_str().expect("id").to_string();

    // Shared readers may fetch this session's files, and only while it is shared.
    app.get(&format!("/api/v1/sessions/{session}/share/files"), None)
        .await
        .assert_error(404);
    assert_eq!(
        app.get_bytes(&format!("/api/v1/files/{report_id}/download"), None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    app.post(
        &format!("/api/v1/sessions/{session}/share"),
        Some(&token),
        json!({}),
    )
    .await
    .assert_ok();
    let shared = app
        .get(&format!("/api/v1/sessions/{session}/share/files"), None)
        .await;
    shared.assert_ok();
    assert_eq!(shared.data().as_array().map(Vec::len), Some(2));
    assert!(shared.data()[0]["file_url"].as_str().is_some());
    assert_eq!(
        app.get_bytes(&format!("/api/v1/files/{report_id}/download"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    let stranger = app.signed_up("stranger@example.com", "correct horse").await;
    assert_eq!(
        app.get_bytes(
            &format!("/api/v1/files/{report_id}/download"),
            Some(&stranger.access),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    app.get(
        &format!("/api/v1/files/{report_id}/info"),
        Some(&stranger.access),
    )
    .await
    .assert_error(404);
    app.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{session}/share"),
        Some(&token),
        None,
    )
    .await
    .assert_ok();
    assert_eq!(
        app.get_bytes(&format!("/api/v1/files/{report_id}/download"), None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Deleting the session deletes its files.
    app.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{session}"),
        Some(&token),
        None,
    )
    .await
    .assert_ok();
    app.get(&format!("/api/v1/files/{report_id}/info"), Some(&token))
        .await
        .assert_error(404);
    app.get(&format!("/api/v1/files/{csv_id}/info"), Some(&token))
        .await
        .assert_error(404);

    // Someone else's file cannot be attached.
    let other_session = a.session().await;
    let mine = app.upload(&stranger.access, "s.txt", b"stranger's").await;
    let theirs = mine.data()["file_id"].as_str().expect("id");
    let refused = app
        .chat(
            &token,
            &other_session,
            json!({"message": "use it", "attachments": [{"file_id": theirs}]}),
        )
        .await
        .err()
        .expect("refused");
    refused.assert_error(422);
}

/// GAP-BILLING-001 with the agent: the task counts, the answer to its question does not,
/// so a user at the limit can still finish the work they started.
async fn a_reply_to_the_agents_question_is_free_even_at_the_limit(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| {
        s.billing.enforce_limits = true;
        for plan in &mut s.billing.plans {
            if plan.id == "free" {
                plan.monthly_agent_runs_limit = 1;
            }
        }
    })
    .await;
    let task = a.script(
        one_step(
            vec![
                call("message_ask_user", json!({"text": "Which colour?"})),
                call(
                    "complete_step",
                    json!({"success": true, "result": "noted", "attachments": []}),
                ),
            ],
            "Noted.",
        ),
        "ask me a colour",
    );
    let session = a.session().await;
    let first = a.run(&session, &task).await;
    assert_eq!(first.last().map(|e| e.event.as_str()), Some("wait"));
    let usage = a
        .app
        .get("/api/v1/billing/subscription", Some(&a.user.access))
        .await;
    assert_eq!(
        (
            usage.data()["monthly_agent_runs"].as_i64(),
            usage.data()["monthly_agent_runs_limit"].as_i64()
        ),
        (Some(1), Some(1))
    );
    // A new task elsewhere is refused…
    let other = a.session().await;
    let refused = a
        .app
        .chat(&a.user.access, &other, json!({"message": "another task"}))
        .await
        .err()
        .expect("402");
    refused.assert_error(402);
    // …but the reply goes through and finishes the run, uncounted.
    let second = a.run(&session, "green").await;
    assert_eq!(second.last().map(|e| e.event.as_str()), Some("done"));
    let usage = a
        .app
        .get("/api/v1/billing/subscription", Some(&a.user.access))
        .await;
    assert_eq!(usage.data()["monthly_agent_runs"], 1);
}
