//! Settings: embedded defaults → optional TOML file → environment, then `validate()`, which
//! names the key at fault. Secrets are `SecretString` and never printed.

use ironhand_core::auth::{AuthProvider, PasswordParams};
use ironhand_core::ports::{InvalidQuota, Quota};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod agent;
mod billing;
mod docker;
mod mcp;

pub use agent::{AgentSettings, LlmSettings, SandboxSettings, SearchSettings, SessionSettings};
pub use billing::{BillingSettings, FileSettings, S3Settings, StripeSettings};
pub use docker::DockerSettings;
pub use mcp::{ConnectorProblem, McpConfigError, McpServerSetting, McpSettings};

/// Every problem [`Settings::validate`] found, one line each; each names its key and says
/// what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigProblems(pub Vec<String>);

/// Why [`Settings::load`] gave no settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("config file {} does not exist", .0.display())]
    NoFile(PathBuf),
    /// An environment variable (`env`) the configuration could not take.
    #[error("{env}: {source}")]
    Environment {
        env: &'static str,
        #[source]
        source: config::ConfigError,
    },
    /// A command-line override the configuration could not take.
    #[error(transparent)]
    Override(config::ConfigError),
    /// The sources do not make settings (an unknown key, a value of the wrong type…).
    #[error("invalid configuration: {0}")]
    Invalid(#[source] config::ConfigError),
    #[error(transparent)]
    Problems(#[from] ConfigProblems),
}

/// A `rate_limits` entry that is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate_limits.{key}: {source}")]
pub struct InvalidRateLimit {
    pub key: &'static str,
    #[source]
    pub source: InvalidQuota,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Dev,
    Production,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub profile: Profile,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthConfig,
    pub mail: MailSettings,
    pub rate_limits: RateLimitSettings,
    pub log: LogSettings,
    pub llm: LlmSettings,
    pub search: SearchSettings,
    pub sandbox: SandboxSettings,
    pub agent: AgentSettings,
    pub sessions: SessionSettings,
    pub files: FileSettings,
    pub billing: BillingSettings,
    pub stripe: StripeSettings,
    pub mcp: McpSettings,
    /// The file these settings were read from, if any (hidden from sandboxes).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// API + web listener (`IRONHAND_BIND`).
    pub bind: String,
    /// Metrics listener (`IRONHAND_ADMIN_BIND`); empty turns it off.
    pub admin_bind: String,
    /// The origin users reach us at (`IRONHAND_PUBLIC_URL`): the CSRF origin check, HSTS
    /// when it is https, signed download links, and where checkout and the billing portal
    /// may send the user back to.
    pub public_url: String,
    /// SQLite file, files, workspaces, generated secrets (`IRONHAND_DATA_DIR`).
    pub data_dir: PathBuf,
    /// How many reverse proxies in front of us append to `X-Forwarded-For` (0 = ignore it).
    pub trusted_proxies: usize,
    /// Origins allowed to call the API from a browser on another origin (a TOML list, or a
    /// comma-separated string in the environment).
    #[serde(deserialize_with = "list_or_csv")]
    pub cors_origins: Vec<String>,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// How long shutdown waits for open requests and streams.
    pub shutdown_grace_secs: u64,
    /// Longest time a request may take to produce its response headers (streams then run
    /// on without this limit).
    pub request_timeout_secs: u64,
    /// Event streams (chat and session list) one user may hold open on this instance.
    pub max_streams_per_user: usize,
    /// Longest a client may take to send a request's headers; also how long a kept-alive
    /// connection waits for its next request.
    pub header_read_timeout_secs: u64,
    /// A connection with no byte read or written for this long is closed (event streams
    /// send keep-alive comments well within it).
    pub idle_timeout_secs: u64,
    /// Largest request head (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Open connections on this instance; 0 = three quarters of the open-file limit.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); 0 = no cap. Not applied
    /// behind proxies (`trusted_proxies` > 0), where every connection comes from a proxy.
    pub max_connections_per_ip: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8000".into(),
            admin_bind: "127.0.0.1:9100".into(),
            public_url: "http://localhost:8000".into(),
            data_dir: PathBuf::from("./data"),
            trusted_proxies: 0,
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 20,
            request_timeout_secs: 60,
            max_streams_per_user: 16,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 75,
            max_header_bytes: 32 * 1024,
            max_connections: 0,
            max_connections_per_ip: 256,
        }
    }
}

