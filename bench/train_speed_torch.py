#!/usr/bin/env python3
"""PyTorch (CPU) re-implementation of one ddaebm training iteration, for a speed comparison.

`bench/train_speed.sh` times `ddaebm-train fit` (Rust, candle) on 2-D 25-Gaussians. This script
does the same iterations in PyTorch so that the two can be compared on the same machine: same
data, same network shapes, same losses, same optimiser work per iteration. It is not meant to
reproduce ddaebm's numbers bit for bit (different random streams and initial weights), only its
FLOPs and its autograd work.

Usage (the interpreter with torch in this checkout is target/torch-venv/bin/python):

    python bench/train_speed_torch.py --width 128 --threads 1 --warmup 20 --steps 500

prints one JSON line on stdout,
    {"width": 128, "threads": 1, "steps": 500, "it_per_s": ..., "torch": "..."}
and, on stderr, the parameter counts, the losses of the first and last iterations and a sanity
check of the energy (f on data rows against f on base-measure rows).

What one iteration is (train/src/trainer.rs `Trainer::step`, default `TrainConfig`)
---------------------------------------------------------------------------------
Batch B = 200 rows, T = 4, the default schedule (`ScheduleConfig::ddaebm(4)`: geometric variance
1e-4 -> 0.99, eps_small 1e-3, per-step beta clamped at 0.999), levels k ~ U{0..T-1} per row,
forward pair x_k = a_cum x + s_cum eps1, x_{k+1} = a_{k+1} x_k + s_{k+1} eps2.

Energy step (lr 2e-3):
  * (f, g) = energy(x_k) with x_k a leaf that requires grad (one pass gives both);
  * z ~ N(0, I_2); x_hat = G([x_{k+1}, z], k) (BatchNorm in training mode, graph kept for the
    generator step); x_fake = c1 x_hat + c2 x_{k+1} + m_k exp(logvar_k / 2) noise;
  * fake = f(sg(x_fake)) only when the adversarial weight is > 0 (it is 0 by default, so the
    f_fake statistic comes from the generator step's pass; ddaebm does the same);
  * grad_f = d(sum f)/d x_k with create_graph=True (a real second-order gradient);
    R1 = (gamma/2) mean ||grad_f + a(x_{k+1} - a x_k)/s^2||^2, gamma = 0.002;
  * DSM = mean ||s_cum grad_f + eps1||^2 (weight 1);
  * NCE = mean softplus(-g(x_k)) + mean softplus(g(r)), r ~ N(0, base_std^2 I) (weight 1);
  * CNCE = mean softplus(f(x_k + tau eps) - f(x_k)), tau log-uniform in [0.1, 1] per row (weight 1);
  * L_D = R1 + DSM + NCE + CNCE; backward; Adam(betas (0, 0.9), eps 1e-8) step.
Generator + encoder step (lr 1e-3, one Adam over both), energy weights frozen at their updated
values:
  * reward = mean[f(x_fake) + log q(x_{k+1} | x_fake)] (gradient reaches G through x_fake);
  * (mu_g, lv_g) = Enc(x_fake, x_{k+1}); L_lat = 0.1 mean[1/2 sum lv_g + 1/2 sum (z-mu_g)^2/(1e-6+e^lv_g)];
  * (mu_e, lv_e) = Enc(x_k, x_{k+1}); L_KL = mean KL(N(mu_e, e^lv_e) || N(0, I));
  * z_e = mu_e + e^{lv_e/2} eps; x_hat_e = G([x_{k+1}, z_e], k);
    L_rec = -mean log N(x_k; c1 x_hat_e + c2 x_{k+1}, exp(max(post_logvar_k, ln 1e-2)));
  * L_G = L_lat + L_KL + L_rec - reward; backward; Adam step.
EMA of every energy weight: avg <- d avg + (1-d) p with d = min(0.9995, (1+t)/(10+t)).
Per iteration that is 4 energy forwards (real, base, perturbed, frozen-on-fake), 2 generator
and 2 encoder forwards (BatchNorm in training mode, running statistics updated), one
create_graph gradient, and two backward passes (the energy one through the double-backward graph).

Networks (src/nn/mlp.rs, train/src/encoder.rs) for d = 2, nz = 2
------------------------------------------------------------------
Every network is head([x_branch(in), t_branch(emb16(k))]): x-branch MLP(in, [16, 32]),
t-branch MLP(16, [16, 32]) on the sinusoidal embedding (sines then cosines, omega_j =
exp(-j ln 1e4 / 7)) of the integer level: the t-branch runs on the T rows of the embedding table
and its outputs are gathered per row (as in ddaebm; no BatchNorm there, so this is exact), head
MLP(64, [W, W, out]). Linear layers: PyTorch default init (U(+-1/sqrt(fan_in)) for
weight and bias, which is what ddaebm draws too). PReLU with one slope per activation, init 0.25,
computed like ddaebm as max(x, clamp(a, 0, 1) x). No activation after a network's last layer.
  * Energy: in = 2, out = 1, no BatchNorm. f(x, k) = g(u, k) - ||x||^2 / (2 base_std^2) with
    base_std = 0.7 and u = x / sqrt(1 + (x/4)^2) (soft clip at 4; the clamp that precedes the
    formula in ddaebm for inputs that do not require a gradient is applied the same way).
  * Generator: in = [x_{k+1}, z] (4), out = 2, BatchNorm1d (eps 1e-5, momentum 0.1) between each
    hidden Linear and its PReLU in the x-branch and the head (never in the t-branch), no output
    squashing.
  * Encoder: in = [x_k, x_{k+1}] (4), trunk like the generator with out = encoder_features = 16,
    then Linear(16, 2) -> mu and Linear(16, 2) -> logvar (no activation before them).
The two configurations (train/src/fit.rs `default_network(2)`; train/src/main.rs: `--width W`
replaces every head width by W and changes nothing else, so base_std 0.7 and soft clip 4 stay on
in the width-300 run too):
  * --width 128: ddaebm's default networks (head 2 x 128);
  * --width 300: `ddaebm-train fit --width 300`, the reference head width 2 x 300 (docs/method.md, networks).
Trainable parameters (what Adam updates; ddaebm's VarMap additionally holds the BatchNorm
running mean/var, 32 + 4W values per BatchNorm network, as torch holds them in buffers):
    energy    W^2 + 67 W + 1413   -> 26 373 (W = 128), 111 513 (W = 300)
    generator W^2 + 72 W + 1478   -> 27 078 (W = 128), 113 078 (W = 300)
    encoder   W^2 + 86 W + 1560   -> 28 952 (W = 128), 117 360 (W = 300)
The script asserts that torch's sum(p.numel()) equals these.

Data and loop (train/src/fit.rs, bench/train_speed.sh)
-------------------------------------------------------
The same 20 000 rows as bench/train_speed.sh (numpy default_rng(0)); 10 % held out as `fit` does
(leaving 18 000 training rows; the held-out rows are not used here), per-column standardisation
with the training rows' mean and population std, and batches of 200 taken in order from a
permutation that is redrawn when it runs out. `fit` times every iteration of its loop (including
the batch gather and the read-back of the five scalar statistics); this script does the same in
its timed loop, after --warmup untimed iterations (the Rust timing has no warm-up; candle has
little to warm up).

Differences from the Rust step (checked against train/src/trainer.rs; none changes the FLOPs of
the mathematics, some change how much autograd work each framework does)
----------------------------------------------------------------------------------------------------
  1. Random numbers: torch's generator instead of ChaCha8; different initial weights, levels and
     noises, so losses agree in distribution only. The 10 % hold-out is a different subset.
  2. First-order input gradient: torch.autograd.grad(sum f, x_k, create_graph=True) only runs the
     backward nodes needed for d/dx_k and skips every weight gradient. candle's `backward()` has
     no input list (it would also compute every unused dL/dtheta of sum f), so ddaebm writes the
     chain rule out for its MLP energy (`EnergyNet::log_density_ratio_and_input_grad`: a matrix
     product per layer, a selection per PReLU, the soft clip's and the base's derivatives in
     closed form), which is the same mathematics. `--written-input-grad` makes torch use that
     written-out gradient too (it is slower in torch than its own autograd.grad: 20.8 vs 22.1 it/s
     at width 300 on one thread, so the default stays autograd); `--full-first-backward` makes
     torch also return the theta gradients of sum f, which is what candle's backward would do.
  3. Graph building in the later backward passes: neither side records graphs for the gradients
     of its energy-loss and generator-loss backward passes (ddaebm turns on
     CANDLE_GRAD_DO_NOT_DETACH only for image models, whose input gradient goes through candle's
     backward pass).
  4. Kernels: torch uses its fused ops where candle composes primitives: F.linear (addmm) vs
     matmul + ddaebm's one-pass bias add (src/nn/ops.rs; its backward sums the bias gradient
     as a matrix product); torch.maximum for the PReLU vs ddaebm's one-pass PReLU and PReLU
     gradient ops (same file); nn.BatchNorm1d (native_batch_norm, same maths: biased variance to
     normalise, unbiased variance into the running average, momentum 0.1, eps 1e-5) vs candle-nn's
     composed BatchNorm; F.softplus (threshold 20) vs ddaebm's relu(t) + log(1 + exp(-|t|)); the
     Gaussian log-densities are written with the same formulas. PReLU keeps ddaebm's
     max(x, clamp(a) x) form (`--native-prelu` switches to nn.PReLU, which does not clamp a).
  5. Adam: torch.optim.Adam(betas=(0, 0.9), eps=1e-8) (default single-tensor CPU implementation).
     Same update; ddaebm also multiplies every weight by (1 - lr * 0) for its zero weight decay.
  6. The frozen energy for the generator step: torch flips requires_grad off on the energy
     parameters for that step (and back on after); ddaebm keeps a second EnergyNet built on
     detached views of the same storage. Both back-propagate through the energy to x_fake only.
  7. EMA updates in place (mul_/add_); ddaebm builds new tensors. Same arithmetic.
  8. Default dtype float32 on both sides; torch threads: set_num_threads(--threads),
     set_num_interop_threads(1). The Rust benchmark sets RAYON_NUM_THREADS.

Timing caveat: with --threads 2 on a 2-core machine that is also running other work, torch's
OpenMP workers spin-wait and can collapse (0.44 it/s was seen once at width 128 under load ~2.5,
against ~49 it/s on the idle machine); take multi-thread numbers on an otherwise idle machine, or
set OMP_WAIT_POLICY=PASSIVE.
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HALF_LN_2PI = 0.5 * math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- schedule


def schedule(num_timesteps=4, beta_min=1e-4, beta_max=0.99, eps_small=1e-3, geometric=True):
    """src/schedule.rs `Schedule::new`, in float64 (default: `ScheduleConfig::ddaebm(4)`)."""
    n = num_timesteps
    t = np.array([eps_small + (1.0 - eps_small) * k / n for k in range(n + 1)])
    if geometric:
        var = beta_min * (beta_max / beta_min) ** t
    else:
        var = 1.0 - np.exp(2.0 * (-0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min))
    alpha_bar = 1.0 - var
    betas = [var[0]] + [min(1.0 - alpha_bar[k] / alpha_bar[k - 1], 0.999) for k in range(1, n + 1)]
    betas = np.array(betas)
    sigmas = np.sqrt(betas)
    a_s = np.sqrt(1.0 - betas)
    a_s_cum = np.cumprod(a_s)
    sigmas_cum = np.sqrt(1.0 - a_s_cum**2)
    acp = np.cumprod(1.0 - betas)
    post_var = np.array([betas[k + 1] * (1 - acp[k]) / (1 - acp[k + 1]) for k in range(n)])
    post_c1 = np.array([betas[k + 1] * math.sqrt(acp[k]) / (1 - acp[k + 1]) for k in range(n)])
    post_c2 = np.array(
        [(1 - acp[k]) * math.sqrt(1 - betas[k + 1]) / (1 - acp[k + 1]) for k in range(n)]
    )
    post_logvar = np.log(post_var)
    return dict(
        a_s_cum=a_s_cum[:n],
        sigmas_cum=sigmas_cum[:n],
        a_next=a_s[1:],
        sigma_next=sigmas[1:],
        post_c1=post_c1,
        post_c2=post_c2,
        post_std=np.array([0.0 if k == 0 else math.exp(0.5 * lv) for k, lv in enumerate(post_logvar)]),
        rec_logvar=np.maximum(post_logvar, math.log(1e-2)),
    )


class Levels:
    """train/src/levels.rs: (T, 1) float32 columns gathered per row by level."""

    def __init__(self, sched):
        self.cols = {k: torch.tensor(v, dtype=torch.float32).reshape(-1, 1) for k, v in sched.items()}

    def gather(self, levels):
        return {k: v.index_select(0, levels) for k, v in self.cols.items()}


# ----------------------------------------------------------------------------- networks


def timestep_embedding(num_levels, dim):
    half = dim // 2
    rows = []
    for k in range(num_levels):
        a = [math.exp(-j * math.log(10000.0) / (half - 1)) * k for j in range(half)]
        rows.append([math.sin(v) for v in a] + [math.cos(v) for v in a] + [0.0] * (dim - 2 * half))
    return torch.tensor(rows, dtype=torch.float32)


class Prelu(nn.Module):
    """ddaebm's PReLU: max(x, clamp(a, 0, 1) x), one slope, init 0.25."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.full((1,), 0.25))

    def forward(self, x):
        return torch.maximum(x, x * self.weight.clamp(0.0, 1.0))


