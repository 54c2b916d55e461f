//! The OpenAPI 3.1 document, generated from the handlers' annotations as the
//! router is built (so a route cannot exist undocumented), served at
//! `/api/v1/openapi.json`, and a docs page at `/docs` rendered from it on the
//! server: plain HTML and inline CSS, nothing fetched from anywhere else.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::ProblemBody;

const DESCRIPTION: &str = r#"Gyrus over HTTP: SQL, ingest, keys and operations for one tenant per API key.

**Auth.** Send `Authorization: Bearer gyr_<id>_<secret>`. The key decides the tenant and the role: `reader` (queries, tables), `writer` (also ingest), `admin` (also keys). No or a bad key: 401; a role too small: 403.

**Errors.** Every error is `application/problem+json` (RFC 7807): a stable `type` (`urn:gyrus:problem:<kind>`), the `status`, a `detail` that says what to change, and the `request_id` (also in the `x-request-id` header and the server log). Refused rows add `errors`: the columns, the count and the first rows at fault.

**Limits.** Per key, a rate limit (429 with `Retry-After`); per request, a body size limit (413) and a time limit (504); per server, a limit on requests in progress (503 with `Retry-After`).

**Lists.** Every list endpoint pages the same way: `limit` (1 to 1000, default 100), `cursor` (the previous page's `next_cursor`), `sort` (a field, `-field` for descending; ties by id) and filters as `field=value` query parameters; unknown parameters are refused. The answer is `{"items": [...], "next_cursor": "..." | null}`."#;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gyrus HTTP API", description = DESCRIPTION),
    modifiers(&Security),
    components(schemas(ProblemBody)),
    tags(
        (name = "sql", description = "Read-only SQL on the tenant's tables"),
        (name = "tables", description = "The canonical tables: what they hold, and pushing rows into them"),
        (name = "keys", description = "API keys of the tenant (admins)"),
        (name = "connectors", description = "Platform connectors of the tenant (admins): add, list, sync, follow, remove"),
        (name = "oracle", description = "ORACLE: forecasts with prediction intervals, from the trained model or a series sent in"),
        (name = "curiosity", description = "CURIOSITY: anomalies, change points, movers, segments and benchmarks, each explained; drivers of a change"),
        (name = "reflexes", description = "REFLEXES: budget plans from response curves, Thompson-sampling traffic splits, pacing against budget"),
        (name = "memory", description = "MEMORY: customer lifetime value, P(alive), churn risk and RFM segments; open deals by P(win)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("gyr_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The document, rendered once.
pub struct Docs {
    json: String,
    html: String,
}

impl Docs {
    pub fn new(openapi: &utoipa::openapi::OpenApi) -> Arc<Self> {
        let json = openapi.to_pretty_json().unwrap_or_else(|_| "{}".into());
        let value: Value = serde_json::from_str(&json).unwrap_or_default();
        Arc::new(Docs {
            html: render(&value),
            json,
        })
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi_document", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(docs): Extension<Arc<Docs>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        docs.json.clone(),
    )
        .into_response()
}

/// The API reference, as a page for people (works offline).
#[utoipa::path(get, path = "/docs", operation_id = "docs_page", tag = "operations",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String)))]
pub async fn docs_page(Extension(docs): Extension<Arc<Docs>>) -> Html<String> {
    Html(docs.html.clone())
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code and bold from the descriptions' Markdown, nothing more.
fn inline_markdown(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, bit) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{bit}</strong>");
                } else {
                    out.push_str(bit);
                }
            }
        }
    }
    out
}

fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|p| format!("<p>{}</p>", inline_markdown(p)))
        .collect()
}

/// A schema as a short type: `$ref`s by name, arrays as `[T]`.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(items) = schema.get("items") {
        return format!("[{}]", type_of(items));
    }
    match &schema["type"] {
        Value::String(t) => esc(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if schema.get("oneOf").is_some() => schema["oneOf"]
            .as_array()
            .map(|v| v.iter().map(type_of).collect::<Vec<_>>().join(" | "))
            .unwrap_or_default(),
        _ => "any".into(),
    }
}

fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>\
body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d232a}}\
code{{background:#f1f3f5;padding:0 .25em;border-radius:3px}}h2{{border-bottom:1px solid #dde;margin-top:2.5rem}}\
.op{{border:1px solid #dde;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}}\
.m{{font-weight:700;text-transform:uppercase;display:inline-block;min-width:4.5em}}\
.get{{color:#1864ab}}.post{{color:#2b8a3e}}.delete{{color:#c92a2a}}\
table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #dde;padding:.2rem .5rem;text-align:left;vertical-align:top}}\
</style></head><body><h1>{t}</h1><p>Version {v} · OpenAPI {o} · <a href=\"/api/v1/openapi.json\">openapi.json</a></p>{d}",
        t = esc(title),
        v = esc(doc["info"]["version"].as_str().unwrap_or("")),
        o = esc(doc["openapi"].as_str().unwrap_or("")),
        d = paragraphs(doc["info"]["description"].as_str().unwrap_or("")),
    );
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["description"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    for (tag, about) in &tags {
        let _ = write!(
            out,
            "<h2 id=\"tag-{0}\">{0}</h2><p>{1}</p>",
            esc(tag),
            esc(about)
        );
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap_or(&empty) {
                let in_tag = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == tag.as_str()));
                if in_tag {
                    render_operation(&mut out, method, path, op);
                }
            }
        }
    }
    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);
    for (name, schema) in schemas {
        let _ = write!(
            out,
            "<h3 id=\"schema-{n}\">{n}</h3>{d}<table><tr><th>field</th><th>type</th><th>about</th></tr>",
            n = esc(name),
            d = paragraphs(schema["description"].as_str().unwrap_or("")),
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (field, spec) in schema["properties"].as_object().unwrap_or(&empty) {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                esc(field),
                if required.contains(&field.as_str()) {
                    " *"
                } else {
                    ""
                },
                type_of(spec),
                inline_markdown(spec["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>");
    out
}

fn render_operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = write!(
        out,
        "<div class=\"op\" id=\"{m}-{p}\"><p><span class=\"m {m}\">{m}</span> <code>{p}</code>{auth}</p><p><strong>{s}</strong></p>{d}",
        m = esc(method),
        p = esc(path),
        auth = if op.get("security").is_some() {
            " · needs a key"
        } else {
            ""
        },
        s = inline_markdown(op["summary"].as_str().unwrap_or("")),
        d = paragraphs(op["description"].as_str().unwrap_or("")),
    );
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>about</th></tr>");
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"] == true { " *" } else { "" },
                esc(p["in"].as_str().unwrap_or("")),
                type_of(&p["schema"]),
                inline_markdown(p["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let _ = write!(
            out,
            "<p>Body: {}</p>",
            content
                .iter()
                .map(|(media, c)| format!("<code>{}</code> {}", esc(media), type_of(&c["schema"])))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(responses) = op["responses"].as_object() {
        out.push_str("<table><tr><th>status</th><th>answer</th><th>body</th></tr>");
        for (status, r) in responses {
            let bodies = r["content"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(media, c)| {
                            format!("<code>{}</code> {}", esc(media), type_of(&c["schema"]))
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                inline_markdown(r["description"].as_str().unwrap_or("")),
                bodies
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</div>");
}
