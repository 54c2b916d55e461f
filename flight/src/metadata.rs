//! What the server says about itself and the tenant's tables: SqlInfo, XDBC
//! type info, keys, and the catalog listings (GetCatalogs, GetDbSchemas,
//! GetTables) built from the caller's own session.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo,
    XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, Nullable, Searchable, SqlInfo,
    SqlNullOrdering, SqlOuterJoinsSupportLevel, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, SqlSupportsConvert, SupportedSqlGrammar, XdbcDataType,
    XdbcDatetimeSubcode,
};
use gyrus_engine::datafusion::arrow::array::AsArray;
use gyrus_engine::datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use gyrus_engine::datafusion::arrow::compute::cast;
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use gyrus_engine::datafusion::common::TableReference;
use gyrus_engine::datafusion::error::DataFusionError;
use gyrus_engine::datafusion::prelude::SessionContext;
use gyrus_engine::datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::session::{CATALOG, SCHEMA};

use gyrus_engine::wire::wire_schema;

/// The table types GetTableTypes lists.
pub const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

/// A table the session can see.
pub struct TableEntry {
    pub catalog: String,
    pub schema: String,
    pub table: String,
    pub table_type: String,
}

/// Every table the session can see (its `information_schema.tables`), in
/// catalog / schema / table order.
pub async fn list_tables(ctx: &SessionContext) -> Result<Vec<TableEntry>, FlightError> {
    let external = |e: DataFusionError| FlightError::ExternalError(Box::new(e));
    let batches = ctx
        .sql(
            "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables \
             ORDER BY table_catalog, table_schema, table_name",
        )
        .await
        .map_err(external)?
        .collect()
        .await
        .map_err(external)?;
    let mut out = Vec::new();
    for batch in &batches {
        let text = |i: usize| -> Result<StringArray, FlightError> {
            Ok(cast(batch.column(i), &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let (catalogs, schemas, tables, types) = (text(0)?, text(1)?, text(2)?, text(3)?);
        for i in 0..batch.num_rows() {
            out.push(TableEntry {
                catalog: catalogs.value(i).to_string(),
                schema: schemas.value(i).to_string(),
                table: tables.value(i).to_string(),
                // information_schema says BASE TABLE; Flight SQL and JDBC say TABLE.
                table_type: match types.value(i) {
                    "BASE TABLE" => "TABLE".to_string(),
                    other => other.to_string(),
                },
            });
        }
    }
    Ok(out)
}

/// GetCatalogs for a session.
pub fn catalogs(ctx: &SessionContext) -> Result<RecordBatch, FlightError> {
    let mut builder = GetCatalogsBuilder::new();
    let mut names = ctx.catalog_names();
    names.sort();
    for name in names {
        builder.append(name);
    }
    builder.build()
}

/// GetDbSchemas for a session, filters applied.
pub async fn db_schemas(
    ctx: &SessionContext,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    let mut seen = BTreeSet::new();
    for entry in list_tables(ctx).await? {
        if seen.insert((entry.catalog.clone(), entry.schema.clone())) {
            builder.append(entry.catalog, entry.schema);
        }
    }
    builder.build()
}

/// GetTables for a session, filters applied, schemas included when asked.
pub async fn tables(
    ctx: &SessionContext,
    query: CommandGetTables,
) -> Result<RecordBatch, FlightError> {
    let include_schema = query.include_schema;
    let mut builder: GetTablesBuilder = query.into_builder();
    let empty = Schema::empty();
    for entry in list_tables(ctx).await? {
        let schema = if include_schema {
            let reference = TableReference::full(
                entry.catalog.as_str(),
                entry.schema.as_str(),
                entry.table.as_str(),
            );
            let provider = ctx
                .table_provider(reference)
                .await
                .map_err(|e| FlightError::ExternalError(Box::new(e)))?;
            wire_schema(&provider.schema())
        } else {
            Arc::new(empty.clone())
        };
        builder.append(
            entry.catalog,
            entry.schema,
            entry.table,
            entry.table_type,
            &schema,
        )?;
    }
    builder.build()
}

/// The schema of GetPrimaryKeys results.
pub fn primary_keys_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("catalog_name", DataType::Utf8, true),
            Field::new("db_schema_name", DataType::Utf8, true),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("key_name", DataType::Utf8, true),
            Field::new("key_sequence", DataType::Int32, false),
        ]))
    });
    SCHEMA.clone()
}

