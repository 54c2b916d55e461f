//! `GET /api/v1/tables` and `GET /api/v1/tables/{table}`: the tenant's tables,
//! their columns, rows, files, bytes and Delta version.

use axum::Json;
use axum::extract::State;
use gyrus_engine::Role;
use gyrus_engine::maintenance::TableStats;
use gyrus_engine::schema::CanonicalTable;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::pagination::{ListParams, ListQuery, ListSpec, Page};
use crate::problem::{Problem, ProblemBody};
use crate::routes::PathParam;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct TableSummary {
    #[schema(example = "ad_performance")]
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

/// A canonical table's name, as a path parameter: the OpenAPI document lists
/// the names, so clients and generated tests know them.
pub struct TableName;

impl utoipa::PartialSchema for TableName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(CanonicalTable::ALL.map(CanonicalTable::name)))
            .description(Some("A canonical table"))
            .into()
    }
}

impl ToSchema for TableName {}

const TABLES: ListSpec = ListSpec {
    id: "name",
    sortable: &["name", "rows", "bytes", "version"],
    filterable: &[],
    default_sort: "name",
};

/// The tenant's canonical tables with their size and version.
///
/// Sorts by `name` (default), `rows`, `bytes`, `version`.
#[utoipa::path(get, path = "/tables", operation_id = "list_tables", tag = "tables", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "One page of tables", body = Page<TableSummary>),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: ListQuery,
) -> Result<Json<Page<TableSummary>>, Problem> {
    caller.require(Role::Reader)?;
    let stats = state.store.table_stats(&caller.tenant).await?;
    let tables = stats.iter().map(TableSummary::from).collect();
    Ok(Json(query.page(tables, &TABLES)?))
}

/// A column, as tables and query results describe theirs.
#[derive(Serialize, ToSchema)]
pub struct ColumnInfo {
    name: String,
    /// The Arrow type, e.g. `Decimal128(18, 6)`, `Date32`, `Utf8`.
    r#type: String,
    nullable: bool,
}

impl ColumnInfo {
    /// The columns of `schema`, in order.
    pub fn of(schema: &datafusion::arrow::datatypes::Schema) -> Vec<ColumnInfo> {
        schema
            .fields()
            .iter()
            .map(|f| ColumnInfo {
                name: f.name().clone(),
                r#type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
pub struct TableDetail {
    #[serde(flatten)]
    summary: TableSummary,
    columns: Vec<ColumnInfo>,
    natural_key: &'static [&'static str],
}

/// One table: its columns, natural key, rows, files, bytes and version.
#[utoipa::path(get, path = "/tables/{table}", operation_id = "get_table", tag = "tables", security(("bearer" = [])),
    params(("table" = inline(TableName), Path, description = "A canonical table, e.g. `ad_performance`")),
    responses(
        (status = 200, description = "The table", body = TableDetail),
        (status = "4XX", description = "A problem", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam,
) -> Result<Json<TableDetail>, Problem> {
    caller.require(Role::Reader)?;
    let table: CanonicalTable = name.parse()?;
    let stats = state.store.table_stats(&caller.tenant).await?;
    let summary = stats
        .iter()
        .find(|s| s.table == table)
        .map(TableSummary::from)
        .ok_or_else(|| Problem::not_found(format!("no statistics for {table}")))?;
    Ok(Json(TableDetail {
        summary,
        columns: ColumnInfo::of(&table.schema()),
        natural_key: table.def().natural_key,
    }))
}
