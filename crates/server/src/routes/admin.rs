//! `/auth/user…`: administrators look up, list, deactivate and activate accounts.

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::ApiResult;
use crate::http::extract::{AdminUser, ApiPath, ApiQuery};
use crate::routes::auth::dto::UserResponse;
use crate::routes::{ErrorEnvelope, NullEnvelope};
use axum::extract::State;
use ironhand_core::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_user))
        .routes(routes!(list_users))
        .routes(routes!(deactivate))
        .routes(routes!(activate))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Matches email or full name; at most 200 characters, none a control character.
    #[param(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    pub users: Vec<UserResponse>,
    pub total: i64,
}

#[utoipa::path(get, path = "/auth/user/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = Envelope<UserResponse>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_user(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult {
    let user = state.auth.user(id).await?;
    Ok(ok(UserResponse::from(&user)))
}

#[utoipa::path(get, path = "/auth/users", tag = "admin", security(("bearer" = [])), params(ListUsersQuery),
    responses((status = 200, body = Envelope<UserListResponse>), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_users(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> ApiResult {
    let page = state
        .auth
        .list_users(q.page.unwrap_or(1), q.limit.unwrap_or(20), q.q.as_deref())
        .await?;
    Ok(ok(UserListResponse {
        users: page.users.iter().map(UserResponse::from).collect(),
        total: page.total,
    }))
}

#[utoipa::path(post, path = "/auth/user/{id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = NullEnvelope), (status = 400, body = ErrorEnvelope, description = "yourself"),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn deactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult {
    state.auth.set_active(&admin.user, id, false).await?;
    Ok(ok(None::<()>))
}

#[utoipa::path(post, path = "/auth/user/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = NullEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn activate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult {
    state.auth.set_active(&admin.user, id, true).await?;
    Ok(ok(None::<()>))
}
