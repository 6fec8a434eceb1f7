//! The vector-data networks of SPEC §2.2, generalised to any input dimension `d`.
//!
//! Every network is a *time-conditioned MLP*: an x-branch MLP on the input, a t-branch MLP on the
//! sinusoidal embedding of the integer level `k`, and a head MLP on their concatenation.
//! Activations are scalar PReLUs initialised at 0.25; linear layers use PyTorch's default
//! initialisation (uniform in ±1/√fan_in) so the reference hyper-parameters carry over.
//!
//! * [`EnergyNet`] `f_θ(x, k)`: a *log-density* (higher = more in-distribution; SPEC pitfall 1).
//!   The library's energy is `E(x) = −f_θ(x, 0)`. Optionally `f = g(clip(x), k) − ½‖x‖²/s²`: a
//!   Gaussian base measure times a correction whose input is soft-clipped, so the log-density
//!   falls off far from the data whatever the MLP does there.
//! * [`Generator`] `G_φ([x_{k+1}, z], k)`: predicts clean data; BatchNorm on hidden layers.
//!
//! The encoder `q_ψ(z | x_k, x_{k+1}, k)` is only needed for training and lives in
//! `ddaebm-train`; it is built from the same [`TimeConditionedMlp`].

use candle::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::base_measure::MixtureBase;
use crate::conv_network::{ConvEnergyBody, ConvGenerator, ImageConfig};
use crate::error::{Error, Result};
use crate::layer_ops;

/// Largest input dimension or layer width a model may declare. Keeps a hostile model file from
/// asking for absurd allocations before its tensors are checked.
pub const MAX_WIDTH: usize = 1 << 20;

/// Most components a mixture base measure may have.
pub const MAX_BASE_COMPONENTS: usize = 1024;

/// Architecture of the three networks; stored in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Number of input features `d`.
    pub input_dim: usize,
    /// Size of the generator's latent `z` (`nz`).
    pub latent_dim: usize,
    /// Width of the sinusoidal level embedding (even, ≥ 4).
    pub time_embed_dim: usize,
    /// Widths of the x- and t-branch MLPs; their last entry is the width each branch emits.
    pub branch_widths: Vec<usize>,
    /// Hidden widths of the head MLP (its output layer is added on top).
    pub head_widths: Vec<usize>,
    /// Width of the encoder head's output, before the μ / log-variance layers.
    pub encoder_features: usize,
    /// When positive, adds the log-density of N(0, s²I) in normalised units, `−½‖x‖²/s²` (no
    /// constant), to the energy network's output, with `s = base_std`. Absent in older files:
    /// `0` (no base measure).
    #[serde(default)]
    pub base_std: f32,
    /// When positive, the energy network's MLP sees `x / √(1 + (x/c)²)` per feature instead of
    /// `x`: the identity near 0, bounded by ±c. Absent in older files: `0` (off).
    #[serde(default)]
    pub input_soft_clip: f32,
    /// Convolutional networks for images (`input_dim = C·H·W`); absent: the MLPs, and the MLP
    /// sizes above (`branch_widths`, `head_widths`, `encoder_features`) are the ones used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageConfig>,
    /// When positive, the energy's base measure is a Gaussian mixture with this many components
    /// per level ([`crate::base_measure`]) instead of `N(0, s²I)`; `base_std` must then be 0.
    /// Absent in older files: `0`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub base_components: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl NetworkConfig {
    /// The reference toy networks (SPEC §2.2) for `input_dim` features.
    pub fn toy(input_dim: usize) -> Self {
        Self {
            input_dim,
            latent_dim: 2,
            time_embed_dim: 16,
            branch_widths: vec![16, 32],
            head_widths: vec![300, 300],
            encoder_features: 16,
            base_std: 0.0,
            input_soft_clip: 0.0,
            image: None,
            base_components: 0,
        }
    }

    /// Checks every size is in range; called before anything is allocated from a config.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.input_dim,
            self.latent_dim,
            self.time_embed_dim,
            self.encoder_features,
        ];
        let widths = self.branch_widths.iter().chain(&self.head_widths);
        if sizes.iter().chain(widths).any(|&w| w == 0 || w > MAX_WIDTH) {
            return Err(Error::InvalidArgument(format!(
                "network sizes must be in 1..={MAX_WIDTH}: {self:?}"
            )));
        }
        if self.branch_widths.is_empty() || self.branch_widths.len() > 16 {
            return Err(Error::InvalidArgument(
                "branch_widths needs 1 to 16 entries".into(),
            ));
        }
        if self.head_widths.len() > 16 {
            return Err(Error::InvalidArgument(
                "head_widths holds at most 16 entries".into(),
            ));
        }
        for (name, v) in [
            ("input_soft_clip", self.input_soft_clip),
            ("base_std", self.base_std),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be finite and >= 0, got {v}"
                )));
            }
        }
        if self.time_embed_dim < 4 || self.time_embed_dim % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "time_embed_dim must be even and >= 4, got {}",
                self.time_embed_dim
            )));
        }
        if let Some(image) = &self.image {
            image.validate(self.input_dim)?;
        }
        if self.base_components > MAX_BASE_COMPONENTS {
            return Err(Error::InvalidArgument(format!(
                "base_components must be at most {MAX_BASE_COMPONENTS}, got {}",
                self.base_components
            )));
        }
        if self.base_components > 0 && (self.base_std > 0.0 || self.image.is_some()) {
            return Err(Error::InvalidArgument(
                "a mixture base measure (base_components) excludes base_std and image networks"
                    .into(),
            ));
        }
        Ok(())
    }

    fn branch_out(&self) -> usize {
        *self.branch_widths.last().expect("validated non-empty")
    }
}

