//! Connector state under `<root>/_system/`: append-only journals of JSON
//! documents (the newest per key wins), each append one Delta commit, so a
//! checkpoint is either wholly there or not at all.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::EngineError;
use gyrus_engine::datafusion::arrow::array::{
    Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use gyrus_engine::datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimestampMicrosecondType,
};
use gyrus_engine::datafusion::prelude::{col, lit};
use gyrus_engine::schema::timestamp_utc;
use gyrus_engine::store::Store;
use gyrus_engine::write::utf8_column;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A system table of `(key, document, at)` rows.
#[derive(Debug, Clone, Copy)]
pub struct Journal(pub &'static str);

/// Connectors: configuration and sealed credentials, or removal.
pub const CONNECTORS: Journal = Journal("connectors");
/// Cursors and checkpoints, keyed `<connector>/<stream>`.
pub const CURSORS: Journal = Journal("connector_state");
/// Sync runs, keyed by connector: started, then finished or failed.
pub const RUNS: Journal = Journal("connector_runs");

fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("document", DataType::Utf8, false),
            Field::new("at", timestamp_utc(), false),
        ]))
    });
    SCHEMA.clone()
}

fn internal(message: impl Into<String>) -> EngineError {
    EngineError::Internal(message.into())
}

impl Journal {
    /// Appends `document` under `key`, in one commit.
    pub async fn append<T: Serialize>(
        &self,
        store: &Store,
        key: &str,
        document: &T,
    ) -> Result<(), EngineError> {
        let text = serde_json::to_string(document).map_err(|e| internal(e.to_string()))?;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![key])),
                Arc::new(StringArray::from(vec![text])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros()])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .map_err(|e| internal(e.to_string()))?;
        store.append_system(self.0, &schema(), batch).await?;
        Ok(())
    }

    /// Every document under `key` (all keys when `None`), oldest first.
    pub async fn history<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<Vec<(String, DateTime<Utc>, T)>, EngineError> {
        let filter = key.map(|k| col("key").eq(lit(k)));
        let batches = store.scan_system(self.0, &[], filter).await?;
        let mut out = Vec::new();
        for batch in &batches {
            let text = |name: &str| {
                utf8_column(batch, name)
                    .ok_or_else(|| internal(format!("{} lacks `{name}`", self.0)))
            };
            let (keys, documents) = (text("key")?, text("document")?);
            let at = batch
                .column_by_name("at")
                .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone())
                .ok_or_else(|| internal(format!("{} lacks `at`", self.0)))?;
            for i in 0..batch.num_rows() {
                if keys.is_null(i) || documents.is_null(i) {
                    continue;
                }
                let document = serde_json::from_str(documents.value(i)).map_err(|e| {
                    internal(format!(
                        "{}: a damaged record for {}: {e}",
                        self.0,
                        keys.value(i)
                    ))
                })?;
                let when = DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default();
                out.push((keys.value(i).to_string(), when, document));
            }
        }
        out.sort_by_key(|(_, when, _)| *when);
        Ok(out)
    }

    /// The newest document per key.
    pub async fn latest<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<BTreeMap<String, (DateTime<Utc>, T)>, EngineError> {
        Ok(self
            .history(store, key)
            .await?
            .into_iter()
            .map(|(key, when, document)| (key, (when, document)))
            .collect())
    }
}

/// A stream's cursor and checkpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct StreamState {
    /// Windowed: the last day a completed sync read.
    pub synced_through: Option<NaiveDate>,
    /// Windowed: the first day not yet replaced by an interrupted sync.
    pub resume_from: Option<NaiveDate>,
    /// Modified: the latest modification time landed.
    pub modified_since: Option<DateTime<Utc>>,
}

fn cursor_key(connector: &str, stream: &str) -> String {
    format!("{connector}/{stream}")
}

pub async fn load(
    store: &Store,
    connector: &str,
    stream: &str,
) -> Result<StreamState, EngineError> {
    let key = cursor_key(connector, stream);
    Ok(CURSORS
        .latest::<StreamState>(store, Some(&key))
        .await?
        .remove(&key)
        .map(|(_, state)| state)
        .unwrap_or_default())
}

pub async fn save(
    store: &Store,
    connector: &str,
    stream: &str,
    state: &StreamState,
) -> Result<(), EngineError> {
    CURSORS
        .append(store, &cursor_key(connector, stream), state)
        .await
}
