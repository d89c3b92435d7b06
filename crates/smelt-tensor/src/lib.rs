//! smelt's lowest layer: the dtypes every format can hold ([`DType`]), and tensor storage that
//! borrows from an mmap without copying ([`storage`]).
//!
//! Shapes everywhere in smelt are row-major, outermost dimension first (numpy, safetensors and
//! ONNX order). GGUF stores dimensions innermost first; its reader reverses them.
#![deny(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!("smelt reads little-endian file formats in place and supports little-endian targets only");

pub mod convert;
mod dtype;
pub mod simd;
pub mod storage;

pub use bytes::Bytes;
pub use dtype::{DType, ALL_DTYPES};

/// Number of elements of a shape, `None` on overflow.
pub fn numel(shape: &[u64]) -> Option<u64> {
    // A zero dimension makes the product zero whatever the others are: checked multiplication
    // left to right could overflow on huge dimensions before reaching it (found by fuzzing a
    // GGUF tensor of dims [63, 2^62, 2^62, 0]).
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}
