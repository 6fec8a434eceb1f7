//! Detection metrics on energies (higher = more out-of-distribution; OOD is the positive class).

/// All scores with their label (`true` = OOD), sorted ascending by score.
fn labelled_sorted(in_dist: &[f32], ood: &[f32]) -> Vec<(f32, bool)> {
    let mut all: Vec<(f32, bool)> = in_dist
        .iter()
        .map(|&s| (s, false))
        .chain(ood.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all
}

/// Area under the ROC curve: the probability that a random OOD row scores above a random
/// in-distribution row, ties counting one half (Mann–Whitney U).
pub fn auroc(in_dist: &[f32], ood: &[f32]) -> f64 {
    if in_dist.is_empty() || ood.is_empty() {
        return f64::NAN;
    }
    // Rank all scores together (average ranks for ties), sum the ranks of the OOD rows.
    let all = labelled_sorted(in_dist, ood);
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * all[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let (n_in, n_out) = (in_dist.len() as f64, ood.len() as f64);
    (rank_sum - n_out * (n_out + 1.0) / 2.0) / (n_in * n_out)
}

/// Area under the precision-recall curve with OOD as positive (average precision; tied scores
/// enter together).
pub fn aupr(in_dist: &[f32], ood: &[f32]) -> f64 {
    if ood.is_empty() {
        return f64::NAN;
    }
    let mut all = labelled_sorted(in_dist, ood);
    all.reverse();
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        for p in &all[i..=j] {
            if p.1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
        }
        let recall = tp / ood.len() as f64;
        ap += (recall - prev_recall) * tp / (tp + fp);
        prev_recall = recall;
        i = j + 1;
    }
    ap
}

/// False-positive rate at the given true-positive rate, where TPR is measured on the
/// in-distribution rows (the fraction of them accepted): the threshold accepts the lowest
/// `tpr` share of in-distribution energies, and the FPR is the share of OOD rows it accepts too.
pub fn fpr_at_tpr(in_dist: &[f32], ood: &[f32], tpr: f64) -> f64 {
    if in_dist.is_empty() || ood.is_empty() {
        return f64::NAN;
    }
    let mut sorted = in_dist.to_vec();
    sorted.sort_by(f32::total_cmp);
    let idx = ((tpr * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    let threshold = sorted[idx];
    ood.iter().filter(|&&s| s <= threshold).count() as f64 / ood.len() as f64
}

/// Sliced Wasserstein-1 distance between two row-major 2-D point sets: the mean over 128
/// seeded random directions of the 1-D W1 between the projections (the first `n` points of
/// each, `n` the smaller count; sorted differences).
pub fn sliced_wasserstein(a: &[f32], b: &[f32]) -> f64 {
    use rand::{Rng, SeedableRng};
    let n = (a.len() / 2).min(b.len() / 2);
    if n == 0 {
        return 0.0;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x51_1CED);
    let dirs = 128;
    let mut total = 0.0;
    for _ in 0..dirs {
        let th: f64 = rng.random_range(0.0..std::f64::consts::PI);
        let (c, s) = (th.cos(), th.sin());
        let proj = |p: &[f32]| -> Vec<f64> {
            let mut v: Vec<f64> = p
                .chunks_exact(2)
                .take(n)
                .map(|q| c * q[0] as f64 + s * q[1] as f64)
                .collect();
            v.sort_by(|x, y| x.total_cmp(y));
            v
        };
        let (pa, pb) = (proj(a), proj(b));
        total += pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).sum::<f64>() / n as f64;
    }
    total / dirs as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_extremes_ties_and_a_hand_example() {
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
        // ID {1, 3}, OOD {2, 4}: pairs (2>1 ✓, 2>3 ✗, 4>1 ✓, 4>3 ✓) → 3/4.
        assert_eq!(auroc(&[1.0, 3.0], &[2.0, 4.0]), 0.75);
    }

    #[test]
    fn aupr_hand_example() {
        // Descending: 4 (OOD), 3 (ID), 2 (OOD), 1 (ID): AP = ½·1 + ½·(2/3).
        let ap = aupr(&[1.0, 3.0], &[2.0, 4.0]);
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
        assert_eq!(aupr(&[0.0], &[1.0, 2.0]), 1.0);
    }

    #[test]
    fn fpr_at_tpr_hand_example() {
        let id: Vec<f32> = (1..=20).map(|i| i as f32).collect();
        // 95% of 20 → the 19th smallest (19) is the threshold; OOD 18.5 and 19 are accepted.
        assert_eq!(fpr_at_tpr(&id, &[18.5, 19.0, 19.5, 30.0], 0.95), 0.5);
        assert_eq!(fpr_at_tpr(&id, &[100.0], 0.95), 0.0);
    }

    #[test]
    fn sliced_wasserstein_of_a_shift_is_its_mean_projection() {
        let a: Vec<f32> = (0..400)
            .flat_map(|i| [(i % 20) as f32, (i / 20) as f32])
            .collect();
        assert_eq!(sliced_wasserstein(&a, &a), 0.0);
        // Shifting every point by (3, 0): each direction θ moves the projections by 3|cos θ|,
        // whose mean over θ ∈ [0, π) is 6/π.
        let b: Vec<f32> = a.chunks(2).flat_map(|p| [p[0] + 3.0, p[1]]).collect();
        let d = sliced_wasserstein(&a, &b);
        assert!((d - 6.0 / std::f64::consts::PI).abs() < 0.1, "{d}");
        assert_eq!(sliced_wasserstein(&a, &b), sliced_wasserstein(&b, &a));
    }
}
