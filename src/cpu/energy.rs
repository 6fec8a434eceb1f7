//! The level-0 energy on the CPU without candle: one fused pass per block of rows.
//!
//! Scoring is the library's hot path, and for the small networks of vector data candle's cost
//! per operation (a fresh tensor, a thread-pool dispatch and a copy per step) dominates the
//! arithmetic. [`CpuEnergy`] takes the energy network folded at level 0
//! ([`crate::energy::folded`]) once at open time and then scores rows in place:
//!
//! * the normalisation and soft clip are one pass over the input;
//! * every linear layer is one `gemm` call (bias pre-loaded into the output) followed by the
//!   PReLU in place, on two reused buffers per block;
//! * the Gaussian base measure is a dot product of the normalised row with itself; a mixture
//!   base measure is one more `gemm`, `[x², x] · [−½ V⁻¹; M V⁻¹]ᵀ` plus per-component
//!   constants, and a log-sum-exp per row (with spherical components, as the trainer fits them,
//!   `x · (M V⁻¹)ᵀ` plus `‖x‖²` times each component's `−½/v`: half the work).
//!
//! It computes the same function as [`crate::EnergyNet::log_density`] at level 0 (summation order
//! differs, so results agree to float rounding: tested) and is used by [`crate::Model`] on the
//! CPU. Blocks of [`BLOCK_ROWS`] rows are scored in parallel on the caller's rayon pool.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::cpu::kernels::{gemm_accumulate, log_sum_exp, sum_of_squares};
use crate::energy::folded::{DenseLayer, FoldedEnergy, MixtureLevel, MixtureProduct};
use crate::error::Result;
use crate::nn::soft_clip::{soft_clip_bound, soft_clip_value};
#[cfg(doc)]
use crate::EnergyNet;

/// Rows per block: each block is one task with its own buffers.
pub const BLOCK_ROWS: usize = 256;

/// Fewest rows of a block when a batch is split to keep every thread busy: below this a block's
/// dispatch costs about as much as its arithmetic.
pub const MIN_BLOCK_ROWS: usize = 16;

/// Rows per block for a batch of `n` rows on `threads` threads: [`BLOCK_ROWS`], or fewer when
/// that would leave threads idle (a batch of 64 on two threads: two blocks of 32), but at least
/// [`MIN_BLOCK_ROWS`].
pub fn block_rows(n: usize, threads: usize) -> usize {
    n.div_ceil(threads.max(1)).clamp(MIN_BLOCK_ROWS, BLOCK_ROWS)
}

/// The energy network at level 0, prepared for CPU scoring of raw rows.
pub struct CpuEnergy {
    dim: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Soft clip width `c` (0: off) and the clamp applied before it.
    clip: f32,
    clip_bound: f32,
    /// `1 / (2 s²)` of the Gaussian base measure (0: none).
    base_coefficient: f32,
    /// The x-branch layers, then the head's (the first with the level-0 t-branch folded in).
    layers: Vec<DenseLayer>,
    widest: usize,
    mixture: Option<FusedMixture>,
    /// Each layer's weight as (out, in) row-major, for the input gradient's backward products;
    /// made on the first gradient call (scoring never needs them).
    transposed: OnceLock<Vec<Vec<f32>>>,
}

/// The mixture base measure at level 0 as one matrix product ([`MixtureProduct`], whose fields
/// these are, with the component count).
struct FusedMixture {
    components: usize,
    /// Spherical: (d, K) row-major `μ/v`. Otherwise (2d, K): rows `0..d` hold `−½/v`, rows
    /// `d..2d` hold `μ/v`.
    weight: Vec<f32>,
    /// (K) `−½/v_j` when every component is spherical.
    spherical: Option<Vec<f32>>,
    /// (K): `log w_j − ½ Σ_i (ln 2π v_ji + μ_ji² / v_ji)`.
    constants: Vec<f32>,
    /// `weight` transposed, (K, width) row-major: the responsibilities times it give the
    /// gradient of every logit, summed.
    weight_t: Vec<f32>,
}

