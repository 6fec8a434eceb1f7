//! DCD training (`docs/method.md#dcd`): diffusion contrastive divergence. The energy
//! `f_θ(x, k)` of every level of the model's `T`-step diffusion is trained without a sampler
//! network; its negatives come from short Langevin chains on the posterior of one forward step.
//!
//! Each iteration, on a batch of normalised rows `x`:
//!
//! 1. **Diffuse.** A level `k ∈ 0..T` per row; the positive is the row diffused to it,
//!    `x_k = a_k x + s_k ε`, and one forward step further gives `y = a x_k + σ ε'` (`a`, `σ` of
//!    the step into level `k + 1`).
//! 2. **Negatives.** `K` Langevin steps on `q_θ(x' | y) ∝ exp(f_θ(x', k) − ‖y − a x'‖²/(2σ²))`
//!    from `a·y` ([`ddaebm::sampler::langevin::langevin_chain`]) with the step size the model
//!    file stores for level `k`.
//! 3. **Energy step.** One Adam step on the contrastive loss
//!    `mean E(x_k) − mean E(x') + γ (mean g(x_k)² + mean g(x')²)`
//!    ([`crate::losses::energy_loss`]), `E = −f`, with the negatives held fixed: its gradient is
//!    DCD's, `E_p[∇_θ E] − E_y E_{q_θ(x'|y)}[∇_θ E]`.
//!
//! With `short_run_cd` the negatives are the baseline's instead: `K` untied Langevin steps on
//! `f_θ(·, k)` from `N(0, I)` with the same step sizes, so an iteration costs the same.
//!
//! The model writes the Langevin sampler (`K` and the step sizes) into its file; sampling runs
//! the posterior chains level by level from `N(0, I)` ([`ddaebm::LangevinSampler`]).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::energy::base::MixtureParams;
use ddaebm::sampler::langevin::{langevin_chain, within_bounds, PosteriorTie};
use ddaebm::sampler::normal_tensor;
use ddaebm::{EnergyNet, LangevinConfig, LangevinSampler, Method, NetworkConfig, SamplerKind};
use ddaebm::{Schedule, ScheduleConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::losses::energy_loss;
use crate::method::{RngState, StepStats, TrainerState, TrainingMethod};
use crate::optimizer::{Adam, AdamParams, AdamState};
use crate::trainer::{
    detached_energy, is_base_measure, match_saved_vars, reinit_linear_layers, scalar,
    set_mixture_base, snapshot_all, sorted_vars,
};

/// DCD's settings besides the shared ones (`steps`, batch size, seed and the schedule of
/// [`crate::trainer::TrainConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DcdConfig {
    /// `K`: Langevin steps per chain, in training and at every level of sampling.
    pub langevin_steps: usize,
    /// `c`: the step size of level `k` is `c² / (1/s_k² + a²/σ²)`; the default 0.7 makes it
    /// about half the inverse of the posterior's curvature bound
    /// ([`ddaebm::LangevinConfig::with_default_steps`]).
    pub step_scale: f64,
    /// `γ`: weight of the magnitude penalty on the learned part of the energy.
    pub gamma: f64,
    /// Adam learning rate of the energy.
    pub lr_energy: f64,
    /// Train with short-run contrastive divergence (chains from `N(0, I)`, untied) instead of
    /// DCD's posterior chains: the baseline.
    pub short_run_cd: bool,
}

impl Default for DcdConfig {
    fn default() -> Self {
        Self {
            langevin_steps: 20,
            step_scale: 0.7,
            gamma: 0.1,
            lr_energy: 1e-3,
            short_run_cd: false,
        }
    }
}

impl DcdConfig {
    /// Checks every setting; the step sizes it gives are checked against `schedule` too.
    pub fn validate(&self, schedule: &ScheduleConfig) -> Result<()> {
        if !(self.step_scale.is_finite() && self.step_scale > 0.0) {
            bail!(
                "the DCD step scale must be finite and > 0, got {}",
                self.step_scale
            );
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            bail!(
                "the DCD energy penalty must be finite and >= 0, got {}",
                self.gamma
            );
        }
        if !(self.lr_energy.is_finite() && self.lr_energy > 0.0) {
            bail!(
                "the DCD energy learning rate must be finite and > 0, got {}",
                self.lr_energy
            );
        }
        let built = Schedule::new(schedule.clone())?;
        self.langevin(&built).validate(&built).with_context(|| {
            format!(
                "--langevin-steps {} and --step-scale {} do not give usable Langevin settings",
                self.langevin_steps, self.step_scale
            )
        })?;
        Ok(())
    }

