//! The one error type of smelt-quant: what a caller can get wrong when handing bytes and
//! buffers to a codec. Every variant names the dtype and the expected and found sizes.

use smelt_tensor::DType;

/// A quantization or dequantization request that cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The dtype has no codec here (plain integer types, strings, IQ* types, Q8_1, Q8_K).
    #[error("no ggml dequantizer for {dtype}")]
    Unsupported {
        /// The dtype asked for.
        dtype: DType,
    },
    /// The source is not a whole number of storage blocks.
    #[error("{dtype} source is {found} bytes, not a whole number of {block_bytes}-byte blocks")]
    PartialBlock {
        /// The dtype of the source.
        dtype: DType,
        /// Bytes in one block of `dtype` (the source length must be a multiple of it).
        block_bytes: usize,
        /// Bytes in the source.
        found: usize,
    },
    /// The output buffer does not hold exactly one value per source element.
    #[error("{dtype} source holds {expected} values, output buffer holds {found}")]
    OutputLength {
        /// The dtype of the source.
        dtype: DType,
        /// Elements in the source (blocks × elements per block).
        expected: usize,
        /// Length of the output buffer.
        found: usize,
    },
}
