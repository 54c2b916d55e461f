//! Money read from text, exactly: the one parser for every amount that
//! arrives as characters (CSV and NDJSON uploads, connectors).
//!
//! arrow-cast's decimal parser (arrow 59) counts digits in a `u8` and the
//! exponent in an `i16` with wrapping arithmetic: in a release build
//! `"1E65546"` reads as `1e10` and 256 digits wrap to garbage, silently.
//! Amounts are therefore read as text and converted here, where every step
//! is checked and a value the column cannot hold is refused by name.
//!
//! ```
//! use gyrus_engine::money;
//! assert_eq!(money::parse("12.34").unwrap(), 12_340_000);
//! assert_eq!(money::parse("1.5e3").unwrap(), 1_500_000_000);
//! assert_eq!(money::parse("0.0000005").unwrap(), 1); // rounded half away from zero
//! assert!(money::parse("1E65546").is_err());
//! assert!(money::parse("12,34").is_err());
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::error::ArrowError;

use crate::schema::{MONEY, MONEY_PRECISION, MONEY_SCALE};

/// Exponents are read up to this many digits; beyond, the value is refused
/// as too large (or rounds to zero when negative).
const EXPONENT_DIGITS: usize = 6;

/// `text` as money in units of 10^-6: an optional sign, digits with an
/// optional point, an optional exponent (`e`/`E`, optional sign, digits).
/// More than six decimals round half away from zero; surrounding spaces
/// are ignored. The error says why, in words a person can act on.
pub fn parse(text: &str) -> Result<i128, String> {
    let not_amount = || format!("{:?} is not an amount", shorten(text));
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], Some(&t[at + 1..])),
        None => (t, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return Err(not_amount());
    }
    // The exponent, saturated: beyond EXPONENT_DIGITS digits only its sign matters.
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let (sign, digits) = match e.as_bytes().first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if digits.is_empty() || !all_digits(digits) {
                return Err(not_amount());
            }
            let digits = digits.trim_start_matches('0');
            if digits.len() > EXPONENT_DIGITS {
                sign * 10i64.pow(EXPONENT_DIGITS as u32)
            } else {
                sign * digits.parse::<i64>().unwrap_or(0)
            }
        }
    };
    // The significant digits, and where the unit of 10^-6 falls among them.
    let digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .skip_while(|&d| d == 0)
        .collect();
    if digits.is_empty() {
        return Ok(0);
    }
    // value = digits × 10^(shift - 6)
    let shift = exponent - fraction.len() as i64 + i64::from(MONEY_SCALE);
    let kept = digits.len() as i64 + shift; // digits left of the 10^-6 place
    let limit = i64::from(MONEY_PRECISION);
    if kept > limit {
        return Err(too_large(text));
    }
    let mut units: i128 = 0;
    for i in 0..usize::try_from(kept).unwrap_or(0) {
        units = units * 10 + i128::from(digits.get(i).copied().unwrap_or(0));
    }
    // Round half away from zero on the first digit dropped.
    let first_dropped = usize::try_from(kept)
        .ok()
        .and_then(|at| digits.get(at).copied());
    if first_dropped.is_some_and(|d| d >= 5) {
        units += 1;
    }
    if units >= 10i128.pow(u32::from(MONEY_PRECISION)) {
        return Err(too_large(text));
    }
    Ok(if negative { -units } else { units })
}

/// The field as a text format (CSV, JSON) is read: an amount as `Utf8`,
/// for [`from_text`] to convert exactly; any other field unchanged.
pub fn read_as_text(field: Field) -> Field {
    if field.data_type() == &MONEY {
        field.with_data_type(DataType::Utf8)
    } else {
        field
    }
}

fn too_large(text: &str) -> String {
    format!(
        "{:?} is too large for an amount (at most {} digits before the point)",
        shorten(text),
        MONEY_PRECISION as i8 - MONEY_SCALE
    )
}

/// Converts a text column to money; the error gives the 0-based row at
/// fault and why. Nulls stay null.
pub fn from_text(array: &StringArray) -> Result<Decimal128Array, (usize, String)> {
    array
        .iter()
        .enumerate()
        .map(|(row, v)| v.map(parse).transpose().map_err(|e| (row, e)))
        .collect::<Result<Decimal128Array, _>>()?
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .map_err(|e| (0, e.to_string()))
}

/// At most 40 characters of a value, for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A money column at the tables' precision and scale, from amounts in
/// currency units (model estimates: a negative one is written as 0).
pub fn column_from_units(values: impl Iterator<Item = f64>) -> Result<ArrayRef, ArrowError> {
    let scale = 10f64.powi(i32::from(MONEY_SCALE));
    let array: Decimal128Array = values
        .map(|v| (v.max(0.0) * scale).round() as i128)
        .collect();
    Ok(Arc::new(
        array.with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn amounts_read_exactly_and_round_half_away_from_zero() {
        for (text, units) in [
            ("0", 0),
            ("12.34", 12_340_000),
            ("-12.34", -12_340_000),
            ("+7", 7_000_000),
            (" 7.5 ", 7_500_000),
            (".5", 500_000),
            ("5.", 5_000_000),
            ("0001.000000", 1_000_000),
            ("1.1234565", 1_123_457),
            ("1.1234564999", 1_123_456),
            ("-1.1234565", -1_123_457),
            ("0.0000005", 1),
            ("0.0000004999", 0),
            ("1e-7", 0),
            ("5E-7", 1),
            ("1.5e3", 1_500_000_000),
            ("15e-1", 1_500_000),
            ("1e-1000000000000", 0),
            ("999999999999.999999", 999_999_999_999_999_999),
            ("123456789012.3456785", 123_456_789_012_345_679),
            ("0.00000000000000000000000000000000000000000000001", 0),
            (
                "00000000000000000000000000000000000000000000000001",
                1_000_000,
            ),
        ] {
            assert_eq!(parse(text), Ok(units), "{text}");
        }
    }

    #[test]
    fn what_arrow_would_wrap_or_misread_is_refused() {
        let long = format!("1{}", "0".repeat(256));
        for text in [
            "1E65546",
            "1e19",
            "1e12",
            "999999999999.9999995",
            "1000000000000",
            long.as_str(),
            "1e99999999999999999999",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("too large"), "{text}: {err}");
        }
        for text in [
            "", " ", "-", ".", "e5", "1e", "1e+", "1.2.3", "12,34", "NaN", "inf", "1e5.5", "--1",
            "0x10", "1_000",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("is not an amount"), "{text}: {err}");
        }
        assert!(parse(&"9".repeat(5000)).unwrap_err().len() < 120);
    }

    #[test]
    fn a_text_column_converts_with_its_row_at_fault() {
        let ok = from_text(&StringArray::from(vec![Some("1.5"), None, Some("2")])).unwrap();
        assert_eq!(ok.value(0), 1_500_000);
        assert!(ok.is_null(1));
        assert_eq!(ok.precision(), MONEY_PRECISION);
        let (row, err) =
            from_text(&StringArray::from(vec![Some("1"), Some("2"), Some("lots")])).unwrap_err();
        assert_eq!(row, 2);
        assert!(err.contains("lots"), "{err}");
    }
}
