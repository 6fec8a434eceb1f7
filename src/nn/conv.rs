//! Building blocks of the convolutional networks for image data (C×H×W inputs): pixel-major
//! activations ([`Grid`]), same-size convolutions, pooling and upsampling, GroupNorm (plain and
//! latent-modulated), "BigGAN"-style residual blocks and the downsampling residual network that
//! is the image energy's body and the image encoder's trunk. See `docs/method.md#networks`.
//!
//! Rows stay flat everywhere else in ddaebm: an image is a row of `C·H·W` values in
//! channel-major order (all of channel 0 row by row, then channel 1, …), so the trainer, the
//! losses, sampling and the C ABI are the same for vectors and images. Inside, these networks
//! compute on pixel-major activations `(H·W, B, C)` and convert on the way in and out.
//!
//! Every residual block is norm → SiLU → conv3×3, plus a per-channel bias from the level
//! embedding, norm → SiLU → conv3×3, a 1×1 skip when the channel count changes, and
//! `(skip + h)/√2`.

use candle::{DType, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::architecture::ImageConfig;
use crate::error::{Error, Result};
use crate::nn::embedding::{level_tensor, LevelMlp};
use crate::nn::linear::linear;

/// GroupNorm's ε.
pub const GROUP_NORM_EPS: f64 = 1e-6;

/// A convolution's weights in host memory, for consumers outside candle (the ONNX export).
#[derive(Clone, Debug)]
pub struct ConvParts {
    /// `(out, in, k, k)` row-major, the ONNX `Conv` layout.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    /// 3 (zero padding 1) or 1.
    pub kernel: usize,
}

/// A GroupNorm's groups and per-channel affine (ε is [`GROUP_NORM_EPS`]).
#[derive(Clone, Debug)]
pub struct NormParts {
    pub groups: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A residual block at one diffusion level: the level's per-channel bias is folded into
/// `conv1`'s bias. Output `(skip(h) + conv2(SiLU(norm2(conv1(SiLU(norm1(h)))))))/√2`.
#[derive(Clone, Debug)]
pub struct BlockParts {
    pub norm1: NormParts,
    pub conv1: ConvParts,
    pub norm2: NormParts,
    pub conv2: ConvParts,
    /// The 1×1 skip convolution when the channel count changes (else the identity).
    pub skip: Option<ConvParts>,
}

/// [`DownsamplingNet`] at one diffusion level as plain arrays: input conv, stages of blocks
/// (2×2 average pooling before every stage after the first), GroupNorm → SiLU → spatial mean
/// → linear head.
#[derive(Clone, Debug)]
pub struct DownsamplingParts {
    pub input: ConvParts,
    pub stages: Vec<Vec<BlockParts>>,
    pub out_norm: NormParts,
    /// `(out_features, channels)` row-major.
    pub head_weight: Vec<f32>,
    pub head_bias: Vec<f32>,
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// `(B, C·H·W)` rows of images shaped as `cfg` says → pixel-major `(H·W, B, C)` activations
/// (see [`Grid`]).
pub fn image_to_pixels(cfg: &ImageConfig, xs: &Tensor) -> Result<Tensor> {
    let grid = Grid {
        height: cfg.height,
        width: cfg.width,
    };
    rows_to_pixels(xs, cfg.channels, grid)
}

/// Activations inside these networks are *pixel-major*: `(H·W, B, C)`, pixels row by row, then
/// the batch, then channels. Every operation a training step repeats is then a matrix product
/// or a copy of whole `B·C` blocks: a convolution gathers the `k·k` neighbours of every pixel
/// with one `index_select` over the leading dimension and multiplies by the weights, and its
/// backward pass is an `index_add` of blocks plus matrix products, which candle differentiates
/// again for the energy's second-order gradients. (candle's own convolution differentiates
/// into a transposed convolution whose CPU kernel was the largest cost of a training step.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub height: usize,
    pub width: usize,
}

impl Grid {
    pub fn pixels(self) -> usize {
        self.height * self.width
    }

    pub fn halved(self) -> Self {
        Self {
            height: self.height / 2,
            width: self.width / 2,
        }
    }
}

/// `(B, C·H·W)` channel-major rows → `(H·W, B, C)`.
pub fn rows_to_pixels(xs: &Tensor, channels: usize, grid: Grid) -> Result<Tensor> {
    let b = xs.dim(0)?;
    Ok(xs
        .reshape((b, channels, grid.pixels()))?
        .permute((2, 0, 1))?
        .contiguous()?)
}

/// `(H·W, B, C)` → `(B, C·H·W)` channel-major rows.
pub fn pixels_to_rows(xs: &Tensor) -> Result<Tensor> {
    let (p, b, c) = xs.dims3()?;
    Ok(xs.permute((1, 2, 0))?.contiguous()?.reshape((b, c * p))?)
}

/// A same-size convolution with an odd square kernel (3×3 with zero padding 1, or 1×1) and a
/// bias on pixel-major activations. The weights are candle-nn's `Conv2d` layout (`weight`
/// `(O, C, k, k)`, `bias` `(O,)`).
#[derive(Clone, Debug)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    grid: Grid,
}

impl Conv {
    pub fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        grid: Grid,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = 1.0 / ((in_c * kernel * kernel) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((out_c, in_c, kernel, kernel), "weight", init)?;
        let bias = vb.get_with_hints(out_c, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            kernel,
            grid,
        })
    }

    /// The weights in host memory.
    pub fn parts(&self) -> Result<ConvParts> {
        let (out_channels, in_channels, _, _) = self.weight.dims4()?;
        Ok(ConvParts {
            weight: host(&self.weight)?,
            bias: host(&self.bias)?,
            in_channels,
            out_channels,
            kernel: self.kernel,
        })
    }

    /// `(H·W, B, C)` → `(H·W, B, O)`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (p, b, c) = xs.dims3()?;
        let o = self.weight.dim(0)?;
        let k2 = self.kernel * self.kernel;
        // The gather index is built per call, not kept: its size follows the input's, so a
        // model file declaring a huge image with tiny weights costs nothing until it is used.
        let out = match self.kernel {
            1 => xs
                .reshape((p * b, c))?
                .matmul(&self.weight.reshape((o, c))?.t()?)?,
            _ => {
                let index = gather_index(self.grid, self.kernel, xs.device())?;
                // Neighbours outside the image read an appended zero pixel. Rows of `cols` are
                // (pixel, image) pairs; columns are (kernel offset, channel).
                let padded = Tensor::cat(&[xs, &xs.narrow(0, 0, 1)?.zeros_like()?], 0)?;
                let cols = padded
                    .index_select(&index, 0)?
                    .reshape((p, k2, b, c))?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((p * b, k2 * c))?;
                // (k²·C, O), rows in the same (offset, channel) order.
                let w = self
                    .weight
                    .reshape((o, c, k2))?
                    .permute((2, 1, 0))?
                    .contiguous()?
                    .reshape((k2 * c, o))?;
                cols.matmul(&w)?
            }
        };
        Ok(out.broadcast_add(&self.bias)?.reshape((p, b, o))?)
    }
}

