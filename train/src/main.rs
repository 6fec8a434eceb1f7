//! `ddaebm-train`: fit, score, sample, evaluate and inspect ddaebm detectors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ddaebm::{parse_device, ImageConfig, Model, NetworkConfig, ScheduleConfig};
use ddaebm_train::data::{load_matrix, write_npy, Matrix};
use ddaebm_train::fit::{
    assemble, default_image_network, default_network, default_network_for, fit, pixel_range_of,
    split_indices, CheckpointConfig, FitConfig, FittedModel, Interrupted, Snapshots,
};
use ddaebm_train::metrics::{aupr, auroc, fpr_at_tpr};
use ddaebm_train::plot::{write_demo_png, write_image_grid, View};
use ddaebm_train::toy;
use ddaebm_train::trainer::{StepStats, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

/// Training allocates and frees a buffer per tensor operation (hundreds per step, up to a few
/// hundred KB each); mimalloc reuses them where glibc's malloc unmaps and re-faults the large
/// ones (`bench/train_speed.sh`, see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (the same in its v2 and v3 headers;
/// libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc to keep freed memory instead of returning it to the system after 10 ms: a
/// training step frees and re-allocates the same buffers, and handing them back made every step
/// fault fresh zeroed pages in (+7% iterations/s on the 25-Gaussians benchmark without it). The
/// process holds on to its peak working set, which training reaches every step anyway.
fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    debug_assert_eq!(
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
        -1
    );
}

#[derive(Parser)]
#[command(
    name = "ddaebm-train",
    version,
    about = "Fit and use DDAEBM out-of-distribution detectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a detector on in-distribution rows and write a model file.
    Fit(FitArgs),
    /// Write the energy of every row (higher = more out-of-distribution) as a 1-D f32 .npy.
    Score {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Array name inside a .npz file.
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Generate rows from the model (raw feature scale) as an (n, d) f32 .npy, and for an image
    /// model optionally a PNG grid of them.
    Sample {
        #[arg(long)]
        model: PathBuf,
        #[arg(short = 'n', long = "num", default_value_t = 1000)]
        n: usize,
        /// The samples as .npy (an image model's as (n, C, H, W)).
        #[arg(long, required_unless_present = "grid")]
        out: Option<PathBuf>,
        /// A PNG grid of the samples (image models only).
        #[arg(long)]
        grid: Option<PathBuf>,
        /// Images per row of the grid.
        #[arg(long, default_value_t = 10)]
        columns: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// AUROC, AUPR (OOD positive) and FPR at 95% TPR of in-distribution vs OOD rows.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        id: PathBuf,
        #[arg(long)]
        ood: PathBuf,
        #[arg(long)]
        key: Option<String>,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Print the model's metadata as JSON.
    Inspect {
        #[arg(long)]
        model: PathBuf,
    },
    /// Re-calibrate an existing model's threshold and p-values on new in-distribution rows.
    Calibrate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value_t = 0.95)]
        tpr: f64,
        /// Output path (default: overwrite --model, atomically).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Fit the built-in 2-D 25-Gaussians data, write a PNG and report mode coverage.
    Demo(DemoArgs),
}

