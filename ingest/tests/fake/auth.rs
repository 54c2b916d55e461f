//! Credentials, the OAuth2 refresh-token endpoints, and the 401 shapes.

use serde_json::{Value, json};

use super::data::{OAUTH, PLATFORMS, account, h};
use super::{Ctx, Req, Resp};

pub fn secret(seed: u64, p: &str, field: &str) -> String {
    let x = h(
        seed,
        "secret",
        &[super::data::fnv(p), super::data::fnv(field)],
    );
    let s = format!("{p}-{}-secret-{x:016x}", field.replace('_', "-"));
    if field == "api_key" {
        format!("sk_test_{s}")
    } else {
        s
    }
}

fn fields(p: &str) -> &'static [&'static str] {
    match p {
        "meta_ads" | "tiktok_ads" | "shopify" => &["access_token"],
        "stripe" => &["api_key"],
        "google_ads" | "youtube_ads" => &[
            "client_id",
            "client_secret",
            "refresh_token",
            "developer_token",
        ],
        _ => &["client_id", "client_secret", "refresh_token"],
    }
}

pub fn credentials(seed: u64, p: &str) -> Value {
    fields(p)
        .iter()
        .map(|f| (f.to_string(), Value::String(secret(seed, p, f))))
        .collect()
}

pub fn all_secrets(seed: u64) -> Vec<String> {
    PLATFORMS
        .iter()
        .flat_map(|p| fields(p).iter().map(move |f| secret(seed, p, f)))
        .collect()
}

/// The platforms served by a token path.
pub fn token_family(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "/token" => &["google_ads", "youtube_ads", "ga4"],
        "/oauth/v2/accessToken" => &["linkedin_ads"],
        "/oauth/v1/token" => &["hubspot"],
        "/services/oauth2/token" => &["salesforce"],
        "/oauth/token" => &["gohighlevel"],
        _ => return None,
    })
}

