//! The variational posterior encoder `q_ψ(z | x_k, x_{k+1}, k)` (SPEC §2.2). Training only.

use candle::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use ddaebm::network::{linear, TimeConditionedMlp};
use ddaebm::NetworkConfig;

/// `[x_k, x_{k+1}] → trunk → (μ, log σ²)`.
pub struct Encoder {
    trunk: TimeConditionedMlp,
    mu: Linear,
    logvar: Linear,
}

impl Encoder {
    pub fn new(cfg: &NetworkConfig, num_levels: usize, vb: VarBuilder) -> ddaebm::Result<Self> {
        let d = cfg.input_dim;
        let f = cfg.encoder_features;
        Ok(Self {
            trunk: TimeConditionedMlp::new(cfg, num_levels, 2 * d, f, true, vb.pp("trunk"))?,
            mu: linear(f, cfg.latent_dim, vb.pp("mu"))?,
            logvar: linear(f, cfg.latent_dim, vb.pp("logvar"))?,
        })
    }

    /// `(μ, logvar)`, each `(B, nz)`.
    pub fn forward_t(
        &self,
        x: &Tensor,
        x_next: &Tensor,
        levels: &Tensor,
        train: bool,
    ) -> ddaebm::Result<(Tensor, Tensor)> {
        let input = Tensor::cat(&[x, x_next], 1)?;
        let h = self.trunk.forward_t(&input, levels, train)?;
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }
}
