//! One type for the engine's own tables under `_system/`: API keys, the model
//! registry, connector journals, and what later capabilities add.
//!
//! A [`SystemTable`] is a Delta table of typed records. The record type says
//! its Arrow schema once ([`SystemRecord::schema`]); rows go to Arrow and back
//! through serde, so no owner writes column code. Appends take many records
//! in one commit. Reads of every row are cached per table and record type in
//! the [`Store`] (and its clones): a read brings the cached table up to the
//! newest commit, reading only the commits since, and decodes the rows again
//! only when there were any. Columns a record type names as heavy (a model
//! blob) are left out of cached reads and read by [`SystemTable::find`] only.
//! Compaction and file retention are those of every `_system` table
//! (`gyrus optimize`, `gyrus vacuum`, and `gyrus serve`'s maintenance
//! schedule); [`SystemTable::expire`] drops rows older than a cut-off.
//!
//! ```
//! # async fn run() -> gyrus_engine::Result<()> {
//! use chrono::{DateTime, Utc};
//! use gyrus_engine::Store;
//! use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
//! use gyrus_engine::system_table::{SystemRecord, SystemTable};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Note {
//!     tenant_id: String,
//!     text: Option<String>,
//!     at: DateTime<Utc>,
//! }
//!
//! impl SystemRecord for Note {
//!     fn schema() -> SchemaRef {
//!         std::sync::Arc::new(Schema::new(vec![
//!             Field::new("tenant_id", DataType::Utf8, false),
//!             Field::new("text", DataType::Utf8, true),
//!             Field::new("at", gyrus_engine::schema::timestamp_utc(), false),
//!         ]))
//!     }
//! }
//!
//! let dir = std::env::temp_dir().join(format!("gyrus-doc-systable-{}", std::process::id()));
//! let store = Store::open(dir.to_str().unwrap()).await?;
//! let notes = SystemTable::<Note>::new(&store, "notes");
//! let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
//! let note = Note { tenant_id: "acme".into(), text: None, at };
//! notes.append(&[note.clone(), note.clone()]).await?; // one commit
//! assert_eq!(*notes.rows().await?, vec![note.clone(), note]);
//! # std::fs::remove_dir_all(dir).ok();
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ArrayWriter;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{col, lit};
use deltalake_core::DeltaTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EngineError, Result};
use crate::store::Store;
use crate::system::to_batch;

/// A record of a system table: its serde field names are the table's
/// columns. Optional fields are nullable columns.
pub trait SystemRecord: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The table's Arrow schema, in serde's field names.
    fn schema() -> SchemaRef;

    /// Columns left out of [`SystemTable::rows`] (large values read only by
    /// [`SystemTable::find`]); they must be optional fields.
    const HEAVY: &'static [&'static str] = &[];
}

/// A table of `R` records under `_system/<name>/`.
pub struct SystemTable<R> {
    store: Store,
    name: &'static str,
    record: PhantomData<fn() -> R>,
}

impl<R> Clone for SystemTable<R> {
    fn clone(&self) -> Self {
        SystemTable {
            store: self.store.clone(),
            name: self.name,
            record: PhantomData,
        }
    }
}

impl<R: SystemRecord> SystemTable<R> {
    pub fn new(store: &Store, name: &'static str) -> Self {
        SystemTable {
            store: store.clone(),
            name,
            record: PhantomData,
        }
    }

    /// The table's name under `_system/`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Appends `records` in one commit (creating the table with the record's
    /// schema when missing); returns the new version. Nothing is written for
    /// no records.
    pub async fn append(&self, records: &[R]) -> Result<u64> {
        let schema = R::schema();
        let batch = to_batch(&schema, records)?;
        self.store.append_system(self.name, &schema, batch).await
    }