/// Sinusoidal embedding of the integer levels `0..num_levels` (SPEC §2.1): row `k` is
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

/// A PReLU with one learnable slope `a`, computed as `x ≥ 0 ? x : a·x` (= `max(x, a·x)` for
/// `a ∈ [0, 1]`; the slope is clamped to that range) in three tensor operations instead of
/// candle-nn's five, which matters because these small networks are bound by elementwise
/// work. The slope is stored as `weight`, shape (1,), initialised to 0.25 like PyTorch's.
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
    /// The forward pass and what its input gradient needs: the input and the slope.
    fn forward_saving(&self, xs: &Tensor) -> candle::Result<(Tensor, PreluSaved)> {
        let slope = self.weight.clamp(0.0, 1.0)?.reshape(())?;
        // max(x, a·x) written as a selection (one pass on the CPU, `layer_ops`): the same
        // values, and a backward pass of one selection and one masked sum where candle's
        // `maximum` builds two masks and divides by their sum.
        let ys = layer_ops::prelu(xs, &slope)?;
        Ok((
            ys,
            PreluSaved {
                pre: xs.clone(),
                slope,
            },
        ))
    }
}

impl Module for Prelu {
    fn forward(&self, xs: &Tensor) -> candle::Result<Tensor> {
        Ok(self.forward_saving(xs)?.0)
    }
}

/// What a PReLU's input gradient needs from its forward pass: its input and slope.
#[derive(Clone, Debug)]
struct PreluSaved {
    pre: Tensor,
    slope: Tensor,
}

impl PreluSaved {
    /// `∂L/∂x` from `∂L/∂y`: the gradient where `x ≥ 0`, `a` times it elsewhere.
    fn input_grad(&self, grad: &Tensor) -> candle::Result<Tensor> {
        layer_ops::prelu_grad(&self.pre, grad, &self.slope)
    }
}

/// A linear layer's forward pass on rows (B, in): candle-nn's matrix product, then the bias
/// added in one pass on the CPU (`layer_ops::bias_add`, whose backward pass sums the bias
/// gradient as a matrix product).
fn linear_forward(layer: &Linear, xs: &Tensor) -> candle::Result<Tensor> {
    if xs.rank() != 2 {
        return layer.forward(xs);
    }
    let ys = xs.matmul(&layer.weight().t()?)?;
    match layer.bias() {
        Some(bias) => layer_ops::bias_add(&ys, bias),
        None => Ok(ys),
    }
}

