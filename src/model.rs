//! [`Model`]: an opened detector. Energy, screening, p-values and sampling on raw features.

use std::path::Path;
use std::sync::Arc;

use candle::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::cpu::energy::CpuEnergy;
use crate::detector::calibration::Calibration;
use crate::detector::drift::{rank_sum_drift, DriftTest};
use crate::energy::grad::log_density_ratio_and_input_grad;
use crate::energy::EnergyNet;
use crate::error::{Error, Result};
use crate::format::{read_model_file, ModelFileContents, ModelMetadata, CALIBRATION_TENSOR};
use crate::nn::embedding::level_tensor;
use crate::sampler::{GaussianPolicy, Generator, LangevinSampler, Sampler, SamplerKind};
use crate::schedule::Schedule;

/// Rows scored per forward pass; larger batches are processed in chunks of this size so memory
/// stays bounded.
pub const CHUNK_ROWS: usize = 16_384;

/// Path points of [`Model::explain`]'s integrated gradients (midpoint rule).
pub const EXPLAIN_STEPS: usize = 256;

/// Largest intermediate tensor an image model's forward pass should create, in bytes: image
/// batches are scored in chunks of as many rows as keep a convolution's gathered neighbourhoods
/// (9 values per pixel and channel) near this size.
pub const IMAGE_CHUNK_BYTES: usize = 64 << 20;

/// Most worker threads a model's own pool may have (see [`Model::with_threads`]).
pub const MAX_THREADS: usize = 1024;

/// Energies and in/out decisions for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Screening {
    /// `E(x) = −f_θ(x, 0)`; higher = more out-of-distribution.
    pub energy: Vec<f32>,
    /// `E(x) > threshold`.
    pub is_ood: Vec<bool>,
}

/// A non-finite energy of a finite row (an overflow somewhere in the network) becomes `+∞`.
fn overflow_to_infinity(e: f32) -> f32 {
    if e.is_finite() {
        e
    } else {
        f32::INFINITY
    }
}

/// A trained detector, immutable once built and safe to share between threads.
pub struct Model {
    metadata: ModelMetadata,
    schedule: Schedule,
    energy: EnergyNet,
    sampler: Sampler,
    calibration: Calibration,
    mean: Tensor,
    std: Tensor,
    device: Device,
    /// Worker threads for CPU compute, when the caller asked for a fixed number.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The fused scoring path, on the CPU.
    cpu_energy: Option<CpuEnergy>,
}

fn bad(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        // Error's Display puts candle's message on one line, without a backtrace.
        Error::Candle(_) => Error::bad_model(format!("{what}: {e}")),
        other => other,
    }
}

