//! The rules of connectors: who sees and changes which, what a run gets, and the status a
//! user reads on the settings page.

use super::{
    McpRules, McpScope, McpServerConfig, McpServerInput, McpServerStore, McpServerView,
    McpTransport, SecretSealer, StoredMcpServer,
};
use crate::error::{DomainError, FieldError};
use crate::ids::UserId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use time::OffsetDateTime;

/// One tool a connector offers, as a test lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestedTool {
    pub name: String,
    pub description: String,
}

/// Why a connector could not be started, reached or listed. Its text is the status a user
/// reads ("failed to start: …"); the cause is the tester's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConnectorFailure(Box<dyn std::error::Error + Send + Sync>);

impl ConnectorFailure {
    /// From the cause (an error, or a sentence).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}

/// Why a connector's URL is refused. Its text is shown to the user on the `url` field.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UrlRefused(Box<dyn std::error::Error + Send + Sync>);

impl UrlRefused {
    /// From the cause (an error, or a sentence).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(cause.into())
    }
}

/// Starts or contacts a connector and lists its tools (the agent's MCP family does it).
#[async_trait]
pub trait McpTester: Send + Sync {
    async fn list_tools(
        &self,
        user: UserId,
        server: &McpServerConfig,
    ) -> Result<Vec<TestedTool>, ConnectorFailure>;
}

/// Where users' connectors may point (the server resolves the name: loopback, private and
/// metadata addresses are refused unless the operator allows them).
#[async_trait]
pub trait UrlPolicy: Send + Sync {
    async fn check(&self, url: &str) -> Result<(), UrlRefused>;
}

/// Why a stored connector cannot be used: its secrets do not open.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error(transparent)]
    Sealed(#[from] super::SealError),
    #[error("its stored secrets are damaged")]
    Damaged(#[source] serde_json::Error),
}

/// The latest status of each connector as seen by each user's sessions on this server
/// ("ready: 12 tools", "failed to start: …").
#[derive(Debug, Default)]
pub struct McpStatusBoard {
    statuses: Mutex<HashMap<(UserId, String), String>>,
}

/// Statuses kept at most; the oldest are not tracked, so a full board is simply cleared.
const MAX_STATUSES: usize = 100_000;

impl McpStatusBoard {
    pub fn set(&self, user: UserId, name: &str, status: impl Into<String>) {
        let mut map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_STATUSES {
            map.clear();
        }
        map.insert((user, name.to_string()), status.into());
    }

    pub fn get(&self, user: UserId, name: &str) -> Option<String> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(user, name.to_string()))
            .cloned()
    }

    fn forget(&self, user: UserId, name: &str) {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user, name.to_string()));
    }
}

/// What is stored in clear: the shape, and the names of the secrets.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredSettings {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct StoredSecrets {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

pub struct McpService {
    store: Arc<dyn McpServerStore>,
    sealer: SecretSealer,
    rules: McpRules,
    operator: Vec<McpServerConfig>,
    url_policy: Option<Arc<dyn UrlPolicy>>,
    statuses: Arc<McpStatusBoard>,
    tester: OnceLock<Weak<dyn McpTester>>,
}

/// A stored connector that cannot be used: its view, and why. The text is its status.
#[derive(Debug, thiserror::Error)]
#[error("unusable: {why}; save it again")]
struct UnusableServer {
    view: McpServerView,
    #[source]
    why: Unusable,
}

/// A stored connector opened, or (boxed, it is rare) why it cannot be used.
type Opened = Result<McpServerConfig, Box<UnusableServer>>;

fn sealing_context(user: UserId, name: &str) -> String {
    format!("mcp-server:{user}:{name}")
}

fn not_found(name: &str) -> DomainError {
    DomainError::NotFound(format!(
        "You have no connector named `{}`.",
        crate::text::without_nul(&name.chars().take(64).collect::<String>())
    ))
}

