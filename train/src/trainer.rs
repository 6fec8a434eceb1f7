//! One DDAEBM training iteration (`docs/method.md#training`), exactly:
//!
//! 1. **Energy step.** Real term `f(x_k, k)`, fake term `f(sg(x̃_k), k)` on the generator's
//!    posterior sample (weighted by `adversarial_weight`), and the R1 penalty
//!    `(γ/2)·mean‖∇_{x_k}[f(x_k,k) + log q(x_{k+1}|x_k)]‖²`. The gradient of `f` is a function of
//!    θ built from tensor operations (`ddaebm::energy::grad::log_density_ratio_and_input_grad`: the chain
//!    rule written out for the MLP, candle's backward pass with its graph kept,
//!    `CANDLE_GRAD_DO_NOT_DETACH`, for the convolutional network), so R1 back-propagates into θ:
//!    a real second-order gradient. `∇ log q` is closed form.
//!
//!    Three anchor terms that are not in the reference code make `f(·, k)` a usable density of
//!    level k on tabular data (see `bench/ood/README.md` for the measurements behind them):
//!    denoising score matching on the same gradient (`dsm_weight`), NCE against rows drawn from
//!    the energy's base measure (`nce_weight`; its Gaussian or mixture base, N(0, I) without one)
//!    and conditional NCE against the real
//!    rows perturbed by `τε`, τ log-uniform in `cnce_scale` (`cnce_weight`).
//! 2. **Generator + encoder step**, with the *updated* θ and the same `x̃_k` and `z`:
//!    `L_G = −mean[f(x̃_k,k) + log q(x_{k+1}|x̃_k)] + 0.1·NLL(z | q_ψ(x̃_k, x_{k+1})) +
//!    KL(q_ψ(x_k, x_{k+1}) ‖ N(0,I)) − mean log q(x_k | x_{k+1}, G(x_{k+1}, z_e))`.
//!    The reconstruction is the ELBO form of the reference toy code, not the MSE of the image
//!    code, which leaves the encoder unopposed (`docs/method.md#departures`).
//!
//! Adam with β = (0, 0.9) for both steps; optional EMA of the energy weights.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::sampler::{normal_tensor, sample_normalized};
use ddaebm::EnergyNet;
use ddaebm::{Generator, NetworkConfig, Schedule, ScheduleConfig};
use ddaebm::{Method, SamplerKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::encoder::Encoder;
use crate::levels::{LevelCoefficients, ScheduleTensors};
use crate::losses::{
    cnce_loss, dsm_loss, grad_log_forward, kl_to_standard_normal, latent_nll, log_forward,
    log_gaussian, nce_loss, r1_penalty,
};
pub use crate::method::{RngState, StepStats, TrainerState, TrainingMethod};
use crate::noise::BaseSampler;
use crate::optimizer::{Adam, AdamParams};
use ddaebm::energy::base::MixtureParams;
use ddaebm::energy::grad::log_density_ratio_and_input_grad;

/// Hyper-parameters of the training loop.
#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    /// Iterations of the joint phase: one energy step and one generator step each.
    pub steps: usize,
    /// Iterations of the generator-only phase after the joint one: the generator and encoder
    /// keep training against the finished, frozen energy (its EMA weights when `ema_decay` is
    /// set, else its last weights). The stored energy is the same as without this phase.
    /// `None`: `fit` picks [`default_generator_steps`] for the data (a [`Trainer`] built with
    /// `None` runs no such phase).
    pub generator_steps: Option<usize>,
    /// Peak Adam learning rate of the generator and encoder in the generator-only phase,
    /// decayed to 0 along a half cosine over the phase.
    pub lr_generator_phase: f64,
    pub batch_size: usize,
    pub lr_energy: f64,
    pub lr_generator: f64,
    /// γ of the R1 penalty.
    pub r1_gamma: f64,
    /// Weight of the adversarial term `mean(f(fake) − f(real))` in the energy loss (1 in the
    /// reference code).
    pub adversarial_weight: f64,
    /// Weight of denoising score matching on the real rows.
    pub dsm_weight: f64,
    /// Weight of NCE against rows drawn from the base measure.
    pub nce_weight: f64,
    /// Weight of conditional NCE against perturbed real rows.
    pub cnce_weight: f64,
    /// Range of the conditional-NCE perturbation scale τ (normalised units; log-uniform).
    pub cnce_scale: (f64, f64),
    /// Weight of the latent entropy surrogate (0.1 in the reference code).
    pub latent_weight: f64,
    /// Floor of the reconstruction log-variance (`ln 1e-2` in the toy code).
    pub rec_logvar_floor: f64,
    /// EMA decay of the weights stored in the model file (with the warm-up
    /// `min(decay, (1 + t) / (10 + t))` at step t); `None` stores the raw weights.
    /// Averaged: the energy network always; the generator of image models (as in the reference
    /// image code; on digits it halved the samples' MMD² to held-out digits without changing
    /// the energy). The MLP generator keeps its raw weights: its BatchNorm running statistics
    /// belong to them, and averaged weights with those statistics gave much worse samples.
    pub ema_decay: Option<f64>,
    pub seed: u64,
    pub schedule: ScheduleConfig,
}

/// Most generator-only iterations `fit` runs by default ([`default_generator_steps`]).
pub const DEFAULT_GENERATOR_STEPS: usize = 12_000;

/// Generator-only iterations per joint iteration by default: 12 000 after the default 3 000.
pub const GENERATOR_STEPS_PER_STEP: usize = 4;

/// Features up to which the generator-only phase gets all [`DEFAULT_GENERATOR_STEPS`]; wider
/// rows get proportionally fewer, so that the phase costs at most about as much as it does at
/// this width (a generator step's multiply-adds grow with the features).
pub const GENERATOR_PHASE_FEATURES: usize = 128;

/// Peak learning rate of the generator-only phase ([`TrainConfig::lr_generator_phase`]).
pub const DEFAULT_LR_GENERATOR_PHASE: f64 = 1e-2;

