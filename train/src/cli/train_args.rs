//! The training options `fit` and `demo` share, and how they become a [`FitConfig`].

use anyhow::{bail, Result};
use clap::Args;
use ddaebm::{NetworkConfig, ScheduleConfig};
use ddaebm_train::data::Matrix;
use ddaebm_train::dcd::DcdConfig;
use ddaebm_train::fit::MethodConfig;
use ddaebm_train::fit::{
    default_image_network, default_network_for, pixel_range_of, split_indices, FitConfig,
};
use ddaebm_train::gcd::GcdConfig;
use ddaebm_train::trainer::TrainConfig;

/// Options of a training run.
#[derive(Args, Clone)]
pub struct TrainArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for training. The default networks are small enough that one thread is
    /// fastest (a second one costs more in synchronisation than it gains); 0 uses candle's
    /// default (all physical cores). RAYON_NUM_THREADS, when set, wins.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Training iterations (each one energy step and one generator step).
    #[arg(long)]
    pub steps: Option<usize>,
    /// DDAEBM: generator-only iterations after --steps, against the finished energy (which they
    /// do not change); they make the few-step sampler usable [default: 12000 for vector data, 0
    /// for images].
    #[arg(long)]
    pub generator_steps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Training method: ddaebm (energy trained against a latent-variable generator), gcd
    /// (energy trained against a few-step Gaussian-policy sampler; vector data) or dcd
    /// (diffusion contrastive divergence: the energy alone, sampled by Langevin dynamics).
    #[arg(long, default_value = "ddaebm")]
    pub method: String,
    /// Diffusion steps T (the sampler's steps) [default: 4 for ddaebm and images, 5 for gcd and
    /// dcd].
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// GCD: DDPM pre-training iterations before the GCD iterations.
    #[arg(long)]
    pub pretrain_steps: Option<usize>,
    /// GCD: steps N of the fine diffusion the DDPM is pre-trained on (a multiple of T).
    #[arg(long)]
    pub ddpm_steps: Option<usize>,
    /// GCD: entropy weight τ of the sampler (0 turns maximum entropy off).
    #[arg(long)]
    pub tau: Option<f64>,
    /// GCD: weight of the sampler's velocity cost, relative to τ.
    #[arg(long)]
    pub velocity_weight: Option<f64>,
    /// GCD and DCD: weight γ of the energy magnitude penalty [default: 0.1].
    #[arg(long)]
    pub energy_penalty: Option<f64>,
    /// DCD: Langevin steps K per chain, in training and at every level of sampling
    /// [default: 20].
    #[arg(long)]
    pub langevin_steps: Option<usize>,
    /// DCD: scale c of the Langevin step sizes, h_k = c²/(1/s_k² + a²/σ²) [default: 0.7].
    #[arg(long)]
    pub step_scale: Option<f64>,
    /// DCD: train with the short-run contrastive-divergence baseline (chains from N(0, I), not
    /// tied to a noisier row) instead of DCD's posterior chains.
    #[arg(long)]
    pub short_run_cd: bool,
    /// GCD: Adam learning rate of the sampler during GCD (after pre-training).
    #[arg(long)]
    pub lr_sampler: Option<f64>,
    /// Share of rows held out for calibration (at least 100 rows, or a third of small data).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Target true-positive rate of the stored threshold.
    #[arg(long, default_value_t = 0.95)]
    pub tpr: f64,
    /// Adam learning rate of the energy network.
    #[arg(long)]
    pub lr_energy: Option<f64>,
    /// Adam learning rate of the generator and encoder.
    #[arg(long)]
    pub lr_generator: Option<f64>,
    /// R1 penalty weight γ.
    #[arg(long)]
    pub r1_gamma: Option<f64>,
    /// Weight of the adversarial (generator-negatives) term of the energy loss.
    #[arg(long, hide = true)]
    pub adversarial_weight: Option<f64>,
    /// Weight of denoising score matching in the energy loss.
    #[arg(long, hide = true)]
    pub dsm_weight: Option<f64>,
    /// Weight of NCE against the Gaussian base in the energy loss.
    #[arg(long, hide = true)]
    pub nce_weight: Option<f64>,
    /// Weight of conditional NCE (perturbed data rows) in the energy loss.
    #[arg(long, hide = true)]
    pub cnce_weight: Option<f64>,
    /// Energy without the Gaussian base measure and input soft clip (the reference network).
    #[arg(long, hide = true)]
    pub plain_energy: bool,
    /// Range of the conditional-NCE perturbation scale, "lo,hi" (normalised units).
    #[arg(long, hide = true, value_delimiter = ',')]
    pub cnce_scale: Option<Vec<f64>>,
    /// Widths of the x- and t-branch MLPs, comma-separated (default 16,32).
    #[arg(long, hide = true, value_delimiter = ',')]
    pub branch_widths: Option<Vec<usize>>,
    /// Standard deviation of the energy's Gaussian base measure (normalised units).
    #[arg(long, hide = true)]
    pub base_std: Option<f32>,
    /// Components of the spherical Gaussian-mixture base measure (at most one per 25 training
    /// rows); 0 = the isotropic Gaussian base of --base-std.
    #[arg(long, hide = true)]
    pub base_components: Option<usize>,
    /// Soft clip of the energy MLP's input (normalised units; 0 = off).
    #[arg(long, hide = true)]
    pub soft_clip: Option<f32>,
    /// EMA decay of the stored weights (0 disables).
    #[arg(long)]
    pub ema: Option<f64>,
    /// Hidden width of the head MLPs.
    #[arg(long)]
    pub width: Option<usize>,
    /// Size of the generator's latent z.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// β_max of the schedule.
    #[arg(long, hide = true)]
    pub beta_max: Option<f64>,
    /// β_min of the schedule.
    #[arg(long, hide = true)]
    pub beta_min: Option<f64>,
    /// Variance schedule: vp or geometric.
    #[arg(long, hide = true)]
    pub schedule_kind: Option<String>,
    /// Raw pixel range of image data, "lo,hi", mapped to [−1, 1] [default: 0,255 for 8-bit
    /// images, else the data's minimum and maximum].
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub pixel_range: Option<Vec<f32>>,
    /// Channels of the first stage of the image networks (default 32).
    #[arg(long)]
    pub base_channels: Option<usize>,
    /// Floor of the reconstruction variance (natural log).
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub rec_logvar_floor: Option<f64>,
}