/// A chain of linear layers with (optional BatchNorm, then) PReLU between them and nothing after
/// the last one.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    norms: Vec<BatchNorm>,
    acts: Vec<Prelu>,
}

impl Mlp {
    /// Builds `MLP(in_dim, widths)`; tensors are named `linear{i}`, `norm{i}`, `act{i}`.
    pub fn new(in_dim: usize, widths: &[usize], batch_norm: bool, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::with_capacity(widths.len());
        let (mut norms, mut acts) = (vec![], vec![]);
        let mut prev = in_dim;
        for (i, &w) in widths.iter().enumerate() {
            layers.push(linear(prev, w, vb.pp(format!("linear{i}")))?);
            if i + 1 < widths.len() {
                if batch_norm {
                    let cfg = BatchNormConfig {
                        eps: 1e-5,
                        remove_mean: true,
                        affine: true,
                        momentum: 0.1,
                    };
                    norms.push(candle_nn::batch_norm(w, cfg, vb.pp(format!("norm{i}")))?);
                }
                acts.push(Prelu::new(vb.pp(format!("act{i}")))?);
            }
            prev = w;
        }
        Ok(Self {
            layers,
            norms,
            acts,
        })
    }

    /// Each linear layer with the PReLU after it (none after the last), for inference code
    /// outside candle. Fails for an MLP with BatchNorm (its statistics are not folded).
    pub fn layers(&self) -> Result<Vec<(&Linear, Option<&Prelu>)>> {
        if !self.norms.is_empty() {
            return Err(Error::InvalidArgument(
                "an MLP with BatchNorm has no plain layer list".into(),
            ));
        }
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l, self.acts.get(i)))
            .collect())
    }
}

impl Mlp {
    /// The forward pass of an MLP without BatchNorm, keeping each PReLU's input and slope for
    /// [`Mlp::input_grad`].
    fn forward_saving(&self, xs: &Tensor) -> Result<(Tensor, Vec<PreluSaved>)> {
        if !self.norms.is_empty() {
            return Err(Error::InvalidArgument(
                "the explicit input gradient is for MLPs without BatchNorm".into(),
            ));
        }
        let mut h = xs.clone();
        let mut saved = Vec::with_capacity(self.acts.len());
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear_forward(layer, &h)?;
            if let Some(act) = self.acts.get(i) {
                let (out, s) = act.forward_saving(&h)?;
                h = out;
                saved.push(s);
            }
        }
        Ok((h, saved))
    }

    /// `∂L/∂x` for the first `inputs` input columns, from `∂L/∂y` (B, out) and the forward
    /// pass's [`PreluSaved`]: the chain rule written out (a matrix product per layer, a
    /// selection per PReLU), so the result is a differentiable function of the weights.
    fn input_grad(&self, grad_out: &Tensor, saved: &[PreluSaved], inputs: usize) -> Result<Tensor> {
        let mut grad = grad_out.clone();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            if let Some(s) = saved.get(i) {
                grad = s.input_grad(&grad)?;
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
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle::Result<Tensor> {
        let mut h = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear_forward(layer, &h)?;
            if let Some(act) = self.acts.get(i) {
                if let Some(norm) = self.norms.get(i) {
                    h = norm.forward_t(&h, train)?;
                }
                h = act.forward(&h)?;
            }
        }
        Ok(h)
    }
}

/// `head([x_branch(x), t_branch(emb(k))])`: the trunk shared by all three networks.
#[derive(Clone, Debug)]
pub struct TimeConditionedMlp {
    x_branch: Mlp,
    t_branch: Mlp,
    head: Mlp,
    embedding: Tensor,
}

