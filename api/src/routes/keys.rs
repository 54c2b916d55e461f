//! `POST /api/v1/keys`, `GET /api/v1/keys`, `DELETE /api/v1/keys/{id}`: an
//! admin manages the keys of their own tenant. Secrets are shown once, at
//! creation; listed keys carry no secret, and another tenant's key is "not
//! found" whether or not it exists.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use gyrus_engine::{ApiKey, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::pagination::{ListParams, ListQuery, ListSpec, Page};
use crate::problem::{Problem, ProblemBody};
use crate::routes::PathParam;
use crate::routes::json_body;
use crate::state::AppState;

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    #[schema(example = "3f9a1c0b7d2e")]
    id: String,
    tenant: String,
    /// `reader`, `writer` or `admin`.
    role: String,
    created_at: DateTime<Utc>,
    /// Set once the key is revoked; revoked keys are listed, and refused.
    revoked_at: Option<DateTime<Utc>>,
    revoked: bool,
}

impl From<ApiKey> for KeyInfo {
    fn from(key: ApiKey) -> Self {
        KeyInfo {
            id: key.id,
            tenant: key.tenant.as_str().to_string(),
            role: key.role.as_str().to_string(),
            created_at: key.created_at,
            revoked: key.revoked_at.is_some(),
            revoked_at: key.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `reader`, `writer` or `admin`.
    #[schema(example = "reader")]
    role: String,
}

/// A new key, with the secret to present; it is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    key: KeyInfo,
    /// `gyr_<id>_<secret>`: send as `Authorization: Bearer <key>`.
    secret: String,
}

const KEYS: ListSpec = ListSpec {
    id: "id",
    sortable: &["created_at", "id", "role"],
    filterable: &["role", "revoked"],
    default_sort: "created_at",
};

/// Creates a key for the caller's tenant.
#[utoipa::path(post, path = "/keys", operation_id = "create_key", tag = "keys", security(("bearer" = [])),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, with its secret (shown once)", body = CreatedKey),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), Problem> {
    caller.require(Role::Admin)?;
    let request: CreateKey = json_body(&headers, body)?;
    let role: Role = request.role.parse()?;
    let created = state.store.create_key(&caller.tenant, role).await?;
    // Usable at once, not after the cache's reload interval.
    state.keys.forget().await;
    tracing::info!(by = %caller.key_id, key_id = %created.key.id, role = %role, "key created over HTTP");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: created.key.into(),
            secret: created.secret,
        }),
    ))
}

/// The keys of the caller's tenant, revoked ones included.
///
/// Sorts by `created_at` (default), `id`, `role`; filters by `role`, `revoked`.
#[utoipa::path(get, path = "/keys", operation_id = "list_keys", tag = "keys", security(("bearer" = [])),
    params(ListParams,
        ("role" = Option<String>, Query, description = "Only keys with this role"),
        ("revoked" = Option<bool>, Query, description = "Only revoked (true) or live (false) keys")),
    responses(
        (status = 200, description = "One page of keys", body = Page<KeyInfo>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<KeyInfo>>, Problem> {
    caller.require(Role::Admin)?;
    let keys: Vec<KeyInfo> = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| k.tenant == caller.tenant)
        .map(KeyInfo::from)
        .collect();
    Ok(Json(query.page(keys, &KEYS)?))
}

/// Revokes a key of the caller's tenant; revoking twice is harmless.
/// The key stops working on this server at once, on others within 10 s.
#[utoipa::path(delete, path = "/keys/{id}", operation_id = "revoke_key", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = KeyInfo),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<KeyInfo>, Problem> {
    caller.require(Role::Admin)?;
    let key = state.store.revoke_tenant_key(&caller.tenant, &id).await?;
    state.keys.forget().await;
    tracing::info!(by = %caller.key_id, key_id = %id, "key revoked over HTTP");
    Ok(Json(key.into()))
}