NATIVE_PRELU = False


def make_act():
    return nn.PReLU(1, init=0.25) if NATIVE_PRELU else Prelu()


class Mlp(nn.Module):
    """Linear layers with (BatchNorm, then) PReLU between them and nothing after the last."""

    def __init__(self, in_dim, widths, batch_norm):
        super().__init__()
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        prev = in_dim
        for i, w in enumerate(widths):
            self.layers.append(nn.Linear(prev, w))
            if i + 1 < len(widths):
                if batch_norm:
                    self.norms.append(nn.BatchNorm1d(w, eps=1e-5, momentum=0.1))
                self.acts.append(make_act())
            prev = w

    def forward(self, h):
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i + 1 < n:
                if len(self.norms):
                    h = self.norms[i](h)
                h = self.acts[i](h)
        return h


class TimeConditionedMlp(nn.Module):
    def __init__(self, cfg, num_levels, in_dim, out_dim, batch_norm):
        super().__init__()
        self.x_branch = Mlp(in_dim, cfg["branch_widths"], batch_norm)
        self.t_branch = Mlp(cfg["time_embed_dim"], cfg["branch_widths"], False)
        self.head = Mlp(2 * cfg["branch_widths"][-1], cfg["head_widths"] + [out_dim], batch_norm)
        self.register_buffer("embedding", timestep_embedding(num_levels, cfg["time_embed_dim"]))

    def forward(self, x, levels):
        hx = self.x_branch(x)
        ht = self.t_branch(self.embedding).index_select(0, levels)
        return self.head(torch.cat([hx, ht], 1))


