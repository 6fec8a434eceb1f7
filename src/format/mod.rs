//! The model file: one `.safetensors` file holding every tensor the core needs, plus
//! `__metadata__` entries:
//!
//! | key | value |
//! |---|---|
//! | `format` | `"ddaebm"` |
//! | `format_version` | an integer; files newer than [`FORMAT_VERSION`] are refused |
//! | `ddaebm` | [`ModelMetadata`] as JSON: training method, sampler kind, network config, schedule, normalisation, calibration, training record |
//!
//! Tensors (all f32): `energy.*`, the sampler's (`generator.*` including BatchNorm running
//! statistics, or `sampler.*` for the Gaussian policy; the Langevin sampler has none) and
//! `calibration.energies` (the sorted held-out energies).
//!
//! Files are opened by memory-mapping and written atomically (temporary file, fsync, rename), so
//! a reader never observes a half-written model. [`read_model_bytes`] and
//! [`read_metadata_bytes`] parse a model already in memory through the same checks (the fuzz
//! targets in `fuzz/` use them).
//!
//! `docs/format.md` describes every key, field and tensor.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use candle::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::architecture::NetworkConfig;
use crate::detector::calibration::CalibrationSummary;
use crate::detector::normalization::Normalization;
use crate::error::{Error, Result};
use crate::sampler::{LangevinConfig, PolicyConfig, SamplerKind};
use crate::schedule::ScheduleConfig;

/// The newest format version this library reads.
///
/// * 1: the reference energy network.
/// * 2: the network config may set `base_std` and `input_soft_clip` (a Gaussian base measure and
///   a soft-clipped MLP input in the energy). A reader that ignored them would compute other
///   energies, so files written with them are marked 2 and older libraries refuse them; version-1
///   files read as before (both fields default to off).
/// * 3: the network config may hold `image` (convolutional networks for C×H×W inputs). Only
///   image models are written as version 3 ([`ModelMetadata::format_version`]), so libraries
///   that read version 2 still open every vector-data model.
/// * 4: the network config may hold `base_components` (a Gaussian-mixture base measure, tensors
///   `energy.base.*`). Only such models are written as version 4: a version-3 reader would
///   ignore the field and score without the mixture.
/// * 5: the metadata names the training method (`method`) and the sampler kind (`sampler`).
///   Both are always written; absent (older files), they read as DDAEBM with its generator.
///   Only a model whose method or sampler a version-4 reader does not know is written as
///   version 5, so DDAEBM models stay readable by older libraries. With the Gaussian-policy
///   sampler the metadata holds `policy` too.
/// * 6: the method may be `dcd` and the sampler `langevin` (annealed Langevin dynamics on the
///   energy, no sampler tensors), with the metadata's `langevin` entry. Only such models are
///   written as version 6: a version-5 reader does not know how to sample them.
pub const FORMAT_VERSION: u32 = 6;
/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "ddaebm";
/// Name of the tensor holding the sorted held-out energies.
pub const CALIBRATION_TENSOR: &str = "calibration.energies";

/// The training method that produced a model; stored as the metadata's `method` field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Diffusion-assisted EBM: conditional energies trained adversarially against a
    /// latent-variable generator (`docs/method.md`).
    #[default]
    Ddaebm,
    /// Generalized contrastive divergence: the energy trained against a few-step Gaussian
    /// policy that is itself trained, as maximum-entropy RL, to sample it (`docs/method.md#gcd`).
    Gcd,
    /// Diffusion contrastive divergence: the energy of every diffusion level trained against
    /// short Langevin chains on the posterior of one forward step (`docs/method.md#dcd`); no
    /// sampler network.
    Dcd,
}

impl Method {
    /// The name stored in the model file.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ddaebm => "ddaebm",
            Method::Gcd => "gcd",
            Method::Dcd => "dcd",
        }
    }
}

