//! The browser family: the twelve ai-manus browser tools over the sandbox's Chromium
//! (`ironhand-browser` drives it; the sandbox starts it on the first call). The model reads
//! the page as text; the user gets a screenshot after every call, stored as a file of the
//! session and named in the `tool` event's content (`screenshot_file_id`, signed into
//! `screenshot` when the event is read: a stored URL would expire).

use super::{ToolContext, ToolFamily, ToolOutcome};
use async_trait::async_trait;
use ironhand_llm::ToolSpec;
use serde_json::{Value, json};

pub struct BrowserTools;

#[async_trait]
impl ToolFamily for BrowserTools {
    fn group(&self) -> &'static str {
        "browser"
    }

    async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
        ironhand_browser::tool_specs()
            .into_iter()
            .map(|s| ToolSpec {
                name: s.name.to_string(),
                description: s.description.to_string(),
                parameters: s.parameters,
            })
            .collect()
    }

    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        let sandbox = match context.sandbox().await {
            Ok(sandbox) => sandbox.clone(),
            Err(error) => return error.into(),
        };
        let browser = match sandbox.browser().await {
            Ok(browser) => browser,
            Err(error) => return error.into(),
        };
        let outcome = browser.call(function, args).await;
        let content = match outcome.screenshot {
            Some(jpeg) => match context
                .files
                .store_screenshot(context.user, context.session, jpeg)
                .await
            {
                Ok(file) => Some(json!({ "screenshot_file_id": file.id.to_string() })),
                Err(why) => {
                    tracing::info!(%why, "a browser screenshot was not kept");
                    None
                }
            },
            None => None,
        };
        ToolOutcome {
            success: outcome.success,
            message: outcome.message,
            data: outcome.data,
            content,
        }
    }
}