/// The generator-only iterations `fit` runs by default after `steps` joint iterations on rows
/// of `d` features: [`GENERATOR_STEPS_PER_STEP`] per joint iteration, at most
/// [`DEFAULT_GENERATOR_STEPS`], scaled by `min(1, GENERATOR_PHASE_FEATURES / d)`: 12 000 after
/// 3 000 joint iterations up to 128 features, 3 000 at 512, 1 500 at 1 024.
pub fn default_generator_steps(steps: usize, d: usize) -> usize {
    let steps = steps.saturating_mul(GENERATOR_STEPS_PER_STEP);
    steps.min(DEFAULT_GENERATOR_STEPS) * GENERATOR_PHASE_FEATURES / d.max(GENERATOR_PHASE_FEATURES)
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 3_000,
            generator_steps: None,
            lr_generator_phase: DEFAULT_LR_GENERATOR_PHASE,
            batch_size: 200,
            lr_energy: 2e-3,
            lr_generator: 1e-3,
            r1_gamma: 0.002,
            adversarial_weight: 0.0,
            dsm_weight: 1.0,
            nce_weight: 1.0,
            cnce_weight: 1.0,
            cnce_scale: (0.1, 1.0),
            latent_weight: 0.1,
            rec_logvar_floor: 1e-2f64.ln(),
            ema_decay: Some(0.9995),
            seed: 0,
            schedule: ScheduleConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The defaults for image models: batches of 64 (the reference CIFAR-10 batch; an iteration
    /// of the convolutional networks costs far more than one of the MLPs), 1500 iterations, and
    /// the reference adversarial term (the energy pushed down on generator samples), which on
    /// digits gave a better near-OOD ranking and better samples (`bench/digits/README.md`).
    pub fn image_default() -> Self {
        Self {
            steps: 1_500,
            // Not measured on images yet: their generator already trains against the
            // adversarial term, and a convolutional generator step is far costlier.
            generator_steps: Some(0),
            batch_size: 64,
            adversarial_weight: 1.0,
            ..Self::default()
        }
    }
}

impl TrainConfig {
    /// The shared settings of a GCD or DCD run on vector data (`crate::gcd`, `crate::dcd`):
    /// their own settings are in [`crate::gcd::GcdConfig`] and [`crate::dcd::DcdConfig`]; here
    /// the iteration count, batch and the 5-step schedule.
    pub fn gcd_default() -> Self {
        Self {
            steps: 2_000,
            generator_steps: Some(0),
            schedule: ScheduleConfig::ddaebm(5),
            ema_decay: None,
            ..Self::default()
        }
    }
}

/// Turns on candle's gradient-graph retention for this process and checks that it works on the
/// current thread: `d/dx Σ (d/dx x³)² = d/dx Σ 9x⁴ = 36 x³`.
pub fn enable_second_order_gradients() -> Result<()> {
    // candle reads the variable once per thread, the first time that thread runs a backward pass.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let x = Var::new(&[2f32], &Device::Cpu)?;
    let g = x.as_tensor().powf(3.0)?.sum_all()?.backward()?;
    let gx = g.get(x.as_tensor()).context("no first-order gradient")?;
    let g2 = gx.sqr()?.sum_all()?.backward()?;
    let second = g2
        .get(x.as_tensor())
        .map(|t| t.to_vec1::<f32>())
        .transpose()?
        .unwrap_or_default();
    if second != [36.0 * 8.0] {
        bail!(
            "second-order gradients are unavailable on this thread: a candle backward pass ran \
             before CANDLE_GRAD_DO_NOT_DETACH=1 was set; set it in the environment"
        );
    }
    Ok(())
}

/// A batch carried to its levels (see [`Trainer::step`]).
struct Diffused {
    /// The level of each row, on the host (the base sampler reads it) and as a tensor.
    level_list: Vec<u32>,
    levels: Tensor,
    c: LevelCoefficients,
    /// The noise of `x_k` (score matching's target).
    eps1: Tensor,
    x_k: Tensor,
    x_next: Tensor,
}

/// What the energy step hands to the generator step and the statistics.
struct EnergyStep {
    /// `f(x_k, k)` on the real rows, before the update.
    real: Tensor,
    r1: Tensor,
    loss: Tensor,
    /// The generator's posterior sample `x̃_k` and the latent it came from.
    x_fake: Tensor,
    z: Tensor,
    /// Mean `f` on `x̃_k` before the update, when the adversarial term computed it.
    f_fake_mean: Option<Tensor>,
}

/// The networks, optimisers and random stream of a training run.
pub struct Trainer {
    cfg: TrainConfig,
    network: NetworkConfig,
    device: Device,
    schedule: Schedule,
    levels: ScheduleTensors,
    energy_vars: VarMap,
    generator_vars: VarMap,
    energy: EnergyNet,
    /// The same weights as `energy`, detached: the generator step sees the updated θ without
    /// back-propagating into it.
    energy_frozen: EnergyNet,
    generator: Generator,
    encoder: Encoder,
    opt_energy: Adam,
    opt_generator: Adam,
    ema: Option<Ema>,
    rng: ChaCha8Rng,
    step: usize,
    /// Draws NCE rows from the mixture base measure, once it is set.
    base_sampler: Option<BaseSampler>,
    /// The finished energy the generator-only phase trains against (built at its first step
    /// from the stored weights).
    phase_energy: Option<EnergyNet>,
}

struct Ema {
    decay: f64,
    /// (name, live variable, running average)
    entries: Vec<(String, Var, Tensor)>,
}

pub(crate) fn adam(vars: Vec<(String, Var)>, lr: f64) -> Result<Adam> {
    let params = AdamParams {
        lr,
        beta1: 0.0,
        beta2: 0.9,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    Adam::new(vars, params)
}

/// A copy of `var`'s current value that records no gradient graph (`copy` of a variable
/// records one, and every tensor computed from it would then track its operations).
fn snapshot(var: &Var) -> Result<Tensor> {
    Ok(var.as_tensor().detach().copy()?)
}

/// Re-draws every linear and convolution layer's weight and bias from `rng` with PyTorch's
/// default initialisation (uniform in ±1/√fan_in, fan_in = inputs × kernel area), in name
/// order: candle's CPU generator cannot be seeded, and training must be reproducible from
/// `--seed`.
pub(crate) fn reinit_linear_layers(vm: &VarMap, rng: &mut ChaCha8Rng) -> Result<()> {
    let data = vm.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().filter(|n| n.ends_with(".weight")).collect();
    names.sort();
    for name in names {
        let weight = &data[name.as_str()];
        let dims = weight.dims().to_vec();
        if dims.len() < 2 {
            continue; // PReLU slopes and normalisation scales keep their constant init.
        }
        let out_dim = dims[0];
        let fan_in: usize = dims[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let w = Tensor::from_vec(draw(out_dim * fan_in), dims, weight.device())?;
        weight.set(&w.to_dtype(weight.dtype())?)?;
        let bias_name = format!("{}bias", name.trim_end_matches("weight"));
        if let Some(bias) = data.get(&bias_name) {
            let b = Tensor::from_vec(draw(out_dim), out_dim, bias.device())?;
            bias.set(&b.to_dtype(bias.dtype())?)?;
        }
    }
    Ok(())
}

/// The variables of `vm` whose names pass `keep`, sorted by name (an optimiser's fixed order).
pub(crate) fn sorted_vars(vm: &VarMap, keep: impl Fn(&str) -> bool) -> Vec<(String, Var)> {
    let data = vm.data().lock().expect("var map lock");
    let mut v: Vec<(String, Var)> = data
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Detached copies ([`snapshot`]) of every variable of `maps`, sorted by name: what a model file
/// or a checkpoint holds. A model built from them records no gradient graph (which would keep
/// every intermediate of a long sampling chain alive).
pub(crate) fn snapshot_all(maps: &[&VarMap]) -> Result<Vec<(String, Tensor)>> {
    let mut vars = vec![];
    for vm in maps {
        for (n, v) in vm.data().lock().expect("var map lock").iter() {
            vars.push((n.clone(), snapshot(v)?));
        }
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// The energy network on `energy_vars`' weights, detached: it differentiates with respect to
/// its input only, and sees every update since a detached tensor shares its variable's
/// storage.
pub(crate) fn detached_energy(
    network: &NetworkConfig,
    levels: usize,
    energy_vars: &VarMap,
    device: &Device,
) -> Result<EnergyNet> {
    let frozen: HashMap<String, Tensor> = energy_vars
        .data()
        .lock()
        .expect("var map lock")
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect();
    Ok(EnergyNet::new(
        network,
        levels,
        VarBuilder::from_tensors(frozen, DType::F32, device).pp("energy"),
    )?)
}

/// A scalar tensor's value as f32 (for step statistics).
pub(crate) fn scalar(t: &Tensor) -> Result<f32> {
    Ok(t.to_dtype(DType::F32)?.to_scalar()?)
}

/// Names of the mixture base measure's tensors: set once from the data, never trained.
pub(crate) fn is_base_measure(name: &str) -> bool {
    name.starts_with("energy.base.")
}

/// Sets the mixture base measure's tensors (`energy.base.*` in `energy_vars`) to `params`:
/// `network.base_components` components carried to each of `levels` levels. Shared by every
/// training method whose energy has a mixture base.
pub(crate) fn set_mixture_base(
    energy_vars: &VarMap,
    network: &NetworkConfig,
    levels: usize,
    params: &MixtureParams,
    device: &Device,
) -> Result<()> {
    let k = network.base_components;
    let d = network.input_dim;
    if k == 0 || params.log_weights.len() != k || params.means.len() != levels * k * d {
        bail!("the base measure does not match the network ({k} components)");
    }
    let values = [
        (
            "energy.base.log_weights",
            Tensor::from_slice(&params.log_weights, k, device)?,
        ),
        (
            "energy.base.means",
            Tensor::from_slice(&params.means, (levels, k, d), device)?,
        ),
        (
            "energy.base.variances",
            Tensor::from_slice(&params.variances, (levels, k, d), device)?,
        ),
    ];
    let data = energy_vars.data().lock().expect("var map lock");
    for (name, value) in &values {
        data.get(*name)
            .with_context(|| format!("the energy network has no {name}"))?
            .set(value)?;
    }
    Ok(())
}

/// Pairs every variable of `maps` with its saved value, checking names, shapes and that the
/// checkpoint holds nothing else, before anything is changed. Shared by every training
/// method's restore.
pub(crate) fn match_saved_vars(
    maps: &[&VarMap],
    saved: &HashMap<&str, &Tensor>,
) -> Result<Vec<(Var, Tensor)>> {
    let mut targets = vec![];
    for vm in maps {
        for (n, v) in vm.data().lock().expect("var map lock").iter() {
            let t = saved
                .get(n.as_str())
                .with_context(|| format!("the checkpoint has no variable {n}"))?;
            if t.shape() != v.shape() {
                bail!(
                    "checkpoint variable {n} has shape {:?}, the network needs {:?}",
                    t.dims(),
                    v.dims()
                );
            }
            targets.push((v.clone(), (*t).clone()));
        }
    }
    if targets.len() != saved.len() {
        bail!(
            "the checkpoint holds {} variables, the networks {}",
            saved.len(),
            targets.len()
        );
    }
    Ok(targets)
}

fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

impl Trainer {
    pub fn new(cfg: TrainConfig, network: NetworkConfig, device: &Device) -> Result<Self> {
        network.validate()?;
        if network.image.is_some() {
            // The convolutional energy's input gradient comes from candle's backward pass; the
            // MLP's is written out and needs no retained backward graph.
            enable_second_order_gradients()?;
        }
        if cfg.batch_size < 2 {
            bail!("batch size must be at least 2 (BatchNorm needs batch statistics)");
        }
        let weights = [
            ("adversarial", cfg.adversarial_weight),
            ("dsm", cfg.dsm_weight),
            ("nce", cfg.nce_weight),
            ("cnce", cfg.cnce_weight),
        ];
        if let Some((name, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
            bail!("the {name} weight must be finite and >= 0, got {w}");
        }
        let (lo, hi) = cfg.cnce_scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo) {
            bail!("the conditional-NCE scale range must satisfy 0 < lo <= hi, got ({lo}, {hi})");
        }
        let schedule = Schedule::new(cfg.schedule.clone())?;
        let levels = ScheduleTensors::new(&schedule, cfg.rec_logvar_floor, device)?;
        let t = schedule.num_timesteps();
        let energy_vars = VarMap::new();
        let energy = EnergyNet::new(
            &network,
            t,
            VarBuilder::from_varmap(&energy_vars, DType::F32, device).pp("energy"),
        )?;
        let generator_vars = VarMap::new();
        let gvb = VarBuilder::from_varmap(&generator_vars, DType::F32, device);
        let generator = Generator::new(&network, t, gvb.pp("generator"))?;
        let encoder = Encoder::new(&network, t, gvb.pp("encoder"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5EED_DDAE_B000_0001);
        reinit_linear_layers(&energy_vars, &mut rng)?;
        reinit_linear_layers(&generator_vars, &mut rng)?;
        let energy_frozen = detached_energy(&network, t, &energy_vars, device)?;
        let trainable =
            |vm: &VarMap| sorted_vars(vm, |n| !is_running_stat(n) && !is_base_measure(n));
        let opt_energy = adam(trainable(&energy_vars), cfg.lr_energy)?;
        let opt_generator = adam(trainable(&generator_vars), cfg.lr_generator)?;
        let ema = match cfg.ema_decay {
            None => None,
            Some(decay) => {
                let mut entries = vec![];
                for (n, v) in energy_vars.data().lock().expect("var map lock").iter() {
                    entries.push((n.clone(), v.clone(), snapshot(v)?));
                }
                // The image generator has GroupNorm only (no running statistics): averaged too.
                if network.image.is_some() {
                    let data = generator_vars.data().lock().expect("var map lock");
                    for (n, v) in data.iter().filter(|(n, _)| n.starts_with("generator.")) {
                        entries.push((n.clone(), v.clone(), snapshot(v)?));
                    }
                }
                Some(Ema { decay, entries })
            }
        };
        Ok(Self {
            cfg,
            network,
            device: device.clone(),
            schedule,
            levels,
            energy_vars,
            generator_vars,
            energy,
            energy_frozen,
            generator,
            encoder,
            opt_energy,
            opt_generator,
            ema,
            rng,
            step: 0,
            base_sampler: None,
            phase_energy: None,
        })
    }

    /// Sets the mixture base measure (`network.base_components` components, fitted to the
    /// normalised training rows and carried to every level). Required before training when the
    /// network has one: the base tensors are fitted, never trained.
    pub fn set_base_measure(&mut self, params: &MixtureParams) -> Result<()> {
        set_mixture_base(
            &self.energy_vars,
            &self.network,
            self.schedule.num_timesteps(),
            params,
            &self.device,
        )?;
        if let Some(ema) = &mut self.ema {
            for (n, var, avg) in ema.entries.iter_mut() {
                if is_base_measure(n) {
                    *avg = snapshot(var)?;
                }
            }
        }
        let (t, d) = (self.schedule.num_timesteps(), self.network.input_dim);
        self.base_sampler = Some(BaseSampler::new(params, t, d, &self.device)?);
        Ok(())
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    pub fn network(&self) -> &NetworkConfig {
        &self.network
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn energy(&self) -> &EnergyNet {
        &self.energy
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn normal(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        Ok(normal_tensor(&mut self.rng, rows, cols, &self.device)?)
    }

    /// Iterations of the whole run: the joint phase and the generator-only phase.
    pub fn total_steps(&self) -> usize {
        self.cfg.steps + self.generator_steps()
    }

    /// Iterations of the generator-only phase (`None` in the configuration: none).
    pub fn generator_steps(&self) -> usize {
        self.cfg.generator_steps.unwrap_or(0)
    }

    /// One iteration on a batch of normalised rows `(B, d)`: an energy step and a
    /// generator+encoder step in the joint phase (the first `steps`), a generator+encoder step
    /// against the frozen energy after it.
    pub fn step(&mut self, x: &Tensor) -> Result<StepStats> {
        if self.network.base_components > 0 && self.base_sampler.is_none() {
            bail!("the mixture base measure must be set (set_base_measure) before training");
        }
        if self.step >= self.cfg.steps {
            return self.generator_only_step(x);
        }
        let pair = self.diffuse(x)?;
        let energy = self.energy_step(&pair)?;
        let (loss_generator, f_fake_mean) = self.generator_step(
            &pair,
            &energy.x_fake,
            &energy.z,
            energy.f_fake_mean.as_ref(),
        )?;
        self.update_ema()?;
        self.step += 1;
        Ok(StepStats {
            loss_energy: scalar(&energy.loss)?,
            loss_generator: scalar(&loss_generator)?,
            r1: scalar(&energy.r1)?,
            loss_value: 0.0,
            f_real: scalar(&energy.real.mean_all()?)?,
            f_fake: scalar(&f_fake_mean)?,
        })
    }

    /// A generator+encoder step against the finished energy: the same posterior sample and
    /// loss as in the joint phase, the energy's weights untouched. The energy terms of the
    /// statistics are zero (no energy step ran).
    fn generator_only_step(&mut self, x: &Tensor) -> Result<StepStats> {
        if self.phase_energy.is_none() {
            self.phase_energy = Some(self.finished_energy()?);
        }
        let pair = self.diffuse(x)?;
        let (z, x_fake) = self.posterior_sample(&pair)?;
        // Cosine decay from the phase's peak rate to 0: a function of the step alone, so a
        // resumed run sets the same rate.
        let phase = self.generator_steps().max(1) as f64;
        let frac = (self.step - self.cfg.steps) as f64 / phase;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
        self.opt_generator
            .set_lr(self.cfg.lr_generator_phase * cosine);
        let (loss_generator, f_fake_mean) = self.generator_step(&pair, &x_fake, &z, None)?;
        self.update_ema()?;
        self.step += 1;
        Ok(StepStats {
            loss_energy: 0.0,
            loss_generator: scalar(&loss_generator)?,
            r1: 0.0,
            loss_value: 0.0,
            f_real: 0.0,
            f_fake: scalar(&f_fake_mean)?,
        })
    }

    /// The generator's posterior sample `x̃_k = post_mean(G(x_{k+1}, z, k), x_{k+1}) + post_std·ε`
    /// of the batch's levels, with the latent `z` it came from (drawn in this order: z, ε).
    fn posterior_sample(&mut self, p: &Diffused) -> Result<(Tensor, Tensor)> {
        let (b, d) = p.x_k.dims2()?;
        let z = self.normal(b, self.network.latent_dim)?;
        let x_hat = self.generator.forward_t(&p.x_next, &z, &p.levels, true)?;
        let noise = self.normal(b, d)?;
        let x_fake =
            (p.c.posterior_mean(&x_hat, &p.x_next)? + noise.broadcast_mul(&p.c.post_std)?)?;
        Ok((z, x_fake))
    }

    /// The energy as it will be stored (EMA weights when enabled), detached: what the
    /// generator-only phase trains against.
    fn finished_energy(&self) -> Result<EnergyNet> {
        let mut weights: HashMap<String, Tensor> = HashMap::new();
        for (n, v) in self.energy_vars.data().lock().expect("var map lock").iter() {
            weights.insert(n.clone(), v.as_tensor().detach());
        }
        if let Some(ema) = &self.ema {
            for (n, _, avg) in ema
                .entries
                .iter()
                .filter(|(n, _, _)| n.starts_with("energy."))
            {
                weights.insert(n.clone(), avg.detach());
            }
        }
        Ok(EnergyNet::new(
            &self.network,
            self.schedule.num_timesteps(),
            VarBuilder::from_tensors(weights, DType::F32, &self.device).pp("energy"),
        )?)
    }

    /// Draws a level per row and the forward pair `(x_k, x_{k+1})` of the batch.
    fn diffuse(&mut self, x: &Tensor) -> Result<Diffused> {
        let (b, d) = x.dims2()?;
        let t = self.schedule.num_timesteps() as u32;
        let level_list: Vec<u32> = (0..b).map(|_| self.rng.random_range(0..t)).collect();
        let levels = Tensor::from_vec(level_list.clone(), b, &self.device)?;
        let c = self.levels.gather(&levels)?;
        let (eps1, eps2) = (self.normal(b, d)?, self.normal(b, d)?);
        let (x_k, x_next) = c.forward_pair(x, &eps1, &eps2)?;
        Ok(Diffused {
            level_list,
            levels,
            c,
            eps1,
            x_k,
            x_next,
        })
    }

    /// The energy step: R1 plus the enabled anchor and adversarial terms on the real pair and
    /// the generator's posterior sample `x̃_k`, then one Adam step on θ.
    fn energy_step(&mut self, p: &Diffused) -> Result<EnergyStep> {
        let (b, d) = p.x_k.dims2()?;
        let (c, levels, x_k, x_next) = (&p.c, &p.levels, &p.x_k, &p.x_next);
        // One pass gives f (real term, conditional NCE), g (NCE) and ∇ₓf (R1, score matching),
        // the gradient as a function of θ.
        let (real, g_real, grad_f) = log_density_ratio_and_input_grad(&self.energy, x_k, levels)?;
        let (z, x_fake) = self.posterior_sample(p)?;
        let grad_u = (&grad_f + grad_log_forward(x_k, x_next, &c.a_next, &c.sigma_next)?)?;
        let r1 = r1_penalty(&grad_u, self.cfg.r1_gamma)?;
        let mut loss_energy = r1.clone();
        // The energy of the fake rows enters this step only through the adversarial term; with
        // it off, the f_fake statistic comes from the generator step's pass instead.
        let mut f_fake_mean = None;
        if self.cfg.adversarial_weight > 0.0 {
            let fake = self.energy.log_density(&x_fake.detach(), levels)?;
            f_fake_mean = Some(fake.mean_all()?);
            let adv = (&fake - &real)?.mean_all()?;
            loss_energy = (loss_energy + (adv * self.cfg.adversarial_weight)?)?;
        }
        if self.cfg.dsm_weight > 0.0 {
            let dsm = dsm_loss(&grad_f, &p.eps1, &c.sigmas_cum)?;
            loss_energy = (loss_energy + (dsm * self.cfg.dsm_weight)?)?;
        }
        if self.cfg.nce_weight > 0.0 {
            let eps = self.normal(b, d)?;
            let noise_rows = match &self.base_sampler {
                // NCE against the base measure itself: its logit is g, the log-ratio.
                Some(sampler) => sampler.sample(&p.level_list, &eps, &mut self.rng)?,
                None => {
                    let std = match self.network.base_std {
                        s if s > 0.0 => f64::from(s),
                        _ => 1.0,
                    };
                    (eps * std)?
                }
            };
            let g_noise = self.energy.log_ratio(&noise_rows, levels)?;
            let nce = nce_loss(&g_real, &g_noise)?;
            loss_energy = (loss_energy + (nce * self.cfg.nce_weight)?)?;
        }
        if self.cfg.cnce_weight > 0.0 {
            let (lo, hi) = self.cfg.cnce_scale;
            let taus: Vec<f32> = (0..b)
                .map(|_| {
                    (lo.ln() + self.rng.random_range(0.0..=1.0f64) * (hi / lo).ln()).exp() as f32
                })
                .collect();
            let taus = Tensor::from_vec(taus, (b, 1), &self.device)?;
            let perturbed = (x_k + self.normal(b, d)?.broadcast_mul(&taus)?)?;
            let f_perturbed = self.energy.log_density(&perturbed, levels)?;
            let cnce = cnce_loss(&real, &f_perturbed)?;
            loss_energy = (loss_energy + (cnce * self.cfg.cnce_weight)?)?;
        }
        self.opt_energy.backward_step(&loss_energy)?;
        Ok(EnergyStep {
            real,
            r1,
            loss: loss_energy,
            x_fake,
            z,
            f_fake_mean,
        })
    }

    /// The generator + encoder step with the updated θ (the finished energy in the
    /// generator-only phase), the posterior sample `x̃_k` and the latent `z` it came from:
    /// reward `f(x̃_k) + log q(x_{k+1} | x̃_k)`, latent entropy surrogate, KL of the encoder and
    /// the reconstruction of `x_k`, then one Adam step on φ and ψ. Returns the loss and the
    /// mean `f` on the fake rows (`f_fake_before`, when the energy step computed it).
    fn generator_step(
        &mut self,
        p: &Diffused,
        x_fake: &Tensor,
        z: &Tensor,
        f_fake_before: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (b, _) = p.x_k.dims2()?;
        let nz = self.network.latent_dim;
        let (c, levels, x_k, x_next) = (&p.c, &p.levels, &p.x_k, &p.x_next);
        let energy = self.phase_energy.as_ref().unwrap_or(&self.energy_frozen);
        let f_fake = energy.log_density(x_fake, levels)?;
        let f_fake_mean = match f_fake_before {
            Some(before_update) => before_update.clone(),
            None => f_fake.detach().mean_all()?,
        };
        let reward =
            (f_fake + log_forward(x_fake, x_next, &c.a_next, &c.sigma_next)?)?.mean_all()?;
        let (mu_g, lv_g) = self.encoder.forward_t(x_fake, x_next, levels, true)?;
        let l_lat = (latent_nll(z, &mu_g, &lv_g)?.mean_all()? * self.cfg.latent_weight)?;
        let (mu_e, lv_e) = self.encoder.forward_t(x_k, x_next, levels, true)?;
        let l_kl = kl_to_standard_normal(&mu_e, &lv_e)?.mean_all()?;
        let z_e = (&mu_e + (lv_e * 0.5)?.exp()?.mul(&self.normal(b, nz)?)?)?;
        let x_hat_e = self.generator.forward_t(x_next, &z_e, levels, true)?;
        let rec_mean = c.posterior_mean(&x_hat_e, x_next)?;
        let l_rec = log_gaussian(x_k, &rec_mean, &c.rec_logvar)?
            .mean_all()?
            .neg()?;
        let loss_generator = (((l_lat + l_kl)? + l_rec)? - &reward)?;
        self.opt_generator.backward_step(&loss_generator)?;
        Ok((loss_generator, f_fake_mean))
    }

    /// Moves the exponential moving averages of the stored weights towards the current ones.
    fn update_ema(&mut self) -> Result<()> {
        if let Some(ema) = &mut self.ema {
            // Warm-up: a short run must not store weights dominated by their initial values.
            let decay = ema
                .decay
                .min((1.0 + self.step as f64) / (10.0 + self.step as f64));
            // After the joint phase the energy no longer changes, and neither does its average.
            let joint = self.step < self.cfg.steps;
            for (_, var, avg) in ema
                .entries
                .iter_mut()
                .filter(|(n, _, _)| joint || !n.starts_with("energy."))
            {
                let p = var.as_tensor().detach();
                // Detached, so that the new average does not keep the previous one (and its
                // graph) alive: a chain of every step's averages would grow the process every
                // step.
                *avg = ((&*avg * decay)? + (p * (1.0 - decay))?)?.detach();
            }
        }
        Ok(())
    }

    /// The tensors the core library needs (`energy.*`, `generator.*`), with EMA weights when
    /// enabled and the BatchNorm running statistics as trained. Sorted by name.
    pub fn export_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: HashMap<String, Tensor> = HashMap::new();
        for vm in [&self.energy_vars, &self.generator_vars] {
            for (n, v) in vm.data().lock().expect("var map lock").iter() {
                if !n.starts_with("encoder.") {
                    out.insert(n.clone(), v.as_tensor().detach().copy()?);
                }
            }
        }
        if let Some(ema) = &self.ema {
            for (n, _, avg) in &ema.entries {
                out.insert(n.clone(), avg.copy()?);
            }
        }
        let mut out: Vec<(String, Tensor)> = out.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Everything a resumed run needs to continue exactly where this one is: every variable
    /// (energy, generator, encoder, BatchNorm statistics), the EMA, both optimisers and the
    /// random stream.
    pub fn state(&self) -> Result<TrainerState> {
        let vars = snapshot_all(&[&self.energy_vars, &self.generator_vars])?;
        let mut ema = vec![];
        if let Some(e) = &self.ema {
            for (n, _, avg) in &e.entries {
                ema.push((n.clone(), avg.copy()?));
            }
        }
        ema.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(TrainerState {
            step: self.step,
            rng: RngState::of(&self.rng),
            vars,
            ema,
            opt_energy: self.opt_energy.state()?,
            opt_generator: self.opt_generator.state()?,
        })
    }

    /// Continues from a [`Trainer::state`] of a trainer built with the same configuration.
    /// Checks every name and shape before changing anything.
    pub fn restore(&mut self, state: TrainerState) -> Result<()> {
        let saved: HashMap<&str, &Tensor> =
            state.vars.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let targets = match_saved_vars(&[&self.energy_vars, &self.generator_vars], &saved)?;
        let ema_saved: HashMap<&str, &Tensor> =
            state.ema.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let ema_matches = match &self.ema {
            Some(e) => {
                ema_saved.len() == e.entries.len()
                    && e.entries.iter().all(|(n, var, _)| {
                        ema_saved.get(n.as_str()).map(|t| t.shape()) == Some(var.shape())
                    })
            }
            None => ema_saved.is_empty(),
        };
        if !ema_matches {
            bail!("the checkpoint's EMA weights do not match this run's energy network and EMA");
        }
        self.opt_energy.check(&state.opt_energy)?;
        self.opt_generator.check(&state.opt_generator)?;
        self.opt_energy.restore(state.opt_energy)?;
        self.opt_generator.restore(state.opt_generator)?;
        for (var, t) in targets {
            var.set(&t.to_device(&self.device)?.to_dtype(var.dtype())?)?;
        }
        if let Some(e) = &mut self.ema {
            for (n, var, avg) in e.entries.iter_mut() {
                *avg = ema_saved[n.as_str()]
                    .to_device(&self.device)?
                    .to_dtype(var.dtype())?;
            }
        }
        self.rng = state.rng.restore();
        // Rebuilt from the restored weights at the next generator-only step.
        self.phase_energy = None;
        self.step = state.step;
        Ok(())
    }
}

impl TrainingMethod for Trainer {
    fn method(&self) -> Method {
        Method::Ddaebm
    }

    fn sampler(&self) -> SamplerKind {
        SamplerKind::Generator
    }

    fn schedule(&self) -> &Schedule {
        Trainer::schedule(self)
    }

    fn total_steps(&self) -> usize {
        Trainer::total_steps(self)
    }

    fn set_base_measure(&mut self, params: &MixtureParams) -> Result<()> {
        Trainer::set_base_measure(self, params)
    }

    fn steps_done(&self) -> usize {
        Trainer::steps_done(self)
    }

    fn rng(&mut self) -> &mut ChaCha8Rng {
        Trainer::rng(self)
    }

    fn step(&mut self, batch: &Tensor) -> Result<StepStats> {
        Trainer::step(self, batch)
    }

    fn sample_normalized(
        &self,
        n: usize,
        dim: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        Ok(sample_normalized(
            &self.generator,
            &self.schedule,
            n,
            dim,
            seed,
            device,
        )?)
    }

    fn export_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        Trainer::export_tensors(self)
    }

    fn state(&self) -> Result<TrainerState> {
        Trainer::state(self)
    }

    fn restore(&mut self, state: TrainerState) -> Result<()> {
        Trainer::restore(self, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddaebm::ImageConfig;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = a.sub(b).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn second_order_gradients_are_enabled() {
        enable_second_order_gradients().unwrap();
    }

    /// The R1 gradient with respect to θ, from the backward pass through the written-out input
    /// gradient, agrees with central finite differences of the R1 value itself, for every kind
    /// of parameter (weights, biases, PReLU slopes, the t-branch), with and without the soft
    /// clip and the Gaussian base. In f64 with a small step: R1 is only piecewise smooth (PReLU
    /// kinks), so a large step could straddle a kink.
    #[test]
    fn r1_second_order_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.3f64, -0.7, 1.1], [-0.2, 0.5, 0.9]], &dev).unwrap();
        let names = [
            "energy.head.linear0.weight",
            "energy.head.linear0.bias",
            "energy.head.linear1.weight",
            "energy.head.act0.weight",
            "energy.x_branch.linear0.weight",
            "energy.x_branch.linear1.bias",
            "energy.x_branch.act0.weight",
            "energy.t_branch.linear0.weight",
        ];
        for (clip, base_std) in [(0.0, 0.0), (1.5, 2.0)] {
            let mut cfg = NetworkConfig::toy(3);
            cfg.head_widths = vec![8];
            cfg.branch_widths = vec![4, 4];
            cfg.input_soft_clip = clip;
            cfg.base_std = base_std;
            check_r1_second_order(&cfg, &x, &names);
        }
    }

    /// The same check through the convolutional energy network (convolutions, pooling,
    /// GroupNorm and SiLU must all be differentiated twice).
    #[test]
    fn r1_second_order_gradient_matches_finite_differences_for_images() {
        let dev = Device::Cpu;
        let mut image = ImageConfig::for_shape(1, 4, 4, [0.0, 1.0]);
        image.channel_mult = vec![1, 2];
        image.base_channels = 4;
        image.groups = 2;
        let mut cfg = NetworkConfig::toy(16);
        cfg.image = Some(image);
        cfg.base_std = 1.0;
        let x = Tensor::randn(0f64, 1.0, (2, 16), &dev).unwrap();
        let names = [
            "energy.input.weight",
            "energy.stage0.0.conv2.weight",
            "energy.stage1.0.conv1.weight",
            "energy.stage1.0.skip.weight",
            "energy.head.weight",
        ];
        check_r1_second_order(&cfg, &x, &names);
    }

    /// Checks ∂R1/∂θ from the double backward pass against central finite differences for a
    /// few entries of each named parameter.
    fn check_r1_second_order(cfg: &NetworkConfig, x: &Tensor, names: &[&str]) {
        enable_second_order_gradients().unwrap();
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let e = EnergyNet::new(
            cfg,
            4,
            VarBuilder::from_varmap(&vm, DType::F64, &dev).pp("energy"),
        )
        .unwrap();
        reinit_linear_layers(&vm, &mut ChaCha8Rng::seed_from_u64(11)).unwrap();
        let x = x.clone();
        let levels = Tensor::new(&[0u32, 2], &dev).unwrap();
        let r1_of = || -> Tensor {
            let (_, _, g) = log_density_ratio_and_input_grad(&e, &x, &levels).unwrap();
            r1_penalty(&g, 2.0).unwrap()
        };
        let r1 = r1_of();
        let grads = r1.backward().unwrap();
        let data = vm.data().lock().unwrap();
        let mut checked = 0;
        for &name in names {
            let var = &data[name];
            // No gradient at all means 0: with PReLUs, ∇ₓf depends on biases and the t-branch
            // only through the activation masks, so R1 is locally constant in them (and the
            // finite differences must say so).
            let analytic = match grads.get(var.as_tensor()) {
                Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                None => vec![0.0; var.elem_count()],
            };
            let base = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for i in [0usize, 3, 7].into_iter().filter(|&i| i < base.len()) {
                let h = 1e-6;
                let eval = |delta: f64| -> f64 {
                    let mut w = base.clone();
                    w[i] += delta;
                    var.set(&Tensor::from_vec(w, var.shape(), &dev).unwrap())
                        .unwrap();
                    r1_of().to_scalar::<f64>().unwrap()
                };
                let numeric = (eval(h) - eval(-h)) / (2.0 * h);
                eval(0.0);
                let a = analytic[i];
                assert!(
                    (a - numeric).abs() <= 1e-5 * numeric.abs().max(1e-3),
                    "{name}[{i}]: autodiff {a} vs finite differences {numeric}"
                );
                if a.abs() > 1e-4 {
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= names.len(),
            "too few non-zero second-order gradients checked"
        );
    }

    #[test]
    fn a_step_updates_both_networks_and_is_finite() {
        let dev = Device::Cpu;
        let cfg = TrainConfig {
            batch_size: 16,
            ema_decay: Some(0.9),
            ..Default::default()
        };
        let mut tr = Trainer::new(cfg, NetworkConfig::toy(2), &dev).unwrap();
        let before = tr.export_tensors().unwrap();
        let x = Tensor::randn(0f32, 1., (16, 2), &dev).unwrap();
        for _ in 0..3 {
            let s = tr.step(&x).unwrap();
            for v in [s.loss_energy, s.loss_generator, s.r1, s.f_real, s.f_fake] {
                assert!(v.is_finite(), "{s:?}");
            }
            assert!(s.r1 > 0.0);
        }
        let after = tr.export_tensors().unwrap();
        let changed = |prefix: &str| {
            before
                .iter()
                .zip(&after)
                .any(|((n, a), (_, b))| n.starts_with(prefix) && max_abs_diff(a, b) > 0.0)
        };
        assert!(changed("energy.") && changed("generator."));
        assert!(after.iter().all(|(n, _)| !n.starts_with("encoder.")));
        // The frozen copy follows the updated energy weights.
        let k = Tensor::new(&[0u32, 1, 2, 3], &dev).unwrap();
        let xs = Tensor::randn(0f32, 1., (4, 2), &dev).unwrap();
        let a = tr
            .energy
            .log_density(&xs, &k)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = tr
            .energy_frozen
            .log_density(&xs, &k)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn the_generator_only_phase_trains_the_sampler_and_keeps_the_stored_energy() {
        let dev = Device::Cpu;
        let cfg = |generator_steps| TrainConfig {
            steps: 4,
            generator_steps: Some(generator_steps),
            batch_size: 16,
            ema_decay: Some(0.9),
            ..Default::default()
        };
        let x = Tensor::randn(0f32, 1., (16, 2), &dev).unwrap();
        let run = |tr: &mut Trainer, n: usize| {
            for _ in 0..n {
                tr.step(&x).unwrap();
            }
        };
        let part = |t: &[(String, Tensor)], prefix: &str| -> Vec<(String, Vec<f32>)> {
            t.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(n, v)| (n.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
                .collect()
        };
        let mut joint_only = Trainer::new(cfg(0), NetworkConfig::toy(2), &dev).unwrap();
        assert_eq!(joint_only.total_steps(), 4);
        run(&mut joint_only, 4);
        let mut tr = Trainer::new(cfg(6), NetworkConfig::toy(2), &dev).unwrap();
        assert_eq!(tr.total_steps(), 10);
        run(&mut tr, 4);
        let after_joint = tr.export_tensors().unwrap();
        // The same joint phase, whatever follows it.
        assert_eq!(
            part(&after_joint, ""),
            part(&joint_only.export_tensors().unwrap(), "")
        );
        let halfway = tr.state().unwrap();
        for _ in 0..6 {
            let s = tr.step(&x).unwrap();
            assert_eq!((s.loss_energy, s.r1), (0.0, 0.0), "{s:?}");
            assert!(
                s.loss_generator.is_finite() && s.f_fake.is_finite(),
                "{s:?}"
            );
        }
        let done = tr.export_tensors().unwrap();
        // The stored (EMA) energy is untouched, and so are the live energy weights; the
        // generator moved.
        assert_eq!(part(&done, "energy."), part(&after_joint, "energy."));
        assert_eq!(
            part(&snapshot_all(&[&tr.energy_vars]).unwrap(), "energy."),
            part(
                &snapshot_all(&[&joint_only.energy_vars]).unwrap(),
                "energy."
            )
        );
        assert_ne!(part(&done, "generator."), part(&after_joint, "generator."));
        // It trains against the stored energy: the EMA weights, not the last ones.
        let k = Tensor::new(&[0u32, 1, 2, 3], &dev).unwrap();
        let xs = Tensor::randn(0f32, 1., (4, 2), &dev).unwrap();
        let f = |e: &EnergyNet| -> Vec<f32> { e.log_density(&xs, &k).unwrap().to_vec1().unwrap() };
        let stored: HashMap<String, Tensor> = done.iter().cloned().collect();
        let stored = EnergyNet::new(
            &tr.network,
            tr.schedule.num_timesteps(),
            VarBuilder::from_tensors(stored, DType::F32, &dev).pp("energy"),
        )
        .unwrap();
        let phase = tr.phase_energy.as_ref().unwrap();
        assert_eq!(f(phase), f(&stored));
        assert_ne!(f(phase), f(&tr.energy));
        // The learning rate decays to 0 along the half cosine: at the last step it is
        // peak · (1 + cos(5π/6)) / 2.
        let expected =
            tr.cfg.lr_generator_phase * 0.5 * (1.0 + (5.0 * std::f64::consts::PI / 6.0).cos());
        assert!((tr.opt_generator.lr() - expected).abs() < 1e-15);
        // Resumed from the end of the joint phase, the phase ends where it ended.
        let mut resumed = Trainer::new(cfg(6), NetworkConfig::toy(2), &dev).unwrap();
        resumed.restore(halfway).unwrap();
        run(&mut resumed, 6);
        assert_eq!(
            part(&resumed.export_tensors().unwrap(), ""),
            part(&done, "")
        );
    }

    #[test]
    fn ema_averages_the_energy_weights_only() {
        let dev = Device::Cpu;
        let cfg = TrainConfig {
            batch_size: 8,
            ema_decay: Some(0.9),
            ..Default::default()
        };
        let mut tr = Trainer::new(cfg, NetworkConfig::toy(2), &dev).unwrap();
        let name = "energy.head.linear0.weight";
        let raw = |tr: &Trainer, n: &str| {
            tr.energy_vars.data().lock().unwrap()[n]
                .as_tensor()
                .copy()
                .unwrap()
        };
        let w0 = raw(&tr, name);
        let x = Tensor::randn(0f32, 1., (8, 2), &dev).unwrap();
        tr.step(&x).unwrap();
        let w1 = raw(&tr, name);
        let exported = tr.export_tensors().unwrap();
        let get = |n: &str| exported.iter().find(|(m, _)| m == n).unwrap().1.clone();
        // First step: the warm-up decay min(0.9, 1/10) applies.
        let want = ((w0 * 0.1).unwrap() + (&w1 * 0.9).unwrap()).unwrap();
        let err = max_abs_diff(&get(name), &want);
        assert!(err < 1e-6, "EMA off by {err}");
        // The generator is exported raw.
        let g = "generator.head.linear0.weight";
        let graw = tr.generator_vars.data().lock().unwrap()[g]
            .as_tensor()
            .copy()
            .unwrap();
        assert_eq!(max_abs_diff(&get(g), &graw), 0.0);
        // The running averages record no graph: each would otherwise keep the previous step's
        // average alive, and the process would grow by every step's copies.
        tr.step(&x).unwrap();
        let ema = tr.ema.as_ref().unwrap();
        assert!(!ema.entries.is_empty());
        for (n, _, avg) in &ema.entries {
            assert!(!avg.track_op(), "the average of {n} tracks a graph");
        }
    }

    #[test]
    fn ema_averages_the_image_generator_but_not_the_encoder() {
        let dev = Device::Cpu;
        let cfg = TrainConfig {
            batch_size: 4,
            ema_decay: Some(0.9),
            ..TrainConfig::image_default()
        };
        let mut image = ImageConfig::for_shape(1, 4, 4, [0.0, 1.0]);
        image.base_channels = 4;
        image.groups = 2;
        let mut network = NetworkConfig::toy(16);
        network.image = Some(image);
        let mut tr = Trainer::new(cfg, network, &dev).unwrap();
        let raw = |tr: &Trainer, n: &str| {
            tr.generator_vars.data().lock().unwrap()[n]
                .as_tensor()
                .copy()
                .unwrap()
        };
        let g = "generator.input.weight";
        let w0 = raw(&tr, g);
        tr.step(&Tensor::randn(0f32, 1., (4, 16), &dev).unwrap())
            .unwrap();
        let w1 = raw(&tr, g);
        assert!(max_abs_diff(&w0, &w1) > 0.0, "the generator trained");
        let exported = tr.export_tensors().unwrap();
        let get = |n: &str| exported.iter().find(|(m, _)| m == n).unwrap().1.clone();
        let want = ((w0 * 0.1).unwrap() + (&w1 * 0.9).unwrap()).unwrap();
        assert!(max_abs_diff(&get(g), &want) < 1e-6);
        assert!(exported.iter().all(|(n, _)| !n.starts_with("encoder.")));
        // A checkpoint holds the generator's average and restores it.
        let state = tr.state().unwrap();
        assert!(state.ema.iter().any(|(n, _)| n == g));
        tr.restore(state).unwrap();
        assert!(
            max_abs_diff(
                &tr.export_tensors()
                    .unwrap()
                    .iter()
                    .find(|(m, _)| m == g)
                    .unwrap()
                    .1,
                &want
            ) < 1e-6
        );
    }
}
