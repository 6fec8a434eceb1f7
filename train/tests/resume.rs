//! Crash-safe training: `fit` killed with SIGKILL or stopped with Ctrl-C (SIGINT) mid-run and
//! resumed with `--resume` writes the same model as a run that was never interrupted, the model
//! file is never observed half-written, and a checkpoint is never continued with other data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ddaebm_train::checkpoint::Checkpoint;
use ddaebm_train::data::write_npy;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Joint iterations; the generator-only phase runs the rest of [`STEPS`].
const JOINT: usize = 150;
/// Iterations of the whole run.
const STEPS: usize = 600;
const EVERY: usize = 50;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fit_args(data: &Path, out: &Path, resume: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "fit",
        "--data",
        s(data),
        "--out",
        s(out),
        "--steps",
        &JOINT.to_string(),
        "--generator-steps",
        &(STEPS - JOINT).to_string(),
        "--checkpoint-every",
        &EVERY.to_string(),
        "--width",
        "32",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--seed",
        "5",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    if resume {
        args.push("--resume".into());
    }
    args
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ddaebm-train"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts")
}

fn stderr_of(child: Child) -> (std::process::ExitStatus, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs to completion, checking while it runs that `out`, whenever it exists, is a complete
/// model (the file only ever appears by an atomic rename).
fn run_watching(args: &[String], out: &Path) -> String {
    let mut child = spawn(args);
    let mut seen_complete = 0;
    while child.try_wait().unwrap().is_none() {
        if out.exists() {
            ddaebm::Model::open(out, &candle::Device::Cpu)
                .expect("the model file is complete whenever it exists");
            seen_complete += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, stderr) = stderr_of(child);
    assert!(status.success(), "{stderr}");
    assert!(out.exists(), "no model written: {stderr}");
    eprintln!("model file observed {seen_complete} times while the run finished");
    stderr
}

/// Waits until the checkpoint exists and holds at least `min_step` iterations.
fn wait_for_checkpoint(child: &mut Child, path: &Path, min_step: usize) -> usize {
    let start = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing a checkpoint"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 5 minutes"
        );
        if path.exists() {
            let step = Checkpoint::load(path)
                .expect("a checkpoint is complete whenever it exists")
                .trainer
                .step;
            if step >= min_step {
                return step;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every tensor of two model files, bit for bit.
fn assert_same_model(a: &Path, b: &Path) {
    let (ba, bb) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (ta, tb) = (
        safetensors::SafeTensors::deserialize(&ba).unwrap(),
        safetensors::SafeTensors::deserialize(&bb).unwrap(),
    );
    let mut names = ta.names();
    names.sort();
    let mut names_b = tb.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for name in names {
        assert_eq!(
            ta.tensor(name).unwrap().data(),
            tb.tensor(name).unwrap().data(),
            "tensor {name} differs from the uninterrupted run"
        );
    }
}

fn write_data(path: &Path, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (rows, cols) = (500, 4);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let z: f32 = StandardNormal.sample(&mut rng);
            z + if (i / cols) % 2 == 0 { 2.0 } else { -2.0 }
        })
        .collect();
    write_npy(path, &data, &[rows, cols]).unwrap();
}

fn checkpoint_of(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.ckpt", out.display()))
}

#[test]
fn killed_or_interrupted_runs_resume_to_the_uninterrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.npy");
    write_data(&data, 1);

    // The reference: one run from start to end.
    let full = dir.path().join("full.safetensors");
    run_watching(&fit_args(&data, &full, false), &full);
    assert!(
        !checkpoint_of(&full).exists(),
        "a finished run removes its checkpoint"
    );

    // SIGKILL in the generator-only phase, after a checkpoint there, then resume (the Ctrl-C
    // below stops the joint phase).
    let killed = dir.path().join("killed.safetensors");
    let ckpt = checkpoint_of(&killed);
    let mut child = spawn(&fit_args(&data, &killed, false));
    let saved = wait_for_checkpoint(&mut child, &ckpt, JOINT + EVERY);
    // Let it run on a little past the checkpoint, so the kill lands mid-interval.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    let (status, stderr) = stderr_of(child);
    assert!(!status.success());
    assert!(
        !killed.exists(),
        "a killed run left a model file behind: {stderr}"
    );
    let at_kill = Checkpoint::load(&ckpt).unwrap().trainer.step;
    assert!(at_kill >= saved && at_kill % EVERY == 0 && at_kill < STEPS);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    // Progress lines ("step N/total ...") say how far the killed run had got.
    let reached = stderr
        .lines()
        .filter_map(|l| {
            l.strip_prefix("step ")?
                .split('/')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "after SIGKILL: checkpoint at step {at_kill}, progress had reached step {reached} \
         (at least {} steps lost); temporary files left: {leftovers:?}",
        reached.saturating_sub(at_kill)
    );

    // A temporary file that a kill during a checkpoint write would leave is cleaned up.
    let stale = dir.path().join(".killed.safetensors.ckpt.tmp999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();

    // A checkpoint is never continued with other data.
    let other = dir.path().join("other.npy");
    write_data(&other, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_ddaebm-train"))
        .args(fit_args(&other, &killed, true))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("different data"), "{stderr}");
    assert!(!killed.exists());

    let stderr = run_watching(&fit_args(&data, &killed, true), &killed);
    assert!(
        stderr.contains(&format!("resumed at iteration {at_kill}")),
        "{stderr}"
    );
    assert!(
        !ckpt.exists(),
        "the checkpoint is removed once the model is written"
    );
    assert_same_model(&full, &killed);

    // Ctrl-C (SIGINT): the run writes a checkpoint at the current iteration and exits with 130.
    let stopped = dir.path().join("stopped.safetensors");
    let ckpt = checkpoint_of(&stopped);
    let mut child = spawn(&fit_args(&data, &stopped, false));
    wait_for_checkpoint(&mut child, &ckpt, EVERY);
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let (status, stderr) = stderr_of(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint written to"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!stopped.exists());
    let at_stop = Checkpoint::load(&ckpt).unwrap().trainer.step;
    assert!((EVERY..STEPS).contains(&at_stop), "{at_stop}");
    let stderr = run_watching(&fit_args(&data, &stopped, true), &stopped);
    assert!(
        stderr.contains(&format!("resumed at iteration {at_stop}")),
        "{stderr}"
    );
    assert_same_model(&full, &stopped);
}

#[test]
fn resume_without_a_checkpoint_starts_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.npy");
    write_data(&data, 3);
    let out = dir.path().join("m.safetensors");
    let mut args = fit_args(&data, &out, true);
    let steps = args.iter().position(|a| a == "--steps").unwrap();
    args[steps + 1] = "60".into();
    let stderr = run_watching(&args, &out);
    assert!(stderr.contains("no checkpoint at"), "{stderr}");
    assert!(!stderr.contains("resumed at"), "{stderr}");
}

/// A library fit on `data` (4 features) with `joint` + `generator` iterations, checkpointing to
/// `ckpt`, resuming when asked, and raising its stop flag after iteration `stop_after`.
fn library_fit(
    data: &ddaebm_train::data::Matrix,
    ckpt: &Path,
    (joint, generator): (usize, usize),
    resume: bool,
    stop_after: Option<usize>,
) -> anyhow::Result<ddaebm_train::fit::FittedModel> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let mut cfg = ddaebm_train::fit::FitConfig {
        checkpoint: Some(ddaebm_train::fit::CheckpointConfig {
            path: ckpt.to_path_buf(),
            every: 0,
            resume,
        }),
        stop: Some(stop.clone()),
        network: Some(ddaebm_train::fit::default_network(4)),
        ..Default::default()
    };
    cfg.train.steps = joint;
    cfg.train.generator_steps = Some(generator);
    cfg.train.batch_size = 32;
    let (fitted, _) = ddaebm_train::fit::fit(data, &cfg, &candle::Device::Cpu, |step, _| {
        if Some(step + 1) == stop_after {
            stop.store(true, Ordering::SeqCst);
        }
    })?;
    Ok(fitted)
}

#[test]
fn phase_lengths_may_change_only_before_the_generator_only_phase() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let values: Vec<f32> = (0..300 * 4)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let data = ddaebm_train::data::Matrix::new(300, 4, values).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.ckpt");
    let interrupted = |r: anyhow::Result<_>| {
        let e = r.err().expect("the run stops");
        assert!(
            e.downcast_ref::<ddaebm_train::fit::Interrupted>().is_some(),
            "{e:#}"
        );
    };
    let tensors = |m: &ddaebm_train::fit::FittedModel| -> Vec<(String, Vec<f32>)> {
        m.tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    };
    let full = library_fit(&data, &dir.path().join("none.ckpt"), (6, 8), false, None).unwrap();

    // Stopped inside the generator-only phase: the lengths must match...
    interrupted(library_fit(&data, &ckpt, (6, 8), false, Some(9)));
    for lengths in [(7, 8), (6, 9)] {
        let e = library_fit(&data, &ckpt, lengths, true, None)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("different"), "{e:#}");
    }
    // ... and then the run ends as the uninterrupted one did.
    let resumed = library_fit(&data, &ckpt, (6, 8), true, None).unwrap();
    assert_eq!(tensors(&resumed), tensors(&full));

    // Stopped in the joint phase: a run may continue with more iterations of either phase.
    interrupted(library_fit(&data, &ckpt, (4, 8), false, Some(2)));
    let resumed = library_fit(&data, &ckpt, (6, 8), true, None).unwrap();
    assert_eq!(tensors(&resumed), tensors(&full));
}
