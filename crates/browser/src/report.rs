//! What the model reads after each call: the action's sentence and the page state, each part
//! capped (the cap is stated where it cut), the whole at most [`RESULT_CAP`] characters.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::BrowserOutcome;

/// `message` plus `data` serialised, in characters.
pub const RESULT_CAP: usize = 16_000;
/// The numbered element list.
pub(crate) const ELEMENTS_CAP: usize = 5_000;
/// One element's line.
pub(crate) const LABEL_CAP: usize = 160;
/// The page text.
pub(crate) const CONTENT_CAP: usize = 8_000;
/// A `browser_console_exec` value, and `browser_console_view` lines.
pub(crate) const CONSOLE_CAP: usize = 4_000;
const URL_CAP: usize = 600;
const TITLE_CAP: usize = 200;

/// An action's result before the page state is added.
#[derive(Debug, Default)]
pub(crate) struct Report {
    success: bool,
    message: String,
    notes: Vec<String>,
    extra: Map<String, Value>,
}

impl Report {
    pub(crate) fn ok(message: impl Into<String>) -> Report {
        Report {
            success: true,
            message: message.into(),
            ..Report::default()
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Report {
        Report {
            success: false,
            message: message.into(),
            ..Report::default()
        }
    }

    /// Another sentence for the message (a dialog, a new tab, a cut).
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// A field of `data` besides the page state (`result`, `console`).
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Report {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    fn message(&self) -> String {
        let mut message = self.message.clone();
        for note in &self.notes {
            if !message.is_empty() {
                message.push('\n');
            }
            message.push_str(note);
        }
        message
    }

    pub(crate) fn into_outcome(
        self,
        state: Option<PageState>,
        screenshot: Option<Vec<u8>>,
        tabs: usize,
    ) -> BrowserOutcome {
        let mut data = Map::new();
        if let Some(state) = state {
            data.insert("url".into(), truncate(&state.url, URL_CAP).into());
            data.insert("title".into(), truncate(&state.title, TITLE_CAP).into());
            if tabs > 1 {
                data.insert(
                    "tabs".into(),
                    format!("{tabs} tabs are open; this is the one in front").into(),
                );
            }
            data.insert("viewport".into(), state.scroll.describe().into());
            data.insert("elements".into(), state.elements_text().into());
            data.insert("content".into(), state.content_text().into());
        }
        let message = self.message();
        data.extend(self.extra);
        let (message, data) = fit(message, Value::Object(data));
        BrowserOutcome {
            success: self.success,
            message,
            data,
            screenshot,
        }
    }
}

/// The outcome once Chromium has gone: no page, no screenshot, one sentence on what to do.
/// (What the action reported is left out: it failed for the same reason, or cannot be
/// trusted to have happened.)
pub(crate) fn browser_gone(reason: &str) -> BrowserOutcome {
    let message =
        format!("The browser is not running ({reason}). Use browser_restart to start it again.");
    BrowserOutcome {
        success: false,
        message: truncate(&message, RESULT_CAP / 2),
        data: Value::Null,
        screenshot: None,
    }
}

/// The page as the injected script's `view` saw it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageState {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub elements: Vec<String>,
    #[serde(default)]
    pub omitted_elements: u64,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub omitted_above: u64,
    #[serde(default)]
    pub truncated: bool,
    pub scroll: ScrollState,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
pub(crate) struct ScrollState {
    #[serde(default)]
    pub y: f64,
    #[serde(default)]
    pub height: f64,
    #[serde(default)]
    pub viewport: f64,
    #[serde(default)]
    pub width: f64,
    #[serde(default)]
    pub inner: f64,
}

impl ScrollState {
    fn describe(&self) -> String {
        let below = (self.height - self.y - self.viewport).max(0.0);
        format!(
            "{}x{} px, showing {}–{} of a {} px tall page ({} px above, {} px below)",
            self.width.round(),
            self.viewport.round(),
            self.y.round(),
            (self.y + self.viewport)
                .min(self.height.max(self.viewport))
                .round(),
            self.height.round(),
            self.y.round(),
            below.round()
        )
    }
}

impl PageState {
    fn elements_text(&self) -> String {
        let mut text = if self.elements.is_empty() {
            "(no interactive elements in the viewport)".to_owned()
        } else {
            self.elements.join("\n")
        };
        if self.omitted_elements > 0 {
            text.push_str(&format!(
                "\n(… {} more interactive elements in the viewport are not listed: the list is capped at {ELEMENTS_CAP} characters)",
                self.omitted_elements
            ));
        }
        text
    }

    fn content_text(&self) -> String {
        let mut text = String::new();
        if self.omitted_above > 0 {
            text.push_str(&format!(
                "(… {} characters of text above the viewport are not shown: scroll up to read them)\n",
                self.omitted_above
            ));
        }
        if self.content.trim().is_empty() {
            text.push_str("(no visible text)");
        } else {
            text.push_str(&self.content);
        }
        if self.truncated {
            text.push_str(&format!(
                "\n(… the text is cut at {CONTENT_CAP} characters: scroll down to read more)"
            ));
        }
        text
    }
}

fn size(message: &str, data: &Value) -> usize {
    message.chars().count() + data.to_string().chars().count()
}

/// Shrinks the largest text fields until `message` and `data` fit in [`RESULT_CAP`]
/// (JSON escaping can make a page's text longer than its caps suggest).
fn fit(mut message: String, mut data: Value) -> (String, Value) {
    const NOTE: &str = "\n(… cut to keep the result within 16000 characters)";
    for _ in 0..8 {
        let total = size(&message, &data);
        if total <= RESULT_CAP {
            return (message, data);
        }
        let excess = total - RESULT_CAP;
        let Some(map) = data.as_object_mut() else {
            break;
        };
        let largest = map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.chars().count())))
            .max_by_key(|(_, n)| *n);
        let Some((key, len)) = largest.filter(|(_, n)| *n > 200) else {
            break;
        };
        let Some(text) = map.get(&key).and_then(Value::as_str).map(str::to_owned) else {
            break;
        };
        // escaping can double a character: cut generously
        let keep = len
            .saturating_sub(excess + NOTE.len() + 64)
            .min(len * 3 / 4);
        let cut: String = text.chars().take(keep).collect();
        map.insert(key, Value::String(cut + NOTE));
    }
    if size(&message, &data) > RESULT_CAP {
        message = truncate(&message, RESULT_CAP / 4);
        let url = data.get("url").cloned().unwrap_or(Value::Null);
        data = json!({"url": url, "note": "the page state did not fit in the result"});
    }
    (message, data)
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `"text"`, cut at `max` characters.
pub(crate) fn quote(s: &str, max: usize) -> String {
    format!("\"{}\"", truncate(s, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_full_of_quotes_still_fits() {
        let state = PageState {
            url: "https://example.com/".into(),
            title: "t".into(),
            elements: (0..400)
                .map(|i| format!("[{i}] <a href=\"\\\\\">\"\"\"\"</a>"))
                .collect(),
            omitted_elements: 0,
            content: "\"\\".repeat(8000),
            omitted_above: 0,
            truncated: true,
            scroll: ScrollState::default(),
        };
        let outcome = Report::ok("ok")
            .with("result", "\"".repeat(4000))
            .into_outcome(Some(state), None, 1);
        assert!(size(&outcome.message, &outcome.data) <= RESULT_CAP);
        assert!(outcome.data["url"].is_string());
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
