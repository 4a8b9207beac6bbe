//! Ironhand's MCP client: how the agent talks to Model Context Protocol tool servers.
//!
//! # Design
//!
//! [`McpClient`] is one initialised session with one server, built on the official Rust SDK
//! (`rmcp`, client side only). It does three things: `list_tools`, `call_tool` and telling
//! whether the session is gone (`is_closed`). Everything else the protocol offers (prompts,
//! resources, sampling) is not used by the agent and not exposed.
//!
//! ## Transports
//!
//! * **stdio** ([`McpClient::connect_stdio`]): the caller spawns the server (inside its
//!   sandbox) and hands over the child's stdout and stdin; this crate never starts
//!   processes. Messages are newline-delimited JSON-RPC through the SDK's async read/write
//!   transport, behind a guard (`stdio` module) that ends the connection on a line longer
//!   than [`MAX_MESSAGE_BYTES`] and counts lines that are not JSON (a server logging to
//!   stdout), so a failed start says why.
//! * **streamable HTTP** ([`RemoteTransport::StreamableHttp`]): the SDK's transport over our
//!   own `reqwest` client (see below), the configured headers on every request, responses
//!   and stream events bounded to [`MAX_MESSAGE_BYTES`].
//! * **legacy HTTP+SSE** ([`RemoteTransport::Sse`], MCP 2024-11-05), which the SDK no
//!   longer ships: implemented here (`sse` module) on the SDK's `Transport` trait.
//!   `GET` the SSE URL, the first `endpoint` event names the `POST` URL (resolved against
//!   the SSE URL, refused unless on the same origin), client messages are `POST`ed, server
//!   messages arrive as `message` events. The event stream is read inside the transport's
//!   `receive`, so no task outlives the session. The decoder (`event_stream` module) bounds one
//!   event to [`MAX_MESSAGE_BYTES`].
//!
//! ## Policy for remote servers
//!
//! [`check_url`] accepts `http`/`https` URLs without credentials. Unless the server is
//! configured with `allow_private`, a literal host must be a public address (loopback,
//! RFC 1918, unique-local, link-local including the cloud metadata address, CGNAT,
//! unspecified, multicast and reserved ranges are refused, also in IPv4-mapped or embedded
//! IPv6 forms) and `localhost`/`*.localhost` are refused by name. Names are checked after
//! resolution too: the HTTP client resolves through [`PublicOnlyResolver`], which drops
//! non-public addresses (so DNS rebinding to 127.0.0.1 fails with [`McpError::Refused`]).
//! Redirects are followed only within the server's origin (its headers usually hold a key)
//! and re-checked; no proxy is used (it would resolve names out of the policy's reach).
//!
//! ## Time limits and bounds
//!
//! Every operation takes a deadline: `connect_*` bounds the whole handshake, `list_tools`
//! the whole pagination (at most [`MAX_TOOL_PAGES`] pages, [`MAX_TOOLS`] tools), each
//! `call_tool` its call (a call abandoned at its deadline is cancelled with the server).
//! The HTTP clients have connect (10 s) and read (300 s of silence) timeouts; a legacy SSE stream, idle by nature, relies on TCP
//! keep-alive instead. A server that answers garbage or nothing fails within its deadline;
//! one that dies is seen by `is_closed` and fails pending calls with [`McpError::Closed`].
//!
//! ## Secrets
//!
//! Header values (and a stdio server's environment, which its caller handles) are secrets:
//! they are marked sensitive, never logged nor put in errors; logs name servers and URLs
//! without their query string.

mod client;
mod content;
mod error;
mod event_stream;
mod http_client;
pub mod policy;
mod sse;
mod stdio;

pub use client::{MAX_TOOL_PAGES, MAX_TOOLS, McpClient, McpTool, Remote, RemoteTransport};
pub use content::{McpCallResult, McpContent};
pub use error::McpError;
pub use policy::{PublicOnlyResolver, check_url};

/// The largest single message accepted from a server (a stdio line, an SSE event, a JSON
/// response body): 8 MiB.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
