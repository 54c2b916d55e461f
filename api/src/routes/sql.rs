//! `POST /api/v1/sql` `{"sql": "...", "params": [...]}`: one read-only query,
//! answered as JSON rows (default), CSV or an Arrow IPC stream by `Accept`.
//!
//! JSON keeps types a program can rely on: integers and floats as numbers,
//! decimals as strings (exact), dates and timestamps as ISO 8601 strings,
//! NULL as null; at most `json_row_cap` rows, or a 422 that says to add a
//! LIMIT or ask for CSV / Arrow, which stream any size.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use futures::StreamExt as _;
use gyrus_engine::params::{binder, number_placeholders};
use gyrus_engine::wire::{to_wire, wire_schema};
use gyrus_engine::{QueryStream, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::metrics::Metrics;
use crate::problem::{Problem, ProblemBody};
use crate::routes::json_body;
use crate::routes::tables::ColumnInfo;
use crate::state::AppState;

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One read-only statement; `?` or `$1`, `$2`, ... for parameters.
    #[schema(
        example = "SELECT platform, sum(spend) AS spend FROM ad_performance WHERE date >= ? GROUP BY 1"
    )]
    pub sql: String,
    /// Values for the parameters, in order: strings, numbers, booleans or null.
    #[serde(default)]
    #[schema(value_type = Vec<Object>, example = json!(["2026-01-01"]))]
    pub params: Vec<Value>,
}

/// A JSON result.
#[derive(Serialize, ToSchema)]
pub struct SqlResult {
    columns: Vec<ColumnInfo>,
    row_count: usize,
    /// One object per row, keyed by column name. Integers and floats are
    /// numbers; decimals are strings (exact); dates and timestamps ISO 8601.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

fn negotiate(headers: &HeaderMap) -> Result<Format, Problem> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    for media in accept
        .split(',')
        .map(|m| m.split(';').next().unwrap_or("").trim())
    {
        match media {
            "application/json" | "application/*" | "*/*" | "" => return Ok(Format::Json),
            "text/csv" | "text/*" => return Ok(Format::Csv),
            ARROW_STREAM => return Ok(Format::Arrow),
            _ => {}
        }
    }
    Err(Problem::new(
        StatusCode::NOT_ACCEPTABLE,
        "not-acceptable",
        format!("cannot answer `{accept}`; accept application/json, text/csv or {ARROW_STREAM}"),
    ))
}

/// A JSON parameter value as the SQL value it binds: strings, numbers (whole
/// ones as BIGINT), booleans and null; `position` (from 1) names it in errors.
pub fn parameter(value: &Value, position: usize) -> Result<ScalarValue, Problem> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int64(Some(i)),
            (None, Some(f)) => ScalarValue::Float64(Some(f)),
            _ => {
                return Err(Problem::bad_request(format!(
                    "parameter {position}: number out of range"
                )));
            }
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        _ => {
            return Err(Problem::bad_request(format!(
                "parameter {position}: use a string, number, boolean or null"
            )));
        }
    })
}

/// Runs one read-only SQL query on the caller's tenant.
///
/// The answer's form follows `Accept`: `application/json` (default; at most
/// the JSON row cap, else 422), `text/csv` or
/// `application/vnd.apache.arrow.stream` (both streamed, any size).
#[utoipa::path(post, path = "/sql", operation_id = "run_sql", tag = "sql", security(("bearer" = [])),
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The result", content(
            (SqlResult = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.apache.arrow.stream"))),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
        (status = 504, description = "The query exceeded its time limit", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Reader)?;
    let request: SqlRequest = json_body(&headers, body)?;
    let format = negotiate(&headers)?;
    let session = state
        .tables
        .session(&caller.tenant, &state.config.limits)
        .await?
        .with_system(&state.system, caller.asker())?;
    state.metrics.query();
    let sql = number_placeholders(&request.sql)?;
    let values = request
        .params
        .iter()
        .enumerate()
        .map(|(i, v)| parameter(v, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    // Planning (constant folding included) and binding the parameters run
    // on the query lane, under the query's deadline too.
    let stream = session
        .stream(&sql, session.deadline(), Some(binder(values)))
        .await?;
    let schema = wire_schema(stream.schema().as_ref());
    match format {
        Format::Json => {
            let batches = collect_capped(
                stream,
                state.config.json_row_cap,
                state.config.json_byte_cap,
            )
            .await?;
            let response = json_response(&schema, &batches)?;
            state
                .metrics
                .rows_returned(batches.iter().map(RecordBatch::num_rows).sum());
            Ok(response)
        }
        Format::Csv | Format::Arrow => Ok(streamed(format, schema, stream, state.metrics.clone())),
    }
}

async fn collect_capped(
    mut stream: QueryStream,
    cap: usize,
    byte_cap: usize,
) -> Result<Vec<RecordBatch>, Problem> {
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut bytes = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        if rows > cap {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-rows",
                format!(
                    "the result has more than {cap} rows, the limit for JSON; add a LIMIT, or ask for `Accept: text/csv` or `{ARROW_STREAM}`, which stream any size"
                ),
            ));
        }
        bytes += batch.get_array_memory_size();
        if bytes > byte_cap {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-bytes",
                format!(
                    "the result holds more than {} MiB, the limit for JSON (--json-max-mb); select fewer or shorter columns, add a LIMIT, or ask for `Accept: text/csv` or `{ARROW_STREAM}`, which stream any size",
                    byte_cap >> 20
                ),
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// One JSON value per cell, by the column's type.
fn cells(column: &ArrayRef) -> Result<Vec<Value>, Problem> {
    let n = column.len();
    let formatted = || -> Result<Vec<Value>, Problem> {
        let options = FormatOptions::default();
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
            .map_err(|e| Problem::bad_request(format!("cannot format a result column: {e}")))?;
        Ok((0..n)
            .map(|i| {
                if column.is_null(i) {
                    Value::Null
                } else {
                    Value::String(formatter.value(i).to_string())
                }
            })
            .collect())
    };
    let cast_to = |t: &DataType| {
        datafusion::arrow::compute::cast(column, t).map_err(|e| Problem::bad_request(e.to_string()))
    };
    Ok(match column.data_type() {
        DataType::Boolean => column
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        t if t.is_integer() && !matches!(t, DataType::UInt64) => {
            let c = cast_to(&DataType::Int64)?;
            c.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let c = cast_to(&DataType::Float64)?;
            c.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| {
                    v.and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                })
                .collect()
        }
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::from))
            .collect(),
        // Decimals (exact), dates, timestamps, everything else: their text form.
        _ => formatted()?,
    })
}

