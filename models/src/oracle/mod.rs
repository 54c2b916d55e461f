//! ORACLE: forecasts of every metric of every entity, with intervals.
//!
//! - [`methods`]: the forecasting methods, each reduced to the path it forecasts;
//! - [`season`]: seasonal adjustment (classical, MSTL) and outliers;
//! - [`series_model`]: one series backtested, chosen, fitted and forecast;
//! - [`frequency`]: day, week, month, quarter and year grids, inferred from dates.

pub mod family;
pub mod frequency;
pub mod methods;
pub mod model;
pub mod season;
pub mod series_model;

pub use crate::series::{Metric, Series, TenantSeries, load_series};
pub use family::{ForecastQuery, Oracle, check_forecast};
pub use frequency::{Frequency, Grid, GridError};
pub use methods::{Method, Trend};
pub use model::{Evaluation, OracleConfig, OracleModel, SeriesForecast};
pub use season::{Cycle, Seasonality};
pub use series_model::{
    Calibration, FittedSeries, Forecast, SeriesConfig, SeriesError, SeriesModel, fit_series,
    mase_scale,
};
