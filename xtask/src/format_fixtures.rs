//! One small model file per earlier format version, with the values the library computed for it
//! when it was written, so that every later library can be checked against them.
//!
//! | folder | what the file holds | written as |
//! |---|---|---|
//! | `v1` | MLP energy without base measure or soft clip | version 2's bytes with the two version-2 network fields removed and `format_version` 1, as version-1 writers laid it out |
//! | `v2` | MLP energy, Gaussian base measure, soft-clipped input | the writer's version 2 |
//! | `v3` | convolutional image model | the writer's version 3 |
//! | `v4` | MLP energy with a Gaussian-mixture base measure | the writer's version 4 |
//! | `v5` | a GCD model: MLP energy with a mixture base, Gaussian-policy sampler | the writer's version 5 |
//! | `v6` | a DCD model: MLP energy with a mixture base, Langevin sampler | the writer's version 6 |
//!
//! Each folder holds `model.safetensors`, `rows.f32` (`rows × dim` little-endian f32, the first
//! half in-distribution, the second far away), `energy.f32`, `pvalue.f32`, `sample.f32`
//! (`Model::sample(SAMPLE_ROWS, SAMPLE_SEED)`) and `info.txt` (`key value` lines). The models
//! are trained for a few iterations only: they check that the bytes keep their meaning, not that
//! the detector is good.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use candle::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use ddaebm::{Model, NetworkConfig};
use ddaebm_train::data::Matrix;
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::{default_image_network, default_network, fit, FitConfig, MethodConfig};
use ddaebm_train::gcd::GcdConfig;
use ddaebm_train::trainer::TrainConfig;

const DIM: usize = 4;
const TRAIN_ROWS: usize = 400;
const ROWS: usize = 16;
const SAMPLE_ROWS: usize = 8;
const SAMPLE_SEED: u64 = 3;
const IMAGE_SHAPE: [usize; 3] = [2, 8, 4];
const IMAGE_RANGE: [f32; 2] = [0.0, 255.0];

/// A point near one of 8 centres on a ring, then two features that depend on it.
fn in_distribution(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let angle = rng.random_range(0..8) as f32 * std::f32::consts::TAU / 8.0;
    let mut n = || -> f32 { StandardNormal.sample(rng) };
    let (x, y) = (2.0 * angle.cos() + 0.1 * n(), 2.0 * angle.sin() + 0.1 * n());
    vec![x, y, 0.5 * x - y + 0.1 * n(), 10.0 + 3.0 * y + 0.2 * n()]
}

fn far_away(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut n = || -> f32 { StandardNormal.sample(rng) };
    vec![6.0 * n(), 6.0 * n(), 5.0 + 3.0 * n(), -20.0 + 5.0 * n()]
}

/// A channel-major image: ramps along x (even channels) or y (odd ones) plus noise.
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

fn small_network() -> NetworkConfig {
    let mut cfg = default_network(DIM);
    cfg.head_widths = vec![32, 32];
    cfg
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Rewrites a model file's header as a version-1 writer laid it out: the network config without
/// `base_std` and `input_soft_clip` (both must be off) and `format_version` 1. Tensor bytes and
/// offsets are unchanged (offsets count from the end of the header).
fn as_version_1(bytes: &[u8]) -> Result<Vec<u8>> {
    let len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len])?;
    let info = header
        .get_mut("__metadata__")
        .and_then(|m| m.as_object_mut())
        .context("no __metadata__")?;
    let mut meta: serde_json::Value =
        serde_json::from_str(info["ddaebm"].as_str().context("no ddaebm entry")?)?;
    let network = meta["network"].as_object_mut().context("no network")?;
    for key in ["base_std", "input_soft_clip"] {
        let v = network.remove(key).context("field missing")?;
        ensure!(
            v.as_f64() == Some(0.0),
            "{key} must be off in a version-1 file"
        );
    }
    info.insert("ddaebm".into(), meta.to_string().into());
    info.insert("format_version".into(), "1".into());
    let mut text = header.to_string().into_bytes();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + len..]);
    Ok(out)
}

/// The header's `format_version`, read without the library.
fn stored_version(bytes: &[u8]) -> Result<u32> {
    let len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len])?;
    Ok(header["__metadata__"]["format_version"]
        .as_str()
        .context("no format_version")?
        .parse()?)
}

