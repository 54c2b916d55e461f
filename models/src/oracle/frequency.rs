//! The regular frequencies a dated series may have — day, week, month,
//! quarter, year — inferred from its dates or given, with the seasonal
//! periods and the forecasting configuration of each.
//!
//! Months step by the calendar: a series on the 15th stays on the 15th, and
//! one on month ends stays on month ends (31 January, 29 February, 31
//! March). Steps are counted from the first date, so a grid never drifts.
//!
//! ```
//! use chrono::NaiveDate;
//! use gyrus_models::oracle::frequency::Frequency;
//!
//! let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
//! let dates = [day(2024, 1, 31), day(2024, 2, 29), day(2024, 3, 31)];
//! let grid = Frequency::grid(&dates, None).unwrap();
//! assert_eq!(grid.frequency, Frequency::Month);
//! assert_eq!(grid.frequency.step(day(2024, 1, 31), 3), Some(day(2024, 4, 30)));
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::series_model::SeriesConfig;

/// How often a series has a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

/// Why dates do not make a regular series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("the series has no dates")]
    Empty,
    #[error("the series has {0} twice")]
    Repeated(NaiveDate),
    #[error(
        "the dates {0} and {1} are {2} days apart, which is no regular frequency \
         (day, week, month, quarter or year); give `frequency`"
    )]
    Unknown(NaiveDate, NaiveDate, i64),
    #[error(
        "the series is {frequency} but has no point for {missing} (between {before} and {after})"
    )]
    Gap {
        frequency: Frequency,
        missing: NaiveDate,
        before: NaiveDate,
        after: NaiveDate,
    },
    #[error(
        "the series is {frequency} from {first}, but {date} is not on that grid (the next point after {before} would be {expected})"
    )]
    OffGrid {
        frequency: Frequency,
        first: NaiveDate,
        date: NaiveDate,
        before: NaiveDate,
        expected: NaiveDate,
    },
    #[error("`{0}` is not a frequency; use day, week, month, quarter or year")]
    Name(String),
}

/// Sorted dates placed on their frequency's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub frequency: Frequency,
    pub first: NaiveDate,
    /// Each date's step from the first (strictly increasing).
    pub steps: Vec<u32>,
}

impl Grid {
    /// Points from the first date to the last, missing ones included.
    pub fn len(&self) -> usize {
        self.steps.last().map_or(0, |&s| s as usize + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The date of step `step` (the forecast's steps follow the last).
    pub fn date(&self, step: usize) -> Option<NaiveDate> {
        self.frequency.step(self.first, u32::try_from(step).ok()?)
    }
}

impl Frequency {
    pub const ALL: [Frequency; 5] = [
        Frequency::Day,
        Frequency::Week,
        Frequency::Month,
        Frequency::Quarter,
        Frequency::Year,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Day => "day",
            Frequency::Week => "week",
            Frequency::Month => "month",
            Frequency::Quarter => "quarter",
            Frequency::Year => "year",
        }
    }

    /// The seasonal periods of the frequency, in its steps: a week and a
    /// year of days, a year of weeks, months or quarters; none for years.
    pub fn periods(self) -> &'static [usize] {
        match self {
            Frequency::Day => &[7, 365],
            Frequency::Week => &[52],
            Frequency::Month => &[12],
            Frequency::Quarter => &[4],
            Frequency::Year => &[],
        }
    }

    /// How a series of this frequency is forecast `horizon` steps ahead:
    /// the daily marketing configuration for days; for the others the one
    /// the M3 harness uses (one yearly period, classical decomposition).
    pub fn config(self, horizon: usize) -> SeriesConfig {
        match self {
            Frequency::Day => SeriesConfig::daily(),
            other => SeriesConfig::periodic(other.periods().first().copied().unwrap_or(1), horizon),
        }
    }

    /// The date `steps` steps after `date`; `None` past the calendar's end.
    pub fn step(self, date: NaiveDate, steps: u32) -> Option<NaiveDate> {
        let months = |n: u32| {
            let moved = date.checked_add_months(Months::new(n))?;
            if is_month_end(date) {
                month_end(moved)
            } else {
                Some(moved)
            }
        };
        match self {
            Frequency::Day => date.checked_add_days(Days::new(u64::from(steps))),
            Frequency::Week => date.checked_add_days(Days::new(u64::from(steps) * 7)),
            Frequency::Month => months(steps),
            Frequency::Quarter => months(steps.checked_mul(3)?),
            Frequency::Year => months(steps.checked_mul(12)?),
        }
    }

    /// The frequency whose step the gap from `a` to `b` is, if any.
    fn of_gap(a: NaiveDate, b: NaiveDate) -> Option<Frequency> {
        Frequency::ALL.into_iter().find(|f| f.step(a, 1) == Some(b))
    }

    /// Places sorted or unsorted `dates` on a grid: of `given`, or else of
    /// the frequency of the smallest gap between consecutive dates. Daily
    /// series may miss days (the caller decides what a missing day is); a
    /// series of any other frequency must not miss a point.
    pub fn grid(dates: &[NaiveDate], given: Option<Frequency>) -> Result<Grid, GridError> {
        let mut sorted = dates.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(GridError::Repeated(w[0]));
        }
        let (&first, &last) = match (sorted.first(), sorted.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(GridError::Empty),
        };
        let frequency = match given {
            Some(f) => f,
            None => match sorted.windows(2).min_by_key(|w| (w[1] - w[0]).num_days()) {
                None => Frequency::Day,
                Some(w) => Frequency::of_gap(w[0], w[1]).ok_or(GridError::Unknown(
                    w[0],
                    w[1],
                    (w[1] - w[0]).num_days(),
                ))?,
            },
        };
        let mut steps = Vec::with_capacity(sorted.len());
        let mut step = 0u32;
        let mut previous = first;
        for &date in &sorted {
            // Walk the grid to this date: a point skipped is a gap.
            loop {
                let expected = frequency.step(first, step).unwrap_or(last);
                if expected == date {
                    break;
                }
                if expected > date || frequency.step(first, step).is_none() {
                    return Err(GridError::OffGrid {
                        frequency,
                        first,
                        date,
                        before: previous,
                        expected,
                    });
                }
                if frequency != Frequency::Day {
                    return Err(GridError::Gap {
                        frequency,
                        missing: expected,
                        before: previous,
                        after: date,
                    });
                }
                // Days: jump straight to the date.
                step = u32::try_from((date - first).num_days()).unwrap_or(u32::MAX);
            }
            steps.push(step);
            previous = date;
            step = step.saturating_add(1);
        }
        Ok(Grid {
            frequency,
            first,
            steps,
        })
    }
}

