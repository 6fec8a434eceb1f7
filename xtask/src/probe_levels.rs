//! Research probe (not part of the product): per-level log-densities of a model on a data file,
//! to compare the level-0 energy with scores built from the other levels (bench/ood/README.md).
//!
//! `cargo run -p xtask -- probe-levels MODEL DATA OUT.npy` writes an (n, 2T) f32 array: columns 0..T are
//! `f(a_k x, k)` on the clean input scaled to level k, columns T..2T the mean over 16 noise draws
//! of `f(a_k x + s_k ε, k)` (log-densities: higher = more in-distribution).

use anyhow::Result;
use candle::{Device, Tensor};
use ddaebm::nn::embedding::level_tensor;
use ddaebm::Model;
use rand::SeedableRng;

/// `args`: MODEL DATA OUT.npy.
pub fn run(args: &[String]) -> Result<()> {
    if args.len() != 3 {
        anyhow::bail!("usage: probe-levels MODEL DATA OUT.npy");
    }
    let dev = Device::Cpu;
    let model = Model::open(&args[0], &dev)?;
    let m = ddaebm_train::data::load_matrix(&args[1], None)?;
    let d = m.cols;
    let x = Tensor::from_slice(&m.data, (m.rows, d), &dev)?;
    let x = model.normalize(&x)?;
    let s = model.schedule();
    let t = s.num_timesteps();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut cols: Vec<Vec<f32>> = vec![];
    for k in 0..t {
        let xs = (&x * s.a_s_cum[k])?;
        let lv = level_tensor(k, m.rows, &dev)?;
        cols.push(model.energy_net().log_density(&xs, &lv)?.to_vec1()?);
    }
    for k in 0..t {
        let mut acc = vec![0f32; m.rows];
        for _ in 0..16 {
            let eps = ddaebm::sampler::normal_tensor(&mut rng, m.rows, d, &dev)?;
            let xs = ((&x * s.a_s_cum[k])? + (eps * s.sigmas_cum[k])?)?;
            let lv = level_tensor(k, m.rows, &dev)?;
            let f: Vec<f32> = model.energy_net().log_density(&xs, &lv)?.to_vec1()?;
            for (a, v) in acc.iter_mut().zip(f) {
                *a += v / 16.0;
            }
        }
        cols.push(acc);
    }
    let n = m.rows;
    let mut out = Vec::with_capacity(n * 2 * t);
    for i in 0..n {
        for c in &cols {
            out.push(c[i]);
        }
    }
    ddaebm_train::data::write_npy(&args[2], &out, &[n, 2 * t])?;
    Ok(())
}
