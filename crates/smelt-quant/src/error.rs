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
    /// The dtype has no ggml quantizer here (k-quants, IQ*, MXFP4, integer types...).
    #[error("no ggml quantizer for {dtype}")]
    NoQuantizer {
        /// The dtype asked for.
        dtype: DType,
    },
    /// The values to quantize are not a whole number of blocks (ggml quantizes whole blocks
    /// only, so a row's length must be a multiple of the block size).
    #[error("{found} values to quantize to {dtype} are not a whole number of {block_elems}-value blocks")]
    PartialRow {
        /// The dtype asked for.
        dtype: DType,
        /// Values in one block of `dtype` (the input length must be a multiple of it).
        block_elems: usize,
        /// Values given.
        found: usize,
    },
    /// The output buffer is not exactly the size of the quantized values.
    #[error("{dtype} encoding takes {expected} bytes, output buffer holds {found}")]
    QuantizedLength {
        /// The dtype asked for.
        dtype: DType,
        /// Bytes the encoding takes (blocks × bytes per block).
        expected: usize,
        /// Length of the output buffer.
        found: usize,
    },
}
