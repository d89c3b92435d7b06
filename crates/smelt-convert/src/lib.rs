//! smelt's conversion pipeline: a [`recipe::Recipe`] applied to a model gives a
//! [`plan::Plan`] (which scheme each tensor gets, and the predicted size); executing it
//! quantizes tensor after tensor into a writer whose output appears atomically
//! ([`atomic::AtomicFile`]), and a report says what was lost.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod atomic;
mod buffers;
pub mod encode;
mod encode_chunked;
pub mod gptq_config;
pub mod like;
pub mod plan;
pub mod recipe;
pub mod report;
pub mod run;
pub mod scheme;
pub mod sinks;
mod write_hash;

use smelt_tensor::DType;

/// Why a conversion stopped. Every variant names the tensor (or file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading the input failed.
    #[error(transparent)]
    Read(#[from] smelt_formats::Error),
    /// The plan cannot be carried out.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// A NaN or Inf weight (refused unless `--allow-nonfinite`).
    #[error("tensor '{tensor}': element {index} is {value}; refusing non-finite weights (pass --allow-nonfinite to accept them)")]
    NonFinite {
        /// Tensor name.
        tensor: String,
        /// Flat index of the first bad element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The tensor's stored dtype cannot be read as values.
    #[error("tensor '{tensor}': cannot read {dtype} values to quantize")]
    NotQuantizable {
        /// Tensor name.
        tensor: String,
        /// Stored dtype.
        dtype: DType,
    },
    /// The tensor's shape does not suit the scheme.
    #[error("tensor '{tensor}': {why}")]
    Shape {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        why: String,
    },
    /// More elements than this platform can address.
    #[error("tensor '{tensor}' is too large for this platform")]
    TooLarge {
        /// Tensor name.
        tensor: String,
    },
    /// A scheme refused the tensor.
    #[error("tensor '{tensor}': {source}")]
    Scheme {
        /// Tensor name.
        tensor: String,
        /// Cause.
        source: smelt_quant::SchemeError,
    },
    /// A ggml codec refused the tensor.
    #[error("tensor '{tensor}': {source}")]
    Quant {
        /// Tensor name.
        tensor: String,
        /// Cause.
        source: smelt_quant::QuantError,
    },
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// Output path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// `--like` cannot be used as given.
    #[error(transparent)]
    Like(#[from] like::LikeError),
    /// The writer refused what it was given.
    #[error("{path}: {message}")]
    Write {
        /// Output path.
        path: String,
        /// What went wrong.
        message: String,
    },
}
