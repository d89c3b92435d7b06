//! Every way a GGUF file can be wrong, one variant each, with the field or tensor it concerns
//! and the absolute byte offset where the problem sits.

use smelt_tensor::DType;

/// A malformed GGUF file. Every variant carries the absolute byte `offset` in the file where the
/// offending field starts.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// A read ran past the end of the file.
    #[error("{what} at byte {offset}: file ends early (needs {needed} bytes, {available} left)")]
    Truncated {
        /// What was being read (`tensor count`, `value of 'general.name'`, ...).
        what: String,
        /// Where the read started.
        offset: u64,
        /// Bytes the read needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The first four bytes are not `GGUF`.
    #[error("at byte {offset}: magic is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// Always 0.
        offset: u64,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A GGUF v1 file (32-bit counts and lengths), which llama.cpp dropped too.
    #[error(
        "at byte {offset}: GGUF v1 is no longer supported (it used 32-bit counts); \
             re-convert the model with a current llama.cpp or gguf-py to get v3"
    )]
    VersionOne {
        /// Offset of the version field (4).
        offset: u64,
    },
    /// The version field, read little-endian, looks byte-swapped: a big-endian GGUF file.
    #[error(
        "at byte {offset}: version field reads {found:#010x} little-endian, i.e. version \
             {swapped} byte-swapped: this is a big-endian GGUF file, which smelt does not read"
    )]
    BigEndian {
        /// Offset of the version field (4).
        offset: u64,
        /// The version field as read little-endian.
        found: u32,
        /// The version field byte-swapped.
        swapped: u32,
    },
    /// A version other than 1, 2 or 3.
    #[error("at byte {offset}: GGUF version {version} is not supported (smelt reads v2 and v3)")]
    UnsupportedVersion {
        /// Offset of the version field (4).
        offset: u64,
        /// The version found.
        version: u32,
    },
    /// The tensor or metadata count is above smelt's cap (`limits::MAX_TENSORS`,
    /// `limits::MAX_METADATA`).
    #[error("{what} at byte {offset}: {count} exceeds the limit of {max}")]
    CountTooLarge {
        /// Which count (`tensor count`, `metadata count`).
        what: &'static str,
        /// Offset of the count field.
        offset: u64,
        /// The count found.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// A count (tensors, metadata entries, array elements) cannot fit in the rest of the file:
    /// each item needs at least `min_item_bytes`.
    #[error(
        "{what} at byte {offset}: {count} items need at least {min_item_bytes} bytes each, \
             but only {available} bytes are left in the file"
    )]
    CountPastEnd {
        /// Which count (`tensor count`, `metadata count`, `array length of 'key'`).
        what: String,
        /// Offset of the count field.
        offset: u64,
        /// The count found.
        count: u64,
        /// The smallest encoding of one item.
        min_item_bytes: u64,
        /// Bytes left after the count field.
        available: u64,
    },
    /// A string's length is above smelt's cap (`limits::MAX_NAME_LEN` for keys and tensor
    /// names, `limits::MAX_STRING_LEN` for values).
    #[error("{what} at byte {offset}: length {len} exceeds the limit of {max} bytes")]
    StringTooLong {
        /// Which string.
        what: String,
        /// Offset of the length field.
        offset: u64,
        /// The length found.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A string's length runs past the end of the file.
    #[error(
        "{what} at byte {offset}: length {len} runs past the end of the file \
             ({available} bytes left)"
    )]
    StringPastEnd {
        /// Which string.
        what: String,
        /// Offset of the length field.
        offset: u64,
        /// The length found.
        len: u64,
        /// Bytes left after the length field.
        available: u64,
    },
    /// A key, string value or tensor name is not valid UTF-8.
    #[error("{what} at byte {offset}: not valid UTF-8 (first bad byte at {bad_byte})")]
    InvalidUtf8 {
        /// Which string.
        what: String,
        /// Offset of the string's bytes.
        offset: u64,
        /// Absolute offset of the first invalid byte.
        bad_byte: u64,
    },
    /// A metadata key is the empty string (llama.cpp refuses these too).
    #[error("metadata entry {index} at byte {offset}: key is empty")]
    EmptyKey {
        /// Index of the entry.
        index: u64,
        /// Offset of the key.
        offset: u64,
    },
    /// Two metadata entries have the same key.
    #[error("metadata key '{key}' at byte {offset}: duplicate of the entry at byte {first_offset}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Offset of the second entry.
        offset: u64,
        /// Offset of the first entry.
        first_offset: u64,
    },
    /// A value type id outside GGUF's 0..=12.
    #[error("metadata '{key}' at byte {offset}: unknown value type {type_id} (GGUF defines 0..=12)")]
    UnknownValueType {
        /// The key.
        key: String,
        /// Offset of the type field.
        offset: u64,
        /// The id found.
        type_id: u32,
    },
    /// Arrays nested deeper than `limits::MAX_NESTING`.
    #[error("metadata '{key}' at byte {offset}: arrays nested {depth} deep, limit is {max}")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// Offset of the too-deep array's type field.
        offset: u64,
        /// Depth reached.
        depth: u32,
        /// The cap.
        max: u32,
    },
    /// A BOOL byte other than 0 or 1.
    #[error("metadata '{key}' at byte {offset}: bool byte is {value}, must be 0 or 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// Offset of the byte.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// `general.alignment` is not a UINT32.
    #[error("metadata 'general.alignment' at byte {offset}: type is {found}, must be UINT32")]
    AlignmentWrongType {
        /// Offset of the value.
        offset: u64,
        /// GGUF name of the type found.
        found: &'static str,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("metadata 'general.alignment' at byte {offset}: {value} is not a non-zero power of two")]
    AlignmentNotPowerOfTwo {
        /// Offset of the value.
        offset: u64,
        /// The alignment found.
        value: u32,
    },
    /// Two tensors have the same name.
    #[error("tensor '{name}' at byte {offset}: duplicate of the tensor info at byte {first_offset}")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Offset of the second tensor info.
        offset: u64,
        /// Offset of the first.
        first_offset: u64,
    },
    /// More dimensions than ggml's `GGML_MAX_DIMS` (4).
    #[error("tensor '{name}' at byte {offset}: {n_dims} dimensions, ggml allows at most {max}")]
    TooManyDims {
        /// Tensor name.
        name: String,
        /// Offset of the n_dims field.
        offset: u64,
        /// The count found.
        n_dims: u32,
        /// ggml's limit.
        max: u32,
    },
    /// A dimension above `i64::MAX` (ggml stores dims as `int64_t`; llama.cpp refuses
    /// negative ones).
    #[error(
        "tensor '{name}' at byte {offset}: dimension {index} is {value}, which is negative \
             as ggml's int64"
    )]
    NegativeDim {
        /// Tensor name.
        name: String,
        /// Offset of the dimension.
        offset: u64,
        /// Which dimension (GGUF order, ne[0] first).
        index: usize,
        /// The value as stored (u64).
        value: u64,
    },
    /// The element count (or the byte size) of a tensor does not fit in ggml's `int64_t`.
    #[error(
        "tensor '{name}' at byte {offset}: dims {dims:?} (innermost first) give more elements \
             than ggml's int64 holds, or more bytes than 64 bits hold"
    )]
    DimsOverflow {
        /// Tensor name.
        name: String,
        /// Offset of the dims.
        offset: u64,
        /// Dims in GGUF order (ne[0] first).
        dims: Vec<u64>,
    },
    /// A ggml type id smelt does not know (unknown, or removed from ggml).
    #[error("tensor '{name}' at byte {offset}: unknown or removed ggml type id {type_id}")]
    UnknownTensorType {
        /// Tensor name.
        name: String,
        /// Offset of the type field.
        offset: u64,
        /// The id found.
        type_id: u32,
    },
    /// The innermost dimension of a block-quantized tensor is not a whole number of blocks.
    #[error(
        "tensor '{name}' at byte {offset}: row length {row} is not a multiple of {dtype}'s \
             block size {block}"
    )]
    RowNotBlockMultiple {
        /// Tensor name.
        name: String,
        /// Offset of the dims.
        offset: u64,
        /// The tensor's type.
        dtype: DType,
        /// ne[0], the row length.
        row: u64,
        /// Elements per block.
        block: u64,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error(
        "tensor '{name}' at byte {offset}: data offset {data_offset} is not a multiple of the \
             alignment {alignment}"
    )]
    MisalignedOffset {
        /// Tensor name.
        name: String,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset found (relative to the data section).
        data_offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's bytes extend past the end of the file.
    #[error(
        "tensor '{name}' at byte {offset}: data range {start}..{end} extends past end of file \
             ({file_len} bytes)"
    )]
    TensorPastEnd {
        /// Tensor name.
        name: String,
        /// Offset of the tensor info.
        offset: u64,
        /// Absolute start of the data (`u64::MAX` when the offset overflows).
        start: u64,
        /// Absolute end of the data (saturated at `u64::MAX`).
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// Two tensors' bytes overlap.
    #[error(
        "tensor '{name}' at byte {offset}: data range {start}..{end} overlaps tensor \
             '{other}' ({other_start}..{other_end})"
    )]
    TensorsOverlap {
        /// The tensor whose range starts later.
        name: String,
        /// Offset of its tensor info.
        offset: u64,
        /// Absolute start of its data.
        start: u64,
        /// Absolute end of its data.
        end: u64,
        /// The tensor it overlaps.
        other: String,
        /// Absolute start of the other tensor's data.
        other_start: u64,
        /// Absolute end of the other tensor's data.
        other_end: u64,
    },
}

