//! `ddaebm-train drift`: whether a whole batch of rows comes from the in-distribution data the
//! model was calibrated on (the rank-sum test of `docs/method.md#drift`), as JSON.

use anyhow::Result;
use clap::Args;

use super::common::ModelRows;

// The arguments of `ddaebm-train drift`: the batch is every row of --data.
#[derive(Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub input: ModelRows,
}

pub fn run(args: DriftArgs) -> Result<()> {
    let (m, rows) = args.input.load()?;
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
