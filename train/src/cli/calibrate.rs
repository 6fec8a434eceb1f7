//! `ddaebm-train calibrate`: a new threshold and p-values from new in-distribution rows.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ddaebm::{parse_device, Model};
use ddaebm_train::fit::assemble;

use super::common::load_rows_for;

// The arguments of `ddaebm-train calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, default_value_t = 0.95)]
    pub tpr: f64,
    /// Output path (default: overwrite --model, atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    let CalibrateArgs {
        model,
        data,
        key,
        tpr,
        out,
        device,
    } = args;
    if !(tpr > 0.0 && tpr < 1.0) {
        bail!("--tpr must be in (0, 1), got {tpr}");
    }
    let dev = parse_device(&device)?;
    let contents =
        ddaebm::read_model_file(&model, &dev).with_context(|| model.display().to_string())?;
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
