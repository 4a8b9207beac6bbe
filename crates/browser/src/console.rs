//! `browser_console_exec` and `browser_console_view`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{Shared, Tab, remote_object_text};
use crate::cdp::CdpError;
use crate::page::{Step, StepError, exception_text};
use crate::report::{self, CONSOLE_CAP, Report};

/// Objects a `browser_console_exec` returns, released after the call.
const EXEC_GROUP: &str = "ironhand-exec";

impl Shared {
    pub(crate) async fn console_exec(&self, tab: &Tab, javascript: &str) -> Step<Report> {
        let console_before = self.console_total();
        let timeout = self.opts.call_timeout;
        let budget_ms = u64::try_from(
            timeout
                .saturating_sub(Duration::from_millis(500))
                .as_millis(),
        )
        .unwrap_or(1000)
        .max(100);
        let started = Instant::now();
        let answer = self
            .cdp
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": javascript,
                    "awaitPromise": true,
                    "returnByValue": false,
                    "generatePreview": true,
                    "userGesture": true,
                    "replMode": true,
                    "timeout": budget_ms,
                    "objectGroup": EXEC_GROUP,
                }),
                Some(&tab.session_id),
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            // Chromium ends a script that outlives the evaluation's timeout with an internal error
            Err(CdpError::Protocol { .. } | CdpError::Timeout { .. })
                if started.elapsed() >= Duration::from_millis(budget_ms) =>
            {
                return Ok(Report::failed(format!(
                    "The JavaScript was stopped after {:.1} s: it ran too long",
                    budget_ms as f64 / 1000.0
                )));
            }
            Err(e) => return Err(StepError::JavaScript(e)),
        };
        let console = self.console_since(console_before);
        let mut report = if let Some(details) = answer.get("exceptionDetails") {
            Report::failed(format!(
                "The JavaScript threw: {}",
                report::truncate(&exception_text(details), 1000)
            ))
        } else {
            let text = self.exec_value(tab, &answer["result"]).await;
            let total = text.chars().count();
            let mut shown = report::truncate(&text, CONSOLE_CAP);
            if total > CONSOLE_CAP {
                shown.push_str(&format!(
                    "\n(… the value is cut at {CONSOLE_CAP} of its {total} characters)"
                ));
            }
            Report::ok("The JavaScript ran; its value is in result.").with("result", shown)
        };
        let _ = self
            .cdp
            .call(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": EXEC_GROUP}),
                Some(&tab.session_id),
            )
            .await;
        if !console.is_empty() {
            report = report.with("console", cap_lines(&console, CONSOLE_CAP));
        }
        self.quiet(tab, self.opts.settle_timeout / 2).await;
        Ok(report)
    }

    /// A `browser_console_exec` value as text: JSON for data, markup for a DOM node, the
    /// console's description for functions, dates, errors and the like.
    pub(crate) async fn exec_value(&self, tab: &Tab, result: &Value) -> String {
        let Some(object) = result["objectId"].as_str() else {
            return match result.get("value") {
                Some(Value::String(s)) => s.clone(),
                _ => remote_object_text(result),
            };
        };
        let plain = matches!(result["subtype"].as_str(), None | Some("array"))
            && result["type"] == "object";
        let function = match result["subtype"].as_str() {
            Some("node") => {
                "function () { return this.outerHTML ?? this.textContent ?? String(this) }"
            }
            _ if plain => "function () { return this }",
            _ => return remote_object_text(result),
        };
        let value = self
            .cdp
            .call(
                "Runtime.callFunctionOn",
                json!({"objectId": object, "functionDeclaration": function, "returnByValue": true}),
                Some(&tab.session_id),
            )
            .await;
        match value {
            Ok(v) if v.get("exceptionDetails").is_none() => match &v["result"]["value"] {
                Value::String(s) => s.clone(),
                Value::Null if v["result"]["type"] == "undefined" => remote_object_text(result),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            },
            // a cycle, or too deep: the console's preview
            _ => remote_object_text(result),
        }
    }

    pub(crate) fn console_view(&self, max_lines: usize) -> Report {
        let (lines, kept) = self.console_tail(max_lines);
        if lines.is_empty() {
            return Report::ok("The console is empty.").with("console", "");
        }
        Report::ok(format!(
            "The latest {} of {kept} console lines kept (the browser keeps the last {}).",
            lines.len(),
            self.opts.console_lines
        ))
        .with("console", cap_lines(&lines, CONSOLE_CAP))
    }
}

/// The last lines that fit in `cap` characters, with a note when older ones were left out.
fn cap_lines(lines: &[String], cap: usize) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let n = line.chars().count() + 1;
        if used + n > cap {
            break;
        }
        used += n;
        kept.push(line);
    }
    kept.reverse();
    let mut text = String::new();
    if kept.len() < lines.len() {
        text.push_str(&format!(
            "(… {} older lines left out: the output is capped at {cap} characters)\n",
            lines.len() - kept.len()
        ));
    }
    text.push_str(&kept.join("\n"));
    text
}
