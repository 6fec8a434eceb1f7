//! From a data matrix to a saved detector: split, normalise, train, calibrate, write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use candle::{Device, Tensor};
use ddaebm::detector::calibration::CalibrationSummary;
use ddaebm::format::{ModelFileContents, CALIBRATION_TENSOR};
use ddaebm::{Calibration, ImageConfig, Model, ModelMetadata, NetworkConfig, Normalization};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{fnv1a64, Checkpoint};
use crate::data::Matrix;
use crate::dcd::{DcdConfig, DcdTrainer};
use crate::gcd::{GcdConfig, GcdTrainer};
use crate::method::{StepStats, TrainingMethod};
use crate::mixture::fit_diagonal_mixture;
use crate::sample_quality::{sample_quality, SampleQuality};
use crate::trainer::{default_generator_steps, TrainConfig, Trainer};

/// The training method of a run and its own settings.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum MethodConfig {
    /// DDAEBM (the default): every setting is in [`TrainConfig`].
    #[default]
    Ddaebm,
    /// GCD: [`TrainConfig`]'s steps, batch size, seed and schedule, and these.
    Gcd(GcdConfig),
    /// DCD: [`TrainConfig`]'s steps, batch size, seed and schedule, and these.
    Dcd(DcdConfig),
}

/// Everything `fit` needs besides the data.
#[derive(Clone, Debug)]
pub struct FitConfig {
    pub train: TrainConfig,
    /// The training method (DDAEBM unless set).
    pub method: MethodConfig,
    /// Network sizes; `None` picks [`default_network`] for the data's dimension, or
    /// [`default_image_network`] when the rows are images.
    pub network: Option<NetworkConfig>,
    /// Raw pixel range of image data mapped to [−1, 1]; `None`: the source format's range
    /// (0–255 for 8-bit images) or else the training rows' minimum and maximum. Ignored when
    /// `network` sets an image config (its `pixel_range` is used).
    pub pixel_range: Option<[f32; 2]>,
    /// Share of the rows held out for calibration (never trained on).
    pub val_fraction: f64,
    /// Target true-positive rate of the stored threshold.
    pub target_tpr: f64,
    /// Periodic checkpoints and resuming; `None` keeps everything in memory.
    pub checkpoint: Option<CheckpointConfig>,
    /// When set (e.g. by a Ctrl-C handler), the run stops after the current iteration, writes a
    /// checkpoint (if configured) and returns [`Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
    /// Samples from the networks being trained, every so often (e.g. PNG grids of images).
    pub snapshots: Option<Snapshots>,
}

/// What [`Snapshots`] hands its samples to: `(iterations done, rows)`.
pub type SampleSink = dyn Fn(usize, &[f32]) -> Result<()> + Send + Sync;

/// Draws `rows` samples (raw feature scale, the same seed each time) from the current
/// generator every `every` iterations and hands them to `on_samples(step, samples)`.
#[derive(Clone)]
pub struct Snapshots {
    pub every: usize,
    pub rows: usize,
    pub on_samples: Arc<SampleSink>,
}

impl FitConfig {
    /// Iterations of the whole run on rows of `features` features: `train.steps`, plus DDAEBM's
    /// generator-only iterations (picked for the data when not set) or GCD's DDPM pre-training.
    pub fn total_steps(&self, features: usize) -> usize {
        match &self.method {
            MethodConfig::Ddaebm => self.train.steps + self.generator_steps(features),
            MethodConfig::Gcd(g) => g.pretrain_steps + self.train.steps,
            MethodConfig::Dcd(_) => self.train.steps,
        }
    }
}

impl FitConfig {
    /// DDAEBM's generator-only iterations on rows of `features` features: `train.generator_steps`,
    /// or [`default_generator_steps`] when unset; 0 for the other methods (no generator).
    pub fn generator_steps(&self, features: usize) -> usize {
        match &self.method {
            MethodConfig::Ddaebm => self
                .train
                .generator_steps
                .unwrap_or_else(|| default_generator_steps(self.train.steps, features)),
            _ => 0,
        }
    }
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("every", &self.every)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            train: TrainConfig::default(),
            method: MethodConfig::Ddaebm,
            network: None,
            pixel_range: None,
            val_fraction: 0.1,
            target_tpr: 0.95,
            checkpoint: None,
            stop: None,
            snapshots: None,
        }
    }
}

