//! What each tool does to the page: real input events where a person would use the mouse or
//! keyboard, then waiting (bounded) for the page to react.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{Shared, Tab};
use crate::cdp::CdpError;
use crate::keys::{self, Combo};
use crate::page::{Step, StepError};
use crate::report::{self, Report};
use crate::tools::{Action, OptionChoice, Target};
use crate::url_policy::check_url;

/// Where a pointer action lands, and what is there.
struct Aim {
    x: f64,
    y: f64,
    what: String,
    note: Option<String>,
}

impl Shared {
    pub(crate) async fn run(&self, action: Action) -> Report {
        let tab = match self.active_tab().await {
            Ok(tab) => tab,
            Err(e) => return Report::failed(format!("there is no page to work in: {e}")),
        };
        // The live view shows the agent's tab (the user may have switched tabs in a takeover).
        let _ = self
            .cdp
            .call("Page.bringToFront", json!({}), Some(&tab.session_id))
            .await;
        let result = match action {
            Action::View => Ok(Report::ok("The current page.")),
            Action::Navigate { url } => self.navigate(&tab, &url).await,
            Action::Click(target) => self.click(&tab, target).await,
            Action::Input {
                target,
                text,
                press_enter,
            } => self.input(&tab, target, &text, press_enter).await,
            Action::MoveMouse { x, y } => self.move_mouse(&tab, x, y).await,
            Action::PressKey { key } => self.press_key(&tab, &key).await,
            Action::SelectOption { index, option } => self.select_option(&tab, index, option).await,
            Action::Scroll { down, to_end } => self.scroll(&tab, down, to_end).await,
            Action::ConsoleExec { javascript } => self.console_exec(&tab, &javascript).await,
            Action::ConsoleView { max_lines } => Ok(self.console_view(max_lines)),
        };
        result.unwrap_or_else(|e| Report::failed(e.to_string()))
    }

    async fn navigate(&self, tab: &Tab, raw: &str) -> Step<Report> {
        let url = check_url(raw, &self.opts.file_root)?;
        let timeout = self.opts.load_timeout;
        let mut events = self.cdp.events();
        let started = Instant::now();
        let answer = self
            .cdp
            .call_with_timeout(
                "Page.navigate",
                json!({"url": url.as_str()}),
                Some(&tab.session_id),
                timeout,
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(CdpError::Timeout { .. }) => {
                self.stop_loading(tab).await;
                return Ok(Report::failed(not_loaded(&url, timeout)));
            }
            Err(source) => return Err(StepError::Open { url, source }),
        };
        if let Some(error) = answer["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Ok(Report::failed(format!("could not open {url}: {error}")));
        }
        if answer["isDownload"] == true {
            return Ok(Report::ok(format!("{url} is a download, not a page")));
        }
        let Some(loader) = answer["loaderId"].as_str() else {
            // same document (a #fragment): nothing to load
            self.quiet(tab, self.opts.settle_timeout).await;
            return Ok(Report::ok(format!("Went to {url}")));
        };
        let frame = answer["frameId"].as_str().unwrap_or(&tab.target_id);
        let deadline = started + timeout;
        let load = self
            .wait_for_load(tab, &mut events, Some(frame), Some(loader), deadline)
            .await;
        if !load.loaded {
            self.stop_loading(tab).await;
            return Ok(Report::failed(not_loaded(&url, timeout)));
        }
        self.quiet(tab, self.opts.settle_timeout).await;
        let mut report = Report::ok(format!("Opened {url}"));
        if let Some(status) = load.status.filter(|s| *s >= 400) {
            report.note(format!("The server answered HTTP {status}."));
        }
        Ok(report)
    }