pub(super) fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => v,
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`); unset = SQLite in the data dir.
    pub url: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…` (`REDIS_URL`): turns on the Redis limiter and denylist.
    pub url: Option<SecretString>,
    /// Prefix of every key Ironhand writes, so several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "ironhand:".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `password`, `local` or `none`.
    pub provider: String,
    pub registration_open: bool,
    /// HS256 key for access tokens; generated into the data dir when unset (dev only).
    pub jwt_secret: Option<SecretString>,
    pub access_token_minutes: u64,
    pub refresh_token_days: u64,
    /// Also set the refresh token as an HttpOnly cookie and accept it at /auth/refresh (on by
    /// default: the web app keeps only the access token, in memory).
    pub refresh_cookie: bool,
    /// How long a refresh token that was just rotated still answers with its successor, so
    /// two tabs (or a retry) racing one refresh do not end the login as theft; 0 = never.
    pub refresh_reuse_grace_secs: u64,
    pub verification_code_ttl_secs: u64,
    pub verification_code_max_attempts: i32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// The one account of `provider = "local"`.
    pub local_email: Option<String>,
    pub local_password: Option<SecretString>,
    /// Kept for configurations written before `[billing]`: sets the free plan's monthly
    /// runs (prefer `billing.plans`).
    pub free_monthly_runs: Option<i64>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let argon = PasswordParams::default();
        Self {
            provider: "password".into(),
            registration_open: true,
            jwt_secret: None,
            access_token_minutes: 15,
            refresh_token_days: 30,
            refresh_cookie: true,
            refresh_reuse_grace_secs: 30,
            verification_code_ttl_secs: 600,
            verification_code_max_attempts: 5,
            argon2_memory_kib: argon.memory_kib,
            argon2_iterations: argon.iterations,
            argon2_parallelism: argon.parallelism,
            local_email: None,
            local_password: None,
            free_monthly_runs: None,
        }
    }
}

impl AuthConfig {
    pub fn provider(&self) -> AuthProvider {
        match self.provider.as_str() {
            "local" => AuthProvider::Local,
            "none" => AuthProvider::None,
            _ => AuthProvider::Password,
        }
    }

    pub fn password_params(&self) -> PasswordParams {
        PasswordParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp://user:pass@host:port?tls=starttls|tls|none` (`SMTP_URL`); unset = development mailer.
    pub smtp_url: Option<SecretString>,
    /// Sender (`MAIL_FROM`).
    pub from: String,
    pub timeout_secs: u64,
    /// A PEM file with a CA to trust for the SMTP server's certificate, besides the
    /// system's (for a relay with a private CA).
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Ironhand <no-reply@localhost>".into(),
            timeout_secs: 15,
            tls_ca_file: None,
        }
    }
}

/// Rates as `count/period` (`5/minute`, `3/hour`). Keys are per IP and per account.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub register: String,
    /// Per client IP and email together (or per known device): one client's sign-ins to
    /// one account.
    pub login: String,
    /// Per client IP: one client's sign-ins to any account.
    pub login_ip: String,
    /// Per email: sign-ins to one account from clients that are not its known devices.
    pub login_email: String,
    pub refresh: String,
    pub logout: String,
    pub send_verification_code: String,
    pub verification_code_cooldown: String,
    pub reset_password: String,
    /// Per account: guesses of the current password at change-password.
    pub change_password: String,
    /// Chat requests per user, and per session.
    pub chat_user: String,
    pub chat_session: String,
    /// Per IP: reads of shared sessions and their files (no login needed).
    pub shared_view: String,
    /// Per user: file uploads.
    pub upload: String,
    /// Per user: checkout and portal sessions created.
    pub checkout: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            register: "3/minute".into(),
            login: "5/minute".into(),
            login_ip: "20/minute".into(),
            login_email: "20/minute".into(),
            refresh: "30/minute".into(),
            logout: "10/minute".into(),
            send_verification_code: "3/hour".into(),
            verification_code_cooldown: "1/minute".into(),
            reset_password: "5/hour".into(),
            change_password: "5/minute".into(),
            chat_user: "20/minute".into(),
            chat_session: "6/minute".into(),
            shared_view: "60/minute".into(),
            upload: "60/minute".into(),
            checkout: "5/minute".into(),
        }
    }
}

