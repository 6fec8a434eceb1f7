//! `ddaebm-train inspect`: the model file's metadata as JSON, with its declared format version,
//! the training method, the sampler kind and the sampler's quality figure at the top level.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

// The arguments of `ddaebm-train inspect`.
#[derive(Args)]
pub struct InspectArgs {
    #[arg(long)]
    pub model: PathBuf,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let InspectArgs { model } = args;
    let (meta, version) = ddaebm::format::read_metadata_and_version(&model)
        .with_context(|| model.display().to_string())?;
    // serde_json keeps keys sorted: "method" and "sampler" sit beside "format".
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "format": ddaebm::format::FORMAT_NAME,
            "format_version": version,
            "method": meta.method,
            "sampler": meta.sampler,
            // How close the sampler's samples were to held-out rows at the end of training
            // (null for files written before it was recorded).
            "sample_quality": meta.training.get("sample_quality"),
            "metadata": meta,
        }))?
    );
    Ok(())
}
