//! The library's typed error. Every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong in the core library.
///
/// The variants are grouped by what the caller can do about them; the C ABI maps each one to a
/// distinct status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Caller errors ===
    /// An argument is outside its documented domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A buffer or row length does not match what the model expects.
    #[error("shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch { expected: String, got: String },

    /// An input row holds NaN or ±Inf.
    #[error("non-finite value (NaN or Inf) in input row {row}, column {col}")]
    NonFinite { row: usize, col: usize },

    // === Model files ===
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a ddaebm model, or it is damaged.
    #[error("bad model file: {0}")]
    BadModel(String),

    /// The file was written by a newer (or unknown) version of the format.
    #[error(
        "unsupported model format version {found} (this library reads versions up to {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },

    // === Devices ===
    /// The requested device cannot be used in this build or on this host.
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),

    // === Internal ===
    /// An error from the tensor library (without the backtrace candle attaches when
    /// `RUST_BACKTRACE` is set: messages stay one line, also through the C ABI).
    #[error("{}", one_line(.0))]
    Candle(#[source] candle::Error),
}

impl From<candle::Error> for Error {
    fn from(e: candle::Error) -> Self {
        Self::Candle(without_backtrace(e))
    }
}

/// candle's message on one line: its context layers are joined with `: ` instead of newlines.
fn one_line(e: &candle::Error) -> String {
    let text = e.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join(": ")
}

/// `e` with every backtrace layer removed, contexts kept.
fn without_backtrace(e: candle::Error) -> candle::Error {
    match e {
        candle::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        candle::Error::Context { inner, context } => candle::Error::Context {
            inner: Box::new(without_backtrace(*inner)),
            context,
        },
        other => other,
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_model(msg: impl Into<String>) -> Self {
        Self::BadModel(msg.into())
    }
}

/// Crate-wide result alias.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_errors_lose_their_backtrace_but_keep_their_context() {
        let inner = candle::Error::Msg("bad shape".into());
        let wrapped = candle::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        }
        .context("energy network");
        let e: Error = wrapped.into();
        let msg = e.to_string();
        assert!(
            msg.contains("bad shape") && msg.contains("energy network"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
}
