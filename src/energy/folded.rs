//! The energy network at level 0 folded into plain arrays: the form the fused CPU path
//! ([`crate::cpu::energy`]) runs, built in this one place from the network's own layers.
//!
//! At level 0 the t-branch's output is a constant row, so the head's first layer,
//! `[x-features, t-features] · Wᵀ + b`, becomes `x-features · W_xᵀ + (b + t-features · W_tᵀ)`:
//! the x-branch layers followed by the head's, with the t-branch folded into one bias.

use candle::{DType, Tensor};

use crate::architecture::ImageConfig;
use crate::energy::base::GaussianBase;
use crate::energy::{BaseMeasure, EnergyBody, EnergyNet};
use crate::error::{Error, Result};
use crate::nn::conv::DownsamplingParts;
use crate::nn::prelu::Prelu;

/// One linear layer and the PReLU after it, in host memory.
#[derive(Clone, Debug)]
pub struct DenseLayer {
    /// (in, out) row-major: the stored (out, in) weight transposed, so that a kernel reads it
    /// with unit stride along the output.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_dim: usize,
    pub out_dim: usize,
    /// PReLU slope after the layer (clamped to [0, 1]), if any.
    pub slope: Option<f32>,
}

/// The level-0 mixture base measure's parameters: `(log_weights (K), means (K, d), variances
/// (K, d))`, row-major.
pub type MixtureLevel = (Vec<f32>, Vec<f32>, Vec<f32>);

/// The level-0 mixture's log-density as one matrix product, for every consumer that evaluates
/// it outside candle (the fused CPU path, the ONNX export):
/// `log p(x) = logsumexp_j (c_j + Σ_i x_i² (−½/v_ji) + Σ_i x_i μ_ji / v_ji)` with
/// `c_j = log π_j − ½ Σ_i (ln 2π v_ji + μ_ji² / v_ji)`.
///
/// When every component is spherical (`v_ji = v_j` for all features, as the trainer fits them),
/// the quadratic term is `‖x‖² · (−½/v_j)` and the product shrinks to `x · (M V⁻¹)ᵀ`, (d × K)
/// instead of (2d × K): half the multiply-adds.
#[derive(Clone, Debug)]
pub struct MixtureProduct {
    /// Spherical: (d, K) row-major `μ/v`. Otherwise (2d, K): rows `0..d` hold `−½/v`, rows
    /// `d..2d` hold `μ/v`.
    pub weight: Vec<f32>,
    /// (K) `c_j`.
    pub constants: Vec<f32>,
    /// (K) `−½/v_j` when every component is spherical.
    pub spherical: Option<Vec<f32>>,
}

impl MixtureProduct {
    /// The product of a level's parameters ([`MixtureLevel`]) for rows of `d` features.
    pub fn new(mixture: &MixtureLevel, d: usize) -> Self {
        let (log_weights, means, variances) = mixture;
        let k = log_weights.len();
        let is_spherical = variances
            .chunks_exact(d.max(1))
            .all(|v| v.iter().all(|&x| x == v[0]));
        let rows = if is_spherical { d } else { 2 * d };
        let mut weight = vec![0f32; rows * k];
        let mut constants = Vec::with_capacity(k);
        let ln_two_pi = (2.0 * std::f64::consts::PI).ln();
        for (j, &lw) in log_weights.iter().enumerate() {
            let mut c = f64::from(lw);
            for i in 0..d {
                let (m, v) = (f64::from(means[j * d + i]), f64::from(variances[j * d + i]));
                if is_spherical {
                    weight[i * k + j] = (m / v) as f32;
                } else {
                    weight[i * k + j] = (-0.5 / v) as f32;
                    weight[(d + i) * k + j] = (m / v) as f32;
                }
                c -= 0.5 * (ln_two_pi + v.ln() + m * m / v);
            }
            constants.push(c as f32);
        }
        let spherical = is_spherical.then(|| {
            (0..k)
                .map(|j| (-0.5 / f64::from(variances[j * d])) as f32)
                .collect()
        });
        Self {
            weight,
            constants,
            spherical,
        }
    }
}