impl FusedMixture {
    fn new(mixture: &MixtureLevel, d: usize) -> Result<Self> {
        let MixtureProduct {
            weight,
            constants,
            spherical,
        } = MixtureProduct::new(mixture, d);
        let k = constants.len();
        Ok(Self {
            components: k,
            weight_t: transpose(&weight, weight.len() / k.max(1), k),
            weight,
            spherical,
            constants,
        })
    }

    /// The logits `c_j + features · W` of the `m` rows (m × K), as
    /// [`Self::negative_log_density`] forms them.
    fn logits(&self, features: &[f32], norms: &[f32], m: usize) -> Vec<f32> {
        let (k, width) = (self.components, self.weight.len() / self.components);
        let mut logits = Vec::with_capacity(m * k);
        match &self.spherical {
            Some(q) => {
                for &n in &norms[..m] {
                    logits.extend(self.constants.iter().zip(q).map(|(&c, &q)| c + n * q));
                }
            }
            None => {
                for _ in 0..m {
                    logits.extend_from_slice(&self.constants);
                }
            }
        }
        // SAFETY: logits holds m×k, features m×width and the weight width×k values, row-major
        // and in bounds; the three are distinct allocations.
        unsafe { gemm_accumulate(m, k, width, &mut logits, features, &self.weight) };
        logits
    }

    /// Adds `∂(−log p)/∂x` of the `m` rows `x` (m × d) to `grad`: with responsibilities
    /// `r = softmax(logits)`, `∇ log p = Σ_j r_j ∇ logit_j`, and `∇ logit_j = 2 q_j x + w_j`
    /// (spherical) or `2 a_j ⊙ x + b_j` (rows `a` = `−½/v`, `b` = `μ/v` of the weight).
    fn add_negative_log_density_gradient(
        &self,
        x: &[f32],
        features: &[f32],
        norms: &[f32],
        m: usize,
        grad: &mut [f32],
    ) {
        let d = x.len() / m.max(1);
        let (k, width) = (self.components, self.weight.len() / self.components);
        let mut r = self.logits(features, norms, m);
        for row in r.chunks_exact_mut(k) {
            let lse = log_sum_exp(row);
            for v in row.iter_mut() {
                *v = (*v - lse).exp();
            }
        }
        // Σ_j r_j W[i, j] for every feature column i: (m × K) · (K × width).
        let mut mixed = vec![0f32; m * width];
        // SAFETY: mixed holds m×width, r m×k and weight_t k×width values, row-major, in
        // bounds and distinct.
        unsafe { gemm_accumulate(m, width, k, &mut mixed, &r, &self.weight_t) };
        for row in 0..m {
            let (xr, gr) = (
                &x[row * d..(row + 1) * d],
                &mut grad[row * d..(row + 1) * d],
            );
            let mr = &mixed[row * width..(row + 1) * width];
            match &self.spherical {
                Some(q) => {
                    let rq: f32 = r[row * k..(row + 1) * k]
                        .iter()
                        .zip(q)
                        .map(|(a, b)| a * b)
                        .sum();
                    for ((g, &xi), &w) in gr.iter_mut().zip(xr).zip(mr) {
                        *g -= 2.0 * rq * xi + w;
                    }
                }
                None => {
                    for i in 0..d {
                        gr[i] -= 2.0 * mr[i] * xr[i] + mr[d + i];
                    }
                }
            }
        }
    }

    /// Values per row of the features [`Self::negative_log_density`] reads: `x` when spherical,
    /// otherwise `[x², x]`.
    fn feature_width(&self, d: usize) -> usize {
        if self.spherical.is_some() {
            d
        } else {
            2 * d
        }
    }

    /// Writes row `x`'s features into `f` (`feature_width` values).
    #[inline(always)]
    fn features(&self, x: &[f32], f: &mut [f32]) {
        let d = x.len();
        if self.spherical.is_none() {
            for (sq, &v) in f[..d].iter_mut().zip(x) {
                *sq = v * v;
            }
        }
        let start = f.len() - d;
        f[start..].copy_from_slice(x);
    }

    /// `out[r] = −log p(x_r)` for the `m` rows of `features` (m × `feature_width`), whose squared
    /// norms are `norms` (read only when spherical).
    #[inline(always)]
    fn negative_log_density(&self, features: &[f32], norms: &[f32], m: usize, out: &mut [f32]) {
        let k = self.components;
        let logits = self.logits(features, norms, m);
        for (e, row) in out.iter_mut().zip(logits.chunks_exact(k)) {
            *e = -log_sum_exp(row);
        }
    }
}

