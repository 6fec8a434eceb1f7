//! # ddaebm
//!
//! Embeddable out-of-distribution detection with DDAEBM (Geng et al., ICML 2024): conditional
//! energy-based models embedded in the steps of a short denoising diffusion, trained
//! adversarially against a latent-variable generator.
//!
//! This crate is the inference core: the diffusion [`schedule`], the [`network`]s, the
//! [`model_file`] format, and [`Model`] for energy, screening, p-values and sampling. Training
//! lives in the `ddaebm-train` crate.
//!
//! ```no_run
//! let model = ddaebm::Model::open("detector.safetensors", &ddaebm::parse_device("cpu")?)?;
//! let rows = vec![0.0f32; 3 * model.input_dim()];
//! let screened = model.screen(&rows, 3)?;
//! println!("energies {:?}, flagged {:?}", screened.energy, screened.is_ood);
//! # Ok::<(), ddaebm::Error>(())
//! ```

pub mod base_measure;
pub mod calibration;
pub mod conv_network;
pub mod cpu_energy;
pub mod device;
pub mod error;
pub mod ffi;
mod layer_ops;
pub mod model;
pub mod model_file;
pub mod network;
pub mod normalization;
pub mod sampling;
pub mod schedule;
#[cfg(test)]
mod test_support;

pub use calibration::{Calibration, CalibrationSummary};
pub use conv_network::ImageConfig;
pub use device::parse_device;
pub use error::{Error, Result};
pub use model::{Model, Screening};
pub use model_file::{read_metadata, read_model_file, write_model_file, ModelMetadata};
pub use network::{EnergyNet, Generator, NetworkConfig};
pub use normalization::Normalization;
pub use schedule::{Schedule, ScheduleConfig, VarianceKind};

/// The library version (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
