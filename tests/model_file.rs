//! Model file round trips and hostile files, through the public API only.

mod support;

use std::collections::HashMap;
use std::path::Path;

use candle::{DType, Device, Tensor};
use ddaebm::detector::calibration::CalibrationSummary;
use ddaebm::format::{ModelFileContents, CALIBRATION_TENSOR, FORMAT_VERSION};
use ddaebm::{
    write_model_file, Calibration, Error, Model, ModelMetadata, NetworkConfig, Normalization,
    ScheduleConfig,
};

/// A randomly initialised model with a small network and non-trivial normalisation.
fn random_model(dim: usize) -> (ModelMetadata, Vec<(String, Tensor)>) {
    let dev = Device::Cpu;
    let mut network = NetworkConfig::toy(dim);
    network.head_widths = vec![32, 32];
    let mut tensors = support::random_weights(&network, 0.5, 2.0);
    let cal = Calibration::fit((0..50).map(|i| i as f32 * 0.1 - 2.0).collect(), 0.95).unwrap();
    tensors.push((
        CALIBRATION_TENSOR.into(),
        Tensor::from_slice(cal.sorted_energies(), 50, &dev).unwrap(),
    ));
    let normalization = Normalization {
        mean: (0..dim).map(|i| i as f32).collect(),
        std: (0..dim).map(|i| 1.0 + i as f32).collect(),
    };
    let metadata = ModelMetadata {
        method: Default::default(),
        sampler: Default::default(),
        policy: None,
        langevin: None,
        network,
        schedule: ScheduleConfig::default(),
        normalization,
        calibration: cal.summary(),
        training: serde_json::json!({"note": "test"}),
    };
    (metadata, tensors)
}

/// Builds a model from metadata and tensors without touching the file system.
fn in_memory(metadata: ModelMetadata, tensors: Vec<(String, Tensor)>) -> ddaebm::Result<Model> {
    let contents = ModelFileContents {
        metadata,
        tensors: tensors.into_iter().collect(),
    };
    Model::from_contents(contents, &Device::Cpu)
}

fn rows(n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
        .collect()
}

fn write_raw(path: &Path, meta: HashMap<String, String>, tensors: &[(String, Tensor)]) {
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn ddaebm_meta(version: &str, json: &str) -> HashMap<String, String> {
    HashMap::from([
        ("format".into(), "ddaebm".into()),
        ("format_version".into(), version.into()),
        ("ddaebm".into(), json.into()),
    ])
}

#[test]
fn save_then_mmap_load_gives_bit_identical_energies_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (meta, tensors) = random_model(5);
    let fresh = in_memory(meta.clone(), tensors.clone()).unwrap();
    write_model_file(&path, &meta, &tensors).unwrap();
    let loaded = Model::open(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.metadata(), &meta);
    assert_eq!(loaded.input_dim(), 5);
    let x = rows(300, 5);
    let a = fresh.energy(&x, 300).unwrap();
    let b = loaded.energy(&x, 300).unwrap();
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // Energies depend on the input (not a constant), and rows are scored independently.
    assert!(a.iter().any(|&e| (e - a[0]).abs() > 1e-6));
    // (Only to rounding: the matrix kernels block differently for other batch sizes.)
    let single = loaded.energy(&x[5..10], 1).unwrap()[0];
    assert!(
        (single - b[1]).abs() <= 1e-5 * b[1].abs().max(1.0),
        "{single} vs {}",
        b[1]
    );
    // Seeded sampling: same seed, same rows; another seed, other rows; raw scale.
    let s1 = loaded.sample(64, 7).unwrap();
    assert_eq!(s1, loaded.sample(64, 7).unwrap());
    assert_eq!(s1, fresh.sample(64, 7).unwrap());
    assert_ne!(s1, loaded.sample(64, 8).unwrap());
    assert_eq!(s1.len(), 64 * 5);
    assert!(s1.iter().all(|v| v.is_finite()));
    // No temporary files left behind by the atomic write.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn energy_is_minus_level0_log_density_of_normalized_input() {
    let (meta, tensors) = random_model(3);
    let model = in_memory(meta.clone(), tensors).unwrap();
    let x = rows(4, 3);
    let e = model.energy(&x, 4).unwrap();
    let norm: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| (v - meta.normalization.mean[i % 3]) / meta.normalization.std[i % 3])
        .collect();
    let xs = Tensor::from_vec(norm, (4, 3), &Device::Cpu).unwrap();
    let k = Tensor::zeros(4, DType::U32, &Device::Cpu).unwrap();
    let f: Vec<f32> = model
        .energy_net()
        .log_density(&xs, &k)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (a, b) in e.iter().zip(&f) {
        assert!((a + b).abs() < 1e-5, "{a} vs -{b}");
    }
}

