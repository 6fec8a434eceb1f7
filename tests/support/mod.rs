//! Models for the integration tests, built in memory from randomly initialised networks.

#![allow(dead_code)] // each test binary uses its own part

use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::format::{ModelFileContents, CALIBRATION_TENSOR};
use ddaebm::{
    Calibration, EnergyNet, Generator, Model, ModelMetadata, NetworkConfig, Normalization,
    ScheduleConfig,
};

/// How the energy network is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The trainer's default: Gaussian base measure (s = 0.7) and soft clip at ±4.
    BaseMeasure,
    /// Neither (files written before they existed): the MLP alone.
    PlainMlp,
}

/// A randomly initialised model with `dim` features, head widths `head`, and a normalisation
/// with mean `(0, 1, −2, 3, …)` and std `(1, 0.5, 2, 0.5, …)` (feature 0 is the identity).
/// Calibrated on the energies of a few hundred rows near the mean, so the threshold is in a
/// realistic place.
pub fn random_model(dim: usize, head: &[usize], kind: Kind) -> Model {
    let dev = Device::Cpu;
    let mut network = NetworkConfig::toy(dim);
    network.head_widths = head.to_vec();
    if kind == Kind::BaseMeasure {
        network.base_std = 0.7;
        network.input_soft_clip = 4.0;
    }
    let tensors = random_weights(&network, 0.0, 1.0);
    let normalization = Normalization {
        mean: (0..dim)
            .map(|i| match i % 4 {
                0 => 0.0,
                1 => 1.0,
                2 => -2.0,
                _ => 3.0,
            })
            .collect(),
        std: (0..dim).map(|i| [1.0, 0.5, 2.0, 0.5][i % 4]).collect(),
    };
    // A provisional calibration to open the model, then the real one from its own energies.
    let provisional = Calibration::fit(vec![0.0], 0.95).unwrap();
    let build = |cal: &Calibration| {
        let mut tensors = tensors.clone();
        tensors.push((
            CALIBRATION_TENSOR.into(),
            Tensor::from_slice(cal.sorted_energies(), cal.sorted_energies().len(), &dev).unwrap(),
        ));
        let metadata = ModelMetadata {
            method: Default::default(),
            sampler: Default::default(),
            policy: None,
            langevin: None,
            network: network.clone(),
            schedule: ScheduleConfig::default(),
            normalization: normalization.clone(),
            calibration: cal.summary(),
            training: serde_json::json!({"note": "integration test"}),
        };
        let contents = ModelFileContents {
            metadata,
            tensors: tensors.into_iter().collect(),
        };
        Model::from_contents(contents, &dev).unwrap()
    };
    let model = build(&provisional);
    let held_out = model
        .energy(&rows(300, dim, 1), 300)
        .expect("scoring calibration rows");
    build(&Calibration::fit(held_out, 0.95).unwrap())
}

/// Randomly initialised `energy.*` and `generator.*` tensors for `network` (4 levels), with
/// BatchNorm running statistics from one train-mode pass on N(`mean`, `std`²) rows.
pub fn random_weights(network: &NetworkConfig, mean: f32, std: f32) -> Vec<(String, Tensor)> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    EnergyNet::new(network, 4, vb.pp("energy")).unwrap();
    let g = Generator::new(network, 4, vb.pp("generator")).unwrap();
    let dim = network.input_dim;
    let x = Tensor::randn(mean, std, (64, dim), &dev).unwrap();
    let z = Tensor::randn(0f32, 1.0, (64, network.latent_dim), &dev).unwrap();
    let k = Tensor::zeros(64, DType::U32, &dev).unwrap();
    g.forward_t(&x, &z, &k, true).unwrap();
    let data = vm.data().lock().unwrap();
    data.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
        .collect()
}

/// `n` deterministic rows of `dim` features in the raw scale, around the model's mean
/// (`variant` picks a different set).
pub fn rows(n: usize, dim: usize, variant: usize) -> Vec<f32> {
    let mean = [0.0f32, 1.0, -2.0, 3.0];
    (0..n * dim)
        .map(|i| {
            let h = (i * 37 + variant * 1009) % 101;
            mean[(i % dim) % 4] + (h as f32 - 50.0) / 25.0
        })
        .collect()
}

/// A `kB` line of /proc/self/status (e.g. `"VmRSS:"`), in bytes; `None` where it is unreadable.
pub fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
