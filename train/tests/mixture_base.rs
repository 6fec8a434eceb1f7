//! The default fit on vector data with enough rows uses a spherical Gaussian-mixture base
//! measure: written as format version 4, reopened with the same energies, and shaped like the
//! data (low energy on each cluster, higher between clusters, higher still far away). With few
//! rows the default keeps the isotropic Gaussian base (format version 2).

use candle::Device;
use ddaebm::Model;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{fit, FitConfig, MIN_DEFAULT_COMPONENTS};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

const CENTRES: [[f32; 3]; 3] = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [-4.0, -4.0, 1.0]];

/// Rows around three well-separated centres, 0.5 standard deviation.
fn clusters(n: usize, seed: u64) -> Matrix {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * 3);
    for i in 0..n {
        for c in CENTRES[i % 3] {
            let z: f32 = StandardNormal.sample(&mut rng);
            x.push(c + 0.5 * z);
        }
    }
    Matrix::new(n, 3, x).unwrap()
}

fn short_fit(data: &Matrix) -> ddaebm_train::fit::FittedModel {
    let mut cfg = FitConfig::default();
    cfg.train.steps = 150;
    // The energy is what is tested: no generator-only phase (it leaves the energy as it is).
    cfg.train.generator_steps = Some(0);
    fit(data, &cfg, &Device::Cpu, |_, _| {}).unwrap().0
}

#[test]
fn default_fit_with_enough_rows_has_a_mixture_base() {
    let fitted = short_fit(&clusters(900, 1));
    let k = fitted.metadata.network.base_components;
    // 800 training rows after the calibration split (MIN_CALIBRATION_ROWS = 100 of 900): one
    // component per 25 rows.
    assert_eq!(k, 800 / 25);
    assert_eq!(fitted.metadata.network.base_std, 0.0);
    assert_eq!(fitted.metadata.format_version(), 4);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    fitted.save(&path).unwrap();
    let reopened = Model::open(&path, &Device::Cpu).unwrap();
    assert_eq!(reopened.metadata().network.base_components, k);

    let mut probe: Vec<f32> = CENTRES.concat();
    probe.extend([2.0, 2.0, 0.0, 0.0, -2.0, 0.5, 30.0, 30.0, -30.0]);
    let e = reopened.energy(&probe, 6).unwrap();
    assert_eq!(e, fitted.model.energy(&probe, 6).unwrap());
    let worst_centre = e[..3].iter().cloned().fold(f32::MIN, f32::max);
    for (name, between) in [("(2,2,0)", e[3]), ("(0,-2,0.5)", e[4])] {
        assert!(
            between > worst_centre + 2.0,
            "between clusters {name}: {between} vs centres {:?}",
            &e[..3]
        );
    }
    assert!(e[5] > e[3] && e[5] > e[4], "far row {} vs {:?}", e[5], e);

    // Extreme finite rows: a defined energy (finite or +Inf, never NaN), flagged OOD.
    let extreme = [
        1e30f32,
        -1e30,
        0.0,
        f32::MAX,
        f32::MAX,
        f32::MAX,
        -f32::MAX,
        1.0,
        3e38,
    ];
    for e in reopened.energy(&extreme, 3).unwrap() {
        assert!(!e.is_nan() && e > worst_centre, "{e}");
    }

    // A file whose mixture has a zero variance is refused with a clear message.
    let tensors: Vec<_> = fitted
        .tensors
        .iter()
        .map(|(n, t)| match n.as_str() {
            "energy.base.variances" => (n.clone(), t.zeros_like().unwrap()),
            _ => (n.clone(), t.clone()),
        })
        .collect();
    let bad = dir.path().join("bad.safetensors");
    ddaebm::write_model_file(&bad, &fitted.metadata, &tensors).unwrap();
    let err = match Model::open(&bad, &Device::Cpu) {
        Ok(_) => panic!("a zero-variance mixture was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("mixture base measure"), "{err}");
}

#[test]
fn default_fit_with_few_rows_keeps_the_isotropic_base() {
    let rows = 25 * MIN_DEFAULT_COMPONENTS; // a third held out leaves fewer than 8 × 25
    let fitted = short_fit(&clusters(rows, 2));
    assert_eq!(fitted.metadata.network.base_components, 0);
    assert!(fitted.metadata.network.base_std > 0.0);
    assert_eq!(fitted.metadata.format_version(), 2);
}
