//! The agent end to end: the real server, the real worker, agent, LLM client and sandbox,
//! against a fake OpenAI-compatible model that follows a script per conversation.

mod browser;
mod docker;
mod failures;
mod files;
mod lifecycle;
pub mod mcp;
pub use mcp::mcp_servers_dir;
mod runs;
mod stored_text;
mod tools;

use crate::sse::SseEvent;
use crate::support::{Backend, TestApp, Tokens};
use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, Scenario};
use ironhand_server::Settings;
use serde_json::Value;

pub struct AgentApp {
    pub app: TestApp,
    pub llm: FakeLlm,
    pub user: Tokens,
}

/// Settings that point the server at `llm` with short timeouts and small sandbox limits.
pub fn agent_settings(s: &mut Settings, llm: &FakeLlm) {
    s.llm.base_url = Some(llm.url());
    s.llm.model = Some("fake-model".into());
    s.llm.stall_timeout_secs = 2;
    s.llm.request_timeout_secs = 10;
    s.llm.total_timeout_secs = 30;
    s.llm.max_retries = 2;
    s.sandbox.foreground_wait_secs = 5;
    s.sandbox.command_timeout_secs = 20;
    s.sandbox.cpu_seconds = 20;
    s.sandbox.memory_mb = 1024;
}

impl AgentApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let scenarios = FakeLlmScenarios::bundled().expect("bundled scenarios load");
        let llm = FakeLlm::start(scenarios).await.expect("fake llm");
        let app = TestApp::start_with(backend, |s| {
            agent_settings(s, &llm);
            tweak(s);
        })
        .await;
        let user = app
            .signed_up("agent-user@example.com", "correct horse")
            .await;
        Self { app, llm, user }
    }

    /// Registers `scenario` under a fresh name and returns a task text that selects it.
    pub fn script(&self, scenario: Value, words: &str) -> String {
        let name = format!("s{}", uuid::Uuid::new_v4().simple());
        self.llm.add_scenario(
            name.clone(),
            Scenario::from_value(scenario).expect("scenario"),
        );
        format!("[scenario:{name}] {words}")
    }

    pub async fn session(&self) -> String {
        self.app.new_session(&self.user.access).await
    }

    /// Sends `message` and reads the stream to its end.
    pub async fn run(&self, session: &str, message: &str) -> Vec<SseEvent> {
        let mut stream = self
            .app
            .chat(
                &self.user.access,
                session,
                serde_json::json!({ "message": message }),
            )
            .await
            .unwrap_or_else(|r| panic!("chat refused: {} {}", r.status, r.body));
        stream.collect().await
    }

    pub async fn history(&self, session: &str) -> Value {
        let r = self
            .app
            .get(
                &format!("/api/v1/sessions/{session}"),
                Some(&self.user.access),
            )
            .await;
        r.assert_ok();
        r.data().clone()
    }
}

/// A plan of one step, then the given executor answers, then a summary.
pub fn one_step(executor: Vec<Value>, summary: &str) -> Value {
    let mut responses = vec![
        serde_json::json!({"tool_calls": [{"name": "create_plan", "arguments": {
        "title": "A test task", "goal": "g", "language": "en",
        "steps": [{"id": "1", "description": "Do the thing"}]}}]}),
    ];
    responses.extend(executor);
    responses.push(call("update_plan", serde_json::json!({"steps": []})));
    responses.push(serde_json::json!({"content": summary}));
    serde_json::json!({ "responses": responses })
}

pub fn call(name: &str, arguments: Value) -> Value {
    serde_json::json!({"tool_calls": [{"name": name, "arguments": arguments}]})
}

pub fn complete(result: &str) -> Value {
    call(
        "complete_step",
        serde_json::json!({"success": true, "result": result, "attachments": []}),
    )
}

/// `(event, key detail)` pairs, for readable order assertions.
pub fn trace(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event != "message_delta")
        .map(|e| match e.event.as_str() {
            "tool" => format!(
                "tool:{}:{}",
                e.data["function"].as_str().unwrap_or(""),
                e.data["status"].as_str().unwrap_or("")
            ),
            "step" => format!(
                "step:{}:{}",
                e.data["id"].as_str().unwrap_or(""),
                e.data["status"].as_str().unwrap_or("")
            ),
            "message" => format!("message:{}", e.data["role"].as_str().unwrap_or("")),
            other => other.to_string(),
        })
        .collect()
}

/// The results the model read, in order.
pub fn tool_results(a: &AgentApp, task: &str) -> Vec<Value> {
    let requests = a.llm.requests_for(task);
    let seen = |r: &&ironhand_fakes::llm::ReceivedRequest| {
        r.messages().iter().filter(|m| m["role"] == "tool").count()
    };
    requests
        .iter()
        .max_by_key(seen)
        .expect("requests")
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| serde_json::from_str(m["content"].as_str().unwrap_or("")).ok())
        .collect()
}