/// Everything in the model file besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// How the model was trained. Absent in files before version 5: DDAEBM.
    #[serde(default)]
    pub method: Method,
    /// How the model generates rows. Absent in files before version 5: the DDAEBM generator.
    #[serde(default)]
    pub sampler: SamplerKind,
    /// The Gaussian policy's settings; present exactly when `sampler` is `gaussian_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyConfig>,
    /// The Langevin sampler's settings; present exactly when `sampler` is `langevin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub langevin: Option<LangevinConfig>,
    pub network: NetworkConfig,
    pub schedule: ScheduleConfig,
    pub normalization: Normalization,
    pub calibration: CalibrationSummary,
    /// Free-form record of how the model was trained (steps, seed, losses, library version, …).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl ModelMetadata {
    /// The format version a file with this metadata is written as: the oldest one whose readers
    /// compute the same energies and samples (6 for DCD or the Langevin sampler, 5 for GCD or
    /// its policy, 4 with a mixture base measure, 3 for image models, 2 otherwise).
    pub fn format_version(&self) -> u32 {
        if self.method == Method::Dcd || self.sampler == SamplerKind::Langevin {
            6
        } else if self.method != Method::Ddaebm || self.sampler != SamplerKind::Generator {
            5
        } else if self.network.base_components > 0 {
            4
        } else if self.network.image.is_some() {
            3
        } else {
            2
        }
    }

    /// Checks that the parts agree with each other and are in range.
    pub fn validate(&self) -> Result<()> {
        self.network
            .validate()
            .map_err(|e| Error::bad_model(e.to_string()))?;
        let schedule = crate::schedule::Schedule::new(self.schedule.clone())
            .map_err(|e| Error::bad_model(e.to_string()))?;
        let embedding = self
            .schedule
            .num_timesteps
            .checked_add(1)
            .and_then(|levels| levels.checked_mul(self.network.time_embed_dim));
        if embedding.is_none_or(|n| n > MAX_EMBEDDING_VALUES) {
            return Err(Error::bad_model(format!(
                "{} steps × a {}-wide time embedding exceed {MAX_EMBEDDING_VALUES} values",
                self.schedule.num_timesteps, self.network.time_embed_dim
            )));
        }
        match (self.sampler, &self.langevin) {
            (SamplerKind::Langevin, Some(langevin)) => langevin
                .validate(&schedule)
                .map_err(|e| Error::bad_model(e.to_string()))?,
            (SamplerKind::Langevin, None) => {
                return Err(Error::bad_model(
                    "the langevin sampler needs the metadata's langevin entry",
                ))
            }
            (_, Some(_)) => {
                return Err(Error::bad_model(
                    "a langevin entry belongs to the langevin sampler only",
                ))
            }
            (_, None) => {}
        }
        match (self.sampler, &self.policy) {
            (SamplerKind::GaussianPolicy, Some(policy)) => {
                policy
                    .validate(&self.schedule)
                    .map_err(|e| Error::bad_model(e.to_string()))?;
                if self.network.image.is_some() {
                    return Err(Error::bad_model(
                        "the gaussian_policy sampler is for vector data, not image models",
                    ));
                }
                let table = (policy.ddpm_steps + 1).saturating_mul(self.network.time_embed_dim);
                if table > MAX_EMBEDDING_VALUES {
                    return Err(Error::bad_model(format!(
                        "{} DDPM steps × a {}-wide time embedding exceed {MAX_EMBEDDING_VALUES} values",
                        policy.ddpm_steps, self.network.time_embed_dim
                    )));
                }
            }
            (SamplerKind::GaussianPolicy, None) => {
                return Err(Error::bad_model(
                    "the gaussian_policy sampler needs the metadata's policy entry",
                ))
            }
            (_, Some(_)) => {
                return Err(Error::bad_model(
                    "a policy entry belongs to the gaussian_policy sampler only",
                ))
            }
            (_, None) => {}
        }
        self.normalization.validate(self.network.input_dim)?;
        self.calibration.validate()
    }
}

/// A model file's parsed metadata and its tensors, loaded onto a device.
pub struct ModelFileContents {
    pub metadata: ModelMetadata,
    pub tensors: HashMap<String, Tensor>,
}

/// Most values the level-embedding table of one network may hold (`T × time_embed_dim`).
///
/// The table is computed, not read, so without a bound a small file declaring 1000 steps and a
/// 2^20-wide embedding would make the opener allocate gigabytes. Real models use a few hundred
/// values at most.
pub const MAX_EMBEDDING_VALUES: usize = 1 << 24;

