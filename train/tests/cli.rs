//! The `ddaebm-train` binary end to end: every subcommand on a small real fit, and bad input
//! giving one clear error line, a non-zero exit and no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ddaebm_train::data::{load_matrix, write_npy};
use rand::SeedableRng;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddaebm-train"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Runs the binary and fails with its stderr unless it succeeded.
fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Fails unless the command failed with exactly one `error:` line and no panic or backtrace.
fn assert_one_error_line(out: &Output, must_contain: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "unexpected success: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(
        lines[0]
            .to_lowercase()
            .contains(&must_contain.to_lowercase()),
        "{must_contain:?} not in {stderr}"
    );
}

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let data = dir.path().join("train.npy");
    write_npy(&data, &ddaebm_train::toy::sample(600, &mut rng), &[600, 2]).unwrap();
    let model = dir.path().join("m.safetensors");
    run_ok(&[
        "fit",
        "--data",
        s(&data),
        "--out",
        s(&model),
        "--steps",
        "60",
        "--batch-size",
        "64",
        "--seed",
        "1",
    ]);
    Fixture { dir, model, data }
}

#[test]
fn every_subcommand_works_on_a_small_fit() {
    let f = fixture();
    let p = |n: &str| f.dir.path().join(n);
    let inspect = run_ok(&["inspect", "--model", s(&f.model)]);
    let meta: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    // Enough rows for the default mixture base measure, so format version 4 (vector models with
    // the isotropic base are still written as version 2).
    assert_eq!(meta["format_version"], 4);
    assert_eq!(meta["method"], "ddaebm");
    assert_eq!(meta["sampler"], "generator");
    assert_eq!(meta["metadata"]["method"], "ddaebm");
    assert!(
        meta["metadata"]["network"]["base_components"]
            .as_u64()
            .unwrap()
            >= 8
    );
    assert_eq!(meta["metadata"]["network"]["input_dim"], 2);
    assert_eq!(meta["metadata"]["calibration"]["num_samples"], 100);
    assert_eq!(meta["metadata"]["training"]["config"]["steps"], 60);
    // The generator-only phase picked for the data: four per joint iteration.
    assert_eq!(
        meta["metadata"]["training"]["config"]["generator_steps"],
        240
    );

    run_ok(&[
        "score",
        "--model",
        s(&f.model),
        "--data",
        s(&f.data),
        "--out",
        s(&p("e.npy")),
    ]);
    let scores = load_matrix(p("e.npy"), None).unwrap();
    assert_eq!((scores.rows, scores.cols), (600, 1));
    // The CLI's energies are the library's energies.
    let model = ddaebm::Model::open(&f.model, &candle::Device::Cpu).unwrap();
    let rows = load_matrix(&f.data, None).unwrap();
    assert_eq!(scores.data, model.energy(&rows.data, rows.rows).unwrap());

    run_ok(&[
        "sample",
        "--model",
        s(&f.model),
        "-n",
        "50",
        "--seed",
        "4",
        "--out",
        s(&p("s.npy")),
    ]);
    let samples = load_matrix(p("s.npy"), None).unwrap();
    assert_eq!((samples.rows, samples.cols), (50, 2));
    assert_eq!(samples.data, model.sample(50, 4).unwrap());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let far: Vec<f32> = ddaebm_train::toy::sample(200, &mut rng)
        .iter()
        .map(|v| v * 4.0 + 3.0)
        .collect();
    write_npy(p("far.npy"), &far, &[200, 2]).unwrap();
    let out = run(&[
        "eval",
        "--model",
        s(&f.model),
        "--id",
        s(&f.data),
        "--ood",
        s(&p("far.npy")),
        "--json",
    ]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let roc = m["auroc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&roc) && m["fpr_at_95_tpr"].as_f64().is_some());

    run_ok(&[
        "calibrate",
        "--model",
        s(&f.model),
        "--data",
        s(&f.data),
        "--tpr",
        "0.9",
        "--out",
        s(&p("c.safetensors")),
    ]);
    let recal = ddaebm::Model::open(p("c.safetensors"), &candle::Device::Cpu).unwrap();
    assert_eq!(recal.metadata().calibration.num_samples, 600);
    assert_eq!(recal.metadata().calibration.target_tpr, 0.9);
    let e = recal.energy(&rows.data, rows.rows).unwrap();
    let accepted = e.iter().filter(|&&v| v <= recal.threshold()).count() as f64 / 600.0;
    assert!(
        (accepted - 0.9).abs() < 0.01,
        "TPR on the calibration rows: {accepted}"
    );
}

#[test]
fn fit_is_reproducible_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let data = dir.path().join("d.npy");
    write_npy(&data, &ddaebm_train::toy::sample(300, &mut rng), &[300, 2]).unwrap();
    let fit = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        run_ok(&[
            "fit",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--steps",
            "20",
            "--batch-size",
            "32",
            "--seed",
            seed,
        ]);
        ddaebm::Model::open(&out, &candle::Device::Cpu)
            .unwrap()
            .energy(&[0.1, 0.2, -0.3, 0.4], 2)
            .unwrap()
    };
    assert_eq!(fit("a", "7"), fit("b", "7"));
    assert_ne!(fit("a", "7"), fit("c", "8"));
}