fn month_end(date: NaiveDate) -> Option<NaiveDate> {
    let next = date.with_day(1)?.checked_add_months(Months::new(1))?;
    next.pred_opt()
}

fn is_month_end(date: NaiveDate) -> bool {
    date.succ_opt()
        .is_none_or(|next| next.month() != date.month())
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adjective = match self {
            Frequency::Day => "daily",
            Frequency::Week => "weekly",
            Frequency::Month => "monthly",
            Frequency::Quarter => "quarterly",
            Frequency::Year => "yearly",
        };
        f.write_str(adjective)
    }
}

impl FromStr for Frequency {
    type Err = GridError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "day" | "daily" | "d" => Frequency::Day,
            "week" | "weekly" | "w" => Frequency::Week,
            "month" | "monthly" | "m" => Frequency::Month,
            "quarter" | "quarterly" | "q" => Frequency::Quarter,
            "year" | "yearly" | "annual" | "y" => Frequency::Year,
            _ => return Err(GridError::Name(s.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn series(f: Frequency, first: NaiveDate, n: u32) -> Vec<NaiveDate> {
        (0..n).map(|i| f.step(first, i).unwrap()).collect()
    }

    #[test]
    fn every_frequency_is_inferred_from_its_dates() {
        for f in Frequency::ALL {
            for first in [day(2019, 1, 31), day(2020, 2, 29), day(2021, 7, 15)] {
                let dates = series(f, first, 30);
                let grid = Frequency::grid(&dates, None).unwrap();
                assert_eq!(grid.frequency, f, "{first}");
                assert_eq!(grid.steps, (0..30).collect::<Vec<_>>());
                assert_eq!(grid.date(30), f.step(first, 30));
            }
        }
        // Month ends stay month ends; the 30th stays the 30th.
        assert_eq!(
            Frequency::Month.step(day(2024, 1, 31), 1),
            Some(day(2024, 2, 29))
        );
        assert_eq!(
            Frequency::Month.step(day(2024, 1, 30), 2),
            Some(day(2024, 3, 30))
        );
        assert_eq!(
            Frequency::Quarter.step(day(2023, 12, 31), 1),
            Some(day(2024, 3, 31))
        );
        assert_eq!(
            Frequency::Year.step(day(2020, 2, 29), 1),
            Some(day(2021, 2, 28))
        );
    }

    #[test]
    fn irregular_dates_name_the_first_gap() {
        let mut monthly = series(Frequency::Month, day(2020, 1, 1), 12);
        monthly.remove(5);
        let err = Frequency::grid(&monthly, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the series is monthly but has no point for 2020-06-01 (between 2020-05-01 and 2020-07-01)"
        );
        let mut weekly = series(Frequency::Week, day(2024, 1, 1), 10);
        weekly[4] = weekly[4].succ_opt().unwrap();
        let err = Frequency::grid(&weekly, None).unwrap_err();
        assert!(matches!(err, GridError::Unknown(..)), "{err}");
        assert!(
            err.to_string().contains("2024-01-30 and 2024-02-05"),
            "{err}"
        );
        let monthly = series(Frequency::Month, day(2024, 1, 1), 4);
        let err = Frequency::grid(&monthly, Some(Frequency::Quarter)).unwrap_err();
        assert!(matches!(err, GridError::OffGrid { .. }), "{err}");
        assert!(err.to_string().contains("would be 2024-04-01"), "{err}");
        let err = Frequency::grid(&[day(2024, 1, 1), day(2024, 1, 11)], None).unwrap_err();
        assert!(err.to_string().contains("10 days apart"), "{err}");
        let err = Frequency::grid(&[day(2024, 1, 1), day(2024, 1, 1)], None).unwrap_err();
        assert_eq!(err, GridError::Repeated(day(2024, 1, 1)));
        // A given frequency is checked, not trusted.
        let err = Frequency::grid(
            &series(Frequency::Day, day(2024, 1, 1), 3),
            Some(Frequency::Week),
        )
        .unwrap_err();
        assert!(matches!(err, GridError::OffGrid { .. }), "{err}");
        // Days may be missing: the caller fills them.
        let days = [day(2024, 1, 1), day(2024, 1, 2), day(2024, 1, 5)];
        let grid = Frequency::grid(&days, None).unwrap();
        assert_eq!(grid.steps, vec![0, 1, 4]);
        assert_eq!(grid.len(), 5);
    }

    #[test]
    fn names_parse() {
        assert_eq!("monthly".parse::<Frequency>().unwrap(), Frequency::Month);
        assert_eq!("Q".parse::<Frequency>().unwrap(), Frequency::Quarter);
        assert!("fortnight".parse::<Frequency>().is_err());
    }
}
