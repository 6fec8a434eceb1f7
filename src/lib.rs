//! # ddaebm
//!
//! Embeddable out-of-distribution detection with energy-based models trained inside a short
//! diffusion. A model is an energy `E(x)` (higher = more out-of-distribution) plus a sampler,
//! both in one `.safetensors` file; [`Model`] opens it and scores, screens, gives p-values and
//! samples. Training lives in the `ddaebm-train` crate. The method, the file format and the C
//! ABI are described in `docs/`.
//!
//! Modules, from the bottom up (each imports only those above it):
//!
//! * [`error`], [`device`]: typed errors; device selection.
//! * [`architecture`], [`schedule`]: the network sizes and the diffusion schedule a file stores.
//! * [`nn`]: building blocks (linear, PReLU, MLPs, level embeddings, soft clip, convolutions,
//!   norms, and the custom CPU ops).
//! * [`energy`]: the energy network, its base measures, and its level-0 fused form.
//! * [`sampler`]: the samplers (today DDAEBM's generator).
//! * [`detector`]: calibration (threshold, p-values) and normalisation.
//! * [`format`]: the model file: metadata, versions, reading and atomic writing.
//! * [`cpu`]: the fused CPU scoring kernels.
//! * [`model`]: [`Model`], the opened detector.
//! * [`ffi`]: the C ABI.
//!
//! ```no_run
//! let model = ddaebm::Model::open("detector.safetensors", &ddaebm::parse_device("cpu")?)?;
//! let rows = vec![0.0f32; 3 * model.input_dim()];
//! let screened = model.screen(&rows, 3)?;
//! println!("energies {:?}, flagged {:?}", screened.energy, screened.is_ood);
//! # Ok::<(), ddaebm::Error>(())
//! ```

pub mod architecture;
pub mod cpu;
pub mod detector;
pub mod device;
pub mod energy;
pub mod error;
pub mod ffi;
pub mod format;
pub mod model;
pub mod nn;
pub mod sampler;
pub mod schedule;
#[cfg(test)]
mod test_support;

pub use architecture::{ImageConfig, NetworkConfig};
pub use detector::calibration::{Calibration, CalibrationSummary};
pub use detector::drift::DriftTest;
pub use detector::normalization::Normalization;
pub use device::parse_device;
pub use energy::EnergyNet;
pub use error::{Error, Result};
pub use format::{read_metadata, read_model_file, write_model_file, Method, ModelMetadata};
pub use model::{Model, Screening};
pub use sampler::{
    GaussianPolicy, Generator, LangevinConfig, LangevinSampler, PolicyConfig, Sampler, SamplerKind,
};
pub use schedule::{Schedule, ScheduleConfig, VarianceKind};

/// The library version (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
