//! What a caller can get wrong when asking the round-to-nearest schemes ([`crate::int8`],
//! [`crate::nf4`], [`crate::int4`], [`crate::ternary`]) and [`crate::metrics`] for work:
//! arguments that do not fit the scheme or layout. The values themselves are never an error:
//! any f32 input, NaN and infinities included, quantizes to something documented.
//!
//! Kept apart from [`crate::QuantError`] (the ggml codecs' errors) so the two can evolve
//! independently; every variant carries the sizes involved, expected and found.

use smelt_tensor::DType;

/// A quantization, packing or metric request whose arguments do not fit the scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The number of values is not the number of elements of the shape.
    #[error(
        "shape {shape:?} holds {} elements, but {found} values were given",
        expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string())
    )]
    Shape {
        /// The shape asked for.
        shape: Vec<usize>,
        /// Elements in that shape (`None`: the product overflows `usize`).
        expected: Option<usize>,
        /// Values given.
        found: usize,
    },
    /// A per-channel axis past the tensor's rank.
    #[error("axis {axis} does not exist in a rank-{rank} tensor")]
    Axis {
        /// The axis asked for.
        axis: usize,
        /// Rank of the tensor.
        rank: usize,
    },
    /// A block size the scheme does not allow.
    #[error("block size {found} is not allowed (allowed: {allowed:?})")]
    BlockSize {
        /// The block size asked for.
        found: usize,
        /// The block sizes the scheme accepts.
        allowed: &'static [usize],
    },
    /// A group size of zero.
    #[error("group size must be at least 1, got {found}")]
    GroupSize {
        /// The group size asked for.
        found: usize,
    },
    /// A packed layout needs a dimension to be a multiple of what one storage word holds.
    #[error("{what} is {found}, not a multiple of {multiple} as the packed layout needs")]
    NotMultiple {
        /// Which dimension (e.g. "input features").
        what: &'static str,
        /// Its size.
        found: usize,
        /// The multiple the layout needs.
        multiple: usize,
    },
    /// A packed buffer whose length does not match the element count it should hold.
    #[error("packed buffer is {found} bytes, {count} elements need {expected}")]
    PackedLength {
        /// Elements the caller expects.
        count: usize,
        /// Bytes those elements occupy.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A code outside the scheme's range: a ternary value not in {-1, 0, 1}, or the unused
    /// 2-bit code 3 in a packed ternary buffer.
    #[error("element {index} holds code {code}, outside the scheme's range")]
    Code {
        /// Element index (in elements, not bytes).
        index: usize,
        /// The offending code as stored.
        code: i32,
    },
    /// Two slices compared element by element have different lengths.
    #[error("reference has {reference} values, candidate has {candidate}")]
    LengthMismatch {
        /// Length of the reference.
        reference: usize,
        /// Length of the candidate.
        candidate: usize,
    },
    /// A source dtype the serialized layout cannot name (bitsandbytes records the weight's
    /// original torch dtype: float32, float16 or bfloat16).
    #[error("source dtype {dtype} cannot be recorded (expected F32, F16 or BF16)")]
    SourceDType {
        /// The dtype given.
        dtype: DType,
    },
}

/// The element count of `shape`, checked against `found` values.
pub(crate) fn check_shape(shape: &[usize], found: usize) -> Result<usize, SchemeError> {
    let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match expected {
        Some(n) if n == found => Ok(n),
        _ => Err(SchemeError::Shape { shape: shape.to_vec(), expected, found }),
    }
}
