//! The level-0 energy on the CPU without candle: one fused pass per block of rows.
//!
//! Scoring is the library's hot path, and for the small networks of vector data candle's cost
//! per operation (a fresh tensor, a thread-pool dispatch and a copy per step) dominates: about
//! 110 µs for a single row, where the arithmetic needs a few µs. [`CpuEnergy`] prepares the
//! energy network once at open time and then scores rows in place:
//!
//! * the normalisation and soft clip are one pass over the input;
//! * the t-branch output at level 0 is a constant, folded into the head's first bias, so the
//!   head's first layer only multiplies the x-branch features;
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

use candle::{DType, Tensor};
use rayon::prelude::*;

use crate::base_measure::MixtureBase;
use crate::error::{Error, Result};
use crate::network::{soft_clip_bound, EnergyNet, Prelu};

/// Rows per block: each block is one task with its own buffers.
pub const BLOCK_ROWS: usize = 256;

struct Layer {
    /// (in, out) row-major: the stored (out, in) weight transposed, so that the kernel reads
    /// it with unit stride along the output.
    weight: Vec<f32>,
    bias: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
    /// PReLU slope after the layer (clamped to [0, 1]), if any.
    slope: Option<f32>,
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
    layers: Vec<Layer>,
    widest: usize,
    mixture: Option<FusedMixture>,
}

/// The mixture base measure at level 0 as one matrix product:
/// `log p(x) = logsumexp_j (c_j + Σ_i x_i² (−½/v_ji) + Σ_i x_i μ_ji / v_ji)`.
///
/// When every component is spherical (`v_ji = v_j` for all features, as the trainer fits them),
/// the quadratic term is `‖x‖² · (−½/v_j)` and the product shrinks to `x · (M V⁻¹)ᵀ`, (d × K)
/// instead of (2d × K): half the multiply-adds.
struct FusedMixture {
    components: usize,
    /// Spherical: (d, K) row-major `μ/v`. Otherwise (2d, K): rows `0..d` hold `−½/v`, rows
    /// `d..2d` hold `μ/v`.
    weight: Vec<f32>,
    /// (K) `−½/v_j` when every component is spherical.
    spherical: Option<Vec<f32>>,
    /// (K): `log w_j − ½ Σ_i (ln 2π v_ji + μ_ji² / v_ji)`.
    constants: Vec<f32>,
}

impl FusedMixture {
    fn new(mixture: &MixtureBase, d: usize) -> Result<Self> {
        let (log_weights, means, variances) = mixture.level_params(0)?;
        let k = log_weights.len();
        let is_spherical = variances
            .chunks_exact(d.max(1))
            .all(|v| v.iter().all(|&x| x == v[0]));
        let rows = if is_spherical { d } else { 2 * d };
        let mut weight = vec![0f32; rows * k];
        let mut constants = Vec::with_capacity(k);
        let ln_two_pi = (2.0 * std::f64::consts::PI).ln();
        for (j, &lw) in log_weights.iter().enumerate() {
            let mut c = f64::from(lw);
            for i in 0..d {
                let (m, v) = (f64::from(means[j * d + i]), f64::from(variances[j * d + i]));
                if is_spherical {
                    weight[i * k + j] = (m / v) as f32;
                } else {
                    weight[i * k + j] = (-0.5 / v) as f32;
                    weight[(d + i) * k + j] = (m / v) as f32;
                }
                c -= 0.5 * (ln_two_pi + v.ln() + m * m / v);
            }
            constants.push(c as f32);
        }
        let spherical = is_spherical.then(|| {
            (0..k)
                .map(|j| (-0.5 / f64::from(variances[j * d])) as f32)
                .collect()
        });
        Ok(Self {
            components: k,
            weight,
            spherical,
            constants,
        })
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
        for (e, row) in out.iter_mut().zip(logits.chunks_exact(k)) {
            *e = -log_sum_exp(row);
        }
    }
}

