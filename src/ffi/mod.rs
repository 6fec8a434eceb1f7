//! The C ABI of `libddaebm.so`: the functions and types `include/ddaebm.h` declares.
//!
//! Conventions (as in rustls-ffi and llama.cpp):
//! - Names are `ddaebm_<object>_<verb>`; the model handle is opaque.
//! - Every fallible call returns a [`ddaebm_status`]; `DDAEBM_OK` is 0 and the message of a
//!   failure is available from [`ddaebm_last_error`] on the same thread.
//! - Argument order: the object, then inputs, then outputs; outputs are written only on
//!   success.
//! - A model is immutable after opening and may be shared by any number of threads.
//! - No panic crosses the boundary: it becomes `DDAEBM_ERR_PANIC` (or a getter's default).
//!
//! The header is generated from this module by cbindgen (`cbindgen.toml`); the doc comments
//! here are the header's documentation. `tests/c_header.rs` fails when the committed header
//! differs from a fresh generation.

// Exported items keep their C spelling.
#![allow(non_camel_case_types)]

mod args;
pub mod model;
mod panic;
pub mod status;

pub use model::{ddaebm_model, ddaebm_open_options};
pub use status::{ddaebm_last_error, ddaebm_status, ddaebm_status_string};

use std::ffi::c_char;

const VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a NUL-terminated static string, e.g. `"0.1.0"`; equal to
/// `DDAEBM_VERSION_STRING` when header and library match. Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn ddaebm_version() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// The library version as `MAJOR * 10000 + MINOR * 100 + PATCH`; compare with
/// `DDAEBM_VERSION_NUMBER` to detect a header/library mismatch. Thread safety: safe from any
/// thread.
#[no_mangle]
pub extern "C" fn ddaebm_version_number() -> u32 {
    version_number(env!("CARGO_PKG_VERSION"))
}

/// `(MAJOR, MINOR, PATCH)` of a `MAJOR.MINOR.PATCH[-pre][+build]` version; missing or
/// non-numeric parts are 0.
pub fn version_parts(version: &str) -> (u32, u32, u32) {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// `MAJOR * 10000 + MINOR * 100 + PATCH` of a `MAJOR.MINOR.PATCH[-pre]` version.
pub fn version_number(version: &str) -> u32 {
    let (major, minor, patch) = version_parts(version);
    major * 10_000 + minor * 100 + patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_matches_cargo() {
        let s = unsafe { CStr::from_ptr(ddaebm_version()) };
        assert_eq!(s.to_str().unwrap(), crate::VERSION);
        assert_eq!(version_number("1.2.3"), 10_203);
        assert_eq!(version_number("0.11.0-alpha.1"), 1_100);
        let mut parts = crate::VERSION.split('.').map(|p| p.parse::<u32>().unwrap());
        let (a, b, c) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_eq!(version_parts(crate::VERSION), (a, b, c));
        assert_eq!(ddaebm_version_number(), a * 10_000 + b * 100 + c);
    }
}
