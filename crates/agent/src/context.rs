//! Fitting a conversation into the model's window: oldest tool outputs are elided first,
//! then the oldest tool exchanges are dropped whole — never an assistant tool call without
//! its results, or a result without its call.

use ironhand_llm::{ChatMessage, Role, estimate_tokens};

const ELIDED: &str = "[output elided to fit the context window]";

/// Trims `messages` in place until they fit `budget` tokens. The first `keep_head` messages
/// (system prompt, task, context) and the newest exchange are always kept.
pub fn fit(messages: &mut Vec<ChatMessage>, budget: usize, keep_head: usize) {
    if estimate_tokens(messages) <= budget {
        return;
    }
    // 1. Elide tool outputs, oldest first, sparing the newest exchange.
    let last_call = last_exchange_start(messages).unwrap_or(messages.len());
    for i in keep_head..last_call {
        if messages[i].role == Role::Tool && messages[i].content.as_deref() != Some(ELIDED) {
            messages[i].content = Some(ELIDED.to_string());
            if estimate_tokens(messages) <= budget {
                return;
            }
        }
    }
    // 2. Drop whole exchanges (an assistant message and the tool results that follow it).
    while estimate_tokens(messages) > budget {
        let Some(start) =
            (keep_head..messages.len()).find(|&i| messages[i].role == Role::Assistant)
        else {
            return;
        };
        if Some(start) == last_exchange_start(messages) {
            return;
        }
        let mut end = start + 1;
        while end < messages.len() && messages[end].role == Role::Tool {
            end += 1;
        }
        messages.drain(start..end);
    }
}

fn last_exchange_start(messages: &[ChatMessage]) -> Option<usize> {
    messages.iter().rposition(|m| m.role == Role::Assistant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhand_llm::ToolCall;

    fn exchange(n: usize, size: usize) -> Vec<ChatMessage> {
        let call = ToolCall {
            id: format!("call_{n}"),
            name: "shell_exec".into(),
            arguments: "{}".into(),
        };
        let mut assistant = ChatMessage::assistant("");
        assistant.tool_calls = vec![call];
        vec![
            assistant,
            ChatMessage::tool_result(format!("call_{n}"), "x".repeat(size)),
        ]
    }

    fn conversation() -> Vec<ChatMessage> {
        let mut messages = vec![ChatMessage::system("sys"), ChatMessage::user("task")];
        for n in 0..6 {
            messages.extend(exchange(n, 4_000));
        }
        messages
    }

    fn pairs_intact(messages: &[ChatMessage]) -> bool {
        messages.iter().enumerate().all(|(i, m)| match m.role {
            Role::Tool => {
                let call_id = m.tool_call_id.as_deref();
                messages[..i]
                    .iter()
                    .rev()
                    .find(|p| p.role == Role::Assistant)
                    .is_some_and(|p| p.tool_calls.iter().any(|c| Some(c.id.as_str()) == call_id))
            }
            Role::Assistant => m.tool_calls.iter().all(|c| {
                messages[i + 1..]
                    .iter()
                    .any(|r| r.tool_call_id.as_deref() == Some(c.id.as_str()))
            }),
            _ => true,
        })
    }

    #[test]
    fn old_outputs_are_elided_before_anything_is_dropped() {
        let mut messages = conversation();
        let before = messages.len();
        let budget = estimate_tokens(&messages) - 1_500;
        fit(&mut messages, budget, 2);
        assert_eq!(messages.len(), before);
        assert_eq!(messages[3].content.as_deref(), Some(ELIDED));
        assert!(pairs_intact(&messages));
    }

    #[test]
    fn tiny_windows_drop_whole_exchanges_and_keep_the_head_and_newest() {
        let mut messages = conversation();
        fit(&mut messages, 1_200, 2);
        assert_eq!(messages[0].content.as_deref(), Some("sys"));
        assert_eq!(messages[1].content.as_deref(), Some("task"));
        assert!(pairs_intact(&messages));
        let last = messages.last().expect("newest");
        assert_eq!(last.tool_call_id.as_deref(), Some("call_5"));
        assert!(
            last.content
                .as_deref()
                .is_some_and(|c| c.starts_with("xxx"))
        );
    }
}