/// For each output pixel `(y, x)` (row-major) and kernel offset `(dy, dx)` (row-major), the
/// index of input pixel `(y + dy − k/2, x + dx − k/2)`, or `H·W` (the appended zero) outside
/// the image.
fn gather_index(grid: Grid, k: usize, device: &candle::Device) -> Result<Tensor> {
    let (h, w) = (grid.height as isize, grid.width as isize);
    let p = (k / 2) as isize;
    let mut index = Vec::with_capacity(k * k * grid.pixels());
    for y in 0..h {
        for x in 0..w {
            for dy in 0..k as isize {
                for dx in 0..k as isize {
                    let (sy, sx) = (y + dy - p, x + dx - p);
                    let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                    index.push(if inside { sy * w + sx } else { h * w } as u32);
                }
            }
        }
    }
    let n = index.len();
    Ok(Tensor::from_vec(index, n, device)?)
}

/// 2×2 average pooling, `(H·W, B, C)` → `(H/2·W/2, B, C)`.
pub fn avg_pool(xs: &Tensor, grid: Grid) -> Result<Tensor> {
    let (_, b, c) = xs.dims3()?;
    let half = grid.halved();
    let x = xs.reshape((half.height, 2, half.width, 2, b * c))?;
    Ok((x.sum_keepdim(3)?.sum_keepdim(1)? * 0.25)?.reshape((half.pixels(), b, c))?)
}

