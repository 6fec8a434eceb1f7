//! The elementwise work of the MLP layers as single candle operations on the CPU: bias
//! addition, PReLU, and the PReLU's gradient selection, each with a backward pass.
//!
//! Composed from candle's primitives, a PReLU is a comparison, a multiplication and a selection
//! (three passes and three tensors), its backward pass two more selections, a zero tensor and a
//! reduction for the slope, and a bias addition's backward pass a column reduction that candle
//! runs element by element. Training these small networks is bound by that elementwise work
//! (about a third of a step), so each piece here is one pass over contiguous memory. The values
//! are the composed operations', element for element; only the order of the slope's and the
//! bias's gradient sums differs. On other devices (and for other dtypes) the functions fall back
//! to the composed operations.

use candle::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

/// `xs + bias` for `xs` (B, H) and `bias` (H).
pub fn bias_add(xs: &Tensor, bias: &Tensor) -> candle::Result<Tensor> {
    if !fast_path(&[xs, bias]) || xs.rank() != 2 {
        return xs.broadcast_add(bias);
    }
    xs.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd)
}

/// PReLU with slope `slope` (one element, already clamped): `x ≥ 0 ? x : slope · x`.
pub fn prelu(xs: &Tensor, slope: &Tensor) -> candle::Result<Tensor> {
    if !fast_path(&[xs, slope]) {
        return xs.ge(0f64)?.where_cond(xs, &xs.broadcast_mul(slope)?);
    }
    xs.contiguous()?.apply_op2(&slope.contiguous()?, Prelu)
}

/// The PReLU's input gradient from its output gradient `grad`: `pre ≥ 0 ? grad : slope · grad`,
/// with `pre` the PReLU's input. Differentiable with respect to `grad` and `slope` (the
/// second-order gradients of training go through it).
pub fn prelu_grad(pre: &Tensor, grad: &Tensor, slope: &Tensor) -> candle::Result<Tensor> {
    if !fast_path(&[pre, grad, slope]) {
        return pre.ge(0f64)?.where_cond(grad, &grad.broadcast_mul(slope)?);
    }
    // `pre` only selects: detached, so that no backward pass waits for a gradient of it.
    pre.detach()
        .contiguous()?
        .apply_op3(&grad.contiguous()?, &slope.contiguous()?, PreluGrad)
}

/// `Σ_{m < 0} u · v` over all elements, shape (1,): the slope's gradient of both PReLU ops.
fn masked_dot(m: &Tensor, u: &Tensor, v: &Tensor) -> candle::Result<Tensor> {
    m.detach()
        .contiguous()?
        .apply_op3(&u.contiguous()?, &v.contiguous()?, MaskedDot)
}

/// All tensors on the CPU, in one float dtype.
fn fast_path(ts: &[&Tensor]) -> bool {
    let dtype = ts[0].dtype();
    matches!(dtype, DType::F32 | DType::F64)
        && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == dtype)
}

fn slice<'a, T: candle::WithDType>(s: &'a CpuStorage, l: &Layout) -> candle::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => candle::bail!("layer op on a non-contiguous tensor"),
    }
}

/// Evaluates `$body` with `$t` standing for the storage's element type (f32 or f64) and wraps
/// the resulting vector in a storage of that type.
macro_rules! float_dispatch {
    ($storage:expr, $t:ident => $body:expr) => {
        match $storage {
            CpuStorage::F32(_) => {
                type $t = f32;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                CpuStorage::F64($body)
            }
            _ => candle::bail!("layer ops take f32 or f64"),
        }
    };
}

trait Float: candle::WithDType + std::ops::Mul<Output = Self> + std::ops::AddAssign {
    const ZERO: Self;
}
impl Float for f32 {
    const ZERO: Self = 0.0;
}
impl Float for f64 {
    const ZERO: Self = 0.0;
}

fn scalar<T: Float>(s: &CpuStorage, l: &Layout) -> candle::Result<T> {
    match slice::<T>(s, l)? {
        [a] => Ok(*a),
        _ => candle::bail!("the PReLU slope must have one element"),
    }
}

