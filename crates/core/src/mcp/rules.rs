//! What a user's connector may be: names, transports, the operator's command allow-list and
//! the bounds of every field. Each refusal names the field and says why.

use super::{McpScope, McpServerConfig, McpServerInput, McpTransport};
use crate::error::{DomainError, FieldError};
use std::collections::BTreeMap;

/// The operator's rules for users' connectors (`[mcp]` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRules {
    /// Users may add connectors of their own.
    pub user_servers: bool,
    /// Programs a user's stdio connector may start (matched by exact name; empty: no user
    /// stdio connectors).
    pub user_stdio_commands: Vec<String>,
    /// Users' connectors may point at loopback, private and link-local addresses.
    pub user_private_urls: bool,
    /// Connectors per user.
    pub max_user_servers: usize,
}

impl Default for McpRules {
    fn default() -> Self {
        Self {
            user_servers: true,
            user_stdio_commands: ["npx", "uvx", "python3", "node"].map(String::from).to_vec(),
            user_private_urls: false,
            max_user_servers: 20,
        }
    }
}

const MAX_NAME: usize = 64;
const MAX_COMMAND: usize = 256;
const MAX_ARGS: usize = 64;
const MAX_ARG: usize = 4096;
const MAX_SECRETS: usize = 64;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 8192;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;
/// Headers the HTTP client sets itself.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "accept",
];

/// 1–64 of `A-Z a-z 0-9 _ -`, starting and ending with a letter or digit, without `__`:
/// the name becomes part of tool names (`mcp__<name>__<tool>`), read back by splitting at
/// `__`.
pub fn valid_server_name(name: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge_ok(name.as_bytes().first())
        && edge_ok(name.as_bytes().last())
        && name.len() <= MAX_NAME
        && !name.contains("__")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn field(errors: &mut Vec<FieldError>, name: &str, message: impl Into<String>) {
    errors.push(FieldError::new(name, message));
}

fn has_nul_or_control(text: &str) -> bool {
    text.chars().any(|c| c == '\0' || c == '\r' || c == '\n')
}

impl McpRules {
    /// The connector `input` describes, with the secrets sent as `null` taken from
    /// `stored` (the connector it replaces, if any).
    pub fn user_server(
        &self,
        input: McpServerInput,
        stored: Option<&McpServerConfig>,
    ) -> Result<McpServerConfig, DomainError> {
        let mut errors = Vec::new();
        let name = input.name.clone();
        if !valid_server_name(&name) {
            field(
                &mut errors,
                "name",
                "Use 1 to 64 letters, digits, `_` or `-`, starting and ending with a letter or \
                 digit, without `__`.",
            );
        }
        // Exactly the API's names here (config files may use the others).
        let transport = match input.transport.as_str() {
            "stdio" => Some(McpTransport::Stdio),
            "sse" => Some(McpTransport::Sse),
            "streamable-http" => Some(McpTransport::StreamableHttp),
            _ => None,
        };
        if transport.is_none() {
            field(
                &mut errors,
                "transport",
                "Unknown transport: use stdio, sse or streamable-http.",
            );
        }
        let description = input
            .description
            .as_deref()
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            field(
                &mut errors,
                "description",
                format!("At most {MAX_DESCRIPTION} characters."),
            );
        }
        let mut config = McpServerConfig {
            name,
            scope: McpScope::User,
            transport: transport.unwrap_or(McpTransport::Stdio),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            url: None,
            headers: BTreeMap::new(),
            enabled: input.enabled.unwrap_or(true),
            description,
        };
        match transport {
            Some(McpTransport::Stdio) => {
                if input.url.is_some() {
                    field(&mut errors, "url", "A stdio connector has no URL.");
                }
                if input.headers.as_ref().is_some_and(|h| !h.is_empty()) {
                    field(&mut errors, "headers", "A stdio connector has no headers.");
                }
                self.stdio_fields(&input, stored, &mut config, &mut errors);
            }
            Some(McpTransport::Sse | McpTransport::StreamableHttp) => {
                if input.command.is_some() {
                    field(
                        &mut errors,
                        "command",
                        "Only stdio connectors run a command.",
                    );
                }
                if input.args.as_ref().is_some_and(|a| !a.is_empty()) {
                    field(&mut errors, "args", "Only stdio connectors take arguments.");
                }
                if input.env.as_ref().is_some_and(|e| !e.is_empty()) {
                    field(
                        &mut errors,
                        "env",
                        "Only stdio connectors take an environment.",
                    );
                }
                remote_fields(&input, stored, &mut config, &mut errors);
            }
            None => {}
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(DomainError::Validation(errors))
        }
    }

    fn stdio_fields(
        &self,
        input: &McpServerInput,
        stored: Option<&McpServerConfig>,
        config: &mut McpServerConfig,
        errors: &mut Vec<FieldError>,
    ) {
        let command = input.command.as_deref().map(str::trim).unwrap_or_default();
        if command.is_empty() {
            field(errors, "command", "A stdio connector needs a command.");
        } else if command.len() > MAX_COMMAND || has_nul_or_control(command) {
            field(errors, "command", "This command is not valid.");
        } else if !self.user_stdio_commands.iter().any(|c| c == command) {
            let allowed = if self.user_stdio_commands.is_empty() {
                "this server allows none".to_string()
            } else {
                format!("allowed: {}", self.user_stdio_commands.join(", "))
            };
            field(
                errors,
                "command",
                format!("`{command}` is not a command connectors may run ({allowed})."),
            );
        } else {
            config.command = Some(command.to_string());
        }
        let args = input.args.clone().unwrap_or_default();
        if args.len() > MAX_ARGS {
            field(errors, "args", format!("At most {MAX_ARGS} arguments."));
        } else if args.iter().any(|a| a.len() > MAX_ARG || a.contains('\0')) {
            field(
                errors,
                "args",
                format!("Each argument: at most {MAX_ARG} bytes, no NUL."),
            );
        } else {
            config.args = args;
        }
        config.env = secrets(
            "env",
            input.env.as_ref(),
            stored.map(|s| &s.env),
            errors,
            |key| {
                let mut bytes = key.bytes();
                bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            },
            "Variable names are letters, digits and `_`, not starting with a digit.",
        );
    }
}

