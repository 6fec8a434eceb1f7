//! Energies: the energy network `f_θ(x, k)`, an unnormalised log-density of diffusion level `k`
//! (higher = more in-distribution; the library's energy is `E(x) = −f_θ(x, 0)`), its base
//! measures ([`base`]), the image body ([`conv`]), its input gradient ([`grad`]) and the level-0 folding into the plain form
//! the fused CPU path runs ([`folded`]). See `docs/method.md#energy`.

pub mod base;
pub mod conv;
pub mod folded;
pub mod grad;

use candle::Tensor;
use candle_nn::VarBuilder;

use crate::architecture::NetworkConfig;
use crate::energy::base::{GaussianBase, MixtureBase};
use crate::energy::conv::ConvEnergyBody;
use crate::error::Result;
use crate::nn::mlp::TimeConditionedMlp;
use crate::nn::soft_clip::{soft_clip, soft_clip_formula};

/// The learned part `g` of the energy network: the time-conditioned MLP, or the convolutional
/// network for images.
#[derive(Clone, Debug)]
pub enum EnergyBody {
    Mlp(TimeConditionedMlp),
    Conv(ConvEnergyBody),
}

/// The energy network's base measure `b(x)`.
#[derive(Clone, Debug)]
pub enum BaseMeasure {
    /// `b = 0`.
    None,
    /// `N(0, s²I)` without its constant ([`GaussianBase`]).
    Gaussian(GaussianBase),
    /// A Gaussian mixture per level ([`MixtureBase`]).
    Mixture(MixtureBase),
}

/// The energy network `f_θ(x, k)`: an unnormalised log-density of level `k`.
///
/// `f(x, k) = g(u, k) + b(x)` where `g` is the time-conditioned MLP (the convolutional network
/// for images), `u` is `x` or its soft clip (`input_soft_clip`), and `b` is a base measure:
/// `−½‖x‖²/s²` (`base_std` = s), the log-density of a Gaussian mixture (`base_components`), or 0.
/// With a base measure and the soft clip, `g` is bounded along every ray once the clip
/// saturates, so `f → −∞` far from the data; without them an MLP log-density extrapolates
/// linearly and can rise away from the data.
#[derive(Clone, Debug)]
pub struct EnergyNet {
    body: EnergyBody,
    base: BaseMeasure,
    soft_clip: f32,
}

impl EnergyNet {
    pub fn new(cfg: &NetworkConfig, num_levels: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let base = match cfg.base_components {
            0 if cfg.base_std > 0.0 => BaseMeasure::Gaussian(GaussianBase::new(cfg.base_std)),
            0 => BaseMeasure::None,
            k => BaseMeasure::Mixture(MixtureBase::new(
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
            base,
            soft_clip: cfg.input_soft_clip,
        })
    }

    /// The learned part `g`.
    pub fn body(&self) -> &EnergyBody {
        &self.body
    }

    /// The MLP of a vector-data model (`None` for the convolutional network of an image model).
    pub fn trunk(&self) -> Option<&TimeConditionedMlp> {
        match &self.body {
            EnergyBody::Mlp(trunk) => Some(trunk),
            EnergyBody::Conv(_) => None,
        }
    }

    /// The base measure `b`.
    pub fn base(&self) -> &BaseMeasure {
        &self.base
    }

    /// The mixture base measure, when the model has one.
    pub fn mixture(&self) -> Option<&MixtureBase> {
        match &self.base {
            BaseMeasure::Mixture(m) => Some(m),
            _ => None,
        }
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

    /// `(f, g)` from one pass through the network: the log-density and its part relative to
    /// the base measure (equal without a base measure).
    pub fn log_density_and_ratio(&self, xs: &Tensor, levels: &Tensor) -> Result<(Tensor, Tensor)> {
        let g = self.log_ratio(xs, levels)?;
        match &self.base {
            BaseMeasure::Mixture(mixture) => Ok(((&g + mixture.log_density(xs, levels)?)?, g)),
            BaseMeasure::None => Ok((g.clone(), g)),
            BaseMeasure::Gaussian(base) => Ok(((&g - base.half_squared_norm(xs)?)?, g)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::embedding::level_tensor;
    use candle::{DType, Device};
    use candle_nn::VarMap;

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
}
