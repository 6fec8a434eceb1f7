//! `methods-toy`: the training methods side by side on the 2-D toy data (`bench/methods/`).
//!
//! `cargo run --release -p xtask -- methods-toy [key=value ...]` fits, on `rows` points of the
//! chosen toy data (seeded), a GCD model (DDPM pre-training then GCD) and, unless `ddaebm=0`, a
//! DDAEBM model with `fit`'s defaults, and prints one JSON line per sampler:
//!
//! * `ddpm-1000` and `ddpm-T`: the pre-trained DDPM (the GCD run stopped before its first GCD
//!   iteration) sampled on all its fine levels and on the `T` levels of the policy;
//! * `gcd-T`: the GCD policy; `ddaebm-4`: DDAEBM's generator;
//!
//! each with modes covered, the share of samples within 3σ of a centre, the sliced
//! Wasserstein-1 distance to held-out data, and (for the fitted models) the energy's AUROC of
//! held-out data against points between modes, plus training seconds.
//!
//! Keys: `toy` (8 or 25), `rows`, `seed`, `steps`, `pretrain`, `tau`, `velocity`, `gamma`,
//! `lr_energy`, `lr_sampler`, `timesteps`, `samples`, `ddaebm` (0/1), `ddpm1000` (0/1),
//! `out` (a folder for the training rows, the models and their samples as .npy).
//!
//! With `method=dcd`, DCD and short-run CD instead ([`run_dcd`]; keys `langevin`, `scale`,
//! `gamma`, `steps`, `timesteps`, `base`, `baseline`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle::Device;
use ddaebm::{Model, Sampler};
use ddaebm_train::data::Matrix;
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::{fit, FitConfig, MethodConfig};
use ddaebm_train::gcd::GcdConfig;
use ddaebm_train::metrics::{auroc, sliced_wasserstein};
use ddaebm_train::plot::{log_density_grid, write_demo_png, View};
use ddaebm_train::toy::Toy;
use ddaebm_train::trainer::TrainConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `key=value` arguments (shared with [`crate::methods_digits`]).
pub(crate) struct Args(pub(crate) HashMap<String, String>);

impl Args {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut m = HashMap::new();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .with_context(|| format!("expected key=value, got {a:?}"))?;
            m.insert(k.to_string(), v.to_string());
        }
        Ok(Self(m))
    }

    pub(crate) fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}={v:?} does not parse")),
        }
    }
}

/// Raw-scale samples from the DDPM inside a GCD model, with `steps` levels.
fn ddpm_samples(model: &Model, n: usize, steps: usize, seed: u64) -> Result<Vec<f32>> {
    let Sampler::Policy(policy) = model.sampler() else {
        bail!("not a GCD model");
    };
    let dev = Device::Cpu;
    let x = policy.sample_ddpm(n, model.input_dim(), steps, seed, &dev)?;
    let (mean, std) = model.metadata().normalization.tensors(&dev)?;
    Ok(x.broadcast_mul(&std)?
        .broadcast_add(&mean)?
        .flatten_all()?
        .to_vec1()?)
}

struct Report<'a> {
    toy: &'a Toy,
    held_out: &'a [f32],
    between: &'a [f32],
}

