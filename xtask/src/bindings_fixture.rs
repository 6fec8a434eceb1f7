//! Writes the shared fixture the C, C++, Go and Python binding tests check against: a small
//! fitted model, rows to score, and the energies, p-values, flags and samples the Rust library
//! computes for them (and its drift test of the whole batch), plus damaged model files for the
//! error paths.
//!
//! ```text
//! cargo run -p xtask -- bindings-fixture target/bindings-fixture
//! ```
//!
//! Files (raw arrays are little-endian, row-major, no header):
//! - `model.safetensors`: 4 features, fitted for 1500 iterations on a 2-D ring of Gaussians
//!   plus two correlated features;
//! - `rows.f32` / `rows.csv`: `rows × dim` inputs, the first half in-distribution, the second
//!   half far away;
//! - `energy.f32`, `pvalue.f32`, `is_ood.u8`: what `Model::energy`, `pvalues`, `screen` give;
//! - `drift.f64`: what `Model::drift` gives, as 6 float64: `[p_value, effect, z]` for all of
//!   `rows.f32` (half of them far away: a tiny p-value), then `[p_value, effect, z]` for its
//!   first `rows / 2` rows only (the in-distribution half); `batch_rows` is `rows` and
//!   `rows / 2`, `calibration_rows` is in `fixture.txt`;
//! - `explain.f32`: what `Model::explain` gives for `rows.f32`: `rows × dim` per-feature
//!   attributions, row-major;
//! - `sample.f32`: `Model::sample(sample_rows, sample_seed)`;
//! - `truncated.safetensors`, `random.safetensors`, `future.safetensors` (format version 9);
//! - `image_model.safetensors`: an image model for `image_channels × image_height ×
//!   image_width` images with pixels in [0, 255], fitted for a few iterations only (its scores
//!   mean nothing; it checks that image models open and score through the bindings);
//! - `image_rows.f32`: `image_rows` images, each `C·H·W` values channel-major (the layout of a
//!   C-ordered `(N, C, H, W)` array) in the raw pixel scale, the first half like the training
//!   images, the second half uniform noise;
//! - `image_energy.f32`: what `Model::energy` gives for them;
//! - `gcd_model.safetensors`: a GCD model (Gaussian-policy sampler) fitted briefly on the
//!   same kind of rows; `gcd_energy.f32` (its energies of `rows.f32`) and `gcd_sample.f32`
//!   (`Model::sample(sample_rows, sample_seed)`): the bindings score and sample a model of
//!   every training method through the same calls;
//! - `dcd_model.safetensors`: a DCD model (Langevin sampler on the energy, 5 steps per level)
//!   fitted briefly on the same kind of rows; `dcd_energy.f32` (its energies of `rows.f32`) and
//!   `dcd_sample.f32` (`Model::sample(sample_rows, sample_seed)`), as for the GCD model;
//! - `model.onnx`, `gcd_model.onnx`, `dcd_model.onnx`, `image_model.onnx`: the models' energies
//!   exported by `ddaebm-train export --onnx` (ONNX Runtime must give `energy.f32`,
//!   `gcd_energy.f32` and `dcd_energy.f32` for `rows.f32`, and `image_energy.f32` for
//!   `image_rows.f32`, to the tolerance of `docs/onnx.md`);
//! - `fixture.txt`: `key value` lines: `rows`, `dim`, `sample_rows`, `sample_seed`, `flagged`,
//!   `threshold`, `calibration_rows` (the model's calibration energies, as `Model::drift`
//!   reports them), `image_channels`, `image_height`, `image_width`, `image_rows`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use candle::Device;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use ddaebm::{parse_device, Model};
use ddaebm_train::data::Matrix;
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::{default_image_network, fit, FitConfig, MethodConfig};
use ddaebm_train::gcd::GcdConfig;
use ddaebm_train::trainer::TrainConfig;

const DIM: usize = 4;
const ROWS: usize = 64;
const SAMPLE_ROWS: usize = 16;
const SAMPLE_SEED: u64 = 7;
/// `[C, H, W]` of the image model: small and not square, so that a height/width mix-up shows.
const IMAGE_SHAPE: [usize; 3] = [2, 8, 4];
const IMAGE_RANGE: [f32; 2] = [0.0, 255.0];
const IMAGE_TRAIN_ROWS: usize = 200;
const IMAGE_ROWS: usize = 16;

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