impl TrainArgs {
    /// The default networks for `data` (vector or image rows) with this run's overrides.
    pub fn network_for(&self, data: &Matrix) -> Result<NetworkConfig> {
        let Some(layout) = data.image else {
            let (train_rows, _) = split_indices(data.rows, self.val_fraction, self.seed)?;
            return Ok(default_network_for(data.cols, train_rows.len()));
        };
        let range = match self.pixel_range.as_deref() {
            None => pixel_range_of(data),
            Some(&[lo, hi]) => [lo, hi],
            Some(v) => bail!("--pixel-range takes two values lo,hi; got {v:?}"),
        };
        let mut network = default_image_network(layout.shape, range);
        if let (Some(c), Some(image)) = (self.base_channels, network.image.as_mut()) {
            image.base_channels = c;
        }
        network.validate()?;
        Ok(network)
    }

    /// The method's own settings, with this run's overrides; refuses another method's flags.
    fn method_config(&self) -> Result<MethodConfig> {
        let gcd_flags = [
            ("--pretrain-steps", self.pretrain_steps.is_some()),
            ("--ddpm-steps", self.ddpm_steps.is_some()),
            ("--tau", self.tau.is_some()),
            ("--velocity-weight", self.velocity_weight.is_some()),
            ("--lr-sampler", self.lr_sampler.is_some()),
        ];
        let dcd_flags = [
            ("--langevin-steps", self.langevin_steps.is_some()),
            ("--step-scale", self.step_scale.is_some()),
            ("--short-run-cd", self.short_run_cd),
        ];
        let penalty = [("--energy-penalty", self.energy_penalty.is_some())];
        let ddaebm_flags = [
            ("--lr-generator", self.lr_generator.is_some()),
            ("--generator-steps", self.generator_steps.is_some()),
            ("--r1-gamma", self.r1_gamma.is_some()),
            ("--latent-dim", self.latent_dim.is_some()),
            ("--ema", self.ema.is_some()),
            ("--adversarial-weight", self.adversarial_weight.is_some()),
            ("--dsm-weight", self.dsm_weight.is_some()),
            ("--nce-weight", self.nce_weight.is_some()),
            ("--cnce-weight", self.cnce_weight.is_some()),
            ("--cnce-scale", self.cnce_scale.is_some()),
            ("--rec-logvar-floor", self.rec_logvar_floor.is_some()),
        ];
        let refuse = |flags: &[(&str, bool)], method: &str| -> Result<()> {
            match flags.iter().find(|(_, set)| *set) {
                Some((flag, _)) => bail!("{flag} does not apply to --method {method}"),
                None => Ok(()),
            }
        };
        match self.method.as_str() {
            "ddaebm" => {
                refuse(&gcd_flags, "ddaebm")?;
                refuse(&dcd_flags, "ddaebm")?;
                refuse(&penalty, "ddaebm")?;
                Ok(MethodConfig::Ddaebm)
            }
            "gcd" => {
                refuse(&ddaebm_flags, "gcd")?;
                refuse(&dcd_flags, "gcd")?;
                let d = GcdConfig::default();
                Ok(MethodConfig::Gcd(GcdConfig {
                    ddpm_steps: self.ddpm_steps.unwrap_or(d.ddpm_steps),
                    pretrain_steps: self.pretrain_steps.unwrap_or(d.pretrain_steps),
                    tau: self.tau.unwrap_or(d.tau),
                    velocity_weight: self.velocity_weight.unwrap_or(d.velocity_weight),
                    gamma: self.energy_penalty.unwrap_or(d.gamma),
                    lr_energy: self.lr_energy.unwrap_or(d.lr_energy),
                    lr_sampler: self.lr_sampler.unwrap_or(d.lr_sampler),
                    ..d
                }))
            }
            "dcd" => {
                refuse(&ddaebm_flags, "dcd")?;
                refuse(&gcd_flags, "dcd")?;
                let d = DcdConfig::default();
                Ok(MethodConfig::Dcd(DcdConfig {
                    langevin_steps: self.langevin_steps.unwrap_or(d.langevin_steps),
                    step_scale: self.step_scale.unwrap_or(d.step_scale),
                    gamma: self.energy_penalty.unwrap_or(d.gamma),
                    lr_energy: self.lr_energy.unwrap_or(d.lr_energy),
                    short_run_cd: self.short_run_cd,
                }))
            }
            other => bail!("unknown --method {other:?}: ddaebm, gcd or dcd"),
        }
    }

