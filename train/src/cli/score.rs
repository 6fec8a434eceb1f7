//! `ddaebm-train score`: the energy of every row as a 1-D f32 .npy.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ddaebm_train::data::write_npy;

use super::common::ModelRows;

// The arguments of `ddaebm-train score`.
#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub input: ModelRows,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let (m, rows) = args.input.load()?;
    let e = m.energy(&rows.data, rows.rows)?;
    write_npy(&args.out, &e, &[e.len()])?;
    eprintln!("wrote {} energies to {}", e.len(), args.out.display());
    Ok(())
}