/// `ln Σ e^{l_j}`, computed as `top + ln Σ e^{l_j − top}` with eight-lane maxima and sums and
/// [`exp_nonpositive`] so that the loops vectorise (libm's `expf` is a call per value, and
/// takes its slow path for every far component whose term underflows).
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, &l) in lanes.iter_mut().zip(c) {
            *m = if l > *m { l } else { *m };
        }
    }
    let top = lanes
        .iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, |m, &l| if l > m { l } else { m });
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (s, &l) in sums.iter_mut().zip(c) {
            *s += exp_nonpositive(l - top);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&l| exp_nonpositive(l - top))
        .sum();
    top + (sums.iter().sum::<f32>() + tail).ln()
}

/// `e^x` for `x ≤ 0` in plain arithmetic the compiler vectorises, within 2 ulp of libm's `expf`
/// (tested). Arguments below −87 give `e^−87` ≈ 1.6e-38 instead of a smaller or zero value:
/// added to a sum that holds at least `e^0 = 1`, the difference is far below f32 resolution.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // x = n ln 2 + r with |r| ≤ ½ ln 2; e^x = 2^n e^r (Cody–Waite reduction, Cephes' expf
    // polynomial for e^r).
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding and subtracting it rounds to integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    // n ∈ [−126, 0]: 2^n is a normal float built from its exponent bits.
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `dst (m×n) += src (m×k) · weight (k×n)`, all row-major.
///
/// # Safety
/// The slices must hold at least those many values.
unsafe fn gemm_accumulate(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    src: &[f32],
    weight: &[f32],
) {
    debug_assert!(dst.len() >= m * n && src.len() >= m * k && weight.len() >= k * n);
    if m == 1 {
        return row_times_matrix(n, k, &mut dst[..n], &src[..k], &weight[..k * n]);
    }
    gemm_rows(m, n, k, dst, src, weight)
}

/// [`gemm_accumulate`] through `gemm` for any number of rows.
///
/// # Safety
/// As for [`gemm_accumulate`].
unsafe fn gemm_rows(m: usize, n: usize, k: usize, dst: &mut [f32], src: &[f32], weight: &[f32]) {
    gemm::gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        n as isize,
        true,
        src.as_ptr(),
        1,
        k as isize,
        weight.as_ptr(),
        1,
        n as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// `out (n) += x (k) · weight (k×n, row-major)` for a single row, as passes over the weight
/// rows: `out` gains `Σ_i x_i · weight_i`, four weight rows per pass, with unit stride everywhere
/// so that the loops vectorise. For one row `gemm` spends longer choosing and setting up its
/// kernel than this spends on the arithmetic (a single-row score at d = 512 spent 80% of its
/// time inside `gemm`; with this it scores 1.5–1.9× as many single rows per second). The same
/// loop run row by row for two or four rows was slower than `gemm`, which reads the weights
/// once for all the rows.
fn row_times_matrix(n: usize, k: usize, out: &mut [f32], x: &[f32], weight: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the processor supports AVX2 and FMA, checked just above.
        return unsafe { row_times_matrix_fma(n, k, out, x, weight) };
    }
    row_times_matrix_with::<false>(n, k, out, x, weight)
}

/// [`row_times_matrix_with`] with fused multiply-adds (what `gemm`'s kernels use too).
///
/// # Safety
/// The processor must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_times_matrix_fma(n: usize, k: usize, out: &mut [f32], x: &[f32], weight: &[f32]) {
    row_times_matrix_with::<true>(n, k, out, x, weight)
}

