//! The browser tools as the model sees them (names, descriptions, JSON schemas) and their
//! arguments parsed into [`Action`]s: lenient about how a value is written (`"3"`, `3.0`,
//! `"true"`), strict about what it means.

use serde_json::{Map, Value, json};

/// `browser_restart` is in the tool list, but restarting Chromium is the sandbox's job:
/// stop the process, start it again, [`Browser::connect`](crate::Browser::connect) to the new
/// pipe and navigate.
pub const RESTART_TOOL: &str = "browser_restart";

/// One tool for the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// A JSON schema (`type: object`).
    pub parameters: Value,
}

/// The browser tools of the API's tool table, in its order.
pub fn tool_specs() -> Vec<ToolSpec> {
    let index = json!({"type": "integer", "description": "Index of an interactive element, as numbered in the latest page state"});
    let x = json!({"type": "number", "description": "X coordinate in viewport pixels (the screenshot's pixels)"});
    let y = json!({"type": "number", "description": "Y coordinate in viewport pixels (the screenshot's pixels)"});
    let spec = |name, description, properties: Value, required: &[&str]| ToolSpec {
        name,
        description,
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    };
    vec![
        spec(
            "browser_view",
            "Show the current page: URL, title, numbered interactive elements in the viewport and the page text as markdown.",
            json!({}),
            &[],
        ),
        spec(
            "browser_navigate",
            "Open a URL (http, https, about:blank, or file:// under the home directory) and wait for it to load.",
            json!({"url": {"type": "string", "description": "Complete URL including the scheme"}}),
            &["url"],
        ),
        spec(
            RESTART_TOOL,
            "Restart the browser (a fresh process, same profile) and open a URL. Use when the browser stopped responding.",
            json!({"url": {"type": "string", "description": "Complete URL to open after the restart"}}),
            &["url"],
        ),
        spec(
            "browser_click",
            "Click an element by its index, or at viewport coordinates.",
            json!({"index": index, "coordinate_x": x, "coordinate_y": y}),
            &[],
        ),
        spec(
            "browser_input",
            "Replace the text of an editable element (by index, at coordinates, or the focused one) and optionally press Enter.",
            json!({
                "text": {"type": "string", "description": "The text to type"},
                "press_enter": {"type": "boolean", "description": "Press Enter after typing"},
                "index": index, "coordinate_x": x, "coordinate_y": y
            }),
            &["text", "press_enter"],
        ),
        spec(
            "browser_move_mouse",
            "Move the mouse to viewport coordinates (hover).",
            json!({"coordinate_x": x, "coordinate_y": y}),
            &["coordinate_x", "coordinate_y"],
        ),
        spec(
            "browser_press_key",
            "Press a key or a combination: Enter, Tab, Escape, Backspace, Delete, ArrowUp/Down/Left/Right, Home, End, PageUp, PageDown, F1-F12, a character, or combos like Control+a, Shift+Tab.",
            json!({"key": {"type": "string", "description": "Key name or combination joined with +"}}),
            &["key"],
        ),
        spec(
            "browser_select_option",
            "Choose an option of a <select> element.",
            json!({
                "index": {"type": "integer", "description": "Index of the select element, as numbered in the latest page state"},
                "option": {"type": ["integer", "string"], "description": "The option's 0-based position in the list (or its text)"}
            }),
            &["index", "option"],
        ),
        spec(
            "browser_scroll_up",
            "Scroll up by one screen, or to the top.",
            json!({"to_top": {"type": "boolean", "description": "Scroll all the way to the top"}}),
            &[],
        ),
        spec(
            "browser_scroll_down",
            "Scroll down by one screen, or to the bottom.",
            json!({"to_bottom": {"type": "boolean", "description": "Scroll all the way to the bottom"}}),
            &[],
        ),
        spec(
            "browser_console_exec",
            "Run JavaScript in the page (top-level await allowed) and return its value.",
            json!({"javascript": {"type": "string", "description": "JavaScript code"}}),
            &["javascript"],
        ),
        spec(
            "browser_console_view",
            "Show the page's recent console messages and uncaught errors.",
            json!({"max_lines": {"type": "integer", "description": "How many of the latest lines to show (default 100, at most 500)"}}),
            &[],
        ),
    ]
}

/// Where a click or typing goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    Index(u32),
    Point { x: f64, y: f64 },
}

/// Which option of a select: its position, its text, or (a numeric string) either.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptionChoice {
    pub position: Option<u32>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    View,
    Navigate {
        url: String,
    },
    Click(Target),
    Input {
        target: Option<Target>,
        text: String,
        press_enter: bool,
    },
    MoveMouse {
        x: f64,
        y: f64,
    },
    PressKey {
        key: String,
    },
    SelectOption {
        index: u32,
        option: OptionChoice,
    },
    Scroll {
        down: bool,
        to_end: bool,
    },
    ConsoleExec {
        javascript: String,
    },
    ConsoleView {
        max_lines: usize,
    },
}