#[derive(Args, Clone)]
struct TrainArgs {
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for training. The default networks are small enough that one thread is
    /// fastest (a second one costs more in synchronisation than it gains); 0 uses candle's
    /// default (all physical cores). RAYON_NUM_THREADS, when set, wins.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Training iterations (each one energy step and one generator step).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Diffusion steps T.
    #[arg(long, default_value_t = 4)]
    timesteps: usize,
    /// Share of rows held out for calibration (at least 100 rows, or a third of small data).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Target true-positive rate of the stored threshold.
    #[arg(long, default_value_t = 0.95)]
    tpr: f64,
    /// Adam learning rate of the energy network.
    #[arg(long)]
    lr_energy: Option<f64>,
    /// Adam learning rate of the generator and encoder.
    #[arg(long)]
    lr_generator: Option<f64>,
    /// R1 penalty weight γ.
    #[arg(long)]
    r1_gamma: Option<f64>,
    /// Weight of the adversarial (generator-negatives) term of the energy loss.
    #[arg(long, hide = true)]
    adversarial_weight: Option<f64>,
    /// Weight of denoising score matching in the energy loss.
    #[arg(long, hide = true)]
    dsm_weight: Option<f64>,
    /// Weight of NCE against the Gaussian base in the energy loss.
    #[arg(long, hide = true)]
    nce_weight: Option<f64>,
    /// Weight of conditional NCE (perturbed data rows) in the energy loss.
    #[arg(long, hide = true)]
    cnce_weight: Option<f64>,
    /// Energy without the Gaussian base measure and input soft clip (the reference network).
    #[arg(long, hide = true)]
    plain_energy: bool,
    /// Range of the conditional-NCE perturbation scale, "lo,hi" (normalised units).
    #[arg(long, hide = true, value_delimiter = ',')]
    cnce_scale: Option<Vec<f64>>,
    /// Widths of the x- and t-branch MLPs, comma-separated (default 16,32).
    #[arg(long, hide = true, value_delimiter = ',')]
    branch_widths: Option<Vec<usize>>,
    /// Standard deviation of the energy's Gaussian base measure (normalised units).
    #[arg(long, hide = true)]
    base_std: Option<f32>,
    /// Components of the spherical Gaussian-mixture base measure (at most one per 25 training
    /// rows); 0 = the isotropic Gaussian base of --base-std.
    #[arg(long, hide = true)]
    base_components: Option<usize>,
    /// Soft clip of the energy MLP's input (normalised units; 0 = off).
    #[arg(long, hide = true)]
    soft_clip: Option<f32>,
    /// EMA decay of the stored weights (0 disables).
    #[arg(long)]
    ema: Option<f64>,
    /// Hidden width of the head MLPs.
    #[arg(long)]
    width: Option<usize>,
    /// Size of the generator's latent z.
    #[arg(long)]
    latent_dim: Option<usize>,
    /// β_max of the schedule.
    #[arg(long, hide = true)]
    beta_max: Option<f64>,
    /// β_min of the schedule.
    #[arg(long, hide = true)]
    beta_min: Option<f64>,
    /// Variance schedule: vp or geometric.
    #[arg(long, hide = true)]
    schedule_kind: Option<String>,
    /// Raw pixel range of image data, "lo,hi", mapped to [−1, 1] [default: 0,255 for 8-bit
    /// images, else the data's minimum and maximum].
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pixel_range: Option<Vec<f32>>,
    /// Channels of the first stage of the image networks (default 32).
    #[arg(long)]
    base_channels: Option<usize>,
    /// Floor of the reconstruction variance (natural log).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    rec_logvar_floor: Option<f64>,
}

#[derive(Args)]
struct FitArgs {
    /// In-distribution rows: .npy (2-D), .npz (array X unless --key) or .csv.
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    key: Option<String>,
    /// Where to write the model (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Training checkpoint file [default: the --out path with `.ckpt` appended]. Holds the
    /// whole training state; deleted once the model is written.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Iterations between checkpoints (0: only on Ctrl-C). Each is written atomically.
    #[arg(long, default_value_t = 250)]
    checkpoint_every: usize,
    /// Continue from the checkpoint when there is one (same data and settings; --steps may
    /// grow). The result is the model an uninterrupted run would have written.
    #[arg(long)]
    resume: bool,
    /// Image data: every N iterations, write a PNG grid of 64 samples from the current
    /// networks to `--sample-dir` (0: never).
    #[arg(long, default_value_t = 0)]
    sample_every: usize,
    /// Folder for the `--sample-every` grids (`step-000500.png`, …) [default: beside --out].
    #[arg(long)]
    sample_dir: Option<PathBuf>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Folder for demo.png and demo.safetensors.
    #[arg(long, default_value = "ddaebm-demo")]
    out_dir: PathBuf,
    /// Rows of 25-Gaussians data to fit on.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Samples drawn for the coverage report.
    #[arg(long, default_value_t = 4000)]
    samples: usize,
    #[command(flatten)]
    train: TrainArgs,
}

impl TrainArgs {
    /// The default networks for `data` (vector or image rows) with this run's overrides.
    fn network_for(&self, data: &Matrix) -> Result<NetworkConfig> {
        let Some(layout) = data.image else {
            let (train_rows, _) = split_indices(data.rows, self.val_fraction, self.seed)?;
            return Ok(default_network_for(data.cols, train_rows.len()));
        };
        let range = match self.pixel_range.as_deref() {
            None => pixel_range_of(data),
            Some(&[lo, hi]) => [lo, hi],
            Some(v) => bail!("--pixel-range takes two values lo,hi; got {v:?}"),
        };
        let mut network = default_image_network(layout.shape, range);
        if let (Some(c), Some(image)) = (self.base_channels, network.image.as_mut()) {
            image.base_channels = c;
        }
        network.validate()?;
        Ok(network)
    }