class EnergyNet(nn.Module):
    def __init__(self, cfg, num_levels):
        super().__init__()
        self.body = TimeConditionedMlp(cfg, num_levels, cfg["input_dim"], 1, False)
        self.base_std = cfg["base_std"]
        self.soft_clip = cfg["input_soft_clip"]

    def log_ratio(self, x, levels):
        c = self.soft_clip
        if c > 0:
            # ddaebm clamps first only when no gradient flows back to the input.
            u = x if x.requires_grad else x.clamp(-min(2.0**20 * c, 1e18), min(2.0**20 * c, 1e18))
            u = u / (u.square() / (c * c) + 1.0).sqrt()
        else:
            u = x
        return self.body(u, levels).squeeze(1)

    def log_density_and_ratio(self, x, levels):
        g = self.log_ratio(x, levels)
        if self.base_std <= 0:
            return g, g
        return g - x.square().sum(1) * (0.5 / self.base_std**2), g

    def log_density(self, x, levels):
        return self.log_density_and_ratio(x, levels)[0]

    def log_density_ratio_and_input_grad(self, x, levels):
        """(f, g, d f / d x) with the chain rule written out layer by layer, as ddaebm's
        `EnergyNet::log_density_ratio_and_input_grad` does (--written-input-grad)."""
        c = self.soft_clip
        if c > 0:
            bound = min(2.0**20 * c, 1e18)
            xc = x.clamp(-bound, bound)
            s = xc.square() / (c * c) + 1.0
            root = s.sqrt()
            u, clip_slope = xc / root, (s * root).reciprocal()
        else:
            u, clip_slope = x, None
        body = self.body
        hx, saved_x = mlp_forward_saving(body.x_branch, u)
        ht = body.t_branch(body.embedding).index_select(0, levels)
        out, saved_head = mlp_forward_saving(body.head, torch.cat([hx, ht], 1))
        grad_hx = mlp_input_grad(body.head, torch.ones_like(out), saved_head, hx.shape[1])
        grad = mlp_input_grad(body.x_branch, grad_hx, saved_x, x.shape[1])
        if clip_slope is not None:
            grad = grad * clip_slope
        g = out.squeeze(1)
        if self.base_std <= 0:
            return g, g, grad
        precision = 1.0 / self.base_std**2
        return g - x.square().sum(1) * (0.5 * precision), g, grad - x * precision