/// `dst = src · W + b` for the `m` rows of `src` (m × in) into the first m × out values of
/// `dst`: the bias pre-loaded, then one matrix product accumulating onto it.
#[inline(always)]
fn affine(layer: &DenseLayer, m: usize, src: &[f32], dst: &mut [f32]) {
    let (k, n) = (layer.in_dim, layer.out_dim);
    for r in 0..m {
        dst[r * n..(r + 1) * n].copy_from_slice(&layer.bias);
    }
    // SAFETY: dst holds m×n values (the slicing above would have panicked otherwise), the
    // callers pass src of m×k values and the weight holds k×n, all row-major; dst and src are
    // distinct buffers and the weights the layer's own.
    unsafe { gemm_accumulate(m, n, k, dst, src, &layer.weight) };
}

/// The layer's PReLU `max(v, slope·v)` in place (nothing without one).
#[inline(always)]
fn prelu(layer: &DenseLayer, values: &mut [f32]) {
    if let Some(slope) = layer.slope {
        for v in values {
            *v = v.max(slope * *v);
        }
    }
}

/// `(rows, cols)` row-major → `(cols, rows)` row-major.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

impl CpuEnergy {
    /// Prepares the folded network ([`EnergyNet::fold_level0`]) with the model's
    /// normalisation.
    pub fn new(folded: &FoldedEnergy, mean: &[f32], std: &[f32]) -> Result<Self> {
        let layers = folded.layers.clone();
        let clip = folded.soft_clip;
        let widest = layers.iter().map(|l| l.out_dim).max().unwrap_or(1);
        Ok(Self {
            dim: mean.len(),
            mean: mean.to_vec(),
            std: std.to_vec(),
            clip,
            clip_bound: soft_clip_bound(clip) as f32,
            base_coefficient: folded.gaussian.map_or(0.0, |g| g.coefficient() as f32),
            layers,
            widest: widest.max(mean.len()),
            mixture: folded
                .mixture
                .as_ref()
                .map(|mix| FusedMixture::new(mix, mean.len()))
                .transpose()?,
            transposed: OnceLock::new(),
        })
    }

    /// `∂E/∂x` of the level-0 energy at the *normalised* points `xn` (row-major, `dim` values
    /// each) into `grad` (the same shape): the backward pass of [`Self::energies`] written out,
    /// a matrix product per layer with the transposed weights, a selection per PReLU, the soft
    /// clip's slope and the base measure's gradient in closed form. The same function as the
    /// candle path's input gradient ([`crate::energy::grad`]), to float rounding (tested).
    pub fn normalized_input_gradients(&self, xn: &[f32], grad: &mut [f32]) {
        let d = self.dim;
        let transposed = self.transposed.get_or_init(|| {
            self.layers
                .iter()
                .map(|l| transpose(&l.weight, l.in_dim, l.out_dim))
                .collect()
        });
        let rows = block_rows(xn.len() / d, rayon::current_num_threads());
        xn.par_chunks(rows * d)
            .zip(grad.par_chunks_mut(rows * d))
            .for_each(|(x, g)| self.gradient_block(x, g, transposed));
    }