#[test]
fn bad_input_gives_one_clear_error_line_and_no_output() {
    let f = fixture();
    let p = |n: &str| f.dir.path().join(n);
    let write = |n: &str, body: &[u8]| {
        std::fs::write(p(n), body).unwrap();
        p(n)
    };
    let out_model = p("out.safetensors");
    let out_npy = p("out.npy");
    let score = |model: &Path, data: &Path| {
        run(&[
            "score",
            "--model",
            s(model),
            "--data",
            s(data),
            "--out",
            s(&out_npy),
        ])
    };
    let fit = |data: &Path, out: &Path| run(&["fit", "--data", s(data), "--out", s(out)]);

    // Missing data file.
    assert_one_error_line(&fit(&p("missing.csv"), &out_model), "no such file");
    // Non-numeric CSV.
    let bad_csv = write("bad.csv", b"a,b\n1,2\n3,abc\n");
    assert_one_error_line(&fit(&bad_csv, &out_model), "not a number");
    // NaN and Inf rows.
    let nan_csv = write("nan.csv", b"1,2\nnan,4\n5,6\n");
    assert_one_error_line(&fit(&nan_csv, &out_model), "row 1 column 0");
    write_npy(p("inf.npy"), &[1.0, f32::INFINITY, 0.0, 0.0], &[2, 2]).unwrap();
    assert_one_error_line(&score(&f.model, &p("inf.npy")), "finite");
    // Wrong dimension.
    let three = write("three.csv", b"1,2,3\n4,5,6\n");
    assert_one_error_line(&score(&f.model, &three), "expects 2");
    // Truncated model, random bytes, and a safetensors file that is not a ddaebm model.
    let bytes = std::fs::read(&f.model).unwrap();
    let truncated = write("trunc.safetensors", &bytes[..bytes.len() / 2]);
    assert_one_error_line(&score(&truncated, &f.data), "bad model file");
    let junk = write("junk.safetensors", b"this is not a model at all, just text");
    assert_one_error_line(&run(&["inspect", "--model", s(&junk)]), "bad model file");
    let t = candle::Tensor::zeros(3, candle::DType::F32, &candle::Device::Cpu).unwrap();
    let foreign = p("foreign.safetensors");
    candle::safetensors::save(
        &std::collections::HashMap::from([("w".to_string(), t)]),
        &foreign,
    )
    .unwrap();
    assert_one_error_line(
        &run(&[
            "sample",
            "--model",
            s(&foreign),
            "-n",
            "3",
            "--out",
            s(&out_npy),
        ]),
        "not a ddaebm model",
    );
    // Bad options.
    assert_one_error_line(
        &run(&[
            "fit",
            "--data",
            s(&f.data),
            "--out",
            s(&out_model),
            "--val-fraction",
            "1.5",
        ]),
        "val-fraction",
    );
    assert_one_error_line(
        &run(&[
            "fit",
            "--data",
            s(&f.data),
            "--out",
            s(&out_model),
            "--device",
            "cuda",
        ]),
        "cuda",
    );
    // Nothing was written by any failed command, not even temporary files.
    assert!(!out_model.exists() && !out_npy.exists());
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // A failed fit leaves an existing model untouched.
    let before = std::fs::read(&f.model).unwrap();
    assert_one_error_line(&fit(&nan_csv, &f.model), "row 1");
    assert_eq!(std::fs::read(&f.model).unwrap(), before);
}

