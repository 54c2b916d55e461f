//! The caller, from `Authorization: Bearer <key>`: an extractor, so a handler
//! that takes a [`Caller`] cannot run unauthenticated. 401 without valid
//! credentials; 403 ([`Caller::require`]) when the key's role is too small;
//! 429 with `Retry-After` when the key or its tenant has used up its rate limit.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use gyrus_engine::system::{Asker, Surface};
use gyrus_engine::{Role, TenantId};

use crate::problem::Problem;
use crate::state::AppState;

/// Who is calling, as their key says.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub tenant: TenantId,
    pub role: Role,
}

impl Caller {
    /// 403 unless the key's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        Ok(self.role.require(needed)?)
    }

    /// Who asks, for the `system` schema and the query log.
    pub fn asker(&self) -> Asker {
        Asker {
            surface: Surface::Http,
            key_id: Some(self.key_id.clone()),
            role: self.role,
        }
    }
}

/// The key of an `Authorization: Bearer <key>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                Problem::unauthorized("no credentials: send `Authorization: Bearer <API key>`")
            })?
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not ASCII"))?;
        let key = bearer(header)
            .ok_or_else(|| Problem::unauthorized("use `Authorization: Bearer <API key>`"))?;
        let found = state.keys.authenticate(key).await.map_err(|err| {
            tracing::error!(error = %err, "key store unavailable");
            Problem::unavailable("the key store is unavailable; retry shortly")
        })?;
        let key = found.ok_or_else(|| Problem::unauthorized("invalid or revoked API key"))?;
        state
            .admission
            .check_rate(&key.id, &key.tenant)
            .map_err(Problem::refused)?;
        Ok(Caller {
            key_id: key.id,
            tenant: key.tenant,
            role: key.role,
        })
    }
}
