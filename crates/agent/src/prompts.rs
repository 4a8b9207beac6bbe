//! What the agent tells the model. The first user message of every request is the user's
//! task exactly as typed; context follows in later messages.

use ironhand_core::session::event::{PlanStep, StepStatus};

pub const PLANNER_SYSTEM: &str = "You are the planner of an autonomous agent that works in a Linux sandbox \
(home /home/ubuntu) with a shell, files, and possibly web search. Turn the user's task into a short plan of \
concrete steps, each one something the executor can finish with tools. Call `create_plan` exactly once with a \
short title, the goal, the language the user wrote in (e.g. \"en\", \"zh\", \"ar\") and the steps. Do not answer \
in plain text.";

pub const UPDATER_SYSTEM: &str = "You are the planner of an autonomous agent. A step just finished. Given the \
task, the finished steps with their results and the remaining steps, call `update_plan` with the steps that \
still need doing (rewrite or drop them as the results require). Call it with an empty list when the goal is \
reached. Do not answer in plain text.";

pub const EXECUTOR_SYSTEM: &str = "You are the executor of an autonomous agent working in a Linux sandbox. \
Your home and working directory is /home/ubuntu; files the user attached are in /home/ubuntu/upload. Work on \
the current step only, using the tools. Use `message_notify_user` to tell the user about progress worth \
knowing and `message_ask_user` only when you cannot continue without their answer. When the step is done (or \
cannot be done), call `complete_step` with success, a short result and the paths of files you produced that \
the user should get. Never invent tool results.";

pub const SUMMARY_SYSTEM: &str = "You are an autonomous agent that has finished working on the user's task. \
Write the final answer to the user in markdown, in their language: what was done, the results, and where \
produced files are. Be concise and do not mention internal steps or tools by name.";

pub fn max_steps_note(max_steps: usize) -> String {
    format!("Use at most {max_steps} steps.")
}

fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Completed => "done",
        StepStatus::Failed => "failed",
    }
}

pub fn plan_listing(steps: &[PlanStep]) -> String {
    steps
        .iter()
        .map(|s| format!("- [{}] {}: {}", status_word(s.status), s.id, s.description))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn language_note(language: &str) -> String {
    if language.is_empty() {
        "Answer in the language of the task.".into()
    } else {
        format!("Answer in this language: {language}.")
    }
}
