//! The PReLU with one learnable slope used by every MLP.

use candle::{Module, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::error::Result;
use crate::nn::ops;

/// A PReLU with one learnable slope `a`, computed as `x ≥ 0 ? x : a·x` (= `max(x, a·x)` for
/// `a ∈ [0, 1]`; the slope is clamped to that range) as one selection instead of
/// candle-nn's five elementwise operations: these small networks are bound by elementwise work. The slope is stored as `weight`, shape (1,), initialised to 0.25 like PyTorch's.
#[derive(Clone, Debug)]
pub struct Prelu {
    weight: Tensor,
}

impl Prelu {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(1, "weight", Init::Const(0.25))?;
        Ok(Self { weight })
    }

    /// The slope as used: clamped to [0, 1].
    pub fn slope(&self) -> Result<f32> {
        Ok(self
            .weight
            .clamp(0.0, 1.0)?
            .flatten_all()?
            .to_vec1::<f32>()?[0])
    }
}

impl Prelu {
    /// The clamped slope as a scalar tensor, part of the autograd graph of `weight`.
    pub fn slope_tensor(&self) -> candle::Result<Tensor> {
        self.weight.clamp(0.0, 1.0)?.reshape(())
    }
}

impl Module for Prelu {
    /// `max(x, a·x)` written as a selection (one pass on the CPU, [`ops::prelu`]): the same
    /// values, and a backward pass of one selection and one masked sum where candle's `maximum`
    /// builds two masks and divides by their sum.
    fn forward(&self, xs: &Tensor) -> candle::Result<Tensor> {
        ops::prelu(xs, &self.slope_tensor()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::mlp::Mlp;
    use candle::ModuleT;
    use candle::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn prelu_slope_starts_at_a_quarter() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let mlp = Mlp::new(1, &[1, 1], false, vb).unwrap();
        let data = vm.data().lock().unwrap();
        let slope = data["act0.weight"].to_vec1::<f32>().unwrap();
        assert_eq!(slope, vec![0.25]);
        // Set the weights so the first layer is the identity and check the negative side.
        data["linear0.weight"]
            .set(&Tensor::new(&[[1f32]], &dev).unwrap())
            .unwrap();
        data["linear0.bias"]
            .set(&Tensor::new(&[0f32], &dev).unwrap())
            .unwrap();
        data["linear1.weight"]
            .set(&Tensor::new(&[[1f32]], &dev).unwrap())
            .unwrap();
        data["linear1.bias"]
            .set(&Tensor::new(&[0f32], &dev).unwrap())
            .unwrap();
        let x = Tensor::new(&[[-2f32], [3.0]], &dev).unwrap();
        let y: Vec<Vec<f32>> = mlp.forward_t(&x, false).unwrap().to_vec2().unwrap();
        assert_eq!(y, vec![vec![-0.5], vec![3.0]]);
    }
}