/// Where and how often `fit` saves its state.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    pub path: PathBuf,
    /// Iterations between checkpoints (0: only when stopped).
    pub every: usize,
    /// Continue from `path` when it exists (a fresh run otherwise).
    pub resume: bool,
}

/// The error `fit` returns when its stop flag was raised.
#[derive(Debug)]
pub struct Interrupted {
    /// Iterations done (and saved, when `checkpoint` is set).
    pub step: usize,
    pub checkpoint: Option<PathBuf>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.checkpoint {
            Some(p) => write!(
                f,
                "interrupted after {} iterations; checkpoint written to {} (continue with --resume)",
                self.step,
                p.display()
            ),
            None => write!(f, "interrupted after {} iterations", self.step),
        }
    }
}

impl std::error::Error for Interrupted {}

/// Seed of the samples [`Snapshots`] draws (the same every time, so grids are comparable).
const SNAPSHOT_SEED: u64 = 0x5A3_B1E5;

/// What a checkpoint must match to be resumed: the data (hash and shape), the split and every
/// training setting. The lengths of the two phases (`joint_steps`, `generator_steps`) may differ
/// while neither run has started DDAEBM's generator-only phase (a run may be resumed with more
/// iterations); see [`resume`].
fn run_fingerprint(
    data: &Matrix,
    cfg: &FitConfig,
    tc: &TrainConfig,
    network: &NetworkConfig,
) -> Result<serde_json::Value> {
    let mut train = serde_json::to_value(tc)?;
    if let Some(obj) = train.as_object_mut() {
        obj.remove("steps");
        obj.remove("generator_steps");
    }
    Ok(serde_json::json!({
        "method": cfg.method,
        "data": {
            "rows": data.rows,
            "cols": data.cols,
            "fnv1a64": format!("{:016x}", fnv1a64(data.data.iter().flat_map(|v| v.to_le_bytes()))),
        },
        "val_fraction": cfg.val_fraction,
        "train": train,
        "network": network,
        "joint_steps": tc.steps,
        "generator_steps": tc.generator_steps.unwrap_or(0),
    }))
}

/// The default networks for `d` input features: the reference layout
/// (`docs/method.md#networks`) with a narrower head, 2 × 128 instead of 2 × 300 units, which
/// trains faster on the CPU without worse detectors (README, "How the defaults were chosen").
///
/// The energy has a Gaussian base measure and soft-clips its MLP's input at ±4 (normalised
/// units), so its log-density falls off away from the data (see [`ddaebm::EnergyNet`]).
pub fn default_network(d: usize) -> NetworkConfig {
    let mut cfg = NetworkConfig::toy(d);
    cfg.head_widths = vec![128, 128];
    cfg.base_std = DEFAULT_BASE_STD;
    cfg.input_soft_clip = 4.0;
    cfg
}

/// Standard deviation of the default isotropic base measure (normalised units).
pub const DEFAULT_BASE_STD: f32 = 0.7;

/// Most components of the default mixture base measure.
pub const DEFAULT_BASE_COMPONENTS: usize = 100;

/// The default networks for `d` features and `rows` training rows: those of
/// [`default_network`], with the isotropic base measure replaced by a spherical Gaussian mixture
/// of one component per [`MIXTURE_ROWS_PER_COMPONENT`] rows (at most
/// [`DEFAULT_BASE_COMPONENTS`]) when that gives at least [`MIN_DEFAULT_COMPONENTS`] components.
/// Measured on the OOD benchmark (`bench/ood/README.md`): the mixture gives multimodal data
/// (digits, ResNet features) the shape an isotropic base cannot, and the energy learns the rest.
/// With fewer rows it is too coarse, and the isotropic base's fall-off from the centre ranks
/// better.
pub fn default_network_for(d: usize, rows: usize) -> NetworkConfig {
    let mut cfg = default_network(d);
    let k = (rows / MIXTURE_ROWS_PER_COMPONENT).min(DEFAULT_BASE_COMPONENTS);
    if k >= MIN_DEFAULT_COMPONENTS {
        cfg.base_components = k;
        cfg.base_std = 0.0;
    }
    cfg
}

