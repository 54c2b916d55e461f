//! The connectors of a deployment: added, listed, synced, removed. Their
//! configuration, sealed credentials, cursors and runs live in journals
//! under `<root>/_system/`; credentials are opened only to sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use gyrus_engine::EngineError;
use gyrus_engine::datafusion::functions::string::expr_fn::starts_with;
use gyrus_engine::datafusion::prelude::{Expr, col, lit};
use gyrus_engine::lease::{self, Lease, Taken};
use gyrus_engine::lifecycle::TenantRows;
use gyrus_engine::store::{Store, TenantId};
use serde::{Deserialize, Serialize};

use super::state::{self, CONNECTORS, CURSORS, Journal, RUNS, StreamState};
use super::{
    Connector, ConnectorConfig, Credentials, PlatformId, Shape, SyncError, SyncOptions, SyncReport,
};
use crate::http::CallGuards;
use crate::secrets::SecretKey;

/// Days re-read before the cursor, unless a connector says otherwise.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 30;
/// Minutes between scheduled syncs, unless a connector says otherwise.
pub const DEFAULT_SCHEDULE_MINUTES: u32 = 360;
/// Days of history a new connector reads, unless it says otherwise.
pub const DEFAULT_HISTORY_DAYS: u64 = 365;
/// How often a running sync is checked for a rotated refresh token to store.
const ROTATION_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// What it takes to add a connector.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub platform: PlatformId,
    pub account: String,
    pub credentials: Credentials,
    pub base_url: Option<String>,
    pub auth_url: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub lookback_days: Option<u32>,
    pub schedule_minutes: Option<u32>,
    pub settings: BTreeMap<String, String>,
}

/// The journal's record of a connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    config: ConnectorConfig,
    /// The credentials, sealed; `None` once removed.
    sealed: Option<String>,
    removed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Was running in a process that stopped before it finished; the next
    /// sync resumes from its checkpoint.
    Interrupted,
}

/// One sync of one connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub connector_id: String,
    /// `manual` or `schedule`.
    pub trigger: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows: usize,
    pub error: Option<String>,
    pub report: Option<SyncReport>,
}

/// A connector, its last run, its cursor and its next scheduled run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorStatus {
    pub config: ConnectorConfig,
    pub last_run: Option<Run>,
    pub cursor: StreamState,
    pub next_run: Option<DateTime<Utc>>,
}

/// The lease a connector's sync holds, in whatever process runs it: two
/// processes on one store never sync the same connector at once, and a
/// sync is `running` while its lease lives (a holder that died lets it
/// expire, and its run then reads as interrupted).
fn sync_lease(config: &ConnectorConfig) -> [&str; 3] {
    ["sync", config.tenant.as_str(), config.id.as_str()]
}

/// The deployment's connectors.
pub struct Connectors {
    store: Store,
    key: Option<Arc<SecretKey>>,
    /// The rate limiters and circuit breakers of this service's syncs.
    guards: Arc<CallGuards>,
}

/// A sync that has begun: the connector opened, its lease taken, its run recorded.
pub struct Begun {
    connector: Connector,
    pub run: Run,
    lease: Lease,
}

impl Connectors {
    /// `key` seals and opens credentials; without one, connectors can be
    /// listed and removed but not added or synced.
    pub fn new(store: Store, key: Option<SecretKey>) -> Self {
        Connectors {
            store,
            key: key.map(Arc::new),
            guards: Arc::default(),
        }
    }

    fn key(&self) -> Result<&SecretKey, SyncError> {
        self.key
            .as_deref()
            .ok_or(SyncError::Secret(crate::secrets::SecretError::NoKey))
    }