/// One training-like image, channel-major: channel 0 a horizontal ramp, channel 1 a vertical
/// one, each with a random offset and slope plus a little noise, in [0, 255].
fn image_like(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let [c, h, w] = IMAGE_SHAPE;
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let offset = rng.random_range(40.0..120.0f32);
        let slope = rng.random_range(5.0..15.0f32);
        for y in 0..h {
            for x in 0..w {
                let along = if ch % 2 == 0 { x } else { y } as f32;
                let noise: f32 = StandardNormal.sample(rng);
                out.push((offset + slope * along + 4.0 * noise).clamp(0.0, 255.0));
            }
        }
    }
    out
}

/// Fits the small image model, saves it to `dir` and writes the image rows, their energies and
/// the `image_*` lines of `fixture.txt` (returned).
fn write_image_fixture(dir: &Path, device: &Device) -> Result<String> {
    // An RNG of its own, so that the vector fixture above stays as it was.
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let [c, h, w] = IMAGE_SHAPE;
    let train: Vec<f32> = (0..IMAGE_TRAIN_ROWS)
        .flat_map(|_| image_like(&mut rng))
        .collect();
    let data = Matrix::images(IMAGE_TRAIN_ROWS, IMAGE_SHAPE, train, Some(IMAGE_RANGE))?;
    let mut network = default_image_network(IMAGE_SHAPE, IMAGE_RANGE);
    network
        .image
        .as_mut()
        .context("default_image_network has no image config")?
        .base_channels = 8;
    let mut cfg = FitConfig {
        train: TrainConfig::image_default(),
        network: Some(network),
        ..FitConfig::default()
    };
    // A few iterations: the bindings check the plumbing, not the detector.
    cfg.train.steps = 20;
    cfg.train.batch_size = 16;
    cfg.train.seed = 5;
    let (fitted, _) = fit(&data, &cfg, device, |_, _| {})?;
    let model_path = dir.join("image_model.safetensors");
    fitted.save(&model_path)?;

    let rows: Vec<f32> = (0..IMAGE_ROWS)
        .flat_map(|i| {
            if i < IMAGE_ROWS / 2 {
                image_like(&mut rng)
            } else {
                (0..c * h * w)
                    .map(|_| rng.random_range(IMAGE_RANGE[0]..IMAGE_RANGE[1]))
                    .collect()
            }
        })
        .collect();
    let model = Model::open(&model_path, device)?;
    let image = model
        .metadata()
        .network
        .image
        .as_ref()
        .context("the image model has no image config")?;
    ensure!(
        [image.channels, image.height, image.width] == IMAGE_SHAPE,
        "the image model is {}×{}×{}, expected {c}×{h}×{w}",
        image.channels,
        image.height,
        image.width
    );
    let energy = model.energy(&rows, IMAGE_ROWS)?;
    ensure!(
        energy.iter().all(|e| e.is_finite()),
        "image energies are not all finite: {energy:?}"
    );
    write_f32(&dir.join("image_rows.f32"), &rows)?;
    write_f32(&dir.join("image_energy.f32"), &energy)?;
    Ok(format!(
        "image_channels {c}\nimage_height {h}\nimage_width {w}\nimage_rows {IMAGE_ROWS}\n"
    ))
}

