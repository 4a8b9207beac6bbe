//! `/auth`: accounts, sessions and password reset (docs/api.md, section Auth).

pub mod cookie;
pub mod dto;

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, AuthUser, ClientIp, OptionalJson};
use crate::routes::{ErrorEnvelope, NullEnvelope};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dto::*;
use ironhand_core::DomainError;
use ironhand_core::auth::TokenPair;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(change_fullname))
        .routes(routes!(send_verification_code))
        .routes(routes!(reset_password))
}

/// Answers with tokens, also setting the refresh cookie in cookie mode.
fn with_tokens(
    state: &AppState,
    user: Option<&ironhand_core::user::User>,
    tokens: TokenPair,
) -> Response {
    let expires_in = tokens.access_expires_in.as_secs();
    let mut response = match user {
        Some(user) => ok(AuthResponse {
            user: user.into(),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token.clone(),
            token_type: "bearer".into(),
            expires_in,
        }),
        None => ok(TokenResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token.clone(),
            token_type: "bearer".into(),
            expires_in,
        }),
    };
    if state.settings.auth.refresh_cookie {
        cookie::set(
            response.headers_mut(),
            &tokens.refresh_token,
            state.auth.settings().refresh_ttl,
        );
    }
    response
}

fn email_key(email: &str) -> String {
    crate::app::hashed_key(&email.trim().to_lowercase())
}

/// Marks the client that just signed in to `email`'s account as a known device of it.
fn remember_device(state: &AppState, response: &mut Response, email: &str) {
    cookie::set_device(
        response.headers_mut(),
        &cookie::device_cookie_name(&email_key(email)),
        &state.auth.device_token(email),
        ironhand_core::auth::KNOWN_DEVICE_TTL,
    );
}

#[utoipa::path(get, path = "/auth/status", tag = "auth",
    responses((status = 200, body = Envelope<AuthStatusResponse>)))]
async fn status(State(state): State<AppState>) -> Response {
    let s = state.auth.settings();
    ok(AuthStatusResponse {
        auth_provider: s.provider.as_str().into(),
        registration_open: s.registration_open
            && s.provider == ironhand_core::auth::AuthProvider::Password,
        max_upload_bytes: state.settings.files.max_upload_bytes,
        refresh_cookie: state.settings.auth.refresh_cookie,
    })
}

