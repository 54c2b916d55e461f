//! Days as Arrow's `Date32` counts them (days since 1970-01-01): the one
//! conversion every crate uses between dates and day numbers.
//!
//! ```
//! use chrono::NaiveDate;
//! use gyrus_engine::day::{date_to_day, day_to_date};
//!
//! let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
//! assert_eq!(date_to_day(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
//! assert_eq!(day_to_date(date_to_day(date)), date);
//! ```

use chrono::NaiveDate;
use datafusion::arrow::datatypes::Date32Type;

/// A date as a day number.
pub fn date_to_day(date: NaiveDate) -> i32 {
    Date32Type::from_naive_date(date)
}

/// A day number as a date (1970-01-01 when out of chrono's range).
pub fn day_to_date(day: i32) -> NaiveDate {
    Date32Type::to_naive_date_opt(day).unwrap_or_default()
}
