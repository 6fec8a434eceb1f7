//! Linear layers: PyTorch's default initialisation and a forward pass whose bias addition is one
//! CPU pass ([`crate::nn::ops::bias_add`]).

use candle::{Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use crate::error::Result;
use crate::nn::ops;

/// A linear layer with PyTorch's default initialisation.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A linear layer's forward pass on rows (B, in): candle-nn's matrix product, then the bias
/// added in one pass on the CPU ([`ops::bias_add`], whose backward pass sums the bias
/// gradient as a matrix product).
pub fn linear_forward(layer: &Linear, xs: &Tensor) -> candle::Result<Tensor> {
    if xs.rank() != 2 {
        return layer.forward(xs);
    }
    let ys = xs.matmul(&layer.weight().t()?)?;
    match layer.bias() {
        Some(bias) => ops::bias_add(&ys, bias),
        None => Ok(ys),
    }
}
