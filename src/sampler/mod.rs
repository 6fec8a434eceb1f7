//! Samplers: how a model generates rows. Three kinds: DDAEBM's latent-variable generator applied
//! level by level ([`SamplerKind::Generator`]), GCD's Gaussian policy
//! ([`SamplerKind::GaussianPolicy`], [`policy`]) and DCD's annealed Langevin dynamics on the
//! energy itself ([`SamplerKind::Langevin`], [`langevin`]). The model file names the kind;
//! [`Sampler`] holds one of them behind the one `Model::sample`.
//!
//! Few-step generation with the generator (`docs/method.md#sampling`): start from `x_T ~ N(0, I)` and apply the generator and the
//! posterior `q(x_k | x_{k+1}, x̂)` for `k = T−1 … 0`, adding no noise at the last step.
//!
//! All randomness comes from a seeded ChaCha8 stream drawn on the host in a fixed order
//! (`x_T`, then per step `z` and, for `k > 0`, `ε`), so a seed gives the same samples on every
//! run and every platform.
//!
//! BatchNorm in the generator uses its running statistics (eval mode). The reference toy code
//! samples with batch statistics, which makes a row depend on the rest of its batch; running
//! statistics do not, and are what a library user expects (`docs/method.md#departures`).

use candle::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub mod conv_generator;
pub mod generator;
pub mod langevin;
pub mod policy;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::nn::embedding::level_tensor;
use crate::schedule::Schedule;
pub use generator::Generator;
pub use langevin::{LangevinConfig, LangevinSampler};
pub use policy::{GaussianPolicy, PolicyConfig};

/// The kind of sampler a model file holds; stored as the metadata's `sampler` field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// DDAEBM's generator `G_φ([x_{k+1}, z], k)` with the diffusion posterior, `T` steps from
    /// `N(0, I)` ([`sample_normalized`]); tensors `generator.*`.
    #[default]
    Generator,
    /// GCD's `T`-step Gaussian policy ([`GaussianPolicy`]); tensors `sampler.*`, settings in the
    /// metadata's `policy` entry.
    GaussianPolicy,
    /// DCD's annealed Langevin dynamics on the energy's levels ([`LangevinSampler`]); no
    /// tensors of its own, settings in the metadata's `langevin` entry.
    Langevin,
}

impl SamplerKind {
    /// The name stored in the model file.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Generator => "generator",
            SamplerKind::GaussianPolicy => "gaussian_policy",
            SamplerKind::Langevin => "langevin",
        }
    }
}

/// A model's sampler, built from the tensors its kind names.
// One per model: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Sampler {
    Generator(Generator),
    Policy(GaussianPolicy),
    Langevin(LangevinSampler),
}

impl Sampler {
    /// `n` rows in normalised units; the same seed gives the same rows.
    pub fn sample_normalized(
        &self,
        schedule: &Schedule,
        n: usize,
        dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        match self {
            Sampler::Generator(g) => sample_normalized(g, schedule, n, dim, seed, device),
            Sampler::Policy(p) => p.sample(n, dim, seed, device),
            Sampler::Langevin(l) => l.sample(n, dim, seed, device),
        }
    }
}

/// Draws `n` standard-normal f32 values from `rng` into a `(rows, cols)` tensor.
pub fn normal_tensor(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    device: &Device,
) -> Result<Tensor> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    Ok(Tensor::from_vec(v, (rows, cols), device)?)
}

/// Generates `n` rows in the model's *normalised* feature space, shape `(n, d)`.
pub fn sample_normalized(
    generator: &Generator,
    schedule: &Schedule,
    n: usize,
    dim: usize,
    seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = normal_tensor(&mut rng, n, dim, device)?;
    for k in (0..schedule.num_timesteps()).rev() {
        let z = normal_tensor(&mut rng, n, generator.latent_dim(), device)?;
        let levels = level_tensor(k, n, device)?;
        let x_hat = generator.forward_t(&x, &z, &levels, false)?;
        let mean =
            (x_hat.affine(schedule.post_c1[k], 0.0)? + x.affine(schedule.post_c2[k], 0.0)?)?;
        x = if k > 0 {
            let eps = normal_tensor(&mut rng, n, dim, device)?;
            let std = (0.5 * schedule.post_logvar[k]).exp();
            (mean + eps.affine(std, 0.0)?)?
        } else {
            mean
        };
    }
    Ok(x)
}
