//! Fitting the energy's mixture base measure: a diagonal or spherical Gaussian mixture fitted by
//! EM (k-means++ seeding) to the normalised training rows, carried to every diffusion level (see
//! `ddaebm::energy::base`).

use anyhow::{bail, Result};
use ddaebm::energy::base::{MixtureParams, MIN_VARIANCE};
use ddaebm::Schedule;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Added to every fitted variance (normalised units), as scikit-learn's `reg_covar`.
pub const VARIANCE_REGULARISATION: f64 = 1e-3;
const MAX_ITERATIONS: usize = 100;
/// Responsibilities below this are skipped in the M-step (their weight is below float
/// precision in every sum); with many components most of them are.
const NEGLIGIBLE_RESPONSIBILITY: f64 = 1e-12;
/// EM stops when the mean log-likelihood per row improves by less than this.
const TOLERANCE: f64 = 1e-4;

/// A diagonal mixture at level "clean data": weights (K), means and variances (K × d).
#[derive(Clone, Debug)]
pub struct DiagonalMixture {
    pub weights: Vec<f64>,
    pub means: Vec<f64>,
    pub variances: Vec<f64>,
    pub dim: usize,
    /// Mean log-likelihood per row at the end of EM.
    pub log_likelihood: f64,
}

fn log_component(x: &[f32], mean: &[f64], var: &[f64], log_w: f64) -> f64 {
    let mut s = log_w;
    for ((&xi, &m), &v) in x.iter().zip(mean).zip(var) {
        let dx = f64::from(xi) - m;
        s -= 0.5 * ((2.0 * std::f64::consts::PI * v).ln() + dx * dx / v);
    }
    s
}