#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 200, body = Envelope<AuthResponse>), (status = 403, body = ErrorEnvelope, description = "registration is closed"),
              (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult {
    state
        .limit("register", state.quotas.register, &[&ip.limit_key()])
        .await?;
    let (user, tokens) = state
        .auth
        .register(&req.fullname, &req.email, &req.password)
        .await?;
    tracing::info!(user_id = %user.id, "account registered");
    let mut response = with_tokens(&state, Some(&user), tokens);
    remember_device(&state, &mut response, &req.email);
    Ok(response)
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Envelope<AuthResponse>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult {
    let email = email_key(&req.email);
    let device = cookie::read(&headers, &cookie::device_cookie_name(&email))
        .and_then(|token| state.auth.known_device(&req.email, &token));
    let ip = ip.limit_key();
    let quotas = &state.quotas;
    // The client's own budgets first, so a client over them spends nothing of the account's.
    state.limit("login-ip", quotas.login_ip, &[&ip]).await?;
    match device {
        // A known device of this account has a budget of its own, and the account's ceiling
        // does not hold it back: strangers' guesses cannot lock its owner out.
        Some(device) => {
            state
                .limit("login", quotas.login, &[&format!("device:{device}")])
                .await?
        }
        None => {
            let client = crate::app::hashed_key(&format!("{email}|{ip}"));
            state
                .limit("login", quotas.login, &[&format!("email-ip:{client}")])
                .await?;
            state
                .limit(
                    "login-email",
                    quotas.login_email,
                    &[&format!("email:{email}")],
                )
                .await?;
        }
    }
    let (user, tokens) = state.auth.login(&req.email, &req.password).await?;
    let mut response = with_tokens(&state, Some(&user), tokens);
    remember_device(&state, &mut response, &req.email);
    Ok(response)
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body(content = Option<RefreshRequest>, description = "optional in cookie mode"),
    responses((status = 200, body = Envelope<TokenResponse>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "cookie used without a CSRF signal"),
              (status = 429, body = ErrorEnvelope)))]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> ApiResult {
    state
        .limit("refresh", state.quotas.refresh, &[&ip.limit_key()])
        .await?;
    let token = match req.refresh_token.filter(|t| !t.is_empty()) {
        Some(token) => token,
        None => {
            let from_cookie = state
                .settings
                .auth
                .refresh_cookie
                .then(|| cookie::read(&headers, cookie::REFRESH_COOKIE))
                .flatten();
            let Some(token) = from_cookie else {
                return Err(DomainError::Unauthorized(
                    "No refresh token was sent. Log in again.".into(),
                )
                .into());
            };
            if !cookie::csrf_ok(&headers, &state.public_origin) {
                return Err(ApiError::forbidden(
                    "This request used the session cookie without proof it came from this site (CSRF check failed).",
                ));
            }
            token
        }
    };
    // Rotation runs to completion even if this request is dropped (client gone, timeout):
    // a half-seen rotation would make the client's retry look like token reuse.
    let auth = state.auth.clone();
    let rotation = tokio::spawn(async move { auth.refresh(&token).await })
        .await
        .unwrap_or_else(|e| Err(ironhand_core::DomainError::internal(e)));
    match rotation {
        Ok(tokens) => Ok(with_tokens(&state, None, tokens)),
        Err(e) => {
            // A dead session clears the cookie; a transient failure (503) keeps it for a retry.
            let dead = matches!(e, DomainError::Unauthorized(_));
            let mut response = ApiError::from(e).into_response();
            if dead && state.settings.auth.refresh_cookie {
                cookie::clear(response.headers_mut());
            }
            Ok(response)
        }
    }
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>, description = "optional"),
    security(("bearer" = [])),
    responses((status = 200, body = NullEnvelope), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn logout(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<LogoutRequest>,
) -> ApiResult {
    state
        .limit(
            "logout",
            state.quotas.logout,
            &[&format!("user:{}", who.user.id)],
        )
        .await?;
    let refresh = req
        .refresh_token
        .or_else(|| cookie::read(&headers, cookie::REFRESH_COOKIE));
    state.auth.logout(&who, refresh.as_deref()).await?;
    let mut response = ok(None::<()>);
    if state.settings.auth.refresh_cookie {
        cookie::clear(response.headers_mut());
    }
    Ok(response)
}

#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = NullEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn logout_all(State(state): State<AppState>, AuthUser(who): AuthUser) -> ApiResult {
    state.auth.logout_all(&who).await?;
    let mut response = ok(None::<()>);
    if state.settings.auth.refresh_cookie {
        cookie::clear(response.headers_mut());
    }
    Ok(response)
}

#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<UserResponse>), (status = 401, body = ErrorEnvelope)))]
async fn me(AuthUser(who): AuthUser) -> Response {
    ok(UserResponse::from(&who.user))
}

#[utoipa::path(post, path = "/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, body = NullEnvelope), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope)))]
async fn change_password(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult {
    state
        .limit(
            "change-password",
            state.quotas.change_password,
            &[&format!("user:{}", who.user.id)],
        )
        .await?;
    state
        .auth
        .change_password(&who, &req.old_password, &req.new_password)
        .await?;
    Ok(ok(None::<()>))
}

#[utoipa::path(post, path = "/auth/change-fullname", tag = "auth", request_body = ChangeFullnameRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<UserResponse>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn change_fullname(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(req): ApiJson<ChangeFullnameRequest>,
) -> ApiResult {
    let user = state.auth.change_fullname(&who, &req.fullname).await?;
    Ok(ok(UserResponse::from(&user)))
}

#[utoipa::path(post, path = "/auth/send-verification-code", tag = "auth", request_body = SendVerificationCodeRequest,
    responses((status = 200, body = NullEnvelope, description = "the same answer whether or not the account exists"),
              (status = 429, body = ErrorEnvelope)))]
async fn send_verification_code(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<SendVerificationCodeRequest>,
) -> ApiResult {
    let email = format!("email:{}", email_key(&req.email));
    // The client's own budget first: once it is spent, nothing is charged to the email, so
    // nobody can keep someone else's cooldown running.
    let quotas = &state.quotas;
    state
        .limit(
            "send-code",
            quotas.send_verification_code,
            &[&ip.limit_key()],
        )
        .await?;
    state
        .limit(
            "send-code-cooldown",
            quotas.verification_code_cooldown,
            &[&email],
        )
        .await?;
    state
        .limit("send-code", quotas.send_verification_code, &[&email])
        .await?;
    state.auth.send_reset_code(&req.email).await?;
    Ok(ok(None::<()>))
}

#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 200, body = NullEnvelope), (status = 400, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn reset_password(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> ApiResult {
    state
        .limit(
            "reset-password",
            state.quotas.reset_password,
            &[&ip.limit_key()],
        )
        .await?;
    state
        .auth
        .reset_password(&req.email, &req.verification_code, &req.new_password)
        .await?;
    Ok(ok(None::<()>))
}
