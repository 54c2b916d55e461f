//! Gyrus ingest: getting data into the canonical tables.
//!
//! This crate reads files (CSV with a header, JSON lines, Parquet, Arrow IPC
//! streams) into Arrow
//! batches typed by the canonical schemas, so that the engine's validation
//! sees exactly what the file said. Platform connectors and push ingest
//! build on the same normalisation.
//!
//! ```no_run
//! use gyrus_engine::schema::CanonicalTable;
//! use gyrus_ingest::read_file;
//!
//! let batches = read_file(CanonicalTable::AdPerformance, "ads.csv".as_ref()).unwrap();
//! ```

pub mod connectors;
pub mod http;
mod parquet_pages;
pub mod secrets;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gyrus_engine::datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use gyrus_engine::datafusion::arrow::csv;
use gyrus_engine::datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use gyrus_engine::datafusion::arrow::error::ArrowError;
use gyrus_engine::datafusion::arrow::{ipc, json};
use gyrus_engine::datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use gyrus_engine::schema::{CanonicalTable, Column, MONEY};

/// Rows per batch read from a file.
const BATCH_ROWS: usize = 64 * 1024;
/// Rows per batch decoded from Parquet: small, so that the decoded size is
/// checked often and one batch of huge values cannot overshoot by much.
const PARQUET_BATCH_ROWS: usize = 4 * 1024;
/// The most one Parquet file may decode to, counted on the decoded batches
/// (not the file's own metadata, which a hostile file can understate)...
const MAX_DECODED_BYTES: usize = 4 << 30;
/// ...and the most it may expand by: a 62 KiB file that decodes to 600 MB is
/// a bomb, not marketing data. Real files of these tables expand 5-40 times.
const MAX_EXPANSION: usize = 256;
/// Files smaller than this may expand to it whatever their ratio.
const MIN_DECODED_ALLOWANCE: usize = 64 << 20;
/// Deepest nesting of a JSON line: canonical rows are flat objects, so any
/// deeper is refused before a parser descends it.
pub const MAX_JSON_DEPTH: usize = 32;

/// Why a file could not be read; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: unknown file type; use .csv, .jsonl / .ndjson / .json (JSON lines) or .parquet"
    )]
    UnknownFormat { path: String },
    #[error("{path}: column `{column}` is not a column of {table}; its columns are: {expected}")]
    UnknownColumn {
        path: String,
        column: String,
        table: CanonicalTable,
        expected: String,
    },
    #[error("{path}: {}{message}", row.map(|r| format!("row {r}: ")).unwrap_or_default())]
    Parse {
        path: String,
        /// The 1-based row (record) at fault, when the reader can tell.
        row: Option<usize>,
        message: String,
    },
}

/// Formats `read_file` and [`read`] understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
    Parquet,
    /// The Arrow IPC streaming format.
    ArrowStream,
}

impl Format {
    /// The media types each format is sent as, the first one canonical.
    pub const MEDIA_TYPES: &[(&str, Format)] = &[
        ("application/x-ndjson", Format::JsonLines),
        ("application/jsonl", Format::JsonLines),
        ("application/json-lines", Format::JsonLines),
        ("text/csv", Format::Csv),
        ("application/vnd.apache.parquet", Format::Parquet),
        ("application/x-parquet", Format::Parquet),
        ("application/vnd.apache.arrow.stream", Format::ArrowStream),
    ];

    /// The format a `Content-Type` names (parameters such as `charset` ignored).
    pub fn from_media_type(content_type: &str) -> Option<Format> {
        let media = content_type.split(';').next()?.trim().to_ascii_lowercase();
        Self::MEDIA_TYPES
            .iter()
            .find(|(m, _)| *m == media)
            .map(|(_, f)| *f)
    }

    /// What a body of this format is called in errors.
    pub fn noun(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::JsonLines => "NDJSON",
            Format::Parquet => "Parquet file",
            Format::ArrowStream => "Arrow IPC stream",
        }
    }

    /// The format a file name's extension names.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            "parquet" | "pq" => Some(Format::Parquet),
            "arrows" | "arrow" => Some(Format::ArrowStream),
            _ => None,
        }
    }
}