    /// The point of an element (scrolled into view) or of coordinates (checked against the
    /// viewport), and what is there.
    async fn aim(&self, tab: &Tab, target: Target) -> Step<Aim> {
        match target {
            Target::Index(index) => {
                let found = self
                    .page_op_settled(tab, "locate", json!({"index": index}))
                    .await?;
                if found["found"] != true {
                    return Err(StepError::Refused(unknown_index(index, &found["indices"])));
                }
                let what = format!(
                    "[{index}] {}",
                    found["description"].as_str().unwrap_or("element")
                );
                let note = found["covered"].as_str().map(|over| {
                    format!("Element [{index}] is covered by {over} at that point; the click went there.")
                });
                let note = if found["visible"] == false {
                    Some(format!(
                        "Element [{index}] is not visible; the click may have missed it."
                    ))
                } else {
                    note
                };
                Ok(Aim {
                    x: found["x"].as_f64().unwrap_or(0.0),
                    y: found["y"].as_f64().unwrap_or(0.0),
                    what,
                    note,
                })
            }
            Target::Point { x, y } => {
                let view = self.scroll_state(tab).await?;
                if x < 0.0 || y < 0.0 || x >= view.width || y >= view.viewport {
                    return Err(StepError::Refused(format!(
                        "({x}, {y}) is outside the viewport, which is {}x{} px",
                        view.width, view.viewport
                    )));
                }
                let at = self.page_op(tab, "at", json!({"x": x, "y": y})).await?;
                Ok(Aim {
                    x,
                    y,
                    what: format!(
                        "({x}, {y}), on {}",
                        at["description"].as_str().unwrap_or("the page")
                    ),
                    note: None,
                })
            }
        }
    }

    async fn mouse(&self, tab: &Tab, kind: &str, x: f64, y: f64, buttons: u8) -> Step<()> {
        let mut event = json!({"type": kind, "x": x, "y": y, "buttons": buttons});
        if kind != "mouseMoved" {
            event["button"] = json!("left");
            event["clickCount"] = json!(1);
        }
        self.cdp
            .call("Input.dispatchMouseEvent", event, Some(&tab.session_id))
            .await
            .map(drop)
            .map_err(|source| StepError::Input {
                what: "the mouse event",
                source,
            })
    }

    async fn click_at(&self, tab: &Tab, x: f64, y: f64) -> Step<()> {
        self.mouse(tab, "mouseMoved", x, y, 0).await?;
        self.mouse(tab, "mousePressed", x, y, 1).await?;
        self.mouse(tab, "mouseReleased", x, y, 0).await
    }

    async fn click(&self, tab: &Tab, target: Target) -> Step<Report> {
        let aim = self.aim(tab, target).await?;
        let tabs = self.tabs_created();
        let events = self.cdp.events();
        self.click_at(tab, aim.x, aim.y).await?;
        let mut report = Report::ok(format!("Clicked {}", aim.what));
        if let Some(note) = aim.note {
            report.note(note);
        }
        for note in self.after_input(tab, events, tabs).await {
            report.note(note);
        }
        Ok(report)
    }

    async fn keys(&self, tab: &Tab, combo: &Combo) -> Step<()> {
        for event in combo.events() {
            self.cdp
                .call("Input.dispatchKeyEvent", event, Some(&tab.session_id))
                .await
                .map_err(|source| StepError::Input {
                    what: "the key event",
                    source,
                })?;
        }
        Ok(())
    }

    async fn input(
        &self,
        tab: &Tab,
        target: Option<Target>,
        text: &str,
        press_enter: bool,
    ) -> Step<Report> {
        let mut notes = Vec::new();
        if let Some(target) = target {
            let aim = self.aim(tab, target).await?;
            if let Target::Index(index) = target
                && aim.what.contains("<select")
            {
                return Err(StepError::Refused(format!(
                    "element [{index}] is a <select>: use browser_select_option"
                )));
            }
            notes.extend(aim.note);
            // focus it the way a person would
            self.click_at(tab, aim.x, aim.y).await?;
        }
        let focused = self.page_op_settled(tab, "focused", json!({})).await?;
        let what = focused["description"].as_str().unwrap_or("?").to_owned();
        if focused["editable"] != true {
            return Err(StepError::Refused(format!(
                "there is no text field to type into: the focused element is {what}"
            )));
        }
        // replace what is there: select it all, then type over it
        self.keys(tab, &Combo::parse("Control+a")?).await?;
        if text.is_empty() {
            self.keys(tab, &Combo::parse("Delete")?).await?;
        } else {
            self.cdp
                .call(
                    "Input.insertText",
                    json!({"text": text}),
                    Some(&tab.session_id),
                )
                .await
                .map_err(|source| StepError::Input {
                    what: "typing",
                    source,
                })?;
        }
        let typed = self.page_op(tab, "focused", json!({})).await;
        let what = typed
            .ok()
            .and_then(|f| f["description"].as_str().map(str::to_owned))
            .unwrap_or(what);
        let mut message = format!("Typed {} into {what}", report::quote(text, 200));
        if press_enter {
            let tabs = self.tabs_created();
            let events = self.cdp.events();
            self.keys(tab, &keys::enter()).await?;
            message.push_str(" and pressed Enter");
            notes.extend(self.after_input(tab, events, tabs).await);
        } else {
            self.quiet(tab, self.opts.settle_timeout / 2).await;
        }
        let mut report = Report::ok(message);
        for note in notes {
            report.note(note);
        }
        Ok(report)
    }

