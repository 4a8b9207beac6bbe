//! Assembling the server: the shared state (services and adapters picked from settings),
//! the router with its middleware, and `serve`, which tests call with port-0 listeners.

use crate::config::{Quotas, Settings};
use crate::http::error::ApiError;
use crate::http::middleware::{self, SecurityHeaders};
use crate::infra::denylist::{MemoryDenylist, RedisDenylist};
use crate::infra::event_bus::{MemoryBus, RedisBus};
use crate::infra::mailer::{DevMailer, SmtpMailer, smtp::SmtpTarget};
use crate::infra::rate_limit::{MemoryRateLimiter, RedisRateLimiter};
use crate::infra::redis::RedisHandle;
use crate::{routes, secrets, telemetry, web_app};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use ironhand_agent::{Agent, RunWorker};
use ironhand_core::DomainError;
use ironhand_core::auth::{AuthProvider, AuthService, AuthSettings, PasswordHasher, TokenSigner};
use ironhand_core::ports::{
    EventBus, Mailer, Quota, RateDecision, RateLimiter, Store, TokenDenylist,
};
use ironhand_core::session::SessionService;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub auth: Arc<AuthService>,
    pub store: Arc<dyn Store>,
    pub limiter: Arc<dyn RateLimiter>,
    pub redis: Option<RedisHandle>,
    pub quotas: Quotas,
    pub public_origin: Arc<str>,
    pub bus: Arc<dyn EventBus>,
    pub sessions: Arc<SessionService>,
    pub agent: Arc<Agent>,
    /// This instance's id (its worker's id, the holder of its sandboxes).
    pub instance_id: Arc<str>,
    /// Workspaces that follow the session (snapshots in the file store).
    pub workspaces: Arc<ironhand_core::workspace::WorkspaceSnapshots>,
    pub files: Arc<ironhand_core::files::FileService>,
    pub billing: Arc<ironhand_core::billing::BillingService>,
    /// This instance's sandboxes, for readiness and the idle reaper (requests reach them
    /// through `sessions`).
    pub sandboxes: Arc<dyn ironhand_core::ports::SandboxProvider>,
    /// Connectors (MCP servers): the operator's and users' own.
    pub mcp: Arc<ironhand_core::mcp::McpService>,
    /// Fires when the server begins to shut down: open streams end so clients reconnect
    /// elsewhere.
    pub stopping: CancellationToken,
    /// Event streams open per user on this instance.
    pub streams: Arc<crate::routes::sessions::stream::StreamSlots>,
    /// Signed live-view links and the live views open per user on this instance.
    pub live_view: Arc<crate::routes::sessions::vnc::LiveView>,
    /// The last sandbox self-check and when it ran (readiness probes share it).
    sandbox_checked: CheckCache,
    /// The same for the file store.
    files_checked: CheckCache,
}

/// How long one sandbox self-check answers readiness probes: starting a test sandbox on
/// every probe would let anyone who can reach `/ready` spawn processes at will.
const SANDBOX_CHECK_TTL: Duration = Duration::from_secs(30);

type CheckCache = Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>;

/// Runs `check` unless a result younger than [`SANDBOX_CHECK_TTL`] is cached; a failure's
/// details go to the log only.
async fn cached_check<E: std::fmt::Display>(
    cache: &CheckCache,
    what: &str,
    check: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    let mut last = cache.lock().await;
    if let Some((at, healthy)) = *last
        && at.elapsed() < SANDBOX_CHECK_TTL
    {
        return healthy;
    }
    let healthy = match tokio::time::timeout(Duration::from_secs(10), check).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the {what} failed its self-check");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the {what} self-check took longer than 10 s");
            false
        }
    };
    *last = Some((std::time::Instant::now(), healthy));
    healthy
}

/// A short, fixed-length stand-in for user input used in limiter keys.
pub fn hashed_key(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..16])
}

