//! Robust seasonal decomposition of daily series, shared by the families:
//! STL (Cleveland et al.) for one period, MSTL (Bandara, Hyndman &
//! Bergmeir) for several, robust to outliers, over the periods the history
//! holds two full cycles of.
//!
//! Families differ in how smooth they want the parts, not in how the parts
//! are found: ORACLE takes STL's defaults and MSTL even for one period
//! ([`Decompose::FORECAST`]); CURIOSITY wants a smoother seasonal and trend,
//! so that noise stays in the remainder it measures ([`Decompose::DETECT`]).
//!
//! ```
//! use gyrus_models::decompose::Decompose;
//!
//! let week = [10.0, 12.0, 14.0, 13.0, 11.0, 4.0, 3.0];
//! let y: Vec<f64> = (0..70).map(|t| week[t % 7]).collect();
//! let parts = Decompose::FORECAST.fit(&y, &[7, 365]).unwrap();
//! assert_eq!(parts.periods, vec![7]); // 70 days: two years are not there
//! let seasonal = parts.seasonal(5);
//! assert!(seasonal < -4.0, "Saturdays are low: {seasonal}");
//! ```

/// Days the detection trend spans (odd).
pub const DETECT_TREND_DAYS: usize = 29;

/// How smooth the parts are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decompose {
    /// Cycles the seasonal smoother spans (STL's default: 7).
    pub seasonal_cycles: Option<usize>,
    /// Days the trend smoother spans (STL's default follows the period).
    pub trend_days: Option<usize>,
    /// MSTL even for one period (its extra pass refines the seasonal part).
    pub mstl_always: bool,
}

impl Decompose {
    /// For forecasting: STL's defaults, MSTL throughout.
    pub const FORECAST: Decompose = Decompose {
        seasonal_cycles: None,
        trend_days: None,
        mstl_always: true,
    };

    /// For detection: smoother than STL's defaults. A 7-cycle seasonal and a
    /// 13-day trend follow the noise, which shrinks the residuals the noise
    /// is measured on and makes ordinary days look extreme.
    pub const DETECT: Decompose = Decompose {
        seasonal_cycles: Some(13),
        trend_days: Some(DETECT_TREND_DAYS),
        mstl_always: false,
    };

    /// The parts of `y` over the `periods` it holds two full cycles of;
    /// `None` when it holds none, or the fit fails.
    pub fn fit(&self, y: &[f64], periods: &[usize]) -> Option<Parts> {
        let n = y.len();
        let usable: Vec<usize> = periods
            .iter()
            .copied()
            .filter(|&p| p >= 2 && n > 2 * p)
            .collect();
        let mut stl = stlrs::params();
        stl.robust(true).outer_loops(2);
        if let Some(cycles) = self.seasonal_cycles {
            stl.seasonal_length(cycles);
        }
        if let Some(days) = self.trend_days {
            stl.trend_length(days);
        }
        let (seasonals, trend, remainder) = match usable.as_slice() {
            [] => return None,
            [period] if !self.mstl_always => {
                let (seasonal, trend, remainder, _) = stl.fit(y, *period).ok()?.into_parts();
                (vec![seasonal], trend, remainder)
            }
            several => stlrs::Mstl::params()
                .stl_params(stl)
                .fit(y, several)
                .ok()?
                .into_parts(),
        };
        Some(Parts {
            periods: usable,
            seasonals,
            trend,
            remainder,
        })
    }
}

/// A decomposition: `y = sum(seasonals) + trend + remainder`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    /// The periods used, one seasonal part each.
    pub periods: Vec<usize>,
    pub seasonals: Vec<Vec<f64>>,
    pub trend: Vec<f64>,
    pub remainder: Vec<f64>,
}

impl Parts {
    /// The seasonal parts' sum at `t`.
    pub fn seasonal(&self, t: usize) -> f64 {
        self.seasonals.iter().map(|s| s[t]).sum()
    }
}
