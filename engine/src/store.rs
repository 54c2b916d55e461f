//! The store: one object_store root holding every tenant's Delta tables.
//!
//! Layout (design.md): `<root>/tenants/<tenant_id>/<table>/` for the canonical
//! tables and `<root>/_system/<name>/` for API keys and other system state.
//!
//! ```no_run
//! # async fn run() -> gyrus_engine::Result<()> {
//! use gyrus_engine::{Store, TenantId, schema::CanonicalTable};
//!
//! let store = Store::open("./gyrus-data").await?;
//! let acme = TenantId::new("acme")?;
//! let table = store.table(&acme, CanonicalTable::AdPerformance).await?;
//! println!("exists: {}", table.is_some());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path as FsPath;
use std::sync::{Arc, Once};

use datafusion::arrow::datatypes::SchemaRef;
use deltalake_core::kernel::StructType;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt as _;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt as _};
use url::Url;

use crate::error::{EngineError, Result};
use crate::schema::CanonicalTable;

/// A tenant's identifier: `[a-z0-9][a-z0-9_-]{0,62}`, so it is always one safe path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > 63 {
            Some("it is longer than 63 characters")
        } else if !id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            Some("it must start with a lowercase letter or a digit")
        } else if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            Some("only lowercase letters, digits, '_' and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(EngineError::InvalidTenant { tenant: id, reason }),
            None => Ok(TenantId(id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The root of all Gyrus data.
///
/// Clones share one count of this process's writes per tenant
/// ([`Store::write_epoch`]), which caches of table snapshots compare against:
/// a write through any clone is seen by every cache at once, without the
/// writer having to tell them.
#[derive(Clone)]
pub struct Store {
    root: Url,
    object_store: Arc<dyn ObjectStore>,
    writes: Arc<WriteEpochs>,
    system: Arc<crate::system_table::SystemCache>,
}

/// How many times this process has changed each tenant's tables.
#[derive(Default)]
struct WriteEpochs(std::sync::Mutex<std::collections::HashMap<TenantId, u64>>);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root.as_str())
            .finish()
    }
}

/// The log of one Delta table as a read saw it: its newest commit then, or
/// no table at all ([`Store::mark`], [`Store::unmoved`]).
#[derive(Debug, Clone)]
pub(crate) enum LogMark {
    /// The log of the table at `table` (its object-store path): its newest
    /// commit and which object that was, or `None` for no table there.
    Read {
        table: object_store::path::Path,
        newest: Option<(u64, CommitObject)>,
    },
    /// A log that could not be read: never taken as unmoved, so a snapshot
    /// holding it is read again next time.
    Unreadable,
}

/// What tells one stored commit object from another of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitObject {
    size: u64,
    last_modified: chrono::DateTime<chrono::Utc>,
    e_tag: Option<String>,
}