/// `f(x, 0) = g(u, 0) + b(x)` as plain arrays: the MLP layers of `g` (last one with one output),
/// the soft clip width `c` of `u` (0: off), and the base measure `b`.
#[derive(Clone, Debug)]
pub struct FoldedEnergy {
    pub layers: Vec<DenseLayer>,
    pub soft_clip: f32,
    pub gaussian: Option<GaussianBase>,
    pub mixture: Option<MixtureLevel>,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

impl DenseLayer {
    /// From an (out, in) weight, its bias (zeros when absent) and the PReLU after it.
    fn new(weight: &Tensor, bias: Option<&Tensor>, act: Option<&Prelu>) -> Result<Self> {
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Self {
            weight: to_vec(&weight.t()?.contiguous()?)?,
            bias: match bias {
                Some(b) => to_vec(b)?,
                None => vec![0.0; out_dim],
            },
            in_dim,
            out_dim,
            slope: act.map(Prelu::slope).transpose()?,
        })
    }
}

impl EnergyNet {
    /// The network at level 0 as plain arrays (weights copied to host memory). Only MLP energy
    /// networks fold; an image model's convolutional body is an [`Error::InvalidArgument`].
    pub fn fold_level0(&self) -> Result<FoldedEnergy> {
        let trunk = self.trunk().ok_or_else(|| {
            Error::InvalidArgument("only MLP energy networks fold into the CPU form".into())
        })?;
        let mut layers = vec![];
        for (linear, act) in trunk.x_branch().layers()? {
            layers.push(DenseLayer::new(linear.weight(), linear.bias(), act)?);
        }
        let x_layers = layers.len();
        for (i, (linear, act)) in trunk.head().layers()?.into_iter().enumerate() {
            if i > 0 {
                layers.push(DenseLayer::new(linear.weight(), linear.bias(), act)?);
                continue;
            }
            let w = linear.weight();
            let branch_out = match x_layers {
                0 => w.dim(1)?,
                _ => layers[x_layers - 1].out_dim,
            };
            let t_in = w.dim(1)? - branch_out;
            let mut first = DenseLayer::new(&w.narrow(1, 0, branch_out)?, linear.bias(), act)?;
            let t_features = trunk.level_features(0)?; // (1, t-branch width)
            let folded = to_vec(&t_features.matmul(&w.narrow(1, branch_out, t_in)?.t()?)?)?;
            for (b, f) in first.bias.iter_mut().zip(folded) {
                *b += f;
            }
            layers.push(first);
        }
        if layers.last().map(|l| l.out_dim) != Some(1) {
            return Err(Error::bad_model("the energy head must end in one output"));
        }
        let (gaussian, mixture) = self.level0_base()?;
        Ok(FoldedEnergy {
            layers,
            soft_clip: self.soft_clip_width(),
            gaussian,
            mixture,
        })
    }

    /// An image model's network at level 0 as plain arrays; an MLP network is an
    /// [`Error::InvalidArgument`] (see [`EnergyNet::fold_level0`]).
    pub fn fold_level0_image(&self) -> Result<FoldedImageEnergy> {
        let EnergyBody::Conv(body) = self.body() else {
            return Err(Error::InvalidArgument(
                "not an image model: its MLP folds with fold_level0".into(),
            ));
        };
        let (gaussian, mixture) = self.level0_base()?;
        Ok(FoldedImageEnergy {
            image: body.config().clone(),
            body: body.level_parts(0)?,
            soft_clip: self.soft_clip_width(),
            gaussian,
            mixture,
        })
    }

    fn level0_base(&self) -> Result<(Option<GaussianBase>, Option<MixtureLevel>)> {
        Ok(match self.base() {
            BaseMeasure::None => (None, None),
            BaseMeasure::Gaussian(g) => (Some(*g), None),
            BaseMeasure::Mixture(m) => (None, Some(m.level_params(0)?)),
        })
    }
}

/// An image model's `f(x, 0) = g(u, 0) + b(x)` as plain arrays: the convolutional network `g`
/// at level 0 (on `u` reshaped to `(C, H, W)` images), the soft clip width `c` of `u` (0: off)
/// and the base measure `b` on the flat normalised rows.
#[derive(Clone, Debug)]
pub struct FoldedImageEnergy {
    pub image: ImageConfig,
    pub body: DownsamplingParts,
    pub soft_clip: f32,
    pub gaussian: Option<GaussianBase>,
    pub mixture: Option<MixtureLevel>,
}
