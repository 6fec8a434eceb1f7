//! `ddaebm-train score`: the energy of every row as a 1-D f32 .npy.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ddaebm_train::data::write_npy;

use super::common::{load_rows_for, open_model};

// The arguments of `ddaebm-train score`.
#[derive(Args)]
pub struct ScoreArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// Array name inside a .npz file.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let ScoreArgs {
        model,
        data,
        key,
        out,
        device,
    } = args;
    let m = open_model(&model, &device)?;
    let rows = load_rows_for(&m, &data, key.as_deref())?;
    let e = m.energy(&rows.data, rows.rows)?;
    write_npy(&out, &e, &[e.len()])?;
    eprintln!("wrote {} energies to {}", e.len(), out.display());
    Ok(())
}
