//! Every way a GGUF write can be refused or fail, one variant each.
//!
//! Declaration errors (found before a byte is written) name the metadata key or tensor and its
//! index in the list the caller gave, since there is no file offset yet; errors while streaming
//! tensor data carry the absolute byte offset in the output where the tensor (or the failed
//! write) starts. The writer refuses everything smelt's own GGUF reader would refuse, so what it
//! writes always reads back.

use smelt_tensor::DType;

/// A GGUF file the writer will not write, or an output that failed.
#[derive(Debug, thiserror::Error)]
pub enum GgufWriteError {
    /// The format version is not 2 or 3 (the only versions with this layout).
    #[error("GGUF version {version} cannot be written (smelt writes v3, and v2 to reproduce old files)")]
    UnsupportedVersion {
        /// The version asked for.
        version: u32,
    },
    /// More tensors or metadata entries than smelt's reader accepts (`limits::MAX_TENSORS`,
    /// `limits::MAX_METADATA`).
    #[error("{count} {what} exceed the limit of {max}")]
    TooMany {
        /// `tensors` or `metadata entries`.
        what: &'static str,
        /// How many were declared.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// A metadata key is the empty string.
    #[error("metadata entry {index}: key is empty")]
    EmptyKey {
        /// Index of the entry in the declared metadata.
        index: usize,
    },
    /// A metadata key is longer than `limits::MAX_NAME_LEN`.
    #[error("metadata entry {index}: key '{}...' is {len} bytes, above the limit of {max}", prefix(key))]
    KeyTooLong {
        /// The key.
        key: String,
        /// Index of the entry.
        index: usize,
        /// Its length in bytes.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Two metadata entries have the same key.
    #[error("metadata key '{key}' (entry {index}): duplicate of entry {first_index}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Index of the second entry.
        index: usize,
        /// Index of the first.
        first_index: usize,
    },
    /// A string value (or array element) is longer than `limits::MAX_STRING_LEN`.
    #[error("metadata '{key}': a string of {len} bytes is above the limit of {max}")]
    StringTooLong {
        /// The key.
        key: String,
        /// The string's length in bytes.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Arrays nested deeper than `limits::MAX_NESTING`.
    #[error("metadata '{key}': arrays nested {depth} deep, limit is {max}")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// Depth reached.
        depth: u32,
        /// The cap.
        max: u32,
    },
    /// `general.alignment` is not a UINT32.
    #[error("metadata 'general.alignment': type is {found}, must be UINT32")]
    AlignmentWrongType {
        /// GGUF name of the type given.
        found: &'static str,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("metadata 'general.alignment': {value} is not a non-zero power of two")]
    AlignmentNotPowerOfTwo {
        /// The alignment given.
        value: u32,
    },
    /// A tensor name is longer than `limits::MAX_NAME_LEN`.
    #[error("tensor {index}: name '{}...' is {len} bytes, above the limit of {max}", prefix(name))]
    NameTooLong {
        /// The name.
        name: String,
        /// Index of the tensor in the declarations.
        index: usize,
        /// Its length in bytes.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Two tensors have the same name.
    #[error("tensor '{name}' (declaration {index}): duplicate of declaration {first_index}")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Index of the second declaration.
        index: usize,
        /// Index of the first.
        first_index: usize,
    },
    /// The dtype has no ggml type id (ONNX's packed 4-bit types, FP8, unsigned and complex
    /// types, booleans, strings).
    #[error("tensor '{name}': {dtype} has no ggml type, so GGUF cannot hold it")]
    NoGgmlType {
        /// Tensor name.
        name: String,
        /// The dtype.
        dtype: DType,
    },
    /// More dimensions than ggml's `GGML_MAX_DIMS` (4).
    #[error("tensor '{name}': {rank} dimensions, ggml allows at most {max}")]
    TooManyDims {
        /// Tensor name.
        name: String,
        /// The rank given.
        rank: usize,
        /// ggml's limit.
        max: u32,
    },
    /// The innermost dimension of a block-quantized tensor is not a whole number of blocks.
    #[error("tensor '{name}': row length {row} is not a multiple of {dtype}'s block size {block}")]
    RowNotBlockMultiple {
        /// Tensor name.
        name: String,
        /// The tensor's type.
        dtype: DType,
        /// The innermost (row) dimension.
        row: u64,
        /// Elements per block.
        block: u64,
    },
    /// The element count does not fit ggml's `int64_t`, or the byte size (or the running data
    /// offset) does not fit 64 bits.
    #[error(
        "tensor '{name}': shape {shape:?} is too large for GGUF (element count above \
             int64, or byte size or file offset above 64 bits)"
    )]
    SizeOverflow {
        /// Tensor name.
        name: String,
        /// Row-major shape.
        shape: Vec<u64>,
    },
    /// A tensor's bytes were given out of declaration order.
    #[error("at byte {offset}: expected the bytes of tensor '{expected}', got '{found}'")]
    WrongTensor {
        /// Where the expected tensor's data starts.
        offset: u64,
        /// The tensor that comes next.
        expected: String,
        /// The tensor the caller named.
        found: String,
    },
    /// A tensor's bytes do not have the declared length.
    #[error("tensor '{name}' at byte {offset}: {found} bytes given, its declaration needs {expected}")]
    WrongLength {
        /// Tensor name.
        name: String,
        /// Where its data starts.
        offset: u64,
        /// Bytes its dtype and shape need.
        expected: u64,
        /// Bytes given.
        found: u64,
    },
    /// More tensors were written than declared.
    #[error("at byte {offset}: tensor '{found}' given, but all {declared} declared tensors are written")]
    ExtraTensor {
        /// End of the file written so far.
        offset: u64,
        /// The tensor the caller named.
        found: String,
        /// How many tensors were declared.
        declared: usize,
    },
    /// `finish` was called before every declared tensor was written.
    #[error("at byte {offset}: finished after {written} of {declared} tensors; '{next}' is missing")]
    MissingTensors {
        /// End of the file written so far.
        offset: u64,
        /// The first tensor not written.
        next: String,
        /// Tensors written.
        written: usize,
        /// Tensors declared.
        declared: usize,
    },
    /// Writing to the output failed.
    #[error("at byte {offset}: write failed: {source}")]
    Io {
        /// Where the failed write started.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The first 64 characters of a long name, for messages.
fn prefix(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
