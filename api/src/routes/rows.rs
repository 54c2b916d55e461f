//! `POST /api/v1/tables/{table}/rows`: push rows into a canonical table.
//!
//! The body is NDJSON, CSV (with a header), an Arrow IPC stream or Parquet,
//! by `Content-Type`. The write is one Delta commit: every row lands or none
//! does; refused data is answered 422 with the columns and rows at fault.
//!
//! `Idempotency-Key` (scoped to the tenant's table): a retry with the same key
//! and the same body answers what the first request did and writes nothing;
//! the same key with another body is refused (422), so a client bug cannot
//! silently drop data. An append of no rows writes nothing and records no key.
//!
//! Slice replacement: `replace_from` and `replace_to` (days, inclusive) and
//! any `match=column=value` replace exactly that slice with the body's rows,
//! atomically (the connectors' restatement window).

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::NaiveDate;
use gyrus_engine::exec::Lane;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, Slice, WriteRequest};
use gyrus_ingest::Format;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::routes::PathParam;
use crate::routes::read_body;
use crate::routes::tables::TableName;
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The query parameters of an ingest, as documented.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IngestParams {
    /// First day of the slice to replace (inclusive); needs `replace_to`.
    replace_from: Option<NaiveDate>,
    /// Last day of the slice to replace (inclusive).
    replace_to: Option<NaiveDate>,
    /// `column=value` narrowing the slice (repeatable), e.g. `platform=google_ads`.
    r#match: Option<Vec<String>>,
}

/// What an ingest did.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestOutcome {
    table: String,
    /// Rows the write carried.
    rows: usize,
    /// The table's Delta version that holds them.
    version: u64,
    /// True when this is a replay of an `Idempotency-Key` already applied:
    /// nothing was written, and the numbers are the first request's.
    replayed: bool,
    idempotency_key: Option<String>,
    /// The replaced slice, when one was.
    replaced: Option<String>,
}

fn slice_from(pairs: &[(String, String)]) -> Result<Option<Slice>, Problem> {
    let (mut from, mut to, mut equals) = (None, None, Vec::new());
    let day = |name: &str, value: &str| {
        value.parse::<NaiveDate>().map_err(|_| {
            Problem::bad_request(format!("{name} must be a day (YYYY-MM-DD), not `{value}`"))
        })
    };
    for (name, value) in pairs {
        match name.as_str() {
            "replace_from" => from = Some(day(name, value)?),
            "replace_to" => to = Some(day(name, value)?),
            "match" => {
                let (column, wanted) = value.split_once('=').ok_or_else(|| {
                    Problem::bad_request(format!("match takes `column=value`, not `{value}`"))
                })?;
                equals.push((column.to_string(), wanted.to_string()));
            }
            _ => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{name}`; use replace_from, replace_to and match"
                )));
            }
        }
    }
    match (from, to) {
        (Some(from), Some(to)) => Ok(Some(Slice { equals, from, to })),
        (None, None) if equals.is_empty() => Ok(None),
        _ => Err(Problem::bad_request(
            "slice replacement needs both replace_from and replace_to (match only narrows them)",
        )),
    }
}

fn format_of(headers: &HeaderMap) -> Result<Format, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Format::from_media_type(content_type).ok_or_else(|| {
        let known: Vec<&str> = Format::MEDIA_TYPES.iter().map(|(m, _)| *m).collect();
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "cannot read `Content-Type: {content_type}`; send one of: {}",
                known.join(", ")
            ),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            Problem::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })
}

/// Appends rows to a table, or replaces a slice of it.
#[utoipa::path(post, path = "/tables/{table}/rows", operation_id = "ingest_rows", tag = "tables", security(("bearer" = [])),
    params(("table" = inline(TableName), Path, description = "A canonical table, e.g. `ad_performance`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a replay answers the first request's outcome and writes nothing"),
        IngestParams),
    request_body(description = "Rows: NDJSON (application/x-ndjson), CSV with a header (text/csv), Arrow IPC stream (application/vnd.apache.arrow.stream) or Parquet (application/vnd.apache.parquet)",
        content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream"),
            (Vec<u8> = "application/vnd.apache.parquet"))),
    responses(
        (status = 201, description = "Committed", body = IngestOutcome),
        (status = 200, description = "A replay of an Idempotency-Key already applied; nothing written", body = IngestOutcome),
        (status = 422, description = "Refused rows: `errors` names the columns and rows; nothing written", body = ProblemBody, content_type = "application/problem+json"),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(table): PathParam,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestOutcome>), Problem> {
    caller.require(Role::Writer)?;
    let table: CanonicalTable = table.parse()?;
    let slice = slice_from(&pairs)?;
    let format = format_of(&headers)?;
    let key = idempotency_key(&headers)?;
    // A slot first, then the body: waiting ingests hold no memory.
    let _slot = state
        .admission
        .admit_ingest(&caller.tenant)
        .map_err(Problem::refused)?;
    let limit = state.config.max_body_bytes;
    let body = read_body(axum::body::to_bytes(body, limit).await, limit)?;
    // Decoding is CPU work: on the tenant's lane, beside its queries.
    let batches = Lane::of(&caller.tenant)
        .offload(async move { gyrus_ingest::read(table, format, "the request body", body) })
        .await
        .map_err(|err| {
            // A reader that panics on a malformed body is still a malformed body.
            tracing::error!(error = %err, "reading an ingest body panicked");
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable-rows",
                "the request body could not be read as the format its Content-Type names",
            )
        })??;
    let mut request = WriteRequest::append(table, batches);
    if let Some(key) = &key {
        request = request.with_idempotency_key(key.clone());
    }
    if let Some(slice) = &slice {
        request = request.replacing(slice.clone());
    }
    let outcome = state.store.write(&caller.tenant, request).await?;
    if !outcome.already_applied {
        state.metrics.rows_ingested(outcome.rows);
    }
    let status = if outcome.already_applied {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(IngestOutcome {
            table: table.name().to_string(),
            rows: outcome.rows,
            version: outcome.version,
            replayed: outcome.already_applied,
            idempotency_key: key,
            replaced: slice.map(|s| s.to_string()),
        }),
    ))
}
