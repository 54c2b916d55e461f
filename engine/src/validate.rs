//! Validation: nothing reaches storage unless every row of the write passes.
//!
//! [`conform`] maps an incoming batch onto a canonical schema by column name
//! (lossless casts only); [`check_rows`] enforces the column rules of
//! [`crate::schema`]. Errors name the table, the column and the first
//! offending rows (1-based across the whole write) with their values.

use std::collections::HashMap;
use std::fmt;

use chrono::{Days, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::day::date_to_day;
use crate::schema::{CanonicalTable, Column, MONEY_SCALE, Rule, is_currency_code};

/// How many offending rows an error lists.
const SHOWN_ROWS: usize = 5;
/// The earliest day any table may hold: real histories go back decades
/// (CDNOW, the reference data set of customer-lifetime models, is 1997–98).
const EARLIEST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => panic!("valid constant"),
};

/// A write was rejected; nothing was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    pub table: String,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub problem: String,
    /// How many rows have the problem (0 when it is about the schema).
    pub count: usize,
    /// The first offending rows: 1-based row number and the value found.
    pub first_rows: Vec<(usize, String)>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}", self.table)?;
        if let Some(column) = &self.column {
            write!(f, ".{column}")?;
        }
        write!(f, ": {}", self.problem)?;
        if self.count > 0 {
            let shown: Vec<String> = self
                .first_rows
                .iter()
                .map(|(row, value)| format!("row {row} ({value})"))
                .collect();
            write!(
                f,
                " in {} row{}; first: {}",
                self.count,
                if self.count == 1 { "" } else { "s" },
                shown.join(", ")
            )?;
        }
        f.write_str("; nothing was written")
    }
}

impl std::error::Error for ValidationError {}

impl ValidationError {
    fn schema(table: CanonicalTable, column: Option<&str>, problem: String) -> Self {
        ValidationError {
            table: table.name().to_string(),
            column: column.map(str::to_string),
            problem,
            count: 0,
            first_rows: Vec::new(),
        }
    }
}

/// Maps `batch` onto the table's canonical schema by column name.
///
/// Missing nullable columns become nulls; missing required columns, unknown
/// columns and types that cannot be converted without loss are errors.
///
/// `row_offset` is the number of rows of the same write before this batch,
/// so row numbers in errors count across the whole write.
pub fn conform(
    table: CanonicalTable,
    batch: &RecordBatch,
    row_offset: usize,
) -> Result<RecordBatch, ValidationError> {
    let def = table.def();
    let incoming = batch.schema();
    for field in incoming.fields() {
        if !def.columns.iter().any(|c| c.name == field.name()) {
            let expected: Vec<_> = def.columns.iter().map(|c| c.name).collect();
            return Err(ValidationError::schema(
                table,
                Some(field.name()),
                format!("unknown column; the columns are: {}", expected.join(", ")),
            ));
        }
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
    for column in &def.columns {
        let array = match incoming.index_of(column.name) {
            Ok(i) => convert(table, column, batch.column(i))?,
            Err(_) if column.nullable => new_null_array(&column.data_type, batch.num_rows()),
            Err(_) => {
                return Err(ValidationError::schema(
                    table,
                    Some(column.name),
                    format!("required column is missing (type {})", column.data_type),
                ));
            }
        };
        if !column.nullable && array.null_count() > 0 {
            let mut bad = Offenders::new(table, column.name, "required value is null", row_offset);
            for row in (0..array.len()).filter(|&i| array.is_null(i)) {
                bad.add(row, || "null".into());
            }
            bad.finish()?;
        }
        arrays.push(array);
    }
    RecordBatch::try_new(table.schema(), arrays)
        .map_err(|e| ValidationError::schema(table, None, e.to_string()))
}

/// Whether `from` converts to `to` without losing information (money from
/// floats is accepted: the source was already inexact, it is rounded to 6 places).
fn lossless(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Int64) => true,
        (Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Float32, Float64) => true,
        (LargeUtf8 | Utf8View, Utf8) => true,
        (Decimal128(p, s), Decimal128(_, to_s)) => *s <= *to_s && (*p as i16 - *s as i16) <= 12,
        (
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Float32 | Float64,
            Decimal128(..),
        ) => true,
        (Date64, Date32) => true,
        (Timestamp(_, tz), Timestamp(TimeUnit::Microsecond, Some(_))) => tz
            .as_deref()
            .is_none_or(|tz| tz == "UTC" || tz == "+00:00" || tz == "Z"),
        (Null, _) => true,
        _ => false,
    }
}