/// The parsed rates, ready for the limiter.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    pub register: Quota,
    pub login: Quota,
    pub login_ip: Quota,
    pub login_email: Quota,
    pub refresh: Quota,
    pub logout: Quota,
    pub send_verification_code: Quota,
    pub verification_code_cooldown: Quota,
    pub reset_password: Quota,
    pub change_password: Quota,
    pub chat_user: Quota,
    pub chat_session: Quota,
    pub shared_view: Quota,
    pub upload: Quota,
    pub checkout: Quota,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter, e.g. `info` or `ironhand=debug,tower_http=info` (`RUST_LOG` wins).
    pub level: String,
    /// `json` or `text`; unset = text in dev, JSON in production.
    pub format: Option<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: None,
        }
    }
}

/// The common short environment names operators rely on, and the key each one sets.
const SHORT_ENV: &[(&str, &str)] = &[
    ("IRONHAND_PROFILE", "profile"),
    ("IRONHAND_BIND", "server.bind"),
    ("IRONHAND_ADMIN_BIND", "server.admin_bind"),
    ("IRONHAND_PUBLIC_URL", "server.public_url"),
    ("IRONHAND_DATA_DIR", "server.data_dir"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("SMTP_URL", "mail.smtp_url"),
    ("MAIL_FROM", "mail.from"),
    ("LLM_BASE_URL", "llm.base_url"),
    ("LLM_API_KEY", "llm.api_key"),
    ("LLM_MODEL", "llm.model"),
    ("SEARCH_PROVIDER", "search.provider"),
    ("SEARCH_URL", "search.url"),
    ("SEARCH_API_KEY", "search.api_key"),
    ("STRIPE_SECRET_KEY", "stripe.secret_key"),
    ("STRIPE_WEBHOOK_SECRET", "stripe.webhook_secret"),
    ("STRIPE_API_BASE", "stripe.api_base"),
    ("STRIPE_PRICE_BASIC", "stripe.price_basic"),
    ("STRIPE_PRICE_PRO", "stripe.price_pro"),
    ("IRONHAND_MCP_CONFIG", "mcp.config_file"),
];

/// Command-line overrides (`serve --bind`, `--data-dir`), applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads defaults → `file` (if any) → environment → `overrides`, then validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            if !file.exists() {
                return Err(SettingsError::NoFile(file.to_owned()));
            }
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            // No `try_parsing`: it would turn an all-digit secret into a number. Numbers and
            // booleans still deserialize from their text.
            config::Environment::with_prefix("IRONHAND")
                .prefix_separator("__")
                .separator("__"),
        );
        for (env, key) in SHORT_ENV {
            // Empty means unset, except for the admin listener, where empty turns it off.
            if let Ok(value) = std::env::var(env)
                && (!value.is_empty() || *env == "IRONHAND_ADMIN_BIND")
            {
                builder = builder
                    .set_override(*key, value)
                    .map_err(|source| SettingsError::Environment { env, source })?;
            }
        }
        if let Some(bind) = &overrides.bind {
            builder = builder
                .set_override("server.bind", bind.as_str())
                .map_err(SettingsError::Override)?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder = builder
                .set_override("server.data_dir", dir.display().to_string())
                .map_err(SettingsError::Override)?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(SettingsError::Invalid)?;
        settings.config_file = file.and_then(|f| std::fs::canonicalize(f).ok());
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every setting; the error names each bad key and says what is expected.
    pub fn validate(&self) -> Result<(), ConfigProblems> {
        let mut problems = Vec::new();
        let s = &self.server;
        if s.bind.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "server.bind (IRONHAND_BIND): `{}` is not an address like 127.0.0.1:8000",
                s.bind
            ));
        }
        if !s.admin_bind.is_empty() && s.admin_bind.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "server.admin_bind (IRONHAND_ADMIN_BIND): `{}` is not an address like 127.0.0.1:9100",
                s.admin_bind
            ));
        }
        match url::Url::parse(&s.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => problems.push(format!(
                "server.public_url (IRONHAND_PUBLIC_URL): `{}` is not an http(s) origin like https://agents.example.com",
                s.public_url
            )),
        }
        for origin in &s.cors_origins {
            if url::Url::parse(origin)
                .map(|u| u.origin().ascii_serialization() != *origin.trim_end_matches('/'))
                .unwrap_or(true)
            {
                problems.push(format!(
                    "server.cors_origins: `{origin}` is not an origin like https://app.example.com"
                ));
            }
        }
        if s.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs: must be at least 1".into());
        }
        if s.max_streams_per_user == 0 {
            problems.push("server.max_streams_per_user: must be at least 1".into());
        }
        if s.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes: must be at least 1024".into());
        }
        if s.header_read_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs: must be at least 1".into());
        }
        if s.idle_timeout_secs <= s.request_timeout_secs {
            problems.push(format!(
                "server.idle_timeout_secs: must be more than server.request_timeout_secs ({}), or a slow answer would be cut off before it starts",
                s.request_timeout_secs
            ));
        }
        if !(1024..=256 * 1024).contains(&s.max_header_bytes) {
            problems.push("server.max_header_bytes: must be between 1024 and 262144".into());
        }
        if s.max_connections > 1_000_000 || s.max_connections_per_ip > 1_000_000 {
            problems.push(
                "server.max_connections, server.max_connections_per_ip: at most 1000000".into(),
            );
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                problems.push(format!(
                    "database.url (DATABASE_URL): `{}` must start with sqlite:// or postgres://",
                    ironhand_db::redact(url)
                ));
            }
        }
        if let Some(url) = &self.redis.url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://"))
            {
                problems
                    .push("redis.url (REDIS_URL): must start with redis:// or rediss://".into());
            }
        }
        let a = &self.auth;
        if !matches!(a.provider.as_str(), "password" | "local" | "none") {
            problems.push(format!(
                "auth.provider: `{}` must be one of password, local, none",
                a.provider
            ));
        }
        if a.provider == "local" && (a.local_email.is_none() || a.local_password.is_none()) {
            problems.push("auth.local_email and auth.local_password: both are required when auth.provider = \"local\"".into());
        }
        if let Some(secret) = &a.jwt_secret
            && secret.expose_secret().len() < 32
        {
            problems.push("auth.jwt_secret: must be at least 32 characters".into());
        }
        if a.access_token_minutes == 0 || a.access_token_minutes > 24 * 60 {
            problems.push("auth.access_token_minutes: must be between 1 and 1440".into());
        }
        if a.refresh_token_days == 0 || a.refresh_token_days > 365 {
            problems.push("auth.refresh_token_days: must be between 1 and 365".into());
        }
        if a.refresh_reuse_grace_secs > 300 {
            problems.push("auth.refresh_reuse_grace_secs: must be between 0 and 300".into());
        }
        if a.verification_code_ttl_secs == 0 || a.verification_code_ttl_secs > 24 * 3600 {
            problems.push("auth.verification_code_ttl_secs: must be between 1 and 86400".into());
        }
        if a.verification_code_max_attempts < 1 {
            problems.push("auth.verification_code_max_attempts: must be at least 1".into());
        }
        if let Err(e) = ironhand_core::auth::PasswordHasher::check_params(a.password_params()) {
            problems.push(format!("auth.argon2_*: {e}"));
        }
        if let Some(url) = &self.mail.smtp_url
            && let Err(e) = crate::infra::mailer::smtp::SmtpTarget::parse(url.expose_secret())
        {
            problems.push(format!("mail.smtp_url (SMTP_URL): {e}"));
        }
        if let Some(ca) = &self.mail.tls_ca_file
            && !std::fs::read(ca).is_ok_and(|pem| {
                lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok()
            })
        {
            problems.push(format!(
                "mail.tls_ca_file: `{}` is not a readable PEM certificate",
                ca.display()
            ));
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!(
                "mail.from (MAIL_FROM): `{}` is not a sender like \"Ironhand <no-reply@example.com>\"",
                self.mail.from
            ));
        }
        if let Err(e) = self.rate_limits.quotas() {
            problems.push(e.to_string());
        }
        if let Some(f) = &self.log.format
            && !matches!(f.as_str(), "json" | "text")
        {
            problems.push(format!("log.format: `{f}` must be json or text"));
        }
        self.validate_agent(&mut problems);
        problems.extend(self.billing_problems());
        if let Err(e) = self.mcp.validate() {
            problems.push(e.to_string());
        }
        if self.profile == Profile::Production {
            if self.files.signing_key.is_none() {
                problems.push(
                    "files.signing_key (IRONHAND__FILES__SIGNING_KEY): the production profile needs an explicit key for signed download URLs"
                        .into(),
                );
            }
            if a.jwt_secret.is_none() {
                problems.push(
                    "auth.jwt_secret (IRONHAND__AUTH__JWT_SECRET): the production profile needs an explicit secret; it never generates one"
                        .into(),
                );
            }
            if self.mcp.secrets_key.is_none() {
                problems.push(
                    "mcp.secrets_key (IRONHAND__MCP__SECRETS_KEY): the production profile needs an explicit key sealing connector secrets"
                        .into(),
                );
            }
            if a.provider == "none" {
                problems.push(
                    "auth.provider: `none` (no login at all) is refused in the production profile"
                        .into(),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigProblems(problems))
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_string(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("ironhand.db").display()
            ),
        }
    }

    pub fn json_logs(&self) -> bool {
        match self.log.format.as_deref() {
            Some("json") => true,
            Some(_) => false,
            None => self.profile == Profile::Production,
        }
    }

    /// `https://host[:port]` without a trailing slash.
    pub fn public_origin(&self) -> String {
        url::Url::parse(&self.server.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.server.public_url.trim_end_matches('/').to_string())
    }

    pub fn behind_tls(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }
}

