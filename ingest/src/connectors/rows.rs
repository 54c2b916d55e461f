//! Canonical rows as connectors build them, and the exact conversions from
//! the platforms' number formats (micros, decimal strings, minor units).

use std::collections::HashMap;
use std::sync::Arc;

use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::datatypes::Schema;
use gyrus_engine::datafusion::arrow::json::ReaderBuilder;
use gyrus_engine::schema::CanonicalTable;
use serde_json::{Map, Value};

/// One canonical row: column name → value (money as a decimal string, dates
/// as `YYYY-MM-DD`, times as RFC 3339), typed when the batch is built.
pub type Row = Map<String, Value>;

/// Rows of one table, deduplicated by its natural key: a page served twice,
/// or a row repeated across pages, lands once (the last copy wins).
pub struct Rows {
    table: CanonicalTable,
    index: HashMap<String, usize>,
    rows: Vec<Row>,
}

impl Rows {
    pub fn new(table: CanonicalTable) -> Self {
        Rows {
            table,
            index: HashMap::new(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; true when its key was new.
    pub fn insert(&mut self, row: Row) -> bool {
        let key = self.key(&row);
        match self.index.get(&key) {
            Some(&at) => {
                self.rows[at] = row;
                false
            }
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
                true
            }
        }
    }

    pub fn contains(&self, row: &Row) -> bool {
        self.index.contains_key(&self.key(row))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn key(&self, row: &Row) -> String {
        let mut key = String::new();
        for column in self.table.def().natural_key {
            match &row.get(*column) {
                Some(Value::String(s)) => key.push_str(s),
                Some(Value::Null) | None => key.push('\u{0}'),
                Some(other) => key.push_str(&other.to_string()),
            }
            key.push('\u{1f}');
        }
        key
    }

    /// The rows as one batch of the table's schema. A value of the wrong
    /// shape is an error naming the column, not a silent null.
    pub fn into_batch(self) -> Result<RecordBatch, String> {
        let schema = self.table.schema();
        // Amounts as text, converted by `money_from_text`.
        let text_schema = Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| gyrus_engine::money::read_as_text(f.as_ref().clone()))
                .collect::<Vec<_>>(),
        );
        let mut decoder = ReaderBuilder::new(Arc::new(text_schema))
            .with_batch_size(self.rows.len().max(1))
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        // Through JSON text rather than `serialize`: the text path parses
        // decimal strings exactly.
        let mut text = Vec::with_capacity(self.rows.len() * 256);
        for row in &self.rows {
            serde_json::to_writer(&mut text, row).map_err(|e| e.to_string())?;
            text.push(b'\n');
        }
        let mut rest = &text[..];
        while !rest.is_empty() {
            let read = decoder
                .decode(rest)
                .map_err(|e| format!("{}: {e}", self.table))?;
            if read == 0 {
                break;
            }
            rest = &rest[read..];
        }
        let Some(text) = decoder
            .flush()
            .map_err(|e| format!("{}: {e}", self.table))?
        else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let typed = crate::money_from_text(self.table, self.table.name(), vec![text])
            .map_err(|e| e.to_string())?;
        let columns = typed
            .first()
            .map(|b| b.columns().to_vec())
            .unwrap_or_default();
        RecordBatch::try_new(schema, columns).map_err(|e| format!("{}: {e}", self.table))
    }
}

/// Text of a JSON string or number (platforms send IDs and counts as either).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A count sent as a string or a number; absent (a proto3 zero) is 0.
pub fn count(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number")),
        other => Err(format!("{other} is not a number")),
    }
}

