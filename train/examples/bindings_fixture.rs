//! Writes the shared fixture the C, C++, Go and Python binding tests check against: a small
//! fitted model, rows to score, and the energies, p-values, flags and samples the Rust library
//! computes for them, plus damaged model files for the error paths.
//!
//! ```text
//! cargo run -p ddaebm-train --example bindings_fixture -- target/bindings-fixture
//! ```
//!
//! Files (raw arrays are little-endian, row-major, no header):
//! - `model.safetensors`: 4 features, fitted for 1500 iterations on a 2-D ring of Gaussians
//!   plus two correlated features;
//! - `rows.f32` / `rows.csv`: `rows × dim` inputs, the first half in-distribution, the second
//!   half far away;
//! - `energy.f32`, `pvalue.f32`, `is_ood.u8`: what `Model::energy`, `pvalues`, `screen` give;
//! - `sample.f32`: `Model::sample(sample_rows, sample_seed)`;
//! - `truncated.safetensors`, `random.safetensors`, `future.safetensors` (format version 9);
//! - `fixture.txt`: `key value` lines: `rows`, `dim`, `sample_rows`, `sample_seed`, `flagged`,
//!   `threshold`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use ddaebm::{parse_device, Model};
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{fit, FitConfig};

const DIM: usize = 4;
const ROWS: usize = 64;
const SAMPLE_ROWS: usize = 16;
const SAMPLE_SEED: u64 = 7;

/// One in-distribution row: a point near one of 8 centres on a ring, then two features that
/// depend on it.
fn in_distribution(rng: &mut ChaCha8Rng) -> [f32; DIM] {
    let k = rng.random_range(0..8) as f32;
    let angle = k * std::f32::consts::TAU / 8.0;
    let mut n = || -> f32 { StandardNormal.sample(rng) };
    let (x, y) = (2.0 * angle.cos() + 0.1 * n(), 2.0 * angle.sin() + 0.1 * n());
    [x, y, 0.5 * x - y + 0.1 * n(), 10.0 + 3.0 * y + 0.2 * n()]
}

fn far_away(rng: &mut ChaCha8Rng) -> [f32; DIM] {
    let mut n = || -> f32 { StandardNormal.sample(rng) };
    [6.0 * n(), 6.0 * n(), 5.0 + 3.0 * n(), -20.0 + 5.0 * n()]
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/bindings-fixture".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(11);

    let train: Vec<f32> = (0..2000).flat_map(|_| in_distribution(&mut rng)).collect();
    let mut cfg = FitConfig::default();
    cfg.train.steps = 1500;
    cfg.train.batch_size = 128;
    cfg.train.seed = 5;
    let device = parse_device("cpu")?;
    let (fitted, _) = fit(&Matrix::new(2000, DIM, train)?, &cfg, &device, |_, _| {})?;
    let model_path = dir.join("model.safetensors");
    fitted.save(&model_path)?;

    let rows: Vec<f32> = (0..ROWS)
        .flat_map(|i| {
            if i < ROWS / 2 {
                in_distribution(&mut rng)
            } else {
                far_away(&mut rng)
            }
        })
        .collect();
    // Scored through the file, exactly as the bindings will.
    let model = Model::open(&model_path, &device)?;
    let screening = model.screen(&rows, ROWS)?;
    let pvalues = model.pvalues(&rows, ROWS)?;
    let samples = model.sample(SAMPLE_ROWS, SAMPLE_SEED)?;
    let flagged = screening.is_ood.iter().filter(|&&b| b).count();
    ensure!(
        flagged > 0 && flagged < ROWS,
        "fixture should flag some rows but not all ({flagged} of {ROWS})"
    );

    write_f32(&dir.join("rows.f32"), &rows)?;
    let mut csv = String::new();
    for row in rows.chunks(DIM) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        writeln!(csv, "{}", cells.join(","))?;
    }
    std::fs::write(dir.join("rows.csv"), csv)?;
    write_f32(&dir.join("energy.f32"), &screening.energy)?;
    write_f32(&dir.join("pvalue.f32"), &pvalues)?;
    let flags: Vec<u8> = screening.is_ood.iter().map(|&b| u8::from(b)).collect();
    std::fs::write(dir.join("is_ood.u8"), flags)?;
    write_f32(&dir.join("sample.f32"), &samples)?;

    let bytes = std::fs::read(&model_path)?;
    std::fs::write(dir.join("truncated.safetensors"), &bytes[..bytes.len() / 2])?;
    let mut random = vec![0u8; 4096];
    rng.fill_bytes(&mut random);
    std::fs::write(dir.join("random.safetensors"), random)?;
    // Bump the format version inside the (ASCII JSON) header; tensor bytes stay as they are.
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header = std::str::from_utf8(&bytes[8..header_len])?;
    let current = format!(
        "\"format_version\":\"{}\"",
        ddaebm::model_file::FORMAT_VERSION
    );
    let bumped = header.replacen(&current, "\"format_version\":\"9\"", 1);
    ensure!(
        bumped != header,
        "format_version not found in the model header"
    );
    let mut future_bytes = bytes.clone();
    future_bytes[8..header_len].copy_from_slice(bumped.as_bytes());
    std::fs::write(dir.join("future.safetensors"), future_bytes)?;

    let info = format!(
        "rows {ROWS}\ndim {DIM}\nsample_rows {SAMPLE_ROWS}\nsample_seed {SAMPLE_SEED}\n\
         flagged {flagged}\nthreshold {:?}\n",
        model.threshold()
    );
    std::fs::write(dir.join("fixture.txt"), &info)?;
    print!("{info}");
    println!("fixture written to {}", dir.display());
    Ok(())
}
