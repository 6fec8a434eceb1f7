//! GCD training (`docs/method.md#gcd`): the energy and a `T`-step Gaussian-policy sampler
//! trained together, as maximum-entropy inverse RL.
//!
//! A run has two phases, both counted in iterations so that checkpoints and `--resume` cover
//! them alike:
//!
//! 1. **DDPM pre-training** (`pretrain_steps` iterations): the policy's noise-prediction
//!    network `ε_φ(x, n)` learns the usual DDPM loss `mean ‖ε_φ(a_n x + s_n ε, n) − ε‖²` on the
//!    `N` levels of the fine diffusion.
//! 2. **GCD** (`steps` iterations), each:
//!    - *roll out* the policy from `x_T ~ N(0, I)` to `x_0` (no gradient), and move the running
//!      step scales `β̃_k` (the mean squared step per feature into level `k`) towards this
//!      rollout's (EMA, `velocity_ema`);
//!    - *energy and value step* (one Adam step on θ): the energy is the level-0 value,
//!      `V(x, 0) = E(x) = −f_θ(x, 0)`, and `V(x, k) = −f_θ(x, k)` are the values of the policy's
//!      intermediate states, all one network. Loss:
//!      `mean E(data) − mean E(x_0) + γ (mean g(data)² + mean g(x_0)²)` (contrastive divergence
//!      with the policy's samples, and a magnitude penalty on the learned part `g` of the
//!      energy, never on the base measure), plus the temporal-difference loss
//!      `mean (V(x_k, k) − sg[V(x_{k−1}, k−1) + τ w c_k])²` for `k = 1 … T−1` on the rollout,
//!      with the velocity cost `c_k = ‖x_{k−1} − x_k‖² / (2 β̃_{k−1})`;
//!    - *sampler step* (one Adam step on φ and `log σ`, gradient norm clipped): every
//!      transition of the rollout is taken again from its (detached) start with fresh noise,
//!      `x'_k = μ_φ(x_{k+1}) + σ_k ε` (reparameterised), and the loss is
//!      `mean [V(x'_k, k) + τ (w c'_k − d log σ_k)]`: the value ahead, the velocity cost and
//!      the step's Gaussian entropy `d log σ_k` (+ const). No gradient flows through time.
//!
//! `τ` weighs the entropy; with the velocity weight `w = 1` the two τ terms are the usual
//! lower bound of the sampler's marginal entropy by its path entropy, so the policy's best
//! response to an energy `E` approaches `exp(−E/τ)`.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::energy::base::MixtureParams;
use ddaebm::sampler::normal_tensor;
use ddaebm::{EnergyNet, GaussianPolicy, Method, NetworkConfig, PolicyConfig, SamplerKind};
use ddaebm::{Schedule, ScheduleConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::losses::energy_loss;
use crate::method::{RngState, StepStats, TrainerState, TrainingMethod};
use crate::optimizer::{Adam, AdamParams};
use crate::trainer::{
    detached_energy, is_base_measure, match_saved_vars, reinit_linear_layers, scalar,
    set_mixture_base, snapshot_all, sorted_vars,
};

/// GCD's settings besides the shared ones (`steps`, batch size, seed and the `T`-step schedule
/// of [`crate::trainer::TrainConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GcdConfig {
    /// `N`: steps of the fine diffusion the DDPM is pre-trained on (a multiple of `T`).
    pub ddpm_steps: usize,
    /// DDPM pre-training iterations before the GCD iterations.
    pub pretrain_steps: usize,
    /// `τ`: weight of the policy's entropy (and, times `velocity_weight`, of the velocity cost).
    pub tau: f64,
    /// `w`: the velocity cost's weight relative to `τ`.
    pub velocity_weight: f64,
    /// `γ`: weight of the magnitude penalty on the learned part of the energy.
    pub gamma: f64,
    /// Adam learning rates: the energy (and value), the DDPM pre-training, the GCD sampler.
    pub lr_energy: f64,
    pub lr_ddpm: f64,
    pub lr_sampler: f64,
    /// Largest gradient norm of a sampler step.
    pub grad_clip: f64,
    /// EMA decay of the running step scales `β̃_k`.
    pub velocity_ema: f64,
}

