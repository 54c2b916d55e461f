//! Arrow streams pushed by clients: bulk ingest (`CommandStatementIngest`,
//! what ADBC's `adbc_ingest` sends), a plain DoPut to a table's path, and
//! prepared-statement parameters.
//!
//! An ingest stream is read whole (up to a size limit) before anything is
//! written, then committed as one engine write: validated, atomic and
//! idempotent. A stream that breaks off, fails validation or is too large
//! leaves the table as it was.

use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption};
use std::panic::AssertUnwindSafe;

use futures::{FutureExt as _, Stream, StreamExt, TryStreamExt};
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::session::{CATALOG, SCHEMA};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Options (in `CommandStatementIngest.options`) and the header that carry an idempotency key.
pub const IDEMPOTENCY_OPTIONS: [&str; 2] = ["gyrus.idempotency_key", "idempotency_key"];
pub const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";

/// Reads every batch of a DoPut stream, refusing more than `limit_bytes` of
/// Arrow data (counted on the wire: decoded arrays share their message's
/// buffer, so their own sizes would count it many times).
///
/// `stream` is the DoPut stream as the server receives it
/// ([`PeekableFlightDataStream`](arrow_flight::sql::server::PeekableFlightDataStream): not `into_inner()`, whose first message was
/// peeked and is gone) or any stream of FlightData messages.
pub async fn read_batches<S>(stream: S, limit_bytes: usize) -> Result<Vec<RecordBatch>, Status>
where
    S: Stream<Item = Result<FlightData, Status>> + Send + Unpin + 'static,
{
    let mut received = 0usize;
    let mut check = gyrus_engine::ipc::StreamCheck::default();
    let counted = stream.map(move |message| {
        let message = message?;
        received += message.data_header.len() + message.data_body.len();
        // Every buffer inside the body and long enough for its column's
        // rows (arrow's decoder panics otherwise).
        if !message.data_header.is_empty() {
            check
                .check_message(&message.data_header, message.data_body.len())
                .map_err(|e| Status::invalid_argument(format!("not a valid Arrow stream: {e}")))?;
        }
        if received > limit_bytes {
            return Err(Status::resource_exhausted(format!(
                "the stream exceeds the ingest limit of {} MiB; send it in several writes",
                limit_bytes >> 20
            )));
        }
        Ok(message)
    });
    let mut batches =
        FlightRecordBatchStream::new_from_flight_data(counted.map_err(FlightError::from));
    let mut out = Vec::new();
    // arrow's decoder trusts more of a message than `StreamCheck` can
    // prove; should it still panic on some input, that input is refused like
    // any other malformed stream (and the fuzz targets, which fail on caught
    // panics too, keep finding them).
    while let Some(batch) = AssertUnwindSafe(batches.next())
        .catch_unwind()
        .await
        .map_err(|payload| {
            let message = gyrus_engine::exec::panic_message(payload);
            tracing::error!(panic = %message, "decoding a pushed Arrow stream panicked");
            Status::invalid_argument("not a valid Arrow stream: the decoder could not read it")
        })?
    {
        out.push(batch.map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::invalid_argument(format!("not a valid Arrow stream: {other}")),
        })?);
    }
    Ok(out)
}

/// Where an ingest goes and how, after checking the command.
pub struct IngestTarget {
    pub table: CanonicalTable,
    pub idempotency_key: Option<String>,
    /// `mode="create"`: refuse if the table already holds data.
    pub fail_if_exists: bool,
}

impl IngestTarget {
    pub fn from_command(
        cmd: &CommandStatementIngest,
        headers: &MetadataMap,
    ) -> Result<Self, Status> {
        if cmd.temporary {
            return Err(Status::invalid_argument(
                "temporary tables are not supported; ingest into a canonical table",
            ));
        }
        if cmd.transaction_id.is_some() {
            return Err(Status::invalid_argument(
                "transactions are not supported; each ingest is its own atomic commit",
            ));
        }
        if let Some(catalog) = cmd
            .catalog
            .as_deref()
            .filter(|c| !c.is_empty() && *c != CATALOG)
        {
            return Err(Status::not_found(format!(
                "unknown catalog `{catalog}`; the catalog is `{CATALOG}`"
            )));
        }
        if let Some(schema) = cmd
            .schema
            .as_deref()
            .filter(|s| !s.is_empty() && *s != SCHEMA)
        {
            return Err(Status::not_found(format!(
                "unknown schema `{schema}`; canonical tables live in `{SCHEMA}`"
            )));
        }
        let mut fail_if_exists = false;
        if let Some(options) = &cmd.table_definition_options {
            match TableExistsOption::try_from(options.if_exists) {
                Ok(TableExistsOption::Replace) => {
                    return Err(Status::invalid_argument(
                        "replacing a table is not supported over Flight SQL; append, or replace a date slice through `gyrus ingest --replace-from`",
                    ));
                }
                Ok(TableExistsOption::Fail) => fail_if_exists = true,
                _ => {}
            }
        }
        let idempotency_key = IDEMPOTENCY_OPTIONS
            .iter()
            .find_map(|k| cmd.options.get(*k).cloned())
            .or_else(|| header_key(headers));
        Ok(IngestTarget {
            table: parse_table(&cmd.table)?,
            idempotency_key,
            fail_if_exists,
        })
    }

    /// A plain DoPut: the descriptor's path names the table.
    pub fn from_path(path: &[String], headers: &MetadataMap) -> Result<Self, Status> {
        let [table] = path else {
            return Err(Status::invalid_argument(
                "a DoPut path names one table, e.g. [\"ad_performance\"]",
            ));
        };
        Ok(IngestTarget {
            table: parse_table(table)?,
            idempotency_key: header_key(headers),
            fail_if_exists: false,
        })
    }
}

fn parse_table(name: &str) -> Result<CanonicalTable, Status> {
    name.parse::<CanonicalTable>()
        .map_err(|e| Status::not_found(e.to_string()))
}

fn header_key(headers: &MetadataMap) -> Option<String> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