/// GetTableTypes.
pub fn table_types() -> Result<RecordBatch, FlightError> {
    let mut builder = CommandGetTableTypes::default().into_builder();
    for table_type in TABLE_TYPES {
        builder.append(table_type);
    }
    builder.build()
}

/// GetPrimaryKeys: a canonical table's natural key (the columns that
/// identify a row) is its primary key. Other tables have none.
pub fn primary_keys(
    catalog: Option<&str>,
    db_schema: Option<&str>,
    table: &str,
) -> Result<RecordBatch, FlightError> {
    let ours = catalog.is_none_or(|c| c == CATALOG) && db_schema.is_none_or(|s| s == SCHEMA);
    let key: &[&str] = match table.parse::<CanonicalTable>() {
        Ok(t) if ours => t.def().natural_key,
        _ => &[],
    };
    let n = key.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![CATALOG; n])),
        Arc::new(StringArray::from(vec![SCHEMA; n])),
        Arc::new(StringArray::from(vec![table; n])),
        Arc::new(StringArray::from(key.to_vec())),
        Arc::new(StringArray::from(vec![format!("{table}_natural_key"); n])),
        Arc::new(Int32Array::from_iter_values(1..=n as i32)),
    ];
    Ok(RecordBatch::try_new(primary_keys_schema(), columns)?)
}

/// The schema of GetExportedKeys, GetImportedKeys and GetCrossReference results.
pub fn foreign_keys_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("pk_catalog_name", DataType::Utf8, true),
            Field::new("pk_db_schema_name", DataType::Utf8, true),
            Field::new("pk_table_name", DataType::Utf8, false),
            Field::new("pk_column_name", DataType::Utf8, false),
            Field::new("fk_catalog_name", DataType::Utf8, true),
            Field::new("fk_db_schema_name", DataType::Utf8, true),
            Field::new("fk_table_name", DataType::Utf8, false),
            Field::new("fk_column_name", DataType::Utf8, false),
            Field::new("key_sequence", DataType::Int32, false),
            Field::new("fk_key_name", DataType::Utf8, true),
            Field::new("pk_key_name", DataType::Utf8, true),
            Field::new("update_rule", DataType::UInt8, false),
            Field::new("delete_rule", DataType::UInt8, false),
        ]))
    });
    SCHEMA.clone()
}

/// Foreign keys: Delta tables declare none, so the answer is always empty
/// (with the spec's schema, which is what drivers check).
pub fn foreign_keys() -> RecordBatch {
    RecordBatch::new_empty(foreign_keys_schema())
}

/// SqlInfo: what the server is and which SQL it speaks.
pub fn sql_info() -> &'static SqlInfoData {
    static DATA: LazyLock<SqlInfoData> = LazyLock::new(build_sql_info);
    &DATA
}

fn build_sql_info() -> SqlInfoData {
    let functions = FunctionLists::of(&SessionContext::new());
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Gyrus");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59.3");
    // Client SQL cannot change data; ingest goes through bulk ingestion.
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // Unquoted identifiers fold to lower case; quoted ones keep their case.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // ASC puts NULLs last, DESC first: NULLs sort as the highest value.
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    let keywords: Vec<String> = ALL_KEYWORDS.iter().map(|k| k.to_string()).collect();
    b.append(SqlInfo::SqlKeywords, keywords);
    b.append(SqlInfo::SqlNumericFunctions, functions.numeric);
    b.append(SqlInfo::SqlStringFunctions, functions.string);
    b.append(SqlInfo::SqlSystemFunctions, functions.system);
    b.append(SqlInfo::SqlDatetimeFunctions, functions.datetime);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsConvert, supports_convert());
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bit masks: GROUP BY of columns not selected (0) and beyond the select list (1).
    b.append(SqlInfo::SqlSupportedGroupBy, 0b11_i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        (1 << SupportedSqlGrammar::SqlMinimumGrammar as i32)
            | (1 << SupportedSqlGrammar::SqlCoreGrammar as i32),
    );
    // ANSI SQL-92 entry level (bit 0).
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b1_i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0_i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0_i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0_i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Comparisons, EXISTS, IN and quantified subqueries (bits 0-3).
    b.append(SqlInfo::SqlSupportedSubqueries, 0b1111_i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 0b11_i32);
    // 0: no fixed limit.
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        b.append(limit, 0_i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    // One statement per request.
    b.append(SqlInfo::SqlMaxStatements, 1_i64);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0_i32);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0_i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    // Forward-only result sets (bit 1), read-only concurrency (bit 1).
    b.append(SqlInfo::SqlSupportedResultSetTypes, 0b10_i32);
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0_i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        0b10_i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0_i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0_i32,
    );
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build()
        .expect("the SqlInfo values are well-typed constants")
}

