//! CPU kernels, kept apart from the candle networks: the fused level-0 energy ([`energy`]) that
//! [`crate::Model`] scores with on the CPU, and the scalar and matrix routines it runs on
//! ([`kernels`]).

pub mod energy;
pub mod kernels;