impl GgufError {
    /// The absolute byte offset the error is about.
    pub fn offset(&self) -> u64 {
        use GgufError::*;
        match self {
            Truncated { offset, .. }
            | BadMagic { offset, .. }
            | VersionOne { offset }
            | BigEndian { offset, .. }
            | UnsupportedVersion { offset, .. }
            | CountTooLarge { offset, .. }
            | CountPastEnd { offset, .. }
            | StringTooLong { offset, .. }
            | StringPastEnd { offset, .. }
            | InvalidUtf8 { offset, .. }
            | EmptyKey { offset, .. }
            | DuplicateKey { offset, .. }
            | UnknownValueType { offset, .. }
            | NestingTooDeep { offset, .. }
            | InvalidBool { offset, .. }
            | AlignmentWrongType { offset, .. }
            | AlignmentNotPowerOfTwo { offset, .. }
            | DuplicateTensor { offset, .. }
            | TooManyDims { offset, .. }
            | NegativeDim { offset, .. }
            | DimsOverflow { offset, .. }
            | UnknownTensorType { offset, .. }
            | RowNotBlockMultiple { offset, .. }
            | MisalignedOffset { offset, .. }
            | TensorPastEnd { offset, .. }
            | TensorsOverlap { offset, .. } => *offset,
        }
    }
}

/// Converts a cursor's "ran out of bytes" into [`GgufError::Truncated`], naming the field.
pub(crate) fn truncated(t: crate::cursor::Truncated, what: impl Into<String>) -> GgufError {
    GgufError::Truncated { what: what.into(), offset: t.offset, needed: t.needed, available: t.available }
}
