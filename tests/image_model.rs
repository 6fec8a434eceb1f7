//! Image models (convolutional networks) through the model file, `Model` and the C ABI: format
//! version 3, the pixel scaling, flat channel-major rows, and the image-shape getter.

mod support;

use std::ffi::CString;

use candle::{Device, Tensor};
use ddaebm::ffi::model::{ddaebm_model_free, ddaebm_model_image_shape, ddaebm_model_open};
use ddaebm::ffi::{ddaebm_model, ddaebm_status};
use ddaebm::format::{ModelFileContents, CALIBRATION_TENSOR};
use ddaebm::{
    Calibration, Error, ImageConfig, Model, ModelMetadata, NetworkConfig, Normalization,
    ScheduleConfig,
};

const SHAPE: [usize; 3] = [2, 8, 4];
const RANGE: [f32; 2] = [0.0, 255.0];

fn image_network() -> NetworkConfig {
    let [c, h, w] = SHAPE;
    let mut image = ImageConfig::for_shape(c, h, w, RANGE);
    image.base_channels = 8;
    image.channel_mult = vec![1, 2];
    let mut network = NetworkConfig::toy(c * h * w);
    network.latent_dim = 6;
    network.base_std = 1.0;
    network.image = Some(image);
    network
}

/// Deterministic images in 0–255: a gradient per channel plus a per-image offset.
fn images(n: usize, variant: usize) -> Vec<f32> {
    let d: usize = SHAPE.iter().product();
    (0..n * d)
        .map(|i| ((i % d) * 7 + (i / d) * 13 + variant * 29) as f32 % 256.0)
        .collect()
}

fn metadata(network: &NetworkConfig, cal: &Calibration) -> ModelMetadata {
    let d = network.input_dim;
    ModelMetadata {
        method: Default::default(),
        sampler: Default::default(),
        policy: None,
        langevin: None,
        network: network.clone(),
        schedule: ScheduleConfig::default(),
        normalization: Normalization {
            mean: vec![127.5; d],
            std: vec![127.5; d],
        },
        calibration: cal.summary(),
        training: serde_json::json!({"note": "image model test"}),
    }
}

fn build(network: &NetworkConfig) -> (ModelMetadata, Vec<(String, Tensor)>, Model) {
    let dev = Device::Cpu;
    let weights = support::random_weights(network, 0.0, 1.0);
    let make = |cal: &Calibration| {
        let mut tensors = weights.clone();
        let e = cal.sorted_energies();
        tensors.push((
            CALIBRATION_TENSOR.into(),
            Tensor::from_slice(e, e.len(), &dev).unwrap(),
        ));
        let meta = metadata(network, cal);
        let contents = ModelFileContents {
            metadata: meta.clone(),
            tensors: tensors.iter().cloned().collect(),
        };
        (meta, tensors, Model::from_contents(contents, &dev).unwrap())
    };
    let (_, _, provisional) = make(&Calibration::fit(vec![0.0], 0.95).unwrap());
    let held_out = provisional.energy(&images(100, 1), 100).unwrap();
    make(&Calibration::fit(held_out, 0.95).unwrap())
}

#[test]
fn image_models_are_written_as_version_3_and_score_the_same_after_reopening() {
    let network = image_network();
    let (meta, tensors, model) = build(&network);
    assert_eq!(meta.format_version(), 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.safetensors");
    ddaebm::write_model_file(&path, &meta, &tensors).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().unwrap()["format_version"], "3");

    let reopened = Model::open(&path, &Device::Cpu).unwrap();
    assert_eq!(reopened.metadata().network.image, network.image);
    let x = images(37, 2);
    let e = model.energy(&x, 37).unwrap();
    assert_eq!(reopened.energy(&x, 37).unwrap(), e);
    assert!(e.iter().all(|v| v.is_finite()));
    // Rows are scored independently: a row alone gets its energy from the batch.
    let d = network.input_dim;
    let alone = reopened.energy(&x[5 * d..6 * d], 1).unwrap();
    assert!((alone[0] - e[5]).abs() <= 1e-4 * e[5].abs().max(1.0));
    // The layout is channel-major: swapping the two channels is another image.
    let mut swapped = x[..d].to_vec();
    let plane = d / 2;
    swapped.rotate_left(plane);
    assert_ne!(reopened.energy(&swapped, 1).unwrap()[0], e[0]);

    let samples = reopened.sample(9, 3).unwrap();
    assert_eq!(samples.len(), 9 * d);
    assert!(samples.iter().all(|v| v.is_finite()));
    assert_eq!(reopened.sample(9, 3).unwrap(), samples, "seeded sampling");
}

#[test]
fn image_models_reject_bad_rows_like_vector_models() {
    let (_, _, model) = build(&image_network());
    let d = model.input_dim();
    let mut x = images(3, 0);
    x[d + 5] = f32::NAN;
    match model.energy(&x, 3) {
        Err(Error::NonFinite { row: 1, col: 5 }) => {}
        other => panic!("expected NonFinite at (1, 5), got {other:?}"),
    }
    assert!(matches!(
        model.energy(&x[..d - 1], 1),
        Err(Error::ShapeMismatch { .. })
    ));
    // Huge but finite pixels: a number or +∞, never NaN.
    let huge = vec![f32::MAX; d];
    let e = model.energy(&huge, 1).unwrap()[0];
    assert!(!e.is_nan() && e > model.threshold(), "{e}");
    assert!(model.energy(&[], 0).unwrap().is_empty());
}

