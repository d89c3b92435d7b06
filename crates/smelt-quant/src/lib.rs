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

// Round-to-nearest schemes (INT8, NF4, block int4, ternary) and error metrics.
pub mod rounding;
mod scheme_error;
pub use scheme_error::SchemeError;
pub mod int8;
pub mod int4;
mod named_tensor;
pub use named_tensor::NamedTensor;
pub mod ternary;
pub mod metrics;
pub mod nf4;
