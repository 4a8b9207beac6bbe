//! `[mcp]`: connectors (MCP servers). The operator's come from `[[mcp.servers]]` and from a
//! Claude-Desktop-style `mcp.json` (`mcp.config_file`, `IRONHAND_MCP_CONFIG`); users may add
//! their own when `user_servers` is on.

use ironhand_core::mcp::{McpRules, McpScope, McpServerConfig, McpTransport, valid_server_name};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Users may add their own connectors from the settings page.
    pub user_servers: bool,
    /// Programs users' stdio connectors may run (exact names, found on the sandbox's PATH).
    #[serde(deserialize_with = "super::list_or_csv")]
    pub user_stdio_commands: Vec<String>,
    /// Users' remote connectors may point at loopback, private and link-local addresses.
    pub user_private_urls: bool,
    /// Connectors per user.
    pub max_user_servers: usize,
    /// Connectors' tools offered to the model at most (after the built-in tools).
    pub max_tools: usize,
    /// Starting or reaching a connector and listing its tools.
    pub start_timeout_secs: u64,
    /// One connector tool call.
    pub call_timeout_secs: u64,
    /// The key sealing users' connector secrets at rest (never the JWT key); generated into
    /// the data dir when unset (dev profile only).
    pub secrets_key: Option<SecretString>,
    /// A Claude-Desktop-style `mcp.json` (`{"mcpServers": {...}}`) of operator connectors
    /// (`IRONHAND_MCP_CONFIG`).
    pub config_file: Option<PathBuf>,
    /// A host directory every sandbox sees read-only at `/opt/mcp` (connectors installed
    /// once, e.g. `node_modules` of MCP servers); must be readable by the sandbox user.
    pub packages_dir: Option<PathBuf>,
    /// The operator's connectors.
    pub servers: Vec<McpServerSetting>,
}

impl Default for McpSettings {
    fn default() -> Self {
        let rules = McpRules::default();
        Self {
            user_servers: rules.user_servers,
            user_stdio_commands: rules.user_stdio_commands,
            user_private_urls: rules.user_private_urls,
            max_user_servers: rules.max_user_servers,
            max_tools: 64,
            start_timeout_secs: 30,
            call_timeout_secs: 120,
            secrets_key: None,
            config_file: None,
            packages_dir: None,
            servers: Vec::new(),
        }
    }
}

/// One operator connector, as `[[mcp.servers]]` or an `mcp.json` entry gives it.
#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerSetting {
    pub name: String,
    /// `stdio`, `sse` or `streamable-http` (`http`); unset: stdio with a command,
    /// streamable-http with a URL.
    #[serde(alias = "type")]
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub enabled: Option<bool>,
    /// `mcp.json`'s way of turning one off.
    pub disabled: Option<bool>,
    pub description: Option<String>,
}

/// The values of `env` and `headers` are secrets.
impl std::fmt::Debug for McpServerSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerSetting")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field("header_keys", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What is wrong with the `[mcp]` settings; the text names the key (and the connector).
#[derive(Debug, thiserror::Error)]
pub enum McpConfigError {
    #[error("mcp.config_file (IRONHAND_MCP_CONFIG) {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "mcp.config_file (IRONHAND_MCP_CONFIG) {}: not an mcp.json with `mcpServers`: {source}",
        .path.display()
    )]
    NotMcpJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// One of the operator's connectors, from `origin` (`mcp.servers` or the file).
    #[error("{origin}: connector `{name}`: {problem}")]
    Connector {
        origin: String,
        name: String,
        problem: ConnectorProblem,
    },
    #[error("mcp.secrets_key: must be at least 32 characters")]
    ShortSecretsKey,
    #[error("mcp.max_tools: at most 512 (models refuse longer tool lists)")]
    TooManyTools,
    #[error("mcp.start_timeout_secs and mcp.call_timeout_secs must be positive")]
    ZeroTimeout,
    #[error("mcp.packages_dir: {} is not a directory", .0.display())]
    PackagesDir(PathBuf),
}

/// What is wrong with one of the operator's connectors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorProblem {
    #[error(
        "a name is 1 to 64 letters, digits, `_` or `-`, starting and ending \
         with a letter or digit, without `__`"
    )]
    BadName,
    #[error("the name is used twice")]
    UsedTwice,
    #[error("unknown transport `{0}` (stdio, sse or streamable-http)")]
    UnknownTransport(String),
    #[error("a stdio connector needs a command")]
    NoCommand,
    #[error("needs an http(s) url")]
    NoUrl,
}

#[derive(Deserialize)]
struct McpJson {
    #[serde(rename = "mcpServers", default)]
    mcp_servers: BTreeMap<String, McpServerSetting>,
}

impl McpSettings {
    pub fn rules(&self) -> McpRules {
        McpRules {
            user_servers: self.user_servers,
            user_stdio_commands: self.user_stdio_commands.clone(),
            user_private_urls: self.user_private_urls,
            max_user_servers: self.max_user_servers,
        }
    }

