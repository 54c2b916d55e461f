//! Limits that keep one caller from taking the server down:
//!
//! - a token bucket per API key ([`RateLimiter`]), checked by the
//!   [`crate::auth::Caller`] extractor: 429 with `Retry-After`;
//! - a cap on requests in progress ([`concurrency`]): past it, 503 with
//!   `Retry-After` at once, rather than a queue that grows memory. The slot is
//!   held until the response body has been sent, so streamed results count;
//! - a time limit on producing the response's headers ([`timeout`]): 504.
//!   Streamed bodies end at the query's own deadline.
//!
//! The body size limit (413) is axum's `DefaultBodyLimit`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use tokio::sync::Semaphore;

use crate::problem::Problem;
use crate::state::AppState;

/// Requests per second per key, with bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: f64,
    /// Requests a key may make at once after being idle.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 200.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// One token bucket per key id.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets idle this long are full again and are dropped, so the map only
/// holds keys seen lately.
const IDLE_BUCKET: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for `key_id`, or says how many seconds until one is there.
    pub fn check(&self, key_id: &str) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.refilled) < IDLE_BUCKET);
        }
        let bucket = buckets.entry(key_id.to_string()).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + earned).min(burst.max(1.0));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil() as u64)
        }
    }
}

/// Whether a request is API work, which the limits apply to; health,
/// readiness, metrics and the docs stay answerable under any load.
fn limited(request: &Request) -> bool {
    request.uri().path().starts_with("/api/")
}

/// 503 when `max_concurrent` API requests are already in progress.
pub async fn concurrency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !limited(&request) {
        return next.run(request).await;
    }
    let Ok(permit) = Arc::clone(&state.in_progress).try_acquire_owned() else {
        return Problem::unavailable(format!(
            "the server is handling its limit of {} requests; retry shortly",
            state.config.max_concurrent
        ))
        .into_response();
    };
    let response = next.run(request).await;
    // A body already in memory (its size known) frees the slot now.
    if axum::body::HttpBody::size_hint(response.body())
        .exact()
        .is_some()
    {
        return response;
    }
    // Keep the slot until a streamed body is done: it still holds its
    // query's memory.
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// 504 when the response's headers are not ready in time.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !limited(&request) {
        return next.run(request).await;
    }
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than {} s; narrow it (a date range, a LIMIT) or send less at once",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The semaphore behind [`concurrency`].
pub fn slots(max_concurrent: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(max_concurrent.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.5,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert_eq!(limiter.check("k1"), Ok(()));
        }
        assert_eq!(limiter.check("k1"), Err(2));
        // Another key has its own bucket.
        assert_eq!(limiter.check("k2"), Ok(()));
        let off = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 0.0,
        });
        assert!((0..1000).all(|_| off.check("k").is_ok()));
    }
}
