//! The search family: `info_search_web` through the configured provider.

use super::{ToolContext, ToolFamily, ToolOutcome, required_str, spec};
use async_trait::async_trait;
use ironhand_llm::ToolSpec;
use ironhand_search::{DateRange, SearchProvider};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct SearchTools {
    provider: Arc<dyn SearchProvider>,
}

impl SearchTools {
    pub fn new(provider: Arc<dyn SearchProvider>) -> Self {
        Self { provider }
    }
}

#[async_trait]
impl ToolFamily for SearchTools {
    fn group(&self) -> &'static str {
        "search"
    }

    async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
        vec![spec(
            "info_search_web",
            "Search the web.",
            json!({"query": {"type": "string"}, "date_range": {"type": "string",
                "enum": ["all", "past_hour", "past_day", "past_week", "past_month", "past_year"]}}),
            &["query"],
        )]
    }

    async fn call(&self, _context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        if function != "info_search_web" {
            return ToolOutcome::failed(format!("Unknown tool `{function}`."));
        }
        let query = match required_str(args, "query") {
            Ok(q) => q,
            Err(failed) => return failed,
        };
        let range = args
            .get("date_range")
            .and_then(Value::as_str)
            .and_then(DateRange::parse)
            .unwrap_or(DateRange::All);
        match self.provider.search(query, range).await {
            Ok(results) => {
                let results = serde_json::to_value(&results).unwrap_or(Value::Null);
                ToolOutcome::ok(
                    format!("Search results for: {query}"),
                    json!({ "results": results }),
                    Some(json!({ "results": results })),
                )
            }
            Err(error) => ToolOutcome::failed(format!("Search failed: {error}")),
        }
    }
}