#[inline(always)]
fn row_times_matrix_with<const FUSED: bool>(
    n: usize,
    k: usize,
    out: &mut [f32],
    x: &[f32],
    weight: &[f32],
) {
    // `mul_add` is one instruction where FMA is enabled and a library call where it is not.
    let madd = |a: f32, b: f32, c: f32| if FUSED { a.mul_add(b, c) } else { a * b + c };
    if n == 0 {
        return;
    }
    let out = &mut out[..n];
    let (x4, x1) = x[..k].split_at(k - k % 4);
    let (w4, w1) = weight[..k * n].split_at(x4.len() * n);
    for (xs, ws) in x4.chunks_exact(4).zip(w4.chunks_exact(4 * n)) {
        // Slices of exactly n values, so that the loop below needs no bounds checks.
        let (w0, w1, w2, w3) = (&ws[..n], &ws[n..2 * n], &ws[2 * n..3 * n], &ws[3 * n..]);
        for j in 0..n {
            let acc = madd(xs[0], w0[j], out[j]);
            let acc = madd(xs[1], w1[j], acc);
            let acc = madd(xs[2], w2[j], acc);
            out[j] = madd(xs[3], w3[j], acc);
        }
    }
    for (&xi, w) in x1.iter().zip(w1.chunks_exact(n)) {
        for (o, &wv) in out.iter_mut().zip(w) {
            *o = madd(xi, wv, *o);
        }
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

impl Layer {
    /// From an (out, in) weight, its bias (zeros when absent) and the PReLU after it.
    fn new(weight: &Tensor, bias: Option<&Tensor>, act: Option<&Prelu>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Self {
            weight: to_vec(&weight.t()?.contiguous()?)?,
            bias: match bias {
                Some(b) => to_vec(b)?,
                None => vec![0.0; out_dim],
            },
            in_dim,
            out_dim,
            slope: act.map(Prelu::slope).transpose()?,
        })
    }
}

impl CpuEnergy {
    /// Prepares `net` (on any device; weights are copied to host memory) with the model's
    /// normalisation.
    pub fn new(net: &EnergyNet, mean: &[f32], std: &[f32]) -> Result<Self> {
        let trunk = net.trunk().ok_or_else(|| {
            Error::InvalidArgument("the fused CPU path handles MLP energy networks only".into())
        })?;
        let mut layers = vec![];
        for (linear, act) in trunk.x_branch().layers()? {
            layers.push(Layer::new(linear.weight(), linear.bias(), act)?);
        }
        let branch_out = layers.last().map_or(mean.len(), |l| l.out_dim);
        for (i, (linear, act)) in trunk.head().layers()?.into_iter().enumerate() {
            if i > 0 {
                layers.push(Layer::new(linear.weight(), linear.bias(), act)?);
                continue;
            }
            // [x-features, t-features] · Wᵀ = x-features · W_xᵀ + t-features · W_tᵀ, and the
            // t-features at level 0 are a constant: their product joins the bias.
            let w = linear.weight();
            let t_in = w.dim(1)? - branch_out;
            let mut first = Layer::new(&w.narrow(1, 0, branch_out)?, linear.bias(), act)?;
            let t_features = trunk.level_features(0)?; // (1, t-branch width)
            let folded = to_vec(&t_features.matmul(&w.narrow(1, branch_out, t_in)?.t()?)?)?;
            for (b, f) in first.bias.iter_mut().zip(folded) {
                *b += f;
            }
            layers.push(first);
        }
        if layers.last().map(|l| l.out_dim) != Some(1) {
            return Err(Error::bad_model("the energy head must end in one output"));
        }
        let clip = net.soft_clip_width();
        let s = net.base_std();
        let widest = layers.iter().map(|l| l.out_dim).max().unwrap_or(1);
        Ok(Self {
            dim: mean.len(),
            mean: mean.to_vec(),
            std: std.to_vec(),
            clip,
            clip_bound: soft_clip_bound(clip) as f32,
            base_coefficient: if s > 0.0 {
                (0.5 / f64::from(s).powi(2)) as f32
            } else {
                0.0
            },
            layers,
            widest: widest.max(mean.len()),
            mixture: net
                .mixture()
                .map(|mix| FusedMixture::new(mix, mean.len()))
                .transpose()?,
        })
    }

    /// Energies `E = −f(x, 0)` of the raw rows `x` (row-major, `dim` values each) into `out`
    /// (one per row). Inputs are assumed checked (length, finiteness).
    pub fn energies(&self, x: &[f32], out: &mut [f32]) {
        let d = self.dim;
        x.par_chunks(BLOCK_ROWS * d)
            .zip(out.par_chunks_mut(BLOCK_ROWS))
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
                let bound = self.clip_bound;
                for v in dst.iter_mut() {
                    let n = v.clamp(-bound, bound);
                    *v = n / (n * n * inv_c2 + 1.0).sqrt();
                }
            }
        }
        if let Some(mixture) = &self.mixture {
            mixture.negative_log_density(&features, &norms, m, out);
        }
        let (mut src, mut dst) = (&mut a, &mut b);
        for layer in &self.layers {
            let (k, n) = (layer.in_dim, layer.out_dim);
            for r in 0..m {
                dst[r * n..(r + 1) * n].copy_from_slice(&layer.bias);
            }
            // SAFETY: dst holds m×n, src m×k and the weight k×n values, all row-major and
            // in bounds; the three do not overlap (two distinct buffers and the weights).
            unsafe { gemm_accumulate(m, n, k, dst, src, &layer.weight) };
            if let Some(slope) = layer.slope {
                for v in &mut dst[..m * n] {
                    *v = v.max(slope * *v);
                }
            }
            std::mem::swap(&mut src, &mut dst);
        }
        // E = −g + ½‖x‖²/s²  (or −g − log p(x) with the mixture)
        for (e, &g) in out.iter_mut().zip(src.iter()) {
            *e -= g;
        }
    }
}

