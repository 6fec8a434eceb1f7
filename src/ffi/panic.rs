//! The panic boundary: every exported function runs its body through [`boundary`] (fallible
//! calls) or [`getter`] (calls that return a value), so that a panic is caught before it can
//! unwind into the host, and a failure becomes a status plus this thread's last-error message.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{ddaebm_status, set_last_error, Failure};

use ddaebm_status::*;

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Runs the body of a fallible exported function: `Ok` becomes `DDAEBM_OK`, an error its status
/// (with the message, prefixed by the function's name, stored for `ddaebm_last_error`), and a
/// panic `DDAEBM_ERR_PANIC`.
pub(crate) fn boundary(
    function: &str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> ddaebm_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => DDAEBM_OK,
        Ok(Err(failure)) => {
            set_last_error(&format!("{function}: {}", failure.message));
            failure.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "{function}: internal panic (a bug in ddaebm, please report it): {}",
                panic_message(payload.as_ref())
            ));
            DDAEBM_ERR_PANIC
        }
    }
}

/// Runs the body of a getter: a panic yields `default` instead of unwinding into the host.
pub(crate) fn getter<T>(default: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::ffi::status::{ddaebm_last_error, ddaebm_status_string};
    use std::ffi::CStr;

    fn last_error() -> String {
        unsafe { CStr::from_ptr(ddaebm_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn codes_are_distinct_and_described() {
        for (i, s) in ddaebm_status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            let text = unsafe { CStr::from_ptr(ddaebm_status_string(i as u32)) };
            assert!(text.to_str().unwrap().starts_with(&format!("{s:?}")));
        }
        let unknown = unsafe { CStr::from_ptr(ddaebm_status_string(999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown status");
    }

    #[test]
    fn boundary_maps_errors_panics_and_success() {
        let status = boundary("f", || Err(Error::NonFinite { row: 2, col: 1 }.into()));
        assert_eq!(status, DDAEBM_ERR_NON_FINITE);
        assert!(last_error().starts_with("f: "), "{}", last_error());
        assert!(last_error().contains("row 2, column 1"), "{}", last_error());

        let status = boundary("ddaebm_thing", || panic!("boom"));
        assert_eq!(status, DDAEBM_ERR_PANIC);
        assert!(last_error().contains("ddaebm_thing: internal panic"));
        assert!(last_error().contains("boom"));

        // Success leaves the previous message in place (like errno).
        assert_eq!(boundary("f", || Ok(())), DDAEBM_OK);
        assert!(last_error().contains("boom"));

        // Messages with interior NULs still come out as C strings.
        boundary("f", || Err(Failure::new(DDAEBM_ERR_IO, "a\0b")));
        assert_eq!(last_error(), "f: a\u{fffd}b");
        assert_eq!(getter(7, || panic!("getter")), 7);
    }

    #[test]
    fn last_error_is_per_thread() {
        boundary("f", || Err(Failure::new(DDAEBM_ERR_IO, "main thread")));
        let other = std::thread::spawn(|| {
            let before = last_error();
            boundary("f", || Err(Failure::new(DDAEBM_ERR_IO, "other thread")));
            (before, last_error())
        })
        .join()
        .unwrap();
        assert_eq!(other, (String::new(), "f: other thread".to_string()));
        assert_eq!(last_error(), "f: main thread");
    }
}