impl AppState {
    /// Opens storage and connects the adapters the settings ask for.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.server.data_dir).with_context(|| {
            format!(
                "could not create the data directory {}",
                settings.server.data_dir.display()
            )
        })?;
        let store = ironhand_db::connect(&settings.database_url(), true).await?;
        let redis = match &settings.redis.url {
            Some(url) => Some(
                RedisHandle::connect(url.expose_secret(), &settings.redis.key_prefix)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let (limiter, denylist): (Arc<dyn RateLimiter>, Arc<dyn TokenDenylist>) = match &redis {
            Some(r) => (
                Arc::new(RedisRateLimiter::new(r.clone())),
                Arc::new(RedisDenylist::new(r.clone())),
            ),
            None => (
                Arc::new(MemoryRateLimiter::new()),
                Arc::new(MemoryDenylist::new()),
            ),
        };
        let mailer: Arc<dyn Mailer> = match &settings.mail.smtp_url {
            Some(url) => {
                let target = SmtpTarget::parse(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
                {
                    let ca = match &settings.mail.tls_ca_file {
                        Some(path) => Some(
                            std::fs::read(path)
                                .with_context(|| format!("mail.tls_ca_file {}", path.display()))?,
                        ),
                        None => None,
                    };
                    let timeout = Duration::from_secs(settings.mail.timeout_secs);
                    Arc::new(
                        SmtpMailer::new(&target, &settings.mail.from, timeout, ca.as_deref())
                            .map_err(anyhow::Error::msg)?,
                    )
                }
            }
            None => {
                tracing::warn!(
                    "SMTP_URL is not set: using the development mailer, which writes emails (including password reset codes) to this log instead of sending them"
                );
                Arc::new(DevMailer)
            }
        };
        let mailer_kind = mailer.kind();
        let secret = secrets::jwt_secret(&settings)?;
        let hasher =
            PasswordHasher::new(settings.auth.password_params()).map_err(anyhow::Error::msg)?;
        let a = &settings.auth;
        let auth_settings = AuthSettings {
            provider: a.provider(),
            registration_open: a.registration_open,
            access_ttl: Duration::from_secs(a.access_token_minutes * 60),
            refresh_ttl: Duration::from_secs(a.refresh_token_days * 24 * 3600),
            code_ttl: Duration::from_secs(a.verification_code_ttl_secs),
            code_max_attempts: a.verification_code_max_attempts,
            refresh_reuse_grace: Duration::from_secs(a.refresh_reuse_grace_secs),
            // The free plan of `billing.plans` is what a new account starts on.
            free_monthly_runs: settings
                .plans()
                .iter()
                .find(|p| p.id == "free")
                .map_or(ironhand_core::subscription::FREE_PLAN_MONTHLY_RUNS, |p| {
                    p.monthly_agent_runs_limit
                }),
            product_name: "Ironhand".into(),
            local_email: a.local_email.as_ref().map(|e| e.trim().to_lowercase()),
        };
        let auth = AuthService::new(
            store.clone(),
            denylist,
            mailer,
            hasher,
            TokenSigner::new(secret.expose_secret().as_bytes()),
            auth_settings,
        );
        if a.provider() == AuthProvider::None
            && settings
                .server
                .bind
                .parse::<SocketAddr>()
                .is_ok_and(|addr| !addr.ip().is_loopback())
        {
            tracing::warn!(
                bind = %settings.server.bind,
                "auth.provider = none on a non-loopback address: anyone who can reach this port acts as the local user"
            );
        }
        if a.provider() == AuthProvider::Local
            && let (Some(email), Some(password)) = (&a.local_email, &a.local_password)
        {
            auth.ensure_local_account(email, password.expose_secret())
                .await
                .map_err(|e| anyhow::anyhow!("auth.local_email / auth.local_password: {e}"))?;
        }
        let quotas = settings.rate_limits.quotas().map_err(anyhow::Error::msg)?;
        let public_origin = settings.public_origin().into();
        let bus: Arc<dyn EventBus> = match (&redis, &settings.redis.url) {
            (Some(handle), Some(url)) => Arc::new(
                RedisBus::start(handle.clone(), url.expose_secret())
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            _ => Arc::new(MemoryBus::default()),
        };
        let parts = crate::agent_setup::build(&settings, store.clone(), bus.clone())?;
        tracing::info!(
            database = store.backend(),
            redis = redis.is_some(),
            mailer = mailer_kind,
            auth_provider = a.provider().as_str(),
            event_bus = bus.kind(),
            sandbox = parts.sandboxes.kind(),
            llm = parts.llm_model.as_deref().unwrap_or("not configured"),
            search = parts.search_provider.unwrap_or("off"),
            files = parts.files.blobs().kind(),
            payments = parts.billing.payments_configured(),
            "storage and adapters ready"
        );
        let streams = Arc::new(crate::routes::sessions::stream::StreamSlots::new(
            settings.server.max_streams_per_user,
        ));
        let live_view = Arc::new(crate::routes::sessions::vnc::LiveView::new(
            secrets::files_signing_key(&settings)?
                .expose_secret()
                .as_bytes(),
        ));
        Ok(Self {
            settings: Arc::new(settings),
            auth: Arc::new(auth),
            store,
            limiter,
            redis,
            quotas,
            public_origin,
            bus,
            files: parts.files,
            billing: parts.billing,
            sandboxes: parts.sandboxes,
            sessions: parts.sessions,
            instance_id: parts.instance_id.into(),
            workspaces: parts.workspaces,
            mcp: parts.mcp,
            agent: parts.agent,
            stopping: CancellationToken::new(),
            sandbox_checked: Arc::default(),
            files_checked: Arc::default(),
            streams,
            live_view,
        })
    }

    /// Whether the sandbox provider can start sandboxes, checked at most every 30 s; the
    /// details of a failure go to the log only.
    pub async fn sandbox_health(&self) -> Result<&'static str, ()> {
        let provider = &self.sandboxes;
        let healthy =
            cached_check(&self.sandbox_checked, "sandbox provider", provider.check()).await;
        if healthy {
            Ok(provider.kind())
        } else {
            Err(())
        }
    }

    /// Whether the file store can be written, checked at most every 30 s (on S3 a check
    /// costs two requests).
    pub async fn files_health(&self) -> Result<&'static str, ()> {
        let blobs = self.files.blobs();
        let healthy = cached_check(&self.files_checked, "file store", blobs.check()).await;
        if healthy { Ok(blobs.kind()) } else { Err(()) }
    }

    /// Counts one request under `rule` for each subject (an IP, an email, a user);
    /// refused when any of them is over its budget, with the longest wait.
    pub async fn limit(&self, rule: &str, quota: Quota, subjects: &[&str]) -> Result<(), ApiError> {
        if !self.settings.rate_limits.enabled {
            return Ok(());
        }
        // Subjects are checked in order and the first refusal stops the count, so a client
        // over its own budget cannot spend anyone else's (e.g. a victim's per-email budget).
        for subject in subjects {
            if let RateDecision::Limited { retry_after } = self
                .limiter
                .check(&format!("{rule}:{subject}"), quota)
                .await
            {
                tracing::info!(rule, retry_after_s = retry_after.as_secs(), "rate limited");
                metrics::counter!("rate_limit_rejections_total", "rule" => rule.to_string())
                    .increment(1);
                return Err(DomainError::RateLimited { retry_after }.into());
            }
        }
        Ok(())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ironhand API", description = "Every JSON answer is an envelope `{code, msg, data}`: `code` is 0 on success and the HTTP status otherwise. docs/api.md in the Ironhand repository describes the envelope, the statuses, the event streams and the agent's tools. No text a request carries may hold a NUL character (`\\u0000`, `%00`): such a request is a 422."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of every `/api/v1` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_router();
    doc
}

fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::api())
        .split_for_parts();
    describe_responses(&mut doc);
    routes::optional_bodies(&mut doc);
    (router, doc)
}

