//! `ddaebm-train eval`: AUROC, AUPR and FPR at 95% TPR of in-distribution vs OOD rows.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ddaebm_train::metrics::{aupr, auroc, fpr_at_tpr};

use super::common::{load_rows_for, open_model};

// The arguments of `ddaebm-train eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub id: PathBuf,
    #[arg(long)]
    pub ood: PathBuf,
    #[arg(long)]
    pub key: Option<String>,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let EvalArgs {
        model,
        id,
        ood,
        key,
        json,
        device,
    } = args;
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
