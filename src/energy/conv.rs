//! The learned part `g(x, k)` of an image model's energy: the downsampling residual network
//! with a scalar head.

use candle::Tensor;
use candle_nn::VarBuilder;

use crate::architecture::ImageConfig;
use crate::error::Result;
use crate::nn::conv::{image_to_pixels, DownsamplingNet, DownsamplingParts};

/// The energy network's learned part `g(x, k)` for images, `(B, C·H·W)` → `(B, 1)`.
#[derive(Clone, Debug)]
pub struct ConvEnergyBody {
    cfg: ImageConfig,
    net: DownsamplingNet,
}

impl ConvEnergyBody {
    pub fn new(
        cfg: &ImageConfig,
        sinusoid: usize,
        num_levels: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            net: DownsamplingNet::new(cfg, sinusoid, num_levels, cfg.channels, 1, vb)?,
        })
    }

    /// The image shape and pixel scaling.
    pub fn config(&self) -> &ImageConfig {
        &self.cfg
    }

    /// The network at diffusion level `level` as plain arrays.
    pub fn level_parts(&self, level: usize) -> Result<DownsamplingParts> {
        self.net.level_parts(level)
    }

    pub fn forward(&self, xs: &Tensor, levels: &Tensor) -> Result<Tensor> {
        self.net.forward(&image_to_pixels(&self.cfg, xs)?, levels)
    }
}