fn convert(
    table: CanonicalTable,
    column: &Column,
    array: &ArrayRef,
) -> Result<ArrayRef, ValidationError> {
    let from = array.data_type();
    if from == &column.data_type {
        return Ok(array.clone());
    }
    if !lossless(from, &column.data_type) {
        return Err(ValidationError::schema(
            table,
            Some(column.name),
            format!("has type {from}; expected {}", column.data_type),
        ));
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, &column.data_type, &options).map_err(|e| {
        ValidationError::schema(
            table,
            Some(column.name),
            format!("cannot convert {from} to {}: {e}", column.data_type),
        )
    })
}

/// Collects offending rows of one column.
struct Offenders<'a> {
    table: CanonicalTable,
    column: &'a str,
    problem: String,
    row_offset: usize,
    count: usize,
    first_rows: Vec<(usize, String)>,
}

impl<'a> Offenders<'a> {
    fn new(
        table: CanonicalTable,
        column: &'a str,
        problem: impl Into<String>,
        row_offset: usize,
    ) -> Self {
        Offenders {
            table,
            column,
            problem: problem.into(),
            row_offset,
            count: 0,
            first_rows: Vec::new(),
        }
    }

    fn add(&mut self, row: usize, value: impl FnOnce() -> String) {
        self.count += 1;
        if self.first_rows.len() < SHOWN_ROWS {
            self.first_rows.push((self.row_offset + row + 1, value()));
        }
    }

    fn finish(self) -> Result<(), ValidationError> {
        if self.count == 0 {
            return Ok(());
        }
        Err(ValidationError {
            table: self.table.name().to_string(),
            column: Some(self.column.to_string()),
            problem: self.problem,
            count: self.count,
            first_rows: self.first_rows,
        })
    }
}

/// Checks every column rule of the table on a batch that already [`conform`]s
/// (`row_offset` as there).
pub fn check_rows(
    table: CanonicalTable,
    batch: &RecordBatch,
    row_offset: usize,
) -> Result<(), ValidationError> {
    let def = table.def();
    let today = Utc::now().date_naive();
    for (column, array) in def.columns.iter().zip(batch.columns()) {
        if column.data_type == DataType::Float64 {
            let values = array.as_primitive::<Float64Type>();
            let mut bad = Offenders::new(
                table,
                column.name,
                "value is not a finite number",
                row_offset,
            );
            for (row, v) in values.iter().enumerate() {
                if let Some(v) = v.filter(|v| !v.is_finite()) {
                    bad.add(row, || v.to_string());
                }
            }
            bad.finish()?;
        }
        match column.rule {
            Rule::Plain => {}
            Rule::NonNegative => check_non_negative(table, column, array, row_offset)?,
            Rule::Probability => {
                let values = array.as_primitive::<Float64Type>();
                let mut bad =
                    Offenders::new(table, column.name, "probability outside [0, 1]", row_offset);
                for (row, v) in values.iter().enumerate() {
                    if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                        bad.add(row, || v.to_string());
                    }
                }
                bad.finish()?;
            }
            Rule::Currency => check_strings(
                table,
                column,
                array,
                row_offset,
                "unknown ISO 4217 currency code",
                is_currency_code,
            )?,
            Rule::OneOf(allowed) => {
                let problem = format!("value is not one of: {}", allowed.join(", "));
                check_strings(table, column, array, row_offset, &problem, |v| {
                    allowed.contains(&v)
                })?
            }
            Rule::Time => {
                let latest = today
                    .checked_add_days(Days::new(def.max_future_days as u64))
                    .unwrap_or(today);
                check_time(table, column, array, row_offset, latest)?
            }
        }
    }
    Ok(())
}

