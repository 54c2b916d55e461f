//! Connector state under `<root>/_system/`: append-only journals of JSON
//! documents (the newest per key wins), each append one Delta commit, so a
//! checkpoint is either wholly there or not at all.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDate, Utc};
use gyrus_engine::EngineError;
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use gyrus_engine::schema::timestamp_utc;
use gyrus_engine::store::Store;
use gyrus_engine::system_table::{SystemRecord, SystemTable};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A system table of `(key, document, at)` rows.
#[derive(Debug, Clone, Copy)]
pub struct Journal(pub &'static str);

/// Connectors: configuration and sealed credentials, or removal.
pub const CONNECTORS: Journal = Journal("connectors");
/// Cursors and checkpoints, keyed `<connector>/<stream>`.
pub const CURSORS: Journal = Journal("connector_state");
/// Sync runs, keyed by connector: started, then finished or failed.
pub const RUNS: Journal = Journal("connector_runs");

/// One row of a journal: a JSON document under a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    document: String,
    at: DateTime<Utc>,
}

impl SystemRecord for Entry {
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
}

fn internal(message: impl Into<String>) -> EngineError {
    EngineError::Internal(message.into())
}

impl Journal {
    fn table(&self, store: &Store) -> SystemTable<Entry> {
        SystemTable::new(store, self.0)
    }

    /// Appends `document` under `key`, in one commit.
    pub async fn append<T: Serialize>(
        &self,
        store: &Store,
        key: &str,
        document: &T,
    ) -> Result<(), EngineError> {
        let entry = Entry {
            key: key.to_string(),
            document: serde_json::to_string(document).map_err(|e| internal(e.to_string()))?,
            at: Utc::now(),
        };
        self.table(store).append(&[entry]).await?;
        Ok(())
    }

    /// Every document under `key` (all keys when `None`), oldest first.
    pub async fn history<T: DeserializeOwned>(
        &self,
        store: &Store,
        key: Option<&str>,
    ) -> Result<Vec<(String, DateTime<Utc>, T)>, EngineError> {
        let entries = self.table(store).rows().await?;
        let mut out = Vec::new();
        for entry in entries.iter().filter(|e| key.is_none_or(|k| e.key == k)) {
            let document = serde_json::from_str(&entry.document).map_err(|e| {
                internal(format!(
                    "{}: a damaged record for {}: {e}",
                    self.0, entry.key
                ))
            })?;
            out.push((entry.key.clone(), entry.at, document));
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
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
