//! Many threads share one model and mix energy, screen, p-value and sample calls of varied
//! sizes for a bounded time; every result must equal, bit for bit, what one thread computed
//! for the same call beforehand.
//!
//! Batches are compared with the same composition (same rows, same batch size): a row's last
//! bits may depend on the batch size through the matrix-multiply kernels, never on other
//! threads. `scripts/sanitize.sh` runs this test under ThreadSanitizer.
//!
//! Environment: `DDAEBM_STRESS_THREADS` (default 16), `DDAEBM_STRESS_SECONDS` (default 2, per
//! test).

mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ddaebm::model::CHUNK_ROWS;
use ddaebm::{Error, Model, Screening};
use support::{random_model, rows, Kind};

const DIM: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// One call and its single-threaded result.
enum Call {
    Energy(Vec<f32>, usize, Vec<f32>),
    Screen(Vec<f32>, usize, Screening),
    Pvalues(Vec<f32>, usize, Vec<f32>),
    Drift(Vec<f32>, usize, ddaebm::DriftTest),
    Sample(usize, u64, Vec<f32>),
    /// A batch with a NaN at (row, col): must fail naming it.
    NonFinite(Vec<f32>, usize, (usize, usize)),
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The calls the threads draw from, with their results computed on this thread.
fn reference_calls(model: &Model) -> Vec<Call> {
    let mut calls = Vec::new();
    // Sizes from one row to just past a chunk boundary; one batch holds extreme rows.
    for (variant, n) in [1usize, 2, 7, 64, 300, CHUNK_ROWS + 17]
        .into_iter()
        .enumerate()
    {
        let mut x = rows(n, DIM, variant);
        if n == 7 {
            x[DIM] = 1e30;
            x[3 * DIM + 1] = f32::MAX;
        }
        calls.push(Call::Energy(x.clone(), n, model.energy(&x, n).unwrap()));
        calls.push(Call::Screen(x.clone(), n, model.screen(&x, n).unwrap()));
        calls.push(Call::Pvalues(x.clone(), n, model.pvalues(&x, n).unwrap()));
        calls.push(Call::Drift(x.clone(), n, model.drift(&x, n).unwrap()));
    }
    for (n, seed) in [(1usize, 3u64), (16, 7), (16, 8), (100, 9)] {
        calls.push(Call::Sample(n, seed, model.sample(n, seed).unwrap()));
    }
    let mut bad = rows(40, DIM, 9);
    bad[31 * DIM + 2] = f32::NAN;
    calls.push(Call::NonFinite(bad, 40, (31, 2)));
    calls
}

/// Runs `call` and checks the result; `Err` describes a mismatch.
fn check(model: &Model, call: &Call) -> Result<(), String> {
    match call {
        Call::Energy(x, n, want) => {
            let got = model.energy(x, *n).map_err(|e| e.to_string())?;
            (bits(&got) == bits(want))
                .then_some(())
                .ok_or_else(|| format!("energy of {n} rows differs"))
        }
        Call::Screen(x, n, want) => {
            let got = model.screen(x, *n).map_err(|e| e.to_string())?;
            (bits(&got.energy) == bits(&want.energy) && got.is_ood == want.is_ood)
                .then_some(())
                .ok_or_else(|| format!("screen of {n} rows differs"))
        }
        Call::Pvalues(x, n, want) => {
            let got = model.pvalues(x, *n).map_err(|e| e.to_string())?;
            (bits(&got) == bits(want))
                .then_some(())
                .ok_or_else(|| format!("p-values of {n} rows differ"))
        }
        Call::Drift(x, n, want) => {
            let got = model.drift(x, *n).map_err(|e| e.to_string())?;
            (got.p_value.to_bits() == want.p_value.to_bits() && got == *want)
                .then_some(())
                .ok_or_else(|| format!("drift test of {n} rows differs"))
        }
        Call::Sample(n, seed, want) => {
            let got = model.sample(*n, *seed).map_err(|e| e.to_string())?;
            (bits(&got) == bits(want))
                .then_some(())
                .ok_or_else(|| format!("sample of {n} rows, seed {seed} differs"))
        }
        Call::NonFinite(x, n, (row, col)) => match model.energy(x, *n) {
            Err(Error::NonFinite { row: r, col: c }) if (r, c) == (*row, *col) => Ok(()),
            other => Err(format!("NaN batch gave {other:?}")),
        },
    }
}

/// `threads` threads draw calls pseudo-randomly (per-thread xorshift) until `seconds` pass.
/// Returns the number of calls made.
fn stress(model: Model, threads: usize, seconds: u64) -> usize {
    let calls = Arc::new(reference_calls(&model));
    let model = Arc::new(model);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (model, calls, barrier) = (model.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<usize, String> {
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                barrier.wait();
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut done = 0;
                // At least one full round, so every call runs on every thread.
                while done < calls.len() || Instant::now() < deadline {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = if done < calls.len() {
                        (done + t) % calls.len()
                    } else {
                        (state % calls.len() as u64) as usize
                    };
                    check(&model, &calls[i]).map_err(|e| format!("thread {t}: {e}"))?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().expect("stress thread panicked").unwrap();
    }
    total
}

#[test]
fn shared_model_on_the_global_pool() {
    let threads = env_or("DDAEBM_STRESS_THREADS", 16) as usize;
    let seconds = env_or("DDAEBM_STRESS_SECONDS", 2);
    let model = random_model(DIM, &[64, 64], Kind::BaseMeasure);
    let calls = stress(model, threads, seconds);
    println!("global pool: {threads} threads, {seconds} s, {calls} calls, all bit-identical");
}

#[test]
fn shared_model_with_a_pool_of_two() {
    let threads = env_or("DDAEBM_STRESS_THREADS", 16) as usize;
    let seconds = env_or("DDAEBM_STRESS_SECONDS", 2);
    let model = random_model(DIM, &[64, 64], Kind::PlainMlp)
        .with_threads(2)
        .unwrap();
    let calls = stress(model, threads, seconds);
    println!("pool of 2: {threads} threads, {seconds} s, {calls} calls, all bit-identical");
}

// A GCD model (Gaussian-policy sampler, mixture base): the committed format fixture.
#[test]
fn shared_gcd_model_on_the_global_pool() {
    let threads = env_or("DDAEBM_STRESS_THREADS", 16) as usize;
    let seconds = env_or("DDAEBM_STRESS_SECONDS", 2);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format/v5/model.safetensors");
    let model = Model::open(&path, &candle::Device::Cpu).unwrap();
    assert_eq!(model.input_dim(), DIM);
    assert_eq!(model.metadata().method, ddaebm::Method::Gcd);
    let calls = stress(model, threads, seconds);
    println!("GCD model: {threads} threads, {seconds} s, {calls} calls, all bit-identical");
}

// A DCD model (Langevin sampler on the energy, mixture base): the committed format fixture.
// Sampling runs the energy's input gradient on every thread at once.
#[test]
fn shared_dcd_model_on_the_global_pool() {
    let threads = env_or("DDAEBM_STRESS_THREADS", 16) as usize;
    let seconds = env_or("DDAEBM_STRESS_SECONDS", 2);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format/v6/model.safetensors");
    let model = Model::open(&path, &candle::Device::Cpu).unwrap();
    assert_eq!(model.input_dim(), DIM);
    assert_eq!(model.metadata().method, ddaebm::Method::Dcd);
    assert_eq!(model.metadata().sampler, ddaebm::SamplerKind::Langevin);
    let calls = stress(model, threads, seconds);
    println!("DCD model: {threads} threads, {seconds} s, {calls} calls, all bit-identical");
}
