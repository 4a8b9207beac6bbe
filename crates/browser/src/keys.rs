//! Key names and combinations (`Enter`, `Control+a`, `Shift+Tab`) as DevTools key events.

use serde_json::{Value, json};

/// One key as `Input.dispatchKeyEvent` wants it (US layout).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub key: String,
    pub code: String,
    pub key_code: u32,
    /// What the key types, when it types something.
    pub text: Option<String>,
}

const ALT: u32 = 1;
const CONTROL: u32 = 2;
const META: u32 = 4;
const SHIFT: u32 = 8;

/// A parsed combination: modifiers held while `key` is pressed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Combo {
    modifiers: Vec<(u32, Key)>,
    key: Key,
}

pub(crate) const KEY_HELP: &str = "use a key name (Enter, Tab, Escape, Backspace, Delete, Space, ArrowUp, ArrowDown, ArrowLeft, ArrowRight, Home, End, PageUp, PageDown, Insert, F1-F12), a single character, or a combination like Control+a or Shift+Tab";

/// Why a key or combination is not one `browser_press_key` knows: the sentence the model
/// reads, with the list of what it may use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidKey {
    #[error("the key is empty; {help}", help = KEY_HELP)]
    Empty,
    #[error("{0:?} is not a modifier (Control, Shift, Alt, Meta); {help}", help = KEY_HELP)]
    NotAModifier(String),
    #[error("unknown key {0:?}; {help}", help = KEY_HELP)]
    Unknown(String),
}

fn named(name: &str) -> Option<Key> {
    let lower = name.to_ascii_lowercase();
    let (key, code, key_code, text): (&str, &str, u32, Option<&str>) = match lower.as_str() {
        "enter" | "return" => ("Enter", "Enter", 13, Some("\r")),
        "tab" => ("Tab", "Tab", 9, None),
        "escape" | "esc" => ("Escape", "Escape", 27, None),
        "backspace" => ("Backspace", "Backspace", 8, None),
        "delete" | "del" => ("Delete", "Delete", 46, None),
        "space" | "spacebar" => (" ", "Space", 32, Some(" ")),
        "arrowup" | "up" => ("ArrowUp", "ArrowUp", 38, None),
        "arrowdown" | "down" => ("ArrowDown", "ArrowDown", 40, None),
        "arrowleft" | "left" => ("ArrowLeft", "ArrowLeft", 37, None),
        "arrowright" | "right" => ("ArrowRight", "ArrowRight", 39, None),
        "home" => ("Home", "Home", 36, None),
        "end" => ("End", "End", 35, None),
        "pageup" | "pgup" => ("PageUp", "PageUp", 33, None),
        "pagedown" | "pgdn" | "pgdown" => ("PageDown", "PageDown", 34, None),
        "insert" | "ins" => ("Insert", "Insert", 45, None),
        "control" | "ctrl" => ("Control", "ControlLeft", 17, None),
        "shift" => ("Shift", "ShiftLeft", 16, None),
        "alt" | "option" => ("Alt", "AltLeft", 18, None),
        "meta" | "cmd" | "command" | "super" | "win" => ("Meta", "MetaLeft", 91, None),
        _ => {
            let n = lower.strip_prefix('f')?.parse::<u32>().ok()?;
            if !(1..=12).contains(&n) {
                return None;
            }
            return Some(Key {
                key: format!("F{n}"),
                code: format!("F{n}"),
                key_code: 111 + n,
                text: None,
            });
        }
    };
    Some(Key {
        key: key.into(),
        code: code.into(),
        key_code,
        text: text.map(Into::into),
    })
}

fn character(c: char, shift: bool) -> Key {
    let (code, key_code) = match c.to_ascii_lowercase() {
        l @ 'a'..='z' => (format!("Key{}", l.to_ascii_uppercase()), u32::from(l) - 32),
        d @ '0'..='9' => (format!("Digit{d}"), u32::from(d)),
        '-' => ("Minus".into(), 189),
        '=' => ("Equal".into(), 187),
        '[' => ("BracketLeft".into(), 219),
        ']' => ("BracketRight".into(), 221),
        '\\' => ("Backslash".into(), 220),
        ';' => ("Semicolon".into(), 186),
        '\'' => ("Quote".into(), 222),
        ',' => ("Comma".into(), 188),
        '.' => ("Period".into(), 190),
        '/' => ("Slash".into(), 191),
        '`' => ("Backquote".into(), 192),
        _ => (String::new(), 0),
    };
    let c = if shift { c.to_ascii_uppercase() } else { c };
    Key {
        key: c.to_string(),
        code,
        key_code,
        text: Some(c.to_string()),
    }
}

