//! Every way an ONNX model can be malformed or unsafe, each variant naming the field or tensor
//! and the absolute byte offset in the `.onnx` file where it applies.

use std::path::Path;

use smelt_tensor::DType;

/// A malformed or unsafe ONNX model.
///
/// `offset` is always an absolute byte offset in the `.onnx` file: for wire-structure errors,
/// where the bad bytes start; for tensor errors, where the tensor's `TensorProto` starts (for
/// tensors inside node attributes or subgraphs, where the enclosing top-level node starts).
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A field's value runs past the end of its enclosing message (or of the file).
    #[error(
        "{field} at byte {offset}: needs {needed} bytes but its message has only {available} left \
             (truncated file?)"
    )]
    Truncated {
        /// `Message.field` being read.
        field: String,
        /// Where the value starts.
        offset: u64,
        /// Bytes the value needs.
        needed: u64,
        /// Bytes left in the enclosing message.
        available: u64,
    },
    /// A varint is unterminated, longer than 10 bytes, or runs past its message.
    #[error("{field} at byte {offset}: malformed varint")]
    BadVarint {
        /// `Message.field` being read (or `Message` for a field key).
        field: String,
        /// Where the varint starts.
        offset: u64,
    },
    /// A field key with field number 0 or wider than 32 bits.
    #[error(
        "{message} at byte {offset}: invalid field key {key} (field number 0 or key wider than 32 bits)"
    )]
    BadFieldKey {
        /// The message being read.
        message: &'static str,
        /// Where the key starts.
        offset: u64,
        /// The decoded key.
        key: u64,
    },
    /// A field's wire type does not match onnx.proto (or is a group, or undefined).
    #[error("{field} at byte {offset}: wire type {found}, expected {expected}")]
    BadWireType {
        /// `Message.field` (`Message.#N` for a field onnx.proto does not define).
        field: String,
        /// Where the field key starts.
        offset: u64,
        /// What onnx.proto allows for this field.
        expected: &'static str,
        /// The wire type found (0-7).
        found: u8,
    },
    /// A packed field of fixed-width values whose length is not a multiple of the width.
    #[error("{field} at byte {offset}: {len} bytes of packed {width}-byte values")]
    PackedLength {
        /// `Message.field`.
        field: String,
        /// Where the packed values start.
        offset: u64,
        /// Length of the packed payload.
        len: u64,
        /// Width of one value.
        width: u64,
    },
    /// A `string` field that is not UTF-8.
    #[error("{field} at byte {offset}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// `Message.field`.
        field: String,
        /// Where the string starts.
        offset: u64,
    },
    /// Messages nested deeper than smelt's cap (subgraphs of subgraphs of ...).
    #[error("{field} at byte {offset}: messages nested more than {limit} deep")]
    TooDeep {
        /// `Message.field` that would go one level too deep.
        field: String,
        /// Where that message starts.
        offset: u64,
        /// The cap ([`crate::limits::MAX_PROTOBUF_DEPTH`]).
        limit: u32,
    },
    /// Decoding would need far more memory than the file's size justifies (e.g. millions of
    /// empty messages, each a few bytes on disk and hundreds in memory).
    #[error(
        "decoding would take about {estimate} bytes of memory for a {file_len}-byte file \
             (limit {limit}); refusing a file built to exhaust memory"
    )]
    DecodeTooLarge {
        /// Estimated bytes the decoded messages would occupy.
        estimate: u64,
        /// Size of the `.onnx` file.
        file_len: u64,
        /// The limit for this file size.
        limit: u64,
    },
    /// prost rejected a file the wire pre-scan accepted. The pre-scan checks everything prost
    /// does, so this means the two disagree (a smelt bug); prost gives no byte offset.
    #[error("protobuf decoding failed (byte offset unknown): {message}")]
    Protobuf {
        /// prost's description.
        message: String,
    },
    /// `ModelProto.graph` is absent (this also covers an empty file).
    #[error("byte 0: the model has no graph (ModelProto.graph is missing)")]
    MissingGraph,
    /// More initializers than [`crate::limits::MAX_TENSORS`].
    #[error("initializer at byte {offset}: more than {limit} initializers")]
    TooManyTensors {
        /// Where the first initializer over the limit starts.
        offset: u64,
        /// The limit.
        limit: u64,
    },
    /// A model-level `metadata_props` key given twice.
    #[error("metadata_props entry at byte {offset}: key '{key}' already set at byte {first_offset}")]
    DuplicateMetadataKey {
        /// The key.
        key: String,
        /// Where the second entry starts.
        offset: u64,
        /// Where the first entry starts.
        first_offset: u64,
    },
    /// An initializer without a name (nothing could refer to it).
    #[error("initializer at byte {offset}: has no name")]
    UnnamedInitializer {
        /// Where its `TensorProto` starts.
        offset: u64,
    },
    /// An initializer name longer than [`crate::limits::MAX_NAME_LEN`].
    #[error("initializer at byte {offset}: name is {len} bytes long (limit {limit})")]
    NameTooLong {
        /// Where its `TensorProto` starts.
        offset: u64,
        /// Length of the name.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Two initializers of the main graph share a name.
    #[error(
        "initializer '{name}' at byte {offset}: name already used by the initializer at byte {first_offset}"
    )]
    DuplicateInitializer {
        /// The name.
        name: String,
        /// Where the second one starts.
        offset: u64,
        /// Where the first one starts.
        first_offset: u64,
    },
    /// `GraphProto.sparse_initializer`, which smelt refuses rather than densify.
    #[error(
        "sparse initializer '{name}' at byte {offset}: sparse initializers are not supported; \
             convert them to dense initializers first"
    )]
    SparseInitializer {
        /// The name of its values tensor.
        name: String,
        /// Where its `SparseTensorProto` starts.
        offset: u64,
    },
    /// More dimensions than [`crate::limits::MAX_RANK`].
    #[error("tensor '{name}' at byte {offset}: rank {rank} exceeds the limit of {limit}")]
    RankTooLarge {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// Number of dims.
        rank: u64,
        /// The limit.
        limit: u64,
    },
    /// A negative dimension.
    #[error("tensor '{name}' at byte {offset}: dimension {index} is negative ({dim})")]
    NegativeDim {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// Which dimension.
        index: usize,
        /// Its value.
        dim: i64,
    },
    /// The element count or byte size of the shape does not fit in 64 bits.
    #[error("tensor '{name}' at byte {offset}: shape {shape:?} of {dtype} overflows 64-bit sizes")]
    ShapeOverflow {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// The dims.
        shape: Box<[u64]>,
    },
    /// `data_type` is UNDEFINED (0) or an id ONNX does not define.
    #[error("tensor '{name}' at byte {offset}: data type {id} is UNDEFINED (0) or not an ONNX data type")]
    UnknownDataType {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The id.
        id: i32,
    },
    /// A data type ONNX defines and smelt cannot hold (FLOAT8E8M0, 2-bit and 6-bit types).
    #[error("tensor '{name}' at byte {offset}: ONNX data type {onnx_name} ({id}) is not supported by smelt")]
    UnsupportedDataType {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The id.
        id: i32,
        /// ONNX's name of it.
        onnx_name: &'static str,
    },
    /// A tensor stored in segments (`TensorProto.segment`).
    #[error("tensor '{name}' at byte {offset}: stored in segments (TensorProto.segment), which smelt does not support")]
    Segmented {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
    },
    /// `data_location` other than DEFAULT (0) or EXTERNAL (1).
    #[error(
        "tensor '{name}' at byte {offset}: data_location {value} is neither DEFAULT (0) nor EXTERNAL (1)"
    )]
    BadDataLocation {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The value found.
        value: i32,
    },
    /// `raw_data` of the wrong length for the shape and dtype.
    #[error("tensor '{name}' at byte {offset}: raw_data is {found} bytes, but shape {shape:?} of {dtype} needs {expected}")]
    RawDataLength {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// The dims.
        shape: Box<[u64]>,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A typed field (`float_data`, `int32_data`, `string_data`, ...) with the wrong number of
    /// values for the shape, including no data at all for a non-empty shape.
    #[error("tensor '{name}' at byte {offset}: {field} holds {found} values, but shape {shape:?} of {dtype} needs {expected}")]
    ElementCount {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The field.
        field: &'static str,
        /// The dtype.
        dtype: DType,
        /// The dims.
        shape: Box<[u64]>,
        /// Values the shape needs in that field.
        expected: u64,
        /// Values present.
        found: u64,
    },
    /// Data in a field that cannot carry this dtype (`float_data` for INT64, `raw_data` or
    /// external data for STRING, ...).
    #[error("tensor '{name}' at byte {offset}: {field} cannot carry {dtype} values")]
    WrongDataField {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The field.
        field: &'static str,
        /// The dtype.
        dtype: DType,
    },
    /// Data in two places at once (two typed fields, a typed field and `raw_data`, or inline
    /// data and `data_location = EXTERNAL`).
    #[error("tensor '{name}' at byte {offset}: data in both {first} and {second}; ONNX allows exactly one")]
    ConflictingData {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// One field.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// A typed-field value that does not fit the tensor's dtype (300 in `int32_data` of a UINT8
    /// tensor, 2 for a BOOL, 2^40 in `uint64_data` of a UINT32).
    #[error("tensor '{name}' at byte {offset}: {field}[{index}] = {value} does not fit {dtype}")]
    ValueOutOfRange {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The field.
        field: &'static str,
        /// Index of the value in the field.
        index: u64,
        /// The value, in decimal (an `int32_data` or `uint64_data` value).
        value: String,
        /// The dtype.
        dtype: DType,
    },
    /// External data in a model that may not have any: the graph a smelt blob embeds, whose
    /// weights are the blob's tensors (a `location` there would make reading a blob open
    /// other files).
    #[error(
        "tensor '{name}' at byte {offset}: external data is not allowed in a model embedded in a smelt blob"
    )]
    ExternalNotAllowed {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
    },
    /// `data_location = EXTERNAL` without a `location` key.
    #[error("tensor '{name}' at byte {offset}: external data has no 'location'")]
    ExternalMissingLocation {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
    },
    /// An `external_data` key given twice.
    #[error("tensor '{name}' at byte {offset}: external data key '{key}' given twice")]
    ExternalDuplicateKey {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The key.
        key: String,
    },
    /// `offset` or `length` that is not a non-negative decimal integer.
    #[error("tensor '{name}' at byte {offset}: external data {key} '{value}' is not a non-negative integer")]
    ExternalBadNumber {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// `offset` or `length`.
        key: &'static str,
        /// The string found.
        value: String,
    },
    /// An absolute `location` (or an empty one).
    #[error(
        "tensor '{name}' at byte {offset}: external data location '{location}' is not a relative path; \
             it must name a file inside the model's directory"
    )]
    ExternalAbsolutePath {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
    },
    /// A `location` with a `..` component.
    #[error(
        "tensor '{name}' at byte {offset}: external data location '{location}' contains '..'; \
             external data must stay inside the model's directory"
    )]
    ExternalParentDir {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
    },
    /// A `location` that resolves (through a symlink) outside the model's directory.
    #[error("tensor '{name}' at byte {offset}: external data location '{location}' resolves to {}, \
             outside the model's directory {}", resolved.display(), dir.display())]
    ExternalOutsideDir {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
        /// Where it resolves to.
        resolved: Box<Path>,
        /// The model's directory, canonicalized.
        dir: Box<Path>,
    },
    /// A `location` that is a hard link (more than one directory entry for the file).
    #[error("tensor '{name}' at byte {offset}: external data location '{location}' is a file with {links} hard links; \
             smelt refuses hard-linked external data because a hard link can make a file from outside \
             the model's directory appear inside it (copy the file instead)")]
    ExternalHardLink {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
        /// The file's link count.
        links: u64,
    },
    /// A `location` that is a directory, device, FIFO or socket.
    #[error("tensor '{name}' at byte {offset}: external data location '{location}' is not a regular file")]
    ExternalNotAFile {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
    },
    /// The external file cannot be found, opened or mapped.
    #[error("tensor '{name}' at byte {offset}: cannot read external data '{location}': {source}")]
    ExternalOpen {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `offset`/`length` outside the external file.
    #[error(
        "tensor '{name}' at byte {offset}: external data range of {length} bytes at offset {data_offset} \
             extends past the end of '{location}' ({file_len} bytes)"
    )]
    ExternalOutOfRange {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
        /// The `offset` key.
        data_offset: u64,
        /// The `length` key (or what the shape needs, when absent).
        length: u64,
        /// Size of the external file.
        file_len: u64,
    },
    /// `length` differs from what the shape and dtype need.
    #[error("tensor '{name}' at byte {offset}: external data length is {found} bytes, but shape {shape:?} of {dtype} needs {expected}")]
    ExternalLengthMismatch {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The dtype.
        dtype: DType,
        /// The dims.
        shape: Box<[u64]>,
        /// Bytes the shape needs.
        expected: u64,
        /// The `length` key.
        found: u64,
    },
    /// Two tensors whose byte ranges in the same external file overlap.
    #[error("tensor '{name}' at byte {offset}: external data bytes {}..{} of '{location}' overlap \
             tensor '{other}' (bytes {}..{})", ranges[0].0, ranges[0].1, ranges[1].0, ranges[1].1)]
    ExternalOverlap {
        /// Tensor name.
        name: String,
        /// Where its `TensorProto` starts.
        offset: u64,
        /// The location.
        location: String,
        /// The other tensor.
        other: String,
        /// This tensor's byte range in the file, then the other's (start, exclusive end).
        ranges: Box<[(u64, u64); 2]>,
    },
}