def mlp_forward_saving(mlp, h):
    """An MLP without BatchNorm, keeping each activation's mask and slope."""
    saved = []
    n = len(mlp.layers)
    for i, layer in enumerate(mlp.layers):
        h = layer(h)
        if i + 1 < n:
            a = mlp.acts[i].weight.clamp(0.0, 1.0)
            mask = h >= 0
            h = torch.where(mask, h, h * a)
            saved.append((mask, a))
    return h, saved


def mlp_input_grad(mlp, grad, saved, inputs):
    """d L / d (first `inputs` input columns) from d L / d output."""
    for i in reversed(range(len(mlp.layers))):
        if i < len(saved):
            mask, a = saved[i]
            grad = torch.where(mask, grad, grad * a)
        w = mlp.layers[i].weight
        grad = grad @ (w[:, :inputs] if i == 0 else w)
    return grad


class Generator(nn.Module):
    def __init__(self, cfg, num_levels):
        super().__init__()
        d = cfg["input_dim"]
        self.body = TimeConditionedMlp(cfg, num_levels, d + cfg["latent_dim"], d, True)

    def forward(self, x_next, z, levels):
        return self.body(torch.cat([x_next, z], 1), levels)


class Encoder(nn.Module):
    def __init__(self, cfg, num_levels):
        super().__init__()
        f = cfg["encoder_features"]
        self.trunk = TimeConditionedMlp(cfg, num_levels, 2 * cfg["input_dim"], f, True)
        self.mu = nn.Linear(f, cfg["latent_dim"])
        self.logvar = nn.Linear(f, cfg["latent_dim"])

    def forward(self, x, x_next, levels):
        h = self.trunk(torch.cat([x, x_next], 1), levels)
        return self.mu(h), self.logvar(h)