impl Combo {
    pub(crate) fn parse(raw: &str) -> Result<Combo, InvalidKey> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(InvalidKey::Empty);
        }
        // "Control++" is Control and the + key
        let (mods, main) = match raw.strip_suffix("++") {
            Some(mods) => (mods, "+"),
            None if raw == "+" => ("", "+"),
            None => match raw.rsplit_once('+') {
                Some((mods, main)) => (mods, main),
                None => ("", raw),
            },
        };
        let mut modifiers = Vec::new();
        for name in mods.split('+').filter(|m| !m.trim().is_empty()) {
            let key = named(name.trim())
                .filter(|k| matches!(k.key.as_str(), "Control" | "Shift" | "Alt" | "Meta"))
                .ok_or_else(|| InvalidKey::NotAModifier(name.to_owned()))?;
            let bit = match key.key.as_str() {
                "Alt" => ALT,
                "Control" => CONTROL,
                "Meta" => META,
                _ => SHIFT,
            };
            modifiers.push((bit, key));
        }
        let shift = modifiers.iter().any(|(bit, _)| *bit == SHIFT);
        let main = main.trim();
        let mut chars = main.chars();
        let key = match (chars.next(), chars.next()) {
            (Some(c), None) if !c.is_control() => character(c, shift),
            _ => named(main).ok_or_else(|| InvalidKey::Unknown(main.to_owned()))?,
        };
        Ok(Combo { modifiers, key })
    }

    /// `Input.dispatchKeyEvent` parameters, in order: modifiers down, the key down and up,
    /// modifiers up.
    pub(crate) fn events(&self) -> Vec<Value> {
        let mut held = 0;
        let mut out = Vec::new();
        for (bit, key) in &self.modifiers {
            held |= bit;
            out.push(event("rawKeyDown", key, held, None));
        }
        // Text only when the key types: Control+a selects, it does not type "a".
        let types = held & (CONTROL | ALT | META) == 0;
        let text = self.key.text.as_deref().filter(|_| types);
        out.push(event(
            if text.is_some() {
                "keyDown"
            } else {
                "rawKeyDown"
            },
            &self.key,
            held,
            text,
        ));
        out.push(event("keyUp", &self.key, held, None));
        for (bit, key) in self.modifiers.iter().rev() {
            held &= !bit;
            out.push(event("keyUp", key, held, None));
        }
        out
    }
}

fn event(kind: &str, key: &Key, modifiers: u32, text: Option<&str>) -> Value {
    let mut e = json!({
        "type": kind,
        "key": key.key,
        "code": key.code,
        "windowsVirtualKeyCode": key.key_code,
        "nativeVirtualKeyCode": key.key_code,
        "modifiers": modifiers,
    });
    if let Some(text) = text {
        e["text"] = json!(text);
        e["unmodifiedText"] = json!(text);
    }
    e
}

/// Enter, as typed after text.
pub(crate) fn enter() -> Combo {
    Combo {
        modifiers: Vec::new(),
        key: named("Enter").unwrap_or_else(|| character('\r', false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_characters_and_combos_parse() {
        for ok in [
            "Enter",
            "enter",
            "Return",
            "Tab",
            "Escape",
            "Esc",
            "Backspace",
            "ArrowDown",
            "PageDown",
            "Control+a",
            "ctrl+A",
            "Shift+Tab",
            "Control+Shift+K",
            "F5",
            "a",
            "7",
            "Control++",
            "+",
            "Meta+ArrowLeft",
        ] {
            assert!(Combo::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Banana", "F13", "a+b", "Control+Banana"] {
            assert!(Combo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_a_sends_no_text_and_releases_control_last() {
        let events = Combo::parse("Control+a").expect("combo").events();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0]["key"], "Control");
        assert_eq!(events[1]["type"], "rawKeyDown");
        assert_eq!(events[1]["modifiers"], CONTROL);
        assert!(events[1].get("text").is_none());
        assert_eq!(events[3]["type"], "keyUp");
        assert_eq!(events[3]["key"], "Control");
        let enter = enter().events();
        assert_eq!(enter[0]["text"], "\r");
    }

    #[test]
    fn refusals_name_the_key_and_what_may_be_used() {
        let text = |raw: &str| Combo::parse(raw).expect_err(raw).to_string();
        assert_eq!(text(" "), format!("the key is empty; {KEY_HELP}"));
        assert_eq!(
            text("Banana"),
            format!("unknown key \"Banana\"; {KEY_HELP}")
        );
        assert_eq!(
            text("Hyper+a"),
            format!("\"Hyper\" is not a modifier (Control, Shift, Alt, Meta); {KEY_HELP}")
        );
    }
}