    /// Adds a connector for `tenant`; its credentials are sealed before
    /// they are stored.
    pub async fn add(
        &self,
        tenant: &TenantId,
        new: NewConnector,
    ) -> Result<ConnectorConfig, SyncError> {
        // Refused at once without a key, before anything is checked.
        self.key()?;
        let id = format!("c_{}", hex_id());
        let config = ConnectorConfig {
            id: id.clone(),
            tenant: tenant.as_str().to_string(),
            platform: new.platform,
            account: new.account.trim().to_string(),
            base_url: new.base_url,
            auth_url: new.auth_url,
            start_date: new.start_date.unwrap_or_else(|| {
                let today = Utc::now().date_naive();
                today
                    .checked_sub_days(Days::new(DEFAULT_HISTORY_DAYS))
                    .unwrap_or(today)
            }),
            lookback_days: new.lookback_days.unwrap_or(DEFAULT_LOOKBACK_DAYS).max(1),
            schedule_minutes: new.schedule_minutes.unwrap_or(DEFAULT_SCHEDULE_MINUTES),
            settings: new.settings,
        };
        config.validate()?;
        new.credentials.validate(config.platform)?;
        if matches!(config.platform.shape(), Shape::Windowed { .. }) {
            // Each window replaces the connector's slice of its table: two
            // connectors owning one slice (two shops of one platform, whose
            // orders are sliced by source) would replace each other's rows.
            let slice = config.platform.slice_equals(&config);
            let same = self.list(Some(tenant)).await?.into_iter().find(|c| {
                c.platform.table() == config.platform.table() && c.platform.slice_equals(c) == slice
            });
            if let Some(other) = same {
                return Err(SyncError::Invalid(format!(
                    "tenant {tenant} has a {} connector for these rows already ({}); one per tenant and {}",
                    other.platform,
                    other.id,
                    slice
                        .iter()
                        .map(|(column, value)| format!("{column} {value}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        self.store_credentials(&config, &new.credentials).await?;
        tracing::info!(connector = %id, tenant = %tenant, platform = %config.platform, "connector added");
        Ok(config)
    }

    /// Seals `credentials` and records them with `config`.
    async fn store_credentials(
        &self,
        config: &ConnectorConfig,
        credentials: &Credentials,
    ) -> Result<(), SyncError> {
        let plaintext =
            serde_json::to_vec(&credentials.0).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let sealed = self.key()?.seal(owner(config).as_bytes(), &plaintext)?;
        let record = Record {
            config: config.clone(),
            sealed: Some(sealed),
            removed: false,
        };
        CONNECTORS.append(&self.store, &config.id, &record).await?;
        Ok(())
    }

    /// Stores the refresh token the connector's platform rotated to, once
    /// per new token (`kept` holds the last one stored).
    async fn keep_rotated(
        &self,
        connector: &Connector,
        kept: &mut Option<String>,
    ) -> Result<(), SyncError> {
        let Some(credentials) = connector.rotated_credentials() else {
            return Ok(());
        };
        let token = credentials.0.get("refresh_token").cloned();
        if *kept == token {
            return Ok(());
        }
        self.store_credentials(&connector.config, &credentials)
            .await?;
        *kept = token;
        tracing::info!(connector = %connector.config.id, "stored the rotated refresh token");
        Ok(())
    }

    async fn records(&self, id: Option<&str>) -> Result<Vec<Record>, SyncError> {
        Ok(CONNECTORS
            .latest::<Record>(&self.store, id)
            .await?
            .into_values()
            .map(|(_, record)| record)
            .filter(|r| !r.removed)
            .collect())
    }

    /// Every connector `tenant` ever had, removed ones too: what its cursors
    /// and runs are keyed by.
    async fn ever_of(&self, tenant: &TenantId) -> Result<Vec<String>, SyncError> {
        Ok(CONNECTORS
            .latest::<Record>(&self.store, None)
            .await?
            .into_values()
            .filter(|(_, r)| r.config.tenant == tenant.as_str())
            .map(|(_, r)| r.config.id)
            .collect())
    }

    /// The connectors of `tenant` (all tenants' when `None`), by id.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<ConnectorConfig>, SyncError> {
        Ok(self
            .records(None)
            .await?
            .into_iter()
            .map(|r| r.config)
            .filter(|c| tenant.is_none_or(|t| c.tenant == t.as_str()))
            .collect())
    }

    /// One connector's record; another tenant's connector is not found.
    async fn record(&self, tenant: Option<&TenantId>, id: &str) -> Result<Record, SyncError> {
        self.records(Some(id))
            .await?
            .into_iter()
            .find(|r| tenant.is_none_or(|t| r.config.tenant == t.as_str()))
            .ok_or_else(|| SyncError::NotFound(id.to_string()))
    }

    pub async fn status(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<ConnectorStatus, SyncError> {
        let config = self.record(tenant, id).await?.config;
        let last_run = self.last_run(&config).await?;
        let cursor = state::load(&self.store, id, config.platform.table().name()).await?;
        let next_run = next_run(&config, last_run.as_ref());
        Ok(ConnectorStatus {
            config,
            last_run,
            cursor,
            next_run,
        })
    }

    /// The newest run; one left `running` by a process that is gone (its
    /// lease expired) is reported as interrupted.
    ///
    /// A sync takes its lease, then records its start; it records its end,
    /// then releases the lease. So the lease is read before the journal: a
    /// live lease then means the run read is running or just ended. A
    /// `running` record under a dead lease is read once more, lease first,
    /// in case its sync began between the two reads.
    async fn last_run(&self, config: &ConnectorConfig) -> Result<Option<Run>, SyncError> {
        let mut run = None;
        for _ in 0..2 {
            let running = self.is_running(config).await?;
            run = self.latest_run(&config.id).await?;
            match &mut run {
                Some(last) if last.status == RunStatus::Running && !running => {
                    last.status = RunStatus::Interrupted;
                }
                _ => return Ok(run),
            }
        }
        Ok(run)
    }

    /// Every run of `tenant`'s connectors, each as it ended (or runs now),
    /// oldest first; one left `running` by a process that is gone reads as
    /// interrupted.
    pub async fn runs(&self, tenant: &TenantId) -> Result<Vec<Run>, SyncError> {
        self.runs_of(&self.list(Some(tenant)).await?).await
    }

    /// Every run of `connectors`, as [`Connectors::runs`] gives them: one
    /// read of the run journal, and a lease read per run still `running`.
    pub(super) async fn runs_of(
        &self,
        connectors: &[ConnectorConfig],
    ) -> Result<Vec<Run>, SyncError> {
        let mut runs: BTreeMap<String, Run> = BTreeMap::new();
        for (connector, _, run) in RUNS.history::<Run>(&self.store, None).await? {
            if connectors.iter().any(|c| c.id == connector) {
                runs.insert(run.run_id.clone(), run);
            }
        }
        let mut runs: Vec<Run> = runs.into_values().collect();
        for run in &mut runs {
            if run.status != RunStatus::Running {
                continue;
            }
            let config = connectors.iter().find(|c| c.id == run.connector_id);
            if let Some(config) = config
                && !self.is_running(config).await?
            {
                run.status = RunStatus::Interrupted;
            }
        }
        runs.sort_by_key(|r| r.started_at);
        Ok(runs)
    }

    async fn latest_run(&self, id: &str) -> Result<Option<Run>, SyncError> {
        Ok(RUNS
            .latest::<Run>(&self.store, Some(id))
            .await?
            .remove(id)
            .map(|(_, run)| run))
    }

    /// Whether a process (this one or another) is syncing the connector.
    async fn is_running(&self, config: &ConnectorConfig) -> Result<bool, SyncError> {
        let lease = self.store.lease_state(&sync_lease(config)).await?;
        Ok(lease.is_some_and(|l| l.is_live(Utc::now())))
    }

    /// Removes a connector: it is no longer listed, synced or opened. Its
    /// data stays. (The journal is append-only: earlier records, their
    /// credentials sealed, remain in `_system/connectors` until it is
    /// vacuumed; without the key they are unreadable.)
    pub async fn remove(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<ConnectorConfig, SyncError> {
        let record = self.record(tenant, id).await?;
        if self.is_running(&record.config).await? {
            return Err(SyncError::Busy(id.to_string()));
        }
        let removed = Record {
            config: record.config.clone(),
            sealed: None,
            removed: true,
        };
        CONNECTORS.append(&self.store, id, &removed).await?;
        tracing::info!(connector = %id, "connector removed");
        Ok(record.config)
    }

    /// Opens the connector, takes its sync lease and records the start of a
    /// run. Refused when the connector is syncing already, in this process
    /// or another on the same store.
    pub async fn begin(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        trigger: &str,
    ) -> Result<Begun, SyncError> {
        let record = self.record(tenant, id).await?;
        let key = self.key()?;
        let sealed = record
            .sealed
            .as_deref()
            .ok_or_else(|| SyncError::Invalid(format!("connector {id} has no credentials")))?;
        let plaintext = key.open(owner(&record.config).as_bytes(), sealed)?;
        let credentials: BTreeMap<String, String> = serde_json::from_slice(&plaintext)
            .map_err(|_| SyncError::Secret(crate::secrets::SecretError::Open))?;
        let lease = match self
            .store
            .take_lease(&sync_lease(&record.config), lease::DEFAULT_TTL)
            .await?
        {
            Taken::Held(lease) => lease,
            Taken::Busy(_) => return Err(SyncError::Busy(id.to_string())),
        };
        let run = Run {
            run_id: format!("r_{}", hex_id()),
            connector_id: id.to_string(),
            trigger: trigger.to_string(),
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            rows: 0,
            error: None,
            report: None,
        };
        RUNS.append(&self.store, id, &run).await?;
        Ok(Begun {
            connector: Connector::new(record.config, Credentials(credentials)),
            run,
            lease,
        })
    }

    /// Runs a begun sync to its end and records how it ended.
    pub async fn finish(&self, begun: Begun, options: &SyncOptions) -> Result<Run, SyncError> {
        let Begun {
            connector,
            mut run,
            lease,
        } = begun;
        // A refresh token the platform rotates to is stored while the sync
        // goes on, not at its end: the one it replaced may be dead already,
        // and a process killed mid-sync would otherwise lose the new one.
        let mut kept = None;
        let outcome = {
            let sync = super::sync(&self.store, &connector, options, &self.guards);
            tokio::pin!(sync);
            let mut check = tokio::time::interval(ROTATION_CHECK);
            loop {
                tokio::select! {
                    outcome = &mut sync => break outcome,
                    _ = check.tick() => {
                        if let Err(error) = self.keep_rotated(&connector, &mut kept).await {
                            tracing::warn!(connector = %run.connector_id, %error,
                                "could not store the rotated refresh token yet");
                        }
                    }
                }
            }
        };
        self.keep_rotated(&connector, &mut kept).await?;
        run.finished_at = Some(Utc::now());
        match &outcome {
            Ok(report) => {
                run.status = RunStatus::Succeeded;
                run.rows = report.rows;
                run.report = Some(report.clone());
            }
            Err(error) => {
                run.status = RunStatus::Failed;
                run.error = Some(error.to_string());
            }
        }
        RUNS.append(&self.store, &run.connector_id, &run).await?;
        if let Err(error) = lease.release().await {
            // It expires on its own within the lease's time to live.
            tracing::warn!(connector = %run.connector_id, %error, "could not release the sync lease");
        }
        match &outcome {
            Ok(_) => {
                tracing::info!(connector = %run.connector_id, rows = run.rows, "sync succeeded")
            }
            Err(error) => tracing::warn!(connector = %run.connector_id, %error, "sync failed"),
        }
        Ok(run)
    }

    /// Syncs one connector now and returns the finished run (failed runs
    /// included: their error is in the run).
    pub async fn sync(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        trigger: &str,
        options: &SyncOptions,
    ) -> Result<Run, SyncError> {
        let begun = self.begin(tenant, id, trigger).await?;
        self.finish(begun, options).await
    }

    /// Connectors whose scheduled time has come.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<ConnectorConfig>, SyncError> {
        let mut due = Vec::new();
        for config in self.list(None).await? {
            let last = self.last_run(&config).await?;
            if last
                .as_ref()
                .is_some_and(|r| r.status == RunStatus::Running)
            {
                continue;
            }
            if next_run(&config, last.as_ref()).is_some_and(|at| at <= now) {
                due.push(config);
            }
        }
        Ok(due)
    }
}

/// When a connector syncs next: never without a schedule; now if it never
/// ran or its last run was interrupted; else a schedule after the last start.
pub(super) fn next_run(config: &ConnectorConfig, last: Option<&Run>) -> Option<DateTime<Utc>> {
    if config.schedule_minutes == 0 {
        return None;
    }
    match last {
        None => Some(Utc::now()),
        Some(run) if run.status == RunStatus::Interrupted => Some(Utc::now()),
        Some(run) => {
            Some(run.started_at + chrono::Duration::minutes(config.schedule_minutes as i64))
        }
    }
}

/// What sealed credentials are bound to.
fn owner(config: &ConnectorConfig) -> String {
    format!("{}/{}", config.tenant, config.id)
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// Where a tenant's connectors (with their sealed credentials), cursors
/// and runs are, for erasing and one-tenant snapshots; in the order they
/// are erased: runs and cursors before the connectors that name them.
pub const TENANT_ROWS: [ConnectorRows; 3] = [
    ConnectorRows(RUNS),
    ConnectorRows(CURSORS),
    ConnectorRows(CONNECTORS),
];

/// One connector journal's rows of a tenant: those keyed by its connectors.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorRows(Journal);

#[async_trait::async_trait]
impl TenantRows for ConnectorRows {
    fn table(&self) -> &str {
        self.0.0
    }

    async fn predicate(
        &self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<Option<Expr>, EngineError> {
        let ids = Connectors::new(store.clone(), None)
            .ever_of(tenant)
            .await
            .map_err(super::system::engine_error)?;
        let key = || col("key");
        Ok(if self.0.0 == CURSORS.0 {
            // Keyed `<connector>/<stream>`.
            ids.into_iter()
                .map(|id| starts_with(key(), lit(format!("{id}/"))))
                .reduce(Expr::or)
        } else if ids.is_empty() {
            None
        } else {
            Some(key().in_list(ids.into_iter().map(lit).collect(), false))
        })
    }
}