def network_config(width):
    """train/src/fit.rs `default_network(2)` with `--width` applied (train/src/main.rs)."""
    return dict(
        input_dim=2,
        latent_dim=2,
        time_embed_dim=16,
        branch_widths=[16, 32],
        head_widths=[width, width],
        encoder_features=16,
        base_std=0.7,
        input_soft_clip=4.0,
    )


def ddaebm_param_counts(w):
    """Trainable parameters of ddaebm's networks for d = 2, nz = 2, branches [16, 32], head [w, w]
    (worked out from src/nn/mlp.rs and train/src/encoder.rs; see the module docstring)."""
    return dict(
        energy=w * w + 67 * w + 1413,
        generator=w * w + 72 * w + 1478,
        encoder=w * w + 86 * w + 1560,
    )


# ----------------------------------------------------------------------------- losses


def log_forward(x, x_next, a, sigma):
    resid = (x_next - x * a) / sigma
    return (resid.square() * -0.5 - sigma.log()).sum(1) - HALF_LN_2PI * x.shape[1]


def log_gaussian(x, mean, logvar):
    d = x.shape[1]
    sq = ((x - mean).square() / logvar.exp()).sum(1)
    lv = logvar.squeeze(1) * d if logvar.shape[1] == 1 else logvar.sum(1)
    return (sq + lv) * -0.5 - HALF_LN_2PI * d


