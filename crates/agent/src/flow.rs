//! Plan-act: the planner makes a plan, the executor works each step with tools until it
//! calls `complete_step`, the planner revises what is left, and a summary closes the run.
//! The phase and conversation live in [`AgentMemory`], saved after every tool result.

use crate::config::AgentConfig;
use crate::context;
use crate::memory::{AgentMemory, Phase, StepResult};
use crate::plan::{PlanRefused, parse_create_plan, parse_steps, truncate_chars};
use crate::prompts;
use crate::tools::{self, ToolContext, ToolOutcome, ToolRegistry, Toolbox};
use ironhand_core::DomainError;
use ironhand_core::files::FileService;
use ironhand_core::ids::FileId;
use ironhand_core::ports::{SandboxProvider, Store};
use ironhand_core::session::event::{PlanStep, StepStatus, ToolStatus};
use ironhand_core::session::takeover::TAKEOVER_EVENT;
use ironhand_core::session::{AgentEvent, EventPublisher, Run, RunKind, TakeoverStatus};
use ironhand_llm::{
    ChatMessage, ChatModel, ChatRequest, Completion, StreamEvent, ToolCall, ToolChoice,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Told to the user when no model is configured.
pub const NO_MODEL: &str = "No language model is configured on this server, so the agent cannot work. \
An operator can set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (any OpenAI-compatible API) and restart.";

/// How a run ended, for the worker to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    /// The agent asked the user something; the reply continues the run.
    Waiting,
    /// An `error` event told the user why.
    Failed,
    /// The user stopped it.
    Cancelled,
    /// This worker let go (shutdown, lost lease, session deleted): say nothing, the run
    /// continues elsewhere or no longer exists.
    Released,
    /// Storage refused to record the run's progress (the cause is in the log); nothing
    /// told the user yet.
    StorageFailed,
}

/// Why a run is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    User,
    Shutdown,
    LostLease,
}

