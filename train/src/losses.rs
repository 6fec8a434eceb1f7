//! The Gaussian helpers and loss terms of training (`docs/method.md#training`), on batches.
//!
//! Per-sample schedule coefficients are `(B, 1)` tensors gathered by level (see
//! [`crate::levels::LevelCoefficients`]); data tensors are `(B, d)`; per-sample results are `(B,)`.

use candle::{Result, Tensor};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// `Σ_dims log N(x_next; a·x, σ²)`: the forward one-step log-density `log q(x_{k+1} | x_k)`
/// ("p_condition" in the reference code), constants included.
pub fn log_forward(x: &Tensor, x_next: &Tensor, a: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    let resid = x_next.sub(&x.broadcast_mul(a)?)?.broadcast_div(sigma)?;
    let per_dim = (resid.sqr()? * -0.5)?.broadcast_sub(&sigma.log()?)?;
    per_dim.sum(1)? - HALF_LN_2PI * x.dim(1)? as f64
}

/// `∇_x log q(x_next | x) = a (x_next − a x) / σ²`, the closed form used in the R1 term.
pub fn grad_log_forward(x: &Tensor, x_next: &Tensor, a: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    x_next
        .sub(&x.broadcast_mul(a)?)?
        .broadcast_mul(a)?
        .broadcast_div(&sigma.sqr()?)
}

/// `Σ_dims log N(x; mean, exp(logvar))` ("q_condition"), constants included. `logvar` is
/// `(B, 1)` (one variance per sample) or `(B, d)`.
pub fn log_gaussian(x: &Tensor, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let d = x.dim(1)? as f64;
    let sq = x.sub(mean)?.sqr()?.broadcast_div(&logvar.exp()?)?;
    let lv_sum = if logvar.dim(1)? == 1 {
        (logvar.squeeze(1)? * d)?
    } else {
        logvar.sum(1)?
    };
    ((sq.sum(1)? + lv_sum)? * -0.5)? - HALF_LN_2PI * d
}

/// `Σ_dims −½ (1 + logvar − μ² − exp(logvar))` = KL(N(μ, e^logvar) ‖ N(0, I)).
pub fn kl_to_standard_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar + 1.0)? - mu.sqr()?)?.sub(&logvar.exp()?)?;
    inner.sum(1)? * -0.5
}

/// The latent entropy surrogate (`docs/method.md#training`): `½ Σ logvar + ½ Σ (z − μ)² / (1e-6 + e^logvar)`,
/// the diagonal-Gaussian NLL of `z` without the log 2π constant.
pub fn latent_nll(z: &Tensor, mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let sq = z.sub(mu)?.sqr()?.div(&(logvar.exp()? + 1e-6)?)?;
    (logvar.sum(1)? + sq.sum(1)?)? * 0.5
}

/// `(γ/2) · mean_batch ‖g‖²` over a `(B, d)` gradient.
pub fn r1_penalty(grad: &Tensor, gamma: f64) -> Result<Tensor> {
    grad.sqr()?.sum(1)?.mean_all()? * (0.5 * gamma)
}