fn remote_fields(
    input: &McpServerInput,
    stored: Option<&McpServerConfig>,
    config: &mut McpServerConfig,
    errors: &mut Vec<FieldError>,
) {
    let url = input.url.as_deref().map(str::trim).unwrap_or_default();
    if url.is_empty() {
        field(errors, "url", "This connector needs a URL.");
    } else if url.len() > MAX_URL || has_nul_or_control(url) {
        field(errors, "url", "This URL is not valid.");
    } else if !(url.starts_with("http://") || url.starts_with("https://")) {
        field(errors, "url", "Use an http:// or https:// URL.");
    } else {
        config.url = Some(url.to_string());
    }
    config.headers = secrets(
        "headers",
        input.headers.as_ref(),
        stored.map(|s| &s.headers),
        errors,
        |key| {
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                && !RESERVED_HEADERS.contains(&key.to_ascii_lowercase().as_str())
        },
        "Header names are HTTP tokens; Host, Content-Length, Content-Type, Accept, \
         Connection and Transfer-Encoding are set by the server.",
    );
}

/// The secrets of `input` (`null` = the stored value of that name), checked.
fn secrets(
    name: &str,
    input: Option<&BTreeMap<String, Option<String>>>,
    stored: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<FieldError>,
    valid_key: impl Fn(&str) -> bool,
    key_rule: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(input) = input else {
        return out;
    };
    if input.len() > MAX_SECRETS {
        field(errors, name, format!("At most {MAX_SECRETS} entries."));
        return out;
    }
    for (key, value) in input {
        if key.is_empty() || key.len() > MAX_KEY || !valid_key(key) {
            field(
                errors,
                name,
                format!("`{}`: {key_rule}", key.escape_debug()),
            );
            continue;
        }
        let value = match value {
            Some(v) => v.clone(),
            None => match stored.and_then(|s| s.get(key)) {
                Some(kept) => kept.clone(),
                None => {
                    field(
                        errors,
                        name,
                        format!("`{key}` has no stored value to keep: send its value."),
                    );
                    continue;
                }
            },
        };
        if value.len() > MAX_VALUE || has_nul_or_control(&value) {
            field(
                errors,
                name,
                format!("`{key}`: at most {MAX_VALUE} bytes on one line."),
            );
            continue;
        }
        out.insert(key.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(transport: &str) -> McpServerInput {
        McpServerInput {
            name: "files".into(),
            transport: transport.into(),
            ..McpServerInput::default()
        }
    }

    fn fields(err: DomainError) -> Vec<String> {
        match err {
            DomainError::Validation(f) => f.into_iter().map(|f| f.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_stdio_connector_runs_only_an_allowed_command() {
        let rules = McpRules::default();
        let mut ok = input("stdio");
        ok.command = Some("npx".into());
        ok.args = Some(vec![
            "-y".into(),
            "@modelcontextprotocol/server-memory".into(),
        ]);
        ok.env = Some(BTreeMap::from([("TOKEN".into(), Some("s3cret".into()))]));
        let config = rules.user_server(ok.clone(), None).expect("valid");
        assert_eq!(config.command.as_deref(), Some("npx"));
        assert_eq!(config.env["TOKEN"], "s3cret");
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "Debug hides values"
        );

        let mut bad = ok.clone();
        bad.command = Some("/bin/sh".into());
        assert_eq!(
            fields(rules.user_server(bad, None).expect_err("refused")),
            ["command"]
        );
        let mut unknown = ok;
        unknown.transport = "websocket".into();
        assert_eq!(
            fields(rules.user_server(unknown, None).expect_err("refused")),
            ["transport"]
        );
    }

    #[test]
    fn null_keeps_a_stored_secret_and_a_missing_one_is_refused() {
        let rules = McpRules::default();
        let mut first = input("streamable-http");
        first.url = Some("https://mcp.example.com/mcp".into());
        first.headers = Some(BTreeMap::from([(
            "Authorization".into(),
            Some("Bearer one".into()),
        )]));
        let stored = rules.user_server(first.clone(), None).expect("valid");
        let mut again = first.clone();
        again.headers = Some(BTreeMap::from([("Authorization".into(), None)]));
        let kept = rules.user_server(again, Some(&stored)).expect("valid");
        assert_eq!(kept.headers["Authorization"], "Bearer one");
        let mut dangling = first;
        dangling.headers = Some(BTreeMap::from([("X-Key".into(), None)]));
        assert_eq!(
            fields(
                rules
                    .user_server(dangling, Some(&stored))
                    .expect_err("refused")
            ),
            ["headers"]
        );
    }

    #[test]
    fn names_urls_and_headers_are_checked() {
        let rules = McpRules::default();
        for bad in ["", "a b", "x/y", &"n".repeat(65), "ü", "a__b", "_a", "a-"] {
            let mut i = input("sse");
            i.name = bad.into();
            i.url = Some("https://x.example/sse".into());
            assert_eq!(
                fields(rules.user_server(i, None).expect_err("refused")),
                ["name"]
            );
        }
        let mut ftp = input("sse");
        ftp.url = Some("ftp://x.example/".into());
        assert_eq!(
            fields(rules.user_server(ftp, None).expect_err("refused")),
            ["url"]
        );
        let mut host = input("sse");
        host.url = Some("https://x.example/".into());
        host.headers = Some(BTreeMap::from([("Host".into(), Some("evil".into()))]));
        assert_eq!(
            fields(rules.user_server(host, None).expect_err("refused")),
            ["headers"]
        );
        let mut split = input("sse");
        split.url = Some("https://x.example/".into());
        split.headers = Some(BTreeMap::from([("X-A".into(), Some("a\r\nX-B: b".into()))]));
        assert_eq!(
            fields(rules.user_server(split, None).expect_err("refused")),
            ["headers"]
        );
    }
}