/// The platform whose credentials the token request carries.
pub fn token_platform(seed: u64, family: &[&'static str], req: &Req) -> Option<&'static str> {
    let form = req.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("refresh_token") {
        return None;
    }
    family.iter().copied().find(|p| {
        ["client_id", "client_secret", "refresh_token"]
            .iter()
            .all(|f| get(f) == Some(secret(seed, p, f).as_str()))
    })
}

pub fn token(c: &Ctx, family: &[&'static str]) -> Resp {
    let seed = c.world.seed;
    if family == ["gohighlevel"] {
        return rotating_token(c);
    }
    let Some(p) = token_platform(seed, family, c.req) else {
        return Resp::json(
            400,
            json!({"error": "invalid_grant", "error_description": "authentication failure: unknown client or refresh token"}),
        );
    };
    let tok = {
        let mut inner = c.shared.inner.lock().unwrap();
        inner.counter += 1;
        let tok = format!(
            "{p}-access-token-secret-{:016x}",
            h(seed, "token", &[inner.counter])
        );
        inner.tokens.insert(tok.clone(), p);
        inner.issued.push(tok.clone());
        tok
    };
    let refresh = secret(seed, p, "refresh_token");
    Resp::json(
        200,
        match p {
            "linkedin_ads" => {
                json!({"access_token": tok, "expires_in": 5_184_000, "refresh_token": refresh, "refresh_token_expires_in": 31_536_000})
            }
            "hubspot" => json!({"access_token": tok, "refresh_token": refresh, "expires_in": 1800}),
            "salesforce" => {
                json!({"access_token": tok, "instance_url": c.shared.url, "token_type": "Bearer",
            "issued_at": chrono::Utc::now().timestamp_millis().to_string()})
            }
            "gohighlevel" => {
                json!({"access_token": tok, "token_type": "Bearer", "expires_in": 86_399, "refresh_token": refresh,
            "locationId": account(seed, p)})
            }
            _ => {
                json!({"access_token": tok, "expires_in": 3599, "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/adwords"})
            }
        },
    )
}

/// Whether the request carries valid credentials for platform `p`.
pub fn authorized(c: &Ctx, p: &str) -> bool {
    let seed = c.world.seed;
    let bearer = c
        .req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    match p {
        "meta_ads" => bearer == Some(secret(seed, p, "access_token").as_str()),
        "stripe" => bearer == Some(secret(seed, p, "api_key").as_str()),
        "tiktok_ads" => {
            c.req.header("access-token") == Some(secret(seed, p, "access_token").as_str())
        }
        "shopify" => {
            c.req.header("x-shopify-access-token") == Some(secret(seed, p, "access_token").as_str())
        }
        _ => {
            // Google Ads and YouTube share the customer and the endpoint.
            let allowed: &[&str] = match p {
                "google_ads" | "youtube_ads" => &["google_ads", "youtube_ads"],
                _ => &[p],
            };
            if allowed.len() == 2 {
                let dev = c.req.header("developer-token");
                if !allowed
                    .iter()
                    .any(|a| dev == Some(secret(seed, a, "developer_token").as_str()))
                {
                    return false;
                }
            }
            let inner = c.shared.inner.lock().unwrap();
            bearer
                .and_then(|b| inner.tokens.get(b))
                .is_some_and(|owner| allowed.contains(owner))
        }
    }
}

pub fn unauthorized(p: &str) -> Resp {
    let body = match p {
        "google_ads" | "youtube_ads" | "ga4" => {
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
        }
        "linkedin_ads" => {
            json!({"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN", "message": "The token used in the request has been revoked by the user"})
        }
        "hubspot" => {
            json!({"status": "error", "message": "The OAuth token used to make this call expired 1 second(s) ago.", "category": "EXPIRED_AUTHENTICATION"})
        }
        "salesforce" => {
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        }
        "gohighlevel" => json!({"statusCode": 401, "message": "Invalid JWT"}),
        "meta_ads" => {
            json!({"error": {"message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190, "fbtrace_id": "AFakeTrace"}})
        }
        "tiktok_ads" => {
            json!({"code": 40105, "message": "Access token is incorrect or has been revoked.", "request_id": "fake", "data": {}})
        }
        "shopify" => {
            json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
        }
        _ => {
            json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"}})
        }
    };
    Resp::json(401, body)
}

pub fn is_oauth(p: &str) -> bool {
    OAUTH.contains(&p)
}

/// GoHighLevel's refresh tokens are single-use: each grant answers with a
/// new one. The one it replaced stays good until the new one is used (a
/// client that lost an answer can try again), then dies.
fn rotating_token(c: &Ctx) -> Resp {
    let p = "gohighlevel";
    let seed = c.world.seed;
    let form = c.req.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut inner = c.shared.inner.lock().unwrap();
    let (current, previous) = inner
        .refresh
        .clone()
        .unwrap_or_else(|| (secret(seed, p, "refresh_token"), None));
    let presented = get("refresh_token").unwrap_or_default();
    let client_ok = ["client_id", "client_secret"]
        .iter()
        .all(|f| get(f) == Some(secret(seed, p, f)));
    let fresh = presented == current;
    if get("grant_type").as_deref() != Some("refresh_token")
        || !client_ok
        || !(fresh || previous.as_deref() == Some(presented.as_str()))
    {
        return Resp::json(
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid refresh token"}),
        );
    }
    inner.grants.0 += 1;
    inner.grants.1 += usize::from(!fresh);
    inner.counter += 1;
    let n = inner.counter;
    let tok = format!("{p}-access-token-secret-{:016x}", h(seed, "token", &[n]));
    let next = format!("{p}-refresh_token-secret-{:016x}", h(seed, "rotate", &[n]));
    inner.tokens.insert(tok.clone(), p);
    inner.issued.push(tok.clone());
    inner.issued.push(next.clone());
    inner.refresh = Some((next.clone(), if fresh { Some(current) } else { previous }));
    Resp::json(
        200,
        json!({"access_token": tok, "token_type": "Bearer", "expires_in": 86_399, "refresh_token": next,
            "locationId": account(seed, p)}),
    )
}
