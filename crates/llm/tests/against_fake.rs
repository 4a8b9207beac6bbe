//! The real client against the real fake server: streaming, tool calls, retries, faults and
//! odd provider shapes.

use futures::future::join_all;
use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, FakeToolCall, Response, Scenario};
use ironhand_llm::{
    ChatMessage, ChatModel, ChatRequest, Completion, LlmClient, LlmConfig, LlmError, StreamEvent,
    ToolChoice, ToolSpec,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn config(base_url: &str) -> LlmConfig {
    LlmConfig {
        base_url: base_url.to_string(),
        api_key: None,
        model: "fake-model".into(),
        request_timeout: Duration::from_secs(2),
        stall_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(10),
        max_retries: 3,
        retry_base_delay: Duration::from_millis(10),
        max_output_tokens: Some(512),
        temperature: Some(0.2),
        context_window: 32_000,
    }
}

fn client(fake: &FakeLlm) -> LlmClient {
    LlmClient::new(config(&fake.url())).expect("valid config")
}

async fn fake_with(name: &str, scenario: Scenario) -> FakeLlm {
    FakeLlm::start(FakeLlmScenarios::new().with(name, scenario))
        .await
        .expect("fake llm starts")
}

async fn bundled() -> FakeLlm {
    FakeLlm::start(FakeLlmScenarios::bundled().expect("bundled scenarios"))
        .await
        .expect("fake llm starts")
}

fn ask(scenario: &str, text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::system("You are a test."),
            ChatMessage::user(format!("[scenario:{scenario}] {text}")),
        ],
        tools: Vec::new(),
        tool_choice: None,
    }
}

/// Runs one completion and returns it with every event the client sent.
async fn complete(
    client: &LlmClient,
    request: &ChatRequest,
) -> (Result<Completion, LlmError>, Vec<StreamEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = client.complete(request, Some(&tx)).await;
    drop(tx);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (result, events)
}

fn deltas(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.clone()),
            StreamEvent::Restart => None,
        })
        .collect()
}

fn plan_tool() -> ToolSpec {
    ToolSpec {
        name: "create_plan".into(),
        description: "Create the plan for the task.".into(),
        parameters: json!({"type": "object", "properties": {"title": {"type": "string"}}}),
    }
}