    /// The operator's connectors: `[[mcp.servers]]`, then `mcp.config_file`'s, checked.
    pub fn operator_servers(&self) -> Result<Vec<McpServerConfig>, McpConfigError> {
        let mut settings: Vec<(String, McpServerSetting)> = self
            .servers
            .iter()
            .map(|s| ("mcp.servers".to_string(), s.clone()))
            .collect();
        if let Some(path) = &self.config_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| McpConfigError::ReadFile {
                    path: path.clone(),
                    source,
                })?;
            let file: McpJson =
                serde_json::from_str(&text).map_err(|source| McpConfigError::NotMcpJson {
                    path: path.clone(),
                    source,
                })?;
            for (name, mut server) in file.mcp_servers {
                server.name = name;
                settings.push((path.display().to_string(), server));
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (origin, s) in settings {
            let refused = |problem| McpConfigError::Connector {
                origin: origin.clone(),
                name: s.name.clone(),
                problem,
            };
            if !valid_server_name(&s.name) {
                return Err(refused(ConnectorProblem::BadName));
            }
            if !seen.insert(s.name.clone()) {
                return Err(refused(ConnectorProblem::UsedTwice));
            }
            let transport = match s.transport.as_deref() {
                Some(raw) => McpTransport::parse(raw)
                    .ok_or_else(|| refused(ConnectorProblem::UnknownTransport(raw.to_owned())))?,
                None if s.url.is_some() => McpTransport::StreamableHttp,
                None => McpTransport::Stdio,
            };
            match transport {
                McpTransport::Stdio if s.command.as_deref().is_none_or(str::is_empty) => {
                    return Err(refused(ConnectorProblem::NoCommand));
                }
                McpTransport::Sse | McpTransport::StreamableHttp => {
                    let url = s.url.as_deref().unwrap_or_default();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(refused(ConnectorProblem::NoUrl));
                    }
                }
                _ => {}
            }
            out.push(McpServerConfig {
                name: s.name,
                scope: McpScope::Operator,
                transport,
                command: s.command,
                args: s.args,
                env: s.env,
                url: s.url,
                headers: s.headers,
                enabled: s.enabled.unwrap_or(true) && !s.disabled.unwrap_or(false),
                description: s.description,
            });
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), McpConfigError> {
        if self
            .secrets_key
            .as_ref()
            .is_some_and(|k| secrecy::ExposeSecret::expose_secret(k).len() < 32)
        {
            return Err(McpConfigError::ShortSecretsKey);
        }
        if self.max_tools > 512 {
            return Err(McpConfigError::TooManyTools);
        }
        if self.start_timeout_secs == 0 || self.call_timeout_secs == 0 {
            return Err(McpConfigError::ZeroTimeout);
        }
        if let Some(dir) = &self.packages_dir
            && !dir.is_dir()
        {
            return Err(McpConfigError::PackagesDir(dir.clone()));
        }
        self.operator_servers().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_connectors_come_from_settings_and_mcp_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mcp.json");
        std::fs::write(
            &file,
            r#"{"mcpServers": {
                "fs": {"command": "node", "args": ["/opt/mcp/fs.js", "/home/ubuntu"], "env": {"K": "v"}},
                "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}},
                "old": {"type": "sse", "url": "https://mcp.example.com/sse", "disabled": true}
            }}"#,
        )
        .expect("write");
        let settings = McpSettings {
            config_file: Some(file),
            servers: vec![McpServerSetting {
                name: "docs".into(),
                transport: Some("streamable-http".into()),
                url: Some("http://10.0.0.5/mcp".into()),
                ..McpServerSetting::default()
            }],
            ..McpSettings::default()
        };
        let servers = settings.operator_servers().expect("valid");
        let by_name = |n: &str| servers.iter().find(|s| s.name == n).expect(n);
        assert_eq!(servers[0].name, "docs", "the config file's own first");
        assert_eq!(by_name("fs").transport, McpTransport::Stdio);
        assert_eq!(by_name("fs").env["K"], "v");
        assert_eq!(by_name("remote").transport, McpTransport::StreamableHttp);
        assert_eq!(by_name("old").transport, McpTransport::Sse);
        assert!(!by_name("old").enabled);
        assert!(servers.iter().all(|s| s.scope == McpScope::Operator));
        assert!(
            !format!("{settings:?}").contains("Bearer x"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn bad_operator_connectors_are_named() {
        let bad = |server: McpServerSetting| {
            McpSettings {
                servers: vec![server],
                ..McpSettings::default()
            }
            .validate()
            .expect_err("refused")
            .to_string()
        };
        assert!(
            bad(McpServerSetting {
                name: "a__b".into(),
                command: Some("x".into()),
                ..Default::default()
            })
            .contains("a__b")
        );
        assert!(
            bad(McpServerSetting {
                name: "x".into(),
                transport: Some("ws".into()),
                ..Default::default()
            })
            .contains("unknown transport `ws`")
        );
        assert!(
            bad(McpServerSetting {
                name: "x".into(),
                ..Default::default()
            })
            .contains("needs a command")
        );
        assert!(
            bad(McpServerSetting {
                name: "x".into(),
                transport: Some("sse".into()),
                url: Some("ftp://h".into()),
                ..Default::default()
            })
            .contains("http(s) url")
        );
    }

    #[test]
    fn problems_read_as_they_are_shown_at_start() {
        let settings = McpSettings {
            servers: vec![McpServerSetting {
                name: "x".into(),
                transport: Some("ws".into()),
                ..Default::default()
            }],
            ..McpSettings::default()
        };
        assert_eq!(
            settings.validate().expect_err("refused").to_string(),
            "mcp.servers: connector `x`: unknown transport `ws` (stdio, sse or streamable-http)"
        );
        let missing = McpSettings {
            config_file: Some("/nonexistent/mcp.json".into()),
            ..McpSettings::default()
        };
        let refused = missing.operator_servers().expect_err("no file");
        assert!(
            refused
                .to_string()
                .starts_with("mcp.config_file (IRONHAND_MCP_CONFIG) /nonexistent/mcp.json: "),
            "{refused}"
        );
        assert!(
            std::error::Error::source(&refused).is_some(),
            "the cause is kept"
        );
    }
}