impl Default for GcdConfig {
    fn default() -> Self {
        Self {
            ddpm_steps: 1000,
            pretrain_steps: 20_000,
            tau: 1.0,
            velocity_weight: 1.0,
            gamma: 0.1,
            lr_energy: 1e-3,
            lr_ddpm: 1e-3,
            lr_sampler: 1e-4,
            grad_clip: 1.0,
            velocity_ema: 0.99,
        }
    }
}

impl GcdConfig {
    /// Checks every setting against the `T`-step schedule.
    pub fn validate(&self, schedule: &ScheduleConfig) -> Result<()> {
        PolicyConfig {
            ddpm_steps: self.ddpm_steps,
        }
        .validate(schedule)?;
        let checks = [
            ("tau", self.tau, true),
            ("velocity weight", self.velocity_weight, true),
            ("gamma", self.gamma, true),
            ("energy learning rate", self.lr_energy, false),
            ("DDPM learning rate", self.lr_ddpm, false),
            ("sampler learning rate", self.lr_sampler, false),
            ("gradient clip", self.grad_clip, false),
        ];
        for (name, v, zero_ok) in checks {
            if !(v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0))) {
                bail!(
                    "the GCD {name} must be finite and {}, got {v}",
                    if zero_ok { ">= 0" } else { "> 0" }
                );
            }
        }
        if !(0.0..1.0).contains(&self.velocity_ema) {
            bail!(
                "the velocity EMA must be in [0, 1), got {}",
                self.velocity_ema
            );
        }
        Ok(())
    }
}

/// The velocity cost per row, `‖to − from‖² / (2 β̃)`, with `β̃` given per row, shape (B,).
pub fn velocity_cost(from: &Tensor, to: &Tensor, scales: &[f64]) -> Result<Tensor> {
    let inv: Vec<f32> = scales.iter().map(|&s| (0.5 / s) as f32).collect();
    let inv = Tensor::from_vec(inv, scales.len(), from.device())?;
    Ok(((to - from)?.sqr()?.sum(1)? * inv)?)
}

/// The temporal-difference target of `V(x_k, k)`: `V(x_{k−1}, k−1) + τ w c_k`, detached.
pub fn td_target(v_next: &Tensor, cost: &Tensor, tau: f64, velocity_weight: f64) -> Result<Tensor> {
    Ok((v_next + (cost * (tau * velocity_weight))?)?.detach())
}

/// The sampler's objective per row, `V(x', k) + τ (w c − d log σ_k)`, for `d` features.
pub fn sampler_objective(
    value: &Tensor,
    cost: &Tensor,
    log_std: &Tensor,
    tau: f64,
    velocity_weight: f64,
    d: usize,
) -> Result<Tensor> {
    Ok(((value + (cost * (tau * velocity_weight))?)? - (log_std * (tau * d as f64))?)?)
}

/// Name under which the running step scales travel in a checkpoint.
const STEP_SCALES: &str = "gcd.step_scales";

/// The networks, optimisers and random stream of a GCD run.
pub struct GcdTrainer {
    cfg: GcdConfig,
    /// GCD iterations after the pre-training.
    steps: usize,
    network: NetworkConfig,
    device: Device,
    schedule: Schedule,
    energy_vars: VarMap,
    sampler_vars: VarMap,
    energy: EnergyNet,
    /// The same weights, detached: the sampler step differentiates the value with respect to
    /// its input only.
    energy_frozen: EnergyNet,
    policy: GaussianPolicy,
    opt_energy: Adam,
    opt_sampler: Adam,
    /// `β̃_k`, k = 0..T−1; empty until the first rollout.
    step_scales: Vec<f64>,
    /// Whether the mixture base measure (when the network has one) has been set.
    base_measure_set: bool,
    rng: ChaCha8Rng,
    step: usize,
}

/// What one rollout produced: the states `x_T … x_0` (index k holds level k).
struct Rollout {
    states: Vec<Tensor>,
}

