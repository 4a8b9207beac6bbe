//! Waiting for the page after an action: its load event, a quiet moment (no DOM changes,
//! no requests in flight), a navigation or a new tab the action started. Every wait is bounded.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::browser::{Shared, Tab};
use crate::cdp::CdpEvent;

/// How long the DOM must stay unchanged to count as settled.
const QUIET_MS: u64 = 200;

/// Whether a document finished loading, and the HTTP status it came with.
pub(crate) struct Load {
    pub(crate) loaded: bool,
    pub(crate) status: Option<u64>,
}

impl Shared {
    pub(crate) async fn stop_loading(&self, tab: &Tab) {
        let _ = self
            .cdp
            .call("Page.stopLoading", json!({}), Some(&tab.session_id))
            .await;
    }

    /// Waits for the load event of a document in the tab's main frame (of the given
    /// navigation when `loader` is known), and notes the document's HTTP status.
    pub(crate) async fn wait_for_load(
        &self,
        tab: &Tab,
        events: &mut broadcast::Receiver<CdpEvent>,
        frame: Option<&str>,
        loader: Option<&str>,
        deadline: Instant,
    ) -> Load {
        let frame = frame.unwrap_or(&tab.target_id);
        let mut status = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Load {
                    loaded: false,
                    status,
                };
            }
            let event =
                match tokio::time::timeout(left.min(Duration::from_secs(1)), events.recv()).await {
                    Ok(Ok(event)) => event,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Load {
                            loaded: false,
                            status,
                        };
                    }
                    // Missed events, or a quiet second: ask the page itself.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                        if loader.is_none() && self.ready(tab).await {
                            return Load {
                                loaded: true,
                                status,
                            };
                        }
                        if self.cdp.closed_reason().is_some() {
                            return Load {
                                loaded: false,
                                status,
                            };
                        }
                        continue;
                    }
                };
            if event.session_id.as_deref() != Some(&tab.session_id) {
                continue;
            }
            let p = &event.params;
            match event.method.as_str() {
                "Network.responseReceived"
                    if p["type"] == "Document"
                        && loader.is_none_or(|l| p["loaderId"] == l)
                        && p["frameId"] == frame =>
                {
                    status = p["response"]["status"].as_u64();
                }
                "Page.lifecycleEvent"
                    if p["name"] == "load"
                        && p["frameId"] == frame
                        && loader.is_none_or(|l| p["loaderId"] == l) =>
                {
                    return Load {
                        loaded: true,
                        status,
                    };
                }
                "Page.frameStoppedLoading" if loader.is_none() && p["frameId"] == frame => {
                    return Load {
                        loaded: true,
                        status,
                    };
                }
                _ => {}
            }
        }
    }

    pub(crate) async fn ready(&self, tab: &Tab) -> bool {
        matches!(
            self.page_op(tab, "readyState", json!({})).await,
            Ok(v) if v["state"] == "complete"
        )
    }

    /// Waits until the DOM has not changed for a moment and no request is in flight, at most
    /// `limit`.
    pub(crate) async fn quiet(&self, tab: &Tab, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(20) {
                return;
            }
            let max_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            let op = self.page_op(
                tab,
                "quiet",
                json!({"quietMs": QUIET_MS.min(max_ms), "maxMs": max_ms}),
            );
            // a busy renderer may not even start the script in time: the bound is ours
            let Ok(settled) = tokio::time::timeout(left, op).await else {
                return;
            };
            if settled.is_err() {
                // the document went away under us: give the next one a moment
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if !self.network_busy(&tab.session_id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// After input that may do something (click, Enter, key, selection): follows a
    /// navigation it started or a tab it opened, else waits for the page to settle.
    /// Returns sentences for the message.
    pub(crate) async fn after_input(
        &self,
        tab: &Tab,
        mut events: broadcast::Receiver<CdpEvent>,
        tabs_before: u64,
    ) -> Vec<String> {
        let started = Instant::now();
        let settle_deadline = started + self.opts.settle_timeout;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut navigating = false;
        let mut loaded = false;
        loop {
            loop {
                match events.try_recv() {
                    Ok(event) => {
                        if event.session_id.as_deref() != Some(&tab.session_id) {
                            continue;
                        }
                        let main = event.params["frameId"] == tab.target_id.as_str();
                        match event.method.as_str() {
                            "Page.frameRequestedNavigation"
                                if main && event.params["disposition"] == "currentTab" =>
                            {
                                navigating = true;
                            }
                            "Page.frameStartedNavigating" | "Page.frameStartedLoading" if main => {
                                navigating = true;
                                loaded = false;
                            }
                            "Page.lifecycleEvent"
                                if main && event.params["name"] == "load" && navigating =>
                            {
                                loaded = true;
                            }
                            _ => {}
                        }
                    }
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if let Some(opened) = self.tab_opened_since(tabs_before) {
                return self.switch_to_new_tab(&opened, started).await;
            }
            if navigating || Instant::now() >= settle_deadline {
                break;
            }
            let left = settle_deadline.saturating_duration_since(Instant::now());
            let max_ms = u64::try_from(left.as_millis()).unwrap_or(0).max(1);
            let op = self.page_op(
                tab,
                "quiet",
                json!({"quietMs": QUIET_MS.min(max_ms), "maxMs": max_ms}),
            );
            let settled = match tokio::time::timeout(left + Duration::from_millis(50), op).await {
                Ok(settled) => settled,
                Err(_) => continue, // the deadline has passed: look at the events once more
            };
            if settled.is_ok() && !self.network_busy(&tab.session_id) {
                // one last look for a navigation or tab that started meanwhile
                if events.is_empty() && self.tab_opened_since(tabs_before).is_none() {
                    return Vec::new();
                }
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !navigating {
            return Vec::new();
        }
        if !loaded {
            let deadline = started + self.opts.load_timeout;
            let load = self
                .wait_for_load(tab, &mut events, None, None, deadline)
                .await;
            if !load.loaded {
                return vec![format!(
                    "The page it opened is still loading after {} s.",
                    self.opts.load_timeout.as_secs()
                )];
            }
        }
        self.quiet(tab, self.opts.settle_timeout).await;
        Vec::new()
    }

    pub(crate) async fn switch_to_new_tab(&self, target: &str, started: Instant) -> Vec<String> {
        let tab = match self.attach(target).await {
            Ok(tab) => tab,
            Err(e) => return vec![format!("A new tab opened, but it could not be used: {e}")],
        };
        let deadline = started + self.opts.load_timeout;
        // a new tab starts at about:blank and then loads its page
        loop {
            let state = self.page_op(&tab, "readyState", json!({})).await;
            let done = matches!(&state, Ok(v) if v["state"] == "complete"
                && (v["url"] != "about:blank" || started.elapsed() > Duration::from_secs(1)));
            if done {
                break;
            }
            if Instant::now() >= deadline {
                return vec![format!(
                    "It opened a new tab, now in front, which is still loading after {} s.",
                    self.opts.load_timeout.as_secs()
                )];
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.quiet(&tab, self.opts.settle_timeout).await;
        vec!["It opened a new tab, which is now the tab in front.".into()]
    }
}
