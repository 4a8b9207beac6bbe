//! The Rust side of the injected page script (`page.js`): running its operations in the
//! active tab and reading what it reports.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::{Shared, Tab};
use crate::cdp::CdpError;
use crate::keys::InvalidKey;
use crate::report::{CONTENT_CAP, ELEMENTS_CAP, LABEL_CAP, PageState, ScrollState};
use crate::url_policy::InvalidUrl;

/// The injected page script (see `page.js`).
const PAGE_JS: &str = include_str!("page.js");

/// Why a step of a browser action failed: the sentence the model reads (the action's report
/// then says it failed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// A DevTools call of the page script failed.
    #[error(transparent)]
    Cdp(#[from] CdpError),
    /// An input event (`what`: "the mouse event", "typing"…) was not delivered.
    #[error("{what} failed: {source}")]
    Input {
        what: &'static str,
        #[source]
        source: CdpError,
    },
    #[error("could not open {url}: {source}")]
    Open {
        url: url::Url,
        #[source]
        source: CdpError,
    },
    #[error("the JavaScript did not run: {0}")]
    JavaScript(#[source] CdpError),
    /// The page script threw (the exception's text).
    #[error("the page script failed: {0}")]
    PageScript(String),
    #[error("the page gave no answer (it is being replaced)")]
    NoAnswer,
    /// The page script answered with something else than `what` ("page state"…).
    #[error("unexpected {what}: {source}")]
    Unexpected {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Url(#[from] InvalidUrl),
    #[error(transparent)]
    Key(#[from] InvalidKey),
    /// What the page does not allow (no such element, outside the viewport…), in words.
    #[error("{0}")]
    Refused(String),
}

impl StepError {
    /// The document went away under the call (a navigation replaced it): worth a retry.
    fn document_replaced(&self) -> bool {
        let text = self.to_string();
        text.contains("context") || text.contains("Inspected target navigated")
    }
}

pub(crate) type Step<T> = Result<T, StepError>;

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
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(StepError::PageScript(exception_text(details)));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// [`page_op`](Self::page_op), retried while a navigation replaces the document.
    pub(crate) async fn page_op_settled(&self, tab: &Tab, op: &str, args: Value) -> Step<Value> {
        let mut last = StepError::NoAnswer;
        for attempt in 0..4 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            match self.page_op(tab, op, args.clone()).await {
                Ok(value) if !value.is_null() => return Ok(value),
                Ok(_) => last = StepError::NoAnswer,
                Err(e) if e.document_replaced() => last = e,
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
        serde_json::from_value(value).map_err(|source| StepError::Unexpected {
            what: "page state",
            source,
        })
    }

    pub(crate) async fn scroll_state(&self, tab: &Tab) -> Step<ScrollState> {
        let value = self.page_op_settled(tab, "scrollState", json!({})).await?;
        serde_json::from_value(value).map_err(|source| StepError::Unexpected {
            what: "scroll state",
            source,
        })
    }
}

pub(crate) fn exception_text(details: &Value) -> String {
    details["exception"]["description"]
        .as_str()
        .or_else(|| details["text"].as_str())
        .unwrap_or("an exception")
        .to_owned()
}
