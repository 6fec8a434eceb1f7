//! What a training method provides to [`crate::fit::fit`]. The shared parts of a run (the data
//! split, normalisation, mixture base measure, batches, checkpoints and resume, the stop flag,
//! calibration and the atomic model file) live in `fit`; a method brings its networks, its
//! iteration and its sampler: DDAEBM ([`crate::trainer::Trainer`]), GCD
//! ([`crate::gcd::GcdTrainer`]) and DCD ([`crate::dcd::DcdTrainer`]).

use anyhow::Result;
use candle::{Device, Tensor};
use ddaebm::energy::base::MixtureParams;
use ddaebm::{LangevinConfig, Method, PolicyConfig, SamplerKind, Schedule};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use crate::optimizer::AdamState;

/// A training method: networks, optimisers and one iteration on a batch of normalised rows.
pub trait TrainingMethod {
    /// The method recorded in the model file.
    fn method(&self) -> Method;
    /// The sampler kind of the models it writes.
    fn sampler(&self) -> SamplerKind;
    /// The Gaussian policy's settings, for a method whose sampler is one.
    fn policy(&self) -> Option<PolicyConfig> {
        None
    }
    /// The Langevin sampler's settings, for a method whose sampler is one.
    fn langevin(&self) -> Option<LangevinConfig> {
        None
    }
    /// Iterations of a whole run (every phase), the length of `fit`'s loop.
    fn total_steps(&self) -> usize;
    /// The diffusion schedule stored in the model file.
    fn schedule(&self) -> &Schedule;
    /// Gives the energy its mixture base measure (per level), fitted by `fit` to the data.
    fn set_base_measure(&mut self, params: &MixtureParams) -> Result<()>;
    /// Iterations done so far (after a resume: including those before it).
    fn steps_done(&self) -> usize;
    /// The run's random stream; `fit` draws the batch shuffles from it, so that a checkpoint
    /// holding it resumes the same sequence.
    fn rng(&mut self) -> &mut ChaCha8Rng;
    /// One iteration on a batch `(B, d)` of normalised rows.
    fn step(&mut self, batch: &Tensor) -> Result<StepStats>;
    /// `n` rows from the current sampler in normalised units (for progress snapshots).
    fn sample_normalized(&self, n: usize, dim: usize, seed: u64, device: &Device)
        -> Result<Tensor>;
    /// The tensors of the model file (`energy.*` and the sampler's), sorted by name.
    fn export_tensors(&self) -> Result<Vec<(String, Tensor)>>;
    /// Everything a checkpoint needs to continue bit for bit.
    fn state(&self) -> Result<TrainerState>;
    /// Continues from a checkpoint's state.
    fn restore(&mut self, state: TrainerState) -> Result<()>;
}

/// Losses and diagnostics of one iteration.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct StepStats {
    pub loss_energy: f32,
    pub loss_generator: f32,
    pub r1: f32,
    /// The value function's temporal-difference loss (GCD; 0 otherwise).
    #[serde(default)]
    pub loss_value: f32,
    /// Mean `f` on real and fake pairs (log-densities; the energy step pushes them apart).
    /// `f_fake` is taken before the energy update when the adversarial term is on, and after it
    /// (from the generator step's pass, saving an energy pass) when it is off.
    pub f_real: f32,
    pub f_fake: f32,
}

/// The position of a [`ChaCha8Rng`]: key, stream and word position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    pub fn restore(&self) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// A training run's complete state: what a checkpoint holds besides the data order. The
/// second optimiser is the sampler's (DDAEBM: generator and encoder); a method without one
/// leaves it empty.
pub struct TrainerState {
    /// Iterations done.
    pub step: usize,
    pub rng: RngState,
    /// Every variable, sorted by name.
    pub vars: Vec<(String, Tensor)>,
    /// EMA of the energy weights, sorted by name (empty without EMA).
    pub ema: Vec<(String, Tensor)>,
    pub opt_energy: AdamState,
    pub opt_generator: AdamState,
}