impl Report<'_> {
    fn line(
        &self,
        name: &str,
        samples: &[f32],
        model: Option<&Model>,
        extra: serde_json::Value,
    ) -> Result<()> {
        let r = self.toy.mode_report(samples);
        let mut v = serde_json::json!({
            "toy": self.toy.name,
            "sampler": name,
            "modes": r.modes_covered,
            "of": self.toy.centres.len(),
            "within_3_sigma": r.within_3_sigma,
            "sliced_w1": sliced_wasserstein(samples, self.held_out),
        });
        if let Some(m) = model {
            let n = self.held_out.len() / 2;
            let e_in = m.energy(self.held_out, n)?;
            let e_out = m.energy(self.between, self.between.len() / 2)?;
            v["energy_auroc"] = serde_json::json!(auroc(&e_in, &e_out));
        }
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in more {
                obj.insert(k.clone(), x.clone());
            }
        }
        println!("{v}");
        Ok(())
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let a = Args::parse(args)?;
    let toy = match a.get("toy", 8usize)? {
        8 => Toy::gaussians8(),
        25 => Toy::gaussians25(),
        k => bail!("toy must be 8 or 25, got {k}"),
    };
    let seed: u64 = a.get("seed", 0)?;
    let rows: usize = a.get("rows", 20_000)?;
    let n_samples: usize = a.get("samples", 4000)?;
    let out: Option<PathBuf> = a.0.get("out").map(PathBuf::from);
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xDA7A);
    let train = toy.sample(rows, &mut rng);
    // Shuffled so that a held-out split does not follow the centre cycle.
    let mut idx: Vec<usize> = (0..rows).collect();
    for i in (1..rows).rev() {
        idx.swap(i, rng.random_range(0..=i));
    }
    let data = Matrix {
        rows,
        cols: 2,
        data: idx
            .iter()
            .flat_map(|&i| [train[2 * i], train[2 * i + 1]])
            .collect(),
        image: None,
    };
    if let Some(dir) = &out {
        ddaebm_train::data::write_npy(dir.join("data.npy"), &data.data, &[rows, 2])?;
    }
    let held_out = toy.sample(n_samples, &mut rng);
    let between = toy.between_modes(n_samples, &mut rng);
    // A draw that changes nothing but the stream position; kept because the stored
    // results-toy.jsonl were drawn with it (the reference sample below depends on it).
    let _: f64 = StandardNormal.sample(&mut rng);
    let report = Report {
        toy: &toy,
        held_out: &held_out,
        between: &between,
    };
    let oracle_in: Vec<f32> = toy.log_density(&held_out).iter().map(|v| -v).collect();
    let oracle_out: Vec<f32> = toy.log_density(&between).iter().map(|v| -v).collect();
    println!(
        "{}",
        serde_json::json!({"toy": toy.name, "sampler": "data", "oracle_energy_auroc": auroc(&oracle_in, &oracle_out),
            "modes": toy.mode_report(&held_out).modes_covered, "within_3_sigma": toy.mode_report(&held_out).within_3_sigma,
            "sliced_w1": sliced_wasserstein(&toy.sample(n_samples, &mut rng), &held_out)})
    );
    match a.0.get("method").map(String::as_str) {
        Some("dcd") => return run_dcd(&a, &data, &report, out.as_deref(), seed, n_samples),
        Some("ddaebm") => return run_ddaebm(&a, &data, &report, out.as_deref(), seed, n_samples),
        _ => {}
    }
    let dev = Device::Cpu;
    let d = GcdConfig::default();
    let gcd = GcdConfig {
        pretrain_steps: a.get("pretrain", d.pretrain_steps)?,
        tau: a.get("tau", d.tau)?,
        velocity_weight: a.get("velocity", d.velocity_weight)?,
        gamma: a.get("gamma", d.gamma)?,
        lr_energy: a.get("lr_energy", d.lr_energy)?,
        lr_sampler: a.get("lr_sampler", d.lr_sampler)?,
        ..d
    };
    let mut train_cfg = TrainConfig::gcd_default();
    train_cfg.seed = seed;
    train_cfg.steps = a.get("steps", train_cfg.steps)?;
    train_cfg.schedule.num_timesteps = a.get("timesteps", train_cfg.schedule.num_timesteps)?;
    let t = train_cfg.schedule.num_timesteps;
    let cfg = |steps: usize| FitConfig {
        train: TrainConfig {
            steps,
            ..train_cfg.clone()
        },
        method: MethodConfig::Gcd(gcd.clone()),
        ..FitConfig::default()
    };
    let save = |name: &str, m: &ddaebm_train::fit::FittedModel, s: &[f32]| -> Result<()> {
        if let Some(dir) = &out {
            m.save(dir.join(format!("{name}.safetensors")))?;
            ddaebm_train::data::write_npy(
                dir.join(format!("{name}-samples.npy")),
                s,
                &[s.len() / 2, 2],
            )?;
        }
        Ok(())
    };
    // The pre-trained DDPM: the GCD run stopped before its first GCD iteration.
    let start = Instant::now();
    let (pre, _) = fit(&data, &cfg(0), &dev, |_, _| {})?;
    let pre_seconds = start.elapsed().as_secs_f64();
    if a.get("ddpm1000", 1u8)? == 1 {
        let s = ddpm_samples(&pre.model, n_samples, gcd.ddpm_steps, seed)?;
        report.line(
            "ddpm-1000",
            &s,
            None,
            serde_json::json!({"seconds": pre_seconds}),
        )?;
    }
    let s = ddpm_samples(&pre.model, n_samples, t, seed)?;
    report.line(
        &format!("ddpm-{t}"),
        &s,
        None,
        serde_json::json!({"seconds": pre_seconds}),
    )?;
    save("ddpm", &pre, &s)?;
    let start = Instant::now();
    let (g, _) = fit(&data, &cfg(train_cfg.steps), &dev, |_, _| {})?;
    let secs = start.elapsed().as_secs_f64();
    let s = g.model.sample(n_samples, seed)?;
    report.line(
        &format!("gcd-{t}"),
        &s,
        Some(&g.model),
        serde_json::json!({"seconds": secs, "tau": gcd.tau, "steps": train_cfg.steps, "pretrain": gcd.pretrain_steps}),
    )?;
    save("gcd", &g, &s)?;
    if a.get("ddaebm", 1u8)? == 1 {
        let mut c = FitConfig::default();
        c.train.seed = seed;
        let start = Instant::now();
        let (m, _) = fit(&data, &c, &dev, |_, _| {})?;
        let secs = start.elapsed().as_secs_f64();
        let s = m.model.sample(n_samples, seed)?;
        report.line(
            &format!("ddaebm-{}", m.metadata.schedule.num_timesteps),
            &s,
            Some(&m.model),
            serde_json::json!({"seconds": secs, "steps": c.train.steps}),
        )?;
        save("ddaebm", &m, &s)?;
    }
    Ok(())
}