/// Reads a whole file for `table`. Columns are matched by name; the engine
/// checks the rest (missing columns, nulls, ranges) before anything is written.
pub fn read_file(table: CanonicalTable, path: &Path) -> Result<Vec<RecordBatch>, IngestError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| IngestError::Open {
        path: shown.clone(),
        source,
    })?;
    read_bytes(table, path, bytes.into())
}

/// Reads a file's content already in memory; `path` names its format
/// (by extension) and appears in errors.
pub fn read_bytes(
    table: CanonicalTable,
    path: &Path,
    bytes: Bytes,
) -> Result<Vec<RecordBatch>, IngestError> {
    let shown = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| IngestError::UnknownFormat {
        path: shown.clone(),
    })?;
    read(table, format, &shown, bytes)
}

/// Reads `bytes` in `format` for `table`; `name` says where they came from
/// in errors (a file name, "the request body").
///
/// The decoders are arrow-rs and parquet-rs, which assert on some corrupt
/// input instead of returning an error (fuzzing found a bit width beyond
/// its integer type in a Parquet page, and a decimal exponent of many
/// digits overflowing arrow-cast's `i16` in NDJSON): a body that makes a
/// decoder panic is a malformed body, and the panic ends here as an error
/// of this request.
pub fn read(
    table: CanonicalTable,
    format: Format,
    name: &str,
    bytes: Bytes,
) -> Result<Vec<RecordBatch>, IngestError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode(table, format, name, bytes)
    }))
    .unwrap_or_else(|_| {
        Err(IngestError::Parse {
            path: name.to_string(),
            row: None,
            message: format!(
                "the {} could not be decoded: it is malformed",
                format.noun()
            ),
        })
    })
}

fn decode(
    table: CanonicalTable,
    format: Format,
    name: &str,
    bytes: Bytes,
) -> Result<Vec<RecordBatch>, IngestError> {
    let parse = |e: ArrowError| IngestError::Parse {
        path: name.to_string(),
        row: None,
        message: e.to_string(),
    };
    match format {
        Format::Csv => money_from_text(table, name, read_csv(table, &bytes, name)?),
        Format::JsonLines if json_depth(&bytes) > MAX_JSON_DEPTH => Err(IngestError::Parse {
            path: name.to_string(),
            row: None,
            message: format!(
                "JSON nested more than {MAX_JSON_DEPTH} levels deep; rows are flat objects, one per line"
            ),
        }),
        Format::JsonLines => {
            let batches = read_json_lines(table, &bytes, BATCH_ROWS).map_err(|e| {
                match read_json_lines(table, &bytes, 1) {
                    // Read again a record at a time to say which one is at fault.
                    Err((row, e)) => IngestError::Parse {
                        path: name.to_string(),
                        row: Some(row + 1),
                        message: e.to_string(),
                    },
                    Ok(_) => parse(e.1),
                }
            })?;
            money_from_text(table, name, batches)
        }
        Format::Parquet => read_parquet(name, bytes),
        Format::ArrowStream => {
            check_ipc_framing(&bytes).map_err(|message| IngestError::Parse {
                path: name.to_string(),
                row: None,
                message,
            })?;
            let reader = ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .map_err(parse)?;
            reader.collect::<Result<Vec<_>, _>>().map_err(parse)
        }
    }
}