impl Model {
    /// Memory-maps and opens a model file on `device`.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let contents = read_model_file(path, device)?;
        Self::from_contents(contents, device)
    }

    /// Builds a model from already-loaded metadata and tensors (e.g. fresh from training).
    pub fn from_contents(contents: ModelFileContents, device: &Device) -> Result<Self> {
        let ModelFileContents {
            metadata,
            mut tensors,
        } = contents;
        metadata.validate()?;
        let schedule = Schedule::new(metadata.schedule.clone()).map_err(bad("schedule"))?;
        let calib = tensors
            .remove(CALIBRATION_TENSOR)
            .ok_or_else(|| Error::bad_model(format!("tensor {CALIBRATION_TENSOR} is missing")))?;
        let calib = calib
            .to_vec1::<f32>()
            .map_err(Error::from)
            .map_err(bad(CALIBRATION_TENSOR))?;
        let calibration = Calibration::from_parts(calib, &metadata.calibration)?;
        let levels = schedule.num_timesteps();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let energy = EnergyNet::new(&metadata.network, levels, vb.pp("energy"))
            .map_err(bad("energy network"))?;
        let sampler =
            match (metadata.sampler, &metadata.policy, &metadata.langevin) {
                (SamplerKind::Langevin, _, Some(langevin)) => Sampler::Langevin(
                    LangevinSampler::new(energy.clone(), schedule.clone(), langevin.clone())?,
                ),
                (SamplerKind::GaussianPolicy, Some(policy), _) => Sampler::Policy(
                    GaussianPolicy::new(
                        &metadata.network,
                        &metadata.schedule,
                        policy,
                        vb.pp("sampler"),
                    )
                    .map_err(bad("sampler policy"))?,
                ),
                _ => Sampler::Generator(
                    Generator::new(&metadata.network, levels, vb.pp("generator"))
                        .map_err(bad("generator network"))?,
                ),
            };
        let (mean, std) = metadata.normalization.tensors(device)?;
        let cpu_energy = match device {
            Device::Cpu if energy.trunk().is_some() => Some(CpuEnergy::new(
                &energy.fold_level0()?,
                &metadata.normalization.mean,
                &metadata.normalization.std,
            )?),
            _ => None,
        };
        Ok(Self {
            metadata,
            schedule,
            energy,
            sampler,
            calibration,
            mean,
            std,
            device: device.clone(),
            pool: None,
            cpu_energy,
        })
    }

    /// Runs this model's CPU compute on a pool of its own with `threads` workers instead of the
    /// process-wide one (one worker per core). `0` goes back to the process-wide pool; more than
    /// [`MAX_THREADS`] is an [`Error::InvalidArgument`].
    ///
    /// Calls from several host threads share the pool, so `threads` bounds the CPU this model
    /// uses however many callers it has.
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        if threads > MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{threads} worker threads requested; at most {MAX_THREADS} are allowed"
            )));
        }
        self.pool = match threads {
            0 => None,
            n => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("ddaebm-{i}"))
                    .build()
                    .map_err(|e| {
                        Error::InvalidArgument(format!("cannot start {n} worker threads: {e}"))
                    })?,
            )),
        };
        Ok(self)
    }

    /// Worker threads of this model's own pool, or `0` when it uses the process-wide pool.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.current_num_threads())
    }

    /// Runs `f` on this model's pool, if it has one.
    fn in_pool<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The metadata as pretty-printed JSON.
    pub fn metadata_json(&self) -> String {
        serde_json::to_string_pretty(&self.metadata).expect("metadata always serialises")
    }

    pub fn input_dim(&self) -> usize {
        self.metadata.network.input_dim
    }

    pub fn threshold(&self) -> f32 {
        self.calibration.threshold()
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn energy_net(&self) -> &EnergyNet {
        &self.energy
    }

    /// The sampler `sample` runs.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// Rows per forward pass: [`CHUNK_ROWS`] for vector data; fewer for images, so memory stays
    /// near [`IMAGE_CHUNK_BYTES`] whatever the image size.
    pub fn chunk_rows(&self) -> usize {
        let Some(image) = &self.metadata.network.image else {
            return CHUNK_ROWS;
        };
        let widest = (0..image.channel_mult.len())
            .map(|i| image.stage_channels(i))
            .max()
            .unwrap_or(1);
        // The generator's up stages see twice the channels (skip concatenation).
        let per_row = image.height * image.width * 2 * widest * 9 * 4;
        (IMAGE_CHUNK_BYTES / per_row.max(1)).clamp(1, CHUNK_ROWS)
    }

    /// Checks a row-major buffer of `n_rows` rows: length and finiteness.
    fn check_rows(&self, x: &[f32], n_rows: usize) -> Result<()> {
        let d = self.input_dim();
        if n_rows.checked_mul(d) != Some(x.len()) {
            return Err(Error::ShapeMismatch {
                expected: format!(
                    "{n_rows} rows × {d} features = {} values",
                    n_rows.saturating_mul(d)
                ),
                got: format!("{} values", x.len()),
            });
        }
        if !all_finite(x) {
            let i = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(Error::NonFinite {
                row: i / d,
                col: i % d,
            });
        }
        Ok(())
    }

    /// Energy of already-normalised rows `(B, d)` on this model's device, shape `(B,)`. Unlike
    /// [`Model::energy`], an overflow is left as it comes out of the network (`±∞` or NaN).
    pub fn energy_normalized(&self, xs: &Tensor) -> Result<Tensor> {
        let levels = level_tensor(0, xs.dim(0)?, &self.device)?;
        Ok(self.energy.log_density(xs, &levels)?.neg()?)
    }

    /// Normalises raw rows `(B, d)`.
    pub fn normalize(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?)
    }

    /// Energy `E(x) = −f_θ(x, 0)` of each of `n_rows` raw rows (row-major, `input_dim` values
    /// each). Higher means more out-of-distribution.
    ///
    /// What each kind of input gives:
    /// - `x.len() != n_rows · input_dim` (or a product that overflows): [`Error::ShapeMismatch`];
    /// - NaN or ±∞ anywhere: [`Error::NonFinite`] naming the first such value's row and column
    ///   (counted from 0 over the whole batch);
    /// - `n_rows == 0` with an empty `x`: an empty result;
    /// - every finite row, however extreme, gets an energy that is a number or `+∞`, never NaN
    ///   or `−∞`. Zero rows and subnormal values are ordinary inputs (a subnormal feature scores
    ///   like a 0 to within rounding). Huge magnitudes (up to `±f32::MAX`) may overflow in the
    ///   normalisation, the Gaussian base measure or the network; the soft clip saturates at
    ///   `±c` whatever its input ([`crate::nn::soft_clip::soft_clip`]), and an energy that still comes
    ///   out non-finite is reported as `+∞`: the row could not be scored in floating point, so
    ///   it is flagged out-of-distribution ([`Model::screen`]) with the smallest p-value,
    ///   `1 / (n + 1)` ([`Model::pvalues`]). With a base measure (`base_std > 0`, the trainer's
    ///   default) the energy grows with `‖x‖²` and reaches `+∞` for rows far enough out; a model
    ///   without one extrapolates its MLP and may give a large finite energy of either sign.
    pub fn energy(&self, x: &[f32], n_rows: usize) -> Result<Vec<f32>> {
        self.check_rows(x, n_rows)?;
        if let Some(cpu) = &self.cpu_energy {
            let mut out = vec![0f32; n_rows];
            self.in_pool(|| cpu.energies(x, &mut out));
            out.iter_mut().for_each(|e| *e = overflow_to_infinity(*e));
            return Ok(out);
        }
        let d = self.input_dim();
        self.in_pool(|| {
            let mut out = Vec::with_capacity(n_rows);
            for chunk in x.chunks(self.chunk_rows() * d) {
                let xs = Tensor::from_slice(chunk, (chunk.len() / d, d), &self.device)?;
                let e = self.energy_normalized(&self.normalize(&xs)?)?;
                let e = e.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                out.extend(e.into_iter().map(overflow_to_infinity));
            }
            Ok(out)
        })
    }

    /// Whether the batch `x` (`n_rows` rows) as a whole comes from the in-distribution data the
    /// model was calibrated on: the one-sided rank-sum test of the batch's energies against the
    /// stored calibration energies ([`crate::detector::drift`]). A small p-value says the batch's
    /// energies are higher than in-distribution rows' (drift towards out-of-distribution). Same
    /// input checks as [`Model::energy`]; `n_rows` must be at least 1.
    pub fn drift(&self, x: &[f32], n_rows: usize) -> Result<DriftTest> {
        let energy = self.energy(x, n_rows)?;
        rank_sum_drift(self.calibration.sorted_energies(), &energy)
    }

    /// Per-feature attribution of each row's energy by integrated gradients: for row `x` and
    /// the reference `r` (the training rows' mean, stored as the normalisation's mean),
    /// `a_i = (x_i − r_i) · mean_k ∂E/∂x_i(r + α_k (x − r))` over [`EXPLAIN_STEPS`] midpoints
    /// `α_k = (k + ½)/K`. Completeness: `Σ_i a_i ≈ E(x) − E(r)` (the midpoint rule's error,
    /// measured in the tests). Returns `n_rows × input_dim` values, row-major, in energy units;
    /// the largest positive attribution is the feature that raised the energy most. Same input
    /// checks as [`Model::energy`].
    pub fn explain(&self, x: &[f32], n_rows: usize) -> Result<Vec<f32>> {
        self.check_rows(x, n_rows)?;
        if let Some(cpu) = &self.cpu_energy {
            return Ok(self.in_pool(|| self.explain_fused(cpu, x)));
        }
        let d = self.input_dim();
        let k = EXPLAIN_STEPS;
        let mut out = Vec::with_capacity(n_rows * d);
        // Rows per gradient batch: K path points each, at most about CHUNK_ROWS points.
        let rows_per_batch = (self.chunk_rows() / k).max(1);
        self.in_pool(|| {
            for rows in x.chunks(rows_per_batch * d) {
                let m = rows.len() / d;
                let raw = Tensor::from_slice(rows, (m, d), &self.device)?;
                let xn = self.normalize(&raw)?; // the reference is 0 here
                let alphas: Vec<f32> = (0..k).map(|i| (i as f32 + 0.5) / k as f32).collect();
                let alphas = Tensor::from_vec(alphas, (1, k, 1), &self.device)?;
                let path = xn
                    .unsqueeze(1)?
                    .broadcast_mul(&alphas)?
                    .reshape((m * k, d))?;
                let levels = level_tensor(0, m * k, &self.device)?;
                let (_, _, grad_f) =
                    log_density_ratio_and_input_grad(&self.energy, &path, &levels)?;
                // dE/dx_raw = −∇f / std; attribution = (x − r) · mean gradient = xn · mean(−∇f).
                let mean_grad = grad_f.reshape((m, k, d))?.mean(1)?.neg()?;
                let attribution = (xn * mean_grad)?.to_dtype(DType::F32)?;
                out.extend(attribution.flatten_all()?.to_vec1::<f32>()?);
            }
            Ok::<(), Error>(())
        })?;
        Ok(out)
    }

    /// [`Model::explain`] on the fused CPU path: the same path points and midpoint rule, with
    /// the gradients from [`CpuEnergy::normalized_input_gradients`] instead of candle's.
    fn explain_fused(&self, cpu: &CpuEnergy, x: &[f32]) -> Vec<f32> {
        let d = self.input_dim();
        let k = EXPLAIN_STEPS;
        let norm = &self.metadata.normalization;
        let rows_per_batch = (self.chunk_rows() / k).max(1);
        let mut out = Vec::with_capacity(x.len());
        let (mut path, mut grad) = (vec![], vec![]);
        for rows in x.chunks(rows_per_batch * d) {
            let xn: Vec<f32> = rows
                .chunks_exact(d)
                .flat_map(|row| {
                    row.iter()
                        .zip(norm.mean.iter().zip(&norm.std))
                        .map(|(&v, (&mu, &sd))| (v - mu) / sd)
                })
                .collect();
            // The reference is 0 in normalised space: path point i of a row is α_i · xn.
            path.clear();
            for row in xn.chunks_exact(d) {
                for i in 0..k {
                    let alpha = (i as f32 + 0.5) / k as f32;
                    path.extend(row.iter().map(|v| v * alpha));
                }
            }
            grad.clear();
            grad.resize(path.len(), 0f32);
            cpu.normalized_input_gradients(&path, &mut grad);
            // dE/dx_raw = g / std and x − r = xn · std: the attribution is xn · mean_i g_i.
            for (r, row) in xn.chunks_exact(d).enumerate() {
                let mut sum = vec![0f64; d];
                for point in grad[r * k * d..(r + 1) * k * d].chunks_exact(d) {
                    for (s, &g) in sum.iter_mut().zip(point) {
                        *s += f64::from(g);
                    }
                }
                out.extend(
                    row.iter()
                        .zip(&sum)
                        .map(|(&v, &s)| v * (s / k as f64) as f32),
                );
            }
        }
        out
    }

    /// Energies plus the in/out decision against the calibrated threshold.
    pub fn screen(&self, x: &[f32], n_rows: usize) -> Result<Screening> {
        let energy = self.energy(x, n_rows)?;
        let is_ood = energy.iter().map(|&e| self.calibration.is_ood(e)).collect();
        Ok(Screening { energy, is_ood })
    }

    /// Conformal p-values against the held-out in-distribution energies (small = unusual).
    pub fn pvalues(&self, x: &[f32], n_rows: usize) -> Result<Vec<f32>> {
        let energy = self.energy(x, n_rows)?;
        Ok(energy.iter().map(|&e| self.calibration.pvalue(e)).collect())
    }

    /// Generates `n_rows` rows in the raw feature scale with the model's `T`-step sampler (the
    /// generator or the Gaussian policy). The same seed gives the same rows.
    pub fn sample(&self, n_rows: usize, seed: u64) -> Result<Vec<f32>> {
        let d = self.input_dim();
        let total = n_rows.checked_mul(d).ok_or_else(|| {
            Error::InvalidArgument(format!("{n_rows} rows × {d} features overflows"))
        })?;
        self.in_pool(|| self.sample_chunks(n_rows, total, seed))
    }

    fn sample_chunks(&self, n_rows: usize, total: usize, seed: u64) -> Result<Vec<f32>> {
        let d = self.input_dim();
        let mut out = Vec::new();
        out.try_reserve_exact(total).map_err(|_| {
            Error::InvalidArgument(format!(
                "cannot allocate {n_rows} sampled rows × {d} features"
            ))
        })?;
        let chunk = self.chunk_rows();
        for (i, start) in (0..n_rows).step_by(chunk).enumerate() {
            let rows = chunk.min(n_rows - start);
            let chunk_seed = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let xs = self.sampler.sample_normalized(
                &self.schedule,
                rows,
                d,
                chunk_seed,
                &self.device,
            )?;
            let raw = xs.broadcast_mul(&self.std)?.broadcast_add(&self.mean)?;
            out.extend(raw.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// Whether every value is finite, as one branch-free pass the compiler vectorises: `0 · v` is 0
/// for a finite `v` and NaN for ±∞ or NaN, and NaN survives the sums. (A `position` search
/// branches on every value and does not vectorise.)
fn all_finite(x: &[f32]) -> bool {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in lanes.iter_mut().zip(c) {
            *a += v * 0.0;
        }
    }
    lanes
        .iter()
        .chain(chunks.remainder())
        .all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::all_finite;
    use crate::architecture::{ImageConfig, NetworkConfig};
    use crate::energy::conv::ConvEnergyBody;
    use crate::energy::EnergyNet;
    use crate::sampler::conv_generator::ConvGenerator;
    use crate::sampler::Generator;
    use candle::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};

    fn digits_config() -> ImageConfig {
        let mut cfg = ImageConfig::for_shape(1, 8, 8, [0.0, 16.0]);
        cfg.base_channels = 8;
        cfg.groups = 4;
        cfg
    }

    #[test]
    fn all_finite_finds_every_non_finite_value_anywhere() {
        let ok: Vec<f32> = (0..67).map(|i| (i as f32 - 30.0) * 1e36).collect();
        assert!(all_finite(&ok));
        assert!(all_finite(&[]));
        assert!(all_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 7, 8, 31, 63, 64, 66] {
                let mut x = ok.clone();
                x[at] = bad;
                assert!(!all_finite(&x), "{bad} at {at}");
            }
        }
    }

    // The energy and the sampler networks a model is built from, side by side.
    #[test]
    fn shapes_and_parameter_counts_follow_the_config() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let cfg = NetworkConfig::toy(5);
        let e = EnergyNet::new(&cfg, 4, vb.pp("energy")).unwrap();
        let g = Generator::new(&cfg, 4, vb.pp("generator")).unwrap();
        let x = Tensor::randn(0f32, 1., (7, 5), &dev).unwrap();
        let z = Tensor::randn(0f32, 1., (7, 2), &dev).unwrap();
        let k = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2], &dev).unwrap();
        assert_eq!(e.log_density(&x, &k).unwrap().dims(), &[7]);
        assert_eq!(g.forward_t(&x, &z, &k, true).unwrap().dims(), &[7, 5]);
        assert_eq!(g.forward_t(&x, &z, &k, false).unwrap().dims(), &[7, 5]);
        let data = vm.data().lock().unwrap();
        let count = |prefix: &str| -> usize {
            data.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, v)| v.elem_count())
                .sum()
        };
        // Energy: x-branch 5·16+16 + 16·32+32, t-branch 16·16+16 + 16·32+32,
        // head 64·300+300 + 300·300+300 + 300+1, plus one PReLU slope per hidden activation (4).
        let energy = (5 * 16 + 16 + 16 * 32 + 32)
            + (16 * 16 + 16 + 16 * 32 + 32)
            + (64 * 300 + 300 + 300 * 300 + 300 + 300 + 1)
            + 4;
        assert_eq!(count("energy."), energy);
        // Generator: input 5+2, output 5, BatchNorm (4 tensors of width w) on hidden layers.
        let gen = (7 * 16 + 16 + 16 * 32 + 32 + 4 * 16)
            + (16 * 16 + 16 + 16 * 32 + 32)
            + (64 * 300 + 300 + 4 * 300 + 300 * 300 + 300 + 4 * 300 + 300 * 5 + 5)
            + 4;
        assert_eq!(count("generator."), gen);
    }

    #[test]
    fn shapes_of_the_energy_and_the_generator() {
        let dev = Device::Cpu;
        let cfg = digits_config();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let energy = ConvEnergyBody::new(&cfg, 16, 4, vb.pp("energy")).unwrap();
        let generator = ConvGenerator::new(&cfg, 5, 16, 4, vb.pp("generator")).unwrap();
        let x = Tensor::randn(0f32, 1., (3, 64), &dev).unwrap();
        let k = Tensor::new(&[0u32, 1, 3], &dev).unwrap();
        assert_eq!(energy.forward(&x, &k).unwrap().dims(), &[3, 1]);
        let z = Tensor::randn(0f32, 1., (3, 5), &dev).unwrap();
        let out = generator.forward(&x, &z, &k).unwrap();
        assert_eq!(out.dims(), &[3, 64]);
        let max = out
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max <= 1.0, "tanh output, got {max}");
        // The latent changes the output (adaptive GroupNorm is wired in).
        let z2 = (&z + 1.0).unwrap();
        let out2 = generator.forward(&x, &z2, &k).unwrap();
        let diff = (out - out2).unwrap().abs().unwrap().sum_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() > 0.0);
        // A row's energy does not depend on the other rows of its batch (no batch statistics).
        let alone = energy
            .forward(&x.narrow(0, 1, 1).unwrap(), &k.narrow(0, 1, 1).unwrap())
            .unwrap();
        let together = energy.forward(&x, &k).unwrap().narrow(0, 1, 1).unwrap();
        let d = (alone - together)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
