//! `ddaebm-train demo`: fit built-in 2-D data (25 Gaussians; 8 Gaussians with `--method gcd` or
//! `--method dcd`), draw a PNG of data, samples and energy, and report mode coverage and the
//! energy's ranking.
//! With `--method gcd` the figure also shows the pre-trained DDPM's samples (the policy before
//! its first GCD iteration).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ddaebm::parse_device;
use ddaebm_train::data::Matrix;
use std::sync::{Arc, Mutex};

use ddaebm_train::fit::{
    default_network, default_network_for, fit, split_indices, FitConfig, FittedModel, MethodConfig,
    Snapshots,
};
use ddaebm_train::metrics::auroc;
use ddaebm_train::plot::{log_density_grid, write_demo_png, View};
use ddaebm_train::toy::{ModeReport, Toy};
use rand::SeedableRng;

use super::common::progress;
use super::train_args::TrainArgs;

// The arguments of `ddaebm-train demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Folder for demo.png and demo.safetensors.
    #[arg(long, default_value = "ddaebm-demo")]
    pub out_dir: PathBuf,
    /// Rows of toy data to fit on.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Samples drawn for the coverage report.
    #[arg(long, default_value_t = 4000)]
    pub samples: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Iterations of the DDAEBM `demo` unless `--steps` says otherwise: the 2-D sampler needs far
/// more than `fit`'s default to cover all 25 modes (README, "How the defaults were chosen").
/// GCD and DCD run `fit`'s defaults.
const DEMO_STEPS: usize = 30_000;

pub fn run(args: DemoArgs) -> Result<()> {
    let gcd = args.train.method == "gcd";
    let fit_defaults = gcd || args.train.method == "dcd";
    // GCD's and DCD's demos fit with `fit`'s default networks for the data (a mixture base
    // measure at 20 000 rows), as their measurements in `bench/methods` do; DDAEBM's shows its
    // learned energy over the isotropic base.
    let network = if fit_defaults {
        let (train_rows, _) = split_indices(args.rows, args.train.val_fraction, args.train.seed)?;
        default_network_for(2, train_rows.len())
    } else {
        default_network(2)
    };
    let mut cfg = args.train.config(network)?;
    if args.train.steps.is_none() && !fit_defaults {
        cfg.train.steps = DEMO_STEPS;
        // The demo's measurements (README) are of its 30 000 joint iterations alone.
        if args.train.generator_steps.is_none() {
            cfg.train.generator_steps = Some(0);
        }
    }
    let toy = if fit_defaults {
        Toy::gaussians8()
    } else {
        Toy::gaussians25()
    };
    let pretrained = gcd.then(|| capture_pretrained(&mut cfg, args.samples));
    let device = parse_device(&args.train.device)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("{}: cannot create folder", args.out_dir.display()))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.train.seed);
    let data = Matrix::new(args.rows, 2, toy.sample(args.rows, &mut rng))?;
    eprintln!(
        "demo: {}, {} rows, {} steps (batch {})",
        toy.name,
        args.rows,
        cfg.total_steps(2),
        cfg.train.batch_size
    );
    let (fitted, summary) = fit(&data, &cfg, &device, progress(cfg.total_steps(2)))?;
    let model_path = args.out_dir.join("demo.safetensors");
    fitted.save(&model_path)?;
    let report = demo_report(&toy, &fitted, args.samples, args.train.seed, &mut rng)?;
    let png = args.out_dir.join("demo.png");
    let n = 150u32;
    let half = if fit_defaults { 4.0 } else { 2.0 };
    let view = View {
        min: -half,
        max: half,
    };
    let log_density = log_density_grid(&fitted.model, view, n)?;
    let shown = &data.data[..data.data.len().min(2 * args.samples)];
    let pre = pretrained
        .map(|p| p.lock().expect("snapshot lock").clone())
        .unwrap_or_default();
    let mut panels: Vec<&[f32]> = vec![];
    if gcd {
        panels.push(&pre);
        let r = toy.mode_report(&pre);
        println!(
            "pre-trained DDPM samples ({} steps): {}/{} modes covered, {:.1}% within 3 sigma",
            fitted.metadata.schedule.num_timesteps,
            r.modes_covered,
            toy.centres.len(),
            100.0 * r.within_3_sigma
        );
    }
    panels.push(&report.samples);
    write_demo_png(&png, shown, &panels, &log_density, n, view)?;
    println!(
        "training: {:.1} s, {:.1} iterations/s",
        summary.seconds, summary.iterations_per_second
    );
    println!(
        "samples ({} steps): {}/{} modes covered, {:.1}% within 3 sigma of a centre",
        fitted.metadata.schedule.num_timesteps,
        report.modes.modes_covered,
        toy.centres.len(),
        100.0 * report.modes.within_3_sigma
    );
    println!(
        "energy AUROC, data vs points between modes: {:.4}",
        report.auroc_between_modes
    );
    println!("wrote {} and {}", png.display(), model_path.display());
    Ok(())
}

/// Asks `fit` for the policy's samples when the pre-training ends (GCD's first snapshot).
fn capture_pretrained(cfg: &mut FitConfig, rows: usize) -> Arc<Mutex<Vec<f32>>> {
    let MethodConfig::Gcd(g) = &cfg.method else {
        unreachable!("GCD only");
    };
    let at = g.pretrain_steps.max(1);
    let store = Arc::new(Mutex::new(vec![]));
    let sink = store.clone();
    cfg.snapshots = Some(Snapshots {
        every: at,
        rows,
        on_samples: Arc::new(move |step, samples: &[f32]| {
            if step == at {
                *sink.lock().expect("snapshot lock") = samples.to_vec();
            }
            Ok(())
        }),
    });
    store
}

struct DemoReport {
    samples: Vec<f32>,
    modes: ModeReport,
    auroc_between_modes: f64,
}

fn demo_report(
    toy: &Toy,
    fitted: &FittedModel,
    n: usize,
    seed: u64,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<DemoReport> {
    let samples = fitted.model.sample(n, seed)?;
    let modes = toy.mode_report(&samples);
    let fresh = toy.sample(1000, rng);
    let between = toy.between_modes(1000, rng);
    let e_in = fitted.model.energy(&fresh, 1000)?;
    let e_out = fitted.model.energy(&between, 1000)?;
    Ok(DemoReport {
        samples,
        modes,
        auroc_between_modes: auroc(&e_in, &e_out),
    })
}
