//! DCD runs end to end (small): a seeded fit is reproducible bit for bit and records its method
//! and sampler, a stopped run resumes to the uninterrupted model (mixture and Gaussian base), the
//! model file samples through the C ABI exactly as through `Model::sample`, an image model trains
//! and samples, DCD's negatives match the data where the energy is the truth (and short-run CD's
//! do not), and on 8 Gaussians the energy and its Langevin samples are good at CI size.

mod support;

use candle::{Device, Tensor};
use ddaebm::energy::base::MixtureParams;
use ddaebm::{Method, SamplerKind, ScheduleConfig};
use ddaebm_train::data::{ImageLayout, Matrix};
use ddaebm_train::dcd::{DcdConfig, DcdTrainer};
use ddaebm_train::fit::{fit, FitConfig, MethodConfig};
use ddaebm_train::method::TrainingMethod;
use ddaebm_train::metrics::auroc;
use ddaebm_train::toy::Toy;
use ddaebm_train::trainer::TrainConfig;
use rand::SeedableRng;
use support::{
    assert_c_abi_samples_as_the_library, interrupted_then_resumed, small_config, small_data,
    tensors,
};

const STEPS: usize = 30;

fn data() -> Matrix {
    small_data()
}

fn config(seed: u64) -> FitConfig {
    let method = MethodConfig::Dcd(DcdConfig {
        langevin_steps: 5,
        ..DcdConfig::default()
    });
    small_config(method, STEPS, seed)
}

#[test]
fn a_seeded_dcd_fit_is_reproducible_and_records_its_method() {
    let dev = Device::Cpu;
    let (a, _) = fit(&data(), &config(3), &dev, |_, _| {}).unwrap();
    let (b, _) = fit(&data(), &config(3), &dev, |_, _| {}).unwrap();
    let (c, _) = fit(&data(), &config(4), &dev, |_, _| {}).unwrap();
    assert_eq!(tensors(&a), tensors(&b));
    assert_ne!(tensors(&a), tensors(&c));
    assert_eq!(a.metadata.method, Method::Dcd);
    assert_eq!(a.metadata.sampler, SamplerKind::Langevin);
    assert_eq!(a.metadata.format_version(), 6);
    assert!(a.metadata.policy.is_none());
    let langevin = a.metadata.langevin.as_ref().unwrap();
    assert_eq!(langevin.steps, 5);
    assert_eq!(langevin.step_sizes.len(), 5);
    // Step sizes grow with the level's noise.
    assert!(langevin.step_sizes.windows(2).all(|w| w[0] < w[1]));
    let names: Vec<&str> = a.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("energy.") || n.starts_with("calibration.")),
        "{names:?}"
    );
    let x = a.model.sample(50, 9).unwrap();
    assert_eq!(x, a.model.sample(50, 9).unwrap());
    assert_ne!(x, a.model.sample(50, 10).unwrap());
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn a_dcd_run_resumes_to_the_uninterrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    let mixture = config(3);
    let mut gaussian = config(3);
    let network = gaussian.network.as_mut().unwrap();
    network.base_components = 0;
    network.base_std = ddaebm_train::fit::DEFAULT_BASE_STD;
    let mut short_run = config(3);
    short_run.method = MethodConfig::Dcd(DcdConfig {
        langevin_steps: 5,
        short_run_cd: true,
        ..DcdConfig::default()
    });
    for (name, cfg) in [
        ("mixture", mixture),
        ("gaussian", gaussian),
        ("short-run", short_run),
    ] {
        let (full, _) = fit(&data(), &cfg, &Device::Cpu, |_, _| {}).unwrap();
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        let resumed = interrupted_then_resumed(&data(), &cfg, &folder, STEPS / 2);
        assert_eq!(tensors(&full), tensors(&resumed), "{name}");
    }
}

#[test]
fn the_c_abi_samples_a_dcd_model_as_the_library_does() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = fit(&data(), &config(5), &Device::Cpu, |_, _| {}).unwrap();
    assert_c_abi_samples_as_the_library(&m, dir.path(), 40, 123);
}

