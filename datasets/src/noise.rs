//! Noise shapes: how generated ad data varies beyond Poisson counts.
//!
//! [`NoiseShape::Standard`] is the data every model family was developed
//! and tuned on. The other shapes are there so that no figure rests on that
//! data alone: each changes one thing real accounts do and the standard
//! shape does not, and adds two kinds of event the standard shape lacks
//! (slope changes, and for some shapes budget changes and missing days),
//! each recorded in the truth.
//!
//! Seeds are split the same way: [`TUNING_SEEDS`] may be looked at while
//! tuning; [`HELD_OUT_SEEDS`] were fixed on 2026-12-04, before any tuning on
//! the other shapes, and are only ever reported on.
//!
//! ```
//! use gyrus_datasets::{GeneratorConfig, NoiseShape, Scale, generate};
//!
//! let mut config = GeneratorConfig::new(9001, Scale::Small);
//! config.noise = NoiseShape::Overdispersed;
//! let data = generate(&config);
//! assert_eq!(data.truth.noise, "overdispersed");
//! ```

use std::fmt;
use std::str::FromStr;

use rand::RngExt as _;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};

/// Seeds models may be tuned on, for any shape.
pub const TUNING_SEEDS: std::ops::RangeInclusive<u64> = 1..=12;

/// Seeds fixed before tuning on the non-standard shapes; never tuned on.
/// 9009–9012 (not listed: no check asserts on them) were fixed on
/// 2026-12-05, when 9001–9008 had all been looked at, and first run by
/// CURIOSITY's checks then, once before and once after a change.
/// 9013–9016 were fixed on 2026-12-06, before the next change to CURIOSITY,
/// and are first run once before and once after it. 9017–9020 were fixed
/// the same way on 2026-12-06 (later), before the change to how change
/// points are dated; 9021–9024 on 2026-12-06 (third session), before the
/// change from medians to Huber levels in that dating; 9025–9028 the same
/// day, before change points were given the range of days their step may
/// lie in; 9029–9032 on 2026-12-06 (fourth session), before shifts were
/// sought again between the change points found, with windows that stop at
/// them. That change was tried on tuning seeds only and not kept, so
/// 9029–9032 have been run once, on the detector as it stands. 9033–9036
/// were fixed on 2026-12-06 (fifth session), before a change that compares
/// the days before a gradual change (a ramp) with the days after it; that
/// change was tried on tuning seeds only and not kept (branch
/// `experiment/gradual-changes`), so 9033–9036 too have been run once, on
/// the detector as it stands. 9037–9040 were fixed on 2026-12-06 (sixth
/// session), the next four in line, after that comparison had been tried
/// on tuning seeds with the series' smooth yearly wave taken out first and
/// before any run on them. They were run once, on that change, which was
/// not kept (branch `experiment/wander`): the detector on main has not
/// been run on them. 9041–9044 were fixed the same session, before any
/// run on them, after a ramp judged beside the wave (fitted jointly) had
/// been tried on tuning seeds; they were run once, on that change, which
/// landed. 9045–9048 were fixed on 2026-12-06 (seventh session), before
/// any run on them, after level shifts had been judged callable by their
/// clean days and before a change to how shifts over the long windows
/// are judged on series that are not counts; they were run once, on that
/// change, which landed.
pub const HELD_OUT_SEEDS: [u64; 8] = [9001, 9002, 9003, 9004, 9005, 9006, 9007, 9008];

/// The seeds and noise shapes a model check runs: `default_seeds` and every
/// shape, unless `GYRUS_CHECK_SEEDS=1,2` or `GYRUS_CHECK_SHAPES=standard,uneven`
/// narrow or redirect the run (for exploring; reported figures name them).
///
/// ```
/// let (seeds, shapes) = gyrus_datasets::check_cases(&[1, 2]).unwrap();
/// # if std::env::var_os("GYRUS_CHECK_SEEDS").is_none() {
/// assert_eq!(seeds, vec![1, 2]);
/// # }
/// assert!(!shapes.is_empty());
/// ```
pub fn check_cases(default_seeds: &[u64]) -> Result<(Vec<u64>, Vec<NoiseShape>), String> {
    let list = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let seeds = match list("GYRUS_CHECK_SEEDS") {
        None => default_seeds.to_vec(),
        Some(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| format!("GYRUS_CHECK_SEEDS: `{s}` is not a seed (u64)"))
            })
            .collect::<Result<_, _>>()?,
    };
    let shapes = match list("GYRUS_CHECK_SHAPES") {
        None => NoiseShape::ALL.to_vec(),
        Some(v) => v
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()?,
    };
    Ok((seeds, shapes))
}