impl TimeConditionedMlp {
    /// `in_dim` inputs, `out_dim` outputs, BatchNorm on the hidden layers of the x-branch and the
    /// head when `batch_norm` (never on the t-branch).
    pub fn new(
        cfg: &NetworkConfig,
        num_levels: usize,
        in_dim: usize,
        out_dim: usize,
        batch_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        let x_branch = Mlp::new(in_dim, &cfg.branch_widths, batch_norm, vb.pp("x_branch"))?;
        let t_branch = Mlp::new(
            cfg.time_embed_dim,
            &cfg.branch_widths,
            false,
            vb.pp("t_branch"),
        )?;
        let head_widths: Vec<usize> = cfg.head_widths.iter().copied().chain([out_dim]).collect();
        let head = Mlp::new(
            2 * cfg.branch_out(),
            &head_widths,
            batch_norm,
            vb.pp("head"),
        )?;
        let embedding = timestep_embedding(num_levels, cfg.time_embed_dim, vb.device())?
            .to_dtype(vb.dtype())?;
        Ok(Self {
            x_branch,
            t_branch,
            head,
            embedding,
        })
    }

    pub fn x_branch(&self) -> &Mlp {
        &self.x_branch
    }

    pub fn head(&self) -> &Mlp {
        &self.head
    }

    /// The t-branch's output for `level`, shape (1, branch width).
    pub fn level_features(&self, level: usize) -> Result<Tensor> {
        let emb = self.embedding.narrow(0, level, 1)?;
        Ok(self.t_branch.forward_t(&emb, false)?)
    }

    /// `xs`: (B, in_dim) f32; `levels`: (B,) u32 level indices.
    ///
    /// The t-branch (no BatchNorm, so each row's output depends on its level only) runs once on
    /// the T rows of the embedding table and its outputs are gathered per row: T rows through
    /// its layers instead of B, forward and backward.
    pub fn forward_t(&self, xs: &Tensor, levels: &Tensor, train: bool) -> Result<Tensor> {
        let hx = self.x_branch.forward_t(xs, train)?;
        let ht = self
            .t_branch
            .forward_t(&self.embedding, train)?
            .index_select(levels, 0)?;
        let h = Tensor::cat(&[hx, ht], 1)?;
        Ok(self.head.forward_t(&h, train)?)
    }
}

impl TimeConditionedMlp {
    /// [`TimeConditionedMlp::forward_t`] (inference mode) of a network with one output and no
    /// BatchNorm, with the output's gradient with respect to `xs`: shapes (B, 1) and (B, in_dim).
    /// The gradient is built from tensor operations on the weights, so it can be differentiated
    /// with respect to them (R1), and it costs a matrix product per layer instead of a full
    /// backward pass, which would also compute every weight's gradient.
    pub fn forward_with_input_grad(
        &self,
        xs: &Tensor,
        levels: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (hx, saved_x) = self.x_branch.forward_saving(xs)?;
        let ht = self
            .t_branch
            .forward_t(&self.embedding, false)?
            .index_select(levels, 0)?;
        let x_width = hx.dim(1)?;
        let h = Tensor::cat(&[hx, ht], 1)?;
        let (out, saved_head) = self.head.forward_saving(&h)?;
        if out.dim(1)? != 1 {
            return Err(Error::InvalidArgument(
                "the input gradient is for a network with one output".into(),
            ));
        }
        let ones = Tensor::ones(out.shape(), out.dtype(), out.device())?;
        let grad_hx = self.head.input_grad(&ones, &saved_head, x_width)?;
        let grad = self.x_branch.input_grad(&grad_hx, &saved_x, xs.dim(1)?)?;
        Ok((out, grad))
    }
}

/// The learned part `g` of the energy network: the time-conditioned MLP, or the convolutional
/// network for images.
#[derive(Clone, Debug)]
enum EnergyBody {
    Mlp(TimeConditionedMlp),
    Conv(ConvEnergyBody),
}

/// The energy network `f_θ(x, k)`: an unnormalised log-density of level `k`.
///
/// `f(x, k) = g(u, k) + b(x)` where `g` is the time-conditioned MLP (the convolutional network
/// for images), `u` is `x` or its soft clip (`input_soft_clip`), and `b` is `−½‖x‖²/s²`
/// (`base_std` = s), the log-density of a Gaussian mixture (`base_components`), or 0. With both on, `g` is bounded along every ray once the clip saturates,
/// so `f → −∞` far from the data. Without them an MLP log-density extrapolates linearly and can
/// *rise* away from the data (measured on tabular data; see `bench/ood/README.md`).
#[derive(Clone, Debug)]
pub struct EnergyNet {
    body: EnergyBody,
    base_std: f32,
    soft_clip: f32,
    mixture: Option<MixtureBase>,
}

