//! Who is calling: API keys as bearer tokens, and the basic-auth handshake.
//!
//! Every call carries `authorization: Bearer <token>`, where the token is an
//! API key (`gyr_…`) or a session token the handshake issued (`gys_…`). The
//! handshake takes `authorization: Basic base64(user:password)` — user = the
//! key's id or its tenant, password = the key's secret (or the whole key) —
//! and answers with `authorization: Bearer gys_…` in its response headers,
//! which is where ADBC, JDBC and `pyarrow.flight` look for it.
//!
//! The tenant comes from the key and nothing else: no header, command field
//! or SQL text can name another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use gyrus_engine::{ApiKey, KeyRing, Role, TenantId};
use rand::RngExt as _;
use tonic::Status;

use crate::status::engine_status;
use tonic::metadata::MetadataMap;

const TOKEN_PREFIX: &str = "gys_";

/// The caller of a request, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key's public id; tickets and prepared statements belong to it.
    pub key_id: String,
    pub tenant: TenantId,
    pub role: Role,
}

impl Identity {
    fn from_key(key: ApiKey) -> Self {
        Identity {
            key_id: key.id,
            tenant: key.tenant,
            role: key.role,
        }
    }

    /// `PERMISSION_DENIED` unless the key's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Status> {
        self.role.require(needed).map_err(engine_status)
    }
}

/// Checks credentials against the cached key table and keeps session tokens.
pub struct Authenticator {
    keys: Arc<KeyRing>,
    token_ttl: Duration,
    tokens: std::sync::Mutex<HashMap<String, (Identity, Instant)>>,
}

impl Authenticator {
    pub fn new(keys: Arc<KeyRing>, token_ttl: Duration) -> Self {
        Authenticator {
            keys,
            token_ttl,
            tokens: Default::default(),
        }
    }

    /// The caller of a request: `UNAUTHENTICATED` without valid credentials.
    pub async fn identify(&self, metadata: &MetadataMap) -> Result<Identity, Status> {
        match credentials(metadata)? {
            Credentials::Bearer(token) if token.starts_with(TOKEN_PREFIX) => {
                let identity = self.session_token(&token)?;
                // A revoked key ends its handshake sessions too.
                if self
                    .keys
                    .is_live(&identity.key_id)
                    .await
                    .map_err(unavailable)?
                {
                    Ok(identity)
                } else {
                    Err(invalid_credentials())
                }
            }
            Credentials::Bearer(key) => self
                .keys
                .authenticate(&key)
                .await
                .map_err(unavailable)?
                .map(Identity::from_key)
                .ok_or_else(invalid_credentials),
            Credentials::Basic { user, password } => self.basic(&user, &password).await,
        }
    }

    /// The handshake: checks basic auth (or a bearer key) and issues a session token.
    pub async fn handshake(&self, metadata: &MetadataMap) -> Result<(Identity, String), Status> {
        let identity = match credentials(metadata)? {
            Credentials::Basic { user, password } => self.basic(&user, &password).await?,
            Credentials::Bearer(_) => self.identify(metadata).await?,
        };
        let token = format!(
            "{TOKEN_PREFIX}{}",
            hex::encode(rand::rng().random::<[u8; 32]>())
        );
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, issued)| issued.elapsed() < self.token_ttl);
        tokens.insert(token.clone(), (identity.clone(), Instant::now()));
        tracing::info!(key_id = %identity.key_id, tenant = %identity.tenant, "handshake");
        Ok((identity, token))
    }

    async fn basic(&self, user: &str, password: &str) -> Result<Identity, Status> {
        self.keys
            .authenticate_basic(user, password)
            .await
            .map_err(unavailable)?
            .map(Identity::from_key)
            .ok_or_else(invalid_credentials)
    }

    fn session_token(&self, token: &str) -> Result<Identity, Status> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(token) {
            Some((identity, issued)) if issued.elapsed() < self.token_ttl => Ok(identity.clone()),
            Some(_) => Err(Status::unauthenticated(
                "the session token has expired; authenticate again",
            )),
            None => Err(invalid_credentials()),
        }
    }
}

enum Credentials {
    Bearer(String),
    Basic { user: String, password: String },
}

fn credentials(metadata: &MetadataMap) -> Result<Credentials, Status> {
    let header = metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "no credentials: send `authorization: Bearer <API key>`, or use the basic-auth handshake",
        )
    })?;
    let header = header
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not ASCII"))?
        .trim();
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
        return Ok(Credentials::Bearer(value.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Go's Flight client (ADBC) sends unpadded base64; C++ and Java pad it.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(value)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                Status::unauthenticated("basic credentials are not base64 of user:password")
            })?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("basic credentials lack a `:`"))?;
        return Ok(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    Err(Status::unauthenticated(
        "unsupported authorization scheme: use `Bearer <API key>` or the basic-auth handshake",
    ))
}

fn invalid_credentials() -> Status {
    Status::unauthenticated("invalid or revoked API key")
}

fn unavailable(err: gyrus_engine::EngineError) -> Status {
    tracing::error!(error = %err, "key store unavailable");
    Status::unavailable("the key store is unavailable; retry shortly")
}
