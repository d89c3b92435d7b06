//! smelt quantization schemes and codecs.
//!
//! [`ggml`] decodes llama.cpp's block-quantized storage types (Q4_0 ... Q6_K, TQ1_0, TQ2_0,
//! MXFP4) to f32 exactly as ggml's reference C code does, bit for bit: it is what every other
//! scheme, the runner and the validation reports compare against when a model arrives as GGUF.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod ggml;

pub use error::QuantError;

// Round-to-nearest schemes matched bit for bit against their reference implementations
// (ONNX Runtime, bitsandbytes, GPTQ, BitNet), their checkpoint layouts, and error metrics.
pub mod int4;
pub mod int8;
pub mod metrics;
mod named_tensor;
pub mod nf4;
pub mod rounding;
pub mod run_ranges;
mod scheme_error;
pub mod ternary;

pub use named_tensor::NamedTensor;
pub use scheme_error::SchemeError;

/// The explicit kernels' instruction set for a [`smelt_tensor::simd::Tier`]: the same level,
/// so that a differential test at one tier runs that tier's kernels.
pub(crate) fn kernel_isa(tier: smelt_tensor::simd::Tier) -> smelt_kernels::Isa {
    match tier {
        smelt_tensor::simd::Tier::Avx512 => smelt_kernels::Isa::Avx512,
        smelt_tensor::simd::Tier::Avx2 => smelt_kernels::Isa::Avx2,
        smelt_tensor::simd::Tier::Scalar => smelt_kernels::Isa::Scalar,
    }
}