    fn config(&self, network: NetworkConfig) -> Result<FitConfig> {
        let defaults = match network.image {
            Some(_) => TrainConfig::image_default(),
            None => TrainConfig::default(),
        };
        let mut network = network;
        if let Some(w) = self.width {
            network.head_widths = vec![w; network.head_widths.len()];
        }
        if let Some(widths) = &self.branch_widths {
            network.branch_widths = widths.clone();
        }
        if let Some(nz) = self.latent_dim {
            network.latent_dim = nz;
        }
        if let Some(s) = self.base_std {
            network.base_std = s;
        }
        if let Some(k) = self.base_components {
            network.base_components = k;
            if k > 0 {
                network.base_std = 0.0;
            } else if network.base_std == 0.0 && self.base_std.is_none() {
                network.base_std = ddaebm_train::fit::DEFAULT_BASE_STD;
            }
        }
        if let Some(c) = self.soft_clip {
            network.input_soft_clip = c;
        }
        if self.plain_energy {
            network.base_std = 0.0;
            network.input_soft_clip = 0.0;
        }
        let ema_decay = match self.ema {
            Some(d) if d <= 0.0 => None,
            Some(d) if d < 1.0 => Some(d),
            Some(d) => bail!("--ema must be below 1, got {d}"),
            None => defaults.ema_decay,
        };
        if !(self.tpr > 0.0 && self.tpr < 1.0) {
            bail!("--tpr must be in (0, 1), got {}", self.tpr);
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!(
                "--val-fraction must be in [0, 1), got {}",
                self.val_fraction
            );
        }
        Ok(FitConfig {
            train: TrainConfig {
                steps: self.steps.unwrap_or(defaults.steps),
                batch_size: self.batch_size.unwrap_or(defaults.batch_size),
                lr_energy: self.lr_energy.unwrap_or(defaults.lr_energy),
                lr_generator: self.lr_generator.unwrap_or(defaults.lr_generator),
                r1_gamma: self.r1_gamma.unwrap_or(defaults.r1_gamma),
                adversarial_weight: self
                    .adversarial_weight
                    .unwrap_or(defaults.adversarial_weight),
                dsm_weight: self.dsm_weight.unwrap_or(defaults.dsm_weight),
                nce_weight: self.nce_weight.unwrap_or(defaults.nce_weight),
                cnce_weight: self.cnce_weight.unwrap_or(defaults.cnce_weight),
                cnce_scale: match self.cnce_scale.as_deref() {
                    None => defaults.cnce_scale,
                    Some(&[lo, hi]) => (lo, hi),
                    Some(v) => bail!("--cnce-scale takes two values lo,hi; got {v:?}"),
                },
                ema_decay,
                seed: self.seed,
                schedule: ScheduleConfig {
                    num_timesteps: self.timesteps,
                    beta_max: self.beta_max.unwrap_or(defaults.schedule.beta_max),
                    beta_min: self.beta_min.unwrap_or(defaults.schedule.beta_min),
                    kind: match self.schedule_kind.as_deref() {
                        None => defaults.schedule.kind,
                        Some("vp") => ddaebm::VarianceKind::Vp,
                        Some("geometric") => ddaebm::VarianceKind::Geometric,
                        Some(other) => bail!("unknown schedule kind {other:?}"),
                    },
                    ..defaults.schedule.clone()
                },
                rec_logvar_floor: self.rec_logvar_floor.unwrap_or(defaults.rec_logvar_floor),
                ..defaults
            },
            network: Some(network),
            pixel_range: None,
            val_fraction: self.val_fraction,
            target_tpr: self.tpr,
            checkpoint: None,
            stop: None,
            snapshots: None,
        })
    }
}

/// Progress display: a bar with live losses on a terminal, plain lines otherwise.
fn progress(total: usize) -> impl FnMut(usize, &StepStats) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        bar
    });
    let every = (total / 20).max(1);
    let start = Instant::now();
    move |step, s| {
        let msg = format!(
            "L_E {:+.3} L_G {:+.3} R1 {:.3} f_real {:+.2} f_fake {:+.2}",
            s.loss_energy, s.loss_generator, s.r1, s.f_real, s.f_fake
        );
        match &bar {
            Some(bar) => {
                bar.set_position(step as u64 + 1);
                if step % 10 == 0 {
                    bar.set_message(msg);
                }
                if step + 1 == total {
                    bar.finish_and_clear();
                }
            }
            None if (step + 1) % every == 0 || step + 1 == total => eprintln!(
                "step {}/{total} ({:.0}s) {msg}",
                step + 1,
                start.elapsed().as_secs_f64()
            ),
            None => {}
        }
    }
}