impl GcdTrainer {
    /// A fresh run: `steps` GCD iterations after `cfg.pretrain_steps` of DDPM pre-training, on
    /// the `T`-step `schedule`, seeded by `seed`.
    pub fn new(
        cfg: GcdConfig,
        steps: usize,
        schedule: ScheduleConfig,
        seed: u64,
        network: NetworkConfig,
        device: &Device,
    ) -> Result<Self> {
        network.validate()?;
        if network.image.is_some() {
            bail!("--method gcd trains vector data; for images use the default method");
        }
        cfg.validate(&schedule)?;
        let policy_cfg = PolicyConfig {
            ddpm_steps: cfg.ddpm_steps,
        };
        let t = schedule.num_timesteps;
        let schedule_built = Schedule::new(schedule.clone())?;
        let energy_vars = VarMap::new();
        let energy = EnergyNet::new(
            &network,
            t,
            VarBuilder::from_varmap(&energy_vars, DType::F32, device).pp("energy"),
        )?;
        let sampler_vars = VarMap::new();
        let policy = GaussianPolicy::new(
            &network,
            &schedule,
            &policy_cfg,
            VarBuilder::from_varmap(&sampler_vars, DType::F32, device).pp("sampler"),
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0000_0000_6CD0);
        reinit_linear_layers(&energy_vars, &mut rng)?;
        reinit_linear_layers(&sampler_vars, &mut rng)?;
        {
            let data = sampler_vars.data().lock().expect("var map lock");
            let init = policy.initial_log_std();
            data.get("sampler.log_std")
                .context("the policy has no log_std")?
                .set(&Tensor::from_vec(init, t, device)?)?;
        }
        let energy_frozen = detached_energy(&network, t, &energy_vars, device)?;
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
        let opt_sampler = Adam::new(
            sorted_vars(&sampler_vars, |_| true),
            AdamParams {
                lr: cfg.lr_ddpm,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )?;
        Ok(Self {
            cfg,
            steps,
            network,
            device: device.clone(),
            schedule: schedule_built,
            energy_vars,
            sampler_vars,
            energy,
            energy_frozen,
            policy,
            opt_energy,
            opt_sampler,
            step_scales: vec![],
            base_measure_set: false,
            rng,
            step: 0,
        })
    }

    pub fn config(&self) -> &GcdConfig {
        &self.cfg
    }

    pub fn policy(&self) -> &GaussianPolicy {
        &self.policy
    }

    pub fn energy(&self) -> &EnergyNet {
        &self.energy
    }

    /// The running step scales `β̃_k` (empty before the first GCD iteration).
    pub fn step_scales(&self) -> &[f64] {
        &self.step_scales
    }

    fn normal(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        Ok(normal_tensor(&mut self.rng, rows, cols, &self.device)?)
    }

    /// `true` while the iteration about to run is a DDPM pre-training one.
    pub fn pretraining(&self) -> bool {
        self.step < self.cfg.pretrain_steps
    }

    /// One DDPM iteration: a fine level `n ∈ 1..=N` per row, `x_n = a_n x + s_n ε`, and the
    /// noise-prediction loss.
    fn ddpm_step(&mut self, x: &Tensor) -> Result<StepStats> {
        let (b, d) = x.dims2()?;
        let fine = self.policy.ddpm();
        let n_fine = fine.num_timesteps();
        let levels: Vec<u32> = (0..b)
            .map(|_| self.rng.random_range(1..=n_fine as u32))
            .collect();
        let col = |f: &dyn Fn(usize) -> f64| -> Result<Tensor> {
            let v: Vec<f32> = levels.iter().map(|&n| f(n as usize) as f32).collect();
            Ok(Tensor::from_vec(v, (b, 1), &self.device)?)
        };
        let a = col(&|n| fine.a_s_cum[n])?;
        let s = col(&|n| fine.sigmas_cum[n])?;
        let eps = self.normal(b, d)?;
        let x_n = (x.broadcast_mul(&a)? + eps.broadcast_mul(&s)?)?;
        let level_t = Tensor::from_vec(levels, b, &self.device)?;
        let pred = self.policy.predict_noise(&x_n, &level_t)?;
        let loss = (pred - &eps)?.sqr()?.mean_all()?;
        self.opt_sampler.set_lr(self.cfg.lr_ddpm);
        self.opt_sampler.backward_step(&loss)?;
        Ok(StepStats {
            loss_generator: scalar(&loss)?,
            ..StepStats::default()
        })
    }

    /// Rolls the policy out on `b` rows, detached: `states[k]` is level k (`states[T]` the
    /// starting noise).
    fn rollout(&mut self, b: usize, d: usize) -> Result<Rollout> {
        let t = self.policy.num_steps();
        let stds: Vec<f64> = self
            .policy
            .log_std()
            .to_vec1::<f32>()?
            .iter()
            .map(|v| f64::from(*v).exp())
            .collect();
        let mut states = vec![self.normal(b, d)?];
        for k in (0..t).rev() {
            let x = states.last().expect("non-empty");
            let mean = self.policy.step_mean(x, self.policy.step(k))?.detach();
            let eps = self.normal(b, d)?;
            states.push((mean + (eps * stds[k])?)?);
        }
        states.reverse();
        Ok(Rollout { states })
    }

    /// Moves `β̃_k` towards the rollout's mean squared step per feature into level `k`.
    fn update_step_scales(&mut self, r: &Rollout) -> Result<()> {
        let t = self.policy.num_steps();
        let mut observed = Vec::with_capacity(t);
        for k in 0..t {
            let m = (&r.states[k] - &r.states[k + 1])?.sqr()?.mean_all()?;
            observed.push(f64::from(scalar(&m)?).max(1e-12));
        }
        if self.step_scales.is_empty() {
            self.step_scales = observed;
        } else {
            let a = self.cfg.velocity_ema;
            for (s, o) in self.step_scales.iter_mut().zip(observed) {
                *s = a * *s + (1.0 - a) * o;
            }
        }
        Ok(())
    }

    /// Per-row velocity cost `‖to − from‖² / (2 β̃_k)` for rows stepping into levels `into`.
    fn velocity_cost(&self, from: &Tensor, to: &Tensor, into: &[usize]) -> Result<Tensor> {
        let scales: Vec<f64> = into.iter().map(|&k| self.step_scales[k]).collect();
        velocity_cost(from, to, &scales)
    }

    /// The energy and value step on the data batch and the rollout. Returns (CD + penalty
    /// loss, TD loss, mean f on data, mean f on samples).
    fn energy_step(&mut self, x: &Tensor, r: &Rollout) -> Result<[Tensor; 4]> {
        let (b, _) = x.dims2()?;
        let t = self.policy.num_steps();
        let both = Tensor::cat(&[x, &r.states[0]], 0)?;
        let zeros = Tensor::zeros(2 * b, DType::U32, &self.device)?;
        let (f, g) = self.energy.log_density_and_ratio(&both, &zeros)?;
        let (f_real, f_fake) = (f.narrow(0, 0, b)?, f.narrow(0, b, b)?);
        let (g_real, g_fake) = (g.narrow(0, 0, b)?, g.narrow(0, b, b)?);
        let mut loss = energy_loss(&f_real, &f_fake, &g_real, &g_fake, self.cfg.gamma)?;
        let mut td = Tensor::zeros((), DType::F32, &self.device)?;
        if t > 1 {
            // States at levels 1..T−1 and the states they stepped into.
            let here = Tensor::cat(&r.states[1..t], 0)?;
            let next = Tensor::cat(&r.states[0..t - 1], 0)?;
            let here_levels: Vec<u32> = (1..t as u32).flat_map(|k| vec![k; b]).collect();
            let into: Vec<usize> = (0..t - 1).flat_map(|k| vec![k; b]).collect();
            let next_levels: Vec<u32> = into.iter().map(|&k| k as u32).collect();
            let rows = here_levels.len();
            let v_next = self
                .energy_frozen
                .log_density(&next, &Tensor::from_vec(next_levels, rows, &self.device)?)?
                .neg()?;
            let cost = self.velocity_cost(&here, &next, &into)?;
            let target = td_target(&v_next, &cost, self.cfg.tau, self.cfg.velocity_weight)?;
            let v_here = self
                .energy
                .log_density(&here, &Tensor::from_vec(here_levels, rows, &self.device)?)?
                .neg()?;
            td = (v_here - target)?.sqr()?.mean_all()?;
            loss = (loss + &td)?;
        }
        self.opt_energy.backward_step(&loss)?;
        Ok([loss, td, f_real.mean_all()?, f_fake.mean_all()?])
    }

    /// The sampler step: every transition of the rollout again, reparameterised, against the
    /// updated value.
    fn sampler_step(&mut self, r: &Rollout) -> Result<Tensor> {
        let t = self.policy.num_steps();
        let (b, d) = r.states[0].dims2()?;
        let from = Tensor::cat(&r.states[1..=t], 0)?;
        let into: Vec<usize> = (0..t).flat_map(|k| vec![k; b]).collect();
        let rows = into.len();
        let mean = self.policy.step_means(&from, &into)?;
        let idx = Tensor::from_vec(
            into.iter().map(|&k| k as u32).collect::<Vec<_>>(),
            rows,
            &self.device,
        )?;
        let log_std = self.policy.log_std().index_select(&idx, 0)?;
        let eps = self.normal(rows, d)?;
        let x_new = (mean + eps.broadcast_mul(&log_std.exp()?.unsqueeze(1)?)?)?;
        let value = self.energy_frozen.log_density(&x_new, &idx)?.neg()?;
        let cost = self.velocity_cost(&from, &x_new, &into)?;
        let per_row = sampler_objective(
            &value,
            &cost,
            &log_std,
            self.cfg.tau,
            self.cfg.velocity_weight,
            d,
        )?;
        let loss = per_row.mean_all()?;
        let mut grads = loss.backward()?;
        clip_gradients(&mut grads, &self.sampler_vars, self.cfg.grad_clip)?;
        self.opt_sampler.set_lr(self.cfg.lr_sampler);
        self.opt_sampler.step(&grads)?;
        Ok(loss)
    }

    /// One iteration on a batch of normalised rows: DDPM pre-training, then GCD.
    pub fn step(&mut self, x: &Tensor) -> Result<StepStats> {
        if self.network.base_components > 0 && !self.base_measure_set {
            bail!("the mixture base measure must be set before training");
        }
        let stats = if self.pretraining() {
            self.ddpm_step(x)?
        } else {
            let (b, d) = x.dims2()?;
            let rollout = self.rollout(b, d)?;
            self.update_step_scales(&rollout)?;
            let [loss, td, f_real, f_fake] = self.energy_step(x, &rollout)?;
            let loss_sampler = self.sampler_step(&rollout)?;
            StepStats {
                loss_energy: scalar(&loss)?,
                loss_generator: scalar(&loss_sampler)?,
                r1: 0.0,
                loss_value: scalar(&td)?,
                f_real: scalar(&f_real)?,
                f_fake: scalar(&f_fake)?,
            }
        };
        self.step += 1;
        Ok(stats)
    }

    /// Detached copies of every variable, sorted by name.
    fn all_vars(&self) -> Result<Vec<(String, Tensor)>> {
        snapshot_all(&[&self.energy_vars, &self.sampler_vars])
    }
}

/// Scales the gradients of `vars` in `grads` so that their joint norm is at most `max_norm`.
pub fn clip_gradients(
    grads: &mut candle::backprop::GradStore,
    vars: &VarMap,
    max_norm: f64,
) -> Result<f64> {
    let vars = sorted_vars(vars, |_| true);
    let mut total = 0f64;
    for (_, v) in &vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += f64::from(scalar(&g.sqr()?.sum_all()?)?);
        }
    }
    let norm = total.sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        for (_, v) in &vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

