//! A fake OpenAI-compatible chat-completions server driven by scenario files.
