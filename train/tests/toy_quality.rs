//! Sampler and detector quality on the 25-Gaussians data (`docs/method.md#toy-data`), through the same `fit`
//! path the CLI uses.
//!
//! CI runs `fit` with its defaults for the data (the mixture base measure, 3 000 joint iterations
//! and the generator-only phase) on 20 000 rows, the run a new user makes, and checks the bar of
//! `docs/method.md#training-length`: at least 24 of 25 modes, 80% of 4 000 samples within 3σ of
//! a centre, AUROC of data vs between-mode points at least 0.9, the training record's
//! sample-quality figure, in under 15 minutes of the test build (219 s measured here). Before
//! the generator-only phase the same run gave 19% within 3σ: the test fails if the default
//! sampler collapses again. With
//! `DDAEBM_FULL_QUALITY=1` it runs the demo's fit instead (its networks, 30 000 joint
//! iterations) and checks: at least 24 of 25 modes, 75% within 3σ, AUROC at least 0.95, in
//! under 15 minutes.

use std::time::Instant;

use candle::Device;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{default_network, fit, FitConfig};
use ddaebm_train::metrics::auroc;
use ddaebm_train::toy;
use rand::SeedableRng;

/// The allocator `ddaebm-train` uses: this test trains as long as a CLI fit does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bar {
    /// The demo's networks and joint iterations instead of `fit`'s defaults.
    demo: bool,
    min_modes: usize,
    min_within: f64,
    min_auroc: f64,
    /// Most 1-NN accuracy of the training record's sample-quality figure.
    max_nn_accuracy: f64,
    max_seconds: f64,
}

#[test]
fn fit_on_25_gaussians_covers_the_modes_and_ranks_data_first() {
    // Like `ddaebm-train fit`: one thread is fastest for these small networks. Set before any
    // tensor operation of this process (this file holds a single test).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let full = std::env::var("DDAEBM_FULL_QUALITY").is_ok_and(|v| v == "1");
    let bar = if full {
        Bar {
            demo: true,
            // Measured by `ddaebm-train demo`: 25 modes, 78.8% within 3σ, AUROC 1.000, 379 s.
            min_modes: 24,
            min_within: 0.75,
            min_auroc: 0.95,
            max_nn_accuracy: 1.0,
            max_seconds: 900.0,
        }
    } else {
        Bar {
            demo: false,
            // The issue-2 bar, for `fit`'s defaults (measured: docs/method.md#training-length).
            min_modes: 24,
            min_within: 0.80,
            min_auroc: 0.9,
            // A collapsed sampler is told apart from held-out rows almost always (≈ 1).
            max_nn_accuracy: 0.75,
            // 219 s in the test build here, beside the other tests; CI machines have been up to
            // 2.6× slower. The bar (under 10 minutes) is for the release CLI.
            max_seconds: 900.0,
        }
    };
    let mut cfg = FitConfig::default();
    if bar.demo {
        // The demo's networks (isotropic Gaussian base) and length; its sampler needs no
        // generator-only phase.
        cfg.network = Some(default_network(2));
        cfg.train.steps = 30_000;
        cfg.train.generator_steps = Some(0);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data = Matrix::new(20_000, 2, toy::sample(20_000, &mut rng)).unwrap();
    let start = Instant::now();
    let (fitted, summary) = fit(&data, &cfg, &Device::Cpu, |_, _| {}).unwrap();
    let seconds = start.elapsed().as_secs_f64();

    let samples = fitted.model.sample(4000, 0).unwrap();
    let report = toy::mode_report(&samples);
    let fresh = toy::sample(1000, &mut rng);
    let between = toy::between_modes(1000, &mut rng);
    let roc = auroc(
        &fitted.model.energy(&fresh, 1000).unwrap(),
        &fitted.model.energy(&between, 1000).unwrap(),
    );
    let quality = summary.sample_quality.expect("a sample-quality figure");
    eprintln!(
        "{} steps in {seconds:.0} s ({:.1} it/s): {}/25 modes, {:.1}% within 3σ, AUROC {roc:.4}, \
         1-NN accuracy {:.3}, MMD² {:.4}",
        cfg.total_steps(2),
        summary.iterations_per_second,
        report.modes_covered,
        100.0 * report.within_3_sigma,
        quality.nn_accuracy,
        quality.mmd2
    );
    // The figure is the one the model file records.
    assert_eq!(
        fitted.metadata.training["sample_quality"]["nn_accuracy"].as_f64(),
        Some(quality.nn_accuracy)
    );
    assert!(
        quality.nn_accuracy <= bar.max_nn_accuracy,
        "1-NN accuracy {}",
        quality.nn_accuracy
    );
    assert!(
        report.modes_covered >= bar.min_modes,
        "modes: {:?}",
        report.counts
    );
    assert!(report.within_3_sigma >= bar.min_within, "{report:?}");
    assert!(roc >= bar.min_auroc, "AUROC {roc}");
    assert!(seconds <= bar.max_seconds, "took {seconds:.0} s");
    // The calibrated threshold accepts about 95% of fresh in-distribution rows.
    let e = fitted.model.energy(&fresh, 1000).unwrap();
    let tpr = e.iter().filter(|&&v| v <= fitted.model.threshold()).count() as f64 / 1000.0;
    assert!(
        (tpr - 0.95).abs() < 0.04,
        "TPR at the stored threshold: {tpr}"
    );
}