/// Result rows as JSON objects, as the `json` format writes them: numbers
/// and booleans as such, decimals (exact), dates and times as text.
pub fn json_rows(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Value>, Problem> {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let mut rows: Vec<Value> = Vec::new();
    for batch in batches {
        let batch =
            to_wire(batch.clone(), schema).map_err(|e| Problem::bad_request(e.to_string()))?;
        let columns = batch
            .columns()
            .iter()
            .map(cells)
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            let mut row = Map::with_capacity(names.len());
            for (name, column) in names.iter().zip(&columns) {
                row.insert((*name).clone(), column[i].clone());
            }
            rows.push(Value::Object(row));
        }
    }
    Ok(rows)
}

fn json_response(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Response, Problem> {
    let rows = json_rows(schema, batches)?;
    Ok(axum::Json(SqlResult {
        columns: ColumnInfo::of(schema),
        row_count: rows.len(),
        rows,
    })
    .into_response())
}

/// CSV or Arrow IPC, batch by batch; a failure mid-stream ends the body early
/// (the status line has gone out), and is logged.
fn streamed(
    format: Format,
    schema: SchemaRef,
    batches: QueryStream,
    metrics: std::sync::Arc<Metrics>,
) -> Response {
    enum Encoder {
        Csv { header: bool },
        Arrow(Box<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>),
    }
    let encoder = match format {
        Format::Arrow => {
            match datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema) {
                Ok(w) => Encoder::Arrow(Box::new(w)),
                Err(e) => return Problem::bad_request(e.to_string()).into_response(),
            }
        }
        _ => Encoder::Csv { header: true },
    };
    let content_type = if format == Format::Arrow {
        ARROW_STREAM
    } else {
        "text/csv; charset=utf-8"
    };
    let batches = Box::pin(batches.into_stream()).inspect(move |batch| {
        if let Ok(batch) = batch {
            metrics.rows_returned(batch.num_rows());
        }
    });
    let state = (batches, encoder, schema, false);
    let body = futures::stream::unfold(
        state,
        move |(mut batches, mut encoder, schema, done)| async move {
            if done {
                return None;
            }
            let (batch, last) = match batches.next().await {
                Some(Ok(batch)) => (Some(batch), false),
                None => (None, true),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "query failed while streaming; body cut short");
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (batches, encoder, schema, true),
                    ));
                }
            };
            let bytes = encode(&mut encoder, batch, &schema, last);
            Some((bytes, (batches, encoder, schema, last)))
        },
    );

    fn encode(
        encoder: &mut Encoder,
        batch: Option<RecordBatch>,
        schema: &SchemaRef,
        last: bool,
    ) -> Result<Bytes, std::io::Error> {
        let batch = batch
            .map(|b| to_wire(b, schema))
            .transpose()
            .map_err(std::io::Error::other)?;
        match encoder {
            Encoder::Csv { header } => {
                let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
                if batch.num_rows() == 0 && !*header {
                    return Ok(Bytes::new());
                }
                let mut out = Vec::new();
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(*header)
                    .build(&mut out);
                writer.write(&batch).map_err(std::io::Error::other)?;
                drop(writer);
                *header = false;
                Ok(Bytes::from(out))
            }
            Encoder::Arrow(writer) => {
                if let Some(batch) = batch {
                    writer.write(&batch).map_err(std::io::Error::other)?;
                }
                if last {
                    writer.finish().map_err(std::io::Error::other)?;
                }
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
        }
    }

    let mut response = Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
