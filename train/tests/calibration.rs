//! End-to-end calibration: a model fitted with the default settings (fewer steps) on correlated
//! Gaussian rows, checked on fresh rows from the same distribution that neither training nor
//! calibration saw. The stored threshold must accept about 95% of them and the conformal
//! p-values must be valid: the share of fresh rows with p ≤ α is close to α.

use candle::Device;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{fit, FitConfig};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Rows of a 4-feature Gaussian with correlated features and unequal scales.
fn rows(n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        let z: Vec<f32> = (0..4).map(|_| StandardNormal.sample(rng)).collect();
        out.extend([
            10.0 + 2.0 * z[0],
            z[0] + 0.5 * z[1],
            -3.0 + 0.1 * z[2] + 0.05 * z[0],
            100.0 * z[3],
        ]);
    }
    out
}

#[test]
fn threshold_and_pvalues_hold_on_fresh_in_distribution_rows() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let data = Matrix::new(6000, 4, rows(6000, &mut rng)).unwrap();
    let mut cfg = FitConfig::default();
    cfg.train.steps = 300;
    // The energy is what is tested: no generator-only phase (it leaves the energy as it is).
    cfg.train.generator_steps = Some(0);
    // 900 held-out calibration rows: the conformal quantile's own sampling error is then
    // about √(0.05 · 0.95 / 900) ≈ 0.007.
    cfg.val_fraction = 0.15;
    let (fitted, _) = fit(&data, &cfg, &Device::Cpu, |_, _| {}).unwrap();
    assert_eq!(fitted.metadata.calibration.num_samples, 900);

    let n = 4000;
    let fresh = rows(n, &mut rng);
    let e = fitted.model.energy(&fresh, n).unwrap();
    let tpr = e.iter().filter(|&&v| v <= fitted.model.threshold()).count() as f64 / n as f64;
    assert!(
        (tpr - 0.95).abs() <= 0.03,
        "TPR at the stored threshold: {tpr}"
    );
    let p = fitted.model.pvalues(&fresh, n).unwrap();
    for alpha in [0.01f32, 0.05, 0.1, 0.25, 0.5] {
        let frac = p.iter().filter(|&&v| v <= alpha).count() as f32 / n as f32;
        let tol = 0.01 + 0.1 * alpha;
        assert!(
            (frac - alpha).abs() <= tol,
            "P(p <= {alpha}) = {frac} on fresh rows"
        );
    }
    // Rows far from the data get small p-values.
    let far: Vec<f32> = rows(200, &mut rng)
        .chunks(4)
        .flat_map(|r| [r[0] + 20.0, r[1] - 8.0, r[2], r[3]])
        .collect();
    let p_far = fitted.model.pvalues(&far, 200).unwrap();
    let flagged = p_far.iter().filter(|&&v| v <= 0.05).count();
    assert!(
        flagged >= 190,
        "only {flagged} of 200 far rows have p <= 0.05"
    );
}
