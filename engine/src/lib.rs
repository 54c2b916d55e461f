//! The Gyrus engine: the columnar store and tenant-scoped SQL.
//!
//! - [`schema`]: the canonical tables of design.md, defined once.
//! - [`Store`]: one object_store root (a local folder or `s3://`) with a Delta
//!   Lake table per tenant and canonical table under `tenants/<tenant>/<table>/`.
//! - [`Store::write`]: validated, sorted, atomic and idempotent writes, with
//!   slice replacement for restated data.
//! - [`Store::session`]: a read-only DataFusion session holding one tenant's
//!   tables, bounded in memory and time; [`scan`] reads a table's files as
//!   one snapshot saw them.
//! - [`keys`]: hashed API keys bound to a tenant and a role.
//! - [`lifecycle`], [`backup`]: erasing a tenant; consistent snapshots of
//!   the store or one tenant (backup, restore, export).

pub mod admission;
pub mod backup;
pub mod budget;
pub mod day;
pub mod error;
pub mod exec;
pub mod functions;
pub mod ipc;
pub mod keys;
pub mod layout;
pub mod lease;
pub mod lifecycle;
pub mod maintenance;
pub mod money;
pub mod params;
pub mod rollup;
pub mod scan;
pub mod schema;
pub mod session;
pub mod shape;
pub mod store;
pub mod system;
pub mod system_table;
pub mod validate;
pub mod wire;
pub mod write;

pub use error::{EngineError, Result};
pub use keys::{ApiKey, KeyRing, KeyRingConfig, NewKey, Role};
pub use session::{
    Deadline, QueryStream, Refine, ServerCaches, SessionLimits, TableCache, TenantSession,
    TenantTables, check_read_only,
};
pub use store::{Store, TenantId};
pub use write::{Slice, WriteMode, WriteOutcome, WriteRequest};

/// Arrow and DataFusion as the engine uses them, so dependents share one version.
pub use datafusion;