/// OpenAPI requires a description on every response; where a route gives none, use the
/// status's reason phrase. The refusals every route can give (malformed body, missing
/// token, server error…) are added where a route does not list them.
fn describe_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let reason = |status: &str| {
        status
            .parse::<u16>()
            .ok()
            .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Response")
            .to_string()
    };
    let error = |status: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(reason(status))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let mut common = vec!["500", "503"];
            if op.request_body.is_some() {
                common.extend(["400", "413", "415", "422"]);
            }
            if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                common.extend(["404", "422"]);
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                common.push("401");
            }
            for status in common {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(status));
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = reason(status);
                }
            }
        }
    }
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api_router();
    let settings = state.settings.clone();
    let mut app = Router::new()
        .merge(api)
        .merge(
            Router::<AppState>::from(
                SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", doc),
            )
            .layer(axum::middleware::map_response(
                middleware::envelope_bare_not_found,
            )),
        )
        .route("/", get(web_app::fallback).layer(CompressionLayer::new()))
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(axum::routing::any(web_app::fallback).layer(CompressionLayer::new()))
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.server.max_body_bytes))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(settings.server.request_timeout_secs),
            middleware::timeout,
        ));
    if !settings.server.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = settings
            .server
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    middleware::X_REQUEST_ID.clone(),
                    HeaderName::from_static("x-csrf-token"),
                    HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([middleware::X_REQUEST_ID.clone(), header::RETRY_AFTER])
                .allow_credentials(true)
                .max_age(Duration::from_secs(600)),
        );
    }
    app.layer(axum::middleware::from_fn_with_state(
        SecurityHeaders {
            hsts: settings.behind_tls(),
        },
        middleware::security_headers,
    ))
    .layer(axum::middleware::from_fn(middleware::observe))
    .with_state(state)
}