impl TrainingMethod for GcdTrainer {
    fn method(&self) -> Method {
        Method::Gcd
    }

    fn sampler(&self) -> SamplerKind {
        SamplerKind::GaussianPolicy
    }

    fn policy(&self) -> Option<PolicyConfig> {
        Some(PolicyConfig {
            ddpm_steps: self.cfg.ddpm_steps,
        })
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn total_steps(&self) -> usize {
        self.cfg.pretrain_steps + self.steps
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
        GcdTrainer::step(self, batch)
    }

    fn sample_normalized(
        &self,
        n: usize,
        dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        Ok(self.policy.sample(n, dim, seed, device)?)
    }

    fn export_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.all_vars()
    }

    fn state(&self) -> Result<TrainerState> {
        let mut vars = self.all_vars()?;
        // As the f64 bit patterns (two u32 words each): checkpoints hold f32 and u32 tensors,
        // and a rounded scale would make a resumed run drift from an uninterrupted one.
        let words: Vec<u32> = self
            .step_scales
            .iter()
            .flat_map(|v| {
                let bits = v.to_bits();
                [(bits >> 32) as u32, bits as u32]
            })
            .collect();
        let n = words.len();
        vars.push((
            STEP_SCALES.to_string(),
            Tensor::from_vec(words, n, &Device::Cpu)?,
        ));
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(TrainerState {
            step: self.step,
            rng: RngState::of(&self.rng),
            vars,
            ema: vec![],
            opt_energy: self.opt_energy.state()?,
            opt_generator: self.opt_sampler.state()?,
        })
    }