/// Fewest components the default mixture base measure has (else the isotropic base is used).
pub const MIN_DEFAULT_COMPONENTS: usize = 8;

/// The default networks for images of `shape` (`[C, H, W]`) with raw values in `pixel_range`:
/// the convolutional networks of [`ImageConfig::for_shape`], a 16-dimensional latent, and a
/// Gaussian base measure (std 1 in the [−1, 1] pixel scale) so that inputs far from every image,
/// such as large-amplitude noise, get a high energy.
pub fn default_image_network(shape: [usize; 3], pixel_range: [f32; 2]) -> NetworkConfig {
    let [c, h, w] = shape;
    let mut cfg = NetworkConfig::toy(c * h * w);
    cfg.latent_dim = 16;
    cfg.time_embed_dim = 32;
    cfg.encoder_features = 64;
    cfg.base_std = 1.0;
    cfg.image = Some(ImageConfig::for_shape(c, h, w, pixel_range));
    cfg
}

/// The pixel range of image rows: the source format's, or the rows' minimum and maximum (a
/// constant image set gets `[v − 1, v + 1]`).
pub fn pixel_range_of(data: &Matrix) -> [f32; 2] {
    if let Some(range) = data.image.and_then(|l| l.range) {
        return range;
    }
    let lo = data.data.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = data.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi > lo {
        [lo, hi]
    } else {
        [lo - 1.0, lo + 1.0]
    }
}

/// The normalisation of an image model: every value maps `[lo, hi]` onto [−1, 1].
pub fn pixel_normalization(image: &ImageConfig) -> Normalization {
    let [lo, hi] = image.pixel_range;
    let d = image.values();
    Normalization {
        mean: vec![(lo + hi) / 2.0; d],
        std: vec![(hi - lo) / 2.0; d],
    }
}

/// Fewest training rows per component of the mixture base measure: smaller data gets fewer.
pub const MIXTURE_ROWS_PER_COMPONENT: usize = 25;

/// A trained detector, in memory, ready to save or use.
pub struct FittedModel {
    pub metadata: ModelMetadata,
    pub tensors: Vec<(String, Tensor)>,
    pub model: Model,
}

impl FittedModel {
    /// Writes the model file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        ddaebm::write_model_file(path, &self.metadata, &self.tensors)?;
        Ok(())
    }
}

/// Builds a model from metadata and weight tensors (no calibration tensor), calibrates it on
/// `calibration_rows` (raw features) and returns the calibrated model.
pub fn assemble(
    mut metadata: ModelMetadata,
    mut tensors: Vec<(String, Tensor)>,
    calibration_rows: &Matrix,
    target_tpr: f64,
    device: &Device,
) -> Result<FittedModel> {
    tensors.retain(|(n, _)| n != CALIBRATION_TENSOR);
    let build =
        |meta: &ModelMetadata, energies: Vec<f32>| -> Result<(Vec<(String, Tensor)>, Model)> {
            let mut all = tensors.clone();
            let n = energies.len();
            all.push((
                CALIBRATION_TENSOR.to_string(),
                Tensor::from_vec(energies, n, device)?,
            ));
            let contents = ModelFileContents {
                metadata: meta.clone(),
                tensors: all.iter().cloned().collect(),
            };
            Ok((all, Model::from_contents(contents, device)?))
        };
    // A provisional calibration to score the held-out rows, then the real one.
    metadata.calibration = CalibrationSummary {
        threshold: 0.0,
        target_tpr,
        num_samples: 1,
    };
    let (_, provisional) = build(&metadata, vec![0.0])?;
    let energies = provisional.energy(&calibration_rows.data, calibration_rows.rows)?;
    let calibration = Calibration::fit(energies, target_tpr)?;
    metadata.calibration = calibration.summary();
    let (tensors, model) = build(&metadata, calibration.sorted_energies().to_vec())?;
    Ok(FittedModel {
        metadata,
        tensors,
        model,
    })
}

