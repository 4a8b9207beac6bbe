//! Client for any OpenAI-compatible chat-completions API (OpenAI, Azure, DeepSeek,
//! OpenRouter, vLLM, llama.cpp, Ollama): streaming with tool-call deltas reassembled,
//! lenient parsing of non-conforming providers, retries with backoff on 429/5xx and broken
//! streams, and a stall watchdog that counts events rather than bytes.

mod client;
mod config;
mod error;
mod sse;
mod types;
mod wire;

pub use client::{ChatModel, LlmClient};
pub use config::LlmConfig;
pub use error::LlmError;
pub use types::{
    ChatMessage, ChatRequest, Completion, Role, StreamEvent, ToolCall, ToolChoice, ToolSpec, Usage,
    estimate_tokens,
};
