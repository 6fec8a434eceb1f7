//! Developer tasks of the ddaebm repository, run with `cargo run -p xtask -- <task> [args]`:
//!
//! * `format-fixtures DIR [VERSIONS]`: writes one small model file per model-file format version
//!   (all, or the comma-separated `VERSIONS`),
//!   with rows, the energies and samples the library gives for them (see [`format_fixtures`]).
//!   The files are committed under `tests/fixtures/format/`; `tests/format_versions.rs` checks
//!   that every later library opens them and gives the same values, bit for bit.
//! * `bindings-fixture DIR`: writes the fixture the C, C++, Go and Python binding tests check
//!   against (see [`bindings_fixture`]); `scripts/test-bindings.sh` runs it.
//! * `probe-levels MODEL DATA OUT.npy`: a research probe, the log-densities of every diffusion
//!   level (see [`probe_levels`]; `bench/ood/README.md` uses it).
//! * `methods-toy [key=value ...]`: the training methods' samplers and energies on 2-D toy data
//!   (see [`methods`]; `bench/methods/` runs it); `method=dcd` runs DCD and short-run CD.
//! * `methods-digits [key=value ...]`: DCD, short-run CD and the default method on the 8×8
//!   digits as vectors: near/far-OOD AUROC and denoising PSNR (see [`methods_digits`]).
//! * `drift-bench [key=value ...]`: size and power of the drift test on the 25 Gaussians (see
//!   [`drift_bench`]; `bench/drift/`).

mod bindings_fixture;
mod drift_bench;
mod format_fixtures;
mod methods;
mod methods_digits;
mod probe_levels;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("format-fixtures") => {
            let dir = args.get(1).map_or("tests/fixtures/format", String::as_str);
            let versions = match args.get(2) {
                Some(list) => list
                    .split(',')
                    .map(|v| v.trim().parse())
                    .collect::<Result<Vec<u32>, _>>()?,
                None => (1..=6).collect(),
            };
            format_fixtures::write_all(dir.as_ref(), &versions)
        }
        Some("bindings-fixture") => {
            let dir = args
                .get(1)
                .map_or("target/bindings-fixture", String::as_str);
            bindings_fixture::write(dir.as_ref())
        }
        Some("probe-levels") => probe_levels::run(&args[1..]),
        Some("methods-toy") => methods::run(&args[1..]),
        Some("methods-digits") => methods_digits::run(&args[1..]),
        Some("drift-bench") => drift_bench::run(&args[1..]),
        _ => bail!(
            "usage: cargo run -p xtask -- <format-fixtures [DIR [VERSIONS]] | bindings-fixture [DIR] | \
             probe-levels MODEL DATA OUT.npy | methods-toy [key=value ...] | \
             methods-digits [key=value ...] | drift-bench [key=value ...]>"
        ),
    }
}