#[test]
fn a_dcd_image_model_trains_and_samples() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let n = 96;
    // 1×6×4 images: a bright bar on one of four rows.
    let mut pixels = vec![0f32; n * 24];
    for (i, img) in pixels.chunks_exact_mut(24).enumerate() {
        let row = 1 + i % 4;
        for x in 0..4 {
            img[row * 4 + x] = 200.0 + rand::Rng::random_range(&mut rng, 0.0..50.0f32);
        }
    }
    let data = Matrix {
        rows: n,
        cols: 24,
        data: pixels,
        image: Some(ImageLayout {
            shape: [1, 6, 4],
            range: Some([0.0, 255.0]),
        }),
    };
    let mut network = ddaebm_train::fit::default_image_network([1, 6, 4], [0.0, 255.0]);
    network.image.as_mut().unwrap().base_channels = 8;
    let cfg = FitConfig {
        train: TrainConfig {
            steps: 6,
            batch_size: 16,
            ..TrainConfig::image_default()
        },
        method: MethodConfig::Dcd(DcdConfig {
            langevin_steps: 3,
            ..DcdConfig::default()
        }),
        network: Some(network),
        ..FitConfig::default()
    };
    let (m, _) = fit(&data, &cfg, &Device::Cpu, |_, _| {}).unwrap();
    assert_eq!(m.metadata.method, Method::Dcd);
    assert!(m.metadata.network.image.is_some());
    let x = m.model.sample(5, 1).unwrap();
    assert_eq!(x.len(), 5 * 24);
    assert!(x.iter().all(|v| v.is_finite()));
    assert_eq!(x, m.model.sample(5, 1).unwrap());
}

/// Moments `(mean, mean of x²)` of each column.
fn moments(x: &Tensor) -> Vec<(f64, f64)> {
    let (n, d) = x.dims2().unwrap();
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    (0..d)
        .map(|j| {
            let col = v.iter().skip(j).step_by(d).map(|&x| f64::from(x));
            let (s1, s2) = col.fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
            (s1 / n as f64, s2 / n as f64)
        })
        .collect()
}

/// For a Gaussian energy `f = −½ Σ (x − μ)²/v`, the contrastive loss's gradient with respect to
/// the natural parameters `(μ/v, −1/(2v))` is the gap between the positives' and the negatives'
/// moments `(E x, E x²)`. Returns its largest absolute entry when the energy at level `k` is the
/// data's exact diffused density with variances scaled by `scale`, the learned part set to 0.
fn moment_gap(short_run_cd: bool, scale: f64, k: usize) -> f64 {
    let dev = Device::Cpu;
    let schedule = ScheduleConfig::ddaebm(5);
    let built = ddaebm::Schedule::new(schedule.clone()).unwrap();
    let mut network = ddaebm::NetworkConfig::toy(2);
    network.head_widths = vec![8, 8];
    network.branch_widths = vec![4, 4];
    network.base_components = 1;
    // c = 1: at these levels the posterior chains then mix within K = 20 steps from a·y, so a
    // gap measures the estimator, not an unfinished chain (at the default c = 0.7 the chains
    // are shorter in effect, and training absorbs that into the energy).
    let cfg = DcdConfig {
        short_run_cd,
        step_scale: 1.0,
        ..DcdConfig::default()
    };
    let mut trainer = DcdTrainer::new(cfg, 1, schedule, 0, network, &dev).unwrap();
    for (name, var) in trainer.vars().data().lock().unwrap().iter() {
        if !name.starts_with("energy.base.") {
            var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
        }
    }
    let (mu, v0) = ([1.0f64, -0.5], 0.5f64);
    let (mut means, mut variances) = (vec![], vec![]);
    for level in 0..5 {
        let (a, s) = (built.a_s_cum[level], built.sigmas_cum[level]);
        for m in mu {
            means.push((a * m) as f32);
            variances.push(((a * a * v0 + s * s) * scale) as f32);
        }
    }
    trainer
        .set_base_measure(&MixtureParams {
            log_weights: vec![0.0],
            means,
            variances,
        })
        .unwrap();
    let n = 20_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(k as u64);
    let noise = ddaebm::sampler::normal_tensor(&mut rng, n, 2, &dev).unwrap();
    let x = (noise * v0.sqrt())
        .unwrap()
        .broadcast_add(&Tensor::new(&[[1.0f32, -0.5]], &dev).unwrap())
        .unwrap();
    let (pos, neg) = trainer.pairs(&x, &vec![k; n]).unwrap();
    moments(&pos)
        .iter()
        .zip(moments(&neg))
        .map(|(p, q)| (p.0 - q.0).abs().max((p.1 - q.1).abs()))
        .fold(0.0, f64::max)
}