impl Store {
    /// Opens a root given as a local folder (created if missing), a `file://`
    /// URL or, with the `s3` feature, `s3://bucket/prefix` configured by the
    /// usual `AWS_*` environment variables.
    pub async fn open(root: &str) -> Result<Self> {
        let invalid = |reason: String| EngineError::InvalidRoot {
            root: root.to_string(),
            reason,
        };
        let url = match Url::parse(root) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local folder.
            _ => local_folder_url(FsPath::new(root)).map_err(invalid)?,
        };
        let url = with_trailing_slash(url);
        let object_store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| invalid("not a local path".into()))?;
                std::fs::create_dir_all(&path).map_err(|e| invalid(e.to_string()))?;
                Arc::new(LocalFileSystem::new())
            }
            #[cfg(feature = "s3")]
            "s3" | "s3a" => {
                register_default_log_store(&url);
                Arc::new(
                    object_store::aws::AmazonS3Builder::from_env()
                        .with_url(url.as_str())
                        .build()
                        .map_err(|e| invalid(e.to_string()))?,
                )
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme `{other}`; use a local folder, file://{}",
                    if cfg!(feature = "s3") {
                        " or s3://"
                    } else {
                        ""
                    }
                )));
            }
        };
        Ok(Store {
            root: url,
            object_store,
            writes: Arc::default(),
            system: Arc::default(),
        })
    }

    /// How many times this process has changed `tenant`'s tables (writes,
    /// compaction, vacuum). A snapshot loaded at an older epoch is stale.
    pub fn write_epoch(&self, tenant: &TenantId) -> u64 {
        let epochs = self.writes.0.lock().unwrap_or_else(|e| e.into_inner());
        epochs.get(tenant).copied().unwrap_or(0)
    }

    /// Counts a change to `tenant`'s tables: every cache reloads them.
    pub(crate) fn changed(&self, tenant: &TenantId) {
        let mut epochs = self.writes.0.lock().unwrap_or_else(|e| e.into_inner());
        *epochs.entry(tenant.clone()).or_default() += 1;
    }

    /// The decoded system-table rows this store's clones share.
    pub(crate) fn system_cache(&self) -> &crate::system_table::SystemCache {
        &self.system
    }

    /// The root URL, always ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The underlying object store (rooted at the store's scheme root, not at `root`).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.object_store.clone()
    }

    /// Where a tenant's canonical table lives.
    pub fn table_url(&self, tenant: &TenantId, table: CanonicalTable) -> Url {
        self.join(&format!("tenants/{tenant}/{}/", table.name()))
    }

    /// Where a tenant's folder lives.
    pub fn tenant_url(&self, tenant: &TenantId) -> Url {
        self.join(&format!("tenants/{tenant}/"))
    }

    /// Where a system table lives.
    pub fn system_url(&self, name: &str) -> Url {
        self.join(&format!("_system/{name}/"))
    }

    /// The object-store path of a place under the root given relative to it
    /// (`tenants`, `_system/leases/…`), for listing, reading and deleting.
    pub(crate) fn object_path(&self, relative: &str) -> Result<object_store::path::Path> {
        object_store::path::Path::from_url_path(format!("{}{relative}", self.root.path()))
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    fn join(&self, relative: &str) -> Url {
        // Every segment is validated (tenant ids, table names), so joining cannot escape the root.
        let mut url = self.root.clone();
        url.set_path(&format!("{}{relative}", self.root.path()));
        url
    }

    fn builder(&self, url: &Url) -> Result<DeltaTableBuilder> {
        Ok(DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(self.object_store.clone(), url.clone()))
    }

    /// Loads the Delta table at `url`, or `None` when there is none yet.
    pub async fn load(&self, url: &Url) -> Result<Option<DeltaTable>> {
        if !self.may_exist(url).await? {
            return Ok(None);
        }
        let mut table = self.builder(url)?.build()?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether there may be a Delta table at `url`: the Delta kernel refuses
    /// local locations that do not exist yet, and logs an error for remote
    /// ones without a log, so look first.
    async fn may_exist(&self, url: &Url) -> Result<bool> {
        if let Ok(path) = url.to_file_path() {
            return Ok(path.exists());
        }
        let log = self.log_path(url)?;
        Ok(self.object_store.list(Some(&log)).next().await.is_some())
    }

    /// Where the commits of the Delta table at `url` live.
    fn log_path(&self, url: &Url) -> Result<object_store::path::Path> {
        object_store::path::Path::from_url_path(format!("{}_delta_log/", url.path()))
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// The object-store path of the Delta table at `url`.
    fn table_path(&self, url: &Url) -> Result<object_store::path::Path> {
        object_store::path::Path::from_url_path(url.path())
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// The log of the Delta table at `url` as a read that found `version`
    /// (`None`: no table there) saw it, for [`Store::unmoved`] to compare. A
    /// commit that cannot be looked at gives a mark that never holds: the
    /// snapshot is read again next time rather than failing now.
    pub(crate) async fn mark(&self, url: &Url, version: Option<u64>) -> LogMark {
        let Ok(table) = self.table_path(url) else {
            return LogMark::Unreadable;
        };
        let newest = match version {
            None => None,
            Some(version) => match self.commit_object(&table, version).await {
                Ok(Some(commit)) => Some((version, commit)),
                Ok(None) | Err(_) => return LogMark::Unreadable,
            },
        };
        LogMark::Read { table, newest }
    }

    /// Whether the log `mark` was taken of has not moved since: no commit
    /// after the one seen, and that one the very object seen (a table erased
    /// and written again has new commit objects of the same numbers). Two
    /// `HEAD`s, where reading the table again reads its whole log.
    pub(crate) async fn unmoved(&self, mark: &LogMark) -> Result<bool> {
        let LogMark::Read { table, newest } = mark else {
            return Ok(false);
        };
        let next = newest.as_ref().map_or(0, |(version, _)| version + 1);
        if self.commit_object(table, next).await?.is_some() {
            return Ok(false);
        }
        Ok(match newest {
            Some((version, seen)) => {
                self.commit_object(table, *version).await?.as_ref() == Some(seen)
            }
            None => true,
        })
    }

    /// Which object commit `version` in `log` is, if there is one.
    async fn commit_object(
        &self,
        table: &object_store::path::Path,
        version: u64,
    ) -> Result<Option<CommitObject>> {
        let commit = deltalake_core::logstore::commit_uri_from_version(Some(version));
        let path = object_store::path::Path::from_iter(table.parts().chain(commit.parts()));
        match self.object_store.head(&path).await {
            Ok(meta) => Ok(Some(CommitObject {
                size: meta.size,
                last_modified: meta.last_modified,
                e_tag: meta.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The Delta table at `url` without reading its log: for its log store
    /// (reading single commits), not its snapshot.
    pub(crate) fn unloaded(&self, url: &Url) -> Result<DeltaTable> {
        Ok(self.builder(url)?.build()?)
    }

    /// Loads the Delta table at `url` as it was at `version`, or `None` when
    /// there is no table there.
    pub(crate) async fn load_version(&self, url: &Url, version: u64) -> Result<Option<DeltaTable>> {
        if !self.may_exist(url).await? {
            return Ok(None);
        }
        let mut table = self.builder(url)?.build()?;
        match table.load_version(version).await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads the Delta table at `url`, creating it with `schema` when missing.
    pub async fn load_or_create(
        &self,
        url: &Url,
        name: &str,
        schema: &SchemaRef,
    ) -> Result<DeltaTable> {
        if let Some(table) = self.load(url).await? {
            return Ok(table);
        }
        let columns: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| EngineError::Internal(format!("schema of {name}: {e}")))?;
        if let Ok(path) = url.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|e| {
                EngineError::Internal(format!("cannot create {}: {e}", path.display()))
            })?;
        }
        let table = self.builder(url)?.build()?;
        let created = table
            .create()
            .with_table_name(name)
            .with_columns(columns.fields().cloned())
            .await;
        match created {
            Ok(table) => {
                tracing::info!(table = name, url = %url, "created table");
                Ok(table)
            }
            // Another writer created it first: use theirs.
            Err(err) => match self.load(url).await? {
                Some(table) => Ok(table),
                None => Err(err.into()),
            },
        }
    }

    /// A tenant's canonical table, if it has been written to.
    pub async fn table(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
    ) -> Result<Option<DeltaTable>> {
        self.load(&self.table_url(tenant, table)).await
    }

    /// A tenant's canonical table, created empty on first use.
    pub async fn table_or_create(
        &self,
        tenant: &TenantId,
        table: CanonicalTable,
    ) -> Result<DeltaTable> {
        self.load_or_create(
            &self.table_url(tenant, table),
            table.name(),
            &table.schema(),
        )
        .await
    }

    /// Writes a file (not a table) into a tenant's folder, e.g. a dataset's ground truth.
    pub async fn put_tenant_file(
        &self,
        tenant: &TenantId,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Url> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(EngineError::Internal(format!("invalid file name `{name}`")));
        }
        let url = self.join(&format!("tenants/{tenant}/{name}"));
        if let Ok(path) = url.to_file_path()
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::Internal(e.to_string()))?;
        }
        let path = object_store::path::Path::from_url_path(url.path())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.object_store.put(&path, bytes.into()).await?;
        Ok(url)
    }

    /// The tenants that have a folder under the root.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let listing = self
            .object_store
            .list_with_delimiter(Some(&self.object_path("tenants")?))
            .await?;
        let mut tenants: Vec<TenantId> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|name| TenantId::new(name).ok()))
            .collect();
        tenants.sort();
        Ok(tenants)
    }
}

