//! `ddaebm-train demo`: fit the built-in 2-D 25-Gaussians data, draw a PNG of data, samples and
//! energy, and report mode coverage and the energy's ranking.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ddaebm::parse_device;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{default_network, fit, FittedModel};
use ddaebm_train::metrics::auroc;
use ddaebm_train::plot::{write_demo_png, View};
use ddaebm_train::toy;
use rand::SeedableRng;

use super::common::progress;
use super::train_args::TrainArgs;

// The arguments of `ddaebm-train demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Folder for demo.png and demo.safetensors.
    #[arg(long, default_value = "ddaebm-demo")]
    pub out_dir: PathBuf,
    /// Rows of 25-Gaussians data to fit on.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Samples drawn for the coverage report.
    #[arg(long, default_value_t = 4000)]
    pub samples: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Iterations of `demo` unless `--steps` says otherwise: the 2-D sampler needs far more than
/// `fit`'s default to cover all 25 modes (README, "How the defaults were chosen").
const DEMO_STEPS: usize = 30_000;

pub fn run(args: DemoArgs) -> Result<()> {
    let mut cfg = args.train.config(default_network(2))?;
    if args.train.steps.is_none() {
        cfg.train.steps = DEMO_STEPS;
    }
    let device = parse_device(&args.train.device)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("{}: cannot create folder", args.out_dir.display()))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.train.seed);
    let data = Matrix::new(args.rows, 2, toy::sample(args.rows, &mut rng))?;
    eprintln!(
        "demo: 25-Gaussians, {} rows, {} steps (batch {})",
        args.rows, cfg.train.steps, cfg.train.batch_size
    );
    let (fitted, summary) = fit(&data, &cfg, &device, progress(cfg.train.steps))?;
    let model_path = args.out_dir.join("demo.safetensors");
    fitted.save(&model_path)?;
    let report = demo_report(&fitted, args.samples, args.train.seed, &mut rng)?;
    let png = args.out_dir.join("demo.png");
    let n = 150u32;
    let view = View {
        min: -2.0,
        max: 2.0,
    };
    let grid: Vec<f32> = (0..n)
        .flat_map(|j| (0..n).flat_map(move |i| [view.coordinate(i, n), view.coordinate(j, n)]))
        .collect();
    let log_density: Vec<f32> = fitted
        .model
        .energy(&grid, (n * n) as usize)?
        .into_iter()
        .map(|e| -e)
        .collect();
    let shown = &data.data[..data.data.len().min(2 * args.samples)];
    write_demo_png(&png, shown, &report.samples, &log_density, n, view)?;
    println!(
        "training: {:.1} s, {:.1} iterations/s",
        summary.seconds, summary.iterations_per_second
    );
    println!(
        "samples ({} steps): {}/25 modes covered, {:.1}% within 3 sigma of a centre",
        fitted.metadata.schedule.num_timesteps,
        report.modes.modes_covered,
        100.0 * report.modes.within_3_sigma
    );
    println!(
        "energy AUROC, data vs points between modes: {:.4}",
        report.auroc_between_modes
    );
    println!("wrote {} and {}", png.display(), model_path.display());
    Ok(())
}

struct DemoReport {
    samples: Vec<f32>,
    modes: toy::ModeReport,
    auroc_between_modes: f64,
}

fn demo_report(
    fitted: &FittedModel,
    n: usize,
    seed: u64,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<DemoReport> {
    let samples = fitted.model.sample(n, seed)?;
    let modes = toy::mode_report(&samples);
    let fresh = toy::sample(1000, rng);
    let between = toy::between_modes(1000, rng);
    let e_in = fitted.model.energy(&fresh, 1000)?;
    let e_out = fitted.model.energy(&between, 1000)?;
    Ok(DemoReport {
        samples,
        modes,
        auroc_between_modes: auroc(&e_in, &e_out),
    })
}
