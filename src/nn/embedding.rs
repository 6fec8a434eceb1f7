//! Level embeddings: the sinusoidal table of the integer diffusion levels, the MLP the image
//! networks put on it, and the per-row level index tensor.

use candle::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::error::Result;
use crate::nn::linear::linear;

/// Sinusoidal embedding of the integer levels `0..num_levels` (`docs/method.md#networks`): row `k` is
/// `[sin(k ω_0), …, sin(k ω_{h−1}), cos(k ω_0), …, cos(k ω_{h−1})]` with
/// `ω_j = exp(−j ln(10000) / (h − 1))`, `h = dim / 2`.
pub fn timestep_embedding(num_levels: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let mut table = Vec::with_capacity(num_levels * dim);
    for k in 0..num_levels {
        let freqs =
            (0..half).map(|j| (-(j as f64) * 10000f64.ln() / (half as f64 - 1.0)).exp() * k as f64);
        let (sin, cos): (Vec<f64>, Vec<f64>) = freqs.map(|a| (a.sin(), a.cos())).unzip();
        table.extend(sin.into_iter().chain(cos).map(|v| v as f32));
        table.extend(std::iter::repeat_n(0f32, dim - 2 * half));
    }
    Ok(Tensor::from_vec(table, (num_levels, dim), device)?)
}

/// The level embedding: sinusoid of `k` → Linear → SiLU → Linear (`docs/method.md#networks`), computed for every
/// level once at construction and looked up per row.
#[derive(Clone, Debug)]
pub struct LevelMlp {
    embedding: Tensor,
    first: Linear,
    second: Linear,
}

impl LevelMlp {
    pub fn new(num_levels: usize, sinusoid: usize, out: usize, vb: VarBuilder) -> Result<Self> {
        let embedding =
            timestep_embedding(num_levels, sinusoid, vb.device())?.to_dtype(vb.dtype())?;
        Ok(Self {
            embedding,
            first: linear(sinusoid, out, vb.pp("linear0"))?,
            second: linear(out, out, vb.pp("linear1"))?,
        })
    }

    /// `(B,)` u32 levels → `(B, out)`.
    pub fn forward(&self, levels: &Tensor) -> Result<Tensor> {
        let e = self.embedding.index_select(levels, 0)?;
        Ok(self.second.forward(&self.first.forward(&e)?.silu()?)?)
    }
}

/// A (B,) u32 tensor filled with `level`.
pub fn level_tensor(level: usize, batch: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(level as u32, batch, device)?.to_dtype(DType::U32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_matches_formula() {
        let t = timestep_embedding(5, 16, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[5, 16]);
        let rows: Vec<Vec<f32>> = t.to_vec2().unwrap();
        // Level 0: sines are 0, cosines are 1.
        assert!(rows[0][..8].iter().all(|&v| v == 0.0));
        assert!(rows[0][8..].iter().all(|&v| v == 1.0));
        // Level 3, j = 1: ω_1 = exp(−ln(10000)/7).
        let w1 = (-(10000f64.ln()) / 7.0).exp();
        assert!((rows[3][1] as f64 - (3.0 * w1).sin()).abs() < 1e-6);
        assert!((rows[3][9] as f64 - (3.0 * w1).cos()).abs() < 1e-6);
        // j = 0 has ω = 1.
        assert!((rows[2][0] as f64 - 2f64.sin()).abs() < 1e-6);
        // Odd widths are zero-padded.
        let odd = timestep_embedding(2, 7, &Device::Cpu).unwrap();
        assert_eq!(odd.to_vec2::<f32>().unwrap()[1][6], 0.0);
    }
}