/// Length of the safetensors header-length prefix; no model file is shorter.
const LENGTH_PREFIX: usize = 8;

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    // SAFETY: the map is read-only and private to this process. Another process truncating the
    // file while it is mapped can still raise SIGBUS; model files are written by rename, never
    // in place, so ddaebm's own writers never do that.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

/// Where the bytes being parsed came from, for error messages: a file, or a caller's buffer.
#[derive(Clone, Copy)]
enum Origin<'a> {
    File(&'a Path),
    Buffer,
}

impl Origin<'_> {
    /// A [`Error::BadModel`] for a safetensors-level defect, naming the file when there is one.
    fn bad(self, e: safetensors::SafeTensorError) -> Error {
        match self {
            Origin::File(p) => Error::bad_model(format!("{}: {e}", p.display())),
            Origin::Buffer => Error::bad_model(e.to_string()),
        }
    }
}

/// Parses and validates the safetensors header: sizes, offsets, shapes and dtypes. Nothing is
/// copied; the returned header describes tensors that lie inside `bytes`.
fn parse_header(bytes: &[u8], origin: Origin) -> Result<(usize, safetensors::tensor::Metadata)> {
    if bytes.len() < LENGTH_PREFIX {
        let what = match origin {
            Origin::File(p) => p.display().to_string(),
            Origin::Buffer => "the input".to_string(),
        };
        return Err(Error::bad_model(format!(
            "{what} is too short to be a model file ({} bytes)",
            bytes.len()
        )));
    }
    safetensors::SafeTensors::read_metadata(bytes).map_err(|e| origin.bad(e))
}

/// Parses the `__metadata__` of a safetensors header.
fn parse_metadata(header: Option<&HashMap<String, String>>) -> Result<ModelMetadata> {
    let not_ours = || Error::bad_model("not a ddaebm model file (no ddaebm metadata)");
    let header = header.ok_or_else(not_ours)?;
    if header.get("format").map(String::as_str) != Some(FORMAT_NAME) {
        return Err(not_ours());
    }
    let version = header
        .get("format_version")
        .ok_or_else(|| Error::bad_model("format_version is missing"))?;
    let version: u32 = version
        .trim()
        .parse()
        .map_err(|_| Error::bad_model(format!("format_version {version:?} is not an integer")))?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let json = header
        .get("ddaebm")
        .ok_or_else(|| Error::bad_model("the ddaebm metadata entry is missing"))?;
    let metadata: ModelMetadata = serde_json::from_str(json)
        .map_err(|e| Error::bad_model(format!("metadata is not valid: {e}")))?;
    metadata.validate()?;
    Ok(metadata)
}

/// Checks one tensor's header entry before anything is copied: it must be f32, and its shape
/// must describe a tensor the tensor library can lay out.
///
/// safetensors only checks that the element count fits in `usize`; a shape with a zero
/// dimension such as `[0, 2^40, 2^40]` holds no elements and passes, but the contiguous strides
/// of its other dimensions (`2^80`) overflow.
fn check_tensor(name: &str, info: &safetensors::tensor::TensorInfo) -> Result<()> {
    if info.dtype != safetensors::Dtype::F32 {
        return Err(Error::bad_model(format!(
            "tensor {name} has dtype {:?}, expected F32",
            info.dtype
        )));
    }
    let span = info
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)));
    if span.is_none() {
        return Err(Error::bad_model(format!(
            "tensor {name} has an impossible shape {:?}",
            info.shape
        )));
    }
    Ok(())
}

/// Validates the metadata of a model held in memory.
fn metadata_from(bytes: &[u8], origin: Origin) -> Result<ModelMetadata> {
    let (_, header) = parse_header(bytes, origin)?;
    parse_metadata(header.metadata().as_ref())
}

