//! Every earlier model-file format version still opens and gives, bit for bit, the energies,
//! p-values and samples it gave when it was written. The files under `tests/fixtures/format/`
//! were written once by `cargo run -p xtask -- format-fixtures` (see `xtask/src/format_fixtures.rs`)
//! and are never regenerated: they stand for files users already have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ddaebm::{parse_device, read_metadata, Model};

fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format")
        .join(format!("v{version}"))
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn info(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join("info.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `format_version` the file's header declares, read without the library.
fn declared_version(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header["__metadata__"]["format_version"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check(version: u32) {
    let dir = fixture_dir(version);
    let path = dir.join("model.safetensors");
    assert_eq!(declared_version(&path), version, "{}", path.display());
    let info = info(&dir);
    let number = |k: &str| -> usize { info[k].parse().unwrap() };
    let model = Model::open(&path, &parse_device("cpu").unwrap()).unwrap();
    assert_eq!(model.input_dim(), number("dim"));
    let rows = read_f32(&dir.join("rows.f32"));
    let n = number("rows");
    assert_eq!(
        bits(&model.energy(&rows, n).unwrap()),
        bits(&read_f32(&dir.join("energy.f32"))),
        "energies of the version-{version} fixture changed"
    );
    assert_eq!(
        bits(&model.pvalues(&rows, n).unwrap()),
        bits(&read_f32(&dir.join("pvalue.f32"))),
        "p-values of the version-{version} fixture changed"
    );
    let seed: u64 = info["sample_seed"].parse().unwrap();
    assert_eq!(
        bits(&model.sample(number("sample_rows"), seed).unwrap()),
        bits(&read_f32(&dir.join("sample.f32"))),
        "samples of the version-{version} fixture changed"
    );
    // The metadata alone parses too, the way `inspect` and the C ABI's metadata call read it.
    read_metadata(&path).unwrap();
}

#[test]
fn version_1_vector_model_without_base_measure() {
    check(1);
}

#[test]
fn version_2_vector_model_with_gaussian_base_and_soft_clip() {
    check(2);
}

#[test]
fn version_3_image_model() {
    check(3);
}

#[test]
fn version_4_vector_model_with_mixture_base() {
    check(4);
}

#[test]
fn version_5_gcd_model_with_gaussian_policy() {
    check(5);
}

#[test]
fn version_6_dcd_model_with_langevin_sampler() {
    check(6);
}
