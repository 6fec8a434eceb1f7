//! The image generator: a U-Net `G(x_{k+1}, z, k)` whose GroupNorms are modulated by the latent
//! (adaptive GroupNorm, `γ(z) ⊙ GN(h) + β(z)`), with a tanh output (images are scaled to
//! [−1, 1]).

use candle::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::architecture::ImageConfig;
use crate::error::Result;
use crate::nn::conv::{
    avg_pool, conv, down_stages, image_to_pixels, pixels_to_rows, silu, stage_blocks, stage_grids,
    upsample, Conv, Grid, GroupNorm, ResBlock,
};
use crate::nn::embedding::LevelMlp;
use crate::nn::linear::linear;

/// The image generator: a U-Net on `x_{k+1}` with latent-modulated GroupNorms and a tanh
/// output, `(B, C·H·W)` → `(B, C·H·W)` in [−1, 1].
#[derive(Clone, Debug)]
pub struct ConvGenerator {
    cfg: ImageConfig,
    level: LevelMlp,
    /// PixelNorm(z) → Linear → SiLU → Linear → SiLU.
    mapping: [Linear; 2],
    input: Conv,
    down: Vec<Vec<ResBlock>>,
    middle: ResBlock,
    up: Vec<Vec<ResBlock>>,
    grids: Vec<Grid>,
    out_norm: GroupNorm,
    output: Conv,
}

impl ConvGenerator {
    pub fn new(
        cfg: &ImageConfig,
        latent_dim: usize,
        sinusoid: usize,
        num_levels: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let e = cfg.embed_dim();
        let z = Some(e);
        let grids = stage_grids(cfg);
        let level = LevelMlp::new(num_levels, sinusoid, e, vb.pp("level"))?;
        let mapping = [
            linear(latent_dim, e, vb.pp("mapping.linear0"))?,
            linear(e, e, vb.pp("mapping.linear1"))?,
        ];
        let input = conv(
            cfg.channels,
            cfg.stage_channels(0),
            3,
            grids[0],
            vb.pp("input"),
        )?;
        let n = grids.len();
        let down = down_stages(cfg, &grids, z, &vb, "down")?;
        let mut up = vec![];
        let mut prev = cfg.stage_channels(n - 1);
        let middle = ResBlock::new(prev, prev, grids[n - 1], cfg.groups, e, z, vb.pp("middle"))?;
        for i in (0..n).rev() {
            // Each up stage sees its input concatenated with the down stage's output.
            let c = cfg.stage_channels(i);
            up.push(stage_blocks(
                cfg,
                prev + c,
                c,
                grids[i],
                z,
                vb.pp(format!("up{i}")),
            )?);
            prev = c;
        }
        let (dev, dtype) = (vb.device().clone(), vb.dtype());
        let out_norm = GroupNorm::new(cfg.groups, prev, Some(vb.pp("out_norm")), &dev, dtype)?;
        let output = conv(prev, cfg.channels, 3, grids[0], vb.pp("output"))?;
        Ok(Self {
            cfg: cfg.clone(),
            level,
            mapping,
            input,
            down,
            middle,
            up,
            grids,
            out_norm,
            output,
        })
    }

    /// `x_next`: `(B, C·H·W)`, `z`: `(B, nz)`, `levels`: `(B,)` u32 → `x̂`, `(B, C·H·W)`.
    pub fn forward(&self, x_next: &Tensor, z: &Tensor, levels: &Tensor) -> Result<Tensor> {
        let temb = self.level.forward(levels)?;
        // PixelNorm: z / √(mean(z²) + 1e-8).
        let z = z.broadcast_div(&(z.sqr()?.mean_keepdim(1)? + 1e-8)?.sqrt()?)?;
        let zemb = silu(&self.mapping[0].forward(&z)?)?;
        let zemb = silu(&self.mapping[1].forward(&zemb)?)?;
        let zemb = Some(&zemb);
        let mut h = self.input.forward(&image_to_pixels(&self.cfg, x_next)?)?;
        let mut skips = vec![];
        for (i, blocks) in self.down.iter().enumerate() {
            if i > 0 {
                h = avg_pool(&h, self.grids[i - 1])?;
            }
            for block in blocks {
                h = block.forward(&h, &temb, zemb)?;
            }
            skips.push(h.clone());
        }
        h = self.middle.forward(&h, &temb, zemb)?;
        let n = self.grids.len();
        for (j, blocks) in self.up.iter().enumerate() {
            let skip = skips.pop().expect("one skip per stage");
            if j > 0 {
                h = upsample(&h, self.grids[n - j])?;
            }
            h = Tensor::cat(&[&h, &skip], 2)?;
            for block in blocks {
                h = block.forward(&h, &temb, zemb)?;
            }
        }
        h = silu(&self.out_norm.forward(&h)?)?;
        pixels_to_rows(&self.output.forward(&h)?.tanh()?)
    }
}
