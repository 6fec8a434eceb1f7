//! `methods-digits`: DCD against the short-run CD baseline (and the default method) on the 8×8
//! digits as 64-feature vectors (`bench/methods/`).
//!
//! `cargo run --release -p xtask -- methods-digits [key=value ...]` splits
//! `../shared/data/digits.npz` as `train/examples/digits.rs` does (30% of every class held out,
//! seeded; the detector fits the rest of digits 0–4), fits each method with `fit`'s defaults for
//! vector data, and prints one JSON line per method:
//!
//! * the energy's AUROC of held-out 0–4 against held-out 5–9 (near-OOD), uniform noise in
//!   [0, 16] and inverted digits `16 − x` (far-OOD);
//! * denoising: held-out digits 0–4 plus Gaussian noise of std `σ` (in the [0, 1] pixel scale,
//!   clipped to the pixel range), denoised by gradient steps on the learned energy from the
//!   level whose noise matches down to level 0 (Tweedie's formula at each level, [`denoise`]);
//!   PSNR against the clean digits, next to the noisy input's.
//!
//! Keys: `seed`, `steps`, `methods` (comma-separated from `dcd`, `short-run-cd`, `ddaebm`),
//! `base=iso` (the isotropic Gaussian base instead of the mixture `fit` picks, so that the
//! learned part of the energy does the work), `level` (force the denoising's starting level),
//! `data` (the `.npz` path).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle::{Device, Tensor};
use ddaebm::energy::grad::log_density_ratio_and_input_grad;
use ddaebm::nn::embedding::level_tensor;
use ddaebm::Model;
use ddaebm_train::data::{load_matrix, stratified_split, Matrix};
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::{fit, FitConfig, MethodConfig};
use ddaebm_train::metrics::auroc;
use ddaebm_train::trainer::TrainConfig;

use crate::methods::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Noise stds of the denoising experiment, in the [0, 1] pixel scale.
const NOISE_LEVELS: [f64; 4] = [0.1, 0.2, 0.3, 0.5];
/// The raw pixel range of the digits.
const PIXEL_MAX: f32 = 16.0;