impl EnergyNet {
    pub fn new(cfg: &NetworkConfig, num_levels: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mixture = match cfg.base_components {
            0 => None,
            k => Some(MixtureBase::new(
                num_levels,
                k,
                cfg.input_dim,
                vb.pp("base"),
            )?),
        };
        let body = match &cfg.image {
            None => EnergyBody::Mlp(TimeConditionedMlp::new(
                cfg,
                num_levels,
                cfg.input_dim,
                1,
                false,
                vb,
            )?),
            Some(image) => EnergyBody::Conv(ConvEnergyBody::new(
                image,
                cfg.time_embed_dim,
                num_levels,
                vb,
            )?),
        };
        Ok(Self {
            body,
            base_std: cfg.base_std,
            soft_clip: cfg.input_soft_clip,
            mixture,
        })
    }

    /// The MLP of a vector-data model (`None` for the convolutional network of an image model).
    pub fn trunk(&self) -> Option<&TimeConditionedMlp> {
        match &self.body {
            EnergyBody::Mlp(trunk) => Some(trunk),
            EnergyBody::Conv(_) => None,
        }
    }

    /// `s` of the Gaussian base measure (0: none).
    pub fn base_std(&self) -> f32 {
        self.base_std
    }

    /// The mixture base measure, when the model has one.
    pub fn mixture(&self) -> Option<&MixtureBase> {
        self.mixture.as_ref()
    }

    /// `c` of the input soft clip (0: off).
    pub fn soft_clip_width(&self) -> f32 {
        self.soft_clip
    }

    /// `f_θ(x, k)`, shape (B,). Higher means more in-distribution.
    pub fn log_density(&self, xs: &Tensor, levels: &Tensor) -> Result<Tensor> {
        Ok(self.log_density_and_ratio(xs, levels)?.0)
    }

    /// `g(u, k)` alone, shape (B,): the log-density relative to the base measure.
    pub fn log_ratio(&self, xs: &Tensor, levels: &Tensor) -> Result<Tensor> {
        let u = if self.soft_clip > 0.0 {
            if xs.track_op() {
                // A gradient will flow back to `xs` (training): the plain formula, so the
                // autograd graph, and with it the trainer's floating-point results, stay as
                // they were. Training inputs are normalised data, far inside the clamp.
                soft_clip_formula(xs, self.soft_clip)?
            } else {
                soft_clip(xs, self.soft_clip)?
            }
        } else {
            xs.clone()
        };
        let g = match &self.body {
            EnergyBody::Mlp(trunk) => trunk.forward_t(&u, levels, false)?,
            EnergyBody::Conv(net) => net.forward(&u, levels)?,
        };
        Ok(g.squeeze(1)?)
    }

    /// `(f, g)` from one pass through the MLP: the log-density and its part relative to the base
    /// measure (equal without a base measure).
    pub fn log_density_and_ratio(&self, xs: &Tensor, levels: &Tensor) -> Result<(Tensor, Tensor)> {
        let g = self.log_ratio(xs, levels)?;
        if let Some(mixture) = &self.mixture {
            return Ok(((&g + mixture.log_density(xs, levels)?)?, g));
        }
        if self.base_std <= 0.0 {
            return Ok((g.clone(), g));
        }
        let scale = 0.5 / f64::from(self.base_std).powi(2);
        Ok(((&g - (xs.sqr()?.sum(1)? * scale)?)?, g))
    }
}

