//! Scalar and matrix kernels of the fused CPU path: a log-sum-exp and an `e^x` that vectorise,
//! the matrix product `dst += src · weight` (`gemm`, or a loop over weight rows for one row),
//! and a vectorising sum of squares.

/// `ln Σ e^{l_j}`, computed as `top + ln Σ e^{l_j − top}` with eight-lane maxima and sums and
/// [`exp_nonpositive`] so that the loops vectorise (libm's `expf` is a call per value, and
/// takes its slow path for every far component whose term underflows).
#[inline(always)]
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
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
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
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
pub(crate) unsafe fn gemm_accumulate(
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
pub(crate) unsafe fn gemm_rows(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    src: &[f32],
    weight: &[f32],
) {
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
/// so that the loops vectorise. For a single row `gemm`'s kernel selection and set-up cost more
/// than the arithmetic; for two rows or more `gemm`, which reads the weights once for all rows,
/// is the faster choice (measurements: `bench/scoring/README.md`).
pub(crate) fn row_times_matrix(n: usize, k: usize, out: &mut [f32], x: &[f32], weight: &[f32]) {
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
pub(crate) fn row_times_matrix_with<const FUSED: bool>(
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

/// `Σ v²` with eight independent partial sums, so that it vectorises.
#[inline(always)]
pub(crate) fn sum_of_squares(v: &[f32]) -> f32 {
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
}