/// Fewest rows held out for calibration (when the data has at least three times as many). The
/// threshold's acceptance of new rows varies by ≈ √(0.05 · 0.95 / n) around the target at TPR
/// 0.95: ±0.031 at n = 50, so small data sets often landed outside 0.95 ± 0.03 (ADBench WDBC:
/// 0.981 over three seeds, when the threshold was still the conformal rank, whose mean is
/// ⌈0.95 (n + 1)⌉ / (n + 1) = 0.961 at n = 50); ±0.022 at n = 100.
pub const MIN_CALIBRATION_ROWS: usize = 100;

/// Seeded split of `0..n` into (train, held-out) index lists. The held-out share is
/// `val_fraction` but at least [`MIN_CALIBRATION_ROWS`] rows or a third of the data, whichever is
/// smaller (and none when `val_fraction` is 0).
pub fn split_indices(n: usize, val_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        bail!("--val-fraction must be in [0, 1), got {val_fraction}");
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5B11_7000));
    let n_val = ((n as f64) * val_fraction).round() as usize;
    let n_val = if val_fraction > 0.0 {
        n_val.max(MIN_CALIBRATION_ROWS.min(n / 3)).max(1)
    } else {
        0
    };
    if n - n_val < 2 {
        bail!("need at least 2 training rows after holding out {n_val} of {n} for calibration");
    }
    let val = idx.split_off(n - n_val);
    Ok((idx, val))
}

/// What `fit` reports besides the model.
pub struct FitSummary {
    pub seconds: f64,
    pub iterations_per_second: f64,
    pub last: StepStats,
    pub train_rows: usize,
    pub val_rows: usize,
    /// The step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// The sampler's samples against the held-out rows (also in the training record).
    pub sample_quality: Option<SampleQuality>,
}

/// Most rows [`sampler_quality`] compares (per set): enough to resolve the 1-NN accuracy to a
/// few hundredths, cheap beside training.
pub const SAMPLE_QUALITY_ROWS: usize = 500;

/// Seed of the samples [`sampler_quality`] draws.
const SAMPLE_QUALITY_SEED: u64 = 0x0051_A3B1_E000;

/// The trained sampler's samples against the held-out rows `held_out` (raw scale), in
/// normalised units: see [`crate::sample_quality`].
fn sampler_quality(
    method: &impl TrainingMethod,
    held_out: &Matrix,
    normalization: &Normalization,
    device: &Device,
) -> Result<Option<SampleQuality>> {
    let n = held_out.rows.min(SAMPLE_QUALITY_ROWS);
    let d = held_out.cols;
    if n < 2 {
        return Ok(None);
    }
    let samples: Vec<f32> = method
        .sample_normalized(n, d, SAMPLE_QUALITY_SEED, device)?
        .flatten_all()?
        .to_vec1()?;
    let rows: Vec<f32> = held_out.data[..n * d]
        .chunks_exact(d)
        .flat_map(|r| {
            r.iter()
                .zip(normalization.mean.iter().zip(&normalization.std))
                .map(|(x, (m, s))| (x - m) / s)
        })
        .collect();
    Ok(sample_quality(&samples, &rows, d))
}

/// The parts of a run every training method shares, decided before training starts.
struct Prepared {
    /// The training rows (raw scale) and the indices of the held-out ones in `data`.
    train: Matrix,
    val_idx: Vec<usize>,
    network: NetworkConfig,
    normalization: Normalization,
    /// The training settings with the batch size capped at the training rows.
    train_config: TrainConfig,
}