/// Rows of `xs` (row length `bias.len()`) plus `bias`.
fn add_to_rows<T: Float>(xs: &[T], bias: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(bias.len()) {
        out.extend(row.iter().zip(bias).map(|(&x, &b)| x + b));
    }
    out
}

/// `pre ≥ 0 ? v : a · v` per element: the PReLU itself (`pre = v = x`) and its gradient
/// selection (`v` the output gradient).
fn select<T: Float>(pre: &[T], v: &[T], a: T) -> candle::Result<Vec<T>> {
    if pre.len() != v.len() {
        candle::bail!("PReLU selection: {} inputs, {} values", pre.len(), v.len());
    }
    Ok(pre
        .iter()
        .zip(v)
        .map(|(&p, &v)| if p >= T::ZERO { v } else { v * a })
        .collect())
}

/// `Σ_{m < 0} u · v`, as a one-element vector.
fn masked_sum<T: Float>(m: &[T], u: &[T], v: &[T]) -> candle::Result<Vec<T>> {
    if m.len() != u.len() || m.len() != v.len() {
        candle::bail!(
            "masked dot of {}, {} and {} elements",
            m.len(),
            u.len(),
            v.len()
        );
    }
    let mut sum = T::ZERO;
    for ((&m, &u), &v) in m.iter().zip(u).zip(v) {
        if m < T::ZERO {
            sum += u * v;
        }
    }
    Ok(vec![sum])
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "ddaebm-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle::Result<(CpuStorage, Shape)> {
        let bias_len = l2.shape().elem_count();
        if bias_len == 0 || l1.dims().last() != Some(&bias_len) {
            candle::bail!("bias of {bias_len} for rows of {:?}", l1.dims());
        }
        let out = float_dispatch!(s1, T => add_to_rows::<T>(slice(s1, l1)?, slice(s2, l2)?));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle::Result<(Option<Tensor>, Option<Tensor>)> {
        // The column sums as a (1 × B)·(B × H) product: candle's sum over the rows walks the
        // matrix element by element.
        let ones = Tensor::ones((1, grad.dim(0)?), grad.dtype(), grad.device())?;
        let grad_bias = ones.matmul(&grad.contiguous()?)?.reshape(bias.shape())?;
        Ok((Some(grad.clone()), Some(grad_bias)))
    }
}

struct Prelu;

impl CustomOp2 for Prelu {
    fn name(&self) -> &'static str {
        "ddaebm-prelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle::Result<(CpuStorage, Shape)> {
        let out = float_dispatch!(s1, T => {
            let xs = slice::<T>(s1, l1)?;
            select(xs, xs, scalar::<T>(s2, l2)?)?
        });
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        slope: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_x = prelu_grad(xs, grad, slope)?;
        let grad_slope = masked_dot(xs, grad, xs)?.reshape(slope.shape())?;
        Ok((Some(grad_x), Some(grad_slope)))
    }
}

struct PreluGrad;

impl CustomOp3 for PreluGrad {
    fn name(&self) -> &'static str {
        "ddaebm-prelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle::bail!("PReLU gradient: shapes {:?} and {:?}", l1.dims(), l2.dims());
        }
        let out = float_dispatch!(s1, T => {
            select::<T>(slice(s1, l1)?, slice(s2, l2)?, scalar(s3, l3)?)?
        });
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        pre: &Tensor,
        grad: &Tensor,
        slope: &Tensor,
        _res: &Tensor,
        upstream: &Tensor,
    ) -> candle::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Linear in `grad` with the same selection; `pre` only selects (no gradient).
        let grad_grad = prelu_grad(pre, upstream, slope)?;
        let grad_slope = masked_dot(pre, upstream, grad)?.reshape(slope.shape())?;
        Ok((None, Some(grad_grad), Some(grad_slope)))
    }
}

struct MaskedDot;

