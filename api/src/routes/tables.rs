//! `GET /api/v1/tables` and `GET /api/v1/tables/{table}`: the tenant's tables,
//! their columns, rows, files, bytes and Delta version.

use axum::Json;
use axum::extract::{Path, State};
use gyrus_engine::Role;
use gyrus_engine::maintenance::TableStats;
use gyrus_engine::schema::CanonicalTable;
use serde::Serialize;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Serialize)]
pub struct TableSummary {
    name: &'static str,
    rows: u64,
    files: u64,
    bytes: u64,
    /// Delta version; absent for a table never written.
    version: Option<u64>,
}

impl From<&TableStats> for TableSummary {
    fn from(s: &TableStats) -> Self {
        TableSummary {
            name: s.table.name(),
            rows: s.rows,
            files: s.files,
            bytes: s.bytes,
            version: s.version,
        }
    }
}

#[derive(Serialize)]
pub struct TableList {
    items: Vec<TableSummary>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TableList>, Problem> {
    caller.require(Role::Reader)?;
    let stats = state.store.table_stats(&caller.tenant).await?;
    Ok(Json(TableList {
        items: stats.iter().map(TableSummary::from).collect(),
    }))
}

#[derive(Serialize)]
pub struct ColumnInfo {
    name: String,
    r#type: String,
    nullable: bool,
}

#[derive(Serialize)]
pub struct TableDetail {
    #[serde(flatten)]
    summary: TableSummary,
    columns: Vec<ColumnInfo>,
    natural_key: &'static [&'static str],
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TableDetail>, Problem> {
    caller.require(Role::Reader)?;
    let table: CanonicalTable = name.parse()?;
    let stats = state.store.table_stats(&caller.tenant).await?;
    let summary = stats
        .iter()
        .find(|s| s.table == table)
        .map(TableSummary::from)
        .ok_or_else(|| Problem::not_found(format!("no statistics for {table}")))?;
    let columns = table
        .schema()
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            r#type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    Ok(Json(TableDetail {
        summary,
        columns,
        natural_key: table.def().natural_key,
    }))
}