/// PSNR in dB of `x` against `clean`, both in raw pixels, on the [0, 1] scale.
fn psnr(x: &[f32], clean: &[f32]) -> f64 {
    let mse = x
        .iter()
        .zip(clean)
        .map(|(a, b)| (f64::from(a - b) / f64::from(PIXEL_MAX)).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// Denoising with the learned energy: noise of std `sigma_raw` (raw pixels) is, in the model's
/// normalised units, about `σ_u` = the median over features of `sigma_raw / std_j`; level `k`
/// of the diffusion holds `x_k = a_k x + s_k ε`, so the noisy row `u` is read as `x_k = a_k u`
/// at the level whose `s_k / a_k` is nearest `σ_u`. From there down to level 0, one gradient
/// step per level: Tweedie's estimate `x̂ = (x_k + s_k² ∇ₓ f(x_k, k)) / a_k` and the
/// deterministic move to the next level `x_{k−1} = a_{k−1} x̂ + s_{k−1} (x_k − a_k x̂) / s_k`
/// (DDIM's); level 0's `x̂` is the result, clipped to the pixel range. Returns the rows and the
/// starting level.
fn denoise(
    model: &Model,
    noisy: &[f32],
    rows: usize,
    sigma_raw: f64,
    forced: Option<usize>,
) -> Result<(Vec<f32>, usize)> {
    let dev = Device::Cpu;
    let d = model.input_dim();
    let norm = &model.metadata().normalization;
    let mut ratios: Vec<f64> = norm.std.iter().map(|s| sigma_raw / f64::from(*s)).collect();
    ratios.sort_by(f64::total_cmp);
    let sigma_u = ratios[ratios.len() / 2];
    let schedule = model.schedule();
    let k = (0..schedule.num_timesteps())
        .min_by(|&i, &j| {
            let gap = |k: usize| (schedule.sigmas_cum[k] / schedule.a_s_cum[k] - sigma_u).abs();
            gap(i).total_cmp(&gap(j))
        })
        .context("a schedule has levels")?;
    let k = forced.unwrap_or(k);
    let (mean, std) = norm.tensors(&dev)?;
    let u = Tensor::from_slice(noisy, (rows, d), &dev)?
        .broadcast_sub(&mean)?
        .broadcast_div(&std)?;
    let mut x = (u * schedule.a_s_cum[k])?;
    let mut u_hat = x.clone();
    for level in (0..=k).rev() {
        let (a, s) = (schedule.a_s_cum[level], schedule.sigmas_cum[level]);
        let levels = level_tensor(level, rows, &dev)?;
        let (_, _, grad) = log_density_ratio_and_input_grad(model.energy_net(), &x, &levels)?;
        u_hat = ((&x + (grad * (s * s))?)? / a)?;
        if level > 0 {
            let (a_next, s_next) = (schedule.a_s_cum[level - 1], schedule.sigmas_cum[level - 1]);
            let eps = ((&x - (&u_hat * a)?)? / s)?;
            x = ((&u_hat * a_next)? + (eps * s_next)?)?;
        }
    }
    let x = u_hat
        .broadcast_mul(&std)?
        .broadcast_add(&mean)?
        .clamp(0f32, PIXEL_MAX)?;
    Ok((x.flatten_all()?.to_vec1()?, k))
}

pub fn run(args: &[String]) -> Result<()> {
    let a = Args::parse(args)?;
    let seed: u64 = a.get("seed", 0)?;
    let forced: Option<usize> = a.0.get("level").map(|v| v.parse()).transpose()?;
    let base = a.get("base", "mixture".to_string())?;
    let network = match base.as_str() {
        "mixture" => None,
        "iso" => Some(ddaebm_train::fit::default_network(64)),
        other => bail!("base must be mixture or iso, got {other:?}"),
    };
    let steps: Option<usize> = a.0.get("steps").map(|v| v.parse()).transpose()?;
    let methods: Vec<String> = a
        .get("methods", "dcd,short-run-cd,ddaebm".to_string())?
        .split(',')
        .map(str::to_string)
        .collect();
    let path = PathBuf::from(a.get("data", "../shared/data/digits.npz".to_string())?);
    if !path.exists() {
        bail!("{} is absent", path.display());
    }
    let mut x = load_matrix(&path, Some("X"))?;
    // 64-feature vectors, not images: the vector networks and their mixture base.
    x.image = None;
    let y = load_matrix(&path, Some("y"))?;
    let labels: Vec<usize> = y.data.iter().map(|&v| v as usize).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (train_idx, test_in, test_out) = stratified_split(&labels, 10, 5, 0.3, &mut rng);
    let train: Matrix = x.select(&train_idx);
    let held_in = x.select(&test_in);
    let held_out = x.select(&test_out);
    let (n, d) = (held_in.rows, x.cols);
    let uniform: Vec<f32> = (0..n * d)
        .map(|_| rng.random_range(0.0..PIXEL_MAX))
        .collect();
    let inverted: Vec<f32> = held_in.data.iter().map(|v| PIXEL_MAX - v).collect();
    let noisy: Vec<Vec<f32>> = NOISE_LEVELS
        .iter()
        .map(|&s| {
            held_in
                .data
                .iter()
                .map(|&v| {
                    let e: f64 = StandardNormal.sample(&mut rng);
                    (v + (e * s) as f32 * PIXEL_MAX).clamp(0.0, PIXEL_MAX)
                })
                .collect()
        })
        .collect();
    for method in &methods {
        let (method_cfg, train_cfg) = match method.as_str() {
            "dcd" => (
                MethodConfig::Dcd(DcdConfig::default()),
                TrainConfig::gcd_default(),
            ),
            "short-run-cd" => (
                MethodConfig::Dcd(DcdConfig {
                    short_run_cd: true,
                    ..DcdConfig::default()
                }),
                TrainConfig::gcd_default(),
            ),
            "ddaebm" => (MethodConfig::Ddaebm, TrainConfig::default()),
            other => bail!("unknown method {other:?}"),
        };
        let mut cfg = FitConfig {
            train: TrainConfig { seed, ..train_cfg },
            method: method_cfg,
            network: network.clone(),
            ..FitConfig::default()
        };
        if let Some(s) = steps {
            cfg.train.steps = s;
        }
        let start = Instant::now();
        let (m, _) = fit(&train, &cfg, &Device::Cpu, |_, _| {})?;
        let seconds = start.elapsed().as_secs_f64();
        let model = &m.model;
        let e_in = model.energy(&held_in.data, n)?;
        let near = auroc(&e_in, &model.energy(&held_out.data, held_out.rows)?);
        let noise = auroc(&e_in, &model.energy(&uniform, n)?);
        let inv = auroc(&e_in, &model.energy(&inverted, n)?);
        let mut denoising = vec![];
        for (s, noisy) in NOISE_LEVELS.iter().zip(&noisy) {
            let (clean, level) = denoise(model, noisy, n, s * f64::from(PIXEL_MAX), forced)?;
            denoising.push(serde_json::json!({
                "sigma": s,
                "level": level,
                "psnr_noisy": psnr(noisy, &held_in.data),
                "psnr_denoised": psnr(&clean, &held_in.data),
            }));
        }
        println!(
            "{}",
            serde_json::json!({
                "data": "digits (64-d vectors)", "method": method, "seed": seed, "base": base,
                "steps": cfg.train.steps, "fit_seconds": seconds,
                "auroc_near_5_9": near, "auroc_uniform_noise": noise, "auroc_inverted": inv,
                "denoising": denoising,
            })
        );
    }
    Ok(())
}