/// How the data is noisy beyond Poisson counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NoiseShape {
    /// The data the families were developed on: Poisson counts, ±12% daily
    /// spend noise, budgets log-normal around 250 a day.
    #[default]
    Standard,
    /// Daily CTR and conversion rate vary far more than binomial noise
    /// (auction, placement and audience mix change daily): log-normal day
    /// factors with σ 0.1–0.4 per campaign.
    Overdispersed,
    /// Value per conversion is heavy-tailed: log-normal per ad and day with
    /// σ 0.7–1.3 (a few large orders make a day).
    HeavyTailed,
    /// Campaigns of very different size (budgets spread 60× wider), one in
    /// four low-volume (3–25 a day), and missing days: about one active day
    /// in a hundred delivers nothing.
    Uneven,
    /// Spend that hardly moves (±10%: half the campaigns) or moves ±100%
    /// (the other half: budget changes of 1.3–2× every three to eight weeks
    /// and ±30% daily noise).
    SpendSwings,
}

impl NoiseShape {
    pub const ALL: [NoiseShape; 5] = [
        NoiseShape::Standard,
        NoiseShape::Overdispersed,
        NoiseShape::HeavyTailed,
        NoiseShape::Uneven,
        NoiseShape::SpendSwings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoiseShape::Standard => "standard",
            NoiseShape::Overdispersed => "overdispersed",
            NoiseShape::HeavyTailed => "heavy_tailed",
            NoiseShape::Uneven => "uneven",
            NoiseShape::SpendSwings => "spend_swings",
        }
    }
}

impl fmt::Display for NoiseShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NoiseShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoiseShape::ALL
            .into_iter()
            .find(|shape| shape.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown noise shape `{s}`: use {}",
                    NoiseShape::ALL.map(NoiseShape::as_str).join(", ")
                )
            })
    }
}

/// One campaign's noise beyond the standard shape. All ones (and empty)
/// for the standard shape, so that it draws nothing extra.
#[derive(Debug, Clone, Default)]
pub(crate) struct CampaignNoise {
    /// σ of the log-normal day factor on CTR.
    pub ctr_sigma: f64,
    /// σ of the log-normal day factor on expected conversions.
    pub conversion_sigma: f64,
    /// σ of the log-normal factor on value per conversion, per ad and day.
    pub value_sigma: f64,
    /// σ of daily spend noise (the standard shape's is 0.12).
    pub spend_sigma: Option<f64>,
    /// Share of the yearly wave that reaches spend (1 in the standard shape).
    pub spend_wave: f64,
    /// Budget multipliers from a day index on, in order.
    pub budget_steps: Vec<(usize, f64)>,
    /// A ramp: from day `start`, over `days`, spend moves by `factor` in
    /// total (geometrically), then stays there.
    pub ramp: Option<(usize, usize, f64)>,
    /// Chance that an active day delivers nothing.
    pub missing_day: f64,
}

impl CampaignNoise {
    /// The spend multiplier of day `d` from budget steps and the ramp.
    pub fn spend_factor(&self, d: usize) -> f64 {
        let step = self
            .budget_steps
            .iter()
            .take_while(|(from, _)| *from <= d)
            .last()
            .map_or(1.0, |(_, m)| *m);
        let ramp = self.ramp.map_or(1.0, |(start, days, factor)| {
            if d < start {
                1.0
            } else {
                let done = ((d - start) as f64 / days as f64).min(1.0);
                factor.powf(done)
            }
        });
        step * ramp
    }
}

