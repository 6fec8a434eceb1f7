//! The image benchmark of issue 6 on `../shared/data/digits.npz` (8×8 handwritten digits, pixel
//! values 0–16): fit the convolutional detector on digits 0–4 with the default settings, then
//!
//! * AUROC of the energy for held-out 0–4 against held-out 5–9 (near-OOD), uniform noise and
//!   inverted digits (far-OOD);
//! * distances between 4-step samples and held-out digits 0–4, next to the same distances for
//!   a per-pixel Gaussian fitted to the training digits and for the training digits themselves
//!   (the floor): MMD² with a Gaussian kernel at the median-heuristic bandwidth and at a quarter
//!   of it, and the leave-one-out 1-nearest-neighbour two-sample accuracy (0.5 = indistinguishable);
//! * a PNG grid of samples.
//!
//! `cargo run --release -p ddaebm-train --example digits -- [--steps N] [--seed S] [--out DIR]
//! [--method ddaebm|dcd|short-run-cd]` prints one JSON object (`--method` picks the training
//! method, with its defaults for images; `bench/methods/` runs the DCD ones). `bench/digits/README.md` has the numbers.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle::Device;
use ddaebm_train::data::{load_matrix, stratified_split, Matrix};
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::{fit, FitConfig, MethodConfig};
use ddaebm_train::metrics::auroc;
use ddaebm_train::plot::write_image_grid;
use ddaebm_train::trainer::TrainConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Share of each class held out for testing.
const TEST_FRACTION: f64 = 0.3;

