//! Checks of the pointer arguments of exported calls: C strings, input arrays and output
//! buffers (NULL, alignment, UTF-8), each failing with a [`Failure`] that names the argument.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use super::status::Failure;

/// Reads a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn utf8_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|_| Failure::invalid(format!("`{name}` is not valid UTF-8")))
}

/// Reads a NUL-terminated path; on Unix any bytes are accepted.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn path_arg(ptr: *const c_char) -> Result<PathBuf, Failure> {
    if ptr.is_null() {
        return Err(Failure::null("path"));
    }
    let bytes = CStr::from_ptr(ptr).to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| Failure::invalid("`path` is not valid UTF-8"))
    }
}

/// Borrows `len` floats at `ptr`; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable floats.
pub(crate) unsafe fn input_slice<'a>(
    name: &str,
    ptr: *const f32,
    len: usize,
) -> Result<&'a [f32], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    check_aligned(name, ptr)?;
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Refuses a pointer that is not aligned for its element type.
pub(crate) fn check_aligned<T>(name: &str, ptr: *const T) -> Result<(), Failure> {
    if ptr.is_aligned() {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "`{name}` is misaligned (needs {}-byte alignment)",
            std::mem::align_of::<T>()
        )))
    }
}

/// Checks an output pointer for `len` values of `T`: non-NULL (unless `len` is 0) and aligned.
pub(crate) fn check_output<T>(name: &str, ptr: *mut T, len: usize) -> Result<(), Failure> {
    if ptr.is_null() {
        return if len > 0 {
            Err(Failure::null(name))
        } else {
            Ok(())
        };
    }
    check_aligned(name, ptr.cast_const())
}

/// Copies `values` to `ptr` (checked by [`check_output`] for `values.len()` elements).
///
/// # Safety
/// `ptr` points to `values.len()` writable values of `T`, or `values` is empty.
pub(crate) unsafe fn write_output<T: Copy>(ptr: *mut T, values: &[T]) {
    if !values.is_empty() {
        std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len());
    }
}