def kl_to_standard_normal(mu, logvar):
    return ((logvar + 1.0) - mu.square() - logvar.exp()).sum(1) * -0.5


def latent_nll(z, mu, logvar):
    return (logvar.sum(1) + ((z - mu).square() / (logvar.exp() + 1e-6)).sum(1)) * 0.5


# ----------------------------------------------------------------------------- trainer


class Trainer:
    def __init__(self, width, full_first_backward=False, written_input_grad=False):
        # TrainConfig::default()
        self.lr_energy, self.lr_generator = 2e-3, 1e-3
        self.r1_gamma = 0.002
        self.adversarial_weight = 0.0
        self.dsm_weight = self.nce_weight = self.cnce_weight = 1.0
        self.cnce_scale = (0.1, 1.0)
        self.latent_weight = 0.1
        self.ema_decay = 0.9995
        self.T = 4
        self.full_first_backward = full_first_backward
        self.written_input_grad = written_input_grad

        self.cfg = network_config(width)
        self.levels = Levels(schedule(self.T))
        self.energy = EnergyNet(self.cfg, self.T)
        self.generator = Generator(self.cfg, self.T)
        self.encoder = Encoder(self.cfg, self.T)
        self.energy_params = list(self.energy.parameters())
        gen_params = list(self.generator.parameters()) + list(self.encoder.parameters())
        self.opt_energy = torch.optim.Adam(self.energy_params, lr=self.lr_energy, betas=(0.0, 0.9), eps=1e-8)
        self.opt_generator = torch.optim.Adam(gen_params, lr=self.lr_generator, betas=(0.0, 0.9), eps=1e-8)
        self.ema = [p.detach().clone() for p in self.energy_params]
        self.step_count = 0
        # BatchNorm stays in training mode for the whole run, as in ddaebm's trainer.
        self.generator.train()
        self.encoder.train()

    def step(self, x):
        b, d = x.shape
        nz = self.cfg["latent_dim"]
        levels = torch.randint(0, self.T, (b,))
        c = self.levels.gather(levels)
        eps1, eps2 = torch.randn(b, d), torch.randn(b, d)
        x_k = x * c["a_s_cum"] + eps1 * c["sigmas_cum"]
        x_next = x_k * c["a_next"] + eps2 * c["sigma_next"]

        # --- energy step ---
        if self.written_input_grad:
            real, g_real, grad_f = self.energy.log_density_ratio_and_input_grad(x_k, levels)
        else:
            x_k_var = x_k.detach().requires_grad_(True)
            real, g_real = self.energy.log_density_and_ratio(x_k_var, levels)
        z = torch.randn(b, nz)
        x_hat = self.generator(x_next, z, levels)
        noise = torch.randn(b, d)
        x_fake = x_hat * c["post_c1"] + x_next * c["post_c2"] + noise * c["post_std"]
        fake = None
        if self.adversarial_weight > 0:
            fake = self.energy.log_density(x_fake.detach(), levels)
        if self.written_input_grad:
            pass
        elif self.full_first_backward:
            grads = torch.autograd.grad(real.sum(), [x_k_var] + self.energy_params, create_graph=True)
            grad_f = grads[0]
        else:
            (grad_f,) = torch.autograd.grad(real.sum(), x_k_var, create_graph=True)
        a, s = c["a_next"], c["sigma_next"]
        grad_u = grad_f + (x_next - x_k * a) * a / s.square()
        r1 = grad_u.square().sum(1).mean() * (0.5 * self.r1_gamma)
        loss_energy = r1
        if self.adversarial_weight > 0:
            loss_energy = loss_energy + (fake - real).mean() * self.adversarial_weight
        if self.dsm_weight > 0:
            dsm = (grad_f * c["sigmas_cum"] + eps1).square().sum(1).mean()
            loss_energy = loss_energy + dsm * self.dsm_weight
        if self.nce_weight > 0:
            base_std = self.cfg["base_std"] if self.cfg["base_std"] > 0 else 1.0
            base_rows = torch.randn(b, d) * base_std
            g_base = self.energy.log_ratio(base_rows, levels)
            nce = F.softplus(-g_real).mean() + F.softplus(g_base).mean()
            loss_energy = loss_energy + nce * self.nce_weight
        if self.cnce_weight > 0:
            lo, hi = self.cnce_scale
            taus = torch.exp(math.log(lo) + torch.rand(b, 1) * math.log(hi / lo))
            perturbed = x_k + torch.randn(b, d) * taus
            f_perturbed = self.energy.log_density(perturbed, levels)
            cnce = F.softplus(f_perturbed - real).mean()
            loss_energy = loss_energy + cnce * self.cnce_weight
        self.opt_energy.zero_grad(set_to_none=True)
        loss_energy.backward()
        self.opt_energy.step()

        # --- generator + encoder step, updated energy weights frozen ---
        for p in self.energy_params:
            p.requires_grad_(False)
        f_fake = self.energy.log_density(x_fake, levels)
        reward = (f_fake + log_forward(x_fake, x_next, a, s)).mean()
        mu_g, lv_g = self.encoder(x_fake, x_next, levels)
        l_lat = latent_nll(z, mu_g, lv_g).mean() * self.latent_weight
        mu_e, lv_e = self.encoder(x_k, x_next, levels)
        l_kl = kl_to_standard_normal(mu_e, lv_e).mean()
        z_e = mu_e + (lv_e * 0.5).exp() * torch.randn(b, nz)
        x_hat_e = self.generator(x_next, z_e, levels)
        rec_mean = x_hat_e * c["post_c1"] + x_next * c["post_c2"]
        l_rec = -log_gaussian(x_k, rec_mean, c["rec_logvar"]).mean()
        loss_generator = l_lat + l_kl + l_rec - reward
        self.opt_generator.zero_grad(set_to_none=True)
        loss_generator.backward()
        self.opt_generator.step()
        for p in self.energy_params:
            p.requires_grad_(True)

        with torch.no_grad():
            t = self.step_count
            decay = min(self.ema_decay, (1.0 + t) / (10.0 + t))
            for avg, p in zip(self.ema, self.energy_params):
                avg.mul_(decay).add_(p, alpha=1.0 - decay)
        self.step_count += 1
        return dict(
            loss_energy=loss_energy.item(),
            loss_generator=loss_generator.item(),
            r1=r1.item(),
            f_real=real.mean().item(),
            f_fake=(fake if fake is not None else f_fake).mean().item(),
        )


