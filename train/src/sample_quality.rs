//! How close a model's samples are to held-out rows: the figure `fit` stores in the training
//! record (`training.sample_quality`) so that a user sees whether the sampler is usable.
//!
//! Both statistics compare `n` samples with `n` held-out rows in the model's normalised units
//! (so every feature counts alike):
//!
//! - **1-NN accuracy**: pool the two sets and classify each point by the set of its nearest other
//!   point (Euclidean). 0.5 when the samples are indistinguishable from held-out data; near 1
//!   when they are easy to tell apart (collapsed onto a few modes, or off the data). A few
//!   hundred rows per set resolve it to about ±0.03.
//! - **MMD²** (unbiased) with the Gaussian kernel `exp(−‖x − y‖² / m)`, where `m` is the median
//!   squared distance between pooled points: 0 in expectation for the same distribution.

use serde::Serialize;

/// The training record's sample-quality figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SampleQuality {
    /// Rows per set.
    pub rows: usize,
    /// Leave-one-out 1-nearest-neighbour accuracy of telling samples from held-out rows.
    pub nn_accuracy: f64,
    /// Unbiased MMD² at the median bandwidth.
    pub mmd2: f64,
}

fn squared_distances(points: &[f32], d: usize) -> Vec<f64> {
    let n = points.len() / d;
    let mut out = vec![0f64; n * n];
    for i in 0..n {
        let a = &points[i * d..(i + 1) * d];
        for j in i + 1..n {
            let b = &points[j * d..(j + 1) * d];
            let s: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
            out[i * n + j] = s;
            out[j * n + i] = s;
        }
    }
    out
}

/// Compares `samples` with `held_out` (row-major, `d` values per row; the first `n` rows of
/// each, `n` the smaller count). `None` with fewer than 2 rows per set.
pub fn sample_quality(samples: &[f32], held_out: &[f32], d: usize) -> Option<SampleQuality> {
    let n = (samples.len() / d).min(held_out.len() / d);
    if d == 0 || n < 2 {
        return None;
    }
    let mut pooled = samples[..n * d].to_vec();
    pooled.extend_from_slice(&held_out[..n * d]);
    let m = 2 * n;
    let dist = squared_distances(&pooled, d);
    // 1-NN: a point is classified correctly when its nearest other point is from its own set.
    let correct = (0..m)
        .filter(|&i| {
            let nearest = (0..m)
                .filter(|&j| j != i)
                .min_by(|&a, &b| dist[i * m + a].total_cmp(&dist[i * m + b]))
                .expect("at least 4 points");
            (nearest < n) == (i < n)
        })
        .count();
    let mut off_diagonal: Vec<f64> = (0..m)
        .flat_map(|i| (i + 1..m).map(move |j| (i, j)))
        .map(|(i, j)| dist[i * m + j])
        .collect();
    let mid = off_diagonal.len() / 2;
    let median = *off_diagonal
        .select_nth_unstable_by(mid, |a, b| a.total_cmp(b))
        .1;
    let scale = if median > 0.0 { median } else { 1.0 };
    let k = |i: usize, j: usize| (-dist[i * m + j] / scale).exp();
    let mean_within = |offset: usize| -> f64 {
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    s += k(offset + i, offset + j);
                }
            }
        }
        s / (n * (n - 1)) as f64
    };
    let mut across = 0.0;
    for i in 0..n {
        for j in 0..n {
            across += k(i, n + j);
        }
    }
    let mmd2 = mean_within(0) + mean_within(n) - 2.0 * across / (n * n) as f64;
    Some(SampleQuality {
        rows: n,
        nn_accuracy: correct as f64 / m as f64,
        mmd2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(n: usize, d: usize, shift: f32, scale: f32, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                shift + scale * z
            })
            .collect()
    }

    #[test]
    fn the_same_distribution_is_indistinguishable_and_a_collapse_is_not() {
        let d = 3;
        let held_out = gaussian(400, d, 0.0, 1.0, 1);
        let same = sample_quality(&gaussian(400, d, 0.0, 1.0, 2), &held_out, d).unwrap();
        assert_eq!(same.rows, 400);
        assert!((same.nn_accuracy - 0.5).abs() < 0.06, "{same:?}");
        assert!(same.mmd2.abs() < 0.01, "{same:?}");
        // Every sample at one point: trivially told apart.
        let collapsed = sample_quality(&gaussian(400, d, 0.5, 0.01, 3), &held_out, d).unwrap();
        assert!(collapsed.nn_accuracy > 0.95, "{collapsed:?}");
        assert!(collapsed.mmd2 > 0.3, "{collapsed:?}");
        // A modest shift lies in between.
        let shifted = sample_quality(&gaussian(400, d, 0.5, 1.0, 4), &held_out, d).unwrap();
        assert!(shifted.nn_accuracy > same.nn_accuracy + 0.03, "{shifted:?}");
        assert!(
            shifted.mmd2 > 0.02 && shifted.mmd2 < collapsed.mmd2,
            "{shifted:?}"
        );
        assert!(sample_quality(&held_out[..d], &held_out, d).is_none());
    }
}
