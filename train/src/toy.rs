//! The 25-Gaussians toy data (`docs/method.md#toy-data`) and the mode-coverage report used by the demo.
//!
//! Centres are `2·(i, j)` for `i, j ∈ {−2..2}`, noise std 0.1, everything divided by 2.828.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Scale divisor of the reference code.
pub const SCALE: f64 = 2.828;
/// Per-coordinate standard deviation of each mode after scaling.
pub const MODE_STD: f64 = 0.1 / SCALE;

/// The 25 centres, row-major.
pub fn centres() -> Vec<[f64; 2]> {
    let mut c = Vec::with_capacity(25);
    for i in -2..=2 {
        for j in -2..=2 {
            c.push([2.0 * i as f64 / SCALE, 2.0 * j as f64 / SCALE]);
        }
    }
    c
}

/// `n` points, cycling through the centres so every mode gets the same count (±1).
pub fn sample(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    let c = centres();
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let [cx, cy] = c[i % 25];
        let nx: f64 = StandardNormal.sample(rng);
        let ny: f64 = StandardNormal.sample(rng);
        out.push((cx + 0.1 * nx / SCALE) as f32);
        out.push((cy + 0.1 * ny / SCALE) as f32);
    }
    out
}

/// Midpoints between horizontally and vertically neighbouring centres (40 points), jittered
/// with the mode noise, cycled to `n` points: the "between modes" negatives of the demo.
pub fn between_modes(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    let c = centres();
    let mut mids = vec![];
    for i in 0..5 {
        for j in 0..5 {
            let a = c[i * 5 + j];
            if j + 1 < 5 {
                let b = c[i * 5 + j + 1];
                mids.push([(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]);
            }
            if i + 1 < 5 {
                let b = c[(i + 1) * 5 + j];
                mids.push([(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]);
            }
        }
    }
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let [mx, my] = mids[i % mids.len()];
        let nx: f64 = StandardNormal.sample(rng);
        let ny: f64 = StandardNormal.sample(rng);
        out.push((mx + MODE_STD * nx) as f32);
        out.push((my + MODE_STD * ny) as f32);
    }
    out
}

/// How well a set of 2-D samples covers the 25 modes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModeReport {
    /// Modes receiving at least a quarter of their expected share of the samples that land
    /// within 3σ of some centre (`docs/method.md#toy-data`).
    pub modes_covered: usize,
    /// Fraction of all samples within 3σ (Euclidean) of their nearest centre.
    pub within_3_sigma: f64,
    pub counts: Vec<usize>,
}

/// Mode coverage of row-major 2-D samples.
pub fn mode_report(samples: &[f32]) -> ModeReport {
    let c = centres();
    let mut counts = vec![0usize; 25];
    let n = samples.len() / 2;
    for p in samples.chunks_exact(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        let (best, dist) = c
            .iter()
            .enumerate()
            .map(|(i, m)| (i, ((x - m[0]).powi(2) + (y - m[1]).powi(2)).sqrt()))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        if dist <= 3.0 * MODE_STD {
            counts[best] += 1;
        }
    }
    let within: usize = counts.iter().sum();
    let quarter_share = within as f64 / 25.0 / 4.0;
    let modes_covered = counts
        .iter()
        .filter(|&&k| k > 0 && k as f64 >= quarter_share)
        .count();
    ModeReport {
        modes_covered,
        within_3_sigma: if n == 0 {
            0.0
        } else {
            within as f64 / n as f64
        },
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn data_covers_every_mode_and_midpoints_cover_none() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let data = sample(2500, &mut rng);
        let r = mode_report(&data);
        assert_eq!(r.modes_covered, 25);
        // 3σ in 2-D (Rayleigh): P(r ≤ 3σ) = 1 − e^{−4.5} ≈ 0.989.
        assert!((r.within_3_sigma - 0.989).abs() < 0.01, "{r:?}");
        let mids = between_modes(400, &mut rng);
        let r = mode_report(&mids);
        assert_eq!(r.modes_covered, 0);
        assert_eq!(r.within_3_sigma, 0.0);
        // A collapsed sampler covers one mode.
        let collapsed: Vec<f32> = (0..100).flat_map(|_| [0.0f32, 0.0]).collect();
        assert_eq!(mode_report(&collapsed).modes_covered, 1);
    }
}