/// `softplus(t) = ln(1 + eᵗ)`, computed as `max(t, 0) + ln(1 + e^−|t|)` so it never overflows.
pub fn softplus(t: &Tensor) -> Result<Tensor> {
    t.relu()? + (t.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Noise-contrastive estimation against the base measure: logistic loss of telling data rows
/// (log-ratio `g_data`) from rows drawn from the base (log-ratio `g_noise`), both `(B,)`:
/// `mean softplus(−g_data) + mean softplus(g_noise)`. Its minimiser is `g = log(p_data / base)`,
/// which pins the level and the far-field shape of the energy.
pub fn nce_loss(g_data: &Tensor, g_noise: &Tensor) -> Result<Tensor> {
    softplus(&g_data.neg()?)?.mean_all()? + softplus(g_noise)?.mean_all()?
}

/// Conditional NCE (Ceylan & Gutmann, 2018) with a symmetric perturbation `y = x + τε`:
/// `mean softplus(f(y) − f(x))`. Teaches the energy that data rows beat nearby off-data points.
pub fn cnce_loss(f_data: &Tensor, f_perturbed: &Tensor) -> Result<Tensor> {
    softplus(&(f_perturbed - f_data)?)?.mean_all()
}

/// Denoising score matching at the level's noise scale, weighted by σ²:
/// `mean_batch ‖σ ∇ₓf(x_k) + ε‖²` where `x_k = a·x + σε`. Its minimiser is the score of the
/// noisy marginal, so `f(·, k)` learns `log q_k` up to a constant.
pub fn dsm_loss(grad_f: &Tensor, eps: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    grad_f
        .broadcast_mul(sigma)?
        .add(eps)?
        .sqr()?
        .sum(1)?
        .mean_all()
}

/// The contrastive energy loss of GCD and DCD: contrastive divergence between data rows and
/// the method's negatives (GCD's policy samples, DCD's Langevin chains) plus the magnitude penalty,
/// `mean E(data) − mean E(neg) + γ (mean g(data)² + mean g(neg)²)` with `E = −f`. Inputs are
/// `f` and `g` per row, shape (B,).
pub fn energy_loss(
    f_real: &Tensor,
    f_fake: &Tensor,
    g_real: &Tensor,
    g_fake: &Tensor,
    gamma: f64,
) -> Result<Tensor> {
    let cd = (f_fake.mean_all()? - f_real.mean_all()?)?;
    let penalty = ((g_real.sqr()?.mean_all()? + g_fake.sqr()?.mean_all()?)? * gamma)?;
    cd + penalty
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    fn t2(v: &[&[f32]]) -> Tensor {
        let rows: Vec<Vec<f32>> = v.iter().map(|r| r.to_vec()).collect();
        let (b, d) = (rows.len(), rows[0].len());
        Tensor::from_vec(rows.concat(), (b, d), &Device::Cpu).unwrap()
    }

    fn close(got: &Tensor, want: &[f64]) {
        let got: Vec<f32> = got.to_vec1().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!(
                (*g as f64 - w).abs() < 1e-4 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn log_forward_matches_hand_computation() {
        // Row 0: x = (1, 0), x_next = (0.5, 1), a = 0.5, σ = 2:
        // residuals (0, 1) → Σ −½ r²/σ² − ln σ − ½ ln 2π = −0.125 − 2 ln 2 − ln 2π.
        let x = t2(&[&[1.0, 0.0], &[0.0, 0.0]]);
        let xn = t2(&[&[0.5, 1.0], &[0.0, 0.0]]);
        let a = t2(&[&[0.5], &[1.0]]);
        let s = t2(&[&[2.0], &[1.0]]);
        let want0 = -0.125 - 2.0 * 2f64.ln() - (2.0 * std::f64::consts::PI).ln();
        let want1 = -(2.0 * std::f64::consts::PI).ln();
        close(&log_forward(&x, &xn, &a, &s).unwrap(), &[want0, want1]);
        // Gradient: a (x_next − a x)/σ² = 0.5·(0, 1)/4 = (0, 0.125).
        let g: Vec<Vec<f32>> = grad_log_forward(&x, &xn, &a, &s)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(g[0], vec![0.0, 0.125]);
    }

    #[test]
    fn log_gaussian_and_kl_match_hand_computation() {
        let x = t2(&[&[1.0, 2.0]]);
        let m = t2(&[&[0.0, 0.0]]);
        let lv = t2(&[&[0.0]]);
        // −½(1 + 4) − ln 2π
        close(
            &log_gaussian(&x, &m, &lv).unwrap(),
            &[-2.5 - (2.0 * std::f64::consts::PI).ln()],
        );
        // Per-dim log-variance ln 4 on dim 1: −½(1 + 4/4 + ln 4) − ln 2π.
        let lv2 = t2(&[&[0.0, 4f32.ln()]]);
        close(
            &log_gaussian(&x, &m, &lv2).unwrap(),
            &[-0.5 * (2.0 + 4f64.ln()) - (2.0 * std::f64::consts::PI).ln()],
        );
        // KL(N(1, e^0) ‖ N(0,1)) = ½; KL(N(0, e^{ln 2}) ‖ N(0,1)) = ½(2 − 1 − ln 2).
        let mu = t2(&[&[1.0, 0.0]]);
        let lv = t2(&[&[0.0, 2f32.ln()]]);
        close(
            &kl_to_standard_normal(&mu, &lv).unwrap(),
            &[0.5 + 0.5 * (1.0 - 2f64.ln())],
        );
    }

    #[test]
    fn latent_nll_and_r1_match_hand_computation() {
        let z = t2(&[&[1.0, -1.0]]);
        let mu = t2(&[&[0.0, 0.0]]);
        let lv = t2(&[&[0.0, 2f32.ln()]]);
        // ½(0 + ln 2) + ½(1/(1+1e-6) + 1/(2+1e-6))
        close(
            &latent_nll(&z, &mu, &lv).unwrap(),
            &[0.5 * 2f64.ln() + 0.5 * (1.0 / (1.0 + 1e-6) + 1.0 / (2.0 + 1e-6))],
        );
        // γ/2 · mean(‖(3,4)‖², ‖(0,0)‖²) = 0.01 · 12.5
        let g = t2(&[&[3.0, 4.0], &[0.0, 0.0]]);
        let r1: f32 = r1_penalty(&g, 0.02).unwrap().to_scalar().unwrap();
        assert!((r1 - 0.125).abs() < 1e-6);
    }

    #[test]
    fn contrastive_and_score_matching_terms_match_hand_computation() {
        let dev = Device::Cpu;
        let v = |x: &[f32]| Tensor::new(x, &dev).unwrap();
        let sp = |x: f64| (1.0 + x.exp()).ln();
        // softplus is stable for large |t|.
        close(
            &softplus(&v(&[-100.0, 0.0, 3.0, 100.0])).unwrap(),
            &[0.0, 2f64.ln(), sp(3.0), 100.0],
        );
        let nce: f32 = nce_loss(&v(&[1.0, 2.0]), &v(&[-1.0, 0.5]))
            .unwrap()
            .to_scalar()
            .unwrap();
        let want = (sp(-1.0) + sp(-2.0)) / 2.0 + (sp(-1.0) + sp(0.5)) / 2.0;
        assert!((nce as f64 - want).abs() < 1e-5);
        let cnce: f32 = cnce_loss(&v(&[1.0, 0.0]), &v(&[0.0, 2.0]))
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((cnce as f64 - (sp(-1.0) + sp(2.0)) / 2.0).abs() < 1e-5);
        // DSM: σ = 0.5, ∇f = (−2, 0), ε = (1, 1) → ‖(−1 + 1, 0 + 1)‖² = 1; second row σ = 1,
        // ∇f = (1, 1), ε = (0, 0) → 2. Mean 1.5.
        let g = t2(&[&[-2.0, 0.0], &[1.0, 1.0]]);
        let e = t2(&[&[1.0, 1.0], &[0.0, 0.0]]);
        let s = t2(&[&[0.5], &[1.0]]);
        let dsm: f32 = dsm_loss(&g, &e, &s).unwrap().to_scalar().unwrap();
        assert!((dsm - 1.5).abs() < 1e-6);
    }
}