/// Splits the rows, picks the networks (defaults for the data unless `cfg.network`) and fits the
/// normalisation on the training rows.
fn prepare(data: &Matrix, cfg: &FitConfig) -> Result<Prepared> {
    data.check_finite()?;
    let (train_idx, val_idx) = split_indices(data.rows, cfg.val_fraction, cfg.train.seed)?;
    let train = data.select(&train_idx);
    let mut network = match (&cfg.network, data.image) {
        (Some(n), _) => n.clone(),
        (None, Some(layout)) => {
            let range = cfg.pixel_range.unwrap_or_else(|| pixel_range_of(&train));
            default_image_network(layout.shape, range)
        }
        (None, None) => default_network_for(data.cols, train.rows),
    };
    let normalization = match &network.image {
        Some(image) => pixel_normalization(image),
        None => Normalization::fit(&train.data, train.rows, train.cols)?,
    };
    if network.input_dim != data.cols {
        bail!(
            "the network expects {} features but the data has {}",
            network.input_dim,
            data.cols
        );
    }
    let mut train_config = cfg.train.clone();
    train_config.batch_size = train_config.batch_size.min(train.rows);
    // Resolved, so that the training record shows what ran.
    train_config.generator_steps = Some(cfg.generator_steps(data.cols));
    if network.base_components > 0 {
        network.base_components = network
            .base_components
            .min(train.rows / MIXTURE_ROWS_PER_COMPONENT)
            .max(1);
    }
    Ok(Prepared {
        train,
        val_idx,
        network,
        normalization,
        train_config,
    })
}

/// Fits the mixture base measure to the normalised training rows `xs` and hands it, carried to
/// every level, to the method.
fn fit_base_measure(
    method: &mut impl TrainingMethod,
    xs: &Tensor,
    prepared: &Prepared,
) -> Result<()> {
    let (train, network) = (&prepared.train, &prepared.network);
    let rows: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    let mut rng = ChaCha8Rng::seed_from_u64(prepared.train_config.seed ^ 0x6A55_0000_B45E);
    let mixture = fit_diagonal_mixture(
        &rows,
        train.rows,
        train.cols,
        network.base_components,
        true,
        &mut rng,
    )?;
    let levels = mixture.at_levels(method.schedule());
    method.set_base_measure(&levels)
}

/// Where the batch sequence stands: the shuffled training rows and the next batch's start.
struct BatchOrder {
    order: Vec<u32>,
    cursor: usize,
}

/// How the training loop ended up: the last iteration's losses and where it started from.
struct LoopOutcome {
    last: StepStats,
    first: usize,
    resumed_from: Option<usize>,
    seconds: f64,
}

/// Restores the method and the batch order from the checkpoint when `cfg` asks to resume and
/// one exists. Returns the last iteration's losses and the step resumed from.
fn resume(
    method: &mut impl TrainingMethod,
    batches: &mut BatchOrder,
    cfg: &FitConfig,
    fingerprint: &serde_json::Value,
) -> Result<Option<(StepStats, usize)>> {
    let Some(ck) = cfg
        .checkpoint
        .as_ref()
        .filter(|c| c.resume && c.path.exists())
    else {
        return Ok(None);
    };
    let saved = Checkpoint::load(&ck.path)?;
    // Before the generator-only phase (in the saved run and in this one) the phases' lengths
    // may change; once it has started, its learning-rate schedule depends on both.
    let step = saved.trainer.step as u64;
    let phase_started = |fp: &serde_json::Value| {
        let get = |k: &str| fp.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        get("generator_steps") > 0 && step >= get("joint_steps")
    };
    let mut expected = fingerprint.clone();
    if !phase_started(&saved.fingerprint) && !phase_started(fingerprint) {
        for key in ["joint_steps", "generator_steps"] {
            if let (Some(v), Some(obj)) = (saved.fingerprint.get(key), expected.as_object_mut()) {
                obj.insert(key.to_string(), v.clone());
            }
        }
    }
    saved.check_fingerprint(&expected, &ck.path)?;
    let mut sorted = saved.order.clone();
    sorted.sort_unstable();
    if sorted != batches.order {
        bail!(
            "{}: the saved row order is not a permutation of the training rows",
            ck.path.display()
        );
    }
    method.restore(saved.trainer)?;
    batches.order = saved.order;
    batches.cursor = saved.cursor;
    Ok(Some((saved.last, method.steps_done())))
}