    fn gradient_block(&self, xn: &[f32], grad: &mut [f32], transposed: &[Vec<f32>]) {
        let d = self.dim;
        let m = xn.len() / d;
        let inv_c2 = if self.clip > 0.0 {
            1.0 / (self.clip * self.clip)
        } else {
            0.0
        };
        // The soft clip and its slope 1 / (s √s), s = 1 + n²/c² on the clamped value n.
        let mut u = xn.to_vec();
        let mut clip_slope = vec![1f32; m * d];
        if self.clip > 0.0 {
            for (v, sl) in u.iter_mut().zip(clip_slope.iter_mut()) {
                let n = v.clamp(-self.clip_bound, self.clip_bound);
                let s = n * n * inv_c2 + 1.0;
                let root = s.sqrt();
                *v = n / root;
                *sl = 1.0 / (s * root);
            }
        }
        // Forward through the layers, keeping every layer's output before its PReLU.
        let mut pre: Vec<Vec<f32>> = Vec::with_capacity(self.layers.len());
        let mut h = u;
        for layer in &self.layers {
            let mut out = vec![0f32; m * layer.out_dim];
            affine(layer, m, &h, &mut out);
            let mut next = out.clone();
            prelu(layer, &mut next);
            pre.push(out);
            h = next;
        }
        // Backward: E = −g + base, so ∂E/∂(g's output) = −1.
        let mut g = vec![-1f32; m * self.layers.last().map_or(1, |l| l.out_dim)];
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if let Some(slope) = layer.slope {
                for (gv, &p) in g.iter_mut().zip(&pre[i]) {
                    if p < 0.0 {
                        *gv *= slope;
                    }
                }
            }
            let mut below = vec![0f32; m * layer.in_dim];
            // SAFETY: below holds m×in, g m×out and the transposed weight out×in values,
            // row-major, in bounds and distinct.
            unsafe {
                gemm_accumulate(
                    m,
                    layer.in_dim,
                    layer.out_dim,
                    &mut below,
                    &g,
                    &transposed[i],
                )
            };
            g = below;
        }
        for ((out, &gu), &sl) in grad.iter_mut().zip(&g).zip(&clip_slope) {
            *out = gu * sl;
        }
        // The base measure: + coefficient·‖x‖² (Gaussian), or −log p(x) (mixture).
        if self.base_coefficient != 0.0 {
            for (out, &x) in grad.iter_mut().zip(xn) {
                *out += 2.0 * self.base_coefficient * x;
            }
        }
        if let Some(mixture) = &self.mixture {
            let width = mixture.feature_width(d);
            let mut features = vec![0f32; m * width];
            let mut norms = vec![0f32; m];
            for (r, row) in xn.chunks_exact(d).enumerate() {
                norms[r] = sum_of_squares(row);
                mixture.features(row, &mut features[r * width..(r + 1) * width]);
            }
            mixture.add_negative_log_density_gradient(xn, &features, &norms, m, grad);
        }
    }

    /// Energies `E = −f(x, 0)` of the raw rows `x` (row-major, `dim` values each) into `out`
    /// (one per row). Inputs are assumed checked (length, finiteness).
    pub fn energies(&self, x: &[f32], out: &mut [f32]) {
        let d = self.dim;
        let rows = block_rows(out.len(), rayon::current_num_threads());
        x.par_chunks(rows * d)
            .zip(out.par_chunks_mut(rows))
            .for_each(|(rows, energies)| self.block(rows, energies));
    }

    /// One block of at most `BLOCK_ROWS` rows, with the elementwise passes compiled for AVX2
    /// where the processor has it (the library is built for baseline x86-64, whose SSE
    /// registers hold half as many values; the matrix products choose their own kernels).
    fn block(&self, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2, checked just above.
            return unsafe { self.block_avx2(x, out) };
        }
        self.block_portable(x, out)
    }

    /// [`Self::block_portable`] compiled with AVX2 enabled. Rust does not contract `a·b + c`
    /// into fused multiply-adds, so both give bit-identical results.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(&self, x: &[f32], out: &mut [f32]) {
        self.block_portable(x, out)
    }

    #[inline(always)]
    fn block_portable(&self, x: &[f32], out: &mut [f32]) {
        let (d, m) = (self.dim, out.len());
        let mut a = vec![0f32; m * self.widest];
        let mut b = vec![0f32; m * self.widest];
        let width = self.mixture.as_ref().map_or(0, |mix| mix.feature_width(d));
        let mut features = vec![0f32; m * width];
        let mut norms = vec![0f32; m];
        // Normalise, remember ‖x_n‖², soft-clip: three simple passes per row, each of which
        // the compiler vectorises (one fused loop with a float reduction would not be).
        let inv_c2 = if self.clip > 0.0 {
            1.0 / (self.clip * self.clip)
        } else {
            0.0
        };
        for (r, row) in x.chunks_exact(d).enumerate() {
            let dst = &mut a[r * d..(r + 1) * d];
            for ((v, &xi), (&mu, &sd)) in
                dst.iter_mut().zip(row).zip(self.mean.iter().zip(&self.std))
            {
                *v = (xi - mu) / sd;
            }
            norms[r] = sum_of_squares(dst);
            out[r] = self.base_coefficient * norms[r];
            if let Some(mixture) = &self.mixture {
                mixture.features(dst, &mut features[r * width..(r + 1) * width]);
            }
            if self.clip > 0.0 {
                for v in dst.iter_mut() {
                    *v = soft_clip_value(*v, self.clip_bound, inv_c2);
                }
            }
        }
        if let Some(mixture) = &self.mixture {
            mixture.negative_log_density(&features, &norms, m, out);
        }
        let (mut src, mut dst) = (&mut a, &mut b);
        for layer in &self.layers {
            affine(layer, m, src, dst);
            prelu(layer, &mut dst[..m * layer.out_dim]);
            std::mem::swap(&mut src, &mut dst);
        }
        // E = −g + ½‖x‖²/s²  (or −g − log p(x) with the mixture)
        for (e, &g) in out.iter_mut().zip(src.iter()) {
            *e -= g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architecture::NetworkConfig;
    use crate::energy::EnergyNet;
    use crate::nn::embedding::level_tensor;
    use candle::Device;
    use candle::{DType, Tensor};
    use candle_nn::{VarBuilder, VarMap};

    /// The fused path against candle's `log_density` at level 0 on the same random network.
    fn compare(cfg: &NetworkConfig, rows: usize) -> f32 {
        compare_mixture(cfg, rows, false)
    }

    /// A random energy network for `cfg`; with `spherical`, each mixture component's variance
    /// is the same for every feature (the fast path), otherwise it varies per feature.
    fn random_net(cfg: &NetworkConfig, spherical: bool) -> (VarMap, EnergyNet) {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let net = EnergyNet::new(cfg, 4, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let d = cfg.input_dim;
        let k = cfg.base_components;
        if k > 0 {
            // Distinct components: weights, means and variances all differ.
            let data = vm.data().lock().unwrap();
            let n = 4 * k * d;
            let lw: Vec<f32> = (0..k).map(|j| -(1.0 + j as f32).ln()).collect();
            let means: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 * 0.4 - 2.0).collect();
            let vary = |i: usize| if spherical { i / d } else { i };
            let vars: Vec<f32> = (0..n)
                .map(|i| 0.3 + ((vary(i) * 13) % 7) as f32 * 0.2)
                .collect();
            for (name, value) in [
                (
                    "base.log_weights",
                    Tensor::new(lw.as_slice(), &dev).unwrap(),
                ),
                (
                    "base.means",
                    Tensor::from_vec(means, (4, k, d), &dev).unwrap(),
                ),
                (
                    "base.variances",
                    Tensor::from_vec(vars, (4, k, d), &dev).unwrap(),
                ),
            ] {
                data[name].set(&value).unwrap();
            }
        }
        (vm, net)
    }

    /// As [`compare`]; `spherical` as in [`random_net`].
    fn compare_mixture(cfg: &NetworkConfig, rows: usize, spherical: bool) -> f32 {
        let dev = Device::Cpu;
        let (_vm, net) = random_net(cfg, spherical);
        let d = cfg.input_dim;
        let mean: Vec<f32> = (0..d).map(|i| i as f32 * 0.1 - 0.5).collect();
        let std: Vec<f32> = (0..d).map(|i| 0.5 + (i % 3) as f32).collect();
        let x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919) % 1013) as f32 / 100.0 - 5.0)
            .collect();
        let xs = Tensor::from_slice(&x, (rows, d), &dev).unwrap();
        let xn = xs
            .broadcast_sub(&Tensor::new(mean.as_slice(), &dev).unwrap())
            .unwrap()
            .broadcast_div(&Tensor::new(std.as_slice(), &dev).unwrap())
            .unwrap();
        let want: Vec<f32> = net
            .log_density(&xn, &level_tensor(0, rows, &dev).unwrap())
            .unwrap()
            .neg()
            .unwrap()
            .to_vec1()
            .unwrap();
        let fused = CpuEnergy::new(&net.fold_level0().unwrap(), &mean, &std).unwrap();
        if let Some(mix) = &fused.mixture {
            assert_eq!(
                mix.spherical.is_some(),
                spherical,
                "the fast path taken iff spherical"
            );
        }
        let mut got = vec![f32::NAN; rows];
        fused.energies(&x, &mut got);
        got.iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
            .fold(0.0, f32::max)
    }

    /// The fused input gradient against candle's ([`crate::energy::grad`]) at level 0.
    fn compare_gradient(cfg: &NetworkConfig, rows: usize, spherical: bool) -> f32 {
        let dev = Device::Cpu;
        let (_vm, net) = random_net(cfg, spherical);
        let d = cfg.input_dim;
        let xn: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 7919) % 1013) as f32 / 150.0 - 3.3)
            .collect();
        let xs = Tensor::from_slice(&xn, (rows, d), &dev).unwrap();
        let levels = level_tensor(0, rows, &dev).unwrap();
        let (_, _, grad_f) =
            crate::energy::grad::log_density_ratio_and_input_grad(&net, &xs, &levels).unwrap();
        let want: Vec<f32> = grad_f
            .neg()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (mean, std) = (vec![0f32; d], vec![1f32; d]);
        let fused = CpuEnergy::new(&net.fold_level0().unwrap(), &mean, &std).unwrap();
        let mut got = vec![f32::NAN; rows * d];
        fused.normalized_input_gradients(&xn, &mut got);
        let scale = want.iter().fold(1f32, |m, w| m.max(w.abs()));
        got.iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / scale)
            .fold(0.0, f32::max)
    }

    #[test]
    fn the_input_gradient_agrees_with_the_candle_network() {
        let mut cfg = NetworkConfig::toy(5);
        cfg.head_widths = vec![64, 32];
        for rows in [1, 3, BLOCK_ROWS + 17] {
            let err = compare_gradient(&cfg, rows, false);
            assert!(err < 1e-5, "plain MLP, {rows} rows: {err}");
        }
        cfg.base_std = 0.7;
        cfg.input_soft_clip = 2.0;
        let err = compare_gradient(&cfg, 50, false);
        assert!(err < 1e-5, "Gaussian base and soft clip: {err}");
        cfg.base_std = 0.0;
        cfg.base_components = 5;
        for spherical in [false, true] {
            let err = compare_gradient(&cfg, 40, spherical);
            assert!(err < 1e-5, "mixture, spherical {spherical}: {err}");
        }
    }

    #[test]
    fn small_batches_split_across_threads_and_large_ones_use_full_blocks() {
        assert_eq!(block_rows(1, 2), MIN_BLOCK_ROWS);
        assert_eq!(block_rows(64, 2), 32);
        assert_eq!(block_rows(64, 16), MIN_BLOCK_ROWS);
        assert_eq!(block_rows(64, 1), 64);
        assert_eq!(block_rows(4096, 2), BLOCK_ROWS);
        assert_eq!(block_rows(300, 0), BLOCK_ROWS);
    }

    #[test]
    fn agrees_with_the_candle_network() {
        let mut cfg = NetworkConfig::toy(5);
        cfg.head_widths = vec![64, 32];
        for rows in [1, 3, BLOCK_ROWS, BLOCK_ROWS + 17, 3 * BLOCK_ROWS + 1] {
            let plain = compare(&cfg, rows);
            assert!(plain < 1e-5, "plain MLP, {rows} rows: {plain}");
        }
        cfg.base_std = 0.7;
        cfg.input_soft_clip = 4.0;
        for rows in [1, 300] {
            let based = compare(&cfg, rows);
            assert!(based < 1e-5, "base measure, {rows} rows: {based}");
        }
        let wide = NetworkConfig {
            input_dim: 64,
            branch_widths: vec![32, 48],
            ..cfg
        };
        assert!(compare(&wide, 100) < 1e-5);
    }

    #[test]
    fn agrees_with_the_candle_network_with_a_mixture_base() {
        let mut cfg = NetworkConfig::toy(6);
        cfg.head_widths = vec![32, 16];
        cfg.input_soft_clip = 4.0;
        cfg.base_components = 5;
        for spherical in [false, true] {
            for rows in [1, 7, BLOCK_ROWS + 3] {
                let err = compare_mixture(&cfg, rows, spherical);
                assert!(err < 1e-5, "spherical {spherical}, {rows} rows: {err}");
            }
        }
    }
}