impl EnergyNet {
    /// `(f, g, ∇ₓf)`: [`EnergyNet::log_density_and_ratio`] and the gradient of `f` with respect
    /// to the rows `xs` (B, d), as a tensor that can itself be differentiated with respect to
    /// the network's weights (the R1 penalty and score matching of training).
    ///
    /// For the MLP the chain rule is written out ([`TimeConditionedMlp::forward_with_input_grad`];
    /// the base measure's gradient is closed form). The convolutional network goes through
    /// candle's backward pass, whose result keeps its graph only where candle is told to keep
    /// it (`CANDLE_GRAD_DO_NOT_DETACH=1`, set before the thread's first backward pass).
    pub fn log_density_ratio_and_input_grad(
        &self,
        xs: &Tensor,
        levels: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let xs = xs.detach();
        let trunk = match &self.body {
            EnergyBody::Mlp(trunk) => trunk,
            EnergyBody::Conv(_) => {
                let var = candle::Var::from_tensor(&xs)?;
                let (f, g) = self.log_density_and_ratio(var.as_tensor(), levels)?;
                let grad = f.sum_all()?.backward()?.remove(var.as_tensor());
                let grad = grad.ok_or_else(|| {
                    Error::InvalidArgument("the energy has no gradient with respect to x".into())
                })?;
                return Ok((f, g, grad));
            }
        };
        let (u, clip_slope) = if self.soft_clip > 0.0 {
            // u = x / √s with s = 1 + (x/c)², du/dx = s^(−3/2); on the clamped input, whose
            // square stays finite (beyond the clamp the slope is 0 to f32 precision anyway).
            let c2 = f64::from(self.soft_clip).powi(2);
            let clamped = xs.clamp(
                -soft_clip_bound(self.soft_clip),
                soft_clip_bound(self.soft_clip),
            )?;
            let s = ((clamped.sqr()? / c2)? + 1.0)?;
            let root = s.sqrt()?;
            let u = clamped.div(&root)?;
            (u, Some((s * root)?.recip()?))
        } else {
            (xs.clone(), None)
        };
        let (g, grad_g) = trunk.forward_with_input_grad(&u, levels)?;
        let g = g.squeeze(1)?;
        let grad_g = match clip_slope {
            Some(slope) => (grad_g * slope)?,
            None => grad_g,
        };
        if let Some(mixture) = &self.mixture {
            let (log_base, grad_base) = mixture.log_density_and_grad(&xs, levels)?;
            return Ok(((&g + log_base)?, g, (grad_g + grad_base)?));
        }
        if self.base_std <= 0.0 {
            return Ok((g.clone(), g, grad_g));
        }
        let precision = 1.0 / f64::from(self.base_std).powi(2);
        let f = (&g - (xs.sqr()?.sum(1)? * (0.5 * precision))?)?;
        Ok((f, g, (grad_g - (&xs * precision)?)?))
    }
}

/// Inputs beyond `±SOFT_CLIP_SATURATION · c` are moved onto that bound before the soft clip.
/// There `1 + (x/c)²` rounds to `(x/c)²` in f32 and the clip returns exactly `±c`; beyond
/// `2¹² · c` it is already within an ulp of `±c`, so moving the input changes nothing a float
/// can show, but keeps `x²` finite.
pub const SOFT_CLIP_SATURATION: f64 = (1u64 << 20) as f64;

/// Largest magnitude fed to the soft clip's formula whatever `c` is: its square, 1e36, is
/// finite in f32. Only a clip width above ~1e12 makes this bound the smaller one.
const SOFT_CLIP_MAX_INPUT: f64 = 1e18;

/// `x / √(1 + (x/c)²)` per element: the identity near 0, bounded by ±c, and finite for every
/// input including ±∞.
///
/// Written plainly, `x²` overflows to ∞ for `|x|` above ~1.8e19 and the quotient becomes `0`
/// (NaN for `x = ±∞`) where it should be `±c`. The input is first clamped to
/// `±min(SOFT_CLIP_SATURATION · c, 1e18)`; the clamp is the identity, bit for bit, on every
/// value inside that range, so ordinary inputs get exactly the plain formula's result.
pub fn soft_clip(xs: &Tensor, c: f32) -> Result<Tensor> {
    let bound = soft_clip_bound(c);
    soft_clip_formula(&xs.clamp(-bound, bound)?, c)
}