/// `method=ddaebm`: one DDAEBM fit with `fit`'s defaults for the data (mixture base measure at
/// 20 000 rows), except `steps`, `generator_steps`, `lr_generator` and `base=iso` when given.
/// One line: the sampler's report, the energy's AUROC, seconds, and the training record's
/// sample-quality figure. With `out`, the model and its samples.
fn run_ddaebm(
    a: &Args,
    data: &Matrix,
    report: &Report,
    out: Option<&std::path::Path>,
    seed: u64,
    n_samples: usize,
) -> Result<()> {
    let mut c = FitConfig::default();
    c.train.seed = seed;
    c.train.steps = a.get("steps", c.train.steps)?;
    if let Some(g) = a.0.get("generator_steps") {
        c.train.generator_steps = Some(g.parse().context("generator_steps")?);
    }
    c.train.lr_generator_phase = a.get("lr_generator_phase", c.train.lr_generator_phase)?;
    c.train.lr_generator = a.get("lr_generator", c.train.lr_generator)?;
    if a.0.get("base").map(String::as_str) == Some("iso") {
        c.network = Some(ddaebm_train::fit::default_network(2));
    }
    let start = Instant::now();
    let (m, summary) = fit(data, &c, &Device::Cpu, |_, _| {})?;
    let secs = start.elapsed().as_secs_f64();
    let s = m.model.sample(n_samples, seed)?;
    report.line(
        &format!("ddaebm-{}", m.metadata.schedule.num_timesteps),
        &s,
        Some(&m.model),
        serde_json::json!({"seconds": secs, "steps": c.train.steps,
            "generator_steps": m.metadata.training["config"]["generator_steps"],
            "lr_generator_phase": c.train.lr_generator_phase, "lr_generator": c.train.lr_generator,
            "sample_quality": summary.sample_quality}),
    )?;
    if let Some(dir) = out {
        m.save(dir.join("ddaebm.safetensors"))?;
        ddaebm_train::data::write_npy(dir.join("ddaebm-samples.npy"), &s, &[s.len() / 2, 2])?;
    }
    Ok(())
}

/// `method=dcd`: DCD and the short-run CD baseline with the same settings and budget (`fit`'s
/// DCD defaults unless `steps`, `langevin`, `scale` or `gamma` say otherwise; `base=iso` for
/// the isotropic Gaussian base instead of the mixture; `baseline=0` skips short-run CD), one
/// line each. With `out`, each model,
/// its samples and a PNG (data | samples | exp(−E) on the square ±4) are written there.
fn run_dcd(
    a: &Args,
    data: &Matrix,
    report: &Report,
    out: Option<&std::path::Path>,
    seed: u64,
    n_samples: usize,
) -> Result<()> {
    let d = DcdConfig::default();
    let mut train_cfg = TrainConfig::gcd_default();
    train_cfg.seed = seed;
    train_cfg.steps = a.get("steps", train_cfg.steps)?;
    train_cfg.schedule.num_timesteps = a.get("timesteps", train_cfg.schedule.num_timesteps)?;
    let t = train_cfg.schedule.num_timesteps;
    let base = a.get("base", "mixture".to_string())?;
    let network = match base.as_str() {
        "mixture" => None,
        "iso" => Some(ddaebm_train::fit::default_network(2)),
        other => bail!("base must be mixture or iso, got {other:?}"),
    };
    let runs: &[bool] = match a.get("baseline", 1u8)? {
        0 => &[false],
        _ => &[false, true],
    };
    for &short_run_cd in runs {
        let dcd = DcdConfig {
            langevin_steps: a.get("langevin", d.langevin_steps)?,
            step_scale: a.get("scale", d.step_scale)?,
            gamma: a.get("gamma", d.gamma)?,
            short_run_cd,
            ..d.clone()
        };
        let cfg = FitConfig {
            train: train_cfg.clone(),
            method: MethodConfig::Dcd(dcd.clone()),
            network: network.clone(),
            ..FitConfig::default()
        };
        let start = Instant::now();
        let (m, _) = fit(data, &cfg, &Device::Cpu, |_, _| {})?;
        let secs = start.elapsed().as_secs_f64();
        let samples = m.model.sample(n_samples, seed)?;
        let name = if short_run_cd { "short-run-cd" } else { "dcd" };
        report.line(
            &format!("{name}-{t}"),
            &samples,
            Some(&m.model),
            serde_json::json!({"seconds": secs, "steps": train_cfg.steps, "base": base,
                "langevin_steps": dcd.langevin_steps, "step_scale": dcd.step_scale}),
        )?;
        if let Some(dir) = out {
            let stem = format!("{name}-{base}");
            m.save(dir.join(format!("{stem}.safetensors")))?;
            ddaebm_train::data::write_npy(
                dir.join(format!("{stem}-samples.npy")),
                &samples,
                &[samples.len() / 2, 2],
            )?;
            let view = View {
                min: -4.0,
                max: 4.0,
            };
            let n = 150u32;
            let grid = log_density_grid(&m.model, view, n)?;
            let shown = &data.data[..data.data.len().min(2 * n_samples)];
            write_demo_png(
                dir.join(format!("{stem}.png")),
                shown,
                &[&samples],
                &grid,
                n,
                view,
            )?;
        }
    }
    Ok(())
}