/// Which SQL types CAST converts between (the SqlSupportsConvert map).
fn supports_convert() -> BTreeMap<i32, Vec<i32>> {
    use SqlSupportsConvert as C;
    let numeric = [
        C::SqlConvertBigint,
        C::SqlConvertInteger,
        C::SqlConvertSmallint,
        C::SqlConvertTinyint,
        C::SqlConvertDecimal,
        C::SqlConvertNumeric,
        C::SqlConvertFloat,
        C::SqlConvertReal,
    ];
    let text = [
        C::SqlConvertVarchar,
        C::SqlConvertChar,
        C::SqlConvertLongvarchar,
    ];
    let mut map: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    let mut allow = |from: &[C], to: &[C]| {
        for f in from {
            map.entry(*f as i32)
                .or_default()
                .extend(to.iter().map(|t| *t as i32));
        }
    };
    allow(&numeric, &numeric);
    allow(&numeric, &text);
    allow(&[C::SqlConvertBit], &numeric);
    allow(&[C::SqlConvertBit], &text);
    allow(&text, &numeric);
    allow(&text, &text);
    allow(
        &text,
        &[C::SqlConvertDate, C::SqlConvertTimestamp, C::SqlConvertTime],
    );
    allow(&[C::SqlConvertDate], &[C::SqlConvertTimestamp]);
    allow(
        &[C::SqlConvertDate, C::SqlConvertTimestamp, C::SqlConvertTime],
        &text,
    );
    allow(
        &[C::SqlConvertTimestamp],
        &[C::SqlConvertDate, C::SqlConvertTime],
    );
    allow(
        &[C::SqlConvertBinary, C::SqlConvertVarbinary],
        &[C::SqlConvertVarbinary],
    );
    map.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Function names by the section of DataFusion's documentation they belong to.
struct FunctionLists {
    numeric: Vec<String>,
    string: Vec<String>,
    datetime: Vec<String>,
    system: Vec<String>,
}

impl FunctionLists {
    fn of(ctx: &SessionContext) -> Self {
        let state = ctx.state();
        let mut sets: [BTreeSet<String>; 4] = Default::default();
        for (name, udf) in state.scalar_functions() {
            let section = udf.documentation().map_or("", |d| d.doc_section.label);
            let slot = match section {
                "Math Functions" => 0,
                "String Functions" | "Binary String Functions" | "Regular Expression Functions" => {
                    1
                }
                "Time and Date Functions" => 2,
                _ => 3,
            };
            sets[slot].insert(name.to_uppercase());
        }
        let [numeric, string, datetime, system] = sets.map(|s| s.into_iter().collect());
        FunctionLists {
            numeric,
            string,
            datetime,
            system,
        }
    }
}

/// GetXdbcTypeInfo: the SQL types a result column can have.
pub fn xdbc_type_info() -> &'static XdbcTypeInfoData {
    static DATA: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
        let mut b = XdbcTypeInfoDataBuilder::new();
        let plain = |name: &str, data_type: XdbcDataType| XdbcTypeInfo {
            type_name: name.to_string(),
            data_type,
            column_size: None,
            literal_prefix: None,
            literal_suffix: None,
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: false,
            searchable: Searchable::Full,
            unsigned_attribute: Some(false),
            fixed_prec_scale: false,
            auto_increment: Some(false),
            local_type_name: Some(name.to_string()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: None,
            interval_precision: None,
        };
        let number = |name: &str, t: XdbcDataType, size: i32| XdbcTypeInfo {
            column_size: Some(size),
            num_prec_radix: Some(10),
            ..plain(name, t)
        };
        let quoted = |name: &str, t: XdbcDataType| XdbcTypeInfo {
            literal_prefix: Some("'".into()),
            literal_suffix: Some("'".into()),
            unsigned_attribute: None,
            ..plain(name, t)
        };
        b.append(XdbcTypeInfo {
            column_size: Some(1),
            unsigned_attribute: None,
            ..plain("BOOLEAN", XdbcDataType::XdbcBit)
        });
        b.append(number("TINYINT", XdbcDataType::XdbcTinyint, 3));
        b.append(number("SMALLINT", XdbcDataType::XdbcSmallint, 5));
        b.append(number("INTEGER", XdbcDataType::XdbcInteger, 10));
        b.append(number("BIGINT", XdbcDataType::XdbcBigint, 19));
        b.append(number("REAL", XdbcDataType::XdbcReal, 7));
        b.append(number("DOUBLE", XdbcDataType::XdbcDouble, 15));
        b.append(XdbcTypeInfo {
            create_params: Some(vec!["precision".into(), "scale".into()]),
            fixed_prec_scale: true,
            minimum_scale: Some(0),
            maximum_scale: Some(38),
            ..number("DECIMAL", XdbcDataType::XdbcDecimal, 38)
        });
        b.append(XdbcTypeInfo {
            case_sensitive: true,
            ..quoted("VARCHAR", XdbcDataType::XdbcVarchar)
        });
        b.append(XdbcTypeInfo {
            literal_prefix: Some("X'".into()),
            ..quoted("BINARY", XdbcDataType::XdbcVarbinary)
        });
        b.append(XdbcTypeInfo {
            literal_prefix: Some("DATE '".into()),
            column_size: Some(10),
            datetime_subcode: None,
            ..quoted("DATE", XdbcDataType::XdbcDate)
        });
        b.append(XdbcTypeInfo {
            literal_prefix: Some("TIME '".into()),
            ..quoted("TIME", XdbcDataType::XdbcTime)
        });
        b.append(XdbcTypeInfo {
            literal_prefix: Some("TIMESTAMP '".into()),
            sql_data_type: XdbcDataType::XdbcDatetime,
            datetime_subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
            ..quoted("TIMESTAMP", XdbcDataType::XdbcTimestamp)
        });
        b.append(XdbcTypeInfo {
            literal_prefix: Some("INTERVAL '".into()),
            ..quoted("INTERVAL", XdbcDataType::XdbcInterval)
        });
        b.build()
            .expect("the XDBC type rows are well-typed constants")
    });
    &DATA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_info_answers_what_jdbc_and_tableau_read() {
        let info = sql_info();
        let batch = info
            .record_batch([
                SqlInfo::FlightSqlServerName as u32,
                SqlInfo::SqlIdentifierQuoteChar as u32,
                SqlInfo::SqlKeywords as u32,
                SqlInfo::SqlTransactionsSupported as u32,
            ])
            .unwrap();
        assert_eq!(batch.num_rows(), 4);
        let functions = FunctionLists::of(&SessionContext::new());
        assert!(functions.numeric.contains(&"ABS".to_string()));
        assert!(functions.string.contains(&"LOWER".to_string()));
        assert!(functions.datetime.contains(&"DATE_TRUNC".to_string()));
    }

    #[test]
    fn natural_keys_are_primary_keys() {
        let keys = primary_keys(None, None, "ad_performance").unwrap();
        assert!(keys.num_rows() >= 5);
        assert_eq!(keys.schema(), primary_keys_schema());
        assert_eq!(
            primary_keys(Some("other"), None, "ad_performance")
                .unwrap()
                .num_rows(),
            0
        );
        assert_eq!(primary_keys(None, None, "nope").unwrap().num_rows(), 0);
        assert_eq!(foreign_keys().schema(), foreign_keys_schema());
    }
}