/// Validates a model held in memory and copies its tensors onto `device`: the one code path
/// behind [`read_model_file`] and [`read_model_bytes`].
///
/// Order: safetensors header (lengths, offsets), ddaebm metadata (format, version, config
/// ranges), then every tensor's dtype and shape, and only then the copies, so a damaged file is
/// refused before anything proportional to its declared sizes is allocated. The copies total
/// the file's own size.
fn contents_from(bytes: &[u8], origin: Origin, device: &Device) -> Result<ModelFileContents> {
    let (header_len, header) = parse_header(bytes, origin)?;
    let metadata = parse_metadata(header.metadata().as_ref())?;
    let infos = header.tensors();
    for (name, info) in &infos {
        check_tensor(name, info)?;
    }
    // read_metadata checked that the offsets tile the data exactly; `get` keeps that promise
    // from turning into a panic should it ever be broken.
    let data = bytes.get(LENGTH_PREFIX + header_len..).unwrap_or_default();
    let mut tensors = HashMap::with_capacity(infos.len());
    for (name, info) in infos {
        let (start, end) = info.data_offsets;
        let raw = data.get(start..end).ok_or_else(|| {
            Error::bad_model(format!(
                "tensor {name} lies outside the file ({start}..{end})"
            ))
        })?;
        let t = Tensor::from_raw_buffer(raw, DType::F32, &info.shape, device)?;
        tensors.insert(name, t);
    }
    Ok(ModelFileContents { metadata, tensors })
}

/// Reads only the metadata of a model file (memory-mapped; tensors are not touched).
pub fn read_metadata(path: impl AsRef<Path>) -> Result<ModelMetadata> {
    let path = path.as_ref();
    let mmap = map_file(path)?;
    metadata_from(&mmap, Origin::File(path))
}

/// [`read_metadata`] and the `format_version` the file declares (which can be older than
/// [`ModelMetadata::format_version`], the version the metadata would be written as today).
pub fn read_metadata_and_version(path: impl AsRef<Path>) -> Result<(ModelMetadata, u32)> {
    let path = path.as_ref();
    let mmap = map_file(path)?;
    let metadata = metadata_from(&mmap, Origin::File(path))?;
    let (_, header) = parse_header(&mmap, Origin::File(path))?;
    let declared = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("format_version"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::bad_model("format_version is missing"))?;
    Ok((metadata, declared))
}

/// [`read_metadata`] on a model file already in memory.
pub fn read_metadata_bytes(bytes: &[u8]) -> Result<ModelMetadata> {
    metadata_from(bytes, Origin::Buffer)
}

/// Memory-maps a model file, validates its metadata and copies its tensors onto `device`.
pub fn read_model_file(path: impl AsRef<Path>, device: &Device) -> Result<ModelFileContents> {
    let path = path.as_ref();
    let mmap = map_file(path)?;
    contents_from(&mmap, Origin::File(path), device)
}

/// [`read_model_file`] on a model file already in memory (the same checks, in the same order).
/// Pass the result to [`Model::from_contents`](crate::Model::from_contents) to open it.
pub fn read_model_bytes(bytes: &[u8], device: &Device) -> Result<ModelFileContents> {
    contents_from(bytes, Origin::Buffer, device)
}

/// Writes a model file atomically: the bytes go to a temporary file beside `path`, which is
/// flushed to disk and then renamed over `path`. On error nothing is left behind.
pub fn write_model_file(
    path: impl AsRef<Path>,
    metadata: &ModelMetadata,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    let path = path.as_ref();
    metadata.validate()?;
    let mut cpu = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        cpu.push((name.clone(), t));
    }
    let json = serde_json::to_string(metadata)
        .map_err(|e| Error::InvalidArgument(format!("metadata does not serialise: {e}")))?;
    let info = HashMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        (
            "format_version".to_string(),
            metadata.format_version().to_string(),
        ),
        ("ddaebm".to_string(), json),
    ]);
    let bytes = safetensors::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), Some(info))
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise tensors: {e}")))?;
    write_atomically(path, &bytes)
}

/// The folder a file path lies in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Name prefix of the temporary files [`write_atomically`] writes beside a file called `name`:
/// `.<name>.tmp`, followed by the writing process's id.
fn temporary_prefix(name: &std::ffi::OsStr) -> String {
    format!(".{}.tmp", name.to_string_lossy())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let tmp = folder_of(path).join(format!("{}{}", temporary_prefix(name), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Removes the temporary files that [`write_atomically`] calls for `path` left behind when
/// their process was killed mid-write. Best effort: errors are ignored.
pub fn remove_stale_temporaries(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let prefix = temporary_prefix(name);
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let pid = file_name
            .to_string_lossy()
            .strip_prefix(&prefix)
            .map(str::to_owned);
        if pid.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