#[test]
fn screening_and_pvalues_follow_the_calibration() {
    let (meta, tensors) = random_model(4);
    let model = in_memory(meta, tensors).unwrap();
    let x = rows(200, 4);
    let s = model.screen(&x, 200).unwrap();
    let p = model.pvalues(&x, 200).unwrap();
    for ((&e, &ood), &pv) in s.energy.iter().zip(&s.is_ood).zip(&p) {
        assert_eq!(ood, e > model.threshold());
        assert_eq!(pv, model.calibration().pvalue(e));
        assert!(pv > 0.0 && pv <= 1.0);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (meta, tensors) = random_model(3);
    let model = in_memory(meta, tensors).unwrap();
    assert!(matches!(
        model.energy(&[0.0; 5], 2),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut x = rows(3, 3);
    x[7] = f32::NAN;
    match model.screen(&x, 3) {
        Err(Error::NonFinite { row: 2, col: 1 }) => {}
        other => panic!("expected NonFinite at (2, 1), got {other:?}"),
    }
    x[7] = f32::INFINITY;
    assert!(matches!(model.pvalues(&x, 3), Err(Error::NonFinite { .. })));
    assert_eq!(model.energy(&[], 0).unwrap(), Vec::<f32>::new());
}

#[test]
fn hostile_and_foreign_files_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, tensors) = random_model(3);
    let good = dir.path().join("good.safetensors");
    write_model_file(&good, &meta, &tensors).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let json = serde_json::to_string(&meta).unwrap();
    let open = |p: &Path| Model::open(p, &Device::Cpu);

    // Missing file.
    assert!(matches!(
        open(&dir.path().join("nope")),
        Err(Error::Io { .. })
    ));
    // Truncated at many points, including inside the header and inside the tensors.
    for cut in [
        0,
        4,
        8,
        20,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let p = dir.path().join(format!("cut{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(matches!(open(&p), Err(Error::BadModel(_))), "cut at {cut}");
    }
    // Random bytes.
    let p = dir.path().join("random");
    std::fs::write(
        &p,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
    // A valid safetensors file that is not a ddaebm model.
    let p = dir.path().join("foreign");
    write_raw(&p, HashMap::new(), &tensors);
    let err = open(&p).err().unwrap();
    assert!(err.to_string().contains("not a ddaebm model"), "{err}");
    // A newer format version is refused with a clear error.
    let p = dir.path().join("future");
    write_raw(
        &p,
        ddaebm_meta(&(FORMAT_VERSION + 1).to_string(), &json),
        &tensors,
    );
    match open(&p) {
        Err(Error::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION))
        }
        other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
    }
    assert!(matches!(
        ddaebm::read_metadata(&p),
        Err(Error::UnsupportedVersion { .. })
    ));
    // Non-JSON metadata, a missing tensor, a tensor of the wrong shape, a wrong dtype.
    let p = dir.path().join("notjson");
    write_raw(&p, ddaebm_meta("1", "{not json"), &tensors);
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
    let p = dir.path().join("missing");
    let fewer: Vec<_> = tensors
        .iter()
        .filter(|(n, _)| !n.contains("head.linear0.weight"))
        .cloned()
        .collect();
    write_raw(&p, ddaebm_meta("1", &json), &fewer);
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
    let p = dir.path().join("shape");
    let reshaped: Vec<_> = tensors
        .iter()
        .map(|(n, t)| {
            if n == "energy.head.linear0.bias" {
                (
                    n.clone(),
                    Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
                )
            } else {
                (n.clone(), t.clone())
            }
        })
        .collect();
    write_raw(&p, ddaebm_meta("1", &json), &reshaped);
    let err = open(&p).err().unwrap();
    assert!(matches!(err, Error::BadModel(_)), "{err}");
    let p = dir.path().join("dtype");
    let f64s: Vec<_> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_dtype(DType::F64).unwrap()))
        .collect();
    write_raw(&p, ddaebm_meta("1", &json), &f64s);
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
    // A config declaring 10^12 inputs is refused before anything is allocated.
    let mut huge = meta.clone();
    huge.network.input_dim = 1_000_000_000_000;
    let p = dir.path().join("huge");
    write_raw(
        &p,
        ddaebm_meta("1", &serde_json::to_string(&huge).unwrap()),
        &tensors,
    );
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
    // Calibration energies that are not sorted.
    let p = dir.path().join("unsorted");
    let unsorted: Vec<_> = tensors
        .iter()
        .map(|(n, t)| {
            if n == CALIBRATION_TENSOR {
                (n.clone(), t.flip(&[0]).unwrap())
            } else {
                (n.clone(), t.clone())
            }
        })
        .collect();
    write_raw(&p, ddaebm_meta("1", &json), &unsorted);
    assert!(matches!(open(&p), Err(Error::BadModel(_))));
}

#[test]
fn calibration_summary_must_match_the_tensor() {
    let (mut meta, tensors) = random_model(2);
    meta.calibration = CalibrationSummary {
        num_samples: 3,
        ..meta.calibration
    };
    let r = in_memory(meta, tensors);
    assert!(matches!(r, Err(Error::BadModel(_))));
}

#[test]
fn version_1_files_read_with_the_base_measure_off() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, tensors) = random_model(3);
    assert_eq!(meta.network.base_std, 0.0);
    // A version-1 header: the network config has neither of the fields added in version 2.
    let mut json: serde_json::Value = serde_json::to_value(&meta).unwrap();
    let net = json["network"].as_object_mut().unwrap();
    assert!(net.remove("base_std").is_some() && net.remove("input_soft_clip").is_some());
    let p = dir.path().join("v1.safetensors");
    write_raw(&p, ddaebm_meta("1", &json.to_string()), &tensors);
    let old = Model::open(&p, &Device::Cpu).unwrap();
    assert_eq!(old.metadata(), &meta);
    let x = rows(20, 3);
    let fresh = in_memory(meta.clone(), tensors.clone()).unwrap();
    assert_eq!(old.energy(&x, 20).unwrap(), fresh.energy(&x, 20).unwrap());
    // The same weights with a base measure give other energies: the fields matter.
    let mut based = meta.clone();
    based.network.base_std = 0.7;
    let e = in_memory(based, tensors).unwrap().energy(&x, 20).unwrap();
    assert_ne!(e, fresh.energy(&x, 20).unwrap());
}
