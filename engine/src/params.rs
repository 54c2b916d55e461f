//! Statement parameters: `?` placeholders, the parameters a plan takes, and
//! binding client values to them. Shared by Flight SQL prepared statements
//! and the HTTP API's `params`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{EngineError, Result};

/// Numbers JDBC/ODBC-style `?` placeholders as `$1`, `$2`, ... (DataFusion's
/// spelling). Strings, quoted names and comments are left alone.
pub fn number_placeholders(sql: &str) -> Result<String> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| EngineError::Query(format!("SQL syntax error: {e}")))?;
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
                .ok_or_else(|| EngineError::Internal("cannot locate a `?` placeholder".into()))?;
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
pub fn parameter_schema(plan: &LogicalPlan) -> Result<SchemaRef> {
    let found = plan.get_parameter_fields()?;
    let mut numbered: Vec<(usize, String, Option<DataType>)> = Vec::new();
    for (id, field) in found {
        let n = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                EngineError::Query(format!(
                    "named parameter `{id}`: use `?` or `$1`, `$2`, ..."
                ))
            })?;
        numbered.push((n, id, field.map(|f| f.data_type().clone())));
    }
    numbered.sort();
    if let Some(gap) = numbered.iter().enumerate().find(|(i, (n, ..))| *n != i + 1) {
        return Err(EngineError::Query(format!(
            "parameters must be numbered $1, $2, ... without gaps; ${} is missing",
            gap.0 + 1
        )));
    }
    let fields: Vec<Field> = numbered
        .into_iter()
        .map(|(_, id, t)| Field::new(id, t.unwrap_or(DataType::Utf8), true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The statement with `values` for `$1`, `$2`, ..., each cast to the type
/// the plan inferred (`parameters`, from [`parameter_schema`]): clients send
/// their own types (a date as text, an id as a number).
pub fn bind(
    plan: LogicalPlan,
    parameters: &Schema,
    values: Vec<ScalarValue>,
) -> Result<LogicalPlan> {
    if values.len() != parameters.fields().len() {
        return Err(EngineError::Query(format!(
            "the statement takes {} parameters; {} were given",
            parameters.fields().len(),
            values.len()
        )));
    }
    let values = values
        .into_iter()
        .zip(parameters.fields())
        .map(|(value, field)| {
            if value.data_type() == *field.data_type() {
                Ok(value)
            } else {
                value.cast_to(field.data_type()).map_err(|e| {
                    EngineError::Query(format!(
                        "parameter {}: cannot use {value} as {}: {e}",
                        field.name(),
                        field.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(plan.with_param_values(values)?)
}

/// The refinement that binds a client's `values` to the statement's
/// parameters (nothing to do when there are neither), as the HTTP API binds
/// a request's `params`.
pub fn binder(values: Vec<ScalarValue>) -> crate::Refine {
    Box::new(move |plan, _| {
        let parameters = parameter_schema(&plan)?;
        if parameters.fields().is_empty() && values.is_empty() {
            return Ok(plan);
        }
        bind(plan, &parameters, values)
    })
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
