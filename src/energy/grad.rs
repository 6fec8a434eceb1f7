//! The energy's gradient with respect to its input, `∇ₓf(x, k)`: what Langevin sampling
//! (`crate::sampler::langevin`) follows, and, as a tensor that can itself be differentiated with
//! respect to the weights, what the R1 penalty and denoising score matching of training need
//! (`docs/method.md#training`).
//!
//! For the MLP the chain rule is written out: a matrix product per linear layer and a selection
//! per PReLU ([`crate::nn::ops::prelu_grad`]), the soft clip's and the base measure's
//! derivatives in closed form. That costs a matrix product per layer instead of a full backward
//! pass, which would also compute every weight's gradient. The convolutional network of image
//! models goes through candle's backward pass, whose result keeps its graph only where candle is
//! told to keep it (`CANDLE_GRAD_DO_NOT_DETACH=1`, which the trainer sets for second-order
//! gradients before the thread's first backward pass).

use candle::Tensor;

use crate::energy::{BaseMeasure, EnergyBody, EnergyNet};
use crate::error::{Error, Result};
use crate::nn::linear::linear_forward;
use crate::nn::mlp::{Mlp, TimeConditionedMlp};
use crate::nn::ops;
use crate::nn::soft_clip::soft_clip_and_slope;

/// What a PReLU's input gradient needs from its forward pass: its input and clamped slope.
struct PreluSaved {
    pre: Tensor,
    slope: Tensor,
}

/// The forward pass of an MLP without BatchNorm, keeping each PReLU's input and slope.
fn forward_saving(mlp: &Mlp, xs: &Tensor) -> Result<(Tensor, Vec<PreluSaved>)> {
    let layers = mlp.layers()?;
    let mut h = xs.clone();
    let mut saved = Vec::with_capacity(layers.len());
    for (layer, act) in layers {
        h = linear_forward(layer, &h)?;
        if let Some(act) = act {
            let slope = act.slope_tensor()?;
            let out = ops::prelu(&h, &slope)?;
            saved.push(PreluSaved { pre: h, slope });
            h = out;
        }
    }
    Ok((h, saved))
}

/// `∂L/∂x` for the first `inputs` input columns, from `∂L/∂y` (B, out) and the forward pass's
/// [`PreluSaved`]: a selection per PReLU (the gradient where `x ≥ 0`, `a` times it elsewhere)
/// and a matrix product per layer.
fn mlp_input_grad(
    mlp: &Mlp,
    grad_out: &Tensor,
    saved: &[PreluSaved],
    inputs: usize,
) -> Result<Tensor> {
    let mut grad = grad_out.clone();
    for (i, (layer, _)) in mlp.layers()?.into_iter().enumerate().rev() {
        if let Some(s) = saved.get(i) {
            grad = ops::prelu_grad(&s.pre, &grad, &s.slope)?;
        }
        let weight = layer.weight();
        let weight = if i == 0 && inputs < weight.dim(1)? {
            weight.narrow(1, 0, inputs)?
        } else {
            weight.clone()
        };
        grad = grad.matmul(&weight)?;
    }
    Ok(grad)
}

/// The time-conditioned MLP's forward pass (inference mode) for a network with one output and
/// no BatchNorm, with the output's gradient with respect to `xs`: shapes (B, 1) and
/// (B, in_dim).
fn trunk_forward_with_input_grad(
    trunk: &TimeConditionedMlp,
    xs: &Tensor,
    levels: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (hx, saved_x) = forward_saving(trunk.x_branch(), xs)?;
    let ht = trunk.level_table()?.index_select(levels, 0)?;
    let x_width = hx.dim(1)?;
    let h = Tensor::cat(&[hx, ht], 1)?;
    let (out, saved_head) = forward_saving(trunk.head(), &h)?;
    if out.dim(1)? != 1 {
        return Err(Error::InvalidArgument(
            "the input gradient is for a network with one output".into(),
        ));
    }
    let ones = Tensor::ones(out.shape(), out.dtype(), out.device())?;
    let grad_hx = mlp_input_grad(trunk.head(), &ones, &saved_head, x_width)?;
    let grad = mlp_input_grad(trunk.x_branch(), &grad_hx, &saved_x, xs.dim(1)?)?;
    Ok((out, grad))
}