impl McpService {
    /// `operator`: the configured connectors (scope operator). `url_policy`: applied to
    /// users' URLs unless `rules.user_private_urls`.
    pub fn new(
        store: Arc<dyn McpServerStore>,
        sealer: SecretSealer,
        rules: McpRules,
        operator: Vec<McpServerConfig>,
        url_policy: Option<Arc<dyn UrlPolicy>>,
    ) -> Self {
        Self {
            store,
            sealer,
            rules,
            operator,
            url_policy,
            statuses: Arc::new(McpStatusBoard::default()),
            tester: OnceLock::new(),
        }
    }

    /// The part that can start connectors (set once by the wiring; held weakly because it
    /// holds this service).
    pub fn set_tester(&self, tester: Weak<dyn McpTester>) {
        let _ = self.tester.set(tester);
    }

    pub fn statuses(&self) -> &Arc<McpStatusBoard> {
        &self.statuses
    }

    pub fn rules(&self) -> &McpRules {
        &self.rules
    }

    pub fn operator_servers(&self) -> &[McpServerConfig] {
        &self.operator
    }

    /// The user's connectors (by name), then the operator's.
    pub async fn list(&self, user: UserId) -> Result<Vec<McpServerView>, DomainError> {
        let mut views = Vec::new();
        for config in self.user_servers(user).await? {
            let status = match config {
                Ok(config) => {
                    let status = if self.rules.user_servers {
                        self.statuses.get(user, &config.name)
                    } else {
                        Some("turned off: this server does not allow your own connectors".into())
                    };
                    config.view(status)
                }
                Err(unusable) => McpServerView {
                    status: Some(unusable.to_string()),
                    ..unusable.view
                },
            };
            views.push(status);
        }
        for config in &self.operator {
            views.push(config.view(self.statuses.get(user, &config.name)));
        }
        Ok(views)
    }

    /// Creates or replaces the user's connector named in `input`.
    pub async fn put(
        &self,
        user: UserId,
        input: McpServerInput,
    ) -> Result<McpServerView, DomainError> {
        if !self.rules.user_servers {
            return Err(DomainError::Forbidden(
                "This server does not allow adding your own connectors.".into(),
            ));
        }
        let name = input.name.clone();
        if self.operator.iter().any(|s| s.name == name) {
            return Err(DomainError::Conflict(format!(
                "`{name}` is the name of a connector this server provides: choose another name."
            )));
        }
        let existing = self.user_servers(user).await?;
        let stored = existing.iter().find_map(|c| match c {
            Ok(c) if c.name == name => Some(c),
            _ => None,
        });
        let replacing = existing.iter().any(|c| match c {
            Ok(c) => c.name == name,
            Err(unusable) => unusable.view.name == name,
        });
        if !replacing && existing.len() >= self.rules.max_user_servers {
            return Err(DomainError::Validation(vec![FieldError::new(
                "name",
                format!(
                    "You have {} connectors, the most this server allows: delete one first.",
                    existing.len()
                ),
            )]));
        }
        let config = self.rules.user_server(input, stored)?;
        if let (Some(url), Some(policy)) = (&config.url, &self.url_policy)
            && !self.rules.user_private_urls
            && let Err(why) = policy.check(url).await
        {
            return Err(DomainError::Validation(vec![FieldError::new(
                "url",
                why.to_string(),
            )]));
        }
        let settings = StoredSettings {
            command: config.command.clone(),
            args: config.args.clone(),
            url: config.url.clone(),
            description: config.description.clone(),
        };
        let secrets = StoredSecrets {
            env: config.env.clone(),
            headers: config.headers.clone(),
        };
        let secrets = serde_json::to_vec(&secrets).map_err(DomainError::internal)?;
        let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let record = StoredMcpServer {
            user_id: user,
            name: config.name.clone(),
            transport: config.transport.as_str().to_string(),
            settings: serde_json::to_string(&settings).map_err(DomainError::internal)?,
            secrets: self
                .sealer
                .seal(&secrets, &sealing_context(user, &config.name))
                .map_err(DomainError::internal)?,
            enabled: config.enabled,
            created_at: now,
            updated_at: now,
        };
        self.store.put_mcp_server(&record).await?;
        // A changed connector starts afresh: its old status no longer says anything.
        self.statuses.forget(user, &config.name);
        Ok(config.view(None))
    }