/// A day factor with mean 1 and log-σ `sigma` (1 when `sigma` is 0).
pub(crate) fn day_factor(rng: &mut StdRng, sigma: f64) -> f64 {
    if sigma <= 0.0 {
        return 1.0;
    }
    LogNormal::new(-0.5 * sigma * sigma, sigma).map_or(1.0, |d| d.sample(rng))
}

/// A budget for a campaign of the uneven shape, from the standard draw
/// (log-normal, median 250, σ 0.7): σ 1.6 instead, or low-volume.
pub(crate) fn uneven_budget(rng: &mut StdRng, standard: f64) -> f64 {
    if rng.random_bool(0.25) {
        rng.random_range(3.0..25.0)
    } else {
        let z = (standard / 250.0).ln() / 0.7;
        250.0 * (1.6 * z).exp()
    }
}

/// Draws one campaign's noise for `shape`; `days` of data, the campaign
/// active on `active` (day indices), and whether it already carries an
/// injected anomaly (then it gets no ramp, so events stay apart).
pub(crate) fn campaign_noise(
    shape: NoiseShape,
    rng: &mut StdRng,
    active: std::ops::Range<usize>,
    has_anomaly: bool,
) -> CampaignNoise {
    let mut noise = CampaignNoise {
        spend_wave: 1.0,
        ..CampaignNoise::default()
    };
    if shape == NoiseShape::Standard {
        return noise;
    }
    match shape {
        NoiseShape::Overdispersed => {
            noise.ctr_sigma = rng.random_range(0.1..0.4);
            noise.conversion_sigma = rng.random_range(0.1..0.3);
        }
        NoiseShape::HeavyTailed => noise.value_sigma = rng.random_range(0.7..1.3),
        NoiseShape::Uneven => noise.missing_day = 0.01,
        NoiseShape::SpendSwings => {
            if rng.random_bool(0.5) {
                noise.spend_sigma = Some(0.03);
                noise.spend_wave = 0.2;
            } else {
                noise.spend_sigma = Some(0.3);
                let mut d = active.start + rng.random_range(21..56);
                let mut level: f64 = 1.0;
                while d + 21 < active.end {
                    let step = rng.random_range(1.3f64.ln()..2f64.ln());
                    let up = if level * step.exp() > 2.0 {
                        false
                    } else if level / step.exp() < 0.5 {
                        true
                    } else {
                        rng.random_bool(0.5)
                    };
                    level *= if up { step.exp() } else { (-step).exp() };
                    noise.budget_steps.push((d, level));
                    d += rng.random_range(21..56);
                }
            }
        }
        NoiseShape::Standard => {}
    }
    // A slope change on about one campaign in eight: a ramp of four to
    // eight weeks that halves or doubles spend, then holds.
    let days = rng.random_range(28..57);
    if !has_anomaly && rng.random_bool(0.125) && active.len() > days + 35 + 28 {
        let start = rng.random_range(active.start + 35..active.end - days - 28);
        let factor = if rng.random_bool(0.5) {
            rng.random_range(1.7..2.5)
        } else {
            rng.random_range(0.4..0.6)
        };
        // Budget steps are kept clear of the ramp.
        noise
            .budget_steps
            .retain(|(d, _)| *d + 21 < start || *d > start + days + 21);
        noise.ramp = Some((start, days, factor));
    }
    noise
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip_and_unknown_ones_are_named() {
        for shape in NoiseShape::ALL {
            assert_eq!(shape.as_str().parse::<NoiseShape>(), Ok(shape));
        }
        let err = "gaussian".parse::<NoiseShape>().unwrap_err();
        assert!(err.contains("overdispersed"), "{err}");
    }

    #[test]
    fn spend_factor_follows_steps_and_ramp() {
        let noise = CampaignNoise {
            budget_steps: vec![(10, 2.0), (20, 0.5)],
            ramp: Some((40, 10, 4.0)),
            ..CampaignNoise::default()
        };
        assert_eq!(noise.spend_factor(9), 1.0);
        assert_eq!(noise.spend_factor(10), 2.0);
        assert_eq!(noise.spend_factor(25), 0.5);
        assert!((noise.spend_factor(45) - 0.5 * 2.0).abs() < 1e-12);
        assert!((noise.spend_factor(80) - 0.5 * 4.0).abs() < 1e-12);
    }
}