#[tokio::test]
async fn text_arrives_in_deltas_that_add_up_to_the_answer() {
    let answer = "Hello there, this answer is streamed in small pieces. Ünïcödé too ✓";
    let fake = fake_with("hello", Scenario::new().then(Response::text(answer))).await;
    let (result, events) = complete(&client(&fake), &ask("hello", "hi")).await;
    let completion = result.expect("completion");
    assert_eq!(completion.content, answer);
    let deltas = deltas(&events);
    assert!(deltas.len() > 5, "{deltas:?}");
    assert_eq!(deltas.concat(), answer);
    assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    let usage = completion.usage;
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"]["include_usage"], json!(true));
    assert_eq!(body["model"], json!("fake-model"));
    assert_eq!(body["max_tokens"], json!(512));
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    assert!(!requests[0].has_authorization());
    assert_eq!(requests[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn tool_call_arguments_split_mid_json_are_reassembled() {
    let args = json!({"title": "Hello", "goal": "Say \"hi\" {twice}", "language": "en",
                      "steps": [{"id": "1", "description": "écrire"}, {"id": "2", "description": "run"}]});
    let fake = fake_with(
        "plan",
        Scenario::new().then(Response::tool_call("create_plan", args.clone())),
    )
    .await;
    let mut request = ask("plan", "make a plan");
    request.tools = vec![plan_tool()];
    request.tool_choice = Some(ToolChoice::Required);
    let (result, events) = complete(&client(&fake), &request).await;
    let completion = result.expect("completion");
    assert!(deltas(&events).is_empty());
    assert_eq!(completion.content, "");
    assert_eq!(completion.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(completion.tool_calls.len(), 1);
    let call = &completion.tool_calls[0];
    assert_eq!(call.name, "create_plan");
    assert!(call.id.starts_with("call_"), "{}", call.id);
    let parsed: Value = serde_json::from_str(&call.arguments).expect("arguments are JSON");
    assert_eq!(parsed, args);

    let sent = &fake.requests()[0];
    assert!(sent.offers_tool("create_plan"));
    assert_eq!(sent.body["tool_choice"], json!("required"));
    assert_eq!(sent.body["tools"][0]["type"], json!("function"));
}

#[tokio::test]
async fn parallel_tool_calls_come_back_in_order_with_their_text() {
    let fake = fake_with(
        "parallel",
        Scenario::new().then(Response::Reply(ironhand_fakes::llm::Reply {
            content: Some("Doing both.".into()),
            ..ironhand_fakes::llm::Reply::tool_calls(vec![
                FakeToolCall::new("file_read", json!({"file": "/home/ubuntu/a.txt"})),
                FakeToolCall::new(
                    "shell_exec",
                    json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "ls"}),
                ),
            ])
        })),
    )
    .await;
    let (result, events) = complete(&client(&fake), &ask("parallel", "go")).await;
    let completion = result.expect("completion");
    assert_eq!(deltas(&events).concat(), "Doing both.");
    let names: Vec<&str> = completion
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["file_read", "shell_exec"]);
    assert_ne!(completion.tool_calls[0].id, completion.tool_calls[1].id);
    let second: Value = serde_json::from_str(&completion.tool_calls[1].arguments).expect("json");
    assert_eq!(second["command"], json!("ls"));
}

#[tokio::test]
async fn server_errors_are_retried_until_the_answer_comes() {
    let fake = fake_with(
        "flaky",
        Scenario::new()
            .then(Response::status(500, 2))
            .then(Response::text("finally")),
    )
    .await;
    let (result, events) = complete(&client(&fake), &ask("flaky", "x")).await;
    assert_eq!(result.expect("completion").content, "finally");
    assert!(
        !events.contains(&StreamEvent::Restart),
        "no deltas were sent before the retries"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_stream_cut_after_deltas_restarts_and_retries() {
    let answer = "This answer is cut once, then sent whole.";
    let fake = fake_with(
        "cut",
        Scenario::new()
            .then(Response::disconnect(4))
            .then(Response::text(answer)),
    )
    .await;
    let (result, events) = complete(&client(&fake), &ask("cut", "x")).await;
    assert_eq!(result.expect("completion").content, answer);
    let restart = events
        .iter()
        .position(|e| *e == StreamEvent::Restart)
        .expect("a Restart event");
    assert!(restart > 0, "deltas came before the restart: {events:?}");
    assert_eq!(deltas(&events[restart + 1..]).concat(), answer);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn rate_limits_wait_as_long_as_retry_after_says() {
    let fake = fake_with(
        "limited",
        Scenario::new()
            .then(Response::rate_limited(1, 1))
            .then(Response::text("ok")),
    )
    .await;
    let started = Instant::now();
    let (result, _) = complete(&client(&fake), &ask("limited", "x")).await;
    assert_eq!(result.expect("completion").content, "ok");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = fake_with(
        "bad",
        Scenario::new()
            .then(Response::status(400, 1))
            .then(Response::text("never")),
    )
    .await;
    let (result, _) = complete(&client(&fake), &ask("bad", "x")).await;
    match result {
        Err(LlmError::Client {
            status: 400,
            message,
        }) => {
            assert!(message.contains("HTTP 400"), "{message}")
        }
        other => panic!("expected a client error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let fake = bundled().await;
    let (result, _) = complete(&client(&fake), &ask("garbage", "x")).await;
    assert!(matches!(result, Err(LlmError::Protocol(_))), "{result:?}");
    assert_eq!(fake.requests().len(), 1, "protocol errors are not retried");
}

#[tokio::test]
async fn keep_alives_without_data_trip_the_stall_watchdog() {
    let fake = bundled().await;
    let mut config = config(&fake.url());
    config.max_retries = 0;
    let client = LlmClient::new(config).expect("client");
    let started = Instant::now();
    let (result, _) = complete(&client, &ask("stall", "x")).await;
    let took = started.elapsed();
    assert_eq!(result, Err(LlmError::Stalled));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn a_stalled_stream_is_retried() {
    let fake = bundled().await;
    let (result, _) = complete(&client(&fake), &ask("stall", "x")).await;
    assert_eq!(result.expect("completion").content, "Sorry for the wait.");
}

#[tokio::test]
async fn slow_headers_time_out() {
    let fake = fake_with(
        "slow",
        Scenario::new()
            .then(Response::delay(1500))
            .then(Response::text("late")),
    )
    .await;
    let mut config = config(&fake.url());
    config.request_timeout = Duration::from_millis(200);
    config.max_retries = 0;
    let client = LlmClient::new(config).expect("client");
    let started = Instant::now();
    let (result, _) = complete(&client, &ask("slow", "x")).await;
    assert_eq!(result, Err(LlmError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn retries_give_up_after_max_retries() {
    let fake = bundled().await;
    let mut config = config(&fake.url());
    config.max_retries = 2;
    let client = LlmClient::new(config).expect("client");
    let (result, _) = complete(&client, &ask("always_500", "x")).await;
    assert!(
        matches!(result, Err(LlmError::Server { status: 500, .. })),
        "{result:?}"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_server_that_ignores_streaming_answers_json() {
    let body = json!({
        "id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "shell_exec", "arguments": "{\"command\":\"ls\"}"}}]}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    });
    let fake = fake_with(
        "json",
        Scenario::new().then(Response::Raw {
            body: body.to_string(),
            content_type: Some("application/json".into()),
            status: 200,
            delay_ms: 0,
        }),
    )
    .await;
    let (result, events) = complete(&client(&fake), &ask("json", "x")).await;
    let completion = result.expect("completion");
    assert_eq!(completion.content, "Checking.");
    assert_eq!(deltas(&events).concat(), "Checking.");
    assert_eq!(completion.tool_calls[0].id, "call_9");
    assert_eq!(completion.tool_calls[0].arguments, "{\"command\":\"ls\"}");
    assert_eq!(completion.usage.total_tokens, 18);
    assert_eq!(completion.finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn lenient_about_what_real_providers_send() {
    // CRLF line ends, comments, `finish_reason: ""`, `usage: {}`, `content: null`,
    // `reasoning_content`, unknown fields, a tool call with no index, id or arguments and
    // its name split across deltas.
    let lines = [
        ": OPENROUTER PROCESSING",
        "",
        r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"hmm"},"finish_reason":""}],"usage":{}}"#,
        "",
        r#"data: {"choices":[{"delta":{"content":"Hi "},"finish_reason":""}],"provider":"x"}"#,
        "",
        r#"data: {"choices":[{"delta":{"content":"there"},"finish_reason":null}]}"#,
        "",
        r#"data: {"choices":[{"delta":{"tool_calls":[{"function":{"name":"file_","arguments":""}}]}}]}"#,
        "",
        r#"data: {"choices":[{"delta":{"tool_calls":[{"function":{"name":"read"}}]}}]}"#,
        "",
        r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
        "",
        "data: [DONE]",
        "",
    ]
    .map(|l| format!("{l}\r"));
    let fake = fake_with("odd", Scenario::new().then(Response::raw_stream(lines))).await;
    let (result, events) = complete(&client(&fake), &ask("odd", "x")).await;
    let completion = result.expect("completion");
    assert_eq!(completion.content, "Hi there");
    assert_eq!(deltas(&events), ["Hi ", "there"]);
    assert_eq!(completion.tool_calls.len(), 1);
    assert_eq!(completion.tool_calls[0].name, "file_read");
    assert_eq!(completion.tool_calls[0].arguments, "{}");
    assert!(!completion.tool_calls[0].id.is_empty());
    assert_eq!(completion.finish_reason.as_deref(), Some("tool_calls"));
    // No usage from the provider: estimated.
    assert!(completion.usage.prompt_tokens > 0);
    assert_eq!(
        completion.usage.total_tokens,
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    );
}

#[tokio::test]
async fn usage_only_in_the_last_chunk_and_no_done_marker() {
    let lines = [
        r#"data: {"choices":[{"delta":{"content":"ok"},"finish_reason":""}]}"#,
        "",
        r#"data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":"5","completion_tokens":1}}"#,
        "",
    ];
    let fake = fake_with("tail", Scenario::new().then(Response::raw_stream(lines))).await;
    let (result, _) = complete(&client(&fake), &ask("tail", "x")).await;
    let completion = result.expect("completion");
    assert_eq!(completion.content, "ok");
    assert_eq!(completion.usage.total_tokens, 6);
}

#[tokio::test]
async fn an_error_inside_the_stream_is_reported() {
    let lines = [
        r#"data: {"choices":[{"delta":{"content":"par"}}]}"#,
        "",
        r#"data: {"error":{"message":"upstream overloaded","code":502}}"#,
        "",
    ];
    let fake = fake_with("midway", Scenario::new().then(Response::raw_stream(lines))).await;
    let mut config = config(&fake.url());
    config.max_retries = 0;
    let client = LlmClient::new(config).expect("client");
    let (result, _) = complete(&client, &ask("midway", "x")).await;
    match result {
        Err(e @ LlmError::Server { status: 502, .. }) => {
            assert!(e.to_string().contains("upstream overloaded"), "{e}")
        }
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_provider_that_rejects_stream_options_is_asked_again_without_them() {
    let fake = fake_with(
        "old_server",
        Scenario::new()
            .then(Response::Status {
                status: 400,
                retry_after: None,
                times: 1,
                message: Some("Unrecognized request argument supplied: stream_options".into()),
                delay_ms: 0,
            })
            .then(Response::text("first"))
            .then(Response::text("second")),
    )
    .await;
    let mut config = config(&fake.url());
    config.max_retries = 0;
    let client = LlmClient::new(config).expect("client");
    let request = ask("old_server", "x");
    assert_eq!(
        complete(&client, &request).await.0.expect("first").content,
        "first"
    );
    assert_eq!(
        complete(&client, &request).await.0.expect("second").content,
        "second"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].body.get("stream_options").is_some());
    assert!(requests[1].body.get("stream_options").is_none());
    assert!(
        requests[2].body.get("stream_options").is_none(),
        "remembered"
    );
}

#[tokio::test]
async fn parallel_conversations_keep_their_own_cursors() {
    let fake = fake_with(
        "turns",
        Scenario::new()
            .then(Response::text("first"))
            .then(Response::text("second")),
    )
    .await;
    let client = client(&fake);
    let runs = (0..6).map(|i| {
        let client = &client;
        async move {
            let request = ask("turns", &format!("conversation {i}"));
            let a = client.complete(&request, None).await.expect("first");
            let b = client.complete(&request, None).await.expect("second");
            (a.content, b.content)
        }
    });
    for (a, b) in join_all(runs).await {
        assert_eq!((a.as_str(), b.as_str()), ("first", "second"));
    }
    // A third turn is past the end of the scenario.
    let (result, _) = complete(&client, &ask("turns", "conversation 0")).await;
    match result {
        Err(LlmError::Client {
            status: 400,
            message,
        }) => {
            assert!(message.contains("scenario turns exhausted"), "{message}")
        }
        other => panic!("expected exhaustion, got {other:?}"),
    }
    assert_eq!(fake.requests_for("conversation 3").len(), 2);
}

#[tokio::test]
async fn unknown_scenarios_and_defaults() {
    let fake = fake_with("greet", Scenario::new().then(Response::text("hello")))
        .await
        .with_default("greet");
    let (result, _) = complete(&client(&fake), &ask("nope", "x")).await;
    match result {
        Err(LlmError::Client {
            status: 400,
            message,
        }) => {
            assert!(message.contains("unknown scenario nope"), "{message}")
        }
        other => panic!("expected unknown scenario, got {other:?}"),
    }
    let plain = ChatRequest {
        messages: vec![ChatMessage::user("no token here")],
        ..ChatRequest::default()
    };
    let (result, _) = complete(&client(&fake), &plain).await;
    assert_eq!(result.expect("default scenario").content, "hello");
}

#[tokio::test]
async fn the_api_key_goes_in_the_bearer_header_and_never_into_errors() {
    let key = "sk-test-0123456789-secret";
    let fake = fake_with("auth", Scenario::new().then(Response::text("in")))
        .await
        .require_api_key(key);
    let mut good = config(&fake.url());
    good.api_key = Some(key.into());
    let client = LlmClient::new(good.clone()).expect("client");
    let (result, _) = complete(&client, &ask("auth", "x")).await;
    assert_eq!(result.expect("authorised").content, "in");
    assert_eq!(
        fake.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {key}").as_str())
    );

    let wrong_key = "sk-wrong-9876543210";
    let mut wrong = good.clone();
    wrong.api_key = Some(wrong_key.into());
    let (result, _) = complete(&LlmClient::new(wrong).expect("client"), &ask("auth", "y")).await;
    let err = result.expect_err("wrong key is refused");
    assert!(
        matches!(err, LlmError::Client { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(wrong_key));

    // A provider that echoes the key back in its message.
    let echo = fake_with(
        "echo",
        Scenario::new().then(Response::Status {
            status: 401,
            retry_after: None,
            times: 1,
            message: Some(format!(
                "Incorrect API key provided: {key}. {}",
                "x".repeat(2000)
            )),
            delay_ms: 0,
        }),
    )
    .await;
    let mut echo_config = good.clone();
    echo_config.base_url = echo.url();
    let (result, _) = complete(
        &LlmClient::new(echo_config).expect("client"),
        &ask("echo", "x"),
    )
    .await;
    let shown = result.expect_err("refused").to_string();
    assert!(!shown.contains(key), "{shown}");
    assert!(
        shown.len() < 400,
        "provider messages are truncated: {} chars",
        shown.len()
    );

    // Nobody listening.
    let port = echo.addr().port();
    drop(echo);
    drop(fake);
    let mut gone = good;
    gone.base_url = format!("http://127.0.0.1:{port}/v1");
    gone.max_retries = 0;
    let (result, _) = complete(&LlmClient::new(gone).expect("client"), &ask("auth", "x")).await;
    let err = result.expect_err("nothing listens");
    assert!(matches!(err, LlmError::Connection(_)), "{err:?}");
    assert!(!err.to_string().contains(key));
}

#[tokio::test]
async fn the_two_steps_scenario_walks_the_agent_protocol() {
    let fake = bundled().await;
    let client = client(&fake);
    let mut request = ask("two_steps", "write and run a python program");
    let mut names = Vec::new();
    for _ in 0..8 {
        let completion = client.complete(&request, None).await.expect("tool call");
        assert_eq!(completion.tool_calls.len(), 1);
        let call = &completion.tool_calls[0];
        serde_json::from_str::<Value>(&call.arguments).expect("arguments are JSON");
        names.push(call.name.clone());
        request.messages.push(ChatMessage::assistant_with_tools(
            None,
            completion.tool_calls.clone(),
        ));
        request.messages.push(ChatMessage::tool_result(
            call.id.clone(),
            "{\"success\": true}",
        ));
    }
    assert_eq!(
        names,
        [
            "create_plan",
            "file_write",
            "shell_exec",
            "complete_step",
            "update_plan",
            "message_notify_user",
            "complete_step",
            "update_plan"
        ]
    );
    let summary = client.complete(&request, None).await.expect("summary");
    assert!(summary.tool_calls.is_empty());
    assert!(summary.content.contains("hello.py"));
    // The assistant turns went out in the OpenAI shape.
    let last = fake.requests().pop().expect("requests");
    let assistant = &last.messages()[2];
    assert_eq!(assistant["content"], Value::Null);
    assert_eq!(
        assistant["tool_calls"][0]["function"]["name"],
        json!("create_plan")
    );
    assert_eq!(last.messages()[3]["role"], json!("tool"));
}
