//! The Rust side of the injected page script (`page.js`): running its operations in the
//! active tab and reading what it reports.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::{Shared, Tab};
use crate::report::{CONTENT_CAP, ELEMENTS_CAP, LABEL_CAP, PageState, ScrollState};

/// The injected page script (see `page.js`).
const PAGE_JS: &str = include_str!("page.js");

pub(crate) type Step<T> = Result<T, String>;

impl Shared {
    /// Runs an operation of the page script in the tab's main world.
    pub(crate) async fn page_op(&self, tab: &Tab, op: &str, args: Value) -> Step<Value> {
        let expression = format!("({PAGE_JS})({}, {args})", json!(op));
        let answer = self
            .cdp
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
                Some(&tab.session_id),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(format!(
                "the page script failed: {}",
                exception_text(details)
            ));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// [`page_op`](Self::page_op), retried while a navigation replaces the document.
    pub(crate) async fn page_op_settled(&self, tab: &Tab, op: &str, args: Value) -> Step<Value> {
        let mut last = String::new();
        for attempt in 0..4 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            match self.page_op(tab, op, args.clone()).await {
                Ok(value) if !value.is_null() => return Ok(value),
                Ok(_) => last = "the page gave no answer (it is being replaced)".into(),
                Err(e) if e.contains("context") || e.contains("Inspected target navigated") => {
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    pub(crate) async fn page_state(&self, tab: &Tab) -> Step<PageState> {
        let value = self
            .page_op_settled(
                tab,
                "view",
                json!({"elementsCap": ELEMENTS_CAP, "labelCap": LABEL_CAP, "contentCap": CONTENT_CAP}),
            )
            .await?;
        serde_json::from_value(value).map_err(|e| format!("unexpected page state: {e}"))
    }

    pub(crate) async fn scroll_state(&self, tab: &Tab) -> Step<ScrollState> {
        let value = self.page_op_settled(tab, "scrollState", json!({})).await?;
        serde_json::from_value(value).map_err(|e| format!("unexpected scroll state: {e}"))
    }
}

pub(crate) fn exception_text(details: &Value) -> String {
    details["exception"]["description"]
        .as_str()
        .or_else(|| details["text"].as_str())
        .unwrap_or("an exception")
        .to_owned()
}
