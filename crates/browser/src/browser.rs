//! [`Browser`]: one Chromium, its tabs, and what happened in them between two tool calls.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use crate::cdp::{CdpClient, CdpError, CdpEvent, DEFAULT_MAX_MESSAGE_BYTES};
use crate::report::{self, Report};
use crate::tools::Action;

/// What a [`Browser`] needs to know; `Default` is what the sandbox uses.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// `file://` URLs may only name files under this directory (after resolving `..`).
    pub file_root: PathBuf,
    /// How long a page may take to load (navigation, or a click that navigates).
    pub load_timeout: Duration,
    /// The timeout of every other DevTools call.
    pub call_timeout: Duration,
    /// How long to wait after a click or key press for the page to settle (network idle,
    /// no DOM changes for a moment) when it does not navigate.
    pub settle_timeout: Duration,
    /// JPEG quality of the screenshots (0–100).
    pub screenshot_quality: u8,
    /// The largest DevTools message accepted from Chromium.
    pub max_message_bytes: usize,
    /// Console lines and uncaught errors kept for `browser_console_view`.
    pub console_lines: usize,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            file_root: PathBuf::from("/home/ubuntu"),
            load_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
            settle_timeout: Duration::from_millis(1500),
            screenshot_quality: 70,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            console_lines: 500,
        }
    }
}

/// The result of one tool call: `{success, message, data}` is what the model reads (at most
/// 16,000 characters together); the screenshot becomes the tool's content for the user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrowserOutcome {
    pub success: bool,
    pub message: String,
    pub data: Value,
    /// A JPEG of the viewport after the call (also after a failure, when there is a page).
    #[serde(skip)]
    pub screenshot: Option<Vec<u8>>,
}

/// Why [`Browser::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("Chromium did not answer on the DevTools pipe: {0}")]
    Cdp(#[from] CdpError),
    #[error("Chromium has no page to drive: {0}")]
    NoPage(String),
}

/// One Chromium driven over its DevTools pipe. Tool calls run one at a time.
///
/// After Chromium exits every call fails at once with a sentence saying so; to go on, start
/// Chromium again, drop this `Browser` and [`connect`](Self::connect) a new one (the console
/// buffer and tab state start empty).
pub struct Browser {
    pub(crate) shared: Arc<Shared>,
    actions: tokio::sync::Mutex<()>,
    events_task: JoinHandle<()>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.events_task.abort();
    }
}

pub(crate) struct Shared {
    pub(crate) cdp: CdpClient,
    pub(crate) opts: BrowserOptions,
    state: Mutex<State>,
}

/// A page target we are attached to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tab {
    pub(crate) target_id: String,
    pub(crate) session_id: String,
}

#[derive(Default)]
struct State {
    active: Option<Tab>,
    /// Open page targets (tabs, popups) by target id.
    pages: HashMap<String, PageTarget>,
    /// Our sessions: target id → session id.
    attached: HashMap<String, String>,
    created: u64,
    console: VecDeque<String>,
    console_total: u64,
    dialogs: Vec<String>,
    /// Requests in flight per session, for "the network is idle".
    inflight: HashMap<String, HashMap<String, Instant>>,
}

#[derive(Debug, Clone)]
struct PageTarget {
    seq: u64,
}

/// Requests tracked per session at most (a page opening more is not idle anyway).
const MAX_TRACKED_REQUESTS: usize = 1000;
/// A request older than this no longer keeps the page from counting as idle (long polls,
/// streams, a server that never answers).
const STALE_REQUEST: Duration = Duration::from_secs(5);
const CONSOLE_LINE_CAP: usize = 1000;

impl Browser {
    /// Takes over the Chromium on the other end of the pipe: attaches to its first tab
    /// (opening one if there is none) and starts following its events.
    pub async fn connect<R, W>(
        reader: R,
        writer: W,
        opts: BrowserOptions,
    ) -> Result<Browser, BrowserError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let cdp = CdpClient::new(reader, writer, opts.call_timeout, opts.max_message_bytes);
        let shared = Arc::new(Shared {
            cdp: cdp.clone(),
            opts,
            state: Mutex::new(State::default()),
        });
        let events_task = tokio::spawn(follow_events(shared.clone(), cdp.events()));
        let browser = Browser {
            shared,
            actions: tokio::sync::Mutex::new(()),
            events_task,
        };
        cdp.call("Target.setDiscoverTargets", json!({"discover": true}), None)
            .await?;
        // The start page may appear a moment after the pipe opens.
        let deadline = Instant::now() + Duration::from_secs(3);
        let target_id = loop {
            let targets = cdp.call("Target.getTargets", json!({}), None).await?;
            let first_page = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["targetId"].as_str())
                .map(str::to_owned);
            if let Some(id) = first_page {
                break id;
            }
            if Instant::now() >= deadline {
                let created = cdp
                    .call("Target.createTarget", json!({"url": "about:blank"}), None)
                    .await?;
                break created["targetId"]
                    .as_str()
                    .ok_or_else(|| BrowserError::NoPage("Target.createTarget gave no id".into()))?
                    .to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        browser.shared.attach(&target_id).await?;
        Ok(browser)
    }

