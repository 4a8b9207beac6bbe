//! The plan the planner makes: parsing `create_plan` / `update_plan` arguments leniently
//! (models send ids as numbers, omit them, or wrap the list oddly).

use ironhand_core::session::event::{PlanStep, StepStatus};
use serde_json::Value;

/// What `create_plan` carries besides the steps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewPlan {
    pub title: String,
    pub goal: String,
    pub language: String,
    pub steps: Vec<PlanStep>,
}

/// Why a `create_plan` call is not a usable plan: told to the model, which is asked again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefused {
    #[error("`steps` must be a list of {{id, description}}")]
    StepsNotAList,
    #[error("the plan needs at least one step with a description")]
    NoSteps,
}

const MAX_TITLE_CHARS: usize = 120;
const MAX_STEP_CHARS: usize = 1_000;

pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn text_field(args: &Value, key: &str) -> String {
    match args.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Parses a steps array; `None` when `steps` is missing or not a list. Steps without a
/// description are dropped; missing ids are numbered after `first_id`.
pub fn parse_steps(args: &Value, first_id: usize) -> Option<Vec<PlanStep>> {
    // Some models send the list as a JSON string.
    let decoded;
    let list = match args.get("steps")? {
        Value::Array(list) => list,
        Value::String(text) => {
            decoded = serde_json::from_str::<Value>(text).ok()?;
            decoded.as_array()?
        }
        _ => return None,
    };
    let mut steps = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let (id, description) = match item {
            Value::String(s) => (String::new(), s.trim().to_string()),
            Value::Object(_) => {
                let description = [text_field(item, "description"), text_field(item, "title")]
                    .into_iter()
                    .find(|d| !d.is_empty())
                    .unwrap_or_default();
                (text_field(item, "id"), description)
            }
            _ => continue,
        };
        if description.is_empty() {
            continue;
        }
        let id = if id.is_empty() {
            (first_id + i).to_string()
        } else {
            truncate_chars(&id, 40)
        };
        steps.push(PlanStep {
            id,
            description: truncate_chars(&description, MAX_STEP_CHARS),
            status: StepStatus::Pending,
        });
    }
    Some(steps)
}

/// Parses `create_plan`. A plan needs at least one step.
pub fn parse_create_plan(args: &Value) -> Result<NewPlan, PlanRefused> {
    let steps = parse_steps(args, 1).ok_or(PlanRefused::StepsNotAList)?;
    if steps.is_empty() {
        return Err(PlanRefused::NoSteps);
    }
    let mut title = truncate_chars(&text_field(args, "title"), MAX_TITLE_CHARS);
    if title.is_empty() {
        title = truncate_chars(&steps[0].description, MAX_TITLE_CHARS);
    }
    Ok(NewPlan {
        title,
        goal: text_field(args, "goal"),
        language: text_field(args, "language"),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_with_numeric_or_missing_ids_and_bare_strings_parse() {
        let plan = parse_create_plan(&json!({
            "title": "Hello", "goal": "g", "language": "en",
            "steps": [{"id": 1, "description": "one"}, {"description": "two"}, "three", {"id": "x"}]
        }))
        .expect("plan");
        let ids: Vec<_> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(plan.steps[2].description, "three");
    }

    #[test]
    fn steps_sent_as_a_json_string_parse_too() {
        let plan = parse_create_plan(
            &json!({"title": "t", "steps": "[{\"id\": \"1\", \"description\": \"one\"}]"}),
        )
        .expect("plan");
        assert_eq!(plan.steps[0].description, "one");
    }

    #[test]
    fn a_plan_without_steps_is_refused_and_titles_fall_back() {
        assert_eq!(
            parse_create_plan(&json!({"title": "t", "steps": []})),
            Err(PlanRefused::NoSteps)
        );
        let refused = parse_create_plan(&json!({"title": "t"})).expect_err("no steps");
        assert_eq!(
            refused.to_string(),
            "`steps` must be a list of {id, description}"
        );
        let plan = parse_create_plan(&json!({"steps": ["do it"]})).expect("plan");
        assert_eq!(plan.title, "do it");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