fn local_folder_url(path: &FsPath) -> std::result::Result<Url, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create folder: {e}"))?;
    let absolute = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve folder: {e}"))?;
    Url::from_directory_path(&absolute).map_err(|_| "not an absolute path".to_string())
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// deltalake-core only knows `file://` and `memory://`; S3 stores use its
/// default log store (atomic commits through S3's conditional put).
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
fn register_default_log_store(url: &Url) {
    use deltalake_core::logstore::{
        LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
        logstore_factories,
    };

    struct DefaultFactory;
    impl LogStoreFactory for DefaultFactory {
        fn with_options(
            &self,
            prefixed_store: ObjectStoreRef,
            root_store: ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake_core::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(
                prefixed_store,
                root_store,
                location,
                options,
            ))
        }
    }

    static ONCE: Once = Once::new();
    let scheme = format!("{}://", url.scheme());
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(key) = Url::parse(scheme) {
                logstore_factories().insert(key, Arc::new(DefaultFactory));
            }
        }
    });
    tracing::debug!(%scheme, "registered the default Delta log store");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_single_safe_segments() {
        for good in ["acme", "a", "tenant-42", "x_y", "0abc"] {
            assert!(TenantId::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "../b",
            "a/b",
            "a.b",
            "-a",
            "_system",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn layout_follows_the_design() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let acme = TenantId::new("acme").unwrap();
        let url = store.table_url(&acme, CanonicalTable::Orders);
        assert!(url.as_str().ends_with("/tenants/acme/orders/"), "{url}");
        assert!(
            store
                .system_url("api_keys")
                .as_str()
                .ends_with("/_system/api_keys/")
        );
        assert!(
            store
                .table(&acme, CanonicalTable::Orders)
                .await
                .unwrap()
                .is_none()
        );
        store
            .table_or_create(&acme, CanonicalTable::Orders)
            .await
            .unwrap();
        assert!(
            store
                .table(&acme, CanonicalTable::Orders)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.tenants().await.unwrap(), vec![acme]);
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let err = Store::open("ftp://host/x").await.unwrap_err().to_string();
        assert!(err.contains("unsupported scheme `ftp`"), "{err}");
    }
}
