//! The DDAEBM generator `G_φ([x_{k+1}, z], k)`: a clean-data estimate from the noisier level and
//! a latent. An MLP with BatchNorm for vectors, a U-Net for images.

use candle::Tensor;
use candle_nn::VarBuilder;

use crate::architecture::NetworkConfig;
use crate::error::Result;
use crate::nn::mlp::TimeConditionedMlp;
use crate::sampler::conv_generator::ConvGenerator;

#[derive(Clone, Debug)]
pub struct Generator {
    body: GeneratorBody,
    latent_dim: usize,
}

// One per model: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum GeneratorBody {
    /// The MLP on `[x_{k+1}, z]`, with BatchNorm.
    Mlp(TimeConditionedMlp),
    /// The U-Net on `x_{k+1}` modulated by `z`.
    Conv(ConvGenerator),
}

impl Generator {
    pub fn new(cfg: &NetworkConfig, num_levels: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.input_dim;
        let body = match &cfg.image {
            None => GeneratorBody::Mlp(TimeConditionedMlp::new(
                cfg,
                num_levels,
                d + cfg.latent_dim,
                d,
                true,
                vb,
            )?),
            Some(image) => GeneratorBody::Conv(ConvGenerator::new(
                image,
                cfg.latent_dim,
                cfg.time_embed_dim,
                num_levels,
                vb,
            )?),
        };
        Ok(Self {
            body,
            latent_dim: cfg.latent_dim,
        })
    }

    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// `x̂ = G([x_next, z], k)`, shape (B, d). `train` selects batch statistics in BatchNorm
    /// (and updates the running statistics); `false` uses the running statistics. The image
    /// generator has no BatchNorm and ignores it.
    pub fn forward_t(
        &self,
        x_next: &Tensor,
        z: &Tensor,
        levels: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        match &self.body {
            GeneratorBody::Mlp(trunk) => {
                let input = Tensor::cat(&[x_next, z], 1)?;
                trunk.forward_t(&input, levels, train)
            }
            GeneratorBody::Conv(net) => net.forward(x_next, z, levels),
        }
    }
}