/// What is wrong with a browser tool call's arguments: the sentence the model reads, naming
/// the parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum InvalidCall {
    #[error("the arguments must be a JSON object, got {0}")]
    NotAnObject(Value),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("give index, or coordinate_x and coordinate_y")]
    NoTarget,
    #[error("give both coordinate_x and coordinate_y")]
    HalfAPoint,
    #[error("{name} must be a string, got {got}")]
    NotAString { name: &'static str, got: Value },
    #[error("{name} must be a number, got {got}")]
    NotANumber { name: &'static str, got: Value },
    #[error("{name} must be a whole number, got {got}")]
    NotWhole { name: &'static str, got: Value },
    #[error("{name} must be 0 or more, got {got}")]
    Negative { name: &'static str, got: i64 },
    #[error("{name} must be true or false, got {got:?}")]
    NotABooleanWord { name: &'static str, got: String },
    #[error("{name} must be true or false, got {got}")]
    NotABoolean { name: &'static str, got: Value },
    #[error("{name} must be the option's position (0, 1, …) or its text, got {got}")]
    NotAnOption { name: &'static str, got: Value },
    #[error("max_lines must be at least 1, got {0}")]
    TooFewLines(i64),
    #[error(
        "browser_restart is carried out by the sandbox, which restarts Chromium and connects again"
    )]
    Restart,
    #[error("{0} is not a browser tool")]
    UnknownTool(String),
}

pub(crate) const CONSOLE_VIEW_DEFAULT: usize = 100;
pub(crate) const CONSOLE_VIEW_MAX: usize = 500;

impl Action {
    /// The action a tool call asks for, or the sentence saying what is wrong with it.
    pub(crate) fn parse(function: &str, args: &Value) -> Result<Action, InvalidCall> {
        let empty = Map::new();
        let args = match args {
            Value::Object(map) => map,
            Value::Null => &empty,
            other => return Err(InvalidCall::NotAnObject(other.clone())),
        };
        let a = Args(args);
        Ok(match function {
            "browser_view" => Action::View,
            "browser_navigate" => Action::Navigate {
                url: a.required_string("url")?,
            },
            "browser_click" => Action::Click(a.target()?.ok_or(InvalidCall::NoTarget)?),
            "browser_input" => Action::Input {
                target: a.target()?,
                text: a.required_string("text")?,
                press_enter: a
                    .boolean("press_enter")?
                    .ok_or(InvalidCall::Missing("press_enter"))?,
            },
            "browser_move_mouse" => Action::MoveMouse {
                x: a.number("coordinate_x")?
                    .ok_or(InvalidCall::Missing("coordinate_x"))?,
                y: a.number("coordinate_y")?
                    .ok_or(InvalidCall::Missing("coordinate_y"))?,
            },
            "browser_press_key" => Action::PressKey {
                key: a.required_string("key")?,
            },
            "browser_select_option" => Action::SelectOption {
                index: a.index("index")?.ok_or(InvalidCall::Missing("index"))?,
                option: a.option_choice("option")?,
            },
            "browser_scroll_up" => Action::Scroll {
                down: false,
                to_end: a.boolean("to_top")?.unwrap_or(false),
            },
            "browser_scroll_down" => Action::Scroll {
                down: true,
                to_end: a.boolean("to_bottom")?.unwrap_or(false),
            },
            "browser_console_exec" => Action::ConsoleExec {
                javascript: a.required_string("javascript")?,
            },
            "browser_console_view" => {
                let max = a.int("max_lines")?;
                let max_lines = match max {
                    None => CONSOLE_VIEW_DEFAULT,
                    Some(n) if n >= 1 => usize::try_from(n)
                        .unwrap_or(CONSOLE_VIEW_MAX)
                        .min(CONSOLE_VIEW_MAX),
                    Some(n) => return Err(InvalidCall::TooFewLines(n)),
                };
                Action::ConsoleView { max_lines }
            }
            RESTART_TOOL => return Err(InvalidCall::Restart),
            other => return Err(InvalidCall::UnknownTool(other.to_owned())),
        })
    }
}

struct Args<'a>(&'a Map<String, Value>);

impl Args<'_> {
    /// The value, with `null` (and an empty string for non-text parameters) meaning absent.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn required_string(&self, name: &'static str) -> Result<String, InvalidCall> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
            Some(other) => Err(InvalidCall::NotAString {
                name,
                got: other.clone(),
            }),
            None => Err(InvalidCall::Missing(name)),
        }
    }

    fn number(&self, name: &'static str) -> Result<Option<f64>, InvalidCall> {
        let n = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(InvalidCall::NotANumber {
                name,
                got: self.0[name].clone(),
            }),
        }
    }

    fn int(&self, name: &'static str) -> Result<Option<i64>, InvalidCall> {
        match self.number(name)? {
            None => Ok(None),
            // 3.0 is 3; 3.5 is a mistake
            Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => Ok(Some(n as i64)),
            Some(_) => Err(InvalidCall::NotWhole {
                name,
                got: self.0[name].clone(),
            }),
        }
    }

    fn index(&self, name: &'static str) -> Result<Option<u32>, InvalidCall> {
        match self.int(name)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| InvalidCall::Negative { name, got: n }),
        }
    }

    fn boolean(&self, name: &'static str) -> Result<Option<bool>, InvalidCall> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Some(false)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Some(true)),
                "false" | "no" | "0" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(InvalidCall::NotABooleanWord {
                    name,
                    got: s.clone(),
                }),
            },
            Some(other) => Err(InvalidCall::NotABoolean {
                name,
                got: other.clone(),
            }),
        }
    }

    /// `index`, else `coordinate_x` and `coordinate_y` together; an index wins when a model
    /// sends both.
    fn target(&self) -> Result<Option<Target>, InvalidCall> {
        if let Some(index) = self.index("index")? {
            return Ok(Some(Target::Index(index)));
        }
        match (self.number("coordinate_x")?, self.number("coordinate_y")?) {
            (Some(x), Some(y)) => Ok(Some(Target::Point { x, y })),
            (None, None) => Ok(None),
            _ => Err(InvalidCall::HalfAPoint),
        }
    }

    fn option_choice(&self, name: &'static str) -> Result<OptionChoice, InvalidCall> {
        match self.get(name) {
            None => Err(InvalidCall::Missing(name)),
            Some(Value::Number(_)) => Ok(OptionChoice {
                position: Some(self.index(name)?.ok_or(InvalidCall::Missing(name))?),
                text: None,
            }),
            Some(Value::String(s)) => Ok(OptionChoice {
                position: s.trim().parse::<u32>().ok(),
                text: Some(s.clone()),
            }),
            Some(other) => Err(InvalidCall::NotAnOption {
                name,
                got: other.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_cover_the_api_table() {
        let names: Vec<_> = tool_specs().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "browser_view",
                "browser_navigate",
                "browser_restart",
                "browser_click",
                "browser_input",
                "browser_move_mouse",
                "browser_press_key",
                "browser_select_option",
                "browser_scroll_up",
                "browser_scroll_down",
                "browser_console_exec",
                "browser_console_view"
            ]
        );
    }

    #[test]
    fn numbers_written_as_strings_or_floats_are_accepted() {
        let click = Action::parse("browser_click", &json!({"index": "3"}));
        assert_eq!(click, Ok(Action::Click(Target::Index(3))));
        let click = Action::parse("browser_click", &json!({"index": 4.0}));
        assert_eq!(click, Ok(Action::Click(Target::Index(4))));
        let click = Action::parse(
            "browser_click",
            &json!({"coordinate_x": "10.5", "coordinate_y": 20}),
        );
        assert_eq!(click, Ok(Action::Click(Target::Point { x: 10.5, y: 20.0 })));
        let input = Action::parse(
            "browser_input",
            &json!({"text": "hi", "press_enter": "true", "index": null}),
        );
        assert_eq!(
            input,
            Ok(Action::Input {
                target: None,
                text: "hi".into(),
                press_enter: true
            })
        );
    }

    #[test]
    fn wrong_values_are_refused_with_the_parameter_named() {
        for (f, args, word) in [
            ("browser_click", json!({"index": 2.5}), "whole number"),
            ("browser_click", json!({"index": -1}), "0 or more"),
            ("browser_click", json!({}), "give index"),
            ("browser_click", json!({"coordinate_x": 3}), "both"),
            ("browser_input", json!({"text": "x"}), "press_enter"),
            ("browser_navigate", json!({}), "url is required"),
            (
                "browser_move_mouse",
                json!({"coordinate_x": "abc", "coordinate_y": 1}),
                "coordinate_x",
            ),
            ("browser_console_view", json!({"max_lines": 0}), "max_lines"),
            (
                "browser_select_option",
                json!({"index": 1}),
                "option is required",
            ),
            ("browser_fly", json!({}), "not a browser tool"),
            ("browser_view", json!([1]), "JSON object"),
        ] {
            let err = Action::parse(f, &args).expect_err(f).to_string();
            assert!(err.contains(word), "{f} {args}: {err}");
        }
    }

    #[test]
    fn refusals_are_the_sentences_the_model_reads() {
        let text = |f: &str, args: Value| Action::parse(f, &args).expect_err(f).to_string();
        assert_eq!(
            text("browser_click", json!({"index": 2.5})),
            "index must be a whole number, got 2.5"
        );
        assert_eq!(
            text("browser_click", json!({"index": -1})),
            "index must be 0 or more, got -1"
        );
        assert_eq!(
            text(
                "browser_input",
                json!({"text": "x", "press_enter": "maybe"})
            ),
            "press_enter must be true or false, got \"maybe\""
        );
        assert_eq!(
            text("browser_input", json!({"text": [1], "press_enter": true})),
            "text must be a string, got [1]"
        );
        assert_eq!(
            text("browser_select_option", json!({"index": 1, "option": true})),
            "option must be the option's position (0, 1, …) or its text, got true"
        );
        assert_eq!(
            text("browser_view", json!([1])),
            "the arguments must be a JSON object, got [1]"
        );
        assert_eq!(
            text("browser_console_view", json!({"max_lines": -3})),
            "max_lines must be at least 1, got -3"
        );
    }
}
