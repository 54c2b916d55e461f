//! The fault kinds and the platforms' throttle and server-error shapes.

use serde_json::json;

use super::Resp;

/// Fault kinds, in SPEC order; `Fake::faults()` counts by these names.
pub const KINDS: [&str; 8] = [
    "throttle_retry_after",
    "throttle",
    "server_error",
    "timeout",
    "truncated",
    "malformed",
    "repeat_page",
    "token_expired",
];

pub fn throttle(p: &str) -> Resp {
    let google = |details: bool| {
        let mut e = json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}});
        if details {
            e["error"]["details"] = json!([{"@type": "type.googleapis.com/google.ads.googleads.v21.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"quotaError": "RESOURCE_EXHAUSTED"}, "message": "Too many requests.",
                    "details": {"quotaErrorDetails": {"rateScope": "ACCOUNT", "rateName": "Requests per service per method", "retryDelay": "1s"}}}]}]);
        }
        Resp::json(429, e)
    };
    match p {
        "google_ads" | "youtube_ads" => google(true),
        "ga4" => google(false),
        // `serve` adds the usage headers, with call_count 100.
        "meta_ads" => Resp::json(
            400,
            json!({"error": {"message": "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
            "type": "OAuthException", "code": 80004, "error_subcode": 2_446_079, "fbtrace_id": "AFakeTrace"}}),
        ),
        "linkedin_ads" => Resp::json(
            429,
            json!({"status": 429, "message": "Resource level throttle limit for calls to this resource is reached."}),
        ),
        "tiktok_ads" => Resp::json(
            200,
            json!({"code": 40100, "message": "Too many requests. Please retry in some time.", "request_id": "fake-throttle", "data": {}}),
        ),
        "shopify" => Resp::json(
            200,
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 252, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 12, "restoreRate": 1000.0}}}}),
        ),
        "stripe" => Resp::json(
            429,
            json!({"error": {"type": "rate_limit_error", "message": "Request rate limit exceeded. Please retry later."}}),
        ),
        "hubspot" => Resp::json(
            429,
            json!({"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"}),
        ),
        "salesforce" => Resp::json(
            403,
            json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        ),
        _ => Resp::json(
            429,
            json!({"statusCode": 429, "message": "Too Many Requests"}),
        ),
    }
}

/// HTTP 500, or 503 when `unavailable`.
pub fn server_error(p: &str, unavailable: bool) -> Resp {
    let code = if unavailable { 503 } else { 500 };
    let msg = if unavailable {
        "Service Unavailable"
    } else {
        "Internal Server Error"
    };
    let body = match p {
        "google_ads" | "youtube_ads" | "ga4" => json!({"error": {"code": code, "message": msg,
            "status": if unavailable { "UNAVAILABLE" } else { "INTERNAL" }}}),
        "meta_ads" => {
            json!({"error": {"message": "An unexpected error has occurred. Please retry your request later.",
            "type": "OAuthException", "is_transient": true, "code": 2, "fbtrace_id": "AFakeTrace"}})
        }
        "linkedin_ads" | "gohighlevel" => {
            json!({"status": code, "statusCode": code, "message": msg})
        }
        "tiktok_ads" => {
            json!({"code": 50000, "message": msg, "request_id": "fake-error", "data": {}})
        }
        "shopify" => json!({"errors": msg}),
        "stripe" => json!({"error": {"type": "api_error", "message": msg}}),
        "hubspot" => json!({"status": "error", "message": msg, "category": "INTERNAL_ERROR"}),
        _ => json!([{"message": msg, "errorCode": "UNKNOWN_EXCEPTION"}]),
    };
    Resp::json(code, body)
}