    fn restore(&mut self, state: TrainerState) -> Result<()> {
        let mut saved: HashMap<String, Tensor> = state.vars.into_iter().collect();
        let scales = saved
            .remove(STEP_SCALES)
            .context("the checkpoint has no GCD step scales")?;
        let words: Vec<u32> = scales
            .to_vec1()
            .context("the GCD step scales are not u32 words")?;
        let scales: Vec<f64> = words
            .chunks_exact(2)
            .map(|w| f64::from_bits((u64::from(w[0]) << 32) | u64::from(w[1])))
            .collect();
        if words.len() % 2 != 0 || !(scales.is_empty() || scales.len() == self.policy.num_steps()) {
            bail!(
                "the checkpoint's step scales do not match {} steps",
                self.policy.num_steps()
            );
        }
        if !state.ema.is_empty() {
            bail!("a GCD checkpoint holds no EMA weights");
        }
        let saved: HashMap<&str, &Tensor> = saved.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let targets = match_saved_vars(&[&self.energy_vars, &self.sampler_vars], &saved)?;
        self.opt_energy.check(&state.opt_energy)?;
        self.opt_sampler.check(&state.opt_generator)?;
        self.opt_energy.restore(state.opt_energy)?;
        self.opt_sampler.restore(state.opt_generator)?;
        for (var, t) in targets {
            var.set(&t.to_device(&self.device)?.to_dtype(var.dtype())?)?;
        }
        self.step_scales = scales;
        self.rng = state.rng.restore();
        self.step = state.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Var;

    fn t1(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    fn value(t: &Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn energy_loss_on_hand_computed_inputs() {
        // E = −f: mean E(data) = −1.5, mean E(x_0) = 2; CD = −3.5.
        let (f_real, f_fake) = (t1(&[1.0, 2.0]), t1(&[-1.0, -3.0]));
        let (g_real, g_fake) = (t1(&[1.0, -3.0]), t1(&[2.0, 0.0]));
        // Penalty: (1 + 9)/2 + (4 + 0)/2 = 7.
        let l = energy_loss(&f_real, &f_fake, &g_real, &g_fake, 0.5).unwrap();
        assert!((value(&l) - (-3.5 + 0.5 * 7.0)).abs() < 1e-6);
        let l = energy_loss(&f_real, &f_fake, &g_real, &g_fake, 0.0).unwrap();
        assert!((value(&l) + 3.5).abs() < 1e-6);
    }

    #[test]
    fn velocity_cost_and_td_target_on_hand_computed_inputs() {
        let dev = Device::Cpu;
        let from = Tensor::from_slice(&[0f32, 0.0, 1.0, 1.0], (2, 2), &dev).unwrap();
        let to = Tensor::from_slice(&[3f32, 4.0, 1.0, 2.0], (2, 2), &dev).unwrap();
        // ‖Δ‖² = 25 and 1; β̃ = 0.5 and 2: costs 25 and 0.25.
        let c = velocity_cost(&from, &to, &[0.5, 2.0]).unwrap();
        assert_eq!(c.to_vec1::<f32>().unwrap(), [25.0, 0.25]);
        let v_next = t1(&[1.0, -2.0]);
        let target = td_target(&v_next, &c, 0.1, 2.0).unwrap();
        let got = target.to_vec1::<f32>().unwrap();
        assert!(
            (got[0] - 6.0).abs() < 1e-6 && (got[1] + 1.95).abs() < 1e-6,
            "{got:?}"
        );
        // The target is a constant for the value update: no gradient flows into it.
        let var = Var::from_tensor(&v_next).unwrap();
        let target = td_target(var.as_tensor(), &c, 0.1, 1.0).unwrap();
        let grads = target.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(var.as_tensor()).is_none());
    }

    #[test]
    fn sampler_objective_on_hand_computed_inputs() {
        // V + τ (w c − d log σ) with τ = 0.5, w = 2, d = 3.
        let o = sampler_objective(
            &t1(&[1.0, 2.0]),
            &t1(&[0.5, 0.0]),
            &t1(&[0.0, -1.0]),
            0.5,
            2.0,
            3,
        )
        .unwrap();
        let got = o.to_vec1::<f32>().unwrap();
        assert!(
            (got[0] - 1.5).abs() < 1e-6 && (got[1] - 3.5).abs() < 1e-6,
            "{got:?}"
        );
    }

    // The reparameterised step's σ: with the value flat, entropy and velocity cost alone are
    // minimised in expectation at σ² = β̃ / w (∂/∂log σ of τ(w dσ²/(2β̃) − d log σ) is
    // τ d (w σ²/β̃ − 1)); the Monte-Carlo gradient through `x' = μ + σ ε` has that sign.
    #[test]
    fn the_step_std_moves_towards_its_entropy_optimum() {
        let dev = Device::Cpu;
        let (n, d) = (4000, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let beta = 0.25f64;
        for (log_std, w, sign) in [(-2.0f32, 1.0, -1.0), (0.0, 1.0, 1.0), (-0.5, 4.0, 1.0)] {
            let ls = Var::new(&[log_std], &dev).unwrap();
            let mean = Tensor::zeros((n, d), DType::F32, &dev).unwrap();
            let eps = normal_tensor(&mut rng, n, d, &dev).unwrap();
            let rows = ls.as_tensor().broadcast_as((n,)).unwrap();
            let x =
                (&mean + eps.broadcast_mul(&rows.exp().unwrap().unsqueeze(1).unwrap())).unwrap();
            let cost = velocity_cost(&mean, &x, &vec![beta; n]).unwrap();
            let flat = Tensor::zeros(n, DType::F32, &dev).unwrap();
            let obj = sampler_objective(&flat, &cost, &rows, 0.3, w, d)
                .unwrap()
                .mean_all()
                .unwrap();
            let g = obj.backward().unwrap();
            let grad = g.get(ls.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0];
            let sigma2 = (2.0 * log_std as f64).exp();
            let expected = 0.3 * d as f64 * (w * sigma2 / beta - 1.0);
            assert!(grad as f64 * sign > 0.0, "log σ {log_std}: gradient {grad}");
            assert!(
                (grad as f64 - expected).abs() < 0.1 * expected.abs() + 0.02,
                "log σ {log_std}: gradient {grad}, expected {expected}"
            );
        }
    }

    #[test]
    fn a_mixture_base_must_be_set_before_training() {
        let mut network = NetworkConfig::toy(2);
        network.base_components = 2;
        network.head_widths = vec![8];
        let mut t = GcdTrainer::new(
            GcdConfig {
                pretrain_steps: 0,
                ddpm_steps: 10,
                ..GcdConfig::default()
            },
            1,
            ScheduleConfig::ddaebm(5),
            0,
            network,
            &Device::Cpu,
        )
        .unwrap();
        let x = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
        let err = t.step(&x).unwrap_err().to_string();
        assert!(err.contains("base measure must be set"), "{err}");
    }

    #[test]
    fn clipping_bounds_the_joint_gradient_norm() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let a = vb
            .get_with_hints(2, "a", candle_nn::Init::Const(1.0))
            .unwrap();
        let b = vb
            .get_with_hints(1, "b", candle_nn::Init::Const(1.0))
            .unwrap();
        // Gradients 3·(1, 1) and 4: norm √(9 + 9 + 16) = √34.
        let loss = ((a.sum_all().unwrap() * 3.0).unwrap() + (b.sum_all().unwrap() * 4.0).unwrap())
            .unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_gradients(&mut grads, &vm, 1.0).unwrap();
        assert!((norm - 34f64.sqrt()).abs() < 1e-5);
        let ga = grads.get(&a).unwrap().to_vec1::<f32>().unwrap();
        let gb = grads.get(&b).unwrap().to_vec1::<f32>().unwrap();
        let clipped = (ga.iter().map(|v| v * v).sum::<f32>() + gb[0] * gb[0]).sqrt();
        assert!((clipped - 1.0).abs() < 1e-5, "{clipped}");
        assert!((ga[0] / gb[0] - 0.75).abs() < 1e-5, "direction kept");
        // Below the bound nothing changes.
        let mut grads = loss.backward().unwrap();
        clip_gradients(&mut grads, &vm, 10.0).unwrap();
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>().unwrap(), [4.0]);
    }

    // The policy's steps are DDPM posterior steps: on the fine levels of the coarse ones, the
    // coefficients equal the coarse schedule's posterior, and the initial σ its std.
    #[test]
    fn policy_steps_are_the_coarse_schedules_posterior() {
        let dev = Device::Cpu;
        let schedule = ScheduleConfig::ddaebm(5);
        let coarse = Schedule::new(schedule.clone()).unwrap();
        let vm = VarMap::new();
        let policy = GaussianPolicy::new(
            &NetworkConfig::toy(2),
            &schedule,
            &PolicyConfig { ddpm_steps: 1000 },
            VarBuilder::from_varmap(&vm, DType::F32, &dev).pp("sampler"),
        )
        .unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        for k in 0..5 {
            let c = policy.step(k);
            assert_eq!(c.from, (k + 1) * 200);
            assert!(rel(c.c_x_hat, coarse.post_c1[k]) < 1e-9, "c1[{k}]");
            assert!(rel(c.c_x, coarse.post_c2[k]) < 1e-9, "c2[{k}]");
            assert!(rel(c.var, coarse.post_var[k]) < 1e-9, "var[{k}]");
            assert!(
                rel(c.a, coarse.a_s_cum[k + 1]) < 1e-9 && rel(c.s, coarse.sigmas_cum[k + 1]) < 1e-9
            );
            let init = policy.initial_log_std()[k] as f64;
            assert!((init - 0.5 * coarse.post_logvar[k]).abs() < 1e-6);
        }
    }

    // The batched step (rows taking different steps, as the sampler update does) gives what
    // each row's own step gives.
    #[test]
    fn step_means_agree_with_single_steps() {
        let dev = Device::Cpu;
        let schedule = ScheduleConfig::ddaebm(4);
        let vm = VarMap::new();
        let policy = GaussianPolicy::new(
            &NetworkConfig::toy(3),
            &schedule,
            &PolicyConfig { ddpm_steps: 40 },
            VarBuilder::from_varmap(&vm, DType::F32, &dev).pp("sampler"),
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1.0, (8, 3), &dev).unwrap();
        let into = [0usize, 0, 1, 1, 2, 2, 3, 3];
        let batched = policy.step_means(&x, &into).unwrap();
        for (i, &k) in into.iter().enumerate() {
            let one = policy
                .step_mean(&x.narrow(0, i, 1).unwrap(), policy.step(k))
                .unwrap();
            let diff = (one - batched.narrow(0, i, 1).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "row {i}: {diff}");
        }
        assert!(policy.step_means(&x, &into[..7]).is_err());
    }
}