/// Writes `n` synthetic 1×6×4 "images" (a bright bar at a random row) as `(n, 6, 4)` u8 `.npy`.
fn bar_images(path: &Path, n: usize, seed: u64) {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0f32; n * 24];
    for img in data.chunks_exact_mut(24) {
        let row = rng.random_range(1..5);
        for x in 0..4 {
            img[row * 4 + x] = rng.random_range(180.0..255.0f32).round();
        }
    }
    let t = candle::Tensor::from_vec(data, (n, 6, 4), &candle::Device::Cpu)
        .unwrap()
        .to_dtype(candle::DType::U8)
        .unwrap();
    t.write_npy(path).unwrap();
}

#[test]
fn image_data_fits_scores_samples_and_draws_grids() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    bar_images(&p("train.npy"), 160, 1);
    run_ok(&[
        "fit",
        "--data",
        s(&p("train.npy")),
        "--out",
        s(&p("m.safetensors")),
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--base-channels",
        "8",
        "--sample-every",
        "6",
        "--sample-dir",
        s(&p("grids")),
    ]);
    for step in [6, 12] {
        let grid = image::open(p(&format!("grids/step-{step:06}.png"))).unwrap();
        // 8 columns × 8 rows of 4×6 images drawn 8× with 1-pixel gaps.
        assert_eq!((grid.width(), grid.height()), (8 * 33 + 1, 8 * 49 + 1));
    }
    let out = run_ok(&["inspect", "--model", s(&p("m.safetensors"))]);
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["format_version"], 3);
    let image = &meta["metadata"]["network"]["image"];
    assert_eq!(
        (&image["channels"], &image["height"], &image["width"]),
        (&1.into(), &6.into(), &4.into())
    );
    assert_eq!(image["pixel_range"], serde_json::json!([0.0, 255.0]));
    // Scoring takes the (N, H, W) array as rows of H·W values.
    bar_images(&p("test.npy"), 10, 2);
    run_ok(&[
        "score",
        "--model",
        s(&p("m.safetensors")),
        "--data",
        s(&p("test.npy")),
        "--out",
        s(&p("e.npy")),
    ]);
    let e = load_matrix(p("e.npy"), None).unwrap();
    assert_eq!(e.rows, 10);
    assert!(e.data.iter().all(|v| v.is_finite()));
    run_ok(&[
        "sample",
        "--model",
        s(&p("m.safetensors")),
        "-n",
        "5",
        "--out",
        s(&p("s.npy")),
        "--grid",
        s(&p("s.png")),
        "--columns",
        "5",
    ]);
    let samples = load_matrix(p("s.npy"), None).unwrap();
    assert_eq!(samples.image.unwrap().shape, [1, 6, 4]);
    assert_eq!(samples.rows, 5);
    let grid = image::open(p("s.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (5 * 33 + 1, 49 + 1));
    // A grid of a vector model, and sample snapshots of vector data, are clear errors.
    let fx = fixture();
    let out = run(&["sample", "--model", s(&fx.model), "--grid", s(&p("v.png"))]);
    assert_one_error_line(&out, "image model");
    let out = run(&[
        "fit",
        "--data",
        s(&fx.data),
        "--out",
        s(&p("v.safetensors")),
        "--sample-every",
        "5",
    ]);
    assert_one_error_line(&out, "needs image data");
    // Image models export to ONNX as a convolutional graph on [N, C, H, W] (ONNX Runtime's
    // energies are checked against the library's in the Python binding tests).
    use prost::Message;
    run_ok(&[
        "export",
        "--model",
        s(&p("m.safetensors")),
        "--onnx",
        s(&p("m.onnx")),
    ]);
    let proto =
        ddaebm_train::onnx::ModelProto::decode(&*std::fs::read(p("m.onnx")).unwrap()).unwrap();
    let ops: Vec<&str> = proto
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter_map(|n| n.op_type.as_deref())
        .collect();
    for op in ["Conv", "InstanceNormalization", "Sigmoid", "ReduceMean"] {
        assert!(ops.contains(&op), "no {op} node in {ops:?}");
    }
}

#[test]
fn export_writes_an_onnx_graph_of_the_energy_with_the_threshold() {
    use prost::Message;
    let f = fixture();
    let onnx = f.dir.path().join("m.onnx");
    run_ok(&["export", "--model", s(&f.model), "--onnx", s(&onnx)]);
    let proto = ddaebm_train::onnx::ModelProto::decode(&*std::fs::read(&onnx).unwrap()).unwrap();
    let model = ddaebm::Model::open(&f.model, &candle::Device::Cpu).unwrap();
    let props: std::collections::HashMap<_, _> = proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    assert_eq!(
        props["ddaebm.threshold"].parse::<f32>().unwrap(),
        model.threshold()
    );
    assert_eq!(props["ddaebm.method"], "ddaebm");
    let graph = proto.graph.unwrap();
    assert_eq!(graph.input[0].name.as_deref(), Some("x"));
    assert_eq!(graph.output[0].name.as_deref(), Some("energy"));
    // Every layer of the folded network is in the graph: one MatMul each, plus the mixture's.
    let matmuls = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("MatMul"))
        .count();
    let layers = model.energy_net().fold_level0().unwrap().layers.len();
    assert_eq!(matmuls, layers + 1);
    // Bad paths: one error line, nothing written.
    let out = run(&[
        "export",
        "--model",
        s(&f.dir.path().join("missing.safetensors")),
        "--onnx",
        s(&f.dir.path().join("x.onnx")),
    ]);
    assert_one_error_line(&out, "missing.safetensors");
    let out = run(&[
        "export",
        "--model",
        s(&f.model),
        "--onnx",
        s(&f.dir.path().join("no/such/dir/x.onnx")),
    ]);
    assert_one_error_line(&out, "no/such/dir");
}