    /// The table at its newest version: the cached one brought up to date
    /// (only the commits since are read), else loaded; with the cached
    /// records when the version has not moved. `None` for a table never
    /// written.
    async fn newest(&self) -> Result<Option<(DeltaTable, Option<Arc<Vec<R>>>)>> {
        let key = (self.name, TypeId::of::<R>());
        if let Some((mut table, rows)) = self.store.system_cache().get(&key) {
            let before = table.version();
            // An error: replaced under us (a restore into this store); it
            // is read afresh below.
            if table.update_incremental(None).await.is_ok() {
                let rows = (table.version() == before)
                    .then(|| rows.downcast::<Vec<R>>().ok())
                    .flatten();
                return Ok(Some((table, rows)));
            }
        }
        Ok(self
            .store
            .load(&self.store.system_url(self.name))
            .await?
            .map(|table| (table, None)))
    }

    /// Every record, without the heavy columns, in no set order (owners sort
    /// by their own columns); cached (see the module docs). A table never
    /// written has none.
    pub async fn rows(&self) -> Result<Arc<Vec<R>>> {
        let table = match self.newest().await? {
            None => return Ok(Arc::new(Vec::new())),
            Some((_, Some(rows))) => return Ok(rows),
            Some((table, None)) => table,
        };
        let schema = R::schema();
        let columns: Vec<&str> = if R::HEAVY.is_empty() {
            Vec::new() // every column
        } else {
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|name| !R::HEAVY.contains(name))
                .collect()
        };
        let batches = self
            .store
            .scan_table(&table, &columns, None)
            .await
            .map_err(|e| {
                EngineError::Internal(format!("_system/{} could not be read: {e}", self.name))
            })?;
        let rows = Arc::new(self.decode(&batches)?);
        self.store.system_cache().put(
            (self.name, TypeId::of::<R>()),
            table,
            rows.clone() as Arc<dyn Any + Send + Sync>,
        );
        Ok(rows)
    }

    /// The records matching `filter`, with every column (heavy ones too),
    /// read from the newest version; the records are not cached.
    pub async fn find(&self, filter: Expr) -> Result<Vec<R>> {
        let Some((table, _)) = self.newest().await? else {
            return Ok(Vec::new());
        };
        let batches = self.store.scan_table(&table, &[], Some(filter)).await?;
        self.decode(&batches)
    }

    /// The newest `limit` records matching `filter` by the column `by`
    /// (every column), newest first; the records are not cached. The sort
    /// and limit run in the scan, so a large table is not read into memory
    /// whole.
    pub async fn find_newest(&self, filter: Expr, by: &str, limit: usize) -> Result<Vec<R>> {
        let Some((table, _)) = self.newest().await? else {
            return Ok(Vec::new());
        };
        let batches = self
            .store
            .frame_of(&table)
            .await?
            .filter(filter)?
            .sort(vec![col(by).sort(false, true)])?
            .limit(0, Some(limit))?
            .collect()
            .await?;
        self.decode(&batches)
    }

    /// Deletes the records whose timestamp column `at` is before `cutoff`, in
    /// one commit; returns how many. Their files go at the next vacuum.
    pub async fn expire(&self, at: &str, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = datafusion::scalar::ScalarValue::TimestampMicrosecond(
            Some(cutoff.timestamp_micros()),
            Some("UTC".into()),
        );
        self.store
            .delete_system_rows(self.name, col(at).lt(lit(cutoff)))
            .await
    }

    fn decode(&self, batches: &[RecordBatch]) -> Result<Vec<R>> {
        from_batches(batches).map_err(|e| {
            EngineError::Internal(format!("_system/{} holds a damaged record: {e}", self.name))
        })
    }
}

/// Records from Arrow batches, through their JSON form (nulls become
/// missing fields, so optional fields read as `None`).
pub fn from_batches<R: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<R>> {
    let mut out = Vec::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let mut writer = ArrayWriter::new(Vec::new());
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| EngineError::Internal(format!("system rows as JSON: {e}")))?;
        let rows: Vec<R> = serde_json::from_slice(&writer.into_inner())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        out.extend(rows);
    }
    Ok(out)
}

