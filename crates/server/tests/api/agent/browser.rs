//! The agent's browser end to end: a page the agent serves inside its sandbox, opened,
//! read, filled in and clicked through the browser tools, with a screenshot after every
//! call that downloads as an image; the host's own services stay out of the browser's reach.

use super::{AgentApp, call, complete, one_step, tool_results, trace};
use crate::sse::SseEvent;
use crate::support::{Backend, path_of};
use serde_json::{Value, json};

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    the_agent_browses_a_page_it_serves_in_its_sandbox,
    the_user_takes_the_browser_over_and_the_run_waits_until_handed_back,
);

const PAGE: &str = "<html><head><title>Greeter</title></head><body><h1>marker-5150</h1>\
<input id=\"name\" placeholder=\"Your name\">\
<button onclick=\"document.getElementById('out').textContent='You typed: '+document.getElementById('name').value\">Greet</button>\
<p id=\"out\">nothing yet</p></body></html>";

fn browser_calls(events: &[SseEvent]) -> Vec<&SseEvent> {
    events
        .iter()
        .filter(|e| {
            e.event == "tool" && e.data["name"] == "browser" && e.data["status"] == "called"
        })
        .collect()
}

async fn the_agent_browses_a_page_it_serves_in_its_sandbox(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| {
        s.sandbox.network = true;
        s.sandbox.memory_mb = 2048;
        s.sandbox.cpu_seconds = 60;
    })
    .await;
    let api_port = a.app.addr.port();
    let serve = "cd /home/ubuntu/site && (python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &) \
        && for i in $(seq 100); do python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/')\" 2>/dev/null && break; sleep 0.1; done; echo serving";
    let task = a.script(
        one_step(
            vec![
                call(
                    "file_write",
                    json!({"file": "/home/ubuntu/site/index.html", "content": PAGE}),
                ),
                call(
                    "shell_exec",
                    json!({"id": "web", "exec_dir": "/home/ubuntu", "command": serve}),
                ),
                call("browser_navigate", json!({"url": "http://127.0.0.1:8765/"})),
                call(
                    "browser_input",
                    json!({"index": 0, "text": "hello-ironhand", "press_enter": false}),
                ),
                call("browser_click", json!({"index": 1})),
                call("browser_view", json!({})),
                call(
                    "browser_navigate",
                    json!({"url": format!("http://127.0.0.1:{api_port}/api/v1/health")}),
                ),
                call("browser_click", json!({"index": 999})),
                complete("greeted"),
            ],
            "The page greeted me.",
        ),
        "open the greeter page",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(
        trace(&events).last().map(String::as_str),
        Some("done"),
        "{:?}",
        trace(&events)
    );
    let requests = a.llm.requests_for(&task);
    assert!(
        requests[1].offers_tool("browser_navigate"),
        "the browser tools are offered"
    );

    // What the model read, call by call.
    let results = tool_results(&a, &task);
    let text = |i: usize| results.get(i).map(Value::to_string).unwrap_or_default();
    assert!(text(1).contains("serving"), "{}", text(1));
    assert_eq!(results[2]["success"], true, "navigate: {}", text(2));
    assert!(text(2).contains("marker-5150"), "{}", text(2));
    assert!(
        text(2).contains("Greet"),
        "the button is listed: {}",
        text(2)
    );
    assert_eq!(results[3]["success"], true, "input: {}", text(3));
    assert_eq!(results[4]["success"], true, "click: {}", text(4));
    assert!(text(5).contains("You typed: hello-ironhand"), "{}", text(5));
    assert_eq!(
        results[6]["success"],
        false,
        "the API's own port is not reachable: {}",
        text(6)
    );
    assert_eq!(
        results[7]["success"],
        false,
        "an unknown index: {}",
        text(7)
    );
    for r in &results {
        assert!(r.to_string().chars().count() <= 16_500, "capped");
    }

    // A screenshot after every call, downloadable as an image by its signed URL.
    let shots = browser_calls(&events);
    assert_eq!(shots.len(), 6, "{:?}", trace(&events));
    let mut downloaded = 0;
    for shot in &shots {
        let Some(url) = shot.data["content"]["screenshot"].as_str() else {
            continue;
        };
        let reply = a
            .app
            .client
            .get(a.app.url(&path_of(url)))
            .send()
            .await
            .expect("download");
        assert_eq!(reply.status(), 200, "{url}");
        assert_eq!(
            reply.headers()["content-type"].to_str().unwrap_or(""),
            "image/jpeg"
        );
        let bytes = reply.bytes().await.expect("bytes");
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
        downloaded += 1;
    }
    assert!(
        downloaded >= 5,
        "{downloaded} of {} carried a screenshot",
        shots.len()
    );

    // The history replays them with fresh signatures too, and screenshots are not among
    // the session's files.
    let files = a
        .app
        .get(
            &format!("/api/v1/sessions/{session}/files"),
            Some(&a.user.access),
        )
        .await;
    let listed = files.data().as_array().cloned().unwrap_or_default();
    assert!(
        listed.iter().all(|f| f["content_type"] != "image/jpeg"),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|f| f["filename"] == "index.html"),
        "{listed:?}"
    );
}

