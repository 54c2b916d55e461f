//! Prepared statements: created by an action, parameters bound by DoPut,
//! executed through GetFlightInfo + DoGet (as often as the client likes),
//! closed by an action. Each belongs to the key that created it.
//!
//! A statement keeps its SQL, not a plan: every execution plans afresh over
//! the tenant's current tables, so a statement a BI tool keeps open for
//! hours still sees new data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use gyrus_engine::datafusion::common::ScalarValue;
use gyrus_engine::datafusion::prelude::DataFrame;
use gyrus_engine::datafusion::sql::sqlparser::dialect::GenericDialect;
use gyrus_engine::datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rand::RngExt as _;
use tonic::Status;

use crate::auth::Identity;
use crate::status::engine_status;

/// A statement as the server keeps it.
#[derive(Clone)]
pub struct Prepared {
    owner: String,
    /// The SQL with `?` placeholders numbered (`$1`, `$2`, ...).
    pub sql: String,
    /// One field per placeholder, in order, in wire types (what clients see);
    /// Utf8 where the type cannot be inferred.
    pub parameters: SchemaRef,
    /// Rows of bound parameter values (each row runs the statement once).
    pub bound: Option<RecordBatch>,
    last_used: Instant,
}

/// Statements unused for this long are dropped (clients that never close).
const IDLE_TTL: Duration = Duration::from_secs(3600);

/// The prepared statements of the server.
#[derive(Default)]
pub struct PreparedStatements {
    entries: Mutex<HashMap<Vec<u8>, Prepared>>,
}

impl PreparedStatements {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Prepared>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, owner: &Identity, sql: String, parameters: SchemaRef) -> Vec<u8> {
        let handle = rand::rng().random::<[u8; 16]>().to_vec();
        let mut entries = self.lock();
        entries.retain(|_, p| p.last_used.elapsed() < IDLE_TTL);
        entries.insert(
            handle.clone(),
            Prepared {
                owner: owner.key_id.clone(),
                sql,
                parameters,
                bound: None,
                last_used: Instant::now(),
            },
        );
        handle
    }

    /// The statement, if `owner` created it.
    pub fn get(&self, owner: &Identity, handle: &[u8]) -> Result<Prepared, Status> {
        let mut entries = self.lock();
        let prepared = entries
            .get_mut(handle)
            .filter(|p| p.owner == owner.key_id)
            .ok_or_else(unknown)?;
        prepared.last_used = Instant::now();
        Ok(prepared.clone())
    }

    pub fn bind(&self, owner: &Identity, handle: &[u8], values: RecordBatch) -> Result<(), Status> {
        let mut entries = self.lock();
        let prepared = entries
            .get_mut(handle)
            .filter(|p| p.owner == owner.key_id)
            .ok_or_else(unknown)?;
        if values.num_columns() != prepared.parameters.fields().len() {
            return Err(Status::invalid_argument(format!(
                "the statement takes {} parameters; {} were bound",
                prepared.parameters.fields().len(),
                values.num_columns()
            )));
        }
        prepared.bound = Some(values);
        Ok(())
    }

    pub fn close(&self, owner: &Identity, handle: &[u8]) -> Result<(), Status> {
        let mut entries = self.lock();
        match entries.get(handle) {
            Some(p) if p.owner == owner.key_id => {
                entries.remove(handle);
                Ok(())
            }
            _ => Err(unknown()),
        }
    }
}

fn unknown() -> Status {
    Status::not_found("unknown or closed prepared statement")
}

/// Numbers JDBC/ODBC-style `?` placeholders as `$1`, `$2`, ... (DataFusion's
/// spelling). Strings, quoted names and comments are left alone.
pub fn number_placeholders(sql: &str) -> Result<String, Status> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Status::invalid_argument(format!("SQL syntax error: {e}")))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Byte offset of a 1-based line/column (columns count characters).
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get((line as usize).checked_sub(1)?)?;
        let (i, _) = sql[start..]
            .char_indices()
            .chain(std::iter::once((sql.len() - start, ' ')))
            .nth((column as usize).checked_sub(1)?)?;
        Some(start + i)
    };
    let mut out = String::with_capacity(sql.len() + 8);
    let mut copied = 0;
    let mut n = 0;
    for token in tokens {
        if token.token == Token::Placeholder("?".into()) {
            let at = offset(token.span.start.line, token.span.start.column)
                .filter(|&i| sql[i..].starts_with('?'))
                .ok_or_else(|| Status::internal("cannot locate a `?` placeholder"))?;
            n += 1;
            out.push_str(&sql[copied..at]);
            out.push_str(&format!("${n}"));
            copied = at + 1;
        }
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// The parameters a planned statement takes, `$1`, `$2`, ... in order.
pub fn parameter_schema(df: &DataFrame) -> Result<SchemaRef, Status> {
    let found = df
        .logical_plan()
        .get_parameter_fields()
        .map_err(|e| engine_status(e.into()))?;
    let mut numbered: Vec<(usize, String, Option<DataType>)> = Vec::new();
    for (id, field) in found {
        let n = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "named parameter `{id}`: use `?` or `$1`, `$2`, ..."
                ))
            })?;
        numbered.push((n, id, field.map(|f| f.data_type().clone())));
    }
    numbered.sort();
    if let Some(gap) = numbered.iter().enumerate().find(|(i, (n, ..))| *n != i + 1) {
        return Err(Status::invalid_argument(format!(
            "parameters must be numbered $1, $2, ... without gaps; ${} is missing",
            gap.0 + 1
        )));
    }
    let fields: Vec<Field> = numbered
        .into_iter()
        .map(|(_, id, t)| Field::new(id, t.unwrap_or(DataType::Utf8), true))
        .collect();
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// The statement with row `row` of `bound` as its parameter values, cast to
/// `parameters` (the plan's own types, from [`parameter_schema`]).
pub fn bind_row(
    df: DataFrame,
    parameters: &Schema,
    bound: &RecordBatch,
    row: usize,
) -> Result<DataFrame, Status> {
    let values = bound
        .columns()
        .iter()
        .zip(parameters.fields())
        .map(|(column, field)| {
            let value = ScalarValue::try_from_array(column, row)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            // Values arrive in the client's types; the plan expects the inferred ones.
            if value.data_type() == *field.data_type() {
                Ok(value)
            } else {
                value.cast_to(field.data_type()).map_err(|e| {
                    Status::invalid_argument(format!(
                        "parameter {}: cannot use {value:?} as {}: {e}",
                        field.name(),
                        field.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>, Status>>()?;
    df.with_param_values(values)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_outside_strings_and_comments() {
        assert_eq!(
            number_placeholders(
                "SELECT ? , '?' AS q, \"?\" FROM t -- ?\nWHERE a = ? AND b = 'it''s'"
            )
            .unwrap(),
            "SELECT $1 , '?' AS q, \"?\" FROM t -- ?\nWHERE a = $2 AND b = 'it''s'"
        );
        assert_eq!(
            number_placeholders("SELECT 'é', ?").unwrap(),
            "SELECT 'é', $1"
        );
        assert_eq!(number_placeholders("SELECT $1").unwrap(), "SELECT $1");
    }
}
