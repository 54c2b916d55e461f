//! `gyrus allocate`: budget allocation over curves the caller gives, for
//! what-if plans and for comparing the allocator with other solvers.

use std::io::{Read as _, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use gyrus_models::reflexes::allocate::{Entity, Problem, allocate};
use gyrus_models::reflexes::curve::ResponseCurve;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemIn {
    budget: f64,
    /// a in Σ (a·cᵢ·fᵢ − xᵢ) ≥ 0: the target CPA, or 1 / the target ROAS.
    efficiency: Option<f64>,
    entities: Vec<EntityIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityIn {
    id: String,
    curve: ResponseCurve,
    lower: Option<f64>,
    upper: Option<f64>,
    efficiency_weight: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(ProblemIn),
    Many(Vec<ProblemIn>),
}

pub fn run(input: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let mut text = String::new();
    if input == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(input)
            .with_context(|| format!("reading {}", input.display()))?;
    }
    let problems = match serde_json::from_str::<Input>(&text).with_context(|| {
        format!(
            "{} is not a problem or a list of problems (see `gyrus allocate --help`)",
            input.display()
        )
    })? {
        Input::One(p) => vec![p],
        Input::Many(ps) => ps,
    };
    for (n, p) in problems.into_iter().enumerate() {
        let problem = Problem {
            budget: p.budget,
            efficiency: p.efficiency,
            entities: p
                .entities
                .into_iter()
                .map(|e| Entity {
                    lower: e.lower.unwrap_or(0.0),
                    upper: e.upper.unwrap_or(f64::INFINITY),
                    efficiency_weight: e.efficiency_weight.unwrap_or(1.0),
                    ..Entity::new(e.id, e.curve)
                })
                .collect(),
        };
        let started = Instant::now();
        let plan = allocate(&problem).with_context(|| format!("problem {n}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "spend": plan.spend,
            "response": plan.response,
            "total_spend": plan.total_spend,
            "total_response": plan.total_response,
            "marginal": plan.marginal,
            "efficiency_multiplier": plan.efficiency_multiplier,
            "seconds": seconds,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
