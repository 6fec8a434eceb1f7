//! Helpers the method tests share (`gcd.rs`, `dcd.rs`): the small 8-Gaussians data and fit
//! settings, a fitted model's tensors as plain vectors, a run stopped and resumed through a
//! checkpoint, sampling through the C ABI.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle::Device;
use ddaebm::ffi::model::{ddaebm_model_free, ddaebm_model_open, ddaebm_sample};
use ddaebm::ffi::status::ddaebm_status;
use ddaebm::Model;
use ddaebm_train::data::Matrix;
use ddaebm_train::fit::{fit, CheckpointConfig, FitConfig, FittedModel, MethodConfig};
use ddaebm_train::toy::Toy;
use ddaebm_train::trainer::TrainConfig;
use rand::SeedableRng;

/// 600 rows of 8 Gaussians (seeded).
pub fn small_data() -> Matrix {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    Matrix {
        rows: 600,
        cols: 2,
        data: Toy::gaussians8().sample(600, &mut rng),
        image: None,
    }
}

/// A short fit of `method` on [`small_data`]: `steps` iterations of batch 64 with the 5-step
/// schedule, the default networks for the data with a narrower head, seeded by `seed`.
pub fn small_config(method: MethodConfig, steps: usize, seed: u64) -> FitConfig {
    let mut network = ddaebm_train::fit::default_network_for(2, 500);
    network.head_widths = vec![32, 32];
    FitConfig {
        train: TrainConfig {
            steps,
            batch_size: 64,
            seed,
            ..TrainConfig::gcd_default()
        },
        method,
        network: Some(network),
        ..FitConfig::default()
    }
}

/// Every tensor of the model file, by name, as f32 values.
pub fn tensors(m: &FittedModel) -> Vec<(String, Vec<f32>)> {
    m.tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

/// Runs `cfg` on `data` with a checkpoint in `dir`, raising the stop flag after iteration
/// `stop_at`, then resumes and returns the resumed run's model.
pub fn interrupted_then_resumed(
    data: &Matrix,
    cfg: &FitConfig,
    dir: &Path,
    stop_at: usize,
) -> FittedModel {
    let dev = Device::Cpu;
    let mut cfg = cfg.clone();
    let ckpt = dir.join(format!("run-{stop_at}.ckpt"));
    cfg.checkpoint = Some(CheckpointConfig {
        path: ckpt.clone(),
        every: 7,
        resume: true,
    });
    let stop = Arc::new(AtomicBool::new(false));
    cfg.stop = Some(stop.clone());
    let flag = stop.clone();
    let err = fit(data, &cfg, &dev, move |step, _| {
        if step + 1 == stop_at {
            flag.store(true, Ordering::SeqCst);
        }
    })
    .err()
    .expect("the run stops");
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(ckpt.exists());
    stop.store(false, Ordering::SeqCst);
    let (m, summary) = fit(data, &cfg, &dev, |_, _| {}).unwrap();
    assert_eq!(summary.resumed_from, Some(stop_at));
    m
}

/// Saves `m` in `dir`, then checks that the C ABI's `ddaebm_sample` on the file gives exactly
/// the rows `Model::sample` gives (on the file and on the fitted model).
pub fn assert_c_abi_samples_as_the_library(m: &FittedModel, dir: &Path, rows: usize, seed: u64) {
    let path = dir.join("model.safetensors");
    m.save(&path).unwrap();
    let model = Model::open(&path, &Device::Cpu).unwrap();
    let want = model.sample(rows, seed).unwrap();
    assert_eq!(want, m.model.sample(rows, seed).unwrap());
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let mut out = vec![0f32; rows * model.input_dim()];
    unsafe {
        let mut ptr = std::ptr::null_mut();
        assert_eq!(
            ddaebm_model_open(c.as_ptr(), std::ptr::null(), &mut ptr),
            ddaebm_status::DDAEBM_OK
        );
        assert_eq!(
            ddaebm_sample(ptr, rows, seed, out.as_mut_ptr(), out.len()),
            ddaebm_status::DDAEBM_OK
        );
        ddaebm_model_free(ptr);
    }
    assert_eq!(out, want);
}