#[test]
fn a_folder_of_png_files_is_image_data() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("imgs");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..4u8 {
        let img = image::RgbImage::from_fn(3, 2, |x, y| {
            image::Rgb([i * 10, x as u8 * 50, y as u8 * 100])
        });
        img.save(folder.join(format!("{i}.png"))).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "skipped").unwrap();
    let m = load_matrix(&folder, None).unwrap();
    assert_eq!(m.rows, 4);
    assert_eq!(m.image.unwrap().shape, [3, 2, 3]);
    assert_eq!(m.image.unwrap().range, Some([0.0, 255.0]));
    // Channel-major: red plane, then green, then blue, each row by row.
    assert_eq!(&m.row(2)[..6], &[20.0; 6]);
    assert_eq!(&m.row(2)[6..12], &[0.0, 50.0, 100.0, 0.0, 50.0, 100.0]);
    assert_eq!(&m.row(2)[12..18], &[0.0, 0.0, 0.0, 100.0, 100.0, 100.0]);
    // Mixed sizes are refused, naming a file.
    image::GrayImage::new(4, 4)
        .save(folder.join("9.png"))
        .unwrap();
    let e = load_matrix(&folder, None).unwrap_err();
    assert!(format!("{e:#}").contains("same size"), "{e:#}");
}

#[test]
fn inspect_reports_the_declared_version_and_the_method_of_older_files() {
    let v1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/format/v1/model.safetensors");
    let out = run_ok(&["inspect", "--model", s(&v1)]);
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Written before the method was recorded: read as DDAEBM with its generator.
    assert_eq!(meta["format_version"], 1);
    assert_eq!(meta["method"], "ddaebm");
    assert_eq!(meta["sampler"], "generator");
}