/// The training loop: batches without replacement from a reshuffled order, one method
/// iteration each, progress, snapshots, checkpoints and the stop flag.
#[allow(clippy::too_many_arguments)]
fn train_loop(
    method: &mut impl TrainingMethod,
    xs: &Tensor,
    prepared: &Prepared,
    cfg: &FitConfig,
    fingerprint: &serde_json::Value,
    device: &Device,
    on_step: &mut impl FnMut(usize, &StepStats),
) -> Result<LoopOutcome> {
    let tc = &prepared.train_config;
    let rows = prepared.train.rows;
    let mut batches = BatchOrder {
        order: (0..rows as u32).collect(),
        cursor: rows,
    };
    let mut last = StepStats::default();
    let mut resumed_from = None;
    if let Some((saved_last, step)) = resume(method, &mut batches, cfg, fingerprint)? {
        last = saved_last;
        resumed_from = Some(step);
    }
    let (mean, std) = prepared.normalization.tensors(device)?;
    let start = Instant::now();
    let first = method.steps_done();
    let total = method.total_steps();
    for step in first..total {
        if batches.cursor + tc.batch_size > batches.order.len() {
            batches.order.shuffle(method.rng());
            batches.cursor = 0;
        }
        let batch_idx = Tensor::from_slice(
            &batches.order[batches.cursor..batches.cursor + tc.batch_size],
            tc.batch_size,
            device,
        )?;
        batches.cursor += tc.batch_size;
        let batch = xs.index_select(&batch_idx, 0)?;
        last = method.step(&batch)?;
        if ![last.loss_energy, last.loss_generator]
            .iter()
            .all(|v| v.is_finite())
        {
            bail!(
                "training diverged at step {step} (non-finite loss): try a smaller learning rate"
            );
        }
        on_step(step, &last);
        let done = step + 1;
        if let Some(snap) = cfg
            .snapshots
            .as_ref()
            .filter(|s| s.every > 0 && done % s.every == 0)
        {
            let xs =
                method.sample_normalized(snap.rows, prepared.train.cols, SNAPSHOT_SEED, device)?;
            let raw = xs.broadcast_mul(&std)?.broadcast_add(&mean)?;
            (snap.on_samples)(done, &raw.flatten_all()?.to_vec1::<f32>()?)?;
        }
        // A stop during the last iteration lets the run finish: writing the model is quick.
        let stop = done < total && cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        if let Some(ck) = &cfg.checkpoint {
            if stop || (ck.every > 0 && done % ck.every == 0 && done < total) {
                Checkpoint {
                    trainer: method.state()?,
                    order: batches.order.clone(),
                    cursor: batches.cursor,
                    fingerprint: fingerprint.clone(),
                    last,
                }
                .save(&ck.path)?;
            }
        }
        if stop {
            return Err(Interrupted {
                step: done,
                checkpoint: cfg.checkpoint.as_ref().map(|c| c.path.clone()),
            }
            .into());
        }
    }
    Ok(LoopOutcome {
        last,
        first,
        resumed_from,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Fits a detector on the rows of `data`. `on_step(step, stats)` is called after every
/// iteration (for progress display).
///
/// With `cfg.checkpoint`, the complete training state is written every `every` iterations and
/// when `cfg.stop` is raised; with `resume`, a run continues from the checkpoint and produces the
/// same model as an uninterrupted run (same data, settings and thread count).
pub fn fit(
    data: &Matrix,
    cfg: &FitConfig,
    device: &Device,
    mut on_step: impl FnMut(usize, &StepStats),
) -> Result<(FittedModel, FitSummary)> {
    let prepared = prepare(data, cfg)?;
    let tc = &prepared.train_config;
    match &cfg.method {
        MethodConfig::Ddaebm => {
            let method = Trainer::new(tc.clone(), prepared.network.clone(), device)?;
            fit_with(method, data, prepared, cfg, device, &mut on_step)
        }
        MethodConfig::Gcd(gcd) => {
            let method = GcdTrainer::new(
                gcd.clone(),
                tc.steps,
                tc.schedule.clone(),
                tc.seed,
                prepared.network.clone(),
                device,
            )?;
            fit_with(method, data, prepared, cfg, device, &mut on_step)
        }
        MethodConfig::Dcd(dcd) => {
            let method = DcdTrainer::new(
                dcd.clone(),
                tc.steps,
                tc.schedule.clone(),
                tc.seed,
                prepared.network.clone(),
                device,
            )?;
            fit_with(method, data, prepared, cfg, device, &mut on_step)
        }
    }
}

/// [`fit`] with the method built.
fn fit_with(
    mut method: impl TrainingMethod,
    data: &Matrix,
    prepared: Prepared,
    cfg: &FitConfig,
    device: &Device,
    on_step: &mut impl FnMut(usize, &StepStats),
) -> Result<(FittedModel, FitSummary)> {
    let tc = &prepared.train_config;
    let (mean, std) = prepared.normalization.tensors(device)?;
    let train = &prepared.train;
    let xs = Tensor::from_slice(&train.data, (train.rows, train.cols), device)?
        .broadcast_sub(&mean)?
        .broadcast_div(&std)?;
    if prepared.network.base_components > 0 {
        fit_base_measure(&mut method, &xs, &prepared)?;
    }
    // Hashing the data is only needed to write or check a checkpoint.
    let fingerprint = match cfg.checkpoint {
        Some(_) => run_fingerprint(data, cfg, tc, &prepared.network)?,
        None => serde_json::Value::Null,
    };
    let outcome = train_loop(
        &mut method,
        &xs,
        &prepared,
        cfg,
        &fingerprint,
        device,
        on_step,
    )?;
    finish(&method, data, prepared, cfg, outcome, device)
}

/// Writes the metadata and training record, calibrates on the held-out rows and builds the
/// model.
fn finish(
    method: &impl TrainingMethod,
    data: &Matrix,
    prepared: Prepared,
    cfg: &FitConfig,
    outcome: LoopOutcome,
    device: &Device,
) -> Result<(FittedModel, FitSummary)> {
    let Prepared {
        train,
        val_idx,
        network,
        normalization,
        train_config: tc,
    } = prepared;
    let LoopOutcome {
        last,
        first,
        resumed_from,
        seconds,
    } = outcome;
    // Without a held-out split, calibrate on the training rows (documented as optimistic).
    let cal = if val_idx.is_empty() {
        train.clone()
    } else {
        data.select(&val_idx)
    };
    let quality = sampler_quality(method, &cal, &normalization, device)?;
    let metadata = ModelMetadata {
        method: method.method(),
        sampler: method.sampler(),
        policy: method.policy(),
        langevin: method.langevin(),
        network,
        schedule: method.schedule().config().clone(),
        normalization,
        calibration: CalibrationSummary {
            threshold: 0.0,
            target_tpr: cfg.target_tpr,
            num_samples: 0,
        },
        training: serde_json::json!({
            "library_version": ddaebm::VERSION,
            "config": tc,
            "method_config": cfg.method,
            "train_rows": train.rows,
            "calibration_rows": val_idx.len(),
            "seconds": seconds,
            "resumed_from": resumed_from,
            "final": last,
            "sample_quality": quality,
        }),
    };
    let fitted = assemble(
        metadata,
        method.export_tensors()?,
        &cal,
        cfg.target_tpr,
        device,
    )?;
    let summary = FitSummary {
        seconds,
        iterations_per_second: method.total_steps().saturating_sub(first) as f64
            / seconds.max(1e-9),
        last,
        train_rows: train.rows,
        val_rows: val_idx.len(),
        resumed_from,
        sample_quality: quality,
    };
    Ok((fitted, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (a, b) = split_indices(1000, 0.1, 3).unwrap();
        assert_eq!((a.len(), b.len()), (900, 100));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // Small data: at least 100 held-out rows, or a third of the data.
        assert_eq!(split_indices(600, 0.1, 3).unwrap().1.len(), 100);
        assert_eq!(split_indices(360, 0.1, 3).unwrap().1.len(), 100);
        assert_eq!(split_indices(240, 0.1, 3).unwrap().1.len(), 80);
        assert_eq!(split_indices(90, 0.1, 3).unwrap().1.len(), 30);
        let (a, b) = split_indices(100, 0.1, 3).unwrap();
        assert_eq!((a.len(), b.len()), (67, 33));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_indices(100, 0.1, 3).unwrap().1, b);
        assert_ne!(split_indices(100, 0.1, 4).unwrap().1, b);
        assert_eq!(split_indices(5, 0.01, 0).unwrap().1.len(), 1);
        assert!(split_indices(2, 0.5, 0).is_err());
        assert!(split_indices(10, 1.0, 0).is_err());
    }
}
