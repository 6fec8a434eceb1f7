//! The 2-D toy data (`docs/method.md#toy-data`) and the mode-coverage report used by the demos
//! and `bench/methods`: 25 Gaussians (the free functions) and 8 Gaussians ([`Toy`]).
//!
//! 25 Gaussians: centres `2·(i, j)` for `i, j ∈ {−2..2}`, noise std 0.1, everything divided by
//! 2.828. 8 Gaussians: centres at radius 4 on the axes and diagonals, noise std 0.5, everything
//! divided by 1.414.

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
    Toy::gaussians25().between_modes(n, rng)
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
    Toy::gaussians25().mode_report(samples)
}

/// A 2-D Gaussian mixture with equal weights and a common per-coordinate std.
#[derive(Clone, Debug)]
pub struct Toy {
    pub name: &'static str,
    pub centres: Vec<[f64; 2]>,
    pub std: f64,
    /// Pairs of neighbouring centres: their midpoints are the "between modes" negatives.
    pub neighbours: Vec<(usize, usize)>,
    /// Std of the jitter on those midpoints.
    pub between_jitter: f64,
}

impl Toy {
    /// The 25-Gaussians grid.
    pub fn gaussians25() -> Self {
        let mut neighbours = vec![];
        for i in 0..5 {
            for j in 0..5 {
                if j + 1 < 5 {
                    neighbours.push((i * 5 + j, i * 5 + j + 1));
                }
                if i + 1 < 5 {
                    neighbours.push((i * 5 + j, (i + 1) * 5 + j));
                }
            }
        }
        Self {
            name: "25 Gaussians",
            centres: centres(),
            std: MODE_STD,
            neighbours,
            // Midpoints lie 10σ from their centres: the mode std keeps them between modes.
            between_jitter: MODE_STD,
        }
    }

    /// The 8-Gaussians ring.
    pub fn gaussians8() -> Self {
        let s = 1.414;
        let centres = (0..8)
            .map(|i| {
                let a = i as f64 * std::f64::consts::FRAC_PI_4;
                [4.0 * a.cos() / s, 4.0 * a.sin() / s]
            })
            .collect();
        Self {
            name: "8 Gaussians",
            centres,
            std: 0.5 / s,
            neighbours: (0..8).map(|i| (i, (i + 1) % 8)).collect(),
            // Midpoints lie only 3.1σ from their two centres: jittered by the mode std, a third of
            // them would fall inside the modes (the true density ranks data above such points with
            // AUROC 0.90 only), so the jitter is a quarter of it (true density: 0.99).
            between_jitter: 0.125 / s,
        }
    }

    /// `n` points, cycling through the centres.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            let [cx, cy] = self.centres[i % self.centres.len()];
            let nx: f64 = StandardNormal.sample(rng);
            let ny: f64 = StandardNormal.sample(rng);
            out.push((cx + self.std * nx) as f32);
            out.push((cy + self.std * ny) as f32);
        }
        out
    }

    /// Midpoints of neighbouring centres jittered by `between_jitter`, cycled to `n` points.
    pub fn between_modes(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mids: Vec<[f64; 2]> = self
            .neighbours
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (self.centres[a], self.centres[b]);
                [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
            })
            .collect();
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            let [mx, my] = mids[i % mids.len()];
            let nx: f64 = StandardNormal.sample(rng);
            let ny: f64 = StandardNormal.sample(rng);
            out.push((mx + self.between_jitter * nx) as f32);
            out.push((my + self.between_jitter * ny) as f32);
        }
        out
    }

    /// The mixture's log-density at each row-major 2-D point: the oracle energy is its negative.
    pub fn log_density(&self, points: &[f32]) -> Vec<f32> {
        let k = self.centres.len() as f64;
        let var = self.std * self.std;
        points
            .chunks_exact(2)
            .map(|p| {
                let terms: Vec<f64> = self
                    .centres
                    .iter()
                    .map(|c| {
                        let d2 = (p[0] as f64 - c[0]).powi(2) + (p[1] as f64 - c[1]).powi(2);
                        -0.5 * d2 / var
                    })
                    .collect();
                let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
                (m + s.ln() - k.ln() - (2.0 * std::f64::consts::PI * var).ln()) as f32
            })
            .collect()
    }

    /// Mode coverage of row-major 2-D samples (the rule of [`mode_report`]).
    pub fn mode_report(&self, samples: &[f32]) -> ModeReport {
        let k = self.centres.len();
        let mut counts = vec![0usize; k];
        let n = samples.len() / 2;
        for p in samples.chunks_exact(2) {
            let (x, y) = (p[0] as f64, p[1] as f64);
            let (best, dist) = self
                .centres
                .iter()
                .enumerate()
                .map(|(i, m)| (i, ((x - m[0]).powi(2) + (y - m[1]).powi(2)).sqrt()))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            if dist <= 3.0 * self.std {
                counts[best] += 1;
            }
        }
        let within: usize = counts.iter().sum();
        let quarter_share = within as f64 / k as f64 / 4.0;
        let modes_covered = counts
            .iter()
            .filter(|&&c| c > 0 && c as f64 >= quarter_share)
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

    #[test]
    fn the_general_mixture_agrees_with_the_25_gaussians_functions() {
        let toy = Toy::gaussians25();
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        assert_eq!(toy.sample(300, &mut a), sample(300, &mut b));
        assert_eq!(toy.between_modes(80, &mut a), between_modes(80, &mut b));
        let pts = toy.sample(500, &mut a);
        assert_eq!(toy.mode_report(&pts).counts, mode_report(&pts).counts);
    }

    #[test]
    fn eight_gaussians_lie_on_a_ring() {
        let toy = Toy::gaussians8();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let r = toy.mode_report(&toy.sample(4000, &mut rng));
        assert_eq!(r.modes_covered, 8);
        assert!((r.within_3_sigma - 0.989).abs() < 0.01, "{r:?}");
        for c in &toy.centres {
            assert!((c[0].hypot(c[1]) - 4.0 / 1.414).abs() < 1e-12);
        }
        // The density is highest at a centre and falls off between modes.
        let at = toy.log_density(&[toy.centres[0][0] as f32, toy.centres[0][1] as f32]);
        let mids = toy.between_modes(8, &mut rng);
        assert!(toy.log_density(&mids).iter().all(|&v| v < at[0]));
    }
}