/// The decoded rows of system tables a store's clones share, by table and
/// record type, each with the table at the version they were read at.
#[derive(Default)]
pub(crate) struct SystemCache(Mutex<HashMap<CacheKey, (DeltaTable, CachedRows)>>);

type CacheKey = (&'static str, TypeId);
type CachedRows = Arc<dyn Any + Send + Sync>;

impl SystemCache {
    fn get(&self, key: &CacheKey) -> Option<(DeltaTable, CachedRows)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    fn put(&self, key: CacheKey, table: DeltaTable, rows: CachedRows) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A slower reader of an older version must not replace a newer copy.
        if map
            .get(&key)
            .is_some_and(|(held, _)| held.version() > table.version())
        {
            return;
        }
        map.insert(key, (table, rows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Event {
        key: String,
        count: u64,
        blob: Option<String>,
        at: DateTime<Utc>,
    }

    impl SystemRecord for Event {
        fn schema() -> SchemaRef {
            Arc::new(Schema::new(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("count", DataType::Int64, false),
                Field::new("blob", DataType::Utf8, true),
                Field::new("at", crate::schema::timestamp_utc(), false),
            ]))
        }
        const HEAVY: &'static [&'static str] = &["blob"];
    }

    fn event(key: &str, count: u64, at: DateTime<Utc>) -> Event {
        Event {
            key: key.into(),
            count,
            blob: Some("x".repeat(100)),
            at,
        }
    }

    #[tokio::test]
    async fn records_round_trip_batched_cached_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let table = SystemTable::<Event>::new(&store, "events");
        assert!(table.rows().await.unwrap().is_empty(), "never written");
        let old = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        // Stored to the microsecond.
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        let v0 = table
            .append(&[event("a", 1, old), event("b", u32::MAX as u64 + 7, now)])
            .await
            .unwrap();
        assert_eq!(v0, 1, "created at 0; two records, one commit");

        let mut rows = (*table.rows().await.unwrap()).clone();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        let light: Vec<Event> = [event("a", 1, old), event("b", u32::MAX as u64 + 7, now)]
            .into_iter()
            .map(|e| Event { blob: None, ..e })
            .collect();
        assert_eq!(*rows, light, "heavy columns are left out");
        // Unchanged: the very same decoded rows, from another clone too.
        let again = SystemTable::<Event>::new(&store.clone(), "events");
        assert!(Arc::ptr_eq(
            &table.rows().await.unwrap(),
            &again.rows().await.unwrap()
        ));

        // A write from another process (another Store over the same root)
        // is seen at the next read.
        let other = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        SystemTable::<Event>::new(&other, "events")
            .append(&[event("c", 3, now)])
            .await
            .unwrap();
        let keys = |rows: &[Event]| {
            let mut keys: Vec<String> = rows.iter().map(|e| e.key.clone()).collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&table.rows().await.unwrap()), ["a", "b", "c"]);

        let found = table.find(col("key").eq(lit("b"))).await.unwrap();
        assert_eq!(
            found,
            vec![event("b", u32::MAX as u64 + 7, now)],
            "with the blob"
        );

        assert_eq!(
            table
                .expire("at", now - chrono::Duration::days(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(keys(&table.rows().await.unwrap()), ["b", "c"]);
        assert_eq!(table.expire("at", old).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_damaged_or_foreign_table_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        #[derive(Serialize, Deserialize)]
        struct Other {
            key: String,
        }
        impl SystemRecord for Other {
            fn schema() -> SchemaRef {
                Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false)]))
            }
        }
        SystemTable::<Other>::new(&store, "events")
            .append(&[Other { key: "a".into() }])
            .await
            .unwrap();
        let err = SystemTable::<Event>::new(&store, "events")
            .rows()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("_system/events"), "{err}");
    }
}
