//! Request and response bodies of `/auth` (docs/api.md, section Auth).

use ironhand_core::user::User;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// ISO-8601 in UTC with a `Z`.
pub fn iso(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub fullname: String,
    pub email: String,
    /// `admin` or `user`.
    pub role: String,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            fullname: u.fullname.clone(),
            email: u.email.clone(),
            role: u.role.as_str().into(),
            is_active: u.is_active,
            created_at: iso(u.created_at),
            updated_at: iso(u.updated_at),
            last_login_at: u.last_login_at.map(iso),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(min_length = 2, max_length = 100)]
    pub fullname: String,
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// Optional in cookie mode, where the HttpOnly cookie carries it.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeFullnameRequest {
    #[schema(min_length = 2, max_length = 100)]
    pub fullname: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendVerificationCodeRequest {
    #[schema(format = "email", max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    #[schema(pattern = "^[0-9]{6}$")]
    pub verification_code: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserResponse,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthStatusResponse {
    /// `password`, `local` or `none`.
    pub auth_provider: String,
    pub registration_open: bool,
    /// The largest upload `POST /files` accepts (bytes), so clients can check first.
    pub max_upload_bytes: u64,
    /// Cookie mode: the refresh token also travels in an HttpOnly cookie, so a browser
    /// client keeps only the access token (in memory) and refreshes with the cookie.
    pub refresh_cookie: bool,
}