    async fn move_mouse(&self, tab: &Tab, x: f64, y: f64) -> Step<Report> {
        let aim = self.aim(tab, Target::Point { x, y }).await?;
        self.mouse(tab, "mouseMoved", x, y, 0).await?;
        self.quiet(tab, self.opts.settle_timeout / 2).await;
        Ok(Report::ok(format!("Moved the mouse to {}", aim.what)))
    }

    async fn press_key(&self, tab: &Tab, key: &str) -> Step<Report> {
        let combo = Combo::parse(key)?;
        let tabs = self.tabs_created();
        let events = self.cdp.events();
        self.keys(tab, &combo).await?;
        let mut report = Report::ok(format!("Pressed {}", key.trim()));
        for note in self.after_input(tab, events, tabs).await {
            report.note(note);
        }
        Ok(report)
    }

    async fn select_option(&self, tab: &Tab, index: u32, option: OptionChoice) -> Step<Report> {
        let tabs = self.tabs_created();
        let events = self.cdp.events();
        let chosen = self
            .page_op_settled(
                tab,
                "select",
                json!({"index": index, "position": option.position, "text": option.text}),
            )
            .await?;
        if chosen["error"] == "missing" {
            return Err(StepError::Refused(unknown_index(index, &chosen["indices"])));
        }
        if let Some(error) = chosen["error"].as_str() {
            return Err(StepError::Refused(error.to_owned()));
        }
        let mut report = Report::ok(format!(
            "Selected option {} {} in [{index}]",
            chosen["selected"],
            report::quote(chosen["text"].as_str().unwrap_or_default(), 100)
        ));
        for note in self.after_input(tab, events, tabs).await {
            report.note(note);
        }
        Ok(report)
    }

    async fn scroll(&self, tab: &Tab, down: bool, to_end: bool) -> Step<Report> {
        let before = self.scroll_state(tab).await?;
        if to_end {
            self.page_op(tab, "scrollEdge", json!({"bottom": down}))
                .await?;
        } else {
            // a wheel turn over the middle of the page, as a person would scroll
            let delta = (before.viewport * 0.8).round().max(100.0);
            let event = json!({
                "type": "mouseWheel",
                "x": (before.width / 2.0).round(),
                "y": (before.viewport / 2.0).round(),
                "deltaX": 0,
                "deltaY": if down { delta } else { -delta },
            });
            self.cdp
                .call("Input.dispatchMouseEvent", event, Some(&tab.session_id))
                .await
                .map_err(|source| StepError::Input {
                    what: "scrolling",
                    source,
                })?;
        }
        // wait until the position stops changing (a moment longer when it has not moved yet)
        let started = Instant::now();
        let mut last = before;
        let mut unchanged = 0;
        while started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.scroll_state(tab).await?;
            unchanged = if now == last { unchanged + 1 } else { 0 };
            last = now;
            let moved = last != before;
            if (moved && unchanged >= 2) || unchanged >= 6 {
                break;
            }
        }
        self.quiet(tab, self.opts.settle_timeout / 2).await;
        let direction = if down { "down" } else { "up" };
        if last.y == before.y && last.inner == before.inner {
            let edge = if down { "bottom" } else { "top" };
            return Ok(Report::ok(format!(
                "The page did not scroll {direction}: it is already at the {edge} (or nothing under the mouse scrolls)."
            )));
        }
        Ok(Report::ok(if last.y != before.y {
            format!(
                "Scrolled {direction} from {} px to {} px.",
                before.y.round(),
                last.y.round()
            )
        } else {
            format!("Scrolled the section under the mouse {direction}.")
        }))
    }
}

fn not_loaded(url: &url::Url, timeout: Duration) -> String {
    format!(
        "{url}: the page did not finish loading within {} s; this is what has loaded so far",
        timeout.as_secs_f64()
    )
}

fn unknown_index(index: u32, indices: &Value) -> String {
    let known: Vec<u64> = indices
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    match (known.first(), known.last()) {
        (Some(first), Some(last)) => format!(
            "there is no element [{index}] on the page now; the elements are numbered [{first}] to [{last}] (see elements)"
        ),
        _ => format!(
            "there is no element [{index}] on the page now, and no numbered elements: look at the page state again"
        ),
    }
}
