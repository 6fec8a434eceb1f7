//! `ddaebm-train explain`: per-feature attributions of every row's energy (integrated gradients
//! from the training rows' mean, `docs/method.md#explanations`) as an (n, d) f32 .npy.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ddaebm_train::data::write_npy;

use super::common::{load_rows_for, open_model};

// The arguments of `ddaebm-train explain`.
#[derive(Args)]
pub struct ExplainArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// Array name inside a .npz file.
    #[arg(long)]
    pub key: Option<String>,
    /// Where the (n, d) attributions go (.npy, f32, energy units).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let m = open_model(&args.model, &args.device)?;
    let rows = load_rows_for(&m, &args.data, args.key.as_deref())?;
    let a = m.explain(&rows.data, rows.rows)?;
    write_npy(&args.out, &a, &[rows.rows, m.input_dim()])?;
    eprintln!(
        "wrote {} × {} attributions to {}",
        rows.rows,
        m.input_dim(),
        args.out.display()
    );
    Ok(())
}