fn check_non_negative(
    table: CanonicalTable,
    column: &Column,
    array: &ArrayRef,
    row_offset: usize,
) -> Result<(), ValidationError> {
    let mut bad = Offenders::new(table, column.name, "value is negative", row_offset);
    match array.data_type() {
        DataType::Int64 => {
            for (row, v) in array.as_primitive::<Int64Type>().iter().enumerate() {
                if let Some(v) = v.filter(|v| *v < 0) {
                    bad.add(row, || v.to_string());
                }
            }
        }
        DataType::Float64 => {
            for (row, v) in array.as_primitive::<Float64Type>().iter().enumerate() {
                if let Some(v) = v.filter(|v| *v < 0.0) {
                    bad.add(row, || v.to_string());
                }
            }
        }
        DataType::Decimal128(..) => {
            let values = array.as_primitive::<Decimal128Type>();
            for (row, v) in values.iter().enumerate() {
                if let Some(v) = v.filter(|v| *v < 0) {
                    bad.add(row, || format_decimal(v, MONEY_SCALE));
                }
            }
        }
        other => {
            return Err(ValidationError::schema(
                table,
                Some(column.name),
                format!("internal: no non-negative check for {other}"),
            ));
        }
    }
    bad.finish()
}

fn check_strings(
    table: CanonicalTable,
    column: &Column,
    array: &ArrayRef,
    row_offset: usize,
    problem: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<(), ValidationError> {
    let mut bad = Offenders::new(table, column.name, problem, row_offset);
    // These columns hold a handful of distinct values: remember each verdict.
    let mut verdicts: HashMap<&str, bool> = HashMap::new();
    let values: &StringArray = array.as_string::<i32>();
    for (row, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let ok = *verdicts.entry(v).or_insert_with(|| valid(v));
            if !ok {
                bad.add(row, || format!("{v:?}"));
            }
        }
    }
    bad.finish()
}

fn check_time(
    table: CanonicalTable,
    column: &Column,
    array: &ArrayRef,
    row_offset: usize,
    latest: NaiveDate,
) -> Result<(), ValidationError> {
    let problem = format!("date outside {EARLIEST_DAY} ..= {latest}");
    let mut bad = Offenders::new(table, column.name, problem, row_offset);
    let (lo, hi) = (
        i64::from(date_to_day(EARLIEST_DAY)),
        i64::from(date_to_day(latest)),
    );
    match array.data_type() {
        DataType::Date32 => {
            for (row, v) in array.as_primitive::<Date32Type>().iter().enumerate() {
                if let Some(v) = v.filter(|v| !(lo..=hi).contains(&(*v as i64))) {
                    bad.add(row, || format_value(array, row, v.to_string()));
                }
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            const MICROS_PER_DAY: i64 = 86_400_000_000;
            let (lo, hi) = (lo * MICROS_PER_DAY, (hi + 1) * MICROS_PER_DAY);
            for (row, v) in array
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .enumerate()
            {
                if let Some(v) = v.filter(|v| !(lo..hi).contains(v)) {
                    bad.add(row, || format_value(array, row, v.to_string()));
                }
            }
        }
        other => {
            return Err(ValidationError::schema(
                table,
                Some(column.name),
                format!("internal: no time check for {other}"),
            ));
        }
    }
    bad.finish()
}

fn format_value(array: &ArrayRef, row: usize, fallback: String) -> String {
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or(fallback)
}

/// Renders an unscaled decimal, e.g. `-1500000` at scale 6 as `-1.500000`.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    use datafusion::arrow::datatypes::DecimalType as _;
    Decimal128Type::format_decimal(unscaled, 38, scale)
}

impl ValidationError {
    /// Rows of one write that share a natural key; `examples` render the first keys.
    pub fn duplicate_keys(table: CanonicalTable, count: usize, examples: Vec<String>) -> Self {
        ValidationError {
            table: table.name().to_string(),
            column: None,
            problem: format!(
                "rows repeat the natural key ({})",
                table.def().natural_key.join(", ")
            ),
            count,
            first_rows: Vec::new(),
        }
        .with_examples(examples)
    }

    fn with_examples(mut self, examples: Vec<String>) -> Self {
        if !examples.is_empty() {
            self.problem = format!("{}: {}", self.problem, examples.join("; "));
        }
        self.count = 0;
        self
    }
}