    /// The fit configuration: `network` with this run's overrides, and the training settings.
    pub fn config(&self, network: NetworkConfig) -> Result<FitConfig> {
        let method = self.method_config()?;
        if matches!(method, MethodConfig::Gcd(_)) && network.image.is_some() {
            bail!("--method gcd trains vector data (its sampler is an MLP policy); for images use the default method");
        }
        let defaults = match (&method, &network.image) {
            (_, Some(_)) => TrainConfig::image_default(),
            (MethodConfig::Gcd(_) | MethodConfig::Dcd(_), None) => TrainConfig::gcd_default(),
            (MethodConfig::Ddaebm, None) => TrainConfig::default(),
        };
        let mut network = network;
        if let Some(w) = self.width {
            network.head_widths = vec![w; network.head_widths.len()];
        }
        if let Some(widths) = &self.branch_widths {
            network.branch_widths = widths.clone();
        }
        if let Some(nz) = self.latent_dim {
            network.latent_dim = nz;
        }
        if let Some(s) = self.base_std {
            network.base_std = s;
        }
        if let Some(k) = self.base_components {
            network.base_components = k;
            if k > 0 {
                network.base_std = 0.0;
            } else if network.base_std == 0.0 && self.base_std.is_none() {
                network.base_std = ddaebm_train::fit::DEFAULT_BASE_STD;
            }
        }
        if let Some(c) = self.soft_clip {
            network.input_soft_clip = c;
        }
        if self.plain_energy {
            network.base_std = 0.0;
            network.input_soft_clip = 0.0;
        }
        let ema_decay = match self.ema {
            Some(d) if d <= 0.0 => None,
            Some(d) if d < 1.0 => Some(d),
            Some(d) => bail!("--ema must be below 1, got {d}"),
            None => defaults.ema_decay,
        };
        if !(self.tpr > 0.0 && self.tpr < 1.0) {
            bail!("--tpr must be in (0, 1), got {}", self.tpr);
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!(
                "--val-fraction must be in [0, 1), got {}",
                self.val_fraction
            );
        }
        let fit_config = FitConfig {
            method,
            train: TrainConfig {
                steps: self.steps.unwrap_or(defaults.steps),
                generator_steps: self.generator_steps.or(defaults.generator_steps),
                batch_size: self.batch_size.unwrap_or(defaults.batch_size),
                lr_energy: self.lr_energy.unwrap_or(defaults.lr_energy),
                lr_generator: self.lr_generator.unwrap_or(defaults.lr_generator),
                r1_gamma: self.r1_gamma.unwrap_or(defaults.r1_gamma),
                adversarial_weight: self
                    .adversarial_weight
                    .unwrap_or(defaults.adversarial_weight),
                dsm_weight: self.dsm_weight.unwrap_or(defaults.dsm_weight),
                nce_weight: self.nce_weight.unwrap_or(defaults.nce_weight),
                cnce_weight: self.cnce_weight.unwrap_or(defaults.cnce_weight),
                cnce_scale: match self.cnce_scale.as_deref() {
                    None => defaults.cnce_scale,
                    Some(&[lo, hi]) => (lo, hi),
                    Some(v) => bail!("--cnce-scale takes two values lo,hi; got {v:?}"),
                },
                ema_decay,
                seed: self.seed,
                schedule: ScheduleConfig {
                    num_timesteps: self.timesteps.unwrap_or(defaults.schedule.num_timesteps),
                    beta_max: self.beta_max.unwrap_or(defaults.schedule.beta_max),
                    beta_min: self.beta_min.unwrap_or(defaults.schedule.beta_min),
                    kind: match self.schedule_kind.as_deref() {
                        None => defaults.schedule.kind,
                        Some("vp") => ddaebm::VarianceKind::Vp,
                        Some("geometric") => ddaebm::VarianceKind::Geometric,
                        Some(other) => bail!("unknown schedule kind {other:?}"),
                    },
                    ..defaults.schedule.clone()
                },
                rec_logvar_floor: self.rec_logvar_floor.unwrap_or(defaults.rec_logvar_floor),
                ..defaults
            },
            network: Some(network),
            pixel_range: None,
            val_fraction: self.val_fraction,
            target_tpr: self.tpr,
            checkpoint: None,
            stop: None,
            snapshots: None,
        };
        let mut fit_config = fit_config;
        match &fit_config.method {
            MethodConfig::Gcd(g) => g.validate(&fit_config.train.schedule)?,
            MethodConfig::Dcd(d) => {
                d.validate(&fit_config.train.schedule)?;
                // The training record shows what the run used: DCD's own learning rate, and no
                // EMA of the weights.
                fit_config.train.lr_energy = d.lr_energy;
                fit_config.train.ema_decay = None;
            }
            MethodConfig::Ddaebm => {}
        }
        Ok(fit_config)
    }
}
