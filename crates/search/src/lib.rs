//! Web search providers.
