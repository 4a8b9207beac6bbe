//! `info_search_web` through the configured provider.

use super::{ToolOutcome, required_str};
use ironhand_search::{DateRange, SearchProvider};
use serde_json::{Value, json};

pub async fn call(provider: &dyn SearchProvider, args: &Value) -> ToolOutcome {
    let query = match required_str(args, "query") {
        Ok(q) => q,
        Err(failed) => return failed,
    };
    let range = args
        .get("date_range")
        .and_then(Value::as_str)
        .and_then(DateRange::parse)
        .unwrap_or(DateRange::All);
    match provider.search(query, range).await {
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
