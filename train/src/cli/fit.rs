//! `ddaebm-train fit`: fit a detector on in-distribution rows and write a model file, with
//! checkpoints, resume, Ctrl-C and sample grids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ddaebm::parse_device;
use ddaebm_train::data::load_matrix;
use ddaebm_train::fit::{fit, CheckpointConfig, MethodConfig, Snapshots};

use super::common::{progress, stop_on_ctrl_c, write_sample_grid};
use super::train_args::TrainArgs;

// The arguments of `ddaebm-train fit`.
#[derive(Args)]
pub struct FitArgs {
    /// In-distribution rows: .npy (2-D), .npz (array X unless --key) or .csv.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub key: Option<String>,
    /// Where to write the model (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Training checkpoint file [default: the --out path with `.ckpt` appended]. Holds the
    /// whole training state; deleted once the model is written.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Iterations between checkpoints (0: only on Ctrl-C). Each is written atomically.
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: usize,
    /// Continue from the checkpoint when there is one (same data and settings; --steps may
    /// grow). The result is the model an uninterrupted run would have written.
    #[arg(long)]
    pub resume: bool,
    /// Image data: every N iterations, write a PNG grid of 64 samples from the current
    /// networks to `--sample-dir` (0: never).
    #[arg(long, default_value_t = 0)]
    pub sample_every: usize,
    /// Folder for the `--sample-every` grids (`step-000500.png`, …) [default: beside --out].
    #[arg(long)]
    pub sample_dir: Option<PathBuf>,
    #[command(flatten)]
    pub train: TrainArgs,
}

pub fn run(args: FitArgs) -> Result<()> {
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
    let generator_only = match cfg.method {
        MethodConfig::Ddaebm if cfg.generator_steps(data.cols) > 0 => format!(
            " ({} joint, then {} generator-only against the finished energy)",
            cfg.train.steps,
            cfg.generator_steps(data.cols)
        ),
        _ => String::new(),
    };
    eprintln!(
        "fitting {} rows × {} features for {} steps{generator_only} (batch {}) on {}",
        data.rows,
        data.cols,
        cfg.total_steps(data.cols),
        cfg.train.batch_size.min(data.rows),
        args.train.device
    );
    let (fitted, summary) = fit(&data, &cfg, &device, progress(cfg.total_steps(data.cols)))?;
    fitted.save(&args.out)?;
    // The model is on disk: the checkpoint has served its purpose.
    if checkpoint.exists() {
        std::fs::remove_file(&checkpoint)
            .with_context(|| format!("cannot remove checkpoint {}", checkpoint.display()))?;
    }
    if let Some(step) = summary.resumed_from {
        eprintln!(
            "resumed at iteration {step} of {}",
            cfg.total_steps(data.cols)
        );
    }
    if let Some(q) = summary.sample_quality {
        eprintln!(
            "sample quality on {} held-out rows: 1-NN accuracy {:.3} (0.5: samples indistinguishable \
             from the data, 1: told apart), MMD² {:.4}",
            q.rows, q.nn_accuracy, q.mmd2
        );
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