fn main() -> Result<()> {
    let mut steps = None;
    let mut adversarial = None;
    let mut lr = None;
    let mut seed = 0u64;
    let mut method = MethodConfig::Ddaebm;
    let mut out = PathBuf::from("target/digits");
    let mut data_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/digits.npz");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("missing value");
        match a.as_str() {
            "--steps" => steps = Some(value()?.parse()?),
            "--seed" => seed = value()?.parse()?,
            "--out" => out = value()?.into(),
            "--data" => data_path = value()?.into(),
            "--adversarial-weight" => adversarial = Some(value()?.parse()?),
            "--lr" => lr = Some(value()?.parse::<f64>()?),
            "--method" => {
                method = match value()?.as_str() {
                    "ddaebm" => MethodConfig::Ddaebm,
                    "dcd" => MethodConfig::Dcd(DcdConfig::default()),
                    "short-run-cd" => MethodConfig::Dcd(DcdConfig {
                        short_run_cd: true,
                        ..DcdConfig::default()
                    }),
                    other => bail!("unknown method {other:?}: ddaebm, dcd or short-run-cd"),
                }
            }
            _ => bail!(
                "usage: digits [--steps N] [--seed S] [--out DIR] [--data digits.npz] \
                 [--adversarial-weight W] [--lr LR_ENERGY] [--method ddaebm|dcd|short-run-cd]"
            ),
        }
    }
    if !data_path.exists() {
        bail!("{} is absent", data_path.display());
    }
    std::fs::create_dir_all(&out)?;
    let x = load_matrix(&data_path, Some("X"))?;
    let y = load_matrix(&data_path, Some("y"))?;
    let labels: Vec<usize> = y.data.iter().map(|&v| v as usize).collect();

    // Stratified split: 30% of every class is held out.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (train_idx, test_in, test_out) = stratified_split(&labels, 10, 5, TEST_FRACTION, &mut rng);
    let train = x.select(&train_idx);
    let held_in = x.select(&test_in);
    let held_out = x.select(&test_out);

    let mut cfg = FitConfig {
        train: TrainConfig::image_default(),
        method,
        ..FitConfig::default()
    };
    cfg.train.seed = seed;
    if let Some(s) = steps {
        cfg.train.steps = s;
    }
    if let Some(w) = adversarial {
        cfg.train.adversarial_weight = w;
    }
    if let Some(lr) = lr {
        cfg.train.lr_energy = lr;
        cfg.train.lr_generator = lr / 2.0;
    }
    let start = Instant::now();
    let (fitted, summary) = fit(&train, &cfg, &Device::Cpu, |_, _| {})?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let model = &fitted.model;
    fitted.save(out.join("digits.safetensors"))?;

    let energy = |m: &Matrix| model.energy(&m.data, m.rows);
    let e_in = energy(&held_in)?;
    let e_near = energy(&held_out)?;
    let n = held_in.rows;
    let d = x.cols;
    let noise: Vec<f32> = (0..n * d).map(|_| rng.random_range(0.0..16.0)).collect();
    let e_noise = model.energy(&noise, n)?;
    let inverted: Vec<f32> = held_in.data.iter().map(|v| 16.0 - v).collect();
    let e_inverted = model.energy(&inverted, n)?;

    // Samples against held-out digits 0–4, in the [0, 1] pixel scale.
    let samples = model.sample(n, seed ^ 0xD161)?;
    let gaussian = per_pixel_gaussian(&train, n, &mut rng);
    let shown = 100.min(n) * d;
    for (name, rows) in [
        ("samples.png", &samples),
        ("held_out.png", &held_in.data),
        ("gaussian.png", &gaussian),
    ] {
        write_image_grid(
            out.join(name),
            &rows[..shown],
            [1, 8, 8],
            [0.0, 16.0],
            10,
            6,
        )?;
    }
    let scale = |v: &[f32]| v.iter().map(|p| p / 16.0).collect::<Vec<f32>>();
    let reference = scale(&held_in.data);
    let bandwidth = median_distance(&reference, d);
    let train_subset: Vec<f32> = train.data[..n.min(train.rows) * d].to_vec();
    let candidates = [
        ("samples", scale(&samples)),
        ("per_pixel_gaussian", scale(&gaussian)),
        ("training_digits", scale(&train_subset)),
    ];
    let mut mmd = serde_json::Map::new();
    let mut mmd_small = serde_json::Map::new();
    let mut nn = serde_json::Map::new();
    for (name, rows) in &candidates {
        mmd.insert(
            name.to_string(),
            mmd2(rows, &reference, d, bandwidth).into(),
        );
        mmd_small.insert(
            name.to_string(),
            mmd2(rows, &reference, d, bandwidth / 4.0).into(),
        );
        nn.insert(
            name.to_string(),
            one_nn_accuracy(rows, &reference, d).into(),
        );
    }

    let report = serde_json::json!({
        "seed": seed,
        "method": cfg.method,
        "steps": cfg.train.steps,
        "train_rows": summary.train_rows,
        "calibration_rows": summary.val_rows,
        "fit_seconds": fit_seconds,
        "iterations_per_second": summary.iterations_per_second,
        "test_in": n,
        "test_out": held_out.rows,
        "auroc": {
            "digits_5_9": auroc(&e_in, &e_near),
            "uniform_noise": auroc(&e_in, &e_noise),
            "inverted": auroc(&e_in, &e_inverted),
        },
        "mmd2_bandwidth": bandwidth,
        "mmd2": mmd,
        "mmd2_quarter_bandwidth": mmd_small,
        "one_nn_accuracy": nn,
        "flagged_in": e_in.iter().filter(|&&e| model.calibration().is_ood(e)).count() as f64 / n as f64,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `n` draws from independent per-pixel Gaussians fitted to `data`.
fn per_pixel_gaussian(data: &Matrix, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let d = data.cols;
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for row in data.data.chunks_exact(d) {
        for j in 0..d {
            mean[j] += f64::from(row[j]);
            sq[j] += f64::from(row[j]).powi(2);
        }
    }
    let rows = data.rows as f64;
    let std: Vec<f64> = (0..d)
        .map(|j| (sq[j] / rows - (mean[j] / rows).powi(2)).max(0.0).sqrt())
        .collect();
    (0..n * d)
        .map(|i| {
            let j = i % d;
            let e: f64 = StandardNormal.sample(rng);
            (mean[j] / rows + std[j] * e) as f32
        })
        .collect()
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

/// Median pairwise distance within `x` (rows of `d`).
fn median_distance(x: &[f32], d: usize) -> f64 {
    let rows: Vec<&[f32]> = x.chunks_exact(d).collect();
    let mut all = vec![];
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            all.push(sq_dist(rows[i], rows[j]).sqrt());
        }
    }
    all.sort_by(f64::total_cmp);
    all[all.len() / 2]
}

/// Leave-one-out 1-nearest-neighbour accuracy of telling the rows of `x` from those of `y`
/// (equal counts): 0.5 when the two sets are indistinguishable, 1 when every row's nearest
/// neighbour comes from its own set (Lopez-Paz & Oquab, "Revisiting classifier two-sample
/// tests", ICLR 2017).
fn one_nn_accuracy(x: &[f32], y: &[f32], d: usize) -> f64 {
    let rows: Vec<(&[f32], bool)> = x
        .chunks_exact(d)
        .map(|r| (r, true))
        .chain(y.chunks_exact(d).map(|r| (r, false)))
        .collect();
    let correct = (0..rows.len())
        .filter(|&i| {
            let nearest = (0..rows.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    sq_dist(rows[i].0, rows[a].0).total_cmp(&sq_dist(rows[i].0, rows[b].0))
                })
                .expect("at least two rows");
            rows[nearest].1 == rows[i].1
        })
        .count();
    correct as f64 / rows.len() as f64
}

/// Unbiased MMD² between the rows of `x` and `y` with the kernel `exp(−‖a − b‖² / (2h²))`.
fn mmd2(x: &[f32], y: &[f32], d: usize, h: f64) -> f64 {
    let k = |a: &[f32], b: &[f32]| (-sq_dist(a, b) / (2.0 * h * h)).exp();
    let xs: Vec<&[f32]> = x.chunks_exact(d).collect();
    let ys: Vec<&[f32]> = y.chunks_exact(d).collect();
    let within = |s: &[&[f32]]| {
        let mut t = 0.0;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if i != j {
                    t += k(s[i], s[j]);
                }
            }
        }
        t / (s.len() * (s.len() - 1)) as f64
    };
    let mut cross = 0.0;
    for a in &xs {
        for b in &ys {
            cross += k(a, b);
        }
    }
    within(&xs) + within(&ys) - 2.0 * cross / (xs.len() * ys.len()) as f64
}