/// `Σ v²` with eight independent partial sums, so that it vectorises.
#[inline(always)]
fn sum_of_squares(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{level_tensor, NetworkConfig};
    use candle::Device;
    use candle_nn::{VarBuilder, VarMap};

    /// The fused path against candle's `log_density` at level 0 on the same random network.
    fn compare(cfg: &NetworkConfig, rows: usize) -> f32 {
        compare_mixture(cfg, rows, false)
    }

    /// As [`compare`]; with `spherical`, each mixture component's variance is the same for
    /// every feature (the fast path), otherwise it varies per feature.
    fn compare_mixture(cfg: &NetworkConfig, rows: usize, spherical: bool) -> f32 {
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
        let fused = CpuEnergy::new(&net, &mean, &std).unwrap();
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
    fn single_rows_agree_with_gemm() {
        // Odd sizes: a remainder after the four-input passes and vectors that do not fill a lane.
        let mut state = 1u32;
        let mut next = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (n, k) in [(37, 23), (1, 1), (16, 512), (72, 3)] {
            let weight: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let x: Vec<f32> = (0..k).map(|_| next()).collect();
            let init: Vec<f32> = (0..n).map(|_| next()).collect();
            let mut ours = init.clone();
            row_times_matrix(n, k, &mut ours, &x, &weight);
            let mut plain = init.clone();
            row_times_matrix_with::<false>(n, k, &mut plain, &x, &weight);
            let mut reference = init;
            // SAFETY: the buffers hold n, k and k×n values.
            unsafe { gemm_rows(1, n, k, &mut reference, &x, &weight) };
            for (label, got) in [("dispatched", &ours), ("unfused", &plain)] {
                let err = got
                    .iter()
                    .zip(&reference)
                    .fold(0f32, |e, (a, b)| e.max((a - b).abs()));
                assert!(err < 1e-4, "{n}×{k}, {label}: max |diff| {err}");
            }
        }
    }

    #[test]
    fn exp_nonpositive_matches_libm() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            worst = worst.max((got - want).abs() / want);
        }
        // f32 has a relative resolution of 6e-8; libm's expf is within 1 ulp of e^x.
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        let floor = exp_nonpositive(-87.0);
        assert!(floor > 0.0 && floor < 2e-38);
        assert_eq!(exp_nonpositive(-1e30), floor);
    }

    #[test]
    fn log_sum_exp_is_exact_to_float_rounding() {
        for k in [1usize, 5, 8, 13, 72, 100] {
            let row: Vec<f32> = (0..k)
                .map(|j| ((j * 37) % 23) as f32 * -3.1 + 7.0)
                .collect();
            let top = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let want = f64::from(top)
                + row
                    .iter()
                    .map(|&l| f64::from(l - top).exp())
                    .sum::<f64>()
                    .ln();
            let got = f64::from(log_sum_exp(&row));
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{k}: {got} vs {want}"
            );
        }
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
