//! Deterministic noise for unit tests: the same draws on every machine and
//! every run, with no generator state to thread through a closure.

/// Uniform in [0, 1), the `k`-th draw.
pub(crate) fn uniform(k: usize) -> f64 {
    ((k as f64 * 12.9898).sin() * 43_758.545).rem_euclid(1.0)
}

/// A standard normal, the `k`-th draw (Box–Muller over two uniforms).
pub(crate) fn normal(k: usize) -> f64 {
    let (u, v) = (uniform(2 * k).max(1e-12), uniform(2 * k + 1));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}