impl CustomOp3 for MaskedDot {
    fn name(&self) -> &'static str {
        "ddaebm-masked-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle::Result<(CpuStorage, Shape)> {
        let out = float_dispatch!(s1, T => {
            masked_sum::<T>(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?)?
        });
        Ok((out, Shape::from(1)))
    }

    fn bwd(
        &self,
        m: &Tensor,
        u: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Only reached for third-order gradients; written for completeness.
        let negative = m.lt(0f64)?.to_dtype(u.dtype())?;
        let scale = grad.reshape(())?;
        let grad_u = (&negative * v)?.broadcast_mul(&scale)?;
        let grad_v = (&negative * u)?.broadcast_mul(&scale)?;
        Ok((None, Some(grad_u), Some(grad_v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Var};

    fn composed_prelu(xs: &Tensor, a: &Tensor) -> Tensor {
        xs.ge(0f64)
            .unwrap()
            .where_cond(xs, &xs.broadcast_mul(a).unwrap())
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        crate::test_support::max_abs_diff(a, b)
    }

    /// Values equal the composed operations' bit for bit, and the gradients (first order
    /// through `prelu` and `bias_add`, second order through `prelu_grad`) agree with candle's
    /// backward pass of the composed operations.
    #[test]
    fn match_the_composed_operations_and_their_gradients() {
        let dev = Device::Cpu;
        let xs = Var::from_tensor(&Tensor::randn(0f64, 1.0, (6, 5), &dev).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::randn(0f64, 1.0, 5, &dev).unwrap()).unwrap();
        let slope = Var::from_tensor(&Tensor::new(&[0.3f64], &dev).unwrap()).unwrap();
        let a = slope.as_tensor().reshape(()).unwrap();
        let weights = Tensor::randn(0f64, 1.0, (6, 5), &dev).unwrap();

        let fast_pre = bias_add(xs.as_tensor(), bias.as_tensor()).unwrap();
        let slow_pre = xs.as_tensor().broadcast_add(bias.as_tensor()).unwrap();
        assert_eq!(max_diff(&fast_pre, &slow_pre), 0.0);
        let fast = prelu(&fast_pre, &a).unwrap();
        let slow = composed_prelu(&slow_pre, &a);
        assert_eq!(max_diff(&fast, &slow), 0.0);

        // First order: a weighted sum of the outputs.
        let loss = |y: &Tensor| (y * &weights).unwrap().sum_all().unwrap();
        let (gf, gs) = (
            loss(&fast).backward().unwrap(),
            loss(&slow).backward().unwrap(),
        );
        for v in [&xs, &bias, &slope] {
            let d = max_diff(
                gf.get(v.as_tensor()).unwrap(),
                gs.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-12, "first-order gradient differs by {d}");
        }

        // Through the gradient selection: d/d(grad, slope) of Σ w ⊙ prelu_grad(pre, grad, a).
        let pre = Tensor::randn(0f64, 1.0, (6, 5), &dev).unwrap();
        let fast = prelu_grad(&pre, xs.as_tensor(), &a).unwrap();
        let slow = pre
            .ge(0f64)
            .unwrap()
            .where_cond(xs.as_tensor(), &xs.as_tensor().broadcast_mul(&a).unwrap())
            .unwrap();
        assert_eq!(max_diff(&fast, &slow), 0.0);
        let (gf, gs) = (
            loss(&fast).backward().unwrap(),
            loss(&slow).backward().unwrap(),
        );
        for v in [&xs, &slope] {
            let d = max_diff(
                gf.get(v.as_tensor()).unwrap(),
                gs.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-12, "gradient through prelu_grad differs by {d}");
        }
        let slope_grad = gf.get(slope.as_tensor()).unwrap();
        assert!(
            slope_grad
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
                > 0.0
        );
    }

    #[test]
    fn reject_mismatched_shapes() {
        let dev = Device::Cpu;
        let xs = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        assert!(bias_add(&xs, &Tensor::zeros(3, DType::F32, &dev).unwrap()).is_err());
        assert!(prelu(&xs, &Tensor::zeros(2, DType::F32, &dev).unwrap()).is_err());
        let slope = Tensor::zeros(1, DType::F32, &dev).unwrap();
        let grad = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        assert!(prelu_grad(&xs, &grad, &slope).is_err());
    }
}