/// Fits a small model of another training method on rows like the vector model's (drawn from
/// an RNG of its own, seeded by `data_seed`, so that the fixtures above stay as they were),
/// saves it to `dir` as `<name>_model.safetensors`, and writes its energies of `rows`
/// (`<name>_energy.f32`) and its samples (`<name>_sample.f32`).
fn write_method_fixture(
    dir: &Path,
    rows: &[f32],
    device: &Device,
    name: &str,
    data_seed: u64,
    method: MethodConfig,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(data_seed);
    let train: Vec<f32> = (0..1000).flat_map(|_| in_distribution(&mut rng)).collect();
    let cfg = FitConfig {
        train: TrainConfig {
            steps: 60,
            batch_size: 64,
            seed: 5,
            ..TrainConfig::gcd_default()
        },
        method,
        ..FitConfig::default()
    };
    let (fitted, _) = fit(&Matrix::new(1000, DIM, train)?, &cfg, device, |_, _| {})?;
    let path = dir.join(format!("{name}_model.safetensors"));
    fitted.save(&path)?;
    let model = Model::open(&path, device)?;
    let energy = model.energy(rows, ROWS)?;
    let samples = model.sample(SAMPLE_ROWS, SAMPLE_SEED)?;
    ensure!(
        energy.iter().chain(&samples).all(|v| v.is_finite()),
        "the {name} model's energies or samples are not all finite"
    );
    write_f32(&dir.join(format!("{name}_energy.f32")), &energy)?;
    write_f32(&dir.join(format!("{name}_sample.f32")), &samples)
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_f64(path: &Path, values: &[f64]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes the fixture into `dir`.
pub fn write(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
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
    let explain = model.explain(&rows, ROWS)?;
    ensure!(
        explain.len() == ROWS * DIM && explain.iter().all(|v| v.is_finite()),
        "explain should give {} finite attributions",
        ROWS * DIM
    );
    let samples = model.sample(SAMPLE_ROWS, SAMPLE_SEED)?;
    let flagged = screening.is_ood.iter().filter(|&&b| b).count();
    ensure!(
        flagged > 0 && flagged < ROWS,
        "fixture should flag some rows but not all ({flagged} of {ROWS})"
    );
    // The drift test of the whole batch (half of it far away) and of its in-distribution half.
    let drift_all = model.drift(&rows, ROWS)?;
    let drift_in = model.drift(&rows[..ROWS / 2 * DIM], ROWS / 2)?;
    ensure!(
        drift_all.batch_rows == ROWS
            && drift_in.batch_rows == ROWS / 2
            && drift_all.calibration_rows == drift_in.calibration_rows
            && drift_all.calibration_rows > 0,
        "drift row counts: {drift_all:?}, {drift_in:?}"
    );
    ensure!(
        drift_all.p_value < 1e-4 && drift_in.p_value > drift_all.p_value,
        "the mixed batch should have drifted clearly and the in-distribution half less: \
         {drift_all:?}, {drift_in:?}"
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
    write_f32(&dir.join("explain.f32"), &explain)?;
    let flags: Vec<u8> = screening.is_ood.iter().map(|&b| u8::from(b)).collect();
    std::fs::write(dir.join("is_ood.u8"), flags)?;
    write_f32(&dir.join("sample.f32"), &samples)?;
    write_f64(
        &dir.join("drift.f64"),
        &[
            drift_all.p_value,
            drift_all.effect,
            drift_all.z,
            drift_in.p_value,
            drift_in.effect,
            drift_in.z,
        ],
    )?;

    let bytes = std::fs::read(&model_path)?;
    std::fs::write(dir.join("truncated.safetensors"), &bytes[..bytes.len() / 2])?;
    let mut random = vec![0u8; 4096];
    rng.fill_bytes(&mut random);
    std::fs::write(dir.join("random.safetensors"), random)?;
    // Bump the format version inside the (ASCII JSON) header; tensor bytes stay as they are.
    // The file's own version: vector models are still written as version 2, below
    // `FORMAT_VERSION`.
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header = std::str::from_utf8(&bytes[8..header_len])?;
    let current = format!(
        "\"format_version\":\"{}\"",
        model.metadata().format_version()
    );
    let bumped = header.replacen(&current, "\"format_version\":\"9\"", 1);
    ensure!(
        bumped != header,
        "format_version not found in the model header"
    );
    let mut future_bytes = bytes.clone();
    future_bytes[8..header_len].copy_from_slice(bumped.as_bytes());
    std::fs::write(dir.join("future.safetensors"), future_bytes)?;

    // The image, GCD and DCD models last: nothing above depends on them.
    let image_info = write_image_fixture(&dir, &device)?;
    let gcd = MethodConfig::Gcd(GcdConfig {
        pretrain_steps: 200,
        ..GcdConfig::default()
    });
    write_method_fixture(&dir, &rows, &device, "gcd", 31, gcd)?;
    // A few Langevin steps per level: the bindings' sampling tests stay quick.
    let dcd = MethodConfig::Dcd(DcdConfig {
        langevin_steps: 5,
        ..DcdConfig::default()
    });
    write_method_fixture(&dir, &rows, &device, "dcd", 37, dcd)?;
    for name in ["model", "gcd_model", "dcd_model", "image_model"] {
        let model = Model::open(dir.join(format!("{name}.safetensors")), &device)?;
        ddaebm_train::onnx::export(&model, &dir.join(format!("{name}.onnx")))?;
    }
    let info = format!(
        "rows {ROWS}\ndim {DIM}\nsample_rows {SAMPLE_ROWS}\nsample_seed {SAMPLE_SEED}\n\
         flagged {flagged}\nthreshold {:?}\ncalibration_rows {}\n{image_info}",
        model.threshold(),
        drift_all.calibration_rows
    );
    std::fs::write(dir.join("fixture.txt"), &info)?;
    print!("{info}");
    println!("fixture written to {}", dir.display());
    Ok(())
}