    /// The sampler settings these give on `schedule`.
    pub fn langevin(&self, schedule: &Schedule) -> LangevinConfig {
        LangevinConfig::with_default_steps(schedule, self.langevin_steps, self.step_scale)
    }
}

/// The energy, its optimiser and the random stream of a DCD run.
pub struct DcdTrainer {
    cfg: DcdConfig,
    steps: usize,
    network: NetworkConfig,
    device: Device,
    schedule: Schedule,
    energy_vars: VarMap,
    energy: EnergyNet,
    /// The sampler on the same weights, detached: chains need `∇ₓf` only. Built once; it sees
    /// every update because a detached tensor shares its variable's storage.
    sampler: LangevinSampler,
    /// The same detached energy, for the training chains.
    energy_frozen: EnergyNet,
    opt_energy: Adam,
    base_measure_set: bool,
    rng: ChaCha8Rng,
    step: usize,
}

/// A `(B, 1)` f32 column of per-row values.
fn column(values: impl Iterator<Item = f64>, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = values.map(|v| v as f32).collect();
    let n = v.len();
    Ok(Tensor::from_vec(v, (n, 1), device)?)
}

impl DcdTrainer {
    /// A fresh run of `steps` iterations on `schedule`, seeded by `seed`.
    pub fn new(
        cfg: DcdConfig,
        steps: usize,
        schedule: ScheduleConfig,
        seed: u64,
        network: NetworkConfig,
        device: &Device,
    ) -> Result<Self> {
        network.validate()?;
        cfg.validate(&schedule)?;
        let t = schedule.num_timesteps;
        let schedule = Schedule::new(schedule)?;
        let energy_vars = VarMap::new();
        let energy = EnergyNet::new(
            &network,
            t,
            VarBuilder::from_varmap(&energy_vars, DType::F32, device).pp("energy"),
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0000_0000_DCD0);
        reinit_linear_layers(&energy_vars, &mut rng)?;
        let energy_frozen = detached_energy(&network, t, &energy_vars, device)?;
        let sampler = LangevinSampler::new(
            energy_frozen.clone(),
            schedule.clone(),
            cfg.langevin(&schedule),
        )?;
        let opt_energy = Adam::new(
            sorted_vars(&energy_vars, |n| !is_base_measure(n)),
            AdamParams {
                lr: cfg.lr_energy,
                beta1: 0.0,
                beta2: 0.9,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )?;
        Ok(Self {
            cfg,
            steps,
            network,
            device: device.clone(),
            schedule,
            energy_vars,
            energy,
            sampler,
            energy_frozen,
            opt_energy,
            base_measure_set: false,
            rng,
            step: 0,
        })
    }

    pub fn config(&self) -> &DcdConfig {
        &self.cfg
    }

    pub fn energy(&self) -> &EnergyNet {
        &self.energy
    }

    /// The energy's variables by name (`energy.*`), base measure included.
    pub fn vars(&self) -> &VarMap {
        &self.energy_vars
    }

    /// The Langevin sampler on the current weights.
    pub fn sampler(&self) -> &LangevinSampler {
        &self.sampler
    }

    fn normal(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        Ok(normal_tensor(&mut self.rng, rows, cols, &self.device)?)
    }

    /// The positives and negatives of one iteration on the rows `x` at the rows' `levels`:
    /// `(x_k, x')`, both detached.
    pub fn pairs(&mut self, x: &Tensor, levels: &[usize]) -> Result<(Tensor, Tensor)> {
        let (b, d) = x.dims2()?;
        let s = &self.schedule;
        let a_k: Vec<f64> = levels.iter().map(|&k| s.a_s_cum[k]).collect();
        let s_k: Vec<f64> = levels.iter().map(|&k| s.sigmas_cum[k]).collect();
        // The forward step into level k + 1.
        let a: Vec<f64> = levels.iter().map(|&k| s.a_s[k + 1]).collect();
        let sigma: Vec<f64> = levels.iter().map(|&k| s.sigmas[k + 1]).collect();
        let step_sizes: Vec<f64> = levels
            .iter()
            .map(|&k| self.sampler.config().step_sizes[k])
            .collect();
        let dev = self.device.clone();
        let eps = self.normal(b, d)?;
        let positive = (x.broadcast_mul(&column(a_k.into_iter(), &dev)?)?
            + eps.broadcast_mul(&column(s_k.into_iter(), &dev)?)?)?
        .detach();
        let chain_steps = self.cfg.langevin_steps;
        let negative = if self.cfg.short_run_cd {
            let start = self.normal(b, d)?;
            langevin_chain(
                &self.energy_frozen,
                &start,
                levels,
                &step_sizes,
                None,
                chain_steps,
                &mut self.rng,
            )?
        } else {
            let a_col = column(a.iter().copied(), &dev)?;
            let sigma_col = column(sigma.iter().copied(), &dev)?;
            let eps = self.normal(b, d)?;
            let y = (positive.broadcast_mul(&a_col)? + eps.broadcast_mul(&sigma_col)?)?;
            let start = y.broadcast_mul(&a_col)?;
            let tie = PosteriorTie { y, a, sigma };
            langevin_chain(
                &self.energy_frozen,
                &start,
                levels,
                &step_sizes,
                Some(&tie),
                chain_steps,
                &mut self.rng,
            )?
        };
        if !within_bounds(&negative)? {
            bail!(
                "the Langevin chains diverged at iteration {}: lower --step-scale or --lr-energy",
                self.step
            );
        }
        Ok((positive, negative))
    }

    /// One iteration on a batch of normalised rows.
    pub fn step(&mut self, x: &Tensor) -> Result<StepStats> {
        if self.network.base_components > 0 && !self.base_measure_set {
            bail!("the mixture base measure must be set before training");
        }
        let b = x.dim(0)?;
        let t = self.schedule.num_timesteps();
        let levels: Vec<usize> = (0..b).map(|_| self.rng.random_range(0..t)).collect();
        let (positive, negative) = self.pairs(x, &levels)?;
        let ids: Vec<u32> = levels.iter().chain(&levels).map(|&k| k as u32).collect();
        let ids = Tensor::from_vec(ids, 2 * b, &self.device)?;
        let both = Tensor::cat(&[&positive, &negative], 0)?;
        let (f, g) = self.energy.log_density_and_ratio(&both, &ids)?;
        let (f_real, f_fake) = (f.narrow(0, 0, b)?, f.narrow(0, b, b)?);
        let (g_real, g_fake) = (g.narrow(0, 0, b)?, g.narrow(0, b, b)?);
        let loss = energy_loss(&f_real, &f_fake, &g_real, &g_fake, self.cfg.gamma)?;
        self.opt_energy.backward_step(&loss)?;
        self.step += 1;
        Ok(StepStats {
            loss_energy: scalar(&loss)?,
            f_real: scalar(&f_real.mean_all()?)?,
            f_fake: scalar(&f_fake.mean_all()?)?,
            ..StepStats::default()
        })
    }

    /// Detached copies of every variable, sorted by name.
    fn all_vars(&self) -> Result<Vec<(String, Tensor)>> {
        snapshot_all(&[&self.energy_vars])
    }
}

impl TrainingMethod for DcdTrainer {
    fn method(&self) -> Method {
        Method::Dcd
    }