fn load_rows_for(model: &Model, path: &Path, key: Option<&str>) -> Result<Matrix> {
    let m = load_matrix(path, key)?;
    if m.cols != model.input_dim() {
        bail!(
            "{}: rows have {} features but the model expects {}",
            path.display(),
            m.cols,
            model.input_dim()
        );
    }
    Ok(m)
}

fn open_model(path: &Path, device: &str) -> Result<Model> {
    let device = parse_device(device)?;
    Model::open(path, &device).with_context(|| path.display().to_string())
}

/// Makes the first Ctrl-C (SIGINT) or SIGTERM raise the returned flag, so that `fit` stops
/// after the current iteration and writes a checkpoint; a second one exits at once.
fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this iteration to write a checkpoint (again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}

fn cmd_fit(args: FitArgs) -> Result<()> {
    let data = load_matrix(&args.data, args.key.as_deref())?;
    let mut cfg = args.train.config(args.train.network_for(&data)?)?;
    let device = parse_device(&args.train.device)?;
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    // Left behind when a run was killed while writing one of them.
    ddaebm::format::remove_stale_temporaries(&checkpoint);
    ddaebm::format::remove_stale_temporaries(&args.out);
    if args.resume && checkpoint.exists() {
        eprintln!("resuming from {}", checkpoint.display());
    } else if args.resume {
        eprintln!(
            "no checkpoint at {}: starting from the beginning",
            checkpoint.display()
        );
    }
    cfg.checkpoint = Some(CheckpointConfig {
        path: checkpoint.clone(),
        every: args.checkpoint_every,
        resume: args.resume,
    });
    cfg.stop = Some(stop_on_ctrl_c()?);
    if args.sample_every > 0 {
        let Some(image) = cfg.network.as_ref().and_then(|n| n.image.clone()) else {
            bail!(
                "--sample-every needs image data; {} holds vector rows",
                args.data.display()
            );
        };
        let dir = match &args.sample_dir {
            Some(d) => d.clone(),
            None => args
                .out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        cfg.snapshots = Some(Snapshots {
            every: args.sample_every,
            rows: 64,
            on_samples: Arc::new(move |step, samples: &[f32]| {
                let path = dir.join(format!("step-{step:06}.png"));
                write_sample_grid(&path, samples, &image, 8)
            }),
        });
    }
    eprintln!(
        "fitting {} rows × {} features for {} steps (batch {}) on {}",
        data.rows,
        data.cols,
        cfg.train.steps,
        cfg.train.batch_size.min(data.rows),
        args.train.device
    );
    let (fitted, summary) = fit(&data, &cfg, &device, progress(cfg.train.steps))?;
    fitted.save(&args.out)?;
    // The model is on disk: the checkpoint has served its purpose.
    if checkpoint.exists() {
        std::fs::remove_file(&checkpoint)
            .with_context(|| format!("cannot remove checkpoint {}", checkpoint.display()))?;
    }
    if let Some(step) = summary.resumed_from {
        eprintln!("resumed at iteration {step} of {}", cfg.train.steps);
    }
    eprintln!(
        "wrote {} ({:.1} it/s, {:.0} s; threshold {:.4} at TPR {} on {} held-out rows)",
        args.out.display(),
        summary.iterations_per_second,
        summary.seconds,
        fitted.metadata.calibration.threshold,
        cfg.target_tpr,
        summary.val_rows
    );
    Ok(())
}

/// Writes image rows (raw pixel scale) as a PNG grid, each pixel 4×4 (8×8 for images up to 16
/// pixels a side).
fn write_sample_grid(path: &Path, rows: &[f32], image: &ImageConfig, columns: usize) -> Result<()> {
    let scale = if image.height.max(image.width) <= 16 {
        8
    } else {
        4
    };
    write_image_grid(
        path,
        rows,
        [image.channels, image.height, image.width],
        image.pixel_range,
        columns,
        scale,
    )
}

/// Iterations of `demo` unless `--steps` says otherwise: the 2-D sampler needs far more than
/// `fit`'s default to cover all 25 modes (README, "How the defaults were chosen").
const DEMO_STEPS: usize = 30_000;

fn cmd_demo(args: DemoArgs) -> Result<()> {
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fit(args) => cmd_fit(args),
        Command::Demo(args) => cmd_demo(args),
        Command::Score {
            model,
            data,
            key,
            out,
            device,
        } => {
            let m = open_model(&model, &device)?;
            let rows = load_rows_for(&m, &data, key.as_deref())?;
            let e = m.energy(&rows.data, rows.rows)?;
            write_npy(&out, &e, &[e.len()])?;
            eprintln!("wrote {} energies to {}", e.len(), out.display());
            Ok(())
        }
        Command::Sample {
            model,
            n,
            out,
            grid,
            columns,
            seed,
            device,
        } => {
            if n == 0 {
                bail!("-n must be at least 1");
            }
            let m = open_model(&model, &device)?;
            let image = m.metadata().network.image.clone();
            if grid.is_some() && image.is_none() {
                bail!(
                    "--grid needs an image model; {} holds vector data",
                    model.display()
                );
            }
            let s = m.sample(n, seed)?;
            if let Some(out) = &out {
                let shape = match &image {
                    Some(i) => vec![n, i.channels, i.height, i.width],
                    None => vec![n, m.input_dim()],
                };
                write_npy(out, &s, &shape)?;
                eprintln!("wrote {n} samples to {}", out.display());
            }
            if let (Some(grid), Some(image)) = (&grid, &image) {
                write_sample_grid(grid, &s, image, columns)?;
                eprintln!("wrote a grid of {n} samples to {}", grid.display());
            }
            Ok(())
        }
        Command::Eval {
            model,
            id,
            ood,
            key,
            json,
            device,
        } => {
            let m = open_model(&model, &device)?;
            let a = load_rows_for(&m, &id, key.as_deref())?;
            let b = load_rows_for(&m, &ood, key.as_deref())?;
            let (ea, eb) = (m.energy(&a.data, a.rows)?, m.energy(&b.data, b.rows)?);
            let (roc, pr, fpr) = (auroc(&ea, &eb), aupr(&ea, &eb), fpr_at_tpr(&ea, &eb, 0.95));
            if json {
                println!(
                    "{}",
                    serde_json::json!({"auroc": roc, "aupr": pr, "fpr_at_95_tpr": fpr,
                                       "n_id": a.rows, "n_ood": b.rows})
                );
            } else {
                println!("AUROC        {roc:.4}\nAUPR         {pr:.4}\nFPR@95%TPR   {fpr:.4}");
            }
            Ok(())
        }
        Command::Inspect { model } => {
            let meta =
                ddaebm::read_metadata(&model).with_context(|| model.display().to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "format": ddaebm::format::FORMAT_NAME,
                    "format_version": meta.format_version(),
                    "metadata": meta,
                }))?
            );
            Ok(())
        }
        Command::Calibrate {
            model,
            data,
            key,
            tpr,
            out,
            device,
        } => {
            if !(tpr > 0.0 && tpr < 1.0) {
                bail!("--tpr must be in (0, 1), got {tpr}");
            }
            let dev = parse_device(&device)?;
            let contents = ddaebm::read_model_file(&model, &dev)
                .with_context(|| model.display().to_string())?;
            let m = Model::from_contents(
                ddaebm::format::ModelFileContents {
                    metadata: contents.metadata.clone(),
                    tensors: contents.tensors.clone(),
                },
                &dev,
            )?;
            let rows = load_rows_for(&m, &data, key.as_deref())?;
            let mut tensors: Vec<_> = contents.tensors.into_iter().collect();
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            let fitted = assemble(contents.metadata, tensors, &rows, tpr, &dev)?;
            let out = out.unwrap_or(model);
            fitted.save(&out)?;
            eprintln!(
                "wrote {}: threshold {:.4} at TPR {tpr} from {} rows",
                out.display(),
                fitted.metadata.calibration.threshold,
                rows.rows
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    // One line, never a backtrace, if something unexpected happens.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("error: internal error: {msg}");
    }));
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Fit(a) => Some(a.train.threads),
        Command::Demo(a) => Some(a.train.threads),
        _ => None,
    };
    if let Some(n) = threads.filter(|&n| n > 0) {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // Before any tensor operation: candle sizes its thread pools on first use.
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    }
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => match e.downcast_ref::<Interrupted>() {
            Some(stopped) => {
                eprintln!("{stopped}");
                ExitCode::from(130)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(_) => ExitCode::from(101),
    }
}
