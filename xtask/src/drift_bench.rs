//! `drift-bench [key=value ...]`: size and power of the drift test (`Model::drift`,
//! `docs/method.md#drift`) on the 25-Gaussians data, where fresh in-distribution rows can be
//! drawn without end (`bench/drift/`).
//!
//! Fits `fit`'s default detector on `rows` i.i.d. rows (the generator-only phase off: the
//! energy, which is all the test uses, is the same with it), then for batch sizes 100, 300 and
//! 1 000 draws `batches` batches of each kind and reports the share with p < 0.05 (and 0.01):
//!
//! * `in-distribution`: i.i.d. rows of the training distribution (the test's size);
//! * `contaminated 10%`: a tenth of the rows drawn between the modes, the rest as above;
//! * `shifted 0.5σ`: every row moved by half a mode's standard deviation along x.
//!
//! Then the cost of `drift` and `explain` next to `energy` on the same rows.
//!
//! Keys: `rows` (20 000), `batches` (1 000; 0 measures the costs only), `seed` (0).

use std::time::Instant;

use anyhow::Result;
use candle::Device;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{fit, FitConfig};
use ddaebm_train::toy::Toy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::methods::Args;

/// `n` i.i.d. rows: a uniformly drawn centre plus Gaussian noise (the toy's own sampler cycles
/// through the centres, which would make every batch perfectly balanced).
fn iid(toy: &Toy, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let [cx, cy] = toy.centres[rng.random_range(0..toy.centres.len())];
        let (ex, ey): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        out.push((cx + toy.std * ex) as f32);
        out.push((cy + toy.std * ey) as f32);
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    let a = Args::parse(args)?;
    let rows: usize = a.get("rows", 20_000)?;
    let batches: usize = a.get("batches", 1_000)?;
    let seed: u64 = a.get("seed", 0)?;
    let toy = Toy::gaussians25();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD21F7);
    let data = Matrix::new(rows, 2, iid(&toy, rows, &mut rng))?;
    let mut cfg = FitConfig::default();
    cfg.train.seed = seed;
    cfg.train.generator_steps = Some(0);
    let start = Instant::now();
    let (fitted, _) = fit(&data, &cfg, &Device::Cpu, |_, _| {})?;
    let model = fitted.model;
    eprintln!(
        "fitted in {:.0} s; {} calibration rows",
        start.elapsed().as_secs_f64(),
        model.calibration().sorted_energies().len()
    );
    let shift = (0.5 * toy.std) as f32;
    for m in [100usize, 300, 1000].into_iter().filter(|_| batches > 0) {
        for kind in ["in-distribution", "contaminated 10%", "shifted 0.5σ"] {
            let (mut below_05, mut below_01) = (0usize, 0usize);
            let start = Instant::now();
            for _ in 0..batches {
                let mut x = iid(&toy, m, &mut rng);
                match kind {
                    "contaminated 10%" => {
                        let k = m / 10;
                        x[..2 * k].copy_from_slice(&toy.between_modes(k, &mut rng));
                    }
                    "shifted 0.5σ" => x.iter_mut().step_by(2).for_each(|v| *v += shift),
                    _ => {}
                }
                let t = model.drift(&x, m)?;
                below_05 += usize::from(t.p_value < 0.05);
                below_01 += usize::from(t.p_value < 0.01);
            }
            let per_call = start.elapsed().as_secs_f64() / batches as f64;
            println!(
                "{}",
                serde_json::json!({"batch_rows": m, "kind": kind, "batches": batches,
                    "share_p_below_0.05": below_05 as f64 / batches as f64,
                    "share_p_below_0.01": below_01 as f64 / batches as f64,
                    "seconds_per_batch": per_call})
            );
        }
    }
    // Cost of the test beside the energy call on the same rows.
    let x = iid(&toy, 4096, &mut rng);
    let time = |f: &dyn Fn()| {
        f();
        let start = Instant::now();
        for _ in 0..200 {
            f();
        }
        start.elapsed().as_secs_f64() / 200.0
    };
    let e = time(&|| {
        model.energy(&x, 4096).unwrap();
    });
    let d = time(&|| {
        model.drift(&x, 4096).unwrap();
    });
    println!(
        "{}",
        serde_json::json!({"cost": "drift / energy, 4096 rows", "energy_s": e, "drift_s": d, "ratio": d / e})
    );
    // Explanations cost far more per row (EXPLAIN_STEPS gradients): timed on 256 rows.
    let few = &x[..2 * 256];
    let e = time(&|| {
        model.energy(few, 256).unwrap();
    });
    let a = time(&|| {
        model.explain(few, 256).unwrap();
    });
    println!(
        "{}",
        serde_json::json!({"cost": "explain / energy, 256 rows", "energy_s": e, "explain_s": a, "ratio": a / e})
    );
    Ok(())
}
