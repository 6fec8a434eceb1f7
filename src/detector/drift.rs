//! Whether a whole batch comes from the in-distribution data the model was calibrated on
//! (`docs/method.md#drift`): a one-sided Wilcoxon–Mann–Whitney rank-sum test of the batch's
//! energies against the stored calibration energies.
//!
//! Under the null hypothesis the batch rows and the held-out calibration rows are independent
//! draws from one distribution, so their energies are exchangeable and the rank-sum statistic
//! has a known distribution whatever the energy function is. The alternative is the one a
//! detector cares about: the batch's energies are stochastically *larger* (more
//! out-of-distribution). The p-value is the normal approximation with the tie correction and a
//! continuity correction, accurate to a few thousandths once both samples have 20 or more rows.

use crate::error::{Error, Result};

/// The outcome of [`rank_sum_drift`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftTest {
    /// One-sided p-value: small when the batch's energies are larger than the calibration
    /// energies. Valid for in-distribution batches: `P(p ≤ α) ≈ α`.
    pub p_value: f64,
    /// `U / (m n)`: the probability that a batch row's energy exceeds a calibration row's (ties
    /// count half); 0.5 under the null, the AUROC of batch against calibration rows.
    pub effect: f64,
    /// The standardised statistic (positive: batch energies larger).
    pub z: f64,
    /// Rows in the batch (`m`) and in the calibration set (`n`).
    pub batch_rows: usize,
    pub calibration_rows: usize,
}

/// The one-sided rank-sum test of `batch` energies against the ascending `calibration`
/// energies. NaN counts as `+∞` (the largest energy), as in [`crate::Calibration::pvalue`].
/// Errors when either side is empty or `calibration` is not sorted.
pub fn rank_sum_drift(calibration: &[f32], batch: &[f32]) -> Result<DriftTest> {
    let (n, m) = (calibration.len(), batch.len());
    if n == 0 || m == 0 {
        return Err(Error::InvalidArgument(format!(
            "the drift test needs rows on both sides: {m} batch rows, {n} calibration energies"
        )));
    }
    let unordered = |w: &[f32]| w[0].is_nan() || w[1].is_nan() || w[0] > w[1];
    if calibration.windows(2).any(unordered) {
        return Err(Error::bad_model("the calibration energies are not sorted"));
    }
    let nan_as_inf = |e: f32| if e.is_nan() { f32::INFINITY } else { e };
    let mut sorted_batch: Vec<f32> = batch.iter().map(|&e| nan_as_inf(e)).collect();
    sorted_batch.sort_by(f32::total_cmp);
    // U = Σ over batch rows of #(calibration below) + ½ #(calibration equal).
    let mut u = 0.0f64;
    for &e in &sorted_batch {
        let below = calibration.partition_point(|&c| c < e);
        let equal = calibration[below..].partition_point(|&c| c <= e);
        u += below as f64 + 0.5 * equal as f64;
    }
    // Tie correction: Σ (t³ − t) over the groups of equal values in the pooled sample.
    let (mut i, mut j, mut ties) = (0usize, 0usize, 0.0f64);
    while i < n || j < m {
        let v = match (calibration.get(i), sorted_batch.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        let mut t = 0usize;
        while i < n && calibration[i] == v {
            i += 1;
            t += 1;
        }
        while j < m && sorted_batch[j] == v {
            j += 1;
            t += 1;
        }
        let t = t as f64;
        ties += t * t * t - t;
    }
    let (mf, nf) = (m as f64, n as f64);
    let total = mf + nf;
    let mean = mf * nf / 2.0;
    let variance = mf * nf / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)).max(1.0));
    let (z, p_value) = if variance > 0.0 {
        // Continuity correction towards the mean.
        let z = (u - mean - 0.5).max(0.0) / variance.sqrt()
            + (u - mean + 0.5).min(0.0) / variance.sqrt();
        (z, upper_normal_tail(z))
    } else {
        // Every value equal: no evidence either way.
        (0.0, 1.0)
    };
    Ok(DriftTest {
        p_value,
        effect: u / (mf * nf),
        z,
        batch_rows: m,
        calibration_rows: n,
    })
}

/// `P(Z > z)` for a standard normal `Z`.
fn upper_normal_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(n: usize, shift: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..n)
            .map(|_| StandardNormal.sample(rng))
            .map(|v: f32| v + shift)
            .collect()
    }

    fn sorted(mut v: Vec<f32>) -> Vec<f32> {
        v.sort_by(f32::total_cmp);
        v
    }

    #[test]
    fn matches_a_hand_computed_example() {
        // Calibration 1..=5, batch {3, 6, 7}: U = 2.5 + 5 + 5 = 12.5 of m·n = 15.
        let t = rank_sum_drift(&[1.0, 2.0, 3.0, 4.0, 5.0], &[7.0, 3.0, 6.0]).unwrap();
        assert!((t.effect - 12.5 / 15.0).abs() < 1e-12);
        // mean 7.5; variance 15/12 · (9 − 6/56) with one tie pair (t = 2: 8 − 2 = 6).
        let sd = (15.0f64 / 12.0 * (9.0 - 6.0 / 56.0)).sqrt();
        assert!((t.z - (12.5 - 7.5 - 0.5) / sd).abs() < 1e-12, "{t:?}");
        assert!((t.p_value - upper_normal_tail(t.z)).abs() < 1e-15);
        assert!((upper_normal_tail(1.6448536269514722) - 0.05).abs() < 1e-12);
        assert!((upper_normal_tail(0.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn in_distribution_batches_are_rejected_at_about_the_nominal_rate() {
        // Fresh calibration and batch per trial: the test's size over both.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let trials = 4000;
        for (n, m) in [(100, 100), (500, 30)] {
            let rejected = (0..trials)
                .filter(|_| {
                    let cal = sorted(normal(n, 0.0, &mut rng));
                    rank_sum_drift(&cal, &normal(m, 0.0, &mut rng))
                        .unwrap()
                        .p_value
                        < 0.05
                })
                .count() as f64
                / trials as f64;
            // Binomial sd at 4 000 trials: 0.0034.
            assert!(
                (0.038..=0.06).contains(&rejected),
                "n {n}, m {m}: {rejected}"
            );
        }
    }

    #[test]
    fn a_shift_towards_higher_energies_is_caught_and_a_shift_down_is_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let cal = sorted(normal(500, 0.0, &mut rng));
        let up = rank_sum_drift(&cal, &normal(300, 0.5, &mut rng)).unwrap();
        assert!(up.p_value < 1e-6 && up.effect > 0.6, "{up:?}");
        let down = rank_sum_drift(&cal, &normal(300, -0.5, &mut rng)).unwrap();
        assert!(down.p_value > 0.99, "{down:?}");
    }

    #[test]
    fn ties_nan_and_bad_input() {
        // Every energy equal: p = 1; NaN and +∞ rank above everything.
        assert_eq!(rank_sum_drift(&[1.0; 4], &[1.0; 3]).unwrap().p_value, 1.0);
        let cal = sorted((0..50).map(|i| i as f32).collect());
        let t = rank_sum_drift(&cal, &[f32::NAN, f32::INFINITY, f32::NAN]).unwrap();
        assert_eq!(t.effect, 1.0);
        assert!(rank_sum_drift(&[], &[1.0]).is_err());
        assert!(rank_sum_drift(&[1.0], &[]).is_err());
        assert!(rank_sum_drift(&[2.0, 1.0], &[1.0]).is_err());
    }
}