    fn sampler(&self) -> SamplerKind {
        SamplerKind::Langevin
    }

    fn langevin(&self) -> Option<LangevinConfig> {
        Some(self.sampler.config().clone())
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn total_steps(&self) -> usize {
        self.steps
    }

    fn set_base_measure(&mut self, params: &MixtureParams) -> Result<()> {
        set_mixture_base(
            &self.energy_vars,
            &self.network,
            self.schedule.num_timesteps(),
            params,
            &self.device,
        )?;
        self.base_measure_set = true;
        Ok(())
    }

    fn steps_done(&self) -> usize {
        self.step
    }

    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn step(&mut self, batch: &Tensor) -> Result<StepStats> {
        DcdTrainer::step(self, batch)
    }

    fn sample_normalized(
        &self,
        n: usize,
        dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        Ok(self.sampler.sample(n, dim, seed, device)?)
    }

    fn export_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.all_vars()
    }

    fn state(&self) -> Result<TrainerState> {
        Ok(TrainerState {
            step: self.step,
            rng: RngState::of(&self.rng),
            vars: self.all_vars()?,
            ema: vec![],
            opt_energy: self.opt_energy.state()?,
            // No sampler network, so no second optimiser.
            opt_generator: AdamState {
                step_t: 0,
                moments: vec![],
            },
        })
    }

    fn restore(&mut self, state: TrainerState) -> Result<()> {
        if !state.ema.is_empty() {
            bail!("a DCD checkpoint holds no EMA weights");
        }
        if !state.opt_generator.moments.is_empty() {
            bail!("a DCD checkpoint holds no sampler optimiser");
        }
        let saved: HashMap<&str, &Tensor> =
            state.vars.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let targets = match_saved_vars(&[&self.energy_vars], &saved)?;
        self.opt_energy.check(&state.opt_energy)?;
        self.opt_energy.restore(state.opt_energy)?;
        for (var, t) in targets {
            var.set(&t.to_device(&self.device)?.to_dtype(var.dtype())?)?;
        }
        self.rng = state.rng.restore();
        self.step = state.step;
        Ok(())
    }
}