/// `sample -n 30` from `model` gives 30 finite 2-D rows.
fn assert_samples_30_finite_rows(f: &Fixture, model: &Path) {
    let samples = f.dir.path().join("samples.npy");
    run_ok(&[
        "sample",
        "--model",
        s(model),
        "-n",
        "30",
        "--out",
        s(&samples),
    ]);
    let m = load_matrix(&samples, None).unwrap();
    assert_eq!((m.rows, m.cols), (30, 2));
    assert!(m.data.iter().all(|v| v.is_finite()));
}

/// `fit --steps 5` on the fixture's data with each case's extra arguments fails with one error
/// line containing its message, and writes no model.
fn assert_fit_refuses(f: &Fixture, cases: &[(&[&str], &str)]) {
    let bad = f.dir.path().join("bad.safetensors");
    let base = [
        "fit",
        "--data",
        s(&f.data),
        "--out",
        s(&bad),
        "--steps",
        "5",
    ];
    for (extra, message) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        assert_one_error_line(&run(&args), message);
        assert!(!bad.exists());
    }
}

#[test]
fn fit_method_gcd_writes_a_gcd_model_and_refuses_other_methods_flags() {
    let f = fixture();
    let model = f.dir.path().join("gcd.safetensors");
    let out = run_ok(&[
        "fit",
        "--method",
        "gcd",
        "--data",
        s(&f.data),
        "--out",
        s(&model),
        "--pretrain-steps",
        "20",
        "--steps",
        "20",
        "--ddpm-steps",
        "100",
        "--batch-size",
        "64",
        "--tau",
        "0.5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("for 40 steps"), "{stderr}");
    let out = run_ok(&["inspect", "--model", s(&model)]);
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["format_version"], 5);
    assert_eq!(meta["method"], "gcd");
    assert_eq!(meta["sampler"], "gaussian_policy");
    assert_eq!(meta["metadata"]["policy"]["ddpm_steps"], 100);
    assert_eq!(meta["metadata"]["schedule"]["num_timesteps"], 5);
    assert_eq!(meta["metadata"]["training"]["method_config"]["tau"], 0.5);
    // The sampler's quality figure on the held-out rows, recorded and shown at the top level.
    let q = &meta["sample_quality"];
    assert_eq!(q, &meta["metadata"]["training"]["sample_quality"]);
    assert_eq!(q["rows"], 100);
    let acc = q["nn_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{q}");
    assert!(q["mmd2"].as_f64().unwrap().is_finite(), "{q}");
    assert!(
        stderr.contains("sample quality on 100 held-out rows"),
        "{stderr}"
    );
    assert_samples_30_finite_rows(&f, &model);

    assert_fit_refuses(
        &f,
        &[
            (
                &["--method", "gcd", "--r1-gamma", "1"][..],
                "--r1-gamma does not apply to --method gcd",
            ),
            (
                &["--tau", "1"][..],
                "--tau does not apply to --method ddaebm",
            ),
            (&["--method", "sgld"][..], "unknown --method"),
            (&["--method", "gcd", "--ddpm-steps", "7"][..], "multiple"),
            (&["--method", "gcd", "--tau=-1"][..], "tau"),
        ],
    );
}

#[test]
fn fit_method_dcd_writes_a_langevin_model_and_refuses_other_methods_flags() {
    let f = fixture();
    let model = f.dir.path().join("dcd.safetensors");
    let out = run_ok(&[
        "fit",
        "--method",
        "dcd",
        "--data",
        s(&f.data),
        "--out",
        s(&model),
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--langevin-steps",
        "4",
        "--step-scale",
        "0.8",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("for 20 steps"), "{stderr}");
    let out = run_ok(&["inspect", "--model", s(&model)]);
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["format_version"], 6);
    assert_eq!(meta["method"], "dcd");
    assert_eq!(meta["sampler"], "langevin");
    let langevin = &meta["metadata"]["langevin"];
    assert_eq!(langevin["steps"], 4);
    assert_eq!(langevin["step_sizes"].as_array().unwrap().len(), 5);
    assert_eq!(meta["metadata"]["schedule"]["num_timesteps"], 5);
    assert_eq!(
        meta["metadata"]["training"]["method_config"]["step_scale"],
        0.8
    );
    assert_samples_30_finite_rows(&f, &model);

    assert_fit_refuses(
        &f,
        &[
            (
                &["--method", "dcd", "--tau", "1"][..],
                "--tau does not apply to --method dcd",
            ),
            (
                &["--method", "dcd", "--ema", "0.9"][..],
                "--ema does not apply to --method dcd",
            ),
            (
                &["--langevin-steps", "5"][..],
                "--langevin-steps does not apply to --method ddaebm",
            ),
            (
                &["--method", "gcd", "--short-run-cd"][..],
                "--short-run-cd does not apply to --method gcd",
            ),
            (
                &["--method", "dcd", "--generator-steps", "10"][..],
                "--generator-steps does not apply to --method dcd",
            ),
            (&["--method", "dcd", "--langevin-steps", "0"][..], "steps"),
            (&["--method", "dcd", "--step-scale", "0"][..], "step scale"),
            (
                &["--method", "dcd", "--energy-penalty=-1"][..],
                "energy penalty",
            ),
        ],
    );
}

#[test]
fn drift_tests_a_batch_against_the_calibration_energies() {
    let f = fixture();
    let p = |n: &str| f.dir.path().join(n);
    let drift = |data: &Path| -> serde_json::Value {
        let out = run_ok(&["drift", "--model", s(&f.model), "--data", s(data)]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Fresh rows of the training distribution: no drift.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let fresh = ddaebm_train::toy::sample(400, &mut rng);
    write_npy(p("fresh.npy"), &fresh, &[400, 2]).unwrap();
    let same = drift(&p("fresh.npy"));
    assert!(same["p_value"].as_f64().unwrap() > 0.01, "{same}");
    assert_eq!(same["batch_rows"], 400);
    assert_eq!(same["calibration_rows"], 100);
    // The same rows moved off the grid of modes: drift, with a tiny p-value.
    let moved: Vec<f32> = fresh.iter().map(|v| v + 0.35).collect();
    write_npy(p("moved.npy"), &moved, &[400, 2]).unwrap();
    let shifted = drift(&p("moved.npy"));
    assert!(shifted["p_value"].as_f64().unwrap() < 1e-6, "{shifted}");
    assert!(shifted["effect"].as_f64().unwrap() > 0.8, "{shifted}");
    // The library's own result, through the same file.
    let model = ddaebm::Model::open(&f.model, &candle::Device::Cpu).unwrap();
    let t = model.drift(&moved, 400).unwrap();
    assert_eq!(shifted["p_value"].as_f64().unwrap(), t.p_value);
    // Wrong width: one error line.
    write_npy(p("wide.npy"), &[0.0f32; 6], &[2, 3]).unwrap();
    let out = run(&["drift", "--model", s(&f.model), "--data", s(&p("wide.npy"))]);
    assert_one_error_line(&out, "features");
}

#[test]
fn explain_writes_one_attribution_per_feature_that_sums_to_the_energy_gap() {
    let f = fixture();
    let p = |n: &str| f.dir.path().join(n);
    let model = ddaebm::Model::open(&f.model, &candle::Device::Cpu).unwrap();
    // A row near the data and one with feature 1 moved far out.
    let x = [0.5f32, 0.5, 0.5, 30.0];
    write_npy(p("x.npy"), &x, &[2, 2]).unwrap();
    run_ok(&[
        "explain",
        "--model",
        s(&f.model),
        "--data",
        s(&p("x.npy")),
        "--out",
        s(&p("a.npy")),
    ]);
    let a: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(p("a.npy")).unwrap())
        .unwrap()
        .into_vec()
        .unwrap();
    assert_eq!(a, model.explain(&x, 2).unwrap());
    let reference = model.metadata().normalization.mean.clone();
    let e_ref = model.energy(&reference, 1).unwrap()[0];
    let e = model.energy(&x, 2).unwrap();
    for (row, e) in a.chunks(2).zip(e) {
        let gap = e - e_ref;
        assert!(
            (row[0] + row[1] - gap).abs() <= 2e-3 * gap.abs().max(1.0),
            "{row:?} vs {gap}"
        );
    }
    assert!(a[3] > a[2], "the moved feature dominates: {a:?}");
}