impl RateLimitSettings {
    pub fn quotas(&self) -> Result<Quotas, InvalidRateLimit> {
        let q = |key: &'static str, v: &str| {
            v.parse::<Quota>()
                .map_err(|source| InvalidRateLimit { key, source })
        };
        Ok(Quotas {
            register: q("register", &self.register)?,
            login: q("login", &self.login)?,
            login_ip: q("login_ip", &self.login_ip)?,
            login_email: q("login_email", &self.login_email)?,
            refresh: q("refresh", &self.refresh)?,
            logout: q("logout", &self.logout)?,
            send_verification_code: q("send_verification_code", &self.send_verification_code)?,
            verification_code_cooldown: q(
                "verification_code_cooldown",
                &self.verification_code_cooldown,
            )?,
            reset_password: q("reset_password", &self.reset_password)?,
            change_password: q("change_password", &self.change_password)?,
            chat_user: q("chat_user", &self.chat_user)?,
            chat_session: q("chat_session", &self.chat_session)?,
            shared_view: q("shared_view", &self.shared_view)?,
            upload: q("upload", &self.upload)?,
            checkout: q("checkout", &self.checkout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().expect("defaults validate");
    }

    #[test]
    fn errors_name_the_key() {
        let mut s = Settings::default();
        s.server.bind = "nonsense".into();
        s.rate_limits.login = "lots".into();
        s.auth.provider = "ldap".into();
        s.auth.refresh_reuse_grace_secs = 301;
        s.rate_limits.login_email = "often".into();
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("server.bind (IRONHAND_BIND)"), "{err}");
        assert!(err.contains("rate_limits.login"), "{err}");
        assert!(err.contains("auth.provider"), "{err}");
        assert!(err.contains("auth.refresh_reuse_grace_secs"), "{err}");
    }

    #[test]
    fn production_needs_explicit_secrets() {
        let mut s = Settings {
            profile: Profile::Production,
            ..Settings::default()
        };
        assert!(
            s.validate()
                .expect_err("no secret")
                .to_string()
                .contains("auth.jwt_secret")
        );
        s.auth.jwt_secret = Some(SecretString::from("x".repeat(40)));
        assert!(
            s.validate()
                .expect_err("no file signing key")
                .to_string()
                .contains("files.signing_key")
        );
        s.files.signing_key = Some(SecretString::from("y".repeat(40)));
        assert!(
            s.validate()
                .expect_err("no connector secrets key")
                .to_string()
                .contains("mcp.secrets_key")
        );
        s.mcp.secrets_key = Some(SecretString::from("z".repeat(8)));
        assert!(
            s.validate()
                .expect_err("too short")
                .to_string()
                .contains("at least 32 characters")
        );
        s.mcp.secrets_key = Some(SecretString::from("z".repeat(40)));
        s.validate().expect("valid with the three secrets");
    }

    #[test]
    fn the_sample_file_in_the_docs_loads() {
        let doc = include_str!("../../../../docs/configuration.md");
        let sample = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has a ```toml sample");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ironhand.toml");
        // The sample leaves the production secret to the environment; supply one here.
        let sample = sample
            .replacen(
                "[auth]\n",
                "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
                1,
            )
            .replacen(
                "[files]\n",
                "[files]\nsigning_key = \"fedcba9876543210fedcba9876543210\"\n",
                1,
            )
            .replacen(
                "[mcp]\n",
                "[mcp]\nsecrets_key = \"0011223344556677889900112233445566\"\n",
                1,
            );
        std::fs::write(&path, sample).expect("write");
        let loaded = Settings::load(Some(&path), &Overrides::default());
        assert!(
            loaded.is_ok(),
            "the documented sample must load: {loaded:?}"
        );
    }

    #[test]
    fn the_older_free_monthly_runs_still_sets_the_free_plan() {
        let mut s = Settings::default();
        s.stripe.price_basic = Some("price_b".into());
        s.auth.free_monthly_runs = Some(25);
        let plans = s.plans();
        let free = plans.iter().find(|p| p.id == "free").expect("free");
        assert_eq!(free.monthly_agent_runs_limit, 25);
        let basic = plans.iter().find(|p| p.id == "basic").expect("basic");
        assert_eq!(basic.stripe_price_id.as_deref(), Some("price_b"));
    }

    #[test]
    fn secrets_do_not_print() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(SecretString::from("super-secret-value-that-is-long-enough"));
        s.database.url = Some(SecretString::from("postgres://u:hunter2@db/x"));
        s.files.signing_key = Some(SecretString::from("files-signing-key-that-is-long"));
        s.files.s3.secret_access_key = Some(SecretString::from("s3-secret-access"));
        s.stripe.secret_key = Some(SecretString::from("sk_live_stripe_secret"));
        s.stripe.webhook_secret = Some(SecretString::from("whsec_webhook_secret"));
        let printed = format!("{s:?}");
        for secret in [
            "super-secret",
            "hunter2",
            "files-signing-key",
            "s3-secret-access",
            "sk_live_stripe",
            "whsec_webhook",
        ] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }

    #[test]
    fn load_failures_read_as_before() {
        let missing = Settings::load(
            Some(Path::new("/nonexistent/ironhand.toml")),
            &Overrides::default(),
        )
        .expect_err("no file");
        assert_eq!(
            missing.to_string(),
            "config file /nonexistent/ironhand.toml does not exist"
        );
        let mut s = Settings::default();
        s.rate_limits.login = "lots".into();
        s.server.request_timeout_secs = 0;
        s.server.idle_timeout_secs = 100;
        assert_eq!(
            s.validate().expect_err("invalid"),
            ConfigProblems(vec![
                "server.request_timeout_secs: must be at least 1".into(),
                "rate_limits.login: `lots` is not a rate; write it like `5/minute` or `3/hour`"
                    .into(),
            ])
        );
    }
}
