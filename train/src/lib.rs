//! Training for ddaebm detectors: the DDAEBM training loop, data loading, calibration and the
//! pieces of the `ddaebm-train` CLI.

pub mod checkpoint;
pub mod data;
pub mod dcd;
pub mod encoder;
pub mod fit;
pub mod gcd;
pub mod levels;
pub mod losses;
pub mod method;
pub mod metrics;
pub mod mixture;
pub mod noise;
pub mod onnx;
pub mod optimizer;
pub mod plot;
pub mod sample_quality;
pub mod toy;
pub mod trainer;