    /// Runs one browser tool (`function` and `args` as the model sent them) and reports the
    /// page afterwards. Never panics; returns within the configured timeouts.
    pub async fn call(&self, function: &str, args: &Value) -> BrowserOutcome {
        let _one_at_a_time = self.actions.lock().await;
        let shared = &self.shared;
        let report = match Action::parse(function, args) {
            Err(invalid) => Report::failed(invalid.to_string()),
            Ok(action) if shared.cdp.closed_reason().is_none() => {
                let limit = shared.opts.load_timeout + shared.opts.call_timeout * 3;
                match tokio::time::timeout(limit, shared.run(action)).await {
                    Ok(report) => report,
                    Err(_) => Report::failed(format!(
                        "the browser did not finish this within {} s",
                        limit.as_secs()
                    )),
                }
            }
            Ok(_) => Report::failed("the action was not carried out"),
        };
        shared.finish(report).await
    }

    /// True once Chromium has gone (exited, or its pipe broke).
    pub fn is_closed(&self) -> bool {
        self.shared.cdp.closed_reason().is_some()
    }

    /// Resolves when Chromium goes away.
    pub async fn closed(&self) {
        self.shared.cdp.closed().await;
    }

    /// The DevTools connection, for what the tools do not cover.
    pub fn cdp(&self) -> &CdpClient {
        &self.shared.cdp
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches to a page (once), enables the domains we listen to and makes it the active tab.
    pub(crate) async fn attach(&self, target_id: &str) -> Result<Tab, CdpError> {
        let known = self.lock().attached.get(target_id).cloned();
        let session_id = match known {
            Some(session) => session,
            None => {
                let attached = self
                    .cdp
                    .call(
                        "Target.attachToTarget",
                        json!({"targetId": target_id, "flatten": true}),
                        None,
                    )
                    .await?;
                let session = attached["sessionId"]
                    .as_str()
                    .ok_or_else(|| CdpError::Protocol {
                        method: "Target.attachToTarget".into(),
                        code: 0,
                        message: "no sessionId in the answer".into(),
                    })?
                    .to_owned();
                let s = Some(session.as_str());
                self.cdp.call("Page.enable", json!({}), s).await?;
                self.cdp
                    .call(
                        "Page.setLifecycleEventsEnabled",
                        json!({"enabled": true}),
                        s,
                    )
                    .await?;
                self.cdp.call("Runtime.enable", json!({}), s).await?;
                // The page behaves as focused even while the live view's window is not (or
                // its address bar has the keyboard): focus events, :focus, caret.
                let _ = self
                    .cdp
                    .call(
                        "Emulation.setFocusEmulationEnabled",
                        json!({"enabled": true}),
                        s,
                    )
                    .await;
                // Only for "is the network idle": keep no response bodies.
                self.cdp
                    .call(
                        "Network.enable",
                        json!({"maxTotalBufferSize": 0, "maxResourceBufferSize": 0}),
                        s,
                    )
                    .await?;
                self.lock()
                    .attached
                    .insert(target_id.to_owned(), session.clone());
                session
            }
        };
        let tab = Tab {
            target_id: target_id.to_owned(),
            session_id,
        };
        // Bring it to the front: the live view shows the tab the agent works in.
        let _ = self
            .cdp
            .call(
                "Target.activateTarget",
                json!({"targetId": target_id}),
                None,
            )
            .await;
        self.lock().active = Some(tab.clone());
        Ok(tab)
    }

    /// The active tab; when it was closed, the newest other tab, else a new blank one.
    pub(crate) async fn active_tab(&self) -> Result<Tab, CdpError> {
        let (active, newest) = {
            let state = self.lock();
            let newest = state
                .pages
                .iter()
                .max_by_key(|(_, p)| p.seq)
                .map(|(id, _)| id.clone());
            (state.active.clone(), newest)
        };
        if let Some(tab) = active {
            return Ok(tab);
        }
        let target = match newest {
            Some(id) => id,
            None => {
                let created = self
                    .cdp
                    .call("Target.createTarget", json!({"url": "about:blank"}), None)
                    .await?;
                created["targetId"].as_str().unwrap_or_default().to_owned()
            }
        };
        self.attach(&target).await
    }

    /// A counter of tabs opened so far, to spot the ones an action opens.
    pub(crate) fn tabs_created(&self) -> u64 {
        self.lock().created
    }

    /// The newest tab opened after `since`, if any.
    pub(crate) fn tab_opened_since(&self, since: u64) -> Option<String> {
        let state = self.lock();
        state
            .pages
            .iter()
            .filter(|(_, p)| p.seq > since)
            .max_by_key(|(_, p)| p.seq)
            .map(|(id, _)| id.clone())
    }

    pub(crate) fn open_tabs(&self) -> usize {
        self.lock().pages.len()
    }

    pub(crate) fn network_busy(&self, session: &str) -> bool {
        self.lock()
            .inflight
            .get(session)
            .is_some_and(|requests| requests.values().any(|t| t.elapsed() < STALE_REQUEST))
    }

    pub(crate) fn take_dialogs(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().dialogs)
    }