/// Decodes a Parquet file within the decoded-size budget of its size.
fn read_parquet(name: &str, bytes: Bytes) -> Result<Vec<RecordBatch>, IngestError> {
    let parse = |e: ArrowError| IngestError::Parse {
        path: name.to_string(),
        row: None,
        message: e.to_string(),
    };
    let file_bytes = bytes.len();
    let budget = MAX_DECODED_BYTES.min(
        file_bytes
            .saturating_mul(MAX_EXPANSION)
            .max(MIN_DECODED_ALLOWANCE),
    );
    // The Arrow schema a writer may embed (`ARROW:schema`) is an IPC
    // message arrow-ipc converts with panics on unknown types (found
    // by fuzzing); columns are conformed to the canonical table by
    // name anyway, so the Parquet schema alone is read.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    // The footer is walked at a step a byte before parquet-rs parses it
    // (its skipping of unknown fields can be made to loop for minutes).
    let unreadable = |message: String| IngestError::Parse {
        path: name.to_string(),
        row: None,
        message: format!("the Parquet file cannot be read: {message}"),
    };
    parquet_pages::check_footer(&bytes).map_err(unreadable)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options)
        .map_err(|e| parse(e.into()))?;
    // Page headers size the decoder's buffers: they are checked against
    // the budget before any page is read.
    parquet_pages::check(&bytes, builder.metadata(), budget).map_err(unreadable)?;
    let reader = builder
        .with_batch_size(PARQUET_BATCH_ROWS)
        .build()
        .map_err(|e| parse(e.into()))?;
    let mut decoded = 0usize;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(parse)?;
        decoded += batch.get_array_memory_size();
        if decoded > budget {
            return Err(IngestError::Parse {
                path: name.to_string(),
                row: None,
                message: format!(
                    "the {} KiB file decodes to more than {} MiB, the most a file of its size may \
                     (at most {MAX_EXPANSION} times its size, and {} MiB in all); split it",
                    file_bytes.div_ceil(1024),
                    budget >> 20,
                    MAX_DECODED_BYTES >> 20,
                ),
            });
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// Checks that every message of an Arrow IPC stream fits in the bytes sent
/// before the reader sizes buffers by the lengths the stream claims: eight
/// bytes claiming a 2 GiB message must not make the server allocate 2 GiB.
fn check_ipc_framing(bytes: &[u8]) -> Result<(), String> {
    let mut check = gyrus_engine::ipc::StreamCheck::default();
    let mut at = 0;
    let word = |at: usize| -> Option<i32> {
        bytes
            .get(at..at + 4)
            .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    loop {
        let Some(mut length) = word(at) else {
            // A stream may end without its end-of-stream marker.
            return Ok(());
        };
        at += 4;
        if length == -1 {
            // The continuation marker; the length follows.
            length = word(at).ok_or("the stream ends inside a message header")?;
            at += 4;
        }
        if length == 0 {
            return Ok(());
        }
        let length = usize::try_from(length).map_err(|_| "a message has a negative length")?;
        let metadata = bytes
            .get(at..at + length)
            .ok_or("a message claims more bytes than were sent; is this an Arrow IPC stream?")?;
        let message = ipc::root_as_message(metadata)
            .map_err(|e| format!("a message header is not valid: {e}"))?;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| "a message has a negative body length")?;
        // Every buffer inside the body and long enough for its column's
        // rows; nothing compressed (arrow's reader panics or trusts
        // otherwise).
        check.check_parsed(&message, body)?;
        at += length;
        if bytes.len() - at < body {
            return Err("a message body claims more bytes than were sent".into());
        }
        at += body;
    }
}

/// The deepest nesting of arrays and objects in JSON text, counted without
/// parsing (and without recursion): brackets inside strings do not count.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// JSON lines in batches of `batch_rows`; an error comes with the index of
/// the batch it ended (with one-row batches: the record at fault).
fn read_json_lines(
    table: CanonicalTable,
    bytes: &[u8],
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, (usize, ArrowError)> {
    let reader = json::ReaderBuilder::new(lenient_schema(table, None))
        .with_batch_size(batch_rows)
        .with_strict_mode(true)
        // Amounts arrive as JSON numbers or strings and are read as text
        // (see `money_from_text`); so do IDs sent as numbers.
        .with_coerce_primitive(true)
        .build(bytes)
        .map_err(|e| (0, e))?;
    reader
        .enumerate()
        .map(|(i, batch)| batch.map_err(|e| (i, e)))
        .collect()
}

/// The table's columns (or those named), all nullable, so that a missing
/// value is reported by validation with its row rather than by the parser;
/// amounts as text, for `money_from_text`.
fn lenient_schema(table: CanonicalTable, names: Option<&[String]>) -> SchemaRef {
    let def = table.def();
    let field = |c: &Column| {
        gyrus_engine::money::read_as_text(Field::new(c.name, c.data_type.clone(), true))
    };
    let fields: Vec<Field> = match names {
        None => def.columns.iter().map(field).collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| def.columns.iter().find(|c| c.name == n))
            .map(field)
            .collect(),
    };
    Arc::new(Schema::new(fields))
}

/// Converts the amounts that `lenient_schema` read as text to money with
/// `gyrus_engine::money` (arrow-cast's decimal parser wraps silently on
/// some inputs); a value that is not an amount is named with its row.
pub(crate) fn money_from_text(
    table: CanonicalTable,
    name: &str,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, IngestError> {
    let def = table.def();
    let mut first_row = 0;
    batches
        .into_iter()
        .map(|batch| {
            let schema = batch.schema();
            let mut fields = Vec::with_capacity(schema.fields().len());
            let mut columns = Vec::with_capacity(schema.fields().len());
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let money = def
                    .columns
                    .iter()
                    .any(|c| c.name == field.name() && c.data_type == MONEY);
                match column.as_string_opt::<i32>() {
                    Some(text) if money => {
                        let amounts =
                            gyrus_engine::money::from_text(text).map_err(|(row, e)| {
                                IngestError::Parse {
                                    path: name.to_string(),
                                    row: Some(first_row + row + 1),
                                    message: format!("column `{}`: {e}", field.name()),
                                }
                            })?;
                        fields.push(Field::new(field.name(), MONEY, true));
                        columns.push(Arc::new(amounts) as ArrayRef);
                    }
                    _ => {
                        fields.push(field.as_ref().clone());
                        columns.push(column.clone());
                    }
                }
            }
            first_row += batch.num_rows();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
                IngestError::Parse {
                    path: name.to_string(),
                    row: None,
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

fn read_csv(
    table: CanonicalTable,
    bytes: &[u8],
    shown: &str,
) -> Result<Vec<RecordBatch>, IngestError> {
    let parse = |message: String| IngestError::Parse {
        path: shown.to_string(),
        row: None,
        message,
    };
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let header = std::str::from_utf8(&bytes[..header_end])
        .map_err(|e| parse(format!("the header is not UTF-8: {e}")))?;
    let names: Vec<String> = header
        .trim_end_matches('\r')
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .collect();
    let def = table.def();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(parse(format!("the header names column `{name}` twice")));
        }
        if !def.columns.iter().any(|c| c.name == name) {
            return Err(IngestError::UnknownColumn {
                path: shown.to_string(),
                column: name.clone(),
                table,
                expected: def
                    .columns
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let csv = csv::ReaderBuilder::new(lenient_schema(table, Some(&names)))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(bytes)
        .map_err(|e| parse(e.to_string()))?;
    csv.collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gyrus_engine::write::prepare;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const HEADER: &str = "platform,account_id,campaign_id,campaign_name,channel,date,impressions,clicks,spend,currency,conversions,conversion_value";

    #[test]
    fn bombs_are_refused_by_what_they_decode_to() {
        // JSON nested deeper than rows can be: refused without descending it.
        for deep in ["[".repeat(100_000), "{\"a\":".repeat(50_000)] {
            let err = read(
                CanonicalTable::AdPerformance,
                Format::JsonLines,
                "the request body",
                Bytes::from(deep),
            )
            .unwrap_err();
            assert!(err.to_string().contains("nested more than"), "{err}");
        }
        assert_eq!(json_depth(br#"{"a":"[[[[{{{{\"]]"}"#), 1);

        // A header naming one column many times.
        let header = vec!["clicks"; 200_000].join(",");
        let err = read(
            CanonicalTable::AdPerformance,
            Format::Csv,
            "the request body",
            Bytes::from(format!("{header}\n1\n")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");

        // A small Parquet file of one long value repeated: dictionary and
        // compression make it tiny, decoded it is ~200 MiB.
        let schema = Arc::new(Schema::new(vec![Field::new(
            "campaign_name",
            gyrus_engine::datafusion::arrow::datatypes::DataType::Utf8,
            true,
        )]));
        let value = "x".repeat(10_000);
        let column =
            gyrus_engine::datafusion::arrow::array::StringArray::from(vec![value.as_str(); 20_000]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        let mut file = Vec::new();
        let props =
            gyrus_engine::datafusion::parquet::file::properties::WriterProperties::builder()
                .set_compression(gyrus_engine::datafusion::parquet::basic::Compression::SNAPPY)
                .build();
        let mut writer = gyrus_engine::datafusion::parquet::arrow::ArrowWriter::try_new(
            &mut file,
            schema,
            Some(props),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert!(file.len() < 1 << 20, "{} bytes", file.len());
        let err = read(
            CanonicalTable::AdPerformance,
            Format::Parquet,
            "bomb.parquet",
            Bytes::from(file),
        )
        .unwrap_err();
        assert!(err.to_string().contains("decodes to more than"), "{err}");
    }

    #[test]
    fn csv_and_json_lines_read_into_canonical_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "ads.csv",
            &format!(
                "{HEADER}\ngoogle_ads,a1,c1,Brand,search,2026-01-02,100,7,12.34,USD,1.5,99.90\n"
            ),
        );
        let batches = read_file(CanonicalTable::AdPerformance, &csv).unwrap();
        let batch = prepare(CanonicalTable::AdPerformance, &batches).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), CanonicalTable::AdPerformance.schema());

        let jsonl = write(
            dir.path(),
            "ads.jsonl",
            r#"{"platform":"meta_ads","account_id":"a","campaign_id":"c","campaign_name":"n","channel":"social","date":"2026-01-02","impressions":1,"clicks":0,"spend":"0.50","currency":"EUR","conversions":0,"conversion_value":0}"#,
        );
        let batches = read_file(CanonicalTable::AdPerformance, &jsonl).unwrap();
        assert_eq!(
            prepare(CanonicalTable::AdPerformance, &batches)
                .unwrap()
                .num_rows(),
            1
        );
    }

    /// Amounts are read by `gyrus_engine::money`, not arrow-cast, whose
    /// decimal parser wraps silently in release builds ("1E65546" as 1e10,
    /// 256 digits as garbage): such values are refused with their row.
    #[test]
    fn amounts_are_read_exactly_and_garbage_amounts_are_refused_by_row() {
        let row = |(i, spend): (usize, &&str)| {
            format!("google_ads,a1,c{i},Brand,search,2026-01-02,100,7,{spend},USD,1.5,99.90\n")
        };
        let body = |spends: &[&str]| {
            let rows: String = spends.iter().enumerate().map(row).collect();
            Bytes::from(format!("{HEADER}\n{rows}"))
        };
        let read_csv = |spends: &[&str]| {
            read(
                CanonicalTable::AdPerformance,
                Format::Csv,
                "body",
                body(spends),
            )
        };
        let spend = |batches: Vec<RecordBatch>| {
            let batch = prepare(CanonicalTable::AdPerformance, &batches).unwrap();
            let column = batch.column_by_name("spend").unwrap();
            let values =
                column.as_primitive::<gyrus_engine::datafusion::arrow::datatypes::Decimal128Type>();
            values.values().to_vec()
        };
        assert_eq!(
            spend(read_csv(&["12.34", "1.2345675", "2.5e2", "0.0000004"]).unwrap()),
            vec![12_340_000, 1_234_568, 250_000_000, 0]
        );
        let long = format!("1{}", "0".repeat(256));
        for garbage in ["1E65546", long.as_str(), "1e12", "\"12,34\"", "1e5.5"] {
            let err = read_csv(&["1", "2", garbage]).unwrap_err();
            assert!(
                matches!(err, IngestError::Parse { row: Some(3), .. }),
                "{garbage}: {err}"
            );
            assert!(err.to_string().contains("`spend`"), "{err}");
        }

        let json = |spend: &str| {
            Bytes::from(format!(
                r#"{{"platform":"meta_ads","account_id":"a","campaign_id":"c","campaign_name":"n","channel":"social","date":"2026-01-02","impressions":1,"clicks":0,"spend":{spend},"currency":"EUR","conversions":0,"conversion_value":0}}
{{"platform":"meta_ads","account_id":"a","campaign_id":7,"campaign_name":"n","channel":"social","date":"2026-01-03","impressions":1,"clicks":0,"spend":1,"currency":"EUR","conversions":0,"conversion_value":"0.5"}}
"#
            ))
        };
        let read_json = |spend: &str| {
            read(
                CanonicalTable::AdPerformance,
                Format::JsonLines,
                "body",
                json(spend),
            )
        };
        // Numbers and strings alike; a numeric ID reads as its text.
        let batches = read_json("0.125").unwrap();
        assert_eq!(spend(batches.clone()), vec![125_000, 1_000_000]);
        let ids = prepare(CanonicalTable::AdPerformance, &batches).unwrap();
        assert_eq!(
            ids.column_by_name("campaign_id")
                .unwrap()
                .as_string::<i32>()
                .value(1),
            "7"
        );
        assert_eq!(
            spend(read_json("\"3.5\"").unwrap()),
            vec![3_500_000, 1_000_000]
        );
        for garbage in ["1E65546", "\"1E65546\"", long.as_str(), "true", "\"lots\""] {
            let err = read_json(garbage).unwrap_err();
            assert!(
                matches!(err, IngestError::Parse { row: Some(1), .. }),
                "{garbage}: {err}"
            );
        }
    }

    #[test]
    fn unknown_columns_formats_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(dir.path(), "x.csv", "platform,clickz\ngoogle_ads,1\n");
        let err = read_file(CanonicalTable::AdPerformance, &csv)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`clickz`") && err.contains("clicks"), "{err}");

        let txt = write(dir.path(), "x.txt", "");
        assert!(matches!(
            read_file(CanonicalTable::AdPerformance, &txt),
            Err(IngestError::UnknownFormat { .. })
        ));

        let bad = write(
            dir.path(),
            "bad.csv",
            &format!(
                "{HEADER}\ngoogle_ads,a1,c1,Brand,search,2026-01-02,many,7,12.34,USD,1.5,99.90\n"
            ),
        );
        let err = read_file(CanonicalTable::AdPerformance, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.csv") && err.contains("many"), "{err}");

        let jsonl = write(
            dir.path(),
            "bad.jsonl",
            "{\"platform\":\"google_ads\"}\n{\"platform\":\"meta_ads\"}\n{\"clicks\":\"many\"}\n",
        );
        let err = read_file(CanonicalTable::AdPerformance, &jsonl).unwrap_err();
        assert!(
            matches!(err, IngestError::Parse { row: Some(3), .. }),
            "{err}"
        );
        assert!(err.to_string().contains("row 3"), "{err}");

        // A stream claiming a huge message is refused before any allocation.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x70];
        let err = read(
            CanonicalTable::AdPerformance,
            Format::ArrowStream,
            "body",
            Bytes::copy_from_slice(&lying),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("more bytes than were sent"),
            "{err}"
        );

        // Compressed buffers claim their own decoded size: refused.
        let batch = gyrus_engine::datafusion::arrow::array::RecordBatch::try_from_iter([(
            "clicks",
            std::sync::Arc::new(gyrus_engine::datafusion::arrow::array::Int64Array::from(
                vec![1, 2],
            )) as gyrus_engine::datafusion::arrow::array::ArrayRef,
        )])
        .unwrap();
        let options = ipc::writer::IpcWriteOptions::default()
            .try_with_compression(Some(ipc::CompressionType::ZSTD))
            .unwrap();
        let mut writer =
            ipc::writer::StreamWriter::try_new_with_options(Vec::new(), &batch.schema(), options)
                .unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let compressed = Bytes::from(writer.into_inner().unwrap());
        let err = read(
            CanonicalTable::AdPerformance,
            Format::ArrowStream,
            "body",
            compressed,
        )
        .unwrap_err();
        assert!(err.to_string().contains("compressed"), "{err}");

        let missing = dir.path().join("nope.csv");
        assert!(matches!(
            read_file(CanonicalTable::AdPerformance, &missing),
            Err(IngestError::Open { .. })
        ));
    }
}