#[test]
fn a_file_declaring_version_2_with_an_image_config_is_still_checked() {
    // The image config's own sizes are validated before any tensor is read.
    let mut network = image_network();
    network.image.as_mut().unwrap().groups = 3;
    let err = network.validate().unwrap_err().to_string();
    assert!(err.contains("groups"), "{err}");
    network.image.as_mut().unwrap().groups = 4;
    network.input_dim += 1;
    let err = network.validate().unwrap_err().to_string();
    assert!(err.contains("input_dim"), "{err}");
}

unsafe fn open(path: &std::path::Path) -> *mut ddaebm_model {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let mut m = std::ptr::null_mut();
    assert_eq!(
        ddaebm_model_open(c.as_ptr(), std::ptr::null(), &mut m),
        ddaebm_status::DDAEBM_OK
    );
    m
}

#[test]
fn the_c_abi_reports_the_image_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, tensors, _) = build(&image_network());
    let image_path = dir.path().join("image.safetensors");
    ddaebm::write_model_file(&image_path, &meta, &tensors).unwrap();
    let vector = support::random_model(3, &[8], support::Kind::BaseMeasure);
    let vector_path = dir.path().join("vector.safetensors");
    let weights = support::random_weights(&vector.metadata().network, 0.0, 1.0);
    let mut vector_tensors = weights;
    let cal = vector.calibration().sorted_energies();
    vector_tensors.push((
        CALIBRATION_TENSOR.into(),
        Tensor::from_slice(cal, cal.len(), &Device::Cpu).unwrap(),
    ));
    ddaebm::write_model_file(&vector_path, vector.metadata(), &vector_tensors).unwrap();
    unsafe {
        let m = open(&image_path);
        let (mut c, mut h, mut w) = (9usize, 9usize, 9usize);
        assert_eq!(
            ddaebm_model_image_shape(m, &mut c, &mut h, &mut w),
            ddaebm_status::DDAEBM_OK
        );
        assert_eq!([c, h, w], SHAPE);
        assert_eq!(
            ddaebm_model_image_shape(m, &mut c, std::ptr::null_mut(), &mut w),
            ddaebm_status::DDAEBM_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            ddaebm_model_image_shape(std::ptr::null(), &mut c, &mut h, &mut w),
            ddaebm_status::DDAEBM_ERR_NULL_ARGUMENT
        );
        ddaebm_model_free(m);
        let m = open(&vector_path);
        assert_eq!(
            ddaebm_model_image_shape(m, &mut c, &mut h, &mut w),
            ddaebm_status::DDAEBM_OK
        );
        assert_eq!([c, h, w], [0, 0, 0]);
        ddaebm_model_free(m);
    }
}

#[test]
fn image_batches_are_scored_in_memory_bounded_chunks() {
    let (_, _, model) = build(&image_network());
    let chunk = model.chunk_rows();
    // 2 × 8 × 4 pixels, 16 channels at most, doubled in the U-Net, 9 neighbours, 4 bytes.
    assert_eq!(
        chunk,
        ddaebm::model::IMAGE_CHUNK_BYTES / (32 * 2 * 16 * 9 * 4)
    );
    assert!(chunk < ddaebm::model::CHUNK_ROWS);
    let n = chunk + 7;
    let d = model.input_dim();
    let x = images(n, 4);
    let all = model.energy(&x, n).unwrap();
    let head = model.energy(&x[..chunk * d], chunk).unwrap();
    let tail = model.energy(&x[chunk * d..], 7).unwrap();
    assert_eq!(all, [head, tail].concat());
}

#[test]
fn image_explanations_are_per_pixel_and_complete() {
    let (meta, _, model) = build(&image_network());
    let d = model.input_dim();
    let n = 4;
    let mut x = images(n, 3);
    // Pixels at the reference (the normalisation's mean, a flat grey image) have nothing to
    // explain: their attribution is exactly zero.
    let reference = meta.normalization.mean.clone();
    for row in 0..n {
        x[row * d + 3] = reference[3];
        x[row * d + d - 1] = reference[d - 1];
    }
    let a = model.explain(&x, n).unwrap();
    assert_eq!(
        a.len(),
        n * d,
        "one attribution per pixel, channel-major as the rows"
    );
    assert!(a.iter().all(|v| v.is_finite()));
    let e = model.energy(&x, n).unwrap();
    let e_ref = model.energy(&reference, 1).unwrap()[0];
    for row in 0..n {
        let attr = &a[row * d..(row + 1) * d];
        assert_eq!(attr[3], 0.0);
        assert_eq!(attr[d - 1], 0.0);
        let sum: f32 = attr.iter().sum();
        let gap = e[row] - e_ref;
        assert!(
            (sum - gap).abs() <= 2e-3 * gap.abs().max(1.0),
            "row {row}: attributions sum to {sum}, energy gap {gap}"
        );
    }
}