/// A fractional number sent as a string or a number; absent is 0.
pub fn number(value: &Value) -> Result<f64, String> {
    match value {
        Value::Null => Ok(0.0),
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

/// Money sent as a decimal string ("12.34") or a JSON number, as an exact
/// decimal string with six places; absent or empty (a cleared CRM field) is
/// zero. More than six decimals (GA4 sends doubles as text) round to six.
pub fn money(value: &Value) -> Result<String, String> {
    match value {
        Value::Null => Ok("0".into()),
        Value::String(s) if s.trim().is_empty() => Ok("0".into()),
        // A double's text is the shortest that reads back as it.
        Value::String(_) | Value::Number(_) => {
            let text = text(value).unwrap_or_default();
            gyrus_engine::money::parse(&text).map(|units| minor_to_decimal(units, 6))
        }
        other => Err(format!("{other} is not an amount")),
    }
}

/// Micros (Google's `cost_micros`) as an exact decimal string.
pub fn micros(value: &Value) -> Result<String, String> {
    let units = count(value)? as i128;
    Ok(minor_to_decimal(units, 6))
}

/// An amount in a currency's minor units (Stripe) as a decimal string in its
/// major unit: cents for most, none for zero-decimal currencies (JPY), three
/// places for BHD and friends.
pub fn minor_units(amount: i64, currency: &str) -> String {
    const ZERO: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    const THREE: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];
    let currency = currency.to_ascii_lowercase();
    let places = if ZERO.contains(&currency.as_str()) {
        0
    } else if THREE.contains(&currency.as_str()) {
        3
    } else {
        2
    };
    minor_to_decimal(amount as i128, places)
}

/// A decimal string as integer micros, for exact sums of money.
pub fn to_micros(text: &str) -> Result<i128, String> {
    gyrus_engine::money::parse(text)
}

/// Integer units of 10^-places as a decimal string.
pub fn minor_to_decimal(units: i128, places: u32) -> String {
    if places == 0 {
        return units.to_string();
    }
    let scale = 10i128.pow(places);
    let sign = if units < 0 { "-" } else { "" };
    let units = units.abs();
    format!(
        "{sign}{}.{:0width$}",
        units / scale,
        units % scale,
        width = places as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_exact() {
        assert_eq!(micros(&json!("12340000")).unwrap(), "12.340000");
        assert_eq!(micros(&json!("-5")).unwrap(), "-0.000005");
        assert_eq!(micros(&Value::Null).unwrap(), "0.000000");
        assert_eq!(minor_units(12345, "usd"), "123.45");
        assert_eq!(minor_units(12345, "JPY"), "12345");
        assert_eq!(minor_units(12345, "kwd"), "12.345");
        assert_eq!(money(&json!("12.34")).unwrap(), "12.340000");
        assert_eq!(money(&json!("")).unwrap(), "0");
        assert_eq!(money(&json!(40.5)).unwrap(), "40.500000");
        assert_eq!(money(&json!(1200)).unwrap(), "1200.000000");
        assert!(money(&json!("12,34")).is_err());
        assert_eq!(money(&json!("1.1234567")).unwrap(), "1.123457");
        // Exact where a double would not be.
        assert_eq!(
            money(&json!("123456789012.1234565")).unwrap(),
            "123456789012.123457"
        );
        assert!(money(&json!("1.2.3")).is_err());
        assert!(money(&json!(1e300)).unwrap_err().contains("too large"));
        assert!(money(&json!("1E65546")).unwrap_err().contains("too large"));
    }

    #[test]
    fn rows_dedupe_by_key_and_type_on_build() {
        let mut rows = Rows::new(CanonicalTable::Orders);
        let order = |id: &str, amount: &str| {
            json!({"order_id": id, "customer_id": "c", "created_at": "2026-03-01T10:00:00Z",
                   "amount": amount, "currency": "USD", "status": "paid", "source": "stripe",
                   "utm_source": null, "utm_campaign": null})
            .as_object()
            .cloned()
            .unwrap()
        };
        assert!(rows.insert(order("1", "1.10")));
        assert!(!rows.insert(order("1", "1.20")));
        assert!(rows.insert(order("2", "3")));
        assert_eq!(rows.len(), 2);
        let batch = rows.into_batch().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let amounts = gyrus_engine::datafusion::arrow::util::pretty::pretty_format_columns(
            "amount",
            &[batch.column_by_name("amount").unwrap().clone()],
        )
        .unwrap()
        .to_string();
        assert!(
            amounts.contains("1.200000") && amounts.contains("3.000000"),
            "{amounts}"
        );
    }
}
