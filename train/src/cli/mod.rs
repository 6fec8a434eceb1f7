//! The `ddaebm-train` command line: one module per subcommand, [`common`] for what they share
//! and [`train_args`] for the training options of `fit` and `demo`.

mod calibrate;
mod common;
mod demo;
mod drift;
mod eval;
mod explain;
mod export;
mod fit;
mod inspect;
mod sample;
mod score;
mod train_args;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ddaebm-train",
    version,
    about = "Fit and use DDAEBM out-of-distribution detectors"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Fit a detector on in-distribution rows and write a model file.
    Fit(fit::FitArgs),
    /// Write the energy of every row (higher = more out-of-distribution) as a 1-D f32 .npy.
    Score(score::ScoreArgs),
    /// Generate rows from the model (raw feature scale) as an (n, d) f32 .npy, and for an image
    /// model optionally a PNG grid of them.
    Sample(sample::SampleArgs),
    /// Test whether a whole batch comes from the in-distribution data the model was calibrated
    /// on (one-sided rank-sum test of its energies; small p-value = drift); prints JSON.
    Drift(drift::DriftArgs),
    /// AUROC, AUPR (OOD positive) and FPR at 95% TPR of in-distribution vs OOD rows.
    Eval(eval::EvalArgs),
    /// Per-feature attributions of every row's energy (integrated gradients from the training
    /// rows' mean) as an (n, d) f32 .npy: which features made a row an outlier.
    Explain(explain::ExplainArgs),
    /// Export the model's energy to another format: an ONNX graph of the level-0 energy (vector
    /// and image models), with the calibrated threshold in its metadata.
    Export(export::ExportArgs),
    /// Print the model's metadata as JSON.
    Inspect(inspect::InspectArgs),
    /// Re-calibrate an existing model's threshold and p-values on new in-distribution rows.
    Calibrate(calibrate::CalibrateArgs),
    /// Fit the built-in 2-D 25-Gaussians data, write a PNG and report mode coverage.
    Demo(demo::DemoArgs),
}

impl Command {
    /// The `--threads` of a training subcommand.
    pub fn training_threads(&self) -> Option<usize> {
        match self {
            Command::Fit(a) => Some(a.train.threads),
            Command::Demo(a) => Some(a.train.threads),
            _ => None,
        }
    }
}

/// Runs the subcommand.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Fit(args) => fit::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Score(args) => score::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Drift(args) => drift::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Export(args) => export::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Calibrate(args) => calibrate::run(args),
    }
}