    /// Removes the user's connector; an operator's or another user's is not found.
    pub async fn delete(&self, user: UserId, name: &str) -> Result<(), DomainError> {
        if !self.store.delete_mcp_server(user, name).await? {
            return Err(not_found(name));
        }
        self.statuses.forget(user, name);
        Ok(())
    }

    /// Starts or contacts the user's (or the operator's) connector and lists its tools.
    pub async fn test(&self, user: UserId, name: &str) -> Result<Vec<TestedTool>, DomainError> {
        let config = match self.operator.iter().find(|s| s.name == name) {
            Some(config) => config.clone(),
            None => self
                .user_servers(user)
                .await?
                .into_iter()
                .find_map(|c| match c {
                    Ok(c) if c.name == name => Some(Ok(c)),
                    Err(unusable) if unusable.view.name == name => Some(Err(unusable.to_string())),
                    _ => None,
                })
                .ok_or_else(|| not_found(name))?
                .map_err(DomainError::ConnectorFailed)?,
        };
        if config.scope == McpScope::User && !self.rules.user_servers {
            return Err(DomainError::Forbidden(
                "This server does not allow your own connectors.".into(),
            ));
        }
        let tester =
            self.tester.get().and_then(Weak::upgrade).ok_or_else(|| {
                DomainError::Unavailable("Connectors cannot be started now.".into())
            })?;
        match tester.list_tools(user, &config).await {
            Ok(tools) => {
                self.statuses
                    .set(user, name, format!("ready: {} tools", tools.len()));
                Ok(tools)
            }
            Err(why) => {
                let why = why.to_string();
                self.statuses.set(user, name, why.clone());
                Err(DomainError::ConnectorFailed(why))
            }
        }
    }

    /// The connectors a run of `user` gets: the operator's enabled ones, then the user's
    /// enabled ones (when users may have their own).
    pub async fn servers_for_run(&self, user: UserId) -> Result<Vec<McpServerConfig>, DomainError> {
        let mut servers: Vec<McpServerConfig> = self
            .operator
            .iter()
            .filter(|s| s.enabled)
            .cloned()
            .collect();
        if self.rules.user_servers {
            for config in self.user_servers(user).await? {
                match config {
                    Ok(config) if config.enabled => servers.push(config),
                    Ok(_) => {}
                    Err(unusable) => {
                        self.statuses
                            .set(user, &unusable.view.name, unusable.to_string())
                    }
                }
            }
        }
        Ok(servers)
    }

    /// The user's stored connectors, opened; one that cannot be opened comes as its view
    /// and the reason.
    async fn user_servers(&self, user: UserId) -> Result<Vec<Opened>, DomainError> {
        let stored = self.store.mcp_servers(user).await?;
        Ok(stored.into_iter().map(|s| self.open(s)).collect())
    }

    fn open(&self, s: StoredMcpServer) -> Opened {
        let settings: StoredSettings = serde_json::from_str(&s.settings).unwrap_or_default();
        let transport = McpTransport::parse(&s.transport).unwrap_or(McpTransport::Stdio);
        let mut config = McpServerConfig {
            name: s.name.clone(),
            scope: McpScope::User,
            transport,
            command: settings.command,
            args: settings.args,
            env: BTreeMap::new(),
            url: settings.url,
            headers: BTreeMap::new(),
            enabled: s.enabled,
            description: settings.description,
        };
        let opened = self
            .sealer
            .open(&s.secrets, &sealing_context(s.user_id, &s.name))
            .map_err(Unusable::from)
            .and_then(|plain| {
                serde_json::from_slice::<StoredSecrets>(&plain).map_err(Unusable::Damaged)
            });
        match opened {
            Ok(secrets) => {
                config.env = secrets.env;
                config.headers = secrets.headers;
                Ok(config)
            }
            Err(why) => {
                tracing::warn!(server = %s.name, user = %s.user_id, %why, "a connector's secrets could not be opened");
                Err(Box::new(UnusableServer {
                    view: config.view(None),
                    why,
                }))
            }
        }
    }
}