/// k-means++ seeds: the first uniformly, each next one with probability ∝ squared distance.
fn seeds(x: &[f32], n: usize, d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let dist = |i: usize, j: usize| -> f64 {
        x[i * d..(i + 1) * d]
            .iter()
            .zip(&x[j * d..(j + 1) * d])
            .map(|(&a, &b)| f64::from(a - b).powi(2))
            .sum()
    };
    let mut chosen = vec![rng.random_range(0..n)];
    let mut nearest: Vec<f64> = (0..n).map(|i| dist(i, chosen[0])).collect();
    while chosen.len() < k {
        let total: f64 = nearest.iter().sum();
        let next = if total > 0.0 {
            let mut u = rng.random_range(0.0..total);
            nearest
                .iter()
                .position(|&w| {
                    u -= w;
                    u < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            rng.random_range(0..n)
        };
        chosen.push(next);
        for (i, near) in nearest.iter_mut().enumerate() {
            *near = near.min(dist(i, next));
        }
    }
    chosen
}

/// Fits `k` components to the `n × d` row-major rows `x` by EM. `spherical`: each component has
/// one variance for all features (the mean of its per-feature variances), as scikit-learn's
/// `covariance_type="spherical"`.
pub fn fit_diagonal_mixture(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    spherical: bool,
    rng: &mut ChaCha8Rng,
) -> Result<DiagonalMixture> {
    if k == 0 || n < k || x.len() != n * d {
        bail!("cannot fit {k} mixture components to {n} rows of {d} features");
    }
    // Start: hard assignment to the nearest k-means++ seed.
    let centres = seeds(x, n, d, k, rng);
    let mut resp = vec![0f64; n * k];
    for i in 0..n {
        let row = &x[i * d..(i + 1) * d];
        let best = (0..k)
            .min_by(|&a, &b| {
                let da: f64 = row
                    .iter()
                    .zip(&x[centres[a] * d..(centres[a] + 1) * d])
                    .map(|(&p, &q)| f64::from(p - q).powi(2))
                    .sum();
                let db: f64 = row
                    .iter()
                    .zip(&x[centres[b] * d..(centres[b] + 1) * d])
                    .map(|(&p, &q)| f64::from(p - q).powi(2))
                    .sum();
                da.total_cmp(&db)
            })
            .expect("k > 0");
        resp[i * k + best] = 1.0;
    }
    let mut mix = DiagonalMixture {
        weights: vec![0.0; k],
        means: vec![0.0; k * d],
        variances: vec![1.0; k * d],
        dim: d,
        log_likelihood: f64::NEG_INFINITY,
    };
    let mut logs = vec![0f64; k];
    for _ in 0..MAX_ITERATIONS {
        // M-step.
        for j in 0..k {
            let nj: f64 = (0..n).map(|i| resp[i * k + j]).sum();
            if nj < 1e-8 {
                // An empty component restarts on a random row with unit variances.
                let r = rng.random_range(0..n);
                for c in 0..d {
                    mix.means[j * d + c] = f64::from(x[r * d + c]);
                    mix.variances[j * d + c] = 1.0;
                }
                mix.weights[j] = 1.0 / n as f64;
                continue;
            }
            mix.weights[j] = nj / n as f64;
            let (mean, var) = (
                &mut mix.means[j * d..(j + 1) * d],
                &mut mix.variances[j * d..(j + 1) * d],
            );
            mean.iter_mut().for_each(|m| *m = 0.0);
            for i in 0..n {
                let r = resp[i * k + j];
                if r < NEGLIGIBLE_RESPONSIBILITY {
                    continue;
                }
                for (m, &xi) in mean.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *m += r * f64::from(xi);
                }
            }
            mean.iter_mut().for_each(|m| *m /= nj);
            var.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..n {
                let r = resp[i * k + j];
                if r < NEGLIGIBLE_RESPONSIBILITY {
                    continue;
                }
                for ((v, &m), &xi) in var.iter_mut().zip(mean.iter()).zip(&x[i * d..(i + 1) * d]) {
                    *v += r * (f64::from(xi) - m).powi(2);
                }
            }
            if spherical {
                let mean = var.iter().sum::<f64>() / d as f64;
                var.iter_mut().for_each(|v| *v = mean);
            }
            var.iter_mut().for_each(|v| {
                *v = (*v / nj + VARIANCE_REGULARISATION).max(f64::from(MIN_VARIANCE))
            });
        }
        let total: f64 = mix.weights.iter().sum();
        mix.weights.iter_mut().for_each(|w| *w /= total);
        // E-step.
        let mut ll = 0.0;
        for i in 0..n {
            let row = &x[i * d..(i + 1) * d];
            for (j, l) in logs.iter_mut().enumerate() {
                *l = log_component(
                    row,
                    &mix.means[j * d..(j + 1) * d],
                    &mix.variances[j * d..(j + 1) * d],
                    mix.weights[j].max(1e-300).ln(),
                );
            }
            let mx = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + logs.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
            ll += lse;
            for (j, l) in logs.iter().enumerate() {
                resp[i * k + j] = (l - lse).exp();
            }
        }
        ll /= n as f64;
        let done = (ll - mix.log_likelihood).abs() < TOLERANCE;
        mix.log_likelihood = ll;
        if done {
            break;
        }
    }
    Ok(mix)
}

impl DiagonalMixture {
    /// The mixture carried to every level of `schedule`: `x_k = a_k x + s_k ε` maps component
    /// `N(μ, diag v)` to `N(a_k μ, diag(a_k² v + s_k²))`.
    pub fn at_levels(&self, schedule: &Schedule) -> MixtureParams {
        let t = schedule.num_timesteps();
        let mut means = Vec::with_capacity(t * self.means.len());
        let mut variances = Vec::with_capacity(t * self.means.len());
        for level in 0..t {
            let (a, s) = (schedule.a_s_cum[level], schedule.sigmas_cum[level]);
            means.extend(self.means.iter().map(|m| (a * m) as f32));
            variances.extend(self.variances.iter().map(|v| (a * a * v + s * s) as f32));
        }
        MixtureParams {
            log_weights: self
                .weights
                .iter()
                .map(|w| w.max(1e-30).ln() as f32)
                .collect(),
            means,
            variances,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn recovers_two_separated_clusters() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, d) = (600, 2);
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            let (cx, sx) = if i % 3 == 0 { (-3.0, 0.5) } else { (2.0, 1.0) };
            for _ in 0..d {
                let z: f32 = StandardNormal.sample(&mut rng);
                x.push(cx + sx * z);
            }
        }
        let mix = fit_diagonal_mixture(&x, n, d, 2, false, &mut rng).unwrap();
        let small = if mix.means[0] < 0.0 { 0 } else { 1 };
        let big = 1 - small;
        assert!((mix.weights[small] - 1.0 / 3.0).abs() < 0.05, "{mix:?}");
        assert!((mix.means[small * d] + 3.0).abs() < 0.15, "{mix:?}");
        assert!((mix.means[big * d] - 2.0).abs() < 0.15, "{mix:?}");
        assert!((mix.variances[small * d] - 0.25).abs() < 0.08, "{mix:?}");
        assert!((mix.variances[big * d] - 1.0).abs() < 0.2, "{mix:?}");
        assert!(fit_diagonal_mixture(&x, n, d, 0, false, &mut rng).is_err());
    }
}