# ----------------------------------------------------------------------------- data


def toy_data():
    """The 20 000 rows of bench/train_speed.sh, bit for bit."""
    rng = np.random.default_rng(0)
    c = np.array([(2 * i / 2.828, 2 * j / 2.828) for i in range(-2, 3) for j in range(-2, 3)])
    x = c[rng.integers(0, 25, 20000)] + rng.normal(0, 0.1 / 2.828, (20000, 2))
    return x.astype(np.float32)


def main():
    global NATIVE_PRELU
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, choices=[128, 300], default=128)
    ap.add_argument("--steps", type=int, default=200, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=20, help="untimed iterations before the timed ones")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (every tensor is created there)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full-first-backward", action="store_true",
                    help="also compute the (unused) theta-gradients of sum f in the R1 pass, as candle does")
    ap.add_argument("--written-input-grad", action="store_true",
                    help="d f / d x_k written out layer by layer (as ddaebm does) instead of autograd.grad")
    ap.add_argument("--native-prelu", action="store_true", help="nn.PReLU instead of max(x, clamp(a) x)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        torch.set_default_device(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    NATIVE_PRELU = args.native_prelu

    data = toy_data()
    # fit: 10 % held out for calibration (not used here), standardise with the training rows.
    perm = np.random.default_rng(args.seed).permutation(len(data))
    train = data[perm[: len(data) - round(0.1 * len(data))]]
    mean = train.astype(np.float64).mean(0)
    std = train.astype(np.float64).std(0)
    xs = torch.from_numpy(((train - mean) / std).astype(np.float32)).to(args.device)
    n = xs.shape[0]
    batch = 200

    tr = Trainer(args.width, full_first_backward=args.full_first_backward,
                 written_input_grad=args.written_input_grad)
    counts = {
        "energy": sum(p.numel() for p in tr.energy.parameters()),
        "generator": sum(p.numel() for p in tr.generator.parameters()),
        "encoder": sum(p.numel() for p in tr.encoder.parameters()),
    }
    want = ddaebm_param_counts(args.width)
    print(f"parameters (torch): {counts}; ddaebm: {want}", file=sys.stderr)
    assert counts == want, "network shapes differ from ddaebm's"

    if args.written_input_grad:
        # The written-out gradient must be autograd's.
        levels = torch.randint(0, tr.T, (batch,))
        x = xs[:batch].clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(tr.energy.log_density(x, levels).sum(), x)
        _, _, written = tr.energy.log_density_ratio_and_input_grad(xs[:batch], levels)
        err = (written - auto).abs().max().item()
        print(f"written input gradient vs autograd: max |diff| {err:.2e}", file=sys.stderr)
        assert err <= 1e-5 * max(1.0, auto.abs().max().item()), "written input gradient is wrong"

    order = torch.randperm(n)
    cursor = n
    first = None

    def one():
        nonlocal order, cursor
        if cursor + batch > n:
            order = torch.randperm(n)
            cursor = 0
        x = xs.index_select(0, order[cursor:cursor + batch])
        cursor += batch
        stats = tr.step(x)
        if not all(math.isfinite(stats[k]) for k in ("loss_energy", "loss_generator")):
            raise SystemExit(f"training diverged at step {tr.step_count}: {stats}")
        return stats

    for _ in range(args.warmup):
        s = one()
        first = first or s
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        s = one()
        first = first or s
    sync()
    seconds = time.perf_counter() - start
    last = s

    fmt = lambda d: ", ".join(f"{k} {v:.4f}" for k, v in d.items())
    print(f"first iteration: {fmt(first)}", file=sys.stderr)
    print(f"last iteration ({tr.step_count}): {fmt(last)}", file=sys.stderr)
    # Sanity: at level 0 the energy should rank data rows above rows from the base measure.
    with torch.no_grad():
        gen = torch.Generator(device=args.device).manual_seed(1)
        rows = xs[torch.randperm(n, generator=gen)[:2000]]
        noise = torch.randn(2000, 2, generator=gen) * tr.cfg["base_std"]
        k0 = torch.zeros(2000, dtype=torch.long)
        raw_d, raw_n = tr.energy.log_density(rows, k0).mean(), tr.energy.log_density(noise, k0).mean()
        saved = [p.detach().clone() for p in tr.energy_params]
        for p, avg in zip(tr.energy_params, tr.ema):
            p.copy_(avg)
        ema_d, ema_n = tr.energy.log_density(rows, k0).mean(), tr.energy.log_density(noise, k0).mean()
        for p, v in zip(tr.energy_params, saved):
            p.copy_(v)
    print(
        f"mean f(x, 0): data rows {raw_d:.3f} vs N(0, {tr.cfg['base_std']}^2 I) rows {raw_n:.3f} "
        f"(EMA weights: {ema_d:.3f} vs {ema_n:.3f})",
        file=sys.stderr,
    )
    print(json.dumps({
        "width": args.width,
        "threads": args.threads,
        "device": args.device,
        "steps": args.steps,
        "it_per_s": round(args.steps / seconds, 2),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