async fn the_user_takes_the_browser_over_and_the_run_waits_until_handed_back(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| {
        s.sandbox.memory_mb = 2048;
        s.sandbox.cpu_seconds = 60;
    })
    .await;
    let mut shell = call(
        "shell_exec",
        json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "echo after"}),
    );
    // Time to take over between the browser call and the next one.
    shell["delay_ms"] = json!(1500);
    let task = a.script(
        one_step(
            vec![
                call("browser_navigate", json!({"url": "about:blank"})),
                shell,
                complete("done"),
            ],
            "Done.",
        ),
        "use the browser, then the shell",
    );
    let session = a.session().await;
    let token = a.user.access.clone();
    let takeover = |action: &'static str| {
        let (app, token, session) = (&a.app, token.clone(), session.clone());
        async move {
            app.call(
                reqwest::Method::POST,
                &format!("/api/v1/sessions/{session}/takeover"),
                Some(&token),
                Some(json!({ "action": action })),
            )
            .await
        }
    };
    let mut stream = a
        .app
        .chat(&token, &session, json!({ "message": task }))
        .await
        .unwrap_or_else(|r| panic!("chat refused: {} {}", r.status, r.body));
    let mut seen = Vec::new();
    // Wait for the browser call to finish, then take over.
    loop {
        let event = stream
            .next_within(std::time::Duration::from_secs(30))
            .await
            .expect("an event");
        let done = event.event == "tool"
            && event.data["function"] == "browser_navigate"
            && event.data["status"] == "called";
        seen.push(event);
        if done {
            break;
        }
    }
    let taken = takeover("take").await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    // While the user drives, the shell call does not start.
    let mut paused = Vec::new();
    let quiet_until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(Some(event)) = tokio::time::timeout_at(quiet_until, stream.next()).await {
        paused.push(event);
    }
    assert!(
        paused
            .iter()
            .any(|e| e.event == "takeover" && e.data["status"] == "user"),
        "{:?}",
        trace(&paused)
    );
    assert!(
        !paused
            .iter()
            .any(|e| e.event == "tool" && e.data["function"] == "shell_exec"),
        "nothing runs while the user drives: {:?}",
        trace(&paused)
    );
    let back = takeover("hand_back").await;
    assert_eq!(back.status, 200, "{}", back.body);
    let rest = stream.collect().await;
    assert_eq!(
        trace(&rest).last().map(String::as_str),
        Some("done"),
        "{:?}",
        trace(&rest)
    );
    assert!(
        rest.iter()
            .any(|e| e.event == "takeover" && e.data["status"] == "agent")
    );
    assert!(
        rest.iter()
            .any(|e| e.event == "tool" && e.data["function"] == "shell_exec")
    );
    // The model was told the page may have changed.
    let told = a.llm.requests_for(&task).iter().any(|r| {
        r.messages().iter().any(|m| {
            m["role"] == "tool"
                && m["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("took control of the browser")
        })
    });
    assert!(told, "the model hears about the take-over");
    // The history keeps both changes of hands, in order.
    let history = a
        .app
        .get(&format!("/api/v1/sessions/{session}"), Some(&token))
        .await;
    let statuses: Vec<String> = history.data()["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["event"] == "takeover")
        .map(|e| e["data"]["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(statuses, vec!["user", "agent"]);
}