    pub(crate) fn console_total(&self) -> u64 {
        self.lock().console_total
    }

    /// The latest `max` console lines, and how many are kept in all.
    pub(crate) fn console_tail(&self, max: usize) -> (Vec<String>, usize) {
        let state = self.lock();
        let kept = state.console.len();
        let lines = state
            .console
            .iter()
            .skip(kept.saturating_sub(max))
            .cloned()
            .collect();
        (lines, kept)
    }

    /// Console lines logged after `total` lines had been logged.
    pub(crate) fn console_since(&self, total: u64) -> Vec<String> {
        let state = self.lock();
        let new = usize::try_from(state.console_total.saturating_sub(total)).unwrap_or(usize::MAX);
        let kept = state.console.len();
        state
            .console
            .iter()
            .skip(kept.saturating_sub(new))
            .cloned()
            .collect()
    }

    /// Turns an action's report into the outcome: page state, dialogs, screenshot, caps.
    async fn finish(&self, mut report: Report) -> BrowserOutcome {
        if let Some(reason) = self.cdp.closed_reason() {
            return report::browser_gone(&reason);
        }
        let tab = match self.active_tab().await {
            Ok(tab) => tab,
            Err(e) => {
                report.note(format!("There is no page to show: {e}"));
                return report.into_outcome(None, None, 0);
            }
        };
        let state = self.page_state(&tab).await;
        let screenshot = self.screenshot(&tab).await;
        for dialog in self.take_dialogs() {
            report.note(dialog);
        }
        if let Some(reason) = self.cdp.closed_reason() {
            return report::browser_gone(&reason);
        }
        let state = match state {
            Ok(state) => Some(state),
            Err(e) => {
                report.note(format!("The page state could not be read: {e}"));
                None
            }
        };
        report.into_outcome(state, screenshot, self.open_tabs())
    }

    async fn screenshot(&self, tab: &Tab) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let shot = self
            .cdp
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "jpeg",
                    "quality": self.opts.screenshot_quality.min(100),
                    "optimizeForSpeed": true,
                }),
                Some(&tab.session_id),
            )
            .await;
        match shot {
            Ok(shot) => base64::engine::general_purpose::STANDARD
                .decode(shot["data"].as_str().unwrap_or_default())
                .ok(),
            Err(e) => {
                tracing::debug!(error = %e, "no screenshot");
                None
            }
        }
    }
}

/// Keeps the tab list, console buffer, dialogs and request counts up to date; answers
/// JavaScript dialogs at once (a page blocked on `alert()` would block every other call).
async fn follow_events(shared: Arc<Shared>, mut events: broadcast::Receiver<CdpEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "browser events came faster than they were read");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        on_event(&shared, event);
    }
}

