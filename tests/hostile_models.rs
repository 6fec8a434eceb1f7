//! The hostile-model corpus in `tests/hostile_models/`: every file there must open to exactly
//! the outcome listed for it, through [`Model::open`] (memory-mapped) and
//! [`read_model_bytes`] alike, with no panic and no allocation beyond the file's own size.
//!
//! Most files are made by [`generated_cases`] from one tiny valid model (2 inputs, widths of 3,
//! hand-set weights), each with one defect. The files and the table in the directory's
//! `README.md` are regenerated with
//!
//! ```sh
//! cargo test --test hostile_models -- --ignored regenerate_hostile_models
//! ```
//!
//! and [`generated_files_match_the_generator`] fails when they are stale. Inputs found by the
//! fuzzer (`fuzz/README.md`) are committed as they were found and listed in [`FOUND`].
//! [`every_file_in_the_directory_is_listed`] makes sure nothing in the directory is skipped.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use ddaebm::format::{read_model_bytes, CALIBRATION_TENSOR, FORMAT_VERSION};
use ddaebm::{
    Calibration, EnergyNet, Error, GaussianPolicy, Generator, LangevinConfig, Method, Model,
    ModelMetadata, NetworkConfig, Normalization, PolicyConfig, SamplerKind, ScheduleConfig,
};
use serde_json::{json, Value};

/// What opening a file must give.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Opens, scores and samples.
    Opens,
    /// [`Error::BadModel`] whose message contains the fragment.
    BadModel(&'static str),
    /// [`Error::UnsupportedVersion`] with this `found`.
    Unsupported(u32),
}

impl Expect {
    fn describe(self) -> (String, String) {
        match self {
            Expect::Opens => ("opens".into(), String::new()),
            Expect::BadModel(m) => ("`BadModel`".into(), format!("`{m}`")),
            Expect::Unsupported(v) => (
                "`UnsupportedVersion`".into(),
                format!("`found: {v}, supported: {FORMAT_VERSION}`"),
            ),
        }
    }
}

/// One corpus file.
struct Case {
    name: String,
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// Files the fuzzer found, committed as found (see `fuzz/README.md`): name, what, outcome.
const FOUND: &[(&str, &str, Expect)] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile_models")
}

// === A safetensors writer that can also write wrong files ===

#[derive(Clone)]
struct RawTensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
    /// Declared offsets when they should not be the true ones.
    offsets: Option<(u64, u64)>,
}

fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> RawTensor {
    RawTensor {
        name: name.into(),
        dtype: "F32".into(),
        shape: shape.iter().map(|&d| d as u64).collect(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        offsets: None,
    }
}

#[derive(Clone)]
struct RawModel {
    /// `__metadata__` entries in order; `None` leaves the key out.
    metadata: Option<Vec<(String, String)>>,
    tensors: Vec<RawTensor>,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The 8-byte little-endian length, the header, the data.
fn frame(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

impl RawModel {
    /// The header JSON, padded with spaces to a multiple of 8 bytes as safetensors does.
    fn header(&self) -> String {
        let mut parts = vec![];
        if let Some(meta) = &self.metadata {
            let entries: Vec<String> = meta
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                .collect();
            parts.push(format!("\"__metadata__\":{{{}}}", entries.join(",")));
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            let end = offset + t.data.len() as u64;
            let (s, e) = t.offsets.unwrap_or((offset, end));
            offset = end;
            parts.push(format!(
                "{}:{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{s},{e}]}}",
                quote(&t.name),
                quote(&t.dtype),
                serde_json::to_string(&t.shape).unwrap()
            ));
        }
        let mut header = format!("{{{}}}", parts.join(","));
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        header
    }

    fn data(&self) -> Vec<u8> {
        self.tensors.iter().flat_map(|t| t.data.clone()).collect()
    }

    fn encode(&self) -> Vec<u8> {
        frame(self.header().as_bytes(), &self.data())
    }

    fn tensor(&mut self, name: &str) -> &mut RawTensor {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    fn meta(&self, key: &str) -> &str {
        let meta = self.metadata.as_ref().unwrap();
        &meta.iter().find(|(k, _)| k == key).unwrap().1
    }

    /// Sets (`Some`) or removes (`None`) a `__metadata__` entry.
    fn set_meta(&mut self, key: &str, value: Option<&str>) {
        let meta = self.metadata.as_mut().unwrap();
        meta.retain(|(k, _)| k != key);
        if let Some(v) = value {
            meta.push((key.into(), v.into()));
        }
    }
}

/// The tiny valid model every generated case starts from.
fn valid_model() -> RawModel {
    valid_model_of(Method::Ddaebm)
}

/// The valid model of `method`, all with the same energy: DDAEBM's generator, GCD's Gaussian
/// policy (8 DDPM steps) or DCD's Langevin sampler (3 steps per level, hand-set step sizes, no
/// sampler tensors).
fn valid_model_of(method: Method) -> RawModel {
    let network = NetworkConfig {
        input_dim: 2,
        latent_dim: 2,
        time_embed_dim: 4,
        branch_widths: vec![3],
        head_widths: vec![3],
        encoder_features: 4,
        base_std: 0.7,
        input_soft_clip: 4.0,
        image: None,
        base_components: 0,
    };
    let schedule = ScheduleConfig::default();
    // The networks' own constructors name and shape the tensors; the values are set by hand so
    // the files come out the same on every run.
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    EnergyNet::new(&network, schedule.num_timesteps, vb.pp("energy")).unwrap();
    let (sampler, policy, langevin) = match method {
        Method::Ddaebm => (SamplerKind::Generator, None, None),
        Method::Gcd => (
            SamplerKind::GaussianPolicy,
            Some(PolicyConfig { ddpm_steps: 8 }),
            None,
        ),
        // Step sizes set by hand rather than by `default_step_size`, so the file's JSON does not
        // depend on the last bits of the schedule's arithmetic.
        Method::Dcd => (
            SamplerKind::Langevin,
            None,
            Some(LangevinConfig {
                steps: 3,
                step_sizes: vec![0.005, 0.01, 0.02, 0.04],
            }),
        ),
    };
    match sampler {
        SamplerKind::Generator => {
            Generator::new(&network, schedule.num_timesteps, vb.pp("generator")).unwrap();
        }
        SamplerKind::GaussianPolicy => {
            let p = policy.as_ref().unwrap();
            GaussianPolicy::new(&network, &schedule, p, vb.pp("sampler")).unwrap();
        }
        SamplerKind::Langevin => {}
    }
    let mut shapes: Vec<(String, Vec<usize>)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect();
    shapes.sort();
    let calibration = Calibration::fit(vec![-1.0, -0.5, 0.0, 0.5, 1.5], 0.8).unwrap();
    let mut tensors = vec![f32_tensor(
        CALIBRATION_TENSOR,
        &[5],
        calibration.sorted_energies(),
    )];
    let mut k = 0usize;
    for (name, shape) in shapes {
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                k += 1;
                if name.ends_with("running_var") {
                    1.0 + (k % 5) as f32 * 0.25
                } else if name.contains(".act") {
                    0.25
                } else {
                    ((k * 37) % 41) as f32 / 20.0 - 1.0
                }
            })
            .collect();
        tensors.push(f32_tensor(&name, &shape, &values));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let metadata = ModelMetadata {
        method,
        sampler,
        policy,
        langevin,
        network,
        schedule,
        normalization: Normalization {
            mean: vec![0.5, -1.0],
            std: vec![2.0, 0.5],
        },
        calibration: calibration.summary(),
        training: json!({"note": "tests/hostile_models: hand-set weights"}),
    };
    let json = serde_json::to_value(&metadata).unwrap().to_string();
    RawModel {
        metadata: Some(vec![
            ("format".into(), "ddaebm".into()),
            (
                "format_version".into(),
                metadata.format_version().to_string(),
            ),
            ("ddaebm".into(), json),
        ]),
        tensors,
    }
}

// === The cases ===

/// Collects cases; each helper starts from the valid model.
struct Cases {
    base: RawModel,
    out: Vec<Case>,
}

/// Stands in for a JSON value that `Value` cannot hold (NaN, 1e999, …) until it is spliced in.
const RAW: &str = "@@raw@@";

impl Cases {
    fn add(&mut self, name: &str, what: &str, bytes: Vec<u8>, expect: Expect) {
        self.out.push(Case {
            name: format!("{name}.safetensors"),
            what: what.into(),
            bytes,
            expect,
        });
    }

    /// A case made by editing a copy of the valid model.
    fn edit(&mut self, name: &str, what: &str, expect: Expect, f: impl FnOnce(&mut RawModel)) {
        let mut m = self.base.clone();
        f(&mut m);
        let bytes = m.encode();
        self.add(name, what, bytes, expect);
    }

    /// A case made by editing the ddaebm metadata JSON.
    fn json(&mut self, name: &str, what: &str, expect: Expect, f: impl FnOnce(&mut Value)) {
        self.json_raw(name, what, expect, "", f);
    }

    /// Like [`Cases::json`]; `raw` replaces the string value `RAW` verbatim.
    fn json_raw(
        &mut self,
        name: &str,
        what: &str,
        expect: Expect,
        raw: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut v: Value = serde_json::from_str(self.base.meta("ddaebm")).unwrap();
        f(&mut v);
        let text = v.to_string().replace(&quote(RAW), raw);
        self.edit(name, what, expect, |m| m.set_meta("ddaebm", Some(&text)));
    }

    /// A case with one `__metadata__` entry set or removed.
    fn meta(&mut self, name: &str, what: &str, expect: Expect, key: &str, value: Option<&str>) {
        self.edit(name, what, expect, |m| m.set_meta(key, value));
    }
}

fn set(v: &mut Value, pointer: &str, to: Value) {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = to;
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap_or_else(|| panic!("no {pointer}"));
}

/// Every generated case, in a fixed order.
fn generated_cases() -> Vec<Case> {
    use Expect::*;
    let base = valid_model();
    let valid = base.encode();
    let mut c = Cases {
        base: base.clone(),
        out: vec![],
    };
    let incomplete = BadModel("incomplete metadata, file not fully covered");
    let header_length = BadModel("invalid header length");
    let too_short = BadModel("too short to be a model file");
    let not_ours = BadModel("not a ddaebm model file");
    let invalid_metadata = BadModel("metadata is not valid");

    c.add(
        "valid",
        "the tiny valid model every other case is made from",
        valid.clone(),
        Opens,
    );
    c.edit(
        "extra-unknown-tensor",
        "a valid model plus a tensor no network uses (ignored)",
        Opens,
        |m| m.tensors.push(f32_tensor("zzz.unused", &[2], &[1.0, 2.0])),
    );

    // --- Truncation at every section boundary ---
    let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;
    for (name, what, cut, expect) in [
        ("truncated-empty", "0 bytes", 0, too_short),
        (
            "truncated-in-length-prefix",
            "4 of the 8 length bytes",
            4,
            too_short,
        ),
        (
            "truncated-after-length-prefix",
            "the length prefix alone",
            8,
            header_length,
        ),
        (
            "truncated-in-header",
            "cut in the middle of the JSON header",
            8 + header_len / 2,
            header_length,
        ),
        (
            "truncated-before-header-end",
            "the JSON header less its last byte",
            data_start - 1,
            header_length,
        ),
        (
            "truncated-at-header-end",
            "the whole header, no tensor data",
            data_start,
            incomplete,
        ),
        (
            "truncated-before-last-byte",
            "the whole file less its last byte",
            valid.len() - 1,
            incomplete,
        ),
    ] {
        c.add(name, what, valid[..cut].to_vec(), expect);
    }
    let mut offset = 0;
    for (i, t) in base.tensors.iter().enumerate() {
        if i > 0 {
            c.add(
                &format!("truncated-at-tensor-{i:02}"),
                &format!("cut where tensor {i} (`{}`) starts", t.name),
                valid[..data_start + offset].to_vec(),
                incomplete,
            );
        }
        offset += t.data.len();
    }

    // --- The length prefix and the header ---
    let header = base.header();
    let data = base.data();
    let with_prefix = |n: u64| {
        let mut b = valid.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    };
    c.add(
        "header-length-beyond-file",
        "the length prefix is the whole file's length",
        with_prefix(valid.len() as u64),
        header_length,
    );
    c.add(
        "header-length-u64-max",
        "the length prefix is 2^64 - 1",
        with_prefix(u64::MAX),
        BadModel("header too large"),
    );
    c.add(
        "header-length-over-limit",
        "the length prefix is just over safetensors' 100 MB header limit",
        with_prefix(100_000_001),
        BadModel("header too large"),
    );
    c.add(
        "header-length-short",
        "the length prefix stops 16 bytes before the header's end",
        with_prefix(header_len as u64 - 16),
        BadModel("invalid JSON in header"),
    );
    c.add(
        "header-length-zero",
        "the length prefix is 0",
        with_prefix(0),
        BadModel("invalid JSON in header"),
    );
    let mut not_utf8 = header.clone().into_bytes();
    not_utf8[header_len / 2] = 0xff;
    c.add(
        "header-not-utf8",
        "one byte of the header is 0xff",
        frame(&not_utf8, &data),
        BadModel("invalid UTF-8 in header"),
    );
    c.add(
        "header-not-json",
        "the header is plain text",
        frame(b"not a json header at all", &data),
        BadModel("invalid JSON in header"),
    );
    c.add(
        "header-json-array",
        "the header is a JSON array",
        frame(b"[]      ", &[]),
        BadModel("invalid JSON in header"),
    );
    c.add(
        "header-metadata-not-strings",
        "a `__metadata__` value is a number",
        frame(
            br#"{"__metadata__":{"format":"ddaebm","format_version":2}}"#,
            &[],
        ),
        BadModel("invalid JSON in header"),
    );
    c.add(
        "header-negative-offset",
        "a tensor's data offsets are negative",
        frame(
            br#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#,
            &[0; 4],
        ),
        BadModel("invalid JSON in header"),
    );
    c.add(
        "header-unknown-dtype",
        "a tensor's dtype is F128",
        frame(
            header
                .replacen("\"dtype\":\"F32\"", "\"dtype\":\"F128\"", 1)
                .as_bytes(),
            &data,
        ),
        BadModel("invalid JSON in header"),
    );
    c.edit(
        "header-duplicate-tensor",
        "one tensor name appears twice (the later entry wins)",
        BadModel("invalid offset for tensor"),
        |m| {
            let mut twin = m.tensors[2].clone();
            twin.name = m.tensors[1].name.clone();
            m.tensors.insert(2, twin);
        },
    );
    c.add(
        "header-empty-object",
        "a valid safetensors file with no tensors and no metadata",
        frame(b"{}      ", &[]),
        not_ours,
    );

    // --- Tensor offsets ---
    let last = base.tensors.len() - 1;
    let span = |m: &RawModel, i: usize| {
        let start: usize = m.tensors[..i].iter().map(|t| t.data.len()).sum();
        (start as u64, (start + m.tensors[i].data.len()) as u64)
    };
    c.edit(
        "offsets-beyond-data",
        "the last tensor's offsets run 4 bytes past the data",
        BadModel("invalid shape, data type, or offset"),
        |m| {
            let (s, e) = span(m, last);
            m.tensors[last].offsets = Some((s, e + 4));
        },
    );
    c.edit(
        "offsets-overlapping",
        "tensor 2 starts where tensor 1 starts",
        BadModel("invalid offset for tensor"),
        |m| {
            let (s1, _) = span(m, 1);
            let len = m.tensors[2].data.len() as u64;
            m.tensors[2].offsets = Some((s1, s1 + len));
        },
    );
    c.edit(
        "offsets-gap",
        "tensor 2 starts 4 bytes after tensor 1 ends",
        BadModel("invalid offset for tensor"),
        |m| {
            let (s, e) = span(m, 2);
            m.tensors[2].offsets = Some((s + 4, e + 4));
        },
    );
    c.edit(
        "offsets-reversed",
        "tensor 2's end offset is before its start",
        BadModel("invalid offset for tensor"),
        |m| {
            let (s, _) = span(m, 2);
            m.tensors[2].offsets = Some((s, s - 4));
        },
    );
    c.edit(
        "offsets-huge",
        "the last tensor ends at 2^63",
        BadModel("invalid shape, data type, or offset"),
        |m| {
            let (s, _) = span(m, last);
            m.tensors[last].offsets = Some((s, 1 << 63));
        },
    );
    c.edit(
        "offsets-size-mismatch",
        "tensor 1 declares 4 bytes more than its shape holds, and the data has them",
        BadModel("invalid shape, data type, or offset"),
        |m| m.tensors[1].data.extend([0; 4]),
    );
    let mut trailing = valid.clone();
    trailing.extend([0; 4]);
    c.add(
        "trailing-bytes",
        "4 bytes after the last tensor",
        trailing,
        incomplete,
    );

    // --- Dtypes ---
    let target = "energy.head.linear0.weight";
    for (name, dtype, width, expect) in [
        ("dtype-f64", "F64", 8, "dtype F64, expected F32"),
        ("dtype-i64", "I64", 8, "dtype I64, expected F32"),
        ("dtype-bf16", "BF16", 2, "dtype BF16, expected F32"),
        ("dtype-f16", "F16", 2, "dtype F16, expected F32"),
        ("dtype-u8", "U8", 1, "dtype U8, expected F32"),
    ] {
        c.edit(
            name,
            &format!("`{target}` is stored as {dtype}"),
            BadModel(expect),
            |m| {
                let t = m.tensor(target);
                let n = t.data.len() / 4;
                t.dtype = dtype.into();
                t.data = (0..n * width).map(|i| (i * 7) as u8).collect();
            },
        );
    }
    c.edit(
        "dtype-all-f64",
        "every tensor is stored as F64",
        BadModel("expected F32"),
        |m| {
            for t in &mut m.tensors {
                t.dtype = "F64".into();
                t.data = t
                    .data
                    .chunks(4)
                    .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as f64).to_le_bytes())
                    .collect();
            }
        },
    );
    c.edit(
        "dtype-f4-odd-count",
        "an extra tensor of 3 four-bit values (not a whole number of bytes)",
        BadModel("does not end up at a byte boundary"),
        |m| {
            m.tensors.push(RawTensor {
                name: "zzz.f4".into(),
                dtype: "F4".into(),
                shape: vec![3],
                data: vec![0, 0],
                offsets: None,
            })
        },
    );

    // --- Shapes ---
    for (name, what, tensor, shape, expect) in [
        (
            "shape-bias-too-long",
            "an energy bias has 5 entries instead of 3",
            "energy.head.linear0.bias",
            vec![5],
            "energy network",
        ),
        (
            "shape-weight-transposed",
            "the energy's first weight is 2 × 3 instead of 3 × 2",
            "energy.x_branch.linear0.weight",
            vec![2, 3],
            "energy network",
        ),
        (
            "shape-batchnorm-wrong",
            "a generator BatchNorm running variance has 4 entries instead of 3",
            "generator.head.norm0.running_var",
            vec![4],
            "generator network",
        ),
        (
            "shape-prelu-two-slopes",
            "a PReLU holds 2 slopes instead of 1",
            "energy.head.act0.weight",
            vec![2],
            "energy network",
        ),
        (
            "shape-scalar-bias",
            "an energy bias is a scalar",
            "energy.head.linear1.bias",
            vec![],
            "energy network",
        ),
        (
            "shape-calibration-2d",
            "the calibration energies are a 5 × 1 matrix",
            CALIBRATION_TENSOR,
            vec![5, 1],
            "calibration.energies",
        ),
    ] {
        c.edit(name, what, BadModel(expect), |m| {
            let t = m.tensor(tensor);
            let n: usize = shape.iter().product();
            t.shape = shape.iter().map(|&d| d as u64).collect();
            t.data = (0..n)
                .flat_map(|i| (i as f32 * 0.1).to_le_bytes())
                .collect();
        });
    }
    c.edit(
        "shape-zero-elements-huge-dims",
        "an extra tensor of shape [0, 2^40, 2^40]: no elements, overflowing strides",
        BadModel("impossible shape"),
        |m| {
            m.tensors.push(RawTensor {
                name: "zzz.empty".into(),
                dtype: "F32".into(),
                shape: vec![0, 1 << 40, 1 << 40],
                data: vec![],
                offsets: None,
            })
        },
    );
    c.edit(
        "shape-2pow40-squared",
        "the header declares a tensor of shape [2^40, 2^40] (4 bytes of data)",
        BadModel("overflow computing buffer size"),
        |m| m.tensor("energy.head.linear1.bias").shape = vec![1 << 40, 1 << 40],
    );
    c.edit(
        "shape-2pow20-squared",
        "the header declares a tensor of shape [2^20, 2^20] (4 TiB) with 4 bytes of data",
        BadModel("invalid shape, data type, or offset"),
        |m| m.tensor("energy.head.linear1.bias").shape = vec![1 << 20, 1 << 20],
    );
    c.json(
        "shape-input-dim-disagrees",
        "the config says 3 inputs (normalisation too), the tensors are for 2",
        BadModel("energy network"),
        |v| {
            set(v, "/network/input_dim", json!(3));
            set(v, "/normalization/mean", json!([0.0, 0.0, 0.0]));
            set(v, "/normalization/std", json!([1.0, 1.0, 1.0]));
        },
    );

    // --- Missing tensors ---
    for (name, tensor, expect) in [
        (
            "missing-energy-weight",
            "energy.head.linear0.weight",
            "energy network",
        ),
        (
            "missing-generator-running-var",
            "generator.head.norm0.running_var",
            "generator network",
        ),
        (
            "missing-calibration",
            CALIBRATION_TENSOR,
            "calibration.energies is missing",
        ),
    ] {
        c.edit(name, &format!("no `{tensor}`"), BadModel(expect), |m| {
            m.tensors.retain(|t| t.name != tensor)
        });
    }
    c.edit(
        "missing-all-tensors",
        "valid metadata, no tensors",
        BadModel("calibration.energies is missing"),
        |m| m.tensors.clear(),
    );

    // --- The network config ---
    let sizes = BadModel("network sizes must be in");
    c.json(
        "config-input-dim-1e12",
        "the config declares 10^12 inputs",
        sizes,
        |v| set(v, "/network/input_dim", json!(1_000_000_000_000u64)),
    );
    c.json("config-width-zero", "a head width of 0", sizes, |v| {
        set(v, "/network/head_widths", json!([0]))
    });
    c.json("config-width-huge", "a branch width of 2^40", sizes, |v| {
        set(v, "/network/branch_widths", json!([1u64 << 40]))
    });
    c.json(
        "config-time-embed-odd",
        "time_embed_dim 3",
        BadModel("time_embed_dim must be even"),
        |v| set(v, "/network/time_embed_dim", json!(3)),
    );
    c.json(
        "config-branch-widths-empty",
        "no branch layers",
        BadModel("branch_widths needs 1 to 16 entries"),
        |v| set(v, "/network/branch_widths", json!([])),
    );
    c.json(
        "config-head-widths-17",
        "17 head layers",
        BadModel("head_widths holds at most 16 entries"),
        |v| set(v, "/network/head_widths", json!(vec![3; 17])),
    );
    c.json(
        "config-base-std-negative",
        "base_std -1",
        BadModel("base_std must be finite and >= 0"),
        |v| set(v, "/network/base_std", json!(-1.0)),
    );
    c.json_raw(
        "config-soft-clip-overflow",
        "input_soft_clip 1e39, infinite as an f32",
        BadModel("input_soft_clip must be finite and >= 0"),
        "1e39",
        |v| set(v, "/network/input_soft_clip", json!(RAW)),
    );
    c.json(
        "config-embedding-too-large",
        "1000 steps × a 2^20-wide time embedding: a 4 GB table per network from a small file",
        BadModel("time embedding exceed"),
        |v| {
            set(v, "/network/time_embed_dim", json!(1 << 20));
            set(v, "/schedule/num_timesteps", json!(1000));
        },
    );

    // --- The `__metadata__` entries ---
    c.edit(
        "metadata-absent",
        "the tensors of a valid model, no `__metadata__`",
        not_ours,
        |m| m.metadata = None,
    );
    c.meta(
        "format-missing",
        "no `format` entry",
        not_ours,
        "format",
        None,
    );
    c.meta(
        "format-other",
        "`format` is \"gguf\"",
        not_ours,
        "format",
        Some("gguf"),
    );
    c.meta(
        "version-missing",
        "no `format_version` entry",
        BadModel("format_version is missing"),
        "format_version",
        None,
    );
    c.meta(
        "version-0",
        "format_version 0",
        Unsupported(0),
        "format_version",
        Some("0"),
    );
    c.meta(
        "version-negative",
        "format_version -1",
        BadModel("format_version \"-1\" is not an integer"),
        "format_version",
        Some("-1"),
    );
    let future = FORMAT_VERSION + 1;
    c.meta(
        "version-future",
        "the next format version",
        Unsupported(future),
        "format_version",
        Some(&future.to_string()),
    );
    c.meta(
        "version-u32-max",
        "format_version 2^32 - 1",
        Unsupported(u32::MAX),
        "format_version",
        Some("4294967295"),
    );
    c.meta(
        "version-huge",
        "format_version 2^64",
        BadModel("is not an integer"),
        "format_version",
        Some("18446744073709551616"),
    );
    c.meta(
        "version-fraction",
        "format_version 2.0",
        BadModel("is not an integer"),
        "format_version",
        Some("2.0"),
    );
    c.meta(
        "version-empty",
        "format_version \"\"",
        BadModel("is not an integer"),
        "format_version",
        Some(""),
    );
    c.meta(
        "ddaebm-entry-missing",
        "no `ddaebm` entry",
        BadModel("the ddaebm metadata entry is missing"),
        "ddaebm",
        None,
    );

    // --- The ddaebm metadata JSON ---
    for (name, what, text) in [
        ("metadata-not-json", "the JSON is cut short", "{not json"),
        ("metadata-empty", "the JSON is empty", ""),
        ("metadata-array", "the JSON is an array", "[]"),
    ] {
        c.meta(name, what, invalid_metadata, "ddaebm", Some(text));
    }
    c.json(
        "metadata-wrong-type-string",
        "input_dim is the string \"2\"",
        invalid_metadata,
        |v| set(v, "/network/input_dim", json!("2")),
    );
    c.json(
        "metadata-wrong-type-widths",
        "branch_widths is a number",
        invalid_metadata,
        |v| set(v, "/network/branch_widths", json!(3)),
    );
    c.json(
        "metadata-null-field",
        "schedule is null",
        invalid_metadata,
        |v| set(v, "/schedule", Value::Null),
    );
    c.json(
        "metadata-negative-count",
        "calibration.num_samples is -5",
        invalid_metadata,
        |v| set(v, "/calibration/num_samples", json!(-5)),
    );
    c.json(
        "metadata-fractional-count",
        "input_dim is 2.5",
        invalid_metadata,
        |v| set(v, "/network/input_dim", json!(2.5)),
    );
    for part in ["network", "schedule", "normalization", "calibration"] {
        c.json(
            &format!("metadata-missing-{part}"),
            &format!("no `{part}` object"),
            BadModel("missing field"),
            |v| remove(v, &format!("/{part}")),
        );
    }
    c.json(
        "metadata-missing-field",
        "the network has no latent_dim",
        BadModel("missing field `latent_dim`"),
        |v| remove(v, "/network/latent_dim"),
    );
    c.json_raw(
        "metadata-nan-literal",
        "the threshold is the bare word NaN (not JSON)",
        invalid_metadata,
        "NaN",
        |v| set(v, "/calibration/threshold", json!(RAW)),
    );
    c.json_raw(
        "metadata-infinity-literal",
        "a normalisation std is the bare word Infinity (not JSON)",
        invalid_metadata,
        "[1.0,Infinity]",
        |v| set(v, "/normalization/std", json!(RAW)),
    );
    c.json_raw(
        "metadata-number-overflow",
        "beta_max is 1e999, beyond f64",
        invalid_metadata,
        "1e999",
        |v| set(v, "/schedule/beta_max", json!(RAW)),
    );
    c.json_raw(
        "metadata-integer-overflow",
        "input_dim has 31 digits",
        invalid_metadata,
        "1000000000000000000000000000000",
        |v| set(v, "/network/input_dim", json!(RAW)),
    );
    c.json_raw(
        "metadata-deeply-nested",
        "the training record nests 5000 arrays",
        BadModel("recursion limit exceeded"),
        &format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        |v| set(v, "/training", json!(RAW)),
    );

    // --- Calibration ---
    c.edit(
        "calibration-empty",
        "no calibration energies (and num_samples 0)",
        BadModel("calibration needs at least one held-out energy"),
        |m| {
            let mut v: Value = serde_json::from_str(m.meta("ddaebm")).unwrap();
            set(&mut v, "/calibration/num_samples", json!(0));
            m.set_meta("ddaebm", Some(&v.to_string()));
            let t = m.tensor(CALIBRATION_TENSOR);
            t.shape = vec![0];
            t.data.clear();
        },
    );
    let sorted_finite = BadModel("calibration energies must be finite and sorted");
    for (name, what, values) in [
        (
            "calibration-unsorted",
            "the energies are in reverse order",
            [1.5, 0.5, 0.0, -0.5, -1.0],
        ),
        (
            "calibration-nan",
            "one energy is NaN",
            [-1.0, -0.5, f32::NAN, 0.5, 1.5],
        ),
        (
            "calibration-infinite",
            "the last energy is +inf (still sorted)",
            [-1.0, -0.5, 0.0, 0.5, f32::INFINITY],
        ),
    ] {
        c.edit(name, what, sorted_finite, |m| {
            *m.tensor(CALIBRATION_TENSOR) = f32_tensor(CALIBRATION_TENSOR, &[5], &values);
        });
    }
    c.json(
        "calibration-count-mismatch",
        "num_samples 6, 5 energies stored",
        BadModel("calibration declares 6 energies but the file holds 5"),
        |v| set(v, "/calibration/num_samples", json!(6)),
    );
    c.json_raw(
        "calibration-threshold-overflow",
        "threshold 1e39, infinite as an f32",
        BadModel("calibration threshold must be finite"),
        "1e39",
        |v| set(v, "/calibration/threshold", json!(RAW)),
    );
    c.json(
        "calibration-target-tpr-above-one",
        "target_tpr 1.5",
        BadModel("calibration target TPR must be in (0, 1)"),
        |v| set(v, "/calibration/target_tpr", json!(1.5)),
    );
    c.json(
        "calibration-target-tpr-zero",
        "target_tpr 0",
        BadModel("calibration target TPR must be in (0, 1)"),
        |v| set(v, "/calibration/target_tpr", json!(0.0)),
    );

    // --- Normalisation ---
    let bad_values = BadModel("normalization holds non-finite means or non-positive stds");
    for (name, what, pointer, raw) in [
        (
            "normalization-std-zero",
            "a std of 0",
            "/normalization/std",
            "[2.0,0.0]",
        ),
        (
            "normalization-std-negative",
            "a std of -0.5",
            "/normalization/std",
            "[2.0,-0.5]",
        ),
        (
            "normalization-std-underflow",
            "a std of 1e-50, 0 as an f32",
            "/normalization/std",
            "[2.0,1e-50]",
        ),
        (
            "normalization-std-overflow",
            "a std of 1e39, infinite as an f32",
            "/normalization/std",
            "[2.0,1e39]",
        ),
        (
            "normalization-mean-overflow",
            "a mean of -1e39, infinite as an f32",
            "/normalization/mean",
            "[-1e39,0.0]",
        ),
    ] {
        c.json_raw(name, what, bad_values, raw, |v| set(v, pointer, json!(RAW)));
    }
    c.json(
        "normalization-length-mismatch",
        "3 means for 2 inputs",
        BadModel("normalization has 3 means and 2 stds for 2 features"),
        |v| set(v, "/normalization/mean", json!([0.0, 0.0, 0.0])),
    );

    // --- Schedule ---
    for (name, what, pointer, value, expect) in [
        (
            "schedule-zero-steps",
            "num_timesteps 0",
            "/schedule/num_timesteps",
            json!(0),
            "num_timesteps must be in 1..=1000",
        ),
        (
            "schedule-too-many-steps",
            "num_timesteps 1001",
            "/schedule/num_timesteps",
            json!(1001),
            "num_timesteps must be in 1..=1000",
        ),
        (
            "schedule-beta-min-zero",
            "beta_min 0",
            "/schedule/beta_min",
            json!(0.0),
            "need 0 < beta_min <= beta_max",
        ),
        (
            "schedule-beta-max-below-min",
            "beta_max below beta_min",
            "/schedule/beta_max",
            json!(1e-5),
            "need 0 < beta_min <= beta_max",
        ),
        (
            "schedule-eps-small-one",
            "eps_small 1",
            "/schedule/eps_small",
            json!(1.0),
            "eps_small must be in (0, 1)",
        ),
        (
            "schedule-variance-above-one",
            "a geometric schedule whose last variance is 5",
            "/schedule/beta_max",
            json!(5.0),
            "every level variance must lie in (0, 1)",
        ),
    ] {
        c.json(name, what, BadModel(expect), |v| set(v, pointer, value));
    }
    c.json(
        "schedule-unknown-kind",
        "kind \"cosine\"",
        BadModel("unknown variant `cosine`"),
        |v| set(v, "/schedule/kind", json!("cosine")),
    );
    c.json(
        "method-unknown",
        "method \"gcd-v9\", a training method this library does not know",
        BadModel("unknown variant `gcd-v9`"),
        |v| set(v, "/method", json!("gcd-v9")),
    );
    c.json(
        "method-wrong-type",
        "method is a number",
        invalid_metadata,
        |v| set(v, "/method", json!(1)),
    );
    c.json(
        "sampler-unknown",
        "sampler \"langevin-v9\", a sampler kind this library does not know",
        BadModel("unknown variant `langevin-v9`"),
        |v| set(v, "/sampler", json!("langevin-v9")),
    );
    c.json(
        "policy-on-generator",
        "a DDAEBM model (generator) with a Gaussian policy's settings",
        BadModel("belongs to the gaussian_policy sampler"),
        |v| {
            v.as_object_mut()
                .unwrap()
                .insert("policy".into(), json!({"ddpm_steps": 8}));
        },
    );
    let langevin = json!({"steps": 3, "step_sizes": [0.005, 0.01, 0.02, 0.04]});
    let misplaced_langevin = BadModel("a langevin entry belongs to the langevin sampler only");
    c.json(
        "langevin-on-generator",
        "a DDAEBM model (generator) with a Langevin sampler's settings",
        misplaced_langevin,
        |v| {
            v.as_object_mut()
                .unwrap()
                .insert("langevin".into(), langevin.clone());
        },
    );

    // --- GCD models (Gaussian-policy sampler) ---
    let ddaebm_base = std::mem::replace(&mut c.base, valid_model_of(Method::Gcd));
    c.edit(
        "gcd-valid",
        "a valid GCD model: the energy and a Gaussian policy on 8 DDPM steps",
        Opens,
        |_| {},
    );
    c.json(
        "gcd-policy-missing",
        "sampler gaussian_policy without the policy entry",
        BadModel("needs the metadata's policy entry"),
        |v| remove(v, "/policy"),
    );
    c.json(
        "gcd-ddpm-steps-not-multiple",
        "ddpm_steps 10, not a multiple of the 4 schedule steps",
        BadModel("must be a multiple of the schedule's 4 steps"),
        |v| set(v, "/policy/ddpm_steps", json!(10)),
    );
    c.json(
        "gcd-ddpm-steps-huge",
        "ddpm_steps 2^40",
        BadModel("must be a multiple of the schedule's 4 steps"),
        |v| set(v, "/policy/ddpm_steps", json!(1u64 << 40)),
    );
    c.json(
        "gcd-langevin-on-policy",
        "a GCD model (gaussian_policy) with a Langevin sampler's settings as well",
        misplaced_langevin,
        |v| {
            v.as_object_mut()
                .unwrap()
                .insert("langevin".into(), langevin.clone());
        },
    );
    c.json(
        "gcd-policy-wrong-type",
        "the policy entry is a string",
        invalid_metadata,
        |v| set(v, "/policy", json!("ddpm")),
    );
    for (name, what, value, expect) in [
        (
            "gcd-log-std-nan",
            "a step's log σ is NaN",
            f32::NAN,
            "sampler.log_std holds NaN",
        ),
        (
            "gcd-log-std-huge",
            "a step's log σ is 1e4 (σ overflows)",
            1e4,
            "every entry must be finite and within",
        ),
    ] {
        c.edit(name, what, BadModel(expect), |m| {
            let t = m.tensor("sampler.log_std");
            t.data[4..8].copy_from_slice(&value.to_le_bytes());
        });
    }
    c.edit(
        "gcd-log-std-missing",
        "no `sampler.log_std`",
        BadModel("sampler policy"),
        |m| m.tensors.retain(|t| t.name != "sampler.log_std"),
    );
    c.edit(
        "gcd-log-std-wrong-shape",
        "`sampler.log_std` holds 3 values for 4 steps",
        BadModel("sampler policy"),
        |m| {
            let t = m.tensor("sampler.log_std");
            t.shape = vec![3];
            t.data.truncate(12);
        },
    );
    c.edit(
        "gcd-generator-tensors-only",
        "sampler gaussian_policy but the tensors of a generator",
        BadModel("sampler policy"),
        |m| {
            let generator = valid_model_of(Method::Ddaebm);
            m.tensors.retain(|t| !t.name.starts_with("sampler."));
            m.tensors.extend(
                generator
                    .tensors
                    .into_iter()
                    .filter(|t| t.name.starts_with("generator.")),
            );
            m.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        },
    );

    // --- DCD models (Langevin sampler: no sampler tensors) ---
    c.base = valid_model_of(Method::Dcd);
    let generator_tensors = || {
        valid_model_of(Method::Ddaebm)
            .tensors
            .into_iter()
            .filter(|t| t.name.starts_with("generator."))
    };
    c.edit(
        "dcd-valid",
        "a valid DCD model: the energy and 3 Langevin steps per level, no sampler tensors",
        Opens,
        |_| {},
    );
    c.json(
        "dcd-langevin-missing",
        "sampler langevin without the langevin entry",
        BadModel("the langevin sampler needs the metadata's langevin entry"),
        |v| remove(v, "/langevin"),
    );
    let steps_range = BadModel("langevin: steps must be in 1..=10000");
    for (name, what, steps) in [
        ("dcd-steps-zero", "0 Langevin steps per level", json!(0)),
        (
            "dcd-steps-over-limit",
            "10001 Langevin steps per level, one over the limit",
            json!(10_001),
        ),
        (
            "dcd-steps-huge",
            "2^40 Langevin steps per level",
            json!(1u64 << 40),
        ),
    ] {
        c.json(name, what, steps_range, |v| {
            set(v, "/langevin/steps", steps)
        });
    }
    c.json(
        "dcd-gradients-over-limit",
        "6000 Langevin steps at each of 4 levels: 24 000 energy gradients per sampled row",
        BadModel("exceed 20000 energy gradients per sampled row"),
        |v| set(v, "/langevin/steps", json!(6000)),
    );
    c.json(
        "dcd-schedule-without-noise",
        "a geometric schedule with beta_min = beta_max: its steps add no noise, the tie is infinite",
        BadModel("the schedule adds no noise in its step into level 1"),
        |v| {
            set(v, "/schedule/beta_min", json!(0.01));
            set(v, "/schedule/beta_max", json!(0.01));
            set(v, "/schedule/kind", json!("geometric"));
        },
    );
    c.json(
        "dcd-step-sizes-short",
        "3 step sizes for the 4 levels",
        BadModel("langevin: 3 step sizes for a schedule of 4 levels"),
        |v| set(v, "/langevin/step_sizes", json!([0.005, 0.01, 0.02])),
    );
    c.json(
        "dcd-step-sizes-empty",
        "no step sizes",
        BadModel("langevin: 0 step sizes for a schedule of 4 levels"),
        |v| set(v, "/langevin/step_sizes", json!([])),
    );
    let step_range = BadModel("langevin: every step size must be in (0, 10]");
    for (name, what, value) in [
        ("dcd-step-size-zero", "a step size of 0", json!(0.0)),
        (
            "dcd-step-size-negative",
            "a step size of -0.01",
            json!(-0.01),
        ),
        ("dcd-step-size-huge", "a step size of 10^6", json!(1e6)),
    ] {
        c.json(name, what, step_range, |v| {
            set(v, "/langevin/step_sizes/2", value)
        });
    }
    for (name, what, raw) in [
        (
            "dcd-step-size-nan",
            "a step size is the bare word NaN (not JSON)",
            "NaN",
        ),
        (
            "dcd-step-size-overflow",
            "a step size is 1e999, beyond f64",
            "1e999",
        ),
    ] {
        c.json_raw(name, what, invalid_metadata, raw, |v| {
            set(v, "/langevin/step_sizes/2", json!(RAW))
        });
    }
    c.json(
        "dcd-step-sizes-wrong-type",
        "step_sizes is a string",
        invalid_metadata,
        |v| set(v, "/langevin/step_sizes", json!("0.01")),
    );
    c.json(
        "dcd-langevin-wrong-type",
        "the langevin entry is a number",
        invalid_metadata,
        |v| set(v, "/langevin", json!(3)),
    );
    c.json(
        "dcd-policy-entry",
        "a DCD model with a Gaussian policy's settings as well",
        BadModel("a policy entry belongs to the gaussian_policy sampler only"),
        |v| {
            v.as_object_mut()
                .unwrap()
                .insert("policy".into(), json!({"ddpm_steps": 8}));
        },
    );
    c.edit(
        "dcd-generator-tensors",
        "a DCD model that also holds a generator's tensors (unused, ignored)",
        Opens,
        |m| {
            m.tensors.extend(generator_tensors());
            m.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        },
    );
    c.edit(
        "dcd-method-generator-sampler",
        "method dcd with sampler generator and a generator's tensors (the method is a record)",
        Opens,
        |m| {
            let mut v: Value = serde_json::from_str(m.meta("ddaebm")).unwrap();
            set(&mut v, "/sampler", json!("generator"));
            remove(&mut v, "/langevin");
            m.set_meta("ddaebm", Some(&v.to_string()));
            m.tensors.extend(generator_tensors());
            m.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        },
    );
    c.edit(
        "dcd-generator-sampler-no-tensors",
        "method dcd with sampler generator but no generator tensors",
        BadModel("generator network"),
        |m| {
            let mut v: Value = serde_json::from_str(m.meta("ddaebm")).unwrap();
            set(&mut v, "/sampler", json!("generator"));
            remove(&mut v, "/langevin");
            m.set_meta("ddaebm", Some(&v.to_string()));
        },
    );
    c.base = ddaebm_base;

    // --- Not model files at all ---
    c.add(
        "random-bytes",
        "4096 pseudo-random bytes",
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        BadModel("header too large"),
    );
    c.add(
        "all-zeros",
        "64 zero bytes",
        vec![0; 64],
        BadModel("invalid JSON in header"),
    );
    c.out
}

/// Every corpus file: the generated ones, then those the fuzzer found.
fn all_cases() -> Vec<(String, String, Expect)> {
    generated_cases()
        .into_iter()
        .map(|c| (c.name, c.what, c.expect))
        .chain(
            FOUND
                .iter()
                .map(|&(n, w, e)| (n.to_string(), w.to_string(), e)),
        )
        .collect()
}

/// The directory's README: how the corpus is made, and the table of files and outcomes.
fn readme() -> String {
    let mut s = String::from(
        "# Hostile model files\n\n\
         Every file here must open to exactly the outcome below, through `Model::open` and\n\
         `ddaebm::format::read_model_bytes` alike, without a panic, an abort or an\n\
         allocation beyond the file's own size. `tests/hostile_models.rs` checks this in\n\
         `cargo test`, and also that every file here is listed below.\n\n\
         All but the fuzzer's finds are generated from one tiny valid model (`valid.safetensors`:\n\
         2 inputs, layer widths of 3, hand-set weights, about 3 KB), each with one defect.\n\
         Regenerate them and this file after a format change with\n\n\
         ```sh\n\
         cargo test --test hostile_models -- --ignored regenerate_hostile_models\n\
         ```\n\n\
         Inputs found by `scripts/fuzz.sh` are committed as found, listed in `FOUND` in the test\n\
         (see `fuzz/README.md`). This file is generated: edit the test, not this table.\n\n\
         | file | outcome | message contains | what it is |\n\
         |---|---|---|---|\n",
    );
    for (name, what, expect) in all_cases() {
        let (outcome, fragment) = expect.describe();
        let what = what.replace('|', "\\|");
        writeln!(s, "| `{name}` | {outcome} | {fragment} | {what} |").unwrap();
    }
    s
}

// === The tests ===

/// Checks one outcome against its expectation; `Err` explains the difference.
fn check(result: ddaebm::Result<Model>, expect: Expect) -> Result<(), String> {
    match (result, expect) {
        (Ok(model), Expect::Opens) => {
            let d = model.input_dim();
            let rows: Vec<f32> = (0..2 * d).map(|i| i as f32 * 0.3 - 0.5).collect();
            let e = model.energy(&rows, 2).map_err(|e| e.to_string())?;
            let s = model.sample(1, 0).map_err(|e| e.to_string())?;
            if e.iter().chain(&s).all(|v| v.is_finite()) {
                Ok(())
            } else {
                Err(format!("non-finite energies {e:?} or sample {s:?}"))
            }
        }
        (Err(Error::BadModel(msg)), Expect::BadModel(fragment)) if msg.contains(fragment) => Ok(()),
        (Err(Error::UnsupportedVersion { found, supported }), Expect::Unsupported(v))
            if found == v && supported == FORMAT_VERSION =>
        {
            Ok(())
        }
        (Ok(_), _) => Err("opened".into()),
        (Err(e), _) => Err(format!("{e:?}")),
    }
}

#[test]
fn every_file_gives_its_expected_outcome() {
    let dir = corpus_dir();
    let mut failures = vec![];
    for (name, _, expect) in all_cases() {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Through the memory map, as hosts open models ...
        if let Err(e) = check(Model::open(&path, &Device::Cpu), expect) {
            failures.push(format!("{name} (open): expected {expect:?}, got {e}"));
        }
        // ... and from a buffer, as the fuzzer does: the same checks in the same order.
        let from_bytes = read_model_bytes(&bytes, &Device::Cpu)
            .and_then(|c| Model::from_contents(c, &Device::Cpu));
        if let Err(e) = check(from_bytes, expect) {
            failures.push(format!("{name} (bytes): expected {expect:?}, got {e}"));
        }
        // Reading only the metadata accepts what opens and refuses other versions alike.
        let meta = ddaebm::read_metadata(&path);
        let meta_ok = match expect {
            Expect::Opens => meta.is_ok(),
            Expect::Unsupported(v) => {
                matches!(meta, Err(Error::UnsupportedVersion { found, .. }) if found == v)
            }
            Expect::BadModel(_) => true,
        };
        if !meta_ok {
            failures.push(format!("{name} (metadata): {:?}", meta.err()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_file_in_the_directory_is_listed() {
    let listed: BTreeSet<String> = all_cases().into_iter().map(|(n, _, _)| n).collect();
    let present: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    let unlisted: Vec<_> = present.difference(&listed).collect();
    let absent: Vec<_> = listed.difference(&present).collect();
    assert!(
        unlisted.is_empty() && absent.is_empty(),
        "files not listed in the test: {unlisted:?}; listed but absent: {absent:?}"
    );
    assert_eq!(listed.len(), all_cases().len(), "a name is listed twice");
}

#[test]
fn generated_files_match_the_generator() {
    let dir = corpus_dir();
    let stale: Vec<String> = generated_cases()
        .into_iter()
        .filter(|c| std::fs::read(dir.join(&c.name)).ok().as_ref() != Some(&c.bytes))
        .map(|c| c.name)
        .collect();
    let readme_stale = std::fs::read_to_string(dir.join("README.md")).ok() != Some(readme());
    assert!(
        stale.is_empty() && !readme_stale,
        "stale corpus files {stale:?} (README stale: {readme_stale}); regenerate with \
         `cargo test --test hostile_models -- --ignored regenerate_hostile_models`"
    );
}

#[test]
fn the_corpus_stays_small() {
    let total: u64 = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total < 512 * 1024, "the corpus holds {total} bytes");
}

/// Writes the generated files and the README. Files the fuzzer found are left alone.
#[test]
#[ignore = "writes tests/hostile_models/; run by hand after a format change"]
fn regenerate_hostile_models() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for case in generated_cases() {
        std::fs::write(dir.join(&case.name), &case.bytes).unwrap();
    }
    std::fs::write(dir.join("README.md"), readme()).unwrap();
}
