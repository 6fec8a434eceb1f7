//! `ddaebm-train drift`: whether a whole batch of rows comes from the in-distribution data the
//! model was calibrated on (the rank-sum test of `docs/method.md#drift`), as JSON.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::common::{load_rows_for, open_model};

// The arguments of `ddaebm-train drift`.
#[derive(Args)]
pub struct DriftArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The batch to test (every row of the file).
    #[arg(long)]
    pub data: PathBuf,
    /// Array name inside a .npz file.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: DriftArgs) -> Result<()> {
    let m = open_model(&args.model, &args.device)?;
    let rows = load_rows_for(&m, &args.data, args.key.as_deref())?;
    let t = m.drift(&rows.data, rows.rows)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "p_value": t.p_value,
            "effect": t.effect,
            "z": t.z,
            "batch_rows": t.batch_rows,
            "calibration_rows": t.calibration_rows,
        }))?
    );
    Ok(())
}