/// Nearest-neighbour 2× upsampling, `(H·W, B, C)` → `(2H·2W, B, C)`.
pub fn upsample(xs: &Tensor, grid: Grid) -> Result<Tensor> {
    let (h2, w2) = (2 * grid.height, 2 * grid.width);
    let index: Vec<u32> = (0..h2 * w2)
        .map(|i| ((i / w2 / 2) * grid.width + (i % w2) / 2) as u32)
        .collect();
    let index = Tensor::from_vec(index, h2 * w2, xs.device())?;
    Ok(xs.index_select(&index, 0)?)
}

/// GroupNorm on pixel-major activations: statistics per (image, group) over its pixels and
/// channels, ε = 1e-6, then a per-channel affine.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    /// With learned `weight` (init 1) and `bias` (init 0) when `vb` is given, else the identity
    /// affine.
    pub fn new(
        groups: usize,
        channels: usize,
        vb: Option<VarBuilder>,
        device: &candle::Device,
        dtype: DType,
    ) -> Result<Self> {
        let (weight, bias) = match vb {
            Some(vb) => (
                vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?,
                vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            ),
            None => (
                Tensor::ones(channels, dtype, device)?,
                Tensor::zeros(channels, dtype, device)?,
            ),
        };
        Ok(Self {
            weight,
            bias,
            groups,
        })
    }

    /// The groups and affine in host memory.
    pub fn parts(&self) -> Result<NormParts> {
        Ok(NormParts {
            groups: self.groups,
            weight: host(&self.weight)?,
            bias: host(&self.bias)?,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (p, b, c) = xs.dims3()?;
        let x = xs.reshape((p, b, self.groups, c / self.groups))?;
        let mean = x.mean_keepdim(3)?.mean_keepdim(0)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(3)?.mean_keepdim(0)?;
        let normed = centred
            .broadcast_div(&(var + GROUP_NORM_EPS)?.sqrt()?)?
            .reshape((p, b, c))?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

/// A 3×3 (padding 1) or 1×1 convolution with bias at resolution `grid`.
pub fn conv(in_c: usize, out_c: usize, kernel: usize, grid: Grid, vb: VarBuilder) -> Result<Conv> {
    Conv::new(in_c, out_c, kernel, grid, vb)
}

pub fn silu(xs: &Tensor) -> Result<Tensor> {
    Ok(xs.silu()?)
}

/// GroupNorm, either plain (learned affine) or modulated: no affine of its own, then
/// `(1 + γ(z)) ⊙ GN(h) + β(z)` with `[γ, β] = Linear(zemb)` (γ = β = 0 would keep GN(h)).
#[derive(Clone, Debug)]
enum Norm {
    Plain(GroupNorm),
    Adaptive { norm: GroupNorm, style: Linear },
}

impl Norm {
    pub fn new(
        groups: usize,
        channels: usize,
        modulation: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (dev, dtype) = (vb.device().clone(), vb.dtype());
        Ok(match modulation {
            None => Norm::Plain(GroupNorm::new(groups, channels, Some(vb), &dev, dtype)?),
            Some(zdim) => Norm::Adaptive {
                norm: GroupNorm::new(groups, channels, None, &dev, dtype)?,
                style: linear(zdim, 2 * channels, vb.pp("style"))?,
            },
        })
    }

    /// `h`: `(H·W, B, C)`; `zemb`: `(B, zdim)` for the adaptive norm.
    fn forward(&self, h: &Tensor, zemb: Option<&Tensor>) -> Result<Tensor> {
        match (self, zemb) {
            (Norm::Plain(norm), _) => norm.forward(h),
            (Norm::Adaptive { norm, style }, Some(zemb)) => {
                let c = h.dim(2)?;
                let s = style.forward(zemb)?;
                let gamma = (s.narrow(1, 0, c)? + 1.0)?.unsqueeze(0)?;
                let beta = s.narrow(1, c, c)?.unsqueeze(0)?;
                Ok(norm
                    .forward(h)?
                    .broadcast_mul(&gamma)?
                    .broadcast_add(&beta)?)
            }
            (Norm::Adaptive { .. }, None) => Err(Error::InvalidArgument(
                "an adaptive GroupNorm needs the latent embedding".into(),
            )),
        }
    }
}

/// A residual block conditioned on the level embedding (and, for the generator, on the latent).
#[derive(Clone, Debug)]
pub struct ResBlock {
    norm1: Norm,
    conv1: Conv,
    level_bias: Linear,
    norm2: Norm,
    conv2: Conv,
    skip: Option<Conv>,
}

impl ResBlock {
    /// `in_c → out_c` channels at resolution `grid`; `embed` is the level embedding's width;
    /// `modulation` the latent embedding's width for adaptive GroupNorm (`None`: plain).
    pub fn new(
        in_c: usize,
        out_c: usize,
        grid: Grid,
        groups: usize,
        embed: usize,
        modulation: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: Norm::new(groups, in_c, modulation, vb.pp("norm1"))?,
            conv1: conv(in_c, out_c, 3, grid, vb.pp("conv1"))?,
            level_bias: linear(embed, out_c, vb.pp("level_bias"))?,
            norm2: Norm::new(groups, out_c, modulation, vb.pp("norm2"))?,
            conv2: conv(out_c, out_c, 3, grid, vb.pp("conv2"))?,
            skip: if in_c != out_c {
                Some(conv(in_c, out_c, 1, grid, vb.pp("skip"))?)
            } else {
                None
            },
        })
    }

    /// The block at the level whose embedding is `temb` (`(1, embed)`), as plain arrays. Only
    /// plain (unmodulated) blocks, as in the energy network, have such a form.
    pub fn level_parts(&self, temb: &Tensor) -> Result<BlockParts> {
        let plain = |norm: &Norm| match norm {
            Norm::Plain(n) => n.parts(),
            Norm::Adaptive { .. } => Err(Error::InvalidArgument(
                "a latent-modulated block depends on the latent, not only on the level".into(),
            )),
        };
        let mut conv1 = self.conv1.parts()?;
        let level_bias = host(&self.level_bias.forward(&silu(temb)?)?)?;
        for (b, l) in conv1.bias.iter_mut().zip(level_bias) {
            *b += l;
        }
        Ok(BlockParts {
            norm1: plain(&self.norm1)?,
            conv1,
            norm2: plain(&self.norm2)?,
            conv2: self.conv2.parts()?,
            skip: self.skip.as_ref().map(Conv::parts).transpose()?,
        })
    }

    /// `h`: `(H·W, B, in_c)`; `temb`: `(B, embed)`; `zemb`: `(B, modulation)` when modulated.
    pub fn forward(&self, h: &Tensor, temb: &Tensor, zemb: Option<&Tensor>) -> Result<Tensor> {
        let mut x = silu(&self.norm1.forward(h, zemb)?)?;
        x = self.conv1.forward(&x)?;
        let bias = self.level_bias.forward(&silu(temb)?)?.unsqueeze(0)?;
        x = x.broadcast_add(&bias)?;
        x = silu(&self.norm2.forward(&x, zemb)?)?;
        x = self.conv2.forward(&x)?;
        let skip = match &self.skip {
            Some(s) => s.forward(h)?,
            None => h.clone(),
        };
        Ok(((skip + x)? * std::f64::consts::FRAC_1_SQRT_2)?)
    }
}

/// Blocks of one stage, in order.
pub fn stage_blocks(
    cfg: &ImageConfig,
    in_c: usize,
    out_c: usize,
    grid: Grid,
    modulation: Option<usize>,
    vb: VarBuilder,
) -> Result<Vec<ResBlock>> {
    (0..cfg.blocks_per_stage)
        .map(|b| {
            let c = if b == 0 { in_c } else { out_c };
            ResBlock::new(
                c,
                out_c,
                grid,
                cfg.groups,
                cfg.embed_dim(),
                modulation,
                vb.pp(b),
            )
        })
        .collect()
}

/// The blocks of every stage of a downsampling path (`{prefix}{i}.{block}`), from the first
/// stage's channels on.
pub fn down_stages(
    cfg: &ImageConfig,
    grids: &[Grid],
    modulation: Option<usize>,
    vb: &VarBuilder,
    prefix: &str,
) -> Result<Vec<Vec<ResBlock>>> {
    let mut prev = cfg.stage_channels(0);
    let mut stages = vec![];
    for (i, &grid) in grids.iter().enumerate() {
        let c = cfg.stage_channels(i);
        let vb = vb.pp(format!("{prefix}{i}"));
        stages.push(stage_blocks(cfg, prev, c, grid, modulation, vb)?);
        prev = c;
    }
    Ok(stages)
}

/// The image's resolution at each stage.
pub fn stage_grids(cfg: &ImageConfig) -> Vec<Grid> {
    let mut grid = Grid {
        height: cfg.height,
        width: cfg.width,
    };
    let mut out = vec![];
    for i in 0..cfg.channel_mult.len() {
        if i > 0 {
            grid = grid.halved();
        }
        out.push(grid);
    }
    out
}

/// A downsampling residual network with a pooled, linear scalar head:
/// conv3×3 → stages of residual blocks (2×2 average pooling between stages) → GN → SiLU →
/// spatial mean → Linear → `(B, out_features)`. Also the encoder's trunk, with `2C` input
/// channels.
#[derive(Clone, Debug)]
pub struct DownsamplingNet {
    level: LevelMlp,
    input: Conv,
    stages: Vec<Vec<ResBlock>>,
    grids: Vec<Grid>,
    out_norm: GroupNorm,
    head: Linear,
}

impl DownsamplingNet {
    pub fn new(
        cfg: &ImageConfig,
        sinusoid: usize,
        num_levels: usize,
        in_channels: usize,
        out_features: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let grids = stage_grids(cfg);
        let level = LevelMlp::new(num_levels, sinusoid, cfg.embed_dim(), vb.pp("level"))?;
        let input = conv(
            in_channels,
            cfg.stage_channels(0),
            3,
            grids[0],
            vb.pp("input"),
        )?;
        let stages = down_stages(cfg, &grids, None, &vb, "stage")?;
        let prev = cfg.stage_channels(grids.len() - 1);
        let (dev, dtype) = (vb.device().clone(), vb.dtype());
        let out_norm = GroupNorm::new(cfg.groups, prev, Some(vb.pp("out_norm")), &dev, dtype)?;
        let head = linear(prev, out_features, vb.pp("head"))?;
        Ok(Self {
            level,
            input,
            stages,
            grids,
            out_norm,
            head,
        })
    }

    /// The network at diffusion level `level` as plain arrays (weights copied to host memory).
    pub fn level_parts(&self, level: usize) -> Result<DownsamplingParts> {
        let device = self.head.weight().device();
        let temb = self.level.forward(&level_tensor(level, 1, device)?)?;
        let stages = self
            .stages
            .iter()
            .map(|blocks| blocks.iter().map(|b| b.level_parts(&temb)).collect())
            .collect::<Result<Vec<Vec<BlockParts>>>>()?;
        let out_features = self.head.weight().dim(0)?;
        Ok(DownsamplingParts {
            input: self.input.parts()?,
            stages,
            out_norm: self.out_norm.parts()?,
            head_weight: host(self.head.weight())?,
            head_bias: match self.head.bias() {
                Some(b) => host(b)?,
                None => vec![0.0; out_features],
            },
        })
    }

    /// `pixels`: `(H·W, B, in_channels)` (see [`rows_to_pixels`]); `levels`: `(B,)` u32 →
    /// `(B, out_features)`.
    pub fn forward(&self, pixels: &Tensor, levels: &Tensor) -> Result<Tensor> {
        let temb = self.level.forward(levels)?;
        let mut h = self.input.forward(pixels)?;
        for (i, blocks) in self.stages.iter().enumerate() {
            if i > 0 {
                h = avg_pool(&h, self.grids[i - 1])?;
            }
            for block in blocks {
                h = block.forward(&h, &temb, None)?;
            }
        }
        h = silu(&self.out_norm.forward(&h)?)?;
        Ok(self.head.forward(&h.mean(0)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{DType, Device};
    use candle_nn::VarMap;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::test_support::max_abs_diff(a, b)
    }

    /// `(B, C, H, W)` → pixel-major and back.
    fn to_pixels(x: &Tensor) -> Tensor {
        let (_, c, h, w) = x.dims4().unwrap();
        rows_to_pixels(
            &x.flatten_from(1).unwrap(),
            c,
            Grid {
                height: h,
                width: w,
            },
        )
        .unwrap()
    }

    fn to_nchw(p: &Tensor, h: usize, w: usize) -> Tensor {
        let (_, b, c) = p.dims3().unwrap();
        pixels_to_rows(p).unwrap().reshape((b, c, h, w)).unwrap()
    }

    #[test]
    fn pixel_major_ops_match_candle_on_nchw() {
        let dev = Device::Cpu;
        let grid = Grid {
            height: 6,
            width: 4,
        };
        let x = Tensor::randn(0f32, 1., (2, 3, 6, 4), &dev).unwrap();
        for k in [1usize, 3] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let conv = Conv::new(3, 5, k, grid, vb.pp("c")).unwrap();
            let ours = to_nchw(&conv.forward(&to_pixels(&x)).unwrap(), 6, 4);
            let data = vm.data().lock().unwrap();
            let (w, b) = (data["c.weight"].as_tensor(), data["c.bias"].as_tensor());
            let theirs = x
                .conv2d(w, k / 2, 1, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
                .unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-5, "conv {k}x{k}");
        }
        let pooled = to_nchw(&avg_pool(&to_pixels(&x), grid).unwrap(), 3, 2);
        assert!(max_diff(&pooled, &x.avg_pool2d(2).unwrap()) < 1e-6);
        let small = Grid {
            height: 3,
            width: 2,
        };
        let coarse = x.avg_pool2d(2).unwrap();
        let up = to_nchw(&upsample(&to_pixels(&coarse), small).unwrap(), 6, 4);
        assert!(max_diff(&up, &coarse.upsample_nearest2d(6, 4).unwrap()) < 1e-6);
        let gn = GroupNorm::new(3, 3, None, &dev, DType::F32).unwrap();
        let ours = to_nchw(&gn.forward(&to_pixels(&x)).unwrap(), 6, 4);
        let reference = candle_nn::GroupNorm::new(
            Tensor::ones(3, DType::F32, &dev).unwrap(),
            Tensor::zeros(3, DType::F32, &dev).unwrap(),
            3,
            3,
            GROUP_NORM_EPS,
        )
        .unwrap();
        assert!(max_diff(&ours, &reference.forward(&x).unwrap()) < 1e-5);
    }
}