/// Serves the API on `listener` (and `/metrics` on `admin`) until `shutdown` fires, then
/// gives open requests `server.shutdown_grace_secs` to finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
    tokio::spawn(crate::jobs::prune_auth_records(
        state.store.clone(),
        shutdown.clone(),
    ));
    let worker_config = crate::agent_setup::worker_config(&state.settings, &state.instance_id);
    tokio::spawn(crate::jobs::session_upkeep(
        state.clone(),
        worker_config.worker_id.clone(),
        shutdown.clone(),
    ));
    // Streams end as soon as shutdown begins, so open connections do not hold it up.
    let stopping = state.stopping.clone();
    let stop_signal = shutdown.clone();
    tokio::spawn(async move {
        stop_signal.cancelled().await;
        stopping.cancel();
    });
    let worker = state.settings.agent.embedded_worker.then(|| {
        let worker = RunWorker::new(
            state.agent.clone(),
            state.store.clone(),
            Some(state.workspaces.clone()),
            worker_config,
        );
        tokio::spawn(worker.run(shutdown.clone()))
    });
    let handle = telemetry::metrics();
    if let Some(admin) = admin {
        let admin_app =
            Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(admin, admin_app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    let open_files = crate::http::connections::raise_open_files_limit();
    let limits = crate::http::connections::ConnectionLimits::from_settings(
        &state.settings.server,
        open_files,
    );
    tracing::info!(
        open_files = open_files.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        "connection limits"
    );
    if let Some(files) = open_files
        && limits.max_connections as u64 + 64 > files
    {
        tracing::warn!(
            open_files = files,
            max_connections = limits.max_connections,
            "server.max_connections leaves fewer than 64 of the open-file limit for the database, files and sandboxes; lower it or raise the hard limit"
        );
    }
    let app = router(state);
    let server = crate::http::connections::serve(listener, app, limits, shutdown.clone());
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => {}
        _ = deadline => tracing::warn!(grace_s = grace.as_secs(), "shutdown grace period over; closing remaining connections"),
    }
    // Running runs go back to the queue before the process exits.
    if let Some(worker) = worker
        && tokio::time::timeout(grace, worker).await.is_err()
    {
        tracing::warn!("the run worker did not stop within the grace period");
    }
    Ok(())
}
