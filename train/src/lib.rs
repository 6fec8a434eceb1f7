//! Training for ddaebm detectors: the DDAEBM training loop, data loading, calibration and the
//! pieces of the `ddaebm-train` CLI.

pub mod encoder;
pub mod levels;
pub mod losses;
pub mod trainer;
