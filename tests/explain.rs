//! `Model::explain`: integrated-gradient attributions of the energy, complete (they sum to
//! `E(x) − E(reference)`) and pointing at the feature that made a row an outlier.

mod support;

use ddaebm::Model;
use support::{random_model, rows, Kind};

/// `E(x) − E(r)` per row, `r` the normalisation's mean.
fn energy_gap(model: &Model, x: &[f32], n: usize) -> Vec<f32> {
    let d = model.input_dim();
    let reference = model.metadata().normalization.mean.clone();
    let e_ref = model.energy(&reference, 1).unwrap()[0];
    let e = model.energy(x, n).unwrap();
    assert_eq!(x.len(), n * d);
    e.iter().map(|v| v - e_ref).collect()
}

#[test]
fn attributions_sum_to_the_energy_gap() {
    for (dim, kind) in [
        (3, Kind::BaseMeasure),
        (6, Kind::BaseMeasure),
        (4, Kind::PlainMlp),
    ] {
        let model = random_model(dim, &[32, 32], kind);
        let n = 40;
        let x = rows(n, dim, 5);
        let a = model.explain(&x, n).unwrap();
        assert_eq!(a.len(), n * dim);
        for (row, gap) in a.chunks(dim).zip(energy_gap(&model, &x, n)) {
            let sum: f32 = row.iter().sum();
            // The midpoint rule with 64 points on these smooth paths.
            assert!(
                (sum - gap).abs() <= 2e-3 * gap.abs().max(1.0),
                "dim {dim}: attributions sum to {sum}, energy gap {gap}"
            );
        }
    }
}

#[test]
fn a_feature_moved_far_out_gets_the_largest_attribution() {
    for dim in [2, 5, 9] {
        let model = random_model(dim, &[32, 32], Kind::BaseMeasure);
        let mean = model.metadata().normalization.mean.clone();
        let std = model.metadata().normalization.std.clone();
        for feature in 0..dim {
            // A typical row (the mean plus a little), then the feature moved 6 std out.
            let mut x: Vec<f32> = rows(1, dim, feature)
                .iter()
                .zip(mean.iter().zip(&std))
                .map(|(v, (m, s))| m + 0.3 * v * s)
                .collect();
            x[feature] = mean[feature] + 6.0 * std[feature];
            let a = model.explain(&x, 1).unwrap();
            let top = (0..dim).max_by(|&i, &j| a[i].total_cmp(&a[j])).unwrap();
            assert_eq!(top, feature, "dim {dim}: attributions {a:?}");
        }
    }
}

#[test]
fn explain_checks_its_input_as_energy_does() {
    let model = random_model(3, &[16], Kind::BaseMeasure);
    assert!(model.explain(&[0.0; 5], 2).is_err());
    assert!(model.explain(&[0.0, f32::NAN, 0.0], 1).is_err());
    assert!(model.explain(&[], 0).unwrap().is_empty());
}
