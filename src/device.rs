//! Choosing where tensors live: `"cpu"`, `"cuda"` or `"cuda:N"`.

use candle::Device;

use crate::error::{Error, Result};

/// Parses a device name and opens the device.
///
/// `"cuda"` means `"cuda:0"`. Asking for CUDA from a build without the `cuda` feature, or on a
/// host without a usable GPU, is a [`Error::DeviceUnavailable`] with a message that says which.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("cpu") {
        return Ok(Device::Cpu);
    }
    let ordinal = if name.eq_ignore_ascii_case("cuda") {
        0
    } else if let Some(rest) = name.strip_prefix("cuda:") {
        rest.parse::<usize>()
            .map_err(|_| Error::InvalidArgument(format!("bad CUDA ordinal in device {name:?}")))?
    } else {
        return Err(Error::InvalidArgument(format!(
            "unknown device {name:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
        )));
    };
    open_cuda(ordinal)
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal)
        .map_err(|e| Error::DeviceUnavailable(format!("cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Err(Error::DeviceUnavailable(format!(
        "cuda:{ordinal} requested but this build of ddaebm has no CUDA support \
         (rebuild with `--features cuda`)"
    )))
}

/// A short, stable name for a device, as accepted by [`parse_device`].
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_garbage() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        assert!(matches!(
            parse_device("tpu"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        for name in ["cuda", "cuda:1"] {
            let err = parse_device(name).unwrap_err();
            assert!(matches!(err, Error::DeviceUnavailable(_)));
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
