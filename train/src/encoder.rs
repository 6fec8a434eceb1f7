//! The variational posterior encoder `q_ψ(z | x_k, x_{k+1}, k)` (`docs/method.md#networks`). Training
//! only.

use candle::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use ddaebm::nn::conv::{image_to_pixels, DownsamplingNet};
use ddaebm::nn::linear::linear;
use ddaebm::nn::mlp::TimeConditionedMlp;
use ddaebm::ImageConfig;
use ddaebm::NetworkConfig;

/// `[x_k, x_{k+1}] → trunk → (μ, log σ²)`.
pub struct Encoder {
    trunk: Trunk,
    mu: Linear,
    logvar: Linear,
}

enum Trunk {
    /// The time-conditioned MLP on the concatenated rows (BatchNorm on its hidden layers).
    Mlp(TimeConditionedMlp),
    /// The downsampling residual network on the two images stacked as `2C` channels.
    Conv(ImageConfig, DownsamplingNet),
}

impl Encoder {
    pub fn new(cfg: &NetworkConfig, num_levels: usize, vb: VarBuilder) -> ddaebm::Result<Self> {
        let d = cfg.input_dim;
        let f = cfg.encoder_features;
        let trunk = match &cfg.image {
            None => Trunk::Mlp(TimeConditionedMlp::new(
                cfg,
                num_levels,
                2 * d,
                f,
                true,
                vb.pp("trunk"),
            )?),
            Some(image) => Trunk::Conv(
                image.clone(),
                DownsamplingNet::new(
                    image,
                    cfg.time_embed_dim,
                    num_levels,
                    2 * image.channels,
                    f,
                    vb.pp("trunk"),
                )?,
            ),
        };
        Ok(Self {
            trunk,
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
        let h = match &self.trunk {
            Trunk::Mlp(trunk) => trunk.forward_t(&Tensor::cat(&[x, x_next], 1)?, levels, train)?,
            Trunk::Conv(image, net) => {
                let pair = Tensor::cat(
                    &[image_to_pixels(image, x)?, image_to_pixels(image, x_next)?],
                    2,
                )?;
                net.forward(&pair, levels)?
            }
        };
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn outputs_mean_and_log_variance_per_latent_dim() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let mut cfg = NetworkConfig::toy(3);
        cfg.latent_dim = 5;
        let enc = Encoder::new(&cfg, 4, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let x = Tensor::randn(0f32, 1., (6, 3), &dev).unwrap();
        let xn = Tensor::randn(0f32, 1., (6, 3), &dev).unwrap();
        let k = Tensor::new(&[0u32, 1, 2, 3, 0, 1], &dev).unwrap();
        let (mu, lv) = enc.forward_t(&x, &xn, &k, true).unwrap();
        assert_eq!(mu.dims(), &[6, 5]);
        assert_eq!(lv.dims(), &[6, 5]);
        // The encoder reads both members of the pair: changing x_{k+1} changes μ.
        let (mu2, _) = enc.forward_t(&x, &(&xn + 1.0).unwrap(), &k, true).unwrap();
        let diff: f32 = (mu - mu2)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff > 0.0);
        // Input width 2d: the first layer of the x-branch has 6 inputs.
        let w = vm.data().lock().unwrap()["trunk.x_branch.linear0.weight"]
            .shape()
            .clone();
        assert_eq!(w.dims(), &[16, 6]);
    }
}