/// `(f, g, ∇ₓf)`: [`EnergyNet::log_density_and_ratio`] and the gradient of `f` with respect to
/// the rows `xs` (B, d), differentiable with respect to the network's weights.
pub fn log_density_ratio_and_input_grad(
    net: &EnergyNet,
    xs: &Tensor,
    levels: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = xs.detach();
    let trunk = match net.body() {
        EnergyBody::Mlp(trunk) => trunk,
        EnergyBody::Conv(_) => {
            let var = candle::Var::from_tensor(&xs)?;
            let (f, g) = net.log_density_and_ratio(var.as_tensor(), levels)?;
            let grad = f.sum_all()?.backward()?.remove(var.as_tensor());
            let grad = grad.ok_or_else(|| {
                Error::InvalidArgument("the energy has no gradient with respect to x".into())
            })?;
            return Ok((f, g, grad));
        }
    };
    let clip = net.soft_clip_width();
    let (u, clip_slope) = if clip > 0.0 {
        let (u, slope) = soft_clip_and_slope(&xs, clip)?;
        (u, Some(slope))
    } else {
        (xs.clone(), None)
    };
    let (g, grad_g) = trunk_forward_with_input_grad(trunk, &u, levels)?;
    let g = g.squeeze(1)?;
    let grad_g = match clip_slope {
        Some(slope) => (grad_g * slope)?,
        None => grad_g,
    };
    match net.base() {
        BaseMeasure::Mixture(mixture) => {
            let (log_base, grad_base) = mixture.log_density_and_grad(&xs, levels)?;
            Ok(((&g + log_base)?, g, (grad_g + grad_base)?))
        }
        BaseMeasure::None => Ok((g.clone(), g, grad_g)),
        BaseMeasure::Gaussian(base) => {
            let precision = base.precision();
            let f = (&g - (xs.sqr()?.sum(1)? * (0.5 * precision))?)?;
            Ok((f, g, (grad_g - (&xs * precision)?)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architecture::NetworkConfig;
    use candle::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The written-out input gradient equals candle's backward pass, for the plain MLP, with
    /// the soft clip and Gaussian base, and with a mixture base measure.
    #[test]
    fn input_gradient_matches_autodiff() {
        let dev = Device::Cpu;
        let d = 5;
        let mut plain = NetworkConfig::toy(d);
        plain.head_widths = vec![24, 16];
        plain.branch_widths = vec![8, 12];
        let mut clipped = plain.clone();
        clipped.input_soft_clip = 1.5;
        clipped.base_std = 2.0;
        let mut mixture = clipped.clone();
        mixture.base_std = 0.0;
        mixture.base_components = 3;
        for cfg in [plain, clipped, mixture] {
            let vm = VarMap::new();
            let e =
                EnergyNet::new(&cfg, 4, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
            {
                let data = vm.data().lock().unwrap();
                for (name, var) in data.iter() {
                    let value = match name.as_str() {
                        "base.means" => Tensor::randn(0f64, 1.0, var.shape(), &dev).unwrap(),
                        "base.variances" => Tensor::rand(0.3f64, 2.0, var.shape(), &dev).unwrap(),
                        "base.log_weights" => Tensor::new(&[-0.5f64, -1.5, -1.2], &dev).unwrap(),
                        _ => (var.as_tensor() * 2.0).unwrap(),
                    };
                    var.set(&value).unwrap();
                }
            }
            let e = if cfg.base_components > 0 {
                // The mixture keeps detached copies of its parameters: rebuild it.
                EnergyNet::new(&cfg, 4, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap()
            } else {
                e
            };
            let x = (Tensor::randn(0f64, 1.0, (7, d), &dev).unwrap() * 2.0).unwrap();
            let levels = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2], &dev).unwrap();
            let (f, g, grad) = log_density_ratio_and_input_grad(&e, &x, &levels).unwrap();
            let var = candle::Var::from_tensor(&x).unwrap();
            let (f_ref, g_ref) = e.log_density_and_ratio(var.as_tensor(), &levels).unwrap();
            let grad_ref = f_ref
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
                .remove(var.as_tensor())
                .unwrap();
            let max_diff = max_abs_diff;
            assert!(max_diff(&f, &f_ref) < 1e-10, "{cfg:?}");
            assert!(max_diff(&g, &g_ref) < 1e-10, "{cfg:?}");
            let scale = grad_ref
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(
                scale > 0.1,
                "a gradient this small would test nothing: {scale}"
            );
            assert!(max_diff(&grad, &grad_ref) < 1e-10 * scale, "{cfg:?}");
        }
    }
}