fn write_one(dir: &Path, version: u32, device: &Device) -> Result<()> {
    let dir = dir.join(format!("v{version}"));
    std::fs::create_dir_all(&dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(100 + u64::from(version));
    let image = version == 3;
    let (data, rows, dim) = if image {
        let train: Vec<f32> = (0..TRAIN_ROWS).flat_map(|_| image_like(&mut rng)).collect();
        let data = Matrix::images(TRAIN_ROWS, IMAGE_SHAPE, train, Some(IMAGE_RANGE))?;
        let rows: Vec<f32> = (0..ROWS)
            .flat_map(|i| {
                if i < ROWS / 2 {
                    image_like(&mut rng)
                } else {
                    let n = IMAGE_SHAPE.iter().product();
                    (0..n).map(|_| rng.random_range(0.0..255.0f32)).collect()
                }
            })
            .collect();
        (data, rows, IMAGE_SHAPE.iter().product())
    } else {
        let train: Vec<f32> = (0..TRAIN_ROWS)
            .flat_map(|_| in_distribution(&mut rng))
            .collect();
        let rows: Vec<f32> = (0..ROWS)
            .flat_map(|i| {
                if i < ROWS / 2 {
                    in_distribution(&mut rng)
                } else {
                    far_away(&mut rng)
                }
            })
            .collect();
        (Matrix::new(TRAIN_ROWS, DIM, train)?, rows, DIM)
    };
    let mut network = match version {
        1 => {
            let mut cfg = small_network();
            cfg.base_std = 0.0;
            cfg.input_soft_clip = 0.0;
            cfg
        }
        2 => small_network(),
        3 => {
            let mut cfg = default_image_network(IMAGE_SHAPE, IMAGE_RANGE);
            cfg.image.as_mut().context("no image config")?.base_channels = 8;
            cfg
        }
        4..=6 => {
            let mut cfg = small_network();
            cfg.base_std = 0.0;
            cfg.base_components = 8;
            cfg
        }
        _ => unreachable!("versions 1 to 6"),
    };
    network.latent_dim = network.latent_dim.max(2);
    let mut cfg = FitConfig {
        train: match version {
            3 => TrainConfig::image_default(),
            5 | 6 => TrainConfig::gcd_default(),
            _ => TrainConfig::default(),
        },
        method: match version {
            5 => MethodConfig::Gcd(GcdConfig {
                pretrain_steps: 60,
                ddpm_steps: 100,
                ..GcdConfig::default()
            }),
            // A few Langevin steps per level: sampling the fixture stays quick. The step scale
            // the stored file was written with (the default then), so that it regenerates.
            6 => MethodConfig::Dcd(DcdConfig {
                langevin_steps: 5,
                step_scale: 1.0,
                ..DcdConfig::default()
            }),
            _ => MethodConfig::Ddaebm,
        },
        network: Some(network),
        ..FitConfig::default()
    };
    cfg.train.steps = if image { 5 } else { 60 };
    cfg.train.batch_size = 32;
    cfg.train.seed = u64::from(version);
    let (fitted, _) = fit(&data, &cfg, device, |_, _| {})?;
    let path = dir.join("model.safetensors");
    fitted.save(&path)?;
    if version == 1 {
        let bytes = std::fs::read(&path)?;
        std::fs::write(&path, as_version_1(&bytes)?)?;
    }
    let stored = stored_version(&std::fs::read(&path)?)?;
    ensure!(
        stored == version,
        "wrote version {stored}, wanted {version}"
    );

    let model = Model::open(&path, device)?;
    let energy = model.energy(&rows, ROWS)?;
    let pvalue = model.pvalues(&rows, ROWS)?;
    let sample = model.sample(SAMPLE_ROWS, SAMPLE_SEED)?;
    ensure!(energy.iter().all(|e| e.is_finite()), "energies not finite");
    write_f32(&dir.join("rows.f32"), &rows)?;
    write_f32(&dir.join("energy.f32"), &energy)?;
    write_f32(&dir.join("pvalue.f32"), &pvalue)?;
    write_f32(&dir.join("sample.f32"), &sample)?;
    let mut info = String::new();
    writeln!(info, "format_version {version}")?;
    writeln!(info, "rows {ROWS}")?;
    writeln!(info, "dim {dim}")?;
    writeln!(info, "sample_rows {SAMPLE_ROWS}")?;
    writeln!(info, "sample_seed {SAMPLE_SEED}")?;
    std::fs::write(dir.join("info.txt"), info)?;
    println!("{}: format version {version}", path.display());
    Ok(())
}

/// Writes the folders of `versions` (`v1` … `v6`) under `dir`. The committed folders are never
/// rewritten: each stands for files users already have, so a new version adds its folder only.
pub fn write_all(dir: &Path, versions: &[u32]) -> Result<()> {
    let device = Device::Cpu;
    for &version in versions {
        ensure!(
            (1..=6).contains(&version),
            "no fixture for version {version}"
        );
        write_one(dir, version, &device)?;
    }
    Ok(())
}