fn on_event(shared: &Arc<Shared>, event: CdpEvent) {
    let p = &event.params;
    let session = event.session_id.clone().unwrap_or_default();
    match event.method.as_str() {
        "Target.targetCreated" | "Target.targetInfoChanged" => {
            let info = &p["targetInfo"];
            if info["type"] != "page" {
                return;
            }
            let Some(id) = info["targetId"].as_str() else {
                return;
            };
            let mut state = shared.lock();
            if !state.pages.contains_key(id) {
                state.created += 1;
                let seq = state.created;
                state.pages.insert(id.to_owned(), PageTarget { seq });
            }
        }
        "Target.targetDestroyed" => {
            let id = p["targetId"].as_str().unwrap_or_default();
            let mut state = shared.lock();
            state.pages.remove(id);
            if let Some(session) = state.attached.remove(id) {
                state.inflight.remove(&session);
            }
            if state.active.as_ref().is_some_and(|t| t.target_id == id) {
                state.active = None;
            }
        }
        "Target.detachedFromTarget" => {
            let gone = p["sessionId"].as_str().unwrap_or_default();
            let mut state = shared.lock();
            state.attached.retain(|_, s| s != gone);
            state.inflight.remove(gone);
            if state.active.as_ref().is_some_and(|t| t.session_id == gone) {
                state.active = None;
            }
        }
        "Runtime.consoleAPICalled" => {
            let text = p["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(remote_object_text)
                .collect::<Vec<_>>()
                .join(" ");
            let kind = p["type"].as_str().unwrap_or("log");
            push_console(shared, format!("[{kind}] {text}"));
        }
        "Runtime.exceptionThrown" => {
            let details = &p["exceptionDetails"];
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception");
            let place = match (details["url"].as_str(), details["lineNumber"].as_u64()) {
                (Some(url), Some(line)) if !url.is_empty() => format!(" ({url}:{})", line + 1),
                _ => String::new(),
            };
            push_console(shared, format!("[uncaught] {text}{place}"));
        }
        "Page.javascriptDialogOpening" => {
            let kind = p["type"].as_str().unwrap_or("alert").to_owned();
            let message = p["message"].as_str().unwrap_or_default();
            // Prompts are dismissed (nobody can type the answer); the rest are accepted.
            let accept = kind != "prompt";
            let note = format!(
                "A JavaScript {kind} dialog appeared and was {}: {}",
                if accept { "accepted" } else { "dismissed" },
                report::quote(message, 300)
            );
            shared.lock().dialogs.push(note);
            let cdp = shared.cdp.clone();
            tokio::spawn(async move {
                let answered = cdp
                    .call(
                        "Page.handleJavaScriptDialog",
                        json!({"accept": accept}),
                        Some(&session),
                    )
                    .await;
                if let Err(e) = answered {
                    tracing::debug!(error = %e, "could not answer a dialog");
                }
            });
        }
        "Network.requestWillBeSent" => {
            if let Some(id) = p["requestId"].as_str() {
                let mut state = shared.lock();
                let requests = state.inflight.entry(session).or_default();
                if requests.len() >= MAX_TRACKED_REQUESTS {
                    requests.retain(|_, t| t.elapsed() < STALE_REQUEST);
                }
                if requests.len() < MAX_TRACKED_REQUESTS {
                    requests.insert(id.to_owned(), Instant::now());
                }
            }
        }
        "Network.loadingFinished" | "Network.loadingFailed" => {
            if let Some(id) = p["requestId"].as_str()
                && let Some(requests) = shared.lock().inflight.get_mut(&session)
            {
                requests.remove(id);
            }
        }
        // a new document in the main frame: the old one's requests are gone with it
        "Page.frameNavigated" if p["frame"]["parentId"].is_null() => {
            if let Some(requests) = shared.lock().inflight.get_mut(&session) {
                requests.clear();
            }
        }
        _ => {}
    }
}

fn push_console(shared: &Shared, line: String) {
    let line = report::truncate(&line, CONSOLE_LINE_CAP);
    let mut state = shared.lock();
    state.console.push_back(line);
    state.console_total += 1;
    while state.console.len() > shared.opts.console_lines.max(1) {
        state.console.pop_front();
    }
}

/// A console argument as the console would print it.
pub(crate) fn remote_object_text(o: &Value) -> String {
    if let Some(s) = o["value"].as_str() {
        return s.to_owned();
    }
    if let Some(v) = o.get("value").filter(|v| !v.is_null()) {
        return v.to_string();
    }
    if o["subtype"] == "null" {
        return "null".into();
    }
    if let Some(u) = o["unserializableValue"].as_str() {
        return u.to_owned();
    }
    if o["type"] == "undefined" {
        return "undefined".into();
    }
    if let Some(preview) = o["preview"]["properties"].as_array() {
        let props: Vec<String> = preview
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["value"].as_str().unwrap_or("…")
                )
            })
            .collect();
        let open = if o["subtype"] == "array" { "[" } else { "{" };
        let close = if o["subtype"] == "array" { "]" } else { "}" };
        return format!("{open}{}{close}", props.join(", "));
    }
    o["description"].as_str().unwrap_or("?").to_owned()
}