/// DCD's gradient nearly vanishes at the true energy and does not when the energy is wrong;
/// short-run CD's does not vanish even at the truth (its chains do not reach the data).
///
/// Levels 1–3. At level 1 the tie's curvature (a²/σ² ≈ 1900) dwarfs the prior's (about 2), so
/// even doubled variances barely move the posterior: the wrong energy is told apart at levels 2
/// and 3. At the top level (4 of 5) the step to level 5 is nearly pure noise, so the tie is too
/// weak to matter and DCD's chain behaves like short-run CD's; both then show ULA's widening
/// (`docs/method.md#dcd`).
#[test]
fn dcd_negatives_match_the_data_where_the_energy_is_the_truth() {
    let gaps: Vec<(usize, f64, f64, f64)> = (1..=4)
        .map(|k| {
            (
                k,
                moment_gap(false, 1.0, k),
                moment_gap(false, 2.0, k),
                moment_gap(true, 1.0, k),
            )
        })
        .collect();
    for (k, at_truth, wrong, short_run) in &gaps {
        eprintln!("level {k}: DCD at the truth {at_truth:.4}, doubled variances {wrong:.4}, short-run CD at the truth {short_run:.4}");
    }
    for &(k, at_truth, wrong, short_run) in &gaps[..3] {
        assert!(at_truth < 0.03, "level {k}: {at_truth}");
        assert!(
            short_run > 10.0 * at_truth,
            "level {k}: {short_run} vs {at_truth}"
        );
        if k >= 2 {
            assert!(wrong > 3.0 * at_truth, "level {k}: {wrong} vs {at_truth}");
        }
    }
}

// The method works, at CI size: on 8 Gaussians, DCD's energy ranks data above points between
// modes and its annealed Langevin samples cover every mode and stay on them.
#[test]
fn dcd_on_8_gaussians_ranks_data_first_and_samples_every_mode() {
    let toy = Toy::gaussians8();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let rows = 4000;
    let data = Matrix {
        rows,
        cols: 2,
        data: toy.sample(rows, &mut rng),
        image: None,
    };
    let cfg = FitConfig {
        train: TrainConfig {
            steps: 400,
            ..TrainConfig::gcd_default()
        },
        method: MethodConfig::Dcd(DcdConfig::default()),
        ..FitConfig::default()
    };
    let held_out = toy.sample(2000, &mut rng);
    let between = toy.between_modes(2000, &mut rng);
    let (m, _) = fit(&data, &cfg, &Device::Cpu, |_, _| {}).unwrap();
    let samples = m.model.sample(2000, 0).unwrap();
    let report = toy.mode_report(&samples);
    let auroc_between = auroc(
        &m.model.energy(&held_out, 2000).unwrap(),
        &m.model.energy(&between, 2000).unwrap(),
    );
    eprintln!("DCD: {report:?}, AUROC {auroc_between:.4}");
    assert_eq!(report.modes_covered, 8);
    assert!(report.within_3_sigma >= 0.85, "{report:?}");
    assert!(auroc_between >= 0.95, "{auroc_between}");
}