/// The clamp [`soft_clip`] applies before its formula: `min(SOFT_CLIP_SATURATION · c, 1e18)`.
pub(crate) fn soft_clip_bound(c: f32) -> f64 {
    (SOFT_CLIP_SATURATION * f64::from(c)).min(SOFT_CLIP_MAX_INPUT)
}

/// `x / √(1 + (x/c)²)` as written, without the clamp of [`soft_clip`].
fn soft_clip_formula(xs: &Tensor, c: f32) -> Result<Tensor> {
    let c2 = f64::from(c).powi(2);
    Ok(xs.div(&((xs.sqr()? / c2)? + 1.0)?.sqrt()?)?)
}

/// The generator `G_φ([x_{k+1}, z], k)`: a clean-data estimate `x̂` from the noisier level.
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

/// A (B,) u32 tensor filled with `level`.
pub fn level_tensor(level: usize, batch: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(level as u32, batch, device)?.to_dtype(DType::U32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

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

    #[test]
    fn shapes_and_parameter_counts_follow_the_config() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let cfg = NetworkConfig::toy(5);
        let e = EnergyNet::new(&cfg, 4, vb.pp("energy")).unwrap();
        let g = Generator::new(&cfg, 4, vb.pp("generator")).unwrap();
        let x = Tensor::randn(0f32, 1., (7, 5), &dev).unwrap();
        let z = Tensor::randn(0f32, 1., (7, 2), &dev).unwrap();
        let k = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2], &dev).unwrap();
        assert_eq!(e.log_density(&x, &k).unwrap().dims(), &[7]);
        assert_eq!(g.forward_t(&x, &z, &k, true).unwrap().dims(), &[7, 5]);
        assert_eq!(g.forward_t(&x, &z, &k, false).unwrap().dims(), &[7, 5]);
        let data = vm.data().lock().unwrap();
        let count = |prefix: &str| -> usize {
            data.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, v)| v.elem_count())
                .sum()
        };
        // Energy: x-branch 5·16+16 + 16·32+32, t-branch 16·16+16 + 16·32+32,
        // head 64·300+300 + 300·300+300 + 300+1, plus one PReLU slope per hidden activation (4).
        let energy = (5 * 16 + 16 + 16 * 32 + 32)
            + (16 * 16 + 16 + 16 * 32 + 32)
            + (64 * 300 + 300 + 300 * 300 + 300 + 300 + 1)
            + 4;
        assert_eq!(count("energy."), energy);
        // Generator: input 5+2, output 5, BatchNorm (4 tensors of width w) on hidden layers.
        let gen = (7 * 16 + 16 + 16 * 32 + 32 + 4 * 16)
            + (16 * 16 + 16 + 16 * 32 + 32)
            + (64 * 300 + 300 + 4 * 300 + 300 * 300 + 300 + 4 * 300 + 300 * 5 + 5)
            + 4;
        assert_eq!(count("generator."), gen);
    }

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

    #[test]
    fn base_measure_makes_the_log_density_fall_off_far_from_the_data() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let mut cfg = NetworkConfig::toy(3);
        cfg.base_std = 1.0;
        cfg.input_soft_clip = 4.0;
        let e = EnergyNet::new(&cfg, 4, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        // Inflate every weight so the MLP alone would grow quickly with |x|.
        for v in vm.all_vars() {
            v.set(&(v.as_tensor() * 5.0).unwrap()).unwrap();
        }
        let dir = [0.6f32, -0.8, 0.3];
        let radii = [1f32, 10.0, 100.0, 1e3, 1e5];
        let rows: Vec<f32> = radii
            .iter()
            .flat_map(|r| dir.iter().map(move |d| d * r))
            .collect();
        let x = Tensor::from_vec(rows, (radii.len(), 3), &dev).unwrap();
        let k = level_tensor(0, radii.len(), &dev).unwrap();
        let f: Vec<f32> = e.log_density(&x, &k).unwrap().to_vec1().unwrap();
        let g: Vec<f32> = e.log_ratio(&x, &k).unwrap().to_vec1().unwrap();
        // f = g − ½‖x‖² exactly.
        for ((fi, gi), r) in f.iter().zip(&g).zip(radii) {
            let norm2: f32 = dir.iter().map(|d| (d * r).powi(2)).sum();
            assert!((fi - (gi - 0.5 * norm2)).abs() <= 1e-3 * norm2.max(1.0));
        }
        // The clipped input saturates, so g is bounded along the ray ...
        assert!((g[3] - g[4]).abs() < 1e-2 * g[3].abs().max(1.0), "{g:?}");
        // ... and f falls monotonically from radius 10 on.
        assert!(f[1] > f[2] && f[2] > f[3] && f[3] > f[4], "{f:?}");
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
            let (f, g, grad) = e.log_density_ratio_and_input_grad(&x, &levels).unwrap();
            let var = candle::Var::from_tensor(&x).unwrap();
            let (f_ref, g_ref) = e.log_density_and_ratio(var.as_tensor(), &levels).unwrap();
            let grad_ref = f_ref
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
                .remove(var.as_tensor())
                .unwrap();
            let max_diff = crate::test_support::max_abs_diff::<f64>;
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

    #[test]
    fn soft_clip_saturates_instead_of_overflowing() {
        let dev = Device::Cpu;
        let c = 4f32;
        let big = [1e13f32, 1e19, 1e20, 1e30, f32::MAX, f32::INFINITY];
        let xs: Vec<f32> = big.iter().flat_map(|&v| [v, -v]).collect();
        let x = Tensor::new(xs.as_slice(), &dev).unwrap();
        let u: Vec<f32> = soft_clip(&x, c).unwrap().to_vec1().unwrap();
        for (x, u) in xs.iter().zip(&u) {
            assert_eq!(*u, c.copysign(*x), "soft_clip({x})");
        }
        // The formula as written overflows from 1e20 on (x² > f32::MAX): 0 or NaN, not ±c.
        let plain: Vec<f32> = soft_clip_formula(&x, c).unwrap().to_vec1().unwrap();
        assert!(
            plain[4..].iter().all(|u| *u == 0.0 || u.is_nan()),
            "{plain:?}"
        );
        // Inside the clamp both agree bit for bit, up to the bound itself.
        let bound = (SOFT_CLIP_SATURATION * f64::from(c)) as f32;
        let ordinary: Vec<f32> = (-2000..=2000)
            .map(|i| i as f32 * 0.013)
            .chain([1e-40, -1e-40, 1e3, -1e5, 1e6, bound, -bound])
            .collect();
        let x = Tensor::new(ordinary.as_slice(), &dev).unwrap();
        let a: Vec<f32> = soft_clip(&x, c).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = soft_clip_formula(&x, c).unwrap().to_vec1().unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
        // A clip width so large that the fixed bound applies still gives a finite result.
        let u: Vec<f32> = soft_clip(&Tensor::new(&[f32::MAX], &dev).unwrap(), 1e20)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(u[0].is_finite() && u[0] > 0.0, "{u:?}");
    }

    #[test]
    fn older_configs_without_the_new_fields_still_parse() {
        let json = r#"{"input_dim":2,"latent_dim":2,"time_embed_dim":16,
            "branch_widths":[16,32],"head_widths":[8],"encoder_features":16}"#;
        let cfg: NetworkConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.base_std, 0.0);
        assert_eq!(cfg.input_soft_clip, 0.0);
        let mut bad = cfg.clone();
        bad.input_soft_clip = f32::NAN;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rejects_absurd_configs() {
        let mut cfg = NetworkConfig::toy(2);
        cfg.input_dim = 1_000_000_000_000;
        assert!(cfg.validate().is_err());
        let mut cfg = NetworkConfig::toy(2);
        cfg.time_embed_dim = 3;
        assert!(cfg.validate().is_err());
        let mut cfg = NetworkConfig::toy(2);
        cfg.branch_widths.clear();
        assert!(cfg.validate().is_err());
    }
}