/// A running run's stop switch, shared between the worker and the agent.
#[derive(Default)]
pub struct RunControl {
    token: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl RunControl {
    pub fn stop(&self, reason: StopReason) {
        let mut current = self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.get_or_insert(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

/// Why the flow stopped early.
enum Abort {
    Stopped,
    Failed(String),
    /// The session is gone (deleted): nothing more can be recorded.
    Lost,
    /// Storage refused a write of the run's progress.
    Storage,
}

/// The `called` that closes a tool call left at `calling` (the run stopped during it).
pub(crate) const CALL_INTERRUPTED: &str =
    "Interrupted: the run stopped while this tool was working, and this call got no result.";
const CALL_STOPPED: &str = "Stopped by the user.";

/// How often a paused run asks whether the user handed the browser back.
const TAKEOVER_POLL: Duration = Duration::from_millis(500);
/// Told to the model with the first result after the user handed the browser back.
const TAKEN_OVER_NOTE: &str = " (Meanwhile the user took control of the browser and has \
    handed it back: the page may have changed. Look at it with browser_view before relying on \
    what you saw earlier.)";

pub struct Agent {
    model: Option<Arc<dyn ChatModel>>,
    store: Arc<dyn Store>,
    publisher: EventPublisher,
    sandboxes: Arc<dyn SandboxProvider>,
    tools: ToolRegistry,
    files: Arc<FileService>,
    config: AgentConfig,
}

impl Agent {
    pub fn new(
        model: Option<Arc<dyn ChatModel>>,
        store: Arc<dyn Store>,
        publisher: EventPublisher,
        sandboxes: Arc<dyn SandboxProvider>,
        tools: ToolRegistry,
        files: Arc<FileService>,
        config: AgentConfig,
    ) -> Self {
        Self {
            model,
            store,
            publisher,
            sandboxes,
            tools,
            files,
            config,
        }
    }

    pub fn publisher(&self) -> &EventPublisher {
        &self.publisher
    }

    /// Works on `run` until it ends, pauses or is stopped. Terminal `done`/`wait` events are
    /// the worker's to store, after it has recorded the outcome.
    pub async fn execute(&self, run: &Run, control: &RunControl) -> RunEnd {
        let mut turn = Turn {
            agent: self,
            run,
            control,
            deadline: Instant::now() + self.config.max_run_time,
            tools: self.tools.for_session(ToolContext::new(
                run.session_id,
                run.user_id,
                self.sandboxes.clone(),
                self.files.clone(),
            )),
            memory: AgentMemory::new_task(&run.message, None),
        };
        match turn.work().await {
            Ok(end) => end,
            Err(Abort::Stopped) => match control.reason() {
                Some(StopReason::User) => {
                    let _ = self.close_open_call(run, CALL_STOPPED).await;
                    RunEnd::Cancelled
                }
                _ => RunEnd::Released,
            },
            Err(Abort::Failed(sentence)) => match turn.emit(&AgentEvent::error(sentence)).await {
                Ok(()) => RunEnd::Failed,
                Err(Abort::Lost) => RunEnd::Released,
                Err(_) => RunEnd::StorageFailed,
            },
            Err(Abort::Lost) => RunEnd::Released,
            Err(Abort::Storage) => RunEnd::StorageFailed,
        }
    }

    /// Closes the session's last tool call if the log leaves it at `calling` (the run
    /// stopped during it: a crash, a shutdown, a stop), as failed with `why`, so no client
    /// shows it running forever. A resumed run decides again under a new call id.
    pub async fn close_open_call(&self, run: &Run, why: &str) -> Result<(), DomainError> {
        let Some(last) = self.store.latest_event(run.session_id, "tool").await? else {
            return Ok(());
        };
        let field = |key: &str| last.data.get(key).cloned().unwrap_or(Value::Null);
        if field("status") != json!("calling") {
            return Ok(());
        }
        let text = |key: &str| field(key).as_str().unwrap_or_default().to_string();
        let closing = AgentEvent::Tool {
            tool_call_id: text("tool_call_id"),
            name: text("name"),
            function: text("function"),
            args: field("args"),
            status: ToolStatus::Called,
            content: Some(json!({"success": false, "error": why})),
        };
        self.publisher
            .publish(run.session_id, run.user_id, &closing)
            .await
            .map(|_| ())
    }
}

struct Turn<'a> {
    agent: &'a Agent,
    run: &'a Run,
    control: &'a RunControl,
    deadline: Instant,
    tools: Toolbox,
    memory: AgentMemory,
}

impl Turn<'_> {
    async fn emit(&self, event: &AgentEvent) -> Result<(), Abort> {
        match self
            .agent
            .publisher
            .publish(self.run.session_id, self.run.user_id, event)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(self.storage_failed("store an event", &error).await),
        }
    }

    async fn save(&self) -> Result<(), Abort> {
        let saved = self
            .agent
            .store
            .save_memory(
                self.run.session_id,
                &self.memory.to_json(),
                OffsetDateTime::now_utc(),
            )
            .await;
        match saved {
            Ok(()) => Ok(()),
            Err(error) => Err(self.storage_failed("save the agent's memory", &error).await),
        }
    }

    /// A read or write storage refused ends the run: `Lost` when the session was deleted
    /// meanwhile (nothing to record), `Storage` otherwise.
    async fn storage_failed(&self, what: &str, error: &(dyn std::fmt::Display + Sync)) -> Abort {
        if let Ok(None) = self.agent.store.session_by_id(self.run.session_id).await {
            return Abort::Lost;
        }
        tracing::warn!(%error, session_id = %self.run.session_id, run_id = %self.run.id, "could not {what}; the run fails");
        Abort::Storage
    }

    async fn work(&mut self) -> Result<RunEnd, Abort> {
        self.load_memory().await?;
        if !self.memory.message_stored {
            let (attachments, failed) = self.place_attachments().await;
            // The user's message is shown even when its files could not be placed.
            self.emit(&AgentEvent::user_message_with(
                &self.run.message,
                self.run.client_message_id.as_deref(),
                attachments,
            ))
            .await?;
            self.memory.message_stored = true;
            self.save().await?;
            if let Some(sentence) = failed {
                return Err(Abort::Failed(sentence));
            }
        }
        let Some(model) = self.agent.model.clone() else {
            return Err(Abort::Failed(NO_MODEL.into()));
        };
        loop {
            if self.control.token.is_cancelled() {
                return Err(Abort::Stopped);
            }
            if Instant::now() >= self.deadline {
                return Err(Abort::Failed(format!(
                    "The task took longer than the time limit of {} minutes and was stopped.",
                    self.agent.config.max_run_time.as_secs().div_ceil(60)
                )));
            }
            match self.memory.phase.clone() {
                Phase::Planning => self.plan(model.as_ref()).await?,
                Phase::Executing { index } => {
                    if let Some(end) = self.execute_step(model.as_ref(), index).await? {
                        return Ok(end);
                    }
                }
                Phase::Updating => self.update_plan(model.as_ref()).await?,
                Phase::Summarizing => {
                    self.summarize(model.as_ref()).await?;
                    return Ok(RunEnd::Completed);
                }
                // A reply found no question to answer, or the task was already done: start over.
                // This run's own memory says it already got this far (a crash just before
                // the outcome was recorded): record it now.
                Phase::Waiting { .. } => return Ok(RunEnd::Waiting),
                Phase::Finished => return Ok(RunEnd::Completed),
            }
        }
    }

    /// Copies the message's attachments into the sandbox's upload directory and tells the
    /// model where they are. Returns their `FileInfo`s for the user's `message` event and,
    /// when they could not be copied, a sentence saying why.
    async fn place_attachments(&mut self) -> (Vec<Value>, Option<String>) {
        let ids: Vec<FileId> = self
            .run
            .attachments
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|a| a.get("file_id").and_then(Value::as_str))
                    .filter_map(FileId::parse)
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return (Vec::new(), None);
        }
        let files = self.agent.files.clone();
        let mut found = Vec::new();
        for id in ids {
            // A file deleted since the message was sent is left out.
            if let Ok(file) = files.owned(self.run.user_id, id).await {
                found.push(file);
            }
        }
        // The run started: its files become the session's (a file of another session is
        // copied for this one).
        let found = match files.bind_to_session(self.run.session_id, found).await {
            Ok(bound) => bound,
            Err(error) => return (Vec::new(), Some(error.to_string())),
        };
        let infos: Vec<Value> = found.iter().map(|file| file.info(None)).collect();
        let sandbox = match self.tools.sandbox().await {
            Ok(sandbox) => sandbox.clone(),
            Err(error) => {
                return (
                    infos,
                    Some(format!(
                        "The sandbox could not start to receive your files: {error}"
                    )),
                );
            }
        };
        let placed = match files.copy_into_sandbox(&found, sandbox.as_ref()).await {
            Ok(placed) => placed,
            Err(error) => return (infos, Some(error.to_string())),
        };
        if !placed.is_empty() {
            let list: Vec<String> = placed.iter().map(|(_, path)| format!("- {path}")).collect();
            let note = format!(
                "\n\nThe user attached these files; they are in the sandbox at:\n{}",
                list.join("\n")
            );
            self.memory.task.push_str(&note);
            // A reply continues a conversation the task text is no longer part of.
            if matches!(self.memory.phase, Phase::Executing { .. })
                && !self.memory.messages.is_empty()
            {
                self.memory.messages.push(ChatMessage::user(note.trim()));
            }
        }
        (infos, None)
    }

    /// The files a message tool names in `attachments`, copied to the session's files.
    async fn named_files(&self, args: &Value) -> Vec<Value> {
        let paths: Vec<String> = args
            .get("attachments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .take(MAX_RESULT_FILES)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let (infos, failures) = self.tools.collect(&paths).await;
        if !failures.is_empty() {
            tracing::info!(
                ?failures,
                "some files named in a message could not be attached"
            );
        }
        infos
    }

    /// Picks up where the session's memory stands: a new task, the reply to a question, or
    /// (after a crash) the interrupted run.
    async fn load_memory(&mut self) -> Result<(), Abort> {
        let stored = match self.agent.store.load_memory(self.run.session_id).await {
            Ok(stored) => stored.and_then(AgentMemory::from_json),
            Err(error) => return Err(self.storage_failed("load the agent's memory", &error).await),
        };
        let run_id = self.run.id.to_string();
        self.memory = match stored {
            // This run was already under way (a crash or a hand-back): go on from there.
            Some(mut memory) if memory.run_id == run_id => {
                drop_unanswered_calls(&mut memory.messages);
                if let Err(error) = self.agent.close_open_call(self.run, CALL_INTERRUPTED).await {
                    return Err(self
                        .storage_failed("close an interrupted tool call", &error)
                        .await);
                }
                memory
            }
            // The answer to the agent's question continues the paused work.
            Some(mut memory)
                if self.run.kind == RunKind::Reply
                    && matches!(memory.phase, Phase::Waiting { .. }) =>
            {
                if let Phase::Waiting {
                    index,
                    tool_call_id,
                } = memory.phase.clone()
                {
                    let answer = json!({"success": true, "message": "The user replied.", "data": {"reply": self.run.message}});
                    memory
                        .messages
                        .push(ChatMessage::tool_result(&tool_call_id, answer.to_string()));
                    memory.phase = Phase::Executing { index };
                }
                memory.run_tokens = 0;
                memory.run_id = run_id;
                memory.message_stored = false;
                memory
            }
            previous => {
                let mut memory = AgentMemory::new_task(&self.run.message, previous);
                memory.run_id = run_id;
                memory
            }
        };
        self.save().await
    }

    /// One model request, abandoned if the run is stopped or out of time.
    async fn ask(
        &mut self,
        model: &dyn ChatModel,
        request: &ChatRequest,
        stream_text: bool,
    ) -> Result<Completion, Abort> {
        let (sender, forwarder) = if stream_text {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let publisher = self.agent.publisher.clone();
            let forwarder = tokio::spawn(forward_deltas(
                publisher,
                self.run.session_id,
                self.run.user_id,
                receiver,
            ));
            (Some(sender), Some(forwarder))
        } else {
            (None, None)
        };
        let result = tokio::select! {
            result = model.complete(request, sender.as_ref()) => result,
            _ = self.control.cancelled() => {
                // No delta may land after the run's `done`.
                if let Some(forwarder) = &forwarder {
                    forwarder.abort();
                }
                return Err(Abort::Stopped);
            }
            _ = tokio::time::sleep_until(self.deadline) => {
                if let Some(forwarder) = &forwarder {
                    forwarder.abort();
                }
                return Err(Abort::Failed("The task took longer than its time limit and was stopped.".into()));
            }
        };
        drop(sender);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        let completion = result.map_err(|error| {
            tracing::warn!(%error, "model request failed");
            Abort::Failed(format!("The language model could not answer: {error}"))
        })?;
        self.memory.run_tokens += completion.usage.total_tokens;
        metrics::counter!("ironhand_llm_run_tokens_total").increment(completion.usage.total_tokens);
        if self.memory.run_tokens > self.agent.config.max_run_tokens {
            return Err(Abort::Failed(format!(
                "The task used more than its budget of {} model tokens and was stopped.",
                self.agent.config.max_run_tokens
            )));
        }
        Ok(completion)
    }

    fn context_message(&self, current: Option<&PlanStep>) -> ChatMessage {
        let mut text = String::new();
        if !self.memory.earlier.is_empty() {
            text.push_str("Earlier tasks in this conversation:\n");
            for earlier in &self.memory.earlier {
                text.push_str(&format!(
                    "- Task: {}\n  Outcome: {}\n",
                    truncate_chars(&earlier.task, 500),
                    earlier.answer
                ));
            }
            text.push('\n');
        }
        if !self.memory.title.is_empty() {
            text.push_str(&format!(
                "Plan: {}\nGoal: {}\n{}\n\n",
                self.memory.title,
                self.memory.goal,
                prompts::plan_listing(&self.memory.steps)
            ));
        }
        if !self.memory.results.is_empty() {
            text.push_str("Results of finished steps:\n");
            for r in &self.memory.results {
                let verdict = if r.success { "succeeded" } else { "failed" };
                text.push_str(&format!(
                    "- {} ({verdict}): {}\n",
                    r.description,
                    truncate_chars(&r.result, 2_000)
                ));
            }
            text.push('\n');
        }
        if let Some(step) = current {
            text.push_str(&format!("Current step {}: {}\n", step.id, step.description));
        }
        text.push_str(&prompts::language_note(&self.memory.language));
        ChatMessage::user(&text)
    }

    async fn plan(&mut self, model: &dyn ChatModel) -> Result<(), Abort> {
        let mut messages = vec![
            ChatMessage::system(format!(
                "{} {}",
                prompts::PLANNER_SYSTEM,
                prompts::max_steps_note(self.agent.config.max_steps)
            )),
            ChatMessage::user(&self.memory.task),
            self.context_message(None),
        ];
        let request = |messages: Vec<ChatMessage>| ChatRequest {
            messages,
            tools: vec![tools::create_plan_spec()],
            tool_choice: Some(ToolChoice::Auto),
        };
        let mut problem = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                messages.push(ChatMessage::user(format!(
                    "That was not a usable plan ({problem}). Call the create_plan tool with the plan."
                )));
            }
            let completion = self.ask(model, &request(messages.clone()), false).await?;
            let call = completion
                .tool_calls
                .iter()
                .find(|c| c.name == "create_plan");
            let parsed = match call {
                Some(call) => parse_json(&call.arguments)
                    .map_err(UnusablePlan::from)
                    .and_then(|args| parse_create_plan(&args).map_err(UnusablePlan::from)),
                None => Err(UnusablePlan::NoCall),
            };
            match parsed {
                Ok(mut plan) => {
                    plan.steps.truncate(self.agent.config.max_steps);
                    self.memory.title = plan.title.clone();
                    self.memory.goal = plan.goal;
                    self.memory.language = plan.language;
                    self.memory.steps = plan.steps;
                    self.memory.phase = Phase::Executing { index: 0 };
                    let _ = self
                        .agent
                        .store
                        .set_session_title(
                            self.run.session_id,
                            &ironhand_core::text::without_nul(&plan.title),
                            OffsetDateTime::now_utc(),
                        )
                        .await;
                    self.emit(&AgentEvent::Title { title: plan.title }).await?;
                    self.emit(&AgentEvent::Plan {
                        steps: self.memory.steps.clone(),
                    })
                    .await?;
                    return self.save().await;
                }
                Err(why) => problem = why.to_string(),
            }
        }
        Err(Abort::Failed(format!(
            "The language model did not return a usable plan ({problem}). Try again, or use a model that supports tool calling."
        )))
    }

    async fn update_plan(&mut self, model: &dyn ChatModel) -> Result<(), Abort> {
        // Asked after every step, the last one too: the results may show the goal is not
        // reached yet, and the planner may add steps.
        let done = self
            .memory
            .steps
            .iter()
            .filter(|s| s.status != StepStatus::Pending)
            .count();
        let messages = vec![
            ChatMessage::system(prompts::UPDATER_SYSTEM),
            ChatMessage::user(&self.memory.task),
            self.context_message(None),
        ];
        let request = ChatRequest {
            messages,
            tools: vec![tools::update_plan_spec()],
            tool_choice: Some(ToolChoice::Auto),
        };
        let completion = self.ask(model, &request, false).await?;
        // A planner that does not call update_plan keeps the remaining steps as they are.
        if let Some(steps) = completion
            .tool_calls
            .iter()
            .find(|c| c.name == "update_plan")
            .and_then(|c| parse_json(&c.arguments).ok())
            .and_then(|args| parse_steps(&args, done + 1))
        {
            self.memory
                .steps
                .retain(|s| s.status != StepStatus::Pending);
            let room = self
                .agent
                .config
                .max_steps
                .saturating_sub(self.memory.steps.len());
            let mut steps = steps;
            if steps.len() > room {
                steps.truncate(room);
            }
            // Ids must stay unique across the whole plan.
            for step in &mut steps {
                if self.memory.steps.iter().any(|s| s.id == step.id) {
                    step.id = format!("{}", self.memory.steps.len() + 1);
                }
                self.memory.steps.push(step.clone());
            }
        }
        self.emit(&AgentEvent::Plan {
            steps: self.memory.steps.clone(),
        })
        .await?;
        self.memory.phase = match self
            .memory
            .steps
            .iter()
            .position(|s| s.status == StepStatus::Pending)
        {
            Some(index) => Phase::Executing { index },
            None => Phase::Summarizing,
        };
        self.save().await
    }

    /// Works on one step until `complete_step`; `Some(end)` when the run pauses.
    async fn execute_step(
        &mut self,
        model: &dyn ChatModel,
        index: usize,
    ) -> Result<Option<RunEnd>, Abort> {
        let Some(step) = self.memory.steps.get(index).cloned() else {
            self.memory.phase = Phase::Updating;
            return Ok(None);
        };
        if self.memory.messages.is_empty() {
            if self.memory.steps_executed >= self.agent.config.max_steps {
                return Err(Abort::Failed(format!(
                    "The task needed more than {} steps and was stopped.",
                    self.agent.config.max_steps
                )));
            }
            self.memory.steps[index].status = StepStatus::Running;
            self.memory.tool_calls_in_step = 0;
            self.memory.messages = vec![
                ChatMessage::system(prompts::EXECUTOR_SYSTEM),
                ChatMessage::user(&self.memory.task),
                self.context_message(Some(&step)),
            ];
            self.emit(&AgentEvent::Step(self.memory.steps[index].clone()))
                .await?;
            self.save().await?;
        }
        let specs = self.tools.offer().await;
        loop {
            let budget = model.context_window().saturating_sub(4_096).max(2_048);
            context::fit(&mut self.memory.messages, budget, 3);
            let request = ChatRequest {
                messages: self.memory.messages.clone(),
                tools: specs.clone(),
                tool_choice: Some(ToolChoice::Auto),
            };
            let completion = self.ask(model, &request, false).await?;
            let mut assistant = ChatMessage::assistant(&completion.content);
            assistant.tool_calls = completion.tool_calls.clone();
            self.memory.messages.push(assistant);
            if completion.tool_calls.is_empty() {
                // Lenient: a plain answer ends the step with that answer as its result.
                let result = if completion.content.trim().is_empty() {
                    "Done.".to_string()
                } else {
                    completion.content
                };
                self.finish_step(index, true, result, Vec::new()).await?;
                return Ok(None);
            }
            let mut completed: Option<(bool, String, Vec<String>)> = None;
            let calls = completion.tool_calls;
            for (position, call) in calls.iter().enumerate() {
                if self.control.token.is_cancelled() {
                    return Err(Abort::Stopped);
                }
                self.memory.tool_calls_in_step += 1;
                if self.memory.tool_calls_in_step > self.agent.config.max_tool_calls_per_step {
                    return Err(Abort::Failed(format!(
                        "The agent used more than {} tool calls on one step and was stopped.",
                        self.agent.config.max_tool_calls_per_step
                    )));
                }
                let args = match parse_json(&call.arguments) {
                    Ok(args) => args,
                    Err(why) => {
                        self.answer(call, &ToolOutcome::failed(format!("The arguments were not valid JSON ({why}). Call the tool again with a JSON object.")));
                        continue;
                    }
                };
                match call.name.as_str() {
                    "complete_step" => {
                        let success = args.get("success").and_then(Value::as_bool).unwrap_or(true);
                        let result = args
                            .get("result")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let attachments = args
                            .get("attachments")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        self.answer(call, &ToolOutcome::ok("Step recorded.", json!({}), None));
                        completed = Some((success, result, attachments));
                    }
                    "message_ask_user" => {
                        let outcome = self.tools.call(&call.name, &args).await;
                        if !outcome.success {
                            self.answer(call, &outcome);
                            continue;
                        }
                        let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
                        self.tool_event(call, &args, ToolStatus::Calling, None)
                            .await?;
                        let files = self.named_files(&args).await;
                        self.emit(&AgentEvent::assistant_message_with(text, files))
                            .await?;
                        self.tool_event(call, &args, ToolStatus::Called, None)
                            .await?;
                        for later in &calls[position + 1..] {
                            self.answer(
                                later,
                                &ToolOutcome::failed(
                                    "Not run: the agent is waiting for the user's reply.",
                                ),
                            );
                        }
                        self.memory.phase = Phase::Waiting {
                            index,
                            tool_call_id: call.id.clone(),
                        };
                        self.save().await?;
                        return Ok(Some(RunEnd::Waiting));
                    }
                    "message_notify_user" => {
                        let outcome = self.tools.call(&call.name, &args).await;
                        if outcome.success {
                            let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
                            self.tool_event(call, &args, ToolStatus::Calling, None)
                                .await?;
                            let files = self.named_files(&args).await;
                            self.emit(&AgentEvent::assistant_message_with(text, files))
                                .await?;
                            self.tool_event(call, &args, ToolStatus::Called, None)
                                .await?;
                        }
                        self.answer(call, &outcome);
                    }
                    name if !self.tools.offers(name) => {
                        self.answer(call, &tools::unknown_tool(name));
                    }
                    _ => {
                        // While the user drives the browser, nothing runs.
                        let paused = self.wait_for_hand_back().await?;
                        self.tool_event(call, &args, ToolStatus::Calling, None)
                            .await?;
                        let mut outcome = tokio::select! {
                            outcome = self.tools.call(&call.name, &args) => outcome,
                            _ = self.control.cancelled() => {
                                // Stopping the run stops the command it was waiting on.
                                self.tools.interrupt(&call.name, &args).await;
                                return Err(Abort::Stopped);
                            }
                        };
                        if paused {
                            outcome.message.push_str(TAKEN_OVER_NOTE);
                        }
                        let group = self.tools.group_of(&call.name).unwrap_or("unknown");
                        metrics::counter!("ironhand_tool_calls_total", "group" => group, "success" => outcome.success.to_string()).increment(1);
                        self.tool_event(call, &args, ToolStatus::Called, outcome.content.clone())
                            .await?;
                        self.answer(call, &outcome);
                    }
                }
                self.save().await?;
            }
            if let Some((success, result, attachments)) = completed {
                self.finish_step(index, success, result, attachments)
                    .await?;
                return Ok(None);
            }
        }
    }

    /// Waits while the user has taken the browser over (the latest `takeover` event says
    /// `user`): the run pauses at its next tool call until the user hands it back, is
    /// stopped, or reaches its time limit. True when it paused.
    async fn wait_for_hand_back(&self) -> Result<bool, Abort> {
        let mut paused = false;
        loop {
            let latest = self
                .agent
                .store
                .latest_event(self.run.session_id, TAKEOVER_EVENT)
                .await;
            let status = match latest {
                Ok(event) => TakeoverStatus::of(event.as_ref()),
                Err(error) => {
                    tracing::warn!(%error, "could not read who drives the browser; going on");
                    TakeoverStatus::Agent
                }
            };
            if status == TakeoverStatus::Agent {
                return Ok(paused);
            }
            if !paused {
                tracing::info!(session = %self.run.session_id, "the user drives the browser: the run waits");
            }
            paused = true;
            tokio::select! {
                _ = tokio::time::sleep(TAKEOVER_POLL) => {}
                _ = self.control.cancelled() => return Err(Abort::Stopped),
                _ = tokio::time::sleep_until(self.deadline) => {
                    return Err(Abort::Failed("The task took longer than its time limit and was stopped (the user had the browser).".into()));
                }
            }
        }
    }

    /// Adds the tool result the model will see.
    fn answer(&mut self, call: &ToolCall, outcome: &ToolOutcome) {
        let text = outcome.for_model(self.agent.config.max_tool_result_chars);
        self.memory
            .messages
            .push(ChatMessage::tool_result(&call.id, &text));
    }

    async fn tool_event(
        &self,
        call: &ToolCall,
        args: &Value,
        status: ToolStatus,
        content: Option<Value>,
    ) -> Result<(), Abort> {
        self.emit(&AgentEvent::Tool {
            tool_call_id: call.id.clone(),
            name: self
                .tools
                .group_of(&call.name)
                .unwrap_or("unknown")
                .to_string(),
            function: call.name.clone(),
            args: shown_args(args),
            status,
            content,
        })
        .await
    }

    async fn finish_step(
        &mut self,
        index: usize,
        success: bool,
        result: String,
        attachments: Vec<String>,
    ) -> Result<(), Abort> {
        let status = if success {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        };
        if let Some(step) = self.memory.steps.get_mut(index) {
            step.status = status;
            let step = step.clone();
            self.memory.results.push(StepResult {
                step_id: step.id.clone(),
                description: step.description.clone(),
                success,
                result: truncate_chars(&result, 4_000),
                attachments,
            });
            self.emit(&AgentEvent::Step(step)).await?;
        }
        self.memory.steps_executed += 1;
        self.memory.messages.clear();
        self.memory.phase = Phase::Updating;
        self.save().await
    }

    async fn summarize(&mut self, model: &dyn ChatModel) -> Result<(), Abort> {
        let messages = vec![
            ChatMessage::system(format!(
                "{} {}",
                prompts::SUMMARY_SYSTEM,
                prompts::language_note(&self.memory.language)
            )),
            ChatMessage::user(&self.memory.task),
            self.context_message(None),
        ];
        let request = ChatRequest {
            messages,
            tools: Vec::new(),
            tool_choice: None,
        };
        let completion = self.ask(model, &request, true).await?;
        let text = if completion.content.trim().is_empty() {
            self.memory
                .results
                .iter()
                .map(|r| r.result.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        } else {
            completion.content
        };
        let mut paths: Vec<String> = Vec::new();
        for path in self
            .memory
            .results
            .iter()
            .flat_map(|r| r.attachments.iter())
        {
            if !paths.contains(path) && paths.len() < MAX_RESULT_FILES {
                paths.push(path.clone());
            }
        }
        let (attachments, failures) = self.tools.collect(&paths).await;
        let text = if failures.is_empty() {
            text
        } else {
            format!(
                "{text}\n\n_Some files could not be attached: {}._",
                failures.join("; ")
            )
        };
        self.emit(&AgentEvent::assistant_message_with(&text, attachments))
            .await?;
        self.memory.phase = Phase::Finished;
        self.save().await
    }
}

