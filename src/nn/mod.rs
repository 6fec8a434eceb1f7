//! Building blocks of the networks, one file per layer family: [`linear`] layers, the
//! [`prelu`], [`mlp`]s, level [`embedding`]s, the input [`soft_clip`], the convolutional blocks
//! of image networks ([`conv`]), and the custom CPU operations they run on ([`ops`]).

pub mod conv;
pub mod embedding;
pub mod linear;
pub mod mlp;
pub mod ops;
pub mod prelu;
pub mod soft_clip;
