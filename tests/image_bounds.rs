//! A small model file that declares a huge image (1024 × 1024 pixels, 8 resolutions, 16 blocks
//! each, one channel) opens without allocating in proportion to the image: nothing per pixel is
//! built until rows are scored. Linux only (reads /proc/self/status); elsewhere it skips.
//!
//! One test in its own binary, so no other test's allocations move the numbers.

mod support;

use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::format::CALIBRATION_TENSOR;
use ddaebm::{
    CalibrationSummary, EnergyNet, Generator, ImageConfig, Model, ModelMetadata, NetworkConfig,
    Normalization, ScheduleConfig,
};
use support::status_bytes;

#[test]
fn a_declared_huge_image_costs_nothing_per_pixel_at_open() {
    if status_bytes("VmRSS:").is_none() {
        eprintln!("skipped: /proc/self/status is not readable here");
        return;
    }
    let side = 1024;
    let image = ImageConfig {
        channels: 1,
        height: side,
        width: side,
        pixel_range: [0.0, 1.0],
        base_channels: 1,
        channel_mult: vec![1; 8],
        blocks_per_stage: 16,
        groups: 1,
    };
    let mut network = NetworkConfig::toy(side * side);
    network.image = Some(image);
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    EnergyNet::new(&network, 4, vb.pp("energy")).unwrap();
    Generator::new(&network, 4, vb.pp("generator")).unwrap();
    let mut tensors: Vec<(String, Tensor)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
        .collect();
    tensors.push((
        CALIBRATION_TENSOR.into(),
        Tensor::new(&[0f32], &dev).unwrap(),
    ));
    let metadata = ModelMetadata {
        method: Default::default(),
        sampler: Default::default(),
        policy: None,
        langevin: None,
        network,
        schedule: ScheduleConfig::default(),
        normalization: Normalization {
            mean: vec![0.5; side * side],
            std: vec![0.5; side * side],
        },
        calibration: CalibrationSummary {
            threshold: 0.0,
            target_tpr: 0.95,
            num_samples: 1,
        },
        training: serde_json::Value::Null,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-image.safetensors");
    ddaebm::write_model_file(&path, &metadata, &tensors).unwrap();
    let file_size = std::fs::metadata(&path).unwrap().len();

    let before = status_bytes("VmRSS:").unwrap();
    let model = Model::open(&path, &dev).unwrap();
    let growth = status_bytes("VmRSS:").unwrap().saturating_sub(before);
    println!(
        "file {:.1} MiB, resident set grew by {:.1} MiB at open",
        file_size as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );
    // The metadata holds two 2^20-value normalisation vectors (as JSON and as tensors); one
    // 3×3 gather index per convolution at full resolution would be 36 MiB each, ×33 per network.
    assert!(
        growth < 8 * file_size + (64 << 20),
        "opening grew the resident set by {growth} bytes for a {file_size}-byte file"
    );
    assert_eq!(model.input_dim(), side * side);
}
