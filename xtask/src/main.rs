//! Developer tasks of the ddaebm repository, run with `cargo run -p xtask -- <task> [args]`:
//!
//! * `format-fixtures DIR`: writes one small model file per earlier model-file format version,
//!   with rows, the energies and samples the library gives for them (see [`format_fixtures`]).
//!   The files are committed under `tests/fixtures/format/`; `tests/format_versions.rs` checks
//!   that every later library opens them and gives the same values, bit for bit.

mod format_fixtures;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("format-fixtures") => {
            let dir = args.get(1).map_or("tests/fixtures/format", String::as_str);
            format_fixtures::write_all(dir.as_ref())
        }
        _ => bail!("usage: cargo run -p xtask -- format-fixtures [DIR]"),
    }
}
