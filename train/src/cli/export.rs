//! `ddaebm-train export`: the model's energy as an ONNX graph (`docs/onnx.md`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ddaebm::Model;

// The arguments of `ddaebm-train export`.
#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the ONNX model (input `x`: raw rows [N, d] float32; output `energy`: [N]).
    #[arg(long)]
    pub onnx: PathBuf,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let model = Model::open(&args.model, &candle::Device::Cpu)
        .with_context(|| args.model.display().to_string())?;
    ddaebm_train::onnx::export(&model, &args.onnx)?;
    eprintln!(
        "wrote {} (level-0 energy of {} features; threshold {:.6} in its metadata)",
        args.onnx.display(),
        model.input_dim(),
        model.threshold()
    );
    Ok(())
}
