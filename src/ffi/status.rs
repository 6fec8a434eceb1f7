//! Status codes, the per-thread last-error message, and [`Failure`], what an exported call's
//! body returns when it fails (the boundary that turns it into a status is in `panic.rs`).

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::Error;

/// Result of every fallible `ddaebm_*` call. `DDAEBM_OK` (0) is success; every other value is a
/// failure whose message `ddaebm_last_error()` returns on the same thread.
///
/// The numbers are part of the ABI: they never change meaning, and retired codes are never
/// reused.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ddaebm_status {
    /// Success.
    DDAEBM_OK = 0,
    /// A required pointer argument was NULL.
    DDAEBM_ERR_NULL_ARGUMENT = 1,
    /// An argument is outside its documented domain (bad device name, misaligned buffer,
    /// sizes that overflow, ...).
    DDAEBM_ERR_INVALID_ARGUMENT = 2,
    /// Reading the model file failed (missing, unreadable, ...).
    DDAEBM_ERR_IO = 3,
    /// The file is not a ddaebm model, or it is truncated or damaged.
    DDAEBM_ERR_BAD_MODEL = 4,
    /// The model file was written by a newer version of the format than this library reads.
    DDAEBM_ERR_UNSUPPORTED_VERSION = 5,
    /// `row_len` differs from the model's input dimension, or an output buffer is too short.
    DDAEBM_ERR_SHAPE_MISMATCH = 6,
    /// An input row holds NaN or ±Inf.
    DDAEBM_ERR_NON_FINITE = 7,
    /// The requested device cannot be used (no CUDA in this build, no GPU on this host, ...).
    DDAEBM_ERR_DEVICE_UNAVAILABLE = 8,
    /// The tensor library failed (out of device memory, driver error, ...).
    DDAEBM_ERR_INTERNAL = 9,
    /// A bug in ddaebm: a Rust panic was caught at the boundary. The model stays usable.
    DDAEBM_ERR_PANIC = 10,
}

use ddaebm_status::*;

impl ddaebm_status {
    /// Every status, in numeric order.
    pub const ALL: [ddaebm_status; 11] = [
        DDAEBM_OK,
        DDAEBM_ERR_NULL_ARGUMENT,
        DDAEBM_ERR_INVALID_ARGUMENT,
        DDAEBM_ERR_IO,
        DDAEBM_ERR_BAD_MODEL,
        DDAEBM_ERR_UNSUPPORTED_VERSION,
        DDAEBM_ERR_SHAPE_MISMATCH,
        DDAEBM_ERR_NON_FINITE,
        DDAEBM_ERR_DEVICE_UNAVAILABLE,
        DDAEBM_ERR_INTERNAL,
        DDAEBM_ERR_PANIC,
    ];

    /// The status's name and meaning as a NUL-terminated static string.
    fn description(self) -> &'static str {
        match self {
            DDAEBM_OK => "DDAEBM_OK: success\0",
            DDAEBM_ERR_NULL_ARGUMENT => "DDAEBM_ERR_NULL_ARGUMENT: a required pointer was NULL\0",
            DDAEBM_ERR_INVALID_ARGUMENT => "DDAEBM_ERR_INVALID_ARGUMENT: invalid argument\0",
            DDAEBM_ERR_IO => "DDAEBM_ERR_IO: I/O error\0",
            DDAEBM_ERR_BAD_MODEL => "DDAEBM_ERR_BAD_MODEL: not a ddaebm model, or damaged\0",
            DDAEBM_ERR_UNSUPPORTED_VERSION => {
                "DDAEBM_ERR_UNSUPPORTED_VERSION: model format newer than this library\0"
            }
            DDAEBM_ERR_SHAPE_MISMATCH => "DDAEBM_ERR_SHAPE_MISMATCH: wrong row length or size\0",
            DDAEBM_ERR_NON_FINITE => "DDAEBM_ERR_NON_FINITE: NaN or Inf in the input\0",
            DDAEBM_ERR_DEVICE_UNAVAILABLE => "DDAEBM_ERR_DEVICE_UNAVAILABLE: device unavailable\0",
            DDAEBM_ERR_INTERNAL => "DDAEBM_ERR_INTERNAL: tensor library error\0",
            DDAEBM_ERR_PANIC => "DDAEBM_ERR_PANIC: internal panic (a bug in ddaebm)\0",
        }
    }
}

impl From<&Error> for ddaebm_status {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidArgument(_) => DDAEBM_ERR_INVALID_ARGUMENT,
            Error::ShapeMismatch { .. } => DDAEBM_ERR_SHAPE_MISMATCH,
            Error::NonFinite { .. } => DDAEBM_ERR_NON_FINITE,
            Error::Io { .. } => DDAEBM_ERR_IO,
            Error::BadModel(_) => DDAEBM_ERR_BAD_MODEL,
            Error::UnsupportedVersion { .. } => DDAEBM_ERR_UNSUPPORTED_VERSION,
            Error::DeviceUnavailable(_) => DDAEBM_ERR_DEVICE_UNAVAILABLE,
            Error::Candle(_) => DDAEBM_ERR_INTERNAL,
        }
    }
}

/// A failed call: the status to return and the message to leave for `ddaebm_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ddaebm_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: ddaebm_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(argument: &str) -> Self {
        Self::new(DDAEBM_ERR_NULL_ARGUMENT, format!("`{argument}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(DDAEBM_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::new((&e).into(), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` as this thread's last error. Interior NULs are replaced so the message
/// always fits a C string; a thread being torn down silently keeps no message.
pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = c;
        }
    });
}

/// Message of the last failed `ddaebm_*` call on the calling thread.
///
/// Returns an empty string when no call on this thread has failed yet; successful calls leave
/// the message unchanged. Never returns NULL.
///
/// Ownership: the string belongs to the library and stays valid until the next failing call on
/// the same thread; copy it to keep it. Thread safety: each thread has its own message.
#[no_mangle]
pub extern "C" fn ddaebm_last_error() -> *const c_char {
    const EMPTY: &[u8] = b"\0";
    // `panic::getter` builds on this module, so the same guard is written out here.
    std::panic::catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ptr())
            .unwrap_or(EMPTY.as_ptr().cast())
    })
    .unwrap_or(EMPTY.as_ptr().cast())
}

/// Name and short meaning of a status code, e.g. `"DDAEBM_ERR_IO: I/O error"`.
///
/// Returns a static NUL-terminated string, or `"unknown status"` for a value that is not a
/// `ddaebm_status`. Never returns NULL. Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn ddaebm_status_string(status: u32) -> *const c_char {
    let text = ddaebm_status::ALL
        .iter()
        .find(|s| **s as u32 == status)
        .map_or("unknown status\0", |s| s.description());
    text.as_ptr().cast()
}
