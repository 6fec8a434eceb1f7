//! `ddaebm-train explain`: per-feature attributions of every row's energy (integrated gradients
//! from the training rows' mean, `docs/method.md#explanations`) as an (n, d) f32 .npy.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ddaebm_train::data::write_npy;

use super::common::ModelRows;

// The arguments of `ddaebm-train explain`.
#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: ModelRows,
    /// Where the (n, d) attributions go (.npy, f32, energy units).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let (m, rows) = args.input.load()?;
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