/// Longest string argument a `tool` event repeats (a file write's content can be huge; the
/// event is for showing, the tool got the whole value).
const EVENT_ARG_CHARS: usize = 20_000;
/// Most files one answer attaches.
const MAX_RESULT_FILES: usize = 20;

fn shown_args(args: &Value) -> Value {
    match args {
        Value::String(s) if s.chars().count() > EVENT_ARG_CHARS => {
            Value::String(truncate_chars(s, EVENT_ARG_CHARS))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shown_args(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(shown_args).collect()),
        other => other.clone(),
    }
}

/// Why a tool call's arguments are not a JSON object: told to the model (the parser's
/// message cut at 200 characters).
#[derive(Debug, thiserror::Error)]
enum BadArguments {
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("{}", truncate_chars(&.0.to_string(), 200))]
    Json(#[source] serde_json::Error),
}

/// Why the planner's answer is not a usable plan: told to the model when it is asked again,
/// and in the run's failure.
#[derive(Debug, thiserror::Error)]
enum UnusablePlan {
    #[error("no create_plan call")]
    NoCall,
    #[error(transparent)]
    Arguments(#[from] BadArguments),
    #[error(transparent)]
    Plan(#[from] PlanRefused),
}

fn parse_json(raw: &str) -> Result<Value, BadArguments> {
    let raw = raw.trim();
    let raw = if raw.is_empty() { "{}" } else { raw };
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(BadArguments::NotAnObject),
        Err(error) => Err(BadArguments::Json(error)),
    }
}

/// After a crash the last assistant message may hold calls whose results were never
/// saved: drop it so the model decides again (the interrupted action is re-executed at worst).
fn drop_unanswered_calls(messages: &mut Vec<ChatMessage>) {
    let Some(last) = messages
        .iter()
        .rposition(|m| m.role == ironhand_llm::Role::Assistant)
    else {
        return;
    };
    let answered = messages[last].tool_calls.iter().all(|call| {
        messages[last + 1..]
            .iter()
            .any(|m| m.tool_call_id.as_deref() == Some(call.id.as_str()))
    });
    if !answered {
        messages.truncate(last);
    }
}

/// Streams the summary's text as `message_delta` events, a few per second rather than one
/// per token.
async fn forward_deltas(
    publisher: EventPublisher,
    session_id: ironhand_core::SessionId,
    user_id: ironhand_core::UserId,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<StreamEvent>,
) {
    const FLUSH_EVERY: Duration = Duration::from_millis(150);
    let mut buffer = String::new();
    let mut reset = false;
    let mut open = true;
    while open {
        let flush_at = Instant::now() + FLUSH_EVERY;
        loop {
            tokio::select! {
                event = receiver.recv() => match event {
                    Some(StreamEvent::TextDelta(text)) => buffer.push_str(&text),
                    Some(StreamEvent::Restart) => {
                        buffer.clear();
                        reset = true;
                    }
                    None => { open = false; break; }
                },
                _ = tokio::time::sleep_until(flush_at) => break,
            }
        }
        if !buffer.is_empty() {
            let delta = std::mem::take(&mut buffer);
            let event = AgentEvent::MessageDelta {
                delta,
                reset: std::mem::take(&mut reset),
            };
            if publisher
                .publish(session_id, user_id, &event)
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_arguments_parse_leniently_but_only_as_objects() {
        assert_eq!(parse_json("").expect("empty is {}"), json!({}));
        assert_eq!(parse_json(" {\"a\": 1} ").expect("object"), json!({"a": 1}));
        assert!(parse_json("[1]").is_err());
        assert!(parse_json("{not json").is_err());
    }

    #[test]
    fn huge_string_arguments_are_cut_for_events_only() {
        let args = json!({"file": "a.txt", "content": "x".repeat(EVENT_ARG_CHARS + 10), "nested": ["y".repeat(EVENT_ARG_CHARS + 1)]});
        let shown = shown_args(&args);
        assert_eq!(shown["file"], "a.txt");
        assert_eq!(
            shown["content"].as_str().map(|s| s.chars().count()),
            Some(EVENT_ARG_CHARS + 1)
        );
        assert!(
            shown["nested"][0]
                .as_str()
                .is_some_and(|s| s.ends_with('…'))
        );
    }

    #[test]
    fn a_call_without_its_result_is_dropped_on_resume() {
        let call = ToolCall {
            id: "c1".into(),
            name: "shell_exec".into(),
            arguments: "{}".into(),
        };
        let mut messages = vec![ChatMessage::system("s"), ChatMessage::user("t")];
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![call];
        messages.push(assistant.clone());
        drop_unanswered_calls(&mut messages);
        assert_eq!(messages.len(), 2, "the unanswered call goes");
        messages.push(assistant);
        messages.push(ChatMessage::tool_result("c1", "done"));
        drop_unanswered_calls(&mut messages);
        assert_eq!(messages.len(), 4, "an answered call stays");
    }
}
