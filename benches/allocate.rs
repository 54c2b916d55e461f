//! REFLEXES's allocator on 10,000 entities (goal: under 50 ms).
//!
//! `cargo bench -p gyrus-benches --bench allocate`

use criterion::{Criterion, criterion_group, criterion_main};
use gyrus_models::reflexes::allocate::{Entity, Problem, allocate};
use gyrus_models::reflexes::curve::ResponseCurve;

/// Deterministic curves: β, K, shape and adstock spread over realistic ranges.
fn problem(n: usize, shapes: (f64, f64), share: Option<f64>, efficiency: bool) -> Problem {
    let entities: Vec<Entity> = (0..n)
        .map(|i| {
            let f = i as f64;
            let wave = |k: f64| (f * k).sin().abs();
            let current = 50.0 + 500.0 * wave(0.13);
            let curve = ResponseCurve {
                baseline: wave(0.71),
                beta: current / (20.0 + 60.0 * wave(0.37)) * 3.0,
                half_saturation: current * (0.5 + 2.5 * wave(0.11)),
                shape: shapes.0 + (shapes.1 - shapes.0) * wave(0.07),
                adstock: 0.6 * wave(0.05),
            };
            let mut e = Entity::new(format!("e{i}"), curve);
            if let Some(s) = share {
                e.lower = current * (1.0 - s);
                e.upper = current * (1.0 + s);
            }
            e
        })
        .collect();
    let total: f64 = (0..n)
        .map(|i| 50.0 + 500.0 * (i as f64 * 0.13).sin().abs())
        .sum();
    Problem {
        entities,
        budget: total * 1.1,
        efficiency: None,
    }
    .with_efficiency(efficiency)
}

trait WithEfficiency {
    fn with_efficiency(self, on: bool) -> Self;
}

impl WithEfficiency for Problem {
    /// A CPA target 10% below the budget optimum's.
    fn with_efficiency(mut self, on: bool) -> Self {
        if on && let Ok(free) = allocate(&self) {
            self.efficiency = Some(0.9 * free.total_spend / free.total_response);
        }
        self
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate 10,000 entities");
    for (label, p) in [
        ("concave", problem(10_000, (0.5, 1.0), None, false)),
        (
            "concave, ±30% bounds",
            problem(10_000, (0.5, 1.0), Some(0.3), false),
        ),
        (
            "S-shaped and concave",
            problem(10_000, (0.5, 3.0), None, false),
        ),
        (
            "concave, CPA target",
            problem(10_000, (0.5, 1.0), None, true),
        ),
    ] {
        group.bench_function(label, |b| b.iter(|| allocate(&p).expect("a plan")));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
